// Unit tests for SharedString (src/common/shared_string.h): copies share one block, the last
// handle frees it, the empty string holds none, c_str() is NUL-terminated.
#include "common/shared_string.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>

namespace ringmq {
namespace {

TEST(SharedStringTest, CopiesShareOneBlockAndTheLastOneFreesIt) {
  SharedString id("rb1234567-i9999-0");
  EXPECT_EQ(id.use_count(), 1u);
  {
    SharedString copy = id;
    EXPECT_EQ(copy.view().data(), id.view().data());  // same storage, not a copy
    EXPECT_EQ(id.use_count(), 2u);
    SharedString assigned;
    assigned = copy;
    EXPECT_EQ(id.use_count(), 3u);
  }
  EXPECT_EQ(id.use_count(), 1u);
  EXPECT_EQ(id, "rb1234567-i9999-0");
}

TEST(SharedStringTest, MovingTransfersTheHandle) {
  SharedString id("client-1");
  const char* storage = id.c_str();
  SharedString moved(std::move(id));
  EXPECT_EQ(moved.c_str(), storage);
  EXPECT_EQ(moved.use_count(), 1u);
  SharedString target("other");
  target = std::move(moved);
  EXPECT_EQ(target.c_str(), storage);
  EXPECT_EQ(target.use_count(), 1u);
}

TEST(SharedStringTest, EmptyHoldsNoBlock) {
  SharedString empty{std::string_view()};
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.use_count(), 0u);
  EXPECT_STREQ(empty.c_str(), "");
  EXPECT_EQ(empty.size(), 0u);
  SharedString copy = empty;
  EXPECT_EQ(copy.use_count(), 0u);
}

TEST(SharedStringTest, KeepsEveryByteAndEndsWithNul) {
  const std::string text("a\0b", 3);
  SharedString with_nul(text);
  EXPECT_EQ(with_nul.size(), 3u);
  EXPECT_EQ(with_nul.view(), text);
  EXPECT_EQ(with_nul.c_str()[3], '\0');
  const std::string longest(SharedString::kMaxSize, 'x');
  EXPECT_EQ(SharedString(longest).view(), longest);
}

TEST(SharedStringTest, HandleIsOnePointer) { static_assert(sizeof(SharedString) == sizeof(void*)); }

}  // namespace
}  // namespace ringmq
