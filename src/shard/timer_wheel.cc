#include "shard/timer_wheel.h"

#include "common/assert.h"

namespace ringmq::shard {

TimerWheel::TimerWheel(uint32_t tick_ms, uint32_t bucket_count, uint64_t now_ms)
    : tick_ms_(tick_ms),
      mask_(bucket_count - 1),
      current_tick_(now_ms / tick_ms),
      heads_(bucket_count, kNone) {
  RINGMQ_ASSERT(tick_ms > 0);
  RINGMQ_ASSERT(bucket_count > 0 && (bucket_count & (bucket_count - 1)) == 0);
  RINGMQ_ASSERT(bucket_count <= kHeadBit);
}

void TimerWheel::Schedule(uint32_t id, uint64_t deadline_ms) {
  RINGMQ_ASSERT(id < kHeadBit);
  while (id >= nodes_.size()) nodes_.emplace_back();
  if (nodes_[id].previous != kNone) Unlink(id);
  // File the entry under the tick that contains its deadline (rounding down). Advance visits
  // every tick up to and including now_ms's tick, re-visits that last tick on its next call,
  // and fires only entries whose deadline_ms <= now_ms, so an entry fires in the first Advance
  // whose now_ms >= deadline_ms and never earlier (rounding up would file a deadline inside a
  // tick under the next tick, and fire it up to a tick late). Never schedule into a tick
  // Advance has already passed.
  uint64_t tick = deadline_ms / tick_ms_;
  if (tick < current_tick_) tick = current_tick_;
  const auto bucket = static_cast<uint32_t>(tick & mask_);
  Node& node = nodes_[id];
  node.deadline_ms = deadline_ms;
  node.previous = kHeadBit | bucket;
  node.next = heads_[bucket];
  if (node.next != kNone) nodes_[node.next].previous = id;
  heads_[bucket] = id;
  ++size_;
}

void TimerWheel::Cancel(uint32_t id) {
  if (Scheduled(id)) Unlink(id);
}

bool TimerWheel::Scheduled(uint32_t id) const {
  return id < nodes_.size() && nodes_[id].previous != kNone;
}

void TimerWheel::Unlink(uint32_t id) {
  Node& node = nodes_[id];
  RINGMQ_ASSERT(node.previous != kNone);
  if ((node.previous & kHeadBit) == 0) {
    nodes_[node.previous].next = node.next;
  } else {
    heads_[node.previous & ~kHeadBit] = node.next;
  }
  // A successor of the first entry becomes first, and inherits the bucket tag.
  if (node.next != kNone) nodes_[node.next].previous = node.previous;
  node.previous = node.next = kNone;
  RINGMQ_ASSERT(size_ > 0);
  --size_;
}

void TimerWheel::Advance(uint64_t now_ms, absl::FunctionRef<void(uint32_t id)> fire) {
  const uint64_t now_tick = now_ms / tick_ms_;
  // Bounded: at most one revolution of buckets per call, even after a long stall.
  uint64_t last_tick = now_tick;
  if (last_tick - current_tick_ > mask_) current_tick_ = last_tick - mask_;
  for (; current_tick_ <= last_tick; ++current_tick_) {
    const auto bucket = static_cast<uint32_t>(current_tick_ & mask_);
    uint32_t id = heads_[bucket];
    while (id != kNone) {
      const uint32_t next = nodes_[id].next;
      if (nodes_[id].deadline_ms <= now_ms) {
        Unlink(id);
        fire(id);
      }
      id = next;
    }
  }
  current_tick_ = last_tick;
}

}  // namespace ringmq::shard
