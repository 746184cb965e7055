// PeekFrame: framing, early rejection, and split-at-every-byte behaviour.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "codec_test_util.h"
#include "mqtt/codec.h"

namespace ringmq::mqtt {
namespace {

using test::Bytes;
using test::kNoLimit;

Frame Peek(const Bytes& bytes, uint32_t max_packet_size = kNoLimit) {
  return PeekFrame(bytes, max_packet_size);
}

TEST(FramePeek, EmptyInputNeedsMore) {
  const Frame frame = Peek({});
  EXPECT_EQ(frame.status, FrameStatus::kNeedMore);
  EXPECT_EQ(frame.header.header_length, 0);
}

TEST(FramePeek, CompletePingreq) {
  const Frame frame = Peek({0xC0, 0x00});
  ASSERT_EQ(frame.status, FrameStatus::kComplete);
  EXPECT_EQ(frame.header.type, PacketType::kPingreq);
  EXPECT_EQ(frame.header.flags, 0);
  EXPECT_EQ(frame.header.remaining_length, 0u);
  EXPECT_EQ(frame.header.header_length, 2);
  EXPECT_EQ(frame.header.total_length(), 2u);
}

TEST(FramePeek, IgnoresBytesOfTheNextPacket) {
  const Frame frame = Peek({0x40, 0x02, 0x00, 0x01, 0xC0, 0x00});
  ASSERT_EQ(frame.status, FrameStatus::kComplete);
  EXPECT_EQ(frame.header.total_length(), 4u);
}

TEST(FramePeek, HeaderReportedWhileBodyIsMissing) {
  const Frame frame = Peek({0x30, 0x80, 0x01, 0x00});  // PUBLISH, remaining length 128
  EXPECT_EQ(frame.status, FrameStatus::kNeedMore);
  EXPECT_EQ(frame.header.type, PacketType::kPublish);
  EXPECT_EQ(frame.header.header_length, 3);
  EXPECT_EQ(frame.header.remaining_length, 128u);
}

TEST(FramePeek, ReservedType0RejectedFromFirstByte_MQTT_2_2) {
  const Frame frame = Peek({0x00});
  EXPECT_EQ(frame.status, FrameStatus::kInvalid);
  EXPECT_EQ(frame.violation, Violation::kReservedPacketType);
}

TEST(FramePeek, ReservedType15RejectedFromFirstByte_MQTT_2_2) {
  const Frame frame = Peek({0xF0});
  EXPECT_EQ(frame.status, FrameStatus::kInvalid);
  EXPECT_EQ(frame.violation, Violation::kReservedPacketType);
}

// MQTT-2.2.2-1/2, MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1: every type but PUBLISH has exactly
// one legal flags nibble; every other nibble is refused from the first byte alone.
TEST(FramePeek, FixedHeaderFlagsCheckedFromFirstByte_MQTT_2_2_2_1) {
  for (uint8_t type = 1; type <= 14; ++type) {
    if (type == 3) {
      continue;
    }
    const bool needs_0010 = type == 6 || type == 8 || type == 10;
    for (uint8_t flags = 0; flags < 16; ++flags) {
      const Frame frame = Peek({static_cast<uint8_t>(type << 4 | flags)});
      const bool legal = flags == (needs_0010 ? 0b0010 : 0);
      if (legal) {
        EXPECT_EQ(frame.status, FrameStatus::kNeedMore) << int{type} << "/" << int{flags};
      } else {
        EXPECT_EQ(frame.status, FrameStatus::kInvalid) << int{type} << "/" << int{flags};
        EXPECT_EQ(frame.violation, Violation::kBadFixedHeaderFlags);
      }
    }
  }
}

// MQTT 3.1 sent PUBREL, SUBSCRIBE and UNSUBSCRIBE at QoS 1 with DUP set on a retransmission:
// at level 3 the DUP bit is allowed there (and only there); at level 4 it stays malformed.
TEST(FramePeek, Mqtt31AllowsDupOnPubrelSubscribeUnsubscribeOnly) {
  for (uint8_t type = 1; type <= 14; ++type) {
    if (type == 3) {
      continue;
    }
    const bool needs_0010 = type == 6 || type == 8 || type == 10;
    for (uint8_t flags = 0; flags < 16; ++flags) {
      const Bytes first = {static_cast<uint8_t>(type << 4 | flags)};
      const bool legal_31 = needs_0010 ? (flags == 0b0010 || flags == 0b1010) : flags == 0;
      const bool legal_311 = flags == (needs_0010 ? 0b0010 : 0);
      const Frame at_31 = PeekFrame(first, kNoLimit, ProtocolLevel::kMqtt31);
      const Frame at_311 = PeekFrame(first, kNoLimit, ProtocolLevel::kMqtt311);
      EXPECT_EQ(at_31.status == FrameStatus::kNeedMore, legal_31) << int{type} << "/" << int{flags};
      EXPECT_EQ(at_311.status == FrameStatus::kNeedMore, legal_311)
          << int{type} << "/" << int{flags};
    }
  }
}

TEST(FramePeek, Mqtt31RetransmittedPubrelDecodes) {
  const Bytes pubrel = {0x6A, 0x02, 0x00, 0x07};  // PUBREL, DUP set, packet id 7
  const Frame frame = PeekFrame(pubrel, kNoLimit, ProtocolLevel::kMqtt31);
  ASSERT_EQ(frame.status, FrameStatus::kComplete);
  const Result<Packet> packet = Decode(frame.header, std::span(pubrel).subspan(2),
                                       ProtocolLevel::kMqtt31);
  ASSERT_TRUE(packet.ok());
  EXPECT_EQ(std::get<Pubrel>(packet.value()).packet_id, 7);
  EXPECT_FALSE(Decode(frame.header, std::span(pubrel).subspan(2), ProtocolLevel::kMqtt311).ok());
}

TEST(FramePeek, PubrelWithoutFlagBitIsMalformed_MQTT_3_6_1_1) {
  EXPECT_EQ(Peek({0x60}).violation, Violation::kBadFixedHeaderFlags);
}

TEST(FramePeek, SubscribeWithoutFlagBitIsMalformed_MQTT_3_8_1_1) {
  EXPECT_EQ(Peek({0x80}).violation, Violation::kBadFixedHeaderFlags);
}

TEST(FramePeek, UnsubscribeWithoutFlagBitIsMalformed_MQTT_3_10_1_1) {
  EXPECT_EQ(Peek({0xA0}).violation, Violation::kBadFixedHeaderFlags);
}

TEST(FramePeek, PublishQos3RejectedFromFirstByte_MQTT_3_3_1_4) {
  EXPECT_EQ(Peek({0x36}).violation, Violation::kPublishQos3);
  EXPECT_EQ(Peek({0x3F}).violation, Violation::kPublishQos3);
}

TEST(FramePeek, PublishDupWithQos0RejectedFromFirstByte_MQTT_3_3_1_2) {
  EXPECT_EQ(Peek({0x38}).violation, Violation::kPublishDupWithQos0);
  EXPECT_EQ(Peek({0x39}).violation, Violation::kPublishDupWithQos0);
}

TEST(FramePeek, PublishLegalFlagsAccepted) {
  for (const uint8_t first : {0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x3A, 0x3B, 0x3C, 0x3D}) {
    EXPECT_EQ(Peek({first}).status, FrameStatus::kNeedMore) << int{first};
  }
}

TEST(FramePeek, RemainingLengthOfFourBytesAccepted_MQTT_2_2_3) {
  const Frame frame = Peek({0x30, 0xFF, 0xFF, 0xFF, 0x7F});
  EXPECT_EQ(frame.status, FrameStatus::kNeedMore);
  EXPECT_EQ(frame.header.remaining_length, kMaxRemainingLength);
  EXPECT_EQ(frame.header.header_length, 5);
}

TEST(FramePeek, RemainingLengthOfFiveBytesRejectedAtFourthByte_MQTT_2_2_3) {
  // The continuation bit on the 4th length byte already promises a 5th: refuse without it.
  const Frame frame = Peek({0x30, 0x80, 0x80, 0x80, 0x80});
  EXPECT_EQ(frame.status, FrameStatus::kInvalid);
  EXPECT_EQ(frame.violation, Violation::kRemainingLengthTooLong);
  EXPECT_EQ(Peek({0x30, 0x80, 0x80, 0x80}).status, FrameStatus::kNeedMore);
}

// §2.2.3 does not require the shortest form, so 3.1.1 peers may send 0x80 0x00 for zero.
TEST(FramePeek, NonMinimalRemainingLengthAccepted) {
  const Frame frame = Peek({0xC0, 0x80, 0x80, 0x00});
  ASSERT_EQ(frame.status, FrameStatus::kComplete);
  EXPECT_EQ(frame.header.remaining_length, 0u);
  EXPECT_EQ(frame.header.header_length, 4);
  const Result<Packet> packet = Decode(frame.header, {});
  ASSERT_TRUE(packet.ok());
  EXPECT_EQ(TypeOf(packet.value()), PacketType::kPingreq);
}

TEST(FramePeek, MaxPacketSizeRejectedFromHeaderAlone) {
  // A PUBLISH claiming 256 MiB - 1 of body, and not one byte of it sent.
  const Frame frame = Peek({0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 1 << 20);
  EXPECT_EQ(frame.status, FrameStatus::kInvalid);
  EXPECT_EQ(frame.violation, Violation::kPacketTooLarge);
}

TEST(FramePeek, MaxPacketSizeRejectedBeforeLengthIsComplete) {
  // After three length bytes 0xFF the remaining length is already >= 2,097,151.
  const Frame frame = Peek({0x30, 0xFF, 0xFF, 0xFF}, 1 << 20);
  EXPECT_EQ(frame.status, FrameStatus::kInvalid);
  EXPECT_EQ(frame.violation, Violation::kPacketTooLarge);
}

TEST(FramePeek, MaxPacketSizeCountsTheFixedHeader) {
  // PUBLISH with remaining length 126: 128 bytes in all.
  EXPECT_EQ(Peek({0x30, 0x7E}, 128).status, FrameStatus::kNeedMore);
  EXPECT_EQ(Peek({0x30, 0x7E}, 127).violation, Violation::kPacketTooLarge);
  // Remaining length 127 needs 1 length byte (129 in all); 128 needs 2 (131 in all).
  EXPECT_EQ(Peek({0x30, 0x7F}, 129).status, FrameStatus::kNeedMore);
  EXPECT_EQ(Peek({0x30, 0x80, 0x01}, 130).violation, Violation::kPacketTooLarge);
  EXPECT_EQ(Peek({0x30, 0x80, 0x01}, 131).status, FrameStatus::kNeedMore);
}

TEST(FramePeek, FixedSizePacketsWithWrongLengthRejectedFromHeader) {
  EXPECT_EQ(Peek({0x40, 0x03}).violation, Violation::kSurplusBytes);        // PUBACK
  EXPECT_EQ(Peek({0x40, 0x01}).violation, Violation::kTruncated);           // PUBACK
  EXPECT_EQ(Peek({0x20, 0x00}).violation, Violation::kTruncated);           // CONNACK
  EXPECT_EQ(Peek({0x62, 0x7F}).violation, Violation::kSurplusBytes);        // PUBREL
  EXPECT_EQ(Peek({0xB0, 0x00}).violation, Violation::kTruncated);           // UNSUBACK
  EXPECT_EQ(Peek({0xC0, 0x01}).violation, Violation::kSurplusBytes);        // PINGREQ
  EXPECT_EQ(Peek({0xD0, 0x80, 0x01}).violation, Violation::kSurplusBytes);  // PINGRESP
  EXPECT_EQ(Peek({0xE0, 0xFF, 0x7F}).violation, Violation::kSurplusBytes);  // DISCONNECT
}

// Packets used by the split tests: one of each type, with bodies of several lengths.
std::vector<Bytes> SamplePackets() {
  using test::Cat;
  using test::MakePacket;
  using test::Str;
  using test::U16;
  std::vector<Bytes> packets = {
      MakePacket(0x10, Cat({Str("MQTT"),
                            {4, 0xEE},
                            U16(30),
                            Str("client"),
                            Str("will/topic"),
                            Str("bye"),
                            Str("user"),
                            Str("pass")})),
      MakePacket(0x10, Cat({Str("MQIsdp"), {3, 0x02}, U16(60), Str("c31")})),
      MakePacket(0x10, Cat({Str("MQTT"), {5, 0x02}, U16(60), Str("v5")})),  // unsupported level
      MakePacket(0x20, {0x01, 0x00}),
      MakePacket(0x30, Cat({Str("a/b"), test::Raw("payload")})),
      MakePacket(0x3B, Cat({Str("a/b"), U16(7), Bytes(300, 0xAB)})),
      MakePacket(0x35, Cat({Str("q2"), U16(65535), Bytes(20000, 0x00)})),
      MakePacket(0x40, U16(1)),
      MakePacket(0x50, U16(2)),
      MakePacket(0x62, U16(3)),
      MakePacket(0x70, U16(4)),
      MakePacket(0x82, Cat({U16(5), Str("a/+"), {1}, Str("#"), {2}})),
      MakePacket(0x90, Cat({U16(6), {0, 1, 2, 0x80}})),
      MakePacket(0xA2, Cat({U16(7), Str("a/+"), Str("#")})),
      MakePacket(0xB0, U16(8)),
      Bytes{0xC0, 0x00},
      Bytes{0xD0, 0x00},
      Bytes{0xE0, 0x00},
      // Malformed: the answer must not depend on the split either.
      MakePacket(0x30, Cat({Str("a/+"), test::Raw("x")})),
      MakePacket(0x10, Cat({Str("MQTT"), {4, 0x01}, U16(60), Str("c")})),
      MakePacket(0x82, U16(5)),
      Bytes{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},
  };
  return packets;
}

// What a connection would do with the first `available` bytes: frame, and decode if complete.
struct Outcome {
  FrameStatus status;
  Violation violation;  // from PeekFrame or Decode
  std::optional<Packet> packet;
};

Outcome FrameAndDecode(std::span<const uint8_t> bytes) {
  const Frame frame = PeekFrame(bytes, kNoLimit);
  if (frame.status != FrameStatus::kComplete) {
    return {frame.status, frame.violation, std::nullopt};
  }
  const Result<Packet> result = Decode(
      frame.header, bytes.subspan(frame.header.header_length, frame.header.remaining_length));
  if (!result.ok()) {
    return {frame.status, result.violation(), std::nullopt};
  }
  return {frame.status, Violation::kNone, result.value()};
}

TEST(FrameSplit, EveryStrictPrefixNeedsMoreOrFailsAsTheWhole) {
  for (const Bytes& packet : SamplePackets()) {
    const Outcome whole = FrameAndDecode(packet);
    for (size_t available = 0; available < packet.size(); ++available) {
      const Frame frame = PeekFrame(std::span(packet).first(available), kNoLimit);
      if (frame.status == FrameStatus::kInvalid) {
        // Early rejection is only allowed with the answer the whole packet gets.
        EXPECT_EQ(whole.status, FrameStatus::kInvalid);
        EXPECT_EQ(frame.violation, whole.violation) << "prefix " << available;
      } else {
        EXPECT_EQ(frame.status, FrameStatus::kNeedMore) << "prefix " << available;
      }
    }
  }
}

TEST(FrameSplit, SplitAtEveryByteBoundaryDecodesIdentically) {
  for (const Bytes& packet : SamplePackets()) {
    const Outcome whole = FrameAndDecode(packet);
    for (size_t split = 0; split <= packet.size(); ++split) {
      // A connection buffers the first part, peeks, then appends the rest and peeks again.
      Bytes buffer(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(split));
      const Outcome first = FrameAndDecode(buffer);
      if (first.status == FrameStatus::kInvalid) {
        EXPECT_EQ(first.violation, whole.violation);
        continue;
      }
      if (split < packet.size()) {
        ASSERT_EQ(first.status, FrameStatus::kNeedMore);
      }
      buffer.insert(buffer.end(), packet.begin() + static_cast<std::ptrdiff_t>(split),
                    packet.end());
      const Outcome second = FrameAndDecode(buffer);
      EXPECT_EQ(second.status, whole.status) << "split " << split;
      EXPECT_EQ(second.violation, whole.violation) << "split " << split;
      EXPECT_EQ(second.packet, whole.packet) << "split " << split;
    }
  }
}

TEST(FrameSplit, BackToBackPacketsFramedOneAfterAnother) {
  Bytes stream;
  const std::vector<Bytes> packets = SamplePackets();
  size_t well_formed = 0;
  for (const Bytes& packet : packets) {
    if (FrameAndDecode(packet).violation == Violation::kNone) {
      stream.insert(stream.end(), packet.begin(), packet.end());
      ++well_formed;
    }
  }
  std::span<const uint8_t> rest(stream);
  size_t decoded = 0;
  while (!rest.empty()) {
    const Outcome outcome = FrameAndDecode(rest);
    ASSERT_EQ(outcome.status, FrameStatus::kComplete);
    ASSERT_EQ(outcome.violation, Violation::kNone);
    const Frame frame = PeekFrame(rest, kNoLimit);
    rest = rest.subspan(frame.header.total_length());
    ++decoded;
  }
  EXPECT_EQ(decoded, well_formed);
}

}  // namespace
}  // namespace ringmq::mqtt
