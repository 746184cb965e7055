#include "bridge/bridge_client.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/absl_view.h"
#include "common/assert.h"
#include "mqtt/codec.h"

namespace ringmq::bridge {
namespace {

constexpr uint64_t kNever = UINT64_MAX;

std::string_view ConnackText(mqtt::ConnackCode code) {
  switch (code) {
    case mqtt::ConnackCode::kAccepted:
      return "accepted";
    case mqtt::ConnackCode::kUnacceptableProtocolVersion:
      return "unacceptable protocol version";
    case mqtt::ConnackCode::kIdentifierRejected:
      return "identifier rejected";
    case mqtt::ConnackCode::kServerUnavailable:
      return "server unavailable";
    case mqtt::ConnackCode::kBadUserNameOrPassword:
      return "bad user name or password";
    case mqtt::ConnackCode::kNotAuthorized:
      return "not authorized";
  }
  return "unknown return code";
}

}  // namespace

std::string_view ClientStateName(ClientState state) {
  switch (state) {
    case ClientState::kDisconnected:
      return "disconnected";
    case ClientState::kConnecting:
      return "connecting";
    case ClientState::kAwaitConnack:
      return "await_connack";
    case ClientState::kOpen:
      return "open";
  }
  return "unknown";
}

absl::StatusOr<BridgeClient> BridgeClient::Create(ClientOptions options, ClientSink* sink) {
  RINGMQ_ASSERT(sink != nullptr);
  if (options.client_id.empty() || options.client_id.size() > 65'535) {
    return absl::InvalidArgumentError("client id: 1 to 65535 bytes");
  }
  if (options.max_inflight == 0 || options.max_inflight > ClientOptions::kMaxInflight) {
    return absl::InvalidArgumentError("max_inflight: 1 to 65535");
  }
  if (options.max_queued_messages == 0 || options.max_queued_bytes == 0) {
    return absl::InvalidArgumentError("max_queued_messages and max_queued_bytes: at least 1");
  }
  if (options.max_packet_size < 64 || options.max_packet_size > mqtt::kMaxRemainingLength) {
    return absl::InvalidArgumentError("max_packet_size: 64 to 268435455 bytes");
  }
  if (options.restart_initial_ms == 0 || options.restart_max_ms < options.restart_initial_ms ||
      options.restart_jitter_percent > 100 || options.connect_timeout_ms == 0) {
    return absl::InvalidArgumentError(
        "restart: 0 < initial <= max, jitter 0..100 percent; connect timeout > 0");
  }
  if (options.defer_acks && options.receive_maximum == 0) {
    return absl::InvalidArgumentError("receive_maximum: 1 to 65535");
  }
  if (options.retain_handling > 2) return absl::InvalidArgumentError("retain_handling: 0..2");
  if (options.try_private && options.level != mqtt::ProtocolLevel::kMqtt311) {
    return absl::InvalidArgumentError("try_private: MQTT 3.1.1 only");
  }
  for (const ClientSubscription& subscription : options.subscriptions) {
    if (subscription.filter.empty() || subscription.filter.size() > 65'535) {
      return absl::InvalidArgumentError("subscription filter: 1 to 65535 bytes");
    }
  }
  return BridgeClient(std::move(options), sink);
}

BridgeClient::BridgeClient(ClientOptions options, ClientSink* sink)
    : options_(std::move(options)), sink_(sink), random_(options_.random_seed) {}

void BridgeClient::BeginConnect(uint64_t now_ms) {
  RINGMQ_ASSERT(state_ == ClientState::kDisconnected);
  state_ = ClientState::kConnecting;
  connack_deadline_ms_ = now_ms + options_.connect_timeout_ms;
}

void BridgeClient::OnTransportConnected(uint64_t now_ms) {
  RINGMQ_ASSERT(state_ == ClientState::kConnecting);
  state_ = ClientState::kAwaitConnack;
  output_.clear();
  partial_.clear();
  ping_sent_ms_ = 0;
  last_received_ms_ = now_ms;
  connack_deadline_ms_ = now_ms + options_.connect_timeout_ms;
  SendConnect();
}

void BridgeClient::SendConnect() {
  mqtt::Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = static_cast<uint8_t>(options_.level);
  if (options_.try_private) connect.protocol_level |= 0x80;
  connect.clean_session = options_.clean_session;
  connect.keepalive_s = options_.keepalive_s;
  connect.client_id = options_.client_id;
  if (options_.username) connect.user_name = *options_.username;
  if (options_.password) connect.password = *options_.password;
  if (!options_.will_topic.empty()) {
    connect.will = mqtt::Will{.topic = options_.will_topic,
                              .payload = options_.will_payload,
                              .qos = mqtt::QoS::k1,
                              .retain = true};
  }
  uint8_t properties[32];
  size_t length = 0;
  if (options_.level == mqtt::ProtocolLevel::kMqtt5) {
    const std::span<uint8_t> block(properties);
    // A persistent session must outlive the connection (5.0:3.1.2.11.2; 0 ends it with it).
    if (!options_.clean_session) {
      length += mqtt::EncodeIntegerProperty(mqtt::PropertyId::kSessionExpiryInterval, UINT32_MAX,
                                            block.subspan(length));
    }
    // Our inbound QoS 1/2 window: the id space when we acknowledge at once; with defer_acks
    // the messages we hold unacknowledged (5.0:MQTT-3.3.4-9 bounds the server by it).
    length += mqtt::EncodeIntegerProperty(
        mqtt::PropertyId::kReceiveMaximum,
        options_.defer_acks ? options_.receive_maximum : uint16_t{65'535}, block.subspan(length));
    length += mqtt::EncodeIntegerProperty(mqtt::PropertyId::kMaximumPacketSize,
                                          options_.max_packet_size, block.subspan(length));
  }
  connect.properties = mqtt::Properties(std::span<const uint8_t>(properties, length));
  Encode(connect);
}

void BridgeClient::Encode(const mqtt::Packet& packet) {
  const size_t size = mqtt::EncodedSize(packet, options_.level);
  const size_t at = output_.size();
  output_.resize(at + size);
  mqtt::Encode(packet, std::span<uint8_t>(output_).subspan(at), options_.level);
}

void BridgeClient::SendSubscribe() {
  if (options_.subscriptions.empty()) return;
  std::vector<mqtt::TopicRequest> requests;
  requests.reserve(options_.subscriptions.size());
  const bool five = options_.level == mqtt::ProtocolLevel::kMqtt5;
  for (const ClientSubscription& subscription : options_.subscriptions) {
    requests.push_back({.filter = subscription.filter,
                        .qos = subscription.qos,
                        .no_local = five && subscription.no_local,
                        .retain_as_published = five && subscription.retain_as_published,
                        .retain_handling = five ? options_.retain_handling : uint8_t{0}});
  }
  std::vector<uint8_t> entries(mqtt::TopicListEncodedSize(requests, /*has_qos=*/true));
  mqtt::EncodeTopicList(requests, /*has_qos=*/true, entries);
  subscribe_packet_id_ = NextPacketId();
  subscribe_pending_ = true;
  Encode(mqtt::Subscribe{.packet_id = subscribe_packet_id_,
                         .topics = mqtt::TopicList(entries, /*has_qos=*/true)});
}

void BridgeClient::SendPublish(const Message& message, bool dup) {
  Encode(mqtt::Publish{.topic = message.topic(),
                       .payload = message.payload(),
                       .qos = message.qos,
                       .retain = message.retain,
                       .dup = dup,
                       .packet_id = message.packet_id});
}

uint16_t BridgeClient::NextPacketId() {
  // Bounded: inflight_ holds at most 65,534 ids plus the SUBSCRIBE's, so a free one exists.
  for (uint32_t tries = 0; tries < 65'536; ++tries) {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ == 65'535 ? 1 : last_packet_id_ + 1);
    const uint16_t id = last_packet_id_;
    const bool used = std::any_of(inflight_.begin(), inflight_.end(),
                                  [id](const Message& message) { return message.packet_id == id; });
    if (!used) return id;
  }
  RINGMQ_ASSERT(false && "no free packet id");
  return 0;
}

bool BridgeClient::IdInFlight(uint16_t packet_id) const {
  if (subscribe_pending_ && subscribe_packet_id_ == packet_id) return true;
  return std::any_of(inflight_.begin(), inflight_.end(),
                     [packet_id](const Message& message) { return message.packet_id == packet_id; });
}

bool BridgeClient::IdUsedTwice(uint16_t packet_id) const {
  return std::count_if(inflight_.begin(), inflight_.end(), [packet_id](const Message& message) {
           return message.packet_id == packet_id;
         }) > 1;
}

void BridgeClient::SendBlockedPubrels(uint16_t freed_packet_id) {
  for (Message& message : inflight_) {
    if (message.pubrel_blocked && message.packet_id == freed_packet_id) {
      message.pubrel_blocked = false;
      if (state_ == ClientState::kOpen) Encode(mqtt::Pubrel{.packet_id = freed_packet_id});
      return;  // ids in flight are unique but for this one blocked entry
    }
  }
}

uint32_t BridgeClient::Window() const {
  return std::min<uint32_t>({options_.max_inflight, server_receive_maximum_, 65'534});
}

void BridgeClient::Pump() {
  if (state_ != ClientState::kOpen) return;
  while (!queue_.empty() && output_.size() < kOutputPumpBytes) {
    Message& front = queue_.front();
    const size_t size = 2 + front.data.size() + 9;  // within a fixed header and packet id
    if (size > options_.max_packet_size) {          // the server would close us: never sendable
      const Origin origin = front.origin;
      const bool relayed = Mirrors(front) && origin.qos == mqtt::QoS::k2;
      queued_bytes_ -= front.data.size();
      queue_.pop_front();
      ++stats_.dropped;
      if (relayed) {
        // Acknowledged like a message the remote took; its id waits for this broker's PUBREL,
        // which then completes it without a PUBREL to the remote.
        inflight_.push_back(Message{.data = {},
                                    .topic_size = 0,
                                    .qos = mqtt::QoS::k2,
                                    .retain = false,
                                    .stage = Stage::kAwaitRelease,
                                    .packet_id = origin.packet_id,
                                    .origin = origin,
                                    .first = false,
                                    .accepted = true,
                                    .released = false,
                                    .relay_only = true,
                                    .pubrel_blocked = false});
        sink_->OnAccepted(origin);
      } else if (origin.qos != mqtt::QoS::k0) {
        sink_->OnDelivered(origin);
      }
      continue;
    }
    if (front.qos == mqtt::QoS::k0) {
      SendPublish(front, /*dup=*/false);
      ++stats_.messages_sent;
      queued_bytes_ -= front.data.size();
      queue_.pop_front();
      continue;
    }
    if (inflight_.size() >= Window()) break;
    if (Mirrors(front)) {
      // The id this broker gave it; an earlier use of it (a notification, the SUBSCRIBE, a
      // message of an older local session) ends first.
      if (IdInFlight(front.origin.packet_id)) break;
      front.packet_id = front.origin.packet_id;
    } else {
      front.packet_id = NextPacketId();
    }
    front.stage = front.qos == mqtt::QoS::k1 ? Stage::kAwaitPuback : Stage::kAwaitPubrec;
    SendPublish(front, /*dup=*/false);
    queued_bytes_ -= front.data.size();
    inflight_.push_back(std::move(front));
    queue_.pop_front();
  }
}

bool BridgeClient::has_output() const {
  if (!output_.empty()) return true;
  if (state_ != ClientState::kOpen || queue_.empty()) return false;
  return queue_.front().qos == mqtt::QoS::k0 || inflight_.size() < Window();
}

void BridgeClient::TakeOutput(uint64_t now_ms, ByteBuffer& into) {
  Pump();
  if (output_.empty()) return;
  into.insert(into.end(), output_.begin(), output_.end());
  output_.clear();
  last_sent_ms_ = now_ms;
}

bool BridgeClient::Publish(std::string_view topic, std::string_view payload, mqtt::QoS qos,
                           bool retain, const Origin& origin) {
  RINGMQ_ASSERT(!topic.empty() && topic.size() <= 65'535);
  const size_t bytes = topic.size() + payload.size();
  if (queue_.size() >= options_.max_queued_messages ||
      queued_bytes_ + bytes > options_.max_queued_bytes) {
    ++stats_.dropped;
    return false;
  }
  Message message;
  message.data.reserve(bytes);
  message.data.append(topic).append(payload);
  message.topic_size = static_cast<uint16_t>(topic.size());
  message.qos = qos;
  message.retain = retain;
  message.origin = origin;
  queue_.push_back(std::move(message));
  queued_bytes_ += bytes;
  Pump();
  return true;
}

void BridgeClient::PublishFirst(std::string_view topic, std::string_view payload, mqtt::QoS qos,
                                bool retain) {
  RINGMQ_ASSERT(!topic.empty() && topic.size() <= 65'535);
  if (!queue_.empty() && queue_.front().first) {
    queued_bytes_ -= queue_.front().data.size();
    queue_.pop_front();
  }
  Message message;
  message.data.append(topic).append(payload);
  message.topic_size = static_cast<uint16_t>(topic.size());
  message.qos = qos;
  message.retain = retain;
  message.first = true;
  queued_bytes_ += message.data.size();
  queue_.push_front(std::move(message));
  Pump();
}

void BridgeClient::OnReceived(uint64_t now_ms, std::span<const uint8_t> bytes) {
  if (state_ != ClientState::kAwaitConnack && state_ != ClientState::kOpen) return;
  std::span<const uint8_t> input = bytes;
  if (!partial_.empty()) {
    partial_.insert(partial_.end(), bytes.begin(), bytes.end());
    input = partial_;
  }
  size_t used = 0;
  while (state_ == ClientState::kAwaitConnack || state_ == ClientState::kOpen) {
    const std::span<const uint8_t> rest = input.subspan(used);
    const mqtt::Frame frame = mqtt::PeekFrame(rest, options_.max_packet_size, options_.level);
    if (frame.status == mqtt::FrameStatus::kNeedMore) break;
    if (frame.status == mqtt::FrameStatus::kInvalid) {
      Fail(now_ms, absl::StrCat("malformed packet from the server (",
                                Sv(mqtt::NameOf(frame.violation)), ")"));
      return;
    }
    const std::span<const uint8_t> body =
        rest.subspan(frame.header.header_length, frame.header.remaining_length);
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(frame.header, body, options_.level);
    used += frame.header.total_length();
    if (!packet.ok()) {
      Fail(now_ms, absl::StrCat("malformed packet from the server (",
                                Sv(mqtt::NameOf(packet.violation())), ")"));
      return;
    }
    last_received_ms_ = now_ms;
    ping_sent_ms_ = 0;  // any packet shows the server is alive
    HandlePacket(packet.value(), now_ms);
    // The window may have opened: what may go now follows this packet's answer, whatever
    // the receive boundaries were.
    Pump();
  }
  if (state_ != ClientState::kAwaitConnack && state_ != ClientState::kOpen) return;
  // What is left is the start of a packet (at most max_packet_size, PeekFrame's bound).
  if (input.data() == partial_.data()) {
    partial_.erase(partial_.begin(), partial_.begin() + static_cast<ptrdiff_t>(used));
  } else {
    partial_.assign(input.begin() + static_cast<ptrdiff_t>(used), input.end());
  }
}

void BridgeClient::HandlePacket(const mqtt::Packet& packet, uint64_t now_ms) {
  const mqtt::PacketType type = mqtt::TypeOf(packet);
  if (state_ == ClientState::kAwaitConnack) {
    if (type != mqtt::PacketType::kConnack) {
      Fail(now_ms, absl::StrCat("expected CONNACK, got ", Sv(mqtt::NameOf(type))));
      return;
    }
    HandleConnack(std::get<mqtt::Connack>(packet), now_ms);
    return;
  }
  switch (type) {
    case mqtt::PacketType::kPublish:
      return HandlePublish(std::get<mqtt::Publish>(packet));
    case mqtt::PacketType::kPuback:
      return Acknowledge(std::get<mqtt::Puback>(packet).packet_id, Stage::kAwaitPuback,
                         Stage::kQueued);
    case mqtt::PacketType::kPubrec:
      return Acknowledge(std::get<mqtt::Pubrec>(packet).packet_id, Stage::kAwaitPubrec,
                         Stage::kAwaitPubcomp);
    case mqtt::PacketType::kPubcomp:
      return Acknowledge(std::get<mqtt::Pubcomp>(packet).packet_id, Stage::kAwaitPubcomp,
                         Stage::kQueued);
    case mqtt::PacketType::kPubrel: {
      const uint16_t id = std::get<mqtt::Pubrel>(packet).packet_id;
      const auto it = std::lower_bound(inbound_qos2_.begin(), inbound_qos2_.end(), id);
      if (it != inbound_qos2_.end() && *it == id) inbound_qos2_.erase(it);
      if (options_.hold_pubcomp) {
        // The PUBCOMP waits for Complete: the server keeps the id's record until then. Also
        // for an id not held (after a restart of this process, the server's log kept it).
        const auto held = std::lower_bound(held_pubrels_.begin(), held_pubrels_.end(), id);
        if (held == held_pubrels_.end() || *held != id) held_pubrels_.insert(held, id);
        sink_->OnReleased(Origin{.session = session_epoch_, .packet_id = id, .qos = mqtt::QoS::k2});
        return;
      }
      // Answered also for an id not held: a PUBREL resent after its PUBCOMP was lost (§4.3.3).
      Encode(mqtt::Pubcomp{.packet_id = id});
      return;
    }
    case mqtt::PacketType::kSuback: {
      const mqtt::Suback& suback = std::get<mqtt::Suback>(packet);
      if (suback.packet_id == subscribe_packet_id_ && subscribe_pending_) {
        subscribe_pending_ = false;
        SendBlockedPubrels(suback.packet_id);
      }
      for (const uint8_t code : suback.return_codes) {
        if (code >= 0x80) ++stats_.subscribe_refused;
      }
      return;
    }
    case mqtt::PacketType::kPingresp:
    case mqtt::PacketType::kUnsuback:
      return;
    case mqtt::PacketType::kDisconnect:
      return Fail(now_ms, "DISCONNECT from the server");
    default:
      return Fail(now_ms, absl::StrCat("unexpected ", Sv(mqtt::NameOf(type)), " from the server"));
  }
}

void BridgeClient::HandleConnack(const mqtt::Connack& connack, uint64_t now_ms) {
  const bool five = options_.level == mqtt::ProtocolLevel::kMqtt5;
  if (five ? static_cast<uint8_t>(connack.reason_code) >= 0x80
           : connack.return_code != mqtt::ConnackCode::kAccepted) {
    Fail(now_ms, five ? absl::StrCat("CONNACK refused (reason code 0x",
                                     absl::Hex(static_cast<uint8_t>(connack.reason_code)), ")")
                      : absl::StrCat("CONNACK refused: ", Sv(ConnackText(connack.return_code))));
    return;
  }
  state_ = ClientState::kOpen;
  failures_ = 0;
  ++stats_.connects;
  server_receive_maximum_ = connack.properties.Values().receive_maximum.value_or(65'535);
  const bool resumed = connack.session_present && !options_.clean_session;
  if (!resumed) {
    // A new session: the server forgot the ids it sent us, so no acknowledgement of the old
    // session may go out (it could name a new message that reuses the id).
    inbound_qos2_.clear();
    deferred_.clear();
    releases_due_.clear();
    held_pubrels_.clear();
    ++session_epoch_;
  }
  SendSubscribe();
  for (const Origin& origin : releases_due_) SendRelease(origin);
  releases_due_.clear();
  // Unacknowledged messages first, in their order (MQTT-4.6.0-1).
  std::vector<Origin> abandoned;
  if (resumed) {
    for (Message& message : inflight_) {
      if (message.stage == Stage::kAwaitRelease) continue;  // nothing due until released
      if (message.pubrel_blocked) {
        if (IdUsedTwice(message.packet_id)) continue;  // still waits for the other packet
        message.pubrel_blocked = false;
      }
      if (message.stage == Stage::kAwaitPubcomp) {
        Encode(mqtt::Pubrel{.packet_id = message.packet_id});  // MQTT-4.4.0-1
      } else {
        SendPublish(message, /*dup=*/true);
      }
      ++stats_.resent;
    }
  } else {
    // A new session knows none of our packet ids: they are sent again as new messages. An id
    // without a message (relay_qos2) cannot be: the remote forgot it, so it ends here; one of a
    // dropped message (awaiting its release here, never sent) stays as it was.
    std::vector<Message> kept;
    for (auto it = inflight_.rbegin(); it != inflight_.rend(); ++it) {
      if (it->relay_only && it->stage == Stage::kAwaitRelease) {
        kept.insert(kept.begin(), std::move(*it));
        continue;
      }
      if (it->relay_only) {
        abandoned.push_back(it->origin);
        continue;
      }
      it->stage = Stage::kQueued;
      it->packet_id = 0;
      queued_bytes_ += it->data.size();
      queue_.push_front(std::move(*it));
      ++stats_.resent;
    }
    inflight_ = std::move(kept);
  }
  for (const Origin& origin : abandoned) {
    ++stats_.qos2_abandoned;
    if (origin.qos != mqtt::QoS::k0) sink_->OnDelivered(origin);
  }
  sink_->OnConnected(connack.session_present);
}

void BridgeClient::HandlePublish(const mqtt::Publish& publish) {
  const uint16_t id = publish.packet_id;
  const bool deferring = options_.defer_acks && publish.qos != mqtt::QoS::k0;
  if (deferring) {
    // A resend of an id still awaiting Release: the first copy is on its way (MQTT-2.2.1-3).
    if (std::binary_search(deferred_.begin(), deferred_.end(), id)) return;
  }
  if (publish.qos == mqtt::QoS::k2) {
    const auto it = std::lower_bound(inbound_qos2_.begin(), inbound_qos2_.end(), id);
    if (it != inbound_qos2_.end() && *it == id) {  // delivered and released: PUBREC again
      Encode(mqtt::Pubrec{.packet_id = id});
      return;
    }
    inbound_qos2_.insert(it, id);
  }
  ++stats_.messages_received;
  inbound_origin_ = deferring ? Origin{.session = session_epoch_, .packet_id = id, .qos = publish.qos}
                              : Origin{};
  if (deferring) deferred_.insert(std::lower_bound(deferred_.begin(), deferred_.end(), id), id);
  sink_->OnMessage(publish);
  inbound_origin_ = Origin{};
  if (deferring) return;  // acknowledged by Release
  if (publish.qos == mqtt::QoS::k1) Encode(mqtt::Puback{.packet_id = id});
  if (publish.qos == mqtt::QoS::k2) Encode(mqtt::Pubrec{.packet_id = id});
}

void BridgeClient::Release(const Origin& origin) {
  if (origin.qos == mqtt::QoS::k0) return;
  const auto it = std::lower_bound(deferred_.begin(), deferred_.end(), origin.packet_id);
  if (origin.session != session_epoch_ || it == deferred_.end() || *it != origin.packet_id) {
    ++stats_.released_stale;  // the server resends it in the new session
    return;
  }
  deferred_.erase(it);
  if (state_ == ClientState::kOpen) {
    SendRelease(origin);
  } else {
    releases_due_.push_back(origin);  // bounded by deferred_'s ids
  }
}

void BridgeClient::SendRelease(const Origin& origin) {
  if (origin.qos == mqtt::QoS::k1) {
    Encode(mqtt::Puback{.packet_id = origin.packet_id});
  } else {
    Encode(mqtt::Pubrec{.packet_id = origin.packet_id});
  }
}

void BridgeClient::Acknowledge(uint16_t packet_id, Stage expected, Stage next) {
  const auto it = std::find_if(inflight_.begin(), inflight_.end(), [&](const Message& message) {
    return message.packet_id == packet_id && message.stage == expected;
  });
  if (it == inflight_.end()) return;  // a late or repeated acknowledgement: nothing to do
  if (next == Stage::kAwaitPubcomp) {
    if (Mirrors(*it) && it->origin.qos == mqtt::QoS::k2 && !it->released) {
      // The remote owns it now: this broker's copy is acknowledged (OnAccepted, PUBREC), and
      // the PUBREL waits until this broker's log holds that (its PUBREL, ReleaseOutbound), so a
      // crash in between resends this PUBLISH with this id, which the remote deduplicates.
      it->stage = Stage::kAwaitRelease;
      if (!it->accepted) {
        it->accepted = true;
        const Origin origin = it->origin;
        sink_->OnAccepted(origin);
      }
      return;
    }
    it->stage = next;
    Encode(mqtt::Pubrel{.packet_id = packet_id});
    return;
  }
  const Origin origin = it->origin;
  inflight_.erase(it);
  ++stats_.messages_sent;
  SendBlockedPubrels(packet_id);
  if (origin.qos != mqtt::QoS::k0) sink_->OnDelivered(origin);
}

void BridgeClient::ReleaseOutbound(const Origin& origin) {
  RINGMQ_ASSERT(options_.relay_qos2);
  if (origin.qos != mqtt::QoS::k2 || origin.packet_id == 0) return;
  const uint16_t id = origin.packet_id;
  auto names = [&](const Message& message) {
    return Mirrors(message) && message.origin.qos == mqtt::QoS::k2 &&
           message.origin.packet_id == id;
  };
  const auto it = std::find_if(inflight_.begin(), inflight_.end(), names);
  if (it != inflight_.end()) {
    it->released = true;
    it->origin = origin;  // the local session's current epoch, for Complete
    if (it->stage != Stage::kAwaitRelease) return;  // PUBREL on its PUBREC, or sent already
    if (it->relay_only) {
      // A message dropped as too large: nothing to release on the remote.
      inflight_.erase(it);
      ++stats_.messages_sent;
      SendBlockedPubrels(id);
      sink_->OnDelivered(origin);
      return;
    }
    it->stage = Stage::kAwaitPubcomp;
    if (state_ == ClientState::kOpen) Encode(mqtt::Pubrel{.packet_id = id});
    return;
  }
  for (Message& message : queue_) {
    if (names(message)) {  // sent again as new in a new remote session
      message.released = true;
      message.origin = origin;
      return;
    }
  }
  // No message has the id: a restart of this process lost it, this broker's log kept it as
  // "PUBREC received". Only the PUBREL may go (5.0:MQTT-4.3.3-6), with that id. Bounded by the
  // id space: this broker's ids to the local session are unique while unacknowledged.
  Message message{.data = {},
                  .topic_size = 0,
                  .qos = mqtt::QoS::k2,
                  .retain = false,
                  .stage = Stage::kAwaitPubcomp,
                  .packet_id = id,
                  .origin = origin,
                  .first = false,
                  .accepted = true,
                  .released = true,
                  .relay_only = true,
                  .pubrel_blocked = IdInFlight(id)};
  ++stats_.qos2_recovered;
  if (state_ == ClientState::kOpen && !message.pubrel_blocked) Encode(mqtt::Pubrel{.packet_id = id});
  inflight_.push_back(std::move(message));
}

void BridgeClient::ReleaseAllAccepted() {
  std::vector<uint16_t> freed;
  std::erase_if(inflight_, [&freed](const Message& message) {
    const bool ends = message.relay_only && message.stage == Stage::kAwaitRelease;  // dropped
    if (ends) freed.push_back(message.packet_id);
    return ends;
  });
  for (const uint16_t id : freed) SendBlockedPubrels(id);
  for (Message& message : inflight_) {
    if (message.stage != Stage::kAwaitRelease) continue;
    message.released = true;
    message.origin = Origin{};  // its local session is gone: nothing to complete there
    message.stage = Stage::kAwaitPubcomp;
    if (state_ == ClientState::kOpen) Encode(mqtt::Pubrel{.packet_id = message.packet_id});
  }
  for (Message& message : queue_) {
    if (message.accepted) message.released = true;
  }
}

void BridgeClient::Complete(const Origin& origin) {
  RINGMQ_ASSERT(options_.hold_pubcomp);
  const auto it = std::lower_bound(held_pubrels_.begin(), held_pubrels_.end(), origin.packet_id);
  if (origin.session != session_epoch_ || it == held_pubrels_.end() || *it != origin.packet_id) {
    ++stats_.released_stale;
    return;
  }
  held_pubrels_.erase(it);
  if (state_ == ClientState::kOpen) Encode(mqtt::Pubcomp{.packet_id = origin.packet_id});
}

void BridgeClient::OnTimer(uint64_t now_ms) {
  if ((state_ == ClientState::kConnecting || state_ == ClientState::kAwaitConnack) &&
      now_ms >= connack_deadline_ms_) {
    Fail(now_ms, "no CONNACK within the connect timeout");
    return;
  }
  if (state_ != ClientState::kOpen || options_.keepalive_s == 0) return;
  const uint64_t keepalive_ms = uint64_t{options_.keepalive_s} * 1000;
  if (ping_sent_ms_ != 0 && now_ms >= ping_sent_ms_ + keepalive_ms) {
    Fail(now_ms, "no answer to PINGREQ within the keepalive");
    return;
  }
  if (ping_sent_ms_ == 0 && now_ms >= last_sent_ms_ + keepalive_ms) {
    Encode(mqtt::Pingreq{});
    ping_sent_ms_ = now_ms;
    last_sent_ms_ = now_ms;  // TakeOutput sets it again when the owner takes the bytes
  }
}

uint64_t BridgeClient::next_deadline_ms() const {
  if (state_ == ClientState::kConnecting || state_ == ClientState::kAwaitConnack) {
    return connack_deadline_ms_;
  }
  if (state_ != ClientState::kOpen || options_.keepalive_s == 0) return kNever;
  const uint64_t keepalive_ms = uint64_t{options_.keepalive_s} * 1000;
  return ping_sent_ms_ != 0 ? ping_sent_ms_ + keepalive_ms : last_sent_ms_ + keepalive_ms;
}

void BridgeClient::OnTransportClosed(uint64_t now_ms, std::string_view reason) {
  if (state_ == ClientState::kDisconnected) return;
  Fail(now_ms, reason);
}

void BridgeClient::Fail(uint64_t now_ms, std::string_view reason) {
  RINGMQ_ASSERT(state_ != ClientState::kDisconnected);
  state_ = ClientState::kDisconnected;
  output_.clear();
  partial_.clear();
  ping_sent_ms_ = 0;
  ++stats_.disconnects;
  ScheduleReconnect(now_ms);
  sink_->OnDisconnected(reason);
}

void BridgeClient::Disconnect(uint64_t now_ms, std::string_view reason) {
  if (state_ == ClientState::kDisconnected) return;
  Fail(now_ms, reason);
}

void BridgeClient::EncodeGoodbye(ByteBuffer& into) const {
  const mqtt::ProtocolLevel level = options_.level;
  auto append = [&into, level](const mqtt::Packet& packet) {
    const size_t size = mqtt::EncodedSize(packet, level);
    const size_t at = into.size();
    into.resize(at + size);
    mqtt::Encode(packet, std::span<uint8_t>(into).subspan(at), level);
  };
  if (options_.will_topic.empty()) {
    append(mqtt::Disconnect{});
  } else if (level == mqtt::ProtocolLevel::kMqtt5) {
    append(mqtt::Disconnect{.reason_code = mqtt::ReasonCode::kDisconnectWithWillMessage});
  } else {
    append(mqtt::Publish{.topic = options_.will_topic,
                         .payload = options_.will_payload,
                         .qos = mqtt::QoS::k0,
                         .retain = true});
    append(mqtt::Disconnect{});
  }
}

void BridgeClient::ScheduleReconnect(uint64_t now_ms) {
  ++failures_;
  if (!options_.reconnect) {
    connect_at_ms_ = kNever;  // start_type once
    return;
  }
  const uint32_t doublings = std::min<uint32_t>(failures_ - 1, 20);
  uint64_t wait = std::min<uint64_t>(options_.restart_max_ms,
                                     uint64_t{options_.restart_initial_ms} << doublings);
  const uint64_t jitter_max = wait * options_.restart_jitter_percent / 100;
  if (jitter_max > 0) wait -= random_() % (jitter_max + 1);
  connect_at_ms_ = now_ms + wait;
}

}  // namespace ringmq::bridge
