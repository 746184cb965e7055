// proxy::ProxyLayer: the bottom layer of a connection accepted on a listener with
// proxy_protocol = "v1", "v2" or "any" (issue 14). It consumes the PROXY protocol header
// (proxy/header.h) that the load balancer in front of ringmq writes first, names the client in
// PeerInfo::source, and from then on passes every byte up and down unchanged.
//
// Contract (net/transport.h):
//   - Until the header is complete the layer is closed: it buffers at most kMaxHeaderBytes
//     (the parser refuses before that), passes nothing up and sends nothing.
//   - A complete header: PeerInfo::source is set when the header names the client (v1 TCP4/6,
//     v2 PROXY over AF_INET/AF_INET6); net::Connection then moves the per-address count to
//     that address before any CONNECT is admitted, and its log lines name it. A header
//     without a client address (v1 UNKNOWN, v2 LOCAL/UNSPEC/UNIX/DGRAM) keeps the socket's.
//     A v2 TLS TLV (the proxy terminated TLS) fills PeerInfo::tls_description; it never sets
//     certificate_identity, which only ringmq's own TLS layer vouches for. The bytes after the
//     header in the same receive (often the CONNECT) go up at once. Counted as
//     proxy_header_v1, _v2 or _local.
//   - Anything else (PROXY-2.1, 2.2: "the receiver MUST NOT start processing the connection
//     before it receives a complete and valid PROXY protocol header"): kClose without a reply,
//     counted by cause (proxy/header.h Refusal).
//   - The connect timeout runs from the accept; if it fires before the header is complete,
//     CountTimeout counts proxy_timeout (the connection counts connect_timeout as well).
//
// Trust: the header is believed as sent. A listener that expects it must be reachable only by
// the proxies (docs/deployment.md): a client that reaches it directly could claim any address.
//
// Thread safety: one connection's layer, used by one thread at a time; no shared state.
#ifndef RINGMQ_PROXY_LAYER_H_
#define RINGMQ_PROXY_LAYER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "net/transport.h"
#include "proxy/header.h"
#include "ringmq/config.h"

namespace ringmq::proxy {

class ProxyLayer final : public net::TransportLayer {
 public:
  // `accept`: the listener's proxy_protocol, not kOff.
  explicit ProxyLayer(ProxyProtocol accept);

  Result Receive(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down, net::PeerInfo& peer,
                 metrics::ShardCounters& counters) override;
  void Send(std::span<const uint8_t> in, ByteBuffer& down) override;
  void CountTimeout(metrics::ShardCounters& counters) override;
  bool open() const override { return open_; }
  size_t memory_bytes() const override { return pending_.capacity(); }

 private:
  // `bytes` begin at the connection's first byte: parse, and on success open and pass the
  // rest up.
  Result Parse(std::span<const uint8_t> bytes, ByteBuffer& up, net::PeerInfo& peer,
               metrics::ShardCounters& counters);

  const ProxyProtocol accept_;
  bool open_ = false;
  bool refused_ = false;
  // The header's bytes so far while it arrives in pieces (< kMaxHeaderBytes); released when
  // the layer opens.
  std::vector<uint8_t> pending_;
};

}  // namespace ringmq::proxy

#endif  // RINGMQ_PROXY_LAYER_H_
