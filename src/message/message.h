// The immutable, reference-counted content of one received PUBLISH, shared by every delivery.
//
// A Message is built once, on the shard that read the PUBLISH (or published the will or the
// $SYS value), in a single allocation:
//
//   +--------------------+----------+----------+-------------+---------------+---------+-------+
//   | Message (40 bytes) | len high | len low  | topic bytes | payload bytes | expiry  | props |
//   +--------------------+----------+----------+-------------+---------------+---------+-------+
//                        ^ encoded_topic() = [len high, len low, topic bytes]
//                                              ^ topic()       ^ payload()
//
// `expiry` (8 bytes, unaligned) is there only when the publisher set a Message Expiry Interval
// (5.0:3.3.2.3.3): the monotonic deadline in ms, read with memcpy by expiry_deadline_ms().
// `props` is the publisher's validated MQTT 5.0 property block (a PUBLISH's, or a will's), as
// received and without its Property Length. A 3.1/3.1.1 message, and a 5.0 one without
// properties or expiry, has neither: its allocation is the header, the topic and the payload.
//
// The two-byte big-endian topic length is stored in front of the topic, exactly as it appears
// in a PUBLISH variable header, so a delivery is encoded without re-encoding the topic: each
// session (Session::WriteOne, session/session.cc) hands encoded_topic() and payload() to
// mqtt::EncodePublishParts (3.1/3.1.1 subscribers) or, with properties(), to
// mqtt::EncodePublishParts5 (5.0 subscribers), which copy them into the connection's output
// buffer around the per-delivery bytes:
//
//   per delivery  fixed header (type, DUP/QoS/RETAIN flags, remaining length)
//   copied        encoded_topic()
//   per delivery  packet id (delivery QoS 1/2 only)
//   5.0 only      Property Length, properties() with the per-subscriber edits (codec.h)
//   copied        payload()
//
// The per-delivery bytes of a 3.1.1 delivery fit in PublishHeaderMaxSize(topic size) - topic
// size bytes (mqtt/codec.h); RemainingLength(delivery QoS) is the remaining length such a
// delivery has.
//
// Publisher: the session that published the message (its home shard is origin_shard(), where
// connections are served; slot and generation as in sub::Subscriber), so that a No Local
// subscription (5.0:MQTT-3.8.3-3) of that very session skips it. Broker messages ($SYS) have
// none (kNoSession).
//
// Origin: the creating shard stamps each message with its index and a sequence number from a
// plain per-shard counter (1, 2, ...), so messages of one origin are ordered by creation. The
// router routes each message right after creating it and mailboxes are FIFO, so another shard
// receives one origin's messages in sequence order; the retained fence (shard/retained_fence.h)
// relies on that. Sequence 0 means unstamped (tests, benches) and is never fenced.
//
// Ownership: a reference count, 1 after Create. AddRef/Release may run on any shard; the last
// Release frees the allocation (with the allocator of whichever thread drops it; mimalloc handles
// cross-thread frees). MessageRef is the RAII form; raw references travel through mailboxes.
// MessageRefBatch makes the references of several deliveries in one atomic step: each atomic
// read-modify-write of the count may have to take its cache line from another shard's core, so
// a fan-out pays one per batch, not one per subscriber.
// The allocation is charged to the creating thread's memory account and credited to the
// freeing thread's (memory/budget.h).
//
// Thread safety: every accessor reads bytes that never change after Create, so any shard may
// read a Message it holds a reference to without synchronization. The reference count is atomic:
// AddRef is relaxed (a new reference is always made from an existing one, which keeps the
// Message alive), Release is acq_rel so that every shard's reads happen before the free.
//
// Invariants: topic size <= 65535; payload size <= 268435455; the PUBLISH that carries it at the
// publisher's QoS fits the 4-byte remaining length without properties (so every 3.1.1
// delivery, at a QoS no higher than the publisher's, is encodable; a 5.0 delivery may not be,
// which EncodedPublishParts5Size reports).
#ifndef RINGMQ_MESSAGE_MESSAGE_H_
#define RINGMQ_MESSAGE_MESSAGE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/assert.h"

namespace ringmq::message {

// Which shard created a message, its place in that shard's creation order, and the session of
// that shard that published it.
struct MessageOrigin {
  static constexpr uint32_t kNoSession = UINT32_MAX;
  uint16_t shard = 0;
  uint64_t sequence = 0;  // 0: unstamped
  uint32_t session = kNoSession;  // the publisher's slot (broker messages: none)
  uint32_t generation = 0;        // the publisher's generation
};

// What a message carries for MQTT 5.0 deliveries; empty for 3.1 / 3.1.1 publishers.
struct Mqtt5Fields {
  std::span<const uint8_t> properties;  // a validated PUBLISH or will property block
  uint64_t expiry_deadline_ms = 0;      // monotonic; 0: the message does not expire
};

class Message {
 public:
  static constexpr size_t kMaxTopicSize = 65'535;         // two-byte length prefix (§1.5.3)
  static constexpr size_t kMaxPayloadSize = 268'435'455;  // four-byte remaining length (§2.2.3)

  using Origin = MessageOrigin;

  // Copies topic, payload and the 5.0 fields into one new allocation. Returns the Message with
  // one reference, owned by the caller. `qos` is the publisher's QoS (0..2).
  static Message* Create(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos,
                         bool retain, Origin origin = {}, const Mqtt5Fields& mqtt5 = {});

  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  std::string_view topic() const {
    return {reinterpret_cast<const char*>(bytes() + kTopicLengthSize), topic_size_};
  }
  // The topic preceded by its two-byte big-endian length, as on the wire.
  std::span<const uint8_t> encoded_topic() const {
    return {bytes(), kTopicLengthSize + topic_size_};
  }
  std::span<const uint8_t> payload() const {
    return {bytes() + kTopicLengthSize + topic_size_, payload_size_};
  }
  uint8_t qos() const { return qos_; }
  bool retain() const { return retain_; }
  uint16_t origin_shard() const { return origin_shard_; }
  uint64_t sequence() const { return sequence_; }
  // Whether the session in slot `session` with `generation` of shard `shard` published it.
  bool PublishedBy(uint32_t shard, uint32_t session, uint32_t generation) const {
    return publisher_session_ == session && publisher_generation_ == generation &&
           origin_shard_ == shard && session != Origin::kNoSession;
  }
  // The publisher's 5.0 property block (empty for 3.1/3.1.1 publishers).
  std::span<const uint8_t> properties() const {
    return {bytes() + properties_offset(), properties_size_};
  }
  bool has_expiry() const { return has_expiry_; }
  // The monotonic deadline of the Message Expiry Interval, or 0 when it has none.
  uint64_t expiry_deadline_ms() const;
  // Expired at `now_ms` (5.0:3.3.2.3.3): not sent to subscribers that have not got it yet.
  bool ExpiredAt(uint64_t now_ms) const { return has_expiry_ && now_ms >= expiry_deadline_ms(); }

  // What one queued delivery of this message may cost on the wire: topic, payload, the
  // largest possible 3.1.1 header (PublishHeaderMaxSize) and the properties with their length.
  // Used for per-session queued-bytes caps.
  uint64_t wire_bytes() const;

  // The bytes of the one allocation that hold the message (the allocator may set aside more:
  // that is what the memory budget is charged, memory/budget.h).
  size_t allocation_bytes() const;

  // The PUBLISH remaining length of a delivery at `delivery_qos` (<= qos()).
  uint32_t RemainingLength(uint8_t delivery_qos) const;

  // Adds `count` (may be 0) references; the caller must already hold one.
  void AddRef(uint32_t count = 1) {
    const uint32_t before = references_.fetch_add(count, std::memory_order_relaxed);
    RINGMQ_ASSERT(before != 0);               // resurrecting a freed message
    RINGMQ_ASSERT(before + count >= before);  // overflow
  }
  // Drops `count` (>= 1) references; frees the message when none remain.
  void Release(uint32_t count = 1) {
    const uint32_t before = references_.fetch_sub(count, std::memory_order_acq_rel);
    RINGMQ_ASSERT(count != 0 && before >= count);
    if (before == count) Destroy();
  }
  // For tests and assertions only: the value may be stale by the time it is read.
  uint32_t references_for_testing() const { return references_.load(std::memory_order_relaxed); }

  // Called with every Message just before it is freed (tests count frees with it). Not for
  // production use; set it only while no Message is being released concurrently.
  using FreeHook = void (*)(const Message*);
  static void SetFreeHookForTesting(FreeHook hook);

 private:
  static constexpr size_t kTopicLengthSize = 2;

  static constexpr size_t kExpirySize = sizeof(uint64_t);

  Message(uint16_t topic_size, uint32_t payload_size, uint32_t properties_size, uint8_t qos,
          bool retain, bool has_expiry, Origin origin)
      : payload_size_(payload_size),
        sequence_(origin.sequence),
        publisher_session_(origin.session),
        publisher_generation_(origin.generation),
        properties_size_(properties_size),
        topic_size_(topic_size),
        origin_shard_(origin.shard),
        qos_(qos),
        retain_(retain),
        has_expiry_(has_expiry) {}
  ~Message() = default;

  // The bytes after the header: topic length, topic, payload.
  const uint8_t* bytes() const { return reinterpret_cast<const uint8_t*>(this + 1); }
  uint8_t* mutable_bytes() { return reinterpret_cast<uint8_t*>(this + 1); }

  size_t expiry_offset() const { return kTopicLengthSize + topic_size_ + payload_size_; }
  size_t properties_offset() const { return expiry_offset() + (has_expiry_ ? kExpirySize : 0); }

  void Destroy();

  std::atomic<uint32_t> references_{1};
  uint32_t payload_size_;
  uint64_t sequence_;
  uint32_t publisher_session_;
  uint32_t publisher_generation_;
  uint32_t properties_size_;
  uint16_t topic_size_;
  uint16_t origin_shard_;
  uint8_t qos_;
  bool retain_;
  bool has_expiry_;
};

static_assert(sizeof(Message) == 40, "header size is part of the documented layout");
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// One reference to a Message, dropped on destruction. Move-only.
class MessageRef {
 public:
  MessageRef() = default;
  // Takes over a reference the caller already owns (from Create, or out of a mailbox).
  static MessageRef Adopt(Message* message) { return MessageRef(message); }
  // Makes a new reference to a message the caller can already reach through another one.
  static MessageRef Share(Message* message) {
    RINGMQ_ASSERT(message != nullptr);
    message->AddRef();
    return MessageRef(message);
  }
  static MessageRef Create(std::string_view topic, std::span<const uint8_t> payload, uint8_t qos,
                           bool retain, Message::Origin origin = {},
                           const Mqtt5Fields& mqtt5 = {}) {
    return Adopt(Message::Create(topic, payload, qos, retain, origin, mqtt5));
  }

  MessageRef(MessageRef&& other) noexcept : message_(other.message_) { other.message_ = nullptr; }
  MessageRef& operator=(MessageRef&& other) noexcept {
    if (this != &other) {
      reset();
      message_ = other.message_;
      other.message_ = nullptr;
    }
    return *this;
  }
  MessageRef(const MessageRef&) = delete;
  MessageRef& operator=(const MessageRef&) = delete;
  ~MessageRef() { reset(); }

  Message* get() const { return message_; }
  Message* operator->() const { return message_; }
  const Message& operator*() const { return *message_; }
  explicit operator bool() const { return message_ != nullptr; }

  // Gives up ownership without dropping the reference (e.g. to send it through a mailbox, where
  // the receiver Adopts it). Returns nullptr for an empty handle.
  [[nodiscard]] Message* release() {
    Message* message = message_;
    message_ = nullptr;
    return message;
  }
  void reset() {
    if (message_ != nullptr) {
      Message* message = message_;
      message_ = nullptr;
      message->Release();
    }
  }

 private:
  explicit MessageRef(Message* message) : message_(message) {}

  Message* message_ = nullptr;
};

// References to one Message for a batch of deliveries, handed out one at a time (Take). The
// batch starts from `owned` references its caller hands over (a mailbox record's one, passed on
// as is by the first Take) and makes the rest of `wanted` with one AddRef; those not taken are
// dropped with one Release when the batch is destroyed. n deliveries of one mailbox record thus
// cost one atomic operation when all are queued (none for n = 1), where a Share per delivery and
// a Release of the record's reference would cost n + 1.
//
// Thread safety: one owner. Correct across shards like AddRef / Release themselves: references
// are only added while the batch holds at least one (or, with owned == 0, while the caller holds
// another), and the unused ones are dropped with Release's acq_rel.
class MessageRefBatch {
 public:
  // With owned == 0 the caller must hold a reference of its own until the constructor returns.
  MessageRefBatch(Message* message, uint32_t owned, uint32_t wanted)
      : message_(message), left_(owned) {
    RINGMQ_ASSERT(message != nullptr);
    if (wanted > owned) {
      message->AddRef(wanted - owned);
      left_ = wanted;
    }
  }
  ~MessageRefBatch() {
    if (left_ != 0) message_->Release(left_);
  }
  MessageRefBatch(const MessageRefBatch&) = delete;
  MessageRefBatch& operator=(const MessageRefBatch&) = delete;

  Message* get() const { return message_; }
  // References still held (not taken).
  uint32_t left() const { return left_; }
  // One of the batch's references, now the caller's. At most max(owned, wanted) times.
  MessageRef Take() {
    RINGMQ_ASSERT(left_ > 0);
    --left_;
    return MessageRef::Adopt(message_);
  }

 private:
  Message* const message_;
  uint32_t left_;
};

}  // namespace ringmq::message

#endif  // RINGMQ_MESSAGE_MESSAGE_H_
