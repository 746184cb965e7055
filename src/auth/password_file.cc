#include "auth/password_file.h"

#include "absl/strings/str_cat.h"
#include "auth/text_file.h"
#include "mqtt/topic.h"

namespace ringmq::auth {

const PasswordHash* PasswordTable::Find(std::string_view user) const {
  const auto it = users_.find(absl::string_view(user.data(), user.size()));
  return it == users_.end() ? nullptr : &it->second;
}

absl::StatusOr<PasswordTable> ParsePasswordFile(std::string_view text,
                                                std::string_view file_name) {
  PasswordTable table;
  std::string error;
  size_t error_line = 0;
  ForEachLine(text, [&](size_t number, std::string_view line) {
    if (line.empty() || line.front() == '#') return true;
    error_line = number;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      error = "expected user:hash";
      return false;
    }
    const std::string_view user = line.substr(0, colon);
    if (user.empty() || user.size() > kMaxUserNameBytes ||
        mqtt::ValidateUtf8(user) != mqtt::Violation::kNone) {
      error = "user name is empty, longer than 65535 bytes or not valid UTF-8";
      return false;
    }
    std::optional<PasswordHash> hash = ParsePasswordHash(line.substr(colon + 1), &error);
    if (!hash) return false;
    const auto [it, inserted] =
        table.users_.try_emplace(absl::string_view(user.data(), user.size()), std::move(*hash));
    if (!inserted) {
      error = absl::StrCat("user '", std::string(user), "' is listed twice");
      return false;
    }
    return true;
  });
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(file_name), ":", error_line, ": ", error));
  }
  return table;
}

}  // namespace ringmq::auth
