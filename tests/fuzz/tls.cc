// Fuzz target: tls::TlsLayer's receive path on arbitrary wire bytes (tls/tls_layer.h). The
// server context is real (a P-256 certificate made at start-up, a cafile so that client
// certificates are asked for); the input is cut into chunks whose sizes come from its first
// byte, as a socket would deliver it. Properties checked by the layer's own assertions and the
// sanitizers: every byte is consumed, nothing is buffered beyond a record, a failure closes
// once and stays closed, Shutdown after any input is safe. Seeds: real ClientHellos (1.2, 1.3).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

#include "metrics/counters.h"
#include "net/transport.h"
#include "ringmq/config.h"
#include "tls/tls_layer.h"

namespace {

std::string WriteTestCertificate() {
  char pattern[] = "/tmp/ringmq-fuzz-tls-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400 * 365);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("fuzz"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);
  X509_sign(cert, key, EVP_sha256());
  FILE* file = std::fopen((dir + "/cert.pem").c_str(), "w");
  PEM_write_X509(file, cert);
  std::fclose(file);
  file = std::fopen((dir + "/key.pem").c_str(), "w");
  PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(file);
  X509_free(cert);
  EVP_PKEY_free(key);
  return dir;
}

const ringmq::tls::LayerFactory& Factory() {
  static const std::shared_ptr<ringmq::tls::LayerFactory> factory = [] {
    const std::string dir = WriteTestCertificate();
    ringmq::ListenerConfig listener;
    listener.port = 8883;
    listener.certfile = dir + "/cert.pem";
    listener.keyfile = dir + "/key.pem";
    listener.cafile = dir + "/cert.pem";
    auto made = ringmq::tls::LayerFactory::Create(listener);
    if (!made.ok()) abort();
    return *made;
  }();
  return *factory;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static ringmq::metrics::ShardCounters counters;
  const size_t chunk = 1 + (data[0] % 16) * 64;  // 1, 65, ... 961 bytes per receive
  std::span<const uint8_t> rest(data + 1, size - 1);
  std::unique_ptr<ringmq::net::TransportLayer> layer = Factory().Make();
  ringmq::ByteBuffer up;
  ringmq::ByteBuffer down;
  ringmq::net::PeerInfo peer;
  bool closed = false;
  while (!rest.empty() && !closed) {
    const size_t n = rest.size() < chunk ? rest.size() : chunk;
    closed = layer->Receive(rest.first(n), up, down, peer, counters) ==
             ringmq::net::TransportLayer::Result::kClose;
    rest = rest.subspan(n);
  }
  if (closed && layer->close_reason().empty()) abort();
  layer->Shutdown(down);
  return 0;
}
