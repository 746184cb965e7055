// Retained messages cluster-wide (retained_sync.h).
#include "cluster/retained_sync.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "cluster/control.h"
#include "cluster/jetstream.h"
#include "cluster/mqtt5_headers.h"
#include "cluster/subject.h"
#include "common/assert.h"
#include "common/log.h"

namespace ringmq::cluster {
namespace {

constexpr std::string_view kKind = "retained";
constexpr std::string_view kNodeHeader = "Ringmq-Node";
constexpr std::string_view kQosHeader = "Ringmq-Qos";
// JetStream's de-duplication header: a resend the stream already stored is not stored again.
constexpr std::string_view kMsgIdHeader = "Nats-Msg-Id";
constexpr std::string_view kExpiresHeader = "Ringmq-Expires-At";
constexpr std::string_view kDigits[] = {"0", "1", "2"};
// Heartbeat status headers (JetStream push consumers).
constexpr std::string_view kLastConsumerHeader = "Nats-Last-Consumer";
constexpr std::string_view kStalledHeader = "Nats-Consumer-Stalled";
constexpr uint32_t kReplicasMax = 3;
// Heartbeats that may go missing before the consumer is presumed gone (as NATS clients do).
constexpr uint64_t kHeartbeatsMissedMax = 3;

std::string StreamName(std::string_view prefix) {
  std::string name = "RINGMQ_RETAINED";
  if (prefix.empty()) return name;
  name.push_back('_');
  for (const char c : prefix) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    name.push_back(ok ? c : '_');
  }
  name.resize(std::min(name.size(), jetstream::kNameMaxBytes));
  return name;
}

bool ParseU64(std::string_view text, uint64_t& value) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

RetainedSync::RetainedSync(NatsLink& link, const RetainedSyncOptions& options,
                           RetainedSyncSink* sink)
    : link_(link),
      options_(options),
      sink_(sink),
      topic_prefix_(ControlSubject(options.prefix, kKind, {"t"})),
      stream_subjects_(topic_prefix_ + ".>"),
      stream_name_(StreamName(options.prefix)) {
  RINGMQ_ASSERT(sink_ != nullptr && !options_.node_name.empty());
  RINGMQ_ASSERT(options_.idle_heartbeat_ms > 0 && options_.request_timeout_ms > 0);
  const std::string shard = absl::StrCat(options_.shard);
  reply_base_ = ControlSubject(options_.prefix, kKind, {"r", options_.node_name, shard});
  ack_base_ = reply_base_ + ".ack";
  deliver_base_ = ControlSubject(options_.prefix, kKind, {"d", options_.node_name, shard});
}

void RetainedSync::EnsureSubscribed() {
  if (reply_sid_ != 0) return;
  absl::StatusOr<uint64_t> sid = link_.Subscribe(reply_base_ + ".>", "");
  RINGMQ_ASSERT(sid.ok());  // built from valid tokens
  reply_sid_ = *sid;
}

uint32_t RetainedSync::replicas() const {
  return static_cast<uint32_t>(std::clamp<size_t>(link_.server_count(), 1, kReplicasMax));
}

PublishResult RetainedSync::Publish(std::string_view topic, std::string_view payload, uint8_t qos,
                                    uint64_t expires_at_unix_ms,
                                    std::span<const uint8_t> properties) {
  scratch_.clear();
  const SubjectMapping mapping{.prefix = topic_prefix_};
  if (TopicToSubject(topic, mapping, scratch_) != Uncarried::kNone) {
    ++counters_.uncarried;
    return PublishResult::kInvalid;
  }
  // Checked once here, so a pending update always encodes (SendUpdate, resends).
  headers_.clear();
  if (AppendMqtt5Headers(properties, std::nullopt, kPropertyFieldsMax, headers_, property_text_) ==
      Mqtt5EncodeResult::kTooManyFields) {
    ++counters_.properties_too_many;
    return PublishResult::kInvalid;
  }
  EnsureSubscribed();
  const uint64_t id = next_update_id_++;
  Pending update{.topic = std::string(topic),
                 .payload = std::string(payload),
                 .qos = qos,
                 .expires_at_unix_ms = expires_at_unix_ms,
                 .properties = std::vector<uint8_t>(properties.begin(), properties.end()),
                 .resend_at_ms = UINT64_MAX};
  const PublishResult result = SendUpdate(id, update);
  if (result != PublishResult::kQueued && result != PublishResult::kHeld) {
    ++counters_.publish_refused;
    return result;
  }
  ++counters_.updates_out;
  // This update supersedes a pending one of the topic: that one is never sent again.
  const auto previous = pending_by_topic_.find(update.topic);
  if (previous != pending_by_topic_.end()) {
    pending_.erase(previous->second);
    pending_by_topic_.erase(previous);
  }
  if (pending_.size() >= options_.pending_max) {
    ++counters_.untracked;
    return result;
  }
  if (result == PublishResult::kQueued) update.resend_at_ms = now_ms_ + options_.ack_timeout_ms;
  next_check_ms_ = std::min(next_check_ms_, result == PublishResult::kQueued
                                                ? update.resend_at_ms
                                                : 0);  // held: at the first ready tick
  pending_by_topic_.emplace(update.topic, id);
  pending_.emplace(id, std::move(update));
  return result;
}

PublishResult RetainedSync::SendUpdate(uint64_t id, const Pending& update) {
  scratch_.clear();
  const SubjectMapping mapping{.prefix = topic_prefix_};
  const Uncarried carried = TopicToSubject(update.topic, mapping, scratch_);
  RINGMQ_ASSERT(carried == Uncarried::kNone);  // checked by Publish
  id_scratch_.assign(options_.node_name);
  absl::StrAppend(&id_scratch_, ".", options_.shard, ".", options_.start_id, ".", id);
  const std::string reply = absl::StrCat(ack_base_, ".", id);
  expires_scratch_.clear();
  if (update.expires_at_unix_ms != 0) absl::StrAppend(&expires_scratch_, update.expires_at_unix_ms);
  headers_.clear();
  headers_.push_back({kNodeHeader, options_.node_name});
  headers_.push_back({kQosHeader, kDigits[update.qos <= 2 ? update.qos : 0]});
  headers_.push_back({kMsgIdHeader, id_scratch_});
  if (update.expires_at_unix_ms != 0) headers_.push_back({kExpiresHeader, expires_scratch_});
  // The same fields as a live message's (mqtt5_headers.h), without its Message Expiry field:
  // Ringmq-Expires-At above is the stream's (a wall-clock end, not the time left when sent).
  const Mqtt5EncodeResult encoded = AppendMqtt5Headers(
      update.properties, std::nullopt, kPropertyFieldsMax, headers_, property_text_);
  RINGMQ_ASSERT(encoded != Mqtt5EncodeResult::kTooManyFields);  // checked by Publish
  return link_.Publish(scratch_, headers_, update.payload, reply);
}

void RetainedSync::ResendDue(uint64_t now_ms) {
  // One walk of the pending updates per due time, not per loop iteration.
  if (!link_.ready() || now_ms < next_check_ms_) return;
  next_check_ms_ = UINT64_MAX;
  for (auto& [id, update] : pending_) {
    if (update.resend_at_ms == UINT64_MAX) {
      // Held: it went out with the handshake, so its PubAck is due from now.
      update.resend_at_ms = now_ms + options_.ack_timeout_ms;
    } else if (now_ms >= update.resend_at_ms) {
      if (SendUpdate(id, update) != PublishResult::kQueued) {
        next_check_ms_ = now_ms;  // no room on the link: the next iteration goes on
        return;
      }
      ++counters_.resent;
      update.resend_at_ms = now_ms + options_.ack_timeout_ms;
    }
    next_check_ms_ = std::min(next_check_ms_, update.resend_at_ms);
  }
}

bool RetainedSync::OnMessage(const NatsMessage& message, uint64_t now_ms) {
  if (reply_sid_ != 0 && message.sid == reply_sid_) {
    if (message.subject.starts_with(ack_base_)) {
      OnAck(message, now_ms);
    } else {
      OnApiReply(message, now_ms);
    }
    return true;
  }
  if (deliver_sid_ != 0 && message.sid == deliver_sid_) {
    OnDelivery(message, now_ms);
    return true;
  }
  return false;
}

void RetainedSync::OnTick(uint64_t now_ms) {
  now_ms_ = now_ms;
  if (!pending_.empty()) ResendDue(now_ms);
  if (!options_.consume) return;
  EnsureSubscribed();
  if (!link_.ready()) {
    // Whatever was in flight went with the connection; the next connection starts over.
    if (phase_ != RetainedSyncPhase::kBackoff) phase_ = RetainedSyncPhase::kIdle;
    return;
  }
  if (phase_ != RetainedSyncPhase::kIdle && link_.counters().connects != link_connects_) {
    phase_ = RetainedSyncPhase::kIdle;  // a new connection since the phase began
  }
  switch (phase_) {
    case RetainedSyncPhase::kIdle:
      SendStreamCreate(now_ms);
      return;
    case RetainedSyncPhase::kStreamRequested:
    case RetainedSyncPhase::kConsumerRequested:
      if (now_ms >= deadline_ms_) Fail(now_ms, "no reply from JetStream in time");
      return;
    case RetainedSyncPhase::kConsuming:
      if (now_ms >= deadline_ms_) {
        ++counters_.gaps;
        RINGMQ_LOG_DEBUG("retained: no heartbeat from the stream consumer; recreating it");
        Restart(now_ms);
      }
      return;
    case RetainedSyncPhase::kBackoff:
      if (now_ms >= deadline_ms_) SendStreamCreate(now_ms);
      return;
  }
}

bool RetainedSync::SendRequest(std::string_view api_subject, uint64_t now_ms) {
  request_reply_ = absl::StrCat(reply_base_, ".api.", ++request_id_);
  link_connects_ = link_.counters().connects;
  deadline_ms_ = now_ms + options_.request_timeout_ms;
  const PublishResult result = link_.Publish(api_subject, {}, scratch_, request_reply_);
  if (result != PublishResult::kQueued) {
    Fail(now_ms, "the NATS link refused a JetStream request");
    return false;
  }
  return true;
}

void RetainedSync::SendStreamCreate(uint64_t now_ms) {
  scratch_.clear();
  jetstream::AppendStreamCreate({.name = stream_name_,
                                 .subject = stream_subjects_,
                                 .replicas = replicas(),
                                 .max_msgs_per_subject = 1,
                                 .file_storage = true},
                                scratch_);
  if (SendRequest(absl::StrCat("$JS.API.STREAM.CREATE.", stream_name_), now_ms)) {
    phase_ = RetainedSyncPhase::kStreamRequested;
  }
}

void RetainedSync::SendConsumerCreate(uint64_t now_ms) {
  // A new deliver subject per consumer: deliveries of an older consumer are not ours anymore,
  // and without interest the server removes it (inactive_threshold).
  if (deliver_sid_ != 0) link_.Unsubscribe(deliver_sid_);
  deliver_subject_ = absl::StrCat(deliver_base_, ".", ++generation_);
  absl::StatusOr<uint64_t> sid = link_.Subscribe(deliver_subject_, "");
  RINGMQ_ASSERT(sid.ok());
  deliver_sid_ = *sid;
  next_consumer_sequence_ = 1;
  scratch_.clear();
  jetstream::AppendOrderedConsumerCreate(
      {.stream = stream_name_,
       .deliver_subject = deliver_subject_,
       .filter_subject = stream_subjects_,  // 2.9 needs it with last_per_subject
       .start_sequence = last_stream_sequence_ == 0 ? 0 : last_stream_sequence_ + 1,
       .idle_heartbeat_ms = options_.idle_heartbeat_ms,
       .inactive_threshold_ms = std::max<uint64_t>(60'000, 4 * options_.idle_heartbeat_ms)},
      scratch_);
  if (SendRequest(absl::StrCat("$JS.API.CONSUMER.CREATE.", stream_name_), now_ms)) {
    phase_ = RetainedSyncPhase::kConsumerRequested;
  }
}

void RetainedSync::OnApiReply(const NatsMessage& message, uint64_t now_ms) {
  if (message.subject != request_reply_) return;  // a reply to a request given up on
  request_reply_.clear();
  if (!message.headers.empty()) {
    absl::StatusOr<nats::HeaderBlock> block = nats::ParseHeaderBlock(message.headers);
    if (!block.ok() || block->status != 0) {
      // 503: no responders (JetStream is not enabled, or not reachable yet).
      Fail(now_ms, "JetStream did not answer (no responders)");
      return;
    }
  }
  absl::StatusOr<jetstream::ApiReply> reply = jetstream::ParseApiReply(message.payload);
  if (!reply.ok()) {
    const std::string text(reply.status().message());
    Fail(now_ms, text);
    return;
  }
  const bool stream_phase = phase_ == RetainedSyncPhase::kStreamRequested;
  if (reply->has_error) {
    if (stream_phase && reply->error_err_code == jetstream::kErrStreamNameInUse) {
      if (!warned_config_) {
        warned_config_ = true;
        RINGMQ_LOG_WARNING("retained: stream %s exists with another configuration; using it",
                           stream_name_.c_str());
      }
    } else {
      Fail(now_ms, reply->error_description);
      return;
    }
  }
  if (stream_phase) {
    SendConsumerCreate(now_ms);
    return;
  }
  if (phase_ != RetainedSyncPhase::kConsumerRequested) return;
  ++counters_.consumer_starts;
  if (counters_.consumer_starts == 1 || failing_) {
    RINGMQ_LOG_INFO("retained: consuming stream %s from %s", stream_name_.c_str(),
                    last_stream_sequence_ == 0 ? "the last message of each topic"
                                               : "the last applied sequence");
  }
  failing_ = false;
  phase_ = RetainedSyncPhase::kConsuming;
  deadline_ms_ = now_ms + kHeartbeatsMissedMax * options_.idle_heartbeat_ms;
}

void RetainedSync::OnAck(const NatsMessage& message, uint64_t now_ms) {
  uint64_t id = 0;
  const std::string_view tail = message.subject.substr(ack_base_.size());
  if (!tail.starts_with('.') || !ParseU64(tail.substr(1), id)) return;
  const auto update = pending_.find(id);
  bool ok = true;
  if (!message.headers.empty()) {
    absl::StatusOr<nats::HeaderBlock> block = nats::ParseHeaderBlock(message.headers);
    ok = block.ok() && block->status == 0;  // 503: no stream stored it (yet)
  }
  if (ok) {
    absl::StatusOr<jetstream::ApiReply> reply = jetstream::ParseApiReply(message.payload);
    ok = reply.ok() && !reply->has_error;
  }
  if (!ok) {
    ++counters_.stream_errors;
    if (update != pending_.end()) {
      // Doubling per failed attempt, to 32 retry_ms: a cluster without JetStream answers every
      // update with a 503, and those are not resent once a second forever.
      Pending& failed = update->second;
      failed.resend_at_ms = now_ms + (options_.retry_ms << std::min<uint32_t>(failed.failures, 5));
      ++failed.failures;
      next_check_ms_ = std::min(next_check_ms_, failed.resend_at_ms);
    }
    return;
  }
  ++counters_.acks;
  if (update == pending_.end()) return;  // superseded, or acknowledged already
  pending_by_topic_.erase(update->second.topic);
  pending_.erase(update);
}

void RetainedSync::OnDelivery(const NatsMessage& message, uint64_t now_ms) {
  if (phase_ != RetainedSyncPhase::kConsuming && phase_ != RetainedSyncPhase::kConsumerRequested) {
    return;
  }
  deadline_ms_ = now_ms + kHeartbeatsMissedMax * options_.idle_heartbeat_ms;
  int status = 0;
  std::string_view description;
  absl::StatusOr<nats::HeaderBlock> block;
  if (!message.headers.empty()) {
    block = nats::ParseHeaderBlock(message.headers);
    if (block.ok()) {
      status = block->status;
      description = block->description;
    }
  }
  switch (jetstream::StatusOf(status, description)) {
    case jetstream::StatusKind::kFlowControl:
      if (!message.reply.empty()) link_.Publish(message.reply, {}, {});
      return;
    case jetstream::StatusKind::kHeartbeat:
      for (const nats::HeaderField& field : block->fields) {
        uint64_t last = 0;
        if (field.first == kStalledHeader && !field.second.empty()) {
          link_.Publish(field.second, {}, {});
        } else if (field.first == kLastConsumerHeader && ParseU64(field.second, last) &&
                   last + 1 != next_consumer_sequence_) {
          ++counters_.gaps;  // messages were delivered that never arrived
          Restart(now_ms);
          return;
        }
      }
      return;
    case jetstream::StatusKind::kOther:
      return;
    case jetstream::StatusKind::kNone:
      break;
  }
  const std::optional<jetstream::Delivery> delivery = jetstream::ParseDelivery(message.reply);
  if (!delivery) return;  // not a JetStream delivery
  if (delivery->consumer_sequence != next_consumer_sequence_) {
    ++counters_.gaps;
    Restart(now_ms);
    return;
  }
  ++next_consumer_sequence_;
  if (delivery->stream_sequence <= last_stream_sequence_) {
    ++counters_.duplicates;
    return;
  }
  last_stream_sequence_ = delivery->stream_sequence;
  Apply(message);
}

void RetainedSync::Apply(const NatsMessage& message) {
  topic_.clear();
  if (!SubjectToTopic(message.subject, topic_prefix_, topic_) || topic_[0] == '$') {
    ++counters_.unmappable;
    return;
  }
  uint8_t qos = 0;  // a NATS application's update: at most once
  uint64_t expires_at_unix_ms = 0;
  Mqtt5HeaderDecoder properties(property_block_);
  if (!message.headers.empty()) {
    absl::StatusOr<nats::HeaderBlock> block = nats::ParseHeaderBlock(message.headers);
    if (block.ok()) {
      for (const nats::HeaderField& field : block->fields) {
        if (field.first == kQosHeader && field.second.size() == 1 && field.second[0] >= '0' &&
            field.second[0] <= '2') {
          qos = static_cast<uint8_t>(field.second[0] - '0');
        } else if (field.first == kExpiresHeader && !ParseU64(field.second, expires_at_unix_ms)) {
          expires_at_unix_ms = 0;  // malformed: as if absent
        } else {
          // 5.0 properties, in their order. The stream's expiry is Ringmq-Expires-At: the
          // decoder's expiry_left_ms (a Ringmq-Message-Expiry-Ms, the time left when a live
          // message was sent, not when the stream is read) is not used.
          properties.Field(field.first, field.second);
        }
      }
    } else {
      ++counters_.properties_dropped;  // no field can be trusted: none is applied
    }
  }
  counters_.properties_dropped += properties.dropped();
  ++counters_.updates_in;
  sink_->ApplyRetained(topic_, message.payload, qos, expires_at_unix_ms, properties.properties());
}

void RetainedSync::Restart(uint64_t now_ms) {
  if (link_.ready()) {
    SendConsumerCreate(now_ms);
  } else {
    phase_ = RetainedSyncPhase::kIdle;
  }
}

void RetainedSync::Fail(uint64_t now_ms, std::string_view what) {
  ++counters_.stream_errors;
  // The first failure after a consumer started (or at start) is a warning; the retries that
  // follow it, one per retry_ms while JetStream is away, are debug lines.
  RINGMQ_LOG(failing_ ? LogLevel::kDebug : LogLevel::kWarning,
             "retained: JetStream request for stream %s failed (%.*s); retrying",
             stream_name_.c_str(), static_cast<int>(what.size()), what.data());
  failing_ = true;
  request_reply_.clear();
  phase_ = RetainedSyncPhase::kBackoff;
  deadline_ms_ = now_ms + options_.retry_ms;
}

}  // namespace ringmq::cluster
