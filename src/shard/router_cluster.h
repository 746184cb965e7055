// The Router's cluster state (router.h, "Cluster over NATS"); included by router.cc (its
// destructor) and router_cluster.cc only.
//
// Thread safety: part of the Router, used only on its shard's thread.
#ifndef RINGMQ_SHARD_ROUTER_CLUSTER_H_
#define RINGMQ_SHARD_ROUTER_CLUSTER_H_

#include <time.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/mqtt5_headers.h"
#include "cluster/nats_link.h"
#include "cluster/retained_sync.h"
#include "cluster/subject.h"
#include "shard/cluster_interest.h"
#include "shard/cluster_share.h"
#include "shard/router.h"

namespace ringmq::shard {

// Headers of the messages ringmq nodes publish to each other (a NATS/1.0 header block; NATS
// client protocol, "HPUB"), and what router.cc and the router_cluster*.cc files read them with:
// one definition here, so that those files also compile as one (unity builds, scripts/build.sh).
inline constexpr std::string_view kNodeHeader = "Ringmq-Node";
inline constexpr std::string_view kQosHeader = "Ringmq-Qos";
inline constexpr std::string_view kRetainHeader = "Ringmq-Retain";
inline constexpr std::string_view kIdHeader = "Ringmq-Id";  // cluster acks (router_cluster_acks.cc)
// Retransmits (to a link, or to a group's rtq subject): the data subject.
inline constexpr std::string_view kSubjectHeader = "Ringmq-Subject";
// The values of kQosHeader and kRetainHeader, by number.
inline constexpr std::string_view kDigits[] = {"0", "1", "2"};

inline uint8_t MinQos(uint8_t a, uint8_t b) { return a < b ? a : b; }

// The wall clock (not the monotonic one: the hop crosses machines), in microseconds since the
// Unix epoch: Ringmq-Sent-At and the hop latency. A vDSO call (no syscall).
inline uint64_t WallClockMicros() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

// Calls fn(name, value) for each field of a NATS header block, trimmed, until fn returns false:
// cluster::ForEachHeaderField (cluster/mqtt5_headers.h), the one reader of header blocks.
template <typename Fn>
inline void ForEachHeader(std::string_view block, Fn fn) {
  cluster::ForEachHeaderField(block, fn);
}

// The value of header `name` in a NATS header block, trimmed; empty if absent (the first field of
// that name counts). Reads in place: no allocation.
inline std::string_view HeaderValue(std::string_view block, std::string_view name) {
  std::string_view found;
  ForEachHeader(block, [&](std::string_view field, std::string_view value) {
    if (field != name) return true;
    found = value;
    return false;
  });
  return found;
}

struct Router::ClusterRetainedSink : cluster::RetainedSyncSink {
  explicit ClusterRetainedSink(Router* router) : router(router) {}
  void ApplyRetained(std::string_view topic, std::string_view payload, uint8_t qos,
                     uint64_t expires_at_unix_ms, std::span<const uint8_t> properties) override {
    router->ApplyClusterRetained(topic, payload, qos, expires_at_unix_ms, properties);
  }
  Router* const router;
};

struct Router::Cluster {
  Cluster(cluster::NatsLink* link, std::string node_name, std::string subject_prefix)
      : link(link),
        node_name(std::move(node_name)),
        prefix(std::move(subject_prefix)),
        mapping{.prefix = prefix},
        interest(*link, mapping) {
    headers.reserve(kHeadersReserved);
  }

  cluster::NatsLink* const link;
  const std::string node_name;
  const std::string prefix;
  const cluster::SubjectMapping mapping;  // views `prefix`
  ClusterInterest interest;
  std::string subject;  // reusable: the subject of the message being forwarded
  std::string topic;    // reusable: the topic of the message received
  std::string id_text;  // reusable: the Ringmq-Id value of the message being forwarded
  // MQTT 5.0 properties across nodes (cluster/mqtt5_headers.h), reusable, capacity kept: the
  // header fields of the message being forwarded (the node's own and its properties'), the
  // text its property fields point into, and the property block of the message received.
  static constexpr size_t kHeadersReserved = 16;
  std::vector<cluster::nats::HeaderField> headers;
  std::string property_text;
  std::vector<uint8_t> property_block;
  // Shared subscriptions as NATS queue groups (router_cluster_shared.cc); null until
  // AttachClusterShares.
  std::unique_ptr<ClusterShares> shares;
  // The message whose groups Route left out, until ForwardToCluster (the next call: Route and
  // ForwardToCluster are called in pairs), and its publisher key.
  message::Message* shares_left_out = nullptr;
  uint64_t shares_publisher_key = 0;
  // Retained messages cluster-wide (router_cluster_retained.cc).
  std::unique_ptr<ClusterRetainedSink> retained_sink;
  std::unique_ptr<cluster::RetainedSync> retained;
  cluster::RetainedSyncCounters retained_exported;  // what ClusterTick added to the counters
  // QoS 0 batching (batch lane, router_cluster_batch.cc; cluster/batch.h).
  struct Batch {
    std::string subject;  // $RINGMQ[.p].b.<node>.<shard> of the destination link
    std::string bytes;    // BeginBatch'ed when records != 0; capacity kept
    uint32_t records = 0;
    bool listed = false;  // in batch_dirty
  };
  bool batching = false;
  size_t batch_bytes_max = 0;
  uint64_t batch_sid = 0;       // this link's batch subject (0: StartClusterBatches not called)
  std::vector<Batch> batches;   // by RemoteInterest slot (at most links_max)
  std::vector<uint32_t> batch_dirty;  // slots whose batch has records
  std::vector<uint32_t> batch_slots;  // scratch: the links matching a message
  std::string batch_properties;       // scratch: a record's carried 5.0 properties
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_ROUTER_CLUSTER_H_
