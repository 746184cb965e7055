// Encoding half of mqtt/codec.h: EncodedSize, Encode, EncodePublishHeader, EncodePublishParts,
// EncodePublishParts5, EncodeTopicList.
//
// The encoder trusts its caller: it asserts that the output fits and that every field is
// encodable (lengths within 16 bits, QoS within 0..2), but it does not enforce protocol rules, so
// tests can build packets the decoder must refuse.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <variant>

#include "common/assert.h"
#include "common/bytes.h"
#include "mqtt/codec.h"
#include "mqtt/properties.h"

namespace ringmq::mqtt {
namespace {

constexpr size_t kMaxStringLength = 0xFFFF;  // §1.5.3: 2-byte length prefix

// Sequential writes into a caller-provided span; every write asserts it fits.
class Writer {
 public:
  explicit Writer(std::span<uint8_t> out) : out_(out) {}

  size_t position() const { return position_; }

  void Byte(uint8_t value) {
    RINGMQ_ASSERT(position_ < out_.size());
    out_[position_++] = value;
  }

  void U16(uint16_t value) {
    Byte(static_cast<uint8_t>(value >> 8));
    Byte(static_cast<uint8_t>(value & 0xFF));
  }

  void Bytes(std::span<const uint8_t> bytes) {
    RINGMQ_ASSERT(bytes.size() <= out_.size() - position_);
    std::ranges::copy(bytes, out_.begin() + static_cast<std::ptrdiff_t>(position_));
    position_ += bytes.size();
  }

  void Bytes(std::string_view text) { Bytes(AsBytes(text)); }

  void LengthPrefixed(std::string_view text) {
    RINGMQ_ASSERT(text.size() <= kMaxStringLength);
    U16(static_cast<uint16_t>(text.size()));
    Bytes(text);
  }

  // Accounts for `count` bytes written directly into the output.
  void Skip(size_t count) {
    RINGMQ_ASSERT(count <= out_.size() - position_);
    position_ += count;
  }

  // §1.5.5: a Property Length and the block (5.0).
  void PropertyBlock(const Properties& properties) {
    RemainingLength(properties.raw().size());
    Bytes(properties.raw());
  }

  // §2.2.3: 7 bits per byte, least significant first, minimal length.
  void RemainingLength(size_t value) {
    RINGMQ_ASSERT(value <= kMaxRemainingLength);
    do {
      const auto low_bits = static_cast<uint8_t>(value & 0x7F);
      value >>= 7;
      Byte(value != 0 ? (low_bits | 0x80) : low_bits);
    } while (value != 0);
  }

 private:
  std::span<uint8_t> out_;
  size_t position_ = 0;
};

size_t RemainingLengthSize(size_t value) {
  RINGMQ_ASSERT(value <= kMaxRemainingLength);
  return value < 128 ? 1 : value < 16'384 ? 2 : value < 2'097'152 ? 3 : 4;
}

size_t PropertyBlockSize(const Properties& properties) {
  return RemainingLengthSize(properties.raw().size()) + properties.raw().size();
}

// 5.0 acks (§3.4.2): the packet id alone means Success without properties, and a reason code
// without properties may end the packet. The encoder writes the shortest form.
size_t ReasonAndPropertiesSize(ReasonCode reason_code, const Properties& properties) {
  if (!properties.empty()) {
    return 1 + PropertyBlockSize(properties);
  }
  return reason_code != ReasonCode::kSuccess ? 1 : 0;
}

size_t LengthPrefixedSize(std::string_view text) {
  RINGMQ_ASSERT(text.size() <= kMaxStringLength);
  return 2 + text.size();
}

uint8_t QosBits(QoS qos) {
  const auto bits = static_cast<uint8_t>(qos);
  RINGMQ_ASSERT(bits <= 2);
  return bits;
}

uint8_t PublishFlags(const Publish& publish) {
  return static_cast<uint8_t>((publish.dup ? 0x08 : 0) | (QosBits(publish.qos) << 1) |
                              (publish.retain ? 0x01 : 0));
}

uint8_t ConnectFlags(const Connect& connect) {
  uint8_t flags = connect.clean_session ? 0x02 : 0;
  if (connect.will.has_value()) {
    flags |= static_cast<uint8_t>(0x04 | (QosBits(connect.will->qos) << 3) |
                                  (connect.will->retain ? 0x20 : 0));
  }
  flags |= connect.password.has_value() ? 0x40 : 0;
  flags |= connect.user_name.has_value() ? 0x80 : 0;
  return flags;
}

// The first byte of the fixed header (§2.2).
uint8_t FirstByte(const Packet& packet) {
  const PacketType type = TypeOf(packet);
  uint8_t flags = 0;
  if (const auto* publish = std::get_if<Publish>(&packet)) {
    flags = PublishFlags(*publish);
  } else if (type == PacketType::kPubrel || type == PacketType::kSubscribe ||
             type == PacketType::kUnsubscribe) {
    flags = 0b0010;  // MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1
  }
  return static_cast<uint8_t>((static_cast<uint8_t>(type) << 4) | flags);
}

bool IsMqtt5(const Connect& connect) {
  return connect.protocol_level == static_cast<uint8_t>(ProtocolLevel::kMqtt5);
}

// Size of everything after the fixed header, per packet type. `v5`: the 5.0 layout (CONNECT
// follows its own protocol level instead).
struct BodySize {
  bool v5 = false;

  size_t operator()(const Connect& connect) const {
    const bool connect_v5 = IsMqtt5(connect);
    size_t size = LengthPrefixedSize(connect.protocol_name) + 1 + 1 + 2 +
                  LengthPrefixedSize(connect.client_id);
    size += connect_v5 ? PropertyBlockSize(connect.properties) : 0;
    if (connect.will.has_value()) {
      size += LengthPrefixedSize(connect.will->topic) + LengthPrefixedSize(connect.will->payload);
      size += connect_v5 ? PropertyBlockSize(connect.will->properties) : 0;
    }
    size += connect.user_name.has_value() ? LengthPrefixedSize(*connect.user_name) : 0;
    size += connect.password.has_value() ? LengthPrefixedSize(*connect.password) : 0;
    return size;
  }
  size_t operator()(const Connack& connack) const {
    return 2 + (v5 ? PropertyBlockSize(connack.properties) : 0);
  }
  size_t operator()(const Publish& publish) const {
    return LengthPrefixedSize(publish.topic) + (publish.qos != QoS::k0 ? 2 : 0) +
           (v5 ? PropertyBlockSize(publish.properties) : 0) + publish.payload.size();
  }
  template <typename Ack>
  size_t Ack5(const Ack& ack) const {
    return 2 + (v5 ? ReasonAndPropertiesSize(ack.reason_code, ack.properties) : 0);
  }
  size_t operator()(const Puback& ack) const { return Ack5(ack); }
  size_t operator()(const Pubrec& ack) const { return Ack5(ack); }
  size_t operator()(const Pubrel& ack) const { return Ack5(ack); }
  size_t operator()(const Pubcomp& ack) const { return Ack5(ack); }
  size_t operator()(const Subscribe& subscribe) const {
    return 2 + (v5 ? PropertyBlockSize(subscribe.properties) : 0) + subscribe.topics.raw().size();
  }
  size_t operator()(const Suback& suback) const {
    return 2 + (v5 ? PropertyBlockSize(suback.properties) : 0) + suback.return_codes.size();
  }
  size_t operator()(const Unsubscribe& unsubscribe) const {
    return 2 + (v5 ? PropertyBlockSize(unsubscribe.properties) : 0) +
           unsubscribe.topics.raw().size();
  }
  size_t operator()(const Unsuback& ack) const {
    return 2 + (v5 ? PropertyBlockSize(ack.properties) + ack.reason_codes.size() : 0);
  }
  size_t operator()(const Pingreq&) const { return 0; }
  size_t operator()(const Pingresp&) const { return 0; }
  size_t operator()(const Disconnect& disconnect) const {
    return v5 ? ReasonAndPropertiesSize(disconnect.reason_code, disconnect.properties) : 0;
  }
  size_t operator()(const Auth& auth) const {
    RINGMQ_ASSERT(v5 && "AUTH exists only at MQTT 5.0");
    return ReasonAndPropertiesSize(auth.reason_code, auth.properties);
  }
};

// Writes everything after the fixed header, per packet type.
struct BodyWriter {
  Writer& writer;
  bool v5 = false;

  void operator()(const Connect& connect) const {
    const bool connect_v5 = IsMqtt5(connect);
    writer.LengthPrefixed(connect.protocol_name);
    writer.Byte(connect.protocol_level);
    writer.Byte(ConnectFlags(connect));
    writer.U16(connect.keepalive_s);
    if (connect_v5) {
      writer.PropertyBlock(connect.properties);
    }
    writer.LengthPrefixed(connect.client_id);
    if (connect.will.has_value()) {
      if (connect_v5) {
        writer.PropertyBlock(connect.will->properties);
      }
      writer.LengthPrefixed(connect.will->topic);
      writer.LengthPrefixed(connect.will->payload);
    }
    if (connect.user_name.has_value()) {
      writer.LengthPrefixed(*connect.user_name);
    }
    if (connect.password.has_value()) {
      writer.LengthPrefixed(*connect.password);
    }
  }
  void operator()(const Connack& connack) const {
    writer.Byte(connack.session_present ? 0x01 : 0x00);
    if (!v5) {
      writer.Byte(static_cast<uint8_t>(connack.return_code));
      return;
    }
    writer.Byte(static_cast<uint8_t>(connack.reason_code));
    writer.PropertyBlock(connack.properties);
  }
  void operator()(const Publish& publish) const {
    writer.LengthPrefixed(publish.topic);
    if (publish.qos != QoS::k0) {
      writer.U16(publish.packet_id);
    }
    if (v5) {
      writer.PropertyBlock(publish.properties);
    }
    writer.Bytes(publish.payload);
  }
  // The optional tail of 5.0 acks, DISCONNECT and AUTH, shortest form (see
  // ReasonAndPropertiesSize).
  void ReasonAndProperties(ReasonCode reason_code, const Properties& properties) const {
    if (!v5 || (reason_code == ReasonCode::kSuccess && properties.empty())) {
      return;
    }
    writer.Byte(static_cast<uint8_t>(reason_code));
    if (!properties.empty()) {
      writer.PropertyBlock(properties);
    }
  }
  template <typename Ack>
  void Ack5(const Ack& ack) const {
    writer.U16(ack.packet_id);
    ReasonAndProperties(ack.reason_code, ack.properties);
  }
  void operator()(const Puback& ack) const { Ack5(ack); }
  void operator()(const Pubrec& ack) const { Ack5(ack); }
  void operator()(const Pubrel& ack) const { Ack5(ack); }
  void operator()(const Pubcomp& ack) const { Ack5(ack); }
  void operator()(const Subscribe& subscribe) const {
    writer.U16(subscribe.packet_id);
    if (v5) {
      writer.PropertyBlock(subscribe.properties);
    }
    writer.Bytes(subscribe.topics.raw());
  }
  void operator()(const Suback& suback) const {
    writer.U16(suback.packet_id);
    if (v5) {
      writer.PropertyBlock(suback.properties);
    }
    writer.Bytes(suback.return_codes);
  }
  void operator()(const Unsubscribe& unsubscribe) const {
    writer.U16(unsubscribe.packet_id);
    if (v5) {
      writer.PropertyBlock(unsubscribe.properties);
    }
    writer.Bytes(unsubscribe.topics.raw());
  }
  void operator()(const Unsuback& ack) const {
    writer.U16(ack.packet_id);
    if (v5) {
      writer.PropertyBlock(ack.properties);
      writer.Bytes(ack.reason_codes);
    }
  }
  void operator()(const Pingreq&) const {}
  void operator()(const Pingresp&) const {}
  void operator()(const Disconnect& disconnect) const {
    ReasonAndProperties(disconnect.reason_code, disconnect.properties);
  }
  void operator()(const Auth& auth) const {
    RINGMQ_ASSERT(v5 && "AUTH exists only at MQTT 5.0");
    ReasonAndProperties(auth.reason_code, auth.properties);
  }
};

}  // namespace

size_t EncodedSize(const Packet& packet, ProtocolLevel level) {
  const size_t body_size = std::visit(BodySize{level == ProtocolLevel::kMqtt5}, packet);
  return 1 + RemainingLengthSize(body_size) + body_size;
}

size_t Encode(const Packet& packet, std::span<uint8_t> out, ProtocolLevel level) {
  const bool v5 = level == ProtocolLevel::kMqtt5;
  const size_t body_size = std::visit(BodySize{v5}, packet);
  const size_t total_size = 1 + RemainingLengthSize(body_size) + body_size;
  RINGMQ_ASSERT(out.size() >= total_size);
  Writer writer(out);
  writer.Byte(FirstByte(packet));
  writer.RemainingLength(body_size);
  std::visit(BodyWriter{writer, v5}, packet);
  RINGMQ_ASSERT(writer.position() == total_size);
  return total_size;
}

size_t EncodePublishHeader(const Publish& publish, std::span<uint8_t> out) {
  const size_t body_size = BodySize{}(publish);
  const size_t header_size = 1 + RemainingLengthSize(body_size) +
                             LengthPrefixedSize(publish.topic) + (publish.qos != QoS::k0 ? 2 : 0);
  RINGMQ_ASSERT(header_size <= PublishHeaderMaxSize(publish.topic.size()));
  RINGMQ_ASSERT(out.size() >= header_size);
  Writer writer(out);
  writer.Byte(static_cast<uint8_t>((static_cast<uint8_t>(PacketType::kPublish) << 4) |
                                   PublishFlags(publish)));
  writer.RemainingLength(body_size);
  writer.LengthPrefixed(publish.topic);
  if (publish.qos != QoS::k0) {
    writer.U16(publish.packet_id);
  }
  RINGMQ_ASSERT(writer.position() == header_size);
  return header_size;
}

namespace {

size_t PublishPartsBodySize(const PublishParts& parts) {
  RINGMQ_ASSERT(parts.encoded_topic.size() >= 2);
  return parts.encoded_topic.size() + (parts.qos != QoS::k0 ? 2 : 0) + parts.payload.size();
}

}  // namespace

size_t EncodedPublishPartsSize(const PublishParts& parts) {
  const size_t body_size = PublishPartsBodySize(parts);
  return 1 + RemainingLengthSize(body_size) + body_size;
}

namespace {

// The fixed header's first byte of a delivery: type, DUP, QoS, RETAIN (§3.3.1).
uint8_t PublishFirstByte(const PublishParts& parts) {
  return static_cast<uint8_t>((static_cast<uint8_t>(PacketType::kPublish) << 4) |
                              (parts.dup ? 0x08 : 0) | (QosBits(parts.qos) << 1) |
                              (parts.retain ? 0x01 : 0));
}

}  // namespace

size_t EncodePublishParts(const PublishParts& parts, std::span<uint8_t> out) {
  const size_t body_size = PublishPartsBodySize(parts);
  const size_t total_size = 1 + RemainingLengthSize(body_size) + body_size;
  RINGMQ_ASSERT(out.size() >= total_size);
  Writer writer(out);
  writer.Byte(PublishFirstByte(parts));
  writer.RemainingLength(body_size);
  uint8_t* cursor = out.data() + writer.position();
  std::memcpy(cursor, parts.encoded_topic.data(), parts.encoded_topic.size());
  cursor += parts.encoded_topic.size();
  if (parts.qos != QoS::k0) {
    *cursor++ = static_cast<uint8_t>(parts.packet_id >> 8);
    *cursor++ = static_cast<uint8_t>(parts.packet_id & 0xff);
  }
  if (!parts.payload.empty()) std::memcpy(cursor, parts.payload.data(), parts.payload.size());
  RINGMQ_ASSERT(static_cast<size_t>(cursor - out.data()) + parts.payload.size() == total_size);
  return total_size;
}

namespace {

// Whether a property of the forwarded block survives the edits.
bool KeepForwarded(uint8_t id, const PublishPropertyEdits& edits) {
  // Will Delay Interval belongs to will properties, never to a PUBLISH (Table 2-4): dropped so
  // that a will's properties can be forwarded as they are.
  return id != static_cast<uint8_t>(PropertyId::kTopicAlias) &&
         id != static_cast<uint8_t>(PropertyId::kSubscriptionIdentifier) &&
         id != static_cast<uint8_t>(PropertyId::kWillDelayInterval) &&
         !(id == static_cast<uint8_t>(PropertyId::kMessageExpiryInterval) &&
           edits.message_expiry_s.has_value());
}

// Size of the edited property block (without its Property Length).
size_t EditedPropertiesSize(const PublishPropertyEdits& edits) {
  size_t size = 0;
  if (edits.message_expiry_s.has_value()) {
    size += IntegerPropertySize(PropertyId::kMessageExpiryInterval, *edits.message_expiry_s);
  }
  if (edits.topic_alias != 0) {
    size += IntegerPropertySize(PropertyId::kTopicAlias, edits.topic_alias);
  }
  for (const uint32_t identifier : edits.subscription_identifiers) {
    RINGMQ_ASSERT(identifier != 0);  // 1..268,435,455 (§3.3.2.3.8)
    size += IntegerPropertySize(PropertyId::kSubscriptionIdentifier, identifier);
  }
  // Each property is at least 2 bytes: at most forwarded.size() / 2 iterations.
  for (size_t position = 0; position < edits.forwarded.size();) {
    const size_t property_size = FirstPropertySize(edits.forwarded.subspan(position));
    if (KeepForwarded(edits.forwarded[position], edits)) {
      size += property_size;
    }
    position += property_size;
  }
  return size;
}

size_t PublishParts5BodySize(const PublishParts& parts, size_t properties_size) {
  RINGMQ_ASSERT(parts.encoded_topic.size() >= 2);
  return parts.encoded_topic.size() + (parts.qos != QoS::k0 ? 2 : 0) +
         RemainingLengthSize(properties_size) + properties_size + parts.payload.size();
}

}  // namespace

size_t EncodedPublishParts5Size(const PublishParts& parts, const PublishPropertyEdits& edits) {
  const size_t properties_size = EditedPropertiesSize(edits);
  // The 5.0 copy is larger than the message received (at least its Property Length byte), so
  // a message near the largest remaining length may not fit: not sent (MQTT-3.1.2-25), not a
  // crash. The property block itself is bounded by the message it came from.
  if (properties_size > kMaxRemainingLength) return 0;
  const size_t body_size = PublishParts5BodySize(parts, properties_size);
  if (body_size > kMaxRemainingLength) return 0;
  return 1 + RemainingLengthSize(body_size) + body_size;
}

size_t EncodePublishParts5(const PublishParts& parts, const PublishPropertyEdits& edits,
                           std::span<uint8_t> out) {
  const size_t properties_size = EditedPropertiesSize(edits);
  const size_t body_size = PublishParts5BodySize(parts, properties_size);
  const size_t total_size = 1 + RemainingLengthSize(body_size) + body_size;
  RINGMQ_ASSERT(out.size() >= total_size);
  Writer writer(out);
  writer.Byte(PublishFirstByte(parts));
  writer.RemainingLength(body_size);
  writer.Bytes(parts.encoded_topic);
  if (parts.qos != QoS::k0) {
    writer.U16(parts.packet_id);
  }
  writer.RemainingLength(properties_size);
  const size_t properties_start = writer.position();
  const auto rest = [&] { return out.subspan(writer.position()); };
  if (edits.message_expiry_s.has_value()) {
    writer.Skip(
        EncodeIntegerProperty(PropertyId::kMessageExpiryInterval, *edits.message_expiry_s, rest()));
  }
  if (edits.topic_alias != 0) {
    writer.Skip(EncodeIntegerProperty(PropertyId::kTopicAlias, edits.topic_alias, rest()));
  }
  for (const uint32_t identifier : edits.subscription_identifiers) {
    writer.Skip(EncodeIntegerProperty(PropertyId::kSubscriptionIdentifier, identifier, rest()));
  }
  for (size_t position = 0; position < edits.forwarded.size();) {
    const size_t property_size = FirstPropertySize(edits.forwarded.subspan(position));
    if (KeepForwarded(edits.forwarded[position], edits)) {
      writer.Bytes(edits.forwarded.subspan(position, property_size));
    }
    position += property_size;
  }
  RINGMQ_ASSERT(writer.position() - properties_start == properties_size);
  writer.Bytes(parts.payload);
  RINGMQ_ASSERT(writer.position() == total_size);
  return total_size;
}

size_t TopicListEncodedSize(std::span<const TopicRequest> requests, bool has_qos) {
  size_t size = 0;
  for (const TopicRequest& request : requests) {
    size += LengthPrefixedSize(request.filter) + (has_qos ? 1 : 0);
  }
  return size;
}

size_t EncodeTopicList(std::span<const TopicRequest> requests, bool has_qos,
                       std::span<uint8_t> out) {
  const size_t size = TopicListEncodedSize(requests, has_qos);
  RINGMQ_ASSERT(out.size() >= size);
  Writer writer(out);
  for (const TopicRequest& request : requests) {
    writer.LengthPrefixed(request.filter);
    if (has_qos) {
      writer.Byte(SubscriptionOptions(request));
    }
  }
  RINGMQ_ASSERT(writer.position() == size);
  return size;
}

}  // namespace ringmq::mqtt
