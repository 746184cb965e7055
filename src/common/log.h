// Leveled logging to stderr: one write(2) per line, so lines from different shards never
// interleave. Format: "2026-12-01T12:00:00.123Z INFO  message".
//
// Logging is for events (start, stop, connection refusals at debug), never per message.
// RINGMQ_LOG checks the level before formatting, so a disabled level costs one relaxed load.
//
// Thread safety: all functions are safe from any thread. SetLogLevel and SilenceLogs are meant
// for start-up.
#ifndef RINGMQ_COMMON_LOG_H_
#define RINGMQ_COMMON_LOG_H_

#include <atomic>

#include "ringmq/config.h"

namespace ringmq {

void SetLogLevel(LogLevel level);
// No line at any level until the next SetLogLevel: for fuzz targets, which run the broker's code
// millions of times and would otherwise log a line per refused or accepted CONNECT.
void SilenceLogs();
bool LogEnabled(LogLevel level);

// printf-style; the line is truncated at 8 KiB.
void LogLine(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

// Budget for lines about individual connections (accepted, refused, closed for a violation or a
// timeout): every one is logged at debug; at info at most `per_second` per second per owner (one
// per shard), so a connection storm cannot flood the log or spend the shard's time formatting.
// When a window ends with lines left out, the next logged event is preceded by one line that
// says how many.
//
// Thread safety: one owner thread.
class ConnectionEventLog {
 public:
  explicit ConnectionEventLog(uint32_t per_second = 10) : per_second_(per_second) {}
  // The level to log an event at, now: kDebug when debug is enabled; kInfo within the budget
  // when info is enabled. False (and the event counted as left out) otherwise.
  bool Admit(uint64_t now_ms, LogLevel* level);
  uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  uint32_t per_second_;
  uint64_t window_start_ms_ = 0;
  uint32_t logged_in_window_ = 0;
  uint64_t suppressed_in_window_ = 0;
  uint64_t suppressed_total_ = 0;
};

}  // namespace ringmq

#define RINGMQ_LOG(level, ...)               \
  do {                                       \
    if (::ringmq::LogEnabled(level)) {       \
      ::ringmq::LogLine(level, __VA_ARGS__); \
    }                                        \
  } while (0)

#define RINGMQ_LOG_DEBUG(...) RINGMQ_LOG(::ringmq::LogLevel::kDebug, __VA_ARGS__)
#define RINGMQ_LOG_INFO(...) RINGMQ_LOG(::ringmq::LogLevel::kInfo, __VA_ARGS__)
#define RINGMQ_LOG_WARNING(...) RINGMQ_LOG(::ringmq::LogLevel::kWarning, __VA_ARGS__)
#define RINGMQ_LOG_ERROR(...) RINGMQ_LOG(::ringmq::LogLevel::kError, __VA_ARGS__)

#endif  // RINGMQ_COMMON_LOG_H_
