#include "shard/stall_detector.h"

#include <gtest/gtest.h>

namespace ringmq::shard {
namespace {

constexpr uint64_t kMs = 1'000'000;  // nanoseconds

TEST(StallDetectorTest, ZeroThresholdIsDisabled) {
  EXPECT_FALSE(StallDetector(0).enabled());
  EXPECT_TRUE(StallDetector(1).enabled());
}

TEST(StallDetectorTest, OnlyIterationsLongerThanTheThresholdAreStalls) {
  StallDetector detector(100);
  detector.BeginIteration(1'000 * kMs, 0);
  EXPECT_FALSE(detector.EndIteration(1'100 * kMs)) << "exactly the threshold is no stall";
  EXPECT_EQ(detector.last_iteration_ns(), 100 * kMs);
  detector.BeginIteration(2'000 * kMs, 0);
  EXPECT_TRUE(detector.EndIteration(2'100 * kMs + 1));
  EXPECT_EQ(detector.stalls(), 1u);
}

TEST(StallDetectorTest, KeepsTheLongestIteration) {
  StallDetector detector(10);
  detector.BeginIteration(0, 0);
  detector.EndIteration(30 * kMs);
  detector.BeginIteration(100 * kMs, 0);
  detector.EndIteration(105 * kMs);
  EXPECT_EQ(detector.last_iteration_ns(), 5 * kMs);
  EXPECT_EQ(detector.longest_iteration_ns(), 30 * kMs);
}

TEST(StallDetectorTest, DescribesTheWorkAndTheSlowestPhase) {
  StallDetector detector(1);
  detector.BeginIteration(0, 1'000 * kMs);
  detector.EndPhase(LoopPhase::kCompletions, 1'004 * kMs);
  detector.EndPhase(LoopPhase::kMailboxes, 1'004 * kMs);
  detector.EndPhase(LoopPhase::kTimers, 1'005 * kMs);
  detector.EndPhase(LoopPhase::kHousekeeping, 1'005 * kMs);
  detector.EndPhase(LoopPhase::kSessions, 1'125 * kMs);
  detector.EndPhase(LoopPhase::kConnections, 1'126 * kMs);
  IterationWork& work = detector.work();
  work.completions = 3;
  work.mailbox_records = 4096;
  work.timers_fired = 2;
  work.sessions_flushed = 7;
  work.connections_flushed = 9;
  ASSERT_TRUE(detector.EndIteration(126 * kMs + 5));
  EXPECT_EQ(detector.Describe(),
            "took 126 ms: 3 completions, 4096 mailbox records, 2 timers fired, 7 sessions and 9 "
            "connections flushed; slowest phase: sessions (120 ms)");
}

TEST(StallDetectorTest, EachIterationStartsAfresh) {
  StallDetector detector(1);
  detector.BeginIteration(0, 0);
  detector.EndPhase(LoopPhase::kMailboxes, 50 * kMs);
  detector.work().mailbox_records = 10;
  detector.EndIteration(50 * kMs);
  detector.BeginIteration(100 * kMs, 100 * kMs);
  detector.EndPhase(LoopPhase::kTimers, 102 * kMs);
  detector.EndIteration(102 * kMs);
  EXPECT_EQ(detector.Describe(),
            "took 2 ms: 0 completions, 0 mailbox records, 0 timers fired, 0 sessions and 0 "
            "connections flushed; slowest phase: timers (2 ms)");
}

TEST(StallDetectorTest, APhaseIsNeverReportedLongerThanTheIteration) {
  StallDetector detector(1);
  detector.BeginIteration(0, 0);
  detector.EndPhase(LoopPhase::kCompletions, 8 * kMs);  // coarse clock: a tick early
  detector.EndIteration(6 * kMs);
  EXPECT_EQ(detector.Describe(),
            "took 6 ms: 0 completions, 0 mailbox records, 0 timers fired, 0 sessions and 0 "
            "connections flushed; slowest phase: completions (6 ms)");
}

TEST(StallDetectorTest, PhaseClockGoingBackChargesNothing) {
  StallDetector detector(1);
  detector.BeginIteration(0, 10 * kMs);
  detector.EndPhase(LoopPhase::kCompletions, 9 * kMs);
  detector.EndPhase(LoopPhase::kMailboxes, 13 * kMs);
  detector.EndIteration(5 * kMs);
  EXPECT_EQ(detector.Describe(),
            "took 5 ms: 0 completions, 0 mailbox records, 0 timers fired, 0 sessions and 0 "
            "connections flushed; slowest phase: mailboxes (3 ms)");
}

}  // namespace
}  // namespace ringmq::shard
