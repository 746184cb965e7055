// libFuzzer target for the QoS 0 batch decoder (src/cluster/batch.h): batches come from NATS,
// any node's or any NATS application's allowed to publish on ringmq's subjects.
//
// Checks:
//   - ParseBatchHeader and NextBatchRecord never crash or read past the input;
//   - every record accepted keeps the format's rules (QoS 0..2, a valid non-'$' topic name of
//     at most 65535 bytes; properties that mqtt::ValidateProperties accepts for a PUBLISH, of
//     the carried ones only, so AppendBatchProperties keeps them whole) and lies inside the
//     input;
//   - a batch whose records all decode, encoded again with BeginBatch / AppendBatchRecord /
//     SealBatch, gives exactly the input (one spelling per batch, the properties' expiry
//     included).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "cluster/batch.h"
#include "mqtt/properties.h"
#include "mqtt/topic.h"

namespace ringmq::cluster {
namespace {

#define FUZZ_CHECK(condition)                                                               \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "batch invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void Check(std::string_view input) {
  BatchHeader header;
  std::string_view records;
  if (!ParseBatchHeader(input, header, records)) return;
  FUZZ_CHECK(header.node.size() <= kBatchNodeMax && Inside(header.node, input));
  std::string again;
  BeginBatch(again, header.node);
  BatchRecord record;
  for (;;) {
    const BatchNext next = NextBatchRecord(records, record);
    if (next == BatchNext::kInvalid) return;
    if (next == BatchNext::kEnd) break;
    FUZZ_CHECK(record.qos <= 2);
    FUZZ_CHECK(!record.topic.empty() && record.topic[0] != '$' &&
               record.topic.size() <= UINT16_MAX);
    FUZZ_CHECK(mqtt::ValidateTopicName(record.topic) == mqtt::Violation::kNone);
    FUZZ_CHECK(Inside(record.topic, input) && Inside(record.properties, input) &&
               Inside(record.payload, input));
    const std::span<const uint8_t> block(reinterpret_cast<const uint8_t*>(record.properties.data()),
                                         record.properties.size());
    FUZZ_CHECK(mqtt::ValidateProperties(block, mqtt::PacketBit(mqtt::PacketType::kPublish)) ==
               mqtt::Violation::kNone);
    std::string carried;
    AppendBatchProperties(block, carried);
    FUZZ_CHECK(carried == record.properties);  // nothing in it that a node would not carry
    AppendBatchRecord(again, record);
  }
  SealBatch(again, header.sent_at_us);
  FUZZ_CHECK(again == input);
}

}  // namespace
}  // namespace ringmq::cluster

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ringmq::cluster::Check(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
