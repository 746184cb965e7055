// Unit tests of ringmq-bench's client transports (bench/loadgen/transport.h): the WebSocket
// client's upgrade and framing against hand-made server bytes (split anywhere, fragmented,
// pings, Close, refusals), and the TLS client and the stack against an in-memory OpenSSL server
// with a certificate made here (OpenSSL API, nothing committed).
#include "transport.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace ringmq::bench::transport {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes Take(wire::Buffer& b) {
  Bytes out(b.data(), b.data() + b.size());
  b.Clear();
  return out;
}

std::string Text(const Bytes& b) { return std::string(b.begin(), b.end()); }

// A server frame (never masked, RFC6455-5.1).
Bytes ServerFrame(uint8_t first_byte, const Bytes& payload) {
  Bytes f = {first_byte};
  if (payload.size() < 126) {
    f.push_back(static_cast<uint8_t>(payload.size()));
  } else {
    f.push_back(126);
    f.push_back(static_cast<uint8_t>(payload.size() >> 8));
    f.push_back(static_cast<uint8_t>(payload.size()));
  }
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// Decodes one client frame at the start of `wire`: opcode, unmasked payload; checks FIN and the
// mask bit (RFC6455-5.3: every client frame is masked).
struct ClientFrame {
  uint8_t opcode = 0;
  Bytes payload;
  size_t size = 0;
};
ClientFrame DecodeClientFrame(const Bytes& wire) {
  ClientFrame f;
  EXPECT_GE(wire.size(), 6u);
  EXPECT_EQ(wire[0] & 0x80, 0x80) << "FIN";
  EXPECT_EQ(wire[1] & 0x80, 0x80) << "mask bit";
  f.opcode = wire[0] & 0x0F;
  uint64_t length = wire[1] & 0x7F;
  size_t pos = 2;
  if (length == 126) {
    length = (uint64_t{wire[2]} << 8) | wire[3];
    pos = 4;
  } else if (length == 127) {
    length = 0;
    for (int i = 2; i < 10; ++i) length = (length << 8) | wire[i];
    pos = 10;
  }
  const uint8_t key[4] = {wire[pos], wire[pos + 1], wire[pos + 2], wire[pos + 3]};
  pos += 4;
  EXPECT_GE(wire.size(), pos + length);
  f.payload.assign(wire.begin() + static_cast<long>(pos),
                   wire.begin() + static_cast<long>(pos + length));
  Mask(f.payload.data(), f.payload.size(), key);
  f.size = pos + length;
  return f;
}

TEST(WebSocketClient, AcceptKeyOfRfc6455Example) {
  // RFC6455-1.3: the handshake example.
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketClient, ClientFramesAreMaskedInEveryLengthForm) {
  for (size_t size : {0u, 1u, 125u, 126u, 65535u, 65536u, 70000u}) {
    Bytes payload(size);
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<uint8_t>(i * 7);
    wire::Buffer out;
    EncodeClientFrame(kWsBinary, payload.data(), payload.size(), out);
    const Bytes wire = Take(out);
    const ClientFrame f = DecodeClientFrame(wire);
    EXPECT_EQ(f.opcode, kWsBinary);
    EXPECT_EQ(f.payload, payload) << size;
    EXPECT_EQ(f.size, wire.size());
    const size_t header = size < 126 ? 6 : size <= 65535 ? 8 : 14;
    EXPECT_EQ(wire.size(), header + size);
  }
}

TEST(WebSocketClient, SendSplitsIntoFramesOfAtMost64KiB) {
  // MQTT-6.0.0-2: packets may span frames; a server bounds the frames it takes.
  WebSocketClient client("127.0.0.1:1883", "/mqtt", 1 << 20);
  Bytes payload(150'000);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 13);
  wire::Buffer out;
  ASSERT_TRUE(client.Send(payload.data(), payload.size(), out));
  const Bytes wire = Take(out);
  Bytes joined;
  std::vector<size_t> sizes;
  for (size_t pos = 0; pos < wire.size();) {
    const ClientFrame f =
        DecodeClientFrame(Bytes(wire.begin() + static_cast<long>(pos), wire.end()));
    EXPECT_EQ(f.opcode, kWsBinary);
    sizes.push_back(f.payload.size());
    joined.insert(joined.end(), f.payload.begin(), f.payload.end());
    pos += f.size;
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{65536, 65536, 150'000 - 2 * 65536}));
  EXPECT_EQ(joined, payload);
}

// A client that sent its upgrade; `accept` is the Sec-WebSocket-Accept its request calls for.
struct Upgraded {
  WebSocketClient client{"127.0.0.1:1883", "/mqtt", 1 << 20};
  std::string request;
  std::string accept;
  Upgraded() {
    wire::Buffer down;
    EXPECT_TRUE(client.Start(down));
    request = Text(Take(down));
    const size_t at = request.find("Sec-WebSocket-Key: ");
    EXPECT_NE(at, std::string::npos);
    const size_t end = request.find("\r\n", at);
    accept = WebSocketAccept(request.substr(at + 19, end - at - 19));
  }
  std::string Response(std::string_view protocol = "mqtt") const {
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: " +
           accept + "\r\nSec-WebSocket-Protocol: " + std::string(protocol) + "\r\n\r\n";
  }
};

TEST(WebSocketClient, UpgradeRequestAsksForMqtt) {
  Upgraded u;
  EXPECT_EQ(u.request.rfind("GET /mqtt HTTP/1.1\r\n", 0), 0u);
  for (const char* header :
       {"Host: 127.0.0.1:1883\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
        "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Protocol: mqtt\r\n"}) {
    EXPECT_NE(u.request.find(header), std::string::npos) << header;
  }
  EXPECT_EQ(u.request.substr(u.request.size() - 4), "\r\n\r\n");
}

TEST(WebSocketClient, ResponseAndFramesSplitAnywhereGoUpInOrder) {
  // The 101, a fragmented message (binary without FIN, a ping between the fragments,
  // continuation with FIN), then a 300-byte frame (16-bit length): fed one byte at a time.
  Upgraded u;
  const std::string response = u.Response();
  Bytes all(response.begin(), response.end());
  const Bytes a = {1, 2, 3}, b = {4, 5}, ping = {'p'};
  Bytes big(300, 9);
  for (const Bytes& f : {ServerFrame(0x02, a), ServerFrame(0x89, ping), ServerFrame(0x80, b),
                         ServerFrame(0x82, big)}) {
    all.insert(all.end(), f.begin(), f.end());
  }
  wire::Buffer up, down;
  for (uint8_t byte : all) ASSERT_TRUE(u.client.Receive(&byte, 1, up, down)) << u.client.error();
  EXPECT_TRUE(u.client.open());
  Bytes expected = {1, 2, 3, 4, 5};
  expected.insert(expected.end(), big.begin(), big.end());
  EXPECT_EQ(Take(up), expected);
  const ClientFrame pong = DecodeClientFrame(Take(down));  // RFC6455-5.5.2
  EXPECT_EQ(pong.opcode, kWsPong);
  EXPECT_EQ(pong.payload, ping);
}

TEST(WebSocketClient, CloseIsAnsweredAndEndsTheLayer) {
  Upgraded u;
  std::string response = u.Response();
  Bytes all(response.begin(), response.end());
  const Bytes close = ServerFrame(0x88, {0x03, 0xE8});  // 1000 normal closure
  all.insert(all.end(), close.begin(), close.end());
  wire::Buffer up, down;
  ASSERT_TRUE(u.client.Receive(all.data(), all.size(), up, down));
  EXPECT_TRUE(u.client.peer_closed());
  const ClientFrame reply = DecodeClientFrame(Take(down));  // RFC6455-5.5.1
  EXPECT_EQ(reply.opcode, kWsClose);
  EXPECT_EQ(reply.payload, (Bytes{0x03, 0xE8}));
}

TEST(WebSocketClient, RefusesWhatRfc6455AndMqttForbid) {
  struct Case {
    const char* name;
    Bytes frame;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"masked server frame RFC6455-5.1", {0x82, 0x81, 1, 2, 3, 4, 5}, "masked"},
      {"text frame MQTT-6.0.0-1", ServerFrame(0x81, {'x'}), "text"},
      {"continuation without a message", ServerFrame(0x80, {1}), "continuation"},
      {"fragmented ping RFC6455-5.5", ServerFrame(0x09, {}), "control"},
      {"RSV bit", ServerFrame(0xC2, {1}), "RSV"},
      {"over the frame limit", {0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0}, "size limit"},
  };
  for (const Case& c : cases) {
    Upgraded u;
    const std::string response = u.Response();
    wire::Buffer up, down;
    ASSERT_TRUE(u.client.Receive(reinterpret_cast<const uint8_t*>(response.data()), response.size(),
                                 up, down));
    EXPECT_FALSE(u.client.Receive(c.frame.data(), c.frame.size(), up, down)) << c.name;
    EXPECT_NE(u.client.error().find(c.error), std::string::npos)
        << c.name << ": " << u.client.error();
  }
}

TEST(WebSocketClient, RefusesABadUpgradeResponse) {
  struct Case {
    std::string response;
    const char* error;
  };
  Upgraded probe;
  const std::vector<Case> cases = {
      {"HTTP/1.1 404 Not Found\r\n\r\n", "refused"},
      {probe.Response("mqttv3.1"), "subprotocol"},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: AAAA\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
       "Sec-WebSocket-Accept"},
      {std::string(9000, 'x'), "8 KiB"},
  };
  for (const Case& c : cases) {
    Upgraded u;
    std::string response = c.response;
    if (c.response == probe.Response("mqttv3.1")) response = u.Response("mqttv3.1");
    wire::Buffer up, down;
    EXPECT_FALSE(u.client.Receive(reinterpret_cast<const uint8_t*>(response.data()),
                                  response.size(), up, down));
    EXPECT_NE(u.client.error().find(c.error), std::string::npos) << u.client.error();
    EXPECT_FALSE(u.client.open());
  }
}

// ---------------------------------------------------------------------------------------------
// TLS against an in-memory OpenSSL server

// A self-signed ECDSA P-256 certificate for 127.0.0.1, written as PEM to a temporary file (the
// client's CA file), with the server's SSL_CTX.
class TlsServer {
 public:
  TlsServer() {
    key_ = EVP_EC_gen("P-256");
    cert_ = X509_new();
    X509_set_version(cert_, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert_), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert_), 3600);
    X509_set_pubkey(cert_, key_);
    X509_NAME* name = X509_get_subject_name(cert_);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("bench test"), -1, -1, 0);
    X509_set_issuer_name(cert_, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert_, cert_, nullptr, nullptr, 0);
    for (const char* ext : {"subjectAltName=IP:127.0.0.1", "basicConstraints=critical,CA:TRUE"}) {
      const std::string e(ext);
      const size_t eq = e.find('=');
      X509_EXTENSION* x =
          X509V3_EXT_conf(nullptr, &v3, e.substr(0, eq).c_str(), e.substr(eq + 1).c_str());
      X509_add_ext(cert_, x, -1);
      X509_EXTENSION_free(x);
    }
    X509_sign(cert_, key_, EVP_sha256());
    char path[] = "/tmp/ringmq-bench-ca-XXXXXX";
    const int fd = mkstemp(path);
    ca_path_ = path;
    FILE* f = fdopen(fd, "w");
    PEM_write_X509(f, cert_);
    fclose(f);
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, cert_);
    SSL_CTX_use_PrivateKey(ctx_, key_);
  }
  ~TlsServer() {
    unlink(ca_path_.c_str());
    SSL_CTX_free(ctx_);
    X509_free(cert_);
    EVP_PKEY_free(key_);
  }
  const std::string& ca_path() const { return ca_path_; }
  SSL_CTX* ctx() const { return ctx_; }

 private:
  EVP_PKEY* key_ = nullptr;
  X509* cert_ = nullptr;
  SSL_CTX* ctx_ = nullptr;
  std::string ca_path_;
};

// One server connection over memory BIOs: Feed client bytes in, Output what it sends.
class ServerConnection {
 public:
  explicit ServerConnection(SSL_CTX* ctx) : ssl_(SSL_new(ctx)) {
    SSL_set_bio(ssl_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_accept_state(ssl_);
  }
  ~ServerConnection() { SSL_free(ssl_); }
  // Client bytes in; returns the plaintext they carried (after the handshake).
  Bytes Feed(wire::Buffer& from_client) {
    BIO_write(SSL_get_rbio(ssl_), from_client.data(), static_cast<int>(from_client.size()));
    from_client.Clear();
    Bytes plain;
    uint8_t buf[4096];
    int n;
    while ((n = SSL_read(ssl_, buf, sizeof buf)) > 0) plain.insert(plain.end(), buf, buf + n);
    return plain;
  }
  void Write(std::string_view plain) {
    ASSERT_EQ(SSL_write(ssl_, plain.data(), static_cast<int>(plain.size())),
              static_cast<int>(plain.size()));
  }
  Bytes Output() {
    Bytes out(BIO_ctrl_pending(SSL_get_wbio(ssl_)));
    if (!out.empty()) BIO_read(SSL_get_wbio(ssl_), out.data(), static_cast<int>(out.size()));
    return out;
  }
  SSL* ssl() const { return ssl_; }

 private:
  SSL* ssl_;
};

std::unique_ptr<TlsClientContext> ClientContext(const TlsServer& server, std::string host,
                                                std::string version = "") {
  TlsOptions o;
  o.cafile = server.ca_path();
  o.host = std::move(host);
  o.version = std::move(version);
  std::string error;
  auto context = TlsClientContext::Create(o, &error);
  EXPECT_NE(context, nullptr) << error;
  return context;
}

// Runs the handshake between `stack` and `server` until the stack opens or fails (bounded).
bool Handshake(Stack& stack, ServerConnection& server, wire::Buffer& app_in) {
  wire::Buffer wire_out;
  if (!stack.Start(wire_out)) return false;
  for (int round = 0; round < 10 && !stack.open(); ++round) {
    server.Feed(wire_out);
    const Bytes reply = server.Output();
    if (reply.empty()) return false;
    if (!stack.Receive(reply.data(), reply.size(), app_in, wire_out)) return false;
  }
  server.Feed(wire_out);  // the client's Finished
  return stack.open();
}

TEST(TlsClient, HandshakeVerifiesTheBrokerAndCarriesBytesBothWays) {
  for (const char* version : {"1.2", "1.3"}) {
    TlsServer server;
    auto context = ClientContext(server, "127.0.0.1", version);
    ServerConnection peer(server.ctx());
    Stack stack;
    stack.Add(std::make_unique<TlsClient>(*context));
    wire::Buffer app_in, app_out, wire_out;
    ASSERT_TRUE(Handshake(stack, peer, app_in)) << stack.error();
    EXPECT_EQ(SSL_version(peer.ssl()),
              std::string(version) == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION);
    app_out.PutBytes(
        "\x10\x0c"
        "MQTT",
        6);
    ASSERT_TRUE(stack.Send(app_out, wire_out));
    EXPECT_TRUE(app_out.empty());
    EXPECT_EQ(Text(peer.Feed(wire_out)), std::string("\x10\x0c"
                                                     "MQTT",
                                                     6));
    peer.Write(std::string_view("\x20\x02\x00\x00", 4));
    const Bytes records = peer.Output();
    // Split in two: the record layer waits for the rest.
    ASSERT_TRUE(stack.Receive(records.data(), 3, app_in, wire_out));
    ASSERT_TRUE(stack.Receive(records.data() + 3, records.size() - 3, app_in, wire_out));
    EXPECT_EQ(Take(app_in), (Bytes{0x20, 0x02, 0x00, 0x00}));
    // close_notify is answered with close_notify (RFC 8446 section 6.1).
    SSL_shutdown(peer.ssl());
    const Bytes goodbye = peer.Output();
    ASSERT_TRUE(stack.Receive(goodbye.data(), goodbye.size(), app_in, wire_out));
    EXPECT_TRUE(stack.peer_closed());
    EXPECT_FALSE(wire_out.empty());
  }
}

TEST(TlsClient, RefusesACertificateForAnotherAddress) {
  TlsServer server;
  auto context = ClientContext(server, "127.0.0.2");
  ServerConnection peer(server.ctx());
  Stack stack;
  stack.Add(std::make_unique<TlsClient>(*context));
  wire::Buffer app_in;
  EXPECT_FALSE(Handshake(stack, peer, app_in));
  EXPECT_NE(stack.error().find("certificate verify failed"), std::string::npos) << stack.error();
}

TEST(Stack, WebSocketOverTlsStartsAfterTheHandshake) {
  // wss: the upgrade request travels inside TLS once the handshake is done; the 101 and a
  // binary frame come back inside TLS records; MQTT bytes go down as a masked frame in a record.
  TlsServer server;
  auto context = ClientContext(server, "127.0.0.1");
  ServerConnection peer(server.ctx());
  Stack stack;
  stack.Add(std::make_unique<TlsClient>(*context));
  stack.Add(std::make_unique<WebSocketClient>("127.0.0.1:8884", "/mqtt", 1 << 20));
  wire::Buffer app_in, app_out, wire_out;
  wire::Buffer start;
  ASSERT_TRUE(stack.Start(start));
  Bytes request;
  for (int round = 0; round < 10 && request.empty(); ++round) {
    request = peer.Feed(start);
    const Bytes reply = peer.Output();
    if (!reply.empty()) {
      ASSERT_TRUE(stack.Receive(reply.data(), reply.size(), app_in, start)) << stack.error();
    }
  }
  const std::string text = Text(request);
  ASSERT_EQ(text.rfind("GET /mqtt HTTP/1.1\r\n", 0), 0u) << text;
  EXPECT_FALSE(stack.open());
  const size_t at = text.find("Sec-WebSocket-Key: ") + 19;
  const std::string accept = WebSocketAccept(text.substr(at, text.find("\r\n", at) - at));
  const Bytes frame = ServerFrame(0x82, {0x20, 0x02, 0x00, 0x00});
  peer.Write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: " +
      accept + "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n" + Text(frame));
  const Bytes records = peer.Output();
  ASSERT_TRUE(stack.Receive(records.data(), records.size(), app_in, wire_out)) << stack.error();
  EXPECT_TRUE(stack.open());
  EXPECT_EQ(Take(app_in), (Bytes{0x20, 0x02, 0x00, 0x00}));
  app_out.PutBytes("\xe0\x00", 2);  // DISCONNECT
  ASSERT_TRUE(stack.Send(app_out, wire_out));
  const ClientFrame sent = DecodeClientFrame(peer.Feed(wire_out));
  EXPECT_EQ(sent.opcode, kWsBinary);
  EXPECT_EQ(sent.payload, (Bytes{0xe0, 0x00}));
}

}  // namespace
}  // namespace ringmq::bench::transport
