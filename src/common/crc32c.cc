#include "common/crc32c.h"

#include <array>
#include <cstddef>
#include <cstring>

#include "common/assert.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace ringmq {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // Castagnoli's, bit-reversed

// kTables[0] is the byte-at-a-time table; kTables[k][b] is the CRC of byte b followed by k zero
// bytes, so eight bytes are folded with one lookup each (slicing-by-8).
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables tables{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (kPolynomial & (0U - (crc & 1)));
    tables[0][byte] = crc;
  }
  for (uint32_t byte = 0; byte < 256; ++byte) {
    for (size_t k = 1; k < 8; ++k) {
      const uint32_t previous = tables[k - 1][byte];
      tables[k][byte] = (previous >> 8) ^ tables[0][previous & 0xFF];
    }
  }
  return tables;
}

constexpr Tables kTables = MakeTables();
static_assert(kTables[0][1] == 0xF26B8303);  // RFC 3720 B.4's table, entry 1

uint32_t Load32(const uint8_t* bytes) {
  return static_cast<uint32_t>(bytes[0]) | static_cast<uint32_t>(bytes[1]) << 8 |
         static_cast<uint32_t>(bytes[2]) << 16 | static_cast<uint32_t>(bytes[3]) << 24;
}

bool DetectHardware() {
#if defined(__x86_64__)
  __builtin_cpu_init();  // may run before libgcc's own constructor has filled the CPU model
  return __builtin_cpu_supports("sse4.2");
#else
  return false;
#endif
}

}  // namespace

uint32_t Crc32cPortable(uint32_t crc, std::span<const uint8_t> bytes) {
  uint32_t state = ~crc;
  const uint8_t* next = bytes.data();
  size_t left = bytes.size();
  for (; left >= 8; left -= 8, next += 8) {
    const uint32_t low = Load32(next) ^ state;
    const uint32_t high = Load32(next + 4);
    state = kTables[7][low & 0xFF] ^ kTables[6][(low >> 8) & 0xFF] ^
            kTables[5][(low >> 16) & 0xFF] ^ kTables[4][low >> 24] ^
            kTables[3][high & 0xFF] ^ kTables[2][(high >> 8) & 0xFF] ^
            kTables[1][(high >> 16) & 0xFF] ^ kTables[0][high >> 24];
  }
  for (; left > 0; --left, ++next) state = (state >> 8) ^ kTables[0][(state ^ *next) & 0xFF];
  return ~state;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t crc,
                                                           std::span<const uint8_t> bytes) {
  uint64_t state = ~crc;
  const uint8_t* next = bytes.data();
  size_t left = bytes.size();
  // The instruction takes unaligned operands; memcpy keeps the load well-defined.
  for (; left >= 8; left -= 8, next += 8) {
    uint64_t word;
    std::memcpy(&word, next, sizeof(word));
    state = _mm_crc32_u64(state, word);
  }
  uint32_t state32 = static_cast<uint32_t>(state);
  for (; left > 0; --left, ++next) state32 = _mm_crc32_u8(state32, *next);
  return ~state32;
}
#else
uint32_t Crc32cHardware(uint32_t, std::span<const uint8_t>) {
  RINGMQ_ASSERT(false && "Crc32cHardware without Crc32cHardwareAvailable()");
  return 0;
}
#endif

bool Crc32cHardwareAvailable() {
  static const bool available = DetectHardware();
  return available;
}

uint32_t Crc32cExtend(uint32_t crc, std::span<const uint8_t> bytes) {
  return Crc32cHardwareAvailable() ? Crc32cHardware(crc, bytes) : Crc32cPortable(crc, bytes);
}

uint32_t Crc32c(std::span<const uint8_t> bytes) { return Crc32cExtend(0, bytes); }

}  // namespace ringmq
