// Differential libFuzzer target for the subscription trie (src/sub/trie.h).
//
// The fuzz bytes become a sequence of Subscribe / Unsubscribe / Match operations over a small
// alphabet of levels (empty levels, '$' levels, '+', '#'), so that filters overlap and nodes are
// created, shared and pruned all the time, and subscriber lists (often with tiny chunks) are
// chunked, split, merged and flattened. Every operation is replayed on a brute-force matcher
// (tests/sub/brute_force_matcher.h); any difference in return values, subscription counts or
// match results (the QoS and acl_check merge of overlapping subscriptions included) aborts. At
// the end everything is unsubscribed and the trie must be back to its root alone (pruning leaves
// no node behind).
#include "sub/trie.h"

#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../sub/brute_force_matcher.h"
#include "concurrent/epoch.h"
#include "mqtt/topic.h"
#include "mqtt/violation.h"

namespace ringmq::sub {
namespace {

using concurrent::EpochDomain;

#define FUZZ_CHECK(condition)                                                              \
  do {                                                                                     \
    if (!(condition)) {                                                                    \
      std::fprintf(stderr, "trie invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

constexpr std::array<std::string_view, 8> kLevels = {"a", "b", "", "$s", "$", "ab", "a/", "c"};
constexpr size_t kMaxLevels = 6;
constexpr size_t kMaxOperations = 512;

// A topic name from the alphabet ("a/" adds an empty level); never empty.
std::string Topic(FuzzedDataProvider& data) {
  std::string topic;
  const size_t levels = data.ConsumeIntegralInRange<size_t>(1, kMaxLevels);
  for (size_t i = 0; i < levels; ++i) {
    if (i > 0) {
      topic += '/';
    }
    topic += kLevels[data.ConsumeIntegralInRange<size_t>(0, kLevels.size() - 1)];
  }
  return topic.empty() ? std::string("/") : topic;
}

// A valid filter: levels from the alphabet or '+', and possibly '#' as the last level.
std::string Filter(FuzzedDataProvider& data) {
  std::string filter;
  const size_t levels = data.ConsumeIntegralInRange<size_t>(1, kMaxLevels);
  for (size_t i = 0; i < levels; ++i) {
    if (i > 0) {
      filter += '/';
    }
    const size_t choice = data.ConsumeIntegralInRange<size_t>(0, kLevels.size() + 1);
    if (choice == kLevels.size()) {
      filter += '+';
    } else if (choice == kLevels.size() + 1) {
      filter += '#';
      break;
    } else {
      filter += kLevels[choice];
    }
  }
  if (filter.empty()) {
    filter = "+";
  }
  FUZZ_CHECK(mqtt::ValidateTopicFilter(filter) == mqtt::Violation::kNone);
  return filter;
}

Subscriber AnySubscriber(FuzzedDataProvider& data) {
  return {data.ConsumeIntegralInRange<uint16_t>(0, 2), data.ConsumeIntegralInRange<uint32_t>(0, 3),
          data.ConsumeIntegralInRange<uint32_t>(0, 1), data.ConsumeIntegralInRange<uint8_t>(0, 2),
          data.ConsumeBool()};
}

void CheckMatch(const SubscriptionTrie& trie, const reference::BruteForceMatcher& brute_force,
                std::string_view topic, MatchResult& result) {
  FUZZ_CHECK(mqtt::ValidateTopicName(topic) == mqtt::Violation::kNone);
  trie.Match(topic, result);
  const reference::Entries expected = brute_force.Match(topic);
  if (reference::ToEntries(result) != expected) {
    std::fprintf(stderr, "Match(\"%.*s\"): trie found %zu sessions, brute force %zu\n",
                 static_cast<int>(topic.size()), topic.data(), result.size(), expected.size());
    std::abort();
  }
  size_t grouped = 0;
  for (size_t i = 0; i < result.shards().size(); ++i) {
    const ShardSubscribers& group = result.shards()[i];
    FUZZ_CHECK(!group.subscribers.empty());
    FUZZ_CHECK(i == 0 || result.shards()[i - 1].shard < group.shard);
    for (const Subscriber& s : group.subscribers) {
      FUZZ_CHECK(s.shard == group.shard);
    }
    grouped += group.subscribers.size();
  }
  FUZZ_CHECK(grouped == result.size());
}

void Run(FuzzedDataProvider& data) {
  EpochDomain domain(1);
  domain.Online(0);
  // The seed, the chunk size of subscriber lists and the operations all come from the input, so a
  // crash reproduces exactly. Chunks of 1 to 3 make most lists of a few sessions chunked.
  const uint64_t seed = data.ConsumeIntegral<uint64_t>();
  const uint32_t list_chunk = data.ConsumeBool() ? data.ConsumeIntegralInRange<uint32_t>(1, 3)
                                                 : SubscriptionTrie::kListChunk;
  SubscriptionTrie trie(domain, seed, list_chunk);
  reference::BruteForceMatcher brute_force;
  MatchResult result;
  for (size_t op = 0; op < kMaxOperations && data.remaining_bytes() > 0; ++op) {
    switch (data.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
      case 1: {
        const std::string filter = Filter(data);
        const Subscriber s = AnySubscriber(data);
        FUZZ_CHECK(trie.Subscribe(filter, s) == brute_force.Subscribe(filter, s));
        break;
      }
      case 2: {
        const std::string filter = Filter(data);
        const Subscriber s = AnySubscriber(data);
        FUZZ_CHECK(trie.Unsubscribe(filter, s) == brute_force.Unsubscribe(filter, s));
        break;
      }
      default:
        CheckMatch(trie, brute_force, Topic(data), result);
        break;
    }
    FUZZ_CHECK(trie.subscription_count() == brute_force.size());
    domain.Quiescent(0);
    if (op % 16 == 0) {
      domain.Collect();
    }
  }
  for (const auto& [filter, s] : brute_force.All()) {
    FUZZ_CHECK(trie.Unsubscribe(filter, s));
  }
  FUZZ_CHECK(trie.subscription_count() == 0);
  FUZZ_CHECK(trie.node_count() == 1);
  domain.Offline(0);
}

}  // namespace
}  // namespace ringmq::sub

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  FuzzedDataProvider data(bytes, size);
  ringmq::sub::Run(data);
  return 0;
}
