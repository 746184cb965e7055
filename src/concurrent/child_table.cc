#include "concurrent/child_table.h"

#include <random>

namespace ringmq::concurrent {
namespace {

// The MurmurHash3 finalizer, to derive the second hash key from the seed.
uint64_t Mix(uint64_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdULL;
  value ^= value >> 33;
  value *= 0xc4ceb9fe1a85ec53ULL;
  value ^= value >> 33;
  return value;
}

}  // namespace

LevelHasher::LevelHasher(uint64_t seed)
    : seed_(seed), key_(Mix(seed ^ 0x9e3779b97f4a7c15ULL) | 1) {}

uint64_t LevelHasher::RandomSeed() {
  std::random_device device;
  return (uint64_t{device()} << 32) ^ device();
}

}  // namespace ringmq::concurrent
