// Session at MQTT 5.0: deliveries encoded with the publisher's properties and the per-subscriber
// edits, the Receive Maximum window (5.0:MQTT-3.3.4-9), the client's Maximum Packet Size
// (5.0:MQTT-3.1.2-25), Message Expiry (5.0:3.3.2.3.3, MQTT-3.3.2-6), Subscription Identifiers
// (5.0:MQTT-3.3.4-3..5), outbound Topic Aliases (5.0:3.3.2.3.4) and MatchDelivery (No
// Local, 5.0:MQTT-3.8.3-3). What WriteOutput puts on the wire is decoded back with the codec at
// level 5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_buffer.h"
#include "common/bytes.h"
#include "message/message.h"
#include "mqtt/codec.h"
#include "mqtt/outbound_topic_aliases.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "session/session.h"
#include "session_test_util.h"

namespace ringmq::session {
namespace {

using message::MessageRef;

using test::kDefaultLimits;  // session_test_util.h
using test::kMaxPacketSize;
using test::kNoLimit;
constexpr ClientTerms kMqtt5{.level = mqtt::ProtocolLevel::kMqtt5};

// A PUBLISH property block built with the codec's single-property encoders.
class Block {
 public:
  Block& Integer(mqtt::PropertyId id, uint32_t value) {
    return Append(mqtt::EncodeIntegerProperty(id, value, scratch_));
  }
  Block& String(mqtt::PropertyId id, std::string_view value) {
    return Append(mqtt::EncodeStringProperty(id, value, scratch_));
  }
  Block& User(std::string_view name, std::string_view value) {
    return Append(mqtt::EncodeUserProperty(name, value, scratch_));
  }
  std::span<const uint8_t> bytes() const { return bytes_; }

 private:
  Block& Append(size_t size) {
    bytes_.insert(bytes_.end(), scratch_, scratch_ + size);
    return *this;
  }

  uint8_t scratch_[256] = {};  // one property of a test
  std::vector<uint8_t> bytes_;
};

struct Decoded {
  ByteBuffer bytes;
  std::vector<mqtt::Publish> publishes;
  WriteCounts counts;
};

Decoded WriteDecoded(Session& session, uint64_t now_ms = 0, size_t max_bytes = kNoLimit,
                     mqtt::OutboundTopicAliases* aliases = nullptr) {
  Decoded decoded;
  session.WriteOutput(decoded.bytes, max_bytes, &decoded.counts, now_ms, aliases);
  std::span<const uint8_t> rest(decoded.bytes);
  while (!rest.empty()) {
    const mqtt::ProtocolLevel level = session.level();
    const mqtt::Frame frame = mqtt::PeekFrame(rest, kMaxPacketSize, level);
    EXPECT_EQ(frame.status, mqtt::FrameStatus::kComplete);
    if (frame.status != mqtt::FrameStatus::kComplete) break;
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, rest.subspan(frame.header.header_length, frame.header.remaining_length),
        level);
    EXPECT_TRUE(packet.ok()) << mqtt::NameOf(packet.violation());
    if (!packet.ok()) break;
    if (const auto* publish = std::get_if<mqtt::Publish>(&packet.value())) {
      decoded.publishes.push_back(*publish);
    }
    rest = rest.subspan(frame.header.total_length());
  }
  return decoded;
}

std::vector<mqtt::Property> PropertiesOf(const mqtt::Publish& publish) {
  return std::vector<mqtt::Property>(publish.properties.begin(), publish.properties.end());
}

std::vector<uint32_t> IdentifiersOf(const mqtt::Publish& publish) {
  std::vector<uint32_t> identifiers;
  for (const mqtt::Property property : publish.properties) {
    if (property.id == mqtt::PropertyId::kSubscriptionIdentifier) {
      identifiers.push_back(property.integer);
    }
  }
  return identifiers;
}

MessageRef NewMessage(std::string_view topic, std::span<const uint8_t> properties = {},
                      uint64_t expiry_deadline_ms = 0, uint8_t qos = 1, bool retain = false) {
  return MessageRef::Create(
      topic, AsBytes("payload"), qos, retain, {},
      message::Mqtt5Fields{.properties = properties, .expiry_deadline_ms = expiry_deadline_ms});
}

TEST(SessionMqtt5Test, PropertiesAreForwardedUnchangedToA5Subscriber) {
  Block block;
  block.String(mqtt::PropertyId::kContentType, "text/plain")
      .String(mqtt::PropertyId::kResponseTopic, "reply/here")
      .User("a", "1")
      .User("a", "2");
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  ASSERT_EQ(session.Enqueue(NewMessage("t", block.bytes()), 1, false), EnqueueResult::kQueued);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  EXPECT_EQ(written.publishes[0].topic, "t");
  EXPECT_EQ(written.publishes[0].payload, "payload");
  const std::span<const uint8_t> raw = written.publishes[0].properties.raw();
  EXPECT_EQ(std::vector<uint8_t>(raw.begin(), raw.end()),
            std::vector<uint8_t>(block.bytes().begin(), block.bytes().end()))
      << "same properties, same order (MQTT-3.3.2-17, -18)";
  EXPECT_EQ(written.counts.publishes_mqtt5, 1u);
  EXPECT_EQ(written.counts.publishes_by_qos[1], 1u);
}

TEST(SessionMqtt5Test, A311SubscriberGetsNoProperties) {
  Block block;
  block.User("k", "v");
  Session session("c", true, kDefaultLimits);
  session.Attach(true);  // 3.1.1
  session.Enqueue(NewMessage("t", block.bytes()), 1, false);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  EXPECT_TRUE(written.publishes[0].properties.empty());
  EXPECT_EQ(written.counts.publishes_mqtt5, 0u);
  // The 3.1.1 bytes: exactly what EncodePublishParts writes for the message without properties.
  const MessageRef plain = NewMessage("t");
  const mqtt::PublishParts parts{.encoded_topic = plain->encoded_topic(),
                                 .payload = plain->payload(),
                                 .qos = mqtt::QoS::k1,
                                 .packet_id = written.publishes[0].packet_id};
  EXPECT_EQ(written.bytes.size(), mqtt::EncodedPublishPartsSize(parts));
}

TEST(SessionMqtt5Test, A5SubscriberOfA311PublisherGetsNoProperties) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  session.Enqueue(NewMessage("t"), 0, false);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  EXPECT_TRUE(written.publishes[0].properties.empty());
}

TEST(SessionMqtt5Test, ReceiveMaximumBoundsTheInflightWindow_MQTT5_3_3_4_9) {
  Session session("c", false, kDefaultLimits);  // max_inflight 512
  session.Attach(false, ClientTerms{.level = mqtt::ProtocolLevel::kMqtt5, .receive_maximum = 2});
  EXPECT_EQ(session.window(), 2u);
  for (int i = 0; i < 5; ++i) session.Enqueue(NewMessage("t"), 1, false);
  Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 2u) << "no more than Receive Maximum unacknowledged";
  EXPECT_FALSE(session.has_output());
  EXPECT_TRUE(session.OnPuback(written.publishes[0].packet_id));
  written = WriteDecoded(session);
  EXPECT_EQ(written.publishes.size(), 1u) << "one acknowledged, one more goes";
  // A reconnect with another Receive Maximum takes the new one.
  session.Detach();
  session.Attach(false, ClientTerms{.level = mqtt::ProtocolLevel::kMqtt5, .receive_maximum = 10});
  written = WriteDecoded(session);
  EXPECT_EQ(written.publishes.size(), 4u) << "2 resent in flight + 2 queued";
}

TEST(SessionMqtt5Test, ARefusingPubrecEndsTheFlowAndFreesItsSlot_MQTT5_3_3_4_9) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true, ClientTerms{.level = mqtt::ProtocolLevel::kMqtt5, .receive_maximum = 1});
  session.Enqueue(NewMessage("a", {}, 0, 2), 2, false);
  session.Enqueue(NewMessage("b", {}, 0, 2), 2, false);
  Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  const uint16_t id = written.publishes[0].packet_id;
  EXPECT_FALSE(session.OnPubrecRefused(static_cast<uint16_t>(id + 1))) << "unknown id";
  EXPECT_TRUE(session.OnPubrecRefused(id));
  EXPECT_EQ(session.inflight(), 0u) << "no PUBREL, no PUBCOMP to wait for";
  written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u) << "the slot is free for the next one";
  EXPECT_EQ(written.publishes[0].topic, "b");
  EXPECT_TRUE(session.OnPubrec(written.publishes[0].packet_id));
  EXPECT_FALSE(session.OnPubrecRefused(written.publishes[0].packet_id))
      << "after a successful PUBREC the flow goes on to PUBCOMP";
}

TEST(SessionMqtt5Test, WindowIsMaxInflightWhenSmallerThanReceiveMaximum) {
  SessionLimits limits;
  limits.max_inflight = 3;
  Session session("c", true, limits);
  session.Attach(true, ClientTerms{.level = mqtt::ProtocolLevel::kMqtt5, .receive_maximum = 100});
  EXPECT_EQ(session.window(), 3u);
}

TEST(SessionMqtt5Test, TooLargeForTheClientIsDiscardedAsIfSent_MQTT5_3_1_2_25) {
  Session session("c", true, kDefaultLimits);
  const MessageRef big = MessageRef::Create("t", AsBytes(std::string(200, 'x')), 1, false);
  session.Attach(true,
                 ClientTerms{.level = mqtt::ProtocolLevel::kMqtt5, .maximum_packet_size = 100});
  session.Enqueue(MessageRef::Share(big.get()), 1, false);
  session.Enqueue(NewMessage("small"), 1, false);
  session.Enqueue(MessageRef::Share(big.get()), 0, false);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  EXPECT_EQ(written.publishes[0].topic, "small");
  EXPECT_EQ(written.publishes[0].packet_id, 1) << "the discarded one's id was not used";
  EXPECT_EQ(written.counts.too_large, 2u);
  EXPECT_EQ(session.inflight(), 1u) << "the discarded QoS 1 message holds no window slot";
  EXPECT_EQ(session.queued_messages(), 0u);
  EXPECT_EQ(session.queued_bytes(), 0u);
  EXPECT_EQ(big->references_for_testing(), 1u) << "the session let go of both copies";
}

TEST(SessionMqtt5Test, ExpiredMessagesAreNotSentAtAnyLevel) {
  for (const ClientTerms terms : {ClientTerms{}, kMqtt5}) {
    Session session("c", true, kDefaultLimits);
    session.Attach(true, terms);
    session.Enqueue(NewMessage("old", {}, /*expiry_deadline_ms=*/1000), 1, false);
    session.Enqueue(NewMessage("new", {}, /*expiry_deadline_ms=*/5000), 1, false);
    const Decoded written = WriteDecoded(session, /*now_ms=*/1000);
    ASSERT_EQ(written.publishes.size(), 1u);
    EXPECT_EQ(written.publishes[0].topic, "new");
    EXPECT_EQ(written.counts.expired, 1u);
    EXPECT_EQ(session.queued_bytes(), 0u);
  }
}

TEST(SessionMqtt5Test, RemainingExpiryIntervalIsForwarded_MQTT_3_3_2_6) {
  Block block;
  block.Integer(mqtt::PropertyId::kMessageExpiryInterval, 10).User("k", "v");
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  // Published at 0 with 10 s: 3.5 s later 6.5 s are left, sent as 7 (rounded up).
  session.Enqueue(NewMessage("t", block.bytes(), 10'000), 1, false);
  const Decoded written = WriteDecoded(session, 3'500);
  ASSERT_EQ(written.publishes.size(), 1u);
  const mqtt::PropertyValues values = written.publishes[0].properties.Values();
  ASSERT_TRUE(values.message_expiry_interval_s.has_value());
  EXPECT_EQ(*values.message_expiry_interval_s, 7u);
  EXPECT_EQ(values.user_property_count, 1u);
}

TEST(SessionMqtt5Test, AResendIsNotExpiredAndCarriesTheTimeLeft) {
  Block block;
  block.Integer(mqtt::PropertyId::kMessageExpiryInterval, 2);
  Session session("c", false, kDefaultLimits);
  session.Attach(false, kMqtt5);
  session.Enqueue(NewMessage("t", block.bytes(), 2'000), 1, false);
  ASSERT_EQ(WriteDecoded(session, 0).publishes.size(), 1u);
  session.Detach();
  session.Attach(false, kMqtt5);
  const Decoded resent = WriteDecoded(session, 5'000);
  ASSERT_EQ(resent.publishes.size(), 1u) << "its delivery had started: it completes";
  EXPECT_TRUE(resent.publishes[0].dup);
  EXPECT_EQ(resent.publishes[0].properties.Values().message_expiry_interval_s, 0u);
}

TEST(SessionMqtt5Test, SubscriptionIdentifiersOfEveryMatchingSubscription_MQTT5_3_3_4_3) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  session.AddSubscription("a/+", SubscriptionOptions{.identifier = 5, .qos = 1});
  session.AddSubscription("a/#", SubscriptionOptions{.identifier = 300, .qos = 0});
  session.AddSubscription("a/b", SubscriptionOptions{.qos = 1});  // no identifier
  session.AddSubscription("x/#", SubscriptionOptions{.identifier = 9, .qos = 1});
  session.Enqueue(NewMessage("a/b"), 1, false, kEnqueueIdentifiers);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  std::vector<uint32_t> identifiers = IdentifiersOf(written.publishes[0]);
  std::sort(identifiers.begin(), identifiers.end());
  EXPECT_EQ(identifiers, (std::vector<uint32_t>{5, 300}));
}

TEST(SessionMqtt5Test, NoLocalSubscriptionsAddNoIdentifierToTheSessionsOwnMessage) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  session.AddSubscription("a/+", SubscriptionOptions{.identifier = 5, .qos = 1, .no_local = true});
  session.AddSubscription("a/#", SubscriptionOptions{.identifier = 6, .qos = 1});
  session.Enqueue(NewMessage("a/b"), 1, false, kEnqueueIdentifiers | kEnqueueOwn);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  EXPECT_EQ(IdentifiersOf(written.publishes[0]), (std::vector<uint32_t>{6}));
}

TEST(SessionMqtt5Test, PublisherSubscriptionIdentifiersAndTopicAliasAreNotForwarded) {
  Block block;
  block.Integer(mqtt::PropertyId::kTopicAlias, 3).User("k", "v");
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  session.Enqueue(NewMessage("t", block.bytes()), 0, false);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  const std::vector<mqtt::Property> properties = PropertiesOf(written.publishes[0]);
  ASSERT_EQ(properties.size(), 1u);
  EXPECT_EQ(properties[0].id, mqtt::PropertyId::kUserProperty);
}

TEST(SessionMqtt5Test, MatchDeliveryAppliesNoLocalQosAndRetainAsPublished) {
  Session session("c", true, kDefaultLimits);
  session.AddSubscription("a/+", SubscriptionOptions{.qos = 2, .no_local = true});
  session.AddSubscription("a/#", SubscriptionOptions{.qos = 1, .retain_as_published = true});
  DeliveryMatch match = session.MatchDelivery("a/b", /*own=*/false, /*shared=*/false);
  EXPECT_TRUE(match.deliver);
  EXPECT_EQ(match.qos, 2);
  EXPECT_TRUE(match.retain_as_published);
  EXPECT_FALSE(match.identifiers);
  match = session.MatchDelivery("a/b", /*own=*/true, /*shared=*/false);
  EXPECT_TRUE(match.deliver) << "a/# has no No Local";
  EXPECT_EQ(match.qos, 1) << "the No Local subscription's QoS does not count";
  session.RemoveSubscription("a/#");
  EXPECT_FALSE(session.MatchDelivery("a/b", /*own=*/true, /*shared=*/false).deliver)
      << "5.0:MQTT-3.8.3-3";
  EXPECT_TRUE(session.MatchDelivery("a/b", /*own=*/false, /*shared=*/false).deliver);
  EXPECT_FALSE(session.MatchDelivery("b", /*own=*/false, /*shared=*/false).deliver);
}

TEST(SessionMqtt5Test, SharedSubscriptionsMatchByTheirFilter) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  session.AddSubscription("$share/group/a/+", SubscriptionOptions{.identifier = 3, .qos = 1});
  EXPECT_TRUE(session.MatchDelivery("a/b", false, /*shared=*/true).deliver);
  EXPECT_FALSE(session.MatchDelivery("group/a/b", false, /*shared=*/true).deliver);
  session.Enqueue(NewMessage("a/b"), 1, false, kEnqueueIdentifiers | kEnqueueShared);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  EXPECT_EQ(IdentifiersOf(written.publishes[0]), (std::vector<uint32_t>{3}));
}

// A delivery its group did not choose this session for came through a plain subscription: the
// shared ones neither match it nor give it their identifiers (5.0 §4.8.2).
TEST(SessionMqtt5Test, SharedSubscriptionsTakePartOnlyInSharedDeliveries) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  session.AddSubscription("$share/group/a/+", SubscriptionOptions{.identifier = 3, .qos = 2});
  session.AddSubscription("a/#", SubscriptionOptions{.identifier = 4, .qos = 0});
  const DeliveryMatch match = session.MatchDelivery("a/b", false, /*shared=*/false);
  EXPECT_TRUE(match.deliver);
  EXPECT_EQ(match.qos, 0) << "the membership's QoS does not count";
  session.Enqueue(NewMessage("a/b"), 0, false, kEnqueueIdentifiers);
  const Decoded written = WriteDecoded(session);
  ASSERT_EQ(written.publishes.size(), 1u);
  EXPECT_EQ(IdentifiersOf(written.publishes[0]), (std::vector<uint32_t>{4}));
}

TEST(SessionMqtt5Test, SubscriptionOptionsCostNoMapBytes) {
  // The map's slot holds the filter and the options: as large as a slot of filter -> QoS.
  EXPECT_EQ(sizeof(Session::Subscriptions::value_type),
            sizeof(std::pair<const std::string, uint8_t>));
}

}  // namespace
}  // namespace ringmq::session

namespace ringmq::session {
namespace {

uint16_t AliasOf(const mqtt::Publish& publish) {
  return publish.properties.Values().topic_alias.value_or(0);
}

TEST(SessionMqtt5Test, OutboundAliasFirstUseCarriesTheTopicThenOnlyTheAlias_MQTT5_3_3_2_10) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true, kMqtt5);
  mqtt::OutboundTopicAliases aliases(2);
  for (const std::string_view topic : {"a", "b", "a", "c", "b", "c"}) {
    ASSERT_EQ(session.Enqueue(NewMessage(topic, {}, 0, 0), 0, false), EnqueueResult::kQueued);
  }
  const Decoded written = WriteDecoded(session, 0, kNoLimit, &aliases);
  ASSERT_EQ(written.publishes.size(), 6u);
  const std::vector<std::pair<std::string, uint16_t>> expected = {{"a", 1}, {"b", 2}, {"", 1},
                                                                  {"c", 0}, {"", 2},  {"c", 0}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(written.publishes[i].topic, expected[i].first) << i;
    EXPECT_EQ(AliasOf(written.publishes[i]), expected[i].second)
        << i << ": no alias above the maximum (5.0:MQTT-3.3.2-11)";
  }
  EXPECT_EQ(written.counts.aliases_set, 2u);
  EXPECT_EQ(written.counts.aliases_used, 2u);
  EXPECT_EQ(aliases.size(), 2u);
  EXPECT_EQ(aliases.NextFree(), 0) << "the first topics keep their aliases";
}

TEST(SessionMqtt5Test, AResendOnANewConnectionCarriesItsTopicNotAnOldAlias) {
  Session session("c", false, kDefaultLimits);
  session.Attach(false, kMqtt5);
  mqtt::OutboundTopicAliases first(4);
  session.Enqueue(NewMessage("t"), 1, false);
  session.Enqueue(NewMessage("t"), 1, false);
  Decoded written = WriteDecoded(session, 0, kNoLimit, &first);
  ASSERT_EQ(written.publishes.size(), 2u);
  EXPECT_EQ(written.publishes[1].topic, "");
  EXPECT_EQ(AliasOf(written.publishes[1]), 1);
  session.Detach();
  session.Attach(false, kMqtt5);
  mqtt::OutboundTopicAliases second(4);  // the new connection's mapping starts empty
  written = WriteDecoded(session, 0, kNoLimit, &second);
  ASSERT_EQ(written.publishes.size(), 2u);
  EXPECT_TRUE(written.publishes[0].dup);
  EXPECT_EQ(written.publishes[0].topic, "t") << "an alias of the old connection is not valid";
  EXPECT_EQ(AliasOf(written.publishes[0]), 1);
  EXPECT_TRUE(written.publishes[1].dup);
  EXPECT_EQ(written.publishes[1].topic, "");
  EXPECT_EQ(AliasOf(written.publishes[1]), 1);
}

TEST(SessionMqtt5Test, ADiscardedPublishSetsNoAlias_MQTT5_3_1_2_25) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true,
                 ClientTerms{.level = mqtt::ProtocolLevel::kMqtt5, .maximum_packet_size = 20});
  mqtt::OutboundTopicAliases aliases(4);
  session.Enqueue(NewMessage("a/topic/longer/than/the/limit", {}, 0, 0), 0, false);
  const Decoded written = WriteDecoded(session, 0, kNoLimit, &aliases);
  EXPECT_TRUE(written.publishes.empty());
  EXPECT_EQ(written.counts.too_large, 1u);
  EXPECT_EQ(aliases.size(), 0u) << "the alias was never sent, so it is not set";
  EXPECT_EQ(written.counts.aliases_set, 0u);
}

TEST(SessionMqtt5Test, A311SessionIgnoresTheAliasTable) {
  Session session("c", true, kDefaultLimits);
  session.Attach(true);
  mqtt::OutboundTopicAliases aliases(4);
  session.Enqueue(NewMessage("t", {}, 0, 0), 0, false);
  session.Enqueue(NewMessage("t", {}, 0, 0), 0, false);
  const Decoded written = WriteDecoded(session, 0, kNoLimit, &aliases);
  ASSERT_EQ(written.publishes.size(), 2u);
  EXPECT_EQ(written.publishes[1].topic, "t");
  EXPECT_EQ(aliases.size(), 0u);
}

TEST(OutboundTopicAliasesTest, AssignsInOrderAndCountsItsMemory) {
  mqtt::OutboundTopicAliases aliases(2);
  const size_t empty_bytes = aliases.memory_bytes();
  EXPECT_EQ(aliases.NextFree(), 1);
  aliases.Assign(std::string(100, 'x'), 1);
  EXPECT_EQ(aliases.Find(std::string(100, 'x')), 1);
  EXPECT_EQ(aliases.Find("y"), 0);
  EXPECT_GE(aliases.memory_bytes(), empty_bytes + 100) << "charged to the memory budget";
  aliases.Assign("y", 2);
  EXPECT_EQ(aliases.NextFree(), 0);
  EXPECT_EQ(aliases.Find("y"), 2);
}

}  // namespace
}  // namespace ringmq::session
