// A provided-buffer ring (IORING_REGISTER_PBUF_RING) that multishot recv draws from.
//
// Receive memory belongs to the shard, not to connections: an idle connection holds no receive
// buffer. A completion names the buffer the kernel filled; the shard parses it in place and
// hands it back with Recycle() before the next submit, so buffers are only out while bytes are
// being processed.
//
// Budget: count x size bytes per shard (default 512 x 4 KiB = 2 MiB). Only a working set of
// them is in the ring: kInitialBuffers at first, doubled (up to count) whenever one loop
// iteration used all of it. The kernel hands buffers out in ring order, cycling through every
// buffer in the ring, so buffers beyond the working set are never written and their pages never
// become resident: a shard whose iterations never complete more than 32 receives keeps 128 KiB
// of receive memory resident, not the whole budget. An iteration that used the whole set may
// have left receives without a buffer (-ENOBUFS, counted in recv_enobufs; the shard re-arms
// them): a few receives each time the set grows, which is at most log2(count /
// kInitialBuffers) times per shard. (Buffers taken by receives that complete during a submit
// in the middle of an iteration are recycled in the next one; the count is approximate.)
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_IO_BUFFER_RING_H_
#define RINGMQ_IO_BUFFER_RING_H_

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"

namespace ringmq::io {

class BufferRing {
 public:
  // `count` must be a power of two no larger than 32768.
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(io_uring* ring, uint16_t group_id,
                                                            uint32_t count, uint32_t size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_id_; }

  // The bytes of buffer `id` that a completion reported as filled.
  std::span<const uint8_t> Filled(uint16_t id, uint32_t length) const;

  // Returns buffer `id` to the kernel. Visible to the kernel at the next Publish().
  void Recycle(uint16_t id);
  // Makes recycled buffers visible to the kernel (one release store for a batch); once per
  // loop iteration. Grows the working set first if this batch recycled all of it.
  void Publish();

  // Buffers in the working set (at most count).
  uint32_t active() const { return active_; }

  static constexpr uint32_t kInitialBuffers = 32;

 private:
  BufferRing() = default;
  void Advance();  // makes the pending_ recycled buffers visible

  io_uring* ring_ = nullptr;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  size_t ring_bytes_ = 0;
  uint8_t* memory_ = nullptr;  // mmap'd, memory_bytes_ long
  size_t memory_bytes_ = 0;
  uint32_t count_ = 0;
  uint32_t active_ = 0;  // buffers 0 .. active_-1 have been given to the kernel
  uint32_t size_ = 0;
  uint16_t group_id_ = 0;
  int pending_ = 0;
};

}  // namespace ringmq::io

#endif  // RINGMQ_IO_BUFFER_RING_H_
