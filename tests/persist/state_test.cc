// Unit tests for the durable state (src/persist/state.h): every record type's effect, every
// inconsistency Apply refuses (leaving the state unchanged), queue order, message sharing, and
// MoveInto (sessions by client id, retained versions across shards).
#include "persist/state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringmq::persist {
namespace {

using Stage = StoredDelivery::Stage;

constexpr uint64_t kSid = 0x0000'0001'0000'0001;
constexpr uint64_t kSid2 = 0x0000'0002'0000'0001;

Record Session(uint64_t sid, std::string_view client_id, uint32_t expiry_s = 3600,
               uint8_t level = 4) {
  Record record;
  record.type = RecordType::kSession;
  record.sid = sid;
  record.expiry_s = expiry_s;
  record.level = level;
  record.text = client_id;
  return record;
}

Record SidOnly(RecordType type, uint64_t sid) {
  Record record;
  record.type = type;
  record.sid = sid;
  return record;
}

Record Offline(uint64_t sid, uint64_t wall_ms) {
  Record record = SidOnly(RecordType::kSessionOffline, sid);
  record.count = wall_ms;
  return record;
}

Record Subscribe(uint64_t sid, std::string_view filter, uint8_t options, uint32_t identifier = 0) {
  Record record = SidOnly(RecordType::kSubscribe, sid);
  record.options = options;
  record.identifier = identifier;
  record.text = filter;
  return record;
}

Record Unsubscribe(uint64_t sid, std::string_view filter) {
  Record record = SidOnly(RecordType::kUnsubscribe, sid);
  record.text = filter;
  return record;
}

// The payload bytes outlive the records that point at them.
const std::vector<uint8_t> kStatePayload = {'h', 'e', 'l', 'l', 'o'};
const std::vector<uint8_t> kStateProperties = {0x01, 0x01};  // Payload Format Indicator 1
const std::vector<uint8_t> kStateEmpty;

Record Message(uint64_t mid, uint8_t qos = 2, std::string_view topic = "a/b", uint8_t flags = 0) {
  Record record;
  record.type = RecordType::kMessage;
  record.mid = mid;
  record.qos = qos;
  record.flags = flags;
  record.expiry_wall_ms = 1'900'000'000'000;
  record.text = topic;
  record.properties = kStateProperties;
  record.payload = kStatePayload;
  return record;
}

Record Enqueue(uint64_t sid, uint64_t mid, uint8_t qos, uint8_t flags = 0) {
  Record record = SidOnly(RecordType::kEnqueue, sid);
  record.mid = mid;
  record.qos = qos;
  record.flags = flags;
  return record;
}

Record Sent(uint64_t sid, uint64_t mid, uint16_t packet_id) {
  Record record = SidOnly(RecordType::kSent, sid);
  record.mid = mid;
  record.packet_id = packet_id;
  return record;
}

Record PacketId(RecordType type, uint64_t sid, uint16_t packet_id) {
  Record record = SidOnly(type, sid);
  record.packet_id = packet_id;
  return record;
}

Record Discard(uint64_t sid, uint64_t mid) {
  Record record = SidOnly(RecordType::kDiscard, sid);
  record.mid = mid;
  return record;
}

Record Retain(uint64_t version, std::string_view topic, const std::vector<uint8_t>& payload,
              uint8_t qos = 1) {
  Record record;
  record.type = RecordType::kRetain;
  record.count = version;
  record.qos = qos;
  record.text = topic;
  record.properties = kStateProperties;
  record.payload = payload;
  return record;
}

class DurableStateTest : public ::testing::Test {
 protected:
  void MustApply(const Record& record) { ASSERT_TRUE(state_.Apply(record)) << state_.error(); }

  // Apply must refuse `record` with an error containing `why` and leave the state as it was.
  void MustRefuse(const Record& record, std::string_view why) {
    const std::string before = Describe();
    EXPECT_FALSE(state_.Apply(record));
    EXPECT_NE(state_.error().find(why), std::string::npos) << state_.error();
    EXPECT_EQ(Describe(), before);
  }

  const StoredSession& session(uint64_t sid = kSid) { return state_.sessions().at(sid); }

  // A textual image of the whole state, to check that a refused record changed nothing.
  std::string Describe() const {
    std::string out;
    std::vector<uint64_t> sids;
    for (const auto& [sid, unused] : state_.sessions()) sids.push_back(sid);
    std::sort(sids.begin(), sids.end());
    for (uint64_t sid : sids) {
      const StoredSession& s = state_.sessions().at(sid);
      out += "session " + std::to_string(sid) + " " + s.client_id + " " +
             std::to_string(s.expiry_s) + " " + std::to_string(s.level) + " " +
             std::to_string(s.offline_since_wall_ms) + "\n";
      for (const auto& [filter, sub] : s.subscriptions) {
        out += " sub " + filter + " " + std::to_string(sub.options) + " " +
               std::to_string(sub.identifier) + "\n";
      }
      for (const StoredDelivery& d : s.deliveries) {
        out += " delivery " + std::to_string(d.mid) + " " + std::to_string(d.qos) + " " +
               std::to_string(d.packet_id) + " " + std::to_string(static_cast<int>(d.stage)) +
               (d.message ? " m" : " -") + "\n";
      }
      for (uint16_t id : s.inbound_qos2) out += " inbound " + std::to_string(id) + "\n";
    }
    for (const auto& [topic, r] : state_.retained()) {
      out += "retained " + topic + " " + std::to_string(r.version) + " " +
             std::to_string(r.message.payload.size()) + "\n";
    }
    out += "messages " + std::to_string(state_.message_count()) + "\n";
    return out;
  }

  DurableState state_;
};

TEST_F(DurableStateTest, SnapshotMarkersChangeNothing) {
  MustApply(SidOnly(RecordType::kSnapshotBegin, 0));
  Record end = SidOnly(RecordType::kSnapshotEnd, 0);
  end.count = 0;
  MustApply(end);
  EXPECT_TRUE(state_.sessions().empty());
  EXPECT_EQ(state_.message_count(), 0u);
}

TEST_F(DurableStateTest, SessionIsCreatedWithItsFields) {
  MustApply(Session(kSid, "client-1", 120, 5));
  const StoredSession& s = session();
  EXPECT_EQ(s.client_id, "client-1");
  EXPECT_EQ(s.expiry_s, 120u);
  EXPECT_EQ(s.level, 5);
  EXPECT_EQ(s.offline_since_wall_ms, 0u);
  EXPECT_TRUE(s.subscriptions.empty());
  EXPECT_TRUE(s.deliveries.empty());
}

TEST_F(DurableStateTest, SessionAgainUpdatesExpiryAndLevelAndKeepsTheRest) {
  MustApply(Session(kSid, "client-1", 120, 4));
  MustApply(Subscribe(kSid, "a/#", 1));
  MustApply(Message(7));
  MustApply(Enqueue(kSid, 7, 1));
  MustApply(PacketId(RecordType::kInboundQos2, kSid, 9));
  MustApply(Offline(kSid, 1'700'000'000'000));
  MustApply(Session(kSid, "client-1", 600, 5));
  const StoredSession& s = session();
  EXPECT_EQ(s.expiry_s, 600u);
  EXPECT_EQ(s.level, 5);
  EXPECT_EQ(s.offline_since_wall_ms, 0u);  // resumed: online again
  EXPECT_EQ(s.subscriptions.size(), 1u);
  EXPECT_EQ(s.deliveries.size(), 1u);
  EXPECT_EQ(s.inbound_qos2, std::vector<uint16_t>{9});
}

TEST_F(DurableStateTest, SessionAgainWithAnotherClientIdIsRefused) {
  MustApply(Session(kSid, "client-1"));
  MustRefuse(Session(kSid, "client-2"), "client-2");
}

TEST_F(DurableStateTest, SessionWithEmptyClientIdIsRefused) {
  MustRefuse(Session(kSid, ""), "empty client id");
}

// bridgeq2 lane: kSessionFlagBridge marks a bridge's local session; its last kSession says.
TEST_F(DurableStateTest, SessionBridgeFlagFollowsTheLastSessionRecordAndUnknownFlagsAreRefused) {
  Record bridge = Session(kSid, "local.edge", 0xFFFFFFFF, 5);
  bridge.flags = kSessionFlagBridge;
  MustApply(bridge);
  EXPECT_TRUE(session().bridge);
  MustApply(Session(kSid, "local.edge", 0xFFFFFFFF, 5));  // a client took the id over
  EXPECT_FALSE(session().bridge);
  Record unknown = Session(kSid2, "c2");
  unknown.flags = 0x02;
  MustRefuse(unknown, "unknown flags");
}

TEST_F(DurableStateTest, SessionOfflineSetsOfflineSince) {
  MustApply(Session(kSid, "c"));
  MustApply(Offline(kSid, 1'700'000'000'123));
  EXPECT_EQ(session().offline_since_wall_ms, 1'700'000'000'123u);
}

TEST_F(DurableStateTest, SessionEndForgetsTheSessionAndItsMessages) {
  MustApply(Session(kSid, "c"));
  MustApply(Session(kSid2, "d"));
  MustApply(Message(1));
  MustApply(Message(2));
  MustApply(Enqueue(kSid, 1, 1));
  MustApply(Enqueue(kSid, 2, 2));
  MustApply(Enqueue(kSid2, 2, 2));
  MustApply(SidOnly(RecordType::kSessionEnd, kSid));
  EXPECT_EQ(state_.sessions().count(kSid), 0u);
  EXPECT_EQ(state_.message_count(), 1u);  // message 2 is still named by kSid2's delivery
  EXPECT_EQ(state_.delivery_count(), 1u);
  MustRefuse(Enqueue(kSid, 2, 2), "unknown session");
}

TEST_F(DurableStateTest, UnknownSessionIsRefusedByEveryRecordNamingOne) {
  MustApply(Message(1));
  MustRefuse(SidOnly(RecordType::kSessionEnd, kSid), "unknown session");
  MustRefuse(Offline(kSid, 5), "unknown session");
  MustRefuse(Subscribe(kSid, "a", 1), "unknown session");
  MustRefuse(Unsubscribe(kSid, "a"), "unknown session");
  MustRefuse(Enqueue(kSid, 1, 1), "unknown session");
  MustRefuse(Sent(kSid, 1, 1), "unknown session");
  MustRefuse(PacketId(RecordType::kPuback, kSid, 1), "unknown session");
  MustRefuse(PacketId(RecordType::kPubrec, kSid, 1), "unknown session");
  MustRefuse(PacketId(RecordType::kPubcomp, kSid, 1), "unknown session");
  MustRefuse(Discard(kSid, 1), "unknown session");
  MustRefuse(PacketId(RecordType::kInboundQos2, kSid, 1), "unknown session");
  MustRefuse(PacketId(RecordType::kInboundRelease, kSid, 1), "unknown session");
}

TEST_F(DurableStateTest, SubscribeAddsAndReplacesUnsubscribeRemoves) {
  MustApply(Session(kSid, "c"));
  MustApply(Subscribe(kSid, "a/+", 0x01 | 0x04, 17));
  MustApply(Subscribe(kSid, "b/#", 0x02 | 0x08));
  EXPECT_EQ(session().subscriptions.at("a/+").options, 0x05);
  EXPECT_EQ(session().subscriptions.at("a/+").identifier, 17u);
  // MQTT-3.8.4-3: the same filter again replaces the subscription.
  MustApply(Subscribe(kSid, "a/+", 0x02, 0));
  EXPECT_EQ(session().subscriptions.at("a/+").options, 0x02);
  EXPECT_EQ(session().subscriptions.at("a/+").identifier, 0u);
  MustApply(Unsubscribe(kSid, "b/#"));
  EXPECT_EQ(session().subscriptions.size(), 1u);
  MustRefuse(Unsubscribe(kSid, "b/#"), "no subscription");
}

TEST_F(DurableStateTest, SubscribeWithQos3ReservedBitsOrEmptyFilterIsRefused) {
  MustApply(Session(kSid, "c"));
  MustRefuse(Subscribe(kSid, "a", 0x03), "QoS 3");
  MustRefuse(Subscribe(kSid, "a", 0x11), "reserved option bits");
  MustRefuse(Subscribe(kSid, "", 0x01), "empty filter");
}

TEST_F(DurableStateTest, MessageIsKeptUntilEnqueuedAndSharedByDeliveries) {
  MustApply(Session(kSid, "c"));
  MustApply(Session(kSid2, "d"));
  MustApply(Message(5, 2, "t/x", 0x01));
  EXPECT_EQ(state_.message_count(), 1u);  // no delivery yet: kept for the kEnqueue that follows
  MustApply(Enqueue(kSid, 5, 2, 0x01));
  MustApply(Enqueue(kSid2, 5, 1));
  const StoredDelivery& a = session(kSid).deliveries.front();
  const StoredDelivery& b = session(kSid2).deliveries.front();
  ASSERT_NE(a.message, nullptr);
  EXPECT_EQ(a.message, b.message);  // stored once, shared
  EXPECT_EQ(a.message->topic, "t/x");
  EXPECT_EQ(a.message->qos, 2);
  EXPECT_TRUE(a.message->retain);
  EXPECT_EQ(a.message->expiry_wall_ms, 1'900'000'000'000u);
  EXPECT_EQ(a.message->payload, kStatePayload);
  EXPECT_EQ(a.message->properties, kStateProperties);
  EXPECT_EQ(a.qos, 2);
  EXPECT_TRUE(a.retain);
  EXPECT_EQ(b.qos, 1);
  EXPECT_FALSE(b.retain);
  EXPECT_EQ(a.stage, Stage::kQueued);
  EXPECT_EQ(a.packet_id, 0);
}

TEST_F(DurableStateTest, MessageIsForgottenWhenNoDeliveryNamesIt) {
  MustApply(Session(kSid, "c"));
  MustApply(Session(kSid2, "d"));
  MustApply(Message(5, 1));
  MustApply(Enqueue(kSid, 5, 1));
  MustApply(Enqueue(kSid2, 5, 1));
  MustApply(Discard(kSid, 5));
  EXPECT_EQ(state_.message_count(), 1u);
  MustApply(Discard(kSid2, 5));
  EXPECT_EQ(state_.message_count(), 0u);
  // A later kEnqueue needs the kMessage again.
  MustRefuse(Enqueue(kSid, 5, 1), "unknown message");
  MustApply(Message(5, 1));
  MustApply(Enqueue(kSid, 5, 1));
}

// The writer does not track exactly which mids its log holds: the same message again, while
// deliveries name it, changes nothing.
TEST_F(DurableStateTest, SameMessageAgainIsAccepted) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 1));
  MustApply(Enqueue(kSid, 5, 1));
  MustApply(Message(5, 1));
  MustApply(Enqueue(kSid, 5, 1));
  EXPECT_EQ(state_.message_count(), 1u);
  MustApply(Discard(kSid, 5));
  MustApply(Discard(kSid, 5));
  EXPECT_EQ(state_.message_count(), 0u);
}

TEST_F(DurableStateTest, MessageInconsistenciesAreRefused) {
  MustApply(Message(5, 1));
  MustRefuse(Message(5, 2), "other content");  // a duplicate mid, another message
  MustRefuse(Message(5, 1, "x/y"), "other content");
  MustRefuse(Message(5, 1, "a/b", 0x01), "other content");
  MustRefuse(Message(6, 0), "QoS 0");
  MustRefuse(Message(6, 3), "QoS 3");
  MustRefuse(Message(6, 1, "a", 0x02), "reserved flags");
  MustRefuse(Message(6, 1, ""), "empty topic");
}

TEST_F(DurableStateTest, EnqueueInconsistenciesAreRefused) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 1));
  MustRefuse(Enqueue(kSid, 6, 1), "unknown message");
  MustRefuse(Enqueue(kSid, 5, 0), "QoS 0");
  MustRefuse(Enqueue(kSid, 5, 2), "the message has QoS 1");  // never upgraded
  MustRefuse(Enqueue(kSid, 5, 1, 0x80), "reserved flags");
}

TEST_F(DurableStateTest, Qos1DeliveryIsSentThenAcked) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 1));
  MustApply(Enqueue(kSid, 5, 1));
  MustApply(Sent(kSid, 5, 10));
  EXPECT_EQ(session().deliveries.front().stage, Stage::kAwaitAck);
  EXPECT_EQ(session().deliveries.front().packet_id, 10);
  MustRefuse(PacketId(RecordType::kPubrec, kSid, 10), "another stage or QoS");  // QoS 1
  MustRefuse(PacketId(RecordType::kPubcomp, kSid, 10), "another stage or QoS");
  MustApply(PacketId(RecordType::kPuback, kSid, 10));
  EXPECT_TRUE(session().deliveries.empty());
  EXPECT_EQ(state_.message_count(), 0u);
}

TEST_F(DurableStateTest, Qos2DeliveryGoesThroughPubrecAndPubcomp) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 2));
  MustApply(Enqueue(kSid, 5, 2));
  MustApply(Sent(kSid, 5, 11));
  MustRefuse(PacketId(RecordType::kPuback, kSid, 11), "another stage or QoS");   // QoS 2
  MustRefuse(PacketId(RecordType::kPubcomp, kSid, 11), "another stage or QoS");  // before PUBREC
  MustApply(PacketId(RecordType::kPubrec, kSid, 11));
  const StoredDelivery& d = session().deliveries.front();
  EXPECT_EQ(d.stage, Stage::kAwaitComplete);
  EXPECT_EQ(d.packet_id, 11);
  EXPECT_EQ(d.message, nullptr);  // PUBREL is due: the message is no longer needed
  EXPECT_EQ(state_.message_count(), 0u);
  MustRefuse(PacketId(RecordType::kPubrec, kSid, 11), "another stage or QoS");  // twice
  MustApply(PacketId(RecordType::kPubcomp, kSid, 11));
  EXPECT_TRUE(session().deliveries.empty());
}

TEST_F(DurableStateTest, AcksForPacketIdsNotInFlightAreRefused) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 2));
  MustApply(Enqueue(kSid, 5, 2));  // queued, not sent: no packet id yet
  MustRefuse(PacketId(RecordType::kPuback, kSid, 1), "not in flight");
  MustRefuse(PacketId(RecordType::kPubrec, kSid, 1), "not in flight");
  MustRefuse(PacketId(RecordType::kPubcomp, kSid, 1), "not in flight");
  MustRefuse(PacketId(RecordType::kPubrec, kSid, 0), "not in flight");
}

TEST_F(DurableStateTest, SentInconsistenciesAreRefused) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 1));
  MustApply(Message(6, 1));
  MustApply(Enqueue(kSid, 5, 1));
  MustApply(Enqueue(kSid, 6, 1));
  MustRefuse(Sent(kSid, 7, 1), "no unsent delivery");
  MustRefuse(Sent(kSid, 5, 0), "packet id 0");
  MustApply(Sent(kSid, 5, 1));
  MustRefuse(Sent(kSid, 5, 2), "no unsent delivery");  // its only delivery was sent
  MustRefuse(Sent(kSid, 6, 1), "already in flight");   // a duplicate packet id
  MustApply(Sent(kSid, 6, 2));
}

TEST_F(DurableStateTest, PacketIdIsReusableAfterTheAck) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 1));
  MustApply(Enqueue(kSid, 5, 1));
  MustApply(Enqueue(kSid, 5, 1));  // the same message twice (overlapping subscriptions)
  MustApply(Sent(kSid, 5, 1));
  MustApply(PacketId(RecordType::kPuback, kSid, 1));
  MustApply(Sent(kSid, 5, 1));
  EXPECT_EQ(session().deliveries.size(), 1u);
  EXPECT_EQ(state_.message_count(), 1u);
}

TEST_F(DurableStateTest, DeliveriesKeepQueueOrderAndInFlightComesFirst) {
  MustApply(Session(kSid, "c"));
  for (uint64_t mid = 1; mid <= 5; ++mid) {
    MustApply(Message(mid, 1));
    MustApply(Enqueue(kSid, mid, 1));
  }
  auto mids = [&] {
    std::vector<uint64_t> out;
    for (const StoredDelivery& d : session().deliveries) out.push_back(d.mid);
    return out;
  };
  EXPECT_EQ(mids(), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  MustApply(Sent(kSid, 1, 100));
  MustApply(Sent(kSid, 2, 101));
  // Sent ahead of 3 (3 stays queued): 4 joins the in-flight prefix after 2.
  MustApply(Sent(kSid, 4, 102));
  EXPECT_EQ(mids(), (std::vector<uint64_t>{1, 2, 4, 3, 5}));
  EXPECT_EQ(session().deliveries[2].packet_id, 102);
  EXPECT_EQ(session().deliveries[3].stage, Stage::kQueued);
  // An ack in the middle of the in-flight prefix keeps the others in order.
  MustApply(PacketId(RecordType::kPuback, kSid, 101));
  EXPECT_EQ(mids(), (std::vector<uint64_t>{1, 4, 3, 5}));
  MustApply(Discard(kSid, 5));
  EXPECT_EQ(mids(), (std::vector<uint64_t>{1, 4, 3}));
  MustRefuse(Discard(kSid, 1), "no unsent delivery");  // in flight: not discardable
  EXPECT_EQ(state_.message_count(), 3u);
}

TEST_F(DurableStateTest, SentAndDiscardTakeTheFirstUnsentDeliveryOfTheMessage) {
  MustApply(Session(kSid, "c"));
  MustApply(Message(5, 2));
  MustApply(Enqueue(kSid, 5, 2));
  MustApply(Enqueue(kSid, 5, 1));
  MustApply(Sent(kSid, 5, 1));
  EXPECT_EQ(session().deliveries[0].qos, 2);
  EXPECT_EQ(session().deliveries[0].stage, Stage::kAwaitAck);
  MustApply(Discard(kSid, 5));
  ASSERT_EQ(session().deliveries.size(), 1u);
  EXPECT_EQ(session().deliveries[0].qos, 2);
}

TEST_F(DurableStateTest, InboundQos2IdsAreKeptSortedUntilReleased) {
  MustApply(Session(kSid, "c"));
  MustApply(PacketId(RecordType::kInboundQos2, kSid, 30));
  MustApply(PacketId(RecordType::kInboundQos2, kSid, 10));
  MustApply(PacketId(RecordType::kInboundQos2, kSid, 20));
  EXPECT_EQ(session().inbound_qos2, (std::vector<uint16_t>{10, 20, 30}));
  MustRefuse(PacketId(RecordType::kInboundQos2, kSid, 20), "already awaiting PUBREL");
  MustRefuse(PacketId(RecordType::kInboundQos2, kSid, 0), "packet id 0");
  MustApply(PacketId(RecordType::kInboundRelease, kSid, 20));
  EXPECT_EQ(session().inbound_qos2, (std::vector<uint16_t>{10, 30}));
  MustRefuse(PacketId(RecordType::kInboundRelease, kSid, 20), "not awaiting PUBREL");
}

TEST_F(DurableStateTest, RetainKeepsTheHigherVersionPerTopic) {
  const std::vector<uint8_t> old_value = {'o'};
  const std::vector<uint8_t> new_value = {'n', 'e', 'w'};
  MustApply(Retain(5, "r/1", new_value, 2));
  MustApply(Retain(3, "r/1", old_value));  // older: ignored
  const StoredRetained& r = state_.retained().at("r/1");
  EXPECT_EQ(r.version, 5u);
  EXPECT_EQ(r.message.payload, new_value);
  EXPECT_EQ(r.message.qos, 2);
  EXPECT_TRUE(r.message.retain);
  EXPECT_EQ(r.message.topic, "r/1");
  EXPECT_EQ(r.message.properties, kStateProperties);
  MustApply(Retain(8, "r/1", kStateEmpty));  // a deletion is kept as one until MoveInto
  EXPECT_EQ(state_.retained().at("r/1").version, 8u);
  EXPECT_TRUE(state_.retained().at("r/1").message.payload.empty());
  MustRefuse(Retain(9, "r/1", new_value, 3), "QoS 3");
  MustRefuse(Retain(9, "", new_value), "empty topic");
}

TEST(DurableStateMoveTest, RetainedVersionsFromTwoStatesNewestWinsAndDeletionsDrop) {
  const std::vector<uint8_t> value_a = {'a'};
  const std::vector<uint8_t> value_b = {'b'};
  DurableState shard0;
  DurableState shard1;
  ASSERT_TRUE(shard0.Apply(Retain(10, "t/deleted-later", value_a)));
  ASSERT_TRUE(shard1.Apply(Retain(12, "t/deleted-later", kStateEmpty)));  // newer deletion wins
  ASSERT_TRUE(shard0.Apply(Retain(20, "t/set-later", kStateEmpty)));
  ASSERT_TRUE(shard1.Apply(Retain(21, "t/set-later", value_b)));  // newer value wins
  ASSERT_TRUE(shard0.Apply(Retain(31, "t/older-elsewhere", value_a)));
  ASSERT_TRUE(shard1.Apply(Retain(30, "t/older-elsewhere", value_b)));
  ASSERT_TRUE(shard1.Apply(Retain(40, "t/only-1", value_b)));
  RecoveredState out;
  shard1.MoveInto(out);
  shard0.MoveInto(out);
  EXPECT_EQ(out.max_retained_version, 40u);
  EXPECT_EQ(out.retained.at("t/deleted-later").version, 12u);
  out.DropRetainedDeletions();
  EXPECT_EQ(out.retained.count("t/deleted-later"), 0u);
  EXPECT_EQ(out.retained.at("t/set-later").message.payload, value_b);
  EXPECT_EQ(out.retained.at("t/older-elsewhere").message.payload, value_a);
  EXPECT_EQ(out.retained.at("t/older-elsewhere").version, 31u);
  EXPECT_EQ(out.retained.at("t/only-1").version, 40u);
  EXPECT_EQ(out.retained.size(), 3u);
  EXPECT_TRUE(shard0.retained().empty());
  EXPECT_TRUE(shard1.retained().empty());
}

TEST(DurableStateMoveTest, RetainedAllDropsOlderValuesItDoesNotHold) {
  // Shard 1's compaction snapshot (kRetainedAll at 50) holds only "t/kept": "t/gone", set at 10
  // on shard 0 and deleted on shard 1 before the snapshot (its tombstone compacted away), is
  // dropped; a value set after the snapshot (60) stays.
  const std::vector<uint8_t> value = {'v'};
  DurableState shard0;
  DurableState shard1;
  ASSERT_TRUE(shard0.Apply(Retain(10, "t/gone", value)));
  ASSERT_TRUE(shard0.Apply(Retain(60, "t/after", value)));
  Record all;
  all.type = RecordType::kRetainedAll;
  all.count = 50;
  ASSERT_TRUE(shard1.Apply(all));
  ASSERT_TRUE(shard1.Apply(Retain(50, "t/kept", value)));
  RecoveredState out;
  shard0.MoveInto(out);
  shard1.MoveInto(out);
  EXPECT_EQ(out.retained_all_version, 50u);
  out.DropRetainedDeletions();
  EXPECT_EQ(out.retained.count("t/gone"), 0u);
  EXPECT_EQ(out.retained.count("t/kept"), 1u);
  EXPECT_EQ(out.retained.count("t/after"), 1u);
}

TEST(DurableStateMoveTest, SessionsAreKeyedByClientIdAndKeepTheirMessages) {
  DurableState state;
  ASSERT_TRUE(state.Apply(Session(kSid, "alpha")));
  ASSERT_TRUE(state.Apply(Session(kSid2, "beta")));
  ASSERT_TRUE(state.Apply(Message(5, 1)));
  ASSERT_TRUE(state.Apply(Message(6, 1)));  // no delivery names it: dropped by MoveInto
  ASSERT_TRUE(state.Apply(Enqueue(kSid, 5, 1)));
  ASSERT_TRUE(state.Apply(Enqueue(kSid2, 5, 1)));
  RecoveredState out;
  state.MoveInto(out);
  EXPECT_TRUE(state.sessions().empty());
  EXPECT_EQ(state.message_count(), 0u);
  ASSERT_EQ(out.sessions.size(), 2u);
  const StoredDelivery& a = out.sessions.at("alpha").deliveries.at(0);
  const StoredDelivery& b = out.sessions.at("beta").deliveries.at(0);
  ASSERT_NE(a.message, nullptr);
  EXPECT_EQ(a.message, b.message);
  EXPECT_EQ(a.message->payload, kStatePayload);
  EXPECT_EQ(out.duplicate_sessions, 0u);
}

TEST(DurableStateMoveTest, DuplicateClientIdKeepsTheSessionWithMoreDeliveries) {
  DurableState shard0;
  DurableState shard1;
  DurableState shard2;
  ASSERT_TRUE(shard0.Apply(Session(kSid, "same", 10)));
  ASSERT_TRUE(shard1.Apply(Session(kSid, "same", 20)));  // sids are per shard: the same value
  ASSERT_TRUE(shard1.Apply(Message(5, 1)));
  ASSERT_TRUE(shard1.Apply(Enqueue(kSid, 5, 1)));
  ASSERT_TRUE(shard1.Apply(Enqueue(kSid, 5, 1)));
  ASSERT_TRUE(shard2.Apply(Session(kSid2, "same", 30)));
  ASSERT_TRUE(shard2.Apply(Message(6, 1)));
  ASSERT_TRUE(shard2.Apply(Enqueue(kSid2, 6, 1)));
  RecoveredState out;
  shard0.MoveInto(out);
  shard1.MoveInto(out);
  shard2.MoveInto(out);
  ASSERT_EQ(out.sessions.size(), 1u);
  EXPECT_EQ(out.sessions.at("same").expiry_s, 20u);
  EXPECT_EQ(out.sessions.at("same").deliveries.size(), 2u);
  EXPECT_EQ(out.duplicate_sessions, 2u);
}

TEST(DurableStateMoveTest, ErrorIsClearedAndStateIsReusableAfterMove) {
  DurableState state;
  EXPECT_FALSE(state.Apply(Offline(kSid, 1)));
  EXPECT_FALSE(state.error().empty());
  RecoveredState out;
  state.MoveInto(out);
  EXPECT_TRUE(state.error().empty());
  ASSERT_TRUE(state.Apply(Session(kSid, "again")));
  EXPECT_EQ(state.sessions().size(), 1u);
}

}  // namespace
}  // namespace ringmq::persist
