#include "auth/password_hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>

#include "auth/scram.h"
#include "common/assert.h"

namespace ringmq::auth {
namespace {

// Splits "a$b$c" at '$' into at most `max` fields; false when there are more.
bool SplitDollar(std::string_view text, std::string_view* fields, size_t max, size_t* count) {
  *count = 0;
  while (true) {
    if (*count == max) return false;
    const size_t end = text.find('$');
    fields[(*count)++] = text.substr(0, end);
    if (end == std::string_view::npos) return true;
    text.remove_prefix(end + 1);
  }
}

bool DecodeSalt(std::string_view text, PasswordHash& hash, std::string* error) {
  std::optional<std::vector<uint8_t>> salt = Base64Decode(text);
  if (!salt || salt->empty() || salt->size() > kMaxSaltBytes) {
    *error = "salt is not base64 of 1 to 128 bytes";
    return false;
  }
  hash.salt = std::move(*salt);
  return true;
}

bool DecodeDigest(std::string_view text, PasswordHash& hash, std::string* error) {
  std::optional<std::vector<uint8_t>> digest = Base64Decode(text);
  if (!digest || digest->size() != kHashBytes) {
    *error = "hash is not base64 of 64 bytes";
    return false;
  }
  std::copy(digest->begin(), digest->end(), hash.hash.begin());
  return true;
}

bool ParseIterations(std::string_view digits, PasswordHash& hash, std::string* error) {
  const auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), hash.iterations);
  if (ec != std::errc() || end != digits.data() + digits.size() || hash.iterations < 1 ||
      hash.iterations > kMaxIterations) {
    *error = "iterations is not a number from 1 to 1000000";
    return false;
  }
  return true;
}

// StoredKey and ServerKey, 32 bytes each, into the two halves of hash.hash.
bool DecodeScramKeys(std::string_view stored, std::string_view server, PasswordHash& hash,
                     std::string* error) {
  const std::optional<std::vector<uint8_t>> stored_key = Base64Decode(stored);
  const std::optional<std::vector<uint8_t>> server_key = Base64Decode(server);
  if (!stored_key || stored_key->size() != scram::kKeyBytes || !server_key ||
      server_key->size() != scram::kKeyBytes) {
    *error = "StoredKey or ServerKey is not base64 of 32 bytes";
    return false;
  }
  std::copy(stored_key->begin(), stored_key->end(), hash.hash.begin());
  std::copy(server_key->begin(), server_key->end(), hash.hash.begin() + scram::kKeyBytes);
  return true;
}

constexpr std::string_view kScramTag = "scram-sha-256";
static_assert(2 * scram::kKeyBytes == kHashBytes, "StoredKey and ServerKey fill the hash");

}  // namespace


std::optional<PasswordHash> ParsePasswordHash(std::string_view text, std::string* error) {
  // "$7$101$salt$hash" splits into "", "7", "101", "salt", "hash".
  std::string_view fields[6];
  size_t count = 0;
  if (!SplitDollar(text, fields, 6, &count) || count < 4 || !fields[0].empty()) {
    *error = "password hash is not $6$salt$hash, $7$iterations$salt$hash or "
             "$scram-sha-256$iterations$salt$StoredKey$ServerKey";
    return std::nullopt;
  }
  PasswordHash hash;
  if (fields[1] == "6" && count == 4) {
    hash.kind = HashKind::kSha512;
    if (!DecodeSalt(fields[2], hash, error) || !DecodeDigest(fields[3], hash, error)) {
      return std::nullopt;
    }
    return hash;
  }
  if (fields[1] == "7" && count == 5) {
    hash.kind = HashKind::kPbkdf2Sha512;
    if (!ParseIterations(fields[2], hash, error) || !DecodeSalt(fields[3], hash, error) ||
        !DecodeDigest(fields[4], hash, error)) {
      return std::nullopt;
    }
    return hash;
  }
  if (fields[1] == kScramTag && count == 6) {
    hash.kind = HashKind::kScramSha256;
    if (!ParseIterations(fields[2], hash, error) || !DecodeSalt(fields[3], hash, error) ||
        !DecodeScramKeys(fields[4], fields[5], hash, error)) {
      return std::nullopt;
    }
    return hash;
  }
  *error = "unknown password hash type (only $6$, $7$ and $scram-sha-256$ are supported)";
  return std::nullopt;
}

std::string FormatPasswordHash(const PasswordHash& hash) {
  std::string out;
  switch (hash.kind) {
    case HashKind::kSha512:
      out = "$6$";
      break;
    case HashKind::kPbkdf2Sha512:
      out = "$7$" + std::to_string(hash.iterations) + "$";
      break;
    case HashKind::kScramSha256:
      out = "$" + std::string(kScramTag) + "$" + std::to_string(hash.iterations) + "$";
      break;
  }
  out += Base64Encode(hash.salt.data(), hash.salt.size());
  out += '$';
  if (hash.kind == HashKind::kScramSha256) {
    out += Base64Encode(hash.hash.data(), scram::kKeyBytes);
    out += '$';
    out += Base64Encode(hash.hash.data() + scram::kKeyBytes, scram::kKeyBytes);
    return out;
  }
  out += Base64Encode(hash.hash.data(), hash.hash.size());
  return out;
}

void ComputeHash(const PasswordHash& like, std::string_view password,
                 std::array<uint8_t, kHashBytes>& out) {
  if (like.kind == HashKind::kScramSha256) {
    const scram::ServerKeys keys = scram::DeriveKeys(password, like.salt, like.iterations);
    std::copy(keys.stored_key.begin(), keys.stored_key.end(), out.begin());
    std::copy(keys.server_key.begin(), keys.server_key.end(), out.begin() + scram::kKeyBytes);
    return;
  }
  if (like.kind == HashKind::kPbkdf2Sha512) {
    RINGMQ_ASSERT(like.iterations >= 1 && like.iterations <= kMaxIterations);
    const int ok = PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                                     like.salt.data(), static_cast<int>(like.salt.size()),
                                     static_cast<int>(like.iterations), EVP_sha512(),
                                     static_cast<int>(out.size()), out.data());
    RINGMQ_ASSERT(ok == 1);
    return;
  }
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  RINGMQ_ASSERT(context != nullptr);
  unsigned int length = 0;
  const bool ok = EVP_DigestInit_ex(context, EVP_sha512(), nullptr) == 1 &&
                  EVP_DigestUpdate(context, password.data(), password.size()) == 1 &&
                  EVP_DigestUpdate(context, like.salt.data(), like.salt.size()) == 1 &&
                  EVP_DigestFinal_ex(context, out.data(), &length) == 1;
  EVP_MD_CTX_free(context);
  RINGMQ_ASSERT(ok && length == out.size());
}

bool VerifyPassword(const PasswordHash& hash, std::string_view password) {
  std::array<uint8_t, kHashBytes> computed{};
  ComputeHash(hash, password, computed);
  return CRYPTO_memcmp(computed.data(), hash.hash.data(), kHashBytes) == 0;
}

std::optional<PasswordHash> NewPasswordHash(std::string_view password, uint32_t iterations) {
  PasswordHash hash;
  hash.kind = HashKind::kPbkdf2Sha512;
  hash.iterations = iterations;
  hash.salt.resize(kSaltBytes);
  if (RAND_bytes(hash.salt.data(), static_cast<int>(hash.salt.size())) != 1) return std::nullopt;
  ComputeHash(hash, password, hash.hash);
  return hash;
}

std::optional<PasswordHash> NewScramHash(std::string_view password, uint32_t iterations) {
  PasswordHash hash;
  hash.kind = HashKind::kScramSha256;
  hash.iterations = iterations;
  hash.salt.resize(scram::kDefaultSaltBytes);
  if (RAND_bytes(hash.salt.data(), static_cast<int>(hash.salt.size())) != 1) return std::nullopt;
  ComputeHash(hash, password, hash.hash);
  return hash;
}

}  // namespace ringmq::auth
