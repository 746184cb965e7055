#include "session/ring_queue.h"

#include <cstdint>
#include <deque>
#include <memory>
#include <random>

#include "gtest/gtest.h"

namespace ringmq::session {
namespace {

TEST(RingQueue, QueueThatNeverHeldAValueHoldsNoMemory) {
  RingQueue<int> queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.capacity(), 0u);
  queue.Trim();
  EXPECT_EQ(queue.capacity(), 0u);
}

// A consumer that keeps up drains its queue after every few values: the ring must not be
// allocated again and freed each time (issue 12: one malloc and free per delivered message).
TEST(RingQueue, DrainedSmallRingIsKeptAndReused) {
  RingQueue<int> queue;
  for (int i = 0; i < 100; ++i) {
    queue.push_back(2 * i);
    queue.push_back(2 * i + 1);
    ASSERT_EQ(queue.front(), 2 * i);
    queue.pop_front();
    ASSERT_EQ(queue.front(), 2 * i + 1);
    queue.pop_front();
    EXPECT_TRUE(queue.empty());
    EXPECT_EQ(queue.capacity(), 4u) << "drained, kept";
  }
  queue.Trim();
  EXPECT_EQ(queue.capacity(), 0u) << "trimmed: released";
  queue.push_back(7);
  EXPECT_EQ(queue.front(), 7);
}

TEST(RingQueue, RingAtTheKeepBoundIsKeptBeyondItReleasedOnceDrained) {
  constexpr size_t kKept = RingQueue<uint64_t>::kKeepBytes / sizeof(uint64_t);
  RingQueue<uint64_t> queue;
  for (uint64_t i = 0; i < kKept; ++i) queue.push_back(i);
  ASSERT_EQ(queue.capacity(), kKept);
  while (!queue.empty()) queue.pop_front();
  EXPECT_EQ(queue.capacity(), kKept) << "at the bound: kept";

  for (uint64_t i = 0; i <= kKept; ++i) queue.push_back(i);
  ASSERT_EQ(queue.capacity(), 2 * kKept);
  queue.pop_front();
  EXPECT_EQ(queue.capacity(), 2 * kKept) << "not drained: kept";
  while (!queue.empty()) queue.pop_front();
  EXPECT_EQ(queue.capacity(), 0u) << "a burst's large ring is given back once drained";
}

TEST(RingQueue, TrimKeepsANonEmptyQueue) {
  RingQueue<int> queue;
  queue.push_back(1);
  queue.Trim();
  EXPECT_EQ(queue.capacity(), 4u);
  EXPECT_EQ(queue.front(), 1);
}

TEST(RingQueue, FifoAcrossWrapAndGrowth) {
  RingQueue<int> queue;
  int next_in = 0;
  int next_out = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < round % 7 + 1; ++i) queue.push_back(next_in++);
    for (int i = 0; i < round % 5 + 1 && !queue.empty(); ++i) {
      ASSERT_EQ(queue.front(), next_out++);
      queue.pop_front();
    }
    ASSERT_EQ(queue.size(), static_cast<size_t>(next_in - next_out));
    for (size_t i = 0; i < queue.size(); ++i) ASSERT_EQ(queue[i], next_out + static_cast<int>(i));
  }
}

TEST(RingQueue, EraseKeepsOrderAndMatchesDeque) {
  std::mt19937 random(7);
  RingQueue<int> queue;
  std::deque<int> model;
  for (int step = 0; step < 5000; ++step) {
    const int op = static_cast<int>(random() % 4);
    if (op <= 1 || model.empty()) {
      queue.push_back(step);
      model.push_back(step);
    } else if (op == 2) {
      queue.pop_front();
      model.pop_front();
    } else {
      const size_t i = random() % model.size();
      queue.erase(i);
      model.erase(model.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_EQ(queue.size(), model.size());
    for (size_t i = 0; i < model.size(); ++i) ASSERT_EQ(queue[i], model[i]) << "step " << step;
  }
}

TEST(RingQueue, PoppedAndErasedValuesAreReleasedAtOnce) {
  auto tracked = std::make_shared<int>(0);
  RingQueue<std::shared_ptr<int>> queue;
  queue.push_back(tracked);
  queue.push_back(tracked);
  queue.push_back(tracked);
  EXPECT_EQ(tracked.use_count(), 4);
  queue.erase(1);
  EXPECT_EQ(tracked.use_count(), 3);
  queue.pop_front();
  EXPECT_EQ(tracked.use_count(), 2);
  queue.pop_front();
  EXPECT_EQ(tracked.use_count(), 1);
}

TEST(RingQueue, FindIfReturnsIndexOrSize) {
  RingQueue<int> queue;
  for (int i = 0; i < 6; ++i) queue.push_back(i * 10);
  EXPECT_EQ(queue.find_if([](int v) { return v == 30; }), 3u);
  EXPECT_EQ(queue.find_if([](int v) { return v == 31; }), queue.size());
}

TEST(RingQueue, MoveLeavesSourceEmpty) {
  RingQueue<int> a;
  a.push_back(1);
  a.push_back(2);
  RingQueue<int> b(std::move(a));
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1], 2);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from state is defined
  a = std::move(b);
  EXPECT_EQ(a.size(), 2u);
  EXPECT_EQ(a.front(), 1);
}

}  // namespace
}  // namespace ringmq::session
