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
  std::vector<std::string> items;  // "S filter options identifier" / "M topic payload qos retain"
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
        parsed.items.push_back("M " + std::string(m.topic) + " " + std::string(m.payload) + " " +
                               std::to_string(m.qos) + " " + std::to_string(m.retain));
      });
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

TEST(SessionStateTest, RoundTrip) {
  Parsed parsed;
  ASSERT_TRUE(Parse(Sample(), parsed));
  EXPECT_EQ(parsed.key, 0x0102030405060708u);
  EXPECT_EQ(parsed.client_id, "dev\n1");
  EXPECT_EQ(parsed.items,
            (std::vector<std::string>{"S a/# 5 7", "S b 2 0",
                                      "M a/x " + std::string("p\0q", 3) + " 1 0", "M b  2 1"}));
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
  // One byte short of the whole sample: the last message (7 + 1 bytes) does not fit.
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
  EXPECT_FALSE(writer.Begin(out, 3 + 8 + 2 + 2 + 4 + 4, 1, "dev\n1"));
  EXPECT_TRUE(writer.Begin(out, 3 + 8 + 2 + 2 + 4 + 5, 1, "dev\n1"));
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
  wrong_magic[2] = '2';
  Parsed parsed;
  EXPECT_FALSE(Parse(wrong_magic, parsed));
  // The last byte is the last message's RETAIN flag, the one before its QoS.
  std::string retain = full;
  retain.back() = 2;
  EXPECT_FALSE(Parse(retain, parsed));
  std::string qos = full;
  qos[qos.size() - 2] = 3;
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
