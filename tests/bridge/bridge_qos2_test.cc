// Exactly once at QoS 2 across a restart of ringmq (bridge/bridge_client.h, relay_qos2 and
// hold_pubcomp; docs/bridges.md "Exactly once at QoS 2"): a durable bridge sends a local QoS 2
// message to the remote with this broker's packet id, acknowledges it here on the remote's
// PUBREC, sends the remote PUBREL only once this broker's PUBREL says its log holds that, and
// after a restart sends PUBREL, never the PUBLISH, for an id the log kept as released.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "bridge/bridge.h"
#include "bridge_output.h"
#include "mqtt/codec.h"

namespace ringmq::bridge {
namespace qos2_test {

using mqtt::QoS;

BridgeConfig Qos2Config() {
  BridgeConfig config;
  config.name = "cloud";
  config.addresses = {"127.0.0.1:1883"};
  config.topics = {{.pattern = "q/#",
                    .direction = BridgeDirection::kOut,
                    .qos = 2,
                    .local_prefix = "",
                    .remote_prefix = "r/"}};
  config.client_id = "edge";
  config.notifications = false;
  config.max_inflight = 20;
  return config;
}

std::unique_ptr<Bridge> MakeBridge(const BridgeConfig& config, bool durable) {
  absl::StatusOr<std::unique_ptr<Bridge>> made =
      Bridge::Create(config, {.host_name = "h",
                              .max_packet_size = 1 << 20,
                              .connect_timeout_ms = 10000,
                              .random_seed = 0,
                              .durable = durable});
  EXPECT_TRUE(made.ok()) << made.status();
  return std::move(*made);
}

void FeedPacket(BridgeClient& client, const mqtt::Packet& packet) {
  std::vector<uint8_t> bytes(mqtt::EncodedSize(packet, client.options().level));
  mqtt::Encode(packet, bytes, client.options().level);
  client.OnReceived(0, bytes);
}

// The client's output (bridge_output.h).
std::vector<std::string> Output(BridgeClient& client) {
  return output_test::QosPackets(client);
}

using Packets = std::vector<std::string>;

// Opens a client; `session_present` as the server says. The SUBSCRIBE is answered.
void OpenClient(BridgeClient& client, bool session_present) {
  client.BeginConnect(0);
  client.OnTransportConnected(0);
  ByteBuffer discard;
  client.TakeOutput(0, discard);  // the CONNECT
  FeedPacket(client, mqtt::Connack{.session_present = session_present});
  ASSERT_EQ(client.state(), ClientState::kOpen);
}

void Suback(BridgeClient& client, uint16_t packet_id) {
  static constexpr uint8_t kGranted[] = {0x02};
  FeedPacket(client, mqtt::Suback{.packet_id = packet_id, .return_codes = kGranted});
}

mqtt::Publish LocalQos2(uint16_t packet_id, bool dup = false) {
  return mqtt::Publish{
      .topic = "q/a", .payload = "m", .qos = QoS::k2, .dup = dup, .packet_id = packet_id};
}

TEST(BridgeQos2, DurableOutFollowsTheLogPubrecOnRemotePubrecPubrelOnlyAfterLocalPubrel) {
  std::unique_ptr<Bridge> bridge = MakeBridge(Qos2Config(), /*durable=*/true);
  EXPECT_TRUE(bridge->remote().options().relay_qos2);
  EXPECT_TRUE(bridge->local().options().hold_pubcomp);
  OpenClient(bridge->local(), false);
  OpenClient(bridge->remote(), false);
  Suback(bridge->remote(), 1);
  Output(bridge->local());
  Output(bridge->remote());
  FeedPacket(bridge->local(), LocalQos2(12));
  // Sent with this broker's id: a resend after a restart is the same PUBLISH to the remote.
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBLISH 12"});
  FeedPacket(bridge->remote(), mqtt::Pubrec{.packet_id = 12});
  // The remote owns it: PUBREC here at once; no PUBREL to the remote before this broker's log
  // holds the PUBREC (its PUBREL says so).
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBREC 12"});
  EXPECT_EQ(Output(bridge->remote()), Packets{});
  FeedPacket(bridge->remote(), mqtt::Pubrec{.packet_id = 12});  // repeated: nothing new
  EXPECT_EQ(Output(bridge->local()), Packets{});
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 12});
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 12"});  // 5.0:MQTT-4.3.3-4, same id
  EXPECT_EQ(Output(bridge->local()), Packets{});              // PUBCOMP waits for the remote's
  EXPECT_EQ(bridge->local().held_pubrels(), 1u);
  FeedPacket(bridge->remote(), mqtt::Pubcomp{.packet_id = 12});
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBCOMP 12"});
  EXPECT_EQ(bridge->local().held_pubrels(), 0u);
  EXPECT_EQ(bridge->remote().inflight(), 0u);
  EXPECT_EQ(bridge->remote().stats().qos2_recovered, 0u);
}

TEST(BridgeQos2, AfterARestartALoggedReleaseSendsPubrelNeverThePublish) {
  // A new process: nothing in memory; this broker's log holds id 7 as "PUBREC received".
  std::unique_ptr<Bridge> bridge = MakeBridge(Qos2Config(), /*durable=*/true);
  OpenClient(bridge->local(), /*session_present=*/true);
  Output(bridge->local());
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 7});  // MQTT-4.4.0-1: resent PUBREL
  EXPECT_EQ(bridge->remote().stats().qos2_recovered, 1u);
  EXPECT_EQ(bridge->remote().inflight(), 1u);
  // The remote connects after: the PUBREL goes as the resend of the resumed session.
  OpenClient(bridge->remote(), /*session_present=*/true);
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 7"});  // 5.0:MQTT-4.3.3-6: no PUBLISH
  EXPECT_EQ(Output(bridge->local()), Packets{});
  FeedPacket(bridge->remote(), mqtt::Pubcomp{.packet_id = 7});
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBCOMP 7"});
  EXPECT_EQ(bridge->remote().inflight(), 0u);
  // Both open when the PUBREL comes: PUBREL to the remote at once.
  Suback(bridge->remote(), 1);
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 9});
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 9"});
  EXPECT_EQ(bridge->remote().stats().qos2_recovered, 2u);
}

TEST(BridgeQos2, BeforeTheLogHeldThePubrecARestartResendsThePublishWithTheSameId) {
  // The crash came after the remote's PUBREC and before this broker logged the bridge's PUBREC:
  // this broker resends the PUBLISH (DUP, same id) and the bridge sends it with that id again,
  // which the remote holds unreleased (5.0:MQTT-4.3.3-9: PUBREC again, not delivered twice).
  std::unique_ptr<Bridge> bridge = MakeBridge(Qos2Config(), /*durable=*/true);
  OpenClient(bridge->local(), true);
  OpenClient(bridge->remote(), true);
  Suback(bridge->remote(), 1);
  Output(bridge->remote());
  FeedPacket(bridge->local(), LocalQos2(300, /*dup=*/true));
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBLISH 300"});
}

TEST(BridgeQos2, ResumedRemoteSessionResendsPubrelOnlyForReleasedIds) {
  std::unique_ptr<Bridge> bridge = MakeBridge(Qos2Config(), /*durable=*/true);
  OpenClient(bridge->local(), false);
  OpenClient(bridge->remote(), false);
  Suback(bridge->remote(), 1);
  FeedPacket(bridge->local(), LocalQos2(3));
  FeedPacket(bridge->local(), LocalQos2(4));
  FeedPacket(bridge->local(), LocalQos2(5));
  EXPECT_EQ(Output(bridge->remote()), (Packets{"PUBLISH 3", "PUBLISH 4", "PUBLISH 5"}));
  FeedPacket(bridge->remote(), mqtt::Pubrec{.packet_id = 3});
  FeedPacket(bridge->remote(), mqtt::Pubrec{.packet_id = 4});
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 4});
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 4"});
  bridge->remote().OnTransportClosed(0, "lost");
  OpenClient(bridge->remote(), /*session_present=*/true);
  // 3: PUBREC'd, not released here yet: nothing is due (never its PUBLISH again, MQTT-4.3.3-6);
  // 4: PUBREL again; 5: no PUBREC yet: PUBLISH again with DUP (MQTT-4.4.0-1).
  EXPECT_EQ(Output(bridge->remote()), (Packets{"PUBREL 4", "PUBLISH 5 dup"}));
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 3});
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 3"});
  EXPECT_EQ(bridge->remote().stats().qos2_recovered, 0u);
}

TEST(BridgeQos2, AnIdStillUsedByAnotherPacketWaitsForIt) {
  BridgeConfig config = Qos2Config();
  config.notifications = true;  // the "1" notification is a QoS 1 PUBLISH with its own id
  config.topics.push_back({.pattern = "c/#",  // an `in` rule: a SUBSCRIBE to the remote
                           .direction = BridgeDirection::kIn,
                           .qos = 1,
                           .local_prefix = "",
                           .remote_prefix = ""});
  std::unique_ptr<Bridge> bridge = MakeBridge(config, /*durable=*/true);
  OpenClient(bridge->local(), true);
  OpenClient(bridge->remote(), true);  // SUBSCRIBE id 1, notification id 2
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBLISH 2"});
  // The log's released id 2 and a new message with id 1: each waits for its id to be free.
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 2});
  FeedPacket(bridge->local(), LocalQos2(1));
  EXPECT_EQ(Output(bridge->remote()), Packets{});
  Suback(bridge->remote(), 1);
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBLISH 1"});
  FeedPacket(bridge->remote(), mqtt::Puback{.packet_id = 2});
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 2"});
}

TEST(BridgeQos2, ALoggedReleaseOfTheSubscribesIdWaitsForTheSuback) {
  BridgeConfig config = Qos2Config();
  config.topics.push_back({.pattern = "c/#",
                           .direction = BridgeDirection::kIn,
                           .qos = 1,
                           .local_prefix = "",
                           .remote_prefix = ""});
  std::unique_ptr<Bridge> bridge = MakeBridge(config, /*durable=*/true);
  OpenClient(bridge->remote(), true);  // SUBSCRIBE id 1, unanswered
  OpenClient(bridge->local(), true);
  Output(bridge->remote());
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 1});
  EXPECT_EQ(Output(bridge->remote()), Packets{});
  Suback(bridge->remote(), 1);
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 1"});
}

TEST(BridgeQos2, ATooLargeMessagesIdOutlivesANewRemoteSession) {
  BridgeConfig config = Qos2Config();
  config.max_packet_size = 64;
  std::unique_ptr<Bridge> bridge = MakeBridge(config, /*durable=*/true);
  OpenClient(bridge->local(), false);
  OpenClient(bridge->remote(), false);
  Output(bridge->local());
  FeedPacket(bridge->local(), mqtt::Publish{.topic = "q/a",
                                            .payload = std::string(100, 'x'),
                                            .qos = QoS::k2,
                                            .packet_id = 6});
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBREC 6"});
  bridge->remote().OnTransportClosed(0, "lost");
  OpenClient(bridge->remote(), /*session_present=*/false);
  EXPECT_EQ(bridge->remote().stats().qos2_abandoned, 0u);
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 6});
  EXPECT_EQ(Output(bridge->remote()), Packets{});
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBCOMP 6"});
  EXPECT_EQ(bridge->remote().stats().qos2_recovered, 0u);
}

TEST(BridgeQos2, ANewRemoteSessionEndsIdsWithoutAMessageAndCountsThem) {
  std::unique_ptr<Bridge> bridge = MakeBridge(Qos2Config(), /*durable=*/true);
  OpenClient(bridge->local(), true);
  Output(bridge->local());
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 7});
  OpenClient(bridge->remote(), /*session_present=*/false);  // the remote forgot the session
  EXPECT_EQ(Output(bridge->remote()), Packets{});
  EXPECT_EQ(bridge->remote().stats().qos2_abandoned, 1u);
  EXPECT_EQ(bridge->remote().inflight(), 0u);
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBCOMP 7"});
}

TEST(BridgeQos2, ANewLocalSessionReleasesWhatTheRemotePubreced) {
  std::unique_ptr<Bridge> bridge = MakeBridge(Qos2Config(), /*durable=*/true);
  OpenClient(bridge->local(), false);
  OpenClient(bridge->remote(), false);
  Suback(bridge->remote(), 1);
  FeedPacket(bridge->local(), LocalQos2(5));
  FeedPacket(bridge->remote(), mqtt::Pubrec{.packet_id = 5});
  Output(bridge->remote());
  bridge->local().OnTransportClosed(0, "lost");
  OpenClient(bridge->local(), /*session_present=*/false);  // this broker forgot id 5
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 5"});  // owed to the remote
  FeedPacket(bridge->remote(), mqtt::Pubcomp{.packet_id = 5});
  EXPECT_EQ(Output(bridge->local()), Packets{});  // nothing to complete in the new session
  EXPECT_EQ(bridge->remote().inflight(), 0u);
}

TEST(BridgeQos2, RecoveredIdsCountAgainstTheWindow) {
  BridgeConfig config = Qos2Config();
  config.max_inflight = 2;
  std::unique_ptr<Bridge> bridge = MakeBridge(config, /*durable=*/true);
  OpenClient(bridge->local(), true);
  OpenClient(bridge->remote(), true);
  Suback(bridge->remote(), 1);
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 20});
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 21});
  FeedPacket(bridge->local(), LocalQos2(22));
  EXPECT_EQ(Output(bridge->remote()), (Packets{"PUBREL 20", "PUBREL 21"}));  // window full
  FeedPacket(bridge->remote(), mqtt::Pubcomp{.packet_id = 20});
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBLISH 22"});
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBCOMP 20"});
}

TEST(BridgeQos2, ATooLargeMessageIsAcknowledgedAndCompletedWithoutAPubrel) {
  BridgeConfig config = Qos2Config();
  config.max_packet_size = 64;
  std::unique_ptr<Bridge> bridge = MakeBridge(config, /*durable=*/true);
  OpenClient(bridge->local(), false);
  OpenClient(bridge->remote(), false);
  Suback(bridge->remote(), 1);
  Output(bridge->local());
  Output(bridge->remote());
  FeedPacket(bridge->local(), mqtt::Publish{.topic = "q/a",
                                            .payload = std::string(100, 'x'),
                                            .qos = QoS::k2,
                                            .packet_id = 6});
  EXPECT_EQ(bridge->remote().stats().dropped, 1u);
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBREC 6"});
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 6});
  EXPECT_EQ(Output(bridge->remote()), Packets{});  // the remote never had it
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBCOMP 6"});
  EXPECT_EQ(bridge->remote().inflight(), 0u);
  EXPECT_EQ(bridge->remote().stats().qos2_recovered, 0u);
}

TEST(BridgeQos2, WithoutPersistenceIdsAreTheBridgesAndPubrelFollowsPubrec) {
  std::unique_ptr<Bridge> bridge = MakeBridge(Qos2Config(), /*durable=*/false);
  EXPECT_FALSE(bridge->remote().options().relay_qos2);
  OpenClient(bridge->local(), false);
  OpenClient(bridge->remote(), false);
  Suback(bridge->remote(), 1);
  Output(bridge->local());
  FeedPacket(bridge->local(), LocalQos2(40));
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBREC 40"});  // at once, as before
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBLISH 1"});  // the bridge's own id
  FeedPacket(bridge->remote(), mqtt::Pubrec{.packet_id = 1});
  EXPECT_EQ(Output(bridge->remote()), Packets{"PUBREL 1"});
  FeedPacket(bridge->local(), mqtt::Pubrel{.packet_id = 40});
  EXPECT_EQ(Output(bridge->local()), Packets{"PUBCOMP 40"});
}

}  // namespace qos2_test
}  // namespace ringmq::bridge
