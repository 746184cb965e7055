// A persistent session's state on its way between ringmq nodes (docs/cluster.md, "Client ids
// across nodes", "Persistent sessions move"): what a node whose session yields to another
// node's claim (cluster/claim.h) sends that node, so that the client's subscriptions and the
// messages queued for it follow it. Pure: encoding and parsing, no I/O.
//
// Wire format (binary, integers big-endian), one NATS message:
//   "RS3"                                     magic and version
//   u64 key                                   the claim it answers
//   u16 n, n bytes                            client id
//   u16 count, then count subscriptions:      u16 n, n bytes filter; u8 options (QoS in bits
//                                             0-1, No Local bit 2, Retain As Published bit 3:
//                                             the SUBSCRIBE options byte without Retain
//                                             Handling); u32 Subscription Identifier (0: none)
//   u32 count, then count messages:           u16 n, n bytes topic; u32 n, n bytes payload;
//                                             u8 QoS (0-2); u8 flags (bit 0: RETAIN to send,
//                                             bit 1: it expires); u16 packet id; u8 stage
//                                             (StateStage); if it expires, u64 milliseconds of
//                                             its Message Expiry Interval left; u32 n, n bytes
//                                             MQTT 5.0 property block
//   u16 count, then count u16 packet ids:     inbound QoS 2 PUBLISHes received, PUBREL not yet
// Nothing may follow. Stages: kQueued (packet id 0), kInFlight (sent with the packet id, no
// PUBACK / PUBREC yet: QoS 1 or 2, topic not empty), kReleased (QoS 2 whose PUBREC arrived,
// PUBCOMP awaited: topic, payload and properties empty, flags 0). So the in-flight QoS 1/2
// state moves whole (MQTT-4.3.3, MQTT-4.4.0-1): the new node resends in-flight PUBLISHes with
// their packet ids and DUP, sends PUBREL for released ones, and knows the inbound ids.
//
// MQTT 5.0 message properties: the block is the publisher's, as the old node holds it
// (message/message.h: a PUBLISH's or a will's validated block, the persistence log stores the
// same bytes), so the new node's deliveries make the same per-subscriber edits the old node's
// would have (mqtt::EncodePublishParts5: Topic Alias and Subscription Identifiers of the
// publisher dropped, User Properties in order, MQTT-3.3.2-17, -18). The parser accepts a block
// only if mqtt::ValidateProperties accepts it for a PUBLISH or for a will (5.0:3.3.2.3,
// 3.1.3.2), and at most mqtt::kMaxRemainingLength bytes. The expiry is not a deadline (clocks
// are per node) but the time left when the state was written (MQTT-3.3.2-6): the new node sets
// its own deadline from it. 0 ms left is a message that has expired: kept only in flight (its
// delivery has started and completes, 5.0:3.3.2.3.3), the writer's caller leaves queued ones
// out.
//
// Versions: "RS2", the format before properties (flags only RETAIN 0 or 1; no expiry, no
// property block), is still parsed (its messages have no properties), so a state from a node
// not yet upgraded merges; SessionStateWriter writes it when asked (tests, the fuzz target's
// round trip). A node that knows only "RS2" refuses "RS3" whole (counted invalid there).
//
// Bounds: the encoder never writes more than the `max_bytes` it is given (the NATS server's
// max_payload): what does not fit is left out, subscriptions before messages, and counted
// (left_out). The parser checks every length against what is left of the input.
//
// Thread safety: pure functions; a SessionStateWriter is used by one thread.
#ifndef RINGMQ_CLUSTER_SESSION_STATE_H_
#define RINGMQ_CLUSTER_SESSION_STATE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mqtt/codec.h"

namespace ringmq::cluster {

// The format versions (the magic's last byte, above).
inline constexpr char kSessionStateVersion = '3';
inline constexpr char kSessionStateVersionNoProperties = '2';

// The control subject kind of the replies that carry session state (control.h):
// $RINGMQ[.prefix].session.<node>.<shard>, subscribed by each shard of each node.
inline constexpr std::string_view kSessionKind = "session";

struct StateSubscription {
  std::string_view filter;
  uint8_t options = 0;  // QoS | No Local << 2 | Retain As Published << 3
  uint32_t identifier = 0;
};

enum class StateStage : uint8_t { kQueued = 0, kInFlight = 1, kReleased = 2 };

struct StateMessage {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  uint16_t packet_id = 0;
  StateStage stage = StateStage::kQueued;
  // MQTT 5.0 (empty / false for 3.1.1 publishers and in "RS2").
  std::string_view properties = {};  // the publisher's property block, without its length
  bool expires = false;              // it has a Message Expiry Interval
  uint64_t expiry_left_ms = 0;       // the time left of it (0 unless `expires`)
};

// Builds one state message: Begin, then subscriptions, then messages, then inbound QoS 2 packet
// ids (in that order).
class SessionStateWriter {
 public:
  // Starts over into `out` (cleared; its capacity is reused). Returns false if even the header
  // does not fit in `max_bytes` (nothing can be sent). `version`: kSessionStateVersion, or
  // kSessionStateVersionNoProperties, whose messages must have no properties and no expiry.
  bool Begin(std::string& out, size_t max_bytes, uint64_t key, std::string_view client_id,
             char version = kSessionStateVersion);
  // Each returns false (and counts it in left_out) if the item does not fit.
  bool AddSubscription(const StateSubscription& subscription);
  bool AddMessage(const StateMessage& message);
  bool AddInboundQos2(uint16_t packet_id);
  // Writes the counts. `out` holds the state afterwards.
  void End();
  uint64_t left_out() const { return left_out_; }

 private:
  std::string* out_ = nullptr;
  size_t max_bytes_ = 0;
  char version_ = kSessionStateVersion;
  size_t subscription_count_at_ = 0;  // offset of the u16 subscription count
  size_t message_count_at_ = 0;       // offset of the u32 message count
  size_t inbound_count_at_ = 0;       // offset of the u16 inbound count; 0: not written yet
  uint32_t subscriptions_ = 0;
  uint32_t messages_ = 0;
  uint32_t inbound_ = 0;
  uint64_t left_out_ = 0;
};

// Parses `bytes`: calls on_header(key, client_id) first and, if it returns true,
// on_subscription(StateSubscription), on_message(StateMessage) and on_inbound(packet id) for
// each item, views into `bytes`. The whole input is checked before any callback: returns false
// (and calls nothing) if it is not a well-formed state. Without on_inbound, the inbound ids are
// checked and ignored.
template <typename OnHeader, typename OnSubscription, typename OnMessage, typename OnInbound>
bool ParseSessionState(std::string_view bytes, OnHeader on_header, OnSubscription on_subscription,
                       OnMessage on_message, OnInbound on_inbound);
template <typename OnHeader, typename OnSubscription, typename OnMessage>
bool ParseSessionState(std::string_view bytes, OnHeader on_header, OnSubscription on_subscription,
                       OnMessage on_message) {
  return ParseSessionState(bytes, on_header, on_subscription, on_message, [](uint16_t) {});
}

namespace session_state_internal {

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool U8(uint8_t& value);
  bool U16(uint16_t& value);
  bool U32(uint32_t& value);
  bool U64(uint64_t& value);
  bool Bytes(size_t n, std::string_view& value);
  bool done() const { return bytes_.empty(); }

 private:
  std::string_view bytes_;
};

// Whether a message's stage, packet id and fields agree (session_state.h, "Stages").
inline bool ValidStage(const StateMessage& message, uint8_t stage) {
  switch (stage) {
    case static_cast<uint8_t>(StateStage::kQueued):
      return message.packet_id == 0 && !message.topic.empty();
    case static_cast<uint8_t>(StateStage::kInFlight):
      return message.packet_id != 0 && message.qos > 0 && !message.topic.empty();
    case static_cast<uint8_t>(StateStage::kReleased):
      return message.packet_id != 0 && message.qos == 2 && message.topic.empty() &&
             message.payload.empty() && !message.retain && message.properties.empty() &&
             !message.expires;
    default:
      return false;
  }
}

// Whether `block` is a property block a message may carry (session_state.h, "MQTT 5.0 message
// properties"): empty, or one mqtt::ValidateProperties accepts for a PUBLISH or a will, within
// the Message's bound.
bool ValidProperties(std::string_view block);

// Reads one message of a state in format `version` (Walk): false if it is not well-formed.
// `check_properties` false skips the property block's validation (Walk's second pass, over
// bytes its first pass checked).
inline bool ReadMessage(Reader& reader, char version, bool check_properties,
                        StateMessage& message) {
  uint16_t length16 = 0;
  uint32_t length32 = 0;
  uint8_t flags = 0;
  uint8_t stage = 0;
  if (!reader.U16(length16) || !reader.Bytes(length16, message.topic) || !reader.U32(length32) ||
      !reader.Bytes(length32, message.payload) || !reader.U8(message.qos) || !reader.U8(flags) ||
      !reader.U16(message.packet_id) || !reader.U8(stage)) {
    return false;
  }
  if (message.qos > 2 || flags > (version == kSessionStateVersion ? 3 : 1)) return false;
  message.retain = (flags & 0x01) != 0;
  message.expires = (flags & 0x02) != 0;
  if (version == kSessionStateVersion) {
    if (message.expires && !reader.U64(message.expiry_left_ms)) return false;
    if (!reader.U32(length32) || !reader.Bytes(length32, message.properties) ||
        (check_properties && !ValidProperties(message.properties))) {
      return false;
    }
  }
  // Message::Create's bound: the PUBLISH it came in had a valid remaining length.
  if (2 + message.topic.size() + (message.qos > 0 ? 2 : 0) + message.payload.size() >
      mqtt::kMaxRemainingLength) {
    return false;
  }
  if (!ValidStage(message, stage)) return false;
  message.stage = static_cast<StateStage>(stage);
  return true;
}

// One pass over `bytes`; with `emit` false it only validates.
template <typename OnHeader, typename OnSubscription, typename OnMessage, typename OnInbound>
bool Walk(std::string_view bytes, bool emit, OnHeader& on_header, OnSubscription& on_subscription,
          OnMessage& on_message, OnInbound& on_inbound) {
  Reader reader(bytes);
  std::string_view magic;
  uint64_t key = 0;
  uint16_t length16 = 0;
  std::string_view client_id;
  if (!reader.Bytes(3, magic) || !magic.starts_with("RS") ||
      (magic[2] != kSessionStateVersion && magic[2] != kSessionStateVersionNoProperties) ||
      !reader.U64(key) || !reader.U16(length16) || !reader.Bytes(length16, client_id)) {
    return false;
  }
  const char version = magic[2];
  if (emit && !on_header(key, client_id)) return true;
  uint16_t subscriptions = 0;
  if (!reader.U16(subscriptions)) return false;
  for (uint16_t i = 0; i < subscriptions; ++i) {
    StateSubscription subscription;
    if (!reader.U16(length16) || !reader.Bytes(length16, subscription.filter) ||
        !reader.U8(subscription.options) || !reader.U32(subscription.identifier)) {
      return false;
    }
    if ((subscription.options & 0x03) > 2 || (subscription.options & 0xF0) != 0) return false;
    if (subscription.filter.empty()) return false;
    if (emit) on_subscription(subscription);
  }
  uint32_t messages = 0;
  if (!reader.U32(messages)) return false;
  for (uint32_t i = 0; i < messages; ++i) {
    StateMessage message;
    if (!ReadMessage(reader, version, /*check_properties=*/!emit, message)) return false;
    if (emit) on_message(message);
  }
  uint16_t inbound = 0;
  if (!reader.U16(inbound)) return false;
  for (uint16_t i = 0; i < inbound; ++i) {
    uint16_t packet_id = 0;
    if (!reader.U16(packet_id) || packet_id == 0) return false;
    if (emit) on_inbound(packet_id);
  }
  return reader.done();
}

}  // namespace session_state_internal

template <typename OnHeader, typename OnSubscription, typename OnMessage, typename OnInbound>
bool ParseSessionState(std::string_view bytes, OnHeader on_header, OnSubscription on_subscription,
                       OnMessage on_message, OnInbound on_inbound) {
  if (!session_state_internal::Walk(bytes, /*emit=*/false, on_header, on_subscription, on_message,
                                    on_inbound)) {
    return false;
  }
  return session_state_internal::Walk(bytes, /*emit=*/true, on_header, on_subscription, on_message,
                                      on_inbound);
}

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_SESSION_STATE_H_
