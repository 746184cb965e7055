// The Prometheus exposition: format validity (checked by a small parser of the 0.0.4 text
// format written here), every counter and gauge present with its value, CONNECT outcomes split
// exactly into refused and silenced, and label escaping.
#include "metrics/exposition.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace ringmq::metrics {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Parsed {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> counter|gauge
  std::map<std::string, std::string> helps;
};

bool ValidMetricName(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  }
  return true;
}

bool ValidLabelName(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  if (name.starts_with("__")) return false;  // reserved
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Parses the text format strictly; any deviation is a test failure with the line.
Parsed Parse(const std::string& text) {
  Parsed parsed;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "the last line must end with \\n";
  std::istringstream lines(text);
  std::string line;
  std::string current_family;
  std::set<std::string> finished_families;
  std::set<std::string> series_seen;
  while (std::getline(lines, line)) {
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      const bool is_type = line[2] == 'T';
      const size_t name_end = line.find(' ', 7);
      EXPECT_NE(name_end, std::string::npos) << line;
      if (name_end == std::string::npos) continue;
      const std::string name = line.substr(7, name_end - 7);
      const std::string rest = line.substr(name_end + 1);
      EXPECT_TRUE(ValidMetricName(name)) << line;
      if (name != current_family) {
        EXPECT_FALSE(finished_families.count(name)) << "family split in two groups: " << line;
        if (!current_family.empty()) finished_families.insert(current_family);
        current_family = name;
      }
      if (is_type) {
        EXPECT_TRUE(rest == "counter" || rest == "gauge" || rest == "histogram") << line;
        EXPECT_FALSE(parsed.types.count(name)) << "second TYPE: " << line;
        parsed.types[name] = rest;
        if (rest == "counter") {
          EXPECT_TRUE(name.ends_with("_total")) << line;
        }
      } else {
        EXPECT_FALSE(parsed.helps.count(name)) << "second HELP: " << line;
        EXPECT_EQ(rest.find('\n'), std::string::npos);
        parsed.helps[name] = rest;
      }
      continue;
    }
    EXPECT_FALSE(line.empty() || line[0] == '#') << "unexpected line: '" << line << "'";
    Sample sample;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    sample.name = line.substr(0, i);
    EXPECT_TRUE(ValidMetricName(sample.name)) << line;
    // A histogram's samples are <family>_bucket (with le), <family>_sum and <family>_count.
    std::string family = sample.name;
    if (parsed.types[current_family] == "histogram") {
      for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
        if (family == current_family + suffix) family = current_family;
      }
    }
    EXPECT_EQ(family, current_family) << "sample outside its family's group: " << line;
    EXPECT_TRUE(parsed.types.count(family)) << "sample before its TYPE: " << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        const std::string label = line.substr(i, eq - i);
        EXPECT_TRUE(ValidLabelName(label)) << line;
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            EXPECT_LT(j, line.size()) << line;
            if (j >= line.size()) break;
            EXPECT_TRUE(line[j] == '\\' || line[j] == '"' || line[j] == 'n') << line;
            value.push_back(line[j] == 'n' ? '\n' : line[j]);
          } else {
            value.push_back(line[j]);
          }
        }
        EXPECT_LT(j, line.size()) << "unterminated label value: " << line;
        EXPECT_FALSE(sample.labels.count(label)) << "repeated label: " << line;
        sample.labels[label] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      EXPECT_LT(i, line.size()) << line;
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    const std::string value = line.substr(i + 1);
    char* end = nullptr;
    sample.value = std::strtod(value.c_str(), &end);
    EXPECT_TRUE(!value.empty() && *end == '\0') << "bad value: " << line;
    std::string key = sample.name;
    for (const auto& [label, label_value] : sample.labels) key += "|" + label + "=" + label_value;
    EXPECT_TRUE(series_seen.insert(key).second) << "duplicate series: " << line;
    parsed.samples.push_back(std::move(sample));
  }
  return parsed;
}

// The value of the one sample of `name` with exactly `labels`; fails if absent.
double ValueOf(const Parsed& parsed, const std::string& name,
               const std::map<std::string, std::string>& labels) {
  for (const Sample& sample : parsed.samples) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  ADD_FAILURE() << "no sample " << name << " with the labels asked";
  return -1;
}

// Every counter and gauge of shard 1 set to a distinct value; shard 0 left at zero.
BrokerSample DistinctSample() {
  BrokerSample sample;
  sample.shards.resize(2);
  Snapshot& shard = sample.shards[1];
  uint64_t next = 1000;
#define SET_COUNTER(name) shard.name = next++;
  RINGMQ_SHARD_COUNTERS(SET_COUNTER)
#undef SET_COUNTER
  int64_t next_gauge = 500;
#define SET_GAUGE(name) shard.gauges.name = next_gauge++;
  RINGMQ_SHARD_GAUGES(SET_GAUGE)
#undef SET_GAUGE
  for (size_t i = 0; i < connect::kReasonCount; ++i) {
    shard.connect[i] = 100 + i * 10;
    shard.connect_silenced[i] = i % 3;
  }
  sample.clients_connected = 7;
  sample.retained_messages = 9;
  sample.max_connections = 100000;
  sample.start_time_seconds = 1700000000.5;
  sample.uptime_seconds = 12.25;
  sample.version = "1.2.3";
  sample.http_responses = {{200, 4}, {404, 1}};
  return sample;
}

std::map<std::string, std::string> LabelsOf(const Series& series, const std::string& shard) {
  std::map<std::string, std::string> labels{{"shard", shard}};
  if (!series.label_name.empty()) {
    labels[std::string(series.label_name)] = std::string(series.label_value);
  }
  return labels;
}

TEST(ExpositionTest, IsValidTextFormat) {
  const std::string text = Render(DistinctSample());
  const Parsed parsed = Parse(text);
  EXPECT_GT(parsed.samples.size(), 100u);
  // Every family has both HELP and TYPE.
  for (const auto& [family, type] : parsed.types) EXPECT_TRUE(parsed.helps.count(family));
  EXPECT_EQ(parsed.types.size(), parsed.helps.size());
  for (const Sample& sample : parsed.samples) EXPECT_TRUE(sample.name.starts_with("ringmq_"));
}

// A counter added to counters.h must show up, with its value, in its family.
TEST(ExpositionTest, EveryCounterIsExposedWithItsValue) {
  const Parsed parsed = Parse(Render(DistinctSample()));
  for (size_t i = 0; i < kCounterCount; ++i) {
    const auto id = static_cast<CounterId>(i);
    const Series series = SeriesOf(id);
    SCOPED_TRACE(std::string(NameOf(id)));
    EXPECT_TRUE(parsed.types.count(std::string(series.family)));
    EXPECT_EQ(parsed.types.at(std::string(series.family)), "counter");
    EXPECT_EQ(ValueOf(parsed, std::string(series.family), LabelsOf(series, "1")),
              static_cast<double>(1000 + i));
    EXPECT_EQ(ValueOf(parsed, std::string(series.family), LabelsOf(series, "0")), 0);
  }
}

TEST(ExpositionTest, EveryGaugeIsExposedWithItsValue) {
  const Parsed parsed = Parse(Render(DistinctSample()));
  for (size_t i = 0; i < kGaugeCount; ++i) {
    const auto id = static_cast<GaugeId>(i);
    const Series series = SeriesOf(id);
    SCOPED_TRACE(std::string(NameOf(id)));
    EXPECT_EQ(parsed.types.at(std::string(series.family)), "gauge");
    EXPECT_EQ(ValueOf(parsed, std::string(series.family), LabelsOf(series, "1")),
              static_cast<double>(500 + i));
  }
}

TEST(ExpositionTest, NoTwoCountersShareASeries) {
  std::set<std::string> seen;
  for (size_t i = 0; i < kCounterCount; ++i) {
    const Series series = SeriesOf(static_cast<CounterId>(i));
    EXPECT_TRUE(seen.insert(std::string(series.family) + "|" + std::string(series.label_name) +
                            "=" + std::string(series.label_value))
                    .second)
        << NameOf(static_cast<CounterId>(i));
  }
}

// The cross-node hop: per-bucket counts become cumulative buckets with le in seconds, the sum
// is in seconds, and _count equals the +Inf bucket.
TEST(ExpositionTest, ClusterHopIsACumulativeHistogram) {
  ShardCounters counters;
  for (const uint64_t us : {50, 100, 101, 900, 1'000'000, 1'000'001, 5'000'000}) {
    counters.ObserveClusterHop(us);
  }
  BrokerSample sample;
  sample.shards.resize(1);
  counters.AddTo(sample.shards[0]);
  const Parsed parsed = Parse(Render(sample));
  EXPECT_EQ(parsed.types.at("ringmq_cluster_hop_latency_seconds"), "histogram");
  const std::string bucket = "ringmq_cluster_hop_latency_seconds_bucket";
  EXPECT_EQ(ValueOf(parsed, bucket, {{"shard", "0"}, {"le", "0.0001"}}), 2);     // 50, 100
  EXPECT_EQ(ValueOf(parsed, bucket, {{"shard", "0"}, {"le", "0.00025"}}), 3);    // 101
  EXPECT_EQ(ValueOf(parsed, bucket, {{"shard", "0"}, {"le", "0.001"}}), 4);      // 900
  EXPECT_EQ(ValueOf(parsed, bucket, {{"shard", "0"}, {"le", "1"}}), 5);          // 1 s
  EXPECT_EQ(ValueOf(parsed, bucket, {{"shard", "0"}, {"le", "+Inf"}}), 7);
  EXPECT_EQ(ValueOf(parsed, "ringmq_cluster_hop_latency_seconds_count", {{"shard", "0"}}), 7);
  EXPECT_NEAR(ValueOf(parsed, "ringmq_cluster_hop_latency_seconds_sum", {{"shard", "0"}}),
              (50 + 100 + 101 + 900 + 1'000'000 + 1'000'001 + 5'000'000) / 1e6, 1e-6);
}

TEST(ExpositionTest, ConnectOutcomesSplitRefusedAndSilenced) {
  const Parsed parsed = Parse(Render(DistinctSample()));
  const std::string family = "ringmq_connect_outcomes_total";
  for (size_t i = 0; i < connect::kReasonCount; ++i) {
    const auto reason = static_cast<connect::Reason>(i);
    const std::string label(connect::LabelOf(reason));
    SCOPED_TRACE(label);
    const double total = 100 + i * 10;
    const double silenced = i % 3;
    if (reason == connect::Reason::kAccepted) {
      EXPECT_EQ(ValueOf(parsed, family,
                        {{"shard", "1"}, {"result", "accepted"}, {"reason", label}, {"code", "0"}}),
                total);
    } else if (reason == connect::Reason::kMalformed) {
      EXPECT_EQ(ValueOf(parsed, family,
                        {{"shard", "1"}, {"result", "closed_malformed"}, {"reason", label}}),
                total);
    } else {
      double code = -1;
      for (const Sample& sample : parsed.samples) {
        if (sample.name == family && sample.labels.count("reason") &&
            sample.labels.at("reason") == label && sample.labels.at("result") == "refused" &&
            sample.labels.at("shard") == "1") {
          code = std::atof(sample.labels.at("code").c_str());
          EXPECT_EQ(sample.value, total - silenced);
        }
      }
      // Refusals carry their CONNACK return code 1..5, or for the 5.0-only reasons their 5.0
      // reason code (0x80 and above).
      EXPECT_GE(code, 1);
      EXPECT_TRUE(code <= 5 || (code >= 0x80 && code <= 0xA2)) << code;
      EXPECT_EQ(ValueOf(parsed, family,
                        {{"shard", "1"}, {"result", "closed_silent_policy"}, {"reason", label}}),
                silenced);
    }
  }
  EXPECT_EQ(ValueOf(parsed, family, {{"shard", "1"}, {"result", "connect_timeout"}}),
            static_cast<double>(1000 + static_cast<size_t>(CounterId::connect_timeout)));
}

TEST(ExpositionTest, UnsupportedProtocolIsCode1AndBadCredentialsCode4) {
  const Parsed parsed = Parse(Render(DistinctSample()));
  const std::string family = "ringmq_connect_outcomes_total";
  const auto index = static_cast<size_t>(connect::Reason::kUnsupportedProtocol);
  EXPECT_EQ(ValueOf(parsed, family,
                    {{"shard", "1"},
                     {"result", "refused"},
                     {"reason", "unsupported_protocol"},
                     {"code", "1"}}),
            static_cast<double>(100 + index * 10 - index % 3));
  EXPECT_EQ(ValueOf(parsed, family,
                    {{"shard", "0"},
                     {"result", "refused"},
                     {"reason", "bad_credentials"},
                     {"code", "4"}}),
            0);
}

TEST(ExpositionTest, BrokerWideValues) {
  const Parsed parsed = Parse(Render(DistinctSample()));
  EXPECT_EQ(ValueOf(parsed, "ringmq_clients_connected", {}), 7);
  EXPECT_EQ(ValueOf(parsed, "ringmq_retained_messages", {}), 9);
  EXPECT_EQ(ValueOf(parsed, "ringmq_max_connections", {}), 100000);
  EXPECT_EQ(ValueOf(parsed, "ringmq_shards", {}), 2);
  EXPECT_EQ(ValueOf(parsed, "ringmq_build_info", {{"version", "1.2.3"}}), 1);
  EXPECT_DOUBLE_EQ(ValueOf(parsed, "ringmq_start_time_seconds", {}), 1700000000.5);
  EXPECT_DOUBLE_EQ(ValueOf(parsed, "ringmq_uptime_seconds", {}), 12.25);
  EXPECT_EQ(ValueOf(parsed, "ringmq_metrics_requests_total", {{"code", "200"}}), 4);
  EXPECT_EQ(ValueOf(parsed, "ringmq_metrics_requests_total", {{"code", "404"}}), 1);
}

TEST(ExpositionTest, ListenerSeriesCarryTheListenerLabelAndNoShard) {
  BrokerSample sample = DistinctSample();
  sample.listeners.resize(2);
  sample.listeners[0].name = "mqtt:1883";
  sample.listeners[1].name = "edge \"tls\"";  // escaped like any label value
  ListenerSnapshot& edge = sample.listeners[1].counters;
  uint64_t next = 10;
#define SET_LISTENER_COUNTER(name) edge.name = next++;
  RINGMQ_LISTENER_COUNTERS(SET_LISTENER_COUNTER)
#undef SET_LISTENER_COUNTER
  edge.connections_open = 3;
  sample.listeners[1].clients_connected = 2;
  sample.listeners[1].max_connections = 500;
  const Parsed parsed = Parse(Render(sample));
  const std::map<std::string, std::string> label = {{"listener", "edge \"tls\""}};
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_connections", label), 3);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_connections_accepted_total", label),
            edge.connections_accepted);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_clients_connected", label), 2);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_max_connections", label), 500);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_connect_outcomes_total",
                    {{"listener", "edge \"tls\""}, {"result", "accepted"}}),
            edge.connect_accepted);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_connect_outcomes_total",
                    {{"listener", "edge \"tls\""}, {"result", "refused"}}),
            edge.connect_refused);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_received_bytes_total", label), edge.bytes_received);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_sent_bytes_total", label), edge.bytes_sent);
  EXPECT_EQ(ValueOf(parsed, "ringmq_listener_connections_accepted_total",
                    {{"listener", "mqtt:1883"}}),
            0);
  int listener_samples = 0;
  for (const Sample& s : parsed.samples) {
    if (!s.name.starts_with("ringmq_listener_")) continue;
    ++listener_samples;
    EXPECT_EQ(s.labels.count("shard"), 0u) << s.name;
  }
  EXPECT_EQ(listener_samples, 2 * 8) << "8 series per listener";
}

// bridge lane: per-bridge series carry the bridge's name and no shard label.
TEST(ExpositionTest, BridgeSeriesCarryTheBridgeLabelAndNoShard) {
  BrokerSample sample = DistinctSample();
  sample.bridges.resize(2);
  sample.bridges[0].name = "cloud";
  sample.bridges[1].name = "backup";
  BridgeSnapshot& cloud = sample.bridges[0].counters;
  uint64_t next = 100;
#define SET_BRIDGE_COUNTER(name) cloud.name = next++;
  RINGMQ_BRIDGE_COUNTERS(SET_BRIDGE_COUNTER)
#undef SET_BRIDGE_COUNTER
  cloud.connected = 1;
  const Parsed parsed = Parse(Render(sample));
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_messages_total",
                    {{"bridge", "cloud"}, {"direction", "out"}}),
            cloud.messages_out);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_messages_total",
                    {{"bridge", "cloud"}, {"direction", "in"}}),
            cloud.messages_in);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_dropped_total",
                    {{"bridge", "cloud"}, {"direction", "out"}}),
            cloud.dropped_out);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_dropped_total",
                    {{"bridge", "cloud"}, {"direction", "in"}}),
            cloud.dropped_in);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_link_events_total",
                    {{"bridge", "cloud"}, {"event", "connect"}}),
            cloud.connects);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_link_events_total",
                    {{"bridge", "cloud"}, {"event", "disconnect"}}),
            cloud.disconnects);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_link_events_total",
                    {{"bridge", "cloud"}, {"event", "resend"}}),
            cloud.resent);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_notifications_total", {{"bridge", "cloud"}}),
            cloud.notifications);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_connected", {{"bridge", "cloud"}}), 1);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_connected", {{"bridge", "backup"}}), 0);
  // bridgeq2 lane
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_qos2_recovered_total",
                    {{"bridge", "cloud"}, {"outcome", "pubrel_sent"}}),
            cloud.qos2_recovered);
  EXPECT_EQ(ValueOf(parsed, "ringmq_bridge_qos2_recovered_total",
                    {{"bridge", "cloud"}, {"outcome", "abandoned"}}),
            cloud.qos2_abandoned);
  int bridge_samples = 0;
  for (const Sample& s : parsed.samples) {
    if (!s.name.starts_with("ringmq_bridge_") || s.name == "ringmq_bridge_local_connections") {
      continue;
    }
    ++bridge_samples;
    EXPECT_EQ(s.labels.count("shard"), 0u) << s.name;
    EXPECT_EQ(s.labels.count("bridge"), 1u) << s.name;
  }
  EXPECT_EQ(bridge_samples, 2 * 11) << "11 series per bridge";
}

TEST(ExpositionTest, SilencedAboveTotalIsClampedNotWrapped) {
  // A scrape can read connect[] before and connect_silenced[] after the same event.
  BrokerSample sample;
  sample.shards.resize(1);
  const auto reason = static_cast<size_t>(connect::Reason::kConnectionLimit);
  sample.shards[0].connect[reason] = 3;
  sample.shards[0].connect_silenced[reason] = 4;
  const Parsed parsed = Parse(Render(sample));
  EXPECT_EQ(ValueOf(parsed, "ringmq_connect_outcomes_total",
                    {{"shard", "0"},
                     {"result", "refused"},
                     {"reason", "connection_limit"},
                     {"code", "3"}}),
            0);
}

TEST(ExpositionTest, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeLabelValue("a\"b"), "a\\\"b");
  EXPECT_EQ(EscapeLabelValue("a\\b"), "a\\\\b");
  EXPECT_EQ(EscapeLabelValue("a\nb"), "a\\nb");
  EXPECT_EQ(EscapeHelp("x\\y\nz\"q"), "x\\\\y\\nz\"q");  // quotes stay as they are in HELP
  // And round-trip through the parser.
  BrokerSample sample;
  sample.version = "1.0 \"beta\"\\\nline";
  const Parsed parsed = Parse(Render(sample));
  EXPECT_EQ(ValueOf(parsed, "ringmq_build_info", {{"version", "1.0 \"beta\"\\\nline"}}), 1);
}

TEST(ExpositionTest, NoShardsStillValid) {
  const Parsed parsed = Parse(Render(BrokerSample{}));
  EXPECT_EQ(ValueOf(parsed, "ringmq_shards", {}), 0);
}

}  // namespace
}  // namespace ringmq::metrics
