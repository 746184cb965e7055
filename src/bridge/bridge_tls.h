// TLS from a bridge to its remote broker (docs/bridges.md, "TLS"): the client side of
// tls::TlsLayer (tls/tls_layer.h), the same sans-IO OpenSSL layer the listeners use, here in
// connect state. ClientContext is made once per bridge from its `cafile` (the CAs that verify
// the remote's certificate), optional `certfile` / `keyfile` (a client certificate) and TLS 1.2
// at least; each connection attempt gets a new layer that sends the server name (SNI) and
// checks the certificate's host name or IP address against the address it connects to
// (RFC 6125), unless `insecure`.
//
// Thread safety: a ClientContext is immutable once made and used by one shard; layers belong to
// one connection on that shard.
#ifndef RINGMQ_BRIDGE_BRIDGE_TLS_H_
#define RINGMQ_BRIDGE_BRIDGE_TLS_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ringmq/config.h"
#include "tls/tls_layer.h"

namespace ringmq::bridge {

class ClientContext {
 public:
  // Errors: a file that cannot be read or does not hold what it should (named).
  static absl::StatusOr<std::unique_ptr<ClientContext>> Create(const BridgeConfig& config);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A client layer for a connection to `host` (a name or an IP literal). Null only if OpenSSL
  // cannot allocate.
  std::unique_ptr<tls::TlsLayer> NewLayer(const std::string& host) const;

 private:
  ClientContext(SSL_CTX* ctx, bool insecure) : ctx_(ctx), insecure_(insecure) {}
  SSL_CTX* const ctx_;
  const bool insecure_;
};

}  // namespace ringmq::bridge

#endif  // RINGMQ_BRIDGE_BRIDGE_TLS_H_
