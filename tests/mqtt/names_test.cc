// The violation table, packet names, and TopicList behaviour.
#include <gtest/gtest.h>

#include <set>
#include <string_view>
#include <vector>

#include "codec_test_util.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {
namespace {

constexpr Violation kAllViolations[] = {
#define RINGMQ_TEST_VIOLATION(name, rule, description) Violation::name,
    RINGMQ_MQTT_VIOLATIONS(RINGMQ_TEST_VIOLATION)
#undef RINGMQ_TEST_VIOLATION
};

TEST(DecodeViolationTable, NamesRulesAndDescriptionsComeFromTheTable) {
  EXPECT_EQ(NameOf(Violation::kNone), "None");
  EXPECT_EQ(NameOf(Violation::kConnectReservedFlag), "ConnectReservedFlag");
  EXPECT_EQ(RuleOf(Violation::kConnectReservedFlag), "MQTT-3.1.2-3");
  EXPECT_EQ(DescriptionOf(Violation::kPublishQos3), "PUBLISH QoS is 3");
  EXPECT_EQ(NameOf(Violation::kSubackBadReturnCode), "SubackBadReturnCode");
}

TEST(DecodeViolationTable, EveryViolationHasUniqueNameAndARule) {
  std::set<std::string_view> names;
  for (const Violation violation : kAllViolations) {
    EXPECT_TRUE(names.insert(NameOf(violation)).second) << NameOf(violation);
    EXPECT_FALSE(DescriptionOf(violation).empty());
    if (violation != Violation::kNone) {
      EXPECT_FALSE(RuleOf(violation).empty()) << NameOf(violation);
    }
  }
}

TEST(DecodePacketNames, EveryTypeNamed) {
  EXPECT_EQ(NameOf(PacketType::kConnect), "CONNECT");
  EXPECT_EQ(NameOf(PacketType::kPubrel), "PUBREL");
  EXPECT_EQ(NameOf(PacketType::kDisconnect), "DISCONNECT");
  std::set<std::string_view> names;
  for (uint8_t type = 1; type <= 14; ++type) {
    EXPECT_TRUE(names.insert(NameOf(static_cast<PacketType>(type))).second);
  }
  EXPECT_EQ(names.size(), 14u);
}

TEST(DecodePacketNames, VariantOrderMatchesTypeValues) {
  EXPECT_EQ(TypeOf(Connect{}), PacketType::kConnect);
  EXPECT_EQ(TypeOf(Suback{}), PacketType::kSuback);
  EXPECT_EQ(TypeOf(Disconnect{}), PacketType::kDisconnect);
}

TEST(TopicListIterate, EmptyListHasNoEntries) {
  const TopicList list;
  EXPECT_EQ(list.size(), 0u);
  EXPECT_TRUE(list.begin() == list.end());
}

TEST(TopicListIterate, PostIncrementAndEquality) {
  const std::vector<TopicRequest> requests = {{"a", QoS::k1}, {"b/c", QoS::k2}};
  test::Bytes bytes(TopicListEncodedSize(requests, true));
  EncodeTopicList(requests, true, bytes);
  const TopicList list(bytes, true);
  auto it = list.begin();
  EXPECT_EQ((*it++).filter, "a");
  EXPECT_EQ((*it).filter, "b/c");
  EXPECT_EQ((*it).qos, QoS::k2);
  ++it;
  EXPECT_TRUE(it == list.end());
  static_assert(std::forward_iterator<TopicList::Iterator>);
}

TEST(TopicListIterate, EqualityComparesContentNotAddress) {
  const test::Bytes a = {0x00, 0x01, 'x', 0x01};
  const test::Bytes b = a;
  const test::Bytes c = {0x00, 0x01, 'x', 0x02};
  EXPECT_EQ(TopicList(a, true), TopicList(b, true));
  EXPECT_NE(TopicList(a, true), TopicList(c, true));
  EXPECT_NE(TopicList(a, true), TopicList(a, false));
}

TEST(TopicListIterate, SubackEqualityComparesContent) {
  const test::Bytes a = {0, 1, 0x80};
  const test::Bytes b = a;
  EXPECT_EQ((Suback{1, a}), (Suback{1, b}));
  EXPECT_NE((Suback{2, a}), (Suback{1, b}));
  EXPECT_NE((Suback{1, a}), (Suback{1, std::span(b).first(2)}));
}

}  // namespace
}  // namespace ringmq::mqtt
