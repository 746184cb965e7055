// Real packets captured from common clients (mosquitto_pub/mosquitto_sub 2.0 and paho-mqtt 1.6
// for Python) against a socket listener that logged every frame it received.
#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

#include "codec_test_util.h"
#include "mqtt/codec.h"

namespace ringmq::mqtt {
namespace {

using test::Bytes;

// mosquitto_pub 2.0 -V mqttv311 -i mosq-pub
constexpr uint8_t kMosquittoPubConnect311[] = {0x10, 0x14, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54,
                                               0x04, 0x02, 0x00, 0x3c, 0x00, 0x08, 0x6d, 0x6f,
                                               0x73, 0x71, 0x2d, 0x70, 0x75, 0x62};
// mosquitto_pub -t sensors/temp -m 21.5
constexpr uint8_t kMosquittoPubPublishQos0[] = {0x30, 0x12, 0x00, 0x0c, 0x73, 0x65, 0x6e,
                                                0x73, 0x6f, 0x72, 0x73, 0x2f, 0x74, 0x65,
                                                0x6d, 0x70, 0x32, 0x31, 0x2e, 0x35};
// mosquitto_pub -V mqttv31 -i mosq-pub31
constexpr uint8_t kMosquittoPubConnect31[] = {0x10, 0x18, 0x00, 0x06, 0x4d, 0x51, 0x49, 0x73, 0x64,
                                              0x70, 0x03, 0x02, 0x00, 0x3c, 0x00, 0x0a, 0x6d, 0x6f,
                                              0x73, 0x71, 0x2d, 0x70, 0x75, 0x62, 0x33, 0x31};
// mosquitto_pub -u alice -P s3cret --will-topic clients/mosq-full/status --will-payload offline
// --will-qos 1 --will-retain -k 30
constexpr uint8_t kMosquittoPubConnectWillCredentials[] = {
    0x10, 0x47, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0xee, 0x00, 0x1e, 0x00, 0x09, 0x6d,
    0x6f, 0x73, 0x71, 0x2d, 0x66, 0x75, 0x6c, 0x6c, 0x00, 0x18, 0x63, 0x6c, 0x69, 0x65, 0x6e,
    0x74, 0x73, 0x2f, 0x6d, 0x6f, 0x73, 0x71, 0x2d, 0x66, 0x75, 0x6c, 0x6c, 0x2f, 0x73, 0x74,
    0x61, 0x74, 0x75, 0x73, 0x00, 0x07, 0x6f, 0x66, 0x66, 0x6c, 0x69, 0x6e, 0x65, 0x00, 0x05,
    0x61, 0x6c, 0x69, 0x63, 0x65, 0x00, 0x06, 0x73, 0x33, 0x63, 0x72, 0x65, 0x74};
// mosquitto_pub -q 1 -r -t home/livingroom/light -m on
constexpr uint8_t kMosquittoPubPublishQos1Retain[] = {
    0x33, 0x1b, 0x00, 0x15, 0x68, 0x6f, 0x6d, 0x65, 0x2f, 0x6c, 0x69, 0x76, 0x69, 0x6e, 0x67,
    0x72, 0x6f, 0x6f, 0x6d, 0x2f, 0x6c, 0x69, 0x67, 0x68, 0x74, 0x00, 0x01, 0x6f, 0x6e};
// mosquitto_pub -q 2 -t a/b/c -m "hello qos2"
constexpr uint8_t kMosquittoPubPublishQos2[] = {0x34, 0x13, 0x00, 0x05, 0x61, 0x2f, 0x62,
                                                0x2f, 0x63, 0x00, 0x01, 0x68, 0x65, 0x6c,
                                                0x6c, 0x6f, 0x20, 0x71, 0x6f, 0x73, 0x32};
// mosquitto_pub QoS 2 flow
constexpr uint8_t kMosquittoPubPubrel[] = {0x62, 0x02, 0x00, 0x01};
// mosquitto_pub -V mqttv31 -u bob -P pw
constexpr uint8_t kMosquittoPubConnect31Credentials[] = {
    0x10, 0x23, 0x00, 0x06, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70, 0x03, 0xc2, 0x00,
    0x3c, 0x00, 0x0c, 0x6d, 0x6f, 0x73, 0x71, 0x33, 0x31, 0x2d, 0x63, 0x72, 0x65,
    0x64, 0x73, 0x00, 0x03, 0x62, 0x6f, 0x62, 0x00, 0x02, 0x70, 0x77};
// mosquitto_sub -t 'sensors/+/temp' -t 'home/#' -q 1
constexpr uint8_t kMosquittoSubSubscribe[] = {
    0x82, 0x1c, 0x00, 0x01, 0x00, 0x0e, 0x73, 0x65, 0x6e, 0x73, 0x6f, 0x72, 0x73, 0x2f, 0x2b,
    0x2f, 0x74, 0x65, 0x6d, 0x70, 0x01, 0x00, 0x06, 0x68, 0x6f, 0x6d, 0x65, 0x2f, 0x23, 0x01};
// mosquitto_pub -c (clean session 0)
constexpr uint8_t kMosquittoPubConnectPersistent[] = {
    0x10, 0x18, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x3c, 0x00,
    0x0c, 0x6d, 0x6f, 0x73, 0x71, 0x2d, 0x70, 0x65, 0x72, 0x73, 0x69, 0x73, 0x74};
// mosquitto_pub -q 1 -r -n -t retained/clear
constexpr uint8_t kMosquittoPubPublishRetainedEmpty[] = {0x33, 0x12, 0x00, 0x0e, 0x72, 0x65, 0x74,
                                                         0x61, 0x69, 0x6e, 0x65, 0x64, 0x2f, 0x63,
                                                         0x6c, 0x65, 0x61, 0x72, 0x00, 0x01};
// mosquitto_sub -V mqttv31 -t '#' -q 2
constexpr uint8_t kMosquittoSubSubscribe31[] = {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x23, 0x02};
// mosquitto_sub -t 'devices/+/status'
constexpr uint8_t kMosquittoSubSubscribeQos0[] = {0x82, 0x15, 0x00, 0x01, 0x00, 0x10, 0x64, 0x65,
                                                  0x76, 0x69, 0x63, 0x65, 0x73, 0x2f, 0x2b, 0x2f,
                                                  0x73, 0x74, 0x61, 0x74, 0x75, 0x73, 0x00};
// mosquitto_sub -U 'devices/old/#'
constexpr uint8_t kMosquittoSubUnsubscribe[] = {0xa2, 0x11, 0x00, 0x02, 0x00, 0x0d, 0x64,
                                                0x65, 0x76, 0x69, 0x63, 0x65, 0x73, 0x2f,
                                                0x6f, 0x6c, 0x64, 0x2f, 0x23};
// mosquitto_sub -k 5
constexpr uint8_t kMosquittoSubPingreq[] = {0xc0, 0x00};
// mosquitto_sub
constexpr uint8_t kMosquittoSubDisconnect[] = {0xe0, 0x00};
// paho-mqtt 1.6 MQTTv311, will last/will QoS 2 retained, user1/pass1
constexpr uint8_t kPahoConnect311WillCredentials[] = {
    0x10, 0x33, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0xf6, 0x00, 0x3c, 0x00, 0x08,
    0x70, 0x61, 0x68, 0x6f, 0x2d, 0x33, 0x31, 0x31, 0x00, 0x09, 0x6c, 0x61, 0x73, 0x74,
    0x2f, 0x77, 0x69, 0x6c, 0x6c, 0x00, 0x04, 0x67, 0x6f, 0x6e, 0x65, 0x00, 0x05, 0x75,
    0x73, 0x65, 0x72, 0x31, 0x00, 0x05, 0x70, 0x61, 0x73, 0x73, 0x31};
// paho-mqtt 1.6 publish 64 B QoS 0
constexpr uint8_t kPahoPublishQos0[] = {
    0x30, 0x4b, 0x00, 0x09, 0x70, 0x61, 0x68, 0x6f, 0x2f, 0x71, 0x6f, 0x73, 0x30, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78};
// paho-mqtt 1.6 publish binary QoS 1
constexpr uint8_t kPahoPublishQos1Binary[] = {0x32, 0x16, 0x00, 0x09, 0x70, 0x61, 0x68, 0x6f,
                                              0x2f, 0x71, 0x6f, 0x73, 0x31, 0x00, 0x02, 0x00,
                                              0x01, 0x02, 0x62, 0x69, 0x6e, 0x61, 0x72, 0x79};
// paho-mqtt 1.6 publish UTF-8 QoS 2 retained
constexpr uint8_t kPahoPublishQos2Utf8Retained[] = {
    0x35, 0x1b, 0x00, 0x09, 0x70, 0x61, 0x68, 0x6f, 0x2f, 0x71, 0x6f, 0x73, 0x32, 0x00, 0x03,
    0x75, 0x74, 0x66, 0x38, 0x20, 0xc3, 0xa9, 0x20, 0xc3, 0xbc, 0x20, 0xe4, 0xb8, 0xad};
// paho-mqtt 1.6 MQTTv31, u31/p31
constexpr uint8_t kPahoConnect31Credentials[] = {
    0x10, 0x1f, 0x00, 0x06, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70, 0x03,
    0xc2, 0x00, 0x3c, 0x00, 0x07, 0x70, 0x61, 0x68, 0x6f, 0x2d, 0x33,
    0x31, 0x00, 0x03, 0x75, 0x33, 0x31, 0x00, 0x03, 0x70, 0x33, 0x31};
// paho-mqtt 1.6 subscribe a/+/c:0 b/#:1 +:2
constexpr uint8_t kPahoSubscribe[] = {0x82, 0x14, 0x00, 0x01, 0x00, 0x05, 0x61, 0x2f,
                                      0x2b, 0x2f, 0x63, 0x00, 0x00, 0x03, 0x62, 0x2f,
                                      0x23, 0x01, 0x00, 0x01, 0x2b, 0x02};
// paho-mqtt 1.6 unsubscribe a/+/c b/#
constexpr uint8_t kPahoUnsubscribe[] = {0xa2, 0x0e, 0x00, 0x02, 0x00, 0x05, 0x61, 0x2f,
                                        0x2b, 0x2f, 0x63, 0x00, 0x03, 0x62, 0x2f, 0x23};
// paho-mqtt 1.6 MQTTv311, client id ""
constexpr uint8_t kPahoConnectEmptyClientId[] = {0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54,
                                                 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00};

template <typename T>
T DecodeAs(std::span<const uint8_t> bytes, ProtocolLevel level = ProtocolLevel::kMqtt311) {
  const Result<Packet> result = test::DecodeWhole(bytes, level);
  EXPECT_TRUE(result.ok()) << NameOf(result.violation());
  if (!result.ok() || !std::holds_alternative<T>(result.value())) {
    ADD_FAILURE() << "wrong packet type";
    return T{};
  }
  // Whatever a client sent, our encoder writes back byte for byte (all use minimal lengths).
  EXPECT_EQ(test::Encoded(result.value()), Bytes(bytes.begin(), bytes.end()));
  return std::get<T>(result.value());
}

TEST(CapturedDecode, MosquittoPubConnect311) {
  const Connect connect = DecodeAs<Connect>(kMosquittoPubConnect311);
  EXPECT_EQ(connect.protocol_name, "MQTT");
  EXPECT_EQ(connect.protocol_level, 4);
  EXPECT_TRUE(connect.level_supported);
  EXPECT_TRUE(connect.clean_session);
  EXPECT_EQ(connect.keepalive_s, 60);
  EXPECT_EQ(connect.client_id, "mosq-pub");
  EXPECT_FALSE(connect.will.has_value());
  EXPECT_FALSE(connect.user_name.has_value());
}

TEST(CapturedDecode, MosquittoPubConnect31) {
  const Connect connect = DecodeAs<Connect>(kMosquittoPubConnect31);
  EXPECT_EQ(connect.protocol_name, "MQIsdp");
  EXPECT_EQ(connect.protocol_level, 3);
  EXPECT_TRUE(connect.level_supported);
  EXPECT_EQ(connect.client_id, "mosq-pub31");
}

TEST(CapturedDecode, MosquittoPubConnectWillCredentials) {
  const Connect connect = DecodeAs<Connect>(kMosquittoPubConnectWillCredentials);
  EXPECT_EQ(connect.keepalive_s, 30);
  EXPECT_EQ(connect.client_id, "mosq-full");
  ASSERT_TRUE(connect.will.has_value());
  EXPECT_EQ(connect.will->topic, "clients/mosq-full/status");
  EXPECT_EQ(connect.will->payload, "offline");
  EXPECT_EQ(connect.will->qos, QoS::k1);
  EXPECT_TRUE(connect.will->retain);
  EXPECT_EQ(connect.user_name, "alice");
  EXPECT_EQ(connect.password, "s3cret");
}

TEST(CapturedDecode, MosquittoPubConnect31Credentials) {
  const Connect connect = DecodeAs<Connect>(kMosquittoPubConnect31Credentials);
  EXPECT_EQ(connect.protocol_name, "MQIsdp");
  EXPECT_EQ(connect.user_name, "bob");
  EXPECT_EQ(connect.password, "pw");
}

TEST(CapturedDecode, MosquittoPubConnectPersistent) {
  const Connect connect = DecodeAs<Connect>(kMosquittoPubConnectPersistent);
  EXPECT_FALSE(connect.clean_session);
  EXPECT_EQ(connect.client_id, "mosq-persist");
}

TEST(CapturedDecode, PahoConnect311WillCredentials) {
  const Connect connect = DecodeAs<Connect>(kPahoConnect311WillCredentials);
  EXPECT_EQ(connect.client_id, "paho-311");
  ASSERT_TRUE(connect.will.has_value());
  EXPECT_EQ(connect.will->topic, "last/will");
  EXPECT_EQ(connect.will->payload, "gone");
  EXPECT_EQ(connect.will->qos, QoS::k2);
  EXPECT_TRUE(connect.will->retain);
  EXPECT_EQ(connect.user_name, "user1");
  EXPECT_EQ(connect.password, "pass1");
}

TEST(CapturedDecode, PahoConnect31Credentials) {
  const Connect connect = DecodeAs<Connect>(kPahoConnect31Credentials);
  EXPECT_EQ(connect.protocol_name, "MQIsdp");
  EXPECT_EQ(connect.client_id, "paho-31");
  EXPECT_EQ(connect.user_name, "u31");
  EXPECT_EQ(connect.password, "p31");
}

TEST(CapturedDecode, PahoConnectEmptyClientId) {
  const Connect connect = DecodeAs<Connect>(kPahoConnectEmptyClientId);
  EXPECT_EQ(connect.client_id, "");
  EXPECT_TRUE(connect.clean_session);
}

TEST(CapturedDecode, Publishes) {
  const Publish q0 = DecodeAs<Publish>(kMosquittoPubPublishQos0);
  EXPECT_EQ(q0, (Publish{"sensors/temp", "21.5", QoS::k0, false, false, 0}));
  const Publish q1 = DecodeAs<Publish>(kMosquittoPubPublishQos1Retain);
  EXPECT_EQ(q1, (Publish{"home/livingroom/light", "on", QoS::k1, true, false, 1}));
  const Publish q2 = DecodeAs<Publish>(kMosquittoPubPublishQos2);
  EXPECT_EQ(q2, (Publish{"a/b/c", "hello qos2", QoS::k2, false, false, 1}));
  const Publish empty = DecodeAs<Publish>(kMosquittoPubPublishRetainedEmpty);
  EXPECT_EQ(empty, (Publish{"retained/clear", "", QoS::k1, true, false, 1}));
  const Publish paho0 = DecodeAs<Publish>(kPahoPublishQos0);
  EXPECT_EQ(paho0.topic, "paho/qos0");
  EXPECT_EQ(paho0.payload, std::string(64, 'x'));
  const Publish paho1 = DecodeAs<Publish>(kPahoPublishQos1Binary);
  EXPECT_EQ(paho1.packet_id, 2);
  EXPECT_EQ(paho1.payload, std::string_view("\x00\x01\x02"
                                            "binary",
                                            9));
  const Publish paho2 = DecodeAs<Publish>(kPahoPublishQos2Utf8Retained);
  EXPECT_EQ(paho2.qos, QoS::k2);
  EXPECT_TRUE(paho2.retain);
  EXPECT_EQ(paho2.payload, "utf8 \xC3\xA9 \xC3\xBC \xE4\xB8\xAD");
}

TEST(CapturedDecode, SubscribesAndUnsubscribes) {
  const Subscribe mosquitto = DecodeAs<Subscribe>(kMosquittoSubSubscribe);
  EXPECT_EQ(std::vector<TopicRequest>(mosquitto.topics.begin(), mosquitto.topics.end()),
            (std::vector<TopicRequest>{{"sensors/+/temp", QoS::k1}, {"home/#", QoS::k1}}));
  const Subscribe mosquitto31 = DecodeAs<Subscribe>(kMosquittoSubSubscribe31);
  EXPECT_EQ(std::vector<TopicRequest>(mosquitto31.topics.begin(), mosquitto31.topics.end()),
            (std::vector<TopicRequest>{{"#", QoS::k2}}));
  const Subscribe paho = DecodeAs<Subscribe>(kPahoSubscribe);
  EXPECT_EQ(std::vector<TopicRequest>(paho.topics.begin(), paho.topics.end()),
            (std::vector<TopicRequest>{{"a/+/c", QoS::k0}, {"b/#", QoS::k1}, {"+", QoS::k2}}));
  EXPECT_EQ(DecodeAs<Subscribe>(kMosquittoSubSubscribeQos0).topics.size(), 1u);
  const Unsubscribe unsubscribe = DecodeAs<Unsubscribe>(kPahoUnsubscribe);
  EXPECT_EQ(unsubscribe.packet_id, 2);
  EXPECT_EQ(std::vector<TopicRequest>(unsubscribe.topics.begin(), unsubscribe.topics.end()),
            (std::vector<TopicRequest>{{"a/+/c", QoS::k0}, {"b/#", QoS::k0}}));
  EXPECT_EQ((*DecodeAs<Unsubscribe>(kMosquittoSubUnsubscribe).topics.begin()).filter,
            "devices/old/#");
}

TEST(CapturedDecode, ControlPackets) {
  EXPECT_EQ(DecodeAs<Pubrel>(kMosquittoPubPubrel).packet_id, 1);
  DecodeAs<Pingreq>(kMosquittoSubPingreq);
  DecodeAs<Disconnect>(kMosquittoSubDisconnect);
}

// A whole mosquitto_sub session as one stream, fed in every possible two-part split.
TEST(CapturedFrameSplit, MosquittoSubSessionFramesAtEverySplit) {
  Bytes stream;
  for (const std::span<const uint8_t> packet :
       {std::span<const uint8_t>(kMosquittoSubSubscribeQos0),
        std::span<const uint8_t>(kMosquittoSubUnsubscribe),
        std::span<const uint8_t>(kMosquittoSubPingreq),
        std::span<const uint8_t>(kMosquittoSubDisconnect)}) {
    stream.insert(stream.end(), packet.begin(), packet.end());
  }
  for (size_t split = 0; split <= stream.size(); ++split) {
    std::vector<PacketType> types;
    Bytes buffer(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(split));
    size_t fed = split;
    while (true) {
      const Frame frame = PeekFrame(buffer, test::kNoLimit);
      ASSERT_NE(frame.status, FrameStatus::kInvalid);
      if (frame.status == FrameStatus::kNeedMore) {
        if (fed == stream.size()) {
          break;
        }
        buffer.insert(buffer.end(), stream.begin() + static_cast<std::ptrdiff_t>(fed),
                      stream.end());
        fed = stream.size();
        continue;
      }
      const Result<Packet> packet = Decode(
          frame.header,
          std::span(buffer).subspan(frame.header.header_length, frame.header.remaining_length));
      ASSERT_TRUE(packet.ok());
      types.push_back(TypeOf(packet.value()));
      buffer.erase(buffer.begin(),
                   buffer.begin() + static_cast<std::ptrdiff_t>(frame.header.total_length()));
    }
    EXPECT_TRUE(buffer.empty());
    EXPECT_EQ(types, (std::vector<PacketType>{PacketType::kSubscribe, PacketType::kUnsubscribe,
                                              PacketType::kPingreq, PacketType::kDisconnect}))
        << "split " << split;
  }
}

}  // namespace
}  // namespace ringmq::mqtt
