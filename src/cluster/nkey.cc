#include "cluster/nkey.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/base64.h"

namespace ringmq::cluster {
namespace {

constexpr uint8_t kPrefixSeed = 18 << 3;  // 'S'
constexpr uint8_t kPrefixUser = 20 << 3;  // 'U'
constexpr char kBase32Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr size_t kSeedBytes = 2 + 32 + 2;
constexpr size_t kSeedFileBytesMax = 64 * 1024;  // a .creds file is about 1 KB

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

void AppendCrc(std::vector<uint8_t>& bytes) {
  const uint16_t crc = NkeyCrc16(bytes);
  bytes.push_back(static_cast<uint8_t>(crc & 0xff));  // little-endian
  bytes.push_back(static_cast<uint8_t>(crc >> 8));
}

}  // namespace

uint16_t NkeyCrc16(std::span<const uint8_t> bytes) {
  uint16_t crc = 0;
  for (uint8_t byte : bytes) {
    crc ^= static_cast<uint16_t>(byte) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::string Base32Encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kBase32Alphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kBase32Alphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

bool Base32Decode(std::string_view text, std::string& out) {
  out.clear();
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z') {
      value = c - 'A';
    } else if (c >= '2' && c <= '7') {
      value = c - '2' + 26;
    } else {
      return false;
    }
    buffer = (buffer << 5) | static_cast<uint32_t>(value);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return (buffer & ((1u << bits) - 1)) == 0;  // the padding bits of the last character
}

std::string Base64UrlEncode(std::span<const uint8_t> bytes) {
  return base64::EncodeToString(bytes, base64::Alphabet::kUrl);
}

absl::StatusOr<Nkey> Nkey::FromSeed(std::string_view seed) {
  std::string raw;
  if (!Base32Decode(seed, raw) || raw.size() != kSeedBytes) {
    return absl::InvalidArgumentError("nkey seed: not a base32 seed of 36 bytes");
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(raw.data());
  const uint16_t crc = static_cast<uint16_t>(bytes[kSeedBytes - 2] | (bytes[kSeedBytes - 1] << 8));
  if (NkeyCrc16(std::span(bytes, kSeedBytes - 2)) != crc) {
    return absl::InvalidArgumentError("nkey seed: bad checksum");
  }
  const uint8_t type = static_cast<uint8_t>(((bytes[0] & 7) << 5) | ((bytes[1] & 0xf8) >> 3));
  if ((bytes[0] & 0xf8) != kPrefixSeed || type != kPrefixUser) {
    return absl::InvalidArgumentError("nkey seed: not a user seed (SU...)");
  }
  Nkey key;
  std::copy(bytes + 2, bytes + 34, key.seed_.begin());
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, key.seed_.data(), key.seed_.size()));
  uint8_t public_raw[32];
  size_t public_length = sizeof(public_raw);
  if (pkey == nullptr || EVP_PKEY_get_raw_public_key(pkey.get(), public_raw, &public_length) != 1 ||
      public_length != sizeof(public_raw)) {
    ERR_clear_error();
    return absl::InternalError("nkey seed: OpenSSL cannot derive the ed25519 public key");
  }
  std::vector<uint8_t> encoded{kPrefixUser};
  encoded.insert(encoded.end(), public_raw, public_raw + sizeof(public_raw));
  AppendCrc(encoded);
  key.public_key_ = Base32Encode(encoded);
  return key;
}

absl::StatusOr<Nkey> Nkey::FromFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(absl::StrCat("nkey seed file ", path, ": unreadable"));
  }
  std::string text(kSeedFileBytesMax + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(file.gcount()));
  if (text.size() > kSeedFileBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("nkey seed file ", path, ": over ", kSeedFileBytesMax, " bytes"));
  }
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::string_view trimmed = line;
    while (!trimmed.empty() && absl::ascii_isspace(static_cast<unsigned char>(trimmed.front()))) {
      trimmed.remove_prefix(1);
    }
    while (!trimmed.empty() && absl::ascii_isspace(static_cast<unsigned char>(trimmed.back()))) {
      trimmed.remove_suffix(1);
    }
    if (trimmed.size() < 2 || trimmed.substr(0, 2) != "SU") continue;
    absl::StatusOr<Nkey> key = FromSeed(trimmed);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("nkey seed file ", path, ": ", key.status().message()));
    }
    return key;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("nkey seed file ", path, ": no user seed (a line SU...)"));
}

std::string Nkey::Sign(std::string_view nonce) const {
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed_.data(), seed_.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  uint8_t signature[64];
  size_t length = sizeof(signature);
  // Ed25519 signs the message itself: no digest (RFC 8032 §5.1.6; EVP_DigestSign one-shot).
  if (pkey == nullptr || ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature, &length, reinterpret_cast<const uint8_t*>(nonce.data()),
                     nonce.size()) != 1) {
    ERR_clear_error();
    return {};
  }
  return Base64UrlEncode(std::span(signature, length));
}

}  // namespace ringmq::cluster
