// NATS nkey credentials (natstls lane; docs/cluster.md, "TLS to NATS"): a user's ed25519 key
// pair, read from its seed, and the signature of a server's INFO nonce that CONNECT carries
// (the NATS client protocol's CONNECT fields "nkey" and "sig"; docs.nats.io "NKeys").
//
// Encoding (the nkeys format, github.com/nats-io/nkeys): RFC 4648 base32 without padding of
// prefix bytes + the raw 32-byte key + CRC-16/XMODEM (polynomial 0x1021, initial 0) of what
// precedes it, little-endian. A seed's two prefix bytes are (18 << 3) | (type >> 5) and
// (type & 31) << 3, the type of a user being 20 << 3: user seeds read "SU...". A public key has
// the one type byte: user public keys read "U...". The seed is the ed25519 private key
// (RFC 8032 §5.1.5); OpenSSL derives the public key from it and signs (EVP_PKEY_ED25519).
// The signature travels as base64url without padding (RFC 4648 §5), as NATS clients send it.
//
// User credentials (jwt lane; docs/cluster.md "TLS and nkeys to NATS"): a NATS .creds file, as
// nsc writes it and NATS clients read it, holds two decorated blocks, the user JWT then the
// user's nkey seed:
//   -----BEGIN NATS USER JWT-----        a marker line: 3+ dashes, any text, 3+ dashes
//   eyJ0eXAiOiJKV1Qi...                  the value: one line of [A-Za-z0-9_.=-]
//   ------END NATS USER JWT------        a marker line
//   (any text: nsc prints a warning here)
//   -----BEGIN USER NKEY SEED-----
//   SUA...
//   ------END USER NKEY SEED------
// Lines end in LF or CRLF; white space around a line is ignored; blocks after the second are
// ignored (as nats.go's nkeys.ParseDecoratedJWT/ParseDecoratedNKey read them: the first block is
// the JWT, the second the seed). With one block only, a value "S..." is a decorated seed (no JWT).
// With no marker line the file is a plain seed file: its first line "SU...". A marker line that
// does not open a complete block (value line, closing marker) is an error: a truncated file is
// refused rather than read as something else. The seed never appears in an error message.
//
// Thread safety: an Nkey is immutable once made; Sign may run on several threads at once (each
// call makes its own OpenSSL objects).
#ifndef RINGMQ_CLUSTER_NKEY_H_
#define RINGMQ_CLUSTER_NKEY_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "concurrent/epoch_pointer.h"

namespace ringmq::cluster {

// CRC-16/XMODEM over `bytes` (the nkeys checksum).
uint16_t NkeyCrc16(std::span<const uint8_t> bytes);
// RFC 4648 §6 base32, upper case, no padding; and back (false on a character outside the
// alphabet or trailing bits that are not zero).
std::string Base32Encode(std::span<const uint8_t> bytes);
bool Base32Decode(std::string_view text, std::string& out);
// RFC 4648 §5 base64url, no padding.
std::string Base64UrlEncode(std::span<const uint8_t> bytes);

class Nkey {
 public:
  // `seed`: "SU..." (58 characters). Errors: not base32, a bad checksum, not a user seed.
  static absl::StatusOr<Nkey> FromSeed(std::string_view seed);
  // The user seed of a file read as ReadCredentialsFile reads it (a .creds file's JWT is not
  // kept: [cluster] nkey_seed_file). Errors name the file.
  static absl::StatusOr<Nkey> FromFile(const std::string& path);

  // "U..." (56 characters): CONNECT's "nkey".
  const std::string& public_key() const { return public_key_; }
  // The base64url ed25519 signature of `nonce`: CONNECT's "sig". Empty only if OpenSSL fails.
  std::string Sign(std::string_view nonce) const;

 private:
  Nkey() = default;
  std::array<uint8_t, 32> seed_{};
  std::string public_key_;
};

// A file's size bound: a .creds file is about 1 KB.
inline constexpr size_t kCredentialsFileBytesMax = 64 * 1024;
// A user JWT's bound: CONNECT carries it (nsc's user JWTs are under 2 KB even with permissions).
inline constexpr size_t kUserJwtBytesMax = 16 * 1024;

// A user's credentials: the seed's key, and the user JWT when the file has one.
struct UserCredentials {
  std::string jwt;  // "header.claims.signature" (base64url); empty: no JWT (a seed file)
  Nkey nkey;
};

// The credentials in `text` (the rules above). Errors: no seed, a truncated or malformed
// block, a JWT block without a seed block, a JWT that is not three base64url parts or is over
// kUserJwtBytesMax, a seed that Nkey::FromSeed refuses.
absl::StatusOr<UserCredentials> ParseCredentials(std::string_view text);
// ParseCredentials over a file of at most kCredentialsFileBytesMax bytes; errors name the file.
absl::StatusOr<UserCredentials> ReadCredentialsFile(const std::string& path);

// The credentials every link of the process signs with, replaced on SIGHUP (a user JWT renewed
// before it expires): concurrent/epoch_pointer.h's rules.
using SharedCredentials = concurrent::EpochPointer<UserCredentials>;

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_NKEY_H_
