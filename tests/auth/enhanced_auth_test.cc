// MQTT 5 enhanced authentication (auth/enhanced_auth.h): the method registry and the server
// side of SCRAM-SHA-256, with RFC 7677 §3's exchange and a client written here.
#include "auth/enhanced_auth.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "auth/password_hash.h"
#include "mosquitto_fixture.h"

namespace ringmq::auth {
namespace {

using mqtt::ReasonCode;

constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

// A SCRAM-SHA-256 client (RFC 5802 §3), enough to drive the server.
class Client {
 public:
  Client(std::string user, std::string password, std::string nonce = "fyko+d2lbbFgONRv9qkxdawL")
      : user_(std::move(user)), password_(std::move(password)), nonce_(std::move(nonce)) {}

  std::string First(std::string_view gs2 = "n,,") {
    bare_ = "n=" + scram::EncodeUserName(user_) + ",r=" + nonce_;
    return std::string(gs2) + bare_;
  }

  std::string Final(std::string_view server_first, std::string_view binding = "biws") {
    std::string_view rest = server_first;
    const std::string_view nonce = Attribute(rest);
    const std::vector<uint8_t> salt = *Base64Decode(Attribute(rest));
    const uint32_t iterations = static_cast<uint32_t>(std::stoul(std::string(Attribute(rest))));
    without_proof_ = "c=" + std::string(binding) + ",r=" + std::string(nonce);
    auth_message_ = bare_ + "," + std::string(server_first) + "," + without_proof_;
    salted_ = scram::SaltedPassword(password_, salt, iterations);
    const scram::Key proof = scram::ClientProof(salted_, auth_message_);
    return without_proof_ + ",p=" + Base64Encode(proof.data(), proof.size());
  }

  std::string ExpectedServerFinal() const {
    const scram::Key signature =
        scram::Hmac(scram::KeysFromSaltedPassword(salted_).server_key, auth_message_);
    return "v=" + Base64Encode(signature.data(), signature.size());
  }

 private:
  // The value of the next "x=value" and advances past it.
  static std::string_view Attribute(std::string_view& text) {
    const size_t end = text.find(',');
    const std::string_view value = text.substr(2, end == std::string_view::npos ? end : end - 2);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    return value;
  }

  std::string user_, password_, nonce_, bare_, without_proof_, auth_message_;
  scram::Key salted_{};
};

// The RFC 7677 user: "user" / "pencil", its salt and 4096 iterations.
std::string Rfc7677Entry() {
  PasswordHash hash;
  hash.kind = HashKind::kScramSha256;
  hash.iterations = 4096;
  hash.salt = *Base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  ComputeHash(hash, "pencil", hash.hash);
  return "user:" + FormatPasswordHash(hash) + "\n";
}

class EnhancedAuthTest : public ::testing::Test {
 protected:
  EnhancedAuthTest() { Load(Rfc7677Entry() + testing::kMosquittoPasswordFile); }

  void Load(const std::string& password_file, bool with_file = true) {
    auto data = std::make_unique<AuthData>();
    data->version = ++version_;
    data->allow_anonymous = false;
    if (with_file) data->passwords = *ParsePasswordFile(password_file, "pw");
    shared_.Replace(std::move(data), nullptr);
  }

  ScramSha256Method Method(std::string nonce = std::string(kRfcServerNonce)) {
    return ScramSha256Method(shared_, &budget_, &counters_, [nonce] { return nonce; });
  }

  // Runs client-first and client-final; returns the last step.
  AuthStep Exchange(AuthSession& session, Client& client) {
    const AuthStep first = session.Step(client.First());
    if (first.status != AuthStatus::kContinue) return first;
    return session.Step(client.Final(first.data));
  }

  uint64_t version_ = 0;
  SharedAuth shared_;
  uint64_t now_ms_ = 5'000;
  FailureBudget budget_{2, &now_ms_};
  metrics::ShardCounters counters_;
};

TEST_F(EnhancedAuthTest, Rfc7677ExchangeGivesTheRfcServerMessages) {
  const ScramSha256Method method = Method();
  std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
  const AuthStep first = session->Step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  ASSERT_EQ(first.status, AuthStatus::kContinue);
  EXPECT_EQ(first.reason, ReasonCode::kContinueAuthentication);
  EXPECT_EQ(first.data,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
            "i=4096");
  const AuthStep last = session->Step(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  ASSERT_EQ(last.status, AuthStatus::kSuccess);
  EXPECT_EQ(last.reason, ReasonCode::kSuccess);
  EXPECT_EQ(last.data, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  EXPECT_EQ(last.user, "user");
  EXPECT_EQ(counters_.auth_scram_success.Load(), 1u);
}

TEST_F(EnhancedAuthTest, RandomServerNonceAndAWrittenEntrySucceed) {
  Load("eve:" + FormatPasswordHash(*NewScramHash("s3cret")) + "\n");
  const ScramSha256Method method(shared_, &budget_, &counters_);
  std::unique_ptr<AuthSession> session = method.Start(std::string_view("eve"));
  Client client("eve", "s3cret");
  const AuthStep first = session->Step(client.First("y,,"));
  ASSERT_EQ(first.status, AuthStatus::kContinue);
  // The server's nonce part: 24 characters of base64 after the client's.
  EXPECT_EQ(first.data.find("r=fyko+d2lbbFgONRv9qkxdawL"), 0u);
  EXPECT_EQ(first.data.find(",s="), 2 + 24 + 24);
  const AuthStep last = session->Step(client.Final(first.data, "eSws"));
  ASSERT_EQ(last.status, AuthStatus::kSuccess);
  EXPECT_EQ(last.data, client.ExpectedServerFinal());
  EXPECT_EQ(last.user, "eve");
}

TEST_F(EnhancedAuthTest, WrongPasswordIsBadUserNameOrPasswordAndSpendsTheBudget) {
  const ScramSha256Method method = Method();
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
    Client client("user", "pencil!");
    const AuthStep last = Exchange(*session, client);
    EXPECT_EQ(last.status, AuthStatus::kFailure);
    EXPECT_EQ(last.reason, ReasonCode::kBadUserNameOrPassword);
    EXPECT_EQ(last.failure, AuthFailure::kBadProof);
  }
  EXPECT_EQ(counters_.auth_scram_bad_proof.Load(), 2u);
  // Budget of 2 spent: the next exchange is refused at client-first, even the right password.
  std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
  Client good("user", "pencil");
  const AuthStep refused = session->Step(good.First());
  EXPECT_EQ(refused.status, AuthStatus::kFailure);
  EXPECT_EQ(refused.reason, ReasonCode::kQuotaExceeded);
  EXPECT_EQ(refused.failure, AuthFailure::kRateLimited);
  EXPECT_EQ(counters_.auth_scram_rate_limited.Load(), 1u);
  // The next second has a fresh budget.
  now_ms_ += 1000;
  session = method.Start(std::nullopt);
  EXPECT_EQ(Exchange(*session, good).status, AuthStatus::kSuccess);
}

TEST_F(EnhancedAuthTest, UnknownUserGetsAStableMockSaltAndFailsOnlyAtTheEnd) {
  const ScramSha256Method method = Method();
  std::string salts[2];
  for (std::string& salt : salts) {
    std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
    Client client("ghost", "pencil");
    const AuthStep first = session->Step(client.First());
    ASSERT_EQ(first.status, AuthStatus::kContinue);
    salt = std::string(first.data.substr(first.data.find(",s=")));
    EXPECT_NE(salt.find(",i=4096"), std::string::npos);
    const AuthStep last = session->Step(client.Final(first.data));
    EXPECT_EQ(last.reason, ReasonCode::kBadUserNameOrPassword);
    EXPECT_EQ(last.failure, AuthFailure::kUnknownUser);
  }
  EXPECT_EQ(salts[0], salts[1]);
  EXPECT_EQ(counters_.auth_scram_unknown_user.Load(), 2u);
}

TEST_F(EnhancedAuthTest, MosquittoEntryCannotServeScram) {
  const ScramSha256Method method = Method();
  std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
  Client client("alice", "alice-secret");
  const AuthStep last = Exchange(*session, client);
  EXPECT_EQ(last.reason, ReasonCode::kBadUserNameOrPassword);
  EXPECT_EQ(last.failure, AuthFailure::kNoScramCredentials);
  EXPECT_EQ(counters_.auth_scram_no_scram_credentials.Load(), 1u);
}

TEST_F(EnhancedAuthTest, NoPasswordFileMeansNoScramUser) {
  Load("", /*with_file=*/false);
  const ScramSha256Method method = Method();
  std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
  Client client("user", "pencil");
  EXPECT_EQ(Exchange(*session, client).failure, AuthFailure::kUnknownUser);
}

TEST_F(EnhancedAuthTest, MalformedOrUnsupportedMessagesAreNotAuthorized) {
  const ScramSha256Method method = Method();
  for (const std::string_view first_message :
       {std::string_view(""), std::string_view("p=tls-unique,,n=user,r=abc"),
        std::string_view("n,a=user,n=user,r=abc"), std::string_view("n,,n=user")}) {
    std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
    const AuthStep step = session->Step(first_message);
    EXPECT_EQ(step.status, AuthStatus::kFailure) << first_message;
    EXPECT_EQ(step.reason, ReasonCode::kNotAuthorized) << first_message;
    EXPECT_EQ(step.failure, AuthFailure::kMalformed) << first_message;
  }
  // The final message must echo the combined nonce and the gs2 header.
  for (const bool wrong_nonce : {true, false}) {
    std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
    Client client("user", "pencil");
    const AuthStep first = session->Step(client.First());
    ASSERT_EQ(first.status, AuthStatus::kContinue);
    std::string final_message = client.Final(first.data, wrong_nonce ? "biws" : "eSws");
    if (wrong_nonce) final_message.replace(final_message.find("r=") + 2, 1, "X");
    const AuthStep last = session->Step(final_message);
    EXPECT_EQ(last.failure, AuthFailure::kMalformed);
    EXPECT_EQ(last.reason, ReasonCode::kNotAuthorized);
  }
  EXPECT_EQ(counters_.auth_scram_malformed.Load(), 6u);
  EXPECT_EQ(counters_.auth_scram_bad_proof.Load(), 0u);
}

TEST_F(EnhancedAuthTest, ConnectUserNameMustBeTheScramUser) {
  const ScramSha256Method method = Method();
  std::unique_ptr<AuthSession> session = method.Start(std::string_view("alice"));
  Client client("user", "pencil");
  const AuthStep step = session->Step(client.First());
  EXPECT_EQ(step.failure, AuthFailure::kUserMismatch);
  EXPECT_EQ(step.reason, ReasonCode::kNotAuthorized);
}

TEST_F(EnhancedAuthTest, ReloadDuringAnExchangeDoesNotChangeIt) {
  const ScramSha256Method method = Method();
  std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
  Client client("user", "pencil");
  const AuthStep first = session->Step(client.First());
  ASSERT_EQ(first.status, AuthStatus::kContinue);
  const std::string final_message = client.Final(first.data);
  Load(testing::kMosquittoPasswordFile);  // "user" is gone
  EXPECT_EQ(session->Step(final_message).status, AuthStatus::kSuccess);
}

TEST_F(EnhancedAuthTest, PlainPasswordCheckAcceptsAScramEntry) {
  const PasswordHash* hash = shared_.Load()->passwords->Find("user");
  ASSERT_NE(hash, nullptr);
  EXPECT_TRUE(VerifyPassword(*hash, "pencil"));
  EXPECT_FALSE(VerifyPassword(*hash, "pencil "));
}

TEST(AuthMethodRegistryTest, FindsMethodsByExactName) {
  SharedAuth shared;
  metrics::ShardCounters counters;
  AuthMethodRegistry registry;
  EXPECT_EQ(registry.Find("SCRAM-SHA-256"), nullptr);
  RegisterStandardMethods(registry, shared, nullptr, &counters);
  EXPECT_EQ(registry.size(), 1u);
  ASSERT_NE(registry.Find("SCRAM-SHA-256"), nullptr);
  EXPECT_EQ(registry.Find("SCRAM-SHA-256")->Name(), kScramSha256Name);
  EXPECT_EQ(registry.Find("scram-sha-256"), nullptr);
  EXPECT_EQ(registry.Find("SCRAM-SHA-1"), nullptr);
  EXPECT_EQ(registry.Find(""), nullptr);
}

TEST(AuthFailureTest, LabelsAndCodesFollowTheTable) {
  EXPECT_EQ(LabelOf(AuthFailure::kBadProof), "bad_proof");
  EXPECT_EQ(ReasonCodeOf(AuthFailure::kBadProof), ReasonCode::kBadUserNameOrPassword);
  EXPECT_EQ(ReasonCodeOf(AuthFailure::kRateLimited), ReasonCode::kQuotaExceeded);
  EXPECT_EQ(ReasonCodeOf(AuthFailure::kMalformed), ReasonCode::kNotAuthorized);
}

}  // namespace
}  // namespace ringmq::auth
