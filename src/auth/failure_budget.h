// The per-shard budget of failed credential checks per second (max_auth_failures_per_second;
// 0: no limit), shared by the CONNECT password check (auth/authenticator.h) and the SCRAM
// exchange (auth/enhanced_auth.h), so that neither path lets a guesser past the other's limit.
// Once a second's budget is spent, credentials are refused without being checked until the next
// second (docs/auth.md, "Cost bound").
//
// Thread safety: one instance per shard, used only on that shard's thread.
#ifndef RINGMQ_AUTH_FAILURE_BUDGET_H_
#define RINGMQ_AUTH_FAILURE_BUDGET_H_

#include <cstdint>

#include "common/assert.h"

namespace ringmq::auth {

class FailureBudget {
 public:
  // `now_ms` is the shard's clock, read at each call.
  FailureBudget(uint32_t max_failures_per_second, const uint64_t* now_ms)
      : max_failures_per_second_(max_failures_per_second), now_ms_(now_ms) {
    RINGMQ_ASSERT(now_ms != nullptr);
  }

  // False when this second's failures have used up the budget.
  bool Left() {
    const uint64_t second = *now_ms_ / 1000;
    if (second != window_second_) {
      window_second_ = second;
      failures_in_window_ = 0;
    }
    return max_failures_per_second_ == 0 || failures_in_window_ < max_failures_per_second_;
  }

  // Counts one failed check in the current second (call Left() first).
  void Spend() { ++failures_in_window_; }

 private:
  const uint32_t max_failures_per_second_;
  const uint64_t* const now_ms_;
  uint64_t window_second_ = 0;
  uint32_t failures_in_window_ = 0;
};

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_FAILURE_BUDGET_H_
