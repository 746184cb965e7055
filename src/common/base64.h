// Base64 (RFC 4648): the one encoder and decoder of ringmq. Users: MQTT 5.0 properties as NATS
// headers (cluster/mqtt5_headers), JetStream message-get replies (cluster/session_record),
// nkey signatures (cluster/nkey: the URL alphabet of §5, unpadded), password hashes and SCRAM
// (auth/).
//
// Encode writes into a caller's buffer (no allocation: the cluster's per-message header path
// uses it); the *ToString/*ToVector forms allocate, for configuration and authentication.
// Decode accepts the standard alphabet with '=' padding only (§4): a length that is a multiple
// of 4, padding only as the last one or two characters; anything else is refused (no blanks,
// no line breaks, no URL alphabet).
//
// Thread safety: pure functions.
#ifndef RINGMQ_COMMON_BASE64_H_
#define RINGMQ_COMMON_BASE64_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringmq::base64 {

enum class Alphabet : uint8_t {
  kStandard,  // RFC 4648 §4: A-Z a-z 0-9 + /, padded with '='
  kUrl,       // RFC 4648 §5: A-Z a-z 0-9 - _, unpadded (§3.2: "when explicitly stated")
};

// Characters Encode writes for `size` bytes.
constexpr size_t EncodedSize(size_t size, Alphabet alphabet = Alphabet::kStandard) {
  return alphabet == Alphabet::kStandard ? (size + 2) / 3 * 4 : (size * 4 + 2) / 3;
}
// Room Decode needs for `text_size` characters (the decoded size is at most this).
constexpr size_t DecodedSizeMax(size_t text_size) { return text_size / 4 * 3; }

// Writes EncodedSize(bytes.size(), alphabet) characters to `out`.
void Encode(std::span<const uint8_t> bytes, char* out, Alphabet alphabet = Alphabet::kStandard);
std::string EncodeToString(std::span<const uint8_t> bytes,
                           Alphabet alphabet = Alphabet::kStandard);

// Standard alphabet, padded. `out` has room for DecodedSizeMax(text.size()) bytes; `size` is
// set to the bytes written. False (out and size unspecified) when `text` is not base64.
bool Decode(std::string_view text, uint8_t* out, size_t& size);
std::optional<std::vector<uint8_t>> DecodeToVector(std::string_view text);

}  // namespace ringmq::base64

#endif  // RINGMQ_COMMON_BASE64_H_
