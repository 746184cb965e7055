#include "io/buffer_ring.h"

#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>

#include "gtest/gtest.h"

namespace ringmq::io {
namespace {

constexpr uint16_t kGroup = 7;

// A ring, a provided-buffer ring on it, and a socket pair whose one end is read through them.
class BufferRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(io_uring_queue_init(64, &ring_, 0), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets_), 0);
    absl::StatusOr<std::unique_ptr<BufferRing>> buffers =
        BufferRing::Create(&ring_, kGroup, 512, 256);
    ASSERT_TRUE(buffers.ok()) << buffers.status();
    buffers_ = std::move(*buffers);
  }
  void TearDown() override {
    buffers_.reset();
    io_uring_queue_exit(&ring_);
    close(sockets_[0]);
    close(sockets_[1]);
  }

  // One receive of a byte written to the other end: returns the id of the buffer it took, and
  // recycles it as the shard does.
  uint16_t ReceiveOne() {
    const uint8_t byte = 1;
    EXPECT_EQ(write(sockets_[1], &byte, 1), 1);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_recv(sqe, sockets_[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    io_uring_cqe* cqe = nullptr;
    EXPECT_EQ(io_uring_submit_and_wait(&ring_, 1), 1);
    EXPECT_EQ(io_uring_wait_cqe(&ring_, &cqe), 0);
    EXPECT_EQ(cqe->res, 1);
    EXPECT_TRUE(cqe->flags & IORING_CQE_F_BUFFER);
    const auto id = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    io_uring_cqe_seen(&ring_, cqe);
    buffers_->Recycle(id);
    return id;
  }

  io_uring ring_{};
  int sockets_[2] = {-1, -1};
  std::unique_ptr<BufferRing> buffers_;
};

// Few receives per iteration: the kernel only ever sees the first kInitialBuffers buffers, so
// the rest of the budget never becomes resident (idle connections cost no receive memory).
TEST_F(BufferRingTest, FewReceivesPerIterationStayInTheInitialWorkingSet) {
  EXPECT_EQ(buffers_->active(), BufferRing::kInitialBuffers);
  for (int iteration = 0; iteration < 2000; ++iteration) {
    for (int i = 0; i < 3; ++i) EXPECT_LT(ReceiveOne(), BufferRing::kInitialBuffers);
    buffers_->Publish();
  }
  EXPECT_EQ(buffers_->active(), BufferRing::kInitialBuffers);
}

// An iteration that used most of the working set leaves it as it is; one that used all of it
// doubles it, up to the budget, and the new buffers are handed out after the old ones.
TEST_F(BufferRingTest, BusyIterationsGrowTheWorkingSetUpToTheBudget) {
  for (uint32_t i = 0; i + 1 < BufferRing::kInitialBuffers; ++i) ReceiveOne();
  buffers_->Publish();
  EXPECT_EQ(buffers_->active(), BufferRing::kInitialBuffers);
  uint32_t expected = BufferRing::kInitialBuffers;
  while (expected < 512) {
    const uint32_t all = buffers_->active();
    for (uint32_t i = 0; i < all; ++i) EXPECT_LT(ReceiveOne(), buffers_->active());
    buffers_->Publish();
    expected *= 2;
    EXPECT_EQ(buffers_->active(), expected);
  }
  for (int i = 0; i < 300; ++i) ReceiveOne();
  buffers_->Publish();
  EXPECT_EQ(buffers_->active(), 512u);
}

}  // namespace
}  // namespace ringmq::io
