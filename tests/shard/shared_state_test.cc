// MailboxCapacity and MailboxBytes: the mailbox_memory budget spread over the shard pairs, its
// floor (the longest record) and ceiling, and the bytes the memory baseline counts.
#include "shard/shared_state.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ringmq::shard {
namespace {

TEST(MailboxCapacityTest, DefaultBudgetKeepsSmallMeshesAndShrinksLargeOnes) {
  EXPECT_EQ(MailboxCapacity(1), 32768u);
  EXPECT_EQ(MailboxCapacity(2), 32768u);  // the ceiling: 512 KiB per pair
  EXPECT_EQ(MailboxCapacity(3), 32768u);
  EXPECT_EQ(MailboxCapacity(4), 16384u);  // 2^18 / 12, rounded down to a power of two
  EXPECT_EQ(MailboxCapacity(16), 1024u);
  EXPECT_EQ(MailboxCapacity(45), 128u);
  EXPECT_EQ(MailboxCapacity(46), 64u);  // the floor: the longest record
  EXPECT_EQ(MailboxCapacity(128), 64u);
  EXPECT_EQ(MailboxCapacity(1024), 64u);
}

TEST(MailboxCapacityTest, BudgetIsSpreadOverThePairs) {
  EXPECT_EQ(MailboxCapacity(128, uint64_t{1} << 30), 4096u);  // 2^26 slots / 16256 pairs
  EXPECT_EQ(MailboxCapacity(4, 65536), 256u);                 // 4096 slots / 12 pairs
  EXPECT_EQ(MailboxCapacity(2, 1024), 64u);
  EXPECT_EQ(MailboxCapacity(2, uint64_t{64} << 30), 32768u);
}

TEST(MailboxCapacityTest, BaselineCountsTheWholeMapping) {
  // 16256 rings of 64 slots, 63 spare slots and 64 length bytes, in 2112-byte strides.
  EXPECT_EQ(MailboxBytes(128), uint64_t{16256} * 2112);
  EXPECT_LT(MailboxBytes(128), uint64_t{34} << 20);
  EXPECT_EQ(MailboxBytes(1), 0u);
}

TEST(MailboxCapacityTest, SharedStateSizesItsMailboxesFromTheBudget) {
  SharedState shared(4, 0, {}, 65536);
  EXPECT_EQ(shared.mailboxes.mailbox(0, 3).capacity(), 256u);
  EXPECT_EQ(shared.mailboxes.mailbox(3, 0).capacity(), 256u);
}

}  // namespace
}  // namespace ringmq::shard
