// Router's cluster acknowledgements (router.h, "Cluster acknowledgements") through the sans-IO
// harness: real NatsLinks brought to kReady, the test playing the other nodes' links by feeding
// what NATS would deliver and reading what the link would send, with the harness's clock.
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
using harness::kAskSid;
using harness::kRetransmitSid;
using harness::MessageIds;
using harness::MsgBytes;

class RouterClusterAcksTest : public harness::ClusterRouterTest {
 protected:
  RouterClusterAcksTest() {
    ack_options_.retransmit_ms = 1000;
    ack_options_.link_timeout_ms = 5000;
    ack_options_.heartbeat_interval_ms = 1000;
    ack_options_.pending_max = 2;
  }

  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(AddShards({.acks = true}));
    for (uint32_t shard = 0; shard < 2; ++shard) Step(shard);  // first snapshots, asks
  }

  // Link n2.0 of another node announces `lines` (a snapshot) to shard `shard`.
  void Announce(uint32_t shard, char kind, uint64_t sequence, std::string_view lines) {
    Deliver(shard, HmsgBytes("$RINGMQ.interest.a.n2.0", kAnnounceSid, "",
                             std::string("Ringmq-Kind: ") + kind +
                                 "\r\nRingmq-Seq: " + std::to_string(sequence) + "\r\n",
                             lines));
  }
};

TEST_F(RouterClusterAcksTest, LinksAnnounceTheirInterestAndAskForSnapshots) {
  Client& sub = harness_->Connect(harness_->IdOn(0, "sub"));
  harness_->Subscribe(sub, "a/#", mqtt::QoS::k1);
  Output(0);  // the SUBs
  const std::string delta = Step(0);
  EXPECT_NE(delta.find("HPUB $RINGMQ.interest.a.node-a.0 "), std::string::npos) << delta;
  EXPECT_NE(delta.find("Ringmq-Kind: D\r\nRingmq-Seq: 2\r\n"), std::string::npos)
      << "after the first snapshot (1)";
  EXPECT_NE(delta.find("+a.>\n+a\n"), std::string::npos);
  // Someone asks: a snapshot of everything, with the next sequence number.
  Deliver(0, MsgBytes("$RINGMQ.interest.q.all", kAskAllSid, ""));
  const std::string snapshot = Step(0);
  EXPECT_NE(snapshot.find("Ringmq-Kind: S\r\nRingmq-Seq: 3\r\n"), std::string::npos) << snapshot;
  EXPECT_NE(snapshot.find("+a\n+a.>\n"), std::string::npos);
  // Nothing new: a heartbeat once the interval has passed, with the last sequence number.
  EXPECT_EQ(Step(0), "");
  harness_->now_ms() += ack_options_.heartbeat_interval_ms;
  EXPECT_NE(Step(0).find("Ringmq-Kind: H\r\nRingmq-Seq: 3\r\n"), std::string::npos);
  // Another link's announcements; a lost one makes this shard ask that link for a snapshot.
  Announce(0, 'S', 1, "+t.x\n");
  EXPECT_EQ(harness_->counters(0).cluster_interest_received.Load(), 1u);
  Announce(0, 'D', 3, "+t.y\n");
  EXPECT_EQ(harness_->counters(0).cluster_interest_gaps.Load(), 1u);
  EXPECT_NE(Step(0).find("PUB $RINGMQ.interest.q.n2.0 0\r\n"), std::string::npos);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_remote_links.Load(), 1);
  // This node's other shard's announcements are not tracked (it drops our messages as echo).
  Deliver(0, HmsgBytes("$RINGMQ.interest.a.node-a.1", kAnnounceSid, "",
                       "Ringmq-Kind: S\r\nRingmq-Seq: 1\r\n", "+t.x\n"));
  Step(0);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_remote_links.Load(), 1);
}

TEST_F(RouterClusterAcksTest, PubackWaitsForEveryInterestedLink) {
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  // No remote interest: acknowledged at once, forwarded without an id.
  harness_->Send(pub, harness::PublishBytes("t/x", "free", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  EXPECT_TRUE(MessageIds(Output(0)).empty());
  Announce(0, 'S', 1, "+t.>\n");
  harness_->Send(pub, harness::PublishBytes("t/x", "held", mqtt::QoS::k1, 2));
  harness_->Settle();
  const std::string out = Output(0);
  EXPECT_NE(out.find("HPUB t.x $RINGMQ.ack.node-a.0 "), std::string::npos) << out;
  const std::vector<std::string> ids = MessageIds(out);
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u) << "held for n2.0";
  // A QoS 1 PUBLISH on a topic nobody remote wants: its PUBACK waits behind the held one
  // (MQTT-4.6.0-2: in the order of the PUBLISHes).
  harness_->Send(pub, harness::PublishBytes("u/x", "behind", mqtt::QoS::k1, 3));
  harness_->Settle();
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  Step(0);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_ack_pending.Load(), 1);
  // An ack from a link nobody expects changes nothing; n2.0's releases both, in order.
  Deliver(0, MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "n9.0\n" + ids[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  Deliver(0, MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "n2.0\n" + ids[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 3u);
  EXPECT_EQ(harness_->counters(0).cluster_acks_received.Load(), 2u);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_ack_pending.Load(), 0);
  // QoS 2: the PUBREC waits the same way.
  harness_->Send(pub, harness::PublishBytes("t/x", "two", mqtt::QoS::k2, 4));
  harness_->Settle();
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPubrec), 0u);
  const std::vector<std::string> ids2 = MessageIds(Output(0));
  ASSERT_EQ(ids2.size(), 1u);
  Deliver(0, MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "n2.0\n" + ids2[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPubrec), 1u);
  // Over the server's max_payload: the link refuses it for good, so nothing waits for it.
  harness_->Send(pub, harness::PublishBytes("t/x", std::string(70'000, 'x'), mqtt::QoS::k1, 5));
  harness_->Settle();
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 4u);
  Step(0);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_ack_pending.Load(), 0);
}

TEST_F(RouterClusterAcksTest, RetransmitsThenForgetsASilentLink) {
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  Announce(0, 'S', 1, "+t.x\n");
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  const std::vector<std::string> ids = MessageIds(Output(0));
  ASSERT_EQ(ids.size(), 1u);
  harness_->now_ms() += ack_options_.retransmit_ms - 1;
  EXPECT_EQ(Step(0).find("$RINGMQ.rt."), std::string::npos);
  harness_->now_ms() += 1;
  const std::string again = Step(0);
  EXPECT_NE(again.find("HPUB $RINGMQ.rt.n2.0 $RINGMQ.ack.node-a.0 "), std::string::npos) << again;
  EXPECT_NE(again.find("Ringmq-Subject: t.x\r\n"), std::string::npos);
  EXPECT_EQ(MessageIds(again), ids) << "the same id";
  EXPECT_EQ(harness_->counters(0).cluster_retransmits.Load(), 1u);
  // n2.0 stays silent: forgotten after link_timeout_ms, and the PUBACK is released.
  harness_->now_ms() += ack_options_.link_timeout_ms;
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_links_forgotten.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_ack_forgotten_released.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).gauges.cluster_remote_links.Load(), 0);
}

TEST_F(RouterClusterAcksTest, PublisherIsHeldBackAtThePendingBound) {
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  Announce(0, 'S', 1, "+t.x\n");
  // pending_max = 2: the second tracked message reaches the bound, and the third PUBLISH
  // waits unread until the pending messages fall below 3/4 of it.
  harness::Bytes three;
  for (uint16_t id = 1; id <= 3; ++id) {
    const harness::Bytes one = harness::PublishBytes("t/x", "m", mqtt::QoS::k1, id);
    three.insert(three.end(), one.begin(), one.end());
  }
  harness_->Send(pub, three);
  harness_->Settle();
  const std::vector<std::string> ids = MessageIds(Output(0));
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_TRUE(pub.connection.paused());
  EXPECT_EQ(harness_->counters(0).cluster_ack_held_back.Load(), 1u);
  // One acknowledged: 1 of 2 pending is below 3/4 of the bound, so the third PUBLISH is
  // read, forwarded, and brings the bound back (held back again).
  Deliver(0, MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "n2.0\n" + ids[0]));
  const std::vector<std::string> third = MessageIds(Step(0));
  ASSERT_EQ(third.size(), 1u) << "the third PUBLISH was read and forwarded";
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u);
  EXPECT_TRUE(pub.connection.paused());
  EXPECT_EQ(harness_->counters(0).cluster_ack_held_back.Load(), 2u);
  Deliver(0, MsgBytes("$RINGMQ.ack.node-a.0", kAckSid, "n2.0\n" + ids[1] + " " + third[0]));
  Step(0);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback), 3u);
  EXPECT_FALSE(pub.connection.paused());
  harness_->Send(pub, harness::PublishBytes("t/x", "m", mqtt::QoS::k1, 4));
  harness_->Settle();
  EXPECT_EQ(MessageIds(Output(0)).size(), 1u) << "reads on";
}

TEST_F(RouterClusterAcksTest, ReceiverAcksInBatchesAndDropsRepeats) {
  Client& sub = harness_->Connect(harness_->IdOn(1, "sub"));
  harness_->Subscribe(sub, "t/#", mqtt::QoS::k2);  // sids 6 (t.>) and 7 (t)
  Step(1);                                         // the SUBs and their announcement
  const std::string headers = "Ringmq-Node: n2\r\nRingmq-Qos: 2\r\nRingmq-Id: 77\r\n";
  Deliver(1, HmsgBytes("t.y", 6, "$RINGMQ.ack.n2.0", headers, "once"));
  Deliver(1, HmsgBytes("t.y", 6, "$RINGMQ.ack.n2.0", headers, "once"));
  // Sent again to this link's own retransmit subject: also known.
  Deliver(1, HmsgBytes("$RINGMQ.rt.node-a.1", kRetransmitSid, "$RINGMQ.ack.n2.0",
                       headers + "Ringmq-Subject: t.y\r\n", "once"));
  Deliver(1, HmsgBytes("t.z", 6, "$RINGMQ.ack.n2.0",
                       "Ringmq-Node: n2\r\nRingmq-Qos: 1\r\nRingmq-Id: 78\r\n", "next"));
  EXPECT_EQ(sub.publishes_by_qos[2], 1u) << "QoS 2 exactly once";
  EXPECT_EQ(sub.publishes_by_qos[1], 1u);
  EXPECT_EQ(harness_->counters(1).cluster_duplicates_dropped.Load(), 2u);
  // One PUB for the origin link, every id in it (repeats too: their first ack may be lost).
  EXPECT_EQ(Step(1), "PUB $RINGMQ.ack.n2.0 20\r\nnode-a.1\n77 77 77 78\r\n");
  EXPECT_EQ(harness_->counters(1).cluster_acks_sent.Load(), 4u);
  // A retransmit of a message for a topic nobody here wants any more is still acknowledged.
  Deliver(1, HmsgBytes("$RINGMQ.rt.node-a.1", kRetransmitSid, "$RINGMQ.ack.n2.0",
                       "Ringmq-Node: n2\r\nRingmq-Qos: 1\r\nRingmq-Id: 79\r\nRingmq-Subject: q\r\n",
                       "x"));
  EXPECT_EQ(Step(1), "PUB $RINGMQ.ack.n2.0 11\r\nnode-a.1\n79\r\n");
  // A NATS application's request (a reply subject that is not ours) is delivered, not acked.
  Deliver(1, HmsgBytes("t.w", 6, "_INBOX.abc", "Ringmq-Id: 5\r\n", "app"));
  EXPECT_EQ(Step(1), "");
  EXPECT_EQ(sub.publishes_by_qos[0], 1u);
  // A retransmit to another link, copied to this one for its '>' subscription (MQTT '#'): not
  // acknowledged (nor delivered: a '$' subject).
  harness_->Subscribe(sub, "#", mqtt::QoS::k1);  // sid 8: >
  Step(1);
  Deliver(1,
          HmsgBytes("$RINGMQ.rt.n3.0", 8, "$RINGMQ.ack.n2.0",
                    "Ringmq-Node: n2\r\nRingmq-Qos: 1\r\nRingmq-Id: 90\r\nRingmq-Subject: t.v\r\n",
                    "x"));
  EXPECT_EQ(Step(1), "");
  EXPECT_EQ(harness_->counters(1).cluster_unmappable_subjects.Load(), 1u);
}

// Announcements and acks in parts of at most announce_bytes_max payload bytes.
class RouterClusterAcksSmallPartsTest : public RouterClusterAcksTest {
 protected:
  RouterClusterAcksSmallPartsTest() {
    ack_options_.announce_bytes_max = 24;
    ack_options_.subjects_max = 1;
  }
};

TEST_F(RouterClusterAcksSmallPartsTest, SnapshotsAndAcksAreSentInParts) {
  Client& sub = harness_->Connect(harness_->IdOn(1, "sub"));
  for (const char* filter : {"aaaa/bbbb", "cccc/dddd", "eeee/ffff"}) {
    harness_->Subscribe(sub, filter, mqtt::QoS::k1);
  }
  Output(1);
  const std::string delta = Step(1);
  EXPECT_NE(delta.find("Ringmq-Kind: D\r\nRingmq-Seq: 2\r\n\r\n+aaaa.bbbb\n+cccc.dddd\n\r\n"),
            std::string::npos)
      << delta;
  EXPECT_NE(delta.find("Ringmq-Kind: D\r\nRingmq-Seq: 3\r\n\r\n+eeee.ffff\n\r\n"),
            std::string::npos);
  Deliver(1, MsgBytes("$RINGMQ.interest.q.node-a.1", kAskSid, ""));
  const std::string snapshot = Step(1);
  EXPECT_NE(snapshot.find("Ringmq-Kind: S\r\nRingmq-Seq: 4\r\n\r\n+aaaa.bbbb\n+cccc.dddd\n"),
            std::string::npos)
      << snapshot;
  EXPECT_NE(snapshot.find("Ringmq-Kind: s\r\nRingmq-Seq: 5\r\n\r\n+eeee.ffff\n"),
            std::string::npos);
  // Acks: "node-a.1\n" is 9 bytes, each id 3 or 4 more; a part is sent once it reaches 24.
  for (int id = 100; id < 105; ++id) {
    Deliver(1, HmsgBytes(
                   "aaaa.bbbb", 6, "$RINGMQ.ack.n2.0",
                   "Ringmq-Node: n2\r\nRingmq-Qos: 1\r\nRingmq-Id: " + std::to_string(id) + "\r\n",
                   "m"));
  }
  EXPECT_EQ(Step(1),
            "PUB $RINGMQ.ack.n2.0 24\r\nnode-a.1\n100 101 102 103\r\n"
            "PUB $RINGMQ.ack.n2.0 12\r\nnode-a.1\n104\r\n");
  EXPECT_EQ(harness_->counters(1).cluster_acks_sent.Load(), 5u);
  // The table's subject bound: the second subject of a snapshot is refused and counted.
  Announce(1, 'S', 1, "+x.a\n+x.b\n");
  EXPECT_EQ(harness_->counters(1).cluster_interest_refused.Load(), 1u);
}

}  // namespace
}  // namespace ringmq::shard
