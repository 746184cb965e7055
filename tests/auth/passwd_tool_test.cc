// `ringmq passwd`: creating, updating and deleting entries, atomically and with mode 0600.
// The interoperability with Mosquitto's broker is tested end to end in
// tests/integration/test_auth.py.
#include "auth/passwd_tool.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "auth/password_file.h"

namespace ringmq::auth {
namespace {

class PasswdToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "ringmq-passwd-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::remove(path_.c_str());
  }
  void TearDown() override { std::remove(path_.c_str()); }

  int Run(std::vector<std::string> args, const std::string& stdin_text = "") {
    args.insert(args.begin(), "passwd");
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::string input = stdin_text;
    std::FILE* in = input.empty() ? std::fopen("/dev/null", "r")
                                  : fmemopen(input.data(), input.size(), "r");
    char* error_text = nullptr;
    size_t error_size = 0;
    std::FILE* err = open_memstream(&error_text, &error_size);
    const int status = RunPasswd(static_cast<int>(args.size()), argv.data(), in, err);
    std::fclose(in);
    std::fclose(err);
    errors_ = error_text;
    free(error_text);
    return status;
  }

  std::string Contents() const {
    std::ifstream file(path_);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }

  bool Verifies(const std::string& user, const std::string& password) const {
    absl::StatusOr<PasswordTable> table = ParsePasswordFile(Contents(), path_);
    EXPECT_TRUE(table.ok()) << table.status();
    if (!table.ok() || table->Find(user) == nullptr) return false;
    return VerifyPassword(*table->Find(user), password);
  }

  std::string path_;
  std::string errors_;
};

TEST_F(PasswdToolTest, CreateWritesMosquittoDefaultFormatWithMode0600) {
  ASSERT_EQ(Run({"-c", "-b", path_, "alice", "s3cret"}), 0) << errors_;
  const std::string text = Contents();
  EXPECT_EQ(text.rfind("alice:$7$101$", 0), 0u) << text;
  EXPECT_EQ(text.back(), '\n');
  EXPECT_TRUE(Verifies("alice", "s3cret"));
  EXPECT_FALSE(Verifies("alice", "s3creT"));
  struct stat info {};
  ASSERT_EQ(stat(path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST_F(PasswdToolTest, ScramWritesScramSha256EntriesNextToMosquittoOnes) {
  ASSERT_EQ(Run({"-c", "--scram", "-b", path_, "eve", "s3cret"}), 0) << errors_;
  ASSERT_EQ(Run({"-b", path_, "alice", "one"}), 0) << errors_;
  const std::string text = Contents();
  EXPECT_EQ(text.rfind("eve:$scram-sha-256$4096$", 0), 0u) << text;
  EXPECT_NE(text.find("\nalice:$7$101$"), std::string::npos) << text;
  EXPECT_TRUE(Verifies("eve", "s3cret"));
  EXPECT_FALSE(Verifies("eve", "s3creT"));
  EXPECT_TRUE(Verifies("alice", "one"));
  EXPECT_EQ(Run({"-D", "--scram", path_, "eve"}), 2);  // --scram only when writing
}

TEST_F(PasswdToolTest, AddsUpdatesInPlaceAndKeepsOtherLines) {
  {
    std::ofstream file(path_);
    file << "# managed by hand\n\n";
  }
  ASSERT_EQ(Run({"-b", path_, "alice", "one"}), 0) << errors_;
  ASSERT_EQ(Run({"-b", path_, "bob", "two"}), 0) << errors_;
  ASSERT_EQ(Run({"-b", path_, "alice", "three"}), 0) << errors_;
  const std::string text = Contents();
  EXPECT_EQ(text.rfind("# managed by hand\n\nalice:", 0), 0u) << text;  // alice stays first
  EXPECT_NE(text.find("\nbob:"), std::string::npos);
  EXPECT_TRUE(Verifies("alice", "three"));
  EXPECT_FALSE(Verifies("alice", "one"));
  EXPECT_TRUE(Verifies("bob", "two"));
}

TEST_F(PasswdToolTest, DeleteRemovesOnlyThatUser) {
  ASSERT_EQ(Run({"-c", "-b", path_, "alice", "one"}), 0);
  ASSERT_EQ(Run({"-b", path_, "bob", "two"}), 0);
  ASSERT_EQ(Run({"-D", path_, "alice"}), 0) << errors_;
  EXPECT_EQ(Contents().find("alice"), std::string::npos);
  EXPECT_TRUE(Verifies("bob", "two"));
  EXPECT_EQ(Run({"-D", path_, "alice"}), 1);
  EXPECT_NE(errors_.find("not found"), std::string::npos) << errors_;
}

TEST_F(PasswdToolTest, ReadsOneLineFromPipedStdin) {
  ASSERT_EQ(Run({"-c", path_, "carol"}, "from stdin\n"), 0) << errors_;
  EXPECT_TRUE(Verifies("carol", "from stdin"));
  EXPECT_EQ(Run({path_, "carol"}, ""), 1);  // nothing on stdin
  EXPECT_TRUE(Verifies("carol", "from stdin"));  // unchanged
}

TEST_F(PasswdToolTest, RefusesBadArgumentsWithoutTouchingTheFile) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_EQ(Run({"-b", path_, "alice"}), 2);               // -b needs a password
  EXPECT_EQ(Run({path_, "alice", "extra"}), 2);            // password only with -b
  EXPECT_EQ(Run({"-c", "-D", path_, "alice"}), 2);
  EXPECT_EQ(Run({"-x", path_, "alice"}), 2);
  EXPECT_NE(errors_.find("unknown option -x"), std::string::npos) << errors_;
  EXPECT_EQ(Run({"-b", path_, "alice", "pw"}), 1);  // no -c and no file
  EXPECT_EQ(Run({"-c", "-b", path_, "al:ice", "pw"}), 1);
  EXPECT_EQ(Run({"-c", "-b", path_, "", "pw"}), 1);
  EXPECT_EQ(access(path_.c_str(), F_OK), -1);  // never created
}

}  // namespace
}  // namespace ringmq::auth
