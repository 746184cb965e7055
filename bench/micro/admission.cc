// Micro-benchmarks of CONNECT admission (src/connect/admission.h).
//
// Admit runs inline on the shard that read the CONNECT, so its cost is added to every
// connection set-up. The cases cover the accept path, the cheapest refusal (0x01), the most
// expensive client id refusal (0x02 after scanning a list of 8 prefixes) and the malformed
// close. BM_DecodeConnectAndAdmit measures the real path from bytes to decision, with
// BM_DecodeConnectOnly as its in-run reference so the share of Admit is visible.
//
// Each benchmark repeats and reports the median and the spread (min, p90, max) of the
// repetitions, not a single mean.
#include "connect/admission.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/assert.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/result.h"
#include "mqtt/violation.h"
#include "ringmq/config.h"
#include "statistics.h"

namespace ringmq::connect {
namespace {

using ConnectResult = mqtt::Result<mqtt::Connect>;

constexpr int kRepetitions = 9;

void Configure(benchmark::internal::Benchmark* benchmark) {
  bench::ConfigureRepetitions(benchmark, kRepetitions);
}

mqtt::Connect ValidConnect() {
  mqtt::Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = 4;
  connect.client_id = "sensor-0001";
  return connect;
}

// Eight prefixes, none of which the refused id matches, so the whole list is scanned.
const std::vector<std::string>& EightPrefixes() {
  static const std::vector<std::string> prefixes = {
      "building-a/", "building-b/", "building-c/", "gateway-",
      "meter-",      "sensor-",     "thermostat-", "valve-",
  };
  return prefixes;
}

void RunAdmit(benchmark::State& state, const ConnectResult& connect, const Policy& policy,
              Outcome expected) {
  const BrokerState broker{.connected_clients = 1'000};
  RINGMQ_ASSERT(Admit(connect, broker, policy).outcome == expected);
  for (auto _ : state) {
    benchmark::DoNotOptimize(&connect);
    Decision decision = Admit(connect, broker, policy);
    benchmark::DoNotOptimize(decision);
  }
}

void BM_AdmitAccept(benchmark::State& state) {
  RunAdmit(state, ValidConnect(), Policy{.client_id_prefixes = EightPrefixes()}, Outcome::kAccept);
}
BENCHMARK(BM_AdmitAccept)->Apply(Configure);

void BM_AdmitRefuseUnsupportedProtocol0x01(benchmark::State& state) {
  mqtt::Connect connect;
  connect.protocol_level = 5;
  connect.level_supported = false;
  RunAdmit(state, connect, Policy{.client_id_prefixes = EightPrefixes()}, Outcome::kRefuse);
}
BENCHMARK(BM_AdmitRefuseUnsupportedProtocol0x01)->Apply(Configure);

void BM_AdmitRefuseClientIdNotAllowed0x02(benchmark::State& state) {
  mqtt::Connect connect = ValidConnect();
  connect.client_id = "intruder-0001";
  RunAdmit(state, connect, Policy{.client_id_prefixes = EightPrefixes()}, Outcome::kRefuse);
}
BENCHMARK(BM_AdmitRefuseClientIdNotAllowed0x02)->Apply(Configure);

void BM_AdmitCloseMalformed(benchmark::State& state) {
  RunAdmit(state, ConnectResult(mqtt::Violation::kConnectReservedFlag),
           Policy{.client_id_prefixes = EightPrefixes()}, Outcome::kClose);
}
BENCHMARK(BM_AdmitCloseMalformed)->Apply(Configure);

// An MQTT 3.1.1 CONNECT as a client sends it: clean session, keepalive 60 s, client id
// "sensor-0001", user name "alice", password "secret".
constexpr std::array<uint8_t, 40> kConnectBytes = {
    0x10, 38,                                                           // CONNECT, remaining length
    0x00, 0x04, 'M', 'Q', 'T', 'T',                                     // protocol name
    0x04,                                                               // protocol level 4
    0xC2,                                                               // user, password, clean
    0x00, 0x3C,                                                         // keepalive 60 s
    0x00, 11,   's', 'e', 'n', 's', 'o', 'r', '-', '0', '0', '0', '1',  // client id
    0x00, 5,    'a', 'l', 'i', 'c', 'e',                                // user name
    0x00, 6,    's', 'e', 'c', 'r', 'e', 't',                           // password
};

constexpr uint32_t kMaxPacketSize = 1 << 20;

// Frames and decodes the CONNECT; the result views kConnectBytes.
ConnectResult DecodeConnectBytes(std::span<const uint8_t> bytes) {
  const mqtt::Frame frame = mqtt::PeekFrame(bytes, kMaxPacketSize);
  RINGMQ_ASSERT(frame.status == mqtt::FrameStatus::kComplete);
  return mqtt::DecodeConnect(
      frame.header, bytes.subspan(frame.header.header_length, frame.header.remaining_length));
}

void BM_DecodeConnectOnly(benchmark::State& state) {
  std::span<const uint8_t> bytes = kConnectBytes;
  RINGMQ_ASSERT(DecodeConnectBytes(bytes).ok());
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes);
    ConnectResult connect = DecodeConnectBytes(bytes);
    benchmark::DoNotOptimize(connect);
  }
}
BENCHMARK(BM_DecodeConnectOnly)->Apply(Configure);

void BM_DecodeConnectAndAdmit(benchmark::State& state) {
  std::span<const uint8_t> bytes = kConnectBytes;
  const Policy policy{.client_id_prefixes = EightPrefixes()};
  const BrokerState broker{.connected_clients = 1'000};
  RINGMQ_ASSERT(Admit(DecodeConnectBytes(bytes), broker, policy).outcome == Outcome::kAccept);
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes);
    Decision decision = Admit(DecodeConnectBytes(bytes), broker, policy);
    benchmark::DoNotOptimize(decision);
  }
}
BENCHMARK(BM_DecodeConnectAndAdmit)->Apply(Configure);

}  // namespace
}  // namespace ringmq::connect

BENCHMARK_MAIN();
