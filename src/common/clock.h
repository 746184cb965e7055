// The broker's clock reads, in one place: every module that measures time (shard loops, stall
// detection, the metrics HTTP thread, uptime) reads CLOCK_MONOTONIC through these, so their
// values compare with each other (a shard's now_ms and SharedState::started_monotonic_ms are on
// the same clock); log timestamps and the start time in metrics read CLOCK_REALTIME.
//
// CLOCK_MONOTONIC never jumps with wall-clock changes; CLOCK_MONOTONIC_COARSE is cheaper (no
// counter read) but only advances once per kernel tick, so it serves attribution of time to loop
// phases, never deadlines. Both are vDSO calls on Linux (no system call).
//
// Thread safety: stateless; any thread.
#ifndef RINGMQ_COMMON_CLOCK_H_
#define RINGMQ_COMMON_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace ringmq {

// Nanoseconds of `clock` since its epoch.
inline uint64_t ClockNs(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec);
}

inline uint64_t MonotonicNs() { return ClockNs(CLOCK_MONOTONIC); }
inline uint64_t MonotonicMs() { return MonotonicNs() / 1'000'000; }
// Resolution of a kernel tick (1-10 ms); for attributing time, not for deadlines.
inline uint64_t CoarseMonotonicNs() { return ClockNs(CLOCK_MONOTONIC_COARSE); }

// Wall-clock time as seconds since the Unix epoch (for metrics that report dates).
inline double UnixSeconds() { return static_cast<double>(ClockNs(CLOCK_REALTIME)) / 1e9; }

}  // namespace ringmq

#endif  // RINGMQ_COMMON_CLOCK_H_
