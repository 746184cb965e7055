// Compiled by meson.build at configuration with clang -Wthread-safety -Werror: must compile.
// Its twin thread_safety_violation.cc must not; together they show the annotations of
// src/common/mutex.h are checked.
#include "common/mutex.h"

namespace {

class Counter {
 public:
  void Increment() {
    ringmq::MutexLock lock(&mutex_);
    ++value_;
  }

 private:
  ringmq::Mutex mutex_;
  int value_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace

int main() {
  Counter counter;
  counter.Increment();
  return 0;
}
