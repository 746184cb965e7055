// One MQTT session's delivery state: the outbound queue, QoS 1/2 in-flight windows in both
// directions, the will, and the subscriptions it holds. Sans-IO: the shard binds it to a
// connection and asks it for bytes to send.
//
// A session lives on its home shard (hash(client_id) % shards) and is touched only there.
// Outbound messages are references to immutable shared Messages; bytes are produced only when
// the connection has room (WriteOutput), so a slow subscriber's backlog is a bounded queue of
// references, never a growing byte buffer.
//
// QoS 1 (server -> client): PUBLISH kept in flight until PUBACK; QoS 2: PUBLISH until PUBREC,
// then PUBREL until PUBCOMP. At most `max_inflight` messages are in flight; the rest wait in
// the queue. On reconnect with clean session 0, in-flight PUBLISHes are sent again with DUP=1
// and pending PUBRELs again, in their original order (MQTT-4.4.0-1), before queued messages.
//
// The queue and the in-flight window are RingQueues: while the session is online a drained ring
// of up to 4 KiB is kept, so a subscriber that keeps up allocates nothing per message; Detach
// gives every empty ring back, so an offline session holds none.
//
// Inbound QoS 2 (client -> server): a packet id is remembered from PUBLISH to PUBREL so a
// duplicate PUBLISH is acknowledged again but not delivered twice (MQTT-4.3.3-2). The ids are
// a hash set made on the first QoS 2 PUBLISH (a session that never receives one holds a null
// pointer); a table grown by a burst is released when it drains.
//
// Subscriptions: filter -> options (granted QoS and, at 5.0, Subscription Identifier, No Local,
// Retain As Published) in a hash map, so a SUBSCRIBE or UNSUBSCRIBE of n filters costs O(n), not
// O(n x subscriptions held). The trie's handle carries one bit for "a subscription of this
// session with delivery options matched" (sub::Subscriber::options); only then does the home
// shard match the topic against this map again (MatchDelivery, O(subscriptions held)) to decide
// No Local, the QoS and Retain As Published, and, when it encodes the PUBLISH, the Subscription
// Identifiers (5.0:MQTT-3.3.4-3..5). Sessions without such subscriptions pay nothing.
//
// MQTT 5.0 (per connection, set at Attach): deliveries are encoded with properties
// (EncodePublishParts5: the publisher's block, the remaining Message Expiry Interval, the
// Subscription Identifiers) at level 5 and without at 3.1/3.1.1; the in-flight window is
// min(max_inflight, the client's Receive Maximum) (5.0:MQTT-3.3.4-9); a PUBLISH larger than the
// client's Maximum Packet Size is discarded as if it had been sent (5.0:MQTT-3.1.2-25). A
// message whose Message Expiry Interval passed before it was sent is discarded at every level
// (5.0:3.3.2.3.3); one already sent is resent as it is (with the time left, 0 at the least).
//
// Limits (counted by the caller from the return values): queued messages and queued bytes
// (QoS 0 beyond the byte cap is dropped; QoS 1/2 beyond either is dropped or, by policy, the
// client is disconnected), subscriptions held (a new filter beyond the cap is refused; replacing
// one held is always allowed, MQTT-3.8.4-3) and inbound QoS 2 ids pending (beyond the cap the
// caller closes the connection).
//
// Thread safety: owned by its home shard; used only on that thread.
#ifndef RINGMQ_SESSION_SESSION_H_
#define RINGMQ_SESSION_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/byte_buffer.h"
#include "common/shared_string.h"
#include "message/message.h"
#include "mqtt/outbound_topic_aliases.h"
#include "mqtt/packet_type.h"
#include "session/ring_queue.h"

namespace ringmq::session {

struct SessionLimits {
  uint32_t max_inflight = 512;           // QoS 1/2 PUBLISHes awaiting acknowledgement
  uint32_t max_queued_messages = 1000;   // waiting beyond the free in-flight window
  uint64_t max_queued_bytes = 16 << 20;  // sum of Message::wire_bytes() held (waiting, or in
                                         // flight until PUBACK / PUBREC), any QoS
  uint32_t max_subscriptions = 10'000;   // distinct filters held
  uint32_t max_inbound_qos2 = 65'535;    // inbound QoS 2 ids between PUBLISH and PUBREL
  bool queue_qos0_offline = false;       // QoS 0 for a disconnected session (MQTT-3.1.2-5 "MAY")
};

enum class EnqueueResult : uint8_t {
  kQueued,
  kDroppedQueueFull,  // QoS 1/2 beyond max_queued_messages
  kDroppedBytesCap,   // any QoS beyond max_queued_bytes
  kDroppedOffline,    // QoS 0 for an offline session
};

enum class SubscribeResult : uint8_t {
  kAdded,     // a new filter
  kReplaced,  // the filter was held: its QoS is replaced (MQTT-3.8.4-3)
  kLimit,     // a new filter beyond max_subscriptions: nothing changed
};

enum class InboundQos2 : uint8_t {
  kNew,        // remembered until PUBREL: deliver the message
  kDuplicate,  // already pending: acknowledge again, do not deliver (MQTT-4.3.3-2)
  kLimit,      // a new id beyond max_inbound_qos2: nothing remembered
};

// What one WriteOutput call encoded or discarded, for the caller's counters.
struct WriteCounts {
  uint64_t publishes_by_qos[3] = {0, 0, 0};  // PUBLISH packets (resends included) by QoS
  uint64_t publishes_mqtt5 = 0;              // of those, encoded at 5.0
  uint64_t expired = 0;                      // not sent: Message Expiry Interval passed
  uint64_t too_large = 0;                    // not sent: above the client's Maximum Packet Size
  uint64_t aliases_set = 0;   // 5.0 PUBLISHes that carried a topic and set an outbound alias
  uint64_t aliases_used = 0;  // 5.0 PUBLISHes sent with an alias and an empty topic
};

struct Will {
  std::string topic;
  std::vector<uint8_t> payload;
  std::vector<uint8_t> properties;  // 5.0: the validated will property block (§3.1.3.2)
  uint8_t qos = 0;
  bool retain = false;
  // 5.0:3.1.3.2.2 Will Delay Interval: how long after the connection ends the will waits for
  // the session to resume (0 at 3.1 / 3.1.1: published at once).
  uint32_t delay_s = 0;
};

// What the connection's CONNECT said about deliveries to it (MQTT 5.0 CONNECT properties; the
// defaults are 3.1.1's "no limit").
struct ClientTerms {
  mqtt::ProtocolLevel level = mqtt::ProtocolLevel::kMqtt311;
  uint16_t receive_maximum = UINT16_MAX;  // 5.0:3.1.2.11.3; absent means 65,535
  uint32_t maximum_packet_size = 0;       // 5.0:3.1.2.11.4; 0: none
};

// A subscription as the session holds it. At 3.1/3.1.1 only `qos` is ever set.
struct SubscriptionOptions {
  uint32_t identifier = 0;           // 5.0:3.8.2.1.2; 0: none
  uint8_t qos = 0;                   // granted
  bool no_local = false;             // 5.0:MQTT-3.8.3-3
  bool retain_as_published = false;  // 5.0:MQTT-3.3.1-12/13
  // Whether a delivery through this subscription needs MatchDelivery.
  bool has_delivery_options() const { return identifier != 0 || no_local || retain_as_published; }
  bool operator==(const SubscriptionOptions&) const = default;
};

// The outcome of matching one topic against a session's subscriptions (MatchDelivery).
struct DeliveryMatch {
  bool deliver = false;              // some subscription matches and No Local excludes not all
  uint8_t qos = 0;                   // highest granted QoS among those
  bool retain_as_published = false;  // one of those has Retain As Published
  bool identifiers = false;          // one of those has a Subscription Identifier
};

// What WriteOutput tells persistence (shard/durable.h) about deliveries that change their
// durable state: a first send takes a packet id; a queued delivery that is never sent
// (expired, too large for the client); an in-flight one whose resend is discarded.
class DeliveryLog {
 public:
  virtual void Sent(const message::Message& message, uint16_t packet_id) = 0;
  virtual void DiscardedQueued(const message::Message& message) = 0;
  virtual void DiscardedInflight(uint16_t packet_id, uint8_t qos) = 0;

 protected:
  ~DeliveryLog() = default;
};

// Enqueue flags.
inline constexpr uint8_t kEnqueueOwn = 0x01;          // published by this session (No Local)
inline constexpr uint8_t kEnqueueIdentifiers = 0x02;  // look up Subscription Identifiers
inline constexpr uint8_t kEnqueueShared = 0x04;       // chosen by a shared-subscription group

class Session {
 public:
  // `client_id` shares its storage with the connection that made the session. `limits` is
  // referred to, not copied (one copy per shard instead of 32 bytes per session), so it must
  // outlive the session; a temporary does not compile.
  Session(SharedString client_id, bool clean_session, const SessionLimits& limits);
  Session(std::string_view client_id, bool clean_session, const SessionLimits& limits)
      : Session(SharedString(client_id), clean_session, limits) {}
  Session(SharedString client_id, bool clean_session, const SessionLimits&& limits) = delete;
  Session(std::string_view client_id, bool clean_session, const SessionLimits&& limits) = delete;

  // Valid as long as the session.
  std::string_view client_id() const { return client_id_.view(); }
  bool clean_session() const { return clean_session_; }

  // A connection is bound (connect or reconnect). Resends of in-flight state are scheduled.
  // `terms`: how its deliveries are encoded and bounded (MQTT 5.0).
  void Attach(bool clean_session, const ClientTerms& terms = {});
  // The connection is gone. A clean session is discarded by the caller; a persistent one keeps
  // its queue and in-flight state.
  void Detach();
  bool online() const { return online_; }

  // Queues `message` for delivery at `qos` (already min(granted, published)). `retain` is the
  // RETAIN flag to send: 1 only for retained messages sent because of a new subscription
  // (MQTT-3.3.1-8/9), or for a 5.0 Retain As Published subscription. `flags`: kEnqueue*
  // (kEnqueueShared: delivered through a shared-subscription group, so that
  // TakeSharedMessages can hand it to another member if this session ends before the client
  // acknowledged it).
  EnqueueResult Enqueue(message::MessageRef message, uint8_t qos, bool retain, uint8_t flags = 0);
  // Whether Enqueue would queue `message` at `qos` now (room in the queue and the byte cap, and
  // online or QoS > 0). O(1).
  bool CanTake(const message::Message& message, uint8_t qos) const;

  // Calls `take(message, qos)` for each QoS 1/2 message queued through a shared subscription
  // that the client has not acknowledged (waiting, or sent and awaiting PUBACK / PUBREC), in
  // order, and removes them: for a session that ends, whose group's other members get them.
  // A QoS 2 message whose PUBREC arrived stays: the client has it. O(queued + in flight).
  template <typename Take>
  void TakeSharedMessages(Take&& take);

  // Encodes pending PUBLISH/PUBREL packets into `out` (appending) until out.size() would
  // exceed `max_bytes` or nothing can be sent (window full). A message larger than max_bytes is
  // still written when `out` is empty, so progress is always possible. Returns bytes appended.
  // `counts`, if given, is increased by what was written or discarded. `now_ms` (monotonic) is
  // compared with the messages' expiry deadlines. `aliases`, if given (5.0 connections with
  // outbound aliases on), is the connection's outbound Topic Alias mapping: PUBLISHes use and
  // extend it (5.0:3.3.2.3.4).
  // `log`, if given (a persistent session with persistence on), hears of first sends and
  // discards (DeliveryLog).
  size_t WriteOutput(ByteBuffer& out, size_t max_bytes, WriteCounts* counts = nullptr,
                     uint64_t now_ms = 0, mqtt::OutboundTopicAliases* aliases = nullptr,
                     DeliveryLog* log = nullptr);
  bool has_output() const;

  // Acknowledgements from the client. Return false for an unknown packet id (ignored; a
  // duplicate after reconnect is legal).
  bool OnPuback(uint16_t packet_id);
  bool OnPubrec(uint16_t packet_id);   // QoS 2 step 1: PUBREL becomes due
  // 5.0: a PUBREC with a reason code of 0x80 or more: the flow ends, no PUBREL is sent.
  bool OnPubrecRefused(uint16_t packet_id);
  bool OnPubcomp(uint16_t packet_id);  // QoS 2 done

  // Inbound QoS 2 PUBLISH with `packet_id`. O(1).
  InboundQos2 BeginInboundQos2(uint16_t packet_id);
  // PUBREL received; returns whether the id was pending (PUBCOMP is sent either way,
  // MQTT-4.3.3-2 step 3 / §4.3.3). O(1).
  bool EndInboundQos2(uint16_t packet_id);
  template <typename Fn>
  void ForEachInboundQos2(Fn&& fn) const {
    if (inbound_qos2_ != nullptr) {
      for (const uint16_t packet_id : *inbound_qos2_) fn(packet_id);
    }
  }
  uint32_t inbound_qos2_pending() const {
    return inbound_qos2_ == nullptr ? 0 : static_cast<uint32_t>(inbound_qos2_->size());
  }

  // The session's own record of its subscriptions (the shared trie holds the routing copy).
  // O(1) per call; the caller updates the trie to match.
  SubscribeResult AddSubscription(std::string_view filter, const SubscriptionOptions& options);
  SubscribeResult AddSubscription(std::string_view filter, uint8_t qos) {
    return AddSubscription(filter, SubscriptionOptions{.qos = qos});
  }
  // The options of the removed subscription, or nullopt if `filter` was not held.
  std::optional<SubscriptionOptions> RemoveSubscription(std::string_view filter);
  // The subscriptions matching `topic` (a message the session was routed because one of them
  // has delivery options), without those with No Local when `own` (5.0:MQTT-3.8.3-3), and
  // without its shared subscriptions ($share/...) unless `shared` (a group chose this session
  // for the message; otherwise it came through a plain subscription and a membership over the
  // same topics has no part in it, 5.0 §4.8.2). O(subscriptions held).
  DeliveryMatch MatchDelivery(std::string_view topic, bool own, bool shared) const;
  using Subscriptions = absl::flat_hash_map<std::string, SubscriptionOptions>;
  // Filter -> options.
  const Subscriptions& subscriptions() const {
    return subscriptions_ == nullptr ? NoSubscriptions() : *subscriptions_;
  }
  uint32_t subscription_count() const {
    return subscriptions_ == nullptr ? 0 : static_cast<uint32_t>(subscriptions_->size());
  }

  std::unique_ptr<Will>& will() { return will_; }

  // Persistence. Calls fn(message, qos, retain, packet_id, released) for every delivery, in
  // flight first (packet_id != 0; released: QoS 2 after PUBREC, message null), then queued
  // (packet_id 0), in order.
  template <typename Fn>
  void ForEachDelivery(Fn&& fn) const;
  // Recovery: appends an in-flight delivery as it was when the broker stopped: sent with
  // `packet_id` (resent with DUP at the next Attach), or, `released`, a QoS 2 delivery whose
  // PUBREC arrived (PUBREL due; `message` may be null). Only before the first Attach.
  void RestoreInflight(message::MessageRef message, uint8_t qos, bool retain, uint16_t packet_id,
                       bool released);

  uint32_t queued_messages() const { return static_cast<uint32_t>(queue_.size()); }
  uint64_t queued_bytes() const { return queued_bytes_; }
  uint32_t inflight() const { return static_cast<uint32_t>(inflight_.size()); }
  mqtt::ProtocolLevel level() const { return level_; }
  // The in-flight window: max_inflight, or the client's Receive Maximum if smaller.
  uint32_t window() const {
    return receive_maximum_ < limits_->max_inflight ? receive_maximum_ : limits_->max_inflight;
  }

 private:
  enum class Stage : uint8_t {
    kAwaitAck,       // PUBLISH sent; awaiting PUBACK (QoS 1) or PUBREC (QoS 2)
    kAwaitComplete,  // PUBREL sent; awaiting PUBCOMP (QoS 2)
  };
  struct Outbound {
    message::MessageRef message;  // released once only PUBREL/PUBCOMP remain
    uint16_t packet_id = 0;
    uint8_t qos = 0;
    bool retain = false;
    bool dup = false;
    bool sent = false;  // false: the packet of `stage` is due (first send or resend)
    Stage stage = Stage::kAwaitAck;
    uint8_t flags = 0;  // kEnqueue*
  };
  static_assert(sizeof(Outbound) == 16, "one queued delivery is a reference and 8 bytes");

  enum class Written : uint8_t {
    kWritten,
    kNoRoom,     // does not fit in max_bytes: try again later
    kDiscarded,  // never to be sent (too large for the client): as if sent
  };
  Written WriteOne(const Outbound& entry, ByteBuffer& out, size_t max_bytes, WriteCounts* counts,
                   uint64_t now_ms, mqtt::OutboundTopicAliases* aliases);
  // The PUBLISH of `entry` at level 5, by alias when `aliases` (may be null) has or takes one.
  Written WritePublish5(const Outbound& entry, ByteBuffer& out, size_t max_bytes,
                        WriteCounts* counts, uint64_t now_ms, mqtt::OutboundTopicAliases* aliases);

  uint16_t NextPacketId();
  bool PacketIdInUse(uint16_t packet_id) const;
  Outbound* FindInflight(uint16_t packet_id);

  static const Subscriptions& NoSubscriptions();

  // Members are ordered so that the small ones share one 8-byte word (an idle connection's
  // session is one of these; see the size test in tests/session/session_test.cc).
  // The 5.0 client terms sit in the tail padding of the two rings ([[no_unique_address]] lets
  // the compiler place the next member there), so they cost the session no bytes.
  SharedString client_id_;
  const SessionLimits* limits_;
  [[no_unique_address]] RingQueue<Outbound> queue_;     // not yet sent, in order
  uint32_t maximum_packet_size_ = 0;                    // the client's; 0: none
  [[no_unique_address]] RingQueue<Outbound> inflight_;  // sent (or due for resend / PUBREL), in
                                                        // send order
  uint16_t receive_maximum_ = UINT16_MAX;               // the client's
  uint64_t queued_bytes_ = 0;    // wire bytes of queue_'s messages
  uint64_t inflight_bytes_ = 0;  // wire bytes of inflight_'s messages not yet released
  // Entries of inflight_ with sent == false: at most inflight_.size(), which packet ids bound
  // to 65,535.
  uint16_t unsent_inflight_ = 0;
  uint16_t last_packet_id_ = 0;
  bool clean_session_;
  bool online_ = false;
  mqtt::ProtocolLevel level_ = mqtt::ProtocolLevel::kMqtt311;
  // True while the ids of inflight_, read front to back, are distinct and each one follows the
  // one before it within a cyclic walk from inflight_.front() to last_packet_id_ that does not
  // come round again. Then the id after last_packet_id_ is in use only if it is the front's, so
  // NextPacketId needs no search (see there). Set again whenever inflight_ is empty.
  bool ids_in_assignment_order_ = true;
  // Ids between PUBLISH and PUBREL, at most max_inbound_qos2; null until the first QoS 2.
  std::unique_ptr<absl::flat_hash_set<uint16_t>> inbound_qos2_;
  std::unique_ptr<Will> will_;  // null: no will (most clients): 8 bytes, not 72
  // At most max_subscriptions; null until the first SUBSCRIBE (most idle clients hold none),
  // and released at Detach if it is empty by then: 8 bytes instead of an empty map's 40.
  std::unique_ptr<Subscriptions> subscriptions_;
};

template <typename Fn>
void Session::ForEachDelivery(Fn&& fn) const {
  for (size_t i = 0; i < inflight_.size(); ++i) {
    const Outbound& entry = inflight_[i];
    fn(entry.message.get(), entry.qos, entry.retain, entry.packet_id,
       entry.stage == Stage::kAwaitComplete);
  }
  for (size_t i = 0; i < queue_.size(); ++i) {
    const Outbound& entry = queue_[i];
    fn(entry.message.get(), entry.qos, entry.retain, uint16_t{0}, false);
  }
}

template <typename Take>
void Session::TakeSharedMessages(Take&& take) {
  const auto taken = [](const Outbound& entry) {
    return (entry.flags & kEnqueueShared) != 0 && entry.qos > 0 && entry.stage == Stage::kAwaitAck &&
           entry.message.get() != nullptr;
  };
  // Most sessions that end hold none: their queues are left as they are.
  if (inflight_.find_if(taken) == inflight_.size() && queue_.find_if(taken) == queue_.size()) {
    return;
  }
  for (RingQueue<Outbound>* ring : {&inflight_, &queue_}) {
    RingQueue<Outbound> kept;
    while (!ring->empty()) {
      Outbound& entry = ring->front();
      const uint64_t bytes = entry.message.get() == nullptr ? 0 : entry.message->wire_bytes();
      if (taken(entry)) {
        (ring == &queue_ ? queued_bytes_ : inflight_bytes_) -= bytes;
        if (ring == &inflight_ && !entry.sent) --unsent_inflight_;
        take(std::move(entry.message), entry.qos);
      } else {
        kept.push_back(std::move(entry));
      }
      ring->pop_front();
    }
    *ring = std::move(kept);
  }
  if (inflight_.empty()) ids_in_assignment_order_ = true;
}

}  // namespace ringmq::session

#endif  // RINGMQ_SESSION_SESSION_H_
