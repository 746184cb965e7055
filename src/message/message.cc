#include "message/message.h"

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "memory/budget.h"
#include "mqtt/codec.h"

namespace ringmq::message {
namespace {

std::atomic<Message::FreeHook> free_hook{nullptr};

}  // namespace

Message* Message::Create(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos,
                         bool retain, Origin origin, const Mqtt5Fields& mqtt5) {
  RINGMQ_ASSERT(topic.size() <= kMaxTopicSize);
  RINGMQ_ASSERT(payload.size() <= kMaxPayloadSize);
  RINGMQ_ASSERT(qos <= 2);
  // The PUBLISH this came in (topic length, topic, packet id if QoS > 0, payload) had a valid
  // remaining length; a message that could not have been received is a programmer error.
  RINGMQ_ASSERT(kTopicLengthSize + topic.size() + (qos > 0 ? 2 : 0) + payload.size() <=
                mqtt::kMaxRemainingLength);
  // The properties came in the same packet (or in the CONNECT that held the will).
  RINGMQ_ASSERT(mqtt5.properties.size() <= mqtt::kMaxRemainingLength);
  const bool has_expiry = mqtt5.expiry_deadline_ms != 0;

  const size_t total = sizeof(Message) + kTopicLengthSize + topic.size() + payload.size() +
                       (has_expiry ? kExpirySize : 0) + mqtt5.properties.size();
  // malloc, not operator new, so that malloc_usable_size() is defined for it: what is charged
  // is what the allocator set aside (its size class), not only what was asked for.
  void* storage = std::malloc(total);
  if (storage == nullptr) throw std::bad_alloc();
  memory::Charge(static_cast<int64_t>(malloc_usable_size(storage)));  // credited in Destroy
  auto* message = new (storage)
      Message(static_cast<uint16_t>(topic.size()), static_cast<uint32_t>(payload.size()),
              static_cast<uint32_t>(mqtt5.properties.size()), qos, retain, has_expiry, origin);
  uint8_t* bytes = message->mutable_bytes();
  bytes[0] = static_cast<uint8_t>(topic.size() >> 8);
  bytes[1] = static_cast<uint8_t>(topic.size() & 0xff);
  if (!topic.empty()) std::memcpy(bytes + kTopicLengthSize, topic.data(), topic.size());
  if (!payload.empty()) {
    std::memcpy(bytes + kTopicLengthSize + topic.size(), payload.data(), payload.size());
  }
  if (has_expiry) {
    std::memcpy(bytes + message->expiry_offset(), &mqtt5.expiry_deadline_ms, kExpirySize);
  }
  if (!mqtt5.properties.empty()) {
    std::memcpy(bytes + message->properties_offset(), mqtt5.properties.data(),
                mqtt5.properties.size());
  }
  return message;
}

uint64_t Message::expiry_deadline_ms() const {
  if (!has_expiry_) return 0;
  uint64_t deadline = 0;
  std::memcpy(&deadline, bytes() + expiry_offset(), kExpirySize);
  return deadline;
}

size_t Message::allocation_bytes() const {
  return sizeof(Message) + properties_offset() + properties_size_;
}

uint64_t Message::wire_bytes() const {
  // A Property Length is at most 4 bytes (§2.2.2.1).
  return mqtt::PublishHeaderMaxSize(topic_size_) + payload_size_ +
         (properties_size_ != 0 ? properties_size_ + 4 : 0);
}

uint32_t Message::RemainingLength(uint8_t delivery_qos) const {
  RINGMQ_ASSERT(delivery_qos <= qos_);
  return static_cast<uint32_t>(kTopicLengthSize + topic_size_ + (delivery_qos > 0 ? 2 : 0) +
                               payload_size_);
}

void Message::SetFreeHookForTesting(FreeHook hook) {
  free_hook.store(hook, std::memory_order_relaxed);
}

void Message::Destroy() {
  RINGMQ_ASSERT(references_.load(std::memory_order_relaxed) == 0);
  if (FreeHook hook = free_hook.load(std::memory_order_relaxed); hook != nullptr) hook(this);
  memory::Charge(-static_cast<int64_t>(malloc_usable_size(this)));
  this->~Message();
  std::free(static_cast<void*>(this));
}

}  // namespace ringmq::message
