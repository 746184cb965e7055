// A throw-away PKI for the TLS tests, made with the OpenSSL API at test time (nothing is
// committed): P-256 keys, a CA, certificates signed by it or by another CA, self-signed,
// expired. Files go to a fresh directory under testing::TempDir().
#ifndef RINGMQ_TESTS_TLS_TEST_PKI_H_
#define RINGMQ_TESTS_TLS_TEST_PKI_H_

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

namespace ringmq::tls::testing {

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertDeleter {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using Cert = std::unique_ptr<X509, CertDeleter>;

inline Key NewKey() { return Key(EVP_EC_gen("P-256")); }

struct CertSpec {
  std::string cn;
  long not_before_s = -3600;      // relative to now
  long not_after_s = 86400 * 30;  // relative to now
  bool ca = false;
  std::string san;  // e.g. "DNS:alice.example,email:alice@example.com,URI:urn:alice"
};

inline CertSpec Leaf(std::string cn, std::string san = "") {
  CertSpec spec;
  spec.cn = std::move(cn);
  spec.san = std::move(san);
  return spec;
}
inline CertSpec Ca(std::string cn) {
  CertSpec spec = Leaf(std::move(cn));
  spec.ca = true;
  return spec;
}
// Valid from `not_before_s` to `not_after_s` seconds from now (negative: in the past).
inline CertSpec Dated(std::string cn, long not_before_s, long not_after_s) {
  CertSpec spec = Leaf(std::move(cn));
  spec.not_before_s = not_before_s;
  spec.not_after_s = not_after_s;
  return spec;
}

// Signed by (issuer, issuer_key), or self-signed when issuer is null.
inline Cert MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  static std::atomic<long> serial{1};
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after_s);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    EXPECT_NE(extension, nullptr) << value;
    X509_add_ext(cert.get(), extension, -1);
    X509_EXTENSION_free(extension);
  };
  add(NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (spec.ca) add(NID_key_usage, "critical,keyCertSign,cRLSign");
  if (!spec.san.empty()) add(NID_subject_alt_name, spec.san);
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

class TestPki {
 public:
  TestPki() {
    char pattern[] = "/tmp/ringmq-tls-XXXXXX";
    dir_ = mkdtemp(pattern);
    ca_key_ = NewKey();
    ca_ = MakeCert(Ca("ringmq test CA"), ca_key_.get(), nullptr, nullptr);
    other_ca_key_ = NewKey();
    other_ca_ = MakeCert(Ca("another CA"), other_ca_key_.get(), nullptr, nullptr);
    WriteCert("ca.pem", ca_.get());
  }
  ~TestPki() {
    std::string command = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(std::system(command.c_str()), 0);
  }

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string ca_file() const { return Path("ca.pem"); }

  // Writes <name>.crt and <name>.key: a fresh key and a certificate for it. `issuer`: "ca",
  // "other" (another CA) or "self".
  void Issue(const std::string& name, const CertSpec& spec, const std::string& issuer = "ca") {
    Key key = NewKey();
    Cert cert = issuer == "self" ? MakeCert(spec, key.get(), nullptr, nullptr)
                : issuer == "other"
                    ? MakeCert(spec, key.get(), other_ca_.get(), other_ca_key_.get())
                    : MakeCert(spec, key.get(), ca_.get(), ca_key_.get());
    WriteCert(name + ".crt", cert.get());
    WriteKey(name + ".key", key.get());
  }

  void WriteCert(const std::string& name, X509* cert) const {
    FILE* file = std::fopen(Path(name).c_str(), "w");
    ASSERT_NE(file, nullptr);
    PEM_write_X509(file, cert);
    std::fclose(file);
  }
  void WriteKey(const std::string& name, EVP_PKEY* key) const {
    FILE* file = std::fopen(Path(name).c_str(), "w");
    ASSERT_NE(file, nullptr);
    PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(file);
  }

 private:
  std::string dir_;
  Key ca_key_;
  Cert ca_;
  Key other_ca_key_;
  Cert other_ca_;
};

}  // namespace ringmq::tls::testing

#endif  // RINGMQ_TESTS_TLS_TEST_PKI_H_
