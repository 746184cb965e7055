// Router tests of shared subscriptions ("$share/{name}/{filter}", 5.0 §4.8.2, accepted from 3.1.1
// clients too): one member per message across shards, round robin per publishing shard, the hash
// strategy, a normal subscriber beside the group, offline persistent members skipped, the
// messages of a member that leaves or whose queue is full given to another member, retained
// messages not sent, UNSUBSCRIBE, the subscription cap, and a malformed share at 3.1.1.
//
// Two shards run on the test's thread (router_harness.h); members live on both shards, so
// deliveries cross mailboxes.
#include <gtest/gtest.h>

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
#include "ringmq/config.h"
#include "router_harness.h"
#include "shard/router.h"

namespace ringmq::shard {
namespace {

using harness::Client;
using harness::RouterHarness;

constexpr std::string_view kGroup = "$share/g/jobs/#";

class RouterSharedTest : public testing::Test {
 protected:
  void SetUp() override { SetLogLevel(LogLevel::kError); }
  void TearDown() override {
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  void Start(const Config& config = Config{}) {
    harness_ = std::make_unique<RouterHarness>(config, 2);
  }
  std::string IdOn(uint32_t shard, std::string_view base) { return harness_->IdOn(shard, base); }

  Client& Member(uint32_t shard, std::string_view name, bool clean_session = true,
                 std::string_view filter = kGroup) {
    Client& client = harness_->Connect(IdOn(shard, name), clean_session);
    EXPECT_EQ(harness_->Subscribe(client, filter), 1);
    return client;
  }

  // `count` PUBLISHes to jobs/<i> from `publisher`, each delivered (Settle) before the next.
  void Publish(Client& publisher, int count, mqtt::QoS qos = mqtt::QoS::k1) {
    for (int i = 0; i < count; ++i) {
      harness_->Send(publisher, harness::PublishBytes("jobs/" + std::to_string(i), "m", qos,
                                                      static_cast<uint16_t>(next_id_++)));
      harness_->Settle();
    }
  }

  // A counter summed over both shards.
  template <typename Member>
  uint64_t Sum(Member member) {
    return (harness_->counters(0).*member).Load() + (harness_->counters(1).*member).Load();
  }

  void Unsubscribe(Client& client, std::string_view filter) {
    const mqtt::TopicRequest request{filter, mqtt::QoS::k0};
    const std::span<const mqtt::TopicRequest> requests(&request, 1);
    harness::Bytes entries(mqtt::TopicListEncodedSize(requests, false));
    mqtt::EncodeTopicList(requests, false, entries);
    harness_->Send(client, mqtt::Unsubscribe{2, mqtt::TopicList(entries, false)});
    harness_->Settle();
  }

  std::unique_ptr<RouterHarness> harness_;
  int next_id_ = 1;
};

uint64_t Got(const Client& client) {
  return client.publishes_by_qos[0] + client.publishes_by_qos[1] + client.publishes_by_qos[2];
}

TEST_F(RouterSharedTest, EachMessageGoesToOneMemberRoundRobinPerPublishingShard) {
  Start();
  Client& a = Member(0, "a");
  Client& b = Member(1, "b");
  Client& c = Member(0, "c");
  Client& normal = harness_->Connect(IdOn(1, "normal"));
  harness_->Subscribe(normal, "jobs/#");
  Client& publisher0 = harness_->Connect(IdOn(0, "pub"));
  Client& publisher1 = harness_->Connect(IdOn(1, "pub"));
  Publish(publisher0, 30);
  Publish(publisher1, 30);
  // Each publishing shard has its own cursor: 10 each from each shard.
  EXPECT_EQ(Got(a), 20u);
  EXPECT_EQ(Got(b), 20u);
  EXPECT_EQ(Got(c), 20u);
  EXPECT_EQ(Got(normal), 60u) << "a normal subscriber beside the group gets every message";
  EXPECT_EQ(Sum(&metrics::ShardCounters::shared_deliveries), 60u);
  EXPECT_EQ(harness_->counters(0).gauges.shared_groups.Load() +
                harness_->counters(1).gauges.shared_groups.Load(),
            1);
}

TEST_F(RouterSharedTest, HashStrategyKeepsEachPublisherOnOneMember) {
  Config config;
  config.shared_subscription_strategy = SharedSubscriptionStrategy::kHash;
  Start(config);
  std::vector<Client*> members = {&Member(0, "a"), &Member(1, "b"), &Member(0, "c")};
  Client& publisher = harness_->Connect(IdOn(1, "pub"));
  Publish(publisher, 12);
  int receivers = 0;
  for (const Client* member : members) {
    if (Got(*member) != 0) {
      ++receivers;
      EXPECT_EQ(Got(*member), 12u);
    }
  }
  EXPECT_EQ(receivers, 1);
}

TEST_F(RouterSharedTest, OfflinePersistentMemberIsSkippedAndKeepsNothingNew) {
  Start();
  const std::string id = IdOn(1, "a");
  Client& a = Member(1, "a", /*clean_session=*/false);
  Client& b = Member(0, "b");
  harness_->Drop(a);
  harness_->Settle();
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  Publish(publisher, 10);
  EXPECT_EQ(Got(b), 10u) << "the offline member's flag turned the choice to b";
  EXPECT_GE(Sum(&metrics::ShardCounters::shared_skips), 5u);
  bool session_present = false;
  Client& back = harness_->Connect(id, /*clean_session=*/false, &session_present);
  EXPECT_TRUE(session_present);
  Publish(publisher, 10);
  harness_->Settle();
  EXPECT_EQ(Got(back), 5u) << "online again: back in the rotation, with nothing kept";
  EXPECT_EQ(Got(b), 15u);
}

// With every member offline, QoS 1 stays with a persistent member (the spec keeps a session's
// messages with it), QoS 0 is dropped; both counted in shared_no_member.
TEST_F(RouterSharedTest, NoOnlineMemberKeepsQos1ForAPersistentMember) {
  Start();
  const std::string id = IdOn(1, "a");
  Client& a = Member(1, "a", /*clean_session=*/false);
  harness_->Drop(a);
  harness_->Settle();
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  Publish(publisher, 3, mqtt::QoS::k1);
  Publish(publisher, 2, mqtt::QoS::k0);
  EXPECT_EQ(Sum(&metrics::ShardCounters::shared_no_member), 5u);
  Client& back = harness_->Connect(id, /*clean_session=*/false);
  harness_->Settle();
  EXPECT_EQ(back.publishes_by_qos[1], 3u);
  EXPECT_EQ(back.publishes_by_qos[0], 0u);
}

// A clean member that leaves with QoS 1 messages sent but not acknowledged, or still queued:
// they go to the group's other member, none is lost.
TEST_F(RouterSharedTest, CleanMemberLeavingHandsItsUnacknowledgedMessagesToTheGroup) {
  Config config;
  config.max_inflight = 2;
  Start(config);
  Client& a = Member(1, "a");
  a.auto_ack = false;  // reads, never acknowledges: 2 in flight, the rest queued
  Client& b = Member(0, "b");
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  Publish(publisher, 20);
  EXPECT_EQ(Got(a), 2u);
  EXPECT_EQ(Got(b), 10u);
  harness_->Drop(a);
  harness_->Settle();
  EXPECT_EQ(Got(b), 20u) << "a's 10 (2 unacknowledged, 8 queued) went to b";
  EXPECT_EQ(Sum(&metrics::ShardCounters::shared_rerouted), 10u);
}

// The same when the member unsubscribed from the group before it ended: what the group gave it
// is still the group's to re-route.
TEST_F(RouterSharedTest, MemberThatUnsubscribedThenEndsStillHandsItsMessagesToTheGroup) {
  Config config;
  config.max_inflight = 2;
  Start(config);
  Client& a = Member(1, "a");
  a.auto_ack = false;
  Client& b = Member(0, "b");
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  Publish(publisher, 10);
  EXPECT_EQ(Got(a), 2u);
  EXPECT_EQ(Got(b), 5u);
  Unsubscribe(a, kGroup);
  harness_->Drop(a);
  harness_->Settle();
  EXPECT_EQ(Got(b), 10u) << "a's 5 (2 unacknowledged, 3 queued) went to b";
}

// The publisher's shard cannot see a remote member's queue: a member whose queue is full when the
// record arrives passes the message on to another member.
TEST_F(RouterSharedTest, RemoteMemberWithAFullQueuePassesTheMessageOn) {
  Config config;
  config.max_inflight = 1;
  config.max_queued_messages = 1;
  Start(config);
  Client& a = Member(1, "a");
  a.auto_ack = false;
  Client& b = Member(0, "b");
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  Publish(publisher, 20);
  EXPECT_EQ(Got(a), 1u);
  EXPECT_EQ(Got(a) + Got(b), 19u) << "one more waits in a's queue";
  EXPECT_EQ(harness_->counters(1).gauges.queued_messages.Load(), 1);
  EXPECT_GE(Sum(&metrics::ShardCounters::shared_rerouted), 1u);
  EXPECT_EQ(Sum(&metrics::ShardCounters::dropped_queue_full), 0u);
}

// A full member on the publisher's own shard is skipped at the choice.
TEST_F(RouterSharedTest, LocalMemberWithAFullQueueIsSkipped) {
  Config config;
  config.max_inflight = 1;
  config.max_queued_messages = 1;
  Start(config);
  Client& a = Member(0, "a");
  a.auto_ack = false;
  Client& b = Member(1, "b");
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  Publish(publisher, 20);
  EXPECT_EQ(Got(a), 1u);
  EXPECT_EQ(Got(a) + Got(b), 19u);
  EXPECT_GE(Sum(&metrics::ShardCounters::shared_skips), 1u);
  EXPECT_EQ(Sum(&metrics::ShardCounters::dropped_queue_full), 0u);
}

// 5.0 §4.8.2: retained messages are not sent for a shared subscription.
TEST_F(RouterSharedTest, RetainedMessagesAreNotSentOnASharedSubscription) {
  Start();
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  mqtt::Publish retained;
  retained.topic = "jobs/r";
  retained.payload = "kept";
  retained.qos = mqtt::QoS::k1;
  retained.packet_id = 1;
  retained.retain = true;
  harness_->Send(publisher, retained);
  harness_->Settle();
  Client& member = Member(1, "member");
  Client& normal = harness_->Connect(IdOn(1, "normal"));
  harness_->Subscribe(normal, "jobs/#");
  harness_->Settle();
  EXPECT_EQ(Got(member), 0u);
  EXPECT_EQ(Got(normal), 1u);
}

TEST_F(RouterSharedTest, UnsubscribeLeavesTheGroup) {
  Start();
  Client& a = Member(0, "a");
  Client& b = Member(1, "b");
  Unsubscribe(a, kGroup);
  Client& publisher = harness_->Connect(IdOn(0, "pub"));
  Publish(publisher, 6);
  EXPECT_EQ(Got(a), 0u);
  EXPECT_EQ(Got(b), 6u);
  Unsubscribe(b, kGroup);
  EXPECT_EQ(harness_->shared().trie.group_count(), 0u);
  EXPECT_EQ(harness_->counters(0).gauges.shared_groups.Load() +
                harness_->counters(1).gauges.shared_groups.Load(),
            0);
}

TEST_F(RouterSharedTest, SessionEndRemovesItsMemberships) {
  Start();
  Client& a = Member(0, "a");
  harness_->Drop(a);
  harness_->Settle();
  EXPECT_EQ(harness_->shared().trie.group_count(), 0u);
  EXPECT_EQ(harness_->shared().trie.subscription_count(), 0u);
}

TEST_F(RouterSharedTest, MembershipsCountAgainstMaxSubscriptionsPerSession) {
  Config config;
  config.max_subscriptions_per_session = 2;
  Start(config);
  Client& client = harness_->Connect(IdOn(0, "c"));
  EXPECT_EQ(harness_->Subscribe(client, "a"), 1);
  EXPECT_EQ(harness_->Subscribe(client, "$share/g/a"), 1);
  EXPECT_EQ(harness_->Subscribe(client, "$share/h/a"), mqtt::kSubackFailure);
  EXPECT_EQ(harness_->counters(0).subscribe_limit.Load(), 1u);
}

// At 3.1.1 "$share/..." is an ordinary filter to the codec (which closes the connection for
// "$share/g+/a", a '+' not alone in its level, MQTT-4.7.1-3); a well-formed filter that is no
// well-formed share is refused for that filter only (5.0:MQTT-4.8.2-1).
TEST_F(RouterSharedTest, MalformedShareIsRefusedAt311) {
  Start();
  Client& client = harness_->Connect(IdOn(0, "c"));
  EXPECT_EQ(harness_->Subscribe(client, "$share/g"), mqtt::kSubackFailure);
  EXPECT_EQ(harness_->Subscribe(client, "$share//a"), mqtt::kSubackFailure);
  EXPECT_EQ(harness_->Subscribe(client, "$share/g/"), mqtt::kSubackFailure);
  EXPECT_EQ(harness_->shared().trie.subscription_count(), 0u);
}

}  // namespace
}  // namespace ringmq::shard
