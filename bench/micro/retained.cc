// Micro-benchmarks of the retained-message store (src/retain/retained_store.h).
//
// ForEachMatch runs once per filter of every SUBSCRIBE, Set once per retained PUBLISH. The store
// holds 100k retained topics "site/<s>/device/<d>/temp" (100 sites x 1000 devices). Cases:
// - BM_MatchExact: one existing topic as the filter (five hashed lookups). Reference in the same
//   run: BM_ReferenceHashMapExact, the whole topic looked up in a std::unordered_map.
// - BM_MatchPlusDevice: "site/<s>/device/+/temp", 1000 matches: the scan covers one site only.
// - BM_MatchPlusSite: "site/+/device/<d>/temp", 100 matches: one exact lookup per site.
// - BM_MatchHashSite: "site/<s>/#", 1000 matches (the subtree of one site).
// - BM_MatchHashAll: "#", all 100k. Reference: BM_ReferenceVectorScan, the same callback over a
//   std::vector of the 100k messages (the floor of any walk that reports every message).
// - BM_SetReplace: a new message for an existing topic (the old one is retired). Reference:
//   BM_ReferenceMessageCreate, creating and dropping the message alone, which Set includes.
// - BM_SetDeleteAndRecreate: delete a topic by empty payload (pruning its leaf) and set it again.
// - BM_BuildOneParent/<n>: n retained topics "p/<i>" under one parent, from scratch (the hashed
//   children keep this linear); items = topics.
// - BM_RetainedHeavy/threads:<t>: retained-heavy traffic, every message retained: t threads (as
//   many shards) each Set a new message on 1,000 topics "bench/pair/<i>" in turn, starting at
//   different topics, and pass a quiescent point every kQuiescentEvery messages (one shard loop
//   iteration). Every Set takes the store's writer mutex and, retiring the replaced message, the
//   epoch domain's mutex. Reference in the same run: BM_ReferenceHeavyExchange, the same message
//   creation and one atomic exchange of a per-topic pointer, with no lock and no retirement (the
//   floor of any store that replaces one pointer per Set). items_per_second is the sum over the
//   threads (wall-clock time). On a machine with fewer cores than threads, the extra threads
//   show how the mutexes behave when a holder is preempted, not parallel speed.
//
// Matches report items = matched messages, so items_per_second compares the cost per message
// across filters. Each benchmark repeats and reports the median and the spread (min, p90, max)
// of the repetitions.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/assert.h"
#include "concurrent/epoch.h"
#include "message/message.h"
#include "retain/retained_store.h"
#include "statistics.h"

namespace ringmq::retain {
namespace {

using message::Message;
using message::MessageRef;

constexpr int kRepetitions = 5;
constexpr uint32_t kSites = 100;
constexpr uint32_t kDevicesPerSite = 1000;
constexpr uint32_t kTopics = kSites * kDevicesPerSite;
constexpr size_t kFilterCount = 4096;  // pre-built filters cycled through
constexpr uint32_t kQuiescentEvery = 64;

void Configure(benchmark::internal::Benchmark* benchmark) {
  bench::ConfigureRepetitions(benchmark, kRepetitions);
}

std::span<const uint8_t> Payload() {
  static constexpr char kPayload[] = "21.5C";
  return {reinterpret_cast<const uint8_t*>(kPayload), sizeof(kPayload) - 1};
}

std::string Topic(uint32_t site, uint32_t device) {
  return "site/" + std::to_string(site) + "/device/" + std::to_string(device) + "/temp";
}

// The 100k-topic store with one reader (the benchmark thread), online for the whole process.
struct Fixture {
  Fixture() : domain(1), store(domain) {
    domain.Online(0);
    for (uint32_t site = 0; site < kSites; ++site) {
      for (uint32_t device = 0; device < kDevicesPerSite; ++device) {
        store.Set(MessageRef::Create(Topic(site, device), Payload(), 1, true));
      }
    }
    RINGMQ_ASSERT(store.size() == kTopics);
    domain.Quiescent(0);
    domain.Collect();
  }

  concurrent::EpochDomain domain;
  RetainedStore store;
};

Fixture& GetFixture() {
  static Fixture* fixture = new Fixture();  // lives for the process, like a broker's store
  return *fixture;
}

// kFilterCount filters made by `make(random)`.
template <typename Make>
std::vector<std::string> Filters(Make make) {
  std::mt19937 random(42);
  std::vector<std::string> filters;
  for (size_t i = 0; i < kFilterCount; ++i) {
    filters.push_back(make(random));
  }
  return filters;
}

void RunMatch(benchmark::State& state, const std::vector<std::string>& filters) {
  Fixture& fixture = GetFixture();
  size_t next = 0;
  uint64_t matched = 0;
  uint32_t since_quiescent = 0;
  for (auto _ : state) {
    fixture.store.ForEachMatch(filters[next], [&](Message* message) {
      benchmark::DoNotOptimize(message);
      ++matched;
    });
    next = (next + 1) % filters.size();
    if (++since_quiescent == kQuiescentEvery) {
      fixture.domain.Quiescent(0);
      since_quiescent = 0;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(matched));
  state.counters["matches_per_filter"] =
      static_cast<double>(matched) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

void BM_MatchExact(benchmark::State& state) {
  static const std::vector<std::string> filters = Filters(
      [](std::mt19937& random) { return Topic(random() % kSites, random() % kDevicesPerSite); });
  RunMatch(state, filters);
}
BENCHMARK(BM_MatchExact)->Apply(Configure);

void BM_ReferenceHashMapExact(benchmark::State& state) {
  Fixture& fixture = GetFixture();
  std::unordered_map<std::string, MessageRef> map;
  map.reserve(kTopics);
  fixture.store.ForEachMatch("#", [&](Message* message) {
    map.emplace(std::string(message->topic()), MessageRef::Share(message));
  });
  fixture.domain.Quiescent(0);
  static const std::vector<std::string> filters = Filters(
      [](std::mt19937& random) { return Topic(random() % kSites, random() % kDevicesPerSite); });
  size_t next = 0;
  uint64_t matched = 0;
  for (auto _ : state) {
    if (auto it = map.find(filters[next]); it != map.end()) {
      benchmark::DoNotOptimize(it->second.get());
      ++matched;
    }
    next = (next + 1) % filters.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(matched));
}
BENCHMARK(BM_ReferenceHashMapExact)->Apply(Configure);

void BM_MatchPlusDevice(benchmark::State& state) {
  static const std::vector<std::string> filters = Filters([](std::mt19937& random) {
    return "site/" + std::to_string(random() % kSites) + "/device/+/temp";
  });
  RunMatch(state, filters);
}
BENCHMARK(BM_MatchPlusDevice)->Apply(Configure);

void BM_MatchPlusSite(benchmark::State& state) {
  static const std::vector<std::string> filters = Filters([](std::mt19937& random) {
    return "site/+/device/" + std::to_string(random() % kDevicesPerSite) + "/temp";
  });
  RunMatch(state, filters);
}
BENCHMARK(BM_MatchPlusSite)->Apply(Configure);

void BM_MatchHashSite(benchmark::State& state) {
  static const std::vector<std::string> filters = Filters(
      [](std::mt19937& random) { return "site/" + std::to_string(random() % kSites) + "/#"; });
  RunMatch(state, filters);
}
BENCHMARK(BM_MatchHashSite)->Apply(Configure);

void BM_MatchHashAll(benchmark::State& state) {
  static const std::vector<std::string> filters = {"#"};
  RunMatch(state, filters);
}
BENCHMARK(BM_MatchHashAll)->Apply(Configure);

void BM_ReferenceVectorScan(benchmark::State& state) {
  Fixture& fixture = GetFixture();
  std::vector<MessageRef> held;
  std::vector<Message*> messages;
  fixture.store.ForEachMatch("#", [&](Message* message) {
    held.push_back(MessageRef::Share(message));
    messages.push_back(message);
  });
  fixture.domain.Quiescent(0);
  uint64_t matched = 0;
  for (auto _ : state) {
    for (Message* message : messages) {
      benchmark::DoNotOptimize(message);
      ++matched;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(matched));
}
BENCHMARK(BM_ReferenceVectorScan)->Apply(Configure);

void BM_SetReplace(benchmark::State& state) {
  Fixture& fixture = GetFixture();
  static const std::vector<std::string> topics = Filters(
      [](std::mt19937& random) { return Topic(random() % kSites, random() % kDevicesPerSite); });
  size_t next = 0;
  uint32_t since_quiescent = 0;
  for (auto _ : state) {
    fixture.store.Set(MessageRef::Create(topics[next], Payload(), 1, true));
    next = (next + 1) % topics.size();
    if (++since_quiescent == kQuiescentEvery) {
      fixture.domain.Quiescent(0);
      since_quiescent = 0;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_SetReplace)->Apply(Configure);

void BM_ReferenceMessageCreate(benchmark::State& state) {
  static const std::vector<std::string> topics = Filters(
      [](std::mt19937& random) { return Topic(random() % kSites, random() % kDevicesPerSite); });
  size_t next = 0;
  for (auto _ : state) {
    MessageRef message = MessageRef::Create(topics[next], Payload(), 1, true);
    benchmark::DoNotOptimize(message.get());
    next = (next + 1) % topics.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ReferenceMessageCreate)->Apply(Configure);

// Items = Set calls (two per iteration).
void BM_SetDeleteAndRecreate(benchmark::State& state) {
  Fixture& fixture = GetFixture();
  static const std::vector<std::string> topics = Filters(
      [](std::mt19937& random) { return Topic(random() % kSites, random() % kDevicesPerSite); });
  size_t next = 0;
  uint32_t since_quiescent = 0;
  for (auto _ : state) {
    fixture.store.Set(MessageRef::Create(topics[next], {}, 1, true));
    fixture.store.Set(MessageRef::Create(topics[next], Payload(), 1, true));
    next = (next + 1) % topics.size();
    if (++since_quiescent == kQuiescentEvery) {
      fixture.domain.Quiescent(0);
      since_quiescent = 0;
    }
  }
  RINGMQ_ASSERT(fixture.store.size() == kTopics);
  state.SetItemsProcessed(static_cast<int64_t>(2 * state.iterations()));
}
BENCHMARK(BM_SetDeleteAndRecreate)->Apply(Configure);

void BM_BuildOneParent(benchmark::State& state) {
  const auto count = static_cast<uint32_t>(state.range(0));
  std::vector<std::string> topics;
  topics.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    topics.push_back("p/" + std::to_string(i));
  }
  for (auto _ : state) {
    concurrent::EpochDomain domain(1);
    auto store = std::make_unique<RetainedStore>(domain);
    for (const std::string& topic : topics) {
      store->Set(MessageRef::Create(topic, Payload(), 0, true));
    }
    RINGMQ_ASSERT(store->size() == count);
    state.PauseTiming();
    store.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * count);
}
BENCHMARK(BM_BuildOneParent)
    ->ArgNames({"topics"})
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Apply(Configure);

constexpr uint32_t kHeavyTopics = 1000;
constexpr int kHeavyMaxThreads = 64;

const std::vector<std::string>& HeavyTopics() {
  static const std::vector<std::string> topics = [] {
    std::vector<std::string> result;
    for (uint32_t i = 0; i < kHeavyTopics; ++i) {
      result.push_back("bench/pair/" + std::to_string(i));
    }
    return result;
  }();
  return topics;
}

// One store for every thread count; thread i is reader i. Readers of threads that are not running
// stay offline, so they do not hold up reclamation.
struct HeavyFixture {
  HeavyFixture() : domain(kHeavyMaxThreads), store(domain) {}

  concurrent::EpochDomain domain;
  RetainedStore store;
};

HeavyFixture& GetHeavyFixture() {
  static HeavyFixture* const fixture = new HeavyFixture();
  return *fixture;
}

void BM_RetainedHeavy(benchmark::State& state) {
  HeavyFixture& fixture = GetHeavyFixture();
  const std::vector<std::string>& topics = HeavyTopics();
  const auto reader = static_cast<uint32_t>(state.thread_index());
  RINGMQ_ASSERT(reader < kHeavyMaxThreads);
  fixture.domain.Online(reader);
  size_t next = (reader * kHeavyTopics / static_cast<uint32_t>(state.threads())) % kHeavyTopics;
  uint32_t since_quiescent = 0;
  for (auto _ : state) {
    fixture.store.Set(MessageRef::Create(topics[next], Payload(), 0, true));
    next = next + 1 == kHeavyTopics ? 0 : next + 1;
    if (++since_quiescent == kQuiescentEvery) {
      fixture.domain.Quiescent(reader);
      since_quiescent = 0;
    }
  }
  fixture.domain.Offline(reader);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RetainedHeavy)
    ->Threads(1)
    ->Threads(2)
    ->Threads(kHeavyMaxThreads)
    ->UseRealTime()
    ->Apply(Configure);

// The reference: per-topic atomic pointers, replaced by exchange. The old message is dropped at
// once (safe here only because nothing reads the slots).
void BM_ReferenceHeavyExchange(benchmark::State& state) {
  static std::atomic<Message*>* const slots = new std::atomic<Message*>[kHeavyTopics]();
  const std::vector<std::string>& topics = HeavyTopics();
  const auto thread = static_cast<uint32_t>(state.thread_index());
  size_t next = (thread * kHeavyTopics / static_cast<uint32_t>(state.threads())) % kHeavyTopics;
  for (auto _ : state) {
    MessageRef message = MessageRef::Create(topics[next], Payload(), 0, true);
    if (Message* old = slots[next].exchange(message.release(), std::memory_order_acq_rel)) {
      old->Release();
    }
    next = next + 1 == kHeavyTopics ? 0 : next + 1;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ReferenceHeavyExchange)
    ->Threads(1)
    ->Threads(2)
    ->Threads(kHeavyMaxThreads)
    ->UseRealTime()
    ->Apply(Configure);

}  // namespace
}  // namespace ringmq::retain

BENCHMARK_MAIN();
