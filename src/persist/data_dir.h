// A persistence data directory: the files, the MANIFEST that names the current run, recovery,
// and the creation of segment files (docs/persistence.md).
//
//   <dir>/LOCK                          flock()ed while a broker (or `ringmq db`) uses the dir
//   <dir>/MANIFEST                      "ringmq-manifest 1\nrun <R>\nshards <N>\n" + CRC line
//   <dir>/shard-<S>.<R>.<G>.log         shard S's segment G of run R (record.h)
//
// A run is one broker process. At start the broker recovers the run the MANIFEST names (every
// shard's newest segment whose snapshot is complete), starts run R+1 (each shard writes a
// snapshot of its share into segment 0 of R+1), and only when every shard's snapshot is durable
// commits R+1 (MANIFEST written to a temporary file, fsynced, renamed, directory fsynced) and
// deletes the files of other runs. A crash before the commit leaves R current; the files of R+1
// are garbage that the next start deletes. So the thread count may change between runs.
//
// Recovery of one segment: records are applied in order. The segment must open with its
// snapshot: kSnapshotBegin first, one kSnapshotEnd whose count is the records between them. A
// torn tail (record.h kTornTail) is where the log ends: the file is truncated there (counted in
// the report). Two more rules tell a crash's cut from damage (data_dir.cc IsTornTail): a
// kCorrupt record is a torn tail too when the rest of its 4 KiB page is zeros (that page kept
// its old contents: the synced data ended there, later pages may have landed) or when no valid
// record starts anywhere after it (bytes no writer wrote end the file); a kTornTail record whose
// length runs past the end is damage when a valid record starts after it (its length field
// was hit, which would otherwise silently drop every record after it). A corrupt record in the
// middle, an inconsistent one (DurableState::Apply: "...: inconsistent: <why>") or a broken
// snapshot structure stops recovery with the error "<file>: corrupt record at offset <N>: <why>",
// unless `truncate_corrupt` (option persistence_truncate_corrupt), which drops it and everything
// after it in that segment and goes on (counted and logged). A segment whose snapshot is incomplete
// (no kSnapshotEnd) is ignored in favour of the one before it (it was being written when the
// process ended) and left as it is; with none complete, that shard's state is empty only if the
// segment is the run's first and empty of anything but the header, else an error. Only the
// segment recovery uses is ever truncated, and nothing is with `read_only`.
//
// Files are created with mode 0600, directories with 0700 (the log holds message payloads).
//
// Blocking file I/O: used at start-up, by `ringmq db` and by tests, never by a serving shard
// except CreateSegment for a compaction (one open + header write, no fsync: the shard's ring
// syncs it with the snapshot) and DeleteOlderSegments after one.
//
// Thread safety: one DataDir per process; CreateSegment and DeleteOlderSegments may be called
// from any shard (they only open, list and unlink files, each call with its own handles);
// everything else from one thread.
#ifndef RINGMQ_PERSIST_DATA_DIR_H_
#define RINGMQ_PERSIST_DATA_DIR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "persist/state.h"

namespace ringmq::persist {

struct RecoveryReport {
  uint64_t run = 0;                // the run recovered (0: empty directory)
  uint32_t shards = 0;             // its shard count
  uint64_t files = 0;              // segments read
  uint64_t bytes = 0;              // bytes read
  uint64_t records = 0;            // records applied
  uint64_t torn_tails = 0;         // segments that ended in a torn record (truncated there)
  uint64_t torn_bytes = 0;         // bytes cut off
  uint64_t corrupt_truncated = 0;  // segments cut at a corrupt record (truncate_corrupt only)
  uint64_t sessions = 0;
  uint64_t deliveries = 0;
  uint64_t retained = 0;
  uint64_t duration_ms = 0;
};

struct SegmentFile {
  int fd = -1;        // opened O_WRONLY | O_CLOEXEC; the caller owns it
  uint64_t size = 0;  // bytes in the file (the header): the offset of the next write
  uint64_t run = 0;
  uint64_t segment = 0;
  std::string path;
};

class DataDir {
 public:
  // Creates `path` (and parents) if needed, takes the lock and reads the MANIFEST (none: run
  // 0); an error names the path and what failed (another process holds the lock: "in use by
  // another ringmq"; a MANIFEST whose CRC or lines do not check: "corrupt MANIFEST"; one of
  // another format version: "written by format version V; this ringmq reads 1").
  static absl::StatusOr<std::unique_ptr<DataDir>> Open(const std::string& path);
  ~DataDir();
  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  struct RecoverOptions {
    bool truncate_corrupt = false;
    bool read_only = false;  // `ringmq db`: never truncates or deletes
  };
  // Reads the current run (see the header comment) and merges its shards' states, retained
  // deletions dropped (max_retained_version still counts them). An empty or new directory
  // recovers an empty state. Errors: a segment of another format version ("<file>: written by
  // format version V; this ringmq reads 1"), a corrupt record (file and offset), a missing
  // segment, a segment header naming another shard, run or segment. `report` may be null.
  absl::StatusOr<RecoveredState> Recover(const RecoverOptions& options, RecoveryReport* report);

  // The run the MANIFEST names (0: none yet) and its shard count, as Open read them or
  // CommitRun wrote them.
  uint64_t current_run() const { return current_run_; }
  uint32_t current_shards() const { return current_shards_; }

  // Creates shard `shard`'s segment `segment` of run `run` (truncating a leftover), writes its
  // header and returns it open for writing at `size`. `sync`: fdatasync the file and the
  // directory before returning (start-up); otherwise the caller syncs (through its ring).
  absl::StatusOr<SegmentFile> CreateSegment(uint32_t shard, uint64_t run, uint64_t segment,
                                            bool sync);
  // Makes `run` with `shards` shards the current run, durably, then deletes every segment
  // file of other runs.
  absl::Status CommitRun(uint64_t run, uint32_t shards);
  // Deletes shard `shard`'s segments of `run` older than `segment` (after a compaction's new
  // segment is durable). Blocking unlink; rare.
  void DeleteOlderSegments(uint32_t shard, uint64_t run, uint64_t segment);

  const std::string& path() const { return path_; }
  std::string SegmentPath(uint32_t shard, uint64_t run, uint64_t segment) const;
  // An fd of the directory (for fsync through a ring after a new segment was created).
  int dir_fd() const { return dir_fd_; }

 private:
  struct SegmentResult;
  DataDir(std::string path, int dir_fd, int lock_fd);
  absl::Status ReadManifest();
  // Applies one segment's records to `state` (see the header comment).
  absl::StatusOr<SegmentResult> RecoverSegment(uint32_t shard, uint64_t run, uint64_t segment,
                                               const RecoverOptions& options, DurableState& state);
  // Recovers shard `shard` from its newest complete segment (`segments`: newest first).
  absl::Status RecoverShard(uint32_t shard, const std::vector<uint64_t>& segments,
                            const RecoverOptions& options, RecoveryReport& report,
                            RecoveredState& recovered);

  std::string path_;
  int dir_fd_ = -1;
  int lock_fd_ = -1;
  uint64_t current_run_ = 0;
  uint32_t current_shards_ = 0;
};

}  // namespace ringmq::persist

#endif  // RINGMQ_PERSIST_DATA_DIR_H_
