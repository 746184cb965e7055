// Retained messages (MQTT 3.1.1 §3.3.1.3): at most one per topic, matched against the filter
// of every new subscription.
//
// Read-mostly with the subscription trie's discipline: Set() calls are serialized among
// themselves by a mutex (a retained PUBLISH is rare next to ordinary ones, and ordinary
// PUBLISHes never touch this store); ForEachMatch() is lock-free and allocation-free for
// readers that are online in the EpochDomain. A replaced or deleted message, and every unlinked
// node, is released only after every reader passed a quiescent point, so a reader may take a
// reference (MessageRef::Share) to any message it is handed.
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
#include "message/message.h"
#include "sub/child_table.h"
#include "sub/epoch.h"

namespace ringmq::retain {

class RetainedStore {
 public:
  explicit RetainedStore(sub::EpochDomain& epochs);
  ~RetainedStore();
  RetainedStore(const RetainedStore&) = delete;
  RetainedStore& operator=(const RetainedStore&) = delete;

  // Makes `message` the retained message of message->topic(), replacing any previous one; an
  // empty payload deletes the topic's retained message instead (MQTT-3.3.1-10, MQTT-3.3.1-11).
  void Set(message::MessageRef message) ABSL_LOCKS_EXCLUDED(mutex_);

  // Calls fn for every retained message whose topic matches `filter` (a valid filter, §4.7;
  // topics starting with '$' are not matched by a leading wildcard, MQTT-4.7.2-1).
  void ForEachMatch(std::string_view filter,
                    absl::FunctionRef<void(message::Message* message)> fn) const;

  size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  struct Node;

  // Writer side; see retained_store.cc for the pruning invariants, sub/child_table.h for the
  // child tables.
  Node* FindOrCreateChild(Node* parent, std::string_view level)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Node* FindChildForWrite(const Node* parent, std::string_view level) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Delete(std::string_view topic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Prune(Node* node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  sub::EpochDomain& epochs_;
  Node* root_;
  std::atomic<size_t> size_{0};
  // Random per store, so that clients cannot choose topics that collide in the child tables.
  const sub::LevelHasher hasher_;
  Mutex mutex_;
};

}  // namespace ringmq::retain

#endif  // RINGMQ_RETAIN_RETAINED_STORE_H_
