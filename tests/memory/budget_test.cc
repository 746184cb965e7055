#include "memory/budget.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "message/message.h"
#include "session/ring_queue.h"

namespace ringmq::memory {
namespace {

// Binds the test thread to an account of its own for the scope, so other tests (and other
// threads) do not disturb what it measures.
class BoundAccount {
 public:
  BoundAccount() { BindThreadAccount(&account_); }
  ~BoundAccount() { BindThreadAccount(nullptr); }
  int64_t bytes() const { return account_.Load(); }

 private:
  Account account_;
};

TEST(MemoryPressure, ThresholdsInPercentOfTheBudget) {
  constexpr uint64_t kMax = 1000;
  EXPECT_EQ(PressureOf(0, kMax), Pressure::kNone);
  EXPECT_EQ(PressureOf(799, kMax), Pressure::kNone);
  EXPECT_EQ(PressureOf(800, kMax), Pressure::kShedQos0);
  EXPECT_EQ(PressureOf(899, kMax), Pressure::kShedQos0);
  EXPECT_EQ(PressureOf(900, kMax), Pressure::kRefuseConnections);
  EXPECT_EQ(PressureOf(999, kMax), Pressure::kRefuseConnections);
  EXPECT_EQ(PressureOf(1000, kMax), Pressure::kShedQos12);
  EXPECT_EQ(PressureOf(5000, kMax), Pressure::kShedQos12);
  EXPECT_EQ(PressureOf(-5, kMax), Pressure::kNone);
}

TEST(MemoryPressure, NoBudgetNeverSheds) {
  EXPECT_EQ(PressureOf(int64_t{1} << 50, 0), Pressure::kNone);
}

TEST(MemoryPressure, LargeBudgetsDoNotOverflow) {
  constexpr uint64_t kMax = uint64_t{1} << 50;  // the largest max_memory the config accepts
  EXPECT_EQ(PressureOf(static_cast<int64_t>(kMax / 2), kMax), Pressure::kNone);
  EXPECT_EQ(PressureOf(static_cast<int64_t>(kMax), kMax), Pressure::kShedQos12);
}

TEST(MemoryBudget, TotalIsBaselinePlusEveryAccount) {
  Budget budget(1 << 20, 3);
  budget.SetBaseline(1000);
  budget.account(0).Add(50);
  budget.account(1).Add(-20);  // freed on shard 1 what shard 0 allocated
  budget.account(2).Add(7);
  const int64_t fallback = FallbackCharged();
  EXPECT_EQ(budget.Total(), 1000 + 50 - 20 + 7 + fallback);
}

TEST(MemoryBudget, ChargeGoesToTheBoundAccountOrTheFallback) {
  Account account;
  BindThreadAccount(&account);
  Charge(100);
  Charge(-30);
  BindThreadAccount(nullptr);
  EXPECT_EQ(account.Load(), 70);

  const int64_t before = FallbackCharged();
  std::thread([] { Charge(5); }).join();  // an unbound thread
  EXPECT_EQ(FallbackCharged() - before, 5);
}

TEST(MemoryView, SeesItsOwnGrowthAtOnceAndOthersAfterRefresh) {
  Budget budget(1000, 2);
  View view(budget, budget.account(0));
  view.Refresh();
  const int64_t start = view.Estimate();
  budget.account(0).Add(100);  // this shard
  budget.account(1).Add(300);  // another shard: seen at the next refresh
  EXPECT_EQ(view.Estimate() - start, 100);
  view.Refresh();
  EXPECT_EQ(view.Estimate() - start, 400);
}

TEST(MemoryView, LevelFollowsTheEstimate) {
  Budget budget(1000, 1);
  View view(budget, budget.account(0));
  budget.account(0).Add(-FallbackCharged());  // Total() == what this test adds
  view.Refresh();
  EXPECT_EQ(view.Level(), Pressure::kNone);
  budget.account(0).Add(850);
  EXPECT_EQ(view.Level(), Pressure::kShedQos0);
  budget.account(0).Add(100);
  EXPECT_EQ(view.Level(), Pressure::kRefuseConnections);
  budget.account(0).Add(100);
  EXPECT_EQ(view.Level(), Pressure::kShedQos12);
  budget.account(0).Add(-1050);
  EXPECT_EQ(view.Level(), Pressure::kNone);
}

TEST(MemoryView, NoBudgetIsNeverUnderPressure) {
  Budget budget(0, 1);
  View view(budget, budget.account(0));
  budget.account(0).Add(int64_t{1} << 40);
  view.Refresh();
  EXPECT_EQ(view.Level(), Pressure::kNone);
}

TEST(MemoryCharges, MessageIsChargedFromCreateToFree) {
  BoundAccount account;
  const std::string payload(1000, 'x');
  auto* message = message::Message::Create(
      "a/b", {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()}, 1, false);
  const int64_t charged = account.bytes();
  EXPECT_GE(charged, static_cast<int64_t>(message->allocation_bytes()));
  EXPECT_GE(message->allocation_bytes(), 1000u + 3u);
  message->AddRef();
  message->Release();
  EXPECT_EQ(account.bytes(), charged);
  message->Release();  // the last reference: freed and credited
  EXPECT_EQ(account.bytes(), 0);
}

TEST(MemoryCharges, MessageFreedOnAnotherThreadIsCreditedThere) {
  BoundAccount account;
  auto* message = message::Message::Create("t", {}, 0, false);
  const int64_t size = account.bytes();
  EXPECT_GE(size, static_cast<int64_t>(message->allocation_bytes()));
  Account other;
  std::thread([&] {
    BindThreadAccount(&other);
    message->Release();
    BindThreadAccount(nullptr);
  }).join();
  EXPECT_EQ(account.bytes(), size);
  EXPECT_EQ(other.Load(), -size);  // the sum of the two is what is still held: nothing
}

TEST(MemoryCharges, RingQueueChargesItsStorageWhileHeld) {
  BoundAccount account;
  {
    session::RingQueue<uint64_t> queue;
    EXPECT_EQ(account.bytes(), 0);
    for (uint64_t i = 0; i < 5; ++i) queue.push_back(i);
    EXPECT_EQ(account.bytes(), static_cast<int64_t>(queue.capacity() * sizeof(uint64_t)));
    session::RingQueue<uint64_t> moved(std::move(queue));  // moves are charge-neutral
    EXPECT_EQ(account.bytes(), static_cast<int64_t>(moved.capacity() * sizeof(uint64_t)));
    while (!moved.empty()) moved.pop_front();
    EXPECT_EQ(account.bytes(), static_cast<int64_t>(moved.capacity() * sizeof(uint64_t)));
    moved.push_back(1);
  }
  EXPECT_EQ(account.bytes(), 0);  // destroyed: all credited
}

TEST(MemoryCharges, RingQueueCreditsReleasedRingsAndKeepsChargingKeptOnes) {
  BoundAccount account;
  session::RingQueue<uint64_t> queue;
  const auto charged = [&queue] { return static_cast<int64_t>(queue.capacity() * 8); };
  queue.push_back(1);
  queue.pop_front();
  ASSERT_GT(queue.capacity(), 0u) << "a small drained ring is kept";
  EXPECT_EQ(account.bytes(), charged());
  queue.Trim();
  EXPECT_EQ(account.bytes(), 0);
  constexpr size_t kBeyondKept = session::RingQueue<uint64_t>::kKeepBytes / 8 + 1;
  for (uint64_t i = 0; i < kBeyondKept; ++i) queue.push_back(i);
  EXPECT_EQ(account.bytes(), charged());
  while (!queue.empty()) queue.pop_front();
  EXPECT_EQ(queue.capacity(), 0u) << "a large drained ring is released";
  EXPECT_EQ(account.bytes(), 0);
}

}  // namespace
}  // namespace ringmq::memory
