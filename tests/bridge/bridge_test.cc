#include "bridge/bridge.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "bridge_output.h"
#include "mqtt/codec.h"

namespace ringmq::bridge {
namespace {

using mqtt::QoS;

TEST(BridgeTopicMatches, WildcardsAsSection4_7) {
  EXPECT_TRUE(TopicMatches("a/b", "a/b"));
  EXPECT_FALSE(TopicMatches("a/b", "a/b/c"));
  EXPECT_FALSE(TopicMatches("a/b/c", "a/b"));
  EXPECT_TRUE(TopicMatches("a/+", "a/b"));
  EXPECT_TRUE(TopicMatches("a/+", "a/"));  // an empty level is a level
  EXPECT_FALSE(TopicMatches("a/+", "a"));
  EXPECT_FALSE(TopicMatches("a/+", "a/b/c"));
  EXPECT_TRUE(TopicMatches("a/#", "a"));  // MQTT-4.7.1-2: the parent level too
  EXPECT_TRUE(TopicMatches("a/#", "a/b/c"));
  EXPECT_TRUE(TopicMatches("#", "x/y"));
  EXPECT_TRUE(TopicMatches("+/+", "/x"));
  EXPECT_FALSE(TopicMatches("#", "$SYS/x"));  // MQTT-4.7.2-1
  EXPECT_FALSE(TopicMatches("+/x", "$SYS/x"));
  EXPECT_TRUE(TopicMatches("$SYS/#", "$SYS/x"));
  EXPECT_FALSE(TopicMatches("ab", "a"));
  EXPECT_FALSE(TopicMatches("a", "ab"));
}

TEST(BridgeMapTopic, PrefixReplacedRestKept) {
  std::string out;
  EXPECT_TRUE(MapTopic("sensors/#", "site1/", "cloud/site1/", "site1/sensors/t1", out));
  EXPECT_EQ(out, "cloud/site1/sensors/t1");
  EXPECT_FALSE(MapTopic("sensors/#", "site1/", "cloud/", "site2/sensors/t1", out));
  EXPECT_FALSE(MapTopic("sensors/#", "site1/", "cloud/", "site1/other", out));
  EXPECT_TRUE(MapTopic("a/+", "", "", "a/b", out));
  EXPECT_EQ(out, "a/b");
  // The empty pattern maps exactly the prefix (Mosquitto's `topic "" out 0 L R`).
  EXPECT_TRUE(MapTopic("", "local/x", "remote/y", "local/x", out));
  EXPECT_EQ(out, "remote/y");
  EXPECT_FALSE(MapTopic("", "local/x", "remote/y", "local/x/z", out));
}

BridgeConfig ValidConfig() {
  BridgeConfig config;
  config.name = "cloud";
  config.addresses = {"127.0.0.1:1883"};
  config.topics = {{.pattern = "sensors/#",
                    .direction = BridgeDirection::kOut,
                    .qos = 1,
                    .local_prefix = "",
                    .remote_prefix = "site1/"},
                   {.pattern = "commands/#",
                    .direction = BridgeDirection::kIn,
                    .qos = 1,
                    .local_prefix = "",
                    .remote_prefix = "site1/"},
                   {.pattern = "shared/#",
                    .direction = BridgeDirection::kBoth,
                    .qos = 2,
                    .local_prefix = "",
                    .remote_prefix = ""}};
  config.client_id = "edge";
  config.notifications = false;  // tested on their own (BridgeNotifications)
  return config;
}

TEST(BridgeValidate, NamesTheKeyThatIsWrong) {
  EXPECT_TRUE(ValidateBridgeConfig(ValidConfig()).ok());
  auto error = [](auto edit) {
    BridgeConfig config = ValidConfig();
    edit(config);
    const absl::Status status = ValidateBridgeConfig(config);
    EXPECT_FALSE(status.ok());
    return std::string(status.message());
  };
  EXPECT_NE(error([](BridgeConfig& c) { c.name.clear(); }).find("name"), std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.name = "a b"; }).find("name"), std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.addresses.clear(); }).find("addresses"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.topics.clear(); }).find("topics"), std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.topics[0].qos = 3; }).find("topics[0].qos"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.topics[1].pattern = "a/#/b"; }).find("topics[1]"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.topics[0].local_prefix = "+/"; }).find("prefixes"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.topics[2].pattern = ""; }).find("empty pattern"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.protocol_version = 3; }).find("protocol_version"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.max_inflight = 0; }).find("max_inflight"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.max_queued_messages = 0; }).find("max_queued"),
            std::string::npos);
  EXPECT_NE(error([](BridgeConfig& c) { c.restart_max_ms = 1; }).find("restart"),
            std::string::npos);
}

void BridgeTest_Feed(BridgeClient& client, const mqtt::Packet& packet) {
  std::vector<uint8_t> bytes(mqtt::EncodedSize(packet, client.options().level));
  mqtt::Encode(packet, bytes, client.options().level);
  client.OnReceived(0, bytes);
}
void BridgeTest_Open(BridgeClient& client) {
  client.BeginConnect(0);
  client.OnTransportConnected(0);
  ByteBuffer discard;
  client.TakeOutput(0, discard);
  BridgeTest_Feed(client, mqtt::Connack{});
}

// Drives both clients of a bridge with in-memory servers.
class BridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Bridge>> bridge =
        Bridge::Create(ValidConfig(), {.host_name = "host",
                                       .max_packet_size = 1 << 16,
                                       .connect_timeout_ms = 10000,
                                       .random_seed = 0});
    ASSERT_TRUE(bridge.ok()) << bridge.status();
    bridge_ = std::move(*bridge);
  }
  static void Feed(BridgeClient& client, const mqtt::Packet& packet) {
    std::vector<uint8_t> bytes(mqtt::EncodedSize(packet, client.options().level));
    mqtt::Encode(packet, bytes, client.options().level);
    client.OnReceived(0, bytes);
  }
  // The PUBLISHes in a client's output, as "topic=payload@qos".
  static std::vector<std::string> Published(BridgeClient& client) {
    ByteBuffer out;
    client.TakeOutput(0, out);
    std::vector<std::string> published;
    std::span<const uint8_t> rest(out);
    while (!rest.empty()) {
      const mqtt::Frame frame = mqtt::PeekFrame(rest, 1 << 20, client.options().level);
      if (frame.status != mqtt::FrameStatus::kComplete) break;
      if (frame.header.type == mqtt::PacketType::kPublish) {
        const mqtt::Packet packet =
            mqtt::Decode(frame.header,
                         rest.subspan(frame.header.header_length, frame.header.remaining_length),
                         client.options().level)
                .value();
        const auto& publish = std::get<mqtt::Publish>(packet);
        published.push_back(std::string(publish.topic) + "=" + std::string(publish.payload) + "@" +
                            std::to_string(static_cast<int>(publish.qos)));
      }
      rest = rest.subspan(frame.header.total_length());
    }
    return published;
  }
  static void Open(BridgeClient& client) {
    client.BeginConnect(0);
    client.OnTransportConnected(0);
    ByteBuffer discard;
    client.TakeOutput(0, discard);  // the CONNECT (Published skips the SUBSCRIBE that follows)
    Feed(client, mqtt::Connack{});
    ASSERT_EQ(client.state(), ClientState::kOpen);
  }
  std::unique_ptr<Bridge> bridge_;
};

TEST_F(BridgeTest, ClientsSubscribeByDirectionWithNoLocal) {
  const auto& remote = bridge_->remote().options().subscriptions;
  const auto& local = bridge_->local().options().subscriptions;
  ASSERT_EQ(remote.size(), 2u);
  EXPECT_EQ(remote[0].filter, "site1/commands/#");
  EXPECT_EQ(remote[1].filter, "shared/#");
  ASSERT_EQ(local.size(), 2u);
  EXPECT_EQ(local[0].filter, "sensors/#");
  EXPECT_EQ(local[1].filter, "shared/#");
  EXPECT_TRUE(local[0].no_local);  // loop prevention on this broker (5.0:MQTT-3.8.3-3)
  EXPECT_EQ(bridge_->local().options().level, mqtt::ProtocolLevel::kMqtt5);
  EXPECT_EQ(bridge_->local().options().client_id, "local.edge");
  EXPECT_TRUE(bridge_->remote().options().try_private);
  EXPECT_FALSE(bridge_->remote().options().clean_session);
}

TEST_F(BridgeTest, OutboundRemappedAndQueuedWhileRemoteDown) {
  Open(bridge_->local());
  Feed(bridge_->local(),
       mqtt::Publish{.topic = "sensors/t1", .payload = "21", .qos = QoS::k1, .packet_id = 1});
  EXPECT_EQ(bridge_->stats().messages_out, 1u);
  EXPECT_EQ(bridge_->remote().queued_messages(), 1u);  // the remote is not connected yet
  Open(bridge_->remote());
  EXPECT_EQ(Published(bridge_->remote()), std::vector<std::string>{"site1/sensors/t1=21@1"});
}

TEST_F(BridgeTest, InboundRemappedToTheLocalSession) {
  Open(bridge_->local());
  Open(bridge_->remote());
  Feed(bridge_->remote(),
       mqtt::Publish{
           .topic = "site1/commands/reboot", .payload = "now", .qos = QoS::k1, .packet_id = 4});
  EXPECT_EQ(Published(bridge_->local()), std::vector<std::string>{"commands/reboot=now@1"});
  EXPECT_EQ(bridge_->stats().messages_in, 1u);
  // A message that matches no rule of its direction (an `out` rule's topic from the remote).
  Feed(bridge_->remote(), mqtt::Publish{.topic = "site1/sensors/x", .payload = "p"});
  EXPECT_EQ(bridge_->stats().unmatched, 1u);
  EXPECT_TRUE(Published(bridge_->local()).empty());
}

TEST_F(BridgeTest, BothDirectionsKeepTheTopic) {
  Open(bridge_->local());
  Open(bridge_->remote());
  Feed(bridge_->remote(),
       mqtt::Publish{.topic = "shared/a", .payload = "r", .qos = QoS::k2, .packet_id = 5});
  Feed(bridge_->local(), mqtt::Publish{.topic = "shared/b", .payload = "l"});
  EXPECT_EQ(Published(bridge_->local()), std::vector<std::string>{"shared/a=r@2"});
  EXPECT_EQ(Published(bridge_->remote()), std::vector<std::string>{"shared/b=l@0"});
}

TEST_F(BridgeTest, RemoteQueueBoundCountsDrops) {
  BridgeConfig config = ValidConfig();
  config.max_queued_messages = 2;
  bridge_ = std::move(*Bridge::Create(config, {.host_name = "h",
                                               .max_packet_size = 1 << 20,
                                               .connect_timeout_ms = 10000,
                                               .random_seed = 0}));
  Open(bridge_->local());
  for (uint16_t id = 1; id <= 3; ++id) {
    Feed(bridge_->local(),
         mqtt::Publish{.topic = "sensors/x", .payload = "p", .qos = QoS::k1, .packet_id = id});
  }
  EXPECT_EQ(bridge_->stats().messages_out, 2u);
  EXPECT_EQ(bridge_->stats().dropped_out, 1u);
  EXPECT_EQ(bridge_->remote().stats().dropped, 1u);
}

TEST(BridgeHostPort, ParsesHostPortForms) {
  EXPECT_EQ(ParseHostPort("broker.example:8883")->host, "broker.example");
  EXPECT_EQ(ParseHostPort("broker.example:8883")->port, 8883);
  EXPECT_EQ(ParseHostPort("10.0.0.1")->port, 1883);
  EXPECT_EQ(ParseHostPort("[::1]:1884")->host, "::1");
  EXPECT_EQ(ParseHostPort("[::1]:1884")->port, 1884);
  EXPECT_EQ(ParseHostPort("[::1]")->port, 1883);
  EXPECT_FALSE(ParseHostPort("::1").ok());  // brackets required
  EXPECT_FALSE(ParseHostPort("host:").ok());
  EXPECT_FALSE(ParseHostPort("host:0").ok());
  EXPECT_FALSE(ParseHostPort("host:65536").ok());
  EXPECT_FALSE(ParseHostPort("host:12a").ok());
  EXPECT_FALSE(ParseHostPort(":1883").ok());
  EXPECT_FALSE(ParseHostPort("[::1").ok());
}

TEST_F(BridgeTest, DefaultClientIdIsNameDotHost) {
  BridgeConfig config = ValidConfig();
  config.client_id.clear();
  auto bridge = Bridge::Create(config, {.host_name = "edge1",
                                        .max_packet_size = 1 << 20,
                                        .connect_timeout_ms = 10000,
                                        .random_seed = 0});
  ASSERT_TRUE(bridge.ok());
  EXPECT_EQ((*bridge)->remote().options().client_id, "cloud.edge1");
  EXPECT_EQ((*bridge)->local().options().client_id, "local.cloud.edge1");
}

// ---- bridge lane: durable bridges, notifications, start types ----

// The PUBACKs and PUBRECs of a client's output, as type names with ids ("PUBACK 1").
std::vector<std::string> Acks(BridgeClient& client) {
  std::vector<std::string> acks;
  for (std::string& packet : output_test::QosPackets(client)) {
    if (packet.starts_with("PUBACK ") || packet.starts_with("PUBREC ")) {
      acks.push_back(std::move(packet));
    }
  }
  return acks;
}

// The id of the first PUBLISH in a client's output.
uint16_t FirstPublishId(BridgeClient& client) {
  ByteBuffer out;
  client.TakeOutput(0, out);
  std::span<const uint8_t> rest(out);
  while (!rest.empty()) {
    const mqtt::Frame frame = mqtt::PeekFrame(rest, 1 << 20, client.options().level);
    if (frame.status != mqtt::FrameStatus::kComplete) break;
    if (frame.header.type == mqtt::PacketType::kPublish) {
      const mqtt::Packet packet =
          mqtt::Decode(frame.header,
                       rest.subspan(frame.header.header_length, frame.header.remaining_length),
                       client.options().level)
              .value();
      return std::get<mqtt::Publish>(packet).packet_id;
    }
    rest = rest.subspan(frame.header.total_length());
  }
  return 0;
}

TEST_F(BridgeTest, DurableBridgeAcknowledgesLocallyOnlyWhenTheRemoteDid) {
  BridgeConfig config = ValidConfig();
  config.max_queued_messages = 50;
  bridge_ = std::move(*Bridge::Create(config, {.host_name = "h",
                                               .max_packet_size = 1 << 20,
                                               .connect_timeout_ms = 10000,
                                               .random_seed = 0,
                                               .durable = true}));
  // The local session is persistent and bounds what this broker keeps in flight to it.
  EXPECT_FALSE(bridge_->local().options().clean_session);
  EXPECT_EQ(bridge_->local().options().receive_maximum, 50);
  EXPECT_EQ(bridge_->local().options().retain_handling, 1);
  Open(bridge_->local());
  Acks(bridge_->local());  // the SUBSCRIBE
  Feed(bridge_->local(),
       mqtt::Publish{.topic = "sensors/t", .payload = "1", .qos = QoS::k1, .packet_id = 11});
  Feed(bridge_->local(),
       mqtt::Publish{.topic = "shared/q", .payload = "2", .qos = QoS::k2, .packet_id = 12});
  // The remote is down: nothing is acknowledged here, the broker keeps both (in its log).
  EXPECT_TRUE(Acks(bridge_->local()).empty());
  Open(bridge_->remote());
  const uint16_t first = FirstPublishId(bridge_->remote());
  ASSERT_NE(first, 0);
  Feed(bridge_->remote(), mqtt::Puback{.packet_id = first});
  EXPECT_EQ(Acks(bridge_->local()), std::vector<std::string>{"PUBACK 11"});
  EXPECT_EQ(first, 11);  // this broker's id (relay_qos2; bridge_qos2_test.cc)
  const uint16_t second = 12;
  // QoS 2: PUBREC here once the remote owns it (its PUBREC); the rest follows this broker's log
  // (BridgeQos2.*).
  Feed(bridge_->remote(), mqtt::Pubrec{.packet_id = second});
  EXPECT_EQ(Acks(bridge_->local()), std::vector<std::string>{"PUBREC 12"});
}

TEST_F(BridgeTest, DurableBridgeAcknowledgesADropAtOnce) {
  BridgeConfig config = ValidConfig();
  config.max_queued_messages = 1;
  bridge_ = std::move(*Bridge::Create(config, {.host_name = "h",
                                               .max_packet_size = 1 << 20,
                                               .connect_timeout_ms = 10000,
                                               .random_seed = 0,
                                               .durable = true}));
  Open(bridge_->local());
  Acks(bridge_->local());
  Feed(bridge_->local(),
       mqtt::Publish{.topic = "sensors/a", .payload = "1", .qos = QoS::k1, .packet_id = 1});
  Feed(bridge_->local(),
       mqtt::Publish{.topic = "sensors/b", .payload = "2", .qos = QoS::k1, .packet_id = 2});
  // Beyond the bound: dropped and counted, and acknowledged so the broker does not hold it.
  EXPECT_EQ(bridge_->stats().dropped_out, 1u);
  EXPECT_EQ(Acks(bridge_->local()), std::vector<std::string>{"PUBACK 2"});
}

TEST(BridgeNotifications, StateTopicWillAndLocalStates) {
  BridgeConfig config = ValidConfig();
  config.notifications = true;
  auto made = Bridge::Create(config, {.host_name = "h"});
  ASSERT_TRUE(made.ok());
  Bridge& bridge = **made;
  // mosquitto.conf(5): $SYS/broker/connection/<remote_clientid>/state, will "0" on the remote.
  EXPECT_EQ(bridge.notification_topic(), "$SYS/broker/connection/edge/state");
  EXPECT_EQ(bridge.remote().options().will_topic, "$SYS/broker/connection/edge/state");
  EXPECT_EQ(bridge.remote().options().will_payload, "0");
  bool connected = true;
  ASSERT_TRUE(bridge.TakeLocalState(connected));  // "0" at start
  EXPECT_FALSE(connected);
  EXPECT_FALSE(bridge.TakeLocalState(connected));  // unchanged
  BridgeTest_Open(bridge.remote());
  ASSERT_TRUE(bridge.TakeLocalState(connected));
  EXPECT_TRUE(connected);
  // "1" on the remote, ahead of everything else.
  ByteBuffer out;
  bridge.remote().TakeOutput(0, out);
  const std::string bytes(out.begin(), out.end());
  const std::string topic = "$SYS/broker/connection/edge/state";
  const size_t at = bytes.find(topic);
  ASSERT_NE(at, std::string::npos);
  ASSERT_GT(bytes.size(), at + topic.size() + 2);
  EXPECT_EQ(bytes[at + topic.size() + 2], '1');  // after the packet id
  bridge.remote().OnTransportClosed(0, "lost");
  ASSERT_TRUE(bridge.TakeLocalState(connected));
  EXPECT_FALSE(connected);
  EXPECT_EQ(bridge.stats().notifications, 4u);  // 0, 1 here; 1 there; 0 here
}

TEST(BridgeNotifications, LocalOnlyAndOwnTopic) {
  BridgeConfig config = ValidConfig();
  config.notifications = true;
  config.notifications_local_only = true;
  config.notification_topic = "bridges/cloud/state";
  auto made = Bridge::Create(config, {.host_name = "h"});
  ASSERT_TRUE(made.ok());
  EXPECT_EQ((*made)->notification_topic(), "bridges/cloud/state");
  EXPECT_TRUE((*made)->remote().options().will_topic.empty());
  config.notification_topic = "bad/#";
  EXPECT_FALSE(ValidateBridgeConfig(config).ok());
}

TEST(BridgeStartType, LazyWantsTheRemoteAtTheThreshold) {
  BridgeConfig config = ValidConfig();
  config.start_type = BridgeStartType::kLazy;
  config.threshold = 2;
  auto made = Bridge::Create(config, {.host_name = "h"});
  ASSERT_TRUE(made.ok());
  Bridge& bridge = **made;
  EXPECT_FALSE(bridge.RemoteWanted());
  BridgeTest_Open(bridge.local());
  BridgeTest_Feed(bridge.local(), mqtt::Publish{.topic = "sensors/a", .payload = "1"});
  EXPECT_FALSE(bridge.RemoteWanted());
  BridgeTest_Feed(bridge.local(), mqtt::Publish{.topic = "sensors/b", .payload = "2"});
  EXPECT_TRUE(bridge.RemoteWanted());
  BridgeTest_Open(bridge.remote());
  ByteBuffer out;
  bridge.remote().TakeOutput(0, out);  // both sent (QoS 0)
  EXPECT_TRUE(bridge.RemoteIdle());
  config.threshold = config.max_queued_messages + 1;
  EXPECT_FALSE(ValidateBridgeConfig(config).ok());  // would drop before ever starting
  config.start_type = BridgeStartType::kOnce;
  auto once = Bridge::Create(config, {.host_name = "h"});
  ASSERT_TRUE(once.ok());
  EXPECT_FALSE((*once)->remote().options().reconnect);
  EXPECT_TRUE((*once)->RemoteWanted());
}

}  // namespace
}  // namespace ringmq::bridge
