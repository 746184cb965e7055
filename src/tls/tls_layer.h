// TLS on a connection (RFC 8446, RFC 5246) as a sans-IO transport layer: an OpenSSL SSL object
// whose BIOs read from the bytes handed to Receive and write into the `down` buffer of the call
// that runs, so OpenSSL never touches the socket, never blocks and starts no thread. The shard's
// ring does all socket I/O; net::Transport routes the bytes (net/transport.h).
//
// Receive: the wire bytes feed the handshake (SSL_do_handshake) until it completes, then
// SSL_read, which appends the plaintext to `up`; what OpenSSL writes meanwhile (handshake
// flights, session tickets, alerts, a key update answer) goes to `down`. Send: SSL_write, its
// records to `down`. Shutdown: close_notify (RFC 8446 §6.1) once the handshake completed.
// A peer's close_notify is answered with ours and closes the connection (kClose).
//
// After the handshake the layer fills PeerInfo::tls_description ("TLSv1.3
// TLS_AES_256_GCM_SHA384") and, when the client presented a certificate that verified against
// the listener's cafile, PeerInfo::certificate_identity: the subject CN or the first SAN of the
// listener's identity_field kind (empty when the certificate has none, or one with a NUL byte).
//
// Failures (a handshake OpenSSL refuses, a record that does not decrypt) are counted by cause
// (Cause below, ringmq_tls_handshake_failures_total), described by close_reason() for the
// connection's debug log line, and return kClose after OpenSSL's alert is in `down`.
//
// Bound: the BIOs hold nothing. Every byte handed to Receive is consumed before it returns
// (OpenSSL keeps at most one partial record, <= 16 KiB + 256 bytes of ciphertext, in its own
// read buffer; RFC 8446 §5.2), and every record OpenSSL writes is appended to `down` at once.
// `up` grows by at most the plaintext of the bytes received. With SSL_MODE_RELEASE_BUFFERS
// (tls/context.h) OpenSSL frees its record buffers whenever no partial record is pending, so an
// idle open connection holds only the SSL object and its session: memory_bytes() reports that
// (kIdleBytes; kClientIdleBytes for a client layer) and what a running handshake holds
// (kHandshakeBytes), as measured, plus the record buffers when they are kept
// (kRecordBuffersBytes).
//
// Thread safety: one thread at a time (the connection's shard); the layer may move to another
// shard with its connection, since it keeps no thread-local state. OpenSSL's error queue is
// per thread: every failure path empties it before returning.
#ifndef RINGMQ_TLS_TLS_LAYER_H_
#define RINGMQ_TLS_TLS_LAYER_H_

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/transport.h"
#include "ringmq/config.h"
#include "tls/context.h"

namespace ringmq::tls {

// X(name, label): why a handshake (or, rarely, an open connection) failed.
//   no_certificate: require_certificate and the client sent none (RFC 8446 §4.4.2.4).
//   unknown_ca: its certificate does not chain to the cafile (self-signed, another CA).
//   certificate_expired: its certificate (or one in its chain) is out of its validity period.
//   bad_certificate: any other verification failure.
//   protocol_version: the client offers no version at or above the listener's minimum.
//   no_shared_cipher: no cipher suite in common.
//   not_tls: the bytes are not TLS (plain MQTT or HTTP sent to a TLS port).
//   peer_alert: the client aborted with a fatal alert (it did not accept our certificate).
//   timeout: the handshake did not complete within connect_timeout_ms (slow-loris).
//   other: anything else (a record that does not decrypt, a decode error).
#define RINGMQ_TLS_FAILURE_CAUSES(X)            \
  X(kNoCertificate, "no_certificate")           \
  X(kUnknownCa, "unknown_ca")                   \
  X(kCertificateExpired, "certificate_expired") \
  X(kBadCertificate, "bad_certificate")         \
  X(kProtocolVersion, "protocol_version")       \
  X(kNoSharedCipher, "no_shared_cipher")        \
  X(kNotTls, "not_tls")                         \
  X(kPeerAlert, "peer_alert")                   \
  X(kTimeout, "timeout")                        \
  X(kOther, "other")

enum class Cause : uint8_t {
#define RINGMQ_TLS_CAUSE_ENUM(name, label) name,
  RINGMQ_TLS_FAILURE_CAUSES(RINGMQ_TLS_CAUSE_ENUM)
#undef RINGMQ_TLS_CAUSE_ENUM
};

std::string_view LabelOf(Cause cause);
// Counts one failure of `cause` in the shard's counters.
void CountFailure(Cause cause, metrics::ShardCounters& counters);

// The identity a certificate gives under `field`; empty when it has none usable.
std::string CertificateIdentity(X509* certificate, IdentityField field);

class TlsLayer final : public net::TransportLayer {
 public:
  // What OpenSSL holds for one connection, measured with OpenSSL 3.0 (TLS 1.3, a P-256
  // certificate, allocations counted through CRYPTO_set_mem_functions): a new SSL object 8.6 KB,
  // 60 KB while the handshake runs (after the ClientHello: record buffers, key shares, the
  // transcript), 14 KB once open and idle (the SSL object and its session; record buffers
  // released).
  static constexpr size_t kIdleBytes = 14 << 10;
  static constexpr size_t kHandshakeBytes = 60 << 10;
  // tidy2 lane. A client layer (tls/client_context.h: the bridges, the NATS links) also holds
  // the server's certificate chain in its session: 17,148 bytes open and idle, measured as above
  // (OpenSSL 3.0, TLS 1.3, a P-256 leaf and its CA; tests/tls/client_tls_noalloc_test.cc). A
  // server whose chain is longer or uses larger keys makes it hold more: an estimate, not a
  // bound OpenSSL enforces.
  static constexpr size_t kClientIdleBytes = 18 << 10;
  // The read and write record buffers a layer keeps without SSL_MODE_RELEASE_BUFFERS
  // (ClientTlsOptions::keep_record_buffers: the NATS links): 33,296 bytes measured the same
  // way, allocated at their full size (RFC 8446 §5.2: 2^14 plaintext plus overhead) whatever
  // the records' sizes; in the handshake too.
  static constexpr size_t kRecordBuffersBytes = 34 << 10;

  // Takes ownership of `ssl` (server side, from ContextSlot::NewSsl).
  TlsLayer(SSL* ssl, IdentityField identity_field);
  ~TlsLayer() override;
  TlsLayer(const TlsLayer&) = delete;
  TlsLayer& operator=(const TlsLayer&) = delete;

  Result Receive(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down, net::PeerInfo& peer,
                 metrics::ShardCounters& counters) override;
  void Send(std::span<const uint8_t> in, ByteBuffer& down) override;
  void Shutdown(ByteBuffer& down) override;
  bool open() const override { return open_; }
  size_t memory_bytes() const override;
  std::string_view close_reason() const override { return close_reason_; }
  void CountTimeout(metrics::ShardCounters& counters) override;

  // What the BIO callbacks read from and write to during one call.
  struct Io {
    std::span<const uint8_t> in;
    ByteBuffer* down = nullptr;
  };

 private:
  Result Handshake(net::PeerInfo& peer, metrics::ShardCounters& counters);
  Result ReadRecords(ByteBuffer& up, metrics::ShardCounters& counters);
  Result Fail(int ssl_error, metrics::ShardCounters& counters);

  SSL* const ssl_;
  const IdentityField identity_field_;
  Io io_;
  bool open_ = false;
  bool failed_ = false;
  bool shut_down_ = false;
  const bool records_kept_;  // no SSL_MODE_RELEASE_BUFFERS (memory_bytes)
  std::string close_reason_;
};

// Makes the TLS layers of one listener's connections; thread-safe (ContextSlot).
class LayerFactory {
 public:
  static absl::StatusOr<std::shared_ptr<LayerFactory>> Create(const ListenerConfig& listener);
  std::unique_ptr<net::TransportLayer> Make() const;
  // Reloads certfile, keyfile and cafile (SIGHUP): new handshakes use them; on error the
  // current context stays.
  absl::Status Reload();
  const ContextSlot& slot() const { return slot_; }

 private:
  LayerFactory(const ListenerConfig& listener, std::shared_ptr<const ServerContext> context)
      : listener_(listener), slot_(std::move(context)) {}
  const ListenerConfig listener_;
  ContextSlot slot_;
};

}  // namespace ringmq::tls

#endif  // RINGMQ_TLS_TLS_LAYER_H_
