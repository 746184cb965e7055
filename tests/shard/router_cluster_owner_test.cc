// Client ids across nodes (router.h, "Client ids across nodes"; cluster/claim.h) through the
// sans-IO harness: each shard's router has a real NatsLink at kReady; the test reads the claims
// the links would publish and feeds them the claims other nodes would send.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/claim.h"
#include "cluster/nats_link.h"
#include "cluster/session_state.h"
#include "common/log.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "shard/cluster_harness.h"
#include "shard/cluster_owner.h"
#include "shard/outbox.h"
#include "shard/router_harness.h"
#include "shard/shared_state.h"

namespace ringmq::shard {
namespace {

using harness::Client;
using harness::RouterHarness;
using harness::RouterSink;

constexpr std::string_view kOwnerNode = "node-b";
constexpr std::string_view kOwnerWillTopic = "will/x";

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
      harness_->router(shard).AttachCluster(&l, std::string(kOwnerNode), "");
      ASSERT_TRUE(harness_->router(shard).StartClusterOwnership(batch_options_).ok());
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

  // The sid link `shard` gave the subscription of claim group `group` (SUBs are made in group
  // order from sid 1: BucketsOf).
  static uint64_t SidOf(uint32_t group) { return group / 2 + 1; }

  static constexpr uint64_t kStateSid = cluster::kClaimBuckets / 2 + 1;

  // A batch of claims from another node (the node of the first), on the subject of `group`,
  // delivered as NATS would: to the shard that subscribes that group. `reply`: its reply
  // subject (a claimant that resumes its session).
  void DeliverBatch(const std::vector<cluster::Claim>& claims, uint32_t group,
                    std::string_view reply = {}) {
    std::string subject;
    cluster::AppendClaimSubject("", group, subject);
    std::string payload;
    cluster::ClaimBatchWriter writer;
    writer.Begin(claims.front().node, payload);
    for (const cluster::Claim& claim : claims) {
      writer.Add(claim.key, claim.clean_start, claim.client_id, payload);
    }
    const std::string msg = "MSG " + subject + " " + std::to_string(SidOf(group)) + " " +
                            (reply.empty() ? "" : std::string(reply) + " ") +
                            std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
    links_[group % 2]->OnReceived(0, msg);
    harness_->Settle();
  }
  // One claim, in a batch of its own on the group a node with as many shards uses for it.
  void DeliverClaim(const cluster::Claim& claim, std::string_view reply = {}) {
    DeliverBatch({claim}, harness_->HomeOf(claim.client_id), reply);
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
  // The claims a shard publishes, its batch sent first as when its window ends; `batches`:
  // how many PUBs carried them.
  std::vector<Published> Claims(uint32_t shard, size_t* batches = nullptr) {
    harness_->router(shard).ClaimStep(UINT64_MAX);
    return PublishedClaims(shard, batches);
  }
  // The claims in a link's output (PUB lines), parsed; nothing is sent first.
  std::vector<Published> PublishedClaims(uint32_t shard, size_t* batches = nullptr) {
    std::vector<Published> out;
    if (batches != nullptr) *batches = 0;
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
      cluster::ClaimBatchReader reader;
      EXPECT_TRUE(reader.Open(payload)) << payload;
      if (batches != nullptr) ++*batches;
      const std::string_view head = line.substr(4, space - 4);  // subject [reply]
      const size_t gap = head.find(' ');
      cluster::Claim claim;
      while (reader.Next(claim)) {
        out.push_back({std::string(head.substr(0, gap)),
                       gap == std::string_view::npos ? "" : std::string(head.substr(gap + 1)),
                       claim.key, std::string(claim.node), claim.clean_start,
                       std::string(claim.client_id)});
      }
    }
    return out;
  }

  static mqtt::Connect WithWill(const std::string& client_id, bool clean_session = true) {
    mqtt::Connect connect = harness::ConnectPacket(client_id, clean_session);
    connect.will = mqtt::Will{
        .topic = kOwnerWillTopic, .payload = "gone", .qos = mqtt::QoS::k1, .retain = false};
    return connect;
  }

  metrics::ShardCounters& counters(uint32_t shard) { return harness_->counters(shard); }

  // The set-up of the moved-properties tests: a 5.0 client with a persistent session on shard
  // 0, its claim taken, and the state another node sends for that claim, begun.
  struct MovedState {
    std::string id;
    Client* client = nullptr;  // recording; null when Moved::kOffline dropped it
    uint64_t key = 0;          // of the client's claim
    harness::Bytes block;      // every forwarded property (MovedBlock(60): MovedExpected())
    std::string state;
    cluster::SessionStateWriter writer;  // begun on `state`; the test adds, Deliver ends

    std::string_view block_view() const {
      return {reinterpret_cast<const char*>(block.data()), block.size()};
    }
    // A queued QoS 1 message with every property and `expiry_left_ms` of its expiry left.
    bool AddWithBlock(std::string_view topic, std::string_view payload, uint64_t expiry_left_ms) {
      return writer.AddMessage({.topic = topic,
                                .payload = payload,
                                .qos = 1,
                                .properties = block_view(),
                                .expires = true,
                                .expiry_left_ms = expiry_left_ms});
    }
  };
  enum class Moved { kOnline, kOffline };
  // Fills `moved` (in place: the writer points at its state); kOffline drops the client once
  // its claim is taken, so the state arrives for a session without a connection.
  void BeginMovedState(MovedState& moved, Moved when);
  // Ends the state and delivers it to shard 0.
  void DeliverMoved(MovedState& moved) {
    moved.writer.End();
    DeliverState(0, moved.state);
  }
  // The client connecting again (recording), its session resumed.
  Client& ReconnectMoved(const MovedState& moved);

  Config config_;
  ClaimBatchOptions batch_options_;  // before SetUp: the defaults
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
  EXPECT_TRUE(subs.starts_with("SUB $RINGMQ.claims.1 1\r\nSUB $RINGMQ.claims.3 2\r\n")) << subs;
  EXPECT_TRUE(subs.ends_with("SUB $RINGMQ.claims.255 128\r\nSUB $RINGMQ.session.node-b.1 129\r\n"))
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
  EXPECT_EQ(claims[0].subject, "$RINGMQ.claims.1") << "the group of the home shard";
  EXPECT_EQ(claims[0].node, kOwnerNode);
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
  harness_->Subscribe(watcher, kOwnerWillTopic);
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
  // A node with as many shards (2) sends each shard's claims on that shard's group, which
  // lands on the same shard here; a node with 3 shards would not. Shard 0 gets a claim for an
  // id of shard 1 on one of its claim sids (group 0).
  const std::string id = harness_->IdOn(1, "dev");
  Client& client = harness_->Connect(id);
  DeliverBatch({{.key = UINT64_MAX / 2, .node = "node-a", .clean_start = true, .client_id = id}},
               /*group=*/0);
  EXPECT_EQ(counters(0).cluster_owner_claims_forwarded.Load(), 1u);
  EXPECT_EQ(client.connection.state(), net::Connection::State::kClosing);
  EXPECT_EQ(counters(1).cluster_owner_takeovers.Load(), 1u);
}

TEST_F(RouterClusterOwnerTest, OwnClaimsAndInvalidOnesChangeNothing) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(id);
  DeliverClaim({.key = UINT64_MAX / 2, .node = kOwnerNode, .clean_start = true, .client_id = id});
  EXPECT_EQ(client.connection.state(), net::Connection::State::kOpen) << "our own";
  EXPECT_EQ(counters(0).cluster_owner_claims_received.Load() +
                counters(1).cluster_owner_claims_received.Load(),
            0u);
  const std::string msg = "MSG $RINGMQ.claims.0 " + std::to_string(SidOf(0)) + " 5\r\nhello\r\n";
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

// ---- moveprops lane: MQTT 5.0 properties of moved messages (cluster/session_state.h) ----

harness::Bytes MovedEncode5(const mqtt::Packet& packet) {
  harness::Bytes bytes(mqtt::EncodedSize(packet, mqtt::ProtocolLevel::kMqtt5));
  EXPECT_EQ(mqtt::Encode(packet, bytes, mqtt::ProtocolLevel::kMqtt5), bytes.size());
  return bytes;
}

// Every property a server forwards (5.0:3.3.2.3), User Properties with a repeated name
// (MQTT-3.3.2-17, -18), and a Message Expiry Interval of `expiry_s`.
harness::Bytes MovedBlock(uint32_t expiry_s) {
  harness::Bytes block(512);
  size_t size = 0;
  const auto rest = [&] { return std::span<uint8_t>(block).subspan(size); };
  size += mqtt::EncodeIntegerProperty(mqtt::PropertyId::kPayloadFormatIndicator, 1, rest());
  size += mqtt::EncodeIntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, expiry_s, rest());
  size += mqtt::EncodeStringProperty(mqtt::PropertyId::kContentType, "text/plain", rest());
  size += mqtt::EncodeStringProperty(mqtt::PropertyId::kResponseTopic, "reply/to", rest());
  size += mqtt::EncodeStringProperty(mqtt::PropertyId::kCorrelationData,
                                     std::string_view("\x00\xff\r\n", 4), rest());
  size += mqtt::EncodeUserProperty("k", "2", rest());
  size += mqtt::EncodeUserProperty("other", "x", rest());
  size += mqtt::EncodeUserProperty("k", "1", rest());
  block.resize(size);
  return block;
}

// The properties of a delivered PUBLISH, each as "name=value", in order; the Message Expiry
// Interval apart (`expiry_s`: its value, or -1 without one).
std::vector<std::string> MovedPropertiesOf(const mqtt::Publish& publish, int64_t& expiry_s) {
  std::vector<std::string> out;
  expiry_s = -1;
  for (const mqtt::Property property : publish.properties) {
    switch (property.id) {
      case mqtt::PropertyId::kMessageExpiryInterval:
        expiry_s = property.integer;
        break;
      case mqtt::PropertyId::kPayloadFormatIndicator:
        out.push_back("format=" + std::to_string(property.integer));
        break;
      case mqtt::PropertyId::kContentType:
        out.push_back("content=" + std::string(property.text));
        break;
      case mqtt::PropertyId::kResponseTopic:
        out.push_back("response=" + std::string(property.text));
        break;
      case mqtt::PropertyId::kCorrelationData:
        out.push_back("correlation=" + std::string(property.text));
        break;
      case mqtt::PropertyId::kUserProperty:
        out.push_back("user " + std::string(property.text) + "=" +
                      std::string(property.pair_value));
        break;
      default:
        out.push_back("other " + std::to_string(static_cast<int>(property.id)));
        break;
    }
  }
  return out;
}

const std::vector<std::string>& MovedExpected() {
  static const std::vector<std::string> expected = {
      "format=1",          "content=text/plain",
      "response=reply/to", "correlation=" + std::string("\x00\xff\r\n", 4),
      "user k=2",          "user other=x",
      "user k=1"};
  return expected;
}

// The PUBLISHes a recording 5.0 client read.
std::vector<mqtt::Publish> MovedPublishes(const Client& client) {
  std::vector<mqtt::Publish> publishes;
  for (const harness::Bytes& bytes : client.recorded) {
    const mqtt::Frame frame =
        mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength, mqtt::ProtocolLevel::kMqtt5);
    EXPECT_EQ(frame.status, mqtt::FrameStatus::kComplete);
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, std::span<const uint8_t>(bytes).subspan(frame.header.header_length),
        mqtt::ProtocolLevel::kMqtt5);
    EXPECT_TRUE(packet.ok());
    if (packet.ok()) publishes.push_back(std::get<mqtt::Publish>(packet.value()));
  }
  return publishes;
}

// A 5.0 CONNECT of `client_id` (which it views) with a Session Expiry Interval of an hour:
// Clean Start 0 resumes a session that outlives the connection (5.0:3.1.2.11.2).
mqtt::Connect MovedConnect5(const std::string& client_id, const uint8_t (&expiry)[5]) {
  mqtt::Connect connect = harness::ConnectPacket(client_id, /*clean_session=*/false);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  connect.properties = mqtt::Properties(std::span<const uint8_t>(expiry, 5));
  return connect;
}
constexpr uint8_t kMovedSessionExpiry[5] = {0x11, 0x00, 0x00, 0x0E, 0x10};  // 3600 s

void RouterClusterOwnerTest::BeginMovedState(MovedState& moved, Moved when) {
  moved.id = harness_->IdOn(0, "dev5");
  Client& client = harness_->Connect(MovedConnect5(moved.id, kMovedSessionExpiry));
  client.record = true;
  const std::vector<Published> claims = Claims(0);
  ASSERT_EQ(claims.size(), 1u);
  moved.key = claims[0].key;
  if (when == Moved::kOffline) {
    harness_->Drop(client);
  } else {
    moved.client = &client;
  }
  moved.block = MovedBlock(60);
  ASSERT_TRUE(moved.writer.Begin(moved.state, 1 << 20, moved.key, moved.id));
}

Client& RouterClusterOwnerTest::ReconnectMoved(const MovedState& moved) {
  Client& again = harness_->Connect(MovedConnect5(moved.id, kMovedSessionExpiry));
  again.record = true;
  harness_->Settle();
  return again;
}

TEST_F(RouterClusterOwnerTest, AYieldingSessionSendsItsMessagesPropertiesAndTheExpiryLeft) {
  const std::string id = harness_->IdOn(0, "dev5");
  Client& client = harness_->Connect(MovedConnect5(id, kMovedSessionExpiry));
  harness_->Subscribe5(client, mqtt::TopicRequest{.filter = "p/#", .qos = mqtt::QoS::k1});
  harness_->Drop(client);
  ASSERT_EQ(harness_->router(0).session_count(), 1u) << "offline, kept for an hour";
  const std::string publisher_id = harness_->IdOn(1, "pub5");
  mqtt::Connect publisher_connect = harness::ConnectPacket(publisher_id, true);
  publisher_connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& publisher = harness_->Connect(publisher_connect);
  const harness::Bytes block = MovedBlock(60);
  const harness::Bytes short_lived = MovedBlock(1);
  const auto publish = [&](std::string_view topic, std::span<const uint8_t> properties,
                           uint16_t packet_id) {
    harness_->Send(publisher,
                   MovedEncode5(mqtt::Publish{.topic = topic,
                                              .payload = "m",
                                              .qos = mqtt::QoS::k1,
                                              .retain = false,
                                              .packet_id = packet_id,
                                              .properties = mqtt::Properties(properties)}));
  };
  publish("p/every", block, 1);
  publish("p/expires", short_lived, 2);
  publish("p/none", {}, 3);
  harness_->Settle();
  harness_->now_ms() += 1500;  // p/expires has expired; p/every has 58.5 s left
  const uint64_t expired_before = counters(0).messages_expired.Load();
  Output(0);
  DeliverClaim({.key = UINT64_MAX / 2, .node = "node-a", .clean_start = false, .client_id = id},
               "$RINGMQ.session.node-a.1");
  EXPECT_EQ(counters(0).cluster_owner_sessions_moved.Load(), 1u);
  EXPECT_EQ(counters(0).messages_expired.Load(), expired_before + 1)
      << "5.0:3.3.2.3.3: the expired queued message is not sent, here or there";
  const std::string out = Output(0);
  const std::string head = "PUB $RINGMQ.session.node-a.1 ";
  ASSERT_TRUE(out.starts_with(head)) << out;
  const size_t eol = out.find("\r\n");
  const size_t size = std::stoul(out.substr(head.size(), eol - head.size()));
  const std::string_view state = std::string_view(out).substr(eol + 2, size);
  ASSERT_TRUE(state.starts_with("RS3"));
  std::vector<std::string> messages;
  ASSERT_TRUE(cluster::ParseSessionState(
      state, [&](uint64_t, std::string_view) { return true; },
      [&](const cluster::StateSubscription&) {},
      [&](const cluster::StateMessage& m) {
        messages.push_back(
            std::string(m.topic) + (m.expires ? " left " : " no expiry ") +
            std::to_string(m.expiry_left_ms) +
            (m.properties ==
                     std::string_view(reinterpret_cast<const char*>(block.data()), block.size())
                 ? " publisher's block"
                 : " block of " + std::to_string(m.properties.size())));
      }));
  EXPECT_EQ(messages, (std::vector<std::string>{"p/every left 58500 publisher's block",
                                                "p/none no expiry 0 block of 0"}));
}

TEST_F(RouterClusterOwnerTest, MovedMessagesReachA5ClientWithEveryPropertyAndTheirExpiry) {
  MovedState moved;
  ASSERT_NO_FATAL_FAILURE(BeginMovedState(moved, Moved::kOnline));
  ASSERT_TRUE(moved.writer.AddSubscription({.filter = "s/#", .options = 1}));
  ASSERT_TRUE(moved.AddWithBlock("s/every", "a", 29'001));
  ASSERT_TRUE(moved.AddWithBlock("s/expired", "b", 0));
  ASSERT_TRUE(moved.writer.AddMessage({.topic = "s/none", .payload = "c", .qos = 1}));
  const uint64_t expired_before = counters(0).messages_expired.Load();
  DeliverMoved(moved);
  EXPECT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  EXPECT_EQ(counters(0).messages_expired.Load(), expired_before + 1) << "s/expired not sent";
  const std::vector<mqtt::Publish> publishes = MovedPublishes(*moved.client);
  ASSERT_EQ(publishes.size(), 2u);
  EXPECT_EQ(publishes[0].topic, "s/every");
  int64_t expiry_s = 0;
  EXPECT_EQ(MovedPropertiesOf(publishes[0], expiry_s), MovedExpected());
  EXPECT_EQ(expiry_s, 30) << "MQTT-3.3.2-6: the time left, rounded up";
  EXPECT_EQ(publishes[1].topic, "s/none");
  EXPECT_TRUE(MovedPropertiesOf(publishes[1], expiry_s).empty());
  EXPECT_EQ(expiry_s, -1);
}

TEST_F(RouterClusterOwnerTest, AMovedMessageWaitingOfflineExpiresOnTheNewNodesClock) {
  // The client left before its CONNACK-time state arrived: the messages wait in the session.
  MovedState moved;
  ASSERT_NO_FATAL_FAILURE(BeginMovedState(moved, Moved::kOffline));
  ASSERT_TRUE(moved.AddWithBlock("s/short", "a", 2'000));
  ASSERT_TRUE(moved.AddWithBlock("s/long", "b", 10'000));
  DeliverMoved(moved);
  ASSERT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  harness_->now_ms() += 3'000;  // s/short expires while offline; s/long has 7 s left
  const uint64_t expired_before = counters(0).messages_expired.Load();
  const std::vector<mqtt::Publish> publishes = MovedPublishes(ReconnectMoved(moved));
  ASSERT_EQ(publishes.size(), 1u);
  EXPECT_EQ(publishes[0].topic, "s/long");
  int64_t expiry_s = 0;
  EXPECT_EQ(MovedPropertiesOf(publishes[0], expiry_s), MovedExpected());
  EXPECT_EQ(expiry_s, 7);
  EXPECT_EQ(counters(0).messages_expired.Load(), expired_before + 1);
}

TEST_F(RouterClusterOwnerTest, ARestoredInFlightMessageIsResentWithItsPropertiesEvenExpired) {
  // MQTT-4.4.0-1: restored in flight (no connection used the session yet), it is resent with
  // DUP, its packet id and its properties; its delivery started on the old node, so 0 ms left
  // does not stop it (5.0:3.3.2.3.3), and it goes with a Message Expiry Interval of 0.
  MovedState moved;
  ASSERT_NO_FATAL_FAILURE(BeginMovedState(moved, Moved::kOffline));
  ASSERT_TRUE(moved.writer.AddMessage({.topic = "s/inflight",
                                       .payload = "a",
                                       .qos = 1,
                                       .packet_id = 5,
                                       .stage = cluster::StateStage::kInFlight,
                                       .properties = moved.block_view(),
                                       .expires = true,
                                       .expiry_left_ms = 0}));
  DeliverMoved(moved);
  ASSERT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  ASSERT_EQ(counters(0).cluster_session_inflight_restored.Load(), 1u);
  const uint64_t expired_before = counters(0).messages_expired.Load();
  const std::vector<mqtt::Publish> publishes = MovedPublishes(ReconnectMoved(moved));
  ASSERT_EQ(publishes.size(), 1u);
  EXPECT_EQ(publishes[0].topic, "s/inflight");
  EXPECT_TRUE(publishes[0].dup);
  EXPECT_EQ(publishes[0].packet_id, 5u);
  int64_t expiry_s = -1;
  EXPECT_EQ(MovedPropertiesOf(publishes[0], expiry_s), MovedExpected());
  EXPECT_EQ(expiry_s, 0);
  EXPECT_EQ(counters(0).messages_expired.Load(), expired_before);
}

TEST_F(RouterClusterOwnerTest, AStateInTheFormatBeforePropertiesStillMerges) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(id, /*clean_session=*/false);
  const std::vector<Published> claims = Claims(0);
  ASSERT_EQ(claims.size(), 1u);
  std::string state;
  cluster::SessionStateWriter writer;
  ASSERT_TRUE(
      writer.Begin(state, 1 << 20, claims[0].key, id, cluster::kSessionStateVersionNoProperties));
  ASSERT_TRUE(writer.AddSubscription({.filter = "s/#", .options = 1}));
  ASSERT_TRUE(writer.AddMessage({.topic = "s/a", .payload = "queued", .qos = 1}));
  writer.End();
  ASSERT_TRUE(state.starts_with("RS2"));
  DeliverState(0, state);
  EXPECT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_states_invalid.Load(), 0u);
  EXPECT_EQ(client.publishes_by_qos[1], 1u);
}

TEST_F(RouterClusterOwnerTest, AStateWithABadPropertyBlockIsRefusedWholeAndCounted) {
  MovedState moved;
  ASSERT_NO_FATAL_FAILURE(BeginMovedState(moved, Moved::kOnline));
  ASSERT_TRUE(moved.writer.AddSubscription({.filter = "s/#", .options = 1}));
  ASSERT_TRUE(moved.writer.AddMessage({.topic = "s/a", .payload = "good", .qos = 1}));
  // A Topic Alias of 0 (5.0:3.3.2.3.4: not permitted).
  ASSERT_TRUE(moved.writer.AddMessage({.topic = "s/b",
                                       .payload = "bad",
                                       .qos = 1,
                                       .properties = std::string_view("\x23\x00\x00", 3)}));
  DeliverMoved(moved);
  EXPECT_EQ(counters(0).cluster_owner_states_invalid.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_states_merged.Load(), 0u);
  EXPECT_TRUE(moved.client->recorded.empty()) << "nothing of it merged";
}

class RouterMovedExpiryBoundTest : public RouterClusterOwnerTest {
 protected:
  RouterMovedExpiryBoundTest() { config_.max_message_expiry_s = 10; }
};

TEST_F(RouterMovedExpiryBoundTest, TheNewNodesMaxMessageExpiryBoundsAMovedMessage) {
  // As for a message from another node (ClusterMqtt5Fields): this node's max_message_expiry
  // bounds the time left it is given.
  MovedState moved;
  ASSERT_NO_FATAL_FAILURE(BeginMovedState(moved, Moved::kOnline));
  ASSERT_TRUE(moved.AddWithBlock("s/a", "a", 50'000));
  DeliverMoved(moved);
  const std::vector<mqtt::Publish> publishes = MovedPublishes(*moved.client);
  ASSERT_EQ(publishes.size(), 1u);
  int64_t expiry_s = 0;
  EXPECT_EQ(MovedPropertiesOf(publishes[0], expiry_s), MovedExpected());
  EXPECT_EQ(expiry_s, 10);
}

// ---- claims lane: batches (cluster_owner.h, "Batches") ----

TEST_F(RouterClusterOwnerTest, ConnectsWithinTheWindowGoInOneNatsMessage) {
  Output(0);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(harness_->IdOn(0, "burst" + std::to_string(i)));
    harness_->Connect(ids.back());
  }
  harness_->router(0).ClaimStep(0);  // the window has not ended
  EXPECT_TRUE(PublishedClaims(0).empty()) << "held for the window";
  EXPECT_EQ(counters(0).cluster_owner_claims_sent.Load(), 0u);
  size_t batches = 0;
  const std::vector<Published> claims = Claims(0, &batches);
  EXPECT_EQ(batches, 1u) << "one NATS message";
  ASSERT_EQ(claims.size(), 5u);
  for (size_t i = 0; i < claims.size(); ++i) {
    EXPECT_EQ(claims[i].client_id, ids[i]) << "in CONNECT order";
    EXPECT_TRUE(claims[i].clean_start);
    EXPECT_EQ(claims[i].subject, "$RINGMQ.claims.0");
    EXPECT_EQ(claims[i].reply, "") << "no claim resumes: the batch asks for no state";
    if (i > 0) {
      EXPECT_GT(claims[i].key, claims[i - 1].key) << "keys stamped at each CONNECT";
    }
  }
  EXPECT_EQ(counters(0).cluster_owner_claims_sent.Load(), 5u);
  EXPECT_EQ(counters(0).cluster_owner_batches_window.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_batches_count.Load(), 0u);
  EXPECT_EQ(counters(0).cluster_owner_batches_bytes.Load(), 0u);
  EXPECT_TRUE(Claims(0).empty()) << "nothing held any more";
}

// A claimant that resumes its session waits for the session's state before its CONNACK (with
// JetStream), and the holder sends it only when the claim arrives: a `p` claim does not wait
// for the window. It takes the clean claims held before it along, in the same NATS message.
TEST_F(RouterClusterOwnerTest, AClaimThatResumesItsSessionGoesAtTheEndOfTheLoopIteration) {
  Output(0);
  const std::string clean = harness_->IdOn(0, "held");
  const std::string resumes = harness_->IdOn(0, "resumes");
  harness_->Connect(clean);
  harness_->router(0).ClaimStep(0);  // the window has not ended
  EXPECT_TRUE(PublishedClaims(0).empty()) << "a clean claim waits for the window";
  EXPECT_GT(harness_->router(0).ClaimWaitMs(100), 0u);
  harness_->Connect(resumes, /*clean_session=*/false);
  EXPECT_EQ(harness_->router(0).ClaimWaitMs(100), 0u) << "the loop does not sleep first";
  harness_->router(0).ClaimStep(0);  // the same loop clock as above: no window has ended
  size_t batches = 0;
  const std::vector<Published> claims = PublishedClaims(0, &batches);
  EXPECT_EQ(batches, 1u) << "one NATS message, the held claim in it";
  ASSERT_EQ(claims.size(), 2u);
  EXPECT_EQ(claims[0].client_id, clean);
  EXPECT_TRUE(claims[0].clean_start);
  EXPECT_EQ(claims[1].client_id, resumes);
  EXPECT_FALSE(claims[1].clean_start);
  EXPECT_EQ(claims[1].reply, "$RINGMQ.session.node-b.0") << "the batch asks for the state";
  EXPECT_EQ(counters(0).cluster_owner_batches_resume.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_batches_window.Load(), 0u);
  EXPECT_EQ(harness_->router(0).ClaimWaitMs(100), 100u) << "nothing held any more";
}

TEST_F(RouterClusterOwnerTest, TheBatchGoesWhenItsWindowEndsOnTheLoopsClock) {
  Output(0);
  EXPECT_EQ(harness_->router(0).ClaimWaitMs(100), 100u) << "nothing held: the loop's own sleep";
  const auto start = std::chrono::steady_clock::now();
  harness_->Connect(harness_->IdOn(0, "timer"));
  const uint32_t window_ms = static_cast<uint32_t>((batch_options_.window_us + 999) / 1000);
  EXPECT_LE(harness_->router(0).ClaimWaitMs(100), window_ms) << "the loop wakes for the window";
  EXPECT_GT(harness_->router(0).ClaimWaitMs(100), 0u) << "not before it";
  // Await the window as the loop does (ClaimStep every iteration), bounded.
  std::vector<Published> claims;
  while (claims.empty() && std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    harness_->router(0).ClaimStep();
    claims = PublishedClaims(0);
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_GE(waited, std::chrono::microseconds(batch_options_.window_us)) << "not before";
  EXPECT_EQ(counters(0).cluster_owner_batches_window.Load(), 1u);
  EXPECT_EQ(harness_->router(0).ClaimWaitMs(100), 100u);
}

class RouterClaimCountBoundTest : public RouterClusterOwnerTest {
 protected:
  RouterClaimCountBoundTest() { batch_options_.max_claims = 3; }
};

TEST_F(RouterClaimCountBoundTest, AFullBatchGoesBeforeItsWindowEnds) {
  Output(0);
  for (int i = 0; i < 7; ++i) harness_->Connect(harness_->IdOn(0, "n" + std::to_string(i)));
  size_t batches = 0;
  EXPECT_EQ(PublishedClaims(0, &batches).size(), 6u) << "two batches of 3 went early";
  EXPECT_EQ(batches, 2u);
  EXPECT_EQ(counters(0).cluster_owner_batches_count.Load(), 2u);
  EXPECT_EQ(Claims(0, &batches).size(), 1u) << "the 7th at its window";
  EXPECT_EQ(batches, 1u);
  EXPECT_EQ(counters(0).cluster_owner_claims_sent.Load(), 7u);
}

class RouterClaimBytesBoundTest : public RouterClusterOwnerTest {
 protected:
  RouterClaimBytesBoundTest() { batch_options_.max_bytes = 200; }
};

TEST_F(RouterClaimBytesBoundTest, ABatchThatWouldPassTheByteBoundGoesFirst) {
  Output(0);
  const std::string a = harness_->IdOn(0, std::string(100, 'a'));
  const std::string b = harness_->IdOn(0, std::string(100, 'b'));
  harness_->Connect(a);
  EXPECT_TRUE(PublishedClaims(0).empty());
  harness_->Connect(b);  // two records of ~125 bytes do not fit 200
  size_t batches = 0;
  std::vector<Published> claims = PublishedClaims(0, &batches);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].client_id, a);
  EXPECT_EQ(counters(0).cluster_owner_batches_bytes.Load(), 1u);
  claims = Claims(0, &batches);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].client_id, b);
  // A claim larger than the bound alone still goes, in a batch of its own (client ids are at
  // most max_client_id_length, 256 by default).
  const std::string huge = harness_->IdOn(0, std::string(200, 'h'));
  harness_->Connect(huge);
  claims = Claims(0, &batches);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].client_id, huge);
  EXPECT_EQ(counters(0).cluster_owner_claims_refused.Load(), 0u);
}

TEST_F(RouterClusterOwnerTest, EveryClaimOfAReceivedBatchIsJudged) {
  const std::string older = harness_->IdOn(0, "older");
  const std::string newer = harness_->IdOn(0, "newer");
  Client& keeps = harness_->Connect(older);
  Client& yields = harness_->Connect(newer);
  const std::vector<Published> own = Claims(0);
  ASSERT_EQ(own.size(), 2u);
  // One batch of node-a: an older claim for one id, a newer one for the other, one for an id
  // with no session here.
  DeliverBatch({{.key = own[0].key - 1, .node = "node-a", .clean_start = true, .client_id = older},
                {.key = UINT64_MAX / 2, .node = "node-a", .clean_start = true, .client_id = newer},
                {.key = 5, .node = "node-a", .clean_start = true, .client_id = "nobody-here"}},
               /*group=*/0);
  EXPECT_EQ(keeps.connection.state(), net::Connection::State::kOpen);
  EXPECT_EQ(yields.connection.state(), net::Connection::State::kClosing) << "MQTT-3.1.4-2";
  EXPECT_EQ(counters(0).cluster_owner_batches_received.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_owner_claims_received.Load() +
                counters(1).cluster_owner_claims_received.Load(),
            3u);
  const std::vector<Published> again = Claims(0);
  ASSERT_EQ(again.size(), 1u) << "the kept session claims again";
  EXPECT_EQ(again[0].client_id, older);
  EXPECT_EQ(again[0].key, own[0].key);
}

TEST_F(RouterClusterOwnerTest, AMalformedBatchIsRefusedWhole) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(id);
  // A well-formed newer claim for the id followed by a truncated record: nothing is taken.
  std::string payload;
  cluster::ClaimBatchWriter writer;
  writer.Begin("node-a", payload);
  writer.Add(UINT64_MAX / 2, true, id, payload);
  payload += "7 c 9\nshort";
  const std::string msg = "MSG $RINGMQ.claims.0 " + std::to_string(SidOf(0)) + " " +
                          std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
  links_[0]->OnReceived(0, msg);
  harness_->Settle();
  EXPECT_EQ(counters(0).cluster_owner_claims_invalid.Load(), 1u);
  EXPECT_EQ(client.connection.state(), net::Connection::State::kOpen);
}

TEST(ClusterOwnershipTest, AddingClaimsReusesTheBatchBufferOnceWarm) {
  // No allocation per claim: the buffer is reserved at the byte bound and kept across batches.
  ClusterOwnership ownership(
      ClaimBatchOptions{.window_us = 1000, .max_claims = 64, .max_bytes = 4096});
  const std::string id(40, 'x');
  ownership.Add("node-a", 1, true, id, 0);
  const char* const buffer = ownership.batch_payload().data();
  size_t batches = 0;
  for (uint64_t key = 2; key < 10'000; ++key) {
    if (ownership.FullBefore(id.size())) {
      ownership.ClearBatch();
      ++batches;
    }
    ownership.Add("node-a", key, key % 2 == 0, id, key);
    ASSERT_EQ(ownership.batch_payload().data(), buffer) << "reallocated at claim " << key;
    ASSERT_LE(ownership.batch_payload().size(), 4096u);
    ASSERT_LE(ownership.batch_claims(), 64u);
  }
  EXPECT_GT(batches, 100u);
}

// Two nodes of one shard each, wired by hand: what each publishes is delivered to the other.
class TwoNodeClaimTest : public ::testing::Test {
 protected:
  struct Node {
    Node(std::string_view name, const Config& config) : harness(config, 1) {
      sink = std::make_unique<RouterSink>(harness.router(0));
      cluster::NatsLinkOptions options;
      options.urls = {"nats://127.0.0.1:4222"};
      link = std::move(*cluster::NatsLink::Create(options, sink.get()));
      link->BeginConnect(0);
      link->OnTransportConnected(0);
      link->OnReceived(0, "INFO {\"server_id\":\"s\",\"headers\":true,\"max_payload\":65536}\r\n");
      link->OnReceived(0, "PONG\r\n");
      harness.router(0).AttachCluster(link.get(), std::string(name), "");
      EXPECT_TRUE(harness.router(0).StartClusterOwnership().ok());
      std::string out;
      link->TakeOutput(out);
    }
    RouterHarness harness;
    std::unique_ptr<RouterSink> sink;
    std::unique_ptr<cluster::NatsLink> link;
  };

  void SetUp() override {
    SetLogLevel(LogLevel::kError);
    config_.threads = 1;
    a_ = std::make_unique<Node>("node-a", config_);
    b_ = std::make_unique<Node>("node-b", config_);
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  // Sends `from`'s batch (its window ended) and delivers every PUB of its link to `to` as NATS
  // would (group 0: sid 1). Returns how many PUBs went.
  static size_t Carry(Node& from, Node& to) {
    from.harness.router(0).ClaimStep(UINT64_MAX);
    std::string out;
    from.link->TakeOutput(out);
    size_t pubs = 0;
    std::string_view bytes = out;
    while (!bytes.empty()) {
      const size_t eol = bytes.find("\r\n");
      const std::string_view line = bytes.substr(0, eol);
      bytes.remove_prefix(eol + 2);
      if (!line.starts_with("PUB ")) continue;
      const size_t space = line.rfind(' ');
      const size_t size = std::stoul(std::string(line.substr(space + 1)));
      const std::string payload(bytes.substr(0, size));
      bytes.remove_prefix(size + 2);
      const std::string msg =
          "MSG $RINGMQ.claims.0 1 " + std::to_string(size) + "\r\n" + payload + "\r\n";
      to.link->OnReceived(0, msg);
      to.harness.Settle();
      ++pubs;
    }
    return pubs;
  }

  Config config_;
  std::unique_ptr<Node> a_;
  std::unique_ptr<Node> b_;
};

TEST_F(TwoNodeClaimTest, OfTwoConnectsWhoseClaimsCrossInBatchesExactlyOneSurvives) {
  // MQTT-3.1.4-2 across nodes: the same id connects on both nodes within one window, among
  // other ids; both batches leave at their windows' end and cross.
  for (int round = 0; round < 20; ++round) {
    const std::string id = "twin-" + std::to_string(round);
    a_->harness.Connect("a-other-" + std::to_string(round));
    Client& on_a = a_->harness.Connect(id);
    Client& on_b = b_->harness.Connect(id);
    b_->harness.Connect("b-other-" + std::to_string(round));
    EXPECT_EQ(Carry(*a_, *b_), 1u);
    EXPECT_EQ(Carry(*b_, *a_), 1u);
    // The side that kept its session claimed again; that claim changes nothing more.
    Carry(*a_, *b_);
    Carry(*b_, *a_);
    const bool a_open = on_a.connection.state() == net::Connection::State::kOpen;
    const bool b_open = on_b.connection.state() == net::Connection::State::kOpen;
    EXPECT_NE(a_open, b_open) << "round " << round << ": exactly one survives";
  }
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
