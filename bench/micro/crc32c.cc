// Micro-benchmarks of CRC32C (src/common/crc32c.h) and the persistence log's record framing
// (src/persist/record.h), which checksums every record written and read.
//
// - BM_Crc32cHardware/<bytes>: the SSE4.2 CRC32 instruction path (skipped without SSE4.2).
// - BM_Crc32cPortable/<bytes>: the slicing-by-8 table path.
// - BM_ReferenceBitwise/<bytes>: the bit-at-a-time definition, the reference in the same run.
// - BM_AppendEnqueue: AppendRecord of a kEnqueue record (the per-session record of a delivery).
// - BM_AppendMessage/<payload bytes>: AppendRecord of a kMessage record.
// - BM_ReadEnqueues: SegmentReader::Next over a segment of 100,000 kEnqueue records
//   (items = records: the decode half of recovery, before DurableState::Apply).
// bytes_per_second / items_per_second; each benchmark repeats and reports the median and the
// spread (min, p90, max) of the repetitions.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "common/byte_buffer.h"
#include "common/crc32c.h"
#include "persist/record.h"
#include "statistics.h"

namespace ringmq {
namespace {

constexpr int kRepetitions = 5;

std::vector<uint8_t> RandomBytes(size_t size) {
  std::mt19937_64 random(size);
  std::vector<uint8_t> bytes(size);
  for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(random());
  return bytes;
}

uint32_t BitwiseCrc32c(std::span<const uint8_t> bytes) {
  uint32_t crc = 0xFFFFFFFF;
  for (const uint8_t byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78 & (0U - (crc & 1)));
  }
  return crc ^ 0xFFFFFFFF;
}

template <uint32_t (*Function)(uint32_t, std::span<const uint8_t>)>
void RunCrc(benchmark::State& state) {
  const std::vector<uint8_t> bytes = RandomBytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Function(0, bytes));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_Crc32cHardware(benchmark::State& state) {
  if (!Crc32cHardwareAvailable()) {
    state.SkipWithError("no SSE4.2 on this CPU");
    return;
  }
  RunCrc<Crc32cHardware>(state);
}

void BM_Crc32cPortable(benchmark::State& state) { RunCrc<Crc32cPortable>(state); }

void BM_ReferenceBitwise(benchmark::State& state) {
  const std::vector<uint8_t> bytes = RandomBytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(BitwiseCrc32c(bytes));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

persist::Record Enqueue(uint64_t sid) {
  persist::Record record;
  record.type = persist::RecordType::kEnqueue;
  record.sid = sid;
  record.mid = (uint64_t{1} << 48) | sid;
  record.qos = 1;
  return record;
}

void BM_AppendEnqueue(benchmark::State& state) {
  ByteBuffer out;
  out.reserve(1 << 20);
  uint64_t sid = 0;
  for (auto _ : state) {
    if (out.size() > (1 << 20) - 64) out.clear();
    persist::AppendRecord(out, Enqueue(++sid));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_AppendMessage(benchmark::State& state) {
  const std::vector<uint8_t> payload = RandomBytes(static_cast<size_t>(state.range(0)));
  persist::Record record;
  record.type = persist::RecordType::kMessage;
  record.qos = 1;
  record.text = "site/17/device/423/temperature";
  record.payload = payload;
  ByteBuffer out;
  for (auto _ : state) {
    out.clear();
    ++record.mid;
    persist::AppendRecord(out, record);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_ReadEnqueues(benchmark::State& state) {
  constexpr uint64_t kRecords = 100'000;
  ByteBuffer file;
  persist::AppendSegmentHeader(file, persist::SegmentHeader{});
  for (uint64_t sid = 0; sid < kRecords; ++sid) persist::AppendRecord(file, Enqueue(sid));
  for (auto _ : state) {
    persist::SegmentReader reader(file);
    benchmark::DoNotOptimize(reader.ReadHeader());
    persist::Record record;
    uint64_t records = 0;
    while (reader.Next(record) == persist::ReadStatus::kOk) ++records;
    if (records != kRecords) state.SkipWithError("the segment did not read back");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRecords));
}

void Sizes(benchmark::internal::Benchmark* benchmark) {
  benchmark->Arg(32)->Arg(1024)->Arg(65536);
  bench::ConfigureRepetitions(benchmark, kRepetitions);
}

BENCHMARK(BM_Crc32cHardware)->Apply(Sizes);
BENCHMARK(BM_Crc32cPortable)->Apply(Sizes);
BENCHMARK(BM_ReferenceBitwise)->Apply(Sizes);
BENCHMARK(BM_AppendEnqueue)->Apply([](benchmark::internal::Benchmark* b) {
  bench::ConfigureRepetitions(b, kRepetitions);
});
BENCHMARK(BM_AppendMessage)->Arg(64)->Arg(4096)->Apply([](benchmark::internal::Benchmark* b) {
  bench::ConfigureRepetitions(b, kRepetitions);
});
BENCHMARK(BM_ReadEnqueues)->Apply([](benchmark::internal::Benchmark* b) {
  bench::ConfigureRepetitions(b, kRepetitions);
});

}  // namespace
}  // namespace ringmq

BENCHMARK_MAIN();
