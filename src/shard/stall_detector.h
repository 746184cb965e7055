// Loop stall detection: how long one shard loop iteration keeps the thread busy, and which part
// of it did.
//
// Everything on a shard waits while one iteration runs: a slow iteration delays every receive,
// send and timer of every connection of the shard. The loop reports the start of the busy part
// (after the wait returns), the end of each phase, and the end of the iteration; an iteration
// longer than the threshold is a stall, and the detector can say what the iteration handled and
// which phase took longest. It reads no clock itself: the caller passes times, so tests drive it
// with made-up ones and the loop chooses its clocks (the one precise CLOCK_MONOTONIC read per
// iteration it already makes, one more at the end, and CLOCK_MONOTONIC_COARSE for the phase
// boundaries, which costs a few nanoseconds and has the resolution of a kernel tick: ample for
// naming the phase of a stall of many milliseconds).
//
// Thread safety: one owner thread (the shard's).
#ifndef RINGMQ_SHARD_STALL_DETECTOR_H_
#define RINGMQ_SHARD_STALL_DETECTOR_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmq::shard {

// The parts of one loop iteration, in order.
enum class LoopPhase : uint8_t {
  kCompletions,   // reaping completions: accepts, receives (and the packets they carry), sends
  kMailboxes,     // draining other shards' records
  kTimers,        // connect, keepalive and close deadlines
  kHousekeeping,  // reclamation, accept retry, $SYS topics
  kSessions,      // encoding deliveries into connection buffers
  kConnections,   // starting sends and closes, doorbells, buffer hand-back
};
inline constexpr size_t kLoopPhaseCount = 6;
std::string_view NameOf(LoopPhase phase);

// What one iteration handled (filled by the loop).
struct IterationWork {
  uint64_t completions = 0;
  uint64_t mailbox_records = 0;
  uint64_t timers_fired = 0;
  uint64_t sessions_flushed = 0;
  uint64_t connections_flushed = 0;
};

class StallDetector {
 public:
  // `threshold_ms` 0: disabled (enabled() false; the loop then measures nothing).
  explicit StallDetector(uint32_t threshold_ms)
      : threshold_ns_(uint64_t{threshold_ms} * 1'000'000) {}

  bool enabled() const { return threshold_ns_ != 0; }

  // The busy part of an iteration starts: `now_ns` on the precise clock, `phase_ns` on the
  // phase clock.
  void BeginIteration(uint64_t now_ns, uint64_t phase_ns);
  // `phase` ended at `phase_ns` (phase clock). Phases may be skipped; each is charged the time
  // since the previous boundary.
  void EndPhase(LoopPhase phase, uint64_t phase_ns);
  IterationWork& work() { return work_; }
  // The iteration ended at `now_ns` (precise clock). Returns true if it was a stall: longer
  // than the threshold.
  bool EndIteration(uint64_t now_ns);

  uint64_t last_iteration_ns() const { return last_iteration_ns_; }
  uint64_t longest_iteration_ns() const { return longest_iteration_ns_; }
  uint64_t stalls() const { return stalls_; }
  // The last iteration, for a log line: "took 153 ms: 2 completions, 0 mailbox records, 0
  // timers fired, 1 sessions and 1 connections flushed; slowest phase: completions (152 ms)".
  std::string Describe() const;

 private:
  const uint64_t threshold_ns_;
  uint64_t start_ns_ = 0;
  uint64_t phase_start_ns_ = 0;
  std::array<uint64_t, kLoopPhaseCount> phase_ns_{};
  IterationWork work_;
  uint64_t last_iteration_ns_ = 0;
  uint64_t longest_iteration_ns_ = 0;
  uint64_t stalls_ = 0;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_STALL_DETECTOR_H_
