// Quiescent-state-based reclamation (QSBR) for the read-mostly structures shared by all shards
// (the subscription trie, its child tables and the retained store).
//
// Readers are the shards. A reader never takes a lock and never writes shared memory on the
// read path; instead it announces, once per event loop iteration, the global epoch it has seen
// (Quiescent). Writers unlink an object, hand it to Retire, and Collect frees it once every
// online reader has announced an epoch newer than the one the object was retired in.
//
// Thread safety
// - Quiescent(i), Offline(i) and Online(i) are called only by the thread that owns reader slot
//   i (one shard per slot). They are wait-free: no lock, no allocation.
// - Retire and Collect may be called from any thread, concurrently; they serialize on an
//   internal mutex. Deleters run on the thread that calls Retire or Collect, under that mutex,
//   so a deleter must not call back into the domain.
// - The destructor requires that no reader holds any pointer and no other call is running; it
//   runs every pending deleter.
//
// Reader contract
// - Between Online(i) and the next Quiescent(i) or Offline(i), reader i may hold pointers into
//   shared structures it loaded (with acquire) from them. It holds none across Quiescent(i) or
//   Offline(i). While offline it reads no shared structure at all.
// - A reader starts offline. A shard calls Online once at start-up, Quiescent once per loop
//   iteration, and Offline/Online around every blocking io_uring wait so that an idle shard does
//   not hold up reclamation.
//
// Writer contract
// - Retire(object) only after the object has been made unreachable for readers that start a new
//   traversal (unlinked with a store), and without touching the object afterwards: Retire itself
//   may free it at once when every reader is offline.
// - Retire collects by itself only when the list grows (below); the owner also calls Collect
//   periodically (for example once per loop iteration of one shard) so that the last few
//   retired objects do not wait for the next burst of writes.
//
// Invariants
// - global_epoch_ only grows, by one per Retire (under mutex_), so it is greater than every tag.
// - A reader's announced value is kOffline or an epoch it read from global_epoch_; once online it
//   only grows.
// - A retired object with tag t (global_epoch_ when it was retired) is freed only when each
//   reader slot reads kOffline or a value > t.
//
// Why that is enough (memory ordering)
// 1. Quiescent: the reader loads global_epoch_ (acquire) and stores it to its slot (release).
//    Everything the reader accessed before is ordered before the store, and Collect loads the
//    slot with acquire, so the free happens after those accesses. An object with tag t < e was
//    unlinked before the Retire that raised the epoch from t to t + 1 (acq_rel read-modify-write,
//    so reading any later value synchronizes with it); so after reading e the reader cannot
//    reach the object any more. Hence the slot need only be written when the epoch changed, and
//    an object is freed by the first Collect after every online reader passed Quiescent once.
// 2. Offline: a release store of kOffline orders all earlier accesses before a free that reads
//    it.
// 3. Online is the Dekker case: the writer may have read kOffline and decided to free an object
//    while the reader is coming back. Reader: store announcement; seq_cst fence; read the
//    structure. Writer: unlink; seq_cst fence (in Collect, after Retire); read announcements. The
//    two fences are ordered one way or the other in the single total order S: either the writer's
//    fence comes first, and the reader's reads see the unlink (it cannot find the object), or the
//    reader's fence comes first, and the writer's read sees the announcement (it keeps every
//    object with a tag >= the announced epoch, so it keeps this one unless the announced epoch
//    was read after that object's Retire, and then case 1 applies).
//    Under ThreadSanitizer, which does not model fences, both sides use a seq_cst read-modify-write
//    of one shared word instead, which gives the same guarantee through the modification order
//    of that word.
//
// Bound on retired memory
// Retire collects when the list reaches collect_threshold_, and then sets the threshold to
// max(kCollectThresholdMin, 2 x what survived). So the list holds at most twice what was retired
// within one grace period (the longest loop iteration among online readers) plus
// kCollectThresholdMin entries, and Collect costs O(1) amortized per Retire plus O(readers).
// A reader that stays online without calling Quiescent stops reclamation: that is a bug of the
// reader (a shard must never block while online).
#ifndef RINGMQ_CONCURRENT_EPOCH_H_
#define RINGMQ_CONCURRENT_EPOCH_H_

#include <absl/base/thread_annotations.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/assert.h"
#include "common/mutex.h"

namespace ringmq::concurrent {

class EpochDomain {
 public:
  using Deleter = void (*)(void*);

  // Retire collects once this many objects are pending (and at twice the survivors after that).
  static constexpr size_t kCollectThresholdMin = 256;
  static constexpr uint32_t kMaxReaders = 1024;

  explicit EpochDomain(uint32_t reader_count);
  ~EpochDomain();

  EpochDomain(const EpochDomain&) = delete;
  EpochDomain& operator=(const EpochDomain&) = delete;

  uint32_t reader_count() const { return reader_count_; }

  // Reader i holds no shared pointer at this point. Hot path: one shared load, and one store to
  // the reader's own cache line only when the epoch moved since the last call.
  void Quiescent(uint32_t reader) {
    RINGMQ_ASSERT(reader < reader_count_);
    ReaderSlot& slot = readers_[reader];
    const uint64_t announced = slot.epoch.load(std::memory_order_relaxed);
    RINGMQ_ASSERT(announced != kOffline);  // Quiescent only while online
    const uint64_t global = global_epoch_.load(std::memory_order_acquire);
    if (global != announced) {
      slot.epoch.store(global, std::memory_order_release);
    }
  }

  // Reader i stops reading shared structures (before a blocking wait).
  void Offline(uint32_t reader);
  // Reader i may read shared structures again (after a blocking wait, or at start-up).
  void Online(uint32_t reader);
  bool IsOnline(uint32_t reader) const;

  // Frees `object` with `deleter(object)` once every reader online now has passed a quiescent
  // point. The object must already be unreachable for new traversals.
  void Retire(void* object, Deleter deleter) ABSL_LOCKS_EXCLUDED(mutex_);

  // Frees every retired object that no online reader can still hold.
  // Returns how many objects were freed.
  size_t Collect() ABSL_LOCKS_EXCLUDED(mutex_);

  // Objects retired and not yet freed.
  size_t pending() const ABSL_LOCKS_EXCLUDED(mutex_);
  // Objects freed so far by Retire/Collect (not counting the destructor).
  uint64_t freed_total() const { return freed_total_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint64_t kOffline = 0;
  static constexpr uint64_t kFirstEpoch = 1;

  // One cache line per reader so that announcements do not false-share.
  struct alignas(64) ReaderSlot {
    std::atomic<uint64_t> epoch{kOffline};
  };

  struct Retired {
    void* object;
    Deleter deleter;
    uint64_t epoch;  // global_epoch_ when retired
  };

  size_t CollectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // seq_cst fence of the Online/Collect handshake (see the header comment).
  void StoreLoadBarrier();

  const uint32_t reader_count_;
  std::unique_ptr<ReaderSlot[]> readers_;
  alignas(64) std::atomic<uint64_t> global_epoch_{kFirstEpoch};
  // Only touched by the ThreadSanitizer variant of StoreLoadBarrier.
  alignas(64) std::atomic<uint64_t> barrier_word_{0};
  std::atomic<uint64_t> freed_total_{0};

  mutable Mutex mutex_;
  std::vector<Retired> retired_ ABSL_GUARDED_BY(mutex_);
  size_t collect_threshold_ ABSL_GUARDED_BY(mutex_) = kCollectThresholdMin;
};

}  // namespace ringmq::concurrent

#endif  // RINGMQ_CONCURRENT_EPOCH_H_
