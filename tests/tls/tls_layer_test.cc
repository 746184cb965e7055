// tls::TlsLayer driven by a client SSL in the test, bytes passed by hand (no socket): handshakes
// at TLS 1.2 and 1.3, mutual TLS and the certificate identity, every refusal counted by cause,
// close_notify both ways, session resumption, reload, and the context's configuration errors.
#include "tls/tls_layer.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "listener/listener.h"
#include "test_pki.h"
#include "tls/ktls.h"

namespace ringmq::tls {
namespace {

using testing::Dated;
using testing::Leaf;
using testing::TestPki;
using Result = net::TransportLayer::Result;

std::string Text(const ByteBuffer& bytes) { return std::string(bytes.begin(), bytes.end()); }

class TlsLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.Issue("server", Leaf("broker.test", "DNS:localhost"));
    pki_.Issue("alice",
               Leaf("alice", "DNS:alice.example,email:alice@example.com,URI:urn:ringmq:alice"));
    listener_.port = 8883;
    listener_.certfile = pki_.Path("server.crt");
    listener_.keyfile = pki_.Path("server.key");
  }

  void RequireCertificates() {
    listener_.cafile = pki_.ca_file();
    listener_.require_certificate = true;
  }

  std::shared_ptr<LayerFactory> Factory() {
    absl::StatusOr<std::shared_ptr<LayerFactory>> factory = LayerFactory::Create(listener_);
    EXPECT_TRUE(factory.ok()) << factory.status();
    return factory.ok() ? *factory : nullptr;
  }

  // One client connection to one server layer, bytes moved by Pump().
  struct Peer {
    std::unique_ptr<net::TransportLayer> layer;
    SSL_CTX* client_ctx = nullptr;
    SSL* client = nullptr;
    BIO* to_client = nullptr;    // the server's bytes, for the client to read
    BIO* from_client = nullptr;  // the client's bytes
    ByteBuffer up;
    net::PeerInfo peer;
    Result last = Result::kOk;
    bool closed = false;
    ~Peer() {
      SSL_free(client);
      SSL_CTX_free(client_ctx);
    }
  };

  // `client_name`: the <name>.crt/.key the client presents ("" for none).
  std::unique_ptr<Peer> Connect(LayerFactory& factory, const std::string& client_name = "",
                                int client_max_version = 0, SSL_SESSION* session = nullptr) {
    auto peer = std::make_unique<Peer>();
    peer->layer = factory.Make();
    peer->client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(peer->client_ctx, pki_.ca_file().c_str(), nullptr);
    SSL_CTX_set_verify(peer->client_ctx, SSL_VERIFY_PEER, nullptr);
    if (client_max_version != 0)
      SSL_CTX_set_max_proto_version(peer->client_ctx, client_max_version);
    if (!client_name.empty()) {
      EXPECT_EQ(SSL_CTX_use_certificate_file(
                    peer->client_ctx, pki_.Path(client_name + ".crt").c_str(), SSL_FILETYPE_PEM),
                1);
      EXPECT_EQ(SSL_CTX_use_PrivateKey_file(
                    peer->client_ctx, pki_.Path(client_name + ".key").c_str(), SSL_FILETYPE_PEM),
                1);
    }
    peer->client = SSL_new(peer->client_ctx);
    peer->to_client = BIO_new(BIO_s_mem());
    peer->from_client = BIO_new(BIO_s_mem());
    SSL_set_bio(peer->client, peer->to_client, peer->from_client);
    SSL_set_connect_state(peer->client);
    SSL_set_tlsext_host_name(peer->client, "localhost");
    if (session != nullptr) SSL_set_session(peer->client, session);
    return peer;
  }

  // Moves bytes both ways until neither side has anything more to say. `chunk`: the most bytes
  // handed to the layer per Receive (1: byte at a time).
  void Pump(Peer& peer, size_t chunk = SIZE_MAX) {
    for (int round = 0; round < 100; ++round) {
      if (!SSL_is_init_finished(peer.client)) SSL_do_handshake(peer.client);
      ERR_clear_error();
      ByteBuffer wire;
      char buffer[4096];
      int n;
      while ((n = BIO_read(peer.from_client, buffer, sizeof(buffer))) > 0) {
        wire.insert(wire.end(), buffer, buffer + n);
      }
      if (wire.empty() || peer.closed) return;
      for (size_t offset = 0; offset < wire.size() && !peer.closed; offset += chunk) {
        const size_t size = std::min(chunk, wire.size() - offset);
        ByteBuffer down;
        peer.last = peer.layer->Receive(std::span<const uint8_t>(wire.data() + offset, size),
                                        peer.up, down, peer.peer, counters_);
        if (!down.empty()) BIO_write(peer.to_client, down.data(), static_cast<int>(down.size()));
        if (peer.last == Result::kClose) peer.closed = true;
      }
    }
    ADD_FAILURE() << "the handshake did not settle";
  }

  // The client's plaintext received so far; `error` gets SSL_get_error's verdict.
  std::string ClientRead(Peer& peer, int* error = nullptr) {
    std::string text;
    char buffer[4096];
    while (true) {
      const int n = SSL_read(peer.client, buffer, sizeof(buffer));
      if (n <= 0) {
        if (error != nullptr) *error = SSL_get_error(peer.client, n);
        ERR_clear_error();
        return text;
      }
      text.append(buffer, static_cast<size_t>(n));
    }
  }

  void ServerSend(Peer& peer, const std::string& text) {
    ByteBuffer down;
    peer.layer->Send(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()), down);
    BIO_write(peer.to_client, down.data(), static_cast<int>(down.size()));
  }

  void ClientWrite(Peer& peer, const std::string& text) {
    ASSERT_EQ(SSL_write(peer.client, text.data(), static_cast<int>(text.size())),
              static_cast<int>(text.size()));
  }

  TestPki pki_;
  ListenerConfig listener_;
  metrics::ShardCounters counters_;
};

TEST_F(TlsLayerTest, Tls13HandshakeThenDataBothWays) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  EXPECT_FALSE(peer->layer->open());
  Pump(*peer);
  ASSERT_TRUE(peer->layer->open());
  EXPECT_EQ(SSL_is_init_finished(peer->client), 1);
  EXPECT_EQ(peer->peer.tls_description.rfind("TLSv1.3 TLS_", 0), 0u) << peer->peer.tls_description;
  EXPECT_TRUE(peer->peer.certificate_identity.empty());  // no client certificate
  EXPECT_EQ(counters_.tls_handshakes_completed.Load(), 1u);

  ClientWrite(*peer, "CONNECT bytes");
  Pump(*peer);
  EXPECT_EQ(Text(peer->up), "CONNECT bytes");
  ServerSend(*peer, "CONNACK bytes");
  EXPECT_EQ(ClientRead(*peer), "CONNACK bytes");
}

TEST_F(TlsLayerTest, Tls12Handshake) {
  auto factory = Factory();
  auto peer = Connect(*factory, "", TLS1_2_VERSION);
  Pump(*peer);
  ASSERT_TRUE(peer->layer->open());
  EXPECT_EQ(peer->peer.tls_description.rfind("TLSv1.2 ", 0), 0u) << peer->peer.tls_description;
  ClientWrite(*peer, "hello");
  Pump(*peer);
  EXPECT_EQ(Text(peer->up), "hello");
}

TEST_F(TlsLayerTest, ByteAtATimeHandshakeAndRecords) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  Pump(*peer, 1);
  ASSERT_TRUE(peer->layer->open());
  ClientWrite(*peer, std::string(40000, 'x'));  // three records
  Pump(*peer, 1);
  EXPECT_EQ(Text(peer->up), std::string(40000, 'x'));
}

TEST_F(TlsLayerTest, LargeSendSplitsIntoRecords) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  Pump(*peer);
  const std::string big(100000, 'y');
  ServerSend(*peer, big);
  EXPECT_EQ(ClientRead(*peer), big);
}

TEST_F(TlsLayerTest, MutualTlsIdentityIsTheSubjectCn) {
  RequireCertificates();
  auto factory = Factory();
  auto peer = Connect(*factory, "alice");
  Pump(*peer);
  ASSERT_TRUE(peer->layer->open());
  EXPECT_EQ(peer->peer.certificate_identity, "alice");
}

TEST_F(TlsLayerTest, IdentityFromASubjectAltName) {
  RequireCertificates();
  const std::pair<IdentityField, std::string> cases[] = {
      {IdentityField::kSanDns, "alice.example"},
      {IdentityField::kSanEmail, "alice@example.com"},
      {IdentityField::kSanUri, "urn:ringmq:alice"},
  };
  for (const auto& [field, expected] : cases) {
    listener_.identity_field = field;
    auto factory = Factory();
    auto peer = Connect(*factory, "alice");
    Pump(*peer);
    ASSERT_TRUE(peer->layer->open());
    EXPECT_EQ(peer->peer.certificate_identity, expected);
  }
}

TEST_F(TlsLayerTest, IdentityEmptyWithoutThatKindOfName) {
  RequireCertificates();
  pki_.Issue("bob", Leaf("bob"));  // no subjectAltName
  listener_.identity_field = IdentityField::kSanDns;
  auto factory = Factory();
  auto peer = Connect(*factory, "bob");
  Pump(*peer);
  ASSERT_TRUE(peer->layer->open());
  EXPECT_TRUE(peer->peer.certificate_identity.empty());
}

TEST_F(TlsLayerTest, OptionalClientCertificateStillGivesAnIdentity) {
  listener_.cafile = pki_.ca_file();  // not required
  auto factory = Factory();
  auto with = Connect(*factory, "alice");
  Pump(*with);
  ASSERT_TRUE(with->layer->open());
  EXPECT_EQ(with->peer.certificate_identity, "alice");
  auto without = Connect(*factory);
  Pump(*without);
  ASSERT_TRUE(without->layer->open());
  EXPECT_TRUE(without->peer.certificate_identity.empty());
}

// RFC 8446 §4.4.2.4: a server that requires a certificate aborts with an alert when none comes.
TEST_F(TlsLayerTest, RequiredCertificateMissingIsRefusedAndCounted) {
  RequireCertificates();
  auto factory = Factory();
  auto peer = Connect(*factory);
  Pump(*peer);
  EXPECT_TRUE(peer->closed);
  EXPECT_FALSE(peer->layer->open());
  EXPECT_EQ(counters_.tls_failed_no_certificate.Load(), 1u);
  EXPECT_EQ(counters_.tls_handshakes_completed.Load(), 0u);
  EXPECT_NE(peer->layer->close_reason().find("no_certificate"), std::string_view::npos);
  int error = 0;
  ClientRead(*peer, &error);
  EXPECT_EQ(error, SSL_ERROR_SSL);  // the client got the alert
}

TEST_F(TlsLayerTest, CertificateFromAnotherCaIsRefusedAsUnknownCa) {
  RequireCertificates();
  pki_.Issue("mallory", Leaf("mallory"), "other");
  auto factory = Factory();
  auto peer = Connect(*factory, "mallory");
  Pump(*peer);
  EXPECT_TRUE(peer->closed);
  EXPECT_EQ(counters_.tls_failed_unknown_ca.Load(), 1u);
}

TEST_F(TlsLayerTest, SelfSignedCertificateIsRefusedAsUnknownCa) {
  RequireCertificates();
  pki_.Issue("selfie", Leaf("alice"), "self");
  auto factory = Factory();
  auto peer = Connect(*factory, "selfie");
  Pump(*peer);
  EXPECT_TRUE(peer->closed);
  EXPECT_EQ(counters_.tls_failed_unknown_ca.Load(), 1u);
}

TEST_F(TlsLayerTest, ExpiredCertificateIsRefusedAsExpired) {
  RequireCertificates();
  pki_.Issue("old", Dated("alice", -86400 * 10, -86400));
  auto factory = Factory();
  auto peer = Connect(*factory, "old");
  Pump(*peer);
  EXPECT_TRUE(peer->closed);
  EXPECT_EQ(counters_.tls_failed_certificate_expired.Load(), 1u);
  EXPECT_NE(peer->layer->close_reason().find("expired"), std::string_view::npos)
      << peer->layer->close_reason();
}

TEST_F(TlsLayerTest, VersionBelowTheMinimumIsRefused) {
  listener_.tls_version = "tlsv1.3";
  auto factory = Factory();
  auto peer = Connect(*factory, "", TLS1_2_VERSION);
  Pump(*peer);
  EXPECT_TRUE(peer->closed);
  EXPECT_EQ(counters_.tls_failed_protocol_version.Load(), 1u);
}

TEST_F(TlsLayerTest, PlainMqttOnATlsPortIsNotTls) {
  auto factory = Factory();
  std::unique_ptr<net::TransportLayer> layer = factory->Make();
  const uint8_t connect[] = {0x10, 0x10, 0x00, 0x04, 'M',  'Q', 'T', 'T', 0x04,
                             0x02, 0x00, 0x3c, 0x00, 0x04, 'a', 'b', 'c', 'd'};
  ByteBuffer up;
  ByteBuffer down;
  net::PeerInfo peer;
  EXPECT_EQ(layer->Receive(connect, up, down, peer, counters_), Result::kClose);
  EXPECT_TRUE(up.empty());
  EXPECT_EQ(counters_.tls_failed_not_tls.Load(), 1u);
}

TEST_F(TlsLayerTest, ClientCloseNotifyIsAnsweredAndCloses) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  Pump(*peer);
  ASSERT_TRUE(peer->layer->open());
  SSL_shutdown(peer->client);
  Pump(*peer);
  EXPECT_TRUE(peer->closed);
  EXPECT_EQ(counters_.tls_record_errors.Load(), 0u);
  EXPECT_EQ(SSL_shutdown(peer->client), 1);  // our close_notify arrived: shutdown complete
}

TEST_F(TlsLayerTest, ShutdownSendsCloseNotifyOnce) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  Pump(*peer);
  ByteBuffer down;
  peer->layer->Shutdown(down);
  EXPECT_FALSE(down.empty());
  BIO_write(peer->to_client, down.data(), static_cast<int>(down.size()));
  int error = 0;
  ClientRead(*peer, &error);
  EXPECT_EQ(error, SSL_ERROR_ZERO_RETURN);
  ByteBuffer again;
  peer->layer->Shutdown(again);
  EXPECT_TRUE(again.empty());
}

TEST_F(TlsLayerTest, ShutdownBeforeTheHandshakeSendsNothing) {
  auto factory = Factory();
  std::unique_ptr<net::TransportLayer> layer = factory->Make();
  ByteBuffer down;
  layer->Shutdown(down);
  EXPECT_TRUE(down.empty());
}

TEST_F(TlsLayerTest, GarbageAfterTheHandshakeIsARecordError) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  Pump(*peer);
  const uint8_t garbage[] = {0x17, 0x03, 0x03, 0x00, 0x20, 1,  2,  3,  4,  5,  6,  7,  8,
                             9,    10,   11,   12,   13,   14, 15, 16, 17, 18, 19, 20, 21,
                             22,   23,   24,   25,   26,   27, 28, 29, 30, 31, 32};
  ByteBuffer down;
  EXPECT_EQ(peer->layer->Receive(garbage, peer->up, down, peer->peer, counters_), Result::kClose);
  EXPECT_EQ(counters_.tls_record_errors.Load(), 1u);
  EXPECT_FALSE(down.empty());  // bad_record_mac alert
}

// RFC 8446 §2.2: a client resumes with the ticket of its previous connection.
TEST_F(TlsLayerTest, SessionResumptionWithATicket) {
  auto factory = Factory();
  auto first = Connect(*factory);
  Pump(*first);
  ClientRead(*first);  // takes the NewSessionTicket
  SSL_SESSION* session = SSL_get1_session(first->client);
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
  auto second = Connect(*factory, "", 0, session);
  Pump(*second);
  ASSERT_TRUE(second->layer->open());
  EXPECT_EQ(SSL_session_reused(second->client), 1);
  EXPECT_EQ(counters_.tls_sessions_resumed.Load(), 1u);
  EXPECT_EQ(counters_.tls_handshakes_completed.Load(), 2u);
  SSL_SESSION_free(session);
}

TEST_F(TlsLayerTest, ReloadServesTheNewCertificateToNewHandshakesOnly) {
  auto factory = Factory();
  auto before = Connect(*factory);
  Pump(*before);
  ASSERT_TRUE(before->layer->open());
  pki_.Issue("server", Leaf("renewed.test", "DNS:localhost"));  // same file names
  ASSERT_TRUE(factory->Reload().ok());
  auto after = Connect(*factory);
  Pump(*after);
  ASSERT_TRUE(after->layer->open());
  auto subject_cn = [](SSL* ssl) {
    X509* certificate = SSL_get0_peer_certificate(ssl);
    return certificate == nullptr ? std::string()
                                  : CertificateIdentity(certificate, IdentityField::kCn);
  };
  EXPECT_EQ(subject_cn(before->client), "broker.test");
  EXPECT_EQ(subject_cn(after->client), "renewed.test");
  // The connection made before the reload still works both ways.
  ClientWrite(*before, "still here");
  Pump(*before);
  EXPECT_EQ(Text(before->up), "still here");
  ServerSend(*before, "yes");
  EXPECT_EQ(ClientRead(*before), "yes");
}

TEST_F(TlsLayerTest, FailedReloadKeepsTheCurrentCertificate) {
  auto factory = Factory();
  pki_.Issue("server", Leaf("renewed.test"));
  listener_.keyfile = pki_.Path("missing.key");  // the factory keeps its own copy: unaffected
  const std::string key = pki_.Path("server.key");
  ASSERT_EQ(std::remove(key.c_str()), 0);
  const absl::Status status = factory->Reload();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("keyfile"), std::string_view::npos) << status;
  auto peer = Connect(*factory);
  Pump(*peer);
  EXPECT_TRUE(peer->layer->open());
}

TEST_F(TlsLayerTest, TimeoutCountedOnlyWhileTheHandshakeRuns) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  SSL_do_handshake(peer->client);  // ClientHello only, never pumped
  peer->layer->CountTimeout(counters_);
  EXPECT_EQ(counters_.tls_failed_timeout.Load(), 1u);
  auto open = Connect(*factory);
  Pump(*open);
  open->layer->CountTimeout(counters_);
  EXPECT_EQ(counters_.tls_failed_timeout.Load(), 1u);
}

TEST_F(TlsLayerTest, MemoryEstimateShrinksOnceOpen) {
  auto factory = Factory();
  auto peer = Connect(*factory);
  EXPECT_EQ(peer->layer->memory_bytes(), TlsLayer::kHandshakeBytes);
  Pump(*peer);
  EXPECT_EQ(peer->layer->memory_bytes(), TlsLayer::kIdleBytes);
}

// Through net::Transport as a listener builds it: the TLS layer as the whole stack.
TEST_F(TlsLayerTest, ListenerFactoryStacksTheTlsLayer) {
  absl::StatusOr<std::unique_ptr<net::TransportFactory>> factory =
      listener::MakeTransportFactory(listener_, 1 << 20);
  ASSERT_TRUE(factory.ok()) << factory.status();
  ASSERT_NE(*factory, nullptr);
  std::unique_ptr<net::Transport> transport = (*factory)->Make();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* client = SSL_new(ctx);
  BIO* to_client = BIO_new(BIO_s_mem());
  BIO* from_client = BIO_new(BIO_s_mem());
  SSL_set_bio(client, to_client, from_client);
  SSL_set_connect_state(client);
  ByteBuffer app;
  for (int round = 0; round < 10 && !transport->open(); ++round) {
    SSL_do_handshake(client);
    char buffer[8192];
    const int n = BIO_read(from_client, buffer, sizeof(buffer));
    if (n <= 0) break;
    ASSERT_EQ(transport->Receive(std::span<const uint8_t>(reinterpret_cast<uint8_t*>(buffer),
                                                          static_cast<size_t>(n)),
                                 app, counters_),
              Result::kOk);
    BIO_write(to_client, transport->wire().data(), static_cast<int>(transport->wire().size()));
    transport->wire().clear();
  }
  EXPECT_TRUE(transport->open());
  EXPECT_FALSE(transport->peer().tls_description.empty());
  EXPECT_TRUE((*factory)->Reload().ok());
  SSL_free(client);
  SSL_CTX_free(ctx);
}

TEST_F(TlsLayerTest, ConfigurationErrorsNameTheListenerAndTheKey) {
  struct Case {
    std::string what;
    std::function<void(ListenerConfig&)> change;
    std::string key;
  };
  const std::vector<Case> cases = {
      {"unreadable certfile", [&](ListenerConfig& l) { l.certfile = pki_.Path("none.crt"); },
       "certfile"},
      {"unreadable keyfile", [&](ListenerConfig& l) { l.keyfile = pki_.Path("none.key"); },
       "keyfile"},
      {"key of another certificate", [&](ListenerConfig& l) { l.keyfile = pki_.Path("alice.key"); },
       "keyfile"},
      {"certfile not PEM", [&](ListenerConfig& l) { l.certfile = pki_.Path("server.key"); },
       "certfile"},
      {"unreadable cafile", [&](ListenerConfig& l) { l.cafile = pki_.Path("none.pem"); }, "cafile"},
      {"bad cipher list", [](ListenerConfig& l) { l.ciphers = "NOT-A-CIPHER"; }, "ciphers"},
      {"bad suites", [](ListenerConfig& l) { l.ciphersuites = "TLS_NOPE"; }, "ciphersuites"},
      {"bad version", [](ListenerConfig& l) { l.tls_version = "tlsv1.1"; }, "tls_version"},
      {"required without cafile", [](ListenerConfig& l) { l.require_certificate = true; },
       "cafile"},
  };
  for (const Case& c : cases) {
    ListenerConfig listener = listener_;
    c.change(listener);
    absl::StatusOr<std::shared_ptr<LayerFactory>> factory = LayerFactory::Create(listener);
    ASSERT_FALSE(factory.ok()) << c.what;
    const std::string message(factory.status().message());
    EXPECT_NE(message.find("listener mqtts:8883: " + c.key + ":"), std::string::npos)
        << c.what << ": " << message;
  }
}

TEST_F(TlsLayerTest, CheckListenerDescribesTheCertificate) {
  RequireCertificates();
  absl::StatusOr<std::string> text = CheckListener(listener_);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_NE(text->find("CN=broker.test"), std::string::npos) << *text;
  EXPECT_NE(text->find("expires "), std::string::npos) << *text;
  EXPECT_NE(text->find("key matches"), std::string::npos) << *text;
  EXPECT_NE(text->find("1 CA certificate(s)"), std::string::npos) << *text;
}

TEST_F(TlsLayerTest, CheckListenerRefusesAnExpiredServerCertificate) {
  pki_.Issue("server", Dated("broker.test", -86400 * 10, -60));
  absl::StatusOr<std::string> text = CheckListener(listener_);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("expired"), std::string_view::npos) << text.status();
  // Start-up only warns: the factory is made.
  EXPECT_TRUE(LayerFactory::Create(listener_).ok());
}

// The layer's invariants (every received byte consumed, nothing left in the BIO, a failure
// closes) hold on hostile input: a real ClientHello and real records with random bytes changed,
// delivered in random chunks. Deterministic (fixed seed), so a failure reproduces.
TEST_F(TlsLayerTest, MutatedHandshakesAndRecordsNeverBreakTheLayer) {
  auto factory = Factory();
  std::mt19937 random(14);
  auto mutate_and_feed = [&](net::TransportLayer& layer, ByteBuffer wire) {
    const int changes = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < changes && !wire.empty(); ++i) {
      wire[random() % wire.size()] = static_cast<uint8_t>(random());
    }
    ByteBuffer up;
    net::PeerInfo peer;
    for (size_t offset = 0; offset < wire.size();) {
      const size_t size = std::min<size_t>(1 + random() % 300, wire.size() - offset);
      ByteBuffer down;
      const Result result = layer.Receive(std::span<const uint8_t>(wire.data() + offset, size),
                                          up, down, peer, counters_);
      offset += size;
      if (result == Result::kClose) {
        EXPECT_FALSE(layer.close_reason().empty());
        ByteBuffer after;
        EXPECT_EQ(layer.Receive(std::span<const uint8_t>(wire.data(), 1), up, after, peer,
                                counters_),
                  Result::kClose);  // stays closed
        return;
      }
    }
  };
  auto client_bytes = [](Peer& peer) {
    ByteBuffer wire;
    char buffer[4096];
    int n;
    while ((n = BIO_read(peer.from_client, buffer, sizeof(buffer))) > 0) {
      wire.insert(wire.end(), buffer, buffer + n);
    }
    return wire;
  };
  for (int i = 0; i < 300; ++i) {
    auto peer = Connect(*factory);
    SSL_do_handshake(peer->client);
    ERR_clear_error();
    mutate_and_feed(*peer->layer, client_bytes(*peer));  // a mutated ClientHello
  }
  for (int i = 0; i < 100; ++i) {
    auto peer = Connect(*factory);
    Pump(*peer);
    ASSERT_TRUE(peer->layer->open());
    ClientWrite(*peer, std::string(1 + random() % 3000, 'r'));
    mutate_and_feed(*peer->layer, client_bytes(*peer));  // a mutated application record
  }
  EXPECT_GT(counters_.tls_record_errors.Load(), 0u);
}

TEST(KernelTlsProbe, AnswersWithAReason) {
  std::string detail;
  const bool available = KernelTlsAvailable(&detail);
  EXPECT_FALSE(detail.empty());
  if (!available) {
    EXPECT_EQ(detail.find("probe not run"), std::string::npos) << detail;
  }
}

}  // namespace
}  // namespace ringmq::tls
