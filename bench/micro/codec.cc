// Micro-benchmarks of the MQTT codec (src/mqtt/codec.h, src/mqtt/topic.h).
//
// PeekFrame and Decode run for every packet a broker receives, EncodePublishHeader for every
// delivery, and UTF-8/topic validation for every PUBLISH topic, so these are per-message costs.
// Each case has an in-run reference to read it against:
//  - decoding a PUBLISH against copying its bytes (decoding is zero-copy: its cost should not
//    grow with the payload, the copy's does);
//  - EncodePublishHeader against encoding the whole packet;
//  - the word-at-a-time UTF-8 validator against a byte-at-a-time textbook decoder.
//
// Each benchmark repeats and reports the median and the spread (min, p90, max) of the
// repetitions, not a single mean.
#include "mqtt/codec.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/topic.h"
#include "mqtt/violation.h"
#include "statistics.h"

namespace ringmq::mqtt {
namespace {

constexpr int kRepetitions = 9;
constexpr uint32_t kMaxPacketSize = 1 << 20;

void Configure(benchmark::internal::Benchmark* benchmark) {
  bench::ConfigureRepetitions(benchmark, kRepetitions);
}

// The CONNECT mosquitto_pub 2.0 sends for
//   -V mqttv311 -i mosq-full -u alice -P s3cret --will-topic clients/mosq-full/status
//   --will-payload offline --will-qos 1 --will-retain -k 30
constexpr uint8_t kConnectWillCredentials[] = {
    0x10, 0x47, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0xee, 0x00, 0x1e, 0x00, 0x09, 0x6d,
    0x6f, 0x73, 0x71, 0x2d, 0x66, 0x75, 0x6c, 0x6c, 0x00, 0x18, 0x63, 0x6c, 0x69, 0x65, 0x6e,
    0x74, 0x73, 0x2f, 0x6d, 0x6f, 0x73, 0x71, 0x2d, 0x66, 0x75, 0x6c, 0x6c, 0x2f, 0x73, 0x74,
    0x61, 0x74, 0x75, 0x73, 0x00, 0x07, 0x6f, 0x66, 0x66, 0x6c, 0x69, 0x6e, 0x65, 0x00, 0x05,
    0x61, 0x6c, 0x69, 0x63, 0x65, 0x00, 0x06, 0x73, 0x33, 0x63, 0x72, 0x65, 0x74};

// A 64-byte topic of five levels, like the ones fleets of devices publish to.
constexpr std::string_view kTopic64 =
    "factory-07/line-3/station-12/sensors/temperature-probe-042/value";
static_assert(kTopic64.size() == 64);

// The same length with two-, three- and four-byte characters mixed in.
constexpr std::string_view kTopic64Multibyte =
    "f\xC3\xA4"
    "brik-07/\xE4\xB8\xAD\xE6\x96\x87/station-12/\xF0\x9F\x8C\xA1/probe-0042/value/reading-00001";
static_assert(kTopic64Multibyte.size() == 64);

std::vector<uint8_t> PublishBytes(QoS qos, size_t payload_size) {
  const std::string payload(payload_size, 'p');
  const Publish publish{kTopic64, payload, qos,
                        false,    false,   static_cast<uint16_t>(qos == QoS::k0 ? 0 : 4242)};
  std::vector<uint8_t> bytes(EncodedSize(publish));
  Encode(publish, bytes);
  return bytes;
}

// What a connection does with a whole packet in its buffer: frame it, then decode it.
Result<Packet> FrameAndDecode(std::span<const uint8_t> bytes) {
  const Frame frame = PeekFrame(bytes, kMaxPacketSize);
  RINGMQ_ASSERT(frame.status == FrameStatus::kComplete);
  return Decode(frame.header,
                bytes.subspan(frame.header.header_length, frame.header.remaining_length));
}

void BM_DecodeConnectWillCredentials(benchmark::State& state) {
  std::span<const uint8_t> bytes = kConnectWillCredentials;
  RINGMQ_ASSERT(FrameAndDecode(bytes).ok());
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes);
    Result<Packet> packet = FrameAndDecode(bytes);
    benchmark::DoNotOptimize(packet);
  }
}
BENCHMARK(BM_DecodeConnectWillCredentials)->Apply(Configure);

// Args: QoS, payload bytes.
void BM_DecodePublish(benchmark::State& state) {
  const std::vector<uint8_t> storage =
      PublishBytes(static_cast<QoS>(state.range(0)), static_cast<size_t>(state.range(1)));
  std::span<const uint8_t> bytes = storage;
  RINGMQ_ASSERT(FrameAndDecode(bytes).ok());
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes);
    Result<Packet> packet = FrameAndDecode(bytes);
    benchmark::DoNotOptimize(packet);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * storage.size()));
}
BENCHMARK(BM_DecodePublish)
    ->ArgNames({"qos", "payload"})
    ->Args({0, 64})
    ->Args({1, 64})
    ->Args({0, 4096})
    ->Args({1, 4096})
    ->Apply(Configure);

// Reference for BM_DecodePublish: copying the packet once, which a copying decoder would pay.
void BM_CopyPublishReference(benchmark::State& state) {
  const std::vector<uint8_t> storage =
      PublishBytes(static_cast<QoS>(state.range(0)), static_cast<size_t>(state.range(1)));
  std::vector<uint8_t> copy(storage.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(storage.data());
    std::memcpy(copy.data(), storage.data(), storage.size());
    benchmark::DoNotOptimize(copy.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * storage.size()));
}
BENCHMARK(BM_CopyPublishReference)
    ->ArgNames({"qos", "payload"})
    ->Args({0, 64})
    ->Args({1, 4096})
    ->Apply(Configure);

// Args: payload bytes (1, 2 or 3 remaining-length bytes).
void BM_PeekFrame(benchmark::State& state) {
  const std::vector<uint8_t> storage = PublishBytes(QoS::k1, static_cast<size_t>(state.range(0)));
  std::span<const uint8_t> bytes = storage;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes);
    Frame frame = PeekFrame(bytes, kMaxPacketSize);
    benchmark::DoNotOptimize(frame);
  }
}
BENCHMARK(BM_PeekFrame)->ArgName("payload")->Arg(16)->Arg(4096)->Arg(65536)->Apply(Configure);

void BM_EncodePublishHeader(benchmark::State& state) {
  const std::string payload(static_cast<size_t>(state.range(0)), 'p');
  const Publish publish{kTopic64, payload, QoS::k1, false, false, 4242};
  std::array<uint8_t, PublishHeaderMaxSize(kTopic64.size())> out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(&publish);
    size_t written = EncodePublishHeader(publish, out);
    benchmark::DoNotOptimize(written);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_EncodePublishHeader)->ArgName("payload")->Arg(64)->Arg(4096)->Apply(Configure);

// Reference for BM_EncodePublishHeader: the whole packet, payload copy included.
void BM_EncodePublishWholeReference(benchmark::State& state) {
  const std::string payload(static_cast<size_t>(state.range(0)), 'p');
  const Packet packet = Publish{kTopic64, payload, QoS::k1, false, false, 4242};
  std::vector<uint8_t> out(EncodedSize(packet));
  for (auto _ : state) {
    benchmark::DoNotOptimize(&packet);
    size_t written = Encode(packet, out);
    benchmark::DoNotOptimize(written);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_EncodePublishWholeReference)->ArgName("payload")->Arg(64)->Arg(4096)->Apply(Configure);

void BM_ValidateUtf8Topic64(benchmark::State& state) {
  std::string_view topic = kTopic64;
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic);
    Violation violation = ValidateUtf8(topic);
    benchmark::DoNotOptimize(violation);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * topic.size()));
}
BENCHMARK(BM_ValidateUtf8Topic64)->Apply(Configure);

void BM_ValidateUtf8Topic64Multibyte(benchmark::State& state) {
  std::string_view topic = kTopic64Multibyte;
  RINGMQ_ASSERT(ValidateUtf8(topic) == Violation::kNone);
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic);
    Violation violation = ValidateUtf8(topic);
    benchmark::DoNotOptimize(violation);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * topic.size()));
}
BENCHMARK(BM_ValidateUtf8Topic64Multibyte)->Apply(Configure);

// Reference: decode every code point one byte at a time and range-check its value.
Violation NaiveValidateUtf8(std::string_view text) {
  for (size_t at = 0; at < text.size();) {
    const auto lead = static_cast<uint8_t>(text[at]);
    const size_t length = lead < 0x80             ? 1
                          : (lead & 0xE0) == 0xC0 ? 2
                          : (lead & 0xF0) == 0xE0 ? 3
                          : (lead & 0xF8) == 0xF0 ? 4
                                                  : 0;
    if (length == 0 || text.size() - at < length) {
      return Violation::kInvalidUtf8;
    }
    uint32_t code_point = length == 1 ? lead : lead & (0x7F >> length);
    for (size_t i = 1; i < length; ++i) {
      const auto byte = static_cast<uint8_t>(text[at + i]);
      if ((byte & 0xC0) != 0x80) {
        return Violation::kInvalidUtf8;
      }
      code_point = (code_point << 6) | (byte & 0x3F);
    }
    constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kMinimum[length] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return Violation::kInvalidUtf8;
    }
    if (code_point == 0) {
      return Violation::kNullCharacter;
    }
    at += length;
  }
  return Violation::kNone;
}

void BM_ValidateUtf8Topic64NaiveReference(benchmark::State& state) {
  std::string_view topic = kTopic64;
  RINGMQ_ASSERT(NaiveValidateUtf8(topic) == Violation::kNone);
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic);
    Violation violation = NaiveValidateUtf8(topic);
    benchmark::DoNotOptimize(violation);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * topic.size()));
}
BENCHMARK(BM_ValidateUtf8Topic64NaiveReference)->Apply(Configure);

// The full PUBLISH topic check: UTF-8 plus level count plus wildcard scan.
void BM_ValidateTopicName64(benchmark::State& state) {
  std::string_view topic = kTopic64;
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic);
    Violation violation = ValidateTopicName(topic);
    benchmark::DoNotOptimize(violation);
  }
}
BENCHMARK(BM_ValidateTopicName64)->Apply(Configure);

}  // namespace
}  // namespace ringmq::mqtt

BENCHMARK_MAIN();
