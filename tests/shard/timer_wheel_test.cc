// Unit tests for the hashed timing wheel (src/shard/timer_wheel.h), plus a randomized comparison
// with a reference model (a map of deadlines) over thousands of operations.
//
// The contract pinned here is the one Advance() documents: an entry fires in the first Advance
// whose now_ms >= its deadline, exactly once, never earlier, however far out the deadline and
// however long the pause between two Advance calls.
#include "shard/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <utility>
#include <vector>

namespace ringmq::shard {
namespace {

using Ids = std::vector<uint32_t>;

constexpr uint32_t kTickMs = 10;
constexpr uint32_t kBuckets = 8;
constexpr uint64_t kRevolutionMs = uint64_t{kTickMs} * kBuckets;

// Advances to `now_ms` and returns the fired ids, sorted (Advance fires in no set order).
Ids Advance(TimerWheel& wheel, uint64_t now_ms) {
  Ids fired;
  wheel.Advance(now_ms, [&fired](uint32_t id) { fired.push_back(id); });
  std::sort(fired.begin(), fired.end());
  return fired;
}

// Advances one millisecond at a time from `from_ms` to `to_ms` and returns (id, fire time) in
// firing order.
std::vector<std::pair<uint32_t, uint64_t>> AdvanceByMillisecond(TimerWheel& wheel, uint64_t from_ms,
                                                                uint64_t to_ms) {
  std::vector<std::pair<uint32_t, uint64_t>> fired;
  for (uint64_t now_ms = from_ms; now_ms <= to_ms; ++now_ms) {
    wheel.Advance(now_ms, [&fired, now_ms](uint32_t id) { fired.emplace_back(id, now_ms); });
  }
  return fired;
}

TEST(TimerWheelTest, FiresAtDeadlineNeverBefore) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, 25);  // inside a tick
  wheel.Schedule(2, 30);  // on a tick boundary
  EXPECT_EQ(Advance(wheel, 20), Ids{});
  EXPECT_EQ(Advance(wheel, 24), Ids{});
  EXPECT_EQ(Advance(wheel, 25), Ids{1});
  EXPECT_EQ(Advance(wheel, 29), Ids{});
  EXPECT_EQ(Advance(wheel, 30), Ids{2});
  EXPECT_EQ(Advance(wheel, 200), Ids{});  // once only
  EXPECT_FALSE(wheel.Scheduled(1));
  EXPECT_FALSE(wheel.Scheduled(2));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, EveryDeadlineOfARevolutionFiresAtItsMillisecond) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  for (uint32_t id = 0; id < 2 * kRevolutionMs; ++id) wheel.Schedule(id, id + 1);
  const auto fired = AdvanceByMillisecond(wheel, 0, 3 * kRevolutionMs);
  ASSERT_EQ(fired.size(), 2 * kRevolutionMs);
  for (const auto& [id, now_ms] : fired) EXPECT_EQ(now_ms, id + 1) << "id " << id;
}

TEST(TimerWheelTest, LateAdvanceFiresEverythingDueAtOnce) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, 11);
  wheel.Schedule(2, 25);
  wheel.Schedule(3, 39);
  wheel.Schedule(4, 41);
  EXPECT_EQ(Advance(wheel, 40), (Ids{1, 2, 3}));
  EXPECT_EQ(Advance(wheel, 41), Ids{4});
}

TEST(TimerWheelTest, DeadlineAlreadyPassedFiresAtNextAdvance) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  EXPECT_EQ(Advance(wheel, 100), Ids{});
  wheel.Schedule(1, 40);
  wheel.Schedule(2, 0);
  wheel.Schedule(3, 100);
  EXPECT_EQ(Advance(wheel, 100), (Ids{1, 2, 3}));
}

TEST(TimerWheelTest, StartsAtConstructionTime) {
  TimerWheel wheel(kTickMs, kBuckets, 1'000'003);
  wheel.Schedule(1, 1'000'010);
  wheel.Schedule(2, 999'990);  // already past
  EXPECT_EQ(Advance(wheel, 1'000'004), Ids{2});
  EXPECT_EQ(Advance(wheel, 1'000'009), Ids{});
  EXPECT_EQ(Advance(wheel, 1'000'010), Ids{1});
}

TEST(TimerWheelTest, CancelPreventsFiring) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, 50);
  wheel.Schedule(2, 50);
  wheel.Cancel(1);
  EXPECT_FALSE(wheel.Scheduled(1));
  EXPECT_TRUE(wheel.Scheduled(2));
  EXPECT_EQ(wheel.size(), 1u);
  wheel.Cancel(1);     // twice: no-op
  wheel.Cancel(1000);  // never scheduled, beyond every known id: no-op
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(Advance(wheel, 100), Ids{2});
  wheel.Cancel(2);  // already fired: no-op
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, RescheduleMovesDeadline) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, 50);
  wheel.Schedule(1, 150);  // later
  wheel.Schedule(2, 500);
  wheel.Schedule(2, 120);  // earlier
  EXPECT_EQ(wheel.size(), 2u);
  EXPECT_EQ(Advance(wheel, 119), Ids{});
  EXPECT_EQ(Advance(wheel, 120), Ids{2});
  EXPECT_EQ(Advance(wheel, 149), Ids{});
  EXPECT_EQ(Advance(wheel, 150), Ids{1});
  EXPECT_EQ(Advance(wheel, 600), Ids{});
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, RescheduleToSameDeadlineKeepsOneEntry) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, 30);
  wheel.Schedule(1, 30);
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_EQ(Advance(wheel, 30), Ids{1});
}

TEST(TimerWheelTest, DeadlinesBeyondOneRevolutionFireOnlyWhenDue) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, kRevolutionMs + 5);      // same bucket as 5, one revolution later
  wheel.Schedule(2, 5 * kRevolutionMs + 5);  // five revolutions later
  wheel.Schedule(3, 5);
  const auto fired = AdvanceByMillisecond(wheel, 0, 6 * kRevolutionMs);
  EXPECT_EQ(fired, (std::vector<std::pair<uint32_t, uint64_t>>{
                       {3, 5}, {1, kRevolutionMs + 5}, {2, 5 * kRevolutionMs + 5}}));
}

TEST(TimerWheelTest, DeadlinesBeyondOneRevolutionWithCoarseAdvances) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, 3 * kRevolutionMs + 15);
  for (uint64_t now_ms = kTickMs; now_ms < 3 * kRevolutionMs + 15; now_ms += kTickMs) {
    ASSERT_EQ(Advance(wheel, now_ms), Ids{}) << "at " << now_ms;
  }
  EXPECT_EQ(Advance(wheel, 3 * kRevolutionMs + 15), Ids{1});
}

TEST(TimerWheelTest, ManyIdsInOneBucket) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  // 40 ids in bucket 5: ten per tick-5 millisecond, over four revolutions.
  std::map<uint32_t, uint64_t> deadlines;
  for (uint32_t id = 0; id < 40; ++id) {
    deadlines[id] = 50 + id % 10 + (id / 10) * kRevolutionMs;
    wheel.Schedule(id, deadlines[id]);
  }
  // Unlink the oldest (tail), a middle and the newest (head) entry of the bucket list.
  for (const uint32_t id : {0u, 17u, 39u}) {
    wheel.Cancel(id);
    deadlines.erase(id);
  }
  EXPECT_EQ(wheel.size(), 37u);
  const auto fired = AdvanceByMillisecond(wheel, 0, 5 * kRevolutionMs);
  ASSERT_EQ(fired.size(), deadlines.size());
  for (const auto& [id, now_ms] : fired) {
    ASSERT_TRUE(deadlines.contains(id)) << "id " << id << " fired twice or after Cancel";
    EXPECT_EQ(now_ms, deadlines[id]) << "id " << id;
    deadlines.erase(id);
  }
  EXPECT_EQ(wheel.size(), 0u);
}

// The first entry of a bucket carries the bucket in its previous link; cancelling it hands the
// tag to the next entry, which must then unlink from the head itself. Ids span several chunks
// of the node array.
TEST(TimerWheelTest, HeadCancelledTwiceInARowAcrossNodeChunks) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  for (const uint32_t id : {3u, 700u, 300u}) wheel.Schedule(id, 50);  // head: 300
  wheel.Cancel(300);
  wheel.Cancel(700);  // the new head
  EXPECT_TRUE(wheel.Scheduled(3));
  EXPECT_FALSE(wheel.Scheduled(700));
  wheel.Schedule(1000, 51);  // same bucket, in front of 3
  EXPECT_EQ(wheel.size(), 2u);
  EXPECT_EQ(Advance(wheel, 60), (Ids{3, 1000}));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, CallbackMayRescheduleTheFiredId) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  wheel.Schedule(1, 10);
  std::vector<uint64_t> fire_times;
  for (uint64_t now_ms = 0; now_ms <= 300; now_ms += 5) {
    wheel.Advance(now_ms, [&](uint32_t id) {
      EXPECT_EQ(id, 1u);
      EXPECT_FALSE(wheel.Scheduled(id));  // unscheduled before its callback runs
      fire_times.push_back(now_ms);
      if (fire_times.size() < 5) wheel.Schedule(id, now_ms + 30);
    });
  }
  EXPECT_EQ(fire_times, (std::vector<uint64_t>{10, 40, 70, 100, 130}));
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, CallbacksReschedulingIntoTheBucketBeingScannedFireOncePerAdvance) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  for (uint32_t id = 1; id <= 3; ++id) wheel.Schedule(id, 15);
  Ids fired;
  // One revolution later lands in the same bucket, while Advance walks its list.
  wheel.Advance(15, [&](uint32_t id) {
    fired.push_back(id);
    wheel.Schedule(id, 15 + kRevolutionMs);
  });
  std::sort(fired.begin(), fired.end());
  EXPECT_EQ(fired, (Ids{1, 2, 3}));
  EXPECT_EQ(wheel.size(), 3u);
  EXPECT_EQ(Advance(wheel, 14 + kRevolutionMs), Ids{});
  EXPECT_EQ(Advance(wheel, 15 + kRevolutionMs), (Ids{1, 2, 3}));
}

TEST(TimerWheelTest, AdvanceAfterLongStallFiresEverythingDue) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  const std::map<uint32_t, uint64_t> deadlines = {{1, 5},    {2, 75},   {3, 85},   {4, 155},
                                                  {5, 401},  {6, 999},  {7, 1000}, {8, 1001},
                                                  {9, 1007}, {10, 1500}};
  for (const auto& [id, deadline_ms] : deadlines) wheel.Schedule(id, deadline_ms);
  // More than twelve revolutions without an Advance.
  EXPECT_EQ(Advance(wheel, 1000), (Ids{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(Advance(wheel, 1000), Ids{});
  EXPECT_EQ(Advance(wheel, 1006), Ids{8});
  EXPECT_EQ(Advance(wheel, 1499), Ids{9});
  EXPECT_EQ(Advance(wheel, 1500), Ids{10});
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, StallOfExactlyOneRevolution) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  for (uint32_t id = 0; id < kBuckets + 1; ++id) wheel.Schedule(id, id * kTickMs + 1);
  EXPECT_EQ(Advance(wheel, kRevolutionMs).size(), kBuckets);
  EXPECT_EQ(Advance(wheel, kRevolutionMs + 1), Ids{kBuckets});
}

TEST(TimerWheelTest, SizeCountsScheduledIds) {
  TimerWheel wheel(kTickMs, kBuckets, 0);
  EXPECT_EQ(wheel.size(), 0u);
  wheel.Schedule(3, 10);
  wheel.Schedule(7, 20);
  wheel.Schedule(3, 30);  // rescheduled, still one entry
  EXPECT_EQ(wheel.size(), 2u);
  EXPECT_TRUE(wheel.Scheduled(3));
  EXPECT_FALSE(wheel.Scheduled(4));     // below the largest id, never scheduled
  EXPECT_FALSE(wheel.Scheduled(5000));  // beyond every id
  EXPECT_EQ(Advance(wheel, 20), Ids{7});
  EXPECT_EQ(wheel.size(), 1u);
  wheel.Cancel(3);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheelTest, SingleBucketWheel) {
  TimerWheel wheel(kTickMs, 1, 0);
  wheel.Schedule(1, 35);
  wheel.Schedule(2, 5);
  EXPECT_EQ(Advance(wheel, 10), Ids{2});
  EXPECT_EQ(Advance(wheel, 34), Ids{});
  EXPECT_EQ(Advance(wheel, 35), Ids{1});
}

// The reference: a map from id to deadline; at Advance(now) exactly the ids with deadline <= now
// are due.
class ReferenceTimers {
 public:
  void Schedule(uint32_t id, uint64_t deadline_ms) { deadlines_[id] = deadline_ms; }
  void Cancel(uint32_t id) { deadlines_.erase(id); }
  bool Scheduled(uint32_t id) const { return deadlines_.contains(id); }
  size_t size() const { return deadlines_.size(); }

  Ids TakeDue(uint64_t now_ms) {
    Ids due;
    for (auto it = deadlines_.begin(); it != deadlines_.end();) {
      if (it->second <= now_ms) {
        due.push_back(it->first);
        it = deadlines_.erase(it);
      } else {
        ++it;
      }
    }
    return due;  // sorted: the map is ordered by id
  }

 private:
  std::map<uint32_t, uint64_t> deadlines_;
};

TEST(TimerWheelTest, MatchesReferenceOverRandomOperations) {
  constexpr uint32_t kIds = 64;
  constexpr uint32_t kWheelBuckets = 16;
  constexpr uint64_t kWheelRevolutionMs = uint64_t{kTickMs} * kWheelBuckets;
  std::mt19937_64 random(0x5EED);
  const auto below = [&random](uint64_t bound) { return random() % bound; };
  uint64_t now_ms = 12'345;  // not on a tick boundary
  TimerWheel wheel(kTickMs, kWheelBuckets, now_ms);
  ReferenceTimers reference;
  size_t fired_total = 0;
  size_t stalls = 0;

  for (int step = 0; step < 50'000; ++step) {
    const uint64_t operation = below(10);
    const auto id = static_cast<uint32_t>(below(kIds));
    if (operation < 5) {
      uint64_t deadline_ms = 0;
      switch (below(4)) {
        case 0:  // within a few ticks
          deadline_ms = now_ms + below(3 * kTickMs);
          break;
        case 1:  // up to three revolutions out
          deadline_ms = now_ms + below(3 * kWheelRevolutionMs);
          break;
        case 2:  // already past
          deadline_ms = now_ms - below(2 * kWheelRevolutionMs);
          break;
        default:  // on a tick boundary
          deadline_ms = (now_ms / kTickMs + below(40)) * kTickMs;
          break;
      }
      wheel.Schedule(id, deadline_ms);
      reference.Schedule(id, deadline_ms);
    } else if (operation < 7) {
      wheel.Cancel(id);
      reference.Cancel(id);
    } else {
      if (below(100) < 2) {  // a stall of one to four revolutions
        now_ms += kWheelRevolutionMs * (1 + below(4)) + below(kTickMs);
        ++stalls;
      } else {
        now_ms += below(3 * kTickMs);  // sometimes 0: Advance twice at one time
      }
      const Ids due = reference.TakeDue(now_ms);
      Ids fired;
      wheel.Advance(now_ms, [&](uint32_t fired_id) {
        fired.push_back(fired_id);
        if (below(4) == 0) {  // the callback re-arms the id, as Shard::OnTimer does
          const uint64_t deadline_ms = now_ms + 1 + below(2 * kWheelRevolutionMs);
          wheel.Schedule(fired_id, deadline_ms);
          reference.Schedule(fired_id, deadline_ms);
        }
      });
      std::sort(fired.begin(), fired.end());
      ASSERT_EQ(fired, due) << "step " << step << ", now " << now_ms;
      fired_total += fired.size();
    }
    ASSERT_EQ(wheel.size(), reference.size()) << "step " << step;
    if (step % 97 == 0) {
      for (uint32_t each = 0; each < kIds; ++each) {
        ASSERT_EQ(wheel.Scheduled(each), reference.Scheduled(each)) << "id " << each;
      }
    }
  }
  // The run exercised what it claims to.
  EXPECT_GT(fired_total, 5'000u);
  EXPECT_GT(stalls, 100u);
}

}  // namespace
}  // namespace ringmq::shard
