// A shard's part in client-id ownership across nodes (docs/cluster.md, "Client ids are unique
// cluster-wide"; cluster/claim.h for the claims themselves; router.h, "Client ids across
// nodes", for what the Router does with them).
//
// It holds: the NATS subscriptions of the claim buckets this shard receives (bucket b goes to
// shard b % shards, so each node receives each claim once) and of its session subject; the
// shard's ClaimClock; and, per
// session slot, the key of the claim made for the session's last connection on this node (0:
// none, e.g. a server-assigned id or a session recovered from disk: any claim from another
// node is newer).
//
// Invariants: SetKey is called for every session a CONNECT binds on this shard before any claim
// is judged against it; keys given by the clock only grow.
//
// Memory: 8 bytes per session slot ever used, plus kClaimBuckets / shards sids.
//
// Thread safety: owned by one shard's Router; used only on its thread.
#ifndef RINGMQ_SHARD_CLUSTER_OWNER_H_
#define RINGMQ_SHARD_CLUSTER_OWNER_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/claim.h"

namespace ringmq::shard {

// A claim received on a shard that is not its client id's home shard, on its way there through
// the mailbox (outbox.h, kClaim: the receiver owns and deletes it). Copies: the NATS receive
// buffer it was parsed from is gone by the time the home shard drains it.
struct ClaimRecord {
  uint64_t key = 0;
  std::string node;
  bool clean_start = false;
  std::string client_id;
  std::string reply;  // the NATS reply subject of the claim (empty: none)

  cluster::Claim view() const {
    return {.key = key, .node = node, .clean_start = clean_start, .client_id = client_id};
  }
};

class ClusterOwnership {
 public:
  // What a node holding a session for a client id does with another node's claim for it.
  enum class Verdict : uint8_t {
    kYield,  // the claim is newer: the session's connection is closed, the session ends here
    kKeep,   // the session's own claim is newer: it stays (and is claimed again if online)
  };

  // The claim buckets shard `shard` of `shards` subscribes: shard, shard + shards, ...
  static std::vector<uint32_t> BucketsOf(uint32_t shard, uint32_t shards) {
    std::vector<uint32_t> buckets;
    for (uint32_t bucket = shard; bucket < cluster::kClaimBuckets; bucket += shards) {
      buckets.push_back(bucket);
    }
    return buckets;
  }

  // `claim` against the session whose own claim was (own_key, own_node).
  static Verdict Judge(const cluster::Claim& claim, uint64_t own_key, std::string_view own_node) {
    return cluster::ClaimIsNewer(claim.key, claim.node, own_key, own_node) ? Verdict::kYield
                                                                           : Verdict::kKeep;
  }

  void AddSid(uint64_t sid) {
    sids_.insert(std::upper_bound(sids_.begin(), sids_.end(), sid), sid);
  }
  bool IsClaimSid(uint64_t sid) const {
    return std::binary_search(sids_.begin(), sids_.end(), sid);
  }
  size_t sid_count() const { return sids_.size(); }
  // The subscription of this shard's session subject (cluster/session_state.h), on which
  // other nodes send the state of sessions this shard claimed.
  void set_state_sid(uint64_t sid) { state_sid_ = sid; }
  bool IsStateSid(uint64_t sid) const { return sid == state_sid_; }

  void SetKey(uint32_t index, uint64_t key) {
    if (index >= keys_.size()) keys_.resize(size_t{index} + 1, 0);
    keys_[index] = key;
  }
  uint64_t key(uint32_t index) const { return index < keys_.size() ? keys_[index] : 0; }

  cluster::ClaimClock& clock() { return clock_; }

  // Reusable scratch for the claims and states this shard publishes.
  std::string subject;
  std::string payload;
  // $RINGMQ[.prefix].session.<node>.<shard>: the reply subject of this shard's claims for
  // sessions it means to resume.
  std::string state_subject;

 private:
  std::vector<uint64_t> sids_;  // sorted
  uint64_t state_sid_ = 0;
  std::vector<uint64_t> keys_;  // by session slot
  cluster::ClaimClock clock_;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_CLUSTER_OWNER_H_
