// Unit tests of ringmq-bench's latency histogram (bench/loadgen/histogram.h).
#include "histogram.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ringmq::bench {
namespace {

TEST(LatencyHistogram, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.Percentile(1.0), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 20; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(0.5), 10u);
  EXPECT_EQ(h.Percentile(0.9), 18u);
  EXPECT_EQ(h.Percentile(1.0), 20u);
  EXPECT_EQ(h.min(), 1u);
}

TEST(LatencyHistogram, BucketsCoverEveryValueContiguously) {
  // Each bucket's range starts right after the previous one ends, over all 64-bit exponents.
  for (size_t b = 1; b < LatencyHistogram::kBuckets; ++b) {
    ASSERT_EQ(LatencyHistogram::LowestOf(b), LatencyHistogram::HighestOf(b - 1) + 1) << b;
  }
  EXPECT_EQ(LatencyHistogram::HighestOf(LatencyHistogram::kBuckets - 1), UINT64_MAX);
  for (uint64_t v : {uint64_t{0}, uint64_t{31}, uint64_t{32}, uint64_t{33}, uint64_t{1000},
                     uint64_t{123456789}, uint64_t{1} << 40, UINT64_MAX}) {
    const size_t b = LatencyHistogram::BucketOf(v);
    EXPECT_LE(LatencyHistogram::LowestOf(b), v);
    EXPECT_GE(LatencyHistogram::HighestOf(b), v);
  }
}

TEST(LatencyHistogram, RelativeErrorWithinThreePercent) {
  for (uint64_t v = 32; v < (uint64_t{1} << 34); v = v * 7 / 5 + 3) {
    const size_t b = LatencyHistogram::BucketOf(v);
    const double width =
        static_cast<double>(LatencyHistogram::HighestOf(b) - LatencyHistogram::LowestOf(b));
    EXPECT_LE(width / static_cast<double>(v), 1.0 / 32 + 1e-9) << v;
  }
}

TEST(LatencyHistogram, PercentilesOfAUniformMillion) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 1'000'000; ++v) h.Record(v);
  auto near = [](uint64_t got, double want) {
    return static_cast<double>(got) >= want && static_cast<double>(got) <= want * 1.035;
  };
  EXPECT_TRUE(near(h.Percentile(0.5), 500'000)) << h.Percentile(0.5);
  EXPECT_TRUE(near(h.Percentile(0.99), 990'000)) << h.Percentile(0.99);
  EXPECT_TRUE(near(h.Percentile(0.999), 999'000)) << h.Percentile(0.999);
  EXPECT_EQ(h.Percentile(1.0), 1'000'000u);
  EXPECT_NEAR(h.Mean(), 500'000.5, 1e-6);
}

TEST(LatencyHistogram, OutlierIsTheMaxAndP99IgnoresIt) {
  LatencyHistogram h;
  for (int i = 0; i < 999; ++i) h.Record(100);
  h.Record(50'000'000);
  // 100 lies in the bucket [100, 101]: the reported percentile is that bucket's upper bound.
  EXPECT_EQ(h.Percentile(0.99), 101u);
  EXPECT_EQ(h.Percentile(0.999), 101u);
  EXPECT_EQ(h.max(), 50'000'000u);
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (uint64_t v = 1; v < 5000; v += 3) {
    (v % 2 ? a : b).Record(v * 11);
    all.Record(v * 11);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_EQ(a.min(), all.min());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(a.Percentile(q), all.Percentile(q)) << q;
}

}  // namespace
}  // namespace ringmq::bench
