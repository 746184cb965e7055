// Router: retained messages cluster-wide (router.h "ClusterTick"; cluster/retained_sync.h;
// docs/cluster.md "Retained messages").
#include <chrono>
#include <span>
#include <string_view>

#include "common/assert.h"
#include "shard/router.h"
#include "shard/router_cluster.h"

namespace ringmq::shard {
namespace {

uint64_t WallClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

void Router::AttachClusterRetained() {
  Cluster& c = *cluster_;
  c.retained_sink = std::make_unique<ClusterRetainedSink>(this);
  // Shard 0's link runs the node's one consumer: the store is shared by the node's shards.
  c.retained = std::make_unique<cluster::RetainedSync>(
      *c.link,
      cluster::RetainedSyncOptions{
          .prefix = c.prefix,
          .node_name = c.node_name,
          .shard = shard_,
          .consume = shard_ == 0,
          // Wall-clock milliseconds: a restarted node's Nats-Msg-Ids differ from the last run's.
          .start_id = WallClockMs()},
      c.retained_sink.get());
}

void Router::PublishRetainedToCluster(const message::Message& message) {
  RINGMQ_ASSERT(cluster_ != nullptr && message.retain());
  const std::span<const uint8_t> payload = message.payload();
  // A 5.0 Message Expiry Interval crosses as its wall-clock end: a node that reads the stream
  // later gives the message only the time left (5.0:3.3.2.3.3; node clocks assumed in sync).
  uint64_t expires_at_unix_ms = 0;
  if (message.has_expiry()) {
    const uint64_t now_ms = services_.now_ms();
    const uint64_t deadline_ms = message.expiry_deadline_ms();
    expires_at_unix_ms = WallClockMs() + (deadline_ms > now_ms ? deadline_ms - now_ms : 0);
  }
  cluster_->retained->Publish(
      message.topic(),
      std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()),
      message.qos(), expires_at_unix_ms, message.properties());
}

void Router::ApplyClusterRetained(std::string_view topic, std::string_view payload, uint8_t qos,
                                  uint64_t expires_at_unix_ms,
                                  std::span<const uint8_t> properties) {
  RINGMQ_ASSERT(cluster_ != nullptr && qos <= 2);
  // retain_available false: this broker keeps no retained messages for clients (a NATS
  // application or another node's update included).
  if (!context_.retain_available) {
    counters_.cluster_retained_store_refused.Add();
    return;
  }
  uint64_t deadline_ms = 0;
  if (expires_at_unix_ms != 0) {
    const uint64_t wall_ms = WallClockMs();
    // Expired already: the topic's retained message is deleted, as the stream's last word on it
    // must not be served (5.0:3.3.2.3.3).
    if (expires_at_unix_ms <= wall_ms) payload = {};
    deadline_ms =
        services_.now_ms() + (expires_at_unix_ms > wall_ms ? expires_at_unix_ms - wall_ms : 0);
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(payload.data());
  // Stored, not routed: live subscribers got the update as an ordinary cluster message.
  const message::MessageRef message = message::MessageRef::Create(
      topic, std::span<const uint8_t>(bytes, payload.size()), qos, /*retain=*/true, NextOrigin(),
      // The publisher's 5.0 properties from the stream's header fields (5.0:3.3.2.3; a 3.1.1
      // subscriber gets none, as from a local publisher).
      message::Mqtt5Fields{.properties = properties,
                           .expiry_deadline_ms = payload.empty() ? 0 : deadline_ms});
  const uint64_t refused_before = counters_.retained_refused.Load();
  Retain(message);
  if (counters_.retained_refused.Load() != refused_before) {
    counters_.cluster_retained_store_refused.Add();
  }
}

void Router::ClusterTick(uint64_t now_ms) {
  if (cluster_ == nullptr) return;
  Cluster& c = *cluster_;
  c.retained->OnTick(now_ms);
  SessionsTick(now_ms);  // persistent sessions across nodes (router_cluster_session.cc)
  // The sync object counts in plain integers; the shard's counters get the differences.
  const cluster::RetainedSyncCounters& now = c.retained->counters();
  cluster::RetainedSyncCounters& done = c.retained_exported;
  auto export_delta = [](uint64_t current, uint64_t& exported, metrics::Counter& counter) {
    if (current != exported) counter.Add(current - exported);
    exported = current;
  };
  export_delta(now.updates_out, done.updates_out, counters_.cluster_retained_out);
  export_delta(now.updates_in, done.updates_in, counters_.cluster_retained_in);
  export_delta(now.publish_refused, done.publish_refused,
               counters_.cluster_retained_publish_refused);
  export_delta(now.uncarried, done.uncarried, counters_.cluster_retained_uncarried);
  export_delta(now.unmappable, done.unmappable, counters_.cluster_retained_unmappable);
  export_delta(now.acks, done.acks, counters_.cluster_retained_acks);
  export_delta(now.stream_errors, done.stream_errors, counters_.cluster_retained_stream_errors);
  export_delta(now.duplicates, done.duplicates, counters_.cluster_retained_duplicates);
  export_delta(now.consumer_starts, done.consumer_starts,
               counters_.cluster_retained_consumer_starts);
  export_delta(now.gaps, done.gaps, counters_.cluster_retained_gaps);
  export_delta(now.resent, done.resent, counters_.cluster_retained_resent);
  export_delta(now.untracked, done.untracked, counters_.cluster_retained_untracked);
  // retained5 lane.
  export_delta(now.properties_too_many, done.properties_too_many,
               counters_.cluster_retained_properties_too_many);
  export_delta(now.properties_dropped, done.properties_dropped,
               counters_.cluster_retained_properties_dropped);
}

}  // namespace ringmq::shard
