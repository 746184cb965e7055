// The durable state a segment's records describe: persistent sessions (subscriptions, queued
// and in-flight deliveries, inbound QoS 2 ids) and retained messages. Recovery applies every
// record of a shard's newest complete segment to a DurableState; `ringmq db check/dump` print
// it; the start-up compaction writes it back as snapshots.
//
// Apply follows the record semantics of record.h. It is strict: a record that names an unknown
// sid or mid, a kSent with no unsent delivery of its mid, or a packet id not in flight is an
// inconsistency (Apply returns false with error()); recovery reports it with the file and
// offset like a corrupt record.
//
// Every shard's state is then moved into one RecoveredState (MoveInto): sessions by client id,
// retained messages by topic with the highest version winning.
//
// Thread safety: a value; not shared.
#ifndef RINGMQ_PERSIST_STATE_H_
#define RINGMQ_PERSIST_STATE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/byte_buffer.h"
#include "persist/record.h"

namespace ringmq::persist {

struct StoredMessage {
  uint8_t qos = 0;
  bool retain = false;
  uint64_t expiry_wall_ms = 0;  // 0: none
  std::string topic;
  std::vector<uint8_t> properties;
  std::vector<uint8_t> payload;
};

struct StoredDelivery {
  enum class Stage : uint8_t {
    kQueued,         // not sent yet (packet_id 0)
    kAwaitAck,       // PUBLISH sent with packet_id; PUBACK / PUBREC due
    kAwaitComplete,  // QoS 2: PUBREC received, PUBREL sent or due
  };
  std::shared_ptr<const StoredMessage> message;  // null once kAwaitComplete
  uint64_t mid = 0;
  uint8_t qos = 0;
  bool retain = false;
  uint16_t packet_id = 0;
  Stage stage = Stage::kQueued;
};

struct StoredSubscription {
  uint8_t options = 0;  // record.h kSubscribe options byte
  uint32_t identifier = 0;
};

struct StoredSession {
  std::string client_id;
  uint32_t expiry_s = 0;
  uint8_t level = 4;
  uint64_t offline_since_wall_ms = 0;  // 0: was online when the log ended
  std::map<std::string, StoredSubscription> subscriptions;
  std::deque<StoredDelivery> deliveries;  // in queue order: in flight first, then queued
  std::vector<uint16_t> inbound_qos2;     // sorted
};

struct StoredRetained {
  uint64_t version = 0;
  StoredMessage message;
};

// What recovery hands the broker: every shard's state merged.
struct RecoveredState {
  std::map<std::string, StoredSession> sessions;  // by client id
  // By topic; after every shard was moved in, deletions (empty payloads) are dropped.
  std::map<std::string, StoredRetained> retained;
  uint64_t max_retained_version = 0;
  uint64_t duplicate_sessions = 0;
  void DropRetainedDeletions();
};

class DurableState {
 public:
  // Applies one record. False (state unchanged, error() set) if it is inconsistent.
  bool Apply(const Record& record);
  const std::string& error() const { return error_; }

  // Sessions by sid of the segment being applied (valid after Apply; MoveInto re-keys by client id).
  const absl::flat_hash_map<uint64_t, StoredSession>& sessions() const { return sessions_; }
  // Retained messages by topic (deletions are kept with an empty payload until MoveInto, so that
  // a newer deletion beats an older value from another shard's log).
  const std::map<std::string, StoredRetained>& retained() const { return retained_; }

  // Moves this state's sessions (now keyed by client id) and retained messages into `out`.
  // Retained: per topic the higher version wins; a session whose client id `out` already holds
  // is kept from the state with more deliveries (counted in out.duplicate_sessions).
  void MoveInto(struct RecoveredState& out);

  uint64_t message_count() const { return messages_.size(); }
  uint64_t delivery_count() const;

 private:
  absl::flat_hash_map<uint64_t, StoredSession> sessions_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<const StoredMessage>> messages_;  // by mid
  std::map<std::string, StoredRetained> retained_;
  std::string error_;
};

}  // namespace ringmq::persist

#endif  // RINGMQ_PERSIST_STATE_H_
