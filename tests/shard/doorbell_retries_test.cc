#include "shard/doorbell_retries.h"

#include <gtest/gtest.h>

#include <vector>

namespace ringmq::shard {
namespace {

std::vector<uint32_t> Due(DoorbellRetries& retries) {
  std::vector<uint32_t> due;
  retries.TakeDue([&](uint32_t shard) { due.push_back(shard); });
  return due;
}

TEST(DoorbellRetriesTest, AFailedRingIsRetriedOnceOnTheNextTake) {
  DoorbellRetries retries(4);
  retries.OnRing(2);
  EXPECT_FALSE(retries.any_due());
  EXPECT_TRUE(retries.OnFailure(2));
  EXPECT_TRUE(retries.any_due());
  EXPECT_EQ(Due(retries), std::vector<uint32_t>{2});
  EXPECT_TRUE(Due(retries).empty()) << "taken once";
}

TEST(DoorbellRetriesTest, RetriesInARowAreBounded) {
  DoorbellRetries retries(2);
  retries.OnRing(1);
  for (uint32_t i = 0; i < DoorbellRetries::kMaxRetries; ++i) {
    ASSERT_TRUE(retries.OnFailure(1)) << "failure " << i;
    ASSERT_EQ(Due(retries), std::vector<uint32_t>{1});
  }
  EXPECT_FALSE(retries.OnFailure(1)) << "the destination polls each tick: give up";
  EXPECT_TRUE(Due(retries).empty());
}

TEST(DoorbellRetriesTest, RingForNewMailRestartsTheBudget) {
  DoorbellRetries retries(2);
  for (uint32_t i = 0; i < DoorbellRetries::kMaxRetries; ++i) ASSERT_TRUE(retries.OnFailure(0));
  ASSERT_FALSE(retries.OnFailure(0));
  retries.OnRing(0);
  EXPECT_TRUE(retries.OnFailure(0));
  EXPECT_EQ(Due(retries), std::vector<uint32_t>{0});
}

TEST(DoorbellRetriesTest, DestinationsAreIndependentAndDueOnce) {
  DoorbellRetries retries(3);
  EXPECT_TRUE(retries.OnFailure(2));
  EXPECT_TRUE(retries.OnFailure(0));
  EXPECT_TRUE(retries.OnFailure(2));  // a retry and a fresh ring both failed: one retry
  EXPECT_EQ(Due(retries), (std::vector<uint32_t>{2, 0}));
}

}  // namespace
}  // namespace ringmq::shard
