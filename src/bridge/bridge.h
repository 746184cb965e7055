// Bridge: one Mosquitto-style MQTT bridge (docs/bridges.md) between this broker and a remote
// one, without I/O. It is two BridgeClients (bridge_client.h):
//   - remote: the connection to the other broker (MQTT 3.1.1 or 5.0), subscribed to the remote
//     filter (remote_prefix + pattern) of every `in` / `both` topic rule;
//   - local: the bridge's session on THIS broker, an MQTT 5.0 client whose transport the shard
//     connects to itself (a socket pair whose other end is served as a client connection), so
//     the bridge subscribes, publishes, is authorized (local_username) and is acknowledged
//     exactly like any client; it subscribes to the local filter (local_prefix + pattern) of
//     every `out` / `both` rule.
// A message the local client receives matching an `out` / `both` rule is published to the
// remote with its topic remapped (local_prefix replaced by remote_prefix) at the QoS the
// subscription delivered it (min(published QoS, rule QoS), MQTT-3.8.4-8), RETAIN as published;
// a message the remote client receives matching an `in` / `both` rule goes the other way.
// Messages wait in each client's bounded queue while its peer is down (dropped beyond it).
//
// Loop prevention: the local subscriptions use No Local (5.0:MQTT-3.8.3-3), so a message this
// bridge brought in is never sent back out over it; the remote subscriptions use No Local
// too at 5.0, and at 3.1.1 the CONNECT says "bridge" (try_private: protocol level 0x84), which
// Mosquitto honours by not sending a bridge its own messages. Retain As Published keeps RETAIN
// on the local side.
//
// Acknowledgements: an inbound QoS 1/2 message is acknowledged to the side it came from once it
// is queued for the other side (or dropped there, counted), so a QoS 1 message is carried at
// least once unless a queue bound drops it. Durable (Environment::durable, persistence on):
// it is acknowledged only once the other side acknowledged its copy (ClientOptions::defer_acks),
// and the local session is persistent, so what waits for the remote stays in this broker's
// persistence log as the local session's queued and in-flight messages, and a restart resends
// it to the bridge (docs/bridges.md, "Across a restart"). Out at QoS 2 it is exactly once
// across a restart: the remote side sends with this broker's packet ids and relays this
// broker's PUBREL to the remote (ClientOptions::relay_qos2, hold_pubcomp): the id's state
// "PUBREC received, PUBREL due" lives in this broker's log as the local session's delivery.
// Out, QoS 2 (L: the id this broker gave the message, also its id on the remote):
//   local PUBLISH L -> remote PUBLISH L -> remote PUBREC L -> local PUBREC L (OnAccepted)
//   -> this broker logs it, then PUBREL L -> remote PUBREL L (OnReleased) -> remote PUBCOMP L
//   -> local PUBCOMP L (OnDelivered, Complete) -> this broker forgets L.
// A crash before the log holds the PUBREC resends PUBLISH L, which the remote still holds
// unreleased (it PUBRECs again, delivers nothing twice); after it, this broker resends PUBREL L
// and the bridge sends PUBREL L, never the PUBLISH (docs/bridges.md argues each step).
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_BRIDGE_BRIDGE_H_
#define RINGMQ_BRIDGE_BRIDGE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/bridge_client.h"
#include "ringmq/config.h"

namespace ringmq::bridge {

// Whether `topic` matches `filter` (§4.7: '+' one level, '#' the rest, including the parent
// level; a topic starting with '$' is not matched by a filter starting with a wildcard,
// MQTT-4.7.2-1). Both are assumed valid. Linear in their lengths.
bool TopicMatches(std::string_view filter, std::string_view topic);

// The topic a message keeps when it crosses `rule`: `from_prefix` + rest becomes `to_prefix` +
// rest, written to `out` (reused). False when the topic is not under from_prefix + pattern.
bool MapTopic(std::string_view pattern, std::string_view from_prefix, std::string_view to_prefix,
              std::string_view topic, std::string& out);

// "host:port", "[v6 address]:port" or "host" (port 1883), as a bridge's `addresses` entry.
struct HostPort {
  std::string host;
  uint16_t port = 1883;
};
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);

// The client ids of a bridge on the remote broker (client_id, or "<name>.<host name>") and of
// its session on this broker (local_client_id, or "local." + the remote one), as Mosquitto.
std::string BridgeRemoteClientId(const BridgeConfig& config, std::string_view host_name);
std::string BridgeLocalClientId(const BridgeConfig& config, std::string_view host_name);

// Checks a bridge's config: name, addresses, at least one topic rule, valid filters (local and
// remote), QoS, protocol version, bounds. The error names the key.
absl::Status ValidateBridgeConfig(const BridgeConfig& config);

struct BridgeStats {
  uint64_t messages_out = 0;  // local -> remote, queued for the remote
  uint64_t messages_in = 0;   // remote -> local, queued for the local session
  uint64_t dropped_out = 0;   // refused by the remote client's queue bound (its stats().dropped
                              // also counts messages too large to send)
  uint64_t dropped_in = 0;    // refused by the local client's queue bound
  uint64_t unmatched = 0;     // received on a side but matching no rule of that direction
  uint64_t notifications = 0;  // state messages published, here and on the remote
};

class Bridge {
 public:
  // The parts of the broker's config a bridge needs beside its table.
  struct Environment {
    std::string host_name;  // for the default client id
    uint32_t max_packet_size = 1 << 20;
    uint32_t connect_timeout_ms = 10'000;  // CONNECT -> CONNACK, both sides
    uint64_t random_seed = 0;
    bool durable = false;  // persistence on: deferred acknowledgements, persistent local session
  };
  // Errors: ValidateBridgeConfig's.
  static absl::StatusOr<std::unique_ptr<Bridge>> Create(const BridgeConfig& config,
                                                        const Environment& environment);
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  BridgeClient& remote() { return *remote_; }
  BridgeClient& local() { return *local_; }
  const BridgeConfig& config() const { return config_; }
  const BridgeStats& stats() const { return stats_; }
  // Set by the shard from its sockets' events: the remote's last disconnect reason.
  const std::string& last_error() const { return last_error_; }

  // Notifications (Mosquitto's `notifications`): the topic of the state messages, and the
  // state ("1" connected, "0" not) this broker should publish there (retained, in its own
  // name: clients cannot publish to $SYS), if it changed since the last call. The first call
  // gives "0" (the state at start).
  const std::string& notification_topic() const { return notification_topic_; }
  bool TakeLocalState(bool& connected);
  // Start type (Mosquitto's start_type): whether the remote connection should be open now.
  // lazy: once threshold messages wait for the remote (queued or unacknowledged); the owner
  // ends an idle one (idle_timeout_s). automatic and once: always (once never retries).
  bool RemoteWanted() const;
  // lazy: an open remote connection with nothing waiting may be ended once idle.
  bool RemoteIdle() const;

 private:
  class Side : public ClientSink {
   public:
    Side(Bridge* bridge, bool remote) : bridge_(bridge), remote_(remote) {}
    void OnConnected(bool session_present) override;
    void OnMessage(const mqtt::Publish& publish) override;
    void OnDisconnected(std::string_view reason) override;
    void OnDelivered(const Origin& origin) override;
    void OnAccepted(const Origin& origin) override;
    void OnReleased(const Origin& origin) override;

   private:
    Bridge* bridge_;
    bool remote_;
  };

  explicit Bridge(const BridgeConfig& config);
  void Forward(const mqtt::Publish& publish, bool from_remote);

  BridgeConfig config_;
  Side remote_side_{this, true};
  Side local_side_{this, false};
  std::unique_ptr<BridgeClient> remote_;
  std::unique_ptr<BridgeClient> local_;
  std::string topic_;  // MapTopic's output, reused
  std::string last_error_;
  std::string notification_topic_;  // empty: notifications off
  bool local_state_ = false;        // last state taken by TakeLocalState
  bool local_state_due_ = false;    // the state at start was not taken yet
  BridgeStats stats_;
};

}  // namespace ringmq::bridge

#endif  // RINGMQ_BRIDGE_BRIDGE_H_
