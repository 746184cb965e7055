#include "mqtt/topic.h"

#include <cstdint>
#include <cstring>

#include "common/assert.h"

namespace ringmq::mqtt {
namespace {

constexpr uint64_t kEveryHighBit = 0x8080'8080'8080'8080;
constexpr uint64_t kEveryLowBit = 0x0101'0101'0101'0101;

// True when all eight bytes of `word` are ASCII and none is zero. `(w - 0x01..) & ~w & 0x80..`
// is non-zero exactly when some byte of w is zero (it may flag extra bytes above that one, which
// does not matter for a yes/no answer).
bool IsAsciiWithoutNul(uint64_t word) {
  const uint64_t zero_bytes = (word - kEveryLowBit) & ~word & kEveryHighBit;
  return ((word & kEveryHighBit) | zero_bytes) == 0;
}

// Length of the well-formed multi-byte sequence at the start of `bytes`, or 0 when it is not
// one. The ranges are Table 3-7 of the Unicode Standard: restricting the second byte after E0,
// ED, F0 and F4 is what excludes overlong forms, surrogates and code points above U+10FFFF;
// C0, C1 and F5..FF never lead.
size_t MultiByteSequenceLength(const uint8_t* bytes, size_t available) {
  const uint8_t lead = bytes[0];
  uint8_t second_min = 0x80;
  uint8_t second_max = 0xBF;
  size_t length = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    second_min = lead == 0xE0 ? 0xA0 : second_min;  // E0 80..9F would be overlong
    second_max = lead == 0xED ? 0x9F : second_max;  // ED A0..BF would be a surrogate
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    second_min = lead == 0xF0 ? 0x90 : second_min;  // F0 80..8F would be overlong
    second_max = lead == 0xF4 ? 0x8F : second_max;  // F4 90.. would be above U+10FFFF
  } else {
    return 0;
  }
  if (available < length || bytes[1] < second_min || bytes[1] > second_max) {
    return 0;
  }
  for (size_t i = 2; i < length; ++i) {
    if ((bytes[i] & 0xC0) != 0x80) {
      return 0;
    }
  }
  return length;
}

// One bit (the high bit of the byte) set for every byte of `word` that equals `byte`. Exact per
// byte, unlike the borrow-based zero-byte test: adding 0x7F to the low seven bits carries into
// the high bit exactly when those bits are non-zero.
uint64_t BytesEqualTo(uint64_t word, uint8_t byte) {
  const uint64_t differences = word ^ (kEveryLowBit * byte);
  const uint64_t low_bits = ~kEveryHighBit;
  return ~(((differences & low_bits) + low_bits) | differences) & kEveryHighBit;
}

// Counts levels and finds wildcards of an already UTF-8-validated topic. '/', '+' and '#' are
// ASCII, and no byte of a multi-byte UTF-8 sequence is ASCII, so scanning bytes is exact.
struct TopicScan {
  size_t levels = 1;
  bool has_wildcard = false;
  Violation first_wildcard_violation = Violation::kNone;  // filters only
};

// Checks the wildcard at topic[i] against §4.7.1 and records the first misplaced one.
void ScanWildcard(std::string_view topic, size_t i, TopicScan& scan) {
  scan.has_wildcard = true;
  if (scan.first_wildcard_violation != Violation::kNone) {
    return;
  }
  const char c = topic[i];
  const bool starts_level = i == 0 || topic[i - 1] == '/';
  const bool is_last_byte = i + 1 == topic.size();
  if (c == '+' && !(starts_level && (is_last_byte || topic[i + 1] == '/'))) {
    scan.first_wildcard_violation = Violation::kBadSingleLevelWildcard;  // MQTT-4.7.1-3
  } else if (c == '#' && !(starts_level && is_last_byte)) {
    scan.first_wildcard_violation = Violation::kBadMultiLevelWildcard;  // MQTT-4.7.1-2
  }
}

TopicScan ScanTopic(std::string_view topic) {
  TopicScan scan;
  const size_t size = topic.size();
  size_t i = 0;
  while (i < size) {
    // Fast path: eight bytes without a wildcard only need their '/' counted.
    if (size - i >= sizeof(uint64_t)) {
      uint64_t word;
      std::memcpy(&word, topic.data() + i, sizeof(word));
      // '+' (0x2B) and '#' (0x23) differ only in bit 3, and no other byte ORs to 0x2B.
      if (BytesEqualTo(word | (kEveryLowBit * 0x08), '+') == 0) {
        // Each matching byte contributes 0x80; >> 7 makes it 1 and the multiply sums the eight
        // bytes into the top byte (at most 8, so no carry spills).
        scan.levels += static_cast<size_t>(((BytesEqualTo(word, '/') >> 7) * kEveryLowBit) >> 56);
        i += sizeof(word);
        continue;
      }
    }
    if (topic[i] == '/') {
      ++scan.levels;
    } else if (topic[i] == '+' || topic[i] == '#') {
      ScanWildcard(topic, i, scan);
    }
    ++i;
  }
  RINGMQ_ASSERT(scan.levels <= size + 1);
  return scan;
}

}  // namespace

Violation ValidateUtf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const size_t size = text.size();
  size_t i = 0;
  while (i < size) {
    // Fast path: topics are overwhelmingly ASCII, so take eight bytes at a time.
    if (size - i >= sizeof(uint64_t)) {
      uint64_t word;
      std::memcpy(&word, bytes + i, sizeof(word));
      if (IsAsciiWithoutNul(word)) {
        i += sizeof(word);
        continue;
      }
    }
    if (bytes[i] < 0x80) {
      if (bytes[i] == 0) {
        return Violation::kNullCharacter;  // MQTT-1.5.3-2
      }
      ++i;
      continue;
    }
    const size_t length = MultiByteSequenceLength(bytes + i, size - i);
    if (length == 0) {
      return Violation::kInvalidUtf8;  // MQTT-1.5.3-1
    }
    i += length;
  }
  RINGMQ_ASSERT(i == size);
  return Violation::kNone;
}

// Precedence when a topic breaks several rules: empty, then UTF-8 (first bad character), then
// too many levels, then wildcards.
Violation ValidateTopicName(std::string_view topic) {
  if (topic.empty()) {
    return Violation::kEmptyTopic;  // MQTT-4.7.3-1
  }
  if (const Violation utf8 = ValidateUtf8(topic); utf8 != Violation::kNone) {
    return utf8;
  }
  const TopicScan scan = ScanTopic(topic);
  if (scan.levels > kMaxTopicLevels) {
    return Violation::kTooManyTopicLevels;
  }
  if (scan.has_wildcard) {
    return Violation::kWildcardInTopicName;  // MQTT-3.3.2-2
  }
  return Violation::kNone;
}

// Same precedence as ValidateTopicName; among wildcard mistakes the leftmost one is reported.
Violation ValidateTopicFilter(std::string_view filter) {
  if (filter.empty()) {
    return Violation::kEmptyTopic;  // MQTT-4.7.3-1
  }
  if (const Violation utf8 = ValidateUtf8(filter); utf8 != Violation::kNone) {
    return utf8;
  }
  const TopicScan scan = ScanTopic(filter);
  if (scan.levels > kMaxTopicLevels) {
    return Violation::kTooManyTopicLevels;
  }
  return scan.first_wildcard_violation;
}

std::optional<SharedFilter> ParseSharedFilter(std::string_view filter) {
  if (!IsSharedFilter(filter)) {
    return std::nullopt;
  }
  const std::string_view rest = filter.substr(sizeof("$share/") - 1);
  const size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 == rest.size()) {
    return std::nullopt;  // 5.0:MQTT-4.8.2-1: a ShareName, then '/' and a filter
  }
  const std::string_view share_name = rest.substr(0, slash);
  if (share_name.find_first_of("+#") != std::string_view::npos) {
    return std::nullopt;  // 5.0:MQTT-4.8.2-2
  }
  return SharedFilter{share_name, rest.substr(slash + 1)};
}

bool IsSysTopic(std::string_view topic) {
  return topic == "$SYS" || topic.starts_with("$SYS/");
}

}  // namespace ringmq::mqtt
