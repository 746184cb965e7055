// Password hashes in the format mosquitto_passwd writes, so an existing Mosquitto password file
// can be used as is (docs/auth.md):
//   $7$<iterations>$<salt base64>$<hash base64>   PBKDF2-HMAC-SHA512, 64-byte derived key
//   $6$<salt base64>$<hash base64>                SHA-512(password || salt)
// and one of ringmq's own, for users who log in with SCRAM-SHA-256 (auth/scram.h) as well as
// with a plain password (docs/auth.md, "SCRAM-SHA-256"):
//   $scram-sha-256$<iterations>$<salt base64>$<StoredKey base64>$<ServerKey base64>
// where StoredKey and ServerKey are RFC 5802's, 32 bytes each, from PBKDF2-HMAC-SHA256. The
// password itself cannot be recovered from them; a plain password is checked by deriving
// StoredKey and ServerKey from it and comparing. Mosquitto does not read this kind.
// Base64 is the standard alphabet with '=' padding (what OpenSSL's encoder produces). The salt
// is raw bytes after decoding (mosquitto_passwd uses 12 random bytes); the hash is 64 bytes
// ($scram-sha-256$: StoredKey then ServerKey).
//
// Thread safety: stateless functions and plain values; safe from any thread.
#ifndef RINGMQ_AUTH_PASSWORD_HASH_H_
#define RINGMQ_AUTH_PASSWORD_HASH_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base64.h"

namespace ringmq::auth {

// What mosquitto_passwd 2.0 writes by default (PW_DEFAULT_ITERATIONS there): the same here so
// the files the two tools write cannot be told apart.
inline constexpr uint32_t kDefaultIterations = 101;
// RFC 7677 §4 asks for at least 4096 iterations of PBKDF2-HMAC-SHA256.
inline constexpr uint32_t kDefaultScramIterations = 4096;
inline constexpr size_t kSaltBytes = 12;
inline constexpr size_t kHashBytes = 64;  // SHA-512 digest / PBKDF2 key length
// Bounds on what a file may ask for: a salt longer than a SHA-512 block buys nothing, and the
// iteration count is the CPU cost of every verification (docs/auth.md, "Cost bound").
inline constexpr size_t kMaxSaltBytes = 128;
inline constexpr uint32_t kMaxIterations = 1'000'000;

enum class HashKind : uint8_t { kSha512 = 6, kPbkdf2Sha512 = 7, kScramSha256 = 'S' };

struct PasswordHash {
  HashKind kind = HashKind::kPbkdf2Sha512;
  uint32_t iterations = 0;  // kPbkdf2Sha512 and kScramSha256
  std::vector<uint8_t> salt;
  // kScramSha256: StoredKey in bytes 0..31, ServerKey in bytes 32..63.
  std::array<uint8_t, kHashBytes> hash{};
  bool operator==(const PasswordHash&) const = default;
};

// Parses the part after "user:". On error returns nullopt and sets `*error` to a short reason.
std::optional<PasswordHash> ParsePasswordHash(std::string_view text, std::string* error);

// The text mosquitto_passwd writes for `hash` (the part after "user:").
std::string FormatPasswordHash(const PasswordHash& hash);

// Computes the digest of `password` with the salt and iterations of `like` into `out`.
void ComputeHash(const PasswordHash& like, std::string_view password,
                 std::array<uint8_t, kHashBytes>& out);

// True when `password` hashes to `hash` (constant-time comparison: CRYPTO_memcmp).
bool VerifyPassword(const PasswordHash& hash, std::string_view password);

// A new $7$ hash of `password` with a fresh random salt (RAND_bytes). nullopt when the system
// cannot provide random bytes.
std::optional<PasswordHash> NewPasswordHash(std::string_view password,
                                            uint32_t iterations = kDefaultIterations);

// A new $scram-sha-256$ entry for `password` with a fresh 16-byte random salt. nullopt when the
// system cannot provide random bytes.
std::optional<PasswordHash> NewScramHash(std::string_view password,
                                         uint32_t iterations = kDefaultScramIterations);

// Standard base64 with '=' padding (common/base64.h), in the forms authentication uses.
inline std::string Base64Encode(const uint8_t* data, size_t size) {
  return base64::EncodeToString({data, size});
}
inline std::optional<std::vector<uint8_t>> Base64Decode(std::string_view text) {
  return base64::DecodeToVector(text);
}

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_PASSWORD_HASH_H_
