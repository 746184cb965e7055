// proxy::ProxyLayer on its own (header in pieces, header and CONNECT in one receive, refusals
// counted by cause, pass-through) and under net::Connection: the header's address takes the
// per-address count before the CONNECT is admitted, and the connect timeout counts a header
// that never came.
#include "proxy/layer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connect/address_table.h"
#include "listener/listener.h"
#include "mqtt/codec.h"
#include "net/connection.h"

namespace ringmq::proxy {
namespace {

using Bytes = std::vector<uint8_t>;
using Result = net::TransportLayer::Result;

Bytes Raw(std::string_view text) { return Bytes(text.begin(), text.end()); }
Bytes Joined(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Bytes Of(const ByteBuffer& buffer) { return Bytes(buffer.begin(), buffer.end()); }

Bytes Connect(std::string client_id) {
  mqtt::Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = 4;
  connect.clean_session = true;
  connect.keepalive_s = 30;
  connect.client_id = std::move(client_id);
  Bytes bytes(mqtt::EncodedSize(mqtt::Packet(connect)));
  mqtt::Encode(mqtt::Packet(connect), bytes);
  return bytes;
}

Bytes V2Tcp4(const Bytes& tlvs = {}) {
  Bytes out(std::begin(kV2Signature), std::end(kV2Signature));
  const Bytes block = Joined({203, 0, 113, 9, 192, 0, 2, 1, 0xC3, 0x50, 0x07, 0x5B}, tlvs);
  out.insert(out.end(), {0x21, 0x11, static_cast<uint8_t>(block.size() >> 8),
                         static_cast<uint8_t>(block.size())});
  return Joined(out, block);
}

std::string SourceName(const net::PeerInfo& peer) {
  if (!peer.source.has_value() || peer.source->ss_family != AF_INET) return "none";
  const auto& v4 = reinterpret_cast<const sockaddr_in&>(*peer.source);
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
  return std::string(text) + ":" + std::to_string(ntohs(v4.sin_port));
}

class ProxyLayerTest : public ::testing::Test {
 protected:
  Result Feed(const Bytes& bytes) { return layer_.Receive(bytes, up_, down_, peer_, counters_); }

  ProxyLayer layer_{ProxyProtocol::kAny};
  ByteBuffer up_;
  ByteBuffer down_;
  net::PeerInfo peer_;
  metrics::ShardCounters counters_;
};

TEST_F(ProxyLayerTest, HeaderAndConnectInOneReceive) {
  const Bytes connect = Connect("a");
  EXPECT_EQ(Feed(Joined(Raw("PROXY TCP4 10.9.8.7 10.0.0.1 40000 1883\r\n"), connect)), Result::kOk);
  EXPECT_TRUE(layer_.open());
  EXPECT_EQ(Of(up_), connect);
  EXPECT_TRUE(down_.empty());
  EXPECT_EQ(SourceName(peer_), "10.9.8.7:40000");
  EXPECT_EQ(counters_.proxy_header_v1.Load(), 1u);
  EXPECT_EQ(layer_.memory_bytes(), 0u);
}

TEST_F(ProxyLayerTest, ByteAtATimeThenEverythingPassesUpUnchanged) {
  const Bytes header = V2Tcp4();
  const Bytes after = Joined(Connect("b"), Bytes{0xC0, 0x00});
  const Bytes wire = Joined(header, after);
  for (size_t i = 0; i < wire.size(); ++i) {
    ASSERT_EQ(Feed(Bytes{wire[i]}), Result::kOk) << i;
    EXPECT_EQ(layer_.open(), i + 1 >= header.size()) << i;
    if (!layer_.open()) {
      EXPECT_TRUE(up_.empty()) << i;
      EXPECT_LE(layer_.memory_bytes(), kMaxHeaderBytes);
    }
  }
  EXPECT_EQ(Of(up_), after);
  EXPECT_EQ(SourceName(peer_), "203.0.113.9:50000");
  EXPECT_EQ(counters_.proxy_header_v2.Load(), 1u);
  EXPECT_EQ(layer_.memory_bytes(), 0u);  // the header's buffer is released once open
  // Send is a pass-through.
  ByteBuffer down;
  layer_.Send(Raw("CONNACK"), down);
  EXPECT_EQ(Of(down), Raw("CONNACK"));
}

TEST_F(ProxyLayerTest, HeaderSplitWithDataInTheLastPiece) {
  const Bytes header = V2Tcp4();
  const Bytes connect = Connect("c");
  EXPECT_EQ(Feed(Bytes(header.begin(), header.begin() + 20)), Result::kOk);
  EXPECT_FALSE(layer_.open());
  // A large last piece: more than the parser could want, so the layer must not buffer it all.
  Bytes rest(header.begin() + 20, header.end());
  rest = Joined(rest, connect);
  const Bytes filler(3 * kMaxHeaderBytes, 0x42);
  rest = Joined(rest, filler);
  EXPECT_EQ(Feed(rest), Result::kOk);
  EXPECT_TRUE(layer_.open());
  EXPECT_EQ(Of(up_), Joined(connect, filler));
}

TEST_F(ProxyLayerTest, PlainMqttIsRefusedWithoutAReplyAndCounted) {
  EXPECT_EQ(Feed(Connect("plain")), Result::kClose);
  EXPECT_TRUE(up_.empty());
  EXPECT_TRUE(down_.empty());
  EXPECT_FALSE(peer_.source.has_value());
  EXPECT_EQ(counters_.proxy_refused_missing.Load(), 1u);
  EXPECT_EQ(Feed(Raw("PROXY UNKNOWN\r\n")), Result::kClose);  // refused stays refused
  EXPECT_EQ(counters_.proxy_refused_missing.Load(), 1u);
  EXPECT_EQ(layer_.memory_bytes(), 0u);
}

TEST_F(ProxyLayerTest, EachRefusalIsCountedByCause) {
  struct Case {
    ProxyProtocol accept;
    Bytes bytes;
    const metrics::Counter* counter;
  };
  metrics::ShardCounters counters;
  Bytes too_large = V2Tcp4();
  too_large[14] = 0x7F;
  Bytes version_3 = V2Tcp4();
  version_3[12] = 0x31;
  const Case cases[] = {
      {ProxyProtocol::kV1, Raw("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"),
       &counters.proxy_refused_malformed_v1},
      {ProxyProtocol::kV2, version_3, &counters.proxy_refused_malformed_v2},
      {ProxyProtocol::kV1, V2Tcp4(), &counters.proxy_refused_unsupported},
      {ProxyProtocol::kV2, Raw("PROXY UNKNOWN\r\n"), &counters.proxy_refused_unsupported},
      {ProxyProtocol::kAny, too_large, &counters.proxy_refused_too_large},
      {ProxyProtocol::kAny, Raw("GET / HTTP/1.1\r\n"), &counters.proxy_refused_missing},
  };
  uint64_t expected_total = 0;
  for (const Case& c : cases) {
    ProxyLayer layer(c.accept);
    ByteBuffer up;
    ByteBuffer down;
    net::PeerInfo peer;
    const uint64_t before = c.counter->Load();
    EXPECT_EQ(layer.Receive(c.bytes, up, down, peer, counters), Result::kClose);
    EXPECT_EQ(c.counter->Load(), before + 1);
    EXPECT_TRUE(down.empty());
    ++expected_total;
  }
  EXPECT_EQ(counters.proxy_refused_malformed_v1.Load() +
                counters.proxy_refused_malformed_v2.Load() +
                counters.proxy_refused_unsupported.Load() +
                counters.proxy_refused_too_large.Load() + counters.proxy_refused_missing.Load(),
            expected_total);
}

TEST_F(ProxyLayerTest, LocalAndUnknownKeepTheSocketAddress) {
  EXPECT_EQ(Feed(Raw("PROXY UNKNOWN\r\n")), Result::kOk);
  EXPECT_TRUE(layer_.open());
  EXPECT_FALSE(peer_.source.has_value());
  EXPECT_EQ(counters_.proxy_header_local.Load(), 1u);
}

TEST_F(ProxyLayerTest, TheProxysTlsTlvDescribesTheConnectionButIsNoIdentity) {
  Bytes ssl = {0x03, 0, 0, 0, 0};  // PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, verified
  for (const auto& [type, text] : {std::pair<uint8_t, std::string>{0x21, "TLSv1.3"},
                                   {0x22, "device-17"},
                                   {0x23, "TLS_AES_128_GCM_SHA256"}}) {
    ssl.insert(ssl.end(), {type, 0, static_cast<uint8_t>(text.size())});
    ssl.insert(ssl.end(), text.begin(), text.end());
  }
  Bytes tlv = {0x20, 0, static_cast<uint8_t>(ssl.size())};
  EXPECT_EQ(Feed(V2Tcp4(Joined(tlv, ssl))), Result::kOk);
  EXPECT_EQ(peer_.tls_description,
            "TLSv1.3 TLS_AES_128_GCM_SHA256 (at the proxy, client certificate CN=device-17 "
            "verified)");
  EXPECT_TRUE(peer_.certificate_identity.empty());
}

TEST_F(ProxyLayerTest, OpenTimeoutIsCounted) {
  EXPECT_EQ(Feed(Raw("PROXY TCP4 1.2")), Result::kOk);
  layer_.CountTimeout(counters_);
  EXPECT_EQ(counters_.proxy_timeout.Load(), 1u);
}

TEST(ProxyListenerTest, TheFactoryPutsTheLayerAtTheBottom) {
  ListenerConfig listener;
  listener.port = 1884;
  listener.proxy_protocol = ProxyProtocol::kV1;
  absl::StatusOr<std::unique_ptr<net::TransportFactory>> factory =
      listener::MakeTransportFactory(listener, 1 << 20);
  ASSERT_TRUE(factory.ok()) << factory.status();
  ASSERT_NE(*factory, nullptr);
  std::unique_ptr<net::Transport> transport = (*factory)->Make();
  metrics::ShardCounters counters;
  ByteBuffer app;
  EXPECT_EQ(transport->Receive(Joined(Raw("PROXY TCP4 10.1.1.1 10.0.0.1 5 6\r\n"), Raw("mqtt")),
                               app, counters),
            Result::kOk);
  EXPECT_TRUE(transport->open());
  EXPECT_EQ(Of(app), Raw("mqtt"));
  listener.proxy_protocol = ProxyProtocol::kOff;
  factory = listener::MakeTransportFactory(listener, 1 << 20);
  ASSERT_TRUE(factory.ok());
  EXPECT_EQ(*factory, nullptr);  // plain TCP: no transport at all
}

// --- under net::Connection ---------------------------------------------------------------------

class ServingSink final : public net::PacketSink {
 public:
  ConnectAction OnConnect(net::Connection& connection, const mqtt::Connect&) override {
    connection.SendConnack(false);
    return ConnectAction::kServe;
  }
  void OnPacket(net::Connection&, const mqtt::Packet&) override {}
  void OnClosing(net::Connection&) override {}
};

sockaddr_storage Ipv4(const char* text) {
  sockaddr_storage address{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(address);
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, text, &v4.sin_addr);
  return address;
}

class ProxyConnectionTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kNowMs = 1'000;
  static constexpr int kFd = 9;
  ProxyConnectionTest() {
    context_.connected_clients = &connected_;
    context_.shutting_down = &shutting_down_;
    context_.counters = &counters_;
    context_.sink = &sink_;
    context_.addresses = &addresses_;
    context_.policy.max_connections_per_address = 1;
  }
  // A connection as the shard makes one for a socket from the proxy at 127.0.0.1.
  std::unique_ptr<net::Connection> Accept() {
    auto connection = std::make_unique<net::Connection>();
    connection->Open(kFd, kNowMs);  // no socket: the connection does no I/O
    const uint32_t slot = addresses_.SlotOf(Ipv4("127.0.0.1"));
    addresses_.Open(slot);
    connection->set_address_slot(slot);
    std::vector<std::unique_ptr<net::TransportLayer>> layers;
    layers.push_back(std::make_unique<ProxyLayer>(ProxyProtocol::kV1));
    connection->SetTransport(std::make_unique<net::Transport>(std::move(layers)), context_);
    return connection;
  }
  uint32_t Count(const char* address) {
    return addresses_.Connections(addresses_.SlotOf(Ipv4(address)));
  }

  std::atomic<uint32_t> connected_{0};
  std::atomic<bool> shutting_down_{false};
  metrics::ShardCounters counters_;
  connect::AddressTable addresses_;
  ServingSink sink_;
  net::ConnectionContext context_;
};

TEST_F(ProxyConnectionTest, PerAddressLimitsSeeTheHeadersAddressNotTheProxys) {
  auto first = Accept();
  auto second = Accept();
  auto third = Accept();
  EXPECT_EQ(Count("127.0.0.1"), 3u);
  first->OnReceive(Joined(Raw("PROXY TCP4 10.0.0.2 10.0.0.1 40000 1883\r\n"), Connect("first")),
                   kNowMs, context_);
  EXPECT_EQ(first->state(), net::Connection::State::kOpen);
  EXPECT_EQ(first->PeerName(), "10.0.0.2:40000");  // what its log lines say
  EXPECT_EQ(Count("127.0.0.1"), 2u);
  EXPECT_EQ(Count("10.0.0.2"), 1u);
  // The same client address again: over max_connections_per_address = 1.
  second->OnReceive(Joined(Raw("PROXY TCP4 10.0.0.2 10.0.0.1 40001 1883\r\n"), Connect("second")),
                    kNowMs, context_);
  EXPECT_EQ(second->state(), net::Connection::State::kClosing);
  EXPECT_EQ(counters_.connect[static_cast<size_t>(connect::Reason::kAddressConnectionLimit)].Load(),
            1u);
  // Another client address behind the same proxy.
  third->OnReceive(Joined(Raw("PROXY TCP4 10.0.0.3 10.0.0.1 40002 1883\r\n"), Connect("third")),
                   kNowMs, context_);
  EXPECT_EQ(third->state(), net::Connection::State::kOpen);
  EXPECT_EQ(Count("127.0.0.1"), 0u);
  EXPECT_EQ(counters_.proxy_header_v1.Load(), 3u);
}

TEST_F(ProxyConnectionTest, ConnectTimeoutWithoutAHeaderCountsAProxyTimeout) {
  auto connection = Accept();
  connection->OnReceive(Raw("PROXY TCP4 10.0"), kNowMs, context_);
  ASSERT_EQ(connection->state(), net::Connection::State::kAwaitConnect);
  connection->OnDeadline(connection->DeadlineMs(), context_);
  EXPECT_EQ(connection->state(), net::Connection::State::kClosing);
  EXPECT_EQ(counters_.proxy_timeout.Load(), 1u);
  EXPECT_EQ(counters_.connect_timeout.Load(), 1u);
  // With the header in, a missing CONNECT is no PROXY timeout.
  auto late = Accept();
  late->OnReceive(Raw("PROXY UNKNOWN\r\n"), kNowMs, context_);
  late->OnDeadline(late->DeadlineMs(), context_);
  EXPECT_EQ(counters_.proxy_timeout.Load(), 1u);
  EXPECT_EQ(counters_.connect_timeout.Load(), 2u);
}

TEST_F(ProxyConnectionTest, APlainClientIsClosedWithoutAReply) {
  auto connection = Accept();
  connection->OnReceive(Connect("direct"), kNowMs, context_);
  EXPECT_EQ(connection->state(), net::Connection::State::kClosing);
  EXPECT_TRUE(connection->NextSend().empty());
  EXPECT_TRUE(connection->ReadyToClose());
  EXPECT_EQ(counters_.proxy_refused_missing.Load(), 1u);
  EXPECT_EQ(connected_.load(), 0u);
}

}  // namespace
}  // namespace ringmq::proxy
