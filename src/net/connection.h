// One client connection's protocol state machine, without I/O ("sans-IO").
//
// The shard feeds it received bytes and completion results; it decides what to answer and when
// to close, and exposes the bytes to send. Keeping I/O out makes every path unit-testable with
// plain byte arrays (tests/net/connection_test.cc).
//
// Life: kAwaitConnect --CONNECT admitted--> kOpen --DISCONNECT/violation/timeout--> kClosing.
// A 5.0 CONNECT with an Authentication Method goes through kAuthenticating first (5.0 §4.12,
// auth/enhanced_auth.h): AUTH packets both ways until the method succeeds (then kOpen, CONNACK
// 0x00 with the method's last data) or fails (CONNACK with its reason code, then kClosing).
// The exchange runs on the client id's home shard (a CONNECT whose home is elsewhere is handed
// off before it starts) and must end within connect_timeout_ms of the CONNECT. AUTH 0x19 after
// CONNACK (re-authentication) is not supported: DISCONNECT 0x8C and close.
// A refused CONNECT goes from kAwaitConnect to kClosing with the pre-encoded CONNACK (a static
// span: the refusal path neither allocates nor encodes) or with nothing under the silent policy.
// In kClosing, received bytes are ignored; the shard closes the socket once ReadyToClose().
//
// Receive path: frames are decoded in place from the bytes the shard passes in; only a frame
// split across receives is copied into the partial buffer (bounded by max_connect_packet_size
// before the CONNECT is admitted, by max_packet_size afterwards). That buffer and the hand-off
// buffer are cold (most connections never split a frame or move), so they live in a `Spill`
// made on first use: a connection that never needs them holds one null pointer.
// Send path: at most one send in flight; replies produced meanwhile wait in `queued_`.
//
// Pause: the sink may pause the connection while it works on a packet over several loop
// iterations (a big SUBSCRIBE). Frames after that packet are not processed until Resume(), so
// packets keep their order (MQTT-4.6.0) and the answer to the paused packet precedes anything
// later packets cause. Bytes received meanwhile wait in the partial buffer; once they reach
// max_packet_size, receive_blocked() asks the shard to stop reading the socket (TCP pushes back
// on the client) until Resume() has processed them.
//
// Held back (persistence): replies held behind log records (HoldOutput) wait for the disk, not
// for the peer, so they must not count as a peer that does not read (output_overflow). Once
// the held replies reach ReplyBytesMax() / 4, frames are not processed and the socket is not
// read (TCP pushes back on the client) until the shard calls OnOutputReleased() after the log
// has caught up; the keepalive clock restarts, as for a pause. This bounds held replies, and a
// 3.1.1 publisher (no Receive Maximum) that keeps sending while fdatasyncs are slow is slowed
// down instead of closed.
//
// MQTT 5.0: a level-5 CONNECT is admitted like the others (connect/admission.h; a refusal is a
// static 5.0 CONNACK with the reason's code and Reason String). An accepted one gets a
// `Mqtt5State` (made only at level 5, so 3.1.x connections pay one null pointer): the client's
// limits from its CONNECT, the inbound topic alias table, the QoS 2 packet ids counted against
// the broker's Receive Maximum, and the DISCONNECT's Session Expiry Interval. PUBLISHes reach
// the sink with their topic resolved from the alias. Violations after CONNECT are answered with
// a DISCONNECT carrying mqtt::ReasonCodeOf(violation) before the close (5.0:MQTT-4.13.1-1).
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_NET_CONNECTION_H_
#define RINGMQ_NET_CONNECTION_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/enhanced_auth.h"
#include "common/byte_buffer.h"
#include "common/log.h"
#include "common/shared_string.h"
#include "connect/address_table.h"
#include "connect/admission.h"
#include "connect/client_id.h"
#include "memory/budget.h"
#include "metrics/counters.h"
#include "mqtt/outbound_topic_aliases.h"
#include "mqtt/packet.h"
#include "net/transport.h"
#include "ringmq/config.h"

namespace ringmq::net {

class Connection;

// What the broker does with an admitted connection's packets. The connection handles framing,
// CONNECT admission, PINGREQ, DISCONNECT, keepalive and protocol violations itself; sessions,
// subscriptions and message flow belong to the sink (the shard).
class PacketSink {
 public:
  enum class ConnectAction : uint8_t {
    kServe,    // the sink bound a session here and called SendConnack()
    kHandoff,  // the session's home is another shard: the connection must move there
  };
  virtual ~PacketSink() = default;
  // An admitted CONNECT (client_id() is already final, server-assigned if it was empty).
  virtual ConnectAction OnConnect(Connection& connection, const mqtt::Connect& connect) = 0;
  // PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE or UNSUBSCRIBE, already validated.
  virtual void OnPacket(Connection& connection, const mqtt::Packet& packet) = 0;
  // A served connection decided to close (DISCONNECT, violation, timeout, takeover, shutdown).
  // Its socket may take a while to go; the session should let go of it now, so that a client
  // reconnecting at once finds its session free. Called at most once per connection.
  virtual void OnClosing(Connection& connection) = 0;
};

// Per-shard settings and shared state every connection of the shard uses.
struct ConnectionContext {
  connect::Policy policy;
  uint32_t max_packet_size = 1 << 20;
  // Largest first packet (CONNECT); the smaller of this and max_packet_size applies. Until a CONNECT is admitted a
  // connection buffers at most this much (plus one receive), so connections that announce a
  // large CONNECT and trickle it cost little; a larger one is refused from its fixed header.
  uint32_t max_connect_packet_size = 64 << 10;
  uint32_t ConnectPacketSizeMax() const {
    return max_connect_packet_size < max_packet_size ? max_connect_packet_size : max_packet_size;
  }
  uint32_t connect_timeout_ms = 10'000;
  // Output waiting for a peer that does not read, split in two shares so that deliveries can
  // never crowd out replies:
  //   replies (PINGRESP, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK): at most ReplyBytesMax()
  //     waiting; one more closes the connection (output_overflow). Only a peer that keeps
  //     sending requests without reading the answers gets there. A reply that finds at most
  //     half of that share used is queued even if it alone exceeds it (a SUBACK of up to
  //     max_packet_size / 4 codes).
  //   deliveries (PUBLISH, PUBREL): the router encodes them only while fewer than
  //     DeliveryBytesBudget() bytes wait, and may then go over by one message (a message
  //     larger than the budget must still be sendable), so they are bounded by
  //     DeliveryBytesBudget() + max_packet_size and never count against the replies' share.
  // Bytes waiting per connection <= max_output_bytes + 2 x max_packet_size.
  uint32_t max_output_bytes = 128 * 1024;
  size_t ReplyBytesMax() const { return max_output_bytes / 2; }
  size_t DeliveryBytesBudget() const { return max_output_bytes - ReplyBytesMax(); }
  // Connected clients over all shards; admission reserves a slot with fetch_add.
  std::atomic<uint32_t>* connected_clients = nullptr;
  // The same per listener (index = Connection::listener(), at least `listeners.size()`
  // entries), reserved and given back with connected_clients; null: not counted (tests).
  connect::ListenerClients* listener_clients = nullptr;
  // Per-source-address counts; null when no per-address limit is configured.
  connect::AddressTable* addresses = nullptr;
  const std::atomic<bool>* shutting_down = nullptr;
  // The shard's view of the memory budget; null when max_memory is 0. At
  // Pressure::kRefuseConnections and above, CONNECTs are refused with 0x03.
  const memory::View* memory = nullptr;
  metrics::ShardCounters* counters = nullptr;
  // MQTT 5.0 limits the CONNACK announces (5.0:3.2.2.3) and the connection enforces.
  // Maximum QoS and Retain Available also hold at 3.1.x: a PUBLISH beyond them closes the
  // connection (as Mosquitto does; 3.1.x has no code to say why), and a will beyond them is
  // capped to max_qos / not retained, since admission refuses only 5.0 wills for them.
  uint16_t receive_maximum = 1024;    // QoS 2 PUBLISHes awaiting PUBREL per 5.0 connection
  uint16_t topic_alias_maximum = 10;  // inbound aliases per 5.0 connection; 0: none
  // Outbound aliases per 5.0 connection (capped by the client's Topic Alias Maximum); 0: the
  // broker sends none.
  uint16_t outbound_topic_aliases = 0;
  uint16_t max_keepalive_s = 0;       // 0: the client's keepalive stands
  uint8_t max_qos = 2;
  bool retain_available = true;
  // Response Information (5.0:3.2.2.3.15) is this prefix followed by the client id, sent when
  // the client asks for it; empty: not sent.
  std::string response_information;
  // Required before the first CONNECT is admitted: it serves (or hands off) every admitted
  // connection and gets every PUBLISH, acknowledgement, SUBSCRIBE and UNSUBSCRIBE.
  PacketSink* sink = nullptr;
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  // Every listener's settings (listener::EffectiveListeners; index = Connection::listener()):
  // per-listener limits and how a TLS client certificate stands in for a user name.
  std::vector<ListenerConfig> listeners;
  // What admission applies of each listener (policy.listeners views it).
  std::vector<connect::ListenerPolicy> listener_policies;
  // Server-assigned client ids (MQTT-3.1.3-6): unpredictable, with this shard as their home.
  connect::AssignedClientIds assigned_ids;
  ConnectionEventLog event_log;    // per-connection log lines, rate-limited at info
  // The enhanced authentication methods offered (5.0 §4.12); null: none, every Authentication
  // Method gets CONNACK 0x8C.
  const auth::AuthMethodRegistry* auth_methods = nullptr;
};

// How long a closing connection may wait for its last bytes to be sent.
inline constexpr uint32_t kCloseGraceMs = 5'000;
// Lingering close (see Connection::WantsLinger): after a server-sent DISCONNECT has been sent in
// full, input is read and discarded for at most this long, or this many bytes, before the close.
inline constexpr uint32_t kLingerMs = 2'000;
inline constexpr uint32_t kLingerMaxBytes = 256 * 1024;

class Connection {
 public:
  // kHandoff: admitted, but the session lives on another shard. Bytes are kept, not processed,
  // until the shard moves the socket (see TakeHandoffBytes).
  // kAuthenticating: a 5.0 CONNECT with an Authentication Method was admitted; AUTH packets
  // are exchanged until the method decides (see the file comment).
  enum class State : uint8_t { kAwaitConnect, kAuthenticating, kOpen, kHandoff, kClosing };

  // Prepares the object for a newly accepted socket. The connection does no I/O on `fd`: it
  // names the peer in logs, and the shard keeps no other record of the descriptor (fd()).
  void Open(int fd, uint64_t now_ms);
  // The socket given to Open/Adopt; -1 before, and after ReleaseForHandoff.
  int fd() const { return fd_; }

  // Right after Open/Adopt, for a connection accepted on a listener with layers (PROXY, TLS,
  // WebSocket; net/transport.h): received bytes go up through `transport` before MQTT sees
  // them, and everything sent goes down through it. Without one (plain TCP), bytes are MQTT.
  // `listener` is the index of the listener that accepted the socket
  // (listener::EffectiveListeners order), for per-listener settings and counters.
  // An adopted connection's transport that already knows the client's address (PROXY) moves
  // the per-address count to it, as on the first shard.
  void SetTransport(std::unique_ptr<Transport> transport, ConnectionContext& context);
  void set_listener(uint8_t listener) { listener_ = listener; }
  uint8_t listener() const { return listener_; }
  // Right after Open/Adopt: the connection is the in-process end of a bridge's local session
  // (shard/shard_bridge.h), a client of the broker's own configuration. Its CONNECT takes no
  // connected-client slot (neither max_connections nor the listener's) and is not refused by
  // capacity checks (limits, memory, per-address); it is authenticated with the credentials it
  // sends, never a certificate identity. The shard counts it apart from its listener's
  // connections (ringmq_bridge_local_connections).
  void MarkInternal() {
    internal_ = true;
    holds_client_slot_ = false;  // an adopted one was not reserved either
  }
  bool internal() const { return internal_; }
  // kHandoff only, before ReleaseForHandoff: the transport moves with the socket (an open TLS
  // session, a WebSocket's framing state); null for plain TCP.
  std::unique_ptr<Transport> TakeTransport();
  Transport* transport() const { return spill_ == nullptr ? nullptr : spill_->transport.get(); }
  // The peer's address for log lines: the one a PROXY header (or trusted X-Forwarded-For)
  // gave, else the socket's.
  std::string PeerName() const;

  // Takes over a socket another shard admitted and handed off. The caller then feeds the
  // bytes of TakeHandoffBytes() (the CONNECT first) to OnReceive; admission is not repeated and
  // the connected-client slot reserved by the first shard moves with the connection.
  void Adopt(int fd, uint64_t now_ms);

  // kHandoff only: the CONNECT frame and everything received after it, moved out.
  std::vector<uint8_t> TakeHandoffBytes();
  // kHandoff only: the socket moved to another shard; this object lets go of it (fd() is -1)
  // without releasing the connected-client slot (the adopting connection holds it now).
  void ReleaseForHandoff();

  // What the sink adds to an accepting CONNACK at 5.0 (ignored at 3.1 / 3.1.1).
  struct ConnackExtras {
    // The Session Expiry Interval the server uses when it differs from the client's request
    // (5.0:3.2.2.3.2); unset: the client's value stands and the property is not sent.
    std::optional<uint32_t> session_expiry_s;
  };
  // For the sink: CONNACK 0x00 with the session-present flag (MQTT-3.2.2-1/2).
  void SendConnack(bool session_present, const ConnackExtras& extras = {});
  // For the sink: encodes a reply (e.g. PUBACK, SUBACK) after what is already queued.
  void QueuePacket(const mqtt::Packet& packet, ConnectionContext& context) {
    Queue(packet, context);
  }
  // For the sink: PUBACK, PUBREC or PUBCOMP (all four bytes: type, length 2, id) after what is
  // already queued; the same bytes and output bound as QueuePacket, without the generic
  // encoder, since an acknowledgement is sent for nearly every QoS 1/2 PUBLISH.
  void QueueAck(mqtt::PacketType type, uint16_t packet_id, ConnectionContext& context);
  // For the sink: the buffer deliveries are encoded into, and how many bytes wait to be sent.
  ByteBuffer& output_buffer() { return queued_; }
  size_t pending_output_bytes() const { return queued_.size() + (current_.size() - current_sent_); }
  // Reply bytes (QueuePacket, PINGRESP) not yet sent in full: those of the send in flight count
  // until that whole send completes, so this is an upper bound (see ReplyBytesMax()).
  size_t pending_reply_bytes() const { return queued_reply_bytes_ + sending_reply_bytes_; }
  // For the sink: closes after what is queued (e.g. session takeover, MQTT-3.1.4-2).
  void Close(uint64_t now_ms) { StartClosing(now_ms); }
  // For the sink or the shard: a server-initiated close with a reason. At 5.0 a DISCONNECT with
  // `reason` (a DISCONNECT reason code, e.g. 0x8E Session taken over, 0x8B Server shutting
  // down) is queued after what is already queued (5.0:MQTT-3.14.2-1: the server may send one
  // before it closes), then the connection closes; at 3.1 / 3.1.1 it only closes. Nothing is
  // sent on a connection that is already closing.
  void Disconnect(mqtt::ReasonCode reason, uint64_t now_ms, ConnectionContext& context);
  // 5.0: the Session Expiry Interval the client's DISCONNECT carried (5.0:3.14.2.2.2), if it
  // carried one; the session takes it as its new expiry.
  std::optional<uint32_t> disconnect_session_expiry_s() const;
  // For the sink, from OnPacket: the packet is still being worked on; later frames wait.
  void Pause() { paused_ = true; }
  // For the sink: the paused packet is done. Processes the frames that waited, in order (one of
  // them may pause the connection again). The keepalive clock restarts: the wait was ours.
  void Resume(uint64_t now_ms, ConnectionContext& context);
  bool paused() const { return paused_; }
  // Paused with at least max_packet_size bytes waiting: do not read the socket until Resume.
  bool receive_blocked() const { return receive_blocked_; }
  // A DISCONNECT was received: the will is discarded (MQTT-3.14.4-3). At 5.0 a DISCONNECT
  // with reason 0x04 (Disconnect with Will Message) keeps the will (5.0:3.14.2.1).
  bool disconnected_gracefully() const { return graceful_disconnect_; }
  mqtt::ProtocolLevel level() const { return level_; }

  // The client's limits from its 5.0 CONNECT (5.0:3.1.2.11); at 3.1.x the defaults that mean
  // "no limit": Receive Maximum 65,535 (5.0:3.1.2.11.3), Maximum Packet Size 0 = none
  // (3.1.2.11.4), Topic Alias Maximum 0 = no aliases to the client (3.1.2.11.5), Request
  // Problem Information true (3.1.2.11.7).
  uint16_t client_receive_maximum() const;
  uint32_t client_maximum_packet_size() const;
  uint16_t client_topic_alias_maximum() const;
  // The connection's outbound Topic Alias mapping for deliveries (5.0:3.3.2.3.4): null unless
  // the connection is at 5.0, ConnectionContext::outbound_topic_aliases is not 0 and the client
  // accepts aliases. It lives and dies with the connection.
  mqtt::OutboundTopicAliases* outbound_topic_aliases() const {
    return mqtt5() == nullptr ? nullptr : mqtt5()->outbound_aliases.get();
  }
  bool request_problem_information() const;

  // The shard's handle for this connection (its slot), for the sink.
  uint32_t tag() const { return tag_; }
  void set_tag(uint32_t tag) { tag_ = tag; }

  // The slot of the peer's address in ConnectionContext::addresses (kNoSlot: not counted). The
  // shard sets it after Open/Adopt and gives the count back when it lets go of the socket.
  uint32_t address_slot() const { return address_slot_; }
  void set_address_slot(uint32_t slot) { address_slot_ = slot; }

  // Consumes received bytes: decodes every complete frame, answers, and keeps a split frame.
  void OnReceive(std::span<const uint8_t> bytes, uint64_t now_ms, ConnectionContext& context);

  // Server-initiated close (shutdown): what is queued is still sent, within kCloseGraceMs.
  void RequestClose(uint64_t now_ms) { StartClosing(now_ms); }

  // The peer closed, or the socket failed: nothing more will be sent or received.
  void OnTransportClosed(uint64_t now_ms);
  // OnTransportClosed was called, or the close grace (or linger) ended: nothing more is sent.
  bool transport_closed() const { return transport_closed_; }

  // Deadline of the current state's timer (connect timeout, the AUTH exchange's end, keepalive
  // x 1.5, close grace); 0 when there is none.
  uint64_t DeadlineMs() const;
  // Called when DeadlineMs() has passed. Moves to kClosing (counted) or, in kClosing, gives up
  // on unsent bytes.
  void OnDeadline(uint64_t now_ms, ConnectionContext& context);

  // The bytes to send next, or empty if nothing is queued or a send is in flight. Marks a send
  // in flight when non-empty. Bytes behind an unreleased hold (HoldOutput) are not sent.
  std::span<const uint8_t> NextSend();

  // Persistence (shard/durable.h): every byte queued so far depends on log records that become
  // durable with hold `token`; none of them is sent before *released >= token (the shard's
  // released token, which must outlive the connection's holds). Bytes queued later wait behind
  // them (a byte stream keeps its order). Tokens are non-decreasing per connection. At most a
  // few holds are open at once (one per group commit in flight).
  void HoldOutput(uint64_t token, const uint64_t* released);
  // Held back (see the class comment): frames wait until the held replies are released.
  bool held_back() const { return held_back_; }
  // For the shard, after holds were released: if the held replies are below the bound again,
  // processes the frames that waited (which may hold the connection back again).
  void OnOutputReleased(uint64_t now_ms, ConnectionContext& context);
  // A send completed with `bytes` written (partial sends are normal).
  void OnSent(size_t bytes);
  bool send_in_flight() const { return send_in_flight_; }

  // True once the connection should be closed: closing, and nothing left to send.
  bool ReadyToClose() const;

  // Lingering close. A client that is still sending when the server closes (e.g. the PUBRELs
  // behind a PUBLISH over the Receive Maximum) would make the kernel reset the connection:
  // closing a socket with unread input sends RST, and the RST can reach the client before it
  // has read the DISCONNECT that says why (5.0:MQTT-4.13.1-1). So after a server-sent DISCONNECT
  // (5.0 only) has been sent in full, the shard shuts down the sending side and keeps reading,
  // discarding, until the peer's EOF, kLingerMaxBytes, or kLingerMs (within kCloseGraceMs of
  // the close decision); then it closes. Not used for refused CONNECTs (a CONNACK then close).
  // True in kClosing, once ReadyToClose(), when a DISCONNECT was queued by the server, the
  // peer has not closed and the linger has not started.
  bool WantsLinger() const;
  // The shard has shut down the sending side: received bytes are now counted as discarded
  // (closes_lingered counted here), and DeadlineMs() is the linger's end.
  void StartLinger(uint64_t now_ms, ConnectionContext& context);

  // The last bytes of a connection closing with only its pre-encoded CONNACK left (a refused
  // CONNECT; or an accepted one whose connection ended before anything else was queued:
  // DISCONNECT or a violation in the same read, a takeover, a stop): in kClosing with no send
  // started, returns that CONNACK and counts it as sent (ReadyToClose() is then true);
  // otherwise returns empty and changes nothing. The bytes are static, so they outlive the
  // connection: the shard sends them and closes the socket as one linked pair of operations.
  std::span<const uint8_t> TakeFinalStaticSend();

  // Called once when the socket is gone: releases the connected-client slot of an accepted
  // client and counts the close.
  void OnClosed(ConnectionContext& context);

  // Memory accounting (memory/budget.h): the change of this connection's buffer capacity since
  // the last call, now counted as charged. The shard charges it after handling the connection's
  // events and credits charged_buffer_bytes() when it releases the connection.
  int64_t TakeBufferChargeDelta();
  uint32_t charged_buffer_bytes() const { return charged_buffer_bytes_; }

  State state() const { return state_; }
  std::string_view client_id() const { return client_id_.view(); }
  // The same id as a handle to share its storage (the session bound here keeps one).
  const SharedString& shared_client_id() const { return client_id_; }
  uint16_t keepalive_s() const { return keepalive_s_; }

 private:
  // The listener's use_identity_as_username: the CONNECT's User Name becomes the verified TLS
  // client certificate's identity and its Password is dropped (kProven), or there is no such
  // identity (kMissing: refused by admission).
  connect::CertificateUser ApplyCertificateIdentity(mqtt::Result<mqtt::Connect>& connect,
                                                    const ConnectionContext& context) const;
  // OnReceive's MQTT part: `bytes` are MQTT (decoded by the transport, if any).
  void ReceiveMqtt(std::span<const uint8_t> bytes, uint64_t now_ms, ConnectionContext& context);
  // A PROXY header (or X-Forwarded-For) named the client: its address replaces the socket's
  // in the per-address table.
  void ApplyPeerSource(const sockaddr_storage& source, ConnectionContext& context);
  size_t ProcessFrames(std::span<const uint8_t> bytes, ConnectionContext& context);
  // Processes the frames in the partial buffer and keeps what is left (a split frame, or what
  // waits behind a paused packet).
  void ProcessPartial(ConnectionContext& context);
  void HandleFrame(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                   ConnectionContext& context);
  // Counts a CONNECT decision broker-wide (by reason) and for the connection's listener.
  void CountConnect(connect::Reason reason, ConnectionContext& context) const;
  // Gives back the connected-client slot admission reserved: broker-wide and the listener's.
  void ReleaseClientSlot(ConnectionContext& context) const;
  void HandleConnect(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                     ConnectionContext& context);
  void Accept(const mqtt::Connect& connect, const connect::Decision& decision,
              ConnectionContext& context);
  // Enhanced authentication (5.0 §4.12). StartAuth runs the method's first step on the CONNECT
  // `frame` (kept, since the exchange outlives the receive buffer); HandleAuth takes each AUTH;
  // OnAuthStep acts on the method's answer; FinishAuth admits the CONNECT as the proven user.
  void StartAuth(const mqtt::Connect& connect, std::span<const uint8_t> frame,
                 ConnectionContext& context);
  void HandleAuth(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                  ConnectionContext& context);
  void OnAuthStep(const auth::AuthStep& step, ConnectionContext& context);
  void FinishAuth(std::string_view user, ConnectionContext& context);
  // CONNACK `reason` at 5.0 (queued, encoded), the refusal counted in `log_reason`, then close.
  void RefuseAuth(mqtt::ReasonCode reason, std::string_view log_reason, ConnectionContext& context);
  // The Authentication Method and Data properties of an AUTH or CONNACK, into auth_->properties.
  mqtt::Properties AuthProperties(std::string_view data);
  void HandlePacket(const mqtt::Packet& packet, ConnectionContext& context);
  void Queue(const mqtt::Packet& packet, ConnectionContext& context);
  // Whether a reply of `size` bytes may be queued; if not, counts the overflow and closes.
  bool ReplyFits(size_t size, ConnectionContext& context);
  void StartClosing(uint64_t now_ms);
  void CloseForViolation(mqtt::Violation violation, ConnectionContext& context);
  // At 5.0 on an open connection: queues a DISCONNECT with `reason` and counts it.
  void QueueDisconnect(mqtt::ReasonCode reason, ConnectionContext& context);
  void AcceptMqtt5(const mqtt::Connect& connect, bool assigned_client_id,
                   ConnectionContext& context);
  // Maximum QoS, Retain Available, and at 5.0 CheckPublish5; then the sink, or the close.
  void HandlePublish(const mqtt::Packet& packet, ConnectionContext& context);
  // The 5.0 rules of a PUBLISH that need this connection's state: no Subscription Identifier,
  // the topic alias (resolved into `publish`), the Receive Maximum. Returns the violation to
  // close for, or kNone.
  mqtt::Violation CheckPublish5(mqtt::Publish& publish, ConnectionContext& context);
  void OnPubrel5(uint16_t packet_id);
  void HandleDisconnect(const mqtt::Disconnect& disconnect, ConnectionContext& context);

  // Members are ordered so that the small ones share 8-byte words: the connection is most of
  // a shard's slot, one per connection (size test in tests/net/connection_test.cc).
  State state_ = State::kAwaitConnect;
  bool send_in_flight_ = false;
  bool holds_client_slot_ = false;  // counted in context.connected_clients
  bool transport_closed_ = false;
  bool pre_admitted_ = false;  // adopted from another shard: admission already done
  bool graceful_disconnect_ = false;
  bool paused_ : 1 = false;
  bool held_back_ : 1 = false;  // held replies at their bound (HoldOutput)
  bool receive_blocked_ : 1 = false;
  bool internal_ : 1 = false;  // a bridge's local session (MarkInternal)
  uint32_t tag_ = 0;
  uint16_t keepalive_s_ = 0;
  mqtt::ProtocolLevel level_ = mqtt::ProtocolLevel::kMqtt311;
  uint8_t listener_ = 0;
  int fd_ = -1;
  uint32_t address_slot_ = connect::AddressTable::kNoSlot;
  uint32_t charged_buffer_bytes_ = 0;  // buffer capacity charged to the memory budget
  // Output byte counts fit 32 bits: what waits is at most max_output_bytes (128 KiB) plus
  // 2 x max_packet_size (at most 256 MiB each).
  uint32_t current_sent_ = 0;
  uint32_t queued_reply_bytes_ = 0;   // reply bytes in queued_
  uint32_t sending_reply_bytes_ = 0;  // reply bytes in sending_ (the send in flight)
  PacketSink* sink_ = nullptr;        // set once the sink serves this connection
  uint64_t last_packet_ms_ = 0;       // last complete packet: the keepalive clock
  uint64_t event_ms_ = 0;             // time of the event being processed
  uint64_t closing_since_ms_ = 0;

  // Per-connection MQTT 5.0 state, made by Accept at level 5 only.
  struct Mqtt5State {
    uint16_t client_receive_maximum = 65535;
    uint16_t client_topic_alias_maximum = 0;
    uint32_t client_maximum_packet_size = 0;  // 0: no limit
    bool request_problem_information = true;
    bool request_response_information = false;
    bool assigned_client_id = false;  // CONNACK carries Assigned Client Identifier
    bool connect_session_expiry_zero = true;
    std::optional<uint16_t> server_keep_alive_s;  // CONNACK carries Server Keep Alive
    std::optional<uint32_t> disconnect_session_expiry_s;
    bool linger_wanted = false;   // a server-sent DISCONNECT was queued (see WantsLinger)
    bool lingering = false;       // StartLinger was called
    uint32_t linger_discarded = 0;  // bytes received and discarded while lingering
    uint64_t linger_until_ms = 0;
    // Inbound topic aliases: topic_aliases[alias - 1], "" when unset. Grows to the highest
    // alias used, at most ConnectionContext::topic_alias_maximum entries of at most 65,535
    // bytes; charged to the memory budget with the buffers.
    std::vector<std::string> topic_aliases;
    size_t topic_alias_bytes = 0;  // capacity the topics grew beyond an empty string's
    // Outbound topic aliases (see outbound_topic_aliases()); charged like the inbound table.
    std::unique_ptr<mqtt::OutboundTopicAliases> outbound_aliases;
    // QoS 2 packet ids received and not yet released (PUBREL), sorted: at most
    // ConnectionContext::receive_maximum (5.0:3.3.4; QoS 1 is acknowledged at once).
    std::vector<uint16_t> qos2_pending;
    // The context of the Accept in progress: SendConnack is called from inside it.
    ConnectionContext* context = nullptr;
  };


  // The state of an enhanced authentication exchange: kAuthenticating, and until the CONNACK
  // that ends it is encoded. Bounded: the CONNECT frame (max_connect_packet_size) and the
  // method's messages (auth::scram::kMaxMessageBytes each).
  struct AuthExchange {
    std::unique_ptr<auth::AuthSession> session;
    std::vector<uint8_t> connect_frame;
    std::string method;
    std::string_view success_data;  // the method's last data, in the session, for the CONNACK
    std::vector<uint8_t> properties;
    uint64_t deadline_ms = 0;
  };
  // The cold state, made on first use and kept (like a vector's capacity, so a connection that
  // often splits frames does not allocate per receive): the receive-side buffers, at 5.0 the
  // Mqtt5State, and the exchange state of enhanced authentication, which few connections use
  // (one pointer for all keeps the connection within its slot).
  struct Spill {
    std::vector<uint8_t> partial;  // a frame split across receives, or (paused) every byte
                                   // received after the paused packet
    std::vector<uint8_t> handoff;  // kHandoff: CONNECT and later bytes
    std::unique_ptr<Mqtt5State> mqtt5;
    std::unique_ptr<AuthExchange> auth;
    bool enhanced_auth = false;  // the CONNECT had an Authentication Method (5.0:MQTT-4.12.0-7)
    bool peer_source_applied = false;  // the transport's PeerInfo::source is in address_slot_
    // Null for plain TCP. `transport_app`: the MQTT bytes of one receive, reused.
    std::unique_ptr<Transport> transport;
    ByteBuffer transport_app;
    // HoldOutput: (token, end offset in queued_) in token order; released_end is the end of
    // the last released hold, or of queued_ when SendableQueued last found no hold (bytes
    // before it may go: a new hold does not hold them again).
    struct Hold {
      uint64_t token = 0;
      size_t end = 0;
    };
    std::vector<Hold> holds;
    size_t released_end = 0;
    const uint64_t* released_token = nullptr;
  };
  // How many bytes at the front of queued_ may be sent now (all, without holds).
  size_t SendableQueued();
  // Held replies (an upper bound: reply bytes that may be behind an unreleased hold) at their
  // bound, ReplyBytesMax() / 4.
  bool HeldRepliesFull(const ConnectionContext& context);
  // Paused or held back: frames wait in the partial buffer.
  bool waiting() const { return paused_ || held_back_; }
  void UpdateReceiveBlocked(size_t partial, const ConnectionContext& context) {
    receive_blocked_ = held_back_ || (paused_ && partial >= context.max_packet_size);
  }
  // Takes the first `bytes` of queued_ (all of it or a released prefix) for a send.
  void TakeQueuedPrefix(size_t bytes, ByteBuffer& into);
  Mqtt5State* mqtt5() const { return spill_ == nullptr ? nullptr : spill_->mqtt5.get(); }
  Spill& spill() {
    if (spill_ == nullptr) spill_ = std::make_unique<Spill>();
    return *spill_;
  }
  size_t partial_bytes() const { return spill_ == nullptr ? 0 : spill_->partial.size(); }
  AuthExchange* auth_exchange() const { return spill_ == nullptr ? nullptr : spill_->auth.get(); }
  void EndAuth() {
    if (spill_ != nullptr) spill_->auth.reset();
  }

  std::unique_ptr<Spill> spill_;
  std::span<const uint8_t> static_output_;  // pre-encoded refusal CONNACK, sent before queued_
  ByteBuffer queued_;                       // replies not yet handed to a send
  ByteBuffer sending_;                      // bytes of the send in flight (when not static)
  std::span<const uint8_t> current_;        // what the current send is working through
  SharedString client_id_;
};

}  // namespace ringmq::net

#endif  // RINGMQ_NET_CONNECTION_H_
