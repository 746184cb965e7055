// Command-line flags and the TOML config file, from one table of options.
//
// Every option has one entry (name, value kind, help text, setter) used by the flag parser, the
// config-file parser and --help, so they cannot disagree. Precedence: defaults < config file <
// flags. A flag and a config key have the same name with '-' for '_' (--max-connections vs
// max_connections).
//
// Thread safety: call from the main thread before shards start.
#ifndef RINGMQ_CONFIG_OPTIONS_H_
#define RINGMQ_CONFIG_OPTIONS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "ringmq/config.h"

namespace ringmq::config {

struct CommandLine {
  Config config;
  bool show_help = false;
  bool show_version = false;
};

// Parses argv (flags as `--name value` or `--name=value`), loading the config file named by
// --config (if any) first so that flags override it. Errors are one line suitable for
// "ringmq: <message>", e.g. "unknown flag --frobnicate" or
// "ringmq.toml:3: max_connections: expected a positive integer".
absl::StatusOr<CommandLine> ParseCommandLine(int argc, const char* const* argv);

// Applies a TOML document to `config`. `source_name` prefixes errors ("file:line: ...").
// Unknown keys and values of the wrong type or out of range are errors.
absl::Status ApplyToml(std::string_view toml_text, std::string_view source_name, Config& config);

// The --help text: usage line plus every option with its default and description.
std::string HelpText();

std::string_view ToString(LogLevel level);
std::string_view ToString(RejectPolicy policy);

}  // namespace ringmq::config

#endif  // RINGMQ_CONFIG_OPTIONS_H_
