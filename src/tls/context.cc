#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "listener/listener.h"

namespace ringmq::tls {
namespace {

// Distinguishes this broker's sessions from other servers' when a ticket is resumed with
// client certificates (OpenSSL refuses resumption under SSL_VERIFY_PEER without one).
constexpr unsigned char kSessionIdContext[] = "ringmq";
// TLS 1.3 tickets sent after a full handshake (OpenSSL's default is 2): a client reconnects
// with one at a time.
constexpr size_t kTicketsPerHandshake = 1;

struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};
struct X509Deleter {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

absl::Status Error(const ListenerConfig& listener, const std::string& key,
                   const std::string& message) {
  return absl::InvalidArgumentError(
      absl::StrCat("listener ", listener::ListenerName(listener), ": ", key, ": ", message));
}

// The file can be opened for reading: an OpenSSL error alone would not say why not.
absl::Status CheckReadable(const ListenerConfig& listener, const std::string& key,
                           const std::string& path) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "r"));
  if (file == nullptr) {
    return Error(listener, key, absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

std::string NameText(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "?";
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  std::string text = BioText(bio);
  BIO_free(bio);
  return text;
}

std::string TimeText(const ASN1_TIME* time) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "?";
  ASN1_TIME_print(bio, time);
  std::string text = BioText(bio);
  BIO_free(bio);
  return text;
}

bool Expired(const X509* certificate) {
  return X509_cmp_current_time(X509_get0_notAfter(certificate)) < 0;
}

std::string Summary(const X509* certificate) {
  return absl::StrCat("subject ", NameText(X509_get_subject_name(certificate)), ", issuer ",
                      NameText(X509_get_issuer_name(certificate)), ", expires ",
                      TimeText(X509_get0_notAfter(certificate)),
                      Expired(certificate) ? " (EXPIRED)" : "");
}

absl::StatusOr<X509Ptr> ReadCertificate(const ListenerConfig& listener) {
  if (absl::Status status = CheckReadable(listener, "certfile", listener.certfile); !status.ok()) {
    return status;
  }
  std::unique_ptr<FILE, FileCloser> file(std::fopen(listener.certfile.c_str(), "r"));
  X509Ptr certificate(PEM_read_X509(file.get(), nullptr, nullptr, nullptr));
  if (certificate == nullptr) {
    return Error(
        listener, "certfile",
        absl::StrCat(listener.certfile, " holds no PEM certificate: ", TakeOpenSslError()));
  }
  return certificate;
}

int MinimumVersion(const std::string& tls_version) {
  if (tls_version.empty() || tls_version == "tlsv1.2") return TLS1_2_VERSION;
  if (tls_version == "tlsv1.3") return TLS1_3_VERSION;
  return 0;
}

absl::Status LoadCertificateAndKey(const ListenerConfig& listener, SSL_CTX* ctx) {
  if (absl::Status status = CheckReadable(listener, "certfile", listener.certfile); !status.ok()) {
    return status;
  }
  const std::string& keyfile = listener.keyfile.empty() ? listener.certfile : listener.keyfile;
  const char* key_name = listener.keyfile.empty() ? "certfile" : "keyfile";
  if (absl::Status status = CheckReadable(listener, key_name, keyfile); !status.ok()) {
    return status;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, listener.certfile.c_str()) != 1) {
    return Error(
        listener, "certfile",
        absl::StrCat(listener.certfile, ": not a PEM certificate chain: ", TakeOpenSslError()));
  }
  std::unique_ptr<FILE, FileCloser> file(std::fopen(keyfile.c_str(), "r"));
  EVP_PKEY* key =
      file == nullptr ? nullptr : PEM_read_PrivateKey(file.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    return Error(listener, key_name,
                 absl::StrCat(keyfile, ": not a PEM private key (or it is encrypted): ",
                              TakeOpenSslError()));
  }
  const bool used = SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  if (!used || SSL_CTX_check_private_key(ctx) != 1) {
    return Error(listener, key_name,
                 absl::StrCat(keyfile, " does not match the certificate in ", listener.certfile,
                              ": ", TakeOpenSslError()));
  }
  return absl::OkStatus();
}

absl::Status LoadClientCas(const ListenerConfig& listener, SSL_CTX* ctx) {
  if (listener.cafile.empty()) {
    if (listener.require_certificate || listener.use_identity_as_username) {
      return Error(listener, "cafile",
                   "require_certificate and use_identity_as_username need a cafile to verify "
                   "client certificates with");
    }
    return absl::OkStatus();
  }
  if (absl::Status status = CheckReadable(listener, "cafile", listener.cafile); !status.ok()) {
    return status;
  }
  if (SSL_CTX_load_verify_locations(ctx, listener.cafile.c_str(), nullptr) != 1) {
    return Error(listener, "cafile",
                 absl::StrCat(listener.cafile, ": no PEM certificate: ", TakeOpenSslError()));
  }
  // The CA names go into the CertificateRequest (RFC 8446 §4.2.4), so a client with several
  // certificates can pick the right one.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(listener.cafile.c_str());
  if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
  ERR_clear_error();
  int mode = SSL_VERIFY_PEER;
  if (listener.require_certificate) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, nullptr);
  return absl::OkStatus();
}

absl::Status ApplyProtocolSettings(const ListenerConfig& listener, SSL_CTX* ctx) {
  const int minimum = MinimumVersion(listener.tls_version);
  if (minimum == 0) {
    return Error(listener, "tls_version",
                 absl::StrCat("\"", listener.tls_version, "\" is not \"tlsv1.2\" or \"tlsv1.3\""));
  }
  SSL_CTX_set_min_proto_version(ctx, minimum);
  if (!listener.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, listener.ciphers.c_str()) != 1) {
    return Error(listener, "ciphers",
                 absl::StrCat("no TLS 1.2 cipher OpenSSL knows in \"", listener.ciphers,
                              "\" (see `openssl ciphers`): ", TakeOpenSslError()));
  }
  if (!listener.ciphersuites.empty() &&
      SSL_CTX_set_ciphersuites(ctx, listener.ciphersuites.c_str()) != 1) {
    return Error(listener, "ciphersuites",
                 absl::StrCat("\"", listener.ciphersuites,
                              "\" is not a list of TLS 1.3 suites such as "
                              "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256: ",
                              TakeOpenSslError()));
  }
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, kTicketsPerHandshake);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof(kSessionIdContext) - 1);
  return absl::OkStatus();
}

}  // namespace

std::string TakeOpenSslError() {
  const unsigned long error = ERR_get_error();
  ERR_clear_error();
  if (error == 0) return "unknown";
  char text[256];
  ERR_error_string_n(error, text, sizeof(text));
  return text;
}

absl::StatusOr<std::shared_ptr<const ServerContext>> ServerContext::Create(
    const ListenerConfig& listener) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("listener ", listener::ListenerName(listener),
                                                     ": SSL_CTX_new: ", TakeOpenSslError()));
  }
  absl::Status status = ApplyProtocolSettings(listener, ctx);
  if (status.ok()) status = LoadCertificateAndKey(listener, ctx);
  if (status.ok()) status = LoadClientCas(listener, ctx);
  if (!status.ok()) {
    SSL_CTX_free(ctx);
    return status;
  }
  const X509* certificate = SSL_CTX_get0_certificate(ctx);
  std::string summary = certificate == nullptr ? "?" : Summary(certificate);
  if (certificate != nullptr && Expired(certificate)) {
    RINGMQ_LOG_WARNING("listener %s: the certificate in %s has expired: clients will refuse it",
                       listener::ListenerName(listener).c_str(), listener.certfile.c_str());
  }
  return std::shared_ptr<const ServerContext>(new ServerContext(ctx, std::move(summary)));
}

ServerContext::~ServerContext() { SSL_CTX_free(ctx_); }

SSL* ContextSlot::NewSsl() const {
  // SSL_new outside the lock: the copy keeps the context alive until the SSL holds it too.
  const std::shared_ptr<const ServerContext> context = Load();
  return SSL_new(context->get());
}

void ContextSlot::Replace(std::shared_ptr<const ServerContext> context) {
  RINGMQ_ASSERT(context != nullptr);
  std::shared_ptr<const ServerContext> old;
  {
    MutexLock lock(&mutex_);
    old = std::exchange(context_, std::move(context));
  }
  // `old` is released outside the lock; open connections still hold its SSL_CTX.
}

std::shared_ptr<const ServerContext> ContextSlot::Load() const {
  MutexLock lock(&mutex_);
  return context_;
}

absl::StatusOr<std::string> CheckListener(const ListenerConfig& listener) {
  absl::StatusOr<std::shared_ptr<const ServerContext>> context = ServerContext::Create(listener);
  if (!context.ok()) return context.status();
  absl::StatusOr<X509Ptr> certificate = ReadCertificate(listener);
  if (!certificate.ok()) return certificate.status();
  if (Expired(certificate->get())) {
    return Error(listener, "certfile",
                 absl::StrCat(listener.certfile, ": the certificate expired on ",
                              TimeText(X509_get0_notAfter(certificate->get()))));
  }
  std::string text =
      absl::StrCat("certificate ", Summary(certificate->get()), "; key matches; minimum ",
                   listener.tls_version.empty() ? "tlsv1.2" : listener.tls_version);
  if (!listener.cafile.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store((*context)->get());
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
    absl::StrAppend(&text, "; cafile ", listener.cafile, ": ",
                    objects == nullptr ? 0 : sk_X509_OBJECT_num(objects), " CA certificate(s)",
                    listener.require_certificate ? ", client certificate required"
                                                 : ", client certificate optional");
  }
  return text;
}

}  // namespace ringmq::tls
