// Unit tests for QSBR reclamation (src/concurrent/epoch.h): when a retired object may and may not
// be freed, the bound on the retired list, and a multi-threaded stress test (run it under
// ThreadSanitizer and AddressSanitizer as well) where readers dereference objects that a writer
// keeps replacing and retiring.
#include "concurrent/epoch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace ringmq::concurrent {
namespace {

struct Tracked {
  std::atomic<int>* freed;
};

void DeleteTracked(void* object) {
  auto* tracked = static_cast<Tracked*>(object);
  tracked->freed->fetch_add(1, std::memory_order_relaxed);
  delete tracked;
}

class EpochTest : public ::testing::Test {
 protected:
  void RetireOne(EpochDomain& domain) { domain.Retire(new Tracked{&freed_}, DeleteTracked); }
  int freed() const { return freed_.load(std::memory_order_relaxed); }

  std::atomic<int> freed_{0};
};

TEST_F(EpochTest, ReadersStartOffline) {
  EpochDomain domain(3);
  EXPECT_EQ(domain.reader_count(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(domain.IsOnline(i));
  }
  domain.Online(1);
  EXPECT_TRUE(domain.IsOnline(1));
  domain.Offline(1);
  EXPECT_FALSE(domain.IsOnline(1));
}

TEST_F(EpochTest, NotFreedUntilEveryOnlineReaderPassesQuiescent) {
  EpochDomain domain(2);
  domain.Online(0);
  domain.Online(1);
  RetireOne(domain);
  EXPECT_EQ(domain.Collect(), 0u);
  EXPECT_EQ(freed(), 0);

  domain.Quiescent(0);
  EXPECT_EQ(domain.Collect(), 0u);  // reader 1 may still hold it
  EXPECT_EQ(freed(), 0);
  EXPECT_EQ(domain.pending(), 1u);

  domain.Quiescent(1);
  EXPECT_EQ(domain.Collect(), 1u);
  EXPECT_EQ(freed(), 1);
  EXPECT_EQ(domain.pending(), 0u);
  EXPECT_EQ(domain.freed_total(), 1u);
}

TEST_F(EpochTest, QuiescentBeforeRetireDoesNotCount) {
  EpochDomain domain(1);
  domain.Online(0);
  domain.Quiescent(0);
  RetireOne(domain);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(domain.Collect(), 0u);
  }
  domain.Quiescent(0);
  EXPECT_EQ(domain.Collect(), 1u);
}

TEST_F(EpochTest, OnlyObjectsRetiredBeforeTheQuiescentPointAreFreed) {
  EpochDomain domain(1);
  domain.Online(0);
  RetireOne(domain);
  domain.Quiescent(0);
  RetireOne(domain);  // after the quiescent point: the reader may have loaded it since
  EXPECT_EQ(domain.Collect(), 1u);
  EXPECT_EQ(domain.pending(), 1u);
  domain.Quiescent(0);
  EXPECT_EQ(domain.Collect(), 1u);
  EXPECT_EQ(freed(), 2);
}

TEST_F(EpochTest, OfflineReadersDoNotBlock) {
  EpochDomain domain(3);
  domain.Online(0);  // readers 1 and 2 never come online
  RetireOne(domain);
  domain.Quiescent(0);
  EXPECT_EQ(domain.Collect(), 1u);
}

TEST_F(EpochTest, GoingOfflineReleasesHeldObjects) {
  EpochDomain domain(2);
  domain.Online(0);
  domain.Online(1);
  RetireOne(domain);
  domain.Quiescent(0);
  EXPECT_EQ(domain.Collect(), 0u);
  domain.Offline(1);  // about to block in io_uring wait: holds nothing
  EXPECT_EQ(domain.Collect(), 1u);
}

TEST_F(EpochTest, ReaderComingOnlineAfterRetireDoesNotBlock) {
  EpochDomain domain(2);
  domain.Online(0);
  RetireOne(domain);
  domain.Online(1);  // cannot reach the object: it was unlinked before
  domain.Quiescent(0);
  EXPECT_EQ(domain.Collect(), 1u);
}

TEST_F(EpochTest, EverythingFreedAtOnceWhenAllReadersOffline) {
  EpochDomain domain(2);
  RetireOne(domain);
  RetireOne(domain);
  EXPECT_EQ(domain.Collect(), 2u);
  EXPECT_EQ(freed(), 2);
}

TEST_F(EpochTest, RetireCollectsWhenTheListGrows) {
  EpochDomain domain(1);
  for (size_t i = 0; i < 10 * EpochDomain::kCollectThresholdMin; ++i) {
    RetireOne(domain);
    EXPECT_LT(domain.pending(), EpochDomain::kCollectThresholdMin);
  }
  EXPECT_GT(freed(), 0);
}

TEST_F(EpochTest, StalledReaderHoldsObjectsAndReleasesThemAtItsNextQuiescentPoint) {
  EpochDomain domain(2);
  domain.Online(0);
  domain.Online(1);
  constexpr size_t kCount = 5000;
  for (size_t i = 0; i < kCount; ++i) {
    RetireOne(domain);
    domain.Quiescent(0);  // reader 1 is stalled in one long loop iteration
  }
  EXPECT_EQ(freed(), 0);
  EXPECT_EQ(domain.pending(), kCount);
  domain.Quiescent(1);
  EXPECT_EQ(domain.Collect(), kCount);
}

TEST_F(EpochTest, DestructorFreesPendingObjects) {
  {
    EpochDomain domain(1);
    domain.Online(0);
    RetireOne(domain);
    RetireOne(domain);
    EXPECT_EQ(domain.Collect(), 0u);
  }
  EXPECT_EQ(freed(), 2);
}

// ---- Multi-threaded ----------------------------------------------------------------------------

constexpr uint64_t kAlive = 0xA11CE5A11CE5A11CULL;
constexpr uint64_t kDead = 0xDEADDEADDEADDEADULL;

struct Payload {
  std::atomic<uint64_t> magic{kAlive};
  uint64_t value = 0;
  uint64_t value_check = 0;  // ~value
};

void DeletePayload(void* object) {
  auto* payload = static_cast<Payload*>(object);
  payload->magic.store(kDead, std::memory_order_relaxed);
  delete payload;
}

// Readers keep loading and dereferencing the current payload while a writer replaces and
// retires it. A premature free shows up as a dead magic or a torn value here, and as a
// use-after-free (ASan) or a data race (TSan) under the sanitizers.
TEST(EpochStressTest, ReadersNeverSeeFreedObjects) {
  constexpr uint32_t kReaders = 3;
  constexpr uint64_t kReplacements = 40000;
  EpochDomain domain(kReaders);
  auto* first = new Payload;
  first->value_check = ~first->value;
  std::atomic<Payload*> current{first};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint32_t> ready{0};

  std::vector<std::thread> readers;
  for (uint32_t id = 0; id < kReaders; ++id) {
    readers.emplace_back([&, id] {
      domain.Online(id);
      ready.fetch_add(1);
      uint64_t last_value = 0;
      for (uint64_t iteration = 0; !stop.load(std::memory_order_relaxed); ++iteration) {
        for (int i = 0; i < 8; ++i) {
          const Payload* payload = current.load(std::memory_order_acquire);
          const bool ok = payload->magic.load(std::memory_order_relaxed) == kAlive &&
                          payload->value_check == ~payload->value && payload->value >= last_value;
          if (!ok) {
            failures.fetch_add(1, std::memory_order_relaxed);
          }
          last_value = payload->value;
        }
        domain.Quiescent(id);
        if (iteration % 64 == id) {  // now and then, block "in io_uring wait"
          domain.Offline(id);
          std::this_thread::yield();
          domain.Online(id);
        }
      }
      domain.Offline(id);
    });
  }
  while (ready.load() < kReaders) {
    std::this_thread::yield();
  }
  for (uint64_t value = 1; value <= kReplacements; ++value) {
    auto* payload = new Payload;
    payload->value = value;
    payload->value_check = ~value;
    Payload* old = current.exchange(payload, std::memory_order_acq_rel);
    domain.Retire(old, DeletePayload);
    if (value % 100 == 0) {
      domain.Collect();
    }
  }
  stop.store(true);
  for (std::thread& reader : readers) {
    reader.join();
  }
  EXPECT_EQ(failures.load(), 0u);
  domain.Collect();
  EXPECT_EQ(domain.pending(), 0u);
  EXPECT_EQ(domain.freed_total(), kReplacements);
  delete current.load();
}

}  // namespace
}  // namespace ringmq::concurrent
