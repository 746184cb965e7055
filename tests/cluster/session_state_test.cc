// A session's state between nodes (cluster/session_state.h): round trip, the byte bound, and a
// parser that refuses every malformed input before calling anything.
#include "cluster/session_state.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mqtt/packet_type.h"
#include "mqtt/properties.h"

namespace ringmq::cluster {
namespace {

struct Parsed {
  uint64_t key = 0;
  std::string client_id;
  // "S filter options identifier" / "M topic payload qos retain [packet id stage]
  // [E left_ms] [P block bytes]" / "I id"
  std::vector<std::string> items;
};

bool Parse(std::string_view bytes, Parsed& parsed, bool accept = true) {
  return ParseSessionState(
      bytes,
      [&](uint64_t key, std::string_view client_id) {
        parsed.key = key;
        parsed.client_id = std::string(client_id);
        return accept;
      },
      [&](const StateSubscription& s) {
        parsed.items.push_back("S " + std::string(s.filter) + " " + std::to_string(s.options) +
                               " " + std::to_string(s.identifier));
      },
      [&](const StateMessage& m) {
        std::string item = "M " + std::string(m.topic) + " " + std::string(m.payload) + " " +
                           std::to_string(m.qos) + " " + std::to_string(m.retain);
        if (m.stage != StateStage::kQueued) {
          item += " " + std::to_string(m.packet_id) + " " +
                  std::to_string(static_cast<int>(m.stage));
        }
        if (m.expires) item += " E" + std::to_string(m.expiry_left_ms);
        if (!m.properties.empty()) item += " P" + std::string(m.properties);
        parsed.items.push_back(item);
      },
      [&](uint16_t packet_id) { parsed.items.push_back("I " + std::to_string(packet_id)); });
}

std::string Sample() {
  std::string out;
  SessionStateWriter writer;
  EXPECT_TRUE(writer.Begin(out, 4096, 0x0102030405060708, "dev\n1"));
  EXPECT_TRUE(writer.AddSubscription({.filter = "a/#", .options = 1 | 0x04, .identifier = 7}));
  EXPECT_TRUE(writer.AddSubscription({.filter = "b", .options = 2}));
  EXPECT_TRUE(writer.AddMessage({.topic = "a/x", .payload = std::string("p\0q", 3), .qos = 1}));
  EXPECT_TRUE(writer.AddMessage({.topic = "b", .payload = "", .qos = 2, .retain = true}));
  writer.End();
  return out;
}

// MQTT-4.3.3, MQTT-4.4.0-1: in-flight deliveries keep their packet ids and stage, and the
// inbound QoS 2 ids travel too.
std::string InFlightSample() {
  std::string out;
  SessionStateWriter writer;
  EXPECT_TRUE(writer.Begin(out, 4096, 9, "q2"));
  EXPECT_TRUE(writer.AddMessage({.topic = "t",
                                 .payload = "sent",
                                 .qos = 2,
                                 .retain = false,
                                 .packet_id = 7,
                                 .stage = StateStage::kInFlight}));
  EXPECT_TRUE(writer.AddMessage({.topic = {}, .payload = {}, .qos = 2, .retain = false,
                                 .packet_id = 8, .stage = StateStage::kReleased}));
  EXPECT_TRUE(writer.AddMessage({.topic = "t", .payload = "next", .qos = 1}));
  EXPECT_TRUE(writer.AddInboundQos2(300));
  EXPECT_TRUE(writer.AddInboundQos2(65535));
  writer.End();
  return out;
}

TEST(SessionStateTest, RoundTrip) {
  Parsed parsed;
  ASSERT_TRUE(Parse(Sample(), parsed));
  EXPECT_EQ(parsed.key, 0x0102030405060708u);
  EXPECT_EQ(parsed.client_id, "dev\n1");
  EXPECT_EQ(parsed.items,
            (std::vector<std::string>{"S a/# 5 7", "S b 2 0",
                                      "M a/x " + std::string("p\0q", 3) + " 1 0", "M b  2 1"}));
}

TEST(SessionStateTest, InFlightStateRoundTrips) {
  Parsed parsed;
  ASSERT_TRUE(Parse(InFlightSample(), parsed));
  EXPECT_EQ(parsed.items, (std::vector<std::string>{"M t sent 2 0 7 1", "M   2 0 8 2",
                                                    "M t next 1 0", "I 300", "I 65535"}));
  const std::string full = InFlightSample();
  for (size_t size = 0; size < full.size(); ++size) {
    Parsed truncated;
    EXPECT_FALSE(Parse(std::string_view(full).substr(0, size), truncated)) << size;
  }
}

TEST(SessionStateTest, StagesThatDisagreeWithTheirFieldsAreRefused) {
  // Offsets: magic 3, key 8, id length 2 + 2, subscription count 2, message count 4, then
  // "t": length 2 + 1, payload length 4 + 4, QoS, RETAIN, packet id 2, stage.
  const std::string full = InFlightSample();
  const size_t packet_id_at = 3 + 8 + 2 + 2 + 2 + 4 + 2 + 1 + 4 + 4 + 1 + 1;
  const size_t stage_at = packet_id_at + 2;
  ASSERT_EQ(static_cast<uint8_t>(full[stage_at]), 1);
  Parsed parsed;
  for (const uint8_t stage : {uint8_t{0}, uint8_t{2}, uint8_t{3}}) {  // queued with an id, ...
    std::string changed = full;
    changed[stage_at] = static_cast<char>(stage);
    EXPECT_FALSE(Parse(changed, parsed)) << int{stage};
  }
  std::string no_id = full;
  no_id[packet_id_at] = 0;
  no_id[packet_id_at + 1] = 0;
  EXPECT_FALSE(Parse(no_id, parsed)) << "in flight without a packet id";
  std::string zero_inbound = full;
  zero_inbound[zero_inbound.size() - 1] = 0;
  zero_inbound[zero_inbound.size() - 2] = 0;
  EXPECT_FALSE(Parse(zero_inbound, parsed)) << "inbound packet id 0";
}

TEST(SessionStateTest, EmptyStateRoundTrips) {
  std::string out;
  SessionStateWriter writer;
  ASSERT_TRUE(writer.Begin(out, 64, 1, ""));
  writer.End();
  Parsed parsed;
  ASSERT_TRUE(Parse(out, parsed));
  EXPECT_TRUE(parsed.items.empty());
}

TEST(SessionStateTest, TheWriterNeverExceedsItsBoundAndCountsWhatItLeftOut) {
  const size_t full = Sample().size();
  std::string out;
  SessionStateWriter writer;
  // One byte short of the whole sample: the last message (11 + 1 bytes) does not fit.
  ASSERT_TRUE(writer.Begin(out, full - 1, 1, "dev\n1"));
  EXPECT_TRUE(writer.AddSubscription({.filter = "a/#", .options = 5, .identifier = 7}));
  EXPECT_TRUE(writer.AddSubscription({.filter = "b", .options = 2}));
  EXPECT_TRUE(writer.AddMessage({.topic = "a/x", .payload = std::string("p\0q", 3), .qos = 1}));
  EXPECT_FALSE(writer.AddMessage({.topic = "b", .payload = "", .qos = 2, .retain = true}));
  writer.End();
  EXPECT_LE(out.size(), full - 1);
  EXPECT_EQ(writer.left_out(), 1u);
  Parsed parsed;
  ASSERT_TRUE(Parse(out, parsed));
  EXPECT_EQ(parsed.items.size(), 3u);
  // Not even the header fits: nothing to send.
  EXPECT_FALSE(writer.Begin(out, 3 + 8 + 2 + 2 + 4 + 2 + 4, 1, "dev\n1"));
  EXPECT_TRUE(writer.Begin(out, 3 + 8 + 2 + 2 + 4 + 2 + 5, 1, "dev\n1"));
  writer.End();
  EXPECT_EQ(out.size(), 3u + 8 + 2 + 2 + 4 + 2 + 5);
  // An inbound id beyond the bound is left out and counted.
  ASSERT_TRUE(writer.Begin(out, 3 + 8 + 2 + 2 + 4 + 2 + 5 + 2, 1, "dev\n1"));
  EXPECT_TRUE(writer.AddInboundQos2(1));
  EXPECT_FALSE(writer.AddInboundQos2(2));
  writer.End();
  EXPECT_EQ(writer.left_out(), 1u);
}

TEST(SessionStateTest, EveryTruncationAndAnyTrailingByteIsRefusedWithoutCallbacks) {
  const std::string full = Sample();
  for (size_t size = 0; size < full.size(); ++size) {
    Parsed parsed;
    EXPECT_FALSE(Parse(std::string_view(full).substr(0, size), parsed)) << size;
    EXPECT_TRUE(parsed.client_id.empty() && parsed.items.empty()) << "nothing before the check";
  }
  Parsed parsed;
  EXPECT_FALSE(Parse(full + "x", parsed));
}

TEST(SessionStateTest, BadValuesAreRefused) {
  const std::string full = Sample();
  // Offsets: magic 3, key 8, id length 2 + 5, count 2, then "a/#": length 2 + 3, options.
  const size_t options_at = 3 + 8 + 2 + 5 + 2 + 2 + 3;
  ASSERT_EQ(static_cast<uint8_t>(full[options_at]), 5);
  for (const uint8_t bad : {uint8_t{3}, uint8_t{0x20}}) {  // QoS 3; Retain Handling bits
    std::string changed = full;
    changed[options_at] = static_cast<char>(bad);
    Parsed parsed;
    EXPECT_FALSE(Parse(changed, parsed)) << int{bad};
  }
  std::string wrong_magic = full;
  wrong_magic[2] = '1';  // the format before in-flight state: refused, not misread
  Parsed parsed;
  EXPECT_FALSE(Parse(wrong_magic, parsed));
  // The last bytes: the last message's QoS, flags, packet id (2), stage, property length (4,
  // 0), then the inbound count (2).
  std::string flags = full;
  ASSERT_EQ(flags[flags.size() - 10], 1);  // RETAIN
  flags[flags.size() - 10] = 4;            // no such flag
  EXPECT_FALSE(Parse(flags, parsed));
  std::string qos = full;
  qos[qos.size() - 11] = 3;
  EXPECT_FALSE(Parse(qos, parsed));
}

TEST(SessionStateTest, AHeaderTheCallerRefusesStopsTheWalk) {
  Parsed parsed;
  EXPECT_TRUE(Parse(Sample(), parsed, /*accept=*/false));
  EXPECT_EQ(parsed.client_id, "dev\n1");
  EXPECT_TRUE(parsed.items.empty());
}

// ---- MQTT 5.0 message properties (moveprops lane) ----

using mqtt::PropertyId;

// A property block built with the codec's own encoders, as a string the state views.
class MovedProperties {
 public:
  MovedProperties& Integer(PropertyId id, uint32_t value) {
    return Append(mqtt::EncodeIntegerProperty(id, value, scratch_));
  }
  MovedProperties& String(PropertyId id, std::string_view value) {
    return Append(mqtt::EncodeStringProperty(id, value, scratch_));
  }
  MovedProperties& User(std::string_view name, std::string_view value) {
    return Append(mqtt::EncodeUserProperty(name, value, scratch_));
  }
  MovedProperties& Raw(std::string_view bytes) {
    block_.append(bytes);
    return *this;
  }
  const std::string& block() const { return block_; }

 private:
  MovedProperties& Append(size_t size) {
    block_.append(reinterpret_cast<const char*>(scratch_.data()), size);
    return *this;
  }
  std::vector<uint8_t> scratch_ = std::vector<uint8_t>(1024);
  std::string block_;
};

// Every property a server forwards (5.0:3.3.2.3): Payload Format Indicator, Message Expiry
// Interval, Content Type, Response Topic, Correlation Data (binary), User Properties with a
// repeated name (MQTT-3.3.2-17, -18: order kept).
std::string EveryForwardedProperty() {
  return MovedProperties()
      .Integer(PropertyId::kPayloadFormatIndicator, 1)
      .Integer(PropertyId::kMessageExpiryInterval, 60)
      .String(PropertyId::kContentType, "text/plain")
      .String(PropertyId::kResponseTopic, "reply/to")
      .String(PropertyId::kCorrelationData, std::string("\x00\xff\r\n", 4))
      .User("k", "2")
      .User("other", "x")
      .User("k", "1")
      .block();
}

std::string PropertiesSample(char version = kSessionStateVersion) {
  static const std::string block = EveryForwardedProperty();
  std::string out;
  SessionStateWriter writer;
  EXPECT_TRUE(writer.Begin(out, 4096, 5, "c5", version));
  EXPECT_TRUE(writer.AddSubscription({.filter = "t/#", .options = 1}));
  if (version == kSessionStateVersion) {
    EXPECT_TRUE(writer.AddMessage({.topic = "t/1",
                                   .payload = "in flight",
                                   .qos = 1,
                                   .packet_id = 3,
                                   .stage = StateStage::kInFlight,
                                   .properties = block,
                                   .expires = true,
                                   .expiry_left_ms = 59'250}));
    EXPECT_TRUE(
        writer.AddMessage({.topic = "t/2", .payload = "queued", .qos = 1, .properties = block}));
    EXPECT_TRUE(writer.AddMessage({.topic = "t/3",
                                   .payload = "expired",
                                   .qos = 1,
                                   .packet_id = 4,
                                   .stage = StateStage::kInFlight,
                                   .expires = true,
                                   .expiry_left_ms = 0}));
  }
  EXPECT_TRUE(writer.AddMessage({.topic = "t/4", .payload = "3.1.1", .qos = 0, .retain = true}));
  EXPECT_TRUE(writer.AddInboundQos2(9));
  writer.End();
  return out;
}

TEST(SessionStateTest, EveryForwardedPropertyAndTheExpiryLeftRoundTripInOrder) {
  const std::string block = EveryForwardedProperty();
  const auto bytes =
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(block.data()), block.size());
  ASSERT_EQ(mqtt::ValidateProperties(bytes, mqtt::PacketBit(mqtt::PacketType::kPublish)),
            mqtt::Violation::kNone);
  const std::string state = PropertiesSample();
  EXPECT_EQ(state.substr(0, 3), "RS3");
  Parsed parsed;
  ASSERT_TRUE(Parse(state, parsed));
  EXPECT_EQ(parsed.items,
            (std::vector<std::string>{"S t/# 1 0", "M t/1 in flight 1 0 3 1 E59250 P" + block,
                                      "M t/2 queued 1 0 P" + block, "M t/3 expired 1 0 4 1 E0",
                                      "M t/4 3.1.1 0 1", "I 9"}));
  // The block is the publisher's byte for byte: its User Properties in their order.
  std::vector<std::string> users;
  for (const mqtt::Property property : mqtt::Properties(bytes)) {
    if (property.id == PropertyId::kUserProperty) {
      users.push_back(std::string(property.text) + "=" + std::string(property.pair_value));
    }
  }
  EXPECT_EQ(users, (std::vector<std::string>{"k=2", "other=x", "k=1"}));
}

TEST(SessionStateTest, EveryTruncationOfAStateWithPropertiesIsRefusedWithoutCallbacks) {
  const std::string full = PropertiesSample();
  for (size_t size = 0; size < full.size(); ++size) {
    Parsed parsed;
    EXPECT_FALSE(Parse(std::string_view(full).substr(0, size), parsed)) << size;
    EXPECT_TRUE(parsed.client_id.empty() && parsed.items.empty()) << size;
  }
  Parsed parsed;
  EXPECT_FALSE(Parse(full + '\0', parsed));
}

// A state whose one queued message carries `block` (the writer does not validate it).
std::string StateWithBlock(std::string_view block) {
  std::string out;
  SessionStateWriter writer;
  EXPECT_TRUE(writer.Begin(out, 4096, 1, "c"));
  EXPECT_TRUE(writer.AddMessage({.topic = "t", .payload = "p", .qos = 1, .properties = block}));
  writer.End();
  return out;
}

TEST(SessionStateTest, BadPropertyFieldsRefuseTheWholeState) {
  Parsed parsed;
  ASSERT_TRUE(Parse(StateWithBlock(EveryForwardedProperty()), parsed));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"unknown identifier (Malformed Packet)", std::string("\x7f\x00", 2)},
      {"identifier 0", std::string("\x00\x01", 2)},
      {"a CONNECT property (Session Expiry Interval)",
       MovedProperties().Integer(PropertyId::kSessionExpiryInterval, 5).block()},
      {"Content Type twice", MovedProperties()
                                 .String(PropertyId::kContentType, "a")
                                 .String(PropertyId::kContentType, "b")
                                 .block()},
      {"wildcard in a Response Topic (MQTT-3.3.2-14)",
       MovedProperties().String(PropertyId::kResponseTopic, "a/+").block()},
      {"Payload Format Indicator 2", MovedProperties().Raw(std::string("\x01\x02", 2)).block()},
      {"invalid UTF-8 (MQTT-1.5.4-1)",
       MovedProperties().Raw(std::string("\x03\x00\x01\xff", 4)).block()},
      {"U+0000 (MQTT-1.5.4-2)", MovedProperties().Raw(std::string("\x03\x00\x01\x00", 4)).block()},
      {"a string longer than the block",
       MovedProperties().Raw(std::string("\x03\x00\x09z", 4)).block()},
      {"Will Delay Interval beside a Subscription Identifier (neither a will's nor a PUBLISH's)",
       MovedProperties()
           .Integer(PropertyId::kWillDelayInterval, 5)
           .Integer(PropertyId::kSubscriptionIdentifier, 1)
           .block()},
  };
  for (const auto& [why, block] : bad) {
    Parsed refused;
    EXPECT_FALSE(Parse(StateWithBlock(block), refused)) << why;
    EXPECT_TRUE(refused.items.empty()) << why;
  }
  // A will's block (5.0:3.1.3.2, Will Delay Interval dropped at delivery) moves as it is.
  const std::string will = MovedProperties()
                               .Integer(PropertyId::kWillDelayInterval, 30)
                               .String(PropertyId::kContentType, "w")
                               .block();
  Parsed accepted;
  ASSERT_TRUE(Parse(StateWithBlock(will), accepted));
  EXPECT_EQ(accepted.items, (std::vector<std::string>{"M t p 1 0 P" + will}));
}

TEST(SessionStateTest, FlagsAndStagesThatDisagreeWithTheMqtt5FieldsAreRefused) {
  // Offsets of the one message of StateWithBlock(""): magic 3, key 8, id 2 + 1, count 2,
  // count 4, "t" 2 + 1, "p" 4 + 1, QoS, then flags.
  const std::string full = StateWithBlock("");
  const size_t flags_at = 3 + 8 + 2 + 1 + 2 + 4 + 2 + 1 + 4 + 1 + 1;
  ASSERT_EQ(full[flags_at], 0);
  Parsed parsed;
  ASSERT_TRUE(Parse(full, parsed));
  std::string unknown_flag = full;
  unknown_flag[flags_at] = 4;
  EXPECT_FALSE(Parse(unknown_flag, parsed));
  // "It expires" without the 8 bytes of time left: the lengths no longer add up.
  std::string expires = full;
  expires[flags_at] = 2;
  EXPECT_FALSE(Parse(expires, parsed));
  // "RS2" has no expiry flag and no property block.
  std::string old = PropertiesSample(kSessionStateVersionNoProperties);
  ASSERT_EQ(old.substr(0, 3), "RS2");
  // The one message's flags: 2 (inbound) + 2 (inbound count) + stage + packet id (2) back.
  const size_t old_flags_at = old.size() - 2 - 2 - 1 - 2 - 1;
  ASSERT_EQ(old[old_flags_at], 1);
  old[old_flags_at] = 3;
  EXPECT_FALSE(Parse(old, parsed));
}

TEST(SessionStateTest, TheFormatBeforePropertiesIsStillMerged) {
  // A node not yet upgraded sends "RS2": its messages have no properties and no expiry.
  const std::string old = PropertiesSample(kSessionStateVersionNoProperties);
  EXPECT_EQ(old.substr(0, 3), "RS2");
  Parsed parsed;
  ASSERT_TRUE(Parse(old, parsed));
  EXPECT_EQ(parsed.items, (std::vector<std::string>{"S t/# 1 0", "M t/4 3.1.1 0 1", "I 9"}));
  // Same items in "RS3": 4 more bytes (an empty property block's length).
  std::string out;
  SessionStateWriter writer;
  ASSERT_TRUE(writer.Begin(out, 4096, 5, "c5"));
  ASSERT_TRUE(writer.AddSubscription({.filter = "t/#", .options = 1}));
  ASSERT_TRUE(writer.AddMessage({.topic = "t/4", .payload = "3.1.1", .qos = 0, .retain = true}));
  ASSERT_TRUE(writer.AddInboundQos2(9));
  writer.End();
  EXPECT_EQ(out.size(), old.size() + 4);
  Parsed again;
  ASSERT_TRUE(Parse(out, again));
  EXPECT_EQ(again.items, parsed.items);
}

TEST(SessionStateTest, PropertiesAndTheExpiryCountTowardsTheByteBound) {
  const std::string block = EveryForwardedProperty();
  const StateMessage message{.topic = "t",
                             .payload = "p",
                             .qos = 1,
                             .properties = block,
                             .expires = true,
                             .expiry_left_ms = 1000};
  std::string out;
  SessionStateWriter writer;
  ASSERT_TRUE(writer.Begin(out, SIZE_MAX, 1, "c"));
  ASSERT_TRUE(writer.AddMessage(message));
  writer.End();
  const size_t exact = out.size();
  // Header 21 + id 1; the message: fixed 11 + topic 1 + payload 1 + expiry 8 + length 4.
  EXPECT_EQ(exact, 3u + 8 + 2 + 1 + 2 + 4 + 2 + 11 + 1 + 1 + 8 + 4 + block.size());
  ASSERT_TRUE(writer.Begin(out, exact, 1, "c"));
  EXPECT_TRUE(writer.AddMessage(message));
  writer.End();
  EXPECT_EQ(out.size(), exact);
  EXPECT_EQ(writer.left_out(), 0u);
  // One byte less: the message is left out, counted, and the state still parses (empty).
  ASSERT_TRUE(writer.Begin(out, exact - 1, 1, "c"));
  EXPECT_FALSE(writer.AddMessage(message));
  writer.End();
  EXPECT_LE(out.size(), exact - 1);
  EXPECT_EQ(writer.left_out(), 1u);
  Parsed parsed;
  ASSERT_TRUE(Parse(out, parsed));
  EXPECT_TRUE(parsed.items.empty());
}

}  // namespace
}  // namespace ringmq::cluster
