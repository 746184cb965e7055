#include "mqtt/properties.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "common/assert.h"
#include "common/bytes.h"
#include "mqtt/topic.h"

namespace ringmq::mqtt {
namespace {

constexpr std::array kProperties = {
#define RINGMQ_MQTT_PROPERTY_INFO(enumerator, id, name, type, allowed, repeatable)               \
  PropertyInfo{PropertyId::enumerator, name, PropertyType::type, static_cast<uint16_t>(allowed), \
               static_cast<uint16_t>(repeatable)},
    RINGMQ_MQTT_PROPERTIES(RINGMQ_MQTT_PROPERTY_INFO)
#undef RINGMQ_MQTT_PROPERTY_INFO
};
static_assert(kProperties.size() == 27);  // §2.2.2.2 Table 2-4

// Row index + 1 per identifier (0: undefined), so FindProperty is one load.
constexpr std::array<uint8_t, kMaxPropertyId + 1> IndexById() {
  std::array<uint8_t, kMaxPropertyId + 1> index{};
  for (size_t row = 0; row < kProperties.size(); ++row) {
    index[static_cast<uint8_t>(kProperties[row].id)] = static_cast<uint8_t>(row + 1);
  }
  return index;
}
constexpr std::array<uint8_t, kMaxPropertyId + 1> kIndexById = IndexById();

// A UTF-8 string property: the 3.1.1 validator's answers renamed to the 5.0 rules.
Violation CheckPropertyUtf8(std::string_view text) {
  switch (ValidateUtf8(text)) {
    case Violation::kNone:
      return Violation::kNone;
    case Violation::kNullCharacter:
      return Violation::kPropertyNullCharacter;  // MQTT-1.5.4-2
    default:
      return Violation::kPropertyInvalidUtf8;  // MQTT-1.5.4-1
  }
}

bool ReadLengthPrefixed(std::span<const uint8_t> bytes, size_t& position, std::string_view& value) {
  if (bytes.size() - position < 2) {
    return false;
  }
  const size_t length = (size_t{bytes[position]} << 8) | bytes[position + 1];
  if (bytes.size() - position - 2 < length) {
    return false;
  }
  value = AsText(bytes.subspan(position + 2, length));
  position += 2 + length;
  return true;
}

uint32_t ReadBigEndian(std::span<const uint8_t> bytes, size_t position, size_t width) {
  uint32_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value = (value << 8) | bytes[position + i];
  }
  return value;
}

// Parses the property at `position` (identifier and value) and advances past it. Checks the
// value's type only; `check_strings` turns the UTF-8 check on (off when re-reading a validated
// block).
Violation ParseProperty(std::span<const uint8_t> bytes, size_t& position, bool check_strings,
                        Property& property, const PropertyInfo*& info) {
  RINGMQ_ASSERT(position < bytes.size());
  info = FindProperty(bytes[position]);
  if (info == nullptr) {
    return Violation::kUnknownProperty;  // §2.2.2.2: also any multi-byte identifier
  }
  ++position;
  property = Property{};
  property.id = info->id;
  size_t width = 0;
  switch (info->type) {
    case PropertyType::kByte:
      width = 1;
      break;
    case PropertyType::kTwoByteInteger:
      width = 2;
      break;
    case PropertyType::kFourByteInteger:
      width = 4;
      break;
    case PropertyType::kVariableByteInteger:
      return ReadVariableByteInteger(bytes, position, property.integer);
    case PropertyType::kUtf8String:
    case PropertyType::kBinaryData:
    case PropertyType::kUtf8StringPair: {
      if (!ReadLengthPrefixed(bytes, position, property.text)) {
        return Violation::kTruncated;
      }
      if (info->type == PropertyType::kUtf8StringPair &&
          !ReadLengthPrefixed(bytes, position, property.pair_value)) {
        return Violation::kTruncated;
      }
      if (!check_strings || info->type == PropertyType::kBinaryData) {
        return Violation::kNone;
      }
      const Violation violation = CheckPropertyUtf8(property.text);
      return violation != Violation::kNone ? violation : CheckPropertyUtf8(property.pair_value);
    }
  }
  if (bytes.size() - position < width) {
    return Violation::kTruncated;
  }
  property.integer = ReadBigEndian(bytes, position, width);
  position += width;
  return Violation::kNone;
}

// The value ranges §3 states per property.
Violation CheckRange(const Property& property) {
  switch (property.id) {
    case PropertyId::kPayloadFormatIndicator:           // §3.3.2.3.2
    case PropertyId::kRequestProblemInformation:        // §3.1.2.11.7
    case PropertyId::kRequestResponseInformation:       // §3.1.2.11.6
    case PropertyId::kMaximumQos:                       // §3.2.2.3.4
    case PropertyId::kRetainAvailable:                  // §3.2.2.3.5
    case PropertyId::kWildcardSubscriptionAvailable:    // §3.2.2.3.11
    case PropertyId::kSubscriptionIdentifierAvailable:  // §3.2.2.3.12
    case PropertyId::kSharedSubscriptionAvailable:      // §3.2.2.3.13
      return property.integer <= 1 ? Violation::kNone : Violation::kPropertyNotZeroOrOne;
    case PropertyId::kReceiveMaximum:  // §3.1.2.11.3, §3.2.2.3.3
      return property.integer != 0 ? Violation::kNone : Violation::kReceiveMaximumZero;
    case PropertyId::kMaximumPacketSize:  // §3.1.2.11.4, §3.2.2.3.6
      return property.integer != 0 ? Violation::kNone : Violation::kMaximumPacketSizeZero;
    case PropertyId::kSubscriptionIdentifier:  // §3.3.2.3.8, §3.8.2.1.2: 1..268,435,455
      return property.integer != 0 ? Violation::kNone : Violation::kSubscriptionIdentifierZero;
    case PropertyId::kTopicAlias:  // MQTT-3.3.2-8
      return property.integer != 0 ? Violation::kNone : Violation::kTopicAliasZero;
    case PropertyId::kResponseTopic:  // MQTT-3.3.2-14: a topic name, not a filter
      if (property.text.empty()) return Violation::kResponseTopicEmpty;  // MQTT-4.7.3-1
      return property.text.find_first_of("+#") == std::string_view::npos
                 ? Violation::kNone
                 : Violation::kResponseTopicWildcard;
    default:
      return Violation::kNone;
  }
}

}  // namespace

std::span<const PropertyInfo> AllProperties() { return kProperties; }

const PropertyInfo* FindProperty(uint8_t id) {
  if (id > kMaxPropertyId || kIndexById[id] == 0) {
    return nullptr;
  }
  return &kProperties[kIndexById[id] - 1];
}

Violation ReadVariableByteInteger(std::span<const uint8_t> bytes, size_t& position,
                                  uint32_t& value) {
  uint32_t result = 0;
  // §1.5.5: at most 4 bytes, 7 bits each, least significant first.
  for (size_t index = 0; index < 4; ++index) {
    if (position + index >= bytes.size()) {
      return Violation::kTruncated;
    }
    const uint8_t byte = bytes[position + index];
    result |= uint32_t{byte & 0x7Fu} << (7 * index);
    if ((byte & 0x80) == 0) {
      if (byte == 0 && index > 0) {
        return Violation::kNonMinimalVariableByteInteger;  // MQTT-1.5.5-1
      }
      position += index + 1;
      value = result;
      return Violation::kNone;
    }
  }
  return Violation::kVariableByteIntegerTooLong;
}

Violation ValidateProperties(std::span<const uint8_t> block, uint16_t where) {
  uint64_t seen = 0;
  size_t position = 0;
  // Each property takes at least 2 bytes: at most block.size() / 2 iterations.
  while (position < block.size()) {
    Property property;
    const PropertyInfo* info = nullptr;
    if (const Violation violation = ParseProperty(block, position, true, property, info);
        violation != Violation::kNone) {
      return violation;
    }
    if ((info->allowed & where) == 0) {
      return Violation::kPropertyNotAllowed;  // §2.2.2.2: Malformed Packet
    }
    const uint64_t bit = uint64_t{1} << static_cast<uint8_t>(info->id);
    if ((seen & bit) != 0 && (info->repeatable & where) == 0) {
      return Violation::kDuplicateProperty;  // Protocol Error, §3.x.2.x of each property
    }
    seen |= bit;
    if (const Violation violation = CheckRange(property); violation != Violation::kNone) {
      return violation;
    }
  }
  return Violation::kNone;
}

Property Properties::Iterator::operator*() const {
  size_t position = 0;
  Property property;
  const PropertyInfo* info = nullptr;
  const Violation violation = ParseProperty(rest_, position, false, property, info);
  RINGMQ_ASSERT(violation == Violation::kNone);
  return property;
}

Properties::Iterator& Properties::Iterator::operator++() {
  size_t position = 0;
  Property property;
  const PropertyInfo* info = nullptr;
  const Violation violation = ParseProperty(rest_, position, false, property, info);
  RINGMQ_ASSERT(violation == Violation::kNone);
  rest_ = rest_.subspan(position);
  return *this;
}

size_t FirstPropertySize(std::span<const uint8_t> block) {
  size_t position = 0;
  Property property;
  const PropertyInfo* info = nullptr;
  const Violation violation = ParseProperty(block, position, false, property, info);
  RINGMQ_ASSERT(violation == Violation::kNone);
  return position;
}

std::optional<Property> Properties::Find(PropertyId id) const {
  for (const Property property : *this) {  // bounded by block size / 2
    if (property.id == id) {
      return property;
    }
  }
  return std::nullopt;
}

PropertyValues Properties::Values() const {
  PropertyValues values;
  for (const Property p : *this) {  // bounded by block size / 2
    const auto byte = static_cast<uint8_t>(p.integer);
    const auto u16 = static_cast<uint16_t>(p.integer);
    switch (p.id) {
      case PropertyId::kPayloadFormatIndicator:
        values.payload_format_indicator = byte;
        break;
      case PropertyId::kMessageExpiryInterval:
        values.message_expiry_interval_s = p.integer;
        break;
      case PropertyId::kContentType:
        values.content_type = p.text;
        break;
      case PropertyId::kResponseTopic:
        values.response_topic = p.text;
        break;
      case PropertyId::kCorrelationData:
        values.correlation_data = p.text;
        break;
      case PropertyId::kSubscriptionIdentifier:
        if (values.subscription_identifier_count++ == 0) {
          values.subscription_identifier = p.integer;
        }
        break;
      case PropertyId::kSessionExpiryInterval:
        values.session_expiry_interval_s = p.integer;
        break;
      case PropertyId::kAssignedClientIdentifier:
        values.assigned_client_identifier = p.text;
        break;
      case PropertyId::kServerKeepAlive:
        values.server_keep_alive_s = u16;
        break;
      case PropertyId::kAuthenticationMethod:
        values.authentication_method = p.text;
        break;
      case PropertyId::kAuthenticationData:
        values.authentication_data = p.text;
        break;
      case PropertyId::kRequestProblemInformation:
        values.request_problem_information = byte;
        break;
      case PropertyId::kWillDelayInterval:
        values.will_delay_interval_s = p.integer;
        break;
      case PropertyId::kRequestResponseInformation:
        values.request_response_information = byte;
        break;
      case PropertyId::kResponseInformation:
        values.response_information = p.text;
        break;
      case PropertyId::kServerReference:
        values.server_reference = p.text;
        break;
      case PropertyId::kReasonString:
        values.reason_string = p.text;
        break;
      case PropertyId::kReceiveMaximum:
        values.receive_maximum = u16;
        break;
      case PropertyId::kTopicAliasMaximum:
        values.topic_alias_maximum = u16;
        break;
      case PropertyId::kTopicAlias:
        values.topic_alias = u16;
        break;
      case PropertyId::kMaximumQos:
        values.maximum_qos = byte;
        break;
      case PropertyId::kRetainAvailable:
        values.retain_available = byte;
        break;
      case PropertyId::kUserProperty:
        ++values.user_property_count;
        break;
      case PropertyId::kMaximumPacketSize:
        values.maximum_packet_size = p.integer;
        break;
      case PropertyId::kWildcardSubscriptionAvailable:
        values.wildcard_subscription_available = byte;
        break;
      case PropertyId::kSubscriptionIdentifierAvailable:
        values.subscription_identifier_available = byte;
        break;
      case PropertyId::kSharedSubscriptionAvailable:
        values.shared_subscription_available = byte;
        break;
    }
  }
  return values;
}

bool Properties::operator==(const Properties& other) const {
  return std::ranges::equal(block_, other.block_);
}

size_t VariableByteIntegerSize(uint32_t value) {
  RINGMQ_ASSERT(value <= kMaxVariableByteInteger);
  return value < 128 ? 1 : value < 16'384 ? 2 : value < 2'097'152 ? 3 : 4;
}

size_t EncodeVariableByteInteger(uint32_t value, std::span<uint8_t> out) {
  const size_t size = VariableByteIntegerSize(value);
  RINGMQ_ASSERT(out.size() >= size);
  for (size_t i = 0; i < size; ++i) {
    const auto low_bits = static_cast<uint8_t>(value & 0x7F);
    value >>= 7;
    out[i] = i + 1 < size ? (low_bits | 0x80) : low_bits;
  }
  return size;
}

namespace {

size_t IntegerWidth(PropertyType type, uint32_t value) {
  switch (type) {
    case PropertyType::kByte:
      RINGMQ_ASSERT(value <= 0xFF);
      return 1;
    case PropertyType::kTwoByteInteger:
      RINGMQ_ASSERT(value <= 0xFFFF);
      return 2;
    case PropertyType::kFourByteInteger:
      return 4;
    case PropertyType::kVariableByteInteger:
      return VariableByteIntegerSize(value);
    default:
      RINGMQ_ASSERT(false && "not an integer property");
      return 0;
  }
}

const PropertyInfo& InfoOf(PropertyId id) {
  const PropertyInfo* info = FindProperty(static_cast<uint8_t>(id));
  RINGMQ_ASSERT(info != nullptr);
  return *info;
}

size_t PutLengthPrefixed(std::string_view text, std::span<uint8_t> out) {
  RINGMQ_ASSERT(text.size() <= 0xFFFF && out.size() >= 2 + text.size());
  out[0] = static_cast<uint8_t>(text.size() >> 8);
  out[1] = static_cast<uint8_t>(text.size() & 0xFF);
  if (!text.empty()) {
    std::memcpy(out.data() + 2, text.data(), text.size());
  }
  return 2 + text.size();
}

}  // namespace

size_t IntegerPropertySize(PropertyId id, uint32_t value) {
  return 1 + IntegerWidth(InfoOf(id).type, value);
}

size_t EncodeIntegerProperty(PropertyId id, uint32_t value, std::span<uint8_t> out) {
  const PropertyType type = InfoOf(id).type;
  const size_t size = 1 + IntegerWidth(type, value);
  RINGMQ_ASSERT(out.size() >= size);
  out[0] = static_cast<uint8_t>(id);
  if (type == PropertyType::kVariableByteInteger) {
    EncodeVariableByteInteger(value, out.subspan(1));
    return size;
  }
  for (size_t i = 1; i < size; ++i) {
    out[i] = static_cast<uint8_t>(value >> (8 * (size - 1 - i)));
  }
  return size;
}

size_t StringPropertySize(PropertyId id, std::string_view value) {
  const PropertyType type = InfoOf(id).type;
  RINGMQ_ASSERT(type == PropertyType::kUtf8String || type == PropertyType::kBinaryData);
  return 1 + 2 + value.size();
}

size_t EncodeStringProperty(PropertyId id, std::string_view value, std::span<uint8_t> out) {
  const size_t size = StringPropertySize(id, value);
  RINGMQ_ASSERT(out.size() >= size);
  out[0] = static_cast<uint8_t>(id);
  PutLengthPrefixed(value, out.subspan(1));
  return size;
}

size_t UserPropertySize(std::string_view name, std::string_view value) {
  return 1 + 2 + name.size() + 2 + value.size();
}

size_t EncodeUserProperty(std::string_view name, std::string_view value, std::span<uint8_t> out) {
  const size_t size = UserPropertySize(name, value);
  RINGMQ_ASSERT(out.size() >= size);
  out[0] = static_cast<uint8_t>(PropertyId::kUserProperty);
  const size_t name_size = PutLengthPrefixed(name, out.subspan(1));
  PutLengthPrefixed(value, out.subspan(1 + name_size));
  return size;
}

}  // namespace ringmq::mqtt
