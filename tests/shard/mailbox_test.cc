// Mailbox: FIFO records, all-or-nothing pushes, contiguous records across the wrap, the
// was_empty/observed-empty wake-up protocol, the matrix's one mapping and its signals, and
// stress tests (consumers that really sleep and are woken only by was_empty pushes, one of them
// draining only signalled mailboxes of three producers).
#include "shard/mailbox.h"

#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <span>
#include <thread>
#include <vector>

#include "common/sanitizers.h"

namespace ringmq::shard {
namespace {

using Record = std::vector<Slot>;

Record MakeRecord(uint64_t id, size_t length) {
  Record record;
  for (size_t i = 0; i < length; ++i) {
    record.push_back(Slot{.kind = static_cast<uint32_t>(i),
                          .aux = static_cast<uint32_t>(length),
                          .value = id * 1000 + i});
  }
  return record;
}

std::vector<Record> DrainAll(Mailbox& mailbox, size_t max_records = 1'000'000,
                             DrainResult* result = nullptr) {
  std::vector<Record> records;
  const DrainResult drained = mailbox.Drain(
      [&](std::span<const Slot> slots) { records.emplace_back(slots.begin(), slots.end()); },
      max_records);
  EXPECT_EQ(drained.records, records.size());
  if (result != nullptr) *result = drained;
  return records;
}

TEST(MailboxTest, RecordsComeOutWholeAndInOrder) {
  Mailbox mailbox(64, 8);
  std::vector<Record> pushed;
  for (uint64_t id = 0; id < 10; ++id) {
    pushed.push_back(MakeRecord(id, 1 + id % 4));
    ASSERT_TRUE(mailbox.TryPush(pushed.back()).pushed);
  }
  DrainResult result{};
  EXPECT_EQ(DrainAll(mailbox, 100, &result), pushed);
  EXPECT_FALSE(result.more);
  EXPECT_TRUE(DrainAll(mailbox).empty());
}

TEST(MailboxTest, GeometryAccessors) {
  Mailbox mailbox(1024);
  EXPECT_EQ(mailbox.capacity(), 1024u);
  EXPECT_EQ(mailbox.max_record_slots(), Mailbox::kDefaultMaxRecordSlots);
}

TEST(MailboxTest, PushIsAllOrNothingWhenFull) {
  Mailbox mailbox(8, 4);
  EXPECT_TRUE(mailbox.TryPush(MakeRecord(0, 3)).pushed);
  EXPECT_TRUE(mailbox.TryPush(MakeRecord(1, 3)).pushed);
  // 2 slots free: a 3-slot record does not fit and leaves no trace.
  const PushResult refused = mailbox.TryPush(MakeRecord(2, 3));
  EXPECT_FALSE(refused.pushed);
  EXPECT_FALSE(refused.was_empty);
  EXPECT_TRUE(mailbox.TryPush(MakeRecord(3, 2)).pushed);  // exactly fills the ring
  EXPECT_FALSE(mailbox.TryPush(MakeRecord(4, 1)).pushed);

  DrainResult result{};
  std::vector<Record> first = DrainAll(mailbox, 1, &result);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0], MakeRecord(0, 3));
  EXPECT_TRUE(result.more);
  EXPECT_TRUE(mailbox.TryPush(MakeRecord(5, 3)).pushed);  // the freed 3 slots
  EXPECT_FALSE(mailbox.TryPush(MakeRecord(6, 1)).pushed);
  EXPECT_EQ(DrainAll(mailbox),
            (std::vector<Record>{MakeRecord(1, 3), MakeRecord(3, 2), MakeRecord(5, 3)}));
}

TEST(MailboxTest, RecordOfWholeCapacity) {
  Mailbox mailbox(4, 4);
  for (uint64_t id = 0; id < 5; ++id) {
    ASSERT_TRUE(mailbox.TryPush(MakeRecord(id, 4)).pushed);
    EXPECT_FALSE(mailbox.TryPush(MakeRecord(99, 1)).pushed);
    EXPECT_EQ(DrainAll(mailbox), std::vector<Record>{MakeRecord(id, 4)});
  }
}

// Random pushes and partial drains against a deque model: records that straddle the end of the
// ring come out contiguous and intact, and fullness is exact.
TEST(MailboxTest, WraparoundWithMultiSlotRecordsMatchesModel) {
  constexpr uint32_t kCapacity = 16;
  constexpr uint32_t kMaxRecord = 5;
  Mailbox mailbox(kCapacity, kMaxRecord);
  std::deque<Record> model;
  size_t model_slots = 0;
  std::mt19937 random(12345);
  uint64_t next_id = 0;
  size_t wrapped_records = 0;
  uint64_t position = 0;  // slot index of the next push, to count wrapped records
  for (int step = 0; step < 20'000; ++step) {
    if (random() % 3 != 0) {
      const size_t length = 1 + random() % kMaxRecord;
      Record record = MakeRecord(next_id++, length);
      const PushResult result = mailbox.TryPush(record);
      ASSERT_EQ(result.pushed, model_slots + length <= kCapacity) << "step " << step;
      if (result.pushed) {
        EXPECT_EQ(result.was_empty, model.empty());
        if (position % kCapacity + length > kCapacity) ++wrapped_records;
        position += length;
        model_slots += length;
        model.push_back(std::move(record));
      }
    } else {
      const size_t max_records = 1 + random() % 4;
      DrainResult result{};
      const std::vector<Record> drained = DrainAll(mailbox, max_records, &result);
      ASSERT_EQ(drained.size(), std::min(max_records, model.size()));
      for (const Record& record : drained) {
        ASSERT_EQ(record, model.front());
        model_slots -= record.size();
        model.pop_front();
      }
      EXPECT_EQ(result.more, !model.empty());
    }
  }
  EXPECT_GT(wrapped_records, 100u);
}

TEST(MailboxTest, LongDrainFreesSpaceEveryQuarterRing) {
  Mailbox mailbox(16, 1);
  for (uint64_t id = 0; id < 16; ++id) ASSERT_TRUE(mailbox.TryPush(MakeRecord(id, 1)).pushed);
  // The test thread is both producer and consumer: pushing from fn shows when space was freed.
  std::vector<uint64_t> order;
  size_t first_push_at = SIZE_MAX;
  uint64_t next_id = 16;
  const DrainResult result = mailbox.Drain(
      [&](std::span<const Slot> record) {
        order.push_back(record[0].value / 1000);
        if (next_id < 20 && mailbox.TryPush(MakeRecord(next_id, 1)).pushed) {
          if (first_push_at == SIZE_MAX) first_push_at = order.size() - 1;
          ++next_id;
        }
      },
      100);
  EXPECT_EQ(first_push_at, 4u);  // records 0..3 (a quarter of 16 slots) were freed
  EXPECT_FALSE(result.more);
  ASSERT_EQ(order.size(), 20u);
  for (uint64_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
}

TEST(MailboxTest, WasEmptyOnlyForThePushIntoAnEmptyRing) {
  Mailbox mailbox(16, 4);
  PushResult result = mailbox.TryPush(MakeRecord(0, 2));
  EXPECT_TRUE(result.pushed && result.was_empty);
  result = mailbox.TryPush(MakeRecord(1, 1));
  EXPECT_TRUE(result.pushed && !result.was_empty);

  // Partly drained: still not empty, so no doorbell; the consumer was told to come back.
  DrainResult drained{};
  DrainAll(mailbox, 1, &drained);
  EXPECT_TRUE(drained.more);
  result = mailbox.TryPush(MakeRecord(2, 1));
  EXPECT_TRUE(result.pushed && !result.was_empty);

  // Drained to empty: the next push rings again.
  DrainAll(mailbox, 100, &drained);
  EXPECT_FALSE(drained.more);
  EXPECT_EQ(drained.records, 2u);
  result = mailbox.TryPush(MakeRecord(3, 4));
  EXPECT_TRUE(result.pushed && result.was_empty);
}

TEST(MailboxTest, DrainStoppingAtTheLastRecordReportsNoMore) {
  Mailbox mailbox(16, 4);
  ASSERT_TRUE(mailbox.TryPush(MakeRecord(0, 1)).pushed);
  ASSERT_TRUE(mailbox.TryPush(MakeRecord(1, 1)).pushed);
  DrainResult drained{};
  EXPECT_EQ(DrainAll(mailbox, 2, &drained).size(), 2u);
  EXPECT_FALSE(drained.more);
  DrainAll(mailbox, 2, &drained);
  EXPECT_EQ(drained.records, 0u);
  EXPECT_FALSE(drained.more);
}

TEST(MailboxTest, MatrixHasOneMailboxPerOrderedPair) {
  constexpr uint32_t kShards = 4;
  MailboxMatrix matrix(kShards, 32, 4);
  EXPECT_EQ(matrix.shard_count(), kShards);
  std::set<const Mailbox*> distinct;
  for (uint32_t from = 0; from < kShards; ++from) {
    for (uint32_t to = 0; to < kShards; ++to) {
      if (from == to) continue;
      Mailbox& mailbox = matrix.mailbox(from, to);
      EXPECT_EQ(mailbox.capacity(), 32u);
      EXPECT_EQ(mailbox.max_record_slots(), 4u);
      distinct.insert(&mailbox);
    }
  }
  EXPECT_EQ(distinct.size(), kShards * (kShards - 1));
  // Pairs are independent.
  ASSERT_TRUE(matrix.mailbox(1, 2).TryPush(MakeRecord(7, 2)).pushed);
  EXPECT_TRUE(DrainAll(matrix.mailbox(2, 1)).empty());
  EXPECT_EQ(DrainAll(matrix.mailbox(1, 2)), std::vector<Record>{MakeRecord(7, 2)});
}

TEST(MailboxTest, SignalsAreSetPerSourceAndTakenOnce) {
  constexpr uint32_t kShards = 130;  // three signal words per destination
  MailboxMatrix matrix(kShards, 8, 2);
  ASSERT_EQ(matrix.signal_words(), 3u);
  matrix.Signal(5, 2);
  matrix.Signal(70, 2);
  matrix.Signal(129, 2);
  matrix.Signal(3, 4);
  matrix.Signal(5, 2);  // again before the consumer took it: one bit
  EXPECT_EQ(matrix.TakeSignals(2, 0), uint64_t{1} << 5);
  EXPECT_EQ(matrix.TakeSignals(2, 1), uint64_t{1} << 6);
  EXPECT_EQ(matrix.TakeSignals(2, 2), uint64_t{1} << 1);
  for (uint32_t word = 0; word < 3; ++word) EXPECT_EQ(matrix.TakeSignals(2, word), 0u);
  EXPECT_EQ(matrix.TakeSignals(4, 0), uint64_t{1} << 3);
  EXPECT_EQ(matrix.TakeSignals(3, 0), 0u);
}

TEST(MailboxTest, RingsLiveInOneMappingOfTheAdvertisedSize) {
  // (capacity + max_record_slots - 1) slots and a length byte per slot, per cache line.
  EXPECT_EQ(Mailbox::StorageBytes(64, 64), 2112u);
  EXPECT_EQ(Mailbox::StorageBytes(8, 2), 192u);
  EXPECT_EQ(MailboxMatrix::StorageBytes(4, 8, 2), 12 * 192u);
  MailboxMatrix matrix(4, 8, 2);
  // Every ring is usable up to its capacity and independent of its neighbours in the mapping.
  for (uint32_t from = 0; from < 4; ++from) {
    for (uint32_t to = 0; to < 4; ++to) {
      if (from == to) continue;
      for (uint64_t i = 0; i < 4; ++i) {
        ASSERT_TRUE(matrix.mailbox(from, to).TryPush(MakeRecord(from * 16 + to, 2)).pushed);
      }
      EXPECT_FALSE(matrix.mailbox(from, to).TryPush(MakeRecord(0, 1)).pushed);
    }
  }
  for (uint32_t from = 0; from < 4; ++from) {
    for (uint32_t to = 0; to < 4; ++to) {
      if (from == to) continue;
      EXPECT_EQ(DrainAll(matrix.mailbox(from, to)),
                std::vector<Record>(4, MakeRecord(from * 16 + to, 2)));
    }
  }
}

TEST(MailboxDeathTest, ContractViolationsAssert) {
  EXPECT_DEATH(Mailbox(12, 4), "assertion failed");      // not a power of two
  EXPECT_DEATH(Mailbox(4, 8), "assertion failed");       // record longer than the ring
  EXPECT_DEATH(Mailbox(1024, 256), "assertion failed");  // length does not fit a byte
  Mailbox mailbox(8, 2);
  EXPECT_DEATH(mailbox.TryPush(MakeRecord(0, 3)), "assertion failed");
  EXPECT_DEATH(mailbox.TryPush({}), "assertion failed");
  MailboxMatrix matrix(3, 8, 2);
  EXPECT_DEATH(matrix.mailbox(1, 1), "assertion failed");
  EXPECT_DEATH(matrix.mailbox(0, 3), "assertion failed");
}

// ---- Two threads ----------------------------------------------------------------------------

// Record `sequence` has 1..kStressMaxRecord slots, chosen by a hash both sides compute.
constexpr uint32_t kStressMaxRecord = 6;
// Large enough that a scheduling quantum moves thousands of records when the threads share a
// core; the sleeping variant uses a small ring so that it runs empty (and full) often.
constexpr uint32_t kStressCapacity = 8192;
constexpr uint32_t kSleepingCapacity = 256;

uint32_t StressLength(uint64_t sequence) {
  uint64_t x = sequence * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return 1 + static_cast<uint32_t>(x % kStressMaxRecord);
}

size_t FillStressRecord(uint64_t sequence, Slot* slots) {
  const uint32_t length = StressLength(sequence);
  for (uint32_t i = 0; i < length; ++i) {
    slots[i] = Slot{.kind = i, .aux = length, .value = sequence * 16 + i};
  }
  return length;
}

// Checks records in order; counts mismatches instead of failing per record (too slow).
class StressChecker {
 public:
  void operator()(std::span<const Slot> record) {
    Slot expected[kStressMaxRecord];
    const size_t length = FillStressRecord(next_, expected);
    if (record.size() != length) {
      ++errors_;
    } else {
      for (size_t i = 0; i < length; ++i) {
        if (!(record[i] == expected[i])) ++errors_;
      }
    }
    ++next_;
  }
  uint64_t next() const { return next_; }
  uint64_t errors() const { return errors_; }

 private:
  uint64_t next_ = 0;
  uint64_t errors_ = 0;
};

TEST(MailboxStressTest, TwoThreadsTenMillionRecordsInOrder) {
  const uint64_t records = kSanitized ? 1'000'000 : 10'000'000;
  Mailbox mailbox(kStressCapacity, kStressMaxRecord);
  uint64_t full = 0;
  std::thread producer([&] {
    Slot slots[kStressMaxRecord];
    for (uint64_t sequence = 0; sequence < records; ++sequence) {
      const size_t length = FillStressRecord(sequence, slots);
      while (!mailbox.TryPush(std::span<const Slot>(slots, length)).pushed) {
        ++full;
        std::this_thread::yield();
      }
    }
  });
  StressChecker checker;
  uint64_t empty = 0;
  while (checker.next() < records) {
    if (mailbox.Drain(checker, 1024).records == 0) {
      ++empty;
      std::this_thread::yield();
    }
  }
  producer.join();
  EXPECT_EQ(checker.next(), records);
  EXPECT_EQ(checker.errors(), 0u);
  EXPECT_EQ(mailbox.Drain(checker, 64).records, 0u);
  RecordProperty("full_retries", static_cast<int>(std::min<uint64_t>(full, INT32_MAX)));
  RecordProperty("empty_polls", static_cast<int>(std::min<uint64_t>(empty, INT32_MAX)));
}

// A level-triggered doorbell: a ring is a token that the next Wait consumes, like an eventfd
// count or a msg_ring CQE, so a ring before the wait is not lost.
class Doorbell {
 public:
  void Ring() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      rung_ = true;
      ++rings_;
    }
    condition_.notify_one();
  }
  // Returns false if nothing rang within `timeout`.
  bool Wait(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool rung = condition_.wait_for(lock, timeout, [this] { return rung_; });
    rung_ = false;
    return rung;
  }
  uint64_t rings() {
    std::lock_guard<std::mutex> lock(mutex_);
    return rings_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable condition_;
  bool rung_ = false;
  uint64_t rings_ = 0;
};

// The consumer sleeps whenever Drain observed the ring empty, and the producer rings only for
// was_empty pushes. A lost wake-up would leave the consumer asleep with records pending (the
// producer, then seeing a non-empty or full ring, never rings again): the wait times out and the
// test fails instead of hanging.
TEST(MailboxStressTest, SleepingConsumerIsNeverLeftAsleepWithRecordsPending) {
  const uint64_t records = kSanitized ? 150'000 : 300'000;
  constexpr auto kLostWakeupTimeout = std::chrono::seconds(10);
  Mailbox mailbox(kSleepingCapacity, kStressMaxRecord);
  Doorbell doorbell;
  uint64_t was_empty_pushes = 0;
  std::thread producer([&] {
    Slot slots[kStressMaxRecord];
    std::mt19937 random(7);
    uint64_t burst_left = 0;
    for (uint64_t sequence = 0; sequence < records; ++sequence) {
      const size_t length = FillStressRecord(sequence, slots);
      PushResult result;
      while (!(result = mailbox.TryPush(std::span<const Slot>(slots, length))).pushed) {
        std::this_thread::yield();
      }
      if (result.was_empty) {
        ++was_empty_pushes;
        doorbell.Ring();
      }
      // Bursts with pauses, so the consumer catches up and sleeps often.
      if (burst_left == 0) {
        burst_left = random() % 64;
        std::this_thread::yield();
      } else {
        --burst_left;
      }
    }
  });
  StressChecker checker;
  uint64_t sleeps = 0;
  uint64_t lost_wakeups = 0;
  while (checker.next() < records) {
    const DrainResult result = mailbox.Drain(checker, 32);
    if (result.more || checker.next() == records) continue;
    ++sleeps;
    if (!doorbell.Wait(kLostWakeupTimeout)) ++lost_wakeups;  // keep draining: fail, not hang
  }
  producer.join();
  EXPECT_EQ(lost_wakeups, 0u) << "asleep with records pending after " << checker.next();
  EXPECT_EQ(checker.next(), records);
  EXPECT_EQ(checker.errors(), 0u);
  EXPECT_EQ(doorbell.rings(), was_empty_pushes);
  EXPECT_GE(was_empty_pushes, 1u);
  RecordProperty("sleeps", static_cast<int>(std::min<uint64_t>(sleeps, INT32_MAX)));
  RecordProperty("doorbells", static_cast<int>(std::min<uint64_t>(was_empty_pushes, INT32_MAX)));
}

// Litmus test of the fences themselves: both threads meet at a spin barrier every round, then
// (after a small random delay, to sweep their relative timing) one pushes a record while the
// other drains. If Drain reported "observed empty" while the record stayed behind, the push must
// have reported was_empty. With the two seq_cst fences removed, x86 store buffering broke this
// in about one round in ten of an optimized build (it rarely shows at -O0).
void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

class SpinBarrier {
 public:
  // Both threads call Wait(round) with the same round numbers 0, 1, 2, ...
  void Wait(uint64_t round) {
    const uint64_t target = 2 * (round + 1);
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    uint32_t spins = 0;
    while (arrived_.load(std::memory_order_acquire) < target) {
      if (++spins < 2000) {
        Pause();
      } else {
        spins = 0;
        std::this_thread::yield();  // fewer cores than threads: let the other one run
      }
    }
  }

 private:
  std::atomic<uint64_t> arrived_{0};
};

void Delay(uint32_t pauses) {
  for (uint32_t i = 0; i < pauses; ++i) Pause();
}

// Three producer threads and a consumer that drains only signalled mailboxes, with a small
// per-drain budget (so sources stay pending), and sleeps when nothing is signalled or pending.
// Producers signal and ring as the router does: after a was_empty push, deferred to the end of
// a burst or before they wait for room. A signal lost between Signal and TakeSignals would leave
// the consumer asleep with records pending: the wait times out and the test fails.
TEST(MailboxSignalsStressTest, ConsumerDrainingOnlySignalledMailboxesMissesNoRecord) {
  constexpr uint32_t kProducers = 3;
  const uint64_t records = kSanitized ? 60'000 : 200'000;  // per producer
  constexpr auto kLostWakeupTimeout = std::chrono::seconds(10);
  MailboxMatrix matrix(kProducers + 1, kSleepingCapacity, kStressMaxRecord);
  Doorbell doorbell;
  std::vector<std::thread> producers;
  for (uint32_t source = 1; source <= kProducers; ++source) {
    producers.emplace_back([&, source] {
      Mailbox& mailbox = matrix.mailbox(source, 0);
      Slot slots[kStressMaxRecord];
      std::mt19937 random(source);
      bool signal_due = false;
      const auto signal = [&] {
        if (!signal_due) return;
        signal_due = false;
        matrix.Signal(source, 0);
        doorbell.Ring();
      };
      uint64_t burst_left = 0;
      for (uint64_t sequence = 0; sequence < records; ++sequence) {
        const size_t length = FillStressRecord(sequence, slots);
        PushResult result;
        while (!(result = mailbox.TryPush(std::span<const Slot>(slots, length))).pushed) {
          signal();  // the end of a router iteration: never wait for room with a signal held
          std::this_thread::yield();
        }
        signal_due = signal_due || result.was_empty;
        if (burst_left == 0) {
          burst_left = random() % 64;
          signal();
          std::this_thread::yield();
        } else {
          --burst_left;
        }
      }
      signal();
    });
  }
  StressChecker checkers[kProducers + 1];
  const auto done = [&] {
    for (uint32_t source = 1; source <= kProducers; ++source) {
      if (checkers[source].next() < records) return false;
    }
    return true;
  };
  uint64_t pending = 0;
  uint64_t lost_wakeups = 0;
  uint64_t sleeps = 0;
  while (!done()) {
    uint64_t sources = pending | matrix.TakeSignals(0, 0);
    pending = 0;
    while (sources != 0) {
      const uint32_t source = static_cast<uint32_t>(std::countr_zero(sources));
      sources &= sources - 1;
      if (matrix.mailbox(source, 0).Drain(checkers[source], 16).more) {
        pending |= uint64_t{1} << source;
      }
    }
    if (pending != 0 || done()) continue;
    ++sleeps;
    if (!doorbell.Wait(kLostWakeupTimeout)) {
      ++lost_wakeups;  // recover by draining everything, so the test fails instead of hanging
      for (uint32_t source = 1; source <= kProducers; ++source) pending |= uint64_t{1} << source;
    }
  }
  for (std::thread& producer : producers) producer.join();
  EXPECT_EQ(lost_wakeups, 0u);
  for (uint32_t source = 1; source <= kProducers; ++source) {
    EXPECT_EQ(checkers[source].next(), records) << source;
    EXPECT_EQ(checkers[source].errors(), 0u) << source;
    EXPECT_EQ(matrix.mailbox(source, 0).Drain(checkers[source], 1).records, 0u) << source;
  }
  RecordProperty("sleeps", static_cast<int>(std::min<uint64_t>(sleeps, INT32_MAX)));
}

TEST(MailboxStressTest, LockstepPushAndDrainNeverLoseAWakeup) {
  const uint64_t rounds = kSanitized ? 3'000 : 10'000;
  Mailbox mailbox(64, 1);
  SpinBarrier start;
  SpinBarrier end;
  std::atomic<bool> was_empty{false};
  std::thread producer([&] {
    std::mt19937 random(1);
    const Slot slot{};
    for (uint64_t round = 0; round < rounds; ++round) {
      start.Wait(round);
      Delay(random() % 32);
      const PushResult result = mailbox.TryPush({&slot, 1});
      was_empty.store(result.pushed && result.was_empty, std::memory_order_relaxed);
      end.Wait(round);
    }
  });
  std::mt19937 random(2);
  uint64_t consumed = 0;
  uint64_t lost_wakeups = 0;
  for (uint64_t round = 0; round < rounds; ++round) {
    start.Wait(round);
    Delay(random() % 32);
    const DrainResult result = mailbox.Drain([&](std::span<const Slot>) { ++consumed; }, 1000);
    end.Wait(round);
    const bool record_left = consumed < round + 1;
    if (!result.more && record_left && !was_empty.load(std::memory_order_relaxed)) {
      ++lost_wakeups;
    }
  }
  producer.join();
  EXPECT_EQ(lost_wakeups, 0u) << "of " << rounds << " rounds";
  mailbox.Drain([&](std::span<const Slot>) { ++consumed; }, 1000);  // the woken consumer
  EXPECT_EQ(consumed, rounds);
}

}  // namespace
}  // namespace ringmq::shard
