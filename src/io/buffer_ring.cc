#include "io/buffer_ring.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>

#include "common/assert.h"
#include "io/errno_status.h"

namespace ringmq::io {

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(io_uring* ring, uint16_t group_id,
                                                               uint32_t count, uint32_t size) {
  RINGMQ_ASSERT(count > 0 && count <= 32768 && (count & (count - 1)) == 0);
  RINGMQ_ASSERT(size > 0);
  std::unique_ptr<BufferRing> result(new BufferRing());
  result->ring_ = ring;
  result->count_ = count;
  result->size_ = size;
  result->group_id_ = group_id;
  // liburing 2.3 has no io_uring_setup_buf_ring: map the ring memory and register it ourselves.
  result->ring_bytes_ = sizeof(io_uring_buf) * count;
  void* mapped = mmap(nullptr, result->ring_bytes_, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mapped == MAP_FAILED) return ErrnoStatus(errno, "mmap of the provided-buffer ring");
  result->buffer_ring_ = static_cast<io_uring_buf_ring*>(mapped);
  io_uring_buf_ring_init(result->buffer_ring_);

  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uint64_t>(mapped);
  registration.ring_entries = count;
  registration.bgid = group_id;
  const int registered = io_uring_register_buf_ring(ring, &registration, 0);
  if (registered < 0) {
    munmap(mapped, result->ring_bytes_);
    result->buffer_ring_ = nullptr;
    return ErrnoStatus(-registered,
                       "io_uring_register_buf_ring (provided-buffer rings need Linux 5.19+)");
  }
  // A mapping of its own, not zeroed by us: the kernel writes a buffer before handing it out,
  // and pages of buffers outside the working set are never touched, so they stay out of the
  // resident set. No transparent huge pages: one would make a whole 2 MiB resident at the
  // first touch (hosts with THP `always`).
  result->memory_bytes_ = size_t{count} * size;
  void* memory = mmap(nullptr, result->memory_bytes_, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (memory == MAP_FAILED) return ErrnoStatus(errno, "mmap of the receive buffers");
  result->memory_ = static_cast<uint8_t*>(memory);
  (void)madvise(memory, result->memory_bytes_, MADV_NOHUGEPAGE);  // advice only
  result->active_ = std::min(count, kInitialBuffers);
  for (uint32_t id = 0; id < result->active_; ++id) result->Recycle(static_cast<uint16_t>(id));
  result->Advance();
  return result;
}

BufferRing::~BufferRing() {
  if (buffer_ring_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
    munmap(buffer_ring_, ring_bytes_);
  }
  if (memory_ != nullptr) munmap(memory_, memory_bytes_);  // after the kernel let go of them
}

std::span<const uint8_t> BufferRing::Filled(uint16_t id, uint32_t length) const {
  RINGMQ_ASSERT(id < count_ && length <= size_);
  return {memory_ + size_t{id} * size_, length};
}

void BufferRing::Recycle(uint16_t id) {
  RINGMQ_ASSERT(id < count_);
  io_uring_buf_ring_add(buffer_ring_, memory_ + size_t{id} * size_, size_, id,
                        io_uring_buf_ring_mask(count_), pending_);
  ++pending_;
}

void BufferRing::Publish() {
  if (pending_ == 0) return;
  // Every buffer taken since the last Publish has been recycled (the shard parses in place and
  // recycles before the next submit), so pending_ is how many this iteration needed.
  if (static_cast<uint32_t>(pending_) >= active_ && active_ < count_) {
    const uint32_t grown = std::min(count_, active_ * 2);
    for (uint32_t id = active_; id < grown; ++id) Recycle(static_cast<uint16_t>(id));
    active_ = grown;
  }
  Advance();
}

void BufferRing::Advance() {
  io_uring_buf_ring_advance(buffer_ring_, pending_);
  pending_ = 0;
}

}  // namespace ringmq::io
