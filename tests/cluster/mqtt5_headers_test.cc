// MQTT 5.0 properties as NATS headers (cluster/mqtt5_headers.h): what a node writes, what the
// receiving node rebuilds, and what a NATS application's headers become.
#include "cluster/mqtt5_headers.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/nats_protocol.h"
#include "mqtt/properties.h"
#include "mqtt/reason_code.h"

namespace ringmq::cluster {
namespace {

using mqtt::PropertyId;

// Builds a PUBLISH property block, property by property.
class Block {
 public:
  Block& Integer(PropertyId id, uint32_t value) {
    return Append(mqtt::EncodeIntegerProperty(id, value, scratch_));
  }
  Block& String(PropertyId id, std::string_view value) {
    return Append(mqtt::EncodeStringProperty(id, value, scratch_));
  }
  Block& User(std::string_view name, std::string_view value) {
    return Append(mqtt::EncodeUserProperty(name, value, scratch_));
  }
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  // Each property is encoded into a scratch of a fixed size (two strings of at most 65,535
  // bytes), then appended.
  Block& Append(size_t size) {
    bytes_.insert(bytes_.end(), scratch_.begin(), scratch_.begin() + static_cast<ptrdiff_t>(size));
    return *this;
  }
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(2 * 65'535 + 5);
  std::vector<uint8_t> bytes_;
};

std::vector<mqtt::Property> PropertiesOf(std::span<const uint8_t> block) {
  EXPECT_EQ(mqtt::ValidateProperties(block, mqtt::PacketBit(mqtt::PacketType::kPublish)),
            mqtt::Violation::kNone);
  std::vector<mqtt::Property> out;
  for (const mqtt::Property property : mqtt::Properties(block)) out.push_back(property);
  return out;
}

// The header block a node would send for `block`, as NATS delivers it.
std::string HeaderBlockFor(std::span<const uint8_t> block, std::optional<uint64_t> expiry_ms,
                           Mqtt5EncodeResult expected = Mqtt5EncodeResult::kWritten) {
  std::vector<nats::HeaderField> fields = {{"Ringmq-Node", "a"}, {"Ringmq-Qos", "1"}};
  std::string text;
  EXPECT_EQ(AppendMqtt5Headers(block, expiry_ms, 100, fields, text), expected);
  std::string out;
  EXPECT_TRUE(nats::AppendHeaderBlock(fields, out).ok());
  return out;
}

struct Decoded {
  std::vector<uint8_t> block;
  std::optional<uint64_t> expiry_ms;
  uint32_t dropped = 0;
};

Decoded Decode(std::string_view header_block) {
  Decoded out;
  Mqtt5HeaderDecoder decoder(out.block);
  DecodeMqtt5Headers(header_block, decoder);
  out.expiry_ms = decoder.expiry_left_ms();
  out.dropped = decoder.dropped();
  return out;
}

TEST(Mqtt5HeadersTest, NothingToCarryWritesNothing) {
  std::vector<nats::HeaderField> fields;
  std::string text;
  EXPECT_EQ(AppendMqtt5Headers({}, std::nullopt, 100, fields, text), Mqtt5EncodeResult::kNone);
  EXPECT_TRUE(fields.empty());
  EXPECT_EQ(text.capacity(), std::string().capacity()) << "no allocation";
  // Only per-connection properties: Topic Alias and Subscription Identifier never cross
  // (5.0:3.3.4, MQTT-3.3.4-3: the receiving node adds its own subscribers' identifiers).
  Block block;
  block.Integer(PropertyId::kTopicAlias, 3).Integer(PropertyId::kSubscriptionIdentifier, 9);
  EXPECT_EQ(AppendMqtt5Headers(block.bytes(), std::nullopt, 100, fields, text),
            Mqtt5EncodeResult::kNone);
  EXPECT_TRUE(fields.empty());
}

TEST(Mqtt5HeadersTest, EveryCarriedPropertyRoundTripsInOrder_MQTT_3_3_2_17_18) {
  const std::string correlation("\x00\x01\xff\r\n", 5);
  Block block;
  block.Integer(PropertyId::kPayloadFormatIndicator, 1)
      .Integer(PropertyId::kMessageExpiryInterval, 60)  // replaced by the time left
      .Integer(PropertyId::kTopicAlias, 2)
      .String(PropertyId::kContentType, "application/json; charset=utf-8")
      .String(PropertyId::kResponseTopic, "reply/to/me")
      .String(PropertyId::kCorrelationData, correlation)
      .User("k", "v1")
      .User("line", "a\r\nb")           // CR/LF: escaped
      .User("k", "v2")                  // repeated name, order kept
      .User("sp ace", "x")              // not a header token: escaped
      .User("Nats-Msg-Id", "1")         // reserved by NATS: escaped
      .User("ringmq-node", "spoof")     // reserved by ringmq: escaped
      .User("empty", "")                // an empty value is plain
      .User("pad", " x ")               // readers trim: escaped
      .User("utf8", "gr\xc3\xbc\xc3\x9f")  // UTF-8 values are plain
      .User("", "no name");             // escaped
  const std::string headers = HeaderBlockFor(block.bytes(), 59'500);
  EXPECT_NE(headers.find("\r\nRingmq-Payload-Format: 1\r\n"), std::string::npos) << headers;
  EXPECT_NE(headers.find("\r\nRingmq-Message-Expiry-Ms: 59500\r\n"), std::string::npos);
  EXPECT_NE(headers.find("\r\nRingmq-Content-Type: application/json; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(headers.find("\r\nRingmq-Response-Topic: reply/to/me\r\n"), std::string::npos);
  EXPECT_NE(headers.find("\r\nRingmq-Correlation-Data: AAH/DQo=\r\n"), std::string::npos);
  EXPECT_NE(headers.find("\r\nk: v1\r\n"), std::string::npos) << "native NATS header";
  EXPECT_NE(headers.find("\r\nutf8: gr\xc3\xbc\xc3\x9f\r\n"), std::string::npos);
  EXPECT_EQ(headers.find("Nats-Msg-Id"), std::string::npos) << "never a live NATS header";
  EXPECT_EQ(headers.find("Topic-Alias"), std::string::npos);

  const Decoded decoded = Decode(headers);
  EXPECT_EQ(decoded.dropped, 0u);
  EXPECT_EQ(decoded.expiry_ms, 59'500u);
  // The original without its expiry (carried apart) and its Topic Alias.
  Block expected;
  expected.Integer(PropertyId::kPayloadFormatIndicator, 1)
      .String(PropertyId::kContentType, "application/json; charset=utf-8")
      .String(PropertyId::kResponseTopic, "reply/to/me")
      .String(PropertyId::kCorrelationData, correlation)
      .User("k", "v1")
      .User("line", "a\r\nb")
      .User("k", "v2")
      .User("sp ace", "x")
      .User("Nats-Msg-Id", "1")
      .User("ringmq-node", "spoof")
      .User("empty", "")
      .User("pad", " x ")
      .User("utf8", "gr\xc3\xbc\xc3\x9f")
      .User("", "no name");
  EXPECT_EQ(PropertiesOf(decoded.block), PropertiesOf(expected.bytes()));
}

TEST(Mqtt5HeadersTest, TextThatIsNotPlainGoesBase64) {
  Block block;
  block.String(PropertyId::kContentType, "text\r\nplain").String(PropertyId::kResponseTopic, " r");
  const std::string headers = HeaderBlockFor(block.bytes(), std::nullopt);
  EXPECT_NE(headers.find("\r\nRingmq-Content-Type-B64: dGV4dA0KcGxhaW4=\r\n"), std::string::npos)
      << headers;
  EXPECT_NE(headers.find("\r\nRingmq-Response-Topic-B64: IHI=\r\n"), std::string::npos);
  const Decoded decoded = Decode(headers);
  EXPECT_EQ(PropertiesOf(decoded.block), PropertiesOf(block.bytes()));
  EXPECT_FALSE(decoded.expiry_ms.has_value());
}

TEST(Mqtt5HeadersTest, MoreFieldsThanTheBoundRefusesTheMessageAndWritesNothing) {
  Block block;
  for (int i = 0; i < 5; ++i) block.User("n", "v");
  std::vector<nats::HeaderField> fields = {{"Ringmq-Node", "a"}};
  std::string text;
  EXPECT_EQ(AppendMqtt5Headers(block.bytes(), 1000, 5, fields, text),
            Mqtt5EncodeResult::kTooManyFields);
  EXPECT_EQ(fields.size(), 1u);
  EXPECT_EQ(AppendMqtt5Headers(block.bytes(), std::nullopt, 5, fields, text),
            Mqtt5EncodeResult::kWritten);
  EXPECT_EQ(fields.size(), 6u);
}

TEST(Mqtt5HeadersTest, NatsApplicationHeadersBecomeUserPropertiesInOrder) {
  const std::string headers =
      "NATS/1.0\r\nTrace-Id: abc\r\nNats-Msg-Id: 7\r\nRingmq-Node: other\r\nZone: eu\r\n"
      "Trace-Id: def\r\n\r\n";
  const Decoded decoded = Decode(headers);
  Block expected;
  expected.User("Trace-Id", "abc").User("Zone", "eu").User("Trace-Id", "def");
  EXPECT_EQ(PropertiesOf(decoded.block), PropertiesOf(expected.bytes()));
  EXPECT_EQ(decoded.dropped, 0u);
}

TEST(Mqtt5HeadersTest, FieldsThatGiveNoValidPropertyAreLeftOutAndCounted) {
  const std::string headers =
      "NATS/1.0\r\n"
      "Ringmq-Payload-Format: 2\r\n"               // not 0 or 1
      "Ringmq-Message-Expiry-Ms: soon\r\n"         // not a number
      "Ringmq-Content-Type: ok\r\n"
      "Ringmq-Content-Type: twice\r\n"             // single-valued (§3.3.2.3)
      "Ringmq-Response-Topic: a/+/c\r\n"           // wildcard, MQTT-3.3.2-14
      "Ringmq-Correlation-Data: !!!!\r\n"          // not base64
      "Ringmq-User-Property: bm8tY29tbWE=\r\n"     // no ','
      "Ringmq-User-Property: AA==,eA==\r\n"        // name U+0000, MQTT-1.5.4-2
      "Bad-Utf8: \xc3\x28\r\n"                     // MQTT-1.5.4-1
      "Ringmq-User-Property: ,eA==\r\n"            // empty name: valid
      "\r\n";
  const Decoded decoded = Decode(headers);
  EXPECT_EQ(decoded.dropped, 8u);
  EXPECT_FALSE(decoded.expiry_ms.has_value());
  Block expected;
  expected.String(PropertyId::kContentType, "ok").User("", "x");
  EXPECT_EQ(PropertiesOf(decoded.block), PropertiesOf(expected.bytes()));
}

TEST(Mqtt5HeadersTest, OverlongStringsAreDropped) {
  const std::string long_value(65'536, 'x');
  const std::string headers = "NATS/1.0\r\nRingmq-Content-Type: " + long_value +
                              "\r\nName: " + long_value + "\r\nOk: " +
                              long_value.substr(0, 65'535) + "\r\n\r\n";
  const Decoded decoded = Decode(headers);
  EXPECT_EQ(decoded.dropped, 2u);
  const std::vector<mqtt::Property> got = PropertiesOf(decoded.block);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text, "Ok");
  EXPECT_EQ(got[0].pair_value.size(), 65'535u);
}

TEST(Mqtt5HeadersTest, ABlockWithoutPropertyFieldsBuildsNothing) {
  std::vector<uint8_t> block;
  Mqtt5HeaderDecoder decoder(block);
  DecodeMqtt5Headers("NATS/1.0\r\nRingmq-Node: a\r\nRingmq-Qos: 1\r\nNats-Stream: s\r\n\r\n",
                     decoder);
  EXPECT_TRUE(decoder.properties().empty());
  EXPECT_EQ(block.capacity(), 0u) << "no allocation";
  DecodeMqtt5Headers("not a header block", decoder);
  EXPECT_TRUE(decoder.properties().empty());
}

}  // namespace
}  // namespace ringmq::cluster
