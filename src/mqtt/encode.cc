// Encoding half of mqtt/codec.h: EncodedSize, Encode, EncodePublishHeader, EncodeTopicList.
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

// Size of everything after the fixed header, per packet type.
struct BodySize {
  size_t operator()(const Connect& connect) const {
    size_t size = LengthPrefixedSize(connect.protocol_name) + 1 + 1 + 2 +
                  LengthPrefixedSize(connect.client_id);
    if (connect.will.has_value()) {
      size += LengthPrefixedSize(connect.will->topic) + LengthPrefixedSize(connect.will->payload);
    }
    size += connect.user_name.has_value() ? LengthPrefixedSize(*connect.user_name) : 0;
    size += connect.password.has_value() ? LengthPrefixedSize(*connect.password) : 0;
    return size;
  }
  size_t operator()(const Connack&) const { return 2; }
  size_t operator()(const Publish& publish) const {
    return LengthPrefixedSize(publish.topic) + (publish.qos != QoS::k0 ? 2 : 0) +
           publish.payload.size();
  }
  size_t operator()(const Puback&) const { return 2; }
  size_t operator()(const Pubrec&) const { return 2; }
  size_t operator()(const Pubrel&) const { return 2; }
  size_t operator()(const Pubcomp&) const { return 2; }
  size_t operator()(const Subscribe& subscribe) const { return 2 + subscribe.topics.raw().size(); }
  size_t operator()(const Suback& suback) const { return 2 + suback.return_codes.size(); }
  size_t operator()(const Unsubscribe& unsubscribe) const {
    return 2 + unsubscribe.topics.raw().size();
  }
  size_t operator()(const Unsuback&) const { return 2; }
  size_t operator()(const Pingreq&) const { return 0; }
  size_t operator()(const Pingresp&) const { return 0; }
  size_t operator()(const Disconnect&) const { return 0; }
};

// Writes everything after the fixed header, per packet type.
struct BodyWriter {
  Writer& writer;

  void operator()(const Connect& connect) const {
    writer.LengthPrefixed(connect.protocol_name);
    writer.Byte(connect.protocol_level);
    writer.Byte(ConnectFlags(connect));
    writer.U16(connect.keepalive_s);
    writer.LengthPrefixed(connect.client_id);
    if (connect.will.has_value()) {
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
    writer.Byte(static_cast<uint8_t>(connack.return_code));
  }
  void operator()(const Publish& publish) const {
    writer.LengthPrefixed(publish.topic);
    if (publish.qos != QoS::k0) {
      writer.U16(publish.packet_id);
    }
    writer.Bytes(publish.payload);
  }
  void operator()(const Puback& ack) const { writer.U16(ack.packet_id); }
  void operator()(const Pubrec& ack) const { writer.U16(ack.packet_id); }
  void operator()(const Pubrel& ack) const { writer.U16(ack.packet_id); }
  void operator()(const Pubcomp& ack) const { writer.U16(ack.packet_id); }
  void operator()(const Subscribe& subscribe) const {
    writer.U16(subscribe.packet_id);
    writer.Bytes(subscribe.topics.raw());
  }
  void operator()(const Suback& suback) const {
    writer.U16(suback.packet_id);
    writer.Bytes(suback.return_codes);
  }
  void operator()(const Unsubscribe& unsubscribe) const {
    writer.U16(unsubscribe.packet_id);
    writer.Bytes(unsubscribe.topics.raw());
  }
  void operator()(const Unsuback& ack) const { writer.U16(ack.packet_id); }
  void operator()(const Pingreq&) const {}
  void operator()(const Pingresp&) const {}
  void operator()(const Disconnect&) const {}
};

}  // namespace

size_t EncodedSize(const Packet& packet) {
  const size_t body_size = std::visit(BodySize{}, packet);
  return 1 + RemainingLengthSize(body_size) + body_size;
}

size_t Encode(const Packet& packet, std::span<uint8_t> out) {
  const size_t body_size = std::visit(BodySize{}, packet);
  const size_t total_size = 1 + RemainingLengthSize(body_size) + body_size;
  RINGMQ_ASSERT(out.size() >= total_size);
  Writer writer(out);
  writer.Byte(FirstByte(packet));
  writer.RemainingLength(body_size);
  std::visit(BodyWriter{writer}, packet);
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

size_t EncodePublishParts(const PublishParts& parts, std::span<uint8_t> out) {
  const size_t body_size = PublishPartsBodySize(parts);
  const size_t total_size = 1 + RemainingLengthSize(body_size) + body_size;
  RINGMQ_ASSERT(out.size() >= total_size);
  Writer writer(out);
  writer.Byte(static_cast<uint8_t>((static_cast<uint8_t>(PacketType::kPublish) << 4) |
                                   (parts.dup ? 0x08 : 0) | (QosBits(parts.qos) << 1) |
                                   (parts.retain ? 0x01 : 0)));
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
      writer.Byte(QosBits(request.qos));
    }
  }
  RINGMQ_ASSERT(writer.position() == size);
  return size;
}

}  // namespace ringmq::mqtt
