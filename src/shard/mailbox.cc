#include "shard/mailbox.h"

#include <algorithm>
#include <atomic>

namespace ringmq::shard {

Mailbox::Mailbox(uint32_t capacity, uint32_t max_record_slots) {
  RINGMQ_ASSERT(capacity >= 1 && (capacity & (capacity - 1)) == 0);
  RINGMQ_ASSERT(max_record_slots >= 1 && max_record_slots <= capacity &&
                max_record_slots <= kMaxRecordSlotsLimit);
  // A record starting at the last position runs max_record_slots - 1 slots past the end.
  const size_t slot_count = size_t{capacity} + max_record_slots - 1;
  slot_storage_ = std::make_unique<Slot[]>(slot_count);
  length_storage_ = std::make_unique<uint8_t[]>(capacity);
  geometry_ = Geometry{.capacity = capacity,
                       .max_record_slots = max_record_slots,
                       .mask = uint64_t{capacity} - 1,
                       .publish_slots = std::max<uint64_t>(capacity / 4, 1),
                       .slots = slot_storage_.get(),
                       .record_lengths = length_storage_.get()};
}

PushResult Mailbox::TryPush(std::span<const Slot> slots) {
  const uint64_t length = slots.size();
  RINGMQ_ASSERT(length >= 1 && length <= geometry_.max_record_slots);
  const uint64_t tail = producer_.tail.load(std::memory_order_relaxed);
  if (tail + length - producer_.cached_head > geometry_.capacity) {
    producer_.cached_head = consumer_.head.load(std::memory_order_acquire);
    if (tail + length - producer_.cached_head > geometry_.capacity) {
      return {.pushed = false, .was_empty = false};
    }
  }
  const uint64_t position = tail & geometry_.mask;
  std::copy(slots.begin(), slots.end(), geometry_.slots + position);
  geometry_.record_lengths[position] = static_cast<uint8_t>(length);
  producer_.tail.store(tail + length, std::memory_order_release);
  // Dekker with Drain: tail store, fence, head load (see the header).
  StoreLoadFence();
  const uint64_t head = consumer_.head.load(std::memory_order_acquire);
  // head may already be past this record (the consumer was awake and took it): no doorbell.
  RINGMQ_ASSERT(head <= tail + length);
  producer_.cached_head = head;
  return {.pushed = true, .was_empty = head == tail};
}

MailboxMatrix::MailboxMatrix(uint32_t shard_count, uint32_t capacity, uint32_t max_record_slots)
    : shard_count_(shard_count) {
  RINGMQ_ASSERT(shard_count >= 1);
  const size_t count = size_t{shard_count} * (shard_count - 1);
  mailboxes_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    mailboxes_.push_back(std::make_unique<Mailbox>(capacity, max_record_slots));
  }
}

}  // namespace ringmq::shard
