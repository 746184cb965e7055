#include "shard/shared_state.h"

#include <algorithm>
#include <bit>

#include "common/clock.h"

namespace ringmq::shard {

uint32_t MailboxCapacity(uint32_t shard_count, uint64_t mailbox_memory_bytes) {
  constexpr uint64_t kMinSlots = Mailbox::kDefaultMaxRecordSlots;
  constexpr uint64_t kMaxSlots = 32768;
  const uint64_t pairs = shard_count > 1 ? uint64_t{shard_count} * (shard_count - 1) : 1;
  const uint64_t share = mailbox_memory_bytes / sizeof(Slot) / pairs;
  if (share <= kMinSlots) return static_cast<uint32_t>(kMinSlots);
  return static_cast<uint32_t>(std::bit_floor(std::min(share, kMaxSlots)));
}

uint64_t MailboxBytes(uint32_t shard_count, uint64_t mailbox_memory_bytes) {
  return MailboxMatrix::StorageBytes(shard_count,
                                     MailboxCapacity(shard_count, mailbox_memory_bytes));
}

SharedState::SharedState(uint32_t shard_count, uint64_t max_memory_bytes,
                         retain::RetainedLimits retained_limits, uint64_t mailbox_memory_bytes)
    : shard_count(shard_count),
      memory(max_memory_bytes, shard_count),
      epochs(shard_count),
      trie(epochs, shard_count),  // one round-robin cursor per shard in each shared group
      retained(epochs, retained_limits),
      mailboxes(shard_count, MailboxCapacity(shard_count, mailbox_memory_bytes)),
      ring_fds(std::make_unique<std::atomic<int>[]>(shard_count)),
      shard_counters(shard_count, nullptr),
      started_monotonic_ms(MonotonicMs()),
      started_unix_seconds(UnixSeconds()) {
  for (uint32_t i = 0; i < shard_count; ++i) ring_fds[i].store(-1, std::memory_order_relaxed);
}

}  // namespace ringmq::shard
