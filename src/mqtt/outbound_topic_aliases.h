// Outbound topic aliases of one MQTT 5.0 connection (5.0:3.3.2.3.4): the broker's side of the
// mapping the client accepts with its Topic Alias Maximum (5.0:MQTT-3.3.2-10..12).
//
// Policy: the first `maximum` distinct topics written on the connection take aliases 1, 2, ...
// and keep them for the connection's life; later topics go by name. Without replacement an
// alias never changes meaning, so a hit costs one hash lookup and nothing else, and any alias
// the connection has sent stays valid for every later packet on it (a DUP resend included).
// The mapping belongs to the connection, never to the session: a new connection (also one that
// resumes a session) starts with an empty one, so an alias of a previous connection is never
// sent.
//
// Bounds: at most `maximum` (config outbound_topic_aliases, at most 1024) topics of at most
// 65,535 bytes each; memory_bytes() is charged to the memory budget with the connection.
//
// Thread safety: none; owned by the connection, used on its shard only.
#ifndef RINGMQ_MQTT_OUTBOUND_TOPIC_ALIASES_H_
#define RINGMQ_MQTT_OUTBOUND_TOPIC_ALIASES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/assert.h"

namespace ringmq::mqtt {

class OutboundTopicAliases {
 public:
  // The largest maximum: 1024 x 65,535 topic bytes keeps a connection's charged buffer bytes
  // within 32 bits (see Connection::TakeBufferChargeDelta).
  static constexpr uint16_t kMaxAliases = 1024;

  explicit OutboundTopicAliases(uint16_t maximum) : maximum_(maximum) {
    RINGMQ_ASSERT(maximum > 0 && maximum <= kMaxAliases);
  }

  uint16_t maximum() const { return maximum_; }
  size_t size() const { return aliases_.size(); }

  // The alias `topic` has on this connection, 0 when none.
  uint16_t Find(std::string_view topic) const {
    // absl's own string_view: this absl build does not alias it to std::string_view.
    const auto it = aliases_.find(absl::string_view(topic.data(), topic.size()));
    return it == aliases_.end() ? 0 : it->second;
  }

  // The alias a topic not yet mapped would take, 0 when all are taken.
  uint16_t NextFree() const {
    return aliases_.size() < maximum_ ? static_cast<uint16_t>(aliases_.size() + 1) : 0;
  }

  // Records `alias` (== NextFree(), not 0) for `topic` (not mapped, not empty): called once the
  // PUBLISH that carries both has been written.
  void Assign(std::string_view topic, uint16_t alias) {
    RINGMQ_ASSERT(alias != 0 && alias == NextFree());
    RINGMQ_ASSERT(!topic.empty() && topic.size() <= UINT16_MAX);
    [[maybe_unused]] const bool inserted = aliases_.emplace(topic, alias).second;
    RINGMQ_ASSERT(inserted);
    topic_bytes_ += topic.size();
  }

  // Heap bytes held: the topics and the table's slots.
  size_t memory_bytes() const {
    return topic_bytes_ +
           aliases_.capacity() * (sizeof(std::pair<const std::string, uint16_t>) + 1);
  }

 private:
  absl::flat_hash_map<std::string, uint16_t> aliases_;
  size_t topic_bytes_ = 0;  // sum of the topics' sizes (short ones live inside the string)
  uint16_t maximum_;
};

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_OUTBOUND_TOPIC_ALIASES_H_
