#include "metrics/counters.h"

#include "absl/strings/str_cat.h"

namespace ringmq::metrics {

void ShardCounters::AddTo(Snapshot& total) const {
#define RINGMQ_COUNTER_ADD(name) total.name += name.Load();
  RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_ADD)
#undef RINGMQ_COUNTER_ADD
  for (size_t i = 0; i < connect.size(); ++i) total.connect[i] += connect[i].Load();
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
  return text;
}

}  // namespace ringmq::metrics
