#include "shard/router.h"

#include <bit>
#include <functional>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/log.h"
#include "connect/client_id.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"
#include "shard/cluster_owner.h"
#include "shard/router_cluster.h"
#include "shard/router_cluster_acks.h"
#include "shard/router_persist.h"

namespace ringmq::shard {
namespace {

// Records drained per source mailbox per loop iteration: bounds the time one iteration spends
// on deliveries so sends, receives and timers keep their turn.
constexpr size_t kDrainBudgetRecords = 4096;
// max_memory: a session holds a backlog (and is shed under memory pressure) when more bytes wait
// for it than one loop iteration hands to a connection (ConnectionContext::max_output_bytes / 2
// with the default cap): a subscriber that keeps up drains below this every iteration.
constexpr uint64_t kBacklogBytes = 64 * 1024;

// The monotonic deadline of a 5.0 PUBLISH or will property block's Message Expiry Interval
// (5.0:3.3.2.3.3), lowered to `max_s` if that is not 0 (max_message_expiry), or 0 when it has
// none (or the block is a 3.1.1 message's empty one).
uint64_t ExpiryDeadline(const mqtt::Properties& properties, uint64_t now_ms, uint32_t max_s) {
  if (properties.empty()) return 0;
  const std::optional<mqtt::Property> expiry =
      properties.Find(mqtt::PropertyId::kMessageExpiryInterval);
  if (!expiry) return 0;
  const uint32_t interval_s = max_s != 0 && expiry->integer > max_s ? max_s : expiry->integer;
  return now_ms + uint64_t{interval_s} * 1000;
}

// The terms of a connection's CONNECT that bound deliveries to it (5.0 properties).
session::ClientTerms TermsOf(const net::Connection& connection, const mqtt::Connect& connect) {
  session::ClientTerms terms{.level = connection.level()};
  if (terms.level != mqtt::ProtocolLevel::kMqtt5 || connect.properties.empty()) return terms;
  const mqtt::PropertyValues values = connect.properties.Values();
  if (values.receive_maximum) terms.receive_maximum = *values.receive_maximum;
  if (values.maximum_packet_size) terms.maximum_packet_size = *values.maximum_packet_size;
  return terms;
}

}  // namespace

Router::Router(uint32_t shard, const Config& config, SharedState& shared,
               metrics::ShardCounters& counters, net::ConnectionContext& context,
               ShardServices& services)
    : shard_(shard),
      shard_count_(shared.shard_count),
      shared_(shared),
      counters_(counters),
      context_(context),
      services_(services),
      outbox_(shard, shared, config.max_mailbox_overflow_bytes, counters),
      pending_mail_(shared.mailboxes.signal_words(), 0),
      retained_fence_(shard, shared.shard_count) {
  limits_.max_inflight = config.max_inflight;
  limits_.max_queued_messages = config.max_queued_messages;
  limits_.max_queued_bytes = config.max_queued_bytes;
  limits_.max_subscriptions = config.max_subscriptions_per_session;
  limits_.max_inbound_qos2 = config.max_inbound_qos2_pending;
  max_filters_per_iteration_ = config.max_filters_per_iteration;
  queue_full_disconnects_ = config.queue_full_policy == QueueFullPolicy::kDisconnect;
  acl_enabled_ = !config.acl_file.empty();
  memory_budget_ = config.max_memory != 0;
  persistent_session_expiry_s_ =
      config.persistent_session_expiry_s == 0 ? kExpiryNever : config.persistent_session_expiry_s;
  max_session_expiry_s_ = config.max_session_expiry_s;
  switch (config.shared_subscription_strategy) {
    case SharedSubscriptionStrategy::kRoundRobin:
      share_strategy_ = sub::ShareStrategy::kRoundRobin;
      break;
    case SharedSubscriptionStrategy::kRandom:
      share_strategy_ = sub::ShareStrategy::kRandom;
      break;
    case SharedSubscriptionStrategy::kHash:
      share_strategy_ = sub::ShareStrategy::kHash;
      break;
  }
  max_offline_sessions_ = config.max_offline_sessions;
  max_message_expiry_s_ = config.max_message_expiry_s;
  max_disk_bytes_ = config.max_disk_bytes;
  session_wait_ms_ = config.cluster_session_wait_ms;
}

Router::~Router() {
  // Records other shards addressed to this one after it stopped draining still hold message
  // references and hand-off sockets (the outbox drops those it still holds itself).
  for (uint32_t source = 0; source < shard_count_; ++source) {
    if (source == shard_) continue;
    Mailbox& mailbox = shared_.mailboxes.mailbox(source, shard_);
    const auto drop = [this](std::span<const Slot> record) { outbox_.DropRecord(record); };
    while (mailbox.Drain(drop, kDrainBudgetRecords).more) {
    }
  }
}

uint32_t Router::HomeShard(std::string_view client_id) const {
  return connect::HomeShard(client_id, shard_count_);
}

// ---- Connections and sessions ----------------------------------------------------------------

net::PacketSink::ConnectAction Router::OnConnect(net::Connection& connection,
                                                 const mqtt::Connect& connect) {
  // Every id, a server-assigned one too, is served on its home shard, so that one session map
  // holds it and a second connection with the same id takes over (MQTT-3.1.4-2). Assigned ids
  // are drawn with this shard as their home (connect/client_id.h), so they stay here.
  if (HomeShard(connection.client_id()) != shard_) return ConnectAction::kHandoff;
  const std::string_view client_id = connection.client_id();
  const bool mqtt5 = connection.level() == mqtt::ProtocolLevel::kMqtt5;
  // 5.0: the client's Session Expiry Interval (absent: 0, the session ends with the
  // connection, 5.0:3.1.2.11.2); 3.1 / 3.1.1: clean session 1 is 0, clean session 0 is
  // persistent_session_expiry. Either capped by max_session_expiry.
  const uint32_t requested_expiry_s =
      mqtt5 ? connect.properties.Values().session_expiry_interval_s.value_or(0)
            : (connect.clean_session ? 0 : persistent_session_expiry_s_);
  const uint32_t expiry_s = CapExpiry(requested_expiry_s);
  BindTerms terms = TermsOfConnect(connection, connect, expiry_s, requested_expiry_s);
  uint32_t index = sessions_.Find(client_id);
  if (index != kNone) {
    index = ResumeOrEnd(index, connection, connect.clean_session);
  } else if (cluster_sessions_ != nullptr && HoldConnack(connection, terms)) {
    // Another node may hold the session: the CONNACK waits for its state (or the record
    // saying there is none), bounded (router_cluster_session.cc).
    return ConnectAction::kServe;
  }
  const bool session_present = index != kNone;  // MQTT-3.2.2-2, 5.0:MQTT-3.2.2-3
  if (index == kNone) index = CreateSession(connection.shared_client_id(), connect.clean_session);
  BindConnect(connection, index, session_present, std::move(terms));
  ClaimClientId(index, connect);  // the cluster: other nodes let go of this id
  if (!session_present && cluster_sessions_ != nullptr) WriteSessionRecord(index);
  MarkSessionDirty(index);  // in-flight messages of a resumed session are sent again
  return ConnectAction::kServe;
}

BindTerms Router::TermsOfConnect(const net::Connection& connection, const mqtt::Connect& connect,
                                 uint32_t expiry_s, uint32_t requested_expiry_s) const {
  BindTerms terms{.clean_session = connect.clean_session,
                  .client = TermsOf(connection, connect),
                  .will = nullptr,
                  .user_name = std::nullopt,
                  .expiry_s = expiry_s,
                  .requested_expiry_s = requested_expiry_s};
  if (connect.will) {
    const mqtt::Will& will = *connect.will;
    terms.will = std::make_unique<session::Will>(session::Will{
        .topic = std::string(will.topic),
        .payload = std::vector<uint8_t>(will.payload.begin(), will.payload.end()),
        .properties =
            std::vector<uint8_t>(will.properties.raw().begin(), will.properties.raw().end()),
        .qos = static_cast<uint8_t>(will.qos),
        .retain = will.retain,
        .delay_s = will.properties.Values().will_delay_interval_s.value_or(0)});
  }
  if (acl_enabled_ && connect.user_name) terms.user_name.emplace(*connect.user_name);
  return terms;
}

void Router::BindConnect(net::Connection& connection, uint32_t index, bool session_present,
                         BindTerms terms) {
  const bool mqtt5 = connection.level() == mqtt::ProtocolLevel::kMqtt5;
  expiry_s_[index] = terms.expiry_s;
  SessionEntry& entry = sessions_[index];
  session::Session& session = *entry.session;
  session.Attach(terms.clean_session, terms.client);
  entry.bridge = connection.internal();  // a client taking the id over clears it
  if (persist_) PersistSession(index);
  counters_.gauges.sessions_online.Add(1);
  counters_.gauges.sessions_offline.Add(-1);
  RINGMQ_ASSERT(session.will() == nullptr);
  session.will() = std::move(terms.will);
  entry.connection = &connection;
  if (acl_enabled_) {
    // The ACL belongs to this connection (its user name), compiled at the first check. A resumed
    // session's subscriptions were classified for its last connection's user name (and the
    // current rules: a reload classifies offline sessions too), so only another name needs a
    // new classification.
    const bool same_user = entry.acl != nullptr && entry.acl->user_name == terms.user_name;
    entry.acl = std::make_unique<ConnectionAcl>();
    entry.acl->user_name = std::move(terms.user_name);
    if (session_present && !same_user) ClassifySubscriptions(index);
  }
  if (session_present) UpdateSharedPresence(index);  // its group memberships are online again
  sessions_.BindTag(connection.tag(), index);
  // MQTT 3.1 has no session-present flag: the byte is reserved there. 5.0:3.2.2.3.2: the
  // interval is sent back when it is not the one the client asked for.
  net::Connection::ConnackExtras extras;
  if (mqtt5 && terms.expiry_s != terms.requested_expiry_s) extras.session_expiry_s = terms.expiry_s;
  connection.SendConnack(session_present && connection.level() != mqtt::ProtocolLevel::kMqtt31,
                         extras);
}

uint32_t Router::ResumeOrEnd(uint32_t index, const net::Connection& connection, bool clean_start) {
  LeaveOffline(index);
  SessionEntry& entry = sessions_[index];
  if (entry.connection != nullptr) {
    // MQTT-3.1.4-2: the new connection takes over; the old one is closed and, unless it sent
    // DISCONNECT (it may still be closing after one), its will falls due. A DISCONNECTed
    // connection that is still closing is no takeover.
    net::Connection* old = entry.connection;
    const bool graceful = old->disconnected_gracefully();
    if (!graceful) {
      counters_.session_takeovers.Add();
      RINGMQ_LOG_DEBUG("client %s taken over by a new connection",
                       connection.shared_client_id().c_str());
    }
    sessions_.BindTag(old->tag(), kNone);
    ApplyDisconnectExpiry(index, *old);
    Detach(index, /*will_due=*/!graceful);
    old->Disconnect(mqtt::ReasonCode::kSessionTakenOver, services_.now_ms(), context_);
    services_.ConnectionDirty(old->tag());
  }
  // MQTT-3.1.2-6 / 5.0:MQTT-3.1.2-4: clean session (Clean Start) 1 discards any previous
  // session. One whose expiry interval is 0 ended with its connection (5.0:MQTT-3.1.2-23), so
  // it is not resumed either. Its delayed will, if any, is published as it ends.
  if (clean_start || expiry_s_[index] == 0) {
    DestroySession(index);
    return kNone;
  }
  // 5.0:MQTT-3.1.3-9: the session resumed before its will's delay ran out.
  if (entry.session->will()) {
    counters_.wills_cancelled.Add();
    entry.session->will().reset();
  }
  return index;
}

uint32_t Router::CapExpiry(uint32_t requested_s) const {
  return max_session_expiry_s_ != 0 && requested_s > max_session_expiry_s_ ? max_session_expiry_s_
                                                                           : requested_s;
}

uint64_t Router::SessionEndMs(uint32_t index, uint64_t since_ms) const {
  const uint32_t expiry_s = expiry_s_[index];
  return expiry_s == kExpiryNever ? session::OfflineList::kNever
                                  : since_ms + uint64_t{expiry_s} * 1000;
}

void Router::ApplyDisconnectExpiry(uint32_t index, const net::Connection& connection) {
  const std::optional<uint32_t> requested_s = connection.disconnect_session_expiry_s();
  // 5.0:3.14.2.2.2: a session that was to end with its connection cannot be given a lifetime
  // at DISCONNECT (a Protocol Error, which the connection answers); it still ends.
  if (!requested_s || expiry_s_[index] == 0) return;
  const uint32_t before = expiry_s_[index];
  expiry_s_[index] = CapExpiry(*requested_s);
  if (persist_ && expiry_s_[index] != before) PersistSession(index);
}

uint32_t Router::CreateSession(const SharedString& client_id, bool clean_session) {
  const uint32_t index = sessions_.Create(client_id, clean_session, limits_);
  if (index >= expiry_s_.size()) expiry_s_.resize(size_t{index} + 1, 0);
  counters_.sessions_created.Add();
  counters_.gauges.sessions_offline.Add(1);
  return index;
}

void Router::DestroySession(uint32_t index) {
  SessionEntry& entry = sessions_[index];
  RINGMQ_ASSERT(entry.session.has_value() && entry.connection == nullptr);
  // Its record in the cluster's bucket goes with it (router_cluster_session.cc).
  if (cluster_sessions_ != nullptr) DeleteSessionRecord(index, /*moving=*/false);
  LeaveOffline(index);
  const Levels levels = LevelsOf(*entry.session);  // all of it goes with the session
  counters_.gauges.queued_messages.Add(-levels.queued);
  counters_.gauges.inflight_messages.Add(-levels.inflight);
  counters_.gauges.subscriptions.Add(-levels.subscriptions);
  counters_.gauges.sessions_offline.Add(-1);
  if (persist_) PersistEnd(index);
  // 5.0:3.1.3.2.2: a will still delayed is published when the session ends.
  PublishPendingWill(index);
  for (const auto& [filter, options] : entry.session->subscriptions()) {
    TrieUnsubscribe(filter, HandleOf(index, options.qos, false));
    ClusterRelease(filter);
  }
  // The QoS 1/2 messages its groups gave it and its client did not acknowledge go to the
  // groups' other members (it is out of the trie now, so it is not chosen again), also when it
  // left its groups (UNSUBSCRIBE) before it ended. A broker that is stopping drops every session
  // anyway.
  if (!shared_.shutting_down.load(std::memory_order_relaxed)) {
    const sub::Subscriber self = HandleOf(index, 0, false);
    entry.session->TakeSharedMessages(
        [&](message::MessageRef message, uint8_t /*qos*/) { RerouteShared(message.get(), self); });
  }
  sessions_.Destroy(index);  // handles still in mailboxes or the trie's readers become stale
}

void Router::Detach(uint32_t index, bool will_due) {
  SessionEntry& entry = sessions_[index];
  session::Session& session = *entry.session;
  AbandonJob(index);
  entry.connection = nullptr;
  if (entry.acl != nullptr) {
    // The user name stays: deliveries to the offline session through acl_check subscriptions
    // are checked against it (as Mosquitto does). The compiled rules go until the next check.
    entry.acl->rules = auth::ClientAcl();
    entry.acl->version = 0;
  }
  counters_.gauges.sessions_online.Add(-1);
  counters_.gauges.sessions_offline.Add(1);
  if (will_due && session.will() != nullptr && WillDelayS(index) != 0) {
    counters_.wills_delayed.Add();  // published by ExpireOfflineSessions or at session end
  } else {
    if (will_due) PublishWill(index);
    session.will().reset();
  }
  session.Detach();
  // A session with expiry interval 0 ends next; one with an interval stays, offline, in its
  // groups (at 5.0 whatever its Clean Start, 5.0:MQTT-3.1.2-23; the callers applied a
  // DISCONNECT's interval already).
  if (expiry_s_[index] != 0) UpdateSharedPresence(index);
}

uint32_t Router::WillDelayS(uint32_t index) {
  const session::Will& will = *sessions_[index].session->will();
  // 5.0:3.1.3.2.2: the will waits for the delay or the end of the session, whichever is first.
  return will.delay_s < expiry_s_[index] ? will.delay_s : expiry_s_[index];
}

void Router::PublishPendingWill(uint32_t index) {
  session::Session& session = *sessions_[index].session;
  if (session.will() == nullptr) return;
  // A broker that is shutting down publishes no will (see OnConnectionClosed).
  if (!shared_.shutting_down.load(std::memory_order_relaxed)) PublishWill(index);
  session.will().reset();
}

void Router::OnConnectionClosed(net::Connection& connection) {
  // A CONNECT whose CONNACK waited for another node (router_cluster_session.cc).
  if (cluster_sessions_ != nullptr && !cluster_sessions_->empty()) ForgetSessionWait(connection);
  uint32_t index = kNone;
  if (cluster_acks_ != nullptr) cluster_acks_->Forget(connection.tag());
  if (SessionOf(connection, &index) == nullptr) return;
  sessions_.BindTag(connection.tag(), kNone);
  ApplyDisconnectExpiry(index, connection);
  // MQTT-3.1.2-8: the will falls due when the connection ends without DISCONNECT (at 5.0, or
  // with DISCONNECT 0x04, which disconnected_gracefully() leaves false); a broker that is
  // shutting down closes connections itself and publishes none.
  const bool will_due = !connection.disconnected_gracefully() &&
                        !shared_.shutting_down.load(std::memory_order_relaxed);
  Detach(index, will_due);
  // 5.0:MQTT-3.1.2-23: only a session with a non-zero expiry interval outlives its connection.
  if (expiry_s_[index] == 0) {
    DestroySession(index);
  } else {
    if (persist_) PersistOffline(index);
    GoOffline(index);
  }
}

void Router::GoOffline(uint32_t index, uint64_t now_ms) {
  RINGMQ_ASSERT(sessions_[index].connection == nullptr);
  // Due at its end, or earlier when its will is delayed (Detach kept it): WillDelayS is at most
  // the expiry interval, so the will is always published first.
  uint64_t due_ms = SessionEndMs(index, now_ms);
  if (sessions_[index].session->will() != nullptr) {
    due_ms = now_ms + uint64_t{WillDelayS(index)} * 1000;
  }
  offline_.PushBack(index, now_ms, due_ms);
  const uint32_t offline = shared_.offline_sessions.fetch_add(1, std::memory_order_relaxed) + 1;
  // A broker that is stopping drops every session anyway: no eviction to count.
  if (offline <= max_offline_sessions_ || shared_.shutting_down.load(std::memory_order_relaxed)) {
    return;
  }
  counters_.sessions_evicted.Add();
  EndOfflineSession(offline_.oldest(), "evicted: max_offline_sessions reached");
}

void Router::LeaveOffline(uint32_t index) {
  if (!offline_.Remove(index)) return;
  const uint32_t before = shared_.offline_sessions.fetch_sub(1, std::memory_order_relaxed);
  RINGMQ_ASSERT(before > 0);
}

void Router::ExpireOfflineSessions() {
  const uint64_t now_ms = services_.now_ms();
  for (uint32_t done = 0; done < kExpiriesPerTick; ++done) {
    // Due means the time has passed: a session lives offline for its whole interval.
    const uint32_t index = offline_.next_due();
    if (index == kNone || offline_.due_ms(index) >= now_ms) return;
    session::Session& session = *sessions_[index].session;
    const uint64_t end_ms = SessionEndMs(index, offline_.since_ms(index));
    if (end_ms >= now_ms) {
      // The will's delay ran out before the session's expiry (5.0:3.1.3.2.2).
      RINGMQ_ASSERT(session.will() != nullptr);
      PublishPendingWill(index);
      offline_.SetDue(index, end_ms);
      continue;
    }
    counters_.sessions_expired.Add();
    EndOfflineSession(index, "expired: its session expiry interval ran out");
  }
}

void Router::EndOfflineSession(uint32_t index, const char* why) {
  RINGMQ_ASSERT(offline_.Contains(index));
  // Logged after the session is gone, so a reader of the log sees the gauges updated.
  LogLevel level;
  const bool log = context_.event_log.Admit(services_.now_ms(), &level);
  std::string client_id;
  if (log) {
    const std::string_view id = sessions_[index].session->client_id();
    client_id = absl::CHexEscape(absl::string_view(id.data(), id.size()));  // no forged lines
  }
  DestroySession(index);
  if (log) LogLine(level, "session of client %s %s", client_id.c_str(), why);
}

void Router::OnConnectionWritable(net::Connection& connection) {
  uint32_t index = kNone;
  session::Session* session = SessionOf(connection, &index);
  if (session != nullptr && session->has_output()) MarkSessionDirty(index);
}

session::Session* Router::SessionOf(const net::Connection& connection, uint32_t* index) {
  const uint32_t found = sessions_.IndexOfTag(connection.tag());
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

void Router::PublishWill(uint32_t index) {
  SessionEntry& entry = sessions_[index];
  session::Session& session = *entry.session;
  if (!session.will()) return;
  const session::Will& will = *session.will();
  counters_.wills_published.Add();
  // The will property block goes with the message as it came (EncodePublishParts5 drops Will
  // Delay Interval); its Message Expiry Interval counts from now.
  const mqtt::Properties properties(will.properties);
  message::MessageRef message = message::MessageRef::Create(
      will.topic, will.payload, will.qos, will.retain, NextOrigin(index, entry.generation),
      message::Mqtt5Fields{.properties = will.properties,
                           .expiry_deadline_ms = ExpiryDeadline(properties, services_.now_ms(),
                                                                max_message_expiry_s_)});
  if (will.retain) Retain(message);
  Route(message, /*from_client=*/true,
        share_strategy_ == sub::ShareStrategy::kHash ? PublisherKey(session.client_id()) : 0);
  ForwardToCluster(*message);
  if (cluster_acks_ != nullptr) cluster_acks_->last_id = 0;  // tracked; no PUBACK waits for it
}

// ---- Packets ---------------------------------------------------------------------------------

void Router::OnPacket(net::Connection& connection, const mqtt::Packet& packet) {
  uint32_t index = kNone;
  session::Session* session = SessionOf(connection, &index);
  RINGMQ_ASSERT(session != nullptr);
  switch (mqtt::TypeOf(packet)) {
    case mqtt::PacketType::kPublish: {
      const auto& publish = std::get<mqtt::Publish>(packet);
      if (metrics::IsSysTopic(publish.topic)) return DropSysPublish(connection, publish);
      OnPublish(connection, publish);
      return;
    }
    // A PUBACK or PUBCOMP that ends a flow takes one message out of flight and changes no other
    // gauge (the queue moves only when the session writes): one gauge update, no level snapshot.
    case mqtt::PacketType::kPuback:
      if (session->OnPuback(std::get<mqtt::Puback>(packet).packet_id)) {
        if (persist_) {
          PersistPacketId(index, persist::RecordType::kPuback,
                          std::get<mqtt::Puback>(packet).packet_id);
        }
        counters_.gauges.inflight_messages.Add(-1);
        MarkSessionDirty(index);
      }
      return;
    case mqtt::PacketType::kPubrec: {
      const auto& pubrec = std::get<mqtt::Pubrec>(packet);
      // 5.0: a PUBREC with a reason code of 0x80 or more ends the QoS 2 flow there (no PUBREL;
      // its window slot is free again, 5.0:MQTT-3.3.4-9). At 3.1.1 the code is always 0x00.
      if (static_cast<uint8_t>(pubrec.reason_code) >= 0x80) {
        if (session->OnPubrecRefused(pubrec.packet_id)) {
          if (persist_) {
            PersistPacketId(index, persist::RecordType::kPubrec, pubrec.packet_id);
            PersistPacketId(index, persist::RecordType::kPubcomp, pubrec.packet_id);
          }
          counters_.gauges.inflight_messages.Add(-1);
          MarkSessionDirty(index);
        }
        return;
      }
      if (bool first = false; session->OnPubrec(pubrec.packet_id, &first)) {
        // Logged once: a repeated PUBREC changes nothing durable (and a second kPubrec does not
        // fit the recovered state, persist/state.h). The PUBREL it makes due waits until the
        // record is durable (a crash would otherwise resend the PUBLISH that the client has
        // already released), also when the PUBREC is a repeat on a new connection.
        if (persist_) {
          persist_->logged = false;
          persist_->sent_remote = false;
          if (first) PersistPacketId(index, persist::RecordType::kPubrec, pubrec.packet_id);
          HoldIfLogged(connection, /*always=*/true);
        }
        MarkSessionDirty(index);
      }
      return;
    }
    case mqtt::PacketType::kPubcomp:
      if (session->OnPubcomp(std::get<mqtt::Pubcomp>(packet).packet_id)) {
        if (persist_) {
          PersistPacketId(index, persist::RecordType::kPubcomp,
                          std::get<mqtt::Pubcomp>(packet).packet_id);
        }
        counters_.gauges.inflight_messages.Add(-1);
        MarkSessionDirty(index);
      }
      return;
    case mqtt::PacketType::kPubrel: {
      // MQTT-4.3.3-2: PUBCOMP answers every PUBREL, known id or not.
      const uint16_t packet_id = std::get<mqtt::Pubrel>(packet).packet_id;
      if (session->EndInboundQos2(packet_id) && persist_) {
        persist_->logged = false;
        persist_->sent_remote = false;
        PersistPacketId(index, persist::RecordType::kInboundRelease, packet_id);
      }
      connection.QueueAck(mqtt::PacketType::kPubcomp, packet_id, context_);
      // The client reuses the id once it has the PUBCOMP: the release must be durable first, or
      // a crash would take its next QoS 2 PUBLISH with that id for a duplicate.
      if (persist_) HoldIfLogged(connection);
      return;
    }
    case mqtt::PacketType::kSubscribe:
      // Gauges are kept per filter (the work may span iterations); retained messages queued by
      // it are counted on delivery.
      return OnSubscribe(connection, index, std::get<mqtt::Subscribe>(packet));
    case mqtt::PacketType::kUnsubscribe:
      return OnUnsubscribe(connection, index, std::get<mqtt::Unsubscribe>(packet));
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

void Router::ClassifySubscriptions(uint32_t index) {
  SessionEntry& entry = sessions_[index];
  const auth::ClientAcl& acl = AclOf(entry);
  for (const auto& [filter, options] : entry.session->subscriptions()) {
    const std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(filter);
    const bool acl_check =
        acl.ClassifySubscription(shared ? shared->filter : filter) != auth::ReadScope::kAll;
    // Replaces the handle's flag in place (an unchanged one is left alone, without a copy).
    TrieSubscribe(filter,
                  HandleOf(index, options.qos, acl_check, options.has_delivery_options()));
  }
}

void Router::ApplyAclReload() {
  const uint64_t version = shared_.auth.Load()->version;
  if (version == acl_version_) return;
  acl_version_ = version;
  // O(subscriptions of this shard x rules), once per reload.
  for (uint32_t index = 0; index < sessions_.slot_count(); ++index) {
    SessionEntry& entry = sessions_[index];
    if (entry.session && entry.acl != nullptr && !entry.session->subscriptions().empty()) {
      ClassifySubscriptions(index);
    }
  }
}

void Router::OnPublish(net::Connection& connection, const mqtt::Publish& publish) {
  uint32_t index = kNone;
  session::Session& session = *SessionOf(connection, &index);
  const auto qos = static_cast<uint8_t>(publish.qos);
  CountPublishReceived(qos);
  if (persist_ != nullptr) {
    if (qos > 0 && !PersistAvailable()) {
      // A shard's log cannot take more: not acknowledged, so the client resends it after
      // reconnecting (MQTT-4.4.0-1); 5.0 is told why (DISCONNECT 0x97 Quota exceeded).
      counters_.persist_publish_refused.Add();
      connection.Disconnect(mqtt::ReasonCode::kQuotaExceeded, services_.now_ms(), context_);
      services_.ConnectionDirty(connection.tag());
      return;
    }
    persist_->logged = false;
    persist_->sent_remote = false;
  }
  if (qos == 2) {
    switch (session.BeginInboundQos2(publish.packet_id)) {
      case session::InboundQos2::kNew:
        if (persist_) PersistPacketId(index, persist::RecordType::kInboundQos2, publish.packet_id);
        break;
      case session::InboundQos2::kDuplicate:
        // MQTT-4.3.3-2: a repeated PUBLISH of a pending id is acknowledged, not delivered again.
        counters_.publish_duplicates.Add();
        connection.QueueAck(mqtt::PacketType::kPubrec, publish.packet_id, context_);
        // The first PUBLISH's records may not be durable yet (its PUBREC, held on an earlier
        // connection, may never have been sent): this PUBREC waits for everything logged so far.
        if (persist_) HoldIfLogged(connection, /*always=*/true);
        return;
      case session::InboundQos2::kLimit:
        // max_inbound_qos2_pending: nothing of this PUBLISH was acknowledged, so the client
        // sends it again after reconnecting (MQTT-4.4.0-1) and nothing is lost.
        counters_.inbound_qos2_limit.Add();
        RINGMQ_LOG_DEBUG("client %s closed: over %u QoS 2 PUBLISHes await PUBREL",
                         connection.shared_client_id().c_str(), limits_.max_inbound_qos2);
        connection.Close(services_.now_ms());
        services_.ConnectionDirty(connection.tag());
        return;
    }
  }
  if (acl_enabled_ && !AclOf(sessions_[index]).CanPublish(publish.topic)) {
    // Acknowledged as if delivered (as Mosquitto does for MQTT 3.1.1) so that the client does
    // not resend it forever; a QoS 2 id stays pending until PUBREL as usual. At 5.0 the ack
    // says Not authorized (0x87, as Mosquitto does), which ends a QoS 2 flow at the PUBREC
    // (5.0:4.3.3: a PUBREC with a reason code of 0x80 or more is the end of it).
    counters_.publish_denied.Add();
    if (connection.level() == mqtt::ProtocolLevel::kMqtt5 && qos == 2) {
      session.EndInboundQos2(publish.packet_id);
      if (persist_) {
        PersistPacketId(index, persist::RecordType::kInboundRelease, publish.packet_id);
      }
    }
    AcknowledgePublish(connection, publish, mqtt::ReasonCode::kNotAuthorized);
    if (persist_) HoldIfLogged(connection);
    return;
  }
  const SessionEntry& entry = sessions_[index];
  message::MessageRef message = message::MessageRef::Create(
      publish.topic, AsBytes(publish.payload), qos, publish.retain,
      NextOrigin(index, entry.generation),
      message::Mqtt5Fields{.properties = publish.properties.raw(),
                           .expiry_deadline_ms = ExpiryDeadline(
                               publish.properties, services_.now_ms(), max_message_expiry_s_)});
  if (publish.retain) Retain(message);
  // Right after Create: other shards get our messages in sequence order.
  const bool matched =
      Route(message, /*from_client=*/true,
            share_strategy_ == sub::ShareStrategy::kHash ? PublisherKey(connection.client_id()) : 0);
  ForwardToCluster(*message);
  // 5.0: No matching subscribers (0x10) is still a success for the publisher (5.0:3.4.2.1).
  AcknowledgePublish(
      connection, publish,
      matched ? mqtt::ReasonCode::kSuccess : mqtt::ReasonCode::kNoMatchingSubscribers);
  if (persist_ && qos > 0) HoldIfLogged(connection);
}

void Router::DropSysPublish(net::Connection& connection, const mqtt::Publish& publish) {
  CountPublishReceived(static_cast<uint8_t>(publish.qos));
  counters_.publish_dropped_sys_topic.Add();
  RINGMQ_LOG_DEBUG("client %s: PUBLISH to %.*s dropped: $SYS is the broker's",
                   connection.shared_client_id().c_str(), static_cast<int>(publish.topic.size()),
                   publish.topic.data());
  // Acknowledged like any PUBLISH so the client's QoS flow completes; PUBREL gets PUBCOMP.
  AcknowledgePublish(connection, publish);
}

void Router::CountPublishReceived(uint8_t qos) {
  RINGMQ_ASSERT(qos <= 2);  // the decoder refuses QoS 3 (MQTT-3.3.1-4)
  if (qos == 0) counters_.publish_received_qos0.Add();
  if (qos == 1) counters_.publish_received_qos1.Add();
  if (qos == 2) counters_.publish_received_qos2.Add();
}

void Router::AcknowledgePublish(net::Connection& connection, const mqtt::Publish& publish,
                                mqtt::ReasonCode reason) {
  if (cluster_acks_ != nullptr && publish.qos != mqtt::QoS::k0 &&
      DeferClusterAck(connection, publish, reason)) {
    return;
  }
  if (reason != mqtt::ReasonCode::kSuccess && connection.level() == mqtt::ProtocolLevel::kMqtt5) {
    if (publish.qos == mqtt::QoS::k1) {
      connection.QueuePacket(mqtt::Puback{publish.packet_id, reason}, context_);
    } else if (publish.qos == mqtt::QoS::k2) {
      connection.QueuePacket(mqtt::Pubrec{publish.packet_id, reason}, context_);
    }
    return;
  }
  if (publish.qos == mqtt::QoS::k1) {
    connection.QueueAck(mqtt::PacketType::kPuback, publish.packet_id, context_);
  } else if (publish.qos == mqtt::QoS::k2) {
    connection.QueueAck(mqtt::PacketType::kPubrec, publish.packet_id, context_);
  }
}

Router::Levels Router::LevelsOf(session::Session& session) {
  return Levels{.queued = session.queued_messages(),
                .inflight = session.inflight(),
                .subscriptions = session.subscription_count()};
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

// bridge lane
void Router::PublishOwn(std::string_view topic, std::string_view payload) {
  const std::vector<uint8_t> bytes(payload.begin(), payload.end());
  message::MessageRef message =
      message::MessageRef::Create(topic, bytes, /*qos=*/0, /*retain=*/true, NextOrigin());
  Retain(message);
  Route(message, /*from_client=*/false);
}

// The Subscription Identifier of a SUBSCRIBE (5.0:3.8.2.1.2), 0 when it has none.
uint32_t SubscriptionIdentifierOf(const mqtt::Subscribe& subscribe) {
  if (subscribe.properties.empty()) return 0;
  const std::optional<mqtt::Property> identifier =
      subscribe.properties.Find(mqtt::PropertyId::kSubscriptionIdentifier);
  return identifier ? identifier->integer : 0;
}

void Router::OnSubscribe(net::Connection& connection, uint32_t index,
                         const mqtt::Subscribe& subscribe) {
  const size_t count = subscribe.topics.size();
  const uint32_t identifier = SubscriptionIdentifierOf(subscribe);
  if (!FitsThisIteration(count)) {
    return StartJob(connection, index, subscribe.packet_id, subscribe.topics, false, identifier);
  }
  filters_this_iteration_ += static_cast<uint32_t>(count);
  std::vector<uint8_t> codes;
  codes.reserve(count);
  for (const mqtt::TopicRequest request : subscribe.topics) {
    codes.push_back(
        SubscribeOne(index, request.filter, mqtt::SubscriptionOptions(request), identifier));
  }
  // The SUBACK goes before the retained messages: they are encoded later, in Flush.
  connection.QueuePacket(mqtt::Suback{subscribe.packet_id, codes}, context_);
  if (persist_) HoldIfLogged(connection);
}

void Router::OnUnsubscribe(net::Connection& connection, uint32_t index,
                           const mqtt::Unsubscribe& unsubscribe) {
  const size_t count = unsubscribe.topics.size();
  if (!FitsThisIteration(count)) {
    return StartJob(connection, index, unsubscribe.packet_id, unsubscribe.topics, true, 0);
  }
  filters_this_iteration_ += static_cast<uint32_t>(count);
  // MQTT-3.10.4-4/5: UNSUBACK even when nothing matched; at 5.0 with a reason code per filter
  // (5.0:3.11.3), which 3.1.1's UNSUBACK has not.
  if (connection.level() != mqtt::ProtocolLevel::kMqtt5) {
    for (const mqtt::TopicRequest request : unsubscribe.topics) {
      UnsubscribeOne(index, request.filter);
    }
    connection.QueuePacket(mqtt::Unsuback{unsubscribe.packet_id}, context_);
    if (persist_) HoldIfLogged(connection);
    return;
  }
  std::vector<uint8_t> codes;
  codes.reserve(count);
  for (const mqtt::TopicRequest request : unsubscribe.topics) {
    codes.push_back(UnsubscribeOne(index, request.filter));
  }
  connection.QueuePacket(mqtt::Unsuback{unsubscribe.packet_id, codes}, context_);
  if (persist_) HoldIfLogged(connection);
}

uint8_t Router::SubscribeOne(uint32_t index, std::string_view filter, uint8_t options_byte,
                             uint32_t identifier) {
  SessionEntry& entry = sessions_[index];
  const bool mqtt5 = entry.session->level() == mqtt::ProtocolLevel::kMqtt5;
  const session::SubscriptionOptions options{.identifier = identifier,
                                             .qos = static_cast<uint8_t>(options_byte & 0x03),
                                             .no_local = (options_byte & 0x04) != 0,
                                             .retain_as_published = (options_byte & 0x08) != 0};
  const auto retain_handling = static_cast<uint8_t>((options_byte >> 4) & 0x03);
  RINGMQ_ASSERT(entry.session.has_value() && options.qos <= 2 && retain_handling <= 2);
  // "$share/{name}/{filter}" at any level (the 5.0 decoder refused a malformed one already; at
  // 3.1 / 3.1.1 it is an ordinary filter to the codec, refused here for this filter only).
  const std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(filter);
  if (!shared && mqtt::IsSharedFilter(filter)) return mqtt::kSubackFailure;
  const std::string_view topic_filter = shared ? shared->filter : filter;
  const auth::ReadScope scope =
      acl_enabled_ ? AclOf(entry).ClassifySubscription(topic_filter) : auth::ReadScope::kAll;
  if (scope == auth::ReadScope::kNone) {
    counters_.subscribe_denied.Add();
    // MQTT-3.9.3: failure, for this filter only; 5.0 says why (Not authorized).
    return mqtt5 ? static_cast<uint8_t>(mqtt::ReasonCode::kNotAuthorized) : mqtt::kSubackFailure;
  }
  const session::SubscribeResult result = entry.session->AddSubscription(filter, options);
  switch (result) {  // every QoS is supported
    case session::SubscribeResult::kLimit:
      counters_.subscribe_limit.Add();
      // max_subscriptions_per_session; MQTT-3.9.3 as above; 5.0: Quota exceeded.
      return mqtt5 ? static_cast<uint8_t>(mqtt::ReasonCode::kQuotaExceeded) : mqtt::kSubackFailure;
    case session::SubscribeResult::kAdded:
      counters_.subscriptions_added.Add();
      counters_.gauges.subscriptions.Add(1);
      ClusterAcquire(filter);
      break;
    case session::SubscribeResult::kReplaced:  // MQTT-3.8.4-3: the QoS is replaced
      break;
  }
  const bool acl_check = scope == auth::ReadScope::kSome;  // partly readable: per message
  if (acl_check) counters_.subscribe_filtered.Add();
  TrieSubscribe(filter,
                HandleOf(index, options.qos, acl_check, options.has_delivery_options()));
  if (persist_) PersistSubscribe(index, filter, options);
  // Retained messages are not sent for a shared subscription (5.0 §4.8.2). 5.0:3.8.3.1 Retain
  // Handling: 0 sends the retained messages, 1 only for a new subscription, 2 never
  // (5.0:MQTT-3.3.1-9..11).
  if (!shared && (retain_handling == 0 ||
                  (retain_handling == 1 && result == session::SubscribeResult::kAdded))) {
    DeliverRetained(index, entry.generation, options.qos, filter, acl_check,
                    options.has_delivery_options());
  }
  return options.qos;
}

uint8_t Router::UnsubscribeOne(uint32_t index, std::string_view filter) {
  SessionEntry& entry = sessions_[index];
  const std::optional<session::SubscriptionOptions> options =
      entry.session->RemoveSubscription(filter);
  if (!options) return static_cast<uint8_t>(mqtt::ReasonCode::kNoSubscriptionExisted);
  TrieUnsubscribe(filter, HandleOf(index, options->qos, false));
  ClusterRelease(filter);
  if (persist_) PersistUnsubscribe(index, filter);
  counters_.subscriptions_removed.Add();
  counters_.gauges.subscriptions.Add(-1);
  return static_cast<uint8_t>(mqtt::ReasonCode::kSuccess);
}

sub::Subscriber Router::HandleOf(uint32_t index, uint8_t qos, bool acl_check, bool options) {
  const SessionEntry& entry = sessions_[index];
  return sub::Subscriber{.shard = static_cast<uint16_t>(shard_),
                         .session = index,
                         .generation = entry.generation,
                         .qos = qos,
                         .acl_check = acl_check,
                         .offline = entry.connection == nullptr,
                         .options = options};
}

void Router::TrieSubscribe(std::string_view filter, sub::Subscriber handle) {
  if (const std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(filter)) {
    int groups = 0;
    shared_.trie.SubscribeShared(shared->share_name, shared->filter, handle, &groups);
    if (groups != 0) counters_.gauges.shared_groups.Add(groups);
    return;
  }
  handle.offline = false;  // meaningful for group members only
  shared_.trie.Subscribe(filter, handle);
}

void Router::TrieUnsubscribe(std::string_view filter, sub::Subscriber handle) {
  if (const std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(filter)) {
    int groups = 0;
    shared_.trie.UnsubscribeShared(shared->share_name, shared->filter, handle, &groups);
    if (groups != 0) counters_.gauges.shared_groups.Add(groups);
    return;
  }
  shared_.trie.Unsubscribe(filter, handle);
}

bool Router::NeedsAclCheck(SessionEntry& entry, std::string_view filter) {
  if (!acl_enabled_ || entry.acl == nullptr) return false;
  return AclOf(entry).ClassifySubscription(filter) != auth::ReadScope::kAll;
}

void Router::UpdateSharedPresence(uint32_t index) {
  SessionEntry& entry = sessions_[index];
  for (const auto& [filter, options] : entry.session->subscriptions()) {
    const std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(filter);
    if (!shared) continue;
    // Only the offline flag changes; the trie leaves an unchanged membership alone.
    TrieSubscribe(filter, HandleOf(index, options.qos, NeedsAclCheck(entry, shared->filter),
                                   options.has_delivery_options()));
  }
}

uint64_t Router::PublisherKey(std::string_view client_id) {
  return absl::Hash<std::string_view>{}(client_id);
}

bool Router::EligibleMember(void* context, const sub::Subscriber& member) {
  const auto& eligible = *static_cast<const EligibleContext*>(context);
  if (sub::SameSession(member, eligible.excluded)) return false;
  Router& router = *eligible.router;
  // Another shard's member: its offline flag (checked by the trie) is all we can see.
  if (member.shard != router.shard_) return true;
  const SessionEntry* entry = router.sessions_.Find(member.session, member.generation);
  return entry != nullptr && entry->connection != nullptr &&
         entry->session->CanTake(*eligible.message, MinQos(member.qos, eligible.message->qos()));
}

sub::ShareChoice Router::ChoiceFor(EligibleContext& context, uint64_t publisher_key) const {
  return sub::ShareChoice{.strategy = share_strategy_,
                          .cursor_slot = shard_,
                          .qos = context.message->qos(),
                          .publisher_key = publisher_key,
                          .eligible = &Router::EligibleMember,
                          .context = &context};
}

void Router::CountShared(const sub::MatchResult& match) {
  if (match.shared_picks() != 0) counters_.shared_deliveries.Add(match.shared_picks());
  if (match.shared_skips() != 0) counters_.shared_skips.Add(match.shared_skips());
  if (match.shared_no_member() != 0) counters_.shared_no_member.Add(match.shared_no_member());
}

void Router::RerouteShared(message::Message* message, sub::Subscriber excluded) {
  if (message->qos() == 0) return;  // at most once: nothing is owed
  EligibleContext context{this, message, excluded};
  sub::ShareChoice choice = ChoiceFor(context, 0);
  shared_.trie.MatchShared(message->topic(), reroute_match_, choice);
  CountShared(reroute_match_);
  for (const sub::ShardSubscribers& group : reroute_match_.shards()) {
    // A group with no member left but the excluded one chose it again (no eligible member):
    // nobody else can take it.
    if (group.shard != shard_) {
      outbox_.SendMessage(group.shard, message, group.subscribers, /*rerouted=*/true);
      counters_.shared_rerouted.Add(group.subscribers.size());
      continue;
    }
    for (const sub::Subscriber& subscriber : group.subscribers) {
      if (sub::SameSession(subscriber, excluded)) continue;
      counters_.shared_rerouted.Add();
      DeliverLocal(subscriber.session, subscriber.generation,
                   MinQos(subscriber.qos, message->qos()), message, false, subscriber.acl_check,
                   nullptr, /*shared=*/true, /*may_reroute=*/false, subscriber.options);
    }
  }
}

void Router::DeliverRetained(uint32_t index, uint32_t generation, uint8_t granted_qos,
                             std::string_view filter, bool acl_check, bool options) {
  // MQTT-3.3.1-6: matching retained messages are sent, with RETAIN set (MQTT-3.3.1-8).
  // One call per filter, with the trie insert just before it: retained_fence.h relies on it.
  // The walk stops at the first message the session has no room for (its queue or byte cap,
  // or the memory budget): the rest would be dropped one by one, and a filter such as "#" over
  // a large store would otherwise visit every topic in one loop iteration. Counted once.
  const uint64_t now_ms = services_.now_ms();
  shared_.retained.ForEachMatchWhile(filter, [&](message::Message* retained) {
    // 5.0:3.3.2.3.3: an expired retained message is not sent (the store keeps it until it is
    // replaced or cleared).
    if (retained->ExpiredAt(now_ms)) {
      counters_.messages_expired.Add();
      return true;
    }
    switch (DeliverLocal(index, generation, MinQos(granted_qos, retained->qos()), retained, true,
                         acl_check, nullptr, /*shared=*/false, /*may_reroute=*/false, options)) {
      case Delivery::kQueued:
        RecordRetainedDelivery(index, generation, *retained);
        return true;
      case Delivery::kSkipped:
        return true;
      case Delivery::kSessionFull:
        counters_.retained_walk_truncated.Add();
        return false;
    }
    return true;
  });
}

// ---- SUBSCRIBE / UNSUBSCRIBE jobs ------------------------------------------------------------

bool Router::FitsThisIteration(size_t filters) const {
  return jobs_.empty() && filters_this_iteration_ + filters <= max_filters_per_iteration_;
}

void Router::StartJob(net::Connection& connection, uint32_t index, uint16_t packet_id,
                      const mqtt::TopicList& topics, bool unsubscribe, uint32_t identifier) {
  SessionEntry& entry = sessions_[index];
  RINGMQ_ASSERT(!entry.job_pending && entry.connection == &connection);
  FilterJob& job = jobs_.emplace_back();
  job.session = index;
  job.packet_id = packet_id;
  job.unsubscribe = unsubscribe;
  job.identifier = identifier;
  job.filters.reserve(topics.raw().size());
  for (const mqtt::TopicRequest request : topics) {
    job.items.push_back(
        FilterJob::Item{.offset = static_cast<uint32_t>(job.filters.size()),
                        .length = static_cast<uint16_t>(request.filter.size()),
                        .options = unsubscribe ? uint8_t{0} : mqtt::SubscriptionOptions(request)});
    job.filters.append(request.filter);
  }
  job.codes.reserve(job.items.size());
  entry.job_pending = true;
  connection.Pause();  // its later packets wait for the SUBACK / UNSUBACK (MQTT-4.6.0)
  counters_.subscribe_deferred.Add();
}

void Router::RunJobs() {
  while (!jobs_.empty()) {
    FilterJob& job = jobs_.front();
    while (!job.abandoned && job.next < job.items.size() &&
           filters_this_iteration_ < max_filters_per_iteration_) {
      const FilterJob::Item& item = job.items[job.next++];
      const std::string_view filter(job.filters.data() + item.offset, item.length);
      if (job.unsubscribe) {
        job.codes.push_back(UnsubscribeOne(job.session, filter));
      } else {
        job.codes.push_back(SubscribeOne(job.session, filter, item.options, job.identifier));
      }
      ++filters_this_iteration_;
    }
    if (!job.abandoned && job.next < job.items.size()) break;  // the budget is spent
    const FilterJob done = std::move(job);
    jobs_.pop_front();
    // May process the connection's waiting packets, which may start a job again.
    if (!done.abandoned) FinishJob(done);
  }
  filters_this_iteration_ = 0;
}

void Router::FinishJob(const FilterJob& job) {
  SessionEntry& entry = sessions_[job.session];
  RINGMQ_ASSERT(entry.job_pending && entry.connection != nullptr);
  entry.job_pending = false;
  net::Connection& connection = *entry.connection;
  if (job.unsubscribe) {
    // MQTT-3.10.4-4; the reason codes are written at 5.0 only.
    connection.QueuePacket(mqtt::Unsuback{job.packet_id, job.codes}, context_);
  } else {
    connection.QueuePacket(mqtt::Suback{job.packet_id, job.codes}, context_);
  }
  if (persist_) HoldIfLogged(connection);
  MarkSessionDirty(job.session);  // output held while the job ran, retained messages included
  services_.ConnectionDirty(connection.tag());
  connection.Resume(services_.now_ms(), context_);
}

void Router::AbandonJob(uint32_t index) {
  SessionEntry& entry = sessions_[index];
  if (!entry.job_pending) return;
  entry.job_pending = false;
  for (FilterJob& job : jobs_) {
    if (job.session == index && !job.abandoned) job.abandoned = true;
  }
}

// ---- Routing ---------------------------------------------------------------------------------

void Router::Retain(const message::MessageRef& message) {
  uint64_t version = 0;
  const retain::SetResult result =
      shared_.retained.Set(message::MessageRef::Share(message.get()), &version);
  if (result == retain::SetResult::kRefused) {
    counters_.retained_refused.Add();  // still routed to current subscribers
  }
  // A refused message also deleted the topic's older value (retained_store.h).
  if (persist_) PersistRetained(*message, version, result != retain::SetResult::kStored);
}

bool Router::Route(const message::MessageRef& message, bool from_client, uint64_t publisher_key) {
  EligibleContext context{this, message.get(),
                          sub::Subscriber{.shard = 0, .session = kNone, .generation = 0, .qos = 0}};
  sub::ShareChoice choice = ChoiceFor(context, publisher_key);
  if (cluster_ != nullptr) choice.groups = !ClusterChoosesShares(message.get(), publisher_key);
  shared_.trie.Match(message->topic(), match_, choice);
  CountShared(match_);
  if (match_.empty()) {
    if (from_client) counters_.publish_dropped_no_subscribers.Add();
    return false;
  }
  for (const sub::ShardSubscribers& group : match_.shards()) {
    if (group.shard != shard_) {
      // A message dropped at the overflow bound is never confirmed by `group.shard`: the
      // publisher's acknowledgement must not wait for it (it would wait for the next message
      // to that shard, and hold every later acknowledgement of this shard behind it).
      if (outbox_.SendMessage(group.shard, message.get(), group.subscribers) && persist_) {
        PersistSentTo(group.shard, *message);
      }
      continue;
    }
    // The local deliveries' references are made in one step, as for a mailbox record (OnRecord);
    // those not taken are dropped together.
    message::MessageRefBatch references(message.get(), /*owned=*/0,
                                        static_cast<uint32_t>(group.subscribers.size()));
    for (const sub::Subscriber& subscriber : group.subscribers) {
      DeliverLocal(subscriber.session, subscriber.generation,
                   MinQos(subscriber.qos, message->qos()), message.get(), false,
                   subscriber.acl_check, &references, subscriber.shared,
                   /*may_reroute=*/subscriber.shared, subscriber.options);
    }
  }
  return true;
}

Router::Delivery Router::DeliverLocal(uint32_t index, uint32_t generation, uint8_t qos,
                                      message::Message* message, bool retain, bool acl_check,
                                      message::MessageRefBatch* references, bool shared,
                                      bool may_reroute, bool options) {
  RINGMQ_ASSERT(references == nullptr || references->get() == message);
  RINGMQ_ASSERT(!may_reroute || shared);
  SessionEntry* const found = sessions_.Find(index, generation);
  const sub::Subscriber self{.shard = static_cast<uint16_t>(shard_),
                             .session = index,
                             .generation = generation,
                             .qos = qos};
  if (found == nullptr) {  // session ended meanwhile
    if (may_reroute && qos > 0) RerouteShared(message, self);
    return Delivery::kSkipped;
  }
  SessionEntry& entry = *found;
  // A group member that cannot keep it: another member gets it (the publisher's shard could not
  // see this queue).
  if (may_reroute && qos > 0 && !entry.session->CanTake(*message, qos)) {
    RerouteShared(message, self);
    return Delivery::kSkipped;
  }
  if (acl_check && (entry.acl == nullptr || !AclOf(entry).CanRead(message->topic()))) {
    counters_.deliver_denied.Add();
    // The group's choice does not check ACLs: a member that may not read the topic passes a
    // QoS 1/2 message on like one that cannot keep it.
    if (may_reroute && qos > 0) RerouteShared(message, self);
    return Delivery::kSkipped;
  }
  uint8_t flags = shared ? session::kEnqueueShared : 0;
  if (options) {
    // 5.0 subscription options: the session's own subscriptions say whether it gets the message
    // (No Local), at which QoS, with which RETAIN flag, and whether it carries Subscription
    // Identifiers (looked up again when it is encoded).
    const bool own = message->PublishedBy(shard_, index, generation);
    const session::DeliveryMatch match =
        entry.session->MatchDelivery(message->topic(), own, shared);
    if (!match.deliver) {
      // No Local, or (a message routed before an UNSUBSCRIBE) no subscription left. A group
      // member that left its group meanwhile passes a QoS 1/2 message on, as a member that
      // ended does (No Local is refused on a shared subscription, 5.0:MQTT-3.8.3-4, so a group's
      // delivery is never held back by it).
      if (may_reroute && qos > 0) {
        RerouteShared(message, self);
      } else if (own) {
        counters_.deliver_no_local.Add();
      }
      return Delivery::kSkipped;
    }
    if (!retain) {
      qos = MinQos(match.qos, message->qos());
      // 5.0:MQTT-3.3.1-12/13: a live delivery keeps the publisher's RETAIN flag only through a
      // Retain As Published subscription.
      retain = match.retain_as_published && message->retain();
    }
    if (own) flags |= session::kEnqueueOwn;
    if (match.identifiers) flags |= session::kEnqueueIdentifiers;
  }
  if (memory_budget_ && ShedForMemory(index, entry, qos)) return Delivery::kSessionFull;
  if (persist_ && qos > 0 && max_disk_bytes_ != 0 && SidOf(index) != 0 &&
      shared_.persist_disk_bytes.load(std::memory_order_relaxed) > max_disk_bytes_) {
    // max_disk_bytes: as a full queue (queue_full_policy).
    counters_.persist_dropped_disk_full.Add();
    if (queue_full_disconnects_ && entry.connection != nullptr) slow_consumers_.push_back(index);
    return Delivery::kSessionFull;
  }
  message::MessageRef reference =
      references != nullptr ? references->Take() : message::MessageRef::Share(message);
  switch (entry.session->Enqueue(std::move(reference), qos, retain, flags)) {
    case session::EnqueueResult::kQueued:
      if (persist_) PersistEnqueue(index, *message, qos, retain);
      counters_.gauges.queued_messages.Add(1);
      if (entry.connection != nullptr) MarkSessionDirty(index);
      return Delivery::kQueued;
    case session::EnqueueResult::kDroppedQueueFull:
      counters_.dropped_queue_full.Add();
      // Disconnected in Flush, not here: the caller may be iterating this session's state.
      if (queue_full_disconnects_ && entry.connection != nullptr) slow_consumers_.push_back(index);
      return Delivery::kSessionFull;
    case session::EnqueueResult::kDroppedBytesCap:
      counters_.dropped_bytes_cap.Add();
      // QoS 1/2 over the byte cap is a full queue, under the same policy.
      if (qos > 0 && queue_full_disconnects_ && entry.connection != nullptr) {
        slow_consumers_.push_back(index);
      }
      return Delivery::kSessionFull;
    case session::EnqueueResult::kDroppedOffline:
      counters_.dropped_offline_qos0.Add();
      return Delivery::kSkipped;
  }
  return Delivery::kSkipped;
}

void Router::RecordRetainedDelivery(uint32_t index, uint32_t generation,
                                    const message::Message& retained) {
  if (retained_fence_.Record(index, generation, retained) == RetainedFence::RecordResult::kFull) {
    counters_.retained_fence_full.Add();
  }
}

bool Router::ShedForMemory(uint32_t index, SessionEntry& entry, uint8_t qos) {
  const bool online = entry.connection != nullptr;
  // Offline QoS 0 is never queued (dropped_offline_qos0), so it is not shed here.
  if (qos == 0 && !online) return false;
  if (online && entry.session->queued_bytes() < kBacklogBytes) return false;
  const memory::Pressure pressure = services_.memory_pressure();
  if (qos == 0) {
    if (pressure < memory::Pressure::kShedQos0) return false;
    counters_.dropped_memory_qos0.Add();
    return true;
  }
  if (pressure < memory::Pressure::kShedQos12) return false;
  counters_.dropped_memory_qos12.Add();
  // As for a full queue (queue_full_policy); disconnected in Flush.
  if (queue_full_disconnects_ && online) slow_consumers_.push_back(index);
  return true;
}

void Router::Handoff(net::Connection& connection) {
  const uint32_t home = HomeShard(connection.client_id());
  RINGMQ_ASSERT(home != shard_);
  outbox_.SendHandoff(home, HandoffRecord{connection.fd(), connection.TakeHandoffBytes(),
                                          connection.TakeTransport(), connection.listener(),
                                          connection.internal()});
}

bool Router::DrainMailboxes() {
  // Only the mailboxes that were signalled (went from empty to non-empty), and those whose last
  // drain stopped at the budget: see MailboxMatrix for why no record is missed.
  MailboxMatrix& mailboxes = shared_.mailboxes;
  bool more = false;
  drained_records_ = 0;
  for (uint32_t word = 0; word < mailboxes.signal_words(); ++word) {
    uint64_t sources = pending_mail_[word] | mailboxes.TakeSignals(shard_, word);
    pending_mail_[word] = 0;
    while (sources != 0) {
      const uint32_t bit = static_cast<uint32_t>(std::countr_zero(sources));
      sources &= sources - 1;
      const uint32_t source = word * 64 + bit;
      RINGMQ_ASSERT(source < shard_count_ && source != shard_);
      const DrainResult result =
          mailboxes.mailbox(source, shard_)
              .Drain([this](std::span<const Slot> record) { OnRecord(record); },
                     kDrainBudgetRecords);
      if (result.more) pending_mail_[word] |= uint64_t{1} << bit;
      drained_records_ += result.records;
    }
    more = more || pending_mail_[word] != 0;
  }
  return more;
}

void Router::OnRecord(std::span<const Slot> record) {
  RINGMQ_ASSERT(!record.empty());
  switch (record[0].kind) {
    case kHandoff: {
      std::unique_ptr<HandoffRecord> handoff(reinterpret_cast<HandoffRecord*>(record[0].value));
      services_.AdoptConnection(std::move(*handoff));
      return;
    }
    case kFenceRequest: {
      // Behind every record we pushed to the requester before: see retained_fence.h.
      const uint32_t requester = record[0].aux;
      RINGMQ_ASSERT(record.size() == 1 && requester < shard_count_ && requester != shard_);
      outbox_.SendFenceReply(requester, last_sequence_);
      return;
    }
    case kFenceReply:
      RINGMQ_ASSERT(record.size() == 1);
      retained_fence_.OnReply(record[0].aux, record[0].value);
      return;
    case kDurable:
      RINGMQ_ASSERT(record.size() == 1);
      OnDurable(record[0].aux, record[0].value);
      return;
    case kClaim: {
      RINGMQ_ASSERT(record.size() == 1);
      const std::unique_ptr<ClaimRecord> claim(reinterpret_cast<ClaimRecord*>(record[0].value));
      HandleClaim(claim->view(), claim->reply);
      return;
    }
    default:
      break;
  }
  RINGMQ_ASSERT(record[0].kind == kMessage && record.size() == record[0].aux + size_t{1});
  auto* message = reinterpret_cast<message::Message*>(record[0].value);
  // A re-routed shared delivery (every handle of its record is) comes from the shard of the
  // member that could not keep it, out of its origin's sequence; no retained message is ever
  // sent on a shared subscription, so the fence has nothing to say about it.
  const bool rerouted = record.size() > 1 && (record[1].value & kHandleRerouted) != 0;
  if (!rerouted) retained_fence_.Arrived(*message);
  const RetainedFence::Probe probe =
      rerouted ? RetainedFence::Probe() : retained_fence_.ProbeFor(*message);
  // The record's reference goes to the first delivery queued, and the other deliveries'
  // references are made in one step; those not taken (skipped handles, the record's own if none
  // was queued) are dropped together at the end.
  // The message may be freed by the last delivery that drops its reference: its origin is
  // read now for the durability confirmation below.
  const uint16_t origin_shard = message->origin_shard();
  const uint64_t origin_sequence = message->sequence();
  message::MessageRefBatch references(message, /*owned=*/1, /*wanted=*/record[0].aux);
  for (const Slot& handle : record.subspan(1)) {
    const auto generation = static_cast<uint32_t>(handle.value >> 8);
    if (probe.active() && retained_fence_.Superseded(probe, handle.aux, generation)) {
      counters_.retained_live_superseded.Add();  // the session got it, or newer, as retained
      continue;
    }
    const bool shared = (handle.value & kHandleShared) != 0;
    DeliverLocal(handle.aux, generation, static_cast<uint8_t>(handle.value & kHandleQosMask),
                 message, false, (handle.value & kHandleAclCheck) != 0, &references, shared,
                 /*may_reroute=*/shared && !rerouted, (handle.value & kHandleOptions) != 0);
  }
  // Only once its last record for this shard arrived are all of a message's deliveries here
  // (the records of one message may be drained in different loop iterations).
  if (persist_ && !rerouted && (record[1].value & kHandleLastRecord) != 0) {
    PersistArrived(origin_shard, origin_sequence);
  }
}

void Router::Flush() {
  if (acl_enabled_) ApplyAclReload();
  for (uint32_t index : slow_consumers_) {
    SessionEntry& entry = sessions_[index];
    if (!entry.session || entry.connection == nullptr ||
        entry.connection->state() != net::Connection::State::kOpen) {
      continue;  // already gone or closing (several messages may have found its queue full)
    }
    counters_.slow_consumer_disconnects.Add();
    RINGMQ_LOG_DEBUG("client %s disconnected: its queue is full",
                     entry.connection->shared_client_id().c_str());
    // What its window can take still goes out, before the close: a burst that filled the
    // queue before the session wrote anything must not leave it with nothing.
    if (entry.dirty) {
      entry.dirty = false;
      WriteSessionOutput(entry);
    }
    net::Connection& connection = *entry.connection;
    // At 5.0 told why (DISCONNECT 0x97 Quota exceeded, 5.0:3.14.2.1); at 3.1.x only closed.
    // Queues it in closing_ through OnClosing.
    connection.Disconnect(mqtt::ReasonCode::kQuotaExceeded, services_.now_ms(), context_);
    services_.ConnectionDirty(connection.tag());
  }
  slow_consumers_.clear();
  for (net::Connection* connection : closing_) OnConnectionClosed(*connection);
  closing_.clear();
  // After this iteration's SUBSCRIBEs: their retained deliveries from other shards get fenced.
  retained_fence_.TakeDueRequests([this](uint32_t origin) { outbox_.SendFenceRequest(origin); });
  outbox_.RetryOverflow();
  for (size_t i = 0; i < dirty_sessions_.size(); ++i) {
    SessionEntry& entry = sessions_[dirty_sessions_[i]];
    if (!entry.dirty) continue;  // written already (a slow consumer, above)
    entry.dirty = false;
    WriteSessionOutput(entry);
  }
  dirty_sessions_.clear();
}

void Router::WriteSessionOutput(SessionEntry& entry) {
  // A session with a job waiting is marked again when the job queues its SUBACK.
  if (!entry.session || entry.connection == nullptr || entry.job_pending) return;
  net::Connection& connection = *entry.connection;
  // Deliveries have their own share of the output cap (see ConnectionContext): replies are
  // bounded separately, so what is written here never leaves a reply without room.
  const size_t budget = context_.DeliveryBytesBudget();
  const size_t pending = connection.pending_output_bytes();
  if (pending >= budget) return;  // OnConnectionWritable marks it again
  ByteBuffer& out = connection.output_buffer();
  const Levels before = LevelsOf(*entry.session);
  session::WriteCounts sent;
  // A durable session's first sends log their packet ids (and discards), and its output then
  // waits for them (HoldIfLogged): a packet id the client saw is never lost in a crash.
  const uint32_t index = sessions_.IndexOfTag(connection.tag());
  std::optional<Persist::Log> log;
  if (persist_ && SidOf(index) != 0) {
    persist_->logged = false;
    persist_->sent_remote = false;
    log.emplace(*this, index);
  }
  const size_t written = entry.session->WriteOutput(
      out, out.size() + (budget - pending), &sent, services_.now_ms(),
      connection.outbound_topic_aliases(), log ? &*log : nullptr);
  // A QoS 2 PUBLISH leaves only once its packet id's record is durable (a crash must not resend
  // it under another id: the client would deliver it twice). QoS 1 deliveries are not held: a
  // resend after a crash, under any id, is what at least once allows. (A PUBREL waits behind
  // the hold its PUBREC's record made, OnPacket.)
  if (log && (log->qos2_sent() || sent.publishes_by_qos[2] != 0)) {  // resends too
    HoldIfLogged(connection, /*always=*/true);
  } else if (log) {
    persist_->logged = false;  // the packet ids of QoS 1 first sends: nothing to wait for
    persist_->sent_remote = false;
  }
  AccountLevels(before, *entry.session);  // discarded messages move the gauges too
  if (sent.expired != 0) counters_.messages_expired.Add(sent.expired);
  if (sent.too_large != 0) counters_.dropped_too_large_for_client.Add(sent.too_large);
  if (written == 0) return;
  if (sent.publishes_mqtt5 != 0) {
    counters_.publish_sent_mqtt5.Add(sent.publishes_mqtt5);
    if (sent.aliases_set != 0) counters_.topic_alias_out_set.Add(sent.aliases_set);
    if (sent.aliases_used != 0) counters_.topic_alias_out_used.Add(sent.aliases_used);
  }
  if (sent.publishes_by_qos[0] != 0) counters_.publish_sent_qos0.Add(sent.publishes_by_qos[0]);
  if (sent.publishes_by_qos[1] != 0) counters_.publish_sent_qos1.Add(sent.publishes_by_qos[1]);
  if (sent.publishes_by_qos[2] != 0) counters_.publish_sent_qos2.Add(sent.publishes_by_qos[2]);
  counters_.bytes_delivered.Add(written);
  services_.ConnectionDirty(connection.tag());
}

void Router::RingDoorbells() {
  outbox_.RingDoorbells([this](uint32_t destination) { services_.RingDoorbell(destination); });
}

}  // namespace ringmq::shard
