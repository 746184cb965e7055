// Router: QoS 0 batches between nodes (batch lane; router.h "FlushClusterBatches";
// cluster/batch.h; docs/cluster.md "Batching QoS 0").
//
// Sending (batching on): PublishToCluster hands a QoS 0 message to BatchToCluster, which
// matches its subject against the other nodes' links' announced interest (RemoteInterest, the
// acks layer's table: announcements run whenever clustering is on) and appends one record to
// the batch of each matching link. FlushClusterBatches publishes every non-empty batch as one
// NATS message on the link's batch subject; the shard calls it once per loop iteration before
// it takes the link's output (ClusterAckStep calls it too, before links are forgotten), and
// PublishToCluster calls it before any message that takes the plain path, so that the link's
// output keeps the order in which this shard forwarded messages (MQTT-4.6.0-6: order per
// publisher and topic; one shard's messages travel one NATS connection, whose order NATS keeps
// to each receiving connection).
//
// Receiving (always): the records of a batch addressed to this shard's link are delivered in
// order to this shard's matching sessions, as a plain message from another node is.
//
// MQTT 5.0 properties (batchprops lane; cluster/batch.h "properties"): a record carries the
// properties a subscriber on another node must get and the expiry left, the plain path's
// header fields in the MQTT property encoding. The sender copies them from the message's block
// into a per-shard scratch string (capacity kept); the receiver hands the record's validated
// block to the Message it creates (one copy, into the Message's own allocation), so a record
// costs no allocation beyond the Message's, with or without properties, where the plain path
// rebuilds its block from the headers into a scratch buffer first.
#include <time.h>

#include <string_view>

#include "cluster/batch.h"
#include "cluster/control.h"
#include "common/assert.h"
#include "shard/router.h"
#include "shard/router_cluster.h"
#include "shard/router_cluster_acks.h"

namespace ringmq::shard {
void Router::StartClusterBatches(bool batching, size_t bytes_max) {
  RINGMQ_ASSERT(cluster_ != nullptr && cluster_acks_ != nullptr && cluster_->batch_sid == 0);
  Cluster& c = *cluster_;
  c.batching = batching;
  c.batch_bytes_max = bytes_max;
  // $RINGMQ[.p].b.<node>.<shard>: the batches other nodes address to this link.
  std::string subject = cluster::ControlSubject(c.prefix, cluster::kBatchKind);
  subject.push_back('.');
  subject.append(cluster_acks_->link_name);
  const absl::StatusOr<uint64_t> sid = c.link->Subscribe(subject, /*queue_group=*/{});
  RINGMQ_ASSERT(sid.ok());  // a valid subject, a link that is not stopped
  c.batch_sid = *sid;
}

bool Router::BatchToCluster(const message::Message& message, std::string_view subject) {
  Cluster& c = *cluster_;
  ClusterAcks& a = *cluster_acks_;
  // NATS's queue groups get a message only on its plain subject; a link the interest table
  // refused would get no batch.
  if (a.remote_group_links != 0 || a.interest.refused_links() != 0 ||
      a.interest.refused_subjects() != 0) {
    return false;
  }
  // MQTT 5.0 properties: the carried ones (not Topic Alias, the block's own expiry; a will's
  // Will Delay Interval) and the expiry left, as the plain path's headers.
  c.batch_properties.clear();
  cluster::AppendBatchProperties(message.properties(), c.batch_properties);
  const std::span<const uint8_t> payload = message.payload();
  const cluster::BatchRecord record{
      .topic = message.topic(),
      .qos = 0,
      .retain = message.retain(),
      .properties = c.batch_properties,
      .expiry_left_ms = ClusterExpiryLeftMs(message),
      .payload = std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()),
  };
  // The bound: batch_bytes_max, and what the server accepts (NATS's default until a server
  // said: batches made while the link is down are held for the next server).
  size_t bound = c.batch_bytes_max;
  const int64_t max_payload = c.link->server_info().max_payload;
  const size_t server_max = max_payload > 0 ? static_cast<size_t>(max_payload)
                                            : cluster::nats::kDefaultMaxPayload;
  if (server_max < bound) bound = server_max;
  const size_t header_size = cluster::kBatchHeaderOverhead + c.node_name.size();
  const size_t record_size = cluster::BatchRecordSize(record);
  if (header_size + record_size > bound || record.topic.size() > UINT16_MAX) {
    counters_.cluster_batch_oversize.Add();
    return false;  // alone over the bound: its plain subject
  }
  a.interest.Match(subject, c.batch_slots);
  if (c.batch_slots.empty()) return true;  // no other node is interested: nothing to send
  for (const uint32_t slot : c.batch_slots) {
    if (slot >= c.batches.size()) c.batches.resize(slot + 1);  // at most links_max
    Cluster::Batch& batch = c.batches[slot];
    if (batch.records != 0 && batch.bytes.size() + record_size > bound) {
      // Flushed early: this batch alone, so the link's output keeps the forwarding order
      // (the other batches hold only messages forwarded before, to other links).
      counters_.cluster_batch_flush_bound.Add();
      FlushClusterBatch(slot);
    }
    if (batch.records == 0) {
      batch.subject.clear();
      batch.subject.append(a.control_prefix)
          .append(cluster::kBatchKind)
          .push_back('.');
      batch.subject.append(a.interest.name(slot));
      cluster::BeginBatch(batch.bytes, c.node_name);
      if (!batch.listed) {
        batch.listed = true;
        c.batch_dirty.push_back(slot);
      }
    }
    cluster::AppendBatchRecord(batch.bytes, record);
    ++batch.records;
  }
  if (cluster::BatchPropertiesSize(record) != 0) counters_.cluster_batch_mqtt5_out.Add();
  counters_.cluster_batch_messages_out.Add(c.batch_slots.size());
  counters_.cluster_messages_out.Add();
  counters_.cluster_bytes_out.Add(payload.size());
  return true;
}

void Router::FlushClusterBatch(uint32_t slot) {
  Cluster& c = *cluster_;
  Cluster::Batch& batch = c.batches[slot];
  if (batch.records == 0) return;
  cluster::SealBatch(batch.bytes, WallClockMicros());
  switch (c.link->Publish(batch.subject, {}, batch.bytes)) {
    case cluster::PublishResult::kQueued:
    case cluster::PublishResult::kHeld:
      counters_.cluster_batches_out.Add();
      break;
    case cluster::PublishResult::kNoRoom:
    case cluster::PublishResult::kTooLarge:
    case cluster::PublishResult::kInvalid:
      // The link's outbound bound (NATS unreachable for long): at most once, as a plain QoS 0
      // message the link refuses.
      counters_.cluster_batch_refused.Add(batch.records);
      counters_.cluster_publish_refused.Add();
      break;
  }
  batch.records = 0;
  batch.bytes.clear();
}

void Router::FlushClusterBatches() {
  if (cluster_ == nullptr) return;
  Cluster& c = *cluster_;
  for (const uint32_t slot : c.batch_dirty) {
    FlushClusterBatch(slot);
    c.batches[slot].listed = false;
  }
  c.batch_dirty.clear();
}

void Router::OnClusterBatch(const cluster::NatsMessage& nats_message) {
  Cluster& c = *cluster_;
  counters_.cluster_batches_in.Add();
  cluster::BatchHeader header;
  std::string_view records;
  if (!cluster::ParseBatchHeader(nats_message.payload, header, records)) {
    counters_.cluster_batch_invalid.Add();
    return;
  }
  if (header.node == c.node_name) {  // never addressed to its own node's links
    counters_.cluster_echoes_dropped.Add();
    return;
  }
  const uint64_t now_us = header.sent_at_us != 0 ? WallClockMicros() : 0;
  const uint64_t hop_us = now_us > header.sent_at_us ? now_us - header.sent_at_us : 0;
  cluster::BatchRecord record;
  for (;;) {
    switch (cluster::NextBatchRecord(records, record)) {
      case cluster::BatchNext::kEnd:
        return;
      case cluster::BatchNext::kInvalid:
        // The records before were delivered; the rest cannot be framed.
        counters_.cluster_batch_invalid.Add();
        return;
      case cluster::BatchNext::kRecord:
        break;
    }
    if (header.sent_at_us != 0) counters_.ObserveClusterHop(hop_us);
    counters_.cluster_batch_messages_in.Add();
    // Validated by NextBatchRecord: a block a PUBLISH may carry (5.0 subscribers get it; the
    // encoding for a 3.1.1 subscriber leaves it out).
    message::Mqtt5Fields mqtt5{
        .properties = std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(record.properties.data()), record.properties.size()),
        .expiry_deadline_ms = 0};
    if (!ClusterExpiryDeadline(record.expiry_left_ms, mqtt5.expiry_deadline_ms)) continue;
    DeliverTopicFromCluster(record.topic, record.qos, record.payload, mqtt5);
  }
}

}  // namespace ringmq::shard
