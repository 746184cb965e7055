// Shared statistics for the micro-benchmarks: every benchmark runs repeated and reports the
// median with min, p90 and max across repetitions (STYLE.md: medians and percentiles).
//
// Thread safety: stateless.
#ifndef RINGMQ_BENCH_MICRO_STATISTICS_H_
#define RINGMQ_BENCH_MICRO_STATISTICS_H_

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace ringmq::bench {

inline double Percentile(const std::vector<double>& values, double fraction) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const auto index = static_cast<size_t>(fraction * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

// Repetitions with only the aggregates reported: mean, median, stddev (Google Benchmark's) plus
// min, p90 and max.
inline void ConfigureRepetitions(benchmark::internal::Benchmark* benchmark, int repetitions) {
  benchmark->Repetitions(repetitions)
      ->ReportAggregatesOnly(true)
      ->ComputeStatistics("min", [](const std::vector<double>& v) { return Percentile(v, 0.0); })
      ->ComputeStatistics("p90", [](const std::vector<double>& v) { return Percentile(v, 0.9); })
      ->ComputeStatistics("max", [](const std::vector<double>& v) { return Percentile(v, 1.0); });
}

}  // namespace ringmq::bench

#endif  // RINGMQ_BENCH_MICRO_STATISTICS_H_
