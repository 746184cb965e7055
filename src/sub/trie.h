// The subscription trie shared by all shards: topic filter -> subscribers, matched against the
// topic of every PUBLISH.
//
// Shape: one node per filter level. A node holds its exact-level children in a ChildMap
// (concurrent/child_table.h: an open-addressing hash table, so a parent with a million children
// costs O(1) per lookup; a lone child sits in an inline slot instead), dedicated pointers to its
// '+' and '#' children, and an immutable sorted list of the subscribers whose filter ends there.
// Subscribers are handles to a session on its home shard, never pointers.
//
// Cost of Match: O(levels) probes per trie branch that matches a prefix of the topic (exact, '+'
// and '#' children), plus O(k log r) to merge the k subscribers of r matching filters. Subscribe
// and Unsubscribe: O(levels) plus the copy-on-write of the filter's subscriber list, which is
// O(n) for a flat list (n <= 2 x kListChunk) and O(kListChunk + n / kListChunk) for a chunked
// one (one chunk and the chunk pointers).
//
// Thread safety
// - Match takes no lock and never retries (wait-free: its steps are bounded by the nodes that
//   match a prefix of the topic), and is allocation-free once the MatchResult is warm. It may run
//   on any thread that is an online reader of the EpochDomain given to the constructor,
//   concurrently with writers and other readers; each concurrent Match needs its own MatchResult.
//   It keeps no pointer into the trie after it returns, so the caller may pass a quiescent point
//   right after.
// - Subscribe and Unsubscribe may be called from any thread; they serialize on mutex_. They do
//   not need to be made by an epoch reader.
// - subscription_count() may be read from any thread (a relaxed snapshot).
// - The destructor requires that no Match and no writer is running. The EpochDomain must outlive
//   the trie (nodes retired before the destructor are still pending in it).
//
// Publication and reclamation
// Every shared pointer (inline child slot, '+'/'#' child, subscriber array) is written with
// release after its target is fully built and read with acquire, so a reader sees a complete
// object or the previous one. Nothing reachable by a reader is modified in place except the
// slots of child tables, whose transitions, resizing and retirement are those of ChildMap
// (concurrent/child_table.h, where the ordering argument is written out once). When a second exact
// child arrives, the table holding the first is published before the inline slot is cleared,
// and readers read the inline slot first, so a child that stays is always found in one of the
// two. A replaced subscriber list (a flat array, or a chunk spine and the chunks it no longer
// shares with the new version) and an unlinked node go to EpochDomain::Retire.
//
// Invariants (writer side, under mutex_)
// - A node's exact children are either in its one inline slot (at most one child, no table) or in
//   its ChildMap (one child or more); never both outside a writer's critical section. The
//   ChildMap's own invariants (load at most 1/2, table freed with its last child) are in
//   concurrent/child_table.h.
// - A node other than the root that has no subscribers and no children is unlinked and retired
//   at once (pruning), so the trie holds only nodes on the path of a live subscription.
// - Each subscriber list is sorted by session identity (shard, session, generation), without
//   duplicates, and never empty (an empty list is a null pointer). A flat list holds at most
//   2 x list_chunk subscribers; a chunked list more than list_chunk, in chunks of list_chunk / 4
//   to 2 x list_chunk.
//
// Match semantics (MQTT 3.1.1 §4.7)
// - '+' matches exactly one level, including an empty one; '#' matches its parent level and any
//   number of levels below ("sport/#" matches "sport", MQTT-4.7.1-2); levels compare byte-exactly;
//   '/' separates levels, so "/a" has an empty first level.
// - Topics starting with '$' are not matched by filters starting with '+' or '#' (MQTT-4.7.2-1).
// - A session whose subscriptions overlap (several filters match one topic) appears ONCE in the
//   result, with the highest QoS granted among those subscriptions. MQTT-3.3.5-1 allows either
//   one delivery per matching subscription or one delivery at the maximum QoS; one delivery
//   saves work per message and is what clients expect. Its acl_check is set only if it is set
//   on EVERY matching subscription: one subscription without it means the topic is readable
//   (its filter was found readable as a whole), so the check would pass anyway. Its options is
//   set if it is set on ANY matching subscription: the home shard then matches them all.
//
// Shared subscriptions ("$share/{ShareName}/{filter}", 5.0 §4.8.2; accepted at every protocol
// level, the caller strips the prefix with mqtt::ParseSharedFilter)
// - A filter node holds, beside its subscribers, an immutable list of groups sorted by share name
//   (copy-on-write, published and retired like a subscriber list). A group is stable for its
//   life: its members are a subscriber list of their own (the same copy-on-write lists, sorted
//   by identity) and it owns one round-robin cursor per cursor slot (one per shard), each on its
//   own cache line. A group is unlinked and retired with its last member.
// - Match adds, per matching group, ONE member chosen as ShareChoice says: the strategy gives a
//   starting member (round robin: the caller's own cursor, read and advanced with relaxed
//   atomics, so no shard contends with another on it; random: the MatchResult's generator; hash:
//   the publisher's key modulo the member count, so a publisher's messages stay with one member
//   while the membership is stable), then the first member from there, cyclically, that is not
//   flagged offline (Subscriber::offline, set by its home shard through SubscribeShared) and that
//   the caller's `eligible` accepts (e.g. its queue has room, for members on the caller's shard)
//   is taken. If none is eligible, a QoS 1/2 message goes to the strategy's starting member (a
//   persistent offline member keeps it, as the spec keeps a session's messages with it) and a
//   QoS 0 one to nobody; both count in shared_no_member().
// - The chosen member merges with the normal result like any subscription (one delivery per
//   session at the highest QoS, MQTT-3.3.5-1); its `shared` flag is set in the result if it was
//   chosen by a group, so the caller knows the delivery belongs to a group (re-routing).
// - Writers: SubscribeShared / UnsubscribeShared under mutex_, like Subscribe.
#ifndef RINGMQ_SUB_TRIE_H_
#define RINGMQ_SUB_TRIE_H_

#include <absl/base/thread_annotations.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "concurrent/child_table.h"
#include "concurrent/epoch.h"
#include "mqtt/topic.h"

namespace ringmq::sub {

// A session on its home shard. Identity is (shard, session, generation); qos is the QoS granted
// to this subscription; acl_check: the subscriber's ACL allows reading only some of the topics
// the filter can match, so each delivery through it checks the topic (auth::ReadScope::kSome).
// shared: in a MatchResult, the session was chosen by a shared-subscription group; in a group's
// member list, always set. offline: a group member whose session has no connection, skipped by
// the choice when another member can take the message (set by the member's home shard).
// options: the subscription has MQTT 5.0 delivery options (No Local, Retain As Published, a
// Subscription Identifier), so the home shard matches the topic against the session's own
// subscriptions before it queues a delivery (session::Session::MatchDelivery).
struct Subscriber {
  uint16_t shard;
  uint32_t session;
  uint32_t generation;
  uint8_t qos;
  // One byte of flags, so that the handle stays 16 bytes (the padding after qos is 3 bytes).
  bool acl_check : 1 = false;
  bool shared : 1 = false;
  bool offline : 1 = false;
  bool options : 1 = false;
};
static_assert(sizeof(Subscriber) == 16, "the flags live in the padding after qos");

inline bool SameSession(const Subscriber& a, const Subscriber& b) {
  return a.shard == b.shard && a.session == b.session && a.generation == b.generation;
}

// Orders by identity; qos and acl_check do not take part.
inline bool SessionLess(const Subscriber& a, const Subscriber& b) {
  if (a.shard != b.shard) {
    return a.shard < b.shard;
  }
  if (a.session != b.session) {
    return a.session < b.session;
  }
  return a.generation < b.generation;
}

// The matching subscribers of one home shard.
struct ShardSubscribers {
  uint16_t shard;
  std::span<const Subscriber> subscribers;
};

namespace trie_internal {
struct Node;
struct SubscriberArray;
struct Group;
struct GroupList;
}  // namespace trie_internal

// shared_subscription_strategy: how a group's member is chosen per message.
enum class ShareStrategy : uint8_t {
  kRoundRobin,  // the caller's cursor, one per cursor slot (shard)
  kRandom,      // the MatchResult's generator
  kHash,        // the publisher's key: the same publisher goes to the same member
};

// How Match chooses the member of each matching shared-subscription group (see above).
struct ShareChoice {
  ShareStrategy strategy = ShareStrategy::kRoundRobin;
  uint32_t cursor_slot = 0;    // the caller's round-robin cursor, < the trie's cursor_slots
  uint8_t qos = 0;             // the message's QoS: with no eligible member, QoS 0 goes nowhere
  uint64_t publisher_key = 0;  // kHash: a hash of the publisher's client id
  // Whether `member` can take the message now; null: every member not flagged offline can.
  // Called on the matching thread, during Match, at most once per member of a matching group.
  bool (*eligible)(void* context, const Subscriber& member) = nullptr;
  void* context = nullptr;
  // false: Match leaves the groups out (no member chosen, nothing counted): the cluster over
  // NATS lets a NATS queue group choose across nodes (docs/cluster.md, "Shared subscriptions").
  bool groups = true;
};

// Output of SubscriptionTrie::Match, and its scratch space. Keep one per shard and reuse it:
// once its vectors have grown to the largest result seen, Match allocates nothing.
class MatchResult {
 public:
  MatchResult() = default;
  MatchResult(const MatchResult&) = delete;
  MatchResult& operator=(const MatchResult&) = delete;

  // Each matching session once, with its highest granted QoS (and acl_check only if every
  // matching subscription has it), sorted by (shard, session, generation).
  std::span<const Subscriber> subscribers() const { return subscribers_; }
  // The same subscribers grouped by shard, in increasing shard order. The spans point into this
  // object and stay valid until the next Match into it.
  std::span<const ShardSubscribers> shards() const { return shards_; }
  size_t size() const { return subscribers_.size(); }
  bool empty() const { return subscribers_.empty(); }
  // Of the last Match: groups that chose a member, members passed over (offline or not
  // eligible), and groups where no member was eligible (see the header comment).
  uint32_t shared_picks() const { return shared_picks_; }
  uint32_t shared_skips() const { return shared_skips_; }
  uint32_t shared_no_member() const { return shared_no_member_; }

 private:
  friend class SubscriptionTrie;

  struct Frame {
    const trie_internal::Node* node;
    size_t depth;  // levels of the topic consumed on the way to node
  };
  // Depth-first search pushes at most two frames per popped frame, one level deeper, so the stack
  // holds at most one pending frame per depth plus two: kMaxTopicLevels + 2.
  static constexpr size_t kStackCapacity = mqtt::kMaxTopicLevels + 2;

  std::vector<Subscriber> subscribers_;
  std::vector<ShardSubscribers> shards_;
  // Scratch: where each matching filter's (sorted) subscriber array starts in subscribers_, and
  // the second buffer of the merge.
  std::vector<size_t> run_starts_;
  std::vector<Subscriber> merge_buffer_;
  std::array<std::string_view, mqtt::kMaxTopicLevels> levels_;
  std::array<uint64_t, mqtt::kMaxTopicLevels> level_hashes_;
  std::array<Frame, kStackCapacity> stack_;
  uint32_t shared_picks_ = 0;
  uint32_t shared_skips_ = 0;
  uint32_t shared_no_member_ = 0;
  uint64_t random_state_ = 0x9E3779B97F4A7C15;  // xorshift64 (ShareStrategy::kRandom)
};

class SubscriptionTrie {
 public:
  // A subscriber list longer than 2 x kListChunk is split into chunks of kListChunk to
  // 2 x kListChunk subscribers (and made flat again at kListChunk or fewer), so that changing the
  // list of a filter with n subscribers copies O(kListChunk + n / kListChunk) bytes, not O(n).
  static constexpr uint32_t kListChunk = 128;

  // Hash seed drawn at random, so that level hashes cannot be predicted by clients.
  // cursor_slots: round-robin cursors per shared-subscription group (ShareChoice::cursor_slot),
  // one per shard.
  explicit SubscriptionTrie(concurrent::EpochDomain& epoch, uint32_t cursor_slots = 1);
  // Fixed seed, for reproducible tests and fuzzing; a small list_chunk exercises chunked
  // subscriber lists with few subscribers.
  SubscriptionTrie(concurrent::EpochDomain& epoch, uint64_t hash_seed,
                   uint32_t list_chunk = kListChunk, uint32_t cursor_slots = 1);
  ~SubscriptionTrie();

  SubscriptionTrie(const SubscriptionTrie&) = delete;
  SubscriptionTrie& operator=(const SubscriptionTrie&) = delete;

  // Adds the subscription of `subscriber` (identity, QoS and acl_check) to `filter`, a filter the
  // caller has validated (mqtt::ValidateTopicFilter). An existing subscription of the same
  // session to the identical filter has its QoS and acl_check replaced (MQTT-3.8.4-3). Returns
  // true if the subscription is new.
  bool Subscribe(std::string_view filter, Subscriber subscriber) ABSL_LOCKS_EXCLUDED(mutex_);

  // Removes the subscription of the session `identity` (qos ignored) to exactly `filter`.
  // Returns true if there was one. Nodes left empty are pruned.
  bool Unsubscribe(std::string_view filter, Subscriber identity) ABSL_LOCKS_EXCLUDED(mutex_);

  // Adds `subscriber` to the group `share_name` of `filter` (both from mqtt::ParseSharedFilter),
  // creating the group; an existing membership of the session has its QoS, acl_check and
  // offline flag replaced. Returns true if the membership is new; `groups_delta`, if given, is
  // increased by 1 when the group was created.
  bool SubscribeShared(std::string_view share_name, std::string_view filter, Subscriber subscriber,
                       int* groups_delta = nullptr) ABSL_LOCKS_EXCLUDED(mutex_);
  // Removes the session's membership of the group; the group goes with its last member
  // (`groups_delta` decreased by 1). Returns true if there was one.
  bool UnsubscribeShared(std::string_view share_name, std::string_view filter, Subscriber identity,
                         int* groups_delta = nullptr) ABSL_LOCKS_EXCLUDED(mutex_);

  // Collects into `result` every session subscribed to a filter matching `topic`, a valid topic
  // name (mqtt::ValidateTopicName), and one member per matching shared-subscription group chosen
  // as `choice` says. Lock-free; see the thread-safety contract above.
  void Match(std::string_view topic, MatchResult& result, const ShareChoice& choice = {}) const;
  // As Match, but only the members chosen by the groups (no normal subscriber): for a message
  // that a group's member could not keep and that goes to another member.
  void MatchShared(std::string_view topic, MatchResult& result, const ShareChoice& choice) const;
  // The member that the one group `share_name` of exactly `filter` (a valid filter, not a topic)
  // chooses as `choice` says, into `result` (empty if there is no such group, or no eligible
  // member at QoS 0): for a message a NATS queue group gave to this node for that group. Lock-free
  // like Match; O(levels of filter).
  void MatchGroup(std::string_view share_name, std::string_view filter, MatchResult& result,
                  const ShareChoice& choice) const;

  size_t subscription_count() const { return subscription_count_.load(std::memory_order_relaxed); }
  // Shared-subscription groups in the trie (a relaxed snapshot).
  size_t group_count() const { return group_count_.load(std::memory_order_relaxed); }
  uint32_t cursor_slots() const { return cursor_slots_; }
  // Nodes in the trie, the root included (for tests and metrics).
  size_t node_count() const { return node_count_.load(std::memory_order_relaxed); }

 private:
  using Node = trie_internal::Node;
  using SubscriberArray = trie_internal::SubscriberArray;
  using Group = trie_internal::Group;
  using GroupList = trie_internal::GroupList;
  enum class ListChange { kNone, kAdded, kReplaced, kRemoved };

  ListChange UpdateSubscribers(std::atomic<const SubscriberArray*>& slot, Subscriber subscriber,
                               bool remove) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Group* FindGroup(const Node* node, std::string_view share_name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Publishes a copy of the node's group list with `group` added (or removed).
  void ChangeGroups(Node* node, Group* group, bool remove) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void MatchInto(std::string_view topic, MatchResult& result, const ShareChoice& choice,
                 bool groups_only) const;
  void AppendGroups(const Node* node, MatchResult& result, const ShareChoice& choice) const;
  void PickMember(const Group* group, MatchResult& result, const ShareChoice& choice) const;
  static void ResetResult(MatchResult& result);
  const SubscriberArray* NewList(std::span<const Subscriber> items) const;
  static std::vector<Subscriber> Concatenate(const SubscriberArray* list, uint32_t chunk,
                                             std::span<const Subscriber> items);
  const SubscriberArray* SpliceChunks(const SubscriberArray* list, uint32_t first, uint32_t last,
                                      std::span<const Subscriber> items, size_t size) const;

  Node* FindFilterNode(std::string_view filter, bool create) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Node* FindOrCreateChild(Node* parent, std::string_view level)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  Node* FindChildForWrite(const Node* parent, std::string_view level) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void InsertChild(Node* parent, Node* child, uint64_t hash) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void EraseChild(Node* parent, Node* child) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Prune(Node* node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void SplitTopic(std::string_view topic, MatchResult& result, size_t& level_count) const;
  static void AppendSubscribers(const Node* node, MatchResult& result);
  static void MergeRuns(MatchResult& result);
  static void Finish(MatchResult& result);

  concurrent::EpochDomain& epoch_;
  const uint32_t list_chunk_;
  const concurrent::LevelHasher hasher_;
  Node* const root_;
  std::atomic<size_t> subscription_count_{0};
  std::atomic<size_t> node_count_{1};
  std::atomic<size_t> group_count_{0};
  const uint32_t cursor_slots_;
  Mutex mutex_;
};

}  // namespace ringmq::sub

#endif  // RINGMQ_SUB_TRIE_H_
