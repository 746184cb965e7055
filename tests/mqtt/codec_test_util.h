// Helpers shared by the codec tests: building raw packets byte by byte, and framing + decoding
// them the way a connection does.
#ifndef RINGMQ_TESTS_MQTT_CODEC_TEST_UTIL_H_
#define RINGMQ_TESTS_MQTT_CODEC_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "mqtt/violation.h"

namespace ringmq::mqtt {

// gtest finds these by ADL. Internal linkage: other test files may define their own printers.
[[maybe_unused]] static void PrintTo(Violation violation, std::ostream* os) {
  *os << NameOf(violation);
}
[[maybe_unused]] static void PrintTo(FrameStatus status, std::ostream* os) {
  *os << (status == FrameStatus::kComplete   ? "kComplete"
          : status == FrameStatus::kNeedMore ? "kNeedMore"
                                             : "kInvalid");
}

namespace test {

using Bytes = std::vector<uint8_t>;

// Large enough for any packet: max_packet_size never interferes unless a test sets it.
inline constexpr uint32_t kNoLimit = kMaxRemainingLength + kMaxFixedHeaderLength;

inline Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) {
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

inline Bytes Raw(std::string_view text) { return Bytes(text.begin(), text.end()); }

inline Bytes U16(uint16_t value) {
  return {static_cast<uint8_t>(value >> 8), static_cast<uint8_t>(value & 0xFF)};
}

// A 2-byte length prefix followed by the bytes (§1.5.3).
inline Bytes Str(std::string_view text) {
  return Cat({U16(static_cast<uint16_t>(text.size())), Raw(text)});
}

// Minimal §2.2.3 encoding of a remaining length.
inline Bytes RemainingLength(size_t value) {
  Bytes bytes;
  do {
    uint8_t byte = value & 0x7F;
    value >>= 7;
    bytes.push_back(value != 0 ? (byte | 0x80) : byte);
  } while (value != 0);
  return bytes;
}

// A whole packet from its first byte and its body.
inline Bytes MakePacket(uint8_t first_byte, const Bytes& body) {
  return Cat({Bytes{first_byte}, RemainingLength(body.size()), body});
}

inline Bytes Encoded(const Packet& packet, ProtocolLevel level = ProtocolLevel::kMqtt311) {
  Bytes out(EncodedSize(packet, level));
  const size_t written = Encode(packet, out, level);
  EXPECT_EQ(written, out.size());
  return out;
}

inline std::string_view AsStringView(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// Frames and decodes `bytes`, which must hold exactly one packet, as a connection would.
inline Result<Packet> DecodeWhole(std::span<const uint8_t> bytes,
                                  ProtocolLevel level = ProtocolLevel::kMqtt311) {
  const Frame frame = PeekFrame(bytes, kNoLimit, level);
  if (frame.status == FrameStatus::kInvalid) {
    return frame.violation;
  }
  EXPECT_EQ(frame.status, FrameStatus::kComplete);
  if (frame.status != FrameStatus::kComplete) {
    return Violation::kTruncated;
  }
  EXPECT_EQ(frame.header.total_length(), bytes.size()) << "trailing bytes after one packet";
  return Decode(frame.header,
                bytes.subspan(frame.header.header_length, frame.header.remaining_length), level);
}

// Decoded packets view their bytes. Keep() parks bytes until the test program exits so that a
// packet decoded from a temporary stays valid.
inline const Bytes& Keep(Bytes bytes) {
  static std::deque<Bytes> kept;
  return kept.emplace_back(std::move(bytes));
}

inline Result<Packet> DecodeKept(Bytes bytes, ProtocolLevel level = ProtocolLevel::kMqtt311) {
  return DecodeWhole(Keep(std::move(bytes)), level);
}

// The violation DecodeWhole reports, or kNone.
inline Violation ViolationOf(const Bytes& bytes, ProtocolLevel level = ProtocolLevel::kMqtt311) {
  return DecodeWhole(bytes, level).violation();
}

}  // namespace test
}  // namespace ringmq::mqtt

#endif  // RINGMQ_TESTS_MQTT_CODEC_TEST_UTIL_H_
