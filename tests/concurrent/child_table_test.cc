// Unit tests for the shared child table (src/concurrent/child_table.h): slot encoding, level keys,
// insert/find/erase, tombstones on the probe sequence, growth and shrink, retirement of replaced
// tables through the EpochDomain, and a reader running concurrently with a churning writer (run
// it under ThreadSanitizer and AddressSanitizer as well).
#include "concurrent/child_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "concurrent/epoch.h"

namespace ringmq::concurrent {
namespace {

struct TestNode {
  std::string name;
  std::string_view level() const { return name; }
};
static_assert(alignof(TestNode) >= 8);

using Map = ChildMap<TestNode>;
using Table = ChildTable<TestNode>;

constexpr uint64_t kSeed = 0x5eed5eed12345678ULL;

class ChildTableTest : public ::testing::Test {
 protected:
  ~ChildTableTest() override {
    map_.DestroyNow([](TestNode*) {});
  }

  TestNode* MakeNode(std::string name) {
    nodes_.push_back(TestNode{std::move(name)});
    return &nodes_.back();
  }
  TestNode* Insert(std::string name) {
    TestNode* node = MakeNode(std::move(name));
    map_.Insert(node, hasher_(node->level()), hasher_, epoch_);
    return node;
  }
  const TestNode* Find(std::string_view level) const { return map_.Find(level, hasher_(level)); }
  // The slot index a level's probe sequence starts at in a table of `capacity`.
  uint32_t HomeSlot(std::string_view level, uint32_t capacity) const {
    return static_cast<uint32_t>(hasher_(level)) & (capacity - 1);
  }
  // `count` distinct levels whose probe sequences all start at slot `home` of a table of
  // `capacity`: they collide and are placed one after the other.
  std::vector<std::string> Colliding(size_t count, uint32_t home, uint32_t capacity) const {
    std::vector<std::string> levels;
    for (int i = 0; levels.size() < count; ++i) {
      std::string level = "k" + std::to_string(i);
      if (HomeSlot(level, capacity) == home) {
        levels.push_back(std::move(level));
      }
    }
    return levels;
  }

  EpochDomain epoch_{1};  // one reader, offline unless a test brings it online
  LevelHasher hasher_{kSeed};
  std::deque<TestNode> nodes_;  // stable addresses
  Map map_;
};

TEST(ChildSlotTest, PackRoundTripsPointerAndTag) {
  alignas(8) static TestNode node{"x"};
  const uint64_t hash = 0xabcd'0000'0000'1234ULL;
  const uint64_t slot = ChildSlot::Pack(&node, hash);
  EXPECT_TRUE(ChildSlot::IsLive(slot));
  EXPECT_EQ(ChildSlot::NodeOf<TestNode>(slot), &node);
  EXPECT_TRUE(ChildSlot::TagMatches(slot, hash));
  EXPECT_FALSE(ChildSlot::TagMatches(slot, hash ^ (uint64_t{1} << 50)));
}

TEST(ChildSlotTest, EmptyAndTombstoneNeverMatchATag) {
  EXPECT_FALSE(ChildSlot::IsLive(ChildSlot::kEmpty));
  EXPECT_FALSE(ChildSlot::IsLive(ChildSlot::kTombstone));
  // The live bit is forced into every tag, so even a hash whose top bits are zero differs.
  for (const uint64_t hash : {uint64_t{0}, uint64_t{1}, ~uint64_t{0}}) {
    EXPECT_FALSE(ChildSlot::TagMatches(ChildSlot::kEmpty, hash));
    EXPECT_FALSE(ChildSlot::TagMatches(ChildSlot::kTombstone, hash));
  }
}

TEST(LevelHasherTest, SameSeedSameHashOtherSeedOtherHash) {
  const LevelHasher a(kSeed);
  const LevelHasher b(kSeed);
  const LevelHasher c(kSeed + 1);
  EXPECT_EQ(a.seed(), kSeed);
  int differing = 0;
  // Every length class of the hash: empty, 1..3, 4..7, 8..15, 16, and the 16-byte blocks.
  for (size_t size = 0; size <= 70; ++size) {
    const std::string level(size, 'q');
    EXPECT_EQ(a(level), b(level)) << size;
    differing += a(level) != c(level) ? 1 : 0;
  }
  EXPECT_EQ(differing, 71);
}

TEST(LevelHasherTest, EveryByteAffectsTheHash) {
  const LevelHasher hasher(kSeed);
  for (size_t size = 1; size <= 40; ++size) {
    const std::string base(size, 'a');
    std::set<uint64_t> hashes = {hasher(base)};
    for (size_t i = 0; i < size; ++i) {
      std::string changed = base;
      changed[i] = 'b';
      hashes.insert(hasher(changed));
    }
    EXPECT_EQ(hashes.size(), size + 1) << "size " << size;
  }
}

TEST(LevelEqualsTest, AgreesWithByteComparisonAtEverySize) {
  for (size_t size = 0; size <= 40; ++size) {
    std::string a(size, 'z');
    EXPECT_TRUE(LevelEquals(a, std::string(a)));
    EXPECT_FALSE(LevelEquals(a, a + "z"));
    for (size_t i = 0; i < size; ++i) {
      std::string b = a;
      b[i] = 'y';
      EXPECT_FALSE(LevelEquals(a, b)) << "size " << size << " at " << i;
    }
  }
}

TEST_F(ChildTableTest, EmptyMapHasNoTable) {
  EXPECT_TRUE(map_.empty());
  EXPECT_EQ(map_.table(), nullptr);
  EXPECT_EQ(map_.size(), 0u);
  EXPECT_EQ(Find("a"), nullptr);
}

TEST_F(ChildTableTest, InsertThenFind) {
  TestNode* a = Insert("a");
  ASSERT_NE(map_.table(), nullptr);
  EXPECT_EQ(map_.table()->capacity(), Map::kMinCapacity);
  EXPECT_EQ(map_.size(), 1u);
  EXPECT_EQ(Find("a"), a);
  EXPECT_EQ(map_.FindForWrite("a", hasher_("a")), a);
  EXPECT_EQ(Find("b"), nullptr);
  EXPECT_EQ(Find(""), nullptr);
  TestNode* empty = Insert("");  // an empty level is a key like any other ("/a")
  EXPECT_EQ(Find(""), empty);
  EXPECT_EQ(Find("a"), a);
}

TEST_F(ChildTableTest, SimilarLevelsAreDistinctKeys) {
  // Same length and mostly the same bytes: the tag or the byte comparison must tell them apart.
  std::vector<TestNode*> inserted;
  for (int i = 0; i < 200; ++i) {
    inserted.push_back(Insert("sensor-" + std::to_string(1000 + i)));
  }
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(Find("sensor-" + std::to_string(1000 + i)), inserted[i]);
  }
  EXPECT_EQ(Find("sensor-0999"), nullptr);
  EXPECT_EQ(Find("sensor-1200"), nullptr);
}

TEST_F(ChildTableTest, CollidingLevelsProbeLinearly) {
  const uint32_t capacity = Map::kMinCapacity;
  const uint32_t home = 5;
  const std::vector<std::string> levels = Colliding(3, home, capacity);
  std::vector<TestNode*> nodes;
  for (const std::string& level : levels) {
    nodes.push_back(Insert(level));
  }
  const Table* table = map_.table();
  ASSERT_EQ(table->capacity(), capacity);
  // Linear probing wraps around: slots 5, 6, 7.
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(table->LiveChild((home + i) & (capacity - 1)), nodes[i]);
  }
  EXPECT_EQ(table->used(), 3u);
  EXPECT_EQ(table->live(), 3u);
}

TEST_F(ChildTableTest, EraseLeavesATombstoneThatKeepsTheProbeSequence) {
  const uint32_t capacity = Map::kMinCapacity;
  const uint32_t home = 7;  // the sequence wraps: slots 7, 0, 1
  const std::vector<std::string> levels = Colliding(4, home, capacity);
  TestNode* first = Insert(levels[0]);
  TestNode* second = Insert(levels[1]);
  TestNode* third = Insert(levels[2]);
  const Table* table = map_.table();

  map_.Erase(first, hasher_, epoch_);
  EXPECT_EQ(map_.table(), table);  // no rebuild: 3 used of 8 slots
  EXPECT_EQ(table->LiveChild(home), nullptr);
  EXPECT_EQ(table->live(), 2u);
  EXPECT_EQ(table->used(), 3u);  // the tombstone still counts toward the load
  // Keys placed after the erased one are still found: the probe passes the tombstone.
  EXPECT_EQ(Find(levels[0]), nullptr);
  EXPECT_EQ(Find(levels[1]), second);
  EXPECT_EQ(Find(levels[2]), third);

  map_.Erase(second, hasher_, epoch_);
  EXPECT_EQ(Find(levels[2]), third);  // two tombstones in a row before it

  // An insert on the same sequence reuses the first tombstone; the load does not grow.
  TestNode* fourth = Insert(levels[3]);
  EXPECT_EQ(table->LiveChild(home), fourth);
  EXPECT_EQ(table->live(), 2u);
  EXPECT_EQ(table->used(), 3u);
  EXPECT_EQ(Find(levels[3]), fourth);
  EXPECT_EQ(Find(levels[2]), third);
  EXPECT_EQ(Find(levels[1]), nullptr);
}

TEST_F(ChildTableTest, ErasingTheLastChildFreesTheTable) {
  TestNode* a = Insert("a");
  map_.Erase(a, hasher_, epoch_);
  EXPECT_TRUE(map_.empty());
  EXPECT_EQ(map_.table(), nullptr);
  EXPECT_EQ(Find("a"), nullptr);
  // Retired, not freed in place; the reader is offline, so the next Collect frees it.
  EXPECT_EQ(epoch_.pending(), 1u);
  EXPECT_EQ(epoch_.Collect(), 1u);
  // And the next insert starts a fresh table.
  TestNode* b = Insert("b");
  EXPECT_EQ(Find("b"), b);
  EXPECT_EQ(map_.table()->capacity(), Map::kMinCapacity);
}

TEST_F(ChildTableTest, GrowsKeepingLoadAtMostHalf) {
  uint32_t last_capacity = 0;
  int rebuilds = 0;
  std::vector<TestNode*> inserted;
  for (int i = 0; i < 5000; ++i) {
    inserted.push_back(Insert("n" + std::to_string(i)));
    const Table* table = map_.table();
    ASSERT_LE(2 * table->used(), table->capacity()) << i;
    ASSERT_EQ(table->live(), static_cast<uint32_t>(i + 1));
    if (table->capacity() != last_capacity) {
      // A rebuild sizes for a load of at most 1/3.
      EXPECT_EQ(table->capacity(), Map::CapacityFor(i + 1)) << i;
      EXPECT_LE(3 * table->live(), table->capacity()) << i;
      last_capacity = table->capacity();
      ++rebuilds;
    }
  }
  // Doubling from 8: a table of c slots is rebuilt at c / 2 + 1 children into
  // bit_ceil(3 x (c / 2 + 1)) = 2c slots; the last at 4097 children, into 16384 slots.
  EXPECT_EQ(last_capacity, 16384u);
  EXPECT_EQ(rebuilds, 12);  // 8 (the first table), then 16 ... 16384
  for (int i = 0; i < 5000; ++i) {
    ASSERT_EQ(Find("n" + std::to_string(i)), inserted[i]) << i;
  }
  EXPECT_EQ(map_.size(), 5000u);
}

TEST_F(ChildTableTest, ShrinksWhenSparseAndFindsTheRest) {
  std::vector<TestNode*> inserted;
  for (int i = 0; i < 1000; ++i) {
    inserted.push_back(Insert("n" + std::to_string(i)));
  }
  const uint32_t full_capacity = map_.table()->capacity();
  for (int i = 0; i < 990; ++i) {
    map_.Erase(inserted[i], hasher_, epoch_);
    const Table* table = map_.table();
    // Shrink rule: a table above the minimum holds at least capacity / 8 live children.
    ASSERT_TRUE(table->capacity() == Map::kMinCapacity || 8 * table->live() >= table->capacity())
        << i;
    ASSERT_LE(2 * table->used(), table->capacity()) << i;
  }
  EXPECT_EQ(full_capacity, 2048u);
  // Halving: a table of c slots shrinks when live < c / 8; the last shrink was at 15 children,
  // from 128 slots into CapacityFor(15) = 64. The rebuild dropped the tombstones; the 5 erases
  // after it left 5 new ones.
  EXPECT_EQ(map_.table()->capacity(), 64u);
  EXPECT_EQ(map_.table()->live(), 10u);
  EXPECT_EQ(map_.table()->used(), 15u);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(Find("n" + std::to_string(i)), i < 990 ? nullptr : inserted[i]) << i;
  }
}

TEST_F(ChildTableTest, TombstonesTriggerARebuildThatDropsThem) {
  TestNode* stays = Insert("stays");
  const Table* previous = map_.table();
  int rebuilds = 0;
  for (int i = 0; i < 200; ++i) {
    TestNode* temporary = Insert("t" + std::to_string(i));
    const Table* table = map_.table();
    ASSERT_LE(2 * table->used(), table->capacity());
    ASSERT_EQ(table->capacity(), Map::kMinCapacity);  // never more than two live children
    if (table != previous) {
      ++rebuilds;
      EXPECT_LE(table->used(), 2u);  // only the two live slots survive a rebuild
      previous = table;
    }
    map_.Erase(temporary, hasher_, epoch_);
    ASSERT_EQ(Find("stays"), stays);
    ASSERT_EQ(Find("t" + std::to_string(i)), nullptr);
  }
  EXPECT_GT(rebuilds, 10);
}

TEST_F(ChildTableTest, ReplacedTableStaysReadableUntilTheReaderIsQuiescent) {
  std::vector<TestNode*> inserted;
  for (int i = 0; i < 4; ++i) {
    inserted.push_back(Insert("n" + std::to_string(i)));
  }
  epoch_.Online(0);
  const Table* old_table = map_.table();  // what a reader loaded
  const uint32_t old_capacity = old_table->capacity();
  Insert("n4");  // 5 used of 8 > 1/2: rebuild
  ASSERT_NE(map_.table(), old_table);
  EXPECT_GT(map_.table()->capacity(), old_capacity);
  EXPECT_EQ(epoch_.pending(), 1u);  // retired, not freed
  // The reader still probes its table: every child live at the replacement is there (ASan
  // would flag a use after free).
  for (int i = 0; i < 4; ++i) {
    const std::string level = "n" + std::to_string(i);
    EXPECT_EQ(old_table->Find(level, hasher_(level)), inserted[i]);
  }
  epoch_.Quiescent(0);
  EXPECT_EQ(epoch_.Collect(), 1u);
  EXPECT_EQ(epoch_.pending(), 0u);
  epoch_.Offline(0);
}

TEST_F(ChildTableTest, DestroyNowVisitsEveryChildOnce) {
  std::set<const TestNode*> expected;
  for (int i = 0; i < 100; ++i) {
    expected.insert(Insert("n" + std::to_string(i)));
  }
  for (int i = 0; i < 100; i += 3) {
    const std::string level = "n" + std::to_string(i);
    TestNode* node = map_.FindForWrite(level, hasher_(level));
    expected.erase(node);
    map_.Erase(node, hasher_, epoch_);
  }
  std::multiset<const TestNode*> visited;
  map_.DestroyNow([&visited](TestNode* child) { visited.insert(child); });
  EXPECT_EQ(visited, std::multiset<const TestNode*>(expected.begin(), expected.end()));
  EXPECT_TRUE(map_.empty());
}

// One writer keeps inserting and erasing children (rebuilding the table up and down) while a
// reader looks up children that stay: the reader must find every one of them, every time.
TEST(ChildTableStressTest, ReaderAlwaysFindsStableChildren) {
  EpochDomain epoch(1);
  const LevelHasher hasher(kSeed);
  Map map;
  std::deque<TestNode> stable;
  for (int i = 0; i < 16; ++i) {
    stable.push_back(TestNode{"stable/" + std::to_string(i)});
    map.Insert(&stable.back(), hasher(stable.back().level()), hasher, epoch);
  }
  constexpr int kRounds = 1000;
  constexpr int kChurn = 64;  // enough to grow past 8x and shrink back each round
  std::atomic<bool> done{false};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> lookups{0};

  std::thread reader([&] {
    epoch.Online(0);
    while (!done.load(std::memory_order_acquire)) {
      for (const TestNode& node : stable) {
        if (map.Find(node.level(), hasher(node.level())) != &node) {
          misses.fetch_add(1, std::memory_order_relaxed);
        }
      }
      lookups.fetch_add(stable.size(), std::memory_order_relaxed);
      epoch.Quiescent(0);
    }
    epoch.Offline(0);
  });

  std::deque<TestNode> churn;
  for (int i = 0; i < kChurn; ++i) {
    churn.push_back(TestNode{"churn/" + std::to_string(i)});
  }
  for (int round = 0; round < kRounds; ++round) {
    for (TestNode& node : churn) {
      map.Insert(&node, hasher(node.level()), hasher, epoch);
    }
    for (TestNode& node : churn) {
      map.Erase(&node, hasher, epoch);
    }
    epoch.Collect();
  }
  // Let the reader do some lookups even if the writer was quick.
  while (lookups.load(std::memory_order_relaxed) < 1000) {
    std::this_thread::yield();
  }
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(misses.load(), 0u);
  EXPECT_EQ(map.size(), stable.size());
  map.DestroyNow([](TestNode*) {});
}

}  // namespace
}  // namespace ringmq::concurrent
