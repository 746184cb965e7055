// Unit tests for per-session expiry intervals (5.0:3.1.2.11.2, DISCONNECT's 5.0:3.14.2.2.2,
// persistent_session_expiry at 3.1.1, the max_session_expiry cap) and the Will Delay Interval
// (5.0:3.1.3.2.2) in the router (src/shard/router.h, "Session expiry" and "Wills").
//
// Clients are real Connections fed CONNECT / DISCONNECT bytes at level 4 or 5 on the router
// harness (router_harness.h), with a clock the test moves by hand and ExpireOfflineSessions
// called as the shard's tick would. Wills are observed by a 3.1.1 subscriber.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/log.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "ringmq/config.h"
#include "router_harness.h"
#include "shard/router.h"

namespace ringmq::shard {
namespace {

using harness::Bytes;
using harness::Client;
using harness::RouterHarness;

constexpr uint32_t kNever = 0xFFFFFFFF;
constexpr char kExpiryWillTopic[] = "status/gone";

// A property block holding one Four Byte Integer property.
struct IntegerProperty {
  explicit IntegerProperty(mqtt::PropertyId id, uint32_t value) {
    size = mqtt::EncodeIntegerProperty(id, value, bytes);
  }
  mqtt::Properties view() const { return mqtt::Properties(std::span(bytes).first(size)); }
  std::array<uint8_t, 8> bytes{};
  size_t size = 0;
};

class RouterExpiryTest : public testing::Test {
 protected:
  void SetUp() override { SetLogLevel(LogLevel::kError); }
  void TearDown() override {
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  void Start(const Config& config = Config{}) {
    harness_ = std::make_unique<RouterHarness>(config, 1);
  }

  // A 5.0 CONNECT; `expiry_s` unset: no Session Expiry Interval property (0).
  Client& Connect5(const std::string& client_id, bool clean_start, std::optional<uint32_t> expiry_s,
                   bool* session_present = nullptr,
                   std::optional<uint32_t> will_delay_s = std::nullopt) {
    mqtt::Connect connect = harness::ConnectPacket(client_id, clean_start);
    connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
    const IntegerProperty expiry(mqtt::PropertyId::kSessionExpiryInterval, expiry_s.value_or(0));
    if (expiry_s) connect.properties = expiry.view();
    const IntegerProperty delay(mqtt::PropertyId::kWillDelayInterval, will_delay_s.value_or(0));
    if (will_delay_s) {
      mqtt::Will will;
      will.topic = kExpiryWillTopic;
      will.payload = "bye";
      if (*will_delay_s != 0) will.properties = delay.view();
      connect.will = will;
    }
    return harness_->Connect(connect, session_present);
  }

  // A 3.1.1 client that receives the wills.
  Client& WillWatcher() {
    Client& watcher = harness_->Connect("watcher", /*clean_session=*/true);
    harness_->Subscribe(watcher, kExpiryWillTopic, mqtt::QoS::k0);
    return watcher;
  }
  uint64_t WillsReceived(Client& watcher) {
    harness_->Settle();
    return watcher.publishes_by_qos[0];
  }

  // A 5.0 DISCONNECT (reason `reason`, with a Session Expiry Interval if given), then the close.
  void Disconnect5(Client& client, std::optional<uint32_t> expiry_s,
                   mqtt::ReasonCode reason = mqtt::ReasonCode::kNormalDisconnection) {
    const IntegerProperty expiry(mqtt::PropertyId::kSessionExpiryInterval, expiry_s.value_or(0));
    mqtt::Disconnect disconnect{.reason_code = reason};
    if (expiry_s) disconnect.properties = expiry.view();
    Bytes bytes(mqtt::EncodedSize(disconnect, mqtt::ProtocolLevel::kMqtt5));
    mqtt::Encode(disconnect, bytes, mqtt::ProtocolLevel::kMqtt5);
    harness_->Send(client, bytes);
    harness_->Drop(client);
  }

  bool Resumes5(const std::string& client_id) {
    bool present = false;
    Connect5(client_id, /*clean_start=*/false, 60, &present);
    return present;
  }

  void Tick() { router().ExpireOfflineSessions(); }
  // The Session Expiry Interval the CONNACK carries, if any.
  static std::optional<uint32_t> ConnackExpiry(const Client& client) {
    // 0x20, remaining length, flags, reason code, property length, properties.
    if (client.connack.size() < 5) return std::nullopt;
    const mqtt::Properties properties(std::span(client.connack).subspan(5, client.connack[4]));
    return properties.Values().session_expiry_interval_s;
  }

  metrics::ShardCounters& counters() { return harness_->counters(0); }
  Router& router() { return harness_->router(0); }
  uint64_t& now_ms() { return harness_->now_ms(); }

  std::unique_ptr<RouterHarness> harness_;
};

// ---- Session Expiry Interval -----------------------------------------------------------------

TEST_F(RouterExpiryTest, SessionsExpireByTheirOwnIntervalNotInDetachOrder) {
  Start();
  harness_->Drop(Connect5("long", false, 10));  // offline first, expires last
  harness_->Drop(Connect5("short", false, 2));
  now_ms() += 2'000;  // "short" has been offline exactly its interval: kept
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  now_ms() += 1;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
  EXPECT_EQ(router().session_count(), 1u);
  now_ms() += 8'000;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 2u);
  EXPECT_EQ(router().session_count(), 0u);
  EXPECT_EQ(harness_->shared().offline_sessions.load(), 0u);
}

TEST_F(RouterExpiryTest, AbsentExpiryEndsTheSessionWithItsConnection) {
  // 5.0:3.1.2.11.2 absent means 0; 5.0:MQTT-3.1.2-23: only a non-zero interval outlives the
  // connection, even with Clean Start 0.
  Start();
  harness_->Drop(Connect5("gone", /*clean_start=*/false, std::nullopt));
  EXPECT_EQ(router().session_count(), 0u);
  EXPECT_EQ(harness_->shared().offline_sessions.load(), 0u);
  EXPECT_FALSE(Resumes5("gone"));
}

TEST_F(RouterExpiryTest, NeverExpiringSessionStaysWithoutCap) {
  Start();
  harness_->Drop(Connect5("forever", false, kNever));
  now_ms() += uint64_t{50} * 365 * 86'400'000;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  EXPECT_TRUE(Resumes5("forever"));
}

TEST_F(RouterExpiryTest, CleanStartDiscardsAndCleanStartZeroResumes) {
  Start();
  harness_->Drop(Connect5("c", /*clean_start=*/false, 60));
  EXPECT_TRUE(Resumes5("c")) << "5.0:MQTT-3.2.2-3";
  harness_->Drop(harness_->shard(0).clients.back());
  bool present = true;
  harness_->Drop(Connect5("c", /*clean_start=*/true, 60, &present));
  EXPECT_FALSE(present) << "5.0:MQTT-3.1.2-4: Clean Start 1 discards the session";
  EXPECT_EQ(router().session_count(), 1u) << "the new session outlives its connection";
}

TEST_F(RouterExpiryTest, CapLowersTheRequestAndTheConnackSaysSo) {
  Config config;
  config.max_session_expiry_s = 5;
  Start(config);
  Client& capped = Connect5("capped", false, kNever);
  EXPECT_EQ(ConnackExpiry(capped), 5u) << "5.0:3.2.2.3.2";
  Client& within = Connect5("within", false, 3);
  EXPECT_EQ(ConnackExpiry(within), std::nullopt) << "the client's value stands";
  harness_->Drop(capped);
  harness_->Drop(within);
  now_ms() += 5'001;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 2u);
}

TEST_F(RouterExpiryTest, CapAlsoEndsMqtt311PersistentSessions) {
  Config config;
  config.max_session_expiry_s = 5;  // persistent_session_expiry 0: never, capped to 5 s
  Start(config);
  harness_->Drop(harness_->Connect("old", /*clean_session=*/false));
  now_ms() += 5'000;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  now_ms() += 1;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
}

TEST_F(RouterExpiryTest, Mqtt311SessionsKeepPersistentSessionExpiry) {
  Config config;
  config.persistent_session_expiry_s = 3;
  Start(config);
  harness_->Drop(harness_->Connect("p", /*clean_session=*/false));
  harness_->Drop(harness_->Connect("c", /*clean_session=*/true));
  EXPECT_EQ(router().session_count(), 1u) << "clean session 1 is interval 0";
  Client& v5 = Connect5("v5", false, 60);
  harness_->Drop(v5);
  now_ms() += 3'001;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u) << "the 3.1.1 one; the 5.0 one has 60 s";
  EXPECT_EQ(router().session_count(), 1u);
}

TEST_F(RouterExpiryTest, DisconnectReplacesTheExpiryInterval) {
  Start();
  Disconnect5(Connect5("shorter", false, 600), 1);
  Disconnect5(Connect5("ends", false, 600), 0);
  EXPECT_EQ(router().session_count(), 1u) << "DISCONNECT with 0 ends the session now";
  now_ms() += 1'001;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
  EXPECT_EQ(router().session_count(), 0u);
}

TEST_F(RouterExpiryTest, DisconnectExpiryIsCapped) {
  Config config;
  config.max_session_expiry_s = 2;
  Start(config);
  Disconnect5(Connect5("d", false, 1), kNever);
  now_ms() += 2'001;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
}

TEST_F(RouterExpiryTest, DisconnectCannotGiveALifetimeToASessionWithExpiryZero) {
  // 5.0:3.14.2.2.2: a Protocol Error from the client; the session still ends.
  Start();
  Disconnect5(Connect5("zero", false, std::nullopt), 60);
  EXPECT_EQ(router().session_count(), 0u);
}

TEST_F(RouterExpiryTest, EvictionStillTakesTheLongestOfflineWhateverItsExpiry) {
  Config config;
  config.max_offline_sessions = 2;
  Start(config);
  harness_->Drop(Connect5("first", false, 1'000));
  harness_->Drop(Connect5("second", false, 10));
  harness_->Drop(Connect5("third", false, 100));
  EXPECT_EQ(counters().sessions_evicted.Load(), 1u);
  EXPECT_FALSE(Resumes5("first"));
  EXPECT_EQ(counters().sessions_expired.Load(), 0u);
  now_ms() += 10'001;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u) << "second, by its own interval";
}

TEST_F(RouterExpiryTest, ExpiriesPerTickAreBounded) {
  Start();
  for (uint32_t i = 0; i < Router::kExpiriesPerTick + 5; ++i) {
    harness_->Drop(Connect5("s" + std::to_string(i), false, 1 + i % 3));
  }
  now_ms() += 4'000;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), Router::kExpiriesPerTick);
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), Router::kExpiriesPerTick + 5u);
}

// ---- Will Delay Interval ---------------------------------------------------------------------

TEST_F(RouterExpiryTest, DelayedWillIsPublishedAfterItsDelay) {
  Start();
  Client& watcher = WillWatcher();
  harness_->Drop(Connect5("w", false, 60, nullptr, /*will_delay_s=*/2));
  EXPECT_EQ(counters().wills_delayed.Load(), 1u);
  EXPECT_EQ(WillsReceived(watcher), 0u);
  now_ms() += 2'000;
  Tick();
  EXPECT_EQ(WillsReceived(watcher), 0u);
  now_ms() += 1;
  Tick();
  EXPECT_EQ(counters().wills_published.Load(), 1u);
  EXPECT_EQ(WillsReceived(watcher), 1u);
  EXPECT_EQ(counters().sessions_expired.Load(), 0u) << "the session lives on";
  now_ms() += 58'000;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
  EXPECT_EQ(counters().wills_published.Load(), 1u) << "published once";
  EXPECT_EQ(WillsReceived(watcher), 1u);
}

TEST_F(RouterExpiryTest, ResumingBeforeTheDelayCancelsTheWill) {
  // 5.0:MQTT-3.1.3-9.
  Start();
  Client& watcher = WillWatcher();
  harness_->Drop(Connect5("w", false, 60, nullptr, 2));
  now_ms() += 1'000;
  EXPECT_TRUE(Resumes5("w"));
  EXPECT_EQ(counters().wills_cancelled.Load(), 1u);
  now_ms() += 10'000;
  Tick();
  EXPECT_EQ(WillsReceived(watcher), 0u);
  EXPECT_EQ(counters().wills_published.Load(), 0u);
}

TEST_F(RouterExpiryTest, SessionEndingFirstPublishesTheWill) {
  // 5.0:3.1.3.2.2: after the delay or when the session ends, whichever is first.
  Start();
  Client& watcher = WillWatcher();
  harness_->Drop(Connect5("w", false, /*expiry_s=*/2, nullptr, /*will_delay_s=*/100));
  now_ms() += 2'001;
  Tick();
  EXPECT_EQ(counters().sessions_expired.Load(), 1u);
  EXPECT_EQ(WillsReceived(watcher), 1u);
}

TEST_F(RouterExpiryTest, SessionEndingWithItsConnectionPublishesTheWillAtOnce) {
  Start();
  Client& watcher = WillWatcher();
  harness_->Drop(Connect5("w", false, std::nullopt, nullptr, 30));
  EXPECT_EQ(counters().wills_delayed.Load(), 0u);
  EXPECT_EQ(WillsReceived(watcher), 1u);
}

TEST_F(RouterExpiryTest, EvictedSessionPublishesItsDelayedWill) {
  Config config;
  config.max_offline_sessions = 1;
  Start(config);
  Client& watcher = WillWatcher();
  harness_->Drop(Connect5("w", false, 60, nullptr, 30));
  harness_->Drop(Connect5("other", false, 60));
  EXPECT_EQ(counters().sessions_evicted.Load(), 1u);
  EXPECT_EQ(WillsReceived(watcher), 1u);
}

TEST_F(RouterExpiryTest, NormalDisconnectDropsTheWillAndDisconnectWithWillKeepsItDelayed) {
  Start();
  Client& watcher = WillWatcher();
  Disconnect5(Connect5("normal", false, 60, nullptr, 1), std::nullopt);
  Disconnect5(Connect5("with", false, 60, nullptr, 1), std::nullopt,
              mqtt::ReasonCode::kDisconnectWithWillMessage);
  EXPECT_EQ(counters().wills_delayed.Load(), 1u);
  now_ms() += 1'001;
  Tick();
  EXPECT_EQ(WillsReceived(watcher), 1u);
}

TEST_F(RouterExpiryTest, TakeoverWithCleanStartZeroCancelsTheDelayedWill) {
  Start();
  Client& watcher = WillWatcher();
  Connect5("t", false, 60, nullptr, 5);
  Connect5("t", false, 60);  // takes over and resumes
  EXPECT_EQ(counters().session_takeovers.Load(), 1u);
  EXPECT_EQ(counters().wills_delayed.Load(), 1u);
  EXPECT_EQ(counters().wills_cancelled.Load(), 1u);
  now_ms() += 10'000;
  Tick();
  EXPECT_EQ(WillsReceived(watcher), 0u);
}

TEST_F(RouterExpiryTest, TakeoverWithCleanStartOnePublishesTheDelayedWill) {
  // Clean Start 1 ends the old session, and a session that ends publishes its will.
  Start();
  Client& watcher = WillWatcher();
  Connect5("t", false, 60, nullptr, 5);
  Connect5("t", true, 60);
  EXPECT_EQ(WillsReceived(watcher), 1u);
  EXPECT_EQ(counters().wills_cancelled.Load(), 0u);
}

TEST_F(RouterExpiryTest, Mqtt311WillIsImmediate) {
  Start();
  Client& watcher = WillWatcher();
  mqtt::Connect connect = harness::ConnectPacket("w311", /*clean_session=*/false);
  connect.will = mqtt::Will{.topic = kExpiryWillTopic, .payload = "bye"};
  harness_->Drop(harness_->Connect(connect));
  EXPECT_EQ(counters().wills_delayed.Load(), 0u);
  EXPECT_EQ(WillsReceived(watcher), 1u);
}

TEST_F(RouterExpiryTest, StoppingBrokerPublishesNoDelayedWill) {
  Start();
  Client& watcher = WillWatcher();
  harness_->Drop(Connect5("w", false, 60, nullptr, 1));
  harness_->shared().shutting_down.store(true);
  now_ms() += 1'001;
  Tick();
  EXPECT_EQ(counters().wills_published.Load(), 0u);
  harness_->shared().shutting_down.store(false);
  EXPECT_EQ(WillsReceived(watcher), 0u);
}

}  // namespace
}  // namespace ringmq::shard
