#include "listener/listener.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config/options.h"

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

std::unique_ptr<net::Transport> StackFactory::Make() const {
  std::vector<std::unique_ptr<net::TransportLayer>> layers;
  layers.reserve(makers_.size());
  for (const LayerMaker& make : makers_) layers.push_back(make());
  return std::make_unique<net::Transport>(std::move(layers));
}

absl::StatusOr<std::unique_ptr<net::TransportFactory>> MakeTransportFactory(
    const ListenerConfig& listener) {
  std::vector<LayerMaker> makers;
  const std::string name = ListenerName(listener);
  if (listener.proxy_protocol != ProxyProtocol::kOff) {
    return absl::UnimplementedError(
        absl::StrCat("listener ", name, ": proxy_protocol is not built yet"));
  }
  if (listener.tls()) {
    return absl::UnimplementedError(absl::StrCat("listener ", name, ": TLS is not built yet"));
  }
  if (listener.protocol == ListenerProtocol::kWebSockets) {
    return absl::UnimplementedError(
        absl::StrCat("listener ", name, ": websockets is not built yet"));
  }
  if (makers.empty()) return nullptr;
  return std::make_unique<StackFactory>(std::move(makers));
}

}  // namespace ringmq::listener
