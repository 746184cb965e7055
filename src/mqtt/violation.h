// Why the codec rejected bytes: one value per distinct protocol violation.
//
// Every rejection carries the normative rule it enforces (OASIS MQTT 3.1.1 conformance
// statement ids such as "MQTT-3.1.2-3", or a section reference where the spec states the rule
// without an id) so that logs, tests and docs can name it. The table is an X-macro so that the
// enum, the rule strings and the descriptions cannot drift apart.
//
// Thread safety: everything here is constant data; safe from any thread.
#ifndef RINGMQ_MQTT_VIOLATION_H_
#define RINGMQ_MQTT_VIOLATION_H_

#include <cstdint>
#include <string_view>

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
  X(kSubackBadReturnCode, "MQTT-3.9.3-2", "SUBACK return code not 0x00, 0x01, 0x02 or 0x80")

enum class Violation : uint8_t {
#define RINGMQ_MQTT_VIOLATION_ENUM(name, rule, description) name,
  RINGMQ_MQTT_VIOLATIONS(RINGMQ_MQTT_VIOLATION_ENUM)
#undef RINGMQ_MQTT_VIOLATION_ENUM
};

// The spec rule a violation enforces, e.g. "MQTT-3.1.2-3".
std::string_view RuleOf(Violation violation);
// One-line human description for logs.
std::string_view DescriptionOf(Violation violation);
// The enumerator name without the leading 'k', e.g. "ConnectReservedFlag".
std::string_view NameOf(Violation violation);

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_VIOLATION_H_
