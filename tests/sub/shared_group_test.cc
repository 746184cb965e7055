// Unit tests for shared-subscription groups in the subscription trie (src/sub/trie.h, "Shared
// subscriptions"): one member per group per message, the three strategies, offline and
// ineligible members skipped, the QoS 0 / QoS 1-2 rule when nobody is eligible, merging with
// normal subscriptions, group life (creation, last member, pruning), and a multi-threaded test
// of readers choosing while a writer changes the membership (also run under ThreadSanitizer).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "concurrent/epoch.h"
#include "sub/trie.h"

namespace ringmq::sub {
namespace {

using concurrent::EpochDomain;

constexpr uint64_t kSeed = 0x5eed;

Subscriber Member(uint32_t session, uint8_t qos = 1, uint16_t shard = 0) {
  return {.shard = shard, .session = session, .generation = 0, .qos = qos};
}

class SharedGroupTest : public ::testing::Test {
 protected:
  SharedGroupTest() : domain_(1), trie_(domain_, kSeed, SubscriptionTrie::kListChunk, 2) {
    domain_.Online(0);
  }
  ~SharedGroupTest() override { domain_.Offline(0); }

  // The sessions matching `topic`, with their shared flag.
  std::vector<Subscriber> Match(std::string_view topic, const ShareChoice& choice = {}) {
    trie_.Match(topic, result_, choice);
    domain_.Quiescent(0);
    return {result_.subscribers().begin(), result_.subscribers().end()};
  }
  // The one session matching `topic` (fails the test otherwise).
  uint32_t One(std::string_view topic, const ShareChoice& choice = {}) {
    const std::vector<Subscriber> matched = Match(topic, choice);
    EXPECT_EQ(matched.size(), 1u);
    return matched.empty() ? ~0u : matched[0].session;
  }

  EpochDomain domain_;
  SubscriptionTrie trie_;
  MatchResult result_;
};

TEST_F(SharedGroupTest, EachMessageGoesToOneMemberInRoundRobin) {
  for (uint32_t session = 1; session <= 3; ++session) {
    EXPECT_TRUE(trie_.SubscribeShared("g", "a/+", Member(session)));
  }
  EXPECT_EQ(trie_.group_count(), 1u);
  EXPECT_EQ(trie_.subscription_count(), 3u);
  std::map<uint32_t, int> counts;
  for (int i = 0; i < 300; ++i) {
    const std::vector<Subscriber> matched = Match("a/b");
    ASSERT_EQ(matched.size(), 1u);
    EXPECT_TRUE(matched[0].shared);
    ++counts[matched[0].session];
  }
  EXPECT_EQ(counts, (std::map<uint32_t, int>{{1, 100}, {2, 100}, {3, 100}}));
  EXPECT_EQ(result_.shared_picks(), 1u);
  EXPECT_EQ(result_.shared_skips(), 0u);
}

TEST_F(SharedGroupTest, EachCursorSlotHasItsOwnCursor) {
  trie_.SubscribeShared("g", "t", Member(1));
  trie_.SubscribeShared("g", "t", Member(2));
  const uint32_t first_slot0 = One("t", {.cursor_slot = 0});
  const uint32_t first_slot1 = One("t", {.cursor_slot = 1});
  EXPECT_EQ(first_slot0, first_slot1) << "slot 1's cursor did not move with slot 0's";
  EXPECT_NE(One("t", {.cursor_slot = 0}), first_slot0);
}

TEST_F(SharedGroupTest, NormalSubscriberBesideTheGroupGetsEveryMessage) {
  trie_.Subscribe("t/#", Member(9, 0));
  trie_.SubscribeShared("g", "t/#", Member(1));
  trie_.SubscribeShared("g", "t/#", Member(2));
  for (int i = 0; i < 10; ++i) {
    const std::vector<Subscriber> matched = Match("t/x");
    ASSERT_EQ(matched.size(), 2u);
    EXPECT_FALSE(matched[1].shared);
    EXPECT_EQ(matched[1].session, 9u);
    EXPECT_TRUE(matched[0].shared);
  }
}

TEST_F(SharedGroupTest, EveryMatchingGroupChoosesItsOwnMember) {
  trie_.SubscribeShared("a", "t", Member(1));
  trie_.SubscribeShared("b", "t", Member(2));
  trie_.SubscribeShared("b", "+", Member(3));
  EXPECT_EQ(trie_.group_count(), 3u);
  const std::vector<Subscriber> matched = Match("t");
  ASSERT_EQ(matched.size(), 3u);
  EXPECT_EQ(result_.shared_picks(), 3u);
}

// A session in a group that also has a normal matching subscription gets the message once, at
// the highest QoS (MQTT-3.3.5-1), marked as chosen by the group.
TEST_F(SharedGroupTest, MemberWithANormalSubscriptionTooGetsItOnceAtTheHighestQos) {
  trie_.Subscribe("t", Member(1, 0));
  trie_.SubscribeShared("g", "t", Member(1, 2));
  const std::vector<Subscriber> matched = Match("t");
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].qos, 2);
  EXPECT_TRUE(matched[0].shared);
}

TEST_F(SharedGroupTest, OfflineMembersAreSkipped) {
  trie_.SubscribeShared("g", "t", Member(1));
  trie_.SubscribeShared("g", "t", Member(2));
  Subscriber offline = Member(1);
  offline.offline = true;
  EXPECT_FALSE(trie_.SubscribeShared("g", "t", offline)) << "a flag change is no new membership";
  for (int i = 0; i < 5; ++i) EXPECT_EQ(One("t", {.qos = 1}), 2u);
  uint32_t skips = 0;
  for (int i = 0; i < 4; ++i) {
    One("t", {.qos = 1});
    skips += result_.shared_skips();
  }
  EXPECT_EQ(skips, 2u) << "every other start is the offline member";
}

TEST_F(SharedGroupTest, IneligibleMembersAreSkipped) {
  for (uint32_t session = 1; session <= 3; ++session)
    trie_.SubscribeShared("g", "t", Member(session));
  const auto only_three = [](void*, const Subscriber& member) { return member.session == 3; };
  for (int i = 0; i < 6; ++i) EXPECT_EQ(One("t", {.eligible = only_three}), 3u);
}

// With no member eligible: a QoS 1/2 message goes to the strategy's member (a persistent member
// keeps it while offline); a QoS 0 one to nobody. Both are counted.
TEST_F(SharedGroupTest, NoEligibleMemberKeepsQos1ForTheStrategysMemberAndDropsQos0) {
  Subscriber a = Member(1);
  Subscriber b = Member(2);
  a.offline = b.offline = true;
  trie_.SubscribeShared("g", "t", a);
  trie_.SubscribeShared("g", "t", b);
  const std::vector<Subscriber> kept = Match("t", {.qos = 1});
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(result_.shared_no_member(), 1u);
  EXPECT_EQ(result_.shared_skips(), 2u);
  EXPECT_TRUE(Match("t", {.qos = 0}).empty());
  EXPECT_EQ(result_.shared_no_member(), 1u);
  EXPECT_EQ(result_.shared_picks(), 0u);
}

TEST_F(SharedGroupTest, HashStrategyKeepsAPublisherOnOneMember) {
  for (uint32_t session = 1; session <= 4; ++session)
    trie_.SubscribeShared("g", "t", Member(session));
  std::set<uint32_t> chosen;
  for (uint64_t key = 0; key < 16; ++key) {
    const ShareChoice choice{.strategy = ShareStrategy::kHash, .publisher_key = key * 7919};
    const uint32_t first = One("t", choice);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(One("t", choice), first);
    chosen.insert(first);
  }
  EXPECT_GT(chosen.size(), 1u) << "different publishers spread over the members";
}

TEST_F(SharedGroupTest, RandomStrategyReachesEveryMember) {
  for (uint32_t session = 1; session <= 4; ++session)
    trie_.SubscribeShared("g", "t", Member(session));
  std::map<uint32_t, int> counts;
  for (int i = 0; i < 400; ++i) ++counts[One("t", {.strategy = ShareStrategy::kRandom})];
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [session, count] : counts) EXPECT_GT(count, 40) << session;
}

TEST_F(SharedGroupTest, MatchSharedReturnsOnlyTheGroupsChoices) {
  trie_.Subscribe("t", Member(9));
  trie_.SubscribeShared("g", "t", Member(1));
  trie_.MatchShared("t", result_, {});
  domain_.Quiescent(0);
  ASSERT_EQ(result_.size(), 1u);
  EXPECT_EQ(result_.subscribers()[0].session, 1u);
}

TEST_F(SharedGroupTest, MatchWithoutGroupsLeavesEveryGroupOut) {
  trie_.Subscribe("t/x", Member(9));
  trie_.SubscribeShared("g", "t/+", Member(1));
  trie_.SubscribeShared("h", "t/#", Member(2));
  const std::vector<Subscriber> matched = Match("t/x", {.qos = 1, .groups = false});
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].session, 9u);
  EXPECT_EQ(result_.shared_picks(), 0u);
  EXPECT_EQ(Match("t/x", {.qos = 1}).size(), 3u);
}

TEST_F(SharedGroupTest, MatchGroupChoosesInTheOneGroupOfTheExactFilter) {
  trie_.Subscribe("a/b", Member(9));
  trie_.SubscribeShared("g", "a/+", Member(1));
  trie_.SubscribeShared("g", "a/+", Member(2));
  trie_.SubscribeShared("h", "a/+", Member(3));
  trie_.SubscribeShared("g", "a/#", Member(4));
  trie_.SubscribeShared("g", "#", Member(5));
  std::set<uint32_t> chosen;
  for (int i = 0; i < 4; ++i) {
    trie_.MatchGroup("g", "a/+", result_, {});
    ASSERT_EQ(result_.size(), 1u);
    EXPECT_TRUE(result_.subscribers()[0].shared);
    chosen.insert(result_.subscribers()[0].session);
  }
  EXPECT_EQ(chosen, (std::set<uint32_t>{1, 2}));  // round robin within g of a/+ only
  trie_.MatchGroup("h", "a/+", result_, {});
  ASSERT_EQ(result_.size(), 1u);
  EXPECT_EQ(result_.subscribers()[0].session, 3u);
  trie_.MatchGroup("g", "a/#", result_, {});
  ASSERT_EQ(result_.size(), 1u);
  EXPECT_EQ(result_.subscribers()[0].session, 4u);
  trie_.MatchGroup("g", "#", result_, {});
  ASSERT_EQ(result_.size(), 1u);
  EXPECT_EQ(result_.subscribers()[0].session, 5u);
  // No such group or filter: nothing (a literal filter level, an absent wildcard child).
  trie_.MatchGroup("x", "a/+", result_, {});
  EXPECT_TRUE(result_.empty());
  trie_.MatchGroup("g", "a/b", result_, {});
  EXPECT_TRUE(result_.empty());
  trie_.MatchGroup("g", "+/b", result_, {});
  EXPECT_TRUE(result_.empty());
  trie_.MatchGroup("g", "a/b/c", result_, {});
  EXPECT_TRUE(result_.empty());
  domain_.Quiescent(0);
}

TEST_F(SharedGroupTest, MatchGroupFollowsEligibilityAndTheQos0Rule) {
  trie_.SubscribeShared("g", "t", Member(1));
  trie_.SubscribeShared("g", "t", Member(2, 1, /*shard=*/1));
  const auto only_shard_1 = [](void*, const Subscriber& member) { return member.shard == 1; };
  for (int i = 0; i < 3; ++i) {
    trie_.MatchGroup("g", "t", result_, {.eligible = only_shard_1});
    ASSERT_EQ(result_.size(), 1u);
    EXPECT_EQ(result_.subscribers()[0].session, 2u);
  }
  const auto nobody = [](void*, const Subscriber&) { return false; };
  trie_.MatchGroup("g", "t", result_, {.qos = 0, .eligible = nobody});
  EXPECT_TRUE(result_.empty());
  EXPECT_EQ(result_.shared_no_member(), 1u);
  trie_.MatchGroup("g", "t", result_, {.qos = 1, .eligible = nobody});
  EXPECT_EQ(result_.size(), 1u);  // kept by the strategy's member
  domain_.Quiescent(0);
}

TEST_F(SharedGroupTest, RetainedAndDollarRulesApplyToTheInnerFilter_MQTT_4_7_2_1) {
  trie_.SubscribeShared("g", "#", Member(1));
  EXPECT_TRUE(Match("$SYS/x").empty());
  EXPECT_EQ(One("a/b"), 1u);
}

TEST_F(SharedGroupTest, LastMemberTakesTheGroupAndItsNodesAway) {
  const size_t nodes = trie_.node_count();
  int groups = 0;
  trie_.SubscribeShared("g", "a/b", Member(1), &groups);
  trie_.SubscribeShared("g", "a/b", Member(2), &groups);
  EXPECT_EQ(groups, 1);
  EXPECT_FALSE(trie_.UnsubscribeShared("other", "a/b", Member(1), &groups));
  EXPECT_FALSE(trie_.UnsubscribeShared("g", "a/c", Member(1), &groups));
  EXPECT_TRUE(trie_.UnsubscribeShared("g", "a/b", Member(1), &groups));
  EXPECT_EQ(One("a/b"), 2u);
  EXPECT_TRUE(trie_.UnsubscribeShared("g", "a/b", Member(2), &groups));
  EXPECT_FALSE(trie_.UnsubscribeShared("g", "a/b", Member(2), &groups));
  EXPECT_EQ(groups, 0);
  EXPECT_EQ(trie_.group_count(), 0u);
  EXPECT_EQ(trie_.subscription_count(), 0u);
  EXPECT_EQ(trie_.node_count(), nodes) << "pruned";
  EXPECT_TRUE(Match("a/b").empty());
}

TEST_F(SharedGroupTest, ManyMembersInChunkedListsAreAllChosen) {
  SubscriptionTrie trie(domain_, kSeed, /*list_chunk=*/2);
  for (uint32_t session = 0; session < 20; ++session)
    trie.SubscribeShared("g", "t", Member(session));
  std::set<uint32_t> chosen;
  for (int i = 0; i < 20; ++i) {
    trie.Match("t", result_);
    ASSERT_EQ(result_.size(), 1u);
    chosen.insert(result_.subscribers()[0].session);
  }
  domain_.Quiescent(0);
  EXPECT_EQ(chosen.size(), 20u);
}

TEST_F(SharedGroupTest, ResultReusesItsMemoryOnceWarm) {
  trie_.Subscribe("t", Member(9));
  for (uint32_t session = 1; session <= 3; ++session)
    trie_.SubscribeShared("g", "t", Member(session));
  trie_.SubscribeShared("h", "#", Member(4));
  Match("t");
  const Subscriber* data = result_.subscribers().data();
  for (int i = 0; i < 50; ++i) {
    Match("t");
    EXPECT_EQ(result_.subscribers().data(), data);
  }
}

// Readers choose while a writer adds and removes members (and the group's other filter's
// groups): a group with a stable member always yields exactly one member, and only members that
// could be there.
TEST(SharedGroupStressTest, ReadersAlwaysGetOneMemberWhileMembershipChanges) {
  constexpr int kReaders = 2;
  EpochDomain domain(kReaders);
  SubscriptionTrie trie(domain, kSeed, /*list_chunk=*/4, /*cursor_slots=*/kReaders);
  trie.SubscribeShared("g", "a/b", Member(0));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> failures{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      domain.Online(r);
      MatchResult result;
      const ShareChoice choice{.cursor_slot = static_cast<uint32_t>(r), .qos = 1};
      while (!stop.load(std::memory_order_relaxed)) {
        trie.Match("a/b", result, choice);
        if (result.size() != 1 || !result.subscribers()[0].shared ||
            result.subscribers()[0].session >= 64) {
          failures.fetch_add(1, std::memory_order_relaxed);
        }
        domain.Quiescent(r);
      }
      domain.Offline(r);
    });
  }
  for (int round = 0; round < 2000; ++round) {
    const uint32_t session = 1 + static_cast<uint32_t>(round % 63);
    Subscriber member = Member(session);
    member.offline = (round % 3) == 0;
    trie.SubscribeShared("g", "a/b", member);
    trie.SubscribeShared("h", "x/+", member);
    if (round % 2 == 1) {
      trie.UnsubscribeShared("g", "a/b", Member(1 + static_cast<uint32_t>((round * 7) % 63)));
      trie.UnsubscribeShared("h", "x/+", Member(session));
    }
  }
  stop.store(true);
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(failures.load(), 0u);
}

}  // namespace
}  // namespace ringmq::sub
