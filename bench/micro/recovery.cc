// Micro-benchmark of start-up recovery (src/persist/data_dir.h DataDir::Recover): how many
// queued messages a broker recovers per second of start-up (issue 15's goal: >= 1 million).
//
// The data directory holds one committed run with one shard's segment: a snapshot of 1,000
// persistent sessions, then 1,000 QoS 1 messages (100-byte payload, topic "bench/<m>") each
// queued for every session, as the router logs a fan-out (kMessage, then its 1,000 kEnqueue):
// 1,000,000 kEnqueue records, 27 MB. Cases:
// - BM_Recover/cold:0: Recover with the file in the page cache (a restart of the process).
// - BM_Recover/cold:1: the file's pages dropped first (posix_fadvise DONTNEED after the
//   fdatasync), so the time includes reading it from the device (a machine restart).
// - BM_ReferenceReadAndCheck: the floor of any recovery of this file: read it (cached) and
//   decode and CRC-check every record with SegmentReader, applying nothing.
// items_per_second = queued messages (deliveries) recovered per second. The recovered state is
// destroyed outside the timed region (the broker keeps it).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/assert.h"
#include "common/byte_buffer.h"
#include "persist/data_dir.h"
#include "persist/record.h"
#include "persist/state.h"
#include "statistics.h"

namespace ringmq::persist {
namespace {

constexpr int kRepetitions = 5;
constexpr uint64_t kSessions = 1'000;
constexpr uint64_t kMessages = 1'000;
constexpr uint64_t kDeliveries = kSessions * kMessages;
constexpr size_t kPayloadBytes = 100;

// The benchmark's data directory, written once per process and removed at exit.
class Fixture {
 public:
  static Fixture& Get() {
    static Fixture* fixture = new Fixture();
    return *fixture;
  }
  DataDir& dir() { return *dir_; }
  const std::string& segment_path() const { return segment_path_; }

  void DropCache() const {
    const int fd = open(segment_path_.c_str(), O_RDONLY | O_CLOEXEC);
    RINGMQ_ASSERT(fd >= 0);
    RINGMQ_ASSERT(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
    close(fd);
  }

  ByteBuffer ReadSegment() const {
    ByteBuffer bytes(std::filesystem::file_size(segment_path_));
    const int fd = open(segment_path_.c_str(), O_RDONLY | O_CLOEXEC);
    RINGMQ_ASSERT(fd >= 0);
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t got =
          pread(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      RINGMQ_ASSERT(got > 0);
      done += static_cast<size_t>(got);
    }
    close(fd);
    return bytes;
  }

 private:
  Fixture() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "ringmq-bench-recovery-XXXXXX").string();
    RINGMQ_ASSERT(mkdtemp(pattern.data()) != nullptr);
    root_ = pattern;
    std::atexit([] { std::filesystem::remove_all(Get().root_); });
    auto dir = DataDir::Open(root_);
    RINGMQ_ASSERT(dir.ok());
    dir_ = std::move(*dir);
    Write();
    RINGMQ_ASSERT(dir_->CommitRun(1, 1).ok());
  }

  void Write() {
    auto file = dir_->CreateSegment(0, 1, 0, /*sync=*/false);
    RINGMQ_ASSERT(file.ok());
    segment_path_ = file->path;
    ByteBuffer out;
    Record record;
    record.type = RecordType::kSnapshotBegin;
    AppendRecord(out, record);
    std::vector<std::string> client_ids;
    for (uint64_t s = 0; s < kSessions; ++s) client_ids.push_back("client-" + std::to_string(s));
    for (uint64_t s = 0; s < kSessions; ++s) {
      record = Record{};
      record.type = RecordType::kSession;
      record.sid = Sid(s);
      record.expiry_s = 3600;
      record.level = 4;
      record.text = client_ids[s];
      AppendRecord(out, record);
    }
    record = Record{};
    record.type = RecordType::kSnapshotEnd;
    record.count = kSessions;
    AppendRecord(out, record);
    const std::vector<uint8_t> payload(kPayloadBytes, 'x');
    for (uint64_t m = 0; m < kMessages; ++m) {
      const std::string topic = "bench/" + std::to_string(m);
      record = Record{};
      record.type = RecordType::kMessage;
      record.mid = Mid(m);
      record.qos = 1;
      record.text = topic;
      record.payload = payload;
      AppendRecord(out, record);
      for (uint64_t s = 0; s < kSessions; ++s) {
        record = Record{};
        record.type = RecordType::kEnqueue;
        record.sid = Sid(s);
        record.mid = Mid(m);
        record.qos = 1;
        AppendRecord(out, record);
      }
    }
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t wrote = pwrite(file->fd, out.data() + done, out.size() - done,
                                   static_cast<off_t>(file->size + done));
      RINGMQ_ASSERT(wrote > 0);
      done += static_cast<size_t>(wrote);
    }
    RINGMQ_ASSERT(fdatasync(file->fd) == 0);
    close(file->fd);
  }

  static uint64_t Sid(uint64_t s) { return (s + 1) << 32 | 1; }  // (slot << 32 | generation)
  static uint64_t Mid(uint64_t m) { return m + 1; }              // (shard 0 << 48 | sequence)

  std::string root_;
  std::string segment_path_;
  std::unique_ptr<DataDir> dir_;
};

void BM_Recover(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  const bool cold = state.range(0) != 0;
  uint64_t duration_ms = 0;
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      fixture.DropCache();
      state.ResumeTiming();
    }
    RecoveryReport report;
    auto recovered = fixture.dir().Recover({.read_only = true}, &report);
    RINGMQ_ASSERT(recovered.ok());
    RINGMQ_ASSERT(report.deliveries == kDeliveries);
    duration_ms = report.duration_ms;
    state.PauseTiming();
    recovered = RecoveredState{};
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kDeliveries));
  state.counters["report_duration_ms"] = static_cast<double>(duration_ms);
}
BENCHMARK(BM_Recover)
    ->ArgName("cold")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Apply([](benchmark::internal::Benchmark* b) {
      bench::ConfigureRepetitions(b, kRepetitions);
    });

void BM_ReferenceReadAndCheck(benchmark::State& state) {
  Fixture& fixture = Fixture::Get();
  uint64_t records = 0;
  for (auto _ : state) {
    const ByteBuffer bytes = fixture.ReadSegment();
    SegmentReader reader(bytes);
    RINGMQ_ASSERT(reader.ReadHeader().has_value());
    Record record;
    records = 0;
    while (reader.Next(record) == ReadStatus::kOk) ++records;
    benchmark::DoNotOptimize(records);
  }
  RINGMQ_ASSERT(records == 1 + kSessions + 1 + kMessages + kDeliveries);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kDeliveries));
}
BENCHMARK(BM_ReferenceReadAndCheck)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Apply([](benchmark::internal::Benchmark* b) {
      bench::ConfigureRepetitions(b, kRepetitions);
    });

}  // namespace
}  // namespace ringmq::persist

BENCHMARK_MAIN();
