// The QoS packets a bridge client wrote, for the bridge tests (bridge_test.cc,
// bridge_qos2_test.cc): its output taken and decoded.
//
// Thread safety: none (test code on one thread).
#ifndef RINGMQ_TESTS_BRIDGE_BRIDGE_OUTPUT_H_
#define RINGMQ_TESTS_BRIDGE_BRIDGE_OUTPUT_H_

#include <span>
#include <string>
#include <variant>
#include <vector>

#include "bridge/bridge_client.h"
#include "common/byte_buffer.h"
#include "mqtt/codec.h"

namespace ringmq::bridge::output_test {

// The client's output as "PUBLISH 12", "PUBLISH 12 dup", "PUBACK 12", "PUBREC 12", "PUBREL 12",
// "PUBCOMP 12" (CONNECT, SUBSCRIBE and the rest are left out).
inline std::vector<std::string> QosPackets(BridgeClient& client) {
  ByteBuffer out;
  client.TakeOutput(0, out);
  std::vector<std::string> packets;
  std::span<const uint8_t> rest(out);
  while (!rest.empty()) {
    const mqtt::Frame frame = mqtt::PeekFrame(rest, 1 << 20, client.options().level);
    if (frame.status != mqtt::FrameStatus::kComplete) break;
    const mqtt::Packet packet =
        mqtt::Decode(frame.header,
                     rest.subspan(frame.header.header_length, frame.header.remaining_length),
                     client.options().level)
            .value();
    if (const auto* publish = std::get_if<mqtt::Publish>(&packet)) {
      packets.push_back("PUBLISH " + std::to_string(publish->packet_id) +
                        (publish->dup ? " dup" : ""));
    } else if (const auto* p = std::get_if<mqtt::Pubrel>(&packet)) {
      packets.push_back("PUBREL " + std::to_string(p->packet_id));
    } else if (const auto* p = std::get_if<mqtt::Pubrec>(&packet)) {
      packets.push_back("PUBREC " + std::to_string(p->packet_id));
    } else if (const auto* p = std::get_if<mqtt::Pubcomp>(&packet)) {
      packets.push_back("PUBCOMP " + std::to_string(p->packet_id));
    } else if (const auto* p = std::get_if<mqtt::Puback>(&packet)) {
      packets.push_back("PUBACK " + std::to_string(p->packet_id));
    }
    rest = rest.subspan(frame.header.total_length());
  }
  return packets;
}

}  // namespace ringmq::bridge::output_test

#endif  // RINGMQ_TESTS_BRIDGE_BRIDGE_OUTPUT_H_
