#include "bridge/bridge_client.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mqtt/codec.h"

namespace ringmq::bridge {
namespace {

using mqtt::PacketType;
using mqtt::QoS;

struct Recorder : ClientSink {
  void OnConnected(bool session_present) override {
    ++connected;
    last_session_present = session_present;
  }
  void OnMessage(const mqtt::Publish& publish) override {
    messages.push_back(std::string(publish.topic) + "=" + std::string(publish.payload) + "@" +
                       std::to_string(static_cast<int>(publish.qos)) + (publish.retain ? "r" : ""));
  }
  void OnDisconnected(std::string_view reason) override { reasons.emplace_back(reason); }
  int connected = 0;
  bool last_session_present = false;
  std::vector<std::string> messages;
  std::vector<std::string> reasons;
};

// What the client sent, decoded (the bytes are kept so that the packets' views stay valid).
struct Sent {
  std::vector<uint8_t> bytes;
  std::vector<mqtt::Packet> packets;
};

class BridgeClientTest : public ::testing::Test {
 protected:
  ClientOptions Options() {
    ClientOptions options;
    options.client_id = "edge.bridge";
    options.keepalive_s = 10;
    options.max_inflight = 2;
    options.max_queued_messages = 4;
    options.max_queued_bytes = 1000;
    options.restart_initial_ms = 1000;
    options.restart_max_ms = 8000;
    options.restart_jitter_percent = 0;
    options.subscriptions = {{.filter = "in/#", .qos = QoS::k1}};
    return options;
  }
  void Make(ClientOptions options) {
    absl::StatusOr<BridgeClient> client = BridgeClient::Create(std::move(options), &sink_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_.emplace(std::move(*client));
  }
  // Takes the client's output and decodes it.
  Sent Take(uint64_t now_ms) {
    Sent sent;
    ByteBuffer out;
    client_->TakeOutput(now_ms, out);
    sent.bytes.assign(out.begin(), out.end());
    std::span<const uint8_t> rest(sent.bytes);
    const mqtt::ProtocolLevel level = client_->options().level;
    while (!rest.empty()) {
      const mqtt::Frame frame = mqtt::PeekFrame(rest, 1 << 20, level);
      EXPECT_EQ(frame.status, mqtt::FrameStatus::kComplete);
      if (frame.status != mqtt::FrameStatus::kComplete) break;
      const std::span<const uint8_t> body =
          rest.subspan(frame.header.header_length, frame.header.remaining_length);
      if (frame.header.type == PacketType::kConnect) {
        sent.packets.push_back(mqtt::DecodeConnect(frame.header, body, true).value());
      } else {
        mqtt::Result<mqtt::Packet> packet = mqtt::Decode(frame.header, body, level);
        EXPECT_TRUE(packet.ok());
        sent.packets.push_back(packet.value());
      }
      rest = rest.subspan(frame.header.total_length());
    }
    return sent;
  }
  void Feed(uint64_t now_ms, const mqtt::Packet& packet) {
    std::vector<uint8_t> bytes(mqtt::EncodedSize(packet, client_->options().level));
    mqtt::Encode(packet, bytes, client_->options().level);
    client_->OnReceived(now_ms, bytes);
  }
  // Connects and answers CONNACK; returns what followed the CONNECT.
  Sent Open(uint64_t now_ms, bool session_present = false) {
    EXPECT_TRUE(client_->ConnectDue(now_ms));
    client_->BeginConnect(now_ms);
    client_->OnTransportConnected(now_ms);
    Sent connect = Take(now_ms);
    EXPECT_EQ(connect.packets.size(), 1u);
    Feed(now_ms, mqtt::Connack{.session_present = session_present});
    EXPECT_EQ(client_->state(), ClientState::kOpen);
    return Take(now_ms);
  }
  static std::vector<PacketType> Types(const Sent& sent) {
    std::vector<PacketType> types;
    for (const mqtt::Packet& packet : sent.packets) types.push_back(mqtt::TypeOf(packet));
    return types;
  }

  Recorder sink_;
  std::optional<BridgeClient> client_;
};

TEST_F(BridgeClientTest, ConnectCarriesOptionsAndTryPrivateLevel) {
  ClientOptions options = Options();
  options.try_private = true;
  options.clean_session = false;
  options.username = "user";
  options.password = "secret";
  Make(options);
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  ASSERT_TRUE(client_->ConnectDue(0));  // the first attempt waits nothing
  client_->BeginConnect(0);
  EXPECT_EQ(client_->state(), ClientState::kConnecting);
  client_->OnTransportConnected(0);
  EXPECT_EQ(client_->state(), ClientState::kAwaitConnack);
  Sent sent = Take(0);
  // 0x84: protocol level 4 with the bridge bit, which DecodeConnect (a server) does not speak.
  ASSERT_GE(sent.bytes.size(), 9u);
  EXPECT_EQ(sent.bytes[8], 0x84);
  sent.bytes[8] = 0x04;
  std::span<const uint8_t> all(sent.bytes);
  const mqtt::Frame frame = mqtt::PeekFrame(all, 1 << 20);
  const mqtt::Connect connect =
      mqtt::DecodeConnect(frame.header, all.subspan(frame.header.header_length)).value();
  EXPECT_EQ(connect.client_id, "edge.bridge");
  EXPECT_FALSE(connect.clean_session);
  EXPECT_EQ(connect.keepalive_s, 10);
  EXPECT_EQ(connect.user_name, "user");
  EXPECT_EQ(connect.password, "secret");
}

TEST_F(BridgeClientTest, Mqtt5ConnectAsksForALastingSessionAndSubscribesWithNoLocal) {
  ClientOptions options = Options();
  options.level = mqtt::ProtocolLevel::kMqtt5;
  options.clean_session = false;
  options.subscriptions[0].no_local = true;
  options.subscriptions[0].retain_as_published = true;
  Make(options);
  client_->BeginConnect(0);
  client_->OnTransportConnected(0);
  Sent sent = Take(0);
  const auto& connect = std::get<mqtt::Connect>(sent.packets.at(0));
  EXPECT_EQ(connect.protocol_level, 5);
  const mqtt::PropertyValues values = connect.properties.Values();
  EXPECT_EQ(values.session_expiry_interval_s, UINT32_MAX);
  EXPECT_EQ(values.receive_maximum, 65'535);
  EXPECT_EQ(values.maximum_packet_size, 1u << 20);
  Feed(0, mqtt::Connack{.properties = {}});
  Sent subscribe = Take(0);
  ASSERT_EQ(Types(subscribe), std::vector<PacketType>{PacketType::kSubscribe});
  const mqtt::TopicRequest request =
      *std::get<mqtt::Subscribe>(subscribe.packets[0]).topics.begin();
  EXPECT_EQ(request.filter, "in/#");
  EXPECT_TRUE(request.no_local);  // 5.0:MQTT-3.8.3-3: no echo of our own messages
  EXPECT_TRUE(request.retain_as_published);
}

TEST_F(BridgeClientTest, SubscribesAfterConnackThenPublishesInOrder) {
  Make(Options());
  ASSERT_TRUE(client_->Publish("out/a", "1", QoS::k0, false));  // queued while disconnected
  ASSERT_TRUE(client_->Publish("out/b", "2", QoS::k1, true));
  EXPECT_FALSE(client_->has_output());
  Sent sent = Open(0);
  ASSERT_EQ(Types(sent), (std::vector<PacketType>{PacketType::kSubscribe, PacketType::kPublish,
                                                  PacketType::kPublish}));
  EXPECT_EQ(sink_.connected, 1);
  const auto& first = std::get<mqtt::Publish>(sent.packets[1]);
  const auto& second = std::get<mqtt::Publish>(sent.packets[2]);
  EXPECT_EQ(first.topic, "out/a");
  EXPECT_EQ(first.qos, QoS::k0);
  EXPECT_EQ(second.topic, "out/b");
  EXPECT_EQ(second.payload, "2");
  EXPECT_TRUE(second.retain);
  EXPECT_NE(second.packet_id, 0);
  EXPECT_EQ(client_->inflight(), 1u);
  EXPECT_EQ(client_->stats().messages_sent, 1u);  // QoS 0 done when sent
  Feed(0, mqtt::Puback{.packet_id = second.packet_id});
  EXPECT_EQ(client_->inflight(), 0u);
  EXPECT_EQ(client_->stats().messages_sent, 2u);
}

TEST_F(BridgeClientTest, InflightWindowHoldsBackUntilAcknowledged) {
  Make(Options());
  Open(0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client_->Publish("t", std::to_string(i), QoS::k1, 0));
  Sent sent = Take(0);
  ASSERT_EQ(sent.packets.size(), 2u);  // max_inflight 2
  EXPECT_EQ(client_->queued_messages(), 1u);
  EXPECT_FALSE(client_->has_output());
  Feed(0, mqtt::Puback{.packet_id = std::get<mqtt::Publish>(sent.packets[0]).packet_id});
  EXPECT_TRUE(client_->has_output());
  Sent third = Take(0);
  ASSERT_EQ(third.packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(third.packets[0]).payload, "2");
}

TEST_F(BridgeClientTest, Qos2OutboundGoesThroughPubrecPubrelPubcomp) {
  Make(Options());
  Open(0);
  ASSERT_TRUE(client_->Publish("t", "x", QoS::k2, false));
  const uint16_t id = std::get<mqtt::Publish>(Take(0).packets.at(0)).packet_id;
  Feed(0, mqtt::Pubrec{.packet_id = id});
  Sent pubrel = Take(0);
  ASSERT_EQ(Types(pubrel), std::vector<PacketType>{PacketType::kPubrel});
  EXPECT_EQ(std::get<mqtt::Pubrel>(pubrel.packets[0]).packet_id, id);
  EXPECT_EQ(client_->inflight(), 1u);
  Feed(0, mqtt::Puback{.packet_id = id});  // the wrong acknowledgement for this stage
  EXPECT_EQ(client_->inflight(), 1u);
  Feed(0, mqtt::Pubcomp{.packet_id = id});
  EXPECT_EQ(client_->inflight(), 0u);
  EXPECT_EQ(client_->stats().messages_sent, 1u);
}

TEST_F(BridgeClientTest, InboundQos1AcknowledgedAfterDelivery) {
  Make(Options());
  Open(0);
  Feed(0, mqtt::Publish{.topic = "in/a", .payload = "p", .qos = QoS::k1, .packet_id = 7});
  ASSERT_EQ(sink_.messages, std::vector<std::string>{"in/a=p@1"});
  Sent sent = Take(0);
  ASSERT_EQ(Types(sent), std::vector<PacketType>{PacketType::kPuback});
  EXPECT_EQ(std::get<mqtt::Puback>(sent.packets[0]).packet_id, 7);  // MQTT-4.3.2-4
}

TEST_F(BridgeClientTest, InboundQos2DeliveredOnceUntilPubrel) {
  Make(Options());
  Open(0);
  const mqtt::Publish publish{.topic = "in/a", .payload = "p", .qos = QoS::k2, .packet_id = 9};
  Feed(0, publish);
  mqtt::Publish dup = publish;
  dup.dup = true;
  Feed(0, dup);  // a resend before PUBREL: acknowledged, not delivered again
  EXPECT_EQ(sink_.messages.size(), 1u);
  EXPECT_EQ(Types(Take(0)), (std::vector<PacketType>{PacketType::kPubrec, PacketType::kPubrec}));
  Feed(0, mqtt::Pubrel{.packet_id = 9});
  Sent sent = Take(0);
  ASSERT_EQ(Types(sent), std::vector<PacketType>{PacketType::kPubcomp});
  Feed(0, publish);  // the id is free again: a new message
  EXPECT_EQ(sink_.messages.size(), 2u);
}

TEST_F(BridgeClientTest, QueueBoundsDropAndCount) {
  Make(Options());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(client_->Publish("t", "x", QoS::k1, false));
  EXPECT_FALSE(client_->Publish("t", "x", QoS::k1, false));  // max_queued_messages 4
  EXPECT_EQ(client_->stats().dropped, 1u);
  EXPECT_EQ(client_->queued_messages(), 4u);
  Make(Options());
  EXPECT_TRUE(client_->Publish("t", std::string(990, 'a'), QoS::k0, false));
  EXPECT_FALSE(client_->Publish("t", std::string(10, 'a'), QoS::k0, false));  // 1000 bytes
  EXPECT_EQ(client_->queued_bytes(), 991u);
  EXPECT_EQ(client_->stats().dropped, 1u);
}

TEST_F(BridgeClientTest, ResumedSessionResendsInflightWithDupAndPubrel) {
  ClientOptions options = Options();
  options.clean_session = false;
  Make(options);
  Open(0);
  ASSERT_TRUE(client_->Publish("t", "one", QoS::k1, false));
  ASSERT_TRUE(client_->Publish("t", "two", QoS::k2, false));
  ASSERT_TRUE(client_->Publish("t", "three", QoS::k1, false));  // waits: window 2
  Sent sent = Take(0);
  const uint16_t one = std::get<mqtt::Publish>(sent.packets.at(0)).packet_id;
  const uint16_t two = std::get<mqtt::Publish>(sent.packets.at(1)).packet_id;
  Feed(0, mqtt::Pubrec{.packet_id = two});
  Take(0);  // the PUBREL
  client_->OnTransportClosed(100, "connection reset");
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  EXPECT_EQ(sink_.reasons.back(), "connection reset");
  EXPECT_FALSE(client_->ConnectDue(100));
  EXPECT_EQ(client_->connect_at_ms(), 1100u);  // restart_initial_ms after an open session
  Sent resent = Open(1100, /*session_present=*/true);
  ASSERT_EQ(Types(resent), (std::vector<PacketType>{PacketType::kSubscribe, PacketType::kPublish,
                                                    PacketType::kPubrel}));
  const auto& again = std::get<mqtt::Publish>(resent.packets[1]);
  EXPECT_TRUE(again.dup);  // MQTT-4.4.0-1
  EXPECT_EQ(again.packet_id, one);
  EXPECT_EQ(std::get<mqtt::Pubrel>(resent.packets[2]).packet_id, two);
  EXPECT_EQ(client_->stats().resent, 2u);
  Feed(1100, mqtt::Puback{.packet_id = one});
  Sent third = Take(1100);
  ASSERT_EQ(third.packets.size(), 1u);
  EXPECT_EQ(std::get<mqtt::Publish>(third.packets[0]).payload, "three");
}

TEST_F(BridgeClientTest, NewSessionSendsUnacknowledgedAgainAsNewMessages) {
  Make(Options());  // clean session
  Open(0);
  ASSERT_TRUE(client_->Publish("t", "one", QoS::k1, false));
  Take(0);
  client_->OnTransportClosed(10, "reset");
  Sent sent = Open(client_->connect_at_ms());
  ASSERT_EQ(Types(sent), (std::vector<PacketType>{PacketType::kSubscribe, PacketType::kPublish}));
  const auto& publish = std::get<mqtt::Publish>(sent.packets[1]);
  EXPECT_FALSE(publish.dup);
  EXPECT_EQ(publish.payload, "one");
  EXPECT_EQ(client_->inflight(), 1u);
}

TEST_F(BridgeClientTest, RefusedConnackBacksOffExponentiallyToTheCap) {
  Make(Options());
  uint64_t now = 0;
  const uint64_t expected_waits[] = {1000, 2000, 4000, 8000, 8000};
  for (const uint64_t wait : expected_waits) {
    ASSERT_TRUE(client_->ConnectDue(now));
    client_->BeginConnect(now);
    client_->OnTransportConnected(now);
    Take(now);
    Feed(now, mqtt::Connack{.return_code = mqtt::ConnackCode::kBadUserNameOrPassword});
    EXPECT_EQ(client_->state(), ClientState::kDisconnected);
    EXPECT_EQ(client_->connect_at_ms(), now + wait);
    EXPECT_FALSE(client_->ConnectDue(now + wait - 1));
    now += wait;
  }
  EXPECT_EQ(sink_.reasons.back(), "CONNACK refused: bad user name or password");
  EXPECT_EQ(sink_.connected, 0);
  EXPECT_EQ(client_->stats().disconnects, 5u);
}

TEST_F(BridgeClientTest, JitterShortensTheWaitWithinItsPercentage) {
  ClientOptions options = Options();
  options.restart_jitter_percent = 50;
  options.random_seed = 42;
  Make(options);
  bool shorter = false;
  uint64_t now = 0;
  for (int i = 0; i < 20; ++i) {
    client_->BeginConnect(now);
    client_->OnTransportClosed(now, "refused");
    const uint64_t wait = client_->connect_at_ms() - now;
    const uint64_t full = std::min<uint64_t>(8000, 1000ull << std::min(i, 10));
    EXPECT_LE(wait, full);
    EXPECT_GE(wait, full / 2);
    shorter = shorter || wait < full;
    now = client_->connect_at_ms();
  }
  EXPECT_TRUE(shorter);
}

TEST_F(BridgeClientTest, ConnackTimeoutGivesUp) {
  Make(Options());
  client_->BeginConnect(0);
  client_->OnTransportConnected(0);
  EXPECT_EQ(client_->next_deadline_ms(), 10'000u);
  client_->OnTimer(9'999);
  EXPECT_EQ(client_->state(), ClientState::kAwaitConnack);
  client_->OnTimer(10'000);
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  EXPECT_EQ(sink_.reasons.back(), "no CONNACK within the connect timeout");
}

TEST_F(BridgeClientTest, TransportConnectTimeoutGivesUp) {
  Make(Options());
  client_->BeginConnect(500);  // the TCP connect never completes
  EXPECT_EQ(client_->next_deadline_ms(), 10'500u);
  client_->OnTimer(10'500);
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  EXPECT_EQ(client_->connect_at_ms(), 11'500u);
}

TEST_F(BridgeClientTest, KeepalivePingsWhenIdleAndTimesOutWithoutAnswer) {
  Make(Options());  // keepalive 10 s
  Open(0);
  EXPECT_EQ(client_->next_deadline_ms(), 10'000u);
  client_->OnTimer(9'000);
  EXPECT_FALSE(client_->has_output());
  client_->OnTimer(10'000);
  EXPECT_EQ(Types(Take(10'000)), std::vector<PacketType>{PacketType::kPingreq});
  Feed(11'000, mqtt::Pingresp{});
  client_->OnTimer(19'999);
  EXPECT_EQ(client_->state(), ClientState::kOpen);
  client_->OnTimer(20'000);
  EXPECT_EQ(Types(Take(20'000)), std::vector<PacketType>{PacketType::kPingreq});
  client_->OnTimer(29'999);
  EXPECT_EQ(client_->state(), ClientState::kOpen);
  client_->OnTimer(30'000);  // no answer within the keepalive
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  EXPECT_EQ(sink_.reasons.back(), "no answer to PINGREQ within the keepalive");
}

TEST_F(BridgeClientTest, PacketSplitAtEveryByteDecodesTheSame) {
  Make(Options());
  Open(0);
  const mqtt::Publish publish{.topic = "in/x", .payload = "hello", .qos = QoS::k1, .packet_id = 3};
  std::vector<uint8_t> bytes(mqtt::EncodedSize(publish));
  mqtt::Encode(publish, bytes);
  for (const uint8_t byte : bytes) client_->OnReceived(0, std::span<const uint8_t>(&byte, 1));
  EXPECT_EQ(sink_.messages, std::vector<std::string>{"in/x=hello@1"});
}

TEST_F(BridgeClientTest, OversizedOrMalformedPacketClosesTheConnection) {
  ClientOptions options = Options();
  options.max_packet_size = 64;
  Make(options);
  Open(0);
  const std::string payload(100, 'x');
  Feed(0, mqtt::Publish{.topic = "in/x", .payload = payload});
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  EXPECT_TRUE(sink_.messages.empty());
  Make(Options());
  Open(0);
  const uint8_t reserved[] = {0xF0, 0x00};  // packet type 15 at 3.1.1
  client_->OnReceived(0, reserved);
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  EXPECT_NE(sink_.reasons.back().find("malformed"), std::string::npos);
}

TEST_F(BridgeClientTest, AnythingBeforeConnackIsAProtocolError) {
  Make(Options());
  client_->BeginConnect(0);
  client_->OnTransportConnected(0);
  Take(0);
  Feed(0, mqtt::Pingresp{});
  EXPECT_EQ(client_->state(), ClientState::kDisconnected);
  EXPECT_EQ(sink_.reasons.back(), "expected CONNACK, got PINGRESP");
}

TEST_F(BridgeClientTest, MessageLargerThanThePacketBoundIsDroppedNotSent) {
  ClientOptions options = Options();
  options.max_packet_size = 64;
  Make(options);
  ASSERT_TRUE(client_->Publish("t", std::string(100, 'x'), QoS::k1, false));
  ASSERT_TRUE(client_->Publish("t", "small", QoS::k1, false));
  Sent sent = Open(0);
  ASSERT_EQ(Types(sent), (std::vector<PacketType>{PacketType::kSubscribe, PacketType::kPublish}));
  EXPECT_EQ(std::get<mqtt::Publish>(sent.packets[1]).payload, "small");
  EXPECT_EQ(client_->stats().dropped, 1u);
}

TEST_F(BridgeClientTest, SubackFailuresAreCounted) {
  Make(Options());
  Sent sent = Open(0);
  const uint16_t id = std::get<mqtt::Subscribe>(sent.packets.at(0)).packet_id;
  const uint8_t codes[] = {mqtt::kSubackFailure};
  Feed(0, mqtt::Suback{.packet_id = id, .return_codes = codes});
  EXPECT_EQ(client_->stats().subscribe_refused, 1u);
  EXPECT_EQ(client_->state(), ClientState::kOpen);
}

TEST_F(BridgeClientTest, CreateRefusesOptionsOutOfRange) {
  ClientOptions options = Options();
  options.client_id.clear();
  EXPECT_FALSE(BridgeClient::Create(options, &sink_).ok());
  options = Options();
  options.max_inflight = 0;
  EXPECT_FALSE(BridgeClient::Create(options, &sink_).ok());
  options = Options();
  options.restart_max_ms = 10;
  EXPECT_FALSE(BridgeClient::Create(options, &sink_).ok());
  options = Options();
  options.try_private = true;
  options.level = mqtt::ProtocolLevel::kMqtt5;
  EXPECT_FALSE(BridgeClient::Create(options, &sink_).ok());
}

// ---- bridge lane: deferred acknowledgements (persistence on), will, once ----

TEST_F(BridgeClientTest, DeferredAcksWaitForReleaseAndAnnounceTheWindow) {
  ClientOptions options = Options();
  options.level = mqtt::ProtocolLevel::kMqtt5;
  options.defer_acks = true;
  options.receive_maximum = 7;
  Make(options);
  client_->BeginConnect(0);
  client_->OnTransportConnected(0);
  Sent connect = Take(0);
  // 5.0:MQTT-3.3.4-9: the server keeps at most Receive Maximum QoS 1/2 unacknowledged.
  EXPECT_EQ(std::get<mqtt::Connect>(connect.packets.at(0)).properties.Values().receive_maximum,
            7);
  Feed(0, mqtt::Connack{});
  Take(0);
  Feed(0, mqtt::Publish{.topic = "in/a", .payload = "1", .qos = QoS::k1, .packet_id = 3});
  ASSERT_EQ(sink_.messages.size(), 1u);
  EXPECT_TRUE(Take(0).packets.empty());  // no PUBACK yet: the message is not delivered onward
  EXPECT_EQ(client_->deferred(), 1u);
  // The sender resends it (DUP, same id): MQTT-2.2.1-3 says it is the same message.
  Feed(0, mqtt::Publish{
              .topic = "in/a", .payload = "1", .qos = QoS::k1, .dup = true, .packet_id = 3});
  EXPECT_EQ(sink_.messages.size(), 1u);
  client_->Release(Origin{.session = 2, .packet_id = 3, .qos = QoS::k1});  // the session's epoch
  Sent acks = Take(0);
  ASSERT_EQ(Types(acks), std::vector<PacketType>{PacketType::kPuback});
  EXPECT_EQ(std::get<mqtt::Puback>(acks.packets[0]).packet_id, 3);
  EXPECT_EQ(client_->deferred(), 0u);
}

// Captures the Origin the client hands out during OnMessage.
struct OriginRecorder : Recorder {
  BridgeClient* client = nullptr;
  std::vector<Origin> origins;
  void OnMessage(const mqtt::Publish& publish) override {
    Recorder::OnMessage(publish);
    origins.push_back(client->inbound_origin());
  }
};

TEST_F(BridgeClientTest, DeferredQos2PubrecOnReleaseAndNotDeliveredTwice) {
  ClientOptions options = Options();
  options.defer_acks = true;
  options.clean_session = false;
  OriginRecorder sink;
  absl::StatusOr<BridgeClient> made = BridgeClient::Create(options, &sink);
  ASSERT_TRUE(made.ok());
  client_.emplace(std::move(*made));
  sink.client = &*client_;
  Open(0);
  Feed(0, mqtt::Publish{.topic = "in/q2", .payload = "x", .qos = QoS::k2, .packet_id = 9});
  ASSERT_EQ(sink.origins.size(), 1u);
  EXPECT_EQ(sink.origins[0].qos, QoS::k2);
  EXPECT_TRUE(Take(0).packets.empty());
  // Lost connection, session resumed: the server resends; Release while disconnected is sent
  // once the session is back, and the resend is not delivered again (§4.3.3).
  client_->OnTransportClosed(0, "lost");
  client_->Release(sink.origins[0]);
  ASSERT_TRUE(client_->ConnectDue(1000));
  client_->BeginConnect(1000);
  client_->OnTransportConnected(1000);
  Take(1000);
  Feed(1000, mqtt::Connack{.session_present = true});
  Sent after = Take(1000);
  ASSERT_EQ(Types(after), (std::vector<PacketType>{PacketType::kSubscribe, PacketType::kPubrec}));
  Feed(1000, mqtt::Publish{
                 .topic = "in/q2", .payload = "x", .qos = QoS::k2, .dup = true, .packet_id = 9});
  EXPECT_EQ(sink.messages.size(), 1u);
  ASSERT_EQ(Types(Take(1000)), std::vector<PacketType>{PacketType::kPubrec});
}

TEST_F(BridgeClientTest, ReleaseOfAnEndedSessionIsNotSent) {
  ClientOptions options = Options();
  options.defer_acks = true;
  OriginRecorder sink;
  absl::StatusOr<BridgeClient> made = BridgeClient::Create(options, &sink);
  ASSERT_TRUE(made.ok());
  client_.emplace(std::move(*made));
  sink.client = &*client_;
  Open(0);
  Feed(0, mqtt::Publish{.topic = "in/a", .payload = "1", .qos = QoS::k1, .packet_id = 5});
  client_->OnTransportClosed(0, "lost");
  client_->BeginConnect(1000);
  client_->OnTransportConnected(1000);
  Take(1000);
  Feed(1000, mqtt::Connack{.session_present = false});  // a new session: id 5 may be reused
  Take(1000);
  client_->Release(sink.origins.at(0));
  EXPECT_TRUE(Take(1000).packets.empty());
  EXPECT_EQ(client_->stats().released_stale, 1u);
}

struct DeliveredRecorder : Recorder {
  std::vector<Origin> delivered;
  void OnDelivered(const Origin& origin) override { delivered.push_back(origin); }
};

TEST_F(BridgeClientTest, OriginComesBackWhenThePeerAcknowledges) {
  DeliveredRecorder sink;
  absl::StatusOr<BridgeClient> made = BridgeClient::Create(Options(), &sink);
  ASSERT_TRUE(made.ok());
  client_.emplace(std::move(*made));
  Open(0);
  ASSERT_TRUE(client_->Publish("out/a", "1", QoS::k2, false,
                               Origin{.session = 1, .packet_id = 44, .qos = QoS::k2}));
  Sent sent = Take(0);
  const uint16_t id = std::get<mqtt::Publish>(sent.packets.at(0)).packet_id;
  Feed(0, mqtt::Pubrec{.packet_id = id});
  EXPECT_TRUE(sink.delivered.empty());  // QoS 2 is complete at PUBCOMP only
  Feed(0, mqtt::Pubcomp{.packet_id = id});
  ASSERT_EQ(sink.delivered.size(), 1u);
  EXPECT_EQ(sink.delivered[0].packet_id, 44);
}

TEST_F(BridgeClientTest, WillInConnectAndGoodbyeSetsTheStateToZero) {
  ClientOptions options = Options();
  options.will_topic = "$SYS/broker/connection/edge/state";
  options.will_payload = "0";
  Make(options);
  client_->BeginConnect(0);
  client_->OnTransportConnected(0);
  Sent connect = Take(0);
  const auto& packet = std::get<mqtt::Connect>(connect.packets.at(0));
  ASSERT_TRUE(packet.will.has_value());
  EXPECT_EQ(packet.will->topic, "$SYS/broker/connection/edge/state");
  EXPECT_EQ(packet.will->payload, "0");
  EXPECT_TRUE(packet.will->retain);
  EXPECT_EQ(packet.will->qos, QoS::k1);
  // 3.1.1 has no "disconnect with will": the state goes as a retained PUBLISH first.
  ByteBuffer goodbye;
  client_->EncodeGoodbye(goodbye);
  std::span<const uint8_t> rest(goodbye);
  const mqtt::Frame first = mqtt::PeekFrame(rest, 1 << 20);
  ASSERT_EQ(first.header.type, PacketType::kPublish);
  rest = rest.subspan(first.header.total_length());
  EXPECT_EQ(mqtt::PeekFrame(rest, 1 << 20).header.type, PacketType::kDisconnect);
}

TEST_F(BridgeClientTest, StartTypeOnceNeverRetries) {
  ClientOptions options = Options();
  options.reconnect = false;
  Make(options);
  ASSERT_TRUE(client_->ConnectDue(0));
  client_->BeginConnect(0);
  client_->OnTransportClosed(0, "connection refused");
  EXPECT_FALSE(client_->ConnectDue(UINT64_MAX - 1));
}

TEST_F(BridgeClientTest, PublishFirstGoesAheadOutsideTheBoundAndOnlyOnce) {
  Make(Options());  // max_queued_messages 4
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(client_->Publish("out/x", "p", QoS::k0, false));
  EXPECT_FALSE(client_->Publish("out/x", "p", QoS::k0, false));
  client_->PublishFirst("state", "1", QoS::k1, true);
  client_->PublishFirst("state", "1", QoS::k1, true);  // replaces the one not yet sent
  EXPECT_EQ(client_->queued_messages(), 5u);
  Sent sent = Open(0);
  ASSERT_GE(sent.packets.size(), 2u);
  EXPECT_EQ(std::get<mqtt::Publish>(sent.packets[1]).topic, "state");
}

}  // namespace
}  // namespace ringmq::bridge
