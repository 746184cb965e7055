#include "cluster/session_state.h"

#include <span>

#include "cluster/wire_bytes.h"
#include "common/assert.h"
#include "mqtt/packet_type.h"
#include "mqtt/properties.h"

namespace ringmq::cluster {
namespace {

void SetU16(std::string& out, size_t at, uint16_t value) {
  out[at] = static_cast<char>(value >> 8);
  out[at + 1] = static_cast<char>(value & 0xFF);
}

void SetU32(std::string& out, size_t at, uint32_t value) {
  SetU16(out, at, static_cast<uint16_t>(value >> 16));
  SetU16(out, at + 2, static_cast<uint16_t>(value & 0xFFFF));
}

// The fixed bytes of the header (magic, key, client id length) and the three counts.
constexpr size_t kFixedBytes = 3 + 8 + 2 + 2 + 4 + 2;
constexpr size_t kSubscriptionFixedBytes = 2 + 1 + 4;
constexpr size_t kMessageFixedBytes = 2 + 4 + 1 + 1 + 2 + 1;  // "RS2"
constexpr size_t kPropertiesLengthBytes = 4;                  // "RS3": u32 n before the block
constexpr size_t kExpiryBytes = 8;                            // "RS3", a message that expires
constexpr size_t kInboundCountBytes = 2;  // reserved by kFixedBytes, written last

}  // namespace

bool SessionStateWriter::Begin(std::string& out, size_t max_bytes, uint64_t key,
                               std::string_view client_id, char version) {
  RINGMQ_ASSERT(client_id.size() <= UINT16_MAX);
  RINGMQ_ASSERT(version == kSessionStateVersion || version == kSessionStateVersionNoProperties);
  out_ = &out;
  version_ = version;
  max_bytes_ = max_bytes;
  subscriptions_ = 0;
  messages_ = 0;
  inbound_ = 0;
  inbound_count_at_ = 0;
  left_out_ = 0;
  out.clear();
  if (kFixedBytes + client_id.size() > max_bytes) return false;
  out.append("RS");
  out.push_back(version);
  PutU64(out, key);
  PutU16(out, static_cast<uint16_t>(client_id.size()));
  out.append(client_id);
  subscription_count_at_ = out.size();
  PutU16(out, 0);
  message_count_at_ = out.size();
  PutU32(out, 0);
  return true;
}

bool SessionStateWriter::AddSubscription(const StateSubscription& subscription) {
  RINGMQ_ASSERT(out_ != nullptr && messages_ == 0 && inbound_count_at_ == 0);  // in order
  RINGMQ_ASSERT(subscription.filter.size() <= UINT16_MAX && (subscription.options & 0xF0) == 0);
  std::string& out = *out_;
  if (subscriptions_ == UINT16_MAX ||
      out.size() + kInboundCountBytes + kSubscriptionFixedBytes + subscription.filter.size() >
          max_bytes_) {
    ++left_out_;
    return false;
  }
  // Inserted before the message count (no message was added yet).
  out.resize(message_count_at_);
  PutU16(out, static_cast<uint16_t>(subscription.filter.size()));
  out.append(subscription.filter);
  out.push_back(static_cast<char>(subscription.options));
  PutU32(out, subscription.identifier);
  message_count_at_ = out.size();
  PutU32(out, 0);
  ++subscriptions_;
  return true;
}

bool SessionStateWriter::AddMessage(const StateMessage& message) {
  RINGMQ_ASSERT(out_ != nullptr && message.qos <= 2 && message.topic.size() <= UINT16_MAX);
  RINGMQ_ASSERT(inbound_count_at_ == 0 &&
                session_state_internal::ValidStage(message, static_cast<uint8_t>(message.stage)));
  RINGMQ_ASSERT(message.expires || message.expiry_left_ms == 0);
  const bool mqtt5 = version_ == kSessionStateVersion;
  RINGMQ_ASSERT(mqtt5 || (message.properties.empty() && !message.expires));
  std::string& out = *out_;
  const size_t mqtt5_bytes = mqtt5 ? kPropertiesLengthBytes + message.properties.size() +
                                         (message.expires ? kExpiryBytes : 0)
                                   : 0;
  if (messages_ == UINT32_MAX || message.payload.size() > UINT32_MAX ||
      message.properties.size() > UINT32_MAX ||
      out.size() + kInboundCountBytes + kMessageFixedBytes + message.topic.size() +
              message.payload.size() + mqtt5_bytes >
          max_bytes_) {
    ++left_out_;
    return false;
  }
  PutU16(out, static_cast<uint16_t>(message.topic.size()));
  out.append(message.topic);
  PutU32(out, static_cast<uint32_t>(message.payload.size()));
  out.append(message.payload);
  out.push_back(static_cast<char>(message.qos));
  out.push_back(static_cast<char>((message.retain ? 0x01 : 0) | (message.expires ? 0x02 : 0)));
  PutU16(out, message.packet_id);
  out.push_back(static_cast<char>(message.stage));
  if (mqtt5) {
    if (message.expires) PutU64(out, message.expiry_left_ms);
    PutU32(out, static_cast<uint32_t>(message.properties.size()));
    out.append(message.properties);
  }
  ++messages_;
  return true;
}

bool SessionStateWriter::AddInboundQos2(uint16_t packet_id) {
  RINGMQ_ASSERT(out_ != nullptr && packet_id != 0);
  std::string& out = *out_;
  const size_t count_bytes = inbound_count_at_ == 0 ? kInboundCountBytes : 0;
  if (inbound_ == UINT16_MAX || out.size() + count_bytes + 2 > max_bytes_) {
    ++left_out_;
    return false;
  }
  if (inbound_count_at_ == 0) {
    inbound_count_at_ = out.size();
    PutU16(out, 0);
  }
  PutU16(out, packet_id);
  ++inbound_;
  return true;
}

void SessionStateWriter::End() {
  RINGMQ_ASSERT(out_ != nullptr);
  if (inbound_count_at_ == 0) {
    inbound_count_at_ = out_->size();
    PutU16(*out_, 0);
  }
  SetU16(*out_, subscription_count_at_, static_cast<uint16_t>(subscriptions_));
  SetU32(*out_, message_count_at_, messages_);
  SetU16(*out_, inbound_count_at_, static_cast<uint16_t>(inbound_));
  out_ = nullptr;
}

namespace session_state_internal {

bool ValidProperties(std::string_view block) {
  if (block.empty()) return true;
  if (block.size() > mqtt::kMaxRemainingLength) return false;
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(block.data()),
                                       block.size());
  return mqtt::ValidateProperties(bytes, mqtt::PacketBit(mqtt::PacketType::kPublish)) ==
             mqtt::Violation::kNone ||
         mqtt::ValidateProperties(bytes, mqtt::kWillPropertiesBit) == mqtt::Violation::kNone;
}

bool Reader::U8(uint8_t& value) {
  if (bytes_.empty()) return false;
  value = static_cast<uint8_t>(bytes_[0]);
  bytes_.remove_prefix(1);
  return true;
}

bool Reader::U16(uint16_t& value) {
  if (bytes_.size() < 2) return false;
  value = static_cast<uint16_t>((static_cast<uint8_t>(bytes_[0]) << 8) |
                                static_cast<uint8_t>(bytes_[1]));
  bytes_.remove_prefix(2);
  return true;
}

bool Reader::U32(uint32_t& value) {
  uint16_t high = 0;
  uint16_t low = 0;
  if (bytes_.size() < 4 || !U16(high) || !U16(low)) return false;
  value = (uint32_t{high} << 16) | low;
  return true;
}

bool Reader::U64(uint64_t& value) {
  uint32_t high = 0;
  uint32_t low = 0;
  if (bytes_.size() < 8 || !U32(high) || !U32(low)) return false;
  value = (uint64_t{high} << 32) | low;
  return true;
}

bool Reader::Bytes(size_t n, std::string_view& value) {
  if (bytes_.size() < n) return false;
  value = bytes_.substr(0, n);
  bytes_.remove_prefix(n);
  return true;
}

}  // namespace session_state_internal

}  // namespace ringmq::cluster
