// The router's persistence state (router.h, "Persistence"); included by the router's sources
// only.
//
// Thread safety: part of its Router, used only on that shard's thread.
#ifndef RINGMQ_SHARD_ROUTER_PERSIST_H_
#define RINGMQ_SHARD_ROUTER_PERSIST_H_

#include <array>
#include <cstdint>
#include <deque>
#include <vector>

#include "persist/journal.h"
#include "session/session.h"
#include "shard/router.h"

namespace ringmq::shard {

struct Router::Persist {
  void Append(const persist::Record& record) {
    last_epoch = journal->Append(record);
    logged = true;
    ++records;
    switch (record.type) {
      // A record that can end a delivery can make the log forget its message (state.h): the
      // messages `written` remembers may be gone, so it forgets them all.
      case persist::RecordType::kPuback:
      case persist::RecordType::kPubrec:
      case persist::RecordType::kPubcomp:
      case persist::RecordType::kDiscard:
      case persist::RecordType::kSessionEnd:
        ++written_generation;
        break;
      default:
        break;
    }
  }

  persist::Journal* journal = nullptr;
  bool hold = true;  // acknowledgements wait for the log (its durable epoch)
  std::vector<uint64_t> sid;  // by session slot; 0: not durable
  uint64_t next_sid = 0;
  uint64_t last_epoch = 0;    // of the last record appended
  bool logged = false;        // records appended since the last HoldIfLogged
  bool sent_remote = false;   // messages sent to other shards since the last HoldIfLogged
  // mids written (kMessage) to the current segment since no delivery ended: a direct-mapped
  // cache, valid while its generation is written_generation. A hit must mean the log still
  // holds the message (a kEnqueue of a forgotten mid is an inconsistency); a miss writes the
  // message again, which recovery accepts (state.h).
  struct Written {
    uint64_t mid = 0;
    uint64_t generation = 0;
  };
  std::array<Written, 1024> written{};
  uint64_t written_generation = 1;
  // Placeholder mids of released deliveries restored from a moved session (PersistRestored;
  // moveinflight lane): each is forgotten at its kPubrec, right after it is written.
  uint64_t placeholders = 0;
  // Holds: tokens in order; each needs the journal epoch durable and the other shards'
  // confirmations up to the sequence.
  struct Hold {
    uint64_t token = 0;
    uint64_t epoch = 0;
    uint64_t sequence = 0;
  };
  std::deque<Hold> holds;
  uint64_t next_token = 0;
  uint64_t released = 0;  // the connections' HoldOutput reads it
  struct Held {
    uint32_t tag = 0;
    uint64_t token = 0;
  };
  std::deque<Held> held;  // connections with held output, in token order
  // Per other shard: the sequence of our last message sent there, and the last it confirmed.
  std::vector<uint64_t> sent_sequence;
  std::vector<uint64_t> confirmed_sequence;
  // Per source shard: its messages that arrived here, with the epoch that must be durable
  // before they are confirmed (one checkpoint per loop iteration at most).
  struct Checkpoint {
    uint64_t sequence = 0;
    uint64_t epoch = 0;
  };
  std::vector<std::deque<Checkpoint>> to_confirm;
  std::vector<uint64_t> confirmed_to;  // the last sequence confirmed to each source
  // The start snapshot: its epoch, and whether it was counted durable.
  uint64_t start_epoch = 0;
  bool start_counted = false;
  bool degraded = false;  // this shard counted in shared.persist_degraded_shards
  // Compaction: the segment being written, and the bytes its snapshot took.
  uint64_t segment = 0;
  uint64_t snapshot_bytes = 0;
  uint64_t disk_bytes = 0;  // this shard's share of shared.persist_disk_bytes
  uint64_t old_segment_bytes = 0;  // the segment a compaction replaces, until deleted
  int64_t counted_pending = 0;     // gauges' last values
  int64_t counted_held = 0;
  // The journal's totals already added to the counters.
  uint64_t records = 0;  // appended (the counter takes the difference)
  uint64_t counted_records = 0;
  uint64_t counted_bytes = 0;
  uint64_t counted_syncs = 0;
  uint64_t counted_errors = 0;

  // Session::WriteOutput's DeliveryLog for one durable session.
  class Log final : public session::DeliveryLog {
   public:
    Log(Router& router, uint32_t index) : router_(router), index_(index) {}
    void Sent(const message::Message& message, uint16_t packet_id, uint8_t qos) override;
    void DiscardedQueued(const message::Message& message) override;
    void DiscardedInflight(uint16_t packet_id, uint8_t qos) override;

    // A QoS 2 PUBLISH was sent for the first time: its packet id must be durable before it
    // leaves (exactly once depends on it; a QoS 1 resend under another id is allowed).
    bool qos2_sent() const { return qos2_sent_; }

   private:
    Router& router_;
    uint32_t index_;
    bool qos2_sent_ = false;
  };
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_ROUTER_PERSIST_H_
