// Reading the small text files of the auth module (password file, ACL file) and splitting them
// into numbered lines for parsers that report errors as FILE:LINE.
//
// Thread safety: stateless functions.
#ifndef RINGMQ_AUTH_TEXT_FILE_H_
#define RINGMQ_AUTH_TEXT_FILE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ringmq::auth {

// A password or ACL file larger than this is refused: both are read whole into memory at start
// and on every SIGHUP.
inline constexpr size_t kMaxAuthFileBytes = 64 << 20;

// The whole file, or an error naming the path (missing, unreadable, too large).
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

// Calls `fn(line_number, line)` for each line (1-based), without the line end ("\n" or
// "\r\n") and with leading and trailing blanks removed. Stops at the first `fn` returning false;
// returns false then.
template <typename Fn>
bool ForEachLine(std::string_view text, Fn fn) {
  size_t number = 0;
  while (!text.empty()) {
    ++number;
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!fn(number, line)) return false;
  }
  return true;
}

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_TEXT_FILE_H_
