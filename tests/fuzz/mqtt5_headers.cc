// libFuzzer target for the MQTT 5.0 properties carried as NATS headers
// (src/cluster/mqtt5_headers.h): what a NATS server delivers is untrusted (any NATS application
// may publish on a carried subject).
//
// Input: a NATS header block ("NATS/1.0\r\n" is put in front when the input does not start with
// it, so that most inputs reach the field parser). Checks:
//   - decoding never crashes, and builds a block mqtt::ValidateProperties accepts for a PUBLISH
//     (so Message::Create and the 5.0 delivery encoder may trust it);
//   - the block is bounded: at most the input's size plus 5 bytes per line;
//   - writing that block back as headers (AppendMqtt5Headers, with the expiry read) gives a
//     header block AppendHeaderBlock accepts (no CR/LF in a value, token names), and reading it
//     again gives the very same block and expiry with nothing dropped (a fixed point).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/mqtt5_headers.h"
#include "cluster/nats_protocol.h"
#include "mqtt/properties.h"
#include "mqtt/reason_code.h"

#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "mqtt5 headers invariant failed: %s (line %d)\n", #condition,     \
                   __LINE__);                                                                 \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmq;  // NOLINT: a fuzz entry point
  std::string input(reinterpret_cast<const char*>(data), size);
  if (!std::string_view(input).starts_with("NATS/1.0")) input.insert(0, "NATS/1.0\r\n");
  std::vector<uint8_t> block;
  cluster::Mqtt5HeaderDecoder decoder(block);
  cluster::DecodeMqtt5Headers(input, decoder);
  const uint16_t publish = mqtt::PacketBit(mqtt::PacketType::kPublish);
  FUZZ_CHECK(mqtt::ValidateProperties(decoder.properties(), publish) == mqtt::Violation::kNone);
  size_t lines = 1;
  for (const char c : input) lines += c == '\n' ? 1 : 0;
  FUZZ_CHECK(decoder.properties().size() <= input.size() + 5 * lines);

  std::vector<cluster::nats::HeaderField> fields;
  std::string text;
  const cluster::Mqtt5EncodeResult result = cluster::AppendMqtt5Headers(
      decoder.properties(), decoder.expiry_left_ms(), SIZE_MAX, fields, text);
  FUZZ_CHECK(result != cluster::Mqtt5EncodeResult::kTooManyFields);
  if (result == cluster::Mqtt5EncodeResult::kNone) {
    FUZZ_CHECK(decoder.properties().empty() && !decoder.expiry_left_ms());
    return 0;
  }
  std::string wire;
  FUZZ_CHECK(cluster::nats::AppendHeaderBlock(fields, wire).ok() ||
             fields.size() > cluster::nats::kHeaderFieldsMax);
  if (wire.empty()) return 0;  // over the field bound: the node would not forward it
  std::vector<uint8_t> again;
  cluster::Mqtt5HeaderDecoder second(again);
  cluster::DecodeMqtt5Headers(wire, second);
  FUZZ_CHECK(second.dropped() == 0);
  FUZZ_CHECK(second.expiry_left_ms() == decoder.expiry_left_ms());
  FUZZ_CHECK(std::string_view(reinterpret_cast<const char*>(again.data()), again.size()) ==
             std::string_view(reinterpret_cast<const char*>(block.data()), block.size()));
  return 0;
}
