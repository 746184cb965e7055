// Router tests of MQTT 5.0 deliveries (src/shard/router.h, session/session.h): the publisher's
// properties forwarded to 5.0 subscribers and not to 3.1.1 ones, subscription options (No
// Local, Retain As Published, Retain Handling, Subscription Identifier), Message Expiry, the
// client's Receive Maximum and Maximum Packet Size, will properties, and the 5.0 reason codes
// of SUBACK, UNSUBACK and PUBACK, and outbound Topic Aliases (5.0:3.3.2.3.4).
//
// Two shards run on the test's thread (router_harness.h); subscribers sit on the other shard
// than the publisher wherever it matters, so deliveries cross a mailbox (kHandle's options bit).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "router_harness.h"
#include "shard/router.h"

namespace ringmq::shard {
namespace {

using harness::Bytes;
using harness::Client;
using harness::RouterHarness;
constexpr auto kMqtt5 = mqtt::ProtocolLevel::kMqtt5;

Bytes Encode5(const mqtt::Packet& packet) {
  Bytes bytes(mqtt::EncodedSize(packet, kMqtt5));
  EXPECT_EQ(mqtt::Encode(packet, bytes, kMqtt5), bytes.size());
  return bytes;
}

// One property, encoded.
Bytes IntegerProperty(mqtt::PropertyId id, uint32_t value) {
  uint8_t scratch[16] = {};
  const size_t size = mqtt::EncodeIntegerProperty(id, value, scratch);
  return Bytes(scratch, scratch + size);
}
Bytes UserProperty(std::string_view name, std::string_view value) {
  uint8_t scratch[256] = {};
  const size_t size = mqtt::EncodeUserProperty(name, value, scratch);
  return Bytes(scratch, scratch + size);
}
Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

// The PUBLISHes a recording client read, decoded at its level.
std::vector<mqtt::Publish> Publishes(const Client& client) {
  std::vector<mqtt::Publish> publishes;
  for (const Bytes& bytes : client.recorded) {
    const mqtt::Frame frame =
        mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength, client.connection.level());
    EXPECT_EQ(frame.status, mqtt::FrameStatus::kComplete);
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, std::span<const uint8_t>(bytes).subspan(frame.header.header_length),
        client.connection.level());
    EXPECT_TRUE(packet.ok());
    if (packet.ok()) publishes.push_back(std::get<mqtt::Publish>(packet.value()));
  }
  return publishes;
}

std::vector<uint32_t> IdentifiersOf(const mqtt::Publish& publish) {
  std::vector<uint32_t> identifiers;
  for (const mqtt::Property property : publish.properties) {
    if (property.id == mqtt::PropertyId::kSubscriptionIdentifier) {
      identifiers.push_back(property.integer);
    }
  }
  std::sort(identifiers.begin(), identifiers.end());
  return identifiers;
}

struct SubscribeRequest {
  std::string_view filter;
  mqtt::QoS qos = mqtt::QoS::k1;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
};

class RouterMqtt5Test : public testing::Test {
 protected:
  void SetUp() override { SetLogLevel(LogLevel::kError); }
  void TearDown() override {
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  void Start(const Config& config = Config{}) {
    harness_ = std::make_unique<RouterHarness>(config, 2);
  }

  // A 5.0 client on `shard`, recording what it reads; `properties` go into its CONNECT.
  Client& Connect5(uint32_t shard, std::string_view base, std::span<const uint8_t> properties = {},
                   bool clean_start = true) {
    const std::string client_id = harness_->IdOn(shard, base);  // the packet views it
    mqtt::Connect connect = harness::ConnectPacket(client_id, clean_start);
    connect.protocol_level = static_cast<uint8_t>(kMqtt5);
    connect.properties = mqtt::Properties(properties);
    Client& client = harness_->Connect(connect);
    client.record = true;
    return client;
  }
  Client& Connect311(uint32_t shard, std::string_view base) {
    Client& client = harness_->Connect(harness_->IdOn(shard, base));
    client.record = true;
    return client;
  }

  // One SUBSCRIBE of `requests` (with `identifier` if not 0); returns the SUBACK's codes.
  std::vector<uint8_t> Subscribe(Client& client, std::vector<SubscribeRequest> requests,
                                 uint32_t identifier = 0) {
    std::vector<mqtt::TopicRequest> topics;
    for (const SubscribeRequest& request : requests) {
      topics.push_back(mqtt::TopicRequest{.filter = request.filter,
                                          .qos = request.qos,
                                          .no_local = request.no_local,
                                          .retain_as_published = request.retain_as_published,
                                          .retain_handling = request.retain_handling});
    }
    Bytes entries(mqtt::TopicListEncodedSize(topics, true));
    mqtt::EncodeTopicList(topics, true, entries);
    const Bytes properties =
        identifier == 0 ? Bytes{}
                        : IntegerProperty(mqtt::PropertyId::kSubscriptionIdentifier, identifier);
    harness_->shard(client.shard).router->RunJobs();  // a fresh filter budget
    harness_->Send(client, Encode5(mqtt::Subscribe{.packet_id = 1,
                                                   .topics = mqtt::TopicList(entries, true),
                                                   .properties = mqtt::Properties(properties)}));
    return ReadAck<mqtt::Suback>(client);
  }

  std::vector<uint8_t> Unsubscribe(Client& client, std::vector<std::string_view> filters) {
    std::vector<mqtt::TopicRequest> topics;
    for (std::string_view filter : filters) topics.push_back(mqtt::TopicRequest{.filter = filter});
    Bytes entries(mqtt::TopicListEncodedSize(topics, false));
    mqtt::EncodeTopicList(topics, false, entries);
    harness_->shard(client.shard).router->RunJobs();
    harness_->Send(client, Encode5(mqtt::Unsubscribe{.packet_id = 2,
                                                     .topics = mqtt::TopicList(entries, false)}));
    return ReadAck<mqtt::Unsuback>(client);
  }

  // The SUBACK or UNSUBACK the client's connection sends next: its reason codes.
  template <typename Ack>
  std::vector<uint8_t> ReadAck(Client& client) {
    const std::span<const uint8_t> bytes = client.connection.NextSend();
    const mqtt::Frame frame = mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength, kMqtt5);
    EXPECT_EQ(frame.status, mqtt::FrameStatus::kComplete);
    if (frame.status != mqtt::FrameStatus::kComplete) return {};
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, bytes.subspan(frame.header.header_length, frame.header.remaining_length),
        kMqtt5);
    EXPECT_TRUE(packet.ok());
    std::vector<uint8_t> codes;
    if (const Ack* ack = packet.ok() ? std::get_if<Ack>(&packet.value()) : nullptr) {
      if constexpr (std::is_same_v<Ack, mqtt::Suback>) {
        codes.assign(ack->return_codes.begin(), ack->return_codes.end());
      } else {
        codes.assign(ack->reason_codes.begin(), ack->reason_codes.end());
      }
    } else {
      ADD_FAILURE() << "not the expected ack";
    }
    client.connection.OnSent(frame.header.total_length());
    return codes;
  }

  void Publish5(Client& client, std::string_view topic, std::string_view payload,
                std::span<const uint8_t> properties = {}, mqtt::QoS qos = mqtt::QoS::k1,
                bool retain = false) {
    harness_->Send(client, Encode5(mqtt::Publish{
                               .topic = topic,
                               .payload = payload,
                               .qos = qos,
                               .retain = retain,
                               .packet_id = static_cast<uint16_t>(qos == mqtt::QoS::k0 ? 0 : 9),
                               .properties = mqtt::Properties(properties)}));
  }

  metrics::ShardCounters& counters(uint32_t shard) { return harness_->counters(shard); }

  std::unique_ptr<RouterHarness> harness_;
};

// ---- Properties ------------------------------------------------------------------------------

TEST_F(RouterMqtt5Test, PublisherPropertiesGoTo5SubscribersAndNotTo311Ones) {
  Start();
  Client& subscriber5 = Connect5(1, "sub5");
  Subscribe(subscriber5, {{.filter = "t/#"}});
  Client& subscriber311 = Connect311(1, "sub311");
  harness_->Subscribe(subscriber311, "t/#");
  Client& publisher = Connect5(0, "pub");
  const Bytes properties = Concat({UserProperty("k", "v"), UserProperty("k", "w")});
  Publish5(publisher, "t/x", "hello", properties);
  harness_->Settle();

  const std::vector<mqtt::Publish> got5 = Publishes(subscriber5);
  ASSERT_EQ(got5.size(), 1u);
  EXPECT_EQ(got5[0].payload, "hello");
  const std::span<const uint8_t> raw = got5[0].properties.raw();
  EXPECT_EQ(Bytes(raw.begin(), raw.end()), properties) << "forwarded unchanged, in order";
  const std::vector<mqtt::Publish> got311 = Publishes(subscriber311);
  ASSERT_EQ(got311.size(), 1u);
  EXPECT_TRUE(got311[0].properties.empty());
  EXPECT_EQ(counters(1).publish_sent_mqtt5.Load(), 1u);
}

TEST_F(RouterMqtt5Test, A5SubscriberOfA311PublisherGetsNoProperties) {
  Start();
  Client& subscriber = Connect5(1, "sub");
  Subscribe(subscriber, {{.filter = "t"}});
  Client& publisher = Connect311(0, "pub");
  harness_->Send(publisher, harness::PublishBytes("t", "x", mqtt::QoS::k1, 3));
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].properties.empty());
}

// ---- Subscription options --------------------------------------------------------------------

TEST_F(RouterMqtt5Test, NoLocalSkipsThePublishersOwnSession_MQTT5_3_8_3_3) {
  Start();
  Client& client = Connect5(0, "self");
  Subscribe(client, {{.filter = "chat/#", .no_local = true}});
  Client& other = Connect5(1, "other");
  Subscribe(other, {{.filter = "chat/#", .no_local = true}});
  Publish5(client, "chat/a", "mine");
  harness_->Settle();
  EXPECT_TRUE(Publishes(client).empty()) << "not to the publishing session";
  ASSERT_EQ(Publishes(other).size(), 1u) << "No Local is about the subscriber's own messages";
  EXPECT_EQ(counters(0).deliver_no_local.Load(), 1u);
  // The other client's message reaches the first one.
  Publish5(other, "chat/b", "theirs");
  harness_->Settle();
  EXPECT_EQ(Publishes(client).size(), 1u);
}

TEST_F(RouterMqtt5Test, NoLocalWithAnOverlappingPlainSubscriptionStillDelivers) {
  Start();
  Client& client = Connect5(0, "self");
  Subscribe(client, {{.filter = "chat/+", .qos = mqtt::QoS::k1, .no_local = true},
                     {.filter = "chat/#", .qos = mqtt::QoS::k0}});
  Publish5(client, "chat/a", "mine");
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(client);
  ASSERT_EQ(got.size(), 1u) << "through chat/#";
  EXPECT_EQ(got[0].qos, mqtt::QoS::k0) << "at chat/#'s QoS, not the No Local one's";
}

TEST_F(RouterMqtt5Test, RetainAsPublishedKeepsTheRetainFlagOnLiveDeliveries_MQTT5_3_3_1_12) {
  Start();
  Client& keep = Connect5(1, "keep");
  Subscribe(keep, {{.filter = "r", .retain_as_published = true}});
  Client& clear = Connect5(1, "clear");
  Subscribe(clear, {{.filter = "r"}});
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "r", "v", {}, mqtt::QoS::k1, /*retain=*/true);
  harness_->Settle();
  ASSERT_EQ(Publishes(keep).size(), 1u);
  EXPECT_TRUE(Publishes(keep)[0].retain) << "MQTT-3.3.1-12";
  ASSERT_EQ(Publishes(clear).size(), 1u);
  EXPECT_FALSE(Publishes(clear)[0].retain) << "MQTT-3.3.1-13";
}

TEST_F(RouterMqtt5Test, RetainHandlingZeroOneTwo_MQTT5_3_3_1_9_to_11) {
  Start();
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "r/1", "v", {}, mqtt::QoS::k1, /*retain=*/true);
  harness_->Settle();

  Client& handling0 = Connect5(1, "h0");
  Subscribe(handling0, {{.filter = "r/#", .retain_handling = 0}});
  Subscribe(handling0, {{.filter = "r/#", .retain_handling = 0}});
  Client& handling1 = Connect5(1, "h1");
  Subscribe(handling1, {{.filter = "r/#", .retain_handling = 1}});
  Subscribe(handling1, {{.filter = "r/#", .retain_handling = 1}});
  Client& handling2 = Connect5(1, "h2");
  Subscribe(handling2, {{.filter = "r/#", .retain_handling = 2}});
  harness_->Settle();
  EXPECT_EQ(Publishes(handling0).size(), 2u) << "0: at every SUBSCRIBE";
  EXPECT_EQ(Publishes(handling1).size(), 1u) << "1: only for the new subscription";
  EXPECT_EQ(Publishes(handling2).size(), 0u) << "2: never";
  ASSERT_FALSE(Publishes(handling0).empty());
  EXPECT_TRUE(Publishes(handling0)[0].retain);
}

TEST_F(RouterMqtt5Test, SubscriptionIdentifiersOfEveryMatchingSubscription_MQTT5_3_3_4_4) {
  Start();
  Client& subscriber = Connect5(1, "sub");
  Subscribe(subscriber, {{.filter = "a/+"}}, /*identifier=*/7);
  Subscribe(subscriber, {{.filter = "a/#"}}, /*identifier=*/200'000);
  Subscribe(subscriber, {{.filter = "a/b"}});  // none
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "a/b", "1");
  Publish5(publisher, "a/c/d", "2");
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 2u) << "one delivery per message, overlapping subscriptions merged";
  EXPECT_EQ(IdentifiersOf(got[0]), (std::vector<uint32_t>{7, 200'000}));
  EXPECT_EQ(IdentifiersOf(got[1]), (std::vector<uint32_t>{200'000}));
}

// A session with a plain subscription and a $share membership over the same topics gets each
// message once (the trie merges them); the shared subscription takes part only in the deliveries
// its group chose this session for (5.0 §4.8.2): its identifier is not sent otherwise.
TEST_F(RouterMqtt5Test, ASharedSubscriptionsIdentifierOnlyWhenItsGroupChoseTheSession) {
  Start();
  Client& subscriber = Connect5(1, "sub");
  Subscribe(subscriber, {{.filter = "jobs/#"}}, /*identifier=*/1);
  Subscribe(subscriber, {{.filter = "$share/g/jobs/#"}}, /*identifier=*/2);
  Client& member = Connect5(0, "member");
  Subscribe(member, {{.filter = "$share/g/jobs/#"}});
  Client& publisher = Connect5(0, "pub");
  for (int i = 0; i < 4; ++i) {
    Publish5(publisher, "jobs/" + std::to_string(i), "x");
    harness_->Settle();
  }
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 4u) << "every message through the plain subscription";
  size_t chosen = 0;
  for (const mqtt::Publish& publish : got) {
    const std::vector<uint32_t> identifiers = IdentifiersOf(publish);
    if (identifiers == std::vector<uint32_t>{1, 2}) {
      ++chosen;
    } else {
      EXPECT_EQ(identifiers, std::vector<uint32_t>{1});
    }
  }
  EXPECT_EQ(chosen, 2u) << "round robin: the group chose the session for half of them";
  EXPECT_EQ(Publishes(member).size(), 2u);
}

// No Local on a plain subscription still holds when the session is also a member of a group over
// the same topics: its own message reaches it only if the group chose it (5.0:MQTT-3.8.3-3).
TEST_F(RouterMqtt5Test, NoLocalHoldsBesideASharedMembershipTheGroupDidNotChoose) {
  Start();
  Client& subscriber = Connect5(1, "sub");
  Subscribe(subscriber, {{.filter = "jobs/#", .no_local = true}});
  Subscribe(subscriber, {{.filter = "$share/g/jobs/#"}});
  Client& member = Connect5(0, "member");
  Subscribe(member, {{.filter = "$share/g/jobs/#"}});
  for (int i = 0; i < 4; ++i) {
    Publish5(subscriber, "jobs/" + std::to_string(i), "x");
    harness_->Settle();
  }
  EXPECT_EQ(Publishes(subscriber).size(), 2u) << "only the messages its group gave it";
  EXPECT_EQ(Publishes(member).size(), 2u);
}

// A member whose subscription has delivery options (here a Subscription Identifier) and that
// leaves the group while a QoS 1 message chosen for it is still in the mailbox: the message goes
// to another member, as it does for a member without options, and is not lost.
TEST_F(RouterMqtt5Test, AMemberWithOptionsThatUnsubscribesPassesItsInTransitMessageOn) {
  Start();
  Client& leaver = Connect5(1, "leaver");
  Subscribe(leaver, {{.filter = "$share/g/jobs/#"}}, /*identifier=*/5);
  Client& member = Connect5(0, "member");
  Subscribe(member, {{.filter = "$share/g/jobs/#"}});
  Client& publisher = Connect5(0, "pub");
  // Round robin: one of the two for each member; the leaver's waits in shard 1's mailbox.
  Publish5(publisher, "jobs/1", "x");
  Publish5(publisher, "jobs/2", "x");
  EXPECT_EQ(Unsubscribe(leaver, {"$share/g/jobs/#"}), (std::vector<uint8_t>{0x00}));
  harness_->Settle();
  EXPECT_EQ(Publishes(leaver).size(), 0u);
  EXPECT_EQ(Publishes(member).size(), 2u) << "QoS 1 messages of a member that leaves are not lost";
}

// A 5.0 session with Clean Start 1 and a Session Expiry Interval outlives its connection
// (5.0:MQTT-3.1.2-23): while offline, its group memberships are flagged offline, so that the
// other shard's choice passes it over for a connected member.
TEST_F(RouterMqtt5Test, AnOfflineCleanStartMemberWithSessionExpiryIsSkipped) {
  Start();
  const Bytes expiry = IntegerProperty(mqtt::PropertyId::kSessionExpiryInterval, 60);
  Client& away = Connect5(1, "away", expiry, /*clean_start=*/true);
  Subscribe(away, {{.filter = "$share/g/jobs/#"}});
  Client& member = Connect5(0, "member");
  Subscribe(member, {{.filter = "$share/g/jobs/#"}});
  harness_->Drop(away);
  harness_->Settle();
  ASSERT_EQ(harness_->router(1).session_count(), 1u) << "the session stays, offline";
  Client& publisher = Connect5(0, "pub");
  for (int i = 0; i < 6; ++i) {
    Publish5(publisher, "jobs/" + std::to_string(i), "x");
    harness_->Settle();
  }
  EXPECT_EQ(Publishes(member).size(), 6u) << "the offline member was skipped";
  EXPECT_EQ(counters(1).gauges.queued_messages.Load(), 0);
}

TEST_F(RouterMqtt5Test, RetainedMessageOnSubscribeCarriesTheSubscriptionIdentifier) {
  Start();
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "r", "v", {}, mqtt::QoS::k1, /*retain=*/true);
  harness_->Settle();
  Client& subscriber = Connect5(1, "sub");
  Subscribe(subscriber, {{.filter = "r"}}, /*identifier=*/42);
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].retain);
  EXPECT_EQ(IdentifiersOf(got[0]), (std::vector<uint32_t>{42}));
}

// ---- Reason codes ----------------------------------------------------------------------------

TEST_F(RouterMqtt5Test, SubackQuotaExceededAndUnsubackNoSubscriptionExisted) {
  Config config;
  config.max_subscriptions_per_session = 2;
  Start(config);
  Client& client = Connect5(0, "c");
  EXPECT_EQ(Subscribe(client, {{.filter = "a", .qos = mqtt::QoS::k0},
                               {.filter = "b", .qos = mqtt::QoS::k2},
                               {.filter = "c", .qos = mqtt::QoS::k1}}),
            (std::vector<uint8_t>{0x00, 0x02, 0x97}));
  EXPECT_EQ(counters(0).subscribe_limit.Load(), 1u);
  EXPECT_EQ(Unsubscribe(client, {"a", "zzz"}), (std::vector<uint8_t>{0x00, 0x11}));
}

TEST_F(RouterMqtt5Test, ADeferredSubscribeKeepsItsOptionsIdentifierAndReasonCodes) {
  Config config;
  config.max_filters_per_iteration = 1;  // two filters: a FilterJob over two iterations
  config.max_subscriptions_per_session = 1;
  Start(config);
  Client& subscriber = Connect5(1, "sub");
  std::vector<mqtt::TopicRequest> topics = {
      {.filter = "a/#", .qos = mqtt::QoS::k1, .no_local = true},
      {.filter = "b/#", .qos = mqtt::QoS::k1}};
  Bytes entries(mqtt::TopicListEncodedSize(topics, true));
  mqtt::EncodeTopicList(topics, true, entries);
  const Bytes identifier = IntegerProperty(mqtt::PropertyId::kSubscriptionIdentifier, 77);
  Router& router = harness_->router(1);
  router.RunJobs();
  harness_->Send(subscriber, Encode5(mqtt::Subscribe{.packet_id = 1,
                                                     .topics = mqtt::TopicList(entries, true),
                                                     .properties = mqtt::Properties(identifier)}));
  EXPECT_TRUE(subscriber.connection.NextSend().empty()) << "deferred: no SUBACK yet";
  router.RunJobs();
  router.RunJobs();
  EXPECT_EQ(ReadAck<mqtt::Suback>(subscriber), (std::vector<uint8_t>{0x01, 0x97}));
  EXPECT_EQ(counters(1).subscribe_deferred.Load(), 1u);

  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "a/x", "1");
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(IdentifiersOf(got[0]), (std::vector<uint32_t>{77}));

  // A deferred UNSUBSCRIBE answers with its reason codes too.
  std::vector<mqtt::TopicRequest> filters = {{.filter = "a/#"}, {.filter = "b/#"}};
  Bytes unsubscribe_entries(mqtt::TopicListEncodedSize(filters, false));
  mqtt::EncodeTopicList(filters, false, unsubscribe_entries);
  router.RunJobs();
  harness_->Send(subscriber,
                 Encode5(mqtt::Unsubscribe{.packet_id = 2,
                                           .topics = mqtt::TopicList(unsubscribe_entries, false)}));
  router.RunJobs();
  router.RunJobs();
  EXPECT_EQ(ReadAck<mqtt::Unsuback>(subscriber), (std::vector<uint8_t>{0x00, 0x11}));
}

TEST_F(RouterMqtt5Test, ARefusingPubrecFreesTheInflightGauge) {
  Start();
  Client& subscriber = Connect5(1, "sub");
  subscriber.auto_ack = false;
  Subscribe(subscriber, {{.filter = "t", .qos = mqtt::QoS::k2}});
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "t", "x", {}, mqtt::QoS::k2);
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(counters(1).gauges.inflight_messages.Load(), 1);
  harness_->Send(subscriber,
                 Encode5(mqtt::Pubrec{got[0].packet_id, mqtt::ReasonCode::kUnspecifiedError}));
  EXPECT_EQ(counters(1).gauges.inflight_messages.Load(), 0);
  harness_->Settle();
  EXPECT_EQ(subscriber.Received(mqtt::PacketType::kPubrel), 0u) << "the flow ended at PUBREC";
}

TEST_F(RouterMqtt5Test, PubackNoMatchingSubscribers) {
  Start();
  Client& client = Connect5(0, "c");
  Publish5(client, "nobody/here", "x", {}, mqtt::QoS::k1);
  const std::span<const uint8_t> ack = client.connection.NextSend();
  EXPECT_EQ(Bytes(ack.begin(), ack.end()), (Bytes{0x40, 0x03, 0x00, 0x09, 0x10}));
  client.connection.OnSent(ack.size());
  // With a subscriber: the short success form.
  Subscribe(client, {{.filter = "nobody/#"}});
  Publish5(client, "nobody/here", "x", {}, mqtt::QoS::k1);
  const std::span<const uint8_t> success = client.connection.NextSend();
  EXPECT_EQ(Bytes(success.begin(), success.end()), (Bytes{0x40, 0x02, 0x00, 0x09}));
  client.connection.OnSent(success.size());
}

TEST_F(RouterMqtt5Test, Mqtt311AcksAreUnchanged) {
  Start();
  Client& client = Connect311(0, "c");
  harness_->Send(client, harness::PublishBytes("nobody", "x", mqtt::QoS::k1, 4));
  const std::span<const uint8_t> ack = client.connection.NextSend();
  EXPECT_EQ(Bytes(ack.begin(), ack.end()), (Bytes{0x40, 0x02, 0x00, 0x04}));
  client.connection.OnSent(ack.size());
}

// ---- Expiry and the client's limits ----------------------------------------------------------

TEST_F(RouterMqtt5Test, ExpiredQueuedMessagesAreNotSentAndTheRestGetTheTimeLeft) {
  Start();
  // A session that outlives its connection (5.0:3.1.2.11.2: without a Session Expiry Interval
  // it would end with it).
  const Bytes session_expiry = IntegerProperty(mqtt::PropertyId::kSessionExpiryInterval, 3600);
  Client& subscriber = Connect5(1, "sub", session_expiry, /*clean_start=*/false);
  Subscribe(subscriber, {{.filter = "t"}});
  const std::string id(subscriber.connection.client_id());
  harness_->Drop(subscriber);
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "t", "short", IntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 1));
  Publish5(publisher, "t", "long", IntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 10));
  Publish5(publisher, "t", "none");
  harness_->Settle();
  harness_->now_ms() += 2'000;
  mqtt::Connect connect = harness::ConnectPacket(id, /*clean_session=*/false);
  connect.protocol_level = static_cast<uint8_t>(kMqtt5);
  connect.properties = mqtt::Properties(session_expiry);
  Client& back = harness_->Connect(connect);
  back.record = true;
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(back);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload, "long");
  EXPECT_EQ(got[0].properties.Values().message_expiry_interval_s, 8u) << "MQTT-3.3.2-6";
  EXPECT_EQ(got[1].payload, "none");
  EXPECT_FALSE(got[1].properties.Values().message_expiry_interval_s.has_value());
  EXPECT_EQ(counters(1).messages_expired.Load(), 1u);
}

TEST_F(RouterMqtt5Test, MaxMessageExpiryLowersTheInterval) {
  Config config;
  config.max_message_expiry_s = 5;
  Start(config);
  Client& subscriber = Connect5(1, "sub");
  Subscribe(subscriber, {{.filter = "t"}});
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "t", "capped", IntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 60));
  Publish5(publisher, "t", "below", IntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 2));
  Publish5(publisher, "t", "none");
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].properties.Values().message_expiry_interval_s, 5u);
  EXPECT_EQ(got[1].properties.Values().message_expiry_interval_s, 2u);
  EXPECT_FALSE(got[2].properties.Values().message_expiry_interval_s.has_value())
      << "a message without an interval is not given one";
}

TEST_F(RouterMqtt5Test, ExpiredRetainedMessageIsNotSentOnSubscribe) {
  Start();
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "r", "v", IntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 1),
           mqtt::QoS::k1, /*retain=*/true);
  harness_->Settle();
  harness_->now_ms() += 1'000;
  Client& subscriber = Connect5(1, "sub");
  Subscribe(subscriber, {{.filter = "r"}});
  harness_->Settle();
  EXPECT_TRUE(Publishes(subscriber).empty());
  EXPECT_EQ(counters(1).messages_expired.Load(), 1u);
}

TEST_F(RouterMqtt5Test, ReceiveMaximumBoundsUnacknowledgedDeliveries_MQTT5_3_3_4_9) {
  Start();
  Client& subscriber = Connect5(1, "sub", IntegerProperty(mqtt::PropertyId::kReceiveMaximum, 2));
  subscriber.auto_ack = false;
  Subscribe(subscriber, {{.filter = "t"}});
  Client& publisher = Connect5(0, "pub");
  for (int i = 0; i < 5; ++i) Publish5(publisher, "t", "x");
  harness_->Settle();
  EXPECT_EQ(Publishes(subscriber).size(), 2u);
  ASSERT_EQ(subscriber.unacknowledged.size(), 2u);
  harness_->Send(subscriber, mqtt::Puback{subscriber.unacknowledged[0]});
  harness_->Settle();
  EXPECT_EQ(Publishes(subscriber).size(), 3u) << "one acknowledged: one more";
}

TEST_F(RouterMqtt5Test, TooLargeForTheClientIsNotSentAndCounted_MQTT5_3_1_2_25) {
  Start();
  Client& subscriber =
      Connect5(1, "sub", IntegerProperty(mqtt::PropertyId::kMaximumPacketSize, 64));
  Subscribe(subscriber, {{.filter = "t"}});
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "t", std::string(100, 'x'));
  Publish5(publisher, "t", "small");
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "small");
  EXPECT_EQ(counters(1).dropped_too_large_for_client.Load(), 1u);
  EXPECT_EQ(counters(1).gauges.inflight_messages.Load(), 0);
}

// ---- Will properties -------------------------------------------------------------------------

TEST_F(RouterMqtt5Test, WillPropertiesAreForwardedWithoutWillDelayInterval) {
  Start();
  Client& watcher = Connect5(1, "watcher");
  Subscribe(watcher, {{.filter = "will/#"}});
  const Bytes will_properties = Concat(
      {IntegerProperty(mqtt::PropertyId::kWillDelayInterval, 0), UserProperty("why", "gone")});
  const std::string client_id = harness_->IdOn(0, "dying");  // the packet views it
  mqtt::Connect connect = harness::ConnectPacket(client_id);
  connect.protocol_level = static_cast<uint8_t>(kMqtt5);
  connect.will = mqtt::Will{.topic = "will/x",
                            .payload = "bye",
                            .qos = mqtt::QoS::k1,
                            .properties = mqtt::Properties(will_properties)};
  Client& dying = harness_->Connect(connect);
  harness_->Drop(dying);
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(watcher);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "bye");
  const std::span<const uint8_t> raw = got[0].properties.raw();
  EXPECT_EQ(Bytes(raw.begin(), raw.end()), UserProperty("why", "gone"));
}

}  // namespace
}  // namespace ringmq::shard

// ---- Outbound topic aliases (5.0:3.3.2.3.4) --------------------------------------------------

namespace ringmq::shard {
namespace {

uint16_t AliasOf(const mqtt::Publish& publish) {
  return publish.properties.Values().topic_alias.value_or(0);
}

TEST_F(RouterMqtt5Test, OutboundTopicAliasesPerConnectionCappedByTheClient_MQTT5_3_3_2_11) {
  Config config;
  config.outbound_topic_aliases = 4;
  Start(config);
  Client& subscriber = Connect5(1, "sub", IntegerProperty(mqtt::PropertyId::kTopicAliasMaximum, 1));
  Subscribe(subscriber, {{.filter = "t/#"}});
  Client& subscriber311 = Connect311(1, "sub311");
  ASSERT_EQ(harness_->Subscribe(subscriber311, "t/#"), 1);
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "t/a", "1");
  Publish5(publisher, "t/a", "2");
  Publish5(publisher, "t/b", "3");
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].topic, "t/a");
  EXPECT_EQ(AliasOf(got[0]), 1);
  EXPECT_EQ(got[1].topic, "") << "the alias alone";
  EXPECT_EQ(AliasOf(got[1]), 1);
  EXPECT_EQ(got[2].topic, "t/b") << "no alias above the client's maximum";
  EXPECT_EQ(AliasOf(got[2]), 0);
  const std::vector<mqtt::Publish> got311 = Publishes(subscriber311);
  ASSERT_EQ(got311.size(), 3u);
  for (const mqtt::Publish& publish : got311) EXPECT_FALSE(publish.topic.empty());
  EXPECT_EQ(counters(1).topic_alias_out_set.Load(), 1u);
  EXPECT_EQ(counters(1).topic_alias_out_used.Load(), 1u);
  ASSERT_NE(subscriber.connection.outbound_topic_aliases(), nullptr);
  EXPECT_EQ(subscriber.connection.outbound_topic_aliases()->maximum(), 1);
  EXPECT_EQ(subscriber311.connection.outbound_topic_aliases(), nullptr);
  EXPECT_EQ(publisher.connection.outbound_topic_aliases(), nullptr)
      << "its CONNECT had no Topic Alias Maximum (5.0:MQTT-3.3.2-12)";
}

TEST_F(RouterMqtt5Test, OutboundTopicAliasesOffByDefault) {
  Start();
  Client& subscriber =
      Connect5(1, "sub", IntegerProperty(mqtt::PropertyId::kTopicAliasMaximum, 10));
  Subscribe(subscriber, {{.filter = "t"}});
  Client& publisher = Connect5(0, "pub");
  Publish5(publisher, "t", "1");
  Publish5(publisher, "t", "2");
  harness_->Settle();
  const std::vector<mqtt::Publish> got = Publishes(subscriber);
  ASSERT_EQ(got.size(), 2u);
  for (const mqtt::Publish& publish : got) {
    EXPECT_EQ(publish.topic, "t");
    EXPECT_EQ(AliasOf(publish), 0);
  }
  EXPECT_EQ(subscriber.connection.outbound_topic_aliases(), nullptr);
  EXPECT_EQ(counters(1).topic_alias_out_set.Load(), 0u);
}

}  // namespace
}  // namespace ringmq::shard
