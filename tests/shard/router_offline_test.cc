// Unit tests for the router's bounds on persistent sessions without a connection: expiry after
// persistent_session_expiry and the broker-wide max_offline_sessions (src/shard/router.h,
// "Offline sessions").
//
// Each test drives real Connections the way Shard does (CONNECT and SUBSCRIBE bytes in through
// OnReceive, CONNACK read with NextSend/OnSent, a transport close followed by Router::Flush),
// on one or two routers sharing one SharedState (router_harness.h), with a clock the test moves
// by hand.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/log.h"
#include "metrics/counters.h"
#include "mqtt/packet.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "router_harness.h"
#include "shard/router.h"

namespace ringmq::shard {
namespace {

using harness::Client;
using harness::RouterHarness;

class RouterOfflineTest : public testing::Test {
 protected:
  void SetUp() override { SetLogLevel(LogLevel::kError); }  // no per-event log lines
  void TearDown() override {
    if (harness_ != nullptr) {
      for (uint32_t shard = 0; shard < harness_->shard_count(); ++shard) {
        EXPECT_TRUE(harness_->shard(shard).services.adopted.empty())
            << "client ids are chosen for their home shard: no hand-off expected";
      }
    }
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  void Start(const Config& config, uint32_t shard_count = 1) {
    harness_ = std::make_unique<RouterHarness>(config, shard_count);
  }

  // A client id whose home is `shard`, made from `base`.
  std::string IdOn(uint32_t shard, std::string_view base) { return harness_->IdOn(shard, base); }

  // Connects `client_id` on its home shard; `session_present` gets the CONNACK's flag.
  Client& Connect(const std::string& client_id, bool clean_session,
                  bool* session_present = nullptr) {
    return harness_->Connect(client_id, clean_session, session_present);
  }

  void PublishQos1(Client& client, std::string_view topic) {
    harness_->Send(client, harness::PublishBytes(topic, "m", mqtt::QoS::k1, 7));
    const std::span<const uint8_t> puback = client.connection.NextSend();
    client.connection.OnSent(puback.size());
  }

  void Drop(Client& client) { harness_->Drop(client); }

  // A persistent session with a subscription to `filter`, left offline now.
  void OfflineSession(const std::string& client_id, std::string_view filter = "t") {
    Client& client = Connect(client_id, /*clean_session=*/false);
    harness_->Subscribe(client, filter);
    Drop(client);
  }

  bool Resumes(const std::string& client_id) {
    bool present = false;
    Connect(client_id, /*clean_session=*/false, &present);
    return present;
  }

  metrics::ShardCounters& counters(uint32_t shard = 0) { return harness_->counters(shard); }
  Router& router(uint32_t shard = 0) { return harness_->router(shard); }
  uint32_t offline_count() {
    return harness_->shared().offline_sessions.load(std::memory_order_relaxed);
  }
  uint64_t& now_ms() { return harness_->now_ms(); }

  std::unique_ptr<RouterHarness> harness_;
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
  Client& publisher = Connect("pub", /*clean_session=*/true);
  PublishQos1(publisher, "t");
  EXPECT_EQ(counters().gauges.queued_messages.Load(), 1);
  EXPECT_EQ(counters().gauges.sessions_offline.Load(), 1);
  EXPECT_EQ(counters().gauges.subscriptions.Load(), 1);

  now_ms() += 60'000;  // offline exactly as long as the expiry: kept
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  EXPECT_EQ(router().session_count(), 2u);

  now_ms() += 1;
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
  now_ms() += 50'000;
  Client& connection = Connect("back", /*clean_session=*/false);
  now_ms() += 30'000;  // online past the first deadline: online sessions never expire
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  Drop(connection);
  now_ms() += 60'000;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  now_ms() += 1;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
}

TEST_F(RouterOfflineTest, ExpiryStopsAtTheFirstSessionNotDue) {
  Start(WithExpiry(10));
  OfflineSession("first");
  now_ms() += 5'000;
  OfflineSession("second");
  now_ms() += 5'001;  // "first" is due, "second" not
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
  EXPECT_TRUE(Resumes("second"));
  EXPECT_FALSE(Resumes("first"));
}

TEST_F(RouterOfflineTest, ExpiryWorkPerTickIsBounded) {
  Start(WithExpiry(1));
  const uint32_t sessions = Router::kExpiriesPerTick + 6;
  for (uint32_t i = 0; i < sessions; ++i) OfflineSession("s" + std::to_string(i));
  now_ms() += 1'001;
  router().ExpireOfflineSessions();
  EXPECT_EQ(counters().sessions_expired.Load(), Router::kExpiriesPerTick);
  router().ExpireOfflineSessions();  // the next tick takes the rest
  EXPECT_EQ(counters().sessions_expired.Load(), sessions);
  EXPECT_EQ(router().session_count(), 0u);
}

TEST_F(RouterOfflineTest, ExpiryZeroKeepsSessionsForever) {
  Start(WithExpiry(0));
  OfflineSession("kept");
  now_ms() += uint64_t{10} * 365 * 86'400'000;
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
  Client& first = Connect("taken", /*clean_session=*/false);
  Connect("taken", /*clean_session=*/false);  // takes over: the session never went offline
  EXPECT_EQ(first.connection.state(), net::Connection::State::kClosing);
  router().Flush();
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
  Client& two = Connect("two", /*clean_session=*/false);
  harness_->shared().shutting_down.store(true);  // the broker closes every connection
  Drop(two);
  EXPECT_EQ(counters().sessions_evicted.Load(), 0u);
  EXPECT_EQ(offline_count(), 2u);
}

}  // namespace
}  // namespace ringmq::shard
