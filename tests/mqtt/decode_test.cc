// Decode: one test per rule, named after the rule it pins.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "codec_test_util.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace ringmq::mqtt {
namespace {

using std::string_literals::operator""s;
using test::Bytes;
using test::Cat;
using test::MakePacket;
using test::Raw;
using test::Str;
using test::U16;
using test::ViolationOf;

// CONNECT flags bits (§3.1.2.3).
constexpr uint8_t kClean = 0x02;
constexpr uint8_t kWill = 0x04;
constexpr uint8_t kWillQos1 = 0x08;
constexpr uint8_t kWillQos2 = 0x10;
constexpr uint8_t kWillRetain = 0x20;
constexpr uint8_t kPassword = 0x40;
constexpr uint8_t kUserName = 0x80;

Bytes Connect311(uint8_t flags, const Bytes& payload) {
  return MakePacket(0x10, Cat({Str("MQTT"), {4, flags}, U16(60), payload}));
}

Bytes Connect31(uint8_t flags, const Bytes& payload) {
  return MakePacket(0x10, Cat({Str("MQIsdp"), {3, flags}, U16(60), payload}));
}

Connect DecodeConnectOk(Bytes bytes) {
  const Result<Packet> result = test::DecodeKept(std::move(bytes));
  EXPECT_TRUE(result.ok()) << NameOf(result.violation());
  if (!result.ok() || !std::holds_alternative<Connect>(result.value())) {
    return {};
  }
  return std::get<Connect>(result.value());
}

TEST(ConnectDecode, MinimalMqtt311) {
  const Connect connect = DecodeConnectOk(Connect311(kClean, Str("client-1")));
  EXPECT_EQ(connect.protocol_name, "MQTT");
  EXPECT_EQ(connect.protocol_level, 4);
  EXPECT_TRUE(connect.level_supported);
  EXPECT_TRUE(connect.clean_session);
  EXPECT_EQ(connect.keepalive_s, 60);
  EXPECT_EQ(connect.client_id, "client-1");
  EXPECT_FALSE(connect.will.has_value());
  EXPECT_FALSE(connect.user_name.has_value());
  EXPECT_FALSE(connect.password.has_value());
}

TEST(ConnectDecode, MinimalMqtt31) {
  const Connect connect = DecodeConnectOk(Connect31(0, Str("c")));
  EXPECT_EQ(connect.protocol_name, "MQIsdp");
  EXPECT_EQ(connect.protocol_level, 3);
  EXPECT_TRUE(connect.level_supported);
  EXPECT_FALSE(connect.clean_session);
}

TEST(ConnectDecode, AllFieldsInOrder_MQTT_3_1_3_1) {
  const Connect connect = DecodeConnectOk(Connect311(
      kClean | kWill | kWillQos2 | kWillRetain | kUserName | kPassword,
      Cat({Str("id"), Str("will/t"), Str("w\0msg"s), Str("alice"), Str("\xFF\x00pw"s)})));
  EXPECT_EQ(connect.client_id, "id");
  ASSERT_TRUE(connect.will.has_value());
  EXPECT_EQ(connect.will->topic, "will/t");
  EXPECT_EQ(connect.will->payload, "w\0msg"s);  // binary: may hold U+0000
  EXPECT_EQ(connect.will->qos, QoS::k2);
  EXPECT_TRUE(connect.will->retain);
  EXPECT_EQ(connect.user_name, "alice");
  EXPECT_EQ(connect.password, "\xFF\x00pw"s);  // binary: need not be UTF-8
}

TEST(ConnectDecode, EmptyClientIdAcceptedForAdmissionToDecide_MQTT_3_1_3_6) {
  EXPECT_EQ(DecodeConnectOk(Connect311(kClean, Str(""))).client_id, "");
  EXPECT_EQ(ViolationOf(Connect311(0, Str(""))), Violation::kNone);
  EXPECT_EQ(ViolationOf(Connect31(kClean, Str(""))), Violation::kNone);
}

TEST(ConnectDecode, DecodeConnectEntryPointMatchesDecode) {
  const Bytes bytes = Connect311(kClean | kUserName, Cat({Str("x"), Str("u")}));
  const Frame frame = PeekFrame(bytes, test::kNoLimit);
  ASSERT_EQ(frame.status, FrameStatus::kComplete);
  const Result<Connect> connect =
      DecodeConnect(frame.header, std::span(bytes).subspan(frame.header.header_length));
  ASSERT_TRUE(connect.ok());
  EXPECT_EQ(Packet(connect.value()), test::DecodeWhole(bytes).value());
}

TEST(ConnectDecode, UnknownProtocolNameIsMalformed_MQTT_3_1_2_1) {
  for (const char* name : {"MQTX", "mqtt", "MQIsdP", "", "MQTTT", "MQT", "MQIsd"}) {
    const Bytes bytes = MakePacket(0x10, Cat({Str(name), {4, kClean}, U16(60), Str("c")}));
    EXPECT_EQ(ViolationOf(bytes), Violation::kBadProtocolName) << name;
  }
}

TEST(ConnectDecode, UnsupportedLevelStopsAfterLevelByte_MQTT_3_1_2_2) {
  struct Case {
    const char* name;
    uint8_t level;
  };
  for (const Case& c : {Case{"MQTT", 5}, Case{"MQTT", 6}, Case{"MQTT", 3}, Case{"MQIsdp", 4},
                        Case{"MQIsdp", 5}, Case{"MQTT", 0}, Case{"MQTT", 0x84}}) {
    // Whatever follows the level byte (MQTT 5 properties, garbage, nothing) is not looked at.
    for (const Bytes& rest : {Bytes{}, Bytes{0x01}, Cat({{0x02}, U16(60), {0x00}, Str("c")})}) {
      const Result<Packet> result =
          test::DecodeKept(MakePacket(0x10, Cat({Str(c.name), {c.level}, rest})));
      ASSERT_TRUE(result.ok()) << c.name << " " << int{c.level};
      const Connect& connect = std::get<Connect>(result.value());
      EXPECT_FALSE(connect.level_supported);
      EXPECT_EQ(connect.protocol_name, c.name);
      EXPECT_EQ(connect.protocol_level, c.level);
      EXPECT_EQ(connect.client_id, "");
      EXPECT_EQ(connect.keepalive_s, 0);
    }
  }
}

TEST(ConnectDecode, TruncatedProtocolNameOrLevel) {
  EXPECT_EQ(ViolationOf(MakePacket(0x10, {})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x10, {0x00})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x10, Cat({U16(4), Raw("MQT")}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x10, Str("MQTT"))), Violation::kTruncated);
}

TEST(ConnectDecode, TruncatedFlagsOrKeepalive) {
  EXPECT_EQ(ViolationOf(MakePacket(0x10, Cat({Str("MQTT"), {4}}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x10, Cat({Str("MQTT"), {4, kClean}}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x10, Cat({Str("MQTT"), {4, kClean, 0}}))),
            Violation::kTruncated);
}

TEST(ConnectDecode, FixedHeaderFlagsSetIsMalformed_MQTT_2_2_2_1) {
  EXPECT_EQ(ViolationOf(MakePacket(0x11, Cat({Str("MQTT"), {4, kClean}, U16(60), Str("c")}))),
            Violation::kBadFixedHeaderFlags);
  FixedHeader header{PacketType::kConnect, 0x01, 0, 2};
  EXPECT_EQ(DecodeConnect(header, {}).violation(), Violation::kBadFixedHeaderFlags);
  EXPECT_EQ(Decode(header, {}).violation(), Violation::kBadFixedHeaderFlags);
}

TEST(ConnectDecode, ReservedFlagSetIsMalformed_MQTT_3_1_2_3) {
  EXPECT_EQ(ViolationOf(Connect311(kClean | 0x01, Str("c"))), Violation::kConnectReservedFlag);
  EXPECT_EQ(ViolationOf(Connect31(0x01, Str("c"))), Violation::kConnectReservedFlag);
}

TEST(ConnectDecode, WillQosWithoutWillFlagIsMalformed_MQTT_3_1_2_13) {
  EXPECT_EQ(ViolationOf(Connect311(kWillQos1, Str("c"))), Violation::kWillFlagsWithoutWill);
  EXPECT_EQ(ViolationOf(Connect311(kWillQos2, Str("c"))), Violation::kWillFlagsWithoutWill);
  // QoS 3 without the will flag breaks -13 first.
  EXPECT_EQ(ViolationOf(Connect311(kWillQos1 | kWillQos2, Str("c"))),
            Violation::kWillFlagsWithoutWill);
}

TEST(ConnectDecode, WillRetainWithoutWillFlagIsMalformed_MQTT_3_1_2_15) {
  EXPECT_EQ(ViolationOf(Connect311(kWillRetain, Str("c"))), Violation::kWillFlagsWithoutWill);
}

TEST(ConnectDecode, WillQos3IsMalformed_MQTT_3_1_2_14) {
  const Bytes payload = Cat({Str("c"), Str("w"), Str("m")});
  EXPECT_EQ(ViolationOf(Connect311(kWill | kWillQos1 | kWillQos2, payload)),
            Violation::kWillQosInvalid);
  EXPECT_EQ(ViolationOf(Connect31(kWill | kWillQos1 | kWillQos2, payload)),
            Violation::kWillQosInvalid);
}

TEST(ConnectDecode, PasswordWithoutUserNameIsMalformed_MQTT_3_1_2_22) {
  const Bytes payload = Cat({Str("c"), Str("pw")});
  EXPECT_EQ(ViolationOf(Connect311(kPassword, payload)), Violation::kPasswordWithoutUserName);
}

TEST(ConnectDecode, PasswordWithoutUserNameIsMalformedInMqtt31Too_MQTT_3_1_2_22) {
  const Bytes payload = Cat({Str("c"), Str("pw")});
  EXPECT_EQ(ViolationOf(Connect31(kPassword, payload)), Violation::kPasswordWithoutUserName);
}

TEST(ConnectDecode, MissingClientIdIsMalformed_MQTT_3_1_3_3) {
  EXPECT_EQ(ViolationOf(Connect311(kClean, {})), Violation::kMissingClientId);
}

TEST(ConnectDecode, MissingWillTopicIsMalformed_MQTT_3_1_2_9) {
  EXPECT_EQ(ViolationOf(Connect311(kWill, Str("c"))), Violation::kMissingWillTopic);
}

TEST(ConnectDecode, MissingWillMessageIsMalformed_MQTT_3_1_2_9) {
  EXPECT_EQ(ViolationOf(Connect311(kWill, Cat({Str("c"), Str("w")}))),
            Violation::kMissingWillMessage);
}

TEST(ConnectDecode, MissingUserNameIsMalformed_MQTT_3_1_2_19) {
  EXPECT_EQ(ViolationOf(Connect311(kUserName, Str("c"))), Violation::kMissingUserName);
  EXPECT_EQ(ViolationOf(Connect311(kWill | kUserName, Cat({Str("c"), Str("w"), Str("m")}))),
            Violation::kMissingUserName);
}

TEST(ConnectDecode, MissingPasswordIsMalformed_MQTT_3_1_2_21) {
  EXPECT_EQ(ViolationOf(Connect311(kUserName | kPassword, Cat({Str("c"), Str("u")}))),
            Violation::kMissingPassword);
  EXPECT_EQ(ViolationOf(Connect31(kUserName | kPassword, Cat({Str("c"), Str("u")}))),
            Violation::kMissingPassword);
}

TEST(ConnectDecode, PartialFieldIsTruncatedNotMissing_MQTT_1_5_3) {
  // One byte of a length prefix, or a length that overruns the body.
  EXPECT_EQ(ViolationOf(Connect311(kClean, {0x00})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(Connect311(kClean, Cat({U16(5), Raw("abc")}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(Connect311(kWill, Cat({Str("c"), U16(3), Raw("a")}))),
            Violation::kTruncated);
  EXPECT_EQ(ViolationOf(Connect311(kWill, Cat({Str("c"), Str("w"), U16(9)}))),
            Violation::kTruncated);
  EXPECT_EQ(ViolationOf(Connect311(kUserName, Cat({Str("c"), {0x00}}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(Connect311(kUserName | kPassword, Cat({Str("c"), Str("u"), U16(1)}))),
            Violation::kTruncated);
}

TEST(ConnectDecode, BytesAfterLastFieldAreSurplus) {
  EXPECT_EQ(ViolationOf(Connect311(kClean, Cat({Str("c"), {0x00}}))), Violation::kSurplusBytes);
  // A user name the flags do not announce.
  EXPECT_EQ(ViolationOf(Connect311(kClean, Cat({Str("c"), Str("u")}))), Violation::kSurplusBytes);
  EXPECT_EQ(
      ViolationOf(Connect311(kUserName | kPassword, Cat({Str("c"), Str("u"), Str("p"), {0xFF}}))),
      Violation::kSurplusBytes);
}

TEST(ConnectDecode, ClientIdNotUtf8IsMalformed_MQTT_3_1_3_4) {
  EXPECT_EQ(ViolationOf(Connect311(kClean, Str("\xC0\x80"))), Violation::kInvalidUtf8);
  EXPECT_EQ(ViolationOf(Connect311(kClean, Str("\xED\xA0\x80"))), Violation::kInvalidUtf8);
  EXPECT_EQ(ViolationOf(Connect311(kClean, Str("ab\0"s))), Violation::kNullCharacter);
  EXPECT_EQ(ViolationOf(Connect311(kClean, Str("\xC3\xA9t\xC3\xA9"))), Violation::kNone);
}

TEST(ConnectDecode, WillTopicMustBeValidTopicName_MQTT_3_1_3_10) {
  for (const std::string& topic : {"a/+"s, "#"s, ""s, "\xC0\xAF"s, "a\0"s}) {
    EXPECT_EQ(ViolationOf(Connect311(kWill, Cat({Str("c"), Str(topic), Str("m")}))),
              Violation::kInvalidWillTopic)
        << topic;
  }
  std::string deep = "a";
  for (size_t i = 0; i < 200; ++i) {
    deep += "/a";
  }
  EXPECT_EQ(ViolationOf(Connect311(kWill, Cat({Str("c"), Str(deep), Str("m")}))),
            Violation::kInvalidWillTopic);
}

TEST(ConnectDecode, UserNameNotUtf8IsMalformed_MQTT_3_1_3_11) {
  EXPECT_EQ(ViolationOf(Connect311(kUserName, Cat({Str("c"), Str("\xFF")}))),
            Violation::kInvalidUtf8);
  EXPECT_EQ(ViolationOf(Connect311(kUserName, Cat({Str("c"), Str("u\0"s)}))),
            Violation::kNullCharacter);
}

TEST(ConnectDecode, EmptyWillMessageUserNameAndPasswordAccepted) {
  const Connect connect = DecodeConnectOk(Connect311(
      kWill | kUserName | kPassword, Cat({Str("c"), Str("w"), Str(""), Str(""), Str("")})));
  ASSERT_TRUE(connect.will.has_value());
  EXPECT_EQ(connect.will->payload, "");
  EXPECT_EQ(connect.user_name, "");
  EXPECT_EQ(connect.password, "");
}

Bytes ConnackBytes(uint8_t flags, uint8_t code) { return MakePacket(0x20, {flags, code}); }

TEST(ConnackDecode, AcceptedWithAndWithoutSessionPresent) {
  const Result<Packet> plain = test::DecodeWhole(ConnackBytes(0, 0));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(std::get<Connack>(plain.value()), (Connack{false, ConnackCode::kAccepted}));
  const Result<Packet> resumed = test::DecodeWhole(ConnackBytes(1, 0));
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(std::get<Connack>(resumed.value()), (Connack{true, ConnackCode::kAccepted}));
  for (uint8_t code = 1; code <= 5; ++code) {
    EXPECT_EQ(ViolationOf(ConnackBytes(0, code)), Violation::kNone);
  }
}

TEST(ConnackDecode, ReservedBitsSetIsMalformed_MQTT_3_2_2_1) {
  for (const uint8_t flags : {0x02, 0x80, 0xFE, 0xFF}) {
    EXPECT_EQ(ViolationOf(ConnackBytes(flags, 0)), Violation::kConnackReservedBits) << int{flags};
  }
}

TEST(ConnackDecode, ReturnCodeAbove5IsMalformed_MQTT_3_2_2_6) {
  for (const uint8_t code : {6, 0x7F, 0x80, 0xFF}) {
    EXPECT_EQ(ViolationOf(ConnackBytes(0, code)), Violation::kConnackBadReturnCode) << int{code};
  }
}

TEST(ConnackDecode, SessionPresentWithRefusalIsMalformed_MQTT_3_2_2_4) {
  EXPECT_EQ(ViolationOf(ConnackBytes(1, 1)), Violation::kConnackBadReturnCode);
  EXPECT_EQ(ViolationOf(ConnackBytes(1, 5)), Violation::kConnackBadReturnCode);
}

TEST(ConnackDecode, Mqtt31HasNoSessionPresentFlag) {
  EXPECT_EQ(ViolationOf(ConnackBytes(1, 0), ProtocolLevel::kMqtt31),
            Violation::kConnackReservedBits);
  EXPECT_EQ(ViolationOf(ConnackBytes(0, 2), ProtocolLevel::kMqtt31), Violation::kNone);
}

TEST(ConnackDecode, WrongLengthViaDecodeIsTruncatedOrSurplus) {
  const uint8_t body[3] = {0, 0, 0};
  EXPECT_EQ(Decode({PacketType::kConnack, 0, 1, 2}, std::span(body, 1)).violation(),
            Violation::kTruncated);
  EXPECT_EQ(Decode({PacketType::kConnack, 0, 3, 2}, std::span(body, 3)).violation(),
            Violation::kSurplusBytes);
}

Bytes PublishBytes(uint8_t first_byte, const Bytes& body) { return MakePacket(first_byte, body); }

Publish DecodePublishOk(Bytes bytes) {
  const Result<Packet> result = test::DecodeKept(std::move(bytes));
  EXPECT_TRUE(result.ok()) << NameOf(result.violation());
  if (!result.ok()) {
    return {};
  }
  return std::get<Publish>(result.value());
}

TEST(PublishDecode, Qos0HasNoPacketId) {
  const Publish publish = DecodePublishOk(PublishBytes(0x31, Cat({Str("a/b"), Raw("hello")})));
  EXPECT_EQ(publish.topic, "a/b");
  EXPECT_EQ(publish.payload, "hello");
  EXPECT_EQ(publish.qos, QoS::k0);
  EXPECT_TRUE(publish.retain);
  EXPECT_FALSE(publish.dup);
  EXPECT_EQ(publish.packet_id, 0);
}

TEST(PublishDecode, Qos1And2CarryPacketId) {
  const Publish q1 = DecodePublishOk(PublishBytes(0x3A, Cat({Str("t"), U16(0x1234), Raw("p")})));
  EXPECT_EQ(q1.qos, QoS::k1);
  EXPECT_TRUE(q1.dup);
  EXPECT_EQ(q1.packet_id, 0x1234);
  EXPECT_EQ(q1.payload, "p");
  const Publish q2 = DecodePublishOk(PublishBytes(0x34, Cat({Str("t"), U16(0xFFFF)})));
  EXPECT_EQ(q2.qos, QoS::k2);
  EXPECT_EQ(q2.packet_id, 0xFFFF);
}

TEST(PublishDecode, EmptyPayloadAccepted_MQTT_3_3_3) {
  EXPECT_EQ(DecodePublishOk(PublishBytes(0x30, Str("t"))).payload, "");
  EXPECT_EQ(DecodePublishOk(PublishBytes(0x33, Cat({Str("t"), U16(1)}))).payload, "");
}

TEST(PublishDecode, PayloadIsBinary) {
  const std::string payload = "\x00\xFF\xC0\x80"s;
  EXPECT_EQ(DecodePublishOk(PublishBytes(0x30, Cat({Str("t"), Raw(payload)}))).payload, payload);
}

TEST(PublishDecode, Qos3IsMalformed_MQTT_3_3_1_4) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x36, Cat({Str("t"), U16(1)}))), Violation::kPublishQos3);
  // Decode checks too, for headers that did not come from PeekFrame.
  const Bytes body = Cat({Str("t"), U16(1)});
  EXPECT_EQ(Decode({PacketType::kPublish, 0x06, 5, 2}, body).violation(), Violation::kPublishQos3);
}

TEST(PublishDecode, DupWithQos0IsMalformed_MQTT_3_3_1_2) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x38, Str("t"))), Violation::kPublishDupWithQos0);
  const Bytes body = Str("t");
  EXPECT_EQ(Decode({PacketType::kPublish, 0x08, 3, 2}, body).violation(),
            Violation::kPublishDupWithQos0);
}

TEST(PublishDecode, WildcardInTopicNameIsMalformed_MQTT_3_3_2_2) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, Str("a/+"))), Violation::kWildcardInTopicName);
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, Str("#"))), Violation::kWildcardInTopicName);
  EXPECT_EQ(ViolationOf(PublishBytes(0x32, Cat({Str("a#"), U16(1)}))),
            Violation::kWildcardInTopicName);
}

TEST(PublishDecode, EmptyTopicIsMalformed_MQTT_4_7_3_1) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, Cat({Str(""), Raw("payload")}))),
            Violation::kEmptyTopic);
}

TEST(PublishDecode, TopicNotUtf8IsMalformed_MQTT_1_5_3_1) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, Str("\xF4\x90\x80\x80"))), Violation::kInvalidUtf8);
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, Str("a\0b"s))), Violation::kNullCharacter);
}

TEST(PublishDecode, TooManyTopicLevelsRefused) {
  std::string topic = "a";
  for (size_t i = 0; i < kMaxTopicLevels; ++i) {
    topic += "/a";
  }
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, Str(topic))), Violation::kTooManyTopicLevels);
}

TEST(PublishDecode, PacketIdZeroIsMalformed_MQTT_2_3_1_1) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x32, Cat({Str("t"), U16(0)}))), Violation::kPacketIdZero);
  EXPECT_EQ(ViolationOf(PublishBytes(0x34, Cat({Str("t"), U16(0), Raw("x")}))),
            Violation::kPacketIdZero);
}

TEST(PublishDecode, MissingPacketIdIsTruncated) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x32, Str("t"))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(PublishBytes(0x32, Cat({Str("t"), {0x01}}))), Violation::kTruncated);
}

TEST(PublishDecode, TopicOverrunningBodyIsTruncated) {
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, {})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, {0x00})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(PublishBytes(0x30, Cat({U16(10), Raw("abc")}))), Violation::kTruncated);
}

struct AckType {
  uint8_t first_byte;
  PacketType type;
};

class AckDecode : public ::testing::TestWithParam<AckType> {};

TEST_P(AckDecode, CarriesPacketId) {
  const Result<Packet> result = test::DecodeKept(MakePacket(GetParam().first_byte, U16(0xBEEF)));
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(TypeOf(result.value()), GetParam().type);
  std::visit(
      [](const auto& packet) {
        if constexpr (requires { packet.packet_id; }) {
          EXPECT_EQ(packet.packet_id, 0xBEEF);
        }
      },
      result.value());
}

TEST_P(AckDecode, PacketIdZeroIsMalformed_MQTT_2_3_1_1) {
  EXPECT_EQ(ViolationOf(MakePacket(GetParam().first_byte, U16(0))), Violation::kPacketIdZero);
}

TEST_P(AckDecode, RemainingLengthOtherThan2IsMalformed) {
  EXPECT_EQ(ViolationOf(MakePacket(GetParam().first_byte, {})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(GetParam().first_byte, {0x01})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(GetParam().first_byte, {0x00, 0x01, 0x00})),
            Violation::kSurplusBytes);
  const uint8_t body[3] = {0x00, 0x01, 0x00};
  const uint8_t flags = GetParam().first_byte & 0x0F;
  EXPECT_EQ(Decode({GetParam().type, flags, 1, 2}, std::span(body, 1)).violation(),
            Violation::kTruncated);
  EXPECT_EQ(Decode({GetParam().type, flags, 3, 2}, std::span(body, 3)).violation(),
            Violation::kSurplusBytes);
}

INSTANTIATE_TEST_SUITE_P(AllAcks, AckDecode,
                         ::testing::Values(AckType{0x40, PacketType::kPuback},
                                           AckType{0x50, PacketType::kPubrec},
                                           AckType{0x62, PacketType::kPubrel},
                                           AckType{0x70, PacketType::kPubcomp},
                                           AckType{0xB0, PacketType::kUnsuback}));

TEST(SubscribeDecode, FiltersAndQosIterateInOrder) {
  const Result<Packet> result = test::DecodeKept(
      MakePacket(0x82, Cat({U16(10), Str("a/+/c"), {0}, Str("#"), {1}, Str("x"), {2}})));
  ASSERT_TRUE(result.ok());
  const Subscribe& subscribe = std::get<Subscribe>(result.value());
  EXPECT_EQ(subscribe.packet_id, 10);
  EXPECT_TRUE(subscribe.topics.has_qos());
  ASSERT_EQ(subscribe.topics.size(), 3u);
  const std::vector<TopicRequest> got(subscribe.topics.begin(), subscribe.topics.end());
  const std::vector<TopicRequest> want = {{"a/+/c", QoS::k0}, {"#", QoS::k1}, {"x", QoS::k2}};
  EXPECT_EQ(got, want);
}

TEST(SubscribeDecode, NoTopicFiltersIsMalformed_MQTT_3_8_3_3) {
  EXPECT_EQ(ViolationOf(MakePacket(0x82, U16(1))), Violation::kNoTopicFilters);
}

TEST(SubscribeDecode, PacketIdZeroIsMalformed_MQTT_2_3_1_1) {
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(0), Str("a"), {0}}))), Violation::kPacketIdZero);
}

TEST(SubscribeDecode, MissingPacketIdIsTruncated) {
  EXPECT_EQ(ViolationOf(MakePacket(0x82, {})), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x82, {0x01})), Violation::kTruncated);
}

TEST(SubscribeDecode, RequestedQosReservedBitsAreMalformed_MQTT_3_8_3_4) {
  for (const uint8_t qos : {0x03, 0x04, 0x80, 0xFC, 0xFF, 0x41}) {
    EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("a"), {qos}}))),
              Violation::kSubscribeReservedBits)
        << int{qos};
  }
  // Only the last entry is bad: every entry is checked.
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("a"), {1}, Str("b"), {3}}))),
            Violation::kSubscribeReservedBits);
}

TEST(SubscribeDecode, MissingRequestedQosIsTruncated) {
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("a")}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("a"), {0}, Str("b")}))),
            Violation::kTruncated);
}

TEST(SubscribeDecode, FilterOverrunningBodyIsTruncated) {
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), {0x00}}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), U16(5), Raw("ab")}))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("a"), {0}, {0x00}}))),
            Violation::kTruncated);
}

TEST(SubscribeDecode, InvalidFilterIsMalformed_MQTT_4_7_1_2_and_MQTT_4_7_1_3) {
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("a/#/b"), {0}}))),
            Violation::kBadMultiLevelWildcard);
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("a"), {0}, Str("a+"), {0}}))),
            Violation::kBadSingleLevelWildcard);
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str(""), {0}}))), Violation::kEmptyTopic);
  EXPECT_EQ(ViolationOf(MakePacket(0x82, Cat({U16(1), Str("\xC0\x80"), {0}}))),
            Violation::kInvalidUtf8);
}

TEST(UnsubscribeDecode, FiltersIterateInOrder) {
  const Result<Packet> result =
      test::DecodeKept(MakePacket(0xA2, Cat({U16(3), Str("a/+"), Str("#"), Str("/")})));
  ASSERT_TRUE(result.ok());
  const Unsubscribe& unsubscribe = std::get<Unsubscribe>(result.value());
  EXPECT_EQ(unsubscribe.packet_id, 3);
  EXPECT_FALSE(unsubscribe.topics.has_qos());
  const std::vector<TopicRequest> got(unsubscribe.topics.begin(), unsubscribe.topics.end());
  const std::vector<TopicRequest> want = {{"a/+", QoS::k0}, {"#", QoS::k0}, {"/", QoS::k0}};
  EXPECT_EQ(got, want);
}

TEST(UnsubscribeDecode, NoTopicFiltersIsMalformed_MQTT_3_10_3_2) {
  EXPECT_EQ(ViolationOf(MakePacket(0xA2, U16(1))), Violation::kNoTopicFilters);
}

TEST(UnsubscribeDecode, PacketIdZeroIsMalformed_MQTT_2_3_1_1) {
  EXPECT_EQ(ViolationOf(MakePacket(0xA2, Cat({U16(0), Str("a")}))), Violation::kPacketIdZero);
}

TEST(UnsubscribeDecode, InvalidFilterIsMalformed_MQTT_4_7_1_2) {
  EXPECT_EQ(ViolationOf(MakePacket(0xA2, Cat({U16(1), Str("a"), Str("#/a")}))),
            Violation::kBadMultiLevelWildcard);
  EXPECT_EQ(ViolationOf(MakePacket(0xA2, Cat({U16(1), Str("")}))), Violation::kEmptyTopic);
}

TEST(UnsubscribeDecode, FilterOverrunningBodyIsTruncated) {
  EXPECT_EQ(ViolationOf(MakePacket(0xA2, Cat({U16(1), Str("a"), {0x00}}))), Violation::kTruncated);
}

TEST(SubackDecode, ReturnCodesKeptInOrder) {
  const Result<Packet> result = test::DecodeKept(MakePacket(0x90, Cat({U16(7), {2, 0x80, 0, 1}})));
  ASSERT_TRUE(result.ok());
  const Suback& suback = std::get<Suback>(result.value());
  EXPECT_EQ(suback.packet_id, 7);
  EXPECT_EQ(Bytes(suback.return_codes.begin(), suback.return_codes.end()), (Bytes{2, 0x80, 0, 1}));
}

TEST(SubackDecode, BadReturnCodeIsMalformed_MQTT_3_9_3_2) {
  for (const uint8_t code : {0x03, 0x7F, 0x81, 0xFF}) {
    EXPECT_EQ(ViolationOf(MakePacket(0x90, Cat({U16(1), {0, code}}))),
              Violation::kSubackBadReturnCode)
        << int{code};
  }
}

TEST(SubackDecode, NoReturnCodesIsTruncated) {
  EXPECT_EQ(ViolationOf(MakePacket(0x90, U16(1))), Violation::kTruncated);
  EXPECT_EQ(ViolationOf(MakePacket(0x90, {0x01})), Violation::kTruncated);
}

TEST(SubackDecode, PacketIdZeroIsMalformed_MQTT_2_3_1_1) {
  EXPECT_EQ(ViolationOf(MakePacket(0x90, Cat({U16(0), {0}}))), Violation::kPacketIdZero);
}

TEST(EmptyBodyDecode, PingAndDisconnectHaveNoBody) {
  EXPECT_EQ(TypeOf(test::DecodeWhole(Bytes{0xC0, 0x00}).value()), PacketType::kPingreq);
  EXPECT_EQ(TypeOf(test::DecodeWhole(Bytes{0xD0, 0x00}).value()), PacketType::kPingresp);
  EXPECT_EQ(TypeOf(test::DecodeWhole(Bytes{0xE0, 0x00}).value()), PacketType::kDisconnect);
}

TEST(EmptyBodyDecode, BodyBytesAreSurplus) {
  const uint8_t body[1] = {0};
  for (const PacketType type :
       {PacketType::kPingreq, PacketType::kPingresp, PacketType::kDisconnect}) {
    EXPECT_EQ(Decode({type, 0, 1, 2}, body).violation(), Violation::kSurplusBytes);
    EXPECT_EQ(ViolationOf(MakePacket(static_cast<uint8_t>(static_cast<uint8_t>(type) << 4), {0})),
              Violation::kSurplusBytes);
  }
}

TEST(HeaderDecode, DecodeRechecksTypeAndFlags_MQTT_2_2_2_1) {
  EXPECT_EQ(Decode({static_cast<PacketType>(0), 0, 0, 2}, {}).violation(),
            Violation::kReservedPacketType);
  EXPECT_EQ(Decode({static_cast<PacketType>(15), 0, 0, 2}, {}).violation(),
            Violation::kReservedPacketType);
  EXPECT_EQ(Decode({PacketType::kPingreq, 0x01, 0, 2}, {}).violation(),
            Violation::kBadFixedHeaderFlags);
  const uint8_t body[2] = {0, 1};
  EXPECT_EQ(Decode({PacketType::kPubrel, 0x00, 2, 2}, body).violation(),
            Violation::kBadFixedHeaderFlags);
  EXPECT_EQ(Decode({PacketType::kPubrel, 0x12, 2, 2}, body).violation(),
            Violation::kBadFixedHeaderFlags);
}

}  // namespace
}  // namespace ringmq::mqtt
