// libFuzzer target for the bridge's MQTT client (src/bridge/bridge_client.h) fed server bytes.
//
// Input: two control bytes, then what the server sends after the client's CONNECT. Byte 0 picks
// the split point (as a fraction of the stream), byte 1 the options (bit 0: MQTT 5.0, bit 1:
// persistent session, bit 2: a 64-byte packet bound, bits 3-4: the in-flight window 1..4).
// Before the bytes, the client has three messages queued (QoS 0, 1, 2), so acknowledgements
// can meet messages in flight. Properties that must hold for any bytes:
//  - OnReceived never crashes or asserts, whatever the split;
//  - the sink's events, the state, the counters and the output are the same for one feed and
//    for a feed in two pieces at the split point (and, up to 2 KiB, one byte at a time);
//  - bounds hold: in flight <= the window, queued <= the queue bound, nothing delivered to the
//    sink is longer than the packet bound;
//  - after the transport is closed and opened again, the client sends a CONNECT again.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bridge/bridge_client.h"

namespace ringmq::bridge {
namespace {

#define FUZZ_CHECK(condition)                                                                \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "bridge client invariant failed: %s (line %d)\n", #condition,     \
                   __LINE__);                                                                \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

struct Events : ClientSink {
  void OnConnected(bool session_present) override {
    log += session_present ? "C1;" : "C0;";
  }
  void OnMessage(const mqtt::Publish& publish) override {
    FUZZ_CHECK(publish.topic.size() + publish.payload.size() <= max_packet_size);
    log += "M" + std::to_string(publish.topic.size()) + "/" +
           std::to_string(publish.payload.size()) + "/" +
           std::to_string(static_cast<int>(publish.qos)) + ";";
  }
  void OnDisconnected(std::string_view reason) override {
    log += "D:" + std::string(reason) + ";";
  }
  std::string log;
  uint32_t max_packet_size = 0;
};

struct Run {
  std::string events;
  ClientState state;
  ClientStats stats;
  std::string output;
  size_t inflight;
  size_t queued;
};

Run Feed(uint8_t options_byte, std::span<const std::span<const uint8_t>> pieces) {
  ClientOptions options;
  options.client_id = "fuzz";
  options.level = (options_byte & 1) != 0 ? mqtt::ProtocolLevel::kMqtt5
                                          : mqtt::ProtocolLevel::kMqtt311;
  options.clean_session = (options_byte & 2) == 0;
  options.max_packet_size = (options_byte & 4) != 0 ? 64 : 1 << 16;
  options.max_inflight = 1 + ((options_byte >> 3) & 3);
  options.max_queued_messages = 8;
  options.subscriptions = {{.filter = "in/#", .qos = mqtt::QoS::k2}};
  Events events;
  events.max_packet_size = options.max_packet_size;
  std::optional<BridgeClient> client;
  client.emplace(std::move(*BridgeClient::Create(options, &events)));
  client->Publish("out/0", "zero", mqtt::QoS::k0, false);
  client->Publish("out/1", "one", mqtt::QoS::k1, false);
  client->Publish("out/2", "two", mqtt::QoS::k2, true);
  client->BeginConnect(0);
  client->OnTransportConnected(0);
  ByteBuffer output;
  client->TakeOutput(0, output);
  for (const std::span<const uint8_t> piece : pieces) {
    client->OnReceived(1, piece);
    FUZZ_CHECK(client->inflight() <= options.max_inflight);
    FUZZ_CHECK(client->queued_messages() <= options.max_queued_messages);
  }
  // Taken once at the end: output the owner took before a failure was sent, while what was
  // left is dropped with the connection, so taking it between pieces would make runs differ.
  client->TakeOutput(1, output);
  client->OnTimer(100'000);
  Run run{.events = events.log,
          .state = client->state(),
          .stats = client->stats(),
          .output = std::string(output.begin(), output.end()),
          .inflight = client->inflight(),
          .queued = client->queued_messages()};
  // Whatever happened, a new connection starts with a CONNECT.
  client->OnTransportClosed(200'000, "fuzz");
  FUZZ_CHECK(client->state() == ClientState::kDisconnected);
  client->BeginConnect(client->connect_at_ms());
  client->OnTransportConnected(client->connect_at_ms());
  ByteBuffer again;
  client->TakeOutput(client->connect_at_ms(), again);
  FUZZ_CHECK(!again.empty() && (again[0] >> 4) == 1);
  return run;
}

bool Same(const Run& a, const Run& b) {
  return a.events == b.events && a.state == b.state &&
         a.stats.messages_received == b.stats.messages_received &&
         a.stats.messages_sent == b.stats.messages_sent && a.output == b.output &&
         a.inflight == b.inflight && a.queued == b.queued;
}

}  // namespace
}  // namespace ringmq::bridge

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ringmq::bridge::Feed;
  using ringmq::bridge::Run;
  using ringmq::bridge::Same;
  if (size < 2) return 0;
  const uint8_t split_byte = data[0];
  const uint8_t options = data[1];
  const std::span<const uint8_t> bytes(data + 2, size - 2);
  const size_t split = bytes.size() * split_byte / 255;
  const std::span<const uint8_t> whole[] = {bytes};
  const Run one = Feed(options, whole);
  const std::span<const uint8_t> two[] = {bytes.first(split), bytes.subspan(split)};
  FUZZ_CHECK(Same(one, Feed(options, two)));
  if (bytes.size() <= 2048) {
    std::vector<std::span<const uint8_t>> singles;
    for (size_t i = 0; i < bytes.size(); ++i) singles.push_back(bytes.subspan(i, 1));
    FUZZ_CHECK(Same(one, Feed(options, singles)));
  }
  return 0;
}
