// Session: what WriteOutput puts on the wire, decoded back with the codec. QoS 0 delivery and its
// limits, the QoS 1 and QoS 2 windows, resend on reconnect, packet id allocation, inbound QoS 2
// de-duplication, the max_bytes budget, and that every Message is released exactly once.
#include "session/session.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/byte_buffer.h"
#include "common/bytes.h"
#include "memory/budget.h"
#include "message/message.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "session_test_util.h"

namespace ringmq::session {
namespace {

using Bytes = ByteBuffer;  // what WriteOutput appends to
using message::Message;
using message::MessageRef;

using test::kDefaultLimits;  // session_test_util.h
using test::kMaxPacketSize;
using test::kNoLimit;

// Frames and decodes every packet in `bytes`, as a client would. The packets view `bytes`.
// Fails the test if the bytes are not a whole number of valid packets.
std::vector<mqtt::Packet> DecodeAll(const Bytes& bytes) {
  std::vector<mqtt::Packet> packets;
  std::span<const uint8_t> rest(bytes);
  while (!rest.empty()) {
    const mqtt::Frame frame = mqtt::PeekFrame(rest, kMaxPacketSize);
    EXPECT_EQ(frame.status, mqtt::FrameStatus::kComplete)
        << "at offset " << bytes.size() - rest.size();
    if (frame.status != mqtt::FrameStatus::kComplete) break;
    const mqtt::Result<mqtt::Packet> packet = mqtt::Decode(
        frame.header, rest.subspan(frame.header.header_length, frame.header.remaining_length));
    EXPECT_TRUE(packet.ok()) << mqtt::NameOf(packet.violation());
    if (!packet.ok()) break;
    packets.push_back(packet.value());
    rest = rest.subspan(frame.header.total_length());
  }
  return packets;
}

// One WriteOutput call: the bytes and the packets decoded from them (which view `bytes`; a moved
// vector keeps its buffer, so returning this by value is safe).
struct Written {
  size_t returned = 0;
  Bytes bytes;
  std::vector<mqtt::Packet> packets;
};

Written Write(Session& session, size_t max_bytes = kNoLimit) {
  Written written;
  written.returned = session.WriteOutput(written.bytes, max_bytes);
  EXPECT_EQ(written.returned, written.bytes.size());
  written.packets = DecodeAll(written.bytes);
  return written;
}

// The PUBLISH at `index`, or a failure (and an empty Publish) if it is something else.
mqtt::Publish PublishAt(const Written& written, size_t index) {
  if (index >= written.packets.size()) {
    ADD_FAILURE() << "no packet " << index << " of " << written.packets.size();
    return {};
  }
  const auto* publish = std::get_if<mqtt::Publish>(&written.packets[index]);
  if (publish == nullptr) {
    ADD_FAILURE() << "packet " << index << " is "
                  << mqtt::NameOf(mqtt::TypeOf(written.packets[index]));
    return {};
  }
  return *publish;
}

// The packet id of the PUBREL at `index`, or a failure (and 0).
uint16_t PubrelIdAt(const Written& written, size_t index) {
  if (index >= written.packets.size()) {
    ADD_FAILURE() << "no packet " << index << " of " << written.packets.size();
    return 0;
  }
  const auto* pubrel = std::get_if<mqtt::Pubrel>(&written.packets[index]);
  if (pubrel == nullptr) {
    ADD_FAILURE() << "packet " << index << " is "
                  << mqtt::NameOf(mqtt::TypeOf(written.packets[index]));
    return 0;
  }
  return pubrel->packet_id;
}

// The packet ids of all PUBLISHes in `written`, in order.
std::vector<uint16_t> PublishIds(const Written& written) {
  std::vector<uint16_t> ids;
  for (const mqtt::Packet& packet : written.packets) {
    if (const auto* publish = std::get_if<mqtt::Publish>(&packet))
      ids.push_back(publish->packet_id);
  }
  return ids;
}

// The payloads of all PUBLISHes in `written`, in order.
std::vector<std::string> Payloads(const Written& written) {
  std::vector<std::string> payloads;
  for (const mqtt::Packet& packet : written.packets) {
    if (const auto* publish = std::get_if<mqtt::Publish>(&packet)) {
      payloads.emplace_back(publish->payload);
    }
  }
  return payloads;
}

// Counts frees through the Message test hook, so each test can check that every Message it
// created is released exactly once (no leak in the session, no early release).
int frees = 0;
void CountFree(const Message* /*message*/) { ++frees; }

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    frees = 0;
    Message::SetFreeHookForTesting(&CountFree);
  }
  void TearDown() override {
    Message::SetFreeHookForTesting(nullptr);
    EXPECT_EQ(frees, created_) << "every Message is freed once the session and test drop it";
  }

  // A new message on topic "t/<payload>"; the caller owns the only reference.
  MessageRef NewMessage(std::string_view payload, uint8_t publish_qos = 2, bool retain = false) {
    ++created_;
    return MessageRef::Create("t/" + std::string(payload), AsBytes(payload), publish_qos, retain);
  }
  // Enqueues a new message that only the session references.
  EnqueueResult Add(Session& session, std::string_view payload, uint8_t qos, bool retain = false) {
    return session.Enqueue(NewMessage(payload), qos, retain);
  }

  // Kept by the fixture: a session refers to its limits, so they outlive the test's sessions.
  const SessionLimits& Limits(uint32_t max_inflight) {
    SessionLimits& limits = limits_.emplace_back();
    limits.max_inflight = max_inflight;
    return limits;
  }

  int created_ = 0;
  std::deque<SessionLimits> limits_;  // stable addresses
};

// A connected persistent session.
Session Online(const SessionLimits&& limits) = delete;  // the session would outlive them
Session Online(const SessionLimits& limits) {
  Session session("client", /*clean_session=*/false, limits);
  session.Attach(/*clean_session=*/false);
  return session;
}

// --- QoS 0 -------------------------------------------------------------------------------------

TEST_F(SessionTest, Qos0PublishHasNoPacketIdAndKeepsOrder_MQTT_2_3_1_5) {
  Session session = Online(kDefaultLimits);
  for (const char* payload : {"a", "b", "c"}) {
    EXPECT_EQ(Add(session, payload, 0), EnqueueResult::kQueued);
  }
  EXPECT_TRUE(session.has_output());
  const Written written = Write(session);
  ASSERT_EQ(written.packets.size(), 3u);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"a", "b", "c"}));
  for (size_t i = 0; i < 3; ++i) {
    const mqtt::Publish publish = PublishAt(written, i);
    EXPECT_EQ(publish.qos, mqtt::QoS::k0);
    EXPECT_EQ(publish.packet_id, 0);
    EXPECT_FALSE(publish.dup);
    EXPECT_EQ(publish.topic, "t/" + std::string(publish.payload));
  }
  // QoS 0 is fire and forget: nothing in flight, nothing left.
  EXPECT_EQ(session.inflight(), 0u);
  EXPECT_EQ(session.queued_messages(), 0u);
  EXPECT_FALSE(session.has_output());
  EXPECT_TRUE(Write(session).bytes.empty());
  EXPECT_EQ(frees, 3);
}

TEST_F(SessionTest, Qos0DroppedWhileOffline) {
  Session session("client", /*clean_session=*/false, kDefaultLimits);
  EXPECT_EQ(Add(session, "never", 0), EnqueueResult::kDroppedOffline);
  EXPECT_EQ(frees, 1) << "a dropped message is released at once";
  session.Attach(false);
  session.Detach();
  EXPECT_EQ(Add(session, "never", 0), EnqueueResult::kDroppedOffline);
  // QoS 1/2 are stored for a persistent session while it is offline.
  EXPECT_EQ(Add(session, "kept", 1), EnqueueResult::kQueued);
  EXPECT_EQ(session.queued_messages(), 1u);
  EXPECT_EQ(session.queued_bytes(), uint64_t{mqtt::PublishHeaderMaxSize(6) + 4});  // "t/kept"
  session.Attach(false);
  const Written written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"kept"}));
}

TEST_F(SessionTest, Qos0QueuedWhileOfflineWhenConfigured) {
  SessionLimits limits;
  limits.queue_qos0_offline = true;
  Session session("client", /*clean_session=*/false, limits);
  EXPECT_EQ(Add(session, "a", 0), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "b", 0), EnqueueResult::kQueued);
  EXPECT_FALSE(session.has_output()) << "nothing to send without a connection";
  session.Attach(false);
  EXPECT_TRUE(session.has_output());
  const Written written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(PublishAt(written, 0).qos, mqtt::QoS::k0);
}

TEST_F(SessionTest, Qos0BeyondQueuedBytesCapDropped) {
  MessageRef probe = NewMessage("x");
  const uint64_t wire_bytes = probe->wire_bytes();  // the same for every one-byte payload
  probe.reset();
  SessionLimits limits;
  limits.max_queued_bytes = 2 * wire_bytes;
  Session session = Online(limits);
  EXPECT_EQ(Add(session, "a", 0), EnqueueResult::kQueued);
  EXPECT_EQ(session.queued_bytes(), wire_bytes);
  EXPECT_EQ(Add(session, "b", 0), EnqueueResult::kQueued);
  EXPECT_EQ(session.queued_bytes(), 2 * wire_bytes);
  EXPECT_EQ(Add(session, "c", 0), EnqueueResult::kDroppedBytesCap);
  EXPECT_EQ(session.queued_bytes(), 2 * wire_bytes);
  EXPECT_EQ(session.queued_messages(), 2u);
  EXPECT_EQ(frees, 2) << "probe and the dropped message";

  EXPECT_EQ(Payloads(Write(session)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(session.queued_bytes(), 0u);
  EXPECT_EQ(session.queued_messages(), 0u);
  EXPECT_EQ(Add(session, "d", 0), EnqueueResult::kQueued) << "room again after sending";
}

// A session that ends hands the QoS 1/2 messages its shared subscriptions gave it, and that its
// client did not acknowledge, to its group (Router::DestroySession): waiting ones and those
// awaiting PUBACK / PUBREC, in order; a QoS 2 message past PUBREC, QoS 0 and normal deliveries
// stay.
TEST_F(SessionTest, TakeSharedMessagesTakesUnacknowledgedSharedQos12) {
  Session session = Online(Limits(3));
  EXPECT_EQ(session.Enqueue(NewMessage("a"), 1, false, kEnqueueShared), EnqueueResult::kQueued);
  EXPECT_EQ(session.Enqueue(NewMessage("b"), 2, false, kEnqueueShared), EnqueueResult::kQueued);
  EXPECT_EQ(session.Enqueue(NewMessage("c"), 1, false, /*flags=*/0), EnqueueResult::kQueued);
  EXPECT_EQ(session.Enqueue(NewMessage("d"), 0, false, kEnqueueShared), EnqueueResult::kQueued);
  EXPECT_EQ(session.Enqueue(NewMessage("e"), 2, false, kEnqueueShared), EnqueueResult::kQueued);
  EXPECT_EQ(session.Enqueue(NewMessage("f"), 1, false, kEnqueueShared), EnqueueResult::kQueued);
  Write(session);                  // a, b, c in flight (window 3), d sent (QoS 0), e, f wait
  EXPECT_TRUE(session.OnPubrec(2));  // b: the client has it
  std::vector<std::string> taken;
  session.TakeSharedMessages([&](MessageRef message, uint8_t qos) {
    taken.push_back(std::string(message->topic()) + "@" + std::to_string(qos));
  });
  EXPECT_EQ(taken, (std::vector<std::string>{"t/a@1", "t/e@2", "t/f@1"}));
  EXPECT_EQ(session.inflight(), 2u) << "b (PUBREL due) and c stay";
  EXPECT_EQ(session.queued_messages(), 0u);
  EXPECT_EQ(session.queued_bytes(), 0u);
  EXPECT_TRUE(session.OnPuback(3)) << "c is still tracked";
}

TEST_F(SessionTest, CanTakeAgreesWithEnqueue) {
  SessionLimits& limits = limits_.emplace_back();
  limits.max_inflight = 1;
  limits.max_queued_messages = 1;
  Session session("client", /*clean_session=*/false, limits);  // offline: no window room
  MessageRef probe = NewMessage("p", 1);
  EXPECT_FALSE(session.CanTake(*probe, 0)) << "QoS 0 is not queued offline";
  EXPECT_TRUE(session.CanTake(*probe, 1));
  EXPECT_EQ(Add(session, "a", 1), EnqueueResult::kQueued);
  EXPECT_FALSE(session.CanTake(*probe, 1));
  EXPECT_EQ(Add(session, "b", 1), EnqueueResult::kDroppedQueueFull);
}

TEST_F(SessionTest, QueuedBytesCountsQos1UntilSent) {
  Session session = Online(Limits(1));
  MessageRef message = NewMessage("a");
  const uint64_t wire_bytes = message->wire_bytes();
  EXPECT_EQ(session.Enqueue(std::move(message), 1, false), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "b", 1), EnqueueResult::kQueued);
  EXPECT_EQ(session.queued_bytes(), 2 * wire_bytes);
  Write(session);  // "a" goes in flight, "b" waits for the window
  EXPECT_EQ(session.queued_bytes(), wire_bytes);
  EXPECT_TRUE(session.OnPuback(1));
  Write(session);
  EXPECT_EQ(session.queued_bytes(), 0u);
  EXPECT_TRUE(session.OnPuback(2));
}

TEST_F(SessionTest, Qos1And2BeyondQueuedBytesCapDropped) {
  // max_queued_bytes bounds QoS 1/2 too: without it, 1,000 one-MiB messages could wait for one
  // offline session.
  MessageRef probe = NewMessage("x");
  const uint64_t wire_bytes = probe->wire_bytes();
  probe.reset();
  SessionLimits limits;
  limits.max_queued_bytes = 2 * wire_bytes;
  Session session("client", /*clean_session=*/false, limits);  // offline
  EXPECT_EQ(Add(session, "a", 1), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "b", 2), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "c", 1), EnqueueResult::kDroppedBytesCap);
  EXPECT_EQ(Add(session, "d", 2), EnqueueResult::kDroppedBytesCap);
  EXPECT_EQ(session.queued_messages(), 2u);
  EXPECT_EQ(session.queued_bytes(), 2 * wire_bytes);
  EXPECT_EQ(frees, 3) << "probe and the two dropped messages";
  session.Attach(false);
  EXPECT_EQ(Payloads(Write(session)), (std::vector<std::string>{"a", "b"}));
  // In flight, the messages are still held: the window must not take max_inflight messages of
  // any size past the cap.
  EXPECT_EQ(Add(session, "e", 1), EnqueueResult::kDroppedBytesCap) << "a and b are in flight";
  EXPECT_TRUE(session.OnPuback(1));  // a (QoS 1) is released
  EXPECT_EQ(Add(session, "e", 1), EnqueueResult::kQueued) << "room again once a is acknowledged";
  EXPECT_EQ(Add(session, "f", 1), EnqueueResult::kDroppedBytesCap);
  EXPECT_TRUE(session.OnPubrec(2));  // b (QoS 2) is delivered: only PUBREL/PUBCOMP remain
  EXPECT_EQ(Add(session, "f", 1), EnqueueResult::kQueued) << "room again once b is received";
}

// --- QoS 1 -------------------------------------------------------------------------------------

TEST_F(SessionTest, Qos1PacketIdsNonZeroAndWindowBounded_MQTT_2_3_1_1) {
  Session session = Online(Limits(2));
  for (const char* payload : {"a", "b", "c", "d"}) {
    EXPECT_EQ(Add(session, payload, 1), EnqueueResult::kQueued);
  }
  Written written = Write(session);
  ASSERT_EQ(written.packets.size(), 2u) << "at most max_inflight unacknowledged";
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{1, 2}));
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(PublishAt(written, i).qos, mqtt::QoS::k1);
    EXPECT_FALSE(PublishAt(written, i).dup);
  }
  EXPECT_EQ(session.inflight(), 2u);
  EXPECT_EQ(session.queued_messages(), 2u);
  EXPECT_FALSE(session.has_output());
  EXPECT_TRUE(Write(session).bytes.empty()) << "window full";

  EXPECT_TRUE(session.OnPuback(1));
  EXPECT_TRUE(session.has_output());
  written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"c"}));
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{3}));
  EXPECT_TRUE(Write(session).bytes.empty());

  EXPECT_TRUE(session.OnPuback(3));
  EXPECT_TRUE(session.OnPuback(2));
  written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"d"}));
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{4}));
  EXPECT_TRUE(session.OnPuback(4));
  EXPECT_EQ(session.inflight(), 0u);
  EXPECT_EQ(frees, 4) << "each message released on its PUBACK";
}

TEST_F(SessionTest, Qos1PubackOfUnknownIdReturnsFalse) {
  Session session = Online(kDefaultLimits);
  EXPECT_FALSE(session.OnPuback(1)) << "nothing in flight";
  Add(session, "a", 1);
  EXPECT_FALSE(session.OnPuback(1)) << "queued, not yet sent";
  Write(session);
  EXPECT_FALSE(session.OnPuback(2));
  EXPECT_FALSE(session.OnPubrec(1)) << "PUBREC for a QoS 1 message";
  EXPECT_FALSE(session.OnPubcomp(1)) << "PUBCOMP for a QoS 1 message";
  EXPECT_EQ(session.inflight(), 1u);
  EXPECT_TRUE(session.OnPuback(1));
  EXPECT_FALSE(session.OnPuback(1)) << "duplicate PUBACK";
  EXPECT_EQ(session.inflight(), 0u);
}

TEST_F(SessionTest, Qos1And2BeyondMaxQueuedMessagesDropped) {
  SessionLimits limits = Limits(1);
  limits.max_queued_messages = 2;
  Session session = Online(limits);
  // The free in-flight window (1) takes one more before the queue counts as full.
  EXPECT_EQ(Add(session, "a", 1), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "b", 2), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "c", 1), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "d", 2), EnqueueResult::kDroppedQueueFull);
  EXPECT_EQ(Add(session, "e", 1), EnqueueResult::kDroppedQueueFull);
  EXPECT_EQ(frees, 2);
  EXPECT_EQ(session.queued_messages(), 3u);
  // Sending moves "a" into the window, which is now full: two wait, the queue is full.
  Write(session);
  EXPECT_EQ(session.queued_messages(), 2u);
  EXPECT_EQ(Add(session, "f", 1), EnqueueResult::kDroppedQueueFull);
  EXPECT_TRUE(session.OnPuback(1));  // the window has room again: one more fits
  EXPECT_EQ(Add(session, "g", 1), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "h", 1), EnqueueResult::kDroppedQueueFull);
}

// A burst that arrives before the session writes (mailbox records drained in one loop
// iteration) fills the window and the queue, not the queue alone.
TEST_F(SessionTest, BurstBeforeAWriteFillsTheWindowAndTheQueue) {
  SessionLimits limits = Limits(2);
  limits.max_queued_messages = 3;
  Session session = Online(limits);
  for (const char* payload : {"0", "1", "2", "3", "4"}) {
    EXPECT_EQ(Add(session, payload, 1), EnqueueResult::kQueued) << payload;
  }
  EXPECT_EQ(Add(session, "5", 1), EnqueueResult::kDroppedQueueFull);
  Write(session);
  EXPECT_EQ(session.inflight(), 2u);
  EXPECT_EQ(session.queued_messages(), 3u);
}

// --- QoS 2 -------------------------------------------------------------------------------------

TEST_F(SessionTest, Qos2PublishPubrecPubrelPubcomp_MQTT_4_3_3_1) {
  Session session = Online(Limits(1));
  Add(session, "a", 2);
  Add(session, "b", 2);
  Written written = Write(session);
  ASSERT_EQ(written.packets.size(), 1u);
  EXPECT_EQ(PublishAt(written, 0).qos, mqtt::QoS::k2);
  EXPECT_EQ(PublishAt(written, 0).packet_id, 1);
  EXPECT_FALSE(session.has_output());

  EXPECT_TRUE(session.OnPubrec(1));
  EXPECT_TRUE(session.has_output());
  written = Write(session);
  // PUBREL: type 6 with the reserved flags 0b0010 (MQTT-3.6.1-1), remaining length 2, id 1.
  EXPECT_EQ(written.bytes, (Bytes{0x62, 0x02, 0x00, 0x01}));
  EXPECT_EQ(PubrelIdAt(written, 0), 1);
  EXPECT_EQ(session.inflight(), 1u) << "the slot is held until PUBCOMP";
  EXPECT_FALSE(session.has_output());
  EXPECT_TRUE(Write(session).bytes.empty()) << "b waits: the window is still full";

  EXPECT_TRUE(session.OnPubcomp(1));
  EXPECT_EQ(session.inflight(), 0u);
  written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"b"}));
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{2}));
  EXPECT_FALSE(session.OnPubcomp(1)) << "already complete";
}

TEST_F(SessionTest, Qos2RepeatedPubrecMakesPubrelDueAgain) {
  Session session = Online(kDefaultLimits);
  Add(session, "a", 2);
  Write(session);
  EXPECT_TRUE(session.OnPubrec(1));
  EXPECT_TRUE(session.OnPubrec(1)) << "a repeated PUBREC before the PUBREL went out";
  Written written = Write(session);
  EXPECT_EQ(written.bytes, (Bytes{0x62, 0x02, 0x00, 0x01})) << "one PUBREL, not two";
  EXPECT_FALSE(session.has_output());

  EXPECT_TRUE(session.OnPubrec(1)) << "the PUBREL was lost; the client asks again";
  EXPECT_TRUE(session.has_output());
  written = Write(session);
  EXPECT_EQ(written.bytes, (Bytes{0x62, 0x02, 0x00, 0x01}));
  EXPECT_TRUE(session.OnPubcomp(1));
  EXPECT_FALSE(session.OnPubrec(1)) << "complete: the id is free";
  EXPECT_FALSE(session.has_output());
}

TEST_F(SessionTest, Qos2PubcompForUnknownIdReturnsFalse) {
  Session session = Online(kDefaultLimits);
  EXPECT_FALSE(session.OnPubcomp(1));
  Add(session, "a", 2);
  Write(session);
  EXPECT_FALSE(session.OnPubcomp(1)) << "PUBCOMP before PUBREC";
  EXPECT_FALSE(session.OnPuback(1)) << "PUBACK for a QoS 2 message";
  EXPECT_FALSE(session.OnPubrec(2));
  EXPECT_TRUE(session.OnPubrec(1));
  EXPECT_FALSE(session.OnPubcomp(2));
  EXPECT_EQ(session.inflight(), 1u);
  // PUBCOMP while the PUBREL is still due (not yet written) also completes it.
  EXPECT_TRUE(session.OnPubcomp(1));
  EXPECT_FALSE(session.has_output());
  EXPECT_TRUE(Write(session).bytes.empty());
}

TEST_F(SessionTest, Qos2MessageReleasedAfterPubrec) {
  Session session = Online(kDefaultLimits);
  MessageRef message = NewMessage("a");
  EXPECT_EQ(session.Enqueue(MessageRef::Share(message.get()), 2, false), EnqueueResult::kQueued);
  EXPECT_EQ(message->references_for_testing(), 2u);
  Write(session);
  EXPECT_EQ(message->references_for_testing(), 2u) << "held while the PUBLISH may be resent";
  EXPECT_TRUE(session.OnPubrec(1));
  EXPECT_EQ(message->references_for_testing(), 1u) << "only PUBREL/PUBCOMP remain";
  message.reset();
  EXPECT_EQ(frees, 1) << "freed while the session still awaits PUBCOMP";
  EXPECT_EQ(session.inflight(), 1u);
  EXPECT_EQ(Write(session).bytes, (Bytes{0x62, 0x02, 0x00, 0x01}));
  EXPECT_TRUE(session.OnPubcomp(1));
}

// --- Reconnect ---------------------------------------------------------------------------------

TEST_F(SessionTest, ReconnectResendsInflightWithDupInOrderBeforeQueued_MQTT_4_4_0_1) {
  Session session = Online(Limits(5));
  Add(session, "a", 1);  // id 1: unacknowledged
  Add(session, "b", 2);  // id 2: PUBREC received, PUBREL sent
  Add(session, "c", 2);  // id 3: unacknowledged
  Add(session, "d", 1);  // id 4: acknowledged, not resent
  Add(session, "e", 2);  // id 5: PUBREC received, PUBREL not yet written
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(session.OnPubrec(2));
  EXPECT_EQ(PubrelIdAt(Write(session), 0), 2);
  EXPECT_TRUE(session.OnPuback(4));
  EXPECT_TRUE(session.OnPubrec(5));

  session.Detach();
  EXPECT_FALSE(session.online());
  EXPECT_EQ(Add(session, "f", 1), EnqueueResult::kQueued);
  EXPECT_EQ(Add(session, "g", 0), EnqueueResult::kDroppedOffline);
  EXPECT_FALSE(session.has_output());
  Bytes out = {0xAA};
  EXPECT_EQ(session.WriteOutput(out, kNoLimit), 0u) << "nothing is written while detached";
  EXPECT_EQ(out, Bytes{0xAA});

  session.Attach(/*clean_session=*/false);
  EXPECT_TRUE(session.has_output());
  const Written written = Write(session);
  ASSERT_EQ(written.packets.size(), 5u);
  // MQTT-4.4.0-1: the same packet ids, in the original order; MQTT-3.3.1-1: DUP=1 on PUBLISH.
  mqtt::Publish publish = PublishAt(written, 0);
  EXPECT_EQ(publish.packet_id, 1);
  EXPECT_EQ(publish.payload, "a");
  EXPECT_EQ(publish.topic, "t/a");
  EXPECT_EQ(publish.qos, mqtt::QoS::k1);
  EXPECT_TRUE(publish.dup);
  EXPECT_EQ(PubrelIdAt(written, 1), 2);
  publish = PublishAt(written, 2);
  EXPECT_EQ(publish.packet_id, 3);
  EXPECT_EQ(publish.payload, "c");
  EXPECT_EQ(publish.qos, mqtt::QoS::k2);
  EXPECT_TRUE(publish.dup);
  EXPECT_EQ(PubrelIdAt(written, 3), 5);
  // Then the queue: a first delivery, so DUP=0, with a fresh id.
  publish = PublishAt(written, 4);
  EXPECT_EQ(publish.payload, "f");
  EXPECT_FALSE(publish.dup);
  EXPECT_EQ(publish.packet_id, 6);

  EXPECT_FALSE(session.has_output());
  EXPECT_TRUE(Write(session).bytes.empty()) << "each resend is written once";
  EXPECT_TRUE(session.OnPuback(1));
  EXPECT_TRUE(session.OnPubcomp(2));
  EXPECT_TRUE(session.OnPubrec(3));
  EXPECT_EQ(Write(session).bytes, (Bytes{0x62, 0x02, 0x00, 0x03}));
  EXPECT_TRUE(session.OnPubcomp(3));
  EXPECT_TRUE(session.OnPubcomp(5));
  EXPECT_TRUE(session.OnPuback(6));
  EXPECT_EQ(session.inflight(), 0u);
}

TEST_F(SessionTest, ReconnectTwiceBeforeResendWritesEachOnce_MQTT_4_4_0_1) {
  Session session = Online(Limits(4));
  Add(session, "a", 1);
  Add(session, "b", 2);
  Write(session);
  EXPECT_TRUE(session.OnPubrec(2));
  session.Detach();
  session.Attach(false);
  session.Detach();  // dropped again before anything was resent
  session.Attach(false);
  const Written written = Write(session);
  ASSERT_EQ(written.packets.size(), 2u);
  EXPECT_EQ(PublishAt(written, 0).packet_id, 1);
  EXPECT_TRUE(PublishAt(written, 0).dup);
  EXPECT_EQ(PubrelIdAt(written, 1), 2);
  EXPECT_FALSE(session.has_output());
  EXPECT_TRUE(Write(session).bytes.empty());

  // A resend that is lost too is resent again, still with DUP=1.
  session.Detach();
  session.Attach(false);
  const Written again = Write(session);
  ASSERT_EQ(again.packets.size(), 2u);
  EXPECT_TRUE(PublishAt(again, 0).dup);
  EXPECT_EQ(PubrelIdAt(again, 1), 2);
}

TEST_F(SessionTest, ReconnectResendRespectsMaxBytes) {
  Session session = Online(Limits(4));
  Add(session, "a", 1);
  Add(session, "b", 1);
  Add(session, "c", 1);
  Write(session);
  session.Detach();
  session.Attach(false);
  // One packet per call with a budget of one byte: progress, in order.
  for (const uint16_t id : {1, 2, 3}) {
    const Written written = Write(session, 1);
    ASSERT_EQ(written.packets.size(), 1u);
    EXPECT_EQ(PublishAt(written, 0).packet_id, id);
    EXPECT_TRUE(PublishAt(written, 0).dup);
  }
  EXPECT_FALSE(session.has_output());
}

TEST_F(SessionTest, PubrecWhileResendDueTurnsItIntoPubrel) {
  Session session = Online(kDefaultLimits);
  Add(session, "a", 2);
  Write(session);
  session.Detach();
  session.Attach(false);
  // The client got the first PUBLISH and answers before the resend goes out.
  EXPECT_TRUE(session.OnPubrec(1));
  EXPECT_EQ(Write(session).bytes, (Bytes{0x62, 0x02, 0x00, 0x01}));
  EXPECT_TRUE(session.OnPubcomp(1));
  EXPECT_FALSE(session.has_output());
}

// --- Packet ids --------------------------------------------------------------------------------

TEST_F(SessionTest, PacketIdsWrapToOneSkippingInflight_MQTT_2_3_1_1) {
  Session session = Online(Limits(2));
  Add(session, "held", 1);
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{1}));  // never acknowledged
  MessageRef message = NewMessage("m", 1);
  for (uint32_t expected = 2; expected <= 65'535; ++expected) {
    session.Enqueue(MessageRef::Share(message.get()), 1, false);
    const Written written = Write(session);
    ASSERT_EQ(PublishIds(written), (std::vector<uint16_t>{static_cast<uint16_t>(expected)}));
    ASSERT_TRUE(session.OnPuback(static_cast<uint16_t>(expected)));
  }
  // After 65535 comes 1 (never 0), which is still in flight, so 2.
  session.Enqueue(MessageRef::Share(message.get()), 1, false);
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{2}));
  EXPECT_TRUE(session.OnPuback(2));
  session.Enqueue(MessageRef::Share(message.get()), 1, false);
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{3}));
  EXPECT_TRUE(session.OnPuback(3));
  EXPECT_TRUE(session.OnPuback(1));
  EXPECT_EQ(message->references_for_testing(), 1u);
}

// Ids are taken without searching the window while they are in the order they were taken in;
// once they come round to ids still in flight, every id in use is skipped, not only the oldest.
TEST_F(SessionTest, PacketIdsWrapSkippingEveryIdStillInflight_MQTT_2_3_1_1) {
  Session session = Online(Limits(4));
  Add(session, "held 1", 1);
  Add(session, "acked 2", 1);
  Add(session, "held 3", 1);
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{1, 2, 3}));
  ASSERT_TRUE(session.OnPuback(2));
  MessageRef message = NewMessage("m", 1);
  for (uint32_t expected = 4; expected <= 65'535; ++expected) {
    session.Enqueue(MessageRef::Share(message.get()), 1, false);
    ASSERT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{static_cast<uint16_t>(expected)}));
    ASSERT_TRUE(session.OnPuback(static_cast<uint16_t>(expected)));
  }
  session.Enqueue(MessageRef::Share(message.get()), 1, false);
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{2})) << "1 is in flight";
  session.Enqueue(MessageRef::Share(message.get()), 1, false);
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{4})) << "3 is in flight";
  EXPECT_EQ(session.inflight(), 4u);
  for (const uint16_t id : {1, 3, 2, 4}) EXPECT_TRUE(session.OnPuback(id)) << id;
  EXPECT_EQ(session.inflight(), 0u);
  // A drained window restarts the plain sequence.
  session.Enqueue(MessageRef::Share(message.get()), 1, false);
  session.Enqueue(MessageRef::Share(message.get()), 1, false);
  EXPECT_EQ(PublishIds(Write(session)), (std::vector<uint16_t>{5, 6}));
  EXPECT_TRUE(session.OnPuback(5));
  EXPECT_TRUE(session.OnPuback(6));
  EXPECT_EQ(message->references_for_testing(), 1u);
}

TEST_F(SessionTest, PacketIdKeptWhenPublishDoesNotFit) {
  Session session = Online(kDefaultLimits);
  Add(session, "a", 1);
  Add(session, "b", 1);
  Add(session, "c", 1);
  Written written = Write(session, 1);  // only the first fits
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{1}));
  written = Write(session, written.bytes.size());
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{2}));
  written = Write(session);
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{3})) << "no id skipped";
}

// --- Inbound QoS 2 -----------------------------------------------------------------------------

TEST_F(SessionTest, InboundQos2DuplicateNotDeliveredUntilPubrel_MQTT_4_3_3_2) {
  Session session = Online(kDefaultLimits);
  EXPECT_EQ(session.BeginInboundQos2(7), InboundQos2::kNew);
  EXPECT_EQ(session.BeginInboundQos2(7), InboundQos2::kDuplicate)
      << "duplicate PUBLISH before PUBREL";
  EXPECT_EQ(session.BeginInboundQos2(8), InboundQos2::kNew);
  EXPECT_EQ(session.BeginInboundQos2(65'535), InboundQos2::kNew);
  EXPECT_EQ(session.BeginInboundQos2(8), InboundQos2::kDuplicate);
  EXPECT_TRUE(session.EndInboundQos2(7));
  EXPECT_FALSE(session.EndInboundQos2(7)) << "PUBREL repeated";
  EXPECT_EQ(session.BeginInboundQos2(7), InboundQos2::kNew) << "the id may be reused after PUBREL";
  EXPECT_EQ(session.BeginInboundQos2(8), InboundQos2::kDuplicate);
  EXPECT_EQ(session.BeginInboundQos2(65'535), InboundQos2::kDuplicate);
  EXPECT_TRUE(session.EndInboundQos2(8));
  EXPECT_TRUE(session.EndInboundQos2(65'535));
  EXPECT_TRUE(session.EndInboundQos2(7));
  EXPECT_EQ(session.inbound_qos2_pending(), 0u);
  EXPECT_FALSE(session.has_output()) << "inbound state writes nothing by itself";
}

TEST_F(SessionTest, InboundQos2EndOfUnknownIdReturnsFalse) {
  Session session = Online(kDefaultLimits);
  EXPECT_FALSE(session.EndInboundQos2(1)) << "no QoS 2 received yet";
  EXPECT_EQ(session.BeginInboundQos2(1), InboundQos2::kNew);
  EXPECT_FALSE(session.EndInboundQos2(2));
  EXPECT_TRUE(session.EndInboundQos2(1));
}

TEST_F(SessionTest, InboundQos2SurvivesReconnect_MQTT_4_3_3_2) {
  Session session = Online(kDefaultLimits);
  EXPECT_EQ(session.BeginInboundQos2(5), InboundQos2::kNew);
  session.Detach();
  session.Attach(false);
  EXPECT_EQ(session.BeginInboundQos2(5), InboundQos2::kDuplicate)
      << "the client resends the PUBLISH with DUP=1";
  EXPECT_TRUE(session.EndInboundQos2(5));
}

TEST_F(SessionTest, InboundQos2BeyondMaxPendingRefusedDuplicatesStillRecognised) {
  SessionLimits limits;
  limits.max_inbound_qos2 = 3;
  Session session = Online(limits);
  for (uint16_t id = 1; id <= 3; ++id) EXPECT_EQ(session.BeginInboundQos2(id), InboundQos2::kNew);
  EXPECT_EQ(session.BeginInboundQos2(4), InboundQos2::kLimit);
  EXPECT_EQ(session.inbound_qos2_pending(), 3u) << "a refused id is not remembered";
  EXPECT_EQ(session.BeginInboundQos2(2), InboundQos2::kDuplicate) << "at the cap, not beyond it";
  EXPECT_TRUE(session.EndInboundQos2(2));
  EXPECT_EQ(session.BeginInboundQos2(4), InboundQos2::kNew) << "room again after a PUBREL";
}

TEST_F(SessionTest, InboundQos2AllIdsPendingAtTheProtocolMaximum) {
  // Every id 1..65535 pending at once (a client pipelining its whole id space), then released:
  // each step is a hash-set operation, so this runs in milliseconds, not the minutes a linear
  // search over 65,535 ids per PUBLISH would take.
  Session session = Online(kDefaultLimits);
  for (uint32_t id = 1; id <= 65'535; ++id) {
    ASSERT_EQ(session.BeginInboundQos2(static_cast<uint16_t>(id)), InboundQos2::kNew) << id;
  }
  EXPECT_EQ(session.inbound_qos2_pending(), 65'535u);
  EXPECT_EQ(session.BeginInboundQos2(1), InboundQos2::kDuplicate);
  for (uint32_t id = 1; id <= 65'535; ++id) {
    ASSERT_TRUE(session.EndInboundQos2(static_cast<uint16_t>(id))) << id;
  }
  EXPECT_EQ(session.inbound_qos2_pending(), 0u);
}

// --- Subscriptions -----------------------------------------------------------------------------

TEST_F(SessionTest, SubscriptionAddedReplacedAndRemoved_MQTT_3_8_4_3) {
  Session session = Online(kDefaultLimits);
  EXPECT_EQ(session.AddSubscription("a/+", 1), SubscribeResult::kAdded);
  EXPECT_EQ(session.AddSubscription("a/#", 0), SubscribeResult::kAdded);
  EXPECT_EQ(session.AddSubscription("a/+", 2), SubscribeResult::kReplaced);
  EXPECT_EQ(session.subscription_count(), 2u);
  EXPECT_EQ(session.subscriptions().at("a/+").qos, 2) << "the new QoS replaces the old one";
  EXPECT_EQ(session.RemoveSubscription("a/+"), SubscriptionOptions{.qos = 2});
  EXPECT_EQ(session.RemoveSubscription("a/+"), std::nullopt) << "already gone";
  EXPECT_EQ(session.RemoveSubscription("a"), std::nullopt) << "filters compare exactly";
  EXPECT_EQ(session.subscription_count(), 1u);
  EXPECT_EQ(session.subscriptions().at("a/#").qos, 0);
}

TEST_F(SessionTest, NewSubscriptionBeyondMaxRefusedReplacementAllowed_MQTT_3_9_3) {
  SessionLimits limits;
  limits.max_subscriptions = 2;
  Session session = Online(limits);
  EXPECT_EQ(session.AddSubscription("x", 0), SubscribeResult::kAdded);
  EXPECT_EQ(session.AddSubscription("y", 0), SubscribeResult::kAdded);
  EXPECT_EQ(session.AddSubscription("z", 1), SubscribeResult::kLimit);
  EXPECT_EQ(session.subscription_count(), 2u);
  EXPECT_FALSE(session.subscriptions().contains("z"));
  EXPECT_EQ(session.AddSubscription("y", 2), SubscribeResult::kReplaced)
      << "a re-subscription never counts against the cap (MQTT-3.8.4-3)";
  EXPECT_EQ(session.RemoveSubscription("x"), SubscriptionOptions{.qos = 0});
  EXPECT_EQ(session.AddSubscription("z", 1), SubscribeResult::kAdded) << "room again";
}

TEST_F(SessionTest, ManySubscriptionsAddedAndRemovedInLinearTime) {
  // 200,000 distinct filters: with a linear search per filter this is 2 x 10^10 string
  // comparisons (minutes); with the hash map, well under a second.
  SessionLimits limits;
  limits.max_subscriptions = 200'000;
  Session session = Online(limits);
  for (int i = 0; i < 200'000; ++i) {
    ASSERT_EQ(session.AddSubscription("s/" + std::to_string(i), 1), SubscribeResult::kAdded);
  }
  EXPECT_EQ(session.AddSubscription("s/7", 2), SubscribeResult::kReplaced);
  EXPECT_EQ(session.AddSubscription("s/x", 2), SubscribeResult::kLimit);
  for (int i = 0; i < 200'000; ++i) {
    ASSERT_TRUE(session.RemoveSubscription("s/" + std::to_string(i)).has_value());
  }
  EXPECT_EQ(session.subscription_count(), 0u);
}

// --- WriteOutput budget and PUBLISH fields -----------------------------------------------------

TEST_F(SessionTest, WriteOutputStopsBeforeExceedingMaxBytes) {
  Session session = Online(kDefaultLimits);
  for (const char* payload : {"a", "b", "c"}) Add(session, payload, 0);
  // Every packet is "t/x" plus a one-byte payload at QoS 0: 2 + 2 + 3 + 1 bytes.
  constexpr size_t kPacketSize = 8;
  Written written = Write(session, 3 * kPacketSize - 1);
  EXPECT_EQ(written.returned, 2 * kPacketSize);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(session.has_output());
  written = Write(session, kPacketSize);  // exactly fits
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"c"}));
  EXPECT_FALSE(session.has_output());
}

TEST_F(SessionTest, WriteOutputAppendsWithinMaxBytesOfWholeBuffer) {
  Session session = Online(kDefaultLimits);
  Add(session, "a", 0);
  Add(session, "b", 0);
  constexpr size_t kPacketSize = 8;
  Bytes out = {0x20, 0x02, 0x00, 0x00};  // a CONNACK already waiting
  // max_bytes bounds out.size(), not just the bytes appended.
  EXPECT_EQ(session.WriteOutput(out, 4 + kPacketSize + 1), kPacketSize);
  ASSERT_EQ(out.size(), 4 + kPacketSize);
  const std::vector<mqtt::Packet> packets = DecodeAll(out);
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<mqtt::Connack>(packets[0]));
  EXPECT_EQ(std::get<mqtt::Publish>(packets[1]).payload, "a");
  EXPECT_EQ(session.WriteOutput(out, 4), 0u) << "out already over budget and not empty";
  EXPECT_EQ(out.size(), 4 + kPacketSize);
}

TEST_F(SessionTest, WriteOutputWritesOneOversizedMessageWhenOutEmpty) {
  Session session = Online(kDefaultLimits);
  const std::string big(1000, 'x');
  Add(session, big, 1);
  Add(session, "small", 0);
  Written written = Write(session, 10);
  ASSERT_EQ(written.packets.size(), 1u) << "progress: the oversized one alone";
  EXPECT_GT(written.bytes.size(), 1000u);
  EXPECT_EQ(PublishAt(written, 0).payload, big);
  written = Write(session, 10);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"small"}));
  EXPECT_TRUE(session.OnPuback(1));
}

TEST_F(SessionTest, RetainFlagAndQosAreWhatEnqueueWasGiven_MQTT_3_3_1_8) {
  Session session = Online(kDefaultLimits);
  // Published at QoS 2 with RETAIN; delivered at the granted QoS, with the RETAIN given.
  session.Enqueue(NewMessage("r1", 2, /*retain=*/true), 1, /*retain=*/true);
  session.Enqueue(NewMessage("r0", 2, /*retain=*/true), 0, /*retain=*/false);
  session.Enqueue(NewMessage("n2", 2, /*retain=*/false), 2, /*retain=*/false);
  session.Enqueue(NewMessage("r2", 2, /*retain=*/false), 2, /*retain=*/true);
  const Written written = Write(session);
  ASSERT_EQ(written.packets.size(), 4u);
  EXPECT_EQ(PublishAt(written, 0).qos, mqtt::QoS::k1);
  EXPECT_TRUE(PublishAt(written, 0).retain);
  EXPECT_EQ(PublishAt(written, 1).qos, mqtt::QoS::k0);
  EXPECT_FALSE(PublishAt(written, 1).retain) << "MQTT-3.3.1-9: RETAIN 0 for a live delivery";
  EXPECT_EQ(PublishAt(written, 2).qos, mqtt::QoS::k2);
  EXPECT_FALSE(PublishAt(written, 2).retain);
  EXPECT_EQ(PublishAt(written, 3).qos, mqtt::QoS::k2);
  EXPECT_TRUE(PublishAt(written, 3).retain);
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{1, 0, 2, 3}));

  // RETAIN survives the resend.
  session.Detach();
  session.Attach(false);
  const Written resent = Write(session);
  ASSERT_EQ(resent.packets.size(), 3u);
  EXPECT_TRUE(PublishAt(resent, 0).retain);
  EXPECT_EQ(PublishAt(resent, 0).qos, mqtt::QoS::k1);
  EXPECT_FALSE(PublishAt(resent, 1).retain);
  EXPECT_TRUE(PublishAt(resent, 2).retain);
}

// --- Ordering ----------------------------------------------------------------------------------

TEST_F(SessionTest, Qos0BehindBlockedQos1WaitsToKeepOrder_MQTT_4_6_0_6) {
  Session session = Online(Limits(1));
  Add(session, "a", 1);
  Add(session, "b", 1);
  Add(session, "c", 0);
  Add(session, "d", 1);
  Add(session, "e", 0);
  Written written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"a"}));
  EXPECT_FALSE(session.has_output()) << "c must not overtake b";
  EXPECT_TRUE(Write(session).bytes.empty());

  EXPECT_TRUE(session.OnPuback(1));
  written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"b", "c"}));
  EXPECT_FALSE(session.has_output()) << "d waits for the window, and e behind it";

  EXPECT_TRUE(session.OnPuback(2));
  written = Write(session);
  EXPECT_EQ(Payloads(written), (std::vector<std::string>{"d", "e"}));
  EXPECT_EQ(PublishIds(written), (std::vector<uint16_t>{3, 0}));
  EXPECT_TRUE(session.OnPuback(3));
  EXPECT_EQ(session.queued_messages(), 0u);
  EXPECT_EQ(session.queued_bytes(), 0u);
}

TEST_F(SessionTest, DestroyingSessionReleasesQueuedAndInflightMessages) {
  {
    Session session = Online(Limits(2));
    Add(session, "a", 1);
    Add(session, "b", 2);
    Add(session, "c", 1);
    Add(session, "d", 0);
    Write(session);
    EXPECT_EQ(session.inflight(), 2u);
    EXPECT_EQ(session.queued_messages(), 2u);
    EXPECT_EQ(frees, 0);
  }
  EXPECT_EQ(frees, 4);
}

// A session keeps small rings while it is online (no allocation per message for a subscriber
// that keeps up) and gives them back when its connection goes: an idle offline session holds no
// ring. Measured with the memory budget, which every ring's storage is charged to.
TEST_F(SessionTest, DrainedRingsKeptOnlineAndReleasedOnDetach) {
  memory::Account account;
  memory::BindThreadAccount(&account);
  {
    Session session = Online(kDefaultLimits);
    Add(session, "a", 1);
    Write(session);
    ASSERT_TRUE(session.OnPuback(1));
    ASSERT_EQ(session.queued_messages() + session.inflight(), 0u);
    EXPECT_EQ(frees, 1);
    EXPECT_GT(account.Load(), 0) << "the drained queue and window keep their rings";
    session.Detach();
    EXPECT_EQ(account.Load(), 0) << "offline: no ring held";
  }
  memory::BindThreadAccount(nullptr);
}

}  // namespace
}  // namespace ringmq::session
