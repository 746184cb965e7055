#include "auth/siphash.h"

#include <bit>
#include <cstring>

namespace ringmq::auth {
namespace {

struct State {
  uint64_t v0, v1, v2, v3;

  void Round() {
    v0 += v1;
    v1 = std::rotl(v1, 13);
    v1 ^= v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = std::rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = std::rotl(v1, 17);
    v1 ^= v2;
    v2 = std::rotl(v2, 32);
  }

  void Compress(uint64_t m) {
    v3 ^= m;
    Round();
    Round();
    v0 ^= m;
  }
};

// Feeds bytes into 8-byte little-endian words.
struct Feeder {
  State* state;
  uint8_t pending[8] = {};
  size_t pending_size = 0;
  uint64_t total = 0;

  void Feed(const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    total += size;
    for (size_t i = 0; i < size; ++i) {
      pending[pending_size++] = bytes[i];
      if (pending_size == 8) {
        state->Compress(Word(8));
        pending_size = 0;
      }
    }
  }

  uint64_t Word(size_t size) const {
    uint64_t word = 0;
    for (size_t i = 0; i < size; ++i) word |= uint64_t{pending[i]} << (8 * i);
    return word;
  }
};

}  // namespace

uint64_t SipHash24(const SipKey& key, const void* a, size_t a_size, const void* b, size_t b_size,
                   const void* c, size_t c_size) {
  State state{key.k0 ^ 0x736f6d6570736575ULL, key.k1 ^ 0x646f72616e646f6dULL,
              key.k0 ^ 0x6c7967656e657261ULL, key.k1 ^ 0x7465646279746573ULL};
  Feeder feeder{&state};
  feeder.Feed(a, a_size);
  if (b_size != 0) feeder.Feed(b, b_size);
  if (c_size != 0) feeder.Feed(c, c_size);
  // Last word: the remaining bytes and the message length modulo 256 in the top byte.
  state.Compress(feeder.Word(feeder.pending_size) | (feeder.total & 0xff) << 56);
  state.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) state.Round();
  return state.v0 ^ state.v1 ^ state.v2 ^ state.v3;
}

}  // namespace ringmq::auth
