#include "auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <optional>
#include <vector>

#include "auth/password_hash.h"
#include "common/assert.h"

namespace ringmq::auth::scram {
namespace {

// The value of "<name>=value" at the start of `text` up to the next ',' (or the end); advances
// `text` past the value. nullopt when `text` does not start with "<name>=".
std::optional<std::string_view> TakeAttribute(std::string_view& text, char name) {
  if (text.size() < 2 || text[0] != name || text[1] != '=') return std::nullopt;
  text.remove_prefix(2);
  const size_t end = text.find(',');
  const std::string_view value = text.substr(0, end);
  text.remove_prefix(end == std::string_view::npos ? text.size() : end);
  return value;
}

// RFC 5802 §7: saslname = 1*(value-safe-char / "=2C" / "=3D"); value-safe-char excludes NUL,
// ',' and '='.
bool IsSaslName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '\0') return false;
    if (name[i] != '=') continue;
    const std::string_view escape = name.substr(i + 1, 2);
    if (escape != "2C" && escape != "3D") return false;
    i += 2;
  }
  return true;
}

}  // namespace

std::string_view ParseErrorName(ParseError error) {
  switch (error) {
    case ParseError::kNone:
      return "none";
    case ParseError::kTooLong:
      return "message too long";
    case ParseError::kBadGs2Header:
      return "bad gs2 header";
    case ParseError::kChannelBindingRequired:
      return "channel binding not supported";
    case ParseError::kAuthzidUnsupported:
      return "authorization identity not supported";
    case ParseError::kMandatoryExtension:
      return "mandatory extension not supported";
    case ParseError::kBadUserName:
      return "bad user name";
    case ParseError::kBadNonce:
      return "bad nonce";
    case ParseError::kBadChannelBinding:
      return "bad channel binding attribute";
    case ParseError::kBadProof:
      return "bad proof attribute";
  }
  return "unknown";
}

bool IsNonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (const char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

ParseError ParseClientFirst(std::string_view message, ClientFirst* out) {
  RINGMQ_ASSERT(out != nullptr);
  if (message.size() > kMaxMessageBytes) return ParseError::kTooLong;
  if (message.empty()) return ParseError::kBadGs2Header;
  if (message[0] == 'p') return ParseError::kChannelBindingRequired;
  if ((message[0] != 'n' && message[0] != 'y') || message.size() < 3 || message[1] != ',') {
    return ParseError::kBadGs2Header;
  }
  if (message.substr(2, 2) == "a=") return ParseError::kAuthzidUnsupported;
  if (message[2] != ',') return ParseError::kBadGs2Header;
  out->gs2_header = message.substr(0, 3);
  out->bare = message.substr(3);
  std::string_view rest = out->bare;
  if (rest.starts_with("m=")) return ParseError::kMandatoryExtension;
  const std::optional<std::string_view> user = TakeAttribute(rest, 'n');
  if (!user || !IsSaslName(*user)) return ParseError::kBadUserName;
  out->user = *user;
  if (!rest.starts_with(',')) return ParseError::kBadNonce;
  rest.remove_prefix(1);
  const std::optional<std::string_view> nonce = TakeAttribute(rest, 'r');
  if (!nonce || nonce->size() > kMaxNonceBytes || !IsNonce(*nonce)) return ParseError::kBadNonce;
  out->nonce = *nonce;
  // Optional extensions (",x=...") follow; none is understood, so they are ignored.
  if (!rest.empty() && rest[0] != ',') return ParseError::kBadNonce;
  return ParseError::kNone;
}

ParseError ParseClientFinal(std::string_view message, ClientFinal* out) {
  RINGMQ_ASSERT(out != nullptr);
  if (message.size() > kMaxMessageBytes) return ParseError::kTooLong;
  std::string_view rest = message;
  const std::optional<std::string_view> binding = TakeAttribute(rest, 'c');
  if (!binding || binding->empty()) return ParseError::kBadChannelBinding;
  out->channel_binding = *binding;
  if (!rest.starts_with(',')) return ParseError::kBadNonce;
  rest.remove_prefix(1);
  const std::optional<std::string_view> nonce = TakeAttribute(rest, 'r');
  if (!nonce || !IsNonce(*nonce)) return ParseError::kBadNonce;
  out->nonce = *nonce;
  // The proof is the last attribute; optional extensions may sit between the nonce and it.
  const size_t proof_at = rest.rfind(",p=");
  if (proof_at == std::string_view::npos) return ParseError::kBadProof;
  const std::string_view proof_text = rest.substr(proof_at + 3);
  if (proof_text.find(',') != std::string_view::npos) return ParseError::kBadProof;
  const std::optional<std::vector<uint8_t>> proof = Base64Decode(proof_text);
  if (!proof || proof->size() != kKeyBytes) return ParseError::kBadProof;
  std::copy(proof->begin(), proof->end(), out->proof.begin());
  out->without_proof = message.substr(0, message.size() - rest.size() + proof_at);
  return ParseError::kNone;
}

bool DecodeUserName(std::string_view escaped, std::string* out) {
  RINGMQ_ASSERT(out != nullptr);
  out->clear();
  for (size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] != '=') {
      out->push_back(escaped[i]);
      continue;
    }
    const std::string_view escape = escaped.substr(i + 1, 2);
    if (escape == "2C")
      out->push_back(',');
    else if (escape == "3D")
      out->push_back('=');
    else
      return false;
    i += 2;
  }
  return true;
}

std::string EncodeUserName(std::string_view user) {
  std::string out;
  out.reserve(user.size());
  for (const char c : user) {
    if (c == ',')
      out += "=2C";
    else if (c == '=')
      out += "=3D";
    else
      out.push_back(c);
  }
  return out;
}

Key SaltedPassword(std::string_view password, std::span<const uint8_t> salt, uint32_t iterations) {
  RINGMQ_ASSERT(iterations >= 1 && iterations <= kMaxIterations);
  Key salted{};
  const int ok = PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                                   static_cast<int>(salt.size()), static_cast<int>(iterations),
                                   EVP_sha256(), static_cast<int>(salted.size()), salted.data());
  RINGMQ_ASSERT(ok == 1);
  return salted;
}

Key Hmac(const Key& key, std::string_view message) {
  Key out{};
  unsigned int length = 0;
  const unsigned char* result = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                                     reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size(), out.data(), &length);
  RINGMQ_ASSERT(result != nullptr && length == out.size());
  return out;
}

namespace {

Key Sha256(const Key& data) {
  Key out{};
  unsigned int length = 0;
  const int ok = EVP_Digest(data.data(), data.size(), out.data(), &length, EVP_sha256(), nullptr);
  RINGMQ_ASSERT(ok == 1 && length == out.size());
  return out;
}

Key Xor(const Key& a, const Key& b) {
  Key out{};
  for (size_t i = 0; i < kKeyBytes; ++i) out[i] = a[i] ^ b[i];
  return out;
}

}  // namespace

ServerKeys KeysFromSaltedPassword(const Key& salted_password) {
  ServerKeys keys;
  keys.stored_key = Sha256(Hmac(salted_password, "Client Key"));
  keys.server_key = Hmac(salted_password, "Server Key");
  return keys;
}

ServerKeys DeriveKeys(std::string_view password, std::span<const uint8_t> salt,
                      uint32_t iterations) {
  return KeysFromSaltedPassword(SaltedPassword(password, salt, iterations));
}

Key ClientProof(const Key& salted_password, std::string_view auth_message) {
  const Key client_key = Hmac(salted_password, "Client Key");
  return Xor(client_key, Hmac(Sha256(client_key), auth_message));
}

bool VerifyProof(const Key& stored_key, std::string_view auth_message, const Key& proof) {
  const Key client_key = Xor(proof, Hmac(stored_key, auth_message));
  const Key computed = Sha256(client_key);
  return CRYPTO_memcmp(computed.data(), stored_key.data(), kKeyBytes) == 0;
}

}  // namespace ringmq::auth::scram
