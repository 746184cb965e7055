#include "auth/enhanced_auth.h"

#include <openssl/rand.h>

#include <utility>

#include "auth/password_hash.h"
#include "common/assert.h"

namespace ringmq::auth {
namespace {

constexpr size_t kFailureCount = 1
#define RINGMQ_AUTH_FAILURE_COUNT(name, label, code) +1
    RINGMQ_ENHANCED_AUTH_FAILURES(RINGMQ_AUTH_FAILURE_COUNT)
#undef RINGMQ_AUTH_FAILURE_COUNT
    ;

constexpr std::array<std::string_view, kFailureCount> kFailureLabels = {
    "none",
#define RINGMQ_AUTH_FAILURE_LABEL(name, label, code) label,
    RINGMQ_ENHANCED_AUTH_FAILURES(RINGMQ_AUTH_FAILURE_LABEL)
#undef RINGMQ_AUTH_FAILURE_LABEL
};

constexpr std::array<mqtt::ReasonCode, kFailureCount> kFailureCodes = {
    mqtt::ReasonCode::kSuccess,
#define RINGMQ_AUTH_FAILURE_CODE(name, label, code) code,
    RINGMQ_ENHANCED_AUTH_FAILURES(RINGMQ_AUTH_FAILURE_CODE)
#undef RINGMQ_AUTH_FAILURE_CODE
};

static_assert(kFailureCount == static_cast<size_t>(AuthFailure::kRateLimited) + 1,
              "kRateLimited is the last failure");

// The key of the mock salts (RFC 5802 §9): one per process, so that every shard, and every
// attempt, shows an unlisted user the same salt.
const scram::Key& MockSaltKey() {
  static const scram::Key key = [] {
    scram::Key random{};
    const int ok = RAND_bytes(random.data(), static_cast<int>(random.size()));
    RINGMQ_ASSERT(ok == 1);
    return random;
  }();
  return key;
}

std::string RandomServerNonce() {
  std::array<uint8_t, scram::kServerNonceBytes> random{};
  const int ok = RAND_bytes(random.data(), static_cast<int>(random.size()));
  RINGMQ_ASSERT(ok == 1);
  return Base64Encode(random.data(), random.size());
}

}  // namespace

std::string_view LabelOf(AuthFailure failure) {
  return kFailureLabels[static_cast<size_t>(failure)];
}

mqtt::ReasonCode ReasonCodeOf(AuthFailure failure) {
  return kFailureCodes[static_cast<size_t>(failure)];
}

void AuthMethodRegistry::Add(std::unique_ptr<AuthMethod> method) {
  RINGMQ_ASSERT(method != nullptr && count_ < kMaxMethods);
  RINGMQ_ASSERT(Find(method->Name()) == nullptr);
  methods_[count_++] = std::move(method);
}

const AuthMethod* AuthMethodRegistry::Find(std::string_view name) const {
  for (size_t i = 0; i < count_; ++i) {
    if (methods_[i]->Name() == name) return methods_[i].get();
  }
  return nullptr;
}

// The server side of one SCRAM-SHA-256 exchange: client-first -> server-first, client-final ->
// server-final. See enhanced_auth.h for the failures and auth/scram.h for the messages.
class ScramSha256Session final : public AuthSession {
 public:
  ScramSha256Session(const ScramSha256Method& method, std::optional<std::string_view> connect_user)
      : method_(method) {
    if (connect_user) connect_user_.emplace(*connect_user);
  }

  AuthStep Step(std::string_view client_data) override {
    switch (stage_) {
      case Stage::kClientFirst:
        return OnClientFirst(client_data);
      case Stage::kClientFinal:
        return OnClientFinal(client_data);
      case Stage::kDone:
        break;
    }
    RINGMQ_ASSERT(false && "Step after the exchange ended");
    return Fail(AuthFailure::kMalformed);
  }

 private:
  enum class Stage : uint8_t { kClientFirst, kClientFinal, kDone };

  AuthStep OnClientFirst(std::string_view message);
  AuthStep OnClientFinal(std::string_view message);
  // Looks the user up and copies what the exchange needs; a user it cannot serve gets a mock
  // salt and `pending_failure_`.
  void LoadCredentials(const std::string& user);
  AuthStep Fail(AuthFailure failure);

  const ScramSha256Method& method_;
  // Copied: the CONNECT's bytes are not kept for the whole exchange.
  std::optional<std::string> connect_user_;
  Stage stage_ = Stage::kClientFirst;
  std::string user_;
  std::string gs2_header_;
  std::string nonce_;         // client nonce + server nonce
  std::string auth_message_;  // client-first-bare "," server-first "," client-final-no-proof
  std::string out_;           // the last server message
  uint32_t iterations_ = 0;
  std::vector<uint8_t> salt_;
  scram::Key stored_key_{};
  scram::Key server_key_{};
  // Unknown user or one without SCRAM keys: the exchange runs to its end and then fails.
  AuthFailure pending_failure_ = AuthFailure::kNone;
};

AuthStep ScramSha256Session::Fail(AuthFailure failure) {
  RINGMQ_ASSERT(failure != AuthFailure::kNone);
  stage_ = Stage::kDone;
  metrics::ShardCounters& counters = *method_.counters_;
  switch (failure) {
    case AuthFailure::kNone:
      break;
    case AuthFailure::kMalformed:
      counters.auth_scram_malformed.Add();
      break;
    case AuthFailure::kUserMismatch:
      counters.auth_scram_user_mismatch.Add();
      break;
    case AuthFailure::kUnknownUser:
      counters.auth_scram_unknown_user.Add();
      break;
    case AuthFailure::kNoScramCredentials:
      counters.auth_scram_no_scram_credentials.Add();
      break;
    case AuthFailure::kBadProof:
      counters.auth_scram_bad_proof.Add();
      break;
    case AuthFailure::kRateLimited:
      counters.auth_scram_rate_limited.Add();
      break;
  }
  AuthStep step;
  step.status = AuthStatus::kFailure;
  step.reason = ReasonCodeOf(failure);
  step.failure = failure;
  return step;
}

void ScramSha256Session::LoadCredentials(const std::string& user) {
  const AuthData* data = method_.shared_.Load();
  const PasswordHash* hash =
      data != nullptr && data->passwords ? data->passwords->Find(user) : nullptr;
  if (hash != nullptr && hash->kind == HashKind::kScramSha256) {
    iterations_ = hash->iterations;
    salt_ = hash->salt;
    std::copy(hash->hash.begin(), hash->hash.begin() + scram::kKeyBytes, stored_key_.begin());
    std::copy(hash->hash.begin() + scram::kKeyBytes, hash->hash.end(), server_key_.begin());
    return;
  }
  pending_failure_ = hash == nullptr ? AuthFailure::kUnknownUser : AuthFailure::kNoScramCredentials;
  const scram::Key mock = scram::Hmac(MockSaltKey(), user);
  iterations_ = scram::kDefaultIterations;
  salt_.assign(mock.begin(), mock.begin() + scram::kDefaultSaltBytes);
}

AuthStep ScramSha256Session::OnClientFirst(std::string_view message) {
  scram::ClientFirst first;
  if (scram::ParseClientFirst(message, &first) != scram::ParseError::kNone ||
      !scram::DecodeUserName(first.user, &user_)) {
    return Fail(AuthFailure::kMalformed);
  }
  if (connect_user_ && *connect_user_ != user_) return Fail(AuthFailure::kUserMismatch);
  // Checked before any lookup: a spent budget refuses without looking at credentials, as the
  // CONNECT password check does.
  if (method_.budget_ != nullptr && !method_.budget_->Left()) {
    return Fail(AuthFailure::kRateLimited);
  }
  LoadCredentials(user_);
  const std::string server_nonce =
      method_.nonce_source_ ? method_.nonce_source_() : RandomServerNonce();
  RINGMQ_ASSERT(scram::IsNonce(server_nonce));
  gs2_header_ = first.gs2_header;
  nonce_.reserve(first.nonce.size() + server_nonce.size());
  nonce_.assign(first.nonce).append(server_nonce);
  out_ = "r=" + nonce_ + ",s=" + Base64Encode(salt_.data(), salt_.size()) +
         ",i=" + std::to_string(iterations_);
  auth_message_.reserve(first.bare.size() + out_.size() + scram::kMaxMessageBytes);
  auth_message_.assign(first.bare).append(",").append(out_).append(",");
  stage_ = Stage::kClientFinal;
  AuthStep step;
  step.status = AuthStatus::kContinue;
  step.reason = mqtt::ReasonCode::kContinueAuthentication;
  step.data = out_;
  return step;
}

AuthStep ScramSha256Session::OnClientFinal(std::string_view message) {
  scram::ClientFinal final_message;
  if (scram::ParseClientFinal(message, &final_message) != scram::ParseError::kNone ||
      final_message.nonce != nonce_) {
    return Fail(AuthFailure::kMalformed);
  }
  // c= carries the gs2 header back: "biws" for "n,,", "eSws" for "y,,".
  const std::string expected_binding =
      Base64Encode(reinterpret_cast<const uint8_t*>(gs2_header_.data()), gs2_header_.size());
  if (final_message.channel_binding != expected_binding) return Fail(AuthFailure::kMalformed);
  auth_message_.append(final_message.without_proof);
  const bool proof_good = scram::VerifyProof(stored_key_, auth_message_, final_message.proof);
  if (pending_failure_ != AuthFailure::kNone || !proof_good) {
    if (method_.budget_ != nullptr) method_.budget_->Spend();
    return Fail(pending_failure_ != AuthFailure::kNone ? pending_failure_ : AuthFailure::kBadProof);
  }
  const scram::Key signature = scram::Hmac(server_key_, auth_message_);
  out_ = "v=" + Base64Encode(signature.data(), signature.size());
  stage_ = Stage::kDone;
  method_.counters_->auth_scram_success.Add();
  AuthStep step;
  step.status = AuthStatus::kSuccess;
  step.reason = mqtt::ReasonCode::kSuccess;
  step.data = out_;
  step.user = user_;
  return step;
}

ScramSha256Method::ScramSha256Method(const SharedAuth& shared, FailureBudget* budget,
                                     metrics::ShardCounters* counters, NonceSource nonce_source)
    : shared_(shared),
      budget_(budget),
      counters_(counters),
      nonce_source_(std::move(nonce_source)) {
  RINGMQ_ASSERT(counters != nullptr);
}

std::unique_ptr<AuthSession> ScramSha256Method::Start(
    std::optional<std::string_view> connect_user) const {
  return std::make_unique<ScramSha256Session>(*this, connect_user);
}

void RegisterStandardMethods(AuthMethodRegistry& registry, const SharedAuth& shared,
                             FailureBudget* budget, metrics::ShardCounters* counters) {
  registry.Add(std::make_unique<ScramSha256Method>(shared, budget, counters));
}

}  // namespace ringmq::auth
