// Counting replacements of the global operator new and delete, for the tests that prove a path
// allocates nothing (tests/**/*_noalloc_test.cc): the counters, the ways to arm them
// (AllocationsDuring, AllocationCounter) and the check that the replacement is in
// (AllocationsOfOneNew).
//
// Allocations are counted only while `counting` is armed, so that gtest's own do not interfere.
// Every form of new and delete is replaced, so that what a replaced new returns is always freed
// by a replaced delete (ASan checks that they match). The replacement applies to the whole
// program: include this header in one file of an executable of its own, never in
// ringmq_unit_tests. Define RINGMQ_COUNTING_NEW_COUNTERS_ONLY first to get the counters without
// the replacement (a test that replaces malloc instead).
//
// Thread safety: the counters are atomics; arm and read them from the test's thread.
#ifndef RINGMQ_TESTS_COMMON_COUNTING_NEW_H_
#define RINGMQ_TESTS_COMMON_COUNTING_NEW_H_

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace alloc_counting {

inline std::atomic<bool> counting{false};
inline std::atomic<size_t> allocations{0};

inline void CountAllocation() {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
  }
}

// Not inlined into operator new: GCC at -O2 would otherwise pair the inlined malloc with the
// replaced delete's free at call sites and warn (-Wmismatched-new-delete), although both sides
// of the replacement match.
[[gnu::noinline]] inline void* CountedAllocate(std::size_t size, std::size_t alignment) {
  CountAllocation();
  if (size == 0) size = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  // aligned_alloc wants a size that is a multiple of the alignment.
  return std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}

inline void* CountedAllocateOrThrow(std::size_t size, std::size_t alignment) {
  void* pointer = CountedAllocate(size, alignment);
  if (pointer == nullptr) throw std::bad_alloc();
  return pointer;
}

inline constexpr std::size_t kDefaultAlignment = alignof(std::max_align_t);

// How many times operator new ran during `run()`: counting is armed around it only, from 0.
template <typename Run>
size_t AllocationsDuring(Run&& run) {
  allocations.store(0);
  counting.store(true);
  run();
  counting.store(false);
  return allocations.load();
}

// Counts the allocations from construction to Count() (or to its end): for a check whose
// counted part is not one lambda (several statements, results kept for later assertions).
class AllocationCounter {
 public:
  AllocationCounter() {
    allocations.store(0);
    counting.store(true);
  }
  ~AllocationCounter() { counting.store(false); }
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  // Stops counting; the allocations counted since construction.
  size_t Count() const {
    counting.store(false);
    return allocations.load();
  }
};

// A check that the replacement is in the executable: one counted new (volatile: the pair cannot
// be elided). A counting test that does not see this 1 proves nothing.
inline size_t AllocationsOfOneNew() {
  return AllocationsDuring([] {
    int* volatile number = new int(1);
    delete number;
  });
}

}  // namespace alloc_counting

#ifndef RINGMQ_COUNTING_NEW_COUNTERS_ONLY

void* operator new(std::size_t size) {
  return alloc_counting::CountedAllocateOrThrow(size, alloc_counting::kDefaultAlignment);
}
void* operator new[](std::size_t size) {
  return alloc_counting::CountedAllocateOrThrow(size, alloc_counting::kDefaultAlignment);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
  return alloc_counting::CountedAllocateOrThrow(size, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
  return alloc_counting::CountedAllocateOrThrow(size, static_cast<std::size_t>(alignment));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return alloc_counting::CountedAllocate(size, alloc_counting::kDefaultAlignment);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return alloc_counting::CountedAllocate(size, alloc_counting::kDefaultAlignment);
}
void operator delete(void* pointer) noexcept { std::free(pointer); }
void operator delete[](void* pointer) noexcept { std::free(pointer); }
void operator delete(void* pointer, std::size_t) noexcept { std::free(pointer); }
void operator delete[](void* pointer, std::size_t) noexcept { std::free(pointer); }
void operator delete(void* pointer, std::align_val_t) noexcept { std::free(pointer); }
void operator delete[](void* pointer, std::align_val_t) noexcept { std::free(pointer); }
void operator delete(void* pointer, std::size_t, std::align_val_t) noexcept { std::free(pointer); }
void operator delete[](void* pointer, std::size_t, std::align_val_t) noexcept {
  std::free(pointer);
}

#endif  // RINGMQ_COUNTING_NEW_COUNTERS_ONLY

#endif  // RINGMQ_TESTS_COMMON_COUNTING_NEW_H_
