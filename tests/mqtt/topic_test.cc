#include "mqtt/topic.h"

#include <gtest/gtest.h>

#include <optional>

#include <string>
#include <string_view>
#include <vector>

#include "codec_test_util.h"

namespace ringmq::mqtt {
namespace {

using std::string_literals::operator""s;

struct Utf8Case {
  std::string text;
  Violation expected;
};

class Utf8Validate : public ::testing::TestWithParam<Utf8Case> {};

TEST_P(Utf8Validate, MatchesTable) {
  EXPECT_EQ(ValidateUtf8(GetParam().text), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    WellFormed_MQTT_1_5_3_1, Utf8Validate,
    ::testing::Values(Utf8Case{"", Violation::kNone}, Utf8Case{"a", Violation::kNone},
                      Utf8Case{"sensors/temp", Violation::kNone},
                      Utf8Case{"\x7F", Violation::kNone},                         // U+007F
                      Utf8Case{"\xC2\x80", Violation::kNone},                     // U+0080
                      Utf8Case{"\xC3\xA9", Violation::kNone},                     // é
                      Utf8Case{"\xDF\xBF", Violation::kNone},                     // U+07FF
                      Utf8Case{"\xE0\xA0\x80", Violation::kNone},                 // U+0800
                      Utf8Case{"\xE4\xB8\xAD", Violation::kNone},                 // 中
                      Utf8Case{"\xED\x9F\xBF", Violation::kNone},                 // U+D7FF
                      Utf8Case{"\xEE\x80\x80", Violation::kNone},                 // U+E000
                      Utf8Case{"\xEF\xBB\xBF", Violation::kNone},                 // BOM kept
                      Utf8Case{"\xEF\xBF\xBF", Violation::kNone},                 // U+FFFF
                      Utf8Case{"\xF0\x90\x80\x80", Violation::kNone},             // U+10000
                      Utf8Case{"\xF0\x9F\x98\x80", Violation::kNone},             // 😀
                      Utf8Case{"\xF4\x8F\xBF\xBF", Violation::kNone},             // U+10FFFF
                      Utf8Case{"0123456789abcdef\xC3\xA9xyz", Violation::kNone},  // past fast path
                      Utf8Case{"\x01\x1F control", Violation::kNone}));  // allowed (SHOULD NOT)

INSTANTIATE_TEST_SUITE_P(
    IllFormed_MQTT_1_5_3_1, Utf8Validate,
    ::testing::Values(Utf8Case{"\xC0\x80", Violation::kInvalidUtf8},          // overlong U+0000
                      Utf8Case{"\xC1\xBF", Violation::kInvalidUtf8},          // overlong U+007F
                      Utf8Case{"\xE0\x80\x80", Violation::kInvalidUtf8},      // overlong 3-byte
                      Utf8Case{"\xE0\x9F\xBF", Violation::kInvalidUtf8},      // overlong U+07FF
                      Utf8Case{"\xF0\x80\x80\x80", Violation::kInvalidUtf8},  // overlong 4-byte
                      Utf8Case{"\xF0\x8F\xBF\xBF", Violation::kInvalidUtf8},  // overlong U+FFFF
                      Utf8Case{"\xED\xA0\x80", Violation::kInvalidUtf8},      // surrogate U+D800
                      Utf8Case{"\xED\xBF\xBF", Violation::kInvalidUtf8},      // surrogate U+DFFF
                      Utf8Case{"\xED\xA0\xBD\xED\xB8\x80", Violation::kInvalidUtf8},  // CESU-8 pair
                      Utf8Case{"\xF4\x90\x80\x80", Violation::kInvalidUtf8},          // U+110000
                      Utf8Case{"\xF5\x80\x80\x80", Violation::kInvalidUtf8},          // lead F5
                      Utf8Case{"\xF7\xBF\xBF\xBF", Violation::kInvalidUtf8},          // U+1FFFFF
                      Utf8Case{"\xF8\x88\x80\x80\x80", Violation::kInvalidUtf8},      // 5-byte form
                      Utf8Case{"\xFC\x84\x80\x80\x80\x80", Violation::kInvalidUtf8},  // 6-byte form
                      Utf8Case{"\xFE", Violation::kInvalidUtf8},
                      Utf8Case{"\xFF", Violation::kInvalidUtf8},
                      Utf8Case{"\x80", Violation::kInvalidUtf8},  // lone continuation
                      Utf8Case{"a\xBF", Violation::kInvalidUtf8},
                      Utf8Case{"\xC3", Violation::kInvalidUtf8},          // truncated 2-byte
                      Utf8Case{"\xE4\xB8", Violation::kInvalidUtf8},      // truncated 3-byte
                      Utf8Case{"\xF0\x9F\x98", Violation::kInvalidUtf8},  // truncated 4-byte
                      Utf8Case{"\xC3"
                               "a",
                               Violation::kInvalidUtf8},  // bad continuation
                      Utf8Case{"\xE4\xB8"
                               "a",
                               Violation::kInvalidUtf8},
                      Utf8Case{"\xF0\x9F\x98"
                               "a",
                               Violation::kInvalidUtf8},
                      Utf8Case{"\xF0\x9F"
                               "aa",
                               Violation::kInvalidUtf8},
                      Utf8Case{"0123456789abcdef\xC0\x80", Violation::kInvalidUtf8}));

INSTANTIATE_TEST_SUITE_P(
    NullCharacter_MQTT_1_5_3_2, Utf8Validate,
    ::testing::Values(Utf8Case{"\0"s, Violation::kNullCharacter},
                      Utf8Case{"a\0b"s, Violation::kNullCharacter},
                      Utf8Case{"abcdefgh\0"s, Violation::kNullCharacter},
                      Utf8Case{"abcdefg\0hijklmnop"s, Violation::kNullCharacter},
                      Utf8Case{"\0\xC0\x80"s, Violation::kNullCharacter},  // first problem wins
                      Utf8Case{"\xC0\x80\0"s, Violation::kInvalidUtf8}));

// The 8-byte fast path must not skip a problem at any position of a word.
TEST(Utf8ValidateFastPath, FindsProblemAtEveryOffset) {
  for (size_t length = 1; length <= 40; ++length) {
    for (size_t position = 0; position < length; ++position) {
      std::string text(length, 'x');
      text[position] = '\0';
      EXPECT_EQ(ValidateUtf8(text), Violation::kNullCharacter) << length << " " << position;
      text[position] = '\x80';
      EXPECT_EQ(ValidateUtf8(text), Violation::kInvalidUtf8) << length << " " << position;
      text[position] = '\x7F';
      EXPECT_EQ(ValidateUtf8(text), Violation::kNone) << length << " " << position;
    }
  }
}

TEST(Utf8ValidateFastPath, AcceptsMultiByteAtEveryOffset) {
  for (size_t position = 0; position < 24; ++position) {
    std::string text(position, 'y');
    text += "\xF0\x9F\x98\x80";
    text += std::string(24 - position, 'z');
    EXPECT_EQ(ValidateUtf8(text), Violation::kNone) << position;
  }
}

// Every code point encodes to a valid sequence, except the surrogates.
TEST(Utf8ValidateExhaustive, EveryScalarValueAcceptedEverySurrogateRefused) {
  for (uint32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    std::string text;
    if (cp < 0x80) {
      text = {static_cast<char>(cp)};
    } else if (cp < 0x800) {
      text = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    } else if (cp < 0x10000) {
      text = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
              static_cast<char>(0x80 | (cp & 0x3F))};
    } else {
      text = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
              static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    ASSERT_EQ(ValidateUtf8(text), surrogate ? Violation::kInvalidUtf8 : Violation::kNone) << cp;
  }
}

struct TopicCase {
  std::string topic;
  Violation expected;
};

class TopicFilterValidate : public ::testing::TestWithParam<TopicCase> {};

TEST_P(TopicFilterValidate, MatchesTable) {
  EXPECT_EQ(ValidateTopicFilter(GetParam().topic), GetParam().expected)
      << "filter: " << GetParam().topic;
}

INSTANTIATE_TEST_SUITE_P(
    Valid_MQTT_4_7_1, TopicFilterValidate,
    ::testing::Values(TopicCase{"a", Violation::kNone}, TopicCase{"a/b/c", Violation::kNone},
                      TopicCase{"a/+/b", Violation::kNone}, TopicCase{"#", Violation::kNone},
                      TopicCase{"a/#", Violation::kNone}, TopicCase{"+", Violation::kNone},
                      TopicCase{"/", Violation::kNone}, TopicCase{"//", Violation::kNone},
                      TopicCase{"+/+", Violation::kNone}, TopicCase{"/+", Violation::kNone},
                      TopicCase{"+/", Violation::kNone}, TopicCase{"/#", Violation::kNone},
                      TopicCase{"+/#", Violation::kNone},
                      TopicCase{"sport/+/player1", Violation::kNone},
                      TopicCase{"$SYS/#", Violation::kNone}, TopicCase{" ", Violation::kNone},
                      TopicCase{"caf\xC3\xA9/+", Violation::kNone}));

INSTANTIATE_TEST_SUITE_P(
    Invalid_MQTT_4_7_1, TopicFilterValidate,
    ::testing::Values(TopicCase{"", Violation::kEmptyTopic},                // MQTT-4.7.3-1
                      TopicCase{"a+", Violation::kBadSingleLevelWildcard},  // MQTT-4.7.1-3
                      TopicCase{"+a", Violation::kBadSingleLevelWildcard},
                      TopicCase{"a/b+/c", Violation::kBadSingleLevelWildcard},
                      TopicCase{"++", Violation::kBadSingleLevelWildcard},
                      TopicCase{"+#", Violation::kBadSingleLevelWildcard},    // leftmost reported
                      TopicCase{"a/#/b", Violation::kBadMultiLevelWildcard},  // MQTT-4.7.1-2
                      TopicCase{"a#", Violation::kBadMultiLevelWildcard},
                      TopicCase{"#a", Violation::kBadMultiLevelWildcard},
                      TopicCase{"#/", Violation::kBadMultiLevelWildcard},
                      TopicCase{"##", Violation::kBadMultiLevelWildcard},
                      TopicCase{"#+", Violation::kBadMultiLevelWildcard},
                      TopicCase{"sport/tennis#", Violation::kBadMultiLevelWildcard},
                      TopicCase{"a/#/+x", Violation::kBadMultiLevelWildcard},
                      TopicCase{"a\xC0\x80", Violation::kInvalidUtf8},    // MQTT-1.5.3-1
                      TopicCase{"a/\0/b"s, Violation::kNullCharacter}));  // MQTT-1.5.3-2

class TopicNameValidate : public ::testing::TestWithParam<TopicCase> {};

TEST_P(TopicNameValidate, MatchesTable) {
  EXPECT_EQ(ValidateTopicName(GetParam().topic), GetParam().expected)
      << "topic: " << GetParam().topic;
}

INSTANTIATE_TEST_SUITE_P(
    Valid_MQTT_4_7, TopicNameValidate,
    ::testing::Values(TopicCase{"a", Violation::kNone}, TopicCase{"/", Violation::kNone},
                      TopicCase{"a/b/c", Violation::kNone}, TopicCase{"/a", Violation::kNone},
                      TopicCase{"a/", Violation::kNone}, TopicCase{"$SYS/broker", Violation::kNone},
                      TopicCase{"\xE4\xB8\xAD/\xF0\x9F\x98\x80", Violation::kNone}));

INSTANTIATE_TEST_SUITE_P(Invalid_MQTT_3_3_2_2, TopicNameValidate,
                         ::testing::Values(TopicCase{"", Violation::kEmptyTopic},  // MQTT-4.7.3-1
                                           TopicCase{"+", Violation::kWildcardInTopicName},
                                           TopicCase{"#", Violation::kWildcardInTopicName},
                                           TopicCase{"a/+/b", Violation::kWildcardInTopicName},
                                           TopicCase{"a/#", Violation::kWildcardInTopicName},
                                           TopicCase{"a+", Violation::kWildcardInTopicName},
                                           TopicCase{"\xED\xA0\x80", Violation::kInvalidUtf8},
                                           TopicCase{"a\0"s, Violation::kNullCharacter}));

std::string Levels(size_t count, std::string_view level) {
  std::string topic(level);
  for (size_t i = 1; i < count; ++i) {
    topic += '/';
    topic += level;
  }
  return topic;
}

TEST(TopicLevelLimit, NameAtLimitAcceptedBeyondRefused) {
  EXPECT_EQ(ValidateTopicName(Levels(kMaxTopicLevels, "a")), Violation::kNone);
  EXPECT_EQ(ValidateTopicName(Levels(kMaxTopicLevels + 1, "a")), Violation::kTooManyTopicLevels);
  EXPECT_EQ(ValidateTopicName(std::string(kMaxTopicLevels, '/')), Violation::kTooManyTopicLevels);
  EXPECT_EQ(ValidateTopicName(std::string(kMaxTopicLevels - 1, '/')), Violation::kNone);
}

TEST(TopicLevelLimit, FilterAtLimitAcceptedBeyondRefused) {
  EXPECT_EQ(ValidateTopicFilter(Levels(kMaxTopicLevels, "+")), Violation::kNone);
  EXPECT_EQ(ValidateTopicFilter(Levels(kMaxTopicLevels + 1, "+")), Violation::kTooManyTopicLevels);
  EXPECT_EQ(ValidateTopicFilter(Levels(kMaxTopicLevels - 1, "a") + "/#"), Violation::kNone);
  EXPECT_EQ(ValidateTopicFilter(Levels(kMaxTopicLevels, "a") + "/#"),
            Violation::kTooManyTopicLevels);
}

// Precedence is documented in topic.cc: empty, UTF-8, level count, wildcards.
TEST(TopicLevelLimit, LevelLimitReportedBeforeWildcardMistakes) {
  EXPECT_EQ(ValidateTopicFilter(Levels(kMaxTopicLevels + 1, "a#")), Violation::kTooManyTopicLevels);
  EXPECT_EQ(ValidateTopicName(Levels(kMaxTopicLevels + 1, "+")), Violation::kTooManyTopicLevels);
  EXPECT_EQ(ValidateTopicName(Levels(kMaxTopicLevels + 1, "\xC0")), Violation::kInvalidUtf8);
}

// The word-at-a-time scan must see a wildcard or a separator at any offset of a word.
TEST(TopicScanFastPath, FindsWildcardAtEveryOffset) {
  for (size_t length = 2; length <= 40; ++length) {
    for (size_t position = 0; position < length; ++position) {
      std::string topic(length, 'a');
      topic[position] = '+';
      EXPECT_EQ(ValidateTopicName(topic), Violation::kWildcardInTopicName)
          << length << " " << position;
      EXPECT_EQ(ValidateTopicFilter(topic), Violation::kBadSingleLevelWildcard)
          << length << " " << position;
      topic[position] = '#';
      // Never a whole level here: the level is `length` bytes long.
      EXPECT_EQ(ValidateTopicFilter(topic), Violation::kBadMultiLevelWildcard)
          << length << " " << position;
    }
  }
}

TEST(TopicScanFastPath, CountsSeparatorsAtEveryAlignment) {
  for (size_t padding = 1; padding <= 17; ++padding) {
    std::string topic = std::string(padding, 'x');
    for (size_t i = 1; i < kMaxTopicLevels; ++i) {
      topic += "/a";
    }
    EXPECT_EQ(ValidateTopicName(topic), Violation::kNone) << padding;
    EXPECT_EQ(ValidateTopicFilter(topic + "/#"), Violation::kTooManyTopicLevels) << padding;
    EXPECT_EQ(ValidateTopicName(topic + "/"), Violation::kTooManyTopicLevels) << padding;
  }
}

TEST(TopicMaxLength, LongestEncodableTopicIsValid) {
  const std::string topic(0xFFFF, 't');
  EXPECT_EQ(ValidateTopicName(topic), Violation::kNone);
  EXPECT_EQ(ValidateTopicFilter(topic), Violation::kNone);
}

TEST(LevelSplitterTest, SplitsOnSlashKeepingEmptyLevels) {
  const auto split = [](std::string_view text) {
    std::vector<std::string_view> levels;
    LevelSplitter splitter(text);
    std::string_view level;
    while (splitter.Next(level)) {
      levels.push_back(level);
    }
    return levels;
  };
  using Levels = std::vector<std::string_view>;
  EXPECT_EQ(split("a/bc/d"), (Levels{"a", "bc", "d"}));
  EXPECT_EQ(split("/a"), (Levels{"", "a"}));
  EXPECT_EQ(split("a/"), (Levels{"a", ""}));
  EXPECT_EQ(split("//"), (Levels{"", "", ""}));
  EXPECT_EQ(split("x"), (Levels{"x"}));
  EXPECT_EQ(split(""), (Levels{""}));
}

// 5.0 §4.8.2, for every protocol level: "$share/{ShareName}/{filter}".
TEST(SharedFilterTest, SplitsShareNameAndFilter_MQTT5_4_8_2) {
  const std::optional<SharedFilter> shared = ParseSharedFilter("$share/group/a/+/#");
  ASSERT_TRUE(shared.has_value());
  EXPECT_EQ(shared->share_name, "group");
  EXPECT_EQ(shared->filter, "a/+/#");
  const std::optional<SharedFilter> hash = ParseSharedFilter("$share/g/#");
  ASSERT_TRUE(hash.has_value());
  EXPECT_EQ(hash->filter, "#");
  EXPECT_EQ(ParseSharedFilter("$share/g//")->filter, "/") << "an empty level is a filter";
}

TEST(SharedFilterTest, RefusesAMissingShareNameOrFilter_MQTT5_4_8_2_1) {
  for (const std::string_view bad : {"$share/", "$share//a", "$share/g", "$share/g/"}) {
    EXPECT_TRUE(IsSharedFilter(bad)) << bad;
    EXPECT_FALSE(ParseSharedFilter(bad).has_value()) << bad;
  }
}

TEST(SharedFilterTest, RefusesWildcardsInTheShareName_MQTT5_4_8_2_2) {
  for (const std::string_view bad : {"$share/+/a", "$share/g#/a", "$share/a+b/a"}) {
    EXPECT_FALSE(ParseSharedFilter(bad).has_value()) << bad;
  }
}

TEST(SharedFilterTest, OtherFiltersAreNotShared) {
  for (const std::string_view other : {"$share", "$sharex/g/a", "a/$share/g/a", "$SYS/#", "#"}) {
    EXPECT_FALSE(IsSharedFilter(other)) << other;
    EXPECT_FALSE(ParseSharedFilter(other).has_value()) << other;
  }
}

}  // namespace
}  // namespace ringmq::mqtt
