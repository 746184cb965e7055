#include "session/offline_list.h"

#include <algorithm>
#include <cstdint>
#include <list>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace ringmq::session {
namespace {

// The members, oldest first (drains a copy).
std::vector<uint32_t> Members(OfflineList list) {
  std::vector<uint32_t> members;
  while (!list.empty()) {
    members.push_back(list.oldest());
    list.Remove(list.oldest());
  }
  return members;
}

TEST(OfflineList, EmptyHasNoOldest) {
  OfflineList list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.oldest(), OfflineList::kNone);
  EXPECT_FALSE(list.Contains(0));
  EXPECT_FALSE(list.Remove(0)) << "removing a non-member is a no-op";
  EXPECT_FALSE(list.Remove(1000));
}

TEST(OfflineList, OldestFirstInDetachOrder) {
  OfflineList list;
  list.PushBack(7, 100);
  list.PushBack(2, 100);  // same time: still after 7
  list.PushBack(40, 250);
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(list.oldest(), 7u);
  EXPECT_EQ(list.since_ms(40), 250u);
  EXPECT_EQ(Members(list), (std::vector<uint32_t>{7, 2, 40}));
}

TEST(OfflineList, RemoveHeadMiddleTailInConstantTime) {
  OfflineList list;
  for (uint32_t i = 0; i < 5; ++i) list.PushBack(i, i * 10);
  EXPECT_TRUE(list.Remove(2));   // middle
  EXPECT_TRUE(list.Remove(0));   // oldest
  EXPECT_TRUE(list.Remove(4));   // newest
  EXPECT_FALSE(list.Remove(2));  // already gone
  EXPECT_EQ(list.oldest(), 1u);
  EXPECT_EQ(Members(list), (std::vector<uint32_t>{1, 3}));
  // A removed index may join again, as the newest.
  list.PushBack(0, 60);
  list.PushBack(4, 70);
  EXPECT_EQ(Members(list), (std::vector<uint32_t>{1, 3, 0, 4}));
}

TEST(OfflineList, ReattachedSessionGoesToTheNewestEnd) {
  // A session that comes back online and goes offline again is no longer the oldest.
  OfflineList list;
  list.PushBack(1, 10);
  list.PushBack(2, 20);
  ASSERT_TRUE(list.Remove(1));  // reconnected
  list.PushBack(1, 30);         // offline again
  EXPECT_EQ(list.oldest(), 2u);
  EXPECT_EQ(list.since_ms(1), 30u);
}

TEST(OfflineList, MatchesAReferenceListUnderRandomOperations) {
  std::mt19937 random(11);
  OfflineList list;
  std::list<std::pair<uint32_t, uint64_t>> reference;  // (index, since), oldest first
  uint64_t now = 0;
  for (int step = 0; step < 20'000; ++step) {
    const auto index = static_cast<uint32_t>(random() % 64);
    now += random() % 3;
    const bool member = list.Contains(index);
    ASSERT_EQ(member, std::any_of(reference.begin(), reference.end(),
                                  [&](const auto& entry) { return entry.first == index; }));
    if (member) {
      ASSERT_TRUE(list.Remove(index));
      reference.remove_if([&](const auto& entry) { return entry.first == index; });
    } else {
      list.PushBack(index, now);
      reference.emplace_back(index, now);
    }
    ASSERT_EQ(list.size(), reference.size());
    if (reference.empty()) {
      ASSERT_EQ(list.oldest(), OfflineList::kNone);
    } else {
      ASSERT_EQ(list.oldest(), reference.front().first);
      ASSERT_EQ(list.since_ms(list.oldest()), reference.front().second);
    }
  }
  std::vector<uint32_t> expected;
  for (const auto& entry : reference) expected.push_back(entry.first);
  EXPECT_EQ(Members(list), expected);
}

TEST(OfflineList, NextDueIsTheEarliestDueTimeWhateverTheDetachOrder) {
  OfflineList list;
  EXPECT_EQ(list.next_due(), OfflineList::kNone);
  list.PushBack(1, 100, 5'100);  // offline first, due last
  list.PushBack(2, 200, 1'200);
  list.PushBack(3, 300);  // never due
  list.PushBack(4, 400, 2'400);
  EXPECT_EQ(list.oldest(), 1u) << "eviction order is still the detach order";
  EXPECT_EQ(list.next_due(), 2u);
  EXPECT_EQ(list.due_ms(2), 1'200u);
  EXPECT_EQ(list.due_ms(3), OfflineList::kNever);
  ASSERT_TRUE(list.Remove(2));
  EXPECT_EQ(list.next_due(), 4u);
  list.SetDue(4, 9'000);  // later (a delayed will published, the session's expiry next)
  EXPECT_EQ(list.next_due(), 1u);
  list.SetDue(3, 50);  // from never to due
  EXPECT_EQ(list.next_due(), 3u);
  list.SetDue(3, OfflineList::kNever);
  list.SetDue(1, OfflineList::kNever);
  EXPECT_EQ(list.next_due(), 4u);
  ASSERT_TRUE(list.Remove(4));
  EXPECT_EQ(list.next_due(), OfflineList::kNone) << "no member is due ever";
  EXPECT_EQ(list.size(), 2u);
}

TEST(OfflineList, RemovedMemberLeavesNothingInTheHeap) {
  // An indexed heap: a session that reconnects and goes offline again many times holds one
  // heap entry, so next_due never names a non-member.
  OfflineList list;
  list.PushBack(0, 0, 1'000'000);
  for (uint64_t round = 1; round <= 1000; ++round) {
    list.PushBack(1, round, round + 10);
    ASSERT_EQ(list.next_due(), 1u);
    ASSERT_TRUE(list.Remove(1));
    ASSERT_EQ(list.next_due(), 0u);
  }
}

TEST(OfflineList, HeapMatchesAReferenceUnderRandomOperations) {
  std::mt19937 random(29);
  OfflineList list;
  std::vector<uint64_t> due(128, 0);  // by index; 0: not a member
  uint64_t now = 1;
  for (int step = 0; step < 50'000; ++step) {
    const auto index = static_cast<uint32_t>(random() % due.size());
    now += random() % 3;
    const uint64_t when = random() % 4 == 0 ? OfflineList::kNever : now + random() % 10'000;
    if (!list.Contains(index)) {
      list.PushBack(index, now, when);
      due[index] = when;
    } else if (random() % 2 == 0) {
      ASSERT_TRUE(list.Remove(index));
      due[index] = 0;
    } else {
      list.SetDue(index, when);
      due[index] = when;
    }
    uint64_t earliest = OfflineList::kNever;
    for (const uint64_t d : due) {
      if (d != 0 && d < earliest) earliest = d;
    }
    if (earliest == OfflineList::kNever) {
      ASSERT_EQ(list.next_due(), OfflineList::kNone);
    } else {
      ASSERT_NE(list.next_due(), OfflineList::kNone);
      ASSERT_EQ(list.due_ms(list.next_due()), earliest);
    }
  }
}

TEST(OfflineListDeathTest, OutOfOrderTimeIsAProgrammerError) {
  OfflineList list;
  list.PushBack(0, 100);
  EXPECT_DEATH(list.PushBack(1, 99), "assertion failed");
}

}  // namespace
}  // namespace ringmq::session
