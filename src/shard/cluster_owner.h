// A shard's part in client-id ownership across nodes (docs/cluster.md, "Client ids are unique
// cluster-wide"; cluster/claim.h for the claims themselves; router.h, "Client ids across
// nodes", for what the Router does with them).
//
// It holds: the NATS subscriptions of the claim groups this shard receives (group g goes to
// shard g % shards, so each node receives each batch once) and of its session subject; the
// shard's ClaimClock; the batch of claims not sent yet (below); and, per
// session slot, the key of the claim made for the session's last connection on this node (0:
// none, e.g. a server-assigned id or a session recovered from disk: any claim from another
// node is newer).
//
// Invariants: SetKey is called for every session a CONNECT binds on this shard before any claim
// is judged against it; keys given by the clock only grow.
//
// Batches (claims lane): claims are held up to ClaimBatchOptions::window_us after the first
// of a batch, and sent earlier when the batch reaches max_claims claims or max_bytes bytes
// (checked before a claim is added: a batch exceeds max_bytes only when one claim alone does),
// or at the end of the loop iteration in which a claim that resumes its session (`p`) joins it:
// that claimant's CONNACK waits for the session's state, which the holder sends only once the
// claim arrives (docs/cluster.md, "The delay batches add"), so only clean claims, whose delay
// no client waits for, wait for the window.
// One NATS message then carries many claims: the NATS messages per CONNECT fall with the
// batch size (what that saves nats-server: docs/performance.md, "Client-id claims in
// batches"). The buffer is reserved once, so adding a claim allocates nothing. The keys are stamped at the CONNECT, so holding a claim
// delays it and leaves the order alone.
//
// Memory: 8 bytes per session slot ever used, kClaimBuckets / shards sids, and the batch
// buffer (max_bytes, plus one client id beyond it at worst, kept for reuse).
//
// Thread safety: owned by one shard's Router; used only on its thread.
#ifndef RINGMQ_SHARD_CLUSTER_OWNER_H_
#define RINGMQ_SHARD_CLUSTER_OWNER_H_

#include <algorithm>
#include <cstdint>
#include <optional>
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

// Claim batching bounds ([cluster] claim_batch_us, claim_batch_max, claim_batch_bytes).
struct ClaimBatchOptions {
  uint64_t window_us = 20'000;  // 0: one batch per loop iteration
  size_t max_claims = 1024;
  size_t max_bytes = 64 * 1024;
};

class ClusterOwnership {
 public:
  // Why a batch was sent (counted per reason).
  enum class FlushReason : uint8_t { kWindow, kCount, kBytes, kResume };

  explicit ClusterOwnership(const ClaimBatchOptions& options = {}) : options_(options) {
    batch_.reserve(options_.max_bytes);
  }

  // What a node holding a session for a client id does with another node's claim for it.
  enum class Verdict : uint8_t {
    kYield,  // the claim is newer: the session's connection is closed, the session ends here
    kKeep,   // the session's own claim is newer: it stays (and is claimed again if online)
  };

  // The claim groups shard `shard` of `shards` subscribes: shard, shard + shards, ...
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

  // ---- The batch (see the header comment) ----
  const ClaimBatchOptions& batch_options() const { return options_; }
  // Whether the batch must go before a claim for `client_id_size` bytes of id is added to it
  // (kCount or kBytes), or nullopt.
  std::optional<FlushReason> FullBefore(size_t client_id_size) const {
    if (writer_.empty()) return std::nullopt;
    if (writer_.claims() >= options_.max_claims) return FlushReason::kCount;
    if (batch_.size() + cluster::ClaimRecordBytesMax(client_id_size) > options_.max_bytes) {
      return FlushReason::kBytes;
    }
    return std::nullopt;
  }
  // Adds a claim; the first of a batch starts its window at `now_us` (a monotonic clock).
  void Add(std::string_view node, uint64_t key, bool clean_start, std::string_view client_id,
           uint64_t now_us) {
    if (writer_.empty()) {
      writer_.Begin(node, batch_);
      due_us_ = now_us + options_.window_us;
      resume_ = false;
    }
    writer_.Add(key, clean_start, client_id, batch_);
    if (!clean_start) {
      resume_ = true;
      due_us_ = 0;  // due now: sent at the end of this loop iteration (see "Batches")
    }
  }
  bool batch_empty() const { return writer_.empty(); }
  size_t batch_claims() const { return writer_.claims(); }
  // When the batch's window ends (only if !batch_empty()).
  uint64_t batch_due_us() const { return due_us_; }
  // Whether a claim of the batch means to resume its session (the batch names a reply).
  bool batch_resumes() const { return resume_; }
  std::string_view batch_payload() const { return batch_; }
  // The batch was sent (or refused): the next Add starts another.
  void ClearBatch() {
    writer_ = {};
    batch_.clear();
  }

  // Reusable scratch: the subject of a batch or state, the payload of a state.
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
  ClaimBatchOptions options_;
  cluster::ClaimBatchWriter writer_;
  std::string batch_;
  uint64_t due_us_ = 0;
  bool resume_ = false;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_CLUSTER_OWNER_H_
