// SCRAM-SHA-256 messages and keys (auth/scram.h), checked against RFC 7677 §3's example
// exchange (user "user", password "pencil") and the grammar of RFC 5802 §7.
#include "auth/scram.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "auth/password_hash.h"

namespace ringmq::auth::scram {
namespace {

// RFC 7677 §3.
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

std::vector<uint8_t> Rfc7677Salt() { return *Base64Decode("W22ZaJ0SNY7soEsUEjb6gQ=="); }

std::string AuthMessage() {
  ClientFirst first;
  ClientFinal final_message;
  EXPECT_EQ(ParseClientFirst(kClientFirst, &first), ParseError::kNone);
  EXPECT_EQ(ParseClientFinal(kClientFinal, &final_message), ParseError::kNone);
  return std::string(first.bare) + "," + std::string(kServerFirst) + "," +
         std::string(final_message.without_proof);
}

TEST(ScramTest, ParsesRfc7677Messages) {
  ClientFirst first;
  ASSERT_EQ(ParseClientFirst(kClientFirst, &first), ParseError::kNone);
  EXPECT_EQ(first.gs2_header, "n,,");
  EXPECT_EQ(first.user, "user");
  EXPECT_EQ(first.nonce, "rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(first.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
  ClientFinal final_message;
  ASSERT_EQ(ParseClientFinal(kClientFinal, &final_message), ParseError::kNone);
  EXPECT_EQ(final_message.channel_binding, "biws");
  EXPECT_EQ(final_message.nonce, "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  EXPECT_EQ(final_message.without_proof,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
}

TEST(ScramTest, Rfc7677ProofVerifiesAndServerSignatureMatches) {
  const Key salted = SaltedPassword("pencil", Rfc7677Salt(), 4096);
  const ServerKeys keys = KeysFromSaltedPassword(salted);
  const std::string auth_message = AuthMessage();
  // The client's proof computed here is the one in the RFC's client-final message.
  const Key proof = ClientProof(salted, auth_message);
  EXPECT_EQ("p=" + Base64Encode(proof.data(), proof.size()),
            kClientFinal.substr(kClientFinal.find(",p=") + 1));
  ClientFinal final_message;
  ASSERT_EQ(ParseClientFinal(kClientFinal, &final_message), ParseError::kNone);
  EXPECT_TRUE(VerifyProof(keys.stored_key, auth_message, final_message.proof));
  const Key signature = Hmac(keys.server_key, auth_message);
  EXPECT_EQ("v=" + Base64Encode(signature.data(), signature.size()), kServerFinal);
}

TEST(ScramTest, WrongPasswordOrAlteredMessageFailsTheProof) {
  const ServerKeys keys = DeriveKeys("pencil", Rfc7677Salt(), 4096);
  const std::string auth_message = AuthMessage();
  const Key wrong = ClientProof(SaltedPassword("pencil2", Rfc7677Salt(), 4096), auth_message);
  EXPECT_FALSE(VerifyProof(keys.stored_key, auth_message, wrong));
  const Key right = ClientProof(SaltedPassword("pencil", Rfc7677Salt(), 4096), auth_message);
  EXPECT_TRUE(VerifyProof(keys.stored_key, auth_message, right));
  EXPECT_FALSE(VerifyProof(keys.stored_key, auth_message + "x", right));
}

TEST(ScramTest, ClientFirstRefusesWhatIsNotSupported) {
  ClientFirst first;
  EXPECT_EQ(ParseClientFirst("p=tls-unique,,n=u,r=abc", &first),
            ParseError::kChannelBindingRequired);
  EXPECT_EQ(ParseClientFirst("n,a=admin,n=u,r=abc", &first), ParseError::kAuthzidUnsupported);
  EXPECT_EQ(ParseClientFirst("n,,m=ext,n=u,r=abc", &first), ParseError::kMandatoryExtension);
  EXPECT_EQ(ParseClientFirst("", &first), ParseError::kBadGs2Header);
  EXPECT_EQ(ParseClientFirst("x,,n=u,r=abc", &first), ParseError::kBadGs2Header);
  EXPECT_EQ(ParseClientFirst("n,n=u,r=abc", &first), ParseError::kBadGs2Header);
  EXPECT_EQ(ParseClientFirst("n,,", &first), ParseError::kBadUserName);
  EXPECT_EQ(ParseClientFirst("n,,n=,r=abc", &first), ParseError::kBadUserName);
  EXPECT_EQ(ParseClientFirst("n,,n=a=2Xb,r=abc", &first), ParseError::kBadUserName);
  EXPECT_EQ(ParseClientFirst("n,,n=u", &first), ParseError::kBadNonce);
  EXPECT_EQ(ParseClientFirst("n,,n=u,r=", &first), ParseError::kBadNonce);
  EXPECT_EQ(ParseClientFirst("n,,n=u,x=1", &first), ParseError::kBadNonce);
  EXPECT_EQ(ParseClientFirst("n,,n=u,r=a b", &first), ParseError::kBadNonce);
  EXPECT_EQ(ParseClientFirst("n,,n=u,r=" + std::string(kMaxNonceBytes + 1, 'a'), &first),
            ParseError::kBadNonce);
  EXPECT_EQ(ParseClientFirst("n,,n=u,r=" + std::string(kMaxMessageBytes, 'a'), &first),
            ParseError::kTooLong);
}

TEST(ScramTest, ClientFirstAcceptsYFlagEscapesAndExtensions) {
  ClientFirst first;
  ASSERT_EQ(ParseClientFirst("y,,n=a=2Cb=3Dc,r=xyz,e=ignored", &first), ParseError::kNone);
  EXPECT_EQ(first.gs2_header, "y,,");
  EXPECT_EQ(first.nonce, "xyz");
  std::string user;
  ASSERT_TRUE(DecodeUserName(first.user, &user));
  EXPECT_EQ(user, "a,b=c");
  EXPECT_EQ(EncodeUserName(user), first.user);
  EXPECT_FALSE(DecodeUserName("a=", &user));
  EXPECT_FALSE(DecodeUserName("a=2", &user));
}

TEST(ScramTest, ClientFinalRefusesMissingOrMisplacedAttributes) {
  ClientFinal out;
  const std::string proof = "p=" + std::string(kClientFinal.substr(kClientFinal.find("p=") + 2));
  EXPECT_EQ(ParseClientFinal("r=abc," + proof, &out), ParseError::kBadChannelBinding);
  EXPECT_EQ(ParseClientFinal("c=,r=abc," + proof, &out), ParseError::kBadChannelBinding);
  EXPECT_EQ(ParseClientFinal("c=biws," + proof, &out), ParseError::kBadNonce);
  EXPECT_EQ(ParseClientFinal("c=biws,r=abc", &out), ParseError::kBadProof);
  EXPECT_EQ(ParseClientFinal("c=biws,r=abc,p=AAAA", &out), ParseError::kBadProof);
  EXPECT_EQ(ParseClientFinal("c=biws,r=abc," + proof + ",x=1", &out), ParseError::kBadProof);
  const std::string with_extension = "c=biws,r=abc,x=1," + proof;  // out views into it
  ASSERT_EQ(ParseClientFinal(with_extension, &out), ParseError::kNone);
  EXPECT_EQ(out.without_proof, "c=biws,r=abc,x=1");
  EXPECT_EQ(ParseClientFinal("c=biws,r=" + std::string(kMaxMessageBytes, 'a') + "," + proof, &out),
            ParseError::kTooLong);
}

}  // namespace
}  // namespace ringmq::auth::scram
