// A shard's NATS interest for the cluster over NATS (docs/cluster.md, "One NATS connection per
// shard" and "Overlapping filters on one link"): which NATS subjects its link subscribes, from
// the filters its sessions hold.
//
// Acquire is called once per (session, filter) a session of this shard comes to hold, Release
// once per (session, filter) it stops holding (UNSUBSCRIBE, session end, expiry, takeover), for
// non-shared filters that do not start with '$' (those are not carried across nodes). Each
// filter maps to at most two subjects (cluster::FilterToSubjects); each subject is reference
// counted, so the link holds one NATS subscription per distinct subject: SUB when its count
// goes 0 -> 1, UNSUB when it goes 1 -> 0.
//
// Overlap: NATS delivers one copy of a message per matching subscription of a connection (a.>
// and a.b both match a.b). KeepCopy keeps the copy whose sid is the lowest of the live sids
// whose subject matches the message's subject, so each message is delivered once per shard.
// Sids only grow, so a subscription added while copies are in flight never makes a second copy
// count; a copy whose sid is no longer live is dropped, so the next one is kept. The subjects
// are held in a token trie (SubjectIndex), so the check is one hash lookup of the sid plus a
// walk of the trie along the message's tokens: at each level, one hash lookup each for the
// literal child and the '*' child of each node reached, and the '>' child's sid. Its cost is
// O(levels x subjects that match a prefix of the message's subject), independent of how many
// subjects do not (before, it was an ordered-map lookup plus one subject match per live
// wildcard sid lower than the copy's).
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_SHARD_CLUSTER_INTEREST_H_
#define RINGMQ_SHARD_CLUSTER_INTEREST_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>


#include "cluster/nats_link.h"
#include "cluster/subject.h"

namespace ringmq::shard {

// The live subjects of one shard's link as a trie of NATS tokens, each subject's node
// holding its sid, for the lowest sid whose subject matches a message subject (NATS client
// protocol, "Wildcards": '*' one token, '>' one or more trailing tokens).
//
// Bounds: one node per distinct (subject prefix); subjects come from the shard's filters, so
// the trie is bounded by the subscriptions (max_subscriptions_per_client x sessions). Match
// walks levels iteratively (no recursion on the subject's depth) with two frontiers whose
// capacity is kept, so a warm Match allocates nothing.
class SubjectIndex {
 public:
  SubjectIndex();
  ~SubjectIndex();
  SubjectIndex(const SubjectIndex&) = delete;
  SubjectIndex& operator=(const SubjectIndex&) = delete;

  // `subject` subscribed under `sid` (sid > 0, one sid per subject).
  void Insert(std::string_view subject, uint64_t sid);
  // `subject` unsubscribed; empty nodes are pruned.
  void Erase(std::string_view subject);
  // The lowest sid whose subject matches `subject` (no wildcards), 0 if none.
  uint64_t LowestMatch(std::string_view subject) const;
  size_t node_count() const { return node_count_; }
  // Trie nodes visited by the last LowestMatch (for tests of its cost).
  size_t last_match_visits() const { return last_match_visits_; }

 private:
  struct Node;
  std::unique_ptr<Node> root_;
  size_t node_count_ = 1;
  mutable std::vector<const Node*> frontier_;
  mutable std::vector<const Node*> next_;
  mutable size_t last_match_visits_ = 0;
};

// Whether NATS subject `subject` (no wildcards) matches subscription subject `pattern` ('*' one
// token, '>' one or more trailing tokens; NATS client protocol, "Wildcards").
bool NatsSubjectMatches(std::string_view pattern, std::string_view subject);

// The next token of NATS subject `text` (up to '.'), removed from it (cluster_interest.cc and
// cluster_acks.cc).
inline std::string_view NextToken(std::string_view& text) {
  const size_t dot = text.find('.');
  const std::string_view token = text.substr(0, dot);
  text = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  return token;
}

class ClusterInterest {
 public:
  // `link` and `mapping` (its prefix) outlive this object.
  ClusterInterest(cluster::NatsLink& link, const cluster::SubjectMapping& mapping)
      : link_(link), mapping_(mapping) {}

  void Acquire(std::string_view filter);
  void Release(std::string_view filter);

  // The copy of a message on `subject` delivered for subscription `sid` is the one to keep.
  bool KeepCopy(uint64_t sid, std::string_view subject) const;

  // Distinct subjects subscribed (= the link's subscriptions made here).
  size_t subject_count() const { return subjects_.size(); }
  // Reference count of `subject` (0: not subscribed).
  uint32_t count(std::string_view subject) const;

  // Cluster acknowledgements (router_cluster_acks.h): told each subject subscribed (SUB sent)
  // and unsubscribed, to announce them to the other nodes.
  class Observer {
   public:
    virtual ~Observer() = default;
    virtual void OnSubjectChange(std::string_view subject, bool added) = 0;
  };
  void set_observer(Observer* observer) { observer_ = observer; }
  // fn(subject) for every subject subscribed (a snapshot of the announcements).
  template <typename Fn>
  void ForEachSubject(Fn fn) const {
    for (const auto& [subject, entry] : subjects_) fn(std::string_view(subject));
  }
  const SubjectIndex& index() const { return index_; }
  // Subscribe refused by the link (a subject it finds invalid); not retried.
  uint64_t subscribe_failures() const { return subscribe_failures_; }

 private:
  struct Entry {
    uint32_t count = 0;
    uint64_t sid = 0;
  };
  void AddSubject(std::string_view subject);
  void RemoveSubject(std::string_view subject);

  cluster::NatsLink& link_;
  const cluster::SubjectMapping& mapping_;
  std::map<std::string, Entry, std::less<>> subjects_;  // changes only with subscriptions
  std::unordered_set<uint64_t> live_sids_;
  SubjectIndex index_;  // live subjects and their sids, for KeepCopy
  std::string scratch_;
  uint64_t subscribe_failures_ = 0;
  Observer* observer_ = nullptr;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_CLUSTER_INTEREST_H_
