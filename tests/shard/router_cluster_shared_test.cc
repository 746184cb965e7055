// Router's shared subscriptions across the cluster (router.h, AttachClusterShares) through the
// sans-IO harness: each shard's router gets a ready main link and a ready share link; the test
// reads what they would send and feeds the share links what NATS's queue groups would deliver.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "cluster/nats_link.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "shard/cluster_harness.h"
#include "shard/router_harness.h"

namespace ringmq::shard {
namespace {

using harness::Client;

class RouterClusterSharedTest : public harness::ClusterRouterTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(AddShards({.max_payload = 1024, .shares = true}));
  }
};

TEST_F(RouterClusterSharedTest, GroupsAreQueueSubscriptionsOnTheShareLink) {
  Client& a = harness_->Connect(harness_->IdOn(0, "a"));
  Client& b = harness_->Connect(harness_->IdOn(0, "b"));
  harness_->Subscribe(a, "$share/g/t/#", mqtt::QoS::k1);
  EXPECT_EQ(Output(Share(0)), "SUB t.> g-t_2F_23 1\r\nSUB t g-t_2F_23 2\r\n");
  EXPECT_EQ(Output(Main(0)), "") << "the main link holds no queue subscription";
  harness_->Subscribe(b, "$share/g/t/#", mqtt::QoS::k0);
  EXPECT_EQ(Output(Share(0)), "") << "one queue subscription per group and shard";
  EXPECT_EQ(harness_->counters(0).gauges.cluster_share_subscriptions.Load(), 2);
  EXPECT_EQ(harness_->router(0).cluster_share_subscription_count(), 2u);
  harness_->Drop(a);
  EXPECT_EQ(Output(Share(0)), "");
  harness_->Drop(b);  // the last member on this shard
  EXPECT_EQ(Output(Share(0)), "UNSUB 1\r\nUNSUB 2\r\n");
  EXPECT_EQ(harness_->counters(0).gauges.cluster_share_subscriptions.Load(), 0);
}

// While the main link is ready, the publishing shard gives no group member the message: it goes
// to NATS once, whose queue group picks one member link, possibly this node's own.
TEST_F(RouterClusterSharedTest, PublisherLeavesGroupsToNatsAndTheQueueCopyIsDelivered) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/t/+", mqtt::QoS::k1);
  Output(Share(0));
  Client& pub = harness_->Connect(harness_->IdOn(1, "pub"));
  harness_->Send(pub, harness::PublishBytes("t/x", "hello", mqtt::QoS::k1, 5));
  harness_->Settle();
  EXPECT_EQ(member.publishes_by_qos[1], 0u) << "no local choice while NATS chooses";
  EXPECT_NE(Output(Main(1)).find("HPUB t.x "), std::string::npos);
  // NATS picked shard 0's share link; the copy carries this very node's name: no echo drop.
  Deliver(Share(0), Hmsg("t.x", 1, "Ringmq-Node: node-a\r\nRingmq-Qos: 1\r\n", "hello"));
  EXPECT_EQ(member.publishes_by_qos[1], 1u);
  EXPECT_EQ(harness_->counters(0).cluster_share_delivered.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_echoes_dropped.Load(), 0u);
}

// min(message QoS, subscription QoS) (MQTT-3.8.4-8), RETAIN 0; a NATS application's message
// (no Ringmq-Qos) is QoS 0.
TEST_F(RouterClusterSharedTest, QueueCopyIsDeliveredAtTheLowerQos) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/t", mqtt::QoS::k1);
  Output(Share(0));
  Deliver(Share(0), Hmsg("t", 1, "Ringmq-Node: node-b\r\nRingmq-Qos: 2\r\n", "q2"));
  Deliver(Share(0), Hmsg("t", 1, "Ringmq-Qos: 0\r\n", "q0"));
  Deliver(Share(0), "MSG t 1 3\r\napp\r\n");
  EXPECT_EQ(member.publishes_by_qos[1], 1u);
  EXPECT_EQ(member.publishes_by_qos[0], 2u);
  EXPECT_EQ(member.publishes_by_qos[2], 0u);
  // Only a field named exactly Ringmq-Qos counts, value trimmed; a bad value is QoS 0.
  Deliver(Share(0), Hmsg("t", 1, "X-Ringmq-Qos: 1\r\nA: Ringmq-Qos: 1\r\n", "other"));
  Deliver(Share(0), Hmsg("t", 1, "Ringmq-Qos:3\r\n", "bad"));
  EXPECT_EQ(member.publishes_by_qos[0], 4u);
  Deliver(Share(0), Hmsg("t", 1, "A: b\r\nRingmq-Qos:\t1 \r\n", "tight"));
  EXPECT_EQ(member.publishes_by_qos[1], 2u);
}

// MQTT 5.0 properties across nodes (cluster/mqtt5_headers.h; props lane): a queue copy
// carries them as a plain copy does, and one with no expiry left is not given to a member.
TEST_F(RouterClusterSharedTest, QueueCopyCarriesMqtt5PropertiesAndExpiredOnesAreDropped) {
  const std::string id = harness_->IdOn(0, "member5");  // the Connect keeps a view of it
  mqtt::Connect connect = harness::ConnectPacket(id);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& member = harness_->Connect(connect);
  member.record = true;
  harness_->Subscribe5(member, mqtt::TopicRequest{.filter = "$share/g/t", .qos = mqtt::QoS::k1});
  Output(Share(0));
  Deliver(Share(0), Hmsg("t", 1,
                         "Ringmq-Node: node-b\r\nRingmq-Qos: 1\r\nRingmq-Content-Type: a/b\r\n"
                         "k: v\r\n",
                         "p"));
  ASSERT_EQ(member.recorded.size(), 1u);
  const harness::Bytes& bytes = member.recorded[0];
  const mqtt::Frame frame =
      mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength, mqtt::ProtocolLevel::kMqtt5);
  const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
      frame.header, std::span<const uint8_t>(bytes).subspan(frame.header.header_length),
      mqtt::ProtocolLevel::kMqtt5);
  ASSERT_TRUE(packet.ok());
  const mqtt::PropertyValues values = std::get<mqtt::Publish>(packet.value()).properties.Values();
  EXPECT_EQ(values.content_type, "a/b");
  EXPECT_EQ(values.user_property_count, 1u);
  Deliver(Share(0), Hmsg("t", 1, "Ringmq-Qos: 1\r\nRingmq-Message-Expiry-Ms: 0\r\n", "late"));
  EXPECT_EQ(member.recorded.size(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_expired_in_transit.Load(), 1u);
}

TEST_F(RouterClusterSharedTest, EachQueueCopyGoesToOneMemberOfItsGroupOnly) {
  Client& g1 = harness_->Connect(harness_->IdOn(0, "g1"));
  Client& g2 = harness_->Connect(harness_->IdOn(0, "g2"));
  Client& h1 = harness_->Connect(harness_->IdOn(0, "h1"));
  harness_->Subscribe(g1, "$share/g/t", mqtt::QoS::k0);
  harness_->Subscribe(g2, "$share/g/t", mqtt::QoS::k0);
  harness_->Subscribe(h1, "$share/h/t", mqtt::QoS::k0);
  EXPECT_EQ(Output(Share(0)), "SUB t g-t 1\r\nSUB t h-t 2\r\n");
  for (int i = 0; i < 10; ++i) Deliver(Share(0), "MSG t 1 1\r\nx\r\n");
  EXPECT_EQ(g1.publishes_by_qos[0] + g2.publishes_by_qos[0], 10u);
  EXPECT_GT(g1.publishes_by_qos[0], 0u);
  EXPECT_GT(g2.publishes_by_qos[0], 0u);
  EXPECT_EQ(h1.publishes_by_qos[0], 0u) << "group h gets its own copies (sid 2)";
  Deliver(Share(0), "MSG t 2 1\r\nx\r\n");
  EXPECT_EQ(h1.publishes_by_qos[0], 1u);
  EXPECT_EQ(g1.publishes_by_qos[0] + g2.publishes_by_qos[0], 10u);
}

// A '$' subject (a NATS application publishing to a '>' cover) is not let into the broker's
// '$' space; a copy for a group that left this shard meanwhile is dropped by the link (its sid
// is gone); a QoS 0 copy no member can take (the only one is offline) goes nowhere, counted,
// and a QoS 1 copy is kept by the offline persistent member (the trie's rule).
TEST_F(RouterClusterSharedTest, CopiesWithoutATakerAreDroppedAndCounted) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/#", mqtt::QoS::k1);
  EXPECT_EQ(Output(Share(0)), "SUB > g-_23 1\r\n");
  Deliver(Share(0), "MSG $x.y 1 1\r\nx\r\n");
  EXPECT_EQ(harness_->counters(0).cluster_unmappable_subjects.Load(), 1u);
  EXPECT_EQ(member.publishes_by_qos[0], 0u);
  Deliver(Share(0), "MSG a 1 1\r\nx\r\n");
  EXPECT_EQ(member.publishes_by_qos[0], 1u);

  const std::string id = harness_->IdOn(0, "offline");
  Client& offline = harness_->Connect(id, /*clean_session=*/false);
  harness_->Subscribe(offline, "$share/h/t", mqtt::QoS::k1);
  EXPECT_EQ(Output(Share(0)), "SUB t h-t 2\r\n");
  harness_->Drop(offline);
  Deliver(Share(0), "MSG t 2 1\r\nx\r\n");
  EXPECT_EQ(harness_->counters(0).cluster_share_no_member.Load(), 1u);
  Deliver(Share(0), Hmsg("t", 2, "Ringmq-Qos: 1\r\n", "kept"));
  EXPECT_EQ(harness_->counters(0).cluster_share_no_member.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_share_delivered.Load(), 2u);
  EXPECT_EQ(harness_->counters(0).gauges.queued_messages.Load(), 1) << "queued while offline";

  harness_->Drop(member);
  EXPECT_EQ(Output(Share(0)), "UNSUB 1\r\n");
  Deliver(Share(0), "MSG a 1 1\r\nx\r\n");  // in flight when the group left
  EXPECT_EQ(Share(0).counters().messages_unknown_sid, 1u);
}

// NATS picked shard 0's share link: shard 0's members are chosen (no mailbox hop), though the
// group has members on shard 1 too (they get the copies NATS gives shard 1's share link).
TEST_F(RouterClusterSharedTest, QueueCopyPrefersThisShardsMembers) {
  Client& here = harness_->Connect(harness_->IdOn(0, "here"));
  Client& there = harness_->Connect(harness_->IdOn(1, "there"));
  harness_->Subscribe(here, "$share/g/t", mqtt::QoS::k1);
  harness_->Subscribe(there, "$share/g/t", mqtt::QoS::k1);
  for (int i = 0; i < 6; ++i) {
    Deliver(Share(0), Hmsg("t", 1, "Ringmq-Qos: 1\r\n", "x"));
  }
  EXPECT_EQ(here.publishes_by_qos[1], 6u) << "shard 0's copies stay on shard 0";
  EXPECT_EQ(there.publishes_by_qos[1], 0u);
}

// The main link down: each message still goes to one member, chosen by the publisher's node.
TEST_F(RouterClusterSharedTest, LocalChoiceWhileTheMainLinkIsDown) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/t", mqtt::QoS::k1);
  Client& pub = harness_->Connect(harness_->IdOn(1, "pub"));
  Main(1).OnTransportClosed(0, "test");
  ASSERT_FALSE(Main(1).ready());
  harness_->Send(pub, harness::PublishBytes("t", "x", mqtt::QoS::k1, 5));
  harness_->Settle();
  EXPECT_EQ(member.publishes_by_qos[1], 1u);
}

// What the link does not take reaches no other node, so its groups choose locally: '$' topics
// (never forwarded), a topic no subject carries, a message over the server's max_payload
// (INFO: 1024 here), one that finds the link's outbound bound full.
TEST_F(RouterClusterSharedTest, WhatIsNotForwardedKeepsTheLocalChoice) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/$x/#", mqtt::QoS::k0);
  harness_->Subscribe(member, "$share/g/a b", mqtt::QoS::k0);
  harness_->Subscribe(member, "$share/g/big", mqtt::QoS::k1);
  Client& other = harness_->Connect(harness_->IdOn(0, "other"));
  harness_->Subscribe(other, "$share/h/big", mqtt::QoS::k1);
  Client& pub = harness_->Connect(harness_->IdOn(1, "pub"));
  harness_->Send(pub, harness::PublishBytes("$x/y", "x", mqtt::QoS::k0));
  harness_->Send(pub, harness::PublishBytes("a b", "x", mqtt::QoS::k0));
  harness_->Settle();
  EXPECT_EQ(member.publishes_by_qos[0], 2u);
  EXPECT_EQ(Output(Main(1)), "");
  EXPECT_EQ(harness_->counters(1).cluster_share_local.Load(), 1u) << "'$' is not even left out";
  harness_->Send(pub, harness::PublishBytes("big", std::string(2000, 'x'), mqtt::QoS::k1, 7));
  harness_->Settle();
  EXPECT_EQ(member.publishes_by_qos[1], 1u) << "each group chooses once, locally";
  EXPECT_EQ(other.publishes_by_qos[1], 1u);
  EXPECT_EQ(harness_->counters(1).cluster_publish_refused.Load(), 1u);
  EXPECT_EQ(harness_->counters(1).cluster_share_local.Load(), 2u);
  harness_->Send(pub, harness::PublishBytes("big", "fits", mqtt::QoS::k1, 8));
  harness_->Settle();
  EXPECT_EQ(member.publishes_by_qos[1], 1u) << "forwarded: NATS chooses";
  EXPECT_EQ(harness_->counters(1).cluster_share_local.Load(), 2u);
}

// A session both subscribed to t and a member of a group on t gets a remote plain copy once
// (the groups are left out of the plain copy's match).
TEST_F(RouterClusterSharedTest, PlainCopyReachesASubscriberThatIsAlsoAMember) {
  Client& both = harness_->Connect(harness_->IdOn(0, "both"));
  harness_->Subscribe(both, "t", mqtt::QoS::k0);
  harness_->Subscribe(both, "$share/g/t", mqtt::QoS::k0);
  EXPECT_EQ(Output(Main(0)), "SUB t 1\r\n");
  Deliver(Main(0), Hmsg("t", 1, "Ringmq-Node: node-b\r\nRingmq-Qos: 0\r\n", "x"));
  EXPECT_EQ(both.publishes_by_qos[0], 1u);
  EXPECT_EQ(harness_->counters(0).shared_deliveries.Load(), 0u) << "no group consulted";
}

class RouterClusterSharedHashTest : public RouterClusterSharedTest {
 protected:
  void SetUp() override {
    config_.shared_subscription_strategy = SharedSubscriptionStrategy::kHash;
    RouterClusterSharedTest::SetUp();
  }
};

// shared_subscription_strategy = hash: the client id does not cross nodes, so a queue copy's
// key is its origin node and subject: one node's messages of one topic stay with one member.
TEST_F(RouterClusterSharedHashTest, OneNodesTopicStaysWithOneMember) {
  Client& a = harness_->Connect(harness_->IdOn(0, "a"));
  Client& b = harness_->Connect(harness_->IdOn(0, "b"));
  harness_->Subscribe(a, "$share/g/t/+", mqtt::QoS::k0);
  harness_->Subscribe(b, "$share/g/t/+", mqtt::QoS::k0);
  Output(Share(0));
  int both_used = 0;
  for (int topic = 0; topic < 16; ++topic) {
    const uint64_t a_before = a.publishes_by_qos[0];
    const uint64_t b_before = b.publishes_by_qos[0];
    for (int i = 0; i < 4; ++i) {
      Deliver(Share(0), Hmsg("t." + std::to_string(topic), 1, "Ringmq-Node: node-b\r\n", "x"));
    }
    const uint64_t to_a = a.publishes_by_qos[0] - a_before;
    const uint64_t to_b = b.publishes_by_qos[0] - b_before;
    EXPECT_TRUE((to_a == 4 && to_b == 0) || (to_a == 0 && to_b == 4)) << topic;
    both_used |= to_a == 4 ? 1 : 2;
  }
  EXPECT_EQ(both_used, 3) << "16 topics all on one member";
}

}  // namespace
}  // namespace ringmq::shard
