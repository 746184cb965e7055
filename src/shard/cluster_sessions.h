// A shard's part in persistent sessions across nodes (session lane; docs/cluster.md "Where a
// persistent session lives"; cluster/session_record.h for the key-value record itself;
// router_cluster_session.cc for what the Router does with it).
//
// It holds: the state of the node's key-value bucket as this shard knows it (created by a
// request of its own: idempotent for the same configuration), the NATS subscription of this
// shard's reply inbox ($RINGMQ[.prefix].kv.<node>.<shard>.>), and the CONNECTs whose CONNACK
// waits for a session's state: each is a paused connection (its later packets wait, nothing is
// sent to it) beside a session created for it and not yet bound to it, so that the state another
// node sends merges into that session before the client sees anything.
//
// Bounds: at most kWaitsMax waiting CONNECTs (one more is answered at once, as without the
// bucket: counted not_held); each waits at most session_wait_ms. Lookups are linear scans over
// the waits: they exist only for persistent CONNECTs with no session on this node, for the
// length of a record read and, at most, the wait.
//
// Invariants: a Wait's connection is open (OnConnectionClosed removes its Wait first) and its
// session is the one created for it unless `generation` says otherwise (then it is closed, not
// bound); a Wait is removed exactly once (completed, timed out, or abandoned).
//
// Thread safety: owned by one shard's Router; used only on its thread.
#ifndef RINGMQ_SHARD_CLUSTER_SESSIONS_H_
#define RINGMQ_SHARD_CLUSTER_SESSIONS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "net/connection.h"
#include "session/session.h"

namespace ringmq::shard {

// What binding a CONNECT to its session needs from the CONNECT, copied out of it (a held
// CONNECT is bound after its receive buffer is gone).
struct BindTerms {
  bool clean_session = true;
  session::ClientTerms client;
  std::unique_ptr<session::Will> will;
  std::optional<std::string> user_name;  // filled only with an ACL (acl_file)
  uint32_t expiry_s = 0;                 // the session's, after max_session_expiry
  uint32_t requested_expiry_s = 0;       // the client's
};

class ClusterSessions {
 public:
  static constexpr size_t kWaitsMax = 1024;

  enum class Bucket : uint8_t {
    kUnknown,    // not asked yet (or asked again after a failure: retry_at_ms)
    kRequested,  // the create request is in flight
    kReady,      // created or found: records are read and written
  };

  struct Wait {
    net::Connection* connection = nullptr;
    uint32_t index = 0;       // the session created for it
    uint32_t generation = 0;  // of that slot when it was created
    uint64_t request = 0;     // the number of its record read; 0 once answered
    uint64_t deadline_ms = 0;
    BindTerms terms;
  };

  // The wait of `connection` / of session slot `index` / of record read `request`; null if
  // none.
  Wait* FindByConnection(const net::Connection* connection) {
    for (Wait& wait : waits_) {
      if (wait.connection == connection) return &wait;
    }
    return nullptr;
  }
  Wait* FindByIndex(uint32_t index) {
    for (Wait& wait : waits_) {
      if (wait.index == index) return &wait;
    }
    return nullptr;
  }
  Wait* FindByRequest(uint64_t request) {
    for (Wait& wait : waits_) {
      if (wait.request == request) return &wait;
    }
    return nullptr;
  }
  // The first wait whose deadline is at or before `now_ms`; null if none.
  Wait* FindDue(uint64_t now_ms) {
    for (Wait& wait : waits_) {
      if (wait.deadline_ms <= now_ms) return &wait;
    }
    return nullptr;
  }
  bool full() const { return waits_.size() >= kWaitsMax; }
  bool empty() const { return waits_.empty(); }
  size_t size() const { return waits_.size(); }
  Wait& Add(Wait wait) {
    waits_.push_back(std::move(wait));
    return waits_.back();
  }
  // Moves `wait` (an element of this table) out and removes it.
  Wait Take(Wait* wait) {
    Wait taken = std::move(*wait);
    if (wait != &waits_.back()) *wait = std::move(waits_.back());
    waits_.pop_back();
    return taken;
  }

  uint64_t NextRequest() { return ++last_request_; }

  Bucket bucket = Bucket::kUnknown;
  uint64_t bucket_deadline_ms = 0;  // kRequested: give up then; kUnknown: do not ask before
  uint64_t bucket_retry_ms = 0;     // the pause after the last failure (0: none failed yet)
  bool bucket_failure_logged = false;
  uint64_t inbox_sid = 0;  // 0: not subscribed yet
  std::string bucket_name;  // RINGMQ_SESSIONS[_<prefix>]
  std::string record_scratch;  // a read record's decoded value (cluster::kRecordValueMax)
  // The stream sequence of this node's record of each persistent session whose write
  // JetStream acknowledged, by session index (with the session's generation): the session's
  // end deletes its record only if it is still that one (compare-and-set; a newer record
  // another node wrote stays). At most one entry per live persistent session of the shard.
  struct Recorded {
    uint32_t generation = 0;
    uint64_t seq = 0;
  };
  absl::flat_hash_map<uint32_t, Recorded> recorded;
  std::string inbox;        // $RINGMQ[.prefix].kv.<node>.<shard>
  uint64_t wait_ms = 0;     // [cluster] session_wait_ms
  // Reusable scratch for subjects and payloads.
  std::string subject;
  std::string payload;

 private:
  std::vector<Wait> waits_;
  uint64_t last_request_ = 0;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_CLUSTER_SESSIONS_H_
