// Router tests of what happens to a session around its connections and its subscribers: takeover
// (on the home shard and through a hand-off from another shard), hand-off to the home shard,
// wills, and slow consumers (src/shard/router.h).
//
// Two shards run on the test's thread (router_harness.h): real Routers and Connections over one
// SharedState, fake shard services, a clock moved by hand. Subscribers live on the other shard
// than the publisher wherever it matters, so deliveries cross a mailbox.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
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

constexpr std::string_view kWillTopic = "will/x";

class RouterSessionsTest : public testing::Test {
 protected:
  void SetUp() override { SetLogLevel(LogLevel::kError); }  // no per-event log lines
  void TearDown() override {
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  void Start(const Config& config = Config{}) {
    harness_ = std::make_unique<RouterHarness>(config, 2);
  }

  std::string IdOn(uint32_t shard, std::string_view base) { return harness_->IdOn(shard, base); }

  // A client on `shard` subscribed to `filter` at `qos`.
  Client& Subscriber(uint32_t shard, std::string_view filter, mqtt::QoS qos = mqtt::QoS::k1) {
    Client& client = harness_->Connect(IdOn(shard, "subscriber"));
    harness_->Subscribe(client, filter, qos);
    return client;
  }

  // A CONNECT for `client_id` with a QoS 1 will on kWillTopic.
  static mqtt::Connect WithWill(const std::string& client_id, bool clean_session = true,
                                bool retain = false) {
    mqtt::Connect connect = harness::ConnectPacket(client_id, clean_session);
    connect.will =
        mqtt::Will{.topic = kWillTopic, .payload = "gone", .qos = mqtt::QoS::k1, .retain = retain};
    return connect;
  }

  metrics::ShardCounters& counters(uint32_t shard) { return harness_->counters(shard); }
  Router& router(uint32_t shard) { return harness_->router(shard); }

  std::unique_ptr<RouterHarness> harness_;
};

// ---- Takeover (MQTT-3.1.4-2) -----------------------------------------------------------------

TEST_F(RouterSessionsTest, TakeoverOnTheHomeShardClosesTheOldConnectionAndKeepsTheSession) {
  Start();
  Client& watcher = Subscriber(1, kWillTopic);
  const std::string id = IdOn(0, "client");
  Client& old_client = harness_->Connect(WithWill(id, /*clean_session=*/false));
  harness_->Subscribe(old_client, "t");

  bool session_present = false;
  Client& new_client =
      harness_->Connect(harness::ConnectPacket(id, /*clean_session=*/false), &session_present);
  EXPECT_TRUE(session_present) << "MQTT-3.2.2-2";
  EXPECT_EQ(old_client.connection.state(), net::Connection::State::kClosing);
  EXPECT_EQ(counters(0).session_takeovers.Load(), 1u);
  EXPECT_EQ(router(0).session_count(), 1u);
  harness_->Settle();
  EXPECT_EQ(watcher.publishes_by_qos[1], 1u) << "the old connection did not DISCONNECT: its will";
  EXPECT_EQ(counters(0).wills_published.Load(), 1u);

  // The subscription came with the session, and deliveries go to the new connection.
  Client& publisher = harness_->Connect(IdOn(1, "publisher"));
  harness_->Send(publisher, harness::PublishBytes("t", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_EQ(new_client.publishes_by_qos[1], 1u);
  EXPECT_EQ(old_client.publishes_by_qos[1], 0u);
  EXPECT_EQ(counters(0).gauges.sessions_online.Load(), 1);
}

// The second connection is accepted by the other shard: it is handed off to the id's home
// shard, which then finds the session there and takes it over.
TEST_F(RouterSessionsTest, TakeoverThroughAHandOffFromAnotherShard) {
  Start();
  Client& watcher = Subscriber(0, kWillTopic);
  const std::string id = IdOn(1, "client");
  Client& old_client = harness_->Connect(WithWill(id));
  EXPECT_EQ(old_client.shard, 1u);

  Client& new_client = harness_->ConnectVia(0, harness::ConnectPacket(id));
  EXPECT_EQ(new_client.shard, 1u);
  EXPECT_EQ(counters(0).connections_handed_off.Load(), 1u);
  EXPECT_EQ(old_client.connection.state(), net::Connection::State::kClosing);
  EXPECT_EQ(counters(1).session_takeovers.Load(), 1u);
  EXPECT_EQ(router(0).session_count(), 1u) << "the watcher only";
  EXPECT_EQ(router(1).session_count(), 1u);
  harness_->Settle();
  EXPECT_EQ(watcher.publishes_by_qos[1], 1u);
}

// ---- Hand-off --------------------------------------------------------------------------------

TEST_F(RouterSessionsTest, HandedOffConnectionIsServedOnItsHomeShard) {
  Start();
  const std::string id = IdOn(1, "client");
  bool session_present = true;
  Client& client = harness_->ConnectVia(0, harness::ConnectPacket(id), &session_present);
  EXPECT_FALSE(session_present);
  EXPECT_EQ(client.shard, 1u);
  EXPECT_EQ(router(0).session_count(), 0u);
  EXPECT_EQ(router(1).session_count(), 1u);
  EXPECT_EQ(harness_->shared().connected_clients.load(), 1u) << "the slot moved with it";

  harness_->Subscribe(client, "t");
  Client& publisher = harness_->Connect(IdOn(0, "publisher"));
  harness_->Send(publisher, harness::PublishBytes("t", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_EQ(client.publishes_by_qos[1], 1u);
  EXPECT_EQ(publisher.Received(mqtt::PacketType::kPuback), 1u);
}

// ---- Wills -----------------------------------------------------------------------------------

// MQTT-3.1.2-8: a connection that ends without DISCONNECT has its will published; a retained
// will is stored as the topic's retained message.
TEST_F(RouterSessionsTest, WillIsPublishedWhenTheConnectionEndsWithoutDisconnect) {
  Start();
  Client& watcher = Subscriber(1, "will/#");
  Client& client = harness_->Connect(WithWill(IdOn(0, "client"), true, /*retain=*/true));
  harness_->Drop(client);
  harness_->Settle();
  EXPECT_EQ(watcher.publishes_by_qos[1], 1u);
  EXPECT_EQ(counters(0).wills_published.Load(), 1u);
  EXPECT_EQ(harness_->shared().retained.size(), 1u);
}

// MQTT-3.14.4-3 (and MQTT-3.1.2-10): DISCONNECT discards the will.
TEST_F(RouterSessionsTest, WillIsNotPublishedAfterDisconnect) {
  Start();
  Client& watcher = Subscriber(1, "will/#");
  Client& client = harness_->Connect(WithWill(IdOn(0, "client")));
  harness_->Send(client, mqtt::Disconnect{});
  harness_->Drop(client);
  harness_->Settle();
  EXPECT_EQ(watcher.publishes_by_qos[1], 0u);
  EXPECT_EQ(counters(0).wills_published.Load(), 0u);
  EXPECT_EQ(router(0).session_count(), 0u) << "a clean session ends with its connection";
}

// A stopping broker closes the connections itself: no client lost its connection, no will.
TEST_F(RouterSessionsTest, WillIsNotPublishedWhenTheBrokerStops) {
  Start();
  Client& watcher = Subscriber(1, "will/#");
  Client& client = harness_->Connect(WithWill(IdOn(0, "client")));
  harness_->shared().shutting_down.store(true);
  harness_->Drop(client);
  harness_->Settle();
  EXPECT_EQ(watcher.publishes_by_qos[1], 0u);
  EXPECT_EQ(counters(0).wills_published.Load(), 0u);
}

// ---- Slow consumers --------------------------------------------------------------------------

// A QoS 0 subscriber that does not read: its output fills to the delivery budget, then its
// queue to max_queued_bytes, and the rest is dropped and counted; every message is accounted
// for exactly once.
TEST_F(RouterSessionsTest, SlowQos0SubscriberDropsBeyondItsByteCap) {
  Config config;
  config.max_queued_bytes = 16 * 1024;
  Start(config);
  Client& subscriber = Subscriber(1, "t", mqtt::QoS::k0);
  Client& publisher = harness_->Connect(IdOn(0, "publisher"));
  const harness::Bytes publish = harness::PublishBytes("t", std::string(1000, 'x'), mqtt::QoS::k0);
  constexpr uint64_t kMessages = 200;
  for (uint64_t round = 0; round < kMessages / 20; ++round) {
    for (int i = 0; i < 20; ++i) harness_->Send(publisher, publish);
    harness_->RunIteration();  // shard 0 sends; shard 1 queues and writes
    harness_->RunIteration();
  }
  const metrics::ShardCounters& at_subscriber = counters(1);
  const uint64_t dropped = at_subscriber.dropped_bytes_cap.Load();
  const uint64_t written = at_subscriber.publish_sent_qos0.Load();
  const int64_t queued = at_subscriber.gauges.queued_messages.Load();
  EXPECT_GT(dropped, 0u);
  EXPECT_GT(written, 0u);
  EXPECT_LE(queued * 1000, int64_t{16 * 1024});
  EXPECT_EQ(written + static_cast<uint64_t>(queued) + dropped, kMessages);
  EXPECT_EQ(at_subscriber.dropped_queue_full.Load(), 0u);
  EXPECT_EQ(subscriber.connection.state(), net::Connection::State::kOpen) << "queue_full_policy";
}

// A QoS 1 subscriber that reads but does not acknowledge: max_inflight in flight, at most
// max_queued_messages waiting, the rest dropped (dropped_queue_full). Nothing kept is lost:
// once it acknowledges, it receives every message that was kept.
TEST_F(RouterSessionsTest, SlowQos1SubscriberKeepsItsWindowAndQueueAndNoMore) {
  Config config;
  config.max_inflight = 4;
  config.max_queued_messages = 10;
  Start(config);
  Client& subscriber = Subscriber(1, "t", mqtt::QoS::k1);
  subscriber.auto_ack = false;
  Client& publisher = harness_->Connect(IdOn(0, "publisher"));
  constexpr uint16_t kMessages = 100;
  for (uint16_t id = 1; id <= kMessages; ++id) {
    harness_->Send(publisher, harness::PublishBytes("t", "m", mqtt::QoS::k1, id));
    if (id % 10 == 0) harness_->Settle();
  }
  EXPECT_EQ(publisher.Received(mqtt::PacketType::kPuback), kMessages) << "MQTT-4.3.2-2";
  const metrics::ShardCounters& at_subscriber = counters(1);
  EXPECT_EQ(at_subscriber.gauges.inflight_messages.Load(), 4);
  EXPECT_EQ(at_subscriber.gauges.queued_messages.Load(), 10);
  EXPECT_EQ(at_subscriber.dropped_queue_full.Load(), kMessages - 14u);
  EXPECT_EQ(subscriber.publishes_by_qos[1], 4u);

  subscriber.auto_ack = true;
  for (const uint16_t packet_id : subscriber.unacknowledged) {
    harness_->Send(subscriber, mqtt::Puback{packet_id});
  }
  subscriber.unacknowledged.clear();
  harness_->Settle();
  EXPECT_EQ(subscriber.publishes_by_qos[1], 14u);
  EXPECT_EQ(at_subscriber.gauges.inflight_messages.Load(), 0);
  EXPECT_EQ(at_subscriber.gauges.queued_messages.Load(), 0);
}

// queue_full_policy = disconnect: the subscriber whose queue overflows is closed (once), after
// what its window takes has been written.
TEST_F(RouterSessionsTest, SlowConsumerIsDisconnectedUnderTheDisconnectPolicy) {
  Config config;
  config.max_inflight = 4;
  config.max_queued_messages = 10;
  config.queue_full_policy = QueueFullPolicy::kDisconnect;
  Start(config);
  Client& subscriber = Subscriber(1, "t", mqtt::QoS::k1);
  subscriber.auto_ack = false;
  Client& publisher = harness_->Connect(IdOn(0, "publisher"));
  for (uint16_t id = 1; id <= 20; ++id) {
    harness_->Send(publisher, harness::PublishBytes("t", "m", mqtt::QoS::k1, id));
  }
  harness_->RunIteration();
  harness_->RunIteration();
  const metrics::ShardCounters& at_subscriber = counters(1);
  EXPECT_EQ(at_subscriber.dropped_queue_full.Load(), 6u);
  EXPECT_EQ(at_subscriber.slow_consumer_disconnects.Load(), 1u);
  EXPECT_EQ(subscriber.connection.state(), net::Connection::State::kClosing);
  harness_->ReadOutput();
  EXPECT_EQ(subscriber.publishes_by_qos[1], 4u) << "its window went out before the close";
}

}  // namespace
}  // namespace ringmq::shard
