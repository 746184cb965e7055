#include "common/base64.h"

namespace ringmq::base64 {
namespace {

constexpr char kStandardAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// The value of one character of the standard alphabet, or -1.
int StandardValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

void Encode(std::span<const uint8_t> bytes, char* out, Alphabet alphabet) {
  const char* const table = alphabet == Alphabet::kStandard ? kStandardAlphabet : kUrlAlphabet;
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t group = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    *out++ = table[(group >> 18) & 63];
    *out++ = table[(group >> 12) & 63];
    *out++ = table[(group >> 6) & 63];
    *out++ = table[group & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest == 0) return;
  const uint32_t group = (uint32_t{bytes[i]} << 16) | (rest == 2 ? uint32_t{bytes[i + 1]} << 8 : 0);
  *out++ = table[(group >> 18) & 63];
  *out++ = table[(group >> 12) & 63];
  if (rest == 2) *out++ = table[(group >> 6) & 63];
  if (alphabet == Alphabet::kStandard) {
    if (rest == 1) *out++ = '=';
    *out++ = '=';
  }
}

std::string EncodeToString(std::span<const uint8_t> bytes, Alphabet alphabet) {
  std::string out(EncodedSize(bytes.size(), alphabet), '\0');
  Encode(bytes, out.data(), alphabet);
  return out;
}

bool Decode(std::string_view text, uint8_t* out, size_t& size) {
  size = 0;
  if (text.size() % 4 != 0) return false;
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    // Padding: only in the last group, as its last one or two characters (RFC 4648 §4).
    const size_t pad = !last ? 0 : text[i + 3] != '=' ? 0 : text[i + 2] != '=' ? 1 : 2;
    uint32_t group = 0;
    for (size_t j = 0; j < 4; ++j) {
      const int value = j < 4 - pad ? StandardValue(text[i + j]) : 0;
      if (value < 0) return false;  // includes '=' anywhere but the end
      group = (group << 6) | static_cast<uint32_t>(value);
    }
    out[size++] = static_cast<uint8_t>(group >> 16);
    if (pad < 2) out[size++] = static_cast<uint8_t>(group >> 8);
    if (pad < 1) out[size++] = static_cast<uint8_t>(group);
  }
  return true;
}

std::optional<std::vector<uint8_t>> DecodeToVector(std::string_view text) {
  std::vector<uint8_t> out(DecodedSizeMax(text.size()));
  size_t size = 0;
  if (!Decode(text, out.data(), size)) return std::nullopt;
  out.resize(size);
  return out;
}

}  // namespace ringmq::base64
