#include "common/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

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
  // Lines are formatted on the stack; one longer than the buffer (the shutdown counters line,
  // some 9 KB and growing with every counter) is formatted again on the heap, whole: a log line
  // is never cut (operators and the integration tests parse the counters line).
  char line[4096];
  const uint64_t now_ns = ClockNs(CLOCK_REALTIME);
  const auto seconds = static_cast<time_t>(now_ns / 1'000'000'000);
  const auto milliseconds = static_cast<long>(now_ns % 1'000'000'000 / 1'000'000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  const int prefix = std::snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                                   utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                   utc.tm_min, utc.tm_sec, milliseconds, LevelName(level));
  const size_t room = sizeof(line) - static_cast<size_t>(prefix) - 1;  // 1: the newline
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int body = std::vsnprintf(line + prefix, room + 1, format, args);
  va_end(args);
  if (body < 0) {
    va_end(again);
    return;
  }
  if (static_cast<size_t>(body) <= room) {
    va_end(again);
    const size_t length = static_cast<size_t>(prefix + body);
    line[length] = '\n';
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, line, length + 1);
    return;
  }
  std::string long_line(line, static_cast<size_t>(prefix));
  long_line.resize(static_cast<size_t>(prefix) + static_cast<size_t>(body) + 1);
  std::vsnprintf(long_line.data() + prefix, static_cast<size_t>(body) + 1, format, again);
  va_end(again);
  long_line.back() = '\n';
  [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, long_line.data(), long_line.size());
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
