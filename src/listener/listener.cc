#include "listener/listener.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config/options.h"
#include "proxy/layer.h"
#include "tls/tls_layer.h"
#include "websocket/websocket.h"

namespace ringmq::listener {

std::vector<ListenerConfig> EffectiveListeners(const Config& config) {
  std::vector<ListenerConfig> listeners;
  listeners.reserve(config.listeners.size() + 1);
  if (config.port != 0) {
    ListenerConfig plain;
    plain.bind = config.bind;
    plain.port = config.port;
    listeners.push_back(std::move(plain));
  }
  listeners.insert(listeners.end(), config.listeners.begin(), config.listeners.end());
  return listeners;
}

std::string ListenerName(const ListenerConfig& listener) { return config::ListenerName(listener); }

std::string Describe(const ListenerConfig& listener) {
  std::string text =
      absl::StrCat(ListenerName(listener), ": ", listener.bind, " port ", listener.port, ", ",
                   std::string(config::ToString(listener.protocol)));
  if (listener.protocol == ListenerProtocol::kWebSockets) {
    absl::StrAppend(&text, " (path ", listener.path, ")");
  }
  if (listener.tls()) {
    absl::StrAppend(&text, ", TLS");
    if (listener.require_certificate) absl::StrAppend(&text, " (client certificates required)");
  }
  if (listener.proxy_protocol != ProxyProtocol::kOff) {
    absl::StrAppend(&text, ", PROXY ", std::string(config::ToString(listener.proxy_protocol)));
  }
  if (listener.max_connections != 0) {
    absl::StrAppend(&text, ", max_connections ", listener.max_connections);
  }
  if (listener.allow_anonymous.has_value()) {
    absl::StrAppend(&text, ", allow_anonymous ", *listener.allow_anonymous ? "true" : "false");
  }
  return text;
}

std::unique_ptr<net::Transport> StackFactory::Make() const {
  std::vector<std::unique_ptr<net::TransportLayer>> layers;
  layers.reserve(makers_.size());
  for (const LayerMaker& make : makers_) layers.push_back(make());
  return std::make_unique<net::Transport>(std::move(layers));
}

absl::Status StackFactory::Reload() {
  absl::Status first_error = absl::OkStatus();
  for (const LayerReloader& reload : reloaders_) {
    absl::Status status = reload();
    if (!status.ok() && first_error.ok()) first_error = std::move(status);
  }
  return first_error;
}

absl::StatusOr<std::unique_ptr<net::TransportFactory>> MakeTransportFactory(
    const ListenerConfig& listener, uint32_t max_packet_size) {
  std::vector<LayerMaker> makers;
  std::vector<LayerReloader> reloaders;
  const std::string name = ListenerName(listener);
  if (const ProxyProtocol accept = listener.proxy_protocol; accept != ProxyProtocol::kOff) {
    makers.push_back([accept] { return std::make_unique<proxy::ProxyLayer>(accept); });
  }
  if (listener.tls()) {
    absl::StatusOr<std::shared_ptr<tls::LayerFactory>> tls = tls::LayerFactory::Create(listener);
    if (!tls.ok()) return tls.status();
    makers.push_back([tls = *tls] { return tls->Make(); });
    reloaders.push_back([tls = *tls] { return tls->Reload(); });
  }
  if (listener.protocol == ListenerProtocol::kWebSockets) {
    if (listener.path.empty() || listener.path.front() != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("listener ", name, ": path must start with '/', got '", listener.path, "'"));
    }
    // Immutable and shared by every connection of the listener, on every shard.
    auto options = std::make_shared<const websocket::Options>(
        websocket::Options::ForListener(listener, max_packet_size));
    makers.push_back([options] { return std::make_unique<websocket::WebSocketLayer>(options); });
  }
  if (makers.empty()) return nullptr;
  return std::make_unique<StackFactory>(std::move(makers), std::move(reloaders));
}

}  // namespace ringmq::listener
