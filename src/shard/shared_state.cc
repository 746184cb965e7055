#include "shard/shared_state.h"

#include <bit>

#include "common/clock.h"

namespace ringmq::shard {

uint32_t MailboxCapacity(uint32_t shard_count) {
  const uint32_t pairs = shard_count > 1 ? shard_count * (shard_count - 1) : 1;
  const uint32_t share = std::bit_floor((uint32_t{1} << 18) / pairs);
  return share < 1024 ? 1024 : (share > 32768 ? 32768 : share);
}

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
      started_monotonic_ms(MonotonicMs()),
      started_unix_seconds(UnixSeconds()) {
  for (uint32_t i = 0; i < shard_count; ++i) ring_fds[i].store(-1, std::memory_order_relaxed);
}

}  // namespace ringmq::shard
