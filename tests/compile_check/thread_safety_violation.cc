// Compiled by meson.build at configuration with clang -Wthread-safety -Werror: must NOT compile,
// because Increment writes a member guarded by mutex_ without holding it. If it compiles, the
// lock annotations of src/common/mutex.h are not being checked and configuration stops.
#include "common/mutex.h"

namespace {

class Counter {
 public:
  void Increment() { ++value_; }  // The deliberate violation: mutex_ is not held.

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
