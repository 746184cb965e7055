// libFuzzer target for the auth module's parsers and filter algebra (src/auth/).
//
// The first byte chooses what the rest is:
//   0: a password file (ParsePasswordFile): must not crash; an accepted file has at most one
//      user per line, and every accepted hash formats back to text that parses to the same hash.
//   1: an ACL file (ParseAclFile): must not crash; an accepted file compiles for a user and a
//      client id, and the subscribe classification of each of its rule topics (as a filter) is
//      sound against CanRead for every topic name made from its rule topics (wildcard levels
//      made literal) that the filter matches: kAll means CanRead, kNone means !CanRead.
//   2: three NUL-separated strings G, F, T checked against each other when G and F are valid
//      filters and T a valid topic name: FilterCovers and FiltersIntersect must agree with
//      TopicMatches (coverage implies matching, intersection of a filter with a plain topic is
//      matching, two filters matching one topic intersect).
//   3: a SCRAM-SHA-256 exchange (auth/scram.h, auth/enhanced_auth.h): the client-first message,
//      a NUL, the client-final message. Each is parsed alone (a parsed message's views lie inside
//      it), then both are stepped through a server session for RFC 7677's user: it must not
//      crash, fail only with the table's reason codes, continue only after the first message,
//      and succeed only for "user" with a "v=" signature.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "auth/acl.h"
#include "auth/auth_data.h"
#include "auth/enhanced_auth.h"
#include "auth/password_file.h"
#include "auth/password_hash.h"
#include "auth/scram.h"
#include "mqtt/topic.h"

namespace ringmq::auth {
namespace {

#define FUZZ_CHECK(condition)                                                              \
  do {                                                                                     \
    if (!(condition)) {                                                                    \
      std::fprintf(stderr, "auth invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

void PasswordFile(std::string_view text) {
  absl::StatusOr<PasswordTable> table = ParsePasswordFile(text, "fuzz");
  if (!table.ok()) return;
  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  FUZZ_CHECK(table->size() <= lines);
  // Every accepted hash survives a format/parse round trip.
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string error;
    std::string_view hash_text = line.substr(colon + 1);
    while (!hash_text.empty() && (hash_text.back() == '\r' || hash_text.back() == ' ' ||
                                  hash_text.back() == '\t')) {
      hash_text.remove_suffix(1);
    }
    std::optional<PasswordHash> hash = ParsePasswordHash(hash_text, &error);
    if (!hash) continue;
    std::optional<PasswordHash> again = ParsePasswordHash(FormatPasswordHash(*hash), &error);
    FUZZ_CHECK(again.has_value() && *again == *hash);
  }
}

// Topic names made from a rule's filter: each wildcard level made literal ("x"), and for a
// trailing '#' also the parent alone (MQTT-4.7.1-2). Only valid names are kept.
void AddTopicsOf(std::string_view filter, std::vector<std::string>& topics) {
  std::string literal;
  std::string parent;
  size_t start = 0;
  while (start <= filter.size()) {
    size_t end = filter.find('/', start);
    if (end == std::string_view::npos) end = filter.size();
    const std::string_view level = filter.substr(start, end - start);
    if (level == "#") parent = literal.empty() ? std::string() : literal.substr(0, literal.size() - 1);
    literal.append(level == "+" || level == "#" ? std::string_view("x") : level);
    if (end < filter.size()) literal.push_back('/');
    start = end + 1;
  }
  for (const std::string& topic : {literal, parent}) {
    if (mqtt::ValidateTopicName(topic) == mqtt::Violation::kNone) topics.push_back(topic);
  }
}

void AclText(std::string_view text) {
  absl::StatusOr<AclFile> file = ParseAclFile(text, "fuzz");
  if (!file.ok()) return;
  std::vector<std::string_view> filters;
  for (const AclRule& rule : file->anonymous()) filters.push_back(rule.topic);
  for (const AclRule& rule : file->patterns()) filters.push_back(rule.topic);
  constexpr size_t kMaxFilters = 32;  // the checks are quadratic in the rules
  if (filters.size() > kMaxFilters) filters.resize(kMaxFilters);
  std::vector<std::string> topics;
  for (std::string_view filter : filters) AddTopicsOf(filter, topics);
  for (std::optional<std::string_view> user : {std::optional<std::string_view>(),
                                                std::optional<std::string_view>("u")}) {
    const ClientAcl acl = ClientAcl::Compile(*file, user, "c");
    for (std::string_view filter : filters) {
      const ReadScope scope = acl.ClassifySubscription(filter);
      for (const std::string& topic : topics) {
        if (!TopicMatches(filter, topic)) continue;
        const bool readable = acl.CanRead(topic);
        if (scope == ReadScope::kAll) FUZZ_CHECK(readable);
        if (scope == ReadScope::kNone) FUZZ_CHECK(!readable);
        (void)acl.CanPublish(topic);
      }
    }
  }
}

void Algebra(std::string_view text) {
  const size_t first = text.find('\0');
  if (first == std::string_view::npos) return;
  const size_t second = text.find('\0', first + 1);
  if (second == std::string_view::npos) return;
  const std::string_view g = text.substr(0, first);
  const std::string_view f = text.substr(first + 1, second - first - 1);
  const std::string_view t = text.substr(second + 1);
  if (mqtt::ValidateTopicFilter(g) != mqtt::Violation::kNone ||
      mqtt::ValidateTopicFilter(f) != mqtt::Violation::kNone ||
      mqtt::ValidateTopicName(t) != mqtt::Violation::kNone) {
    return;
  }
  const bool f_matches = TopicMatches(f, t);
  const bool g_matches = TopicMatches(g, t);
  FUZZ_CHECK(FilterCovers(f, f));
  FUZZ_CHECK(FilterCovers(g, t) == g_matches);
  FUZZ_CHECK(FiltersIntersect(f, t) == f_matches);
  if (FilterCovers(g, f) && f_matches) FUZZ_CHECK(g_matches);
  if (f_matches && g_matches) FUZZ_CHECK(FiltersIntersect(g, f) && FiltersIntersect(f, g));
}

bool Inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

// RFC 7677's user ("user" / "pencil") in a password file, built once.
const SharedAuth& ScramUsers() {
  static const SharedAuth* shared = [] {
    PasswordHash hash;
    hash.kind = HashKind::kScramSha256;
    hash.iterations = 4096;
    hash.salt = *Base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==");
    ComputeHash(hash, "pencil", hash.hash);
    auto data = std::make_unique<AuthData>();
    data->version = 1;
    data->passwords = *ParsePasswordFile("user:" + FormatPasswordHash(hash) + "\n", "fuzz");
    auto* result = new SharedAuth();
    result->Replace(std::move(data), nullptr);
    return result;
  }();
  return *shared;
}

void Scram(std::string_view text) {
  const size_t split = text.find('\0');
  const std::string_view first = text.substr(0, split);
  const std::string_view final_message =
      split == std::string_view::npos ? std::string_view() : text.substr(split + 1);
  scram::ClientFirst parsed_first;
  if (scram::ParseClientFirst(first, &parsed_first) == scram::ParseError::kNone) {
    FUZZ_CHECK(Inside(parsed_first.user, first) && Inside(parsed_first.nonce, first));
    FUZZ_CHECK(first.ends_with(parsed_first.bare) && scram::IsNonce(parsed_first.nonce));
  }
  scram::ClientFinal parsed_final;
  if (scram::ParseClientFinal(final_message, &parsed_final) == scram::ParseError::kNone) {
    FUZZ_CHECK(final_message.starts_with(parsed_final.without_proof));
    FUZZ_CHECK(Inside(parsed_final.nonce, parsed_final.without_proof));
  }
  static metrics::ShardCounters counters;
  static const ScramSha256Method method(ScramUsers(), nullptr, &counters, [] {
    return std::string("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");  // RFC 7677's server nonce
  });
  std::unique_ptr<AuthSession> session = method.Start(std::nullopt);
  const AuthStep step = session->Step(first);
  if (step.status == AuthStatus::kFailure) {
    FUZZ_CHECK(step.reason == ReasonCodeOf(step.failure) && step.failure != AuthFailure::kNone);
    return;
  }
  FUZZ_CHECK(step.status == AuthStatus::kContinue && step.data.starts_with("r="));
  const AuthStep last = session->Step(final_message);
  FUZZ_CHECK(last.status != AuthStatus::kContinue);
  if (last.status == AuthStatus::kSuccess) {
    FUZZ_CHECK(last.user == "user" && last.data.starts_with("v="));
  } else {
    FUZZ_CHECK(last.reason == ReasonCodeOf(last.failure) && last.failure != AuthFailure::kNone);
  }
}

}  // namespace
}  // namespace ringmq::auth

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      ringmq::auth::PasswordFile(text);
      break;
    case 1:
      ringmq::auth::AclText(text);
      break;
    case 2:
      ringmq::auth::Algebra(text);
      break;
    default:
      ringmq::auth::Scram(text);
      break;
  }
  return 0;
}
