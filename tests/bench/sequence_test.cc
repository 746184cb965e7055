// Unit tests of ringmq-bench's per-publisher sequence verification and QoS judgement
// (bench/loadgen/sequence.h).
#include "sequence.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace ringmq::bench {
namespace {

TEST(SequenceTracker, InOrderStreamIsClean) {
  SequenceTracker t;
  for (uint64_t s = 1; s <= 100'000; ++s) t.Receive(s);
  EXPECT_EQ(t.unique(), 100'000u);
  EXPECT_EQ(t.duplicated(), 0u);
  EXPECT_EQ(t.out_of_order(), 0u);
  EXPECT_EQ(t.Lost(100'000), 0u);
}

TEST(SequenceTracker, GapsAreLost) {
  SequenceTracker t;
  for (uint64_t s = 1; s <= 100; ++s) {
    if (s % 10 != 0) t.Receive(s);
  }
  EXPECT_EQ(t.Lost(100), 10u);
  EXPECT_EQ(t.out_of_order(), 0u);
  EXPECT_EQ(t.duplicated(), 0u);
}

TEST(SequenceTracker, TailNeverReceivedIsLost) {
  SequenceTracker t;
  for (uint64_t s = 1; s <= 50; ++s) t.Receive(s);
  EXPECT_EQ(t.Lost(80), 30u);
}

TEST(SequenceTracker, DuplicatesInsideAndBelowTheWindow) {
  SequenceTracker t;
  t.Receive(1);
  t.Receive(2);
  t.Receive(2);  // inside: base has moved past 2, so it is below base
  t.Receive(5);
  t.Receive(5);  // inside the window, above base
  EXPECT_EQ(t.duplicated(), 2u);
  EXPECT_EQ(t.unique(), 3u);
  for (uint64_t s = 6; s < 3 * SequenceTracker::kWindow; ++s) t.Receive(s);
  t.Receive(7);  // far below the window now; 3 and 4 were given up as a gap, so ambiguous
  EXPECT_EQ(t.Lost(3 * SequenceTracker::kWindow - 1), 2u);
}

TEST(SequenceTracker, DuplicateFarBelowWindowWithoutGapsIsADuplicate) {
  SequenceTracker t;
  for (uint64_t s = 1; s <= 3 * SequenceTracker::kWindow; ++s) t.Receive(s);
  t.Receive(1);
  EXPECT_EQ(t.duplicated(), 1u);
  EXPECT_EQ(t.out_of_order(), 0u);
}

TEST(SequenceTracker, LateArrivalIsOutOfOrderNotLost) {
  SequenceTracker t;
  t.Receive(1);
  t.Receive(3);
  t.Receive(4);
  t.Receive(2);  // after a higher one
  EXPECT_EQ(t.out_of_order(), 1u);
  EXPECT_EQ(t.Lost(4), 0u);
  EXPECT_EQ(t.duplicated(), 0u);
}

TEST(SequenceTracker, SequenceZeroIsCorrupt) {
  SequenceTracker t;
  t.Receive(0);
  EXPECT_EQ(t.corrupt(), 1u);
  EXPECT_EQ(t.unique(), 0u);
}

TEST(Judge, Qos0AllowsLossButNotDuplicates) {
  VerifyCounts c;
  c.lost = 5;
  std::string why;
  EXPECT_TRUE(Judge(0, c, &why)) << why;
  c.duplicated = 1;
  EXPECT_FALSE(Judge(0, c, &why));
  EXPECT_NE(why.find("duplicated at QoS 0"), std::string::npos) << why;
}

TEST(Judge, Qos1FailsOnLossAllowsDuplicates) {
  VerifyCounts c;
  c.duplicated = 3;
  std::string why;
  EXPECT_TRUE(Judge(1, c, &why)) << why;
  c.lost = 1;
  EXPECT_FALSE(Judge(1, c, &why));
  EXPECT_NE(why.find("1 lost at QoS 1"), std::string::npos) << why;
}

TEST(Judge, Qos2FailsOnLossAndDuplicates) {
  VerifyCounts c;
  c.duplicated = 1;
  EXPECT_FALSE(Judge(2, c, nullptr));
  c.duplicated = 0;
  c.lost = 1;
  EXPECT_FALSE(Judge(2, c, nullptr));
  c.lost = 0;
  EXPECT_TRUE(Judge(2, c, nullptr));
}

TEST(Judge, OutOfOrderAndCorruptFailAtEveryQos) {
  for (int qos = 0; qos <= 2; ++qos) {
    VerifyCounts c;
    c.out_of_order = 1;
    EXPECT_FALSE(Judge(qos, c, nullptr)) << qos;
    c.out_of_order = 0;
    c.corrupt = 1;
    EXPECT_FALSE(Judge(qos, c, nullptr)) << qos;
  }
}

}  // namespace
}  // namespace ringmq::bench
