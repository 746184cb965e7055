// Listeners (issue 14): what each `[[listener]]` table of the config makes of its accepted
// connections. A listener's layers, bottom up: the PROXY protocol header (proxy/), TLS (tls/),
// WebSocket framing (websocket/); a plain MQTT listener without PROXY has none, and its
// connections pay nothing for the others.
//
// Thread safety: a factory is built on the main thread before the shards start; Make() is then
// called by every shard concurrently and must be thread-safe (each layer factory says how).
#ifndef RINGMQ_LISTENER_LISTENER_H_
#define RINGMQ_LISTENER_LISTENER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "net/transport.h"
#include "ringmq/config.h"

namespace ringmq::listener {

// The listeners the broker opens: the default listener (Config::bind, Config::port, plain MQTT)
// unless Config::port is 0, followed by Config::listeners. Index i is the listener index
// connections carry (net::Connection::listener()): with the default listener, 0 is it and
// i + 1 is Config::listeners[i]; without it, i is Config::listeners[i].
std::vector<ListenerConfig> EffectiveListeners(const Config& config);

// The listener's display name and metric label (config::ListenerName): its `name` key, or
// "<scheme>:<port>" ("mqtt:1883", "mqtts:8883", "ws:8080", "wss:8081").
std::string ListenerName(const ListenerConfig& listener);

// One line that says what the listener is, as the start-up log and --check-config show it:
// "mqtts:8883: 0.0.0.0 port 8883, mqtt, TLS (client certificates required), PROXY v2,
// max_connections 1000, allow_anonymous false". Settings at their defaults are left out.
std::string Describe(const ListenerConfig& listener);

// Makes one layer of a connection's stack; thread-safe.
using LayerMaker = std::function<std::unique_ptr<net::TransportLayer>()>;

// Re-reads one layer's files (TransportFactory::Reload); thread-safe.
using LayerReloader = std::function<absl::Status()>;

// A TransportFactory that stacks the layers its makers make, bottom first.
class StackFactory final : public net::TransportFactory {
 public:
  explicit StackFactory(std::vector<LayerMaker> makers, std::vector<LayerReloader> reloaders = {})
      : makers_(std::move(makers)), reloaders_(std::move(reloaders)) {}
  std::unique_ptr<net::Transport> Make() const override;
  // Every reloader; the first error is returned after all have run.
  absl::Status Reload() override;

 private:
  std::vector<LayerMaker> makers_;
  std::vector<LayerReloader> reloaders_;
};

// The factory for `listener`'s connections: null when it has no layers (plain TCP). Errors:
// unreadable or mismatched certificate and key files, a bad cipher list, and the like, each
// naming the listener and the key to change. `max_packet_size` (Config::max_packet_size) sets
// a WebSocket listener's frame and message bounds (websocket::Options::ForListener).
absl::StatusOr<std::unique_ptr<net::TransportFactory>> MakeTransportFactory(
    const ListenerConfig& listener, uint32_t max_packet_size);

}  // namespace ringmq::listener

#endif  // RINGMQ_LISTENER_LISTENER_H_
