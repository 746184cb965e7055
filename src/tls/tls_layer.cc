#include "tls/tls_layer.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/assert.h"
#include "common/log.h"
#include "listener/listener.h"

namespace ringmq::tls {
namespace {

// Plaintext asked of SSL_read per call: at least this much, at most one record's worth (RFC
// 8446 §5.1: 2^14), else about what arrived, so `up` grows with what was received.
constexpr size_t kMinReadChunk = 1024;
constexpr size_t kMaxReadChunk = 16384;

// The BIO under every TlsLayer: it reads from TlsLayer::Io::in and appends to *Io::down, both
// set for the duration of one layer call. It never blocks: with nothing left to read it asks
// OpenSSL to retry (SSL_ERROR_WANT_READ), and a write always succeeds in full.
int BioWrite(BIO* bio, const char* data, int size) {
  auto* io = static_cast<TlsLayer::Io*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  RINGMQ_ASSERT(io != nullptr && io->down != nullptr && size >= 0);
  io->down->insert(io->down->end(), reinterpret_cast<const uint8_t*>(data),
                   reinterpret_cast<const uint8_t*>(data) + size);
  return size;
}

int BioRead(BIO* bio, char* data, int size) {
  auto* io = static_cast<TlsLayer::Io*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  RINGMQ_ASSERT(io != nullptr && size >= 0);
  if (io->in.empty()) {
    BIO_set_retry_read(bio);
    return -1;
  }
  const size_t n = std::min(io->in.size(), static_cast<size_t>(size));
  std::memcpy(data, io->in.data(), n);
  io->in = io->in.subspan(n);
  return static_cast<int>(n);
}

long BioCtrl(BIO*, int command, long, void*) { return command == BIO_CTRL_FLUSH ? 1 : 0; }

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* SpanBioMethod() {
  static const BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ringmq span");
    RINGMQ_ASSERT(m != nullptr);
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

// Points the BIO at one call's bytes, and away from them when the call returns.
class IoScope {
 public:
  IoScope(TlsLayer::Io& io, std::span<const uint8_t> in, ByteBuffer* down) : io_(io) {
    io_.in = in;
    io_.down = down;
  }
  ~IoScope() {
    io_.in = {};
    io_.down = nullptr;
  }

 private:
  TlsLayer::Io& io_;
};

Cause FromVerifyResult(long result) {
  switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return Cause::kCertificateExpired;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return Cause::kUnknownCa;
    default:
      return Cause::kBadCertificate;
  }
}

Cause Classify(SSL* ssl, unsigned long error) {
  if (error == 0 || ERR_GET_LIB(error) != ERR_LIB_SSL) return Cause::kOther;
  const int reason = ERR_GET_REASON(error);
  switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return Cause::kNoCertificate;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return FromVerifyResult(SSL_get_verify_result(ssl));
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
      return Cause::kProtocolVersion;
    case SSL_R_NO_SHARED_CIPHER:
      return Cause::kNoSharedCipher;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
      return Cause::kNotTls;
    default:
      break;
  }
  // A fatal alert from the peer is reported as SSL_AD_REASON_OFFSET + its AlertDescription.
  if (reason >= SSL_AD_REASON_OFFSET) return Cause::kPeerAlert;
  return Cause::kOther;
}

std::string Utf8(const ASN1_STRING* text) {
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, text);
  if (length < 0) return {};
  std::string result(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return result;
}

std::string SubjectAltName(X509* certificate, int type) {
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return {};
  std::string result;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != type) continue;
    const ASN1_IA5STRING* text = name->d.ia5;  // dNSName, rfc822Name and URI are IA5Strings
    result.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                  static_cast<size_t>(ASN1_STRING_length(text)));
    break;
  }
  GENERAL_NAMES_free(names);
  return result;
}

}  // namespace

std::string_view LabelOf(Cause cause) {
  switch (cause) {
#define RINGMQ_TLS_CAUSE_LABEL(name, label) \
  case Cause::name:                         \
    return label;
    RINGMQ_TLS_FAILURE_CAUSES(RINGMQ_TLS_CAUSE_LABEL)
#undef RINGMQ_TLS_CAUSE_LABEL
  }
  return "other";
}

void CountFailure(Cause cause, metrics::ShardCounters& counters) {
  switch (cause) {
    case Cause::kNoCertificate:
      return counters.tls_failed_no_certificate.Add();
    case Cause::kUnknownCa:
      return counters.tls_failed_unknown_ca.Add();
    case Cause::kCertificateExpired:
      return counters.tls_failed_certificate_expired.Add();
    case Cause::kBadCertificate:
      return counters.tls_failed_bad_certificate.Add();
    case Cause::kProtocolVersion:
      return counters.tls_failed_protocol_version.Add();
    case Cause::kNoSharedCipher:
      return counters.tls_failed_no_shared_cipher.Add();
    case Cause::kNotTls:
      return counters.tls_failed_not_tls.Add();
    case Cause::kPeerAlert:
      return counters.tls_failed_peer_alert.Add();
    case Cause::kTimeout:
      return counters.tls_failed_timeout.Add();
    case Cause::kOther:
      return counters.tls_failed_other.Add();
  }
}

std::string CertificateIdentity(X509* certificate, IdentityField field) {
  RINGMQ_ASSERT(certificate != nullptr);
  std::string identity;
  switch (field) {
    case IdentityField::kCn: {
      const X509_NAME* subject = X509_get_subject_name(certificate);
      const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
      if (index >= 0) {
        identity = Utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
      }
      break;
    }
    case IdentityField::kSanDns:
      identity = SubjectAltName(certificate, GEN_DNS);
      break;
    case IdentityField::kSanEmail:
      identity = SubjectAltName(certificate, GEN_EMAIL);
      break;
    case IdentityField::kSanUri:
      identity = SubjectAltName(certificate, GEN_URI);
      break;
  }
  // A NUL inside would make "admin\0.evil" look like "admin" to C-string consumers; an MQTT
  // user name is at most 65,535 bytes (MQTT-1.5.3).
  if (identity.find('\0') != std::string::npos || identity.size() > 65535) return {};
  return identity;
}

TlsLayer::TlsLayer(SSL* ssl, IdentityField identity_field)
    : ssl_(ssl),
      identity_field_(identity_field),
      records_kept_(ssl != nullptr && (SSL_get_mode(ssl) & SSL_MODE_RELEASE_BUFFERS) == 0) {
  RINGMQ_ASSERT(ssl_ != nullptr);
  BIO* bio = BIO_new(SpanBioMethod());
  RINGMQ_ASSERT(bio != nullptr);
  BIO_set_data(bio, &io_);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways; the SSL owns it
  SSL_set_accept_state(ssl_);
}

TlsLayer::~TlsLayer() { SSL_free(ssl_); }

net::TransportLayer::Result TlsLayer::Receive(std::span<const uint8_t> in, ByteBuffer& up,
                                              ByteBuffer& down, net::PeerInfo& peer,
                                              metrics::ShardCounters& counters) {
  if (failed_ || shut_down_) return Result::kClose;
  IoScope scope(io_, in, &down);
  if (!open_) {
    const Result result = Handshake(peer, counters);
    if (result == Result::kClose || !open_) return result;
  }
  return ReadRecords(up, counters);
}

net::TransportLayer::Result TlsLayer::Handshake(net::PeerInfo& peer,
                                                metrics::ShardCounters& counters) {
  const int result = SSL_do_handshake(ssl_);
  if (result != 1) {
    const int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_WANT_READ) {
      if (io_.in.empty()) return Result::kOk;
      // OpenSSL wants more while input is left unread: not expected from the BIO's contract;
      // the connection is refused (counted) rather than the broker asserting on peer input.
      return Fail(SSL_ERROR_SSL, counters);
    }
    return Fail(error, counters);
  }
  open_ = true;
  counters.tls_handshakes_completed.Add();
  if (SSL_session_reused(ssl_) == 1) counters.tls_sessions_resumed.Add();
  peer.tls_description =
      absl::StrCat(SSL_get_version(ssl_), " ", SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_)));
  X509* certificate = SSL_get0_peer_certificate(ssl_);
  if (certificate != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK) {
    peer.certificate_identity = CertificateIdentity(certificate, identity_field_);
  }
  return Result::kOk;
}

net::TransportLayer::Result TlsLayer::ReadRecords(ByteBuffer& up,
                                                  metrics::ShardCounters& counters) {
  // The plaintext of what arrived is at most what arrived (plus a record completed by it).
  const size_t chunk = std::clamp(io_.in.size(), kMinReadChunk, kMaxReadChunk);
  while (true) {
    const size_t old_size = up.size();
    up.resize(old_size + chunk);
    size_t read = 0;
    const int result = SSL_read_ex(ssl_, up.data() + old_size, chunk, &read);
    up.resize(old_size + (result == 1 ? read : 0));
    if (result == 1) continue;
    const int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_WANT_READ) {
      if (io_.in.empty()) return Result::kOk;
      // OpenSSL wants more while input is left unread: not expected from the BIO's contract;
      // the connection is refused (counted) rather than the broker asserting on peer input.
      return Fail(SSL_ERROR_SSL, counters);
    }
    if (error == SSL_ERROR_ZERO_RETURN) {  // close_notify: answer it (RFC 8446 §6.1)
      close_reason_ = "TLS close_notify from the client";
      shut_down_ = true;
      SSL_shutdown(ssl_);
      ERR_clear_error();
      return Result::kClose;
    }
    return Fail(error, counters);
  }
}

net::TransportLayer::Result TlsLayer::Fail(int ssl_error, metrics::ShardCounters& counters) {
  failed_ = true;
  // The first error OpenSSL's SSL library queued names the cause; the rest are context.
  unsigned long first = 0;
  for (unsigned long error = ERR_get_error(); error != 0; error = ERR_get_error()) {
    if (first == 0 || (ERR_GET_LIB(first) != ERR_LIB_SSL && ERR_GET_LIB(error) == ERR_LIB_SSL)) {
      first = error;
    }
  }
  const Cause cause = Classify(ssl_, first);
  const char* reason = first == 0 ? nullptr : ERR_reason_error_string(first);
  const long verify = SSL_get_verify_result(ssl_);
  close_reason_ = absl::StrCat(
      open_ ? "TLS error" : "TLS handshake failed", ": ", std::string(LabelOf(cause)), " (",
      reason != nullptr ? reason : (ssl_error == SSL_ERROR_SYSCALL ? "syscall" : "no detail"),
      verify != X509_V_OK ? absl::StrCat("; ", X509_verify_cert_error_string(verify)) : "", ")");
  if (open_) {
    counters.tls_record_errors.Add();
  } else {
    CountFailure(cause, counters);
  }
  ERR_clear_error();
  return Result::kClose;
}

void TlsLayer::Send(std::span<const uint8_t> in, ByteBuffer& down) {
  RINGMQ_ASSERT(open_);
  if (failed_ || shut_down_ || in.empty()) return;
  IoScope scope(io_, {}, &down);
  size_t written = 0;
  if (SSL_write_ex(ssl_, in.data(), in.size(), &written) != 1) {
    // The BIO takes every byte, so only an earlier fatal error gets here: nothing more is sent.
    failed_ = true;
    ERR_clear_error();
    return;
  }
  RINGMQ_ASSERT(written == in.size());
}

void TlsLayer::Shutdown(ByteBuffer& down) {
  if (!open_ || failed_ || shut_down_) return;
  shut_down_ = true;
  IoScope scope(io_, {}, &down);
  SSL_shutdown(ssl_);  // sends close_notify; the peer's answer is not awaited
  ERR_clear_error();
}

size_t TlsLayer::memory_bytes() const {
  // An estimate per state (OpenSSL does not tell what one SSL object holds), checked against
  // OpenSSL's own allocations in tests/tls/client_tls_noalloc_test.cc.
  const size_t records = records_kept_ ? kRecordBuffersBytes : 0;
  if (!open_) return kHandshakeBytes + records;
  return (SSL_is_server(ssl_) != 0 ? kIdleBytes : kClientIdleBytes) + records;
}

void TlsLayer::CountTimeout(metrics::ShardCounters& counters) {
  if (open_ || failed_) return;
  close_reason_ = "TLS handshake not finished within the connect timeout";
  CountFailure(Cause::kTimeout, counters);
}

absl::StatusOr<std::shared_ptr<LayerFactory>> LayerFactory::Create(const ListenerConfig& listener) {
  absl::StatusOr<std::shared_ptr<const ServerContext>> context = ServerContext::Create(listener);
  if (!context.ok()) return context.status();
  RINGMQ_LOG_INFO("listener %s: TLS certificate %s", listener::ListenerName(listener).c_str(),
                  (*context)->certificate_summary().c_str());
  return std::shared_ptr<LayerFactory>(new LayerFactory(listener, std::move(*context)));
}

std::unique_ptr<net::TransportLayer> LayerFactory::Make() const {
  SSL* ssl = slot_.NewSsl();
  RINGMQ_ASSERT(ssl != nullptr && "SSL_new failed: out of memory");
  return std::make_unique<TlsLayer>(ssl, listener_.identity_field);
}

absl::Status LayerFactory::Reload() {
  absl::StatusOr<std::shared_ptr<const ServerContext>> context = ServerContext::Create(listener_);
  if (!context.ok()) return context.status();
  const std::string summary = (*context)->certificate_summary();
  // Logged once it holds: a handshake that starts after this line uses the new certificate.
  slot_.Replace(std::move(*context));
  RINGMQ_LOG_INFO("listener %s: reloaded TLS certificate %s",
                  listener::ListenerName(listener_).c_str(), summary.c_str());
  return absl::OkStatus();
}

}  // namespace ringmq::tls
