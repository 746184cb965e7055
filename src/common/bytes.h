// Views between text and bytes. MQTT strings and payloads travel as bytes; the codec exposes
// them as std::string_view, messages as byte spans. Neither function copies.
//
// Thread safety: stateless.
#ifndef RINGMQ_COMMON_BYTES_H_
#define RINGMQ_COMMON_BYTES_H_

#include <cstdint>
#include <span>
#include <string_view>

namespace ringmq {

inline std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

inline std::string_view AsText(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace ringmq

#endif  // RINGMQ_COMMON_BYTES_H_
