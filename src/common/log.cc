#include "common/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <ctime>

#include "common/clock.h"

namespace ringmq {
namespace {

// The lowest LogLevel logged, as a number; kSilent is above every level.
constexpr uint8_t kSilent = static_cast<uint8_t>(LogLevel::kError) + 1;
std::atomic<uint8_t> g_threshold{static_cast<uint8_t>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO ";
    case LogLevel::kWarning:
      return "WARN ";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?????";
}

}  // namespace

void SetLogLevel(LogLevel level) {
  g_threshold.store(static_cast<uint8_t>(level), std::memory_order_relaxed);
}

void SilenceLogs() { g_threshold.store(kSilent, std::memory_order_relaxed); }

bool LogEnabled(LogLevel level) {
  return static_cast<uint8_t>(level) >= g_threshold.load(std::memory_order_relaxed);
}

void LogLine(LogLevel level, const char* format, ...) {
  char line[8192];  // the shutdown counters line is the longest
  const uint64_t now_ns = ClockNs(CLOCK_REALTIME);
  const auto seconds = static_cast<time_t>(now_ns / 1'000'000'000);
  const auto milliseconds = static_cast<long>(now_ns % 1'000'000'000 / 1'000'000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  int length = std::snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                             utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                             utc.tm_min, utc.tm_sec, milliseconds, LevelName(level));
  va_list args;
  va_start(args, format);
  const int body =
      std::vsnprintf(line + length, sizeof(line) - static_cast<size_t>(length) - 1, format, args);
  va_end(args);
  if (body > 0) length += body;
  if (length > static_cast<int>(sizeof(line)) - 2) length = static_cast<int>(sizeof(line)) - 2;
  line[length++] = '\n';
  [[maybe_unused]] const ssize_t written =
      ::write(STDERR_FILENO, line, static_cast<size_t>(length));
}

bool ConnectionEventLog::Admit(uint64_t now_ms, LogLevel* level) {
  if (LogEnabled(LogLevel::kDebug)) {
    *level = LogLevel::kDebug;
    return true;
  }
  if (!LogEnabled(LogLevel::kInfo)) return false;
  if (now_ms >= window_start_ms_ + 1000) {
    if (suppressed_in_window_ > 0) {
      LogLine(LogLevel::kInfo,
              "%llu connection events not logged (at most %u per second per shard at info; "
              "--log-level debug logs every one)",
              static_cast<unsigned long long>(suppressed_in_window_), per_second_);
    }
    window_start_ms_ = now_ms;
    logged_in_window_ = 0;
    suppressed_in_window_ = 0;
  }
  if (logged_in_window_ >= per_second_) {
    ++suppressed_in_window_;
    ++suppressed_total_;
    return false;
  }
  ++logged_in_window_;
  *level = LogLevel::kInfo;
  return true;
}

}  // namespace ringmq
