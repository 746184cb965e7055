#include "session/ring_queue.h"

#include <deque>
#include <memory>
#include <random>

#include "gtest/gtest.h"

namespace ringmq::session {
namespace {

TEST(RingQueue, EmptyQueueHoldsNoMemory) {
  RingQueue<int> queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.capacity(), 0u);
  queue.push_back(1);
  EXPECT_EQ(queue.capacity(), 4u);
  queue.pop_front();
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.capacity(), 0u) << "a drained queue gives its ring back";
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
