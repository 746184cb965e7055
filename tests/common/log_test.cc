// Unit tests for the log level switch (src/common/log.h).
#include "common/log.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ringmq
