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
// At most one I/O (write, then its sync) is in flight. Records appended meanwhile go into the
// other buffer (double buffering), so the loop never waits for the disk.
//
// Durability kInterval: NextIo writes whenever records are pending but adds the fdatasync only
// when sync_interval_ms passed since the last one (or at Close); durable_epoch() then follows
// the writes, and synced_epoch() the fdatasyncs.
//
// Errors: a failed write or fdatasync (-errno: ENOSPC, EIO, ...) leaves durable_epoch() where it
// was; the same bytes are written again at the same offset (and synced) after a back-off that
// doubles from kRetryMinMs to kRetryMaxMs, until they succeed. failing() is true from the
// failure until a retry succeeds; errors() counts failures. Note: after a failed fdatasync the
// kernel may have dropped the dirty pages; rewriting the bytes before the next sync is what
// makes the retry sound.
//
// Bounds: pending_bytes() (appended, not yet durable) is reported so the router can refuse new
// durable work beyond its bound; the journal itself never drops a record.
//
// Segments: Rotate(file) switches to a new segment (a compaction: its snapshot is appended
// next); the old segment's bytes still in flight complete first; old_segment_durable() tells
// when every record of the previous segment and the new segment's first epoch are durable, so
// the caller may delete the old file.
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_PERSIST_JOURNAL_H_
#define RINGMQ_PERSIST_JOURNAL_H_

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

  struct Options {
    Durability durability = Durability::kFsync;
    uint32_t sync_interval_ms = 100;
  };
  explicit Journal(const Options& options);
  ~Journal();  // closes the file
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Starts appending to `file` (its header is already there, at [0, file.size)). Takes the fd.
  void Open(SegmentFile file);
  bool is_open() const { return fd_ >= 0; }

  // Appends a record; returns the epoch whose completion makes it durable.
  uint64_t Append(const Record& record);
  uint64_t open_epoch() const { return open_epoch_; }
  uint64_t durable_epoch() const { return durable_epoch_; }
  uint64_t synced_epoch() const { return synced_epoch_; }

  struct Io {
    int fd = -1;
    uint64_t offset = 0;
    std::span<const uint8_t> bytes;  // valid until OnWriteDone
    bool sync = false;               // link an fdatasync after the write
    uint64_t epoch = 0;
  };
  // The I/O to submit now, if any (none while one is in flight or a retry is not due).
  // `force_sync`: sync now whatever the durability (shutdown).
  std::optional<Io> NextIo(uint64_t now_ms, bool force_sync = false);
  // The write completed: bytes written or -errno. A short write is continued by the next
  // NextIo (the linked sync, if any, was cancelled by the kernel: OnSyncDone(-ECANCELED)).
  void OnWriteDone(int result, uint64_t now_ms);
  // The fdatasync completed (0 or -errno). Without a sync in the Io, not called.
  void OnSyncDone(int result, uint64_t now_ms);
  bool io_in_flight() const { return in_flight_; }
  // Whether anything is appended but not yet durable (the loop must not sleep for long).
  bool has_pending() const;

  bool failing() const { return failing_; }
  int last_error() const { return last_error_; }  // errno of the last failure
  uint64_t errors() const { return errors_; }
  uint64_t pending_bytes() const;  // appended, not yet durable
  uint64_t file_size() const { return file_size_; }  // bytes of the segment on disk (written)
  uint64_t bytes_written() const { return bytes_written_; }  // all segments, since start
  uint64_t syncs() const { return syncs_; }

  // Switches to `file` (a new segment); see the header comment.
  void Rotate(SegmentFile file);
  bool rotating() const { return old_fd_ >= 0; }
  // After Rotate: the new segment's first epoch (its snapshot) is durable and the old
  // segment's fd is closed; returns true once (then the caller deletes the old file).
  bool TakeRotationDone();

 private:
  Options options_;
  int fd_ = -1;
  int old_fd_ = -1;
  uint64_t rotate_epoch_ = 0;  // the new segment's first epoch
  bool rotation_done_ = false;
  uint64_t file_size_ = 0;
  ByteBuffer filling_;   // records of open_epoch_
  ByteBuffer writing_;   // the batch being written (or retried)
  uint64_t writing_epoch_ = 0;
  uint64_t writing_offset_ = 0;  // file offset of writing_[0]
  size_t writing_done_ = 0;      // bytes of writing_ written
  int writing_fd_ = -1;
  bool in_flight_ = false;
  bool sync_in_flight_ = false;
  bool failing_ = false;
  int last_error_ = 0;
  uint64_t errors_ = 0;
  uint64_t retry_at_ms_ = 0;
  uint64_t retry_delay_ms_ = 0;
  uint64_t open_epoch_ = 1;
  uint64_t durable_epoch_ = 0;
  uint64_t synced_epoch_ = 0;
  uint64_t written_epoch_ = 0;  // kInterval: written, not yet synced
  uint64_t last_sync_ms_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t syncs_ = 0;
};

}  // namespace ringmq::persist

#endif  // RINGMQ_PERSIST_JOURNAL_H_
