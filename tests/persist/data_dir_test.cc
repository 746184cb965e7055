// Unit tests for the data directory (src/persist/data_dir.h): the lock, the MANIFEST, recovery
// of the current run (torn tails, corruption, incomplete snapshots, format versions, several
// shards), segment creation and deletion, and read-only recovery leaving every file untouched.
#include "persist/data_dir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/byte_buffer.h"
#include "persist/record.h"
#include "persist/state.h"

namespace ringmq::persist {
namespace {
// Its own namespace: its record builders (Session, Message, Retain, ...) and kPayload have
// the names of state_test.cc's, and the unity build may compile both files as one.
namespace data_dir {

namespace fs = std::filesystem;

const std::vector<uint8_t> kPayload = {'p', 'a', 'y'};
const std::vector<uint8_t> kOtherPayload = {'o', 't', 'h', 'e', 'r'};
const std::vector<uint8_t> kEmpty;

Record Marker(RecordType type, uint64_t count = 0) {
  Record record;
  record.type = type;
  record.count = count;
  return record;
}

Record Session(uint64_t sid, std::string_view client_id) {
  Record record;
  record.type = RecordType::kSession;
  record.sid = sid;
  record.expiry_s = 60;
  record.level = 4;
  record.text = client_id;
  return record;
}

Record Message(uint64_t mid) {
  Record record;
  record.type = RecordType::kMessage;
  record.mid = mid;
  record.qos = 1;
  record.text = "t";
  record.payload = kPayload;
  return record;
}

Record Enqueue(uint64_t sid, uint64_t mid) {
  Record record;
  record.type = RecordType::kEnqueue;
  record.sid = sid;
  record.mid = mid;
  record.qos = 1;
  return record;
}

Record Retain(uint64_t version, std::string_view topic, const std::vector<uint8_t>& payload) {
  Record record;
  record.type = RecordType::kRetain;
  record.count = version;
  record.qos = 1;
  record.text = topic;
  record.payload = payload;
  return record;
}

// A segment file's bytes, built record by record; offsets() are where each record starts.
class Segment {
 public:
  Segment(uint32_t shard, uint64_t run, uint64_t segment, uint32_t version = kFormatVersion) {
    AppendSegmentHeader(bytes_, SegmentHeader{version, shard, run, segment});
  }
  Segment& Add(const Record& record) {
    offsets_.push_back(bytes_.size());
    AppendRecord(bytes_, record);
    return *this;
  }
  // A snapshot of `records` (kSnapshotBegin, them, kSnapshotEnd).
  Segment& Snapshot(const std::vector<Record>& records) {
    Add(Marker(RecordType::kSnapshotBegin));
    for (const Record& record : records) Add(record);
    return Add(Marker(RecordType::kSnapshotEnd, records.size()));
  }
  ByteBuffer& bytes() { return bytes_; }
  const std::vector<size_t>& offsets() const { return offsets_; }

 private:
  ByteBuffer bytes_;
  std::vector<size_t> offsets_;
};

class DataDirTest : public ::testing::Test {
 protected:
  DataDirTest() {
    std::string pattern = (fs::temp_directory_path() / "ringmq-data-dir-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    root_ = pattern;
    dir_path_ = root_ + "/data";
    fs::create_directories(dir_path_);  // some tests write files before the first Open
  }
  ~DataDirTest() override { fs::remove_all(root_); }

  std::unique_ptr<DataDir> OpenDir() {
    auto dir = DataDir::Open(dir_path_);
    EXPECT_TRUE(dir.ok()) << dir.status();
    return dir.ok() ? std::move(*dir) : nullptr;
  }

  std::string SegmentPath(uint32_t shard, uint64_t run, uint64_t segment) const {
    return dir_path_ + "/shard-" + std::to_string(shard) + "." + std::to_string(run) + "." +
           std::to_string(segment) + ".log";
  }

  void Write(const std::string& path, std::span<const uint8_t> bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
  }
  void WriteSegment(uint32_t shard, uint64_t run, uint64_t segment, Segment& contents) {
    Write(SegmentPath(shard, run, segment), contents.bytes());
  }

  // Commits `run` with `shards` shards (writes the MANIFEST) through a DataDir.
  void Commit(uint64_t run, uint32_t shards) {
    auto dir = OpenDir();
    ASSERT_NE(dir, nullptr);
    ASSERT_TRUE(dir->CommitRun(run, shards).ok());
  }

  absl::StatusOr<RecoveredState> Recover(RecoveryReport* report = nullptr,
                                         DataDir::RecoverOptions options = {}) {
    auto dir = DataDir::Open(dir_path_);
    if (!dir.ok()) return dir.status();
    return (*dir)->Recover(options, report);
  }

  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string root_;
  std::string dir_path_;
};

// The standard one-shard content: two sessions, one shared message, a retained topic.
Segment StandardSegment(uint32_t shard, uint64_t run, uint64_t segment) {
  Segment s(shard, run, segment);
  s.Snapshot({Session(1, "alpha"), Session(2, "beta"), Retain(7, "r", kPayload)});
  s.Add(Message(10)).Add(Enqueue(1, 10)).Add(Enqueue(2, 10));
  return s;
}

TEST_F(DataDirTest, OpenCreatesTheDirectoryAndParents) {
  dir_path_ = root_ + "/a/b/c";
  auto dir = OpenDir();
  ASSERT_NE(dir, nullptr);
  EXPECT_TRUE(fs::is_directory(dir_path_));
  EXPECT_TRUE(fs::exists(dir_path_ + "/LOCK"));
  EXPECT_EQ(dir->current_run(), 0u);
  EXPECT_EQ(dir->path(), dir_path_);
}

TEST_F(DataDirTest, SecondOpenIsRefusedWhileTheLockIsHeld) {
  auto first = OpenDir();
  ASSERT_NE(first, nullptr);
  auto second = DataDir::Open(dir_path_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use by another ringmq"), std::string::npos)
      << second.status();
  EXPECT_NE(second.status().message().find(dir_path_), std::string::npos);
  first.reset();  // releases the lock
  EXPECT_NE(OpenDir(), nullptr);
}

TEST_F(DataDirTest, EmptyDirectoryRecoversAnEmptyStateOfRunZero) {
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->sessions.empty());
  EXPECT_TRUE(state->retained.empty());
  EXPECT_EQ(report.run, 0u);
  EXPECT_EQ(report.files, 0u);
}

TEST_F(DataDirTest, ManifestRoundTrip) {
  Commit(3, 2);
  const std::string text = Read(dir_path_ + "/MANIFEST");
  EXPECT_TRUE(text.starts_with("ringmq-manifest 1\nrun 3\nshards 2\ncrc32c ")) << text;
  EXPECT_FALSE(fs::exists(dir_path_ + "/MANIFEST.tmp"));
  auto dir = OpenDir();
  ASSERT_NE(dir, nullptr);
  EXPECT_EQ(dir->current_run(), 3u);
  EXPECT_EQ(dir->current_shards(), 2u);
  ASSERT_TRUE(dir->CommitRun(4, 1).ok());
  EXPECT_EQ(dir->current_run(), 4u);
  dir.reset();
  dir = OpenDir();
  EXPECT_EQ(dir->current_run(), 4u);
  EXPECT_EQ(dir->current_shards(), 1u);
}

TEST_F(DataDirTest, CorruptManifestIsRefused) {
  Commit(3, 2);
  std::string text = Read(dir_path_ + "/MANIFEST");
  text[text.find("run 3") + 4] = '5';  // the CRC no longer matches
  Write(dir_path_ + "/MANIFEST",
        std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  auto dir = DataDir::Open(dir_path_);
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("corrupt MANIFEST"), std::string::npos) << dir.status();
  EXPECT_NE(dir.status().message().find(dir_path_ + "/MANIFEST"), std::string::npos);

  const std::string truncated = "ringmq-manifest 1\nrun 3\n";
  Write(dir_path_ + "/MANIFEST",
        std::span(reinterpret_cast<const uint8_t*>(truncated.data()), truncated.size()));
  EXPECT_FALSE(DataDir::Open(dir_path_).ok());
}

TEST_F(DataDirTest, ManifestOfAnotherFormatVersionIsRefusedNamingBoth) {
  const std::string text = "ringmq-manifest 2\nrun 3\nshards 2\ncrc32c 00000000\n";
  Write(dir_path_ + "/MANIFEST",
        std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  auto dir = DataDir::Open(dir_path_);
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("written by format version 2; this ringmq reads 1"),
            std::string::npos)
      << dir.status();
}

TEST_F(DataDirTest, RecoversTheRunsSegment) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  WriteSegment(0, 1, 0, segment);
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->sessions.size(), 2u);
  EXPECT_EQ(state->sessions.at("alpha").deliveries.size(), 1u);
  EXPECT_EQ(state->retained.at("r").message.payload, kPayload);
  EXPECT_EQ(state->max_retained_version, 7u);
  EXPECT_EQ(report.run, 1u);
  EXPECT_EQ(report.shards, 1u);
  EXPECT_EQ(report.files, 1u);
  EXPECT_EQ(report.bytes, segment.bytes().size());
  EXPECT_EQ(report.records, 8u);
  EXPECT_EQ(report.sessions, 2u);
  EXPECT_EQ(report.deliveries, 2u);
  EXPECT_EQ(report.retained, 1u);
  EXPECT_EQ(report.torn_tails, 0u);
}

TEST_F(DataDirTest, TornTailIsTruncatedAndTheCompleteRecordsRecovered) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  const size_t complete = segment.bytes().size();
  segment.Add(Enqueue(1, 10));
  segment.bytes().resize(segment.bytes().size() - 3);  // the last record cut by the crash
  WriteSegment(0, 1, 0, segment);
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->sessions.at("alpha").deliveries.size(), 1u);  // not 2
  EXPECT_EQ(report.torn_tails, 1u);
  EXPECT_EQ(report.torn_bytes, segment.bytes().size() - complete);
  EXPECT_EQ(fs::file_size(SegmentPath(0, 1, 0)), complete);  // truncated there
  // A second recovery finds a clean end.
  ASSERT_TRUE(Recover(&report).ok());
  EXPECT_EQ(report.torn_tails, 0u);
}

TEST_F(DataDirTest, GarbageAfterACutRecordIsATornTail) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  const size_t complete = segment.bytes().size();
  segment.Add(Enqueue(1, 10));
  segment.bytes()[complete + 12] ^= 0xFF;  // the last record damaged, then bytes no writer wrote
  for (int i = 0; i < 100; ++i) segment.bytes().push_back(static_cast<uint8_t>(0xA5 + i));
  WriteSegment(0, 1, 0, segment);
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(report.torn_tails, 1u);
  EXPECT_EQ(fs::file_size(SegmentPath(0, 1, 0)), complete);
}

TEST_F(DataDirTest, PageThatKeptItsOldContentsIsATornTailThoughLaterPagesLanded) {
  // The synced data ends mid-page; a power cut left that page's old contents (the data, then
  // zeros) while later pages of the unsynced write reached the disk.
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  for (int i = 0; i < 10; ++i) segment.Add(Enqueue(1, 10));
  const size_t synced = segment.bytes().size();
  ASSERT_LT(synced % 4096, 4096 - kRecordHeaderBytes);
  for (int i = 0; i < 400; ++i) segment.Add(Enqueue(2, 10));
  const size_t page_end = (synced / 4096 + 1) * 4096;
  ASSERT_GT(segment.bytes().size(), page_end + 4096);
  std::fill(segment.bytes().begin() + static_cast<ptrdiff_t>(synced),
            segment.bytes().begin() + static_cast<ptrdiff_t>(page_end), 0);
  WriteSegment(0, 1, 0, segment);
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(report.torn_tails, 1u);
  EXPECT_EQ(state->sessions.at("alpha").deliveries.size(), 11u);
  EXPECT_EQ(state->sessions.at("beta").deliveries.size(), 1u);
  EXPECT_EQ(fs::file_size(SegmentPath(0, 1, 0)), synced);
}

TEST_F(DataDirTest, LengthDamagedToRunPastTheEndWithRecordsAfterItIsCorrupt) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  const size_t bad = segment.offsets()[6];
  segment.bytes()[bad + 3] ^= 0x08;  // the length's high byte: 128 MiB more, past the end
  WriteSegment(0, 1, 0, segment);
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("corrupt record at offset " + std::to_string(bad)),
            std::string::npos)
      << state.status();
  EXPECT_NE(state.status().message().find("valid records follow"), std::string::npos);
  RecoveryReport report;
  state = Recover(&report, {.truncate_corrupt = true});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(report.corrupt_truncated, 1u);
  EXPECT_EQ(report.torn_tails, 0u);
  EXPECT_EQ(fs::file_size(SegmentPath(0, 1, 0)), bad);
}

TEST_F(DataDirTest, SearchForALaterRecordIsBounded) {
  // 20 MiB of 0x01 after a damaged record: every offset frames as a candidate record of type 1
  // with a 16 MiB body that fits, millions of them. The search gives up within its CRC budget
  // and calls it corruption (the side that stops and names the record).
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  const size_t bad = segment.bytes().size();
  segment.Add(Enqueue(1, 10));
  segment.bytes()[bad + kRecordHeaderBytes] ^= 0x01;
  segment.bytes().resize(segment.bytes().size() + (20u << 20), 0x01);
  WriteSegment(0, 1, 0, segment);
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("corrupt record at offset " + std::to_string(bad)),
            std::string::npos)
      << state.status();
}

TEST_F(DataDirTest, CorruptionInTheMiddleIsAnErrorNamingFileAndOffset) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  const size_t bad = segment.offsets()[6];  // the first kEnqueue; another follows it
  segment.bytes()[bad + kRecordHeaderBytes + 2] ^= 0x01;
  WriteSegment(0, 1, 0, segment);
  const std::string before = Read(SegmentPath(0, 1, 0));
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find(SegmentPath(0, 1, 0) + ": corrupt record at offset " +
                                          std::to_string(bad) + ": "),
            std::string::npos)
      << state.status();
  EXPECT_EQ(Read(SegmentPath(0, 1, 0)), before);  // nothing cut
}

TEST_F(DataDirTest, TruncateCorruptRecoversUpToTheCorruptRecord) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  const size_t bad = segment.offsets()[6];
  segment.bytes()[bad + kRecordHeaderBytes + 2] ^= 0x01;
  WriteSegment(0, 1, 0, segment);
  RecoveryReport report;
  auto state = Recover(&report, {.truncate_corrupt = true});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->sessions.at("alpha").deliveries.size(), 0u);
  EXPECT_EQ(state->sessions.size(), 2u);
  EXPECT_EQ(report.corrupt_truncated, 1u);
  EXPECT_EQ(report.records, 6u);
  EXPECT_EQ(fs::file_size(SegmentPath(0, 1, 0)), bad);
}

TEST_F(DataDirTest, InconsistentRecordIsReportedLikeACorruptOne) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  const size_t bad = segment.bytes().size();
  segment.Add(Enqueue(99, 10));  // no session 99
  segment.Add(Enqueue(1, 10));
  WriteSegment(0, 1, 0, segment);
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("corrupt record at offset " + std::to_string(bad) +
                                          ": inconsistent: "),
            std::string::npos)
      << state.status();
  EXPECT_NE(state.status().message().find("unknown session"), std::string::npos);
  RecoveryReport report;
  state = Recover(&report, {.truncate_corrupt = true});
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->sessions.at("alpha").deliveries.size(), 1u);
  EXPECT_EQ(fs::file_size(SegmentPath(0, 1, 0)), bad);
}

TEST_F(DataDirTest, SnapshotStructureIsChecked) {
  Commit(1, 1);
  Segment wrong_count(0, 1, 0);
  wrong_count.Add(Marker(RecordType::kSnapshotBegin)).Add(Session(1, "a"));
  wrong_count.Add(Marker(RecordType::kSnapshotEnd, 2)).Add(Session(2, "b"));
  WriteSegment(0, 1, 0, wrong_count);
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("kSnapshotEnd counts 2"), std::string::npos)
      << state.status();

  Segment no_begin(0, 1, 0);
  no_begin.Add(Session(1, "a")).Add(Marker(RecordType::kSnapshotEnd, 0)).Add(Session(2, "b"));
  WriteSegment(0, 1, 0, no_begin);
  state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("offset 32: the segment does not start"),
            std::string::npos)
      << state.status();
}

TEST_F(DataDirTest, NewerSegmentWithAnIncompleteSnapshotFallsBackToTheOlderOne) {
  Commit(1, 1);
  Segment older = StandardSegment(0, 1, 4);
  WriteSegment(0, 1, 4, older);
  Segment newer(0, 1, 5);
  newer.Add(Marker(RecordType::kSnapshotBegin)).Add(Session(1, "alpha"));  // no kSnapshotEnd
  newer.Add(Session(3, "gamma"));
  newer.bytes().resize(newer.bytes().size() - 2);  // and cut mid-record
  WriteSegment(0, 1, 5, newer);
  const std::string newer_bytes = Read(SegmentPath(0, 1, 5));
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->sessions.size(), 2u);
  EXPECT_EQ(state->sessions.count("gamma"), 0u);
  EXPECT_EQ(state->sessions.at("beta").deliveries.size(), 1u);
  EXPECT_EQ(report.files, 2u);
  EXPECT_EQ(report.torn_tails, 0u);  // the incomplete segment is ignored, not counted or cut
  EXPECT_EQ(Read(SegmentPath(0, 1, 5)), newer_bytes);
}

TEST_F(DataDirTest, NoCompleteSnapshotIsAnErrorUnlessSegmentZeroHoldsOnlyItsHeader) {
  Commit(1, 1);
  Segment header_only(0, 1, 0);
  WriteSegment(0, 1, 0, header_only);
  auto state = Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->sessions.empty());

  Segment incomplete(0, 1, 0);
  incomplete.Add(Marker(RecordType::kSnapshotBegin)).Add(Session(1, "alpha"));
  WriteSegment(0, 1, 0, incomplete);
  state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("no segment of shard 0 in run 1 has a complete"),
            std::string::npos)
      << state.status();
}

TEST_F(DataDirTest, SegmentOfAnotherFormatVersionIsRefusedNamingBoth) {
  Commit(1, 1);
  Segment segment(0, 1, 0, /*version=*/2);
  segment.Snapshot({Session(1, "alpha")});
  WriteSegment(0, 1, 0, segment);
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find(SegmentPath(0, 1, 0) +
                                          ": written by format version 2; this ringmq reads 1"),
            std::string::npos)
      << state.status();
}

TEST_F(DataDirTest, HeaderNamingAnotherSegmentIsRefused) {
  Commit(1, 1);
  Segment segment = StandardSegment(0, 1, 0);
  Write(SegmentPath(0, 1, 1), segment.bytes());  // a header of segment 0 in segment 1's file
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("the header names shard 0 run 1 segment 0"),
            std::string::npos)
      << state.status();
}

TEST_F(DataDirTest, MissingSegmentOfAShardTheManifestNamesIsAnError) {
  Commit(1, 2);
  Segment segment = StandardSegment(0, 1, 0);
  WriteSegment(0, 1, 0, segment);
  auto state = Recover();
  ASSERT_FALSE(state.ok());
  EXPECT_NE(state.status().message().find("shard-1.1.0.log"), std::string::npos) << state.status();
  EXPECT_NE(state.status().message().find("missing"), std::string::npos);
}

TEST_F(DataDirTest, FilesOfOtherRunsAreIgnoredAndCommitRunDeletesThem) {
  Segment old_run = StandardSegment(0, 1, 0);
  WriteSegment(0, 1, 0, old_run);
  Segment current(0, 2, 3);
  current.Snapshot({Session(5, "current")});
  WriteSegment(0, 2, 3, current);
  Segment next_run(0, 3, 0);  // a start that crashed before its commit
  next_run.Snapshot({Session(6, "never-committed")});
  WriteSegment(0, 3, 0, next_run);
  Write(dir_path_ + "/unrelated.txt", kPayload);
  Commit(2, 1);
  EXPECT_FALSE(fs::exists(SegmentPath(0, 1, 0)));
  EXPECT_FALSE(fs::exists(SegmentPath(0, 3, 0)));
  EXPECT_TRUE(fs::exists(SegmentPath(0, 2, 3)));
  EXPECT_TRUE(fs::exists(dir_path_ + "/unrelated.txt"));
  auto state = Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->sessions.size(), 1u);
  EXPECT_EQ(state->sessions.count("current"), 1u);
}

TEST_F(DataDirTest, TwoShardsStatesAreMerged) {
  Commit(1, 2);
  Segment shard0(0, 1, 0);
  shard0.Snapshot(
      {Session(1, "on-0"), Retain(10, "shared", kPayload), Retain(3, "only-0", kPayload)});
  shard0.Add(Retain(11, "deleted", kPayload));
  WriteSegment(0, 1, 0, shard0);
  Segment shard1(1, 1, 2);
  shard1.Snapshot({Session(1, "on-1"), Message(4), Enqueue(1, 4)});
  shard1.Add(Retain(12, "shared", kOtherPayload)).Add(Retain(13, "deleted", kEmpty));
  WriteSegment(1, 1, 2, shard1);
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->sessions.size(), 2u);
  EXPECT_EQ(state->sessions.at("on-1").deliveries.size(), 1u);
  EXPECT_EQ(state->retained.at("shared").message.payload, kOtherPayload);
  EXPECT_EQ(state->retained.count("only-0"), 1u);
  EXPECT_EQ(state->retained.count("deleted"), 0u);  // the newer deletion won and was dropped
  EXPECT_EQ(state->max_retained_version, 13u);
  EXPECT_EQ(report.files, 2u);
  EXPECT_EQ(report.shards, 2u);
  EXPECT_EQ(report.retained, 2u);
  EXPECT_EQ(report.deliveries, 1u);
}

TEST_F(DataDirTest, ReadOnlyRecoveryNeverModifiesAFile) {
  Commit(1, 2);
  Segment torn = StandardSegment(0, 1, 0);
  torn.Add(Enqueue(1, 10));
  torn.bytes().resize(torn.bytes().size() - 1);
  WriteSegment(0, 1, 0, torn);
  Segment corrupt = StandardSegment(1, 1, 0);
  corrupt.bytes()[corrupt.offsets()[6] + kRecordHeaderBytes] ^= 0x10;
  WriteSegment(1, 1, 0, corrupt);
  Segment other_run = StandardSegment(0, 9, 0);
  WriteSegment(0, 9, 0, other_run);
  // Old mtimes, so that any write would show.
  std::map<std::string, std::string> bytes_before;
  std::map<std::string, fs::file_time_type> times_before;
  const auto old_time = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& entry : fs::directory_iterator(dir_path_)) {
    fs::last_write_time(entry.path(), old_time);
    bytes_before[entry.path()] = Read(entry.path());
    times_before[entry.path()] = fs::last_write_time(entry.path());
  }
  RecoveryReport report;
  auto dir = OpenDir();
  auto state = dir->Recover({.truncate_corrupt = true, .read_only = true}, &report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(report.torn_tails, 1u);
  EXPECT_EQ(report.corrupt_truncated, 1u);
  dir.reset();
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir_path_)) {
    ++files;
    EXPECT_EQ(Read(entry.path()), bytes_before[entry.path()]) << entry.path();
    EXPECT_EQ(fs::last_write_time(entry.path()), times_before[entry.path()]) << entry.path();
  }
  EXPECT_EQ(files, bytes_before.size());
}

TEST_F(DataDirTest, CreateSegmentWritesTheHeaderAndTruncatesALeftover) {
  auto dir = OpenDir();
  ASSERT_NE(dir, nullptr);
  Segment leftover = StandardSegment(1, 2, 3);
  WriteSegment(1, 2, 3, leftover);
  for (const bool sync : {false, true}) {
    auto file = dir->CreateSegment(1, 2, 3, sync);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_GE(file->fd, 0);
    EXPECT_EQ(file->size, kSegmentHeaderBytes);
    EXPECT_EQ(file->run, 2u);
    EXPECT_EQ(file->segment, 3u);
    EXPECT_EQ(file->path, SegmentPath(1, 2, 3));
    EXPECT_EQ(dir->SegmentPath(1, 2, 3), SegmentPath(1, 2, 3));
    // Open for writing at `size`.
    ByteBuffer record;
    AppendRecord(record, Marker(RecordType::kSnapshotBegin));
    ASSERT_EQ(pwrite(file->fd, record.data(), record.size(), static_cast<off_t>(file->size)),
              static_cast<ssize_t>(record.size()));
    close(file->fd);
    const std::string bytes = Read(file->path);
    ASSERT_EQ(bytes.size(), kSegmentHeaderBytes + record.size());
    SegmentReader reader(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    const auto header = reader.ReadHeader();
    ASSERT_TRUE(header.has_value()) << reader.error();
    EXPECT_EQ(header->shard, 1u);
    EXPECT_EQ(header->run, 2u);
    EXPECT_EQ(header->segment, 3u);
    EXPECT_EQ(header->version, kFormatVersion);
  }
  EXPECT_GE(dir->dir_fd(), 0);
}

TEST_F(DataDirTest, DeleteOlderSegmentsDeletesOnlyThatShardsOlderSegmentsOfThatRun) {
  auto dir = OpenDir();
  ASSERT_NE(dir, nullptr);
  for (const auto& [shard, run, segment] : std::vector<std::tuple<uint32_t, uint64_t, uint64_t>>{
           {0, 1, 1}, {0, 1, 2}, {0, 1, 3}, {1, 1, 1}, {0, 2, 1}}) {
    auto file = dir->CreateSegment(shard, run, segment, false);
    ASSERT_TRUE(file.ok());
    close(file->fd);
  }
  dir->DeleteOlderSegments(0, 1, 3);
  EXPECT_FALSE(fs::exists(SegmentPath(0, 1, 1)));
  EXPECT_FALSE(fs::exists(SegmentPath(0, 1, 2)));
  EXPECT_TRUE(fs::exists(SegmentPath(0, 1, 3)));
  EXPECT_TRUE(fs::exists(SegmentPath(1, 1, 1)));
  EXPECT_TRUE(fs::exists(SegmentPath(0, 2, 1)));
}

TEST_F(DataDirTest, RecoveryOfCreatedAndCommittedSegmentsRoundTrips) {
  // The start-up sequence: recover, write the new run's snapshots, commit.
  {
    auto dir = OpenDir();
    ASSERT_NE(dir, nullptr);
    ASSERT_TRUE(dir->Recover({}, nullptr).ok());
    const uint64_t run = dir->current_run() + 1;
    for (uint32_t shard = 0; shard < 2; ++shard) {
      auto file = dir->CreateSegment(shard, run, 0, true);
      ASSERT_TRUE(file.ok());
      ByteBuffer records;
      AppendRecord(records, Marker(RecordType::kSnapshotBegin));
      AppendRecord(records, Session(1, shard == 0 ? "zero" : "one"));
      AppendRecord(records, Marker(RecordType::kSnapshotEnd, 1));
      ASSERT_EQ(pwrite(file->fd, records.data(), records.size(), static_cast<off_t>(file->size)),
                static_cast<ssize_t>(records.size()));
      close(file->fd);
    }
    ASSERT_TRUE(dir->CommitRun(run, 2).ok());
  }
  RecoveryReport report;
  auto state = Recover(&report);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(report.run, 1u);
  EXPECT_EQ(state->sessions.size(), 2u);
  EXPECT_EQ(state->sessions.count("zero"), 1u);
}

}  // namespace data_dir
}  // namespace
}  // namespace ringmq::persist
