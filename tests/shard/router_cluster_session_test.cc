// Persistent sessions across nodes (router_cluster_session.cc; session lane): the CONNACK of a
// persistent CONNECT waits for the key-value record and the moved state, bounded. Through the
// sans-IO harness: each shard's router has a real NatsLink at kReady; the test reads what the
// links would publish and feeds them what NATS and the other nodes would send.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/claim.h"
#include "cluster/nats_link.h"
#include "cluster/session_record.h"
#include "cluster/session_state.h"
#include "common/base64.h"
#include "common/log.h"
#include "persist/data_dir.h"
#include "persist/journal.h"
#include "persist/state.h"
#include "shard/cluster_sessions.h"
#include "shard/cluster_harness.h"
#include "shard/router_harness.h"

namespace ringmq::shard {
namespace {

using harness::Client;
using Pub = harness::LinkPub;

class RouterClusterSessionTest : public harness::ClusterRouterTest {
 protected:
  // The state the old node sends for `id` answering claim `key`: the subscription q/#, a QoS 2
  // PUBLISH sent as id 7 (no PUBREC yet), id 8 whose PUBREC arrived, a queued QoS 2 message,
  // and the client's own QoS 2 PUBLISH id 300 delivered there, PUBREL not yet.
  static std::string InFlightState(const std::string& id, uint64_t key) {
    std::string state;
    cluster::SessionStateWriter writer;
    EXPECT_TRUE(writer.Begin(state, 1 << 20, key, id));
    EXPECT_TRUE(writer.AddSubscription({.filter = "q/#", .options = 2}));
    EXPECT_TRUE(writer.AddMessage({.topic = "q/a",
                                   .payload = "one",
                                   .qos = 2,
                                   .retain = false,
                                   .packet_id = 7,
                                   .stage = cluster::StateStage::kInFlight}));
    EXPECT_TRUE(writer.AddMessage({.topic = {}, .payload = {}, .qos = 2, .retain = false,
                                   .packet_id = 8, .stage = cluster::StateStage::kReleased}));
    EXPECT_TRUE(writer.AddMessage({.topic = "q/c", .payload = "three", .qos = 2}));
    EXPECT_TRUE(writer.AddInboundQos2(300));
    writer.End();
    return state;
  }

  void SetUp() override {
    SetLogLevel(LogLevel::kError);
    config_.cluster_session_wait_ms = 1000;
    ASSERT_NO_FATAL_FAILURE(AddShards({.node = "node-b"}));
    for (uint32_t shard = 0; shard < 2; ++shard) {
      ASSERT_TRUE(harness_->router(shard).StartClusterOwnership().ok());
      Output(shard);
    }
  }
  void TearDown() override {
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  // The PUBs (without headers) in a link's output; `subs` gets the SUB lines.
  std::vector<Pub> Pubs(uint32_t shard, std::vector<std::string>* subs = nullptr) {
    std::vector<Pub> pubs = harness::LinkPubs(Output(shard), subs);
    std::erase_if(pubs, [](const Pub& pub) { return pub.headers; });
    return pubs;
  }

  static std::string Inbox(uint32_t shard) { return "$RINGMQ.kv.node-b." + std::to_string(shard); }

  // A message on `subject` for subscription `sid`, with a NATS header block if `headers` is
  // not empty (as HMSG).
  void Deliver(uint32_t shard, const std::string& subject, uint64_t sid, std::string_view payload,
               std::string_view headers = {}) {
    std::string msg = harness::MsgBytes(subject, sid, payload);
    if (!headers.empty()) {
      msg = "HMSG " + subject + " " + std::to_string(sid) + " " + std::to_string(headers.size()) +
            " " + std::to_string(headers.size() + payload.size()) + "\r\n" + std::string(headers) +
            std::string(payload) + "\r\n";
    }
    ClusterRouterTest::Deliver(shard, msg);
  }

  // Ticks shard `shard` so it creates the bucket, and answers the creation: the bucket is ready.
  void MakeBucketReady(uint32_t shard) {
    harness_->router(shard).ClusterTick(harness_->now_ms());
    std::vector<std::string> subs;
    const std::vector<Pub> pubs = Pubs(shard, &subs);
    const Pub* create = nullptr;
    for (const Pub& pub : pubs) {
      if (pub.subject == "$JS.API.STREAM.CREATE.KV_RINGMQ_SESSIONS") create = &pub;
    }
    ASSERT_NE(create, nullptr);
    EXPECT_EQ(create->reply, Inbox(shard) + ".c");
    EXPECT_NE(create->payload.find("\"allow_direct\":true"), std::string::npos);
    EXPECT_NE(create->payload.find("\"max_msgs_per_subject\":1"), std::string::npos);
    inbox_sid_[shard] = 0;
    for (const std::string& sub : subs) {
      const std::string prefix = "SUB " + Inbox(shard) + ".> ";
      if (sub.starts_with(prefix)) inbox_sid_[shard] = std::stoull(sub.substr(prefix.size()));
    }
    ASSERT_NE(inbox_sid_[shard], 0u) << "the inbox is subscribed";
    Deliver(shard, Inbox(shard) + ".c", inbox_sid_[shard],
            "{\"type\":\"io.nats.jetstream.api.v1.stream_create_response\",\"config\":{}}");
  }

  // JetStream's answers to a STREAM.MSG.GET of a record (cluster/session_record.h, "Reading").
  static std::string Record(std::string_view value) {
    return "{\"type\":\"io.nats.jetstream.api.v1.stream_msg_get_response\",\"message\":{"
           "\"subject\":\"$KV.RINGMQ_SESSIONS.6465\",\"seq\":3,\"data\":\"" +
           base64::EncodeToString({reinterpret_cast<const uint8_t*>(value.data()), value.size()}) +
           "\",\"time\":\"2026-12-07T17:00:00.000000001Z\"}}";
  }
  static std::string NoRecord() {
    return "{\"type\":\"io.nats.jetstream.api.v1.stream_msg_get_response\",\"error\":{"
           "\"code\":404,\"err_code\":10037,\"description\":\"no message found\"}}";
  }

  // After a held CONNECT: its record read and its claim in shard `shard`'s output.
  struct Held {
    std::string read_reply;
    uint64_t key = 0;
  };
  Held ReadAndClaim(uint32_t shard, const std::string& id) {
    Held held;
    harness_->router(shard).ClaimStep(UINT64_MAX);  // the claim batch, as when its window ends
    for (const Pub& pub : Pubs(shard)) {
      if (pub.subject == "$JS.API.STREAM.MSG.GET.KV_RINGMQ_SESSIONS") {
        std::string body;
        cluster::AppendSessionRecordGet("RINGMQ_SESSIONS", id, body);
        EXPECT_EQ(pub.payload, body);
        held.read_reply = pub.reply;
      } else if (pub.subject.starts_with("$RINGMQ.claims.")) {
        cluster::ClaimBatchReader reader;
        EXPECT_TRUE(reader.Open(pub.payload));
        cluster::Claim claim;
        while (reader.Next(claim)) {
          if (claim.client_id == id) held.key = claim.key;
        }
        EXPECT_EQ(pub.reply, "$RINGMQ.session.node-b." + std::to_string(shard));
      }
    }
    EXPECT_TRUE(held.read_reply.starts_with(Inbox(shard) + ".g.")) << held.read_reply;
    EXPECT_NE(held.key, 0u) << "claimed while the CONNACK waits";
    return held;
  }

  // A persistent CONNECT of `id` on `shard` whose record read says no node holds a session:
  // its CONNACK (session present 0) read; the record write it then sends is in the output.
  Client& ConnectWithNoRecord(uint32_t shard, const std::string& id) {
    Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
    harness_->Settle();
    const Held held = ReadAndClaim(shard, id);
    Deliver(shard, held.read_reply, inbox_sid_[shard], NoRecord());
    bool present = true;
    EXPECT_TRUE(harness_->TryReadConnack(client, &present));
    EXPECT_FALSE(present);
    return client;
  }

  void DeliverState(uint32_t shard, const std::string& id, uint64_t key) {
    std::string state;
    cluster::SessionStateWriter writer;
    ASSERT_TRUE(writer.Begin(state, 1 << 20, key, id));
    ASSERT_TRUE(writer.AddSubscription({.filter = "s/#", .options = 1}));
    ASSERT_TRUE(writer.AddMessage({.topic = "s/a", .payload = "queued", .qos = 1}));
    writer.End();
    const uint64_t state_sid = cluster::kClaimBuckets / 2 + 1;
    Deliver(shard, "$RINGMQ.session.node-b." + std::to_string(shard), state_sid, state);
  }

  // A claim from another node in a batch of its own, delivered as NATS would: on the group a
  // node with as many shards uses for it (its home shard), to the shard that subscribes that
  // group (group g on shard g % 2, sids from 1 in group order).
  void DeliverClaim(const cluster::Claim& claim, std::string_view reply) {
    const uint32_t group = harness_->HomeOf(claim.client_id);
    std::string subject;
    cluster::AppendClaimSubject("", group, subject);
    std::string payload;
    cluster::ClaimBatchWriter writer;
    writer.Begin(claim.node, payload);
    writer.Add(claim.key, claim.clean_start, claim.client_id, payload);
    const std::string msg = "MSG " + subject + " " + std::to_string(group / 2 + 1) + " " +
                            std::string(reply) + " " + std::to_string(payload.size()) + "\r\n" +
                            payload + "\r\n";
    ClusterRouterTest::Deliver(group % 2, msg);
  }

  // The packet id and DUP flag of a recorded QoS 1/2 PUBLISH (3.1.1 framing).
  static std::pair<uint16_t, bool> IdOf(const harness::Bytes& publish) {
    size_t at = 1;
    while (publish[at] & 0x80) ++at;  // remaining length
    ++at;
    const size_t topic = (size_t{publish[at]} << 8) | publish[at + 1];
    at += 2 + topic;
    return {static_cast<uint16_t>((publish[at] << 8) | publish[at + 1]), (publish[0] & 0x08) != 0};
  }

  metrics::ShardCounters& counters(uint32_t shard) { return harness_->counters(shard); }

  uint64_t inbox_sid_[2] = {0, 0};
};

TEST_F(RouterClusterSessionTest, WithoutTheBucketNoConnackWaits) {
  // No ClusterTick yet: no bucket, CONNECTs are answered at once as before.
  bool present = true;
  harness_->Connect(harness::ConnectPacket(harness_->IdOn(1, "dev"), /*clean_session=*/false),
                    &present);
  EXPECT_FALSE(present);
  EXPECT_EQ(counters(1).cluster_session_held.Load(), 0u);
  // The bucket asked for and not answered yet: the same, and counted.
  harness_->router(1).ClusterTick(harness_->now_ms());
  harness_->Connect(harness::ConnectPacket(harness_->IdOn(1, "dev2"), /*clean_session=*/false),
                    &present);
  EXPECT_FALSE(present);
  EXPECT_EQ(counters(1).cluster_session_held.Load(), 0u);
  EXPECT_EQ(counters(1).cluster_session_no_bucket.Load(), 1u) << "answered at once, counted";
}

TEST_F(RouterClusterSessionTest, AFailedBucketCreationIsAskedAgainSoonThenLessOften) {
  // JetStream's meta leader is elected seconds after the servers start: a creation sent before
  // gets "no responders". The shard asks again after 250 ms, then 500 ms, ... up to 5 s.
  auto creations = [&](uint32_t shard) {
    size_t n = 0;
    for (const Pub& pub : Pubs(shard)) n += pub.subject == "$JS.API.STREAM.CREATE.KV_RINGMQ_SESSIONS";
    return n;
  };
  uint64_t& now = harness_->now_ms();
  harness_->router(1).ClusterTick(now);
  std::vector<std::string> subs;
  const std::vector<Pub> first = Pubs(1, &subs);
  ASSERT_EQ(first.size(), 1u);
  const std::string prefix = "SUB " + Inbox(1) + ".> ";
  for (const std::string& sub : subs) {
    if (sub.starts_with(prefix)) inbox_sid_[1] = std::stoull(sub.substr(prefix.size()));
  }
  ASSERT_NE(inbox_sid_[1], 0u);
  Deliver(1, first[0].reply, inbox_sid_[1], "", "NATS/1.0 503\r\n\r\n");
  EXPECT_EQ(counters(1).cluster_session_bucket_unavailable.Load(), 1u);
  for (const uint64_t pause : {250u, 500u, 1000u, 2000u, 4000u, 5000u, 5000u}) {
    now += pause - 1;
    harness_->router(1).ClusterTick(now);
    EXPECT_EQ(creations(1), 0u) << "not before " << pause << " ms";
    now += 1;
    harness_->router(1).ClusterTick(now);
    ASSERT_EQ(creations(1), 1u) << "asked again after " << pause << " ms";
    Deliver(1, first[0].reply, inbox_sid_[1], "", "NATS/1.0 503\r\n\r\n");
  }
  EXPECT_EQ(counters(1).cluster_session_bucket_unavailable.Load(), 8u);
  // Answered at last: ready, and the next failure (none here) would start again at 250 ms.
  now += 5000;
  harness_->router(1).ClusterTick(now);
  ASSERT_EQ(creations(1), 1u);
  Deliver(1, first[0].reply, inbox_sid_[1],
          "{\"type\":\"io.nats.jetstream.api.v1.stream_create_response\",\"config\":{}}");
  EXPECT_EQ(counters(1).cluster_session_bucket_ready.Load(), 1u);
  const std::string id = harness_->IdOn(1, "dev");
  harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  EXPECT_EQ(counters(1).cluster_session_held.Load(), 1u) << "the bucket is ready: held";
}

TEST_F(RouterClusterSessionTest, ADeleteMarkerOrAnUnknownReplyIsNoRecordOrAnError) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  // A KV delete marker: a message without data.
  Deliver(0, held.read_reply, inbox_sid_[0],
          "{\"message\":{\"subject\":\"$KV.RINGMQ_SESSIONS.6465\",\"seq\":4,"
          "\"hdrs\":\"TkFUUy8xLjANCktWLU9wZXJhdGlvbjogREVMDQoNCg==\",\"time\":\"x\"}}");
  bool present = true;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_FALSE(present);
  EXPECT_EQ(counters(0).cluster_session_none.Load(), 1u);
}

TEST_F(RouterClusterSessionTest, NoRecordGivesSessionPresent0AfterTheReadAndWritesTheRecord) {
  MakeBucketReady(1);
  const std::string id = harness_->IdOn(1, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  bool present = true;
  EXPECT_FALSE(harness_->TryReadConnack(client, &present)) << "the CONNACK waits for the read";
  const Held held = ReadAndClaim(1, id);
  EXPECT_EQ(counters(1).cluster_session_held.Load(), 1u);
  Deliver(1, held.read_reply, inbox_sid_[1], NoRecord());
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_FALSE(present) << "MQTT-3.2.2-2: no session anywhere";
  EXPECT_EQ(counters(1).cluster_session_none.Load(), 1u);
  // The session started here: its record names this node and the claim's key.
  std::string subject;
  cluster::AppendSessionRecordSubject("RINGMQ_SESSIONS", id, subject);
  const std::vector<Pub> pubs = Pubs(1);
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(pubs[0].subject, subject);
  EXPECT_TRUE(pubs[0].reply.starts_with(Inbox(1) + ".w.")) << pubs[0].reply;
  EXPECT_EQ(pubs[0].payload, "1 node-b " + std::to_string(held.key));
  EXPECT_EQ(counters(1).cluster_session_records_written.Load(), 1u);
  Deliver(1, pubs[0].reply, inbox_sid_[1], "{\"stream\":\"KV_RINGMQ_SESSIONS\",\"seq\":7}");
  EXPECT_EQ(counters(1).cluster_session_records_acked.Load(), 1u);
  // The session works: a subscription gets a message.
  EXPECT_EQ(harness_->Subscribe(client, "x"), 1);
}

TEST_F(RouterClusterSessionTest, ASessionEndingHereDeletesItsRecordUnlessANewerOneReplacedIt) {
  MakeBucketReady(1);
  for (int round = 0; round < 2; ++round) {
    const std::string id = harness_->IdOn(1, round == 0 ? "dev" : "dev2");
    ConnectWithNoRecord(1, id);
    const std::vector<Pub> pubs = Pubs(1);
    ASSERT_EQ(pubs.size(), 1u);
    const std::string seq = std::to_string(7 + round);
    Deliver(1, pubs[0].reply, inbox_sid_[1],
            "{\"stream\":\"KV_RINGMQ_SESSIONS\",\"seq\":" + seq + "}");
    // MQTT-3.1.2-6: a clean CONNECT for the id discards the session; its record goes with it,
    // as a KV delete marker that JetStream applies only over this node's write (sequence 7).
    harness_->Connect(id, /*clean_session=*/true);
    harness_->Settle();
    const std::string out = Output(1);
    std::string subject;
    cluster::AppendSessionRecordSubject("RINGMQ_SESSIONS", id, subject);
    EXPECT_NE(out.find("HPUB " + subject + " " + Inbox(1) + ".d "), std::string::npos) << out;
    EXPECT_NE(out.find("KV-Operation: DEL\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("Nats-Expected-Last-Subject-Sequence: " + seq + "\r\n"), std::string::npos)
        << out;
    // Deleted the first time; the second time another node had written a newer record.
    Deliver(1, Inbox(1) + ".d", inbox_sid_[1],
            round == 0 ? "{\"stream\":\"KV_RINGMQ_SESSIONS\",\"seq\":9}"
                       : "{\"error\":{\"code\":400,\"err_code\":10071,"
                         "\"description\":\"wrong last sequence: 12\"}}");
  }
  EXPECT_EQ(counters(1).cluster_session_records_deleted.Load(), 1u);
  EXPECT_EQ(counters(1).cluster_session_records_kept.Load(), 1u);
  EXPECT_EQ(counters(1).cluster_session_record_errors.Load(), 0u);
}

TEST_F(RouterClusterSessionTest, ASessionWhoseWriteWasNotAckedDeletesNothing) {
  MakeBucketReady(1);
  const std::string id = harness_->IdOn(1, "dev");
  ConnectWithNoRecord(1, id);
  ASSERT_EQ(Pubs(1).size(), 1u);  // the write, not acknowledged (yet)
  harness_->Connect(id, /*clean_session=*/true);
  harness_->Settle();
  EXPECT_EQ(Output(1).find("KV-Operation"), std::string::npos)
      << "no sequence of ours to delete over";
}

TEST_F(RouterClusterSessionTest, TheMovedStateGivesSessionPresent1AndItsMessagesAfterTheConnack) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  // The record names another node: the CONNACK waits for its state.
  Deliver(0, held.read_reply, inbox_sid_[0], Record("1 node-a 42"));
  bool present = false;
  EXPECT_FALSE(harness_->TryReadConnack(client, &present));
  DeliverState(0, id, held.key);
  EXPECT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_TRUE(present) << "MQTT-3.2.2-2: the session moved here";
  EXPECT_EQ(counters(0).cluster_session_moved.Load(), 1u);
  harness_->Settle();
  EXPECT_EQ(client.publishes_by_qos[1], 1u) << "the queued message";
  EXPECT_EQ(client.packets_before_connack, 0u) << "after the CONNACK";
  Client& publisher = harness_->Connect(harness_->IdOn(1, "pub"));
  harness_->Send(publisher, harness::PublishBytes("s/b", "live", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_EQ(client.publishes_by_qos[1], 2u) << "through the moved subscription";
}

TEST_F(RouterClusterSessionTest, AStateBeforeTheRecordAnswersAtOnce) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  DeliverState(0, id, held.key);
  bool present = false;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_TRUE(present);
  // The late read changes nothing.
  Deliver(0, held.read_reply, inbox_sid_[0], Record("1 node-a 42"));
  EXPECT_EQ(counters(0).cluster_session_moved.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_session_none.Load(), 0u);
}

TEST_F(RouterClusterSessionTest, NoStateWithinTheWaitGivesSessionPresent0AndALateStateMerges) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  Deliver(0, held.read_reply, inbox_sid_[0], Record("1 node-a 42"));
  harness_->now_ms() += 999;
  harness_->router(0).ClusterTick(harness_->now_ms());
  bool present = true;
  EXPECT_FALSE(harness_->TryReadConnack(client, &present)) << "still within session_wait_ms";
  harness_->now_ms() += 1;
  harness_->router(0).ClusterTick(harness_->now_ms());
  harness_->RunIteration();
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_FALSE(present);
  EXPECT_EQ(counters(0).cluster_session_timeouts.Load(), 1u);
  // What the old node sends late is not lost: merged into the bound session.
  DeliverState(0, id, held.key);
  EXPECT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  EXPECT_EQ(client.publishes_by_qos[1], 1u);
}

TEST_F(RouterClusterSessionTest, PacketsSentBeforeTheConnackWaitForIt) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  // MQTT-3.1.4-7 lets a client send before the CONNACK; the server acts on them after it.
  harness_->Send(client, harness::PublishBytes("p/q", "early", mqtt::QoS::k1, 9));
  harness_->Settle();
  EXPECT_EQ(client.Received(mqtt::PacketType::kPuback), 0u);
  const Held held = ReadAndClaim(0, id);
  Deliver(0, held.read_reply, inbox_sid_[0], NoRecord());
  bool present = true;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present)) << "the CONNACK first";
  harness_->Settle();
  EXPECT_EQ(client.Received(mqtt::PacketType::kPuback), 1u) << "then the PUBLISH's PUBACK";
  EXPECT_EQ(client.packets_before_connack, 0u);
}

TEST_F(RouterClusterSessionTest, CleanAndLocallyResumedConnectsNeverWait) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  bool present = true;
  harness_->Connect(harness::ConnectPacket(id, /*clean_session=*/true), &present);
  EXPECT_FALSE(present);
  EXPECT_EQ(counters(0).cluster_session_held.Load(), 0u);
  EXPECT_EQ(counters(0).cluster_session_records_written.Load(), 0u) << "clean: no record";
  Pubs(0);  // its claim
  // A persistent session resumed on this node: answered at once, session present 1.
  const std::string other = harness_->IdOn(0, "dev2");
  Client& first = harness_->ConnectWithoutReading(harness::ConnectPacket(other, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, other);
  Deliver(0, held.read_reply, inbox_sid_[0], NoRecord());
  ASSERT_TRUE(harness_->TryReadConnack(first, &present));
  harness_->Drop(first);
  harness_->Connect(harness::ConnectPacket(other, false), &present);
  EXPECT_TRUE(present);
  EXPECT_EQ(counters(0).cluster_session_held.Load(), 1u);
  EXPECT_EQ(counters(0).cluster_session_records_written.Load(), 1u) << "its record is ours";
}

TEST_F(RouterClusterSessionTest, AReadErrorAnswersAtOnceWithSessionPresent0) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  Deliver(0, held.read_reply, inbox_sid_[0], "", "NATS/1.0 503\r\n\r\n");
  bool present = true;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_FALSE(present);
  EXPECT_EQ(counters(0).cluster_session_read_errors.Load(), 1u);
}

TEST_F(RouterClusterSessionTest, AClientGoneBeforeItsConnackLeavesAnOfflineSession) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  harness_->Drop(client);
  EXPECT_EQ(counters(0).cluster_session_abandoned.Load(), 1u);
  EXPECT_EQ(counters(0).gauges.sessions_offline.Load(), 1);
  // The state on its way merges into it, and the client's next CONNECT finds it here.
  DeliverState(0, id, held.key);
  EXPECT_EQ(counters(0).cluster_owner_states_merged.Load(), 1u);
  Deliver(0, held.read_reply, inbox_sid_[0], NoRecord());
  bool present = false;
  Client& again = harness_->Connect(harness::ConnectPacket(id, false), &present);
  EXPECT_TRUE(present);
  harness_->Settle();
  EXPECT_EQ(again.publishes_by_qos[1], 1u);
}

TEST_F(RouterClusterSessionTest, ASecondConnectWhileWaitingTakesTheSession) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& first = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  // MQTT-3.1.4-2: the newer connection has the id; the waiting one is closed without CONNACK.
  bool present = false;
  harness_->Connect(harness::ConnectPacket(id, false), &present);
  EXPECT_TRUE(present) << "the session created for the first CONNECT";
  Deliver(0, held.read_reply, inbox_sid_[0], NoRecord());
  EXPECT_EQ(counters(0).cluster_session_taken_over.Load(), 1u);
  EXPECT_EQ(first.connection.state(), net::Connection::State::kClosing);
}

TEST_F(RouterClusterSessionTest, BeyondTheBoundOfWaitsConnectsAreAnsweredAtOnce) {
  MakeBucketReady(0);
  for (size_t i = 0; i < ClusterSessions::kWaitsMax; ++i) {
    harness_->ConnectWithoutReading(
        harness::ConnectPacket(harness_->IdOn(0, "w" + std::to_string(i)), false));
  }
  EXPECT_EQ(counters(0).cluster_session_held.Load(), ClusterSessions::kWaitsMax);
  bool present = true;
  harness_->Connect(harness::ConnectPacket(harness_->IdOn(0, "over"), false), &present);
  EXPECT_FALSE(present);
  EXPECT_EQ(counters(0).cluster_session_not_held.Load(), 1u);
}

TEST_F(RouterClusterSessionTest, AYieldingSessionSendsItsInFlightStateWithPacketIds) {
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->Connect(harness::ConnectPacket(id, false));
  client.auto_ack = false;
  client.record = true;
  harness_->Subscribe(client, "q/#", mqtt::QoS::k2);
  Client& publisher = harness_->Connect(harness_->IdOn(1, "pub"));
  harness_->Send(publisher, harness::PublishBytes("q/a", "one", mqtt::QoS::k2, 1));
  harness_->Send(publisher, harness::PublishBytes("q/b", "two", mqtt::QoS::k2, 2));
  harness_->Settle();
  ASSERT_EQ(client.recorded.size(), 2u);
  const uint16_t first = IdOf(client.recorded[0]).first;
  const uint16_t second = IdOf(client.recorded[1]).first;
  // The second one's PUBREC arrives: released, PUBCOMP awaited. And an inbound QoS 2 PUBLISH
  // whose PUBREL has not come.
  harness_->Send(client, mqtt::Pubrec{second});
  harness_->Send(client, harness::PublishBytes("in/x", "up", mqtt::QoS::k2, 300));
  harness_->Settle();
  harness_->Drop(client);
  Output(0);
  DeliverClaim({.key = UINT64_MAX / 2, .node = "node-a", .clean_start = false, .client_id = id},
               "$RINGMQ.session.node-a.1");
  const std::string out = Output(0);
  const std::string head = "PUB $RINGMQ.session.node-a.1 ";
  ASSERT_TRUE(out.starts_with(head)) << out;
  const size_t eol = out.find("\r\n");
  const size_t size = std::stoul(out.substr(head.size(), eol - head.size()));
  std::vector<std::string> items;
  ASSERT_TRUE(cluster::ParseSessionState(
      std::string_view(out).substr(eol + 2, size), [](uint64_t, std::string_view) { return true; },
      [](const cluster::StateSubscription&) {},
      [&](const cluster::StateMessage& m) {
        items.push_back(std::string(m.topic) + " " + std::to_string(m.packet_id) + " " +
                        std::to_string(static_cast<int>(m.stage)));
      },
      [&](uint16_t packet_id) { items.push_back("in " + std::to_string(packet_id)); }));
  EXPECT_EQ(items, (std::vector<std::string>{"q/a " + std::to_string(first) + " 1",
                                             " " + std::to_string(second) + " 2", "in 300"}));
}

TEST_F(RouterClusterSessionTest, AMovedQos2ExchangeCompletesExactlyOnceWithItsPacketIds) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& watcher = harness_->Connect(harness_->IdOn(1, "watch"));
  harness_->Subscribe(watcher, "in/#", mqtt::QoS::k2);
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  client.record = true;
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  const std::string state = InFlightState(id, held.key);
  const uint64_t state_sid = cluster::kClaimBuckets / 2 + 1;
  Deliver(0, "$RINGMQ.session.node-b.0", state_sid, state);
  bool present = false;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_TRUE(present);
  EXPECT_EQ(counters(0).cluster_session_inflight_restored.Load(), 3u);
  harness_->Settle();
  EXPECT_EQ(client.packets_before_connack, 0u);
  // MQTT-4.4.0-1: id 7 again with DUP, PUBREL for id 8, the queued one with a new id; the
  // client (auto_ack) completes both QoS 2 exchanges.
  ASSERT_EQ(client.recorded.size(), 2u);
  EXPECT_EQ(IdOf(client.recorded[0]), std::make_pair(uint16_t{7}, true));
  EXPECT_NE(IdOf(client.recorded[1]).first, 7);
  EXPECT_NE(IdOf(client.recorded[1]).first, 8);
  EXPECT_EQ(client.Received(mqtt::PacketType::kPubrel), 3u) << "8, then 7 and the new one";
  EXPECT_EQ(counters(0).gauges.inflight_messages.Load(), 0) << "all three completed";
  // MQTT-4.3.3: the client resends its PUBLISH 300 (no PUBREC reached it): not delivered
  // again, PUBREC; then PUBREL, PUBCOMP.
  mqtt::Publish again;
  again.topic = "in/x";
  again.payload = "up";
  again.qos = mqtt::QoS::k2;
  again.packet_id = 300;
  again.dup = true;
  harness_->Send(client, again);
  harness_->Settle();
  EXPECT_EQ(client.Received(mqtt::PacketType::kPubrec), 1u);
  EXPECT_EQ(client.Received(mqtt::PacketType::kPubcomp), 1u) << "auto_ack sent the PUBREL";
  EXPECT_EQ(watcher.publishes_by_qos[2], 0u) << "delivered once, on the old node";
}

// ---- With persistence on (moveinflight lane) ---------------------------------------------------
// The same moves with each shard logging to a real data directory: the restored in-flight state
// is logged as recovery rebuilds it, so the log stays consistent with what the session does
// next (every PUBACK / PUBREC / PUBCOMP of a restored packet id applies) and a restart of this
// node recovers it. The journals are driven as the shard's ring does (write, fdatasync).
class RouterClusterSessionPersistTest : public RouterClusterSessionTest {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("ringmq-moveinflight-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    ASSERT_NO_FATAL_FAILURE(RouterClusterSessionTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(StartPersistence(nullptr));
  }
  void TearDown() override {
    StopNode();
    std::filesystem::remove_all(dir_);
    RouterClusterSessionTest::TearDown();
  }

  // Opens the data directory, and each shard logs to segment 0 of the next run, recovering
  // `recovered` first (the broker's start, shard.cc SetupPersistence).
  void StartPersistence(const persist::RecoveredState* recovered) {
    absl::StatusOr<std::unique_ptr<persist::DataDir>> dir = persist::DataDir::Open(dir_.string());
    ASSERT_TRUE(dir.ok()) << dir.status();
    data_dir_ = std::move(*dir);
    SharedState& shared = harness_->shared();
    shared.data_dir = data_dir_.get();
    shared.persist_run = data_dir_->current_run() + 1;
    shared.recovered = recovered;
    for (uint32_t shard = 0; shard < harness_->shard_count(); ++shard) {
      absl::StatusOr<persist::SegmentFile> file =
          data_dir_->CreateSegment(shard, shared.persist_run, 0, /*sync=*/false);
      ASSERT_TRUE(file.ok()) << file.status();
      journals_.push_back(std::make_unique<persist::Journal>(persist::Journal::Options{}));
      journals_.back()->Open(std::move(*file));
      harness_->router(shard).StartPersistence(journals_.back().get());
    }
    shared.recovered = nullptr;
    ASSERT_NO_FATAL_FAILURE(Sync());
    ASSERT_TRUE(shared.persist_committed.load()) << "every start snapshot durable: run committed";
  }

  // Each journal's I/O done as the shard's ring does it, then each router's PersistStep (which
  // releases the output held for the log), a few rounds (shard 0 commits the run once every
  // start snapshot is durable).
  void Sync() {
    for (int round = 0; round < 3; ++round) {
      for (uint32_t shard = 0; shard < journals_.size(); ++shard) {
        persist::Journal& journal = *journals_[shard];
        while (std::optional<persist::Journal::Io> io = journal.NextIo(harness_->now_ms(), true)) {
          const ssize_t n = pwrite(io->fd, io->bytes.data(), io->bytes.size(),
                                   static_cast<off_t>(io->offset));
          ASSERT_EQ(n, static_cast<ssize_t>(io->bytes.size()));
          journal.OnWriteDone(static_cast<int>(n), harness_->now_ms());
          if (io->sync) {
            ASSERT_EQ(fdatasync(io->fd), 0);
            journal.OnSyncDone(0, harness_->now_ms());
          }
        }
        harness_->router(shard).PersistStep();
      }
    }
  }
  // Settle, Sync and read, until two rounds in a row move nothing (output the log held is
  // released by a Sync and read in the next round).
  void SettleDurable() {
    int quiet = 0;
    for (int round = 0; round < 16 && quiet < 2; ++round) {
      ASSERT_NO_FATAL_FAILURE(Sync());
      const size_t read = harness_->ReadOutput();
      quiet = read == 0 && harness_->Settle() == 1 ? quiet + 1 : 0;
    }
    EXPECT_EQ(quiet, 2) << "still busy";
  }

  // The node stops as a crash would after its last sync: routers, links, journals, directory.
  void StopNode() {
    harness_.reset();
    links_.clear();
    sinks_.clear();
    journals_.clear();
    data_dir_.reset();
  }
  // What a restart reads back from the directory (every shard's newest segment).
  persist::RecoveredState Recover() {
    absl::StatusOr<std::unique_ptr<persist::DataDir>> dir = persist::DataDir::Open(dir_.string());
    EXPECT_TRUE(dir.ok()) << dir.status();
    if (!dir.ok()) return {};
    absl::StatusOr<persist::RecoveredState> state = (*dir)->Recover({}, nullptr);
    EXPECT_TRUE(state.ok()) << state.status();
    return state.ok() ? std::move(*state) : persist::RecoveredState{};
  }
  // The node starts again on the same directory with what Recover read (a new harness, links
  // ready, claims subscribed).
  void RestartNode(const persist::RecoveredState& recovered) {
    StopNode();
    ASSERT_NO_FATAL_FAILURE(AddShards({.node = "node-b"}));
    for (uint32_t shard = 0; shard < 2; ++shard) {
      ASSERT_TRUE(harness_->router(shard).StartClusterOwnership().ok());
      Output(shard);
    }
    ASSERT_NO_FATAL_FAILURE(StartPersistence(&recovered));
  }

  // A SUBSCRIBE (its SUBACK may wait for the log, HoldIfLogged) settled durably.
  void SubscribeDurable(Client& client, std::string_view filter, mqtt::QoS qos) {
    const mqtt::TopicRequest request{filter, qos};
    const std::span<const mqtt::TopicRequest> requests(&request, 1);
    harness::Bytes entries(mqtt::TopicListEncodedSize(requests, true));
    mqtt::EncodeTopicList(requests, true, entries);
    const uint64_t before = client.Received(mqtt::PacketType::kSuback);
    harness_->Send(client, mqtt::Subscribe{1, mqtt::TopicList(entries, true)});
    ASSERT_NO_FATAL_FAILURE(SettleDurable());
    ASSERT_EQ(client.Received(mqtt::PacketType::kSuback), before + 1);
  }

  // The stored deliveries of `session` as "<stage> <packet id> <topic>" (stage: q queued,
  // a awaiting PUBACK / PUBREC, c awaiting PUBCOMP).
  static std::vector<std::string> Deliveries(const persist::StoredSession& session) {
    std::vector<std::string> out;
    for (const persist::StoredDelivery& delivery : session.deliveries) {
      const char* stage = delivery.stage == persist::StoredDelivery::Stage::kQueued     ? "q"
                          : delivery.stage == persist::StoredDelivery::Stage::kAwaitAck ? "a"
                                                                                         : "c";
      out.push_back(std::string(stage) + " " + std::to_string(delivery.packet_id) + " " +
                    (delivery.message ? delivery.message->topic : std::string()));
    }
    return out;
  }

  // The client's own QoS 2 PUBLISH 300 sent again (no PUBREC reached it on the old node).
  static mqtt::Publish Resend300() {
    mqtt::Publish again;
    again.topic = "in/x";
    again.payload = "up";
    again.qos = mqtt::QoS::k2;
    again.packet_id = 300;
    again.dup = true;
    return again;
  }

  std::filesystem::path dir_;
  std::unique_ptr<persist::DataDir> data_dir_;
  std::vector<std::unique_ptr<persist::Journal>> journals_;
};

TEST_F(RouterClusterSessionPersistTest,
       AMovedQos2ExchangeIsRestoredWithPersistenceAndItsLogStaysConsistent) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& watcher = harness_->Connect(harness_->IdOn(1, "watch"));
  ASSERT_NO_FATAL_FAILURE(SubscribeDurable(watcher, "in/#", mqtt::QoS::k2));
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  client.record = true;
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  const uint64_t records_before = counters(0).persist_records.Load();
  Deliver(0, "$RINGMQ.session.node-b.0", cluster::kClaimBuckets / 2 + 1,
          InFlightState(id, held.key));
  bool present = false;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_TRUE(present);
  // Restored as without persistence (MQTT-4.3.3, MQTT-4.4.0-1), none queued anew.
  EXPECT_EQ(counters(0).cluster_session_inflight_restored.Load(), 3u);
  EXPECT_EQ(counters(0).cluster_session_inflight_requeued.Load(), 0u);
  EXPECT_EQ(counters(0).cluster_session_inflight_dropped.Load(), 0u);
  // The QoS 2 resend waits for the records that restored it (WriteSessionOutput's hold, as
  // any QoS 2 send): a packet id the client sees is in the log first.
  EXPECT_TRUE(client.recorded.empty()) << "sent before the log was synced";
  ASSERT_NO_FATAL_FAILURE(SettleDurable());
  EXPECT_GT(counters(0).persist_records.Load(), records_before) << "the merge was logged";
  // id 7 again with DUP, PUBREL for id 8, the queued one with a new id; the client (auto_ack)
  // completes both QoS 2 exchanges.
  ASSERT_EQ(client.recorded.size(), 2u);
  EXPECT_EQ(IdOf(client.recorded[0]), std::make_pair(uint16_t{7}, true));
  EXPECT_NE(IdOf(client.recorded[1]).first, 7);
  EXPECT_NE(IdOf(client.recorded[1]).first, 8);
  EXPECT_EQ(client.Received(mqtt::PacketType::kPubrel), 3u) << "8, then 7 and the new one";
  EXPECT_EQ(counters(0).gauges.inflight_messages.Load(), 0) << "all three completed";
  // MQTT-4.3.3: PUBLISH 300 again: PUBREC, not delivered again; then PUBREL, PUBCOMP.
  harness_->Send(client, Resend300());
  ASSERT_NO_FATAL_FAILURE(SettleDurable());
  EXPECT_EQ(client.Received(mqtt::PacketType::kPubrec), 1u);
  EXPECT_EQ(client.Received(mqtt::PacketType::kPubcomp), 1u) << "auto_ack sent the PUBREL";
  EXPECT_EQ(watcher.publishes_by_qos[2], 0u) << "delivered once, on the old node";
  // The log took every acknowledgement of the restored packet ids (an unlogged restored entry
  // makes the PUBREC of id 7 or the PUBCOMP of id 8 inconsistent: recovery fails): the session
  // recovers with its subscription and nothing in flight.
  StopNode();
  const persist::RecoveredState recovered = Recover();
  ASSERT_EQ(recovered.sessions.count(id), 1u);
  const persist::StoredSession& session = recovered.sessions.at(id);
  EXPECT_EQ(session.subscriptions.count("q/#"), 1u);
  EXPECT_TRUE(session.deliveries.empty()) << ::testing::PrintToString(Deliveries(session));
  EXPECT_TRUE(session.inbound_qos2.empty());
}

TEST_F(RouterClusterSessionPersistTest, AMovedInFlightStateSurvivesARestartOfTheNewNode) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  client.record = true;
  client.auto_ack = false;  // the client acknowledges nothing before the node restarts
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  Deliver(0, "$RINGMQ.session.node-b.0", cluster::kClaimBuckets / 2 + 1,
          InFlightState(id, held.key));
  bool present = false;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_TRUE(present);
  ASSERT_NO_FATAL_FAILURE(SettleDurable());
  ASSERT_EQ(client.recorded.size(), 2u) << "7 again, and the queued one sent";
  EXPECT_EQ(IdOf(client.recorded[0]), std::make_pair(uint16_t{7}, true));
  const uint16_t third = IdOf(client.recorded[1]).first;
  EXPECT_EQ(client.Received(mqtt::PacketType::kPubrel), 1u) << "for 8";
  // The node stops (after its last sync); what it recovers is the moved state as it stands:
  // 7 and the third awaiting PUBREC, 8 awaiting PUBCOMP, inbound 300 awaiting PUBREL.
  StopNode();
  const persist::RecoveredState recovered = Recover();
  ASSERT_EQ(recovered.sessions.count(id), 1u);
  const persist::StoredSession& stored = recovered.sessions.at(id);
  EXPECT_EQ(stored.subscriptions.count("q/#"), 1u);
  EXPECT_EQ(Deliveries(stored),
            (std::vector<std::string>{"a 7 q/a", "c 8 ", "a " + std::to_string(third) + " q/c"}));
  EXPECT_EQ(stored.inbound_qos2, std::vector<uint16_t>{300});
  // The restarted node serves the client: session present 1, 7 and the third again with DUP,
  // the PUBREL of 8 again (MQTT-4.4.0-1); PUBLISH 300 resent is not delivered twice (MQTT-4.3.3).
  ASSERT_NO_FATAL_FAILURE(RestartNode(recovered));
  Client& watcher = harness_->Connect(harness_->IdOn(1, "watch"));
  ASSERT_NO_FATAL_FAILURE(SubscribeDurable(watcher, "in/#", mqtt::QoS::k2));
  Client& again = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  again.record = true;
  ASSERT_NO_FATAL_FAILURE(SettleDurable());
  ASSERT_TRUE(harness_->TryReadConnack(again, &present));
  EXPECT_TRUE(present);
  ASSERT_EQ(again.recorded.size(), 2u);
  EXPECT_EQ(IdOf(again.recorded[0]), std::make_pair(uint16_t{7}, true));
  EXPECT_EQ(IdOf(again.recorded[1]), std::make_pair(third, true));
  EXPECT_EQ(again.Received(mqtt::PacketType::kPubrel), 3u) << "8, then 7 and the third";
  harness_->Send(again, Resend300());
  ASSERT_NO_FATAL_FAILURE(SettleDurable());
  EXPECT_EQ(again.Received(mqtt::PacketType::kPubrec), 1u);
  EXPECT_EQ(again.Received(mqtt::PacketType::kPubcomp), 1u);
  EXPECT_EQ(watcher.publishes_by_qos[2], 0u) << "delivered once, on the old node";
  EXPECT_EQ(harness_->counters(0).gauges.inflight_messages.Load(), 0);
}

TEST_F(RouterClusterSessionPersistTest, APacketIdNamedTwiceIsRestoredOnceAndTheLogStaysConsistent) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  client.record = true;
  client.auto_ack = false;
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  // No writer sends this: id 7 in flight twice, id 8 released twice, inbound 300 twice. A log
  // with two deliveries of one packet id would not recover (state.h): the second of each is
  // queued anew (in flight) or dropped (released, inbound), counted.
  std::string state;
  cluster::SessionStateWriter writer;
  ASSERT_TRUE(writer.Begin(state, 1 << 20, held.key, id));
  ASSERT_TRUE(writer.AddSubscription({.filter = "q/#", .options = 2}));
  for (const char* payload : {"one", "again"}) {
    ASSERT_TRUE(writer.AddMessage({.topic = "q/a", .payload = payload, .qos = 2, .retain = false,
                                   .packet_id = 7, .stage = cluster::StateStage::kInFlight}));
  }
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(writer.AddMessage({.topic = {}, .payload = {}, .qos = 2, .retain = false,
                                   .packet_id = 8, .stage = cluster::StateStage::kReleased}));
  }
  ASSERT_TRUE(writer.AddInboundQos2(300));
  ASSERT_TRUE(writer.AddInboundQos2(300));
  writer.End();
  Deliver(0, "$RINGMQ.session.node-b.0", cluster::kClaimBuckets / 2 + 1, state);
  bool present = false;
  ASSERT_TRUE(harness_->TryReadConnack(client, &present));
  EXPECT_TRUE(present);
  EXPECT_EQ(counters(0).cluster_session_inflight_restored.Load(), 3u) << "7, 8 and 300 once";
  EXPECT_EQ(counters(0).cluster_session_inflight_requeued.Load(), 1u) << "the second 7";
  EXPECT_EQ(counters(0).cluster_session_inflight_dropped.Load(), 2u) << "the second 8 and 300";
  ASSERT_NO_FATAL_FAILURE(SettleDurable());
  ASSERT_EQ(client.recorded.size(), 2u);
  EXPECT_EQ(IdOf(client.recorded[0]), std::make_pair(uint16_t{7}, true));
  EXPECT_NE(IdOf(client.recorded[1]).first, 7);
  StopNode();
  const persist::RecoveredState recovered = Recover();
  ASSERT_EQ(recovered.sessions.count(id), 1u);
  const persist::StoredSession& stored = recovered.sessions.at(id);
  EXPECT_EQ(stored.deliveries.size(), 3u) << ::testing::PrintToString(Deliveries(stored));
  EXPECT_EQ(stored.inbound_qos2, std::vector<uint16_t>{300});
}

TEST_F(RouterClusterSessionPersistTest, AStateMergedAfterItsClientLeftIsLoggedAsAnOfflineSession) {
  MakeBucketReady(0);
  const std::string id = harness_->IdOn(0, "dev");
  Client& client = harness_->ConnectWithoutReading(harness::ConnectPacket(id, false));
  harness_->Settle();
  const Held held = ReadAndClaim(0, id);
  harness_->Drop(client);  // before its CONNACK: the session stays, offline, not yet durable
  EXPECT_EQ(counters(0).cluster_session_abandoned.Load(), 1u);
  Deliver(0, "$RINGMQ.session.node-b.0", cluster::kClaimBuckets / 2 + 1,
          InFlightState(id, held.key));
  EXPECT_EQ(counters(0).cluster_session_inflight_restored.Load(), 3u);
  ASSERT_NO_FATAL_FAILURE(Sync());
  // Durable from the merge on: a restart now finds it offline, with what was in flight.
  StopNode();
  const persist::RecoveredState recovered = Recover();
  ASSERT_EQ(recovered.sessions.count(id), 1u);
  const persist::StoredSession& stored = recovered.sessions.at(id);
  EXPECT_NE(stored.offline_since_wall_ms, 0u) << "offline since its client left";
  EXPECT_EQ(stored.subscriptions.count("q/#"), 1u);
  EXPECT_EQ(Deliveries(stored), (std::vector<std::string>{"a 7 q/a", "c 8 ", "q 0 q/c"}));
  EXPECT_EQ(stored.inbound_qos2, std::vector<uint16_t>{300});
}

}  // namespace
}  // namespace ringmq::shard
