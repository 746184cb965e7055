// `ringmq db check` and `ringmq db dump` (src/persist/db_tool.h) over data directories written
// here with plain file writes (segment header and records, a MANIFEST through
// DataDir::CommitRun): the counts, the exact text and JSON dumps, torn tails reported and left in
// place, corruption named with file and offset, a locked or missing directory, usage.
#include "persist/db_tool.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/byte_buffer.h"
#include "persist/data_dir.h"
#include "persist/record.h"

namespace ringmq::persist {
namespace {
// Its own namespace: its record builders (Session, Message, Retain, ...) and kPayload have
// the names of state_test.cc's, and the unity build may compile both files as one.
namespace db_tool {

const std::vector<uint8_t> kPayload = {'2', '1', '.', '5'};
constexpr uint64_t kMid = (uint64_t{1} << 48) | 1;
constexpr uint64_t kSidA = (uint64_t{1} << 32) | 1;
constexpr uint64_t kSidB = (uint64_t{2} << 32) | 3;

Record Session(uint64_t sid, std::string_view client_id, uint32_t expiry_s, uint8_t level) {
  Record r;
  r.type = RecordType::kSession;
  r.sid = sid;
  r.text = client_id;
  r.expiry_s = expiry_s;
  r.level = level;
  return r;
}

Record Subscribe(uint64_t sid, std::string_view filter, uint8_t options, uint32_t identifier) {
  Record r;
  r.type = RecordType::kSubscribe;
  r.sid = sid;
  r.text = filter;
  r.options = options;
  r.identifier = identifier;
  return r;
}

Record Message(uint64_t mid, std::string_view topic) {
  Record r;
  r.type = RecordType::kMessage;
  r.mid = mid;
  r.qos = 2;
  r.text = topic;
  r.payload = kPayload;
  return r;
}

Record Enqueue(uint64_t sid, uint64_t mid, uint8_t qos) {
  Record r;
  r.type = RecordType::kEnqueue;
  r.sid = sid;
  r.mid = mid;
  r.qos = qos;
  return r;
}

Record WithSidAndId(RecordType type, uint64_t sid, uint16_t packet_id, uint64_t mid = 0) {
  Record r;
  r.type = type;
  r.sid = sid;
  r.packet_id = packet_id;
  r.mid = mid;
  return r;
}

Record Retain(uint64_t version, std::string_view topic) {
  Record r;
  r.type = RecordType::kRetain;
  r.count = version;
  r.qos = 1;
  r.text = topic;
  r.payload = kPayload;
  return r;
}

// A segment: header, a snapshot of `snapshot`, then `after`.
ByteBuffer SegmentBytes(uint32_t shard, uint64_t run, const std::vector<Record>& snapshot,
                        const std::vector<Record>& after) {
  ByteBuffer out;
  AppendSegmentHeader(out, SegmentHeader{kFormatVersion, shard, run, 0});
  Record begin;
  begin.type = RecordType::kSnapshotBegin;
  AppendRecord(out, begin);
  for (const Record& r : snapshot) AppendRecord(out, r);
  Record end;
  end.type = RecordType::kSnapshotEnd;
  end.count = snapshot.size();
  AppendRecord(out, end);
  for (const Record& r : after) AppendRecord(out, r);
  return out;
}

class DbToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "ringmq-db-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Run 1 with two shards: shard 0 holds "sensor-a" (one delivery acknowledged, one in flight,
  // one queued) and a retained message; shard 1 holds "logger" (a QoS 2 delivery past PUBREC, an
  // inbound QoS 2 id, offline) and a newer version of the retained topic.
  void WriteTwoShards() {
    absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(dir_);
    ASSERT_TRUE(dir.ok()) << dir.status();
    const std::vector<Record> snapshot0 = {
        Session(kSidA, "sensor-a", 3600, 4), Subscribe(kSidA, "sensors/#", 1, 0),
        Message(kMid, "sensors/k/temp"),     Enqueue(kSidA, kMid, 1),
        Enqueue(kSidA, kMid, 1),             Enqueue(kSidA, kMid, 1),
        Retain(3, "sensors/k/temp"),
    };
    const std::vector<Record> after0 = {
        WithSidAndId(RecordType::kSent, kSidA, 1, kMid),
        WithSidAndId(RecordType::kPuback, kSidA, 1),
        WithSidAndId(RecordType::kSent, kSidA, 2, kMid),
    };
    Record offline;
    offline.type = RecordType::kSessionOffline;
    offline.sid = kSidB;
    offline.count = 1765080000123;  // 2025-12-07T04:00:00.123Z
    const std::vector<Record> snapshot1 = {
        Session(kSidB, "logger", 0xFFFFFFFF, 5),
        Subscribe(kSidB, "sensors/+/temp", 2 | 0x04 | 0x08, 42),
        Message(kMid + 1, "sensors/h/temp"),
        Enqueue(kSidB, kMid + 1, 2),
    };
    const std::vector<Record> after1 = {
        WithSidAndId(RecordType::kSent, kSidB, 7, kMid + 1),
        WithSidAndId(RecordType::kPubrec, kSidB, 7),
        WithSidAndId(RecordType::kInboundQos2, kSidB, 9),
        offline,
        Retain(5, "sensors/k/temp"),
    };
    Write((*dir)->SegmentPath(0, 1, 0), SegmentBytes(0, 1, snapshot0, after0));
    Write((*dir)->SegmentPath(1, 1, 0), SegmentBytes(1, 1, snapshot1, after1));
    ASSERT_TRUE((*dir)->CommitRun(1, 2).ok());
    shard1_path_ = (*dir)->SegmentPath(1, 1, 0);
  }

  static void Write(const std::string& path, const ByteBuffer& bytes) {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(file.good()) << path;
  }

  static std::string Read(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }

  int Run(std::vector<std::string> args) {
    args.insert(args.begin(), "db");
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    char* out_text = nullptr;
    char* err_text = nullptr;
    size_t out_size = 0, err_size = 0;
    std::FILE* out = open_memstream(&out_text, &out_size);
    std::FILE* err = open_memstream(&err_text, &err_size);
    const int status = RunDb(static_cast<int>(args.size()), argv.data(), out, err);
    std::fclose(out);
    std::fclose(err);
    output_ = out_text;
    errors_ = err_text;
    std::free(out_text);
    std::free(err_text);
    return status;
  }

  std::string dir_;
  std::string shard1_path_;
  std::string output_;
  std::string errors_;
};

TEST_F(DbToolTest, CheckPrintsTheCounts) {
  WriteTwoShards();
  ASSERT_EQ(Run({"check", dir_}), 0) << errors_;
  EXPECT_NE(output_.find(dir_ + ": run 1, 2 shards\n"), std::string::npos) << output_;
  EXPECT_NE(output_.find("read 2 files, "), std::string::npos) << output_;
  EXPECT_NE(output_.find("torn tails 0 (0 bytes"), std::string::npos) << output_;
  // sensor-a: 2 deliveries left (one acknowledged); logger: 1; the retained topic once.
  EXPECT_NE(output_.find("sessions 2, deliveries 3, retained 1\nok\n"), std::string::npos)
      << output_;
  EXPECT_TRUE(errors_.empty()) << errors_;
}

TEST_F(DbToolTest, DumpIsStableText) {
  WriteTwoShards();
  ASSERT_EQ(Run({"dump", dir_}), 0) << errors_;
  EXPECT_EQ(output_,
            "run 1, 2 shards\n"
            "session \"logger\"\n"
            "  level 5 (MQTT 5.0), expiry never, offline since 2025-12-07T04:00:00.123Z\n"
            "  subscriptions 1\n"
            "    \"sensors/+/temp\" qos 2 no_local retain_as_published identifier 42\n"
            "  deliveries 1: 1 in flight, 0 queued\n"
            "    packet 7 await_complete qos 2 mid 0x1000000000002\n"
            "  inbound qos 2 ids 1: 9\n"
            "session \"sensor-a\"\n"
            "  level 4 (MQTT 3.1.1), expiry 3600 s, online when the log ended\n"
            "  subscriptions 1\n"
            "    \"sensors/#\" qos 1\n"
            "  deliveries 2: 1 in flight, 1 queued\n"
            "    packet 2 await_ack qos 1 mid 0x1000000000001 \"sensors/k/temp\" 4 bytes\n"
            "    queued qos 1 mid 0x1000000000001 \"sensors/k/temp\" 4 bytes\n"
            "  inbound qos 2 ids 0\n"
            "retained \"sensors/k/temp\" version 5 qos 1 payload 4 bytes\n"
            "2 sessions, 3 deliveries, 1 retained\n");
}

TEST_F(DbToolTest, DumpJson) {
  WriteTwoShards();
  ASSERT_EQ(Run({"dump", "--json", dir_}), 0) << errors_;
  EXPECT_EQ(
      output_,
      "{\"run\":1,\"shards\":2,\"files\":2,\"records\":23,\"torn_tails\":0,\"deliveries\":3,"
      "\"sessions\":[\n"
      "{\"client_id\":\"logger\",\"level\":5,\"expiry_s\":4294967295,"
      "\"offline_since_wall_ms\":1765080000123,\"subscriptions\":[{\"filter\":\"sensors/+/temp\","
      "\"qos\":2,\"no_local\":true,\"retain_as_published\":true,\"identifier\":42}],"
      "\"deliveries\":1,\"in_flight\":1,\"queued\":0,\"first_deliveries\":[{\"stage\":"
      "\"await_complete\",\"packet_id\":7,\"qos\":2,\"retain\":false,\"mid\":281474976710658}],"
      "\"inbound_qos2\":[9]},\n"
      "{\"client_id\":\"sensor-a\",\"level\":4,\"expiry_s\":3600,\"offline_since_wall_ms\":0,"
      "\"subscriptions\":[{\"filter\":\"sensors/#\",\"qos\":1,\"no_local\":false,"
      "\"retain_as_published\":false,\"identifier\":0}],\"deliveries\":2,\"in_flight\":1,"
      "\"queued\":1,\"first_deliveries\":[{\"stage\":\"await_ack\",\"packet_id\":2,\"qos\":1,"
      "\"retain\":false,\"mid\":281474976710657,\"topic\":\"sensors/k/temp\","
      "\"payload_bytes\":4},{\"stage\":\"queued\",\"packet_id\":0,\"qos\":1,\"retain\":false,"
      "\"mid\":281474976710657,\"topic\":\"sensors/k/temp\",\"payload_bytes\":4}],"
      "\"inbound_qos2\":[]}],\"retained\":[\n"
      "{\"topic\":\"sensors/k/temp\",\"version\":5,\"qos\":1,\"payload_bytes\":4,"
      "\"expiry_wall_ms\":0}]}\n");
}

TEST_F(DbToolTest, ATornTailIsReportedAndLeftInPlace) {
  WriteTwoShards();
  {
    std::ofstream file(shard1_path_, std::ios::binary | std::ios::app);
    file.write("\x20\x00\x00\x00\x01\x02", 6);  // a record's first 6 bytes
  }
  const std::string before = Read(shard1_path_);
  ASSERT_EQ(Run({"check", dir_}), 0) << errors_;
  EXPECT_NE(output_.find("torn tails 1 (6 bytes"), std::string::npos) << output_;
  EXPECT_NE(output_.find("sessions 2, deliveries 3, retained 1"), std::string::npos) << output_;
  EXPECT_EQ(Read(shard1_path_), before);  // read-only: not truncated
}

TEST_F(DbToolTest, CorruptionIsAnErrorNamingFileAndOffset) {
  WriteTwoShards();
  std::string bytes = Read(shard1_path_);
  // The first record after the header is snapshot_begin (9 bytes); flip a bit of the session
  // record after it, which records follow.
  const size_t session_offset = kSegmentHeaderBytes + kRecordHeaderBytes;
  bytes[session_offset + kRecordHeaderBytes + 2] ^= 0x01;
  {
    std::ofstream file(shard1_path_, std::ios::binary | std::ios::trunc);
    file << bytes;
  }
  EXPECT_EQ(Run({"check", dir_}), 1);
  EXPECT_NE(errors_.find(shard1_path_), std::string::npos) << errors_;
  EXPECT_NE(errors_.find("offset " + std::to_string(session_offset)), std::string::npos)
      << errors_;
  EXPECT_TRUE(output_.empty()) << output_;
  EXPECT_EQ(Run({"dump", dir_}), 1);
}

TEST_F(DbToolTest, ADirectoryInUseIsRefused) {
  WriteTwoShards();
  absl::StatusOr<std::unique_ptr<DataDir>> held = DataDir::Open(dir_);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(Run({"check", dir_}), 1);
  EXPECT_NE(errors_.find("in use"), std::string::npos) << errors_;
}

TEST_F(DbToolTest, AMissingDirectoryIsAnErrorAndNotCreated) {
  EXPECT_EQ(Run({"check", dir_}), 1);
  EXPECT_NE(errors_.find("No such file or directory"), std::string::npos) << errors_;
  EXPECT_FALSE(std::filesystem::exists(dir_));
}

TEST_F(DbToolTest, AnEmptyDirectoryHoldsNothing) {
  std::filesystem::create_directories(dir_);
  ASSERT_EQ(Run({"dump", dir_}), 0) << errors_;
  EXPECT_EQ(output_, "run 0, 0 shards\n0 sessions, 0 deliveries, 0 retained\n");
}

TEST_F(DbToolTest, Usage) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_NE(errors_.find("usage: ringmq db"), std::string::npos);
  EXPECT_EQ(Run({"check"}), 2);
  EXPECT_EQ(Run({"repair", dir_}), 2);
  EXPECT_NE(errors_.find("unknown command repair"), std::string::npos);
  EXPECT_EQ(Run({"check", "--json", dir_}), 2);
  EXPECT_EQ(Run({"dump", dir_, "extra"}), 2);
  EXPECT_EQ(Run({"--help"}), 0);
  EXPECT_NE(output_.find("usage: ringmq db"), std::string::npos);
}

// The quoting of the text and JSON dumps: a client id with a quote, a backslash and a control
// character stays one line and one JSON string.
TEST(DbToolFormatTest, StringsAreEscaped) {
  RecoveredState state;
  StoredSession& session = state.sessions["a\"b\\c\n\x01"];
  session.level = 4;
  RecoveryReport report;
  const std::string text = FormatDump(state, report, false);
  EXPECT_NE(text.find("session \"a\\\"b\\\\c\\u000a\\u0001\"\n"), std::string::npos) << text;
  const std::string json = FormatDump(state, report, true);
  EXPECT_NE(json.find("\"client_id\":\"a\\\"b\\\\c\\u000a\\u0001\""), std::string::npos) << json;
}

TEST(DbToolFormatTest, LongQueuesListTheFirstDeliveriesAndCountAll) {
  RecoveredState state;
  StoredSession& session = state.sessions["many"];
  for (uint16_t id = 1; id <= 20; ++id) {
    StoredDelivery delivery;
    delivery.mid = id;
    delivery.qos = 1;
    delivery.packet_id = id <= 3 ? id : 0;
    delivery.stage = id <= 3 ? StoredDelivery::Stage::kAwaitAck : StoredDelivery::Stage::kQueued;
    session.deliveries.push_back(delivery);
  }
  for (uint16_t id = 100; id < 120; ++id) session.inbound_qos2.push_back(id);
  RecoveryReport report;
  const std::string text = FormatDump(state, report, false);
  EXPECT_NE(text.find("  deliveries 20: 3 in flight, 17 queued\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    ... 12 more\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  inbound qos 2 ids 20: 100 101"), std::string::npos) << text;
  EXPECT_NE(text.find(" 115 ...\n"), std::string::npos) << text;
  const std::string json = FormatDump(state, report, true);
  EXPECT_NE(json.find("\"deliveries\":20,\"in_flight\":3,\"queued\":17"), std::string::npos);
  EXPECT_NE(json.find("119]"), std::string::npos);  // JSON lists every inbound id
}

}  // namespace db_tool
}  // namespace
}  // namespace ringmq::persist
