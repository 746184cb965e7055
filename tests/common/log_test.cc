// Unit tests for the log level switch (src/common/log.h).
#include "common/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace ringmq {
namespace {

// Restores the default level, so that other tests see the process as main() leaves it.
class LogLevelTest : public ::testing::Test {
 protected:
  ~LogLevelTest() override { SetLogLevel(LogLevel::kInfo); }
};

TEST_F(LogLevelTest, LevelAndAboveAreEnabled) {
  SetLogLevel(LogLevel::kWarning);
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kWarning));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
}

TEST_F(LogLevelTest, SilenceLogsDisablesEveryLevelUntilSetLogLevel) {
  SilenceLogs();
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_FALSE(LogEnabled(LogLevel::kWarning));
  EXPECT_FALSE(LogEnabled(LogLevel::kError));
  SetLogLevel(LogLevel::kDebug);
  EXPECT_TRUE(LogEnabled(LogLevel::kDebug));
}

// What LogLine writes to stderr while `log` runs (stderr is a temporary file meanwhile).
template <typename Fn>
std::string CaptureStderr(Fn log) {
  char path[] = "/tmp/ringmq-log-test-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  unlink(path);
  const int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  log();
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string out;
  char buffer[4096];
  lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  close(fd);
  return out;
}

TEST_F(LogLevelTest, ALineLongerThanTheStackBufferIsWrittenWhole) {
  // The shutdown counters line passed 8 KB (the earlier fixed buffer) and was cut mid-name.
  for (const size_t size : {10u, 4000u, 4096u, 20000u}) {
    const std::string body(size, 'x');
    const std::string out =
        CaptureStderr([&] { LogLine(LogLevel::kInfo, "counters: %s end", body.c_str()); });
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\n');
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
    EXPECT_NE(out.find(" INFO  counters: " + body + " end\n"), std::string::npos) << size;
  }
}

}  // namespace
}  // namespace ringmq
