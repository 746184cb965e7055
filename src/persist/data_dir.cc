#include "persist/data_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/assert.h"
#include "common/byte_buffer.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "io/errno_status.h"

namespace ringmq::persist {
namespace {

constexpr char kLockName[] = "LOCK";
constexpr char kManifestName[] = "MANIFEST";
constexpr char kManifestTmpName[] = "MANIFEST.tmp";
constexpr char kManifestMagic[] = "ringmq-manifest ";
constexpr size_t kManifestMaxBytes = 4096;
constexpr uint32_t kManifestMaxShards = 1 << 16;  // far above any thread count
constexpr mode_t kDirMode = 0700;
constexpr size_t kPageBytes = 4096;  // the unit a power cut leaves new or old (see ZerosToPageEnd)
constexpr mode_t kFileMode = 0600;

// A segment file name "shard-<S>.<R>.<G>.log", parsed.
struct SegmentName {
  uint32_t shard = 0;
  uint64_t run = 0;
  uint64_t segment = 0;
};

// Parses a decimal number (digits only, no sign, no leading '+') off the front of `text`.
template <typename T>
bool ParseNumber(std::string_view& text, T& value) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end == text.data()) return false;
  text.remove_prefix(static_cast<size_t>(end - text.data()));
  return true;
}

bool Consume(std::string_view& text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

std::optional<SegmentName> ParseSegmentName(std::string_view name) {
  SegmentName parsed;
  if (!Consume(name, "shard-") || !ParseNumber(name, parsed.shard) || !Consume(name, ".") ||
      !ParseNumber(name, parsed.run) || !Consume(name, ".") || !ParseNumber(name, parsed.segment) ||
      name != ".log") {
    return std::nullopt;
  }
  return parsed;
}

std::string SegmentFileName(uint32_t shard, uint64_t run, uint64_t segment) {
  return absl::StrCat("shard-", shard, ".", run, ".", segment, ".log");
}

// Every segment file in the directory `path`.
absl::StatusOr<std::vector<SegmentName>> ListSegments(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return io::ErrnoStatus(errno, absl::StrCat("opendir ", path));
  std::vector<SegmentName> segments;
  while (const dirent* entry = readdir(dir)) {
    if (auto parsed = ParseSegmentName(entry->d_name)) segments.push_back(*parsed);
  }
  closedir(dir);
  return segments;
}

absl::Status WriteAll(int fd, std::span<const uint8_t> bytes, uint64_t offset,
                      const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t written = pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      return io::ErrnoStatus(errno, absl::StrCat("write ", what));
    }
    bytes = bytes.subspan(static_cast<size_t>(written));
    offset += static_cast<uint64_t>(written);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, ByteBuffer& out, const std::string& what) {
  struct stat info;
  if (fstat(fd, &info) != 0) return io::ErrnoStatus(errno, absl::StrCat("stat ", what));
  out.resize(static_cast<size_t>(info.st_size));
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t got = pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return io::ErrnoStatus(errno, absl::StrCat("read ", what));
    }
    if (got == 0) break;  // shrank meanwhile: read what is there
    done += static_cast<size_t>(got);
  }
  out.resize(done);
  return absl::OkStatus();
}

absl::Status MakeDirectories(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && mkdir(prefix.c_str(), kDirMode) != 0 && errno != EEXIST) {
      return io::ErrnoStatus(errno, absl::StrCat("create data directory ", prefix));
    }
    if (slash == std::string::npos) break;
  }
  return absl::OkStatus();
}

std::string ManifestText(uint64_t run, uint32_t shards) {
  std::string text =
      absl::StrCat(kManifestMagic, kFormatVersion, "\nrun ", run, "\nshards ", shards, "\n");
  const uint32_t crc =
      Crc32c(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  absl::StrAppend(&text, absl::StrFormat("crc32c %08x\n", crc));
  return text;
}

struct Manifest {
  uint64_t run = 0;
  uint32_t shards = 0;
};

// Parses the MANIFEST's text; `where` names it in errors.
absl::StatusOr<Manifest> ParseManifest(std::string_view text, const std::string& where) {
  auto corrupt = [&](std::string_view why) {
    return absl::DataLossError(absl::StrCat(where, ": corrupt MANIFEST: ", std::string(why)));
  };
  std::string_view rest = text;
  uint32_t version = 0;
  if (!Consume(rest, kManifestMagic) || !ParseNumber(rest, version) || !Consume(rest, "\n")) {
    return corrupt("no \"ringmq-manifest <version>\" line");
  }
  if (version != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": written by format version ", version, "; this ringmq reads ", kFormatVersion));
  }
  Manifest manifest;
  if (!Consume(rest, "run ") || !ParseNumber(rest, manifest.run) || !Consume(rest, "\n") ||
      !Consume(rest, "shards ") || !ParseNumber(rest, manifest.shards) || !Consume(rest, "\n")) {
    return corrupt("no \"run\" and \"shards\" lines");
  }
  const size_t covered = text.size() - rest.size();
  uint32_t crc = 0;
  if (!Consume(rest, "crc32c ") || rest.size() != 9 || rest.back() != '\n' ||
      std::from_chars(rest.data(), rest.data() + 8, crc, 16).ptr != rest.data() + 8) {
    return corrupt("no \"crc32c\" line at the end");
  }
  const uint32_t expected =
      Crc32c(std::span(reinterpret_cast<const uint8_t*>(text.data()), covered));
  if (crc != expected) {
    return corrupt(absl::StrFormat("CRC32C %08x, expected %08x", crc, expected));
  }
  if (manifest.run == 0 || manifest.shards == 0 || manifest.shards > kManifestMaxShards) {
    return corrupt(absl::StrCat("run ", manifest.run, " with ", manifest.shards, " shards"));
  }
  return manifest;
}

// The format version of a segment file's header, if its magic matches.
std::optional<uint32_t> HeaderVersion(std::span<const uint8_t> file) {
  if (file.size() < sizeof(kMagic) + 4 || std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0) {
    return std::nullopt;
  }
  const uint8_t* v = file.data() + sizeof(kMagic);
  return uint32_t{v[0]} | uint32_t{v[1]} << 8 | uint32_t{v[2]} << 16 | uint32_t{v[3]} << 24;
}

// A record header's length field.
uint32_t LoadLength(const uint8_t* header) {
  return uint32_t{header[0]} | uint32_t{header[1]} << 8 | uint32_t{header[2]} << 16 |
         uint32_t{header[3]} << 24;
}

// Whether a complete, valid record starts anywhere in `rest` (see IsTornTail). Candidates are
// filtered first: the type byte (the header's last) is a known type and the length fits in
// what is left, so zero runs and most garbage cost no CRC. The CRC work is bounded (a payload
// of bytes like 0x01 frames as many long candidates): past kScanBudget plus four times `rest`,
// the answer is "yes", which makes recovery stop and name the record rather than guess.
bool ValidRecordFollows(std::span<const uint8_t> rest) {
  constexpr auto kFirstType = static_cast<uint8_t>(RecordType::kSnapshotBegin);
  constexpr auto kLastType = static_cast<uint8_t>(RecordType::kRetain);
  constexpr uint64_t kScanBudget = uint64_t{64} << 20;
  // SegmentReader scans a zero run at the end once per candidate whose CRC fails.
  size_t trailing_zeros = 0;
  while (trailing_zeros < rest.size() && rest[rest.size() - 1 - trailing_zeros] == 0) {
    ++trailing_zeros;
  }
  uint64_t budget = kScanBudget + 4 * uint64_t{rest.size()};
  Record record;
  for (size_t start = 0; start + kRecordHeaderBytes <= rest.size(); ++start) {
    const uint8_t type = rest[start + kRecordHeaderBytes - 1];
    if (type < kFirstType || type > kLastType) continue;
    const uint32_t body_bytes = LoadLength(rest.data() + start);
    if (body_bytes > rest.size() - start - kRecordHeaderBytes) continue;
    const uint64_t cost = uint64_t{body_bytes} + kRecordHeaderBytes + trailing_zeros;
    if (cost > budget) return true;
    budget -= cost;
    SegmentReader probe(rest.subspan(start));
    if (probe.Next(record) == ReadStatus::kOk) return true;
  }
  return false;
}

// The snapshot that opens every segment: kSnapshotBegin first, then one kSnapshotEnd whose
// count is the records between the two.
class SnapshotCheck {
 public:
  // Why `record` breaks the structure, or empty.
  std::string Check(const Record& record) const {
    if (!begun_ && record.type != RecordType::kSnapshotBegin) {
      return "the segment does not start with kSnapshotBegin";
    }
    if (begun_ && record.type == RecordType::kSnapshotBegin) return "a second kSnapshotBegin";
    if (record.type != RecordType::kSnapshotEnd) return {};
    if (complete_) return "a second kSnapshotEnd";
    if (record.count != records_) {
      return absl::StrCat("kSnapshotEnd counts ", record.count, " records; the snapshot has ",
                          records_);
    }
    return {};
  }
  // Counts a record Check accepted and the state applied.
  void Count(const Record& record) {
    if (record.type == RecordType::kSnapshotBegin) {
      begun_ = true;
    } else if (record.type == RecordType::kSnapshotEnd) {
      complete_ = true;
    } else if (!complete_) {
      ++records_;
    }
  }
  bool complete() const { return complete_; }

 private:
  bool begun_ = false;
  bool complete_ = false;
  uint64_t records_ = 0;
};

// Whether the bytes from `offset` to the end of its page (or of the file) are all zero. A power
// cut leaves each page of the unsynced range with its new or its old contents; the old
// contents of the page where the synced data ends are that data, then zeros.
bool ZerosToPageEnd(std::span<const uint8_t> file, size_t offset) {
  const size_t end = std::min((offset / kPageBytes + 1) * kPageBytes, file.size());
  return std::all_of(file.begin() + static_cast<ptrdiff_t>(offset),
                     file.begin() + static_cast<ptrdiff_t>(end),
                     [](uint8_t byte) { return byte == 0; });
}

// Whether the record at `offset` has a complete header whose length runs past the end.
bool LengthRunsPastEnd(std::span<const uint8_t> file, size_t offset) {
  if (file.size() - offset < kRecordHeaderBytes) return false;
  return LoadLength(file.data() + offset) > file.size() - offset - kRecordHeaderBytes;
}

// Whether the record at `offset`, which SegmentReader did not accept (`status`), is the torn
// tail of a crash rather than damage in the middle. Beyond SegmentReader's rules:
//  - a kCorrupt record is torn if the rest of its page is zeros (the page kept its old
//    contents: the synced data ended there), or if no valid record starts anywhere after it
//    (bytes no writer wrote end the file);
//  - a kTornTail record whose length runs past the end is corrupt if a valid record starts
//    after its header: a crash that cut a record leaves no later record, so its length field
//    was damaged. (A payload could embed bytes that frame as a valid record; then a crash that
//    cut that record reads as corruption: recovery stops and names it, the safe side.)
bool IsTornTail(std::span<const uint8_t> file, size_t offset, ReadStatus status) {
  if (status == ReadStatus::kTornTail) {
    return !LengthRunsPastEnd(file, offset) ||
           !ValidRecordFollows(file.subspan(offset + kRecordHeaderBytes));
  }
  return ZerosToPageEnd(file, offset) || !ValidRecordFollows(file.subspan(offset + 1));
}

}  // namespace

DataDir::DataDir(std::string path, int dir_fd, int lock_fd)
    : path_(std::move(path)), dir_fd_(dir_fd), lock_fd_(lock_fd) {}

DataDir::~DataDir() {
  if (dir_fd_ >= 0) close(dir_fd_);
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

absl::StatusOr<std::unique_ptr<DataDir>> DataDir::Open(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("data directory: empty path");
  if (absl::Status made = MakeDirectories(path); !made.ok()) return made;
  const int dir_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return io::ErrnoStatus(errno, absl::StrCat("open data directory ", path));
  const int lock_fd = openat(dir_fd, kLockName, O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  if (lock_fd < 0) {
    const int error = errno;
    close(dir_fd);
    return io::ErrnoStatus(error, absl::StrCat("open ", path, "/", kLockName));
  }
  std::unique_ptr<DataDir> dir(new DataDir(path, dir_fd, lock_fd));
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", path, " is in use by another ringmq (", kLockName, " is locked)"));
    }
    return io::ErrnoStatus(errno, absl::StrCat("lock ", path, "/", kLockName));
  }
  if (absl::Status read = dir->ReadManifest(); !read.ok()) return read;
  return dir;
}

absl::Status DataDir::ReadManifest() {
  const std::string where = absl::StrCat(path_, "/", kManifestName);
  const int fd = openat(dir_fd_, kManifestName, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();  // a new directory: no run yet
    return io::ErrnoStatus(errno, absl::StrCat("open ", where));
  }
  ByteBuffer bytes;
  absl::Status read = ReadAll(fd, bytes, where);
  close(fd);
  if (!read.ok()) return read;
  if (bytes.size() > kManifestMaxBytes) {
    return absl::DataLossError(absl::StrCat(where, ": corrupt MANIFEST: ", bytes.size(), " bytes"));
  }
  auto manifest = ParseManifest(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), where);
  if (!manifest.ok()) return manifest.status();
  current_run_ = manifest->run;
  current_shards_ = manifest->shards;
  return absl::OkStatus();
}

std::string DataDir::SegmentPath(uint32_t shard, uint64_t run, uint64_t segment) const {
  return absl::StrCat(path_, "/", SegmentFileName(shard, run, segment));
}

absl::StatusOr<SegmentFile> DataDir::CreateSegment(uint32_t shard, uint64_t run, uint64_t segment,
                                                   bool sync) {
  SegmentFile file;
  file.run = run;
  file.segment = segment;
  file.path = SegmentPath(shard, run, segment);
  const std::string name = SegmentFileName(shard, run, segment);
  file.fd = openat(dir_fd_, name.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, kFileMode);
  if (file.fd < 0) return io::ErrnoStatus(errno, absl::StrCat("create ", file.path));
  ByteBuffer header;
  AppendSegmentHeader(header, SegmentHeader{kFormatVersion, shard, run, segment});
  RINGMQ_ASSERT(header.size() == kSegmentHeaderBytes);
  absl::Status status = WriteAll(file.fd, header, 0, file.path);
  if (status.ok() && sync && fdatasync(file.fd) != 0) {
    status = io::ErrnoStatus(errno, absl::StrCat("fdatasync ", file.path));
  }
  if (status.ok() && sync && fsync(dir_fd_) != 0) {
    status = io::ErrnoStatus(errno, absl::StrCat("fsync ", path_));
  }
  if (!status.ok()) {
    close(file.fd);
    return status;
  }
  file.size = header.size();
  return file;
}

absl::Status DataDir::CommitRun(uint64_t run, uint32_t shards) {
  RINGMQ_ASSERT(run > 0 && shards > 0);
  const std::string text = ManifestText(run, shards);
  const std::string tmp_path = absl::StrCat(path_, "/", kManifestTmpName);
  const int fd =
      openat(dir_fd_, kManifestTmpName, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, kFileMode);
  if (fd < 0) return io::ErrnoStatus(errno, absl::StrCat("create ", tmp_path));
  absl::Status status = WriteAll(
      fd, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), 0, tmp_path);
  if (status.ok() && fsync(fd) != 0) {
    status = io::ErrnoStatus(errno, absl::StrCat("fsync ", tmp_path));
  }
  close(fd);
  if (!status.ok()) return status;
  // The rename replaces the MANIFEST atomically; the directory's fsync makes it durable.
  if (renameat(dir_fd_, kManifestTmpName, dir_fd_, kManifestName) != 0) {
    return io::ErrnoStatus(errno, absl::StrCat("rename ", tmp_path));
  }
  if (fsync(dir_fd_) != 0) return io::ErrnoStatus(errno, absl::StrCat("fsync ", path_));
  current_run_ = run;
  current_shards_ = shards;
  auto segments = ListSegments(path_);
  if (!segments.ok()) return segments.status();
  for (const SegmentName& name : *segments) {
    if (name.run == run) continue;
    const std::string file = SegmentFileName(name.shard, name.run, name.segment);
    if (unlinkat(dir_fd_, file.c_str(), 0) != 0 && errno != ENOENT) {
      RINGMQ_LOG_WARNING("persistence: cannot delete %s/%s: %s", path_.c_str(), file.c_str(),
                         strerror(errno));
    }
  }
  return absl::OkStatus();
}

void DataDir::DeleteOlderSegments(uint32_t shard, uint64_t run, uint64_t segment) {
  auto segments = ListSegments(path_);
  if (!segments.ok()) {
    RINGMQ_LOG_WARNING("persistence: %s", segments.status().ToString().c_str());
    return;
  }
  for (const SegmentName& name : *segments) {
    if (name.shard != shard || name.run != run || name.segment >= segment) continue;
    const std::string file = SegmentFileName(name.shard, name.run, name.segment);
    if (unlinkat(dir_fd_, file.c_str(), 0) != 0 && errno != ENOENT) {
      RINGMQ_LOG_WARNING("persistence: cannot delete %s/%s: %s", path_.c_str(), file.c_str(),
                         strerror(errno));
    }
  }
}

// The outcome of reading one segment.
struct DataDir::SegmentResult {
  bool complete = false;  // its snapshot ended (kSnapshotEnd)
  uint64_t bytes = 0;
  uint64_t records = 0;
  bool torn = false;
  uint64_t torn_bytes = 0;
  bool corrupt_truncated = false;
};

absl::StatusOr<DataDir::SegmentResult> DataDir::RecoverSegment(uint32_t shard, uint64_t run,
                                                               uint64_t segment,
                                                               const RecoverOptions& options,
                                                               DurableState& state) {
  const std::string path = SegmentPath(shard, run, segment);
  const std::string name = SegmentFileName(shard, run, segment);
  const int fd = openat(dir_fd_, name.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return io::ErrnoStatus(errno, absl::StrCat("open ", path));
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  ByteBuffer bytes;
  if (absl::Status read = ReadAll(fd, bytes, path); !read.ok()) return read;
  SegmentResult result;
  result.bytes = bytes.size();

  if (const auto version = HeaderVersion(bytes); version && *version != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": written by format version ", *version, "; this ringmq reads ", kFormatVersion));
  }
  SegmentReader reader(bytes);
  const std::optional<SegmentHeader> header = reader.ReadHeader();
  if (!header) {
    return absl::DataLossError(absl::StrCat(path, ": bad segment header: ", reader.error()));
  }
  if (header->shard != shard || header->run != run || header->segment != segment) {
    return absl::DataLossError(absl::StrCat(path, ": the header names shard ", header->shard,
                                            " run ", header->run, " segment ", header->segment));
  }

  SnapshotCheck snapshot;
  Record record;
  size_t cut = bytes.size();  // where the segment's valid records end
  std::string why;            // set if they end at a corrupt or inconsistent record
  while (true) {
    const size_t start = reader.offset();
    const ReadStatus status = reader.Next(record);
    if (status == ReadStatus::kEnd) break;
    if (status != ReadStatus::kOk) {
      cut = reader.offset();
      result.torn = IsTornTail(bytes, cut, status);
      if (!result.torn) {
        why = status == ReadStatus::kCorrupt
                  ? reader.error()
                  : absl::StrCat(reader.error(), ", but valid records follow it");
      }
      break;
    }
    why = snapshot.Check(record);
    if (why.empty() && !state.Apply(record)) why = absl::StrCat("inconsistent: ", state.error());
    if (!why.empty()) {
      cut = start;
      break;
    }
    snapshot.Count(record);
    ++result.records;
  }
  result.complete = snapshot.complete();

  if (!why.empty()) {
    if (!options.truncate_corrupt) {
      return absl::DataLossError(absl::StrCat(path, ": corrupt record at offset ", cut, ": ", why));
    }
    RINGMQ_LOG_ERROR(
        "persistence: %s: corrupt record at offset %zu: %s; dropped it and the %zu "
        "bytes after it (persistence_truncate_corrupt)",
        path.c_str(), cut, why.c_str(), bytes.size() - cut);
    result.corrupt_truncated = true;
  }
  result.torn_bytes = result.torn ? bytes.size() - cut : 0;
  // Only the segment recovery uses is cut; an incomplete one is left for CommitRun to delete.
  if (result.complete && cut < bytes.size() && !options.read_only) {
    if (ftruncate(fd, static_cast<off_t>(cut)) != 0 || fdatasync(fd) != 0) {
      return io::ErrnoStatus(errno, absl::StrCat("truncate ", path, " at ", cut));
    }
  }
  return result;
}

absl::StatusOr<RecoveredState> DataDir::Recover(const RecoverOptions& options,
                                                RecoveryReport* report) {
  const uint64_t start_ns = MonotonicNs();
  RecoveryReport local;
  RecoveryReport& out = report != nullptr ? *report : local;
  out = RecoveryReport{};
  out.run = current_run_;
  out.shards = current_shards_;
  RecoveredState recovered;
  if (current_run_ != 0) {
    auto segments = ListSegments(path_);
    if (!segments.ok()) return segments.status();
    // Per shard, the run's segments newest first.
    std::vector<std::vector<uint64_t>> by_shard(current_shards_);
    for (const SegmentName& name : *segments) {
      if (name.run == current_run_ && name.shard < current_shards_) {
        by_shard[name.shard].push_back(name.segment);
      }
    }
    for (uint32_t shard = 0; shard < current_shards_; ++shard) {
      std::vector<uint64_t>& shard_segments = by_shard[shard];
      std::sort(shard_segments.rbegin(), shard_segments.rend());
      absl::Status status = RecoverShard(shard, shard_segments, options, out, recovered);
      if (!status.ok()) return status;
    }
    recovered.DropRetainedDeletions();
  }
  out.sessions = recovered.sessions.size();
  for (const auto& [client_id, session] : recovered.sessions) {
    out.deliveries += session.deliveries.size();
  }
  out.retained = recovered.retained.size();
  out.duration_ms = (MonotonicNs() - start_ns) / 1'000'000;
  return recovered;
}

absl::Status DataDir::RecoverShard(uint32_t shard, const std::vector<uint64_t>& segments,
                                   const RecoverOptions& options, RecoveryReport& report,
                                   RecoveredState& recovered) {
  if (segments.empty()) {
    return absl::DataLossError(
        absl::StrCat(path_, ": the MANIFEST names run ", current_run_, " with ", current_shards_,
                     " shards, but ", SegmentFileName(shard, current_run_, 0),
                     " (or a later segment of shard ", shard, ") is missing"));
  }
  for (const uint64_t segment : segments) {
    DurableState state;
    auto result = RecoverSegment(shard, current_run_, segment, options, state);
    if (!result.ok()) return result.status();
    ++report.files;
    report.bytes += result->bytes;
    if (!result->complete && segment == 0 && result->bytes == kSegmentHeaderBytes) {
      return absl::OkStatus();  // the run's first segment, holding only its header: empty
    }
    if (!result->complete) {
      RINGMQ_LOG_WARNING(
          "persistence: %s has no complete snapshot (it was being written when "
          "the broker stopped); using the segment before it",
          SegmentPath(shard, current_run_, segment).c_str());
      continue;
    }
    report.records += result->records;
    if (result->torn) {
      ++report.torn_tails;
      report.torn_bytes += result->torn_bytes;
    }
    if (result->corrupt_truncated) ++report.corrupt_truncated;
    state.MoveInto(recovered);
    return absl::OkStatus();
  }
  return absl::DataLossError(absl::StrCat(path_, ": no segment of shard ", shard, " in run ",
                                          current_run_, " has a complete snapshot"));
}

}  // namespace ringmq::persist
