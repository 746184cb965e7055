// Router: QoS 1 and 2 at least once across nodes (router.h, "Cluster acknowledgements";
// docs/cluster.md). The bookkeeping is cluster_acks.h; this file turns it into NATS publishes
// on the shard's link and MQTT acks on the publishers' connections.
#include "shard/router_cluster_acks.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cluster/control.h"
#include "common/assert.h"
#include "shard/cluster_share.h"
#include "shard/router_cluster.h"

namespace ringmq::shard {
namespace {

// Headers of the acks layer (beside router_cluster.h's Ringmq-Node, -Qos, -Retain, -Id).
constexpr std::string_view kKindHeader = "Ringmq-Kind";        // announcements: S, s, D, H
constexpr std::string_view kSequenceHeader = "Ringmq-Seq";
// Announcements: "1" if the announcing shard has shared-subscription groups (batch lane).
constexpr std::string_view kGroupsHeader = "Ringmq-Groups";

// Whether an announcement carries a share link's queue lines ("+q <queue> <subject>").
bool HasQueueLines(std::string_view lines) {
  return lines.starts_with("+q ") || lines.find("\n+q ") != std::string_view::npos;
}

// A decimal id (at most 19 digits: no overflow), 0 if `text` is not one.
uint64_t ParseId(std::string_view text) {
  if (text.empty() || text.size() > 19) return 0;
  uint64_t id = 0;
  for (const char digit : text) {
    if (digit < '0' || digit > '9') return 0;
    id = id * 10 + static_cast<uint64_t>(digit - '0');
  }
  return id;
}

}  // namespace

void Router::StartClusterAcks(const ClusterAckOptions& options) {
  RINGMQ_ASSERT(cluster_ != nullptr && cluster_acks_ == nullptr && sessions_.size() == 0);
  Cluster& c = *cluster_;
  // Ids continue above a previous run's: the wall clock in microseconds (a node forwarding
  // fewer than a million tracked messages per second per shard never catches up with it).
  const auto first_id =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  cluster_acks_ = std::make_unique<ClusterAcks>(options, first_id);
  ClusterAcks& a = *cluster_acks_;
  const std::string shard = std::to_string(shard_);
  a.link_name = absl::StrCat(c.node_name, ".", shard);
  a.control_prefix = cluster::ControlSubject(c.prefix, "");  // "$RINGMQ[.p]."
  a.announce_subject = cluster::ControlSubject(c.prefix, "interest", {"a", c.node_name, shard});
  a.ack_subject = cluster::ControlSubject(c.prefix, "ack", {c.node_name, shard});
  const auto subscribe = [&](const std::string& subject) {
    const absl::StatusOr<uint64_t> sid = c.link->Subscribe(subject, /*queue_group=*/{});
    RINGMQ_ASSERT(sid.ok());  // valid subjects, a link that is not stopped
    return *sid;
  };
  a.announce_sid = subscribe(cluster::ControlSubject(c.prefix, "interest", {"a", ">"}));
  a.ask_all_sid = subscribe(cluster::ControlSubject(c.prefix, "interest", {"q", "all"}));
  a.ask_sid = subscribe(cluster::ControlSubject(c.prefix, "interest", {"q", c.node_name, shard}));
  a.ack_sid = subscribe(a.ack_subject);
  a.retransmit_sid = subscribe(cluster::ControlSubject(c.prefix, "rt", {c.node_name, shard}));
  c.interest.set_observer(&a);
  if (c.shares != nullptr) c.shares->set_observer(&a);
}

void Router::OnClusterReady() {
  if (cluster_acks_ == nullptr) return;
  ClusterAcks& a = *cluster_acks_;
  const uint64_t now = services_.now_ms();
  a.snapshot_due = true;
  a.ask_all_due = true;
  a.interest.TouchAll(now);  // their silence while we were away says nothing about them
  a.pending.DueNow(now);     // what was in flight on the old connection may be lost
}

bool Router::OnClusterControl(const cluster::NatsMessage& message) {
  ClusterAcks& a = *cluster_acks_;
  const uint64_t sid = message.sid;
  if (sid == a.announce_sid) {
    // $RINGMQ[.p].interest.a.<node>.<shard>: the link is "<node>.<shard>".
    const std::string_view root = std::string_view(a.announce_subject)
                                      .substr(0, a.announce_subject.size() - a.link_name.size());
    if (!message.subject.starts_with(root)) return true;
    const std::string_view link = message.subject.substr(root.size());
    const size_t dot = link.rfind('.');
    if (dot == std::string_view::npos || link == a.link_name) return true;
    // Another shard of this node: its plain interest is served by the mailboxes, but NATS may
    // give the queue copy of our message to its share link, so its groups are tracked (from
    // its first announcement with queue lines on).
    const bool own_node = link.substr(0, dot) == cluster_->node_name;
    if (own_node && a.interest.Find(link) == RemoteInterest::kNoSlot &&
        !HasQueueLines(message.payload)) {
      return true;
    }
    const std::string_view kind = HeaderValue(message.headers, kKindHeader);
    const uint64_t sequence = ParseId(HeaderValue(message.headers, kSequenceHeader));
    if (kind.size() != 1) return true;
    const uint64_t refused_subjects = a.interest.refused_subjects();
    const RemoteInterest::Result result = a.interest.Apply(
        link, kind[0], sequence, message.payload, services_.now_ms(), /*groups_only=*/own_node);
    counters_.cluster_interest_refused.Add(a.interest.refused_subjects() - refused_subjects);
    // Absent (a node that does not say): taken as groups, which only turns batching off.
    if (const RemoteInterest::Slot slot = a.interest.Find(link);
        slot != RemoteInterest::kNoSlot && !own_node) {
      a.SetRemoteGroups(slot, HeaderValue(message.headers, kGroupsHeader) != "0");
    }
    switch (result) {
      case RemoteInterest::Result::kApplied:
        break;
      case RemoteInterest::Result::kGap:
        counters_.cluster_interest_gaps.Add();
        if (std::find(a.asks.begin(), a.asks.end(), link) == a.asks.end()) {
          a.asks.emplace_back(link);
        }
        break;
      case RemoteInterest::Result::kRefused:
        counters_.cluster_interest_refused.Add();
        break;
    }
    counters_.cluster_interest_received.Add();
    return true;
  }
  if (sid == a.ask_all_sid || sid == a.ask_sid) {
    a.snapshot_due = true;  // one per step, however many links asked
    return true;
  }
  if (sid == a.ack_sid) {
    // "<node>.<shard>\n<id> <id> ...", or from a group's member "q <queue>\n<id> <id> ..."
    std::string_view rest = message.payload;
    const size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) return true;
    const std::string_view acker = rest.substr(0, newline);
    const RemoteInterest::Slot slot = acker.starts_with("q ")
                                          ? a.interest.FindGroup(acker.substr(2))
                                          : a.interest.Find(acker);
    rest.remove_prefix(newline + 1);
    while (!rest.empty()) {
      const size_t space = rest.find(' ');
      const uint64_t id = ParseId(rest.substr(0, space));
      rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
      counters_.cluster_acks_received.Add();
      if (slot != RemoteInterest::kNoSlot && a.pending.Ack(id, slot)) a.completed = true;
    }
    return true;
  }
  if (sid == a.retransmit_sid) {
    const std::string_view qos_text = HeaderValue(message.headers, kQosHeader);
    const std::string_view subject = HeaderValue(message.headers, kSubjectHeader);
    if (qos_text.size() != 1 || qos_text[0] < '0' || qos_text[0] > '2' || subject.empty()) {
      return true;
    }
    if (!message.reply.empty() && !AcceptClusterData(message)) return true;
    cluster::Mqtt5HeaderDecoder properties(cluster_->property_block);
    cluster::DecodeMqtt5Headers(message.headers, properties);
    message::Mqtt5Fields mqtt5;
    if (!ClusterMqtt5Fields(properties, mqtt5)) return true;
    DeliverFromCluster(subject, static_cast<uint8_t>(qos_text[0] - '0'), message.payload,
                       /*sent_at_us=*/0, mqtt5);
    return true;
  }
  return false;
}

bool Router::AcceptClusterData(const cluster::NatsMessage& message) {
  ClusterAcks& a = *cluster_acks_;
  const uint64_t id = ParseId(HeaderValue(message.headers, kIdHeader));
  // Only our own ack subjects are answered (a NATS application's reply subject is not ours).
  if (id == 0 || !message.reply.starts_with(a.control_prefix)) return true;
  auto out = a.acks_out.find(HashKey(message.reply));
  if (out == a.acks_out.end()) out = a.acks_out.try_emplace(std::string(message.reply)).first;
  std::string& ids = out->second;
  if (ids.empty()) {
    absl::StrAppend(&ids, a.link_name, "\n", id);
  } else {
    absl::StrAppend(&ids, " ", id);
  }
  // A loop iteration with very many messages from one origin sends its acks in parts.
  if (ids.size() >= a.options.announce_bytes_max) SendAcks(out->first, ids);
  return FirstSeen(message.reply, id);
}

bool Router::FirstSeen(std::string_view origin, uint64_t id) {
  switch (cluster_acks_->seen.Check(origin, id)) {
    case SeenIds::Seen::kNew:
      return true;
    case SeenIds::Seen::kDuplicate:
      counters_.cluster_duplicates_dropped.Add();
      return false;
    case SeenIds::Seen::kUnknown:  // beyond the window: delivered, counted
      counters_.cluster_duplicates_unknown.Add();
      return true;
  }
  return true;
}

bool Router::AcceptClusterGroupData(const cluster::NatsMessage& message,
                                    std::string_view share_name, std::string_view filter) {
  ClusterAcks& a = *cluster_acks_;
  const uint64_t id = ParseId(HeaderValue(message.headers, kIdHeader));
  if (id == 0 || !message.reply.starts_with(a.control_prefix)) return true;
  // "<ack subject>\n<queue>": the acks' key and the duplicate window's origin.
  a.group_key.clear();
  a.group_key.append(message.reply).push_back('\n');
  AppendQueueName(share_name, filter, a.group_key);
  const std::string_view queue = std::string_view(a.group_key).substr(message.reply.size() + 1);
  if (message.reply == a.ack_subject) {
    // Our own message, and NATS picked our own share link: the main link would not receive
    // an ack it publishes itself (echo off), so it is taken here.
    const RemoteInterest::Slot slot = a.interest.FindGroup(queue);
    if (slot != RemoteInterest::kNoSlot && a.pending.Ack(id, slot)) a.completed = true;
  } else {
    auto out = a.group_acks_out.find(HashKey(a.group_key));
    if (out == a.group_acks_out.end()) out = a.group_acks_out.try_emplace(a.group_key).first;
    std::string& ids = out->second;
    if (ids.empty()) {
      absl::StrAppend(&ids, "q ", HashKey(queue), "\n", id);
    } else {
      absl::StrAppend(&ids, " ", id);
    }
    if (ids.size() >= a.options.announce_bytes_max) SendAcks(message.reply, ids);
  }
  counters_.cluster_group_acks.Add();
  return FirstSeen(a.group_key, id);
}

void Router::ForgetClusterGroups() {
  ClusterAcks& a = *cluster_acks_;
  a.forgotten.clear();
  a.forgotten_names.clear();
  a.interest.TakeForgottenGroups(a.forgotten, a.forgotten_names);
  for (const RemoteInterest::Slot slot : a.forgotten) {
    counters_.cluster_groups_forgotten.Add();
    const size_t released = a.pending.Forget(slot);
    if (released != 0) a.completed = true;
    counters_.cluster_ack_forgotten_released.Add(released);
  }
}

bool Router::TrackClusterMessage(const message::Message& message, std::string_view subject,
                                 std::string& id_text, std::string_view& reply) {
  ClusterAcks& a = *cluster_acks_;
  a.last_id = 0;
  a.interest.Match(subject, a.slots);
  // While the link is not ready the groups are per node (ClusterChoosesShares: this node's
  // members chose already), so no group is awaited; groups sort after the links.
  if (!a.slots.empty() && RemoteInterest::IsGroup(a.slots.back()) && !cluster_->link->ready()) {
    a.slots.erase(std::find_if(a.slots.begin(), a.slots.end(), RemoteInterest::IsGroup),
                  a.slots.end());
  }
  if (a.slots.empty()) return false;  // no other node is interested: acknowledged at once
  const uint64_t id =
      a.pending.Add(message::MessageRef::Share(const_cast<message::Message*>(&message)), a.slots,
                    services_.now_ms());
  if (id == 0) {
    counters_.cluster_ack_untracked.Add();
    return false;
  }
  a.last_id = id;
  id_text.clear();
  absl::StrAppend(&id_text, id);
  reply = a.ack_subject;
  return true;
}

bool Router::DeferClusterAck(net::Connection& connection, const mqtt::Publish& publish,
                             mqtt::ReasonCode reason) {
  ClusterAcks& a = *cluster_acks_;
  if (a.releasing) return false;
  const uint64_t id = std::exchange(a.last_id, 0);
  auto it = a.deferred.find(connection.tag());
  if (id == 0 && it == a.deferred.end()) return false;
  if (it == a.deferred.end()) it = a.deferred.try_emplace(connection.tag()).first;
  // 5.0: other nodes have matching interest, so "No matching subscribers" (0x10) is not true.
  if (id != 0 && reason == mqtt::ReasonCode::kNoMatchingSubscribers) {
    reason = mqtt::ReasonCode::kSuccess;
  }
  it->second.push_back(ClusterAcks::DeferredAck{
      .id = id, .packet_id = publish.packet_id, .qos = publish.qos, .reason = reason});
  if (id != 0 && a.pending.at_bound() && !connection.paused()) {
    // Its later frames wait, and its socket is not read, until pending messages drop.
    connection.Pause();
    a.held_back.push_back(connection.tag());
    counters_.cluster_ack_held_back.Add();
  }
  return true;
}

void Router::ReleaseClusterAcks() {
  ClusterAcks& a = *cluster_acks_;
  if (a.completed) {
    a.completed = false;
    for (auto it = a.deferred.begin(); it != a.deferred.end();) {
      const uint32_t tag = it->first;
      std::deque<ClusterAcks::DeferredAck>& queue = it->second;
      const uint32_t index = sessions_.IndexOfTag(tag);
      net::Connection* connection = index == kNone ? nullptr : sessions_[index].connection;
      if (connection == nullptr || connection->tag() != tag) {
        a.deferred.erase(it++);
        continue;
      }
      bool released = false;
      while (!queue.empty() && (queue.front().id == 0 || a.pending.complete(queue.front().id))) {
        const ClusterAcks::DeferredAck ack = queue.front();
        queue.pop_front();
        a.releasing = true;
        mqtt::Publish publish;
        publish.qos = ack.qos;
        publish.packet_id = ack.packet_id;
        AcknowledgePublish(*connection, publish, ack.reason);
        a.releasing = false;
        released = true;
      }
      if (released) {
        // The log's records for these PUBLISHes were appended before: this hold covers them.
        if (persist_) HoldIfLogged(*connection, /*always=*/true);
        services_.ConnectionDirty(tag);
      }
      if (queue.empty()) {
        a.deferred.erase(it++);
      } else {
        ++it;
      }
    }
  }
  if (!a.held_back.empty() && a.pending.below_resume()) {
    std::vector<uint32_t> tags;
    tags.swap(a.held_back);  // Resume may hold some back again
    for (const uint32_t tag : tags) {
      const uint32_t index = sessions_.IndexOfTag(tag);
      net::Connection* connection = index == kNone ? nullptr : sessions_[index].connection;
      if (connection == nullptr || connection->tag() != tag || !connection->paused()) continue;
      services_.ConnectionDirty(tag);
      connection->Resume(services_.now_ms(), context_);
    }
  }
}

void Router::SendAcks(std::string_view reply, std::string& ids) {
  const cluster::PublishResult result = cluster_->link->Publish(reply, {}, ids);
  if (result == cluster::PublishResult::kQueued || result == cluster::PublishResult::kHeld) {
    counters_.cluster_acks_sent.Add(static_cast<uint64_t>(std::count(ids.begin(), ids.end(), ' ')) +
                                    1);
  } else {
    counters_.cluster_control_refused.Add();  // the origin sends them again
  }
  ids.clear();
}

void Router::ClusterAckStep() {
  if (cluster_acks_ == nullptr) return;
  Cluster& c = *cluster_;
  ClusterAcks& a = *cluster_acks_;
  // QoS 0 batches of the iteration so far (router_cluster_batch.cc), before links are
  // forgotten below (their slots may then be reused).
  FlushClusterBatches();
  const uint64_t now = services_.now_ms();
  const auto publish = [&](std::string_view subject,
                           std::span<const cluster::nats::HeaderField> headers,
                           std::string_view payload, std::string_view reply = {}) {
    switch (c.link->Publish(subject, headers, payload, reply)) {
      case cluster::PublishResult::kQueued:
      case cluster::PublishResult::kHeld:
        return true;
      default:
        counters_.cluster_control_refused.Add();
        return false;
    }
  };
  // Acks: one PUB per origin link. The entries stay (their strings keep their capacity) unless
  // there are more than origins_max of them.
  for (auto& [reply, ids] : a.acks_out) {
    if (!ids.empty()) SendAcks(reply, ids);
  }
  if (a.acks_out.size() > a.options.origins_max) a.acks_out.clear();
  for (auto& [key, ids] : a.group_acks_out) {
    if (!ids.empty()) SendAcks(std::string_view(key).substr(0, key.find('\n')), ids);
  }
  if (a.group_acks_out.size() > a.options.origins_max) a.group_acks_out.clear();
  // This shard's own groups, under its own link name (ClusterAcks::OnSubjectChange): a
  // snapshot when they changed, else kept heard (a heartbeat of its only sequence number).
  if (a.own_groups_dirty && c.shares != nullptr) {
    a.own_groups_dirty = false;
    a.text.clear();
    c.shares->ForEachQueueSubject([&](std::string_view line) {
      a.text.push_back('+');
      a.text.append(line);
      a.text.push_back('\n');
    });
    a.interest.Apply(a.link_name, 'S', 0, a.text, now, /*groups_only=*/true);
    a.own_groups_known = true;
  } else if (a.own_groups_known) {
    a.interest.Apply(a.link_name, 'H', 0, {}, now, /*groups_only=*/true);
  }
  if (c.link->ready()) {
    // Announcements of this shard's interest: a snapshot when asked (replacing the delta),
    // else the delta of this iteration, in parts of at most announce_bytes_max; a heartbeat
    // with the last sequence number when nothing was sent for heartbeat_interval_ms.
    const bool groups = c.shares != nullptr && c.shares->subscription_count() != 0;
    const auto announce = [&](char kind, std::string_view lines) {
      const char kind_text[1] = {kind};
      if (kind != 'H') ++a.sequence;
      const std::string sequence = absl::StrCat(a.sequence);
      const std::array<cluster::nats::HeaderField, 3> headers = {{
          {kGroupsHeader, groups ? "1" : "0"},
          {kKindHeader, std::string_view(kind_text, 1)},
          {kSequenceHeader, sequence},
      }};
      a.groups_announced = groups;
      if (publish(a.announce_subject, headers, lines)) counters_.cluster_interest_sent.Add();
      a.next_heartbeat_ms = now + a.options.heartbeat_interval_ms;
    };
    if (a.snapshot_due) {
      a.snapshot_due = false;
      a.delta.clear();
      char kind = 'S';
      a.text.clear();
      const auto add_line = [&](std::string_view subject) {
        if (!a.text.empty() && a.text.size() + subject.size() + 2 > a.options.announce_bytes_max) {
          announce(kind, a.text);
          kind = 's';
          a.text.clear();
        }
        a.text.push_back('+');
        a.text.append(subject);
        a.text.push_back('\n');
      };
      c.interest.ForEachSubject(add_line);
      if (c.shares != nullptr) c.shares->ForEachQueueSubject(add_line);  // "q <queue> <subject>"
      announce(kind, a.text);
    } else if (!a.delta.empty()) {
      std::string_view rest = a.delta;
      while (!rest.empty()) {
        size_t cut = rest.size();
        if (cut > a.options.announce_bytes_max) {
          // Whole lines only; a single line longer than the bound goes alone.
          const size_t newline = rest.rfind('\n', a.options.announce_bytes_max - 1);
          cut = newline == std::string_view::npos ? rest.find('\n') + 1 : newline + 1;
        }
        announce('D', rest.substr(0, cut));
        rest.remove_prefix(cut);
      }
      a.delta.clear();
    }
    // Groups came or went: said at once (an empty delta), so that batching stops or resumes.
    if (groups != a.groups_announced) announce('D', {});
    if (now >= a.next_heartbeat_ms) announce('H', {});
    if (a.ask_all_due) {
      a.ask_all_due = false;
      a.asks.clear();  // every link answers this one
      publish(cluster::ControlSubject(c.prefix, "interest", {"q", "all"}), {}, {});
    }
    for (const std::string& link : a.asks) {
      a.text.clear();
      absl::StrAppend(&a.text, a.control_prefix, "interest.q.", link);
      publish(a.text, {}, {});
    }
    a.asks.clear();
    a.forgotten.clear();
    a.forgotten_names.clear();
    a.interest.Expire(now, a.forgotten, a.forgotten_names);
    for (size_t i = 0; i < a.forgotten.size(); ++i) {
      counters_.cluster_links_forgotten.Add();
      a.SetRemoteGroups(a.forgotten[i], false);
      const size_t released = a.pending.Forget(a.forgotten[i]);
      if (released != 0) a.completed = true;
      counters_.cluster_ack_forgotten_released.Add(released);
      a.subject.clear();
      absl::StrAppend(&a.subject, a.control_prefix, "ack.", a.forgotten_names[i]);
      a.seen.Forget(a.subject);
    }
    size_t given_up = 0;
    const size_t sent = a.pending.Retransmit(
        now,
        [&](PendingAcks::Entry& entry, RemoteInterest::Slot slot) {
          const message::Message& message = *entry.message;
          a.subject.clear();
          if (cluster::TopicToSubject(message.topic(), c.mapping, a.subject) !=
              cluster::Uncarried::kNone) {
            return false;  // tracked messages were carried once: cannot happen
          }
          a.text.clear();
          if (RemoteInterest::IsGroup(slot)) {
            // To the group: NATS picks one member link, a live one if there is one.
            a.text.append(a.control_prefix).append("rtq.").append(a.interest.group_name(slot));
            counters_.cluster_group_retransmits.Add();
          } else {
            a.text.append(a.control_prefix).append("rt.").append(a.interest.name(slot));
          }
          const std::string id = absl::StrCat(entry.id);
          std::vector<cluster::nats::HeaderField>& headers = c.headers;
          headers.clear();
          headers.emplace_back(kNodeHeader, c.node_name);
          headers.emplace_back(kQosHeader, kDigits[message.qos() <= 2 ? message.qos() : 0]);
          headers.emplace_back(kRetainHeader, kDigits[message.retain() ? 1 : 0]);
          headers.emplace_back(kIdHeader, id);
          headers.emplace_back(kSubjectHeader, a.subject);
          // Its 5.0 properties, the expiry as left now (it fitted when first sent).
          if (!AppendClusterPropertyHeaders(message, headers)) return false;
          const std::span<const uint8_t> payload = message.payload();
          switch (c.link->Publish(
              a.text, headers,
              std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()),
              a.ack_subject)) {
            case cluster::PublishResult::kQueued:
            case cluster::PublishResult::kHeld:
              return true;
            case cluster::PublishResult::kNoRoom:
              counters_.cluster_control_refused.Add();
              return true;  // tried again at the next retransmit time
            case cluster::PublishResult::kTooLarge:
            case cluster::PublishResult::kInvalid:
              break;
          }
          // Never sendable (over max_payload with the retransmit's header): given up.
          counters_.cluster_control_refused.Add();
          return false;
        },
        &given_up);
    if (given_up != 0) a.completed = true;
    counters_.cluster_retransmits.Add(sent);
  }
  // Groups emptied by announcements, forgotten links or this shard's own members leaving (also
  // while the link is down: the table's list of emptied groups stays bounded).
  ForgetClusterGroups();
  ReleaseClusterAcks();
  counters_.gauges.cluster_ack_pending.Set(static_cast<int64_t>(a.pending.live()));
  counters_.gauges.cluster_ack_pending_bytes.Set(static_cast<int64_t>(a.pending.bytes()));
  counters_.gauges.cluster_remote_links.Set(static_cast<int64_t>(a.interest.link_count()));
  counters_.gauges.cluster_remote_groups.Set(static_cast<int64_t>(a.interest.group_count()));
}

}  // namespace ringmq::shard
