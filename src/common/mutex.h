// The mutex of ringmq's few serialized writers (trie, retained store, epoch domain).
//
// A std::mutex with Abseil's thread-safety annotations, so ABSL_GUARDED_BY and
// ABSL_EXCLUSIVE_LOCKS_REQUIRED are checked by clang's -Wthread-safety (set in meson.build for
// clang; the clang build is build-fuzz/, scripts/build.sh fuzz, which compiles all of src/).
// Configuration with clang fails if tests/compile_check/thread_safety_violation.cc, an unlocked
// access to a guarded member, compiles. GCC does not check them. Not absl::Mutex: Debian's Abseil is a
// shared library built without ThreadSanitizer, whose lock-free fast path TSan cannot see, so
// every guarded access would be reported as a race; std::mutex goes through pthread, which TSan
// intercepts. The only mutexes on the per-message path are those of a retained PUBLISH (the
// retained store's writer mutex, and inside it the epoch domain's when the old message is
// retired); docs/performance.md ("Retained publishes and their locks") measures what they cost.
//
// Thread safety: a mutex.
#ifndef RINGMQ_COMMON_MUTEX_H_
#define RINGMQ_COMMON_MUTEX_H_

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace ringmq {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mutex_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mutex) ABSL_EXCLUSIVE_LOCK_FUNCTION(mutex) : mutex_(mutex) {
    mutex_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mutex_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mutex_;
};

}  // namespace ringmq

#endif  // RINGMQ_COMMON_MUTEX_H_
