// Unit tests for client ids (src/connect/client_id.h): home shards and server-assigned ids.
#include "connect/client_id.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace ringmq::connect {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

TEST(HomeShard, SameAnswerForTheSameIdAndWithinRange) {
  for (uint32_t shards = 1; shards <= 16; ++shards) {
    for (const std::string id : {"a", "sensor-1", "ringmq-auto-00", ""}) {
      EXPECT_LT(HomeShard(id, shards), shards);
      EXPECT_EQ(HomeShard(id, shards), HomeShard(std::string(id), shards));
    }
  }
}

TEST(AssignedClientIds, HaveTheReservedPrefixAnd32HexDigits_MQTT_3_1_3_6) {
  AssignedClientIds ids;
  for (int i = 0; i < 100; ++i) {
    const std::string id = ids.Next(0, 1);
    ASSERT_EQ(id.size(), kAssignedClientIdLength) << id;
    EXPECT_TRUE(HasAssignedClientIdPrefix(id)) << id;
    for (const char c : id.substr(kAssignedClientIdPrefix.size())) EXPECT_TRUE(IsLowerHex(c)) << id;
  }
}

// MQTT-3.1.3-6: the assigned id is unique; each one has the assigning shard as its home, so it
// is served there and lives in that shard's session map like any other id.
TEST(AssignedClientIds, ManyIdsAreDistinctAndHomedOnTheAssigningShard_MQTT_3_1_3_6) {
  constexpr uint32_t kShards = 8;
  std::set<std::string> seen;
  std::vector<AssignedClientIds> generators(kShards);
  for (int i = 0; i < 2000; ++i) {
    for (uint32_t shard = 0; shard < kShards; ++shard) {
      const std::string id = generators[shard].Next(shard, kShards);
      EXPECT_EQ(HomeShard(id, kShards), shard) << id;
      EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
    }
  }
  EXPECT_EQ(seen.size(), 2000u * kShards);
}

// Rejection sampling costs about shard_count draws per id on average.
TEST(AssignedClientIds, DrawsPerIdAverageAboutTheShardCount) {
  for (const uint32_t shards : {1u, 4u, 16u}) {
    SCOPED_TRACE(shards);
    AssignedClientIds ids;
    constexpr int kIds = 4000;
    for (int i = 0; i < kIds; ++i) ids.Next(shards - 1, shards);
    const double per_id = static_cast<double>(ids.draws()) / kIds;
    EXPECT_GT(per_id, shards * 0.8);
    EXPECT_LT(per_id, shards * 1.2);
  }
}

// Issue 11: "ringmq-<shard>-<n>" could be guessed, and other clients took over connections
// with assigned ids. Random ids share no structure a counter would leave: every hex position
// takes many values over consecutive ids, and two shards' (or runs') generators never meet.
TEST(AssignedClientIds, NotDerivableFromACounter) {
  AssignedClientIds ids;
  std::vector<std::set<char>> digits(2 * kAssignedClientIdRandomBytes);
  for (int i = 0; i < 1000; ++i) {
    const std::string id = ids.Next(0, 1);
    for (size_t position = 0; position < digits.size(); ++position) {
      digits[position].insert(id[kAssignedClientIdPrefix.size() + position]);
    }
  }
  for (size_t position = 0; position < digits.size(); ++position) {
    EXPECT_GE(digits[position].size(), 14u) << "hex position " << position;
  }
  AssignedClientIds a;
  AssignedClientIds b;
  std::set<std::string> from_a;
  for (int i = 0; i < 1000; ++i) from_a.insert(a.Next(0, 1));
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(from_a.count(b.Next(0, 1)), 0u);
}

TEST(AssignedClientIds, KeyDecidesTheSequence) {
  AssignedClientIds first(auth::SipKey{1, 2});
  AssignedClientIds same(auth::SipKey{1, 2});
  AssignedClientIds other(auth::SipKey{1, 3});
  const std::string id = first.Next(0, 1);
  EXPECT_EQ(same.Next(0, 1), id);
  EXPECT_NE(other.Next(0, 1), id);
  EXPECT_NE(first.Next(0, 1), id);
}

}  // namespace
}  // namespace ringmq::connect
