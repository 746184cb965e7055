// The small part of the NATS JetStream API that ringmq's cluster uses, without I/O (sans-IO):
// request bodies appended to a caller's buffer, and parsers of replies and delivery metadata
// that return views into their input.
//
// Sources (docs.nats.io): "JetStream wire API reference" (reference / reference-protocols /
// nats_api_reference: the $JS.API.<...> request subjects, JSON bodies, the "error" object with
// code / err_code / description), "Streams" (configuration: subjects, max_msgs_per_subject,
// num_replicas, storage, discard), "Consumers" (deliver_policy last_per_subject and
// by_start_sequence with opt_start_seq, ack_policy none, flow_control, idle_heartbeat in
// nanoseconds) and the ordered consumer as the NATS client libraries build it (an ephemeral push
// consumer without acks that the client recreates from the next stream sequence after a gap),
// the PubAck ({"stream":..., "seq":...}), and the reply subject of a pushed message
// ($JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>, or the
// longer form with domain and account hash).
//
// Bounds: ParseApiReply reads at most kJsonMaxDepth levels of nesting with the strict JSON
// reader (json_reader.h), skipping what it does not need without recursion; any input (bytes
// from the network) is safe.
//
// Thread safety: pure functions.
#ifndef RINGMQ_CLUSTER_JETSTREAM_H_
#define RINGMQ_CLUSTER_JETSTREAM_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ringmq::cluster::jetstream {

inline constexpr int kJsonMaxDepth = 16;
// JetStream's "stream name already in use with a different configuration" (err_code).
inline constexpr int64_t kErrStreamNameInUse = 10058;
// STREAM.MSG.GET: no message for the sequence or subject asked for.
inline constexpr int64_t kErrNoMessageFound = 10037;
// A publish with Nats-Expected-Last-Subject-Sequence that did not match.
inline constexpr int64_t kErrWrongLastSequence = 10071;

// Stream and consumer names: 1..kNameMaxBytes bytes of [A-Za-z0-9_-] (the JetStream docs ask
// for names without '.', '*', '>', whitespace and path separators; this is stricter).
inline constexpr size_t kNameMaxBytes = 255;
bool IsValidName(std::string_view name);

struct StreamConfig {
  std::string_view name;
  std::string_view subject;  // one subject (wildcards allowed)
  uint32_t replicas = 1;
  uint64_t max_msgs_per_subject = 1;
  bool file_storage = true;
};
// $JS.API.STREAM.CREATE.<name> body. `config.name` must be valid (IsValidName).
void AppendStreamCreate(const StreamConfig& config, std::string& out);

struct OrderedConsumerConfig {
  std::string_view stream;
  std::string_view deliver_subject;
  // Empty: the whole stream (nats-server 2.9 refuses last_per_subject without a filter).
  std::string_view filter_subject;
  // 0: deliver_policy last_per_subject (the last message of every subject, then what follows);
  // otherwise by_start_sequence from this stream sequence.
  uint64_t start_sequence = 0;
  uint64_t idle_heartbeat_ms = 5000;
  uint64_t inactive_threshold_ms = 60'000;  // the server deletes it after this long unwatched
};
// $JS.API.CONSUMER.CREATE.<stream> body: an ephemeral push consumer as ordered consumers are
// (ack_policy none, max_deliver 1, flow_control, memory storage, one replica).
void AppendOrderedConsumerCreate(const OrderedConsumerConfig& config, std::string& out);

// What ringmq reads from a JetStream API reply or a PubAck. Views into the parsed text.
struct ApiReply {
  bool has_error = false;
  int64_t error_code = 0;              // error.code (an HTTP-like status)
  int64_t error_err_code = 0;          // error.err_code (JetStream's own number)
  std::string_view error_description;  // raw JSON string contents (escapes kept)
  std::string_view stream;             // PubAck "stream"
  uint64_t seq = 0;                    // PubAck "seq"
  std::string_view name;               // consumer create: the consumer's "name"
  bool has_message = false;            // STREAM.MSG.GET: a "message" object
  std::string_view message_data;       // its "data": base64 of the payload (none: empty)
};
// Fails on malformed JSON, a non-object, nesting over kJsonMaxDepth, or a known field of the
// wrong type.
absl::StatusOr<ApiReply> ParseApiReply(std::string_view json);

// The metadata in the reply subject of a message a push consumer delivered.
struct Delivery {
  std::string_view stream;
  std::string_view consumer;
  uint64_t delivered = 0;  // delivery count of this message (1 for an ordered consumer)
  uint64_t stream_sequence = 0;
  uint64_t consumer_sequence = 0;
  uint64_t pending = 0;  // messages left to deliver after this one
};
// nullopt when `reply` is not a $JS.ACK subject of 9 tokens (v1) or 12 tokens (v2: domain and
// account hash after $JS.ACK, a random token at the end) with decimal numbers where they belong.
std::optional<Delivery> ParseDelivery(std::string_view reply);

// A status message's kind on a push consumer's deliver subject (header status 100).
enum class StatusKind : uint8_t {
  kNone,         // not a status message: a stream message
  kHeartbeat,    // "100 Idle Heartbeat"
  kFlowControl,  // "100 FlowControl Request": answer with an empty message to its reply
  kOther,        // any other status (404, 408, 409, ...)
};
StatusKind StatusOf(int status, std::string_view description);

}  // namespace ringmq::cluster::jetstream

#endif  // RINGMQ_CLUSTER_JETSTREAM_H_
