// libFuzzer target for the persistence log's reader (src/persist/record.h).
//
// Input: one control byte, then a segment file. Control bit 0 set: the bytes are the whole file,
// header included (ReadHeader is fuzzed); clear: a valid header is put in front, so that the
// mutations reach the records. Bit 1 set: every record's CRC is recomputed first (FixCrcs), so
// that mutated bodies reach the decoder instead of failing their CRC. Seeds: tests/fuzz/make_persist_log_seeds.py. Properties that must
// hold for any bytes:
//  - ReadHeader and Next never crash, assert or read outside the file;
//  - each kOk record lies inside the file, and AppendRecord re-encodes it to exactly the bytes
//    it was read from (the encoding is canonical: what reads is what a writer wrote);
//  - the reader stops: kEnd exactly at the end of the file; kTornTail or kCorrupt before it,
//    with an error, and asked again it answers the same at the same offset;
//  - a torn tail cut off (what recovery does) leaves a file that reads the same records to kEnd;
//  - DurableState::Apply takes every record read without crashing (it may refuse one: the state
//    is then unchanged and error() says why), and the state moves into a RecoveredState.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "common/byte_buffer.h"
#include "common/crc32c.h"
#include "persist/record.h"
#include "persist/state.h"

namespace ringmq::persist {
namespace {

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "persist_log invariant failed: %s (line %d)\n", #condition,       \
                   __LINE__);                                                                 \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

bool Inside(std::span<const uint8_t> file, std::span<const uint8_t> view) {
  if (view.empty()) return true;
  return view.data() >= file.data() && view.data() + view.size() <= file.data() + file.size();
}

struct Outcome {
  ReadStatus status = ReadStatus::kEnd;
  size_t offset = 0;
  size_t records = 0;
};

// Reads every record of `file`; checks the per-record properties.
Outcome ReadSegment(std::span<const uint8_t> file) {
  Outcome outcome;
  SegmentReader reader(file);
  if (!reader.ReadHeader().has_value()) {
    FUZZ_CHECK(!reader.error().empty());
    outcome.status = ReadStatus::kCorrupt;
    return outcome;
  }
  FUZZ_CHECK(reader.offset() == kSegmentHeaderBytes);
  Record record;
  ByteBuffer encoded;
  DurableState state;
  for (;;) {
    const size_t start = reader.offset();
    outcome.status = reader.Next(record);
    if (outcome.status != ReadStatus::kOk) break;
    ++outcome.records;
    const size_t end = reader.offset();
    FUZZ_CHECK(start < end && end <= file.size());
    FUZZ_CHECK(RecordSize(record) == end - start);
    const std::span<const uint8_t> text(reinterpret_cast<const uint8_t*>(record.text.data()),
                                        record.text.size());
    FUZZ_CHECK(Inside(file, text) && Inside(file, record.properties) &&
               Inside(file, record.payload));
    encoded.clear();
    FUZZ_CHECK(AppendRecord(encoded, record) == end - start);
    FUZZ_CHECK(std::memcmp(encoded.data(), file.data() + start, end - start) == 0);
    if (!state.Apply(record)) FUZZ_CHECK(!state.error().empty());
  }
  RecoveredState recovered;
  const uint64_t deliveries = state.delivery_count();
  const size_t sessions = state.sessions().size();
  state.MoveInto(recovered);
  FUZZ_CHECK(recovered.sessions.size() <= sessions);
  uint64_t moved = 0;
  for (const auto& [client_id, session] : recovered.sessions) moved += session.deliveries.size();
  FUZZ_CHECK(moved <= deliveries);
  recovered.DropRetainedDeletions();
  outcome.offset = reader.offset();
  if (outcome.status == ReadStatus::kEnd) {
    FUZZ_CHECK(outcome.offset == file.size());
  } else {
    FUZZ_CHECK(outcome.offset < file.size());
    FUZZ_CHECK(!reader.error().empty());
    Record again;
    FUZZ_CHECK(reader.Next(again) == outcome.status);
    FUZZ_CHECK(reader.offset() == outcome.offset);
  }
  return outcome;
}

// Sets each record's CRC to match its type and body, walking the framing from the header on
// until a length runs past the end: the mutations then reach the body decoder (and Apply)
// instead of stopping at the CRC.
void FixCrcs(std::span<uint8_t> file) {
  size_t offset = kSegmentHeaderBytes;
  while (offset + kRecordHeaderBytes <= file.size()) {
    const uint8_t* at = file.data() + offset;
    const uint32_t body = static_cast<uint32_t>(at[0]) | static_cast<uint32_t>(at[1]) << 8 |
                          static_cast<uint32_t>(at[2]) << 16 | static_cast<uint32_t>(at[3]) << 24;
    if (body > file.size() - offset - kRecordHeaderBytes) return;
    const uint32_t crc = Crc32c(file.subspan(offset + kRecordHeaderBytes - 1, body + 1));
    for (int i = 0; i < 4; ++i) file[offset + 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
    offset += kRecordHeaderBytes + body;
  }
}

void Check(std::span<const uint8_t> file) {
  const Outcome outcome = ReadSegment(file);
  if (outcome.status == ReadStatus::kTornTail) {
    const Outcome cut = ReadSegment(file.first(outcome.offset));
    FUZZ_CHECK(cut.status == ReadStatus::kEnd && cut.records == outcome.records);
  }
}

}  // namespace
}  // namespace ringmq::persist

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq::persist;
  if (size == 0 || size > (1u << 20)) return 0;
  const uint8_t control = data[0];
  const std::span<const uint8_t> input(data + 1, size - 1);
  ringmq::ByteBuffer header;
  if ((control & 1) == 0) AppendSegmentHeader(header, SegmentHeader{kFormatVersion, 0, 1, 0});
  // An allocation of exactly the file's size, so that AddressSanitizer sees a read past it.
  const size_t file_size = header.size() + input.size();
  std::unique_ptr<uint8_t[]> file(new uint8_t[file_size]);
  if (!header.empty()) std::memcpy(file.get(), header.data(), header.size());
  if (!input.empty()) std::memcpy(file.get() + header.size(), input.data(), input.size());
  const std::span<uint8_t> bytes(file.get(), file_size);
  if (control & 2) ringmq::persist::FixCrcs(bytes);
  ringmq::persist::Check(bytes);
  return 0;
}
