// MQTT 5.0 reason codes (§2.4): every code, its name, and the packets that may carry it.
//
// Several codes share a value and differ by packet (0x00 is Success, Normal disconnection or
// Granted QoS 0), so the table is keyed by (value, packet type). The table is an X-macro so that
// the enum, the names and the allowed packets cannot drift apart.
//
// Thread safety: constant data and stateless functions; safe from any thread.
#ifndef RINGMQ_MQTT_REASON_CODE_H_
#define RINGMQ_MQTT_REASON_CODE_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "mqtt/packet_type.h"

namespace ringmq::mqtt {

// Bit sets of packet types: bit n is PacketType n.
inline constexpr uint16_t PacketBit(PacketType type) {
  return static_cast<uint16_t>(1u << static_cast<unsigned>(type));
}

namespace reason_packets {
inline constexpr uint16_t kConnack = PacketBit(PacketType::kConnack);
inline constexpr uint16_t kPuback = PacketBit(PacketType::kPuback);
inline constexpr uint16_t kPubrec = PacketBit(PacketType::kPubrec);
inline constexpr uint16_t kPubrel = PacketBit(PacketType::kPubrel);
inline constexpr uint16_t kPubcomp = PacketBit(PacketType::kPubcomp);
inline constexpr uint16_t kSuback = PacketBit(PacketType::kSuback);
inline constexpr uint16_t kUnsuback = PacketBit(PacketType::kUnsuback);
inline constexpr uint16_t kDisconnect = PacketBit(PacketType::kDisconnect);
inline constexpr uint16_t kAuth = PacketBit(PacketType::kAuth);
// The codes every error-capable ack shares (0x80, 0x83, 0x87).
inline constexpr uint16_t kAcks = kConnack | kPuback | kPubrec | kSuback | kUnsuback | kDisconnect;
}  // namespace reason_packets

// X(enumerator, value, name, packets) -- §2.4 Table 2-6.
#define RINGMQ_MQTT_REASON_CODES(X)                                                            \
  X(kSuccess, 0x00, "Success",                                                                 \
    reason_packets::kConnack | reason_packets::kPuback | reason_packets::kPubrec |             \
        reason_packets::kPubrel | reason_packets::kPubcomp | reason_packets::kUnsuback |       \
        reason_packets::kAuth)                                                                 \
  X(kNormalDisconnection, 0x00, "Normal disconnection", reason_packets::kDisconnect)          \
  X(kGrantedQos0, 0x00, "Granted QoS 0", reason_packets::kSuback)                              \
  X(kGrantedQos1, 0x01, "Granted QoS 1", reason_packets::kSuback)                              \
  X(kGrantedQos2, 0x02, "Granted QoS 2", reason_packets::kSuback)                              \
  X(kDisconnectWithWillMessage, 0x04, "Disconnect with Will Message",                          \
    reason_packets::kDisconnect)                                                               \
  X(kNoMatchingSubscribers, 0x10, "No matching subscribers",                                   \
    reason_packets::kPuback | reason_packets::kPubrec)                                         \
  X(kNoSubscriptionExisted, 0x11, "No subscription existed", reason_packets::kUnsuback)        \
  X(kContinueAuthentication, 0x18, "Continue authentication", reason_packets::kAuth)          \
  X(kReAuthenticate, 0x19, "Re-authenticate", reason_packets::kAuth)                           \
  X(kUnspecifiedError, 0x80, "Unspecified error", reason_packets::kAcks)                       \
  X(kMalformedPacket, 0x81, "Malformed Packet",                                                \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kProtocolError, 0x82, "Protocol Error",                                                    \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kImplementationSpecificError, 0x83, "Implementation specific error",                       \
    reason_packets::kAcks)                                                                     \
  X(kUnsupportedProtocolVersion, 0x84, "Unsupported Protocol Version",                         \
    reason_packets::kConnack)                                                                  \
  X(kClientIdentifierNotValid, 0x85, "Client Identifier not valid", reason_packets::kConnack)  \
  X(kBadUserNameOrPassword, 0x86, "Bad User Name or Password", reason_packets::kConnack)       \
  X(kNotAuthorized, 0x87, "Not authorized", reason_packets::kAcks)                             \
  X(kServerUnavailable, 0x88, "Server unavailable", reason_packets::kConnack)                  \
  X(kServerBusy, 0x89, "Server busy", reason_packets::kConnack | reason_packets::kDisconnect)  \
  X(kBanned, 0x8A, "Banned", reason_packets::kConnack)                                         \
  X(kServerShuttingDown, 0x8B, "Server shutting down", reason_packets::kDisconnect)            \
  X(kBadAuthenticationMethod, 0x8C, "Bad authentication method",                               \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kKeepAliveTimeout, 0x8D, "Keep Alive timeout", reason_packets::kDisconnect)                \
  X(kSessionTakenOver, 0x8E, "Session taken over", reason_packets::kDisconnect)                \
  X(kTopicFilterInvalid, 0x8F, "Topic Filter invalid",                                         \
    reason_packets::kSuback | reason_packets::kUnsuback | reason_packets::kDisconnect)         \
  X(kTopicNameInvalid, 0x90, "Topic Name invalid",                                             \
    reason_packets::kConnack | reason_packets::kPuback | reason_packets::kPubrec |             \
        reason_packets::kDisconnect)                                                           \
  X(kPacketIdentifierInUse, 0x91, "Packet Identifier in use",                                  \
    reason_packets::kPuback | reason_packets::kPubrec | reason_packets::kSuback |              \
        reason_packets::kUnsuback)                                                             \
  X(kPacketIdentifierNotFound, 0x92, "Packet Identifier not found",                            \
    reason_packets::kPubrel | reason_packets::kPubcomp)                                        \
  X(kReceiveMaximumExceeded, 0x93, "Receive Maximum exceeded", reason_packets::kDisconnect)    \
  X(kTopicAliasInvalid, 0x94, "Topic Alias invalid", reason_packets::kDisconnect)              \
  X(kPacketTooLarge, 0x95, "Packet too large",                                                 \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kMessageRateTooHigh, 0x96, "Message rate too high", reason_packets::kDisconnect)           \
  X(kQuotaExceeded, 0x97, "Quota exceeded",                                                    \
    reason_packets::kConnack | reason_packets::kPuback | reason_packets::kPubrec |             \
        reason_packets::kSuback | reason_packets::kDisconnect)                                 \
  X(kAdministrativeAction, 0x98, "Administrative action", reason_packets::kDisconnect)         \
  X(kPayloadFormatInvalid, 0x99, "Payload format invalid",                                     \
    reason_packets::kConnack | reason_packets::kPuback | reason_packets::kPubrec |             \
        reason_packets::kDisconnect)                                                           \
  X(kRetainNotSupported, 0x9A, "Retain not supported",                                         \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kQosNotSupported, 0x9B, "QoS not supported",                                               \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kUseAnotherServer, 0x9C, "Use another server",                                             \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kServerMoved, 0x9D, "Server moved", reason_packets::kConnack | reason_packets::kDisconnect) \
  X(kSharedSubscriptionsNotSupported, 0x9E, "Shared Subscriptions not supported",              \
    reason_packets::kSuback | reason_packets::kDisconnect)                                     \
  X(kConnectionRateExceeded, 0x9F, "Connection rate exceeded",                                 \
    reason_packets::kConnack | reason_packets::kDisconnect)                                    \
  X(kMaximumConnectTime, 0xA0, "Maximum connect time", reason_packets::kDisconnect)            \
  X(kSubscriptionIdentifiersNotSupported, 0xA1, "Subscription Identifiers not supported",      \
    reason_packets::kSuback | reason_packets::kDisconnect)                                     \
  X(kWildcardSubscriptionsNotSupported, 0xA2, "Wildcard Subscriptions not supported",          \
    reason_packets::kSuback | reason_packets::kDisconnect)

enum class ReasonCode : uint8_t {
#define RINGMQ_MQTT_REASON_CODE_ENUM(enumerator, value, name, packets) enumerator = value,
  RINGMQ_MQTT_REASON_CODES(RINGMQ_MQTT_REASON_CODE_ENUM)
#undef RINGMQ_MQTT_REASON_CODE_ENUM
};

struct ReasonCodeInfo {
  uint8_t value;
  std::string_view name;
  uint16_t packets;  // PacketBit set
};

// Every row of §2.4's table, in the table's order (value, then packet).
std::span<const ReasonCodeInfo> AllReasonCodes();

// True when `packet` may carry `code` (MQTT-3.2.2-8, MQTT-3.4.2-1, MQTT-3.5.2-1, MQTT-3.6.2-1,
// MQTT-3.7.2-1, MQTT-3.9.3-2, MQTT-3.11.3-2, MQTT-3.14.2-1, MQTT-3.15.2-1).
bool IsReasonCodeAllowed(uint8_t code, PacketType packet);

// The spec's name of `code` in `packet`, e.g. (0x00, DISCONNECT) -> "Normal disconnection";
// empty when the packet may not carry the code.
std::string_view NameOf(ReasonCode code, PacketType packet);

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_REASON_CODE_H_
