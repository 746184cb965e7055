#include "config/bridge_options.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bridge/bridge.h"
#include "common/absl_view.h"
#include "common/assert.h"

namespace ringmq::config {
namespace {

absl::Status Error(std::string_view source_name, uint32_t line, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(Sv(source_name), ":", line, ": ", Sv(message)));
}

uint32_t LineOf(const toml::node& node) { return node.source().begin.line; }

// A TOML basic string (as options.cc writes them).
std::string Quoted(std::string_view text) {
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

std::optional<BridgeDirection> ParseDirection(std::string_view text) {
  if (text == "in") return BridgeDirection::kIn;
  if (text == "out") return BridgeDirection::kOut;
  if (text == "both") return BridgeDirection::kBoth;
  return std::nullopt;
}

std::string_view DirectionName(BridgeDirection direction) {
  switch (direction) {
    case BridgeDirection::kIn:
      return "in";
    case BridgeDirection::kOut:
      return "out";
    case BridgeDirection::kBoth:
      return "both";
  }
  return "out";
}

// Reads an integer within [min, max]; nullopt if the node is not one.
std::optional<int64_t> IntegerIn(const toml::node& node, int64_t min, int64_t max) {
  const toml::value<int64_t>* value = node.as_integer();
  if (value == nullptr || value->get() < min || value->get() > max) return std::nullopt;
  return value->get();
}

// One entry of `topics`: an inline table, or a string in Mosquitto's syntax.
absl::StatusOr<BridgeTopicConfig> ParseTopic(const toml::node& node) {
  if (const toml::value<std::string>* text = node.as_string()) {
    return ParseMosquittoTopic(text->get());
  }
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    return absl::InvalidArgumentError(
        "topics: expected inline tables {pattern = ..., direction = ..., qos = ...} or "
        "Mosquitto topic strings");
  }
  BridgeTopicConfig rule;
  for (const auto& [key, value] : *table) {
    const std::string_view name = key.str();
    const toml::value<std::string>* text = value.as_string();
    if (name == "pattern" && text != nullptr) {
      rule.pattern = text->get();
    } else if (name == "direction" && text != nullptr && ParseDirection(text->get())) {
      rule.direction = *ParseDirection(text->get());
    } else if (name == "qos" && IntegerIn(value, 0, 2)) {
      rule.qos = static_cast<uint8_t>(*IntegerIn(value, 0, 2));
    } else if (name == "local_prefix" && text != nullptr) {
      rule.local_prefix = text->get();
    } else if (name == "remote_prefix" && text != nullptr) {
      rule.remote_prefix = text->get();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "topics: ", Sv(name),
          " is unknown or of the wrong type (pattern, local_prefix, remote_prefix: strings; "
          "direction: \"in\", \"out\" or \"both\"; qos: 0, 1 or 2)"));
    }
  }
  if (!table->contains("pattern")) return absl::InvalidArgumentError("topics: pattern missing");
  return rule;
}

absl::Status SetString(const toml::node& node, std::string& out) {
  const toml::value<std::string>* value = node.as_string();
  if (value == nullptr) return absl::InvalidArgumentError("expected a string");
  out = value->get();
  return absl::OkStatus();
}

absl::Status SetOptional(const toml::node& node, std::optional<std::string>& out) {
  std::string text;
  if (absl::Status status = SetString(node, text); !status.ok()) return status;
  out = std::move(text);
  return absl::OkStatus();
}

absl::Status SetBool(const toml::node& node, bool& out) {
  const toml::value<bool>* value = node.as_boolean();
  if (value == nullptr) return absl::InvalidArgumentError("expected true or false");
  out = value->get();
  return absl::OkStatus();
}

template <typename T>
absl::Status SetInteger(const toml::node& node, int64_t min, int64_t max, T& out) {
  const std::optional<int64_t> value = IntegerIn(node, min, max);
  if (!value) {
    return absl::InvalidArgumentError(absl::StrCat("expected an integer from ", min, " to ", max));
  }
  out = static_cast<T>(*value);
  return absl::OkStatus();
}

absl::Status SetAddresses(const toml::node& node, std::vector<std::string>& out) {
  out.clear();
  if (const toml::value<std::string>* one = node.as_string()) {
    out.push_back(one->get());
    return absl::OkStatus();
  }
  const toml::array* array = node.as_array();
  if (array == nullptr) return absl::InvalidArgumentError("expected a list of \"host:port\"");
  for (const toml::node& element : *array) {
    const toml::value<std::string>* value = element.as_string();
    if (value == nullptr) return absl::InvalidArgumentError("expected a list of \"host:port\"");
    out.push_back(value->get());
  }
  return absl::OkStatus();
}

absl::Status SetTopics(const toml::node& node, std::vector<BridgeTopicConfig>& out) {
  const toml::array* array = node.as_array();
  if (array == nullptr) return absl::InvalidArgumentError("expected a list of topic rules");
  out.clear();
  for (const toml::node& element : *array) {
    absl::StatusOr<BridgeTopicConfig> rule = ParseTopic(element);
    if (!rule.ok()) return rule.status();
    out.push_back(std::move(*rule));
  }
  return absl::OkStatus();
}

absl::Status SetProtocol(const toml::node& node, uint8_t& out) {
  if (const toml::value<std::string>* text = node.as_string()) {  // Mosquitto's names
    if (text->get() == "mqttv311") {
      out = 4;
      return absl::OkStatus();
    }
    if (text->get() == "mqttv50") {
      out = 5;
      return absl::OkStatus();
    }
  } else if (const std::optional<int64_t> value = IntegerIn(node, 4, 5)) {
    out = static_cast<uint8_t>(*value);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("expected 4, 5, \"mqttv311\" or \"mqttv50\"");
}

absl::Status SetStartType(const toml::node& node, BridgeStartType& out) {
  if (const toml::value<std::string>* text = node.as_string()) {  // Mosquitto's names
    if (text->get() == "automatic") {
      out = BridgeStartType::kAutomatic;
      return absl::OkStatus();
    }
    if (text->get() == "lazy") {
      out = BridgeStartType::kLazy;
      return absl::OkStatus();
    }
    if (text->get() == "once") {
      out = BridgeStartType::kOnce;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError("expected \"automatic\", \"lazy\" or \"once\"");
}

std::string_view StartTypeName(BridgeStartType type) {
  switch (type) {
    case BridgeStartType::kAutomatic:
      return "automatic";
    case BridgeStartType::kLazy:
      return "lazy";
    case BridgeStartType::kOnce:
      return "once";
  }
  return "automatic";
}

absl::Status ApplyBridgeKey(std::string_view key, const toml::node& node, BridgeConfig& bridge) {
  if (key == "name") return SetString(node, bridge.name);
  if (key == "addresses" || key == "address") return SetAddresses(node, bridge.addresses);
  if (key == "topics") return SetTopics(node, bridge.topics);
  if (key == "round_robin") return SetBool(node, bridge.round_robin);
  if (key == "protocol_version") return SetProtocol(node, bridge.protocol_version);
  if (key == "clean_session") return SetBool(node, bridge.clean_session);
  if (key == "keepalive") return SetInteger(node, 0, 65'535, bridge.keepalive_s);
  if (key == "client_id") return SetString(node, bridge.client_id);
  if (key == "username") return SetOptional(node, bridge.username);
  if (key == "password") return SetOptional(node, bridge.password);
  if (key == "try_private") return SetBool(node, bridge.try_private);
  if (key == "cafile") return SetString(node, bridge.cafile);
  if (key == "certfile") return SetString(node, bridge.certfile);
  if (key == "keyfile") return SetString(node, bridge.keyfile);
  if (key == "insecure") return SetBool(node, bridge.insecure);
  if (key == "local_client_id") return SetString(node, bridge.local_client_id);
  if (key == "local_username") return SetOptional(node, bridge.local_username);
  if (key == "local_password") return SetOptional(node, bridge.local_password);
  if (key == "restart_initial_ms") {
    return SetInteger(node, 1, 3'600'000, bridge.restart_initial_ms);
  }
  if (key == "restart_max_ms") return SetInteger(node, 1, 3'600'000, bridge.restart_max_ms);
  if (key == "max_inflight") return SetInteger(node, 1, 65'535, bridge.max_inflight);
  if (key == "max_queued_messages") {
    return SetInteger(node, 1, 10'000'000, bridge.max_queued_messages);
  }
  if (key == "max_queued_bytes") {
    return SetInteger(node, 1, int64_t{1} << 40, bridge.max_queued_bytes);
  }
  if (key == "max_packet_size") {
    return SetInteger(node, 0, 268'435'455, bridge.max_packet_size);
  }
  if (key == "notifications") return SetBool(node, bridge.notifications);
  if (key == "notifications_local_only") return SetBool(node, bridge.notifications_local_only);
  if (key == "notification_topic") return SetString(node, bridge.notification_topic);
  if (key == "start_type") return SetStartType(node, bridge.start_type);
  if (key == "threshold") return SetInteger(node, 1, 10'000'000, bridge.threshold);
  if (key == "idle_timeout") return SetInteger(node, 1, 86'400, bridge.idle_timeout_s);
  return absl::NotFoundError("unknown key");
}

}  // namespace

absl::StatusOr<BridgeTopicConfig> ParseMosquittoTopic(std::string_view text) {
  std::vector<std::string> fields;
  size_t at = 0;
  // Fields are separated by blanks; "" is an empty field (mosquitto.conf(5)).
  while (at < text.size() && fields.size() <= 5) {
    if (text[at] == ' ' || text[at] == '\t') {
      ++at;
      continue;
    }
    const size_t end = std::min(text.find_first_of(" \t", at), text.size());
    std::string field(text.substr(at, end - at));
    if (field == "\"\"") field.clear();
    fields.push_back(std::move(field));
    at = end;
  }
  if (fields.empty() || fields.size() > 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        "topics: \"", Sv(text),
        "\": expected \"pattern [in|out|both [qos [local-prefix [remote-prefix]]]]\""));
  }
  BridgeTopicConfig rule;
  rule.pattern = fields[0];
  if (fields.size() > 1) {
    const std::optional<BridgeDirection> direction = ParseDirection(fields[1]);
    if (!direction) {
      return absl::InvalidArgumentError(
          absl::StrCat("topics: \"", Sv(text), "\": the direction is in, out or both"));
    }
    rule.direction = *direction;
  }
  if (fields.size() > 2) {
    if (fields[2] != "0" && fields[2] != "1" && fields[2] != "2") {
      return absl::InvalidArgumentError(
          absl::StrCat("topics: \"", Sv(text), "\": the QoS is 0, 1 or 2"));
    }
    rule.qos = static_cast<uint8_t>(fields[2][0] - '0');
  }
  if (fields.size() > 3) rule.local_prefix = fields[3];
  if (fields.size() > 4) rule.remote_prefix = fields[4];
  return rule;
}

absl::Status ApplyBridges(const toml::node& node, uint32_t line, std::string_view source_name,
                          Config& config) {
  const toml::array* array = node.as_array();
  if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
    return Error(source_name, line, "bridge: expected [[bridge]] tables (a TOML array of tables)");
  }
  std::vector<BridgeConfig> bridges;
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::table& table = *array->get(i)->as_table();
    const uint32_t table_line = LineOf(table);
    if (i == kMaxBridges) {
      return Error(source_name, table_line, absl::StrCat("at most ", kMaxBridges, " bridges"));
    }
    BridgeConfig bridge;
    for (const auto& [key, value] : table) {
      const absl::Status applied = ApplyBridgeKey(key.str(), value, bridge);
      if (absl::IsNotFound(applied)) {
        return Error(source_name, LineOf(value),
                     absl::StrCat("unknown key \"", Sv(key.str()), "\" in [[bridge]]"));
      }
      if (!applied.ok()) {
        return Error(source_name, LineOf(value),
                     absl::StrCat("bridge.", Sv(key.str()), ": ", applied.message()));
      }
    }
    if (absl::Status valid = bridge::ValidateBridgeConfig(bridge); !valid.ok()) {
      return Error(source_name, table_line, std::string(valid.message()));
    }
    for (const BridgeConfig& other : bridges) {
      if (other.name == bridge.name) {
        return Error(source_name, table_line,
                     absl::StrCat("[[bridge]] ", bridge.name, ": the name is used twice"));
      }
    }
    bridges.push_back(std::move(bridge));
  }
  config.bridges = std::move(bridges);
  return absl::OkStatus();
}

std::string BridgesToml(const Config& config) {
  std::string text;
  for (const BridgeConfig& bridge : config.bridges) {
    std::vector<std::string> addresses;
    for (const std::string& address : bridge.addresses) addresses.push_back(Quoted(address));
    std::vector<std::string> topics;
    for (const BridgeTopicConfig& rule : bridge.topics) {
      topics.push_back(absl::StrCat("  {pattern = ", Quoted(rule.pattern), ", direction = \"",
                                    Sv(DirectionName(rule.direction)), "\", qos = ", rule.qos,
                                    ", local_prefix = ", Quoted(rule.local_prefix),
                                    ", remote_prefix = ", Quoted(rule.remote_prefix), "}"));
    }
    absl::StrAppend(
        &text, "\n[[bridge]]\nname = ", Quoted(bridge.name), "\naddresses = [",
        absl::StrJoin(addresses, ", "), "]\nround_robin = ", bridge.round_robin ? "true" : "false",
        "\ntopics = [\n", absl::StrJoin(topics, ",\n"),
        "\n]\nprotocol_version = ", bridge.protocol_version,
        "\nclean_session = ", bridge.clean_session ? "true" : "false",
        "\nkeepalive = ", bridge.keepalive_s, "\nclient_id = ", Quoted(bridge.client_id), "\n");
    // Secrets are not printed: --check-config output lands in logs.
    if (bridge.username) absl::StrAppend(&text, "username = ", Quoted(*bridge.username), "\n");
    if (bridge.password) text += "password = \"REDACTED\"\n";
    if (!bridge.cafile.empty()) {
      absl::StrAppend(&text, "cafile = ", Quoted(bridge.cafile),
                      "\ncertfile = ", Quoted(bridge.certfile),
                      "\nkeyfile = ", Quoted(bridge.keyfile),
                      "\ninsecure = ", bridge.insecure ? "true" : "false", "\n");
    }
    absl::StrAppend(&text, "try_private = ", bridge.try_private ? "true" : "false",
                    "\nlocal_client_id = ", Quoted(bridge.local_client_id), "\n");
    if (bridge.local_username) {
      absl::StrAppend(&text, "local_username = ", Quoted(*bridge.local_username), "\n");
    }
    if (bridge.local_password) text += "local_password = \"REDACTED\"\n";
    absl::StrAppend(&text, "restart_initial_ms = ", bridge.restart_initial_ms,
                    "\nrestart_max_ms = ", bridge.restart_max_ms,
                    "\nmax_inflight = ", bridge.max_inflight,
                    "\nmax_queued_messages = ", bridge.max_queued_messages,
                    "\nmax_queued_bytes = ", bridge.max_queued_bytes,
                    "\nmax_packet_size = ", bridge.max_packet_size, "\n");
    absl::StrAppend(&text, "notifications = ", bridge.notifications ? "true" : "false",
                    "\nnotifications_local_only = ",
                    bridge.notifications_local_only ? "true" : "false",
                    "\nnotification_topic = ", Quoted(bridge.notification_topic),
                    "\nstart_type = \"", Sv(StartTypeName(bridge.start_type)),
                    "\"\nthreshold = ", bridge.threshold, "\nidle_timeout = ", bridge.idle_timeout_s,
                    "\n");
  }
  return text;
}

}  // namespace ringmq::config
