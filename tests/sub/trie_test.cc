// Unit tests for the subscription trie (src/sub/trie.h): the topic-matching rules of MQTT 3.1.1
// §4.7 (tests named after the rule they pin), QoS replacement, overlapping subscriptions, shard
// grouping, pruning, wide fan-out, a differential test against a brute-force matcher, and a
// multi-threaded stress test (also run under ThreadSanitizer).
#include "sub/trie.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "brute_force_matcher.h"
#include "concurrent/epoch.h"

namespace ringmq::sub {
namespace {

using concurrent::EpochDomain;

constexpr uint64_t kTrieSeed = 0x5eed;

using reference::Entries;
using SessionList = std::vector<uint32_t>;

Subscriber Sub(uint32_t session, uint8_t qos = 0, uint16_t shard = 0, uint32_t generation = 0) {
  return {shard, session, generation, qos};
}

// One reader (this thread), online for the lifetime of the fixture.
class TrieTest : public ::testing::Test {
 protected:
  TrieTest() : domain_(1), trie_(domain_, kTrieSeed) { domain_.Online(0); }
  ~TrieTest() override { domain_.Offline(0); }

  Entries Match(std::string_view topic) {
    trie_.Match(topic, result_);
    domain_.Quiescent(0);
    return reference::ToEntries(result_);
  }
  // The sessions (qos 0, shard 0, generation 0) matching `topic`.
  SessionList Sessions(std::string_view topic) {
    trie_.Match(topic, result_);
    domain_.Quiescent(0);
    SessionList sessions;
    for (const Subscriber& s : result_.subscribers()) {
      sessions.push_back(s.session);
    }
    return sessions;
  }
  bool Matches(std::string_view filter, std::string_view topic) {
    trie_.Subscribe(filter, Sub(1));
    const bool matched = !Sessions(topic).empty();
    trie_.Unsubscribe(filter, Sub(1));
    return matched;
  }

  EpochDomain domain_;
  SubscriptionTrie trie_;
  MatchResult result_;
};

// ---- §4.7 topic names and filters ----------------------------------------------------------

TEST_F(TrieTest, HashMatchesParentLevel_MQTT_4_7_1_2) {
  EXPECT_TRUE(Matches("sport/#", "sport"));
  EXPECT_TRUE(Matches("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_FALSE(Matches("sport/tennis/#", "sport"));
}

TEST_F(TrieTest, HashMatchesAnyNumberOfLevels_MQTT_4_7_1_2) {
  EXPECT_TRUE(Matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(Matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_FALSE(Matches("sport/tennis/player1/#", "sport/tennis/player2"));
  EXPECT_TRUE(Matches("#", "sport/tennis/player1"));
  EXPECT_TRUE(Matches("#", "/"));
  EXPECT_TRUE(Matches("sport/#", "sport/"));
}

TEST_F(TrieTest, PlusMatchesExactlyOneLevel_MQTT_4_7_1_3) {
  EXPECT_TRUE(Matches("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(Matches("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(Matches("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(Matches("sport/+", "sport"));
  EXPECT_TRUE(Matches("+/tennis/#", "sport/tennis/player1"));
  EXPECT_TRUE(Matches("+", "finance"));
}

TEST_F(TrieTest, PlusMatchesEmptyLevel_MQTT_4_7_1_3) {
  EXPECT_TRUE(Matches("sport/+", "sport/"));
  EXPECT_TRUE(Matches("+/+", "/finance"));
  EXPECT_TRUE(Matches("/+", "/finance"));
  EXPECT_FALSE(Matches("+", "/finance"));
  EXPECT_TRUE(Matches("a/+/b", "a//b"));
  EXPECT_TRUE(Matches("+/+", "/"));
  EXPECT_FALSE(Matches("+", "/"));
}

TEST_F(TrieTest, DollarTopicsNotMatchedByLeadingWildcard_MQTT_4_7_2_1) {
  EXPECT_FALSE(Matches("#", "$SYS/monitor/Clients"));
  EXPECT_FALSE(Matches("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_FALSE(Matches("+", "$SYS"));
  EXPECT_FALSE(Matches("+/#", "$SYS/a"));
  EXPECT_TRUE(Matches("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(Matches("$SYS/#", "$SYS"));
  EXPECT_TRUE(Matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
  EXPECT_TRUE(Matches("$SYS", "$SYS"));
}

TEST_F(TrieTest, DollarOnlyMattersInTheFirstLevel_MQTT_4_7_2_1) {
  EXPECT_TRUE(Matches("a/+", "a/$SYS"));
  EXPECT_TRUE(Matches("a/#", "a/$SYS/b"));
  EXPECT_TRUE(Matches("#", "a$/b"));
  EXPECT_TRUE(Matches("+", "x$"));
}

TEST_F(TrieTest, LevelsCompareByteExactly_MQTT_4_7_3) {
  EXPECT_FALSE(Matches("ACCOUNTS", "Accounts"));
  EXPECT_TRUE(Matches("Accounts payable", "Accounts payable"));
  EXPECT_FALSE(Matches("Accounts payable", "Accounts  payable"));
  EXPECT_FALSE(Matches("caf\xc3\xa9", "cafe\xcc\x81"));  // same text, different normalization
  EXPECT_TRUE(Matches("caf\xc3\xa9/+", "caf\xc3\xa9/x"));
  EXPECT_FALSE(Matches("a", "ab"));
  EXPECT_FALSE(Matches("ab", "a"));
}

TEST_F(TrieTest, LeadingSlashMakesADistinctTopic_MQTT_4_7_3) {
  EXPECT_FALSE(Matches("finance", "/finance"));
  EXPECT_FALSE(Matches("/finance", "finance"));
  EXPECT_TRUE(Matches("/finance", "/finance"));
  EXPECT_FALSE(Matches("a/b", "a/b/"));
  EXPECT_FALSE(Matches("a/b", "a//b"));
}

TEST_F(TrieTest, LongLevelsAndManyLevels) {
  const std::string long_level(300, 'x');
  EXPECT_TRUE(Matches(long_level + "/+", long_level + "/y"));
  EXPECT_FALSE(Matches(long_level + "/+", long_level + "x/y"));
  std::string deep = "l";
  for (size_t i = 1; i < mqtt::kMaxTopicLevels; ++i) {
    deep += "/l";
  }
  EXPECT_TRUE(Matches(deep, deep));
  EXPECT_TRUE(Matches("#", deep));
  EXPECT_TRUE(Matches("l/+/#", deep));
  EXPECT_FALSE(Matches("l/+", deep));
}

// ---- Subscribe / Unsubscribe -----------------------------------------------------------------

TEST_F(TrieTest, SubscribeReplacesQosOfIdenticalSubscription_MQTT_3_8_4_3) {
  EXPECT_TRUE(trie_.Subscribe("a/b", Sub(7, 0)));
  EXPECT_FALSE(trie_.Subscribe("a/b", Sub(7, 2)));
  EXPECT_EQ(trie_.subscription_count(), 1u);
  EXPECT_EQ(Match("a/b"), (Entries{{0, 7, 0, 2}}));
  EXPECT_FALSE(trie_.Subscribe("a/b", Sub(7, 1)));
  EXPECT_FALSE(trie_.Subscribe("a/b", Sub(7, 1)));  // no change at all
  EXPECT_EQ(Match("a/b"), (Entries{{0, 7, 0, 1}}));
  EXPECT_EQ(trie_.subscription_count(), 1u);
}

TEST_F(TrieTest, OverlappingSubscriptionsDeliverOnceAtHighestQos_MQTT_3_3_5_1) {
  trie_.Subscribe("a/b", Sub(1, 0));
  trie_.Subscribe("a/+", Sub(1, 1));
  trie_.Subscribe("#", Sub(1, 0));
  trie_.Subscribe("a/#", Sub(2, 2));
  trie_.Subscribe("+/b", Sub(2, 0));
  trie_.Subscribe("a/b", Sub(3, 0));
  EXPECT_EQ(Match("a/b"), (Entries{{0, 1, 0, 1}, {0, 2, 0, 2}, {0, 3, 0, 0}}));
  EXPECT_EQ(Match("a/c"), (Entries{{0, 1, 0, 1}, {0, 2, 0, 2}}));
  EXPECT_EQ(Match("b"), (Entries{{0, 1, 0, 0}}));
  trie_.Unsubscribe("a/+", Sub(1));
  EXPECT_EQ(Match("a/b"), (Entries{{0, 1, 0, 0}, {0, 2, 0, 2}, {0, 3, 0, 0}}));
}

// The handle's acl_check (auth::ReadScope::kSome) survives the merge only if every matching
// subscription of the session has it: one subscription whose whole filter is readable means the
// topic is readable, so the per-message ACL check is skipped.
TEST_F(TrieTest, OverlappingSubscriptionsNeedTheAclCheckOnlyIfAllOfThemDo) {
  Subscriber filtered = Sub(1, 2);
  filtered.acl_check = true;
  trie_.Subscribe("#", filtered);          // partly readable: checked per message
  trie_.Subscribe("a/b", Sub(1, 0));       // wholly readable, lower QoS
  Subscriber other = Sub(2, 1);
  other.acl_check = true;
  trie_.Subscribe("a/+", other);
  trie_.Subscribe("+/b", other);
  EXPECT_EQ(Match("a/b"), (Entries{{0, 1, 0, 2, false}, {0, 2, 0, 1, true}}));
  EXPECT_EQ(Match("a/c"), (Entries{{0, 1, 0, 2, true}, {0, 2, 0, 1, true}}));
  // Re-subscribing replaces the flag with the QoS (MQTT-3.8.4-3), without a new subscription.
  EXPECT_FALSE(trie_.Subscribe("#", Sub(1, 2)));
  EXPECT_EQ(Match("a/c"), (Entries{{0, 1, 0, 2, false}, {0, 2, 0, 1, true}}));
  EXPECT_EQ(trie_.subscription_count(), 4u);
  trie_.Unsubscribe("a/b", Sub(1));
  trie_.Subscribe("#", filtered);
  EXPECT_EQ(Match("a/b"), (Entries{{0, 1, 0, 2, true}, {0, 2, 0, 1, true}}));
}

// Seven matching filters (an odd number of sorted runs to merge), overlapping sessions on
// several shards.
TEST_F(TrieTest, ManyOverlappingFiltersMergeToOneEntryPerSession) {
  const std::vector<std::string> filters = {"a/b/c", "a/b/+", "a/+/c",  "+/b/c",
                                            "a/#",   "#",     "a/b/c/#"};
  reference::BruteForceMatcher brute_force;
  for (uint32_t session = 0; session < 60; ++session) {
    for (size_t f = 0; f < filters.size(); ++f) {
      if ((session + f) % 3 != 0) {
        Subscriber s = Sub(session % 13, static_cast<uint8_t>((session + f) % 3),
                           static_cast<uint16_t>(session % 5), session % 2);
        s.acl_check = (session + f) % 4 != 0;
        EXPECT_EQ(trie_.Subscribe(filters[f], s), brute_force.Subscribe(filters[f], s));
      }
    }
  }
  EXPECT_EQ(Match("a/b/c"), brute_force.Match("a/b/c"));
  EXPECT_EQ(Match("a/b/d"), brute_force.Match("a/b/d"));
  EXPECT_EQ(Match("x/b/c"), brute_force.Match("x/b/c"));
}

TEST_F(TrieTest, IdentityIncludesShardAndGeneration) {
  EXPECT_TRUE(trie_.Subscribe("t", Sub(5, 0, 0, 1)));
  EXPECT_TRUE(trie_.Subscribe("t", Sub(5, 1, 0, 2)));  // a later session in the same slot
  EXPECT_TRUE(trie_.Subscribe("t", Sub(5, 2, 1, 1)));  // same slot number on another shard
  EXPECT_EQ(trie_.subscription_count(), 3u);
  EXPECT_EQ(Match("t"), (Entries{{0, 5, 1, 0}, {0, 5, 2, 1}, {1, 5, 1, 2}}));
  EXPECT_FALSE(trie_.Unsubscribe("t", Sub(5, 0, 0, 3)));  // no such generation
  EXPECT_TRUE(trie_.Unsubscribe("t", Sub(5, 0, 0, 1)));
  EXPECT_EQ(Match("t"), (Entries{{0, 5, 2, 1}, {1, 5, 1, 2}}));
}

TEST_F(TrieTest, ResultIsGroupedByShard) {
  trie_.Subscribe("x/+", Sub(9, 0, 3));
  trie_.Subscribe("x/y", Sub(4, 1, 1));
  trie_.Subscribe("#", Sub(2, 0, 3));
  trie_.Subscribe("x/#", Sub(8, 2, 0));
  trie_.Subscribe("x/y", Sub(1, 0, 3));
  trie_.Match("x/y", result_);
  ASSERT_EQ(result_.size(), 5u);
  const auto shards = result_.shards();
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0].shard, 0);
  EXPECT_EQ(shards[1].shard, 1);
  EXPECT_EQ(shards[2].shard, 3);
  ASSERT_EQ(shards[0].subscribers.size(), 1u);
  EXPECT_EQ(shards[0].subscribers[0].session, 8u);
  ASSERT_EQ(shards[1].subscribers.size(), 1u);
  EXPECT_EQ(shards[1].subscribers[0].session, 4u);
  ASSERT_EQ(shards[2].subscribers.size(), 3u);
  EXPECT_EQ(shards[2].subscribers[0].session, 1u);
  EXPECT_EQ(shards[2].subscribers[1].session, 2u);
  EXPECT_EQ(shards[2].subscribers[2].session, 9u);
  size_t total = 0;
  for (const ShardSubscribers& group : shards) {
    for (const Subscriber& s : group.subscribers) {
      EXPECT_EQ(s.shard, group.shard);
    }
    total += group.subscribers.size();
  }
  EXPECT_EQ(total, result_.size());
  domain_.Quiescent(0);
}

TEST_F(TrieTest, EmptyResultHasNoShards) {
  trie_.Subscribe("a", Sub(1));
  trie_.Match("b", result_);
  EXPECT_TRUE(result_.empty());
  EXPECT_TRUE(result_.shards().empty());
  domain_.Quiescent(0);
}

TEST_F(TrieTest, UnsubscribeReturnsWhetherRemoved) {
  EXPECT_FALSE(trie_.Unsubscribe("a/b", Sub(1)));
  trie_.Subscribe("a/b", Sub(1));
  EXPECT_FALSE(trie_.Unsubscribe("a", Sub(1)));      // prefix node without subscribers
  EXPECT_FALSE(trie_.Unsubscribe("a/b/c", Sub(1)));  // longer than any filter
  EXPECT_FALSE(trie_.Unsubscribe("a/+", Sub(1)));    // wildcards are literal here
  EXPECT_FALSE(trie_.Unsubscribe("a/#", Sub(1)));
  EXPECT_FALSE(trie_.Unsubscribe("a/b", Sub(2)));
  EXPECT_TRUE(trie_.Unsubscribe("a/b", Sub(1)));
  EXPECT_FALSE(trie_.Unsubscribe("a/b", Sub(1)));
  EXPECT_EQ(trie_.subscription_count(), 0u);
  EXPECT_EQ(Sessions("a/b"), SessionList{});
}

TEST_F(TrieTest, UnsubscribePrunesEmptyNodes) {
  EXPECT_EQ(trie_.node_count(), 1u);
  trie_.Subscribe("a/b/c", Sub(1));
  trie_.Subscribe("a/+/#", Sub(1));
  trie_.Subscribe("a", Sub(2));
  EXPECT_EQ(trie_.node_count(), 6u);  // root, a, b, c, +, #
  trie_.Unsubscribe("a/b/c", Sub(1));
  EXPECT_EQ(trie_.node_count(), 4u);  // b and c pruned
  trie_.Unsubscribe("a/+/#", Sub(1));
  EXPECT_EQ(trie_.node_count(), 2u);  // "a" still has a subscriber
  EXPECT_EQ(Sessions("a"), SessionList{2});
  trie_.Unsubscribe("a", Sub(2));
  EXPECT_EQ(trie_.node_count(), 1u);
  EXPECT_EQ(trie_.subscription_count(), 0u);
  // The pruned paths work again.
  trie_.Subscribe("a/b/c", Sub(3));
  EXPECT_EQ(Sessions("a/b/c"), SessionList{3});
  domain_.Collect();
}

TEST_F(TrieTest, ResultReusesItsMemoryOnceWarm) {
  for (uint32_t session = 0; session < 100; ++session) {
    trie_.Subscribe(session % 2 == 0 ? "a/+" : "a/b", Sub(session, 1, session % 4));
  }
  trie_.Match("a/b", result_);
  const Subscriber* data = result_.subscribers().data();
  const ShardSubscribers* shards = result_.shards().data();
  for (int i = 0; i < 10; ++i) {
    trie_.Match("a/b", result_);
    EXPECT_EQ(result_.subscribers().data(), data);
    EXPECT_EQ(result_.shards().data(), shards);
    EXPECT_EQ(result_.size(), 100u);
  }
  domain_.Quiescent(0);
}

// Many children under one parent: the child table grows and, as children go away, shrinks.
TEST_F(TrieTest, WideFanOutGrowsAndShrinks) {
  constexpr uint32_t kCount = 100000;
  for (uint32_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(trie_.Subscribe("device/" + std::to_string(i) + "/temp", Sub(i)));
  }
  EXPECT_EQ(trie_.subscription_count(), kCount);
  EXPECT_EQ(trie_.node_count(), 2 + 2 * size_t{kCount});
  for (uint32_t i = 0; i < kCount; i += 997) {
    EXPECT_EQ(Sessions("device/" + std::to_string(i) + "/temp"), SessionList{i});
  }
  EXPECT_EQ(Sessions("device/100000/temp"), SessionList{});
  for (uint32_t i = 0; i < kCount; ++i) {
    if (i % 1000 != 0) {
      ASSERT_TRUE(trie_.Unsubscribe("device/" + std::to_string(i) + "/temp", Sub(i)));
    }
    domain_.Quiescent(0);
  }
  domain_.Collect();
  for (uint32_t i = 0; i < kCount; ++i) {
    const SessionList expected = i % 1000 == 0 ? SessionList{i} : SessionList{};
    ASSERT_EQ(Sessions("device/" + std::to_string(i) + "/temp"), expected) << i;
  }
  EXPECT_EQ(trie_.subscription_count(), kCount / 1000);
}

// ---- Differential test against a brute-force matcher -------------------------------------------

class RandomTopics {
 public:
  explicit RandomTopics(uint32_t seed) : random_(seed) {}

  // Valid topic names: at least one byte (a single empty level is the empty string).
  std::string Topic() {
    std::string topic = TopicLevels();
    return topic.empty() ? "/" : topic;
  }
  std::string Filter() {
    std::string filter = FilterLevels();
    return filter.empty() ? "+" : filter;
  }
  std::string TopicLevels() {
    std::string topic;
    const int levels = Uniform(1, 5);
    for (int i = 0; i < levels; ++i) {
      topic += (i > 0 ? "/" : "") + std::string(Pick(kLevels));
    }
    return topic;
  }
  std::string FilterLevels() {
    std::string filter;
    const int levels = Uniform(1, 5);
    for (int i = 0; i < levels; ++i) {
      const bool last = i + 1 == levels;
      std::string_view level = Pick(kLevels);
      const int roll = Uniform(0, 9);
      if (roll < 3) {
        level = "+";
      } else if (roll == 3 && last) {
        level = "#";
      }
      filter += (i > 0 ? "/" : "") + std::string(level);
    }
    return filter;
  }
  Subscriber RandomSubscriber() {
    return {static_cast<uint16_t>(Uniform(0, 3)), static_cast<uint32_t>(Uniform(0, 5)),
            static_cast<uint32_t>(Uniform(0, 1)), static_cast<uint8_t>(Uniform(0, 2))};
  }
  int Uniform(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }

 private:
  static constexpr std::string_view kLevels[] = {"a", "b", "c", "", "$s", "$", "ab"};

  std::string_view Pick(std::span<const std::string_view> choices) {
    return choices[static_cast<size_t>(Uniform(0, static_cast<int>(choices.size()) - 1))];
  }

  std::mt19937 random_;
};

// Random subscribes, unsubscribes and matches, each checked against the brute-force matcher.
void RunDifferential(uint32_t list_chunk, uint32_t seed) {
  EpochDomain domain(1);
  domain.Online(0);
  SubscriptionTrie trie(domain, kTrieSeed, list_chunk);
  MatchResult result;
  RandomTopics random(seed);
  reference::BruteForceMatcher brute_force;
  std::vector<std::pair<std::string, Subscriber>> live;
  constexpr int kOperations = 40000;
  constexpr size_t kLiveMax = 300;
  int matched_nonempty = 0;
  for (int op = 0; op < kOperations; ++op) {
    const int roll = random.Uniform(0, 9);
    // Keep a few hundred subscriptions: enough overlap, and the brute force stays quick.
    if (roll < 4 && live.size() < kLiveMax) {
      const std::string filter = random.Filter();
      const Subscriber s = random.RandomSubscriber();
      ASSERT_EQ(trie.Subscribe(filter, s), brute_force.Subscribe(filter, s)) << filter;
      live.emplace_back(filter, s);
    } else if (roll < 7 && !live.empty()) {
      // Mostly existing subscriptions, sometimes a random (probably absent) one.
      const size_t index =
          static_cast<size_t>(random.Uniform(0, static_cast<int>(live.size()) - 1));
      std::pair<std::string, Subscriber> target = live[index];
      if (random.Uniform(0, 4) == 0) {
        target = {random.Filter(), random.RandomSubscriber()};
      } else {
        live[index] = live.back();
        live.pop_back();
      }
      ASSERT_EQ(trie.Unsubscribe(target.first, target.second),
                brute_force.Unsubscribe(target.first, target.second))
          << target.first;
    } else {
      const std::string topic = random.Topic();
      const Entries expected = brute_force.Match(topic);
      trie.Match(topic, result);
      ASSERT_EQ(reference::ToEntries(result), expected) << topic;
      matched_nonempty += expected.empty() ? 0 : 1;
    }
    ASSERT_EQ(trie.subscription_count(), brute_force.size());
    domain.Quiescent(0);
  }
  EXPECT_GT(matched_nonempty, 1000);  // the alphabet is small enough to produce matches
  // Removing everything prunes the trie back to its root.
  for (const auto& [filter, s] : live) {
    trie.Unsubscribe(filter, s);
  }
  EXPECT_EQ(trie.subscription_count(), 0u);
  EXPECT_EQ(trie.node_count(), 1u);
  domain.Offline(0);
}

TEST(TrieDifferentialTest, AgainstBruteForce) {
  RunDifferential(SubscriptionTrie::kListChunk, 20240601);
}

// Tiny chunks: most subscriber lists of more than two sessions are chunked, split, merged and
// flattened again.
TEST(TrieDifferentialTest, AgainstBruteForceWithChunkedLists) {
  RunDifferential(1, 20240602);
  RunDifferential(2, 20240603);
}

// One filter with thousands of subscribers: its list becomes chunked as it grows, stays sorted and
// complete through random changes, and becomes flat again as it shrinks.
TEST_F(TrieTest, FanOutListGrowsChunkedAndShrinksBack) {
  using Identity = std::tuple<uint16_t, uint32_t, uint32_t>;
  std::map<Identity, uint8_t> model;
  std::mt19937 random(99);
  constexpr int kOperations = 30000;
  for (int op = 0; op < kOperations; ++op) {
    const uint32_t session = random() % 5000;
    const Subscriber s = Sub(session, static_cast<uint8_t>(random() % 3),
                             static_cast<uint16_t>(session % 7), session % 3 == 0 ? 1 : 0);
    const Identity identity{s.shard, s.session, s.generation};
    const bool growing = op < kOperations / 2;
    if (random() % 10 < (growing ? 7u : 2u)) {
      ASSERT_EQ(trie_.Subscribe("news", s), model.count(identity) == 0);
      model[identity] = s.qos;
    } else {
      ASSERT_EQ(trie_.Unsubscribe("news", s), model.erase(identity) == 1);
    }
    if (op % 1000 == 999 || op + 1 == kOperations) {
      Entries expected;
      for (const auto& [id, qos] : model) {
        expected.emplace_back(std::get<0>(id), std::get<1>(id), std::get<2>(id), qos);
      }
      ASSERT_EQ(Match("news"), expected) << op;
      ASSERT_EQ(trie_.subscription_count(), model.size());
    }
  }
  // Down to nothing, through the flat sizes, checking as the list shrinks.
  while (!model.empty()) {
    const Identity id = model.begin()->first;
    model.erase(model.begin());
    ASSERT_TRUE(
        trie_.Unsubscribe("news", Sub(std::get<1>(id), 0, std::get<0>(id), std::get<2>(id))));
    if (model.size() % 50 == 0) {
      Entries expected;
      for (const auto& [other, qos] : model) {
        expected.emplace_back(std::get<0>(other), std::get<1>(other), std::get<2>(other), qos);
      }
      ASSERT_EQ(Match("news"), expected) << model.size();
    }
  }
  EXPECT_EQ(trie_.node_count(), 1u);
  domain_.Collect();
}

// ---- Multi-threaded --------------------------------------------------------------------------

// Readers match continuously while two writers subscribe and unsubscribe around a set of
// subscriptions that are never removed. Every Match must find every stable subscription of the
// topic with its QoS, and return a sorted result without duplicates. The writer churns the same
// nodes (copy-on-write subscriber arrays), and creates and prunes thousands of siblings so that
// child tables grow, shrink and are replaced under the readers.
TEST(TrieStressTest, StableSubscriptionsAlwaysFound) {
  constexpr uint32_t kReaders = 3;
  constexpr uint32_t kWriters = 2;
  constexpr int kKeys = 2000;
  constexpr int kStableEvery = 50;
  constexpr int kWriterOperations = 60000;
  constexpr uint32_t kStableSession = 1;  // sessions >= 100 are churn
  EpochDomain domain(kReaders);
  // Tiny chunks: the lists of the stable topics are chunked, split and merged under the readers.
  SubscriptionTrie trie(domain, kTrieSeed, /*list_chunk=*/2);
  auto stable_topic = [](int key) { return "s/" + std::to_string(key) + "/x"; };
  for (int key = 0; key < kKeys; key += kStableEvery) {
    trie.Subscribe(stable_topic(key), {0, kStableSession, 0, 1});
  }
  trie.Subscribe("s/+/x", {2, kStableSession, 0, 0});
  trie.Subscribe("s/#", {1, kStableSession, 0, 2});

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> matches{0};
  std::vector<std::thread> readers;
  for (uint32_t id = 0; id < kReaders; ++id) {
    readers.emplace_back([&, id] {
      MatchResult result;
      std::mt19937 random(id);
      domain.Online(id);
      for (uint64_t iteration = 0; !stop.load(std::memory_order_relaxed); ++iteration) {
        const int key = static_cast<int>(random() % (kKeys / kStableEvery)) * kStableEvery;
        trie.Match(stable_topic(key), result);
        int stable_found = 0;
        bool ok =
            std::is_sorted(result.subscribers().begin(), result.subscribers().end(), SessionLess);
        for (size_t i = 0; i < result.size(); ++i) {
          const Subscriber& s = result.subscribers()[i];
          ok = ok && (i == 0 || !SameSession(result.subscribers()[i - 1], s));
          if (s.session == kStableSession) {
            ++stable_found;
            ok = ok && s.generation == 0 && s.qos == (s.shard == 0 ? 1 : s.shard == 1 ? 2 : 0);
          }
        }
        if (!ok || stable_found != 3) {
          failures.fetch_add(1, std::memory_order_relaxed);
        }
        domain.Quiescent(id);
        if (iteration % 100 == id) {
          domain.Offline(id);
          std::this_thread::yield();
          domain.Online(id);
        }
        matches.fetch_add(1, std::memory_order_relaxed);
      }
      domain.Offline(id);
    });
  }

  // Two writers, each with its own churn sessions, contend for the trie's mutex.
  std::vector<std::pair<std::string, Subscriber>> live[kWriters];
  auto write = [&](uint32_t writer) {
    std::mt19937 random(7 + writer);
    for (int op = 0; op < kWriterOperations / static_cast<int>(kWriters); ++op) {
      const int key = static_cast<int>(random() % kKeys);
      const Subscriber churn{static_cast<uint16_t>(random() % 4),
                             static_cast<uint32_t>(100 * (writer + 1) + random() % 50), 0,
                             static_cast<uint8_t>(random() % 3)};
      // Phases of mostly subscribing, then mostly unsubscribing, so the tables grow and shrink.
      const bool subscribe_phase = (op / 10000) % 2 == 0;
      if (live[writer].empty() || random() % 10 < (subscribe_phase ? 8u : 2u)) {
        static constexpr const char* kShapes[] = {"s/%d/x", "s/%d/y", "s/%d/#",
                                                  "s/+/%d", "%d/x",   "s/+/x"};
        char filter[32];
        std::snprintf(filter, sizeof(filter), kShapes[random() % 6], key);
        trie.Subscribe(filter, churn);
        live[writer].emplace_back(filter, churn);
      } else {
        const size_t index = random() % live[writer].size();
        trie.Unsubscribe(live[writer][index].first, live[writer][index].second);
        live[writer][index] = live[writer].back();
        live[writer].pop_back();
      }
      if (op % 256 == 0) {
        domain.Collect();
      }
    }
  };
  std::vector<std::thread> writers;
  for (uint32_t writer = 0; writer < kWriters; ++writer) {
    writers.emplace_back(write, writer);
  }
  for (std::thread& writer : writers) {
    writer.join();
  }
  // Let the readers run over the final state too.
  const uint64_t matches_at_end = matches.load();
  while (matches.load() < matches_at_end + 1000) {
    std::this_thread::yield();
  }
  stop.store(true);
  for (std::thread& reader : readers) {
    reader.join();
  }
  EXPECT_EQ(failures.load(), 0u);
  EXPECT_GT(matches.load(), 1000u);
  for (const auto& writer_live : live) {
    for (const auto& [filter, s] : writer_live) {
      trie.Unsubscribe(filter, s);
    }
  }
  EXPECT_EQ(trie.subscription_count(), kKeys / kStableEvery + 2);
  domain.Collect();
  EXPECT_EQ(domain.pending(), 0u);
  EXPECT_GT(domain.freed_total(), 0u);
}

}  // namespace
}  // namespace ringmq::sub
