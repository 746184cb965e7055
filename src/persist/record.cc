#include "persist/record.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/assert.h"
#include "common/crc32c.h"

namespace ringmq::persist {
namespace {

constexpr size_t kU8 = 1, kU16 = 2, kU32 = 4, kU64 = 8;
// The unit a crash can leave unwritten inside a file that was extended: the page cache writes
// a file back in pages, and a page is at least 4 KiB (a larger page is made of these).
constexpr size_t kHoleBlockBytes = 4096;

size_t Str16Bytes(std::string_view text) { return kU16 + text.size(); }
size_t Bytes32Bytes(std::span<const uint8_t> bytes) { return kU32 + bytes.size(); }

// Whether `type` is one of RecordType's values.
bool KnownType(uint8_t type) {
  return type >= static_cast<uint8_t>(RecordType::kSnapshotBegin) &&
         type <= static_cast<uint8_t>(RecordType::kRetainedAll);
}

// The body length of `record` as AppendRecord encodes it.
size_t BodyBytes(const Record& record) {
  switch (record.type) {
    case RecordType::kSnapshotBegin:
      return 0;
    case RecordType::kSnapshotEnd:
    case RecordType::kSessionEnd:
    case RecordType::kRetainedAll:
      return kU64;
    case RecordType::kSession:
      return kU64 + kU32 + kU8 + Str16Bytes(record.text) + (record.flags != 0 ? kU8 : 0);
    case RecordType::kSessionOffline:
      return kU64 + kU64;
    case RecordType::kSubscribe:
      return kU64 + kU8 + kU32 + Str16Bytes(record.text);
    case RecordType::kUnsubscribe:
      return kU64 + Str16Bytes(record.text);
    case RecordType::kMessage:
      return kU64 + kU8 + kU8 + kU64 + Str16Bytes(record.text) +
             Bytes32Bytes(record.properties) + Bytes32Bytes(record.payload);
    case RecordType::kEnqueue:
      return kU64 + kU64 + kU8 + kU8;
    case RecordType::kSent:
      return kU64 + kU64 + kU16;
    case RecordType::kPuback:
    case RecordType::kPubrec:
    case RecordType::kPubcomp:
    case RecordType::kInboundQos2:
    case RecordType::kInboundRelease:
      return kU64 + kU16;
    case RecordType::kDiscard:
      return kU64 + kU64;
    case RecordType::kRetain:
      return kU64 + kU8 + kU64 + Str16Bytes(record.text) + Bytes32Bytes(record.properties) +
             Bytes32Bytes(record.payload);
  }
  RINGMQ_ASSERT(false && "unknown RecordType");
  return 0;
}

// Little-endian writes into a buffer sized beforehand.
class Writer {
 public:
  explicit Writer(uint8_t* out) : out_(out) {}
  void U8(uint8_t value) { *out_++ = value; }
  void U16(uint16_t value) { Little(value, kU16); }
  void U32(uint32_t value) { Little(value, kU32); }
  void U64(uint64_t value) { Little(value, kU64); }
  void Str16(std::string_view text) {
    RINGMQ_ASSERT(text.size() <= std::numeric_limits<uint16_t>::max());
    U16(static_cast<uint16_t>(text.size()));
    Raw(text.data(), text.size());
  }
  void Bytes32(std::span<const uint8_t> bytes) {
    RINGMQ_ASSERT(bytes.size() <= kMaxBodyBytes);
    U32(static_cast<uint32_t>(bytes.size()));
    Raw(bytes.data(), bytes.size());
  }
  void Raw(const void* bytes, size_t size) {
    if (size != 0) std::memcpy(out_, bytes, size);
    out_ += size;
  }
  uint8_t* position() const { return out_; }

 private:
  void Little(uint64_t value, size_t size) {
    for (size_t i = 0; i < size; ++i) *out_++ = static_cast<uint8_t>(value >> (8 * i));
  }
  uint8_t* out_;
};

void WriteBody(Writer& out, const Record& record) {
  switch (record.type) {
    case RecordType::kSnapshotBegin:
      return;
    case RecordType::kSnapshotEnd:
    case RecordType::kRetainedAll:
      return out.U64(record.count);
    case RecordType::kSession:
      out.U64(record.sid);
      out.U32(record.expiry_s);
      out.U8(record.level);
      out.Str16(record.text);
      if (record.flags != 0) out.U8(record.flags);  // absent when 0 (record.h)
      return;
    case RecordType::kSessionEnd:
      return out.U64(record.sid);
    case RecordType::kSessionOffline:
      out.U64(record.sid);
      return out.U64(record.count);
    case RecordType::kSubscribe:
      out.U64(record.sid);
      out.U8(record.options);
      out.U32(record.identifier);
      return out.Str16(record.text);
    case RecordType::kUnsubscribe:
      out.U64(record.sid);
      return out.Str16(record.text);
    case RecordType::kMessage:
      out.U64(record.mid);
      out.U8(record.qos);
      out.U8(record.flags);
      out.U64(record.expiry_wall_ms);
      out.Str16(record.text);
      out.Bytes32(record.properties);
      return out.Bytes32(record.payload);
    case RecordType::kEnqueue:
      out.U64(record.sid);
      out.U64(record.mid);
      out.U8(record.qos);
      return out.U8(record.flags);
    case RecordType::kSent:
      out.U64(record.sid);
      out.U64(record.mid);
      return out.U16(record.packet_id);
    case RecordType::kPuback:
    case RecordType::kPubrec:
    case RecordType::kPubcomp:
    case RecordType::kInboundQos2:
    case RecordType::kInboundRelease:
      out.U64(record.sid);
      return out.U16(record.packet_id);
    case RecordType::kDiscard:
      out.U64(record.sid);
      return out.U64(record.mid);
    case RecordType::kRetain:
      out.U64(record.count);
      out.U8(record.qos);
      out.U64(record.expiry_wall_ms);
      out.Str16(record.text);
      out.Bytes32(record.properties);
      return out.Bytes32(record.payload);
  }
}

// Bounds-checked little-endian reads over one record's body. A read past the end sets
// overrun() and yields zero / empty; the caller checks once at the end.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> body) : body_(body) {}
  uint8_t U8() { return static_cast<uint8_t>(Little(kU8)); }
  uint16_t U16() { return static_cast<uint16_t>(Little(kU16)); }
  uint32_t U32() { return static_cast<uint32_t>(Little(kU32)); }
  uint64_t U64() { return Little(kU64); }
  std::string_view Str16() {
    const std::span<const uint8_t> bytes = Take(U16());
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  std::span<const uint8_t> Bytes32() { return Take(U32()); }
  bool overrun() const { return overrun_; }
  size_t left() const { return body_.size() - used_; }
  // The next byte without taking it; 0 at the end.
  uint8_t PeekU8() const { return left() != 0 ? body_[used_] : 0; }

 private:
  std::span<const uint8_t> Take(size_t size) {
    if (overrun_ || size > left()) {
      overrun_ = true;
      return {};
    }
    const std::span<const uint8_t> bytes = body_.subspan(used_, size);
    used_ += size;
    return bytes;
  }
  uint64_t Little(size_t size) {
    const std::span<const uint8_t> bytes = Take(size);
    uint64_t value = 0;
    for (size_t i = 0; i < bytes.size(); ++i) value |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    return value;
  }

  std::span<const uint8_t> body_;
  size_t used_ = 0;
  bool overrun_ = false;
};

void ReadBody(Cursor& in, Record& record) {
  switch (record.type) {
    case RecordType::kSnapshotBegin:
      return;
    case RecordType::kSnapshotEnd:
    case RecordType::kRetainedAll:
      record.count = in.U64();
      return;
    case RecordType::kSession:
      record.sid = in.U64();
      record.expiry_s = in.U32();
      record.level = in.U8();
      record.text = in.Str16();
      // Optional and never 0 (record.h): a zero byte is left unread, so the body is longer than
      // its fields (corrupt), as AppendRecord would never write it and the record would not
      // encode back to these bytes.
      if (in.PeekU8() != 0) record.flags = in.U8();
      return;
    case RecordType::kSessionEnd:
      record.sid = in.U64();
      return;
    case RecordType::kSessionOffline:
      record.sid = in.U64();
      record.count = in.U64();
      return;
    case RecordType::kSubscribe:
      record.sid = in.U64();
      record.options = in.U8();
      record.identifier = in.U32();
      record.text = in.Str16();
      return;
    case RecordType::kUnsubscribe:
      record.sid = in.U64();
      record.text = in.Str16();
      return;
    case RecordType::kMessage:
      record.mid = in.U64();
      record.qos = in.U8();
      record.flags = in.U8();
      record.expiry_wall_ms = in.U64();
      record.text = in.Str16();
      record.properties = in.Bytes32();
      record.payload = in.Bytes32();
      return;
    case RecordType::kEnqueue:
      record.sid = in.U64();
      record.mid = in.U64();
      record.qos = in.U8();
      record.flags = in.U8();
      return;
    case RecordType::kSent:
      record.sid = in.U64();
      record.mid = in.U64();
      record.packet_id = in.U16();
      return;
    case RecordType::kPuback:
    case RecordType::kPubrec:
    case RecordType::kPubcomp:
    case RecordType::kInboundQos2:
    case RecordType::kInboundRelease:
      record.sid = in.U64();
      record.packet_id = in.U16();
      return;
    case RecordType::kDiscard:
      record.sid = in.U64();
      record.mid = in.U64();
      return;
    case RecordType::kRetain:
      record.count = in.U64();
      record.qos = in.U8();
      record.expiry_wall_ms = in.U64();
      record.text = in.Str16();
      record.properties = in.Bytes32();
      record.payload = in.Bytes32();
      return;
  }
}

uint32_t Load32(const uint8_t* bytes) {
  return static_cast<uint32_t>(bytes[0]) | static_cast<uint32_t>(bytes[1]) << 8 |
         static_cast<uint32_t>(bytes[2]) << 16 | static_cast<uint32_t>(bytes[3]) << 24;
}

uint64_t Load64(const uint8_t* bytes) {
  return static_cast<uint64_t>(Load32(bytes)) | static_cast<uint64_t>(Load32(bytes + 4)) << 32;
}

bool AllZero(std::span<const uint8_t> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](uint8_t byte) { return byte == 0; });
}

// Where the zeros that end `bytes` begin (bytes.size() if its last byte is not zero).
size_t ZerosFrom(std::span<const uint8_t> bytes) {
  size_t end = bytes.size();
  while (end > 0 && bytes[end - 1] == 0) --end;
  return end;
}

// Whether the record at [begin, end) lies over a block the crash left unwritten: some
// kHoleBlockBytes-aligned block it overlaps reads as zeros from `begin` (or from the block's
// start, if later) to the block's end (or the end of the file). The block that held the end of
// the file when it was last synced keeps its old contents if its new ones never landed: the
// synced bytes, then zeros from where the record starts.
bool OverlapsUnwrittenBlock(std::span<const uint8_t> file, size_t begin, size_t end) {
  RINGMQ_ASSERT(begin < end && end <= file.size());
  for (size_t block = begin / kHoleBlockBytes * kHoleBlockBytes; block < end;
       block += kHoleBlockBytes) {
    const size_t from = std::max(block, begin);
    const size_t to = std::min(block + kHoleBlockBytes, file.size());
    if (AllZero(file.subspan(from, to - from))) return true;
  }
  return false;
}

}  // namespace

std::string_view RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kSnapshotBegin:
      return "snapshot_begin";
    case RecordType::kSnapshotEnd:
      return "snapshot_end";
    case RecordType::kRetainedAll:
      return "retained_all";
    case RecordType::kSession:
      return "session";
    case RecordType::kSessionEnd:
      return "session_end";
    case RecordType::kSessionOffline:
      return "session_offline";
    case RecordType::kSubscribe:
      return "subscribe";
    case RecordType::kUnsubscribe:
      return "unsubscribe";
    case RecordType::kMessage:
      return "message";
    case RecordType::kEnqueue:
      return "enqueue";
    case RecordType::kSent:
      return "sent";
    case RecordType::kPuback:
      return "puback";
    case RecordType::kPubrec:
      return "pubrec";
    case RecordType::kPubcomp:
      return "pubcomp";
    case RecordType::kDiscard:
      return "discard";
    case RecordType::kInboundQos2:
      return "inbound_qos2";
    case RecordType::kInboundRelease:
      return "inbound_release";
    case RecordType::kRetain:
      return "retain";
  }
  return "unknown";
}

size_t RecordSize(const Record& record) { return kRecordHeaderBytes + BodyBytes(record); }

size_t AppendRecord(ByteBuffer& out, const Record& record) {
  const size_t body_bytes = BodyBytes(record);
  RINGMQ_ASSERT(body_bytes <= kMaxBodyBytes);
  const size_t start = out.size();
  const size_t size = kRecordHeaderBytes + body_bytes;
  out.resize(start + size);
  uint8_t* const frame = out.data() + start;
  Writer body(frame + kRecordHeaderBytes - kU8);
  body.U8(static_cast<uint8_t>(record.type));
  WriteBody(body, record);
  RINGMQ_ASSERT(body.position() == frame + size);
  // The CRC covers the type byte and the body, which follow the length and CRC fields.
  const uint32_t crc =
      Crc32c(std::span<const uint8_t>(frame + kRecordHeaderBytes - kU8, body_bytes + kU8));
  Writer header(frame);
  header.U32(static_cast<uint32_t>(body_bytes));
  header.U32(crc);
  return size;
}

void AppendSegmentHeader(ByteBuffer& out, const SegmentHeader& header) {
  const size_t start = out.size();
  out.resize(start + kSegmentHeaderBytes);
  Writer writer(out.data() + start);
  writer.Raw(kMagic, sizeof(kMagic));
  writer.U32(header.version);
  writer.U32(header.shard);
  writer.U64(header.run);
  writer.U64(header.segment);
  RINGMQ_ASSERT(writer.position() == out.data() + out.size());
}

SegmentReader::SegmentReader(std::span<const uint8_t> file) : file_(file) {}

std::optional<SegmentHeader> SegmentReader::ReadHeader() {
  if (file_.size() < kSegmentHeaderBytes) {
    error_ = absl::StrCat("the file (", file_.size(), " bytes) is shorter than a segment header (",
                          kSegmentHeaderBytes, " bytes)");
    return std::nullopt;
  }
  if (std::memcmp(file_.data(), kMagic, sizeof(kMagic)) != 0) {
    error_ = "not a ringmq log segment (the magic \"RINGMQLG\" is missing)";
    return std::nullopt;
  }
  const uint8_t* const fields = file_.data() + sizeof(kMagic);
  SegmentHeader header;
  header.version = Load32(fields);
  if (header.version != kFormatVersion) {
    error_ = absl::StrCat("written by format version ", header.version, "; this ringmq reads ",
                          kFormatVersion);
    return std::nullopt;
  }
  header.shard = Load32(fields + kU32);
  header.run = Load64(fields + 2 * kU32);
  header.segment = Load64(fields + 2 * kU32 + kU64);
  offset_ = kSegmentHeaderBytes;
  return header;
}

ReadStatus SegmentReader::Next(Record& record) {
  record = Record{};
  RINGMQ_ASSERT(offset_ <= file_.size());
  const size_t left = file_.size() - offset_;
  if (left == 0) return ReadStatus::kEnd;
  const std::span<const uint8_t> rest = file_.subspan(offset_);
  if (left < kRecordHeaderBytes) {
    error_ = absl::StrCat("the last ", left, " bytes are shorter than a record header");
    return ReadStatus::kTornTail;
  }
  const uint32_t body_bytes = Load32(rest.data());
  const uint32_t stored_crc = Load32(rest.data() + kU32);
  const uint8_t type = rest[2 * kU32];
  if (body_bytes > kMaxBodyBytes) {
    // No writer wrote this length, nor a prefix of it (an unwritten block reads as zeros).
    error_ = absl::StrCat("body length ", body_bytes, " exceeds the maximum ", kMaxBodyBytes);
    return ReadStatus::kCorrupt;
  }
  if (body_bytes > left - kRecordHeaderBytes) {
    return Torn(absl::StrCat("a record of ", kRecordHeaderBytes + size_t{body_bytes},
                             " bytes runs past the end of the file (", left, " bytes left)"));
  }
  const size_t size = kRecordHeaderBytes + body_bytes;
  const uint32_t crc = Crc32c(rest.subspan(kRecordHeaderBytes - kU8, body_bytes + kU8));
  if (crc != stored_crc) {
    // A torn write: the record is the last one, or a block of it was never written (a crash
    // while a write of several pages was being written back leaves zero-filled holes).
    if (ZerosFrom(rest) <= size) {
      return Torn(size == left ? "the last record's CRC does not match"
                               : "a record's CRC does not match and zeros follow to the end");
    }
    if (OverlapsUnwrittenBlock(file_, offset_, offset_ + size)) {
      return Torn("a record's CRC does not match and it lies over an unwritten (zero) block");
    }
    error_ = absl::StrFormat("record of type %u: CRC32C 0x%08x, stored 0x%08x", type, crc,
                             stored_crc);
    return ReadStatus::kCorrupt;
  }
  // The CRC matches, so these bytes are what a writer wrote: no crash explains what follows.
  if (!KnownType(type)) {
    error_ = absl::StrCat("unknown record type ", type);
    return ReadStatus::kCorrupt;
  }
  record.type = static_cast<RecordType>(type);
  Cursor body(rest.subspan(kRecordHeaderBytes, body_bytes));
  ReadBody(body, record);
  if (body.overrun() || body.left() != 0) {
    error_ = std::string(RecordTypeName(record.type)) + " record: ";
    error_ += body.overrun() ? std::string("its fields run past the end of its body")
                             : absl::StrCat(body.left(), " bytes after its fields");
    record = Record{};
    return ReadStatus::kCorrupt;
  }
  offset_ += size;
  return ReadStatus::kOk;
}

ReadStatus SegmentReader::Torn(std::string why) {
  error_ = std::move(why);
  return ReadStatus::kTornTail;
}

}  // namespace ringmq::persist
