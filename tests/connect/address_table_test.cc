#include "connect/address_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ringmq::connect {
namespace {

sockaddr_storage V4(const char* text) {
  sockaddr_storage storage{};
  auto& v4 = reinterpret_cast<sockaddr_in&>(storage);
  v4.sin_family = AF_INET;
  EXPECT_EQ(inet_pton(AF_INET, text, &v4.sin_addr), 1) << text;
  return storage;
}

sockaddr_storage V6(const char* text) {
  sockaddr_storage storage{};
  auto& v6 = reinterpret_cast<sockaddr_in6&>(storage);
  v6.sin6_family = AF_INET6;
  EXPECT_EQ(inet_pton(AF_INET6, text, &v6.sin6_addr), 1) << text;
  return storage;
}

TEST(AddressTable, SameAddressSameSlotWhateverThePort) {
  AddressTable table;
  sockaddr_storage a = V4("10.0.0.1");
  sockaddr_storage b = V4("10.0.0.1");
  reinterpret_cast<sockaddr_in&>(b).sin_port = htons(4242);
  EXPECT_EQ(table.SlotOf(a), table.SlotOf(b));
  EXPECT_LT(table.SlotOf(a), AddressTable::kSlots);
}

TEST(AddressTable, Ipv4MappedIpv6CountsAsIpv4) {
  AddressTable table;
  EXPECT_EQ(table.SlotOf(V4("192.0.2.7")), table.SlotOf(V6("::ffff:192.0.2.7")));
}

TEST(AddressTable, Ipv6SharesSlotWithinSlash64Only) {
  AddressTable table;
  EXPECT_EQ(table.SlotOf(V6("2001:db8:1:2::1")), table.SlotOf(V6("2001:db8:1:2:ffff::9")));
  // Another /64: a different key. (A collision is possible in principle; these two were not
  // chosen to collide and the seeded hash makes a fixed pair colliding a 1/65536 event, so
  // compare many prefixes instead of one.)
  std::set<uint32_t> slots;
  for (int i = 0; i < 256; ++i) {
    const std::string text = "2001:db8:" + std::to_string(i) + "::1";
    slots.insert(table.SlotOf(V6(text.c_str())));
  }
  EXPECT_GT(slots.size(), 250u);
}

TEST(AddressTable, DistinctIpv4AddressesSpreadOverSlots) {
  AddressTable table;
  std::set<uint32_t> slots;
  for (int i = 0; i < 1000; ++i) {
    const std::string text = "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    slots.insert(table.SlotOf(V4(text.c_str())));
  }
  EXPECT_GT(slots.size(), 980u);  // a few collisions among 1000 in 65536 slots are expected
}

TEST(AddressTable, OtherFamiliesHaveNoSlot) {
  AddressTable table;
  sockaddr_storage unix_address{};
  unix_address.ss_family = AF_UNIX;
  EXPECT_EQ(table.SlotOf(unix_address), AddressTable::kNoSlot);
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  EXPECT_EQ(table.SlotOfPeer(fds[0]), AddressTable::kNoSlot);
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(table.SlotOfPeer(-1), AddressTable::kNoSlot);
}

TEST(AddressTable, OpenCloseCounts) {
  AddressTable table;
  const uint32_t slot = table.SlotOf(V4("10.0.0.2"));
  EXPECT_EQ(table.Connections(slot), 0u);
  EXPECT_EQ(table.Open(slot), 1u);
  EXPECT_EQ(table.Open(slot), 2u);
  table.Close(slot);
  EXPECT_EQ(table.Connections(slot), 1u);
  table.Close(slot);
  EXPECT_EQ(table.Connections(slot), 0u);
}

TEST(AddressTable, ConnectWindowCountsPerSecondAndRestarts) {
  AddressTable table;
  const uint32_t slot = table.SlotOf(V4("10.0.0.3"));
  EXPECT_EQ(table.CountConnect(slot, 100), 1u);
  EXPECT_EQ(table.CountConnect(slot, 100), 2u);
  EXPECT_EQ(table.CountConnect(slot, 100), 3u);
  EXPECT_EQ(table.CountConnect(slot, 101), 1u);  // a new second
  EXPECT_EQ(table.CountConnect(slot, 100), 2u);  // a lagging clock joins the newer window
  EXPECT_EQ(table.CountConnect(slot, 105), 1u);
}

TEST(AddressTable, SecondZeroIsAWindowToo) {
  AddressTable table;
  const uint32_t slot = table.SlotOf(V4("10.0.0.4"));
  EXPECT_EQ(table.CountConnect(slot, 0), 1u);
  EXPECT_EQ(table.CountConnect(slot, 0), 2u);
}

TEST(AddressTable, ConcurrentOpensAndConnectsAreExact) {
  AddressTable table;
  const uint32_t slot = table.SlotOf(V4("10.0.0.5"));
  constexpr int kThreads = 4;
  constexpr int kEach = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        table.Open(slot);
        table.CountConnect(slot, 7);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(table.Connections(slot), uint32_t{kThreads * kEach});
  EXPECT_EQ(table.CountConnect(slot, 7), uint32_t{kThreads * kEach + 1});
}

}  // namespace
}  // namespace ringmq::connect
