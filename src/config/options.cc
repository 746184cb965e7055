// Command-line flags and the TOML config file, from one table of options (see options.h).
//
// A value goes through three steps whatever its source: it is converted to its kind (integer,
// string, list of strings), checked (integer range, or the option's own string check), and
// stored by the option's setter. Only the conversion and the error prefix differ between a flag
// ("--port: ...") and a file key ("FILE:LINE: port: ...").
#include "config/options.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cluster/nats_link.h"
#include "cluster/subject.h"
#include "config/bridge_options.h"
#include "common/absl_view.h"
#include "common/assert.h"

namespace ringmq::config {
namespace {

// A config file larger than this is refused unread: no legitimate one comes close, and reading
// stays bounded even if --config names something like /dev/zero.
constexpr size_t kMaxConfigFileBytes = size_t{1} << 20;

constexpr std::string_view kConfigKey = "config";

// Indexed by the enum's value; the parsers and ToString share these so they cannot disagree.
constexpr std::string_view kLogLevelNames[] = {"debug", "info", "warning", "error"};
static_assert(std::size(kLogLevelNames) == static_cast<size_t>(LogLevel::kError) + 1);
constexpr std::string_view kRejectPolicyNames[] = {"verbose", "silent"};
static_assert(std::size(kRejectPolicyNames) == static_cast<size_t>(RejectPolicy::kSilent) + 1);
constexpr std::string_view kQueueFullPolicyNames[] = {"drop", "disconnect"};
constexpr std::string_view kSharedStrategyNames[] = {"round_robin", "random", "hash"};
static_assert(std::size(kSharedStrategyNames) ==
              static_cast<size_t>(SharedSubscriptionStrategy::kHash) + 1);
static_assert(std::size(kQueueFullPolicyNames) ==
              static_cast<size_t>(QueueFullPolicy::kDisconnect) + 1);

constexpr std::string_view kDurabilityNames[] = {"fsync", "interval"};
static_assert(std::size(kDurabilityNames) == static_cast<size_t>(Durability::kInterval) + 1);

constexpr std::string_view kCpuAffinityNames[] = {"off", "auto"};
static_assert(std::size(kCpuAffinityNames) == static_cast<size_t>(CpuAffinity::kAuto) + 1);

template <typename Enum, size_t kCount>
std::optional<Enum> ParseEnum(std::string_view text, const std::string_view (&names)[kCount]) {
  for (size_t i = 0; i < kCount; ++i) {
    if (names[i] == text) return static_cast<Enum>(i);
  }
  return std::nullopt;
}

// --- Value kinds ---------------------------------------------------------------------------

struct IntegerValue {
  int64_t min;
  int64_t max;
  void (*set)(int64_t value, Config& config);  // called only with min <= value <= max
};

struct StringValue {
  std::string_view expected;                            // completes "expected ..."
  bool (*set)(std::string_view value, Config& config);  // false: not acceptable, nothing stored
};

// Elements are non-empty strings: a flag gives them comma-separated, a file as a TOML array.
// `valid` (null: any) checks each element. A repeatable option's flag may be given several
// times: the first replaces the file's list, each later one appends to it.
struct ListValue {
  std::vector<std::string> Config::*member;
  bool (*valid)(std::string_view element) = nullptr;
  bool repeatable = false;
};

// true|false: a flag spells it, a file gives a TOML boolean.
struct BoolValue {
  bool Config::*member;
};

// A flag without a value (--help); never a config-file key.
struct SwitchValue {
  bool CommandLine::*member;
};

using Value = std::variant<IntegerValue, StringValue, ListValue, BoolValue, SwitchValue>;

constexpr std::string_view kListExpectedFlag = "a comma-separated list of non-empty strings";
constexpr std::string_view kListExpectedFile = "an array of non-empty strings";

template <auto kMember>
using MemberType = std::remove_cvref_t<decltype(std::declval<Config&>().*kMember)>;

// An integer option stored in `kMember`; the range must fit the member's type.
template <auto kMember, int64_t kMin, int64_t kMax>
constexpr Value Integer() {
  using T = MemberType<kMember>;
  static_assert(std::is_unsigned_v<T> && kMin >= 0 && kMin <= kMax);
  static_assert(static_cast<uint64_t>(kMax) <= std::numeric_limits<T>::max());
  return IntegerValue{kMin, kMax, [](int64_t value, Config& config) {
                        RINGMQ_ASSERT(value >= kMin && value <= kMax);
                        config.*kMember = static_cast<T>(value);
                      }};
}

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string TomlString(std::string_view text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      absl::StrAppend(&quoted, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

// A value of `config` as --help shows a default (as_toml false), or as a TOML value.
template <auto kMember>
std::string ShowValue(const Config& config, bool as_toml) {
  const auto& value = config.*kMember;
  using T = MemberType<kMember>;
  if constexpr (std::is_same_v<T, std::string>) {
    if (as_toml) return TomlString(value);
    return value.empty() ? std::string("\"\"") : value;
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (as_toml) {
      std::vector<std::string> quoted;
      for (const std::string& element : value) quoted.push_back(TomlString(element));
      return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
    }
    return value.empty() ? std::string("\"\"") : absl::StrJoin(value, ",");
  } else if constexpr (std::is_enum_v<T>) {
    return as_toml ? TomlString(ToString(value)) : std::string(ToString(value));
  } else {
    return absl::StrCat(value);
  }
}

// Durations as Mosquitto's persistent_client_expiration writes them: a positive integer and a
// unit, h (hours), d (days), w (weeks), m (months of 30 days) or y (years of 365 days); we add
// s (seconds), and "0" for never. In seconds, at most UINT32_MAX (about 136 years).
struct DurationUnit {
  char suffix;
  uint32_t seconds;
};
constexpr DurationUnit kDurationUnits[] = {
    {'y', 365 * 86'400}, {'m', 30 * 86'400}, {'w', 7 * 86'400},
    {'d', 86'400},       {'h', 3'600},       {'s', 1},
};
constexpr std::string_view kDurationExpected =
    "0 (never) or a positive integer followed by s, h, d, w, m (30 days) or y (365 days), at "
    "most 4294967295 s";
constexpr std::string_view kDurationCapExpected =
    "0 (no cap) or a positive integer followed by s, h, d, w, m (30 days) or y (365 days), at "
    "most 4294967295 s";

std::optional<uint32_t> ParseDurationSeconds(std::string_view text) {
  if (text == "0") return 0;
  if (text.size() < 2) return std::nullopt;
  const char suffix = text.back();
  const auto* unit = std::find_if(std::begin(kDurationUnits), std::end(kDurationUnits),
                                  [suffix](const DurationUnit& u) { return u.suffix == suffix; });
  if (unit == std::end(kDurationUnits)) return std::nullopt;
  const std::string_view digits = text.substr(0, text.size() - 1);
  if (digits.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  uint64_t count = 0;
  const auto [stop, error] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (error != std::errc() || stop != digits.data() + digits.size() || count == 0) {
    return std::nullopt;
  }
  if (count > std::numeric_limits<uint32_t>::max() / unit->seconds) return std::nullopt;
  return static_cast<uint32_t>(count * unit->seconds);
}

// The largest unit that divides `seconds` exactly, so that the text parses back to the value.
std::string FormatDurationSeconds(uint32_t seconds) {
  if (seconds == 0) return "0";
  for (const DurationUnit& unit : kDurationUnits) {
    if (seconds % unit.seconds == 0) {
      return absl::StrCat(seconds / unit.seconds, std::string(1, unit.suffix));
    }
  }
  RINGMQ_ASSERT(false && "the seconds unit divides everything");
  return "";
}

template <auto kMember>
std::string ShowDuration(const Config& config, bool as_toml) {
  const std::string text = FormatDurationSeconds(config.*kMember);
  return as_toml ? TomlString(text) : text;
}

bool IsIpLiteral(std::string_view text) {
  const std::string terminated(text);  // inet_pton wants a C string
  in6_addr address;                    // large enough for either family
  return inet_pton(AF_INET, terminated.c_str(), &address) == 1 ||
         inet_pton(AF_INET6, terminated.c_str(), &address) == 1;
}

// A cluster NATS URL the link can use: nats://, tls:// (natstls lane) or no scheme.
bool IsNatsUrl(std::string_view url) { return cluster::ParseNatsUrl(url).ok(); }

// natstls lane: the [cluster] TLS and nkey file keys ("" = none).
template <std::string Config::*kMember>
bool SetClusterString(std::string_view text, Config& config) {
  if (text.size() > 4096 || text.find('\0') != std::string_view::npos) return false;
  config.*kMember = std::string(text);
  return true;
}

bool SetClusterServerName(std::string_view text, Config& config) {
  // A DNS name or an IP literal: printable, no spaces (RFC 6066 §3 HostName).
  for (char c : text) {
    if (c <= ' ' || c > '~') return false;
  }
  if (text.size() > 253) return false;
  config.cluster_tls_server_name = std::string(text);
  return true;
}

bool SetNodeName(std::string_view text, Config& config) {
  if (!text.empty() && !IsValidNodeName(text)) return false;
  config.cluster_node_name = std::string(text);
  return true;
}

bool SetSubjectPrefix(std::string_view text, Config& config) {
  if (!cluster::IsValidSubjectPrefix(text)) return false;
  config.cluster_subject_prefix = std::string(text);
  return true;
}

// --- The table -----------------------------------------------------------------------------

struct Option {
  OptionInfo info;
  // nullptr: no default in --help (and not a config-file key)
  std::string (*show)(const Config& config, bool as_toml);
  Value value;
};

constexpr Option kOptions[] = {
    {{"bind", '\0', "ADDR", "Listen on this IPv4 or IPv6 address", true},
     &ShowValue<&Config::bind>,
     StringValue{"an IPv4 or IPv6 address",
                 [](std::string_view text, Config& config) {
                   if (!IsIpLiteral(text)) return false;
                   config.bind = std::string(text);
                   return true;
                 }}},
    {{"port", '\0', "N",
      "Listen on this TCP port (the default plain listener); 0 = no default listener, only the "
      "[[listener]] tables of the config file",
      true},
     &ShowValue<&Config::port>,
     Integer<&Config::port, 0, 65535>()},
    {{"threads", '\0', "N", "Shards (one thread and io_uring ring each); 0 = one per online CPU",
      true},
     &ShowValue<&Config::threads>,
     Integer<&Config::threads, 0, 1024>()},
    {{"cpu_affinity", '\0', "off|auto",
      "Shard threads' CPUs: off = the scheduler's choice; auto = shard i on the i-th allowed CPU",
      true},
     &ShowValue<&Config::cpu_affinity>,
     StringValue{"one of off|auto",
                 [](std::string_view text, Config& config) {
                   auto affinity = ParseEnum<CpuAffinity>(text, kCpuAffinityNames);
                   if (affinity) config.cpu_affinity = *affinity;
                   return affinity.has_value();
                 }}},
    {{"config", '\0', "FILE", "Read this TOML file first; flags override its keys", false},
     nullptr,
     StringValue{"a file name",
                 [](std::string_view text, Config& config) {
                   config.config_file = std::string(text);
                   return true;
                 }}},
    {{"log_level", '\0', "debug|info|warning|error", "Log messages of this severity and above",
      true},
     &ShowValue<&Config::log_level>,
     StringValue{"one of debug|info|warning|error",
                 [](std::string_view text, Config& config) {
                   auto level = ParseEnum<LogLevel>(text, kLogLevelNames);
                   if (level) config.log_level = *level;
                   return level.has_value();
                 }}},
    {{"reject_policy", '\0', "verbose|silent",
      "Refused CONNECT: verbose = CONNACK 0x01..0x05, then close; silent = close only", true},
     &ShowValue<&Config::reject_policy>,
     StringValue{"one of verbose|silent",
                 [](std::string_view text, Config& config) {
                   auto policy = ParseEnum<RejectPolicy>(text, kRejectPolicyNames);
                   if (policy) config.reject_policy = *policy;
                   return policy.has_value();
                 }}},
    {{"connect_timeout_ms", '\0', "MS",
      "Close connections with no complete CONNECT after MS milliseconds", true},
     &ShowValue<&Config::connect_timeout_ms>,
     Integer<&Config::connect_timeout_ms, 100, 3'600'000>()},
    {{"max_connections", '\0', "N", "Refuse (CONNACK 0x03) beyond N connected clients", true},
     &ShowValue<&Config::max_connections>,
     Integer<&Config::max_connections, 1, 10'000'000>()},
    {{"max_client_id_length", '\0', "N", "Refuse (CONNACK 0x02) client ids longer than N bytes",
      true},
     &ShowValue<&Config::max_client_id_length>,
     Integer<&Config::max_client_id_length, 1, 65535>()},
    {{"max_packet_size", '\0', "BYTES",
      "Close connections sending a packet over BYTES (fixed header included)", true},
     &ShowValue<&Config::max_packet_size>,
     Integer<&Config::max_packet_size, 64, 268'435'460>()},
    {{"max_connect_packet_size", '\0', "BYTES",
      "Close, without CONNACK, connections whose CONNECT is over BYTES (before buffering it)",
      true},
     &ShowValue<&Config::max_connect_packet_size>,
     Integer<&Config::max_connect_packet_size, 64, 268'435'460>()},
    {{"max_inflight", '\0', "N",
      "QoS 1/2 messages sent to a subscriber and not yet acknowledged, per session", true},
     &ShowValue<&Config::max_inflight>,
     Integer<&Config::max_inflight, 1, 65'534>()},
    {{"max_queued_messages", '\0', "N",
      "Messages waiting for a subscriber, per session; QoS 1/2 beyond N are dropped (counted)",
      true},
     &ShowValue<&Config::max_queued_messages>,
     Integer<&Config::max_queued_messages, 1, 10'000'000>()},
    {{"max_queued_bytes", '\0', "BYTES",
      "Bytes waiting for a subscriber, per session; messages beyond BYTES are dropped (counted; "
      "QoS 1/2 as for a full queue)",
      true},
     &ShowValue<&Config::max_queued_bytes>,
     Integer<&Config::max_queued_bytes, 1024, 68'719'476'736>()},
    {{"max_retained_messages", '\0', "N",
      "Retained messages stored, broker-wide; a new retained topic beyond N is not stored "
      "(still delivered; counted). 0: none is stored",
      true},
     &ShowValue<&Config::max_retained_messages>,
     Integer<&Config::max_retained_messages, 0, 100'000'000>()},
    {{"max_retained_bytes", '\0', "BYTES",
      "Topic + payload bytes of the retained messages, broker-wide; a retained message that "
      "does not fit is not stored (still delivered; counted)",
      true},
     &ShowValue<&Config::max_retained_bytes>,
     Integer<&Config::max_retained_bytes, 0, 1'099'511'627'776>()},
    {{"queue_full_policy", '\0', "drop|disconnect",
      "QoS 1/2 message for a full session queue: drop it (counted), or also disconnect the "
      "client",
      true},
     &ShowValue<&Config::queue_full_policy>,
     StringValue{"one of drop|disconnect",
                 [](std::string_view text, Config& config) {
                   auto policy = ParseEnum<QueueFullPolicy>(text, kQueueFullPolicyNames);
                   if (policy) config.queue_full_policy = *policy;
                   return policy.has_value();
                 }}},
    {{"shared_subscription_strategy", '\0', "round_robin|random|hash",
      "Which member of a shared subscription group ($share/NAME/FILTER) gets each message: "
      "round robin, random, or by a hash of the publisher's client id",
      true},
     &ShowValue<&Config::shared_subscription_strategy>,
     StringValue{"one of round_robin|random|hash",
                 [](std::string_view text, Config& config) {
                   auto strategy =
                       ParseEnum<SharedSubscriptionStrategy>(text, kSharedStrategyNames);
                   if (strategy) config.shared_subscription_strategy = *strategy;
                   return strategy.has_value();
                 }}},
    {{"max_memory", '\0', "BYTES",
      "Broker-wide memory budget; near it, shed load: QoS 0 to backlogged subscribers, then new "
      "CONNECTs (0x03), then QoS 1/2 to backlogged subscribers (docs/configuration.md); 0 = none",
      true},
     &ShowValue<&Config::max_memory>,
     Integer<&Config::max_memory, 0, 1'125'899'906'842'624>()},
    {{"persistent_session_expiry", '\0', "DURATION",
      "Destroy a persistent session offline for longer than this (e.g. 12h, 7d; "
      "s|h|d|w|m|y); 0 = never",
      true},
     &ShowDuration<&Config::persistent_session_expiry_s>,
     StringValue{kDurationExpected,
                 [](std::string_view text, Config& config) {
                   const std::optional<uint32_t> seconds = ParseDurationSeconds(text);
                   if (seconds) config.persistent_session_expiry_s = *seconds;
                   return seconds.has_value();
                 }}},
    {{"persistence", '\0', "true|false",
      "Log persistent sessions, their QoS 1/2 messages and retained messages under data_dir and "
      "recover them at start (docs/persistence.md)",
      true},
     &ShowValue<&Config::persistence>,
     BoolValue{&Config::persistence}},
    {{"data_dir", '\0', "DIR",
      "Directory of the persistence log (Mosquitto: persistence_location); created if missing",
      true},
     &ShowValue<&Config::data_dir>,
     StringValue{"a directory name",
                 [](std::string_view text, Config& config) {
                   if (text.empty()) return false;
                   config.data_dir = std::string(text);
                   return true;
                 }}},
    {{"durability", '\0', "fsync|interval",
      "fsync: PUBACK/PUBREC only after the message is on disk (fdatasync); interval: after the write "
      "(page cache), with an fdatasync every sync_interval_ms",
      true},
     &ShowValue<&Config::durability>,
     StringValue{"one of fsync|interval",
                 [](std::string_view text, Config& config) {
                   auto durability = ParseEnum<Durability>(text, kDurabilityNames);
                   if (durability) config.durability = *durability;
                   return durability.has_value();
                 }}},
    {{"sync_interval_ms", '\0', "MS",
      "durability = interval: the longest a logged message waits for its fdatasync",
      true},
     &ShowValue<&Config::sync_interval_ms>,
     Integer<&Config::sync_interval_ms, 1, 60'000>()},
    {{"max_disk_bytes", '\0', "BYTES",
      "Bytes of persistence log over all shards; beyond it (after compaction) messages for "
      "persistent sessions are refused as queue_full_policy says (counted); 0 = no bound",
      true},
     &ShowValue<&Config::max_disk_bytes>,
     Integer<&Config::max_disk_bytes, 0, 1'125'899'906'842'624>()},
    {{"persistence_truncate_corrupt", '\0', "true|false",
      "At start, cut a log segment at a corrupt record (logged, counted) instead of refusing "
      "to start",
      true},
     &ShowValue<&Config::persistence_truncate_corrupt>,
     BoolValue{&Config::persistence_truncate_corrupt}},
    {{"remove_unconfigured_bridge_sessions", '\0', "true|false",
      "At start, end the recovered sessions of bridges no longer configured (their queues "
      "dropped, logged, counted); false keeps them",
      true},
     &ShowValue<&Config::remove_unconfigured_bridge_sessions>,
     BoolValue{&Config::remove_unconfigured_bridge_sessions}},
    {{"max_session_expiry", '\0', "DURATION",
      "Longest a session is kept without a connection, at any protocol level: a 5.0 client's "
      "Session Expiry Interval above it is lowered to it (e.g. 1h, 7d); 0 = no cap",
      true},
     &ShowDuration<&Config::max_session_expiry_s>,
     StringValue{kDurationCapExpected,
                 [](std::string_view text, Config& config) {
                   const std::optional<uint32_t> seconds = ParseDurationSeconds(text);
                   if (seconds) config.max_session_expiry_s = *seconds;
                   return seconds.has_value();
                 }}},
    {{"max_message_expiry", '\0', "DURATION",
      "MQTT 5.0: lower a message's Message Expiry Interval to this (e.g. 1h, 7d; "
      "s|h|d|w|m|y); 0 = no cap",
      true},
     &ShowDuration<&Config::max_message_expiry_s>,
     StringValue{kDurationExpected,
                 [](std::string_view text, Config& config) {
                   const std::optional<uint32_t> seconds = ParseDurationSeconds(text);
                   if (seconds) config.max_message_expiry_s = *seconds;
                   return seconds.has_value();
                 }}},
    {{"max_offline_sessions", '\0', "N",
      "Persistent sessions kept without a connection, broker-wide; beyond N the shard's oldest "
      "is destroyed",
      true},
     &ShowValue<&Config::max_offline_sessions>,
     Integer<&Config::max_offline_sessions, 1, 100'000'000>()},
    {{"max_subscriptions_per_session", '\0', "N",
      "Distinct topic filters per session; a new filter beyond N gets SUBACK 0x80 (counted)", true},
     &ShowValue<&Config::max_subscriptions_per_session>,
     Integer<&Config::max_subscriptions_per_session, 1, 10'000'000>()},
    {{"max_inbound_qos2_pending", '\0', "N",
      "QoS 2 PUBLISHes from one client awaiting PUBREL; beyond N the connection is closed "
      "(counted)",
      true},
     &ShowValue<&Config::max_inbound_qos2_pending>,
     Integer<&Config::max_inbound_qos2_pending, 1, 65'535>()},
    {{"max_qos", '\0', "0|1|2",
      "Highest QoS clients may publish (and use in a will): MQTT 5 Maximum QoS; a PUBLISH "
      "above it closes the connection (5.0: DISCONNECT 0x9B)",
      true},
     &ShowValue<&Config::max_qos>,
     Integer<&Config::max_qos, 0, 2>()},
    {{"retain_available", '\0', "true|false",
      "false: retained PUBLISHes close the connection (5.0: DISCONNECT 0x9A), MQTT 5 Retain "
      "Available 0",
      true},
     &ShowValue<&Config::retain_available>,
     BoolValue{&Config::retain_available}},
    {{"max_keepalive", '\0', "S",
      "0: clients choose their keepalive. Otherwise MQTT 5 clients asking for 0 or more than S "
      "get Server Keep Alive S; MQTT 3.1.x ones are refused (CONNACK 0x02)",
      true},
     &ShowValue<&Config::max_keepalive>,
     Integer<&Config::max_keepalive, 0, 65'535>()},
    {{"max_topic_alias", '\0', "N",
      "Topic Alias Maximum granted to MQTT 5 clients for their PUBLISHes (0: no aliases)", true},
     &ShowValue<&Config::max_topic_alias>,
     Integer<&Config::max_topic_alias, 0, 1'024>()},
    {{"outbound_topic_aliases", '\0', "N",
      "Topic aliases the broker uses per MQTT 5 connection for deliveries, at most the client's "
      "Topic Alias Maximum: the first N distinct topics sent keep an alias (0: none)",
      true},
     &ShowValue<&Config::outbound_topic_aliases>,
     Integer<&Config::outbound_topic_aliases, 0, 1'024>()},
    {{"receive_maximum", '\0', "N",
      "MQTT 5 Receive Maximum the broker announces: QoS 2 PUBLISHes a client may have awaiting "
      "PUBREL; beyond N, DISCONNECT 0x93",
      true},
     &ShowValue<&Config::receive_maximum>,
     Integer<&Config::receive_maximum, 1, 65'535>()},
    {{"response_information", '\0', "PREFIX",
      "MQTT 5 Response Information sent to clients that request it: PREFIX followed by the "
      "client id (empty: none)",
      true},
     &ShowValue<&Config::response_information>,
     StringValue{"up to 1024 printable ASCII characters without spaces",
                 [](std::string_view text, Config& config) {
                   if (text.size() > 1024) return false;
                   for (const char c : text) {
                     if (c < 0x21 || c > 0x7E) return false;
                   }
                   config.response_information = std::string(text);
                   return true;
                 }}},
    {{"max_filters_per_iteration", '\0', "N",
      "SUBSCRIBE/UNSUBSCRIBE filters a shard handles per loop iteration; a bigger packet "
      "continues in later iterations while the shard serves its other clients",
      true},
     &ShowValue<&Config::max_filters_per_iteration>,
     Integer<&Config::max_filters_per_iteration, 1, 1'000'000>()},
    {{"client_id_prefixes", '\0', "P1,P2,...",
      "If set, refuse (CONNACK 0x02) client ids starting with none of these", true},
     &ShowValue<&Config::client_id_prefixes>,
     ListValue{&Config::client_id_prefixes}},
    {{"max_connections_per_address", '\0', "N",
      "Refuse (CONNACK 0x03) a CONNECT from an address with more than N open connections; 0 = "
      "no limit",
      true},
     &ShowValue<&Config::max_connections_per_address>,
     Integer<&Config::max_connections_per_address, 0, 10'000'000>()},
    {{"max_connect_rate_per_address", '\0', "N",
      "Refuse (CONNACK 0x03) CONNECTs beyond N per second from one address; 0 = no limit", true},
     &ShowValue<&Config::max_connect_rate_per_address>,
     Integer<&Config::max_connect_rate_per_address, 0, 10'000'000>()},
    {{"allow_anonymous", '\0', "true|false",
      "Accept CONNECTs without a user name (false: CONNACK 0x05)", true},
     &ShowValue<&Config::allow_anonymous>,
     BoolValue{&Config::allow_anonymous}},
    {{"password_file", '\0', "FILE",
      "Check user names and passwords against this mosquitto_passwd file (see docs/auth.md)", true},
     &ShowValue<&Config::password_file>,
     StringValue{"a file name",
                 [](std::string_view text, Config& config) {
                   config.password_file = std::string(text);
                   return true;
                 }}},
    {{"acl_file", '\0', "FILE",
      "Allow only the publishes and subscriptions this Mosquitto-format ACL file grants", true},
     &ShowValue<&Config::acl_file>,
     StringValue{"a file name",
                 [](std::string_view text, Config& config) {
                   config.acl_file = std::string(text);
                   return true;
                 }}},
    {{"max_auth_failures_per_second", '\0', "N",
      "Failed password checks per second per shard; beyond, unverified CONNECTs get 0x03; 0 = no "
      "limit",
      true},
     &ShowValue<&Config::max_auth_failures_per_second>,
     Integer<&Config::max_auth_failures_per_second, 0, 10'000'000>()},
    {{"metrics_bind", '\0', "ADDR", "Serve Prometheus /metrics on this IPv4 or IPv6 address", true},
     &ShowValue<&Config::metrics_bind>,
     StringValue{"an IPv4 or IPv6 address",
                 [](std::string_view text, Config& config) {
                   if (!IsIpLiteral(text)) return false;
                   config.metrics_bind = std::string(text);
                   return true;
                 }}},
    {{"metrics_port", '\0', "N", "Serve Prometheus /metrics on this TCP port; 0 = off", true},
     &ShowValue<&Config::metrics_port>,
     Integer<&Config::metrics_port, 0, 65535>()},
    {{"sys_interval_s", '\0', "S", "Publish $SYS/broker/... topics every S seconds; 0 = off", true},
     &ShowValue<&Config::sys_interval_s>,
     Integer<&Config::sys_interval_s, 0, 86'400>()},
    {{"max_mailbox_overflow_bytes", '\0', "BYTES",
      "Cross-shard records waiting for a full mailbox, per destination shard; beyond BYTES "
      "they are dropped (counted)",
      true},
     &ShowValue<&Config::max_mailbox_overflow_bytes>,
     Integer<&Config::max_mailbox_overflow_bytes, 0, 68'719'476'736>()},
    {{"mailbox_memory", '\0', "BYTES",
      "Cross-shard mailbox slots, all shard pairs together (each pair 64..32768 slots of 16 "
      "bytes)",
      true},
     &ShowValue<&Config::mailbox_memory>,
     Integer<&Config::mailbox_memory, 1024, 68'719'476'736>()},
    {{"stall_warning_ms", '\0', "MS",
      "Count and log shard loop iterations that run longer than MS milliseconds; 0 = off", true},
     &ShowValue<&Config::stall_warning_ms>,
     Integer<&Config::stall_warning_ms, 0, 3'600'000>()},
    // The [cluster] table's keys as flags (file keys only inside the table: kClusterKeys).
    {{"cluster_nats_url", '\0', "URL",
      "Cluster over NATS: a NATS server ({nats,tls}://[user:pass@|token@]host[:port]); "
      "repeatable or comma-separated; none = no cluster ([cluster] nats_urls)",
      false},
     nullptr,
     ListValue{&Config::cluster_nats_urls, &IsNatsUrl, /*repeatable=*/true}},
    {{"cluster_node_name", '\0', "NAME",
      "This node's name in the cluster, a NATS subject token; \"\" = the host name "
      "([cluster] node_name)",
      false},
     nullptr,
     StringValue{"a NATS subject token (printable ASCII, no '.', '*' or '>', at most 128 bytes)",
                 &SetNodeName}},
    {{"cluster_subject_prefix", '\0', "SUBJECT",
      "Put every cluster subject under this NATS subject; \"\" = none ([cluster] "
      "subject_prefix)",
      false},
     nullptr,
     StringValue{"\"\" or a literal NATS subject (tokens separated by '.', no wildcards)",
                 &SetSubjectPrefix}},
    // QoS 1/2 at least once across nodes (docs/cluster.md; shard/cluster_acks.h).
    {{"cluster_ack_retransmit_ms", '\0', "MS",
      "A QoS 1/2 message another node has not acknowledged after MS milliseconds is sent to it "
      "again ([cluster] ack_retransmit_ms)",
      false},
     nullptr,
     Integer<&Config::cluster_ack_retransmit_ms, 10, 3'600'000>()},
    {{"cluster_ack_link_timeout_ms", '\0', "MS",
      "Another node's link silent for MS milliseconds is forgotten: messages stop waiting for "
      "its acknowledgements ([cluster] ack_link_timeout_ms)",
      false},
     nullptr,
     Integer<&Config::cluster_ack_link_timeout_ms, 100, 86'400'000>()},
    {{"cluster_ack_pending_max", '\0', "N",
      "QoS 1/2 messages per shard waiting for other nodes' acknowledgements before publishers "
      "are held back ([cluster] ack_pending_max)",
      false},
     nullptr,
     Integer<&Config::cluster_ack_pending_max, 1, 16'777'216>()},
    {{"cluster_ack_pending_bytes_max", '\0', "BYTES",
      "Their payload bytes per shard before publishers are held back ([cluster] "
      "ack_pending_bytes_max)",
      false},
     nullptr,
     Integer<&Config::cluster_ack_pending_bytes_max, 1024, 68'719'476'736>()},
    // claims lane: client-id claims in batches (docs/cluster.md; shard/cluster_owner.h).
    {{"cluster_claim_batch_us", '\0', "US",
      "Hold client-id claims up to US microseconds so that one NATS message carries many; 0 = "
      "one batch per loop iteration ([cluster] claim_batch_us)",
      false},
     nullptr,
     Integer<&Config::cluster_claim_batch_us, 0, 1'000'000>()},
    {{"cluster_claim_batch_max", '\0', "N",
      "Send a claim batch early at N claims ([cluster] claim_batch_max)",
      false},
     nullptr,
     Integer<&Config::cluster_claim_batch_max, 1, 1'048'576>()},
    {{"cluster_claim_batch_bytes", '\0', "BYTES",
      "Send a claim batch early before it exceeds BYTES ([cluster] claim_batch_bytes)",
      false},
     nullptr,
     Integer<&Config::cluster_claim_batch_bytes, 256, 1'048'576>()},
    // batch lane: QoS 0 batches between nodes (docs/cluster.md "Batching QoS 0").
    {{"cluster_batch", '\0', "true|false",
      "true: QoS 0 messages go to the other nodes that announced interest, several in one NATS "
      "message on ringmq's own subjects; NATS applications no longer see them on their plain "
      "subjects ([cluster] batch)",
      false},
     nullptr,
     BoolValue{&Config::cluster_batch}},
    {{"cluster_batch_bytes_max", '\0', "BYTES",
      "Bytes of one batch (also at most the NATS server's max_payload): a batch is sent early "
      "at this bound ([cluster] batch_bytes_max)",
      false},
     nullptr,
     Integer<&Config::cluster_batch_bytes_max, 1024, 67'108'864>()},
    {{"cluster_session_wait_ms", '\0', "MS",
      "A persistent CONNECT whose session is on another node waits up to MS milliseconds for "
      "its state before the CONNACK; 0: never waits ([cluster] session_wait_ms)",
      false},
     nullptr,
     Integer<&Config::cluster_session_wait_ms, 0, 60'000>()},
    // natstls lane: TLS and nkey credentials to the NATS servers (docs/cluster.md, "TLS to
    // NATS").
    {{"cluster_tls", '\0', "BOOL",
      "TLS to every NATS server, as if each URL were tls:// ([cluster] tls)", false},
     nullptr,
     BoolValue{&Config::cluster_tls}},
    {{"cluster_tls_ca_file", '\0', "FILE",
      "CAs (PEM) that verify the NATS servers' certificates; \"\" = the system's CAs "
      "([cluster] tls_ca_file)",
      false},
     nullptr,
     StringValue{"a file name or \"\"", &SetClusterString<&Config::cluster_tls_ca_file>}},
    {{"cluster_tls_cert_file", '\0', "FILE",
      "Client certificate chain (PEM) for NATS servers that require one (mutual TLS; with "
      "cluster_tls_key_file) ([cluster] tls_cert_file)",
      false},
     nullptr,
     StringValue{"a file name or \"\"", &SetClusterString<&Config::cluster_tls_cert_file>}},
    {{"cluster_tls_key_file", '\0', "FILE",
      "The client certificate's private key (PEM) ([cluster] tls_key_file)", false},
     nullptr,
     StringValue{"a file name or \"\"", &SetClusterString<&Config::cluster_tls_key_file>}},
    {{"cluster_tls_server_name", '\0', "NAME",
      "Name checked against every NATS server's certificate and sent as SNI; \"\" = each "
      "URL's host ([cluster] tls_server_name)",
      false},
     nullptr,
     StringValue{"a host name, an IP address or \"\"", &SetClusterServerName}},
    {{"cluster_tls_handshake_first", '\0', "BOOL",
      "Start TLS before the NATS server's INFO, for nats-server 2.10's tls { handshake_first: "
      "true } ([cluster] tls_handshake_first)",
      false},
     nullptr,
     BoolValue{&Config::cluster_tls_handshake_first}},
    {{"cluster_nkey_seed_file", '\0', "FILE",
      "File holding a NATS user nkey seed (SU...): CONNECT signs the server's nonce with it "
      "([cluster] nkey_seed_file)",
      false},
     nullptr,
     StringValue{"a file name or \"\"", &SetClusterString<&Config::cluster_nkey_seed_file>}},
    // jwt lane
    {{"cluster_credentials_file", '\0', "FILE",
      "NATS user credentials (.creds: user JWT + nkey seed): CONNECT sends the JWT and signs "
      "the server's nonce (operator mode) ([cluster] credentials_file)",
      false},
     nullptr,
     StringValue{"a file name or \"\"", &SetClusterString<&Config::cluster_credentials_file>}},
    {{"check_config", '\0', "",
      "Check the flags, the config file and the files it names, print the result and exit", false},
     nullptr,
     SwitchValue{&CommandLine::check_config}},
    {{"help", 'h', "", "Print this help and exit", false},
     nullptr,
     SwitchValue{&CommandLine::show_help}},
    {{"version", '\0', "", "Print the version and exit", false},
     nullptr,
     SwitchValue{&CommandLine::show_version}},
};

// The table's own rules, checked at compile time: unique snake_case keys, help for everyone, a
// placeholder exactly for options that take a value, short names and file keys as expected.
// (That --help shows a default exactly for the file keys is a unit test: comparing a function
// pointer is not a constant expression under -fsanitize.)
constexpr bool TableIsValid() {
  for (size_t i = 0; i < std::size(kOptions); ++i) {
    const OptionInfo& info = kOptions[i].info;
    const bool is_switch = std::holds_alternative<SwitchValue>(kOptions[i].value);
    if (info.key.empty() || info.help.empty()) return false;
    if (is_switch != info.placeholder.empty()) return false;
    if (info.short_name != '\0' && !is_switch) return false;
    if (info.file_key && is_switch) return false;
    if (info.key[0] < 'a' || info.key[0] > 'z') return false;
    for (const char c : info.key) {
      if ((c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_') return false;
    }
    for (size_t j = 0; j < i; ++j) {
      if (kOptions[j].info.key == info.key) return false;
    }
  }
  return true;
}
static_assert(TableIsValid());

// What a value of this option must be, to complete "expected ...".
std::string Expected(const Option& option, bool from_file) {
  if (const auto* integer = std::get_if<IntegerValue>(&option.value)) {
    return absl::StrCat("an integer in ", integer->min, "..", integer->max);
  }
  if (const auto* string = std::get_if<StringValue>(&option.value)) {
    return std::string(string->expected);
  }
  if (std::holds_alternative<BoolValue>(option.value)) {
    return from_file ? "a boolean (true or false)" : "true or false";
  }
  RINGMQ_ASSERT(std::holds_alternative<ListValue>(option.value));
  return std::string(from_file ? kListExpectedFile : kListExpectedFlag);
}

// True if `flag` (without "--") spells `key` with '-' for every '_'.
bool FlagSpells(std::string_view flag, std::string_view key) {
  if (flag.size() != key.size()) return false;
  for (size_t i = 0; i < key.size(); ++i) {
    const char expected = key[i] == '_' ? '-' : key[i];
    if (flag[i] != expected) return false;
  }
  return true;
}

const Option* FindByFlag(std::string_view flag) {
  for (const Option& option : kOptions) {
    if (FlagSpells(flag, option.info.key)) return &option;
  }
  return nullptr;
}

const Option* FindByShortName(char short_name) {
  for (const Option& option : kOptions) {
    if (option.info.short_name != '\0' && option.info.short_name == short_name) return &option;
  }
  return nullptr;
}

const Option* FindByKey(std::string_view key) {
  for (const Option& option : kOptions) {
    if (option.info.key == key) return &option;
  }
  return nullptr;
}

// Quoted and escaped, so that an error message stays one printable line whatever the input.
std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(Sv(text)), "\"");
}

// --- Flags ---------------------------------------------------------------------------------

struct FlagValue {
  const Option* option;
  std::string_view value;  // empty for switches
};

std::optional<int64_t> ParseInteger(std::string_view text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || stop != end) return std::nullopt;
  return value;
}

absl::Status UnknownFlag(std::string_view arg) {
  const std::string_view name = arg.substr(0, arg.find('='));
  std::string spelled(name.substr(2));
  std::replace(spelled.begin(), spelled.end(), '_', '-');
  if (name.starts_with("--") && FindByFlag(spelled) != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown flag ", absl::CHexEscape(Sv(name)),
                                                   " (did you mean --", spelled, "?)"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown flag ", absl::CHexEscape(Sv(name)), " (see --help)"));
}

// Splits argv into (option, value) pairs. Only the syntax is checked here; values are checked
// when applied. A value is the text after '=', or else the next argument unless that starts
// with "--" (so `--port --threads 4` reports the missing value instead of a strange port).
absl::StatusOr<std::vector<FlagValue>> SplitFlags(int argc, const char* const* argv) {
  std::vector<FlagValue> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
      const Option* option = FindByShortName(arg[1]);
      if (option == nullptr) return UnknownFlag(arg);
      RINGMQ_ASSERT(std::holds_alternative<SwitchValue>(option->value));
      flags.push_back({option, {}});
      continue;
    }
    if (!arg.starts_with("--")) {
      if (arg.size() > 1 && arg[0] == '-') return UnknownFlag(arg);
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", Quote(arg),
                                                     ": ringmq takes only flags (see --help)"));
    }
    const size_t equals = arg.find('=');
    const Option* option = FindByFlag(arg.substr(2, equals - 2));
    if (option == nullptr) return UnknownFlag(arg);
    const std::string flag = FlagName(option->info.key);
    if (std::holds_alternative<SwitchValue>(option->value)) {
      if (equals != std::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": takes no value"));
      }
      flags.push_back({option, {}});
    } else if (equals != std::string_view::npos) {
      flags.push_back({option, arg.substr(equals + 1)});
    } else if (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) {
      flags.push_back({option, argv[++i]});
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": missing value"));
    }
  }
  return flags;
}

// Converts and checks a flag's text; on success the setter has stored it in `config`.
// `append`: a repeated flag of a repeatable list option adds to the list.
bool SetFromText(const Option& option, std::string_view text, Config& config, bool append = false) {
  if (const auto* integer = std::get_if<IntegerValue>(&option.value)) {
    const std::optional<int64_t> value = ParseInteger(text);
    if (!value || *value < integer->min || *value > integer->max) return false;
    integer->set(*value, config);
    return true;
  }
  if (const auto* string = std::get_if<StringValue>(&option.value)) {
    return string->set(text, config);
  }
  if (const auto* boolean = std::get_if<BoolValue>(&option.value)) {
    if (text != "true" && text != "false") return false;
    config.*(boolean->member) = text == "true";
    return true;
  }
  const auto* list = std::get_if<ListValue>(&option.value);
  RINGMQ_ASSERT(list != nullptr);
  std::vector<std::string> elements;
  if (append) elements = config.*(list->member);
  while (!text.empty()) {  // an empty text is an empty list: --client-id-prefixes= clears it
    const size_t comma = std::min(text.find(','), text.size());
    if (comma == 0) return false;  // an empty element: "a,,b", ",a" or "a,"
    if (list->valid != nullptr && !list->valid(text.substr(0, comma))) return false;
    elements.emplace_back(text.substr(0, comma));
    if (comma == text.size()) break;
    text.remove_prefix(comma + 1);
    if (text.empty()) return false;
  }
  config.*(list->member) = std::move(elements);
  return true;
}

absl::Status ApplyFlag(const FlagValue& flag, Config& config, bool append) {
  RINGMQ_ASSERT(flag.option != nullptr);
  RINGMQ_ASSERT(!std::holds_alternative<SwitchValue>(flag.option->value));
  if (SetFromText(*flag.option, flag.value, config, append)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(FlagName(flag.option->info.key), ": expected ",
                                                 Expected(*flag.option, /*from_file=*/false),
                                                 ", got ", Quote(flag.value)));
}

absl::Status LoadConfigFile(const std::string& path, Config& config) {
  const auto cannot_read = [&path](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read config file ", Quote(path), ": ", Sv(why)));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot_read(std::strerror(errno));
  std::string text;
  char chunk[16384];
  while (true) {
    const ssize_t count = ::read(fd, chunk, sizeof(chunk));
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      const int error = errno;
      ::close(fd);
      return cannot_read(std::strerror(error));
    }
    if (count == 0) break;
    text.append(chunk, static_cast<size_t>(count));
    if (text.size() > kMaxConfigFileBytes) {
      ::close(fd);
      return cannot_read(absl::StrCat("larger than ", kMaxConfigFileBytes, " bytes"));
    }
  }
  ::close(fd);
  return ApplyToml(text, path, config);
}

// --- TOML ----------------------------------------------------------------------------------

absl::Status FileError(std::string_view source_name, uint32_t line, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(source_name), ":", line, ": ", Sv(message)));
}

// Converts and checks a TOML node. Returns the node that is wrong (the value, or the offending
// array element) or nullptr once the setter has stored the value in `config`.
const toml::node* SetFromNode(const Option& option, const toml::node& node, Config& config) {
  if (const auto* integer = std::get_if<IntegerValue>(&option.value)) {
    const toml::value<int64_t>* value = node.as_integer();
    if (value == nullptr || value->get() < integer->min || value->get() > integer->max) {
      return &node;
    }
    integer->set(value->get(), config);
    return nullptr;
  }
  if (const auto* string = std::get_if<StringValue>(&option.value)) {
    const toml::value<std::string>* value = node.as_string();
    if (value == nullptr || !string->set(value->get(), config)) return &node;
    return nullptr;
  }
  if (const auto* boolean = std::get_if<BoolValue>(&option.value)) {
    const toml::value<bool>* value = node.as_boolean();
    if (value == nullptr) return &node;
    config.*(boolean->member) = value->get();
    return nullptr;
  }
  const auto* list = std::get_if<ListValue>(&option.value);
  RINGMQ_ASSERT(list != nullptr);
  const toml::array* array = node.as_array();
  if (array == nullptr) return &node;
  std::vector<std::string> elements;
  elements.reserve(array->size());
  for (const toml::node& element : *array) {
    const toml::value<std::string>* value = element.as_string();
    if (value == nullptr || value->get().empty()) return &element;
    if (list->valid != nullptr && !list->valid(value->get())) return &element;
    elements.push_back(value->get());
  }
  config.*(list->member) = std::move(elements);
  return nullptr;
}

// The table's entries in document order (toml::table is ordered by key), so that the first
// error reported is the first one in the file.
std::vector<std::pair<const toml::key*, const toml::node*>> InDocumentOrder(
    const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  entries.reserve(table.size());
  for (const auto& [key, node] : table) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first->source().begin < b.first->source().begin;
  });
  return entries;
}

// --- [[listener]] tables ---------------------------------------------------------------------
//
// Each table of the `listener` array becomes one ListenerConfig, key by key through
// kListenerKeys; then the rules between the keys of one table are checked (CheckListenerTable).
// The rules across listeners, the default one included, depend on the flags too: CheckListeners.

constexpr std::string_view kListenerKey = "listener";
constexpr std::string_view kListenerProtocolNames[] = {"mqtt", "websockets"};
static_assert(std::size(kListenerProtocolNames) ==
              static_cast<size_t>(ListenerProtocol::kWebSockets) + 1);
constexpr std::string_view kProxyProtocolNames[] = {"off", "v1", "v2", "any"};
static_assert(std::size(kProxyProtocolNames) == static_cast<size_t>(ProxyProtocol::kAny) + 1);
constexpr std::string_view kTlsVersionNames[] = {"tlsv1.2", "tlsv1.3"};
constexpr std::string_view kIdentityFieldNames[] = {"cn", "san_dns", "san_email", "san_uri"};
static_assert(std::size(kIdentityFieldNames) == static_cast<size_t>(IdentityField::kSanUri) + 1);

// A listener's index is one byte (net::Connection::listener()), the default listener included.
constexpr size_t kMaxListenerTables = 255;
static_assert(kMaxListenerTables + 1 <= size_t{std::numeric_limits<uint8_t>::max()} + 1);

struct ListenerKey {
  std::string_view key;
  std::string_view expected;  // completes "expected ..."
  // Converts, checks and stores the value; false: not acceptable, nothing stored.
  bool (*set)(const toml::node& node, ListenerConfig& listener);
  // The value as TOML; empty for an optional key that is unset.
  std::string (*show)(const ListenerConfig& listener);
};

bool IsListenerName(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ':' || c == '-';
  });
}

// Printable ASCII (0x21..0x7e, and the space if `space`), 1..max_size characters.
bool IsPrintable(std::string_view text, size_t max_size, bool space) {
  if (text.empty() || text.size() > max_size) return false;
  return std::all_of(text.begin(), text.end(), [space](char c) {
    return (c > 0x20 && c < 0x7f) || (space && c == ' ');
  });
}

bool IsHttpPath(std::string_view text) {
  return text.starts_with('/') && IsPrintable(text, 1024, /*space=*/false);
}
bool IsFileName(std::string_view text) {
  return !text.empty() && text.size() <= 4096 && text.find('\0') == std::string_view::npos;
}
bool IsTlsVersion(std::string_view text) {
  return std::find(std::begin(kTlsVersionNames), std::end(kTlsVersionNames), text) !=
         std::end(kTlsVersionNames);
}
bool IsCipherList(std::string_view text) { return IsPrintable(text, 4096, /*space=*/true); }

// The type of a ListenerConfig member. (Spelled unlike MemberType: GCC takes two alias
// templates whose decltype expressions have the same form for one.)
template <typename Member>
struct MemberTraits;
template <typename T>
struct MemberTraits<T ListenerConfig::*> {
  using Type = T;
};
template <auto kMember>
using ListenerMemberType = typename MemberTraits<decltype(kMember)>::Type;

template <auto kMember, bool (*kCheck)(std::string_view)>
bool SetListenerString(const toml::node& node, ListenerConfig& listener) {
  const toml::value<std::string>* value = node.as_string();
  if (value == nullptr || !kCheck(value->get())) return false;
  listener.*kMember = value->get();
  return true;
}

template <auto kMember, int64_t kMin, int64_t kMax>
bool SetListenerInteger(const toml::node& node, ListenerConfig& listener) {
  using T = ListenerMemberType<kMember>;
  static_assert(std::is_unsigned_v<T> && kMin >= 0 && kMin <= kMax);
  static_assert(static_cast<uint64_t>(kMax) <= std::numeric_limits<T>::max());
  const toml::value<int64_t>* value = node.as_integer();
  if (value == nullptr || value->get() < kMin || value->get() > kMax) return false;
  listener.*kMember = static_cast<T>(value->get());
  return true;
}

// A bool or an optional<bool> member.
template <auto kMember>
bool SetListenerBool(const toml::node& node, ListenerConfig& listener) {
  const toml::value<bool>* value = node.as_boolean();
  if (value == nullptr) return false;
  listener.*kMember = value->get();
  return true;
}

template <auto kMember, const auto& kNames>
bool SetListenerEnum(const toml::node& node, ListenerConfig& listener) {
  const toml::value<std::string>* value = node.as_string();
  if (value == nullptr) return false;
  auto parsed = ParseEnum<ListenerMemberType<kMember>>(value->get(), kNames);
  if (parsed) listener.*kMember = *parsed;
  return parsed.has_value();
}

bool SetAllowedOrigins(const toml::node& node, ListenerConfig& listener) {
  const toml::array* array = node.as_array();
  if (array == nullptr) return false;
  std::vector<std::string> origins;
  origins.reserve(array->size());
  for (const toml::node& element : *array) {
    const toml::value<std::string>* value = element.as_string();
    if (value == nullptr || !IsPrintable(value->get(), 1024, /*space=*/false)) return false;
    origins.push_back(value->get());
  }
  listener.allowed_origins = std::move(origins);
  return true;
}

template <auto kMember>
std::string ShowListener(const ListenerConfig& listener) {
  const auto& value = listener.*kMember;
  using T = ListenerMemberType<kMember>;
  if constexpr (std::is_same_v<T, std::string>) {
    return TomlString(value);
  } else if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::optional<bool>>) {
    if (!value.has_value()) return "";
    return *value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    std::vector<std::string> quoted;
    for (const std::string& element : value) quoted.push_back(TomlString(element));
    return absl::StrCat("[", absl::StrJoin(quoted, ", "), "]");
  } else if constexpr (std::is_enum_v<T>) {
    return TomlString(ToString(value));
  } else {
    return absl::StrCat(value);
  }
}

constexpr std::string_view kBoolExpected = "a boolean (true or false)";

// Every key of a [[listener]] table, in the order --check-config prints them.
constexpr ListenerKey kListenerKeys[] = {
    {"name", "1 to 64 characters of A-Z a-z 0-9 _ . : -",
     &SetListenerString<&ListenerConfig::name, IsListenerName>,
     &ShowListener<&ListenerConfig::name>},
    {"bind", "an IPv4 or IPv6 address", &SetListenerString<&ListenerConfig::bind, IsIpLiteral>,
     &ShowListener<&ListenerConfig::bind>},
    {"port", "an integer in 1..65535", &SetListenerInteger<&ListenerConfig::port, 1, 65535>,
     &ShowListener<&ListenerConfig::port>},
    {"protocol", "one of mqtt|websockets",
     &SetListenerEnum<&ListenerConfig::protocol, kListenerProtocolNames>,
     &ShowListener<&ListenerConfig::protocol>},
    {"path", "an HTTP path: \"/\" then printable ASCII without spaces, at most 1024 characters",
     &SetListenerString<&ListenerConfig::path, IsHttpPath>,
     &ShowListener<&ListenerConfig::path>},
    {"allowed_origins", "an array of non-empty strings of printable ASCII without spaces",
     &SetAllowedOrigins, &ShowListener<&ListenerConfig::allowed_origins>},
    {"trust_x_forwarded_for", kBoolExpected,
     &SetListenerBool<&ListenerConfig::trust_x_forwarded_for>,
     &ShowListener<&ListenerConfig::trust_x_forwarded_for>},
    {"proxy_protocol", "one of off|v1|v2|any",
     &SetListenerEnum<&ListenerConfig::proxy_protocol, kProxyProtocolNames>,
     &ShowListener<&ListenerConfig::proxy_protocol>},
    {"certfile", "a file name", &SetListenerString<&ListenerConfig::certfile, IsFileName>,
     &ShowListener<&ListenerConfig::certfile>},
    {"keyfile", "a file name", &SetListenerString<&ListenerConfig::keyfile, IsFileName>,
     &ShowListener<&ListenerConfig::keyfile>},
    {"cafile", "a file name", &SetListenerString<&ListenerConfig::cafile, IsFileName>,
     &ShowListener<&ListenerConfig::cafile>},
    {"require_certificate", kBoolExpected,
     &SetListenerBool<&ListenerConfig::require_certificate>,
     &ShowListener<&ListenerConfig::require_certificate>},
    {"use_identity_as_username", kBoolExpected,
     &SetListenerBool<&ListenerConfig::use_identity_as_username>,
     &ShowListener<&ListenerConfig::use_identity_as_username>},
    {"identity_field", "one of cn|san_dns|san_email|san_uri",
     &SetListenerEnum<&ListenerConfig::identity_field, kIdentityFieldNames>,
     &ShowListener<&ListenerConfig::identity_field>},
    {"tls_version", "one of tlsv1.2|tlsv1.3",
     &SetListenerString<&ListenerConfig::tls_version, IsTlsVersion>,
     &ShowListener<&ListenerConfig::tls_version>},
    {"ciphers", "an OpenSSL cipher list: printable ASCII, at most 4096 characters",
     &SetListenerString<&ListenerConfig::ciphers, IsCipherList>,
     &ShowListener<&ListenerConfig::ciphers>},
    {"ciphersuites", "OpenSSL TLS 1.3 cipher suites: printable ASCII, at most 4096 characters",
     &SetListenerString<&ListenerConfig::ciphersuites, IsCipherList>,
     &ShowListener<&ListenerConfig::ciphersuites>},
    {"max_connections", "an integer in 0..10000000",
     &SetListenerInteger<&ListenerConfig::max_connections, 0, 10'000'000>,
     &ShowListener<&ListenerConfig::max_connections>},
    {"allow_anonymous", kBoolExpected, &SetListenerBool<&ListenerConfig::allow_anonymous>,
     &ShowListener<&ListenerConfig::allow_anonymous>},
};

// Keys that only a websockets listener takes, and the TLS keys that need certfile.
constexpr std::string_view kWebSocketsKeys[] = {"path", "allowed_origins",
                                                "trust_x_forwarded_for"};
constexpr std::string_view kTlsKeys[] = {"cafile",         "require_certificate",
                                         "use_identity_as_username", "identity_field",
                                         "tls_version",    "ciphers",
                                         "ciphersuites"};

const ListenerKey* FindListenerKey(std::string_view key) {
  for (const ListenerKey& entry : kListenerKeys) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

// Tables are numbered from 1 in document order: "[[listener]] 2" is the file's second table.
std::string ListenerLabel(size_t index) { return absl::StrCat("[[listener]] ", index + 1); }

// The rules between the keys of one table (the values themselves are already checked).
absl::Status CheckListenerTable(const toml::table& table, const ListenerConfig& listener,
                                const std::string& label, std::string_view source_name) {
  const auto error = [&](std::string_view message) {
    return FileError(source_name, table.source().begin.line,
                     absl::StrCat(label, ": ", Sv(message)));
  };
  if (!table.contains("port")) return error("port is required (an integer in 1..65535)");
  if (listener.protocol == ListenerProtocol::kMqtt) {
    for (const std::string_view key : kWebSocketsKeys) {
      if (table.contains(key)) {
        return error(absl::StrCat(Sv(key), " is a websockets key, and protocol is \"mqtt\""));
      }
    }
  }
  if (!listener.keyfile.empty() && listener.certfile.empty()) {
    return error("keyfile needs certfile (the server certificate)");
  }
  if (!listener.certfile.empty() && listener.keyfile.empty()) {
    return error("certfile needs keyfile (the certificate's private key)");
  }
  if (!listener.tls()) {
    for (const std::string_view key : kTlsKeys) {
      if (table.contains(key)) {
        return error(absl::StrCat(Sv(key), " is a TLS key: TLS needs certfile and keyfile"));
      }
    }
  }
  if (listener.require_certificate && listener.cafile.empty()) {
    return error("require_certificate needs cafile (the CAs that sign client certificates)");
  }
  if (listener.use_identity_as_username && listener.cafile.empty()) {
    return error("use_identity_as_username needs cafile (the CAs that sign client certificates)");
  }
  if (listener.use_identity_as_username && !listener.require_certificate) {
    return error("use_identity_as_username needs require_certificate = true");
  }
  return absl::OkStatus();
}

absl::Status ApplyListenerTable(const toml::table& table, size_t index,
                                std::string_view source_name, ListenerConfig& listener) {
  const std::string label = ListenerLabel(index);
  for (const auto& [key, node] : InDocumentOrder(table)) {
    const ListenerKey* entry = FindListenerKey(key->str());
    if (entry == nullptr) {
      return FileError(source_name, key->source().begin.line,
                       absl::StrCat(label, ": unknown key ", Quote(key->str())));
    }
    if (!entry->set(*node, listener)) {
      return FileError(source_name, node->source().begin.line,
                       absl::StrCat(label, ": ", Sv(entry->key), ": expected ",
                                    Sv(entry->expected)));
    }
  }
  return CheckListenerTable(table, listener, label, source_name);
}

// The `listener` key: an array of tables ([[listener]]) replaces Config::listeners; an empty
// array (`listener = []`) clears them.
absl::Status ApplyListeners(const toml::key& key, const toml::node& node,
                            std::string_view source_name, Config& config) {
  const toml::array* array = node.as_array();
  if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
    return FileError(source_name, key.source().begin.line,
                     "listener: expected [[listener]] tables (a TOML array of tables)");
  }
  std::vector<ListenerConfig> listeners;
  listeners.reserve(std::min(array->size(), kMaxListenerTables));
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    if (i == kMaxListenerTables) {
      return FileError(source_name, element.source().begin.line,
                       absl::StrCat("at most ", kMaxListenerTables, " [[listener]] tables"));
    }
    ListenerConfig listener;
    absl::Status applied = ApplyListenerTable(*element.as_table(), i, source_name, listener);
    if (!applied.ok()) return applied;
    listeners.push_back(std::move(listener));
  }
  config.listeners = std::move(listeners);
  return absl::OkStatus();
}

// One `[[listener]]` table of EffectiveToml: bind, port and protocol always, the other keys
// where they differ from a table that leaves them out.
std::string ListenerToml(const ListenerConfig& listener) {
  static const ListenerConfig kDefaults;
  std::string text = "\n[[listener]]\n";
  for (const ListenerKey& entry : kListenerKeys) {
    const std::string value = entry.show(listener);
    const bool always = entry.key == "bind" || entry.key == "port" || entry.key == "protocol";
    if (value.empty() || (!always && value == entry.show(kDefaults))) continue;
    absl::StrAppend(&text, Sv(entry.key), " = ", value, "\n");
  }
  return text;
}

// An IP literal as bytes: IPv4 in the first 4 of 16.
struct IpAddress {
  int family = AF_UNSPEC;
  in6_addr bytes{};
};

IpAddress ParseIp(const std::string& text) {
  IpAddress address;
  if (inet_pton(AF_INET, text.c_str(), &address.bytes) == 1) {
    address.family = AF_INET;
  } else if (inet_pton(AF_INET6, text.c_str(), &address.bytes) == 1) {
    address.family = AF_INET6;
  }
  return address;
}

// True if a socket bound to `a` receives connections to `b` on the same port: the same
// address, or a wildcard ("::" takes IPv4 too: listeners are not IPV6_V6ONLY).
bool Covers(const IpAddress& a, const IpAddress& b) {
  static const in6_addr kZero{};
  const bool a_wildcard = std::memcmp(&a.bytes, &kZero, sizeof(kZero)) == 0;
  if (a.family == b.family && std::memcmp(&a.bytes, &b.bytes, sizeof(a.bytes)) == 0) return true;
  if (!a_wildcard) return false;
  return a.family == AF_INET6 || b.family == AF_INET;
}

bool AddressesOverlap(const std::string& bind_a, uint16_t port_a, const std::string& bind_b,
                      uint16_t port_b) {
  if (port_a != port_b) return false;
  const IpAddress a = ParseIp(bind_a);
  const IpAddress b = ParseIp(bind_b);
  return Covers(a, b) || Covers(b, a);
}

// --- [cluster] table -------------------------------------------------------------------------

constexpr std::string_view kClusterKey = "cluster";
// Key in the table -> the option (flag) that holds it.
constexpr std::pair<std::string_view, std::string_view> kClusterKeys[] = {
    {"nats_urls", "cluster_nats_url"},
    {"node_name", "cluster_node_name"},
    {"subject_prefix", "cluster_subject_prefix"},
    {"ack_retransmit_ms", "cluster_ack_retransmit_ms"},
    {"ack_link_timeout_ms", "cluster_ack_link_timeout_ms"},
    {"ack_pending_max", "cluster_ack_pending_max"},
    {"ack_pending_bytes_max", "cluster_ack_pending_bytes_max"},
    // claims lane
    {"claim_batch_us", "cluster_claim_batch_us"},
    {"claim_batch_max", "cluster_claim_batch_max"},
    {"claim_batch_bytes", "cluster_claim_batch_bytes"},
    {"batch", "cluster_batch"},
    {"batch_bytes_max", "cluster_batch_bytes_max"},
    {"session_wait_ms", "cluster_session_wait_ms"},
    // natstls lane
    {"tls", "cluster_tls"},
    {"tls_ca_file", "cluster_tls_ca_file"},
    {"tls_cert_file", "cluster_tls_cert_file"},
    {"tls_key_file", "cluster_tls_key_file"},
    {"tls_server_name", "cluster_tls_server_name"},
    {"tls_handshake_first", "cluster_tls_handshake_first"},
    {"nkey_seed_file", "cluster_nkey_seed_file"},
    // jwt lane
    {"credentials_file", "cluster_credentials_file"},
};

absl::Status ApplyCluster(const toml::key& key, const toml::node& node,
                          std::string_view source_name, Config& config) {
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    return FileError(source_name, key.source().begin.line, "cluster: expected a [cluster] table");
  }
  for (const auto& [entry_key, entry_node] : InDocumentOrder(*table)) {
    const std::string_view name = entry_key->str();
    const auto* known = std::find_if(std::begin(kClusterKeys), std::end(kClusterKeys),
                                     [name](const auto& k) { return k.first == name; });
    if (known == std::end(kClusterKeys)) {
      return FileError(source_name, entry_key->source().begin.line,
                       absl::StrCat("unknown key ", Quote(entry_key->str()), " in [cluster]"));
    }
    const Option* option = FindByKey(known->second);
    RINGMQ_ASSERT(option != nullptr);
    const toml::node* wrong = SetFromNode(*option, *entry_node, config);
    if (wrong != nullptr) {
      return FileError(source_name, wrong->source().begin.line,
                       absl::StrCat("cluster.", Sv(entry_key->str()), ": expected ",
                                    Expected(*option, /*from_file=*/true)));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyKey(const toml::key& key, const toml::node& node, std::string_view source_name,
                      Config& config) {
  if (key.str() == kListenerKey) return ApplyListeners(key, node, source_name, config);
  if (key.str() == kClusterKey) return ApplyCluster(key, node, source_name, config);
  if (key.str() == kBridgeKey) {
    return ApplyBridges(node, key.source().begin.line, source_name, config);
  }
  const Option* option = FindByKey(key.str());
  if (option == nullptr) {
    return FileError(source_name, key.source().begin.line,
                     absl::StrCat("unknown key ", Quote(key.str())));
  }
  if (!option->info.file_key) {
    return FileError(source_name, key.source().begin.line,
                     absl::StrCat("unknown key ", Quote(key.str()), " (", FlagName(key.str()),
                                  " is a command-line flag only)"));
  }
  const toml::node* wrong = SetFromNode(*option, node, config);
  if (wrong == nullptr) return absl::OkStatus();
  return FileError(
      source_name, wrong->source().begin.line,
      absl::StrCat(Sv(key.str()), ": expected ", Expected(*option, /*from_file=*/true)));
}

absl::Status SyntaxError(const toml::parse_error& error, std::string_view source_name) {
  std::string description(error.description());
  std::replace(description.begin(), description.end(), '\n', ' ');
  return FileError(source_name, error.source().begin.line, description);
}

// toml::parse throws when toml++ was built with exceptions (Debian's is) and returns a
// parse_result otherwise; either way a syntax error becomes a Status here.
absl::StatusOr<toml::table> ParseToml(std::string_view text, std::string_view source_name) {
#if TOML_EXCEPTIONS
  try {
    return toml::parse(text, source_name);
  } catch (const toml::parse_error& error) {
    return SyntaxError(error, source_name);
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(source_name), ": ", error.what()));
  }
#else
  toml::parse_result result = toml::parse(text, source_name);
  if (!result) return SyntaxError(result.error(), source_name);
  return std::move(result).table();
#endif
}

}  // namespace

std::vector<OptionInfo> Options() {
  std::vector<OptionInfo> options;
  options.reserve(std::size(kOptions));
  for (const Option& option : kOptions) options.push_back(option.info);
  return options;
}

std::string FlagName(std::string_view key) {
  std::string flag = absl::StrCat("--", Sv(key));
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

absl::StatusOr<CommandLine> ParseCommandLine(int argc, const char* const* argv) {
  RINGMQ_ASSERT(argc >= 0);
  RINGMQ_ASSERT(argc == 0 || argv != nullptr);
  absl::StatusOr<std::vector<FlagValue>> flags = SplitFlags(argc, argv);
  if (!flags.ok()) return flags.status();

  CommandLine result;
  const FlagValue* config_flag = nullptr;
  for (const FlagValue& flag : *flags) {
    if (const auto* on = std::get_if<SwitchValue>(&flag.option->value)) result.*(on->member) = true;
    if (flag.option->info.key == kConfigKey) config_flag = &flag;  // the last one wins
  }
  if (result.show_help || result.show_version) return result;  // --check-config still checks

  // The file first, so that every flag overrides it wherever it stands on the command line.
  if (config_flag != nullptr) {
    absl::Status loaded = LoadConfigFile(std::string(config_flag->value), result.config);
    if (!loaded.ok()) return loaded;
  }
  std::vector<const Option*> seen;  // repeatable list options given so far
  for (const FlagValue& flag : *flags) {
    if (std::holds_alternative<SwitchValue>(flag.option->value)) continue;
    bool append = false;
    if (const auto* list = std::get_if<ListValue>(&flag.option->value); list && list->repeatable) {
      append = std::find(seen.begin(), seen.end(), flag.option) != seen.end();
      if (!append) seen.push_back(flag.option);
    }
    absl::Status applied = ApplyFlag(flag, result.config, append);
    if (!applied.ok()) return applied;
  }
  if (absl::Status checked = CheckListeners(result.config); !checked.ok()) return checked;
  if (absl::Status checked = CheckClusterTls(result.config); !checked.ok()) return checked;
  return result;
}

absl::Status ApplyToml(std::string_view toml_text, std::string_view source_name, Config& config) {
  absl::StatusOr<toml::table> table = ParseToml(toml_text, source_name);
  if (!table.ok()) return table.status();

  Config updated = config;  // all or nothing
  for (const auto& [key, node] : InDocumentOrder(*table)) {
    absl::Status applied = ApplyKey(*key, *node, source_name, updated);
    if (!applied.ok()) return applied;
  }
  config = std::move(updated);
  return absl::OkStatus();
}

std::string HelpText() {
  const Config defaults;
  std::vector<std::string> lefts;
  size_t width = 0;
  for (const Option& option : kOptions) {
    std::string left = "  ";
    if (option.info.short_name != '\0')
      absl::StrAppend(&left, "-", std::string(1, option.info.short_name), ", ");
    absl::StrAppend(&left, FlagName(option.info.key));
    if (!option.info.placeholder.empty()) absl::StrAppend(&left, " ", Sv(option.info.placeholder));
    width = std::max(width, left.size());
    lefts.push_back(std::move(left));
  }

  std::string text =
      "usage: ringmq [flags]\n"
      "       ringmq passwd [-c] [--scram] [-b] [-D] FILE USER [PASSWORD]  (docs/auth.md)\n"
      "       ringmq db check|dump [--json] DIR  (a persistence data directory, docs/persistence.md)\n"
      "\n"
      "Settings come from defaults, then the TOML config file named by --config, then the flags\n"
      "(later sources win). Config-file keys are the flag names with '_' for '-', all at the top\n"
      "level (max_connections = 5000). More listeners (TLS, WebSockets, PROXY protocol) are\n"
      "[[listener]] tables of the file only. See docs/configuration.md and\n"
      "docs/ringmq.example.toml.\n"
      "\n"
      "flags:\n";
  for (size_t i = 0; i < std::size(kOptions); ++i) {
    const Option& option = kOptions[i];
    absl::StrAppend(&text, lefts[i], std::string(width + 3 - lefts[i].size(), ' '),
                    Sv(option.info.help));
    if (option.show != nullptr) {
      absl::StrAppend(&text, " (default ", option.show(defaults, /*as_toml=*/false), ")");
    }
    text += '\n';
  }
  return text;
}

std::string RedactNatsUrl(std::string_view url) {
  const size_t scheme = url.find("://");
  const size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  const size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  const std::string_view userinfo = url.substr(start, at - start);
  const size_t colon = userinfo.find(':');
  // user:password@ keeps the user; token@ is all secret.
  const std::string_view kept = colon == std::string_view::npos ? "" : userinfo.substr(0, colon + 1);
  std::string out(url.substr(0, start));
  out.append(kept).append("REDACTED").append(url.substr(at));
  return out;
}

std::string EffectiveToml(const Config& config) {
  std::string text;
  for (const Option& option : kOptions) {
    if (!option.info.file_key || option.show == nullptr) continue;
    absl::StrAppend(&text, Sv(option.info.key), " = ", option.show(config, /*as_toml=*/true),
                    "\n");
  }
  {  // after every top-level key: a table ends them
    std::vector<std::string> urls;
    // Credentials in the URLs are not printed: --check-config output lands in logs (the
    // systemd unit runs it before every start).
    for (const std::string& url : config.cluster_nats_urls) {
      urls.push_back(TomlString(RedactNatsUrl(url)));
    }
    absl::StrAppend(&text, "\n[cluster]\nnats_urls = [", absl::StrJoin(urls, ", "),
                    "]\nnode_name = ", TomlString(config.cluster_node_name),
                    "\nsubject_prefix = ", TomlString(config.cluster_subject_prefix), "\n");
    absl::StrAppend(&text, "ack_retransmit_ms = ", config.cluster_ack_retransmit_ms,
                    "\nack_link_timeout_ms = ", config.cluster_ack_link_timeout_ms,
                    "\nack_pending_max = ", config.cluster_ack_pending_max,
                    "\nack_pending_bytes_max = ", config.cluster_ack_pending_bytes_max, "\n");
    // claims lane
    absl::StrAppend(&text, "claim_batch_us = ", config.cluster_claim_batch_us,
                    "\nclaim_batch_max = ", config.cluster_claim_batch_max,
                    "\nclaim_batch_bytes = ", config.cluster_claim_batch_bytes, "\n");
    absl::StrAppend(&text, "batch = ", config.cluster_batch ? "true" : "false",
                    "\nbatch_bytes_max = ", config.cluster_batch_bytes_max, "\n");
    absl::StrAppend(&text, "session_wait_ms = ", config.cluster_session_wait_ms, "\n");
    // natstls lane
    absl::StrAppend(&text, "tls = ", config.cluster_tls ? "true" : "false",
                    "\ntls_ca_file = ", TomlString(config.cluster_tls_ca_file),
                    "\ntls_cert_file = ", TomlString(config.cluster_tls_cert_file),
                    "\ntls_key_file = ", TomlString(config.cluster_tls_key_file),
                    "\ntls_server_name = ", TomlString(config.cluster_tls_server_name),
                    "\ntls_handshake_first = ",
                    config.cluster_tls_handshake_first ? "true" : "false",
                    "\nnkey_seed_file = ", TomlString(config.cluster_nkey_seed_file), "\n");
    // jwt lane
    absl::StrAppend(&text, "credentials_file = ", TomlString(config.cluster_credentials_file),
                    "\n");
  }
  for (const ListenerConfig& listener : config.listeners) text += ListenerToml(listener);
  text += BridgesToml(config);
  return text;
}

bool IsValidNodeName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNodeNameBytes) return false;
  for (const char c : name) {
    if (c < 0x21 || c > 0x7e || c == '.' || c == '*' || c == '>') return false;
  }
  return true;
}

std::string ClusterNodeName(const Config& config, std::string_view host_name) {
  if (!config.cluster_node_name.empty()) return config.cluster_node_name;
  std::string name;
  for (const char c : host_name.substr(0, kMaxNodeNameBytes)) {
    name += (c < 0x21 || c > 0x7e || c == '.' || c == '*' || c == '>') ? '_' : c;
  }
  return name.empty() ? std::string("ringmq") : name;
}

std::string ListenerName(const ListenerConfig& listener) {
  if (!listener.name.empty()) return listener.name;
  const bool ws = listener.protocol == ListenerProtocol::kWebSockets;
  const char* scheme = ws ? (listener.tls() ? "wss" : "ws") : (listener.tls() ? "mqtts" : "mqtt");
  return absl::StrCat(scheme, ":", listener.port);
}

absl::Status CheckListeners(const Config& config) {
  if (config.listeners.size() > kMaxListenerTables) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", kMaxListenerTables, " [[listener]] tables"));
  }
  if (config.port == 0 && config.listeners.empty()) {
    return absl::InvalidArgumentError(
        "port 0 turns the default listener off, and there is no [[listener]] table: nothing "
        "to listen on");
  }
  struct Named {
    std::string label;  // as errors name it
    const std::string* bind;
    uint16_t port;
    std::string name;
  };
  std::vector<Named> all;
  all.reserve(config.listeners.size() + 1);
  if (config.port != 0) {
    ListenerConfig plain;
    plain.port = config.port;
    all.push_back({"the default listener (bind, port)", &config.bind, config.port,
                   ListenerName(plain)});
  }
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    all.push_back({ListenerLabel(i), &listener.bind, listener.port, ListenerName(listener)});
  }
  // At most 256 listeners: the pairs are cheap to compare.
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (AddressesOverlap(*all[i].bind, all[i].port, *all[j].bind, all[j].port)) {
        return absl::InvalidArgumentError(
            absl::StrCat(all[j].label, " on ", *all[j].bind, " and ", all[i].label, " on ",
                         *all[i].bind, " share port ", all[i].port));
      }
    }
  }
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (all[i].name == all[j].name) {
        return absl::InvalidArgumentError(absl::StrCat(
            all[j].label, " and ", all[i].label, " are both named ", Quote(all[i].name),
            ": listener names label their metrics and must differ (set name)"));
      }
    }
  }
  if (config.metrics_port != 0) {
    for (const Named& listener : all) {
      if (AddressesOverlap(*listener.bind, listener.port, config.metrics_bind,
                           config.metrics_port)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "metrics_port ", config.metrics_port, " is also the port of ", listener.label));
      }
    }
  }
  return absl::OkStatus();
}

std::string_view ToString(LogLevel level) {
  const auto index = static_cast<size_t>(level);
  RINGMQ_ASSERT(index < std::size(kLogLevelNames));
  return kLogLevelNames[index];
}

std::string_view ToString(RejectPolicy policy) {
  const auto index = static_cast<size_t>(policy);
  RINGMQ_ASSERT(index < std::size(kRejectPolicyNames));
  return kRejectPolicyNames[index];
}

std::string_view ToString(QueueFullPolicy policy) {
  const auto index = static_cast<size_t>(policy);
  RINGMQ_ASSERT(index < std::size(kQueueFullPolicyNames));
  return kQueueFullPolicyNames[index];
}

std::string_view ToString(Durability durability) {
  const auto index = static_cast<size_t>(durability);
  RINGMQ_ASSERT(index < std::size(kDurabilityNames));
  return kDurabilityNames[index];
}

std::string_view ToString(SharedSubscriptionStrategy strategy) {
  const auto index = static_cast<size_t>(strategy);
  RINGMQ_ASSERT(index < std::size(kSharedStrategyNames));
  return kSharedStrategyNames[index];
}

std::string_view ToString(ListenerProtocol protocol) {
  const auto index = static_cast<size_t>(protocol);
  RINGMQ_ASSERT(index < std::size(kListenerProtocolNames));
  return kListenerProtocolNames[index];
}

std::string_view ToString(IdentityField field) {
  const auto index = static_cast<size_t>(field);
  RINGMQ_ASSERT(index < std::size(kIdentityFieldNames));
  return kIdentityFieldNames[index];
}

std::string_view ToString(ProxyProtocol proxy) {
  const auto index = static_cast<size_t>(proxy);
  RINGMQ_ASSERT(index < std::size(kProxyProtocolNames));
  return kProxyProtocolNames[index];
}

std::string_view ToString(CpuAffinity affinity) {
  const auto index = static_cast<size_t>(affinity);
  RINGMQ_ASSERT(index < std::size(kCpuAffinityNames));
  return kCpuAffinityNames[index];
}

// natstls lane.
absl::Status CheckClusterTls(const Config& config) {
  if (config.cluster_tls_handshake_first && !config.cluster_tls &&
      !std::any_of(config.cluster_nats_urls.begin(), config.cluster_nats_urls.end(),
                   [](const std::string& url) { return url.starts_with("tls://"); })) {
    return absl::InvalidArgumentError(
        "[cluster] tls_handshake_first needs TLS: tls = true or tls:// URLs");
  }
  if (config.cluster_tls_cert_file.empty() != config.cluster_tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "[cluster] tls_cert_file and tls_key_file go together (a client certificate)");
  }
  // jwt lane: one source of the key that signs the nonce.
  if (!config.cluster_nkey_seed_file.empty() && !config.cluster_credentials_file.empty()) {
    return absl::InvalidArgumentError(
        "[cluster] nkey_seed_file and credentials_file are exclusive (the .creds file holds the "
        "seed)");
  }
  return absl::OkStatus();
}

}  // namespace ringmq::config
