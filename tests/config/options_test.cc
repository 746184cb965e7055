#include "config/options.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ringmq/config.h"

namespace ringmq::config {
namespace {

absl::StatusOr<CommandLine> Parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"ringmq"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

// The message of a failed parse, or a marker that makes the comparison fail.
template <typename T>
std::string ErrorOf(const absl::StatusOr<T>& result) {
  if (result.ok()) return "<ok>";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(result.status().message());
}

std::string ErrorOf(const absl::Status& status) {
  if (status.ok()) return "<ok>";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

std::string WriteTemp(const std::string& name, std::string_view text) {
  const std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  return path;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A file of the source tree, given relative to the repository root. __FILE__ is the path the
// compiler was given: absolute, or relative to the build directory, which is an ancestor of this
// test binary (the test may run from another working directory).
std::filesystem::path SourcePath(std::string_view relative) {
  const std::filesystem::path root = std::filesystem::path(__FILE__).parent_path() / "../..";
  const std::filesystem::path from_root = root / relative;
  if (from_root.is_absolute() || std::filesystem::exists(from_root)) return from_root;
  std::error_code error;
  std::filesystem::path dir = std::filesystem::read_symlink("/proc/self/exe", error);
  for (int depth = 0; depth < 8 && !error && dir.has_parent_path(); ++depth) {
    dir = dir.parent_path();
    if (std::filesystem::exists(dir / from_root)) return dir / from_root;
  }
  return from_root;
}

std::vector<OptionInfo> FileKeys() {
  std::vector<OptionInfo> keys;
  for (const OptionInfo& option : Options()) {
    if (option.file_key) keys.push_back(option);
  }
  return keys;
}

// A TOML document that sets every config-file key to a value other than its default, and the
// Config it must produce. Keys here must match the table exactly (checked below).
constexpr std::string_view kEveryKeyToml = R"(# every key, none at its default
bind = "::1"
port = 8883
threads = 4
log_level = "debug"
reject_policy = "silent"
connect_timeout_ms = 2500
max_connections = 42
max_client_id_length = 23
max_packet_size = 4096
max_connect_packet_size = 1024
max_inflight = 7
max_queued_messages = 99
max_queued_bytes = 2048
max_retained_messages = 5
max_retained_bytes = 4096
queue_full_policy = "disconnect"
shared_subscription_strategy = "hash"
max_memory = 536870912
persistent_session_expiry = "2d"
max_session_expiry = "1w"
persistence = true
data_dir = "/var/lib/ringmq/data"
durability = "interval"
sync_interval_ms = 25
max_disk_bytes = 1073741824
persistence_truncate_corrupt = true
remove_unconfigured_bridge_sessions = false
max_message_expiry = "1h"
max_offline_sessions = 5000
max_subscriptions_per_session = 50
max_inbound_qos2_pending = 10
max_qos = 1
retain_available = false
max_keepalive = 120
max_topic_alias = 0
outbound_topic_aliases = 5
receive_maximum = 20
response_information = "reply/"
max_filters_per_iteration = 16
client_id_prefixes = ["sensor-", "dev-"]
max_connections_per_address = 10
max_connect_rate_per_address = 20
allow_anonymous = false
password_file = "/etc/ringmq/passwd"
acl_file = "/etc/ringmq/acl"
max_auth_failures_per_second = 5
metrics_bind = "0.0.0.0"
metrics_port = 0
sys_interval_s = 0
max_mailbox_overflow_bytes = 4096
mailbox_memory = 65536
cpu_affinity = "auto"
stall_warning_ms = 0
)";

Config EveryKeyConfig() {
  Config config;
  config.bind = "::1";
  config.port = 8883;
  config.threads = 4;
  config.log_level = LogLevel::kDebug;
  config.reject_policy = RejectPolicy::kSilent;
  config.connect_timeout_ms = 2500;
  config.max_connections = 42;
  config.max_client_id_length = 23;
  config.max_packet_size = 4096;
  config.max_connect_packet_size = 1024;
  config.max_inflight = 7;
  config.max_queued_messages = 99;
  config.max_queued_bytes = 2048;
  config.max_retained_messages = 5;
  config.max_retained_bytes = 4096;
  config.queue_full_policy = QueueFullPolicy::kDisconnect;
  config.shared_subscription_strategy = SharedSubscriptionStrategy::kHash;
  config.max_memory = 536870912;
  config.persistent_session_expiry_s = 2 * 86'400;
  config.max_session_expiry_s = 7 * 86'400;
  config.persistence = true;
  config.data_dir = "/var/lib/ringmq/data";
  config.durability = Durability::kInterval;
  config.sync_interval_ms = 25;
  config.max_disk_bytes = 1073741824;
  config.persistence_truncate_corrupt = true;
  config.remove_unconfigured_bridge_sessions = false;
  config.max_message_expiry_s = 3'600;
  config.max_offline_sessions = 5000;
  config.max_subscriptions_per_session = 50;
  config.max_inbound_qos2_pending = 10;
  config.max_qos = 1;
  config.retain_available = false;
  config.max_keepalive = 120;
  config.max_topic_alias = 0;
  config.outbound_topic_aliases = 5;
  config.receive_maximum = 20;
  config.response_information = "reply/";
  config.max_filters_per_iteration = 16;
  config.client_id_prefixes = {"sensor-", "dev-"};
  config.max_connections_per_address = 10;
  config.max_connect_rate_per_address = 20;
  config.allow_anonymous = false;
  config.password_file = "/etc/ringmq/passwd";
  config.acl_file = "/etc/ringmq/acl";
  config.max_auth_failures_per_second = 5;
  config.metrics_bind = "0.0.0.0";
  config.metrics_port = 0;
  config.sys_interval_s = 0;
  config.max_mailbox_overflow_bytes = 4096;
  config.mailbox_memory = 65536;
  config.cpu_affinity = CpuAffinity::kAuto;
  config.stall_warning_ms = 0;
  return config;
}

// --- Defaults and names ----------------------------------------------------------------------

TEST(ConfigTest, DefaultsWithNoArguments) {
  const absl::StatusOr<CommandLine> parsed = Parse({});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->show_help);
  EXPECT_FALSE(parsed->show_version);
  EXPECT_EQ(parsed->config, Config{});
  EXPECT_EQ(parsed->config.bind, "127.0.0.1");
  EXPECT_EQ(parsed->config.port, 1883);
  EXPECT_EQ(parsed->config.threads, 0u);
  EXPECT_EQ(parsed->config.config_file, "");
  EXPECT_EQ(parsed->config.log_level, LogLevel::kInfo);
  EXPECT_EQ(parsed->config.reject_policy, RejectPolicy::kVerbose);
  EXPECT_EQ(parsed->config.connect_timeout_ms, 10'000u);
  EXPECT_EQ(parsed->config.max_connections, 100'000u);
  EXPECT_EQ(parsed->config.max_client_id_length, 256u);
  EXPECT_EQ(parsed->config.max_packet_size, 1u << 20);
  EXPECT_EQ(parsed->config.max_connect_packet_size, 64u << 10);
  EXPECT_EQ(parsed->config.max_inflight, 512u);
  EXPECT_EQ(parsed->config.max_queued_messages, 1000u);
  EXPECT_EQ(parsed->config.max_queued_bytes, uint64_t{16} << 20);
  EXPECT_EQ(parsed->config.max_retained_messages, 1'000'000u);
  EXPECT_EQ(parsed->config.max_retained_bytes, uint64_t{1} << 30);
  EXPECT_EQ(parsed->config.queue_full_policy, QueueFullPolicy::kDrop);
  EXPECT_EQ(parsed->config.shared_subscription_strategy, SharedSubscriptionStrategy::kRoundRobin);
  EXPECT_EQ(parsed->config.persistent_session_expiry_s, 0u);
  EXPECT_EQ(parsed->config.max_session_expiry_s, 0u) << "no cap";
  EXPECT_EQ(parsed->config.max_offline_sessions, 1'000'000u);
  EXPECT_TRUE(parsed->config.client_id_prefixes.empty());
  EXPECT_EQ(parsed->config.max_connections_per_address, 0u);
  EXPECT_EQ(parsed->config.max_connect_rate_per_address, 0u);
  EXPECT_TRUE(parsed->config.allow_anonymous);
  EXPECT_EQ(parsed->config.password_file, "");
  EXPECT_EQ(parsed->config.acl_file, "");
  EXPECT_EQ(parsed->config.max_auth_failures_per_second, 100u);
  EXPECT_EQ(parsed->config.metrics_bind, "127.0.0.1");
  EXPECT_EQ(parsed->config.metrics_port, 9883);
  EXPECT_EQ(parsed->config.sys_interval_s, 10u);
  EXPECT_EQ(parsed->config.max_mailbox_overflow_bytes, uint64_t{16} << 20);
  EXPECT_EQ(parsed->config.mailbox_memory, uint64_t{4} << 20);
  EXPECT_EQ(parsed->config.cpu_affinity, CpuAffinity::kOff);
  EXPECT_EQ(parsed->config.stall_warning_ms, 100u);
  EXPECT_FALSE(parsed->check_config);
}

TEST(ConfigTest, ArgcZeroIsNoArguments) {
  const absl::StatusOr<CommandLine> parsed = ParseCommandLine(0, nullptr);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config, Config{});
}

TEST(OptionsTest, FlagNameIsKeyWithDashes) {
  EXPECT_EQ(FlagName("max_connections"), "--max-connections");
  EXPECT_EQ(FlagName("port"), "--port");
}

TEST(OptionsTest, EnumNames) {
  EXPECT_EQ(ToString(LogLevel::kDebug), "debug");
  EXPECT_EQ(ToString(LogLevel::kInfo), "info");
  EXPECT_EQ(ToString(LogLevel::kWarning), "warning");
  EXPECT_EQ(ToString(LogLevel::kError), "error");
  EXPECT_EQ(ToString(RejectPolicy::kVerbose), "verbose");
  EXPECT_EQ(ToString(RejectPolicy::kSilent), "silent");
}

TEST(OptionsTest, TableKeysAreUniqueSnakeCase) {
  std::set<std::string_view> keys;
  for (const OptionInfo& option : Options()) {
    SCOPED_TRACE(option.key);
    EXPECT_TRUE(keys.insert(option.key).second);
    EXPECT_EQ(option.key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"),
              std::string_view::npos);
    EXPECT_TRUE(option.key[0] >= 'a' && option.key[0] <= 'z');
  }
}

// --- Flags -----------------------------------------------------------------------------------

struct FlagCase {
  std::string flag;
  std::string value;
  std::function<void(const Config&)> check;
};

std::vector<FlagCase> GoodFlagCases() {
  return {
      {"--bind", "0.0.0.0", [](const Config& c) { EXPECT_EQ(c.bind, "0.0.0.0"); }},
      {"--bind", "::", [](const Config& c) { EXPECT_EQ(c.bind, "::"); }},
      {"--bind", "fe80::1:2", [](const Config& c) { EXPECT_EQ(c.bind, "fe80::1:2"); }},
      {"--port", "1", [](const Config& c) { EXPECT_EQ(c.port, 1); }},
      {"--port", "65535", [](const Config& c) { EXPECT_EQ(c.port, 65535); }},
      {"--threads", "0", [](const Config& c) { EXPECT_EQ(c.threads, 0u); }},
      {"--threads", "1024", [](const Config& c) { EXPECT_EQ(c.threads, 1024u); }},
      {"--log-level", "debug", [](const Config& c) { EXPECT_EQ(c.log_level, LogLevel::kDebug); }},
      {"--log-level", "info", [](const Config& c) { EXPECT_EQ(c.log_level, LogLevel::kInfo); }},
      {"--log-level", "warning",
       [](const Config& c) { EXPECT_EQ(c.log_level, LogLevel::kWarning); }},
      {"--log-level", "error", [](const Config& c) { EXPECT_EQ(c.log_level, LogLevel::kError); }},
      {"--reject-policy", "silent",
       [](const Config& c) { EXPECT_EQ(c.reject_policy, RejectPolicy::kSilent); }},
      {"--reject-policy", "verbose",
       [](const Config& c) { EXPECT_EQ(c.reject_policy, RejectPolicy::kVerbose); }},
      {"--connect-timeout-ms", "100",
       [](const Config& c) { EXPECT_EQ(c.connect_timeout_ms, 100u); }},
      {"--connect-timeout-ms", "3600000",
       [](const Config& c) { EXPECT_EQ(c.connect_timeout_ms, 3'600'000u); }},
      {"--max-connections", "1", [](const Config& c) { EXPECT_EQ(c.max_connections, 1u); }},
      {"--max-connections", "10000000",
       [](const Config& c) { EXPECT_EQ(c.max_connections, 10'000'000u); }},
      {"--max-client-id-length", "1",
       [](const Config& c) { EXPECT_EQ(c.max_client_id_length, 1u); }},
      {"--max-client-id-length", "65535",
       [](const Config& c) { EXPECT_EQ(c.max_client_id_length, 65535u); }},
      {"--max-packet-size", "64", [](const Config& c) { EXPECT_EQ(c.max_packet_size, 64u); }},
      {"--max-packet-size", "268435460",
       [](const Config& c) { EXPECT_EQ(c.max_packet_size, 268'435'460u); }},
      {"--max-connect-packet-size", "64",
       [](const Config& c) { EXPECT_EQ(c.max_connect_packet_size, 64u); }},
      {"--max-connect-packet-size", "268435460",
       [](const Config& c) { EXPECT_EQ(c.max_connect_packet_size, 268'435'460u); }},
      {"--max-inflight", "1", [](const Config& c) { EXPECT_EQ(c.max_inflight, 1u); }},
      {"--max-inflight", "65534", [](const Config& c) { EXPECT_EQ(c.max_inflight, 65534u); }},
      {"--max-queued-messages", "1", [](const Config& c) { EXPECT_EQ(c.max_queued_messages, 1u); }},
      {"--queue-full-policy", "disconnect",
       [](const Config& c) { EXPECT_EQ(c.queue_full_policy, QueueFullPolicy::kDisconnect); }},
      {"--queue-full-policy", "drop",
       [](const Config& c) { EXPECT_EQ(c.queue_full_policy, QueueFullPolicy::kDrop); }},
      {"--shared-subscription-strategy", "random",
       [](const Config& c) {
         EXPECT_EQ(c.shared_subscription_strategy, SharedSubscriptionStrategy::kRandom);
       }},
      {"--shared-subscription-strategy", "hash",
       [](const Config& c) {
         EXPECT_EQ(c.shared_subscription_strategy, SharedSubscriptionStrategy::kHash);
       }},
      {"--shared-subscription-strategy", "round_robin",
       [](const Config& c) {
         EXPECT_EQ(c.shared_subscription_strategy, SharedSubscriptionStrategy::kRoundRobin);
       }},
      {"--max-queued-bytes", "1024", [](const Config& c) { EXPECT_EQ(c.max_queued_bytes, 1024u); }},
      {"--max-queued-bytes", "68719476736",
       [](const Config& c) { EXPECT_EQ(c.max_queued_bytes, uint64_t{68'719'476'736}); }},
      {"--max-memory", "0", [](const Config& c) { EXPECT_EQ(c.max_memory, 0u); }},
      {"--max-memory", "1125899906842624",
       [](const Config& c) { EXPECT_EQ(c.max_memory, uint64_t{1} << 50); }},
      {"--max-message-expiry", "0",
       [](const Config& c) { EXPECT_EQ(c.max_message_expiry_s, 0u); }},
      {"--max-message-expiry", "90s",
       [](const Config& c) { EXPECT_EQ(c.max_message_expiry_s, 90u); }},
      {"--persistent-session-expiry", "0",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 0u); }},
      {"--persistent-session-expiry", "5s",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 5u); }},
      {"--persistent-session-expiry", "1h",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 3'600u); }},
      {"--persistent-session-expiry", "36h",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 36 * 3'600u); }},
      {"--persistent-session-expiry", "2d",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 2 * 86'400u); }},
      {"--persistent-session-expiry", "1w",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 7 * 86'400u); }},
      {"--persistent-session-expiry", "1m",  // Mosquitto: a month is 30 days
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 30 * 86'400u); }},
      {"--persistent-session-expiry", "1y",  // and a year 365 days
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 365 * 86'400u); }},
      {"--persistent-session-expiry", "4294967295s",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 4'294'967'295u); }},
      {"--persistent-session-expiry", "49710d",
       [](const Config& c) { EXPECT_EQ(c.persistent_session_expiry_s, 49'710 * 86'400u); }},
      {"--max-session-expiry", "0",
       [](const Config& c) { EXPECT_EQ(c.max_session_expiry_s, 0u); }},
      {"--max-session-expiry", "90s",
       [](const Config& c) { EXPECT_EQ(c.max_session_expiry_s, 90u); }},
      {"--max-session-expiry", "7d",
       [](const Config& c) { EXPECT_EQ(c.max_session_expiry_s, 7 * 86'400u); }},
      {"--max-session-expiry", "4294967295s",
       [](const Config& c) { EXPECT_EQ(c.max_session_expiry_s, 4'294'967'295u); }},
      {"--persistence", "true", [](const Config& c) { EXPECT_TRUE(c.persistence); }},
      {"--data-dir", "/tmp/ringmq", [](const Config& c) { EXPECT_EQ(c.data_dir, "/tmp/ringmq"); }},
      {"--durability", "fsync",
       [](const Config& c) { EXPECT_EQ(c.durability, Durability::kFsync); }},
      {"--durability", "interval",
       [](const Config& c) { EXPECT_EQ(c.durability, Durability::kInterval); }},
      {"--sync-interval-ms", "1", [](const Config& c) { EXPECT_EQ(c.sync_interval_ms, 1u); }},
      {"--max-disk-bytes", "0", [](const Config& c) { EXPECT_EQ(c.max_disk_bytes, 0u); }},
      {"--persistence-truncate-corrupt", "true",
       [](const Config& c) { EXPECT_TRUE(c.persistence_truncate_corrupt); }},
      {"--remove-unconfigured-bridge-sessions", "false",  // bridgeq2 lane
       [](const Config& c) { EXPECT_FALSE(c.remove_unconfigured_bridge_sessions); }},
      {"--max-offline-sessions", "1",
       [](const Config& c) { EXPECT_EQ(c.max_offline_sessions, 1u); }},
      {"--max-offline-sessions", "100000000",
       [](const Config& c) { EXPECT_EQ(c.max_offline_sessions, 100'000'000u); }},
      {"--max-subscriptions-per-session", "1",
       [](const Config& c) { EXPECT_EQ(c.max_subscriptions_per_session, 1u); }},
      {"--max-subscriptions-per-session", "10000000",
       [](const Config& c) { EXPECT_EQ(c.max_subscriptions_per_session, 10'000'000u); }},
      {"--max-inbound-qos2-pending", "1",
       [](const Config& c) { EXPECT_EQ(c.max_inbound_qos2_pending, 1u); }},
      {"--max-inbound-qos2-pending", "65535",
       [](const Config& c) { EXPECT_EQ(c.max_inbound_qos2_pending, 65'535u); }},
      {"--max-filters-per-iteration", "1",
       [](const Config& c) { EXPECT_EQ(c.max_filters_per_iteration, 1u); }},
      {"--max-filters-per-iteration", "1000000",
       [](const Config& c) { EXPECT_EQ(c.max_filters_per_iteration, 1'000'000u); }},
      {"--max-retained-messages", "0",
       [](const Config& c) { EXPECT_EQ(c.max_retained_messages, 0u); }},
      {"--max-retained-messages", "100000000",
       [](const Config& c) { EXPECT_EQ(c.max_retained_messages, 100'000'000u); }},
      {"--max-retained-bytes", "0", [](const Config& c) { EXPECT_EQ(c.max_retained_bytes, 0u); }},
      {"--max-retained-bytes", "1099511627776",
       [](const Config& c) { EXPECT_EQ(c.max_retained_bytes, uint64_t{1} << 40); }},
      {"--client-id-prefixes", "sensor-,dev-",
       [](const Config& c) {
         EXPECT_EQ(c.client_id_prefixes, (std::vector<std::string>{"sensor-", "dev-"}));
       }},
      {"--client-id-prefixes", "only",
       [](const Config& c) { EXPECT_EQ(c.client_id_prefixes, std::vector<std::string>{"only"}); }},
      {"--client-id-prefixes", "",
       [](const Config& c) { EXPECT_TRUE(c.client_id_prefixes.empty()); }},
      {"--max-connections-per-address", "0",
       [](const Config& c) { EXPECT_EQ(c.max_connections_per_address, 0u); }},
      {"--max-connections-per-address", "10000000",
       [](const Config& c) { EXPECT_EQ(c.max_connections_per_address, 10'000'000u); }},
      {"--max-connect-rate-per-address", "7",
       [](const Config& c) { EXPECT_EQ(c.max_connect_rate_per_address, 7u); }},
      {"--allow-anonymous", "false", [](const Config& c) { EXPECT_FALSE(c.allow_anonymous); }},
      {"--allow-anonymous", "true", [](const Config& c) { EXPECT_TRUE(c.allow_anonymous); }},
      {"--password-file", "/tmp/p",
       [](const Config& c) { EXPECT_EQ(c.password_file, "/tmp/p"); }},
      {"--password-file", "", [](const Config& c) { EXPECT_EQ(c.password_file, ""); }},
      {"--acl-file", "acl.txt", [](const Config& c) { EXPECT_EQ(c.acl_file, "acl.txt"); }},
      {"--max-auth-failures-per-second", "0",
       [](const Config& c) { EXPECT_EQ(c.max_auth_failures_per_second, 0u); }},
      {"--metrics-bind", "::1", [](const Config& c) { EXPECT_EQ(c.metrics_bind, "::1"); }},
      {"--metrics-port", "0", [](const Config& c) { EXPECT_EQ(c.metrics_port, 0); }},
      {"--metrics-port", "65535", [](const Config& c) { EXPECT_EQ(c.metrics_port, 65535); }},
      {"--sys-interval-s", "0", [](const Config& c) { EXPECT_EQ(c.sys_interval_s, 0u); }},
      {"--sys-interval-s", "86400",
       [](const Config& c) { EXPECT_EQ(c.sys_interval_s, 86'400u); }},
      {"--max-mailbox-overflow-bytes", "0",
       [](const Config& c) { EXPECT_EQ(c.max_mailbox_overflow_bytes, 0u); }},
      {"--max-mailbox-overflow-bytes", "68719476736",
       [](const Config& c) { EXPECT_EQ(c.max_mailbox_overflow_bytes, uint64_t{64} << 30); }},
      {"--mailbox-memory", "1024", [](const Config& c) { EXPECT_EQ(c.mailbox_memory, 1024u); }},
      {"--mailbox-memory", "68719476736",
       [](const Config& c) { EXPECT_EQ(c.mailbox_memory, uint64_t{64} << 30); }},
      {"--cpu-affinity", "auto",
       [](const Config& c) { EXPECT_EQ(c.cpu_affinity, CpuAffinity::kAuto); }},
      {"--cpu-affinity", "off",
       [](const Config& c) { EXPECT_EQ(c.cpu_affinity, CpuAffinity::kOff); }},
      {"--stall-warning-ms", "0", [](const Config& c) { EXPECT_EQ(c.stall_warning_ms, 0u); }},
      {"--max-qos", "0", [](const Config& c) { EXPECT_EQ(c.max_qos, 0); }},
      {"--max-qos", "2", [](const Config& c) { EXPECT_EQ(c.max_qos, 2); }},
      {"--retain-available", "false", [](const Config& c) { EXPECT_FALSE(c.retain_available); }},
      {"--max-keepalive", "0", [](const Config& c) { EXPECT_EQ(c.max_keepalive, 0); }},
      {"--max-keepalive", "65535", [](const Config& c) { EXPECT_EQ(c.max_keepalive, 65535); }},
      {"--max-topic-alias", "0", [](const Config& c) { EXPECT_EQ(c.max_topic_alias, 0); }},
      {"--max-topic-alias", "1024", [](const Config& c) { EXPECT_EQ(c.max_topic_alias, 1024); }},
      {"--outbound-topic-aliases", "8",
       [](const Config& c) { EXPECT_EQ(c.outbound_topic_aliases, 8); }},
      {"--outbound-topic-aliases", "1024",
       [](const Config& c) { EXPECT_EQ(c.outbound_topic_aliases, 1024); }},
      {"--receive-maximum", "1", [](const Config& c) { EXPECT_EQ(c.receive_maximum, 1); }},
      {"--receive-maximum", "65535",
       [](const Config& c) { EXPECT_EQ(c.receive_maximum, 65535); }},
      {"--response-information", "reply/",
       [](const Config& c) { EXPECT_EQ(c.response_information, "reply/"); }},
      {"--stall-warning-ms", "3600000",
       [](const Config& c) { EXPECT_EQ(c.stall_warning_ms, 3'600'000u); }},
      {"--cluster-nats-url", "nats://127.0.0.1:4222",
       [](const Config& c) {
         EXPECT_EQ(c.cluster_nats_urls, std::vector<std::string>{"nats://127.0.0.1:4222"});
       }},
      {"--cluster-node-name", "node-1",
       [](const Config& c) { EXPECT_EQ(c.cluster_node_name, "node-1"); }},
      {"--cluster-subject-prefix", "site.mqtt",
       [](const Config& c) { EXPECT_EQ(c.cluster_subject_prefix, "site.mqtt"); }},
      {"--cluster-ack-retransmit-ms", "500",
       [](const Config& c) { EXPECT_EQ(c.cluster_ack_retransmit_ms, 500u); }},
      {"--cluster-ack-link-timeout-ms", "3000",
       [](const Config& c) { EXPECT_EQ(c.cluster_ack_link_timeout_ms, 3000u); }},
      {"--cluster-ack-pending-max", "100",
       [](const Config& c) { EXPECT_EQ(c.cluster_ack_pending_max, 100u); }},
      {"--cluster-ack-pending-bytes-max", "4096",
       [](const Config& c) { EXPECT_EQ(c.cluster_ack_pending_bytes_max, 4096u); }},
      // claims lane
      {"--cluster-claim-batch-us", "0",
       [](const Config& c) { EXPECT_EQ(c.cluster_claim_batch_us, 0u); }},
      {"--cluster-claim-batch-max", "8",
       [](const Config& c) { EXPECT_EQ(c.cluster_claim_batch_max, 8u); }},
      {"--cluster-claim-batch-bytes", "4096",
       [](const Config& c) { EXPECT_EQ(c.cluster_claim_batch_bytes, 4096u); }},
      {"--cluster-batch", "true", [](const Config& c) { EXPECT_TRUE(c.cluster_batch); }},
      {"--cluster-batch-bytes-max", "2048",
       [](const Config& c) { EXPECT_EQ(c.cluster_batch_bytes_max, 2048u); }},
      {"--cluster-session-wait-ms", "250",
       [](const Config& c) { EXPECT_EQ(c.cluster_session_wait_ms, 250u); }},
      // natstls lane (cert and key files given together: ClusterTlsConfigTest).
      {"--cluster-tls", "true", [](const Config& c) { EXPECT_TRUE(c.cluster_tls); }},
      {"--cluster-tls-ca-file", "/etc/ringmq/nats-ca.pem",
       [](const Config& c) { EXPECT_EQ(c.cluster_tls_ca_file, "/etc/ringmq/nats-ca.pem"); }},
      {"--cluster-tls-cert-file", "",
       [](const Config& c) { EXPECT_EQ(c.cluster_tls_cert_file, ""); }},
      {"--cluster-tls-key-file", "",
       [](const Config& c) { EXPECT_EQ(c.cluster_tls_key_file, ""); }},
      // true alone is refused (needs TLS): ClusterTlsConfigTest.HandshakeFirstNeedsTls.
      {"--cluster-tls-handshake-first", "false",
       [](const Config& c) { EXPECT_FALSE(c.cluster_tls_handshake_first); }},
      {"--cluster-tls-server-name", "nats.example",
       [](const Config& c) { EXPECT_EQ(c.cluster_tls_server_name, "nats.example"); }},
      {"--cluster-nkey-seed-file", "/etc/ringmq/node.nk",
       [](const Config& c) { EXPECT_EQ(c.cluster_nkey_seed_file, "/etc/ringmq/node.nk"); }},
      // jwt lane
      {"--cluster-credentials-file", "/etc/ringmq/node.creds",
       [](const Config& c) { EXPECT_EQ(c.cluster_credentials_file, "/etc/ringmq/node.creds"); }},
  };
}

TEST(OptionsFlagsTest, EveryFlagInBothSyntaxes) {
  std::set<std::string> covered;
  for (const FlagCase& test : GoodFlagCases()) {
    covered.insert(test.flag);
    SCOPED_TRACE(test.flag + " " + test.value);
    const absl::StatusOr<CommandLine> spaced = Parse({test.flag, test.value});
    ASSERT_TRUE(spaced.ok()) << spaced.status();
    test.check(spaced->config);
    const absl::StatusOr<CommandLine> joined = Parse({test.flag + "=" + test.value});
    ASSERT_TRUE(joined.ok()) << joined.status();
    test.check(joined->config);
    EXPECT_EQ(spaced->config, joined->config);
  }
  // A new option with a value needs a case here (--config has its own tests).
  for (const OptionInfo& option : Options()) {
    if (option.placeholder.empty() || option.key == "config") continue;
    EXPECT_TRUE(covered.contains(FlagName(option.key))) << FlagName(option.key);
  }
}

TEST(OptionsFlagsTest, LaterFlagWins) {
  const absl::StatusOr<CommandLine> parsed = Parse({"--port", "1", "--port=2"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 2);
}

TEST(OptionsFlagsTest, ValueMayContainEquals) {
  const absl::StatusOr<CommandLine> parsed = Parse({"--client-id-prefixes=a=b,c"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.client_id_prefixes, (std::vector<std::string>{"a=b", "c"}));
}

TEST(OptionsFlagsTest, EmptyPrefixListClearsFileList) {
  const std::string path = WriteTemp("prefixes.toml", "client_id_prefixes = [\"a\"]\n");
  const absl::StatusOr<CommandLine> parsed = Parse({"--config", path, "--client-id-prefixes="});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->config.client_id_prefixes.empty());
}

TEST(OptionsFlagsTest, HelpAndVersion) {
  for (const char* help : {"--help", "-h"}) {
    const absl::StatusOr<CommandLine> parsed = Parse({help});
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(parsed->show_help);
    EXPECT_FALSE(parsed->show_version);
  }
  const absl::StatusOr<CommandLine> parsed = Parse({"--version"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->show_version);
  EXPECT_FALSE(parsed->show_help);
}

TEST(OptionsFlagsTest, HelpWinsOverBadValuesAndMissingFile) {
  const absl::StatusOr<CommandLine> parsed =
      Parse({"--port", "-1", "--config", "/nonexistent/ringmq.toml", "--help"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->show_help);
}

struct BadFlagCase {
  std::vector<std::string> args;
  std::string error;
};

TEST(OptionsFlagsTest, BadValuesGiveExactOneLineErrors) {
  const std::vector<BadFlagCase> cases = {
      {{"--port", "70000"}, R"(--port: expected an integer in 0..65535, got "70000")"},
      {{"--port", "-1"}, R"(--port: expected an integer in 0..65535, got "-1")"},
      {{"--port", "abc"}, R"(--port: expected an integer in 0..65535, got "abc")"},
      {{"--port", "+80"}, R"(--port: expected an integer in 0..65535, got "+80")"},
      {{"--port", " 80"}, R"(--port: expected an integer in 0..65535, got " 80")"},
      {{"--port", "80x"}, R"(--port: expected an integer in 0..65535, got "80x")"},
      {{"--port", "1e3"}, R"(--port: expected an integer in 0..65535, got "1e3")"},
      {{"--port="}, R"(--port: expected an integer in 0..65535, got "")"},
      {{"--port", "99999999999999999999999"},
       R"(--port: expected an integer in 0..65535, got "99999999999999999999999")"},
      {{"--threads", "1025"}, R"(--threads: expected an integer in 0..1024, got "1025")"},
      {{"--max-inbound-qos2-pending", "65536"},
       R"(--max-inbound-qos2-pending: expected an integer in 1..65535, got "65536")"},
      {{"--max-qos", "3"}, R"(--max-qos: expected an integer in 0..2, got "3")"},
      {{"--durability", "always"}, R"(--durability: expected one of fsync|interval, got "always")"},
      {{"--sync-interval-ms", "0"},
       R"(--sync-interval-ms: expected an integer in 1..60000, got "0")"},
      {{"--receive-maximum", "0"},
       R"(--receive-maximum: expected an integer in 1..65535, got "0")"},
      {{"--max-topic-alias", "1025"},
       R"(--max-topic-alias: expected an integer in 0..1024, got "1025")"},
      {{"--outbound-topic-aliases", "1025"},
       R"(--outbound-topic-aliases: expected an integer in 0..1024, got "1025")"},
      {{"--response-information", "a b"},
       R"(--response-information: expected up to 1024 printable ASCII characters )"
       R"(without spaces, got "a b")"},
      {{"--max-subscriptions-per-session", "0"},
       R"(--max-subscriptions-per-session: expected an integer in 1..10000000, got "0")"},
      {{"--max-filters-per-iteration", "0"},
       R"(--max-filters-per-iteration: expected an integer in 1..1000000, got "0")"},
      {{"--connect-timeout-ms", "99"},
       R"(--connect-timeout-ms: expected an integer in 100..3600000, got "99")"},
      {{"--connect-timeout-ms", "3600001"},
       R"(--connect-timeout-ms: expected an integer in 100..3600000, got "3600001")"},
      {{"--max-retained-messages", "100000001"},
       R"(--max-retained-messages: expected an integer in 0..100000000, got "100000001")"},
      {{"--max-retained-bytes", "1099511627777"},
       R"(--max-retained-bytes: expected an integer in 0..1099511627776, got "1099511627777")"},
      {{"--max-connections", "0"},
       R"(--max-connections: expected an integer in 1..10000000, got "0")"},
      {{"--max-connections", "10000001"},
       R"(--max-connections: expected an integer in 1..10000000, got "10000001")"},
      {{"--max-client-id-length", "0"},
       R"(--max-client-id-length: expected an integer in 1..65535, got "0")"},
      {{"--max-client-id-length", "65536"},
       R"(--max-client-id-length: expected an integer in 1..65535, got "65536")"},
      {{"--max-packet-size", "63"},
       R"(--max-packet-size: expected an integer in 64..268435460, got "63")"},
      {{"--max-packet-size", "268435461"},
       R"(--max-packet-size: expected an integer in 64..268435460, got "268435461")"},
      {{"--bind", "localhost"}, R"(--bind: expected an IPv4 or IPv6 address, got "localhost")"},
      {{"--bind", "1.2.3"}, R"(--bind: expected an IPv4 or IPv6 address, got "1.2.3")"},
      {{"--bind", "[::1]"}, R"(--bind: expected an IPv4 or IPv6 address, got "[::1]")"},
      {{"--bind="}, R"(--bind: expected an IPv4 or IPv6 address, got "")"},
      {{"--bind", "1.2.3.4\nx"}, R"(--bind: expected an IPv4 or IPv6 address, got "1.2.3.4\nx")"},
      {{"--log-level", "verbose"},
       R"(--log-level: expected one of debug|info|warning|error, got "verbose")"},
      {{"--log-level", "INFO"},
       R"(--log-level: expected one of debug|info|warning|error, got "INFO")"},
      {{"--reject-policy", "loud"},
       R"(--reject-policy: expected one of verbose|silent, got "loud")"},
      {{"--client-id-prefixes", "a,,b"},
       R"(--client-id-prefixes: expected a comma-separated list of non-empty strings, got "a,,b")"},
      {{"--client-id-prefixes", ",a"},
       R"(--client-id-prefixes: expected a comma-separated list of non-empty strings, got ",a")"},
      {{"--client-id-prefixes", "a,"},
       R"(--client-id-prefixes: expected a comma-separated list of non-empty strings, got "a,")"},
      {{"--allow-anonymous", "yes"}, R"(--allow-anonymous: expected true or false, got "yes")"},
      {{"--allow-anonymous", "True"}, R"(--allow-anonymous: expected true or false, got "True")"},
      {{"--metrics-port", "65536"},
       R"(--metrics-port: expected an integer in 0..65535, got "65536")"},
      {{"--metrics-bind", "localhost"},
       R"(--metrics-bind: expected an IPv4 or IPv6 address, got "localhost")"},
      {{"--sys-interval-s", "86401"},
       R"(--sys-interval-s: expected an integer in 0..86400, got "86401")"},
      {{"--max-offline-sessions", "0"},
       R"(--max-offline-sessions: expected an integer in 1..100000000, got "0")"},
      {{"--max-offline-sessions", "100000001"},
       R"(--max-offline-sessions: expected an integer in 1..100000000, got "100000001")"},
      {{"--max-mailbox-overflow-bytes", "68719476737"},
       R"(--max-mailbox-overflow-bytes: expected an integer in 0..68719476736, got "68719476737")"},
      {{"--stall-warning-ms", "-1"},
       R"(--stall-warning-ms: expected an integer in 0..3600000, got "-1")"},
  };
  for (const BadFlagCase& test : cases) {
    SCOPED_TRACE(test.args[0]);
    const std::string error = ErrorOf(Parse(test.args));
    EXPECT_EQ(error, test.error);
    EXPECT_EQ(error.find('\n'), std::string::npos);
  }
}

TEST(OptionsFlagsTest, DurationsOutsideTheSyntaxAreRefused) {
  // Mosquitto's persistent_client_expiration syntax: a unit is required (a bare number other
  // than 0 is ambiguous), the count is a positive decimal integer, units are lower case.
  for (const std::string bad :
       {"5", "0h", "0s", "h", "5x", "5H", "5min", "-1h", "+1h", " 1h", "1h ", "1.5h", "1e3s",
        "", "4294967296s", "49711d", "99999999999999999999999h", "never"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(ErrorOf(Parse({"--persistent-session-expiry", bad})),
              absl::StrCat("--persistent-session-expiry: expected 0 (never) or a positive integer "
                           "followed by s, h, d, w, m (30 days) or y (365 days), at most "
                           "4294967295 s, got \"",
                           bad, "\""));
    EXPECT_EQ(ErrorOf(Parse({"--max-session-expiry", bad})),
              absl::StrCat("--max-session-expiry: expected 0 (no cap) or a positive integer "
                           "followed by s, h, d, w, m (30 days) or y (365 days), at most "
                           "4294967295 s, got \"",
                           bad, "\""));
  }
}

TEST(OptionsTomlTest, DurationIsATomlStringShownInItsLargestExactUnit) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("persistent_session_expiry = 3600\n", "d.toml", config)),
            "d.toml:1: persistent_session_expiry: expected 0 (never) or a positive integer "
            "followed by s, h, d, w, m (30 days) or y (365 days), at most 4294967295 s");
  for (const auto& [seconds, shown] : std::vector<std::pair<uint32_t, std::string>>{
           {0, "0"},
           {90, "90s"},
           {7'200, "2h"},
           {86'400, "1d"},
           {14 * 86'400, "2w"},
           {60 * 86'400, "2m"},
           {730 * 86'400, "2y"},
           {8 * 86'400, "8d"}}) {
    config.persistent_session_expiry_s = seconds;
    const std::string text = EffectiveToml(config);
    EXPECT_NE(text.find("\npersistent_session_expiry = \"" + shown + "\"\n"), std::string::npos)
        << text;
  }
}

TEST(OptionsFlagsTest, CheckConfigIsASwitch) {
  const absl::StatusOr<CommandLine> parsed = Parse({"--check-config", "--port", "1884"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->check_config);
  EXPECT_EQ(parsed->config.port, 1884);
  EXPECT_EQ(ErrorOf(Parse({"--check-config=yes"})), "--check-config: takes no value");
}

TEST(OptionsTomlTest, EffectiveTomlRoundTrips) {
  for (const Config& original : {Config{}, EveryKeyConfig()}) {
    const std::string text = EffectiveToml(original);
    Config parsed = original == Config{} ? EveryKeyConfig() : Config{};
    const absl::Status applied = ApplyToml(text, "effective", parsed);
    ASSERT_TRUE(applied.ok()) << applied << "\n" << text;
    EXPECT_EQ(parsed, original) << text;
  }
  Config quoting;
  quoting.password_file = "a \"b\"\\c";
  quoting.client_id_prefixes = {"x\"y'z", "tab\there"};
  Config parsed;
  ASSERT_TRUE(ApplyToml(EffectiveToml(quoting), "quoting", parsed).ok());
  EXPECT_EQ(parsed, quoting);
}

TEST(OptionsTomlTest, BooleanKeyNeedsATomlBoolean) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("allow_anonymous = \"false\"\n", "b.toml", config)),
            "b.toml:1: allow_anonymous: expected a boolean (true or false)");
  EXPECT_EQ(ErrorOf(ApplyToml("\nallow_anonymous = 0\n", "b.toml", config)),
            "b.toml:2: allow_anonymous: expected a boolean (true or false)");
  EXPECT_TRUE(config.allow_anonymous);
  ASSERT_TRUE(ApplyToml("allow_anonymous = false\n", "b.toml", config).ok());
  EXPECT_FALSE(config.allow_anonymous);
}

TEST(OptionsFlagsTest, UnknownFlag) {
  EXPECT_EQ(ErrorOf(Parse({"--frobnicate"})), "unknown flag --frobnicate (see --help)");
  EXPECT_EQ(ErrorOf(Parse({"--frobnicate=3"})), "unknown flag --frobnicate (see --help)");
  EXPECT_EQ(ErrorOf(Parse({"-x"})), "unknown flag -x (see --help)");
  EXPECT_EQ(ErrorOf(Parse({"-port", "1"})), "unknown flag -port (see --help)");
  EXPECT_EQ(ErrorOf(Parse({"--"})), "unknown flag -- (see --help)");
  EXPECT_EQ(ErrorOf(Parse({"--port", "1", "--Port", "2"})), "unknown flag --Port (see --help)");
}

TEST(OptionsFlagsTest, UnderscoreFlagSuggestsDashes) {
  EXPECT_EQ(ErrorOf(Parse({"--max_connections", "5"})),
            "unknown flag --max_connections (did you mean --max-connections?)");
}

TEST(OptionsFlagsTest, MissingValue) {
  EXPECT_EQ(ErrorOf(Parse({"--port"})), "--port: missing value");
  EXPECT_EQ(ErrorOf(Parse({"--port", "--threads", "4"})), "--port: missing value");
  EXPECT_EQ(ErrorOf(Parse({"--config"})), "--config: missing value");
}

TEST(OptionsFlagsTest, SwitchTakesNoValue) {
  EXPECT_EQ(ErrorOf(Parse({"--help=yes"})), "--help: takes no value");
  EXPECT_EQ(ErrorOf(Parse({"--version="})), "--version: takes no value");
}

TEST(OptionsFlagsTest, PositionalArgumentIsAnError) {
  EXPECT_EQ(ErrorOf(Parse({"ringmq.toml"})),
            R"(unexpected argument "ringmq.toml": ringmq takes only flags (see --help))");
  EXPECT_EQ(ErrorOf(Parse({"--port", "1", "2"})),
            R"(unexpected argument "2": ringmq takes only flags (see --help))");
  EXPECT_EQ(ErrorOf(Parse({"-"})),
            R"(unexpected argument "-": ringmq takes only flags (see --help))");
}

// --- Config file -----------------------------------------------------------------------------

TEST(OptionsTomlTest, EveryKeyTestCoversTheTable) {
  Config config;
  ASSERT_TRUE(ApplyToml(kEveryKeyToml, "every.toml", config).ok());
  for (const OptionInfo& option : FileKeys()) {
    EXPECT_NE(kEveryKeyToml.find("\n" + std::string(option.key) + " = "), std::string_view::npos)
        << option.key;
  }
}

TEST(OptionsTomlTest, FileAppliesEveryKey) {
  const std::string path = WriteTemp("every.toml", kEveryKeyToml);
  const absl::StatusOr<CommandLine> parsed = Parse({"--config", path});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  Config expected = EveryKeyConfig();
  expected.config_file = path;
  EXPECT_EQ(parsed->config, expected);
}

TEST(OptionsTomlTest, ApplyTomlAppliesEveryKey) {
  Config config;
  ASSERT_TRUE(ApplyToml(kEveryKeyToml, "every.toml", config).ok());
  EXPECT_EQ(config, EveryKeyConfig());
}

TEST(OptionsTomlTest, EmptyDocumentChangesNothing) {
  Config config = EveryKeyConfig();
  ASSERT_TRUE(ApplyToml("", "empty.toml", config).ok());
  ASSERT_TRUE(ApplyToml("# only a comment\n", "empty.toml", config).ok());
  EXPECT_EQ(config, EveryKeyConfig());
}

TEST(OptionsTomlTest, UnknownKeyNamesFileAndLine) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("port = 1\n\nfoo = 3\n", "r.toml", config)),
            R"(r.toml:3: unknown key "foo")");
}

TEST(OptionsTomlTest, TablesAreUnknownKeys) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("port = 1\n[server]\nport = 2\n", "r.toml", config)),
            R"(r.toml:2: unknown key "server")");
  EXPECT_EQ(ErrorOf(ApplyToml("server.port = 2\n", "r.toml", config)),
            R"(r.toml:1: unknown key "server")");
}

TEST(OptionsTomlTest, FlagOnlyOptionsAreNotKeys) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("config = \"other.toml\"\n", "r.toml", config)),
            R"(r.toml:1: unknown key "config" (--config is a command-line flag only))");
  EXPECT_EQ(ErrorOf(ApplyToml("\nhelp = true\n", "r.toml", config)),
            R"(r.toml:2: unknown key "help" (--help is a command-line flag only))");
}

TEST(OptionsTomlTest, FlagSpellingIsNotAKey) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("max-connections = 5\n", "r.toml", config)),
            R"(r.toml:1: unknown key "max-connections")");
}

struct BadTomlCase {
  std::string text;
  std::string error;
};

TEST(OptionsTomlTest, WrongTypeOrRangeNamesFileAndLine) {
  const std::vector<BadTomlCase> cases = {
      {"\n\nmax_connections = \"many\"\n",
       "r.toml:3: max_connections: expected an integer in 1..10000000"},
      {"max_connections = 0\n", "r.toml:1: max_connections: expected an integer in 1..10000000"},
      {"max_connections = 10000001\n",
       "r.toml:1: max_connections: expected an integer in 1..10000000"},
      {"max_connections = 5.0\n", "r.toml:1: max_connections: expected an integer in 1..10000000"},
      {"max_connections = true\n", "r.toml:1: max_connections: expected an integer in 1..10000000"},
      {"port = 70000\n", "r.toml:1: port: expected an integer in 0..65535"},
      {"port = -1\n", "r.toml:1: port: expected an integer in 0..65535"},
      {"threads = 1025\n", "r.toml:1: threads: expected an integer in 0..1024"},
      {"connect_timeout_ms = 99\n",
       "r.toml:1: connect_timeout_ms: expected an integer in 100..3600000"},
      {"max_client_id_length = 65536\n",
       "r.toml:1: max_client_id_length: expected an integer in 1..65535"},
      {"max_packet_size = 268435461\n",
       "r.toml:1: max_packet_size: expected an integer in 64..268435460"},
      {"max_connect_packet_size = 63\n",
       "r.toml:1: max_connect_packet_size: expected an integer in 64..268435460"},
      {"bind = \"localhost\"\n", "r.toml:1: bind: expected an IPv4 or IPv6 address"},
      {"bind = 127\n", "r.toml:1: bind: expected an IPv4 or IPv6 address"},
      {"log_level = \"loud\"\n", "r.toml:1: log_level: expected one of debug|info|warning|error"},
      {"reject_policy = 1\n", "r.toml:1: reject_policy: expected one of verbose|silent"},
      {"cpu_affinity = \"on\"\n", "r.toml:1: cpu_affinity: expected one of off|auto"},
      {"mailbox_memory = 1023\n",
       "r.toml:1: mailbox_memory: expected an integer in 1024..68719476736"},
      {"client_id_prefixes = \"a,b\"\n",
       "r.toml:1: client_id_prefixes: expected an array of non-empty strings"},
      {"client_id_prefixes = [\n  \"a\",\n  7,\n]\n",
       "r.toml:3: client_id_prefixes: expected an array of non-empty strings"},
      {"client_id_prefixes = [\"a\", \"\"]\n",
       "r.toml:1: client_id_prefixes: expected an array of non-empty strings"},
  };
  for (const BadTomlCase& test : cases) {
    SCOPED_TRACE(test.text);
    Config config;
    EXPECT_EQ(ErrorOf(ApplyToml(test.text, "r.toml", config)), test.error);
    EXPECT_EQ(config, Config{});
  }
}

TEST(OptionsTomlTest, EmptyArrayClearsPrefixes) {
  Config config = EveryKeyConfig();
  ASSERT_TRUE(ApplyToml("client_id_prefixes = []\n", "r.toml", config).ok());
  EXPECT_TRUE(config.client_id_prefixes.empty());
}

TEST(OptionsTomlTest, ErrorLeavesConfigUnchanged) {
  Config config;
  EXPECT_FALSE(ApplyToml("port = 2000\nthreads = 99999\n", "r.toml", config).ok());
  EXPECT_EQ(config, Config{});
}

TEST(OptionsTomlTest, FirstErrorInDocumentOrder) {
  // Alphabetically "bind" comes first; the file has "threads" first.
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("threads = -1\nbind = \"x\"\n", "r.toml", config)),
            "r.toml:1: threads: expected an integer in 0..1024");
}

TEST(OptionsTomlTest, SyntaxErrorNamesFileAndLine) {
  Config config;
  const std::string error = ErrorOf(ApplyToml("port = 1\nthreads = = 2\n", "bad.toml", config));
  EXPECT_TRUE(error.starts_with("bad.toml:2: ")) << error;
  EXPECT_GT(error.size(), std::string_view("bad.toml:2: ").size());
  EXPECT_EQ(error.find('\n'), std::string::npos);
  EXPECT_EQ(config, Config{});
}

TEST(OptionsTomlTest, DuplicateKeyIsASyntaxError) {
  Config config;
  const std::string error = ErrorOf(ApplyToml("port = 1\nport = 2\n", "dup.toml", config));
  EXPECT_TRUE(error.starts_with("dup.toml:2: ")) << error;
}

TEST(OptionsTomlTest, SyntaxErrorThroughConfigFlag) {
  const std::string path = WriteTemp("syntax.toml", "\n\n\nport 1883\n");
  const std::string error = ErrorOf(Parse({"--config", path}));
  EXPECT_TRUE(error.starts_with(path + ":4: ")) << error;
}

TEST(OptionsTomlTest, FlagsOverrideFileWhereverTheyStand) {
  const std::string path = WriteTemp("override.toml", "port = 1000\nmax_connections = 5\n");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--port", "2000", "--config", path}, {"--config=" + path, "--port=2000"}}) {
    const absl::StatusOr<CommandLine> parsed = Parse(args);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->config.port, 2000);
    EXPECT_EQ(parsed->config.max_connections, 5u);
    EXPECT_EQ(parsed->config.config_file, path);
  }
}

TEST(OptionsTomlTest, LastConfigFlagIsTheFileRead) {
  const std::string first = WriteTemp("first.toml", "port = 1001\n");
  const std::string second = WriteTemp("second.toml", "port = 1002\n");
  const absl::StatusOr<CommandLine> parsed = Parse({"--config", first, "--config", second});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 1002);
  EXPECT_EQ(parsed->config.config_file, second);
}

TEST(OptionsTomlTest, FileErrorsPrefixTheFileName) {
  const std::string path = WriteTemp("unknown.toml", "port = 1\nfoo = 3\n");
  EXPECT_EQ(ErrorOf(Parse({"--config", path})), path + R"(:2: unknown key "foo")");
}

TEST(OptionsTomlTest, MissingFileNamesFileAndReason) {
  const std::string path = testing::TempDir() + "/does-not-exist.toml";
  EXPECT_EQ(ErrorOf(Parse({"--config", path})),
            "cannot read config file \"" + path + "\": No such file or directory");
}

TEST(OptionsTomlTest, DirectoryIsUnreadable) {
  const std::string path = testing::TempDir();
  EXPECT_EQ(ErrorOf(Parse({"--config", path})),
            "cannot read config file \"" + path + "\": Is a directory");
}

TEST(OptionsTomlTest, OversizedFileIsRefused) {
  const std::string path = WriteTemp("huge.toml", std::string((1 << 20) + 1, '#'));
  EXPECT_EQ(ErrorOf(Parse({"--config", path})),
            "cannot read config file \"" + path + "\": larger than 1048576 bytes");
}

// --- Help ------------------------------------------------------------------------------------

TEST(OptionsHelpTest, ListsEveryOptionWithHelpAndDefault) {
  const std::string help = HelpText();
  EXPECT_TRUE(help.starts_with("usage: ringmq [flags]\n")) << help;
  EXPECT_NE(help.find("--config"), std::string::npos);
  EXPECT_NE(help.find("config file"), std::string::npos);
  for (const OptionInfo& option : Options()) {
    SCOPED_TRACE(option.key);
    EXPECT_FALSE(option.help.empty());
    EXPECT_EQ(option.help.find('\n'), std::string_view::npos);
    std::string left = FlagName(option.key);
    if (!option.placeholder.empty()) left += " " + std::string(option.placeholder);
    const size_t at = help.find(left + " ");
    ASSERT_NE(at, std::string::npos);
    const std::string line = help.substr(at, help.find('\n', at) - at);
    EXPECT_NE(line.find(option.help), std::string::npos) << line;
    EXPECT_EQ(line.find("(default ") != std::string::npos, option.file_key) << line;
  }
}

TEST(OptionsHelpTest, DescriptionsAreAlignedAndDefaultsComeFromConfig) {
  const std::string help = HelpText();
  EXPECT_NE(help.find("  -h, --help "), std::string::npos);
  const std::string_view text =
      "Refuse (CONNACK 0x03) beyond N connected clients (default 100000)\n";
  const size_t at = help.find(text);
  ASSERT_NE(at, std::string::npos) << help;
  const size_t line_start = help.rfind('\n', at) + 1;
  EXPECT_TRUE(help.substr(line_start).starts_with("  --max-connections N   "));
  const size_t column = at - line_start;
  for (const OptionInfo& option : Options()) {
    const size_t help_at = help.find(std::string(option.help));
    ASSERT_NE(help_at, std::string::npos) << option.key;
    EXPECT_EQ(help_at - (help.rfind('\n', help_at) + 1), column) << option.key;
  }
  EXPECT_NE(help.find("(default 127.0.0.1)"), std::string::npos);
  EXPECT_NE(help.find("(default info)"), std::string::npos);
  EXPECT_NE(help.find("(default verbose)"), std::string::npos);
  EXPECT_NE(help.find("(default 1048576)"), std::string::npos);
  EXPECT_NE(help.find("(default \"\")"), std::string::npos);
}

// --- [[listener]] tables ---------------------------------------------------------------------

// Two tables that set every listener key, none at its default, and the listeners they make.
constexpr std::string_view kEveryListenerKeyToml = R"(port = 1883
[[listener]]
name = "secure-ws"
bind = "::"
port = 8081
protocol = "websockets"
path = "/mqtt/ws"
allowed_origins = ["https://a.example", "https://b.example"]
trust_x_forwarded_for = true
proxy_protocol = "any"
certfile = "/etc/ringmq/server.crt"
keyfile = "/etc/ringmq/server.key"
cafile = "/etc/ringmq/ca.crt"
require_certificate = true
use_identity_as_username = true
identity_field = "san_email"
tls_version = "tlsv1.3"
ciphers = "ECDHE+AESGCM:!aNULL"
ciphersuites = "TLS_AES_128_GCM_SHA256"
max_connections = 100
allow_anonymous = false

[[listener]]
port = 1884
proxy_protocol = "v1"
allow_anonymous = true
)";

std::vector<ListenerConfig> EveryListenerKeyListeners() {
  ListenerConfig secure;
  secure.name = "secure-ws";
  secure.bind = "::";
  secure.port = 8081;
  secure.protocol = ListenerProtocol::kWebSockets;
  secure.path = "/mqtt/ws";
  secure.allowed_origins = {"https://a.example", "https://b.example"};
  secure.trust_x_forwarded_for = true;
  secure.proxy_protocol = ProxyProtocol::kAny;
  secure.certfile = "/etc/ringmq/server.crt";
  secure.keyfile = "/etc/ringmq/server.key";
  secure.cafile = "/etc/ringmq/ca.crt";
  secure.require_certificate = true;
  secure.use_identity_as_username = true;
  secure.identity_field = IdentityField::kSanEmail;
  secure.tls_version = "tlsv1.3";
  secure.ciphers = "ECDHE+AESGCM:!aNULL";
  secure.ciphersuites = "TLS_AES_128_GCM_SHA256";
  secure.max_connections = 100;
  secure.allow_anonymous = false;
  ListenerConfig plain;
  plain.port = 1884;
  plain.proxy_protocol = ProxyProtocol::kV1;
  plain.allow_anonymous = true;
  return {secure, plain};
}

// A listener table with only `port` (and what `edit` sets).
ListenerConfig Listener(uint16_t port, const std::function<void(ListenerConfig&)>& edit = {}) {
  ListenerConfig listener;
  listener.port = port;
  if (edit) edit(listener);
  return listener;
}

TEST(ListenerTomlTest, EveryKeyIsApplied) {
  Config config;
  const absl::Status applied = ApplyToml(kEveryListenerKeyToml, "l.toml", config);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(config.listeners, EveryListenerKeyListeners());
  EXPECT_TRUE(CheckListeners(config).ok());
}

TEST(ListenerTomlTest, TableDefaults) {
  Config config;
  ASSERT_TRUE(ApplyToml("[[listener]]\nport = 1884\n", "l.toml", config).ok());
  ASSERT_EQ(config.listeners.size(), 1u);
  const ListenerConfig& listener = config.listeners[0];
  EXPECT_EQ(listener, Listener(1884));
  EXPECT_EQ(listener.bind, "127.0.0.1") << "loopback, as the default listener";
  EXPECT_EQ(listener.protocol, ListenerProtocol::kMqtt);
  EXPECT_EQ(listener.proxy_protocol, ProxyProtocol::kOff);
  EXPECT_FALSE(listener.tls());
  EXPECT_EQ(listener.max_connections, 0u);
  EXPECT_FALSE(listener.allow_anonymous.has_value()) << "unset: the broker-wide key";
  EXPECT_EQ(config.port, 1883) << "the default listener stays";
}

TEST(ListenerTomlTest, EffectiveTomlRoundTripsListeners) {
  Config original;
  ASSERT_TRUE(ApplyToml(kEveryListenerKeyToml, "l.toml", original).ok());
  original.listeners.push_back(Listener(1885));
  const std::string text = EffectiveToml(original);
  Config parsed;
  const absl::Status applied = ApplyToml(text, "effective", parsed);
  ASSERT_TRUE(applied.ok()) << applied << "\n" << text;
  EXPECT_EQ(parsed, original) << text;
  // A table shows bind, port and protocol, and the other keys only where they differ.
  EXPECT_NE(text.find("\n[[listener]]\nbind = \"127.0.0.1\"\nport = 1885\nprotocol = \"mqtt\"\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("[[listener]]"), text.find("\n\n[[listener]]") + 2)
      << "tables after every top-level key";
}

TEST(ListenerTomlTest, TablesReplaceListenersAndAbsenceKeepsThem) {
  Config config;
  ASSERT_TRUE(ApplyToml("[[listener]]\nport = 2000\n[[listener]]\nport = 2001\n", "a", config)
                  .ok());
  ASSERT_EQ(config.listeners.size(), 2u);
  ASSERT_TRUE(ApplyToml("max_inflight = 3\n", "b", config).ok());
  EXPECT_EQ(config.listeners.size(), 2u);
  ASSERT_TRUE(ApplyToml("[[listener]]\nport = 3000\n", "c", config).ok());
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].port, 3000);
  ASSERT_TRUE(ApplyToml("listener = []\n", "d", config).ok());
  EXPECT_TRUE(config.listeners.empty());
  // Inline tables are tables too.
  ASSERT_TRUE(ApplyToml("listener = [{port = 4000}, {port = 4001, name = \"b\"}]\n", "e", config)
                  .ok());
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[1].name, "b");
}

TEST(ListenerTomlTest, BadValuesNameFileLineTableAndKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"port = 0", "port: expected an integer in 1..65535"},
      {"port = 65536", "port: expected an integer in 1..65535"},
      {"port = \"1884\"", "port: expected an integer in 1..65535"},
      {"bind = \"localhost\"", "bind: expected an IPv4 or IPv6 address"},
      {"name = \"\"", "name: expected 1 to 64 characters of A-Z a-z 0-9 _ . : -"},
      {"name = \"a b\"", "name: expected 1 to 64 characters of A-Z a-z 0-9 _ . : -"},
      {"name = \"" + std::string(65, 'n') + "\"",
       "name: expected 1 to 64 characters of A-Z a-z 0-9 _ . : -"},
      {"protocol = \"ws\"", "protocol: expected one of mqtt|websockets"},
      {"proxy_protocol = true", "proxy_protocol: expected one of off|v1|v2|any"},
      {"proxy_protocol = \"v3\"", "proxy_protocol: expected one of off|v1|v2|any"},
      {"protocol = \"websockets\"\npath = \"mqtt\"",
       "path: expected an HTTP path: \"/\" then printable ASCII without spaces, at most 1024 "
       "characters"},
      {"protocol = \"websockets\"\npath = \"/a b\"",
       "path: expected an HTTP path: \"/\" then printable ASCII without spaces, at most 1024 "
       "characters"},
      {"protocol = \"websockets\"\nallowed_origins = \"https://a\"",
       "allowed_origins: expected an array of non-empty strings of printable ASCII without "
       "spaces"},
      {"protocol = \"websockets\"\nallowed_origins = [\"\"]",
       "allowed_origins: expected an array of non-empty strings of printable ASCII without "
       "spaces"},
      {"trust_x_forwarded_for = 1", "trust_x_forwarded_for: expected a boolean (true or false)"},
      {"certfile = \"\"", "certfile: expected a file name"},
      {"tls_version = \"tlsv1.1\"", "tls_version: expected one of tlsv1.2|tlsv1.3"},
      {"tls_version = \"TLSv1.2\"", "tls_version: expected one of tlsv1.2|tlsv1.3"},
      {"identity_field = \"dn\"", "identity_field: expected one of cn|san_dns|san_email|san_uri"},
      {"ciphers = \"\"",
       "ciphers: expected an OpenSSL cipher list: printable ASCII, at most 4096 characters"},
      {"ciphersuites = \"a\\tb\"",
       "ciphersuites: expected OpenSSL TLS 1.3 cipher suites: printable ASCII, at most 4096 "
       "characters"},
      {"max_connections = -1", "max_connections: expected an integer in 0..10000000"},
      {"max_connections = 10000001", "max_connections: expected an integer in 0..10000000"},
      {"allow_anonymous = \"no\"", "allow_anonymous: expected a boolean (true or false)"},
  };
  for (const auto& [body, message] : cases) {
    // The bad key is on the last line of the second table.
    const std::string text =
        "[[listener]]\nport = 2000\n\n[[listener]]\nport = 2001\n" + body + "\n";
    const int line = 5 + static_cast<int>(std::count(body.begin(), body.end(), '\n'));
    Config config;
    const std::string error = ErrorOf(ApplyToml(text, "l.toml", config));
    // `port = ...` twice is a TOML syntax error; the port cases replace the first port line.
    if (body.starts_with("port")) {
      const std::string single = "[[listener]]\nport = 2000\n\n[[listener]]\n" + body + "\n";
      EXPECT_EQ(ErrorOf(ApplyToml(single, "l.toml", config)),
                absl::StrCat("l.toml:5: [[listener]] 2: ", message))
          << body;
    } else {
      EXPECT_EQ(error, absl::StrCat("l.toml:", line + 1, ": [[listener]] 2: ", message)) << body;
    }
    EXPECT_TRUE(config.listeners.empty()) << "all or nothing: " << body;
  }
}

TEST(ListenerTomlTest, UnknownKeysAndNestedTablesAreErrors) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("[[listener]]\nport = 1\nfoo = 2\n", "l.toml", config)),
            R"(l.toml:3: [[listener]] 1: unknown key "foo")");
  EXPECT_EQ(ErrorOf(ApplyToml("[[listener]]\nport = 1\nmax-connections = 2\n", "l.toml", config)),
            R"(l.toml:3: [[listener]] 1: unknown key "max-connections")");
  EXPECT_EQ(ErrorOf(ApplyToml("[[listener]]\nport = 1\n[listener.tls]\ncertfile = \"c\"\n",
                              "l.toml", config)),
            R"(l.toml:3: [[listener]] 1: unknown key "tls")");
  EXPECT_EQ(ErrorOf(ApplyToml("[listener]\nport = 1\n", "l.toml", config)),
            "l.toml:1: listener: expected [[listener]] tables (a TOML array of tables)");
  EXPECT_EQ(ErrorOf(ApplyToml("listener = 1884\n", "l.toml", config)),
            "l.toml:1: listener: expected [[listener]] tables (a TOML array of tables)");
  EXPECT_EQ(ErrorOf(ApplyToml("listener = [1884]\n", "l.toml", config)),
            "l.toml:1: listener: expected [[listener]] tables (a TOML array of tables)");
}

TEST(ListenerTomlTest, RulesBetweenKeysOfOneTable) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bind = \"0.0.0.0\"", "port is required (an integer in 1..65535)"},
      {"port = 1\npath = \"/x\"", "path is a websockets key, and protocol is \"mqtt\""},
      {"port = 1\nallowed_origins = []",
       "allowed_origins is a websockets key, and protocol is \"mqtt\""},
      {"port = 1\nprotocol = \"mqtt\"\ntrust_x_forwarded_for = false",
       "trust_x_forwarded_for is a websockets key, and protocol is \"mqtt\""},
      {"port = 1\nkeyfile = \"k\"", "keyfile needs certfile (the server certificate)"},
      {"port = 1\ncertfile = \"c\"", "certfile needs keyfile (the certificate's private key)"},
      {"port = 1\ncafile = \"ca\"", "cafile is a TLS key: TLS needs certfile and keyfile"},
      {"port = 1\nrequire_certificate = false",
       "require_certificate is a TLS key: TLS needs certfile and keyfile"},
      {"port = 1\nuse_identity_as_username = true",
       "use_identity_as_username is a TLS key: TLS needs certfile and keyfile"},
      {"port = 1\ntls_version = \"tlsv1.2\"",
       "tls_version is a TLS key: TLS needs certfile and keyfile"},
      {"port = 1\nidentity_field = \"cn\"",
       "identity_field is a TLS key: TLS needs certfile and keyfile"},
      {"port = 1\nciphers = \"HIGH\"", "ciphers is a TLS key: TLS needs certfile and keyfile"},
      {"port = 1\nciphersuites = \"TLS_AES_256_GCM_SHA384\"",
       "ciphersuites is a TLS key: TLS needs certfile and keyfile"},
      {"port = 1\ncertfile = \"c\"\nkeyfile = \"k\"\nrequire_certificate = true",
       "require_certificate needs cafile (the CAs that sign client certificates)"},
      {"port = 1\ncertfile = \"c\"\nkeyfile = \"k\"\nuse_identity_as_username = true",
       "use_identity_as_username needs cafile (the CAs that sign client certificates)"},
      {"port = 1\ncertfile = \"c\"\nkeyfile = \"k\"\ncafile = \"ca\"\n"
       "use_identity_as_username = true",
       "use_identity_as_username needs require_certificate = true"},
  };
  for (const auto& [body, message] : cases) {
    Config config;
    EXPECT_EQ(ErrorOf(ApplyToml("max_inflight = 3\n\n[[listener]]\n" + body + "\n", "l.toml",
                                config)),
              absl::StrCat("l.toml:3: [[listener]] 1: ", message))
        << body;
    EXPECT_EQ(config, Config{}) << "all or nothing: " << body;
  }
  // The TLS keys are fine with certfile and keyfile, as is an optional client certificate.
  Config config;
  const absl::Status applied = ApplyToml(
      "[[listener]]\nport = 1\ncertfile = \"c\"\nkeyfile = \"k\"\ncafile = \"ca\"\n"
      "tls_version = \"tlsv1.2\"\nciphers = \"HIGH:!aNULL\"\n",
      "l.toml", config);
  EXPECT_TRUE(applied.ok()) << applied;
}

TEST(ListenerTomlTest, AtMost255Tables) {
  std::string text;
  for (int i = 0; i < 255; ++i) absl::StrAppend(&text, "[[listener]]\nport = ", 2000 + i, "\n");
  Config config;
  ASSERT_TRUE(ApplyToml(text, "l.toml", config).ok());
  EXPECT_EQ(config.listeners.size(), 255u);
  EXPECT_TRUE(CheckListeners(config).ok()) << CheckListeners(config);
  absl::StrAppend(&text, "[[listener]]\nport = 3000\n");
  config = Config{};
  EXPECT_EQ(ErrorOf(ApplyToml(text, "l.toml", config)),
            "l.toml:511: at most 255 [[listener]] tables");
  EXPECT_TRUE(config.listeners.empty());
  // A config built in code is checked too (Broker::Start calls CheckListeners).
  config.listeners.assign(256, ListenerConfig{});
  EXPECT_EQ(ErrorOf(CheckListeners(config)), "at most 255 [[listener]] tables");
}

TEST(ListenerTomlTest, ListenerNames) {
  EXPECT_EQ(ListenerName(Listener(1883)), "mqtt:1883");
  EXPECT_EQ(ListenerName(Listener(8883, [](ListenerConfig& l) { l.certfile = "c"; })),
            "mqtts:8883");
  EXPECT_EQ(ListenerName(Listener(
                80, [](ListenerConfig& l) { l.protocol = ListenerProtocol::kWebSockets; })),
            "ws:80");
  EXPECT_EQ(ListenerName(Listener(443,
                                [](ListenerConfig& l) {
                                  l.protocol = ListenerProtocol::kWebSockets;
                                  l.certfile = "c";
                                })),
            "wss:443");
  EXPECT_EQ(ListenerName(Listener(443, [](ListenerConfig& l) { l.name = "edge"; })), "edge");
}

// --- Rules across listeners (after the flags) ------------------------------------------------

absl::StatusOr<CommandLine> ParseWithFile(std::string_view toml,
                                          std::vector<std::string> flags = {}) {
  const std::string path = WriteTemp("listeners.toml", toml);
  flags.insert(flags.begin(), {"--config", path});
  return Parse(flags);
}

TEST(ListenerRulesTest, DefaultListenerStaysUnlessPortIsZero) {
  absl::StatusOr<CommandLine> parsed = ParseWithFile("[[listener]]\nport = 8883\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 1883);
  EXPECT_EQ(parsed->config.listeners.size(), 1u);

  parsed = ParseWithFile("port = 0\n[[listener]]\nport = 8883\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 0);
  parsed = ParseWithFile("[[listener]]\nport = 8883\n", {"--port", "0"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 0);

  const std::string nothing =
      "port 0 turns the default listener off, and there is no [[listener]] table: nothing to "
      "listen on";
  EXPECT_EQ(ErrorOf(Parse({"--port", "0"})), nothing);
  EXPECT_EQ(ErrorOf(ParseWithFile("port = 0\n")), nothing);
  EXPECT_EQ(ErrorOf(ParseWithFile("port = 0\nlistener = []\n")), nothing);
}

TEST(ListenerRulesTest, TwoListenersOnOneAddressAreRefused) {
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nport = 1883\n")),
            "the default listener (bind, port) on 127.0.0.1 and [[listener]] 1 on 127.0.0.1 "
            "share port 1883");
  // A flag moves the default listener onto a table's address, or off it.
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nport = 8883\n", {"--port", "8883"})),
            "the default listener (bind, port) on 127.0.0.1 and [[listener]] 1 on 127.0.0.1 "
            "share port 8883");
  EXPECT_TRUE(ParseWithFile("[[listener]]\nport = 1883\n", {"--port", "1884"}).ok());
  EXPECT_EQ(ErrorOf(ParseWithFile("port = 1\n[[listener]]\nport = 2\nname = \"a\"\n"
                                  "[[listener]]\nport = 2\nname = \"b\"\n")),
            "[[listener]] 1 on 127.0.0.1 and [[listener]] 2 on 127.0.0.1 share port 2");
  // The same address spelled differently.
  EXPECT_EQ(ErrorOf(ParseWithFile("port = 1\n[[listener]]\nbind = \"::1\"\nport = 2\n"
                                  "name = \"a\"\n[[listener]]\nbind = \"0:0::1\"\nport = 2\n")),
            "[[listener]] 1 on ::1 and [[listener]] 2 on 0:0::1 share port 2");
  // Wildcards take the port on every address of their family; "::" takes IPv4 too.
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nbind = \"0.0.0.0\"\nport = 1883\n"
                                  "name = \"all\"\n")),
            "the default listener (bind, port) on 127.0.0.1 and [[listener]] 1 on 0.0.0.0 "
            "share port 1883");
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nbind = \"::\"\nport = 1883\nname = \"all\"\n")),
            "the default listener (bind, port) on 127.0.0.1 and [[listener]] 1 on :: share port "
            "1883");
  // Different addresses, or an IPv4 wildcard beside an IPv6 address, may share a port.
  EXPECT_TRUE(ParseWithFile("[[listener]]\nbind = \"127.0.0.2\"\nport = 1883\nname = \"two\"\n")
                  .ok());
  EXPECT_TRUE(ParseWithFile("bind = \"0.0.0.0\"\n[[listener]]\nbind = \"::1\"\nport = 1883\n"
                            "name = \"v6\"\n")
                  .ok());
}

TEST(ListenerRulesTest, NamesMustDiffer) {
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nbind = \"127.0.0.2\"\nport = 1883\n")),
            "the default listener (bind, port) and [[listener]] 1 are both named \"mqtt:1883\": "
            "listener names label their metrics and must differ (set name)");
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nport = 2\nname = \"x\"\n"
                                  "[[listener]]\nport = 3\nname = \"x\"\n")),
            "[[listener]] 1 and [[listener]] 2 are both named \"x\": listener names label their "
            "metrics and must differ (set name)");
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nport = 2\nname = \"mqtt:1883\"\n")),
            "the default listener (bind, port) and [[listener]] 1 are both named \"mqtt:1883\": "
            "listener names label their metrics and must differ (set name)");
}

TEST(ListenerRulesTest, MetricsEndpointMustNotTakeAListenersAddress) {
  EXPECT_EQ(ErrorOf(Parse({"--metrics-port", "1883"})),
            "metrics_port 1883 is also the port of the default listener (bind, port)");
  EXPECT_EQ(ErrorOf(ParseWithFile("[[listener]]\nport = 9883\n")),
            "metrics_port 9883 is also the port of [[listener]] 1");
  EXPECT_EQ(ErrorOf(ParseWithFile("metrics_bind = \"::\"\n[[listener]]\nbind = \"127.0.0.3\"\n"
                                  "port = 9883\n")),
            "metrics_port 9883 is also the port of [[listener]] 1");
  EXPECT_TRUE(ParseWithFile("[[listener]]\nport = 9883\n", {"--metrics-port", "0"}).ok());
  EXPECT_TRUE(ParseWithFile("[[listener]]\nbind = \"127.0.0.2\"\nport = 9883\n").ok());
}

// --- Documentation ---------------------------------------------------------------------------

// Uncomments every "# key = value" line of the example, so each documented default is parsed.
std::string UncommentKeys(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    for (const OptionInfo& option : FileKeys()) {
      if (line.starts_with("# " + std::string(option.key) + " = ")) {
        line.erase(0, 2);
        break;
      }
    }
    out += line + "\n";
  }
  return out;
}

TEST(ConfigDocsTest, ExampleFileParsesAndEqualsDefaults) {
  const std::filesystem::path path = SourcePath("docs/ringmq.example.toml");
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  const std::string text = ReadFile(path);
  ASSERT_FALSE(text.empty());

  Config as_shipped;
  ASSERT_TRUE(ApplyToml(text, path.string(), as_shipped).ok());
  EXPECT_EQ(as_shipped, Config{});

  // Every key, uncommented, applied over non-default values: each must be present and must
  // state the real default.
  const std::string uncommented = UncommentKeys(text);
  Config config = EveryKeyConfig();
  const absl::Status applied = ApplyToml(uncommented, path.string(), config);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(config, Config{});
}

TEST(ConfigDocsTest, ExampleListenerTablesParseAndCheck) {
  const std::string text = ReadFile(SourcePath("docs/ringmq.example.toml"));
  const size_t section = text.find("# --- More listeners");
  ASSERT_NE(section, std::string::npos);
  std::istringstream in(text.substr(section));
  std::string tables;
  int count = 0;
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("#   ")) continue;
    tables += line.substr(4) + "\n";
    count += line == "#   [[listener]]";
  }
  Config config;
  const absl::Status applied = ApplyToml(tables, "example tables", config);
  ASSERT_TRUE(applied.ok()) << applied << "\n" << tables;
  EXPECT_EQ(config.listeners.size(), static_cast<size_t>(count));
  EXPECT_GE(count, 5) << "plain, TLS, mutual TLS, WebSockets, PROXY";
  EXPECT_TRUE(CheckListeners(config).ok()) << CheckListeners(config);
}

// --- [cluster] --------------------------------------------------------------------------------

TEST(ClusterConfigTest, OffByDefault) {
  const absl::StatusOr<CommandLine> parsed = Parse({});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->config.clustered());
  EXPECT_TRUE(parsed->config.cluster_node_name.empty());
  EXPECT_TRUE(parsed->config.cluster_subject_prefix.empty());
}

TEST(ClusterConfigTest, TableSetsEveryKey) {
  Config config;
  ASSERT_TRUE(ApplyToml("[cluster]\nnats_urls = [\"nats://127.0.0.1:4222\", \"n2:4223\"]\n"
                        "node_name = \"node-1\"\nsubject_prefix = \"site.mqtt\"\n",
                        "c.toml", config)
                  .ok());
  EXPECT_TRUE(config.clustered());
  EXPECT_EQ(config.cluster_nats_urls,
            (std::vector<std::string>{"nats://127.0.0.1:4222", "n2:4223"}));
  EXPECT_EQ(config.cluster_node_name, "node-1");
  EXPECT_EQ(config.cluster_subject_prefix, "site.mqtt");
}

TEST(ClusterConfigTest, TableRefusesBadValuesAndUnknownKeys) {
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("[cluster]\nnats_url = [\"a\"]\n", "c.toml", config)),
            "c.toml:2: unknown key \"nats_url\" in [cluster]");
  EXPECT_EQ(ErrorOf(ApplyToml("[cluster]\nnats_urls = [\"ftp://a:4222\"]\n", "c.toml", config)),
            "c.toml:2: cluster.nats_urls: expected an array of non-empty strings");
  EXPECT_EQ(ErrorOf(ApplyToml("[cluster]\nnode_name = \"a.b\"\n", "c.toml", config)),
            "c.toml:2: cluster.node_name: expected a NATS subject token (printable ASCII, no "
            "'.', '*' or '>', at most 128 bytes)");
  EXPECT_EQ(ErrorOf(ApplyToml("[cluster]\nsubject_prefix = \"a.*\"\n", "c.toml", config)),
            "c.toml:2: cluster.subject_prefix: expected \"\" or a literal NATS subject (tokens "
            "separated by '.', no wildcards)");
  EXPECT_EQ(ErrorOf(ApplyToml("cluster = 1\n", "c.toml", config)),
            "c.toml:1: cluster: expected a [cluster] table");
  EXPECT_EQ(config, Config{}) << "all or nothing";
}

TEST(ClusterConfigTest, UrlFlagIsRepeatableAndCommaSeparated) {
  const absl::StatusOr<CommandLine> parsed =
      Parse({"--cluster-nats-url", "nats://a:1,nats://b:2", "--cluster-nats-url=c:3",
             "--cluster-node-name", "n1", "--cluster-subject-prefix", "mqtt"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.cluster_nats_urls,
            (std::vector<std::string>{"nats://a:1", "nats://b:2", "c:3"}));
  EXPECT_EQ(parsed->config.cluster_node_name, "n1");
  EXPECT_EQ(parsed->config.cluster_subject_prefix, "mqtt");
  EXPECT_EQ(ErrorOf(Parse({"--cluster-nats-url", "nats://a:99999"})),
            "--cluster-nats-url: expected a comma-separated list of non-empty strings, got "
            "\"nats://a:99999\"");
  EXPECT_EQ(ErrorOf(Parse({"--cluster-node-name", "a b"})).substr(0, 30),
            "--cluster-node-name: expected ");
}

TEST(ClusterConfigTest, FirstUrlFlagReplacesTheFilesList) {
  const std::string path =
      WriteTemp("cluster.toml", "[cluster]\nnats_urls = [\"file:1\", \"file:2\"]\n");
  const absl::StatusOr<CommandLine> parsed =
      Parse({"--config", path, "--cluster-nats-url", "flag:1", "--cluster-nats-url", "flag:2"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.cluster_nats_urls, (std::vector<std::string>{"flag:1", "flag:2"}));
}

TEST(ClusterConfigTest, EffectiveTomlRedactsNatsCredentials) {
  EXPECT_EQ(RedactNatsUrl("nats://u:p@127.0.0.1:4222"), "nats://u:REDACTED@127.0.0.1:4222");
  EXPECT_EQ(RedactNatsUrl("nats://s3cr3t@h:4222"), "nats://REDACTED@h:4222");
  EXPECT_EQ(RedactNatsUrl("u:p@h"), "u:REDACTED@h");
  EXPECT_EQ(RedactNatsUrl("nats://h:4222"), "nats://h:4222");
  EXPECT_EQ(RedactNatsUrl("[::1]:4223"), "[::1]:4223");
  Config config;
  config.cluster_nats_urls = {"nats://u:p4ss@127.0.0.1:4222", "nats://t0ken@127.0.0.1:4223"};
  const std::string text = EffectiveToml(config);
  EXPECT_EQ(text.find("p4ss"), std::string::npos) << text;
  EXPECT_EQ(text.find("t0ken"), std::string::npos) << text;
  EXPECT_NE(text.find("nats://u:REDACTED@127.0.0.1:4222"), std::string::npos) << text;
}

TEST(ClusterConfigTest, EffectiveTomlRoundTrips) {
  Config original;
  original.cluster_nats_urls = {"nats://127.0.0.1:4222", "[::1]:4223"};
  original.cluster_node_name = "n\"1";
  original.cluster_subject_prefix = "a.b";
  original.cluster_ack_retransmit_ms = 500;
  original.cluster_ack_link_timeout_ms = 3000;
  original.cluster_ack_pending_max = 7;
  original.cluster_ack_pending_bytes_max = 4096;
  original.cluster_claim_batch_us = 2000;  // claims lane
  original.cluster_claim_batch_max = 9;
  original.cluster_claim_batch_bytes = 1000;
  original.cluster_batch = true;
  original.cluster_batch_bytes_max = 2048;
  original.cluster_session_wait_ms = 250;
  Config parsed;
  const std::string text = EffectiveToml(original);
  ASSERT_TRUE(ApplyToml(text, "effective", parsed).ok()) << text;
  EXPECT_EQ(parsed, original) << text;
}

TEST(ClusterConfigTest, NodeNameDefaultsToTheHostName) {
  Config config;
  EXPECT_EQ(ClusterNodeName(config, "box.example.com"), "box_example_com");
  EXPECT_EQ(ClusterNodeName(config, ""), "ringmq");
  EXPECT_EQ(ClusterNodeName(config, std::string(300, 'h')), std::string(kMaxNodeNameBytes, 'h'));
  EXPECT_TRUE(IsValidNodeName(ClusterNodeName(config, "a b*c>d\x7f")));
  config.cluster_node_name = "chosen";
  EXPECT_EQ(ClusterNodeName(config, "box"), "chosen");
  EXPECT_FALSE(IsValidNodeName(std::string(kMaxNodeNameBytes + 1, 'n')));
  EXPECT_TRUE(IsValidNodeName(std::string(kMaxNodeNameBytes, 'n')));
}

TEST(ConfigDocsTest, ExampleFileUsableThroughConfigFlag) {
  const std::filesystem::path path = SourcePath("docs/ringmq.example.toml");
  const absl::StatusOr<CommandLine> parsed = Parse({"--config", path.string()});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  Config expected;
  expected.config_file = path.string();
  EXPECT_EQ(parsed->config, expected);
}

TEST(ConfigDocsTest, ReferenceDocumentsEveryOption) {
  const std::filesystem::path path = SourcePath("docs/configuration.md");
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  const std::string text = ReadFile(path);
  for (const OptionInfo& option : Options()) {
    EXPECT_NE(text.find("`" + FlagName(option.key)), std::string::npos) << option.key;
    if (option.file_key) {
      EXPECT_NE(text.find("`" + std::string(option.key) + "`"), std::string::npos) << option.key;
    }
  }
}

TEST(ConfigDocsTest, ReferenceExamplesParse) {
  const std::string text = ReadFile(SourcePath("docs/configuration.md"));
  const size_t example = text.find("## Example `ringmq.toml`");
  ASSERT_NE(example, std::string::npos);
  int blocks = 0;
  for (size_t begin = text.find("```toml\n"); begin != std::string::npos;
       begin = text.find("```toml\n", begin + 1)) {
    const size_t end = text.find("```", begin + 8);
    ASSERT_NE(end, std::string::npos);
    Config config;
    const absl::Status applied =
        ApplyToml(std::string_view(text).substr(begin + 8, end - begin - 8), "example", config);
    EXPECT_TRUE(applied.ok()) << applied;
    EXPECT_TRUE(CheckListeners(config).ok()) << CheckListeners(config);
    if (begin > example && blocks++ == 0) {
      EXPECT_EQ(config.client_id_prefixes, (std::vector<std::string>{"sensor-", "gateway-"}));
    }
  }
  EXPECT_EQ(blocks, 1) << "one example after the Example heading";
}

// --- [cluster] TLS and nkey keys (natstls lane) ----------------------------------------------

TEST(ClusterTlsConfigTest, TableSetsEveryTlsKeyAndTlsUrlsAreAccepted) {
  Config config;
  const absl::Status applied = ApplyToml(
      "[cluster]\nnats_urls = [\"tls://127.0.0.1:4222\", \"nats://n2:4223\"]\ntls = true\n"
      "tls_ca_file = \"/etc/ringmq/nats-ca.pem\"\ntls_cert_file = \"/etc/ringmq/node.pem\"\n"
      "tls_key_file = \"/etc/ringmq/node.key\"\ntls_server_name = \"nats.example\"\n"
      "tls_handshake_first = true\nnkey_seed_file = \"/etc/ringmq/node.nk\"\n",
      "c.toml", config);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(config.cluster_nats_urls,
            (std::vector<std::string>{"tls://127.0.0.1:4222", "nats://n2:4223"}));
  EXPECT_TRUE(config.cluster_tls);
  EXPECT_EQ(config.cluster_tls_ca_file, "/etc/ringmq/nats-ca.pem");
  EXPECT_EQ(config.cluster_tls_cert_file, "/etc/ringmq/node.pem");
  EXPECT_EQ(config.cluster_tls_key_file, "/etc/ringmq/node.key");
  EXPECT_EQ(config.cluster_tls_server_name, "nats.example");
  EXPECT_TRUE(config.cluster_tls_handshake_first);
  EXPECT_EQ(config.cluster_nkey_seed_file, "/etc/ringmq/node.nk");
  EXPECT_TRUE(CheckClusterTls(config).ok());
  // --check-config's output reads back to the same settings.
  Config again;
  const absl::Status reread = ApplyToml(EffectiveToml(config), "effective", again);
  ASSERT_TRUE(reread.ok()) << reread;
  EXPECT_EQ(again, config);
}

TEST(ClusterTlsConfigTest, FlagsSetTheSameKeys) {
  const absl::StatusOr<CommandLine> parsed =
      Parse({"--cluster-nats-url", "tls://a:1", "--cluster-tls", "true", "--cluster-tls-ca-file",
             "ca.pem", "--cluster-tls-cert-file", "c.pem", "--cluster-tls-key-file", "c.key",
             "--cluster-tls-server-name", "10.0.0.1", "--cluster-nkey-seed-file", "s.nk",
             "--cluster-tls-handshake-first", "true"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->config.cluster_tls);
  EXPECT_EQ(parsed->config.cluster_tls_ca_file, "ca.pem");
  EXPECT_EQ(parsed->config.cluster_tls_cert_file, "c.pem");
  EXPECT_EQ(parsed->config.cluster_tls_key_file, "c.key");
  EXPECT_EQ(parsed->config.cluster_tls_server_name, "10.0.0.1");
  EXPECT_TRUE(parsed->config.cluster_tls_handshake_first);
  EXPECT_EQ(parsed->config.cluster_nkey_seed_file, "s.nk");
}

TEST(ClusterTlsConfigTest, CertificateAndKeyGoTogetherAndBadValuesAreRefused) {
  EXPECT_EQ(ErrorOf(Parse({"--cluster-tls-cert-file", "c.pem"})),
            "[cluster] tls_cert_file and tls_key_file go together (a client certificate)");
  EXPECT_EQ(ErrorOf(Parse({"--cluster-tls-key-file", "c.key"})),
            "[cluster] tls_cert_file and tls_key_file go together (a client certificate)");
  Config config;
  EXPECT_EQ(ErrorOf(ApplyToml("[cluster]\ntls = \"yes\"\n", "c.toml", config)),
            "c.toml:2: cluster.tls: expected a boolean (true or false)");
  EXPECT_EQ(ErrorOf(ApplyToml("[cluster]\ntls_server_name = \"a b\"\n", "c.toml", config)),
            "c.toml:2: cluster.tls_server_name: expected a host name, an IP address or \"\"");
  EXPECT_EQ(config, Config{}) << "all or nothing";
}

// handshake_first without TLS would never send a ClientHello: refused at start.
TEST(ClusterTlsConfigTest, HandshakeFirstNeedsTls) {
  const std::string refused = "[cluster] tls_handshake_first needs TLS: tls = true or tls:// URLs";
  EXPECT_EQ(ErrorOf(Parse({"--cluster-nats-url", "nats://a:1", "--cluster-tls-handshake-first",
                           "true"})),
            refused);
  EXPECT_TRUE(Parse({"--cluster-nats-url", "tls://a:1", "--cluster-tls-handshake-first", "true"})
                  .ok());
  EXPECT_TRUE(Parse({"--cluster-nats-url", "nats://a:1", "--cluster-tls", "true",
                     "--cluster-tls-handshake-first", "true"})
                  .ok());
}

// --- [cluster] credentials_file (jwt lane) ----------------------------------------------------

TEST(ClusterCredentialsConfigTest, TableKeyRoundTripsAndExcludesNkeySeedFile) {
  Config config;
  const absl::Status applied = ApplyToml(
      "[cluster]\nnats_urls = [\"nats://127.0.0.1:4222\"]\n"
      "credentials_file = \"/etc/ringmq/node.creds\"\n",
      "c.toml", config);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(config.cluster_credentials_file, "/etc/ringmq/node.creds");
  EXPECT_TRUE(CheckClusterTls(config).ok());
  Config again;
  const absl::Status reread = ApplyToml(EffectiveToml(config), "effective", again);
  ASSERT_TRUE(reread.ok()) << reread;
  EXPECT_EQ(again, config);
  EXPECT_EQ(ErrorOf(Parse({"--cluster-credentials-file", "a.creds", "--cluster-nkey-seed-file",
                           "a.nk"})),
            "[cluster] nkey_seed_file and credentials_file are exclusive (the .creds file holds "
            "the seed)");
}

}  // namespace
}  // namespace ringmq::config
