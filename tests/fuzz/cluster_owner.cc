// libFuzzer target for what nodes send each other about client ids (src/cluster/claim.h) and
// sessions (src/cluster/session_state.h): both parsers read bytes from NATS, any node's or any
// NATS application's.
//
// Input: the first byte picks the parser (even: claim, odd: session state); the rest is the
// payload. Checks:
//   - ClaimBatchReader never crashes; a batch it opens gives at least one claim, each within
//     its bounds, and written again with ClaimBatchWriter gives exactly the input (the format
//     has one spelling of each batch); one it refuses gives nothing;
//   - ParseSessionState never crashes and calls nothing for an input it refuses; a state it
//     accepts ("RS2" or "RS3"), written again with SessionStateWriter in its version (no
//     bound), gives exactly the input; every MQTT 5.0 property block it hands out is one
//     mqtt::ValidateProperties accepts for a PUBLISH or a will, and only "RS3" has any.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/claim.h"
#include "cluster/session_state.h"
#include "mqtt/packet_type.h"
#include "mqtt/properties.h"

namespace ringmq::cluster {
namespace {

#define FUZZ_CHECK(condition)                                                               \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "owner invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

void CheckClaim(std::string_view payload) {
  ClaimBatchReader reader;
  Claim claim;
  if (!reader.Open(payload)) {
    FUZZ_CHECK(!reader.Next(claim));
    return;
  }
  FUZZ_CHECK(!reader.node().empty() && reader.node().size() <= kClaimNodeMax);
  std::string again;
  ClaimBatchWriter writer;
  writer.Begin(reader.node(), again);
  while (reader.Next(claim)) {
    FUZZ_CHECK(claim.node == reader.node());
    FUZZ_CHECK(claim.client_id.size() <= kClaimClientIdMax);
    writer.Add(claim.key, claim.clean_start, claim.client_id, again);
  }
  FUZZ_CHECK(!writer.empty());
  FUZZ_CHECK(again == payload);
}

void CheckState(std::string_view bytes) {
  bool called = false;
  std::string again;
  SessionStateWriter writer;
  const bool ok = ParseSessionState(
      bytes,
      [&](uint64_t key, std::string_view client_id) {
        called = true;
        // The version the input has ("RS2" or "RS3"; the parser accepts no other).
        FUZZ_CHECK(writer.Begin(again, SIZE_MAX, key, client_id, bytes[2]));
        return true;
      },
      [&](const StateSubscription& subscription) {
        FUZZ_CHECK(writer.AddSubscription(subscription));
      },
      [&](const StateMessage& message) {
        // A block the parser accepts is one a PUBLISH or a will may carry (session_state.h).
        FUZZ_CHECK(message.properties.empty() || bytes[2] == kSessionStateVersion);
        FUZZ_CHECK(message.expires || message.expiry_left_ms == 0);
        const auto block = std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(message.properties.data()), message.properties.size());
        FUZZ_CHECK(block.empty() ||
                   mqtt::ValidateProperties(block, mqtt::PacketBit(mqtt::PacketType::kPublish)) ==
                       mqtt::Violation::kNone ||
                   mqtt::ValidateProperties(block, mqtt::kWillPropertiesBit) ==
                       mqtt::Violation::kNone);
        FUZZ_CHECK(writer.AddMessage(message));
      },
      [&](uint16_t packet_id) { FUZZ_CHECK(writer.AddInboundQos2(packet_id)); });
  if (!ok) {
    FUZZ_CHECK(!called);
    return;
  }
  FUZZ_CHECK(called);
  writer.End();
  FUZZ_CHECK(again == bytes);
}

}  // namespace
}  // namespace ringmq::cluster

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    ringmq::cluster::CheckClaim(rest);
  } else {
    ringmq::cluster::CheckState(rest);
  }
  return 0;
}
