// MQTT 5.0 properties as NATS headers (mqtt5_headers.h).
#include "cluster/mqtt5_headers.h"

#include <algorithm>
#include <charconv>

#include "common/assert.h"
#include "common/base64.h"
#include "mqtt/properties.h"
#include "mqtt/reason_code.h"

namespace ringmq::cluster {
namespace {

using mqtt::PropertyId;

constexpr std::string_view kFormatDigits[] = {"0", "1"};
constexpr size_t kStringMax = 65'535;  // two-byte length (§1.5.4, §1.5.6)
constexpr size_t kExpiryTextMax = 20;  // UINT64_MAX has 20 digits

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

bool IsReservedName(std::string_view name) {
  return StartsWithIgnoreCase(name, "Ringmq-") || StartsWithIgnoreCase(name, "Nats-");
}

// The fields and text bytes AppendMqtt5Headers writes for one property (0, 0: not carried).
struct Cost {
  size_t fields = 0;
  size_t text = 0;
};

Cost CostOf(const mqtt::Property& property) {
  switch (property.id) {
    case PropertyId::kPayloadFormatIndicator:
      return {1, 0};
    case PropertyId::kContentType:
    case PropertyId::kResponseTopic:
      return {1, IsPlainHeaderValue(property.text) ? 0 : base64::EncodedSize(property.text.size())};
    case PropertyId::kCorrelationData:
      return {1, base64::EncodedSize(property.text.size())};
    case PropertyId::kUserProperty:
      if (IsNativeHeaderName(property.text) && IsPlainHeaderValue(property.pair_value)) {
        return {1, 0};
      }
      return {1, base64::EncodedSize(property.text.size()) + 1 +
                     base64::EncodedSize(property.pair_value.size())};
    default:  // Topic Alias, Subscription Identifier, the block's expiry, will-only ones
      return {0, 0};
  }
}

// Appends base64 of `bytes` to `text` (capacity reserved by the caller) and returns a view.
std::string_view AppendBase64(std::string_view bytes, std::string& text) {
  const size_t start = text.size();
  text.resize(start + base64::EncodedSize(bytes.size()));
  base64::Encode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, text.data() + start);
  return std::string_view(text).substr(start);
}

void AppendField(const mqtt::Property& property, std::vector<nats::HeaderField>& fields,
                 std::string& text) {
  switch (property.id) {
    case PropertyId::kPayloadFormatIndicator:
      fields.emplace_back(kPayloadFormatHeader, kFormatDigits[property.integer == 1 ? 1 : 0]);
      return;
    case PropertyId::kContentType:
    case PropertyId::kResponseTopic: {
      const bool content = property.id == PropertyId::kContentType;
      if (IsPlainHeaderValue(property.text)) {
        fields.emplace_back(content ? kContentTypeHeader : kResponseTopicHeader, property.text);
      } else {
        fields.emplace_back(content ? kContentTypeBase64Header : kResponseTopicBase64Header,
                            AppendBase64(property.text, text));
      }
      return;
    }
    case PropertyId::kCorrelationData:
      fields.emplace_back(kCorrelationDataHeader, AppendBase64(property.text, text));
      return;
    case PropertyId::kUserProperty: {
      if (IsNativeHeaderName(property.text) && IsPlainHeaderValue(property.pair_value)) {
        fields.emplace_back(property.text, property.pair_value);
        return;
      }
      const size_t start = text.size();
      AppendBase64(property.text, text);
      text.push_back(',');
      AppendBase64(property.pair_value, text);
      fields.emplace_back(kUserPropertyHeader, std::string_view(text).substr(start));
      return;
    }
    default:
      return;
  }
}

}  // namespace

bool IsNativeHeaderName(std::string_view name) {
  if (name.empty() || name.size() > kNativeNameMax || IsReservedName(name)) return false;
  for (const char c : name) {
    if (c < '!' || c > '~' || c == ':') return false;
  }
  return true;
}

bool IsPlainHeaderValue(std::string_view value) {
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) return false;  // CR, LF, tabs and other controls
  }
  return value.empty() || (value.front() != ' ' && value.back() != ' ');
}

Mqtt5EncodeResult AppendMqtt5Headers(std::span<const uint8_t> properties,
                                     std::optional<uint64_t> expiry_left_ms, size_t fields_max,
                                     std::vector<nats::HeaderField>& fields, std::string& text) {
  text.clear();
  if (properties.empty() && !expiry_left_ms) return Mqtt5EncodeResult::kNone;  // no allocation
  // First pass: how many fields and text bytes, so that the views into `text` never move.
  Cost total{expiry_left_ms ? 1u : 0u, expiry_left_ms ? kExpiryTextMax : 0u};
  const mqtt::Properties block(properties);
  for (const mqtt::Property property : block) {
    const Cost cost = CostOf(property);
    total.fields += cost.fields;
    total.text += cost.text;
  }
  if (total.fields == 0) return Mqtt5EncodeResult::kNone;
  if (total.fields > fields_max) return Mqtt5EncodeResult::kTooManyFields;
  text.reserve(total.text);
  const size_t fields_before = fields.size();
  if (expiry_left_ms) {
    text.resize(kExpiryTextMax);
    const auto [end, ignored] = std::to_chars(text.data(), text.data() + kExpiryTextMax,
                                              *expiry_left_ms);
    text.resize(static_cast<size_t>(end - text.data()));
    fields.emplace_back(kMessageExpiryHeader, std::string_view(text));
  }
  for (const mqtt::Property property : block) AppendField(property, fields, text);
  RINGMQ_ASSERT(fields.size() - fields_before == total.fields && text.size() <= total.text);
  return Mqtt5EncodeResult::kWritten;
}

bool Mqtt5HeaderDecoder::FirstOf(uint8_t id) {
  RINGMQ_ASSERT(id < 64);
  const uint64_t bit = uint64_t{1} << id;
  if ((seen_ & bit) != 0) return false;
  seen_ |= bit;
  return true;
}

void Mqtt5HeaderDecoder::Check(size_t start) {
  const std::span<const uint8_t> property = std::span<const uint8_t>(block_).subspan(start);
  if (mqtt::ValidateProperties(property, mqtt::PacketBit(mqtt::PacketType::kPublish)) ==
      mqtt::Violation::kNone) {
    return;
  }
  block_.resize(start);
  ++dropped_;
}

bool Mqtt5HeaderDecoder::AppendBytes(std::string_view value, bool base64) {
  const size_t at = block_.size();
  const size_t room = base64 ? value.size() / 4 * 3 : value.size();
  if (room > kStringMax + 2) return false;  // even base64 padding cannot bring it under
  block_.resize(at + 2 + room);
  size_t size = value.size();
  if (base64) {
    if (!base64::Decode(value, block_.data() + at + 2, size)) return false;
  } else {
    std::copy(value.begin(), value.end(), block_.begin() + static_cast<ptrdiff_t>(at + 2));
  }
  if (size > kStringMax) return false;
  block_[at] = static_cast<uint8_t>(size >> 8);
  block_[at + 1] = static_cast<uint8_t>(size);
  block_.resize(at + 2 + size);
  return true;
}

void Mqtt5HeaderDecoder::AppendString(uint8_t id, std::string_view value, bool base64) {
  const size_t start = block_.size();
  block_.push_back(id);
  if (!AppendBytes(value, base64)) {
    block_.resize(start);
    ++dropped_;
    return;
  }
  Check(start);
}

void Mqtt5HeaderDecoder::AppendPair(std::string_view name, std::string_view value, bool base64) {
  const size_t start = block_.size();
  block_.push_back(static_cast<uint8_t>(PropertyId::kUserProperty));
  if (!AppendBytes(name, base64) || !AppendBytes(value, base64)) {
    block_.resize(start);
    ++dropped_;
    return;
  }
  Check(start);
}

bool Mqtt5HeaderDecoder::Field(std::string_view name, std::string_view value) {
  constexpr auto id = [](PropertyId p) { return static_cast<uint8_t>(p); };
  if (!IsReservedName(name)) {
    // A user property: a ringmq node's native one, or a NATS application's header.
    AppendPair(name, value, /*base64=*/false);
    return true;
  }
  if (EqualsIgnoreCase(name, kPayloadFormatHeader)) {
    if ((value == "0" || value == "1") && FirstOf(id(PropertyId::kPayloadFormatIndicator))) {
      block_.push_back(id(PropertyId::kPayloadFormatIndicator));
      block_.push_back(value == "1" ? 1 : 0);
    } else {
      ++dropped_;
    }
    return true;
  }
  if (EqualsIgnoreCase(name, kMessageExpiryHeader)) {
    uint64_t ms = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (error == std::errc() && end == value.data() + value.size() && !value.empty() &&
        !expiry_left_ms_) {
      expiry_left_ms_ = ms;
    } else {
      ++dropped_;
    }
    return true;
  }
  struct StringField {
    std::string_view name;
    PropertyId id;
    bool base64;
  };
  static constexpr StringField kStrings[] = {
      {kContentTypeHeader, PropertyId::kContentType, false},
      {kContentTypeBase64Header, PropertyId::kContentType, true},
      {kResponseTopicHeader, PropertyId::kResponseTopic, false},
      {kResponseTopicBase64Header, PropertyId::kResponseTopic, true},
      {kCorrelationDataHeader, PropertyId::kCorrelationData, true},
  };
  for (const StringField& field : kStrings) {
    if (!EqualsIgnoreCase(name, field.name)) continue;
    if (FirstOf(id(field.id))) {
      AppendString(id(field.id), value, field.base64);
    } else {
      ++dropped_;  // a second value of a single-valued property (Protocol Error, §3.3.2.3)
    }
    return true;
  }
  if (EqualsIgnoreCase(name, kUserPropertyHeader)) {
    const size_t comma = value.find(',');
    if (comma == std::string_view::npos) {
      ++dropped_;
    } else {
      AppendPair(value.substr(0, comma), value.substr(comma + 1), /*base64=*/true);
    }
    return true;
  }
  return false;  // the caller's Ringmq-* fields, and Nats-* ones
}

void DecodeMqtt5Headers(std::string_view header_block, Mqtt5HeaderDecoder& decoder) {
  ForEachHeaderField(header_block, [&decoder](std::string_view name, std::string_view value) {
    decoder.Field(name, value);
    return true;
  });
}

}  // namespace ringmq::cluster
