// ByteBuffer: a std::vector of bytes whose resize() leaves the new bytes uninitialized.
//
// For buffers that are grown and then written in full, such as a connection's output, which the
// codec encodes packets into in place (Session::WriteOutput, Connection::QueuePacket):
// std::vector<uint8_t>::resize zero-fills every appended byte first, a second pass over each
// delivered payload. Everything else is std::vector: capacity is kept across clear(), growth is
// geometric, and the bytes resize() adds must be written before they are read.
//
// Thread safety: as std::vector.
#ifndef RINGMQ_COMMON_BYTE_BUFFER_H_
#define RINGMQ_COMMON_BYTE_BUFFER_H_

#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace ringmq {

// std::allocator, except that a value constructed without arguments is default-initialized
// (for bytes: left as it is) instead of value-initialized (zeroed).
template <typename T>
class DefaultInitAllocator : public std::allocator<T> {
 public:
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };

  DefaultInitAllocator() = default;
  template <typename U>
  explicit DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}

  template <typename U>
  void construct(U* pointer) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(pointer)) U;
  }
  template <typename U, typename... Args>
  void construct(U* pointer, Args&&... args) {
    std::construct_at(pointer, std::forward<Args>(args)...);
  }
};

using ByteBuffer = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

}  // namespace ringmq

#endif  // RINGMQ_COMMON_BYTE_BUFFER_H_
