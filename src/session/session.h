// One MQTT session's delivery state: the outbound queue, QoS 1/2 in-flight windows in both
// directions, the will, and the subscriptions it holds. Sans-IO: the shard binds it to a
// connection and asks it for bytes to send.
//
// A session lives on its home shard (hash(client_id) % shards) and is touched only there.
// Outbound messages are references to immutable shared Messages; bytes are produced only when
// the connection has room (WriteOutput), so a slow subscriber's backlog is a bounded queue of
// references, never a growing byte buffer.
//
// QoS 1 (server -> client): PUBLISH kept in flight until PUBACK; QoS 2: PUBLISH until PUBREC,
// then PUBREL until PUBCOMP. At most `max_inflight` messages are in flight; the rest wait in
// the queue. On reconnect with clean session 0, in-flight PUBLISHes are sent again with DUP=1
// and pending PUBRELs again, in their original order (MQTT-4.4.0-1), before queued messages.
//
// Inbound QoS 2 (client -> server): a packet id is remembered from PUBLISH to PUBREL so a
// duplicate PUBLISH is acknowledged again but not delivered twice (MQTT-4.3.3-2).
//
// Limits (counted by the caller from the return values): queued messages and queued bytes
// (QoS 0 beyond the byte cap is dropped; QoS 1/2 beyond the message cap is dropped or, by
// policy, the client is disconnected).
//
// Thread safety: owned by its home shard; used only on that thread.
#ifndef RINGMQ_SESSION_SESSION_H_
#define RINGMQ_SESSION_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "message/message.h"
#include "session/ring_queue.h"

namespace ringmq::session {

struct SessionLimits {
  uint32_t max_inflight = 32;            // QoS 1/2 PUBLISHes awaiting acknowledgement
  uint32_t max_queued_messages = 1000;   // waiting to be sent (not yet in flight)
  uint64_t max_queued_bytes = 16 << 20;  // sum of Message::wire_bytes() waiting
  bool queue_qos0_offline = false;       // QoS 0 for a disconnected session (MQTT-3.1.2-5 "MAY")
};

enum class EnqueueResult : uint8_t {
  kQueued,
  kDroppedQueueFull,  // QoS 1/2 beyond max_queued_messages
  kDroppedBytesCap,   // QoS 0 beyond max_queued_bytes
  kDroppedOffline,    // QoS 0 for an offline session
};

// What one WriteOutput call encoded, for the caller's counters.
struct WriteCounts {
  uint64_t publishes_by_qos[3] = {0, 0, 0};  // PUBLISH packets (resends included) by QoS
};

struct Will {
  std::string topic;
  std::vector<uint8_t> payload;
  uint8_t qos = 0;
  bool retain = false;
};

struct Subscription {
  std::string filter;
  uint8_t qos = 0;
};

class Session {
 public:
  Session(std::string client_id, bool clean_session, const SessionLimits& limits);

  const std::string& client_id() const { return client_id_; }
  bool clean_session() const { return clean_session_; }

  // A connection is bound (connect or reconnect). Resends of in-flight state are scheduled.
  void Attach(bool clean_session);
  // The connection is gone. A clean session is discarded by the caller; a persistent one keeps
  // its queue and in-flight state.
  void Detach();
  bool online() const { return online_; }

  // Queues `message` for delivery at `qos` (already min(granted, published)). `retain` is the
  // RETAIN flag to send: 1 only for retained messages sent because of a new subscription
  // (MQTT-3.3.1-8/9).
  EnqueueResult Enqueue(message::MessageRef message, uint8_t qos, bool retain);

  // Encodes pending PUBLISH/PUBREL packets into `out` (appending) until out.size() would
  // exceed `max_bytes` or nothing can be sent (window full). A message larger than max_bytes is
  // still written when `out` is empty, so progress is always possible. Returns bytes appended.
  // `counts`, if given, is increased by what was written.
  size_t WriteOutput(std::vector<uint8_t>& out, size_t max_bytes, WriteCounts* counts = nullptr);
  bool has_output() const;

  // Acknowledgements from the client. Return false for an unknown packet id (ignored; a
  // duplicate after reconnect is legal).
  bool OnPuback(uint16_t packet_id);
  bool OnPubrec(uint16_t packet_id);   // QoS 2 step 1: PUBREL becomes due
  bool OnPubcomp(uint16_t packet_id);  // QoS 2 done

  // Inbound QoS 2. BeginInboundQos2 returns false when the id is already pending: the
  // PUBLISH is a duplicate and must not be delivered again (MQTT-4.3.3-2).
  bool BeginInboundQos2(uint16_t packet_id);
  // PUBREL received; returns whether the id was pending (PUBCOMP is sent either way,
  // MQTT-4.3.3-2 step 3 / §4.3.3).
  bool EndInboundQos2(uint16_t packet_id);

  std::unique_ptr<Will>& will() { return will_; }
  std::vector<Subscription>& subscriptions() { return subscriptions_; }

  uint32_t queued_messages() const { return static_cast<uint32_t>(queue_.size()); }
  uint64_t queued_bytes() const { return queued_bytes_; }
  uint32_t inflight() const { return static_cast<uint32_t>(inflight_.size()); }

 private:
  enum class Stage : uint8_t {
    kAwaitAck,       // PUBLISH sent; awaiting PUBACK (QoS 1) or PUBREC (QoS 2)
    kAwaitComplete,  // PUBREL sent; awaiting PUBCOMP (QoS 2)
  };
  struct Outbound {
    message::MessageRef message;  // released once only PUBREL/PUBCOMP remain
    uint16_t packet_id = 0;
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    bool sent = false;  // false: the packet of `stage` is due (first send or resend)
    Stage stage = Stage::kAwaitAck;
  };

  bool WriteOne(const Outbound& entry, std::vector<uint8_t>& out, size_t max_bytes,
                WriteCounts* counts);

  uint16_t NextPacketId();
  bool PacketIdInUse(uint16_t packet_id) const;
  Outbound* FindInflight(uint16_t packet_id);

  std::string client_id_;
  bool clean_session_;
  bool online_ = false;
  SessionLimits limits_;
  RingQueue<Outbound> queue_;     // not yet sent, in order
  RingQueue<Outbound> inflight_;  // sent (or due for resend / PUBREL), in send order
  uint32_t unsent_inflight_ = 0;   // entries of inflight_ with sent == false
  uint64_t queued_bytes_ = 0;
  uint16_t last_packet_id_ = 0;
  std::vector<uint16_t> inbound_qos2_;  // ids between PUBLISH and PUBREL (bounded by the
                                        // client's own window; capped at 65535 ids)
  std::unique_ptr<Will> will_;  // null: no will (most clients): 8 bytes, not 72
  std::vector<Subscription> subscriptions_;
};

}  // namespace ringmq::session

#endif  // RINGMQ_SESSION_SESSION_H_
