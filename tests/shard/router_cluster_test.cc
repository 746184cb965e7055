// Router's cluster hooks (router.h, "Cluster over NATS") through the sans-IO harness: each
// shard's router gets a real NatsLink, brought to kReady with a server's bytes, and the test
// reads what the link would send and feeds it what NATS would deliver.
#include <gtest/gtest.h>
#include <time.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/nats_link.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "shard/cluster_harness.h"
#include "shard/router_harness.h"

namespace ringmq::shard {
namespace {

uint64_t WallClockMicros() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

using harness::Client;

class RouterClusterTest : public harness::ClusterRouterTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(AddShards({.max_payload = 1024})); }

  void Unsubscribe(Client& client, std::string_view filter) {
    const mqtt::TopicRequest topic{.filter = filter};
    const std::span<const mqtt::TopicRequest> topics(&topic, 1);
    harness::Bytes entries(mqtt::TopicListEncodedSize(topics, false));
    mqtt::EncodeTopicList(topics, false, entries);
    harness_->router(client.shard).RunJobs();
    harness_->Send(client,
                   mqtt::Unsubscribe{.packet_id = 2, .topics = mqtt::TopicList(entries, false)});
    harness_->Settle();
  }
};

TEST_F(RouterClusterTest, SubscribeAndUnsubscribeChangeTheLinksInterest) {
  Client& client = harness_->Connect(harness_->IdOn(0, "sub"));
  harness_->Subscribe(client, "a/#", mqtt::QoS::k1);
  EXPECT_EQ(Output(0), "SUB a.> 1\r\nSUB a 2\r\n");
  EXPECT_EQ(harness_->counters(0).gauges.cluster_nats_subscriptions.Load(), 2);
  harness_->Subscribe(client, "a/#", mqtt::QoS::k0);  // replaced: the same interest
  harness_->Subscribe(client, "$share/g/x", mqtt::QoS::k0);
  harness_->Subscribe(client, "$SYS/#", mqtt::QoS::k0);
  EXPECT_EQ(Output(0), "") << "not carried across nodes";
  Client& other = harness_->Connect(harness_->IdOn(0, "other"));
  harness_->Subscribe(other, "a", mqtt::QoS::k0);
  EXPECT_EQ(Output(0), "") << "subject a is held already";
  EXPECT_EQ(Output(1), "") << "shard 1 has no session with it";
  Unsubscribe(client, "a/#");  // a.> goes, a stays for `other`
  EXPECT_EQ(Output(0), "UNSUB 1\r\n");
  harness_->Subscribe(client, "b/+", mqtt::QoS::k0);
  EXPECT_EQ(Output(0), "SUB b.* 3\r\n");
  harness_->Drop(client);  // its session ends
  EXPECT_EQ(Output(0), "UNSUB 3\r\n");
  harness_->Drop(other);
  EXPECT_EQ(Output(0), "UNSUB 2\r\n");
  EXPECT_EQ(harness_->counters(0).gauges.cluster_nats_subscriptions.Load(), 0);
}

TEST_F(RouterClusterTest, PublishGoesOnceToNatsFromThePublishersShard) {
  Client& sub = harness_->Connect(harness_->IdOn(0, "sub"));
  harness_->Subscribe(sub, "t/#", mqtt::QoS::k1);
  Output(0);
  Client& pub = harness_->Connect(harness_->IdOn(1, "pub"));
  const uint64_t before_us = WallClockMicros();
  harness_->Send(pub, harness::PublishBytes("t/x", "hello", mqtt::QoS::k1, 5));
  harness_->Send(pub, harness::PublishBytes("$SYS/x", "no", mqtt::QoS::k0));
  harness_->Send(pub, harness::PublishBytes("$x/y", "no", mqtt::QoS::k0));
  harness_->Send(pub, harness::PublishBytes("a b", "uncarried", mqtt::QoS::k0));
  harness_->Settle();
  EXPECT_EQ(sub.publishes_by_qos[1], 1u) << "local delivery as usual";
  EXPECT_EQ(Output(0), "") << "the subscriber's shard publishes nothing";
  // Ringmq-Sent-At: the publishing node's wall clock in microseconds, when it forwarded.
  const std::string output = Output(1);
  const size_t at = output.find("Ringmq-Sent-At: ");
  ASSERT_NE(at, std::string::npos) << output;
  const std::string sent_at = output.substr(at + 16, output.find('\r', at) - at - 16);
  EXPECT_GE(std::stoull(sent_at), before_us);
  EXPECT_LE(std::stoull(sent_at), WallClockMicros());
  const std::string block =
      "NATS/1.0\r\nRingmq-Node: node-a\r\nRingmq-Qos: 1\r\n"
      "Ringmq-Retain: 0\r\nRingmq-Sent-At: " + sent_at + "\r\n\r\n";
  EXPECT_EQ(output, "HPUB t.x " + std::to_string(block.size()) + " " +
                        std::to_string(block.size() + 5) + "\r\n" + block + "hello\r\n");
  EXPECT_EQ(harness_->counters(1).cluster_messages_out.Load(), 1u);
  EXPECT_EQ(harness_->counters(1).cluster_bytes_out.Load(), 5u);
  EXPECT_EQ(harness_->counters(1).cluster_uncarried_topics.Load(), 1u);
  // Over the server's max_payload (INFO: 1024): refused by the link, counted, still local.
  harness_->Send(pub, harness::PublishBytes("t/big", std::string(1100, 'x'), mqtt::QoS::k0));
  harness_->Settle();
  EXPECT_EQ(harness_->counters(1).cluster_publish_refused.Load(), 1u);
  EXPECT_EQ(Output(1), "");
  EXPECT_EQ(sub.publishes_by_qos[0], 1u);
}

TEST_F(RouterClusterTest, RemoteMessagesReachThisShardsSessionsOnce) {
  Client& sub = harness_->Connect(harness_->IdOn(0, "sub"));
  sub.record = true;
  harness_->Subscribe(sub, "r/#", mqtt::QoS::k1);  // sids 1 (r.>) and 2 (r)
  harness_->Subscribe(sub, "r/b", mqtt::QoS::k1);  // sid 3
  Client& elsewhere = harness_->Connect(harness_->IdOn(1, "elsewhere"));
  harness_->Subscribe(elsewhere, "r/#", mqtt::QoS::k1);
  // A NATS application's message (no headers): QoS 0, delivered once for two matching sids.
  Deliver(0, "MSG r.b 1 3\r\nabc\r\nMSG r.b 3 3\r\nabc\r\n");
  EXPECT_EQ(sub.publishes_by_qos[0], 1u);
  EXPECT_EQ(harness_->counters(0).cluster_overlap_dropped.Load(), 1u);
  EXPECT_EQ(elsewhere.publishes_by_qos[0], 0u) << "shard 1 hears it from its own link";
  // Another node's QoS 2 message: min(2, subscription QoS 1), RETAIN 0 though published so.
  Deliver(0, Hmsg("r", 2, "Ringmq-Node: node-b\r\nRingmq-Qos: 2\r\nRingmq-Retain: 1\r\n", "q"));
  EXPECT_EQ(sub.publishes_by_qos[1], 1u);
  ASSERT_EQ(sub.recorded.size(), 2u);
  EXPECT_EQ(sub.recorded[1][0], 0x32) << "PUBLISH, QoS 1, RETAIN 0 (MQTT-3.3.1-9)";
  // This node's own message, from another shard's link: dropped.
  Deliver(0, Hmsg("r.c", 1, "Ringmq-Node: node-a\r\nRingmq-Qos: 0\r\n", "echo"));
  EXPECT_EQ(harness_->counters(0).cluster_echoes_dropped.Load(), 1u);
  // Headers of a NATS application, without ours; spaces around values; a status line.
  Deliver(0, Hmsg("r.d", 1, "X-Other: 1\r\nRingmq-Qos:  1 \r\n", "h"));
  Deliver(0, "HMSG r.e 1 16 17\r\nNATS/1.0 503\r\n\r\nh\r\n");
  EXPECT_EQ(sub.publishes_by_qos[1], 2u);
  EXPECT_EQ(sub.publishes_by_qos[0], 2u);
  // A subject no MQTT topic has, and a '$' topic from a NATS application: dropped.
  harness_->Subscribe(sub, "#", mqtt::QoS::k0);  // sid 4: >
  Deliver(0, "MSG q.a/b 4 1\r\nz\r\nMSG $SYS.x 4 1\r\nz\r\n");
  EXPECT_EQ(harness_->counters(0).cluster_unmappable_subjects.Load(), 2u);
  EXPECT_EQ(sub.recorded.size(), 4u);
  EXPECT_EQ(harness_->counters(0).cluster_messages_in.Load(), 4u);
  EXPECT_EQ(harness_->counters(0).cluster_bytes_in.Load(), 6u);
  EXPECT_TRUE(links_[0]->ready()) << "every frame above was well formed";
  EXPECT_EQ(harness_->counters(0).cluster_hop_sum_us.Load(), 0u) << "no Ringmq-Sent-At yet";
}

// The hop from another node's PUBLISH (Ringmq-Sent-At, its wall clock in microseconds) to the
// delivery here; a clock ahead of ours counts as 0, a header that is no number is not counted.
TEST_F(RouterClusterTest, ReceivedMessagesObserveTheHop) {
  Client& sub = harness_->Connect(harness_->IdOn(0, "sub"));
  harness_->Subscribe(sub, "h/x", mqtt::QoS::k0);  // sid 1
  const uint64_t sent = WallClockMicros() - 3'000;  // 3 ms ago
  Deliver(0, Hmsg("h.x", 1, "Ringmq-Node: node-b\r\nRingmq-Sent-At: " + std::to_string(sent) +
                               "\r\n", "a"));
  Deliver(0, Hmsg("h.x", 1, "Ringmq-Node: node-b\r\nRingmq-Sent-At: " +
                               std::to_string(WallClockMicros() + 60'000'000) + "\r\n", "b"));
  Deliver(0, Hmsg("h.x", 1, "Ringmq-Node: node-b\r\nRingmq-Sent-At: soon\r\n", "c"));
  EXPECT_EQ(sub.publishes_by_qos[0], 3u);
  const metrics::ShardCounters& counters = harness_->counters(0);
  uint64_t observed = 0;
  for (const metrics::Counter& bucket : counters.cluster_hop) observed += bucket.Load();
  EXPECT_EQ(observed, 2u);
  EXPECT_EQ(counters.cluster_hop[0].Load(), 1u) << "the clock ahead: 0";
  // 3 ms (or a little more on a slow machine): (2.5 ms, 5 ms] or a later bucket.
  uint64_t at_least_3ms = 0;
  for (size_t i = 5; i < counters.cluster_hop.size(); ++i) {
    at_least_3ms += counters.cluster_hop[i].Load();
  }
  EXPECT_EQ(at_least_3ms, 1u);
  EXPECT_GE(counters.cluster_hop_sum_us.Load(), 3'000u);
  EXPECT_LT(counters.cluster_hop_sum_us.Load(), 1'000'000u);
}


// ---- MQTT 5.0 properties across nodes (cluster/mqtt5_headers.h; props lane) -----------------

harness::Bytes EncodeCluster5(const mqtt::Packet& packet) {
  harness::Bytes bytes(mqtt::EncodedSize(packet, mqtt::ProtocolLevel::kMqtt5));
  EXPECT_EQ(mqtt::Encode(packet, bytes, mqtt::ProtocolLevel::kMqtt5), bytes.size());
  return bytes;
}

TEST_F(RouterClusterTest, Mqtt5PropertiesGoAsHeadersAndTheExpiryLeft_MQTT_3_3_2_6) {
  const std::string id = harness_->IdOn(1, "pub5");  // the Connect keeps a view of it
  mqtt::Connect connect = harness::ConnectPacket(id);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& pub = harness_->Connect(connect);
  uint8_t properties[64];
  size_t size = 0;
  const auto tail = [&] { return std::span<uint8_t>(properties).subspan(size); };
  size += mqtt::EncodeIntegerProperty(mqtt::PropertyId::kPayloadFormatIndicator, 1, tail());
  size += mqtt::EncodeIntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 30, tail());
  size += mqtt::EncodeUserProperty("k", "v", tail());
  size += mqtt::EncodeUserProperty("l", "a\r\nb", tail());
  harness_->Send(pub,
                 EncodeCluster5(mqtt::Publish{
                     .topic = "p/x",
                     .payload = "m",
                     .qos = mqtt::QoS::k1,
                     .packet_id = 3,
                     .properties = mqtt::Properties(std::span<const uint8_t>(properties, size))}));
  harness_->Settle();
  const std::string out = Output(1);
  EXPECT_NE(out.find("\r\nRingmq-Payload-Format: 1\r\n"), std::string::npos) << out;
  // The harness clock stands still: all 30 s are left (MQTT-3.3.2-6).
  EXPECT_NE(out.find("\r\nRingmq-Message-Expiry-Ms: 30000\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nk: v\r\nRingmq-User-Property: bA==,YQ0KYg==\r\n"), std::string::npos)
      << "in order, native where it can be";
}

TEST_F(RouterClusterTest, ReceivedPropertiesReachA5SubscriberWithThisNodesIdentifiers) {
  const std::string id = harness_->IdOn(0, "sub5");  // the Connect keeps a view of it
  mqtt::Connect connect = harness::ConnectPacket(id);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& sub = harness_->Connect(connect);
  sub.record = true;
  harness_->Subscribe5(sub, mqtt::TopicRequest{.filter = "p/#", .qos = mqtt::QoS::k1}, 5);
  EXPECT_EQ(Output(0), "SUB p.> 1\r\nSUB p 2\r\n");
  // Another node's message: its properties (a Topic Alias or Subscription Identifier could not
  // be written as headers at all), and a NATS-reserved field that is no property.
  Deliver(0, Hmsg("p.y", 1,
                  "Ringmq-Node: node-b\r\nRingmq-Qos: 1\r\nRingmq-Message-Expiry-Ms: 2500\r\n"
                  "Ringmq-Content-Type: text/plain\r\nTrace: 1\r\nNats-Msg-Id: 9\r\n"
                  "Ringmq-User-Property: bA==,YQ0KYg==\r\nRingmq-Response-Topic: bad/#\r\n",
                  "m"));
  const std::vector<mqtt::Publish> got = harness::Publishes5(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "m");
  std::vector<std::pair<std::string_view, std::string_view>> users;
  std::vector<uint32_t> identifiers;
  for (const mqtt::Property property : got[0].properties) {
    if (property.id == mqtt::PropertyId::kUserProperty) {
      users.emplace_back(property.text, property.pair_value);
    }
    if (property.id == mqtt::PropertyId::kSubscriptionIdentifier) {
      identifiers.push_back(property.integer);
    }
  }
  const mqtt::PropertyValues values = got[0].properties.Values();
  EXPECT_EQ(values.content_type, "text/plain");
  EXPECT_EQ(values.message_expiry_interval_s, 3u) << "2.5 s left, rounded up";
  EXPECT_FALSE(values.response_topic.has_value()) << "a wildcard: left out (MQTT-3.3.2-14)";
  EXPECT_FALSE(values.topic_alias.has_value());
  EXPECT_EQ(users, (std::vector<std::pair<std::string_view, std::string_view>>{
                       {"Trace", "1"}, {"l", "a\r\nb"}}));
  EXPECT_EQ(identifiers, std::vector<uint32_t>{5}) << "this node's subscription (MQTT-3.3.4-3)";
  EXPECT_EQ(harness_->counters(0).cluster_properties_dropped.Load(), 1u);
  // No time left on arrival: not delivered, counted (5.0:3.3.2.3.3).
  Deliver(0, Hmsg("p.y", 1, "Ringmq-Node: node-b\r\nRingmq-Message-Expiry-Ms: 0\r\n", "late"));
  EXPECT_EQ(harness::Publishes5(sub).size(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_expired_in_transit.Load(), 1u);
}

TEST_F(RouterClusterTest, PropertiesOverTheFieldBoundOrMaxPayloadAreNotForwardedAndCounted) {
  const std::string id = harness_->IdOn(1, "big5");  // the Connect keeps a view of it
  mqtt::Connect connect = harness::ConnectPacket(id);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& pub = harness_->Connect(connect);
  // 251 user properties: one over the 250 a header block keeps for properties.
  std::vector<uint8_t> many(251 * mqtt::UserPropertySize("n", "v"));
  for (size_t i = 0, at = 0; i < 251; ++i) {
    at += mqtt::EncodeUserProperty("n", "v", std::span<uint8_t>(many).subspan(at));
  }
  harness_->Send(pub, EncodeCluster5(mqtt::Publish{.topic = "q/x",
                                                   .payload = "m",
                                                   .qos = mqtt::QoS::k0,
                                                   .properties = mqtt::Properties(many)}));
  // The link's max_payload is 1024 (SetUp): a payload that fits, with a property that does not.
  const std::string long_value(1000, 'x');
  std::vector<uint8_t> large(mqtt::UserPropertySize("n", long_value));
  mqtt::EncodeUserProperty("n", long_value, large);
  harness_->Send(pub, EncodeCluster5(mqtt::Publish{.topic = "q/x",
                                                   .payload = "m",
                                                   .qos = mqtt::QoS::k0,
                                                   .properties = mqtt::Properties(large)}));
  harness_->Settle();
  EXPECT_EQ(Output(1), "");
  EXPECT_EQ(harness_->counters(1).cluster_properties_too_many.Load(), 1u);
  EXPECT_EQ(harness_->counters(1).cluster_properties_too_large.Load(), 1u);
  EXPECT_EQ(harness_->counters(1).cluster_publish_refused.Load(), 0u) << "counted once";
  EXPECT_EQ(harness_->counters(1).cluster_messages_out.Load(), 0u);
}

}  // namespace
}  // namespace ringmq::shard
