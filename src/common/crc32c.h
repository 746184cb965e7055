// CRC32C (Castagnoli; RFC 4960 appendix B, RFC 3720 B.4): the checksum of the persistence log's
// records (src/persist/record.h) and of the PROXY protocol's PP2_TYPE_CRC32C TLV (PROXY-2.2.3).
//
// The log checksums every record it writes and reads every record back at recovery, so this is
// on the write path of each durable message: on x86-64 CPUs with SSE4.2 the CRC32 instruction
// does 8 bytes per step (chosen at run time, so the build needs no -msse4.2 and the binary runs
// on any x86-64); elsewhere a slicing-by-8 table does 8 bytes per step with 8 table reads.
// Both compute the same function; Crc32cPortable and Crc32cHardware are exposed so that a test
// can compare them.
//
// Thread safety: stateless (the tables are constants); any thread.
#ifndef RINGMQ_COMMON_CRC32C_H_
#define RINGMQ_COMMON_CRC32C_H_

#include <cstdint>
#include <span>

namespace ringmq {

// CRC32C of `bytes` (initial value and final XOR 0xFFFFFFFF, reflected): "123456789" gives
// 0xE3069283.
uint32_t Crc32c(std::span<const uint8_t> bytes);

// The CRC32C of A followed by `bytes`, given crc = Crc32c(A): Crc32c(A + B) ==
// Crc32cExtend(Crc32c(A), B). Crc32cExtend(0, bytes) == Crc32c(bytes).
uint32_t Crc32cExtend(uint32_t crc, std::span<const uint8_t> bytes);

// Whether Crc32cExtend uses the CPU's CRC32 instruction (x86-64 with SSE4.2).
bool Crc32cHardwareAvailable();

// The two implementations behind Crc32cExtend, for tests and benchmarks. Crc32cHardware may be
// called only when Crc32cHardwareAvailable().
uint32_t Crc32cPortable(uint32_t crc, std::span<const uint8_t> bytes);
uint32_t Crc32cHardware(uint32_t crc, std::span<const uint8_t> bytes);

}  // namespace ringmq

#endif  // RINGMQ_COMMON_CRC32C_H_
