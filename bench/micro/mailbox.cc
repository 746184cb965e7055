// Micro-benchmarks of the cross-shard hop (src/shard/mailbox.h) and of building the shared
// message (src/message/message.h), both per-PUBLISH costs.
//
// Each case has an in-run reference to read it against:
//  - mailbox push/pop between two threads (1-slot and 4-slot records) against a std::mutex +
//    std::deque queue bounded to the same number of slots, which the consumer empties in
//    batches by swapping;
//  - Message::Create + Release against the bare allocator: operator new of the same size, the
//    same copies, operator delete.
// Cross-thread cases time the producer (one push per iteration, retried while full) with the
// consumer draining concurrently on its own thread; they use wall time and report items/s.
// This binary links the system allocator, not mimalloc (only the ringmq binary does).
//
// Each benchmark repeats and reports the median and the spread (min, p90, max) of the
// repetitions, not a single mean.
#include "shard/mailbox.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

#include "message/message.h"
#include "statistics.h"

namespace ringmq {
namespace {

constexpr int kRepetitions = 5;
constexpr uint32_t kCapacity = 4096;  // slots
constexpr uint32_t kMaxRecordSlots = 4;
constexpr size_t kDrainBatch = 256;

void Configure(benchmark::internal::Benchmark* benchmark) {
  bench::ConfigureRepetitions(benchmark, kRepetitions);
}

// Spin briefly, then give the core away: with fewer cores than busy threads pure spinning
// would measure the scheduler.
void Backoff(uint32_t& spins) {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    spins = 0;
    std::this_thread::yield();
  }
}

void BM_MailboxCrossThread(benchmark::State& state) {
  const auto record_slots = static_cast<size_t>(state.range(0));
  shard::Mailbox mailbox(kCapacity, kMaxRecordSlots);
  std::atomic<uint64_t> pushed_total{UINT64_MAX};  // set when the producer is done
  uint64_t checksum = 0;
  std::thread consumer([&] {
    uint64_t consumed = 0;
    uint64_t sum = 0;
    uint32_t spins = 0;
    for (;;) {
      const shard::DrainResult result = mailbox.Drain(
          [&](std::span<const shard::Slot> record) {
            sum += record[0].value + record.size();
            ++consumed;
          },
          kDrainBatch);
      if (result.records != 0) continue;
      if (consumed == pushed_total.load(std::memory_order_acquire)) break;
      Backoff(spins);
    }
    checksum = sum;
  });

  shard::Slot record[kMaxRecordSlots] = {};
  uint64_t pushed = 0;
  uint64_t full = 0;
  uint32_t spins = 0;
  for (auto _ : state) {
    record[0].value = pushed;
    while (!mailbox.TryPush(std::span<const shard::Slot>(record, record_slots)).pushed) {
      ++full;
      Backoff(spins);
    }
    ++pushed;
  }
  pushed_total.store(pushed, std::memory_order_release);
  consumer.join();
  benchmark::DoNotOptimize(checksum);
  state.SetItemsProcessed(static_cast<int64_t>(pushed));
  state.counters["full_per_push"] =
      static_cast<double>(full) / static_cast<double>(std::max<uint64_t>(pushed, 1));
}
BENCHMARK(BM_MailboxCrossThread)
    ->ArgName("record_slots")
    ->Arg(1)
    ->Arg(4)
    ->UseRealTime()
    ->Apply(Configure);

// Reference: the obvious bounded locked queue, with the consumer taking everything per lock.
void BM_MutexDequeCrossThreadReference(benchmark::State& state) {
  const auto record_slots = static_cast<size_t>(state.range(0));
  std::mutex mutex;
  std::deque<shard::Slot> queue;  // guarded by mutex
  std::atomic<uint64_t> pushed_total{UINT64_MAX};
  uint64_t checksum = 0;
  std::thread consumer([&] {
    std::deque<shard::Slot> taken;
    uint64_t consumed = 0;
    uint64_t sum = 0;
    uint32_t spins = 0;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        taken.swap(queue);
      }
      if (!taken.empty()) {
        for (size_t i = 0; i < taken.size(); i += record_slots) {
          sum += taken[i].value + record_slots;
          ++consumed;
        }
        taken.clear();
        continue;
      }
      if (consumed == pushed_total.load(std::memory_order_acquire)) break;
      Backoff(spins);
    }
    checksum = sum;
  });

  shard::Slot record[kMaxRecordSlots] = {};
  uint64_t pushed = 0;
  uint64_t full = 0;
  uint32_t spins = 0;
  for (auto _ : state) {
    record[0].value = pushed;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (queue.size() + record_slots <= kCapacity) {  // bounded like the mailbox
          queue.insert(queue.end(), record, record + record_slots);
          break;
        }
      }
      ++full;
      Backoff(spins);
    }
    ++pushed;
  }
  pushed_total.store(pushed, std::memory_order_release);
  consumer.join();
  benchmark::DoNotOptimize(checksum);
  state.SetItemsProcessed(static_cast<int64_t>(pushed));
  state.counters["full_per_push"] =
      static_cast<double>(full) / static_cast<double>(std::max<uint64_t>(pushed, 1));
}
BENCHMARK(BM_MutexDequeCrossThreadReference)
    ->ArgName("record_slots")
    ->Arg(1)
    ->Arg(4)
    ->UseRealTime()
    ->Apply(Configure);

// One thread pushes and drains: the cost of the ring operations (and the fence) alone.
void BM_MailboxSameThread(benchmark::State& state) {
  const auto record_slots = static_cast<size_t>(state.range(0));
  shard::Mailbox mailbox(kCapacity, kMaxRecordSlots);
  shard::Slot record[kMaxRecordSlots] = {};
  uint64_t sum = 0;
  for (auto _ : state) {
    record[0].value = sum;
    benchmark::DoNotOptimize(mailbox.TryPush(std::span<const shard::Slot>(record, record_slots)));
    mailbox.Drain([&](std::span<const shard::Slot> slots) { sum += slots[0].value + 1; }, 1);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MailboxSameThread)->ArgName("record_slots")->Arg(1)->Arg(4)->Apply(Configure);

constexpr std::string_view kTopic = "sensors/building-7/floor-3/room-12/temperature";

void BM_MessageCreateRelease(benchmark::State& state) {
  const std::vector<uint8_t> payload(static_cast<size_t>(state.range(0)), 0x5a);
  for (auto _ : state) {
    message::Message* message = message::Message::Create(kTopic, payload, 1, false);
    benchmark::DoNotOptimize(message);
    message->Release();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_MessageCreateRelease)->ArgName("payload")->Arg(64)->Arg(4096)->Apply(Configure);

// Reference: the allocation and the copies alone.
void BM_AllocateCopyFreeReference(benchmark::State& state) {
  const std::vector<uint8_t> payload(static_cast<size_t>(state.range(0)), 0x5a);
  const size_t size = 12 + 2 + kTopic.size() + payload.size();
  for (auto _ : state) {
    auto* bytes = static_cast<uint8_t*>(::operator new(size));
    std::memcpy(bytes + 14, kTopic.data(), kTopic.size());
    std::memcpy(bytes + 14 + kTopic.size(), payload.data(), payload.size());
    benchmark::DoNotOptimize(bytes);
    ::operator delete(bytes);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(payload.size()));
}
BENCHMARK(BM_AllocateCopyFreeReference)->ArgName("payload")->Arg(64)->Arg(4096)->Apply(Configure);

}  // namespace
}  // namespace ringmq

BENCHMARK_MAIN();
