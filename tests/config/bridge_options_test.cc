#include "config/bridge_options.h"

#include <gtest/gtest.h>

#include <string>

#include "config/options.h"

namespace ringmq::config {
namespace {

std::string BridgeErrorOf(const absl::Status& status) {
  return status.ok() ? "ok" : std::string(status.message());
}

TEST(BridgeOptionsTest, TablesWithBothTopicFormsAndEveryKey) {
  Config config;
  const absl::Status applied = ApplyToml(R"(
[[bridge]]
name = "cloud"
addresses = ["broker.example:8883", "10.0.0.2"]
round_robin = true
topics = ['sensors/# out 1 "" site1/', {pattern = "cmd/#", direction = "in", qos = 2, remote_prefix = "site1/"}]
protocol_version = "mqttv50"
clean_session = true
keepalive = 30
client_id = "edge1"
username = "u"
password = "p"
try_private = false
local_client_id = "bridge-local"
local_username = "lu"
local_password = "lp"
restart_initial_ms = 100
restart_max_ms = 5000
max_inflight = 7
max_queued_messages = 9
max_queued_bytes = 4096
max_packet_size = 2048

[[bridge]]
name = "second"
address = "127.0.0.1:1884"
topics = ["a/#"]
)",
                                         "b.toml", config);
  ASSERT_TRUE(applied.ok()) << applied;
  ASSERT_EQ(config.bridges.size(), 2u);
  const BridgeConfig& cloud = config.bridges[0];
  EXPECT_EQ(cloud.name, "cloud");
  EXPECT_EQ(cloud.addresses, (std::vector<std::string>{"broker.example:8883", "10.0.0.2"}));
  EXPECT_TRUE(cloud.round_robin);
  ASSERT_EQ(cloud.topics.size(), 2u);
  EXPECT_EQ(cloud.topics[0], (BridgeTopicConfig{.pattern = "sensors/#",
                                                .direction = BridgeDirection::kOut,
                                                .qos = 1,
                                                .local_prefix = "",
                                                .remote_prefix = "site1/"}));
  EXPECT_EQ(cloud.topics[1], (BridgeTopicConfig{.pattern = "cmd/#",
                                                .direction = BridgeDirection::kIn,
                                                .qos = 2,
                                                .local_prefix = "",
                                                .remote_prefix = "site1/"}));
  EXPECT_EQ(cloud.protocol_version, 5);
  EXPECT_TRUE(cloud.clean_session);
  EXPECT_EQ(cloud.keepalive_s, 30);
  EXPECT_EQ(cloud.client_id, "edge1");
  EXPECT_EQ(cloud.username, "u");
  EXPECT_EQ(cloud.password, "p");
  EXPECT_FALSE(cloud.try_private);
  EXPECT_EQ(cloud.local_client_id, "bridge-local");
  EXPECT_EQ(cloud.local_username, "lu");
  EXPECT_EQ(cloud.local_password, "lp");
  EXPECT_EQ(cloud.restart_initial_ms, 100u);
  EXPECT_EQ(cloud.restart_max_ms, 5000u);
  EXPECT_EQ(cloud.max_inflight, 7u);
  EXPECT_EQ(cloud.max_queued_messages, 9u);
  EXPECT_EQ(cloud.max_queued_bytes, 4096u);
  EXPECT_EQ(cloud.max_packet_size, 2048u);
  const BridgeConfig& second = config.bridges[1];
  EXPECT_EQ(second.addresses, std::vector<std::string>{"127.0.0.1:1884"});
  EXPECT_FALSE(second.round_robin);
  EXPECT_EQ(second.topics[0].direction, BridgeDirection::kOut);  // Mosquitto's defaults
  EXPECT_EQ(second.topics[0].qos, 0);
  EXPECT_FALSE(second.clean_session);
  EXPECT_TRUE(second.try_private);
}

TEST(BridgeOptionsTest, ErrorsNameFileLineAndKey) {
  Config config;
  EXPECT_EQ(BridgeErrorOf(ApplyToml("bridge = 1\n", "e.toml", config)),
            "e.toml:1: bridge: expected [[bridge]] tables (a TOML array of tables)");
  EXPECT_EQ(BridgeErrorOf(ApplyToml("[[bridge]]\nname = \"a\"\nport = 1\n", "e.toml", config)),
            "e.toml:3: unknown key \"port\" in [[bridge]]");
  EXPECT_EQ(
      BridgeErrorOf(ApplyToml("[[bridge]]\nname = \"a\"\nkeepalive = -1\n", "e.toml", config)),
      "e.toml:3: bridge.keepalive: expected an integer from 0 to 65535");
  EXPECT_EQ(BridgeErrorOf(
                ApplyToml("[[bridge]]\nname = \"a\"\ntopics = [\"x out 3\"]\n", "e.toml", config)),
            "e.toml:3: bridge.topics: topics: \"x out 3\": the QoS is 0, 1 or 2");
  EXPECT_EQ(
      BridgeErrorOf(ApplyToml("[[bridge]]\nname = \"a\"\ntopics = [\"x/#\"]\n", "e.toml", config)),
      "e.toml:1: [[bridge]] a: addresses: at least one host:port");
  EXPECT_EQ(BridgeErrorOf(
                ApplyToml("[[bridge]]\nname = \"a\"\naddresses = [\"h\"]\ntopics = [\"x/#/y\"]\n",
                          "e.toml", config)),
            "e.toml:1: [[bridge]] a: topics[0]: \"x/#/y\" is not a valid topic filter");
  const std::string twice =
      "[[bridge]]\nname = \"a\"\naddresses = [\"h\"]\ntopics = [\"x\"]\n"
      "[[bridge]]\nname = \"a\"\naddresses = [\"h\"]\ntopics = [\"y\"]\n";
  EXPECT_EQ(BridgeErrorOf(ApplyToml(twice, "e.toml", config)),
            "e.toml:5: [[bridge]] a: the name is used twice");
  EXPECT_TRUE(config.bridges.empty());  // nothing applied from a file with errors
}

TEST(BridgeOptionsTest, TlsKeys) {
  Config config;
  const absl::Status applied = ApplyToml(
      "[[bridge]]\nname = \"t\"\naddresses = [\"h:8883\"]\ntopics = [\"x\"]\n"
      "cafile = \"/ca.pem\"\ncertfile = \"/c.pem\"\nkeyfile = \"/k.pem\"\ninsecure = true\n",
      "t.toml", config);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(config.bridges[0].cafile, "/ca.pem");
  EXPECT_EQ(config.bridges[0].certfile, "/c.pem");
  EXPECT_EQ(config.bridges[0].keyfile, "/k.pem");
  EXPECT_TRUE(config.bridges[0].insecure);
  Config parsed;
  ASSERT_TRUE(ApplyToml(EffectiveToml(config), "effective", parsed).ok());
  EXPECT_EQ(parsed.bridges, config.bridges);
  EXPECT_EQ(BridgeErrorOf(ApplyToml("[[bridge]]\nname = \"t\"\naddresses = [\"h\"]\n"
                                    "topics = [\"x\"]\ncafile = \"/ca\"\ncertfile = \"/c\"\n",
                                    "t.toml", config)),
            "t.toml:1: [[bridge]] t: certfile and keyfile go together (a client certificate)");
  EXPECT_EQ(BridgeErrorOf(ApplyToml("[[bridge]]\nname = \"t\"\naddresses = [\"h\"]\n"
                                    "topics = [\"x\"]\ninsecure = true\n",
                                    "t.toml", config)),
            "t.toml:1: [[bridge]] t: certfile, keyfile and insecure need cafile (TLS is on with "
            "it)");
}

TEST(BridgeOptionsTest, AtMostKMaxBridges) {
  std::string text;
  for (size_t i = 0; i <= kMaxBridges; ++i) {
    text += "[[bridge]]\nname = \"b" + std::to_string(i) +
            "\"\naddresses = [\"h\"]\ntopics = [\"x\"]\n";
  }
  Config config;
  EXPECT_NE(BridgeErrorOf(ApplyToml(text, "m.toml", config)).find("at most 64 bridges"),
            std::string::npos);
}

TEST(BridgeOptionsTest, MosquittoTopicSyntax) {
  const absl::StatusOr<BridgeTopicConfig> full =
      ParseMosquittoTopic("  a/#   both 2  local/  remote/ ");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->pattern, "a/#");
  EXPECT_EQ(full->direction, BridgeDirection::kBoth);
  EXPECT_EQ(full->qos, 2);
  EXPECT_EQ(full->local_prefix, "local/");
  EXPECT_EQ(full->remote_prefix, "remote/");
  const absl::StatusOr<BridgeTopicConfig> empty = ParseMosquittoTopic("\"\" in 0 l/x r/y");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->pattern, "");
  EXPECT_EQ(empty->direction, BridgeDirection::kIn);
  EXPECT_FALSE(ParseMosquittoTopic("").ok());
  EXPECT_FALSE(ParseMosquittoTopic("a sideways").ok());
  EXPECT_FALSE(ParseMosquittoTopic("a in 0 l r extra").ok());
}

TEST(BridgeOptionsTest, CheckConfigRedactsPasswordsAndRoundTripsTheRest) {
  Config config;
  BridgeConfig bridge;
  bridge.name = "x";
  bridge.addresses = {"h:1"};
  bridge.topics = {{.pattern = "a \"q\"/#",
                    .direction = BridgeDirection::kBoth,
                    .qos = 1,
                    .local_prefix = "l/",
                    .remote_prefix = "r/"}};
  bridge.client_id = "c";
  config.bridges.push_back(bridge);
  config.bridges[0].username = "user";
  Config parsed;
  ASSERT_TRUE(ApplyToml(EffectiveToml(config), "effective", parsed).ok()) << EffectiveToml(config);
  EXPECT_EQ(parsed.bridges, config.bridges);
  config.bridges[0].password = "hunter2";
  config.bridges[0].local_password = "hunter3";
  const std::string shown = EffectiveToml(config);
  EXPECT_EQ(shown.find("hunter"), std::string::npos) << shown;
  EXPECT_NE(shown.find("password = \"REDACTED\""), std::string::npos);
  EXPECT_NE(shown.find("local_password = \"REDACTED\""), std::string::npos);
}

// bridge lane: Mosquitto's notifications and start types (mosquitto.conf(5)).
TEST(BridgeOptionsTest, NotificationsAndStartTypeKeysWithMosquittoDefaults) {
  Config config;
  ASSERT_TRUE(ApplyToml(R"(
[[bridge]]
name = "a"
address = "h"
topics = ["x/#"]

[[bridge]]
name = "b"
address = "h"
topics = ["x/#"]
notifications = false
notifications_local_only = true
notification_topic = "bridges/b/state"
start_type = "lazy"
threshold = 5
idle_timeout = 30
)",
                        "n.toml", config)
                  .ok());
  const BridgeConfig& a = config.bridges.at(0);
  EXPECT_TRUE(a.notifications);  // Mosquitto's default
  EXPECT_FALSE(a.notifications_local_only);
  EXPECT_EQ(a.start_type, BridgeStartType::kAutomatic);
  EXPECT_EQ(a.threshold, 10u);
  EXPECT_EQ(a.idle_timeout_s, 60u);
  const BridgeConfig& b = config.bridges.at(1);
  EXPECT_FALSE(b.notifications);
  EXPECT_TRUE(b.notifications_local_only);
  EXPECT_EQ(b.notification_topic, "bridges/b/state");
  EXPECT_EQ(b.start_type, BridgeStartType::kLazy);
  EXPECT_EQ(b.threshold, 5u);
  EXPECT_EQ(b.idle_timeout_s, 30u);
  Config parsed;  // --check-config prints them back
  ASSERT_TRUE(ApplyToml(EffectiveToml(config), "effective", parsed).ok());
  EXPECT_EQ(parsed.bridges, config.bridges);
  Config bad;
  EXPECT_NE(BridgeErrorOf(ApplyToml("[[bridge]]\nname = \"c\"\naddress = \"h\"\ntopics = [\"x\"]\n"
                                    "start_type = \"manual\"\n",
                                    "m.toml", bad))
                .find("start_type"),
            std::string::npos);
}

}  // namespace
}  // namespace ringmq::config
