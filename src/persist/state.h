// The durable state a segment's records describe: persistent sessions (subscriptions, queued
// and in-flight deliveries, inbound QoS 2 ids) and retained messages. Recovery applies every
// record of a shard's newest complete segment to a DurableState; `ringmq db check/dump` print
// it; the start-up compaction writes it back as snapshots.
//
// Apply follows the record semantics of record.h. It is strict: a record that does not fit the
// state is an inconsistency (Apply returns false with error() and leaves the state unchanged);
// recovery reports it with the file and offset like a corrupt record. Inconsistent are:
//   - a record naming an unknown sid; a kEnqueue naming an unknown mid;
//   - a kSession whose client id differs from the one its sid already has, or is empty, or
//     with flag bits other than kSessionFlagBridge;
//   - a kSubscribe with QoS 3, option bits above bit 3 or an empty filter; a kUnsubscribe of a
//     filter the session does not hold;
//   - a kMessage whose mid is already stored with another QoS, retain flag, topic, properties
//     or payload (the same content again is accepted and changes nothing), with QoS 0 or
//     above 2 (only QoS 1/2 messages are stored), flag bits above bit 0 or an empty topic; a
//     kEnqueue at QoS 0 or above the message's QoS (a delivery is downgraded, never upgraded),
//     or with flag bits above bit 0;
//   - a kSent with packet id 0, a packet id already in flight in the session, or no unsent
//     delivery of its mid; a kDiscard with no unsent delivery of its mid;
//   - a kPuback whose packet id is not an in-flight QoS 1 delivery awaiting PUBACK; a kPubrec
//     whose packet id is not a QoS 2 delivery awaiting PUBREC; a kPubcomp whose packet id is not
//     a delivery awaiting PUBCOMP;
//   - a kInboundQos2 with packet id 0 or one already remembered; a kInboundRelease of an id not
//     remembered; a kRetain with QoS above 2 or an empty topic.
//
// Semantics the writer relies on:
//   - kSession on a known sid (a resume) sets expiry and level, clears offline_since (the
//     session has a connection again) and keeps subscriptions, deliveries and inbound ids. A
//     writer that changes the expiry of a session going offline writes kSession, then
//     kSessionOffline.
//   - Messages are shared by the deliveries that name them. A message is forgotten when its last
//     delivery is removed (kPuback, kPubcomp, kDiscard, kSessionEnd) or passes kPubrec; a later
//     kEnqueue of that mid needs a kMessage again (so a writer moving a delivery to another
//     session writes the new kEnqueue before the old delivery's kDiscard). A kMessage no
//     delivery names yet is kept until a kEnqueue names it, or until MoveInto (which drops it).
//   - kSent marks the first unsent delivery of its mid; if older deliveries are still unsent,
//     it moves to the end of the in-flight ones, so deliveries stay "in flight in send order,
//     then queued in queue order" (the order of resending, MQTT-4.6.0-1).
//   - kRetain keeps, per topic, the record with the higher version (an empty payload is kept
//     as a deletion until RecoveredState::DropRetainedDeletions).
//
// Cost: a kEnqueue is two hash lookups and an append to the session's deque; searches by packet
// id and the kSent/kDiscard searches scan the session's in-flight deliveries (at most
// max_inflight) and, for kSent/kDiscard, the queued ones up to the first of their mid (the
// first one when the writer sends in queue order).
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
#include <string_view>
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
  bool bridge = false;  // kSessionFlagBridge of its last kSession (bridgeq2 lane)
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
  // The newest kRetainedAll: values older than it that its snapshot did not hold are dropped.
  uint64_t retained_all_version = 0;
  uint64_t duplicate_sessions = 0;
  void DropRetainedDeletions();
};

class DurableState {
 public:
  // Applies one record. False (state unchanged, error() set) if it is inconsistent.
  bool Apply(const Record& record);
  const std::string& error() const { return error_; }

  // Sessions by sid of the segment being applied (valid after Apply; MoveInto re-keys by client
  // id).
  const absl::flat_hash_map<uint64_t, StoredSession>& sessions() const { return sessions_; }
  // Retained messages by topic (deletions are kept with an empty payload until MoveInto, so that
  // a newer deletion beats an older value from another shard's log).
  const std::map<std::string, StoredRetained>& retained() const { return retained_; }

  // Moves this state's sessions (now keyed by client id) and retained messages into `out`.
  // Retained: per topic the higher version wins; a session whose client id `out` already holds
  // is kept from the state with more deliveries (counted in out.duplicate_sessions). Messages
  // no delivery names are dropped. Leaves this state empty.
  void MoveInto(RecoveredState& out);

  uint64_t message_count() const { return messages_.size(); }
  uint64_t delivery_count() const;

 private:
  bool Fail(std::string error);
  // The session `record.sid` names, or null with error() set ("<what> names unknown session").
  StoredSession* FindSession(const Record& record, std::string_view what);
  // Drops a delivery's reference to message `mid`; forgets the message if nothing else names it.
  void Release(uint64_t mid, std::shared_ptr<const StoredMessage>& message);
  void Remove(StoredSession& session, size_t index);
  bool ApplySession(const Record& record);
  bool ApplySessionEnd(const Record& record);
  bool ApplySubscribe(const Record& record);
  bool ApplyMessage(const Record& record);
  bool ApplyEnqueue(const Record& record);
  bool ApplySent(const Record& record);
  bool ApplyAck(const Record& record);      // kPuback, kPubrec, kPubcomp
  bool ApplyInbound(const Record& record);  // kInboundQos2, kInboundRelease
  bool ApplyRetain(const Record& record);

  absl::flat_hash_map<uint64_t, StoredSession> sessions_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<const StoredMessage>> messages_;  // by mid
  std::map<std::string, StoredRetained> retained_;
  uint64_t retained_all_version_ = 0;  // the newest kRetainedAll applied
  std::string error_;
};

}  // namespace ringmq::persist

#endif  // RINGMQ_PERSIST_STATE_H_
