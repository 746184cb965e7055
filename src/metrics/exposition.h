// Prometheus text exposition (format 0.0.4) of the broker's counters and gauges.
//
// Table-driven: every field of RINGMQ_SHARD_COUNTERS and RINGMQ_SHARD_GAUGES has an id below,
// and SeriesOf() maps each id to its metric family and label with a switch that lists every
// id and has no default, so a counter added to counters.h without an exposition entry does not
// compile (-Wswitch under -Werror); tests/metrics/exposition_test.cc also checks each one
// appears with its value. Per-shard values carry a `shard` label and are not pre-summed:
// Prometheus sums with `sum without (shard)`.
//
// Thread safety: pure functions of their arguments; Sample() only loads relaxed atomics, so it
// may run on any thread while the shards write.
#ifndef RINGMQ_METRICS_EXPOSITION_H_
#define RINGMQ_METRICS_EXPOSITION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "metrics/counters.h"

namespace ringmq::metrics {

enum class CounterId : uint16_t {
#define RINGMQ_COUNTER_ID(name) name,
  RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_ID)
#undef RINGMQ_COUNTER_ID
};
enum class GaugeId : uint16_t {
#define RINGMQ_GAUGE_ID(name) name,
  RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_ID)
#undef RINGMQ_GAUGE_ID
};
inline constexpr size_t kCounterCount = 0
#define RINGMQ_COUNTER_COUNT(name) +1
    RINGMQ_SHARD_COUNTERS(RINGMQ_COUNTER_COUNT)
#undef RINGMQ_COUNTER_COUNT
    ;
inline constexpr size_t kGaugeCount = 0
#define RINGMQ_GAUGE_COUNT(name) +1
    RINGMQ_SHARD_GAUGES(RINGMQ_GAUGE_COUNT)
#undef RINGMQ_GAUGE_COUNT
    ;

std::string_view NameOf(CounterId id);  // the counters.h field name
std::string_view NameOf(GaugeId id);
uint64_t ValueOf(const Snapshot& snapshot, CounterId id);
int64_t ValueOf(const GaugeSnapshot& snapshot, GaugeId id);

// Where one counter or gauge shows up: family name plus at most one label besides `shard`.
struct Series {
  std::string_view family;
  std::string_view label_name;   // empty: none
  std::string_view label_value;
};
Series SeriesOf(CounterId id);
Series SeriesOf(GaugeId id);

// One listener's values, summed over shards (per-listener series carry no `shard` label: the
// listener count times the shard count would make too many).
struct ListenerSample {
  std::string name;  // the `listener` label (config::ListenerName)
  ListenerSnapshot counters;
  uint64_t clients_connected = 0;  // MQTT clients connected through it (CONNECT accepted)
  uint32_t max_connections = 0;    // its max_connections setting; 0: none of its own
};

// bridge lane: one bridge's values (summed over shards: only the shard that runs it counts).
struct BridgeSample {
  std::string name;  // the `bridge` label ([[bridge]] name)
  BridgeSnapshot counters;
};

// Everything one scrape shows.
struct BrokerSample {
  std::vector<Snapshot> shards;  // index = shard number
  std::vector<ListenerSample> listeners;  // index = listener
  std::vector<BridgeSample> bridges;      // index = Config::bridges (bridge lane)
  uint64_t clients_connected = 0;
  uint64_t retained_messages = 0;
  uint32_t max_connections = 0;
  int64_t memory_accounted_bytes = 0;
  uint64_t memory_max_bytes = 0;
  int memory_pressure = 0;  // memory::Pressure as a number
  double start_time_seconds = 0;  // since the Unix epoch
  double uptime_seconds = 0;
  std::string version;
  // The /metrics endpoint's own responses: (HTTP status code, count), codes ascending.
  std::vector<std::pair<int, uint64_t>> http_responses;
};

// The exposition text: families in a fixed order, each with # HELP and # TYPE first.
std::string Render(const BrokerSample& sample);

// Label values escape backslash, double quote and line feed; HELP text backslash and line feed.
std::string EscapeLabelValue(std::string_view value);
std::string EscapeHelp(std::string_view text);

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace ringmq::metrics

#endif  // RINGMQ_METRICS_EXPOSITION_H_
