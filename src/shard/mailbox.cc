#include "shard/mailbox.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace ringmq::shard {

namespace {

constexpr size_t kCacheLine = 64;

size_t SlotArrayBytes(uint32_t capacity, uint32_t max_record_slots) {
  // A record starting at the last position runs max_record_slots - 1 slots past the end.
  return (size_t{capacity} + max_record_slots - 1) * sizeof(Slot);
}

}  // namespace

size_t Mailbox::StorageBytes(uint32_t capacity, uint32_t max_record_slots) {
  const size_t bytes = SlotArrayBytes(capacity, max_record_slots) + capacity;
  return (bytes + kCacheLine - 1) / kCacheLine * kCacheLine;
}

Mailbox::Mailbox(uint32_t capacity, uint32_t max_record_slots) {
  RINGMQ_ASSERT(max_record_slots >= 1);
  owned_storage_ =
      std::make_unique<CacheLine[]>(StorageBytes(capacity, max_record_slots) / kCacheLine);
  Init(capacity, max_record_slots, owned_storage_.get());
}

Mailbox::Mailbox(uint32_t capacity, uint32_t max_record_slots, void* storage) {
  Init(capacity, max_record_slots, storage);
}

void Mailbox::Init(uint32_t capacity, uint32_t max_record_slots, void* storage) {
  RINGMQ_ASSERT(capacity >= 1 && (capacity & (capacity - 1)) == 0);
  RINGMQ_ASSERT(max_record_slots >= 1 && max_record_slots <= capacity &&
                max_record_slots <= kMaxRecordSlotsLimit);
  RINGMQ_ASSERT(storage != nullptr && reinterpret_cast<uintptr_t>(storage) % kCacheLine == 0);
  // Record lengths are written before the tail publishes them and read only below the tail, so
  // the storage needs no initial contents.
  auto* slots = static_cast<Slot*>(storage);
  geometry_ = Geometry{.capacity = capacity,
                       .max_record_slots = max_record_slots,
                       .mask = uint64_t{capacity} - 1,
                       .publish_slots = std::max<uint64_t>(capacity / 4, 1),
                       .slots = slots,
                       .record_lengths = static_cast<uint8_t*>(storage) +
                                         SlotArrayBytes(capacity, max_record_slots)};
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

size_t MailboxMatrix::StorageBytes(uint32_t shard_count, uint32_t capacity,
                                   uint32_t max_record_slots) {
  const size_t pairs = size_t{shard_count} * (shard_count > 0 ? shard_count - 1 : 0);
  return pairs * Mailbox::StorageBytes(capacity, max_record_slots);
}

MailboxMatrix::MailboxMatrix(uint32_t shard_count, uint32_t capacity, uint32_t max_record_slots)
    : shard_count_(shard_count), signal_words_((shard_count + 63) / 64) {
  RINGMQ_ASSERT(shard_count >= 1);
  const size_t count = size_t{shard_count} * (shard_count - 1);
  storage_bytes_ = StorageBytes(shard_count, capacity, max_record_slots);
  if (storage_bytes_ != 0) {
    // Anonymous pages are zero-filled on first touch, so an untouched ring costs no memory.
    storage_ = mmap(nullptr, storage_bytes_, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    RINGMQ_ASSERT(storage_ != MAP_FAILED);
  }
  const size_t stride = Mailbox::StorageBytes(capacity, max_record_slots);
  mailboxes_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    mailboxes_.push_back(std::make_unique<Mailbox>(capacity, max_record_slots,
                                                   static_cast<uint8_t*>(storage_) + i * stride));
  }
  signals_ = std::make_unique<SignalWord[]>(size_t{shard_count} * signal_words_);
}

MailboxMatrix::~MailboxMatrix() {
  mailboxes_.clear();
  if (storage_ != nullptr) munmap(storage_, storage_bytes_);
}

}  // namespace ringmq::shard
