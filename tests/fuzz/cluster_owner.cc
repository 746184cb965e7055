// libFuzzer target for what nodes send each other about client ids (src/cluster/claim.h) and
// sessions (src/cluster/session_state.h): both parsers read bytes from NATS, any node's or any
// NATS application's.
//
// Input: the first byte picks the parser (even: claim, odd: session state); the rest is the
// payload. Checks:
//   - ParseClaim never crashes; a claim it accepts encodes back to exactly the input
//     (the format has one spelling of each claim) and keeps its bounds;
//   - ParseSessionState never crashes and calls nothing for an input it refuses; a state it
//     accepts, written again with SessionStateWriter (no bound), gives exactly the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/claim.h"
#include "cluster/session_state.h"

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
  const std::optional<Claim> claim = ParseClaim(payload);
  if (!claim) return;
  FUZZ_CHECK(!claim->node.empty() && claim->node.size() <= kClaimNodeMax);
  FUZZ_CHECK(claim->client_id.size() <= kClaimClientIdMax);
  std::string again;
  EncodeClaim(*claim, again);
  // Leading zeros of the key are the one other spelling: "1 01 n c\n" is key 1.
  const std::optional<Claim> reparsed = ParseClaim(again);
  FUZZ_CHECK(reparsed.has_value() && reparsed->key == claim->key && reparsed->node == claim->node &&
             reparsed->clean_start == claim->clean_start &&
             reparsed->client_id == claim->client_id);
  if (payload.size() > 2 && payload[2] != '0') FUZZ_CHECK(again == payload);
}

void CheckState(std::string_view bytes) {
  bool called = false;
  std::string again;
  SessionStateWriter writer;
  const bool ok = ParseSessionState(
      bytes,
      [&](uint64_t key, std::string_view client_id) {
        called = true;
        FUZZ_CHECK(writer.Begin(again, SIZE_MAX, key, client_id));
        return true;
      },
      [&](const StateSubscription& subscription) {
        FUZZ_CHECK(writer.AddSubscription(subscription));
      },
      [&](const StateMessage& message) { FUZZ_CHECK(writer.AddMessage(message)); },
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
