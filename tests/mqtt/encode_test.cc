// Encode: exact sizes, known bytes, and decode(encode(p)) == p over ranges of field sizes.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "codec_test_util.h"
#include "mqtt/codec.h"
#include "mqtt/topic.h"

namespace ringmq::mqtt {
namespace {

using test::Bytes;
using test::Encoded;

// Encodes, checks the size is exact and untouched beyond it, decodes, and compares.
void ExpectRoundTrip(const Packet& packet, ProtocolLevel level = ProtocolLevel::kMqtt311) {
  const size_t size = EncodedSize(packet);
  Bytes out(size + 8, 0xA5);
  ASSERT_EQ(Encode(packet, out), size);
  for (size_t i = size; i < out.size(); ++i) {
    ASSERT_EQ(out[i], 0xA5) << "Encode wrote past EncodedSize at " << i;
  }
  out.resize(size);
  const Result<Packet> decoded = test::DecodeWhole(out, level);
  ASSERT_TRUE(decoded.ok()) << NameOf(decoded.violation()) << " for " << NameOf(TypeOf(packet));
  EXPECT_EQ(decoded.value(), packet) << NameOf(TypeOf(packet));
  EXPECT_EQ(Encoded(decoded.value()), out);
}

// Minimal remaining-length bytes for each §2.2.3 boundary.
size_t HeaderLengthFor(size_t remaining_length) {
  return remaining_length < 128       ? 2
         : remaining_length < 16384   ? 3
         : remaining_length < 2097152 ? 4
                                      : 5;
}

// The delivery fast path writes exactly what Encode writes, across every flag combination and
// both sides of each remaining-length boundary (127/128, 16383/16384, 2097151/2097152).
TEST(EncodePublishParts, SameBytesAsEncode) {
  const std::string topic = "a/b/c";
  for (const size_t payload_size : {size_t{0}, size_t{1}, size_t{64}, size_t{118}, size_t{119},
                                    size_t{120}, size_t{121}, size_t{16'374}, size_t{16'375},
                                    size_t{2'097'142}, size_t{2'097'143}}) {
    const std::string payload(payload_size, 'p');
    std::vector<uint8_t> encoded_topic = {0, static_cast<uint8_t>(topic.size())};
    encoded_topic.insert(encoded_topic.end(), topic.begin(), topic.end());
    for (const QoS qos : {QoS::k0, QoS::k1, QoS::k2}) {
      for (const bool retain : {false, true}) {
        for (const bool dup : {false, true}) {
          const uint16_t packet_id = qos == QoS::k0 ? 0 : 0xBEEF;
          const Packet packet = Publish{.topic = topic,
                                        .payload = payload,
                                        .qos = qos,
                                        .retain = retain,
                                        .dup = dup,
                                        .packet_id = packet_id};
          const PublishParts parts{.encoded_topic = encoded_topic,
                                   .payload = std::span<const uint8_t>(
                                       reinterpret_cast<const uint8_t*>(payload.data()),
                                       payload.size()),
                                   .qos = qos,
                                   .retain = retain,
                                   .dup = dup,
                                   .packet_id = packet_id};
          SCOPED_TRACE(testing::Message() << "payload " << payload_size << " qos "
                                          << static_cast<int>(qos) << " retain " << retain
                                          << " dup " << dup);
          ASSERT_EQ(EncodedPublishPartsSize(parts), EncodedSize(packet));
          std::vector<uint8_t> fast(EncodedPublishPartsSize(parts));
          ASSERT_EQ(EncodePublishParts(parts, fast), fast.size());
          ASSERT_EQ(fast, Encoded(packet));
        }
      }
    }
  }
}

TEST(EncodeKnownBytes, FixedSizePackets) {
  EXPECT_EQ(Encoded(Connack{}), (Bytes{0x20, 0x02, 0x00, 0x00}));
  EXPECT_EQ(Encoded(Connack{true, ConnackCode::kAccepted}), (Bytes{0x20, 0x02, 0x01, 0x00}));
  EXPECT_EQ(Encoded(Connack{false, ConnackCode::kNotAuthorized}), (Bytes{0x20, 0x02, 0x00, 0x05}));
  EXPECT_EQ(Encoded(Puback{0x1234}), (Bytes{0x40, 0x02, 0x12, 0x34}));
  EXPECT_EQ(Encoded(Pubrec{1}), (Bytes{0x50, 0x02, 0x00, 0x01}));
  EXPECT_EQ(Encoded(Pubrel{2}), (Bytes{0x62, 0x02, 0x00, 0x02}));  // MQTT-3.6.1-1
  EXPECT_EQ(Encoded(Pubcomp{3}), (Bytes{0x70, 0x02, 0x00, 0x03}));
  EXPECT_EQ(Encoded(Unsuback{4}), (Bytes{0xB0, 0x02, 0x00, 0x04}));
  EXPECT_EQ(Encoded(Pingreq{}), (Bytes{0xC0, 0x00}));
  EXPECT_EQ(Encoded(Pingresp{}), (Bytes{0xD0, 0x00}));
  EXPECT_EQ(Encoded(Disconnect{}), (Bytes{0xE0, 0x00}));
}

TEST(EncodeKnownBytes, PublishFlags) {
  Publish publish{"t", "p", QoS::k1, true, true, 9};
  EXPECT_EQ(Encoded(publish), (Bytes{0x3B, 0x06, 0x00, 0x01, 't', 0x00, 0x09, 'p'}));
  publish = Publish{"t", "", QoS::k0, false, false, 0};
  EXPECT_EQ(Encoded(publish), (Bytes{0x30, 0x03, 0x00, 0x01, 't'}));
  publish = Publish{"t", "", QoS::k2, false, false, 0x0102};
  EXPECT_EQ(Encoded(publish), (Bytes{0x34, 0x05, 0x00, 0x01, 't', 0x01, 0x02}));
}

TEST(EncodeKnownBytes, SubscribeUsesFlags0010_MQTT_3_8_1_1) {
  const TopicRequest requests[] = {{"a", QoS::k1}};
  Bytes entries(TopicListEncodedSize(requests, true));
  ASSERT_EQ(EncodeTopicList(requests, true, entries), entries.size());
  EXPECT_EQ(entries, (Bytes{0x00, 0x01, 'a', 0x01}));
  EXPECT_EQ(Encoded(Subscribe{7, TopicList(entries, true)}),
            (Bytes{0x82, 0x06, 0x00, 0x07, 0x00, 0x01, 'a', 0x01}));
}

TEST(EncodeKnownBytes, UnsubscribeUsesFlags0010_MQTT_3_10_1_1) {
  const TopicRequest requests[] = {{"a", QoS::k0}};
  Bytes entries(TopicListEncodedSize(requests, false));
  ASSERT_EQ(EncodeTopicList(requests, false, entries), entries.size());
  EXPECT_EQ(Encoded(Unsubscribe{7, TopicList(entries, false)}),
            (Bytes{0xA2, 0x05, 0x00, 0x07, 0x00, 0x01, 'a'}));
}

TEST(EncodeKnownBytes, ConnectMatchesSpecExample) {
  // §3.1.2.10 example variable header: "MQTT", level 4, flags 0xCE, keepalive 10.
  Connect connect;
  connect.clean_session = true;
  connect.keepalive_s = 10;
  connect.client_id = "";
  connect.will = Will{"w", "m", QoS::k1, false};
  connect.user_name = "u";
  connect.password = "p";
  const Bytes bytes = Encoded(connect);
  ASSERT_GE(bytes.size(), 12u);
  EXPECT_EQ(Bytes(bytes.begin() + 2, bytes.begin() + 12),
            (Bytes{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xCE, 0x00, 0x0A}));
}

TEST(EncodeRoundTrip, FixedSizeAndEmptyPackets) {
  for (const uint16_t id : {1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF}) {
    ExpectRoundTrip(Puback{id});
    ExpectRoundTrip(Pubrec{id});
    ExpectRoundTrip(Pubrel{id});
    ExpectRoundTrip(Pubcomp{id});
    ExpectRoundTrip(Unsuback{id});
  }
  for (uint8_t code = 0; code <= 5; ++code) {
    ExpectRoundTrip(Connack{false, static_cast<ConnackCode>(code)});
    ExpectRoundTrip(Connack{false, static_cast<ConnackCode>(code)}, ProtocolLevel::kMqtt31);
  }
  ExpectRoundTrip(Connack{true, ConnackCode::kAccepted});
  ExpectRoundTrip(Pingreq{});
  ExpectRoundTrip(Pingresp{});
  ExpectRoundTrip(Disconnect{});
}

TEST(EncodeRoundTrip, ConnectOverFieldSizes) {
  for (const size_t size : {0, 1, 23, 127, 128, 300, 16383, 65535}) {
    const std::string id(size, 'i');
    const std::string text(size == 0 ? 1 : size, 't');  // topics must not be empty
    const std::string binary(size, '\0');
    for (const bool mqtt31 : {false, true}) {
      Connect connect;
      connect.protocol_name = mqtt31 ? "MQIsdp" : "MQTT";
      connect.protocol_level = mqtt31 ? 3 : 4;
      connect.clean_session = size % 2 == 0;
      connect.keepalive_s = static_cast<uint16_t>(size);
      connect.client_id = id;
      ExpectRoundTrip(connect);
      connect.user_name = id;
      ExpectRoundTrip(connect);
      connect.password = binary;
      ExpectRoundTrip(connect);
      for (const QoS qos : {QoS::k0, QoS::k1, QoS::k2}) {
        connect.will = Will{text, binary, qos, qos == QoS::k1};
        ExpectRoundTrip(connect);
      }
      connect.user_name.reset();
      connect.password.reset();
      ExpectRoundTrip(connect);
    }
  }
}

TEST(EncodeRoundTrip, ConnectWithUnsupportedLevelKeepsOnlyNameAndLevel) {
  Connect connect;
  connect.protocol_level = 5;
  connect.level_supported = false;
  ExpectRoundTrip(connect);
}

TEST(EncodeRoundTrip, PublishOverRemainingLengthBoundaries_MQTT_2_2_3) {
  for (const size_t remaining : {3, 126, 127, 128, 129, 16383, 16384, 2097151, 2097152}) {
    for (const QoS qos : {QoS::k0, QoS::k1, QoS::k2}) {
      const size_t fixed_part = 3 + (qos == QoS::k0 ? 0 : 2);  // "t" plus packet id
      if (remaining < fixed_part) {
        continue;
      }
      const std::string payload(remaining - fixed_part, 'p');
      const Publish publish{"t",
                            payload,
                            qos,
                            qos == QoS::k2,
                            qos == QoS::k1,
                            static_cast<uint16_t>(qos == QoS::k0 ? 0 : 42)};
      ASSERT_EQ(EncodedSize(publish), HeaderLengthFor(remaining) + remaining);
      ExpectRoundTrip(publish);
      const Bytes bytes = Encoded(publish);
      const Frame frame = PeekFrame(bytes, test::kNoLimit);
      EXPECT_EQ(frame.header.header_length, HeaderLengthFor(remaining));
      EXPECT_EQ(frame.header.remaining_length, remaining);
    }
  }
}

TEST(EncodeRoundTrip, PublishOverTopicSizes) {
  for (const size_t size : {1, 2, 64, 127, 128, 1000, 65535}) {
    std::string topic(size, 'a');
    for (size_t i = 1, levels = 1; i < size && levels < kMaxTopicLevels; i += 7, ++levels) {
      topic[i] = '/';
    }
    ExpectRoundTrip(Publish{topic, "x", QoS::k1, false, false, 1});
    ExpectRoundTrip(Publish{topic, "", QoS::k0, true, false, 0});
  }
}

Bytes TopicListBytes(const std::vector<TopicRequest>& requests, bool has_qos) {
  Bytes entries(TopicListEncodedSize(requests, has_qos));
  EXPECT_EQ(EncodeTopicList(requests, has_qos, entries), entries.size());
  return entries;
}

TEST(EncodeRoundTrip, SubscribeAndUnsubscribeOverListSizes) {
  for (const size_t count : {1, 2, 10, 100, 1000, 5000}) {
    std::vector<std::string> filters;
    for (size_t i = 0; i < count; ++i) {
      filters.push_back(i % 3 == 0 ? "a/+/" + std::to_string(i) : i % 3 == 1 ? "#" : "x/#");
    }
    std::vector<TopicRequest> requests;
    for (size_t i = 0; i < count; ++i) {
      requests.push_back({filters[i], static_cast<QoS>(i % 3)});
    }
    const Bytes with_qos = TopicListBytes(requests, true);
    const Subscribe subscribe{static_cast<uint16_t>(count), TopicList(with_qos, true)};
    ExpectRoundTrip(subscribe);
    EXPECT_EQ(subscribe.topics.size(), count);
    EXPECT_EQ(std::vector<TopicRequest>(subscribe.topics.begin(), subscribe.topics.end()),
              requests);

    for (TopicRequest& request : requests) {
      request.qos = QoS::k0;
    }
    const Bytes without_qos = TopicListBytes(requests, false);
    const Unsubscribe unsubscribe{1, TopicList(without_qos, false)};
    ExpectRoundTrip(unsubscribe);
    EXPECT_EQ(std::vector<TopicRequest>(unsubscribe.topics.begin(), unsubscribe.topics.end()),
              requests);
  }
}

TEST(EncodeRoundTrip, SubackOverReturnCodeCounts) {
  for (const size_t count : {1, 2, 125, 126, 127, 16381, 16382, 20000}) {
    Bytes codes(count);
    for (size_t i = 0; i < count; ++i) {
      const uint8_t choices[] = {0, 1, 2, kSubackFailure};
      codes[i] = choices[i % 4];
    }
    ExpectRoundTrip(Suback{0xABCD, codes});
  }
}

TEST(EncodePublishHeader, HeaderThenPayloadEqualsWholePacket) {
  for (const size_t payload_size : {0, 1, 120, 127, 128, 16383, 16384, 2097152}) {
    for (const QoS qos : {QoS::k0, QoS::k1, QoS::k2}) {
      const std::string payload(payload_size, 'z');
      const Publish publish{"sensors/42/temp",
                            payload,
                            qos,
                            true,
                            qos != QoS::k0,
                            static_cast<uint16_t>(qos == QoS::k0 ? 0 : 7)};
      Bytes header(PublishHeaderMaxSize(publish.topic.size()));
      const size_t written = EncodePublishHeader(publish, header);
      ASSERT_LE(written, header.size());
      header.resize(written);
      header.insert(header.end(), payload.begin(), payload.end());
      EXPECT_EQ(header, Encoded(publish)) << payload_size;
    }
  }
}

TEST(EncodeTopicListSize, MatchesBytesWritten) {
  const std::vector<TopicRequest> requests = {{"", QoS::k0}, {"a", QoS::k1}, {"ab/c", QoS::k2}};
  EXPECT_EQ(TopicListEncodedSize(requests, true), 3u + 4u + 7u);
  EXPECT_EQ(TopicListEncodedSize(requests, false), 2u + 3u + 6u);
  EXPECT_EQ(TopicListEncodedSize({}, true), 0u);
}

TEST(EncodeDeathTest, OutputTooSmallAsserts) {
  Bytes out(3);
  EXPECT_DEATH(Encode(Connack{}, out), "assertion failed");
  const Publish publish{"topic", "payload", QoS::k1, false, false, 1};
  Bytes header(4);
  EXPECT_DEATH(EncodePublishHeader(publish, header), "assertion failed");
}

TEST(EncodeDeathTest, StringLongerThan65535Asserts) {
  const std::string topic(65536, 't');
  const Publish publish{topic, "", QoS::k0, false, false, 0};
  EXPECT_DEATH(EncodedSize(publish), "assertion failed");
}

}  // namespace
}  // namespace ringmq::mqtt
