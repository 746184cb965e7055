#include "tls/client_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/assert.h"
#include "tls/context.h"

namespace ringmq::tls {
namespace {

bool IsIpLiteral(const std::string& host) {
  unsigned char bytes[16];
  return inet_pton(AF_INET, host.c_str(), bytes) == 1 ||
         inet_pton(AF_INET6, host.c_str(), bytes) == 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClientContext>> ClientContext::Create(
    const ClientTlsOptions& options) {
  RINGMQ_ASSERT(options.cert_file.empty() == options.key_file.empty());
  ERR_clear_error();
  const std::string label = absl::StrCat(options.label, ": ");
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return absl::InternalError(label + TakeOpenSslError());
  std::unique_ptr<ClientContext> context(new ClientContext(ctx, options.insecure));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!options.keep_record_buffers) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (options.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, "the system's CAs: ", TakeOpenSslError()));
    }
  } else if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, "CA file ", options.ca_file, ": ", TakeOpenSslError()));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, "certificate file ", options.cert_file, ": ", TakeOpenSslError()));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(label, "key file ", options.key_file, ": ", TakeOpenSslError()));
    }
  }
  return context;
}

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<TlsLayer> ClientContext::NewLayer(const std::string& host) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) {
    ERR_clear_error();
    return nullptr;
  }
  const bool ip = IsIpLiteral(host);
  // SNI carries host names only (RFC 6066 §3).
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (!insecure_) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1) {
      ERR_clear_error();
      SSL_free(ssl);
      return nullptr;
    }
  }
  auto layer = std::make_unique<TlsLayer>(ssl, IdentityField::kCn);
  SSL_set_connect_state(ssl);  // the layer starts in accept state: this side is the client
  return layer;
}

}  // namespace ringmq::tls
