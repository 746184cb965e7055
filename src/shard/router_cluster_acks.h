// The Router's state for QoS 1 and 2 at least once across nodes (router.h, "Cluster
// acknowledgements"; docs/cluster.md); included by router.cc (its destructor) and
// router_cluster_acks.cc only.
//
// Thread safety: part of the Router, used only on its shard's thread.
#ifndef RINGMQ_SHARD_ROUTER_CLUSTER_ACKS_H_
#define RINGMQ_SHARD_ROUTER_CLUSTER_ACKS_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "mqtt/packet.h"
#include "shard/cluster_acks.h"
#include "shard/cluster_interest.h"
#include "shard/router.h"

namespace ringmq::shard {

struct Router::ClusterAcks final : ClusterInterest::Observer {
  ClusterAcks(const ClusterAckOptions& options, uint64_t first_id)
      : options(options),
        interest(this->options),
        pending(this->options, first_id),
        seen(this->options) {}

  // ClusterInterest::Observer: this shard's own interest changed; announced in the next step.
  // The message just tracked (last_id) was refused by the link for good.
  void Untrack() {
    pending.Drop(last_id);
    last_id = 0;
  }

  // The connection is gone: nothing of it is released or resumed any more.
  void Forget(uint32_t tag) {
    deferred.erase(tag);
    std::erase(held_back, tag);
  }

  // Also the share link's "q <queue> <subject>" lines (ClusterShares): announced the same way,
  // and applied to `interest` under this link's own name (own_groups_dirty), since NATS may
  // give the queue copy of a message this shard publishes to its own share link.
  void OnSubjectChange(std::string_view subject, bool added) override {
    if (subject.starts_with("q ")) own_groups_dirty = true;
    delta.push_back(added ? '+' : '-');
    delta.append(subject);
    delta.push_back('\n');
  }

  // A PUBACK / PUBREC waiting for the cluster (or behind one that waits: acks leave in the
  // order of their PUBLISHes, MQTT-4.6.0-2 and -3).
  struct DeferredAck {
    uint64_t id = 0;  // PendingAcks id, 0: waits only for the ones before it
    uint16_t packet_id = 0;
    mqtt::QoS qos = mqtt::QoS::k1;
    mqtt::ReasonCode reason = mqtt::ReasonCode::kSuccess;
  };

  const ClusterAckOptions options;
  RemoteInterest interest;
  PendingAcks pending;
  SeenIds seen;

  std::string link_name;  // "node.shard": how the other links name this one
  // Control subjects (cluster/control.h, kinds "interest", "ack", "rt").
  std::string announce_subject;  // $RINGMQ[.p].interest.a.<node>.<shard>
  std::string ack_subject;       // $RINGMQ[.p].ack.<node>.<shard>: acks for our messages
  std::string control_prefix;    // $RINGMQ[.p].
  uint64_t announce_sid = 0;     // $RINGMQ[.p].interest.a.>
  uint64_t ask_all_sid = 0;      // $RINGMQ[.p].interest.q.all
  uint64_t ask_sid = 0;          // $RINGMQ[.p].interest.q.<node>.<shard>
  uint64_t ack_sid = 0;
  uint64_t retransmit_sid = 0;  // $RINGMQ[.p].rt.<node>.<shard>: messages sent again to us

  // Announcements of our own interest.
  std::string delta;  // lines since the last step
  uint64_t sequence = 0;
  uint64_t next_heartbeat_ms = 0;
  bool snapshot_due = true;
  bool ask_all_due = true;
  std::vector<std::string> asks;  // links to ask for a snapshot (gaps seen), once per step

  // Shared-subscription groups (batch lane): each announcement carries Ringmq-Groups, whether
  // the announcing shard's share link holds queue subscriptions. QoS 0 batches bypass NATS's
  // queue groups, so a shard batches only while no remote link has groups (and no link or
  // subject was ever refused by the interest table: those links would get nothing).
  bool groups_announced = false;      // the value this shard last announced
  std::vector<uint8_t> remote_groups;  // by RemoteInterest slot: 1 if that link has groups
  size_t remote_group_links = 0;       // links with remote_groups 1
  void SetRemoteGroups(RemoteInterest::Slot slot, bool groups) {
    if (slot >= remote_groups.size()) remote_groups.resize(slot + 1, 0);
    if (remote_groups[slot] == static_cast<uint8_t>(groups)) return;
    remote_groups[slot] = static_cast<uint8_t>(groups);
    if (groups) {
      ++remote_group_links;
    } else {
      --remote_group_links;
    }
  }

  // Acks to send: per origin link's ack subject, the ids (decimal, ' ' separated).
  absl::flat_hash_map<std::string, std::string> acks_out;
  // Group acks to send: per "<ack subject>\n<queue>", "q <queue>\n" then the ids. The key is
  // also the duplicate window's origin (SeenIds), so a group's window is per member shard.
  absl::flat_hash_map<std::string, std::string> group_acks_out;
  bool own_groups_dirty = false;  // this shard's queue lines changed: applied at the next step
  bool own_groups_known = false;  // link_name is in `interest` (for its groups)

  // The publisher's side.
  uint64_t last_id = 0;  // of the message PublishToCluster just tracked (0: none)
  absl::flat_hash_map<uint32_t, std::deque<DeferredAck>> deferred;  // by connection tag
  bool completed = false;           // some pending message completed since the last step
  bool releasing = false;           // AcknowledgePublish called by the release itself
  std::vector<uint32_t> held_back;  // tags of connections paused at the pending bound

  // Scratch.
  std::vector<RemoteInterest::Slot> slots;
  std::vector<RemoteInterest::Slot> forgotten;
  std::vector<std::string> forgotten_names;
  std::string group_key;
  std::string subject;
  std::string text;
  std::string topic;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_ROUTER_CLUSTER_ACKS_H_
