// Duplicate node names (docs/cluster.md, "Node names"): two ringmq nodes configured with the
// same [cluster] node_name would drop each other's messages as echoes (the Ringmq-Node header),
// share acknowledgement and claim subjects, and lose messages silently. Each node therefore
// announces itself on the control subject of its own name,
//
//   $RINGMQ[.<subject_prefix>].node.<node_name>     payload  "v1 <started_unix_ms> <instance>"
//
// where <instance> is a random 64-bit number (16 hex digits) drawn at start. Only nodes of that
// name subscribe it, so the subject carries nothing while names are distinct. A node that
// receives an announcement of another instance under its own name has a twin; of the two, the
// one started later (ties: the higher instance number) is the newcomer: it stops (an error
// log, exit status 1, as for a configuration error at start), and the established one, whose
// clients should not pay for an operator's mistake, logs an error, counts the conflict and
// answers with its own announcement so that the newcomer learns of it even when the
// newcomer's announcement was the first one sent.
//
// Thread safety: immutable after construction; Judge is a pure function of its argument.
#ifndef RINGMQ_CLUSTER_NODE_IDENTITY_H_
#define RINGMQ_CLUSTER_NODE_IDENTITY_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmq::cluster {

inline constexpr std::string_view kNodeAnnounceKind = "node";

class NodeIdentity {
 public:
  NodeIdentity(std::string_view prefix, std::string_view node_name, uint64_t started_unix_ms,
               uint64_t instance);

  // The control subject of this node's name, and this node's announcement.
  const std::string& subject() const { return subject_; }
  const std::string& payload() const { return payload_; }
  uint64_t instance() const { return instance_; }

  enum class Verdict : uint8_t {
    kSelf,           // this instance's own announcement
    kMalformed,      // not an announcement (ignored)
    kThisIsNewer,    // a twin started earlier: this node must stop
    kOtherIsNewer,   // a twin started later: it stops; this node reports and answers
  };
  struct Judgement {
    Verdict verdict = Verdict::kMalformed;
    uint64_t other_started_unix_ms = 0;
    uint64_t other_instance = 0;
  };
  Judgement Judge(std::string_view payload) const;

 private:
  std::string subject_;
  std::string payload_;
  uint64_t started_unix_ms_;
  uint64_t instance_;
};

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_NODE_IDENTITY_H_
