// Proves that delivering a message allocates nothing once a broker is warm: over the whole
// steady-state path (PUBLISH decoded, trie match, enqueue, mailbox push and drain across shards,
// encode into the output buffer, PUBACK / PUBREC / PUBREL / PUBCOMP applied on both sides), the
// only allocation per PUBLISH is its Message, whatever the number of deliveries.
//
// Two shards (tests/shard/router_harness.h), a publisher and three subscribers on each, every
// subscriber matching every message: each PUBLISH is delivered six times, three of them across
// shards, in both directions. The publisher of shard 1 and the first subscriber of each shard
// speak MQTT 5.0: that publisher's messages carry properties (a User Property and a Message
// Expiry Interval), and those subscribers' subscriptions have delivery options (No Local and a
// Subscription Identifier), so the 5.0 encoding and MatchDelivery are on the counted path. After a
// warm-up (rings, match scratch, mailbox and output buffers reach their size) every allocation is
// counted while a thousand more messages flow.
//
// How allocations are counted: this file replaces malloc (and its family) with functions that
// count and forward to glibc's, so that operator new (libstdc++'s calls malloc) and the direct
// malloc of Message::Create are both seen. Under ASan or TSan, whose runtimes own malloc, it
// replaces operator new and delete instead; Message::Create is not counted there and the
// expected count is 0. Either way every Message freed is counted with Message's free hook, so a
// counted allocation cannot hide behind a message that was never freed.
//
// The replacements apply to the whole executable, so this file is its own test binary
// (tests/shard/meson.build), not part of ringmq_unit_tests.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "common/log.h"
#include "message/message.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "router_harness.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RINGMQ_COUNT_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RINGMQ_COUNT_MALLOC 0
#endif
#endif
#ifndef RINGMQ_COUNT_MALLOC
#define RINGMQ_COUNT_MALLOC 1
#endif

#if RINGMQ_COUNT_MALLOC
#define RINGMQ_COUNTING_NEW_COUNTERS_ONLY  // malloc itself is replaced below
#endif
#include "../common/counting_new.h"

using alloc_counting::AllocationsDuring;
using alloc_counting::CountAllocation;

#if RINGMQ_COUNT_MALLOC

// glibc's own allocator, which a replacement malloc may call (glibc manual, "Replacing malloc").
// Functions left out here (malloc_usable_size, reallocarray, ...) keep working on the same heap.
extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* pointer, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
void __libc_free(void* pointer);

void* malloc(size_t size) noexcept {
  CountAllocation();
  return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) noexcept {
  CountAllocation();
  return __libc_calloc(count, size);
}
void* realloc(void* pointer, size_t size) noexcept {
  CountAllocation();
  return __libc_realloc(pointer, size);
}
void* memalign(size_t alignment, size_t size) noexcept {
  CountAllocation();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(size_t alignment, size_t size) noexcept {
  CountAllocation();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** pointer, size_t alignment, size_t size) noexcept {
  CountAllocation();
  *pointer = __libc_memalign(alignment, size);
  return *pointer == nullptr ? ENOMEM : 0;
}
void free(void* pointer) noexcept { __libc_free(pointer); }
}  // extern "C"

constexpr bool kCountsMessages = true;

#else  // sanitizers: operator new is counted (tests/common/counting_new.h)

constexpr bool kCountsMessages = false;

#endif  // RINGMQ_COUNT_MALLOC

namespace ringmq::shard {
namespace {

using harness::Client;
using harness::RouterHarness;

std::atomic<size_t> messages_freed{0};

void CountFree(const message::Message*) { messages_freed.fetch_add(1, std::memory_order_relaxed); }

// Guards the check itself: both kinds of allocation made while armed are counted.
TEST(SteadyStateNoAllocTest, CounterSeesAllocations) {
  EXPECT_EQ(alloc_counting::AllocationsOfOneNew(), 1u);
  const size_t allocations = AllocationsDuring(
      [] { message::MessageRef message = message::MessageRef::Create("t", {}, 0, false); });
  EXPECT_EQ(allocations, kCountsMessages ? 1u : 0u);
}

constexpr int kSubscribersPerShard = 3;
constexpr int kWarmUpMessages = 800;
constexpr int kCountedMessages = 1'000;

// The publishers' QoS, and how many PUBLISHes each sends before the broker runs an iteration
// (1: every subscriber keeps up message by message; more: rings hold several at once).
struct Flow {
  mqtt::QoS qos = mqtt::QoS::k0;
  int burst = 1;
};

class SteadyStateNoAllocTest : public testing::TestWithParam<Flow> {
 protected:
  void SetUp() override {
    SetLogLevel(LogLevel::kError);
    harness_ = std::make_unique<RouterHarness>(Config{}, 2);
    for (uint32_t shard = 0; shard < 2; ++shard) {
      publishers_.push_back(&harness_->Connect(Connect(harness_->IdOn(shard, "publisher"),
                                                       /*mqtt5=*/shard == 1)));
      for (int i = 0; i < kSubscribersPerShard; ++i) {
        Client& subscriber = harness_->Connect(
            Connect(harness_->IdOn(shard, "sub" + std::to_string(i)), /*mqtt5=*/i == 0));
        if (i == 0) {
          harness_->Subscribe5(
              subscriber,
              mqtt::TopicRequest{
                  .filter = "sensors/+/temperature", .qos = mqtt::QoS::k2, .no_local = true},
              /*identifier=*/7);
        } else {
          harness_->Subscribe(subscriber, "sensors/+/temperature", mqtt::QoS::k2);
        }
        subscribers_.push_back(&subscriber);
      }
    }
    // Pre-encoded: the publishers' own bytes are not the broker's allocations. Packet ids are
    // free again after each round (its handshakes complete before the next).
    const std::string payload(64, 'x');
    uint8_t properties[64] = {};
    size_t properties_size = mqtt::EncodeUserProperty("unit", "celsius", properties);
    properties_size +=
        mqtt::EncodeIntegerProperty(mqtt::PropertyId::kMessageExpiryInterval, 3600,
                                    std::span<uint8_t>(properties).subspan(properties_size));
    for (int i = 0; i < GetParam().burst; ++i) {
      const auto packet_id = static_cast<uint16_t>(GetParam().qos == mqtt::QoS::k0 ? 0 : i + 1);
      publishes_.push_back(
          harness::PublishBytes("sensors/7/temperature", payload, GetParam().qos, packet_id));
      mqtt::Publish publish5{
          .topic = "sensors/7/temperature",
          .payload = payload,
          .qos = GetParam().qos,
          .packet_id = packet_id,
          .properties = mqtt::Properties(std::span<const uint8_t>(properties, properties_size))};
      harness::Bytes bytes(mqtt::EncodedSize(publish5, mqtt::ProtocolLevel::kMqtt5));
      mqtt::Encode(publish5, bytes, mqtt::ProtocolLevel::kMqtt5);
      publishes5_.push_back(std::move(bytes));
    }
    message::Message::SetFreeHookForTesting(&CountFree);
  }
  void TearDown() override {
    message::Message::SetFreeHookForTesting(nullptr);
    harness_.reset();
    SetLogLevel(LogLevel::kInfo);
  }

  static mqtt::Connect Connect(const std::string& client_id, bool mqtt5) {
    mqtt::Connect connect = harness::ConnectPacket(client_id);
    if (mqtt5) connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
    return connect;
  }

  // Each publisher sends a burst; the broker and the clients then run until all is delivered
  // and acknowledged.
  void Round() {
    for (Client* publisher : publishers_) {
      const bool mqtt5 = publisher->connection.level() == mqtt::ProtocolLevel::kMqtt5;
      for (const harness::Bytes& publish : mqtt5 ? publishes5_ : publishes_) {
        harness_->Send(*publisher, publish);
      }
    }
    harness_->Settle();
  }

  uint64_t Deliveries() const {
    uint64_t deliveries = 0;
    for (const Client* subscriber : subscribers_) {
      deliveries += subscriber->publishes_by_qos[static_cast<size_t>(GetParam().qos)];
    }
    return deliveries;
  }

  std::unique_ptr<RouterHarness> harness_;
  std::vector<Client*> publishers_;
  std::vector<Client*> subscribers_;
  std::vector<harness::Bytes> publishes_;   // 3.1.1
  std::vector<harness::Bytes> publishes5_;  // 5.0, with properties
};

TEST_P(SteadyStateNoAllocTest, NoAllocationPerDelivery) {
  const int messages_per_round = 2 * GetParam().burst;
  for (int round = 0; round < kWarmUpMessages / messages_per_round; ++round) Round();
  const uint64_t deliveries_before = Deliveries();
  ASSERT_EQ(deliveries_before, uint64_t{kWarmUpMessages} * 2 * kSubscribersPerShard)
      << "every subscriber gets every message";

  messages_freed.store(0);
  const size_t allocations = AllocationsDuring([&] {
    for (int round = 0; round < kCountedMessages / messages_per_round; ++round) Round();
  });

  const uint64_t messages = kCountedMessages;
  const uint64_t deliveries = Deliveries() - deliveries_before;
  EXPECT_EQ(deliveries, messages * 2 * kSubscribersPerShard);
  EXPECT_EQ(messages_freed.load(), messages) << "every message delivered, acknowledged, freed";
  EXPECT_EQ(allocations, kCountsMessages ? messages : 0)
      << "one allocation per PUBLISH (its Message) and none per delivery: " << allocations
      << " allocations for " << messages << " messages, " << deliveries << " deliveries";
  for (const Client* subscriber : subscribers_) {
    EXPECT_EQ(subscriber->connection.state(), net::Connection::State::kOpen);
  }
  uint64_t sent = 0;
  for (uint32_t shard = 0; shard < 2; ++shard) {
    const metrics::ShardCounters& counters = harness_->counters(shard);
    sent += counters.publish_sent_qos0.Load() + counters.publish_sent_qos1.Load() +
            counters.publish_sent_qos2.Load();
  }
  EXPECT_EQ(sent, Deliveries());
  EXPECT_GT(harness_->counters(0).publish_sent_mqtt5.Load() +
                harness_->counters(1).publish_sent_mqtt5.Load(),
            0u)
      << "5.0 deliveries were on the counted path";
}

INSTANTIATE_TEST_SUITE_P(Flows, SteadyStateNoAllocTest,
                         testing::Values(Flow{mqtt::QoS::k0, 1}, Flow{mqtt::QoS::k1, 1},
                                         Flow{mqtt::QoS::k2, 1}, Flow{mqtt::QoS::k0, 4},
                                         Flow{mqtt::QoS::k1, 4}, Flow{mqtt::QoS::k2, 4}),
                         [](const testing::TestParamInfo<Flow>& info) {
                           return "Qos" + std::to_string(static_cast<int>(info.param.qos)) +
                                  "Burst" + std::to_string(info.param.burst);
                         });

}  // namespace
}  // namespace ringmq::shard
