#include "session/session.h"

#include <utility>

#include "auth/acl.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace ringmq::session {
namespace {

// The filter a subscription matches topics with: a shared subscription's
// "$share/{ShareName}/{filter}" (5.0:4.8.2) matches as its filter.
std::string_view MatchingFilter(std::string_view filter) {
  constexpr std::string_view kShare = "$share/";
  if (!filter.starts_with(kShare)) return filter;
  const size_t slash = filter.find('/', kShare.size());
  return slash == std::string_view::npos ? filter : filter.substr(slash + 1);
}

}  // namespace

const Session::Subscriptions& Session::NoSubscriptions() {
  static const Subscriptions* const empty = new Subscriptions();  // never destroyed
  return *empty;
}

Session::Session(SharedString client_id, bool clean_session, const SessionLimits& limits)
    : client_id_(std::move(client_id)), limits_(&limits), clean_session_(clean_session) {
  RINGMQ_ASSERT(limits.max_inflight > 0 && limits.max_inflight < 65535);
  RINGMQ_ASSERT(limits.max_subscriptions > 0 && limits.max_inbound_qos2 > 0);
}

void Session::Attach(bool clean_session, const ClientTerms& terms) {
  RINGMQ_ASSERT(!online_);
  RINGMQ_ASSERT(terms.receive_maximum > 0);  // 5.0:3.1.2.11.3: 0 is a Protocol Error
  online_ = true;
  clean_session_ = clean_session;
  level_ = terms.level;
  receive_maximum_ = terms.receive_maximum;
  maximum_packet_size_ = terms.maximum_packet_size;
  // MQTT-4.4.0-1: unacknowledged PUBLISH and PUBREL packets are sent again, in order, with
  // DUP set on the PUBLISHes (MQTT-3.3.1-1).
  for (size_t i = 0; i < inflight_.size(); ++i) {
    Outbound& entry = inflight_[i];
    if (entry.sent && entry.stage == Stage::kAwaitAck) entry.dup = true;
    if (entry.sent) ++unsent_inflight_;
    entry.sent = false;
  }
}

void Session::Detach() {
  online_ = false;
  // Rings kept for a subscriber that keeps up are not kept for one that may stay away.
  queue_.Trim();
  inflight_.Trim();
  if (subscriptions_ != nullptr && subscriptions_->empty()) subscriptions_.reset();
}

bool Session::CanTake(const message::Message& message, uint8_t qos) const {
  if (qos == 0 && !online_ && !limits_->queue_qos0_offline) return false;
  const size_t window_room =
      online_ && inflight_.size() < window() ? window() - inflight_.size() : 0;
  if (qos > 0 && queue_.size() >= limits_->max_queued_messages + window_room) return false;
  return queued_bytes_ + inflight_bytes_ + message.wire_bytes() <= limits_->max_queued_bytes;
}

EnqueueResult Session::Enqueue(message::MessageRef message, uint8_t qos, bool retain,
                               uint8_t flags) {
  RINGMQ_ASSERT(message.get() != nullptr && qos <= 2);
  const uint64_t bytes = message.get()->wire_bytes();
  if (qos == 0 && !online_ && !limits_->queue_qos0_offline) return EnqueueResult::kDroppedOffline;
  // For an online session, messages the in-flight window takes at the next write are not
  // waiting: without this, a burst that arrives before the session writes (several mailbox
  // records drained in one iteration) would find the queue full while the window has room.
  const size_t window_room =
      online_ && inflight_.size() < window() ? window() - inflight_.size() : 0;
  if (qos > 0 && queue_.size() >= limits_->max_queued_messages + window_room) {
    return EnqueueResult::kDroppedQueueFull;
  }
  // In-flight messages count too: the window (max_inflight, 512 by default) would otherwise
  // hold that many messages of any size outside the cap.
  if (queued_bytes_ + inflight_bytes_ + bytes > limits_->max_queued_bytes) {
    return EnqueueResult::kDroppedBytesCap;
  }
  queued_bytes_ += bytes;
  queue_.push_back(
      Outbound{.message = std::move(message), .qos = qos, .retain = retain, .flags = flags});
  return EnqueueResult::kQueued;
}

bool Session::has_output() const {
  if (!online_) return false;
  if (unsent_inflight_ > 0) return true;
  if (queue_.empty()) return false;
  return queue_.front().qos == 0 || inflight_.size() < window();
}

Session::Written Session::WriteOne(const Outbound& entry, ByteBuffer& out, size_t max_bytes,
                                   WriteCounts* counts, uint64_t now_ms,
                                   mqtt::OutboundTopicAliases* aliases) {
  if (entry.stage == Stage::kAwaitComplete) {
    const mqtt::Packet packet = mqtt::Pubrel{entry.packet_id};
    const size_t size = mqtt::EncodedSize(packet);
    if (!out.empty() && out.size() + size > max_bytes) return Written::kNoRoom;
    const size_t old_size = out.size();
    out.resize(old_size + size);
    [[maybe_unused]] const size_t written =
        mqtt::Encode(packet, std::span<uint8_t>(out).subspan(old_size));
    RINGMQ_ASSERT(written == size);
    return Written::kWritten;
  }
  const message::Message& message = *entry.message.get();
  if (level_ == mqtt::ProtocolLevel::kMqtt5) {
    return WritePublish5(entry, out, max_bytes, counts, now_ms, aliases);
  }
  // The hot path: the message already holds its length-prefixed topic and payload side by side,
  // so a PUBLISH is a header byte, a length, and copies (no Packet variant, no re-validation).
  const mqtt::PublishParts parts{.encoded_topic = message.encoded_topic(),
                                 .payload = message.payload(),
                                 .qos = static_cast<mqtt::QoS>(entry.qos),
                                 .retain = entry.retain,
                                 .dup = entry.dup,
                                 .packet_id = entry.packet_id};
  const size_t size = mqtt::EncodedPublishPartsSize(parts);
  if (!out.empty() && out.size() + size > max_bytes) return Written::kNoRoom;
  const size_t old_size = out.size();
  out.resize(old_size + size);
  [[maybe_unused]] const size_t written =
      mqtt::EncodePublishParts(parts, std::span<uint8_t>(out).subspan(old_size));
  RINGMQ_ASSERT(written == size);
  if (counts != nullptr) ++counts->publishes_by_qos[entry.qos];
  return Written::kWritten;
}

Session::Written Session::WritePublish5(const Outbound& entry, ByteBuffer& out, size_t max_bytes,
                                        WriteCounts* counts, uint64_t now_ms,
                                        mqtt::OutboundTopicAliases* aliases) {
  const message::Message& message = *entry.message.get();
  // The Subscription Identifiers of the matching subscriptions (5.0:MQTT-3.3.4-3..5), looked up
  // now rather than stored with each queued delivery. A per-thread scratch vector: it grows to
  // the largest count seen and then allocates no more.
  thread_local std::vector<uint32_t> identifiers;
  identifiers.clear();
  if ((entry.flags & kEnqueueIdentifiers) != 0 && subscriptions_ != nullptr) {
    const bool own = (entry.flags & kEnqueueOwn) != 0;
    const bool shared = (entry.flags & kEnqueueShared) != 0;
    for (const auto& [filter, options] : *subscriptions_) {
      if (options.identifier == 0 || (own && options.no_local)) continue;
      if (!shared && mqtt::IsSharedFilter(filter)) continue;  // as in MatchDelivery
      if (auth::TopicMatches(MatchingFilter(filter), message.topic())) {
        identifiers.push_back(options.identifier);
      }
    }
  }
  mqtt::PublishPropertyEdits edits{.forwarded = message.properties(),
                                   .subscription_identifiers = identifiers,
                                   .topic_alias = 0,
                                   .message_expiry_s = std::nullopt};
  if (message.has_expiry()) {
    // MQTT-3.3.2-6: the interval forwarded is what is left of it, rounded up so that a message
    // with time left is not sent as expiring at once.
    const uint64_t deadline_ms = message.expiry_deadline_ms();
    const uint64_t left_ms = deadline_ms > now_ms ? deadline_ms - now_ms : 0;
    edits.message_expiry_s = static_cast<uint32_t>((left_ms + 999) / 1000);
  }
  // 5.0:3.3.2.3.4: a topic with an alias on this connection goes as an empty topic and the
  // alias; a new one, while aliases are left, goes with its name and takes the next alias,
  // recorded only once the packet is written (a packet not written sets nothing).
  static constexpr uint8_t kEmptyTopic[2] = {0, 0};
  std::span<const uint8_t> encoded_topic = message.encoded_topic();
  uint16_t new_alias = 0;
  if (aliases != nullptr) {
    if (const uint16_t alias = aliases->Find(message.topic()); alias != 0) {
      edits.topic_alias = alias;
      encoded_topic = kEmptyTopic;
    } else {
      new_alias = aliases->NextFree();
      edits.topic_alias = new_alias;
    }
  }
  const mqtt::PublishParts parts{.encoded_topic = encoded_topic,
                                 .payload = message.payload(),
                                 .qos = static_cast<mqtt::QoS>(entry.qos),
                                 .retain = entry.retain,
                                 .dup = entry.dup,
                                 .packet_id = entry.packet_id};
  const size_t size = mqtt::EncodedPublishParts5Size(parts, edits);
  // 5.0:MQTT-3.1.2-25: a packet above the client's Maximum Packet Size (or above the largest
  // remaining length, size 0) is discarded without sending, as if its delivery had completed.
  if (size == 0 || (maximum_packet_size_ != 0 && size > maximum_packet_size_)) {
    if (counts != nullptr) ++counts->too_large;
    return Written::kDiscarded;
  }
  if (!out.empty() && out.size() + size > max_bytes) return Written::kNoRoom;
  const size_t old_size = out.size();
  out.resize(old_size + size);
  [[maybe_unused]] const size_t written =
      mqtt::EncodePublishParts5(parts, edits, std::span<uint8_t>(out).subspan(old_size));
  RINGMQ_ASSERT(written == size);
  if (new_alias != 0) aliases->Assign(message.topic(), new_alias);
  if (counts != nullptr) {
    ++counts->publishes_by_qos[entry.qos];
    ++counts->publishes_mqtt5;
    if (new_alias != 0) {
      ++counts->aliases_set;
    } else if (edits.topic_alias != 0) {
      ++counts->aliases_used;
    }
  }
  return Written::kWritten;
}

size_t Session::WriteOutput(ByteBuffer& out, size_t max_bytes, WriteCounts* counts, uint64_t now_ms,
                            mqtt::OutboundTopicAliases* aliases, DeliveryLog* log) {
  if (!online_) return 0;
  const size_t start = out.size();
  // Resends and due PUBRELs first, in their original order.
  for (size_t i = 0; unsent_inflight_ > 0 && i < inflight_.size();) {
    Outbound& entry = inflight_[i];
    if (entry.sent) {
      ++i;
      continue;
    }
    switch (WriteOne(entry, out, max_bytes, counts, now_ms, aliases)) {
      case Written::kNoRoom:
        return out.size() - start;
      case Written::kWritten:
        entry.sent = true;
        --unsent_inflight_;
        ++i;
        break;
      case Written::kDiscarded:
        // A resend the client's (new) Maximum Packet Size no longer admits: done, as if
        // acknowledged (5.0:MQTT-3.1.2-25).
        --unsent_inflight_;
        if (entry.message) inflight_bytes_ -= entry.message.get()->wire_bytes();
        if (log != nullptr) log->DiscardedInflight(entry.packet_id, entry.qos);
        inflight_.erase(i);
        break;
    }
  }
  while (!queue_.empty()) {
    Outbound& entry = queue_.front();
    // 5.0:3.3.2.3.3: a message whose interval passed before it was sent is not sent at all; a
    // resend (above) has started its delivery and completes it.
    if (entry.message.get()->ExpiredAt(now_ms)) {
      if (counts != nullptr) ++counts->expired;
      if (log != nullptr && entry.qos > 0) log->DiscardedQueued(*entry.message.get());
      queued_bytes_ -= entry.message.get()->wire_bytes();
      queue_.pop_front();
      continue;
    }
    if (entry.qos > 0 && inflight_.size() >= window()) break;
    const bool needs_id = entry.qos > 0 && entry.packet_id == 0;
    if (needs_id) entry.packet_id = NextPacketId();
    const Written result = WriteOne(entry, out, max_bytes, counts, now_ms, aliases);
    if (result == Written::kNoRoom) break;
    const uint64_t bytes = entry.message.get()->wire_bytes();
    queued_bytes_ -= bytes;
    if (result == Written::kWritten && entry.qos > 0) {
      inflight_bytes_ += bytes;  // until the message is released (PUBACK, PUBREC)
      if (log != nullptr) log->Sent(*entry.message.get(), entry.packet_id);
      entry.sent = true;
      inflight_.push_back(std::move(entry));
    } else if (result == Written::kDiscarded && log != nullptr && entry.qos > 0) {
      log->DiscardedQueued(*entry.message.get());
      if (needs_id && last_packet_id_ == entry.packet_id) {
        last_packet_id_ = static_cast<uint16_t>(last_packet_id_ - 1);
      }
    } else if (needs_id && last_packet_id_ == entry.packet_id) {
      // Discarded: the id was never used on the wire, so the next message may take it.
      last_packet_id_ = static_cast<uint16_t>(last_packet_id_ - 1);
    }
    queue_.pop_front();
  }
  return out.size() - start;
}

void Session::RestoreInflight(message::MessageRef message, uint8_t qos, bool retain,
                              uint16_t packet_id, bool released) {
  RINGMQ_ASSERT(!online_ && qos > 0 && packet_id != 0 && (released || message.get() != nullptr));
  if (released) message = message::MessageRef();
  if (message.get() != nullptr) inflight_bytes_ += message.get()->wire_bytes();
  inflight_.push_back(Outbound{.message = std::move(message),
                               .packet_id = packet_id,
                               .qos = qos,
                               .retain = retain,
                               .dup = false,
                               .sent = true,
                               .stage = released ? Stage::kAwaitComplete : Stage::kAwaitAck,
                               .flags = 0});
  last_packet_id_ = packet_id;
  ids_in_assignment_order_ = false;  // NextPacketId searches
}

Session::Outbound* Session::FindInflight(uint16_t packet_id) {
  const size_t i =
      inflight_.find_if([&](const Outbound& entry) { return entry.packet_id == packet_id; });
  return i == inflight_.size() ? nullptr : &inflight_[i];
}

bool Session::OnPuback(uint16_t packet_id) {
  // Also accepted while a resend after reconnect is still due: the client had the message.
  const size_t i = inflight_.find_if(
      [&](const Outbound& entry) { return entry.packet_id == packet_id && entry.qos == 1; });
  if (i == inflight_.size()) return false;
  if (!inflight_[i].sent) --unsent_inflight_;
  inflight_bytes_ -= inflight_[i].message.get()->wire_bytes();
  inflight_.erase(i);
  return true;
}

bool Session::OnPubrec(uint16_t packet_id) {
  Outbound* entry = FindInflight(packet_id);
  if (entry == nullptr || entry->qos != 2) return false;
  if (entry->stage == Stage::kAwaitAck) {
    entry->stage = Stage::kAwaitComplete;
    inflight_bytes_ -= entry->message.get()->wire_bytes();
    entry->message = message::MessageRef();  // delivered: only the release handshake remains
  }
  // A PUBREC (first or repeated) makes a PUBREL due (MQTT-4.3.3-1 step 3).
  if (entry->sent) ++unsent_inflight_;
  entry->sent = false;
  return true;
}

bool Session::OnPubrecRefused(uint16_t packet_id) {
  const size_t i = inflight_.find_if([&](const Outbound& entry) {
    return entry.packet_id == packet_id && entry.qos == 2 && entry.stage == Stage::kAwaitAck;
  });
  if (i == inflight_.size()) return false;
  if (!inflight_[i].sent) --unsent_inflight_;
  inflight_bytes_ -= inflight_[i].message.get()->wire_bytes();
  inflight_.erase(i);
  return true;
}

bool Session::OnPubcomp(uint16_t packet_id) {
  const size_t i = inflight_.find_if([&](const Outbound& entry) {
    return entry.packet_id == packet_id && entry.stage == Stage::kAwaitComplete;
  });
  if (i == inflight_.size()) return false;
  if (!inflight_[i].sent) --unsent_inflight_;
  inflight_.erase(i);
  return true;
}

InboundQos2 Session::BeginInboundQos2(uint16_t packet_id) {
  if (inbound_qos2_ == nullptr) inbound_qos2_ = std::make_unique<absl::flat_hash_set<uint16_t>>();
  if (inbound_qos2_->contains(packet_id)) return InboundQos2::kDuplicate;
  if (inbound_qos2_->size() >= limits_->max_inbound_qos2) return InboundQos2::kLimit;
  inbound_qos2_->insert(packet_id);
  return InboundQos2::kNew;
}

bool Session::EndInboundQos2(uint16_t packet_id) {
  if (inbound_qos2_ == nullptr || inbound_qos2_->erase(packet_id) == 0) return false;
  // A drained set keeps a small table (no allocation per message for a steady QoS 2
  // publisher); clear() frees one grown past 127 slots by a burst.
  if (inbound_qos2_->empty()) inbound_qos2_->clear();
  return true;
}

SubscribeResult Session::AddSubscription(std::string_view filter,
                                         const SubscriptionOptions& options) {
  RINGMQ_ASSERT(!filter.empty() && options.qos <= 2);
  const absl::string_view key(filter.data(), filter.size());
  if (subscriptions_ != nullptr) {
    if (auto it = subscriptions_->find(key); it != subscriptions_->end()) {
      it->second = options;
      return SubscribeResult::kReplaced;
    }
  }
  if (subscription_count() >= limits_->max_subscriptions) return SubscribeResult::kLimit;
  if (subscriptions_ == nullptr) subscriptions_ = std::make_unique<Subscriptions>();
  subscriptions_->emplace(key, options);
  return SubscribeResult::kAdded;
}

std::optional<SubscriptionOptions> Session::RemoveSubscription(std::string_view filter) {
  if (subscriptions_ == nullptr) return std::nullopt;
  const auto it = subscriptions_->find(absl::string_view(filter.data(), filter.size()));
  if (it == subscriptions_->end()) return std::nullopt;
  const SubscriptionOptions options = it->second;
  subscriptions_->erase(it);  // an emptied map is kept while online (Detach frees it), so a
                              // client that subscribes and unsubscribes in a loop allocates once
  return options;
}

DeliveryMatch Session::MatchDelivery(std::string_view topic, bool own, bool shared) const {
  DeliveryMatch match;
  if (subscriptions_ == nullptr) return match;
  for (const auto& [filter, options] : *subscriptions_) {
    if (own && options.no_local) continue;  // 5.0:MQTT-3.8.3-3
    if (!shared && mqtt::IsSharedFilter(filter)) continue;
    if (!auth::TopicMatches(MatchingFilter(filter), topic)) continue;
    match.deliver = true;
    if (options.qos > match.qos) match.qos = options.qos;
    match.retain_as_published = match.retain_as_published || options.retain_as_published;
    match.identifiers = match.identifiers || options.identifier != 0;
  }
  return match;
}

bool Session::PacketIdInUse(uint16_t packet_id) const {
  return inflight_.find_if([&](const Outbound& entry) { return entry.packet_id == packet_id; }) !=
         inflight_.size();
}

uint16_t Session::NextPacketId() {
  // Ids are taken in cyclic order and inflight_ keeps send order, which is the order ids were
  // taken in (an id is taken only for the queue's front, which is the next to enter inflight_).
  // So while no id has been skipped, the ids in use lie on the cyclic walk from the front's id
  // to last_packet_id_, and the id after last_packet_id_ lies on that walk only if the walk
  // covers every id, that is if it is the front's id. One comparison instead of a search of
  // the window per PUBLISH.
  if (inflight_.empty()) ids_in_assignment_order_ = true;
  uint16_t candidate = static_cast<uint16_t>(last_packet_id_ + 1);
  if (candidate == 0) candidate = 1;  // MQTT-2.3.1-1: ids are non-zero
  if (ids_in_assignment_order_ &&
      (inflight_.empty() || inflight_.front().packet_id != candidate)) {
#ifndef NDEBUG
    RINGMQ_ASSERT(!PacketIdInUse(candidate));
#endif
    last_packet_id_ = candidate;
    return last_packet_id_;
  }
  // The ids came round to one still in flight (e.g. a QoS 2 release the client never
  // completes while 65,534 others passed): skip ids in use by searching. Skipping breaks the
  // order above, so searches continue until the window drains. At most max_inflight ids are in
  // use, so this ends within max_inflight + 1 steps.
  ids_in_assignment_order_ = false;
  do {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ + 1);
    if (last_packet_id_ == 0) last_packet_id_ = 1;
  } while (PacketIdInUse(last_packet_id_));
  return last_packet_id_;
}

}  // namespace ringmq::session
