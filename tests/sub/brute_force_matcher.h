// A brute-force reference for the subscription trie, shared by tests/sub/trie_test.cc and the
// differential fuzzer tests/fuzz/trie.cc: it keeps every subscription in a map and matches a topic
// by comparing it with every filter, level by level, straight from the rules of MQTT 3.1.1 §4.7.
// Slow on purpose; simple enough to be obviously right.
//
// Thread safety: none (one test thread).
#ifndef RINGMQ_TESTS_SUB_BRUTE_FORCE_MATCHER_H_
#define RINGMQ_TESTS_SUB_BRUTE_FORCE_MATCHER_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "sub/trie.h"

namespace ringmq::sub::reference {

// One session of a match result: comparable, and printable by gtest.
struct Entry {
  uint16_t shard;
  uint32_t session;
  uint32_t generation;
  uint8_t qos;
  bool acl_check = false;
  auto operator<=>(const Entry&) const = default;
  friend std::ostream& operator<<(std::ostream& out, const Entry& e) {
    return out << "{" << e.shard << ", " << e.session << ", " << e.generation << ", "
               << int{e.qos} << (e.acl_check ? ", acl_check}" : "}");
  }
};
using Entries = std::vector<Entry>;

inline Entries ToEntries(const MatchResult& result) {
  Entries entries;
  for (const Subscriber& s : result.subscribers()) {
    entries.push_back({s.shard, s.session, s.generation, s.qos, s.acl_check});
  }
  return entries;
}

// Takes the next level off the front of `rest`; false when there is none left.
inline bool NextLevel(std::string_view& rest, bool& done, std::string_view& level) {
  if (done) {
    return false;
  }
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    level = rest;
    done = true;
  } else {
    level = rest.substr(0, slash);
    rest.remove_prefix(slash + 1);
  }
  return true;
}

inline bool FilterMatches(std::string_view filter, std::string_view topic) {
  if (topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#'))) {
    return false;  // MQTT-4.7.2-1 (a valid filter starting with + or # has it as a whole level)
  }
  bool filter_done = false;
  bool topic_done = false;
  std::string_view f;
  std::string_view t;
  while (NextLevel(filter, filter_done, f)) {
    if (f == "#") {
      return true;  // the rest of the topic, including nothing: MQTT-4.7.1-2
    }
    if (!NextLevel(topic, topic_done, t) || (f != "+" && f != t)) {
      return false;
    }
  }
  return topic_done;  // no topic level left over
}

class BruteForceMatcher {
 public:
  // Same contract as SubscriptionTrie::Subscribe / Unsubscribe.
  bool Subscribe(const std::string& filter, Subscriber s) {
    auto [it, inserted] = subscriptions_.try_emplace({filter, IdentityOf(s)}, s);
    it->second = s;
    return inserted;
  }
  bool Unsubscribe(const std::string& filter, Subscriber s) {
    return subscriptions_.erase({filter, IdentityOf(s)}) > 0;
  }
  // Each matching session once with its highest QoS, and acl_check only if every matching
  // subscription of it has it; sorted by identity.
  Entries Match(std::string_view topic) const {
    std::map<Identity, Subscriber> best;
    for (const auto& [key, s] : subscriptions_) {
      if (FilterMatches(key.first, topic)) {
        auto [it, inserted] = best.try_emplace(key.second, s);
        it->second.qos = std::max(it->second.qos, s.qos);
        it->second.acl_check = it->second.acl_check && s.acl_check;
      }
    }
    Entries entries;
    for (const auto& [identity, s] : best) {
      entries.push_back({s.shard, s.session, s.generation, s.qos, s.acl_check});
    }
    return entries;
  }
  size_t size() const { return subscriptions_.size(); }
  // Every (filter, subscriber) held, for tearing down.
  std::vector<std::pair<std::string, Subscriber>> All() const {
    std::vector<std::pair<std::string, Subscriber>> all;
    for (const auto& [key, s] : subscriptions_) {
      all.emplace_back(key.first, s);
    }
    return all;
  }

 private:
  using Identity = std::tuple<uint16_t, uint32_t, uint32_t>;
  static Identity IdentityOf(Subscriber s) { return {s.shard, s.session, s.generation}; }

  std::map<std::pair<std::string, Identity>, Subscriber> subscriptions_;
};

}  // namespace ringmq::sub::reference

#endif  // RINGMQ_TESTS_SUB_BRUTE_FORCE_MATCHER_H_
