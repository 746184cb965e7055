// The per-shard authenticator: anonymous policy, password checks, the cache of verified
// credentials, the failure budget (docs/auth.md, "Cost bound") and the will ACL check.
#include "auth/authenticator.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mosquitto_fixture.h"
#include "mqtt/properties.h"

namespace ringmq::auth {
namespace {

using connect::AuthResult;

class AuthenticatorTest : public ::testing::Test {
 protected:
  // Replaces the shared data (version + 1) as a SIGHUP would.
  void Load(bool allow_anonymous, bool passwords, const char* acl = nullptr) {
    auto data = std::make_unique<AuthData>();
    data->version = ++version_;
    data->allow_anonymous = allow_anonymous;
    if (passwords) data->passwords = *ParsePasswordFile(testing::kMosquittoPasswordFile, "pw");
    if (acl != nullptr) data->acl = *ParseAclFile(acl, "acl");
    shared_.Replace(std::move(data), nullptr);
  }

  std::unique_ptr<ShardAuthenticator> Make(uint32_t budget) {
    return std::make_unique<ShardAuthenticator>(shared_, budget, &now_ms_, &counters_);
  }

  // On a listener without an allow_anonymous of its own unless `allow_anonymous` is set.
  static AuthResult Check(const ShardAuthenticator& auth, const mqtt::Connect& connect,
                          std::optional<bool> allow_anonymous = std::nullopt) {
    return auth.Check(connect, allow_anonymous);
  }

  static mqtt::Connect Connect(std::optional<std::string_view> user,
                               std::optional<std::string_view> password) {
    mqtt::Connect connect;
    connect.client_id = "c1";
    connect.user_name = user;
    connect.password = password;
    return connect;
  }

  SharedAuth shared_;
  uint64_t version_ = 0;
  uint64_t now_ms_ = 5'000'000;
  metrics::ShardCounters counters_;
};

TEST_F(AuthenticatorTest, ListenerAllowAnonymousOverridesTheBrokerWideKey) {
  Load(/*allow_anonymous=*/false, /*passwords=*/false);
  auto auth = Make(100);
  EXPECT_EQ(Check(*auth, Connect(std::nullopt, std::nullopt)), AuthResult::kNotAuthorized);
  EXPECT_EQ(Check(*auth, Connect(std::nullopt, std::nullopt), true), AuthResult::kAllow);
  // Without a password file a user name is taken as is only where anonymous clients are.
  EXPECT_EQ(Check(*auth, Connect("anyone", "x"), true), AuthResult::kAllow);
  EXPECT_EQ(Check(*auth, Connect("anyone", "x")), AuthResult::kNotAuthorized);
  Load(/*allow_anonymous=*/true, /*passwords=*/true);
  EXPECT_EQ(Check(*auth, Connect(std::nullopt, std::nullopt)), AuthResult::kAllow);
  EXPECT_EQ(Check(*auth, Connect(std::nullopt, std::nullopt), false), AuthResult::kNotAuthorized);
  // Passwords are verified whatever the listener says about anonymous clients.
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret"), false), AuthResult::kAllow);
  EXPECT_EQ(Check(*auth, Connect("alice", "wrong"), true), AuthResult::kBadCredentials);
}

TEST_F(AuthenticatorTest, AnonymousAllowedOnlyWithAllowAnonymous) {
  Load(/*allow_anonymous=*/true, /*passwords=*/true);
  auto auth = Make(100);
  EXPECT_EQ(Check(*auth, Connect(std::nullopt, std::nullopt)), AuthResult::kAllow);
  Load(false, true);
  EXPECT_EQ(Check(*auth, Connect(std::nullopt, std::nullopt)), AuthResult::kNotAuthorized);
  EXPECT_EQ(counters_.auth_verifications.Load(), 0u);
}

TEST_F(AuthenticatorTest, PasswordsAreVerifiedAgainstTheFile) {
  Load(false, true);
  auto auth = Make(100);
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret")), AuthResult::kAllow);
  EXPECT_EQ(Check(*auth, Connect("carol", "carol6")), AuthResult::kAllow);  // $6$
  EXPECT_EQ(Check(*auth, Connect("alice", "wrong")), AuthResult::kBadCredentials);
  EXPECT_EQ(Check(*auth, Connect("carol", "alice-secret")), AuthResult::kBadCredentials);
  EXPECT_EQ(counters_.auth_verifications.Load(), 4u);
  // Unknown user, or no password: refused without hashing.
  EXPECT_EQ(Check(*auth, Connect("mallory", "alice-secret")), AuthResult::kBadCredentials);
  EXPECT_EQ(Check(*auth, Connect("alice", std::nullopt)), AuthResult::kBadCredentials);
  EXPECT_EQ(Check(*auth, Connect("dave", std::nullopt)), AuthResult::kBadCredentials);
  EXPECT_EQ(Check(*auth, Connect("dave", "")), AuthResult::kAllow);  // empty, but present
  EXPECT_EQ(counters_.auth_verifications.Load(), 5u);
}

TEST_F(AuthenticatorTest, VerifiedCredentialsAreCachedUntilReload) {
  Load(false, true);
  auto auth = Make(100);
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret")), AuthResult::kAllow);
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret")), AuthResult::kAllow);
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret")), AuthResult::kAllow);
  EXPECT_EQ(counters_.auth_verifications.Load(), 1u);
  EXPECT_EQ(counters_.auth_cache_hits.Load(), 2u);
  // A cached good password does not let a wrong one in, nor the same one for another user.
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secreT")), AuthResult::kBadCredentials);
  EXPECT_EQ(Check(*auth, Connect("bob", "alice-secret")), AuthResult::kBadCredentials);
  // A reload invalidates the cache: a removed user must not stay cached.
  Load(false, true);
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret")), AuthResult::kAllow);
  EXPECT_EQ(counters_.auth_verifications.Load(), 4u);
  EXPECT_EQ(counters_.auth_cache_hits.Load(), 2u);
}

TEST_F(AuthenticatorTest, FailureBudgetRefusesUncachedCredentialsWithoutHashing) {
  Load(false, true);
  auto auth = Make(3);
  EXPECT_EQ(Check(*auth, Connect("bob", "p:w d \xe2\x82\xac")), AuthResult::kAllow);  // cached
  EXPECT_EQ(Check(*auth, Connect("alice", "x1")), AuthResult::kBadCredentials);
  EXPECT_EQ(Check(*auth, Connect("alice", "x2")), AuthResult::kBadCredentials);
  EXPECT_EQ(Check(*auth, Connect("nobody", "x3")), AuthResult::kBadCredentials);  // counts too
  const uint64_t hashed = counters_.auth_verifications.Load();
  EXPECT_EQ(hashed, 3u);
  // Budget spent for this second: no more hashing, right or wrong.
  EXPECT_EQ(Check(*auth, Connect("alice", "x4")), AuthResult::kRateLimited);
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret")), AuthResult::kRateLimited);
  EXPECT_EQ(Check(*auth, Connect("nobody", "x")), AuthResult::kRateLimited);
  EXPECT_EQ(counters_.auth_verifications.Load(), hashed);
  // Known-good credentials still get in (from the cache), and anonymous rules do not hash.
  EXPECT_EQ(Check(*auth, Connect("bob", "p:w d \xe2\x82\xac")), AuthResult::kAllow);
  // The next second has a new budget.
  now_ms_ += 1000;
  EXPECT_EQ(Check(*auth, Connect("alice", "alice-secret")), AuthResult::kAllow);
  EXPECT_EQ(counters_.auth_verifications.Load(), hashed + 1);
}

TEST_F(AuthenticatorTest, ZeroBudgetMeansNoLimit) {
  Load(false, true);
  auto auth = Make(0);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Check(*auth, Connect("alice", "wrong")), AuthResult::kBadCredentials);
  }
  EXPECT_EQ(counters_.auth_verifications.Load(), 20u);
}

TEST_F(AuthenticatorTest, UserNameWithoutPasswordFile) {
  Load(/*allow_anonymous=*/true, /*passwords=*/false);
  auto auth = Make(100);
  EXPECT_EQ(Check(*auth, Connect("anyone", "anything")), AuthResult::kAllow);
  Load(false, false);  // nothing can verify a user name: everyone is refused, like Mosquitto
  EXPECT_EQ(Check(*auth, Connect("anyone", "anything")), AuthResult::kNotAuthorized);
  EXPECT_EQ(Check(*auth, Connect(std::nullopt, std::nullopt)), AuthResult::kNotAuthorized);
}

TEST_F(AuthenticatorTest, WillTopicMustBeWritable) {
  Load(true, true, "topic read status/#\nuser alice\ntopic alice/#\npattern write wills/%c\n");
  auto auth = Make(100);
  mqtt::Connect connect = Connect("alice", "alice-secret");
  connect.will = mqtt::Will{.topic = "alice/gone", .payload = "", .qos = mqtt::QoS::k0, .retain = false};
  EXPECT_EQ(Check(*auth, connect), AuthResult::kAllow);
  connect.will->topic = "wills/c1";
  EXPECT_EQ(Check(*auth, connect), AuthResult::kAllow);
  connect.will->topic = "wills/c2";
  EXPECT_EQ(Check(*auth, connect), AuthResult::kNotAuthorized);
  mqtt::Connect anonymous = Connect(std::nullopt, std::nullopt);
  anonymous.will = mqtt::Will{.topic = "status/c1", .payload = "", .qos = mqtt::QoS::k0, .retain = false};  // read only for anonymous clients
  EXPECT_EQ(Check(*auth, anonymous), AuthResult::kNotAuthorized);
  anonymous.will.reset();
  EXPECT_EQ(Check(*auth, anonymous), AuthResult::kAllow);
}

// A 5.0 CONNECT with an Authentication Method: the AUTH exchange proves the user, so the
// password steps are skipped; the will is checked once a User Name (the proven user) is set.
TEST_F(AuthenticatorTest, EnhancedAuthenticationSkipsThePasswordAndDefersTheWill) {
  Load(/*allow_anonymous=*/false, true, "user alice\ntopic alice/#\n");
  auto auth = Make(100);
  std::vector<uint8_t> block(
      mqtt::StringPropertySize(mqtt::PropertyId::kAuthenticationMethod, "SCRAM-SHA-256"));
  mqtt::EncodeStringProperty(mqtt::PropertyId::kAuthenticationMethod, "SCRAM-SHA-256", block);
  mqtt::Connect connect = Connect(std::nullopt, "ignored");
  connect.properties = mqtt::Properties(block);
  connect.will = mqtt::Will{.topic = "alice/gone", .payload = "", .qos = mqtt::QoS::k0,
                            .retain = false};
  EXPECT_EQ(Check(*auth, connect), AuthResult::kAllow);  // no user name: not anonymous here
  connect.user_name = "alice";
  EXPECT_EQ(Check(*auth, connect), AuthResult::kAllow);  // wrong password not looked at
  connect.will->topic = "bob/gone";
  EXPECT_EQ(Check(*auth, connect), AuthResult::kNotAuthorized);
  EXPECT_EQ(counters_.auth_verifications.Load(), 0u);
}

// use_identity_as_username: the certificate proved the user; no password (and no password file
// entry) is needed, allow_anonymous does not apply, the will is still checked (as Mosquitto).
TEST_F(AuthenticatorTest, CertificateUserSkipsThePasswordButNotTheWill) {
  Load(/*allow_anonymous=*/false, true, "user carol\ntopic carol/#\n");
  auto auth = Make(0);
  mqtt::Connect connect = Connect("carol", std::nullopt);  // carol is not in the password file
  EXPECT_EQ(auth->Check(connect, std::nullopt), AuthResult::kBadCredentials);
  EXPECT_EQ(auth->CheckCertificateUser(connect), AuthResult::kAllow);
  connect.will = mqtt::Will{.topic = "carol/gone", .payload = "", .qos = mqtt::QoS::k0,
                            .retain = false};
  EXPECT_EQ(auth->CheckCertificateUser(connect), AuthResult::kAllow);
  connect.will->topic = "dave/gone";
  EXPECT_EQ(auth->CheckCertificateUser(connect), AuthResult::kNotAuthorized);
  EXPECT_EQ(counters_.auth_verifications.Load(), 0u);
}

}  // namespace
}  // namespace ringmq::auth

namespace ringmq::auth {
namespace {

// Reload: the replaced data is freed only after every online shard passed a quiescent point.
TEST(SharedAuthTest, ReplacedDataIsRetiredThroughTheEpochDomain) {
  concurrent::EpochDomain epochs(1);
  SharedAuth shared;
  EXPECT_EQ(shared.Load(), nullptr);
  auto first = std::make_unique<AuthData>();
  first->version = 1;
  shared.Replace(std::move(first), &epochs);
  epochs.Online(0);
  const AuthData* held = shared.Load();  // a shard holds it within its loop iteration
  ASSERT_NE(held, nullptr);
  auto second = std::make_unique<AuthData>();
  second->version = 2;
  shared.Replace(std::move(second), &epochs);
  EXPECT_EQ(shared.Load()->version, 2u);
  epochs.Collect();
  EXPECT_EQ(epochs.freed_total(), 0u);  // still held
  EXPECT_EQ(held->version, 1u);
  epochs.Quiescent(0);
  epochs.Collect();
  EXPECT_EQ(epochs.freed_total(), 1u);
  epochs.Offline(0);
}

}  // namespace
}  // namespace ringmq::auth
