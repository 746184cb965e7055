// StableVector<T, kChunk>: an append-only array of T whose elements never move, stored in
// chunks of kChunk elements.
//
// For per-connection and per-session tables (the shard's connection slots, the router's
// session entries) that are indexed by a small integer, grow to hundreds of thousands of
// entries, reuse freed indexes through a free list, and are pointed into. std::deque gives the
// same stability, but libstdc++ allocates its nodes as 512 bytes, so an element of 257..512
// bytes takes a whole node (a 264-byte slot cost 320 bytes with the allocator's rounding) and
// one of 171..256 bytes half a node. Here the element costs sizeof(T) plus an eighth of a
// pointer per chunk of kChunk, and a chunk is allocated only when the first element in it is
// appended (so a shard with few connections holds one chunk).
//
// kChunk need not be a power of two (the index is divided by a constant). For large tables,
// kChunkBytesFor<T> elements make a chunk of at most 16 KiB: mimalloc has a size class of
// exactly 16 KiB and puts four in a 64 KiB page, whereas 64 elements of, say, 176 bytes
// (11,264 B) are rounded up to its 12 KiB class and leave 4 KiB of each page unused.
//
// Bounds: size() < 2^32; operator[] asserts the index.
// Thread safety: none; one owner.
#ifndef RINGMQ_COMMON_STABLE_VECTOR_H_
#define RINGMQ_COMMON_STABLE_VECTOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "common/assert.h"

namespace ringmq {

inline constexpr size_t kStableVectorChunkBytes = 16 * 1024;
template <typename T>
inline constexpr size_t kChunkBytesFor = kStableVectorChunkBytes / sizeof(T);

template <typename T, size_t kChunk = 64>
class StableVector {
  static_assert(kChunk > 0, "a chunk holds at least one element");

 public:
  StableVector() = default;
  StableVector(const StableVector&) = delete;
  StableVector& operator=(const StableVector&) = delete;
  ~StableVector() {
    for (size_t i = size_; i > 0; --i) Address(i - 1)->~T();
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  T& operator[](size_t i) {
    RINGMQ_ASSERT(i < size_);
    return *Address(i);
  }
  const T& operator[](size_t i) const {
    RINGMQ_ASSERT(i < size_);
    return *const_cast<StableVector*>(this)->Address(i);
  }

  // Appends a value-initialized element; references to the others stay valid.
  T& emplace_back() {
    RINGMQ_ASSERT(size_ < UINT32_MAX);
    if (size_ == chunks_.size() * kChunk) {
      chunks_.push_back(std::make_unique_for_overwrite<Storage[]>(kChunk));
    }
    T* element = ::new (static_cast<void*>(Address(size_))) T();
    ++size_;
    return *element;
  }

  // The bytes of storage held: whole chunks, whether or not every element is constructed.
  size_t allocated_bytes() const { return chunks_.size() * kChunk * sizeof(T); }

  template <typename Fn>
  void ForEach(Fn fn) {
    for (size_t i = 0; i < size_; ++i) fn(*Address(i));
  }

 private:
  struct Storage {
    alignas(T) unsigned char bytes[sizeof(T)];
  };

  T* Address(size_t i) {
    return std::launder(reinterpret_cast<T*>(chunks_[i / kChunk][i % kChunk].bytes));
  }

  std::vector<std::unique_ptr<Storage[]>> chunks_;
  size_t size_ = 0;
};

}  // namespace ringmq

#endif  // RINGMQ_COMMON_STABLE_VECTOR_H_
