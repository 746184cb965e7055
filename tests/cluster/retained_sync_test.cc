// cluster::RetainedSync over a sans-IO NatsLink fed with server bytes and a fake clock: the
// stream and consumer requests, stream-order application, gaps, heartbeats and flow control,
// PubAcks and resends (retained_sync.h; docs.nats.io JetStream wire API and consumers).
#include "cluster/retained_sync.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "cluster/mqtt5_headers.h"
#include "mqtt/properties.h"

namespace ringmq::cluster {
namespace {

struct Applied {
  std::string topic;
  std::string payload;
  uint8_t qos;
  uint64_t expires_at_unix_ms = 0;
  std::vector<uint8_t> properties = {};
  bool operator==(const Applied&) const = default;
};

class RetainedSyncTest : public ::testing::Test, public NatsLinkSink, public RetainedSyncSink {
 protected:
  void Make(bool consume, size_t pending_max = 1024) {
    NatsLinkOptions options;
    options.urls = {"nats://127.0.0.1:4222"};
    options.random_seed = 1;
    absl::StatusOr<std::unique_ptr<NatsLink>> link = NatsLink::Create(options, this);
    ASSERT_TRUE(link.ok());
    link_ = std::move(*link);
    sync_ = std::make_unique<RetainedSync>(*link_,
                                           RetainedSyncOptions{.prefix = "",
                                                               .node_name = "n1",
                                                               .shard = 0,
                                                               .consume = consume,
                                                               .idle_heartbeat_ms = 1000,
                                                               .request_timeout_ms = 5000,
                                                               .retry_ms = 1000,
                                                               .ack_timeout_ms = 5000,
                                                               .pending_max = pending_max,
                                                               .start_id = 7},
                                           this);
  }

  void Ready(uint64_t now) {
    link_->BeginConnect(now);
    link_->OnTransportConnected(now);
    link_->OnReceived(now, "INFO {\"server_id\":\"S\",\"headers\":true}\r\n");
    link_->OnReceived(now, "PONG\r\n");
    ASSERT_TRUE(link_->ready());
  }

  std::string Output() {
    std::string out;
    link_->TakeOutput(out);
    return out;
  }

  void Msg(uint64_t now, std::string_view subject, uint64_t sid, std::string_view reply,
           std::string_view payload) {
    now_ = now;
    link_->OnReceived(now, "MSG " + std::string(subject) + " " + std::to_string(sid) + " " +
                               std::string(reply) + (reply.empty() ? "" : " ") +
                               std::to_string(payload.size()) + "\r\n" + std::string(payload) +
                               "\r\n");
  }
  void Hmsg(uint64_t now, std::string_view subject, uint64_t sid, std::string_view reply,
            std::string_view headers, std::string_view payload) {
    now_ = now;
    link_->OnReceived(now, "HMSG " + std::string(subject) + " " + std::to_string(sid) + " " +
                               std::string(reply) + (reply.empty() ? "" : " ") +
                               std::to_string(headers.size()) + " " +
                               std::to_string(headers.size() + payload.size()) + "\r\n" +
                               std::string(headers) + std::string(payload) + "\r\n");
  }

  // The handshake and both requests answered: the consumer delivers on sid 2 (subject
  // $RINGMQ.retained.d.n1.0.1); the reply subscription is sid 1.
  void Consuming(uint64_t now) {
    Make(/*consume=*/true);
    Ready(now);
    sync_->OnTick(now);
    Output();
    Msg(now, "$RINGMQ.retained.r.n1.0.api.1", 1, "", R"({"type":"x","config":{}})");
    Output();
    Msg(now, "$RINGMQ.retained.r.n1.0.api.2", 1, "", R"({"type":"y","name":"C1"})");
    ASSERT_EQ(sync_->phase(), RetainedSyncPhase::kConsuming);
  }

  void Deliver(uint64_t now, std::string_view topic_subject, uint64_t stream_seq,
               uint64_t consumer_seq, std::string_view payload, std::string_view qos = "1",
               uint64_t sid = 2) {
    const std::string headers =
        "NATS/1.0\r\nRingmq-Node: n2\r\nRingmq-Qos: " + std::string(qos) + "\r\n\r\n";
    Hmsg(now, topic_subject, sid,
         "$JS.ACK.RINGMQ_RETAINED.C1.1." + std::to_string(stream_seq) + "." +
             std::to_string(consumer_seq) + ".1700000000000000000.0",
         headers, payload);
  }

  // NatsLinkSink
  void OnReady(const nats::ServerInfo&) override {}
  void OnMessage(const NatsMessage& message) override {
    handled_ = sync_->OnMessage(message, now_);
  }
  void OnDisconnected(DisconnectReason, std::string_view) override {}
  void OnServerError(std::string_view) override {}
  // RetainedSyncSink
  void ApplyRetained(std::string_view topic, std::string_view payload, uint8_t qos,
                     uint64_t expires_at_unix_ms, std::span<const uint8_t> properties) override {
    applied_.push_back({std::string(topic), std::string(payload), qos, expires_at_unix_ms,
                        std::vector<uint8_t>(properties.begin(), properties.end())});
  }

  std::unique_ptr<NatsLink> link_;
  std::unique_ptr<RetainedSync> sync_;
  std::vector<Applied> applied_;
  bool handled_ = false;
  uint64_t now_ = 0;
};

TEST_F(RetainedSyncTest, CreatesTheStreamThenAnOrderedConsumerFromTheLastPerSubject) {
  Make(/*consume=*/true);
  sync_->OnTick(0);  // not ready: the reply subscription only
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kIdle);
  Ready(0);
  EXPECT_NE(Output().find("SUB $RINGMQ.retained.r.n1.0.> 1\r\n"), std::string::npos);
  sync_->OnTick(1);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kStreamRequested);
  const std::string stream = Output();
  EXPECT_NE(stream.find("PUB $JS.API.STREAM.CREATE.RINGMQ_RETAINED "
                        "$RINGMQ.retained.r.n1.0.api.1 "),
            std::string::npos)
      << stream;
  EXPECT_NE(stream.find(R"("subjects":["$RINGMQ.retained.t.>"])"), std::string::npos);
  EXPECT_NE(stream.find(R"("max_msgs_per_subject":1)"), std::string::npos);
  EXPECT_NE(stream.find(R"("num_replicas":1)"), std::string::npos);  // one server known
  // JetStream 10058: the stream exists with other settings; it is used.
  Msg(2, "$RINGMQ.retained.r.n1.0.api.1", 1, "",
      R"({"error":{"code":400,"err_code":10058,"description":"in use"}})");
  EXPECT_TRUE(handled_);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsumerRequested);
  const std::string consumer = Output();
  EXPECT_NE(consumer.find("SUB $RINGMQ.retained.d.n1.0.1 2\r\n"), std::string::npos) << consumer;
  EXPECT_NE(consumer.find("PUB $JS.API.CONSUMER.CREATE.RINGMQ_RETAINED "
                          "$RINGMQ.retained.r.n1.0.api.2 "),
            std::string::npos);
  EXPECT_NE(consumer.find(R"("deliver_policy":"last_per_subject")"), std::string::npos);
  EXPECT_NE(consumer.find(R"("filter_subject":"$RINGMQ.retained.t.>")"), std::string::npos);
  Msg(3, "$RINGMQ.retained.r.n1.0.api.2", 1, "", R"({"name":"C1"})");
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsuming);
  EXPECT_EQ(sync_->counters().consumer_starts, 1u);
}

TEST_F(RetainedSyncTest, AppliesStreamMessagesInOrderAndSkipsWhatIsNoTopic) {
  Consuming(0);
  Deliver(1, "$RINGMQ.retained.t.a.b", 5, 1, "v1");
  Deliver(2, "$RINGMQ.retained.t.a.b", 9, 2, "", "2");  // the delete marker: empty payload
  Hmsg(3, "$RINGMQ.retained.t.x", 2, "$JS.ACK.RINGMQ_RETAINED.C1.1.10.3.1.0", "NATS/1.0\r\n\r\n",
       "from a NATS app");                              // no Ringmq-Qos: QoS 0
  Deliver(4, "$RINGMQ.retained.t.a..b", 11, 4, "bad");  // an empty token: no topic
  EXPECT_EQ(applied_,
            (std::vector<Applied>{{"a/b", "v1", 1}, {"a/b", "", 2}, {"x", "from a NATS app", 0}}));
  EXPECT_EQ(sync_->last_stream_sequence(), 11u);
  EXPECT_EQ(sync_->counters().updates_in, 3u);
  EXPECT_EQ(sync_->counters().unmappable, 1u);
}

TEST_F(RetainedSyncTest, AConsumerSequenceGapRecreatesTheConsumerAfterTheLastApplied) {
  Consuming(0);
  Output();
  Deliver(1, "$RINGMQ.retained.t.a", 5, 1, "v1");
  Deliver(2, "$RINGMQ.retained.t.b", 8, 3, "lost one before");  // consumer seq 2 missing
  EXPECT_EQ(applied_.size(), 1u);
  EXPECT_EQ(sync_->counters().gaps, 1u);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsumerRequested);
  const std::string out = Output();
  EXPECT_NE(out.find("UNSUB 2\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("SUB $RINGMQ.retained.d.n1.0.2 3\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("deliver_policy":"by_start_sequence","opt_start_seq":6)"),
            std::string::npos)
      << out;
  // A late delivery of the old consumer is not applied (its subscription is gone).
  Deliver(3, "$RINGMQ.retained.t.c", 9, 2, "old", "1", /*sid=*/2);
  EXPECT_EQ(applied_.size(), 1u);
  Msg(4, "$RINGMQ.retained.r.n1.0.api.3", 1, "", R"({"name":"C2"})");
  Deliver(5, "$RINGMQ.retained.t.b", 8, 1, "again", "1", /*sid=*/3);
  Deliver(6, "$RINGMQ.retained.t.b", 8, 2, "same seq", "1", /*sid=*/3);
  EXPECT_EQ(applied_.back(), (Applied{"b", "again", 1}));
  EXPECT_EQ(sync_->counters().duplicates, 1u);
}

TEST_F(RetainedSyncTest, HeartbeatSilenceAndAHeartbeatGapRecreateTheConsumer) {
  Consuming(0);
  Output();
  sync_->OnTick(2999);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsuming);
  Hmsg(2999, "$RINGMQ.retained.d.n1.0.1", 2, "",
       "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 0\r\nNats-Last-Stream: 0\r\n\r\n", "");
  sync_->OnTick(5998);  // 3 heartbeats from the last one: not yet
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsuming);
  sync_->OnTick(5999);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsumerRequested);
  EXPECT_EQ(sync_->counters().gaps, 1u);
  Msg(6000, "$RINGMQ.retained.r.n1.0.api.3", 1, "", R"({"name":"C2"})");
  // A heartbeat that names a later consumer sequence than delivered: messages were lost.
  Hmsg(6001, "$RINGMQ.retained.d.n1.0.2", 3, "",
       "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 4\r\n\r\n", "");
  EXPECT_EQ(sync_->counters().gaps, 2u);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsumerRequested);
}

TEST_F(RetainedSyncTest, FlowControlAndStalledHeartbeatsAreAnswered) {
  Consuming(0);
  Output();
  Hmsg(1, "$RINGMQ.retained.d.n1.0.1", 2, "$JS.FC.RINGMQ_RETAINED.x.1",
       "NATS/1.0 100 FlowControl Request\r\n\r\n", "");
  Hmsg(2, "$RINGMQ.retained.d.n1.0.1", 2, "",
       "NATS/1.0 100 Idle Heartbeat\r\nNats-Consumer-Stalled: $JS.FC.RINGMQ_RETAINED.x.2\r\n"
       "Nats-Last-Consumer: 0\r\n\r\n",
       "");
  EXPECT_EQ(Output(),
            "PUB $JS.FC.RINGMQ_RETAINED.x.1 0\r\n\r\nPUB $JS.FC.RINGMQ_RETAINED.x.2 0\r\n\r\n");
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kConsuming);
}

TEST_F(RetainedSyncTest, FailedRequestsBackOffAndStartOver) {
  Make(/*consume=*/true);
  Ready(0);
  sync_->OnTick(0);
  Output();
  // No responders (JetStream off or not ready): a 503 status.
  Hmsg(1, "$RINGMQ.retained.r.n1.0.api.1", 1, "", "NATS/1.0 503\r\n\r\n", "");
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kBackoff);
  EXPECT_EQ(sync_->counters().stream_errors, 1u);
  sync_->OnTick(1000);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kBackoff);
  sync_->OnTick(1001);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kStreamRequested);
  EXPECT_NE(Output().find("api.2"), std::string::npos);
  // The reply to a request given up on is ignored; no reply in time is a failure.
  Msg(1002, "$RINGMQ.retained.r.n1.0.api.1", 1, "", R"({})");
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kStreamRequested);
  sync_->OnTick(6001);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kBackoff);
  EXPECT_EQ(sync_->counters().stream_errors, 2u);
  // Another JetStream error.
  sync_->OnTick(7001);
  Msg(7002, "$RINGMQ.retained.r.n1.0.api.3", 1, "",
      R"({"error":{"code":500,"err_code":10023,"description":"insufficient resources"}})");
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kBackoff);
  EXPECT_EQ(sync_->counters().stream_errors, 3u);
}

TEST_F(RetainedSyncTest, ANewConnectionStartsOverFromTheLastAppliedSequence) {
  Consuming(0);
  Deliver(1, "$RINGMQ.retained.t.a", 5, 1, "v1");
  link_->OnTransportClosed(2, "gone");
  sync_->OnTick(3);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kIdle);
  Ready(200);
  Output();
  sync_->OnTick(200);
  EXPECT_EQ(sync_->phase(), RetainedSyncPhase::kStreamRequested);
  Msg(201, "$RINGMQ.retained.r.n1.0.api.3", 1, "", R"({})");
  EXPECT_NE(Output().find(R"("opt_start_seq":6)"), std::string::npos);
}

TEST_F(RetainedSyncTest, UpdatesCarryHeadersAndStayPendingUntilTheirPubAck) {
  Make(/*consume=*/false);
  // Before the link is ready: held, sent after the handshake.
  EXPECT_EQ(sync_->Publish("a/b", "v1", 1), PublishResult::kHeld);
  Ready(0);
  std::string out = Output();
  out.erase(0, out.find("SUB "));  // after CONNECT and PING
  const std::string headers =
      "NATS/1.0\r\nRingmq-Node: n1\r\nRingmq-Qos: 1\r\nNats-Msg-Id: n1.0.7.1\r\n\r\n";
  EXPECT_EQ(out,
            "SUB $RINGMQ.retained.r.n1.0.> 1\r\nHPUB $RINGMQ.retained.t.a.b "
            "$RINGMQ.retained.r.n1.0.ack.1 " +
                std::to_string(headers.size()) + " " + std::to_string(headers.size() + 2) + "\r\n" +
                headers + "v1\r\n");
  EXPECT_EQ(sync_->pending_count(), 1u);
  sync_->OnTick(1);  // the PubAck is due from now
  sync_->OnTick(5000);
  EXPECT_EQ(Output(), "");
  sync_->OnTick(5001);  // no PubAck in time: sent again, same Nats-Msg-Id
  EXPECT_NE(Output().find("Nats-Msg-Id: n1.0.7.1\r\n"), std::string::npos);
  EXPECT_EQ(sync_->counters().resent, 1u);
  Msg(5002, "$RINGMQ.retained.r.n1.0.ack.1", 1, "", R"({"stream":"RINGMQ_RETAINED","seq":3})");
  EXPECT_EQ(sync_->pending_count(), 0u);
  EXPECT_EQ(sync_->counters().acks, 1u);
  sync_->OnTick(20000);
  EXPECT_EQ(Output(), "");
}

TEST_F(RetainedSyncTest, AFailedUpdateIsResentUnlessANewerOneOfItsTopicFollowed) {
  Make(/*consume=*/false);
  Ready(0);
  sync_->OnTick(0);
  ASSERT_EQ(sync_->Publish("t", "old", 0), PublishResult::kQueued);
  ASSERT_EQ(sync_->Publish("u", "other", 0), PublishResult::kQueued);
  ASSERT_EQ(sync_->Publish("t", "new", 0), PublishResult::kQueued);
  EXPECT_EQ(sync_->pending_count(), 2u);  // "old" is superseded
  Output();
  // 503: the stream's leader is being elected. Update 1 ("old") is not resent; 3 is.
  Hmsg(1, "$RINGMQ.retained.r.n1.0.ack.1", 1, "", "NATS/1.0 503\r\n\r\n", "");
  Hmsg(1, "$RINGMQ.retained.r.n1.0.ack.3", 1, "", "NATS/1.0 503\r\n\r\n", "");
  EXPECT_EQ(sync_->counters().stream_errors, 2u);
  sync_->OnTick(1001);
  const std::string out = Output();
  EXPECT_NE(out.find("ack.3"), std::string::npos) << out;
  EXPECT_EQ(out.find("ack.1"), std::string::npos) << out;
  EXPECT_EQ(out.find("ack.2"), std::string::npos) << out;  // not due yet
  Msg(1002, "$RINGMQ.retained.r.n1.0.ack.3", 1, "", R"({"error":{"code":503}})");
  EXPECT_EQ(sync_->counters().stream_errors, 3u);
  EXPECT_EQ(sync_->pending_count(), 2u);
  // The second error of update 3: the wait doubles (2 s).
  sync_->OnTick(3001);
  EXPECT_EQ(Output().find("ack.3"), std::string::npos);
  sync_->OnTick(3002);
  EXPECT_NE(Output().find("ack.3"), std::string::npos);
  EXPECT_EQ(sync_->counters().resent, 2u);
}

TEST(RetainedSyncNamesTest, TheSubjectPrefixNamesTheStreamAndItsSubjects) {
  NatsLinkOptions options;
  options.urls = {"nats://127.0.0.1:4222"};
  struct NullSink : NatsLinkSink, RetainedSyncSink {
    void OnReady(const nats::ServerInfo&) override {}
    void OnMessage(const NatsMessage&) override {}
    void OnDisconnected(DisconnectReason, std::string_view) override {}
    void OnServerError(std::string_view) override {}
    void ApplyRetained(std::string_view, std::string_view, uint8_t, uint64_t,
                       std::span<const uint8_t>) override {}
  } sink;
  absl::StatusOr<std::unique_ptr<NatsLink>> link = NatsLink::Create(options, &sink);
  ASSERT_TRUE(link.ok());
  RetainedSync sync(**link, {.prefix = "site.1$x", .node_name = "n"}, &sink);
  EXPECT_EQ(sync.stream_name(), "RINGMQ_RETAINED_site_1_x");
  EXPECT_EQ(sync.stream_subjects(), "$RINGMQ.site.1$x.retained.t.>");
  EXPECT_EQ(sync.replicas(), 1u);
  EXPECT_EQ(sync.Publish("a/b", "v", 0), PublishResult::kHeld);
  std::string out;
  (*link)->BeginConnect(0);
  (*link)->OnTransportConnected(0);
  (*link)->OnReceived(0, "INFO {\"server_id\":\"S\",\"headers\":true}\r\nPONG\r\n");
  (*link)->TakeOutput(out);
  EXPECT_NE(out.find("HPUB $RINGMQ.site.1$x.retained.t.a.b $RINGMQ.site.1$x.retained.r.n.0.ack.1 "),
            std::string::npos)
      << out;
}

TEST_F(RetainedSyncTest, AMessageExpiryCrossesAsItsWallClockEnd) {
  // 5.0:3.3.2.3.3: the Message Expiry Interval's end travels in Ringmq-Expires-At.
  Make(/*consume=*/false);
  Ready(0);
  ASSERT_EQ(sync_->Publish("e", "v", 1, 1'800'000'000'123), PublishResult::kQueued);
  EXPECT_NE(Output().find("Ringmq-Expires-At: 1800000000123\r\n"), std::string::npos);
  Consuming(0);
  Hmsg(1, "$RINGMQ.retained.t.e", 2, "$JS.ACK.RINGMQ_RETAINED.C1.1.5.1.0.0",
       "NATS/1.0\r\nRingmq-Qos: 1\r\nRingmq-Expires-At: 1800000000123\r\n\r\n", "v");
  Hmsg(2, "$RINGMQ.retained.t.f", 2, "$JS.ACK.RINGMQ_RETAINED.C1.1.6.2.0.0",
       "NATS/1.0\r\nRingmq-Expires-At: soon\r\n\r\n", "w");  // malformed: none
  EXPECT_EQ(applied_, (std::vector<Applied>{{"e", "v", 1, 1'800'000'000'123}, {"f", "w", 0, 0}}));
}

TEST_F(RetainedSyncTest, PendingUpdatesAreBoundedAndUncarriedTopicsStayLocal) {
  Make(/*consume=*/false, /*pending_max=*/2);
  Ready(0);
  EXPECT_EQ(sync_->Publish("a", "1", 0), PublishResult::kQueued);
  EXPECT_EQ(sync_->Publish("b", "2", 0), PublishResult::kQueued);
  EXPECT_EQ(sync_->Publish("c", "3", 0), PublishResult::kQueued);  // sent, not kept
  EXPECT_EQ(sync_->pending_count(), 2u);
  EXPECT_EQ(sync_->counters().untracked, 1u);
  EXPECT_EQ(sync_->counters().updates_out, 3u);
  EXPECT_EQ(sync_->Publish("a b", "x", 0), PublishResult::kInvalid);  // whitespace
  EXPECT_EQ(sync_->counters().uncarried, 1u);
}

// retained5 lane: MQTT 5.0 properties of retained messages in the stream.

// Property block builders (5.0:2.2.2.2): an id, then a byte, a four-byte integer, or two-byte
// length-prefixed bytes.
void AddByte(std::vector<uint8_t>& block, mqtt::PropertyId id, uint8_t value) {
  block.push_back(static_cast<uint8_t>(id));
  block.push_back(value);
}
void AddU32(std::vector<uint8_t>& block, mqtt::PropertyId id, uint32_t value) {
  block.push_back(static_cast<uint8_t>(id));
  for (int shift = 24; shift >= 0; shift -= 8)
    block.push_back(static_cast<uint8_t>(value >> shift));
}
void AddBytes(std::vector<uint8_t>& block, std::string_view bytes) {
  block.push_back(static_cast<uint8_t>(bytes.size() >> 8));
  block.push_back(static_cast<uint8_t>(bytes.size()));
  block.insert(block.end(), bytes.begin(), bytes.end());
}
void AddString(std::vector<uint8_t>& block, mqtt::PropertyId id, std::string_view bytes) {
  block.push_back(static_cast<uint8_t>(id));
  AddBytes(block, bytes);
}
void AddUser(std::vector<uint8_t>& block, std::string_view name, std::string_view value) {
  block.push_back(static_cast<uint8_t>(mqtt::PropertyId::kUserProperty));
  AddBytes(block, name);
  AddBytes(block, value);
}

// The header block of the first HPUB in `out`.
std::string FirstHeaderBlock(const std::string& out) {
  const size_t start = out.find("HPUB ");
  if (start == std::string::npos) return "";
  const size_t line_end = out.find("\r\n", start);
  const std::string line = out.substr(start, line_end - start);
  const size_t last_space = line.rfind(' ');
  const size_t header_space = line.rfind(' ', last_space - 1);
  const size_t header_size = std::stoul(line.substr(header_space + 1, last_space - header_space));
  return out.substr(line_end + 2, header_size);
}

TEST_F(RetainedSyncTest, Mqtt5PropertiesCrossTheStreamAsTheLiveFieldsAndComeBackExactly) {
  // MQTT-3.3.2-4 (Payload Format Indicator), -15 (Response Topic), -16 (Correlation Data),
  // -17/-18 (User Properties, in order), -20 (Content Type): sent unaltered by the node that
  // serves the retained message from the stream.
  std::vector<uint8_t> published;
  AddByte(published, mqtt::PropertyId::kPayloadFormatIndicator, 1);
  AddU32(published, mqtt::PropertyId::kMessageExpiryInterval, 60);  // Ringmq-Expires-At's
  AddString(published, mqtt::PropertyId::kContentType, "text/plain");
  AddString(published, mqtt::PropertyId::kResponseTopic, "reply/to");
  AddString(published, mqtt::PropertyId::kCorrelationData, std::string("\x00\xff\x01", 3));
  AddUser(published, "b", "2");
  AddUser(published, "a", "line\r\nbreak");  // not plain: base64, still second
  AddUser(published, "b", "1");              // a repeated name keeps its place
  ASSERT_EQ(mqtt::ValidateProperties(published, mqtt::PacketBit(mqtt::PacketType::kPublish)),
            mqtt::Violation::kNone);
  Make(/*consume=*/false);
  Ready(0);
  Output();
  ASSERT_EQ(sync_->Publish("p/q", "v", 1, 1'800'000'000'123, published), PublishResult::kQueued);
  const std::string headers = FirstHeaderBlock(Output());
  // One encoding: the update's own fields, then exactly what a live message carries
  // (mqtt5_headers.h) but its Message Expiry field.
  std::vector<nats::HeaderField> live;
  std::string text;
  ASSERT_EQ(AppendMqtt5Headers(published, std::nullopt, nats::kHeaderFieldsMax, live, text),
            Mqtt5EncodeResult::kWritten);
  std::string expected =
      "NATS/1.0\r\nRingmq-Node: n1\r\nRingmq-Qos: 1\r\nNats-Msg-Id: n1.0.7.1\r\n"
      "Ringmq-Expires-At: 1800000000123\r\n";
  for (const auto& [name, value] : live)
    expected += std::string(name) + ": " + std::string(value) + "\r\n";
  expected += "\r\n";
  EXPECT_EQ(headers, expected);
  EXPECT_EQ(headers.find(kMessageExpiryHeader), std::string::npos);
  EXPECT_NE(headers.find("Ringmq-Content-Type: text/plain\r\n"), std::string::npos);
  EXPECT_NE(headers.find("b: 2\r\n"), std::string::npos);
  // A resend carries them too.
  sync_->OnTick(5001);
  EXPECT_EQ(FirstHeaderBlock(Output()), expected);

  // The stream gives the same header block back to every node's consumer.
  Consuming(0);
  Hmsg(1, "$RINGMQ.retained.t.p.q", 2, "$JS.ACK.RINGMQ_RETAINED.C1.1.5.1.0.0", headers, "v");
  std::vector<uint8_t> restored;
  AddByte(restored, mqtt::PropertyId::kPayloadFormatIndicator, 1);
  AddString(restored, mqtt::PropertyId::kContentType, "text/plain");
  AddString(restored, mqtt::PropertyId::kResponseTopic, "reply/to");
  AddString(restored, mqtt::PropertyId::kCorrelationData, std::string("\x00\xff\x01", 3));
  AddUser(restored, "b", "2");
  AddUser(restored, "a", "line\r\nbreak");
  AddUser(restored, "b", "1");
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(applied_[0], (Applied{"p/q", "v", 1, 1'800'000'000'123, restored}));
  EXPECT_EQ(sync_->counters().properties_dropped, 0u);
}

TEST_F(RetainedSyncTest, AnUpdateWithoutPropertiesHasNoPropertyFieldsAndAppliesNone) {
  Make(/*consume=*/false);
  Ready(0);
  Output();
  ASSERT_EQ(sync_->Publish("p", "v", 0), PublishResult::kQueued);
  EXPECT_EQ(FirstHeaderBlock(Output()),
            "NATS/1.0\r\nRingmq-Node: n1\r\nRingmq-Qos: 0\r\nNats-Msg-Id: n1.0.7.1\r\n\r\n");
  Consuming(0);
  Deliver(1, "$RINGMQ.retained.t.p", 5, 1, "v");  // Ringmq-Node, Ringmq-Qos: no property
  EXPECT_EQ(applied_, (std::vector<Applied>{{"p", "v", 1, 0, {}}}));
}

TEST_F(RetainedSyncTest, MalformedPropertyFieldsAreLeftOutAndCountedTheUpdateApplied) {
  // The update is the topic's latest word in the stream: it is applied with the properties
  // that are valid; each field that gives none is counted (retained_sync.h).
  Consuming(0);
  Hmsg(1, "$RINGMQ.retained.t.m", 2, "$JS.ACK.RINGMQ_RETAINED.C1.1.5.1.0.0",
       "NATS/1.0\r\nRingmq-Qos: 1\r\n"
       "Ringmq-Payload-Format: 1\r\n"
       "Ringmq-Payload-Format: 0\r\n"           // a second one: dropped
       "Ringmq-Content-Type-B64: !!notb64\r\n"  // bad base64: dropped
       "Ringmq-Response-Topic: a/#\r\n"         // wildcard, MQTT-3.3.2-14: dropped
       "Ringmq-User-Property: nocomma\r\n"      // dropped
       "Ringmq-Message-Expiry-Ms: 5\r\n"        // not the stream's expiry: ignored
       "k: v\r\n\r\n",
       "x");
  std::vector<uint8_t> kept;
  AddByte(kept, mqtt::PropertyId::kPayloadFormatIndicator, 1);
  AddUser(kept, "k", "v");
  EXPECT_EQ(applied_, (std::vector<Applied>{{"m", "x", 1, 0, kept}}));
  EXPECT_EQ(sync_->counters().properties_dropped, 4u);
  // A header block that does not parse: applied as a NATS application's plain update (QoS 0,
  // no expiry, no property), counted once.
  Hmsg(2, "$RINGMQ.retained.t.n", 2, "$JS.ACK.RINGMQ_RETAINED.C1.1.6.2.0.0",
       "NATS/1.0\r\nRingmq-Qos: 1\r\nno colon here\r\n\r\n", "y");
  ASSERT_EQ(applied_.size(), 2u);
  EXPECT_EQ(applied_[1], (Applied{"n", "y", 0, 0, {}}));
  EXPECT_EQ(sync_->counters().properties_dropped, 5u);
  EXPECT_EQ(sync_->counters().updates_in, 2u);
}

TEST_F(RetainedSyncTest, PropertiesOverTheHeaderFieldBoundAreNotPublished) {
  // kPropertyFieldsMax fields fit with the update's own four; one more is refused whole
  // (counted), as a live message is not forwarded then: the retained message stays local.
  Make(/*consume=*/false);
  Ready(0);
  Output();
  std::vector<uint8_t> fits;
  for (size_t i = 0; i < RetainedSync::kPropertyFieldsMax; ++i) AddUser(fits, "k", "v");
  EXPECT_EQ(sync_->Publish("a", "v", 1, 1'800'000'000'123, fits), PublishResult::kQueued);
  EXPECT_NE(Output().find("HPUB "), std::string::npos);
  std::vector<uint8_t> over = fits;
  AddUser(over, "k", "v");
  EXPECT_EQ(sync_->Publish("b", "v", 1, 0, over), PublishResult::kInvalid);
  EXPECT_EQ(Output(), "");
  EXPECT_EQ(sync_->counters().properties_too_many, 1u);
  EXPECT_EQ(sync_->counters().updates_out, 1u);
  EXPECT_EQ(sync_->pending_count(), 1u);
}

}  // namespace
}  // namespace ringmq::cluster
