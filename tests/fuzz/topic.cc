// libFuzzer target for the topic and UTF-8 rules (src/mqtt/topic.h).
//
// Cross-checks ValidateUtf8, ValidateTopicName and ValidateTopicFilter against deliberately
// naive reference implementations written differently: UTF-8 by decoding each code point and
// range-checking its value (instead of Unicode's byte-range table), topics by splitting into
// levels (instead of one byte scan). Both must agree on every input, violation for violation.
#include "mqtt/topic.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "mqtt/violation.h"

namespace ringmq::mqtt {
namespace {

#define FUZZ_CHECK(condition)                                                               \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      std::fprintf(stderr, "topic invariant failed: %s (line %d)\n", #condition, __LINE__); \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

// Decodes one code point the textbook way; returns its length, or 0 when ill-formed.
size_t ReferenceDecode(std::string_view text, size_t at, uint32_t& code_point) {
  const auto lead = static_cast<uint8_t>(text[at]);
  size_t length = 0;
  uint32_t minimum = 0;
  if ((lead & 0x80) == 0) {
    code_point = lead;
    return 1;
  }
  if ((lead & 0xE0) == 0xC0) {
    length = 2, minimum = 0x80, code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, minimum = 0x800, code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, minimum = 0x10000, code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() - at < length) {
    return 0;
  }
  for (size_t i = 1; i < length; ++i) {
    const auto byte = static_cast<uint8_t>(text[at + i]);
    if ((byte & 0xC0) != 0x80) {
      return 0;
    }
    code_point = (code_point << 6) | (byte & 0x3F);
  }
  const bool overlong = code_point < minimum;
  const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
  return overlong || surrogate || code_point > 0x10FFFF ? 0 : length;
}

Violation ReferenceUtf8(std::string_view text) {
  for (size_t at = 0; at < text.size();) {
    uint32_t code_point = 0;
    const size_t length = ReferenceDecode(text, at, code_point);
    if (length == 0) {
      return Violation::kInvalidUtf8;
    }
    if (code_point == 0) {
      return Violation::kNullCharacter;
    }
    at += length;
  }
  return Violation::kNone;
}

std::vector<std::string_view> SplitLevels(std::string_view topic) {
  std::vector<std::string_view> levels;
  size_t start = 0;
  for (size_t slash = topic.find('/'); slash != std::string_view::npos;
       slash = topic.find('/', start)) {
    levels.push_back(topic.substr(start, slash - start));
    start = slash + 1;
  }
  levels.push_back(topic.substr(start));
  return levels;
}

Violation ReferenceTopicName(std::string_view topic) {
  if (topic.empty()) {
    return Violation::kEmptyTopic;
  }
  if (const Violation utf8 = ReferenceUtf8(topic); utf8 != Violation::kNone) {
    return utf8;
  }
  if (SplitLevels(topic).size() > kMaxTopicLevels) {
    return Violation::kTooManyTopicLevels;
  }
  const bool wildcard = topic.find_first_of("+#") != std::string_view::npos;
  return wildcard ? Violation::kWildcardInTopicName : Violation::kNone;
}

Violation ReferenceTopicFilter(std::string_view filter) {
  if (filter.empty()) {
    return Violation::kEmptyTopic;
  }
  if (const Violation utf8 = ReferenceUtf8(filter); utf8 != Violation::kNone) {
    return utf8;
  }
  const std::vector<std::string_view> levels = SplitLevels(filter);
  if (levels.size() > kMaxTopicLevels) {
    return Violation::kTooManyTopicLevels;
  }
  for (size_t i = 0; i < levels.size(); ++i) {
    const std::string_view level = levels[i];
    if (level == "+" || (level == "#" && i + 1 == levels.size())) {
      continue;
    }
    const size_t wildcard = level.find_first_of("+#");
    if (wildcard != std::string_view::npos) {
      return level[wildcard] == '+' ? Violation::kBadSingleLevelWildcard
                                    : Violation::kBadMultiLevelWildcard;
    }
  }
  return Violation::kNone;
}

}  // namespace
}  // namespace ringmq::mqtt

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ringmq::mqtt::Violation;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const Violation utf8 = ringmq::mqtt::ValidateUtf8(text);
  const Violation name = ringmq::mqtt::ValidateTopicName(text);
  const Violation filter = ringmq::mqtt::ValidateTopicFilter(text);
  FUZZ_CHECK(utf8 == ringmq::mqtt::ReferenceUtf8(text));
  FUZZ_CHECK(name == ringmq::mqtt::ReferenceTopicName(text));
  FUZZ_CHECK(filter == ringmq::mqtt::ReferenceTopicFilter(text));
  // Every valid topic name is also a valid filter (one that matches only itself).
  FUZZ_CHECK(name != Violation::kNone || filter == Violation::kNone);
  // Without wildcard characters, name and filter rules coincide.
  if (text.find_first_of("+#") == std::string_view::npos) {
    FUZZ_CHECK(name == filter);
  }
  // Suffixes of valid UTF-8 that start at a character boundary are valid too.
  if (utf8 == Violation::kNone) {
    for (size_t at = 0; at < size && at < 16; ++at) {
      if ((data[at] & 0xC0) != 0x80) {
        FUZZ_CHECK(ringmq::mqtt::ValidateUtf8(text.substr(at)) == Violation::kNone);
      }
    }
  }
  return 0;
}
