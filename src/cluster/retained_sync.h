// Retained messages cluster-wide (issue 16; docs/cluster.md "Retained messages"): one JetStream
// stream keeps the last retained message of every topic, every node publishes its retained
// PUBLISHes to it and one consumer per node applies the stream, in stream order, to the node's
// own retained store (which stays the cache every subscription reads). Sans-IO: it drives a
// NatsLink (publishes, subscriptions) and is told the messages and the time; the node's retained
// store is behind RetainedSyncSink.
//
// Subjects (cluster/control.h, kind "retained"; P = "$RINGMQ[.<subject_prefix>].retained"):
//   P.t.<subject of the topic>   the stream's subjects (P.t.>); the topic maps as in subject.h
//                                with P.t as its prefix. NATS applications may publish there.
//   P.r.<node>.<shard>.api.<n>   replies to this link's n-th JetStream API request
//   P.r.<node>.<shard>.ack       PubAcks of this link's publishes to the stream
//   P.d.<node>.<shard>.<g>       deliver subject of this link's g-th consumer
// The stream: RINGMQ_RETAINED, or RINGMQ_RETAINED_<prefix> with every byte of the prefix that
// is not [A-Za-z0-9_-] written as '_'; limits retention, max_msgs_per_subject 1, file storage,
// num_replicas = min(3, NATS servers the link knows: configured + discovered). Created when
// the consuming link is ready (idempotent for the same configuration). JetStream's
// "stream name already in use with a different configuration" (10058) is logged and the
// existing stream is used.
//
// Updates. Publish() sends the update with headers Ringmq-Node, Ringmq-Qos, Ringmq-Expires-At
// (only for a message with an MQTT 5.0 Message Expiry Interval: when it ends, in wall-clock
// Unix milliseconds, so a node that reads it later gives it the time left), the message's other
// MQTT 5.0 properties (Payload Format Indicator, Content Type, Response Topic, Correlation Data,
// User Properties in their order) as the fields mqtt5_headers.h writes for a live message (one
// encoding; its Message Expiry field is not written here: Ringmq-Expires-At carries it) and
// Nats-Msg-Id (<node>.<shard>.<options.start_id>.<n>: the stream drops a resend it already
// stored, within its duplicate window, 2 minutes by default) and the reply
// P.r.<node>.<shard>.ack.<n>. An update stays pending (a copy of topic, payload and property
// block) until its PubAck; on a JetStream error, a 503
// (no responders: e.g. the stream's leader is being elected) or no PubAck within
// ack_timeout_ms (the link lost the bytes with a connection: core NATS is at most once), it is
// sent again: retry_ms after the error (doubling per error, to 32 retry_ms), or when
// ack_timeout_ms ends (counted from when the link is ready, for an update held while it was
// not). A newer update of the same topic replaces a pending one, so a resend never overwrites
// this link's later update of the topic. At most
// pending_max updates wait; beyond that an update is published once without tracking (counted
// untracked). The stream's order decides between nodes: the update that reaches the stream last
// wins. An empty payload is the update that deletes the topic's retained message
// (MQTT-3.3.1-10/11): it stays in the stream as the subject's last message, so a node that reads
// the stream later deletes its stale copy too. A property block that needs more header fields
// than kPropertyFieldsMax is not published (counted properties_too_many; the retained message
// stays on this node only), as a live message with it is not forwarded.
//
// The consumer (only with options.consume; one per node): an ordered push consumer (see
// jetstream.h) — deliver_policy last_per_subject the first time (the last message of every
// topic, then every later update), then by_start_sequence from the last applied stream sequence
// + 1 after a reconnect, a consumer-sequence gap, a heartbeat silence of 3 idle_heartbeat_ms, or
// a failed request. Every stream message is applied (sink ApplyRetained) with the property
// block Mqtt5HeaderDecoder rebuilds from its header fields (so the retained message a 5.0
// subscriber of another node gets has the publisher's properties, MQTT-3.3.2-4, -15, -16, -17,
// -18, -20), this node's own included, in stream order: all nodes converge on the stream's last
// message per topic. A stream sequence at or below the last applied one is skipped. Flow-control
// requests and stalled-consumer heartbeats are answered. Each new consumer gets a new deliver
// subject and the old one is unsubscribed, so the server drops the old consumer after
// inactive_threshold.
//
// A malformed stream message: a header field that gives no valid property (bad base64, invalid
// UTF-8, a wildcard Response Topic, a second Content Type...) is left out, the rest of the
// message applied (counted properties_dropped: the message is still the topic's latest word,
// and skipping it would keep a stale copy); a header block that does not parse at all gives a
// message without properties, QoS 0 and no expiry (counted properties_dropped, once).
//
// Bounds: one API request in flight (its reply within request_timeout_ms, else a retry after
// retry_ms); the link's outbound bound limits publishes (refusals counted); what is applied is
// bounded by the retained store's own limits (the sink counts refusals).
//
// Thread safety: owned by one shard; used only on its thread (with that shard's NatsLink).
#ifndef RINGMQ_CLUSTER_RETAINED_SYNC_H_
#define RINGMQ_CLUSTER_RETAINED_SYNC_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "cluster/nats_link.h"

namespace ringmq::cluster {

struct RetainedSyncOptions {
  std::string_view prefix;     // the cluster's subject_prefix ("" for none)
  std::string_view node_name;  // a NATS token (config checks it)
  uint32_t shard = 0;
  bool consume = false;  // this link runs the node's consumer
  // 1 s: a consumer lost with its server (an R1 consumer lives on one server of the stream's
  // group) is noticed after 3 s of silence; the cost is one small message per second per node.
  uint64_t idle_heartbeat_ms = 1000;
  // JetStream answers API requests in milliseconds; none comes while its meta leader is being
  // elected (a NATS server died), and the next try goes to the new one.
  uint64_t request_timeout_ms = 2000;
  uint64_t retry_ms = 1000;
  uint64_t ack_timeout_ms = 5000;
  size_t pending_max = 1024;  // updates awaiting their PubAck
  uint64_t start_id = 0;      // distinguishes this process's Nats-Msg-Ids from a restart's
};

class RetainedSyncSink {
 public:
  virtual ~RetainedSyncSink() = default;
  // Makes (topic, payload, qos) the topic's retained message; an empty payload deletes it.
  // `expires_at_unix_ms`: 0, or when its MQTT 5.0 Message Expiry Interval ends (wall clock,
  // header Ringmq-Expires-At).
  // `properties`: the MQTT 5.0 property block (mqtt::ValidateProperties accepts it for a
  // PUBLISH; no Message Expiry Interval in it; empty for none), valid during the call.
  virtual void ApplyRetained(std::string_view topic, std::string_view payload, uint8_t qos,
                             uint64_t expires_at_unix_ms, std::span<const uint8_t> properties) = 0;
};

struct RetainedSyncCounters {
  uint64_t updates_out = 0;      // published to the stream (queued or held on the link)
  uint64_t publish_refused = 0;  // the link refused (outbound bound, max_payload)
  uint64_t uncarried = 0;        // topics no subject carries: kept on this node only
  uint64_t acks = 0;             // PubAcks
  uint64_t resent = 0;           // updates sent again (error, 503, no PubAck in time)
  uint64_t untracked = 0;        // published without a pending copy (pending_max reached)
  uint64_t stream_errors = 0;    // API errors, failed PubAcks, no responders, timeouts
  uint64_t updates_in = 0;       // stream messages applied
  uint64_t unmappable = 0;       // stream messages whose subject is no topic: skipped
  uint64_t duplicates = 0;       // stream sequences at or below the last applied: skipped
  uint64_t consumer_starts = 0;  // consumers created
  uint64_t gaps = 0;             // consumer-sequence gaps and heartbeat silences
  // retained5: MQTT 5.0 properties in the stream.
  uint64_t properties_too_many = 0;  // updates not published: too many header fields
  uint64_t properties_dropped = 0;   // stream header fields that gave no property (left out)
};

enum class RetainedSyncPhase : uint8_t {
  kIdle,               // nothing in flight; starts when the link is ready
  kStreamRequested,    // STREAM.CREATE sent
  kConsumerRequested,  // CONSUMER.CREATE sent
  kConsuming,          // the consumer delivers
  kBackoff,            // a request failed: wait retry_ms
};

class RetainedSync {
 public:
  // `link` outlives it. The reply subscription is made on the first Publish or consuming
  // OnTick (a node without retained traffic on a shard adds no subscription there).
  RetainedSync(NatsLink& link, const RetainedSyncOptions& options, RetainedSyncSink* sink);
  RetainedSync(const RetainedSync&) = delete;
  RetainedSync& operator=(const RetainedSync&) = delete;

  // Header fields a retained update's properties may use: the header block's bound less the
  // update's own four fields.
  static constexpr size_t kPropertyFieldsMax = nats::kHeaderFieldsMax - 4;

  // Publishes the retained update of `topic` (a valid topic name); kept until its PubAck.
  // `expires_at_unix_ms`: 0 or the wall-clock end of its Message Expiry Interval.
  // `properties`: its MQTT 5.0 property block (validated for a PUBLISH; empty for none); its
  // Message Expiry Interval, if any, is ignored (expires_at_unix_ms carries it). kInvalid when
  // the topic maps to no subject or the properties need more than kPropertyFieldsMax fields.
  PublishResult Publish(std::string_view topic, std::string_view payload, uint8_t qos,
                        uint64_t expires_at_unix_ms = 0, std::span<const uint8_t> properties = {});
  size_t pending_count() const { return pending_.size(); }
  // True (and handled) when `message` is for one of this object's subscriptions.
  bool OnMessage(const NatsMessage& message, uint64_t now_ms);
  // Call every loop iteration: starts, times out and restarts requests and the consumer.
  void OnTick(uint64_t now_ms);

  RetainedSyncPhase phase() const { return phase_; }
  uint64_t last_stream_sequence() const { return last_stream_sequence_; }
  const RetainedSyncCounters& counters() const { return counters_; }
  const std::string& stream_name() const { return stream_name_; }
  const std::string& stream_subjects() const { return stream_subjects_; }
  // Replicas asked for at the stream's creation: min(3, servers the link knows).
  uint32_t replicas() const;

 private:
  struct Pending {
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    uint64_t expires_at_unix_ms = 0;
    std::vector<uint8_t> properties;  // the MQTT 5.0 property block (empty for none)
    uint64_t resend_at_ms = 0;        // UINT64_MAX until sent on a ready link
    uint32_t failures = 0;            // errors and 503s so far
  };

  void EnsureSubscribed();
  PublishResult SendUpdate(uint64_t id, const Pending& update);
  void ResendDue(uint64_t now_ms);
  void SendStreamCreate(uint64_t now_ms);
  void SendConsumerCreate(uint64_t now_ms);
  bool SendRequest(std::string_view api_subject, uint64_t now_ms);
  void OnApiReply(const NatsMessage& message, uint64_t now_ms);
  void OnAck(const NatsMessage& message, uint64_t now_ms);
  void OnDelivery(const NatsMessage& message, uint64_t now_ms);
  void Apply(const NatsMessage& message);
  void Restart(uint64_t now_ms);
  void Fail(uint64_t now_ms, std::string_view what);

  NatsLink& link_;
  const RetainedSyncOptions options_;
  RetainedSyncSink* const sink_;
  std::string topic_prefix_;     // P.t
  std::string stream_subjects_;  // P.t.>
  std::string stream_name_;
  std::string reply_base_;    // P.r.<node>.<shard>
  std::string ack_base_;      // P.r.<node>.<shard>.ack
  std::string deliver_base_;  // P.d.<node>.<shard>
  std::string deliver_subject_;
  uint64_t reply_sid_ = 0;
  uint64_t deliver_sid_ = 0;  // 0: none
  uint64_t generation_ = 0;   // consumers created
  uint64_t request_id_ = 0;
  std::string request_reply_;  // the reply subject of the request in flight
  RetainedSyncPhase phase_ = RetainedSyncPhase::kIdle;
  uint64_t deadline_ms_ = 0;    // request timeout, retry time, or heartbeat silence
  uint64_t link_connects_ = 0;  // the link connection the phase belongs to
  uint64_t next_consumer_sequence_ = 1;
  uint64_t last_stream_sequence_ = 0;
  bool warned_config_ = false;
  bool failing_ = false;  // a request failed since the last consumer started
  std::string scratch_;   // subjects and request bodies
  std::string topic_;     // the topic of the update being applied
  std::string id_scratch_;
  std::string expires_scratch_;
  std::vector<nats::HeaderField> headers_;  // an update's header fields
  std::string property_text_;               // their encoded property values
  std::vector<uint8_t> property_block_;     // the block rebuilt from a stream message
  uint64_t next_update_id_ = 1;
  uint64_t now_ms_ = 0;                  // of the last OnTick
  uint64_t next_check_ms_ = UINT64_MAX;  // the earliest resend_at_ms (0: a held update)
  std::map<uint64_t, Pending> pending_;  // by update id: send order
  absl::flat_hash_map<std::string, uint64_t> pending_by_topic_;
  RetainedSyncCounters counters_;
};

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_RETAINED_SYNC_H_
