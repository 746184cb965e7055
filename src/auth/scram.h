// SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash): the message grammar and the key arithmetic,
// with no I/O and no state. auth/enhanced_auth.h runs the server side of an exchange with it;
// the password file stores the keys (auth/password_hash.h, "$scram-sha-256$").
//
// The exchange (server side), each message a string of printable ASCII:
//   client-first  "n,,n=user,r=cnonce"                    gs2 header "n,," or "y,,"
//   server-first  "r=cnonce+snonce,s=salt,i=iterations"
//   client-final  "c=biws,r=cnonce+snonce,p=proof"        c= is base64 of the gs2 header
//   server-final  "v=server signature"
// AuthMessage = client-first-bare "," server-first "," client-final-without-proof, and
//   SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iterations, 32 bytes)
//   ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = SHA-256(ClientKey)
//   ServerKey = HMAC(SaltedPassword, "Server Key")
//   ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)
//   ServerSignature = HMAC(ServerKey, AuthMessage)
// The server keeps only StoredKey and ServerKey; it checks a proof by recovering ClientKey and
// hashing it, so a verification costs two HMACs and a hash, not the PBKDF2 iterations.
//
// What is not supported, and refused with a ParseError: channel binding (a "p=" gs2 flag: the
// broker does not offer SCRAM-SHA-256-PLUS), an authorization identity (the "a=" field between
// the gs2 commas), the reserved mandatory extension "m=". Optional extensions after the nonce
// are ignored (RFC 5802 §5.1). SASLprep (RFC 4013) is not applied: user names and passwords are
// compared as the bytes they are. For printable ASCII SASLprep is the identity, so such names
// and passwords behave exactly as the RFC says; a non-ASCII password must reach the broker in
// the form `ringmq passwd` was given it (no NFKC, no mapping of non-ASCII spaces).
//
// Thread safety: stateless functions and plain values; safe from any thread.
#ifndef RINGMQ_AUTH_SCRAM_H_
#define RINGMQ_AUTH_SCRAM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ringmq::auth::scram {

inline constexpr size_t kKeyBytes = 32;  // SHA-256 digest
using Key = std::array<uint8_t, kKeyBytes>;

// RFC 7677 §4: at least 4096 iterations.
inline constexpr uint32_t kDefaultIterations = 4096;
inline constexpr size_t kDefaultSaltBytes = 16;
// Random bytes in the server's nonce part (24 characters of base64).
inline constexpr size_t kServerNonceBytes = 18;
// Bound on each client message. A client-first message carries the user name, so user names
// longer than about 900 bytes cannot use SCRAM (they can still log in with a password).
inline constexpr size_t kMaxMessageBytes = 1024;
// Bound on the client's nonce, inside the message bound.
inline constexpr size_t kMaxNonceBytes = 256;

enum class ParseError : uint8_t {
  kNone,
  kTooLong,                 // above kMaxMessageBytes
  kBadGs2Header,            // not "n,," or "y,,", or an unknown flag
  kChannelBindingRequired,  // "p=...": SCRAM-SHA-256-PLUS is not offered
  kAuthzidUnsupported,      // "n,a=someone,"
  kMandatoryExtension,      // "m=" before the user name
  kBadUserName,             // missing, empty, or a '=' not followed by 2C or 3D
  kBadNonce,                // missing, empty, too long, or not printable without ','
  kBadChannelBinding,       // c= absent or not the base64 of the client-first gs2 header
  kBadProof,                // p= absent, not last, or not base64 of 32 bytes
};

std::string_view ParseErrorName(ParseError error);

struct ClientFirst {
  std::string_view gs2_header;  // "n,," or "y,,", what c= must encode
  std::string_view user;        // still escaped ("=2C" for ',', "=3D" for '=')
  std::string_view nonce;
  std::string_view bare;  // the message without the gs2 header: part of AuthMessage
};

struct ClientFinal {
  std::string_view channel_binding;  // the base64 text after "c="
  std::string_view nonce;
  std::string_view without_proof;  // up to the ",p=": part of AuthMessage
  Key proof{};
};

ParseError ParseClientFirst(std::string_view message, ClientFirst* out);
ParseError ParseClientFinal(std::string_view message, ClientFinal* out);

// Unescapes a saslname into `out` (cleared first); false on a '=' not followed by "2C" or "3D".
bool DecodeUserName(std::string_view escaped, std::string* out);
// The escaped form of `user`, for clients (tests, the fuzz target).
std::string EncodeUserName(std::string_view user);

// True for a nonce made of printable ASCII other than ',' (RFC 5802 §7, "printable").
bool IsNonce(std::string_view nonce);

struct ServerKeys {
  Key stored_key{};
  Key server_key{};
};

Key SaltedPassword(std::string_view password, std::span<const uint8_t> salt, uint32_t iterations);
ServerKeys KeysFromSaltedPassword(const Key& salted_password);
ServerKeys DeriveKeys(std::string_view password, std::span<const uint8_t> salt,
                      uint32_t iterations);

Key Hmac(const Key& key, std::string_view message);

// The client's proof for `auth_message` (what a client computes; the server only checks it).
Key ClientProof(const Key& salted_password, std::string_view auth_message);
// True when `proof` is the proof for `auth_message` under `stored_key` (constant-time compare).
bool VerifyProof(const Key& stored_key, std::string_view auth_message, const Key& proof);

}  // namespace ringmq::auth::scram

#endif  // RINGMQ_AUTH_SCRAM_H_
