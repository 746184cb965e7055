// The MQTT 5.0 packets: every type decoded and encoded (round trip), framed from every split
// point, the short forms of the acks, and each 5.0 violation with its rule in the test name.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_util.h"
#include "mqtt/codec.h"
#include "mqtt/properties.h"
#include "mqtt/reason_code.h"

namespace ringmq::mqtt {
namespace {

using test::Bytes;
using test::Cat;
using test::Str;
using test::U16;

constexpr ProtocolLevel k5 = ProtocolLevel::kMqtt5;

// A property block with its Property Length.
Bytes Props(const Bytes& block) { return Cat({test::RemainingLength(block.size()), block}); }

Properties View(const Bytes& block) {
  const Bytes& kept = test::Keep(block);
  return Properties(std::span<const uint8_t>(kept));
}

Violation V5(const Bytes& bytes) { return test::ViolationOf(bytes, k5); }

Bytes UserProperty(std::string_view name, std::string_view value) {
  return Cat({{0x26}, Str(name), Str(value)});
}

// One packet of every type, with properties wherever the type has them.
std::vector<Packet> SamplePackets5() {
  std::vector<Packet> packets;
  Connect connect;
  connect.protocol_level = 5;
  connect.clean_session = true;
  connect.keepalive_s = 30;
  connect.client_id = "client";
  connect.properties =
      View(Cat({{0x11, 0, 0, 0x0E, 0x10, 0x21, 0x00, 0x0A}, UserProperty("k", "v")}));
  connect.will = Will{"will/topic", std::string_view("\x00\x01", 2), QoS::k1, true,
                      View(Cat({{0x18, 0, 0, 0, 5, 0x01, 0x01}, {0x03}, Str("text/plain")}))};
  connect.password = "secret";  // 5.0 allows a password without a user name (§3.1.2.9)
  packets.push_back(connect);

  Connack connack;
  connack.session_present = true;
  connack.properties = View(Cat(
      {{0x24, 0x01, 0x25, 0x00, 0x13, 0x00, 0x3C}, {0x12}, Str("assigned"), {0x22, 0x00, 0x10}}));
  packets.push_back(connack);
  Connack refused;
  refused.reason_code = ReasonCode::kBanned;
  packets.push_back(refused);

  Publish publish;
  publish.topic = "a/b";
  publish.payload = "hello";
  publish.qos = QoS::k2;
  publish.packet_id = 9;
  publish.properties = View(Cat({{0x01, 0x01, 0x02, 0, 0, 0, 60, 0x0B, 0x05, 0x0B, 0x80, 0x01},
                                 {0x08},
                                 Str("reply/to"),
                                 {0x09},
                                 Str("corr"),
                                 UserProperty("a", "1")}));
  packets.push_back(publish);
  Publish aliased;
  aliased.topic = "";
  aliased.payload = "x";
  aliased.properties = View({0x23, 0x00, 0x02});
  packets.push_back(aliased);

  packets.push_back(Puback{1});
  packets.push_back(Puback{2, ReasonCode::kNoMatchingSubscribers});
  packets.push_back(Puback{3, ReasonCode::kQuotaExceeded, View(Cat({{0x1F}, Str("full")}))});
  packets.push_back(Pubrec{4, ReasonCode::kUnspecifiedError});
  packets.push_back(Pubrel{5, ReasonCode::kPacketIdentifierNotFound});
  packets.push_back(Pubcomp{6, ReasonCode::kSuccess, View(UserProperty("x", "y"))});

  const std::array<TopicRequest, 3> requests = {
      TopicRequest{"a/+", QoS::k1, true, true, 2},
      TopicRequest{"$share/group/b/#", QoS::k2, false, true, 1},
      TopicRequest{"c", QoS::k0},
  };
  Bytes& entries = const_cast<Bytes&>(test::Keep(Bytes(TopicListEncodedSize(requests, true))));
  EncodeTopicList(requests, true, entries);
  Subscribe subscribe;
  subscribe.packet_id = 10;
  subscribe.topics = TopicList(entries, true);
  subscribe.properties = View(Cat({{0x0B, 0xFF, 0x7F}, UserProperty("s", "1")}));
  packets.push_back(subscribe);

  Suback suback;
  suback.packet_id = 10;
  suback.return_codes = test::Keep({0x01, 0x02, 0x9E, 0xA1});
  suback.properties = View(Cat({{0x1F}, Str("partial")}));
  packets.push_back(suback);

  const std::array<TopicRequest, 2> filters = {TopicRequest{"a/+"}, TopicRequest{"$share/g/c"}};
  Bytes& unsub_entries =
      const_cast<Bytes&>(test::Keep(Bytes(TopicListEncodedSize(filters, false))));
  EncodeTopicList(filters, false, unsub_entries);
  Unsubscribe unsubscribe;
  unsubscribe.packet_id = 11;
  unsubscribe.topics = TopicList(unsub_entries, false);
  packets.push_back(unsubscribe);

  Unsuback unsuback;
  unsuback.packet_id = 11;
  unsuback.reason_codes = test::Keep({0x00, 0x11});
  packets.push_back(unsuback);

  packets.push_back(Pingreq{});
  packets.push_back(Pingresp{});
  packets.push_back(Disconnect{});
  packets.push_back(Disconnect{ReasonCode::kDisconnectWithWillMessage});
  packets.push_back(Disconnect{ReasonCode::kServerMoved, View(Cat({{0x1C}, Str("other:1883")}))});
  packets.push_back(Disconnect{ReasonCode::kNormalDisconnection, View({0x11, 0, 0, 0, 0})});
  packets.push_back(Auth{});
  packets.push_back(Auth{ReasonCode::kContinueAuthentication,
                         View(Cat({{0x15}, Str("SCRAM-SHA-1"), {0x16}, Str("data")}))});
  return packets;
}

TEST(Mqtt5Packets, EveryTypeRoundTripsAndSplitsAtEveryByte) {
  std::array<bool, 16> seen{};
  for (const Packet& packet : SamplePackets5()) {
    SCOPED_TRACE(std::string(NameOf(TypeOf(packet))));
    seen[static_cast<size_t>(TypeOf(packet))] = true;
    const Bytes bytes = test::Encoded(packet, k5);
    const Result<Packet> decoded = test::DecodeWhole(bytes, k5);
    ASSERT_TRUE(decoded.ok()) << NameOf(decoded.violation());
    EXPECT_EQ(decoded.value(), packet);
    EXPECT_EQ(test::Encoded(decoded.value(), k5), bytes);  // canonical
    for (size_t length = 0; length < bytes.size(); ++length) {
      const Frame prefix = PeekFrame(std::span(bytes).first(length), test::kNoLimit, k5);
      EXPECT_EQ(prefix.status, FrameStatus::kNeedMore) << "prefix " << length;
    }
    if (const auto* connect = std::get_if<Connect>(&packet)) {
      const Frame frame = PeekFrame(bytes, test::kNoLimit);
      const auto body = std::span(bytes).subspan(frame.header.header_length);
      const Result<Connect> refused = DecodeConnect(frame.header, body);
      ASSERT_TRUE(refused.ok());
      EXPECT_FALSE(refused.value().level_supported);  // today's answer: CONNACK 0x01
      const Result<Connect> accepted = DecodeConnect(frame.header, body, true);
      ASSERT_TRUE(accepted.ok());
      EXPECT_EQ(accepted.value(), *connect);
    }
  }
  for (unsigned type = 1; type <= 15; ++type) {
    EXPECT_TRUE(seen[type]) << NameOf(static_cast<PacketType>(type));
  }
}

TEST(Mqtt5Packets, DecodedConnectExposesPropertiesAndWillProperties) {
  const Packet packet = SamplePackets5()[0];
  const Result<Packet> decoded = test::DecodeKept(test::Encoded(packet, k5), k5);
  ASSERT_TRUE(decoded.ok());
  const Connect& connect = std::get<Connect>(decoded.value());
  const PropertyValues values = connect.properties.Values();
  EXPECT_EQ(values.session_expiry_interval_s, 3600u);
  EXPECT_EQ(values.receive_maximum, 10u);
  EXPECT_EQ(values.user_property_count, 1u);
  ASSERT_TRUE(connect.will.has_value());
  const PropertyValues will = connect.will->properties.Values();
  EXPECT_EQ(will.will_delay_interval_s, 5u);
  EXPECT_EQ(will.payload_format_indicator, 1u);
  EXPECT_EQ(will.content_type, "text/plain");
  EXPECT_FALSE(connect.user_name.has_value());
  EXPECT_EQ(connect.password, "secret");
}

TEST(Mqtt5Packets, SubscriptionOptionsDecoded_3_8_3_1) {
  const Result<Packet> decoded = test::DecodeKept(test::Encoded(SamplePackets5()[11], k5), k5);
  ASSERT_TRUE(decoded.ok());
  const Subscribe& subscribe = std::get<Subscribe>(decoded.value());
  std::vector<TopicRequest> requests(subscribe.topics.begin(), subscribe.topics.end());
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0], (TopicRequest{"a/+", QoS::k1, true, true, 2}));
  EXPECT_EQ(requests[1], (TopicRequest{"$share/group/b/#", QoS::k2, false, true, 1}));
  EXPECT_EQ(subscribe.properties.Values().subscription_identifier, 16'383u);
}

// The connection code encodes at the default level (3.1.1): 5.0-only members must not reach the
// wire there, whatever they hold.
TEST(Mqtt5Packets, EncodingBelow5IgnoresThe5Members) {
  const Properties reason = View(Cat({{0x1F}, Str("why")}));
  EXPECT_EQ(test::Encoded(Puback{7, ReasonCode::kQuotaExceeded, reason}),
            (Bytes{0x40, 0x02, 0x00, 0x07}));
  EXPECT_EQ(test::Encoded(Disconnect{ReasonCode::kServerMoved, reason}), (Bytes{0xE0, 0x00}));
  Connack connack;
  connack.reason_code = ReasonCode::kBanned;
  connack.properties = reason;
  EXPECT_EQ(test::Encoded(connack), (Bytes{0x20, 0x02, 0x00, 0x00}));
  Unsuback unsuback;
  unsuback.packet_id = 3;
  unsuback.reason_codes = test::Keep({0x11});
  EXPECT_EQ(test::Encoded(unsuback), (Bytes{0xB0, 0x02, 0x00, 0x03}));
  Publish publish;
  publish.topic = "t";
  publish.payload = "p";
  publish.properties = reason;
  EXPECT_EQ(test::Encoded(publish), test::MakePacket(0x30, Cat({Str("t"), test::Raw("p")})));
}

// ---- Short forms (§3.4.2.1, §3.14.2.1, §3.15.2.1) ----

TEST(Mqtt5Acks, RemainingLength2IsSuccessWithoutProperties_MQTT_3_4_2_1) {
  for (const uint8_t first : {0x40, 0x50, 0x62, 0x70}) {
    const Result<Packet> decoded = test::DecodeWhole(Bytes{first, 0x02, 0x00, 0x07}, k5);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(test::Encoded(decoded.value(), k5), (Bytes{first, 0x02, 0x00, 0x07}));
  }
  const Result<Packet> reason_only = test::DecodeWhole(Bytes{0x40, 0x03, 0x00, 0x07, 0x10}, k5);
  ASSERT_TRUE(reason_only.ok());
  EXPECT_EQ(std::get<Puback>(reason_only.value()).reason_code, ReasonCode::kNoMatchingSubscribers);
  // Reason code and an empty property block: the same packet as the short form.
  const Result<Packet> long_form = test::DecodeWhole(Bytes{0x40, 0x04, 0x00, 0x07, 0x00, 0x00}, k5);
  ASSERT_TRUE(long_form.ok());
  EXPECT_EQ(long_form.value(), Packet(Puback{7}));
}

TEST(Mqtt5Acks, SurplusAfterPropertiesIsMalformed) {
  EXPECT_EQ(V5({0x40, 0x05, 0x00, 0x07, 0x00, 0x00, 0x00}), Violation::kSurplusBytes);
  EXPECT_EQ(V5({0xE0, 0x03, 0x00, 0x00, 0x00}), Violation::kSurplusBytes);
}

TEST(Mqtt5Acks, PropertyLengthOverrunIsTruncated) {
  EXPECT_EQ(V5({0x40, 0x05, 0x00, 0x07, 0x00, 0x05, 0x1F}), Violation::kTruncated);
}

TEST(Mqtt5Acks, AckLengthsThatAreFixedAt311AreVariableAt5) {
  const Bytes puback3 = {0x40, 0x03, 0x00, 0x07, 0x10};
  EXPECT_EQ(test::ViolationOf(puback3), Violation::kSurplusBytes);
  EXPECT_EQ(V5(puback3), Violation::kNone);
  const Bytes disconnect1 = {0xE0, 0x01, 0x04};
  EXPECT_EQ(test::ViolationOf(disconnect1), Violation::kSurplusBytes);
  EXPECT_EQ(V5(disconnect1), Violation::kNone);
  EXPECT_EQ(V5({0xC0, 0x01, 0x00}), Violation::kSurplusBytes);  // PINGREQ stays fixed
}

TEST(Mqtt5Acks, PacketIdZero_MQTT_2_2_1_3) {
  EXPECT_EQ(V5({0x40, 0x02, 0x00, 0x00}), Violation::kPacketIdZero);
  EXPECT_EQ(V5(test::MakePacket(0xB0, Cat({U16(0), {0x00, 0x00}}))), Violation::kPacketIdZero);
}

// ---- Reason codes per packet (§2.4) ----

// Every value in every packet that carries one: accepted exactly when the table allows it.
TEST(Mqtt5ReasonCodes, EveryCodeInEveryPacketMatchesTable2_6) {
  for (unsigned value = 0; value < 256; ++value) {
    const auto code = static_cast<uint8_t>(value);
    const std::vector<std::pair<PacketType, Bytes>> packets = {
        {PacketType::kConnack, {0x20, 0x03, 0x00, code, 0x00}},
        {PacketType::kPuback, {0x40, 0x03, 0x00, 0x01, code}},
        {PacketType::kPubrec, {0x50, 0x03, 0x00, 0x01, code}},
        {PacketType::kPubrel, {0x62, 0x03, 0x00, 0x01, code}},
        {PacketType::kPubcomp, {0x70, 0x03, 0x00, 0x01, code}},
        {PacketType::kSuback, {0x90, 0x04, 0x00, 0x01, 0x00, code}},
        {PacketType::kUnsuback, {0xB0, 0x04, 0x00, 0x01, 0x00, code}},
        {PacketType::kDisconnect, {0xE0, 0x01, code}},
        // An AUTH names its method (§3.15.2.2.2).
        {PacketType::kAuth, {0xF0, 0x06, code, 0x04, 0x15, 0x00, 0x01, 'm'}},
    };
    for (const auto& [type, bytes] : packets) {
      const bool allowed = IsReasonCodeAllowed(code, type);
      EXPECT_EQ(V5(bytes), allowed ? Violation::kNone : Violation::kBadReasonCode)
          << NameOf(type) << " code " << value;
    }
  }
}

// ---- Framing ----

TEST(Mqtt5Frame, NonMinimalRemainingLength_MQTT_1_5_5_1) {
  const Bytes pingreq = {0xC0, 0x80, 0x00};
  EXPECT_EQ(PeekFrame(pingreq, test::kNoLimit).status, FrameStatus::kComplete);  // 3.1.1: fine
  const Frame frame = PeekFrame(pingreq, test::kNoLimit, k5);
  EXPECT_EQ(frame.status, FrameStatus::kInvalid);
  EXPECT_EQ(frame.violation, Violation::kNonMinimalVariableByteInteger);
  EXPECT_EQ(PeekFrame(std::span(pingreq).first(2), test::kNoLimit, k5).status,
            FrameStatus::kNeedMore);
}

TEST(Mqtt5Frame, AuthIsReservedBefore5_2_2_1) {
  const Bytes auth = {0xF0, 0x00};
  EXPECT_EQ(test::ViolationOf(auth), Violation::kReservedPacketType);
  EXPECT_EQ(test::ViolationOf(auth, ProtocolLevel::kMqtt31), Violation::kReservedPacketType);
  EXPECT_EQ(V5(auth), Violation::kNone);
  EXPECT_EQ(V5({0xF1, 0x00}), Violation::kBadFixedHeaderFlags);  // MQTT-3.15.1-1
}

// ---- CONNECT (§3.1) ----

Bytes Connect5(uint8_t flags, const Bytes& properties, const Bytes& payload) {
  return test::MakePacket(0x10,
                          Cat({Str("MQTT"), {0x05, flags}, U16(60), Props(properties), payload}));
}

Violation ConnectViolation(const Bytes& bytes) {
  const Frame frame = PeekFrame(bytes, test::kNoLimit);
  EXPECT_EQ(frame.status, FrameStatus::kComplete);
  return DecodeConnect(frame.header, std::span(bytes).subspan(frame.header.header_length), true)
      .violation();
}

TEST(Mqtt5Connect, Level5StaysUnsupportedUnlessTheCallerAccepts_MQTT_3_1_2_2) {
  const Bytes bytes = Connect5(0x02, {}, Str("id"));
  const Frame frame = PeekFrame(bytes, test::kNoLimit);
  const auto body = std::span(bytes).subspan(frame.header.header_length);
  const Result<Connect> today = DecodeConnect(frame.header, body);
  ASSERT_TRUE(today.ok());
  EXPECT_FALSE(today.value().level_supported);
  EXPECT_EQ(today.value().protocol_level, 5);
  const Result<Connect> accepted = DecodeConnect(frame.header, body, true);
  ASSERT_TRUE(accepted.ok());
  EXPECT_TRUE(accepted.value().level_supported);
  EXPECT_EQ(accepted.value().client_id, "id");
  // "MQIsdp" never pairs with level 5.
  const Bytes mqisdp =
      test::MakePacket(0x10, Cat({Str("MQIsdp"), {0x05, 0x02}, U16(60), {0x00}, Str("id")}));
  const Frame mqisdp_frame = PeekFrame(mqisdp, test::kNoLimit);
  const Result<Connect> mqisdp_connect = DecodeConnect(
      mqisdp_frame.header, std::span(mqisdp).subspan(mqisdp_frame.header.header_length), true);
  ASSERT_TRUE(mqisdp_connect.ok());
  EXPECT_FALSE(mqisdp_connect.value().level_supported);
}

TEST(Mqtt5Connect, ReservedFlag_MQTT_3_1_2_3) {
  EXPECT_EQ(ConnectViolation(Connect5(0x03, {}, Str("id"))), Violation::kConnectReservedFlag);
}

TEST(Mqtt5Connect, WillQosWithoutWill_MQTT_3_1_2_11) {
  EXPECT_EQ(ConnectViolation(Connect5(0x0A, {}, Str("id"))), Violation::kWillFlagsWithoutWill);
}

TEST(Mqtt5Connect, WillQos3_MQTT_3_1_2_14) {
  EXPECT_EQ(ConnectViolation(Connect5(0x1E, {}, Cat({Str("id"), {0x00}, Str("t"), Str("m")}))),
            Violation::kWillQosInvalid);
}

TEST(Mqtt5Connect, WillRetainWithoutWill_MQTT_3_1_2_15) {
  EXPECT_EQ(ConnectViolation(Connect5(0x22, {}, Str("id"))), Violation::kWillFlagsWithoutWill);
}

TEST(Mqtt5Connect, WillPropertiesTopicAndPayloadMustBePresent_MQTT_3_1_2_9) {
  EXPECT_EQ(ConnectViolation(Connect5(0x06, {}, Str("id"))), Violation::kMissingWillTopic);
  EXPECT_EQ(ConnectViolation(Connect5(0x06, {}, Cat({Str("id"), {0x00}}))),
            Violation::kMissingWillTopic);
  EXPECT_EQ(ConnectViolation(Connect5(0x06, {}, Cat({Str("id"), {0x00}, Str("t")}))),
            Violation::kMissingWillMessage);
}

TEST(Mqtt5Connect, WillPropertyOnlyInWillProperties_2_2_2_2) {
  EXPECT_EQ(ConnectViolation(Connect5(0x02, {0x18, 0, 0, 0, 1}, Str("id"))),
            Violation::kPropertyNotAllowed);
  EXPECT_EQ(ConnectViolation(Connect5(
                0x06, {}, Cat({Str("id"), Props({0x11, 0, 0, 0, 1}), Str("t"), Str("m")}))),
            Violation::kPropertyNotAllowed);
}

TEST(Mqtt5Connect, PasswordWithoutUserNameAllowed_3_1_2_9) {
  EXPECT_EQ(ConnectViolation(Connect5(0x42, {}, Cat({Str("id"), Str("pw")}))), Violation::kNone);
}

TEST(Mqtt5Connect, AuthenticationDataWithoutMethod_3_1_2_11_10) {
  EXPECT_EQ(ConnectViolation(Connect5(0x02, Cat({{0x16}, Str("d")}), Str("id"))),
            Violation::kAuthenticationDataWithoutMethod);
  EXPECT_EQ(ConnectViolation(Connect5(0x02, Cat({{0x15}, Str("m"), {0x16}, Str("d")}), Str("id"))),
            Violation::kNone);
}

TEST(Mqtt5Connect, WildcardInWillTopic_MQTT_3_3_2_2) {
  EXPECT_EQ(ConnectViolation(Connect5(0x06, {}, Cat({Str("id"), {0x00}, Str("a/#"), Str("m")}))),
            Violation::kInvalidWillTopic);
}

TEST(Mqtt5Connect, SurplusBytes) {
  EXPECT_EQ(ConnectViolation(Connect5(0x02, {}, Cat({Str("id"), {0x00}}))),
            Violation::kSurplusBytes);
}

// mosquitto_pub 2.0 -V mqttv5 -i mosq-pub5 -D connect session-expiry-interval 3600
// -D connect user-property k v --will-topic w/t --will-payload bye
// -D will will-delay-interval 10 -u alice -P s3cret -k 30 (captured from a listening socket)
constexpr uint8_t kMosquittoPubConnect5[] = {
    0x10, 0x44, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x05, 0xc6, 0x00, 0x1e, 0x0f, 0x11,
    0x00, 0x00, 0x0e, 0x10, 0x26, 0x00, 0x01, 0x6b, 0x00, 0x01, 0x76, 0x21, 0x00, 0x14,
    0x00, 0x09, 0x6d, 0x6f, 0x73, 0x71, 0x2d, 0x70, 0x75, 0x62, 0x35, 0x05, 0x18, 0x00,
    0x00, 0x00, 0x0a, 0x00, 0x03, 0x77, 0x2f, 0x74, 0x00, 0x03, 0x62, 0x79, 0x65, 0x00,
    0x05, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x00, 0x06, 0x73, 0x33, 0x63, 0x72, 0x65, 0x74};

TEST(Mqtt5Connect, CapturedMosquittoConnectDecodesAndReencodesByteForByte) {
  const Bytes bytes(std::begin(kMosquittoPubConnect5), std::end(kMosquittoPubConnect5));
  const Result<Packet> decoded = test::DecodeWhole(bytes, k5);
  ASSERT_TRUE(decoded.ok()) << NameOf(decoded.violation());
  const Connect& connect = std::get<Connect>(decoded.value());
  EXPECT_EQ(connect.client_id, "mosq-pub5");
  EXPECT_EQ(connect.keepalive_s, 30);
  EXPECT_EQ(connect.properties.Values().session_expiry_interval_s, 3600u);
  EXPECT_EQ(connect.properties.Values().receive_maximum, 20u);
  EXPECT_EQ(connect.properties.Values().user_property_count, 1u);
  ASSERT_TRUE(connect.will.has_value());
  EXPECT_EQ(connect.will->topic, "w/t");
  EXPECT_EQ(connect.will->properties.Values().will_delay_interval_s, 10u);
  EXPECT_EQ(connect.user_name, "alice");
  EXPECT_EQ(connect.password, "s3cret");
  EXPECT_EQ(test::Encoded(decoded.value(), k5), bytes);
}

// ---- CONNACK (§3.2) ----

TEST(Mqtt5Connack, ReservedBits_MQTT_3_2_2_1) {
  EXPECT_EQ(V5({0x20, 0x03, 0x02, 0x00, 0x00}), Violation::kConnackReservedBits);
}

TEST(Mqtt5Connack, SessionPresentWithNonZeroReason_MQTT_3_2_2_6) {
  EXPECT_EQ(V5({0x20, 0x03, 0x01, 0x80, 0x00}), Violation::kConnackBadReturnCode);
}

TEST(Mqtt5Connack, PropertyLengthRequired) {
  EXPECT_EQ(V5({0x20, 0x02, 0x00, 0x00}), Violation::kTruncated);
}

// ---- PUBLISH (§3.3) ----

Bytes Publish5(const Bytes& topic, const Bytes& properties, uint8_t first_byte = 0x30) {
  const bool has_id = (first_byte & 0x06) != 0;
  return test::MakePacket(
      first_byte, Cat({topic, has_id ? U16(1) : Bytes{}, Props(properties), test::Raw("p")}));
}

TEST(Mqtt5Publish, EmptyTopicNeedsTopicAlias_3_3_2_3_4) {
  EXPECT_EQ(V5(Publish5(Str(""), {})), Violation::kEmptyTopicWithoutAlias);
  EXPECT_EQ(V5(Publish5(Str(""), {0x23, 0x00, 0x01})), Violation::kNone);
  EXPECT_EQ(test::ViolationOf(test::MakePacket(0x30, Cat({Str(""), test::Raw("p")}))),
            Violation::kEmptyTopic);  // 3.1.1 unchanged
}

TEST(Mqtt5Publish, TopicAliasZero_MQTT_3_3_2_8) {
  EXPECT_EQ(V5(Publish5(Str("a"), {0x23, 0x00, 0x00})), Violation::kTopicAliasZero);
}

TEST(Mqtt5Publish, WildcardInTopicName_MQTT_3_3_2_2) {
  EXPECT_EQ(V5(Publish5(Str("a/+"), {})), Violation::kWildcardInTopicName);
}

TEST(Mqtt5Publish, SubscriptionIdentifierMayRepeat_3_3_2_3_8) {
  EXPECT_EQ(V5(Publish5(Str("a"), {0x0B, 0x01, 0x0B, 0x02})), Violation::kNone);
}

TEST(Mqtt5Publish, ConnectOnlyPropertyIsMalformed_2_2_2_2) {
  EXPECT_EQ(V5(Publish5(Str("a"), {0x21, 0x00, 0x01})), Violation::kPropertyNotAllowed);
}

TEST(Mqtt5Publish, PropertiesFollowThePacketId) {
  const Result<Packet> decoded = test::DecodeKept(Publish5(Str("a"), {0x01, 0x01}, 0x32), k5);
  ASSERT_TRUE(decoded.ok());
  const Publish& publish = std::get<Publish>(decoded.value());
  EXPECT_EQ(publish.packet_id, 1);
  EXPECT_EQ(publish.payload, "p");
  EXPECT_EQ(publish.properties.Values().payload_format_indicator, 1u);
}

// ---- SUBSCRIBE / UNSUBSCRIBE (§3.8, §3.10) ----

Bytes Subscribe5(std::string_view filter, uint8_t options, const Bytes& properties = {}) {
  return test::MakePacket(0x82, Cat({U16(1), Props(properties), Str(filter), {options}}));
}

TEST(Mqtt5Subscribe, OptionsReservedBits_MQTT_3_8_3_5) {
  EXPECT_EQ(V5(Subscribe5("a", 0x40)), Violation::kSubscribeOptionsReserved);
  EXPECT_EQ(V5(Subscribe5("a", 0x80)), Violation::kSubscribeOptionsReserved);
  EXPECT_EQ(V5(Subscribe5("a", 0x2E)), Violation::kNone);  // RH 2, RAP, NL, QoS 2
  // At 3.1.1 the Property Length byte reads as the start of an empty filter.
  EXPECT_EQ(test::ViolationOf(Subscribe5("a", 0x00)), Violation::kEmptyTopic);
}

TEST(Mqtt5Subscribe, Qos3_3_8_3_1) {
  EXPECT_EQ(V5(Subscribe5("a", 0x03)), Violation::kSubscribeQos3);
}

TEST(Mqtt5Subscribe, RetainHandling3_3_8_3_1) {
  EXPECT_EQ(V5(Subscribe5("a", 0x30)), Violation::kRetainHandling3);
}

TEST(Mqtt5Subscribe, NoLocalOnSharedSubscription_MQTT_3_8_3_4) {
  EXPECT_EQ(V5(Subscribe5("$share/g/a", 0x04)), Violation::kNoLocalOnSharedSubscription);
  EXPECT_EQ(V5(Subscribe5("$share/g/a", 0x01)), Violation::kNone);
  EXPECT_EQ(V5(Subscribe5("$shared/a", 0x04)), Violation::kNone);  // not a shared subscription
}

TEST(Mqtt5Subscribe, SharedSubscriptionForm_MQTT_4_8_2_1) {
  EXPECT_EQ(V5(Subscribe5("$share//a", 0x00)), Violation::kBadSharedSubscription);
  EXPECT_EQ(V5(Subscribe5("$share/g", 0x00)), Violation::kBadSharedSubscription);
  EXPECT_EQ(V5(Subscribe5("$share/g/", 0x00)), Violation::kBadSharedSubscription);
  EXPECT_EQ(V5(Subscribe5("$share/+/a", 0x00)), Violation::kBadSharedSubscription);
  EXPECT_EQ(V5(Subscribe5("$share/g/+/#", 0x00)), Violation::kNone);
}

TEST(Mqtt5Subscribe, SubscriptionIdentifierOnce_3_8_2_1_2) {
  EXPECT_EQ(V5(Subscribe5("a", 0x00, {0x0B, 0x01})), Violation::kNone);
  EXPECT_EQ(V5(Subscribe5("a", 0x00, {0x0B, 0x01, 0x0B, 0x02})), Violation::kDuplicateProperty);
  EXPECT_EQ(V5(Subscribe5("a", 0x00, {0x0B, 0x00})), Violation::kSubscriptionIdentifierZero);
}

TEST(Mqtt5Subscribe, NoTopicFilters_MQTT_3_8_3_2) {
  EXPECT_EQ(V5(test::MakePacket(0x82, Cat({U16(1), {0x00}}))), Violation::kNoTopicFilters);
  EXPECT_EQ(V5(test::MakePacket(0xA2, Cat({U16(1), {0x00}}))), Violation::kNoTopicFilters);
}

TEST(Mqtt5Unsubscribe, SharedFormChecked_MQTT_4_8_2_1) {
  EXPECT_EQ(V5(test::MakePacket(0xA2, Cat({U16(1), {0x00}, Str("$share//x")}))),
            Violation::kBadSharedSubscription);
}

// ---- SUBACK / UNSUBACK ----

TEST(Mqtt5Suback, AtLeastOneReasonCode) {
  EXPECT_EQ(V5({0x90, 0x03, 0x00, 0x01, 0x00}), Violation::kTruncated);
  EXPECT_EQ(V5({0xB0, 0x03, 0x00, 0x01, 0x00}), Violation::kTruncated);
}

// ---- DISCONNECT / AUTH ----

TEST(Mqtt5Disconnect, RemainingLength0IsNormalDisconnection_3_14_2_1) {
  const Result<Packet> decoded = test::DecodeWhole(Bytes{0xE0, 0x00}, k5);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(std::get<Disconnect>(decoded.value()).reason_code, ReasonCode::kNormalDisconnection);
}

TEST(Mqtt5Disconnect, ConnackOnlyPropertyIsMalformed_2_2_2_2) {
  EXPECT_EQ(V5({0xE0, 0x04, 0x00, 0x02, 0x24, 0x01}), Violation::kPropertyNotAllowed);
}

// §3.15.2.2.2: "It is a Protocol Error to omit the Authentication Method"; only the empty AUTH
// (remaining length 0, §3.15.2.1) carries none.
TEST(Mqtt5Auth, AuthWithoutMethodIsProtocolError_3_15_2_2_2) {
  EXPECT_EQ(V5({0xF0, 0x01, 0x18}), Violation::kAuthWithoutMethod);
  EXPECT_EQ(V5(test::MakePacket(0xF0, Cat({{0x19}, Props(Cat({{0x1F}, Str("r")}))}))),
            Violation::kAuthWithoutMethod);
  EXPECT_EQ(ReasonCodeOf(Violation::kAuthWithoutMethod), ReasonCode::kProtocolError);
  EXPECT_EQ(V5({0xF0, 0x00}), Violation::kNone);
}

// 5.0 §3.8.3, §3.10.3: a SUBSCRIBE or UNSUBSCRIBE with no payload is a Protocol Error.
TEST(Mqtt5Subscribe, NoTopicFiltersIsProtocolError_3_8_3) {
  EXPECT_EQ(ReasonCodeOf(Violation::kNoTopicFilters), ReasonCode::kProtocolError);
}

// A Response Topic is a Topic Name (§3.3.2.3.5): at least one character (MQTT-4.7.3-1).
TEST(Mqtt5Properties, EmptyResponseTopicRefused_MQTT_4_7_3_1) {
  EXPECT_EQ(ValidateProperties(Bytes{0x08, 0x00, 0x00}, PacketBit(PacketType::kPublish)),
            Violation::kResponseTopicEmpty);
  EXPECT_EQ(ValidateProperties(Bytes{0x08, 0x00, 0x01, 'r'}, PacketBit(PacketType::kPublish)),
            Violation::kNone);
}

// MQTT-1.5.5-1: a CONNECT is framed at 3.1.1 (its level is not known yet), which accepts a longer
// remaining-length encoding than needed; DecodeConnect refuses it at 5.0.
TEST(Mqtt5Connect, NonMinimalRemainingLength_MQTT_1_5_5_1) {
  const Bytes body = Cat({Str("MQTT"), {0x05, 0x02}, test::U16(60), {0x00}, Str("id")});
  ASSERT_LT(body.size(), 128u);
  const Bytes bytes = Cat({{0x10, static_cast<uint8_t>(0x80 | body.size()), 0x00}, body});
  const Frame frame = PeekFrame(bytes, test::kNoLimit);
  ASSERT_EQ(frame.status, FrameStatus::kComplete);
  ASSERT_EQ(frame.header.header_length, 3);
  EXPECT_EQ(
      DecodeConnect(frame.header, std::span(bytes).subspan(frame.header.header_length), true)
          .violation(),
      Violation::kNonMinimalVariableByteInteger);
  const Bytes minimal = Cat({{0x10, static_cast<uint8_t>(body.size())}, body});
  const Frame minimal_frame = PeekFrame(minimal, test::kNoLimit);
  ASSERT_EQ(minimal_frame.status, FrameStatus::kComplete);
  EXPECT_TRUE(
      DecodeConnect(minimal_frame.header, std::span(minimal).subspan(2), true).ok());
}

TEST(Mqtt5Auth, AuthenticationDataWithoutMethod_3_15_2_2_3) {
  EXPECT_EQ(V5(test::MakePacket(0xF0, Cat({{0x18}, Props(Cat({{0x16}, Str("d")}))}))),
            Violation::kAuthenticationDataWithoutMethod);
}

// ---- Delivery fast path ----

TEST(Mqtt5Delivery, EditsForwardedPropertiesWithoutTouchingUserPropertyOrder_3_3_4) {
  const Bytes forwarded = Cat({{0x02, 0, 0, 0, 100},  // Message Expiry 100
                               UserProperty("u", "1"),
                               {0x23, 0x00, 0x05},  // publisher's Topic Alias
                               {0x03},
                               Str("json"),
                               UserProperty("u", "2")});
  ASSERT_EQ(ValidateProperties(forwarded, PacketBit(PacketType::kPublish)), Violation::kNone);
  const Bytes encoded_topic = Str("t/1");
  const Bytes payload = test::Raw("payload");
  PublishParts parts;
  parts.encoded_topic = encoded_topic;
  parts.payload = payload;
  parts.qos = QoS::k1;
  parts.packet_id = 77;
  const std::array<uint32_t, 2> identifiers = {7, 300};
  PublishPropertyEdits edits;
  edits.forwarded = forwarded;
  edits.subscription_identifiers = identifiers;
  edits.topic_alias = 3;
  edits.message_expiry_s = 40;
  Bytes out(EncodedPublishParts5Size(parts, edits));
  ASSERT_EQ(EncodePublishParts5(parts, edits, out), out.size());
  const Result<Packet> decoded = test::DecodeKept(out, k5);
  ASSERT_TRUE(decoded.ok()) << NameOf(decoded.violation());
  const Publish& publish = std::get<Publish>(decoded.value());
  EXPECT_EQ(publish.topic, "t/1");
  EXPECT_EQ(publish.packet_id, 77);
  EXPECT_EQ(publish.payload, "payload");
  const PropertyValues values = publish.properties.Values();
  EXPECT_EQ(values.message_expiry_interval_s, 40u);
  EXPECT_EQ(values.topic_alias, 3u);
  EXPECT_EQ(values.content_type, "json");
  EXPECT_EQ(values.subscription_identifier_count, 2u);
  std::vector<std::string> order;
  for (const Property property : publish.properties) {
    if (property.id == PropertyId::kUserProperty) {
      order.push_back(std::string(property.pair_value));
    } else if (property.id == PropertyId::kSubscriptionIdentifier) {
      order.push_back("sid" + std::to_string(property.integer));
    }
  }
  EXPECT_EQ(order, (std::vector<std::string>{"sid7", "sid300", "1", "2"}));
}

TEST(Mqtt5Delivery, UneditedBlockIsCopiedVerbatim) {
  const Bytes forwarded = Cat({UserProperty("a", "b"), {0x01, 0x01}});
  const Bytes encoded_topic = Str("t");
  const Bytes payload = test::Raw("x");
  PublishParts parts;
  parts.encoded_topic = encoded_topic;
  parts.payload = payload;
  PublishPropertyEdits edits;
  edits.forwarded = forwarded;
  Bytes out(EncodedPublishParts5Size(parts, edits));
  EncodePublishParts5(parts, edits, out);
  Publish publish;
  publish.topic = "t";
  publish.payload = "x";
  publish.properties = Properties(forwarded);
  EXPECT_EQ(out, test::Encoded(publish, k5));
}

// A will's properties forwarded as they are: Will Delay Interval is not a PUBLISH property
// (Table 2-4), so the delivery drops it and the subscriber gets a valid PUBLISH.
TEST(Mqtt5Delivery, WillPropertiesLoseWillDelayInterval) {
  const Bytes will_properties = {0x18, 0, 0, 0, 5, 0x01, 0x01};
  ASSERT_EQ(ValidateProperties(will_properties, kWillPropertiesBit), Violation::kNone);
  const Bytes encoded_topic = Str("w/t");
  const Bytes payload = test::Raw("bye");
  PublishParts parts;
  parts.encoded_topic = encoded_topic;
  parts.payload = payload;
  PublishPropertyEdits edits;
  edits.forwarded = will_properties;
  Bytes out(EncodedPublishParts5Size(parts, edits));
  EncodePublishParts5(parts, edits, out);
  const Result<Packet> decoded = test::DecodeKept(out, k5);
  ASSERT_TRUE(decoded.ok()) << NameOf(decoded.violation());
  const std::span<const uint8_t> kept = std::get<Publish>(decoded.value()).properties.raw();
  EXPECT_EQ(Bytes(kept.begin(), kept.end()), (Bytes{0x01, 0x01}));
}

// The largest PUBLISH a broker may accept (remaining length 268,435,455) needs at least one
// byte more as 5.0 (its Property Length): the size is 0, "do not send" (MQTT-3.1.2-25), not an
// abort. The 3.1.1 copy of the same message is the same size as received.
TEST(Mqtt5Delivery, PacketBeyondTheLargestRemainingLengthHasSizeZero_MQTT_3_1_2_25) {
  const size_t payload_size = kMaxRemainingLength - 3;  // topic "t": 2 + 1 bytes
  std::unique_ptr<uint8_t[]> payload(new uint8_t[payload_size]);  // never read
  const Bytes encoded_topic = Str("t");
  PublishParts parts;
  parts.encoded_topic = encoded_topic;
  parts.payload = std::span<const uint8_t>(payload.get(), payload_size);
  EXPECT_EQ(EncodedPublishPartsSize(parts), size_t{kMaxRemainingLength} + 5);
  PublishPropertyEdits edits;
  EXPECT_EQ(EncodedPublishParts5Size(parts, edits), 0u);
  const std::array<uint32_t, 1> identifiers = {1};
  edits.subscription_identifiers = identifiers;
  EXPECT_EQ(EncodedPublishParts5Size(parts, edits), 0u);
  parts.payload = parts.payload.first(payload_size - 1);  // room for the Property Length only
  edits.subscription_identifiers = {};
  EXPECT_EQ(EncodedPublishParts5Size(parts, edits), size_t{kMaxRemainingLength} + 5);
}

TEST(Mqtt5DeliveryDeathTest, SubscriptionIdentifierZeroIsAProgrammerError) {
  const Bytes encoded_topic = Str("t");
  PublishParts parts;
  parts.encoded_topic = encoded_topic;
  PublishPropertyEdits edits;
  const std::array<uint32_t, 1> identifiers = {0};
  edits.subscription_identifiers = identifiers;
  EXPECT_DEATH(EncodedPublishParts5Size(parts, edits), "assertion failed");
}

}  // namespace
}  // namespace ringmq::mqtt
