// A TLS listener's server settings: the OpenSSL SSL_CTX made from its ListenerConfig (docs/tls.md)
// and the slot that holds the one new handshakes use, replaced on SIGHUP.
//
// What a context sets (RFC 8446 for TLS 1.3, RFC 5246 for TLS 1.2):
// - certfile: the server certificate followed by its chain (PEM); keyfile: its private key,
//   which must match the certificate.
// - cafile: CAs that client certificates must chain to. With it, a client certificate is asked
//   for and verified; require_certificate makes it mandatory (SSL_VERIFY_PEER |
//   SSL_VERIFY_FAIL_IF_NO_PEER_CERT). A client that presents a certificate that does not verify
//   is refused either way.
// - tls_version: the minimum, "tlsv1.2" (the default) or "tlsv1.3"; ciphers: the TLS 1.2 list,
//   ciphersuites: the TLS 1.3 suites (OpenSSL syntax; empty: OpenSSL's defaults).
// - Session resumption with stateless tickets (RFC 8446 §4.6.1, RFC 5077): one ticket per full
//   TLS 1.3 handshake, no server-side session cache (nothing shared between shards to lock,
//   nothing that grows with clients). Ticket keys belong to a context, so a reload makes old
//   tickets fall back to a full handshake.
// - No renegotiation (a TLS 1.2 client cannot restart the handshake on an open connection), no
//   compression, and SSL_MODE_RELEASE_BUFFERS: an idle connection's record buffers are freed.
//
// Thread safety: a ServerContext is immutable once made; SSL_new on its SSL_CTX from several
// threads at once is safe (OpenSSL 3 locks the context's reference count and lists). A
// ContextSlot's NewSsl() and Replace() may be called from any thread concurrently: the slot
// holds a mutex only to copy or swap the pointer. An SSL made from a context keeps a
// reference to it, so a replaced context lives on until its last connection closes.
#ifndef RINGMQ_TLS_CONTEXT_H_
#define RINGMQ_TLS_CONTEXT_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "ringmq/config.h"

namespace ringmq::tls {

class ServerContext {
 public:
  // Errors name the listener and the key to change: a file that cannot be read, a key that
  // does not match the certificate, a cipher list with no cipher OpenSSL knows, an unknown
  // tls_version.
  static absl::StatusOr<std::shared_ptr<const ServerContext>> Create(
      const ListenerConfig& listener);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  SSL_CTX* get() const { return ctx_; }
  // "subject CN=broker.example, issuer CN=Example CA, expires Jan  5 10:00:00 2027 GMT", for
  // log lines.
  const std::string& certificate_summary() const { return summary_; }

 private:
  ServerContext(SSL_CTX* ctx, std::string summary) : ctx_(ctx), summary_(std::move(summary)) {}
  SSL_CTX* const ctx_;
  const std::string summary_;
};

// The context a listener's new handshakes use.
class ContextSlot {
 public:
  explicit ContextSlot(std::shared_ptr<const ServerContext> context)
      : context_(std::move(context)) {}
  // A new server-side SSL object on the current context; null only when OpenSSL cannot
  // allocate.
  SSL* NewSsl() const;
  // New handshakes use `context` from now on; connections made before keep theirs.
  void Replace(std::shared_ptr<const ServerContext> context);
  std::shared_ptr<const ServerContext> Load() const;

 private:
  mutable Mutex mutex_;
  std::shared_ptr<const ServerContext> context_ ABSL_GUARDED_BY(mutex_);
};

// --check-config's view of a TLS listener: certificate and key readable and matching, the CA
// file readable, and a few lines that say what was found (subject, issuer, expiry, CA count).
// An expired certificate is an error here (clients would refuse every handshake); at start it
// is only a warning.
absl::StatusOr<std::string> CheckListener(const ListenerConfig& listener);

// The text of OpenSSL's oldest queued error for this thread ("unknown" when none); empties the
// thread's error queue (a stale entry would confuse the next SSL_get_error).
std::string TakeOpenSslError();

}  // namespace ringmq::tls

#endif  // RINGMQ_TLS_CONTEXT_H_
