// Decoding half of mqtt/codec.h: PeekFrame, Decode, DecodeConnect, for MQTT 3.1, 3.1.1 and 5.0.
// The 5.0 decoders are separate functions beside their 3.1.1 counterparts, so the 3.1.1 path
// pays one level comparison per packet and nothing else.
//
// Every check names the rule it enforces. Bytes from the network never reach a RINGMQ_ASSERT:
// asserts here guard only the caller's side of the contract (body size matches the header).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "common/assert.h"
#include "common/bytes.h"
#include "mqtt/codec.h"
#include "mqtt/properties.h"
#include "mqtt/topic.h"

namespace ringmq::mqtt {
namespace {

// Sequential, bounds-checked reads over one packet body. A failed read consumes nothing.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - position_; }
  bool empty() const { return remaining() == 0; }

  bool ReadByte(uint8_t& value) {
    if (remaining() < 1) {
      return false;
    }
    value = bytes_[position_++];
    return true;
  }

  bool ReadU16(uint16_t& value) {
    if (remaining() < 2) {
      return false;
    }
    value = static_cast<uint16_t>((bytes_[position_] << 8) | bytes_[position_ + 1]);
    position_ += 2;
    return true;
  }

  // A 2-byte big-endian length followed by that many bytes (§1.5.3 strings and the binary
  // fields of CONNECT). False when either part overruns the body.
  bool ReadLengthPrefixed(std::string_view& value) {
    if (remaining() < 2) {
      return false;
    }
    const size_t length = (size_t{bytes_[position_]} << 8) | bytes_[position_ + 1];
    if (remaining() - 2 < length) {
      return false;
    }
    value = AsText(bytes_.subspan(position_ + 2, length));
    position_ += 2 + length;
    return true;
  }

  // A Variable Byte Integer (§1.5.5); on failure the violation, and nothing consumed.
  Violation ReadVariableByteInteger(uint32_t& value) {
    size_t position = position_;
    const Violation violation = mqtt::ReadVariableByteInteger(bytes_, position, value);
    if (violation == Violation::kNone) {
      position_ = position;
    }
    return violation;
  }

  bool ReadBytes(size_t count, std::span<const uint8_t>& value) {
    if (remaining() < count) {
      return false;
    }
    value = bytes_.subspan(position_, count);
    position_ += count;
    return true;
  }

  // Consumes and returns everything left.
  std::span<const uint8_t> ReadRest() {
    const std::span<const uint8_t> rest = bytes_.subspan(position_);
    position_ = bytes_.size();
    return rest;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t position_ = 0;
};

// 15 (AUTH) exists from 5.0 on.
bool IsValidPacketType(uint8_t type, ProtocolLevel level) {
  return type >= 1 && (type <= 14 || (type == 15 && level == ProtocolLevel::kMqtt5));
}

// The first byte of the fixed header (§2.2): type and flags. Shared by PeekFrame, which rejects
// from the first byte alone, and Decode, which may be handed a header built elsewhere.
Violation CheckTypeAndFlags(uint8_t type, uint8_t flags, ProtocolLevel level) {
  if (!IsValidPacketType(type, level)) {
    return Violation::kReservedPacketType;  // §2.2.1: 0 and 15 (before 5.0) are reserved
  }
  if (flags > 0x0F) {
    return Violation::kBadFixedHeaderFlags;
  }
  const auto packet_type = static_cast<PacketType>(type);
  if (packet_type == PacketType::kPublish) {
    const uint8_t qos = (flags >> 1) & 0x03;
    if (qos == 3) {
      return Violation::kPublishQos3;  // MQTT-3.3.1-4
    }
    if ((flags & 0x08) != 0 && qos == 0) {
      return Violation::kPublishDupWithQos0;  // MQTT-3.3.1-2
    }
    return Violation::kNone;
  }
  // MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1: PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010;
  // MQTT-2.2.2-1: every other type carries 0 (AUTH too, 5.0 MQTT-3.15.1-1).
  const bool flags_are_0010 = packet_type == PacketType::kPubrel ||
                              packet_type == PacketType::kSubscribe ||
                              packet_type == PacketType::kUnsubscribe;
  const uint8_t required = flags_are_0010 ? 0b0010 : 0;
  // MQTT 3.1 (§2.1 of that spec) sends these three at QoS 1 and sets DUP when it retransmits
  // them: a 3.1 client may send 0b1010 there. 3.1.1 made the flags fixed.
  if (flags_are_0010 && level == ProtocolLevel::kMqtt31 && flags == (required | 0x08)) {
    return Violation::kNone;
  }
  return flags == required ? Violation::kNone : Violation::kBadFixedHeaderFlags;
}

// The remaining length §3 fixes for a type at 3.1 / 3.1.1, if it fixes one.
std::optional<uint32_t> FixedRemainingLength(PacketType type) {
  switch (type) {
    case PacketType::kConnack:   // §3.2.1
    case PacketType::kPuback:    // §3.4.1
    case PacketType::kPubrec:    // §3.5.1
    case PacketType::kPubrel:    // §3.6.1
    case PacketType::kPubcomp:   // §3.7.1
    case PacketType::kUnsuback:  // §3.11.1
      return 2;
    case PacketType::kPingreq:     // §3.12
    case PacketType::kPingresp:    // §3.13
    case PacketType::kDisconnect:  // §3.14
      return 0;
    default:
      return std::nullopt;
  }
}

// For types of fixed size, a wrong remaining length is known from the header alone. At 5.0 the
// acks, CONNACK and DISCONNECT may carry a reason code and properties: only PINGREQ and PINGRESP
// stay fixed. The level is looked at only once a length is wrong, so the 3.1.1 path is as before.
Violation CheckRemainingLength(PacketType type, uint32_t remaining_length, ProtocolLevel level) {
  const std::optional<uint32_t> fixed = FixedRemainingLength(type);
  if (!fixed.has_value() || remaining_length == *fixed) {
    return Violation::kNone;
  }
  if (level == ProtocolLevel::kMqtt5 && type != PacketType::kPingreq &&
      type != PacketType::kPingresp) {
    return Violation::kNone;
  }
  return remaining_length < *fixed ? Violation::kTruncated : Violation::kSurplusBytes;
}

Frame InvalidFrame(Violation violation) {
  RINGMQ_ASSERT(violation != Violation::kNone);
  Frame frame;
  frame.status = FrameStatus::kInvalid;
  frame.violation = violation;
  return frame;
}

}  // namespace

// Scans strictly left to right and stops at the first byte that decides: so a stream split at any
// byte boundary yields kNeedMore on every prefix and then exactly the answer the whole stream
// gives, and a rejection happens as soon as the offending byte has arrived.
Frame PeekFrame(std::span<const uint8_t> bytes, uint32_t max_packet_size, ProtocolLevel level) {
  Frame frame;
  if (bytes.empty()) {
    return frame;
  }
  const uint8_t type = bytes[0] >> 4;
  const uint8_t flags = bytes[0] & 0x0F;
  if (const Violation violation = CheckTypeAndFlags(type, flags, level);
      violation != Violation::kNone) {
    return InvalidFrame(violation);
  }
  // §2.2.3: up to four length bytes, 7 bits each, least significant first, bit 7 = "more".
  // Non-minimal encodings (e.g. 0x80 0x00 for 0) are accepted at 3.1.x, which does not forbid
  // them; 5.0 does.
  uint32_t remaining_length = 0;
  size_t header_length = 0;
  for (size_t index = 1; header_length == 0; ++index) {
    if (index >= bytes.size()) {
      return frame;  // kNeedMore, header still incomplete
    }
    const uint8_t byte = bytes[index];
    const bool more = (byte & 0x80) != 0;
    remaining_length += uint32_t{byte & 0x7Fu} << (7 * (index - 1));
    if (more && index == 4) {
      return InvalidFrame(Violation::kRemainingLengthTooLong);  // MQTT-2.2.3
    }
    // Later length bytes can only add: once this lower bound exceeds the limit, so will the
    // packet, so refuse now rather than after up to 256 MiB have been buffered.
    const uint64_t total_lower_bound = index + 1 + (more ? 1 : 0) + uint64_t{remaining_length};
    if (total_lower_bound > max_packet_size) {
      return InvalidFrame(Violation::kPacketTooLarge);
    }
    header_length = more ? 0 : index + 1;
  }
  // 5.0 MQTT-1.5.5-1: a last length byte of 0 after a continuation byte is a longer encoding
  // than needed. Decided by the same byte that ended the header, so prefixes still agree.
  if (header_length > 2 && bytes[header_length - 1] == 0 && level == ProtocolLevel::kMqtt5) {
    return InvalidFrame(Violation::kNonMinimalVariableByteInteger);
  }
  const auto packet_type = static_cast<PacketType>(type);
  if (const Violation violation = CheckRemainingLength(packet_type, remaining_length, level);
      violation != Violation::kNone) {
    return InvalidFrame(violation);
  }
  frame.header.type = packet_type;
  frame.header.flags = flags;
  frame.header.remaining_length = remaining_length;
  frame.header.header_length = static_cast<uint8_t>(header_length);
  RINGMQ_ASSERT(header_length >= 2 && header_length <= kMaxFixedHeaderLength);
  frame.status =
      bytes.size() >= frame.header.total_length() ? FrameStatus::kComplete : FrameStatus::kNeedMore;
  return frame;
}

namespace {

// CONNECT connect-flags bits (§3.1.2.3).
constexpr uint8_t kFlagReserved = 0x01;
constexpr uint8_t kFlagCleanSession = 0x02;
constexpr uint8_t kFlagWill = 0x04;
constexpr uint8_t kFlagWillQosShift = 3;
constexpr uint8_t kFlagWillQos = 0x18;
constexpr uint8_t kFlagWillRetain = 0x20;
constexpr uint8_t kFlagPassword = 0x40;
constexpr uint8_t kFlagUserName = 0x80;

// Protocol name and level (§3.1.2.1, §3.1.2.2). An unknown name is malformed; a known name
// with a level the caller did not ask for is well formed but unsupported: the caller answers
// CONNACK 0x01 (MQTT-3.1.2-2), so parsing stops after the level byte.
Violation DecodeProtocol(Reader& reader, bool accept_mqtt5, Connect& connect) {
  if (!reader.ReadLengthPrefixed(connect.protocol_name) ||
      !reader.ReadByte(connect.protocol_level)) {
    return Violation::kTruncated;
  }
  const bool is_mqtt = connect.protocol_name == "MQTT";
  const bool is_mqisdp = connect.protocol_name == "MQIsdp";
  if (!is_mqtt && !is_mqisdp) {
    return Violation::kBadProtocolName;  // MQTT-3.1.2-1
  }
  const auto expected = is_mqtt ? ProtocolLevel::kMqtt311 : ProtocolLevel::kMqtt31;
  connect.level_supported = connect.protocol_level == static_cast<uint8_t>(expected) ||
                            (accept_mqtt5 && is_mqtt &&
                             connect.protocol_level == static_cast<uint8_t>(ProtocolLevel::kMqtt5));
  return Violation::kNone;
}

Violation CheckConnectFlags(uint8_t flags) {
  if ((flags & kFlagReserved) != 0) {
    return Violation::kConnectReservedFlag;  // MQTT-3.1.2-3
  }
  const uint8_t will_qos = (flags & kFlagWillQos) >> kFlagWillQosShift;
  if ((flags & kFlagWill) == 0 && (will_qos != 0 || (flags & kFlagWillRetain) != 0)) {
    return Violation::kWillFlagsWithoutWill;  // MQTT-3.1.2-13, MQTT-3.1.2-15
  }
  if (will_qos == 3) {
    return Violation::kWillQosInvalid;  // MQTT-3.1.2-14
  }
  // MQTT-3.1.2-22. MQTT 3.1 does not state this rule, but a password without a user name means
  // nothing there either, so both levels refuse it.
  if ((flags & kFlagPassword) != 0 && (flags & kFlagUserName) == 0) {
    return Violation::kPasswordWithoutUserName;
  }
  return Violation::kNone;
}

// One length-prefixed payload field: `missing` when not even its first byte is there (the flags
// promised a field the payload lacks), kTruncated when it starts but overruns the body.
Violation ReadPayloadField(Reader& reader, Violation missing, std::string_view& value) {
  if (reader.empty()) {
    return missing;
  }
  return reader.ReadLengthPrefixed(value) ? Violation::kNone : Violation::kTruncated;
}

// §3.1.3: client id, [will topic, will message], [user name], [password], in that order.
Violation DecodeConnectPayload(Reader& reader, uint8_t flags, Connect& connect) {
  Violation violation = ReadPayloadField(reader, Violation::kMissingClientId, connect.client_id);
  if (violation == Violation::kNone) {
    violation = ValidateUtf8(connect.client_id);  // MQTT-3.1.3-4; may be empty (admission decides)
  }
  if (violation == Violation::kNone && (flags & kFlagWill) != 0) {
    Will will;
    will.qos = static_cast<QoS>((flags & kFlagWillQos) >> kFlagWillQosShift);
    will.retain = (flags & kFlagWillRetain) != 0;
    violation = ReadPayloadField(reader, Violation::kMissingWillTopic, will.topic);
    if (violation == Violation::kNone && ValidateTopicName(will.topic) != Violation::kNone) {
      violation = Violation::kInvalidWillTopic;  // MQTT-3.1.3-10, MQTT-3.3.2-2
    }
    if (violation == Violation::kNone) {
      violation = ReadPayloadField(reader, Violation::kMissingWillMessage, will.payload);
    }
    connect.will = will;
  }
  if (violation == Violation::kNone && (flags & kFlagUserName) != 0) {
    std::string_view user_name;
    violation = ReadPayloadField(reader, Violation::kMissingUserName, user_name);
    if (violation == Violation::kNone) {
      violation = ValidateUtf8(user_name);  // MQTT-3.1.3-11
    }
    connect.user_name = user_name;
  }
  if (violation == Violation::kNone && (flags & kFlagPassword) != 0) {
    std::string_view password;  // binary data (§3.1.3.5), no UTF-8 rule
    violation = ReadPayloadField(reader, Violation::kMissingPassword, password);
    connect.password = password;
  }
  if (violation == Violation::kNone && !reader.empty()) {
    violation = Violation::kSurplusBytes;
  }
  return violation;
}

// What every level's PUBLISH starts with: the flags of the fixed header, the topic name (not yet
// validated: 5.0 allows an empty one with a Topic Alias) and, at QoS 1/2, a non-zero packet id
// (MQTT-2.3.1-1; 5.0 MQTT-2.2.1-3).
Violation ReadPublishHead(const FixedHeader& header, Reader& reader, Publish& publish) {
  publish.qos = static_cast<QoS>((header.flags >> 1) & 0x03);
  publish.dup = (header.flags & 0x08) != 0;
  publish.retain = (header.flags & 0x01) != 0;
  if (!reader.ReadLengthPrefixed(publish.topic)) return Violation::kTruncated;
  if (publish.qos != QoS::k0) {
    if (!reader.ReadU16(publish.packet_id)) return Violation::kTruncated;
    if (publish.packet_id == 0) return Violation::kPacketIdZero;
  }
  return Violation::kNone;
}

Result<Packet> DecodePublish(const FixedHeader& header, std::span<const uint8_t> body) {
  Publish publish;
  Reader reader(body);
  if (const Violation violation = ReadPublishHead(header, reader, publish);
      violation != Violation::kNone) {
    return violation;
  }
  // Non-empty (MQTT-4.7.3-1), UTF-8 (MQTT-1.5.3-1/2), no wildcard (MQTT-3.3.2-2), level bound.
  if (const Violation violation = ValidateTopicName(publish.topic); violation != Violation::kNone) {
    return violation;
  }
  publish.payload = AsText(reader.ReadRest());  // may be empty (§3.3.3)
  return publish;
}

// PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a packet id and nothing else. PeekFrame has already
// refused a remaining length other than 2; Decode checks again for headers built elsewhere.
template <typename Ack>
Result<Packet> DecodeAck(std::span<const uint8_t> body) {
  Reader reader(body);
  Ack ack;
  if (!reader.ReadU16(ack.packet_id)) {
    return Violation::kTruncated;
  }
  if (!reader.empty()) {
    return Violation::kSurplusBytes;
  }
  if (ack.packet_id == 0) {
    return Violation::kPacketIdZero;  // MQTT-2.3.1-1
  }
  return ack;
}

Result<Packet> DecodeConnack(std::span<const uint8_t> body, ProtocolLevel level) {
  Reader reader(body);
  uint8_t acknowledge_flags = 0;
  uint8_t return_code = 0;
  if (!reader.ReadByte(acknowledge_flags) || !reader.ReadByte(return_code)) {
    return Violation::kTruncated;
  }
  if (!reader.empty()) {
    return Violation::kSurplusBytes;
  }
  // MQTT-3.2.2-1: bits 7..1 are reserved. MQTT 3.1 has no session-present flag: the whole
  // byte is reserved there.
  const uint8_t reserved_mask = level == ProtocolLevel::kMqtt31 ? 0xFF : 0xFE;
  if ((acknowledge_flags & reserved_mask) != 0) {
    return Violation::kConnackReservedBits;
  }
  const bool session_present = (acknowledge_flags & 0x01) != 0;
  if (return_code > static_cast<uint8_t>(ConnackCode::kNotAuthorized) ||
      (session_present && return_code != 0)) {
    return Violation::kConnackBadReturnCode;  // §3.2.2.3, MQTT-3.2.2-4
  }
  Connack connack;
  connack.session_present = session_present;
  connack.return_code = static_cast<ConnackCode>(return_code);
  return connack;
}

// Validates every entry of a SUBSCRIBE (has_qos) or UNSUBSCRIBE payload, so that iterating the
// TopicList later cannot fail.
Violation ValidateTopicEntries(std::span<const uint8_t> entries, bool has_qos) {
  if (entries.empty()) {
    return Violation::kNoTopicFilters;  // MQTT-3.8.3-3, MQTT-3.10.3-2
  }
  Reader reader(entries);
  // A valid entry is at least 3 bytes (2-byte length, non-empty filter): bounded by size / 3.
  while (!reader.empty()) {
    std::string_view filter;
    if (!reader.ReadLengthPrefixed(filter)) {
      return Violation::kTruncated;
    }
    // Non-empty (MQTT-4.7.3-1), UTF-8, wildcards (MQTT-4.7.1-2, MQTT-4.7.1-3), level bound.
    if (const Violation violation = ValidateTopicFilter(filter); violation != Violation::kNone) {
      return violation;
    }
    uint8_t requested_qos = 0;
    if (has_qos && !reader.ReadByte(requested_qos)) {
      return Violation::kTruncated;
    }
    if ((requested_qos & 0xFC) != 0 || requested_qos == 3) {
      return Violation::kSubscribeReservedBits;  // MQTT-3.8.3-4
    }
  }
  return Violation::kNone;
}

// SUBSCRIBE (§3.8.3) and UNSUBSCRIBE (§3.10.3): packet id, then one or more entries.
template <typename Request>
Result<Packet> DecodeTopicRequest(std::span<const uint8_t> body, bool has_qos) {
  Reader reader(body);
  Request request;
  if (!reader.ReadU16(request.packet_id)) {
    return Violation::kTruncated;
  }
  if (request.packet_id == 0) {
    return Violation::kPacketIdZero;  // MQTT-2.3.1-1
  }
  const std::span<const uint8_t> entries = reader.ReadRest();
  if (const Violation violation = ValidateTopicEntries(entries, has_qos);
      violation != Violation::kNone) {
    return violation;
  }
  request.topics = TopicList(entries, has_qos);
  return request;
}

Result<Packet> DecodeSuback(std::span<const uint8_t> body) {
  Reader reader(body);
  Suback suback;
  if (!reader.ReadU16(suback.packet_id)) {
    return Violation::kTruncated;
  }
  if (suback.packet_id == 0) {
    return Violation::kPacketIdZero;  // MQTT-2.3.1-1
  }
  suback.return_codes = reader.ReadRest();
  if (suback.return_codes.empty()) {
    return Violation::kTruncated;  // §3.9.3: one return code per requested filter, at least one
  }
  for (const uint8_t code : suback.return_codes) {
    if (code > 0x02 && code != kSubackFailure) {
      return Violation::kSubackBadReturnCode;  // MQTT-3.9.3-2
    }
  }
  return suback;
}

// PINGREQ, PINGRESP, DISCONNECT: no variable header, no payload.
template <typename Empty>
Result<Packet> DecodeEmpty(std::span<const uint8_t> body) {
  if (!body.empty()) {
    return Violation::kSurplusBytes;
  }
  return Empty{};
}

// ---- MQTT 5.0 ----

// A Property Length and the block it covers (§2.2.2.1), validated for `where`.
Violation ReadProperties(Reader& reader, uint16_t where, Properties& properties) {
  uint32_t length = 0;
  if (const Violation violation = reader.ReadVariableByteInteger(length);
      violation != Violation::kNone) {
    return violation;
  }
  std::span<const uint8_t> block;
  if (!reader.ReadBytes(length, block)) {
    return Violation::kTruncated;
  }
  if (const Violation violation = ValidateProperties(block, where); violation != Violation::kNone) {
    return violation;
  }
  properties = Properties(block);
  return Violation::kNone;
}

// §3.1.2.11.10 and §3.15.2.2.3: Authentication Data needs an Authentication Method.
Violation CheckAuthenticationPair(const Properties& properties) {
  if (properties.Find(PropertyId::kAuthenticationData).has_value() &&
      !properties.Find(PropertyId::kAuthenticationMethod).has_value()) {
    return Violation::kAuthenticationDataWithoutMethod;
  }
  return Violation::kNone;
}

// 5.0 connect flags (§3.1.2.3): as 3.1.1, except that a password without a user name is allowed
// (§3.1.2.9). The will rules are MQTT-3.1.2-11, -13, -14 and -15 in 5.0.
Violation CheckConnectFlags5(uint8_t flags) {
  if ((flags & kFlagReserved) != 0) {
    return Violation::kConnectReservedFlag;  // 5.0 MQTT-3.1.2-3
  }
  const uint8_t will_qos = (flags & kFlagWillQos) >> kFlagWillQosShift;
  if ((flags & kFlagWill) == 0 && (will_qos != 0 || (flags & kFlagWillRetain) != 0)) {
    return Violation::kWillFlagsWithoutWill;  // 5.0 MQTT-3.1.2-11, -13, -15
  }
  if (will_qos == 3) {
    return Violation::kWillQosInvalid;  // 5.0 MQTT-3.1.2-14
  }
  return Violation::kNone;
}

// §3.1.3 at 5.0: client id, [will properties, will topic, will payload], [user name],
// [password].
Violation DecodeConnectPayload5(Reader& reader, uint8_t flags, Connect& connect) {
  Violation violation = ReadPayloadField(reader, Violation::kMissingClientId, connect.client_id);
  if (violation == Violation::kNone) {
    violation = ValidateUtf8(connect.client_id);  // 5.0 MQTT-3.1.3-4
  }
  if (violation == Violation::kNone && (flags & kFlagWill) != 0) {
    Will will;
    will.qos = static_cast<QoS>((flags & kFlagWillQos) >> kFlagWillQosShift);
    will.retain = (flags & kFlagWillRetain) != 0;
    violation = reader.empty() ? Violation::kMissingWillTopic  // 5.0 MQTT-3.1.2-9
                               : ReadProperties(reader, kWillPropertiesBit, will.properties);
    if (violation == Violation::kNone) {
      violation = ReadPayloadField(reader, Violation::kMissingWillTopic, will.topic);
    }
    if (violation == Violation::kNone && ValidateTopicName(will.topic) != Violation::kNone) {
      violation = Violation::kInvalidWillTopic;  // 5.0 MQTT-3.1.3-9, MQTT-3.3.2-2
    }
    if (violation == Violation::kNone) {
      violation = ReadPayloadField(reader, Violation::kMissingWillMessage, will.payload);
    }
    connect.will = will;
  }
  if (violation == Violation::kNone && (flags & kFlagUserName) != 0) {
    std::string_view user_name;
    violation = ReadPayloadField(reader, Violation::kMissingUserName, user_name);
    if (violation == Violation::kNone) {
      violation = ValidateUtf8(user_name);  // 5.0 MQTT-3.1.3-10
    }
    connect.user_name = user_name;
  }
  if (violation == Violation::kNone && (flags & kFlagPassword) != 0) {
    std::string_view password;
    violation = ReadPayloadField(reader, Violation::kMissingPassword, password);
    connect.password = password;
  }
  if (violation == Violation::kNone && !reader.empty()) {
    violation = Violation::kSurplusBytes;
  }
  return violation;
}

// After the level byte of a 5.0 CONNECT: flags, keep alive, properties, payload.
[[gnu::noinline]] Violation DecodeConnectRest5(Reader& reader, Connect& connect) {
  uint8_t flags = 0;
  if (!reader.ReadByte(flags) || !reader.ReadU16(connect.keepalive_s)) {
    return Violation::kTruncated;
  }
  if (const Violation violation = CheckConnectFlags5(flags); violation != Violation::kNone) {
    return violation;
  }
  connect.clean_session = (flags & kFlagCleanSession) != 0;  // Clean Start, §3.1.2.4
  Violation violation = ReadProperties(reader, PacketBit(PacketType::kConnect), connect.properties);
  if (violation == Violation::kNone) {
    violation = CheckAuthenticationPair(connect.properties);
  }
  if (violation == Violation::kNone) {
    violation = DecodeConnectPayload5(reader, flags, connect);
  }
  return violation;
}

Result<Packet> DecodeConnack5(std::span<const uint8_t> body) {
  Reader reader(body);
  uint8_t acknowledge_flags = 0;
  uint8_t reason_code = 0;
  if (!reader.ReadByte(acknowledge_flags) || !reader.ReadByte(reason_code)) {
    return Violation::kTruncated;
  }
  if ((acknowledge_flags & 0xFE) != 0) {
    return Violation::kConnackReservedBits;  // 5.0 MQTT-3.2.2-1
  }
  if (!IsReasonCodeAllowed(reason_code, PacketType::kConnack)) {
    return Violation::kBadReasonCode;  // 5.0 MQTT-3.2.2-8
  }
  Connack connack;
  connack.session_present = (acknowledge_flags & 0x01) != 0;
  connack.reason_code = static_cast<ReasonCode>(reason_code);
  if (connack.session_present && reason_code != 0) {
    return Violation::kConnackBadReturnCode;  // 5.0 MQTT-3.2.2-6
  }
  if (const Violation violation =
          ReadProperties(reader, PacketBit(PacketType::kConnack), connack.properties);
      violation != Violation::kNone) {
    return violation;
  }
  if (!reader.empty()) {
    return Violation::kSurplusBytes;
  }
  return connack;
}

Result<Packet> DecodePublish5(const FixedHeader& header, std::span<const uint8_t> body) {
  Publish publish;
  Reader reader(body);
  if (const Violation violation = ReadPublishHead(header, reader, publish);
      violation != Violation::kNone) {
    return violation;
  }
  if (const Violation violation =
          ReadProperties(reader, PacketBit(PacketType::kPublish), publish.properties);
      violation != Violation::kNone) {
    return violation;
  }
  if (publish.topic.empty()) {
    // §3.3.2.3.4: an empty topic name stands for the one a Topic Alias maps to.
    if (!publish.properties.Find(PropertyId::kTopicAlias).has_value()) {
      return Violation::kEmptyTopicWithoutAlias;
    }
  } else if (const Violation violation = ValidateTopicName(publish.topic);
             violation != Violation::kNone) {
    return violation;  // UTF-8 (5.0 MQTT-1.5.4-1/2), no wildcard (MQTT-3.3.2-2), level bound
  }
  publish.payload = AsText(reader.ReadRest());
  return publish;
}

// An optional reason code, then optional properties (§3.4.2, §3.14.2, §3.15.2): the body ends
// where the sender stopped, and what is absent takes its default.
Violation ReadReasonAndProperties(Reader& reader, PacketType type, ReasonCode& reason_code,
                                  Properties& properties) {
  uint8_t code = 0;
  if (!reader.ReadByte(code)) {
    return Violation::kNone;  // no reason code: 0x00 (e.g. 5.0 MQTT-3.4.2-1, §3.14.2.1)
  }
  if (!IsReasonCodeAllowed(code, type)) {
    return Violation::kBadReasonCode;
  }
  reason_code = static_cast<ReasonCode>(code);
  if (reader.empty()) {
    return Violation::kNone;  // no properties (§3.4.2.2.1)
  }
  if (const Violation violation = ReadProperties(reader, PacketBit(type), properties);
      violation != Violation::kNone) {
    return violation;
  }
  return reader.empty() ? Violation::kNone : Violation::kSurplusBytes;
}

// PUBACK, PUBREC, PUBREL, PUBCOMP at 5.0.
// The packet id of a 5.0 acknowledgement, SUBSCRIBE or UNSUBSCRIBE: present and non-zero.
Violation ReadPacketId5(Reader& reader, uint16_t& packet_id) {
  if (!reader.ReadU16(packet_id)) return Violation::kTruncated;
  if (packet_id == 0) return Violation::kPacketIdZero;  // 5.0 MQTT-2.2.1-3
  return Violation::kNone;
}

template <typename Ack>
Result<Packet> DecodeAck5(std::span<const uint8_t> body, PacketType type) {
  Reader reader(body);
  Ack ack;
  if (const Violation violation = ReadPacketId5(reader, ack.packet_id);
      violation != Violation::kNone) {
    return violation;
  }
  if (const Violation violation =
          ReadReasonAndProperties(reader, type, ack.reason_code, ack.properties);
      violation != Violation::kNone) {
    return violation;
  }
  return ack;
}

// DISCONNECT and AUTH: remaining length 0 means reason code 0x00 and no properties.
template <typename Packet5>
Result<Packet> DecodeReasonOnly5(std::span<const uint8_t> body, PacketType type) {
  Reader reader(body);
  Packet5 packet;
  if (const Violation violation =
          ReadReasonAndProperties(reader, type, packet.reason_code, packet.properties);
      violation != Violation::kNone) {
    return violation;
  }
  if constexpr (std::is_same_v<Packet5, Auth>) {
    // §3.15.2.2.2: every AUTH but the empty one (remaining length 0: reason 0x00, no
    // properties, §3.15.2.1) names its Authentication Method.
    if (const Violation violation = CheckAuthenticationPair(packet.properties);
        violation != Violation::kNone) {
      return violation;
    }
    if (!body.empty() && !packet.properties.Find(PropertyId::kAuthenticationMethod).has_value()) {
      return Violation::kAuthWithoutMethod;
    }
  }
  return packet;
}

// The whole filter already passed ValidateTopicFilter; mqtt::ParseSharedFilter is the one parser
// of the shared form (topic.h).
bool IsSharedSubscription(std::string_view filter) { return IsSharedFilter(filter); }

Violation CheckSharedSubscription(std::string_view filter) {
  return ParseSharedFilter(filter).has_value() ? Violation::kNone
                                               : Violation::kBadSharedSubscription;
}

// The subscription options byte (§3.8.3.1).
Violation CheckSubscriptionOptions(uint8_t options, std::string_view filter) {
  if ((options & 0xC0) != 0) {
    return Violation::kSubscribeOptionsReserved;  // 5.0 MQTT-3.8.3-5
  }
  if ((options & 0x03) == 3) {
    return Violation::kSubscribeQos3;
  }
  if (((options >> 4) & 0x03) == 3) {
    return Violation::kRetainHandling3;
  }
  if ((options & 0x04) != 0 && IsSharedSubscription(filter)) {
    return Violation::kNoLocalOnSharedSubscription;  // 5.0 MQTT-3.8.3-4
  }
  return Violation::kNone;
}

Violation ValidateTopicEntries5(std::span<const uint8_t> entries, bool has_options) {
  if (entries.empty()) {
    return Violation::kNoTopicFilters;  // 5.0 MQTT-3.8.3-2, MQTT-3.10.3-2
  }
  Reader reader(entries);
  // A valid entry is at least 3 bytes: bounded by size / 3.
  while (!reader.empty()) {
    std::string_view filter;
    if (!reader.ReadLengthPrefixed(filter)) {
      return Violation::kTruncated;
    }
    if (const Violation violation = ValidateTopicFilter(filter); violation != Violation::kNone) {
      return violation;
    }
    if (IsSharedSubscription(filter)) {
      if (const Violation violation = CheckSharedSubscription(filter);
          violation != Violation::kNone) {
        return violation;
      }
    }
    uint8_t options = 0;
    if (has_options && !reader.ReadByte(options)) {
      return Violation::kTruncated;
    }
    if (const Violation violation = CheckSubscriptionOptions(options, filter);
        violation != Violation::kNone) {
      return violation;
    }
  }
  return Violation::kNone;
}

// SUBSCRIBE and UNSUBSCRIBE at 5.0: packet id, properties, one or more entries.
template <typename Request>
Result<Packet> DecodeTopicRequest5(std::span<const uint8_t> body, PacketType type, bool has_qos) {
  Reader reader(body);
  Request request;
  if (const Violation violation = ReadPacketId5(reader, request.packet_id);
      violation != Violation::kNone) {
    return violation;
  }
  if (const Violation violation = ReadProperties(reader, PacketBit(type), request.properties);
      violation != Violation::kNone) {
    return violation;
  }
  const std::span<const uint8_t> entries = reader.ReadRest();
  if (const Violation violation = ValidateTopicEntries5(entries, has_qos);
      violation != Violation::kNone) {
    return violation;
  }
  request.topics = TopicList(entries, has_qos);
  return request;
}

// SUBACK and UNSUBACK at 5.0: packet id, properties, one reason code per filter.
template <typename Ack>
Result<Packet> DecodeAckList5(std::span<const uint8_t> body, PacketType type) {
  Reader reader(body);
  Ack ack;
  if (const Violation violation = ReadPacketId5(reader, ack.packet_id);
      violation != Violation::kNone) {
    return violation;
  }
  if (const Violation violation = ReadProperties(reader, PacketBit(type), ack.properties);
      violation != Violation::kNone) {
    return violation;
  }
  const std::span<const uint8_t> codes = reader.ReadRest();
  if (codes.empty()) {
    return Violation::kTruncated;  // §3.9.3, §3.11.3: one reason code per filter
  }
  for (const uint8_t code : codes) {
    if (!IsReasonCodeAllowed(code, type)) {
      return Violation::kBadReasonCode;  // 5.0 MQTT-3.9.3-2, MQTT-3.11.3-2
    }
  }
  if constexpr (std::is_same_v<Ack, Suback>) {
    ack.return_codes = codes;
  } else {
    ack.reason_codes = codes;
  }
  return ack;
}

// Out of line, as is DecodeConnectRest5: the 3.1.1 path keeps its code layout and inlining.
[[gnu::noinline]] Result<Packet> Decode5(const FixedHeader& header, std::span<const uint8_t> body) {
  switch (header.type) {
    case PacketType::kConnect:
      break;  // Decode handles CONNECT for every level
    case PacketType::kConnack:
      return DecodeConnack5(body);
    case PacketType::kPublish:
      return DecodePublish5(header, body);
    case PacketType::kPuback:
      return DecodeAck5<Puback>(body, header.type);
    case PacketType::kPubrec:
      return DecodeAck5<Pubrec>(body, header.type);
    case PacketType::kPubrel:
      return DecodeAck5<Pubrel>(body, header.type);
    case PacketType::kPubcomp:
      return DecodeAck5<Pubcomp>(body, header.type);
    case PacketType::kSubscribe:
      return DecodeTopicRequest5<Subscribe>(body, header.type, /*has_qos=*/true);
    case PacketType::kSuback:
      return DecodeAckList5<Suback>(body, header.type);
    case PacketType::kUnsubscribe:
      return DecodeTopicRequest5<Unsubscribe>(body, header.type, /*has_qos=*/false);
    case PacketType::kUnsuback:
      return DecodeAckList5<Unsuback>(body, header.type);
    case PacketType::kPingreq:
      return DecodeEmpty<Pingreq>(body);
    case PacketType::kPingresp:
      return DecodeEmpty<Pingresp>(body);
    case PacketType::kDisconnect:
      return DecodeReasonOnly5<Disconnect>(body, header.type);
    case PacketType::kAuth:
      return DecodeReasonOnly5<Auth>(body, header.type);
  }
  RINGMQ_ASSERT(false && "Decode5 called for CONNECT");
  return Violation::kReservedPacketType;
}

}  // namespace

Result<Connect> DecodeConnect(const FixedHeader& header, std::span<const uint8_t> body,
                              bool accept_mqtt5) {
  RINGMQ_ASSERT(header.type == PacketType::kConnect);
  RINGMQ_ASSERT(body.size() == header.remaining_length);
  if (header.flags != 0) {
    return Violation::kBadFixedHeaderFlags;  // MQTT-2.2.2-1
  }
  Reader reader(body);
  Connect connect;
  if (const Violation violation = DecodeProtocol(reader, accept_mqtt5, connect);
      violation != Violation::kNone) {
    return violation;
  }
  if (!connect.level_supported) {
    return connect;  // MQTT-3.1.2-2: the caller answers CONNACK 0x01; the rest is not parsed
  }
  if (connect.protocol_level == static_cast<uint8_t>(ProtocolLevel::kMqtt5)) {
    // The CONNECT was framed before its level was known, at 3.1.1, which allows a longer
    // remaining-length encoding than needed; 5.0 does not (MQTT-1.5.5-1).
    const uint32_t length = header.remaining_length;
    const size_t minimal = length < 128 ? 1 : length < 16'384 ? 2 : length < 2'097'152 ? 3 : 4;
    if (header.header_length != 0 && header.header_length != 1 + minimal) {
      return Violation::kNonMinimalVariableByteInteger;
    }
    if (const Violation violation = DecodeConnectRest5(reader, connect);
        violation != Violation::kNone) {
      return violation;
    }
    return connect;
  }
  uint8_t flags = 0;
  if (!reader.ReadByte(flags) || !reader.ReadU16(connect.keepalive_s)) {
    return Violation::kTruncated;
  }
  if (const Violation violation = CheckConnectFlags(flags); violation != Violation::kNone) {
    return violation;
  }
  connect.clean_session = (flags & kFlagCleanSession) != 0;
  if (const Violation violation = DecodeConnectPayload(reader, flags, connect);
      violation != Violation::kNone) {
    return violation;
  }
  return connect;
}

Result<Packet> Decode(const FixedHeader& header, std::span<const uint8_t> body,
                      ProtocolLevel level) {
  RINGMQ_ASSERT(body.size() == header.remaining_length);
  const auto type = static_cast<uint8_t>(header.type);
  if (const Violation violation = CheckTypeAndFlags(type, header.flags, level);
      violation != Violation::kNone) {
    return violation;
  }
  if (level == ProtocolLevel::kMqtt5 && header.type != PacketType::kConnect) {
    return Decode5(header, body);
  }
  switch (header.type) {
    case PacketType::kConnect: {
      Result<Connect> connect =
          DecodeConnect(header, body, /*accept_mqtt5=*/level == ProtocolLevel::kMqtt5);
      if (!connect.ok()) {
        return connect.violation();
      }
      return connect.value();
    }
    case PacketType::kConnack:
      return DecodeConnack(body, level);
    case PacketType::kPublish:
      return DecodePublish(header, body);
    case PacketType::kPuback:
      return DecodeAck<Puback>(body);
    case PacketType::kPubrec:
      return DecodeAck<Pubrec>(body);
    case PacketType::kPubrel:
      return DecodeAck<Pubrel>(body);
    case PacketType::kPubcomp:
      return DecodeAck<Pubcomp>(body);
    case PacketType::kSubscribe:
      return DecodeTopicRequest<Subscribe>(body, /*has_qos=*/true);
    case PacketType::kSuback:
      return DecodeSuback(body);
    case PacketType::kUnsubscribe:
      return DecodeTopicRequest<Unsubscribe>(body, /*has_qos=*/false);
    case PacketType::kUnsuback:
      return DecodeAck<Unsuback>(body);
    case PacketType::kPingreq:
      return DecodeEmpty<Pingreq>(body);
    case PacketType::kPingresp:
      return DecodeEmpty<Pingresp>(body);
    case PacketType::kDisconnect:
      return DecodeEmpty<Disconnect>(body);
    case PacketType::kAuth:
      break;  // reserved before 5.0: CheckTypeAndFlags refused it
  }
  return Violation::kReservedPacketType;
}

}  // namespace ringmq::mqtt
