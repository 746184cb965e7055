// Command-line flags and the TOML config file, from one table of options.
//
// Every option has one entry (name, value kind, help text, setter) used by the flag parser, the
// config-file parser and --help, so they cannot disagree. Precedence: defaults < config file <
// flags. A flag and a config key have the same name with '-' for '_' (--max-connections vs
// max_connections). Config-file keys live at the top level of the document, except the
// listeners beyond the default one: each is a `[[listener]]` table (an array of tables). Other
// tables (`[server]`, `a.b = 1`) are unknown keys.
//
// Thread safety: call from the main thread before shards start.
#ifndef RINGMQ_CONFIG_OPTIONS_H_
#define RINGMQ_CONFIG_OPTIONS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ringmq/config.h"

namespace ringmq::config {

struct CommandLine {
  Config config;
  bool show_help = false;
  bool show_version = false;
  bool check_config = false;  // check everything, report, exit (0 when all is well)
};

// One row of the option table, as --help, the docs test and other tests see it.
struct OptionInfo {
  std::string_view key;          // snake_case config-file key; the flag is FlagName(key)
  char short_name;               // '\0' if none, 'h' for -h
  std::string_view placeholder;  // the value in --help ("N", "ADDR"); empty: takes no value
  std::string_view help;         // one line, without the default
  bool file_key;                 // false: flag only (--config, --help, --version)
};

// Every option in table order.
std::vector<OptionInfo> Options();

// "max_connections" -> "--max-connections".
std::string FlagName(std::string_view key);

// Parses argv (flags as `--name value` or `--name=value`), loading the config file named by
// --config (if any) first so that flags override it. --help and --version win over everything
// else: when either is present the file is not read and no value is checked. Errors are one line
// suitable for "ringmq: <message>", e.g. "unknown flag --frobnicate (see --help)" or
// "ringmq.toml:3: max_connections: expected an integer in 1..10000000".
absl::StatusOr<CommandLine> ParseCommandLine(int argc, const char* const* argv);

// Applies a TOML document to `config`. `source_name` prefixes errors ("file:line: ...").
// Unknown keys and values of the wrong type or out of range are errors, and so is a
// [[listener]] table that breaks a rule between its own keys (no port, keyfile without certfile,
// a TLS key without certfile, require_certificate without cafile, a websockets key on an mqtt
// listener); the document's [[listener]] tables, if any, replace config.listeners. On error
// `config` is left unchanged. Never throws, whether or not toml++ was built with exceptions.
// The rules across listeners are CheckListeners'.
absl::Status ApplyToml(std::string_view toml_text, std::string_view source_name, Config& config);

// The --help text: usage line plus every option with its default and description.
std::string HelpText();

// Every config-file key with its value in `config`, one `key = value` line each, then one
// [[listener]] table per Config::listeners entry (bind, port, protocol and the keys that differ
// from their defaults), as a TOML document that ApplyToml turns back into `config`
// (--check-config prints it).
std::string EffectiveToml(const Config& config);
// `url` with the password of user:password@ (or a token@) replaced by REDACTED, for output.
std::string RedactNatsUrl(std::string_view url);

// A cluster node name: a NATS subject token of printable ASCII without '.', '*' or '>', at
// most kMaxNodeNameBytes (it goes into every message's Ringmq-Node header).
inline constexpr size_t kMaxNodeNameBytes = 128;
bool IsValidNodeName(std::string_view name);
// cluster_node_name, or when empty `host_name` (gethostname) with every byte a node name
// cannot hold replaced by '_' (a host name's dots among them), cut to kMaxNodeNameBytes.
std::string ClusterNodeName(const Config& config, std::string_view host_name);

std::string_view ToString(LogLevel level);
std::string_view ToString(RejectPolicy policy);
std::string_view ToString(QueueFullPolicy policy);
std::string_view ToString(SharedSubscriptionStrategy strategy);
std::string_view ToString(Durability durability);
std::string_view ToString(CpuAffinity affinity);
std::string_view ToString(ListenerProtocol protocol);
std::string_view ToString(ProxyProtocol proxy);
std::string_view ToString(IdentityField field);

// The listener's display name and `listener` metric label: its `name` key, or
// "<scheme>:<port>" ("mqtt:1883", "mqtts:8883", "ws:8080", "wss:8081").
std::string ListenerName(const ListenerConfig& listener);

// The rules across listeners, checked once the file and the flags are applied (ParseCommandLine
// does; so does Broker::Start for configs built in code): at most 255 [[listener]] tables, some
// listener to listen on (port 0 turns the default one off), names that differ (ListenerName),
// no two listeners on the same port with the same or an overlapping wildcard address, and none
// on the metrics endpoint's address.
absl::Status CheckListeners(const Config& config);

// natstls lane: the [cluster] TLS keys that go together (tls_cert_file and tls_key_file);
// checked where CheckListeners is.
absl::Status CheckClusterTls(const Config& config);

}  // namespace ringmq::config

#endif  // RINGMQ_CONFIG_OPTIONS_H_
