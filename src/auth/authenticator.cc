#include "auth/authenticator.h"

#include <openssl/rand.h>

#include "common/assert.h"

namespace ringmq::auth {

using connect::AuthResult;

ShardAuthenticator::ShardAuthenticator(const SharedAuth& shared, uint32_t max_failures_per_second,
                                       const uint64_t* now_ms, metrics::ShardCounters* counters)
    : shared_(shared), counters_(counters), budget_(max_failures_per_second, now_ms) {
  RINGMQ_ASSERT(now_ms != nullptr && counters != nullptr);
  // A predictable key would let an attacker aim for cache collisions; without random bytes the
  // broker must not run with authentication.
  const int random = RAND_bytes(reinterpret_cast<unsigned char*>(keys_), sizeof(keys_));
  RINGMQ_ASSERT(random == 1);
}

AuthResult ShardAuthenticator::CheckPassword(const AuthData& data, std::string_view user,
                                             std::optional<std::string_view> password) const {
  const std::string_view secret = password.value_or(std::string_view());
  // The user name's length first, so that ("ab", "c") and ("a", "bc") differ.
  const auto user_size = static_cast<uint32_t>(user.size());
  uint64_t digest[2];
  for (int i = 0; i < 2; ++i) {
    digest[i] = SipHash24(keys_[i], &user_size, sizeof(user_size), user.data(), user.size(),
                          secret.data(), secret.size());
  }
  CacheEntry& entry = cache_[digest[0] & (kCacheEntries - 1)];
  if (password && entry.version == data.version && entry.digest[0] == digest[0] &&
      entry.digest[1] == digest[1]) {
    counters_->auth_cache_hits.Add();
    return AuthResult::kAllow;
  }
  if (!budget_.Left()) return AuthResult::kRateLimited;
  const PasswordHash* hash = data.passwords->Find(user);
  bool good = false;
  if (hash != nullptr && password) {
    counters_->auth_verifications.Add();
    good = VerifyPassword(*hash, *password);
  }
  if (!good) {
    budget_.Spend();
    return AuthResult::kBadCredentials;
  }
  entry = CacheEntry{data.version, {digest[0], digest[1]}};
  return AuthResult::kAllow;
}

AuthResult ShardAuthenticator::Check(const mqtt::Connect& connect,
                                     std::optional<bool> listener_allow_anonymous) const {
  const AuthData* data = shared_.Load();
  RINGMQ_ASSERT(data != nullptr && data->version != 0);
  const bool allow_anonymous = listener_allow_anonymous.value_or(data->allow_anonymous);
  if (connect.properties.Find(mqtt::PropertyId::kAuthenticationMethod)) {
    // 5.0 enhanced authentication: the AUTH exchange proves the user (auth/enhanced_auth.h),
    // the password is not looked at. The will is checked once the user is known: the
    // connection calls again with the proven user as User Name.
    if (data->acl && connect.will && connect.user_name) {
      const ClientAcl acl = ClientAcl::Compile(*data->acl, connect.user_name, connect.client_id);
      if (!acl.CanPublish(connect.will->topic)) return AuthResult::kNotAuthorized;
    }
    return AuthResult::kAllow;
  }
  if (!connect.user_name) {
    if (!allow_anonymous) return AuthResult::kNotAuthorized;
  } else if (data->passwords) {
    const AuthResult result = CheckPassword(*data, *connect.user_name, connect.password);
    if (result != AuthResult::kAllow) return result;
  } else if (!allow_anonymous) {
    return AuthResult::kNotAuthorized;  // no password file: a user name cannot be verified
  }
  if (data->acl && connect.will) {
    // The server-assigned id of an empty client id is not known yet: %c is empty here.
    const ClientAcl acl = ClientAcl::Compile(*data->acl, connect.user_name, connect.client_id);
    if (!acl.CanPublish(connect.will->topic)) return AuthResult::kNotAuthorized;
  }
  return AuthResult::kAllow;
}

AuthResult ShardAuthenticator::CheckCertificateUser(const mqtt::Connect& connect) const {
  const AuthData* data = shared_.Load();
  RINGMQ_ASSERT(data != nullptr && data->version != 0);
  RINGMQ_ASSERT(connect.user_name.has_value());
  if (data->acl && connect.will) {
    const ClientAcl acl = ClientAcl::Compile(*data->acl, connect.user_name, connect.client_id);
    if (!acl.CanPublish(connect.will->topic)) return AuthResult::kNotAuthorized;
  }
  return AuthResult::kAllow;
}

}  // namespace ringmq::auth
