// ringmq-bench's wire code (bench/loadgen/wire.h) against the broker's MQTT codec (src/mqtt/),
// two implementations written apart: what the generator sends at 5.0 must decode with the
// fields it meant, and what the broker's encoder writes at 5.0 (CONNACK with its limits, SUBACK
// and PUBACK reason codes, a forwarded PUBLISH with its properties, DISCONNECT) must parse in the
// generator. The generator itself never links the codec: it must be able to send what the codec
// refuses, and it should not share the code it measures.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "wire.h"

namespace ringmq::bench::wire {
namespace {

using mqtt::ProtocolLevel;

std::span<const uint8_t> View(const Buffer& b) { return {b.data(), b.size()}; }

// Frames and decodes one whole packet with the broker's codec at `level`.
mqtt::Result<mqtt::Packet> BrokerDecode(std::span<const uint8_t> bytes, ProtocolLevel level) {
  const mqtt::Frame frame = mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength + 5, level);
  EXPECT_EQ(frame.status, mqtt::FrameStatus::kComplete);
  EXPECT_EQ(frame.header.total_length(), bytes.size());
  return mqtt::Decode(frame.header, bytes.subspan(frame.header.header_length), level);
}

// Encodes `packet` with the broker's codec at 5.0 and splits it with the generator's framing.
struct Encoded {
  std::vector<uint8_t> bytes;
  Frame frame;
};
Encoded BrokerEncode(const mqtt::Packet& packet) {
  Encoded e;
  e.bytes.resize(mqtt::EncodedSize(packet, ProtocolLevel::kMqtt5));
  EXPECT_EQ(mqtt::Encode(packet, e.bytes, ProtocolLevel::kMqtt5), e.bytes.size());
  EXPECT_EQ(SplitFrame(e.bytes.data(), e.bytes.size(), 1 << 20, &e.frame),
            SplitStatus::kComplete);
  return e;
}

// Appends one property written by the broker's encoder.
void AddInteger(mqtt::PropertyId id, uint32_t value, std::vector<uint8_t>& block) {
  const size_t at = block.size();
  block.resize(at + mqtt::IntegerPropertySize(id, value));
  mqtt::EncodeIntegerProperty(id, value, std::span<uint8_t>(block).subspan(at));
}
void AddString(mqtt::PropertyId id, std::string_view value, std::vector<uint8_t>& block) {
  const size_t at = block.size();
  block.resize(at + mqtt::StringPropertySize(id, value));
  mqtt::EncodeStringProperty(id, value, std::span<uint8_t>(block).subspan(at));
}

TEST(WireAgainstCodec, Mqtt5ConnectDecodes) {
  for (uint16_t receive_maximum : {0, 1, 512}) {
    Buffer b;
    ConnectFields f;
    f.client_id = "rb1-p0-0";
    f.username = "user";
    f.password = "secret";
    f.protocol_level = kMqtt5;
    f.receive_maximum = receive_maximum;
    EncodeConnect(f, b);
    const mqtt::Frame frame = mqtt::PeekFrame(View(b), 1 << 20);
    ASSERT_EQ(frame.status, mqtt::FrameStatus::kComplete);
    const auto decoded = mqtt::DecodeConnect(
        frame.header, View(b).subspan(frame.header.header_length), /*accept_mqtt5=*/true);
    ASSERT_TRUE(decoded.ok()) << mqtt::NameOf(decoded.violation());
    const mqtt::Connect& c = decoded.value();
    EXPECT_EQ(c.protocol_level, 5);
    EXPECT_TRUE(c.level_supported);
    EXPECT_TRUE(c.clean_session);
    EXPECT_EQ(c.client_id, "rb1-p0-0");
    EXPECT_EQ(c.user_name, "user");
    EXPECT_EQ(c.password, "secret");
    const mqtt::PropertyValues v = c.properties.Values();
    if (receive_maximum == 0) {
      EXPECT_TRUE(c.properties.empty());
    } else {
      EXPECT_EQ(v.receive_maximum, receive_maximum);
    }
  }
}

TEST(WireAgainstCodec, PersistentMqtt5ConnectDecodes) {
  Buffer b;
  ConnectFields f;
  f.client_id = "rb-s0";
  f.protocol_level = kMqtt5;
  f.clean_session = false;
  f.session_expiry_s = 3600;
  f.receive_maximum = 512;
  EncodeConnect(f, b);
  const mqtt::Frame frame = mqtt::PeekFrame(View(b), 1 << 20);
  ASSERT_EQ(frame.status, mqtt::FrameStatus::kComplete);
  const auto decoded = mqtt::DecodeConnect(
      frame.header, View(b).subspan(frame.header.header_length), /*accept_mqtt5=*/true);
  ASSERT_TRUE(decoded.ok()) << mqtt::NameOf(decoded.violation());
  const mqtt::Connect& c = decoded.value();
  EXPECT_FALSE(c.clean_session);
  EXPECT_EQ(c.client_id, "rb-s0");
  const mqtt::PropertyValues v = c.properties.Values();
  EXPECT_EQ(v.session_expiry_interval_s, 3600u);
  EXPECT_EQ(v.receive_maximum, 512);
}

TEST(WireAgainstCodec, Mqtt5SubscribeAndUnsubscribeDecode) {
  Buffer b;
  EncodeSubscribe(3, "bench/pair/7", 1, kMqtt5, b);
  auto decoded = BrokerDecode(View(b), ProtocolLevel::kMqtt5);
  ASSERT_TRUE(decoded.ok()) << mqtt::NameOf(decoded.violation());
  const auto& sub = std::get<mqtt::Subscribe>(decoded.value());
  EXPECT_EQ(sub.packet_id, 3);
  EXPECT_TRUE(sub.properties.empty());
  ASSERT_EQ(sub.topics.size(), 1u);
  const mqtt::TopicRequest request = *sub.topics.begin();
  EXPECT_EQ(request.filter, "bench/pair/7");
  EXPECT_EQ(request.qos, mqtt::QoS::k1);
  EXPECT_FALSE(request.no_local);
  EXPECT_FALSE(request.retain_as_published);
  EXPECT_EQ(request.retain_handling, 0);

  b.Clear();
  EncodeUnsubscribe(4, "bench/r/#", kMqtt5, b);
  decoded = BrokerDecode(View(b), ProtocolLevel::kMqtt5);
  ASSERT_TRUE(decoded.ok()) << mqtt::NameOf(decoded.violation());
  EXPECT_EQ((*std::get<mqtt::Unsubscribe>(decoded.value()).topics.begin()).filter, "bench/r/#");
}

TEST(WireAgainstCodec, Mqtt5PublishWithAliasAndUserPropertiesDecodes) {
  std::string properties;
  AppendTopicAlias(1, properties);
  AppendBenchUserProperties(3, properties);
  for (bool alias_only : {false, true}) {
    for (uint8_t qos = 0; qos <= 2; ++qos) {
      Buffer b;
      WritePayload(EncodePublish(alias_only ? "" : "bench/fanin", qos, false, 9, kMqtt5,
                                 properties, 64, b),
                   64, 5, 123, 456);
      const auto decoded = BrokerDecode(View(b), ProtocolLevel::kMqtt5);
      ASSERT_TRUE(decoded.ok()) << mqtt::NameOf(decoded.violation());
      const auto& p = std::get<mqtt::Publish>(decoded.value());
      EXPECT_EQ(p.topic, alias_only ? "" : "bench/fanin");
      EXPECT_EQ(static_cast<int>(p.qos), qos);
      EXPECT_EQ(p.packet_id, qos > 0 ? 9 : 0);
      const mqtt::PropertyValues v = p.properties.Values();
      EXPECT_EQ(v.topic_alias, 1);
      EXPECT_EQ(v.user_property_count, 3u);
      int i = 0;
      for (const mqtt::Property& property : p.properties) {
        if (property.id != mqtt::PropertyId::kUserProperty) continue;
        char name[16];
        char value[24];
        std::snprintf(name, sizeof name, "name%04d", i);
        std::snprintf(value, sizeof value, "value%011d", i);
        EXPECT_EQ(property.text, name);
        EXPECT_EQ(property.pair_value, value);
        ++i;
      }
      PayloadHeader h;
      ASSERT_TRUE(ReadPayload(reinterpret_cast<const uint8_t*>(p.payload.data()),
                              p.payload.size(), &h));
      EXPECT_EQ(h.publisher, 5u);
      EXPECT_EQ(h.sequence, 123u);
    }
  }
}

TEST(WireAgainstCodec, BrokerConnackParses) {
  std::vector<uint8_t> block;
  AddInteger(mqtt::PropertyId::kReceiveMaximum, 32, block);
  AddInteger(mqtt::PropertyId::kTopicAliasMaximum, 16, block);
  AddInteger(mqtt::PropertyId::kMaximumQos, 1, block);
  AddInteger(mqtt::PropertyId::kMaximumPacketSize, 1 << 20, block);
  AddInteger(mqtt::PropertyId::kServerKeepAlive, 30, block);
  AddInteger(mqtt::PropertyId::kSharedSubscriptionAvailable, 1, block);
  AddString(mqtt::PropertyId::kAssignedClientIdentifier, "auto-1", block);
  ASSERT_EQ(mqtt::ValidateProperties(block, mqtt::PacketBit(mqtt::PacketType::kConnack)),
            mqtt::Violation::kNone);
  mqtt::Connack connack;
  connack.session_present = true;
  connack.reason_code = mqtt::ReasonCode::kSuccess;
  connack.properties = mqtt::Properties(block);
  const Encoded e = BrokerEncode(connack);
  Connack ack;
  ASSERT_TRUE(ParseConnack(e.frame, kMqtt5, &ack));
  EXPECT_TRUE(ack.mqtt5);
  EXPECT_TRUE(ack.session_present);
  EXPECT_EQ(ack.code, 0);
  EXPECT_EQ(ack.receive_maximum, 32);
  EXPECT_EQ(ack.topic_alias_maximum, 16);
  EXPECT_EQ(ack.maximum_qos, 1);
  EXPECT_EQ(ack.maximum_packet_size, 1u << 20);

  mqtt::Connack refused;
  refused.reason_code = mqtt::ReasonCode::kNotAuthorized;
  const Encoded r = BrokerEncode(refused);
  ASSERT_TRUE(ParseConnack(r.frame, kMqtt5, &ack));
  EXPECT_TRUE(ack.mqtt5);
  EXPECT_EQ(ack.code, 0x87);
}

TEST(WireAgainstCodec, BrokerSubackAndAcksParse) {
  std::vector<uint8_t> reason;
  AddString(mqtt::PropertyId::kReasonString, "why", reason);
  const uint8_t codes[] = {0x01, 0x87};
  mqtt::Suback suback;
  suback.packet_id = 11;
  suback.return_codes = codes;
  suback.properties = mqtt::Properties(reason);
  const Encoded encoded = BrokerEncode(suback);  // the parsed codes view its bytes
  Suback s;
  ASSERT_TRUE(ParseSuback(encoded.frame, kMqtt5, &s));
  EXPECT_EQ(s.packet_id, 11);
  ASSERT_EQ(s.count, 2u);
  EXPECT_EQ(s.codes[0], 0x01);
  EXPECT_EQ(s.codes[1], 0x87);

  // PUBACK: Success (shortest form), 0x10 alone, 0x97 with a Reason String.
  for (const auto& [code, with_reason] :
       {std::pair{mqtt::ReasonCode::kSuccess, false},
        std::pair{mqtt::ReasonCode::kNoMatchingSubscribers, false},
        std::pair{mqtt::ReasonCode::kQuotaExceeded, true}}) {
    mqtt::Puback puback;
    puback.packet_id = 12;
    puback.reason_code = code;
    if (with_reason) puback.properties = mqtt::Properties(reason);
    Ack ack;
    ASSERT_TRUE(ParseAck(BrokerEncode(puback).frame, kMqtt5, &ack));
    EXPECT_EQ(ack.packet_id, 12);
    EXPECT_EQ(ack.reason, static_cast<uint8_t>(code));
  }
  mqtt::Pubrel pubrel;
  pubrel.packet_id = 13;
  Ack ack;
  ASSERT_TRUE(ParseAck(BrokerEncode(pubrel).frame, kMqtt5, &ack));
  EXPECT_EQ(ack.packet_id, 13);

  mqtt::Disconnect disconnect;
  disconnect.reason_code = mqtt::ReasonCode::kServerShuttingDown;
  disconnect.properties = mqtt::Properties(reason);
  uint8_t code = 0;
  ASSERT_TRUE(ParseDisconnect(BrokerEncode(disconnect).frame, &code));
  EXPECT_EQ(code, 0x8B);
}

// A delivery as the broker builds it (EncodePublishParts5): the publisher's User Properties
// forwarded, its Topic Alias dropped, a Subscription Identifier added. The generator's
// subscriber accepts it; with the Topic Alias left in, it would not.
TEST(WireAgainstCodec, BrokerDeliveryParsesAndVerifies) {
  std::string published;
  AppendTopicAlias(1, published);
  AppendBenchUserProperties(2, published);
  const std::span<const uint8_t> forwarded(reinterpret_cast<const uint8_t*>(published.data()),
                                           published.size());
  const uint8_t topic[] = {0, 3, 'a', '/', 'b'};
  std::vector<uint8_t> payload(64);
  WritePayload(payload.data(), payload.size(), 1, 2, 3);
  mqtt::PublishParts parts;
  parts.encoded_topic = topic;
  parts.payload = payload;
  parts.qos = mqtt::QoS::k1;
  parts.packet_id = 40;
  const uint32_t subscription_ids[] = {7};
  mqtt::PublishPropertyEdits edits;
  edits.forwarded = forwarded;
  edits.subscription_identifiers = subscription_ids;
  std::vector<uint8_t> bytes(mqtt::EncodedPublishParts5Size(parts, edits));
  ASSERT_EQ(mqtt::EncodePublishParts5(parts, edits, bytes), bytes.size());
  Frame f;
  ASSERT_EQ(SplitFrame(bytes.data(), bytes.size(), 1 << 20, &f), SplitStatus::kComplete);
  PublishView p;
  ASSERT_TRUE(ParsePublish(f, kMqtt5, &p));
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.packet_id, 40);
  EXPECT_EQ(p.payload_size, 64u);
  const std::vector<std::string> expected = {BenchUserPropertyValue(0), BenchUserPropertyValue(1)};
  EXPECT_EQ(CheckReceivedProperties(p.properties, p.properties_size, expected),
            PropertyCheck::kOk);
  // The same delivery with the publisher's alias still in it is caught.
  std::string with_alias(reinterpret_cast<const char*>(p.properties), p.properties_size);
  AppendTopicAlias(3, with_alias);
  EXPECT_EQ(CheckReceivedProperties(reinterpret_cast<const uint8_t*>(with_alias.data()),
                                    with_alias.size(), expected),
            PropertyCheck::kTopicAlias);
}

}  // namespace
}  // namespace ringmq::bench::wire
