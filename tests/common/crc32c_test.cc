// CRC32C (src/common/crc32c.h): the published check values, and the SSE4.2 and slicing-by-8
// implementations agree with each other and with a bit-at-a-time reference on random inputs of
// every length and alignment.
#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <vector>

#include "common/bytes.h"

namespace ringmq {
namespace {

// The definition, one bit at a time (RFC 3720 B.4), as the reference.
uint32_t BitwiseCrc32c(std::span<const uint8_t> bytes) {
  uint32_t crc = 0xFFFFFFFF;
  for (const uint8_t byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78 & (0U - (crc & 1)));
  }
  return crc ^ 0xFFFFFFFF;
}

TEST(Crc32cTest, CheckValue_RFC4960_AppendixB) {
  EXPECT_EQ(Crc32c(AsBytes("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable(0, AsBytes("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c({}), 0u);
}

// RFC 3720 B.4's test vectors (32 bytes each), whose CRCs are given there byte-reversed.
TEST(Crc32cTest, IscsiVectors_RFC3720_B4) {
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
  for (uint8_t i = 0; i < 32; ++i) {
    up[i] = i;
    down[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(up), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(down), 0x113FDB5Cu);
}

TEST(Crc32cTest, PortableAndHardwareAgreeOnRandomInputs) {
  std::mt19937_64 random(15);
  std::vector<uint8_t> buffer(4096 + 16);
  for (uint8_t& byte : buffer) byte = static_cast<uint8_t>(random());
  const bool hardware = Crc32cHardwareAvailable();
  // Every length up to 300 at every start offset mod 8 (the 8-byte loops and their tails), then
  // long random slices.
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t length = 0; length <= 300; ++length) {
      const std::span<const uint8_t> bytes(buffer.data() + offset, length);
      const uint32_t expected = BitwiseCrc32c(bytes);
      ASSERT_EQ(Crc32cPortable(0, bytes), expected) << offset << " " << length;
      if (hardware) {
        ASSERT_EQ(Crc32cHardware(0, bytes), expected) << offset << " " << length;
      }
      ASSERT_EQ(Crc32c(bytes), expected);
    }
  }
  for (int round = 0; round < 200; ++round) {
    const size_t offset = random() % 16;
    const size_t length = random() % 4096;
    const std::span<const uint8_t> bytes(buffer.data() + offset, length);
    const uint32_t expected = BitwiseCrc32c(bytes);
    ASSERT_EQ(Crc32cPortable(0, bytes), expected);
    if (hardware) {
      ASSERT_EQ(Crc32cHardware(0, bytes), expected);
    }
  }
  if (!hardware) GTEST_SKIP() << "no SSE4.2 on this CPU: only the portable path was checked";
}

TEST(Crc32cTest, ExtendEqualsOnePass) {
  std::mt19937_64 random(3960);
  std::vector<uint8_t> bytes(1000);
  for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(random());
  const std::span<const uint8_t> all(bytes);
  const uint32_t whole = Crc32c(all);
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{500},
                       size_t{999}, size_t{1000}}) {
    EXPECT_EQ(Crc32cExtend(Crc32c(all.first(split)), all.subspan(split)), whole) << split;
    EXPECT_EQ(Crc32cPortable(Crc32cPortable(0, all.first(split)), all.subspan(split)), whole);
    if (Crc32cHardwareAvailable()) {
      EXPECT_EQ(Crc32cHardware(Crc32cHardware(0, all.first(split)), all.subspan(split)), whole);
    }
  }
}

}  // namespace
}  // namespace ringmq
