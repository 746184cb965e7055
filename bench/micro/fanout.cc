// Fan-out of one PUBLISH to many local sessions, without I/O: what a shard does for each
// message it routes to its own subscribers, measured in isolation from sockets and io_uring.
//
// - BM_FanOutLocal/qos:<q>/sessions:<n>: one message (64-byte payload) is created, matched in a
//   trie holding n subscriptions to its topic (one per session, all on this shard), enqueued on
//   each of the n sessions and encoded into each session's output buffer (Session::WriteOutput);
//   at QoS 1 the PUBACK is applied too, so the in-flight window never fills. items/s counts
//   deliveries; the per-delivery time is the figure to compare with the end-to-end cost
//   (ringmq-bench) and with instructions per message (scripts/callgrind-per-message.sh).
// - BM_FanOutEnqueueOnly: the same without encoding, to split queueing from encoding.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/assert.h"
#include "common/byte_buffer.h"
#include "concurrent/epoch.h"
#include "message/message.h"
#include "session/session.h"
#include "statistics.h"
#include "sub/trie.h"

namespace ringmq::bench {
namespace {

using concurrent::EpochDomain;
using message::MessageRef;
using session::Session;
using sub::MatchResult;
using sub::SubscriptionTrie;

constexpr char kTopic[] = "site/7/sensors/temperature";

struct Fixture {
  Fixture(size_t sessions, uint8_t qos) : domain(1), trie(domain), outputs(sessions) {
    domain.Online(0);
    for (uint32_t i = 0; i < sessions; ++i) {
      auto s = std::make_unique<Session>("client-" + std::to_string(i), true, limits);
      s->Attach(true);
      list.push_back(std::move(s));
      RINGMQ_ASSERT(trie.Subscribe(kTopic, {0, i, 0, qos}));
    }
    domain.Collect();
  }
  EpochDomain domain;
  SubscriptionTrie trie;
  session::SessionLimits limits;  // the sessions refer to it
  std::vector<std::unique_ptr<Session>> list;
  std::vector<ByteBuffer> outputs;
  MatchResult result;
};

// Packet id of a QoS 1/2 PUBLISH at the start of `out`: after the fixed header (1 + 1 byte for
// these short packets) and the topic.
uint16_t PacketIdOf(const ByteBuffer& out) {
  const size_t at = 2 + 2 + sizeof(kTopic) - 1;
  return static_cast<uint16_t>(out[at] << 8 | out[at + 1]);
}

void FanOut(benchmark::State& state, bool encode) {
  const auto qos = static_cast<uint8_t>(state.range(0));
  const auto sessions = static_cast<size_t>(state.range(1));
  Fixture f(sessions, qos);
  const std::vector<uint8_t> payload(64, 'x');
  for (auto _ : state) {
    MessageRef message = MessageRef::Create(kTopic, payload, qos, false);
    f.trie.Match(kTopic, f.result);
    for (const sub::Subscriber& s : f.result.subscribers()) {
      Session& session = *f.list[s.session];
      session.Enqueue(MessageRef::Share(message.get()), qos, false);
      if (!encode) continue;
      ByteBuffer& out = f.outputs[s.session];
      out.clear();
      session.WriteOutput(out, 64 * 1024);
      benchmark::DoNotOptimize(out.data());
      if (qos == 1) session.OnPuback(PacketIdOf(out));
    }
    if (!encode) {
      // Drain the queues outside the measured part, so they stay short.
      state.PauseTiming();
      for (auto& s : f.list) {
        ByteBuffer& out = f.outputs[0];
        out.clear();
        s->WriteOutput(out, 64 * 1024);
        if (qos == 1) s->OnPuback(PacketIdOf(out));
      }
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * sessions));
  state.counters["ns_per_delivery"] = benchmark::Counter(
      static_cast<double>(state.iterations() * sessions),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_FanOutLocal(benchmark::State& state) { FanOut(state, true); }
void BM_FanOutEnqueueOnly(benchmark::State& state) { FanOut(state, false); }

void Args(benchmark::internal::Benchmark* b) {
  ConfigureRepetitions(b, 5);
  b->ArgNames({"qos", "sessions"})->Args({0, 1000})->Args({1, 1000})->Args({0, 100});
}

BENCHMARK(BM_FanOutLocal)->Apply(Args);
BENCHMARK(BM_FanOutEnqueueOnly)->Apply(Args);

}  // namespace
}  // namespace ringmq::bench

BENCHMARK_MAIN();
