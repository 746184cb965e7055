#include "persist/state.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/assert.h"

namespace ringmq::persist {
namespace {

using Stage = StoredDelivery::Stage;

constexpr uint8_t kQosMask = 0x03;
constexpr uint8_t kSubscribeOptionBits = 0x0F;  // QoS, No Local, Retain As Published
constexpr uint8_t kRetainFlag = 0x01;           // kMessage / kEnqueue flags bit 0

std::string Hex(uint64_t id) { return absl::StrFormat("%#" PRIx64, id); }

// The first delivery not in flight: deliveries before it are in flight (kAwaitAck or
// kAwaitComplete), in send order. The prefix is at most the session's in-flight window
// (max_inflight), so the scan is bounded by it.
size_t FirstQueued(const std::deque<StoredDelivery>& deliveries) {
  size_t index = 0;
  while (index < deliveries.size() && deliveries[index].stage != Stage::kQueued) ++index;
  return index;
}

// The first queued delivery of `mid` at or after `from`, or deliveries.size().
size_t FindQueued(const std::deque<StoredDelivery>& deliveries, size_t from, uint64_t mid) {
  for (size_t index = from; index < deliveries.size(); ++index) {
    if (deliveries[index].stage == Stage::kQueued && deliveries[index].mid == mid) return index;
  }
  return deliveries.size();
}

// The in-flight delivery with `packet_id`, or deliveries.size(). Only the in-flight prefix is
// searched: a queued delivery has no packet id.
size_t FindInFlight(const std::deque<StoredDelivery>& deliveries, uint16_t packet_id) {
  for (size_t index = 0; index < deliveries.size(); ++index) {
    const StoredDelivery& delivery = deliveries[index];
    if (delivery.stage == Stage::kQueued) break;
    if (delivery.packet_id == packet_id) return index;
  }
  return deliveries.size();
}

}  // namespace

void RecoveredState::DropRetainedDeletions() {
  // A value older than the newest complete snapshot of the retained store, and not in it, was
  // deleted (or replaced) before that snapshot: kRetainedAll.
  std::erase_if(retained, [this](const auto& entry) {
    return entry.second.message.payload.empty() ||
           entry.second.version < retained_all_version;
  });
}

uint64_t DurableState::delivery_count() const {
  uint64_t count = 0;
  for (const auto& [sid, session] : sessions_) count += session.deliveries.size();
  return count;
}

bool DurableState::Fail(std::string error) {
  error_ = std::move(error);
  return false;
}

StoredSession* DurableState::FindSession(const Record& record, std::string_view what) {
  const auto it = sessions_.find(record.sid);
  if (it == sessions_.end()) {
    error_ = absl::StrCat(std::string(what), " names unknown session ", Hex(record.sid));
    return nullptr;
  }
  return &it->second;
}

void DurableState::Release(uint64_t mid, std::shared_ptr<const StoredMessage>& message) {
  if (message == nullptr) return;
  message.reset();
  const auto it = messages_.find(mid);
  RINGMQ_ASSERT(it != messages_.end());  // a delivery's message stays in messages_ while named
  if (it->second.use_count() == 1) messages_.erase(it);
}

void DurableState::Remove(StoredSession& session, size_t index) {
  RINGMQ_ASSERT(index < session.deliveries.size());
  StoredDelivery& delivery = session.deliveries[index];
  Release(delivery.mid, delivery.message);
  session.deliveries.erase(session.deliveries.begin() + static_cast<ptrdiff_t>(index));
}

bool DurableState::Apply(const Record& record) {
  switch (record.type) {
    case RecordType::kSnapshotBegin:
    case RecordType::kSnapshotEnd:
      return true;  // segment structure: the data directory checks it
    case RecordType::kSession:
      return ApplySession(record);
    case RecordType::kSessionEnd:
      return ApplySessionEnd(record);
    case RecordType::kSessionOffline: {
      StoredSession* session = FindSession(record, "kSessionOffline");
      if (session == nullptr) return false;
      session->offline_since_wall_ms = record.count;
      return true;
    }
    case RecordType::kSubscribe:
      return ApplySubscribe(record);
    case RecordType::kUnsubscribe: {
      StoredSession* session = FindSession(record, "kUnsubscribe");
      if (session == nullptr) return false;
      const auto it = session->subscriptions.find(std::string(record.text));
      if (it == session->subscriptions.end()) {
        return Fail(absl::StrCat("kUnsubscribe of session ", Hex(record.sid),
                                 ": no subscription \"", std::string(record.text), "\""));
      }
      session->subscriptions.erase(it);
      return true;
    }
    case RecordType::kMessage:
      return ApplyMessage(record);
    case RecordType::kEnqueue:
      return ApplyEnqueue(record);
    case RecordType::kSent:
      return ApplySent(record);
    case RecordType::kPuback:
    case RecordType::kPubrec:
    case RecordType::kPubcomp:
      return ApplyAck(record);
    case RecordType::kDiscard: {
      StoredSession* session = FindSession(record, "kDiscard");
      if (session == nullptr) return false;
      const size_t index = FindQueued(session->deliveries, 0, record.mid);
      if (index == session->deliveries.size()) {
        return Fail(absl::StrCat("kDiscard of session ", Hex(record.sid),
                                 ": no unsent delivery of message ", Hex(record.mid)));
      }
      Remove(*session, index);
      return true;
    }
    case RecordType::kInboundQos2:
    case RecordType::kInboundRelease:
      return ApplyInbound(record);
    case RecordType::kRetain:
      return ApplyRetain(record);
    case RecordType::kRetainedAll:
      retained_all_version_ = std::max(retained_all_version_, record.count);
      return true;
  }
  return Fail(absl::StrCat("unknown record type ", static_cast<int>(record.type)));
}

bool DurableState::ApplySession(const Record& record) {
  if (record.text.empty()) {
    return Fail(absl::StrCat("kSession ", Hex(record.sid), " has an empty client id"));
  }
  if ((record.flags & ~kSessionFlagBridge) != 0) {
    return Fail(absl::StrCat("kSession ", Hex(record.sid), " has unknown flags ",
                             static_cast<int>(record.flags)));
  }
  const auto [it, inserted] = sessions_.try_emplace(record.sid);
  StoredSession& session = it->second;
  if (inserted) {
    session.client_id = std::string(record.text);
  } else if (session.client_id != record.text) {
    return Fail(absl::StrCat("kSession ", Hex(record.sid), " names client \"",
                             std::string(record.text), "\" but the session is \"",
                             session.client_id, "\""));
  }
  session.expiry_s = record.expiry_s;
  session.level = record.level;
  session.bridge = (record.flags & kSessionFlagBridge) != 0;
  // Written at creation and at each resume: the session has a connection again.
  session.offline_since_wall_ms = 0;
  return true;
}

bool DurableState::ApplySessionEnd(const Record& record) {
  const auto it = sessions_.find(record.sid);
  if (it == sessions_.end()) {
    return Fail(absl::StrCat("kSessionEnd names unknown session ", Hex(record.sid)));
  }
  for (StoredDelivery& delivery : it->second.deliveries) Release(delivery.mid, delivery.message);
  sessions_.erase(it);
  return true;
}

bool DurableState::ApplySubscribe(const Record& record) {
  StoredSession* session = FindSession(record, "kSubscribe");
  if (session == nullptr) return false;
  if ((record.options & kQosMask) == 3) {
    return Fail(absl::StrCat("kSubscribe of session ", Hex(record.sid), " to \"",
                             std::string(record.text), "\" has QoS 3"));
  }
  if ((record.options & ~kSubscribeOptionBits) != 0) {
    return Fail(absl::StrCat("kSubscribe of session ", Hex(record.sid), " to \"",
                             std::string(record.text), "\" has reserved option bits ",
                             Hex(record.options)));
  }
  if (record.text.empty()) {
    return Fail(absl::StrCat("kSubscribe of session ", Hex(record.sid), " has an empty filter"));
  }
  // MQTT-3.8.4-3: a subscription to an existing filter replaces it.
  StoredSubscription& subscription = session->subscriptions[std::string(record.text)];
  subscription.options = record.options;
  subscription.identifier = record.identifier;
  return true;
}

bool DurableState::ApplyMessage(const Record& record) {
  if (record.qos == 0 || record.qos > 2) {
    return Fail(absl::StrCat("kMessage ", Hex(record.mid), " has QoS ", int{record.qos},
                             " (only QoS 1 and 2 messages are stored)"));
  }
  if ((record.flags & ~kRetainFlag) != 0) {
    return Fail(
        absl::StrCat("kMessage ", Hex(record.mid), " has reserved flags ", Hex(record.flags)));
  }
  if (record.text.empty()) {
    return Fail(absl::StrCat("kMessage ", Hex(record.mid), " has an empty topic"));
  }
  if (const auto it = messages_.find(record.mid); it != messages_.end()) {
    // The writer may write a message again while deliveries still name it (it does not track
    // exactly which mids the log holds); the same mid with other content is an inconsistency.
    const StoredMessage& stored = *it->second;
    const bool same =
        stored.qos == record.qos && stored.retain == ((record.flags & kRetainFlag) != 0) &&
        stored.topic == record.text &&
        std::ranges::equal(stored.properties, record.properties) &&
        std::ranges::equal(stored.payload, record.payload);
    if (!same) {
      return Fail(absl::StrCat("kMessage ", Hex(record.mid),
                               " is already stored with other content"));
    }
    return true;  // the first record's expiry stands
  }
  auto message = std::make_shared<StoredMessage>();
  message->qos = record.qos;
  message->retain = (record.flags & kRetainFlag) != 0;
  message->expiry_wall_ms = record.expiry_wall_ms;
  message->topic = std::string(record.text);
  message->properties.assign(record.properties.begin(), record.properties.end());
  message->payload.assign(record.payload.begin(), record.payload.end());
  messages_.emplace(record.mid, std::move(message));
  return true;
}

bool DurableState::ApplyEnqueue(const Record& record) {
  StoredSession* session = FindSession(record, "kEnqueue");
  if (session == nullptr) return false;
  const auto message = messages_.find(record.mid);
  if (message == messages_.end()) {
    return Fail(absl::StrCat("kEnqueue for session ", Hex(record.sid), " names unknown message ",
                             Hex(record.mid)));
  }
  if (record.qos == 0 || record.qos > message->second->qos) {
    return Fail(absl::StrCat("kEnqueue for session ", Hex(record.sid), " of message ",
                             Hex(record.mid), " at QoS ", int{record.qos}, " (the message has QoS ",
                             int{message->second->qos}, ")"));
  }
  if ((record.flags & ~kRetainFlag) != 0) {
    return Fail(absl::StrCat("kEnqueue for session ", Hex(record.sid), " has reserved flags ",
                             Hex(record.flags)));
  }
  StoredDelivery& delivery = session->deliveries.emplace_back();
  delivery.message = message->second;
  delivery.mid = record.mid;
  delivery.qos = record.qos;
  delivery.retain = (record.flags & kRetainFlag) != 0;
  return true;
}

bool DurableState::ApplySent(const Record& record) {
  StoredSession* session = FindSession(record, "kSent");
  if (session == nullptr) return false;
  std::deque<StoredDelivery>& deliveries = session->deliveries;
  if (record.packet_id == 0) {
    return Fail(absl::StrCat("kSent for session ", Hex(record.sid), " has packet id 0"));
  }
  if (FindInFlight(deliveries, record.packet_id) != deliveries.size()) {
    return Fail(absl::StrCat("kSent for session ", Hex(record.sid), ": packet id ",
                             record.packet_id, " is already in flight"));
  }
  const size_t first_queued = FirstQueued(deliveries);
  const size_t index = FindQueued(deliveries, first_queued, record.mid);
  if (index == deliveries.size()) {
    return Fail(absl::StrCat("kSent for session ", Hex(record.sid),
                             ": no unsent delivery of message ", Hex(record.mid)));
  }
  // Keep "in flight first, in send order, then queued": a delivery sent ahead of older queued
  // ones (which stay queued) moves to the end of the in-flight prefix.
  const auto begin = deliveries.begin();
  std::rotate(begin + static_cast<ptrdiff_t>(first_queued), begin + static_cast<ptrdiff_t>(index),
              begin + static_cast<ptrdiff_t>(index) + 1);
  StoredDelivery& delivery = deliveries[first_queued];
  delivery.stage = Stage::kAwaitAck;
  delivery.packet_id = record.packet_id;
  return true;
}

bool DurableState::ApplyAck(const Record& record) {
  const std::string_view label = record.type == RecordType::kPuback   ? "kPuback"
                                 : record.type == RecordType::kPubrec ? "kPubrec"
                                                                      : "kPubcomp";
  StoredSession* session = FindSession(record, label);
  if (session == nullptr) return false;
  const size_t index = FindInFlight(session->deliveries, record.packet_id);
  const bool found = index != session->deliveries.size();
  StoredDelivery* delivery = found ? &session->deliveries[index] : nullptr;
  switch (record.type) {
    case RecordType::kPuback:
      if (!found || delivery->qos != 1 || delivery->stage != Stage::kAwaitAck) break;
      Remove(*session, index);
      return true;
    case RecordType::kPubrec:
      if (!found || delivery->qos != 2 || delivery->stage != Stage::kAwaitAck) break;
      delivery->stage = Stage::kAwaitComplete;
      Release(delivery->mid, delivery->message);  // PUBREL carries no message
      return true;
    case RecordType::kPubcomp:
      if (!found || delivery->stage != Stage::kAwaitComplete) break;
      Remove(*session, index);
      return true;
    default:
      RINGMQ_ASSERT(false);
  }
  return Fail(absl::StrCat(std::string(label), " for session ", Hex(record.sid), ": packet id ",
                           record.packet_id,
                           found ? " is in flight in another stage or QoS" : " is not in flight"));
}

bool DurableState::ApplyInbound(const Record& record) {
  StoredSession* session = FindSession(
      record, record.type == RecordType::kInboundQos2 ? "kInboundQos2" : "kInboundRelease");
  if (session == nullptr) return false;
  std::vector<uint16_t>& ids = session->inbound_qos2;
  const auto it = std::lower_bound(ids.begin(), ids.end(), record.packet_id);
  const bool present = it != ids.end() && *it == record.packet_id;
  if (record.type == RecordType::kInboundQos2) {
    if (record.packet_id == 0) {
      return Fail(absl::StrCat("kInboundQos2 for session ", Hex(record.sid), " has packet id 0"));
    }
    if (present) {
      return Fail(absl::StrCat("kInboundQos2 for session ", Hex(record.sid), ": packet id ",
                               record.packet_id, " is already awaiting PUBREL"));
    }
    ids.insert(it, record.packet_id);
    return true;
  }
  if (!present) {
    return Fail(absl::StrCat("kInboundRelease for session ", Hex(record.sid), ": packet id ",
                             record.packet_id, " is not awaiting PUBREL"));
  }
  ids.erase(it);
  return true;
}

bool DurableState::ApplyRetain(const Record& record) {
  if (record.qos > 2) {
    return Fail(
        absl::StrCat("kRetain of \"", std::string(record.text), "\" has QoS ", int{record.qos}));
  }
  if (record.text.empty()) return Fail("kRetain has an empty topic");
  const uint64_t version = record.count;
  const auto [it, inserted] = retained_.try_emplace(std::string(record.text));
  StoredRetained& retained = it->second;
  if (!inserted && retained.version >= version) return true;  // an older version: the newer wins
  retained.version = version;
  StoredMessage& message = retained.message;
  message.qos = record.qos;
  message.retain = true;
  message.expiry_wall_ms = record.expiry_wall_ms;
  message.topic = it->first;
  message.properties.assign(record.properties.begin(), record.properties.end());
  message.payload.assign(record.payload.begin(), record.payload.end());
  return true;
}

void DurableState::MoveInto(RecoveredState& out) {
  for (auto& [sid, session] : sessions_) {
    const auto [it, inserted] = out.sessions.try_emplace(session.client_id);
    if (!inserted) {
      // Two shards' logs hold the client (a hand-off whose end was not logged before the
      // crash): keep the one with more deliveries, which loses the fewest messages.
      ++out.duplicate_sessions;
      if (it->second.deliveries.size() >= session.deliveries.size()) continue;
    }
    it->second = std::move(session);
  }
  out.retained_all_version = std::max(out.retained_all_version, retained_all_version_);
  out.max_retained_version = std::max(out.max_retained_version, retained_all_version_);
  retained_all_version_ = 0;
  for (auto& [topic, retained] : retained_) {
    out.max_retained_version = std::max(out.max_retained_version, retained.version);
    const auto [it, inserted] = out.retained.try_emplace(topic);
    if (inserted || retained.version > it->second.version) it->second = std::move(retained);
  }
  sessions_.clear();
  messages_.clear();
  retained_.clear();
  error_.clear();
}

}  // namespace ringmq::persist
