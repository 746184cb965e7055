#include "cluster/nkey.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <memory>
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

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

std::string_view TrimWhitespace(std::string_view text) {
  while (!text.empty() && absl::ascii_isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

// A .creds marker line: at least three dashes, any text, at least three dashes.
bool IsMarkerLine(std::string_view line) {
  return line.size() >= 6 && line.substr(0, 3) == "---" && line.substr(line.size() - 3) == "---";
}

// A block's value: one token of [A-Za-z0-9_.=-] (the class NATS clients accept).
bool IsBlockValue(std::string_view line) {
  if (line.empty()) return false;
  for (const char c : line) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' &&
        c != '=') {
      return false;
    }
  }
  return true;
}

// A JWT (RFC 7519 §3, JWS compact serialization RFC 7515 §7.1): three non-empty base64url
// parts joined by dots; '=' only as padding at a part's end (the NATS jwt library also decodes
// padded parts).
absl::Status CheckUserJwt(std::string_view jwt) {
  if (jwt.size() > kUserJwtBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("the user JWT is over ", kUserJwtBytesMax, " bytes"));
  }
  int parts = 0;
  size_t start = 0;
  while (true) {
    const size_t dot = jwt.find('.', start);
    std::string_view part = jwt.substr(start, dot == std::string_view::npos ? dot : dot - start);
    ++parts;
    while (!part.empty() && part.back() == '=') part.remove_suffix(1);
    if (part.empty()) return absl::InvalidArgumentError("the user JWT has an empty part");
    for (const char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
        return absl::InvalidArgumentError("the user JWT is not base64url (RFC 7515 §7.1)");
      }
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (parts != 3) {
    return absl::InvalidArgumentError("the user JWT is not three parts header.claims.signature");
  }
  return absl::OkStatus();
}

// The value of each decorated block of `text`, in order, at most `max` (the rules in nkey.h).
// Lines are bounded by the caller's file bound; the loop visits each line once.
absl::Status FindBlocks(std::string_view text, size_t max, std::vector<std::string_view>& values,
                        bool& any_marker) {
  enum class Expect { kMarker, kValue, kClose } expect = Expect::kMarker;
  size_t line_number = 0;
  size_t open_line = 0;
  std::string_view value;
  any_marker = false;
  while (!text.empty() && values.size() < max) {
    const size_t end = text.find('\n');
    const std::string_view line = TrimWhitespace(text.substr(0, end));  // CR is white space
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    switch (expect) {
      case Expect::kMarker:
        if (IsMarkerLine(line)) {
          any_marker = true;
          open_line = line_number;
          expect = Expect::kValue;
        }
        break;
      case Expect::kValue:
        if (!IsBlockValue(line)) {
          return absl::InvalidArgumentError(absl::StrCat("the block opened on line ", open_line,
                                                         " has no value line of [A-Za-z0-9_.=-]"));
        }
        value = line;
        expect = Expect::kClose;
        break;
      case Expect::kClose:
        if (!IsMarkerLine(line)) {
          return absl::InvalidArgumentError(absl::StrCat("the block opened on line ", open_line,
                                                         " is not closed by a line ---...---"));
        }
        values.push_back(value);
        expect = Expect::kMarker;
        break;
    }
  }
  if (expect != Expect::kMarker) {
    return absl::InvalidArgumentError(
        absl::StrCat("the block opened on line ", open_line, " is cut short"));
  }
  return absl::OkStatus();
}

absl::StatusOr<UserCredentials> ReadCredentials(const std::string& path, const char* what);

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
  OPENSSL_cleanse(raw.data(), raw.size());
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
  absl::StatusOr<UserCredentials> credentials = ReadCredentials(path, "nkey seed file");
  if (!credentials.ok()) return credentials.status();
  return std::move(credentials->nkey);
}

absl::StatusOr<UserCredentials> ParseCredentials(std::string_view text) {
  std::vector<std::string_view> blocks;
  bool any_marker = false;
  if (absl::Status found = FindBlocks(text, 2, blocks, any_marker); !found.ok()) return found;
  std::string_view jwt;
  std::string_view seed;
  if (blocks.size() == 2) {
    jwt = blocks[0];
    seed = blocks[1];
  } else if (blocks.size() == 1 && blocks[0].front() == 'S') {
    seed = blocks[0];  // a decorated seed alone
  } else if (blocks.size() == 1) {
    return absl::InvalidArgumentError("a JWT block but no USER NKEY SEED block after it");
  } else if (any_marker) {
    return absl::InvalidArgumentError("no complete block");
  } else {
    // A plain seed file: the first line that starts with "SU".
    for (size_t start = 0; start < text.size();) {
      const size_t end = std::min(text.find('\n', start), text.size());
      const std::string_view line = TrimWhitespace(text.substr(start, end - start));
      start = end + 1;
      if (line.substr(0, 2) == "SU") {
        seed = line;
        break;
      }
    }
    if (seed.empty()) return absl::InvalidArgumentError("no user seed (a line SU...)");
  }
  if (!jwt.empty()) {
    if (absl::Status checked = CheckUserJwt(jwt); !checked.ok()) return checked;
  }
  absl::StatusOr<Nkey> key = Nkey::FromSeed(seed);
  if (!key.ok()) return key.status();
  return UserCredentials{.jwt = std::string(jwt), .nkey = std::move(*key)};
}

absl::StatusOr<UserCredentials> ReadCredentialsFile(const std::string& path) {
  return ReadCredentials(path, "credentials file");
}

namespace {

absl::StatusOr<UserCredentials> ReadCredentials(const std::string& path, const char* what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": unreadable"));
  }
  std::string text(kCredentialsFileBytesMax + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(file.gcount()));
  if (text.size() > kCredentialsFileBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": over ", kCredentialsFileBytesMax, " bytes"));
  }
  absl::StatusOr<UserCredentials> credentials = ParseCredentials(text);
  // The text holds the seed: wipe it before the buffer goes back to the allocator.
  OPENSSL_cleanse(text.data(), text.size());
  if (!credentials.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": ", credentials.status().message()));
  }
  return credentials;
}

}  // namespace

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
