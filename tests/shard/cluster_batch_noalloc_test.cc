// Proves that the QoS 0 batch path allocates nothing per message once warm (batch lane): a
// client's QoS 0 PUBLISH routed, matched against the other nodes' links' interest
// (RemoteInterest::Match), appended to the batches of two remote links, the batches sealed and
// published on the shard's NatsLink once per iteration, the link's output taken into a reused
// buffer; and on the receiving side, a batch decoded and its records delivered to a QoS 0
// subscriber.
//
// Counted: every operator new while armed (tests/common/counting_new.h). Not counted: each
// message's own Message (Message::Create mallocs it directly; steady_state_noalloc_test counts
// that one allocation per PUBLISH with a malloc replacement). After a warm-up (batch strings,
// the link's output buffer, match scratch, rings reach their size) a thousand more messages
// flow and the count must stay 0: sending only, receiving only, then both.
//
// The local subscriber takes only the received batches' topic (20 deliveries per iteration):
// with 40 per iteration its connection's output outgrows one buffer and the count shows that
// (7 per iteration here), which is the output path's sizing (steady_state_noalloc_test), not
// batching.
//
// The same with MQTT 5.0 (batchprops lane): a 5.0 publisher's messages with properties and an
// expiry go into the batches with them (the carried properties copied into a per-shard scratch
// string, capacity kept), received records with properties and an expiry are delivered to a 5.0
// subscriber (the block handed to the Message, which copies it into its own allocation): no
// operator new per message either.
//
// The replacement applies to the whole executable, so this file is its own test binary
// (tests/shard/meson.build), not part of ringmq_unit_tests.
#include <gtest/gtest.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../common/counting_new.h"
#include "cluster/batch.h"
#include "cluster/nats_link.h"
#include "cluster_harness.h"
#include "mqtt/codec.h"
#include "mqtt/properties.h"
#include "router_harness.h"
#include "shard/cluster_acks.h"

namespace ringmq::shard {
namespace {

using alloc_counting::AllocationsDuring;
using harness::Client;
using harness::RouterHarness;
using harness::RouterSink;

TEST(ClusterBatchNoAllocTest, CounterSeesAllocations) {
  EXPECT_EQ(alloc_counting::AllocationsOfOneNew(), 1u);
}

// A property block with what a record carries and a Message Expiry Interval.
std::string Mqtt5Block() {
  std::string block(128, '\0');
  size_t size = 0;
  const auto tail = [&] {
    return std::span<uint8_t>(reinterpret_cast<uint8_t*>(block.data()), block.size()).subspan(size);
  };
  size += mqtt::EncodeUserProperty("k", "1", tail());
  size += mqtt::EncodeIntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 60, tail());
  size += mqtt::EncodeStringProperty(mqtt::PropertyId::kContentType, "text/plain", tail());
  size += mqtt::EncodeUserProperty("k", "2", tail());
  block.resize(size);
  return block;
}

// `mqtt5`: the publisher, the subscriber and the received records at 5.0 with properties.
void ExpectNoAllocationPerMessage(bool mqtt5) {
  Config config;
  config.threads = 1;
  RouterHarness harness(config, 1);
  Router& router = harness.router(0);
  std::vector<std::unique_ptr<RouterSink>> sinks;
  std::vector<std::unique_ptr<cluster::NatsLink>> links;
  ASSERT_NO_FATAL_FAILURE(
      harness::AddReadyLink(router, RouterSink::Feed::kMain, 1048576, sinks, links));
  cluster::NatsLink& link = *links.back();
  router.AttachCluster(&link, "node-a", "");
  ClusterAckOptions ack_options;
  router.StartClusterAcks(ack_options);
  router.StartClusterBatches(/*batching=*/true, 64 << 10);
  // Two links of other nodes want t/# (their snapshots; sid 1 is the announcements').
  for (const std::string_view other : {"n2.0", "n3.0"}) {
    link.OnReceived(
        0, harness::HmsgBytes("$RINGMQ.interest.a." + std::string(other), harness::kAnnounceSid, "",
                              "Ringmq-Groups: 0\r\nRingmq-Kind: S\r\nRingmq-Seq: 1\r\n", "+t.>\n"));
  }
  mqtt::Connect sub_connect = harness::ConnectPacket("sub");
  mqtt::Connect pub_connect = harness::ConnectPacket("pub");
  if (mqtt5) {
    sub_connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
    pub_connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  }
  Client& sub = harness.Connect(sub_connect);
  // The batches' records, not the publishes.
  if (mqtt5) {
    harness.Subscribe5(sub, mqtt::TopicRequest{.filter = "t/x", .qos = mqtt::QoS::k0});
  } else {
    harness.Subscribe(sub, "t/x", mqtt::QoS::k0);
  }
  Client& pub = harness.Connect(pub_connect);
  const std::string block = mqtt5 ? Mqtt5Block() : std::string();

  // Pre-encoded: the test's own bytes are not the broker's allocations.
  constexpr int kPerIteration = 20;
  std::vector<harness::Bytes> publishes;
  const std::string topics[] = {"t/0", "t/1", "t/2", "t/3"};
  const std::string payload(64, 'p');
  for (int i = 0; i < kPerIteration; ++i) {
    if (!mqtt5) {
      publishes.push_back(harness::PublishBytes(topics[i % 4], payload, mqtt::QoS::k0, 0));
      continue;
    }
    const mqtt::Packet publish =
        mqtt::Publish{.topic = topics[i % 4],
                      .payload = payload,
                      .qos = mqtt::QoS::k0,
                      .properties = mqtt::Properties(std::span<const uint8_t>(
                          reinterpret_cast<const uint8_t*>(block.data()), block.size()))};
    harness::Bytes bytes(mqtt::EncodedSize(publish, mqtt::ProtocolLevel::kMqtt5));
    mqtt::Encode(publish, bytes, mqtt::ProtocolLevel::kMqtt5);
    publishes.push_back(std::move(bytes));
  }
  // What another node sends: 20 records for t/x (at 5.0: with the carried properties and the
  // time left).
  std::string carried;
  cluster::AppendBatchProperties(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(block.data()), block.size()),
      carried);
  std::string batch_in;
  cluster::BeginBatch(batch_in, "n2");
  const std::string payload_in(64, 'q');
  for (int i = 0; i < kPerIteration; ++i) {
    cluster::BatchRecord record{
        .topic = "t/x", .qos = 0, .properties = carried, .payload = payload_in};
    if (mqtt5) record.expiry_left_ms = 30'000;
    cluster::AppendBatchRecord(batch_in, record);
  }
  cluster::SealBatch(batch_in, 1);
  const std::string msg_in = harness::MsgBytes("$RINGMQ.b.node-a.0", 6, batch_in);
  std::string output;
  bool send_publishes = true;
  bool send_batch = true;
  // One loop iteration of the shard: client bytes in, the link's bytes in, the acks step (which
  // flushes the batches), the flush before the link's output is taken.
  const auto iteration = [&] {
    if (send_publishes) {
      for (const harness::Bytes& bytes : publishes) harness.Send(pub, bytes);
    }
    if (send_batch) link.OnReceived(harness.now_ms(), msg_in);
    harness.Settle();
    router.ClusterAckStep();
    router.FlushClusterBatches();
    output.clear();
    link.TakeOutput(output);
  };
  const uint64_t batches_before = harness.counters(0).cluster_batches_out.Load();
  for (int i = 0; i < 200; ++i) iteration();  // warm-up
  ASSERT_GT(harness.counters(0).cluster_batches_out.Load(), batches_before);
  const auto counted = [&](bool publishes_on, bool batch_on) {
    send_publishes = publishes_on;
    send_batch = batch_on;
    // 1000 messages each way that is on
    return AllocationsDuring([&] {
      for (int i = 0; i < 50; ++i) iteration();
    });
  };
  const uint64_t records_before = harness.counters(0).cluster_batch_messages_out.Load();
  const uint64_t delivered_before = sub.publishes_by_qos[0];
  EXPECT_EQ(counted(true, false), 0u) << "sending: route, match, append, seal, publish";
  EXPECT_EQ(counted(false, true), 0u) << "receiving: decode, deliver";
  EXPECT_EQ(counted(true, true), 0u) << "both in one iteration";
  EXPECT_EQ(harness.counters(0).cluster_batch_messages_out.Load() - records_before,
            2u * 2 * 50 * kPerIteration)
      << "every published message into both links' batches";
  EXPECT_EQ(sub.publishes_by_qos[0] - delivered_before, 2u * 50 * kPerIteration)
      << "every received record delivered";
  if (mqtt5) {
    EXPECT_EQ(harness.counters(0).cluster_batch_mqtt5_out.Load(),
              harness.counters(0).cluster_batch_messages_out.Load() / 2)
        << "every published message batched with its properties";
  }
}

TEST(ClusterBatchNoAllocTest, SendingAndReceivingBatchesAllocatesNothingPerMessage) {
  ExpectNoAllocationPerMessage(/*mqtt5=*/false);
}

TEST(ClusterBatchNoAllocTest, WithMqtt5PropertiesAndExpiryToo) {
  ExpectNoAllocationPerMessage(/*mqtt5=*/true);
}

}  // namespace
}  // namespace ringmq::shard
