// Router's QoS 0 batches between nodes (router.h "FlushClusterBatches"; batch lane) through the
// sans-IO harness: real NatsLinks brought to kReady, the test playing another node's link n2.0
// (its interest announcements in, the batches addressed to it out).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/batch.h"
#include "cluster/nats_link.h"
#include "mqtt/codec.h"
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

TEST_F(RouterClusterBatchTest, AQos0MessageWith5PropertiesTakesItsPlainSubjectInOrder) {
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
  uint8_t properties[32];
  const size_t size =
      mqtt::EncodeUserProperty("k", "v", std::span<uint8_t>(properties, sizeof(properties)));
  publish5("batched-first", {});
  publish5("with-properties", std::span<const uint8_t>(properties, size));
  publish5("batched-third", {});
  harness_->Settle();
  const std::vector<LinkPub> pubs = LinkPubs(Step(0));
  ASSERT_EQ(pubs.size(), 3u);
  EXPECT_EQ(pubs[0].subject, "$RINGMQ.b.n2.0");
  EXPECT_EQ(Records(pubs[0].payload),
            (std::vector<std::pair<std::string, std::string>>{{"t/1", "batched-first"}}));
  EXPECT_EQ(pubs[1].subject, "t.1") << "properties cross as NATS headers on the plain subject";
  EXPECT_TRUE(pubs[1].headers);
  EXPECT_TRUE(pubs[1].payload.ends_with("with-properties"));
  EXPECT_NE(pubs[1].payload.find("\r\nk: v\r\n"), std::string::npos) << pubs[1].payload;
  EXPECT_EQ(pubs[2].subject, "$RINGMQ.b.n2.0") << "MQTT-4.6.0-6: the publisher's order";
  EXPECT_EQ(Records(pubs[2].payload),
            (std::vector<std::pair<std::string, std::string>>{{"t/1", "batched-third"}}));
  EXPECT_EQ(harness_->counters(0).cluster_batch_plain_mqtt5.Load(), 1u);
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
