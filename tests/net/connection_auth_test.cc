// The connection's side of MQTT 5 enhanced authentication (net/connection.h, kAuthenticating)
// with SCRAM-SHA-256: RFC 7677 §3's exchange on the wire, at every split point, and the ways it
// ends. Needs level 5 admitted by the connection (DecodeConnect with accept_mqtt5).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_data.h"
#include "auth/enhanced_auth.h"
#include "auth/password_hash.h"
#include "connect/client_id.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/properties.h"
#include "net/connection.h"

namespace ringmq::net {
namespace {

using Bytes = std::vector<uint8_t>;
using State = Connection::State;

constexpr uint64_t kAuthStartMs = 1'000;
constexpr std::string_view kMethod = "SCRAM-SHA-256";
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

Bytes AuthProperties(std::string_view method, std::string_view data) {
  Bytes block(mqtt::StringPropertySize(mqtt::PropertyId::kAuthenticationMethod, method) +
              mqtt::StringPropertySize(mqtt::PropertyId::kAuthenticationData, data));
  const size_t at =
      mqtt::EncodeStringProperty(mqtt::PropertyId::kAuthenticationMethod, method, block);
  mqtt::EncodeStringProperty(mqtt::PropertyId::kAuthenticationData, data,
                             std::span<uint8_t>(block).subspan(at));
  return block;
}

Bytes EncodeAuth5(const mqtt::Packet& packet) {
  Bytes bytes(mqtt::EncodedSize(packet, mqtt::ProtocolLevel::kMqtt5));
  EXPECT_EQ(mqtt::Encode(packet, bytes, mqtt::ProtocolLevel::kMqtt5), bytes.size());
  return bytes;
}

Bytes Connect5(std::string_view client_id, std::string_view method, std::string_view data) {
  const Bytes properties = AuthProperties(method, data);
  mqtt::Connect connect;
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  connect.keepalive_s = 60;
  connect.client_id = client_id;
  connect.properties = mqtt::Properties(properties);
  return EncodeAuth5(connect);
}

Bytes Auth5(mqtt::ReasonCode reason, std::string_view method, std::string_view data) {
  const Bytes properties = AuthProperties(method, data);
  return EncodeAuth5(mqtt::Auth{reason, mqtt::Properties(properties)});
}

Bytes Connack5(mqtt::ReasonCode reason, const Bytes& properties = {}) {
  return EncodeAuth5(
      mqtt::Connack{.reason_code = reason, .properties = mqtt::Properties(properties)});
}

class RecordingSink : public PacketSink {
 public:
  ConnectAction OnConnect(Connection& connection, const mqtt::Connect& connect) override {
    users.emplace_back(connect.user_name.value_or("(none)"));
    connection.SendConnack(false);
    return ConnectAction::kServe;
  }
  void OnPacket(Connection&, const mqtt::Packet&) override {}
  void OnClosing(Connection&) override {}
  std::vector<std::string> users;
};

class ConnectionAuthTest : public ::testing::Test {
 protected:
  ConnectionAuthTest() {
    auth::PasswordHash hash;
    hash.kind = auth::HashKind::kScramSha256;
    hash.iterations = 4096;
    hash.salt = *auth::Base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    auth::ComputeHash(hash, "pencil", hash.hash);
    auto data = std::make_unique<auth::AuthData>();
    data->version = 1;
    data->allow_anonymous = false;
    data->passwords = *auth::ParsePasswordFile("user:" + auth::FormatPasswordHash(hash), "pw");
    shared_.Replace(std::move(data), nullptr);
    methods_.Add(std::make_unique<auth::ScramSha256Method>(shared_, nullptr, &counters_, [] {
      return std::string("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    }));
    context_.connected_clients = &connected_clients_;
    context_.shutting_down = &shutting_down_;
    context_.counters = &counters_;
    context_.sink = &sink_;
    context_.auth_methods = &methods_;
    context_.policy.auth_methods = &methods_;
    connection_.Open(/*fd=*/7, kAuthStartMs);
  }

  Bytes Drain() {
    Bytes sent;
    for (int i = 0; i < 16; ++i) {
      const std::span<const uint8_t> bytes = connection_.NextSend();
      if (bytes.empty()) break;
      sent.insert(sent.end(), bytes.begin(), bytes.end());
      connection_.OnSent(bytes.size());
    }
    return sent;
  }

  uint64_t Accepted() const {
    return counters_.connect[static_cast<size_t>(connect::Reason::kAccepted)].Load();
  }

  auth::SharedAuth shared_;
  metrics::ShardCounters counters_;
  auth::AuthMethodRegistry methods_;
  std::atomic<uint32_t> connected_clients_{0};
  std::atomic<bool> shutting_down_{false};
  RecordingSink sink_;
  ConnectionContext context_;
  Connection connection_;
};

TEST_F(ConnectionAuthTest, Rfc7677ExchangeAtEverySplitPoint) {
  const Bytes connect = Connect5("c1", kMethod, kClientFirst);
  const Bytes final_message =
      Auth5(mqtt::ReasonCode::kContinueAuthentication, kMethod, kClientFinal);
  Bytes stream = connect;
  stream.insert(stream.end(), final_message.begin(), final_message.end());
  const Bytes expected_auth =
      Auth5(mqtt::ReasonCode::kContinueAuthentication, kMethod, kServerFirst);
  for (size_t split = 1; split < stream.size(); ++split) {
    SCOPED_TRACE(split);
    connection_.Open(7, kAuthStartMs);
    sink_.users.clear();
    connection_.OnReceive(std::span(stream).first(split), kAuthStartMs, context_);
    connection_.OnReceive(std::span(stream).subspan(split), kAuthStartMs, context_);
    // The AUTH with the server-first message, then a CONNACK 0x00 that carries the method and
    // the server-final message (5.0:MQTT-4.12.0-5) beside the broker's limits.
    const Bytes sent = Drain();
    ASSERT_GT(sent.size(), expected_auth.size());
    EXPECT_EQ(Bytes(sent.begin(), sent.begin() + static_cast<std::ptrdiff_t>(expected_auth.size())),
              expected_auth);
    const std::span<const uint8_t> rest = std::span(sent).subspan(expected_auth.size());
    const mqtt::Frame frame = mqtt::PeekFrame(rest, 1 << 20, mqtt::ProtocolLevel::kMqtt5);
    ASSERT_EQ(frame.status, mqtt::FrameStatus::kComplete);
    ASSERT_EQ(frame.header.total_length(), rest.size());
    const mqtt::Result<mqtt::Packet> packet =
        mqtt::Decode(frame.header, rest.subspan(frame.header.header_length),
                     mqtt::ProtocolLevel::kMqtt5);
    ASSERT_TRUE(packet.ok());
    const auto& connack = std::get<mqtt::Connack>(packet.value());
    EXPECT_EQ(connack.reason_code, mqtt::ReasonCode::kSuccess);
    const mqtt::PropertyValues values = connack.properties.Values();
    EXPECT_EQ(values.authentication_method, std::optional<std::string_view>(kMethod));
    EXPECT_EQ(values.authentication_data, std::optional<std::string_view>(kServerFinal));
    EXPECT_EQ(connection_.state(), State::kOpen);
    EXPECT_EQ(sink_.users, std::vector<std::string>{"user"});  // the proven user for the ACL
    connection_.RequestClose(kAuthStartMs);
    connection_.OnClosed(context_);
  }
  EXPECT_EQ(Accepted(), stream.size() - 1);
  EXPECT_EQ(counters_.auth_scram_success.Load(), stream.size() - 1);
  EXPECT_EQ(connected_clients_.load(), 0u);
}

TEST_F(ConnectionAuthTest, WrongProofGetsConnack0x86AndReleasesTheSlot) {
  connection_.OnReceive(Connect5("c1", kMethod, kClientFirst), kAuthStartMs, context_);
  EXPECT_EQ(connection_.state(), State::kAuthenticating);
  EXPECT_EQ(connected_clients_.load(), 1u);  // an exchange holds a connected-client slot
  std::string wrong(kClientFinal);
  wrong[wrong.size() - 3] = wrong[wrong.size() - 3] == 'A' ? 'B' : 'A';
  connection_.OnReceive(Auth5(mqtt::ReasonCode::kContinueAuthentication, kMethod, wrong),
                        kAuthStartMs, context_);
  Bytes expected = Auth5(mqtt::ReasonCode::kContinueAuthentication, kMethod, kServerFirst);
  const Bytes connack = Connack5(mqtt::ReasonCode::kBadUserNameOrPassword);
  expected.insert(expected.end(), connack.begin(), connack.end());
  EXPECT_EQ(Drain(), expected);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.ReadyToClose());
  connection_.OnClosed(context_);
  EXPECT_EQ(connected_clients_.load(), 0u);
  EXPECT_EQ(Accepted(), 0u);
  EXPECT_EQ(counters_.auth_scram_bad_proof.Load(), 1u);
  EXPECT_TRUE(sink_.users.empty());
}

TEST_F(ConnectionAuthTest, UnknownMethodGetsConnack0x8C) {
  connection_.OnReceive(Connect5("c1", "SCRAM-SHA-1", kClientFirst), kAuthStartMs, context_);
  // Refused by admission (5.0:MQTT-4.12.0-1): its static CONNACK, counted by reason.
  const std::span<const uint8_t> refusal =
      connect::ConnackBytes5(connect::Reason::kBadAuthenticationMethod);
  EXPECT_EQ(Drain(), Bytes(refusal.begin(), refusal.end()));
  EXPECT_EQ(connection_.state(), State::kClosing);
  const auto& unknown =
      counters_.connect[static_cast<size_t>(connect::Reason::kBadAuthenticationMethod)];
  EXPECT_EQ(unknown.Load(), 1u);
  context_.auth_methods = nullptr;  // no method offered at all: the same answer
  context_.policy.auth_methods = nullptr;
  connection_.Open(7, kAuthStartMs);
  connection_.OnReceive(Connect5("c1", kMethod, kClientFirst), kAuthStartMs, context_);
  EXPECT_EQ(Drain(), Bytes(refusal.begin(), refusal.end()));
  EXPECT_EQ(unknown.Load(), 2u);
}

TEST_F(ConnectionAuthTest, ExchangeMustEndWithinConnectTimeout) {
  context_.connect_timeout_ms = 500;
  connection_.OnReceive(Connect5("c1", kMethod, kClientFirst), kAuthStartMs + 100, context_);
  ASSERT_EQ(connection_.state(), State::kAuthenticating);
  EXPECT_EQ(connection_.DeadlineMs(), kAuthStartMs + 600);
  connection_.OnDeadline(kAuthStartMs + 600, context_);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(counters_.connect_timeout.Load(), 1u);
}

TEST_F(ConnectionAuthTest, PacketOtherThanAuthBeforeConnackIsAProtocolError) {
  connection_.OnReceive(Connect5("c1", kMethod, kClientFirst), kAuthStartMs, context_);
  connection_.OnReceive(Bytes{0xC0, 0x00}, kAuthStartMs, context_);  // PINGREQ
  Bytes expected = Auth5(mqtt::ReasonCode::kContinueAuthentication, kMethod, kServerFirst);
  const Bytes connack = Connack5(mqtt::ReasonCode::kProtocolError);
  expected.insert(expected.end(), connack.begin(), connack.end());
  EXPECT_EQ(Drain(), expected);  // 5.0:MQTT-3.1.2-30
  EXPECT_EQ(connection_.state(), State::kClosing);
}

TEST_F(ConnectionAuthTest, ExchangeRunsOnTheClientIdsHomeShard) {
  context_.shard_count = 2;
  std::string client_id = "a";
  while (connect::HomeShard(client_id, 2) == 0) client_id += "a";
  context_.shard_index = 0;
  const Bytes connect = Connect5(client_id, kMethod, kClientFirst);
  connection_.OnReceive(connect, kAuthStartMs, context_);
  ASSERT_EQ(connection_.state(), State::kHandoff);
  EXPECT_TRUE(connection_.NextSend().empty());  // nothing answered before the move
  const std::vector<uint8_t> moved = connection_.TakeHandoffBytes();
  EXPECT_EQ(moved, connect);
  connection_.ReleaseForHandoff();
  connection_.OnClosed(context_);
  // The home shard adopts the socket and runs the exchange.
  context_.shard_index = 1;
  Connection adopted;
  adopted.Adopt(7, kAuthStartMs);
  adopted.OnReceive(moved, kAuthStartMs, context_);
  EXPECT_EQ(adopted.state(), State::kAuthenticating);
  adopted.OnReceive(Auth5(mqtt::ReasonCode::kContinueAuthentication, kMethod, kClientFinal),
                    kAuthStartMs, context_);
  EXPECT_EQ(adopted.state(), State::kOpen);
  EXPECT_EQ(Accepted(), 1u);
  EXPECT_EQ(connected_clients_.load(), 1u);  // the adopter holds the first shard's slot
  adopted.RequestClose(kAuthStartMs);
  adopted.OnClosed(context_);
  EXPECT_EQ(connected_clients_.load(), 0u);
}

}  // namespace
}  // namespace ringmq::net
