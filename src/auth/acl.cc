#include "auth/acl.h"

#include "absl/strings/str_cat.h"
#include "auth/text_file.h"
#include "mqtt/topic.h"

namespace ringmq::auth {
namespace {

// Walks the '/'-separated levels of a topic or filter without allocating.
class Levels {
 public:
  explicit Levels(std::string_view text) : rest_(text) {}
  bool done() const { return done_; }
  std::string_view Peek() const { return rest_.substr(0, rest_.find('/')); }
  std::string_view Next() {
    const size_t slash = rest_.find('/');
    const std::string_view level = rest_.substr(0, slash);
    if (slash == std::string_view::npos) {
      done_ = true;
      rest_ = {};
    } else {
      rest_.remove_prefix(slash + 1);
    }
    return level;
  }
  // Only this level is left and it is `level`.
  bool LastIs(std::string_view level) const {
    return !done_ && rest_.find('/') == std::string_view::npos && rest_ == level;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

bool IsWildcard(std::string_view level) { return level == "+" || level == "#"; }
// MQTT-4.7.2-1: a wildcard in the first level does not match a topic starting with '$'.
bool IsDollarLiteral(std::string_view level) {
  return !level.empty() && level.front() == '$' && !IsWildcard(level);
}

bool ParseAccess(std::string_view word, Access* access) {
  if (word == "read") *access = kRead;
  else if (word == "write") *access = kWrite;
  else if (word == "readwrite") *access = kReadWrite;
  else if (word == "deny") *access = kDeny;
  else return false;
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// "[access] TOPIC" after `topic` or `pattern`. Returns an error message or empty.
std::string ParseRule(std::string_view rest, AclRule* rule) {
  rest = Trim(rest);
  if (rest.empty()) return "missing topic";
  const size_t blank = rest.find_first_of(" \t");
  if (blank == std::string_view::npos) {
    rule->access = kReadWrite;  // a single word is the topic
    rule->topic.assign(rest);
  } else {
    const std::string_view word = rest.substr(0, blank);
    if (!ParseAccess(word, &rule->access)) {
      return absl::StrCat("unknown access '", std::string(word), "' (read, write, readwrite or deny)");
    }
    rule->topic.assign(Trim(rest.substr(blank)));
  }
  if (mqtt::ValidateTopicFilter(rule->topic) != mqtt::Violation::kNone) {
    return absl::StrCat("'", rule->topic, "' is not a valid topic filter");
  }
  return {};
}

// Replaces %c and %u (Mosquitto leaves any other '%' as it is).
std::string Substitute(std::string_view pattern, std::string_view client_id,
                       std::string_view user) {
  std::string out;
  out.reserve(pattern.size() + client_id.size());
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() &&
        (pattern[i + 1] == 'c' || pattern[i + 1] == 'u')) {
      out.append(pattern[i + 1] == 'c' ? client_id : user);
      ++i;
    } else {
      out.push_back(pattern[i]);
    }
  }
  return out;
}

bool Uses(std::string_view pattern, std::string_view marker) {
  return pattern.find(marker) != std::string_view::npos;
}
// A value that would widen a pattern (see the header).
bool Dangerous(std::string_view value) {
  return value.find_first_of("+#/") != std::string_view::npos;
}

}  // namespace

bool TopicMatches(std::string_view filter, std::string_view topic) {
  Levels f(filter);
  Levels t(topic);
  bool first = true;
  while (!f.done()) {
    const std::string_view level = f.Next();
    if (level == "#") return !(first && !t.done() && IsDollarLiteral(t.Peek()));
    if (t.done()) return false;
    const std::string_view name = t.Next();
    if (level == "+") {
      if (first && IsDollarLiteral(name)) return false;
    } else if (level != name) {
      return false;
    }
    first = false;
  }
  return t.done();
}

bool FilterCovers(std::string_view outer, std::string_view inner) {
  Levels g(outer);
  Levels f(inner);
  bool first = true;
  while (true) {
    if (g.done()) return f.done();
    if (g.Peek() == "#") {
      // `#` also matches the parent level (MQTT-4.7.1-2), so an exhausted inner is covered.
      return !(first && !f.done() && IsDollarLiteral(f.Peek()));
    }
    if (f.done()) return false;
    const std::string_view grant = g.Next();
    const std::string_view level = f.Next();
    if (level == "#") {
      // Inner also matches its parent, which a non-'#' outer level cannot. Except at the top,
      // where there is no parent topic: `+/#` covers `#`.
      return first && grant == "+" && g.LastIs("#");
    }
    if (grant == "+") {
      if (first && IsDollarLiteral(level)) return false;
    } else if (grant != level) {  // a literal covers only the same literal (not '+')
      return false;
    }
    first = false;
  }
}

bool FiltersIntersect(std::string_view a_filter, std::string_view b_filter) {
  Levels a(a_filter);
  Levels b(b_filter);
  bool first = true;
  while (true) {
    if (a.done() && b.done()) return true;
    if (a.done()) return b.Peek() == "#";
    if (b.done()) return a.Peek() == "#";
    const std::string_view x = a.Next();
    const std::string_view y = b.Next();
    if (IsWildcard(x) || IsWildcard(y)) {
      const std::string_view other = IsWildcard(x) ? y : x;
      if (first && IsDollarLiteral(other)) return false;
      if (x == "#" || y == "#") return true;
    } else if (x != y) {
      return false;
    }
    first = false;
  }
}

const std::vector<AclRule>* AclFile::user(std::string_view name) const {
  const auto it = users_.find(absl::string_view(name.data(), name.size()));
  return it == users_.end() ? nullptr : &it->second;
}

absl::StatusOr<AclFile> ParseAclFile(std::string_view text, std::string_view file_name) {
  AclFile file;
  std::vector<AclRule>* section = &file.anonymous_;
  std::string error;
  size_t error_line = 0;
  ForEachLine(text, [&](size_t number, std::string_view line) {
    if (line.empty() || line.front() == '#') return true;
    error_line = number;
    const size_t blank = line.find_first_of(" \t");
    const std::string_view keyword = line.substr(0, blank);
    const std::string_view rest =
        blank == std::string_view::npos ? std::string_view() : line.substr(blank);
    if (keyword == "user") {
      const std::string_view name = Trim(rest);
      if (name.empty()) {
        error = "missing user name";
        return false;
      }
      section = &file.users_[absl::string_view(name.data(), name.size())];
      return true;
    }
    if (keyword != "topic" && keyword != "pattern") {
      error = absl::StrCat("unknown keyword '", std::string(keyword), "' (topic, pattern or user)");
      return false;
    }
    AclRule rule;
    error = ParseRule(rest, &rule);
    if (!error.empty()) return false;
    (keyword == "topic" ? *section : file.patterns_).push_back(std::move(rule));
    ++file.rule_count_;
    return true;
  });
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(file_name), ":", error_line, ": ", error));
  }
  return file;
}

void ClientAcl::Add(std::string topic, Access access) {
  if (access == kDeny) {
    denies_.push_back(std::move(topic));
  } else {
    grants_.push_back(AclRule{std::move(topic), access});
  }
}

ClientAcl ClientAcl::Compile(const AclFile& file, std::optional<std::string_view> user,
                             std::string_view client_id) {
  ClientAcl acl;
  acl.deny_all_ = false;
  const std::vector<AclRule>* own = user ? file.user(*user) : &file.anonymous();
  if (own != nullptr) {
    for (const AclRule& rule : *own) acl.Add(rule.topic, rule.access);
  }
  for (const AclRule& rule : file.patterns()) {
    const bool uses_user = Uses(rule.topic, "%u");
    const bool uses_client = Uses(rule.topic, "%c");
    if (uses_user && !user) continue;  // as Mosquitto: no user name, no %u rule
    if ((uses_user && Dangerous(*user)) || (uses_client && Dangerous(client_id))) {
      return ClientAcl();  // denied everything (see the header)
    }
    acl.Add(Substitute(rule.topic, client_id, user.value_or("")), rule.access);
  }
  return acl;
}

bool ClientAcl::Allows(std::string_view topic, Access access) const {
  if (deny_all_) return false;
  for (const std::string& deny : denies_) {
    if (TopicMatches(deny, topic)) return false;
  }
  for (const AclRule& grant : grants_) {
    if ((grant.access & access) != 0 && TopicMatches(grant.topic, topic)) return true;
  }
  return false;
}

ReadScope ClientAcl::ClassifySubscription(std::string_view filter) const {
  if (deny_all_) return ReadScope::kNone;
  bool deny_overlaps = false;
  for (const std::string& deny : denies_) {
    if (FilterCovers(deny, filter)) return ReadScope::kNone;  // every topic of it is denied
    deny_overlaps = deny_overlaps || FiltersIntersect(deny, filter);
  }
  bool grant_overlaps = false;
  for (const AclRule& grant : grants_) {
    if ((grant.access & kRead) == 0) continue;
    if (!deny_overlaps && FilterCovers(grant.topic, filter)) return ReadScope::kAll;
    grant_overlaps = grant_overlaps || FiltersIntersect(grant.topic, filter);
  }
  return grant_overlaps ? ReadScope::kSome : ReadScope::kNone;
}

}  // namespace ringmq::auth
