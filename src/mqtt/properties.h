// MQTT 5.0 properties (§2.2.2): the table of all 27 property identifiers, one-pass validation of
// a property block, allocation-free access to a validated block, and the encoding of single
// properties.
//
// A property block is the bytes after the Property Length (§2.2.2.1). The decoder validates a
// block once (ValidateProperties) and hands it on as a Properties view: the raw bytes, so the
// broker can forward a PUBLISH's properties unchanged, an iterator over every property (User
// Properties and Subscription Identifiers may repeat), and Values(), the decoded scalars. Values
// and strings view the input bytes; nothing allocates.
//
// Thread safety: constant data, stateless functions, and plain views; safe from any thread.
#ifndef RINGMQ_MQTT_PROPERTIES_H_
#define RINGMQ_MQTT_PROPERTIES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "mqtt/packet_type.h"
#include "mqtt/reason_code.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {

// §2.2.2.2 / §1.5: the data type of a property value.
enum class PropertyType : uint8_t {
  kByte,
  kTwoByteInteger,
  kFourByteInteger,
  kVariableByteInteger,
  kUtf8String,
  kBinaryData,
  kUtf8StringPair,
};

// Where a property block sits: a packet type (PacketBit) or the will properties of CONNECT,
// which take bit 0 (packet type 0 is reserved, so the bit is free).
inline constexpr uint16_t kWillPropertiesBit = 1u << 0;

// X(enumerator, id, name, type, allowed, repeatable): `allowed` and `repeatable` are sets of
// PacketBit / kWillPropertiesBit. §2.2.2.2 Table 2-4; "repeatable" from §3.x.2.x ("It is a
// Protocol Error to include X more than once" holds for every property except User Property,
// and Subscription Identifier in a PUBLISH, §3.3.2.3.8).
#define RINGMQ_MQTT_PROPERTIES(X)                                                               \
  X(kPayloadFormatIndicator, 0x01, "Payload Format Indicator", kByte,                           \
    PacketBit(PacketType::kPublish) | kWillPropertiesBit, 0)                                    \
  X(kMessageExpiryInterval, 0x02, "Message Expiry Interval", kFourByteInteger,                  \
    PacketBit(PacketType::kPublish) | kWillPropertiesBit, 0)                                    \
  X(kContentType, 0x03, "Content Type", kUtf8String,                                            \
    PacketBit(PacketType::kPublish) | kWillPropertiesBit, 0)                                    \
  X(kResponseTopic, 0x08, "Response Topic", kUtf8String,                                        \
    PacketBit(PacketType::kPublish) | kWillPropertiesBit, 0)                                    \
  X(kCorrelationData, 0x09, "Correlation Data", kBinaryData,                                    \
    PacketBit(PacketType::kPublish) | kWillPropertiesBit, 0)                                    \
  X(kSubscriptionIdentifier, 0x0B, "Subscription Identifier", kVariableByteInteger,             \
    PacketBit(PacketType::kPublish) | PacketBit(PacketType::kSubscribe),                        \
    PacketBit(PacketType::kPublish))                                                            \
  X(kSessionExpiryInterval, 0x11, "Session Expiry Interval", kFourByteInteger,                  \
    PacketBit(PacketType::kConnect) | PacketBit(PacketType::kConnack) |                         \
        PacketBit(PacketType::kDisconnect),                                                     \
    0)                                                                                          \
  X(kAssignedClientIdentifier, 0x12, "Assigned Client Identifier", kUtf8String,                 \
    PacketBit(PacketType::kConnack), 0)                                                         \
  X(kServerKeepAlive, 0x13, "Server Keep Alive", kTwoByteInteger,                               \
    PacketBit(PacketType::kConnack), 0)                                                         \
  X(kAuthenticationMethod, 0x15, "Authentication Method", kUtf8String,                          \
    PacketBit(PacketType::kConnect) | PacketBit(PacketType::kConnack) |                         \
        PacketBit(PacketType::kAuth),                                                           \
    0)                                                                                          \
  X(kAuthenticationData, 0x16, "Authentication Data", kBinaryData,                              \
    PacketBit(PacketType::kConnect) | PacketBit(PacketType::kConnack) |                         \
        PacketBit(PacketType::kAuth),                                                           \
    0)                                                                                          \
  X(kRequestProblemInformation, 0x17, "Request Problem Information", kByte,                     \
    PacketBit(PacketType::kConnect), 0)                                                         \
  X(kWillDelayInterval, 0x18, "Will Delay Interval", kFourByteInteger, kWillPropertiesBit, 0)   \
  X(kRequestResponseInformation, 0x19, "Request Response Information", kByte,                   \
    PacketBit(PacketType::kConnect), 0)                                                         \
  X(kResponseInformation, 0x1A, "Response Information", kUtf8String,                            \
    PacketBit(PacketType::kConnack), 0)                                                         \
  X(kServerReference, 0x1C, "Server Reference", kUtf8String,                                    \
    PacketBit(PacketType::kConnack) | PacketBit(PacketType::kDisconnect), 0)                    \
  X(kReasonString, 0x1F, "Reason String", kUtf8String,                                          \
    PacketBit(PacketType::kConnack) | PacketBit(PacketType::kPuback) |                          \
        PacketBit(PacketType::kPubrec) | PacketBit(PacketType::kPubrel) |                       \
        PacketBit(PacketType::kPubcomp) | PacketBit(PacketType::kSuback) |                      \
        PacketBit(PacketType::kUnsuback) | PacketBit(PacketType::kDisconnect) |                 \
        PacketBit(PacketType::kAuth),                                                           \
    0)                                                                                          \
  X(kReceiveMaximum, 0x21, "Receive Maximum", kTwoByteInteger,                                  \
    PacketBit(PacketType::kConnect) | PacketBit(PacketType::kConnack), 0)                       \
  X(kTopicAliasMaximum, 0x22, "Topic Alias Maximum", kTwoByteInteger,                           \
    PacketBit(PacketType::kConnect) | PacketBit(PacketType::kConnack), 0)                       \
  X(kTopicAlias, 0x23, "Topic Alias", kTwoByteInteger, PacketBit(PacketType::kPublish), 0)      \
  X(kMaximumQos, 0x24, "Maximum QoS", kByte, PacketBit(PacketType::kConnack), 0)                \
  X(kRetainAvailable, 0x25, "Retain Available", kByte, PacketBit(PacketType::kConnack), 0)      \
  X(kUserProperty, 0x26, "User Property", kUtf8StringPair, kUserPropertyPackets,                \
    kUserPropertyPackets)                                                                       \
  X(kMaximumPacketSize, 0x27, "Maximum Packet Size", kFourByteInteger,                          \
    PacketBit(PacketType::kConnect) | PacketBit(PacketType::kConnack), 0)                       \
  X(kWildcardSubscriptionAvailable, 0x28, "Wildcard Subscription Available", kByte,             \
    PacketBit(PacketType::kConnack), 0)                                                         \
  X(kSubscriptionIdentifierAvailable, 0x29, "Subscription Identifier Available", kByte,         \
    PacketBit(PacketType::kConnack), 0)                                                         \
  X(kSharedSubscriptionAvailable, 0x2A, "Shared Subscription Available", kByte,                 \
    PacketBit(PacketType::kConnack), 0)

// User Property may appear in every packet that has properties (all but PINGREQ/PINGRESP) and in
// the will properties.
inline constexpr uint16_t kUserPropertyPackets = static_cast<uint16_t>(
    0xFFFF & ~PacketBit(PacketType::kPingreq) & ~PacketBit(PacketType::kPingresp));

enum class PropertyId : uint8_t {
#define RINGMQ_MQTT_PROPERTY_ENUM(enumerator, id, name, type, allowed, repeatable) enumerator = id,
  RINGMQ_MQTT_PROPERTIES(RINGMQ_MQTT_PROPERTY_ENUM)
#undef RINGMQ_MQTT_PROPERTY_ENUM
};

struct PropertyInfo {
  PropertyId id;
  std::string_view name;
  PropertyType type;
  uint16_t allowed;     // PacketBit / kWillPropertiesBit set
  uint16_t repeatable;  // where it may appear more than once
};

// All 27 rows in identifier order.
std::span<const PropertyInfo> AllProperties();
// The row of `id`, or nullptr for an identifier §2.2.2.2 does not define.
const PropertyInfo* FindProperty(uint8_t id);

// Property identifiers are below 64, so one uint64_t holds the "seen" set of a block.
inline constexpr uint8_t kMaxPropertyId = 0x2A;
static_assert(kMaxPropertyId < 64);

// The largest Variable Byte Integer (§1.5.5).
inline constexpr uint32_t kMaxVariableByteInteger = 268'435'455;

// One property of a validated block. `integer` holds Byte, Two/Four Byte and Variable Byte
// Integer values; `text` holds a UTF-8 string, binary data, or a pair's name; `pair_value` a
// pair's value.
struct Property {
  PropertyId id = PropertyId::kUserProperty;
  uint32_t integer = 0;
  std::string_view text;
  std::string_view pair_value;
  bool operator==(const Property&) const = default;
};

// The single-valued properties of a block, decoded. Subscription Identifier holds the first one
// (a SUBSCRIBE carries at most one); User Properties are read with the iterator.
struct PropertyValues {
  std::optional<uint8_t> payload_format_indicator;
  std::optional<uint32_t> message_expiry_interval_s;
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> response_topic;
  std::optional<std::string_view> correlation_data;
  std::optional<uint32_t> subscription_identifier;
  std::optional<uint32_t> session_expiry_interval_s;
  std::optional<std::string_view> assigned_client_identifier;
  std::optional<uint16_t> server_keep_alive_s;
  std::optional<std::string_view> authentication_method;
  std::optional<std::string_view> authentication_data;
  std::optional<uint8_t> request_problem_information;
  std::optional<uint32_t> will_delay_interval_s;
  std::optional<uint8_t> request_response_information;
  std::optional<std::string_view> response_information;
  std::optional<std::string_view> server_reference;
  std::optional<std::string_view> reason_string;
  std::optional<uint16_t> receive_maximum;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<uint16_t> topic_alias;
  std::optional<uint8_t> maximum_qos;
  std::optional<uint8_t> retain_available;
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> wildcard_subscription_available;
  std::optional<uint8_t> subscription_identifier_available;
  std::optional<uint8_t> shared_subscription_available;
  size_t user_property_count = 0;
  size_t subscription_identifier_count = 0;
};

// Validates a property block in one pass: every identifier known (§2.2.2.2: Malformed Packet)
// and allowed in `where` (a PacketBit or kWillPropertiesBit; Malformed Packet), each value
// complete and of its type (Variable Byte Integers minimal, MQTT-1.5.5-1; strings well-formed
// UTF-8 without U+0000, MQTT-1.5.4-1, MQTT-1.5.4-2), no property twice unless repeatable
// (Protocol Error), and the value ranges of §3 (Receive Maximum, Maximum Packet Size,
// Subscription Identifier and Topic Alias not 0; the 0-or-1 bytes not above 1; Maximum QoS 0 or
// 1; no wildcard in a Response Topic, MQTT-3.3.2-14). Returns kNone when valid.
// Allocation-free; O(block size).
Violation ValidateProperties(std::span<const uint8_t> block, uint16_t where);

// A validated property block (or an empty one). Iterating or reading values of bytes that
// ValidateProperties did not accept is a programmer error (RINGMQ_ASSERT).
class Properties {
 public:
  class Iterator {
   public:
    using value_type = Property;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(std::span<const uint8_t> rest) : rest_(rest) {}
    Property operator*() const;
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    bool operator==(const Iterator& other) const { return rest_.size() == other.rest_.size(); }

   private:
    std::span<const uint8_t> rest_;
  };

  Properties() = default;
  explicit Properties(std::span<const uint8_t> block) : block_(block) {}

  Iterator begin() const { return Iterator(block_); }
  Iterator end() const { return Iterator(block_.last(0)); }
  bool empty() const { return block_.empty(); }
  // The block without its Property Length: what a forwarded PUBLISH carries unchanged.
  std::span<const uint8_t> raw() const { return block_; }
  // The first property with `id`, if any.
  std::optional<Property> Find(PropertyId id) const;
  // Every single-valued property decoded; counts of the repeatable ones.
  PropertyValues Values() const;

  bool operator==(const Properties& other) const;

 private:
  std::span<const uint8_t> block_;
};

// Reads a Variable Byte Integer (§1.5.5) at `position` and advances past it: kTruncated when the
// bytes end inside it, kNonMinimalVariableByteInteger (MQTT-1.5.5-1), or
// kVariableByteIntegerTooLong past 4 bytes.
Violation ReadVariableByteInteger(std::span<const uint8_t> bytes, size_t& position,
                                  uint32_t& value);

// The size of the first property of a validated block (identifier and value).
size_t FirstPropertySize(std::span<const uint8_t> block);

// Encoded size of a Variable Byte Integer (§1.5.5): 1..4.
size_t VariableByteIntegerSize(uint32_t value);
// Writes `value` as a minimal Variable Byte Integer; returns bytes written.
size_t EncodeVariableByteInteger(uint32_t value, std::span<uint8_t> out);

// Encoding of single properties into a block the caller owns (e.g. a CONNACK's properties in a
// stack buffer): each returns the bytes written; the matching *Size gives the count first.
// `id` must be of the matching type (RINGMQ_ASSERT).
size_t IntegerPropertySize(PropertyId id, uint32_t value);
size_t EncodeIntegerProperty(PropertyId id, uint32_t value, std::span<uint8_t> out);
size_t StringPropertySize(PropertyId id, std::string_view value);
size_t EncodeStringProperty(PropertyId id, std::string_view value, std::span<uint8_t> out);
size_t UserPropertySize(std::string_view name, std::string_view value);
size_t EncodeUserProperty(std::string_view name, std::string_view value, std::span<uint8_t> out);

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_PROPERTIES_H_
