// The sessions of one shard that have no connection and outlive it: in the order they went
// offline, so that eviction (max_offline_sessions) finds the oldest one in O(1), and by the time
// each one is next due (its session expiry, or an earlier delayed will), so that expiry finds
// the next due one in O(1) whatever each session's own interval.
//
// A session is named by its index in the owner's session table. Each index has one fixed link
// (previous, next, heap position, offline-since and due times) in a vector that grows with the
// table; the members with a due time also sit in an indexed binary min-heap on it, whose link
// records each one's position. So appending, removing any member and moving a due time are
// O(log n) for the heap and O(1) for the list, the oldest member and the member due first are
// read in O(1), and nothing is allocated per operation once the vectors have grown. An indexed
// heap (rather than one with lazy deletion) holds no stale entries: a client that reconnects
// often with a long expiry leaves nothing behind.
//
// Invariants: list members are ordered by since_ms, oldest first (PushBack requires a time no
// earlier than the newest member's: the owner passes its monotonic clock); size() is the number
// of members; an index is a member at most once; the heap holds exactly the members whose due
// time is not kNever, each parent due no later than its children.
//
// Memory: 32 bytes per session-table index ever used (the table's high-water mark), members or
// not, plus 4 bytes per member with a due time.
//
// Thread safety: none; one owner (the session's home shard).
#ifndef RINGMQ_SESSION_OFFLINE_LIST_H_
#define RINGMQ_SESSION_OFFLINE_LIST_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ringmq::session {

class OfflineList {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  // A due time that never comes: the member is not in the heap.
  static constexpr uint64_t kNever = UINT64_MAX;

  // Appends `index` (not a member) as the newest member, offline since `since_ms` and next due
  // at `due_ms`.
  void PushBack(uint32_t index, uint64_t since_ms, uint64_t due_ms = kNever);
  // Removes `index` from wherever it is. Returns false (and does nothing) if it is not a member.
  bool Remove(uint32_t index);
  // Moves member `index`'s due time, earlier or later (kNever: never due).
  void SetDue(uint32_t index, uint64_t due_ms);

  bool Contains(uint32_t index) const { return index < links_.size() && links_[index].member; }
  // The member offline the longest, or kNone when empty.
  uint32_t oldest() const { return head_; }
  // The member due first (ties in no particular order), or kNone when none is ever due.
  uint32_t next_due() const { return heap_.empty() ? kNone : heap_.front(); }
  // When member `index` went offline, and when it is next due.
  uint64_t since_ms(uint32_t index) const;
  uint64_t due_ms(uint32_t index) const;
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Link {
    uint32_t previous = kNone;       // towards the oldest
    uint32_t next = kNone;           // towards the newest
    uint32_t heap_position = kNone;  // in heap_; kNone: not due ever
    bool member = false;
    uint64_t since_ms = 0;
    uint64_t due_ms = kNever;
  };
  static_assert(sizeof(Link) == 32, "one link per session-table index");

  void HeapInsert(uint32_t index);
  void HeapErase(uint32_t index);
  // Restores the heap order around position `position` after its due time changed.
  void HeapFix(uint32_t position);
  // Move heap_[position] towards the root / the leaves while it is out of order.
  void SiftUp(uint32_t position);
  void SiftDown(uint32_t position);
  void HeapPlace(uint32_t position, uint32_t index);

  std::vector<Link> links_;     // by session index
  std::vector<uint32_t> heap_;  // member indexes, a binary min-heap on due_ms
  uint32_t head_ = kNone;       // oldest
  uint32_t tail_ = kNone;       // newest
  size_t size_ = 0;
};

}  // namespace ringmq::session

#endif  // RINGMQ_SESSION_OFFLINE_LIST_H_
