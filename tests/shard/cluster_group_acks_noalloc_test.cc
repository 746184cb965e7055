// Counts the allocations of at least once for shared-subscription groups (sacks lane;
// docs/cluster.md, "Shared subscriptions") once warm, on both sides, beside the acknowledged
// plain path:
//   publisher: a client's QoS 1 PUBLISH matched against the interest table (which finds the
//              group's slot), tracked in PendingAcks, forwarded with its id; the group's ack
//              ("q <queue>" then the ids) parsed and its PUBACKs released in order;
//   member:    a queue copy with an id and a reply subject taken on the share link, checked
//              against the group's duplicate window, delivered to the member, and its ack
//              batched and published at the step.
//
// Counted: every operator new while armed (tests/common/counting_new.h). Not counted: each
// received message's own Message (Message::Create mallocs it directly; steady_state_noalloc_test
// counts that one). The test's own bytes (PUBLISHes, acks, queue copies) are built before the
// count. The replacement applies to the whole executable: its own test binary
// (tests/shard/meson.build).
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "../common/counting_new.h"
#include "cluster/nats_link.h"
#include "cluster_harness.h"
#include "router_harness.h"
#include "shard/cluster_acks.h"

namespace ringmq::shard {
namespace {

using alloc_counting::AllocationsDuring;
using harness::Client;
using harness::MsgBytes;
using harness::RouterHarness;
using harness::RouterSink;

struct Counts {
  uint64_t publishing = 0;  // allocations while only publishing (1000 messages)
  uint64_t serving = 0;     // only serving the group (1000 queue copies)
  uint64_t both = 0;
};

// The scenario with the remote link n2.0 a member of the group (group) or a plain subscriber of
// the same subjects (the acknowledged plain path, for comparison in the same binary).
void RunScenario(bool group, Counts& counts) {
  Config config;
  config.threads = 1;
  RouterHarness harness(config, 1);
  Router& router = harness.router(0);
  std::vector<std::unique_ptr<RouterSink>> sinks;
  std::vector<std::unique_ptr<cluster::NatsLink>> links;
  for (const RouterSink::Feed feed : {RouterSink::Feed::kMain, RouterSink::Feed::kShares}) {
    ASSERT_NO_FATAL_FAILURE(harness::AddReadyLink(router, feed, 1048576, sinks, links));
  }
  cluster::NatsLink* const main = links[0].get();
  cluster::NatsLink* const share = links[1].get();
  SCOPED_TRACE(group ? "group" : "plain");
  router.AttachCluster(main, "node-a", "");
  ClusterAckOptions ack_options;
  router.StartClusterAcks(ack_options);
  router.AttachClusterShares(share);
  // A member here of group h on u/# (queue copies of n2's publishers), and n2.0 a member of
  // group g on t/# (or a plain subscriber of t/#), where this shard publishes.
  Client& member = harness.Connect("member");
  harness.Subscribe(member, "$share/h/u/#", mqtt::QoS::k0);
  main->OnReceived(0, harness::HmsgBytes("$RINGMQ.interest.a.n2.0", harness::kAnnounceSid, "",
                                         "Ringmq-Kind: S\r\nRingmq-Seq: 1\r\n",
                                         group ? "+q g-t_2F_23 t.>\n" : "+t.>\n"));
  const std::string acker = group ? "q g-t_2F_23\n" : "n2.0\n";
  Client& pub = harness.Connect("pub");
  std::string output;        // the main link's (TakeOutput swaps: capacities are kept)
  std::string share_output;  // the share link's
  const auto take_output = [&] {
    output.clear();
    main->TakeOutput(output);
    share_output.clear();
    share->TakeOutput(share_output);
  };
  router.ClusterAckStep();
  harness.Settle();
  take_output();

  constexpr int kPerIteration = 20;
  constexpr int kWarmIterations = 100;
  constexpr int kCountedIterations = 50;
  std::vector<harness::Bytes> publishes;
  for (int i = 0; i < kPerIteration; ++i) {
    publishes.push_back(harness::PublishBytes("t/x", std::string(64, 'p'), mqtt::QoS::k1,
                                              static_cast<uint16_t>(i + 1)));
  }
  // The first tracked id, from one probe; then ids follow one by one.
  harness.Send(pub, harness::PublishBytes("t/x", "probe", mqtt::QoS::k1, 100));
  harness.Settle();
  take_output();
  std::smatch found;
  ASSERT_TRUE(std::regex_search(output, found, std::regex("Ringmq-Id: ([0-9]+)")));
  uint64_t next_id = std::stoull(found[1]);
  std::vector<std::string> acks;      // per iteration: the group's ack of its 20 messages
  std::vector<std::string> copies;    // per iteration: 20 queue copies from n2.0
  acks.push_back(
      MsgBytes("$RINGMQ.ack.node-a.0", harness::kAckSid, acker + std::to_string(next_id++)));
  uint64_t copy_id = 1;
  for (int it = 0; it < kWarmIterations + 3 * kCountedIterations; ++it) {
    std::string ids;
    std::string bytes;
    for (int i = 0; i < kPerIteration; ++i) {
      ids += (i == 0 ? "" : " ") + std::to_string(next_id++);
      bytes += harness::HmsgBytes("u.y", 1, "$RINGMQ.ack.n2.0",
                                  "Ringmq-Node: n2\r\nRingmq-Qos: 1\r\nRingmq-Id: " +
                                      std::to_string(copy_id++) + "\r\n",
                                  std::string(64, 'q'));
    }
    acks.push_back(MsgBytes("$RINGMQ.ack.node-a.0", harness::kAckSid, acker + ids));
    copies.push_back(std::move(bytes));
  }
  size_t ack_index = 0;
  size_t copy_index = 0;
  main->OnReceived(harness.now_ms(), acks[ack_index++]);  // the probe's
  bool publish_on = true;
  bool serve_on = true;
  const auto iteration = [&] {
    if (publish_on) {
      for (const harness::Bytes& bytes : publishes) harness.Send(pub, bytes);
      harness.Settle();
      main->OnReceived(harness.now_ms(), acks[ack_index++]);
    }
    if (serve_on) share->OnReceived(harness.now_ms(), copies[copy_index++]);
    harness.Settle();
    router.ClusterAckStep();
    harness.Settle();
    take_output();
  };
  for (int i = 0; i < kWarmIterations; ++i) iteration();
  ASSERT_EQ(pub.Received(mqtt::PacketType::kPuback), 1u + kWarmIterations * kPerIteration)
      << "every PUBACK released by the group's acks";
  const auto counted = [&](bool publishing, bool serving) {
    publish_on = publishing;
    serve_on = serving;
    return AllocationsDuring([&] {
      for (int i = 0; i < kCountedIterations; ++i) iteration();
    });
  };
  const uint64_t group_acks_before = harness.counters(0).cluster_group_acks.Load();
  const uint64_t delivered_before = member.publishes_by_qos[0];
  const uint64_t pubacks_before = pub.Received(mqtt::PacketType::kPuback);
  counts.publishing = counted(true, false);
  counts.serving = counted(false, true);
  counts.both = counted(true, true);
  EXPECT_EQ(pub.Received(mqtt::PacketType::kPuback) - pubacks_before,
            2u * kCountedIterations * kPerIteration);
  EXPECT_EQ(member.publishes_by_qos[0] - delivered_before, 2u * kCountedIterations * kPerIteration);
  EXPECT_EQ(harness.counters(0).cluster_group_acks.Load() - group_acks_before,
            2u * kCountedIterations * kPerIteration);
  EXPECT_EQ(harness.counters(0).gauges.cluster_ack_pending.Load(), 0);
}

TEST(ClusterGroupAcksNoAllocTest, CounterSeesAllocations) {
  EXPECT_EQ(alloc_counting::AllocationsOfOneNew(), 1u);
}

// The member's side allocates nothing per message. The publisher's side allocates what the
// acknowledged plain path does, exactly: std::deque blocks of PendingAcks' entries and of the
// connection's deferred acks (a few per 20 messages, amortized; not group-specific), so waiting
// for a group adds no allocation to waiting for a link.
TEST(ClusterGroupAcksNoAllocTest, AGroupAllocatesNoMoreThanALinkAndItsMemberNothing) {
  Counts group;
  Counts plain;
  ASSERT_NO_FATAL_FAILURE(RunScenario(/*group=*/true, group));
  ASSERT_NO_FATAL_FAILURE(RunScenario(/*group=*/false, plain));
  EXPECT_EQ(group.serving, 0u) << "member: window, deliver, ack";
  EXPECT_EQ(plain.serving, 0u);
  EXPECT_EQ(group.publishing, plain.publishing) << "publisher: match, track, forward, release";
  EXPECT_EQ(group.both, plain.both);
  // The amortized deque blocks: well under one allocation per message.
  EXPECT_LE(group.publishing, 1000u / 4);
  std::printf("allocations per 1000 QoS 1 messages: group %llu, plain %llu\n",
              static_cast<unsigned long long>(group.publishing),
              static_cast<unsigned long long>(plain.publishing));
}

}  // namespace
}  // namespace ringmq::shard
