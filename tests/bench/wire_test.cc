// Unit tests of ringmq-bench's own MQTT wire code (bench/loadgen/wire.h): the bytes it sends at
// 3.1.1 and 5.0, and the parsers of what a broker sends back (5.0 CONNACK, SUBACK/UNSUBACK and
// ack reason codes, property blocks, PUBLISH with properties), including every truncation.
#include "wire.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringmq::bench::wire {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Take(Buffer& b) { return Bytes(b.data(), b.data() + b.size()); }

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

Bytes Text(std::string_view s) { return Bytes(s.begin(), s.end()); }

// A frame over `packet` (a whole packet, fixed header included).
Frame FrameOf(const Bytes& packet) {
  Frame f;
  EXPECT_EQ(SplitFrame(packet.data(), packet.size(), 1 << 20, &f), SplitStatus::kComplete);
  EXPECT_EQ(f.total_size, packet.size());
  return f;
}

// A frame of `type` over the first `size` bytes of `body` (for truncations; no fixed header).
Frame BodyFrame(uint8_t type, uint8_t flags, const Bytes& body, size_t size) {
  Frame f;
  f.type = type;
  f.flags = flags;
  f.body = body.data();
  f.body_size = static_cast<uint32_t>(size);
  f.total_size = size + 2;
  return f;
}

// ---------------------------------------------------------------------------------------------
// What the generator sends

TEST(WireConnect, Mqtt311LayoutHasNoProperties) {
  Buffer b;
  ConnectFields f;
  f.client_id = "c";
  EncodeConnect(f, b);
  EXPECT_EQ(Take(b), Cat({{0x10, 13, 0, 4}, Text("MQTT"), {4, 0x02, 0, 0, 0, 1, 'c'}}));
}

TEST(WireConnect, Mqtt5HasAnEmptyPropertyBlockByDefault) {
  Buffer b;
  ConnectFields f;
  f.client_id = "c";
  f.protocol_level = kMqtt5;
  EncodeConnect(f, b);
  // §3.1.2.11: Property Length 0 after the keep alive.
  EXPECT_EQ(Take(b), Cat({{0x10, 14, 0, 4}, Text("MQTT"), {5, 0x02, 0, 0, 0, 0, 1, 'c'}}));
}

TEST(WireConnect, Mqtt5ReceiveMaximumAndCredentials) {
  Buffer b;
  ConnectFields f;
  f.client_id = "c";
  f.protocol_level = kMqtt5;
  f.receive_maximum = 10;
  f.username = "u";
  f.password = "pw";
  f.keepalive_s = 60;
  EncodeConnect(f, b);
  EXPECT_EQ(Take(b), Cat({{0x10, 24, 0, 4},
                          Text("MQTT"),
                          {5, 0xC2, 0, 60, 3, kPropReceiveMaximum, 0, 10, 0, 1, 'c', 0, 1, 'u', 0,
                           2, 'p', 'w'}}));
}

// A persistent 5.0 subscriber: Clean Start 0 and Session Expiry Interval (§3.1.2.11.2, a Four
// Byte Integer) before Receive Maximum.
TEST(WireConnect, Mqtt5SessionExpiryAndCleanStart0) {
  Buffer b;
  ConnectFields f;
  f.client_id = "c";
  f.protocol_level = kMqtt5;
  f.clean_session = false;
  f.session_expiry_s = 0x01020304;
  f.receive_maximum = 10;
  EncodeConnect(f, b);
  EXPECT_EQ(Take(b), Cat({{0x10, 22, 0, 4},
                          Text("MQTT"),
                          {5, 0x00, 0, 0, 8, kPropSessionExpiryInterval, 1, 2, 3, 4,
                           kPropReceiveMaximum, 0, 10, 0, 1, 'c'}}));
}

// 3.1.1 has no properties: Clean Session 0 is the flag alone, the expiry is not sent.
TEST(WireConnect, Mqtt311CleanSession0IgnoresTheExpiry) {
  Buffer b;
  ConnectFields f;
  f.client_id = "c";
  f.clean_session = false;
  f.session_expiry_s = 300;
  EncodeConnect(f, b);
  EXPECT_EQ(Take(b), Cat({{0x10, 13, 0, 4}, Text("MQTT"), {4, 0x00, 0, 0, 0, 1, 'c'}}));
}

TEST(WireConnect, RejectScenarioLevelKeepsThe311Layout) {
  Buffer b;
  ConnectFields f;
  f.client_id = "c";
  f.protocol_level = 9;
  f.receive_maximum = 10;  // ignored: not level 5
  EncodeConnect(f, b);
  EXPECT_EQ(Take(b), Cat({{0x10, 13, 0, 4}, Text("MQTT"), {9, 0x02, 0, 0, 0, 1, 'c'}}));
}

TEST(WireSubscribe, BothLevels) {
  Buffer b;
  EncodeSubscribe(1, "a/b", 1, kMqtt311, b);
  EXPECT_EQ(Take(b), (Bytes{0x82, 8, 0, 1, 0, 3, 'a', '/', 'b', 1}));
  b.Clear();
  // 5.0: empty properties, then the options byte with only the QoS set (§3.8.3.1).
  EncodeSubscribe(1, "a/b", 2, kMqtt5, b);
  EXPECT_EQ(Take(b), (Bytes{0x82, 9, 0, 1, 0, 0, 3, 'a', '/', 'b', 2}));
  b.Clear();
  EncodeUnsubscribe(7, "a/b", kMqtt311, b);
  EXPECT_EQ(Take(b), (Bytes{0xA2, 7, 0, 7, 0, 3, 'a', '/', 'b'}));
  b.Clear();
  EncodeUnsubscribe(7, "a/b", kMqtt5, b);
  EXPECT_EQ(Take(b), (Bytes{0xA2, 8, 0, 7, 0, 0, 3, 'a', '/', 'b'}));
}

TEST(WirePublish, Mqtt5EmptyPropertyBlock) {
  Buffer b;
  uint8_t* payload = EncodePublish("t", 1, false, 9, kMqtt5, {}, 2, b);
  payload[0] = 'x';
  payload[1] = 'y';
  EXPECT_EQ(Take(b), (Bytes{0x32, 8, 0, 1, 't', 0, 9, 0, 'x', 'y'}));
  b.Clear();
  payload = EncodePublish("t", 0, true, 0, kMqtt311, {}, 1, b);
  payload[0] = 'x';
  EXPECT_EQ(Take(b), (Bytes{0x31, 4, 0, 1, 't', 'x'}));
}

TEST(WirePublish, TopicAliasAndUserProperties) {
  std::string properties;
  AppendTopicAlias(1, properties);
  AppendBenchUserProperties(2, properties);
  ASSERT_EQ(properties.size(), 3 + 2 * kUserPropertyWireSize);
  const Bytes expected_properties =
      Cat({{kPropTopicAlias, 0, 1, kPropUserProperty, 0, 8}, Text("name0000"), {0, 16},
           Text("value00000000000"), {kPropUserProperty, 0, 8}, Text("name0001"), {0, 16},
           Text("value00000000001")});
  EXPECT_EQ(Text(properties), expected_properties);

  Buffer b;
  std::memset(EncodePublish("a/b", 0, false, 0, kMqtt5, properties, 1, b), 'p', 1);
  EXPECT_EQ(Take(b), Cat({{0x30, static_cast<uint8_t>(2 + 3 + 1 + 61 + 1), 0, 3, 'a', '/', 'b',
                           61},
                          expected_properties,
                          {'p'}}));
  // After the first PUBLISH: the alias alone, with a zero-length topic (§3.3.2.3.4).
  b.Clear();
  std::memset(EncodePublish({}, 1, false, 5, kMqtt5, properties, 1, b), 'p', 1);
  EXPECT_EQ(Take(b), Cat({{0x32, static_cast<uint8_t>(2 + 2 + 1 + 61 + 1), 0, 0, 0, 5, 61},
                          expected_properties,
                          {'p'}}));
}

TEST(WirePublish, LongPropertyBlockTakesATwoByteLength) {
  std::string properties;
  AppendBenchUserProperties(5, properties);  // 145 bytes: Property Length 0x91 0x01
  Buffer b;
  EncodePublish("t", 0, false, 0, kMqtt5, properties, 24, b);
  const Bytes bytes = Take(b);
  // 0x30, remaining length 174 (0xAE 0x01), topic "t" (0 1 't'), then the Property Length.
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes[6], 0x91);
  EXPECT_EQ(bytes[7], 0x01);
  Frame f = FrameOf(bytes);
  PublishView p;
  ASSERT_TRUE(ParsePublish(f, kMqtt5, &p));
  EXPECT_EQ(p.properties_size, 145u);
  EXPECT_EQ(p.payload_size, 24u);
}

TEST(WireUserProperties, FixedSizeAndDistinct) {
  for (int n : {0, 1, 2, 17, kMaxUserProperties}) {
    std::string block;
    AppendBenchUserProperties(n, block);
    EXPECT_EQ(block.size(), static_cast<size_t>(n) * kUserPropertyWireSize) << n;
  }
  EXPECT_NE(BenchUserPropertyValue(3), BenchUserPropertyValue(4));
  EXPECT_EQ(BenchUserPropertyValue(999).size(), kUserPropertyWireSize - 1);
}

// ---------------------------------------------------------------------------------------------
// Variable Byte Integers and property blocks

TEST(WireVarInt, MinimalFormsAndLimits) {
  struct Case {
    Bytes bytes;
    size_t used;
    uint32_t value;
  };
  const Case cases[] = {
      {{0x00}, 1, 0},
      {{0x7F}, 1, 127},
      {{0x80, 0x01}, 2, 128},
      {{0xFF, 0x7F}, 2, 16'383},
      {{0x80, 0x80, 0x01}, 3, 16'384},
      {{0xFF, 0xFF, 0xFF, 0x7F}, 4, 268'435'455},
      {{0x80, 0x80, 0x80, 0x80, 0x01}, 0, 0},  // a fifth byte (§1.5.5)
      {{0x80}, 0, 0},                          // truncated
      {{}, 0, 0},
      {{0x80, 0x00}, 0, 0},                    // not minimal (5.0:MQTT-1.5.5-1)
      {{0xFF, 0x80, 0x00}, 0, 0},
  };
  for (const Case& c : cases) {
    uint32_t value = 12345;
    EXPECT_EQ(ReadVarInt(c.bytes.data(), c.bytes.size(), &value), c.used);
    if (c.used != 0) {
      EXPECT_EQ(value, c.value);
    }
  }
  // Round trip through the encoder at every length boundary.
  for (uint32_t v : {0u, 127u, 128u, 16'383u, 16'384u, 2'097'151u, 2'097'152u, 268'435'455u}) {
    Buffer b;
    b.PutRemainingLength(v);
    uint32_t back = 0;
    EXPECT_EQ(ReadVarInt(b.data(), b.size(), &back), RemainingLengthSize(v));
    EXPECT_EQ(back, v);
  }
}

TEST(WireProperties, EveryTypeHasItsSize) {
  const Bytes value = {0x00, 0x03, 'a', 'b', 'c', 0x00, 0x01, 'z', 0xEE};
  EXPECT_EQ(PropertyValueSize(0x01, value.data(), value.size()), 1u);   // Byte
  EXPECT_EQ(PropertyValueSize(0x21, value.data(), value.size()), 2u);   // Two Byte Integer
  EXPECT_EQ(PropertyValueSize(0x27, value.data(), value.size()), 4u);   // Four Byte Integer
  EXPECT_EQ(PropertyValueSize(0x1F, value.data(), value.size()), 5u);   // UTF-8 string
  EXPECT_EQ(PropertyValueSize(0x09, value.data(), value.size()), 5u);   // binary data
  EXPECT_EQ(PropertyValueSize(0x26, value.data(), value.size()), 8u);   // string pair
  const Bytes vbi = {0x80, 0x01};
  EXPECT_EQ(PropertyValueSize(0x0B, vbi.data(), vbi.size()), 2u);       // VBI
  // Undefined identifiers (§2.2.2.2) and truncated values.
  for (uint8_t id : {0x00, 0x04, 0x0A, 0x10, 0x14, 0x1B, 0x20, 0x2B, 0x7F, 0xFF}) {
    EXPECT_EQ(PropertyValueSize(id, value.data(), value.size()), 0u) << int{id};
  }
  EXPECT_EQ(PropertyValueSize(0x27, value.data(), 3), 0u);
  EXPECT_EQ(PropertyValueSize(0x1F, value.data(), 4), 0u);
  EXPECT_EQ(PropertyValueSize(0x26, value.data(), 7), 0u);
  EXPECT_EQ(PropertyValueSize(0x01, value.data(), 0), 0u);
}

TEST(WireProperties, WalkInOrderAndStopAtMalformed) {
  const Bytes block = {0x23, 0, 1, 0x0B, 0x05, 0x26, 0, 1, 'k', 0, 1, 'v', 0x01, 1};
  std::vector<uint8_t> ids;
  EXPECT_TRUE(ForEachProperty(block.data(), block.size(),
                              [&](const Property& p) { ids.push_back(p.id); }));
  EXPECT_EQ(ids, (std::vector<uint8_t>{0x23, 0x0B, 0x26, 0x01}));
  for (size_t n = 1; n < block.size(); ++n) {
    // Every cut inside a property is malformed; cuts between properties are shorter blocks.
    const bool boundary = n == 3 || n == 5 || n == 12;
    EXPECT_EQ(ForEachProperty(block.data(), n, [](const Property&) {}), boundary) << n;
  }
}

// ---------------------------------------------------------------------------------------------
// What the broker sends

TEST(WireConnack, Mqtt311Layout) {
  Connack ack;
  ASSERT_TRUE(ParseConnack(FrameOf({0x20, 2, 0x01, 0x00}), kMqtt311, &ack));
  EXPECT_FALSE(ack.mqtt5);
  EXPECT_TRUE(ack.session_present);
  EXPECT_EQ(ack.code, 0);
  EXPECT_FALSE(ParseConnack(FrameOf({0x20, 3, 0, 0, 0}), kMqtt311, &ack));
  EXPECT_FALSE(ParseConnack(FrameOf({0x20, 1, 0}), kMqtt311, &ack));
}

TEST(WireConnack, Mqtt311LayoutToALevel5Connect) {
  // A broker that does not speak 5.0: CONNACK 0x01 in the 3.1.1 layout (MQTT-3.1.2-2).
  Connack ack;
  ASSERT_TRUE(ParseConnack(FrameOf({0x20, 2, 0x00, 0x01}), kMqtt5, &ack));
  EXPECT_FALSE(ack.mqtt5);
  EXPECT_EQ(ack.code, 0x01);
}

TEST(WireConnack, Mqtt5PropertiesAndDefaults) {
  Connack ack;
  ASSERT_TRUE(ParseConnack(FrameOf({0x20, 3, 0, 0, 0}), kMqtt5, &ack));
  EXPECT_TRUE(ack.mqtt5);
  EXPECT_EQ(ack.receive_maximum, 65535);  // §3.2.2.3.3: absent means 65,535
  EXPECT_EQ(ack.topic_alias_maximum, 0);  // absent: no alias may be sent
  EXPECT_EQ(ack.maximum_qos, 2);
  EXPECT_EQ(ack.maximum_packet_size, 0u);

  const Bytes properties = Cat({{kPropReceiveMaximum, 0, 20, kPropTopicAliasMaximum, 0, 10,
                                 kPropMaximumQos, 1, kPropMaximumPacketSize, 0, 0, 0x10, 0,
                                 0x12, 0, 1, 'x', 0x26, 0, 1, 'k', 0, 1, 'v', 0x2A, 1}});
  const Bytes body = Cat({{0x00, 0x00, static_cast<uint8_t>(properties.size())}, properties});
  ASSERT_TRUE(ParseConnack(BodyFrame(kConnack, 0, body, body.size()), kMqtt5, &ack));
  EXPECT_EQ(ack.receive_maximum, 20);
  EXPECT_EQ(ack.topic_alias_maximum, 10);
  EXPECT_EQ(ack.maximum_qos, 1);
  EXPECT_EQ(ack.maximum_packet_size, 4096u);
  // Every truncation fails, except 2 bytes, which is the 3.1.1 layout.
  for (size_t n = 0; n < body.size(); ++n) {
    EXPECT_EQ(ParseConnack(BodyFrame(kConnack, 0, body, n), kMqtt5, &ack), n == 2) << n;
  }
  // Bytes after the property block, and a refusal with a Reason String.
  Bytes longer = body;
  longer.push_back(0);
  EXPECT_FALSE(ParseConnack(BodyFrame(kConnack, 0, longer, longer.size()), kMqtt5, &ack));
  const Bytes refused = {0x00, 0x87, 4, kPropReasonString, 0, 1, 'n'};
  ASSERT_TRUE(ParseConnack(BodyFrame(kConnack, 0, refused, refused.size()), kMqtt5, &ack));
  EXPECT_EQ(ack.code, 0x87);
  const Bytes unknown = {0x00, 0x00, 2, 0x04, 0};  // identifier 4 is not defined
  EXPECT_FALSE(ParseConnack(BodyFrame(kConnack, 0, unknown, unknown.size()), kMqtt5, &ack));
}

TEST(WireSuback, ReasonCodesAfterProperties) {
  // The parsed codes view the packet's bytes, so each packet is kept while they are read.
  Suback ack;
  const Bytes granted = {0x90, 3, 0, 1, 0x01};
  ASSERT_TRUE(ParseSuback(FrameOf(granted), kMqtt311, &ack));
  EXPECT_EQ(ack.packet_id, 1);
  ASSERT_EQ(ack.count, 1u);
  EXPECT_EQ(ack.codes[0], 0x01);
  // 5.0: Reason String, then a grant and a refusal (0x87 Not authorized).
  const Bytes mixed = {0x90, 9, 0, 2, 4, kPropReasonString, 0, 1, 'r', 0x01, 0x87};
  ASSERT_TRUE(ParseSuback(FrameOf(mixed), kMqtt5, &ack));
  EXPECT_EQ(ack.packet_id, 2);
  ASSERT_EQ(ack.count, 2u);
  EXPECT_EQ(ack.codes[0], 0x01);
  EXPECT_EQ(ack.codes[1], 0x87);
  // Without codes, or with a property block longer than the packet.
  EXPECT_FALSE(ParseSuback(FrameOf({0x90, 3, 0, 1, 0}), kMqtt5, &ack));
  EXPECT_FALSE(ParseSuback(FrameOf({0x90, 2, 0, 1}), kMqtt311, &ack));
  EXPECT_FALSE(ParseSuback(FrameOf({0x90, 4, 0, 1, 5, 0}), kMqtt5, &ack));
  // UNSUBACK: no codes at 3.1.1, at least one at 5.0 (§3.11.3).
  EXPECT_TRUE(ParseSuback(FrameOf({0xB0, 2, 0, 1}), kMqtt311, &ack));
  EXPECT_EQ(ack.count, 0u);
  EXPECT_FALSE(ParseSuback(FrameOf({0xB0, 3, 0, 1, 0}), kMqtt5, &ack));
  const Bytes unsuback = {0xB0, 4, 0, 1, 0, 0x11};
  ASSERT_TRUE(ParseSuback(FrameOf(unsuback), kMqtt5, &ack));
  EXPECT_EQ(ack.codes[0], 0x11);
}

TEST(WireAck, ShortAndLongForms) {
  Ack ack;
  ASSERT_TRUE(ParseAck(FrameOf({0x40, 2, 0x12, 0x34}), kMqtt311, &ack));
  EXPECT_EQ(ack.packet_id, 0x1234);
  EXPECT_EQ(ack.reason, 0);
  EXPECT_FALSE(ParseAck(FrameOf({0x40, 3, 0, 1, 0x10}), kMqtt311, &ack));
  // 5.0: no reason code means Success (§3.4.2.1); 0x10 No matching subscribers; 0x97 with a
  // Reason String.
  ASSERT_TRUE(ParseAck(FrameOf({0x40, 2, 0, 1}), kMqtt5, &ack));
  EXPECT_EQ(ack.reason, 0);
  ASSERT_TRUE(ParseAck(FrameOf({0x40, 3, 0, 1, 0x10}), kMqtt5, &ack));
  EXPECT_EQ(ack.reason, 0x10);
  const Bytes body = {0, 1, 0x97, 4, kPropReasonString, 0, 1, 'q'};
  ASSERT_TRUE(ParseAck(BodyFrame(kPuback, 0, body, body.size()), kMqtt5, &ack));
  EXPECT_EQ(ack.reason, 0x97);
  for (size_t n = 0; n < body.size(); ++n) {
    EXPECT_EQ(ParseAck(BodyFrame(kPuback, 0, body, n), kMqtt5, &ack), n == 2 || n == 3) << n;
  }
  Bytes longer = body;
  longer.push_back('!');
  EXPECT_FALSE(ParseAck(BodyFrame(kPuback, 0, longer, longer.size()), kMqtt5, &ack));
}

TEST(WirePublishParse, RoundTripAtBothLevelsAndEveryQos) {
  std::string properties;
  AppendTopicAlias(1, properties);
  AppendBenchUserProperties(2, properties);
  for (uint8_t level : {kMqtt311, kMqtt5}) {
    for (uint8_t qos = 0; qos <= 2; ++qos) {
      for (bool alias_only : {false, true}) {
        if (alias_only && level != kMqtt5) continue;
        const std::string_view props = level == kMqtt5 ? std::string_view(properties) : "";
        Buffer b;
        std::memset(EncodePublish(alias_only ? "" : "x/y", qos, qos == 1, 77, level, props,
                                  30, b), 'z', 30);
        const Bytes bytes = Take(b);
        PublishView p;
        ASSERT_TRUE(ParsePublish(FrameOf(bytes), level, &p));
        EXPECT_EQ(p.qos, qos);
        EXPECT_EQ(p.retain, qos == 1);
        EXPECT_EQ(p.topic, alias_only ? "" : "x/y");
        EXPECT_EQ(p.packet_id, qos > 0 ? 77 : 0);
        EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(p.properties),
                                   p.properties_size),
                  props);
        EXPECT_EQ(p.payload_size, 30u);
        EXPECT_EQ(p.payload[0], 'z');
        // Cutting the body inside the variable header fails; the payload may be any length.
        const Frame whole = FrameOf(bytes);
        const Bytes body(whole.body, whole.body + whole.body_size);
        const size_t header = body.size() - 30;
        for (size_t n = 0; n < header; ++n) {
          EXPECT_FALSE(ParsePublish(BodyFrame(kPublish, whole.flags, body, n), level, &p))
              << "level " << int{level} << " qos " << int{qos} << " cut " << n;
        }
      }
    }
  }
  PublishView p;
  EXPECT_FALSE(ParsePublish(FrameOf({0x36, 3, 0, 1, 't'}), kMqtt311, &p));  // QoS 3
}

TEST(WireDisconnect, ReasonCodeForms) {
  uint8_t reason = 0xFF;
  ASSERT_TRUE(ParseDisconnect(FrameOf({0xE0, 0}), &reason));
  EXPECT_EQ(reason, 0x00);
  ASSERT_TRUE(ParseDisconnect(FrameOf({0xE0, 1, 0x8B}), &reason));
  EXPECT_EQ(reason, 0x8B);  // Server shutting down
  ASSERT_TRUE(ParseDisconnect(FrameOf({0xE0, 2, 0x93, 0}), &reason));
  EXPECT_EQ(reason, 0x93);
  ASSERT_TRUE(ParseDisconnect(FrameOf({0xE0, 6, 0x8E, 4, kPropReasonString, 0, 1, 't'}), &reason));
  EXPECT_EQ(reason, 0x8E);
  EXPECT_FALSE(ParseDisconnect(FrameOf({0xE0, 3, 0x8E, 4, kPropReasonString}), &reason));
}

TEST(WireCheckProperties, ForwardedUnchangedAndInOrder) {
  std::vector<std::string> expected;
  for (int i = 0; i < 3; ++i) expected.push_back(BenchUserPropertyValue(i));
  auto check = [&](const std::string& block, int count) {
    return CheckReceivedProperties(reinterpret_cast<const uint8_t*>(block.data()), block.size(),
                                   std::span<const std::string>(expected.data(),
                                                                static_cast<size_t>(count)));
  };
  std::string sent;
  AppendBenchUserProperties(3, sent);
  EXPECT_EQ(check(sent, 3), PropertyCheck::kOk);
  EXPECT_EQ(check("", 0), PropertyCheck::kOk);
  // A broker may add a Subscription Identifier or Message Expiry Interval anywhere.
  EXPECT_EQ(check(std::string("\x0B\x07", 2) + sent + std::string("\x02\0\0\0\x09", 5), 3),
            PropertyCheck::kOk);
  // Missing, extra, reordered or changed User Properties.
  std::string two;
  AppendBenchUserProperties(2, two);
  EXPECT_EQ(check(two, 3), PropertyCheck::kUserPropertiesDiffer);
  EXPECT_EQ(check(sent, 2), PropertyCheck::kUserPropertiesDiffer);
  EXPECT_EQ(check(sent, 0), PropertyCheck::kUserPropertiesDiffer);
  const std::string reordered = sent.substr(kUserPropertyWireSize, kUserPropertyWireSize) +
                                sent.substr(0, kUserPropertyWireSize) +
                                sent.substr(2 * kUserPropertyWireSize);
  EXPECT_EQ(check(reordered, 3), PropertyCheck::kUserPropertiesDiffer);
  std::string changed = sent;
  changed[changed.size() - 1] = '9';
  EXPECT_EQ(check(changed, 3), PropertyCheck::kUserPropertiesDiffer);
  // A Topic Alias the client never allowed (5.0:MQTT-3.1.2-27), and a malformed block.
  std::string alias;
  AppendTopicAlias(1, alias);
  EXPECT_EQ(check(alias + sent, 3), PropertyCheck::kTopicAlias);
  EXPECT_EQ(check(sent.substr(0, sent.size() - 1), 3), PropertyCheck::kMalformed);
}

}  // namespace
}  // namespace ringmq::bench::wire
