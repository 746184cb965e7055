// The ownership record of a persistent session in a JetStream key-value bucket (issue 16:
// ownership "kept in a JetStream key-value bucket"; docs/cluster.md, "Client ids across nodes",
// "Where a persistent session lives"). Pure: names, subjects, request bodies and the record's
// payload; no I/O.
//
// Why only persistent sessions: a key-value write costs nats-server 78–104 µs with three
// replicas (docs/cluster-reference.md), too much for every CONNECT; clean sessions end with
// their connection and have nothing to find. A node writes the record when a persistent session
// (clean session / Clean Start 0 with a session expiry) starts on it or moves to it, so the
// record names the node that holds the session; a node that accepts a persistent CONNECT for an
// id it holds no session for reads the record to learn whether another node holds one (then it
// waits for the state, bounded, before its CONNACK) or not (it answers at once).
//
// The bucket is an ordinary JetStream key-value bucket, readable with any NATS client
// (`nats kv get RINGMQ_SESSIONS <key>`): stream KV_<bucket>, subjects $KV.<bucket>.>, one value
// per key (max_msgs_per_subject 1), allow_direct (a read is served by any replica), file
// storage, min(3, servers known) replicas. Bucket: RINGMQ_SESSIONS, or RINGMQ_SESSIONS_<prefix>
// with every byte of the subject_prefix that is not [A-Za-z0-9_-] written as '_'.
//
// Key: the client id's bytes in lowercase hex (client ids may hold any byte; key-value keys only
// [-/_=.A-Za-z0-9]). Client ids over kRecordClientIdMax bytes get no record (the subject would
// come near nats-server's max_control_line): they behave as without the bucket (counted).
//
// Value (text): "1 <node> <claim key>" — format version, the owning node's name (a NATS token,
// config checks it), the key of the claim (cluster/claim.h) its session was bound with.
// ParseSessionRecord refuses anything else.
//
// Reading: $JS.API.STREAM.MSG.GET.KV_<bucket> with body {"last_by_subj":"$KV.<bucket>.<key>"},
// answered by the stream's leader: it has every write JetStream acknowledged, so a record a node
// wrote before the client moved is always seen. Not the direct get ($JS.API.DIRECT.GET, which
// allow_direct lets any replica answer): a replica that had not yet applied the write answered
// "no such key" and a client that moved got session present 0 (seen in CI on a loaded machine:
// the record was in the bucket, the reconnect's read said it was not). The reply is JSON:
// {"message":{"data":"<base64 of the value>",...}} or {"error":{"code":404,"err_code":10037}}
// (no such key); a status header instead (503: no responders, no JetStream) is "unknown" to the
// caller.
//
// Thread safety: pure functions.
#ifndef RINGMQ_CLUSTER_SESSION_RECORD_H_
#define RINGMQ_CLUSTER_SESSION_RECORD_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmq::cluster {

// Hex doubles the id; with "$KV.<bucket>." and "$JS.API.STREAM.MSG.GET.KV_<bucket>" this keeps a
// request's control line well under nats-server's default max_control_line (4096).
inline constexpr size_t kRecordClientIdMax = 1024;

struct SessionRecord {
  std::string_view node;
  uint64_t key = 0;
};

// RINGMQ_SESSIONS[_<prefix>] (see the file comment).
std::string SessionBucketName(std::string_view prefix);

// Whether `client_id` gets a record (1..kRecordClientIdMax bytes).
inline bool HasSessionRecord(std::string_view client_id) {
  return !client_id.empty() && client_id.size() <= kRecordClientIdMax;
}

// $KV.<bucket>.<hex of client id>; HasSessionRecord(client_id) must hold.
void AppendSessionRecordSubject(std::string_view bucket, std::string_view client_id,
                                std::string& out);

// $JS.API.STREAM.CREATE.KV_<bucket> and its body.
void AppendSessionBucketCreateSubject(std::string_view bucket, std::string& out);
void AppendSessionBucketCreate(std::string_view bucket, uint32_t replicas, std::string& out);

// $JS.API.STREAM.MSG.GET.KV_<bucket> and the body that asks for the record of `client_id`.
void AppendSessionRecordGetSubject(std::string_view bucket, std::string& out);
void AppendSessionRecordGet(std::string_view bucket, std::string_view client_id,
                            std::string& out);

// The answer to that request's JSON body.
enum class RecordRead : uint8_t {
  kFound,  // `record` holds the record (views into `scratch`)
  kNone,   // no such key (404), or a delete / purge marker (no value): no node holds a session
  kError,  // malformed JSON, another error, a value that is not a record
};
// A value is at most kRecordValueMax bytes ("1 ", a node name, a space, 20 digits); a longer one
// is kError without decoding.
inline constexpr size_t kRecordValueMax = 128;
RecordRead ParseSessionRecordReply(std::string_view json, std::string& scratch,
                                   SessionRecord& record);

void EncodeSessionRecord(const SessionRecord& record, std::string& out);
std::optional<SessionRecord> ParseSessionRecord(std::string_view payload);

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_SESSION_RECORD_H_
