// MQTT 3.1 / 3.1.1 / 5.0 wire codec: framing, decoding and encoding of the 14 control packets of
// 3.1.x and the 15 of 5.0 (AUTH), with 5.0's properties (mqtt/properties.h) and reason codes
// (mqtt/reason_code.h).
//
// Decoding is incremental and zero-copy: PeekFrame looks at however many bytes have arrived and
// says whether a whole packet is there (kComplete), more bytes are needed (kNeedMore), or the
// bytes can never become a valid packet (kInvalid, with the violation). Decode then parses the
// body in place; the returned packet views the input bytes. A packet split at any byte boundary
// decodes the same once its bytes are contiguous. No function allocates.
//
// Encoding writes into a caller-provided span of exactly EncodedSize(packet) bytes or more.
//
// Thread safety: stateless functions; safe from any thread.
#ifndef RINGMQ_MQTT_CODEC_H_
#define RINGMQ_MQTT_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {

// The remaining-length field is at most 4 bytes (§2.2.3): 268,435,455 bytes.
inline constexpr uint32_t kMaxRemainingLength = 268'435'455;
// Longest fixed header: one type byte plus four length bytes.
inline constexpr size_t kMaxFixedHeaderLength = 5;

enum class FrameStatus : uint8_t { kComplete, kNeedMore, kInvalid };

struct Frame {
  FrameStatus status = FrameStatus::kNeedMore;
  FixedHeader header;                      // valid when status == kComplete, and when kNeedMore
                                           // once the whole fixed header has arrived
                                           // (header.header_length != 0)
  Violation violation = Violation::kNone;  // set when status == kInvalid
};

// Looks at the start of `bytes`. Rejects, as soon as the offending byte is present: reserved
// packet types 0 and 15, fixed-header flags other than those §2.2.2 fixes for the type
// (MQTT-2.2.2-1/2; PUBLISH QoS 3 and DUP with QoS 0 too, which Decode checks again), a
// remaining length longer than 4 bytes, a total packet size above `max_packet_size` (checked
// from the header alone, even from a partial length that already exceeds it, so a claimed
// 256 MiB is refused before any byte of it is buffered), and a remaining length other than the
// one §3 fixes for CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK (2) and PINGREQ,
// PINGRESP, DISCONNECT (0). The bytes are judged strictly left to right, so every prefix of a
// stream gets kNeedMore or the very answer the whole stream gets. `level` is the connection's
// protocol level (3.1.1 until a CONNECT is admitted): MQTT 3.1 also allows DUP on PUBREL,
// SUBSCRIBE and UNSUBSCRIBE, which its clients set when they retransmit them. At level 5, packet
// type 15 (AUTH) is valid, only PINGREQ and PINGRESP have a fixed remaining length, and a
// remaining length not in its shortest encoding is refused (MQTT-1.5.5-1).
Frame PeekFrame(std::span<const uint8_t> bytes, uint32_t max_packet_size,
                ProtocolLevel level = ProtocolLevel::kMqtt311);

// Decodes one packet whose fixed header is `header` and whose body (exactly
// header.remaining_length bytes) is `body`. `level` is the connection's negotiated protocol
// level. A CONNECT carries its own level; `level` only says whether 5 is spoken (DecodeConnect's
// accept_mqtt5). It matters for CONNACK (MQTT 3.1 has no session-present flag, so there the
// whole acknowledge-flags byte is reserved), for the fixed-header flags (see PeekFrame), and at
// 5 selects the 5.0 layout of every packet (properties, reason codes, subscription options).
Result<Packet> Decode(const FixedHeader& header, std::span<const uint8_t> body,
                      ProtocolLevel level = ProtocolLevel::kMqtt311);

// Decodes a CONNECT body. Distinguishes the three cases admission needs:
//  - a violation (malformed: the connection must be closed without CONNACK, MQTT-8);
//  - a Connect with level_supported == false (well formed up to the level byte, but a level or
//    name/level pair this server does not speak: CONNACK 0x01, MQTT-3.1.2-2);
//  - a fully parsed and validated Connect.
// Level 5 is "not spoken" unless `accept_mqtt5`: the caller decides when the broker speaks 5.0.
// Decode passes accept_mqtt5 = (level == kMqtt5).
Result<Connect> DecodeConnect(const FixedHeader& header, std::span<const uint8_t> body,
                              bool accept_mqtt5 = false);

// Number of bytes Encode writes for `packet` at `level`.
size_t EncodedSize(const Packet& packet, ProtocolLevel level = ProtocolLevel::kMqtt311);

// Writes `packet` to the front of `out` in the layout of `level` and returns the number of bytes
// written. A CONNECT follows its own protocol_level instead. Below 5.0 the 5.0-only members are
// not written (and AUTH is a programmer error); at 5.0 the acks, DISCONNECT and AUTH take their
// shortest form (a Success reason code without properties is left out, §3.4.2.1, §3.14.2.1).
// RINGMQ_ASSERTs that out.size() >= EncodedSize(packet, level) and that the packet is encodable
// (e.g. lengths fit in 16 bits); encoding checks programmer errors, not protocol rules.
size_t Encode(const Packet& packet, std::span<uint8_t> out,
              ProtocolLevel level = ProtocolLevel::kMqtt311);

// Writes only the fixed header plus topic and packet id of a PUBLISH (everything before the
// payload; the payload's bytes follow on the wire unchanged). Returns bytes written; at most
// PublishHeaderMaxSize(topic.size()) bytes. The broker's deliveries use EncodePublishParts
// below, which writes the whole packet.
size_t EncodePublishHeader(const Publish& publish, std::span<uint8_t> out);
inline constexpr size_t PublishHeaderMaxSize(size_t topic_size) {
  return kMaxFixedHeaderLength + 2 + topic_size + 2;
}

// A PUBLISH whose topic is already length-prefixed ([len high, len low, topic], as
// message::Message stores it): the delivery fast path. EncodePublishParts writes the same bytes
// as Encode(Publish{...}) without building a Packet, and EncodedPublishPartsSize is their count.
struct PublishParts {
  std::span<const uint8_t> encoded_topic;  // 2-byte length + topic
  std::span<const uint8_t> payload;
  QoS qos = QoS::k0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // written only when qos > 0
};
size_t EncodedPublishPartsSize(const PublishParts& parts);
size_t EncodePublishParts(const PublishParts& parts, std::span<uint8_t> out);

// The 5.0 delivery fast path: EncodePublishParts's packet with a property block built from the
// publisher's properties and the edits a broker makes per subscriber (§3.3.4): the forwarded
// block loses the publisher's Topic Alias and any Subscription Identifier (both belong to one
// connection), its Message Expiry Interval is replaced when message_expiry_s is set (the time
// left, MQTT-3.3.2-6), and the subscriber's Subscription Identifiers and Topic Alias are added.
// User Properties keep their order (MQTT-3.3.2-17, -18). With a Topic Alias the caller may pass
// an empty encoded_topic ({0, 0}). No allocation: one walk over the forwarded block for the size
// and one for the copy.
// EncodedPublishParts5Size returns 0 when the packet would be longer than the largest remaining
// length (268,435,455): the caller must not send it (MQTT-3.1.2-25), and must not call
// EncodePublishParts5 for it.
struct PublishPropertyEdits {
  std::span<const uint8_t> forwarded;                  // a validated PUBLISH (or will) property
                                                       // block; Will Delay Interval is dropped
  std::span<const uint32_t> subscription_identifiers;  // each 1..268,435,455
  uint16_t topic_alias = 0;                            // 0: none
  std::optional<uint32_t> message_expiry_s;            // set: replaces the forwarded one
};
size_t EncodedPublishParts5Size(const PublishParts& parts, const PublishPropertyEdits& edits);
size_t EncodePublishParts5(const PublishParts& parts, const PublishPropertyEdits& edits,
                           std::span<uint8_t> out);

// Encodes a SUBSCRIBE/UNSUBSCRIBE payload (the entries after the packet id) from a list of
// requests, for clients, tests and the load generator. Returns bytes written; the size needed is
// TopicListEncodedSize(requests, has_qos).
size_t EncodeTopicList(std::span<const TopicRequest> requests, bool has_qos,
                       std::span<uint8_t> out);
size_t TopicListEncodedSize(std::span<const TopicRequest> requests, bool has_qos);

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_CODEC_H_
