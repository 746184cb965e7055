// The $SYS/broker/... topics: what they say, computed from the summed shard counters.
//
// Modelled on Mosquitto's $SYS tree (version, uptime, clients, messages, bytes, subscriptions,
// retained messages; see docs/metrics.md for the list and meanings). One shard (shard 0)
// publishes them as retained QoS 0 messages every sys_interval_s seconds, only those whose
// value changed since its last publication. Clients cannot publish into $SYS/ (IsSysTopic):
// such PUBLISHes are acknowledged and dropped (publish_dropped_sys_topic), as Mosquitto does,
// and a CONNECT with a will there is refused (connect::Reason::kWillTopicSys).
//
// Thread safety: SysTopics is used by one thread (the publishing shard's); the functions are
// pure.
#ifndef RINGMQ_METRICS_SYS_TOPICS_H_
#define RINGMQ_METRICS_SYS_TOPICS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "metrics/counters.h"
#include "mqtt/topic.h"

namespace ringmq::metrics {

struct SysSample {
  Snapshot total;  // every shard's counters and gauges summed
  uint64_t clients_connected = 0;
  uint64_t retained_messages = 0;
  uint64_t uptime_seconds = 0;
  std::string version;
};

using SysValues = std::vector<std::pair<std::string, std::string>>;  // (topic, payload)

// Every topic and its current payload; `clients_maximum` is the highest connected-client count
// seen so far.
SysValues AllSysValues(const SysSample& sample, uint64_t clients_maximum);

// "$SYS" or "$SYS/...": reserved for the broker (defined with the other topic rules).
using mqtt::IsSysTopic;

class SysTopics {
 public:
  // The topics whose payload changed since the previous call (all of them on the first call).
  SysValues Changed(const SysSample& sample);
  uint64_t clients_maximum() const { return clients_maximum_; }

 private:
  uint64_t clients_maximum_ = 0;
  absl::flat_hash_map<std::string, std::string> last_;  // bounded: one entry per topic
};

}  // namespace ringmq::metrics

#endif  // RINGMQ_METRICS_SYS_TOPICS_H_
