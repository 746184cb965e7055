// Proves that RetainedStore::ForEachMatch never allocates, for every kind of filter, including
// the deepest one and a walk of the whole store.
//
// This file replaces the global operator new, so it is its own executable
// (tests/retain/meson.build) rather than part of ringmq_unit_tests, where the replacement would
// apply to every test.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../common/counting_new.h"
#include "concurrent/epoch.h"
#include "message/message.h"
#include "mqtt/topic.h"
#include "retain/retained_store.h"

using alloc_counting::AllocationsDuring;

namespace ringmq::retain {
namespace {

using message::Message;
using message::MessageRef;

std::span<const uint8_t> Payload() {
  static constexpr char kPayload[] = "payload";
  return {reinterpret_cast<const uint8_t*>(kPayload), sizeof(kPayload) - 1};
}

// Guards the check itself: an allocation made while armed is counted.
TEST(RetainedStoreNoAllocTest, CounterSeesAllocations) {
  EXPECT_EQ(alloc_counting::AllocationsOfOneNew(), 1u);
}

TEST(RetainedStoreNoAllocTest, ForEachMatchNeverAllocates) {
  concurrent::EpochDomain domain(1);
  RetainedStore store(domain);
  domain.Online(0);
  for (int site = 0; site < 50; ++site) {
    for (int device = 0; device < 200; ++device) {
      const std::string topic =
          "site/" + std::to_string(site) + "/device/" + std::to_string(device) + "/temp";
      store.Set(MessageRef::Create(topic, Payload(), 1, true));
    }
  }
  store.Set(MessageRef::Create("$SYS/broker/uptime", Payload(), 0, true));
  std::string deep = "d";
  std::string deep_plus = "+";
  for (size_t level = 1; level < mqtt::kMaxTopicLevels; ++level) {
    deep += "/d";
    deep_plus += "/+";
  }
  store.Set(MessageRef::Create(deep, Payload(), 0, true));

  const std::vector<std::string> filters = {"site/7/device/42/temp",
                                            "site/+/device/42/temp",
                                            "site/7/device/+/temp",
                                            "site/7/#",
                                            "#",
                                            "+/+/+/+/+",
                                            "$SYS/#",
                                            "+/broker/#",
                                            deep,
                                            deep_plus,
                                            "d/#",
                                            "absent/+/x"};
  std::vector<size_t> counts(filters.size(), 0);
  const size_t allocations = AllocationsDuring([&] {
    for (size_t i = 0; i < filters.size(); ++i) {
      store.ForEachMatch(filters[i], [&counts, i](Message*) { ++counts[i]; });
    }
  });
  domain.Quiescent(0);
  EXPECT_EQ(allocations, 0u);
  // The walks did happen.
  EXPECT_EQ(counts, (std::vector<size_t>{1, 50, 200, 200, 10'001, 10'000, 1, 0, 1, 1, 1, 0}));
  domain.Offline(0);
}

}  // namespace
}  // namespace ringmq::retain
