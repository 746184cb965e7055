// Micro-benchmarks of MQTT 5.0 properties as NATS headers (src/cluster/mqtt5_headers.h), the
// per-message work a node adds to forward a message (encode) and to receive one (decode).
//
// - BM_HeaderBlockOnly/<0|1>: the reference in the same run, nats::AppendHeaderBlock of the
//   node's own fields (what every forwarded message costs already) then ForEachHeaderField over
//   it; /1 adds the property fields of the message below (built outside the loop).
// - BM_EncodeDecodeNoProperties: AppendMqtt5Headers of an empty block (kNone) plus the decoder
//   over the node's own fields: what a 3.1.1 or property-less 5.0 message pays.
// - BM_EncodeDecodeProperties: a typical request/response message (Payload Format Indicator,
//   expiry, Content Type, Response Topic, 16 bytes of Correlation Data, three user properties,
//   one of them with CR/LF): encode, header block, decode.
// - BM_BatchRecord/<0|1> (batchprops lane; cluster/batch.h): the same message as a QoS 0 batch
//   record instead: the carried properties copied from its block (AppendBatchProperties), the
//   record appended with the expiry left, then decoded and its properties validated
//   (NextBatchRecord); /0 is the same record without properties, the reference in this run.
// items_per_second = messages; each benchmark repeats and reports the median and the spread.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/batch.h"
#include "cluster/mqtt5_headers.h"
#include "cluster/nats_protocol.h"
#include "mqtt/properties.h"
#include "statistics.h"

namespace ringmq {
namespace {

constexpr int kRepetitions = 5;

std::vector<cluster::nats::HeaderField> OwnFields() {
  return {{"Ringmq-Node", "node-a"},
          {"Ringmq-Qos", "1"},
          {"Ringmq-Retain", "0"},
          {"Ringmq-Sent-At", "1765100000000000"},
          {"Ringmq-Id", "1765100000000042"}};
}

std::vector<uint8_t> TypicalProperties() {
  std::vector<uint8_t> block(512);
  size_t size = 0;
  const auto tail = [&] { return std::span<uint8_t>(block).subspan(size); };
  using mqtt::PropertyId;
  size += mqtt::EncodeIntegerProperty(PropertyId::kPayloadFormatIndicator, 1, tail());
  size += mqtt::EncodeIntegerProperty(PropertyId::kMessageExpiryInterval, 60, tail());
  size += mqtt::EncodeStringProperty(PropertyId::kContentType, "application/json", tail());
  size += mqtt::EncodeStringProperty(PropertyId::kResponseTopic, "replies/client-17", tail());
  size += mqtt::EncodeStringProperty(PropertyId::kCorrelationData, "0123456789abcdef", tail());
  size += mqtt::EncodeUserProperty("trace-id", "4bf92f3577b34da6", tail());
  size += mqtt::EncodeUserProperty("tenant", "acme", tail());
  size += mqtt::EncodeUserProperty("note", "line one\r\nline two", tail());
  block.resize(size);
  return block;
}

void BM_HeaderBlockOnly(benchmark::State& state) {
  std::vector<cluster::nats::HeaderField> fields = OwnFields();
  std::string text;
  const std::vector<uint8_t> properties = TypicalProperties();
  if (state.range(0) == 1) cluster::AppendMqtt5Headers(properties, 60'000, 250, fields, text);
  std::string wire;
  for (auto _ : state) {
    wire.clear();
    benchmark::DoNotOptimize(cluster::nats::AppendHeaderBlock(fields, wire).ok());
    size_t count = 0;
    cluster::ForEachHeaderField(wire, [&count](std::string_view, std::string_view) {
      ++count;
      return true;
    });
    benchmark::DoNotOptimize(count);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_EncodeDecodeNoProperties(benchmark::State& state) {
  std::vector<cluster::nats::HeaderField> fields;
  fields.reserve(16);
  std::string text;
  std::string wire;
  cluster::nats::AppendHeaderBlock(OwnFields(), wire).IgnoreError();
  std::vector<uint8_t> block;
  for (auto _ : state) {
    fields = OwnFields();
    benchmark::DoNotOptimize(cluster::AppendMqtt5Headers({}, std::nullopt, 250, fields, text));
    cluster::Mqtt5HeaderDecoder decoder(block);
    cluster::DecodeMqtt5Headers(wire, decoder);
    benchmark::DoNotOptimize(decoder.properties().size());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_EncodeDecodeProperties(benchmark::State& state) {
  const std::vector<uint8_t> properties = TypicalProperties();
  std::vector<cluster::nats::HeaderField> fields;
  fields.reserve(32);
  std::string text;
  std::string wire;
  std::vector<uint8_t> block;
  for (auto _ : state) {
    fields = OwnFields();
    cluster::AppendMqtt5Headers(properties, 60'000, 250, fields, text);
    wire.clear();
    benchmark::DoNotOptimize(cluster::nats::AppendHeaderBlock(fields, wire).ok());
    cluster::Mqtt5HeaderDecoder decoder(block);
    cluster::DecodeMqtt5Headers(wire, decoder);
    benchmark::DoNotOptimize(decoder.properties().size());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_BatchRecord(benchmark::State& state) {
  const std::vector<uint8_t> properties =
      state.range(0) == 1 ? TypicalProperties() : std::vector<uint8_t>();
  const std::optional<uint64_t> expiry_left_ms =
      state.range(0) == 1 ? std::optional<uint64_t>(60'000) : std::nullopt;
  std::string carried;
  std::string batch;
  cluster::BeginBatch(batch, "node-a");
  const size_t header_size = batch.size();
  const std::string payload(64, 'p');
  for (auto _ : state) {
    carried.clear();
    cluster::AppendBatchProperties(properties, carried);
    batch.resize(header_size);
    cluster::AppendBatchRecord(batch, {.topic = "replies/t",
                                       .properties = carried,
                                       .expiry_left_ms = expiry_left_ms,
                                       .payload = payload});
    std::string_view records = std::string_view(batch).substr(header_size);
    cluster::BatchRecord record;
    benchmark::DoNotOptimize(cluster::NextBatchRecord(records, record));
    benchmark::DoNotOptimize(record.properties.size());
  }
  state.SetItemsProcessed(state.iterations());
}

void Repeated(benchmark::internal::Benchmark* benchmark) {
  bench::ConfigureRepetitions(benchmark, kRepetitions);
}

BENCHMARK(BM_HeaderBlockOnly)->Arg(0)->Arg(1)->Apply(Repeated);
BENCHMARK(BM_EncodeDecodeNoProperties)->Apply(Repeated);
BENCHMARK(BM_EncodeDecodeProperties)->Apply(Repeated);
BENCHMARK(BM_BatchRecord)->Arg(0)->Arg(1)->Apply(Repeated);

}  // namespace
}  // namespace ringmq

BENCHMARK_MAIN();
