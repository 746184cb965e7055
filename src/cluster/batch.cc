// QoS 0 batches between ringmq nodes (batch.h).
#include "cluster/batch.h"

#include "cluster/wire_bytes.h"
#include "common/assert.h"
#include "mqtt/properties.h"
#include "mqtt/topic.h"

namespace ringmq::cluster {
namespace {

uint64_t GetBig(std::string_view bytes) {
  uint64_t value = 0;
  for (const char byte : bytes) value = (value << 8) | static_cast<uint8_t>(byte);
  return value;
}

// The properties a record carries (batch.h): what a subscriber on another node must get.
bool IsCarriedInBatch(uint8_t id) {
  using mqtt::PropertyId;
  switch (static_cast<PropertyId>(id)) {
    case PropertyId::kPayloadFormatIndicator:
    case PropertyId::kContentType:
    case PropertyId::kResponseTopic:
    case PropertyId::kCorrelationData:
    case PropertyId::kUserProperty:
      return true;
    default:
      return false;
  }
}

// Reads a record's properties field into `record`; false if it is not one batch.h allows.
bool ParseRecordProperties(std::string_view field, BatchRecord& record) {
  record.expiry_left_ms.reset();
  if (!field.empty() && static_cast<uint8_t>(field[0]) == kBatchExpiryMarker) {
    if (field.size() < kBatchExpirySize) return false;
    record.expiry_left_ms = GetBig(field.substr(1, 8));
    field.remove_prefix(kBatchExpirySize);
  }
  record.properties = field;
  if (field.empty()) return true;
  const std::span<const uint8_t> block(reinterpret_cast<const uint8_t*>(field.data()),
                                       field.size());
  if (mqtt::ValidateProperties(block, mqtt::PacketBit(mqtt::PacketType::kPublish)) !=
      mqtt::Violation::kNone) {
    return false;
  }
  // Bounded by the block's size: each property takes at least 2 bytes.
  for (std::span<const uint8_t> rest = block; !rest.empty();
       rest = rest.subspan(mqtt::FirstPropertySize(rest))) {
    if (!IsCarriedInBatch(rest[0])) return false;
  }
  return true;
}

}  // namespace

void AppendBatchProperties(std::span<const uint8_t> block, std::string& out) {
  // Bounded by the block's size: each property takes at least 2 bytes.
  for (std::span<const uint8_t> rest = block; !rest.empty();) {
    const size_t size = mqtt::FirstPropertySize(rest);
    if (IsCarriedInBatch(rest[0])) out.append(reinterpret_cast<const char*>(rest.data()), size);
    rest = rest.subspan(size);
  }
}

void BeginBatch(std::string& out, std::string_view node) {
  RINGMQ_ASSERT(node.size() <= kBatchNodeMax);
  out.clear();
  out.push_back(static_cast<char>(kBatchVersion));
  out.append(8, '\0');  // sent_at_us: SealBatch
  out.push_back(static_cast<char>(node.size()));
  out.append(node);
}

void AppendBatchRecord(std::string& out, const BatchRecord& record) {
  const size_t properties_size = BatchPropertiesSize(record);
  RINGMQ_ASSERT(record.topic.size() <= UINT16_MAX && record.qos <= 2 &&
                properties_size <= UINT32_MAX && record.payload.size() <= UINT32_MAX);
  RINGMQ_ASSERT(record.properties.empty() ||
                static_cast<uint8_t>(record.properties[0]) != kBatchExpiryMarker);
  out.push_back(static_cast<char>(record.qos | (record.retain ? 0x04 : 0)));
  PutU16(out, static_cast<uint16_t>(record.topic.size()));
  PutU32(out, static_cast<uint32_t>(properties_size));
  PutU32(out, static_cast<uint32_t>(record.payload.size()));
  out.append(record.topic);
  if (record.expiry_left_ms) {
    out.push_back(static_cast<char>(kBatchExpiryMarker));
    PutU64(out, *record.expiry_left_ms);
  }
  out.append(record.properties);
  out.append(record.payload);
}

void SealBatch(std::string& out, uint64_t sent_at_us) {
  RINGMQ_ASSERT(out.size() >= kBatchHeaderOverhead);
  for (int i = 0; i < 8; ++i) out[1 + i] = static_cast<char>(sent_at_us >> (8 * (7 - i)));
}

bool ParseBatchHeader(std::string_view batch, BatchHeader& header, std::string_view& records) {
  if (batch.size() < kBatchHeaderOverhead || static_cast<uint8_t>(batch[0]) != kBatchVersion) {
    return false;
  }
  const size_t node_size = static_cast<uint8_t>(batch[9]);
  if (batch.size() < kBatchHeaderOverhead + node_size) return false;
  header.sent_at_us = GetBig(batch.substr(1, 8));
  header.node = batch.substr(kBatchHeaderOverhead, node_size);
  records = batch.substr(kBatchHeaderOverhead + node_size);
  return true;
}

BatchNext NextBatchRecord(std::string_view& records, BatchRecord& record) {
  if (records.empty()) return BatchNext::kEnd;
  if (records.size() < kBatchRecordOverhead) return BatchNext::kInvalid;
  const auto flags = static_cast<uint8_t>(records[0]);
  if ((flags & 0xF8) != 0 || (flags & 0x03) == 3) return BatchNext::kInvalid;
  const uint64_t topic_size = GetBig(records.substr(1, 2));
  const uint64_t properties_size = GetBig(records.substr(3, 4));
  const uint64_t payload_size = GetBig(records.substr(7, 4));
  // No overflow: each is below 2^32.
  if (records.size() - kBatchRecordOverhead < topic_size + properties_size + payload_size) {
    return BatchNext::kInvalid;
  }
  std::string_view rest = records.substr(kBatchRecordOverhead);
  record.topic = rest.substr(0, topic_size);
  rest.remove_prefix(topic_size);
  if (!ParseRecordProperties(rest.substr(0, properties_size), record)) return BatchNext::kInvalid;
  rest.remove_prefix(properties_size);
  record.payload = rest.substr(0, payload_size);
  rest.remove_prefix(payload_size);
  // A node never forwards a '$' topic; one here is not let into the broker's '$' space
  // ($SYS is the broker's own, MQTT-4.7.2-1).
  if (record.topic.empty() || record.topic[0] == '$' ||
      mqtt::ValidateTopicName(record.topic) != mqtt::Violation::kNone) {
    return BatchNext::kInvalid;
  }
  record.qos = flags & 0x03;
  record.retain = (flags & 0x04) != 0;
  records = rest;
  return BatchNext::kRecord;
}

}  // namespace ringmq::cluster
