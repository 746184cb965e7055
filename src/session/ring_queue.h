// A FIFO of movable values in one power-of-two ring, allocated on the first push: a queue that
// never held a value costs no heap at all. (libstdc++'s std::deque allocates a 512-byte node and
// a 64-byte map even when empty, which was most of the memory of an idle connection.)
//
// A queue or buffer that drains keeps a small capacity; only large idle ones are released. A
// ring of at most kKeepBytes is kept when the queue drains, so a consumer that keeps up (each
// value popped before the next few are pushed) reuses one ring instead of paying an allocation
// and a free per value; a ring that a burst grew beyond that is released once drained, and
// Trim() releases a small one too, for an owner going idle for long (an offline session).
//
// Besides push_back/pop_front it offers indexing from the front and erase at an index (shifting
// the later elements, for in-flight windows of at most a few hundred entries).
//
// The ring's storage is charged to the memory budget (memory/budget.h) while it is held.
//
// Thread safety: none; one owner.
#ifndef RINGMQ_SESSION_RING_QUEUE_H_
#define RINGMQ_SESSION_RING_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "common/assert.h"
#include "memory/budget.h"

namespace ringmq::session {

template <typename T>
class RingQueue {
 public:
  RingQueue() = default;
  ~RingQueue() {
    if (capacity_ != 0) memory::Charge(-static_cast<int64_t>(capacity_ * sizeof(T)));
  }
  RingQueue(RingQueue&& other) noexcept { Swap(other); }
  RingQueue& operator=(RingQueue&& other) noexcept {
    RingQueue moved(std::move(other));
    Swap(moved);
    return *this;
  }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }

  T& operator[](size_t i) {
    RINGMQ_ASSERT(i < size_);
    return slots_[(head_ + i) & (capacity_ - 1)];
  }
  const T& operator[](size_t i) const {
    RINGMQ_ASSERT(i < size_);
    return slots_[(head_ + i) & (capacity_ - 1)];
  }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }

  void push_back(T value) {
    if (size_ == capacity_) Grow();
    slots_[(head_ + size_) & (capacity_ - 1)] = std::move(value);
    ++size_;
  }

  void pop_front() {
    RINGMQ_ASSERT(size_ > 0);
    slots_[head_] = T();  // release what the value holds now, not when the slot is reused
    head_ = (head_ + 1) & (capacity_ - 1);
    if (--size_ == 0) {
      head_ = 0;
      if (capacity_ * sizeof(T) > kKeepBytes) Release();
    }
  }

  // Releases the ring if the queue is empty (whatever its size).
  void Trim() {
    if (size_ == 0 && capacity_ != 0) Release();
  }

  // Removes the element at index i, keeping the order of the others.
  void erase(size_t i) {
    RINGMQ_ASSERT(i < size_);
    if (i == 0) return pop_front();  // so a queue drains only through pop_front
    for (size_t j = i; j + 1 < size_; ++j) (*this)[j] = std::move((*this)[j + 1]);
    (*this)[size_ - 1] = T();
    --size_;
  }

  // The index of the first element satisfying `predicate`, or size() if none.
  template <typename Predicate>
  size_t find_if(Predicate predicate) const {
    for (size_t i = 0; i < size_; ++i) {
      if (predicate((*this)[i])) return i;
    }
    return size_;
  }

  // A drained ring of at most this many bytes is kept (see above).
  static constexpr size_t kKeepBytes = 4096;

 private:
  static constexpr size_t kFirstCapacity = 4;

  void Grow() {
    const size_t capacity = capacity_ == 0 ? kFirstCapacity : capacity_ * 2;
    auto slots = std::make_unique<T[]>(capacity);
    for (size_t i = 0; i < size_; ++i) slots[i] = std::move((*this)[i]);
    slots_ = std::move(slots);
    memory::Charge(static_cast<int64_t>((capacity - capacity_) * sizeof(T)));
    capacity_ = static_cast<uint32_t>(capacity);
    head_ = 0;
  }

  void Release() {
    memory::Charge(-static_cast<int64_t>(capacity_ * sizeof(T)));
    slots_.reset();
    capacity_ = 0;
    head_ = 0;
  }

  void Swap(RingQueue& other) noexcept {
    std::swap(slots_, other.slots_);
    std::swap(head_, other.head_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

  std::unique_ptr<T[]> slots_;
  uint32_t head_ = 0;
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
};

}  // namespace ringmq::session

#endif  // RINGMQ_SESSION_RING_QUEUE_H_
