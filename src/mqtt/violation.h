// Why the codec rejected bytes: one value per distinct protocol violation.
//
// Every rejection carries the normative rule it enforces (OASIS MQTT 3.1.1 conformance
// statement ids such as "MQTT-3.1.2-3", or a section reference where the spec states the rule
// without an id) so that logs, tests and docs can name it. Rules of MQTT 5.0, whose numbering
// differs, carry the prefix "5.0:". A 5.0 packet that breaks a rule 3.1.1 also has (e.g. a
// wildcard in a topic name) reports the 3.1.1 row; docs/mqtt5.md maps those to their 5.0 ids.
// The table is an X-macro so that the enum, the rule strings and the descriptions cannot drift
// apart.
//
// Thread safety: everything here is constant data; safe from any thread.
#ifndef RINGMQ_MQTT_VIOLATION_H_
#define RINGMQ_MQTT_VIOLATION_H_

#include <cstdint>
#include <string_view>

#include "mqtt/reason_code.h"

namespace ringmq::mqtt {

// X(name, rule, description)
#define RINGMQ_MQTT_VIOLATIONS(X)                                                              \
  X(kNone, "", "no violation")                                                                 \
  /* Fixed header and framing (§2). */                                                         \
  X(kReservedPacketType, "MQTT-2.2", "packet type 0 or 15 is reserved")                        \
  X(kBadFixedHeaderFlags, "MQTT-2.2.2-1", "fixed header flags not as specified for the type")  \
  X(kRemainingLengthTooLong, "MQTT-2.2.3", "remaining length longer than 4 bytes")             \
  X(kPacketTooLarge, "max_packet_size", "packet larger than the configured max_packet_size")   \
  X(kTruncated, "MQTT-1.5", "packet body shorter than its fields require")                     \
  X(kSurplusBytes, "MQTT-1.5", "bytes left over after the last field of the packet")           \
  X(kUnexpectedPacket, "MQTT-3.1.0-1", "packet type not allowed in this state")                \
  X(kSecondConnect, "MQTT-3.1.0-2", "second CONNECT on one network connection")                \
  /* Strings (§1.5.3). */                                                                      \
  X(kInvalidUtf8, "MQTT-1.5.3-1", "string is not well-formed UTF-8")                           \
  X(kNullCharacter, "MQTT-1.5.3-2", "string contains U+0000")                                  \
  /* CONNECT (§3.1). */                                                                        \
  X(kBadProtocolName, "MQTT-3.1.2-1", "protocol name is not MQTT or MQIsdp")                   \
  X(kConnectReservedFlag, "MQTT-3.1.2-3", "CONNECT reserved flag is not zero")                 \
  X(kWillFlagsWithoutWill, "MQTT-3.1.2-13", "will QoS or will retain set without will flag")   \
  X(kWillQosInvalid, "MQTT-3.1.2-14", "will QoS is 3")                                         \
  X(kPasswordWithoutUserName, "MQTT-3.1.2-22", "password flag set without user name flag")     \
  X(kMissingClientId, "MQTT-3.1.3-3", "client identifier missing from the payload")            \
  X(kMissingWillTopic, "MQTT-3.1.2-9", "will flag set but will topic missing")                 \
  X(kMissingWillMessage, "MQTT-3.1.2-9", "will flag set but will message missing")             \
  X(kMissingUserName, "MQTT-3.1.2-19", "user name flag set but user name missing")             \
  X(kMissingPassword, "MQTT-3.1.2-21", "password flag set but password missing")               \
  X(kInvalidWillTopic, "MQTT-3.1.3-10", "will topic is not a valid topic name")                \
  /* CONNACK (§3.2). */                                                                        \
  X(kConnackReservedBits, "MQTT-3.2.2-1", "CONNACK acknowledge flags reserved bits set")       \
  X(kConnackBadReturnCode, "MQTT-3.2.2-6", "CONNACK return code above 5 or session present "   \
                                          "with a non-zero return code")                       \
  /* PUBLISH (§3.3). */                                                                        \
  X(kPublishQos3, "MQTT-3.3.1-4", "PUBLISH QoS is 3")                                          \
  X(kPublishDupWithQos0, "MQTT-3.3.1-2", "PUBLISH DUP set with QoS 0")                         \
  X(kWildcardInTopicName, "MQTT-3.3.2-2", "topic name contains a wildcard character")          \
  X(kEmptyTopic, "MQTT-4.7.3-1", "topic name or filter is empty")                              \
  X(kPacketIdZero, "MQTT-2.3.1-1", "packet identifier is zero")                                \
  /* SUBSCRIBE / UNSUBSCRIBE (§3.8, §3.10). */                                                 \
  X(kNoTopicFilters, "MQTT-3.8.3-3", "SUBSCRIBE or UNSUBSCRIBE without topic filters")         \
  X(kSubscribeReservedBits, "MQTT-3.8.3-4", "requested QoS byte has reserved bits or is 3")    \
  X(kBadMultiLevelWildcard, "MQTT-4.7.1-2", "# not alone in the last level of a filter")       \
  X(kBadSingleLevelWildcard, "MQTT-4.7.1-3", "+ does not occupy a whole level of a filter")    \
  X(kTooManyTopicLevels, "max_topic_levels", "topic or filter has more levels than allowed")   \
  /* SUBACK (§3.9). */                                                                         \
  X(kSubackBadReturnCode, "MQTT-3.9.3-2", "SUBACK return code not 0x00, 0x01, 0x02 or 0x80")  \
  /* MQTT 5.0 only; rules prefixed "5.0:" are OASIS MQTT 5.0 ids. */                           \
  X(kNonMinimalVariableByteInteger, "5.0:MQTT-1.5.5-1",                                        \
    "variable byte integer not in its shortest encoding")                                      \
  X(kVariableByteIntegerTooLong, "5.0:1.5.5", "variable byte integer longer than 4 bytes")    \
  X(kPropertyInvalidUtf8, "5.0:MQTT-1.5.4-1", "property string is not well-formed UTF-8")      \
  X(kPropertyNullCharacter, "5.0:MQTT-1.5.4-2", "property string contains U+0000")             \
  X(kUnknownProperty, "5.0:2.2.2.2", "property identifier not defined by MQTT 5.0")            \
  X(kPropertyNotAllowed, "5.0:2.2.2.2", "property not allowed in this packet")                 \
  X(kDuplicateProperty, "5.0:3.x.2.x", "property included more than once")                     \
  X(kPropertyNotZeroOrOne, "5.0:3.x.2.x", "property value must be 0 or 1")                     \
  X(kReceiveMaximumZero, "5.0:3.1.2.11.3", "Receive Maximum is 0")                              \
  X(kMaximumPacketSizeZero, "5.0:3.1.2.11.4", "Maximum Packet Size is 0")                       \
  X(kSubscriptionIdentifierZero, "5.0:3.8.2.1.2", "Subscription Identifier is 0")               \
  X(kTopicAliasZero, "5.0:MQTT-3.3.2-8", "Topic Alias is 0")                                    \
  X(kAuthenticationDataWithoutMethod, "5.0:3.1.2.11.10",                                       \
    "Authentication Data without Authentication Method")                                       \
  X(kBadReasonCode, "5.0:2.4", "reason code not allowed in this packet")                       \
  X(kEmptyTopicWithoutAlias, "5.0:3.3.2.3.4", "empty topic name without a Topic Alias")        \
  X(kSubscribeOptionsReserved, "5.0:MQTT-3.8.3-5", "subscription options reserved bits set")   \
  X(kSubscribeQos3, "5.0:3.8.3.1", "subscription options QoS is 3")                            \
  X(kRetainHandling3, "5.0:3.8.3.1", "subscription options Retain Handling is 3")              \
  X(kNoLocalOnSharedSubscription, "5.0:MQTT-3.8.3-4", "No Local set on a shared subscription") \
  X(kBadSharedSubscription, "5.0:MQTT-4.8.2-1",                                                \
    "shared subscription without share name or topic filter, or share name with / + #")        \
  X(kResponseTopicWildcard, "5.0:MQTT-3.3.2-14", "Response Topic contains a wildcard")        \
  X(kResponseTopicEmpty, "5.0:MQTT-4.7.3-1", "Response Topic is empty")                         \
  X(kAuthWithoutMethod, "5.0:3.15.2.2.2", "AUTH without Authentication Method")             \
  /* MQTT 5.0 rules that need the connection's state (net/connection.h). */                   \
  X(kTopicAliasAboveMaximum, "5.0:MQTT-3.3.2-9", "Topic Alias above the Topic Alias Maximum")  \
  X(kTopicAliasUnknown, "5.0:3.3.2.3.4", "empty topic with a Topic Alias not yet mapped")     \
  X(kReceiveMaximumExceeded, "5.0:3.3.4",                                              \
    "more QoS 2 PUBLISHes awaiting PUBREL than the Receive Maximum")                           \
  X(kQosNotSupported, "5.0:3.2.2.3.4", "PUBLISH QoS above the server's Maximum QoS")          \
  X(kRetainNotSupported, "5.0:3.2.2.3.5", "retained PUBLISH when Retain is not available")    \
  X(kSubscriptionIdentifierFromClient, "5.0:MQTT-3.3.4-6",                                    \
    "PUBLISH from a client carries a Subscription Identifier")                                 \
  X(kDisconnectSessionExpiry, "5.0:3.14.2.2.2",                                                \
    "DISCONNECT sets a Session Expiry Interval after CONNECT had 0") \
  X(kAuthMethodChanged, "5.0:MQTT-4.12.0-5",                                                   \
    "AUTH with an Authentication Method other than the CONNECT's")                             \
  X(kAuthNotContinue, "5.0:MQTT-4.12.0-3",                                                     \
    "AUTH before CONNACK without reason code 0x18 Continue authentication")                    \
  X(kPacketDuringAuth, "5.0:MQTT-3.1.2-30",                                                    \
    "packet other than AUTH or DISCONNECT before the CONNACK of enhanced authentication")     \
  X(kAuthWithoutExchange, "5.0:MQTT-4.12.0-7",                                                 \
    "AUTH from a client whose CONNECT had no Authentication Method")                           \
  X(kReauthenticationUnsupported, "5.0:4.12.1",                                                \
    "re-authentication (AUTH 0x19) is not supported")

enum class Violation : uint8_t {
#define RINGMQ_MQTT_VIOLATION_ENUM(name, rule, description) name,
  RINGMQ_MQTT_VIOLATIONS(RINGMQ_MQTT_VIOLATION_ENUM)
#undef RINGMQ_MQTT_VIOLATION_ENUM
};

// The spec rule a violation enforces, e.g. "MQTT-3.1.2-3".
std::string_view RuleOf(Violation violation);
// What an MQTT 5.0 receiver reports for `violation` in its CONNACK or DISCONNECT (§4.13):
// Malformed Packet (0x81), Protocol Error (0x82) or Packet too large (0x95).
ReasonCode ReasonCodeOf(Violation violation);
// One-line human description for logs.
std::string_view DescriptionOf(Violation violation);
// The enumerator name without the leading 'k', e.g. "ConnectReservedFlag".
std::string_view NameOf(Violation violation);

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_VIOLATION_H_
