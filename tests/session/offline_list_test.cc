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

TEST(OfflineListDeathTest, OutOfOrderTimeIsAProgrammerError) {
  OfflineList list;
  list.PushBack(0, 100);
  EXPECT_DEATH(list.PushBack(1, 99), "assertion failed");
}

}  // namespace
}  // namespace ringmq::session
