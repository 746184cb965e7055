// libFuzzer target for the MQTT codec (src/mqtt/codec.h).
//
// The input is the byte stream of one connection. It is framed and decoded packet by packet, as
// a connection does, once per protocol level (3.1, 3.1.1 and 5.0), and every step is checked
// against the properties that must hold for any bytes:
//  - PeekFrame and Decode never crash or assert, whatever the bytes;
//  - framing is split-proof: every strict prefix of a packet gives kNeedMore, or (for a packet
//    refused early) the very violation the whole packet gets;
//  - max_packet_size refuses exactly the packets longer than the limit, from the header alone;
//  - decode(encode(p)) == p for every decoded packet, and encode(p) reproduces the input bytes
//    whenever the input used the shortest remaining-length encoding (the codec is canonical;
//    at 5.0 only up to the optional tails of the acks, which have a long and a short form);
//  - a 5.0 packet's property blocks validate again for their packet, iterate and decode, and
//    EncodePublishParts5 without edits writes what Encode writes;
//  - EncodePublishHeader writes exactly the bytes before the payload;
//  - what Decode accepts satisfies the validation it promises (topics, filters, UTF-8, ids).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "mqtt/topic.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {
namespace {

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "decoder invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

constexpr uint32_t kNoLimit = UINT32_MAX;

size_t MinimalHeaderLength(uint32_t remaining_length) {
  return remaining_length < 128       ? 2
         : remaining_length < 16384   ? 3
         : remaining_length < 2097152 ? 4
                                      : 5;
}

// Every strict prefix must be undecided, or refused with the answer the whole input gets.
void CheckPrefixes(std::span<const uint8_t> bytes, const Frame& whole, ProtocolLevel level) {
  const size_t decided_at = whole.status == FrameStatus::kComplete
                                ? whole.header.total_length()
                                : bytes.size() + 1;  // kNeedMore/kInvalid: check what we have
  const size_t header_bytes = std::min<size_t>(bytes.size(), kMaxFixedHeaderLength + 1);
  for (size_t length = 0; length < header_bytes && length < decided_at; ++length) {
    const Frame prefix = PeekFrame(bytes.first(length), kNoLimit, level);
    if (prefix.status == FrameStatus::kInvalid) {
      FUZZ_CHECK(whole.status == FrameStatus::kInvalid);
      FUZZ_CHECK(prefix.violation == whole.violation);
    } else {
      FUZZ_CHECK(prefix.status == FrameStatus::kNeedMore);
    }
  }
  if (whole.status == FrameStatus::kComplete && decided_at > 0) {
    const Frame almost = PeekFrame(bytes.first(decided_at - 1), kNoLimit, level);
    FUZZ_CHECK(almost.status == FrameStatus::kNeedMore);
    FUZZ_CHECK(almost.header.header_length == 0 || almost.header == whole.header);
  }
}

// A limit below the packet's size refuses it; a limit at its size changes nothing.
void CheckMaxPacketSize(std::span<const uint8_t> bytes, const Frame& whole, ProtocolLevel level) {
  if (whole.status == FrameStatus::kInvalid) {
    const Frame limited = PeekFrame(bytes, 64, level);
    FUZZ_CHECK(limited.status == FrameStatus::kInvalid);
    FUZZ_CHECK(limited.violation == whole.violation ||
               limited.violation == Violation::kPacketTooLarge);
    return;
  }
  if (whole.header.header_length == 0) {
    return;
  }
  const auto total = static_cast<uint32_t>(whole.header.total_length());
  const Frame at_limit = PeekFrame(bytes, total, level);
  FUZZ_CHECK(at_limit.status == whole.status && at_limit.header == whole.header);
  const Frame over_limit = PeekFrame(bytes, total - 1, level);
  FUZZ_CHECK(over_limit.status == FrameStatus::kInvalid);
  FUZZ_CHECK(over_limit.violation == Violation::kPacketTooLarge);
}

bool AllFiltersValid(const TopicList& topics, bool has_qos) {
  size_t count = 0;
  for (const TopicRequest request : topics) {
    if (ValidateTopicFilter(request.filter) != Violation::kNone ||
        (!has_qos && request.qos != QoS::k0) || static_cast<uint8_t>(request.qos) > 2) {
      return false;
    }
    ++count;
  }
  return count >= 1 && count == topics.size() && topics.has_qos() == has_qos;
}

// A block Decode accepted validates again for its packet, iterates and decodes.
void CheckProperties(const Properties& properties, uint16_t where) {
  FUZZ_CHECK(ValidateProperties(properties.raw(), where) == Violation::kNone);
  size_t count = 0;
  for (const Property property : properties) {
    FUZZ_CHECK(FindProperty(static_cast<uint8_t>(property.id)) != nullptr);
    ++count;
  }
  FUZZ_CHECK(count <= properties.raw().size() / 2);
  const PropertyValues values = properties.Values();
  FUZZ_CHECK(values.user_property_count <= count);
}

uint16_t WhereOf(const Packet& packet) { return PacketBit(TypeOf(packet)); }

void CheckAccepted5(const Packet& packet) {
  std::visit(
      [&](const auto& value) {
        if constexpr (requires { value.properties; }) {
          CheckProperties(value.properties, WhereOf(packet));
        }
      },
      packet);
  if (const auto* connect = std::get_if<Connect>(&packet); connect && connect->will) {
    CheckProperties(connect->will->properties, kWillPropertiesBit);
  } else if (const auto* publish = std::get_if<Publish>(&packet); publish) {
    FUZZ_CHECK(!publish->topic.empty() ||
               publish->properties.Find(PropertyId::kTopicAlias).has_value());
  } else if (const auto* subscribe = std::get_if<Subscribe>(&packet)) {
    for (const TopicRequest request : subscribe->topics) {
      FUZZ_CHECK(request.retain_handling <= 2);
      FUZZ_CHECK(!(request.no_local && request.filter.starts_with("$share/")));
    }
  }
}

// What Decode accepted must satisfy the rules it enforces.
void CheckAccepted(const Packet& packet, ProtocolLevel level) {
  if (level == ProtocolLevel::kMqtt5) {
    CheckAccepted5(packet);
  }
  if (const auto* connect = std::get_if<Connect>(&packet); connect && connect->level_supported) {
    FUZZ_CHECK(ValidateUtf8(connect->client_id) == Violation::kNone);
    FUZZ_CHECK(!connect->will || ValidateTopicName(connect->will->topic) == Violation::kNone);
    FUZZ_CHECK(!connect->user_name || ValidateUtf8(*connect->user_name) == Violation::kNone);
    FUZZ_CHECK(!connect->password || connect->user_name || connect->protocol_level == 5);
  } else if (const auto* publish = std::get_if<Publish>(&packet)) {
    FUZZ_CHECK(publish->topic.empty() || ValidateTopicName(publish->topic) == Violation::kNone);
    FUZZ_CHECK(!publish->topic.empty() || level == ProtocolLevel::kMqtt5);
    FUZZ_CHECK((publish->qos == QoS::k0) == (publish->packet_id == 0));
    FUZZ_CHECK(!publish->dup || publish->qos != QoS::k0);
  } else if (const auto* subscribe = std::get_if<Subscribe>(&packet)) {
    FUZZ_CHECK(subscribe->packet_id != 0 && AllFiltersValid(subscribe->topics, true));
  } else if (const auto* unsubscribe = std::get_if<Unsubscribe>(&packet)) {
    FUZZ_CHECK(unsubscribe->packet_id != 0 && AllFiltersValid(unsubscribe->topics, false));
  } else if (const auto* suback = std::get_if<Suback>(&packet)) {
    FUZZ_CHECK(!suback->return_codes.empty());
  }
}

// EncodePublishParts5 with no edits writes what Encode writes, unless the block holds a Topic
// Alias or Subscription Identifier, which the fast path drops.
void CheckDeliveryFastPath(const Publish& publish, std::span<const uint8_t> encoded) {
  if (publish.properties.Find(PropertyId::kTopicAlias).has_value() ||
      publish.properties.Find(PropertyId::kSubscriptionIdentifier).has_value()) {
    return;
  }
  std::vector<uint8_t> encoded_topic(2 + publish.topic.size());
  encoded_topic[0] = static_cast<uint8_t>(publish.topic.size() >> 8);
  encoded_topic[1] = static_cast<uint8_t>(publish.topic.size() & 0xFF);
  std::copy(publish.topic.begin(), publish.topic.end(), encoded_topic.begin() + 2);
  PublishParts parts;
  parts.encoded_topic = encoded_topic;
  parts.payload =
      std::span(reinterpret_cast<const uint8_t*>(publish.payload.data()), publish.payload.size());
  parts.qos = publish.qos;
  parts.retain = publish.retain;
  parts.dup = publish.dup;
  parts.packet_id = publish.packet_id;
  PublishPropertyEdits edits;
  edits.forwarded = publish.properties.raw();
  std::vector<uint8_t> fast(EncodedPublishParts5Size(parts, edits));
  FUZZ_CHECK(EncodePublishParts5(parts, edits, fast) == fast.size());
  FUZZ_CHECK(std::ranges::equal(fast, encoded));
}

void CheckRoundTrip(const Packet& packet, std::span<const uint8_t> original,
                    const FixedHeader& header, ProtocolLevel level) {
  const size_t size = EncodedSize(packet, level);
  std::vector<uint8_t> encoded(size);
  FUZZ_CHECK(Encode(packet, encoded, level) == size);
  const Frame frame = PeekFrame(encoded, kNoLimit, level);
  FUZZ_CHECK(frame.status == FrameStatus::kComplete && frame.header.total_length() == size);
  FUZZ_CHECK(frame.header.header_length == MinimalHeaderLength(frame.header.remaining_length));
  const Result<Packet> again =
      Decode(frame.header, std::span(encoded).subspan(frame.header.header_length), level);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.value() == packet);
  const auto* connect = std::get_if<Connect>(&packet);
  // MQTT 3.1's DUP on PUBREL, SUBSCRIBE and UNSUBSCRIBE is accepted but not kept.
  const bool dropped_dup = level == ProtocolLevel::kMqtt31 && header.type != PacketType::kPublish &&
                           (header.flags & 0x08) != 0;
  const bool canonical = header.header_length == MinimalHeaderLength(header.remaining_length) &&
                         !(connect != nullptr && !connect->level_supported) && !dropped_dup;
  if (canonical && level != ProtocolLevel::kMqtt5) {
    FUZZ_CHECK(std::ranges::equal(encoded, original));
  }
  if (level == ProtocolLevel::kMqtt5) {
    std::vector<uint8_t> again_encoded(size);
    FUZZ_CHECK(Encode(again.value(), again_encoded, level) == size);
    FUZZ_CHECK(std::ranges::equal(encoded, again_encoded));
    if (const auto* publish = std::get_if<Publish>(&packet)) {
      CheckDeliveryFastPath(*publish, encoded);
    }
    return;
  }
  if (const auto* publish = std::get_if<Publish>(&packet)) {
    std::vector<uint8_t> prefix(PublishHeaderMaxSize(publish->topic.size()));
    const size_t written = EncodePublishHeader(*publish, prefix);
    FUZZ_CHECK(written + publish->payload.size() == size);
    FUZZ_CHECK(
        std::ranges::equal(std::span(prefix).first(written), std::span(encoded).first(written)));
  }
}

// Frames and decodes the stream until it ends or a packet is refused (a connection would close).
void RunConnection(std::span<const uint8_t> stream, ProtocolLevel level) {
  // Each iteration consumes at least the 2-byte fixed header: bounded by stream.size() / 2.
  while (true) {
    const Frame frame = PeekFrame(stream, kNoLimit, level);
    CheckPrefixes(stream, frame, level);
    CheckMaxPacketSize(stream, frame, level);
    if (frame.status != FrameStatus::kComplete) {
      FUZZ_CHECK(frame.status == FrameStatus::kNeedMore || frame.violation != Violation::kNone);
      return;
    }
    const FixedHeader& header = frame.header;
    const std::span<const uint8_t> packet_bytes = stream.first(header.total_length());
    const std::span<const uint8_t> body =
        packet_bytes.subspan(header.header_length, header.remaining_length);
    const Result<Packet> packet = Decode(header, body, level);
    if (header.type == PacketType::kConnect) {
      const Result<Connect> connect =
          DecodeConnect(header, body, /*accept_mqtt5=*/level == ProtocolLevel::kMqtt5);
      FUZZ_CHECK(connect.violation() == packet.violation());
      FUZZ_CHECK(!connect.ok() || Packet(connect.value()) == packet.value());
    }
    if (!packet.ok()) {
      return;
    }
    FUZZ_CHECK(TypeOf(packet.value()) == header.type);
    CheckAccepted(packet.value(), level);
    CheckRoundTrip(packet.value(), packet_bytes, header, level);
    stream = stream.subspan(header.total_length());
  }
}

}  // namespace
}  // namespace ringmq::mqtt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> stream(data, size);
  ringmq::mqtt::RunConnection(stream, ringmq::mqtt::ProtocolLevel::kMqtt311);
  ringmq::mqtt::RunConnection(stream, ringmq::mqtt::ProtocolLevel::kMqtt31);
  ringmq::mqtt::RunConnection(stream, ringmq::mqtt::ProtocolLevel::kMqtt5);
  return 0;
}
