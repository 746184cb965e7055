// cluster::json::Reader: the strict RFC 8259 reader behind INFO and JetStream replies
// (json_reader.h): raw and decoded strings, escapes and surrogates, numbers, the depth bound,
// trailing and truncated input.
#include "cluster/json_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace ringmq::cluster::json {
namespace {

using Strings = Reader::Strings;

Reader Raw(std::string_view text) { return Reader(text, "test", Strings::kRaw); }
Reader Decoded(std::string_view text) { return Reader(text, "test", Strings::kDecoded); }

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonReaderTest, StringIsTheRawBytesBetweenTheQuotes) {
  Reader reader = Raw(R"(  "a\"b\\c\u00e9" )");
  absl::StatusOr<std::string_view> value = reader.String();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, R"(a\"b\\c\u00e9)");
}

TEST(JsonReaderTest, DecodedStringUnescapesEveryEscape) {
  Reader reader = Raw(R"("\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac")");
  std::string out;
  ASSERT_TRUE(reader.DecodedString(out).ok());
  EXPECT_EQ(out, "\"\\/\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC");
  EXPECT_TRUE(reader.AtEnd());
}

TEST(JsonReaderTest, SurrogatePairsJoinAndLoneSurrogatesFailWhenDecoding) {
  std::string out;
  Reader pair = Raw(R"("\ud83d\ude00")");
  ASSERT_TRUE(pair.DecodedString(out).ok());
  EXPECT_EQ(out, "\xF0\x9F\x98\x80");
  for (std::string_view bad :
       {R"("\ude00")", R"("\ud83d")", R"("\ud83dx")", R"("\ud83d\u0041")", R"("\ud83d\ude0")"}) {
    Reader reader = Raw(bad);
    EXPECT_FALSE(reader.DecodedString(out).ok()) << bad;
  }
}

TEST(JsonReaderTest, LoneSurrogatesAreGrammaticalForRawReadersOnly) {
  Reader raw = Raw(R"(["\ud800"])");
  EXPECT_TRUE(raw.SkipValue(0).ok());
  Reader decoded = Decoded(R"(["\ud800"])");
  EXPECT_FALSE(decoded.SkipValue(0).ok());
}

TEST(JsonReaderTest, BadStringsFail) {
  for (std::string_view bad :
       {"\"a\x01\"", R"("\x")", R"("\u12g4")", R"("\u12")", "\"abc", "\"a\\", "abc"}) {
    Reader reader = Raw(bad);
    EXPECT_FALSE(reader.String().ok()) << bad;
  }
}

TEST(JsonReaderTest, DecodedKeysMatchTheirUnescapedName) {
  Reader reader = Decoded(R"({"a\u005fb":1,"c":2})");
  std::vector<std::string> keys;
  absl::Status status = reader.Object([&](std::string_view key) -> absl::Status {
    keys.emplace_back(key);
    return reader.SkipValue(1);
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(keys, (std::vector<std::string>{"a_b", "c"}));

  Reader raw = Raw(R"({"a\u005fb":1})");
  keys.clear();
  status = raw.Object([&](std::string_view key) -> absl::Status {
    keys.emplace_back(key);
    return raw.SkipValue(1);
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(keys, (std::vector<std::string>{R"(a\u005fb)"}));
}

TEST(JsonReaderTest, NumbersFollowTheGrammar) {
  for (std::string_view good : {"0", "-0", "12", "-3.25", "1e9", "1E+2", "2.5e-3"}) {
    Reader reader = Raw(good);
    absl::StatusOr<std::string_view> value = reader.Number();
    ASSERT_TRUE(value.ok()) << good;
    EXPECT_EQ(*value, good);
  }
  for (std::string_view bad : {"-", "+1", ".5", "1.", "1e", "1e+", "x"}) {
    Reader reader = Raw(bad);
    absl::StatusOr<std::string_view> value = reader.Number();
    // A leading zero ends the number ("01" reads "0"): the caller's next token fails.
    EXPECT_FALSE(value.ok() && reader.AtEnd()) << bad;
  }
  Reader leading_zero = Raw("01");
  ASSERT_TRUE(leading_zero.Number().ok());
  EXPECT_FALSE(leading_zero.AtEnd());
}

TEST(JsonReaderTest, IntegersAreInt64Only) {
  Reader reader = Raw("-9223372036854775808");
  absl::StatusOr<int64_t> value = reader.Integer();
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, INT64_MIN);
  for (std::string_view bad : {"9223372036854775808", "1.5", "1e3", "true"}) {
    Reader bad_reader = Raw(bad);
    EXPECT_FALSE(bad_reader.Integer().ok()) << bad;
  }
}

TEST(JsonReaderTest, BoolsAndLiterals) {
  Reader reader = Raw(" true false nul");
  EXPECT_EQ(*reader.Bool(), true);
  EXPECT_EQ(*reader.Bool(), false);
  EXPECT_FALSE(reader.Bool().ok());
  reader.SkipWhitespace();
  EXPECT_FALSE(reader.Literal("null"));
}

TEST(JsonReaderTest, SkipValueTakesNestingUpToTheBoundAndNotOnePast) {
  // The reader holds a view: the texts outlive it.
  const std::string at_bound_text = Nested(kMaxDepth);
  const std::string past_text = Nested(kMaxDepth + 1);
  const std::string inside_text = Nested(kMaxDepth - 1);
  Reader at_bound = Raw(at_bound_text);
  EXPECT_TRUE(at_bound.SkipValue(0).ok());
  EXPECT_TRUE(at_bound.AtEnd());
  Reader past = Raw(past_text);
  EXPECT_FALSE(past.SkipValue(0).ok());
  // depth counts the containers the caller already opened.
  Reader inside = Raw(inside_text);
  EXPECT_TRUE(inside.SkipValue(1).ok());
  Reader inside_past = Raw(at_bound_text);
  EXPECT_FALSE(inside_past.SkipValue(1).ok());
}

TEST(JsonReaderTest, SkipValueSkipsEveryKind) {
  Reader reader = Raw(R"({"a":[1,-2.5e3,"x",true,false,null,{}],"b":{"c":[]}} 7)");
  ASSERT_TRUE(reader.SkipValue(0).ok());
  EXPECT_EQ(*reader.Integer(), 7);
  EXPECT_TRUE(reader.AtEnd());
}

TEST(JsonReaderTest, ObjectFailsOnTrailingCommasAndTruncation) {
  for (std::string_view bad : {R"({"a":1,})", R"({"a":1)", R"({"a")", R"({"a":)", R"({"a" 1})",
                               R"({,})", "{", "", "[1]"}) {
    Reader reader = Raw(bad);
    EXPECT_FALSE(reader.Object([&](std::string_view) { return reader.SkipValue(1); }).ok()) << bad;
  }
  for (std::string_view bad : {"[1,]", "[1 2]", "[", "[1", R"({"a":1)", "tru", "nul", "-"}) {
    Reader reader = Raw(bad);
    EXPECT_FALSE(reader.SkipValue(0).ok()) << bad;
  }
}

TEST(JsonReaderTest, TrailingBytesAreLeftForTheCaller) {
  Reader reader = Raw(R"({} x)");
  ASSERT_TRUE(reader.Object([](std::string_view) { return absl::OkStatus(); }).ok());
  reader.SkipWhitespace();
  EXPECT_FALSE(reader.AtEnd());
  EXPECT_EQ(reader.position(), 3u);
}

TEST(JsonReaderTest, ErrorsNameTheContextAndTheOffset) {
  Reader reader(R"(  x)", "INFO JSON", Strings::kDecoded);
  absl::Status status = reader.String().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "INFO JSON: string expected at byte 2");
}

}  // namespace
}  // namespace ringmq::cluster::json
