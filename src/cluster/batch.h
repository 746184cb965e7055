// QoS 0 batches between ringmq nodes (docs/cluster.md "Batching QoS 0"): several MQTT messages
// in ONE NATS message, addressed to one other node's link on the ringmq-only subject
//   $RINGMQ[.<subject_prefix>].b.<node>.<shard>        (control.h, kind "b")
// so that nats-server routes one message where it would route one per MQTT message (its
// per-message cost dominates a message that crosses nodes; docs/cluster.md "Cost model").
//
// Payload (all integers big-endian, no padding):
//
//   batch   = version:u8 (kBatchVersion)  sent_at_us:u64  node_len:u8  node  record*
//   record  = flags:u8  topic_len:u16  properties_len:u32  payload_len:u32
//             topic  properties  payload
//   flags   = bits 0-1 QoS (0..2), bit 2 RETAIN, bits 3-7 zero
//
// `sent_at_us` is the publishing node's wall clock when the batch was sealed (the hop latency's
// start, as the Ringmq-Sent-At header of a plain message); `node` the publishing node's name.
// `topic` is the MQTT topic name (not its subject: the receiver skips the mapping); it must be
// a valid topic name (MQTT-4.7.3-1, MQTT-3.3.2-2) that does not start with '$'.
// `properties` carries the message's MQTT 5.0 properties that cross nodes (docs/cluster.md
// "MQTT 5.0 properties across nodes"; the same set as mqtt5_headers.h's NATS header fields),
// empty for a message without any (every 3.1/3.1.1 message):
//
//   properties = [0xFF expiry_left_ms:u64]  property*
//   property   = an MQTT 5.0 PUBLISH property (§2.2.2: identifier, value), one of
//                Payload Format Indicator (0x01), Content Type (0x03), Response Topic (0x08),
//                Correlation Data (0x09), User Property (0x26), in the publisher's order
//                (User Properties keep theirs, MQTT-3.3.2-17, -18)
//
// 0xFF is no property identifier (§2.2.2.2 ends at 0x2A): when present, first, it carries the
// Message Expiry Interval left when the record was written, in ms (MQTT-3.3.2-6: the time
// left, not the publisher's interval; the plain path's Ringmq-Message-Expiry-Ms). Not carried:
// the publisher's Message Expiry Interval property itself (replaced by the above), Topic Alias
// (per connection, 5.0:3.3.2.3.4) and Subscription Identifiers (the receiving node adds its own
// subscribers', MQTT-3.3.4-3). The property bytes form a block that mqtt::ValidateProperties
// accepts for a PUBLISH; a decoder refuses any other (kInvalid), so what it hands on can go to
// a 5.0 subscriber as is. A node built before properties were carried reads a non-empty field
// as none: it delivers the message without its properties.
//
// Bounds: a record's topic is at most 65535 bytes (u16, as MQTT's own); the batch is at most
// the caller's byte bound (BatchBuilder), itself at most the NATS server's max_payload.
//
// Thread safety: pure functions and a builder owned by one shard.
#ifndef RINGMQ_CLUSTER_BATCH_H_
#define RINGMQ_CLUSTER_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ringmq::cluster {

inline constexpr uint8_t kBatchVersion = 1;
inline constexpr std::string_view kBatchKind = "b";  // control.h subject kind
// flags + topic_len + properties_len + payload_len
inline constexpr size_t kBatchRecordOverhead = 1 + 2 + 4 + 4;
// version + sent_at + node_len (+ the node's name)
inline constexpr size_t kBatchHeaderOverhead = 1 + 8 + 1;
inline constexpr size_t kBatchNodeMax = 255;
// The properties field's expiry: the marker byte and the u64 of ms left.
inline constexpr uint8_t kBatchExpiryMarker = 0xFF;
inline constexpr size_t kBatchExpirySize = 1 + 8;

struct BatchRecord {
  std::string_view topic = {};
  uint8_t qos = 0;
  bool retain = false;
  // The carried MQTT 5.0 property block (see above, without the expiry), empty for none.
  std::string_view properties = {};
  // The Message Expiry Interval left in ms, if the message expires.
  std::optional<uint64_t> expiry_left_ms = {};
  std::string_view payload = {};
};

// The size of a record's properties field.
inline size_t BatchPropertiesSize(const BatchRecord& record) {
  return (record.expiry_left_ms ? kBatchExpirySize : 0) + record.properties.size();
}

// The bytes a record takes in a batch.
inline size_t BatchRecordSize(const BatchRecord& record) {
  return kBatchRecordOverhead + record.topic.size() + BatchPropertiesSize(record) +
         record.payload.size();
}

// Appends to `out` the properties of `block` (a PUBLISH or will block mqtt::ValidateProperties
// accepted) that a record carries (see above), in their order: the BatchRecord's `properties`.
// Allocation: only to grow `out` past its capacity.
void AppendBatchProperties(std::span<const uint8_t> block, std::string& out);

// Starts a batch in `out` (cleared; its capacity is kept): the header with sent_at 0 (SealBatch
// sets it). `node` at most kBatchNodeMax bytes (node names are at most 128, config).
void BeginBatch(std::string& out, std::string_view node);
// Appends one record; the caller checked the sizes (topic <= 65535 bytes, properties and
// payload < 4 GiB) and the batch's byte bound. `record.properties` holds only carried
// properties (AppendBatchProperties).
void AppendBatchRecord(std::string& out, const BatchRecord& record);
// Writes the sending time into a batch begun by BeginBatch.
void SealBatch(std::string& out, uint64_t sent_at_us);

struct BatchHeader {
  uint64_t sent_at_us = 0;
  std::string_view node;
};

// Reads the header of `batch`; on success `records` views the records. False if the batch is
// shorter than its header or of another version.
bool ParseBatchHeader(std::string_view batch, BatchHeader& header, std::string_view& records);

enum class BatchNext : uint8_t {
  kRecord,   // `record` views the next record; `records` moved past it
  kEnd,      // no more records
  kInvalid,  // truncated, reserved flag bits set, QoS 3, a topic that is not a valid
             // non-'$' topic name, or a properties field that is not one of the above (a cut
             // expiry, a block ValidateProperties refuses for a PUBLISH, a property that is not
             // carried): the rest of the batch cannot be trusted
};
BatchNext NextBatchRecord(std::string_view& records, BatchRecord& record);

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_BATCH_H_
