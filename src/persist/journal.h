// A shard's persistence log writer, sans-IO: the router appends records; the shard's loop asks
// for the next I/O (a write of everything appended so far at the segment's end, linked to an
// fdatasync), submits it on its ring and reports the completions. Group commit: the records of
// one loop iteration (and of the iterations while an I/O is in flight) form one epoch, made
// durable by one write and one fdatasync; the router holds every acknowledgement that depends
// on an epoch until durable_epoch() reaches it, then releases them all at once.
//
//   Append(record) -> epoch E = open_epoch()   ... NextIo(now): write [offset, bytes] + fdatasync
//   OnWriteDone(n) (partial writes continue)   ... OnSyncDone(0) -> durable_epoch() = E
//
// NextIo closes the open epoch (the next Append opens E + 1) when it hands out that epoch's
// bytes. At most one I/O (write, then its sync) is in flight. Records appended meanwhile go
// into the other buffer (double buffering), so the loop never waits for the disk.
//
// Durability kInterval: NextIo writes whenever records are pending but adds the fdatasync only
// when sync_interval_ms passed since the first write after the last fdatasync (or when asked
// with force_sync); durable_epoch() then follows the writes, and synced_epoch() the
// fdatasyncs. The bytes written but not yet synced stay in memory (they are rewritten if the
// fdatasync fails, see Errors), so the next batch is copied behind them instead of swapped. An
// Io may then carry no bytes and only the sync: the shard submits the zero-length write anyway
// (it completes with 0), or the fdatasync alone and reports OnWriteDone(0) itself.
//
// Errors: a failed write or fdatasync (-errno: ENOSPC, EIO, ...) leaves durable_epoch() where it
// was; every byte not yet synced is written again at the same offset (and synced, whatever the
// durability) after a back-off that doubles from kRetryMinMs to kRetryMaxMs, until it succeeds.
// failing() is true from the failure until a retry's fdatasync succeeds; errors() counts
// failures. Why rewrite: after a failed fdatasync the kernel may have dropped the dirty pages
// (marked them clean without writing them), so only rewriting the bytes before the next sync
// makes the retry sound. A short write is not an error: the rest is written at once.
//
// Bounds: pending_bytes() (held in memory: appended and not yet synced) is reported so the
// router can refuse new durable work beyond its bound; the journal itself never drops a record.
//
// Segments: Rotate(file) switches to a new segment (a compaction: its snapshot is appended
// next). Records appended before Rotate go to the old segment: its remaining bytes are written
// and fdatasynced first (also under kInterval), then the new segment's. TakeRotationDone()
// tells once when every record of the old segment and the new segment's first epoch are
// synced and the old fd is closed; the caller then fsyncs the directory (the new file's entry)
// and deletes the old file.
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_PERSIST_JOURNAL_H_
#define RINGMQ_PERSIST_JOURNAL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "common/byte_buffer.h"
#include "persist/data_dir.h"
#include "persist/record.h"
#include "ringmq/config.h"

namespace ringmq::persist {

class Journal {
 public:
  static constexpr uint64_t kRetryMinMs = 10;
  static constexpr uint64_t kRetryMaxMs = 1000;
  // A write buffer that drained keeps its capacity up to this; a larger one (after a burst)
  // is released.
  static constexpr size_t kIdleCapacityBytes = size_t{4} << 20;

  struct Options {
    Durability durability = Durability::kFsync;
    uint32_t sync_interval_ms = 100;
  };
  explicit Journal(const Options& options);
  // Closes the file(s). Only with no I/O in flight: a linked fdatasync is bound to its fd when
  // the ring issues it, so it could reach a file that reused the number.
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Starts appending to `file` (its header is already there, at [0, file.size)). Takes the fd.
  // Called once.
  void Open(SegmentFile file);
  bool is_open() const { return fd_ >= 0; }

  // Appends a record; returns the epoch whose completion makes it durable. Requires is_open().
  uint64_t Append(const Record& record);
  uint64_t open_epoch() const { return open_epoch_; }
  uint64_t durable_epoch() const { return durable_epoch_; }
  uint64_t synced_epoch() const { return synced_epoch_; }

  struct Io {
    int fd = -1;
    uint64_t offset = 0;
    std::span<const uint8_t> bytes;  // valid until OnWriteDone; may be empty (a sync only)
    bool sync = false;               // link an fdatasync after the write
    uint64_t epoch = 0;              // the highest epoch the write carries
  };
  // The I/O to submit now, if any (none while one is in flight or a retry is not due).
  // `force_sync`: sync now whatever the durability (shutdown).
  std::optional<Io> NextIo(uint64_t now_ms, bool force_sync = false);
  // The write completed: bytes written or -errno. A short write is continued by the next
  // NextIo (the linked sync, if any, was cancelled by the kernel: OnSyncDone(-ECANCELED)).
  void OnWriteDone(int result, uint64_t now_ms);
  // The fdatasync completed (0 or -errno). Without a sync in the Io, not called. The two
  // completions may be reported in either order; the I/O ends when both are in.
  void OnSyncDone(int result, uint64_t now_ms);
  bool io_in_flight() const { return write_pending_ || sync_pending_; }
  // Whether anything is appended but not yet synced (the loop must not sleep for long).
  bool has_pending() const;

  bool failing() const { return failing_; }
  int last_error() const { return last_error_; }  // errno of the last failure
  uint64_t errors() const { return errors_; }
  uint64_t pending_bytes() const;                    // held in memory: appended, not yet synced
  uint64_t file_size() const { return file_size_; }  // bytes of the segment on disk (written)
  uint64_t bytes_written() const { return bytes_written_; }  // all segments, since start
  uint64_t syncs() const { return syncs_; }

  // Switches to `file` (a new segment); see the header comment. Requires is_open() and
  // !rotating(); the caller appends the new segment's snapshot next.
  void Rotate(SegmentFile file);
  bool rotating() const { return old_fd_ >= 0; }
  // After Rotate: the new segment's first epoch (its snapshot) is synced and the old
  // segment's fd is closed; returns true once (then the caller deletes the old file).
  bool TakeRotationDone();

 private:
  // Moves `source` (the open epoch's records, or the old segment's tail) behind the batch.
  void Take(ByteBuffer& source, uint64_t epoch);
  // While rotating: once the old segment's bytes are synced, the batch moves to the new one.
  void MaybeSwitchSegment();
  // Both completions of the I/O are in: applies their outcome.
  void Finish(uint64_t now_ms);
  void Fail(int error, uint64_t now_ms);
  void Synced();

  Options options_;
  int fd_ = -1;          // the current segment (where new records go)
  int old_fd_ = -1;      // the previous segment while rotating
  ByteBuffer old_tail_;  // records appended before Rotate, not yet in writing_
  uint64_t old_tail_epoch_ = 0;
  uint64_t rotate_epoch_ = 0;        // the new segment's first epoch
  uint64_t new_segment_offset_ = 0;  // the new segment's size while the old one is written
  bool rotation_done_ = false;
  uint64_t file_size_ = 0;
  ByteBuffer filling_;  // records of open_epoch_
  // The batch: bytes not yet synced, at [writing_offset_, + size) of writing_fd_. The first
  // writing_done_ of them are written (kInterval keeps written, unsynced bytes here).
  ByteBuffer writing_;
  uint64_t writing_epoch_ = 0;   // the highest epoch in writing_
  uint64_t writing_offset_ = 0;  // file offset of writing_[0]
  size_t writing_done_ = 0;      // bytes of writing_ written
  int writing_fd_ = -1;
  // The I/O in flight: what it wrote, whether it has a sync, and the completions so far.
  size_t io_bytes_ = 0;
  bool io_sync_ = false;
  bool write_pending_ = false;
  bool sync_pending_ = false;
  int write_result_ = 0;
  int sync_result_ = 0;
  bool failing_ = false;
  int last_error_ = 0;
  uint64_t errors_ = 0;
  uint64_t retry_at_ms_ = 0;
  uint64_t retry_delay_ms_ = 0;
  uint64_t open_epoch_ = 1;
  uint64_t durable_epoch_ = 0;
  uint64_t synced_epoch_ = 0;
  uint64_t unsynced_since_ms_ = 0;  // kInterval: when the first write after the last sync went
  uint64_t bytes_written_ = 0;
  uint64_t syncs_ = 0;
};

}  // namespace ringmq::persist

#endif  // RINGMQ_PERSIST_JOURNAL_H_
