// The password file parser: Mosquitto's files as they are, and every error with FILE:LINE.
#include "auth/password_file.h"

#include <gtest/gtest.h>

#include <string>

#include "mosquitto_fixture.h"

namespace ringmq::auth {
namespace {

const std::string kAliceLine =
    std::string(testing::kMosquittoPasswordFile).substr(0, std::string(testing::kMosquittoPasswordFile).find('\n'));
const std::string kAliceHash = kAliceLine.substr(kAliceLine.find(':') + 1);

TEST(PasswordFileTest, ParsesMosquittoFile) {
  absl::StatusOr<PasswordTable> table = ParsePasswordFile(testing::kMosquittoPasswordFile, "pw");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 4u);
  ASSERT_NE(table->Find("carol"), nullptr);
  EXPECT_EQ(table->Find("carol")->kind, HashKind::kSha512);
  EXPECT_EQ(table->Find("mallory"), nullptr);
  EXPECT_EQ(table->Find("ALICE"), nullptr);  // user names are case-sensitive
}

TEST(PasswordFileTest, SkipsCommentsBlankLinesAndCarriageReturns) {
  const std::string text = "# users\n\n   \n  # indented comment\r\nalice:" + kAliceHash +
                           "\r\n\t\nzed:" + kAliceHash;  // last line without '\n'
  absl::StatusOr<PasswordTable> table = ParsePasswordFile(text, "pw");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 2u);
  ASSERT_NE(table->Find("zed"), nullptr);
  EXPECT_TRUE(VerifyPassword(*table->Find("zed"), "alice-secret"));
}

TEST(PasswordFileTest, EmptyFileHasNoUsers) {
  absl::StatusOr<PasswordTable> table = ParsePasswordFile("", "pw");
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->size(), 0u);
}

void ExpectFileError(const std::string& text, const std::string& where, const std::string& what) {
  absl::StatusOr<PasswordTable> table = ParsePasswordFile(text, "/etc/ringmq/pw");
  ASSERT_FALSE(table.ok()) << text;
  const std::string message(table.status().message());
  EXPECT_EQ(message.rfind("/etc/ringmq/pw:" + where + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
}

TEST(PasswordFileTest, EveryBadLineIsAnErrorWithFileAndLine) {
  const std::string good = "alice:" + kAliceHash + "\n";
  ExpectFileError(good + "# ok\nbob\n", "3", "expected user:hash");
  ExpectFileError(good + ":" + kAliceHash + "\n", "2", "user name is empty");
  ExpectFileError("bad\xff:" + kAliceHash + "\n", "1", "UTF-8");
  ExpectFileError(good + "bob:plaintext\n", "2", "password hash is not");
  ExpectFileError(good + "bob:$5$abcd$abcd\n", "2", "unknown password hash type");
  ExpectFileError(good + "bob:$1$abcd$abcd\n", "2", "unknown password hash type");
  ExpectFileError(good + "bob:$7$0$ekdR1l5oJEluwkx4$abcd\n", "2", "iterations");
  ExpectFileError(good + "bob:$7$101$@@@@$abcd\n", "2", "salt");
  ExpectFileError(good + "bob:$7$101$ekdR1l5oJEluwkx4$abcd\n", "2", "hash is not base64 of 64");
  ExpectFileError(good + "\n" + good, "3", "user 'alice' is listed twice");
  ExpectFileError(std::string(70000, 'u') + ":" + kAliceHash, "1", "longer than 65535");
}

}  // namespace
}  // namespace ringmq::auth
