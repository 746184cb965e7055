// Client-id claims between ringmq nodes (docs/cluster.md, "Client ids are unique cluster-wide";
// MQTT-3.1.4-2): the message a node publishes when it accepts a CONNECT, the order between two
// claims for one client id, and the clock that stamps them. Pure: no I/O, no shard state.
//
// Subject: $RINGMQ[.prefix].claim.<bucket>, bucket = ClaimBucket(client id) in [0, kClaimBuckets).
// Every node subscribes each bucket once (on one of its shards), so a claim costs one PUB and
// one delivery to each node, however many shards the nodes have.
//
// Payload (text, one line then the client id's bytes, which may hold any byte):
//   "1 <key> <node> <c|p>\n<client id>"
// 1 is the format version; <key> the claim's order key (decimal, ClaimClock); <node> the
// claiming node's name (printable ASCII, no space); c: the CONNECT had clean session / Clean Start
// 1, p: it did not. ParseClaim refuses anything else (a newer format is refused, not misread).
//
// Order: a claim is newer than another if its key is greater, or the keys are equal and its
// node name is greater (bytewise). Two claims from different nodes are never equal, so of two
// nodes that each hold a connection for the same id and each receive the other's claim, exactly
// one keeps its connection.
//
// Clock (a hybrid logical clock): Next(wall_us) returns max(wall_us, last + 1) and Observe(key)
// raises `last` to a received key. So a CONNECT that follows the delivery of another node's
// claim for the same id is newer than it whatever the wall clocks say (the node observed the
// claim on the shard that later stamps the new one: a client id's claims are stamped and
// observed on its home shard), and concurrent ones are ordered by wall time, then node name.
//
// Thread safety: functions are pure; a ClaimClock is owned by one shard.
#ifndef RINGMQ_CLUSTER_CLAIM_H_
#define RINGMQ_CLUSTER_CLAIM_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmq::cluster {

// The control subject kind of claims (control.h).
inline constexpr std::string_view kClaimKind = "claim";
// A power of two: a node whose shard count divides it receives each claim on the client id's
// home shard (the bucket's shard is bucket % shards, the home shard hash % shards) and needs
// no hop between its shards.
inline constexpr uint32_t kClaimBuckets = 256;
static_assert((kClaimBuckets & (kClaimBuckets - 1)) == 0);
// MQTT strings are at most 65535 bytes; node names are bounded by the config.
inline constexpr size_t kClaimClientIdMax = 65535;
inline constexpr size_t kClaimNodeMax = 255;

struct Claim {
  uint64_t key = 0;
  std::string_view node;
  bool clean_start = false;
  std::string_view client_id;
};

// The bucket of `client_id`: the same hash as connect::HomeShard, modulo kClaimBuckets.
uint32_t ClaimBucket(std::string_view client_id);

// Appends the subject of bucket `bucket` (control.h, kind "claim").
void AppendClaimSubject(std::string_view prefix, uint32_t bucket, std::string& out);

// Appends the payload of `claim` to `out`. The node must be 1 to kClaimNodeMax bytes of
// printable ASCII without space; the client id at most kClaimClientIdMax bytes.
void EncodeClaim(const Claim& claim, std::string& out);

// The claim in `payload` (views into it), or nullopt if it is not one (counted by the caller).
std::optional<Claim> ParseClaim(std::string_view payload);

// Whether a claim (key_a, node_a) is newer than (key_b, node_b) (see "Order").
inline bool ClaimIsNewer(uint64_t key_a, std::string_view node_a, uint64_t key_b,
                         std::string_view node_b) {
  return key_a != key_b ? key_a > key_b : node_a > node_b;
}

class ClaimClock {
 public:
  // The key of a new claim: greater than every key returned or observed before.
  uint64_t Next(uint64_t wall_us) {
    last_ = wall_us > last_ ? wall_us : last_ + 1;
    return last_;
  }
  void Observe(uint64_t key) {
    if (key > last_) last_ = key;
  }
  uint64_t last() const { return last_; }

 private:
  uint64_t last_ = 0;
};

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_CLAIM_H_
