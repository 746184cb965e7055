#include "io/ring.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/assert.h"
#include "io/errno_status.h"

namespace ringmq::io {
namespace {

constexpr uint32_t kSetupFlags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;

struct RequiredOpcode {
  uint8_t opcode;
  const char* name;
  const char* kernel;
};

// Every opcode a shard submits, with the kernel that introduced it.
constexpr RequiredOpcode kRequiredOpcodes[] = {
    {IORING_OP_ACCEPT, "ACCEPT", "5.5"},      {IORING_OP_RECV, "RECV", "5.6"},
    {IORING_OP_SEND, "SEND", "5.6"},          {IORING_OP_CLOSE, "CLOSE", "5.6"},
    {IORING_OP_SHUTDOWN, "SHUTDOWN", "5.11"}, {IORING_OP_READ, "READ", "5.6"},
    {IORING_OP_MSG_RING, "MSG_RING", "5.18"},
};

absl::Status SetupError(int error_number) {
  switch (error_number) {
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(
          "io_uring is not permitted: check `sysctl kernel.io_uring_disabled` (must be 0, or 1 "
          "with this user in the io_uring group) and any seccomp profile of the container");
    case ENOSYS:
      return absl::UnimplementedError(
          "io_uring is not available: the kernel is too old or io_uring is blocked by seccomp");
    case EINVAL:
      return absl::UnimplementedError(
          "io_uring_setup rejected IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN: Linux 6.1 or newer "
          "is required");
    case ENOMEM:
      return absl::ResourceExhaustedError(
          "io_uring_setup: out of memory (check `ulimit -l`, locked memory for the rings)");
    default:
      return ErrnoStatus(error_number, "io_uring_setup");
  }
}

absl::Status InitRing(io_uring* ring, uint32_t entries) {
  io_uring_params params{};
  params.flags = kSetupFlags;
  params.cq_entries = entries * 4;
  const int result = io_uring_queue_init_params(entries, ring, &params);
  if (result < 0) return SetupError(-result);
  if ((params.features & IORING_FEAT_EXT_ARG) == 0) {
    io_uring_queue_exit(ring);
    return absl::UnimplementedError(
        "io_uring lacks IORING_FEAT_EXT_ARG (timed waits): Linux 5.11 or newer is required");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ProbeKernel() {
  io_uring ring{};
  if (absl::Status status = InitRing(&ring, 8); !status.ok()) return status;
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  absl::Status result = absl::OkStatus();
  if (probe == nullptr) {
    result = absl::UnimplementedError("io_uring opcode probe failed: Linux 5.6 or newer needed");
  } else {
    for (const RequiredOpcode& required : kRequiredOpcodes) {
      if (!io_uring_opcode_supported(probe, required.opcode)) {
        result = absl::UnimplementedError(absl::StrCat("io_uring opcode ", required.name,
                                                       " is not supported: Linux ", required.kernel,
                                                       " or newer is required"));
        break;
      }
    }
    io_uring_free_probe(probe);
  }
  io_uring_queue_exit(&ring);
  return result;
}

absl::StatusOr<std::unique_ptr<Ring>> Ring::Create(uint32_t entries) {
  std::unique_ptr<Ring> ring(new Ring());
  if (absl::Status status = InitRing(&ring->ring_, entries); !status.ok()) return status;
  ring->initialized_ = true;
  return ring;
}

Ring::~Ring() {
  if (initialized_) io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::NextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  RINGMQ_ASSERT(sqe != nullptr);
  return sqe;
}

int SubmitAndWaitImpl(io_uring* ring, uint32_t timeout_ms) {
  __kernel_timespec timeout{};
  timeout.tv_sec = timeout_ms / 1000;
  timeout.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
  io_uring_cqe* cqe = nullptr;
  const int result = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &timeout, nullptr);
  if (result == -ETIME || result == -EINTR) return 0;
  return result;
}

int Ring::SubmitAndWait(uint32_t timeout_ms) { return SubmitAndWaitImpl(&ring_, timeout_ms); }

}  // namespace ringmq::io
