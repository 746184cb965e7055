// A session's state between nodes (cluster/session_state.h): round trip, the byte bound, and a
// parser that refuses every malformed input before calling anything.
#include "cluster/session_state.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace ringmq::cluster {
namespace {

struct Parsed {
  uint64_t key = 0;
  std::string client_id;
  // "S filter options identifier" / "M topic payload qos retain [packet id stage]" / "I id"
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
  // The last bytes: the last message's QoS, RETAIN, packet id (2), stage, then the inbound
  // count (2).
  std::string retain = full;
  retain[retain.size() - 6] = 2;
  EXPECT_FALSE(Parse(retain, parsed));
  std::string qos = full;
  qos[qos.size() - 7] = 3;
  EXPECT_FALSE(Parse(qos, parsed));
}

TEST(SessionStateTest, AHeaderTheCallerRefusesStopsTheWalk) {
  Parsed parsed;
  EXPECT_TRUE(Parse(Sample(), parsed, /*accept=*/false));
  EXPECT_EQ(parsed.client_id, "dev\n1");
  EXPECT_TRUE(parsed.items.empty());
}

}  // namespace
}  // namespace ringmq::cluster
