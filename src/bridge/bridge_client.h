// BridgeClient: one MQTT 3.1.1 / 5.0 CLIENT connection's state machine, without I/O
// ("sans-IO", like net/connection.h and cluster/nats_link.h), for bridges (bridge/bridge.h).
//
// The owner (the shard) opens a transport when ConnectDue(), reports it connected, feeds the
// bytes it receives to OnReceived, sends what TakeOutput gives (one send in flight), calls
// OnTimer by next_deadline_ms(), and reports a lost transport with OnTransportClosed. When the
// client itself gives the transport up (refused CONNACK, protocol violation, keepalive or
// CONNACK timeout) state() becomes kDisconnected while the owner's transport is still up: the
// owner then closes its socket (without calling OnTransportClosed again).
//
// Life: kDisconnected --ConnectDue, OnTransportConnected--> kAwaitConnack (CONNECT sent)
//   --CONNACK accepted--> kOpen (SUBSCRIBE of every subscription sent, queued messages flow)
//   --lost / refused / violation / timeout--> kDisconnected (the next attempt after a back-off).
//
// Outbound messages (Publish) are copied into a queue bounded by max_queued_messages and
// max_queued_bytes whatever the state, so messages published while the peer is unreachable
// wait for it; one beyond a bound is dropped and counted (dropped()). In kOpen they are sent in
// order, QoS 0 at once, QoS 1/2 within a window of max_inflight unacknowledged PUBLISHes
// (§4.3.2 / §4.3.3: PUBACK; PUBREC, PUBREL, PUBCOMP). After a reconnect the unacknowledged ones
// are sent again before anything queued: with the same packet ids and DUP set when the server
// resumed the session (session present, MQTT-4.4.0-1), as new PUBLISHes otherwise (at least
// once either way; a QoS 2 message that had reached PUBREC is sent as PUBREL again, or, in a
// new session, as a new PUBLISH).
//
// Inbound PUBLISHes go to the sink once each: QoS 1 is acknowledged after the sink took it
// (MQTT-4.3.2-4), QoS 2 is delivered on the PUBLISH and its packet id remembered until PUBREL
// so a DUP resend is not delivered twice (§4.3.3, method A), PUBREC / PUBCOMP answered.
//
// Deferred acknowledgements (ClientOptions::defer_acks, for bridges with persistence on): an
// inbound QoS 1/2 PUBLISH is given to the sink with an Origin (inbound_origin(), valid during
// OnMessage) and acknowledged (PUBACK; PUBREC for QoS 2) only when the owner calls
// Release(origin), i.e. once the other side has acknowledged its copy. Until then the sender
// keeps the message (in its persistence log, for this broker), so a restart of this process
// loses nothing the sender was told was delivered. A resent PUBLISH (DUP) of an id still
// awaiting Release is not delivered again (MQTT-2.2.1-3: the id is not reused before its
// acknowledgement). An Origin belongs to a session: after a new session (CONNACK without
// session present) Release of an older Origin does nothing, as the server resends.
// Outbound, an Origin stored with a queued message is handed back to the sink's OnDelivered
// when the message completes (PUBACK, PUBCOMP) or is dropped (too large to send).
//
// Exactly once at QoS 2 across a restart of this process (bridges with persistence on;
// docs/bridges.md "Exactly once at QoS 2"). Two options, one per side of a bridge:
//  - relay_qos2 (the remote side): an outbound message that carries an Origin is sent with the
//    Origin's packet id (the id this broker gave it, which this broker's log keeps), so a
//    resend after a restart of this process is the same PUBLISH, with the same id, which the
//    remote deduplicates (5.0:MQTT-4.3.3-9; 3.1.1: MQTT-4.3.3-2). A message whose id is still used by another in-flight
//    packet waits at the head of the queue. The remote's PUBREC of a QoS 2 Origin does not
//    send PUBREL: it tells the sink (OnAccepted, the bridge acknowledges this broker's copy
//    with PUBREC), and the PUBREL goes out only on ReleaseOutbound (this broker's PUBREL,
//    which comes once its log holds "PUBREC received, PUBREL due" for the id). So the id's
//    durable state is this broker's log record, and after a restart ReleaseOutbound of an id
//    without state sends PUBREL for it and never the PUBLISH (5.0:MQTT-4.3.3-4 and -6, 3.1.1:
//    MQTT-4.3.3-1: after PUBREC the sender sends PUBREL with the same id, never the PUBLISH
//    again; counted in stats().qos2_recovered). The remote's
//    PUBCOMP completes the Origin (OnDelivered).
//  - hold_pubcomp (the local side): an inbound PUBREL is given to the sink (OnReleased) and its
//    PUBCOMP waits for Complete(origin); until then the server keeps the id's record.
//
// Keepalive (§3.1.2.10): a PINGREQ when nothing was sent for keepalive_s; no answer (any
// packet) within keepalive_s more closes the transport. CONNACK must arrive within
// connect_timeout_ms.
//
// Reconnect back-off: attempt n after n - 1 consecutive failures waits
// min(restart_max_ms, restart_initial_ms * 2^(n - 2)) less a random part of up to
// restart_jitter_percent of it (full rate after an accepted CONNACK: the first attempt after a
// session that was open waits restart_initial_ms less jitter; the very first waits nothing).
//
// Bounds: queued messages and bytes (above); in flight <= max_inflight (<= kMaxInflight, and at
// 5.0 <= the server's Receive Maximum); a packet larger than max_packet_size is refused from
// its fixed header (PeekFrame) and closes the connection; unacknowledged inbound QoS 2 packet
// ids <= 65,535 (the id space); output waiting for the owner <= about kOutputPumpBytes plus one
// packet (queued messages are encoded only while less waits).
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_BRIDGE_BRIDGE_CLIENT_H_
#define RINGMQ_BRIDGE_BRIDGE_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/byte_buffer.h"
#include "mqtt/packet.h"

namespace ringmq::bridge {

enum class ClientState : uint8_t { kDisconnected, kConnecting, kAwaitConnack, kOpen };
std::string_view ClientStateName(ClientState state);

// One SUBSCRIBE entry sent after each accepted CONNACK.
struct ClientSubscription {
  std::string filter;
  mqtt::QoS qos = mqtt::QoS::k0;
  bool no_local = false;             // 5.0 only (§3.8.3.1)
  bool retain_as_published = false;  // 5.0 only
};

struct ClientOptions {
  static constexpr uint32_t kMaxInflight = 65'535;  // the packet id space

  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  bool clean_session = true;
  uint16_t keepalive_s = 60;  // 0: no PINGREQ, no keepalive timeout
  mqtt::ProtocolLevel level = mqtt::ProtocolLevel::kMqtt311;
  // 3.1.1 only: the CONNECT's protocol level byte is 0x84 (0x80 | 4), which Mosquitto and
  // RSMB read as "this client is a bridge": they then do not send a bridge's own messages
  // back to it and keep the RETAIN flag of what they forward.
  bool try_private = false;
  std::vector<ClientSubscription> subscriptions;
  uint32_t max_inflight = 20;
  uint32_t max_queued_messages = 1000;
  uint64_t max_queued_bytes = 16 << 20;  // topic + payload bytes of queued messages
  uint32_t max_packet_size = 1 << 20;    // largest packet received or sent
  uint32_t connect_timeout_ms = 10'000;  // CONNECT sent -> CONNACK
  uint32_t restart_initial_ms = 1'000;
  uint32_t restart_max_ms = 30'000;
  uint32_t restart_jitter_percent = 25;
  uint64_t random_seed = 0;
  // Acknowledge inbound QoS 1/2 only on Release (see above). At 5.0 the CONNECT's Receive
  // Maximum is then receive_maximum (the sender keeps at most that many unacknowledged).
  bool defer_acks = false;
  uint16_t receive_maximum = 65'535;
  // 5.0: Retain Handling of the subscriptions (§3.8.3.1): 1 for a resumed session, so that
  // subscribing again after a reconnect does not send the retained messages again.
  uint8_t retain_handling = 0;
  // A will (§3.1.2.5; QoS 1, retained) the server publishes if the connection is lost: the
  // bridge's "0" notification. Empty topic: none.
  std::string will_topic;
  std::string will_payload;
  // false (start_type once): after the first attempt fails or the connection ends, no more.
  bool reconnect = true;
  // Exactly once at QoS 2 across a restart (see above): the remote side relays, the local side
  // holds its PUBCOMPs.
  bool relay_qos2 = false;
  bool hold_pubcomp = false;
};

// Where an inbound QoS 1/2 message came from, to acknowledge it later (defer_acks). qos 0:
// nothing to acknowledge.
struct Origin {
  uint32_t session = 0;  // BridgeClient's session epoch when it arrived
  uint16_t packet_id = 0;
  mqtt::QoS qos = mqtt::QoS::k0;
};

// Events of the client, called from inside its methods on the owner's thread.
class ClientSink {
 public:
  virtual ~ClientSink() = default;
  virtual void OnConnected(bool session_present) = 0;
  // An inbound PUBLISH (its views are valid during the call only).
  virtual void OnMessage(const mqtt::Publish& publish) = 0;
  virtual void OnDisconnected(std::string_view reason) = 0;
  // An outbound message queued with a non-zero Origin completed (the peer acknowledged it) or
  // was dropped after being queued (too large to send).
  virtual void OnDelivered(const Origin& origin) { (void)origin; }
  // relay_qos2: the peer's PUBREC of an outbound message whose Origin is QoS 2 (the peer owns
  // the message now), or a message with one that was dropped (too large to send).
  virtual void OnAccepted(const Origin& origin) { (void)origin; }
  // hold_pubcomp: the server's PUBREL of inbound QoS 2 id `origin.packet_id`; its PUBCOMP waits
  // for Complete(origin).
  virtual void OnReleased(const Origin& origin) { (void)origin; }
};

struct ClientStats {
  uint64_t messages_sent = 0;      // PUBLISHes completed: QoS 0 sent, QoS 1/2 acknowledged
  uint64_t messages_received = 0;  // inbound PUBLISHes given to the sink
  uint64_t dropped = 0;            // Publish calls refused at a bound
  uint64_t connects = 0;           // CONNACKs accepted
  uint64_t disconnects = 0;        // sessions or attempts that ended
  uint64_t resent = 0;             // PUBLISH / PUBREL sent again after a reconnect
  uint64_t subscribe_refused = 0;  // SUBACK entries with a failure code
  uint64_t released_stale = 0;     // Release / Complete of an Origin of an ended session
  // relay_qos2: PUBRELs sent for an id this client had no message for (the id's state came
  // from this broker's log: after a restart of this process), and such PUBRELs given up
  // because the remote started a new session (it forgot the id).
  uint64_t qos2_recovered = 0;
  uint64_t qos2_abandoned = 0;
};

class BridgeClient {
 public:
  // Queued messages are encoded into the output only while less than this waits for the owner.
  static constexpr size_t kOutputPumpBytes = 64 * 1024;

  // Errors: an option out of its range (named).
  static absl::StatusOr<BridgeClient> Create(ClientOptions options, ClientSink* sink);
  BridgeClient(BridgeClient&&) = default;
  BridgeClient& operator=(BridgeClient&&) = default;

  // ---- Transport (the owner's socket) ----
  bool ConnectDue(uint64_t now_ms) const {
    return state_ == ClientState::kDisconnected && now_ms >= connect_at_ms_;
  }
  // The owner starts opening its transport (kConnecting).
  void BeginConnect(uint64_t now_ms);
  // The transport is up: the CONNECT is queued.
  void OnTransportConnected(uint64_t now_ms);
  void OnReceived(uint64_t now_ms, std::span<const uint8_t> bytes);
  // The transport failed or ended (also a failed connect).
  void OnTransportClosed(uint64_t now_ms, std::string_view reason);
  void OnTimer(uint64_t now_ms);
  uint64_t next_deadline_ms() const;
  // The owner ends an open connection (lazy start's idle timeout): as a lost connection, so
  // the server publishes the will; the owner closes its transport.
  void Disconnect(uint64_t now_ms, std::string_view reason);
  // The bytes that end the connection at a stop of the broker: with a will, it still tells the
  // server it is gone (5.0: DISCONNECT 0x04 Disconnect with Will Message, §3.14.2.1; 3.1.1:
  // the will as a retained QoS 0 PUBLISH, then DISCONNECT); without, a plain DISCONNECT.
  void EncodeGoodbye(ByteBuffer& into) const;

  bool has_output() const;
  // Appends the bytes to send to `into`. Queued messages are encoded as soon as they may go
  // (on Publish, and after each packet received), and here when the output had reached
  // kOutputPumpBytes.
  void TakeOutput(uint64_t now_ms, ByteBuffer& into);

  // ---- Messages ----
  // Queues a PUBLISH (copied). False when a bound refused it (counted in dropped()).
  // `origin` comes back through OnDelivered when the message completes.
  bool Publish(std::string_view topic, std::string_view payload, mqtt::QoS qos, bool retain,
               const Origin& origin = {});
  // Queues a message ahead of all others and outside the queue bounds: the notification
  // state. At most one such message waits (a newer one replaces it), so the bound is one.
  void PublishFirst(std::string_view topic, std::string_view payload, mqtt::QoS qos, bool retain);
  // defer_acks: acknowledges the inbound message `origin` names (PUBACK / PUBREC), now if
  // open, else after the session resumes.
  void Release(const Origin& origin);
  // During OnMessage: the Origin of the message (qos 0 unless defer_acks and QoS 1/2).
  const Origin& inbound_origin() const { return inbound_origin_; }
  size_t deferred() const { return deferred_.size(); }
  // relay_qos2: this broker's PUBREL of the message `origin` names (its log holds the PUBREC):
  // PUBREL to the remote now (or once its PUBREC came, or after a reconnect), or, if this
  // client has no message with that id, PUBREL for the id alone (after a restart).
  void ReleaseOutbound(const Origin& origin);
  // relay_qos2, local session new: the messages the remote holds PUBREC'd are released to it
  // (the server forgot their ids, so no PUBREL will come from it).
  void ReleaseAllAccepted();
  // hold_pubcomp: PUBCOMP of the inbound id `origin` names (given by OnReleased). While
  // disconnected it is not kept: the server resends the PUBREL after resuming (MQTT-4.4.0-1).
  void Complete(const Origin& origin);
  size_t held_pubrels() const { return held_pubrels_.size(); }

  ClientState state() const { return state_; }
  const ClientStats& stats() const { return stats_; }
  size_t queued_messages() const { return queue_.size(); }
  uint64_t queued_bytes() const { return queued_bytes_; }
  size_t inflight() const { return inflight_.size(); }
  uint64_t connect_at_ms() const { return connect_at_ms_; }
  const ClientOptions& options() const { return options_; }

 private:
  // kAwaitRelease (relay_qos2): PUBREC received, PUBREL waits for ReleaseOutbound.
  enum class Stage : uint8_t { kQueued, kAwaitPuback, kAwaitPubrec, kAwaitRelease, kAwaitPubcomp };
  struct Message {
    std::string data;  // topic then payload
    uint16_t topic_size = 0;
    mqtt::QoS qos = mqtt::QoS::k0;
    bool retain = false;
    Stage stage = Stage::kQueued;
    uint16_t packet_id = 0;
    Origin origin;
    bool first = false;  // PublishFirst's
    // relay_qos2: the sink was told of the PUBREC (accepted); ReleaseOutbound came (released);
    // an id without a message (relay_only: PUBREL only, or a dropped message's id awaiting
    // its release); its PUBREL waits until another in-flight packet frees the id.
    bool accepted = false;
    bool released = false;
    bool relay_only = false;
    bool pubrel_blocked = false;
    std::string_view topic() const { return std::string_view(data).substr(0, topic_size); }
    std::string_view payload() const { return std::string_view(data).substr(topic_size); }
  };

  BridgeClient(ClientOptions options, ClientSink* sink);
  void Encode(const mqtt::Packet& packet);
  void SendConnect();
  void SendSubscribe();
  void SendPublish(const Message& message, bool dup);
  // Moves queued messages into the output while the window and kOutputPumpBytes allow.
  void Pump();
  void HandlePacket(const mqtt::Packet& packet, uint64_t now_ms);
  void HandleConnack(const mqtt::Connack& connack, uint64_t now_ms);
  void HandlePublish(const mqtt::Publish& publish);
  // PUBACK, PUBREC or PUBCOMP of an outbound message; false: an id not in flight.
  void Acknowledge(uint16_t packet_id, Stage expected, Stage next);
  void SendRelease(const Origin& origin);
  // The client gives the connection up (the owner closes its transport).
  void Fail(uint64_t now_ms, std::string_view reason);
  void ScheduleReconnect(uint64_t now_ms);
  uint16_t NextPacketId();
  uint32_t Window() const;
  // relay_qos2: whether `message` is sent with its Origin's packet id.
  bool Mirrors(const Message& message) const {
    return options_.relay_qos2 && message.origin.qos != mqtt::QoS::k0 &&
           message.qos != mqtt::QoS::k0;
  }
  bool IdInFlight(uint16_t packet_id) const;
  bool IdUsedTwice(uint16_t packet_id) const;  // a blocked PUBREL's id, by another packet too
  void SendBlockedPubrels(uint16_t freed_packet_id);

  ClientOptions options_;
  ClientSink* sink_ = nullptr;
  ClientState state_ = ClientState::kDisconnected;
  ByteBuffer output_;
  std::vector<uint8_t> partial_;  // a packet split across receives
  std::deque<Message> queue_;     // not yet sent
  uint64_t queued_bytes_ = 0;
  std::vector<Message> inflight_;       // sent, unacknowledged; in send order
  std::vector<uint16_t> inbound_qos2_;  // sorted: QoS 2 ids received, PUBREL not yet
  // defer_acks: sorted ids delivered and not yet Released (at most the id space, 65,535), and
  // Releases made while disconnected, sent after the session resumes (as many at most).
  std::vector<uint16_t> deferred_;
  std::vector<Origin> releases_due_;
  // hold_pubcomp: sorted inbound ids whose PUBREL came and whose PUBCOMP waits (<= 65,535).
  std::vector<uint16_t> held_pubrels_;
  Origin inbound_origin_;
  uint32_t session_epoch_ = 1;  // +1 at every new session
  uint16_t last_packet_id_ = 0;
  uint16_t subscribe_packet_id_ = 0;
  bool subscribe_pending_ = false;  // SUBACK not received yet
  uint16_t server_receive_maximum_ = 65'535;
  uint32_t failures_ = 0;  // consecutive attempts without an accepted CONNACK
  uint64_t connect_at_ms_ = 0;
  uint64_t connack_deadline_ms_ = 0;
  uint64_t last_sent_ms_ = 0;
  uint64_t last_received_ms_ = 0;
  uint64_t ping_sent_ms_ = 0;  // 0: no PINGREQ unanswered
  ClientStats stats_;
  std::mt19937_64 random_;
};

}  // namespace ringmq::bridge

#endif  // RINGMQ_BRIDGE_BRIDGE_CLIENT_H_
