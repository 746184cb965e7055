// Bounded retries of failed doorbells (io_uring msg_ring) to other shards.
//
// A shard rings another shard's ring when its mailbox to it went from empty to non-empty. The
// ring is submitted with IOSQE_CQE_SKIP_SUCCESS, so only a failure completes (e.g. -EAGAIN or
// -EOVERFLOW when the destination's completion queue is full, -EBADFD for a ring that is not
// one). Without a retry the destination would find its mail only at its next timer tick
// (100 ms). A failed ring is retried on the next loop iterations, at most kMaxRetries times in a
// row: the sender set the mailbox's signal bit before ringing, and the destination takes its
// signals every tick regardless (shard/mailbox.h, MailboxMatrix), so giving up costs latency,
// never a record, and a destination whose ring stays broken cannot keep the sender busy.
//
// Thread safety: one owner thread (the shard's).
#ifndef RINGMQ_SHARD_DOORBELL_RETRIES_H_
#define RINGMQ_SHARD_DOORBELL_RETRIES_H_

#include <cstdint>
#include <vector>

#include "common/assert.h"

namespace ringmq::shard {

class DoorbellRetries {
 public:
  static constexpr uint32_t kMaxRetries = 3;

  explicit DoorbellRetries(uint32_t shard_count) : failures_(shard_count, 0) {
    due_.reserve(shard_count);
  }

  // A ring for new mail (not a retry) was submitted to `shard`: its retry budget starts afresh.
  void OnRing(uint32_t shard) {
    RINGMQ_ASSERT(shard < failures_.size());
    failures_[shard] = 0;
  }

  // A ring to `shard` failed. Returns true if it will be retried (TakeDue), false when the
  // retries in a row are used up.
  bool OnFailure(uint32_t shard) {
    RINGMQ_ASSERT(shard < failures_.size());
    if (failures_[shard] >= kMaxRetries) return false;
    ++failures_[shard];
    for (const uint32_t due : due_) {
      if (due == shard) return true;  // already due (a retry and a fresh ring both failed)
    }
    due_.push_back(shard);
    return true;
  }

  // Calls fn(shard) for every ring due for a retry, and forgets them.
  template <class Fn>
  void TakeDue(Fn&& fn) {
    for (const uint32_t shard : due_) fn(shard);
    due_.clear();
  }

  bool any_due() const { return !due_.empty(); }

 private:
  std::vector<uint32_t> failures_;  // failed rings in a row, per destination shard
  std::vector<uint32_t> due_;       // destinations to ring again, each once
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_DOORBELL_RETRIES_H_
