// Retained messages (MQTT 3.1.1 §3.3.1.3): at most one per topic, matched against the filter
// of every new subscription.
//
// Read-mostly with the subscription trie's discipline: Set() calls are serialized among
// themselves by a mutex (a retained PUBLISH is rare next to ordinary ones, and ordinary
// PUBLISHes never touch this store; docs/performance.md measures the mutex when every message
// is retained); ForEachMatch() is lock-free and allocation-free for
// readers that are online in the EpochDomain. A replaced or deleted message, and every unlinked
// node, is released only after every reader passed a quiescent point, so a reader may take a
// reference (MessageRef::Share) to any message it is handed.
//
// Bounds (RetainedLimits): the number of stored messages and their bytes, charged as topic size
// plus payload size per message (the store's own nodes, ~100 bytes per topic level, come on top).
// Set() is exact about both, since it runs under the mutex:
//  - an empty payload deletes the topic's message: always done;
//  - a new topic is stored if one more message and its bytes fit; otherwise it is refused;
//  - a replacement is stored if the bytes fit once the old message's are given back (the count
//    is unchanged); otherwise it is refused and the old message is deleted as well, so the store
//    never serves a value older than the topic's last retained PUBLISH.
// A refused message is not stored (the caller still routes it to current subscribers).
//
// Ordering with the subscription trie. A publisher runs Set() then matches the trie; a
// subscriber inserts into the trie then runs ForEachMatch(). Release/acquire alone would let each
// miss the other's write (a store-load reordering: the subscriber reads the old retained message
// while the publisher's match misses the new subscription, and the new message reaches it
// neither way). Set() ends, and ForEachMatch() begins, with a seq_cst read-modify-write of one
// shared word, so that of two such pairs at least one sees the other's write: the later RMW reads
// the earlier one's value and synchronizes with it.
//
// Thread safety: Set() from any thread; ForEachMatch() from online readers of `epochs`. A match
// concurrent with Set() reports each topic's old or new message (see retained_store.cc). The
// destructor requires that no call is running; `epochs` must outlive the store, since what was
// retired before the destructor is still pending there.
#ifndef RINGMQ_RETAIN_RETAINED_STORE_H_
#define RINGMQ_RETAIN_RETAINED_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "common/mutex.h"
#include "concurrent/child_table.h"
#include "concurrent/epoch.h"
#include "message/message.h"

namespace ringmq::retain {

struct RetainedLimits {
  uint64_t max_messages = 1'000'000;
  uint64_t max_bytes = uint64_t{1} << 30;  // topic + payload bytes of the stored messages
};

enum class SetResult {
  kStored,   // a new topic, or a replacement
  kDeleted,  // empty payload: the topic's message (if any) deleted
  kRefused,  // over a bound: not stored (and a replaced topic's old message deleted)
};

class RetainedStore {
 public:
  explicit RetainedStore(concurrent::EpochDomain& epochs, RetainedLimits limits = {});
  ~RetainedStore();
  RetainedStore(const RetainedStore&) = delete;
  RetainedStore& operator=(const RetainedStore&) = delete;

  // Makes `message` the retained message of message->topic(), replacing any previous one; an
  // empty payload deletes the topic's retained message instead (MQTT-3.3.1-10, MQTT-3.3.1-11).
  // Within the bounds described above.
  // `version`, if given, receives the store version of this change: one counter for the whole
  // store, advanced under the mutex by every Set, so of two Sets of one topic the later has the
  // higher version (persistence orders retained records of different shards by it).
  SetResult Set(message::MessageRef message, uint64_t* version = nullptr)
      ABSL_LOCKS_EXCLUDED(mutex_);
  // Persistence: the next version is above `version` (recovery, before any Set).
  void RaiseVersion(uint64_t version) ABSL_LOCKS_EXCLUDED(mutex_);
  // Persistence (a shard's snapshot): calls fn for every stored message while holding the
  // mutex (no Set runs meanwhile) and returns a fresh version, above every version handed out
  // before and below every one handed out after: the stored messages are, as of that version,
  // their topics' values. O(stored topics).
  uint64_t ForEachStored(absl::FunctionRef<void(message::Message* message)> fn)
      ABSL_LOCKS_EXCLUDED(mutex_);

  // Calls fn for every retained message whose topic matches `filter` (a valid filter, §4.7;
  // topics starting with '$' are not matched by a leading wildcard, MQTT-4.7.2-1).
  void ForEachMatch(std::string_view filter,
                    absl::FunctionRef<void(message::Message* message)> fn) const;
  // The same, until fn returns false: the walk stops there (no further node is visited).
  void ForEachMatchWhile(std::string_view filter,
                         absl::FunctionRef<bool(message::Message* message)> fn) const;

  size_t size() const { return size_.load(std::memory_order_relaxed); }
  // Topic + payload (+ MQTT 5.0 property) bytes of the stored messages.
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  const RetainedLimits& limits() const { return limits_; }

  // What a message is charged against RetainedLimits::max_bytes: its topic, payload and MQTT
  // 5.0 properties (a 5.0 publisher could otherwise store any amount in properties).
  static uint64_t Charge(const message::Message& message) {
    return message.topic().size() + message.payload().size() + message.properties().size();
  }

 private:
  struct Node;

  // Set() without the ordering RMW; takes the mutex.
  SetResult SetUnderMutex(message::MessageRef message, uint64_t* version)
      ABSL_LOCKS_EXCLUDED(mutex_);
  // Writer side; see retained_store.cc for the pruning invariants, concurrent/child_table.h for the
  // child tables.
  Node* FindOrCreateChild(Node* parent, std::string_view level)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Node* FindChildForWrite(const Node* parent, std::string_view level) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Delete(std::string_view topic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Removes the message of `node` (not null) and prunes what is left empty.
  void Clear(Node* node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Prune(Node* node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Whether a message charged `charge` fits in place of `old` (null: a new topic).
  bool Fits(const message::Message* old, uint64_t charge) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  concurrent::EpochDomain& epochs_;
  Node* root_;
  const RetainedLimits limits_;
  // The ordering word above. Touched once per Set and per ForEachMatch, never per message.
  alignas(64) mutable std::atomic<uint64_t> order_{0};
  std::atomic<size_t> size_{0};     // written under mutex_, read anywhere
  std::atomic<uint64_t> bytes_{0};  // written under mutex_, read anywhere
  // Random per store, so that clients cannot choose topics that collide in the child tables.
  const concurrent::LevelHasher hasher_;
  Mutex mutex_;
  uint64_t version_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace ringmq::retain

#endif  // RINGMQ_RETAIN_RETAINED_STORE_H_
