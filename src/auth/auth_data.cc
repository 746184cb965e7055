#include "auth/auth_data.h"

#include "absl/strings/str_cat.h"
#include "auth/text_file.h"

namespace ringmq::auth {

std::string AuthData::Summary() const {
  std::string out = passwords ? absl::StrCat(passwords->size(), " users") : "no password file";
  absl::StrAppend(&out, ", ");
  if (acl) {
    absl::StrAppend(&out, acl->rule_count(), " ACL rules (", acl->user_count(), " user sections)");
  } else {
    absl::StrAppend(&out, "no ACL file");
  }
  absl::StrAppend(&out, ", allow_anonymous ", allow_anonymous ? "true" : "false");
  return out;
}

absl::StatusOr<std::unique_ptr<AuthData>> LoadAuthData(const Config& config, uint64_t version) {
  auto data = std::make_unique<AuthData>();
  data->version = version;
  data->allow_anonymous = config.allow_anonymous;
  if (!config.password_file.empty()) {
    absl::StatusOr<std::string> text = ReadTextFile(config.password_file);
    if (!text.ok()) return text.status();
    absl::StatusOr<PasswordTable> table = ParsePasswordFile(*text, config.password_file);
    if (!table.ok()) return table.status();
    data->passwords = std::move(*table);
  }
  if (!config.acl_file.empty()) {
    absl::StatusOr<std::string> text = ReadTextFile(config.acl_file);
    if (!text.ok()) return text.status();
    absl::StatusOr<AclFile> acl = ParseAclFile(*text, config.acl_file);
    if (!acl.ok()) return acl.status();
    data->acl = std::move(*acl);
  }
  return data;
}

bool AuthConfigured(const Config& config) {
  if (!config.password_file.empty() || !config.acl_file.empty() || !config.allow_anonymous) {
    return true;
  }
  for (const ListenerConfig& listener : config.listeners) {
    if (listener.allow_anonymous.has_value() && !*listener.allow_anonymous) return true;
  }
  return false;
}

}  // namespace ringmq::auth
