// bridgeq2 lane: the QoS 2 relay steps of a durable bridge (bridge/bridge_client.h relay_qos2,
// hold_pubcomp) allocate nothing once warm: the remote's PUBREC -> PUBREC here, this broker's
// PUBREL -> PUBREL to the remote, the remote's PUBCOMP -> PUBCOMP here. (Queuing a message copies
// it, by design; that is outside the counted steps.) Its own executable: it replaces the global
// operator new (tests/common/counting_new.h).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "../common/counting_new.h"
#include "bridge/bridge.h"
#include "mqtt/codec.h"

namespace ringmq::bridge {
namespace {

std::vector<uint8_t> Bytes(const BridgeClient& client, const mqtt::Packet& packet) {
  std::vector<uint8_t> bytes(mqtt::EncodedSize(packet, client.options().level));
  mqtt::Encode(packet, bytes, client.options().level);
  return bytes;
}

// Longer than a short string's inline buffer: queuing a copy takes a heap block.
constexpr std::string_view kPayload = "a payload longer than any small-string buffer, 64 bytes+";

TEST(BridgeQos2NoAlloc, RelayStepsAllocateNothingOnceWarm) {
  ASSERT_EQ(alloc_counting::AllocationsOfOneNew(), 1u) << "the counting operator new is in";
  BridgeConfig config;
  config.name = "cloud";
  config.addresses = {"127.0.0.1:1883"};
  config.topics = {{.pattern = "q/#",
                    .direction = BridgeDirection::kOut,
                    .qos = 2,
                    .local_prefix = "",
                    .remote_prefix = ""}};
  config.client_id = "edge";
  config.notifications = false;
  absl::StatusOr<std::unique_ptr<Bridge>> made =
      Bridge::Create(config, {.host_name = "h", .durable = true});
  ASSERT_TRUE(made.ok()) << made.status();
  Bridge& bridge = **made;
  BridgeClient& local = bridge.local();
  BridgeClient& remote = bridge.remote();
  for (BridgeClient* client : {&local, &remote}) {
    client->BeginConnect(0);
    client->OnTransportConnected(0);
    client->OnReceived(0, Bytes(*client, mqtt::Connack{}));
  }
  ByteBuffer out;
  out.reserve(4096);
  // One message's whole flow, `count` = whether its relay steps are counted.
  auto flow = [&](uint16_t id, bool count) {
    const std::vector<uint8_t> publish = Bytes(local, mqtt::Publish{.topic = "q/a",
                                                                     .payload = kPayload,
                                                                     .qos = mqtt::QoS::k2,
                                                                     .packet_id = id});
    // Queuing copies the message (a heap block for it): the counter sees the bridge's own.
    const size_t queued = alloc_counting::AllocationsDuring([&] { local.OnReceived(0, publish); });
    if (count) {
      EXPECT_GT(queued, 0u);
    }
    out.clear();
    remote.TakeOutput(0, out);
    local.TakeOutput(0, out);
    const std::vector<uint8_t> pubrec = Bytes(remote, mqtt::Pubrec{.packet_id = id});
    const std::vector<uint8_t> pubrel = Bytes(local, mqtt::Pubrel{.packet_id = id});
    const std::vector<uint8_t> pubcomp = Bytes(remote, mqtt::Pubcomp{.packet_id = id});
    const size_t allocations = alloc_counting::AllocationsDuring([&] {
      remote.OnReceived(0, pubrec);
      out.clear();
      local.TakeOutput(0, out);  // PUBREC here
      local.OnReceived(0, pubrel);
      out.clear();
      remote.TakeOutput(0, out);  // PUBREL there
      remote.OnReceived(0, pubcomp);
      out.clear();
      local.TakeOutput(0, out);  // PUBCOMP here
    });
    if (count) {
      EXPECT_EQ(allocations, 0u) << "id " << id;
    }
    EXPECT_EQ(remote.inflight(), 0u);
    EXPECT_EQ(local.held_pubrels(), 0u);
  };
  flow(1, /*count=*/false);  // warm: buffers and id sets reach their capacity
  flow(2, /*count=*/false);
  for (uint16_t id = 3; id < 100; ++id) flow(id, /*count=*/true);
}

}  // namespace
}  // namespace ringmq::bridge
