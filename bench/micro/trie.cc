// Micro-benchmarks of the shared subscription trie (src/sub/trie.h).
//
// Match runs once per PUBLISH on every shard, so its cost per message is the hot path of the
// broker. Cases:
// - BM_MatchExact/<n>: n subscriptions "device/<i>/temp" (one session each), publishing to
//   random existing devices: one subscriber per message. The reference in the same run,
//   BM_ReferenceHashMapExact/<n>, looks the whole topic up in a std::unordered_map (no wildcard
//   support at all): the floor for an exact-match lookup.
// - BM_MatchWildcardMix/<n>: the same topics, but 10% of the filters are "+/<i>/temp" and 1% are
//   "device/<i>/#", so every Match walks two subtrees and checks '#' children.
// - BM_MatchMiss/<n>: topics under the subscribed prefix that nobody subscribed to.
// - BM_MatchFanOut/<n>: one topic with n subscribers on 8 shards plus 10% overlapping "news/#"
//   subscriptions of the same sessions (merge to one entry per session); items = subscribers.
// - BM_SubscribeUnsubscribe/<n>: one Subscribe plus one Unsubscribe of a new filter next to n
//   existing ones (node creation, table insert, pruning, retirement); items = operations.
// - BM_SubscribeUnsubscribeFanOut/<n>: the same on a filter that already has n subscribers
//   (copy-on-write of the list: the whole flat list, or one chunk and the chunk pointers).
// - BM_Build/<n>: inserting n distinct subscriptions under one parent from scratch.
//
// Writer costs depend on the allocator: ringmq runs on mimalloc, this binary on the C library's
// malloc, which is much slower for the churn of retired arrays of a few KB; to measure with
// mimalloc: LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 bench_trie.
//
// Tries are built once per size and shared between benchmarks (the 1M tries take a second or two
// each). Each benchmark repeats and reports the median and the spread (min, p90, max) of the
// repetitions.
#include "sub/trie.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/assert.h"
#include "concurrent/epoch.h"
#include "statistics.h"

namespace ringmq::sub {
namespace {

using concurrent::EpochDomain;

constexpr int kRepetitions = 5;
constexpr size_t kTopicCount = 4096;  // pre-built topics cycled through by Match benchmarks
constexpr uint32_t kQuiescentEvery = 64;
constexpr uint16_t kShards = 8;

void Configure(benchmark::internal::Benchmark* benchmark) {
  bench::ConfigureRepetitions(benchmark, kRepetitions);
}

// Trie sizes: 1k, 100k and 1M subscriptions.
void Sizes(benchmark::internal::Benchmark* benchmark) {
  Configure(benchmark);
  benchmark->Arg(1'000)->Arg(100'000)->Arg(1'000'000)->ArgNames({"subscriptions"});
}

// Subscribers of one filter: a flat list (10) and chunked lists (1k to 100k).
void FanOuts(benchmark::internal::Benchmark* benchmark) {
  Configure(benchmark);
  benchmark->Arg(10)->Arg(1'000)->Arg(10'000)->Arg(100'000)->ArgNames({"subscribers"});
}

Subscriber SessionOf(uint32_t i, uint8_t qos = 1) {
  return {static_cast<uint16_t>(i % kShards), i / kShards, 0, qos};
}

std::string DeviceTopic(uint32_t i) { return "device/" + std::to_string(i) + "/temp"; }

enum class Mix { kExact, kWildcard };

// A trie with one reader (the benchmark thread), online for the life of the process.
struct Fixture {
  explicit Fixture(size_t subscriptions, Mix mix) : domain(1), trie(domain) {
    domain.Online(0);
    for (uint32_t i = 0; i < subscriptions; ++i) {
      std::string filter = DeviceTopic(i);
      if (mix == Mix::kWildcard && i % 100 == 0) {
        filter = "device/" + std::to_string(i) + "/#";
      } else if (mix == Mix::kWildcard && i % 10 == 1) {
        filter = "+/" + std::to_string(i) + "/temp";
      }
      RINGMQ_ASSERT(trie.Subscribe(filter, SessionOf(i)));
    }
    std::mt19937 random(42);
    for (size_t i = 0; i < kTopicCount; ++i) {
      topics.push_back(DeviceTopic(static_cast<uint32_t>(random() % subscriptions)));
    }
    domain.Collect();
  }

  EpochDomain domain;
  SubscriptionTrie trie;
  std::vector<std::string> topics;
};

Fixture& GetFixture(size_t subscriptions, Mix mix) {
  static std::map<std::pair<size_t, Mix>, std::unique_ptr<Fixture>> fixtures;
  std::unique_ptr<Fixture>& fixture = fixtures[{subscriptions, mix}];
  if (fixture == nullptr) {
    fixture = std::make_unique<Fixture>(subscriptions, mix);
  }
  return *fixture;
}

void RunMatch(benchmark::State& state, Fixture& fixture, const std::vector<std::string>& topics) {
  MatchResult result;
  size_t next = 0;
  size_t delivered = 0;
  uint32_t since_quiescent = 0;
  for (auto _ : state) {
    fixture.trie.Match(topics[next], result);
    delivered += result.size();
    benchmark::DoNotOptimize(result.subscribers().data());
    next = (next + 1) % topics.size();
    if (++since_quiescent == kQuiescentEvery) {
      fixture.domain.Quiescent(0);
      since_quiescent = 0;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["subscribers_per_match"] =
      static_cast<double>(delivered) /
      static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

void BM_MatchExact(benchmark::State& state) {
  Fixture& fixture = GetFixture(static_cast<size_t>(state.range(0)), Mix::kExact);
  RunMatch(state, fixture, fixture.topics);
}
BENCHMARK(BM_MatchExact)->Apply(Sizes);

void BM_ReferenceHashMapExact(benchmark::State& state) {
  const auto subscriptions = static_cast<uint32_t>(state.range(0));
  std::unordered_map<std::string, std::vector<Subscriber>> map;
  map.reserve(subscriptions);
  for (uint32_t i = 0; i < subscriptions; ++i) {
    map[DeviceTopic(i)].push_back(SessionOf(i));
  }
  const std::vector<std::string>& topics = GetFixture(subscriptions, Mix::kExact).topics;
  std::vector<Subscriber> result;
  size_t next = 0;
  for (auto _ : state) {
    result.clear();
    if (auto it = map.find(topics[next]); it != map.end()) {
      result.insert(result.end(), it->second.begin(), it->second.end());
    }
    benchmark::DoNotOptimize(result.data());
    next = (next + 1) % topics.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ReferenceHashMapExact)->Apply(Sizes);

void BM_MatchWildcardMix(benchmark::State& state) {
  Fixture& fixture = GetFixture(static_cast<size_t>(state.range(0)), Mix::kWildcard);
  RunMatch(state, fixture, fixture.topics);
}
BENCHMARK(BM_MatchWildcardMix)->Apply(Sizes);

void BM_MatchMiss(benchmark::State& state) {
  Fixture& fixture = GetFixture(static_cast<size_t>(state.range(0)), Mix::kExact);
  std::vector<std::string> topics;
  for (size_t i = 0; i < kTopicCount; ++i) {
    topics.push_back("device/" + std::to_string(i) + "/humidity");
  }
  RunMatch(state, fixture, topics);
}
BENCHMARK(BM_MatchMiss)->Apply(Sizes);

void BM_MatchFanOut(benchmark::State& state) {
  const auto subscribers = static_cast<uint32_t>(state.range(0));
  EpochDomain domain(1);
  domain.Online(0);
  SubscriptionTrie trie(domain);
  for (uint32_t i = 0; i < subscribers; ++i) {
    trie.Subscribe("news", SessionOf(i, 0));
    if (i % 10 == 0) {
      trie.Subscribe("news/#", SessionOf(i, 1));  // overlapping: merged, QoS 1 wins
    }
  }
  MatchResult result;
  for (auto _ : state) {
    trie.Match("news", result);
    benchmark::DoNotOptimize(result.subscribers().data());
    domain.Quiescent(0);
  }
  RINGMQ_ASSERT(result.size() == subscribers);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * subscribers);
}
BENCHMARK(BM_MatchFanOut)->Apply(FanOuts)->Unit(benchmark::kMicrosecond);

// Subscribing and unsubscribing one more session to a filter that has n subscribers already.
void BM_SubscribeUnsubscribeFanOut(benchmark::State& state) {
  const auto subscribers = static_cast<uint32_t>(state.range(0));
  EpochDomain domain(1);
  domain.Online(0);
  SubscriptionTrie trie(domain);
  for (uint32_t i = 0; i < subscribers; ++i) {
    trie.Subscribe("news", SessionOf(i, 0));
  }
  const Subscriber extra = SessionOf(subscribers / 2 * kShards + 1, 0);
  for (auto _ : state) {
    trie.Subscribe("news", extra);
    trie.Unsubscribe("news", extra);
    domain.Quiescent(0);
  }
  domain.Collect();
  state.SetItemsProcessed(2 * static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SubscribeUnsubscribeFanOut)->Apply(FanOuts);

void BM_SubscribeUnsubscribe(benchmark::State& state) {
  Fixture& fixture = GetFixture(static_cast<size_t>(state.range(0)), Mix::kExact);
  std::vector<std::string> filters;
  for (uint32_t i = 0; i < kTopicCount; ++i) {
    filters.push_back("device/new-" + std::to_string(i) + "/temp");
  }
  size_t next = 0;
  for (auto _ : state) {
    const Subscriber subscriber = SessionOf(static_cast<uint32_t>(next));
    fixture.trie.Subscribe(filters[next], subscriber);
    fixture.trie.Unsubscribe(filters[next], subscriber);
    next = (next + 1) % filters.size();
    fixture.domain.Quiescent(0);
  }
  fixture.domain.Collect();
  state.SetItemsProcessed(2 * static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SubscribeUnsubscribe)->Apply(Sizes);

void BM_Build(benchmark::State& state) {
  const auto subscriptions = static_cast<uint32_t>(state.range(0));
  std::vector<std::string> filters;
  for (uint32_t i = 0; i < subscriptions; ++i) {
    filters.push_back(DeviceTopic(i));
  }
  for (auto _ : state) {
    auto domain = std::make_unique<EpochDomain>(1);
    auto trie = std::make_unique<SubscriptionTrie>(*domain);
    for (uint32_t i = 0; i < subscriptions; ++i) {
      trie->Subscribe(filters[i], SessionOf(i));
    }
    benchmark::DoNotOptimize(trie->subscription_count());
    state.PauseTiming();  // not the teardown
    trie.reset();
    domain.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * subscriptions);
}
BENCHMARK(BM_Build)
    ->Arg(1'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->ArgNames({"subscriptions"})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringmq::sub

BENCHMARK_MAIN();
