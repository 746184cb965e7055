// net::Connection over a TLS transport made by the listener factory, with a client SSL in the
// test: use_identity_as_username (the certificate's identity replaces the CONNECT's user name,
// no certificate -> CONNACK 0x05), and the connect timeout of a stalled handshake counted as a
// TLS timeout.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "listener/listener.h"
#include "mqtt/codec.h"
#include "net/connection.h"
#include "test_pki.h"

namespace ringmq::tls {
namespace {

using Bytes = std::vector<uint8_t>;
using testing::Leaf;
using testing::TestPki;
constexpr int kFd = 9;

class RecordingSink final : public net::PacketSink {
 public:
  ConnectAction OnConnect(net::Connection& connection, const mqtt::Connect& connect) override {
    ++connects;
    user_name = connect.user_name ? std::optional<std::string>(*connect.user_name) : std::nullopt;
    had_password = connect.password.has_value();
    connection.SendConnack(false);
    return ConnectAction::kServe;
  }
  void OnPacket(net::Connection&, const mqtt::Packet&) override {}
  void OnClosing(net::Connection&) override {}
  int connects = 0;
  std::optional<std::string> user_name;
  bool had_password = false;
};

class TlsConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.Issue("server", Leaf("broker.test", "DNS:localhost"));
    pki_.Issue("alice", Leaf("alice"));
    ListenerConfig listener;
    listener.port = 8883;
    listener.certfile = pki_.Path("server.crt");
    listener.keyfile = pki_.Path("server.key");
    listener.cafile = pki_.ca_file();
    listener.use_identity_as_username = true;
    context_.listeners = {ListenerConfig{}, listener};
    context_.connected_clients = &connected_;
    context_.shutting_down = &shutting_down_;
    counters_.SetListenerCount(2);
    context_.counters = &counters_;
    context_.sink = &sink_;
    absl::StatusOr<std::unique_ptr<net::TransportFactory>> factory =
        listener::MakeTransportFactory(listener, 1 << 20);
    ASSERT_TRUE(factory.ok()) << factory.status();
    factory_ = std::move(*factory);
    connection_.Open(kFd, 1'000);
    connection_.set_listener(1);
    connection_.SetTransport(factory_->Make(), context_);
  }
  void TearDown() override {
    SSL_free(client_);
    SSL_CTX_free(client_ctx_);
  }

  void StartClient(bool with_certificate) {
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(client_ctx_, pki_.ca_file().c_str(), nullptr);
    if (with_certificate) {
      SSL_CTX_use_certificate_file(client_ctx_, pki_.Path("alice.crt").c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(client_ctx_, pki_.Path("alice.key").c_str(), SSL_FILETYPE_PEM);
    }
    client_ = SSL_new(client_ctx_);
    to_client_ = BIO_new(BIO_s_mem());
    from_client_ = BIO_new(BIO_s_mem());
    SSL_set_bio(client_, to_client_, from_client_);
    SSL_set_connect_state(client_);
  }

  // Client bytes to the connection, the connection's sends to the client, until quiet.
  void Pump() {
    for (int round = 0; round < 20; ++round) {
      if (!SSL_is_init_finished(client_)) SSL_do_handshake(client_);
      ERR_clear_error();
      Bytes wire;
      char buffer[8192];
      int n;
      while ((n = BIO_read(from_client_, buffer, sizeof(buffer))) > 0) {
        wire.insert(wire.end(), buffer, buffer + n);
      }
      if (!wire.empty()) connection_.OnReceive(wire, 1'000, context_);
      bool sent = false;
      for (int i = 0; i < 8; ++i) {
        const std::span<const uint8_t> bytes = connection_.NextSend();
        if (bytes.empty()) break;
        BIO_write(to_client_, bytes.data(), static_cast<int>(bytes.size()));
        connection_.OnSent(bytes.size());
        sent = true;
      }
      if (wire.empty() && !sent) return;
    }
  }

  Bytes ClientRead() {
    Bytes bytes;
    uint8_t buffer[4096];
    int n;
    while ((n = SSL_read(client_, buffer, sizeof(buffer))) > 0) {
      bytes.insert(bytes.end(), buffer, buffer + n);
    }
    ERR_clear_error();
    return bytes;
  }

  void SendConnect() {
    mqtt::Connect connect;
    connect.protocol_level = 4;
    connect.keepalive_s = 30;
    connect.client_id = "tls-client";
    connect.user_name = "bob";
    connect.password = "not-checked";
    Bytes bytes(mqtt::EncodedSize(mqtt::Packet(connect)));
    mqtt::Encode(mqtt::Packet(connect), bytes);
    ASSERT_EQ(SSL_write(client_, bytes.data(), static_cast<int>(bytes.size())),
              static_cast<int>(bytes.size()));
  }

  TestPki pki_;
  std::unique_ptr<net::TransportFactory> factory_;
  std::atomic<uint32_t> connected_{0};
  std::atomic<bool> shutting_down_{false};
  metrics::ShardCounters counters_;
  RecordingSink sink_;
  net::ConnectionContext context_;
  net::Connection connection_;
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ = nullptr;
  BIO* to_client_ = nullptr;
  BIO* from_client_ = nullptr;
};

TEST_F(TlsConnectionTest, CertificateIdentityReplacesTheUserNameAndPassword) {
  StartClient(/*with_certificate=*/true);
  Pump();
  ASSERT_TRUE(connection_.transport()->open());
  SendConnect();
  Pump();
  ASSERT_EQ(sink_.connects, 1);
  EXPECT_EQ(sink_.user_name, "alice");
  EXPECT_FALSE(sink_.had_password);
  EXPECT_EQ(ClientRead(), (Bytes{0x20, 0x02, 0x00, 0x00}));
}

TEST_F(TlsConnectionTest, NoCertificateIsRefusedNotAuthorized) {
  StartClient(/*with_certificate=*/false);
  Pump();
  ASSERT_TRUE(connection_.transport()->open());  // the certificate is optional on this listener
  SendConnect();
  Pump();
  EXPECT_EQ(sink_.connects, 0);
  EXPECT_EQ(ClientRead(), (Bytes{0x20, 0x02, 0x00, 0x05}));  // MQTT-3.2.2: 0x05 not authorized
  EXPECT_EQ(counters_.connect[static_cast<size_t>(connect::Reason::kNoCertificateIdentity)].Load(),
            1u);
  EXPECT_EQ(connection_.state(), net::Connection::State::kClosing);
}

TEST_F(TlsConnectionTest, StalledHandshakeIsClosedByTheConnectTimeoutAndCounted) {
  StartClient(/*with_certificate=*/true);
  SSL_do_handshake(client_);  // the ClientHello is never delivered
  connection_.OnDeadline(connection_.DeadlineMs(), context_);
  EXPECT_EQ(connection_.state(), net::Connection::State::kClosing);
  EXPECT_EQ(counters_.connect_timeout.Load(), 1u);
  EXPECT_EQ(counters_.tls_failed_timeout.Load(), 1u);
}

TEST_F(TlsConnectionTest, ConnectTimeoutAfterTheHandshakeIsNotATlsTimeout) {
  StartClient(/*with_certificate=*/true);
  Pump();
  ASSERT_TRUE(connection_.transport()->open());
  connection_.OnDeadline(connection_.DeadlineMs(), context_);
  EXPECT_EQ(counters_.connect_timeout.Load(), 1u);
  EXPECT_EQ(counters_.tls_failed_timeout.Load(), 0u);
}

}  // namespace
}  // namespace ringmq::tls
