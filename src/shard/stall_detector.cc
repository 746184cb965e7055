#include "shard/stall_detector.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/assert.h"

namespace ringmq::shard {

std::string_view NameOf(LoopPhase phase) {
  switch (phase) {
    case LoopPhase::kCompletions:
      return "completions";
    case LoopPhase::kMailboxes:
      return "mailboxes";
    case LoopPhase::kTimers:
      return "timers";
    case LoopPhase::kHousekeeping:
      return "housekeeping";
    case LoopPhase::kSessions:
      return "sessions";
    case LoopPhase::kConnections:
      return "connections";
  }
  return "?";
}

void StallDetector::BeginIteration(uint64_t now_ns, uint64_t phase_ns) {
  RINGMQ_ASSERT(enabled());
  start_ns_ = now_ns;
  phase_start_ns_ = phase_ns;
  phase_ns_.fill(0);
  work_ = IterationWork{};
}

void StallDetector::EndPhase(LoopPhase phase, uint64_t phase_ns) {
  const auto index = static_cast<size_t>(phase);
  RINGMQ_ASSERT(index < kLoopPhaseCount);
  // The phase clock never goes back; clamp anyway so a bad reading cannot wrap.
  if (phase_ns > phase_start_ns_) phase_ns_[index] += phase_ns - phase_start_ns_;
  phase_start_ns_ = phase_ns > phase_start_ns_ ? phase_ns : phase_start_ns_;
}

bool StallDetector::EndIteration(uint64_t now_ns) {
  RINGMQ_ASSERT(enabled());
  last_iteration_ns_ = now_ns > start_ns_ ? now_ns - start_ns_ : 0;
  if (last_iteration_ns_ > longest_iteration_ns_) longest_iteration_ns_ = last_iteration_ns_;
  if (last_iteration_ns_ <= threshold_ns_) return false;
  ++stalls_;
  return true;
}

std::string StallDetector::Describe() const {
  size_t slowest = 0;
  for (size_t i = 1; i < kLoopPhaseCount; ++i) {
    if (phase_ns_[i] > phase_ns_[slowest]) slowest = i;
  }
  // Phases are read on the coarse clock: never report one as longer than the whole.
  const uint64_t slowest_ns = std::min(phase_ns_[slowest], last_iteration_ns_);
  return absl::StrCat(
      "took ", last_iteration_ns_ / 1'000'000, " ms: ", work_.completions, " completions, ",
      work_.mailbox_records, " mailbox records, ", work_.timers_fired, " timers fired, ",
      work_.sessions_flushed, " sessions and ", work_.connections_flushed,
      " connections flushed; slowest phase: ", std::string(NameOf(static_cast<LoopPhase>(slowest))),
      " (", slowest_ns / 1'000'000, " ms)");
}

}  // namespace ringmq::shard
