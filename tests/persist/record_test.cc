// The persistence log's record format (src/persist/record.h): every record type round-trips
// with every field, the framing is pinned byte for byte, a log cut at any byte reads as its
// complete records then a torn tail, a flipped bit in the middle is corruption, a CRC-valid
// record that does not decode exactly is corruption, and a header of another version is refused.
#include "persist/record.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/crc32c.h"

namespace ringmq::persist {
namespace {

using Bytes = std::vector<uint8_t>;

// Record holds views: the fixtures' strings and blocks live here.
const std::string kClientId = "client-\xC3\xA9-1";
const std::string kFilter = "sensors/+/temperature/#";
const std::string kTopic = "sensors/kitchen/temperature";
const Bytes kProperties = {0x01, 0x01, 0x23, 0x00, 0x05};
const Bytes kPayload = {'2', '1', '.', '5', 0x00, 0xFF};

bool SameRecord(const Record& a, const Record& b) {
  return a.type == b.type && a.sid == b.sid && a.mid == b.mid && a.count == b.count &&
         a.expiry_wall_ms == b.expiry_wall_ms && a.expiry_s == b.expiry_s &&
         a.identifier == b.identifier && a.packet_id == b.packet_id && a.level == b.level &&
         a.qos == b.qos && a.flags == b.flags && a.options == b.options && a.text == b.text &&
         std::equal(a.properties.begin(), a.properties.end(), b.properties.begin(),
                    b.properties.end()) &&
         std::equal(a.payload.begin(), a.payload.end(), b.payload.begin(), b.payload.end());
}

std::string Describe(const Record& r) {
  return std::string(RecordTypeName(r.type)) + " sid=" + std::to_string(r.sid) +
         " mid=" + std::to_string(r.mid) + " count=" + std::to_string(r.count) +
         " text=" + std::string(r.text);
}

// One record of each type, every field it carries set to a distinct value with high bytes
// (so a field written short or in the wrong order reads back different).
std::vector<Record> EveryType() {
  std::vector<Record> records;
  auto add = [&](RecordType type) -> Record& {
    records.push_back(Record{});
    records.back().type = type;
    return records.back();
  };
  add(RecordType::kSnapshotBegin);
  add(RecordType::kSnapshotEnd).count = 0x0123456789ABCDEF;
  Record& session = add(RecordType::kSession);
  session.sid = 0xF000000100000002;
  session.expiry_s = 0xFFFFFFFE;
  session.level = 5;
  session.text = kClientId;
  add(RecordType::kSessionEnd).sid = 0x8000000000000001;
  Record& offline = add(RecordType::kSessionOffline);
  offline.sid = 7;
  offline.count = 1765000000123;
  Record& subscribe = add(RecordType::kSubscribe);
  subscribe.sid = 0x1122334455667788;
  subscribe.options = 0x0E;
  subscribe.identifier = 268435455;
  subscribe.text = kFilter;
  Record& unsubscribe = add(RecordType::kUnsubscribe);
  unsubscribe.sid = 9;
  unsubscribe.text = kFilter;
  Record& message = add(RecordType::kMessage);
  message.mid = 0x0003000000000042;
  message.qos = 2;
  message.flags = 1;
  message.expiry_wall_ms = 0xFEDCBA9876543210;
  message.text = kTopic;
  message.properties = kProperties;
  message.payload = kPayload;
  Record& enqueue = add(RecordType::kEnqueue);
  enqueue.sid = 0xA1A2A3A4A5A6A7A8;
  enqueue.mid = 0xB1B2B3B4B5B6B7B8;
  enqueue.qos = 1;
  enqueue.flags = 1;
  Record& sent = add(RecordType::kSent);
  sent.sid = 3;
  sent.mid = 0xC1C2C3C4C5C6C7C8;
  sent.packet_id = 0xFFFF;
  for (RecordType type : {RecordType::kPuback, RecordType::kPubrec, RecordType::kPubcomp,
                          RecordType::kInboundQos2, RecordType::kInboundRelease}) {
    Record& ack = add(type);
    ack.sid = 0xD1D2D3D4D5D6D7D8;
    ack.packet_id = static_cast<uint16_t>(0x8100 + static_cast<uint8_t>(type));
  }
  Record& discard = add(RecordType::kDiscard);
  discard.sid = 11;
  discard.mid = 0xE1E2E3E4E5E6E7E8;
  Record& retain = add(RecordType::kRetain);
  retain.count = 0x00FF00FF00FF00FF;
  retain.qos = 1;
  retain.expiry_wall_ms = 1;
  retain.text = kTopic;
  retain.properties = kProperties;
  retain.payload = kPayload;
  add(RecordType::kRetainedAll).count = 0x0F1E2D3C4B5A6978;
  return records;
}

Bytes SegmentBytes(const std::vector<Record>& records, std::vector<size_t>* starts = nullptr) {
  ByteBuffer out;
  AppendSegmentHeader(out, SegmentHeader{kFormatVersion, 3, 17, 2});
  for (const Record& record : records) {
    if (starts != nullptr) starts->push_back(out.size());
    const size_t before = out.size();
    EXPECT_EQ(AppendRecord(out, record), RecordSize(record));
    EXPECT_EQ(out.size() - before, RecordSize(record));
  }
  return Bytes(out.begin(), out.end());
}

// A framed record with any type byte and body, its CRC computed: bytes a writer could have
// written, for the cases the real encoder cannot produce.
Bytes Frame(uint8_t type, const Bytes& body) {
  Bytes crc_input = {type};
  crc_input.insert(crc_input.end(), body.begin(), body.end());
  const uint32_t crc = Crc32c(crc_input);
  Bytes frame;
  for (uint32_t value : {static_cast<uint32_t>(body.size()), crc}) {
    for (int i = 0; i < 4; ++i) frame.push_back(static_cast<uint8_t>(value >> (8 * i)));
  }
  frame.insert(frame.end(), crc_input.begin(), crc_input.end());
  return frame;
}

void Append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

struct ReadAll {
  Bytes file;  // a copy the records' views point into (a moved vector keeps its bytes)
  std::vector<Record> records;
  ReadStatus status = ReadStatus::kOk;
  size_t offset = 0;
  std::string error;
};

ReadAll Read(const Bytes& file) {
  ReadAll result;
  result.file = file;
  SegmentReader reader(result.file);
  if (!reader.ReadHeader().has_value()) {
    ADD_FAILURE() << reader.error();
    return result;
  }
  Record record;
  while ((result.status = reader.Next(record)) == ReadStatus::kOk) {
    result.records.push_back(record);
  }
  result.offset = reader.offset();
  result.error = reader.error();
  return result;
}

TEST(RecordTest, EveryTypeRoundTripsWithEveryField) {
  const std::vector<Record> records = EveryType();
  ASSERT_EQ(records.size(), 18u);  // one per RecordType
  const Bytes file = SegmentBytes(records);
  SegmentReader reader(file);
  const std::optional<SegmentHeader> header = reader.ReadHeader();
  ASSERT_TRUE(header.has_value()) << reader.error();
  EXPECT_EQ(header->version, kFormatVersion);
  EXPECT_EQ(header->shard, 3u);
  EXPECT_EQ(header->run, 17u);
  EXPECT_EQ(header->segment, 2u);
  EXPECT_EQ(reader.offset(), kSegmentHeaderBytes);
  for (const Record& expected : records) {
    Record got;
    ASSERT_EQ(reader.Next(got), ReadStatus::kOk) << reader.error();
    EXPECT_TRUE(SameRecord(got, expected)) << Describe(got) << " vs " << Describe(expected);
    EXPECT_NE(RecordTypeName(got.type), "unknown");
  }
  Record end;
  EXPECT_EQ(reader.Next(end), ReadStatus::kEnd);
  EXPECT_EQ(reader.offset(), file.size());
}

TEST(RecordTest, FieldsOutsideTheTypeAreNotWrittenAndReadAsZero) {
  Record record;
  record.type = RecordType::kPuback;
  record.sid = 5;
  record.packet_id = 10;
  record.mid = 99;  // not a kPuback field
  record.text = kTopic;
  EXPECT_EQ(RecordSize(record), kRecordHeaderBytes + 8 + 2);
  const ReadAll read = Read(SegmentBytes({record}));
  ASSERT_EQ(read.records.size(), 1u);
  EXPECT_EQ(read.records[0].mid, 0u);
  EXPECT_TRUE(read.records[0].text.empty());
  EXPECT_EQ(read.records[0].packet_id, 10u);
}

TEST(RecordTest, LongestStringsAndEmptyBlocksRoundTrip) {
  const std::string topic(65535, 't');
  const Bytes payload(100000, 0xAB);
  Record message;
  message.type = RecordType::kMessage;
  message.mid = 1;
  message.text = topic;
  message.payload = payload;  // properties empty
  Record retain = message;
  retain.type = RecordType::kRetain;
  retain.mid = 0;  // not a kRetain field
  retain.count = 12;
  retain.payload = {};  // a deletion
  Record empty_client;
  empty_client.type = RecordType::kSession;
  const ReadAll read = Read(SegmentBytes({message, retain, empty_client}));
  ASSERT_EQ(read.status, ReadStatus::kEnd) << read.error;
  ASSERT_EQ(read.records.size(), 3u);
  EXPECT_TRUE(SameRecord(read.records[0], message));
  EXPECT_TRUE(SameRecord(read.records[1], retain));
  EXPECT_TRUE(read.records[1].payload.empty());
  EXPECT_TRUE(SameRecord(read.records[2], empty_client));
}

// The framing and byte order, pinned: a change here is a new format version.
TEST(RecordTest, EncodingIsPinnedByteForByte) {
  ByteBuffer out;
  AppendSegmentHeader(out, SegmentHeader{kFormatVersion, 0x01020304, 0x05, 0x0102030405060708});
  const Bytes header = {'R', 'I', 'N', 'G', 'M', 'Q', 'L', 'G', 1, 0, 0, 0, 4, 3, 2, 1,
                        5,   0,   0,   0,   0,   0,   0,   0,   8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_EQ(Bytes(out.begin(), out.end()), header);
  Record sent;
  sent.type = RecordType::kSent;
  sent.sid = 0x1122334455667788;
  sent.mid = 0x99;
  sent.packet_id = 0xABCD;
  ByteBuffer framed;
  AppendRecord(framed, sent);
  const Bytes body = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                      0x99, 0,    0,    0,    0,    0,    0,    0,    0xCD, 0xAB};
  EXPECT_EQ(Bytes(framed.begin(), framed.end()), Frame(10, body));
  EXPECT_EQ(framed[0], 18u);  // body length, little-endian
}

// Every prefix of a log (a crash can cut it at any byte) reads as the records it holds whole,
// then kEnd at a record boundary or kTornTail at the start of the cut record.
TEST(RecordTest, EveryCutPointReadsTheCompleteRecordsThenATornTail) {
  std::vector<size_t> starts;
  const std::vector<Record> records = EveryType();
  const Bytes file = SegmentBytes(records, &starts);
  starts.push_back(file.size());
  for (size_t cut = kSegmentHeaderBytes; cut <= file.size(); ++cut) {
    const Bytes prefix(file.begin(), file.begin() + static_cast<ptrdiff_t>(cut));
    const size_t whole = static_cast<size_t>(
        std::upper_bound(starts.begin(), starts.end(), cut) - starts.begin() - 1);
    const ReadAll read = Read(prefix);
    ASSERT_EQ(read.records.size(), whole) << "cut " << cut;
    for (size_t i = 0; i < whole; ++i) ASSERT_TRUE(SameRecord(read.records[i], records[i]));
    EXPECT_EQ(read.offset, starts[whole]) << "cut " << cut;
    EXPECT_EQ(read.status, cut == starts[whole] ? ReadStatus::kEnd : ReadStatus::kTornTail)
        << "cut " << cut;
    // The file was extended but the write never landed: the missing bytes read as zeros.
    Bytes zero_filled = prefix;
    zero_filled.resize(file.size() + 64, 0);
    // (Where the missing bytes were zeros, the record reads whole, as written.)
    const ReadAll zeros = Read(zero_filled);
    ASSERT_GE(zeros.records.size(), whole) << "cut " << cut;
    for (size_t i = 0; i < zeros.records.size(); ++i) {
      ASSERT_TRUE(SameRecord(zeros.records[i], records[i])) << "cut " << cut;
    }
    EXPECT_EQ(zeros.status, ReadStatus::kTornTail) << "cut " << cut << ": " << zeros.error;
    EXPECT_EQ(zeros.offset, starts[zeros.records.size()]);
  }
}

TEST(RecordTest, TornTailIsReportedAgainAndNeverPassed) {
  Bytes file = SegmentBytes(EveryType());
  file.resize(file.size() - 1);
  SegmentReader reader(file);
  ASSERT_TRUE(reader.ReadHeader().has_value());
  Record record;
  while (reader.Next(record) == ReadStatus::kOk) {
  }
  const size_t offset = reader.offset();
  EXPECT_EQ(reader.Next(record), ReadStatus::kTornTail);
  EXPECT_EQ(reader.Next(record), ReadStatus::kTornTail);
  EXPECT_EQ(reader.offset(), offset);
  EXPECT_FALSE(reader.error().empty());
}

// A flipped bit anywhere in a record followed by others is corruption at that record; in its
// length field it may instead make the record run past the end (read as a torn tail, the one
// case the framing cannot tell from a crash). Never is a record read differently.
TEST(RecordTest, AFlippedBitInTheMiddleIsCorruption) {
  const std::vector<Record> records = EveryType();
  std::vector<size_t> starts;
  const Bytes file = SegmentBytes(records, &starts);
  starts.push_back(file.size());
  for (size_t index = 0; index + 1 < records.size(); ++index) {
    for (size_t at = starts[index]; at < starts[index + 1]; ++at) {
      for (int bit = 0; bit < 8; ++bit) {
        Bytes damaged = file;
        damaged[at] ^= static_cast<uint8_t>(1 << bit);
        const ReadAll read = Read(damaged);
        ASSERT_EQ(read.records.size(), index) << "byte " << at << " bit " << bit;
        EXPECT_EQ(read.offset, starts[index]);
        const bool length_field = at < starts[index] + 4;
        if (length_field) {
          EXPECT_NE(read.status, ReadStatus::kEnd);
          EXPECT_NE(read.status, ReadStatus::kOk);
        } else {
          EXPECT_EQ(read.status, ReadStatus::kCorrupt)
              << RecordTypeName(records[index].type) << " byte " << at - starts[index]
              << " bit " << bit << ": " << read.error;
        }
      }
    }
  }
}

// A write of several pages cut by a crash may leave a page in its middle unwritten (zeros)
// while later pages landed: the record over the hole starts the torn tail.
TEST(RecordTest, AZeroFilledPageInsideTheLastWriteIsATornTail) {
  std::vector<Record> records;
  const Bytes payload(1000, 0x5A);
  for (uint64_t mid = 1; mid <= 20; ++mid) {
    Record message;
    message.type = RecordType::kMessage;
    message.mid = mid;
    message.text = kTopic;
    message.payload = payload;
    records.push_back(message);
  }
  std::vector<size_t> starts;
  Bytes file = SegmentBytes(records, &starts);
  ASSERT_GT(file.size(), 3 * 4096u);
  std::fill(file.begin() + 8192, file.begin() + 12288, 0);
  const size_t hit = static_cast<size_t>(
      std::upper_bound(starts.begin(), starts.end(), size_t{8192}) - starts.begin() - 1);
  const ReadAll read = Read(file);
  EXPECT_EQ(read.status, ReadStatus::kTornTail) << read.error;
  EXPECT_EQ(read.records.size(), hit);
  EXPECT_EQ(read.offset, starts[hit]);

  // Zeros that do not fill an aligned page are not a hole: that is corruption.
  Bytes partial = SegmentBytes(records, &starts);
  std::fill(partial.begin() + 8200, partial.begin() + 8300, 0);
  EXPECT_EQ(Read(partial).status, ReadStatus::kCorrupt);
}

// The block that held the end of the synced data was not written back again (it keeps the
// synced bytes, then zeros), while a later block of the same write was: the record that starts
// at the synced end begins the torn tail.
TEST(RecordTest, TheBlockHoldingTheSyncedEndMayKeepItsOldContents) {
  std::vector<Record> records;
  const Bytes payload(900, 0x5A);
  for (uint64_t mid = 1; mid <= 20; ++mid) {
    Record message;
    message.type = RecordType::kMessage;
    message.mid = mid;
    message.text = kTopic;
    message.payload = payload;
    records.push_back(message);
  }
  std::vector<size_t> starts;
  Bytes file = SegmentBytes(records, &starts);
  // The synced end: the first record boundary inside the second block.
  const size_t synced = *std::upper_bound(starts.begin(), starts.end(), size_t{4096});
  ASSERT_LT(synced, 8192u);
  std::fill(file.begin() + static_cast<ptrdiff_t>(synced), file.begin() + 8192, 0);
  const size_t index = static_cast<size_t>(
      std::find(starts.begin(), starts.end(), synced) - starts.begin());
  const ReadAll read = Read(file);
  EXPECT_EQ(read.status, ReadStatus::kTornTail) << read.error;
  EXPECT_EQ(read.records.size(), index);
  EXPECT_EQ(read.offset, synced);
}

// A record whose CRC matches was written that way: a body that does not decode exactly is
// corruption even as the last record.
TEST(RecordTest, ACrcValidRecordThatDoesNotDecodeIsCorrupt) {
  Record enqueue;
  enqueue.type = RecordType::kEnqueue;
  enqueue.sid = 1;
  enqueue.mid = 2;
  ByteBuffer good_buffer;
  AppendRecord(good_buffer, enqueue);
  const Bytes good(good_buffer.begin(), good_buffer.end());
  const Bytes good_body(good.begin() + kRecordHeaderBytes, good.end());
  Bytes trailing = good_body;
  trailing.push_back(0);
  const Bytes short_body(good_body.begin(), good_body.end() - 1);
  // kUnsubscribe: sid, then a str16 whose length (10) runs past the body.
  const Bytes string_past = {1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 'a', 'b'};
  // kMessage: its payload's bytes32 length runs past the body.
  Bytes block_past = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 't',
                      0, 0, 0, 0, 9, 0, 0, 0, 'x'};
  const struct {
    uint8_t type;
    Bytes body;
    std::string why;
  } cases[] = {
      {9, trailing, "1 bytes after its fields"},
      {9, short_body, "run past the end of its body"},
      {7, string_past, "run past the end of its body"},
      {8, block_past, "run past the end of its body"},
      {0, good_body, "unknown record type 0"},
      {19, good_body, "unknown record type 19"},
      {255, {}, "unknown record type 255"},
  };
  for (const auto& c : cases) {
    for (bool last : {false, true}) {
      Bytes file = SegmentBytes({});
      Append(file, good);
      Append(file, Frame(c.type, c.body));
      if (!last) Append(file, good);
      const ReadAll read = Read(file);
      EXPECT_EQ(read.status, ReadStatus::kCorrupt) << c.why << (last ? " (last)" : "");
      EXPECT_EQ(read.records.size(), 1u);
      EXPECT_EQ(read.offset, kSegmentHeaderBytes + good.size());
      EXPECT_NE(read.error.find(c.why), std::string::npos) << read.error;
    }
  }
}

TEST(RecordTest, ABodyLengthAboveTheMaximumIsCorrupt) {
  Bytes file = SegmentBytes({});
  Bytes frame = {0, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint32_t length = kMaxBodyBytes + 1;
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<uint8_t>(length >> (8 * i));
  Append(file, frame);
  const ReadAll read = Read(file);
  EXPECT_EQ(read.status, ReadStatus::kCorrupt);
  EXPECT_NE(read.error.find("exceeds the maximum"), std::string::npos) << read.error;
  // A length at the maximum that runs past the end is a record being written.
  for (int i = 0; i < 4; ++i) {
    file[kSegmentHeaderBytes + i] = static_cast<uint8_t>(kMaxBodyBytes >> (8 * i));
  }
  EXPECT_EQ(Read(file).status, ReadStatus::kTornTail);
}

TEST(RecordTest, AHeaderOnlySegmentEndsCleanly) {
  const ReadAll read = Read(SegmentBytes({}));
  EXPECT_EQ(read.status, ReadStatus::kEnd);
  EXPECT_EQ(read.offset, kSegmentHeaderBytes);
}

TEST(RecordTest, HeaderOfAnotherVersionIsRefusedNamingIt) {
  Bytes file = SegmentBytes(EveryType());
  file[8] = 2;
  SegmentReader reader(file);
  EXPECT_FALSE(reader.ReadHeader().has_value());
  EXPECT_NE(reader.error().find("format version 2"), std::string::npos) << reader.error();
  EXPECT_NE(reader.error().find("reads 1"), std::string::npos) << reader.error();
}

TEST(RecordTest, HeaderWithoutTheMagicOrTooShortIsRefused) {
  Bytes file = SegmentBytes({});
  file[0] = 'r';
  SegmentReader bad_magic(file);
  EXPECT_FALSE(bad_magic.ReadHeader().has_value());
  EXPECT_NE(bad_magic.error().find("magic"), std::string::npos);
  const Bytes whole = SegmentBytes({});
  for (size_t size : {size_t{0}, size_t{8}, kSegmentHeaderBytes - 1}) {
    const Bytes short_file(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(size));
    SegmentReader reader(short_file);
    EXPECT_FALSE(reader.ReadHeader().has_value());
    EXPECT_NE(reader.error().find("shorter than a segment header"), std::string::npos);
  }
}

TEST(RecordTest, EveryTypeHasAName) {
  for (int type = 1; type <= 17; ++type) {
    EXPECT_NE(RecordTypeName(static_cast<RecordType>(type)), "unknown") << type;
  }
  EXPECT_EQ(RecordTypeName(RecordType::kEnqueue), "enqueue");
  EXPECT_EQ(RecordTypeName(static_cast<RecordType>(99)), "unknown");
}

// ---- bridgeq2 lane: kSession's optional flags byte (kSessionFlagBridge) ----

Record BridgeSession() {
  Record record;
  record.type = RecordType::kSession;
  record.sid = 0x0000000700000001;
  record.expiry_s = 0xFFFFFFFF;
  record.level = 5;
  record.flags = kSessionFlagBridge;
  record.text = kClientId;
  return record;
}

TEST(RecordTest, SessionFlagsAreWrittenOnlyWhenSetAndRoundTrip) {
  Record plain = BridgeSession();
  plain.flags = 0;
  const Record bridge = BridgeSession();
  // Without flags the record is the format's earlier kSession, byte for byte.
  EXPECT_EQ(RecordSize(plain), kRecordHeaderBytes + 8 + 4 + 1 + 2 + kClientId.size());
  EXPECT_EQ(RecordSize(bridge), RecordSize(plain) + 1);
  const ReadAll read = Read(SegmentBytes({plain, bridge}));
  ASSERT_EQ(read.status, ReadStatus::kEnd) << read.error;
  ASSERT_EQ(read.records.size(), 2u);
  EXPECT_TRUE(SameRecord(read.records[0], plain));
  EXPECT_EQ(read.records[0].flags, 0);
  EXPECT_TRUE(SameRecord(read.records[1], bridge));
  EXPECT_EQ(read.records[1].flags, kSessionFlagBridge);
}

TEST(RecordTest, SessionWithFlagsCutAtEveryByteIsATornTail) {
  std::vector<size_t> starts;
  const std::vector<Record> records = {BridgeSession(), BridgeSession()};
  const Bytes file = SegmentBytes(records, &starts);
  starts.push_back(file.size());
  for (size_t cut = kSegmentHeaderBytes; cut <= file.size(); ++cut) {
    const Bytes prefix(file.begin(), file.begin() + static_cast<ptrdiff_t>(cut));
    const size_t whole = static_cast<size_t>(
        std::upper_bound(starts.begin(), starts.end(), cut) - starts.begin() - 1);
    const ReadAll read = Read(prefix);
    ASSERT_EQ(read.records.size(), whole) << "cut " << cut;
    for (size_t i = 0; i < whole; ++i) EXPECT_TRUE(SameRecord(read.records[i], records[i]));
    EXPECT_EQ(read.status, cut == starts[whole] ? ReadStatus::kEnd : ReadStatus::kTornTail)
        << "cut " << cut;
  }
}

TEST(RecordTest, SessionBodyCutInsideItsFieldsOrLongerThanTheFlagsIsCorrupt) {
  ByteBuffer framed;
  AppendRecord(framed, BridgeSession());
  const Bytes body(framed.begin() + kRecordHeaderBytes, framed.end());
  Record end;
  end.type = RecordType::kSnapshotBegin;
  ByteBuffer after;
  AppendRecord(after, end);
  // Every shorter body (a CRC-valid record a writer never wrote) but the one without the flags
  // byte fails to decode; a byte more than the flags is left over.
  for (size_t size = 0; size < body.size(); ++size) {
    Bytes file = SegmentBytes({});
    Append(file, Frame(3, Bytes(body.begin(), body.begin() + static_cast<ptrdiff_t>(size))));
    Append(file, Bytes(after.begin(), after.end()));
    const ReadAll read = Read(file);
    if (size == body.size() - 1) {
      EXPECT_EQ(read.status, ReadStatus::kEnd) << read.error;
      ASSERT_EQ(read.records.size(), 2u);
      EXPECT_EQ(read.records[0].flags, 0);
    } else {
      EXPECT_EQ(read.status, ReadStatus::kCorrupt) << "body of " << size << " bytes";
    }
  }
  Bytes longer = body;
  longer.push_back(0);
  Bytes file = SegmentBytes({});
  Append(file, Frame(3, longer));
  Append(file, Bytes(after.begin(), after.end()));
  const ReadAll read = Read(file);
  EXPECT_EQ(read.status, ReadStatus::kCorrupt);
  EXPECT_NE(read.error.find("1 bytes after its fields"), std::string::npos) << read.error;
}

// A flags byte of 0 is never written (AppendRecord leaves it out), so a body that has one would
// not encode back to its bytes: corrupt, like any byte after the fields. Found by the fuzz
// target persist_log (its round-trip check), 2026-12-08.
TEST(RecordTest, SessionWithAZeroFlagsByteIsCorrupt) {
  Record session = BridgeSession();
  session.flags = 0;
  ByteBuffer framed;
  AppendRecord(framed, session);
  Bytes body(framed.begin() + kRecordHeaderBytes, framed.end());
  body.push_back(0);  // the flags byte, present but 0
  Bytes file = SegmentBytes({});
  Append(file, Frame(3, body));
  const ReadAll read = Read(file);
  EXPECT_EQ(read.status, ReadStatus::kCorrupt);
  EXPECT_NE(read.error.find("1 bytes after its fields"), std::string::npos) << read.error;
}

}  // namespace
}  // namespace ringmq::persist
