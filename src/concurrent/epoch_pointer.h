// One immutable object published to every shard, replaced now and then by one writer (the
// broker's main thread on SIGHUP): the auth data, the NATS credentials.
//
// Load() is one acquire load: no lock, no write. A replaced object is retired into the shards'
// QSBR domain (concurrent/epoch.h) and freed once every shard has passed a quiescent point, so a
// shard may use the pointer it loaded until the end of its loop iteration and must not keep it
// longer.
//
// Thread safety: Load() from any shard while online in the epoch domain (or from any thread when
// no Replace can run: start-up, tests); Replace() from one thread at a time.
#ifndef RINGMQ_CONCURRENT_EPOCH_POINTER_H_
#define RINGMQ_CONCURRENT_EPOCH_POINTER_H_

#include <atomic>
#include <memory>

#include "concurrent/epoch.h"

namespace ringmq::concurrent {

template <typename T>
class EpochPointer {
 public:
  EpochPointer() = default;
  ~EpochPointer() { delete current_.load(std::memory_order_relaxed); }
  EpochPointer(const EpochPointer&) = delete;
  EpochPointer& operator=(const EpochPointer&) = delete;

  // The current object, or null before the first Replace.
  const T* Load() const { return current_.load(std::memory_order_acquire); }

  // Publishes `object`; the previous one is retired into `epochs` (freed once no shard can still
  // hold it). `epochs` may be null only when no reader runs (start-up, tests).
  void Replace(std::unique_ptr<T> object, EpochDomain* epochs) {
    const T* previous = current_.exchange(object.release(), std::memory_order_acq_rel);
    if (previous == nullptr) return;
    if (epochs == nullptr) {
      delete previous;
      return;
    }
    epochs->Retire(const_cast<T*>(previous), [](void* retired) { delete static_cast<T*>(retired); });
  }

 private:
  std::atomic<const T*> current_{nullptr};
};

}  // namespace ringmq::concurrent

#endif  // RINGMQ_CONCURRENT_EPOCH_POINTER_H_
