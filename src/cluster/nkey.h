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
  // The first user seed in a file: a seed file, or a NATS .creds file (its "USER NKEY SEED"
  // block); blank lines and lines of other text are skipped. Errors name the file.
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

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_NKEY_H_
