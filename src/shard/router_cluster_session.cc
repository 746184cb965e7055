// Router: persistent sessions across nodes (session lane; router.h "Persistent sessions across
// nodes"; shard/cluster_sessions.h; cluster/session_record.h; docs/cluster.md "Where a
// persistent session lives").
//
// A persistent CONNECT (clean session / Clean Start 0 with a session expiry) for a client id
// with no session on this node may be resuming a session another node holds. The claim
// (router_cluster_owner.cc) makes that node yield the session and send its state; the CONNACK
// must say whether a session is present (MQTT-3.2.2-2, 5.0:MQTT-3.2.2-2/3), so it waits:
//   - the node reads the id's ownership record from the JetStream key-value bucket (one message
//     get, answered by the stream's leader: cluster/session_record.h, "Reading"; a read, not a
//     replicated write) and claims the id at once;
//   - no record, or one naming this node: CONNACK session present 0 right after the read;
//   - the state arrives (merged into the session created for the CONNECT): session present 1,
//     whatever the record said or whether it was read yet;
//   - a record naming another node and no state within session_wait_ms: session present 0. A
//     state arriving later still merges (as it did before the wait existed): nothing the old
//     node had acknowledged is lost, the client only learns of it by receiving it.
// Clean CONNECTs, persistent ones resumed on this node, and every CONNECT while the bucket is
// not ready (no JetStream, NATS unreachable) do not wait: one branch.
//
// Records: when a persistent session starts on this node (created or moved here), the node
// writes the record (node name, claim key) with a PubAck to its inbox, counted.
#include <time.h>

#include <algorithm>
#include <charconv>
#include <string>
#include <string_view>

#include "cluster/control.h"
#include "cluster/jetstream.h"
#include "cluster/nats_protocol.h"
#include "cluster/session_record.h"
#include "common/assert.h"
#include "common/log.h"
#include "shard/cluster_owner.h"
#include "shard/router.h"
#include "shard/router_cluster.h"

namespace ringmq::shard {
namespace {

// Claim keys come from the wall clock (cluster/claim.h, "Clock").
uint64_t WallMicrosNow() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

// JetStream answers a stream creation in milliseconds; none comes (or "no responders") while
// its meta leader is being elected, which takes seconds after the servers start. A failed
// creation is asked again after kBucketRetryMinMs, doubling up to kBucketRetryMaxMs: a shard
// whose first request came too early learns of the bucket soon after it exists (with one fixed
// 5 s pause, a shard answered persistent CONNECTs without the record for up to 7 s after its
// peers had the bucket), and one without JetStream asks every 5 s.
constexpr uint64_t kBucketRequestTimeoutMs = 2000;
constexpr uint64_t kBucketRetryMinMs = 250;
constexpr uint64_t kBucketRetryMaxMs = 5000;
// The replicas of the bucket: min(3, NATS servers the link knows), as for the retained stream.
constexpr size_t kReplicasMax = 3;

// The inbox's suffixes: ".c" bucket creation, ".w.<index>.<generation>" the record write of
// session index (of that generation), ".d" record deletions, ".g.<n>" record read n.
constexpr std::string_view kCreateSuffix = "c";
constexpr std::string_view kWritePrefix = "w.";
constexpr std::string_view kDeleteSuffix = "d";
constexpr std::string_view kReadPrefix = "g.";

// "<a>.<b>" of decimal numbers, nothing else.
bool ParseTwoNumbers(std::string_view text, uint64_t& a, uint64_t& b) {
  const size_t dot = text.find('.');
  if (dot == std::string_view::npos) return false;
  const std::string_view first = text.substr(0, dot), second = text.substr(dot + 1);
  const auto [end_a, ec_a] = std::from_chars(first.data(), first.data() + first.size(), a);
  const auto [end_b, ec_b] = std::from_chars(second.data(), second.data() + second.size(), b);
  return ec_a == std::errc() && end_a == first.data() + first.size() && !first.empty() &&
         ec_b == std::errc() && end_b == second.data() + second.size() && !second.empty();
}

}  // namespace

void Router::SessionsTick(uint64_t now_ms) {
  if (ownership_ == nullptr) return;
  Cluster& c = *cluster_;
  if (cluster_sessions_ == nullptr) {
    cluster_sessions_ = std::make_unique<ClusterSessions>();
    cluster_sessions_->bucket_name = cluster::SessionBucketName(c.prefix);
    cluster_sessions_->inbox =
        cluster::ControlSubject(c.prefix, "kv", {c.node_name, std::to_string(shard_)});
    cluster_sessions_->wait_ms = session_wait_ms_;
  }
  ClusterSessions& s = *cluster_sessions_;
  if (s.bucket == ClusterSessions::Bucket::kRequested && now_ms >= s.bucket_deadline_ms) {
    BucketUnavailable(now_ms);  // no answer: asked again later
  }
  if (s.bucket == ClusterSessions::Bucket::kUnknown && now_ms >= s.bucket_deadline_ms &&
      c.link->ready() && session_wait_ms_ != 0) {
    if (s.inbox_sid == 0) {
      absl::StatusOr<uint64_t> sid = c.link->Subscribe(s.inbox + ".>", "");
      RINGMQ_ASSERT(sid.ok());  // built from valid tokens
      s.inbox_sid = *sid;
    }
    s.subject.clear();
    cluster::AppendSessionBucketCreateSubject(s.bucket_name, s.subject);
    s.payload.clear();
    const auto replicas =
        static_cast<uint32_t>(std::clamp<size_t>(c.link->server_count(), 1, kReplicasMax));
    cluster::AppendSessionBucketCreate(s.bucket_name, replicas, s.payload);
    const std::string reply = s.inbox + "." + std::string(kCreateSuffix);
    if (c.link->Publish(s.subject, {}, s.payload, reply) == cluster::PublishResult::kQueued) {
      s.bucket = ClusterSessions::Bucket::kRequested;
      s.bucket_deadline_ms = now_ms + kBucketRequestTimeoutMs;
    } else {
      BucketUnavailable(now_ms);
    }
  }
  // Waits whose deadline passed: session present 0 (a state arriving later still merges).
  while (!s.empty()) {
    ClusterSessions::Wait* due = s.FindDue(now_ms);
    if (due == nullptr) break;
    counters_.cluster_session_timeouts.Add();
    CompleteHeld(due, /*moved=*/false);
  }
}

void Router::BucketUnavailable(uint64_t now_ms) {
  ClusterSessions& s = *cluster_sessions_;
  counters_.cluster_session_bucket_unavailable.Add();
  s.bucket = ClusterSessions::Bucket::kUnknown;
  s.bucket_retry_ms = std::clamp(s.bucket_retry_ms * 2, kBucketRetryMinMs, kBucketRetryMaxMs);
  s.bucket_deadline_ms = now_ms + s.bucket_retry_ms;
}

bool Router::HoldConnack(net::Connection& connection, BindTerms& terms) {
  RINGMQ_ASSERT(cluster_sessions_ != nullptr && ownership_ != nullptr);
  ClusterSessions& s = *cluster_sessions_;
  Cluster& c = *cluster_;
  const std::string_view client_id = connection.client_id();
  // Only a CONNECT that resumes a session could find one elsewhere (MQTT-3.1.2-4).
  if (terms.clean_session || terms.expiry_s == 0) return false;
  if (!c.link->ready() || !cluster::HasSessionRecord(client_id)) return false;
  if (s.bucket != ClusterSessions::Bucket::kReady) {  // no JetStream, or not known yet
    counters_.cluster_session_no_bucket.Add();
    return false;
  }
  if (s.full()) {
    counters_.cluster_session_not_held.Add();
    return false;
  }
  const uint64_t request = s.NextRequest();
  s.subject.clear();
  cluster::AppendSessionRecordGetSubject(s.bucket_name, s.subject);
  s.payload.clear();
  cluster::AppendSessionRecordGet(s.bucket_name, client_id, s.payload);
  const std::string reply = s.inbox + "." + std::string(kReadPrefix) + std::to_string(request);
  if (c.link->Publish(s.subject, {}, s.payload, reply) != cluster::PublishResult::kQueued) {
    counters_.cluster_session_read_errors.Add();
    return false;
  }
  // The session the state merges into: created now, bound when the CONNACK goes. Its claim
  // goes out now, so that the node holding the session yields it while the record is read.
  const uint32_t index = CreateSession(connection.shared_client_id(), /*clean_session=*/false);
  expiry_s_[index] = terms.expiry_s;
  if (acl_enabled_) {  // the merged subscriptions are classified for this client's user name
    sessions_[index].acl = std::make_unique<ConnectionAcl>();
    sessions_[index].acl->user_name = terms.user_name;
  }
  const uint64_t key = ownership_->clock().Next(WallMicrosNow());
  ownership_->SetKey(index, key);
  PublishClaim(key, /*clean_start=*/false, client_id);
  s.Add({.connection = &connection,
         .index = index,
         .generation = sessions_[index].generation,
         .request = request,
         .deadline_ms = services_.now_ms() + session_wait_ms_,
         .terms = std::move(terms)});
  connection.Pause();  // its later packets wait for the CONNACK
  counters_.cluster_session_held.Add();
  return true;
}

void Router::CompleteHeld(ClusterSessions::Wait* wait, bool moved) {
  ClusterSessions::Wait held = cluster_sessions_->Take(wait);
  net::Connection& connection = *held.connection;
  SessionEntry& entry = sessions_[held.index];
  // Meanwhile another connection of this node may have taken the session (a CONNECT resumed
  // it), or a newer claim from another node ended it: this connection lost the id.
  const bool ours = entry.session.has_value() && entry.generation == held.generation &&
                    entry.connection == nullptr &&
                    sessions_.Find(connection.client_id()) == held.index;
  if (!ours) {
    counters_.cluster_session_taken_over.Add();
    connection.Disconnect(mqtt::ReasonCode::kSessionTakenOver, services_.now_ms(), context_);
    services_.ConnectionDirty(connection.tag());
    connection.Resume(services_.now_ms(), context_);  // closing: nothing is processed
    return;
  }
  if (moved) counters_.cluster_session_moved.Add();
  BindConnect(connection, held.index, /*session_present=*/moved, std::move(held.terms));
  WriteSessionRecord(held.index);
  MarkSessionDirty(held.index);  // the moved session's deliveries go after the CONNACK
  services_.ConnectionDirty(connection.tag());
  connection.Resume(services_.now_ms(), context_);
}

void Router::OnSessionMerged(uint32_t index) {
  if (cluster_sessions_ == nullptr || cluster_sessions_->empty()) return;
  ClusterSessions::Wait* wait = cluster_sessions_->FindByIndex(index);
  if (wait == nullptr || sessions_[index].generation != wait->generation) return;
  CompleteHeld(wait, /*moved=*/true);
}

void Router::ForgetSessionWait(net::Connection& connection) {
  ClusterSessions::Wait* wait = cluster_sessions_->FindByConnection(&connection);
  if (wait == nullptr) return;
  counters_.cluster_session_abandoned.Add();
  const ClusterSessions::Wait held = cluster_sessions_->Take(wait);
  SessionEntry& entry = sessions_[held.index];
  if (!entry.session.has_value() || entry.generation != held.generation ||
      entry.connection != nullptr) {
    return;  // no longer the session created for it
  }
  // The client went before its CONNACK: the session stays as an offline persistent session
  // (a state on its way still merges into it). Its will goes with the CONNECT that carried it:
  // the client was never told it had connected.
  GoOffline(held.index);
}

void Router::WriteSessionRecord(uint32_t index) {
  ClusterSessions& s = *cluster_sessions_;
  Cluster& c = *cluster_;
  const session::Session& session = *sessions_[index].session;
  if (session.clean_session() || expiry_s_[index] == 0) return;  // no record: nothing to find
  if (s.bucket != ClusterSessions::Bucket::kReady || !c.link->ready() ||
      !cluster::HasSessionRecord(session.client_id())) {
    counters_.cluster_session_records_skipped.Add();
    return;
  }
  s.subject.clear();
  cluster::AppendSessionRecordSubject(s.bucket_name, session.client_id(), s.subject);
  s.payload.clear();
  cluster::EncodeSessionRecord({.node = c.node_name, .key = ownership_->key(index)}, s.payload);
  s.recorded.erase(index);  // a new write: the old sequence is not this record's any more
  const std::string reply = s.inbox + "." + std::string(kWritePrefix) + std::to_string(index) +
                            "." + std::to_string(sessions_[index].generation);
  switch (c.link->Publish(s.subject, {}, s.payload, reply)) {
    case cluster::PublishResult::kQueued:
    case cluster::PublishResult::kHeld:
      counters_.cluster_session_records_written.Add();
      return;
    case cluster::PublishResult::kNoRoom:
    case cluster::PublishResult::kTooLarge:
    case cluster::PublishResult::kInvalid:
      counters_.cluster_session_record_errors.Add();
      return;
  }
}

void Router::DeleteSessionRecord(uint32_t index, bool moving) {
  if (cluster_sessions_ == nullptr) return;
  ClusterSessions& s = *cluster_sessions_;
  const auto found = s.recorded.find(index);
  if (found == s.recorded.end()) return;
  const ClusterSessions::Recorded recorded = found->second;
  s.recorded.erase(found);
  Cluster& c = *cluster_;
  const session::Session& session = *sessions_[index].session;
  // Moving to the node that claimed it: that node writes the record (no delete to pay).
  if (moving || recorded.generation != sessions_[index].generation || !c.link->ready() ||
      !cluster::HasSessionRecord(session.client_id())) {
    return;
  }
  // A KV delete marker (what the NATS clients' Delete writes), only over our own record: the
  // expected last sequence makes JetStream refuse it if another node wrote after us.
  s.subject.clear();
  cluster::AppendSessionRecordSubject(s.bucket_name, session.client_id(), s.subject);
  const std::string seq = std::to_string(recorded.seq);
  const cluster::nats::HeaderField headers[] = {{"KV-Operation", "DEL"},
                                                {"Nats-Expected-Last-Subject-Sequence", seq}};
  const std::string reply = s.inbox + "." + std::string(kDeleteSuffix);
  if (c.link->Publish(s.subject, headers, {}, reply) != cluster::PublishResult::kQueued) {
    counters_.cluster_session_record_errors.Add();
  }
}

bool Router::OnSessionInboxMessage(const cluster::NatsMessage& message) {
  if (cluster_sessions_ == nullptr || cluster_sessions_->inbox_sid == 0 ||
      message.sid != cluster_sessions_->inbox_sid) {
    return false;
  }
  ClusterSessions& s = *cluster_sessions_;
  std::string_view suffix = message.subject;
  if (!suffix.starts_with(s.inbox) || suffix.size() <= s.inbox.size() + 1) return true;
  suffix.remove_prefix(s.inbox.size() + 1);
  int status = 0;
  if (!message.headers.empty()) {
    absl::StatusOr<cluster::nats::HeaderBlock> block =
        cluster::nats::ParseHeaderBlock(message.headers);
    status = block.ok() ? block->status : -1;
  }
  if (suffix.starts_with(kReadPrefix)) {
    suffix.remove_prefix(kReadPrefix.size());
    uint64_t request = 0;
    const auto [end, ec] = std::from_chars(suffix.data(), suffix.data() + suffix.size(), request);
    if (ec != std::errc() || end != suffix.data() + suffix.size()) return true;
    ClusterSessions::Wait* wait = s.FindByRequest(request);
    if (wait == nullptr) return true;  // answered by the state already, or timed out
    wait->request = 0;
    cluster::SessionRecord record;
    const cluster::RecordRead read =
        status == 0 ? cluster::ParseSessionRecordReply(message.payload, s.record_scratch, record)
                    : cluster::RecordRead::kError;  // 408, 503 (no responders: no JetStream)
    if (read == cluster::RecordRead::kNone) {  // no node holds a session for the id
      counters_.cluster_session_none.Add();
      CompleteHeld(wait, /*moved=*/false);
      return true;
    }
    if (read == cluster::RecordRead::kError) {
      counters_.cluster_session_read_errors.Add();
      CompleteHeld(wait, /*moved=*/false);
      return true;
    }
    if (record.node == cluster_->node_name) {  // ours, and gone (we hold no session)
      counters_.cluster_session_none.Add();
      CompleteHeld(wait, /*moved=*/false);
    }
    // Another node holds it: the state follows the claim (or the deadline passes).
    return true;
  }
  absl::StatusOr<cluster::jetstream::ApiReply> reply =
      status == 0 ? cluster::jetstream::ParseApiReply(message.payload)
                  : absl::StatusOr<cluster::jetstream::ApiReply>(
                        absl::UnavailableError("no responders"));
  const bool ok = reply.ok() && !reply->has_error;
  if (suffix.starts_with(kWritePrefix)) {
    (ok ? counters_.cluster_session_records_acked : counters_.cluster_session_record_errors).Add();
    uint64_t index = 0, generation = 0;
    if (ok && reply->seq != 0 &&
        ParseTwoNumbers(suffix.substr(kWritePrefix.size()), index, generation) &&
        index <= UINT32_MAX && generation <= UINT32_MAX &&
        sessions_.Find(static_cast<uint32_t>(index), static_cast<uint32_t>(generation)) !=
            nullptr) {
      s.recorded[static_cast<uint32_t>(index)] = {.generation = static_cast<uint32_t>(generation),
                                                  .seq = reply->seq};
    }
    return true;
  }
  if (suffix == kDeleteSuffix) {
    // 10071: the last sequence was not ours (another node wrote a newer record): kept.
    const bool newer = reply.ok() && reply->has_error &&
                       reply->error_err_code == cluster::jetstream::kErrWrongLastSequence;
    (ok ? counters_.cluster_session_records_deleted
        : newer ? counters_.cluster_session_records_kept : counters_.cluster_session_record_errors)
        .Add();
    return true;
  }
  if (suffix == kCreateSuffix && s.bucket == ClusterSessions::Bucket::kRequested) {
    // 10058: the bucket exists with another configuration (made by an operator): used as it is.
    const bool exists = reply.ok() && reply->has_error &&
                        reply->error_err_code == cluster::jetstream::kErrStreamNameInUse;
    if (ok || exists) {
      s.bucket = ClusterSessions::Bucket::kReady;
      s.bucket_retry_ms = 0;
      counters_.cluster_session_bucket_ready.Add();
      if (exists) {
        LogLine(LogLevel::kWarning, "cluster: key-value bucket %s exists with another "
                "configuration; using it as it is", s.bucket_name.c_str());
      }
      return true;
    }
    BucketUnavailable(services_.now_ms());
    if (!s.bucket_failure_logged) {
      s.bucket_failure_logged = true;
      LogLine(LogLevel::kWarning,
              "cluster: key-value bucket %s unavailable (%s); persistent sessions that move "
              "between nodes get session present 0 until it is",
              s.bucket_name.c_str(),
              reply.ok() ? std::string(reply->error_description).c_str() : "no JetStream");
    }
  }
  return true;
}

}  // namespace ringmq::shard
