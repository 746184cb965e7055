// Shard: duplicate node names (shard.h, "Duplicate node names"; cluster/node_identity.h;
// docs/cluster.md, "Node names").
#include <signal.h>
#include <unistd.h>

#include <memory>

#include "common/assert.h"
#include "common/log.h"
#include "shard/shard.h"

namespace ringmq::shard {
namespace {

constexpr uint64_t kConflictLogIntervalMs = 10'000;

}  // namespace

void Shard::SetupNodeIdentity() {
  if (index_ != 0) return;  // one announcer per node
  node_identity_ = std::make_unique<cluster::NodeIdentity>(
      config_.cluster_subject_prefix, shared_.cluster_node_name,
      static_cast<uint64_t>(shared_.started_unix_seconds * 1000.0), shared_.cluster_instance);
  const absl::StatusOr<uint64_t> sid =
      nats_->link->Subscribe(node_identity_->subject(), /*queue_group=*/{});
  // The node name is a valid NATS token (the config checks it); a refusal is a bug.
  RINGMQ_ASSERT(sid.ok());
  node_identity_sid_ = *sid;
}

void Shard::AnnounceNode() {
  if (node_identity_ == nullptr) return;
  // Refused only at the link's byte bound: the next handshake announces again.
  nats_->link->Publish(node_identity_->subject(), {}, node_identity_->payload());
}

bool Shard::OnNodeAnnouncement(const cluster::NatsMessage& message) {
  if (node_identity_ == nullptr) return false;
  const cluster::NodeIdentity::Judgement judgement = node_identity_->Judge(message.payload);
  switch (judgement.verdict) {
    case cluster::NodeIdentity::Verdict::kSelf:
    case cluster::NodeIdentity::Verdict::kMalformed:
      return true;
    case cluster::NodeIdentity::Verdict::kOtherIsNewer:
      counters_.cluster_node_name_conflicts.Add();
      if (now_ms_ >= node_conflict_warning_ms_) {
        node_conflict_warning_ms_ = now_ms_ + kConflictLogIntervalMs;
        RINGMQ_LOG_ERROR(
            "cluster: another node started with node_name \"%s\" (instance %016lx, this one "
            "%016lx): it stops; give each node its own [cluster] node_name",
            shared_.cluster_node_name.c_str(), static_cast<unsigned long>(judgement.other_instance),
            static_cast<unsigned long>(node_identity_->instance()));
      }
      AnnounceNode();  // so that the newcomer learns of this node even if it announced first
      return true;
    case cluster::NodeIdentity::Verdict::kThisIsNewer:
      counters_.cluster_node_name_conflicts.Add();
      if (shared_.stop_with_error.exchange(true)) return true;  // asked already
      RINGMQ_LOG_ERROR(
          "cluster: node_name \"%s\" is already used by a node started earlier (instance "
          "%016lx, this one %016lx): stopping; give each node its own [cluster] node_name",
          shared_.cluster_node_name.c_str(), static_cast<unsigned long>(judgement.other_instance),
          static_cast<unsigned long>(node_identity_->instance()));
      // The main thread takes SIGTERM synchronously (main.cc), stops the broker and exits
      // with status 1 (Broker::stopped_with_error). One syscall, once in the process's life.
      kill(getpid(), SIGTERM);
      return true;
  }
  return true;
}

}  // namespace ringmq::shard
