#include "mqtt/packet.h"

#include <algorithm>
#include <array>

#include "common/assert.h"

namespace ringmq::mqtt {
namespace {

// Reads the 2-byte big-endian length that starts every entry. A TopicList only ever wraps bytes
// that the decoder (or EncodeTopicList) produced, so a short entry is a programmer error.
size_t EntryLength(std::span<const uint8_t> rest, bool has_qos) {
  RINGMQ_ASSERT(rest.size() >= 2);
  const size_t filter_size = (size_t{rest[0]} << 8) | rest[1];
  const size_t entry_size = 2 + filter_size + (has_qos ? 1 : 0);
  RINGMQ_ASSERT(entry_size <= rest.size());
  return entry_size;
}

}  // namespace

TopicRequest TopicList::Iterator::operator*() const {
  const size_t entry_size = EntryLength(rest_, has_qos_);
  const size_t filter_size = entry_size - 2 - (has_qos_ ? 1 : 0);
  TopicRequest request;
  request.filter = std::string_view(reinterpret_cast<const char*>(rest_.data() + 2), filter_size);
  if (has_qos_) {
    const uint8_t options = rest_[entry_size - 1];
    RINGMQ_ASSERT((options & 0x03) <= 2 && (options & 0xC0) == 0);
    request.qos = static_cast<QoS>(options & 0x03);
    request.no_local = (options & 0x04) != 0;
    request.retain_as_published = (options & 0x08) != 0;
    request.retain_handling = static_cast<uint8_t>((options >> 4) & 0x03);
  }
  return request;
}

TopicList::Iterator& TopicList::Iterator::operator++() {
  rest_ = rest_.subspan(EntryLength(rest_, has_qos_));
  return *this;
}

size_t TopicList::size() const {
  size_t count = 0;
  // Each entry is at least 2 bytes, so the loop runs at most entries_.size() / 2 times.
  for (auto it = begin(); it != end(); ++it) {
    ++count;
  }
  RINGMQ_ASSERT(count <= entries_.size() / 2);
  return count;
}

bool TopicList::operator==(const TopicList& other) const {
  // The entry encoding is canonical (fixed 2-byte lengths), so equal lists have equal bytes.
  return has_qos_ == other.has_qos_ && std::ranges::equal(entries_, other.entries_);
}

uint8_t SubscriptionOptions(const TopicRequest& request) {
  const auto qos = static_cast<uint8_t>(request.qos);
  RINGMQ_ASSERT(qos <= 2 && request.retain_handling <= 2);
  return static_cast<uint8_t>(qos | (request.no_local ? 0x04 : 0) |
                              (request.retain_as_published ? 0x08 : 0) |
                              (request.retain_handling << 4));
}

bool Unsuback::operator==(const Unsuback& other) const {
  return packet_id == other.packet_id && std::ranges::equal(reason_codes, other.reason_codes) &&
         properties == other.properties;
}

bool Suback::operator==(const Suback& other) const {
  return packet_id == other.packet_id && std::ranges::equal(return_codes, other.return_codes) &&
         properties == other.properties;
}

std::string_view NameOf(PacketType type) {
  static constexpr std::array<std::string_view, 16> kNames = {
      "RESERVED0", "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
      "PUBREL",    "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
      "PINGREQ",   "PINGRESP", "DISCONNECT", "AUTH",
  };
  const auto index = static_cast<size_t>(type);
  return index < kNames.size() ? kNames[index] : std::string_view("UNKNOWN");
}

}  // namespace ringmq::mqtt
