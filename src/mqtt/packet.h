// The MQTT control packets as plain values.
//
// Decoded packets view the bytes they were decoded from (std::string_view / std::span): decoding
// never copies or allocates, so a packet is valid only while its source bytes are. One struct
// per type serves MQTT 3.1, 3.1.1 and 5.0: the 5.0-only members (properties, reason codes,
// subscription options) keep their defaults at 3.1 / 3.1.1, where the encoder ignores them.
//
// Thread safety: plain values; no shared state.
#ifndef RINGMQ_MQTT_PACKET_H_
#define RINGMQ_MQTT_PACKET_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

#include "mqtt/packet_type.h"
#include "mqtt/properties.h"
#include "mqtt/reason_code.h"

namespace ringmq::mqtt {

// CONNACK return codes (§3.2.2.3).
enum class ConnackCode : uint8_t {
  kAccepted = 0x00,
  kUnacceptableProtocolVersion = 0x01,
  kIdentifierRejected = 0x02,
  kServerUnavailable = 0x03,
  kBadUserNameOrPassword = 0x04,
  kNotAuthorized = 0x05,
};

// SUBACK failure return code (§3.9.3).
inline constexpr uint8_t kSubackFailure = 0x80;

struct FixedHeader {
  PacketType type = PacketType::kConnect;
  uint8_t flags = 0;              // low nibble of byte 1
  uint32_t remaining_length = 0;  // bytes after the fixed header
  uint8_t header_length = 0;      // 2..5: type byte plus 1..4 length bytes

  size_t total_length() const { return size_t{header_length} + remaining_length; }
  bool operator==(const FixedHeader&) const = default;
};

struct Will {
  std::string_view topic;
  std::string_view payload;
  QoS qos = QoS::k0;
  bool retain = false;
  Properties properties{};  // 5.0: the will properties (§3.1.3.2)
  bool operator==(const Will&) const = default;
};

struct Connect {
  std::string_view protocol_name = "MQTT";  // or "MQIsdp"; defaults match protocol_level
  uint8_t protocol_level = 4;
  // False when protocol_name/protocol_level name a level the decoder was not asked to speak
  // (MQTT 5 unless DecodeConnect's accept_mqtt5, or "MQIsdp" with level 4): then nothing after
  // the level byte was parsed and the only valid answer is CONNACK 0x01 (MQTT-3.1.2-2).
  bool level_supported = true;
  bool clean_session = true;  // 5.0: Clean Start (§3.1.2.4)
  uint16_t keepalive_s = 0;
  std::string_view client_id;
  std::optional<Will> will;
  std::optional<std::string_view> user_name;
  std::optional<std::string_view> password;  // binary data, not necessarily UTF-8
  Properties properties{};                   // 5.0 (§3.1.2.11)
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  ConnackCode return_code = ConnackCode::kAccepted;  // 3.1 / 3.1.1
  ReasonCode reason_code = ReasonCode::kSuccess;     // 5.0 (§3.2.2.2)
  Properties properties{};                           // 5.0 (§3.2.2.3)
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::string_view topic;
  std::string_view payload;
  QoS qos = QoS::k0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;   // 0 for QoS 0 (not on the wire)
  Properties properties{};  // 5.0 (§3.3.2.3); an empty topic comes with a Topic Alias
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP. At 5.0 a reason code and properties may follow the packet
// id (§3.4.2); the encoder writes the shortest form that carries them.
struct Puback {
  uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties{};
  bool operator==(const Puback&) const = default;
};
struct Pubrec {
  uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties{};
  bool operator==(const Pubrec&) const = default;
};
struct Pubrel {
  uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties{};
  bool operator==(const Pubrel&) const = default;
};
struct Pubcomp {
  uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties{};
  bool operator==(const Pubcomp&) const = default;
};
struct Unsuback {
  uint16_t packet_id = 0;
  std::span<const uint8_t> reason_codes{};  // 5.0 (§3.11.3): one per filter; empty at 3.1.1
  Properties properties{};                  // 5.0
  bool operator==(const Unsuback& other) const;
};

// One topic filter of a SUBSCRIBE (with its requested QoS, and at 5.0 its other subscription
// options, §3.8.3.1) or UNSUBSCRIBE (options unused).
struct TopicRequest {
  std::string_view filter;
  QoS qos = QoS::k0;
  bool no_local = false;             // 5.0
  bool retain_as_published = false;  // 5.0
  uint8_t retain_handling = 0;       // 5.0: 0, 1 or 2
  bool operator==(const TopicRequest&) const = default;
};

// The subscription options byte (§3.8.3.1): at 3.1.1 only the QoS bits may be set.
uint8_t SubscriptionOptions(const TopicRequest& request);

// The already-validated payload of a SUBSCRIBE or UNSUBSCRIBE, iterated without allocation.
// `entries` holds the raw payload bytes after the packet id; `has_qos` tells whether each filter
// is followed by a requested-QoS byte (SUBSCRIBE; the subscription options byte at 5.0) or not
// (UNSUBSCRIBE).
class TopicList {
 public:
  class Iterator {
   public:
    using value_type = TopicRequest;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    Iterator(std::span<const uint8_t> rest, bool has_qos) : rest_(rest), has_qos_(has_qos) {}
    TopicRequest operator*() const;
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    bool operator==(const Iterator& other) const { return rest_.size() == other.rest_.size(); }

   private:
    std::span<const uint8_t> rest_;
    bool has_qos_ = false;
  };

  TopicList() = default;
  TopicList(std::span<const uint8_t> entries, bool has_qos)
      : entries_(entries), has_qos_(has_qos) {}

  Iterator begin() const { return Iterator(entries_, has_qos_); }
  Iterator end() const { return Iterator(entries_.last(0), has_qos_); }
  size_t size() const;
  std::span<const uint8_t> raw() const { return entries_; }
  bool has_qos() const { return has_qos_; }

  bool operator==(const TopicList& other) const;

 private:
  std::span<const uint8_t> entries_;
  bool has_qos_ = false;
};

struct Subscribe {
  uint16_t packet_id = 0;
  TopicList topics;         // has_qos() == true
  Properties properties{};  // 5.0 (§3.8.2.1)
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  uint16_t packet_id = 0;
  std::span<const uint8_t> return_codes;  // each 0x00, 0x01, 0x02 or 0x80; 5.0: reason codes
  Properties properties{};                // 5.0 (§3.9.2.1)
  bool operator==(const Suback& other) const;
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  TopicList topics;         // has_qos() == false
  Properties properties{};  // 5.0 (§3.10.2.1)
  bool operator==(const Unsubscribe&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};
struct Disconnect {
  ReasonCode reason_code = ReasonCode::kNormalDisconnection;  // 5.0 (§3.14.2.1)
  Properties properties{};                                    // 5.0 (§3.14.2.2)
  bool operator==(const Disconnect&) const = default;
};
// 5.0 only (§3.15).
struct Auth {
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties{};
  bool operator==(const Auth&) const = default;
};

// Variant alternatives are in PacketType order: index() + 1 == PacketType value.
using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe,
                            Suback, Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth>;

inline PacketType TypeOf(const Packet& packet) {
  return static_cast<PacketType>(packet.index() + 1);
}

std::string_view NameOf(PacketType type);

}  // namespace ringmq::mqtt

#endif  // RINGMQ_MQTT_PACKET_H_
