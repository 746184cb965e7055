// Latency histogram for ringmq-bench: log-linear buckets in the manner of HdrHistogram (each
// power of two split into 32 linear sub-buckets, so a recorded value is known to within about
// 3 %), fixed size, no allocation after construction, mergeable across threads.
//
// Values are unsigned integers in any unit (the load generator records nanoseconds). Values below
// 32 are exact; the exact maximum is kept separately, so Percentile(1.0) is exact.
//
// Thread safety: none; each thread records into its own histogram and they are merged
// afterwards (Merge).
#ifndef RINGMQ_BENCH_LOADGEN_HISTOGRAM_H_
#define RINGMQ_BENCH_LOADGEN_HISTOGRAM_H_

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace ringmq::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 5;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;  // 32
  // Exponents 5..63 each get 32 sub-buckets after the first 32 exact values.
  static constexpr size_t kBuckets = kSubBuckets + (64 - kSubBucketBits) * kSubBuckets;

  static size_t BucketOf(uint64_t value) {
    if (value < kSubBuckets) return static_cast<size_t>(value);
    const int exponent = 63 - std::countl_zero(value);  // >= kSubBucketBits
    const uint64_t sub = (value >> (exponent - kSubBucketBits)) & (kSubBuckets - 1);
    return static_cast<size_t>((exponent - kSubBucketBits + 1) * kSubBuckets + sub);
  }
  // Smallest value that falls into `bucket`.
  static uint64_t LowestOf(size_t bucket) {
    if (bucket < kSubBuckets) return bucket;
    const int exponent = static_cast<int>(bucket / kSubBuckets) - 1 + kSubBucketBits;
    const uint64_t sub = bucket % kSubBuckets;
    return (uint64_t{1} << exponent) | (sub << (exponent - kSubBucketBits));
  }
  // Largest value that falls into `bucket`.
  static uint64_t HighestOf(size_t bucket) {
    if (bucket < kSubBuckets) return bucket;
    const int exponent = static_cast<int>(bucket / kSubBuckets) - 1 + kSubBucketBits;
    return LowestOf(bucket) + (uint64_t{1} << (exponent - kSubBucketBits)) - 1;
  }

  void Record(uint64_t value) {
    ++counts_[BucketOf(value)];
    ++count_;
    sum_ += value;
    max_ = std::max(max_, value);
    min_ = std::min(min_, value);
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    max_ = std::max(max_, other.max_);
    min_ = std::min(min_, other.min_);
  }

  void Reset() { *this = LatencyHistogram(); }

  uint64_t count() const { return count_; }
  uint64_t max() const { return count_ == 0 ? 0 : max_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  double Mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // The value at or below which `fraction` (0..1) of the recorded values lie: the upper bound of
  // the bucket holding that rank, clamped to the exact maximum. 0 when empty.
  uint64_t Percentile(double fraction) const {
    if (count_ == 0) return 0;
    if (fraction >= 1.0) return max_;
    fraction = std::max(fraction, 0.0);
    // Rank of the wanted value, 1-based: ceil(fraction * count), at least 1.
    uint64_t rank = static_cast<uint64_t>(fraction * static_cast<double>(count_));
    if (static_cast<double>(rank) < fraction * static_cast<double>(count_)) ++rank;
    rank = std::max<uint64_t>(rank, 1);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(HighestOf(i), max_);
    }
    return max_;
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
};

}  // namespace ringmq::bench

#endif  // RINGMQ_BENCH_LOADGEN_HISTOGRAM_H_
