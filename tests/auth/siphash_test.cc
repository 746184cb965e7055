// SipHash-2-4 against the reference vectors of the SipHash paper (Appendix A and the
// reference implementation's vectors.h): key 00..0f, messages 00, 00 01, ... .
#include "auth/siphash.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ringmq::auth {
namespace {

SipKey ReferenceKey() {
  // Bytes 00..0f read as two little-endian words.
  return SipKey{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
}

TEST(SipHashTest, ReferenceVectors) {
  uint8_t message[64];
  for (int i = 0; i < 64; ++i) message[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(SipHash24(ReferenceKey(), message, 0), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(SipHash24(ReferenceKey(), message, 1), 0x74f839c593dc67fdULL);
  EXPECT_EQ(SipHash24(ReferenceKey(), message, 8), 0x93f5f5799a932462ULL);
  EXPECT_EQ(SipHash24(ReferenceKey(), message, 15), 0xa129ca6149be45e5ULL);  // the paper's
}

TEST(SipHashTest, PartsHashLikeTheirConcatenation) {
  uint8_t message[40];
  for (int i = 0; i < 40; ++i) message[i] = static_cast<uint8_t>(i * 7);
  const uint64_t whole = SipHash24(ReferenceKey(), message, 40);
  EXPECT_EQ(SipHash24(ReferenceKey(), message, 3, message + 3, 20, message + 23, 17), whole);
  EXPECT_EQ(SipHash24(ReferenceKey(), message, 8, message + 8, 32), whole);
}

TEST(SipHashTest, KeyChangesTheDigest) {
  const char text[] = "user:password";
  EXPECT_NE(SipHash24(ReferenceKey(), text, sizeof(text)),
            SipHash24(SipKey{1, 2}, text, sizeof(text)));
}

}  // namespace
}  // namespace ringmq::auth
