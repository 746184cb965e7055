// The persistent sessions of one shard that have no connection, in the order they went offline,
// so that expiry (persistent_session_expiry) and eviction (max_offline_sessions) find the
// oldest one in O(1) without scanning every session.
//
// A session is named by its index in the owner's session table. The list is intrusive in the
// sense that it allocates nothing per operation: each index has one fixed link (previous, next,
// offline-since time) in a vector that grows with the table, so appending, removing any member
// and reading the oldest are O(1).
//
// Invariants: members are ordered by since_ms, oldest first (PushBack requires a time no earlier
// than the newest member's: the owner passes its monotonic clock); size() is the number of
// members; an index is a member at most once.
//
// Memory: 24 bytes per session-table index ever used (the table's high-water mark), members or
// not.
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

  // Appends `index` (not a member) as the newest member, offline since `since_ms`.
  void PushBack(uint32_t index, uint64_t since_ms);
  // Removes `index` from wherever it is. Returns false (and does nothing) if it is not a member.
  bool Remove(uint32_t index);

  bool Contains(uint32_t index) const { return index < links_.size() && links_[index].member; }
  // The member offline the longest, or kNone when empty.
  uint32_t oldest() const { return head_; }
  // When member `index` went offline.
  uint64_t since_ms(uint32_t index) const;
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Link {
    uint32_t previous = kNone;  // towards the oldest
    uint32_t next = kNone;      // towards the newest
    uint64_t since_ms = 0;
    bool member = false;
  };

  std::vector<Link> links_;  // by session index
  uint32_t head_ = kNone;    // oldest
  uint32_t tail_ = kNone;    // newest
  size_t size_ = 0;
};

}  // namespace ringmq::session

#endif  // RINGMQ_SESSION_OFFLINE_LIST_H_
