// Client-mode TLS: the one place that makes the OpenSSL client settings ringmq uses when it
// connects out, for the MQTT bridges (docs/bridges.md, "TLS") and the cluster's NATS links
// (docs/cluster.md, "TLS to NATS"). A connection's TLS runs in tls::TlsLayer (tls/tls_layer.h),
// the same sans-IO layer the listeners use, here in connect state: its records go through the
// owning shard's ring like every connection's.
//
// Contract. ClientContext::Create makes an SSL_CTX from ClientTlsOptions: TLS 1.2 at least
// (RFC 5246; 1.3 preferred, RFC 8446), peer verification on (SSL_VERIFY_PEER) against
// `ca_file` (PEM; empty: OpenSSL's default verify paths, the system's CAs), and optionally a
// client certificate chain `cert_file` with its key `key_file` (both or neither; the key must
// match). NewLayer(name) makes one connection's layer: it sends `name` as SNI when it is a host
// name (RFC 6066 §3: never an IP literal) and, unless `insecure`, checks the server
// certificate's DNS names or IP addresses against it (RFC 6125 §6; RFC 5280 §4.2.1.6 for IPs).
// A handshake that fails leaves the reason in TlsLayer::close_reason() and is counted by cause
// (ringmq_tls_handshake_failures_total); callers count their own failures besides.
//
// Thread safety: a ClientContext is immutable once made. NewLayer may be called from several
// threads at once (SSL_new on a shared SSL_CTX is safe in OpenSSL 3); in ringmq each context
// is made and used by one shard anyway. A layer belongs to one connection on one shard.
#ifndef RINGMQ_TLS_CLIENT_CONTEXT_H_
#define RINGMQ_TLS_CLIENT_CONTEXT_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tls/tls_layer.h"

namespace ringmq::tls {

struct ClientTlsOptions {
  std::string label;      // starts error messages: "[[bridge]] name" or "[cluster]"
  std::string ca_file;    // empty: the system's CAs
  std::string cert_file;  // client certificate chain (PEM); empty: none
  std::string key_file;   // its private key; set iff cert_file is
  bool insecure = false;  // do not check the certificate's names (the chain is still verified)
  // Keep each connection's record buffers (about 34 KiB) instead of SSL_MODE_RELEASE_BUFFERS:
  // for a few busy connections (the NATS links), SSL_write and SSL_read then allocate nothing
  // per record (tests/tls/client_tls_noalloc_test.cc); for many mostly idle ones (bridges),
  // releasing them saves memory.
  bool keep_record_buffers = false;
};

class ClientContext {
 public:
  // Errors name the label and the file: one that cannot be read or does not hold what it
  // should, a key that does not match the certificate.
  static absl::StatusOr<std::unique_ptr<ClientContext>> Create(const ClientTlsOptions& options);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A client layer for a connection to the server called `name` (a host name or an IP
  // literal). Null only if OpenSSL cannot allocate.
  std::unique_ptr<TlsLayer> NewLayer(const std::string& name) const;

 private:
  ClientContext(SSL_CTX* ctx, bool insecure) : ctx_(ctx), insecure_(insecure) {}
  SSL_CTX* const ctx_;
  const bool insecure_;
};

}  // namespace ringmq::tls

#endif  // RINGMQ_TLS_CLIENT_CONTEXT_H_
