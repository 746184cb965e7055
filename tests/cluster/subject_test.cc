#include "cluster/subject.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "../cluster/nats_subject_matcher.h"
#include "auth/acl.h"
#include "cluster/control.h"
#include "cluster/subject_cases_path.h"  // RINGMQ_SUBJECT_CASES_PATH (tests/cluster/meson.build)
#include "mqtt/topic.h"

namespace ringmq::cluster {
namespace {

using reference::NatsMatches;

// ---------------------------------------------------------------------------------------------
// The shared table tests/cluster/subject_cases.txt (its format is described at its top; the
// integration test reads it the same way).

struct Case {
  std::string kind;    // map, refuse, unmapped, filter
  std::string first;   // topic (map, refuse), subject (unmapped) or filter
  std::string second;  // subject (map, filter) or reason (refuse)
  std::string third;   // the parent subject of a filter, if it has one
  int line = 0;
};

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes the escapes of a field; false when one is malformed.
bool Unescape(std::string_view field, std::string& out) {
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\') {
      out.push_back(field[i]);
      continue;
    }
    if (++i == field.size()) return false;
    switch (field[i]) {
      case '\\':
        out.push_back('\\');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'x': {
        if (i + 2 >= field.size()) return false;
        const int high = HexDigit(field[i + 1]);
        const int low = HexDigit(field[i + 2]);
        if (high < 0 || low < 0) return false;
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        break;
      }
      case '{': {
        const size_t colon = field.find(':', i);
        const size_t close = field.find('}', i);
        if (colon == std::string_view::npos || close == std::string_view::npos || close < colon) {
          return false;
        }
        const int count = std::atoi(std::string(field.substr(i + 1, colon - i - 1)).c_str());
        if (count <= 0) return false;
        for (int n = 0; n < count; ++n) out.append(field.substr(colon + 1, close - colon - 1));
        i = close;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

std::vector<Case> LoadCases() {
  std::ifstream file(RINGMQ_SUBJECT_CASES_PATH, std::ios::binary);
  EXPECT_TRUE(file.is_open()) << RINGMQ_SUBJECT_CASES_PATH;
  std::vector<Case> cases;
  std::string line;
  int number = 0;
  while (std::getline(file, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string_view> fields;
    std::string_view rest = line;
    for (size_t tab; (tab = rest.find('\t')) != std::string_view::npos;) {
      fields.push_back(rest.substr(0, tab));
      rest.remove_prefix(tab + 1);
    }
    fields.push_back(rest);
    Case c;
    c.line = number;
    c.kind = std::string(fields[0]);
    const bool sized = c.kind == "unmapped" ? fields.size() == 2
                       : c.kind == "filter" ? fields.size() == 3 || fields.size() == 4
                       : c.kind == "map"    ? fields.size() == 3
                       : c.kind == "refuse" ? fields.size() == 3
                                            : false;
    if (!sized) {
      ADD_FAILURE() << "subject_cases.txt:" << number << ": malformed line";
      continue;
    }
    const bool ok = Unescape(fields[1], c.first) &&
                    (fields.size() < 3 || Unescape(fields[2], c.second)) &&
                    (fields.size() < 4 || Unescape(fields[3], c.third));
    if (!ok) {
      ADD_FAILURE() << "subject_cases.txt:" << number << ": bad escape";
      continue;
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = LoadCases();
  return cases;
}

std::vector<Case> CasesOf(std::string_view kind) {
  std::vector<Case> out;
  for (const Case& c : Cases()) {
    if (c.kind == kind) out.push_back(c);
  }
  return out;
}

std::string Where(const Case& c) { return "subject_cases.txt:" + std::to_string(c.line); }

std::string Subject(std::string_view topic, std::string_view prefix = "") {
  std::string out;
  const Uncarried why = TopicToSubject(topic, SubjectMapping{.prefix = prefix}, out);
  return why == Uncarried::kNone ? out : "<" + std::string(UncarriedName(why)) + ">";
}

std::string Topic(std::string_view subject, std::string_view prefix = "") {
  std::string out;
  return SubjectToTopic(subject, prefix, out) ? out : "<unmapped>";
}

TEST(SubjectCases, TableHasEveryKindAndEveryReason) {
  EXPECT_GE(CasesOf("map").size(), 40u);
  EXPECT_GE(CasesOf("refuse").size(), 20u);
  EXPECT_GE(CasesOf("unmapped").size(), 20u);
  EXPECT_GE(CasesOf("filter").size(), 20u);
  std::set<std::string> reasons;
  for (const Case& c : CasesOf("refuse")) reasons.insert(c.second);
  for (const Uncarried why : {Uncarried::kNotATopicName, Uncarried::kWhitespace, Uncarried::kDelete,
                              Uncarried::kWildcardLevel, Uncarried::kTooLong}) {
    EXPECT_TRUE(reasons.contains(std::string(UncarriedName(why)))) << UncarriedName(why);
  }
}

TEST(SubjectCases, MappedTopicsGiveTheirSubjectAndBack) {
  for (const Case& c : CasesOf("map")) {
    EXPECT_EQ(mqtt::ValidateTopicName(c.first), mqtt::Violation::kNone) << Where(c);
    EXPECT_EQ(Subject(c.first), c.second) << Where(c);
    EXPECT_EQ(Topic(c.second), c.first) << Where(c);
  }
}

TEST(SubjectCases, MappingAppendsAfterWhatTheBufferHolds) {
  for (const Case& c : CasesOf("map")) {
    std::string out = "held";
    ASSERT_EQ(TopicToSubject(c.first, SubjectMapping{}, out), Uncarried::kNone) << Where(c);
    EXPECT_EQ(out, "held" + c.second) << Where(c);
    out = "held";
    ASSERT_TRUE(SubjectToTopic(c.second, "", out)) << Where(c);
    EXPECT_EQ(out, "held" + c.first) << Where(c);
  }
}

TEST(SubjectCases, PrefixGoesInFrontWithADot) {
  for (const std::string prefix : {"mqtt", "site-1.mqtt"}) {
    for (const Case& c : CasesOf("map")) {
      const std::string subject = prefix + "." + c.second;
      if (subject.size() > kMaxSubjectBytesDefault) {
        EXPECT_EQ(Subject(c.first, prefix), "<too_long>") << Where(c);
        continue;
      }
      EXPECT_EQ(Subject(c.first, prefix), subject) << Where(c);
      EXPECT_EQ(Topic(subject, prefix), c.first) << Where(c);
      EXPECT_EQ(Topic(c.second, prefix), "<unmapped>") << Where(c);  // the prefix is missing
    }
  }
}

TEST(SubjectCases, RefusedTopicsSayWhyAndAppendNothing) {
  for (const Case& c : CasesOf("refuse")) {
    std::string out = "held";
    const Uncarried why = TopicToSubject(c.first, SubjectMapping{}, out);
    EXPECT_EQ(UncarriedName(why), c.second) << Where(c);
    EXPECT_EQ(out, "held") << Where(c);
  }
}

TEST(SubjectCases, UnmappedSubjectsAppendNothing) {
  for (const Case& c : CasesOf("unmapped")) {
    std::string out = "held";
    EXPECT_FALSE(SubjectToTopic(c.first, "", out)) << Where(c);
    EXPECT_EQ(out, "held") << Where(c);
  }
}

// Every subject SubjectToTopic accepts is the subject of the topic it gives (the mapping is a
// bijection between carried topics and accepted subjects), over every table entry and the
// subjects made of the tokens that have a meaning.
TEST(SubjectCases, AcceptedSubjectsAreTheSubjectsOfTheirTopics) {
  std::vector<std::string> subjects;
  for (const Case& c : Cases()) subjects.push_back(c.kind == "map" ? c.second : c.first);
  const std::vector<std::string> tokens = {"a",  "/",  "//",  "///", "////", "*", ">",   "",
                                           "a/", "/a", "a//", "$b",  "+",    "é", "\x7f"};
  for (const std::string& one : tokens) {
    subjects.push_back(one);
    for (const std::string& two : tokens) {
      subjects.push_back(one + "." + two);
      for (const std::string& three : tokens) subjects.push_back(one + "." + two + "." + three);
    }
  }
  const SubjectMapping unbounded{.max_subject_bytes = SIZE_MAX};
  size_t accepted = 0;
  for (const std::string& subject : subjects) {
    std::string topic;
    if (!SubjectToTopic(subject, "", topic)) continue;
    ++accepted;
    std::string back;
    ASSERT_EQ(TopicToSubject(topic, unbounded, back), Uncarried::kNone) << subject;
    EXPECT_EQ(back, subject);
  }
  EXPECT_GT(accepted, 100u);
}

// ---------------------------------------------------------------------------------------------
// Bounds.

TEST(SubjectBounds, SubjectLongerThanTheBoundIsRefused) {
  const SubjectMapping five{.max_subject_bytes = 5};
  std::string out;
  EXPECT_EQ(TopicToSubject("abcde", five, out), Uncarried::kNone);
  EXPECT_EQ(out, "abcde");
  out.clear();
  EXPECT_EQ(TopicToSubject("abcdef", five, out), Uncarried::kTooLong);
  EXPECT_EQ(TopicToSubject("a.b/c", five, out), Uncarried::kTooLong);  // a//b.c is 6
  EXPECT_EQ(out, "");
  // The prefix and its '.' count.
  const SubjectMapping prefixed{.prefix = "mq", .max_subject_bytes = 5};
  EXPECT_EQ(TopicToSubject("ab", prefixed, out), Uncarried::kNone);
  EXPECT_EQ(out, "mq.ab");
  out.clear();
  EXPECT_EQ(TopicToSubject("abc", prefixed, out), Uncarried::kTooLong);
  EXPECT_EQ(out, "");
}

// The header's bound on growth: prefix + 1 + 2 * topic size + 1, reached by topics of '/' only
// (n + 1 empty levels); '.' grows to two bytes but has no empty level beside it.
TEST(SubjectBounds, GrowthBoundIsReached) {
  const SubjectMapping unbounded{.prefix = "p", .max_subject_bytes = SIZE_MAX};
  for (const size_t n : {1, 2, 3, 100, 1000}) {
    std::string out;
    ASSERT_EQ(TopicToSubject(std::string(n, '/'), unbounded, out), Uncarried::kNone) << n;
    EXPECT_EQ(out.size(), 1 + 1 + 2 * n + 1) << n;
    out.clear();
    ASSERT_EQ(TopicToSubject(std::string(n, '.'), unbounded, out), Uncarried::kNone) << n;
    EXPECT_EQ(out.size(), 1 + 1 + 2 * n) << n;
  }
  for (const std::string_view topic : {"./.", "/./", "a/./", "/./b/"}) {
    std::string out;
    ASSERT_EQ(TopicToSubject(topic, unbounded, out), Uncarried::kNone) << topic;
    EXPECT_LT(out.size(), 1 + 1 + 2 * topic.size() + 1) << topic;
  }
}

TEST(SubjectBounds, TopicOfTheSubjectFitsAnMqttString) {
  const std::string longest(65535, 'a');
  EXPECT_EQ(Topic(longest), longest);
  EXPECT_EQ(Topic(longest + "a"), "<unmapped>");
  // '//' shrinks to '.', so a longer subject may still give a topic that fits.
  const std::string dots = std::string(2 * 65535, '/');
  EXPECT_EQ(Topic(dots), std::string(65535, '.'));
  EXPECT_EQ(Topic(dots + "//"), "<unmapped>");
}

TEST(SubjectBounds, TopicOfTheSubjectHasAtMostTheMaximumLevels) {
  std::string subject = "a";
  for (size_t i = 1; i < mqtt::kMaxTopicLevels; ++i) subject += ".a";
  EXPECT_NE(Topic(subject), "<unmapped>");
  EXPECT_EQ(Topic(subject + ".a"), "<unmapped>");
}

// ---------------------------------------------------------------------------------------------
// Prefixes.

TEST(SubjectPrefix, ValidPrefixes) {
  for (const std::string_view prefix : {"", "mqtt", "a.b.c", "site-1.mqtt", "$MQTT", "a*", "é"}) {
    EXPECT_TRUE(IsValidSubjectPrefix(prefix)) << prefix;
  }
  for (const std::string_view prefix :
       {".", "a.", ".a", "a..b", "*", "a.*", ">", "a.>", "a b", "a\tb", "a\x7f", "a\nb"}) {
    EXPECT_FALSE(IsValidSubjectPrefix(prefix)) << prefix;
  }
}

TEST(SubjectPrefix, SubjectMustStartWithThePrefixAndADot) {
  EXPECT_EQ(Topic("mqtt.a.b", "mqtt"), "a/b");
  EXPECT_EQ(Topic("mqtt./", "mqtt"), "<unmapped>");  // the empty topic (MQTT-4.7.3-1)
  EXPECT_EQ(Topic("mqtt", "mqtt"), "<unmapped>");
  EXPECT_EQ(Topic("mqtt.", "mqtt"), "<unmapped>");
  EXPECT_EQ(Topic("mqttx.a", "mqtt"), "<unmapped>");
  EXPECT_EQ(Topic("mqt.a", "mqtt"), "<unmapped>");
  EXPECT_EQ(Topic("x.mqtt.a", "mqtt"), "<unmapped>");
  EXPECT_EQ(Topic("site.mqtt.a//b", "site.mqtt"), "a.b");
}

TEST(SubjectNames, EveryReasonHasItsName) {
  EXPECT_EQ(UncarriedName(Uncarried::kNone), "none");
  EXPECT_EQ(UncarriedName(Uncarried::kNotATopicName), "not_a_topic_name");
  EXPECT_EQ(UncarriedName(Uncarried::kWhitespace), "whitespace");
  EXPECT_EQ(UncarriedName(Uncarried::kDelete), "delete");
  EXPECT_EQ(UncarriedName(Uncarried::kWildcardLevel), "wildcard_level");
  EXPECT_EQ(UncarriedName(Uncarried::kTooLong), "too_long");
}

// ---------------------------------------------------------------------------------------------
// Filters.

// The subjects FilterToSubjects gives, as "s" or "s | parent", "<nothing>" when none.
std::string Cover(std::string_view filter, const SubjectMapping& mapping = {}) {
  std::string out = "held";
  const FilterCover cover = FilterToSubjects(filter, mapping, out);
  if (!std::string_view(out).starts_with("held")) return "<clobbered>";
  const std::string_view subject = std::string_view(out).substr(4);
  switch (cover) {
    case FilterCover::kNothing:
      return subject.empty() ? "<nothing>" : "<appended on kNothing>";
    case FilterCover::kOne:
      return std::string(subject);
    case FilterCover::kWithParent:
      return std::string(subject) + " | " + std::string(ParentSubject(subject));
  }
  return "<bad cover>";
}

TEST(SubjectFilter, WildcardsMapToNatsWildcards) {
  EXPECT_EQ(Cover("+"), "*");
  EXPECT_EQ(Cover("#"), ">");  // every topic has a level, every token a byte: '>' covers all
  EXPECT_EQ(Cover("a/+"), "a.*");
  EXPECT_EQ(Cover("+/b"), "*.b");
  EXPECT_EQ(Cover("+/+"), "*.*");
  EXPECT_EQ(Cover("a/+/b"), "a.*.b");
  EXPECT_EQ(Cover("a.b/+"), "a//b.*");
  EXPECT_EQ(Cover("/+"), "/.*");
  EXPECT_EQ(Cover("+/"), "*./");
  EXPECT_EQ(Cover("a//+"), "a./.*");
}

// MQTT-4.7.1-2: '#' also matches the parent level.
TEST(SubjectFilter, MultiLevelWildcardAddsTheParentLevel) {
  EXPECT_EQ(Cover("a/#"), "a.> | a");
  EXPECT_EQ(Cover("a/b/#"), "a.b.> | a.b");
  EXPECT_EQ(Cover("+/#"), "*.> | *");
  EXPECT_EQ(Cover("a/+/#"), "a.*.> | a.*");
  EXPECT_EQ(Cover("a./#"), "a//.> | a//");
  EXPECT_EQ(Cover("//#"), "/./.> | /./");   // the parent is topic "/"
  EXPECT_EQ(Cover("a//#"), "a./.> | a./");  // the parent is topic "a/"
  // The parent of "/#" would be the empty topic, which is no topic name (MQTT-4.7.3-1).
  EXPECT_EQ(Cover("/#"), "/.>");
}

TEST(SubjectFilter, PrefixGoesInFront) {
  const SubjectMapping mqtt{.prefix = "mqtt"};
  EXPECT_EQ(Cover("#", mqtt), "mqtt.>");  // parent "mqtt" would be the empty topic
  EXPECT_EQ(Cover("+", mqtt), "mqtt.*");
  EXPECT_EQ(Cover("a/#", mqtt), "mqtt.a.> | mqtt.a");
  EXPECT_EQ(Cover("/#", mqtt), "mqtt./.>");
}

TEST(SubjectFilter, FiltersNoCarriedTopicMatchesNeedNoInterest) {
  for (const std::string_view filter :
       {"a/*", "*", ">/#", "a b/+", "+/a\tb", "a\x7f/#", "a/>", "*/+"}) {
    EXPECT_EQ(Cover(filter), "<nothing>") << filter;
  }
}

TEST(SubjectFilter, InvalidFiltersGiveNothing) {
  for (const std::string_view filter : {"", "a/#/b", "#/#", "a+/b", "a/b#", "++", "#a"}) {
    EXPECT_EQ(Cover(filter), "<nothing>") << filter;
  }
}

TEST(SubjectFilter, FiltersOfTheTable) {
  for (const Case& c : CasesOf("filter")) {
    EXPECT_EQ(mqtt::ValidateTopicFilter(c.first), mqtt::Violation::kNone) << Where(c);
    const std::string expected = c.second.empty()  ? "<nothing>"
                                 : c.third.empty() ? c.second
                                                   : c.second + " | " + c.third;
    EXPECT_EQ(Cover(c.first), expected) << Where(c);
  }
}

TEST(SubjectFilter, TopicAsFilterGivesItsSubject) {
  for (const Case& c : CasesOf("map")) {
    EXPECT_EQ(Cover(c.first), c.second) << Where(c);
  }
}

TEST(SubjectFilter, SubjectsOverTheBoundAreLeftOut) {
  const SubjectMapping five{.max_subject_bytes = 5};
  EXPECT_EQ(Cover("abc/#", five), "abc.> | abc");
  EXPECT_EQ(Cover("abcd/#", five), "abcd");  // "abcd.>" is 6: its parent alone
  EXPECT_EQ(Cover("abcde/#", five), "abcde");
  EXPECT_EQ(Cover("abcdef/#", five), "<nothing>");
  EXPECT_EQ(Cover("+/+/+", five), "*.*.*");
  EXPECT_EQ(Cover("+/+/+/+", five), "<nothing>");
  EXPECT_EQ(Cover("abcdef", five), "<nothing>");
  EXPECT_EQ(Cover("#", SubjectMapping{.prefix = "abcd", .max_subject_bytes = 5}), "<nothing>");
}

// Every topic an MQTT filter matches (by the broker's own matcher, the one session delivery
// uses) has a subject one of the filter's subjects matches; and the cover is exact but for
// NATS wildcards matching '$' first levels (MQTT-4.7.2-1).
TEST(SubjectFilter, CoverNeverMissesAMatchingTopic) {
  const std::vector<std::string> topic_levels = {"a", "b", "", ".", "$x", "a.b", "*a"};
  const std::vector<std::string> filter_levels = {"a", "", "+", ".", "$x", "*a"};
  std::vector<std::string> topics;
  std::vector<std::string> filters = {"#"};
  std::vector<std::string> shorter = {""};
  for (size_t depth = 1; depth <= 4; ++depth) {
    std::vector<std::string> longer;
    for (const std::string& head : shorter) {
      for (const std::string& level : topic_levels) {
        longer.push_back(depth == 1 ? level : head + "/" + level);
      }
    }
    for (const std::string& topic : longer) {
      if (!topic.empty()) topics.push_back(topic);
    }
    shorter = std::move(longer);
  }
  shorter = {""};
  for (size_t depth = 1; depth <= 3; ++depth) {
    std::vector<std::string> longer;
    for (const std::string& head : shorter) {
      for (const std::string& level : filter_levels) {
        longer.push_back(depth == 1 ? level : head + "/" + level);
      }
    }
    for (const std::string& filter : longer) {
      if (filter.empty()) continue;
      filters.push_back(filter);
      filters.push_back(filter + "/#");
    }
    shorter = std::move(longer);
  }
  for (const std::string_view prefix : {"", "mqtt"}) {
    const SubjectMapping mapping{.prefix = prefix};
    std::vector<std::string> subjects;
    for (const std::string& topic : topics) {
      std::string subject;
      ASSERT_EQ(TopicToSubject(topic, mapping, subject), Uncarried::kNone) << topic;
      subjects.push_back(std::move(subject));
    }
    // Each subject split once: 2.9 million pairs are matched, and splitting both sides per
    // pair (two vectors) took 69 s of the ASan unit tests' 239 CPU-seconds.
    std::vector<std::vector<std::string_view>> subject_tokens;
    for (const std::string& subject : subjects) {
      subject_tokens.push_back(reference::SplitTokens(subject));
    }
    size_t matched = 0;
    for (const std::string& filter : filters) {
      ASSERT_EQ(mqtt::ValidateTopicFilter(filter), mqtt::Violation::kNone) << filter;
      std::string cover;
      const FilterCover count = FilterToSubjects(filter, mapping, cover);
      ASSERT_NE(count, FilterCover::kNothing) << filter;
      const std::string parent =
          count == FilterCover::kWithParent ? std::string(ParentSubject(cover)) : "";
      const std::vector<std::string_view> cover_tokens = reference::SplitTokens(cover);
      const std::vector<std::string_view> parent_tokens = reference::SplitTokens(parent);
      for (size_t i = 0; i < topics.size(); ++i) {
        const bool mqtt_match = auth::TopicMatches(filter, topics[i]);
        const bool nats_match =
            reference::NatsTokensMatch(cover_tokens, subject_tokens[i]) ||
            (!parent.empty() && reference::NatsTokensMatch(parent_tokens, subject_tokens[i]));
        matched += mqtt_match;
        if (mqtt_match) {
          EXPECT_TRUE(nats_match) << filter << " misses " << topics[i];
        } else if (nats_match) {
          EXPECT_TRUE(topics[i].starts_with("$") && (filter[0] == '+' || filter[0] == '#'))
              << filter << " covers " << topics[i];
        }
      }
    }
    EXPECT_GT(matched, 10'000u);
  }
}

// Control subjects stay under "$RINGMQ" (never an MQTT topic's subject: '$' topics are not
// forwarded), below the prefix when there is one, and are never matched by a mapped filter
// other than '#'/'+' at the first level (NatsMatches is nats-server's matching).
TEST(ControlSubjectTest, RootPrefixKindAndTokens) {
  EXPECT_EQ(ControlSubject("", "ack", {"n1", "0"}), "$RINGMQ.ack.n1.0");
  EXPECT_EQ(ControlSubject("site1.mqtt", "claim"), "$RINGMQ.site1.mqtt.claim");
  std::string out = "x";
  AppendControlSubject("p", "k", {"a"}, out);
  EXPECT_EQ(out, "x$RINGMQ.p.k.a");
  std::string cover;
  ASSERT_EQ(FilterToSubjects("a/#", SubjectMapping{}, cover), FilterCover::kWithParent);
  EXPECT_FALSE(NatsMatches(cover, ControlSubject("", "a", {"b"})));
  EXPECT_TRUE(NatsMatches(">", ControlSubject("", "ack", {"n1"})));
}

}  // namespace
}  // namespace ringmq::cluster
