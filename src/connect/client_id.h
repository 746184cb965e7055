// Client identifiers: which shard serves an id (its home shard) and the ids the server assigns
// to clients that send an empty one (MQTT-3.1.3-6).
//
// Assigned ids have the form kAssignedClientIdPrefix + 32 lowercase hex digits: 128 bits from a
// per-shard pseudo-random function, SipHash-2-4 (a PRF, auth/siphash.h) in counter mode under a
// 128-bit key read from getrandom(2) when the generator is made. Without the key the next id
// cannot be derived from earlier ones, so no client can guess an id to take over (MQTT-3.1.4-2);
// distinct counters give distinct PRF inputs, so two ids collide only by a 128-bit accident.
// Ids are drawn until one's home shard is the shard that assigns it (rejection sampling): the
// connection is then served where it was accepted, like before, and the id is registered in
// the session map of its home shard like any other id, so every live id is in exactly one map.
// Cost: on average `shard_count` draws (two SipHash-2-4 blocks, 32 hex digits and one
// std::hash of 44 bytes each, no allocation; about 0.15 µs measured on the 2-core development
// machine), e.g. about 1 µs per empty-id CONNECT with 8 shards and 10 µs with 64, in exchange
// for no hand-off (a mailbox record, an fd move, a second decode and a loop iteration on each
// shard) and a connection served where it was accepted; bounded by
// kMaxDrawsPerShard x shard_count, past which (probability below e^-64) the last id drawn is
// used and the connection is handed off to that id's home like any other.
// A 3.1.x client may not claim an id of the assigned form: admission refuses any client id
// starting with kAssignedClientIdPrefix (CONNACK 0x02, client_id_reserved). A 5.0 client may,
// since it learns its assigned id from the CONNACK and comes back with it (5.0:MQTT-3.2.2-16);
// the ids' 128 random bits are what keep another client from claiming one.
//
// Thread safety: HomeShard is a pure function. An AssignedClientIds is used by one shard only.
#ifndef RINGMQ_CONNECT_CLIENT_ID_H_
#define RINGMQ_CONNECT_CLIENT_ID_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/siphash.h"

namespace ringmq::connect {

// The shard whose session map holds `client_id` (every shard computes the same answer).
uint32_t HomeShard(std::string_view client_id, uint32_t shard_count);

inline constexpr std::string_view kAssignedClientIdPrefix = "ringmq-auto-";
inline constexpr size_t kAssignedClientIdRandomBytes = 16;
inline constexpr size_t kAssignedClientIdLength =
    kAssignedClientIdPrefix.size() + 2 * kAssignedClientIdRandomBytes;

// True for ids of the assigned form, which 3.1.x clients may not send (see above).
inline bool HasAssignedClientIdPrefix(std::string_view client_id) {
  return client_id.starts_with(kAssignedClientIdPrefix);
}

class AssignedClientIds {
 public:
  static constexpr uint32_t kMaxDrawsPerShard = 64;

  // Keyed from getrandom(2); asserts if the kernel cannot provide random bytes (an assigned id
  // that can be predicted must not be handed out).
  AssignedClientIds();
  // A fixed key: for tests only.
  explicit AssignedClientIds(const auth::SipKey& key) : key_(key) {}

  // A new id whose HomeShard is `shard` (unless the draw bound was reached, see above).
  std::string Next(uint32_t shard, uint32_t shard_count);

  // Draws made so far (each one a candidate id), for tests of the cost.
  uint64_t draws() const { return counter_; }

 private:
  using Candidate = std::array<char, kAssignedClientIdLength>;
  // Writes the next candidate id into `id` (no allocation: most candidates are rejected).
  void Draw(Candidate& id);

  auth::SipKey key_;
  uint64_t counter_ = 0;
};

}  // namespace ringmq::connect

#endif  // RINGMQ_CONNECT_CLIENT_ID_H_
