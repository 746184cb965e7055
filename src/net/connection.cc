#include "net/connection.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/assert.h"
#include "common/log.h"
#include "connect/client_id.h"
#include "io/listener.h"
#include "mqtt/codec.h"
#include "mqtt/properties.h"
#include "mqtt/violation.h"

namespace ringmq::net {
namespace {

// A partial-frame or output buffer that grew beyond this is released once empty, so an idle
// connection holds no large buffer while a busy one does not reallocate per message.
constexpr size_t kKeepBufferBytes = 4096;

// A client-chosen string for a log line: "(empty)" for "", control characters, quotes and
// non-ASCII bytes escaped, so a client id cannot forge or break log lines.
std::string Printable(std::string_view text) {
  if (text.empty()) return "(empty)";
  return absl::CHexEscape(absl::string_view(text.data(), text.size()));
}

const char* LevelName(mqtt::ProtocolLevel level) {
  switch (level) {
    case mqtt::ProtocolLevel::kMqtt31:
      return "3.1";
    case mqtt::ProtocolLevel::kMqtt311:
      return "3.1.1";
    case mqtt::ProtocolLevel::kMqtt5:
      return "5.0";
  }
  return "?";
}

// The counter of server-sent DISCONNECTs with `reason`.
metrics::Counter& DisconnectCounter(mqtt::ReasonCode reason, metrics::ShardCounters& counters) {
  switch (reason) {
    case mqtt::ReasonCode::kMalformedPacket:
      return counters.disconnect_sent_malformed_packet;
    case mqtt::ReasonCode::kProtocolError:
      return counters.disconnect_sent_protocol_error;
    case mqtt::ReasonCode::kServerShuttingDown:
      return counters.disconnect_sent_server_shutting_down;
    case mqtt::ReasonCode::kKeepAliveTimeout:
      return counters.disconnect_sent_keep_alive_timeout;
    case mqtt::ReasonCode::kSessionTakenOver:
      return counters.disconnect_sent_session_taken_over;
    case mqtt::ReasonCode::kReceiveMaximumExceeded:
      return counters.disconnect_sent_receive_maximum_exceeded;
    case mqtt::ReasonCode::kTopicAliasInvalid:
      return counters.disconnect_sent_topic_alias_invalid;
    case mqtt::ReasonCode::kPacketTooLarge:
      return counters.disconnect_sent_packet_too_large;
    case mqtt::ReasonCode::kRetainNotSupported:
      return counters.disconnect_sent_retain_not_supported;
    case mqtt::ReasonCode::kQosNotSupported:
      return counters.disconnect_sent_qos_not_supported;
    default:
      return counters.disconnect_sent_other;
  }
}

// The CONNACK property block of an accepted 5.0 CONNECT: the integer properties in a fixed
// buffer, the (at most two) strings after them in `strings`.
struct ConnackProperties {
  std::array<uint8_t, 64> integers{};  // at most 9 integer properties of at most 5 bytes
  size_t integers_size = 0;
  std::string strings;
  void Integer(mqtt::PropertyId id, uint32_t value) {
    RINGMQ_ASSERT(integers_size + mqtt::IntegerPropertySize(id, value) <= integers.size());
    integers_size +=
        mqtt::EncodeIntegerProperty(id, value, std::span<uint8_t>(integers).subspan(integers_size));
  }
  void String(mqtt::PropertyId id, std::string_view value) {
    const size_t old_size = strings.size();
    strings.append(mqtt::StringPropertySize(id, value), '\0');
    mqtt::EncodeStringProperty(
        id, value,
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(strings.data()), strings.size())
            .subspan(old_size));
  }
  std::vector<uint8_t> Block() const {
    std::vector<uint8_t> block(integers.begin(),
                               integers.begin() + static_cast<std::ptrdiff_t>(integers_size));
    block.insert(block.end(), strings.begin(), strings.end());
    return block;
  }
};

// The Maximum Packet Size of a 5.0 CONNECT (5.0:3.1.2.11.4); 0: none. Read in place.
uint32_t ClientMaximumPacketSize(const mqtt::Connect& connect) {
  const std::optional<mqtt::Property> size =
      connect.properties.Find(mqtt::PropertyId::kMaximumPacketSize);
  return size ? size->integer : 0;
}

// The size of a 5.0 CONNACK whose properties take `property_length` bytes (5.0:3.2).
size_t ConnackSize(size_t property_length) {
  const size_t remaining_length =
      2 + mqtt::VariableByteIntegerSize(static_cast<uint32_t>(property_length)) + property_length;
  return 1 + mqtt::VariableByteIntegerSize(static_cast<uint32_t>(remaining_length)) +
         remaining_length;
}

bool IsClientToServer(mqtt::PacketType type) {
  switch (type) {
    case mqtt::PacketType::kConnack:
    case mqtt::PacketType::kSuback:
    case mqtt::PacketType::kUnsuback:
    case mqtt::PacketType::kPingresp:
      return false;
    default:
      return true;
  }
}

// The Authentication Method of a 5.0 CONNECT, if it has one (5.0 §3.1.2.11.9).
std::optional<std::string_view> AuthMethodOf(const mqtt::Result<mqtt::Connect>& connect) {
  if (!connect.ok() || !connect.value().level_supported ||
      connect.value().protocol_level != static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5)) {
    return std::nullopt;
  }
  return connect.value().properties.Values().authentication_method;
}

}  // namespace

void Connection::Open(int fd, uint64_t now_ms) {
  RINGMQ_ASSERT(fd >= 0);
  *this = Connection();
  fd_ = fd;
  last_packet_ms_ = now_ms;
  event_ms_ = now_ms;
}

void Connection::Adopt(int fd, uint64_t now_ms) {
  Open(fd, now_ms);
  pre_admitted_ = true;
  holds_client_slot_ = true;
}

std::vector<uint8_t> Connection::TakeHandoffBytes() {
  RINGMQ_ASSERT(state_ == State::kHandoff);
  RINGMQ_ASSERT(spill_ != nullptr);  // the CONNECT at least is kept
  return std::move(spill_->handoff);
}

void Connection::ReleaseForHandoff() {
  RINGMQ_ASSERT(state_ == State::kHandoff);
  holds_client_slot_ = false;  // the adopting connection holds it now
  transport_closed_ = true;
  fd_ = -1;  // the descriptor belongs to the home shard now
}

void Connection::SendConnack(bool session_present, const ConnackExtras& extras) {
  if (mqtt5() == nullptr) {
    static_output_ = connect::ConnackBytes(mqtt::ConnackCode::kAccepted, session_present);
    return;
  }
  // The sink calls this from OnConnect, before anything else is queued: CONNACK goes first
  // (5.0:MQTT-3.2.0-1: no packet but AUTH before the CONNACK).
  // After an enhanced authentication exchange its AUTH packets may still be on their way.
  RINGMQ_ASSERT(auth_exchange() != nullptr || (queued_.empty() && current_.empty()));
  RINGMQ_ASSERT(mqtt5()->context != nullptr);  // set by Accept (kept while served)
  ConnectionContext& context = *mqtt5()->context;
  // 5.0:3.2.2.3: what the server supports and its limits. Absent properties mean the defaults
  // (Maximum QoS 2, Retain / Wildcard / Subscription Identifier / Shared Subscription
  // available), so only the limits that differ are sent.
  using mqtt::PropertyId;
  ConnackProperties properties;
  if (extras.session_expiry_s) {
    properties.Integer(PropertyId::kSessionExpiryInterval, *extras.session_expiry_s);
  }
  if (context.receive_maximum != 65535) {
    properties.Integer(PropertyId::kReceiveMaximum, context.receive_maximum);
  }
  if (context.max_qos < 2) properties.Integer(PropertyId::kMaximumQos, context.max_qos);
  if (!context.retain_available) properties.Integer(PropertyId::kRetainAvailable, 0);
  properties.Integer(PropertyId::kMaximumPacketSize, context.max_packet_size);
  if (mqtt5()->assigned_client_id) {
    properties.String(PropertyId::kAssignedClientIdentifier, client_id_.view());  // MQTT-3.1.3-7
  }
  if (context.topic_alias_maximum != 0) {
    properties.Integer(PropertyId::kTopicAliasMaximum, context.topic_alias_maximum);
  }
  if (mqtt5()->server_keep_alive_s) {
    properties.Integer(PropertyId::kServerKeepAlive, *mqtt5()->server_keep_alive_s);
  }
  if (mqtt5()->request_response_information && !context.response_information.empty() &&
      context.response_information.size() + client_id_.view().size() <= UINT16_MAX) {
    // Optional for the server (5.0:3.2.2.3.15), so left out when it would make the CONNACK
    // larger than the client's Maximum Packet Size (5.0:MQTT-3.1.2-24).
    const std::string information = context.response_information + std::string(client_id_.view());
    const size_t property_length =
        properties.integers_size + properties.strings.size() +
        mqtt::StringPropertySize(PropertyId::kResponseInformation, information);
    if (mqtt5()->client_maximum_packet_size == 0 ||
        ConnackSize(property_length) <= mqtt5()->client_maximum_packet_size) {
      properties.String(PropertyId::kResponseInformation, information);
    }
  }
  if (auth_exchange() != nullptr) {
    // 5.0:MQTT-4.12.0-5: a successful CONNACK names the CONNECT's method; its data is the
    // method's last message (SCRAM: the server signature).
    const mqtt::Properties auth = AuthProperties(auth_exchange()->success_data);
    properties.strings.append(reinterpret_cast<const char*>(auth.raw().data()),
                              auth.raw().size());
  }
  const std::vector<uint8_t> block = properties.Block();
  RINGMQ_ASSERT(mqtt::ValidateProperties(block, mqtt::PacketBit(mqtt::PacketType::kConnack)) ==
                mqtt::Violation::kNone);
  Queue(mqtt::Connack{.session_present = session_present,
                      .reason_code = mqtt::ReasonCode::kSuccess,
                      .properties = mqtt::Properties(block)},
        context);
}

void Connection::Disconnect(mqtt::ReasonCode reason, uint64_t now_ms, ConnectionContext& context) {
  if (state_ == State::kClosing) return;
  event_ms_ = now_ms;
  QueueDisconnect(reason, context);
  StartClosing(now_ms);
}

void Connection::QueueDisconnect(mqtt::ReasonCode reason, ConnectionContext& context) {
  if (level_ != mqtt::ProtocolLevel::kMqtt5 || state_ != State::kOpen) return;
  RINGMQ_ASSERT(
      mqtt::IsReasonCodeAllowed(static_cast<uint8_t>(reason), mqtt::PacketType::kDisconnect));
  DisconnectCounter(reason, *context.counters).Add();
  Queue(mqtt::Disconnect{.reason_code = reason}, context);
  mqtt5()->linger_wanted = true;
}

bool Connection::WantsLinger() const {
  const Mqtt5State* state = mqtt5();
  return state != nullptr && state->linger_wanted && !state->lingering && !transport_closed_ &&
         state_ == State::kClosing && ReadyToClose();
}

void Connection::StartLinger(uint64_t now_ms, ConnectionContext& context) {
  RINGMQ_ASSERT(WantsLinger());
  Mqtt5State& state = *mqtt5();
  state.lingering = true;
  state.linger_until_ms = std::min(now_ms + kLingerMs, closing_since_ms_ + kCloseGraceMs);
  context.counters->closes_lingered.Add();
}

std::optional<uint32_t> Connection::disconnect_session_expiry_s() const {
  return mqtt5() == nullptr ? std::nullopt : mqtt5()->disconnect_session_expiry_s;
}

uint16_t Connection::client_receive_maximum() const {
  return mqtt5() == nullptr ? 65535 : mqtt5()->client_receive_maximum;
}
uint32_t Connection::client_maximum_packet_size() const {
  return mqtt5() == nullptr ? 0 : mqtt5()->client_maximum_packet_size;
}
uint16_t Connection::client_topic_alias_maximum() const {
  return mqtt5() == nullptr ? 0 : mqtt5()->client_topic_alias_maximum;
}
bool Connection::request_problem_information() const {
  return mqtt5() == nullptr || mqtt5()->request_problem_information;
}

void Connection::SetTransport(std::unique_ptr<Transport> transport, ConnectionContext& context) {
  RINGMQ_ASSERT(transport != nullptr);
  spill().transport = std::move(transport);
  if (spill_->transport->peer().source.has_value()) {
    ApplyPeerSource(*spill_->transport->peer().source, context);
  }
}

std::unique_ptr<Transport> Connection::TakeTransport() {
  RINGMQ_ASSERT(state_ == State::kHandoff);
  return spill_ == nullptr ? nullptr : std::move(spill_->transport);
}

std::string Connection::PeerName() const {
  if (const Transport* t = transport(); t != nullptr && t->peer().source.has_value()) {
    return io::AddressName(*t->peer().source);
  }
  return io::PeerAddress(fd_);
}

void Connection::ApplyPeerSource(const sockaddr_storage& source, ConnectionContext& context) {
  spill().peer_source_applied = true;
  if (context.addresses == nullptr) return;
  if (address_slot_ != connect::AddressTable::kNoSlot) context.addresses->Close(address_slot_);
  address_slot_ = context.addresses->SlotOf(source);
  if (address_slot_ != connect::AddressTable::kNoSlot) context.addresses->Open(address_slot_);
}

void Connection::OnReceive(std::span<const uint8_t> bytes, uint64_t now_ms,
                           ConnectionContext& context) {
  RINGMQ_ASSERT(context.counters != nullptr);
  if (!pre_admitted_ || state_ != State::kAwaitConnect) {
    context.counters->bytes_received.Add(bytes.size());  // handed-off bytes counted once
    context.counters->listener(listener_).bytes_received.Add(bytes.size());
  }
  Transport* t = transport();
  if (t == nullptr || (pre_admitted_ && state_ == State::kAwaitConnect)) {
    // Plain TCP; or the hand-off's bytes, which the first shard's transport already decoded.
    return ReceiveMqtt(bytes, now_ms, context);
  }
  if (state_ == State::kClosing) return ReceiveMqtt(bytes, now_ms, context);  // discarded
  ByteBuffer& app = spill_->transport_app;
  app.clear();
  const TransportLayer::Result result = t->Receive(bytes, app, *context.counters);
  if (!spill_->peer_source_applied && t->peer().source.has_value()) {
    ApplyPeerSource(*t->peer().source, context);
  }
  if (!app.empty()) ReceiveMqtt(app, now_ms, context);
  if (result == TransportLayer::Result::kClose && state_ != State::kClosing) {
    if (const std::string_view reason = t->close_reason(); !reason.empty()) {
      RINGMQ_LOG_DEBUG("closing %s: %s", PeerName().c_str(), std::string(reason).c_str());
    }
    event_ms_ = now_ms;
    // The layer counted why (its counter names the cause) and queued its goodbye in wire().
    RINGMQ_LOG_DEBUG("closing %s (client %s): refused by the %s layer", PeerName().c_str(),
                     Printable(client_id_.view()).c_str(),
                     t->open() ? "transport" : "transport's handshake");
    StartClosing(now_ms);
  }
  if (state_ != State::kClosing && !current_.empty() &&
      t->wire().size() > context.ReplyBytesMax()) {
    // The layers' own answers (WebSocket pongs, TLS post-handshake messages) wait in wire()
    // while a send is stuck: a peer that keeps asking but does not read is closed, as
    // ReplyFits closes one that does so with MQTT requests. (Without a send pending, wire()
    // goes out next: a large first TLS flight is not held against the peer.)
    context.counters->output_overflow.Add();
    event_ms_ = now_ms;
    StartClosing(now_ms);
  }
}

void Connection::ReceiveMqtt(std::span<const uint8_t> bytes, uint64_t now_ms,
                             ConnectionContext& context) {
  if (state_ == State::kClosing) {  // nothing after a close decision is acted on
    if (Mqtt5State* state = mqtt5(); state != nullptr && state->lingering) {
      context.counters->linger_discarded_bytes.Add(bytes.size());
      state->linger_discarded = static_cast<uint32_t>(
          std::min<size_t>(size_t{state->linger_discarded} + bytes.size(), UINT32_MAX));
      // Enough: the deadline passes now, and the shard ends the receive and closes.
      if (state->linger_discarded >= kLingerMaxBytes) state->linger_until_ms = now_ms;
    }
    return;
  }
  event_ms_ = now_ms;
  if (state_ == State::kHandoff) {
    // Bounded: a client may pipeline packets behind its CONNECT, but not without limit: the
    // CONNECT and at most one packet of the largest size.
    std::vector<uint8_t>& handoff = spill().handoff;
    if (handoff.size() + bytes.size() >
        size_t{context.ConnectPacketSizeMax()} + context.max_packet_size) {
      CloseForViolation(mqtt::Violation::kPacketTooLarge, context);
      return;
    }
    handoff.insert(handoff.end(), bytes.begin(), bytes.end());
    return;
  }
  if (waiting()) {
    // Processed by Resume or OnOutputReleased, in order, after the paused packet.
    std::vector<uint8_t>& partial = spill().partial;
    partial.insert(partial.end(), bytes.begin(), bytes.end());
    UpdateReceiveBlocked(partial.size(), context);
    return;
  }
  if (partial_bytes() == 0) {
    // Fast path: decode straight from the receive buffer; copy only a trailing split frame.
    const size_t used = ProcessFrames(bytes, context);
    if (state_ != State::kClosing && used < bytes.size()) {
      spill().partial.assign(bytes.begin() + static_cast<std::ptrdiff_t>(used), bytes.end());
    }
    if (state_ == State::kClosing && spill_ != nullptr) spill_->partial.clear();
    UpdateReceiveBlocked(partial_bytes(), context);
  } else {
    std::vector<uint8_t>& partial = spill_->partial;
    partial.insert(partial.end(), bytes.begin(), bytes.end());
    ProcessPartial(context);
  }
}

void Connection::Resume(uint64_t now_ms, ConnectionContext& context) {
  RINGMQ_ASSERT(paused_);
  paused_ = false;
  UpdateReceiveBlocked(0, context);
  if (state_ != State::kOpen) return;  // closing: nothing more is acted on
  event_ms_ = now_ms;
  last_packet_ms_ = now_ms;
  if (!held_back_) ProcessPartial(context);
}

void Connection::OnOutputReleased(uint64_t now_ms, ConnectionContext& context) {
  if (!held_back_ || HeldRepliesFull(context)) return;
  held_back_ = false;
  UpdateReceiveBlocked(partial_bytes(), context);
  if (state_ != State::kOpen) return;
  event_ms_ = now_ms;
  last_packet_ms_ = now_ms;  // the frames waited for our disk (as for Resume)
  if (!paused_) ProcessPartial(context);
}

bool Connection::HeldRepliesFull(const ConnectionContext& context) {
  if (spill_ == nullptr || spill_->holds.empty()) return false;
  const size_t held = queued_.size() - SendableQueued();
  return std::min<size_t>(queued_reply_bytes_, held) >= context.ReplyBytesMax() / 4;
}

void Connection::ProcessPartial(ConnectionContext& context) {
  if (spill_ == nullptr) return;  // nothing waits
  // A hand-off decided in ProcessFrames copies from `partial` into the same Spill's handoff:
  // the Spill exists already, so `partial` stays where it is.
  std::vector<uint8_t>& partial = spill_->partial;
  const size_t used = ProcessFrames(partial, context);
  partial.erase(partial.begin(), partial.begin() + static_cast<std::ptrdiff_t>(used));
  if (state_ == State::kClosing) partial.clear();
  UpdateReceiveBlocked(partial.size(), context);
  if (partial.empty() && partial.capacity() > kKeepBufferBytes) {
    std::vector<uint8_t>().swap(partial);
  }
}

size_t Connection::ProcessFrames(std::span<const uint8_t> bytes, ConnectionContext& context) {
  size_t offset = 0;
  while (state_ != State::kClosing && !waiting() && offset < bytes.size()) {
    const std::span<const uint8_t> rest = bytes.subspan(offset);
    // The first packet has its own, smaller limit: a peer not yet admitted must not make the
    // broker buffer up to max_packet_size. PeekFrame refuses from the fixed header alone.
    const uint32_t limit =
        state_ == State::kAwaitConnect || state_ == State::kAuthenticating
            ? context.ConnectPacketSizeMax()
            : context.max_packet_size;
    const mqtt::Frame frame = mqtt::PeekFrame(rest, limit, level_);
    if (frame.status == mqtt::FrameStatus::kNeedMore) break;
    if (frame.status == mqtt::FrameStatus::kInvalid) {
      CloseForViolation(frame.violation, context);
      break;
    }
    // Keepalive counts complete control packets (MQTT-3.1.2-24), so a peer trickling bytes of
    // a packet it never finishes does not keep the connection alive.
    last_packet_ms_ = event_ms_;
    HandleFrame(frame.header,
                rest.subspan(frame.header.header_length, frame.header.remaining_length), context);
    if (state_ == State::kHandoff) {
      // Keep the CONNECT and everything after it for the home shard.
      spill().handoff.assign(rest.begin(), rest.end());
      return bytes.size();
    }
    offset += frame.header.total_length();
    // Persistence: replies held for the log at their bound; the rest waits (held_back()).
    if (spill_ != nullptr && !spill_->holds.empty() && state_ == State::kOpen &&
        HeldRepliesFull(context)) {
      held_back_ = true;
      context.counters->persist_input_held_back.Add();
    }
  }
  return offset;
}

void Connection::HandleFrame(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                             ConnectionContext& context) {
  if (state_ == State::kAwaitConnect) {
    HandleConnect(header, body, context);
    return;
  }
  if (state_ == State::kAuthenticating) {
    HandleAuth(header, body, context);
    return;
  }
  if (header.type == mqtt::PacketType::kConnect) {
    CloseForViolation(mqtt::Violation::kSecondConnect, context);  // MQTT-3.1.0-2
    return;
  }
  const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(header, body, level_);
  if (!packet.ok()) {
    CloseForViolation(packet.violation(), context);
    return;
  }
  HandlePacket(packet.value(), context);
}

void Connection::CountConnect(connect::Reason reason, ConnectionContext& context) const {
  context.counters->connect[static_cast<size_t>(reason)].Add();
  if (internal_) return;  // a bridge's local session is no listener's client
  metrics::ListenerCounters& listener = context.counters->listener(listener_);
  if (reason == connect::Reason::kAccepted) {
    listener.connect_accepted.Add();
  } else {
    listener.connect_refused.Add();
  }
}

void Connection::ReleaseClientSlot(ConnectionContext& context) const {
  context.connected_clients->fetch_sub(1, std::memory_order_relaxed);
  if (context.listener_clients != nullptr) {
    context.listener_clients[listener_].connected.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Connection::HandleConnect(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                               ConnectionContext& context) {
  // MQTT-3.1.0-1: the first packet must be CONNECT; anything else is a malformed connect.
  mqtt::Result<mqtt::Connect> connect =
      header.type == mqtt::PacketType::kConnect
          ? mqtt::DecodeConnect(header, body, /*accept_mqtt5=*/true)
          : mqtt::Result<mqtt::Connect>(mqtt::Violation::kUnexpectedPacket);
  // Before the hand-off branch: the home shard decodes the same bytes and must see the same
  // user (the transport, and so the certificate identity, moved with the connection).
  // A bridge's local session has no certificate: it authenticates with what it sends.
  const connect::CertificateUser certificate_user =
      internal_ ? connect::CertificateUser::kNotUsed : ApplyCertificateIdentity(connect, context);
  const std::optional<std::string_view> auth_method = AuthMethodOf(connect);
  const std::span<const uint8_t> frame(body.data() - header.header_length, header.total_length());
  if (pre_admitted_) {
    // Handed off by the shard that admitted it: the same bytes decode the same way. An empty
    // id gets an id assigned here, whose home is this shard (connect/client_id.h).
    RINGMQ_ASSERT(connect.ok() && connect.value().level_supported);
    if (auth_method) {
      StartAuth(connect.value(), frame, context);  // the first shard checked the method exists
      return;
    }
    Accept(connect.value(),
           connect::Decision{.outcome = connect::Outcome::kAccept,
                             .reason = connect::Reason::kAccepted,
                             .assign_client_id = connect.value().client_id.empty()},
           context);
    return;
  }
  // Reserve a connected-client slot first (broker-wide and on the listener) so the limits hold
  // exactly across shards.
  // A bridge's local session (internal_) is part of the configuration, not a client that
  // arrived: it reserves no slot and only a shutdown, the protocol checks and authentication
  // can refuse it (BrokerState's capacity fields stay 0).
  connect::BrokerState broker{
      .shutting_down = context.shutting_down->load(std::memory_order_relaxed),
      .listener = listener_};
  if (!internal_) {
    broker.connected_clients = context.connected_clients->fetch_add(1, std::memory_order_relaxed);
    broker.memory_full = context.memory != nullptr &&
                         context.memory->Level() >= memory::Pressure::kRefuseConnections;
    if (context.listener_clients != nullptr) {
      broker.listener_connected_clients =
          context.listener_clients[listener_].connected.fetch_add(1, std::memory_order_relaxed);
    }
    if (context.addresses != nullptr && address_slot_ != connect::AddressTable::kNoSlot) {
      broker.address_connections = context.addresses->Connections(address_slot_);
      broker.address_connects_this_second =
          context.addresses->CountConnect(address_slot_, static_cast<uint32_t>(event_ms_ / 1000));
    }
  }
  broker.certificate_user = certificate_user;
  const connect::Decision decision = connect::Admit(connect, broker, context.policy);
  if (decision.outcome == connect::Outcome::kAccept && auth_method) {
    // Counted in connect outcomes when the exchange succeeds; its failures in auth counters.
    holds_client_slot_ = !internal_;
    level_ = mqtt::ProtocolLevel::kMqtt5;
    // Admit refused a method the policy does not offer (0x8C, 5.0:MQTT-4.12.0-1).
    RINGMQ_ASSERT(context.auth_methods != nullptr &&
                  context.auth_methods->Find(*auth_method) != nullptr);
    const std::string_view client_id = connect.value().client_id;
    if (!client_id.empty() &&
        connect::HomeShard(client_id, context.shard_count) != context.shard_index) {
      // The exchange runs where the session lives: ProcessFrames hands the CONNECT over.
      client_id_ = SharedString(client_id);
      state_ = State::kHandoff;
      return;
    }
    StartAuth(connect.value(), frame, context);
    return;
  }
  CountConnect(decision.reason, context);
  if (decision.outcome == connect::Outcome::kAccept) {
    holds_client_slot_ = !internal_;
    switch (static_cast<mqtt::ProtocolLevel>(connect.value().protocol_level)) {
      case mqtt::ProtocolLevel::kMqtt31:
        context.counters->connect_accepted_mqtt31.Add();
        break;
      case mqtt::ProtocolLevel::kMqtt311:
        context.counters->connect_accepted_mqtt311.Add();
        break;
      case mqtt::ProtocolLevel::kMqtt5:
        context.counters->connect_accepted_mqtt5.Add();
        break;
    }
    Accept(connect.value(), decision, context);
    return;
  }
  if (!internal_) ReleaseClientSlot(context);
  if (decision.outcome == connect::Outcome::kRefuse) {
    // Both static: the refusal path neither encodes nor allocates.
    static_output_ = decision.mqtt5 ? connect::ConnackBytes5(
                                          decision.reason, ClientMaximumPacketSize(connect.value()))
                                    : connect::ConnackBytes(decision.return_code);
  } else if (decision.silenced) {
    context.counters->connect_closed_silent_policy.Add();
    context.counters->connect_silenced[static_cast<size_t>(decision.reason)].Add();
  }
  if (LogLevel level; context.event_log.Admit(event_ms_, &level)) {
    LogLine(
        level, "connect from %s (client %s) refused: %s (%s, CONNACK %s)",
        PeerName().c_str(),
        connect.ok() ? (Printable(connect.value().client_id)).c_str() : "?",
        std::string(connect::LabelOf(decision.reason)).c_str(),
        decision.reason == connect::Reason::kMalformed
            ? std::string(mqtt::RuleOf(decision.violation)).c_str()
            : "policy",
        decision.outcome == connect::Outcome::kRefuse
            ? absl::StrCat("0x", absl::Hex(decision.mqtt5 ? static_cast<int>(decision.reason_code)
                                                          : static_cast<int>(decision.return_code),
                                           absl::kZeroPad2))
                  .c_str()
            : "none");
  }
  StartClosing(event_ms_);  // not served: no sink to tell; starts the close grace
}

connect::CertificateUser Connection::ApplyCertificateIdentity(
    mqtt::Result<mqtt::Connect>& connect, const ConnectionContext& context) const {
  if (listener_ >= context.listeners.size() ||
      !context.listeners[listener_].use_identity_as_username || !connect.ok()) {
    return connect::CertificateUser::kNotUsed;
  }
  const Transport* t = transport();
  if (t == nullptr || t->peer().certificate_identity.empty()) {
    return connect::CertificateUser::kMissing;
  }
  // As Mosquitto's use_identity_as_username: the certificate names the user; whatever user
  // name and password the CONNECT carries are ignored. The view lives as long as the transport.
  connect.value().user_name = std::string_view(t->peer().certificate_identity);
  connect.value().password.reset();
  return connect::CertificateUser::kProven;
}

void Connection::Accept(const mqtt::Connect& connect, const connect::Decision& decision,
                        ConnectionContext& context) {
  state_ = State::kOpen;
  level_ = static_cast<mqtt::ProtocolLevel>(connect.protocol_level);
  keepalive_s_ = connect.keepalive_s;
  if (decision.assign_client_id) {
    client_id_ = SharedString(context.assigned_ids.Next(context.shard_index, context.shard_count));
  } else {
    client_id_ = SharedString(connect.client_id);
  }
  RINGMQ_ASSERT(context.sink != nullptr);
  mqtt::Connect served = connect;
  if (level_ == mqtt::ProtocolLevel::kMqtt5) {
    AcceptMqtt5(connect, decision.assign_client_id, context);
  } else if (served.will) {
    // 3.1.x has no code to refuse a will the broker cannot honour (admission refuses such 5.0
    // wills with 0x9B / 0x9A): it is published at max_qos, and not retained without retain.
    served.will->qos = static_cast<mqtt::QoS>(
        std::min<uint8_t>(static_cast<uint8_t>(served.will->qos), context.max_qos));
    served.will->retain = served.will->retain && context.retain_available;
  }
  const PacketSink::ConnectAction action = context.sink->OnConnect(*this, served);
  if (action == PacketSink::ConnectAction::kHandoff) {
    // The home shard accepts it again with its own context.
    if (mqtt5() != nullptr) mqtt5()->context = nullptr;
    state_ = State::kHandoff;
    return;
  }
  // Served: the context stays (it is this shard's, which serves the connection to its end), so
  // that a CONNACK the sink holds (shard/router_cluster_session.cc) can be sent later.
  sink_ = context.sink;
  if (LogLevel level; context.event_log.Admit(event_ms_, &level)) {
    const Transport* t = transport();
    const bool tls = t != nullptr && !t->peer().tls_description.empty();
    LogLine(level, "client %s connected from %s (MQTT %s, keepalive %us, clean session %d%s%s%s)",
            (Printable(client_id_.view())).c_str(), PeerName().c_str(), LevelName(level_),
            keepalive_s_, connect.clean_session ? 1 : 0,
            connect.user_name ? (", user " + Printable(*connect.user_name)).c_str() : "",
            tls ? ", " : "", tls ? t->peer().tls_description.c_str() : "");
  }
}

void Connection::AcceptMqtt5(const mqtt::Connect& connect, bool assigned_client_id,
                             ConnectionContext& context) {
  spill().mqtt5 = std::make_unique<Mqtt5State>();
  Mqtt5State& state = *spill_->mqtt5;
  state.context = &context;
  const mqtt::PropertyValues values = connect.properties.Values();
  state.client_receive_maximum = values.receive_maximum.value_or(65535);
  state.client_maximum_packet_size = values.maximum_packet_size.value_or(0);
  state.client_topic_alias_maximum = values.topic_alias_maximum.value_or(0);
  // 5.0:MQTT-3.3.2-11: no outbound alias above the client's maximum, none when it is 0.
  if (const uint16_t maximum =
          std::min(context.outbound_topic_aliases, state.client_topic_alias_maximum);
      maximum != 0) {
    state.outbound_aliases = std::make_unique<mqtt::OutboundTopicAliases>(maximum);
  }
  state.request_problem_information = values.request_problem_information.value_or(1) == 1;
  state.request_response_information = values.request_response_information.value_or(0) == 1;
  state.connect_session_expiry_zero = values.session_expiry_interval_s.value_or(0) == 0;
  state.assigned_client_id = assigned_client_id;
  // max_keepalive: a client asking for no keepalive or a longer one is told the server's
  // (5.0:3.2.2.3.14), and the connection uses it (5.0:MQTT-3.2.2-21).
  if (context.max_keepalive_s != 0 &&
      (keepalive_s_ == 0 || keepalive_s_ > context.max_keepalive_s)) {
    keepalive_s_ = context.max_keepalive_s;
    state.server_keep_alive_s = context.max_keepalive_s;
  }
}

void Connection::HandleDisconnect(const mqtt::Disconnect& disconnect, ConnectionContext& context) {
  context.counters->client_disconnects.Add();
  if (mqtt5() != nullptr) {
    const std::optional<mqtt::Property> expiry =
        disconnect.properties.Find(mqtt::PropertyId::kSessionExpiryInterval);
    if (expiry && expiry->integer != 0 && mqtt5()->connect_session_expiry_zero) {
      // Not a valid DISCONNECT, so the will stays (5.0:3.14.2.2.2).
      CloseForViolation(mqtt::Violation::kDisconnectSessionExpiry, context);
      return;
    }
    if (expiry) mqtt5()->disconnect_session_expiry_s = expiry->integer;
  }
  // 5.0:3.14.4: 0x04 asks for the will to be published; every other reason discards it.
  graceful_disconnect_ = disconnect.reason_code != mqtt::ReasonCode::kDisconnectWithWillMessage;
  StartClosing(event_ms_);
}

void Connection::HandlePublish(const mqtt::Packet& packet, ConnectionContext& context) {
  const mqtt::Publish& publish = std::get<mqtt::Publish>(packet);
  // Maximum QoS and Retain Available bind every level (see ConnectionContext).
  mqtt::Violation violation = mqtt::Violation::kNone;
  if (static_cast<uint8_t>(publish.qos) > context.max_qos) {
    violation = mqtt::Violation::kQosNotSupported;
  } else if (publish.retain && !context.retain_available) {
    violation = mqtt::Violation::kRetainNotSupported;
  }
  if (violation == mqtt::Violation::kNone &&
      (mqtt5() == nullptr ||
       (publish.properties.empty() && publish.qos != mqtt::QoS::k2))) {
    // 3.1.x, and a 5.0 PUBLISH without properties below QoS 2 (no alias, no Subscription
    // Identifier, nothing for Receive Maximum to count): the packet as decoded, not copied.
    sink_->OnPacket(*this, packet);
    return;
  }
  if (violation == mqtt::Violation::kNone) {
    mqtt::Packet resolved = packet;  // views: the topic may be replaced by its alias's
    violation = CheckPublish5(std::get<mqtt::Publish>(resolved), context);
    if (violation == mqtt::Violation::kNone) {
      sink_->OnPacket(*this, resolved);
      return;
    }
  }
  CloseForViolation(violation, context);
}

mqtt::Violation Connection::CheckPublish5(mqtt::Publish& publish, ConnectionContext& context) {
  RINGMQ_ASSERT(mqtt5() != nullptr);
  Mqtt5State& state = *mqtt5();
  // One walk over the block for the two properties checked here (no full decode).
  std::optional<mqtt::Property> alias_property;
  for (const mqtt::Property property : publish.properties) {
    if (property.id == mqtt::PropertyId::kSubscriptionIdentifier) {
      return mqtt::Violation::kSubscriptionIdentifierFromClient;
    }
    if (property.id == mqtt::PropertyId::kTopicAlias) alias_property = property;
  }
  if (alias_property) {
    const auto alias = static_cast<uint16_t>(alias_property->integer);  // not 0: the decoder
                                                                          // refused it
    if (alias > context.topic_alias_maximum) return mqtt::Violation::kTopicAliasAboveMaximum;
    if (state.topic_aliases.size() < alias) state.topic_aliases.resize(alias);
    std::string& topic = state.topic_aliases[alias - 1];
    if (publish.topic.empty()) {
      // 5.0:3.3.2.3.4: an alias the client has not set in this connection.
      if (topic.empty()) return mqtt::Violation::kTopicAliasUnknown;
      publish.topic = topic;
      context.counters->topic_alias_used.Add();
    } else {
      // Charged by capacity: assign never shrinks it, so a shorter topic still holds the
      // longest one's bytes.
      const size_t old_capacity = topic.capacity();
      topic.assign(publish.topic);
      RINGMQ_ASSERT(topic.capacity() >= old_capacity);
      state.topic_alias_bytes += topic.capacity() - old_capacity;
      context.counters->topic_alias_set.Add();
    }
  }
  if (publish.qos == mqtt::QoS::k2) {
    // 5.0:3.3.4 Flow Control: QoS 2 PUBLISHes count until the PUBREL (answered at once with
    // PUBCOMP); a repeated id is the same message.
    std::vector<uint16_t>& pending = state.qos2_pending;
    const auto at = std::lower_bound(pending.begin(), pending.end(), publish.packet_id);
    if (at == pending.end() || *at != publish.packet_id) {
      if (pending.size() >= context.receive_maximum) {
        context.counters->receive_maximum_exceeded.Add();
        return mqtt::Violation::kReceiveMaximumExceeded;
      }
      pending.insert(at, publish.packet_id);
    }
  }
  return mqtt::Violation::kNone;
}

void Connection::OnPubrel5(uint16_t packet_id) {
  if (mqtt5() == nullptr) return;
  std::vector<uint16_t>& pending = mqtt5()->qos2_pending;
  const auto at = std::lower_bound(pending.begin(), pending.end(), packet_id);
  if (at != pending.end() && *at == packet_id) pending.erase(at);
}

void Connection::StartAuth(const mqtt::Connect& connect, std::span<const uint8_t> frame,
                           ConnectionContext& context) {
  const mqtt::PropertyValues values = connect.properties.Values();
  RINGMQ_ASSERT(values.authentication_method.has_value() && context.auth_methods != nullptr);
  const auth::AuthMethod* method = context.auth_methods->Find(*values.authentication_method);
  RINGMQ_ASSERT(method != nullptr);
  state_ = State::kAuthenticating;
  level_ = mqtt::ProtocolLevel::kMqtt5;
  holds_client_slot_ = !internal_;
  spill().enhanced_auth = true;
  spill().auth = std::make_unique<AuthExchange>();
  auth_exchange()->connect_frame.assign(frame.begin(), frame.end());
  auth_exchange()->method = *values.authentication_method;
  auth_exchange()->deadline_ms = event_ms_ + context.connect_timeout_ms;
  auth_exchange()->session = method->Start(connect.user_name);
  const std::string_view data = values.authentication_data.value_or(std::string_view());
  OnAuthStep(auth_exchange()->session->Step(data), context);
}

void Connection::HandleAuth(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                            ConnectionContext& context) {
  RINGMQ_ASSERT(auth_exchange() != nullptr);
  mqtt::Violation violation = mqtt::Violation::kNone;
  if (header.type == mqtt::PacketType::kDisconnect) {
    // The client gives up (5.0:MQTT-3.1.2-30 allows DISCONNECT here).
    context.counters->client_disconnects.Add();
    graceful_disconnect_ = true;
    StartClosing(event_ms_);
    return;
  }
  const mqtt::Result<mqtt::Packet> packet =
      header.type == mqtt::PacketType::kAuth
          ? mqtt::Decode(header, body, mqtt::ProtocolLevel::kMqtt5)
          : mqtt::Result<mqtt::Packet>(mqtt::Violation::kPacketDuringAuth);
  mqtt::PropertyValues values;
  if (!packet.ok()) {
    violation = packet.violation();
  } else {
    const mqtt::Auth& auth = std::get<mqtt::Auth>(packet.value());
    values = auth.properties.Values();
    if (auth.reason_code != mqtt::ReasonCode::kContinueAuthentication) {
      violation = mqtt::Violation::kAuthNotContinue;
    } else if (values.authentication_method != auth_exchange()->method) {
      violation = mqtt::Violation::kAuthMethodChanged;
    }
  }
  if (violation != mqtt::Violation::kNone) {
    // 5.0 §4.13: before CONNACK, the CONNACK carries the reason; then the connection closes.
    if (context.policy.reject_policy != RejectPolicy::kSilent) {
      Queue(mqtt::Connack{.reason_code = mqtt::ReasonCodeOf(violation)}, context);
    }
    CloseForViolation(violation, context);
    return;
  }
  const std::string_view data = values.authentication_data.value_or(std::string_view());
  OnAuthStep(auth_exchange()->session->Step(data), context);
}

void Connection::OnAuthStep(const auth::AuthStep& step, ConnectionContext& context) {
  switch (step.status) {
    case auth::AuthStatus::kContinue:
      // 5.0:MQTT-4.12.0-2: reason 0x18; 5.0:MQTT-4.12.0-5: the CONNECT's method.
      Queue(mqtt::Auth{.reason_code = mqtt::ReasonCode::kContinueAuthentication,
                       .properties = AuthProperties(step.data)},
            context);
      return;
    case auth::AuthStatus::kFailure:
      RefuseAuth(step.reason, auth::LabelOf(step.failure), context);  // 5.0:MQTT-4.12.0-4
      return;
    case auth::AuthStatus::kSuccess:
      auth_exchange()->success_data = step.data;
      FinishAuth(step.user, context);
      return;
  }
}

void Connection::FinishAuth(std::string_view user, ConnectionContext& context) {
  // The CONNECT decoded again from its kept bytes; the user is the one the method proved.
  const std::span<const uint8_t> frame = auth_exchange()->connect_frame;
  const mqtt::Frame peeked =
      mqtt::PeekFrame(frame, static_cast<uint32_t>(frame.size()), mqtt::ProtocolLevel::kMqtt5);
  RINGMQ_ASSERT(peeked.status == mqtt::FrameStatus::kComplete);
  const mqtt::Result<mqtt::Connect> decoded = mqtt::DecodeConnect(
      peeked.header, frame.subspan(peeked.header.header_length, peeked.header.remaining_length),
      /*accept_mqtt5=*/true);
  RINGMQ_ASSERT(decoded.ok());
  mqtt::Connect connect = decoded.value();
  connect.user_name = user;
  // The will's ACL for the proven user (the authenticator skips the password of a CONNECT
  // with an Authentication Method).
  const std::optional<bool> allow_anonymous =
      listener_ < context.policy.listeners.size()
          ? context.policy.listeners[listener_].allow_anonymous
          : std::nullopt;
  if (context.policy.authenticator != nullptr &&
      context.policy.authenticator->Check(connect, allow_anonymous) !=
          connect::AuthResult::kAllow) {
    RefuseAuth(mqtt::ReasonCode::kNotAuthorized, "will topic not authorized", context);
    return;
  }
  CountConnect(connect::Reason::kAccepted, context);
  Accept(connect,
         connect::Decision{.outcome = connect::Outcome::kAccept,
                           .reason = connect::Reason::kAccepted,
                           .assign_client_id = connect.client_id.empty()},
         context);
  RINGMQ_ASSERT(state_ != State::kHandoff);  // the exchange ran on the client id's home shard
  EndAuth();
}

void Connection::RefuseAuth(mqtt::ReasonCode reason, std::string_view log_reason,
                            ConnectionContext& context) {
  if (context.policy.reject_policy == RejectPolicy::kSilent) {
    context.counters->connect_closed_silent_policy.Add();
  } else {
    Queue(mqtt::Connack{.reason_code = reason}, context);
  }
  if (LogLevel level; context.event_log.Admit(event_ms_, &level)) {
    LogLine(level, "connect from %s (client %s) refused: authentication %s (%s, CONNACK 0x%02x)",
            PeerName().c_str(), Printable(client_id_.view()).c_str(),
            auth_exchange() != nullptr ? Printable(auth_exchange()->method).c_str() : "method",
            std::string(log_reason).c_str(), static_cast<unsigned>(reason));
  }
  StartClosing(event_ms_);
}

mqtt::Properties Connection::AuthProperties(std::string_view data) {
  RINGMQ_ASSERT(auth_exchange() != nullptr);
  std::vector<uint8_t>& block = auth_exchange()->properties;
  const size_t method_size =
      mqtt::StringPropertySize(mqtt::PropertyId::kAuthenticationMethod, auth_exchange()->method);
  const size_t data_size =
      data.empty() ? 0 : mqtt::StringPropertySize(mqtt::PropertyId::kAuthenticationData, data);
  block.resize(method_size + data_size);
  mqtt::EncodeStringProperty(mqtt::PropertyId::kAuthenticationMethod, auth_exchange()->method,
                             block);
  if (!data.empty()) {
    mqtt::EncodeStringProperty(mqtt::PropertyId::kAuthenticationData, data,
                               std::span<uint8_t>(block).subspan(method_size));
  }
  return mqtt::Properties(block);
}

void Connection::HandlePacket(const mqtt::Packet& packet, ConnectionContext& context) {
  const mqtt::PacketType type = mqtt::TypeOf(packet);
  switch (type) {
    case mqtt::PacketType::kPingreq:
      Queue(mqtt::Pingresp{}, context);  // MQTT-3.12.4-1
      return;
    case mqtt::PacketType::kDisconnect:
      HandleDisconnect(std::get<mqtt::Disconnect>(packet), context);
      return;
    case mqtt::PacketType::kPublish:
      HandlePublish(packet, context);
      return;
    case mqtt::PacketType::kPubrel:
      OnPubrel5(std::get<mqtt::Pubrel>(packet).packet_id);
      sink_->OnPacket(*this, packet);
      return;
    case mqtt::PacketType::kAuth: {
      // Re-authentication is not offered; an AUTH without an exchange is a Protocol Error.
      const mqtt::Violation violation = spill_ != nullptr && spill_->enhanced_auth
                                            ? mqtt::Violation::kReauthenticationUnsupported
                                            : mqtt::Violation::kAuthWithoutExchange;
      CloseForViolation(violation, context);  // DISCONNECT with its reason code, 5.0:4.13
      return;
    }
    default:
      if (IsClientToServer(type)) {
        // PUBLISH, the acknowledgements, SUBSCRIBE and UNSUBSCRIBE: the session's business.
        sink_->OnPacket(*this, packet);
        return;
      }
      // CONNACK, SUBACK, UNSUBACK, PINGRESP travel only from server to client.
      CloseForViolation(mqtt::Violation::kUnexpectedPacket, context);
      return;
  }
}

bool Connection::ReplyFits(size_t size, ConnectionContext& context) {
  // Only reply bytes count here: deliveries have their own budget (see ConnectionContext), so
  // a large message waiting for a slow reader never makes a PINGRESP or PUBACK overflow. A
  // reply that finds at most half the replies' share used is taken whatever its size: a SUBACK
  // for a SUBSCRIBE of many filters can exceed the whole share (one code per filter: up to
  // max_packet_size / 4 bytes) and must still be sent (MQTT-3.8.4-5).
  const size_t pending = pending_reply_bytes();
  if (pending + size > context.ReplyBytesMax() && pending > context.ReplyBytesMax() / 2) {
    // The peer keeps sending requests but does not read the answers.
    context.counters->output_overflow.Add();
    StartClosing(event_ms_);
    return false;
  }
  return true;
}

void Connection::QueueAck(mqtt::PacketType type, uint16_t packet_id, ConnectionContext& context) {
  // PUBREL (flags 0b0010) is sent by sessions, not as a reply.
  RINGMQ_ASSERT(type == mqtt::PacketType::kPuback || type == mqtt::PacketType::kPubrec ||
                type == mqtt::PacketType::kPubcomp);
  constexpr size_t kSize = 4;  // §3.4-3.7: fixed header (2) + packet id (2)
  if (!ReplyFits(kSize, context)) return;
  const size_t old_size = queued_.size();
  queued_.resize(old_size + kSize);
  uint8_t* out = queued_.data() + old_size;
  out[0] = static_cast<uint8_t>(static_cast<uint8_t>(type) << 4);
  out[1] = 2;
  out[2] = static_cast<uint8_t>(packet_id >> 8);
  out[3] = static_cast<uint8_t>(packet_id);
  queued_reply_bytes_ += static_cast<uint32_t>(kSize);
}

void Connection::Queue(const mqtt::Packet& packet, ConnectionContext& context) {
  const size_t size = mqtt::EncodedSize(packet, level_);
  if (!ReplyFits(size, context)) return;
  const size_t old_size = queued_.size();
  queued_.resize(old_size + size);
  const size_t written =
      mqtt::Encode(packet, std::span<uint8_t>(queued_).subspan(old_size), level_);
  RINGMQ_ASSERT(written == size);
  queued_reply_bytes_ += static_cast<uint32_t>(size);
  RINGMQ_ASSERT(queued_reply_bytes_ <= queued_.size());
}

void Connection::CloseForViolation(mqtt::Violation violation, ConnectionContext& context) {
  if (violation == mqtt::Violation::kPacketTooLarge && state_ == State::kAwaitConnect) {
    // Closed without CONNACK like any other oversize packet: it is not refused for a reason the
    // CONNACK codes name, and its body is never read.
    context.counters->connect_packet_too_large.Add();
  } else if (violation == mqtt::Violation::kPacketTooLarge) {
    context.counters->packet_too_large.Add();
  } else if (state_ == State::kOpen) {
    context.counters->protocol_violations.Add();
  } else {
    // Before CONNECT was admitted a bad frame is a malformed CONNECT: MQTT-8, close without
    // CONNACK.
    CountConnect(connect::Reason::kMalformed, context);
  }
  if (LogLevel level; context.event_log.Admit(event_ms_, &level)) {
    LogLine(level, "closing %s (client %s): %s [%s]", PeerName().c_str(),
            (Printable(client_id_.view())).c_str(),
            std::string(mqtt::DescriptionOf(violation)).c_str(),
            std::string(mqtt::RuleOf(violation)).c_str());
  }
  // 5.0:MQTT-4.13.1-1: a 5.0 peer is told the reason before the close.
  QueueDisconnect(mqtt::ReasonCodeOf(violation), context);
  StartClosing(event_ms_);
}

void Connection::StartClosing(uint64_t now_ms) {
  if (state_ == State::kClosing) return;
  const bool served = state_ == State::kOpen && sink_ != nullptr;
  state_ = State::kClosing;
  EndAuth();  // an unfinished exchange (peer gone, timeout) frees its CONNECT copy now
  closing_since_ms_ = now_ms;
  if (served) sink_->OnClosing(*this);
}

void Connection::OnTransportClosed(uint64_t now_ms) {
  transport_closed_ = true;
  StartClosing(now_ms);
}

uint64_t Connection::DeadlineMs() const {
  switch (state_) {
    case State::kAwaitConnect:
      return 0;  // the shard schedules the connect timeout from Open()
    case State::kAuthenticating:
      return auth_exchange()->deadline_ms;
    case State::kOpen:
      // MQTT-3.1.2-24: disconnect after one and a half keepalive periods of silence.
      return keepalive_s_ == 0 ? 0 : last_packet_ms_ + uint64_t{keepalive_s_} * 1500;
    case State::kHandoff:
      return 0;  // the move to the home shard takes one loop iteration on each side
    case State::kClosing:
      if (const Mqtt5State* state = mqtt5(); state != nullptr && state->lingering) {
        return state->linger_until_ms;
      }
      return closing_since_ms_ + kCloseGraceMs;
  }
  return 0;
}

void Connection::OnDeadline(uint64_t now_ms, ConnectionContext& context) {
  switch (state_) {
    case State::kAwaitConnect: {
      context.counters->connect_timeout.Add();
      Transport* t = transport();
      const bool layers_open = t == nullptr || t->open();
      if (!layers_open) t->CountTimeout(*context.counters);  // e.g. no PROXY header yet
      if (LogLevel level; context.event_log.Admit(now_ms, &level)) {
        LogLine(level, "closing %s: no CONNECT within %u ms%s", PeerName().c_str(),
                context.connect_timeout_ms,
                layers_open ? "" : " (transport not open: header or handshake unfinished)");
      }
      StartClosing(now_ms);
      return;
    }
    case State::kAuthenticating:
      context.counters->connect_timeout.Add();
      if (LogLevel level; context.event_log.Admit(now_ms, &level)) {
        LogLine(level, "closing %s: authentication not finished within %u ms of CONNECT",
                PeerName().c_str(), context.connect_timeout_ms);
      }
      StartClosing(now_ms);
      return;
    case State::kOpen:
      if (waiting()) {
        // The client's packets wait for our work, not the other way round (MQTT-3.1.2-24
        // counts packets the client sent): the clock restarts.
        last_packet_ms_ = now_ms;
        return;
      }
      context.counters->keepalive_timeout.Add();
      if (LogLevel level; context.event_log.Admit(now_ms, &level)) {
        LogLine(level, "closing client %s (%s): keepalive %us expired",
                (Printable(client_id_.view())).c_str(), PeerName().c_str(),
                keepalive_s_);
      }
      event_ms_ = now_ms;
      QueueDisconnect(mqtt::ReasonCode::kKeepAliveTimeout, context);  // 5.0:3.1.2.10
      StartClosing(now_ms);
      return;
    case State::kHandoff:
      return;
    case State::kClosing:
      // The peer did not take our last bytes in time: give up on them.
      transport_closed_ = true;
      return;
  }
}

void Connection::HoldOutput(uint64_t token, const uint64_t* released) {
  Spill& cold = spill();
  cold.released_token = released;
  if (!cold.holds.empty() && cold.holds.back().token == token) {
    cold.holds.back().end = queued_.size();
  } else {
    RINGMQ_ASSERT(cold.holds.empty() || cold.holds.back().token < token);
    cold.holds.push_back(Spill::Hold{.token = token, .end = queued_.size()});
  }
}

size_t Connection::SendableQueued() {
  if (spill_ == nullptr) return queued_.size();
  Spill& cold = *spill_;
  if (cold.holds.empty()) {
    // All of it may go; a later hold covers only what is queued after this (HoldOutput).
    cold.released_end = queued_.size();
    return queued_.size();
  }
  const uint64_t released = *cold.released_token;
  size_t done = 0;
  while (done < cold.holds.size() && cold.holds[done].token <= released) {
    cold.released_end = std::max(cold.released_end, cold.holds[done].end);
    ++done;
  }
  cold.holds.erase(cold.holds.begin(), cold.holds.begin() + static_cast<ptrdiff_t>(done));
  if (cold.holds.empty()) cold.released_end = queued_.size();
  RINGMQ_ASSERT(cold.released_end <= queued_.size());
  return cold.released_end;
}

void Connection::TakeQueuedPrefix(size_t bytes, ByteBuffer& into) {
  RINGMQ_ASSERT(bytes <= queued_.size());
  const uint32_t replies = std::min<uint32_t>(queued_reply_bytes_, static_cast<uint32_t>(bytes));
  queued_reply_bytes_ -= replies;
  sending_reply_bytes_ = replies;
  if (bytes == queued_.size()) {
    into.swap(queued_);
    queued_.clear();
  } else {
    into.assign(queued_.begin(), queued_.begin() + static_cast<ptrdiff_t>(bytes));
    queued_.erase(queued_.begin(), queued_.begin() + static_cast<ptrdiff_t>(bytes));
  }
  if (spill_ != nullptr) {
    for (Spill::Hold& hold : spill_->holds) hold.end -= bytes;
    spill_->released_end -= std::min(spill_->released_end, bytes);
  }
}

std::span<const uint8_t> Connection::NextSend() {
  if (send_in_flight_ || transport_closed_) return {};
  if (Transport* t = transport(); t != nullptr && current_.empty()) {
    // Everything waiting goes down through the layers now; the send carries their output.
    if (t->open()) {
      if (!static_output_.empty()) t->Send(std::exchange(static_output_, {}));
      if (const size_t sendable = SendableQueued(); sendable != 0) {
        ByteBuffer& app = spill().transport_app;
        TakeQueuedPrefix(sendable, app);
        t->Send(app);
        app.clear();
      }
    }
    // A layer that never opened (a failed handshake) has nothing of MQTT's to carry.
    if (state_ == State::kClosing && (!t->open() || queued_.empty())) t->Shutdown();
    if (t->wire().empty()) return {};
    sending_.swap(t->wire());
    t->wire().clear();
    current_ = sending_;
    RINGMQ_ASSERT(current_.size() <= UINT32_MAX);  // current_sent_ is 32 bits
    current_sent_ = 0;
  }
  if (current_.empty()) {
    if (!static_output_.empty()) {
      current_ = std::exchange(static_output_, {});
    } else if (const size_t sendable = SendableQueued(); sendable != 0) {
      TakeQueuedPrefix(sendable, sending_);
      current_ = sending_;
      RINGMQ_ASSERT(current_.size() <= UINT32_MAX);  // current_sent_ is 32 bits
    } else {
      return {};
    }
    current_sent_ = 0;
  }
  send_in_flight_ = true;
  return current_.subspan(current_sent_);
}

void Connection::OnSent(size_t bytes) {
  RINGMQ_ASSERT(send_in_flight_);
  RINGMQ_ASSERT(current_sent_ + bytes <= current_.size());
  send_in_flight_ = false;
  current_sent_ += static_cast<uint32_t>(bytes);
  if (current_sent_ == current_.size()) {
    current_ = {};
    current_sent_ = 0;
    sending_.clear();
    sending_reply_bytes_ = 0;
    // A burst may have grown both buffers up to max_output_bytes; once nothing is queued,
    // large ones are released. Small ones are kept: a subscriber whose every send completes
    // before the next message must not reallocate its buffer per message.
    if (queued_.empty()) {
      if (sending_.capacity() > kKeepBufferBytes) sending_ = ByteBuffer();
      if (queued_.capacity() > kKeepBufferBytes) queued_ = ByteBuffer();
      if (Transport* t = transport(); t != nullptr) t->ReleaseLargeBuffers(kKeepBufferBytes);
    }
  }
}

bool Connection::ReadyToClose() const {
  if (state_ != State::kClosing || send_in_flight_) return false;
  if (transport_closed_) return true;
  if (const Transport* t = transport(); t != nullptr) {
    // The layers' goodbyes (close frame, close_notify) are sent too.
    if (!t->shut_down() || !const_cast<Transport*>(t)->wire().empty()) return false;
    if (t->open() && !static_output_.empty()) return false;
    return current_.empty() && (queued_.empty() || !t->open());
  }
  return current_.empty() && static_output_.empty() && queued_.empty();
}

std::span<const uint8_t> Connection::TakeFinalStaticSend() {
  // With a transport the CONNACK is encoded by its layers (NextSend), so not static.
  if (state_ != State::kClosing || send_in_flight_ || transport_closed_ || !current_.empty() ||
      !queued_.empty() || transport() != nullptr) {
    return {};
  }
  return std::exchange(static_output_, {});
}

int64_t Connection::TakeBufferChargeDelta() {
  // Each buffer is bounded (max_packet_size, 2 x max_packet_size for a hand-off, the output
  // cap), so the sum fits 32 bits.
  const size_t spill_capacity =
      spill_ == nullptr ? 0 : spill_->partial.capacity() + spill_->handoff.capacity();
  // The alias tables: inbound at most topic_alias_maximum topics, outbound at most
  // outbound_topic_aliases topics, each of at most 65,535 bytes.
  const size_t mqtt5_bytes =
      mqtt5() == nullptr
          ? 0
          : mqtt5()->topic_alias_bytes + mqtt5()->topic_aliases.capacity() * sizeof(std::string) +
                mqtt5()->qos2_pending.capacity() * sizeof(uint16_t) +
                (mqtt5()->outbound_aliases == nullptr ? 0
                                                      : mqtt5()->outbound_aliases->memory_bytes());
  const size_t transport_bytes =
      transport() == nullptr ? 0
                             : transport()->memory_bytes() + spill_->transport_app.capacity();
  const auto capacity = static_cast<uint32_t>(spill_capacity + mqtt5_bytes + transport_bytes +
                                              queued_.capacity() + sending_.capacity());
  const int64_t delta = int64_t{capacity} - int64_t{charged_buffer_bytes_};
  charged_buffer_bytes_ = capacity;
  return delta;
}

void Connection::OnClosed(ConnectionContext& context) {
  if (holds_client_slot_) {
    ReleaseClientSlot(context);
    holds_client_slot_ = false;
  }
  context.counters->connections_closed.Add();
  RINGMQ_LOG_DEBUG("connection of client %s closed", (Printable(client_id_.view())).c_str());
}

}  // namespace ringmq::net
