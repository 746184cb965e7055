// The per-shard authenticator: checks a CONNECT's user name and password against the password
// file, applies allow_anonymous, and checks that the will topic may be published (ACL).
//
// Cost bound (docs/auth.md): a password hash costs tens of microseconds ($7$, 101 PBKDF2
// iterations), so a flood of CONNECTs with wrong passwords could otherwise keep every core busy.
// - A fixed-size cache of credentials verified good (kCacheEntries per shard, direct-mapped,
//   no allocation): the key is SipHash-2-4 under a random per-shard key of (user, password),
//   128 bits, tagged with the AuthData version so a reload invalidates it. A hit skips hashing
//   (counted in auth_cache_hits). Only digests are stored, never passwords.
// - A budget of failed verifications per shard per second (max_auth_failures_per_second;
//   0: no limit): once spent, CONNECTs whose credentials are not in the cache are refused
//   without hashing (kRateLimited, CONNACK 0x03) until the next second. Unknown users and
//   missing passwords count as failures too (no hash is computed for them), so the budget also
//   slows down guessing of user names. Every hash computed is counted in auth_verifications.
//
// allow_anonymous below is the listener's own setting when it has one, else the broker-wide key.
// Decision order: no user name -> allowed only with allow_anonymous (else kNotAuthorized);
// a user name with a password file -> verified (kBadCredentials on a wrong password or unknown
// user); a user name without a password file -> accepted as is when allow_anonymous is true
// (as Mosquitto does; the name still selects its ACL section), kNotAuthorized otherwise.
// Finally a will whose topic the client's ACL does not let it publish -> kNotAuthorized.
// A User Name that a verified TLS client certificate stands for (use_identity_as_username,
// CheckCertificateUser) skips the password steps, as in Mosquitto; its will is checked.
// A 5.0 CONNECT with an Authentication Method skips the password steps (the AUTH exchange
// authenticates it, net/connection.h); its will is checked only when it has a User Name, which
// the connection sets to the proven user before it calls Check again.
//
// Thread safety: one instance per shard, used only on that shard's thread (the mutable cache
// and budget are not synchronized). The AuthData it reads is shared (auth/auth_data.h).
#ifndef RINGMQ_AUTH_AUTHENTICATOR_H_
#define RINGMQ_AUTH_AUTHENTICATOR_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "auth/auth_data.h"
#include "auth/failure_budget.h"
#include "auth/siphash.h"
#include "connect/admission.h"
#include "metrics/counters.h"

namespace ringmq::auth {

class ShardAuthenticator final : public connect::Authenticator {
 public:
  static constexpr size_t kCacheEntries = 1024;  // 24 KiB per shard
  static_assert((kCacheEntries & (kCacheEntries - 1)) == 0, "a power of two");

  // `now_ms` is the shard's clock (read at each Check); `counters` the shard's counters.
  ShardAuthenticator(const SharedAuth& shared, uint32_t max_failures_per_second,
                     const uint64_t* now_ms, metrics::ShardCounters* counters);

  connect::AuthResult Check(const mqtt::Connect& connect,
                            std::optional<bool> allow_anonymous) const override;
  // use_identity_as_username: the will's ACL for the certificate's user; no password.
  connect::AuthResult CheckCertificateUser(const mqtt::Connect& connect) const override;

  // The shard's failure budget, for the SCRAM exchange (auth/enhanced_auth.h) to share.
  FailureBudget* failure_budget() const { return &budget_; }

 private:
  struct CacheEntry {
    uint64_t version = 0;  // AuthData::version; 0: empty (versions start at 1)
    uint64_t digest[2] = {0, 0};
  };

  connect::AuthResult CheckPassword(const AuthData& data, std::string_view user,
                                    std::optional<std::string_view> password) const;
  const SharedAuth& shared_;
  metrics::ShardCounters* const counters_;
  SipKey keys_[2];

  mutable std::array<CacheEntry, kCacheEntries> cache_{};
  mutable FailureBudget budget_;
};

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_AUTHENTICATOR_H_
