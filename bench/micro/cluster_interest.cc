// Micro-benchmark of ClusterInterest::KeepCopy (src/shard/cluster_interest.h): the per-message
// check that keeps one copy of a NATS message delivered for several overlapping subscriptions
// of a shard's link. It runs for every message a shard receives from the cluster.
//
// Cases, at n wildcard filters "dev/<i>/+" and "dev/<i>/#" (2n wildcard subjects and n parent
// subjects on the link) plus the literal "dev/<k>/t" of the topics published:
// - BM_KeepCopy/<n>: KeepCopy for the copy of the literal subscription of a random dev.<k>.t
//   (the worst copy: every lower wildcard sid must be ruled out).
// - BM_ReferenceLinearScan/<n>: in the same run, the check as it was before issue 16's weak
//   lane: a std::map lookup of the literal subject, then one NatsSubjectMatches per live
//   wildcard subject with a lower sid (a std::map by sid).
//   The ratio of the two is the measurement; the machine's load moves both alike.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cluster/nats_link.h"
#include "cluster/subject.h"
#include "shard/cluster_interest.h"
#include "statistics.h"

namespace ringmq::shard {
namespace {

constexpr int kRepetitions = 5;
constexpr size_t kTopicCount = 1024;

class NullSink : public cluster::NatsLinkSink {
 public:
  void OnReady(const cluster::nats::ServerInfo&) override {}
  void OnMessage(const cluster::NatsMessage&) override {}
  void OnDisconnected(cluster::DisconnectReason, std::string_view) override {}
  void OnServerError(std::string_view) override {}
};

struct Fixture {
  explicit Fixture(int devices) {
    cluster::NatsLinkOptions options;
    options.urls = {"nats://127.0.0.1:4222"};
    options.outbound_bytes_max = size_t{1} << 30;
    link = std::move(*cluster::NatsLink::Create(options, &sink));
    interest = std::make_unique<ClusterInterest>(*link, mapping);
    for (int i = 0; i < devices; ++i) {
      interest->Acquire("dev/" + std::to_string(i) + "/+");   // sid 3i + 1: dev.i.*
      interest->Acquire("dev/" + std::to_string(i) + "/#");   // 3i + 2: dev.i.>, 3i + 3: dev.i
      wildcards.emplace(3 * i + 1, "dev." + std::to_string(i) + ".*");
      wildcards.emplace(3 * i + 2, "dev." + std::to_string(i) + ".>");
      subjects.emplace("dev." + std::to_string(i) + ".*", 3 * i + 1);
      subjects.emplace("dev." + std::to_string(i) + ".>", 3 * i + 2);
      subjects.emplace("dev." + std::to_string(i), 3 * i + 3);
    }
    // Distinct random devices, so that each literal subscription gets the next sid.
    std::vector<int> order(static_cast<size_t>(devices));
    for (int i = 0; i < devices; ++i) order[static_cast<size_t>(i)] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937(16));
    order.resize(std::min(order.size(), kTopicCount));
    uint64_t sid = 3 * static_cast<uint64_t>(devices);
    for (const int device : order) {
      interest->Acquire("dev/" + std::to_string(device) + "/t");
      topics.push_back({"dev." + std::to_string(device) + ".t", ++sid});
      subjects.emplace(topics.back().subject, sid);
    }
  }

  NullSink sink;
  cluster::SubjectMapping mapping;
  std::unique_ptr<cluster::NatsLink> link;
  std::unique_ptr<ClusterInterest> interest;
  std::map<uint64_t, std::string> wildcards;  // the reference's indexes
  std::map<std::string, uint64_t, std::less<>> subjects;
  struct Topic {
    std::string subject;
    uint64_t sid;  // its literal subscription
  };
  std::vector<Topic> topics;
};

Fixture& GetFixture(int devices) {
  static std::map<int, std::unique_ptr<Fixture>> fixtures;
  std::unique_ptr<Fixture>& fixture = fixtures[devices];
  if (fixture == nullptr) fixture = std::make_unique<Fixture>(devices);
  return *fixture;
}

void Sizes(benchmark::internal::Benchmark* benchmark) {
  bench::ConfigureRepetitions(benchmark, kRepetitions);
  benchmark->Arg(10)->Arg(1'000)->Arg(100'000)->ArgNames({"devices"});
}

void BM_KeepCopy(benchmark::State& state) {
  Fixture& fixture = GetFixture(static_cast<int>(state.range(0)));
  size_t next = 0;
  for (auto _ : state) {
    const Fixture::Topic& topic = fixture.topics[next];
    benchmark::DoNotOptimize(fixture.interest->KeepCopy(topic.sid, topic.subject));
    next = (next + 1) % fixture.topics.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KeepCopy)->Apply(Sizes);

void BM_ReferenceLinearScan(benchmark::State& state) {
  Fixture& fixture = GetFixture(static_cast<int>(state.range(0)));
  size_t next = 0;
  for (auto _ : state) {
    const Fixture::Topic& topic = fixture.topics[next];
    const auto literal = fixture.subjects.find(topic.subject);
    bool keep = literal == fixture.subjects.end() || literal->second >= topic.sid;
    for (auto it = fixture.wildcards.begin();
         keep && it != fixture.wildcards.end() && it->first < topic.sid; ++it) {
      if (NatsSubjectMatches(it->second, topic.subject)) {
        keep = false;
        break;
      }
    }
    benchmark::DoNotOptimize(keep);
    next = (next + 1) % fixture.topics.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReferenceLinearScan)->Apply(Sizes);

}  // namespace
}  // namespace ringmq::shard

BENCHMARK_MAIN();
