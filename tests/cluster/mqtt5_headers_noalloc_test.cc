// Proves that carrying MQTT 5.0 properties across nodes (cluster/mqtt5_headers.h) allocates
// nothing per message: never for a message without properties or expiry, on either side, and,
// once the scratch buffers are warm, not for one with them either.
//
// This file replaces the global operator new, so it is its own executable
// (tests/cluster/meson.build), as tests/connect/admission_noalloc_test.cc is.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../common/counting_new.h"
#include "cluster/mqtt5_headers.h"
#include "cluster/nats_protocol.h"
#include "mqtt/properties.h"

using alloc_counting::AllocationCounter;

namespace ringmq::cluster {
namespace {

// What a node sends for a QoS 1 message of a 3.1.1 or property-less 5.0 publisher.
constexpr std::string_view kPlainBlock =
    "NATS/1.0\r\nRingmq-Node: node-a\r\nRingmq-Qos: 1\r\nRingmq-Retain: 0\r\n"
    "Ringmq-Sent-At: 1765100000000000\r\nRingmq-Id: 42\r\n\r\n";

// Guards the check itself: the counting operator new is in this executable.
TEST(Mqtt5HeadersNoAlloc, CounterSeesAllocations) {
  EXPECT_EQ(alloc_counting::AllocationsOfOneNew(), 1u);
}

TEST(Mqtt5HeadersNoAlloc, MessagesWithoutPropertiesAllocateNothing) {
  std::vector<nats::HeaderField> fields;
  fields.reserve(16);
  std::string text;
  std::vector<uint8_t> block;
  AllocationCounter counter;
  for (int i = 0; i < 1000; ++i) {
    fields.clear();
    if (AppendMqtt5Headers({}, std::nullopt, 250, fields, text) != Mqtt5EncodeResult::kNone) {
      ADD_FAILURE();
    }
    Mqtt5HeaderDecoder decoder(block);
    DecodeMqtt5Headers(kPlainBlock, decoder);
    if (!decoder.properties().empty() || decoder.expiry_left_ms()) ADD_FAILURE();
  }
  EXPECT_EQ(counter.Count(), 0u);
}

TEST(Mqtt5HeadersNoAlloc, WarmScratchCarriesPropertiesWithoutAllocating) {
  std::vector<uint8_t> properties(256);
  size_t size = 0;
  const auto put = [&](size_t written) { size += written; };
  std::span<uint8_t> out(properties);
  put(mqtt::EncodeIntegerProperty(mqtt::PropertyId::kPayloadFormatIndicator, 1,
                                  out.subspan(size)));
  put(mqtt::EncodeStringProperty(mqtt::PropertyId::kContentType, "text/plain", out.subspan(size)));
  put(mqtt::EncodeStringProperty(mqtt::PropertyId::kCorrelationData, "\x01\x02",
                                 out.subspan(size)));
  put(mqtt::EncodeUserProperty("k", "v", out.subspan(size)));
  put(mqtt::EncodeUserProperty("line", "a\r\nb", out.subspan(size)));
  properties.resize(size);
  std::vector<nats::HeaderField> fields;
  fields.reserve(16);
  std::string text;
  std::string wire;
  std::vector<uint8_t> block;
  // Warm-up: the scratch buffers reach their size.
  for (int round = 0; round < 2; ++round) {
    AllocationCounter counter;
    for (int i = 0; i < 1000; ++i) {
      fields.clear();
      AppendMqtt5Headers(properties, 30'000, 250, fields, text);
      wire.clear();
      if (!nats::AppendHeaderBlock(fields, wire).ok()) ADD_FAILURE();
      Mqtt5HeaderDecoder decoder(block);
      DecodeMqtt5Headers(wire, decoder);
      if (decoder.properties().size() != properties.size()) ADD_FAILURE();
    }
    const size_t counted = counter.Count();
    if (round == 1) {
      EXPECT_EQ(counted, 0u);
    }
  }
}

}  // namespace
}  // namespace ringmq::cluster
