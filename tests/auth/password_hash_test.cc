// Password hashes: base64, the $6$ / $7$ formats, and verification against hashes written by
// the real mosquitto_passwd (a committed fixture and, when installed, one made at run time).
#include "auth/password_hash.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "auth/password_file.h"
#include "mosquitto_fixture.h"

namespace ringmq::auth {
namespace {

PasswordHash FixtureHash(std::string_view user) {
  absl::StatusOr<PasswordTable> table =
      ParsePasswordFile(testing::kMosquittoPasswordFile, "fixture");
  EXPECT_TRUE(table.ok()) << table.status();
  const PasswordHash* hash = table->Find(user);
  EXPECT_NE(hash, nullptr);
  return hash != nullptr ? *hash : PasswordHash{};
}

TEST(PasswordHashTest, VerifiesMosquittoPbkdf2Hashes) {
  EXPECT_TRUE(VerifyPassword(FixtureHash("alice"), "alice-secret"));
  EXPECT_FALSE(VerifyPassword(FixtureHash("alice"), "alice-secreT"));
  EXPECT_FALSE(VerifyPassword(FixtureHash("alice"), ""));
  EXPECT_TRUE(VerifyPassword(FixtureHash("bob"), "p:w d \xe2\x82\xac"));  // ':' ' ' and '€'
  EXPECT_FALSE(VerifyPassword(FixtureHash("bob"), "p:w d"));
  EXPECT_TRUE(VerifyPassword(FixtureHash("dave"), ""));
  EXPECT_FALSE(VerifyPassword(FixtureHash("dave"), " "));
}

TEST(PasswordHashTest, VerifiesMosquittoSha512Hashes) {
  const PasswordHash carol = FixtureHash("carol");
  EXPECT_EQ(carol.kind, HashKind::kSha512);
  EXPECT_TRUE(VerifyPassword(carol, "carol6"));
  EXPECT_FALSE(VerifyPassword(carol, "carol7"));
}

TEST(PasswordHashTest, FormatGivesBackWhatMosquittoWrote) {
  std::istringstream lines(testing::kMosquittoPasswordFile);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    const size_t colon = line.find(':');
    std::string error;
    std::optional<PasswordHash> hash = ParsePasswordHash(line.substr(colon + 1), &error);
    ASSERT_TRUE(hash) << error;
    EXPECT_EQ(FormatPasswordHash(*hash), line.substr(colon + 1));
    ++count;
  }
  EXPECT_EQ(count, 4);
}

TEST(PasswordHashTest, NewHashesAreLikeMosquittoDefaults) {
  std::optional<PasswordHash> first = NewPasswordHash("s3cret");
  std::optional<PasswordHash> second = NewPasswordHash("s3cret");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->kind, HashKind::kPbkdf2Sha512);
  EXPECT_EQ(first->iterations, 101u);
  EXPECT_EQ(first->salt.size(), 12u);
  EXPECT_NE(first->salt, second->salt);  // random salts
  EXPECT_NE(first->hash, second->hash);
  EXPECT_TRUE(VerifyPassword(*first, "s3cret"));
  EXPECT_FALSE(VerifyPassword(*first, "s3creT"));
  const std::string text = FormatPasswordHash(*first);
  EXPECT_EQ(text.rfind("$7$101$", 0), 0u) << text;
  std::string error;
  EXPECT_EQ(ParsePasswordHash(text, &error), first);
}

TEST(PasswordHashTest, ScramEntriesRoundTripAndVerifyPlainPasswords) {
  std::optional<PasswordHash> hash = NewScramHash("s3cret");
  ASSERT_TRUE(hash);
  EXPECT_EQ(hash->kind, HashKind::kScramSha256);
  EXPECT_EQ(hash->iterations, 4096u);
  EXPECT_EQ(hash->salt.size(), 16u);
  EXPECT_TRUE(VerifyPassword(*hash, "s3cret"));
  EXPECT_FALSE(VerifyPassword(*hash, "s3creT"));
  const std::string text = FormatPasswordHash(*hash);
  EXPECT_EQ(text.rfind("$scram-sha-256$4096$", 0), 0u) << text;
  std::string error;
  EXPECT_EQ(ParsePasswordHash(text, &error), hash) << error;
}

// RFC 7677 §3's user ("pencil", its salt, 4096 iterations): StoredKey and ServerKey as the RFC's
// exchange implies them (checked end to end in scram_test.cc and enhanced_auth_test.cc).
TEST(PasswordHashTest, ScramEntryFormatIsFixed) {
  PasswordHash hash;
  hash.kind = HashKind::kScramSha256;
  hash.iterations = 4096;
  hash.salt = *Base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  ComputeHash(hash, "pencil", hash.hash);
  EXPECT_EQ(FormatPasswordHash(hash),
            "$scram-sha-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
            "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=$"
            "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
}

TEST(PasswordHashTest, ParseRejectsEveryMalformedForm) {
  const std::string salt = "ekdR1l5oJEluwkx4";
  const std::string digest = Base64Encode(std::vector<uint8_t>(64, 7).data(), 64);
  const std::string short_digest = Base64Encode(std::vector<uint8_t>(63, 7).data(), 63);
  const std::string key = Base64Encode(std::vector<uint8_t>(32, 7).data(), 32);
  const std::string short_key = Base64Encode(std::vector<uint8_t>(31, 7).data(), 31);
  const std::string cases[] = {
      "",
      "plaintext",
      "$5$" + salt + "$" + digest,           // unknown type
      "7$101$" + salt + "$" + digest,        // no leading '$'
      "$7$" + salt + "$" + digest,           // no iterations
      "$7$0$" + salt + "$" + digest,         // iterations < 1
      "$7$1000001$" + salt + "$" + digest,   // above the bound
      "$7$10x$" + salt + "$" + digest,       // not a number
      "$7$-5$" + salt + "$" + digest,
      "$7$101$" + salt,                      // no hash
      "$7$101$" + salt + "$" + digest + "$", // extra field
      "$7$101$$" + digest,                   // empty salt
      "$7$101$ekdR1l5oJEluwkx$" + digest,    // salt not base64
      "$7$101$" + salt + "$" + short_digest, // hash not 64 bytes
      "$6$101$" + salt + "$" + digest,       // $6$ has no iterations
      "$6$" + salt + "$" + digest.substr(1), // hash not base64
      "$scram-sha-256$4096$" + salt + "$" + key,                    // no ServerKey
      "$scram-sha-256$4096$" + salt + "$" + key + "$" + key + "$",  // extra field
      "$scram-sha-256$0$" + salt + "$" + key + "$" + key,           // iterations < 1
      "$scram-sha-256$4096$" + salt + "$" + digest + "$" + key,     // StoredKey not 32 bytes
      "$scram-sha-256$4096$" + salt + "$" + key + "$" + short_key,  // ServerKey not 32 bytes
      "$SCRAM-SHA-256$4096$" + salt + "$" + key + "$" + key,        // the tag is lower case
  };
  for (const std::string& text : cases) {
    std::string error;
    EXPECT_FALSE(ParsePasswordHash(text, &error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

// A file made now by the installed mosquitto_passwd, so a new Mosquitto release that changed
// its format would show up here.
TEST(PasswordHashTest, VerifiesWhatTheInstalledMosquittoPasswdWrites) {
  if (access("/usr/bin/mosquitto_passwd", X_OK) != 0) {
    GTEST_SKIP() << "mosquitto_passwd is not installed (scripts/install-deps.sh installs it)";
  }
  const std::string path = ::testing::TempDir() + "ringmq-mosquitto-pw-" + std::to_string(getpid());
  for (const char* type : {"sha512-pbkdf2", "sha512"}) {
    const std::string command = "/usr/bin/mosquitto_passwd -c -H " + std::string(type) + " -b " +
                                path + " runtime 'Run time pw!' >/dev/null 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    absl::StatusOr<PasswordTable> table = ParsePasswordFile(text.str(), path);
    ASSERT_TRUE(table.ok()) << table.status();
    const PasswordHash* hash = table->Find("runtime");
    ASSERT_NE(hash, nullptr);
    EXPECT_TRUE(VerifyPassword(*hash, "Run time pw!")) << type;
    EXPECT_FALSE(VerifyPassword(*hash, "Run time pw")) << type;
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ringmq::auth
