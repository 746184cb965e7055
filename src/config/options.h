// Command-line flags and the TOML config file, from one table of options.
//
// Every option has one entry (name, value kind, help text, setter) used by the flag parser, the
// config-file parser and --help, so they cannot disagree. Precedence: defaults < config file <
// flags. A flag and a config key have the same name with '-' for '_' (--max-connections vs
// max_connections). Config-file keys live at the top level of the document: there are no TOML
// tables, so `[server]` or `a.b = 1` is an unknown key.
//
// Thread safety: call from the main thread before shards start.
#ifndef RINGMQ_CONFIG_OPTIONS_H_
#define RINGMQ_CONFIG_OPTIONS_H_

#include <string>
#include <string_view>
#include <vector>

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
// Unknown keys and values of the wrong type or out of range are errors; on error `config` is
// left unchanged. Never throws, whether or not toml++ was built with exceptions.
absl::Status ApplyToml(std::string_view toml_text, std::string_view source_name, Config& config);

// The --help text: usage line plus every option with its default and description.
std::string HelpText();

// Every config-file key with its value in `config`, one `key = value` line each, as a TOML
// document that ApplyToml turns back into `config` (--check-config prints it).
std::string EffectiveToml(const Config& config);

std::string_view ToString(LogLevel level);
std::string_view ToString(RejectPolicy policy);
std::string_view ToString(QueueFullPolicy policy);
std::string_view ToString(SharedSubscriptionStrategy strategy);
std::string_view ToString(CpuAffinity affinity);

}  // namespace ringmq::config

#endif  // RINGMQ_CONFIG_OPTIONS_H_
