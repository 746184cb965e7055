// Client-id claims between ringmq nodes (docs/cluster.md, "Client ids are unique cluster-wide";
// MQTT-3.1.4-2): the batches of claims a shard publishes when it accepts CONNECTs, the order
// between two claims for one client id, and the clock that stamps them. Pure: no I/O, no shard
// state.
//
// Subject: $RINGMQ[.prefix].claims.<group>, group = the publishing shard's index mod
// kClaimBuckets. Every node subscribes each group once (group g on its shard g % shards), so a
// batch costs one PUB and one delivery to each node, however many shards the nodes have. A
// shard claims only the client ids homed on it (hash % shards == its index), so when two nodes
// have the same shard count every claim of a batch lands on its home shard on the receiver
// (the common case: no mailbox hop); otherwise the receiving shard passes each claim whose home
// is another shard through the mailbox. One group per publishing shard, rather than one per
// client-id bucket, is what lets a batch carry the claims of many ids: with one subject per
// bucket a batch would hold the claims of 1/256 of the ids only.
//
// Payload (format 2, a batch; text headers, the client ids' bytes as they are):
//   "2 <node>\n" then, per claim, "<key> <c|p> <length>\n<client id>"
// 2 is the format version; <node> the claiming node's name (printable ASCII, no space), once
// per batch; per claim <key> its order key (decimal, ClaimClock), c: the CONNECT had clean
// session / Clean Start 1, p: it did not, <length> the client id's byte count (decimal, at
// most kClaimClientIdMax) and then its bytes, which may hold any byte. At least one claim.
// ClaimBatchReader refuses anything else, whole (a newer format is refused, not misread).
// The batch's NATS reply subject is the publishing shard's session subject if any claim in it
// is a `p` one (router.h, "Client ids across nodes"), else none.
//
// Order: a claim is newer than another if its key is greater, or the keys are equal and its
// node name is greater (bytewise). Two claims from different nodes are never equal, so of two
// nodes that each hold a connection for the same id and each receive the other's claim, exactly
// one keeps its connection. A claim's key is stamped when its CONNECT is bound, not when its
// batch leaves: holding it in a batch delays it, it does not change the order.
//
// Clock (a hybrid logical clock): Next(wall_us) returns max(wall_us, last + 1) and Observe(key)
// raises `last` to a received key. So a CONNECT that follows the delivery of another node's
// claim for the same id is newer than it whatever the wall clocks say (the node observed the
// claim on the shard that later stamps the new one: a client id's claims are stamped and
// observed on its home shard), and concurrent ones are ordered by wall time, then node name.
//
// Thread safety: functions are pure; a ClaimClock or ClaimBatchWriter is owned by one shard.
#ifndef RINGMQ_CLUSTER_CLAIM_H_
#define RINGMQ_CLUSTER_CLAIM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmq::cluster {

// The control subject kind of claim batches (control.h).
inline constexpr std::string_view kClaimKind = "claims";
// The number of claim subjects (groups). A power of two; a node subscribes every one.
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

// The group of the claims shard `shard` publishes.
inline uint32_t ClaimGroupOf(uint32_t shard) { return shard % kClaimBuckets; }

// Appends the subject of group `group` (control.h, kind "claims").
void AppendClaimSubject(std::string_view prefix, uint32_t group, std::string& out);

// The bytes a claim for `client_id_size` bytes of client id adds to a batch, at most.
inline constexpr size_t ClaimRecordBytesMax(size_t client_id_size) {
  return 20 + 3 + 1 + 5 + 1 + client_id_size;  // key, " c ", length, '\n', id
}

// Builds one batch payload in a caller's string (reused: no allocation once it has grown to
// the batch bound). Begin, then Add per claim; empty() until the first Add.
class ClaimBatchWriter {
 public:
  // Clears `out` and writes the header. The node must be 1 to kClaimNodeMax bytes of printable
  // ASCII without space.
  void Begin(std::string_view node, std::string& out);
  // Appends a claim; its node is the batch's. The client id must be at most kClaimClientIdMax
  // bytes.
  void Add(uint64_t key, bool clean_start, std::string_view client_id, std::string& out);
  size_t claims() const { return claims_; }
  bool empty() const { return claims_ == 0; }

 private:
  size_t claims_ = 0;
};

// Reads a batch payload: Open checks all of it (nothing is taken from a batch that is not
// well formed, whole); then Next gives its claims in order (views into the payload).
class ClaimBatchReader {
 public:
  // False if `payload` is not a well-formed batch of at least one claim.
  bool Open(std::string_view payload);
  // The next claim into `claim`, or false at the end. Only after Open returned true.
  bool Next(Claim& claim);
  std::string_view node() const { return node_; }

 private:
  // Parses one record at the front of `rest` into `claim`; false if malformed.
  static bool ReadRecord(std::string_view& rest, Claim& claim);

  std::string_view node_;
  std::string_view rest_;
};

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
