// Unit tests for the router's bounds on persistent sessions without a connection: expiry after
// persistent_session_expiry and the broker-wide max_offline_sessions (src/shard/router.h,
// "Offline sessions").
//
// Each test drives real Connections the way Shard does (CONNECT and SUBSCRIBE bytes in through
// OnReceive, CONNACK read with NextSend/OnSent, a transport close followed by Router::Flush),
// on one or two routers sharing one SharedState, with a clock the test moves by hand.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "shard/router.h"
#include "shard/shared_state.h"

namespace ringmq::shard {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr int kFd = 7;  // names the peer in log lines only; never used for I/O here

Bytes Encode(const mqtt::Packet& packet) {
  Bytes bytes(mqtt::EncodedSize(packet));
  EXPECT_EQ(mqtt::Encode(packet, bytes), bytes.size());
  return bytes;
}

class FakeServices final : public ShardServices {
 public:
  explicit FakeServices(const uint64_t& now_ms) : now_ms_(now_ms) {}
  void AdoptConnection(int, std::vector<uint8_t>) override {
    ADD_FAILURE() << "client ids are chosen for their home shard: no hand-off expected";
  }
  void ConnectionDirty(uint32_t) override {}
  void RingDoorbell(uint32_t) override {}
  uint64_t now_ms() const override { return now_ms_; }
  memory::Pressure memory_pressure() const override { return memory::Pressure::kNone; }

 private:
  const uint64_t& now_ms_;
};

// One shard: its counters, connection context, router and the connections it serves.
struct TestShard {
  TestShard(uint32_t index, const Config& config, SharedState& shared, const uint64_t& now_ms)
      : services(now_ms) {
    context.connected_clients = &shared.connected_clients;
    context.shutting_down = &shared.shutting_down;
    context.counters = &counters;
    context.shard_index = index;
    router = std::make_unique<Router>(index, config, shared, counters, context, services);
    context.sink = router.get();
  }

  metrics::ShardCounters counters;
  net::ConnectionContext context;
  FakeServices services;
  std::unique_ptr<Router> router;
  std::deque<net::Connection> connections;  // stable addresses: the router points at them
};

class RouterOfflineTest : public testing::Test {
 protected:
  void SetUp() override { SetLogLevel(LogLevel::kError); }  // no per-event log lines
  void TearDown() override {
    shards_.clear();
    if (shared_ != nullptr) shared_->epochs.Offline(0);
    SetLogLevel(LogLevel::kInfo);
  }

  // `shard_count` routers over one SharedState; the test runs every one on its own thread,
  // which owns reader slot 0 of the epoch domain for all of them.
  void Start(const Config& config, uint32_t shard_count = 1) {
    config_ = config;
    shared_ = std::make_unique<SharedState>(shard_count);
    shared_->epochs.Online(0);
    for (uint32_t i = 0; i < shard_count; ++i) {
      shards_.push_back(std::make_unique<TestShard>(i, config_, *shared_, now_ms_));
    }
  }

  // A client id whose home is `shard`, made from `base`.
  std::string IdOn(uint32_t shard, std::string_view base) {
    for (int suffix = 0;; ++suffix) {
      std::string id = std::string(base) + "-" + std::to_string(suffix);
      if (shards_[0]->router->HomeShard(id) == shard) return id;
    }
  }

  uint32_t HomeOf(const std::string& client_id) { return shards_[0]->router->HomeShard(client_id); }

  // Connects `client_id` on its home shard and returns the connection; `session_present` gets
  // the CONNACK's flag.
  net::Connection& Connect(const std::string& client_id, bool clean_session,
                           bool* session_present = nullptr) {
    TestShard& shard = *shards_[HomeOf(client_id)];
    net::Connection& connection = shard.connections.emplace_back();
    connection.Open(kFd, now_ms_);
    connection.set_tag(static_cast<uint32_t>(shard.connections.size() - 1));
    mqtt::Connect connect;
    connect.protocol_name = "MQTT";
    connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt311);
    connect.clean_session = clean_session;
    connect.keepalive_s = 60;
    connect.client_id = client_id;
    connection.OnReceive(Encode(connect), now_ms_, shard.context);
    EXPECT_EQ(connection.state(), net::Connection::State::kOpen) << client_id;
    const std::span<const uint8_t> connack = connection.NextSend();
    EXPECT_GE(connack.size(), 4u);
    EXPECT_EQ(connack[0], 0x20);
    EXPECT_EQ(connack[3], 0x00) << "CONNACK accepted";
    if (session_present != nullptr) *session_present = (connack[2] & 0x01) != 0;
    connection.OnSent(connack.size());
    return connection;
  }

  void Subscribe(net::Connection& connection, std::string_view filter) {
    TestShard& shard = *shards_[HomeOf(connection.client_id())];
    Bytes entries;
    const mqtt::TopicRequest request{filter, mqtt::QoS::k1};
    const std::span<const mqtt::TopicRequest> requests(&request, 1);
    entries.resize(mqtt::TopicListEncodedSize(requests, true));
    mqtt::EncodeTopicList(requests, true, entries);
    shard.router->RunJobs();  // a new loop iteration: the filter budget is renewed
    connection.OnReceive(Encode(mqtt::Subscribe{1, mqtt::TopicList(entries, true)}), now_ms_,
                         shard.context);
    const std::span<const uint8_t> suback = connection.NextSend();
    ASSERT_FALSE(suback.empty()) << "SUBACK";
    connection.OnSent(suback.size());
  }

  void PublishQos1(net::Connection& connection, std::string_view topic) {
    TestShard& shard = *shards_[HomeOf(connection.client_id())];
    mqtt::Publish publish;
    publish.topic = topic;
    publish.payload = "m";
    publish.qos = mqtt::QoS::k1;
    publish.packet_id = 7;
    connection.OnReceive(Encode(publish), now_ms_, shard.context);
    const std::span<const uint8_t> puback = connection.NextSend();
    connection.OnSent(puback.size());
  }

  // The peer goes away: the shard sees the transport close and flushes its router, which ends
  // the connection's session (or keeps it offline).
  void Drop(net::Connection& connection) {
    TestShard& shard = *shards_[HomeOf(connection.client_id())];
    connection.OnTransportClosed(now_ms_);
    shard.router->Flush();
    connection.OnClosed(shard.context);
  }

  // A persistent session with a subscription to `filter`, left offline now.
  void OfflineSession(const std::string& client_id, std::string_view filter = "t") {
    net::Connection& connection = Connect(client_id, /*clean_session=*/false);
    Subscribe(connection, filter);
    Drop(connection);
  }

  bool Resumes(const std::string& client_id) {
    bool present = false;
    Connect(client_id, /*clean_session=*/false, &present);
    return present;
  }

  metrics::ShardCounters& counters(uint32_t shard = 0) { return shards_[shard]->counters; }
  Router& router(uint32_t shard = 0) { return *shards_[shard]->router; }
  uint32_t offline_count() const {
    return shared_->offline_sessions.load(std::memory_order_relaxed);
  }

  uint64_t now_ms_ = 1'000'000;
  Config config_;
  std::unique_ptr<SharedState> shared_;
  std::vector<std::unique_ptr<TestShard>> shards_;
};

Config WithExpiry(uint32_t seconds) {
  Config config;
  config.persistent_session_expiry_s = seconds;
  return config;
}

Config WithMaxOffline(uint32_t sessions) {
  Config config;
  config.max_offline_sessions = sessions;
  return config;
}

TEST_F(RouterOfflineTest, OfflineLongerThanTheExpiryEndsSessionQueueAndSubscriptions) {
  Start(WithExpiry(60));
  OfflineSession("away");
  net::Connection& publisher = Connect("pub", /*clean_session=*/true);
  PublishQos1(publisher, "t");
  EXPECT_EQ(counters().gauges.queued_messages.Load(), 1);
  EXPECT_EQ(counters().gauges.sessions_offline.Load(), 1);
  EXPECT_EQ(counters().gauges.subscriptions.Load(), 1);

  now_ms_ += 60'000;  // offline exactly as long as the expiry: kept
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  EXPECT_EQ(router().session_count(), 2u);

  now_ms_ += 1;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
  EXPECT_EQ(router().session_count(), 1u);  // the publisher's
  EXPECT_EQ(counters().gauges.queued_messages.Load(), 0);
  EXPECT_EQ(counters().gauges.sessions_offline.Load(), 0);
  EXPECT_EQ(counters().gauges.subscriptions.Load(), 0);
  EXPECT_EQ(offline_count(), 0u);
  // Its subscription left the trie: nobody receives the next message.
  PublishQos1(publisher, "t");
  EXPECT_EQ(counters().publish_dropped_no_subscribers.Load(), 1u);
  EXPECT_FALSE(Resumes("away"));  // MQTT-3.2.2-2: no session to resume
}

TEST_F(RouterOfflineTest, ReconnectingRestartsTheExpiryClock) {
  Start(WithExpiry(60));
  OfflineSession("back");
  now_ms_ += 50'000;
  net::Connection& connection = Connect("back", /*clean_session=*/false);
  now_ms_ += 30'000;  // online past the first deadline: online sessions never expire
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  Drop(connection);
  now_ms_ += 60'000;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  now_ms_ += 1;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
}

TEST_F(RouterOfflineTest, ExpiryStopsAtTheFirstSessionNotDue) {
  Start(WithExpiry(10));
  OfflineSession("first");
  now_ms_ += 5'000;
  OfflineSession("second");
  now_ms_ += 5'001;  // "first" is due, "second" not
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
  EXPECT_TRUE(Resumes("second"));
  EXPECT_FALSE(Resumes("first"));
}

TEST_F(RouterOfflineTest, ExpiryWorkPerTickIsBounded) {
  Start(WithExpiry(1));
  const uint32_t sessions = Router::kExpiriesPerTick + 6;
  for (uint32_t i = 0; i < sessions; ++i) OfflineSession("s" + std::to_string(i));
  now_ms_ += 1'001;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), Router::kExpiriesPerTick);
  router().ExpireOfflineSessions();  // the next tick takes the rest
  EXPECT_EQ(counters().sessions_expired.Load(), sessions);
  EXPECT_EQ(router().session_count(), 0u);
}

TEST_F(RouterOfflineTest, ExpiryZeroKeepsSessionsForever) {
  Start(WithExpiry(0));
  OfflineSession("kept");
  now_ms_ += uint64_t{10} * 365 * 86'400'000;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  EXPECT_TRUE(Resumes("kept"));
}

TEST_F(RouterOfflineTest, BeyondTheBoundTheLongestOfflineSessionIsEvicted) {
  Start(WithMaxOffline(2));
  OfflineSession("one");
  OfflineSession("two");
  EXPECT_EQ(counters().sessions_evicted.Load(), 0u);
  OfflineSession("three");
  EXPECT_EQ(counters().sessions_evicted.Load(), 1u);
  EXPECT_EQ(offline_count(), 2u);
  EXPECT_EQ(counters().gauges.sessions_offline.Load(), 2);
  EXPECT_EQ(counters().gauges.subscriptions.Load(), 2);
  EXPECT_TRUE(Resumes("two"));
  EXPECT_TRUE(Resumes("three"));
  EXPECT_FALSE(Resumes("one"));
  EXPECT_EQ(offline_count(), 0u);  // all three are online now
}

TEST_F(RouterOfflineTest, CleanSessionsAndTakeoversDoNotCountAsOffline) {
  Start(WithMaxOffline(1));
  OfflineSession("persistent");
  Drop(Connect("clean", /*clean_session=*/true));  // ends with its connection
  net::Connection& first = Connect("taken", /*clean_session=*/false);
  Connect("taken", /*clean_session=*/false);  // takes over: the session never went offline
  EXPECT_EQ(first.state(), net::Connection::State::kClosing);
  shards_[0]->router->Flush();
  EXPECT_EQ(counters().session_takeovers.Load(), 1u);
  EXPECT_EQ(counters().sessions_evicted.Load(), 0u);
  EXPECT_EQ(offline_count(), 1u);
  EXPECT_TRUE(Resumes("persistent"));
}

TEST_F(RouterOfflineTest, BoundIsBrokerWideAndTheVictimIsTheOldestOfItsShard) {
  Start(WithMaxOffline(2), /*shard_count=*/2);
  const std::string a0 = IdOn(0, "a");
  const std::string b1 = IdOn(1, "b");
  const std::string c1 = IdOn(1, "c");
  const std::string d0 = IdOn(0, "d");
  OfflineSession(a0);
  OfflineSession(b1);
  EXPECT_EQ(offline_count(), 2u);
  OfflineSession(c1);  // shard 1 crosses the bound: its oldest, b1, goes
  EXPECT_EQ(counters(1).sessions_evicted.Load(), 1u);
  EXPECT_EQ(offline_count(), 2u);
  OfflineSession(d0);  // shard 0 crosses it: a0 goes
  EXPECT_EQ(counters(0).sessions_evicted.Load(), 1u);
  EXPECT_EQ(offline_count(), 2u);
  EXPECT_TRUE(Resumes(c1));
  EXPECT_TRUE(Resumes(d0));
  EXPECT_FALSE(Resumes(a0));
  EXPECT_FALSE(Resumes(b1));
}

TEST_F(RouterOfflineTest, ShardWithNoOlderSessionEvictsTheOneThatJustWentOffline) {
  Start(WithMaxOffline(1), /*shard_count=*/2);
  const std::string a0 = IdOn(0, "a");
  const std::string b1 = IdOn(1, "b");
  OfflineSession(a0);
  OfflineSession(b1);  // shard 1 holds nothing older: the bound stays exact all the same
  EXPECT_EQ(counters(1).sessions_evicted.Load(), 1u);
  EXPECT_EQ(offline_count(), 1u);
  EXPECT_FALSE(Resumes(b1));
  EXPECT_TRUE(Resumes(a0));
}

TEST_F(RouterOfflineTest, StoppingBrokerEvictsNothing) {
  Start(WithMaxOffline(1));
  OfflineSession("one");
  net::Connection& two = Connect("two", /*clean_session=*/false);
  shared_->shutting_down.store(true);  // the broker closes every connection
  Drop(two);
  EXPECT_EQ(counters().sessions_evicted.Load(), 0u);
  EXPECT_EQ(offline_count(), 2u);
}

}  // namespace
}  // namespace ringmq::shard
