// The password file: one `user:hash` per line as mosquitto_passwd writes it (see
// auth/password_hash.h for the hash formats). Lines that are empty or start with '#' are
// skipped. Anything else that is not a valid entry is an error reported as FILE:LINE: a broker
// refuses to start with such a file, and a reload keeps the data it has (docs/auth.md).
//
// Unlike Mosquitto, which logs and skips a line it cannot use, a bad line is an error: a typo
// must not silently lock a user out (or, with allow_anonymous, let them in anonymously).
// A user name listed twice is an error too.
//
// Thread safety: a PasswordTable is immutable once parsed; Find is safe from any thread.
#ifndef RINGMQ_AUTH_PASSWORD_FILE_H_
#define RINGMQ_AUTH_PASSWORD_FILE_H_

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "auth/password_hash.h"

namespace ringmq::auth {

// User names are MQTT strings: at most 65535 bytes.
inline constexpr size_t kMaxUserNameBytes = 65535;

class PasswordTable {
 public:
  // Null when the user is not listed.
  const PasswordHash* Find(std::string_view user) const;
  size_t size() const { return users_.size(); }

 private:
  friend absl::StatusOr<PasswordTable> ParsePasswordFile(std::string_view, std::string_view);
  absl::flat_hash_map<std::string, PasswordHash> users_;
};

// Parses the text of a password file; `file_name` only names it in errors.
absl::StatusOr<PasswordTable> ParsePasswordFile(std::string_view text, std::string_view file_name);

}  // namespace ringmq::auth

#endif  // RINGMQ_AUTH_PASSWORD_FILE_H_
