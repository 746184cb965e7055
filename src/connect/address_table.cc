#include "connect/address_table.h"

#include <netinet/in.h>

#include <cstring>
#include <random>

#include "common/assert.h"

namespace ringmq::connect {
namespace {

// SplitMix64 finalizer over the seeded key: cheap and well mixed, and the per-process seed
// keeps a remote client from choosing addresses that collide on purpose.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t RandomSeed() {
  std::random_device device;
  return (uint64_t{device()} << 32) | device();
}

}  // namespace

AddressTable::AddressTable() : seed_(RandomSeed()), slots_(new Slot[kSlots]) {}

uint32_t AddressTable::SlotOf(const sockaddr_storage& address) const {
  uint64_t key = 0;
  if (address.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
    key = uint64_t{v4.sin_addr.s_addr} | (uint64_t{4} << 56);
  } else if (address.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
      uint32_t v4 = 0;
      std::memcpy(&v4, v6.sin6_addr.s6_addr + 12, sizeof(v4));
      key = uint64_t{v4} | (uint64_t{4} << 56);
    } else {
      std::memcpy(&key, v6.sin6_addr.s6_addr, sizeof(key));  // the /64 prefix
      key = Mix(key);  // keep the IPv6 keys apart from the tagged IPv4 ones
    }
  } else {
    return kNoSlot;
  }
  return static_cast<uint32_t>(Mix(key ^ seed_) & (kSlots - 1));
}

uint32_t AddressTable::SlotOfPeer(int fd) const {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return kNoSlot;
  return SlotOf(address);
}

uint32_t AddressTable::Open(uint32_t slot) {
  RINGMQ_ASSERT(slot < kSlots);
  return slots_[slot].connections.fetch_add(1, std::memory_order_relaxed) + 1;
}

void AddressTable::Close(uint32_t slot) {
  RINGMQ_ASSERT(slot < kSlots);
  [[maybe_unused]] const uint32_t before =
      slots_[slot].connections.fetch_sub(1, std::memory_order_relaxed);
  RINGMQ_ASSERT(before > 0);
}

uint32_t AddressTable::Connections(uint32_t slot) const {
  RINGMQ_ASSERT(slot < kSlots);
  return slots_[slot].connections.load(std::memory_order_relaxed);
}

uint32_t AddressTable::CountConnect(uint32_t slot, uint32_t now_s) {
  RINGMQ_ASSERT(slot < kSlots);
  std::atomic<uint64_t>& window = slots_[slot].window;
  uint64_t seen = window.load(std::memory_order_relaxed);
  while (true) {
    const auto second = static_cast<uint32_t>(seen >> 32);
    const auto count = static_cast<uint32_t>(seen);
    // A later second restarts the window at 1. A shard whose clock reads a little behind
    // another's counts into the newer window rather than resetting it. The count saturates.
    const bool same_window = now_s <= second && seen != 0;
    const uint32_t next = same_window ? (count == UINT32_MAX ? count : count + 1) : 1;
    const uint64_t desired = (uint64_t{same_window ? second : now_s} << 32) | next;
    if (window.compare_exchange_weak(seen, desired, std::memory_order_relaxed)) return next;
  }
}

}  // namespace ringmq::connect
