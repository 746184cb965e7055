// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a keyed hash
// whose outputs an attacker who does not know the key cannot predict or make collide. Used to
// key the per-shard cache of verified credentials (auth/authenticator.h).
//
// Thread safety: a pure function.
#ifndef RINGMQ_AUTH_SIPHASH_H_
#define RINGMQ_AUTH_SIPHASH_H_

#include <cstddef>
#include <cstdint>

namespace ringmq::auth {

struct SipKey {
  uint64_t k0 = 0;
  uint64_t k1 = 0;
};

// SipHash-2-4 of the concatenation of the parts, with 64-bit output. The parts are hashed as
// one message: SipHash(key, "ab") == SipHash(key, "a", "b").
uint64_t SipHash24(const SipKey& key, const void* a, size_t a_size, const void* b = nullptr,
                   size_t b_size = 0, const void* c = nullptr, size_t c_size = 0);

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_SIPHASH_H_
