// The router's persistence: what it logs, when it holds and releases output, recovery and
// snapshots (router.h, "Persistence"; docs/persistence.md).
#include <time.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/assert.h"
#include "common/log.h"
#include "shard/router.h"
#include "shard/router_persist.h"

namespace ringmq::shard {
namespace {

using persist::Record;
using persist::RecordType;

// Appended and not yet durable beyond this, a shard's log is degraded: new QoS 1/2 PUBLISHes
// are refused until it catches up (a disk much slower than the traffic, or failing).
constexpr uint64_t kMaxPendingBytes = uint64_t{64} << 20;
// A segment is compacted (rotated, with a snapshot) once it is larger than kCompactFactor times
// its last snapshot and than its share of the disk bound: max_disk_bytes / (4 x shards), within
// [kCompactMinBytes, kCompactMaxBytes] (so a shard's two segments during a compaction stay
// well within the bound when the live state does).
constexpr uint64_t kCompactMinBytes = uint64_t{256} << 10;
constexpr uint64_t kCompactMaxBytes = uint64_t{64} << 20;
constexpr uint64_t kCompactFactor = 4;
// The topic of the placeholder message a snapshot writes for a QoS 2 delivery whose PUBREC
// arrived (its message is gone; only the PUBREL is owed).
constexpr std::string_view kReleasedTopic = "$ringmq/released";
constexpr uint64_t kPlaceholderMids = uint64_t{0xFFFF} << 48;

uint64_t WallMs() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000 + static_cast<uint64_t>(now.tv_nsec) / 1'000'000;
}

// A message's id in the log: its origin (shard, sequence), unique within a run.
uint64_t MidOf(const message::Message& message) {
  return (uint64_t{message.origin_shard()} << 48) | (message.sequence() & ((uint64_t{1} << 48) - 1));
}

uint8_t OptionsByte(const session::SubscriptionOptions& options) {
  return static_cast<uint8_t>(options.qos | (options.no_local ? 0x04 : 0) |
                              (options.retain_as_published ? 0x08 : 0));
}

// The wall-clock expiry of a message whose monotonic deadline is `deadline_ms` (0: none).
uint64_t WallExpiry(const message::Message& message, uint64_t now_ms, uint64_t wall_ms) {
  if (!message.has_expiry()) return 0;
  const uint64_t deadline = message.expiry_deadline_ms();
  return wall_ms + (deadline > now_ms ? deadline - now_ms : 0) + (deadline > now_ms ? 0 : 1);
}

Record MessageRecord(const message::Message& message, uint64_t mid, uint64_t now_ms,
                     uint64_t wall_ms) {
  return Record{.type = RecordType::kMessage,
                .mid = mid,
                .expiry_wall_ms = WallExpiry(message, now_ms, wall_ms),
                .qos = message.qos(),
                .flags = static_cast<uint8_t>(message.retain() ? 1 : 0),
                .text = message.topic(),
                .properties = message.properties(),
                .payload = message.payload()};
}

bool IsSys(std::string_view topic) { return topic.starts_with("$SYS/"); }

}  // namespace

// ---- Logging ---------------------------------------------------------------------------------

uint64_t Router::SidOf(uint32_t index) const {
  return persist_ == nullptr || index >= persist_->sid.size() ? 0 : persist_->sid[index];
}

void Router::PersistSession(uint32_t index) {
  Persist& p = *persist_;
  if (index >= p.sid.size()) p.sid.resize(size_t{index} + 1, 0);
  uint64_t& sid = p.sid[index];
  if (expiry_s_[index] == 0) {  // ends with its connection: nothing of it is kept
    if (sid != 0) p.Append(Record{.type = RecordType::kSessionEnd, .sid = sid});
    sid = 0;
    return;
  }
  if (sid == 0) sid = ++p.next_sid;
  const session::Session& session = *sessions_[index].session;
  p.Append(Record{.type = RecordType::kSession,
                  .sid = sid,
                  .expiry_s = expiry_s_[index],
                  .level = static_cast<uint8_t>(session.level()),
                  .flags = sessions_[index].bridge ? persist::kSessionFlagBridge : uint8_t{0},
                  .text = session.client_id()});
}

void Router::PersistOffline(uint32_t index) {
  if (const uint64_t sid = SidOf(index); sid != 0) {
    persist_->Append(Record{.type = RecordType::kSessionOffline, .sid = sid, .count = WallMs()});
  }
}

void Router::PersistEnd(uint32_t index) {
  if (const uint64_t sid = SidOf(index); sid != 0) {
    persist_->Append(Record{.type = RecordType::kSessionEnd, .sid = sid});
    persist_->sid[index] = 0;
  }
}

void Router::PersistSubscribe(uint32_t index, std::string_view filter,
                              const session::SubscriptionOptions& options) {
  if (const uint64_t sid = SidOf(index); sid != 0) {
    persist_->Append(Record{.type = RecordType::kSubscribe,
                            .sid = sid,
                            .identifier = options.identifier,
                            .options = OptionsByte(options),
                            .text = filter});
  }
}

void Router::PersistUnsubscribe(uint32_t index, std::string_view filter) {
  if (const uint64_t sid = SidOf(index); sid != 0) {
    persist_->Append(Record{.type = RecordType::kUnsubscribe, .sid = sid, .text = filter});
  }
}

void Router::PersistEnqueue(uint32_t index, const message::Message& message, uint8_t qos,
                            bool retain) {
  const uint64_t sid = SidOf(index);
  if (sid == 0 || qos == 0) return;  // QoS 0 is never durable
  Persist& p = *persist_;
  const uint64_t mid = MidOf(message);
  Persist::Written& written = p.written[mid % p.written.size()];
  if (written.mid != mid || written.generation != p.written_generation) {
    p.Append(MessageRecord(message, mid, services_.now_ms(), WallMs()));
    written = Persist::Written{.mid = mid, .generation = p.written_generation};
  }
  p.Append(Record{.type = RecordType::kEnqueue,
                  .sid = sid,
                  .mid = mid,
                  .qos = qos,
                  .flags = static_cast<uint8_t>(retain ? 1 : 0)});
}

void Router::PersistPacketId(uint32_t index, RecordType type, uint16_t packet_id) {
  if (const uint64_t sid = SidOf(index); sid != 0) {
    persist_->Append(Record{.type = type, .sid = sid, .packet_id = packet_id});
  }
}

void Router::PersistRestored(uint32_t index, const message::Message* message, uint8_t qos,
                             bool retain, uint16_t packet_id) {
  const uint64_t sid = SidOf(index);
  if (sid == 0) return;
  Persist& p = *persist_;
  if (message == nullptr) {
    // As AppendSnapshot writes one: a placeholder message, enqueued, sent, PUBREC received. The
    // placeholder is forgotten at its kPubrec (state.h), so its mid is free again at once.
    const uint64_t mid = kPlaceholderMids | ++p.placeholders;
    p.Append(Record{.type = RecordType::kMessage, .mid = mid, .qos = 2, .text = kReleasedTopic});
    p.Append(Record{.type = RecordType::kEnqueue, .sid = sid, .mid = mid, .qos = 2});
    p.Append(Record{.type = RecordType::kSent, .sid = sid, .mid = mid, .packet_id = packet_id});
    p.Append(Record{.type = RecordType::kPubrec, .sid = sid, .packet_id = packet_id});
    return;
  }
  // A new message on this node (its own mid): kMessage and kEnqueue, then kSent, which makes
  // the delivery the last in flight, as RestoreInflight appends it.
  PersistEnqueue(index, *message, qos, retain);
  p.Append(Record{.type = RecordType::kSent, .sid = sid, .mid = MidOf(*message),
                  .packet_id = packet_id});
}

void Router::Persist::Log::Sent(const message::Message& message, uint16_t packet_id,
                                uint8_t qos) {
  if (qos == 2) qos2_sent_ = true;
  router_.persist_->Append(Record{.type = RecordType::kSent,
                                  .sid = router_.SidOf(index_),
                                  .mid = MidOf(message),
                                  .packet_id = packet_id});
}

void Router::Persist::Log::DiscardedQueued(const message::Message& message) {
  router_.persist_->Append(
      Record{.type = RecordType::kDiscard, .sid = router_.SidOf(index_), .mid = MidOf(message)});
}

void Router::Persist::Log::DiscardedInflight(uint16_t packet_id, uint8_t qos) {
  const uint64_t sid = router_.SidOf(index_);
  if (qos == 1) {
    router_.persist_->Append(Record{.type = RecordType::kPuback, .sid = sid, .packet_id = packet_id});
    return;
  }
  // A QoS 2 PUBLISH whose resend is discarded ends as if PUBREC and PUBCOMP had come.
  router_.persist_->Append(Record{.type = RecordType::kPubrec, .sid = sid, .packet_id = packet_id});
  router_.persist_->Append(Record{.type = RecordType::kPubcomp, .sid = sid, .packet_id = packet_id});
}

void Router::PersistRetained(const message::Message& message, uint64_t version, bool deleted) {
  if (IsSys(message.topic())) return;  // the broker's own values: per run
  persist_->Append(Record{.type = RecordType::kRetain,
                          .count = version,
                          .expiry_wall_ms = WallExpiry(message, services_.now_ms(), WallMs()),
                          .qos = message.qos(),
                          .text = message.topic(),
                          .properties = deleted ? std::span<const uint8_t>() : message.properties(),
                          .payload = deleted ? std::span<const uint8_t>() : message.payload()});
}

// ---- Holding and confirming ------------------------------------------------------------------

void Router::PersistSentTo(uint32_t shard, const message::Message& message) {
  Persist& p = *persist_;
  if (!p.hold || message.origin_shard() != shard_) return;
  p.sent_sequence[shard] = std::max(p.sent_sequence[shard], message.sequence());
  p.sent_remote = true;
}

void Router::PersistArrived(uint32_t origin_shard, uint64_t sequence) {
  Persist& p = *persist_;
  if (!p.hold || origin_shard >= shard_count_) return;
  std::deque<Persist::Checkpoint>& queue = p.to_confirm[origin_shard];
  if (!queue.empty() && queue.back().epoch == p.last_epoch) {
    queue.back().sequence = std::max(queue.back().sequence, sequence);
  } else {
    queue.push_back(Persist::Checkpoint{.sequence = sequence, .epoch = p.last_epoch});
  }
}

void Router::OnDurable(uint32_t shard, uint64_t sequence) {
  if (persist_ == nullptr || shard >= shard_count_) return;
  uint64_t& confirmed = persist_->confirmed_sequence[shard];
  confirmed = std::max(confirmed, sequence);
}

void Router::HoldIfLogged(net::Connection& connection, bool always) {
  Persist& p = *persist_;
  const bool needed = always || p.logged || p.sent_remote;
  p.logged = false;
  p.sent_remote = false;
  if (!p.hold || !needed) return;
  if (p.holds.empty() || p.holds.back().epoch != p.last_epoch ||
      p.holds.back().sequence != last_sequence_) {
    p.holds.push_back(
        Persist::Hold{.token = ++p.next_token, .epoch = p.last_epoch, .sequence = last_sequence_});
  }
  const uint64_t token = p.holds.back().token;
  connection.HoldOutput(token, &p.released);
  if (p.held.empty() || p.held.back().tag != connection.tag() || p.held.back().token != token) {
    p.held.push_back(Persist::Held{.tag = connection.tag(), .token = token});
  }
}

void Router::ReleaseHolds() {
  if (persist_ == nullptr || !persist_->hold ||
      !shared_.persist_committed.load(std::memory_order_acquire)) {
    return;
  }
  Persist& p = *persist_;
  const uint64_t durable = p.journal->durable_epoch();
  // Release the holds whose epoch is durable and whose messages other shards confirmed.
  while (!p.holds.empty()) {
    const Persist::Hold& hold = p.holds.front();
    if (hold.epoch > durable) break;
    bool confirmed = true;
    for (uint32_t shard = 0; shard < shard_count_ && confirmed; ++shard) {
      if (shard == shard_) continue;
      confirmed = p.confirmed_sequence[shard] >= std::min(hold.sequence, p.sent_sequence[shard]);
    }
    if (!confirmed) break;
    p.released = hold.token;
    p.holds.pop_front();
  }
  while (!p.held.empty() && p.held.front().token <= p.released) {
    // Popped first: frames processed on release may hold this or another connection again
    // (with a later token, pushed at the back).
    const uint32_t tag = p.held.front().tag;
    p.held.pop_front();
    services_.OutputReleased(tag);
  }
  const auto held = static_cast<int64_t>(p.held.size());
  counters_.gauges.persist_held_acks.Add(held - p.counted_held);
  p.counted_held = held;
}

bool Router::PersistAvailable() const {
  return shared_.persist_degraded_shards.load(std::memory_order_relaxed) == 0;
}

void Router::PersistStep() {
  Persist& p = *persist_;
  persist::Journal& journal = *p.journal;
  // Counters follow the journal's totals.
  counters_.persist_records.Add(p.records - p.counted_records);
  p.counted_records = p.records;
  counters_.persist_bytes_written.Add(journal.bytes_written() - p.counted_bytes);
  p.counted_bytes = journal.bytes_written();
  counters_.persist_syncs.Add(journal.syncs() - p.counted_syncs);
  p.counted_syncs = journal.syncs();
  if (journal.errors() != p.counted_errors) {
    counters_.persist_write_errors.Add(journal.errors() - p.counted_errors);
    p.counted_errors = journal.errors();
    RINGMQ_LOG_ERROR("shard %u: persistence log write failed: %s (retrying; QoS 1/2 publishes "
                     "are not acknowledged meanwhile)",
                     shard_, strerror(journal.last_error()));
  }
  const bool degraded = journal.failing() || journal.pending_bytes() > kMaxPendingBytes;
  if (degraded != p.degraded) {
    p.degraded = degraded;
    if (degraded) {
      shared_.persist_degraded_shards.fetch_add(1, std::memory_order_relaxed);
    } else {
      shared_.persist_degraded_shards.fetch_sub(1, std::memory_order_relaxed);
      RINGMQ_LOG_INFO("shard %u: persistence log writes succeed again", shard_);
    }
  }
  // Disk use: the segment being written, and the one a compaction replaces until it is gone.
  const uint64_t disk = journal.file_size() + p.old_segment_bytes;
  if (disk != p.disk_bytes) {
    counters_.gauges.persist_disk_bytes.Add(static_cast<int64_t>(disk) -
                                            static_cast<int64_t>(p.disk_bytes));
    if (disk > p.disk_bytes) {
      shared_.persist_disk_bytes.fetch_add(disk - p.disk_bytes, std::memory_order_relaxed);
    } else {
      shared_.persist_disk_bytes.fetch_sub(p.disk_bytes - disk, std::memory_order_relaxed);
    }
    p.disk_bytes = disk;
  }
  const int64_t pending = static_cast<int64_t>(journal.pending_bytes());
  counters_.gauges.persist_pending_bytes.Add(pending - p.counted_pending);
  p.counted_pending = pending;
  const uint64_t durable = journal.durable_epoch();
  if (!p.start_counted && durable >= p.start_epoch) {
    p.start_counted = true;
    shared_.snapshots_durable.fetch_add(1, std::memory_order_acq_rel);
  }
  if (!shared_.persist_committed.load(std::memory_order_acquire)) {
    if (shard_ != 0 || shared_.snapshots_durable.load(std::memory_order_acquire) != shard_count_) {
      return;
    }
    // Every shard's start snapshot is durable: run `persist_run` becomes the current one. A
    // blocking rename and fsync, once per start.
    if (absl::Status status = shared_.data_dir->CommitRun(shared_.persist_run, shard_count_);
        !status.ok()) {
      RINGMQ_LOG_ERROR("persistence: cannot commit run %llu: %s; acknowledgements stay held",
                       static_cast<unsigned long long>(shared_.persist_run),
                       std::string(status.message()).c_str());
      return;
    }
    shared_.persist_committed.store(true, std::memory_order_release);
  }
  if (journal.TakeRotationDone()) {
    shared_.data_dir->DeleteOlderSegments(shard_, shared_.persist_run, p.segment);
    p.old_segment_bytes = 0;
  }
  if (p.hold) {
    // Confirm other shards' messages whose records here are durable.
    for (uint32_t source = 0; source < shard_count_; ++source) {
      std::deque<Persist::Checkpoint>& queue = p.to_confirm[source];
      uint64_t sequence = 0;
      while (!queue.empty() && queue.front().epoch <= durable) {
        sequence = queue.front().sequence;
        queue.pop_front();
      }
      if (sequence > p.confirmed_to[source]) {
        p.confirmed_to[source] = sequence;
        outbox_.SendDurable(source, sequence);
      }
    }
    ReleaseHolds();
  }
  // Compaction: the segment has grown well past its live state.
  if (!journal.rotating() && journal.file_size() > CompactThreshold() &&
      journal.file_size() > kCompactFactor * p.snapshot_bytes) {
    absl::StatusOr<persist::SegmentFile> file =
        shared_.data_dir->CreateSegment(shard_, shared_.persist_run, p.segment + 1, /*sync=*/true);
    if (!file.ok()) {
      RINGMQ_LOG_ERROR("shard %u: cannot start a new log segment: %s", shard_,
                       std::string(file.status().message()).c_str());
      p.snapshot_bytes = journal.file_size();  // not again before the segment doubles
      return;
    }
    ++p.segment;
    p.old_segment_bytes = journal.file_size();
    journal.Rotate(std::move(*file));
    AppendSnapshot(/*all_retained=*/true);
    counters_.persist_compactions.Add();
  }
}

uint64_t Router::CompactThreshold() const {
  const uint64_t share = max_disk_bytes_ == 0 ? kCompactMaxBytes
                                              : max_disk_bytes_ / (uint64_t{4} * shard_count_);
  return std::clamp(share, kCompactMinBytes, kCompactMaxBytes);
}

void Router::PersistStopped() {
  Persist& p = *persist_;
  if (!p.start_counted && p.journal->durable_epoch() >= p.start_epoch) {
    p.start_counted = true;
    shared_.snapshots_durable.fetch_add(1, std::memory_order_acq_rel);
  }
}

bool Router::BeginFinalSnapshot() {
  Persist& p = *persist_;
  persist::Journal& journal = *p.journal;
  // Not if the log could not be drained, or holds nothing beyond its snapshot.
  if (journal.failing() || journal.has_pending() || journal.rotating() ||
      journal.file_size() <= p.snapshot_bytes + persist::kSegmentHeaderBytes) {
    return false;
  }
  absl::StatusOr<persist::SegmentFile> file =
      shared_.data_dir->CreateSegment(shard_, shared_.persist_run, p.segment + 1, /*sync=*/true);
  if (!file.ok()) {
    RINGMQ_LOG_WARNING("shard %u: no final snapshot: %s", shard_,
                       std::string(file.status().message()).c_str());
    return false;
  }
  ++p.segment;
  journal.Rotate(std::move(*file));
  AppendSnapshot(/*all_retained=*/true);
  return true;
}

void Router::EndFinalSnapshot() {
  Persist& p = *persist_;
  if (p.journal->TakeRotationDone()) {
    shared_.data_dir->DeleteOlderSegments(shard_, shared_.persist_run, p.segment);
    counters_.persist_compactions.Add();
  }
}

// ---- Recovery and snapshots ------------------------------------------------------------------

void Router::StartPersistence(persist::Journal* journal) {
  persist_ = std::make_unique<Persist>();
  Persist& p = *persist_;
  p.journal = journal;
  // Both durabilities hold: the journal's durable epoch is the fdatasync's (fsync) or the
  // write's (interval).
  p.hold = true;
  p.sent_sequence.assign(shard_count_, 0);
  p.confirmed_sequence.assign(shard_count_, 0);
  p.to_confirm.resize(shard_count_);
  p.confirmed_to.assign(shard_count_, 0);
  // The retained messages the broker recovered took shard 0's first sequence numbers.
  if (shard_ == 0) last_sequence_ = shared_.recovered_retained_sequences;
  RecoverSessions();
  AppendSnapshot(/*all_retained=*/shard_ == 0);
  p.start_epoch = p.last_epoch;
}

void Router::RecoverSessions() {
  const persist::RecoveredState* state = shared_.recovered;
  if (state == nullptr) return;
  Persist& p = *persist_;
  const uint64_t now_ms = services_.now_ms();
  const uint64_t wall_ms = WallMs();
  // Each stored message becomes one Message on this shard, shared by its deliveries here.
  absl::flat_hash_map<const persist::StoredMessage*, message::MessageRef> made;
  const auto message_of = [&](const persist::StoredMessage& stored) -> message::Message* {
    auto [it, inserted] = made.try_emplace(&stored);
    if (inserted) {
      uint64_t deadline = 0;
      if (stored.expiry_wall_ms != 0) {
        deadline = stored.expiry_wall_ms > wall_ms ? now_ms + (stored.expiry_wall_ms - wall_ms)
                                                   : std::max<uint64_t>(now_ms, 1);
      }
      it->second = message::MessageRef::Create(
          stored.topic,
          std::span<const uint8_t>(stored.payload.data(), stored.payload.size()), stored.qos,
          stored.retain, NextOrigin(),
          message::Mqtt5Fields{
              .properties = std::span<const uint8_t>(stored.properties.data(),
                                                     stored.properties.size()),
              .expiry_deadline_ms = deadline});
    }
    return it->second.get();
  };
  uint64_t sessions = 0;
  uint64_t deliveries = 0;
  // (offline since, session): they join the offline list in that order (it is kept by time).
  std::vector<std::pair<uint64_t, uint32_t>> offline;
  for (const auto& [client_id, stored] : state->sessions) {
    if (HomeShard(client_id) != shard_) continue;
    const uint32_t index = CreateSession(SharedString(client_id), /*clean_session=*/false);
    sessions_[index].bridge = stored.bridge;
    expiry_s_[index] = CapExpiry(stored.expiry_s == 0 ? kExpiryNever : stored.expiry_s);
    if (index >= p.sid.size()) p.sid.resize(size_t{index} + 1, 0);
    p.sid[index] = ++p.next_sid;
    session::Session& session = *sessions_[index].session;
    const Levels before = LevelsOf(session);
    for (const auto& [filter, subscription] : stored.subscriptions) {
      const session::SubscriptionOptions options{
          .identifier = subscription.identifier,
          .qos = static_cast<uint8_t>(subscription.options & 0x03),
          .no_local = (subscription.options & 0x04) != 0,
          .retain_as_published = (subscription.options & 0x08) != 0};
      if (session.AddSubscription(filter, options) == session::SubscribeResult::kLimit) continue;
      TrieSubscribe(filter, HandleOf(index, options.qos, false, options.has_delivery_options()));
      ClusterAcquire(filter);
    }
    for (const persist::StoredDelivery& delivery : stored.deliveries) {
      ++deliveries;
      switch (delivery.stage) {
        case persist::StoredDelivery::Stage::kQueued:
          if (delivery.message == nullptr) break;
          if (session.Enqueue(message::MessageRef::Share(message_of(*delivery.message)),
                              delivery.qos, delivery.retain) != session::EnqueueResult::kQueued) {
            counters_.dropped_queue_full.Add();  // the limits were lowered since
          }
          break;
        case persist::StoredDelivery::Stage::kAwaitAck:
          if (delivery.message == nullptr) break;
          session.RestoreInflight(message::MessageRef::Share(message_of(*delivery.message)),
                                  delivery.qos, delivery.retain, delivery.packet_id, false);
          break;
        case persist::StoredDelivery::Stage::kAwaitComplete:
          session.RestoreInflight(message::MessageRef(), 2, false, delivery.packet_id, true);
          break;
      }
    }
    for (const uint16_t packet_id : stored.inbound_qos2) session.BeginInboundQos2(packet_id);
    AccountLevels(before, session);
    // Offline since its connection ended (or since the restart if it was online then).
    uint64_t offline_ms = 0;
    if (stored.offline_since_wall_ms != 0 && wall_ms > stored.offline_since_wall_ms) {
      offline_ms = wall_ms - stored.offline_since_wall_ms;
    }
    offline.emplace_back(now_ms > offline_ms ? now_ms - offline_ms : 0, index);
    ++sessions;
  }
  std::sort(offline.begin(), offline.end());
  for (const auto& [since_ms, index] : offline) GoOffline(index, since_ms);
  counters_.persist_sessions_recovered.Add(sessions);
  if (shard_ == 0) {  // bridgeq2 lane: what the broker ended before the shards started
    counters_.persist_bridge_sessions_removed.Add(shared_.bridge_sessions_removed);
    counters_.persist_bridge_messages_removed.Add(shared_.bridge_messages_removed);
  }
  counters_.persist_messages_recovered.Add(deliveries);
  if (sessions != 0) {
    RINGMQ_LOG_INFO("shard %u: recovered %llu sessions with %llu queued and in-flight messages",
                    shard_, static_cast<unsigned long long>(sessions),
                    static_cast<unsigned long long>(deliveries));
  }
}

uint64_t Router::AppendSnapshot(bool all_retained) {
  Persist& p = *persist_;
  persist::Journal& journal = *p.journal;
  const uint64_t pending_before = journal.pending_bytes();
  ++p.written_generation;  // a new segment: every message is written again
  uint64_t records = 0;
  const auto append = [&](const Record& record) {
    p.Append(record);
    ++records;
  };
  p.Append(Record{.type = RecordType::kSnapshotBegin});
  const uint64_t now_ms = services_.now_ms();
  const uint64_t wall_ms = WallMs();
  absl::flat_hash_set<uint64_t> written;
  uint64_t placeholder = 0;
  for (uint32_t index = 0; index < sessions_.slot_count(); ++index) {
    const uint64_t sid = SidOf(index);
    if (sid == 0) continue;
    SessionEntry& entry = sessions_[index];
    if (!entry.session) continue;
    const session::Session& session = *entry.session;
    append(Record{.type = RecordType::kSession,
                  .sid = sid,
                  .expiry_s = expiry_s_[index],
                  .level = static_cast<uint8_t>(session.level()),
                  .flags = entry.bridge ? persist::kSessionFlagBridge : uint8_t{0},
                  .text = session.client_id()});
    if (offline_.Contains(index)) {
      const uint64_t since = offline_.since_ms(index);
      append(Record{.type = RecordType::kSessionOffline,
                    .sid = sid,
                    .count = wall_ms - std::min(wall_ms, now_ms > since ? now_ms - since : 0)});
    }
    for (const auto& [filter, options] : session.subscriptions()) {
      append(Record{.type = RecordType::kSubscribe,
                    .sid = sid,
                    .identifier = options.identifier,
                    .options = OptionsByte(options),
                    .text = filter});
    }
    session.ForEachDelivery([&](const message::Message* message, uint8_t qos, bool retain,
                                uint16_t packet_id, bool released) {
      if (qos == 0) return;  // an online session's QoS 0 backlog is not durable
      if (released) {
        const uint64_t mid = kPlaceholderMids | ++placeholder;
        append(Record{.type = RecordType::kMessage, .mid = mid, .qos = 2, .text = kReleasedTopic});
        append(Record{.type = RecordType::kEnqueue, .sid = sid, .mid = mid, .qos = 2});
        append(Record{.type = RecordType::kSent, .sid = sid, .mid = mid, .packet_id = packet_id});
        append(Record{.type = RecordType::kPubrec, .sid = sid, .packet_id = packet_id});
        return;
      }
      RINGMQ_ASSERT(message != nullptr);
      const uint64_t mid = MidOf(*message);
      if (written.insert(mid).second) append(MessageRecord(*message, mid, now_ms, wall_ms));
      append(Record{.type = RecordType::kEnqueue,
                    .sid = sid,
                    .mid = mid,
                    .qos = qos,
                    .flags = static_cast<uint8_t>(retain ? 1 : 0)});
      if (packet_id != 0) {
        append(Record{.type = RecordType::kSent, .sid = sid, .mid = mid, .packet_id = packet_id});
      }
    });
    session.ForEachInboundQos2([&](uint16_t packet_id) {
      append(Record{.type = RecordType::kInboundQos2, .sid = sid, .packet_id = packet_id});
    });
  }
  // The whole retained store, as of one store version (kRetainedAll): recovery drops every
  // older value that is not in it, so a deletion (whichever shard logged it) survives this
  // segment's compaction. The start snapshots of shards other than 0 leave it out (shard 0's
  // holds every recovered retained message; none was set since).
  if (all_retained) {
    std::vector<message::MessageRef> retained;
    const uint64_t version = shared_.retained.ForEachStored([&](message::Message* message) {
      if (!IsSys(message->topic())) retained.push_back(message::MessageRef::Share(message));
    });
    append(Record{.type = RecordType::kRetainedAll, .count = version});
    for (const message::MessageRef& message : retained) {
      append(Record{.type = RecordType::kRetain,
                    .count = version,
                    .expiry_wall_ms = WallExpiry(*message, now_ms, wall_ms),
                    .qos = message->qos(),
                    .text = message->topic(),
                    .properties = message->properties(),
                    .payload = message->payload()});
    }
  }
  p.Append(Record{.type = RecordType::kSnapshotEnd, .count = records});
  p.snapshot_bytes = journal.pending_bytes() - pending_before;
  return records;
}

}  // namespace ringmq::shard
