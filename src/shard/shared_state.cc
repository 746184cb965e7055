#include "shard/shared_state.h"

#include <time.h>

#include <bit>

namespace ringmq::shard {

uint32_t MailboxCapacity(uint32_t shard_count) {
  const uint32_t pairs = shard_count > 1 ? shard_count * (shard_count - 1) : 1;
  const uint32_t share = std::bit_floor((uint32_t{1} << 18) / pairs);
  return share < 1024 ? 1024 : (share > 32768 ? 32768 : share);
}

namespace {

uint64_t StartMonotonicMs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000 + static_cast<uint64_t>(now.tv_nsec) / 1'000'000;
}

double UnixSeconds() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

}  // namespace

SharedState::SharedState(uint32_t shard_count, uint64_t max_memory_bytes,
                         retain::RetainedLimits retained_limits)
    : shard_count(shard_count),
      memory(max_memory_bytes, shard_count),
      epochs(shard_count),
      trie(epochs),
      retained(epochs, retained_limits),
      mailboxes(shard_count, MailboxCapacity(shard_count)),
      ring_fds(std::make_unique<std::atomic<int>[]>(shard_count)),
      shard_counters(shard_count, nullptr),
      started_monotonic_ms(StartMonotonicMs()),
      started_unix_seconds(UnixSeconds()) {
  for (uint32_t i = 0; i < shard_count; ++i) ring_fds[i].store(-1, std::memory_order_relaxed);
}

}  // namespace ringmq::shard
