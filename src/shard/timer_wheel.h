// A hashed timing wheel for per-connection deadlines (connect timeout, keepalive).
//
// Each entry is identified by a small integer id (the connection's slab slot, < 2^31) and sits
// in at most one bucket. Buckets are intrusive doubly linked lists threaded through a per-id
// node array, so Schedule/Cancel are O(1) and allocation-free once the node array covers the
// id. A node is 16 bytes (one per connection slot): the first node of a bucket stores its bucket
// in `previous` (tagged with kHeadBit) instead of a separate field. The array is chunked
// (StableVector), so growing it never copies it or leaves a freed old copy behind.
// A deadline further out than one revolution simply comes round again: Advance() reports an id
// only when its deadline has really passed. Callers re-check their own notion of "due" (e.g.
// last activity + keepalive) and reschedule lazily, so activity never touches the wheel.
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_SHARD_TIMER_WHEEL_H_
#define RINGMQ_SHARD_TIMER_WHEEL_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "common/stable_vector.h"

namespace ringmq::shard {

class TimerWheel {
 public:
  // `tick_ms`: resolution; `bucket_count`: buckets per revolution (power of two).
  TimerWheel(uint32_t tick_ms, uint32_t bucket_count, uint64_t now_ms);

  // (Re)schedules `id` to fire at `deadline_ms` (filed under the tick containing it; never fires
  // early, because Advance checks each entry's own deadline).
  void Schedule(uint32_t id, uint64_t deadline_ms);
  void Cancel(uint32_t id);
  bool Scheduled(uint32_t id) const;

  // Fires, in no particular order, every id whose deadline is <= now_ms. An id is unscheduled
  // before its callback runs, so the callback may Schedule it again.
  void Advance(uint64_t now_ms, absl::FunctionRef<void(uint32_t id)> fire);

  uint32_t tick_ms() const { return tick_ms_; }
  size_t size() const { return size_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint32_t kHeadBit = 1u << 31;
  struct Node {
    // kNone: not scheduled; kHeadBit | bucket: first in that bucket; else the entry before.
    uint32_t previous = kNone;
    uint32_t next = kNone;
    uint64_t deadline_ms = 0;
  };
  static_assert(sizeof(Node) == 16, "one node per connection slot");

  void Unlink(uint32_t id);

  uint32_t tick_ms_;
  uint32_t mask_;
  uint64_t current_tick_;  // every tick before this one has been processed
  std::vector<uint32_t> heads_;
  StableVector<Node, 256> nodes_;  // 4 KiB chunks
  size_t size_ = 0;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_TIMER_WHEEL_H_
