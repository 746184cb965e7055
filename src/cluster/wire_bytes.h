// Big-endian integers appended to a byte string: the binary formats ringmq nodes send each
// other (session_state.h, batch.h) write their lengths and keys with these. One definition for
// every such format (and for unity builds, which compile several .cc files as one).
//
// Thread safety: pure functions on the caller's string.
#ifndef RINGMQ_CLUSTER_WIRE_BYTES_H_
#define RINGMQ_CLUSTER_WIRE_BYTES_H_

#include <cstdint>
#include <string>

namespace ringmq::cluster {

inline void PutU16(std::string& out, uint16_t value) {
  const char bytes[2] = {static_cast<char>(value >> 8), static_cast<char>(value)};
  out.append(bytes, 2);
}

inline void PutU32(std::string& out, uint32_t value) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                         static_cast<char>(value >> 8), static_cast<char>(value)};
  out.append(bytes, 4);
}

inline void PutU64(std::string& out, uint64_t value) {
  PutU32(out, static_cast<uint32_t>(value >> 32));
  PutU32(out, static_cast<uint32_t>(value & 0xFFFFFFFF));
}

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_WIRE_BYTES_H_
