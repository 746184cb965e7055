// common/base64.h: RFC 4648 §4 (standard, padded) and §5 (URL alphabet, unpadded).
#include "common/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringmq::base64 {
namespace {

std::span<const uint8_t> Bytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

TEST(Base64Test, Rfc4648Section10Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},             {"f", "Zg=="},         {"fo", "Zm8="},       {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    std::string out(EncodedSize(plain.size()), '?');
    Encode(Bytes(plain), out.data());
    EXPECT_EQ(out, encoded);
    EXPECT_EQ(EncodeToString(Bytes(plain)), encoded);
    const std::optional<std::vector<uint8_t>> back = DecodeToVector(encoded);
    ASSERT_TRUE(back.has_value()) << encoded;
    EXPECT_EQ(std::string(back->begin(), back->end()), plain);
  }
}

TEST(Base64Test, RoundTripsEveryLengthUpTo70) {
  for (size_t size = 0; size <= 70; ++size) {
    std::vector<uint8_t> bytes(size);
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 37 + 251);
    std::string text(EncodedSize(size), '?');
    Encode(bytes, text.data());
    EXPECT_EQ(text.size() % 4, 0u);
    std::vector<uint8_t> back(DecodedSizeMax(text.size()));
    size_t back_size = 0;
    ASSERT_TRUE(Decode(text, back.data(), back_size)) << size;
    back.resize(back_size);
    EXPECT_EQ(back, bytes) << size;
  }
}

TEST(Base64Test, DecodeRejectsWhatIsNotPaddedStandardBase64) {
  uint8_t out[16];
  size_t size = 0;
  for (std::string_view bad : {"Zg=", "Zg", "Zm9", "Z===", "Zm9v=Zm9", "Zg==Zm9v", "Zm9-",
                               "Zm9_", "Zm9v!mFy", "Zm 9", "Zm9\n"}) {
    EXPECT_FALSE(Decode(bad, out, size)) << bad;
    EXPECT_FALSE(DecodeToVector(bad).has_value()) << bad;
  }
  EXPECT_TRUE(Decode("", out, size));
  EXPECT_EQ(size, 0u);
}

TEST(Base64Test, UrlAlphabetIsUnpaddedWithDashAndUnderscore) {
  EXPECT_EQ(EncodeToString(Bytes("fo"), Alphabet::kUrl), "Zm8");
  EXPECT_EQ(EncodeToString(Bytes("f"), Alphabet::kUrl), "Zg");
  EXPECT_EQ(EncodeToString(Bytes("foobar"), Alphabet::kUrl), "Zm9vYmFy");
  const std::vector<uint8_t> high = {0xfb, 0xff};
  EXPECT_EQ(EncodeToString(high, Alphabet::kUrl), "-_8");
  EXPECT_EQ(EncodeToString(high), "+/8=");
  for (size_t size = 0; size < 10; ++size) {
    EXPECT_EQ(EncodedSize(size, Alphabet::kUrl), EncodeToString(std::vector<uint8_t>(size, 7),
                                                                 Alphabet::kUrl).size());
  }
}

}  // namespace
}  // namespace ringmq::base64
