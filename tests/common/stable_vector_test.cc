// Unit tests for StableVector (src/common/stable_vector.h): elements keep their addresses while
// the vector grows, chunks are allocated only as elements are appended, destructors run.
#include "common/stable_vector.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace ringmq {
namespace {

TEST(StableVectorTest, AddressesSurviveGrowthAcrossManyChunks) {
  StableVector<uint64_t, 4> values;
  std::vector<uint64_t*> addresses;
  for (uint64_t i = 0; i < 1000; ++i) {
    uint64_t& value = values.emplace_back();
    EXPECT_EQ(value, 0u);  // value-initialized
    value = i * 3;
    addresses.push_back(&value);
  }
  ASSERT_EQ(values.size(), 1000u);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(&values[i], addresses[i]);
    EXPECT_EQ(values[i], i * 3);
  }
}

TEST(StableVectorTest, AllocatesOneChunkPerKChunkElements) {
  StableVector<uint32_t, 8> values;
  EXPECT_EQ(values.allocated_bytes(), 0u);
  values.emplace_back();
  EXPECT_EQ(values.allocated_bytes(), 8 * sizeof(uint32_t));
  for (int i = 1; i < 8; ++i) values.emplace_back();
  EXPECT_EQ(values.allocated_bytes(), 8 * sizeof(uint32_t));
  values.emplace_back();
  EXPECT_EQ(values.allocated_bytes(), 16 * sizeof(uint32_t));
}

// Chunks sized to fit an allocator size class hold a number of elements that is not a power of
// two: indexes still map to their own element across chunk boundaries.
TEST(StableVectorTest, ChunkOfAnyElementCount) {
  StableVector<uint32_t, 3> values;
  for (uint32_t i = 0; i < 10; ++i) values.emplace_back() = i;
  EXPECT_EQ(values.allocated_bytes(), 12 * sizeof(uint32_t));  // four chunks of three
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(values[i], i);
  EXPECT_EQ(&values[4], &values[3] + 1);  // 3 and 4 share the second chunk
  static_assert(kChunkBytesFor<std::array<char, 176>> * 176 <= kStableVectorChunkBytes);
  static_assert(kChunkBytesFor<std::array<char, 176>> == 93);
}

TEST(StableVectorTest, DestroysEveryElement) {
  auto counter = std::make_shared<int>(0);
  {
    StableVector<std::shared_ptr<int>, 2> holders;
    for (int i = 0; i < 5; ++i) holders.emplace_back() = counter;
    EXPECT_EQ(counter.use_count(), 6);
    int visited = 0;
    holders.ForEach([&](std::shared_ptr<int>& holder) { visited += holder == counter; });
    EXPECT_EQ(visited, 5);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

}  // namespace
}  // namespace ringmq
