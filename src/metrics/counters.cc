#include "metrics/counters.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ringmq::metrics {

void ShardCounters::AddTo(Snapshot& total) const {
  // Gauges first, with acquire: each synchronizes with the shard's release store of the value
  // read, so the counter loads below see at least the counts added before it.
#define RINGMQ_GAUGE_ADD(name) total.gauges.name += gauges.name.LoadAcquire();
  RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_ADD)
#undef RINGMQ_GAUGE_ADD
#define RINGMQ_COUNTER_ADD(name) total.name += name.Load();
  RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_ADD)
#undef RINGMQ_COUNTER_ADD
  for (size_t i = 0; i < connect.size(); ++i) {
    total.connect[i] += connect[i].Load();
    total.connect_silenced[i] += connect_silenced[i].Load();
  }
  for (size_t i = 0; i < cluster_hop.size(); ++i) total.cluster_hop[i] += cluster_hop[i].Load();
  total.cluster_hop_sum_us += cluster_hop_sum_us.Load();
}

void ShardCounters::AddListenersTo(std::span<ListenerSnapshot> totals) const {
  const size_t count = std::min<size_t>(totals.size(), listener_count_);
  for (size_t i = 0; i < count; ++i) {
    const ListenerCounters& from = listeners_[i];
    ListenerSnapshot& to = totals[i];
#define RINGMQ_LISTENER_COUNTER_ADD(name) to.name += from.name.Load();
    RINGMQ_LISTENER_COUNTERS(RINGMQ_LISTENER_COUNTER_ADD)
#undef RINGMQ_LISTENER_COUNTER_ADD
    to.connections_open += from.connections_open.Load();
  }
}

// bridge lane
void ShardCounters::AddBridgesTo(std::span<BridgeSnapshot> totals) const {
  const size_t count = std::min<size_t>(totals.size(), bridge_count_);
  for (size_t i = 0; i < count; ++i) {
    const BridgeCounters& from = bridges_[i];
    BridgeSnapshot& to = totals[i];
#define RINGMQ_BRIDGE_COUNTER_ADD(name) to.name += from.name.Load();
    RINGMQ_BRIDGE_COUNTERS(RINGMQ_BRIDGE_COUNTER_ADD)
#undef RINGMQ_BRIDGE_COUNTER_ADD
    to.connected += from.connected.Load();
  }
}

std::string Snapshot::Format() const {
  std::string text;
#define RINGMQ_COUNTER_FORMAT(name) \
  absl::StrAppend(&text, text.empty() ? "" : " ", #name "=", name);
  RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_FORMAT)
#undef RINGMQ_COUNTER_FORMAT
  for (size_t i = 0; i < connect.size(); ++i) {
    text.append(" connect_").append(connect::LabelOf(static_cast<connect::Reason>(i)));
    absl::StrAppend(&text, "=", connect[i]);
  }
  for (size_t i = 0; i < connect_silenced.size(); ++i) {
    text.append(" connect_silenced_").append(connect::LabelOf(static_cast<connect::Reason>(i)));
    absl::StrAppend(&text, "=", connect_silenced[i]);
  }
  return text;
}

}  // namespace ringmq::metrics
