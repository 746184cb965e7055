// Unit tests of ringmq-bench's client placement over several ports (bench/loadgen/placement.h):
// with a cluster's nodes as ports, every pairs message and every fanin message crosses nodes,
// and clients spread evenly.
#include "placement.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace ringmq::bench {
namespace {

TEST(Placement, OnePortTakesEveryClient) {
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(PortIndex(1, PlacedAs::kSubscriberOrOther, i), 0u);
    EXPECT_EQ(PortIndex(1, PlacedAs::kPublisher, i), 0u);
    EXPECT_EQ(PortIndex(1, PlacedAs::kFaninPublisher, i), 0u);
  }
}

TEST(Placement, SubscribersAndOtherClientsRoundRobin) {
  const std::vector<size_t> want = {0, 1, 2, 0, 1, 2, 0};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(PortIndex(3, PlacedAs::kSubscriberOrOther, i), want[i]) << i;
  }
}

TEST(Placement, PairsPublisherIsNeverOnItsSubscribersPort) {
  for (size_t ports = 2; ports <= 5; ++ports) {
    for (size_t i = 0; i < 50; ++i) {
      const size_t pub = PortIndex(ports, PlacedAs::kPublisher, i);
      EXPECT_LT(pub, ports);
      EXPECT_NE(pub, PortIndex(ports, PlacedAs::kSubscriberOrOther, i)) << ports << " " << i;
    }
  }
}

TEST(Placement, FaninPublishersAvoidTheFirstPortAndSpreadOverTheOthers) {
  std::vector<size_t> count(3, 0);
  for (size_t i = 0; i < 100; ++i) ++count[PortIndex(3, PlacedAs::kFaninPublisher, i)];
  EXPECT_EQ(count[0], 0u);
  EXPECT_EQ(count[1], 50u);
  EXPECT_EQ(count[2], 50u);
  // Two ports: every fanin publisher on the second.
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(PortIndex(2, PlacedAs::kFaninPublisher, i), 1u);
}

}  // namespace
}  // namespace ringmq::bench
