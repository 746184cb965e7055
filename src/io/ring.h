// One io_uring per shard, and the start-up probe of every kernel feature ringmq uses.
//
// ProbeKernel() runs once on the main thread before any shard starts, so a missing feature stops
// start-up with a message that says what to change instead of failing later on a shard.
// Ring::Create() must be called on the thread that will use the ring: the ring is created with
// IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, which ties it to that thread.
//
// Thread safety: a Ring is used only by the thread that created it.
#ifndef RINGMQ_IO_RING_H_
#define RINGMQ_IO_RING_H_

#include <liburing.h>

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ringmq::io {

// Checks io_uring availability (kernel.io_uring_disabled, seccomp), the setup flags, the
// features (EXT_ARG for timed waits) and every opcode the shards submit.
absl::Status ProbeKernel();

class Ring {
 public:
  // `entries`: submission queue size; the completion queue is 4x larger so bursts of
  // multishot completions do not overflow it.
  static absl::StatusOr<std::unique_ptr<Ring>> Create(uint32_t entries);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  io_uring* get() { return &ring_; }

  // A free submission entry. When the queue is full, the queued entries are submitted first;
  // never returns null.
  io_uring_sqe* NextSqe();

  // Submits queued entries and waits up to `timeout_ms` for at least one completion.
  // Returns the number of entries submitted (or a negative errno other than ETIME/EINTR).
  int SubmitAndWait(uint32_t timeout_ms);

 private:
  Ring() = default;
  io_uring ring_{};
  bool initialized_ = false;
};

}  // namespace ringmq::io

#endif  // RINGMQ_IO_RING_H_
