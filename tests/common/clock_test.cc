// Unit tests for the broker's clock reads (src/common/clock.h): units agree across the helpers,
// the monotonic clock does not go back, and the wall clock is Unix time.
#include "common/clock.h"

#include <gtest/gtest.h>
#include <time.h>

#include <cstdint>

namespace ringmq {
namespace {

TEST(ClockTest, MonotonicDoesNotGoBack) {
  uint64_t previous = MonotonicNs();
  for (int i = 0; i < 10'000; ++i) {
    const uint64_t now = MonotonicNs();
    ASSERT_GE(now, previous);
    previous = now;
  }
}

TEST(ClockTest, MillisecondsAreNanosecondsOfTheSameClock) {
  const uint64_t before_ns = MonotonicNs();
  const uint64_t ms = MonotonicMs();
  const uint64_t after_ns = MonotonicNs();
  EXPECT_GE(ms, before_ns / 1'000'000);
  EXPECT_LE(ms, after_ns / 1'000'000);
}

TEST(ClockTest, MonotonicMeasuresASleep) {
  const uint64_t start = MonotonicNs();
  const timespec sleep_for{0, 20'000'000};  // 20 ms
  ASSERT_EQ(nanosleep(&sleep_for, nullptr), 0);
  EXPECT_GE(MonotonicNs() - start, uint64_t{20'000'000});
}

TEST(ClockTest, CoarseTrailsPreciseByLessThanATick) {
  // The coarse clock is the precise one as of the last kernel tick: never ahead of a later
  // precise read, and behind it by one tick at most (10 ms at HZ=100; 1 s is a generous bound).
  const uint64_t coarse = CoarseMonotonicNs();
  const uint64_t precise = MonotonicNs();
  EXPECT_LE(coarse, precise);
  EXPECT_LT(precise - coarse, uint64_t{1'000'000'000});
}

TEST(ClockTest, UnixSecondsIsWallClockTime) {
  const double before = static_cast<double>(time(nullptr));
  const double now = UnixSeconds();
  const double after = static_cast<double>(time(nullptr));
  EXPECT_GE(now, before);
  EXPECT_LT(now, after + 1);
  EXPECT_GT(now, 1.6e9);  // after September 2020
}

}  // namespace
}  // namespace ringmq
