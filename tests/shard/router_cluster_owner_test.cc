// Client ids across nodes (router.h, "Client ids across nodes"; cluster/claim.h) through the
// sans-IO harness: each shard's router has a real NatsLink at kReady; the test reads the claims
// the links would publish and feeds them the claims other nodes would send.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/claim.h"
#include "cluster/nats_link.h"
#include "cluster/session_state.h"
#include "common/log.h"
#include "shard/cluster_owner.h"
#include "shard/outbox.h"
#include "shard/cluster_harness.h"
#include "shard/router_harness.h"
#include "shard/shared_state.h"

namespace ringmq::shard {
namespace {

using harness::Client;
using harness::RouterHarness;
using harness::RouterSink;

constexpr std::string_view kNode = "node-b";
constexpr std::string_view kWillTopic = "will/x";

class RouterClusterOwnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogLevel(LogLevel::kError);
    config_.threads = 2;
    harness_ = std::make_unique<RouterHarness>(config_, 2);
    for (uint32_t shard = 0; shard < 2; ++shard) {
      ASSERT_NO_FATAL_FAILURE(harness::AddReadyLink(harness_->router(shard),
                                                    RouterSink::Feed::kMain, 1024, sinks_, links_));
      cluster::NatsLink& l = *links_.back();
      harness_->router(shard).AttachCluster(&l, std::string(kNode), "");
      ASSERT_TRUE(harness_->router(shard).StartClusterOwnership().ok());
    }
  }
  void TearDown() override {
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  std::string Output(uint32_t shard) {
    std::string out;
    links_[shard]->TakeOutput(out);
    return out;
  }

  // The sid link `shard` gave the subscription of claim bucket `bucket` (SUBs are made in
  // bucket order from sid 1: BucketsOf).
  static uint64_t SidOf(uint32_t bucket) { return bucket / 2 + 1; }

  static constexpr uint64_t kStateSid = cluster::kClaimBuckets / 2 + 1;

  // A claim from another node, delivered as NATS would: to the shard that subscribes its bucket.
  // `reply`: its reply subject (a claimant that resumes its session).
  void DeliverClaim(const cluster::Claim& claim, std::string_view reply = {}) {
    const uint32_t bucket = cluster::ClaimBucket(claim.client_id);
    std::string subject;
    cluster::AppendClaimSubject("", bucket, subject);
    std::string payload;
    cluster::EncodeClaim(claim, payload);
    const std::string msg = "MSG " + subject + " " + std::to_string(SidOf(bucket)) + " " +
                            (reply.empty() ? "" : std::string(reply) + " ") +
                            std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
    links_[bucket % 2]->OnReceived(0, msg);
    harness_->Settle();
  }

  // A session state from another node on shard `shard`'s session subject.
  void DeliverState(uint32_t shard, std::string_view state) {
    const std::string msg = "MSG $RINGMQ.session.node-b." + std::to_string(shard) + " " +
                            std::to_string(kStateSid) + " " + std::to_string(state.size()) +
                            "\r\n" + std::string(state) + "\r\n";
    links_[shard]->OnReceived(0, msg);
    harness_->Settle();
  }

  // The claims in a link's output (PUB lines), parsed.
  struct Published {
    std::string subject;
    std::string reply;
    uint64_t key = 0;
    std::string node;
    bool clean_start = false;
    std::string client_id;
  };
  std::vector<Published> Claims(uint32_t shard) {
    std::vector<Published> out;
    std::string_view bytes;
    const std::string all = Output(shard);
    bytes = all;
    while (!bytes.empty()) {
      const size_t eol = bytes.find("\r\n");
      const std::string_view line = bytes.substr(0, eol);
      bytes.remove_prefix(eol + 2);
      if (!line.starts_with("PUB ")) continue;
      const size_t space = line.rfind(' ');
      const size_t size = std::stoul(std::string(line.substr(space + 1)));
      const std::string_view payload = bytes.substr(0, size);
      bytes.remove_prefix(size + 2);
      const std::optional<cluster::Claim> claim = cluster::ParseClaim(payload);
      EXPECT_TRUE(claim.has_value()) << payload;
      if (!claim) continue;
      const std::string_view head = line.substr(4, space - 4);  // subject [reply]
      const size_t gap = head.find(' ');
      out.push_back({std::string(head.substr(0, gap)),
                     gap == std::string_view::npos ? "" : std::string(head.substr(gap + 1)),
                     claim->key, std::string(claim->node), claim->clean_start,
                     std::string(claim->client_id)});
    }
    return out;
  }

  static mqtt::Connect WithWill(const std::string& client_id, bool clean_session = true) {
    mqtt::Connect connect = harness::ConnectPacket(client_id, clean_session);
    connect.will =
        mqtt::Will{.topic = kWillTopic, .payload = "gone", .qos = mqtt::QoS::k1, .retain = false};
    return connect;
  }

  metrics::ShardCounters& counters(uint32_t shard) { return harness_->counters(shard); }

  Config config_;
  std::unique_ptr<RouterHarness> harness_;
  std::vector<std::unique_ptr<RouterSink>> sinks_;
  std::vector<std::unique_ptr<cluster::NatsLink>> links_;
};

TEST_F(RouterClusterOwnerTest, EachShardSubscribesItsBucketsOnce) {
  // SetUp took the links' output before StartClusterOwnership: what is left are its SUBs.
  // Its buckets, then its session subject.
  EXPECT_EQ(links_[0]->subscription_count(), cluster::kClaimBuckets / 2 + 1);
  EXPECT_EQ(links_[1]->subscription_count(), cluster::kClaimBuckets / 2 + 1);
  const std::string subs = Output(1);
  EXPECT_TRUE(subs.starts_with("SUB $RINGMQ.claim.1 1\r\nSUB $RINGMQ.claim.3 2\r\n")) << subs;
  EXPECT_TRUE(subs.ends_with("SUB $RINGMQ.claim.255 128\r\nSUB $RINGMQ.session.node-b.1 129\r\n"))
      << subs;
}

TEST_F(RouterClusterOwnerTest, ConnectClaimsTheIdFromItsHomeShard) {
  Output(0);
  Output(1);
  const std::string id = harness_->IdOn(1, "dev");
  harness_->Connect(id, /*clean_session=*/false);
  EXPECT_TRUE(Claims(0).empty());
  const std::vector<Published> claims = Claims(1);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].subject, "$RINGMQ.claim." + std::to_string(cluster::ClaimBucket(id)));
  EXPECT_EQ(claims[0].node, kNode);
  EXPECT_FALSE(claims[0].clean_start);
  EXPECT_EQ(claims[0].reply, "$RINGMQ.session.node-b.1") << "it resumes: its state comes here";
  EXPECT_EQ(claims[0].client_id, id);
  EXPECT_GT(claims[0].key, 0u);
  EXPECT_EQ(counters(1).cluster_owner_claims_sent.Load(), 1u);
  // A second CONNECT of the id: a newer key.
  harness_->Connect(id);
  const std::vector<Published> again = Claims(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_GT(again[0].key, claims[0].key);
  EXPECT_TRUE(again[0].clean_start);
  EXPECT_EQ(again[0].reply, "") << "a clean session wants no state";
}

TEST_F(RouterClusterOwnerTest, ServerAssignedIdsAreNotClaimed) {
  Output(0);
  Output(1);
  harness_->Connect(std::string());  // MQTT-3.1.3-6: the server assigns one
  EXPECT_TRUE(Claims(0).empty());
  EXPECT_TRUE(Claims(1).empty());
}

TEST_F(RouterClusterOwnerTest, ANewerClaimClosesTheConnectionWithItsWillAndEndsTheSession) {
  Client& watcher = harness_->Connect(harness_->IdOn(1, "watcher"));
  harness_->Subscribe(watcher, kWillTopic);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(WithWill(id, /*clean_session=*/false));
  harness_->Subscribe(client, "t");
  DeliverClaim({.key = UINT64_MAX / 2, .node = "node-a", .clean_start = true, .client_id = id});
  EXPECT_EQ(client.connection.state(), net::Connection::State::kClosing) << "MQTT-3.1.4-2";
  EXPECT_EQ(watcher.publishes_by_qos[1], 1u) << "no DISCONNECT: its will (MQTT-3.1.2-8)";
  EXPECT_EQ(counters(0).cluster_owner_takeovers.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_sessions_ended.Load(), 1u);
  EXPECT_EQ(counters(0).session_takeovers.Load(), 0u) << "not a takeover on this node";
  EXPECT_EQ(harness_->router(0).session_count(), 0u);
  bool present = true;
  harness_->Connect(harness::ConnectPacket(id, /*clean_session=*/false), &present);
  EXPECT_FALSE(present) << "the session ended here";
}

TEST_F(RouterClusterOwnerTest, AnOlderClaimLeavesTheSessionAndClaimsItAgain) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(id);
  const std::vector<Published> own = Claims(0);
  ASSERT_EQ(own.size(), 1u);
  DeliverClaim({.key = own[0].key - 1, .node = "node-z", .clean_start = true, .client_id = id});
  EXPECT_EQ(client.connection.state(), net::Connection::State::kOpen);
  EXPECT_EQ(counters(0).cluster_owner_claims_kept.Load(), 1u);
  const std::vector<Published> again = Claims(0);
  ASSERT_EQ(again.size(), 1u) << "the claimant's connection must yield to ours";
  EXPECT_EQ(again[0].key, own[0].key);
  EXPECT_EQ(again[0].client_id, id);
  // Equal keys: the greater node name is newer. "node-a" < "node-b" (ours): kept.
  DeliverClaim({.key = own[0].key, .node = "node-a", .clean_start = true, .client_id = id});
  EXPECT_EQ(client.connection.state(), net::Connection::State::kOpen);
  EXPECT_EQ(counters(0).cluster_owner_claims_kept.Load(), 2u);
  // "node-c" > "node-b": it yields.
  DeliverClaim({.key = own[0].key, .node = "node-c", .clean_start = true, .client_id = id});
  EXPECT_EQ(client.connection.state(), net::Connection::State::kClosing);
}

TEST_F(RouterClusterOwnerTest, AClaimSeenBeforeAConnectMakesTheConnectNewer) {
  const std::string id = harness_->IdOn(0, "dev");
  // Another node's clock is far ahead: its claim arrives before our client connects.
  DeliverClaim({.key = UINT64_MAX / 2, .node = "node-z", .clean_start = true, .client_id = id});
  harness_->Connect(id);
  const std::vector<Published> claims = Claims(0);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_GT(claims[0].key, UINT64_MAX / 2) << "so node-z's connection yields to ours";
}

TEST_F(RouterClusterOwnerTest, AClaimReceivedOnAnotherShardReachesTheHomeShard) {
  // With 2 shards NATS delivers each claim to the id's home shard (bucket % 2); a node with 3
  // shards would not. Shard 0 gets a claim for an id of shard 1 on one of its claim sids.
  const std::string id = harness_->IdOn(1, "dev");
  Client& client = harness_->Connect(id);
  std::string payload;
  cluster::EncodeClaim(
      {.key = UINT64_MAX / 2, .node = "node-a", .clean_start = true, .client_id = id}, payload);
  const std::string msg = "MSG $RINGMQ.claim.0 " + std::to_string(SidOf(0)) + " " +
                          std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
  links_[0]->OnReceived(0, msg);
  harness_->Settle();
  EXPECT_EQ(counters(0).cluster_owner_claims_forwarded.Load(), 1u);
  EXPECT_EQ(client.connection.state(), net::Connection::State::kClosing);
  EXPECT_EQ(counters(1).cluster_owner_takeovers.Load(), 1u);
}

TEST_F(RouterClusterOwnerTest, OwnClaimsAndInvalidOnesChangeNothing) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(id);
  DeliverClaim({.key = UINT64_MAX / 2, .node = kNode, .clean_start = true, .client_id = id});
  EXPECT_EQ(client.connection.state(), net::Connection::State::kOpen) << "our own";
  EXPECT_EQ(counters(0).cluster_owner_claims_received.Load() +
                counters(1).cluster_owner_claims_received.Load(),
            0u);
  const std::string msg = "MSG $RINGMQ.claim.0 " + std::to_string(SidOf(0)) + " 5\r\nhello\r\n";
  links_[0]->OnReceived(0, msg);
  harness_->Settle();
  EXPECT_EQ(counters(0).cluster_owner_claims_invalid.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_unmappable_subjects.Load(), 0u) << "not taken for a topic";
}

TEST_F(RouterClusterOwnerTest, WithoutAReplySubjectAPersistentSessionEndsAndIsCountedNotMoved) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(id, /*clean_session=*/false);
  harness_->Drop(client);
  EXPECT_EQ(harness_->router(0).session_count(), 1u) << "offline";
  DeliverClaim({.key = UINT64_MAX / 2, .node = "node-a", .clean_start = false, .client_id = id});
  EXPECT_EQ(harness_->router(0).session_count(), 0u);
  EXPECT_EQ(counters(0).cluster_owner_sessions_not_moved.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_takeovers.Load(), 0u) << "no connection to close";
}

TEST_F(RouterClusterOwnerTest, AClaimForAnIdWithNoSessionHereOnlyMovesTheClock) {
  DeliverClaim({.key = 99, .node = "node-a", .clean_start = true, .client_id = "nobody"});
  const uint32_t home = harness_->HomeOf("nobody");
  EXPECT_EQ(counters(0).cluster_owner_claims_received.Load() +
                counters(1).cluster_owner_claims_received.Load(),
            1u);
  EXPECT_EQ(counters(home).cluster_owner_takeovers.Load(), 0u);
}

TEST_F(RouterClusterOwnerTest, AYieldingPersistentSessionSendsItsStateToTheClaimant) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(WithWill(id, /*clean_session=*/false));
  harness_->Subscribe(client, "t/#", mqtt::QoS::k1);
  harness_->Subscribe(client, "u", mqtt::QoS::k0);
  harness_->Drop(client);  // offline: QoS 1 is queued for it, its will was published
  Client& publisher = harness_->Connect(harness_->IdOn(1, "pub"));
  harness_->Send(publisher, harness::PublishBytes("t/a", "m1", mqtt::QoS::k1, 1));
  harness_->Send(publisher, harness::PublishBytes("t/b", "m2", mqtt::QoS::k1, 2));
  harness_->Send(publisher, harness::PublishBytes("u", "qos0", mqtt::QoS::k0));
  harness_->Settle();
  Output(0);
  DeliverClaim({.key = UINT64_MAX / 2, .node = "node-a", .clean_start = false, .client_id = id},
               "$RINGMQ.session.node-a.1");
  EXPECT_EQ(harness_->router(0).session_count(), 0u) << "the session is node-a's now";
  EXPECT_EQ(counters(0).cluster_owner_sessions_moved.Load(), 1u);
  const std::string out = Output(0);
  const std::string head = "PUB $RINGMQ.session.node-a.1 ";
  ASSERT_TRUE(out.starts_with(head)) << out;
  const size_t eol = out.find("\r\n");
  const size_t size = std::stoul(out.substr(head.size(), eol - head.size()));
  const std::string_view state = std::string_view(out).substr(eol + 2, size);
  std::vector<std::pair<std::string, uint8_t>> subscriptions;
  std::vector<std::string> messages;
  ASSERT_TRUE(cluster::ParseSessionState(
      state,
      [&](uint64_t key, std::string_view client_id) {
        EXPECT_EQ(key, UINT64_MAX / 2) << "it answers that claim";
        EXPECT_EQ(client_id, id);
        return true;
      },
      [&](const cluster::StateSubscription& s) {
        subscriptions.emplace_back(std::string(s.filter), s.options);
      },
      [&](const cluster::StateMessage& m) {
        messages.push_back(std::string(m.topic) + "=" + std::string(m.payload) + "@" +
                           std::to_string(m.qos));
      }));
  std::sort(subscriptions.begin(), subscriptions.end());
  EXPECT_EQ(subscriptions, (std::vector<std::pair<std::string, uint8_t>>{{"t/#", 1}, {"u", 0}}));
  EXPECT_EQ(messages, (std::vector<std::string>{"t/a=m1@1", "t/b=m2@1"})) << "in order";
}

TEST_F(RouterClusterOwnerTest, AStateMergesIntoTheClaimingSessionOnce) {
  const std::string id = harness_->IdOn(0, "dev");
  bool present = true;
  Client& client = harness_->Connect(harness::ConnectPacket(id, /*clean_session=*/false), &present);
  EXPECT_FALSE(present);
  const std::vector<Published> claims = Claims(0);
  ASSERT_EQ(claims.size(), 1u);
  std::string state;
  cluster::SessionStateWriter writer;
  ASSERT_TRUE(writer.Begin(state, 1 << 20, claims[0].key, id));
  ASSERT_TRUE(writer.AddSubscription({.filter = "s/#", .options = 1}));
  ASSERT_TRUE(writer.AddMessage({.topic = "s/a", .payload = "queued", .qos = 1}));
  writer.End();
  DeliverState(0, state);
  EXPECT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  EXPECT_EQ(client.publishes_by_qos[1], 1u) << "the queued message";
  Client& publisher = harness_->Connect(harness_->IdOn(1, "pub"));
  harness_->Send(publisher, harness::PublishBytes("s/b", "live", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_EQ(client.publishes_by_qos[1], 2u) << "through the moved subscription";
  // A state for another claim of the id (the client connected again since): not merged.
  std::string stale;
  ASSERT_TRUE(writer.Begin(stale, 1 << 20, claims[0].key + 1, id));
  ASSERT_TRUE(writer.AddMessage({.topic = "s/a", .payload = "old", .qos = 1}));
  writer.End();
  DeliverState(0, stale);
  EXPECT_EQ(counters(0).cluster_owner_states_stale.Load(), 1u);
  EXPECT_EQ(client.publishes_by_qos[1], 2u);
  DeliverState(0, "not a state");
  EXPECT_EQ(counters(0).cluster_owner_states_invalid.Load(), 1u);
}

TEST_F(RouterClusterOwnerTest, WhatDoesNotFitTheServersMaxPayloadIsLeftOutAndCounted) {
  // The test server's INFO says max_payload 1024.
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(id, /*clean_session=*/false);
  harness_->Subscribe(client, "big/#", mqtt::QoS::k1);
  harness_->Drop(client);
  Client& publisher = harness_->Connect(harness_->IdOn(1, "pub"));
  harness_->Send(publisher,
                 harness::PublishBytes("big/a", std::string(2000, 'x'), mqtt::QoS::k1, 1));
  harness_->Send(publisher, harness::PublishBytes("big/b", "small", mqtt::QoS::k1, 2));
  harness_->Settle();
  Output(0);
  DeliverClaim({.key = UINT64_MAX / 2, .node = "node-a", .clean_start = false, .client_id = id},
               "$RINGMQ.session.node-a.1");
  EXPECT_EQ(counters(0).cluster_owner_state_left_out.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_sessions_moved.Load(), 1u);
  const std::string out = Output(0);
  EXPECT_NE(out.find("big/b"), std::string::npos) << "the rest went";
  EXPECT_EQ(out.find(std::string(2000, 'x')), std::string::npos);
}

TEST(ClaimRecordTest, AClaimDroppedAtTheMailboxOverflowBoundIsFreedAndCounted) {
  SharedState shared(2, 0, retain::RetainedLimits{}, /*mailbox_memory=*/64 * 16 * 2);
  metrics::ShardCounters counters;
  {
    Outbox outbox(0, shared, /*overflow_bytes_max=*/0, counters);
    Mailbox& mailbox = shared.mailboxes.mailbox(0, 1);
    const Slot filler[] = {Slot{0, 0, 0}};
    while (mailbox.TryPush(filler).pushed) {
    }
    auto* record = new ClaimRecord{.key = 1, .node = "node-a", .client_id = "dev", .reply = ""};
    const Slot slots[] = {Slot{kClaim, 0, reinterpret_cast<uint64_t>(record)}};
    EXPECT_FALSE(outbox.Push(1, slots, sizeof(ClaimRecord))) << "not waiting: dropped";
    EXPECT_EQ(counters.cluster_owner_claims_dropped.Load(), 1u);  // and freed (LeakSanitizer)
  }
  while (shared.mailboxes.mailbox(0, 1).Drain([](std::span<const Slot>) {}, 1 << 16).more) {
  }
}

}  // namespace
}  // namespace ringmq::shard
