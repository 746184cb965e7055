// The machine-crash (lost page cache) simulation: a Journal driven by a random workload writes
// to a test disk that records every write and every fdatasync; at many random crash points the
// test builds a disk image a power cut could leave, recovers it with DataDir::Recover and checks
// the promise: everything the journal reported durable is recovered, as a prefix of the records
// appended (never a state with a hole, nothing that was never appended), and damage confined
// to unsynced bytes is never an error. Flipped bits and truncations of synced bytes are
// detected, never silently accepted.
//
// The disk. `durable` is what fdatasync guaranteed; the writes since the last fdatasync are
// kept in order. A power cut leaves the durable bytes plus some of the later ones. On a
// journaling file system (ext4, xfs) a block that was never written reads as zeros, never as
// stale or random bytes, and the units that land are whole sectors, not arbitrary bytes of
// a write; the images are built accordingly:
//   kInOrder  the unsynced writes land in order up to one torn at a random byte; the file size
//             may run past the data (zeros beyond);
//   kBlocks   each 4 KiB block of the unsynced range holds its new or its old contents
//             independently (writeback order is not write order), the file size anywhere
//             from the durable size to the written size.
// Random bytes beyond a cut are not what a crash leaves but what corruption looks like: with
// them (kGarbage) recovery must either fail naming the file or return a state that still
// satisfies the promise, and with truncate_corrupt it must succeed.
//
// Compactions: the journal rotates to a new segment that starts with a snapshot of the model
// (written as a compaction writes one), and the old segment is deleted when TakeRotationDone
// says so; recovery must use the newest complete snapshot and still hold every durable record.
//
// A failed fdatasync drops the dirty pages it covered (Linux marks them clean), and some of
// them may have reached the disk anyway: the disk model does both, so a journal that did not
// rewrite the bytes before its next sync would lose a durable epoch here.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "persist/data_dir.h"
#include "persist/journal.h"
#include "persist/record.h"
#include "persist/state.h"

namespace ringmq::persist {
namespace {

using Bytes = std::vector<uint8_t>;
using Rng = std::mt19937_64;

constexpr uint32_t kShard = 0;
constexpr uint64_t kRun = 1;
constexpr size_t kBlockBytes = 4096;

uint64_t Uniform(Rng& rng, uint64_t low, uint64_t high) {  // [low, high]
  return std::uniform_int_distribution<uint64_t>(low, high)(rng);
}
bool Chance(Rng& rng, double p) { return std::bernoulli_distribution(p)(rng); }

// ---------------------------------------------------------------------------------------------
// A canonical text of a recovered state, to compare states field by field.

void Put(std::string& out, const StoredMessage& message) {
  absl::StrAppend(&out, " q", message.qos, " r", message.retain, " x", message.expiry_wall_ms,
                  " t=", message.topic, " p", message.properties.size(), ":");
  out.append(message.properties.begin(), message.properties.end());
  absl::StrAppend(&out, " d", message.payload.size(), ":");
  out.append(message.payload.begin(), message.payload.end());
}

std::string Canon(const RecoveredState& state) {
  std::string out;
  for (const auto& [client_id, session] : state.sessions) {
    absl::StrAppend(&out, "session ", client_id, " e", session.expiry_s, " l", session.level,
                    " off", session.offline_since_wall_ms, "\n");
    for (const auto& [filter, subscription] : session.subscriptions) {
      absl::StrAppend(&out, "  sub ", filter, " o", subscription.options, " i",
                      subscription.identifier, "\n");
    }
    for (const StoredDelivery& delivery : session.deliveries) {
      // Past PUBREC the message is gone and a snapshot names the delivery by a placeholder.
      const bool released = delivery.stage == StoredDelivery::Stage::kAwaitComplete;
      absl::StrAppend(&out, "  delivery m", released ? 0 : delivery.mid, " q", delivery.qos, " r",
                      delivery.retain, " p", delivery.packet_id, " s",
                      static_cast<int>(delivery.stage));
      if (delivery.message != nullptr) Put(out, *delivery.message);
      out += "\n";
    }
    out += "  inbound";
    for (uint16_t id : session.inbound_qos2) absl::StrAppend(&out, " ", id);
    out += "\n";
  }
  for (const auto& [topic, retained] : state.retained) {
    absl::StrAppend(&out, "retained ", topic, " v", retained.version);
    Put(out, retained.message);
    out += "\n";
  }
  absl::StrAppend(&out, "max_retained_version ", state.max_retained_version, "\n");
  return out;
}

// What recovery returns for a segment holding `records` (its own copy of the state).
std::string CanonOf(const DurableState& state) {
  DurableState copy = state;
  RecoveredState recovered;
  copy.MoveInto(recovered);
  recovered.DropRetainedDeletions();
  return Canon(recovered);
}

// ---------------------------------------------------------------------------------------------
// The workload: random records that keep a DurableState consistent (every record is applied to
// the model, which must accept it).

class Workload {
 public:
  explicit Workload(Rng& rng) : rng_(rng) {}

  // Appends the records of one random operation to `out` (and applies them to the model).
  void Operation(std::vector<ByteBuffer>& out) {
    out_ = &out;
    const auto& sessions = model_.sessions();
    const uint64_t choice = Uniform(rng_, 0, 99);
    if (sessions.empty() || (choice < 6 && sessions.size() < 6)) return NewSession();
    const uint64_t sid = PickSession();
    const StoredSession& session = sessions.at(sid);
    if (choice < 8) return Resume(sid);
    if (choice < 10) return Emit(Offline(sid));
    if (choice < 11 && sessions.size() > 2) return Emit(End(sid));
    if (choice < 17) return Subscribe(sid, session);
    if (choice < 42 && session.deliveries.size() < 24) return Publish();
    if (choice < 60 && Send(sid, session)) return;
    if (choice < 80 && Ack(sid, session)) return;
    if (choice < 83 && Discard(sid, session)) return;
    if (choice < 90 && Inbound(sid, session)) return;
    return Retain();
  }

  const DurableState& model() const { return model_; }

 private:
  void Emit(const Record& record) {
    ByteBuffer bytes;
    AppendRecord(bytes, record);
    ASSERT_TRUE(model_.Apply(record)) << model_.error();
    out_->push_back(std::move(bytes));
  }

  uint64_t PickSession() {
    std::vector<uint64_t> sids;
    for (const auto& [sid, session] : model_.sessions()) sids.push_back(sid);
    std::sort(sids.begin(), sids.end());  // the hash map's order is not deterministic
    return sids[Uniform(rng_, 0, sids.size() - 1)];
  }

  void NewSession() {
    const uint64_t sid = (next_slot_++ << 32) | 1;
    client_ids_[sid] = absl::StrCat("client-", sid >> 32);
    Resume(sid);
  }

  void Resume(uint64_t sid) {
    Record record;
    record.type = RecordType::kSession;
    record.sid = sid;
    record.expiry_s = static_cast<uint32_t>(Uniform(rng_, 1, 86400));
    record.level = Chance(rng_, 0.5) ? 4 : 5;
    record.text = client_ids_[sid];
    Emit(record);
  }

  Record Offline(uint64_t sid) {
    Record record;
    record.type = RecordType::kSessionOffline;
    record.sid = sid;
    record.count = 1'700'000'000'000 + Uniform(rng_, 0, 1'000'000);
    return record;
  }

  Record End(uint64_t sid) {
    Record record;
    record.type = RecordType::kSessionEnd;
    record.sid = sid;
    return record;
  }

  void Subscribe(uint64_t sid, const StoredSession& session) {
    if (!session.subscriptions.empty() && Chance(rng_, 0.3)) {
      auto it = session.subscriptions.begin();
      std::advance(it, Uniform(rng_, 0, session.subscriptions.size() - 1));
      const std::string filter = it->first;
      Record record;
      record.type = RecordType::kUnsubscribe;
      record.sid = sid;
      record.text = filter;
      return Emit(record);
    }
    const std::string filter = absl::StrCat("t/", Uniform(rng_, 0, 9), "/#");
    Record record;
    record.type = RecordType::kSubscribe;
    record.sid = sid;
    record.options = static_cast<uint8_t>(Uniform(rng_, 0, 2) | (Uniform(rng_, 0, 3) << 2));
    record.identifier = static_cast<uint32_t>(Uniform(rng_, 0, 3));
    record.text = filter;
    Emit(record);
  }

  Bytes RandomBytes(size_t size) {
    Bytes bytes(size);
    for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(Uniform(rng_, 0, 255));
    return bytes;
  }

  // Mostly small payloads; some span several blocks, so records cross block boundaries.
  size_t PayloadSize() {
    return Chance(rng_, 0.1) ? Uniform(rng_, 2000, 9000) : Uniform(rng_, 0, 300);
  }

  void Publish() {
    const uint64_t mid = (uint64_t{1} << 48) | next_mid_++;
    const std::string topic = absl::StrCat("t/", Uniform(rng_, 0, 9), "/x");
    const Bytes payload = RandomBytes(PayloadSize());
    const Bytes properties = RandomBytes(Uniform(rng_, 0, 2) * 5);
    Record message;
    message.type = RecordType::kMessage;
    message.mid = mid;
    message.qos = static_cast<uint8_t>(Uniform(rng_, 1, 2));
    message.flags = static_cast<uint8_t>(Uniform(rng_, 0, 1));
    message.expiry_wall_ms = Chance(rng_, 0.5) ? 0 : 1'800'000'000'000;
    message.text = topic;
    message.properties = properties;
    message.payload = payload;
    Emit(message);
    // Fan-out: one copy of the message, a delivery per matching session.
    const uint64_t deliveries = Uniform(rng_, 1, 3);
    for (uint64_t i = 0; i < deliveries; ++i) {
      Record enqueue;
      enqueue.type = RecordType::kEnqueue;
      enqueue.sid = PickSession();
      enqueue.mid = mid;
      enqueue.qos = static_cast<uint8_t>(Uniform(rng_, 1, message.qos));
      enqueue.flags = static_cast<uint8_t>(Uniform(rng_, 0, 1));
      Emit(enqueue);
    }
  }

  static bool InFlight(const StoredSession& session, uint16_t packet_id) {
    for (const StoredDelivery& delivery : session.deliveries) {
      if (delivery.stage != StoredDelivery::Stage::kQueued && delivery.packet_id == packet_id) {
        return true;
      }
    }
    return false;
  }

  bool Send(uint64_t sid, const StoredSession& session) {
    std::vector<uint64_t> queued;
    for (const StoredDelivery& delivery : session.deliveries) {
      if (delivery.stage == StoredDelivery::Stage::kQueued) queued.push_back(delivery.mid);
    }
    if (queued.empty()) return false;
    uint16_t packet_id = static_cast<uint16_t>(Uniform(rng_, 1, 200));
    while (InFlight(session, packet_id)) packet_id = static_cast<uint16_t>(packet_id % 200 + 1);
    Record record;
    record.type = RecordType::kSent;
    record.sid = sid;
    record.mid = queued[Chance(rng_, 0.8) ? 0 : Uniform(rng_, 0, queued.size() - 1)];
    record.packet_id = packet_id;
    Emit(record);
    return true;
  }

  bool Ack(uint64_t sid, const StoredSession& session) {
    std::vector<const StoredDelivery*> in_flight;
    for (const StoredDelivery& delivery : session.deliveries) {
      if (delivery.stage != StoredDelivery::Stage::kQueued) in_flight.push_back(&delivery);
    }
    if (in_flight.empty()) return false;
    const StoredDelivery& delivery = *in_flight[Uniform(rng_, 0, in_flight.size() - 1)];
    Record record;
    record.sid = sid;
    record.packet_id = delivery.packet_id;
    if (delivery.stage == StoredDelivery::Stage::kAwaitComplete) {
      record.type = RecordType::kPubcomp;
    } else {
      record.type = delivery.qos == 1 ? RecordType::kPuback : RecordType::kPubrec;
    }
    Emit(record);
    return true;
  }

  bool Discard(uint64_t sid, const StoredSession& session) {
    for (const StoredDelivery& delivery : session.deliveries) {
      if (delivery.stage != StoredDelivery::Stage::kQueued) continue;
      Record record;
      record.type = RecordType::kDiscard;
      record.sid = sid;
      record.mid = delivery.mid;
      Emit(record);
      return true;
    }
    return false;
  }

  bool Inbound(uint64_t sid, const StoredSession& session) {
    Record record;
    record.sid = sid;
    if (!session.inbound_qos2.empty() && Chance(rng_, 0.5)) {
      record.type = RecordType::kInboundRelease;
      record.packet_id = session.inbound_qos2[Uniform(rng_, 0, session.inbound_qos2.size() - 1)];
    } else {
      record.type = RecordType::kInboundQos2;
      record.packet_id = static_cast<uint16_t>(Uniform(rng_, 1, 500));
      if (std::binary_search(session.inbound_qos2.begin(), session.inbound_qos2.end(),
                             record.packet_id)) {
        return false;
      }
    }
    Emit(record);
    return true;
  }

  void Retain() {
    const std::string topic = absl::StrCat("r/", Uniform(rng_, 0, 7));
    const Bytes payload = Chance(rng_, 0.2) ? Bytes() : RandomBytes(PayloadSize());
    Record record;
    record.type = RecordType::kRetain;
    record.count = ++retain_version_;
    record.qos = static_cast<uint8_t>(Uniform(rng_, 0, 2));
    record.text = topic;
    record.payload = payload;
    Emit(record);
  }

  Rng& rng_;
  DurableState model_;
  std::vector<ByteBuffer>* out_ = nullptr;
  std::map<uint64_t, std::string> client_ids_;
  uint64_t next_slot_ = 1;
  uint64_t next_mid_ = 1;
  uint64_t retain_version_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The test disk.

struct Write {
  uint64_t offset = 0;
  Bytes bytes;
};

void Apply(Bytes& file, uint64_t offset, std::span<const uint8_t> bytes) {
  if (file.size() < offset + bytes.size()) file.resize(offset + bytes.size(), 0);
  std::copy(bytes.begin(), bytes.end(), file.begin() + static_cast<ptrdiff_t>(offset));
}

class Disk {
 public:
  explicit Disk(Bytes header) : cache_(header), durable_(std::move(header)) {}

  void Write(uint64_t offset, std::span<const uint8_t> bytes) {
    Apply(cache_, offset, bytes);
    unsynced_.push_back({offset, Bytes(bytes.begin(), bytes.end())});
  }
  // fdatasync: the dirty pages and the file size reach the disk.
  void Sync() {
    durable_.resize(std::max(durable_.size(), cache_.size()), 0);
    for (const persist::Write& write : unsynced_) Apply(durable_, write.offset, write.bytes);
    unsynced_.clear();
  }
  // A failed fdatasync: some of the dirty blocks reached the disk, the others are dropped
  // (marked clean: a later fdatasync does not write them).
  void FailedSync(Rng& rng) {
    for (const persist::Write& write : unsynced_) {
      const size_t end = write.offset + write.bytes.size();
      for (size_t block = write.offset / kBlockBytes * kBlockBytes; block < end;
           block += kBlockBytes) {
        if (!Chance(rng, 0.5)) continue;
        const size_t block_end = std::min(block + kBlockBytes, cache_.size());
        Apply(durable_, block, std::span<const uint8_t>(cache_).subspan(block, block_end - block));
      }
    }
    unsynced_.clear();
  }

  const Bytes& cache() const { return cache_; }
  const Bytes& durable() const { return durable_; }
  const std::vector<persist::Write>& unsynced() const { return unsynced_; }

 private:
  Bytes cache_;    // the page cache: what a read returns
  Bytes durable_;  // what the disk holds for certain
  std::vector<persist::Write> unsynced_;
};

enum class Damage { kInOrder, kBlocks, kGarbage };

// An image a power cut could leave (see the file comment).
Bytes CrashImage(const Disk& disk, Damage damage, Rng& rng) {
  Bytes image = disk.durable();
  const std::vector<Write>& writes = disk.unsynced();
  if (damage == Damage::kBlocks) {
    Bytes written = image;  // every unsynced write landed
    for (const Write& write : writes) Apply(written, write.offset, write.bytes);
    for (size_t block = image.size() / kBlockBytes * kBlockBytes; block < written.size();
         block += kBlockBytes) {
      if (!Chance(rng, 0.5)) continue;
      const size_t end = std::min(block + kBlockBytes, written.size());
      Apply(image, block, std::span<const uint8_t>(written).subspan(block, end - block));
    }
    image.resize(Uniform(rng, disk.durable().size(), written.size()), 0);
    return image;
  }
  size_t landed = writes.empty() ? 0 : Uniform(rng, 0, writes.size());
  for (size_t i = 0; i < landed; ++i) Apply(image, writes[i].offset, writes[i].bytes);
  if (landed < writes.size()) {
    const Write& torn = writes[landed];
    const size_t cut = Uniform(rng, 0, torn.bytes.size());
    Apply(image, torn.offset, std::span<const uint8_t>(torn.bytes).first(cut));
  }
  const size_t beyond = Chance(rng, 0.5) ? Uniform(rng, 1, 3 * kBlockBytes) : 0;
  const size_t data_end = image.size();
  image.resize(data_end + beyond, 0);
  if (damage == Damage::kGarbage) {
    for (size_t i = data_end; i < image.size(); ++i) {
      image[i] = static_cast<uint8_t>(Uniform(rng, 0, 255));
    }
  }
  return image;
}

// ---------------------------------------------------------------------------------------------
// The run: a workload through a Journal onto the Disk, with crash checks along the way.

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("ringmq-crash-test-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto data_dir = DataDir::Open(dir_.string());
    ASSERT_TRUE(data_dir.ok()) << data_dir.status();
    auto segment = (*data_dir)->CreateSegment(kShard, kRun, 0, /*sync=*/false);
    ASSERT_TRUE(segment.ok()) << segment.status();
    close(segment->fd);
    ASSERT_TRUE((*data_dir)->CommitRun(kRun, 1).ok());
    segment_path_ = (*data_dir)->SegmentPath(kShard, kRun, 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Bytes Header(uint64_t segment = 0) {
    ByteBuffer header;
    AppendSegmentHeader(header, SegmentHeader{kFormatVersion, kShard, kRun, segment});
    return Bytes(header.begin(), header.end());
  }

  std::string PathOf(uint64_t segment) const {
    return (dir_ / absl::StrCat("shard-", kShard, ".", kRun, ".", segment, ".log")).string();
  }

  static void WriteFile(const std::string& path, const Bytes& image) {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(image.data()),
               static_cast<std::streamsize>(image.size()));
    ASSERT_TRUE(file.good());
  }

  absl::StatusOr<RecoveredState> RecoverDir(bool truncate_corrupt, RecoveryReport* report) {
    auto data_dir = DataDir::Open(dir_.string());
    if (!data_dir.ok()) return data_dir.status();
    DataDir::RecoverOptions options;
    options.truncate_corrupt = truncate_corrupt;
    return (*data_dir)->Recover(options, report);
  }

  // Recovers from `image` as segment 0, the only one.
  absl::StatusOr<RecoveredState> Recover(const Bytes& image, bool truncate_corrupt,
                                         RecoveryReport* report) {
    WriteFile(segment_path_, image);
    return RecoverDir(truncate_corrupt, report);
  }

  // The state after records_[first, first + count) (a segment's first `count` records).
  std::string PrefixState(size_t count, size_t first = 0) const {
    DurableState state;
    for (size_t i = first; i < first + count; ++i) {
      SegmentReader reader(records_[i]);
      Record record;
      EXPECT_EQ(reader.Next(record), ReadStatus::kOk);
      EXPECT_TRUE(state.Apply(record)) << state.error();
    }
    return CanonOf(state);
  }

  // How many records of `image` a reader decodes before the first that is not kOk: what
  // recovery applies when it succeeds.
  static size_t ValidRecords(const Bytes& image) {
    SegmentReader reader(image);
    if (!reader.ReadHeader().has_value()) return 0;
    size_t count = 0;
    Record record;
    while (reader.Next(record) == ReadStatus::kOk) ++count;
    return count;
  }

  // A segment of the run: its file on the test disk and its records in records_.
  struct Segment {
    int fd = -1;  // the Journal's (it identifies the file in an Io)
    uint64_t number = 0;
    Disk disk;
    size_t first = 0;             // index of its first record in records_
    size_t snapshot_records = 0;  // kSnapshotBegin ... kSnapshotEnd
    bool deleted = false;
  };

  // Writes the images of the segments that exist (`cache`: the page cache, else a power cut's
  // image), recovers, and checks that the state is the one after a prefix of the records that
  // holds the `durable` first ones: the prefix the segment recovery uses holds. Recovery uses
  // the newest segment whose snapshot is complete.
  void CheckCrash(bool cache, size_t durable, Damage damage, Rng& rng, const std::string& what) {
    std::vector<Bytes> images(segments_.size());
    for (size_t i = 0; i < segments_.size(); ++i) {
      const Segment& segment = segments_[i];
      if (segment.deleted) {
        std::filesystem::remove(PathOf(segment.number));
        continue;
      }
      images[i] = cache ? segment.disk.cache() : CrashImage(segment.disk, damage, rng);
      WriteFile(PathOf(segment.number), images[i]);
    }
    const Segment* used = nullptr;
    size_t count = 0;
    for (size_t i = segments_.size(); i-- > 0;) {
      if (segments_[i].deleted) continue;
      count = ValidRecords(images[i]);
      if (count >= segments_[i].snapshot_records) {
        used = &segments_[i];
        break;
      }
    }
    std::string segments_seen;
    for (size_t i = 0; i < segments_.size(); ++i) {
      absl::StrAppend(&segments_seen, " [", segments_[i].number,
                      segments_[i].deleted ? " deleted" : "", " ", ValidRecords(images[i]), "/",
                      segments_[i].snapshot_records, "]");
    }
    ASSERT_NE(used, nullptr) << what << ": no segment holds a complete snapshot:" << segments_seen;
    RecoveryReport report;
    auto recovered = RecoverDir(/*truncate_corrupt=*/false, &report);
    if (damage == Damage::kGarbage && !cache && !recovered.ok()) {
      EXPECT_NE(recovered.status().message().find(PathOf(used->number)), std::string::npos)
          << what << ": " << recovered.status();
      recovered = RecoverDir(/*truncate_corrupt=*/true, &report);
    }
    ASSERT_TRUE(recovered.ok()) << what << ": " << recovered.status();
    EXPECT_GE(used->first + count, durable)
        << what << ": a durable record was lost (segment " << used->number << ")";
    ASSERT_LE(used->first + count, records_.size()) << what << ": a record never appended";
    EXPECT_TRUE(Canon(*recovered) == PrefixState(count, used->first))
        << what << ": the recovered state is not the state after the first " << count
        << " records of segment " << used->number;
    ++checks_;
  }

  // A snapshot of `state` as a compaction writes it: every session, its subscriptions,
  // deliveries in queue order (a QoS 2 delivery past PUBREC, whose message is gone, through a
  // placeholder message), inbound ids, and the retained messages.
  static std::vector<ByteBuffer> Snapshot(const DurableState& state) {
    std::vector<ByteBuffer> out;
    auto emit = [&](const Record& record) { AppendRecord(out.emplace_back(), record); };
    emit(Record{.type = RecordType::kSnapshotBegin});
    std::vector<uint64_t> sids;
    for (const auto& [sid, session] : state.sessions()) sids.push_back(sid);
    std::sort(sids.begin(), sids.end());
    uint64_t placeholder = 0;
    for (uint64_t sid : sids) {
      const StoredSession& session = state.sessions().at(sid);
      emit(Record{.type = RecordType::kSession,
                  .sid = sid,
                  .expiry_s = session.expiry_s,
                  .level = session.level,
                  .text = session.client_id});
      if (session.offline_since_wall_ms != 0) {
        emit(Record{.type = RecordType::kSessionOffline,
                    .sid = sid,
                    .count = session.offline_since_wall_ms});
      }
      for (const auto& [filter, subscription] : session.subscriptions) {
        emit(Record{.type = RecordType::kSubscribe,
                    .sid = sid,
                    .identifier = subscription.identifier,
                    .options = subscription.options,
                    .text = filter});
      }
      for (const StoredDelivery& delivery : session.deliveries) {
        if (delivery.stage == StoredDelivery::Stage::kAwaitComplete) {
          const uint64_t mid = (uint64_t{0xFFFF} << 48) | ++placeholder;
          emit(Record{.type = RecordType::kMessage, .mid = mid, .qos = 2, .text = "released"});
          emit(Record{.type = RecordType::kEnqueue,
                      .sid = sid,
                      .mid = mid,
                      .qos = 2,
                      .flags = static_cast<uint8_t>(delivery.retain ? 1 : 0)});
          emit(Record{
              .type = RecordType::kSent, .sid = sid, .mid = mid, .packet_id = delivery.packet_id});
          emit(Record{.type = RecordType::kPubrec, .sid = sid, .packet_id = delivery.packet_id});
          continue;
        }
        const StoredMessage& message = *delivery.message;
        // Once per segment: a message shared by several deliveries is declared at the first.
        bool declared = false;
        for (const ByteBuffer& bytes : out) {
          SegmentReader reader(bytes);
          Record earlier;
          EXPECT_EQ(reader.Next(earlier), ReadStatus::kOk);
          declared |= earlier.type == RecordType::kMessage && earlier.mid == delivery.mid;
        }
        if (!declared) {
          emit(Record{.type = RecordType::kMessage,
                      .mid = delivery.mid,
                      .expiry_wall_ms = message.expiry_wall_ms,
                      .qos = message.qos,
                      .flags = static_cast<uint8_t>(message.retain ? 1 : 0),
                      .text = message.topic,
                      .properties = message.properties,
                      .payload = message.payload});
        }
        emit(Record{.type = RecordType::kEnqueue,
                    .sid = sid,
                    .mid = delivery.mid,
                    .qos = delivery.qos,
                    .flags = static_cast<uint8_t>(delivery.retain ? 1 : 0)});
        if (delivery.stage == StoredDelivery::Stage::kAwaitAck) {
          emit(Record{.type = RecordType::kSent,
                      .sid = sid,
                      .mid = delivery.mid,
                      .packet_id = delivery.packet_id});
        }
      }
      for (uint16_t packet_id : session.inbound_qos2) {
        emit(Record{.type = RecordType::kInboundQos2, .sid = sid, .packet_id = packet_id});
      }
    }
    for (const auto& [topic, retained] : state.retained()) {
      emit(Record{.type = RecordType::kRetain,
                  .count = retained.version,
                  .expiry_wall_ms = retained.message.expiry_wall_ms,
                  .qos = retained.message.qos,
                  .text = topic,
                  .properties = retained.message.properties,
                  .payload = retained.message.payload});
    }
    emit(Record{.type = RecordType::kSnapshotEnd, .count = out.size() - 1});
    return out;
  }

  struct RunOptions {
    uint64_t seed = 1;
    Durability durability = Durability::kFsync;
    int steps = 300;
    double crash_chance = 0.1;
    double failure_chance = 0.0;  // per write and per fdatasync
    Damage damage = Damage::kInOrder;
    int rotate_every = 0;  // steps between compactions (0: none)
  };

  // Runs a workload; returns the last segment's disk (everything synced at the end).
  Disk Run(const RunOptions& run) {
    Rng rng(run.seed);
    Journal::Options options;
    options.durability = run.durability;
    options.sync_interval_ms = 50;
    Journal journal(options);
    Workload workload(rng);
    records_.clear();
    // The segments of an earlier run of this test are gone (a newer one would be recovered).
    for (const Segment& segment : segments_) std::filesystem::remove(PathOf(segment.number));
    segments_.clear();
    std::vector<size_t> records_by_epoch(1, 0);  // records appended through each epoch
    auto append = [&](const std::vector<ByteBuffer>& records) {
      for (const ByteBuffer& bytes : records) {
        SegmentReader reader(bytes);
        Record record;
        EXPECT_EQ(reader.Next(record), ReadStatus::kOk);
        const uint64_t epoch = journal.Append(record);
        records_.emplace_back(bytes.begin(), bytes.end());
        if (records_by_epoch.size() <= epoch) records_by_epoch.resize(epoch + 1, 0);
        records_by_epoch[epoch] = records_.size();
      }
    };
    // A new segment starting with a snapshot of the model (empty at first: the run's start).
    auto start_segment = [&] {
      Segment segment{.fd = open("/dev/null", O_WRONLY | O_CLOEXEC),
                      .number = segments_.size(),
                      .disk = Disk(Header(segments_.size())),
                      .first = records_.size()};
      EXPECT_GE(segment.fd, 0);
      SegmentFile file{.fd = segment.fd,
                       .size = kSegmentHeaderBytes,
                       .run = kRun,
                       .segment = segment.number,
                       .path = PathOf(segment.number)};
      if (segments_.empty()) {
        journal.Open(file);
      } else {
        journal.Rotate(file);
      }
      const std::vector<ByteBuffer> snapshot = Snapshot(workload.model());
      segment.snapshot_records = snapshot.size();
      segments_.push_back(std::move(segment));
      append(snapshot);
      EXPECT_TRUE(PrefixState(snapshot.size(), segments_.back().first) == CanonOf(workload.model()))
          << "seed " << run.seed << ": the snapshot does not rebuild the model:\n"
          << PrefixState(segments_.back().snapshot_records, segments_.back().first) << "\nvs\n"
          << CanonOf(workload.model());
    };
    start_segment();
    auto disk_of = [&](int fd) -> Disk& {
      for (Segment& segment : segments_) {
        if (segment.fd == fd) return segment.disk;
      }
      ADD_FAILURE() << "an Io for an unknown fd " << fd;
      return segments_.back().disk;
    };

    uint64_t now_ms = 0;
    std::optional<Journal::Io> in_flight;
    int write_result = 0;
    int sync_result = 0;
    auto submit = [&](const Journal::Io& io) {
      Disk& disk = disk_of(io.fd);
      const bool fail_write = Chance(rng, run.failure_chance);
      size_t written = io.bytes.size();
      if (!fail_write && written > 1 && Chance(rng, 0.05)) written = Uniform(rng, 1, written - 1);
      write_result = fail_write ? -ENOSPC : static_cast<int>(written);
      if (!fail_write) disk.Write(io.offset, io.bytes.first(written));
      if (!io.sync) return;
      if (fail_write || written < io.bytes.size()) {
        sync_result = -ECANCELED;
      } else if (Chance(rng, run.failure_chance)) {
        disk.FailedSync(rng);
        sync_result = -EIO;
      } else {
        disk.Sync();
        sync_result = 0;
      }
    };
    auto complete = [&] {
      journal.OnWriteDone(write_result, now_ms);
      if (in_flight->sync) journal.OnSyncDone(sync_result, now_ms);
      in_flight.reset();
      if (journal.TakeRotationDone()) {
        // The caller deletes every older segment now.
        // The journal closed the old fd: its number may be reused by the next segment's.
        for (size_t i = 0; i + 1 < segments_.size(); ++i) {
          segments_[i].deleted = true;
          segments_[i].fd = -1;
        }
      }
    };
    auto records_through = [&](uint64_t epoch) {
      return epoch < records_by_epoch.size() ? records_by_epoch[epoch] : 0;
    };
    auto durable_records = [&] {
      return records_through(run.durability == Durability::kFsync ? journal.durable_epoch()
                                                                  : journal.synced_epoch());
    };
    const size_t start_records = records_.size();
    for (int step = 0; step < run.steps || journal.has_pending(); ++step) {
      EXPECT_LT(step, run.steps + 10000) << "the journal never drained";
      if (step >= run.steps + 10000) break;
      // Appends start when the run's snapshot is durable (the run is committed then).
      const bool serving = durable_records() >= start_records && step < run.steps;
      if (serving) {
        std::vector<ByteBuffer> records;
        const uint64_t operations = Uniform(rng, 0, 5);
        for (uint64_t i = 0; i < operations; ++i) workload.Operation(records);
        append(records);
        if (run.rotate_every != 0 && step % run.rotate_every == run.rotate_every - 1 &&
            !journal.rotating()) {
          start_segment();
        }
      }
      if (in_flight.has_value() && Chance(rng, 0.6)) complete();
      if (!in_flight.has_value()) {
        in_flight = journal.NextIo(now_ms, /*force_sync=*/step >= run.steps);
        if (in_flight.has_value()) submit(*in_flight);
      }
      if (serving && Chance(rng, run.crash_chance)) {
        const std::string what = absl::StrCat("seed ", run.seed, " step ", step);
        // A crash of the process alone: the page cache survives, so everything written is
        // there (kInterval's durable_epoch() counts writes).
        if (Chance(rng, 0.2)) {
          CheckCrash(/*cache=*/true, records_through(journal.durable_epoch()), run.damage, rng,
                     what + " (process crash)");
        } else {
          CheckCrash(/*cache=*/false, durable_records(), run.damage, rng, what);
        }
      }
      now_ms += Uniform(rng, 0, 20);
    }
    EXPECT_EQ(durable_records(), records_.size()) << "seed " << run.seed;
    // Everything appended to the last segment is on its disk, in order, once.
    const Segment& last = segments_.back();
    EXPECT_TRUE(last.disk.unsynced().empty());
    Bytes expected = Header(last.number);
    for (size_t i = last.first; i < records_.size(); ++i) {
      expected.insert(expected.end(), records_[i].begin(), records_[i].end());
    }
    EXPECT_TRUE(last.disk.durable() == expected) << "seed " << run.seed;
    EXPECT_EQ(journal.file_size(), expected.size());
    return last.disk;
  }

  std::filesystem::path dir_;
  std::string segment_path_;
  std::vector<Bytes> records_;  // every record appended, in order, framed
  std::vector<Segment> segments_;
  int checks_ = 0;
};

// Seeds 1..5 (fixed, so a failure is reproducible: each message names the seed and step), or
// 1..N with RINGMQ_CRASH_SEEDS=N for a longer search.
std::vector<uint64_t> Seeds() {
  const char* count = getenv("RINGMQ_CRASH_SEEDS");
  std::vector<uint64_t> seeds(count != nullptr ? std::max(1, atoi(count)) : 5);
  for (size_t i = 0; i < seeds.size(); ++i) seeds[i] = i + 1;
  return seeds;
}

TEST_F(CrashTest, PowerCutKeepsEveryDurableEpochFsync) {
  for (uint64_t seed : Seeds()) {
    RunOptions run;
    run.seed = seed;
    run.failure_chance = seed % 2 == 0 ? 0.05 : 0.0;
    Run(run);
    if (HasFatalFailure()) return;
  }
  EXPECT_GE(checks_, 100);
}

TEST_F(CrashTest, PowerCutKeepsEverySyncedEpochInterval) {
  for (uint64_t seed : Seeds()) {
    RunOptions run;
    run.seed = 1000 + seed;
    run.durability = Durability::kInterval;
    run.failure_chance = seed % 2 == 0 ? 0.05 : 0.0;
    Run(run);
    if (HasFatalFailure()) return;
  }
  EXPECT_GE(checks_, 100);
}

// Writeback does not follow write order: any block of the unsynced range may be the one that
// landed, leaving zero-filled blocks before data.
TEST_F(CrashTest, PowerCutWithBlocksLandingOutOfOrder) {
  for (uint64_t seed : Seeds()) {
    RunOptions run;
    run.seed = 2000 + seed;
    run.durability = seed % 2 == 0 ? Durability::kInterval : Durability::kFsync;
    run.damage = Damage::kBlocks;
    Run(run);
    if (HasFatalFailure()) return;
  }
  EXPECT_GE(checks_, 100);
}

// Compactions: the journal rotates to a new segment that starts with a snapshot of the model;
// the old segment is deleted when TakeRotationDone says so. Recovery must find the newest
// complete snapshot and lose nothing durable whenever the power is cut.
TEST_F(CrashTest, PowerCutAroundCompactions) {
  for (uint64_t seed : Seeds()) {
    RunOptions run;
    run.seed = 4000 + seed;
    run.durability = seed % 2 == 0 ? Durability::kInterval : Durability::kFsync;
    run.damage = seed % 3 == 0 ? Damage::kBlocks : Damage::kInOrder;
    run.failure_chance = seed % 4 == 1 ? 0.05 : 0.0;
    run.rotate_every = 40;
    run.crash_chance = 0.15;
    Run(run);
    if (HasFatalFailure()) return;
    EXPECT_GE(segments_.size(), 4u);
  }
  EXPECT_GE(checks_, 100);
}

TEST_F(CrashTest, GarbageBeyondACutIsNeverSilentlyWrong) {
  for (uint64_t seed : Seeds()) {
    RunOptions run;
    run.seed = 3000 + seed;
    run.damage = Damage::kGarbage;
    run.steps = 150;
    Run(run);
    if (HasFatalFailure()) return;
  }
  EXPECT_GE(checks_, 50);
}

// Where each record starts in a synced segment.
std::vector<size_t> RecordStarts(const Bytes& image) {
  SegmentReader reader(image);
  EXPECT_TRUE(reader.ReadHeader().has_value());
  std::vector<size_t> starts;
  Record record;
  for (size_t offset = reader.offset(); reader.Next(record) == ReadStatus::kOk;
       offset = reader.offset()) {
    starts.push_back(offset);
  }
  return starts;
}

TEST_F(CrashTest, FlippedBitInTheSyncedPartIsAnError) {
  RunOptions run;
  run.seed = 400;
  run.crash_chance = 0;
  const Bytes synced = Run(run).durable();
  const std::vector<size_t> starts = RecordStarts(synced);
  ASSERT_EQ(starts.size(), records_.size());
  ASSERT_GT(starts.size(), 100u);
  Rng rng(run.seed);
  for (int trial = 0; trial < 200; ++trial) {
    // Not in the last record: a damaged last record is what a torn write leaves.
    const size_t index = Uniform(rng, 0, starts.size() - 2);
    const size_t byte = Uniform(rng, starts[index], starts[index + 1] - 1);
    const int bit = static_cast<int>(Uniform(rng, 0, 7));
    const std::string what =
        absl::StrCat("seed ", run.seed, " trial ", trial, ": bit ", bit, " of byte ", byte,
                     " (record ", index, " at ", starts[index], ")");
    Bytes image = synced;
    image[byte] ^= static_cast<uint8_t>(1u << bit);
    RecoveryReport report;
    auto recovered = Recover(image, /*truncate_corrupt=*/false, &report);
    ASSERT_FALSE(recovered.ok()) << what << ": accepted";
    const std::string message(recovered.status().message());
    EXPECT_NE(message.find(segment_path_), std::string::npos) << what << ": " << message;
    EXPECT_NE(message.find(absl::StrCat("offset ", starts[index])), std::string::npos)
        << what << ": " << message;
    recovered = Recover(image, /*truncate_corrupt=*/true, &report);
    ASSERT_TRUE(recovered.ok()) << what << ": " << recovered.status();
    EXPECT_EQ(report.corrupt_truncated, 1u) << what;
    EXPECT_TRUE(Canon(*recovered) == PrefixState(index)) << what;
  }
}

TEST_F(CrashTest, TruncatedSyncedFileIsATornTail) {
  RunOptions run;
  run.seed = 500;
  run.crash_chance = 0;
  const Bytes synced = Run(run).durable();
  const std::vector<size_t> starts = RecordStarts(synced);
  ASSERT_EQ(starts.size(), records_.size());
  Rng rng(run.seed);
  for (int trial = 0; trial < 100; ++trial) {
    const size_t index = Uniform(rng, 0, starts.size() - 1);
    const size_t end = index + 1 < starts.size() ? starts[index + 1] : synced.size();
    const size_t cut = Uniform(rng, starts[index] + 1, end - 1);  // inside record `index`
    const std::string what = absl::StrCat("seed ", run.seed, " trial ", trial, ": cut at ", cut);
    const Bytes image(synced.begin(), synced.begin() + static_cast<ptrdiff_t>(cut));
    RecoveryReport report;
    auto recovered = Recover(image, /*truncate_corrupt=*/false, &report);
    ASSERT_TRUE(recovered.ok()) << what << ": " << recovered.status();
    EXPECT_EQ(report.torn_tails, 1u) << what;
    EXPECT_EQ(report.torn_bytes, cut - starts[index]) << what;
    EXPECT_EQ(std::filesystem::file_size(segment_path_), starts[index]) << what;
    EXPECT_TRUE(Canon(*recovered) == PrefixState(index)) << what;
  }
}

}  // namespace
}  // namespace ringmq::persist
