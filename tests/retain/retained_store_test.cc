// Unit tests for the retained-message store (src/retain/retained_store.h): set, replace and
// delete by empty payload (MQTT-3.3.1-5/10/11), the matching rules of §4.7 applied to retained
// topics (tests named after the rule they pin), reclamation through the epoch domain (a
// replaced message lives until every online reader passed a quiescent point), wide fan-out and
// deep topics, a differential test against a brute-force map, and a multi-threaded stress test
// (also run under ThreadSanitizer).
#include "retain/retained_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "concurrent/epoch.h"
#include "message/message.h"
#include "mqtt/topic.h"

namespace ringmq::retain {
namespace {

using message::Message;
using message::MessageRef;
using Matches = std::vector<std::string>;  // "topic=payload", sorted

MessageRef Retained(std::string_view topic, std::string_view payload) {
  return MessageRef::Create(topic, AsBytes(payload), 1, true);
}

// Records every freed message; installed by the fixtures that count frees. The hook may run on
// any thread that drops the last reference.
class FreeLog {
 public:
  static void Install() {
    Clear();
    Message::SetFreeHookForTesting(&Record);
  }
  static void Uninstall() { Message::SetFreeHookForTesting(nullptr); }
  static void Clear() {
    std::lock_guard lock(mutex_);
    freed_.clear();
  }
  static bool WasFreed(const Message* message) {
    std::lock_guard lock(mutex_);
    return std::find(freed_.begin(), freed_.end(), message) != freed_.end();
  }
  static size_t count() {
    std::lock_guard lock(mutex_);
    return freed_.size();
  }

 private:
  static void Record(const Message* message) {
    std::lock_guard lock(mutex_);
    freed_.push_back(message);
  }
  static inline std::mutex mutex_;
  static inline std::vector<const Message*> freed_;
};

// One reader (this thread), online for the lifetime of the fixture.
class RetainedStoreTest : public ::testing::Test {
 protected:
  RetainedStoreTest() : domain_(1), store_(domain_) { domain_.Online(0); }
  ~RetainedStoreTest() override { domain_.Offline(0); }

  void Set(std::string_view topic, std::string_view payload) {
    store_.Set(Retained(topic, payload));
  }
  Matches Match(std::string_view filter) {
    Matches matches;
    store_.ForEachMatch(filter, [&](Message* message) {
      matches.push_back(std::string(message->topic()) + "=" +
                        std::string(AsText(message->payload())));
    });
    domain_.Quiescent(0);
    std::sort(matches.begin(), matches.end());
    return matches;
  }
  bool MatchesTopic(std::string_view filter, std::string_view topic) {
    RetainedStoreTest::Set(topic, "x");
    const bool matched = !Match(filter).empty();
    RetainedStoreTest::Set(topic, "");
    return matched;
  }

  concurrent::EpochDomain domain_;
  RetainedStore store_;
};

// ---- §3.3.1.3 RETAIN: set, replace, delete ---------------------------------------------------

TEST_F(RetainedStoreTest, ForEachMatchWhileStopsWhereTheCallbackSaysSo) {
  for (int i = 0; i < 100; ++i) Set("w/" + std::to_string(i), "x");
  Set("w", "parent");
  for (const size_t stop_after : {size_t{1}, size_t{7}, size_t{50}, size_t{101}}) {
    size_t calls = 0;
    store_.ForEachMatchWhile("w/#", [&](Message*) { return ++calls < stop_after; });
    domain_.Quiescent(0);
    EXPECT_EQ(calls, stop_after) << "the walk goes on only while the callback returns true";
  }
  size_t calls = 0;
  store_.ForEachMatchWhile("w/#", [&](Message*) {
    ++calls;
    return true;
  });
  domain_.Quiescent(0);
  EXPECT_EQ(calls, 101u);
}

TEST_F(RetainedStoreTest, EmptyStoreMatchesNothing) {
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(Match("#"), Matches{});
  EXPECT_EQ(Match("a"), Matches{});
  EXPECT_EQ(Match("+"), Matches{});
}

TEST_F(RetainedStoreTest, SetStoresOneMessagePerTopic_MQTT_3_3_1_5) {
  Set("a/b", "1");
  Set("a/c", "2");
  EXPECT_EQ(store_.size(), 2u);
  EXPECT_EQ(Match("a/b"), Matches{"a/b=1"});
  EXPECT_EQ(Match("a/c"), Matches{"a/c=2"});
}

TEST_F(RetainedStoreTest, SetReplacesPreviousRetainedMessage_MQTT_3_3_1_5) {
  Set("a/b", "old");
  Set("a/b", "new");
  EXPECT_EQ(store_.size(), 1u);
  EXPECT_EQ(Match("a/b"), Matches{"a/b=new"});
  EXPECT_EQ(Match("#"), Matches{"a/b=new"});
}

TEST_F(RetainedStoreTest, SetKeepsQosAndContentOfTheMessage_MQTT_3_3_1_5) {
  store_.Set(MessageRef::Create("q", AsBytes("payload"), 2, true));
  int seen = 0;
  store_.ForEachMatch("q", [&](Message* message) {
    EXPECT_EQ(message->qos(), 2);
    EXPECT_EQ(AsText(message->payload()), "payload");
    ++seen;
  });
  domain_.Quiescent(0);
  EXPECT_EQ(seen, 1);
}

TEST_F(RetainedStoreTest, EmptyPayloadDeletesRetainedMessage_MQTT_3_3_1_10) {
  Set("a/b", "1");
  Set("a/c", "2");
  Set("a/b", "");
  EXPECT_EQ(store_.size(), 1u);
  EXPECT_EQ(Match("a/b"), Matches{});
  EXPECT_EQ(Match("a/#"), Matches{"a/c=2"});
}

TEST_F(RetainedStoreTest, EmptyPayloadIsNotStored_MQTT_3_3_1_11) {
  MessageRef empty = Retained("a/b", "");
  Message* raw = empty.get();
  raw->AddRef();  // keep it observable after the store dropped its handle
  store_.Set(std::move(empty));
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(Match("a/b"), Matches{});
  EXPECT_EQ(Match("#"), Matches{});
  // Never published to readers, so released at once rather than through the epoch domain.
  EXPECT_EQ(raw->references_for_testing(), 1u);
  EXPECT_EQ(domain_.pending(), 0u);
  raw->Release();
}

TEST_F(RetainedStoreTest, EmptyPayloadForUnknownTopicChangesNothing_MQTT_3_3_1_10) {
  Set("a/b/c", "1");
  Set("a/b", "");  // an inner node with nothing retained
  Set("x", "");    // absent
  Set("a/b/c/d", "");
  EXPECT_EQ(store_.size(), 1u);
  EXPECT_EQ(Match("#"), Matches{"a/b/c=1"});
}

TEST_F(RetainedStoreTest, DeletingAParentKeepsItsChildren) {
  Set("a", "parent");
  Set("a/b", "child");
  Set("a", "");
  EXPECT_EQ(Match("#"), Matches{"a/b=child"});
  Set("a/b", "");
  Set("a", "again");
  EXPECT_EQ(Match("#"), Matches{"a=again"});
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(RetainedStoreTest, DeletePrunesTheEmptyPathAndRetiresIt) {
  Set("keep", "k");
  Set("a/b/c", "1");
  domain_.Quiescent(0);
  domain_.Collect();
  ASSERT_EQ(domain_.pending(), 0u);
  Set("a/b/c", "");
  // The message and the nodes c, b, a at least (their emptied child tables too).
  EXPECT_GE(domain_.pending(), 4u);
  domain_.Quiescent(0);
  domain_.Collect();
  EXPECT_EQ(domain_.pending(), 0u);
  EXPECT_EQ(Match("#"), Matches{"keep=k"});
  // The pruned path is rebuilt on demand.
  Set("a/b/c", "2");
  EXPECT_EQ(Match("a/+/c"), Matches{"a/b/c=2"});
}

// ---- §4.7 topic filters applied to retained topics ----------------------------------------

TEST_F(RetainedStoreTest, HashMatchesParentLevel_MQTT_4_7_1_2) {
  EXPECT_TRUE(MatchesTopic("sport/#", "sport"));
  EXPECT_TRUE(MatchesTopic("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_FALSE(MatchesTopic("sport/tennis/#", "sport"));
}

TEST_F(RetainedStoreTest, HashMatchesAllLevelsBelow_MQTT_4_7_1_2) {
  Set("sport", "0");
  Set("sport/tennis", "1");
  Set("sport/tennis/player1", "2");
  Set("sport/tennis/player1/score/wimbledon", "3");
  Set("sport/", "4");
  Set("sports", "5");
  EXPECT_EQ(Match("sport/#"), (Matches{"sport/=4", "sport/tennis/player1/score/wimbledon=3",
                                       "sport/tennis/player1=2", "sport/tennis=1", "sport=0"}));
  EXPECT_EQ(Match("#"),
            (Matches{"sport/=4", "sport/tennis/player1/score/wimbledon=3", "sport/tennis/player1=2",
                     "sport/tennis=1", "sport=0", "sports=5"}));
  EXPECT_EQ(Match("sport/tennis/#"), (Matches{"sport/tennis/player1/score/wimbledon=3",
                                              "sport/tennis/player1=2", "sport/tennis=1"}));
}

TEST_F(RetainedStoreTest, PlusMatchesExactlyOneLevel_MQTT_4_7_1_3) {
  Set("sport/tennis/player1", "1");
  Set("sport/tennis/player2", "2");
  Set("sport/tennis/player1/ranking", "3");
  Set("sport/badminton/player1", "4");
  EXPECT_EQ(Match("sport/tennis/+"), (Matches{"sport/tennis/player1=1", "sport/tennis/player2=2"}));
  EXPECT_EQ(Match("sport/+/player1"),
            (Matches{"sport/badminton/player1=4", "sport/tennis/player1=1"}));
  EXPECT_EQ(Match("sport/+"), Matches{});
  EXPECT_EQ(Match("+/+/+/+"), Matches{"sport/tennis/player1/ranking=3"});
  EXPECT_EQ(Match("+/tennis/#"), (Matches{"sport/tennis/player1/ranking=3",
                                          "sport/tennis/player1=1", "sport/tennis/player2=2"}));
}

TEST_F(RetainedStoreTest, PlusMatchesEmptyLevel_MQTT_4_7_1_3) {
  EXPECT_TRUE(MatchesTopic("+/+", "/finance"));
  EXPECT_TRUE(MatchesTopic("/+", "/finance"));
  EXPECT_FALSE(MatchesTopic("+", "/finance"));
  EXPECT_TRUE(MatchesTopic("a/+/b", "a//b"));
  EXPECT_TRUE(MatchesTopic("+/+/+", "//"));
  EXPECT_TRUE(MatchesTopic("a/+", "a/"));
  EXPECT_FALSE(MatchesTopic("a/+", "a"));
}

TEST_F(RetainedStoreTest, DollarTopicsNotMatchedByLeadingWildcard_MQTT_4_7_2_1) {
  Set("$SYS/broker/uptime", "1");
  Set("$SYS", "2");
  Set("normal/topic", "3");
  EXPECT_EQ(Match("#"), Matches{"normal/topic=3"});
  EXPECT_EQ(Match("+/broker/uptime"), Matches{});
  EXPECT_EQ(Match("+/#"), Matches{"normal/topic=3"});
  EXPECT_EQ(Match("+"), Matches{});
  EXPECT_EQ(Match("$SYS/#"), (Matches{"$SYS/broker/uptime=1", "$SYS=2"}));
  EXPECT_EQ(Match("$SYS/+/uptime"), Matches{"$SYS/broker/uptime=1"});
  EXPECT_EQ(Match("$SYS/broker/uptime"), Matches{"$SYS/broker/uptime=1"});
  EXPECT_EQ(Match("$SYS"), Matches{"$SYS=2"});
}

TEST_F(RetainedStoreTest, DollarOnlyMattersInTheFirstLevel_MQTT_4_7_2_1) {
  EXPECT_TRUE(MatchesTopic("a/+", "a/$x"));
  EXPECT_TRUE(MatchesTopic("a/#", "a/$x/y"));
  EXPECT_TRUE(MatchesTopic("+/$x", "a/$x"));
  EXPECT_TRUE(MatchesTopic("#", "a$"));
}

TEST_F(RetainedStoreTest, LevelsCompareByteExactly_MQTT_4_7_3) {
  EXPECT_FALSE(MatchesTopic("ACCOUNTS", "Accounts"));
  EXPECT_FALSE(MatchesTopic("a/b", "a/b "));
  EXPECT_TRUE(MatchesTopic("a b/c", "a b/c"));
  EXPECT_TRUE(MatchesTopic("\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9"));
  EXPECT_FALSE(MatchesTopic("a/bc", "a/b"));
}

TEST_F(RetainedStoreTest, LeadingSlashMakesADistinctTopic_MQTT_4_7_3) {
  Set("finance", "1");
  Set("/finance", "2");
  EXPECT_EQ(Match("finance"), Matches{"finance=1"});
  EXPECT_EQ(Match("/finance"), Matches{"/finance=2"});
  EXPECT_EQ(Match("/#"), Matches{"/finance=2"});
}

TEST_F(RetainedStoreTest, DeepestTopicsMatch) {
  std::string deep = "x";
  std::string plus_filter = "+";
  for (size_t level = 1; level < mqtt::kMaxTopicLevels; ++level) {
    deep += "/x";
    plus_filter += "/+";
  }
  Set(deep, "deep");
  Set("x", "top");
  EXPECT_EQ(Match(deep), Matches{deep + "=deep"});
  EXPECT_EQ(Match(plus_filter), Matches{deep + "=deep"});
  EXPECT_EQ(Match("#"), (Matches{deep + "=deep", "x=top"}));
  EXPECT_EQ(Match("x/#"), (Matches{deep + "=deep", "x=top"}));
  Set(deep, "");
  EXPECT_EQ(Match("#"), Matches{"x=top"});
}

TEST_F(RetainedStoreTest, LongLevels) {
  const std::string long_level(1000, 'l');
  Set("a/" + long_level + "/b", "1");
  Set("a/" + long_level + "x/b", "2");
  EXPECT_EQ(Match("a/" + long_level + "/b"), Matches{"a/" + long_level + "/b=1"});
  EXPECT_EQ(Match("a/+/b").size(), 2u);
}

// ---- Wide fan-out: hash tables that grow and shrink -----------------------------------------

TEST_F(RetainedStoreTest, WideFanOutGrowsAndShrinks) {
  constexpr int kChildren = 100'000;
  for (int i = 0; i < kChildren; ++i) {
    Set("p/" + std::to_string(i) + "/v", "x");
  }
  EXPECT_EQ(store_.size(), size_t{kChildren});
  for (int i = 0; i < kChildren; i += 997) {
    EXPECT_EQ(Match("p/" + std::to_string(i) + "/v").size(), 1u) << i;
  }
  size_t count = 0;
  store_.ForEachMatch("p/+/v", [&](Message*) { ++count; });
  EXPECT_EQ(count, size_t{kChildren});
  count = 0;
  store_.ForEachMatch("p/+/w", [&](Message*) { ++count; });
  EXPECT_EQ(count, 0u);
  // Delete all but every hundredth; the survivors stay reachable while the table shrinks.
  for (int i = 0; i < kChildren; ++i) {
    if (i % 100 != 0) {
      Set("p/" + std::to_string(i) + "/v", "");
    }
    if (i % 4096 == 0) {
      domain_.Quiescent(0);
    }
  }
  EXPECT_EQ(store_.size(), size_t{kChildren / 100});
  count = 0;
  store_.ForEachMatch("#", [&](Message* message) {
    EXPECT_EQ(std::stoi(std::string(message->topic().substr(2))) % 100, 0);
    ++count;
  });
  EXPECT_EQ(count, size_t{kChildren / 100});
  domain_.Quiescent(0);
  domain_.Collect();
  EXPECT_EQ(domain_.pending(), 0u);
}

// ---- Reclamation: references and the epoch domain --------------------------------------------

class RetainedStoreReclaimTest : public ::testing::Test {
 protected:
  void SetUp() override { FreeLog::Install(); }
  void TearDown() override { FreeLog::Uninstall(); }
};

TEST_F(RetainedStoreReclaimTest, ReplacedMessageFreedOnlyAfterEveryOnlineReaderPassedQuiescent) {
  concurrent::EpochDomain domain(2);
  RetainedStore store(domain);
  domain.Online(0);
  domain.Online(1);
  store.Set(Retained("t", "old"));
  Message* old = nullptr;
  store.ForEachMatch("t", [&](Message* message) { old = message; });  // reader 0
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->references_for_testing(), 1u);  // the store's own

  store.Set(Retained("t", "new"));
  domain.Collect();
  EXPECT_FALSE(FreeLog::WasFreed(old));
  EXPECT_EQ(AsText(old->payload()), "old");  // reader 0 may still use what it was handed
  domain.Quiescent(0);
  domain.Collect();
  EXPECT_FALSE(FreeLog::WasFreed(old));  // reader 1 has not passed a quiescent point yet
  domain.Quiescent(1);
  domain.Collect();
  EXPECT_TRUE(FreeLog::WasFreed(old));
  domain.Offline(0);
  domain.Offline(1);
}

TEST_F(RetainedStoreReclaimTest, DeletedMessageFreedOnlyAfterEveryOnlineReaderPassedQuiescent) {
  concurrent::EpochDomain domain(2);
  RetainedStore store(domain);
  domain.Online(0);
  domain.Online(1);
  MessageRef first = Retained("a/b", "1");
  const Message* deleted = first.get();
  store.Set(std::move(first));
  store.Set(Retained("a/b", ""));
  EXPECT_EQ(store.size(), 0u);
  domain.Quiescent(0);
  domain.Collect();
  EXPECT_FALSE(FreeLog::WasFreed(deleted));
  domain.Quiescent(1);
  domain.Collect();
  EXPECT_TRUE(FreeLog::WasFreed(deleted));
  domain.Offline(0);
  domain.Offline(1);
}

TEST_F(RetainedStoreReclaimTest, OfflineReaderDoesNotHoldUpReclamation) {
  concurrent::EpochDomain domain(2);
  RetainedStore store(domain);
  domain.Online(0);  // reader 1 stays offline
  MessageRef first = Retained("t", "1");
  const Message* replaced = first.get();
  store.Set(std::move(first));
  store.Set(Retained("t", "2"));
  domain.Quiescent(0);
  domain.Collect();
  EXPECT_TRUE(FreeLog::WasFreed(replaced));
  domain.Offline(0);
}

TEST_F(RetainedStoreReclaimTest, SharedReferenceOutlivesReplacement) {
  concurrent::EpochDomain domain(1);
  RetainedStore store(domain);
  domain.Online(0);
  store.Set(Retained("t", "old"));
  MessageRef taken;
  store.ForEachMatch("t", [&](Message* message) { taken = MessageRef::Share(message); });
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->references_for_testing(), 2u);  // the store's and ours
  store.Set(Retained("t", "new"));
  domain.Quiescent(0);
  domain.Collect();
  // The store's reference is gone; ours keeps the message.
  EXPECT_EQ(taken->references_for_testing(), 1u);
  EXPECT_FALSE(FreeLog::WasFreed(taken.get()));
  EXPECT_EQ(AsText(taken->payload()), "old");
  const Message* raw = taken.get();
  taken.reset();
  EXPECT_TRUE(FreeLog::WasFreed(raw));
  domain.Offline(0);
}

TEST_F(RetainedStoreReclaimTest, DestructorReleasesEveryRetainedMessage) {
  concurrent::EpochDomain domain(1);
  {
    RetainedStore store(domain);
    for (int i = 0; i < 1000; ++i) {
      store.Set(Retained("d/" + std::to_string(i % 300) + "/" + std::to_string(i), "x"));
    }
    store.Set(Retained("d", "parent"));
    EXPECT_EQ(store.size(), 1001u);
    EXPECT_EQ(FreeLog::count(), 0u);
  }
  EXPECT_EQ(FreeLog::count(), 1001u);
}

// ---- Differential test against a brute-force map ---------------------------------------------

// Straight from §4.7: compare level by level. Simple enough to be obviously right.
bool FilterMatchesTopic(std::string_view filter, std::string_view topic) {
  if (topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#'))) {
    return false;  // MQTT-4.7.2-1
  }
  auto split = [](std::string_view text) {
    std::vector<std::string_view> levels;
    size_t begin = 0;
    while (true) {
      const size_t slash = text.find('/', begin);
      if (slash == std::string_view::npos) {
        levels.push_back(text.substr(begin));
        return levels;
      }
      levels.push_back(text.substr(begin, slash - begin));
      begin = slash + 1;
    }
  };
  const std::vector<std::string_view> f = split(filter);
  const std::vector<std::string_view> t = split(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") {
      return true;  // the parent level and everything below
    }
    if (i == t.size()) {
      return false;
    }
    if (f[i] != "+" && f[i] != t[i]) {
      return false;
    }
  }
  return f.size() == t.size();
}

// A random topic name or filter (never empty: topics and filters have at least one byte).
std::string RandomPath(std::mt19937& random, bool filter) {
  static constexpr const char* kLevels[] = {"a", "b", "c", "", "$s", "a b", "long-level-name"};
  const int count = 1 + static_cast<int>(random() % 4);
  std::string path;
  for (int i = 0; i < count; ++i) {
    if (i > 0) {
      path += '/';
    }
    const uint32_t pick = random() % (filter ? 10 : 7);
    if (pick < 7) {
      path += kLevels[pick];
    } else if (pick < 9) {
      path += '+';
    } else {
      path += '#';
      break;
    }
  }
  return path.empty() ? RandomPath(random, filter) : path;
}

TEST_F(RetainedStoreTest, DifferentialAgainstBruteForceMap) {
  std::mt19937 random(20240601);
  std::map<std::string, std::string> reference;
  for (int op = 0; op < 20'000; ++op) {
    const std::string topic = RandomPath(random, /*filter=*/false);
    const std::string payload = random() % 4 == 0 ? "" : std::to_string(op);
    Set(topic, payload);
    if (payload.empty()) {
      reference.erase(topic);
    } else {
      reference[topic] = payload;
    }
    ASSERT_EQ(store_.size(), reference.size());
    uint64_t bytes = 0;
    for (const auto& [t, p] : reference) bytes += t.size() + p.size();
    ASSERT_EQ(store_.bytes(), bytes);
    if (op % 50 == 0) {
      const std::string filter = RandomPath(random, /*filter=*/true);
      Matches expected;
      for (const auto& [t, p] : reference) {
        if (FilterMatchesTopic(filter, t)) {
          expected.push_back(t + "=" + p);
        }
      }
      std::sort(expected.begin(), expected.end());
      ASSERT_EQ(Match(filter), expected) << "filter '" << filter << "' after op " << op;
    }
    if (op % 512 == 0) {
      domain_.Collect();
    }
  }
}

// ---- Bounds: max_messages and max_bytes (charged topic + payload) ---------------------------

class RetainedStoreBoundsTest : public ::testing::Test {
 protected:
  explicit RetainedStoreBoundsTest(RetainedLimits limits = {.max_messages = 3, .max_bytes = 100})
      : domain_(1), store_(domain_, limits) {
    domain_.Online(0);
  }
  ~RetainedStoreBoundsTest() override { domain_.Offline(0); }

  SetResult Set(std::string_view topic, std::string_view payload) {
    return store_.Set(Retained(topic, payload));
  }
  Matches Match(std::string_view filter) {
    Matches matches;
    store_.ForEachMatch(filter, [&](Message* message) {
      matches.push_back(std::string(message->topic()) + "=" +
                        std::string(AsText(message->payload())));
    });
    domain_.Quiescent(0);
    std::sort(matches.begin(), matches.end());
    return matches;
  }

  concurrent::EpochDomain domain_;
  RetainedStore store_;
};

TEST_F(RetainedStoreBoundsTest, NewTopicBeyondMaxMessagesIsRefused) {
  EXPECT_EQ(Set("a", "1"), SetResult::kStored);
  EXPECT_EQ(Set("b", "1"), SetResult::kStored);
  EXPECT_EQ(Set("c", "1"), SetResult::kStored);
  EXPECT_EQ(Set("d", "1"), SetResult::kRefused);
  EXPECT_EQ(store_.size(), 3u);
  EXPECT_EQ(store_.bytes(), 6u);
  EXPECT_EQ(Match("#"), (Matches{"a=1", "b=1", "c=1"}));
}

TEST_F(RetainedStoreBoundsTest, ReplacementNeedsNoRoomInTheCount) {
  Set("a", "1");
  Set("b", "1");
  Set("c", "1");
  EXPECT_EQ(Set("b", "22"), SetResult::kStored);
  EXPECT_EQ(store_.size(), 3u);
  EXPECT_EQ(store_.bytes(), 7u);
  EXPECT_EQ(Match("b"), (Matches{"b=22"}));
}

TEST_F(RetainedStoreBoundsTest, DeleteAlwaysWorksAndMakesRoom) {
  Set("a", "1");
  Set("b", "1");
  Set("c", "1");
  EXPECT_EQ(Set("b", ""), SetResult::kDeleted);
  EXPECT_EQ(store_.size(), 2u);
  EXPECT_EQ(store_.bytes(), 4u);
  EXPECT_EQ(Set("d", "1"), SetResult::kStored);
  EXPECT_EQ(Set("unknown", ""), SetResult::kDeleted);  // nothing to delete: nothing changes
  EXPECT_EQ(store_.size(), 3u);
}

TEST_F(RetainedStoreBoundsTest, NewTopicBeyondMaxBytesIsRefused) {
  EXPECT_EQ(Set("t", std::string(90, 'x')), SetResult::kStored);  // 91 bytes
  EXPECT_EQ(Set("u/v/w", "12345"), SetResult::kRefused);          // 91 + 10 > 100
  EXPECT_EQ(Set("u/v/w", "123"), SetResult::kStored);             // 91 + 8 <= 100
  EXPECT_EQ(store_.bytes(), 99u);
  EXPECT_EQ(Match("u/#"), (Matches{"u/v/w=123"}));
}

TEST_F(RetainedStoreBoundsTest, ExactlyMaxBytesFits) {
  EXPECT_EQ(Set("t", std::string(99, 'x')), SetResult::kStored);  // 1 + 99 = 100
  EXPECT_EQ(store_.bytes(), 100u);
  EXPECT_EQ(Set("u", "x"), SetResult::kRefused);
  EXPECT_EQ(Set("t", std::string(100, 'x')), SetResult::kRefused) << "101 bytes alone";
}

TEST_F(RetainedStoreBoundsTest, ReplacementThatDoesNotFitIsRefusedAndDeletesTheOldValue) {
  Set("a", std::string(49, 'x'));  // 50
  Set("b", std::string(29, 'x'));  // 30
  // b's 30 bytes are given back: 50 + 50 = 100 fits.
  EXPECT_EQ(Set("b", std::string(49, 'y')), SetResult::kStored);
  EXPECT_EQ(store_.bytes(), 100u);
  EXPECT_EQ(Set("b", std::string(50, 'z')), SetResult::kRefused);
  // A new subscriber must not get b's older value.
  EXPECT_EQ(Match("b"), Matches{});
  EXPECT_EQ(store_.size(), 1u);
  EXPECT_EQ(store_.bytes(), 50u);
}

class RetainedStoreNothingRetainedTest : public RetainedStoreBoundsTest {
 protected:
  RetainedStoreNothingRetainedTest()
      : RetainedStoreBoundsTest({.max_messages = 0, .max_bytes = 1000}) {}
};

TEST_F(RetainedStoreNothingRetainedTest, MaxMessagesZeroRetainsNothing) {
  EXPECT_EQ(Set("a", "1"), SetResult::kRefused);
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(Match("#"), Matches{});
}

// ---- Concurrency ----------------------------------------------------------------------------

// One writer replaces, deletes and re-creates topics while two readers match and take
// references. Stable topics are replaced but never deleted, so every match must report each of
// them exactly once, with a payload that names its topic.
TEST(RetainedStoreStressTest, ReadersMatchAndShareWhileWriterSetsAndDeletes) {
  constexpr uint32_t kReaders = 2;
  constexpr int kStable = 40;
  constexpr int kChurnKeys = 500;
  constexpr int kWriterOperations = 40'000;
  std::atomic<uint64_t> frees{0};
  static std::atomic<uint64_t>* frees_counter = nullptr;
  frees_counter = &frees;
  Message::SetFreeHookForTesting(
      [](const Message*) { frees_counter->fetch_add(1, std::memory_order_relaxed); });
  std::atomic<uint64_t> created{0};
  auto make = [&](const std::string& topic, std::string_view payload) {
    created.fetch_add(1, std::memory_order_relaxed);
    return Retained(topic, payload);
  };
  auto stable_topic = [](int key) { return "s/" + std::to_string(key) + "/v"; };
  {
    concurrent::EpochDomain domain(kReaders);
    RetainedStore store(domain);
    for (int key = 0; key < kStable; ++key) {
      store.Set(make(stable_topic(key), stable_topic(key) + "#0"));
    }

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> failures{0};
    std::atomic<uint64_t> matches{0};
    std::vector<std::thread> readers;
    for (uint32_t id = 0; id < kReaders; ++id) {
      readers.emplace_back([&, id] {
        static constexpr const char* kFilters[] = {"s/+/v", "s/#", "#", "c/+/x", "+/+/+"};
        std::vector<MessageRef> held;  // references kept across quiescent points
        domain.Online(id);
        for (uint64_t iteration = 0; !stop.load(std::memory_order_relaxed); ++iteration) {
          const std::string_view filter = kFilters[iteration % 5];
          int stable_seen = 0;
          store.ForEachMatch(filter, [&](Message* message) {
            // The payload starts with the topic: the bytes must be intact.
            const std::string_view payload = AsText(message->payload());
            if (payload.substr(0, payload.find('#')) != message->topic()) {
              failures.fetch_add(1, std::memory_order_relaxed);
            }
            stable_seen += message->topic().starts_with("s/") ? 1 : 0;
            if (held.size() < 64) {
              held.push_back(MessageRef::Share(message));
            }
          });
          const bool stable_expected =
              filter.starts_with("s/") || filter == "#" || filter[0] == '+';
          if (stable_expected && stable_seen != kStable) {
            failures.fetch_add(1, std::memory_order_relaxed);
          }
          domain.Quiescent(id);
          if (iteration % 7 == id) {
            held.clear();
          }
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

    std::mt19937 random(7);
    for (int op = 0; op < kWriterOperations; ++op) {
      const uint32_t pick = random() % 10;
      if (pick == 0) {
        const std::string topic = stable_topic(static_cast<int>(random() % kStable));
        store.Set(make(topic, topic + "#" + std::to_string(op)));
      } else {
        // Phases of mostly setting, then mostly deleting, so the tables grow and shrink.
        const bool set_phase = (op / 8000) % 2 == 0;
        const std::string topic = "c/" + std::to_string(random() % kChurnKeys) + "/x";
        const bool set = random() % 10 < (set_phase ? 8u : 2u);
        store.Set(make(topic, set ? topic + "#" + std::to_string(op) : ""));
      }
      if (op % 256 == 0) {
        domain.Collect();
      }
    }
    const uint64_t matches_at_end = matches.load();
    while (matches.load() < matches_at_end + 200) {
      std::this_thread::yield();
    }
    stop.store(true);
    for (std::thread& reader : readers) {
      reader.join();
    }
    EXPECT_EQ(failures.load(), 0u);
    EXPECT_GT(matches.load(), 200u);
    domain.Collect();
    EXPECT_EQ(domain.pending(), 0u);
  }
  // Store and domain destroyed: every message ever created was freed exactly once.
  EXPECT_EQ(frees.load(), created.load());
  Message::SetFreeHookForTesting(nullptr);
}

}  // namespace
}  // namespace ringmq::retain

namespace ringmq::retain {
namespace {

TEST(RetainedStoreChargeTest, Mqtt5PropertiesCountAgainstMaxRetainedBytes) {
  const std::vector<uint8_t> properties = {0x03, 0x00, 0x03, 'a', 'b', 'c'};  // Content Type
  message::MessageRef with = message::MessageRef::Create(
      "t", AsBytes("pp"), 0, true, {}, message::Mqtt5Fields{.properties = properties});
  message::MessageRef without = message::MessageRef::Create("t", AsBytes("pp"), 0, true);
  EXPECT_EQ(RetainedStore::Charge(*without), 3u);
  EXPECT_EQ(RetainedStore::Charge(*with), 3u + properties.size());
}

}  // namespace
}  // namespace ringmq::retain
