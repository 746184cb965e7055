// Router: the cluster over NATS (router.h, "Cluster over NATS"; docs/cluster.md).
#include "shard/router_cluster.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <string_view>
#include <vector>

#include "cluster/mqtt5_headers.h"
#include "common/assert.h"
#include "common/log.h"
#include "shard/router.h"
#include "shard/router_cluster_acks.h"

namespace ringmq::shard {
namespace {

// Headers of a message a ringmq node publishes: router_cluster.h; and here the publishing node's
// wall clock at forwarding, in microseconds since the Unix epoch: the receiving shard observes
// the hop (ringmq_cluster_hop_latency_seconds).
constexpr std::string_view kSentAtHeader = "Ringmq-Sent-At";

}  // namespace

void Router::AttachCluster(cluster::NatsLink* link, std::string node_name,
                           std::string subject_prefix) {
  RINGMQ_ASSERT(link != nullptr && cluster_ == nullptr && sessions_.size() == 0);
  cluster_ = std::make_unique<Cluster>(link, std::move(node_name), std::move(subject_prefix));
  AttachClusterRetained();
}

size_t Router::cluster_subject_count() const {
  return cluster_ == nullptr ? 0 : cluster_->interest.subject_count();
}

void Router::ClusterInterestChange(std::string_view filter, bool acquire) {
  if (ClusterShareChange(filter, acquire)) return;  // NATS queue groups: router_cluster_shared.cc
  // '$' filters are not carried across nodes.
  if (filter.empty() || filter[0] == '$') return;
  if (acquire) {
    cluster_->interest.Acquire(filter);
  } else {
    cluster_->interest.Release(filter);
  }
  counters_.gauges.cluster_nats_subscriptions.Set(
      static_cast<int64_t>(cluster_->interest.subject_count()));
}

void Router::PublishToCluster(const message::Message& message) {
  Cluster& c = *cluster_;
  const std::string_view topic = message.topic();
  // '$' topics stay on this node: $SYS is per broker (MQTT-4.7.2-1), and without a prefix other
  // '$' subjects are NATS's own ($JS.API, $KV, ...).
  if (topic.empty() || topic[0] == '$') return;
  if (message.retain()) PublishRetainedToCluster(message);
  c.subject.clear();
  if (cluster::TopicToSubject(topic, c.mapping, c.subject) != cluster::Uncarried::kNone) {
    counters_.cluster_uncarried_topics.Add();
    return;
  }
  // QoS 0 batches (router_cluster_batch.cc), except a message whose shared-subscription
  // groups NATS's queue groups choose (they need it on its plain subject).
  if (c.batching && message.qos() == 0 && cluster_acks_ != nullptr &&
      c.shares_left_out != &message && BatchToCluster(message, c.subject)) {
    return;
  }
  // The plain path: batched messages forwarded before this one go first, so that the link's
  // output keeps the forwarding order (MQTT-4.6.0-6, per publisher and topic).
  if (!c.batch_dirty.empty()) FlushClusterBatches();
  char sent_at[20];  // UINT64_MAX has 20 digits
  const auto [sent_at_end, ignored] =
      std::to_chars(sent_at, sent_at + sizeof(sent_at), WallClockMicros());
  std::vector<cluster::nats::HeaderField>& headers = c.headers;  // capacity kept: no allocation
  headers.clear();
  headers.emplace_back(kNodeHeader, c.node_name);
  headers.emplace_back(kQosHeader, kDigits[message.qos() <= 2 ? message.qos() : 0]);
  headers.emplace_back(kRetainHeader, kDigits[message.retain() ? 1 : 0]);
  headers.emplace_back(kSentAtHeader,
                       std::string_view(sent_at, static_cast<size_t>(sent_at_end - sent_at)));
  if (!AppendClusterPropertyHeaders(message, headers)) return;
  const bool has_properties = headers.size() > 4;
  std::string_view reply;
  bool tracked = false;
  if (cluster_acks_ != nullptr && message.qos() > 0 &&
      TrackClusterMessage(message, c.subject, c.id_text, reply)) {
    headers.emplace_back(kIdHeader, c.id_text);
    tracked = true;
  }
  const std::span<const uint8_t> payload = message.payload();
  const std::string_view bytes(reinterpret_cast<const char*>(payload.data()), payload.size());
  const cluster::PublishResult result = c.link->Publish(c.subject, headers, bytes, reply);
  switch (result) {
    case cluster::PublishResult::kQueued:
    case cluster::PublishResult::kHeld:
      counters_.cluster_messages_out.Add();
      counters_.cluster_bytes_out.Add(payload.size());
      return;
    case cluster::PublishResult::kNoRoom:  // a tracked message is sent again later
      counters_.cluster_publish_refused.Add();
      return;
    case cluster::PublishResult::kTooLarge:
    case cluster::PublishResult::kInvalid:
      // Over max_payload with its property fields (which may be what made it too large).
      if (has_properties && result == cluster::PublishResult::kTooLarge) {
        counters_.cluster_properties_too_large.Add();
      } else {
        counters_.cluster_publish_refused.Add();
      }
      if (tracked) cluster_acks_->Untrack();  // never sendable: nothing to wait for
      return;
  }
}

bool Router::AppendClusterPropertyHeaders(const message::Message& message,
                                          std::vector<cluster::nats::HeaderField>& headers) {
  const std::optional<uint64_t> expiry_left_ms = ClusterExpiryLeftMs(message);
  // Room for the node's own fields (at most 6: node, QoS, retain, sent-at, id, and a
  // retransmit's subject) within a header block's bound.
  constexpr size_t kOwnFieldsMax = 6;
  static_assert(cluster::nats::kHeaderFieldsMax > kOwnFieldsMax);
  switch (cluster::AppendMqtt5Headers(message.properties(), expiry_left_ms,
                                      cluster::nats::kHeaderFieldsMax - kOwnFieldsMax, headers,
                                      cluster_->property_text)) {
    case cluster::Mqtt5EncodeResult::kNone:
    case cluster::Mqtt5EncodeResult::kWritten:
      return true;
    case cluster::Mqtt5EncodeResult::kTooManyFields:
      counters_.cluster_properties_too_many.Add();
      return false;
  }
  return false;
}

std::optional<uint64_t> Router::ClusterExpiryLeftMs(const message::Message& message) const {
  if (!message.has_expiry()) return std::nullopt;
  // MQTT-3.3.2-6: what is left of the interval, not what the publisher set.
  const uint64_t now_ms = services_.now_ms();
  const uint64_t deadline_ms = message.expiry_deadline_ms();
  return deadline_ms > now_ms ? deadline_ms - now_ms : 0;
}

bool Router::ClusterExpiryDeadline(std::optional<uint64_t> left_ms, uint64_t& deadline_ms) {
  deadline_ms = 0;
  if (!left_ms) return true;
  if (*left_ms == 0) {
    // Expired on the way (5.0:3.3.2.3.3: not sent to subscribers that have not got it).
    counters_.cluster_expired_in_transit.Add();
    return false;
  }
  // This node's max_message_expiry bounds it as it bounds its own publishers' intervals.
  uint64_t bounded_ms = *left_ms;
  if (max_message_expiry_s_ != 0) {
    bounded_ms = std::min<uint64_t>(bounded_ms, uint64_t{max_message_expiry_s_} * 1000);
  }
  deadline_ms = services_.now_ms() + bounded_ms;
  return true;
}

bool Router::ClusterMqtt5Fields(const cluster::Mqtt5HeaderDecoder& decoder,
                                message::Mqtt5Fields& fields) {
  if (decoder.dropped() != 0) counters_.cluster_properties_dropped.Add(decoder.dropped());
  fields = message::Mqtt5Fields{.properties = decoder.properties(), .expiry_deadline_ms = 0};
  return ClusterExpiryDeadline(decoder.expiry_left_ms(), fields.expiry_deadline_ms);
}

void Router::OnClusterMessage(const cluster::NatsMessage& nats_message) {
  RINGMQ_ASSERT(cluster_ != nullptr);
  if (OnClaimMessage(nats_message)) return;  // client ids across nodes (router_cluster_owner.cc)
  if (OnSessionInboxMessage(nats_message)) return;  // session records (router_cluster_session.cc)
  Cluster& c = *cluster_;
  if (c.batch_sid != 0 && nats_message.sid == c.batch_sid) {
    OnClusterBatch(nats_message);  // QoS 0 batches (router_cluster_batch.cc)
    return;
  }
  if (c.retained->OnMessage(nats_message, services_.now_ms())) return;
  if (cluster_acks_ != nullptr && OnClusterControl(nats_message)) return;
  uint8_t qos = 0;  // a NATS application's message: at most once
  bool echo = false;
  uint64_t sent_at_us = 0;  // 0: no Ringmq-Sent-At (a NATS application's message)
  cluster::Mqtt5HeaderDecoder properties(c.property_block);
  cluster::ForEachHeaderField(nats_message.headers, [&](std::string_view name,
                                                        std::string_view value) {
    if (name == kNodeHeader && value == c.node_name) {
      echo = true;
      return false;
    }
    if (name == kQosHeader && value.size() == 1 && value[0] >= '0' && value[0] <= '2') {
      qos = static_cast<uint8_t>(value[0] - '0');
    }
    if (name == kSentAtHeader) std::from_chars(value.data(), value.data() + value.size(), sent_at_us);
    properties.Field(name, value);  // 5.0 properties; a NATS application's headers
    return true;
  });
  if (echo) {
    // Published by another shard of this node: its local subscribers were served then.
    counters_.cluster_echoes_dropped.Add();
    return;
  }
  if (!c.interest.KeepCopy(nats_message.sid, nats_message.subject)) {
    counters_.cluster_overlap_dropped.Add();
    return;
  }
  // A '$' subject is never delivered (below): a control message's copy for a '>' subscription
  // is not acknowledged either.
  if (cluster_acks_ != nullptr && !nats_message.reply.empty() &&
      !nats_message.subject.starts_with('$') && !AcceptClusterData(nats_message)) {
    return;  // a message sent again that this shard delivered already
  }
  message::Mqtt5Fields mqtt5;
  if (!ClusterMqtt5Fields(properties, mqtt5)) return;
  DeliverFromCluster(nats_message.subject, qos, nats_message.payload, sent_at_us, mqtt5);
}

void Router::DeliverFromCluster(std::string_view subject, uint8_t qos,
                                std::string_view payload_bytes, uint64_t sent_at_us,
                                const message::Mqtt5Fields& mqtt5) {
  Cluster& c = *cluster_;
  c.topic.clear();
  // '$' topics are never forwarded by a node; one from a NATS application is not let into
  // this broker's '$' space ($SYS is the broker's own, MQTT-4.7.2-1).
  if (!cluster::SubjectToTopic(subject, c.prefix, c.topic) || c.topic[0] == '$') {
    counters_.cluster_unmappable_subjects.Add();
    return;
  }
  if (sent_at_us != 0) {
    const uint64_t now_us = WallClockMicros();
    counters_.ObserveClusterHop(now_us > sent_at_us ? now_us - sent_at_us : 0);
  }
  DeliverTopicFromCluster(c.topic, qos, payload_bytes, mqtt5);
}

void Router::DeliverTopicFromCluster(std::string_view topic, uint8_t qos,
                                     std::string_view payload_bytes,
                                     const message::Mqtt5Fields& fields) {
  const auto* payload = reinterpret_cast<const uint8_t*>(payload_bytes.data());
  message::MessageRef message = message::MessageRef::Create(
      topic, std::span<const uint8_t>(payload, payload_bytes.size()), qos,
      /*retain=*/false, NextOrigin(), fields);
  counters_.cluster_messages_in.Add();
  counters_.cluster_bytes_in.Add(payload_bytes.size());
  EligibleContext context{this, message.get(),
                          sub::Subscriber{.shard = 0, .session = kNone, .generation = 0, .qos = 0}};
  sub::ShareChoice choice = ChoiceFor(context, 0);
  choice.groups = false;  // groups get the message through their queue subscriptions
  shared_.trie.Match(message->topic(), match_, choice);
  for (const sub::ShardSubscribers& group : match_.shards()) {
    // The other shards' sessions get the message from their own links.
    if (group.shard != shard_) continue;
    message::MessageRefBatch references(message.get(), /*owned=*/0,
                                        static_cast<uint32_t>(group.subscribers.size()));
    for (const sub::Subscriber& subscriber : group.subscribers) {
      DeliverLocal(subscriber.session, subscriber.generation, MinQos(subscriber.qos, qos),
                   message.get(), /*retain=*/false, subscriber.acl_check, &references,
                   /*shared=*/false, /*may_reroute=*/false, subscriber.options);
    }
  }
}

}  // namespace ringmq::shard
