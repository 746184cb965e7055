#include "metrics/counters.h"

#include "absl/strings/str_cat.h"

namespace ringmq::metrics {

void ShardCounters::AddTo(Snapshot& total) const {
#define RINGMQ_COUNTER_ADD(name) total.name += name.Load();
  RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_ADD)
#undef RINGMQ_COUNTER_ADD
  for (size_t i = 0; i < connect.size(); ++i) {
    total.connect[i] += connect[i].Load();
    total.connect_silenced[i] += connect_silenced[i].Load();
  }
#define RINGMQ_GAUGE_ADD(name) total.gauges.name += gauges.name.Load();
  RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_ADD)
#undef RINGMQ_GAUGE_ADD
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
