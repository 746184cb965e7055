// Router: client ids across nodes (router.h, "Client ids across nodes"; docs/cluster.md).
#include <time.h>

#include <algorithm>
#include <memory>
#include <span>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "cluster/claim.h"
#include "cluster/control.h"
#include "cluster/session_state.h"
#include "common/assert.h"
#include "common/log.h"
#include "message/message.h"
#include "shard/cluster_owner.h"
#include "shard/router.h"
#include "shard/router_cluster.h"

namespace ringmq::shard {
namespace {

// Claim keys start from the wall clock (cluster/claim.h, "Clock"): nodes compare them, so a
// monotonic clock, whose origin is per machine, would not do.
uint64_t WallMicros() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

// The batch windows' clock (cluster_owner.h, "Batches"): read when a batch starts and, while
// one is held, once per loop iteration.
uint64_t MonotonicMicros() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

// The state of a session is sent in one NATS message: at most the server's max_payload (before
// the first INFO, NATS's default of 1 MiB).
constexpr size_t kDefaultStateBytesMax = 1024 * 1024;

// What a message moved from another node carries for 5.0 deliveries (cluster/session_state.h,
// "MQTT 5.0 message properties"): its block as the old node held it, and a deadline on this
// node's clock from the time left (MQTT-3.3.2-6), bounded by this node's max_message_expiry
// (0: none) as a message from another node is (Router::ClusterMqtt5Fields). 0 ms left is a
// deadline already passed (not 0, which means none), so a queued copy is not sent.
message::Mqtt5Fields MovedMqtt5Fields(const cluster::StateMessage& state, uint64_t now_ms,
                                      uint32_t max_message_expiry_s) {
  message::Mqtt5Fields fields{
      .properties = std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(state.properties.data()), state.properties.size()),
      .expiry_deadline_ms = 0};
  if (!state.expires) return fields;
  uint64_t left_ms = state.expiry_left_ms;
  if (max_message_expiry_s != 0) {
    left_ms = std::min<uint64_t>(left_ms, uint64_t{max_message_expiry_s} * 1000);
  }
  fields.expiry_deadline_ms = left_ms != 0 ? now_ms + left_ms : std::max<uint64_t>(now_ms, 1);
  return fields;
}

}  // namespace

absl::Status Router::StartClusterOwnership(const ClaimBatchOptions& options) {
  RINGMQ_ASSERT(cluster_ != nullptr && ownership_ == nullptr);
  auto ownership = std::make_unique<ClusterOwnership>(options);
  for (const uint32_t group : ClusterOwnership::BucketsOf(shard_, shard_count_)) {
    ownership->subject.clear();
    cluster::AppendClaimSubject(cluster_->prefix, group, ownership->subject);
    absl::StatusOr<uint64_t> sid = cluster_->link->Subscribe(ownership->subject, "");
    if (!sid.ok()) return sid.status();
    ownership->AddSid(*sid);
  }
  const std::string shard = std::to_string(shard_);
  cluster::AppendControlSubject(cluster_->prefix, cluster::kSessionKind,
                                {cluster_->node_name, shard}, ownership->state_subject);
  absl::StatusOr<uint64_t> sid = cluster_->link->Subscribe(ownership->state_subject, "");
  if (!sid.ok()) return sid.status();
  ownership->set_state_sid(*sid);
  ownership_ = std::move(ownership);
  return absl::OkStatus();
}

void Router::ClaimOnConnect(uint32_t index, const mqtt::Connect& connect) {
  ClusterOwnership& ownership = *ownership_;
  // A server-assigned id (the CONNECT's was empty) is 128 random bits no other node holds; a
  // 5.0 client that comes back with it elsewhere claims it there (key 0 here: any claim wins).
  if (connect.client_id.empty()) {
    ownership.SetKey(index, 0);
    return;
  }
  const uint64_t key = ownership.clock().Next(WallMicros());
  ownership.SetKey(index, key);
  PublishClaim(key, connect.clean_session, sessions_[index].session->client_id());
}

void Router::PublishClaim(uint64_t key, bool clean_start, std::string_view client_id) {
  ClusterOwnership& ownership = *ownership_;
  if (const std::optional<ClusterOwnership::FlushReason> reason =
          ownership.FullBefore(client_id.size())) {
    SendClaimBatch(*reason);
  }
  const uint64_t now_us = ownership.batch_empty() ? MonotonicMicros() : 0;
  ownership.Add(cluster_->node_name, key, clean_start, client_id, now_us);
  // Sent by ClaimStep at the end of a loop iteration once due: at the window's end, or in this
  // iteration if the window is 0 or a claim in the batch resumes its session.
}

void Router::ClaimStep() {
  if (ownership_ == nullptr || ownership_->batch_empty()) return;
  ClaimStep(MonotonicMicros());
}

void Router::ClaimStep(uint64_t now_us) {
  if (ownership_ == nullptr || ownership_->batch_empty()) return;
  if (now_us < ownership_->batch_due_us()) return;
  // A batch with a claim that resumes its session is due at once (cluster_owner.h, "Batches").
  SendClaimBatch(ownership_->batch_resumes() ? ClusterOwnership::FlushReason::kResume
                                             : ClusterOwnership::FlushReason::kWindow);
}

uint32_t Router::ClaimWaitMs(uint32_t longest_ms) const {
  if (ownership_ == nullptr || ownership_->batch_empty()) return longest_ms;
  const uint64_t now_us = MonotonicMicros();
  const uint64_t due_us = ownership_->batch_due_us();
  if (now_us >= due_us) return 0;
  const uint64_t wait_ms = (due_us - now_us + 999) / 1000;  // not before the window ends
  return wait_ms < longest_ms ? static_cast<uint32_t>(wait_ms) : longest_ms;
}

void Router::SendClaimBatch(ClusterOwnership::FlushReason reason) {
  ClusterOwnership& ownership = *ownership_;
  Cluster& c = *cluster_;
  RINGMQ_ASSERT(!ownership.batch_empty());
  switch (reason) {
    case ClusterOwnership::FlushReason::kWindow:
      counters_.cluster_owner_batches_window.Add();
      break;
    case ClusterOwnership::FlushReason::kCount:
      counters_.cluster_owner_batches_count.Add();
      break;
    case ClusterOwnership::FlushReason::kBytes:
      counters_.cluster_owner_batches_bytes.Add();
      break;
    case ClusterOwnership::FlushReason::kResume:
      counters_.cluster_owner_batches_resume.Add();
      break;
  }
  ownership.subject.clear();
  cluster::AppendClaimSubject(c.prefix, cluster::ClaimGroupOf(shard_), ownership.subject);
  // A claimant that means to resume its session asks for its state (see StartClusterOwnership):
  // the reply subject is the shard's, the same for every claim of the batch; a node answers
  // only for `p` claims.
  const std::string_view reply =
      ownership.batch_resumes() ? std::string_view(ownership.state_subject) : std::string_view();
  const size_t claims = ownership.batch_claims();
  switch (c.link->Publish(ownership.subject, {}, ownership.batch_payload(), reply)) {
    case cluster::PublishResult::kQueued:
    case cluster::PublishResult::kHeld:
      counters_.cluster_owner_claims_sent.Add(claims);
      break;
    case cluster::PublishResult::kNoRoom:
    case cluster::PublishResult::kTooLarge:
    case cluster::PublishResult::kInvalid:
      counters_.cluster_owner_claims_refused.Add(claims);
      break;
  }
  ownership.ClearBatch();
}

bool Router::OnClaimMessage(const cluster::NatsMessage& message) {
  // By sid, not by subject: a data subscription to ">" (an MQTT "#" without a prefix) also
  // gets claim subjects; OnClusterMessage drops that copy as a '$' subject.
  if (ownership_ == nullptr) return false;
  if (ownership_->IsStateSid(message.sid)) {
    OnSessionState(message.payload);
    return true;
  }
  if (!ownership_->IsClaimSid(message.sid)) return false;
  cluster::ClaimBatchReader reader;
  if (!reader.Open(message.payload)) {
    counters_.cluster_owner_claims_invalid.Add();
    return true;
  }
  // Our own claims, through another shard's link (echo off is per connection).
  if (reader.node() == cluster_->node_name) return true;
  counters_.cluster_owner_batches_received.Add();
  cluster::Claim claim;
  while (reader.Next(claim)) {
    counters_.cluster_owner_claims_received.Add();
    const uint32_t home = HomeShard(claim.client_id);
    if (home == shard_) {
      HandleClaim(claim, message.reply);
      continue;
    }
    counters_.cluster_owner_claims_forwarded.Add();
    auto* record = new ClaimRecord{.key = claim.key,
                                   .node = std::string(claim.node),
                                   .clean_start = claim.clean_start,
                                   .client_id = std::string(claim.client_id),
                                   .reply = std::string(message.reply)};
    const Slot slots[] = {Slot{kClaim, 0, reinterpret_cast<uint64_t>(record)}};
    outbox_.Push(home, slots,
                 sizeof(ClaimRecord) + record->node.size() + record->client_id.size() +
                     record->reply.size());
  }
  return true;
}

void Router::HandleClaim(const cluster::Claim& claim, std::string_view reply) {
  RINGMQ_ASSERT(ownership_ != nullptr && HomeShard(claim.client_id) == shard_);
  ClusterOwnership& ownership = *ownership_;
  // A CONNECT here after this claim arrived is newer than it (cluster/claim.h, "Clock").
  ownership.clock().Observe(claim.key);
  const uint32_t index = sessions_.Find(claim.client_id);
  if (index == kNone) return;
  SessionEntry& entry = sessions_[index];
  const uint64_t own_key = ownership.key(index);
  if (ClusterOwnership::Judge(claim, own_key, cluster_->node_name) ==
      ClusterOwnership::Verdict::kYield) {
    YieldToClaim(index, claim, reply);
    return;
  }
  counters_.cluster_owner_claims_kept.Add();
  // The claimant may not have seen our claim (lost while NATS was unreachable, or crossing
  // with its own): it gets ours again, and its connection yields to it.
  if (entry.connection != nullptr) {
    PublishClaim(own_key, entry.session->clean_session(), claim.client_id);
  }
}

void Router::YieldToClaim(uint32_t index, const cluster::Claim& claim, std::string_view reply) {
  SessionEntry& entry = sessions_[index];
  if (entry.connection != nullptr) {
    // As a takeover on one node (ResumeOrEnd): unless the old connection sent DISCONNECT, its
    // will falls due (MQTT-3.1.4-2, MQTT-3.1.2-8); a 5.0 client is told 0x8E.
    net::Connection* old = entry.connection;
    const bool graceful = old->disconnected_gracefully();
    if (!graceful) {
      counters_.cluster_owner_takeovers.Add();
      if (LogLevel level; context_.event_log.Admit(services_.now_ms(), &level)) {
        const std::string id =
            absl::CHexEscape(absl::string_view(claim.client_id.data(), claim.client_id.size()));
        LogLine(level, "client %s taken over by a connection on node %.*s", id.c_str(),
                static_cast<int>(claim.node.size()), claim.node.data());
      }
    }
    sessions_.BindTag(old->tag(), kNone);
    ApplyDisconnectExpiry(index, *old);
    Detach(index, /*will_due=*/!graceful);
    old->Disconnect(mqtt::ReasonCode::kSessionTakenOver, services_.now_ms(), context_);
    services_.ConnectionDirty(old->tag());
  }
  // The client id's session is the claimant's now. A persistent one it resumes (clean session /
  // Clean Start 0, as ResumeOrEnd resumes one on this node) goes there; any other ends.
  if (!claim.clean_start && expiry_s_[index] != 0) {
    if (reply.empty()) {
      counters_.cluster_owner_sessions_not_moved.Add();
    } else {
      SendSessionState(index, claim.key, reply);
      // 5.0:MQTT-3.1.3-9: the session resumed before its will's delay ran out.
      if (entry.session->will()) {
        counters_.wills_cancelled.Add();
        entry.session->will().reset();
      }
    }
    // The claimant writes the session's record once its CONNACK goes: none to delete here.
    if (cluster_sessions_ != nullptr) DeleteSessionRecord(index, /*moving=*/!reply.empty());
  } else {
    counters_.cluster_owner_sessions_ended.Add();
  }
  DestroySession(index);
}

void Router::SendSessionState(uint32_t index, uint64_t key, std::string_view reply) {
  ClusterOwnership& ownership = *ownership_;
  Cluster& c = *cluster_;
  const session::Session& session = *sessions_[index].session;
  const int64_t server_max = c.link->server_info().max_payload;
  const size_t max_bytes = server_max > 0 ? static_cast<size_t>(server_max) : kDefaultStateBytesMax;
  const uint64_t now_ms = services_.now_ms();
  cluster::SessionStateWriter writer;
  if (!writer.Begin(ownership.payload, max_bytes, key, session.client_id())) {
    counters_.cluster_owner_sessions_not_moved.Add();
    return;
  }
  for (const auto& [filter, options] : session.subscriptions()) {
    writer.AddSubscription(
        {.filter = filter,
         .options = static_cast<uint8_t>(options.qos | (options.no_local ? 0x04 : 0) |
                                         (options.retain_as_published ? 0x08 : 0)),
         .identifier = options.identifier});
  }
  // In-flight deliveries keep their packet ids and stage, and the inbound QoS 2 ids go too
  // (MQTT-4.3.3, MQTT-4.4.0-1): the new node resends or releases them as this one would have.
  session.ForEachDelivery([&](const message::Message* message, uint8_t qos, bool retain,
                              uint16_t packet_id, bool released) {
    if (released) {
      writer.AddMessage({.topic = {},
                         .payload = {},
                         .qos = 2,
                         .retain = false,
                         .packet_id = packet_id,
                         .stage = cluster::StateStage::kReleased,
                         .properties = {},
                         .expires = false,
                         .expiry_left_ms = 0});
      return;
    }
    if (message == nullptr) return;
    // 5.0:3.3.2.3.3: a queued message whose interval passed is not sent, here or there; one in
    // flight has started its delivery and goes with 0 ms left, as this node would resend it.
    if (packet_id == 0 && message->ExpiredAt(now_ms)) {
      counters_.messages_expired.Add();
      return;
    }
    const std::span<const uint8_t> payload = message->payload();
    const std::span<const uint8_t> properties = message->properties();
    const uint64_t deadline_ms = message->expiry_deadline_ms();
    writer.AddMessage(
        {.topic = message->topic(),
         .payload = std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()),
         .qos = qos,
         .retain = retain,
         .packet_id = packet_id,
         .stage = packet_id != 0 ? cluster::StateStage::kInFlight : cluster::StateStage::kQueued,
         .properties =
             std::string_view(reinterpret_cast<const char*>(properties.data()), properties.size()),
         .expires = message->has_expiry(),
         .expiry_left_ms = deadline_ms > now_ms ? deadline_ms - now_ms : 0});
  });
  session.ForEachInboundQos2([&](uint16_t packet_id) { writer.AddInboundQos2(packet_id); });
  writer.End();
  counters_.cluster_owner_state_left_out.Add(writer.left_out());
  switch (c.link->Publish(reply, {}, ownership.payload)) {
    case cluster::PublishResult::kQueued:
    case cluster::PublishResult::kHeld:
      counters_.cluster_owner_sessions_moved.Add();
      return;
    case cluster::PublishResult::kNoRoom:
    case cluster::PublishResult::kTooLarge:
    case cluster::PublishResult::kInvalid:
      counters_.cluster_owner_sessions_not_moved.Add();
      return;
  }
}

void Router::OnSessionState(std::string_view bytes) {
  uint32_t index = kNone;
  uint32_t generation = 0;
  // The in-flight state is restored as it was (packet ids, stage) only into a session no
  // connection has used yet: the CONNECT held for it (router_cluster_session.cc) or one whose
  // client left before its CONNACK. Otherwise the client may have reused those packet ids
  // already: in-flight deliveries are queued anew, released ones and inbound ids dropped.
  // With persistence, every restored entry is logged as recovery rebuilds it (PersistRestored:
  // the same records a snapshot writes), so a restart of this node recovers the same state.
  bool restore = false;
  int64_t restored = 0;
  // The packet ids restored in flight: a state naming one twice (no writer does) has the
  // second queued anew (a log with two deliveries of one packet id is inconsistent, state.h).
  absl::flat_hash_set<uint16_t> restored_ids;
  const bool well_formed = cluster::ParseSessionState(
      bytes,
      [&](uint64_t key, std::string_view client_id) {
        // The state answers the claim of the session bound here then; a session that has
        // claimed again since (or ended) is not that session.
        index = sessions_.Find(client_id);
        if (index == kNone || HomeShard(client_id) != shard_ || ownership_->key(index) != key) {
          index = kNone;
          counters_.cluster_owner_states_stale.Add();
          return false;
        }
        generation = sessions_[index].generation;
        const session::Session& session = *sessions_[index].session;
        restore = sessions_[index].connection == nullptr && !session.online() &&
                  session.inflight() == 0 && session.inbound_qos2_pending() == 0 &&
                  session.queued_messages() == 0;
        // The session created for a held CONNECT is durable only from its CONNACK on
        // (BindConnect): what merges into it now is logged, so it becomes durable here (its
        // kSession is written again at the CONNACK with the client's terms).
        if (persist_ != nullptr && SidOf(index) == 0 && expiry_s_[index] != 0) {
          PersistSession(index);
          if (offline_.Contains(index)) PersistOffline(index);  // its client left meanwhile
        }
        return true;
      },
      [&](const cluster::StateSubscription& subscription) {
        // Retain Handling 2: the retained messages were the client's when it subscribed.
        SubscribeOne(index, subscription.filter, subscription.options | 0x20,
                     subscription.identifier);
      },
      [&](const cluster::StateMessage& state) {
        session::Session& session = *sessions_[index].session;
        const bool restorable = restore && state.stage != cluster::StateStage::kQueued &&
                                restored_ids.insert(state.packet_id).second;
        if (state.stage == cluster::StateStage::kReleased) {
          // PUBREC arrived on the old node: the PUBREL is due (MQTT-4.3.3).
          if (restorable) {
            session.RestoreInflight(message::MessageRef(), 2, false, state.packet_id, true);
            if (persist_ != nullptr) PersistRestored(index, nullptr, 2, false, state.packet_id);
            ++restored;
          } else {
            counters_.cluster_session_inflight_dropped.Add();  // the client has it already
          }
          return;
        }
        const auto* payload = reinterpret_cast<const uint8_t*>(state.payload.data());
        message::MessageRef message = message::MessageRef::Create(
            state.topic, std::span<const uint8_t>(payload, state.payload.size()), state.qos,
            state.retain, NextOrigin(),
            MovedMqtt5Fields(state, services_.now_ms(), max_message_expiry_s_));
        if (state.stage == cluster::StateStage::kInFlight) {
          if (restorable) {  // resent with DUP and its packet id at the Attach (MQTT-4.4.0-1)
            if (persist_ != nullptr) {
              PersistRestored(index, message.get(), state.qos, state.retain, state.packet_id);
            }
            session.RestoreInflight(std::move(message), state.qos, state.retain,
                                    state.packet_id, false);
            ++restored;
            return;
          }
          counters_.cluster_session_inflight_requeued.Add();
        }
        DeliverLocal(index, generation, state.qos, message.get(), state.retain,
                     /*acl_check=*/false);
      },
      [&](uint16_t packet_id) {
        // A PUBLISH the client resends with this id is not delivered again (MQTT-4.3.3).
        if (!restore ||
            sessions_[index].session->BeginInboundQos2(packet_id) != session::InboundQos2::kNew) {
          counters_.cluster_session_inflight_dropped.Add();  // bound already, twice, or the bound
          return;
        }
        if (persist_ != nullptr) {
          PersistPacketId(index, persist::RecordType::kInboundQos2, packet_id);
        }
      });
  if (!well_formed) {
    counters_.cluster_owner_states_invalid.Add();
    return;
  }
  if (index != kNone) {
    // Restored entries are in flight (released ones too): the inbound ids are not counted in
    // the gauges, only in the counter.
    if (restored != 0) counters_.gauges.inflight_messages.Add(restored);
    if (restore) {
      counters_.cluster_session_inflight_restored.Add(
          static_cast<uint64_t>(restored) + sessions_[index].session->inbound_qos2_pending());
    }
    counters_.cluster_owner_states_merged.Add();
    OnSessionMerged(index);  // a CONNACK waiting for this state (router_cluster_session.cc)
  }
}

}  // namespace ringmq::shard
