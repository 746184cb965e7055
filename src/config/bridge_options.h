// The `[[bridge]]` tables of the config file (docs/bridges.md): parsing into
// Config::bridges, with each bridge checked (bridge::ValidateBridgeConfig) and names unique, and
// their form for --check-config (passwords shown as "REDACTED").
//
// Thread safety: stateless functions; safe from any thread.
#ifndef RINGMQ_CONFIG_BRIDGE_OPTIONS_H_
#define RINGMQ_CONFIG_BRIDGE_OPTIONS_H_

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ringmq/config.h"

namespace ringmq::config {

inline constexpr std::string_view kBridgeKey = "bridge";
// At most this many bridges (one pair of sockets each).
inline constexpr size_t kMaxBridges = 64;

// The `bridge` key (at `line` of `source_name`): an array of tables replaces Config::bridges.
// Errors name the file, the line and the key.
absl::Status ApplyBridges(const toml::node& node, uint32_t line, std::string_view source_name,
                          Config& config);

// One topic rule in Mosquitto's syntax, "pattern [direction [qos [local-prefix
// [remote-prefix]]]]" with "" for an empty field (mosquitto.conf(5), `topic`).
absl::StatusOr<BridgeTopicConfig> ParseMosquittoTopic(std::string_view text);

// Every [[bridge]] table as TOML, secrets redacted; "" without bridges.
std::string BridgesToml(const Config& config);

}  // namespace ringmq::config

#endif  // RINGMQ_CONFIG_BRIDGE_OPTIONS_H_
