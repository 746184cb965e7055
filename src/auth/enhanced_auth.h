// MQTT 5.0 enhanced authentication (5.0 §4.12): the AUTH exchange between CONNECT and CONNACK,
// as a pluggable method interface, and its one method, SCRAM-SHA-256 (auth/scram.h) against the
// password file's $scram-sha-256$ entries.
//
// The connection's side of the exchange: a CONNECT with an Authentication Method looks the
// method up in the shard's AuthMethodRegistry (none: CONNACK 0x8C Bad authentication method),
// calls Start() once, then Step() with the CONNECT's Authentication Data and again with the
// data of each AUTH (reason 0x18) the client sends. Each Step answers
//   kContinue  send AUTH 0x18 with `data` and wait for the client's next AUTH
//   kSuccess   send CONNACK 0x00 with the method and `data` (may be empty); `user` is the name
//              the client proved, which replaces the CONNECT's User Name for the ACL
//   kFailure   send CONNACK `reason` and close; `failure` says why (counted, logged)
// and no Step follows a kSuccess or kFailure. The methods bound their own exchange: each has a
// fixed number of rounds (SCRAM: two client messages) and a bound on each message; the
// connection bounds the time (connect_timeout_ms covers the whole exchange).
//
// SCRAM-SHA-256 failures and their CONNACK reason codes (5.0 §3.2.2.2):
//   unknown user, a user without a $scram-sha-256$ entry, a wrong proof
//                                   -> 0x86 Bad User Name or Password, after the full exchange:
//      the server-first message of a user it cannot serve carries a salt derived from the name
//      under a process-wide random key, so the exchange does not tell who is listed (RFC 5802
//      §9 "mock" salt); the cause is still counted apart in metrics.
//   a message that breaks the grammar, channel binding asked for, an authorization identity,
//   a CONNECT User Name other than the SCRAM user name
//                                   -> 0x87 Not authorized
//   the shard's failed-check budget spent (auth/failure_budget.h)
//                                   -> 0x97 Quota exceeded, before any key is looked at
// A failed proof spends the budget as a wrong CONNECT password does; unknown users too.
//
// Memory: a session holds the user name, AuthMessage and the last server message, each bounded
// by scram::kMaxMessageBytes; a registry holds at most kMaxMethods methods.
//
// Thread safety: a registry, its methods and their sessions belong to one shard and are used
// only on its thread (the failure budget and counters they update are per shard). The AuthData
// they read is shared read-only (auth/auth_data.h); a session copies the keys it needs at its
// first Step, so a reload during an exchange does not change that exchange.
#ifndef RINGMQ_AUTH_ENHANCED_AUTH_H_
#define RINGMQ_AUTH_ENHANCED_AUTH_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/auth_data.h"
#include "auth/failure_budget.h"
#include "auth/scram.h"
#include "connect/admission.h"
#include "metrics/counters.h"
#include "mqtt/reason_code.h"

namespace ringmq::auth {

// X(name, metric label, CONNACK reason code)
#define RINGMQ_ENHANCED_AUTH_FAILURES(X)                                                   \
  X(kMalformed, "malformed", mqtt::ReasonCode::kNotAuthorized)                             \
  X(kUserMismatch, "user_mismatch", mqtt::ReasonCode::kNotAuthorized)                      \
  X(kUnknownUser, "unknown_user", mqtt::ReasonCode::kBadUserNameOrPassword)                \
  X(kNoScramCredentials, "no_scram_credentials", mqtt::ReasonCode::kBadUserNameOrPassword) \
  X(kBadProof, "bad_proof", mqtt::ReasonCode::kBadUserNameOrPassword)                      \
  X(kRateLimited, "rate_limited", mqtt::ReasonCode::kQuotaExceeded)

enum class AuthFailure : uint8_t {
  kNone,
#define RINGMQ_AUTH_FAILURE_ENUM(name, label, code) name,
  RINGMQ_ENHANCED_AUTH_FAILURES(RINGMQ_AUTH_FAILURE_ENUM)
#undef RINGMQ_AUTH_FAILURE_ENUM
};

std::string_view LabelOf(AuthFailure failure);
mqtt::ReasonCode ReasonCodeOf(AuthFailure failure);

enum class AuthStatus : uint8_t { kContinue, kSuccess, kFailure };

struct AuthStep {
  AuthStatus status = AuthStatus::kFailure;
  // kContinue: 0x18 Continue authentication; kSuccess: 0x00; kFailure: the CONNACK code.
  mqtt::ReasonCode reason = mqtt::ReasonCode::kNotAuthorized;
  // The server's Authentication Data for the AUTH or CONNACK. Valid until the session's next
  // Step or its destruction.
  std::string_view data;
  std::string_view user;  // kSuccess only: the authenticated user name (same lifetime as data)
  AuthFailure failure = AuthFailure::kNone;  // kFailure only
};

// One exchange on one connection.
class AuthSession {
 public:
  virtual ~AuthSession() = default;
  // `client_data` is the CONNECT's Authentication Data (empty when absent) at the first call,
  // then each AUTH's. Must not be called again after a kSuccess or kFailure.
  virtual AuthStep Step(std::string_view client_data) = 0;
};

class AuthMethod {
 public:
  virtual ~AuthMethod() = default;
  // The Authentication Method property value that selects this method (compared exactly).
  virtual std::string_view Name() const = 0;
  // A session for a CONNECT whose User Name is `connect_user` (nullopt: none).
  virtual std::unique_ptr<AuthSession> Start(
      std::optional<std::string_view> connect_user) const = 0;
};

class AuthMethodRegistry final : public connect::AuthMethodSet {
 public:
  static constexpr size_t kMaxMethods = 4;

  bool Supports(std::string_view method) const override { return Find(method) != nullptr; }

  // Names must differ; at most kMaxMethods.
  void Add(std::unique_ptr<AuthMethod> method);
  // Null when no method has that name (CONNACK 0x8C).
  const AuthMethod* Find(std::string_view name) const;
  size_t size() const { return count_; }

 private:
  std::array<std::unique_ptr<AuthMethod>, kMaxMethods> methods_;
  size_t count_ = 0;
};

inline constexpr std::string_view kScramSha256Name = "SCRAM-SHA-256";

class ScramSha256Method final : public AuthMethod {
 public:
  // The text of the server's part of the nonce: printable, no ','. Tests fix it; by default
  // base64 of scram::kServerNonceBytes random bytes.
  using NonceSource = std::function<std::string()>;

  // `budget` null: no limit. `counters` receives the auth_scram_* counters.
  ScramSha256Method(const SharedAuth& shared, FailureBudget* budget,
                    metrics::ShardCounters* counters, NonceSource nonce_source = nullptr);

  std::string_view Name() const override { return kScramSha256Name; }
  std::unique_ptr<AuthSession> Start(std::optional<std::string_view> connect_user) const override;

 private:
  friend class ScramSha256Session;
  const SharedAuth& shared_;
  FailureBudget* const budget_;
  metrics::ShardCounters* const counters_;
  NonceSource nonce_source_;
};

// The registry a shard offers: SCRAM-SHA-256.
void RegisterStandardMethods(AuthMethodRegistry& registry, const SharedAuth& shared,
                             FailureBudget* budget, metrics::ShardCounters* counters);

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_ENHANCED_AUTH_H_
