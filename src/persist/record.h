// The persistence log's on-disk format: segment headers and records (docs/persistence.md).
//
// A data directory holds, per shard, segment files "shard-<S>.<run>.<segment>.log" and one
// MANIFEST (data_dir.h). A segment file is a 32-byte header followed by records:
//
//   header   magic "RINGMQLG" (8) | format version u32 | shard u32 | run u64 | segment u64
//   record   body length u32 | CRC32C u32 of (type byte + body) | type u8 | body
//
// Every integer is little-endian. Strings and byte blocks are length-prefixed: "str16" is a u16
// length then the bytes, "bytes32" a u32 length then the bytes. A record's body is at most
// kMaxBodyBytes (a PUBLISH's topic, properties and payload fit: max_packet_size is at most 256 MiB).
//
// Each segment starts with a snapshot (kSnapshotBegin ... kSnapshotEnd) of the shard's durable
// state, then the records of what happened after it, in order. Keys are valid within one run
// (one broker process): a session is named by its sid, (session-table slot << 32 | generation),
// a message by its mid, (origin shard << 48 | origin sequence); a snapshot re-declares every live
// session and message, so recovery needs only the newest segment whose snapshot is complete.
//
// Records (body fields in order):
//   kSnapshotBegin   -
//   kSnapshotEnd     records u64 (records between Begin and End)
//   kSession         sid u64 | expiry_s u32 | level u8 | client_id str16 [| flags u8]
//                    A persistent session exists (created, or resumed: the record is written
//                    again with the new expiry). Replaces an earlier kSession of the same sid.
//                    flags (written only when not 0, so logs without bridges stay readable by
//                    a ringmq that predates it; a 0 byte present is corrupt): bit 0
//                    kSessionFlagBridge, the session was last bound by a bridge's local
//                    connection (docs/bridges.md, "A bridge removed").
//   kSessionEnd      sid u64                  The session ended: forget it and its deliveries.
//   kSessionOffline  sid u64 | wall_ms u64    Its connection ended at wall_ms (Unix ms).
//   kSubscribe       sid u64 | options u8 | identifier u32 | filter str16
//                    options: bits 0-1 QoS, bit 2 No Local, bit 3 Retain As Published.
//   kUnsubscribe     sid u64 | filter str16
//   kMessage         mid u64 | qos u8 | flags u8 | expiry_wall_ms u64 | topic str16 |
//                    properties bytes32 | payload bytes32
//                    flags bit 0: RETAIN as published. expiry_wall_ms 0: does not expire.
//                    Written once per segment before the first kEnqueue that names it; a
//                    message is dropped from the state when no delivery names it.
//   kEnqueue         sid u64 | mid u64 | qos u8 | flags u8
//                    A delivery queued at `qos`; flags bit 0: send with RETAIN set.
//   kSent            sid u64 | mid u64 | packet_id u16
//                    The first still-unsent delivery of `mid` was sent with `packet_id`.
//   kPuback          sid u64 | packet_id u16  QoS 1 delivery done.
//   kPubrec          sid u64 | packet_id u16  QoS 2: PUBREC received, PUBREL is due.
//   kPubcomp         sid u64 | packet_id u16  QoS 2 delivery done.
//   kDiscard         sid u64 | mid u64        The first unsent delivery of `mid` will never be
//                                             sent (expired, too large for the client, moved to
//                                             another member of a shared subscription).
//   kInboundQos2     sid u64 | packet_id u16  Inbound QoS 2 id remembered until PUBREL.
//   kInboundRelease  sid u64 | packet_id u16  PUBREL received: the id is forgotten.
//   kRetain          version u64 | qos u8 | expiry_wall_ms u64 | topic str16 |
//                    properties bytes32 | payload bytes32
//                    The topic's retained message as of store version `version` (an empty
//                    payload deletes it). Across every shard's log the highest version of a
//                    topic wins.
//   kRetainedAll     version u64
//                    In a snapshot: the kRetain records that follow it, up to kSnapshotEnd, are
//                    every retained message the store held at `version` (no other topic had
//                    one). Recovery drops every retained value older than the highest such
//                    version that is not in that snapshot: deletions need no tombstone.
//
// Thread safety: plain functions and values.
#ifndef RINGMQ_PERSIST_RECORD_H_
#define RINGMQ_PERSIST_RECORD_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_buffer.h"

namespace ringmq::persist {

inline constexpr char kMagic[8] = {'R', 'I', 'N', 'G', 'M', 'Q', 'L', 'G'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 32;
inline constexpr size_t kRecordHeaderBytes = 9;  // length u32, CRC32C u32, type u8
inline constexpr uint32_t kMaxBodyBytes = (256u << 20) + (1u << 20);
// kSession flags (bridgeq2 lane).
inline constexpr uint8_t kSessionFlagBridge = 0x01;

enum class RecordType : uint8_t {
  kSnapshotBegin = 1,
  kSnapshotEnd = 2,
  kSession = 3,
  kSessionEnd = 4,
  kSessionOffline = 5,
  kSubscribe = 6,
  kUnsubscribe = 7,
  kMessage = 8,
  kEnqueue = 9,
  kSent = 10,
  kPuback = 11,
  kPubrec = 12,
  kPubcomp = 13,
  kDiscard = 14,
  kInboundQos2 = 15,
  kInboundRelease = 16,
  kRetain = 17,
  kRetainedAll = 18,
};
std::string_view RecordTypeName(RecordType type);

struct SegmentHeader {
  uint32_t version = kFormatVersion;
  uint32_t shard = 0;
  uint64_t run = 0;
  uint64_t segment = 0;
};

// One decoded record. Views point into the buffer it was decoded from. Fields not used by
// `type` are zero / empty.
struct Record {
  RecordType type = RecordType::kSnapshotBegin;
  uint64_t sid = 0;
  uint64_t mid = 0;      // kMessage, kEnqueue, kSent, kDiscard
  uint64_t count = 0;  // kSnapshotEnd: records; kRetain, kRetainedAll: version;
                       // kSessionOffline: wall_ms
  uint64_t expiry_wall_ms = 0;  // kMessage, kRetain
  uint32_t expiry_s = 0;        // kSession
  uint32_t identifier = 0;      // kSubscribe
  uint16_t packet_id = 0;
  uint8_t level = 0;    // kSession: mqtt::ProtocolLevel value
  uint8_t qos = 0;      // kMessage, kEnqueue, kRetain
  uint8_t flags = 0;    // kMessage, kEnqueue, kSession
  uint8_t options = 0;  // kSubscribe
  std::string_view text = {};           // client_id (kSession), filter, topic
  std::span<const uint8_t> properties = {};  // kMessage, kRetain
  std::span<const uint8_t> payload = {};     // kMessage, kRetain
};

// Appends one framed record (header, CRC32C, body) to `out`. Returns the bytes appended.
size_t AppendRecord(ByteBuffer& out, const Record& record);
// The framed size AppendRecord would append.
size_t RecordSize(const Record& record);
void AppendSegmentHeader(ByteBuffer& out, const SegmentHeader& header);

enum class ReadStatus : uint8_t {
  kOk,         // a record was decoded
  kEnd,        // no bytes left: a clean end
  kTornTail,   // the bytes left are a prefix of a record, or zeros: a write the crash cut
  kCorrupt,    // a complete record whose CRC or body does not check, with more bytes after it
};

// Reads a segment's records. `file` is the whole file from its first byte (ReadHeader, then
// Next until it returns something other than kOk); a record's views point into it.
//
// A crash can cut the log only where the writer had not yet synced, so the bytes from there to
// the end of the file are a torn tail: a prefix of a record, or a write the crash left partly
// unwritten, whose missing pages read as zeros. kTornTail is reported when, at the offset:
//  - fewer bytes than a record header are left, or the record's length runs past the end;
//  - the record's CRC fails and it is the last one, or everything after it is zero, or it
//    lies over a page the crash left unwritten: a 4 KiB-aligned block it overlaps is all zeros
//    from the record's start (or the block's, if later) to the block's end (the block that
//    held the end of the synced data keeps those bytes and reads as zeros after them);
// and kCorrupt when a record that is not a torn tail fails its CRC, or has a length above
// kMaxBodyBytes, or passes its CRC (so it is what a writer wrote, even as the last record) but
// has an unknown type or a body that does not decode to exactly its fields (a string or block
// length past the body, or bytes left after the fields). After kTornTail or kCorrupt,
// offset() is where the bad record starts (truncate there) and error() says why; Next returns
// the same again if called. After kOk offset() is the end of the record read. Every read is
// bounds-checked against `file`: any bytes are safe to read.
//
// A length field corrupted to run past the end of the file reads as a torn tail; the format
// cannot tell the two apart (docs/persistence.md).
class SegmentReader {
 public:
  explicit SegmentReader(std::span<const uint8_t> file);
  // Decodes the segment header and moves past it; nullopt (with error()) if the file is
  // shorter than a header, the magic does not match, or the version is not kFormatVersion
  // ("written by format version V; this ringmq reads 1").
  std::optional<SegmentHeader> ReadHeader();
  ReadStatus Next(Record& record);
  size_t offset() const { return offset_; }
  const std::string& error() const { return error_; }

 private:
  ReadStatus Torn(std::string why);

  std::span<const uint8_t> file_;
  size_t offset_ = 0;
  std::string error_;
};

}  // namespace ringmq::persist

#endif  // RINGMQ_PERSIST_RECORD_H_
