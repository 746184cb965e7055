#include "listener/listener.h"

#include <gtest/gtest.h>

#include <vector>

#include "ringmq/config.h"

namespace ringmq::listener {
namespace {

ListenerConfig OnPort(uint16_t port) {
  ListenerConfig listener;
  listener.port = port;
  return listener;
}

TEST(EffectiveListenersTest, DefaultListenerFirstThenTheTables) {
  Config config;
  config.bind = "::1";
  config.port = 1884;
  config.listeners = {OnPort(2000), OnPort(2001)};
  const std::vector<ListenerConfig> listeners = EffectiveListeners(config);
  ASSERT_EQ(listeners.size(), 3u);
  EXPECT_EQ(listeners[0].bind, "::1");
  EXPECT_EQ(listeners[0].port, 1884);
  EXPECT_EQ(listeners[0].protocol, ListenerProtocol::kMqtt);
  EXPECT_FALSE(listeners[0].tls());
  EXPECT_EQ(ListenerName(listeners[0]), "mqtt:1884");
  EXPECT_EQ(listeners[1], config.listeners[0]);
  EXPECT_EQ(listeners[2], config.listeners[1]);
}

TEST(EffectiveListenersTest, PortZeroLeavesOutTheDefaultListener) {
  Config config;
  config.port = 0;
  config.listeners = {OnPort(2000), OnPort(2001)};
  EXPECT_EQ(EffectiveListeners(config), config.listeners);
}

TEST(EffectiveListenersTest, WithoutTablesOnlyTheDefaultListener) {
  const std::vector<ListenerConfig> listeners = EffectiveListeners(Config{});
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(listeners[0].bind, "127.0.0.1");
  EXPECT_EQ(listeners[0].port, 1883);
}

TEST(DescribeTest, NamesAddressProtocolAndWhatDiffersFromTheDefaults) {
  EXPECT_EQ(Describe(OnPort(1883)), "mqtt:1883: 127.0.0.1 port 1883, mqtt");
  ListenerConfig edge = OnPort(8883);
  edge.name = "edge";
  edge.bind = "::";
  edge.protocol = ListenerProtocol::kWebSockets;
  edge.path = "/ws";
  edge.certfile = "c";
  edge.keyfile = "k";
  edge.cafile = "ca";
  edge.require_certificate = true;
  edge.proxy_protocol = ProxyProtocol::kV2;
  edge.max_connections = 10;
  edge.allow_anonymous = false;
  EXPECT_EQ(Describe(edge),
            "edge: :: port 8883, websockets (path /ws), TLS (client certificates required), "
            "PROXY v2, max_connections 10, allow_anonymous false");
}

TEST(MakeTransportFactoryTest, PlainMqttHasNoLayers) {
  const absl::StatusOr<std::unique_ptr<net::TransportFactory>> factory =
      MakeTransportFactory(OnPort(1883), Config{}.max_packet_size);
  ASSERT_TRUE(factory.ok()) << factory.status();
  EXPECT_EQ(*factory, nullptr);
}

}  // namespace
}  // namespace ringmq::listener
