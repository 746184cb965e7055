#include "concurrent/epoch.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace ringmq::concurrent {

#if defined(__SANITIZE_THREAD__)
#define RINGMQ_EPOCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RINGMQ_EPOCH_TSAN 1
#endif
#endif

EpochDomain::EpochDomain(uint32_t reader_count)
    : reader_count_(reader_count), readers_(std::make_unique<ReaderSlot[]>(reader_count)) {
  RINGMQ_ASSERT(reader_count > 0);
  RINGMQ_ASSERT(reader_count <= kMaxReaders);
}

EpochDomain::~EpochDomain() {
  MutexLock lock(&mutex_);
  for (const Retired& retired : retired_) {
    retired.deleter(retired.object);
  }
  retired_.clear();
}

void EpochDomain::StoreLoadBarrier() {
#ifdef RINGMQ_EPOCH_TSAN
  // ThreadSanitizer ignores fences (and GCC warns about them under -fsanitize=thread). Read-
  // modify-writes of one word are totally ordered, and the later one synchronizes with the earlier
  // one, which is the same store->load ordering the fence provides.
  barrier_word_.fetch_add(1, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

void EpochDomain::Offline(uint32_t reader) {
  RINGMQ_ASSERT(reader < reader_count_);
  ReaderSlot& slot = readers_[reader];
  RINGMQ_ASSERT(slot.epoch.load(std::memory_order_relaxed) != kOffline);
  // Release: every access made while online happens before a free that reads kOffline.
  slot.epoch.store(kOffline, std::memory_order_release);
}

void EpochDomain::Online(uint32_t reader) {
  RINGMQ_ASSERT(reader < reader_count_);
  ReaderSlot& slot = readers_[reader];
  RINGMQ_ASSERT(slot.epoch.load(std::memory_order_relaxed) == kOffline);
  // A stale epoch here is only conservative: it keeps more objects alive, never fewer.
  const uint64_t global = global_epoch_.load(std::memory_order_acquire);
  RINGMQ_ASSERT(global != kOffline);
  slot.epoch.store(global, std::memory_order_relaxed);
  // Dekker with Collect: the announcement is visible to Collect, or this reader's following
  // loads see every unlink made before Collect's barrier.
  StoreLoadBarrier();
}

bool EpochDomain::IsOnline(uint32_t reader) const {
  RINGMQ_ASSERT(reader < reader_count_);
  return readers_[reader].epoch.load(std::memory_order_relaxed) != kOffline;
}

void EpochDomain::Retire(void* object, Deleter deleter) {
  RINGMQ_ASSERT(object != nullptr);
  RINGMQ_ASSERT(deleter != nullptr);
  MutexLock lock(&mutex_);
  // Tag with the current epoch and advance it: a reader that reads the new value (acquire) sees
  // the unlink that came before this call, so the next Quiescent of each reader suffices.
  const uint64_t epoch = global_epoch_.fetch_add(1, std::memory_order_acq_rel);
  retired_.push_back({object, deleter, epoch});
  if (retired_.size() >= collect_threshold_) {
    CollectLocked();
    collect_threshold_ = std::max(kCollectThresholdMin, 2 * retired_.size());
  }
}

size_t EpochDomain::Collect() {
  MutexLock lock(&mutex_);
  return CollectLocked();
}

size_t EpochDomain::CollectLocked() {
  // Orders every unlink made before Retire (by this or a previous lock holder) before the loads of
  // the announcements below.
  StoreLoadBarrier();
  uint64_t oldest_online = std::numeric_limits<uint64_t>::max();
  for (uint32_t i = 0; i < reader_count_; ++i) {
    const uint64_t announced = readers_[i].epoch.load(std::memory_order_acquire);
    if (announced != kOffline) {
      oldest_online = std::min(oldest_online, announced);
    }
  }

  // Free every object retired before the oldest announcement; keep the rest in order.
  const size_t before = retired_.size();
  size_t kept = 0;
  size_t freed = 0;
  for (size_t i = 0; i < retired_.size(); ++i) {
    Retired& retired = retired_[i];
    if (retired.epoch < oldest_online) {
      retired.deleter(retired.object);
      ++freed;
    } else {
      retired_[kept++] = retired;
    }
  }
  retired_.resize(kept);
  RINGMQ_ASSERT(kept + freed == before);
  freed_total_.fetch_add(freed, std::memory_order_relaxed);
  return freed;
}

size_t EpochDomain::pending() const {
  MutexLock lock(&mutex_);
  return retired_.size();
}

}  // namespace ringmq::concurrent
