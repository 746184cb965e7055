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
// `properties` is reserved for MQTT 5.0 properties (the props lane fills and reads it; empty
// until then, and a decoder passes it on uninterpreted).
//
// Bounds: a record's topic is at most 65535 bytes (u16, as MQTT's own); the batch is at most
// the caller's byte bound (BatchBuilder), itself at most the NATS server's max_payload.
//
// Thread safety: pure functions and a builder owned by one shard.
#ifndef RINGMQ_CLUSTER_BATCH_H_
#define RINGMQ_CLUSTER_BATCH_H_

#include <cstddef>
#include <cstdint>
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

struct BatchRecord {
  std::string_view topic = {};
  uint8_t qos = 0;
  bool retain = false;
  std::string_view properties = {};  // MQTT 5.0 properties (props lane), empty for now
  std::string_view payload = {};
};

// The bytes a record takes in a batch.
inline size_t BatchRecordSize(const BatchRecord& record) {
  return kBatchRecordOverhead + record.topic.size() + record.properties.size() +
         record.payload.size();
}

// Starts a batch in `out` (cleared; its capacity is kept): the header with sent_at 0 (SealBatch
// sets it). `node` at most kBatchNodeMax bytes (node names are at most 128, config).
void BeginBatch(std::string& out, std::string_view node);
// Appends one record; the caller checked the sizes (topic <= 65535 bytes, properties and
// payload < 4 GiB) and the batch's byte bound.
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
  kInvalid,  // truncated, reserved flag bits set, QoS 3, or a topic that is not a valid
             // non-'$' topic name: the rest of the batch cannot be trusted
};
BatchNext NextBatchRecord(std::string_view& records, BatchRecord& record);

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_BATCH_H_
