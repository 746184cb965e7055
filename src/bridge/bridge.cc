#include "bridge/bridge.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/absl_view.h"
#include "common/assert.h"
#include "common/log.h"
#include "mqtt/topic.h"
#include "mqtt/violation.h"

namespace ringmq::bridge {

bool TopicMatches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;  // MQTT-4.7.2-1
  }
  size_t f = 0;
  size_t t = 0;
  // One level per iteration: at most as many iterations as the filter has levels.
  while (true) {
    const size_t f_end = std::min(filter.find('/', f), filter.size());
    const std::string_view level = filter.substr(f, f_end - f);
    if (level == "#") return true;       // the rest, and the parent level (MQTT-4.7.1-2)
    if (t > topic.size()) return false;  // the topic has no level left
    const size_t t_end = std::min(topic.find('/', t), topic.size());
    if (level != "+" && level != topic.substr(t, t_end - t)) return false;
    const bool filter_done = f_end == filter.size();
    const bool topic_done = t_end == topic.size();
    if (filter_done || topic_done) {
      if (filter_done && topic_done) return true;
      // "a/#" matches "a": the filter's next (last) level is '#'.
      return topic_done && filter.substr(f_end) == "/#";
    }
    f = f_end + 1;
    t = t_end + 1;
  }
}

bool MapTopic(std::string_view pattern, std::string_view from_prefix, std::string_view to_prefix,
              std::string_view topic, std::string& out) {
  if (!topic.starts_with(from_prefix)) return false;
  const std::string_view rest = topic.substr(from_prefix.size());
  if (pattern.empty()) {
    if (!rest.empty()) return false;  // the pattern "" names the prefix alone
  } else if (!TopicMatches(pattern, rest)) {
    return false;
  }
  out.assign(to_prefix).append(rest);
  return !out.empty() && out.size() <= 65'535;
}

namespace {

absl::Status BridgeError(const BridgeConfig& config, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("[[bridge]] ", config.name.empty() ? "(no name)" : config.name, ": ", Sv(what)));
}

bool HasWildcard(std::string_view text) {
  return text.find_first_of("+#") != std::string_view::npos;
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  HostPort result;
  std::string_view host = text;
  std::string_view port;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("\"", Sv(text), "\": missing ']'"));
    }
    host = text.substr(1, close - 1);
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return absl::InvalidArgumentError(absl::StrCat("\"", Sv(text), "\": expected ':port'"));
      }
      port = after.substr(1);
    }
  } else if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", Sv(text), "\": an IPv6 address needs brackets ([::1]:1883)"));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", Sv(text), "\": no host"));
  }
  if (!port.empty() || text.ends_with(':')) {
    uint32_t value = 0;
    for (const char c : port) {
      if (c < '0' || c > '9' || value > 65'535) {
        value = 0;
        break;
      }
      value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value == 0 || value > 65'535) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", Sv(text), "\": the port must be 1 to 65535"));
    }
    result.port = static_cast<uint16_t>(value);
  }
  result.host = std::string(host);
  return result;
}

absl::Status ValidateBridgeConfig(const BridgeConfig& config) {
  if (config.name.empty()) return BridgeError(config, "name is required");
  for (const char c : config.name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return BridgeError(config, "name: letters, digits, '-', '_' and '.' only");
  }
  if (config.addresses.empty()) return BridgeError(config, "addresses: at least one host:port");
  for (const std::string& address : config.addresses) {
    const absl::StatusOr<HostPort> parsed = ParseHostPort(address);
    if (!parsed.ok()) {
      return BridgeError(config, absl::StrCat("addresses: ", parsed.status().message()));
    }
  }
  if (config.topics.empty()) return BridgeError(config, "topics: at least one topic rule");
  if (config.protocol_version != 4 && config.protocol_version != 5) {
    return BridgeError(config, "protocol_version: 4 (MQTT 3.1.1) or 5 (MQTT 5.0)");
  }
  for (size_t i = 0; i < config.topics.size(); ++i) {
    const BridgeTopicConfig& rule = config.topics[i];
    const std::string label = absl::StrCat("topics[", i, "]");
    if (rule.qos > 2) return BridgeError(config, absl::StrCat(label, ".qos: 0, 1 or 2"));
    if (HasWildcard(rule.local_prefix) || HasWildcard(rule.remote_prefix)) {
      return BridgeError(config, absl::StrCat(label, ": prefixes may not contain '+' or '#'"));
    }
    if (rule.pattern.empty() && (rule.local_prefix.empty() || rule.remote_prefix.empty())) {
      return BridgeError(config, absl::StrCat(label,
                                              ": an empty pattern needs both prefixes (the "
                                              "topics it maps are the prefixes themselves)"));
    }
    for (const std::string_view prefix : {rule.local_prefix, rule.remote_prefix}) {
      const std::string filter = absl::StrCat(Sv(prefix), rule.pattern);
      if (mqtt::ValidateTopicFilter(filter) != mqtt::Violation::kNone) {
        return BridgeError(config,
                           absl::StrCat(label, ": \"", filter, "\" is not a valid topic filter"));
      }
      if (mqtt::IsSharedFilter(filter)) {
        return BridgeError(config, absl::StrCat(label, ": no shared subscriptions"));
      }
    }
  }
  if (config.max_inflight == 0 || config.max_inflight > ClientOptions::kMaxInflight) {
    return BridgeError(config, "max_inflight: 1 to 65535");
  }
  if (config.max_queued_messages == 0 || config.max_queued_bytes == 0) {
    return BridgeError(config, "max_queued_messages and max_queued_bytes: at least 1");
  }
  if (config.restart_initial_ms == 0 || config.restart_max_ms < config.restart_initial_ms) {
    return BridgeError(config, "restart: 0 < restart_initial_ms <= restart_max_ms");
  }
  if (config.certfile.empty() != config.keyfile.empty()) {
    return BridgeError(config, "certfile and keyfile go together (a client certificate)");
  }
  if (config.cafile.empty() && (!config.certfile.empty() || config.insecure)) {
    return BridgeError(config, "certfile, keyfile and insecure need cafile (TLS is on with it)");
  }
  if (config.max_packet_size != 0 && config.max_packet_size < 64) {
    return BridgeError(config, "max_packet_size: 0 (the broker's) or at least 64");
  }
  if (!config.notification_topic.empty() &&
      mqtt::ValidateTopicName(config.notification_topic) != mqtt::Violation::kNone) {
    return BridgeError(config, "notification_topic: a valid topic name (no wildcards)");
  }
  if (config.start_type == BridgeStartType::kLazy &&
      config.threshold > config.max_queued_messages) {
    // Otherwise the queue's bound drops messages before the bridge ever starts.
    return BridgeError(config, "threshold: at most max_queued_messages (start_type lazy)");
  }
  return absl::OkStatus();
}

std::string BridgeRemoteClientId(const BridgeConfig& config, std::string_view host_name) {
  return !config.client_id.empty() ? config.client_id
                                   : absl::StrCat(config.name, ".", Sv(host_name));
}

std::string BridgeLocalClientId(const BridgeConfig& config, std::string_view host_name) {
  return !config.local_client_id.empty()
             ? config.local_client_id
             : absl::StrCat("local.", BridgeRemoteClientId(config, host_name));
}

Bridge::Bridge(const BridgeConfig& config) : config_(config) {}

absl::StatusOr<std::unique_ptr<Bridge>> Bridge::Create(const BridgeConfig& config,
                                                       const Environment& environment) {
  if (absl::Status valid = ValidateBridgeConfig(config); !valid.ok()) return valid;
  std::unique_ptr<Bridge> bridge(new Bridge(config));
  const uint32_t max_packet_size =
      config.max_packet_size != 0 ? config.max_packet_size : environment.max_packet_size;

  ClientOptions remote;
  remote.client_id = BridgeRemoteClientId(config, environment.host_name);
  remote.username = config.username;
  remote.password = config.password;
  remote.clean_session = config.clean_session;
  remote.keepalive_s = config.keepalive_s;
  remote.level =
      config.protocol_version == 5 ? mqtt::ProtocolLevel::kMqtt5 : mqtt::ProtocolLevel::kMqtt311;
  remote.try_private = config.try_private && config.protocol_version == 4;
  remote.max_inflight = config.max_inflight;
  remote.max_queued_messages = config.max_queued_messages;
  remote.max_queued_bytes = config.max_queued_bytes;
  remote.max_packet_size = max_packet_size;
  remote.connect_timeout_ms = environment.connect_timeout_ms;
  remote.restart_initial_ms = config.restart_initial_ms;
  remote.restart_max_ms = config.restart_max_ms;
  remote.random_seed = environment.random_seed;
  remote.reconnect = config.start_type != BridgeStartType::kOnce;
  if (config.notifications) {
    // mosquitto.conf(5) `notifications`: $SYS/broker/connection/<remote client id>/state.
    bridge->notification_topic_ = !config.notification_topic.empty()
                                      ? config.notification_topic
                                      : absl::StrCat("$SYS/broker/connection/", remote.client_id,
                                                     "/state");
    bridge->local_state_due_ = true;  // "0" at start: a retained "1" of a past run is stale
    if (!config.notifications_local_only) {
      remote.will_topic = bridge->notification_topic_;
      remote.will_payload = "0";
    }
  }

  ClientOptions local;
  local.client_id = BridgeLocalClientId(config, environment.host_name);
  local.username = config.local_username;
  local.password = config.local_password;
  local.clean_session = !environment.durable;
  local.level = mqtt::ProtocolLevel::kMqtt5;
  local.max_inflight = config.max_inflight;
  local.max_queued_messages = config.max_queued_messages;
  local.max_queued_bytes = config.max_queued_bytes;
  local.max_packet_size = environment.max_packet_size;
  local.connect_timeout_ms = environment.connect_timeout_ms;
  // The local broker is this process: a lost local session is a restart of it or a refusal.
  local.restart_initial_ms = 1'000;
  local.restart_max_ms = 10'000;
  local.random_seed = environment.random_seed ^ 0x9E3779B97F4A7C15ull;

  if (environment.durable) {
    // What waits for the remote stays with this broker's session (and its log) until the remote
    // acknowledged it; the broker keeps at most one queue's worth in flight to the bridge, so
    // the remote client's queue is not overrun by QoS 1/2 (5.0:MQTT-3.3.4-9).
    const auto window = static_cast<uint16_t>(std::min<uint32_t>(config.max_queued_messages, 65'535));
    for (ClientOptions* options : {&remote, &local}) {
      options->defer_acks = true;
      options->receive_maximum = window;
    }
    remote.relay_qos2 = true;  // out at QoS 2: exactly once across a restart
    local.hold_pubcomp = true;
    local.retain_handling = 1;  // the resumed session keeps its subscriptions: no retained again
  }
  for (const BridgeTopicConfig& rule : config.topics) {
    const auto qos = static_cast<mqtt::QoS>(rule.qos);
    if (rule.direction != BridgeDirection::kOut) {
      remote.subscriptions.push_back({.filter = absl::StrCat(rule.remote_prefix, rule.pattern),
                                      .qos = qos,
                                      .no_local = true,
                                      .retain_as_published = true});
    }
    if (rule.direction != BridgeDirection::kIn) {
      local.subscriptions.push_back({.filter = absl::StrCat(rule.local_prefix, rule.pattern),
                                     .qos = qos,
                                     .no_local = true,
                                     .retain_as_published = true});
    }
  }
  absl::StatusOr<BridgeClient> remote_client =
      BridgeClient::Create(std::move(remote), &bridge->remote_side_);
  if (!remote_client.ok())
    return BridgeError(config, std::string(remote_client.status().message()));
  absl::StatusOr<BridgeClient> local_client =
      BridgeClient::Create(std::move(local), &bridge->local_side_);
  if (!local_client.ok()) return BridgeError(config, std::string(local_client.status().message()));
  bridge->remote_ = std::make_unique<BridgeClient>(std::move(*remote_client));
  bridge->local_ = std::make_unique<BridgeClient>(std::move(*local_client));
  return bridge;
}

void Bridge::Forward(const mqtt::Publish& publish, bool from_remote) {
  BridgeClient& from = from_remote ? *remote_ : *local_;
  const Origin origin = from.inbound_origin();
  const BridgeDirection skip = from_remote ? BridgeDirection::kOut : BridgeDirection::kIn;
  for (const BridgeTopicConfig& rule : config_.topics) {
    if (rule.direction == skip) continue;
    const bool mapped =
        from_remote
            ? MapTopic(rule.pattern, rule.remote_prefix, rule.local_prefix, publish.topic, topic_)
            : MapTopic(rule.pattern, rule.local_prefix, rule.remote_prefix, publish.topic, topic_);
    if (!mapped) continue;
    // The subscription delivered it at min(published, rule) QoS already; overlapping rules of
    // one direction give one copy (the first rule's mapping), as one subscription would.
    BridgeClient& to = from_remote ? *local_ : *remote_;
    const bool queued = to.Publish(topic_, publish.payload, publish.qos, publish.retain, origin);
    if (!queued) from.Release(origin);  // dropped, counted: nothing will acknowledge it
    if (from_remote) {
      ++(queued ? stats_.messages_in : stats_.dropped_in);
    } else {
      ++(queued ? stats_.messages_out : stats_.dropped_out);
    }
    return;
  }
  ++stats_.unmatched;
  from.Release(origin);
}

void Bridge::Side::OnConnected(bool session_present) {
  RINGMQ_LOG_DEBUG("bridge %s: %s connection open (session present: %d)",
                   bridge_->config_.name.c_str(), remote_ ? "remote" : "local",
                   session_present ? 1 : 0);
  if (!remote_) {
    // A new local session: this broker forgot the ids, so no PUBREL will come for what the
    // remote PUBREC'd; the remote is owed it (5.0:MQTT-4.3.3-4).
    if (!session_present && bridge_->remote_->options().relay_qos2) {
      bridge_->remote_->ReleaseAllAccepted();
    }
    return;
  }
  bridge_->last_error_.clear();
  if (bridge_->notification_topic_.empty()) return;
  if (!bridge_->config_.notifications_local_only) {
    // The will says "0" if this connection is lost; this says "1" (mosquitto.conf(5)).
    bridge_->remote_->PublishFirst(bridge_->notification_topic_, "1", mqtt::QoS::k1,
                                   /*retain=*/true);
    ++bridge_->stats_.notifications;
  }
}

bool Bridge::TakeLocalState(bool& connected) {
  if (notification_topic_.empty()) return false;
  const bool open = remote_->state() == ClientState::kOpen;
  if (!local_state_due_ && open == local_state_) return false;
  local_state_due_ = false;
  local_state_ = open;
  connected = open;
  ++stats_.notifications;
  return true;
}

bool Bridge::RemoteWanted() const {
  if (config_.start_type != BridgeStartType::kLazy) return true;
  return remote_->queued_messages() + remote_->inflight() >= config_.threshold;
}

bool Bridge::RemoteIdle() const {
  return remote_->state() == ClientState::kOpen && remote_->queued_messages() == 0 &&
         remote_->inflight() == 0 && local_->deferred() == 0 && remote_->deferred() == 0;
}

void Bridge::Side::OnMessage(const mqtt::Publish& publish) { bridge_->Forward(publish, remote_); }

void Bridge::Side::OnDelivered(const Origin& origin) {
  // The other side's client took the message this side's copy came from.
  if (remote_ && origin.qos == mqtt::QoS::k2 && bridge_->remote_->options().relay_qos2) {
    bridge_->local_->Complete(origin);  // its PUBREC went on the remote's PUBREC (OnAccepted)
    return;
  }
  (remote_ ? bridge_->local_ : bridge_->remote_)->Release(origin);
}

void Bridge::Side::OnAccepted(const Origin& origin) {
  RINGMQ_ASSERT(remote_);
  bridge_->local_->Release(origin);  // PUBREC: this broker logs it, then sends PUBREL
}

void Bridge::Side::OnReleased(const Origin& origin) {
  RINGMQ_ASSERT(!remote_);
  bridge_->remote_->ReleaseOutbound(origin);
}

void Bridge::Side::OnDisconnected(std::string_view reason) {
  if (remote_) {
    bridge_->last_error_.assign(reason);
  }
  RINGMQ_LOG_DEBUG("bridge %s: %s connection ended: %.*s", bridge_->config_.name.c_str(),
                   remote_ ? "remote" : "local", static_cast<int>(reason.size()), reason.data());
}

}  // namespace ringmq::bridge
