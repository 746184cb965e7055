// Unit tests for the sans-IO connection state machine (src/net/connection.h).
//
// Each test drives one Connection the way Shard does (OnReceive, NextSend/OnSent, ReadyToClose,
// DeadlineMs/OnDeadline, OnClosed) with byte arrays built by the codec's Encode or written out
// literally, and checks the exact bytes it answers, its state, the shard counters and the
// cross-shard connected-client count. Tests are named after the behaviour or spec rule they pin.
#include "net/connection.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/byte_buffer.h"
#include "connect/admission.h"
#include "connect/client_id.h"
#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "ringmq/config.h"

namespace ringmq::net {

// gtest finds this by ADL (a static function of the enum's namespace; an unnamed namespace would
// hide it).
[[maybe_unused]] static void PrintTo(Connection::State state, std::ostream* os) {
  *os << (state == Connection::State::kAwaitConnect ? "kAwaitConnect"
          : state == Connection::State::kOpen       ? "kOpen"
                                                    : "kClosing");
}

namespace {

using Bytes = std::vector<uint8_t>;
using State = Connection::State;

constexpr int kFd = 7;                // only names the peer in debug logs
constexpr uint64_t kStartMs = 1'000;  // Open() time of every connection

const Bytes kConnackAccepted = {0x20, 0x02, 0x00, 0x00};
const Bytes kPingreq = {0xC0, 0x00};
const Bytes kPingresp = {0xD0, 0x00};
const Bytes kDisconnect = {0xE0, 0x00};

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

Bytes Encode(const mqtt::Packet& packet) {
  Bytes bytes(mqtt::EncodedSize(packet));
  const size_t written = mqtt::Encode(packet, bytes);
  EXPECT_EQ(written, bytes.size());
  return bytes;
}

Bytes ToBytes(std::span<const uint8_t> span) { return Bytes(span.begin(), span.end()); }

mqtt::Connect Mqtt311Connect(std::string_view client_id = "client-1", uint16_t keepalive_s = 60) {
  mqtt::Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt311);
  connect.clean_session = true;
  connect.keepalive_s = keepalive_s;
  connect.client_id = client_id;
  return connect;
}

mqtt::Connect Mqtt31Connect() {
  mqtt::Connect connect = Mqtt311Connect("client-31");
  connect.protocol_name = "MQIsdp";
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt31);
  return connect;
}

// A well-formed CONNECT at a level this broker does not speak (6 is no MQTT version at all).
Bytes UnsupportedLevelConnect() {
  mqtt::Connect connect = Mqtt311Connect();
  connect.protocol_level = 6;
  return Encode(connect);
}

// Encodes `connect`, then ORs `flags` into its connect-flags byte: how the malformed CONNECTs
// below are made, since the encoder derives the flags from the fields.
Bytes ConnectWithExtraFlags(const mqtt::Connect& connect, uint8_t flags) {
  Bytes bytes = Encode(connect);
  EXPECT_LT(bytes[1], 0x80) << "one-byte remaining length expected";
  // Fixed header (2) + protocol name (2 + length) + level (1).
  const size_t flags_offset = 2 + 2 + connect.protocol_name.size() + 1;
  bytes[flags_offset] |= flags;
  return bytes;
}

Bytes Publish(mqtt::QoS qos, uint16_t packet_id) {
  mqtt::Publish publish;
  publish.topic = "sensors/1";
  publish.payload = "21.5";
  publish.qos = qos;
  publish.packet_id = packet_id;
  return Encode(publish);
}

// A SUBSCRIBE or UNSUBSCRIBE (by `has_qos`) of `filters`.
Bytes TopicListPacket(uint16_t packet_id, std::initializer_list<mqtt::TopicRequest> filters,
                      bool has_qos) {
  const std::span<const mqtt::TopicRequest> requests(filters.begin(), filters.size());
  Bytes entries(mqtt::TopicListEncodedSize(requests, has_qos));
  EXPECT_EQ(mqtt::EncodeTopicList(requests, has_qos, entries), entries.size());
  const mqtt::TopicList topics(entries, has_qos);
  if (has_qos) return Encode(mqtt::Subscribe{packet_id, topics});
  return Encode(mqtt::Unsubscribe{packet_id, topics});
}

// The broker's side as far as these tests need it: every admitted CONNECT is served here with
// CONNACK 0x00; PUBLISH is acknowledged per QoS and counted as having no subscriber; PUBREL gets
// PUBCOMP; every SUBSCRIBE filter is refused with 0x80 (one code per filter, MQTT-3.8.4-5);
// UNSUBSCRIBE gets UNSUBACK. Routing itself is tested with the real router (tests/shard,
// tests/integration).
class AcknowledgingSink : public PacketSink {
 public:
  explicit AcknowledgingSink(ConnectionContext& context) : context_(context) {}

  ConnectAction OnConnect(Connection& connection, const mqtt::Connect& connect) override {
    ++connects;
    if (connect.will) {
      will_qos = connect.will->qos;
      will_retain = connect.will->retain;
    }
    connection.SendConnack(false, extras);
    return ConnectAction::kServe;
  }

  void OnPacket(Connection& connection, const mqtt::Packet& packet) override {
    metrics::ShardCounters& counters = *context_.counters;
    if (const auto* publish = std::get_if<mqtt::Publish>(&packet)) {
      topics.emplace_back(publish->topic);
      counters.publish_dropped_no_subscribers.Add();
      if (publish->qos == mqtt::QoS::k0) {
        counters.publish_received_qos0.Add();
      } else if (publish->qos == mqtt::QoS::k1) {
        counters.publish_received_qos1.Add();
        connection.QueuePacket(mqtt::Puback{publish->packet_id}, context_);
        // As the router does with persistence on: the PUBACK waits for the log record.
        if (hold_token != 0) connection.HoldOutput(hold_token, &released_token);
      } else {
        counters.publish_received_qos2.Add();
        connection.QueuePacket(mqtt::Pubrec{publish->packet_id}, context_);
      }
    } else if (const auto* pubrel = std::get_if<mqtt::Pubrel>(&packet)) {
      connection.QueuePacket(mqtt::Pubcomp{pubrel->packet_id}, context_);
    } else if (const auto* subscribe = std::get_if<mqtt::Subscribe>(&packet)) {
      if (pause_subscribes) {
        // As the router does with a SUBSCRIBE bigger than its per-iteration budget: the test
        // answers it later and resumes the connection.
        paused_packet_ids.push_back(subscribe->packet_id);
        connection.Pause();
        ++packets;
        return;
      }
      const std::vector<uint8_t> codes(subscribe->topics.size(), mqtt::kSubackFailure);
      connection.QueuePacket(mqtt::Suback{subscribe->packet_id, codes}, context_);
    } else if (const auto* unsubscribe = std::get_if<mqtt::Unsubscribe>(&packet)) {
      connection.QueuePacket(mqtt::Unsuback{unsubscribe->packet_id}, context_);
    }
    ++packets;
  }

  void OnClosing(Connection&) override { ++closings; }

  int connects = 0;
  int packets = 0;
  std::vector<std::string> topics;  // of every PUBLISH, as the sink got it
  std::optional<mqtt::QoS> will_qos;
  bool will_retain = false;
  Connection::ConnackExtras extras;
  int closings = 0;
  bool pause_subscribes = false;
  std::vector<uint16_t> paused_packet_ids;
  // Non-zero: each QoS 1 PUBACK is held (HoldOutput) with this token until released_token
  // reaches it, as the router's group commit does.
  uint64_t hold_token = 0;
  uint64_t released_token = 0;

 private:
  ConnectionContext& context_;
};

// What one shard owns and shares with all its connections.
struct ShardState {
  ShardState() {
    context.connected_clients = &connected_clients;
    context.shutting_down = &shutting_down;
    context.counters = &counters;
    context.sink = &sink;
  }
  ShardState(const ShardState&) = delete;
  ShardState& operator=(const ShardState&) = delete;

  uint64_t Connect(connect::Reason reason) const {
    return counters.connect[static_cast<size_t>(reason)].Load();
  }

  std::atomic<uint32_t> connected_clients{0};
  std::atomic<bool> shutting_down{false};
  metrics::ShardCounters counters;
  ConnectionContext context;
  AcknowledgingSink sink{context};
};

// Sends everything the connection has to send, one complete send at a time, as the shard does
// when every send completes in full. Bounded: each send empties at least one buffer.
Bytes Drain(Connection& connection) {
  Bytes sent;
  for (int sends = 0; sends < 16; ++sends) {
    const std::span<const uint8_t> bytes = connection.NextSend();
    if (bytes.empty()) break;
    sent.insert(sent.end(), bytes.begin(), bytes.end());
    connection.OnSent(bytes.size());
  }
  EXPECT_TRUE(connection.NextSend().empty());
  return sent;
}

class ConnectionTest : public ::testing::Test {
 protected:
  ConnectionTest() { connection_.Open(kFd, kStartMs); }

  void Receive(const Bytes& bytes, uint64_t now_ms = kStartMs) {
    connection_.OnReceive(bytes, now_ms, shard_.context);
  }

  Bytes Drain() { return net::Drain(connection_); }

  // Connects `connect` and takes its CONNACK off the connection.
  void Accept(const mqtt::Connect& connect = Mqtt311Connect(), uint64_t now_ms = kStartMs) {
    Receive(Encode(connect), now_ms);
    ASSERT_EQ(Drain(), kConnackAccepted);
    ASSERT_EQ(connection_.state(), State::kOpen);
  }

  // A refused or malformed CONNECT that must be closed with no byte sent.
  void ExpectClosedWithoutBytes() {
    EXPECT_EQ(connection_.state(), State::kClosing);
    EXPECT_TRUE(connection_.NextSend().empty());
    EXPECT_FALSE(connection_.send_in_flight());
    EXPECT_TRUE(connection_.ReadyToClose());
    EXPECT_EQ(shard_.connected_clients.load(), 0u);
  }

  ShardState shard_;
  Connection connection_;
};

// --- CONNECT admission ---------------------------------------------------------------------

TEST_F(ConnectionTest, Mqtt311ConnectAcceptedWithConnack) {
  Receive(Encode(Mqtt311Connect("client-1", 30)));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(ToBytes(connection_.NextSend()), kConnackAccepted);
  EXPECT_TRUE(connection_.send_in_flight());
  connection_.OnSent(kConnackAccepted.size());
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_FALSE(connection_.ReadyToClose());
  EXPECT_EQ(connection_.client_id(), "client-1");
  EXPECT_EQ(connection_.keepalive_s(), 30);
  EXPECT_EQ(shard_.connected_clients.load(), 1u);
  EXPECT_EQ(shard_.Connect(connect::Reason::kAccepted), 1u);

  connection_.OnClosed(shard_.context);
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
  EXPECT_EQ(shard_.counters.connections_closed.Load(), 1u);
}

TEST_F(ConnectionTest, Mqtt31ConnectAcceptedWithConnack) {
  Receive(Encode(Mqtt31Connect()));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(Drain(), kConnackAccepted);
  EXPECT_EQ(connection_.client_id(), "client-31");
  EXPECT_EQ(shard_.connected_clients.load(), 1u);
  EXPECT_EQ(shard_.Connect(connect::Reason::kAccepted), 1u);

  connection_.OnClosed(shard_.context);
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
}

TEST_F(ConnectionTest, UnsupportedLevelRefusedWithConnack0x01ThenClosed_MQTT_3_1_2_2) {
  Receive(UnsupportedLevelConnect());
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_FALSE(connection_.ReadyToClose());  // the CONNACK goes first
  EXPECT_EQ(ToBytes(connection_.NextSend()), (Bytes{0x20, 0x02, 0x00, 0x01}));
  EXPECT_FALSE(connection_.ReadyToClose());  // not while the send is in flight
  connection_.OnSent(4);
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_EQ(shard_.Connect(connect::Reason::kUnsupportedProtocol), 1u);
  EXPECT_EQ(shard_.Connect(connect::Reason::kAccepted), 0u);
  EXPECT_EQ(shard_.counters.connect_closed_silent_policy.Load(), 0u);
  EXPECT_EQ(shard_.connected_clients.load(), 0u);

  connection_.OnClosed(shard_.context);  // a refused client holds no slot to give back
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
}

// The shard links a refusal's CONNACK and the close (Shard::SendLastAndClose): the CONNACK is
// taken as sent at once, and only from a refused connection.
TEST_F(ConnectionTest, RefusalConnackTakenAsTheFinalStaticSend_MQTT_3_2_2_5) {
  Receive(UnsupportedLevelConnect());
  const std::span<const uint8_t> last = connection_.TakeFinalStaticSend();
  EXPECT_EQ(ToBytes(last), (Bytes{0x20, 0x02, 0x00, 0x01}));
  EXPECT_FALSE(connection_.send_in_flight());
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.TakeFinalStaticSend().empty());  // taken once
}

TEST_F(ConnectionTest, NoFinalStaticSendFromAnAcceptedConnection) {
  Receive(Encode(Mqtt311Connect()));
  EXPECT_TRUE(connection_.TakeFinalStaticSend().empty());  // open: its CONNACK is not the last
  EXPECT_EQ(Drain(), kConnackAccepted);
  connection_.RequestClose(kStartMs);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.TakeFinalStaticSend().empty());  // closing with nothing left
  EXPECT_TRUE(connection_.ReadyToClose());
  connection_.OnClosed(shard_.context);
}

TEST_F(ConnectionTest, NoFinalStaticSendFromASilentRefusal) {
  shard_.context.policy.reject_policy = RejectPolicy::kSilent;
  Receive(UnsupportedLevelConnect());
  EXPECT_TRUE(connection_.TakeFinalStaticSend().empty());
  ExpectClosedWithoutBytes();
}

TEST_F(ConnectionTest, UnsupportedLevelUnderSilentPolicyClosedWithoutConnack_MQTT_3_1_2_2) {
  shard_.context.policy.reject_policy = RejectPolicy::kSilent;
  Receive(UnsupportedLevelConnect());
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.counters.connect_closed_silent_policy.Load(), 1u);
  EXPECT_EQ(shard_.Connect(connect::Reason::kUnsupportedProtocol), 1u);
}

// MQTT-8 (now §3.2.2.3): a malformed CONNECT is closed without CONNACK, whatever the policy.
TEST_F(ConnectionTest, ConnectReservedFlagClosedWithoutConnack_MQTT_3_1_2_3) {
  Receive(ConnectWithExtraFlags(Mqtt311Connect(), 0x01));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
  EXPECT_EQ(shard_.counters.connect_closed_silent_policy.Load(), 0u);
}

TEST_F(ConnectionTest, UserNameFlagWithoutUserNameClosedWithoutConnack_MQTT_3_1_2_19) {
  Receive(ConnectWithExtraFlags(Mqtt311Connect(), 0x80));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
}

TEST_F(ConnectionTest, PasswordWithoutUserNameClosedWithoutConnack_MQTT_3_1_2_22) {
  mqtt::Connect connect = Mqtt311Connect();
  connect.password = "secret";
  Receive(Encode(connect));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
}

TEST_F(ConnectionTest, WillQosWithoutWillFlagClosedWithoutConnack_MQTT_3_1_2_13) {
  Receive(ConnectWithExtraFlags(Mqtt311Connect(), 0x08));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
}

TEST_F(ConnectionTest, WillQos3ClosedWithoutConnack_MQTT_3_1_2_14) {
  mqtt::Connect connect = Mqtt311Connect();
  connect.will = mqtt::Will{.topic = "last/will", .payload = "gone", .qos = mqtt::QoS::k2};
  Receive(ConnectWithExtraFlags(connect, 0x18));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
}

TEST_F(ConnectionTest, UnknownProtocolNameClosedWithoutConnack_MQTT_3_1_2_1) {
  mqtt::Connect connect = Mqtt311Connect();
  connect.protocol_name = "MQTX";
  Receive(Encode(connect));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
}

TEST_F(ConnectionTest, ConnectFixedHeaderFlagsClosedWithoutConnack_MQTT_2_2_2_2) {
  Bytes bytes = Encode(Mqtt311Connect());
  bytes[0] |= 0x01;
  Receive(bytes);
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
}

TEST_F(ConnectionTest, MalformedConnectClosedWithoutConnackEvenUnderSilentPolicy_MQTT_8) {
  shard_.context.policy.reject_policy = RejectPolicy::kSilent;
  Receive(ConnectWithExtraFlags(Mqtt311Connect(), 0x01));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
  EXPECT_EQ(shard_.counters.connect_closed_silent_policy.Load(), 0u);
}

TEST_F(ConnectionTest, FirstPacketNotConnectClosedWithoutBytes_MQTT_3_1_0_1) {
  Receive(kPingreq);
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
  EXPECT_EQ(connection_.client_id(), "");
}

TEST_F(ConnectionTest, SecondConnectClosesConnection_MQTT_3_1_0_2) {
  Accept();
  Receive(Encode(Mqtt311Connect("client-2")));
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(shard_.counters.protocol_violations.Load(), 1u);
  EXPECT_EQ(shard_.Connect(connect::Reason::kAccepted), 1u);  // not decided again
  EXPECT_EQ(connection_.client_id(), "client-1");
  EXPECT_EQ(shard_.connected_clients.load(), 1u);  // held until the socket is gone
  connection_.OnClosed(shard_.context);
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
}

// A refused CONNECT's CONNACK gets the whole close grace to be sent, counted from the refusal.
// (The refusal used to enter kClosing without a start time, so on a real monotonic clock its
// grace had expired before it began and the shard shut the socket down next to the send.)
TEST(ConnectionCloseGraceTest, RefusedConnectGetsTheCloseGraceToSendItsConnack) {
  constexpr uint64_t kNowMs = 50'000'000;  // a monotonic clock well past kCloseGraceMs
  ShardState shard;
  Connection connection;
  connection.Open(kFd, kNowMs - 10);
  connection.OnReceive(UnsupportedLevelConnect(), kNowMs, shard.context);
  ASSERT_EQ(connection.state(), State::kClosing);
  EXPECT_EQ(connection.DeadlineMs(), kNowMs + kCloseGraceMs);
  const std::span<const uint8_t> first = connection.NextSend();
  ASSERT_EQ(first.size(), 4u);
  connection.OnSent(2);  // a partial send: the rest must still go out
  EXPECT_EQ(ToBytes(connection.NextSend()), (Bytes{0x00, 0x01}));
  connection.OnSent(2);
  EXPECT_TRUE(connection.ReadyToClose());
}

TEST_F(ConnectionTest, ConnectionLimitReachedRefusedWithConnack0x03) {
  shard_.context.policy.max_connections = 2;
  shard_.connected_clients = 2;
  Receive(Encode(Mqtt311Connect()));
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(Drain(), (Bytes{0x20, 0x02, 0x00, 0x03}));
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(shard_.Connect(connect::Reason::kConnectionLimit), 1u);
  EXPECT_EQ(shard_.connected_clients.load(), 2u);  // the reserved slot was given back
}

TEST_F(ConnectionTest, OneBelowConnectionLimitAccepted) {
  shard_.context.policy.max_connections = 2;
  shard_.connected_clients = 1;
  Accept();
  EXPECT_EQ(shard_.connected_clients.load(), 2u);
}

// bridge lane: a bridge's local session (MarkInternal) is part of the configuration: it takes no
// connected-client slot and max_connections does not refuse it.
TEST_F(ConnectionTest, BridgeLocalSessionIgnoresConnectionLimitAndTakesNoSlot) {
  shard_.context.policy.max_connections = 2;
  shard_.connected_clients = 2;
  connection_.MarkInternal();
  Accept();
  EXPECT_EQ(shard_.connected_clients.load(), 2u);  // no slot reserved
  EXPECT_EQ(shard_.Connect(connect::Reason::kConnectionLimit), 0u);
  connection_.OnClosed(shard_.context);
  EXPECT_EQ(shard_.connected_clients.load(), 2u);  // and none given back
}

TEST_F(ConnectionTest, BridgeLocalSessionStillRefusedWhileShuttingDown) {
  shard_.shutting_down = true;
  connection_.MarkInternal();
  Receive(Encode(Mqtt311Connect()));
  EXPECT_EQ(Drain(), (Bytes{0x20, 0x02, 0x00, 0x03}));
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
}

TEST_F(ConnectionTest, ShuttingDownRefusedWithConnack0x03) {
  shard_.shutting_down = true;
  Receive(Encode(Mqtt311Connect()));
  EXPECT_EQ(Drain(), (Bytes{0x20, 0x02, 0x00, 0x03}));
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(shard_.Connect(connect::Reason::kShuttingDown), 1u);
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
}

TEST(ConnectionAssignedIdTest, EmptyClientIdWithCleanSessionGetsUniqueId_MQTT_3_1_3_6) {
  ShardState shard;
  Connection first;
  Connection second;
  first.Open(kFd, kStartMs);
  second.Open(kFd + 1, kStartMs);
  first.OnReceive(Encode(Mqtt311Connect("")), kStartMs, shard.context);
  second.OnReceive(Encode(Mqtt311Connect("")), kStartMs, shard.context);
  EXPECT_EQ(Drain(first), kConnackAccepted);
  EXPECT_EQ(Drain(second), kConnackAccepted);
  EXPECT_FALSE(first.client_id().empty());
  EXPECT_FALSE(second.client_id().empty());
  EXPECT_NE(first.client_id(), second.client_id());
  EXPECT_EQ(shard.connected_clients.load(), 2u);
}

// The assigned id has the reserved form and this shard as its home, so the router serves it
// here, in this shard's session map (connect/client_id.h).
TEST(ConnectionAssignedIdTest, AssignedIdIsHomedOnTheAcceptingShard_MQTT_3_1_3_6) {
  ShardState shard;
  shard.context.shard_count = 4;
  shard.context.shard_index = 2;
  for (int i = 0; i < 20; ++i) {
    Connection connection;
    connection.Open(kFd, kStartMs);
    connection.OnReceive(Encode(Mqtt311Connect("")), kStartMs, shard.context);
    ASSERT_EQ(Drain(connection), kConnackAccepted);
    EXPECT_TRUE(connect::HasAssignedClientIdPrefix(connection.client_id()));
    EXPECT_EQ(connect::HomeShard(connection.client_id(), 4), 2u) << connection.client_id();
  }
}

// A connection adopted from another shard with an empty id gets an id assigned on the adopting
// shard (admission is not repeated).
TEST(ConnectionAssignedIdTest, AdoptedConnectionWithEmptyIdGetsAnAssignedId) {
  ShardState shard;
  Connection connection;
  connection.Adopt(kFd, kStartMs);
  connection.OnReceive(Encode(Mqtt311Connect("")), kStartMs, shard.context);
  EXPECT_EQ(Drain(connection), kConnackAccepted);
  EXPECT_TRUE(connect::HasAssignedClientIdPrefix(connection.client_id()));
}

TEST(ConnectionAssignedIdTest, ClientIdOfAssignedFormRefused0x02) {
  ShardState shard;
  Connection connection;
  connection.Open(kFd, kStartMs);
  const std::string id = std::string(connect::kAssignedClientIdPrefix) + std::string(32, 'a');
  connection.OnReceive(Encode(Mqtt311Connect(id)), kStartMs, shard.context);
  EXPECT_EQ(Drain(connection), (Bytes{0x20, 0x02, 0x00, 0x02}));
  EXPECT_EQ(connection.state(), State::kClosing);
  EXPECT_EQ(shard.Connect(connect::Reason::kClientIdReserved), 1u);
  EXPECT_EQ(shard.sink.connects, 0);
}

// --- Framing ---------------------------------------------------------------------------------

// A CONNECT with every optional field and a two-byte remaining length, so that splits fall
// inside the fixed header, inside strings and between fields.
mqtt::Connect LongConnect() {
  static const std::string kPassword(150, 'p');
  mqtt::Connect connect = Mqtt311Connect("split-client", 45);
  connect.will = mqtt::Will{.topic = "last/will", .payload = "gone", .qos = mqtt::QoS::k1};
  connect.user_name = "user";
  connect.password = kPassword;
  return connect;
}

TEST(ConnectionFramingTest, ConnectSplitAtEveryByteBoundaryGivesSameResult) {
  const Bytes bytes = Encode(LongConnect());
  ASSERT_GE(bytes[1], 0x80) << "two-byte remaining length expected";
  for (size_t split = 1; split < bytes.size(); ++split) {
    SCOPED_TRACE(testing::Message() << "split at " << split << " of " << bytes.size());
    ShardState shard;
    Connection connection;
    connection.Open(kFd, kStartMs);
    const std::span<const uint8_t> all(bytes);
    connection.OnReceive(all.first(split), kStartMs, shard.context);
    EXPECT_EQ(connection.state(), State::kAwaitConnect);
    EXPECT_TRUE(connection.NextSend().empty());
    connection.OnReceive(all.subspan(split), kStartMs, shard.context);
    EXPECT_EQ(connection.state(), State::kOpen);
    EXPECT_EQ(Drain(connection), kConnackAccepted);
    EXPECT_EQ(connection.client_id(), "split-client");
    EXPECT_EQ(connection.keepalive_s(), 45);
    EXPECT_EQ(shard.connected_clients.load(), 1u);
    EXPECT_EQ(shard.Connect(connect::Reason::kAccepted), 1u);
  }
}

TEST(ConnectionFramingTest, ConnectFedOneByteAtATimeGivesSameResult) {
  const Bytes bytes = Encode(LongConnect());
  ShardState shard;
  Connection connection;
  connection.Open(kFd, kStartMs);
  for (size_t i = 0; i < bytes.size(); ++i) {
    ASSERT_EQ(connection.state(), State::kAwaitConnect) << "byte " << i;
    connection.OnReceive(std::span<const uint8_t>(bytes).subspan(i, 1), kStartMs, shard.context);
  }
  EXPECT_EQ(connection.state(), State::kOpen);
  EXPECT_EQ(Drain(connection), kConnackAccepted);
  EXPECT_EQ(connection.client_id(), "split-client");
  EXPECT_EQ(connection.keepalive_s(), 45);
  EXPECT_EQ(shard.connected_clients.load(), 1u);
  EXPECT_EQ(shard.counters.bytes_received.Load(), bytes.size());
}

// An idle connection keeps no large output buffer once a burst is sent (memory per idle
// connection); while more bytes are queued the buffers are kept for the next send.
TEST_F(ConnectionTest, LargeOutputBuffersReleasedWhenTheConnectionGoesIdle) {
  Accept();
  ByteBuffer& out = connection_.output_buffer();
  out.assign(64 * 1024, 0x30);
  std::span<const uint8_t> sending = connection_.NextSend();
  ASSERT_EQ(sending.size(), 64u * 1024);
  connection_.output_buffer().assign(32 * 1024, 0x30);  // queued behind the send in flight
  connection_.OnSent(sending.size());
  EXPECT_GE(connection_.output_buffer().capacity(), 32u * 1024) << "busy: buffers kept";
  sending = connection_.NextSend();
  ASSERT_EQ(sending.size(), 32u * 1024);
  connection_.OnSent(sending.size());
  EXPECT_LE(connection_.output_buffer().capacity(), 4096u) << "idle: large buffers released";
  EXPECT_TRUE(connection_.NextSend().empty());
  // A small reply afterwards still works.
  Receive(Encode(mqtt::Pingreq{}));
  EXPECT_EQ(Drain(), kPingresp);
}

TEST_F(ConnectionTest, SeveralPacketsInOneReceiveAnsweredInOrder) {
  Receive(Cat({Encode(Mqtt311Connect()), kPingreq, kPingreq}));
  EXPECT_EQ(ToBytes(connection_.NextSend()), kConnackAccepted);
  connection_.OnSent(kConnackAccepted.size());
  EXPECT_EQ(ToBytes(connection_.NextSend()), Cat({kPingresp, kPingresp}));
  connection_.OnSent(4);
  EXPECT_TRUE(connection_.NextSend().empty());
}

TEST_F(ConnectionTest, AnswersKeepPacketOrderAcrossTypes) {
  Accept();
  Receive(Cat(
      {Publish(mqtt::QoS::k1, 1), kPingreq, Publish(mqtt::QoS::k2, 2), Encode(mqtt::Pubrel{2})}));
  EXPECT_EQ(Drain(), Cat({{0x40, 0x02, 0x00, 0x01},
                          kPingresp,
                          {0x50, 0x02, 0x00, 0x02},
                          {0x70, 0x02, 0x00, 0x02}}));
}

TEST_F(ConnectionTest, TrailingPartialFrameKeptUntilItCompletes) {
  const Bytes publish = Publish(mqtt::QoS::k1, 0x0102);
  const std::span<const uint8_t> all(publish);
  // The CONNECT and a PINGREQ end in a split PUBLISH; the next receive completes it and adds one
  // byte of a PINGREQ, the last receive its second byte.
  Receive(Cat({Encode(Mqtt311Connect()), kPingreq, ToBytes(all.first(3))}));
  EXPECT_EQ(Drain(), Cat({kConnackAccepted, kPingresp}));
  Receive(Cat({ToBytes(all.subspan(3)), {0xC0}}));
  EXPECT_EQ(Drain(), (Bytes{0x40, 0x02, 0x01, 0x02}));
  Receive({0x00});
  EXPECT_EQ(Drain(), kPingresp);
  EXPECT_EQ(connection_.state(), State::kOpen);
}

// --- Packets after CONNECT -------------------------------------------------------------------

TEST_F(ConnectionTest, PingreqAnsweredWithPingresp_MQTT_3_12_4_1) {
  Accept();
  Receive(kPingreq);
  EXPECT_EQ(Drain(), kPingresp);
  EXPECT_EQ(connection_.state(), State::kOpen);
}

TEST_F(ConnectionTest, DisconnectClosesWithoutReply) {
  Accept();
  Receive(kDisconnect, kStartMs + 10);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(shard_.counters.client_disconnects.Load(), 1u);
  EXPECT_EQ(shard_.counters.protocol_violations.Load(), 0u);
}

TEST_F(ConnectionTest, BytesAfterDisconnectAreIgnored) {
  Accept();
  Receive(Cat({kDisconnect, kPingreq, Publish(mqtt::QoS::k1, 9)}));
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  Receive(kPingreq);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(shard_.counters.publish_received_qos1.Load(), 0u);
}

TEST_F(ConnectionTest, PublishQos0GetsNoReply) {
  Accept();
  Receive(Publish(mqtt::QoS::k0, 0));
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.publish_received_qos0.Load(), 1u);
}

TEST_F(ConnectionTest, PublishQos1AnsweredWithPubackOfSameId_MQTT_4_3_2_2) {
  Accept();
  Receive(Publish(mqtt::QoS::k1, 0xBEEF));
  EXPECT_EQ(Drain(), (Bytes{0x40, 0x02, 0xBE, 0xEF}));
  EXPECT_EQ(shard_.counters.publish_received_qos1.Load(), 1u);
}

TEST_F(ConnectionTest, PublishQos2AnsweredWithPubrecOfSameId_MQTT_4_3_3_2) {
  Accept();
  Receive(Publish(mqtt::QoS::k2, 0x1234));
  EXPECT_EQ(Drain(), (Bytes{0x50, 0x02, 0x12, 0x34}));
  EXPECT_EQ(shard_.counters.publish_received_qos2.Load(), 1u);
}

TEST_F(ConnectionTest, PubrelAnsweredWithPubcompOfSameId_MQTT_4_3_3_2) {
  Accept();
  Receive(Encode(mqtt::Pubrel{0x1234}));
  EXPECT_EQ(Drain(), (Bytes{0x70, 0x02, 0x12, 0x34}));
  EXPECT_EQ(connection_.state(), State::kOpen);
}

TEST_F(ConnectionTest, SubscribeAnsweredWithOneReturnCodePerFilter_MQTT_3_8_4_5) {
  Accept();
  Receive(TopicListPacket(0x0A0B,
                          {{"a/b", mqtt::QoS::k0}, {"c/+", mqtt::QoS::k1}, {"#", mqtt::QoS::k2}},
                          /*has_qos=*/true));
  // No routing yet: every filter is refused with 0x80.
  EXPECT_EQ(Drain(), (Bytes{0x90, 0x05, 0x0A, 0x0B, 0x80, 0x80, 0x80}));
  EXPECT_EQ(connection_.state(), State::kOpen);
}

TEST_F(ConnectionTest, SubscribeOfManyFiltersAnsweredWithOneReturnCodePerFilter_MQTT_3_8_4_5) {
  // More filters than any small fixed buffer holds; well within max_packet_size (1 MiB).
  constexpr size_t kFilters = 1'000;
  const std::vector<mqtt::TopicRequest> requests(kFilters, {"a/+", mqtt::QoS::k1});
  Bytes entries(mqtt::TopicListEncodedSize(requests, /*has_qos=*/true));
  ASSERT_EQ(mqtt::EncodeTopicList(requests, /*has_qos=*/true, entries), entries.size());
  const Bytes subscribe = Encode(mqtt::Subscribe{7, mqtt::TopicList(entries, true)});
  ASSERT_LE(subscribe.size(), shard_.context.max_packet_size);

  Accept();
  Receive(subscribe);
  const Bytes codes(kFilters, mqtt::kSubackFailure);
  EXPECT_EQ(Drain(), Encode(mqtt::Suback{7, codes}));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.packet_too_large.Load(), 0u);
}

TEST_F(ConnectionTest, UnsubscribeAnsweredWithUnsubackOfSameId_MQTT_3_10_4_4) {
  Accept();
  Receive(TopicListPacket(0x0C0D, {{"a/b", mqtt::QoS::k0}, {"c/+", mqtt::QoS::k0}},
                          /*has_qos=*/false));
  EXPECT_EQ(Drain(), (Bytes{0xB0, 0x02, 0x0C, 0x0D}));
  EXPECT_EQ(connection_.state(), State::kOpen);
}

// --- Pause (a SUBSCRIBE worked on over several loop iterations) ------------------------------

TEST_F(ConnectionTest, PacketsBehindPausedSubscribeWaitForItsSuback_MQTT_4_6_0_6) {
  shard_.sink.pause_subscribes = true;
  Accept();
  Receive(Cat({TopicListPacket(9, {{"a/#", mqtt::QoS::k1}}, /*has_qos=*/true), kPingreq,
               Publish(mqtt::QoS::k1, 3)}));
  EXPECT_TRUE(connection_.paused());
  EXPECT_EQ(shard_.sink.packets, 1) << "nothing after the SUBSCRIBE is processed yet";
  EXPECT_TRUE(Drain().empty()) << "no PINGRESP or PUBACK before the SUBACK";
  Receive(kPingreq);  // arrives while paused: waits behind the others
  EXPECT_TRUE(Drain().empty());

  const Bytes suback = Encode(mqtt::Suback{9, Bytes{0x01}});
  connection_.QueuePacket(mqtt::Suback{9, Bytes{0x01}}, shard_.context);
  connection_.Resume(kStartMs + 10, shard_.context);
  EXPECT_FALSE(connection_.paused());
  EXPECT_EQ(shard_.sink.packets, 2);
  EXPECT_EQ(Drain(), Cat({suback, kPingresp, Encode(mqtt::Puback{3}), kPingresp}));
  Receive(kPingreq);
  EXPECT_EQ(Drain(), kPingresp) << "served directly again";
}

TEST_F(ConnectionTest, ResumeStopsAgainAtTheNextPausedPacket) {
  shard_.sink.pause_subscribes = true;
  Accept();
  Receive(Cat({TopicListPacket(1, {{"a", mqtt::QoS::k0}}, true), kPingreq,
               TopicListPacket(2, {{"b", mqtt::QoS::k0}}, true), kPingreq}));
  EXPECT_EQ(shard_.sink.paused_packet_ids, (std::vector<uint16_t>{1}));
  connection_.QueuePacket(mqtt::Suback{1, Bytes{0x00}}, shard_.context);
  connection_.Resume(kStartMs, shard_.context);
  EXPECT_TRUE(connection_.paused()) << "the second SUBSCRIBE paused it again";
  EXPECT_EQ(shard_.sink.paused_packet_ids, (std::vector<uint16_t>{1, 2}));
  EXPECT_EQ(Drain(), Cat({Encode(mqtt::Suback{1, Bytes{0x00}}), kPingresp}));
  connection_.QueuePacket(mqtt::Suback{2, Bytes{0x00}}, shard_.context);
  connection_.Resume(kStartMs, shard_.context);
  EXPECT_EQ(Drain(), Cat({Encode(mqtt::Suback{2, Bytes{0x00}}), kPingresp}));
}

TEST_F(ConnectionTest, BytesWaitingWhilePausedBlockReceiveAtMaxPacketSize) {
  shard_.sink.pause_subscribes = true;
  shard_.context.max_packet_size = 64;
  Accept();
  Receive(TopicListPacket(1, {{"a", mqtt::QoS::k0}}, true));
  ASSERT_TRUE(connection_.paused());
  for (int i = 0; i < 31; ++i) Receive(kPingreq);
  EXPECT_FALSE(connection_.receive_blocked()) << "62 bytes wait";
  Receive(kPingreq);
  EXPECT_TRUE(connection_.receive_blocked()) << "64 bytes wait: the shard stops reading";
  Receive(kPingreq);  // what the kernel delivered before the shard's cancel took effect
  EXPECT_EQ(connection_.state(), State::kOpen) << "kept, not a violation";
  connection_.QueuePacket(mqtt::Suback{1, Bytes{0x00}}, shard_.context);
  connection_.Resume(kStartMs, shard_.context);
  EXPECT_FALSE(connection_.receive_blocked());
  Bytes expected = Encode(mqtt::Suback{1, Bytes{0x00}});
  for (int i = 0; i < 33; ++i) expected.insert(expected.end(), kPingresp.begin(), kPingresp.end());
  EXPECT_EQ(Drain(), expected);
}

TEST_F(ConnectionTest, PausedConnectionNotClosedForKeepalive_MQTT_3_1_2_24) {
  // The client's packets wait for the broker's work; the broker must not time the client out
  // for that.
  shard_.sink.pause_subscribes = true;
  Accept(Mqtt311Connect("client-1", /*keepalive_s=*/2));
  Receive(TopicListPacket(1, {{"a", mqtt::QoS::k0}}, true));
  ASSERT_EQ(connection_.DeadlineMs(), kStartMs + 3'000);
  connection_.OnDeadline(kStartMs + 3'000, shard_.context);
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 6'000) << "the clock restarted";
  EXPECT_EQ(shard_.counters.keepalive_timeout.Load(), 0u);
  connection_.QueuePacket(mqtt::Suback{1, Bytes{0x00}}, shard_.context);
  connection_.Resume(kStartMs + 4'000, shard_.context);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 7'000) << "from the resume";
  connection_.OnDeadline(kStartMs + 7'000, shard_.context);
  EXPECT_EQ(connection_.state(), State::kClosing) << "not paused: keepalive applies again";
  EXPECT_EQ(shard_.counters.keepalive_timeout.Load(), 1u);
}

// --- Held back (persistence: replies waiting for the log) ------------------------------------

// QoS 1 PUBLISHes with one-byte topic and payload, packet ids first, first + 1, ...
Bytes ManyPublishes(uint16_t first, int count) {
  Bytes all;
  for (int i = 0; i < count; ++i) {
    mqtt::Publish publish;
    publish.topic = "t";
    publish.payload = "p";
    publish.qos = mqtt::QoS::k1;
    publish.packet_id = static_cast<uint16_t>(first + i);
    const Bytes one = Encode(publish);
    all.insert(all.end(), one.begin(), one.end());
  }
  return all;
}

// A 3.1.1 publisher has no Receive Maximum: it may send far more QoS 1 PUBLISHes than the
// replies' share holds while their PUBACKs wait for fdatasync. Those replies wait for the
// broker's disk, not for the peer, so the connection is not closed (output_overflow): at the
// bound (ReplyBytesMax() / 4 held) the rest of its frames wait and the socket is not read.
TEST_F(ConnectionTest, PublisherOutrunningTheLogIsHeldBackNotClosed) {
  AcknowledgingSink& sink = shard_.sink;
  sink.hold_token = 1;
  Accept();
  const size_t bound = shard_.context.ReplyBytesMax() / 4 / 4;  // PUBACKs of 4 bytes
  const int total = static_cast<int>(shard_.context.ReplyBytesMax() / 4) + 100;  // > the share
  Receive(ManyPublishes(1, total));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 0u);
  EXPECT_TRUE(connection_.held_back());
  EXPECT_TRUE(connection_.receive_blocked()) << "the shard stops reading: TCP pushes back";
  EXPECT_EQ(shard_.counters.persist_input_held_back.Load(), 1u);
  EXPECT_EQ(static_cast<size_t>(sink.packets), bound) << "frames after the bound wait";
  EXPECT_TRUE(Drain().empty()) << "nothing is sent before the log releases it";
  connection_.OnOutputReleased(kStartMs, shard_.context);
  EXPECT_EQ(static_cast<size_t>(sink.packets), bound) << "not released yet: still held back";

  // Each release lets the next `bound` PUBLISHes in; every PUBACK goes out, in order.
  Bytes expected;
  for (int i = 1; i <= total; ++i) {
    const Bytes puback = Encode(mqtt::Puback{static_cast<uint16_t>(i)});
    expected.insert(expected.end(), puback.begin(), puback.end());
  }
  Bytes sent;
  for (int round = 0; round < 16 && sink.packets < total + 1; ++round) {
    sink.released_token = sink.hold_token;
    ++sink.hold_token;
    connection_.OnOutputReleased(kStartMs, shard_.context);
    const Bytes out = Drain();
    sent.insert(sent.end(), out.begin(), out.end());
  }
  EXPECT_EQ(sink.packets, total);
  sink.released_token = sink.hold_token;
  const Bytes out = Drain();
  sent.insert(sent.end(), out.begin(), out.end());
  EXPECT_EQ(sent, expected);
  EXPECT_FALSE(connection_.held_back());
  EXPECT_FALSE(connection_.receive_blocked());
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 0u);
  EXPECT_GE(shard_.counters.persist_input_held_back.Load(), 4u);
}

TEST_F(ConnectionTest, HeldBackConnectionNotClosedForKeepalive_MQTT_3_1_2_24) {
  // The packets wait for the broker's disk; the client must not be timed out for that.
  shard_.sink.hold_token = 1;
  Accept(Mqtt311Connect("client-1", /*keepalive_s=*/2));
  Receive(ManyPublishes(1, static_cast<int>(shard_.context.ReplyBytesMax() / 16) + 1));
  ASSERT_TRUE(connection_.held_back());
  connection_.OnDeadline(kStartMs + 3'000, shard_.context);
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.keepalive_timeout.Load(), 0u);
  shard_.sink.released_token = 1;
  connection_.OnOutputReleased(kStartMs + 4'000, shard_.context);
  EXPECT_FALSE(connection_.held_back());
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 7'000) << "the clock restarts at the release";
}

TEST_F(ConnectionTest, PeerNotReadingReleasedRepliesIsStillClosed) {
  // Released replies the peer does not read count as before (output_overflow): holding back
  // applies only to replies that wait for the log.
  shard_.sink.hold_token = 1;
  shard_.sink.released_token = 1'000'000;  // every hold is released at once
  Accept();
  Receive(ManyPublishes(1, 1));
  ASSERT_FALSE(connection_.NextSend().empty());  // in flight, never completed
  Receive(ManyPublishes(2, static_cast<int>(shard_.context.ReplyBytesMax() / 4) + 10));
  EXPECT_FALSE(connection_.held_back());
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 1u);
  EXPECT_EQ(shard_.counters.persist_input_held_back.Load(), 0u);
}

// MQTT 3.1 clients set DUP on a retransmitted PUBREL, SUBSCRIBE or UNSUBSCRIBE (3.1 allowed
// it; 3.1.1 fixed the flags to 0b0010). A 3.1 connection is served, pipelined behind CONNECT too.
TEST_F(ConnectionTest, Mqtt31RetransmissionsWithDupAreServed) {
  Bytes pubrel = Encode(mqtt::Pubrel{5});
  Bytes subscribe = TopicListPacket(6, {{"a/b", mqtt::QoS::k1}}, /*has_qos=*/true);
  Bytes unsubscribe = TopicListPacket(7, {{"a/b", mqtt::QoS::k0}}, /*has_qos=*/false);
  for (Bytes* packet : {&pubrel, &subscribe, &unsubscribe}) (*packet)[0] |= 0x08;
  Receive(Cat({Encode(Mqtt31Connect()), pubrel, subscribe, unsubscribe}));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(Drain(), Cat({kConnackAccepted, Bytes{0x70, 0x02, 0x00, 0x05},
                          Bytes{0x90, 0x03, 0x00, 0x06, 0x80}, Bytes{0xB0, 0x02, 0x00, 0x07}}));
  EXPECT_EQ(shard_.counters.protocol_violations.Load(), 0u);
}

TEST_F(ConnectionTest, Mqtt311SubscribeWithDupClosed_MQTT_3_8_1_1) {
  Accept();
  Bytes subscribe = TopicListPacket(6, {{"a/b", mqtt::QoS::k1}}, /*has_qos=*/true);
  subscribe[0] |= 0x08;
  Receive(subscribe);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_EQ(shard_.counters.protocol_violations.Load(), 1u);
}

TEST(ConnectionServerPacketTest, ServerToClientPacketFromClientClosesConnection_MQTT_4_8_0_1) {
  const struct {
    const char* name;
    Bytes bytes;
  } cases[] = {
      {"CONNACK", {0x20, 0x02, 0x00, 0x00}},
      {"SUBACK", {0x90, 0x03, 0x00, 0x01, 0x00}},
      {"UNSUBACK", {0xB0, 0x02, 0x00, 0x01}},
      {"PINGRESP", kPingresp},
  };
  for (const auto& packet : cases) {
    SCOPED_TRACE(packet.name);
    ShardState shard;
    Connection connection;
    connection.Open(kFd, kStartMs);
    connection.OnReceive(Encode(Mqtt311Connect()), kStartMs, shard.context);
    ASSERT_EQ(Drain(connection), kConnackAccepted);
    connection.OnReceive(Cat({packet.bytes, kPingreq}), kStartMs, shard.context);
    EXPECT_EQ(connection.state(), State::kClosing);
    EXPECT_TRUE(connection.NextSend().empty());  // nor the PINGREQ after it answered
    EXPECT_TRUE(connection.ReadyToClose());
    EXPECT_EQ(shard.counters.protocol_violations.Load(), 1u);
    connection.OnClosed(shard.context);
    EXPECT_EQ(shard.connected_clients.load(), 0u);
  }
}

TEST_F(ConnectionTest, MalformedPacketAfterConnectCountsProtocolViolation_MQTT_3_3_1_4) {
  Accept();
  Bytes publish = Publish(mqtt::QoS::k1, 1);
  publish[0] |= 0x06;  // QoS 3
  Receive(publish);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_EQ(shard_.counters.protocol_violations.Load(), 1u);
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 0u);
}

// --- Limits ----------------------------------------------------------------------------------

TEST_F(ConnectionTest, HeaderAnnouncingPacketAboveMaxPacketSizeClosesAtOnce) {
  Accept();
  // PUBLISH announcing 268,435,455 bytes: refused from the five header bytes alone.
  Receive({0x30, 0xFF, 0xFF, 0xFF, 0x7F});
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.packet_too_large.Load(), 1u);
  EXPECT_EQ(shard_.counters.protocol_violations.Load(), 0u);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.ReadyToClose());
  // Nothing was kept to complete the frame: what follows is ignored, not appended.
  Receive(Bytes(64, 0x00));
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.packet_too_large.Load(), 1u);
}

TEST_F(ConnectionTest, OversizedHeaderSplitAcrossReceivesClosesOnceComplete) {
  Accept();
  Receive({0x30, 0xFF});
  EXPECT_EQ(connection_.state(), State::kOpen);
  Receive({0xFF, 0xFF, 0x7F});
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.packet_too_large.Load(), 1u);
}

TEST_F(ConnectionTest, MaxPacketSizeCountsWholePacketAndIsInclusive) {
  const Bytes publish = Publish(mqtt::QoS::k1, 5);
  Accept();
  shard_.context.max_packet_size = static_cast<uint32_t>(publish.size());
  Receive(publish);
  EXPECT_EQ(Drain(), (Bytes{0x40, 0x02, 0x00, 0x05}));
  EXPECT_EQ(connection_.state(), State::kOpen);

  shard_.context.max_packet_size = static_cast<uint32_t>(publish.size() - 1);
  Receive(publish);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_EQ(shard_.counters.packet_too_large.Load(), 1u);
}

// Issue 11: a connection that had not finished its CONNECT could make the broker buffer up to
// max_packet_size. The first packet has its own bound, checked from the fixed header.
TEST_F(ConnectionTest, ConnectAboveMaxConnectPacketSizeClosedFromItsHeaderWithoutConnack) {
  ASSERT_EQ(shard_.context.max_connect_packet_size, 64u * 1024);
  // CONNECT announcing 100 KiB: under max_packet_size (1 MiB), over the CONNECT bound.
  Receive({0x10, 0x80, 0x80, 0x06});
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.connect_packet_too_large.Load(), 1u);
  EXPECT_EQ(shard_.counters.packet_too_large.Load(), 0u);
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 0u);
  ExpectClosedWithoutBytes();
  // The body that follows is not kept.
  Receive(Bytes(4096, 0x00));
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.connect_packet_too_large.Load(), 1u);
}

TEST_F(ConnectionTest, MaxConnectPacketSizeCountsWholeConnectAndIsInclusive) {
  const Bytes connect = Encode(LongConnect());
  shard_.context.max_connect_packet_size = static_cast<uint32_t>(connect.size());
  Receive(connect);
  EXPECT_EQ(Drain(), kConnackAccepted);
  EXPECT_EQ(connection_.state(), State::kOpen);

  Connection second;
  second.Open(kFd + 1, kStartMs);
  shard_.context.max_connect_packet_size = static_cast<uint32_t>(connect.size() - 1);
  second.OnReceive(connect, kStartMs, shard_.context);
  EXPECT_EQ(second.state(), State::kClosing);
  EXPECT_TRUE(second.NextSend().empty());
  EXPECT_EQ(shard_.counters.connect_packet_too_large.Load(), 1u);
}

TEST_F(ConnectionTest, MaxPacketSizeBelowMaxConnectPacketSizeAppliesToTheConnectToo) {
  const Bytes connect = Encode(LongConnect());
  shard_.context.max_packet_size = static_cast<uint32_t>(connect.size() - 1);
  Receive(connect);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_EQ(shard_.counters.connect_packet_too_large.Load(), 1u);
}

// The CONNECT bound is for the first packet only: afterwards max_packet_size applies.
TEST_F(ConnectionTest, PacketsAfterConnectMayExceedMaxConnectPacketSize) {
  shard_.context.max_connect_packet_size = 64;
  Accept();
  mqtt::Publish publish;
  publish.topic = "big";
  const std::string payload(4096, 'x');
  publish.payload = payload;
  publish.qos = mqtt::QoS::k1;
  publish.packet_id = 3;
  Receive(Encode(publish));
  EXPECT_EQ(Drain(), (Bytes{0x40, 0x02, 0x00, 0x03}));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.connect_packet_too_large.Load(), 0u);
}

// --- Send path -------------------------------------------------------------------------------

TEST_F(ConnectionTest, OneSendInFlightRepliesWaitForOnSent) {
  Receive(Encode(Mqtt311Connect()));
  EXPECT_EQ(ToBytes(connection_.NextSend()), kConnackAccepted);
  Receive(Cat({kPingreq, kPingreq}));
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.send_in_flight());

  connection_.OnSent(1);  // partial send: the rest of the CONNACK comes first
  EXPECT_FALSE(connection_.send_in_flight());
  EXPECT_EQ(ToBytes(connection_.NextSend()), (Bytes{0x02, 0x00, 0x00}));
  Receive(kPingreq);  // queued behind the two already waiting
  EXPECT_TRUE(connection_.NextSend().empty());
  connection_.OnSent(3);

  EXPECT_EQ(ToBytes(connection_.NextSend()), Cat({kPingresp, kPingresp, kPingresp}));
  connection_.OnSent(2);
  EXPECT_EQ(ToBytes(connection_.NextSend()), Cat({kPingresp, kPingresp}));
  connection_.OnSent(0);  // a zero-byte completion changes nothing
  EXPECT_EQ(ToBytes(connection_.NextSend()), Cat({kPingresp, kPingresp}));
  connection_.OnSent(4);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_FALSE(connection_.send_in_flight());
}

TEST_F(ConnectionTest, SubackLargerThanOutputCapStillQueued_MQTT_3_8_4_5) {
  // A SUBSCRIBE of many filters within max_packet_size is answered with one code per filter,
  // even when that SUBACK alone is bigger than the output cap.
  shard_.context.max_output_bytes = 64;
  Accept();
  const Bytes codes(100, mqtt::kSubackFailure);
  connection_.QueuePacket(mqtt::Suback{3, codes}, shard_.context);
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 0u);
  EXPECT_EQ(Drain(), Encode(mqtt::Suback{3, codes}));
  // Once more than half the cap waits, a reply that does not fit closes as before.
  Receive(Cat({kPingreq, kPingreq}));
  ASSERT_FALSE(connection_.NextSend().empty());  // 4 bytes in flight, not read by the peer
  connection_.QueuePacket(mqtt::Suback{4, Bytes(30, 0x00)}, shard_.context);  // 4 + 34 bytes
  EXPECT_EQ(connection_.state(), State::kOpen);
  connection_.QueuePacket(mqtt::Suback{5, Bytes(30, 0x00)}, shard_.context);  // 38 > 32 used
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 1u);
}

TEST_F(ConnectionTest, QueueAckWritesWhatTheEncoderWrites_MQTT_3_4_to_3_7) {
  Accept();
  Bytes expected;
  for (const uint16_t id : {1, 0x00ff, 0x0100, 0x1234, 0xfffe, 0xffff}) {
    connection_.QueueAck(mqtt::PacketType::kPuback, id, shard_.context);
    connection_.QueueAck(mqtt::PacketType::kPubrec, id, shard_.context);
    connection_.QueueAck(mqtt::PacketType::kPubcomp, id, shard_.context);
    expected = Cat({expected, Encode(mqtt::Puback{id}), Encode(mqtt::Pubrec{id}),
                    Encode(mqtt::Pubcomp{id})});
  }
  EXPECT_EQ(connection_.pending_reply_bytes(), expected.size());
  EXPECT_EQ(Drain(), expected);
  EXPECT_EQ(connection_.pending_reply_bytes(), 0u);
}

TEST_F(ConnectionTest, QueueAckKeepsTheReplyCap) {
  shard_.context.max_output_bytes = 16;  // replies' share: 8 bytes
  Accept();
  ASSERT_EQ(shard_.context.ReplyBytesMax(), 8u);
  connection_.QueueAck(mqtt::PacketType::kPuback, 1, shard_.context);
  connection_.QueueAck(mqtt::PacketType::kPuback, 2, shard_.context);  // 8: at the share
  EXPECT_EQ(connection_.state(), State::kOpen);
  connection_.QueueAck(mqtt::PacketType::kPuback, 3, shard_.context);  // 12 > 8
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 1u);
  EXPECT_EQ(Drain(), Cat({Encode(mqtt::Puback{1}), Encode(mqtt::Puback{2})}));
}

TEST_F(ConnectionTest, OutputCapClosesPeerThatDoesNotRead) {
  shard_.context.max_output_bytes = 8;  // replies' share: 4 bytes
  Receive(Encode(Mqtt311Connect()));
  ASSERT_EQ(ToBytes(connection_.NextSend()), kConnackAccepted);  // 4 bytes in flight
  Receive(Cat({kPingreq, kPingreq}));                            // 2 + 2: at the replies' cap
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 0u);

  Receive(Cat({kPingreq, kPingreq}));  // 6 > 4
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 1u);
  // What fitted is still delivered before the close.
  EXPECT_FALSE(connection_.ReadyToClose());
  connection_.OnSent(kConnackAccepted.size());
  EXPECT_EQ(Drain(), Cat({kPingresp, kPingresp}));
  EXPECT_TRUE(connection_.ReadyToClose());
}

// Issue 11: a slow reader of large messages was closed (output_overflow, will published) by
// its own PINGREQ or PUBACK, because a delivery above the delivery budget was counted against
// the reply cap. Replies have their own share: a delivery of any size never makes one overflow.
TEST_F(ConnectionTest, LargeDeliveryWaitingDoesNotMakeReplyOverflow_MQTT_3_12_4_1) {
  Accept();
  ASSERT_EQ(shard_.context.max_output_bytes, 128u * 1024);
  // A 200 KiB PUBLISH (well under max_packet_size) written by the router into an empty buffer,
  // as Session::WriteOutput does for a message larger than the delivery budget.
  ByteBuffer& out = connection_.output_buffer();
  out.assign(200 * 1024, 0x30);
  const std::span<const uint8_t> sending = connection_.NextSend();
  ASSERT_EQ(sending.size(), 200u * 1024);
  connection_.OnSent(1000);  // the peer's small receive window took a little
  // The next message, larger than the budget too, waits behind the send in flight.
  connection_.output_buffer().assign(150 * 1024, 0x30);
  ASSERT_GT(connection_.pending_output_bytes(), shard_.context.max_output_bytes);

  Receive(kPingreq);
  Receive(Publish(mqtt::QoS::k1, 9));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 0u);
  EXPECT_EQ(shard_.sink.closings, 0);
  EXPECT_EQ(connection_.pending_reply_bytes(), kPingresp.size() + 4);
  // The replies follow the delivery queued before them, and their share is free once sent.
  ASSERT_EQ(connection_.NextSend().size(), 200u * 1024 - 1000);
  connection_.OnSent(200 * 1024 - 1000);
  const Bytes next = ToBytes(connection_.NextSend());
  ASSERT_EQ(next.size(), 150u * 1024 + kPingresp.size() + 4);
  EXPECT_EQ(Bytes(next.end() - 6, next.end()), Cat({kPingresp, Bytes{0x40, 0x02, 0x00, 0x09}}));
  connection_.OnSent(next.size());
  EXPECT_EQ(connection_.pending_reply_bytes(), 0u);
  EXPECT_EQ(connection_.pending_output_bytes(), 0u);
}

TEST_F(ConnectionTest, ReplyCapStillClosesPeerThatDoesNotReadBehindALargeDelivery) {
  Accept();
  connection_.output_buffer().assign(200 * 1024, 0x30);
  ASSERT_EQ(connection_.NextSend().size(), 200u * 1024);  // in flight, never completes
  const size_t pings_that_fit = shard_.context.ReplyBytesMax() / kPingresp.size();
  for (size_t i = 0; i < pings_that_fit; ++i) Receive(kPingreq);
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(connection_.pending_reply_bytes(), shard_.context.ReplyBytesMax());
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 0u);
  Receive(kPingreq);  // one reply past the replies' share
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.output_overflow.Load(), 1u);
}

TEST_F(ConnectionTest, TransportClosedStopsSendingAndIsReadyToClose) {
  Receive(Cat({Encode(Mqtt311Connect()), kPingreq}));
  connection_.OnTransportClosed(kStartMs + 1);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_TRUE(connection_.ReadyToClose());
  connection_.OnClosed(shard_.context);
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
}

TEST_F(ConnectionTest, RequestCloseFlushesQueuedRepliesFirst) {
  Receive(Cat({Encode(Mqtt311Connect()), kPingreq}));
  connection_.RequestClose(kStartMs + 50);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_FALSE(connection_.ReadyToClose());
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 50 + kCloseGraceMs);
  EXPECT_EQ(Drain(), Cat({kConnackAccepted, kPingresp}));
  EXPECT_TRUE(connection_.ReadyToClose());
}

TEST_F(ConnectionTest, RequestCloseBeforeConnectIsReadyAtOnce) {
  Receive({0x10, 0x0C});  // the start of a CONNECT
  connection_.RequestClose(kStartMs);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.ReadyToClose());
}

// --- Timers ----------------------------------------------------------------------------------

TEST_F(ConnectionTest, KeepaliveDeadlineIsOneAndAHalfPeriodsAfterLastPacket_MQTT_3_1_2_24) {
  Accept(Mqtt311Connect("client-1", 10));
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 15'000);
  Receive(kPingreq, kStartMs + 4'000);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 4'000 + 15'000);
  Receive({0xC0}, kStartMs + 9'000);  // half a packet is not a control packet: no change
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 4'000 + 15'000);
  Receive({0x00}, kStartMs + 10'000);  // the PINGREQ completes
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 10'000 + 15'000);
}

TEST_F(ConnectionTest, KeepaliveDeadlineHoldsForLargestKeepalive_MQTT_3_1_2_24) {
  Accept(Mqtt311Connect("client-1", 65'535));
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + uint64_t{65'535} * 1'500);
}

TEST_F(ConnectionTest, KeepaliveZeroHasNoDeadline) {
  Accept(Mqtt311Connect("client-1", 0));
  EXPECT_EQ(connection_.DeadlineMs(), 0u);
  Receive(kPingreq, kStartMs + 100'000);
  EXPECT_EQ(connection_.DeadlineMs(), 0u);
}

TEST_F(ConnectionTest, KeepaliveExpiryClosesAndCounts_MQTT_3_1_2_24) {
  Accept(Mqtt311Connect("client-1", 10));
  const uint64_t deadline_ms = connection_.DeadlineMs();
  connection_.OnDeadline(deadline_ms, shard_.context);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.keepalive_timeout.Load(), 1u);
  EXPECT_EQ(shard_.counters.connect_timeout.Load(), 0u);
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(connection_.DeadlineMs(), deadline_ms + kCloseGraceMs);
}

TEST_F(ConnectionTest, ConnectTimeoutCountedBeforeConnect) {
  EXPECT_EQ(connection_.DeadlineMs(), 0u);  // the shard schedules it from Open()
  Receive({0x10});
  connection_.OnDeadline(kStartMs + shard_.context.connect_timeout_ms, shard_.context);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(shard_.counters.connect_timeout.Load(), 1u);
  EXPECT_EQ(shard_.counters.keepalive_timeout.Load(), 0u);
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + shard_.context.connect_timeout_ms + kCloseGraceMs);
}

TEST_F(ConnectionTest, CloseGraceExpiryGivesUpOnUnsentBytes) {
  Receive(Cat({Encode(Mqtt311Connect()), kPingreq, kDisconnect}), kStartMs + 20);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_FALSE(connection_.ReadyToClose());  // CONNACK and PINGRESP not sent yet
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 20 + kCloseGraceMs);
  connection_.OnDeadline(kStartMs + 20 + kCloseGraceMs, shard_.context);
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_EQ(shard_.counters.keepalive_timeout.Load(), 0u);
  EXPECT_EQ(shard_.counters.connect_timeout.Load(), 0u);
}

TEST_F(ConnectionTest, CloseGraceExpiryWaitsForSendInFlight) {
  Receive(Cat({Encode(Mqtt311Connect()), kDisconnect}));
  ASSERT_FALSE(connection_.NextSend().empty());
  connection_.OnDeadline(kStartMs + kCloseGraceMs, shard_.context);
  EXPECT_FALSE(connection_.ReadyToClose());  // the kernel still holds our buffer
  connection_.OnSent(1);
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_TRUE(connection_.NextSend().empty());
}

TEST_F(ConnectionTest, BytesReceivedWhileClosingDoNotMoveGraceDeadline) {
  Accept();
  Receive(kDisconnect, kStartMs + 10);
  Receive(kPingreq, kStartMs + 3'000);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 10 + kCloseGraceMs);
}

TEST_F(ConnectionTest, OpenResetsForAReusedSlot) {
  Accept();
  Receive(kDisconnect);
  connection_.OnClosed(shard_.context);
  connection_.Open(kFd, kStartMs + 1'000);
  EXPECT_EQ(connection_.state(), State::kAwaitConnect);
  EXPECT_TRUE(connection_.client_id().empty());
  EXPECT_TRUE(connection_.NextSend().empty());
  EXPECT_FALSE(connection_.ReadyToClose());
  Accept(Mqtt311Connect("client-2"), kStartMs + 1'000);
  EXPECT_EQ(connection_.client_id(), "client-2");
  EXPECT_EQ(shard_.connected_clients.load(), 1u);
}

// Most of the shard's slot, one per connection (docs/performance.md, "Memory per idle
// connection"). 64-bit libstdc++.
TEST(ConnectionSizeTest, AtMost168Bytes) {
  if (sizeof(void*) != 8) GTEST_SKIP() << "sizes are pinned for 64-bit targets";
  EXPECT_LE(sizeof(Connection), 168u);
}

// --- MQTT 5.0 -------------------------------------------------------------------------------

// A 5.0 CONNECT whose properties are `block` (kept alive by the caller).
mqtt::Connect Mqtt5Connect(std::string_view client_id, const Bytes& block,
                           uint16_t keepalive_s = 60) {
  mqtt::Connect connect = Mqtt311Connect(client_id, keepalive_s);
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt5);
  connect.properties = mqtt::Properties(block);
  return connect;
}

Bytes Encode5(const mqtt::Packet& packet) {
  Bytes bytes(mqtt::EncodedSize(packet, mqtt::ProtocolLevel::kMqtt5));
  EXPECT_EQ(mqtt::Encode(packet, bytes, mqtt::ProtocolLevel::kMqtt5), bytes.size());
  return bytes;
}

Bytes Publish5(std::string_view topic, const Bytes& properties, mqtt::QoS qos = mqtt::QoS::k0,
               uint16_t packet_id = 0) {
  mqtt::Publish publish;
  publish.topic = topic;
  publish.payload = "p";
  publish.qos = qos;
  publish.packet_id = packet_id;
  publish.properties = mqtt::Properties(properties);
  return Encode5(publish);
}

Bytes Alias(uint16_t alias) {
  return {0x23, static_cast<uint8_t>(alias >> 8), static_cast<uint8_t>(alias)};
}

const Bytes kNoProperties = {};

// The accepting CONNACK with the default context: Receive Maximum 1024, Maximum Packet Size
// 1 MiB, Topic Alias Maximum 10 (5.0:3.2.2.3).
const Bytes kConnack5Accepted = {0x20, 0x0E, 0x00, 0x00, 0x0B, 0x21, 0x04, 0x00,
                                 0x27, 0x00, 0x10, 0x00, 0x00, 0x22, 0x00, 0x0A};

class Connection5Test : public ConnectionTest {
 protected:
  void Accept5(const Bytes& block = kNoProperties) {
    connect_block_ = block;
    Receive(Encode(Mqtt5Connect("client-5", connect_block_)));
    ASSERT_EQ(connection_.state(), State::kOpen);
    ASSERT_EQ(connection_.level(), mqtt::ProtocolLevel::kMqtt5);
    ASSERT_EQ(Drain(), kConnack5Accepted);
  }
  Bytes connect_block_;
};

TEST_F(Connection5Test, AcceptedWithFullConnack_5_0_3_2_2_3) {
  Accept5();
  EXPECT_EQ(shard_.counters.connect_accepted_mqtt5.Load(), 1u);
  EXPECT_EQ(shard_.counters.connect_accepted_mqtt311.Load(), 0u);
}

TEST_F(Connection5Test, ConnackCarriesSessionExpiryFromExtras) {
  shard_.sink.extras.session_expiry_s = 300;
  Receive(Encode(Mqtt5Connect("client-5", kNoProperties)));
  const Bytes sent = Drain();
  const Bytes expiry = {0x11, 0x00, 0x00, 0x01, 0x2C};
  EXPECT_NE(std::search(sent.begin(), sent.end(), expiry.begin(), expiry.end()), sent.end());
  EXPECT_EQ(sent[1], kConnack5Accepted[1] + 5);
}

TEST_F(Connection5Test, ConfiguredLimitsAndServerKeepAlive_5_0_MQTT_3_2_2_21) {
  shard_.context.max_qos = 1;
  shard_.context.retain_available = false;
  shard_.context.topic_alias_maximum = 0;
  shard_.context.receive_maximum = 65535;
  shard_.context.max_keepalive_s = 30;
  shard_.context.max_packet_size = 256;
  Receive(Encode(Mqtt5Connect("client-5", kNoProperties, /*keepalive_s=*/0)));
  // Maximum QoS 1, Retain Available 0, Maximum Packet Size 256, Server Keep Alive 30; no
  // Receive Maximum (65535 is the default) and no Topic Alias Maximum (0 is the default).
  const Bytes expected = {0x20, 0x0F, 0x00, 0x00, 0x0C, 0x24, 0x01, 0x25, 0x00,
                          0x27, 0x00, 0x00, 0x01, 0x00, 0x13, 0x00, 0x1E};
  EXPECT_EQ(Drain(), expected);
  EXPECT_EQ(connection_.keepalive_s(), 30);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 45'000);  // 1.5 x Server Keep Alive
}

TEST_F(Connection5Test, EmptyIdAssignedAndReturned_5_0_MQTT_3_1_3_7) {
  mqtt::Connect connect = Mqtt5Connect("", kNoProperties);
  connect.clean_session = false;
  Receive(Encode(connect));
  ASSERT_EQ(connection_.state(), State::kOpen);
  EXPECT_TRUE(connect::HasAssignedClientIdPrefix(connection_.client_id()));
  const Bytes sent = Drain();
  const std::string id(connection_.client_id());
  const auto at = std::search(sent.begin(), sent.end(), id.begin(), id.end());
  ASSERT_NE(at, sent.end());
  EXPECT_EQ(*(at - 3), 0x12);  // Assigned Client Identifier
}

TEST_F(Connection5Test, ClientLimitsExposed) {
  // Receive Maximum 5, Maximum Packet Size 1000, Topic Alias Maximum 3, Request Problem
  // Information 0.
  Accept5({0x21, 0x00, 0x05, 0x27, 0x00, 0x00, 0x03, 0xE8, 0x22, 0x00, 0x03, 0x17, 0x00});
  EXPECT_EQ(connection_.client_receive_maximum(), 5);
  EXPECT_EQ(connection_.client_maximum_packet_size(), 1000u);
  EXPECT_EQ(connection_.client_topic_alias_maximum(), 3);
  EXPECT_FALSE(connection_.request_problem_information());
}

TEST_F(ConnectionTest, Mqtt311ClientLimitsAreTheDefaults) {
  Accept();
  EXPECT_EQ(connection_.client_receive_maximum(), 65535);
  EXPECT_EQ(connection_.client_maximum_packet_size(), 0u);
  EXPECT_EQ(connection_.client_topic_alias_maximum(), 0);
  EXPECT_TRUE(connection_.request_problem_information());
  EXPECT_EQ(connection_.disconnect_session_expiry_s(), std::nullopt);
}

TEST_F(Connection5Test, RefusalIsTheStatic5Connack) {
  shard_.shutting_down = true;
  Receive(Encode(Mqtt5Connect("client-5", kNoProperties)));
  EXPECT_EQ(connection_.state(), State::kClosing);
  const std::span<const uint8_t> expected = connect::ConnackBytes5(connect::Reason::kShuttingDown);
  const std::span<const uint8_t> sent = connection_.TakeFinalStaticSend();
  EXPECT_EQ(sent.data(), expected.data());  // the static bytes themselves: nothing encoded
  EXPECT_EQ(sent[3], 0x88);                 // Server unavailable
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(shard_.Connect(connect::Reason::kShuttingDown), 1u);
  EXPECT_EQ(shard_.connected_clients.load(), 0u);
}

TEST_F(Connection5Test, RefusalWithinClientMaximumPacketSize_5_0_MQTT_3_2_2_19) {
  shard_.shutting_down = true;
  const Bytes maximum_packet_size_16 = {0x27, 0x00, 0x00, 0x00, 0x10};
  Receive(Encode(Mqtt5Connect("client-5", maximum_packet_size_16)));
  EXPECT_EQ(connection_.state(), State::kClosing);
  const std::span<const uint8_t> sent = connection_.TakeFinalStaticSend();
  EXPECT_EQ(Bytes(sent.begin(), sent.end()), (Bytes{0x20, 0x03, 0x00, 0x88, 0x00}));
  EXPECT_TRUE(connection_.ReadyToClose());
}

// Response Information is optional (5.0:3.2.2.3.15): it is sent when the client asks for it,
// and left out when the CONNACK would then exceed the client's Maximum Packet Size
// (5.0:MQTT-3.1.2-24).
TEST_F(Connection5Test, ResponseInformationWithinClientMaximumPacketSize_5_0_MQTT_3_1_2_24) {
  shard_.context.response_information = "replies/";
  const std::string information = "replies/client-5";
  const Bytes request = {0x19, 0x01};
  Receive(Encode(Mqtt5Connect("client-5", request)));
  Bytes sent = Drain();
  EXPECT_EQ(sent.size(), kConnack5Accepted.size() + 3 + information.size());
  EXPECT_NE(std::search(sent.begin(), sent.end(), information.begin(), information.end()),
            sent.end());

  connection_.Open(7, kStartMs);
  const Bytes request_within_32 = {0x19, 0x01, 0x27, 0x00, 0x00, 0x00, 0x20};
  Receive(Encode(Mqtt5Connect("client-5", request_within_32)));
  sent = Drain();
  EXPECT_EQ(sent, kConnack5Accepted);  // 16 bytes; with the property it would be 35
}

TEST_F(Connection5Test, MalformedConnectClosedWithoutConnack) {
  const Bytes bad_block = {0x7F, 0x00};  // no such property
  Receive(Encode(Mqtt5Connect("client-5", bad_block)));
  ExpectClosedWithoutBytes();
  EXPECT_EQ(shard_.Connect(connect::Reason::kMalformed), 1u);
}

TEST_F(Connection5Test, TopicAliasResolvedForTheSink_5_0_3_3_2_3_4) {
  Accept5();
  Receive(Publish5("a/b", Alias(1)));
  Receive(Publish5("", Alias(1)));
  Receive(Publish5("a/c", Alias(10)));  // the maximum
  Receive(Publish5("", Alias(10)));
  Receive(Publish5("", Alias(1)));
  EXPECT_EQ(shard_.sink.topics, (std::vector<std::string>{"a/b", "a/b", "a/c", "a/c", "a/b"}));
  EXPECT_EQ(shard_.counters.topic_alias_set.Load(), 2u);
  EXPECT_EQ(shard_.counters.topic_alias_used.Load(), 3u);
  EXPECT_EQ(connection_.state(), State::kOpen);
}

TEST_F(Connection5Test, AliasAboveMaximumDisconnect0x94_5_0_MQTT_3_3_2_9) {
  Accept5();
  Receive(Publish5("a/b", Alias(11)));
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x94}));
  EXPECT_TRUE(shard_.sink.topics.empty());
  EXPECT_EQ(shard_.counters.disconnect_sent_topic_alias_invalid.Load(), 1u);
}

TEST_F(Connection5Test, NoAliasesWhenMaximumIsZero) {
  shard_.context.topic_alias_maximum = 0;
  Receive(Encode(Mqtt5Connect("client-5", kNoProperties)));
  Drain();
  Receive(Publish5("a/b", Alias(1)));
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x94}));
}

TEST_F(Connection5Test, UnknownAliasProtocolError0x82) {
  Accept5();
  Receive(Publish5("", Alias(2)));
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x82}));
  EXPECT_EQ(shard_.counters.protocol_violations.Load(), 1u);
}

TEST_F(Connection5Test, AliasesAreChargedToTheMemoryBudget) {
  Accept5();
  const int64_t before = connection_.TakeBufferChargeDelta();
  static_cast<void>(before);
  const std::string topic(1000, 't');
  Receive(Publish5(topic, Alias(3)));
  EXPECT_GE(connection_.TakeBufferChargeDelta(), 1000);
}

// A topic replaced by a shorter one keeps its storage (std::string keeps its capacity), so the
// charge must not fall with the topic's length: the budget counts what is held.
TEST_F(Connection5Test, AliasReplacedByShorterTopicStaysCharged) {
  Accept5();
  connection_.TakeBufferChargeDelta();
  Receive(Publish5(std::string(1000, 't'), Alias(3)));
  EXPECT_GE(connection_.TakeBufferChargeDelta(), 1000);
  Receive(Publish5("u", Alias(3)));
  EXPECT_EQ(shard_.sink.topics.back(), "u");
  EXPECT_GT(connection_.TakeBufferChargeDelta(), -100);  // not -999: the 1000 bytes are held
}

TEST_F(Connection5Test, SubscriptionIdentifierFromClient0x82_5_0_MQTT_3_3_4_6) {
  Accept5();
  Receive(Publish5("t", {0x0B, 0x07}));
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x82}));
  EXPECT_TRUE(shard_.sink.topics.empty());
}

TEST_F(Connection5Test, ReceiveMaximumExceeded0x93_5_0_3_3_4) {
  shard_.context.receive_maximum = 2;
  Receive(Encode(Mqtt5Connect("client-5", kNoProperties)));
  Drain();
  Receive(Publish5("t", kNoProperties, mqtt::QoS::k2, 1));
  Receive(Publish5("t", kNoProperties, mqtt::QoS::k2, 2));
  Receive(Publish5("t", kNoProperties, mqtt::QoS::k2, 2));  // a repeat: still 2 pending
  Receive(Publish5("t", kNoProperties, mqtt::QoS::k1, 9));  // QoS 1 does not count
  Receive(Encode5(mqtt::Pubrel{1}));                        // 1 released
  Receive(Publish5("t", kNoProperties, mqtt::QoS::k2, 3));
  EXPECT_EQ(connection_.state(), State::kOpen);
  EXPECT_EQ(shard_.counters.receive_maximum_exceeded.Load(), 0u);
  Drain();
  Receive(Publish5("t", kNoProperties, mqtt::QoS::k2, 4));  // 2, 3 and 4
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x93}));
  EXPECT_EQ(shard_.counters.receive_maximum_exceeded.Load(), 1u);
  EXPECT_EQ(shard_.counters.disconnect_sent_receive_maximum_exceeded.Load(), 1u);
}

TEST_F(Connection5Test, QosAboveMaxQosDisconnect0x9B) {
  shard_.context.max_qos = 0;
  Receive(Encode(Mqtt5Connect("client-5", kNoProperties)));
  Drain();
  Receive(Publish5("t", kNoProperties, mqtt::QoS::k1, 1));
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x9B}));
}

TEST_F(ConnectionTest, Mqtt311QosAboveMaxQosClosedWithoutDisconnect) {
  shard_.context.max_qos = 1;
  Accept();
  Receive(Publish(mqtt::QoS::k2, 1));
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(shard_.sink.packets, 0);
}

TEST_F(ConnectionTest, Mqtt311WillCappedToMaxQosAndRetain) {
  shard_.context.max_qos = 1;
  shard_.context.retain_available = false;
  mqtt::Connect connect = Mqtt311Connect();
  connect.will = mqtt::Will{.topic = "w", .payload = "x", .qos = mqtt::QoS::k2, .retain = true};
  Accept(connect);
  EXPECT_EQ(shard_.sink.will_qos, mqtt::QoS::k1);
  EXPECT_FALSE(shard_.sink.will_retain);
}

TEST_F(Connection5Test, PacketTooLargeDisconnect0x95) {
  shard_.context.max_packet_size = 64;
  Receive(Encode(Mqtt5Connect("client-5", kNoProperties)));
  Drain();
  Receive(Publish5(std::string(100, 't'), kNoProperties));
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x95}));
  EXPECT_EQ(shard_.counters.packet_too_large.Load(), 1u);
}

TEST_F(Connection5Test, MalformedAfterConnectDisconnect0x81_5_0_MQTT_4_13_1_1) {
  Accept5();
  Receive({0x30, 0x05, 0x00, 0x01, 't', 0x05, 0x7F});  // property block cut short
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x81}));
  EXPECT_EQ(shard_.counters.disconnect_sent_malformed_packet.Load(), 1u);
}

TEST_F(Connection5Test, Disconnect0x04KeepsTheWillOthersDiscardIt) {
  Accept5();
  Receive({0xE0, 0x01, 0x04});
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_FALSE(connection_.disconnected_gracefully());
  Connection other;
  other.Open(kFd, kStartMs);
  other.OnReceive(Encode(Mqtt5Connect("client-6", kNoProperties)), kStartMs, shard_.context);
  other.OnReceive(Bytes{0xE0, 0x01, 0x00}, kStartMs, shard_.context);
  EXPECT_TRUE(other.disconnected_gracefully());
}

TEST_F(Connection5Test, DisconnectSessionExpiryIsKept) {
  Accept5({0x11, 0x00, 0x00, 0x00, 0x0A});  // CONNECT: Session Expiry 10
  Receive({0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x3C});
  EXPECT_TRUE(connection_.disconnected_gracefully());
  EXPECT_EQ(connection_.disconnect_session_expiry_s(), 60u);
}

TEST_F(Connection5Test, DisconnectSessionExpiryAfterZeroIsProtocolError_5_0_3_14_2_2_2) {
  Accept5();  // Session Expiry absent: 0
  Receive({0xE0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x3C});
  EXPECT_FALSE(connection_.disconnected_gracefully());  // not a valid DISCONNECT: will stays
  EXPECT_EQ(connection_.disconnect_session_expiry_s(), std::nullopt);
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x82}));
}

TEST_F(Connection5Test, ServerDisconnectWithReason) {
  Accept5();
  connection_.Disconnect(mqtt::ReasonCode::kSessionTakenOver, kStartMs, shard_.context);
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x8E}));
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_EQ(shard_.counters.disconnect_sent_session_taken_over.Load(), 1u);
}

TEST_F(ConnectionTest, Mqtt311ServerDisconnectOnlyCloses) {
  Accept();
  connection_.Disconnect(mqtt::ReasonCode::kServerShuttingDown, kStartMs, shard_.context);
  EXPECT_TRUE(Drain().empty());
  EXPECT_TRUE(connection_.ReadyToClose());
}

TEST_F(Connection5Test, KeepaliveTimeoutDisconnect0x8D) {
  Accept5();
  connection_.OnDeadline(connection_.DeadlineMs(), shard_.context);
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x8D}));
  EXPECT_EQ(shard_.counters.keepalive_timeout.Load(), 1u);
}

TEST_F(Connection5Test, AuthPacketIsProtocolError) {
  Accept5();
  Receive({0xF0, 0x00});  // AUTH, Success, no properties
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x82}));
}

// The CONNECT, an aliased PUBLISH and a QoS 2 PUBLISH split at every byte: the same answers.
TEST_F(Connection5Test, EverySplitPointGivesTheSameResult) {
  const Bytes stream =
      Cat({Encode(Mqtt5Connect("client-5", kNoProperties)), Publish5("a/b", Alias(1)),
           Publish5("", Alias(1)), Publish5("q", kNoProperties, mqtt::QoS::k2, 7)});
  for (size_t split = 1; split < stream.size(); ++split) {
    SCOPED_TRACE(split);
    ShardState shard;
    Connection connection;
    connection.Open(kFd, kStartMs);
    connection.OnReceive(std::span<const uint8_t>(stream).first(split), kStartMs, shard.context);
    connection.OnReceive(std::span<const uint8_t>(stream).subspan(split), kStartMs, shard.context);
    EXPECT_EQ(connection.state(), State::kOpen);
    EXPECT_EQ(shard.sink.topics, (std::vector<std::string>{"a/b", "a/b", "q"}));
    EXPECT_EQ(net::Drain(connection), Cat({kConnack5Accepted, Encode5(mqtt::Pubrec{7})}));
  }
}

// Splits inside the CONNECT's property block, the alias PUBLISHes and a DISCONNECT with
// properties: every split point gives the same limits, topics, will decision and expiry.
TEST_F(Connection5Test, EverySplitPointWithPropertiesGivesTheSameResult) {
  // CONNECT: Session Expiry 30, Receive Maximum 5, Maximum Packet Size 1000, Topic Alias
  // Maximum 3. DISCONNECT 0x04 (will kept) with Session Expiry 60.
  const Bytes connect_block = {0x11, 0x00, 0x00, 0x00, 0x1E, 0x21, 0x00, 0x05,
                               0x27, 0x00, 0x00, 0x03, 0xE8, 0x22, 0x00, 0x03};
  const Bytes stream =
      Cat({Encode(Mqtt5Connect("client-5", connect_block)), Publish5("a/b", Alias(2)),
           Publish5("", Alias(2)), Bytes{0xE0, 0x07, 0x04, 0x05, 0x11, 0x00, 0x00, 0x00, 0x3C}});
  for (size_t split = 1; split < stream.size(); ++split) {
    SCOPED_TRACE(split);
    ShardState shard;
    Connection connection;
    connection.Open(kFd, kStartMs);
    connection.OnReceive(std::span<const uint8_t>(stream).first(split), kStartMs, shard.context);
    connection.OnReceive(std::span<const uint8_t>(stream).subspan(split), kStartMs, shard.context);
    EXPECT_EQ(connection.state(), State::kClosing);
    EXPECT_EQ(connection.client_receive_maximum(), 5);
    EXPECT_EQ(connection.client_maximum_packet_size(), 1000u);
    EXPECT_EQ(connection.client_topic_alias_maximum(), 3);
    EXPECT_EQ(shard.sink.topics, (std::vector<std::string>{"a/b", "a/b"}));
    EXPECT_FALSE(connection.disconnected_gracefully());
    EXPECT_EQ(connection.disconnect_session_expiry_s(), 60u);
    EXPECT_EQ(net::Drain(connection), kConnack5Accepted);
  }
}

// --- Lingering close (5.0:MQTT-4.13.1-1: the client must be able to read the DISCONNECT) -----

TEST_F(Connection5Test, LingerAfterServerDisconnectUntilTimeBound) {
  Accept5();
  Receive(Publish5("a/b", Alias(11)));  // DISCONNECT 0x94
  EXPECT_FALSE(connection_.WantsLinger());  // not before the DISCONNECT is sent
  EXPECT_EQ(Drain(), (Bytes{0xE0, 0x01, 0x94}));
  ASSERT_TRUE(connection_.WantsLinger());
  connection_.StartLinger(kStartMs + 10, shard_.context);
  EXPECT_FALSE(connection_.WantsLinger());
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 10 + kLingerMs);
  Receive(Bytes(100, 0x62), kStartMs + 20);  // discarded, counted
  EXPECT_EQ(shard_.counters.linger_discarded_bytes.Load(), 100u);
  EXPECT_EQ(shard_.counters.closes_lingered.Load(), 1u);
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.NextSend().empty());
}

TEST_F(Connection5Test, LingerEndsAtByteBound) {
  Accept5();
  Receive(Publish5("a/b", Alias(11)));
  Drain();
  connection_.StartLinger(kStartMs, shard_.context);
  Receive(Bytes(kLingerMaxBytes - 1, 0), kStartMs + 5);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + kLingerMs);
  Receive(Bytes(1, 0), kStartMs + 6);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + 6);  // the shard closes now
}

TEST_F(Connection5Test, LingerWithinCloseGrace) {
  Accept5();
  Receive(Publish5("a/b", Alias(11)), kStartMs);
  Drain();
  connection_.StartLinger(kStartMs + kCloseGraceMs - 100, shard_.context);
  EXPECT_EQ(connection_.DeadlineMs(), kStartMs + kCloseGraceMs);
}

TEST_F(Connection5Test, NoLingerWhenTheClientClosedOrDisconnected) {
  Accept5();
  Receive(Bytes{0xE0, 0x00});  // the client's DISCONNECT: no server DISCONNECT, no linger
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_TRUE(connection_.ReadyToClose());
  EXPECT_FALSE(connection_.WantsLinger());
}

TEST_F(ConnectionTest, NoLingerAt311) {
  Accept();
  Receive(Bytes{0x30, 0x00});  // malformed PUBLISH: closed without DISCONNECT at 3.1.1
  EXPECT_EQ(connection_.state(), State::kClosing);
  EXPECT_FALSE(connection_.WantsLinger());
}

}  // namespace
}  // namespace ringmq::net
