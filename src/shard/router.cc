#include "shard/router.h"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <utility>

#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"
#include "mqtt/codec.h"

namespace ringmq::shard {
namespace {

enum SlotKind : uint32_t {
  kMessage = 1,
  kHandle = 2,
  kHandoff = 3,
  kFenceRequest = 4,
  kFenceReply = 5,
};

// Records drained per source mailbox per loop iteration: bounds the time one iteration spends
// on deliveries so sends, receives and timers keep their turn.
constexpr size_t kDrainBudgetRecords = 4096;
// Records waiting for room in one full mailbox; beyond this new records are dropped (counted).
constexpr size_t kOverflowRecordsMax = 65'536;

uint8_t MinQos(uint8_t a, uint8_t b) { return a < b ? a : b; }

}  // namespace

struct Router::HandoffRecord {
  int fd = -1;
  std::vector<uint8_t> bytes;
};

Router::Router(uint32_t shard, const Config& config, SharedState& shared,
               metrics::ShardCounters& counters, net::ConnectionContext& context,
               ShardServices& services)
    : shard_(shard),
      shard_count_(shared.shard_count),
      shared_(shared),
      counters_(counters),
      context_(context),
      services_(services),
      overflow_(shared.shard_count),
      doorbell_due_(shared.shard_count, false),
      retained_fence_(shard, shared.shard_count) {
  limits_.max_inflight = config.max_inflight;
  limits_.max_queued_messages = config.max_queued_messages;
  limits_.max_queued_bytes = config.max_queued_bytes;
  queue_full_disconnects_ = config.queue_full_policy == QueueFullPolicy::kDisconnect;
  acl_enabled_ = !config.acl_file.empty();
}

Router::~Router() {
  // Records that never reached their mailbox still hold message references.
  for (auto& queue : overflow_) {
    for (auto& record : queue) {
      if (record[0].kind == kMessage)
        reinterpret_cast<message::Message*>(record[0].value)->Release();
      if (record[0].kind == kHandoff) {
        auto* handoff = reinterpret_cast<HandoffRecord*>(record[0].value);
        close(handoff->fd);
        delete handoff;
      }
    }
  }
}

uint32_t Router::HomeShard(std::string_view client_id) const {
  return static_cast<uint32_t>(std::hash<std::string_view>{}(client_id) % shard_count_);
}

// ---- Connections and sessions ----------------------------------------------------------------

net::PacketSink::ConnectAction Router::OnConnect(net::Connection& connection,
                                                 const mqtt::Connect& connect) {
  // A server-assigned id (empty client id) is unique and clean: it can be served here.
  if (!connect.client_id.empty() && HomeShard(connection.client_id()) != shard_) {
    return ConnectAction::kHandoff;
  }
  const std::string& client_id = connection.client_id();
  bool session_present = false;
  uint32_t index = kNone;
  if (auto it = by_client_id_.find(client_id); it != by_client_id_.end()) {
    index = it->second;
    SessionEntry& entry = sessions_[index];
    if (entry.connection != nullptr) {
      // MQTT-3.1.4-2: the new connection takes over; the old one is closed and, unless it sent
      // DISCONNECT (it may still be closing after one), its will is published. A DISCONNECTed
      // connection that is still closing is no takeover.
      net::Connection* old = entry.connection;
      const bool graceful = old->disconnected_gracefully();
      if (!graceful) {
        counters_.session_takeovers.Add();
        RINGMQ_LOG_DEBUG("client %s taken over by a new connection", client_id.c_str());
      }
      session_of_tag_[old->tag()] = kNone;
      Detach(index, /*publish_will=*/!graceful);
      old->Close(services_.now_ms());
      services_.ConnectionDirty(old->tag());
    }
    // MQTT-3.1.2-6: clean session 1 discards any previous session. A clean old session ended
    // with its connection, so it is not resumed either.
    if (connect.clean_session || entry.session->clean_session()) {
      DestroySession(index);
      index = kNone;
    } else {
      session_present = true;  // MQTT-3.2.2-2
    }
  }
  if (index == kNone) index = CreateSession(client_id, connect.clean_session);
  SessionEntry& entry = sessions_[index];
  session::Session& session = *entry.session;
  session.Attach(connect.clean_session);
  counters_.gauges.sessions_online.Add(1);
  counters_.gauges.sessions_offline.Add(-1);
  session.will().reset();
  if (connect.will) {
    const mqtt::Will& will = *connect.will;
    session.will() = std::make_unique<session::Will>(
        session::Will{.topic = std::string(will.topic),
                      .payload = std::vector<uint8_t>(will.payload.begin(), will.payload.end()),
                      .qos = static_cast<uint8_t>(will.qos),
                      .retain = will.retain});
  }
  entry.connection = &connection;
  if (acl_enabled_) {
    // The ACL belongs to this connection (its user name), compiled at the first check.
    entry.acl = std::make_unique<ConnectionAcl>();
    if (connect.user_name) entry.acl->user_name.emplace(*connect.user_name);
  }
  if (connection.tag() >= session_of_tag_.size())
    session_of_tag_.resize(connection.tag() + 1, kNone);
  session_of_tag_[connection.tag()] = index;
  // MQTT 3.1 has no session-present flag: the byte is reserved there.
  connection.SendConnack(session_present && connection.level() == mqtt::ProtocolLevel::kMqtt311);
  MarkSessionDirty(index);  // in-flight messages of a resumed session are sent again
  return ConnectAction::kServe;
}

uint32_t Router::CreateSession(const std::string& client_id, bool clean_session) {
  uint32_t index = 0;
  if (!free_sessions_.empty()) {
    index = free_sessions_.back();
    free_sessions_.pop_back();
  } else {
    index = static_cast<uint32_t>(sessions_.size());
    sessions_.emplace_back();
  }
  SessionEntry& entry = sessions_[index];
  RINGMQ_ASSERT(!entry.session.has_value());
  entry.session.emplace(client_id, clean_session, limits_);
  entry.connection = nullptr;
  entry.dirty = false;
  by_client_id_[std::string_view(entry.session->client_id())] = index;
  counters_.sessions_created.Add();
  counters_.gauges.sessions_offline.Add(1);
  return index;
}

void Router::DestroySession(uint32_t index) {
  SessionEntry& entry = sessions_[index];
  RINGMQ_ASSERT(entry.session.has_value() && entry.connection == nullptr);
  const Levels levels = LevelsOf(*entry.session);  // all of it goes with the session
  counters_.gauges.queued_messages.Add(-levels.queued);
  counters_.gauges.inflight_messages.Add(-levels.inflight);
  counters_.gauges.subscriptions.Add(-levels.subscriptions);
  counters_.gauges.sessions_offline.Add(-1);
  for (const session::Subscription& subscription : entry.session->subscriptions()) {
    shared_.trie.Unsubscribe(
        subscription.filter,
        sub::Subscriber{static_cast<uint16_t>(shard_), index, entry.generation, subscription.qos});
  }
  by_client_id_.erase(std::string_view(entry.session->client_id()));  // before the key's storage
  entry.session.reset();
  ++entry.generation;  // handles still in mailboxes or the trie's readers become stale
  free_sessions_.push_back(index);
}

void Router::Detach(uint32_t index, bool publish_will) {
  SessionEntry& entry = sessions_[index];
  session::Session& session = *entry.session;
  entry.connection = nullptr;
  entry.acl.reset();  // the rules were the connection's (its user name)
  counters_.gauges.sessions_online.Add(-1);
  counters_.gauges.sessions_offline.Add(1);
  if (publish_will) PublishWill(session);
  session.will().reset();
  session.Detach();
}

void Router::OnConnectionClosed(net::Connection& connection) {
  uint32_t index = kNone;
  if (SessionOf(connection, &index) == nullptr) return;
  session_of_tag_[connection.tag()] = kNone;
  // MQTT-3.1.2-8: the will is published when the connection ends without DISCONNECT; a broker
  // that is shutting down closes connections itself and publishes none.
  const bool publish_will = !connection.disconnected_gracefully() &&
                            !shared_.shutting_down.load(std::memory_order_relaxed);
  Detach(index, publish_will);
  if (sessions_[index].session->clean_session()) DestroySession(index);
}

void Router::OnConnectionWritable(net::Connection& connection) {
  uint32_t index = kNone;
  session::Session* session = SessionOf(connection, &index);
  if (session != nullptr && session->has_output()) MarkSessionDirty(index);
}

session::Session* Router::SessionOf(const net::Connection& connection, uint32_t* index) {
  if (connection.tag() >= session_of_tag_.size()) return nullptr;
  const uint32_t found = session_of_tag_[connection.tag()];
  if (found == kNone) return nullptr;
  if (index != nullptr) *index = found;
  return &*sessions_[found].session;
}

void Router::MarkSessionDirty(uint32_t index) {
  SessionEntry& entry = sessions_[index];
  if (entry.dirty) return;
  entry.dirty = true;
  dirty_sessions_.push_back(index);
}

void Router::PublishWill(session::Session& session) {
  if (!session.will()) return;
  const session::Will& will = *session.will();
  counters_.wills_published.Add();
  message::MessageRef message =
      message::MessageRef::Create(will.topic, will.payload, will.qos, will.retain, NextOrigin());
  if (will.retain) Retain(message);
  Route(message);
}

// ---- Packets ---------------------------------------------------------------------------------

void Router::OnPacket(net::Connection& connection, const mqtt::Packet& packet) {
  uint32_t index = kNone;
  session::Session* session = SessionOf(connection, &index);
  RINGMQ_ASSERT(session != nullptr);
  const Levels before = LevelsOf(*session);
  switch (mqtt::TypeOf(packet)) {
    case mqtt::PacketType::kPublish: {
      const auto& publish = std::get<mqtt::Publish>(packet);
      if (metrics::IsSysTopic(publish.topic)) return DropSysPublish(connection, publish);
      OnPublish(connection, publish);
      return;
    }
    case mqtt::PacketType::kPuback:
      if (session->OnPuback(std::get<mqtt::Puback>(packet).packet_id)) MarkSessionDirty(index);
      return AccountLevels(before, *session);
    case mqtt::PacketType::kPubrec:
      if (session->OnPubrec(std::get<mqtt::Pubrec>(packet).packet_id)) MarkSessionDirty(index);
      return;
    case mqtt::PacketType::kPubcomp:
      if (session->OnPubcomp(std::get<mqtt::Pubcomp>(packet).packet_id)) MarkSessionDirty(index);
      return AccountLevels(before, *session);
    case mqtt::PacketType::kPubrel: {
      // MQTT-4.3.3-2: PUBCOMP answers every PUBREL, known id or not.
      const uint16_t packet_id = std::get<mqtt::Pubrel>(packet).packet_id;
      session->EndInboundQos2(packet_id);
      connection.QueuePacket(mqtt::Pubcomp{packet_id}, context_);
      return;
    }
    case mqtt::PacketType::kSubscribe:
      // Only the subscription count: retained messages queued by it are counted on delivery.
      OnSubscribe(connection, index, std::get<mqtt::Subscribe>(packet));
      counters_.gauges.subscriptions.Add(LevelsOf(*session).subscriptions - before.subscriptions);
      return;
    case mqtt::PacketType::kUnsubscribe:
      OnUnsubscribe(connection, index, std::get<mqtt::Unsubscribe>(packet));
      return AccountLevels(before, *session);
    default:
      RINGMQ_ASSERT(false && "the connection handles every other packet type");
  }
}

const auth::ClientAcl& Router::AclOf(SessionEntry& entry) {
  const auth::AuthData* data = shared_.auth.Load();
  RINGMQ_ASSERT(data != nullptr && data->acl.has_value());
  RINGMQ_ASSERT(entry.acl != nullptr);  // made by OnConnect when acl_enabled_
  ConnectionAcl& acl = *entry.acl;
  if (acl.version != data->version) {
    std::optional<std::string_view> user;
    if (acl.user_name) user = *acl.user_name;
    acl.rules = auth::ClientAcl::Compile(*data->acl, user, entry.session->client_id());
    acl.version = data->version;
  }
  return acl.rules;
}

void Router::OnPublish(net::Connection& connection, const mqtt::Publish& publish) {
  uint32_t index = kNone;
  session::Session& session = *SessionOf(connection, &index);
  const auto qos = static_cast<uint8_t>(publish.qos);
  if (qos == 0) counters_.publish_received_qos0.Add();
  if (qos == 1) counters_.publish_received_qos1.Add();
  if (qos == 2) {
    counters_.publish_received_qos2.Add();
    if (!session.BeginInboundQos2(publish.packet_id)) {
      // MQTT-4.3.3-2: a repeated PUBLISH of a pending id is acknowledged, not delivered again.
      counters_.publish_duplicates.Add();
      connection.QueuePacket(mqtt::Pubrec{publish.packet_id}, context_);
      return;
    }
  }
  if (acl_enabled_ && !AclOf(sessions_[index]).CanPublish(publish.topic)) {
    // Acknowledged as if delivered (as Mosquitto does for MQTT 3.1.1) so that the client does
    // not resend it forever; a QoS 2 id stays pending until PUBREL as usual.
    counters_.publish_denied.Add();
    if (qos == 1) connection.QueuePacket(mqtt::Puback{publish.packet_id}, context_);
    if (qos == 2) connection.QueuePacket(mqtt::Pubrec{publish.packet_id}, context_);
    return;
  }
  message::MessageRef message = message::MessageRef::Create(publish.topic, AsBytes(publish.payload),
                                                            qos, publish.retain, NextOrigin());
  if (publish.retain) Retain(message);
  Route(message);  // right after Create: other shards get our messages in sequence order
  if (qos == 1) connection.QueuePacket(mqtt::Puback{publish.packet_id}, context_);
  if (qos == 2) connection.QueuePacket(mqtt::Pubrec{publish.packet_id}, context_);
}

void Router::DropSysPublish(net::Connection& connection, const mqtt::Publish& publish) {
  const auto qos = static_cast<uint8_t>(publish.qos);
  if (qos == 0) counters_.publish_received_qos0.Add();
  if (qos == 1) counters_.publish_received_qos1.Add();
  if (qos == 2) counters_.publish_received_qos2.Add();
  counters_.publish_dropped_sys_topic.Add();
  RINGMQ_LOG_DEBUG("client %s: PUBLISH to %.*s dropped: $SYS is the broker's",
                   connection.client_id().c_str(), static_cast<int>(publish.topic.size()),
                   publish.topic.data());
  // Acknowledged like any PUBLISH so the client's QoS flow completes; PUBREL gets PUBCOMP.
  if (qos == 1) connection.QueuePacket(mqtt::Puback{publish.packet_id}, context_);
  if (qos == 2) connection.QueuePacket(mqtt::Pubrec{publish.packet_id}, context_);
}

Router::Levels Router::LevelsOf(session::Session& session) {
  return Levels{.queued = session.queued_messages(),
                .inflight = session.inflight(),
                .subscriptions = static_cast<int64_t>(session.subscriptions().size())};
}

void Router::AccountLevels(const Levels& before, session::Session& session) {
  const Levels after = LevelsOf(session);
  if (after.queued != before.queued) {
    counters_.gauges.queued_messages.Add(after.queued - before.queued);
  }
  if (after.inflight != before.inflight) {
    counters_.gauges.inflight_messages.Add(after.inflight - before.inflight);
  }
  if (after.subscriptions != before.subscriptions) {
    counters_.gauges.subscriptions.Add(after.subscriptions - before.subscriptions);
  }
}

void Router::PublishSys(uint64_t now_ms) {
  if (sys_topics_ == nullptr) sys_topics_ = std::make_unique<metrics::SysTopics>();
  metrics::SysSample sample;
  for (const metrics::ShardCounters* counters : shared_.shard_counters) {
    if (counters != nullptr) counters->AddTo(sample.total);
  }
  sample.clients_connected = shared_.connected_clients.load(std::memory_order_relaxed);
  sample.retained_messages = shared_.retained.size();
  sample.uptime_seconds =
      now_ms > shared_.started_monotonic_ms ? (now_ms - shared_.started_monotonic_ms) / 1000 : 0;
  sample.version = RINGMQ_VERSION;
  for (const auto& [topic, payload] : sys_topics_->Changed(sample)) {
    const std::vector<uint8_t> bytes(payload.begin(), payload.end());
    message::MessageRef message =
        message::MessageRef::Create(topic, bytes, /*qos=*/0, /*retain=*/true, NextOrigin());
    Retain(message);
    Route(message, /*from_client=*/false);
    counters_.sys_messages_published.Add();
  }
}

void Router::OnSubscribe(net::Connection& connection, uint32_t index,
                         const mqtt::Subscribe& subscribe) {
  SessionEntry& entry = sessions_[index];
  session::Session& session = *entry.session;
  std::vector<uint8_t> codes;
  codes.reserve(subscribe.topics.size());
  for (const mqtt::TopicRequest request : subscribe.topics) {
    if (acl_enabled_ && !AclOf(entry).CanSubscribe(request.filter)) {
      counters_.subscribe_denied.Add();
      codes.push_back(0x80);  // MQTT-3.9.3: failure, for this filter only
      continue;
    }
    const auto granted = static_cast<uint8_t>(request.qos);  // every QoS is supported
    const sub::Subscriber handle{static_cast<uint16_t>(shard_), index, entry.generation, granted};
    shared_.trie.Subscribe(request.filter, handle);
    auto& subscriptions = session.subscriptions();
    auto existing = std::find_if(subscriptions.begin(), subscriptions.end(),
                                 [&](const auto& s) { return s.filter == request.filter; });
    if (existing != subscriptions.end()) {
      existing->qos = granted;  // MQTT-3.8.4-3: replaces the existing subscription
    } else {
      subscriptions.push_back({std::string(request.filter), granted});
      counters_.subscriptions_added.Add();
    }
    codes.push_back(granted);
    // MQTT-3.3.1-6: matching retained messages are sent, with RETAIN set (MQTT-3.3.1-8).
    shared_.retained.ForEachMatch(request.filter, [&](message::Message* retained) {
      if (DeliverLocal(index, entry.generation, MinQos(granted, retained->qos()), retained, true)) {
        RecordRetainedDelivery(index, entry.generation, *retained);
      }
    });
  }
  // The SUBACK goes before the retained messages: they are encoded later, in Flush.
  connection.QueuePacket(mqtt::Suback{subscribe.packet_id, codes}, context_);
}

void Router::OnUnsubscribe(net::Connection& connection, uint32_t index,
                           const mqtt::Unsubscribe& unsubscribe) {
  SessionEntry& entry = sessions_[index];
  auto& subscriptions = entry.session->subscriptions();
  for (const mqtt::TopicRequest request : unsubscribe.topics) {
    auto existing = std::find_if(subscriptions.begin(), subscriptions.end(),
                                 [&](const auto& s) { return s.filter == request.filter; });
    if (existing == subscriptions.end()) continue;
    shared_.trie.Unsubscribe(request.filter, sub::Subscriber{static_cast<uint16_t>(shard_), index,
                                                             entry.generation, existing->qos});
    *existing = std::move(subscriptions.back());
    subscriptions.pop_back();
    counters_.subscriptions_removed.Add();
  }
  // MQTT-3.10.4-4/5: UNSUBACK even when nothing matched.
  connection.QueuePacket(mqtt::Unsuback{unsubscribe.packet_id}, context_);
}

// ---- Routing ---------------------------------------------------------------------------------

void Router::Retain(const message::MessageRef& message) {
  if (shared_.retained.Set(message::MessageRef::Share(message.get())) ==
      retain::SetResult::kRefused) {
    counters_.retained_refused.Add();  // still routed to current subscribers
  }
}

void Router::Route(const message::MessageRef& message, bool from_client) {
  shared_.trie.Match(message->topic(), match_);
  if (match_.empty()) {
    if (from_client) counters_.publish_dropped_no_subscribers.Add();
    return;
  }
  for (const sub::ShardSubscribers& group : match_.shards()) {
    if (group.shard != shard_) {
      SendRemote(group.shard, message.get(), group.subscribers);
      continue;
    }
    for (const sub::Subscriber& subscriber : group.subscribers) {
      DeliverLocal(subscriber.session, subscriber.generation,
                   MinQos(subscriber.qos, message->qos()), message.get(), false);
    }
  }
}

bool Router::DeliverLocal(uint32_t index, uint32_t generation, uint8_t qos,
                          message::Message* message, bool retain) {
  if (index >= sessions_.size()) return false;
  SessionEntry& entry = sessions_[index];
  if (entry.generation != generation || !entry.session) return false;  // session ended meanwhile
  switch (entry.session->Enqueue(message::MessageRef::Share(message), qos, retain)) {
    case session::EnqueueResult::kQueued:
      counters_.gauges.queued_messages.Add(1);
      if (entry.connection != nullptr) MarkSessionDirty(index);
      return true;
    case session::EnqueueResult::kDroppedQueueFull:
      counters_.dropped_queue_full.Add();
      // Disconnected in Flush, not here: the caller may be iterating this session's state.
      if (queue_full_disconnects_ && entry.connection != nullptr) slow_consumers_.push_back(index);
      return false;
    case session::EnqueueResult::kDroppedBytesCap:
      counters_.dropped_bytes_cap.Add();
      return false;
    case session::EnqueueResult::kDroppedOffline:
      counters_.dropped_offline_qos0.Add();
      return false;
  }
  return false;
}

void Router::RecordRetainedDelivery(uint32_t index, uint32_t generation,
                                    const message::Message& retained) {
  if (retained_fence_.Record(index, generation, retained) == RetainedFence::RecordResult::kFull) {
    counters_.retained_fence_full.Add();
  }
}

void Router::SendRemote(uint32_t destination, message::Message* message,
                        std::span<const sub::Subscriber> subscribers) {
  Mailbox& mailbox = shared_.mailboxes.mailbox(shard_, destination);
  const size_t per_record = mailbox.max_record_slots() - 1;
  for (size_t start = 0; start < subscribers.size(); start += per_record) {
    const size_t count = std::min(per_record, subscribers.size() - start);
    record_.clear();
    record_.push_back(
        Slot{kMessage, static_cast<uint32_t>(count), reinterpret_cast<uint64_t>(message)});
    for (size_t i = start; i < start + count; ++i) {
      const sub::Subscriber& subscriber = subscribers[i];
      const uint8_t qos = MinQos(subscriber.qos, message->qos());
      record_.push_back(
          Slot{kHandle, subscriber.session, (uint64_t{subscriber.generation} << 8) | qos});
    }
    message->AddRef();  // owned by the record until the destination drains it
    Push(destination, record_);
  }
}

void Router::Push(uint32_t destination, std::span<const Slot> record) {
  auto& overflow = overflow_[destination];
  if (overflow.empty()) {
    const PushResult result = shared_.mailboxes.mailbox(shard_, destination).TryPush(record);
    if (result.pushed) {
      if (result.was_empty) doorbell_due_[destination] = true;
      return;
    }
  }
  // Fence records are never dropped: at most one request and one reply per shard pair are
  // pending (RetainedFence keeps one request outstanding per origin), and a lost one would
  // keep the requester's entries until the bound.
  const bool fence = record[0].kind == kFenceRequest || record[0].kind == kFenceReply;
  if (overflow.size() >= kOverflowRecordsMax && !fence) {
    counters_.mailbox_overflow.Add();
    if (record[0].kind == kMessage) reinterpret_cast<message::Message*>(record[0].value)->Release();
    if (record[0].kind == kHandoff) {
      auto* handoff = reinterpret_cast<HandoffRecord*>(record[0].value);
      close(handoff->fd);  // cannot be delivered: the client sees its connection close
      delete handoff;
    }
    return;
  }
  counters_.mailbox_full.Add();
  overflow.emplace_back(record.begin(), record.end());  // slow path: the mailbox is full
}

void Router::Handoff(const net::Connection& connection, int fd, std::vector<uint8_t> bytes) {
  const uint32_t home = HomeShard(connection.client_id());
  RINGMQ_ASSERT(home != shard_);
  auto* handoff = new HandoffRecord{fd, std::move(bytes)};
  counters_.connections_handed_off.Add();
  const Slot record[] = {Slot{kHandoff, 0, reinterpret_cast<uint64_t>(handoff)}};
  Push(home, record);
}

bool Router::DrainMailboxes() {
  bool more = false;
  for (uint32_t source = 0; source < shard_count_; ++source) {
    if (source == shard_) continue;
    const DrainResult result =
        shared_.mailboxes.mailbox(source, shard_)
            .Drain([this](std::span<const Slot> record) { OnRecord(record); }, kDrainBudgetRecords);
    more = more || result.more;
  }
  return more;
}

void Router::OnRecord(std::span<const Slot> record) {
  RINGMQ_ASSERT(!record.empty());
  switch (record[0].kind) {
    case kHandoff: {
      std::unique_ptr<HandoffRecord> handoff(reinterpret_cast<HandoffRecord*>(record[0].value));
      services_.AdoptConnection(handoff->fd, std::move(handoff->bytes));
      return;
    }
    case kFenceRequest: {
      // Behind every record we pushed to the requester before: see retained_fence.h.
      const uint32_t requester = record[0].aux;
      RINGMQ_ASSERT(record.size() == 1 && requester < shard_count_ && requester != shard_);
      const Slot reply[] = {Slot{kFenceReply, shard_, last_sequence_}};
      Push(requester, reply);
      return;
    }
    case kFenceReply:
      RINGMQ_ASSERT(record.size() == 1);
      retained_fence_.OnReply(record[0].aux, record[0].value);
      return;
    default:
      break;
  }
  RINGMQ_ASSERT(record[0].kind == kMessage && record.size() == record[0].aux + size_t{1});
  auto* message = reinterpret_cast<message::Message*>(record[0].value);
  retained_fence_.Arrived(*message);
  const RetainedFence::Probe probe = retained_fence_.ProbeFor(*message);
  for (const Slot& handle : record.subspan(1)) {
    const auto generation = static_cast<uint32_t>(handle.value >> 8);
    if (probe.active() && retained_fence_.Superseded(probe, handle.aux, generation)) {
      counters_.retained_live_superseded.Add();  // the session got it, or newer, as retained
      continue;
    }
    DeliverLocal(handle.aux, generation, static_cast<uint8_t>(handle.value & 0xff), message, false);
  }
  message->Release();  // the record's reference
}

void Router::Flush() {
  for (uint32_t index : slow_consumers_) {
    SessionEntry& entry = sessions_[index];
    if (!entry.session || entry.connection == nullptr ||
        entry.connection->state() != net::Connection::State::kOpen) {
      continue;  // already gone or closing (several messages may have found its queue full)
    }
    counters_.slow_consumer_disconnects.Add();
    RINGMQ_LOG_DEBUG("client %s disconnected: its queue is full",
                     entry.session->client_id().c_str());
    net::Connection& connection = *entry.connection;
    connection.Close(services_.now_ms());  // queues it in closing_ through OnClosing
    services_.ConnectionDirty(connection.tag());
  }
  slow_consumers_.clear();
  for (net::Connection* connection : closing_) OnConnectionClosed(*connection);
  closing_.clear();
  // After this iteration's SUBSCRIBEs: their retained deliveries from other shards get fenced.
  retained_fence_.TakeDueRequests([this](uint32_t origin) {
    const Slot request[] = {Slot{kFenceRequest, shard_, 0}};
    Push(origin, request);
  });
  for (uint32_t destination = 0; destination < shard_count_; ++destination) {
    auto& overflow = overflow_[destination];
    while (!overflow.empty()) {
      const PushResult result =
          shared_.mailboxes.mailbox(shard_, destination).TryPush(overflow.front());
      if (!result.pushed) break;
      if (result.was_empty) doorbell_due_[destination] = true;
      overflow.pop_front();
    }
  }
  for (size_t i = 0; i < dirty_sessions_.size(); ++i) {
    SessionEntry& entry = sessions_[dirty_sessions_[i]];
    entry.dirty = false;
    if (!entry.session || entry.connection == nullptr) continue;
    net::Connection& connection = *entry.connection;
    // Deliveries may fill half of the connection's output cap (see ConnectionContext).
    const size_t budget = context_.max_output_bytes / 2;
    const size_t pending = connection.pending_output_bytes();
    if (pending >= budget) continue;  // OnConnectionWritable marks it again
    std::vector<uint8_t>& out = connection.output_buffer();
    const Levels before = LevelsOf(*entry.session);
    session::WriteCounts sent;
    const size_t written = entry.session->WriteOutput(out, out.size() + (budget - pending), &sent);
    if (written > 0) {
      AccountLevels(before, *entry.session);
      if (sent.publishes_by_qos[0] != 0) counters_.publish_sent_qos0.Add(sent.publishes_by_qos[0]);
      if (sent.publishes_by_qos[1] != 0) counters_.publish_sent_qos1.Add(sent.publishes_by_qos[1]);
      if (sent.publishes_by_qos[2] != 0) counters_.publish_sent_qos2.Add(sent.publishes_by_qos[2]);
      counters_.bytes_delivered.Add(written);
      services_.ConnectionDirty(connection.tag());
    }
  }
  dirty_sessions_.clear();
}

void Router::RingDoorbells() {
  for (uint32_t destination = 0; destination < shard_count_; ++destination) {
    if (!doorbell_due_[destination]) continue;
    doorbell_due_[destination] = false;
    services_.RingDoorbell(destination);
  }
}

}  // namespace ringmq::shard
