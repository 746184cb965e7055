#include "cluster/subject.h"

#include <algorithm>
#include <array>

#include "common/assert.h"
#include "mqtt/topic.h"

namespace ringmq::cluster {
namespace {

// An MQTT string's length is a 16-bit integer (MQTT 1.5.3).
constexpr size_t kMaxTopicBytes = 65535;

// What a byte of a topic level is to the mapping.
enum class ByteClass : uint8_t {
  kPlain,       // copied as it is
  kSeparator,   // '/'
  kDot,         // '.' -> "//"
  kWildcard,    // '+' or '#': not in a topic name; in a filter only as a whole level
  kWhitespace,  // not in a NATS subject
  kDelete,      // 0x7f
};

constexpr std::array<ByteClass, 256> MakeByteClasses() {
  std::array<ByteClass, 256> classes{};
  classes['/'] = ByteClass::kSeparator;
  classes['.'] = ByteClass::kDot;
  classes['+'] = ByteClass::kWildcard;
  classes['#'] = ByteClass::kWildcard;
  for (const char c : {' ', '\t', '\n', '\r', '\f'}) {
    classes[static_cast<uint8_t>(c)] = ByteClass::kWhitespace;
  }
  classes[0x7f] = ByteClass::kDelete;
  return classes;
}
constexpr std::array<ByteClass, 256> kByteClasses = MakeByteClasses();

ByteClass ClassOf(char c) { return kByteClasses[static_cast<uint8_t>(c)]; }

// Writes the token of one literal level (no '/' in it) at `w` and returns the end, or nullptr
// with `why` set. `w` has room for 2 * level.size() + 1 bytes.
char* WriteLevel(std::string_view level, char* w, Uncarried& why) {
  if (level.empty()) {
    *w++ = '/';
    return w;
  }
  if (level == "*" || level == ">") {
    why = Uncarried::kWildcardLevel;
    return nullptr;
  }
  for (const char c : level) {
    switch (ClassOf(c)) {
      case ByteClass::kPlain:
        *w++ = c;
        break;
      case ByteClass::kDot:
        *w++ = '/';
        *w++ = '/';
        break;
      case ByteClass::kWildcard:
        why = Uncarried::kNotATopicName;
        return nullptr;
      case ByteClass::kWhitespace:
        why = Uncarried::kWhitespace;
        return nullptr;
      case ByteClass::kDelete:
        why = Uncarried::kDelete;
        return nullptr;
      case ByteClass::kSeparator:
        RINGMQ_ASSERT(false);  // the caller splits levels at '/'
    }
  }
  return w;
}

// Makes room in `out` for the prefix, its '.', and `body_max` bytes, writes the prefix and
// returns where the body goes.
char* StartSubject(std::string& out, std::string_view prefix, size_t body_max) {
  const size_t start = out.size();
  out.resize(start + prefix.size() + 1 + body_max);
  char* w = out.data() + start;
  if (!prefix.empty()) {
    w = std::copy(prefix.begin(), prefix.end(), w);
    *w++ = '.';
  }
  return w;
}

// Writes the tokens of the levels of `text` (a topic, or a filter without wildcard levels) at
// `w`, separated by '.'; returns the end or nullptr with `why` set.
char* WriteLevels(std::string_view text, char* w, Uncarried& why) {
  mqtt::LevelSplitter levels(text);
  std::string_view level;
  bool first = true;
  while (levels.Next(level)) {
    if (!first) {
      *w++ = '.';
    }
    first = false;
    w = WriteLevel(level, w, why);
    if (w == nullptr) {
      return nullptr;
    }
  }
  return w;
}

// Appends the topic level of NATS token `token` to `out`; false when no level maps to it.
bool AppendLevelOfToken(std::string_view token, std::string& out) {
  if (token.empty() || token == "*" || token == ">") {
    return false;
  }
  if (token == "/") {
    return true;  // the empty level
  }
  for (size_t i = 0; i < token.size(); ++i) {
    const char c = token[i];
    switch (ClassOf(c)) {
      case ByteClass::kPlain:
        out.push_back(c);
        break;
      case ByteClass::kSeparator:
        if (i + 1 == token.size() || token[i + 1] != '/') {
          return false;  // a lone '/' inside a token
        }
        out.push_back('.');
        ++i;
        break;
      case ByteClass::kDot:  // the caller splits tokens at '.'
      case ByteClass::kWildcard:
      case ByteClass::kWhitespace:
      case ByteClass::kDelete:
        return false;
    }
  }
  return true;
}

}  // namespace

bool IsValidSubjectPrefix(std::string_view prefix) {
  if (prefix.empty()) {
    return true;
  }
  size_t token_start = 0;
  for (size_t i = 0; i <= prefix.size(); ++i) {
    if (i < prefix.size() && prefix[i] != '.') {
      const ByteClass c = ClassOf(prefix[i]);
      if (c == ByteClass::kWhitespace || c == ByteClass::kDelete) {
        return false;
      }
      continue;
    }
    const std::string_view token = prefix.substr(token_start, i - token_start);
    if (token.empty() || token == "*" || token == ">") {
      return false;
    }
    token_start = i + 1;
  }
  return true;
}

std::string_view UncarriedName(Uncarried reason) {
  switch (reason) {
    case Uncarried::kNone:
      return "none";
    case Uncarried::kNotATopicName:
      return "not_a_topic_name";
    case Uncarried::kWhitespace:
      return "whitespace";
    case Uncarried::kDelete:
      return "delete";
    case Uncarried::kWildcardLevel:
      return "wildcard_level";
    case Uncarried::kTooLong:
      return "too_long";
  }
  return "unknown";
}

Uncarried TopicToSubject(std::string_view topic, const SubjectMapping& mapping, std::string& out) {
  RINGMQ_ASSERT(IsValidSubjectPrefix(mapping.prefix));
  if (topic.empty()) {
    return Uncarried::kNotATopicName;  // MQTT-4.7.3-1
  }
  const size_t start = out.size();
  // Each byte becomes at most 2 ('.' -> "//"), and the last level, if empty, adds one '/'.
  char* const body = StartSubject(out, mapping.prefix, 2 * topic.size() + 1);
  Uncarried why = Uncarried::kNone;
  char* const end = WriteLevels(topic, body, why);
  if (end == nullptr) {
    out.resize(start);
    return why;
  }
  const size_t size = static_cast<size_t>(end - (out.data() + start));
  if (size > mapping.max_subject_bytes) {
    out.resize(start);
    return Uncarried::kTooLong;
  }
  out.resize(start + size);
  return Uncarried::kNone;
}

bool SubjectToTopic(std::string_view subject, std::string_view prefix, std::string& out) {
  if (!prefix.empty()) {
    if (subject.size() <= prefix.size() + 1 || !subject.starts_with(prefix) ||
        subject[prefix.size()] != '.') {
      return false;
    }
    subject.remove_prefix(prefix.size() + 1);
  }
  if (subject.empty()) {
    return false;
  }
  const size_t start = out.size();
  size_t token_start = 0;
  for (size_t i = 0; i <= subject.size(); ++i) {
    if (i < subject.size() && subject[i] != '.') {
      continue;
    }
    if (token_start != 0) {
      out.push_back('/');
    }
    if (!AppendLevelOfToken(subject.substr(token_start, i - token_start), out)) {
      out.resize(start);
      return false;
    }
    token_start = i + 1;
  }
  const std::string_view topic = std::string_view(out).substr(start);
  if (topic.size() > kMaxTopicBytes || mqtt::ValidateTopicName(topic) != mqtt::Violation::kNone) {
    out.resize(start);
    return false;
  }
  return true;
}

FilterCover FilterToSubjects(std::string_view filter, const SubjectMapping& mapping,
                             std::string& out) {
  RINGMQ_ASSERT(IsValidSubjectPrefix(mapping.prefix));
  if (filter.empty()) {
    return FilterCover::kNothing;  // MQTT-4.7.3-1
  }
  const size_t start = out.size();
  char* w = StartSubject(out, mapping.prefix, 2 * filter.size() + 1);
  mqtt::LevelSplitter levels(filter);
  std::string_view level;
  size_t level_count = 0;
  bool multi_level = false;
  size_t parent_size = 0;  // of the subject before ".>", when the filter ends in "/#"
  while (levels.Next(level)) {
    if (multi_level) {
      out.resize(start);
      return FilterCover::kNothing;  // '#' not last (MQTT-4.7.1-2)
    }
    if (level_count++ != 0) {
      parent_size = static_cast<size_t>(w - (out.data() + start));
      *w++ = '.';
    }
    if (level == "+") {
      *w++ = '*';
    } else if (level == "#") {
      *w++ = '>';
      multi_level = true;
    } else {
      Uncarried why = Uncarried::kNone;
      w = WriteLevel(level, w, why);
      if (w == nullptr) {
        out.resize(start);  // a wildcard inside a level, or a level no carried topic has
        return FilterCover::kNothing;
      }
    }
  }
  const size_t size = static_cast<size_t>(w - (out.data() + start));
  // The parent of "x/#" is topic x; "/#" has none (the empty topic is no topic name).
  const bool has_parent = multi_level && level_count > 1 && filter != "/#";
  if (size <= mapping.max_subject_bytes) {
    out.resize(start + size);
    return has_parent ? FilterCover::kWithParent : FilterCover::kOne;
  }
  if (has_parent && parent_size <= mapping.max_subject_bytes) {
    out.resize(start + parent_size);
    return FilterCover::kOne;
  }
  out.resize(start);
  return FilterCover::kNothing;
}

std::string_view ParentSubject(std::string_view subject) {
  RINGMQ_ASSERT(subject.size() > 2 && subject.ends_with(".>"));
  return subject.substr(0, subject.size() - 2);
}

}  // namespace ringmq::cluster
