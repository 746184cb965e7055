// Message: the documented single-allocation layout, wire accounting that matches the codec,
// reference counting that frees exactly once (also across threads), and MessageRef ownership.
#include "message/message.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/bytes.h"
#include "common/sanitizers.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"

namespace ringmq::message {
namespace {

using Bytes = std::vector<uint8_t>;

// Counts frees through the test hook; installed for the duration of each test.
std::atomic<int> frees{0};
std::atomic<const Message*> last_freed{nullptr};

void CountFree(const Message* message) {
  frees.fetch_add(1, std::memory_order_relaxed);
  last_freed.store(message, std::memory_order_relaxed);
}

class MessageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    frees = 0;
    last_freed = nullptr;
    Message::SetFreeHookForTesting(&CountFree);
  }
  void TearDown() override { Message::SetFreeHookForTesting(nullptr); }
};

TEST_F(MessageTest, FieldsAndContiguousLayout) {
  Message* message = Message::Create("a/b", AsBytes("hello"), 1, true);
  EXPECT_EQ(message->topic(), "a/b");
  EXPECT_EQ(AsText(message->payload()), "hello");
  EXPECT_EQ(message->qos(), 1);
  EXPECT_TRUE(message->retain());
  EXPECT_EQ(message->references_for_testing(), 1u);

  // Header, length prefix, topic, payload: one block, in that order.
  const auto* base = reinterpret_cast<const uint8_t*>(message);
  const std::span<const uint8_t> encoded = message->encoded_topic();
  EXPECT_EQ(encoded.data(), base + sizeof(Message));
  EXPECT_EQ(Bytes(encoded.begin(), encoded.end()), (Bytes{0x00, 0x03, 'a', '/', 'b'}));
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(message->topic().data()), encoded.data() + 2);
  EXPECT_EQ(message->payload().data(), encoded.data() + encoded.size());
  message->Release();
  EXPECT_EQ(frees, 1);
}

TEST_F(MessageTest, OriginStampIsKeptAndDefaultsToUnstamped) {
  MessageRef stamped = MessageRef::Create(
      "t", AsBytes("p"), 1, false, Message::Origin{.shard = 7, .sequence = 1'234'567'890'123});
  EXPECT_EQ(stamped->origin_shard(), 7);
  EXPECT_EQ(stamped->sequence(), 1'234'567'890'123u);
  EXPECT_EQ(stamped->topic(), "t");
  MessageRef unstamped = MessageRef::Create("t", AsBytes("p"), 1, false);
  EXPECT_EQ(unstamped->origin_shard(), 0);
  EXPECT_EQ(unstamped->sequence(), 0u);
}

TEST_F(MessageTest, TopicLengthPrefixIsBigEndian) {
  for (const size_t size : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{255},
                            size_t{256}, size_t{300}, size_t{65'535}}) {
    const std::string topic(size, 't');
    MessageRef message = MessageRef::Create(topic, {}, 0, false);
    const std::span<const uint8_t> encoded = message->encoded_topic();
    ASSERT_EQ(encoded.size(), size + 2);
    EXPECT_EQ(encoded[0], size >> 8) << size;
    EXPECT_EQ(encoded[1], size & 0xff) << size;
    EXPECT_EQ(message->topic(), topic);
    EXPECT_TRUE(message->payload().empty());
  }
  EXPECT_EQ(frees, 8);
}

TEST_F(MessageTest, PayloadBytesAreCopied) {
  Bytes payload(4096);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  MessageRef message = MessageRef::Create("sensors/42", payload, 2, false);
  const Bytes expected = payload;
  payload.assign(payload.size(), 0);  // the message does not view the caller's buffer
  EXPECT_EQ(Bytes(message->payload().begin(), message->payload().end()), expected);
  EXPECT_EQ(message->qos(), 2);
  EXPECT_FALSE(message->retain());
}

// The layout of the header comment (per-delivery fixed header and packet id from
// EncodePublishHeader around the Message's encoded_topic() and payload()) reproduces exactly what
// Encode writes for the whole packet.
void ExpectGatherMatchesEncode(const Message& message, uint8_t delivery_qos) {
  const mqtt::Publish publish{.topic = message.topic(),
                              .payload = AsText(message.payload()),
                              .qos = static_cast<mqtt::QoS>(delivery_qos),
                              .retain = message.retain(),
                              .dup = false,
                              .packet_id = static_cast<uint16_t>(delivery_qos > 0 ? 0x1234 : 0)};
  Bytes whole(mqtt::EncodedSize(publish));
  ASSERT_EQ(mqtt::Encode(publish, whole), whole.size());
  EXPECT_LE(whole.size(), message.wire_bytes());

  Bytes header(mqtt::PublishHeaderMaxSize(message.topic().size()));
  const size_t header_size = mqtt::EncodePublishHeader(publish, header);
  const size_t packet_id_size = delivery_qos > 0 ? 2 : 0;
  const size_t fixed_size = header_size - message.encoded_topic().size() - packet_id_size;

  Bytes gathered(header.begin(), header.begin() + static_cast<ptrdiff_t>(fixed_size));
  gathered.insert(gathered.end(), message.encoded_topic().begin(), message.encoded_topic().end());
  const auto packet_id = header.begin() + static_cast<ptrdiff_t>(header_size - packet_id_size);
  gathered.insert(gathered.end(), packet_id, packet_id + static_cast<ptrdiff_t>(packet_id_size));
  gathered.insert(gathered.end(), message.payload().begin(), message.payload().end());
  EXPECT_EQ(gathered, whole);

  const mqtt::Frame frame = mqtt::PeekFrame(whole, mqtt::kMaxRemainingLength + 5);
  ASSERT_EQ(frame.status, mqtt::FrameStatus::kComplete);
  EXPECT_EQ(frame.header.header_length, fixed_size);
  EXPECT_EQ(frame.header.remaining_length, message.RemainingLength(delivery_qos));
}

TEST_F(MessageTest, GatherListMatchesWholePacketEncoding) {
  for (const size_t topic_size : {size_t{1}, size_t{100}, size_t{1000}}) {
    for (const size_t payload_size : {size_t{0}, size_t{10}, size_t{200}, size_t{20'000}}) {
      Bytes payload(payload_size);
      for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i);
      for (uint8_t qos = 0; qos <= 2; ++qos) {
        MessageRef message = MessageRef::Create(std::string(topic_size, 'x'), payload, qos, true);
        for (uint8_t delivery_qos = 0; delivery_qos <= qos; ++delivery_qos) {
          SCOPED_TRACE(testing::Message()
                       << "topic " << topic_size << " payload " << payload_size << " qos "
                       << int{qos} << " delivery " << int{delivery_qos});
          ExpectGatherMatchesEncode(*message, delivery_qos);
        }
      }
    }
  }
}

TEST_F(MessageTest, WireBytesIsTopicPayloadAndWorstCaseHeader) {
  MessageRef message = MessageRef::Create("abc", AsBytes("0123456789"), 0, false);
  EXPECT_EQ(message->wire_bytes(), mqtt::PublishHeaderMaxSize(3) + 10);
  EXPECT_EQ(message->wire_bytes(), 5u + 2u + 3u + 2u + 10u);
  EXPECT_EQ(message->RemainingLength(0), 2u + 3u + 10u);
}

TEST_F(MessageTest, ReleaseFreesExactlyOnceAtZero) {
  Message* message = Message::Create("t", AsBytes("p"), 0, false);
  message->AddRef(3);
  EXPECT_EQ(message->references_for_testing(), 4u);
  message->AddRef(0);
  message->Release(2);
  EXPECT_EQ(frees, 0);
  message->Release();
  EXPECT_EQ(frees, 0);
  EXPECT_EQ(message->references_for_testing(), 1u);
  message->Release();
  EXPECT_EQ(frees, 1);
  EXPECT_EQ(last_freed, message);
}

TEST_F(MessageTest, ConcurrentReleasesFreeOnceAfterEveryRead) {
  constexpr int kThreads = 4;
  const int kRounds = kSanitized ? 200 : 2000;  // thread start-up dominates under sanitizers
  for (int round = 0; round < kRounds; ++round) {
    Message* message = Message::Create("shared/topic", AsBytes("payload"), 1, false);
    message->AddRef(kThreads - 1);
    std::vector<std::thread> threads;
    std::atomic<int> bad_reads{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([message, &bad_reads] {
        if (message->topic() != "shared/topic" || AsText(message->payload()) != "payload") {
          bad_reads.fetch_add(1, std::memory_order_relaxed);
        }
        message->Release();
      });
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_EQ(bad_reads, 0);
    ASSERT_EQ(frees, round + 1);
  }
}

TEST_F(MessageTest, RefDefaultIsEmpty) {
  MessageRef ref;
  EXPECT_FALSE(ref);
  EXPECT_EQ(ref.get(), nullptr);
  EXPECT_EQ(ref.release(), nullptr);
  ref.reset();
  EXPECT_EQ(frees, 0);
}

TEST_F(MessageTest, RefMoveTransfersTheReference) {
  MessageRef a = MessageRef::Create("t", {}, 0, false);
  Message* raw = a.get();
  MessageRef b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(b.get(), raw);
  EXPECT_EQ(raw->references_for_testing(), 1u);

  MessageRef c;
  c = std::move(b);
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.get(), raw);
  EXPECT_EQ(raw->references_for_testing(), 1u);
  EXPECT_EQ(frees, 0);
  c.reset();
  EXPECT_FALSE(c);
  EXPECT_EQ(frees, 1);
}

TEST_F(MessageTest, RefMoveAssignmentDropsTheOldTarget) {
  MessageRef a = MessageRef::Create("a", {}, 0, false);
  MessageRef b = MessageRef::Create("b", {}, 0, false);
  Message* old_a = a.get();
  a = std::move(b);
  EXPECT_EQ(frees, 1);
  EXPECT_EQ(last_freed, old_a);
  EXPECT_EQ(a->topic(), "b");
  MessageRef& alias = a;
  a = std::move(alias);  // self-move keeps the reference
  EXPECT_EQ(a->topic(), "b");
  EXPECT_EQ(frees, 1);
}

TEST_F(MessageTest, RefShareAddsAndReleaseHandsOffWithoutDropping) {
  MessageRef owner = MessageRef::Create("t", AsBytes("x"), 1, false);
  {
    MessageRef shared = MessageRef::Share(owner.get());
    EXPECT_EQ(owner->references_for_testing(), 2u);
  }
  EXPECT_EQ(owner->references_for_testing(), 1u);

  // Through a "mailbox": release() on one side, Adopt on the other; the count never changes.
  MessageRef sender = MessageRef::Share(owner.get());
  Message* in_flight = sender.release();
  EXPECT_FALSE(sender);
  EXPECT_EQ(owner->references_for_testing(), 2u);
  {
    MessageRef receiver = MessageRef::Adopt(in_flight);
    EXPECT_EQ(owner->references_for_testing(), 2u);
  }
  EXPECT_EQ(owner->references_for_testing(), 1u);
  EXPECT_EQ(frees, 0);
  owner.reset();
  EXPECT_EQ(frees, 1);
}

// A mailbox record's deliveries: the record's reference plus the others, made in one step.
TEST_F(MessageTest, RefBatchAdoptsOwnedReferencesAndAddsTheRestAtOnce) {
  MessageRef owner = MessageRef::Create("t", AsBytes("x"), 1, false);
  owner->AddRef();  // the record's
  std::vector<MessageRef> queued;
  {
    MessageRefBatch batch(owner.get(), /*owned=*/1, /*wanted=*/3);
    EXPECT_EQ(batch.left(), 3u);
    EXPECT_EQ(owner->references_for_testing(), 4u);
    queued.push_back(batch.Take());
    queued.push_back(batch.Take());
    EXPECT_EQ(batch.left(), 1u);
    EXPECT_EQ(owner->references_for_testing(), 4u) << "taking moves a reference, adds none";
  }
  EXPECT_EQ(owner->references_for_testing(), 3u) << "the one not taken is dropped";
  queued.clear();
  owner.reset();
  EXPECT_EQ(frees, 1);
}

TEST_F(MessageTest, RefBatchWantingNoMoreThanOwnedAddsNothing) {
  Message* message = Message::Create("t", {}, 0, false);
  message->AddRef(2);  // three references, all handed to the batch
  {
    MessageRefBatch batch(message, /*owned=*/3, /*wanted=*/1);
    EXPECT_EQ(batch.left(), 3u);
    EXPECT_EQ(message->references_for_testing(), 3u);
    MessageRef taken = batch.Take();
    EXPECT_EQ(frees, 0);
  }
  EXPECT_EQ(frees, 1) << "the batch held the last references";
}

TEST_F(MessageTest, RefBatchWithNothingTakenFreesAMessageOnlyItHeld) {
  Message* message = Message::Create("t", {}, 0, false);
  { MessageRefBatch batch(message, /*owned=*/1, /*wanted=*/5); }
  EXPECT_EQ(frees, 1);
}

TEST(MessageDeathTest, TopicLongerThan65535Asserts) {
  const std::string topic(65'536, 't');
  EXPECT_DEATH(Message::Create(topic, {}, 0, false), "assertion failed");
}

TEST(MessageDeathTest, QosAbove2Asserts) {
  EXPECT_DEATH(Message::Create("t", {}, 3, false), "assertion failed");
}

TEST(MessageDeathTest, DeliveryAboveThePublishersQosAsserts) {
  MessageRef message = MessageRef::Create("t", {}, 1, false);
  EXPECT_DEATH(message->RemainingLength(2), "assertion failed");
}

TEST(MessageDeathTest, ReleasingMoreThanHeldAsserts) {
  MessageRef message = MessageRef::Create("t", {}, 0, false);
  EXPECT_DEATH(message->Release(2), "assertion failed");
}

// ---- MQTT 5.0 fields ---------------------------------------------------------------------------

TEST_F(MessageTest, PropertiesAndExpiryFollowThePayloadInTheOneAllocation) {
  const Bytes properties = {0x03, 0x00, 0x01, 'x', 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v'};
  Message* message =
      Message::Create("a/b", AsBytes("hello"), 1, false, {},
                      Mqtt5Fields{.properties = properties, .expiry_deadline_ms = 1'234'567});
  const auto* base = reinterpret_cast<const uint8_t*>(message);
  EXPECT_EQ(message->payload().data(), base + sizeof(Message) + 2 + 3);
  // The deadline's 8 bytes lie between the payload and the properties.
  EXPECT_EQ(message->properties().data(), message->payload().data() + 5 + 8);
  EXPECT_EQ(Bytes(message->properties().begin(), message->properties().end()), properties);
  EXPECT_TRUE(message->has_expiry());
  EXPECT_EQ(message->expiry_deadline_ms(), 1'234'567u);
  EXPECT_FALSE(message->ExpiredAt(1'234'566));
  EXPECT_TRUE(message->ExpiredAt(1'234'567));
  EXPECT_EQ(message->allocation_bytes(), sizeof(Message) + 2 + 3 + 5 + 8 + properties.size());
  message->Release();
  EXPECT_EQ(frees, 1);
}

TEST_F(MessageTest, A311MessageHasNoPropertiesNoExpiryAndNoExtraBytes) {
  MessageRef message = MessageRef::Create("a/b", AsBytes("hello"), 1, false);
  EXPECT_TRUE(message->properties().empty());
  EXPECT_FALSE(message->has_expiry());
  EXPECT_EQ(message->expiry_deadline_ms(), 0u);
  EXPECT_FALSE(message->ExpiredAt(UINT64_MAX));
  EXPECT_EQ(message->allocation_bytes(), sizeof(Message) + 2 + 3 + 5);
  EXPECT_EQ(sizeof(Message), 40u);
}

TEST_F(MessageTest, PropertiesWithoutExpiry) {
  const Bytes properties = {0x01, 0x01};  // Payload Format Indicator 1
  MessageRef message =
      MessageRef::Create("t", AsBytes("p"), 0, false, {}, Mqtt5Fields{.properties = properties});
  EXPECT_FALSE(message->has_expiry());
  EXPECT_EQ(message->properties().data(), message->payload().data() + 1);
  EXPECT_EQ(Bytes(message->properties().begin(), message->properties().end()), properties);
  // The queued-bytes charge covers the properties and their length.
  EXPECT_EQ(message->wire_bytes(),
            MessageRef::Create("t", AsBytes("p"), 0, false)->wire_bytes() + 2 + 4);
}

TEST_F(MessageTest, PublisherIdentityForNoLocal) {
  MessageRef message = MessageRef::Create(
      "t", AsBytes("p"), 0, false,
      Message::Origin{.shard = 2, .sequence = 5, .session = 17, .generation = 3});
  EXPECT_TRUE(message->PublishedBy(2, 17, 3));
  EXPECT_FALSE(message->PublishedBy(1, 17, 3)) << "another shard's slot 17";
  EXPECT_FALSE(message->PublishedBy(2, 18, 3));
  EXPECT_FALSE(message->PublishedBy(2, 17, 4)) << "a later session in the same slot";
  MessageRef broker = MessageRef::Create("t", AsBytes("p"), 0, false, {.shard = 2});
  EXPECT_FALSE(broker->PublishedBy(2, Message::Origin::kNoSession, 0)) << "no publisher";
}

}  // namespace
}  // namespace ringmq::message
