#include "cluster/json_reader.h"

#include <array>
#include <charconv>

#include "common/assert.h"

namespace ringmq::cluster::json {
namespace {

// The value of one hex digit, or -1.
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

uint32_t Hex4(std::string_view text) {
  RINGMQ_ASSERT(text.size() >= 4);
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 4) | static_cast<uint32_t>(HexValue(text[i]));
  return value;
}

bool IsHighSurrogate(uint32_t unit) { return unit >= 0xD800 && unit <= 0xDBFF; }
bool IsLowSurrogate(uint32_t unit) { return unit >= 0xDC00 && unit <= 0xDFFF; }

void AppendUtf8(uint32_t code, std::string& out) {
  RINGMQ_ASSERT(code <= 0x10FFFF);
  if (code < 0x80) {
    out.push_back(static_cast<char>(code));
  } else if (code < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code >> 6)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else if (code < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
}

// Unescapes a string's raw bytes that ScanString(check_surrogates = true) accepted, so every
// escape is well formed and every surrogate paired.
void Unescape(std::string_view raw, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < raw.size()) {
    const char c = raw[i++];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    RINGMQ_ASSERT(i < raw.size());
    const char e = raw[i++];
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t code = Hex4(raw.substr(i));
        i += 4;
        if (IsHighSurrogate(code)) {
          RINGMQ_ASSERT(raw.substr(i, 2) == "\\u");
          const uint32_t low = Hex4(raw.substr(i + 2));
          RINGMQ_ASSERT(IsLowSurrogate(low));
          i += 6;
          code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        }
        AppendUtf8(code, out);
        break;
      }
      default:  // '"', '\\', '/'
        out.push_back(e);
        break;
    }
  }
}

}  // namespace

void Reader::SkipWhitespace() {
  while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                                 text_[pos_] == '\r')) {
    ++pos_;
  }
}

bool Reader::Consume(char c) {
  SkipWhitespace();
  if (AtEnd() || text_[pos_] != c) return false;
  ++pos_;
  return true;
}

bool Reader::Literal(std::string_view word) {
  if (text_.substr(pos_, word.size()) != word) return false;
  pos_ += word.size();
  return true;
}

absl::Status Reader::Error(std::string_view what) const {
  std::string text(context_);
  text.append(": ");
  text.append(what);
  text.append(" at byte ");
  text.append(std::to_string(pos_));
  return absl::InvalidArgumentError(text);
}

absl::StatusOr<uint32_t> Reader::ScanHex4() {
  if (text_.size() - pos_ < 4) return Error("short \\u escape");
  const size_t start = pos_;
  for (int i = 0; i < 4; ++i) {
    if (HexValue(text_[pos_++]) < 0) return Error("bad hex digit");
  }
  return Hex4(text_.substr(start, 4));
}

// After "\u": four hex digits; with check_surrogates, a high surrogate must be followed by
// "\u" and a low one, and a low one must not stand alone.
absl::Status Reader::ScanUnicodeEscape(bool check_surrogates) {
  absl::StatusOr<uint32_t> unit = ScanHex4();
  if (!unit.ok()) return unit.status();
  if (!check_surrogates) return absl::OkStatus();
  if (IsLowSurrogate(*unit)) return Error("lone low surrogate");
  if (!IsHighSurrogate(*unit)) return absl::OkStatus();
  if (text_.substr(pos_, 2) != "\\u") return Error("lone high surrogate");
  pos_ += 2;
  absl::StatusOr<uint32_t> low = ScanHex4();
  if (!low.ok()) return low.status();
  if (!IsLowSurrogate(*low)) return Error("bad low surrogate");
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> Reader::ScanString(bool check_surrogates) {
  SkipWhitespace();
  if (AtEnd() || text_[pos_] != '"') return Error("string expected");
  const size_t start = ++pos_;
  while (true) {
    if (AtEnd()) return Error("unterminated string");
    const char c = text_[pos_++];
    if (c == '"') return text_.substr(start, pos_ - 1 - start);
    if (static_cast<unsigned char>(c) < 0x20) return Error("control byte in string");
    if (c != '\\') continue;
    if (AtEnd()) return Error("unterminated escape");
    const char e = text_[pos_++];
    if (e == 'u') {
      if (absl::Status status = ScanUnicodeEscape(check_surrogates); !status.ok()) return status;
    } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
      return Error("bad escape");
    }
  }
}

absl::StatusOr<std::string_view> Reader::String() {
  return ScanString(strings_ == Strings::kDecoded);
}

absl::Status Reader::DecodedString(std::string& out) {
  absl::StatusOr<std::string_view> raw = ScanString(/*check_surrogates=*/true);
  if (!raw.ok()) return raw.status();
  Unescape(*raw, out);
  return absl::OkStatus();
}

absl::StatusOr<std::string_view> Reader::Number() {
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  SkipWhitespace();
  const size_t start = pos_;
  auto next_is = [&](char c) { return !AtEnd() && text_[pos_] == c; };
  auto digits = [&]() {
    const size_t first = pos_;
    while (!AtEnd() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    return pos_ - first;
  };
  if (next_is('-')) ++pos_;
  if (next_is('0')) {
    ++pos_;
  } else if (digits() == 0) {
    return Error("number expected");
  }
  if (next_is('.')) {
    ++pos_;
    if (digits() == 0) return Error("digits expected after '.'");
  }
  if (next_is('e') || next_is('E')) {
    ++pos_;
    if (next_is('+') || next_is('-')) ++pos_;
    if (digits() == 0) return Error("exponent digits expected");
  }
  return text_.substr(start, pos_ - start);
}

absl::StatusOr<int64_t> Reader::Integer() {
  absl::StatusOr<std::string_view> text = Number();
  if (!text.ok()) return text.status();
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) return Error("integer expected");
  return value;
}

absl::StatusOr<bool> Reader::Bool() {
  SkipWhitespace();
  if (Literal("true")) return true;
  if (Literal("false")) return false;
  return Error("boolean expected");
}

absl::StatusOr<std::string_view> Reader::Key(std::string& storage) {
  absl::StatusOr<std::string_view> key = String();
  if (!key.ok()) return key;
  if (!Consume(':')) return Error("':' expected");
  if (strings_ == Strings::kRaw || key->find('\\') == std::string_view::npos) return key;
  Unescape(*key, storage);
  return std::string_view(storage);
}

absl::Status Reader::SkipKeyColon() {
  if (absl::Status status = String().status(); !status.ok()) return status;
  if (!Consume(':')) return Error("':' expected");
  return absl::OkStatus();
}

absl::Status Reader::SkipValue(int depth) {
  RINGMQ_ASSERT(depth >= 0 && depth <= kMaxDepth);
  std::array<char, kMaxDepth> closers{};
  int open = 0;
  while (true) {
    SkipWhitespace();
    // A value.
    const char c = AtEnd() ? '\0' : text_[pos_];
    if (c == '{' || c == '[') {
      if (depth + open >= kMaxDepth) return Error("nesting too deep");
      closers[open++] = c == '{' ? '}' : ']';
      ++pos_;
      if (Consume(closers[open - 1])) {
        --open;
      } else {
        if (c == '{') {
          if (absl::Status status = SkipKeyColon(); !status.ok()) return status;
        }
        continue;
      }
    } else if (c == '"') {
      if (absl::Status status = String().status(); !status.ok()) return status;
    } else if (Literal("true") || Literal("false") || Literal("null")) {
    } else if (absl::Status status = Number().status(); !status.ok()) {
      return status;
    }
    // After a value: closers, or a separator (and the next member's key).
    while (true) {
      if (open == 0) return absl::OkStatus();
      if (Consume(closers[open - 1])) {
        --open;
        continue;
      }
      if (!Consume(',')) return Error("',' expected");
      if (closers[open - 1] == '}') {
        if (absl::Status status = SkipKeyColon(); !status.ok()) return status;
      }
      break;
    }
  }
}

}  // namespace ringmq::cluster::json
