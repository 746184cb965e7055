// Router's QoS 0 batches between nodes (router.h "FlushClusterBatches"; batch lane) through the
// sans-IO harness: real NatsLinks brought to kReady, the test playing another node's link n2.0
// (its interest announcements in, the batches addressed to it out).
#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/batch.h"
#include "cluster/nats_link.h"
#include "mqtt/codec.h"
#include "mqtt/properties.h"
#include "shard/cluster_acks.h"
#include "shard/cluster_harness.h"
#include "shard/router_harness.h"

namespace ringmq::shard {
namespace {

using harness::Client;
using harness::kAnnounceSid;
using harness::LinkPub;
using harness::LinkPubs;
using harness::MsgBytes;

// After StartClusterAcks' sids (1 to 5), StartClusterBatches subscribes this link's batch subject.
constexpr uint64_t kBatchSid = 6;

// The (topic, payload) records of a batch, in order; "invalid" ends a list that did not decode.
std::vector<std::pair<std::string, std::string>> Records(std::string_view batch) {
  std::vector<std::pair<std::string, std::string>> out;
  cluster::BatchHeader header;
  std::string_view records;
  if (!cluster::ParseBatchHeader(batch, header, records)) return {{"invalid", ""}};
  cluster::BatchRecord record;
  for (;;) {
    switch (cluster::NextBatchRecord(records, record)) {
      case cluster::BatchNext::kEnd:
        return out;
      case cluster::BatchNext::kInvalid:
        out.emplace_back("invalid", "");
        return out;
      case cluster::BatchNext::kRecord:
        out.emplace_back(std::string(record.topic), std::string(record.payload));
        break;
    }
  }
}

std::vector<std::pair<std::string, std::string>> Received(const Client& client) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const harness::Bytes& bytes : client.recorded) {
    const mqtt::Frame frame =
        mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength, client.connection.level());
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, std::span<const uint8_t>(bytes).subspan(frame.header.header_length),
        client.connection.level());
    EXPECT_TRUE(packet.ok());
    if (!packet.ok()) continue;
    const auto& publish = std::get<mqtt::Publish>(packet.value());
    out.emplace_back(std::string(publish.topic), std::string(publish.payload));
  }
  return out;
}

class RouterClusterBatchTest : public harness::ClusterRouterTest {
 protected:
  void Start(bool batching, size_t bytes_max = 64 << 10) {
    ASSERT_NO_FATAL_FAILURE(AddShards({.max_payload = 1048576, .acks = true}));
    for (uint32_t shard = 0; shard < 2; ++shard) {
      harness_->router(shard).StartClusterBatches(batching, bytes_max);
    }
    const std::string subs = Output(0);
    ASSERT_NE(subs.find("SUB $RINGMQ.b.node-a.0 6\r\n"), std::string::npos) << subs;
    for (uint32_t shard = 0; shard < 2; ++shard) Step(shard);
    // Link n2.0 of another node wants t/# (its snapshot).
    Deliver(0, Hmsg("$RINGMQ.interest.a.n2.0", kAnnounceSid,
                    "Ringmq-Groups: 0\r\nRingmq-Kind: S\r\nRingmq-Seq: 1\r\n", "+t.>\n+t\n"));
    Step(0);
    ASSERT_EQ(harness_->counters(0).gauges.cluster_remote_links.Load(), 1);
  }

  // What the shard's loop does once per iteration: the acks step, the flush before the link's
  // output is taken.
  std::string Step(uint32_t shard) {
    harness_->router(shard).ClusterAckStep();
    harness_->Settle();
    harness_->router(shard).FlushClusterBatches();
    return Output(shard);
  }

  void Publish(Client& client, std::string_view topic, std::string_view payload,
               mqtt::QoS qos = mqtt::QoS::k0, uint16_t packet_id = 0) {
    harness_->Send(client, harness::PublishBytes(topic, payload, qos, packet_id));
  }
};

TEST_F(RouterClusterBatchTest, QosZeroMessagesGoToTheInterestedLinkInOneBatchInOrder) {
  Start(/*batching=*/true);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  Publish(pub, "t/1", "one");
  Publish(pub, "u/1", "nobody elsewhere wants u");
  Publish(pub, "t", "two");
  Publish(pub, "t/1", "three");
  harness_->Settle();
  const std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 1u) << "one NATS message for the three records, none on plain subjects";
  EXPECT_EQ(pubs[0].subject, "$RINGMQ.b.n2.0");
  EXPECT_FALSE(pubs[0].headers);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"t/1", "one"}, {"t", "two"}, {"t/1", "three"}};
  EXPECT_EQ(Records(pubs[0].payload), expected) << "MQTT-4.6.0-6: the publisher's order";
  const metrics::ShardCounters& counters = harness_->counters(0);
  EXPECT_EQ(counters.cluster_batch_messages_out.Load(), 3u);
  EXPECT_EQ(counters.cluster_batches_out.Load(), 1u);
  EXPECT_EQ(counters.cluster_messages_out.Load(), 3u);
  EXPECT_EQ(Step(0), "") << "nothing left";
}

TEST_F(RouterClusterBatchTest, APlainPathMessageFollowsTheBatchedOnesBeforeIt) {
  Start(/*batching=*/true);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  Publish(pub, "t/1", "q0-first");
  Publish(pub, "t/1", "q1-second", mqtt::QoS::k1, 1);
  Publish(pub, "t/1", "q0-third");
  harness_->Settle();
  const std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 3u);
  EXPECT_EQ(pubs[0].subject, "$RINGMQ.b.n2.0");
  EXPECT_EQ(Records(pubs[0].payload),
            (std::vector<std::pair<std::string, std::string>>{{"t/1", "q0-first"}}));
  EXPECT_TRUE(pubs[1].headers) << "QoS 1 keeps its acknowledged plain path";
  EXPECT_EQ(pubs[1].subject, "t.1");
  EXPECT_TRUE(pubs[1].payload.ends_with("q1-second"));
  EXPECT_EQ(pubs[2].subject, "$RINGMQ.b.n2.0");
  EXPECT_EQ(Records(pubs[2].payload),
            (std::vector<std::pair<std::string, std::string>>{{"t/1", "q0-third"}}));
}

// ---- MQTT 5.0 properties in batch records (batchprops lane; cluster/batch.h) ----------------

// A property block of every property a record carries, user properties with a repeated name
// (`expiry_s`: with a Message Expiry Interval, which the record carries as the time left).
std::string BatchPropertyBlock(uint32_t expiry_s = 0) {
  using mqtt::PropertyId;
  std::string block(256, '\0');
  size_t size = 0;
  const auto tail = [&] {
    return std::span<uint8_t>(reinterpret_cast<uint8_t*>(block.data()), block.size()).subspan(size);
  };
  size += mqtt::EncodeUserProperty("k", "1", tail());
  size += mqtt::EncodeIntegerProperty(PropertyId::kPayloadFormatIndicator, 1, tail());
  if (expiry_s != 0) {
    size += mqtt::EncodeIntegerProperty(PropertyId::kMessageExpiryInterval, expiry_s, tail());
  }
  size += mqtt::EncodeStringProperty(PropertyId::kContentType, "application/json", tail());
  size += mqtt::EncodeStringProperty(PropertyId::kResponseTopic, "reply/to", tail());
  size += mqtt::EncodeStringProperty(PropertyId::kCorrelationData, std::string_view("\x00\xFF", 2),
                                     tail());
  size += mqtt::EncodeUserProperty("k", "2", tail());
  block.resize(size);
  return block;
}

std::span<const uint8_t> BlockBytes(std::string_view block) {
  return {reinterpret_cast<const uint8_t*>(block.data()), block.size()};
}

// The PUBLISHes a recording 5.0 client read.
std::vector<mqtt::Publish> BatchPublishes5(const Client& client) {
  std::vector<mqtt::Publish> out;
  for (const harness::Bytes& bytes : client.recorded) {
    const mqtt::Frame frame =
        mqtt::PeekFrame(bytes, mqtt::kMaxRemainingLength, mqtt::ProtocolLevel::kMqtt5);
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, std::span<const uint8_t>(bytes).subspan(frame.header.header_length),
        mqtt::ProtocolLevel::kMqtt5);
    EXPECT_TRUE(packet.ok());
    if (packet.ok()) out.push_back(std::get<mqtt::Publish>(packet.value()));
  }
  return out;
}

std::vector<std::pair<std::string_view, std::string_view>> UserProperties(
    const mqtt::Properties& properties) {
  std::vector<std::pair<std::string_view, std::string_view>> users;
  for (const mqtt::Property property : properties) {
    if (property.id == mqtt::PropertyId::kUserProperty) {
      users.emplace_back(property.text, property.pair_value);
    }
  }
  return users;
}

TEST_F(RouterClusterBatchTest, AQos0MessageWith5PropertiesIsBatchedWithThemInOrder) {
  Start(/*batching=*/true);
  const std::string id = harness_->IdOn(0, "pub5");  // the Connect keeps a view of it
  mqtt::Connect connect = harness::ConnectPacket(id);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& pub = harness_->Connect(connect);
  const auto publish5 = [&](std::string_view payload, std::span<const uint8_t> properties) {
    const mqtt::Publish publish{.topic = "t/1",
                                .payload = payload,
                                .qos = mqtt::QoS::k0,
                                .properties = mqtt::Properties(properties)};
    harness::Bytes bytes(mqtt::EncodedSize(mqtt::Packet(publish), mqtt::ProtocolLevel::kMqtt5));
    ASSERT_EQ(mqtt::Encode(mqtt::Packet(publish), bytes, mqtt::ProtocolLevel::kMqtt5),
              bytes.size());
    harness_->Send(pub, bytes);
  };
  const std::string with_expiry = BatchPropertyBlock(/*expiry_s=*/60);
  uint8_t expiry_only[8];
  const size_t expiry_only_size =
      mqtt::EncodeIntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 5, expiry_only);
  publish5("first", {});
  publish5("with-properties", BlockBytes(with_expiry));
  publish5("expiry-only", std::span<const uint8_t>(expiry_only, expiry_only_size));
  publish5("fourth", {});
  harness_->Settle();
  const std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 1u) << "one batch, nothing on the plain subject";
  EXPECT_EQ(pubs[0].subject, "$RINGMQ.b.n2.0");
  EXPECT_FALSE(pubs[0].headers);
  cluster::BatchHeader header;
  std::string_view records;
  ASSERT_TRUE(cluster::ParseBatchHeader(pubs[0].payload, header, records));
  std::vector<cluster::BatchRecord> got;
  cluster::BatchRecord record;
  while (cluster::NextBatchRecord(records, record) == cluster::BatchNext::kRecord) {
    got.push_back(record);
  }
  ASSERT_EQ(got.size(), 4u) << "MQTT-4.6.0-6: the publisher's order, all in the batch";
  EXPECT_EQ(got[0].payload, "first");
  EXPECT_EQ(got[0].properties, "");
  EXPECT_FALSE(got[0].expiry_left_ms);
  EXPECT_EQ(got[1].payload, "with-properties");
  EXPECT_EQ(got[1].properties, BatchPropertyBlock())
      << "every carried property in order; the interval itself replaced by the time left";
  // The harness clock stands still: all 60 s are left (MQTT-3.3.2-6).
  EXPECT_EQ(got[1].expiry_left_ms, 60'000u);
  EXPECT_EQ(got[2].payload, "expiry-only");
  EXPECT_EQ(got[2].properties, "");
  EXPECT_EQ(got[2].expiry_left_ms, 5'000u);
  EXPECT_EQ(got[3].payload, "fourth");
  const metrics::ShardCounters& counters = harness_->counters(0);
  EXPECT_EQ(counters.cluster_batch_mqtt5_out.Load(), 2u);
  EXPECT_EQ(counters.cluster_batch_messages_out.Load(), 4u);
  EXPECT_EQ(counters.cluster_messages_out.Load(), 4u);
}

TEST_F(RouterClusterBatchTest, ARecordsPropertiesTooLargeForABatchTakeThePlainSubject) {
  Start(/*batching=*/true, /*bytes_max=*/512);
  const std::string id = harness_->IdOn(0, "pub5");
  mqtt::Connect connect = harness::ConnectPacket(id);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& pub = harness_->Connect(connect);
  std::string block(600, '\0');
  block.resize(mqtt::EncodeUserProperty(
      "big", std::string(590, 'v'),
      std::span<uint8_t>(reinterpret_cast<uint8_t*>(block.data()), block.size())));
  const mqtt::Publish publish{.topic = "t/1",
                              .payload = "small",
                              .qos = mqtt::QoS::k0,
                              .properties = mqtt::Properties(BlockBytes(block))};
  harness::Bytes bytes(mqtt::EncodedSize(mqtt::Packet(publish), mqtt::ProtocolLevel::kMqtt5));
  ASSERT_EQ(mqtt::Encode(mqtt::Packet(publish), bytes, mqtt::ProtocolLevel::kMqtt5), bytes.size());
  harness_->Send(pub, bytes);
  harness_->Settle();
  const std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].subject, "t.1") << "the payload is small, its properties are not";
  EXPECT_NE(pubs[0].payload.find("\r\nbig: vvv"), std::string::npos) << "as headers there";
  EXPECT_EQ(harness_->counters(0).cluster_batch_oversize.Load(), 1u);
  EXPECT_EQ(harness_->counters(0).cluster_batch_mqtt5_out.Load(), 0u);
}

TEST_F(RouterClusterBatchTest, ReceivedRecordsPropertiesReach5SubscribersNot311Ones) {
  Start(/*batching=*/true);
  const std::string id5 = harness_->IdOn(0, "sub5");  // the Connect keeps a view of it
  mqtt::Connect connect = harness::ConnectPacket(id5);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  Client& sub5 = harness_->Connect(connect);
  sub5.record = true;
  harness_->Subscribe5(sub5, mqtt::TopicRequest{.filter = "t/#", .qos = mqtt::QoS::k0}, 7);
  Client& sub311 = harness_->Connect(harness_->IdOn(0, "sub311"));
  sub311.record = true;
  harness_->Subscribe(sub311, "t/#", mqtt::QoS::k0);
  Step(0);
  const std::string block = BatchPropertyBlock();
  std::string batch;
  cluster::BeginBatch(batch, "n2");
  cluster::AppendBatchRecord(
      batch, {.topic = "t/1", .properties = block, .expiry_left_ms = 2'500, .payload = "props"});
  cluster::AppendBatchRecord(batch, {.topic = "t/1", .expiry_left_ms = 0, .payload = "expired"});
  cluster::AppendBatchRecord(batch, {.topic = "t/1", .payload = "plain"});
  cluster::SealBatch(batch, 1);
  Deliver(0, MsgBytes("$RINGMQ.b.node-a.0", kBatchSid, batch));

  const std::vector<mqtt::Publish> got5 = BatchPublishes5(sub5);
  ASSERT_EQ(got5.size(), 2u) << "the expired record is not delivered (5.0:3.3.2.3.3)";
  EXPECT_EQ(got5[0].payload, "props");
  const mqtt::PropertyValues values = got5[0].properties.Values();
  EXPECT_EQ(values.payload_format_indicator, 1);
  EXPECT_EQ(values.content_type, "application/json");
  EXPECT_EQ(values.response_topic, "reply/to");
  EXPECT_EQ(values.correlation_data, std::string_view("\x00\xFF", 2));
  EXPECT_EQ(values.message_expiry_interval_s, 3u) << "2.5 s left, rounded up (MQTT-3.3.2-6)";
  EXPECT_EQ(values.subscription_identifier, 7u) << "this node's subscription (MQTT-3.3.4-3)";
  EXPECT_EQ(UserProperties(got5[0].properties),
            (std::vector<std::pair<std::string_view, std::string_view>>{{"k", "1"}, {"k", "2"}}))
      << "MQTT-3.3.2-17, -18: in order, the repeated name kept";
  EXPECT_EQ(got5[1].payload, "plain");
  EXPECT_FALSE(got5[1].properties.Values().content_type.has_value());
  EXPECT_EQ(UserProperties(got5[1].properties).size(), 0u);
  // 3.1.1: the same messages, without properties (its PUBLISH has none to carry).
  EXPECT_EQ(Received(sub311),
            (std::vector<std::pair<std::string, std::string>>{{"t/1", "props"}, {"t/1", "plain"}}));
  for (const harness::Bytes& bytes : sub311.recorded) {
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    EXPECT_EQ(text.find("application/json"), std::string_view::npos);
  }
  const metrics::ShardCounters& counters = harness_->counters(0);
  EXPECT_EQ(counters.cluster_expired_in_transit.Load(), 1u);
  EXPECT_EQ(counters.cluster_batch_messages_in.Load(), 3u);
  EXPECT_EQ(counters.cluster_batch_invalid.Load(), 0u);

  // The expiry is honoured here: the deadline runs on this node's clock.
  sub5.recorded.clear();
  cluster::BeginBatch(batch, "n2");
  cluster::AppendBatchRecord(batch, {.topic = "t/2", .expiry_left_ms = 1'000, .payload = "x"});
  cluster::SealBatch(batch, 1);
  Deliver(0, MsgBytes("$RINGMQ.b.node-a.0", kBatchSid, batch));
  const std::vector<mqtt::Publish> got_expiring = BatchPublishes5(sub5);
  ASSERT_EQ(got_expiring.size(), 1u);
  EXPECT_EQ(got_expiring[0].properties.Values().message_expiry_interval_s, 1u);

  // A record whose properties are not carried ones: it and the rest of the batch dropped,
  // counted; the records before it delivered.
  sub5.recorded.clear();
  uint8_t alias[4];
  const size_t alias_size = mqtt::EncodeIntegerProperty(mqtt::PropertyId::kTopicAlias, 1, alias);
  cluster::BeginBatch(batch, "n2");
  cluster::AppendBatchRecord(batch, {.topic = "t/3", .payload = "before"});
  cluster::AppendBatchRecord(
      batch, {.topic = "t/3",
              .properties = std::string_view(reinterpret_cast<const char*>(alias), alias_size),
              .payload = "alias"});
  cluster::AppendBatchRecord(batch, {.topic = "t/3", .payload = "after"});
  cluster::SealBatch(batch, 1);
  Deliver(0, MsgBytes("$RINGMQ.b.node-a.0", kBatchSid, batch));
  const std::vector<mqtt::Publish> got_bad = BatchPublishes5(sub5);
  ASSERT_EQ(got_bad.size(), 1u);
  EXPECT_EQ(got_bad[0].payload, "before");
  EXPECT_EQ(counters.cluster_batch_invalid.Load(), 1u);
}

TEST_F(RouterClusterBatchTest, ABatchIsSentEarlyAtItsByteBound) {
  Start(/*batching=*/true, /*bytes_max=*/1024);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  const std::string payload(100, 'p');
  for (int i = 0; i < 30; ++i) Publish(pub, "t/" + std::to_string(i), payload);
  harness_->Settle();
  const std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_GE(pubs.size(), 3u) << "30 records of ~115 bytes in batches of at most 1024";
  int next = 0;
  for (const LinkPub& batch : pubs) {
    EXPECT_EQ(batch.subject, "$RINGMQ.b.n2.0");
    EXPECT_LE(batch.payload.size(), 1024u);
    for (const auto& [topic, bytes] : Records(batch.payload)) {
      EXPECT_EQ(topic, "t/" + std::to_string(next++)) << "order kept across batches";
    }
  }
  EXPECT_EQ(next, 30) << "nothing lost";
  EXPECT_EQ(harness_->counters(0).cluster_batch_flush_bound.Load(), pubs.size() - 1);
  // Alone over the bound: its plain subject, after the batched messages before it.
  Publish(pub, "t/a", "small");
  Publish(pub, "t/b", std::string(2000, 'x'));
  harness_->Settle();
  const std::vector<LinkPub> more = LinkPubs(Step(0));
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].subject, "$RINGMQ.b.n2.0");
  EXPECT_EQ(more[1].subject, "t.b");
  EXPECT_EQ(harness_->counters(0).cluster_batch_oversize.Load(), 1u);
}

TEST_F(RouterClusterBatchTest, RemoteSharedSubscriptionGroupsTurnBatchingOff) {
  Start(/*batching=*/true);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  // n2.0 now has groups: NATS's queue groups need the plain subjects (each message to one
  // member cluster-wide), so QoS 0 takes them while it does.
  Deliver(0, Hmsg("$RINGMQ.interest.a.n2.0", kAnnounceSid,
                  "Ringmq-Groups: 1\r\nRingmq-Kind: D\r\nRingmq-Seq: 2\r\n", ""));
  Publish(pub, "t/1", "plain");
  harness_->Settle();
  std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].subject, "t.1");
  Deliver(0, Hmsg("$RINGMQ.interest.a.n2.0", kAnnounceSid,
                  "Ringmq-Groups: 0\r\nRingmq-Kind: H\r\nRingmq-Seq: 2\r\n", ""));
  Publish(pub, "t/1", "batched");
  harness_->Settle();
  pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].subject, "$RINGMQ.b.n2.0");
  // An announcement without the header (a node that does not say) counts as groups.
  Deliver(0,
          Hmsg("$RINGMQ.interest.a.n2.0", kAnnounceSid, "Ringmq-Kind: H\r\nRingmq-Seq: 2\r\n", ""));
  Publish(pub, "t/1", "plain again");
  harness_->Settle();
  pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].subject, "t.1");
}

TEST_F(RouterClusterBatchTest, AnnouncementsSayWhetherThisShardHasGroups) {
  Start(/*batching=*/true);
  harness_->now_ms() += 10'000;  // a heartbeat is due
  const std::string heartbeat = Step(0);
  EXPECT_NE(heartbeat.find("Ringmq-Groups: 0\r\nRingmq-Kind: H\r\n"), std::string::npos)
      << heartbeat;
}

TEST_F(RouterClusterBatchTest, BatchingOffKeepsThePlainSubjects) {
  Start(/*batching=*/false);
  Client& pub = harness_->Connect(harness_->IdOn(0, "pub"));
  Publish(pub, "t/1", "one");
  Publish(pub, "u/1", "two");
  harness_->Settle();
  const std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 2u) << "NATS applications see every message";
  EXPECT_EQ(pubs[0].subject, "t.1");
  EXPECT_EQ(pubs[1].subject, "u.1");
  EXPECT_EQ(harness_->counters(0).cluster_batches_out.Load(), 0u);
}

TEST_F(RouterClusterBatchTest, ReceivedBatchesAreDeliveredInOrderWhateverThisNodesMode) {
  for (const bool batching : {false, true}) {
    SCOPED_TRACE(batching);
    harness_.reset();
    sinks_.clear();
    links_.clear();
    Start(batching);
    Client& sub = harness_->Connect(harness_->IdOn(0, "sub"));
    sub.record = true;
    harness_->Subscribe(sub, "t/#", mqtt::QoS::k1);
    Step(0);
    std::string batch;
    cluster::BeginBatch(batch, "n2");
    cluster::AppendBatchRecord(batch, {.topic = "t/1", .qos = 0, .payload = "a"});
    cluster::AppendBatchRecord(batch, {.topic = "t/2", .qos = 1, .retain = true, .payload = "b"});
    cluster::AppendBatchRecord(batch, {.topic = "x/1", .qos = 0, .payload = "not subscribed"});
    cluster::AppendBatchRecord(batch, {.topic = "t/1", .qos = 0, .payload = "c"});
    cluster::SealBatch(batch, 1);
    Deliver(0, MsgBytes("$RINGMQ.b.node-a.0", kBatchSid, batch));
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"t/1", "a"}, {"t/2", "b"}, {"t/1", "c"}};
    EXPECT_EQ(Received(sub), expected);
    EXPECT_EQ(sub.publishes_by_qos[1], 1u) << "min(record QoS, subscription QoS)";
    const metrics::ShardCounters& counters = harness_->counters(0);
    EXPECT_EQ(counters.cluster_batches_in.Load(), 1u);
    EXPECT_EQ(counters.cluster_batch_messages_in.Load(), 4u);
    // A batch cut in its second record: the first delivered, the rest dropped and counted.
    sub.recorded.clear();
    Deliver(0,
            MsgBytes("$RINGMQ.b.node-a.0", kBatchSid,
                     std::string_view(batch).substr(0, cluster::kBatchHeaderOverhead + 2 +
                                                           cluster::kBatchRecordOverhead + 4 + 5)));
    EXPECT_EQ(Received(sub), (std::vector<std::pair<std::string, std::string>>{{"t/1", "a"}}));
    EXPECT_EQ(counters.cluster_batch_invalid.Load(), 1u);
    Deliver(0, MsgBytes("$RINGMQ.b.node-a.0", kBatchSid, "garbage"));
    EXPECT_EQ(counters.cluster_batch_invalid.Load(), 2u);
    // A NATS application's message on a plain subject still reaches the subscriber.
    sub.recorded.clear();
    Deliver(0, MsgBytes("t.app", 7, "from NATS"));
    EXPECT_EQ(Received(sub),
              (std::vector<std::pair<std::string, std::string>>{{"t/app", "from NATS"}}));
  }
}

}  // namespace
}  // namespace ringmq::shard
