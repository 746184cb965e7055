// net::Transport's routing between layers, and net::Connection driving a transport: what a
// PROXY, TLS or WebSocket layer relies on (their own tests are in tests/proxy, tests/tls,
// tests/websocket).
#include "net/transport.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mqtt/codec.h"
#include "net/connection.h"

namespace ringmq::net {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes B(std::string_view text) { return Bytes(text.begin(), text.end()); }

// A toy layer: it opens after the peer says "HI" (answering "HO" of its own), then XORs every
// byte with its key both ways; its goodbye is "BYE"; a byte 0xFF received after it opened is
// refused ("NO" sent, kClose).
class ToyLayer final : public TransportLayer {
 public:
  explicit ToyLayer(uint8_t key) : key_(key) {}
  Result Receive(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down, PeerInfo& peer,
                 metrics::ShardCounters&) override {
    size_t i = 0;
    while (!open_ && i < in.size()) {
      greeting_.push_back(static_cast<char>(in[i++]));
      if (greeting_.size() == 2) {
        if (greeting_ != "HI") return Result::kClose;
        open_ = true;
        Append(down, "HO");
        if (key_ == 1) {
          sockaddr_storage source{};
          source.ss_family = AF_INET;
          peer.source = source;
        }
      }
    }
    for (; i < in.size(); ++i) {
      if (in[i] == 0xFF) {
        Append(down, "NO");
        return Result::kClose;
      }
      up.push_back(in[i] ^ key_);
    }
    return Result::kOk;
  }
  void Send(std::span<const uint8_t> in, ByteBuffer& down) override {
    EXPECT_TRUE(open_);
    for (const uint8_t byte : in) down.push_back(byte ^ key_);
  }
  void Shutdown(ByteBuffer& down) override { Append(down, "BYE"); }
  bool open() const override { return open_; }

 private:
  static void Append(ByteBuffer& down, std::string_view text) {
    down.insert(down.end(), text.begin(), text.end());
  }
  const uint8_t key_;
  std::string greeting_;
  bool open_ = false;
};

Bytes Xor(Bytes bytes, uint8_t key) {
  for (uint8_t& byte : bytes) byte ^= key;
  return bytes;
}

std::unique_ptr<Transport> TwoLayers() {
  std::vector<std::unique_ptr<TransportLayer>> layers;
  layers.push_back(std::make_unique<ToyLayer>(1));  // bottom
  layers.push_back(std::make_unique<ToyLayer>(2));  // top
  return std::make_unique<Transport>(std::move(layers));
}

Bytes TakeWire(Transport& transport) {
  Bytes wire(transport.wire().begin(), transport.wire().end());
  transport.wire().clear();
  return wire;
}

TEST(TransportTest, EachLayerOpensInTurnAndItsOwnBytesGoDownThroughTheLayersBelow) {
  std::unique_ptr<Transport> transport = TwoLayers();
  metrics::ShardCounters counters;
  ByteBuffer app;
  EXPECT_EQ(transport->Receive(B("HI"), app, counters), TransportLayer::Result::kOk);
  EXPECT_EQ(TakeWire(*transport), B("HO"));  // the bottom layer's answer, as is
  EXPECT_FALSE(transport->open());
  EXPECT_TRUE(transport->peer().source.has_value());
  // The top layer's greeting arrives inside the bottom layer; its answer leaves the same way.
  EXPECT_EQ(transport->Receive(Xor(B("HI"), 1), app, counters), TransportLayer::Result::kOk);
  EXPECT_EQ(TakeWire(*transport), Xor(B("HO"), 1));
  EXPECT_TRUE(transport->open());
  EXPECT_TRUE(app.empty());
  EXPECT_EQ(transport->Receive(Xor(Xor(B("MQTT"), 2), 1), app, counters),
            TransportLayer::Result::kOk);
  EXPECT_EQ(Bytes(app.begin(), app.end()), B("MQTT"));
  transport->Send(B("PONG"));
  EXPECT_EQ(TakeWire(*transport), Xor(Xor(B("PONG"), 2), 1));
  transport->Shutdown();
  transport->Shutdown();  // once only
  Bytes goodbyes = Xor(B("BYE"), 1);
  for (const char c : std::string("BYE")) goodbyes.push_back(static_cast<uint8_t>(c));
  EXPECT_EQ(TakeWire(*transport), goodbyes);  // top first, inside the bottom; then the bottom's
}

TEST(TransportTest, GreetingAndDataInOneReceiveAreBothHandled) {
  std::unique_ptr<Transport> transport = TwoLayers();
  metrics::ShardCounters counters;
  ByteBuffer app;
  Bytes wire = B("HI");
  const Bytes inner = Xor(B("HI"), 1);
  wire.insert(wire.end(), inner.begin(), inner.end());
  const Bytes data = Xor(Xor(B("abc"), 2), 1);
  wire.insert(wire.end(), data.begin(), data.end());
  EXPECT_EQ(transport->Receive(wire, app, counters), TransportLayer::Result::kOk);
  EXPECT_TRUE(transport->open());
  EXPECT_EQ(Bytes(app.begin(), app.end()), B("abc"));
}

TEST(TransportTest, ARefusingLayerClosesAndOnlyTheLayersBelowItSayGoodbye) {
  std::unique_ptr<Transport> transport = TwoLayers();
  metrics::ShardCounters counters;
  ByteBuffer app;
  EXPECT_EQ(transport->Receive(B("HX"), app, counters), TransportLayer::Result::kClose);
  EXPECT_TRUE(transport->wire().empty());
  transport->Shutdown();
  // The bottom layer never opened: nobody to say goodbye to above it; it says its own.
  EXPECT_EQ(TakeWire(*transport), B("BYE"));
}

// What a layer passed up before it closed still reaches the layers above: the MQTT DISCONNECT
// in a WebSocket frame ahead of a TLS close_notify in the same read (RFC 8446 §6.1: only data
// after the closure alert is ignored) must not be lost, or the will is published.
TEST(TransportTest, BytesALayerPassedUpBeforeItClosedReachTheTop) {
  std::unique_ptr<Transport> transport = TwoLayers();
  metrics::ShardCounters counters;
  ByteBuffer app;
  ASSERT_EQ(transport->Receive(B("HI"), app, counters), TransportLayer::Result::kOk);
  ASSERT_EQ(transport->Receive(Xor(B("HI"), 1), app, counters), TransportLayer::Result::kOk);
  TakeWire(*transport);
  Bytes wire = Xor(Xor(B("last"), 2), 1);
  wire.push_back(0xFF);  // the bottom layer closes after passing "last" up
  EXPECT_EQ(transport->Receive(wire, app, counters), TransportLayer::Result::kClose);
  EXPECT_EQ(Bytes(app.begin(), app.end()), B("last"));
  EXPECT_EQ(TakeWire(*transport), B("NO"));
}

// --- Connection over a transport -------------------------------------------------------------

constexpr int kTransportFd = 9;

class ServingSink final : public PacketSink {
 public:
  ConnectAction OnConnect(Connection& connection, const mqtt::Connect&) override {
    connection.SendConnack(false);
    return ConnectAction::kServe;
  }
  void OnPacket(Connection&, const mqtt::Packet&) override {}
  void OnClosing(Connection&) override {}
};

class TransportConnectionTest : public ::testing::Test {
 protected:
  TransportConnectionTest() {
    context_.connected_clients = &connected_;
    context_.shutting_down = &shutting_down_;
    context_.counters = &counters_;
    context_.sink = &sink_;
    connection_.Open(kTransportFd, 1'000);
    connection_.SetTransport(TwoLayers(), context_);
  }
  Bytes Drain() {
    Bytes sent;
    for (int i = 0; i < 8; ++i) {
      const std::span<const uint8_t> bytes = connection_.NextSend();
      if (bytes.empty()) break;
      sent.insert(sent.end(), bytes.begin(), bytes.end());
      connection_.OnSent(bytes.size());
    }
    return sent;
  }
  void Open() {
    connection_.OnReceive(B("HI"), 1'000, context_);
    connection_.OnReceive(Xor(B("HI"), 1), 1'000, context_);
    EXPECT_EQ(Drain(), Cat(B("HO"), Xor(B("HO"), 1)));
  }
  static Bytes Cat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  static Bytes Wrap(const Bytes& mqtt) { return Xor(Xor(mqtt, 2), 1); }
  static Bytes Connect(uint8_t level) {
    mqtt::Connect connect;
    connect.protocol_name = "MQTT";
    connect.protocol_level = level;
    connect.clean_session = true;
    connect.keepalive_s = 30;
    connect.client_id = "over-transport";
    Bytes bytes(mqtt::EncodedSize(mqtt::Packet(connect)));
    mqtt::Encode(mqtt::Packet(connect), bytes);
    return bytes;
  }

  std::atomic<uint32_t> connected_{0};
  std::atomic<bool> shutting_down_{false};
  metrics::ShardCounters counters_;
  ServingSink sink_;
  ConnectionContext context_;
  Connection connection_;
};

TEST_F(TransportConnectionTest, ConnackAndPingrespAreEncodedByTheLayers) {
  Open();
  connection_.OnReceive(Wrap(Connect(4)), 1'000, context_);
  EXPECT_EQ(connection_.state(), Connection::State::kOpen);
  EXPECT_EQ(Drain(), Wrap({0x20, 0x02, 0x00, 0x00}));
  connection_.OnReceive(Wrap({0xC0, 0x00}), 1'000, context_);
  EXPECT_EQ(Drain(), Wrap({0xD0, 0x00}));
  EXPECT_GT(connection_.TakeBufferChargeDelta(), 0);  // the transport's buffers are charged
}

TEST_F(TransportConnectionTest, ARefusalConnackIsNotStaticAndIsFollowedByTheGoodbyes) {
  Open();
  connection_.OnReceive(Wrap(Connect(6)), 1'000, context_);  // level 6: refused with 0x01
  ASSERT_EQ(connection_.state(), Connection::State::kClosing);
  EXPECT_TRUE(connection_.TakeFinalStaticSend().empty());
  EXPECT_FALSE(connection_.ReadyToClose());
  Bytes expected = Wrap({0x20, 0x02, 0x00, 0x01});
  expected = Cat(expected, Xor(B("BYE"), 1));
  expected = Cat(expected, B("BYE"));
  EXPECT_EQ(Drain(), expected);
  EXPECT_TRUE(connection_.ReadyToClose());
}

TEST_F(TransportConnectionTest, ALayerThatRefusesClosesTheConnectionAfterItsBytes) {
  Open();
  connection_.OnReceive(Bytes{0xFF}, 1'000, context_);  // the bottom layer refuses 0xFF
  ASSERT_EQ(connection_.state(), Connection::State::kClosing);
  const Bytes sent = Drain();
  ASSERT_GE(sent.size(), 2u);
  EXPECT_EQ(Bytes(sent.begin(), sent.begin() + 2), B("NO"));
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(connected_.load(), 0u);
}

TEST_F(TransportConnectionTest, NothingOfMqttIsSentBeforeTheLayersAreOpen) {
  connection_.OnReceive(B("HI"), 1'000, context_);
  EXPECT_EQ(Drain(), B("HO"));
  EXPECT_EQ(connection_.state(), Connection::State::kAwaitConnect);
}

// As without a transport (ConnectionTest.LargeOutputBuffersReleasedWhenTheConnectionGoesIdle),
// an idle connection keeps no large buffer once a burst is sent: not in the transport either
// (its wire buffer, which trades places with the connection's send buffer, and the scratch
// between layers), or every WebSocket or TLS subscriber would hold its largest burst forever.
TEST_F(TransportConnectionTest, LargeTransportBuffersReleasedWhenTheConnectionGoesIdle) {
  Open();
  connection_.OnReceive(Wrap(Connect(4)), 1'000, context_);
  Drain();
  const size_t idle = connection_.transport()->memory_bytes();
  for (int burst = 0; burst < 2; ++burst) {  // both buffers of the swap get a large one
    connection_.output_buffer().assign(64 * 1024, 0x30);
    const std::span<const uint8_t> sending = connection_.NextSend();
    ASSERT_EQ(sending.size(), 64u * 1024);
    connection_.OnSent(sending.size());
  }
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_LE(connection_.transport()->memory_bytes(), idle + 3 * 4096);
  // Still works afterwards.
  connection_.OnReceive(Wrap({0xC0, 0x00}), 1'000, context_);
  EXPECT_EQ(Drain(), Wrap({0xD0, 0x00}));
}

// A layer that is open from the start and answers each byte 0x50 ('P') with 0x51 of its own,
// as a WebSocket layer answers a ping with a pong; other bytes go up unchanged.
class PongLayer final : public TransportLayer {
 public:
  Result Receive(std::span<const uint8_t> in, ByteBuffer& up, ByteBuffer& down, PeerInfo&,
                 metrics::ShardCounters&) override {
    for (const uint8_t byte : in) {
      if (byte == 'P') {
        down.push_back('Q');
      } else {
        up.push_back(byte);
      }
    }
    return Result::kOk;
  }
  void Send(std::span<const uint8_t> in, ByteBuffer& down) override {
    down.insert(down.end(), in.begin(), in.end());
  }
  bool open() const override { return true; }
};

// The bytes a layer answers of its own accord (pongs, TLS post-handshake messages) wait in the
// transport while a send is stuck on a peer that does not read: they are bounded like MQTT
// replies (ConnectionContext::ReplyBytesMax), counted in output_overflow when they overflow.
TEST(TransportConnectionBoundTest, LayerAnswersToAPeerThatDoesNotReadAreBounded) {
  std::atomic<uint32_t> connected{0};
  std::atomic<bool> shutting_down{false};
  metrics::ShardCounters counters;
  ServingSink sink;
  ConnectionContext context;
  context.connected_clients = &connected;
  context.shutting_down = &shutting_down;
  context.counters = &counters;
  context.sink = &sink;
  Connection connection;
  connection.Open(kTransportFd, 1'000);
  std::vector<std::unique_ptr<TransportLayer>> layers;
  layers.push_back(std::make_unique<PongLayer>());
  connection.SetTransport(std::make_unique<Transport>(std::move(layers)), context);
  const Bytes pings(4096, 'P');  // one receive buffer's worth
  connection.OnReceive(pings, 1'000, context);
  ASSERT_FALSE(connection.NextSend().empty());  // the send is in flight and never completes
  const size_t receives = 4 * context.ReplyBytesMax() / pings.size();
  for (size_t i = 0; i < receives && connection.state() != Connection::State::kClosing; ++i) {
    connection.OnReceive(pings, 1'000, context);
  }
  EXPECT_EQ(connection.state(), Connection::State::kClosing);
  EXPECT_EQ(counters.output_overflow.Load(), 1u);
  EXPECT_LE(connection.transport()->wire().size(), context.ReplyBytesMax() + pings.size());
}

}  // namespace
}  // namespace ringmq::net
