#include "connect/client_id.h"

#include <sys/random.h>

#include <functional>

#include "common/assert.h"

namespace ringmq::connect {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

}  // namespace

uint32_t HomeShard(std::string_view client_id, uint32_t shard_count) {
  RINGMQ_ASSERT(shard_count > 0);
  return static_cast<uint32_t>(std::hash<std::string_view>{}(client_id) % shard_count);
}

AssignedClientIds::AssignedClientIds() {
  // 16 bytes: getrandom never returns short for requests up to 256 bytes once the pool is
  // initialized (it blocks until then, which is what an unpredictable id needs).
  const ssize_t got = getrandom(&key_, sizeof(key_), 0);
  RINGMQ_ASSERT(got == static_cast<ssize_t>(sizeof(key_)));
}

void AssignedClientIds::Draw(Candidate& id) {
  const uint64_t counter = counter_++;
  size_t at = kAssignedClientIdPrefix.copy(id.data(), kAssignedClientIdPrefix.size());
  for (uint8_t block = 0; block < kAssignedClientIdRandomBytes / 8; ++block) {
    // Distinct (counter, block) inputs: each output word comes from its own PRF input.
    uint64_t word = auth::SipHash24(key_, &counter, sizeof(counter), &block, sizeof(block));
    for (int nibble = 0; nibble < 16; ++nibble, word >>= 4) id[at++] = kHexDigits[word & 0xf];
  }
  RINGMQ_ASSERT(at == kAssignedClientIdLength);
}

std::string AssignedClientIds::Next(uint32_t shard, uint32_t shard_count) {
  RINGMQ_ASSERT(shard < shard_count);
  Candidate id;
  Draw(id);
  const uint64_t max_draws = uint64_t{kMaxDrawsPerShard} * shard_count;
  for (uint64_t draws = 1;
       draws < max_draws && HomeShard(std::string_view(id.data(), id.size()), shard_count) != shard;
       ++draws) {
    Draw(id);
  }
  return std::string(id.data(), id.size());
}

}  // namespace ringmq::connect
