// Leveled logging to stderr: one write(2) per line, so lines from different shards never
// interleave. Format: "2026-12-01T12:00:00.123Z INFO  message".
//
// Logging is for events (start, stop, connection refusals at debug), never per message.
// RINGMQ_LOG checks the level before formatting, so a disabled level costs one relaxed load.
//
// Thread safety: all functions are safe from any thread. SetLogLevel is meant for start-up.
#ifndef RINGMQ_COMMON_LOG_H_
#define RINGMQ_COMMON_LOG_H_

#include <atomic>

#include "ringmq/config.h"

namespace ringmq {

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// printf-style; the line is truncated at 8 KiB.
void LogLine(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

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
