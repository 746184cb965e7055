#include "net/transport.h"

#include <utility>

#include "common/assert.h"

namespace ringmq::net {

Transport::Transport(std::vector<std::unique_ptr<TransportLayer>> layers)
    : layers_(std::move(layers)), up_(layers_.size()), down_(layers_.size()) {
  RINGMQ_ASSERT(!layers_.empty());
}

TransportLayer::Result Transport::Receive(std::span<const uint8_t> bytes, ByteBuffer& app,
                                          metrics::ShardCounters& counters) {
  std::span<const uint8_t> in = bytes;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const bool top = i + 1 == layers_.size();
    ByteBuffer& up = top ? app : up_[i];
    if (!top) up.clear();
    ByteBuffer& down = down_[i];
    down.clear();
    const TransportLayer::Result result = layers_[i]->Receive(in, up, down, peer_, counters);
    if (!down.empty()) SendFrom(i, down);
    if (result == TransportLayer::Result::kClose) {
      closed_by_ = i;
      return result;
    }
    if (top) break;
    if (up.empty()) break;  // nothing passed up (yet): the layers above have nothing to do
    in = up;
  }
  if (!open_) {
    bool all_open = true;
    for (const auto& layer : layers_) all_open = all_open && layer->open();
    open_ = all_open;
  }
  return TransportLayer::Result::kOk;
}

void Transport::Send(std::span<const uint8_t> app) {
  RINGMQ_ASSERT(open_);
  if (app.empty()) return;
  SendFrom(layers_.size(), app);
}

void Transport::SendFrom(size_t index, std::span<const uint8_t> bytes) {
  std::span<const uint8_t> in = bytes;
  // Layer `index` produced `bytes`; layers index-1 .. 0 encode them in turn. The scratch of a
  // boundary is reused: down_[i] may be the input here (a layer's own bytes), so each step
  // writes into the boundary below the one it reads.
  for (size_t i = index; i-- > 0;) {
    if (i == 0) {
      layers_[0]->Send(in, wire_);
      return;
    }
    ByteBuffer& out = up_[i - 1];  // free during a send: Receive has consumed it
    out.clear();
    layers_[i]->Send(in, out);
    in = out;
  }
  wire_.insert(wire_.end(), in.begin(), in.end());  // index 0: the bottom layer's own bytes
}

void Transport::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Top first: a WebSocket close frame goes out inside TLS before TLS's close_notify. A layer
  // whose lower layers are not all open has never carried anything: it has nobody to say
  // goodbye to.
  size_t open_below = 0;
  while (open_below < layers_.size() && layers_[open_below]->open()) ++open_below;
  for (size_t i = layers_.size(); i-- > 0;) {
    if (i > open_below) continue;
    ByteBuffer& down = down_[i];
    down.clear();
    layers_[i]->Shutdown(down);
    if (!down.empty()) SendFrom(i, down);
  }
}

std::string_view Transport::close_reason() const {
  return closed_by_ < layers_.size() ? layers_[closed_by_]->close_reason() : std::string_view();
}

void Transport::CountTimeout(metrics::ShardCounters& counters) {
  for (const auto& layer : layers_) {
    if (!layer->open()) return layer->CountTimeout(counters);
  }
}

size_t Transport::memory_bytes() const {
  size_t bytes = wire_.capacity();
  for (const ByteBuffer& buffer : up_) bytes += buffer.capacity();
  for (const ByteBuffer& buffer : down_) bytes += buffer.capacity();
  for (const auto& layer : layers_) bytes += layer->memory_bytes();
  return bytes;
}

}  // namespace ringmq::net
