#include "persist/journal.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "common/assert.h"

namespace ringmq::persist {

Journal::Journal(const Options& options) : options_(options) {}

Journal::~Journal() {
  if (fd_ >= 0) close(fd_);
  if (old_fd_ >= 0) close(old_fd_);
}

void Journal::Open(SegmentFile file) {
  RINGMQ_ASSERT(fd_ < 0 && file.fd >= 0);
  fd_ = file.fd;
  writing_fd_ = file.fd;
  writing_offset_ = file.size;
  file_size_ = file.size;
}

uint64_t Journal::Append(const Record& record) {
  RINGMQ_ASSERT(is_open());
  AppendRecord(filling_, record);
  return open_epoch_;
}

bool Journal::has_pending() const {
  return !filling_.empty() || !writing_.empty() || !old_tail_.empty() || io_in_flight();
}

uint64_t Journal::pending_bytes() const {
  return filling_.size() + writing_.size() + old_tail_.size();
}

void Journal::Take(ByteBuffer& source, uint64_t epoch) {
  RINGMQ_ASSERT(!io_in_flight() && writing_done_ == writing_.size() && !source.empty());
  if (writing_.empty()) {
    writing_.swap(source);  // double buffering: source keeps the drained buffer's capacity
  } else {
    writing_.insert(writing_.end(), source.begin(), source.end());
    source.clear();
  }
  RINGMQ_ASSERT(epoch > writing_epoch_);
  writing_epoch_ = epoch;
}

std::optional<Journal::Io> Journal::NextIo(uint64_t now_ms, bool force_sync) {
  if (!is_open() || io_in_flight()) return std::nullopt;
  if (failing_ && now_ms < retry_at_ms_) return std::nullopt;
  const bool old_segment = rotating() && writing_fd_ == old_fd_;
  // A batch cut short (or being retried) is finished before more bytes join it.
  if (writing_done_ == writing_.size()) {
    if (old_segment && !old_tail_.empty()) {
      Take(old_tail_, old_tail_epoch_);
    } else if (!old_segment && !filling_.empty()) {
      Take(filling_, open_epoch_++);
    }
  }
  if (writing_.empty()) return std::nullopt;
  const size_t remaining = writing_.size() - writing_done_;
  if (writing_done_ == 0) unsynced_since_ms_ = now_ms;
  // A retry syncs whatever the durability; so do the old segment's last bytes, because the
  // fdatasyncs that follow are on the new segment's fd.
  const bool sync = options_.durability == Durability::kFsync || failing_ || force_sync ||
                    old_segment || now_ms >= unsynced_since_ms_ + options_.sync_interval_ms;
  if (remaining == 0 && !sync) return std::nullopt;
  Io io;
  io.fd = writing_fd_;
  io.offset = writing_offset_ + writing_done_;
  io.bytes = std::span<const uint8_t>(writing_.data() + writing_done_, remaining);
  io.sync = sync;
  io.epoch = writing_epoch_;
  io_bytes_ = remaining;
  io_sync_ = sync;
  write_pending_ = true;
  sync_pending_ = sync;
  write_result_ = 0;
  sync_result_ = 0;
  return io;
}

void Journal::OnWriteDone(int result, uint64_t now_ms) {
  RINGMQ_ASSERT(write_pending_);
  write_pending_ = false;
  write_result_ = result;
  if (!sync_pending_) Finish(now_ms);
}

void Journal::OnSyncDone(int result, uint64_t now_ms) {
  RINGMQ_ASSERT(io_sync_ && sync_pending_);
  sync_pending_ = false;
  sync_result_ = result;
  if (!write_pending_) Finish(now_ms);
}

void Journal::Finish(uint64_t now_ms) {
  if (write_result_ < 0) {
    Fail(-write_result_, now_ms);  // a linked sync was cancelled: nothing of its own to count
    return;
  }
  const auto written = static_cast<size_t>(write_result_);
  RINGMQ_ASSERT(written <= io_bytes_);
  writing_done_ += written;
  bytes_written_ += written;
  if (writing_fd_ == fd_) file_size_ = std::max(file_size_, writing_offset_ + writing_done_);
  if (written < io_bytes_) {
    // A short write (the kernel cancelled a linked sync) continues at once; one that wrote
    // nothing would spin, so it backs off like an error.
    if (written == 0) Fail(EIO, now_ms);
    return;
  }
  if (!io_sync_) {
    RINGMQ_ASSERT(options_.durability == Durability::kInterval && !failing_);
    durable_epoch_ = std::max(durable_epoch_, writing_epoch_);
    return;
  }
  if (sync_result_ < 0) {
    Fail(-sync_result_, now_ms);
    return;
  }
  Synced();
}

void Journal::Fail(int error, uint64_t now_ms) {
  ++errors_;
  last_error_ = error;
  failing_ = true;
  retry_delay_ms_ = retry_delay_ms_ == 0 ? kRetryMinMs : std::min(retry_delay_ms_ * 2, kRetryMaxMs);
  retry_at_ms_ = now_ms + retry_delay_ms_;
  writing_done_ = 0;  // every unsynced byte again: the failed sync may have dropped them
}

void Journal::Synced() {
  durable_epoch_ = std::max(durable_epoch_, writing_epoch_);
  synced_epoch_ = writing_epoch_;
  ++syncs_;
  failing_ = false;
  retry_delay_ms_ = 0;
  writing_offset_ += writing_.size();
  writing_.clear();
  writing_done_ = 0;
  if (writing_.capacity() > kIdleCapacityBytes) ByteBuffer().swap(writing_);
  MaybeSwitchSegment();
}

void Journal::MaybeSwitchSegment() {
  if (!rotating()) return;
  if (writing_fd_ == old_fd_) {
    if (!writing_.empty() || !old_tail_.empty() || io_in_flight()) return;
    writing_fd_ = fd_;
    writing_offset_ = new_segment_offset_;
  }
  if (synced_epoch_ >= rotate_epoch_) {
    close(old_fd_);
    old_fd_ = -1;
    rotation_done_ = true;
  }
}

void Journal::Rotate(SegmentFile file) {
  RINGMQ_ASSERT(is_open() && !rotating() && file.fd >= 0);
  if (!filling_.empty()) {
    old_tail_.swap(filling_);
    old_tail_epoch_ = open_epoch_++;
  }
  old_fd_ = fd_;
  fd_ = file.fd;
  new_segment_offset_ = file.size;
  file_size_ = file.size;
  rotate_epoch_ = open_epoch_;
  rotation_done_ = false;
  MaybeSwitchSegment();
}

bool Journal::TakeRotationDone() { return std::exchange(rotation_done_, false); }

}  // namespace ringmq::persist
