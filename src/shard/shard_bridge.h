// The I/O state of one MQTT bridge (bridge/bridge.h) on the shard that owns it: bridge i of
// Config::bridges runs on shard i % shards (Shard::SetupBridges, shard_bridge.cc).
//
// Each of the bridge's two clients has a Side: a socket driven on the shard's ring like the
// NATS link's (one receive at a time into the side's buffer, one send in flight of what the
// client's TakeOutput gave). The remote side's socket is a TCP connection (IORING_OP_CONNECT)
// to the bridge's addresses in turn; the local side's is one end of a socket pair whose other
// end the shard serves as an ordinary client connection (Shard::AddConnection), so the
// bridge's session on this broker goes through admission, authentication, the ACL and the
// router like any client's, and may be handed off to its client id's home shard. A socket the
// client gave up or lost is shut down and closed at once; its operations still in flight
// complete as stale (an older generation), and the next socket waits for them, since they use
// the side's buffers. With `cafile` set, the remote side's bytes go through a client TLS layer
// (tls/client_context.h) between the socket and the client.
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_SHARD_SHARD_BRIDGE_H_
#define RINGMQ_SHARD_SHARD_BRIDGE_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "bridge/bridge.h"
#include "common/byte_buffer.h"
#include "net/transport.h"
#include "tls/client_context.h"
#include "tls/tls_layer.h"

namespace ringmq::shard {

struct BridgeIo {
  static constexpr size_t kReceiveBytes = 64 * 1024;

  struct Side {
    int fd = -1;
    uint32_t generation = 0;  // of `fd`; a completion of an older socket is stale
    bool connect_pending = false;
    // tidy2 lane: the remote side's IORING_OP_SOCKET is in flight (connect_pending is set too);
    // at stop, Shard::AwaitBridgeSockets waits for it so that its descriptor is closed.
    bool socket_pending = false;
    bool receive_pending = false;
    bool send_pending = false;
    bool transport_up = false;
    ByteBuffer send_buffer;  // TakeOutput's bytes; send_offset of them sent
    size_t send_offset = 0;
    std::vector<uint8_t> receive_buffer;
    // TLS (remote side, BridgeConfig::cafile): the layer of the current socket; what it wants
    // sent (handshake, records) waits in tls_down for the next send; tls_up and plain are
    // reused buffers for plaintext in and out.
    std::unique_ptr<tls::TlsLayer> tls;
    ByteBuffer tls_down;
    ByteBuffer tls_up;
    ByteBuffer plain;
    net::PeerInfo peer;
    bool idle() const { return !connect_pending && !receive_pending && !send_pending; }
  };
  struct Address {
    sockaddr_storage address{};
    socklen_t length = 0;  // 0: the host did not resolve at start
  };

  BridgeIo() = default;
  BridgeIo(const BridgeIo&) = delete;
  BridgeIo& operator=(const BridgeIo&) = delete;
  ~BridgeIo();

  std::unique_ptr<bridge::Bridge> bridge;
  uint32_t config_index = 0;  // in Config::bridges: its metrics::BridgeCounters
  Side remote;
  Side local;
  std::vector<Address> addresses;  // Config's order
  std::vector<std::string> hosts;  // their host parts (TLS server name and host name check)
  std::unique_ptr<tls::ClientContext> tls_context;  // null: plain TCP
  size_t next_address = 0;
  size_t connecting_address = 0;  // bridgeio lane: of the remote socket being made (its connect)
  bool back_to_main = false;     // a connection ended: round_robin false starts again at the first
  bridge::BridgeStats reported;  // stats already added to the shard's counters
  bridge::ClientStats remote_reported;
  uint64_t dropped_out_reported = 0;      // remote client's drops already counted
  uint64_t dropped_in_reported = 0;       // local client's
  uint64_t refused_reported[2] = {0, 0};  // SUBACK failures logged: remote, local
  bool was_open = false;                  // the remote client was open at the last step
  uint64_t next_warning_ms = 0;
  uint64_t last_traffic_ms = 0;  // a message crossed, or the remote connection opened (lazy)
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_SHARD_BRIDGE_H_
