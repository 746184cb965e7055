// Router: shared subscriptions across the cluster as NATS queue groups (router.h,
// AttachClusterShares; docs/cluster.md, "Shared subscriptions").
#include <functional>
#include <optional>
#include <string_view>

#include "cluster/mqtt5_headers.h"
#include "common/assert.h"
#include "mqtt/topic.h"
#include "shard/router.h"
#include "shard/router_cluster.h"
#include "shard/router_cluster_acks.h"

namespace ringmq::shard {
namespace {

// The QoS a ringmq node published the message at; 0 without it (a NATS application's message:
// at most once) or with a value that is no QoS.
uint8_t QosOf(std::string_view headers) {
  const std::string_view value = HeaderValue(headers, kQosHeader);
  return value.size() == 1 && value[0] >= '0' && value[0] <= '2'
             ? static_cast<uint8_t>(value[0] - '0')
             : 0;
}

}  // namespace

void Router::AttachClusterShares(cluster::NatsLink* share_link) {
  RINGMQ_ASSERT(cluster_ != nullptr && cluster_->shares == nullptr && share_link != nullptr);
  RINGMQ_ASSERT(sessions_.size() == 0);
  cluster_->shares = std::make_unique<ClusterShares>(*share_link, cluster_->mapping);
  // At least once for groups: the shares announce their queue subjects through the acks layer.
  if (cluster_acks_ != nullptr) cluster_->shares->set_observer(cluster_acks_.get());
}

size_t Router::cluster_share_subscription_count() const {
  return cluster_ == nullptr || cluster_->shares == nullptr
             ? 0
             : cluster_->shares->subscription_count();
}

bool Router::ClusterShareChange(std::string_view filter, bool acquire) {
  const std::optional<mqtt::SharedFilter> shared = mqtt::ParseSharedFilter(filter);
  if (!shared) return false;
  ClusterShares* shares = cluster_->shares.get();
  if (shares == nullptr) return true;  // groups stay per node
  if (acquire) {
    shares->Acquire(shared->share_name, shared->filter);
  } else {
    shares->Release(shared->share_name, shared->filter);
  }
  counters_.gauges.cluster_share_subscriptions.Set(
      static_cast<int64_t>(shares->subscription_count()));
  return true;
}

bool Router::ClusterChoosesShares(message::Message* message, uint64_t publisher_key) {
  Cluster& c = *cluster_;
  c.shares_left_out = nullptr;
  // No group on this node: nothing to leave out. (A group another shard creates meanwhile has
  // no queue subscription at the NATS servers yet either.)
  if (c.shares == nullptr || !c.link->ready() || shared_.trie.group_count() == 0) return false;
  // '$' topics stay on this node (PublishToCluster).
  const std::string_view topic = message->topic();
  if (topic.empty() || topic[0] == '$') return false;
  c.shares_left_out = message;
  c.shares_publisher_key = publisher_key;
  return true;
}

void Router::ForwardToClusterWithShares(const message::Message& message) {
  Cluster& c = *cluster_;
  const uint64_t published = c.link->counters().messages_out;
  PublishToCluster(message);
  if (c.shares_left_out != &message) return;
  message::Message* left_out = c.shares_left_out;
  c.shares_left_out = nullptr;
  // The link took it (queued, or held while it reconnects): NATS's queue groups choose.
  if (c.link->counters().messages_out != published) return;
  // Not forwarded (a topic no subject carries, over the server's max_payload, the link's
  // outbound bound): no other node gets it, so this node's groups choose, as without a cluster.
  counters_.cluster_share_local.Add();
  EligibleContext context{this, left_out,
                          sub::Subscriber{.shard = 0, .session = kNone, .generation = 0, .qos = 0}};
  shared_.trie.MatchShared(left_out->topic(), match_, ChoiceFor(context, c.shares_publisher_key));
  CountShared(match_);
  DeliverShared(left_out, left_out->qos(), /*may_reroute=*/true);
}

void Router::OnClusterShareMessage(const cluster::NatsMessage& nats_message) {
  RINGMQ_ASSERT(cluster_ != nullptr && cluster_->shares != nullptr);
  Cluster& c = *cluster_;
  ClusterShares::Group group;
  // The link passes only live sids, and every live sid of this link is a group's.
  const bool found = c.shares->Find(nats_message.sid, group);
  RINGMQ_ASSERT(found);
  // A publisher's node sending again what no member acknowledged ($RINGMQ[.p].rtq.<queue>,
  // in the group's queue group): the data subject is in a header.
  // (A group on '#' also gets control subjects on its cover subject '>': dropped below as '$'.)
  std::string_view subject = nats_message.subject;
  if (group.retransmit) {
    subject = HeaderValue(nats_message.headers, kSubjectHeader);
    if (subject.empty() || nats_message.reply.empty() || cluster_acks_ == nullptr) return;
  }
  c.topic.clear();
  // The cover of a filter is wider than the filter only for '$' first levels
  // (cluster/subject.h), which are dropped here: the group's filter matches the rest.
  if (!cluster::SubjectToTopic(subject, c.prefix, c.topic) || c.topic[0] == '$') {
    counters_.cluster_unmappable_subjects.Add();
    return;
  }
  const uint8_t qos = QosOf(nats_message.headers);
  cluster::Mqtt5HeaderDecoder properties(c.property_block);
  cluster::DecodeMqtt5Headers(nats_message.headers, properties);
  message::Mqtt5Fields mqtt5;
  if (!ClusterMqtt5Fields(properties, mqtt5)) return;
  const auto* payload = reinterpret_cast<const uint8_t*>(nats_message.payload.data());
  message::MessageRef message = message::MessageRef::Create(
      c.topic, std::span<const uint8_t>(payload, nats_message.payload.size()), qos,
      /*retain=*/false, NextOrigin(), mqtt5);
  counters_.cluster_messages_in.Add();
  counters_.cluster_bytes_in.Add(nats_message.payload.size());
  // This shard's members first: NATS picked this shard's link, and a member here needs no
  // mailbox hop. With none eligible the trie's rule applies (QoS 1/2 to the strategy's member,
  // which may be on another shard).
  EligibleContext context{this, message.get(),
                          sub::Subscriber{.shard = 0, .session = kNone, .generation = 0, .qos = 0}};
  // shared_subscription_strategy = hash: the publisher's client id does not cross nodes; its
  // node and the topic stand in, so one node's messages of one topic stay with one member.
  const uint64_t key =
      share_strategy_ == sub::ShareStrategy::kHash
          ? std::hash<std::string_view>{}(HeaderValue(nats_message.headers, kNodeHeader)) ^
                std::hash<std::string_view>{}(subject)
          : 0;
  sub::ShareChoice choice = ChoiceFor(context, key);
  choice.eligible = [](void* context, const sub::Subscriber& member) {
    const auto& eligible = *static_cast<const EligibleContext*>(context);
    return member.shard == eligible.router->shard_ && EligibleMember(context, member);
  };
  shared_.trie.MatchGroup(group.share_name, group.filter, match_, choice);
  CountShared(match_);
  if (match_.empty()) {
    counters_.cluster_share_no_member.Add();
    return;  // not acknowledged: a retransmit to the group may find a member elsewhere
  }
  // At least once for groups: acknowledged in the group's name; a repeat is not delivered
  // again by this shard (QoS 2 exactly once per member).
  if (cluster_acks_ != nullptr && !nats_message.reply.empty() &&
      !AcceptClusterGroupData(nats_message, group.share_name, group.filter)) {
    return;
  }
  counters_.cluster_share_delivered.Add();
  // Not re-routed if the member cannot keep it: RerouteShared matches every group of the topic,
  // and the other groups have their own copies from NATS.
  DeliverShared(message.get(), qos, /*may_reroute=*/false);
}

void Router::DeliverShared(message::Message* message, uint8_t qos, bool may_reroute) {
  for (const sub::ShardSubscribers& members : match_.shards()) {
    if (members.shard != shard_) {
      if (outbox_.SendMessage(members.shard, message, members.subscribers) && persist_) {
        PersistSentTo(members.shard, *message);
      }
      continue;
    }
    for (const sub::Subscriber& member : members.subscribers) {
      DeliverLocal(member.session, member.generation, MinQos(member.qos, qos), message,
                   /*retain=*/false, member.acl_check, nullptr, /*shared=*/true, may_reroute,
                   member.options);
    }
  }
}

}  // namespace ringmq::shard
