// The layers between a socket and MQTT: the PROXY protocol header, TLS records, WebSocket
// frames (issue 14). A plain-TCP connection has none and pays one null check per receive and
// per send; a connection accepted on a listener that has layers gets a `Transport` made by
// that listener's `TransportFactory`.
//
// Like net::Connection, a layer is sans-IO: it turns bytes into bytes and never touches the
// socket, so each is unit-testable and fuzzable on byte arrays. The shard's ring still does
// all socket I/O (DESIGN.md: nothing blocks a shard).
//
// Layers are stacked bottom (socket side) to top (MQTT side), e.g. PROXY, TLS, WebSocket.
//   Receive: wire bytes go up through every layer; what the top layer passes up is MQTT.
//   Send: MQTT bytes go down through every layer; what the bottom layer emits is sent.
// A layer may also need to send bytes of its own (a TLS handshake record, a WebSocket pong,
// the HTTP 101 answer, a close frame or alert); those continue down through the layers below
// it. The Transport does that routing; a layer only sees its own neighbours' bytes.
//
// A layer is "open" once it passes application bytes up (after the PROXY header, the TLS
// handshake, the HTTP upgrade). Bytes that arrive before that are consumed by the layer.
//
// Failure: a layer that receives bytes it must refuse (a bad PROXY header, a failed handshake,
// a malformed or unmasked frame) returns kClose, after it has counted the cause in the
// connection's counters and appended what it wants to say first (an alert, a close frame, an
// HTTP 400) to `down`. The connection then closes once those bytes are sent, without passing
// anything more up. A layer that receives a clean close from its peer (a WebSocket close frame,
// a TLS close_notify) answers it the same way and returns kClose.
//
// Bounds: each layer buffers at most a bounded amount (a PROXY header: 107 bytes for v1, 2 KiB
// for v2, proxy::kMaxV2Bytes, where the spec allows 16 + 65,535; a TLS record 16 KiB +
// overhead; a WebSocket frame header 14 bytes: payloads are unmasked as they stream through).
// memory_bytes() reports what a layer holds, for the memory budget.
//
// Thread safety: a Transport belongs to its connection and is used on one thread at a time. It
// may move to another shard with its connection (the hand-off to the client id's home shard),
// so a layer keeps no thread-local state. A TransportFactory is shared by every shard and its
// Make() is thread-safe.
#ifndef RINGMQ_NET_TRANSPORT_H_
#define RINGMQ_NET_TRANSPORT_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/byte_buffer.h"
#include "metrics/counters.h"

namespace ringmq::net {

// What layers learn about the client that the connection uses instead of the socket's view.
struct PeerInfo {
  // The client's address from a PROXY header, or from X-Forwarded-For on a listener that trusts
  // it: per-address limits, logs and the auth hooks use it instead of getpeername(). Set at
  // most once per connection, before any MQTT byte is passed up.
  std::optional<sockaddr_storage> source;
  // The TLS client certificate's identity (the subject CN or a SAN, as the listener chooses),
  // empty without a verified client certificate. With use_identity_as_username it stands in
  // for the CONNECT's user name.
  std::string certificate_identity;
  // "TLSv1.3 TLS_AES_128_GCM_SHA256" and the like, for the connection's log lines.
  std::string tls_description;
};

class TransportLayer {
 public:
  enum class Result : uint8_t { kOk, kClose };
  virtual ~TransportLayer() = default;

  // `in`: bytes from the layer below (or the socket). Appends bytes for the layer above to
  // `up` and bytes this layer sends itself to `down`. May fill `peer`.
  virtual Result Receive(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down,
                         PeerInfo& peer, metrics::ShardCounters& counters) = 0;
  // `in`: bytes from the layer above, to send: appends their encoding to `down`. Called only
  // once the layer is open (the Transport holds MQTT output back until every layer is open).
  virtual void Send(std::span<const uint8_t> in, ByteBuffer& down) = 0;
  // The connection is closing: appends the layer's goodbye (a close frame, close_notify) to
  // `down`, if it has one and has not sent it. Called once, after the last Send.
  virtual void Shutdown(ByteBuffer& down) { (void)down; }
  // Passes application bytes up (handshake or header done).
  virtual bool open() const = 0;
  // Bytes the layer holds (buffers, the TLS library's state), for the memory budget.
  virtual size_t memory_bytes() const { return 0; }
  // After Receive returned kClose: why, for the connection's debug log line ("TLS handshake
  // failed: unknown_ca (...)"); empty when the layer has nothing to add.
  virtual std::string_view close_reason() const { return {}; }
  // The connection's connect timeout fired while this layer was the lowest one not open (a
  // PROXY header, a TLS handshake, an HTTP upgrade that never completed): counts it under the
  // layer's own cause.
  virtual void CountTimeout(metrics::ShardCounters& counters) { (void)counters; }
};

// A stack of layers, bottom first, and the buffers between them.
class Transport {
 public:
  explicit Transport(std::vector<std::unique_ptr<TransportLayer>> layers);
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Wire bytes from the socket. Appends the MQTT bytes they carry to `app`; the bytes the
  // layers send of their own accord wait in wire(). kClose: see the file comment.
  TransportLayer::Result Receive(std::span<const uint8_t> bytes, ByteBuffer& app,
                                 metrics::ShardCounters& counters);
  // MQTT bytes to send: their wire encoding is appended to wire(). Requires open().
  void Send(std::span<const uint8_t> app);
  // The connection is closing: every layer's goodbye, top first, into wire(). Once only.
  void Shutdown();
  bool shut_down() const { return shut_down_; }
  // Every layer is open: MQTT bytes flow both ways.
  bool open() const { return open_; }
  // Wire bytes waiting to be handed to a send (the connection swaps them out).
  ByteBuffer& wire() { return wire_; }
  const PeerInfo& peer() const { return peer_; }
  size_t memory_bytes() const;
  // Why the layer that returned kClose closed (TransportLayer::close_reason); empty before.
  std::string_view close_reason() const;
  // The connect timeout fired before every layer opened: the lowest layer not open counts it.
  void CountTimeout(metrics::ShardCounters& counters);

 private:
  // `bytes` from layer `index` (or the top's caller when index == layers_.size()) going down
  // through the layers below it into wire_.
  void SendFrom(size_t index, std::span<const uint8_t> bytes);

  std::vector<std::unique_ptr<TransportLayer>> layers_;
  // Scratch between layers, one per layer boundary, kept to avoid an allocation per receive.
  std::vector<ByteBuffer> up_;
  std::vector<ByteBuffer> down_;
  ByteBuffer wire_;
  PeerInfo peer_;
  size_t closed_by_ = SIZE_MAX;  // the layer that returned kClose
  bool open_ = false;
  bool shut_down_ = false;
};

// Makes the Transport of each connection a listener accepts; null for a plain listener.
class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  virtual std::unique_ptr<Transport> Make() const = 0;
  // SIGHUP: re-reads what the layers read from files (TLS certificates and keys); connections
  // made after it use the new data, open ones keep theirs. On error the old data stays.
  // Called on the main thread, concurrently with Make().
  virtual absl::Status Reload() { return absl::OkStatus(); }
};

}  // namespace ringmq::net

#endif  // RINGMQ_NET_TRANSPORT_H_
