// A shard's NATS queue subscriptions for its shared-subscription groups, in the cluster over
// NATS (docs/cluster.md, "Shared subscriptions"): a group "$share/{G}/{F}" (MQTT 5.0 §4.8.2,
// also accepted at 3.1.1) spans the cluster as one NATS queue group, so that NATS gives each
// message of a subject the group covers to ONE member connection across all servers (NATS
// client protocol, "SUB": "queue group"; the Concepts page "Queue Groups"), and the shard whose
// link got it gives it to one of its members of the group.
//
// Acquire is called once per (session, shared filter) a session of this shard comes to hold,
// Release once per (session, shared filter) it stops holding, with the share name G and the
// filter F of mqtt::ParseSharedFilter. Each (G, F) is reference counted: when its count goes
// 0 -> 1, the share link subscribes F's cover subjects (cluster::FilterToSubjects: one, or two
// for "x/#") in the queue group QueueName(G, F); 1 -> 0 unsubscribes them. The cover subjects of
// one filter are disjoint ("x.>" needs a token after x, "x" has none), so a message reaches a
// member link at most once per group; two groups on one link are two queue groups, each getting
// its own copy, which is what two groups must get.
//
// Queue names: QueueName(G, F) is G and F, each with every byte outside [A-Za-z0-9] written as
// '_' and two upper-case hex digits, joined by '-'. Neither encoded part holds a '-', and the
// encoding of each part is injective, so distinct (G, F) pairs get distinct names; the names are
// valid queue group tokens (no whitespace or control bytes). A NATS application may join a
// group under the same name. The subject prefix is not in the name: groups of two prefixes
// subscribe disjoint subjects already.
//
// At least once for groups (docs/cluster.md, "Shared subscriptions"): with each group's cover
// subjects the share link also subscribes $RINGMQ[.prefix].rtq.<queue> in the same queue group,
// where a publisher's node sends again what no member acknowledged, so that NATS picks a live
// member again; and each cover subject is announced to the other nodes (the observer's entries
// "q <queue> <subject>", cluster_acks.h), so that publishers know which groups must acknowledge
// a message.
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_SHARD_CLUSTER_SHARE_H_
#define RINGMQ_SHARD_CLUSTER_SHARE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cluster/nats_link.h"
#include "cluster/subject.h"
#include "common/assert.h"
#include "shard/cluster_interest.h"

namespace ringmq::shard {

// Appends the NATS queue group name of group `share_name` on `filter` to `out` (see above).
void AppendQueueName(std::string_view share_name, std::string_view filter, std::string& out);

class ClusterShares {
 public:
  // The group a queue subscription serves: views into this object, valid until the group's
  // Release that takes its count to 0.
  struct Group {
    std::string_view share_name;
    std::string_view filter;
    bool retransmit = false;  // the sid is the group's rtq subscription
  };

  // `link` (the share link) and `mapping` (its prefix) outlive this object.
  ClusterShares(cluster::NatsLink& link, const cluster::SubjectMapping& mapping)
      : link_(link), mapping_(mapping) {}

  void Acquire(std::string_view share_name, std::string_view filter);
  void Release(std::string_view share_name, std::string_view filter);

  // With the acks layer (router_cluster_acks.cc): `observer` is told "q <queue> <subject>" for
  // each cover subject subscribed (added) or unsubscribed, and each group's rtq subject is
  // subscribed beside its cover (for groups acquired from now on: set before any).
  void set_observer(ClusterInterest::Observer* observer) {
    RINGMQ_ASSERT(groups_.empty());
    observer_ = observer;
  }
  // fn("q <queue> <subject>") for every cover subject held (a snapshot of the announcements).
  template <typename Fn>
  void ForEachQueueSubject(Fn fn) const {
    for (const auto& [key, entry] : groups_) {
      for (const std::string& line : entry.lines) {
        if (!line.empty()) fn(std::string_view(line));
      }
    }
  }

  // The group of live queue subscription `sid` (a cover subject's or the group's retransmit
  // subject's); false if `sid` is not one (a copy that was in flight when its group went).
  bool Find(uint64_t sid, Group& group) const;

  // Groups with members on this shard, NATS queue subscriptions held for them, members of
  // group (G, F) on this shard (0: none).
  size_t group_count() const { return groups_.size(); }
  size_t subscription_count() const { return by_sid_.size() - retransmit_subscriptions_; }
  uint32_t count(std::string_view share_name, std::string_view filter) const;
  // Subscriptions the link refused (a queue name or subject over its control line bound); the
  // group then gets no messages from other nodes' publishers. Not retried.
  uint64_t subscribe_failures() const { return subscribe_failures_; }

 private:
  struct Entry {
    uint32_t count = 0;
    size_t share_name_size = 0;             // the key is share_name + '/' + filter
    std::array<uint64_t, 3> sids = {0, 0, 0};  // the cover subjects', rtq's; 0: none
    std::array<std::string, 2> lines;          // "q <queue> <subject>" per cover subscribed
  };
  using Map = std::map<std::string, Entry, std::less<>>;
  // The key of (G, F): "G/F", the shared filter without "$share/" (a share name holds no '/',
  // MQTT-4.8.2, so the first '/' splits it).
  std::string& KeyOf(std::string_view share_name, std::string_view filter);
  void SubscribeCover(Map::iterator it, std::string_view share_name, std::string_view filter);

  cluster::NatsLink& link_;
  const cluster::SubjectMapping& mapping_;
  ClusterInterest::Observer* observer_ = nullptr;
  Map groups_;                                                   // changes only with memberships
  std::unordered_map<uint64_t, const Map::value_type*> by_sid_;  // sid -> its group
  std::string key_scratch_;
  std::string subject_scratch_;
  std::string queue_scratch_;
  uint64_t subscribe_failures_ = 0;
  size_t retransmit_subscriptions_ = 0;  // rtq sids in by_sid_
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_CLUSTER_SHARE_H_
