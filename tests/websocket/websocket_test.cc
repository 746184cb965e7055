// websocket::WebSocketLayer: the upgrade (RFC6455-4.2) and every refusal, the frames
// (RFC6455-5) and every protocol error, limits, and MQTT's use of them (MQTT-6.0.0-x).
#include "websocket/websocket.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "listener/listener.h"

namespace ringmq::websocket {
namespace {

using Bytes = std::vector<uint8_t>;
using Result = net::TransportLayer::Result;

constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";

// Concatenates strings and string_views (this abseil's StrCat takes no std::string_view).
template <typename... Parts>
std::string Str(const Parts&... parts) {
  std::string all;
  (all.append(std::string_view(parts)), ...);
  return all;
}

Bytes B(std::string_view text) { return Bytes(text.begin(), text.end()); }
std::string S(const ByteBuffer& bytes) { return std::string(bytes.begin(), bytes.end()); }

std::string Upgrade(std::string_view extra = "Sec-WebSocket-Protocol: mqtt\r\n",
                    std::string_view request_line = "GET /mqtt HTTP/1.1") {
  return Str(request_line,
             "\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: ",
             kKey, "\r\nSec-WebSocket-Version: 13\r\n", extra, "\r\n");
}

// A client frame: masked with `mask` unless `masked` is false.
Bytes Frame(uint8_t opcode, const Bytes& payload, bool fin = true, bool masked = true,
            uint8_t rsv = 0) {
  const uint8_t mask[4] = {0x37, 0xFA, 0x21, 0x3D};
  Bytes frame;
  frame.push_back(static_cast<uint8_t>((fin ? 0x80 : 0) | rsv << 4 | opcode));
  const uint8_t mask_bit = masked ? 0x80 : 0;
  if (payload.size() <= 125) {
    frame.push_back(static_cast<uint8_t>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    frame.push_back(mask_bit | 126);
    frame.push_back(static_cast<uint8_t>(payload.size() >> 8));
    frame.push_back(static_cast<uint8_t>(payload.size()));
  } else {
    frame.push_back(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      frame.push_back(static_cast<uint8_t>(payload.size() >> shift));
    }
  }
  if (masked) frame.insert(frame.end(), mask, mask + 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    frame.push_back(masked ? payload[i] ^ mask[i % 4] : payload[i]);
  }
  return frame;
}

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

// A server frame (unmasked, FIN) as the layer sends it.
Bytes ServerFrame(uint8_t opcode, const Bytes& payload) {
  ByteBuffer header;
  AppendFrameHeader(opcode, payload.size(), header);
  Bytes frame(header.begin(), header.end());
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

Bytes CloseFrame(uint16_t code) {
  return ServerFrame(0x8, Bytes{static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)});
}

class WebSocketTest : public ::testing::Test {
 protected:
  void MakeLayer(Options options = {}) {
    layer_ = std::make_unique<WebSocketLayer>(std::make_shared<const Options>(std::move(options)));
  }
  void SetUp() override { MakeLayer(); }

  Result Feed(std::span<const uint8_t> bytes) {
    return layer_->Receive(bytes, up_, down_, peer_, counters_);
  }
  Result Feed(std::string_view text) { return Feed(B(text)); }
  Result FeedByteAtATime(const Bytes& bytes) {
    for (const uint8_t byte : bytes) {
      const Result result = Feed(std::span<const uint8_t>(&byte, 1));
      if (result == Result::kClose) return result;
    }
    return Result::kOk;
  }
  // Upgrades and forgets the 101.
  void Open() {
    ASSERT_EQ(Feed(Upgrade()), Result::kOk);
    ASSERT_TRUE(layer_->open());
    down_.clear();
  }
  Bytes TakeDown() {
    Bytes bytes(down_.begin(), down_.end());
    down_.clear();
    return bytes;
  }
  Bytes TakeUp() {
    Bytes bytes(up_.begin(), up_.end());
    up_.clear();
    return bytes;
  }
  // Expects a refusal with HTTP `status`, counted by `counter`.
  void ExpectRefused(std::string_view request, int status, const metrics::Counter& counter) {
    EXPECT_EQ(Feed(request), Result::kClose);
    EXPECT_FALSE(layer_->open());
    EXPECT_TRUE(absl::StartsWith(S(down_), Str("HTTP/1.1 ", std::to_string(status), " ")))
        << S(down_);
    EXPECT_TRUE(absl::StrContains(S(down_), "\r\nConnection: close\r\n"));
    EXPECT_EQ(counter.Load(), 1u);
    EXPECT_EQ(counters_.websocket_upgrades.Load(), 0u);
  }

  std::unique_ptr<WebSocketLayer> layer_;
  ByteBuffer up_;
  ByteBuffer down_;
  net::PeerInfo peer_;
  metrics::ShardCounters counters_;
};

// --- Upgrade ---------------------------------------------------------------------------------

TEST(AcceptKeyTest, Rfc6455Section1_3Example) {
  EXPECT_EQ(AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_F(WebSocketTest, UpgradeAnswers101WithAcceptKeyAndMqttSubprotocol) {
  EXPECT_EQ(Feed(Upgrade()), Result::kOk);
  EXPECT_TRUE(layer_->open());
  EXPECT_EQ(S(down_),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
  EXPECT_EQ(layer_->subprotocol(), "mqtt");
  EXPECT_EQ(counters_.websocket_upgrades.Load(), 1u);
  EXPECT_TRUE(up_.empty());
  EXPECT_EQ(layer_->memory_bytes(), 0u);  // the request is released once answered
}

TEST_F(WebSocketTest, UpgradeByteAtATimeAndFramesInTheSameReadAsTheRequest) {
  const Bytes wire = Cat({B(Upgrade()), Frame(0x2, Bytes{0x10, 0x02}), Frame(0x2, B("ab"))});
  const Bytes expected = {0x10, 0x02, 'a', 'b'};
  EXPECT_EQ(FeedByteAtATime(wire), Result::kOk);
  EXPECT_EQ(TakeUp(), expected);
  MakeLayer();
  EXPECT_EQ(Feed(wire), Result::kOk);
  EXPECT_EQ(TakeUp(), expected);
}

TEST_F(WebSocketTest, Mqtt6_0_0_4SelectsTheClientsFirstMqttOffer) {
  EXPECT_EQ(Feed(Upgrade("Sec-WebSocket-Protocol: chat, mqttv3.1\r\n"
                         "Sec-WebSocket-Protocol: mqtt\r\n")),
            Result::kOk);
  EXPECT_EQ(layer_->subprotocol(), "mqttv3.1");
  EXPECT_TRUE(absl::StrContains(S(down_), "\r\nSec-WebSocket-Protocol: mqttv3.1\r\n"));
}

TEST_F(WebSocketTest, NoSubprotocolOfferedIsAcceptedWithoutTheHeader) {
  EXPECT_EQ(Feed(Upgrade("")), Result::kOk);
  EXPECT_TRUE(layer_->open());
  EXPECT_FALSE(absl::StrContains(S(down_), "Sec-WebSocket-Protocol"));
}

TEST_F(WebSocketTest, HeaderNamesAndTokensAreCaseInsensitiveAndQueryIsIgnored) {
  EXPECT_EQ(
      Feed("GET /mqtt?token=1 HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\n"
           "connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "sec-websocket-version: 13\r\nSEC-WEBSOCKET-PROTOCOL: mqtt\r\n\r\n"),
      Result::kOk);
  EXPECT_TRUE(layer_->open());
}

TEST_F(WebSocketTest, RefusesRequestAbove8KiBWith431) {
  const std::string big(kMaxRequestBytes, 'a');
  ExpectRefused(Str("GET /mqtt HTTP/1.1\r\nX-Pad: ", big), 431,
                counters_.websocket_refused_request_too_large);
}

TEST_F(WebSocketTest, RequestOfExactly8KiBIsAccepted) {
  std::string request = Upgrade();
  const std::string pad = "X-Pad: ";
  request.insert(
      request.size() - 2,
      Str(pad, std::string(kMaxRequestBytes - request.size() - pad.size() - 2, 'a'), "\r\n"));
  ASSERT_EQ(request.size(), kMaxRequestBytes);
  EXPECT_EQ(Feed(request), Result::kOk);
  EXPECT_TRUE(layer_->open());
}

TEST_F(WebSocketTest, RefusesMalformedRequestWith400) {
  ExpectRefused("GET /mqtt\r\nHost: x\r\n\r\n", 400, counters_.websocket_refused_malformed);
}

TEST_F(WebSocketTest, RefusesHttp10With400) {
  ExpectRefused(Upgrade("", "GET /mqtt HTTP/1.0"), 400, counters_.websocket_refused_malformed);
}

TEST_F(WebSocketTest, RefusesFoldedHeaderWith400) {
  ExpectRefused(Upgrade(" folded\r\n"), 400, counters_.websocket_refused_malformed);
}

TEST_F(WebSocketTest, RefusesMissingHostWith400) {
  ExpectRefused(Str("GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: ",
                    kKey, "\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                400, counters_.websocket_refused_malformed);
}

TEST_F(WebSocketTest, RefusesPostWith405) {
  ExpectRefused(Upgrade("", "POST /mqtt HTTP/1.1"), 405, counters_.websocket_refused_method);
  EXPECT_TRUE(absl::StrContains(S(down_), "\r\nAllow: GET\r\n"));
}

TEST_F(WebSocketTest, RefusesOtherPathWith404) {
  ExpectRefused(Upgrade("", "GET /other HTTP/1.1"), 404, counters_.websocket_refused_path);
}

TEST_F(WebSocketTest, ConfiguredPathIsServed) {
  Options options;
  options.path = "/ws/mqtt";
  MakeLayer(options);
  EXPECT_EQ(Feed(Upgrade("", "GET /ws/mqtt HTTP/1.1")), Result::kOk);
  EXPECT_TRUE(layer_->open());
}

TEST_F(WebSocketTest, RefusesPlainHttpGetWith426) {
  ExpectRefused("GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", 426,
                counters_.websocket_refused_not_upgrade);
  EXPECT_TRUE(absl::StrContains(S(down_), "\r\nUpgrade: websocket\r\n"));
}

TEST_F(WebSocketTest, RefusesMissingConnectionUpgradeWith426) {
  ExpectRefused(Str("GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    "Connection: keep-alive\r\nSec-WebSocket-Key: ",
                    kKey, "\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                426, counters_.websocket_refused_not_upgrade);
}

TEST_F(WebSocketTest, Rfc6455_4_4RefusesOtherVersionWith426NamingVersion13) {
  std::string request = Upgrade("");
  request.replace(request.find("Version: 13"), 11, "Version: 8");
  ExpectRefused(request, 426, counters_.websocket_refused_version);
  EXPECT_TRUE(absl::StrContains(S(down_), "\r\nSec-WebSocket-Version: 13\r\n"));
}

TEST_F(WebSocketTest, RefusesMalformedKeyWith400) {
  std::string request = Upgrade("");
  request.replace(request.find(kKey), kKey.size(), "c2hvcnQ=");
  ExpectRefused(request, 400, counters_.websocket_refused_key);
}

TEST_F(WebSocketTest, RefusesTwoKeysWith400) {
  ExpectRefused(Upgrade(Str("Sec-WebSocket-Key: ", kKey, "\r\n")), 400,
                counters_.websocket_refused_key);
}

TEST_F(WebSocketTest, Mqtt6_0_0_3RefusesOffersWithoutMqttWith400) {
  ExpectRefused(Upgrade("Sec-WebSocket-Protocol: chat, MQTT5\r\n"), 400,
                counters_.websocket_refused_subprotocol);
}

TEST_F(WebSocketTest, AllowedOriginsRefuseOthersWith403) {
  Options options;
  options.allowed_origins = {"https://app.example"};
  MakeLayer(options);
  ExpectRefused(Upgrade("Origin: https://evil.example\r\n"), 403,
                counters_.websocket_refused_origin);
}

TEST_F(WebSocketTest, AllowedOriginsAcceptListedOriginAndRequestsWithoutOrigin) {
  Options options;
  options.allowed_origins = {"http://other", "https://app.example"};
  MakeLayer(options);
  EXPECT_EQ(Feed(Upgrade("Origin: https://APP.example\r\n")), Result::kOk);
  EXPECT_TRUE(layer_->open());
  MakeLayer(options);
  EXPECT_EQ(Feed(Upgrade("")), Result::kOk);
  EXPECT_TRUE(layer_->open());
}

TEST_F(WebSocketTest, XForwardedForIgnoredUnlessTrusted) {
  EXPECT_EQ(Feed(Upgrade("X-Forwarded-For: 203.0.113.9\r\n")), Result::kOk);
  EXPECT_FALSE(peer_.source.has_value());
}

TEST_F(WebSocketTest, TrustedXForwardedForSetsTheSourceToItsLastAddress) {
  Options options;
  options.trust_x_forwarded_for = true;
  MakeLayer(options);
  EXPECT_EQ(Feed(Upgrade("X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n")), Result::kOk);
  ASSERT_TRUE(peer_.source.has_value());
  ASSERT_EQ(peer_.source->ss_family, AF_INET);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&*peer_.source)->sin_addr, text,
            sizeof(text));
  EXPECT_EQ(std::string(text), "203.0.113.9");

  MakeLayer(options);
  peer_ = {};
  EXPECT_EQ(Feed(Upgrade("X-Forwarded-For: [2001:db8::7]\r\n")), Result::kOk);
  ASSERT_TRUE(peer_.source.has_value());
  EXPECT_EQ(peer_.source->ss_family, AF_INET6);
}

TEST_F(WebSocketTest, TrustedXForwardedForThatIsNoAddressIsRefusedWith400) {
  Options options;
  options.trust_x_forwarded_for = true;
  MakeLayer(options);
  ExpectRefused(Upgrade("X-Forwarded-For: not-an-address\r\n"), 400,
                counters_.websocket_refused_forwarded_for);
}

TEST_F(WebSocketTest, ShutdownBeforeTheUpgradeSendsNothing) {
  EXPECT_EQ(Feed("GET /mq"), Result::kOk);
  layer_->Shutdown(down_);
  EXPECT_TRUE(down_.empty());
}

// --- Frames ----------------------------------------------------------------------------------

TEST_F(WebSocketTest, Mqtt6_0_0_2PacketsSpanFramesAndFramesCarrySeveralPackets) {
  Open();
  // PINGREQ + the first half of a PUBLISH in one frame, the rest in the next.
  const Bytes publish = {0x30, 0x05, 0x00, 0x01, 't', 'h', 'i'};
  Bytes first = {0xC0, 0x00};
  first.insert(first.end(), publish.begin(), publish.begin() + 3);
  const Bytes second(publish.begin() + 3, publish.end());
  EXPECT_EQ(Feed(Cat({Frame(0x2, first), Frame(0x2, second)})), Result::kOk);
  EXPECT_EQ(TakeUp(), Cat({Bytes{0xC0, 0x00}, publish}));
  EXPECT_TRUE(down_.empty());
}

TEST_F(WebSocketTest, ByteAtATimeFramesOfEveryLengthEncoding) {
  Open();
  for (const size_t size : {0u, 1u, 125u, 126u, 65535u, 65536u, 70000u}) {
    Bytes payload(size);
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<uint8_t>(i * 7);
    if (size < 1000) {
      EXPECT_EQ(FeedByteAtATime(Frame(0x2, payload)), Result::kOk) << size;
    } else {
      EXPECT_EQ(Feed(Frame(0x2, payload)), Result::kOk) << size;
    }
    EXPECT_EQ(TakeUp(), payload) << size;
  }
}

TEST_F(WebSocketTest, Rfc6455_5_4FragmentedMessageWithInterleavedControlFrames) {
  Open();
  const Bytes wire =
      Cat({Frame(0x2, B("ab"), false), Frame(0x9, B("p1")), Frame(0x0, B("cd"), false),
           Frame(0xA, B("unsolicited")), Frame(0x0, B("ef"), true), Frame(0x2, B("gh"))});
  EXPECT_EQ(FeedByteAtATime(wire), Result::kOk);
  EXPECT_EQ(TakeUp(), B("abcdefgh"));
  EXPECT_EQ(TakeDown(), ServerFrame(0xA, B("p1")));  // the pong; nothing for the pong
  EXPECT_EQ(counters_.websocket_pings_received.Load(), 1u);
}

TEST_F(WebSocketTest, Rfc6455_5_5_2PingIsAnsweredWithPongOfSamePayload) {
  Open();
  const Bytes payload(125, 'x');
  EXPECT_EQ(Feed(Frame(0x9, payload)), Result::kOk);
  EXPECT_EQ(TakeDown(), ServerFrame(0xA, payload));
  EXPECT_EQ(Feed(Frame(0x9, {})), Result::kOk);
  EXPECT_EQ(TakeDown(), ServerFrame(0xA, {}));
}

TEST_F(WebSocketTest, Rfc6455_5_5_1CloseIsAnsweredWithItsCodeAndCloses) {
  Open();
  EXPECT_EQ(Feed(Cat({Frame(0x8, Bytes{0x03, 0xE8, 'b', 'y', 'e'}), Frame(0x2, B("late"))})),
            Result::kClose);
  EXPECT_EQ(TakeDown(), CloseFrame(1000));
  EXPECT_TRUE(up_.empty());  // nothing after the close is passed up
  EXPECT_EQ(counters_.websocket_closes_received.Load(), 1u);
  layer_->Shutdown(down_);  // the close was sent already
  EXPECT_TRUE(down_.empty());
}

TEST_F(WebSocketTest, CloseWithoutCodeIsAnsweredWithoutCode) {
  Open();
  EXPECT_EQ(Feed(Frame(0x8, {})), Result::kClose);
  EXPECT_EQ(TakeDown(), ServerFrame(0x8, {}));
}

TEST_F(WebSocketTest, Rfc6455_7_4CloseWithReservedCodeOrOneByteIsAProtocolError) {
  for (const Bytes& payload : {Bytes{0x03, 0xED} /* 1005 */, Bytes{0x03}, Bytes{0x00, 0x10}}) {
    MakeLayer();
    Open();
    EXPECT_EQ(Feed(Frame(0x8, payload)), Result::kClose);
    EXPECT_EQ(TakeDown(), CloseFrame(kCloseProtocolError));
  }
  EXPECT_EQ(counters_.websocket_error_close_frame.Load(), 3u);
}

TEST_F(WebSocketTest, Rfc6455_8_1CloseReasonThatIsNotUtf8FailsWith1007) {
  const Bytes bad_reasons[] = {
      {0xFF},                    // never a UTF-8 byte
      {'o', 'k', 0xC3},          // truncated two-byte sequence
      {0xED, 0xA0, 0x80},        // a UTF-16 surrogate (U+D800)
      {0xC0, 0xAF},              // overlong '/'
      {'a', 0x00, 0x80, 'b'},    // a stray continuation byte after a NUL
  };
  for (const Bytes& reason : bad_reasons) {
    MakeLayer();
    Open();
    EXPECT_EQ(Feed(Frame(0x8, Cat({Bytes{0x03, 0xE8}, reason}))), Result::kClose);
    EXPECT_EQ(TakeDown(), CloseFrame(kCloseInvalidPayload));
  }
  EXPECT_EQ(counters_.websocket_error_close_frame.Load(), 5u);
  // Valid UTF-8, U+0000 included, is echoed with its code as before.
  for (const Bytes& reason : {Bytes{'b', 'y', 'e'}, Bytes{0xC3, 0xA9, 0x00, 0xE2, 0x82, 0xAC},
                              Bytes{0xF0, 0x9F, 0x98, 0x80}}) {
    MakeLayer();
    Open();
    EXPECT_EQ(Feed(Frame(0x8, Cat({Bytes{0x03, 0xE8}, reason}))), Result::kClose);
    EXPECT_EQ(TakeDown(), CloseFrame(1000));
  }
  EXPECT_EQ(counters_.websocket_error_close_frame.Load(), 5u);
}

TEST_F(WebSocketTest, SendWrapsInOneUnmaskedBinaryFrame) {
  Open();
  layer_->Send(Bytes{0x20, 0x02, 0x00, 0x00}, down_);
  EXPECT_EQ(TakeDown(), ServerFrame(0x2, Bytes{0x20, 0x02, 0x00, 0x00}));
  const Bytes big(70000, 0x42);
  layer_->Send(big, down_);
  const Bytes wire = TakeDown();
  ASSERT_EQ(wire.size(), 10 + big.size());
  EXPECT_EQ(wire[0], 0x82);
  EXPECT_EQ(wire[1], 127);  // no mask bit: RFC6455-5.1
}

TEST_F(WebSocketTest, ShutdownSendsNormalCloseOnce) {
  Open();
  layer_->Shutdown(down_);
  EXPECT_EQ(TakeDown(), CloseFrame(kCloseNormal));
  layer_->Shutdown(down_);
  layer_->Send(B("x"), down_);  // nothing after the close frame
  EXPECT_TRUE(down_.empty());
}

// Each protocol error: the close code sent, kClose, the counter.
struct ErrorCase {
  std::string name;
  Bytes frames;
  uint16_t code;
  metrics::Counter metrics::ShardCounters::*counter;
};

TEST_F(WebSocketTest, ProtocolErrorsCloseWithTheirCodeAndAreCounted) {
  const std::vector<ErrorCase> cases = {
      {"Rfc6455_5_1UnmaskedFrame", Frame(0x2, B("ab"), true, false), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_unmasked},
      {"Rfc6455_5_2ReservedBits", Frame(0x2, B("ab"), true, true, 0x4), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_reserved_bits},
      {"Rfc6455_5_2ReservedOpcode", Frame(0x3, B("ab")), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_opcode},
      {"Rfc6455_5_2ReservedControlOpcode", Frame(0xB, B("ab")), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_opcode},
      {"Mqtt6_0_0_1TextFrame", Frame(0x1, B("ab")), kCloseUnsupportedData,
       &metrics::ShardCounters::websocket_error_text_frame},
      {"Rfc6455_5_5FragmentedPing", Frame(0x9, B("ab"), false), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_control_frame},
      {"Rfc6455_5_5PingAbove125", Frame(0x9, Bytes(126, 'x')), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_control_frame},
      {"Rfc6455_5_4ContinuationWithoutMessage", Frame(0x0, B("ab")), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_continuation},
      {"Rfc6455_5_4NewMessageInsideFragmentedOne",
       Cat({Frame(0x2, B("ab"), false), Frame(0x2, B("cd"))}), kCloseProtocolError,
       &metrics::ShardCounters::websocket_error_continuation},
  };
  for (const ErrorCase& c : cases) {
    for (const bool byte_at_a_time : {false, true}) {
      SCOPED_TRACE(c.name + (byte_at_a_time ? " byte at a time" : ""));
      MakeLayer();
      Open();
      const uint64_t before = (counters_.*c.counter).Load();
      EXPECT_EQ(byte_at_a_time ? FeedByteAtATime(c.frames) : Feed(c.frames), Result::kClose);
      EXPECT_EQ(TakeDown(), CloseFrame(c.code));
      EXPECT_EQ((counters_.*c.counter).Load(), before + 1);
      layer_->Shutdown(down_);
      EXPECT_TRUE(down_.empty());
    }
  }
}

TEST_F(WebSocketTest, UnmaskedFrameIsRefusedAtItsSecondByte) {
  Open();
  const Bytes frame = Frame(0x2, B("ab"), true, false);
  EXPECT_EQ(Feed(std::span<const uint8_t>(frame.data(), 2)), Result::kClose);
  EXPECT_EQ(counters_.websocket_error_unmasked.Load(), 1u);
}

TEST_F(WebSocketTest, FrameAboveTheBoundClosesWith1009BeforeItsPayload) {
  Options options;
  options.max_frame_bytes = 100;
  options.max_message_bytes = 1000;
  MakeLayer(options);
  Open();
  EXPECT_EQ(Feed(Frame(0x2, Bytes(100, 'a'))), Result::kOk);
  EXPECT_EQ(TakeUp().size(), 100u);
  const Bytes frame = Frame(0x2, Bytes(101, 'a'));
  EXPECT_EQ(Feed(std::span<const uint8_t>(frame.data(), 8)), Result::kClose);  // header only
  EXPECT_EQ(TakeDown(), CloseFrame(kCloseTooBig));
  EXPECT_TRUE(up_.empty());
  EXPECT_EQ(counters_.websocket_frame_too_large.Load(), 1u);
}

TEST_F(WebSocketTest, LengthWithTopBitSetIsTooLarge) {
  Open();
  Bytes header = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  EXPECT_EQ(Feed(header), Result::kClose);
  EXPECT_EQ(TakeDown(), CloseFrame(kCloseTooBig));
  EXPECT_EQ(counters_.websocket_frame_too_large.Load(), 1u);
}

TEST_F(WebSocketTest, FragmentedMessageAboveTheBoundClosesWith1009) {
  Options options;
  options.max_frame_bytes = 100;
  options.max_message_bytes = 150;
  MakeLayer(options);
  Open();
  EXPECT_EQ(Feed(Cat({Frame(0x2, Bytes(100, 'a'), false), Frame(0x0, Bytes(50, 'b'), true)})),
            Result::kOk);  // exactly the bound
  EXPECT_EQ(TakeUp().size(), 150u);
  EXPECT_EQ(Feed(Cat({Frame(0x2, Bytes(100, 'a'), false), Frame(0x0, Bytes(51, 'b'), true)})),
            Result::kClose);
  EXPECT_EQ(TakeDown(), CloseFrame(kCloseTooBig));
  EXPECT_EQ(counters_.websocket_message_too_large.Load(), 1u);
}

TEST(WebSocketOptionsTest, ForListenerTiesBoundsToMaxPacketSize) {
  ListenerConfig listener;
  listener.protocol = ListenerProtocol::kWebSockets;
  listener.path = "/x";
  listener.allowed_origins = {"https://a"};
  listener.trust_x_forwarded_for = true;
  const Options options = Options::ForListener(listener, 1000);
  EXPECT_EQ(options.path, "/x");
  EXPECT_EQ(options.allowed_origins, listener.allowed_origins);
  EXPECT_TRUE(options.trust_x_forwarded_for);
  EXPECT_EQ(options.max_frame_bytes, 1000 + kFrameSlackBytes);
  EXPECT_EQ(options.max_message_bytes, 1000 + kFrameSlackBytes);
}

// --- The listener's stack --------------------------------------------------------------------

TEST(WebSocketListenerTest, WebSocketsListenerStacksTheLayerThroughTheTransport) {
  ListenerConfig listener;
  listener.protocol = ListenerProtocol::kWebSockets;
  absl::StatusOr<std::unique_ptr<net::TransportFactory>> factory =
      listener::MakeTransportFactory(listener, 1 << 20);
  ASSERT_TRUE(factory.ok()) << factory.status();
  ASSERT_NE(*factory, nullptr);
  std::unique_ptr<net::Transport> transport = (*factory)->Make();
  metrics::ShardCounters counters;
  ByteBuffer app;
  EXPECT_EQ(transport->Receive(B(Upgrade()), app, counters), Result::kOk);
  EXPECT_TRUE(transport->open());
  EXPECT_TRUE(absl::StartsWith(S(transport->wire()), "HTTP/1.1 101 "));
  transport->wire().clear();
  EXPECT_EQ(transport->Receive(Frame(0x2, Bytes{0xC0, 0x00}), app, counters), Result::kOk);
  EXPECT_EQ(Bytes(app.begin(), app.end()), (Bytes{0xC0, 0x00}));
  transport->Send(Bytes{0xD0, 0x00});
  EXPECT_EQ(Bytes(transport->wire().begin(), transport->wire().end()),
            ServerFrame(0x2, Bytes{0xD0, 0x00}));
}

TEST(WebSocketListenerTest, PathMustStartWithSlash) {
  ListenerConfig listener;
  listener.protocol = ListenerProtocol::kWebSockets;
  listener.path = "mqtt";
  EXPECT_EQ(listener::MakeTransportFactory(listener, 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringmq::websocket
