// At least once for shared-subscription groups across nodes (docs/cluster.md, "Shared
// subscriptions"; router_cluster_acks.cc, router_cluster_shared.cc) through the sans-IO harness:
// each shard's router has a ready main link with the acks layer and a ready share link; the test
// plays the other nodes (their announcements, acks and queue copies) and reads what the links
// would send.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "shard/cluster_harness.h"
#include "shard/router_harness.h"

namespace ringmq::shard {
namespace {

using harness::Client;
using harness::HmsgBytes;
using harness::kAckSid;
using harness::kAnnounceSid;
using harness::kAskAllSid;
using harness::MessageIds;
using harness::MsgBytes;

// Share link, group $share/g/t/#: its cover t.> (1), t (2), then its rtq subject (3).
constexpr uint64_t kGroupCoverSid = 1;
constexpr uint64_t kGroupRtqSid = 3;
constexpr std::string_view kGroupQueue = "g-t_2F_23";

class RouterClusterSharedAcksTest : public harness::ClusterRouterTest {
 protected:
  RouterClusterSharedAcksTest() {
    ack_options_.retransmit_ms = 1000;
    ack_options_.link_timeout_ms = 5000;
    ack_options_.heartbeat_interval_ms = 1000;
  }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(AddShards({.acks = true, .shares = true}));
    for (uint32_t shard = 0; shard < 2; ++shard) Step(shard);
  }

  // Link `link` of another node announces `lines` to shard 0.
  void Announce(std::string_view link, char kind, uint64_t sequence, std::string_view lines) {
    Deliver(0, HmsgBytes("$RINGMQ.interest.a." + std::string(link), kAnnounceSid, "",
                         std::string("Ringmq-Kind: ") + kind +
                             "\r\nRingmq-Seq: " + std::to_string(sequence) + "\r\n",
                         lines));
  }
  // The group's line as its member links announce it.
  static std::string GroupLines() { return "+q " + std::string(kGroupQueue) + " t.>\n"; }
};

TEST_F(RouterClusterSharedAcksTest, MembersAnnounceTheirQueueSubjectsAndSubscribeTheRtqSubject) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/t/#", mqtt::QoS::k1);
  EXPECT_EQ(Output(Share(0)),
            "SUB t.> g-t_2F_23 1\r\nSUB t g-t_2F_23 2\r\nSUB $RINGMQ.rtq.g-t_2F_23 g-t_2F_23 3\r\n")
      << "the retransmits to the group in the same queue group";
  const std::string delta = Step(0);
  EXPECT_NE(delta.find("+q g-t_2F_23 t.>\n+q g-t_2F_23 t\n"), std::string::npos) << delta;
  EXPECT_EQ(harness_->counters(0).gauges.cluster_share_subscriptions.Load(), 2)
      << "the rtq subscription is not a cover subscription";
  // A snapshot carries them too.
  Deliver(Main(0), MsgBytes("$RINGMQ.interest.q.all", kAskAllSid, ""));
  const std::string snapshot = Step(0);
  EXPECT_NE(snapshot.find("Ringmq-Kind: S"), std::string::npos);
  EXPECT_NE(snapshot.find("+q g-t_2F_23 t\n"), std::string::npos) << snapshot;
  harness_->Drop(member);
  EXPECT_EQ(Output(Share(0)), "UNSUB 1\r\nUNSUB 2\r\nUNSUB 3\r\n");
  EXPECT_NE(Step(0).find("-q g-t_2F_23 t.>\n"), std::string::npos);
}

// Issue 16: QoS 1 is acknowledged to the publisher once the group accepted it, from whichever
// member NATS picked (MQTT-4.6.0-2: later acks wait behind it).
TEST_F(RouterClusterSharedAcksTest, PubackWaitsForTheGroupAndAnyMembersAckReleasesIt) {
  Announce("n2.0", 'S', 1, GroupLines());
  Announce("n3.0", 'S', 1, GroupLines());
  EXPECT_EQ(harness_->counters(0).gauges.cluster_remote_groups.Load(), 0) << "set at the step";
  Step(0);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_remote_groups.Load(), 1);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  const std::string out = Output(Main(0));
  EXPECT_NE(out.find("HPUB t.x $RINGMQ.ack.node-a.0 "), std::string::npos) << out;
  const std::vector<std::string> ids = MessageIds(out);
  ASSERT_EQ(ids.size(), 1u);
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 0u) << "held for the group";
  // An ack from a link (not the group) or naming another group changes nothing.
  Deliver(Main(0), MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "n2.0\n" + ids[0]));
  Deliver(Main(0), MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "q other-x\n" + ids[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 0u);
  // The member NATS picked (n3.0's, say) acknowledges in the group's name.
  Deliver(Main(0), MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "q g-t_2F_23\n" + ids[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_ack_pending.Load(), 0);
  // QoS 2: the PUBREC waits the same way.
  harness_->Send(pub, harness::PublishBytes("t/y", "two", mqtt::QoS::k2, 2));
  harness_->Settle();
  const std::vector<std::string> ids2 = MessageIds(Output(Main(0)));
  ASSERT_EQ(ids2.size(), 1u);
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPubrec), 0u);
  Deliver(Main(0), MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "q g-t_2F_23\n" + ids2[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPubrec), 1u);
}

TEST_F(RouterClusterSharedAcksTest, ALostAckIsSentAgainOnTheGroupsRtqSubject) {
  Announce("n2.0", 'S', 1, GroupLines());
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  const std::vector<std::string> ids = MessageIds(Output(Main(0)));
  ASSERT_EQ(ids.size(), 1u);
  harness_->now_ms() += ack_options_.retransmit_ms - 1;
  EXPECT_EQ(Step(0).find("$RINGMQ.rtq."), std::string::npos);
  harness_->now_ms() += 1;
  const std::string again = Step(0);
  EXPECT_NE(again.find("HPUB $RINGMQ.rtq.g-t_2F_23 $RINGMQ.ack.node-a.0 "), std::string::npos)
      << again;
  EXPECT_NE(again.find("Ringmq-Subject: t.x\r\n"), std::string::npos);
  EXPECT_EQ(MessageIds(again), ids) << "the same id";
  EXPECT_EQ(harness_->counters(0).cluster_group_retransmits.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_retransmits.Load(), 1u);
  Deliver(Main(0), MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "q g-t_2F_23\n" + ids[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
}

TEST_F(RouterClusterSharedAcksTest, AGroupWhoseLastMemberLinkWentSilentIsForgottenAndCounted) {
  Announce("n2.0", 'S', 1, GroupLines());
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  ASSERT_EQ(MessageIds(Output(Main(0))).size(), 1u);
  harness_->now_ms() += ack_options_.link_timeout_ms - 1;
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 0u);
  harness_->now_ms() += 1;
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u) << "nobody serves the group any more";
  EXPECT_EQ(harness_->counters(0).cluster_groups_forgotten.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_ack_forgotten_released.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_remote_groups.Load(), 0);
  // And a message published now is not held for it.
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 2));
  harness_->Settle();
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 2u);
}

// The member's side: the queue copy and the group retransmit of one message (the first ack was
// lost) reach the member once (QoS 2 exactly once per member) and are both acknowledged in the
// group's name.
TEST_F(RouterClusterSharedAcksTest, AMemberShardDeliversOnceAndAcksEachCopyInTheGroupsName) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/t/#", mqtt::QoS::k2);
  Output(Share(0));
  Step(0);
  const std::string headers = "Ringmq-Node: n2\r\nRingmq-Qos: 2\r\nRingmq-Id: 7\r\n";
  Deliver(Share(0), HmsgBytes("t.x", kGroupCoverSid, "$RINGMQ.ack.n2.0", headers, "m"));
  EXPECT_EQ(member.Received(mqtt::PacketType::kPublish), 1u);
  Deliver(Share(0), HmsgBytes("$RINGMQ.rtq.g-t_2F_23", kGroupRtqSid, "$RINGMQ.ack.n2.0",
                              headers + "Ringmq-Subject: t.x\r\n", "m"));
  EXPECT_EQ(member.Received(mqtt::PacketType::kPublish), 1u) << "a repeat: not again";
  EXPECT_EQ(harness_->counters(0).cluster_duplicates_dropped.Load(), 1u);
  const std::string acks = Step(0);
  EXPECT_NE(acks.find("PUB $RINGMQ.ack.n2.0 "), std::string::npos) << acks;
  EXPECT_NE(acks.find("q g-t_2F_23\n7 7\r\n"), std::string::npos) << "both acknowledged";
  EXPECT_EQ(harness_->counters(0).cluster_group_acks.Load(), 2u);
  // A retransmit of a message this shard never saw (its first copy went to a member that
  // died): delivered.
  Deliver(Share(0), HmsgBytes("$RINGMQ.rtq.g-t_2F_23", kGroupRtqSid, "$RINGMQ.ack.n2.0",
                              "Ringmq-Qos: 1\r\nRingmq-Id: 8\r\nRingmq-Subject: t.y\r\n", "r"));
  EXPECT_EQ(member.Received(mqtt::PacketType::kPublish), 2u);
  // The same id in a plain copy (a plain subscription of this shard) is another window.
  EXPECT_EQ(harness_->counters(0).cluster_duplicates_dropped.Load(), 1u);
}

// NATS may give the queue copy of a shard's own message to its own share link: the group of
// this shard's members is awaited too, and the ack is taken without NATS (the main link does
// not receive what it publishes itself).
TEST_F(RouterClusterSharedAcksTest, TheShardsOwnGroupIsAwaitedAndAcknowledgedLocally) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/t/#", mqtt::QoS::k1);
  Output(Share(0));
  Step(0);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  const std::vector<std::string> ids = MessageIds(Output(Main(0)));
  ASSERT_EQ(ids.size(), 1u) << "tracked for the group";
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 0u);
  EXPECT_EQ(member.Received(mqtt::PacketType::kPublish), 0u) << "NATS chooses";
  Deliver(Share(0),
          HmsgBytes("t.x", kGroupCoverSid, "$RINGMQ.ack.node-a.0",
                    "Ringmq-Node: node-a\r\nRingmq-Qos: 1\r\nRingmq-Id: " + ids[0] + "\r\n", "m"));
  EXPECT_EQ(member.Received(mqtt::PacketType::kPublish), 1u);
  const std::string out = Step(0);
  EXPECT_EQ(out.find("PUB $RINGMQ.ack.node-a.0"), std::string::npos) << "not through NATS";
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
}

// Another shard of this node announces its groups (its plain interest is not tracked: the
// mailboxes serve it).
TEST_F(RouterClusterSharedAcksTest, AnotherShardOfThisNodeCountsForItsGroupsOnly) {
  Announce("node-a.1", 'S', 1, "+u.x\n" + GroupLines());
  Step(0);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  harness_->Send(pub, harness::PublishBytes("u/x", "plain", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_TRUE(MessageIds(Output(Main(0))).empty()) << "its plain interest is local";
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  harness_->Send(pub, harness::PublishBytes("t/x", "group", mqtt::QoS::k1, 2));
  harness_->Settle();
  EXPECT_EQ(MessageIds(Output(Main(0))).size(), 1u);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
}

// While the main link is down the node's groups choose among its own members (the groups are
// per node): no group is awaited, so the publisher is acknowledged at once, as before.
TEST_F(RouterClusterSharedAcksTest, NoGroupIsAwaitedWhileTheLinkIsDown) {
  Client& member = harness_->Connect(harness_->IdOn(0, "member"));
  harness_->Subscribe(member, "$share/g/t/#", mqtt::QoS::k1);
  Step(0);
  Announce("n2.0", 'S', 1, GroupLines());
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  Main(0).OnTransportClosed(0, "test");
  ASSERT_FALSE(Main(0).ready());
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_EQ(member.Received(mqtt::PacketType::kPublish), 1u) << "the local choice";
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_ack_pending.Load(), 0);
}

}  // namespace
}  // namespace ringmq::shard
