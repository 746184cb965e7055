// MQTT 5.0 properties (mqtt/properties.h) and reason codes (mqtt/reason_code.h): every row of
// both tables, valid, in a wrong packet, twice, truncated and out of range.
#include "mqtt/properties.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_util.h"
#include "mqtt/reason_code.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {
namespace {

using test::Bytes;
using test::Cat;
using test::Str;

Bytes Id(PropertyId id) { return {static_cast<uint8_t>(id)}; }

// A valid sample value of `info`'s type, inside every range §3 states.
Bytes SampleProperty(const PropertyInfo& info) {
  switch (info.type) {
    case PropertyType::kByte:
      return Cat({Id(info.id), {0x01}});
    case PropertyType::kTwoByteInteger:
      return Cat({Id(info.id), {0x00, 0x07}});
    case PropertyType::kFourByteInteger:
      return Cat({Id(info.id), {0x00, 0x01, 0x00, 0x07}});
    case PropertyType::kVariableByteInteger:
      return Cat({Id(info.id), {0x87, 0x01}});  // 135
    case PropertyType::kUtf8String:
      return Cat({Id(info.id), Str("t\xC3\xA9")});
    case PropertyType::kBinaryData:
      return Cat({Id(info.id), Str(std::string_view("\x00\xFF", 2))});
    case PropertyType::kUtf8StringPair:
      return Cat({Id(info.id), Str("key"), Str("value")});
  }
  return {};
}

// The scope bits: bit 0 is the will properties, bit n packet type n.
std::string ScopeName(unsigned bit) {
  return bit == 0 ? "will" : std::string(NameOf(static_cast<PacketType>(bit)));
}

TEST(PropertyTable, HasAll27IdentifiersOfTable2_4InOrder) {
  const std::vector<uint8_t> expected = {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13,
                                         0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1C, 0x1F, 0x21,
                                         0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A};
  std::vector<uint8_t> ids;
  for (const PropertyInfo& info : AllProperties()) {
    ids.push_back(static_cast<uint8_t>(info.id));
    EXPECT_EQ(FindProperty(static_cast<uint8_t>(info.id)), &info);
    EXPECT_FALSE(info.name.empty());
  }
  EXPECT_EQ(ids, expected);
  for (unsigned id = 0; id < 256; ++id) {
    const bool defined = std::find(expected.begin(), expected.end(), id) != expected.end();
    EXPECT_EQ(FindProperty(static_cast<uint8_t>(id)) != nullptr, defined) << id;
  }
  EXPECT_EQ(FindProperty(0x26)->name, "User Property");
  EXPECT_EQ(FindProperty(0x0B)->type, PropertyType::kVariableByteInteger);
}

class EveryProperty : public ::testing::TestWithParam<PropertyInfo> {};

// §2.2.2.2: a property outside its packets is a Malformed Packet.
TEST_P(EveryProperty, ValidOnlyInItsPackets_2_2_2_2) {
  const PropertyInfo& info = GetParam();
  const Bytes block = SampleProperty(info);
  for (unsigned bit = 0; bit <= 15; ++bit) {
    const auto where = static_cast<uint16_t>(1u << bit);
    const bool allowed = (info.allowed & where) != 0;
    EXPECT_EQ(ValidateProperties(block, where),
              allowed ? Violation::kNone : Violation::kPropertyNotAllowed)
        << info.name << " in " << ScopeName(bit);
  }
}

// "It is a Protocol Error to include X more than once", except User Property anywhere and
// Subscription Identifier in PUBLISH.
TEST_P(EveryProperty, TwiceIsProtocolErrorUnlessRepeatable) {
  const PropertyInfo& info = GetParam();
  const Bytes twice = Cat({SampleProperty(info), SampleProperty(info)});
  for (unsigned bit = 0; bit <= 15; ++bit) {
    const auto where = static_cast<uint16_t>(1u << bit);
    if ((info.allowed & where) == 0) {
      continue;
    }
    const bool repeatable = (info.repeatable & where) != 0;
    EXPECT_EQ(ValidateProperties(twice, where),
              repeatable ? Violation::kNone : Violation::kDuplicateProperty)
        << info.name << " in " << ScopeName(bit);
    EXPECT_EQ(repeatable, info.id == PropertyId::kUserProperty ||
                              (info.id == PropertyId::kSubscriptionIdentifier &&
                               bit == static_cast<unsigned>(PacketType::kPublish)));
  }
}

TEST_P(EveryProperty, EveryStrictPrefixIsTruncated) {
  const PropertyInfo& info = GetParam();
  const Bytes block = SampleProperty(info);
  for (size_t length = 1; length < block.size(); ++length) {
    EXPECT_EQ(ValidateProperties(std::span(block).first(length), info.allowed),
              Violation::kTruncated)
        << info.name << " cut at " << length;
  }
}

TEST_P(EveryProperty, IteratesFindsAndDecodesItsValue) {
  const PropertyInfo& info = GetParam();
  const Bytes& block = test::Keep(SampleProperty(info));
  ASSERT_EQ(ValidateProperties(block, info.allowed), Violation::kNone);
  const Properties properties(block);
  size_t count = 0;
  for (const Property property : properties) {
    ++count;
    EXPECT_EQ(property.id, info.id);
    switch (info.type) {
      case PropertyType::kByte:
        EXPECT_EQ(property.integer, 1u);
        break;
      case PropertyType::kTwoByteInteger:
        EXPECT_EQ(property.integer, 7u);
        break;
      case PropertyType::kFourByteInteger:
        EXPECT_EQ(property.integer, 0x10007u);
        break;
      case PropertyType::kVariableByteInteger:
        EXPECT_EQ(property.integer, 135u);
        break;
      case PropertyType::kUtf8String:
        EXPECT_EQ(property.text, "t\xC3\xA9");
        break;
      case PropertyType::kBinaryData:
        EXPECT_EQ(property.text, std::string_view("\x00\xFF", 2));
        break;
      case PropertyType::kUtf8StringPair:
        EXPECT_EQ(property.text, "key");
        EXPECT_EQ(property.pair_value, "value");
        break;
    }
  }
  EXPECT_EQ(count, 1u);
  ASSERT_TRUE(properties.Find(info.id).has_value());
  EXPECT_EQ(FirstPropertySize(block), block.size());
  // Values(): exactly one member set (or counted) per property.
  const PropertyValues values = properties.Values();
  const int set =
      values.payload_format_indicator.has_value() + values.message_expiry_interval_s.has_value() +
      values.content_type.has_value() + values.response_topic.has_value() +
      values.correlation_data.has_value() + values.subscription_identifier.has_value() +
      values.session_expiry_interval_s.has_value() + values.assigned_client_identifier.has_value() +
      values.server_keep_alive_s.has_value() + values.authentication_method.has_value() +
      values.authentication_data.has_value() + values.request_problem_information.has_value() +
      values.will_delay_interval_s.has_value() + values.request_response_information.has_value() +
      values.response_information.has_value() + values.server_reference.has_value() +
      values.reason_string.has_value() + values.receive_maximum.has_value() +
      values.topic_alias_maximum.has_value() + values.topic_alias.has_value() +
      values.maximum_qos.has_value() + values.retain_available.has_value() +
      values.maximum_packet_size.has_value() + values.wildcard_subscription_available.has_value() +
      values.subscription_identifier_available.has_value() +
      values.shared_subscription_available.has_value() +
      static_cast<int>(values.user_property_count);
  EXPECT_EQ(set, 1) << info.name;
}

TEST_P(EveryProperty, EncodersWriteWhatTheDecoderReads) {
  const PropertyInfo& info = GetParam();
  const Bytes sample = SampleProperty(info);
  Bytes out(sample.size());
  size_t written = 0;
  switch (info.type) {
    case PropertyType::kByte:
      written = EncodeIntegerProperty(info.id, 1, out);
      break;
    case PropertyType::kTwoByteInteger:
      written = EncodeIntegerProperty(info.id, 7, out);
      break;
    case PropertyType::kFourByteInteger:
      written = EncodeIntegerProperty(info.id, 0x10007, out);
      break;
    case PropertyType::kVariableByteInteger:
      EXPECT_EQ(IntegerPropertySize(info.id, 135), sample.size());
      written = EncodeIntegerProperty(info.id, 135, out);
      break;
    case PropertyType::kUtf8String:
      EXPECT_EQ(StringPropertySize(info.id, "t\xC3\xA9"), sample.size());
      written = EncodeStringProperty(info.id, "t\xC3\xA9", out);
      break;
    case PropertyType::kBinaryData:
      written = EncodeStringProperty(info.id, std::string_view("\x00\xFF", 2), out);
      break;
    case PropertyType::kUtf8StringPair:
      EXPECT_EQ(UserPropertySize("key", "value"), sample.size());
      written = EncodeUserProperty("key", "value", out);
      break;
  }
  EXPECT_EQ(written, sample.size());
  EXPECT_EQ(out, sample) << info.name;
}

INSTANTIATE_TEST_SUITE_P(Table2_4, EveryProperty,
                         ::testing::ValuesIn(AllProperties().begin(), AllProperties().end()),
                         [](const ::testing::TestParamInfo<PropertyInfo>& info) {
                           std::string name(info.param.name);
                           std::erase(name, ' ');
                           return name;
                         });

struct BadValue {
  const char* name;
  Bytes block;
  uint16_t where;
  Violation violation;
};

class PropertyValueRules : public ::testing::TestWithParam<BadValue> {};

TEST_P(PropertyValueRules, Refused) {
  EXPECT_EQ(ValidateProperties(GetParam().block, GetParam().where), GetParam().violation);
}

constexpr uint16_t kPublish = PacketBit(PacketType::kPublish);
constexpr uint16_t kConnect = PacketBit(PacketType::kConnect);
constexpr uint16_t kConnack = PacketBit(PacketType::kConnack);
constexpr uint16_t kSubscribe = PacketBit(PacketType::kSubscribe);

INSTANTIATE_TEST_SUITE_P(
    Rules, PropertyValueRules,
    ::testing::Values(
        BadValue{"PayloadFormatIndicator2_3_3_2_3_2",
                 {0x01, 0x02},
                 kPublish,
                 Violation::kPropertyNotZeroOrOne},
        BadValue{
            "RequestProblemInformation2", {0x17, 0x02}, kConnect, Violation::kPropertyNotZeroOrOne},
        BadValue{"RequestResponseInformation2",
                 {0x19, 0x02},
                 kConnect,
                 Violation::kPropertyNotZeroOrOne},
        BadValue{"MaximumQos2_3_2_2_3_4", {0x24, 0x02}, kConnack, Violation::kPropertyNotZeroOrOne},
        BadValue{"RetainAvailable2", {0x25, 0x02}, kConnack, Violation::kPropertyNotZeroOrOne},
        BadValue{"WildcardAvailable2", {0x28, 0x02}, kConnack, Violation::kPropertyNotZeroOrOne},
        BadValue{
            "SubscriptionIdAvailable2", {0x29, 0x02}, kConnack, Violation::kPropertyNotZeroOrOne},
        BadValue{"SharedAvailable2", {0x2A, 0x02}, kConnack, Violation::kPropertyNotZeroOrOne},
        BadValue{"ReceiveMaximumZero_3_1_2_11_3",
                 {0x21, 0x00, 0x00},
                 kConnect,
                 Violation::kReceiveMaximumZero},
        BadValue{"ReceiveMaximumZeroConnack",
                 {0x21, 0x00, 0x00},
                 kConnack,
                 Violation::kReceiveMaximumZero},
        BadValue{"MaximumPacketSizeZero_3_1_2_11_4",
                 {0x27, 0, 0, 0, 0},
                 kConnect,
                 Violation::kMaximumPacketSizeZero},
        BadValue{"SubscriptionIdentifierZero_3_8_2_1_2",
                 {0x0B, 0x00},
                 kSubscribe,
                 Violation::kSubscriptionIdentifierZero},
        BadValue{"TopicAliasZero_MQTT_3_3_2_8",
                 {0x23, 0x00, 0x00},
                 kPublish,
                 Violation::kTopicAliasZero},
        BadValue{"NonMinimalVbi_MQTT_1_5_5_1",
                 {0x0B, 0x81, 0x00},
                 kSubscribe,
                 Violation::kNonMinimalVariableByteInteger},
        BadValue{"VbiFiveBytes_1_5_5",
                 {0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},
                 kSubscribe,
                 Violation::kVariableByteIntegerTooLong},
        BadValue{"InvalidUtf8_MQTT_1_5_4_1", Cat({{0x03}, Str("\xC0\x80")}), kPublish,
                 Violation::kPropertyInvalidUtf8},
        BadValue{"Surrogate_MQTT_1_5_4_1", Cat({{0x03}, Str("\xED\xA0\x80")}), kPublish,
                 Violation::kPropertyInvalidUtf8},
        BadValue{"NullCharacter_MQTT_1_5_4_2", Cat({{0x1F}, Str(std::string_view("a\0b", 3))}),
                 kConnack, Violation::kPropertyNullCharacter},
        BadValue{"UserPropertyValueInvalidUtf8", Cat({{0x26}, Str("k"), Str("\xFF")}), kPublish,
                 Violation::kPropertyInvalidUtf8},
        BadValue{"UnknownId0", {0x00, 0x00}, kPublish, Violation::kUnknownProperty},
        BadValue{"UnknownId4", {0x04, 0x00}, kPublish, Violation::kUnknownProperty},
        BadValue{"UnknownId2B", {0x2B, 0x00}, kPublish, Violation::kUnknownProperty},
        BadValue{"MultiByteIdentifier", {0x81, 0x00, 0x00}, kPublish, Violation::kUnknownProperty},
        BadValue{"ResponseTopicWildcard_MQTT_3_3_2_14", Cat({{0x08}, Str("reply/+")}), kPublish,
                 Violation::kResponseTopicWildcard},
        BadValue{"WillResponseTopicWildcard_MQTT_3_3_2_14", Cat({{0x08}, Str("#")}),
                 kWillPropertiesBit, Violation::kResponseTopicWildcard},
        BadValue{"StringLengthOverrun", {0x03, 0x00, 0x05, 'a'}, kPublish, Violation::kTruncated}),
    [](const ::testing::TestParamInfo<BadValue>& info) { return std::string(info.param.name); });

// Binary data has no UTF-8 rule: Correlation Data may hold any bytes, U+0000 included.
TEST(PropertyValueRules, BinaryDataIsNotUtf8Checked) {
  EXPECT_EQ(ValidateProperties(Cat({{0x09}, Str(std::string_view("\xFF\x00", 2))}), kPublish),
            Violation::kNone);
}

TEST(PropertyValueRules, UpperBoundsAccepted) {
  EXPECT_EQ(ValidateProperties(Bytes{0x0B, 0xFF, 0xFF, 0xFF, 0x7F}, kSubscribe), Violation::kNone);
  EXPECT_EQ(ValidateProperties(Bytes{0x21, 0xFF, 0xFF, 0x27, 0xFF, 0xFF, 0xFF, 0xFF}, kConnect),
            Violation::kNone);
  EXPECT_EQ(ValidateProperties(Bytes{}, kConnect), Violation::kNone);
}

TEST(PropertyValues, RepeatedUserPropertiesKeepOrderAndSubscriptionIdsCount) {
  const Bytes& block = test::Keep(
      Cat({{0x26}, Str("a"), Str("1"), {0x0B, 0x05}, {0x26}, Str("a"), Str("2"), {0x0B, 0x09}}));
  ASSERT_EQ(ValidateProperties(block, kPublish), Violation::kNone);
  const Properties properties(block);
  std::vector<std::string> users;
  std::vector<uint32_t> identifiers;
  for (const Property property : properties) {
    if (property.id == PropertyId::kUserProperty) {
      users.push_back(std::string(property.text) + "=" + std::string(property.pair_value));
    } else if (property.id == PropertyId::kSubscriptionIdentifier) {
      identifiers.push_back(property.integer);
    }
  }
  EXPECT_EQ(users, (std::vector<std::string>{"a=1", "a=2"}));
  EXPECT_EQ(identifiers, (std::vector<uint32_t>{5, 9}));
  const PropertyValues values = properties.Values();
  EXPECT_EQ(values.user_property_count, 2u);
  EXPECT_EQ(values.subscription_identifier_count, 2u);
  EXPECT_EQ(values.subscription_identifier, 5u);
}

TEST(VariableByteInteger, RoundTripsAtEveryWidthBoundary) {
  for (const uint32_t value :
       {0u, 127u, 128u, 16'383u, 16'384u, 2'097'151u, 2'097'152u, kMaxVariableByteInteger}) {
    Bytes out(4);
    const size_t written = EncodeVariableByteInteger(value, out);
    EXPECT_EQ(written, VariableByteIntegerSize(value));
    size_t position = 0;
    uint32_t decoded = 0;
    EXPECT_EQ(ReadVariableByteInteger(std::span(out).first(written), position, decoded),
              Violation::kNone);
    EXPECT_EQ(decoded, value);
    EXPECT_EQ(position, written);
  }
}

// ---- Reason codes (§2.4) ----

TEST(ReasonCodeTable, Has45RowsAndNamesDependOnThePacket) {
  EXPECT_EQ(AllReasonCodes().size(), 45u);
  EXPECT_EQ(NameOf(ReasonCode::kSuccess, PacketType::kPuback), "Success");
  EXPECT_EQ(NameOf(ReasonCode::kNormalDisconnection, PacketType::kDisconnect),
            "Normal disconnection");
  EXPECT_EQ(NameOf(ReasonCode::kGrantedQos0, PacketType::kSuback), "Granted QoS 0");
  EXPECT_EQ(NameOf(ReasonCode::kPacketIdentifierNotFound, PacketType::kPubrel),
            "Packet Identifier not found");
  EXPECT_EQ(NameOf(ReasonCode::kPacketIdentifierNotFound, PacketType::kPuback), "");
  EXPECT_EQ(NameOf(ReasonCode::kContinueAuthentication, PacketType::kAuth),
            "Continue authentication");
  std::set<std::string_view> names;
  for (const ReasonCodeInfo& info : AllReasonCodes()) {
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_NE(info.packets, 0);
    for (unsigned bit = 0; bit <= 15; ++bit) {
      const auto type = static_cast<PacketType>(bit);
      if ((info.packets & (1u << bit)) != 0) {
        EXPECT_TRUE(IsReasonCodeAllowed(info.value, type));
        EXPECT_EQ(NameOf(static_cast<ReasonCode>(info.value), type), info.name);
      }
    }
  }
}

TEST(ReasonCodeTable, OnlyAckLikePacketsCarryReasonCodes) {
  for (unsigned code = 0; code < 256; ++code) {
    for (const PacketType type :
         {PacketType::kConnect, PacketType::kPublish, PacketType::kSubscribe,
          PacketType::kUnsubscribe, PacketType::kPingreq, PacketType::kPingresp}) {
      EXPECT_FALSE(IsReasonCodeAllowed(static_cast<uint8_t>(code), type));
    }
  }
  // Codes the table does not define are allowed nowhere.
  for (const uint8_t code : {0x03, 0x05, 0x12, 0x7F, 0xA3, 0xFF}) {
    for (unsigned type = 1; type <= 15; ++type) {
      EXPECT_FALSE(IsReasonCodeAllowed(code, static_cast<PacketType>(type)));
    }
  }
}

TEST(ReasonCodeOfViolation, MalformedProtocolErrorOrTooLarge_4_13) {
  EXPECT_EQ(ReasonCodeOf(Violation::kTruncated), ReasonCode::kMalformedPacket);
  EXPECT_EQ(ReasonCodeOf(Violation::kUnknownProperty), ReasonCode::kMalformedPacket);
  EXPECT_EQ(ReasonCodeOf(Violation::kPropertyNotAllowed), ReasonCode::kMalformedPacket);
  EXPECT_EQ(ReasonCodeOf(Violation::kDuplicateProperty), ReasonCode::kProtocolError);
  EXPECT_EQ(ReasonCodeOf(Violation::kReceiveMaximumZero), ReasonCode::kProtocolError);
  EXPECT_EQ(ReasonCodeOf(Violation::kNoLocalOnSharedSubscription), ReasonCode::kProtocolError);
  EXPECT_EQ(ReasonCodeOf(Violation::kTopicAliasZero), ReasonCode::kTopicAliasInvalid);
  EXPECT_EQ(ReasonCodeOf(Violation::kPacketTooLarge), ReasonCode::kPacketTooLarge);
}

TEST(ViolationRules, Mqtt5RowsNameA5Rule) {
  for (const Violation violation :
       {Violation::kNonMinimalVariableByteInteger, Violation::kPropertyInvalidUtf8,
        Violation::kUnknownProperty, Violation::kDuplicateProperty, Violation::kBadReasonCode,
        Violation::kSubscribeOptionsReserved, Violation::kNoLocalOnSharedSubscription}) {
    EXPECT_TRUE(RuleOf(violation).starts_with("5.0:")) << NameOf(violation);
  }
  EXPECT_EQ(RuleOf(Violation::kSubscribeOptionsReserved), "5.0:MQTT-3.8.3-5");
}

}  // namespace
}  // namespace ringmq::mqtt
