// QoS 0 batches between nodes (src/cluster/batch.h): the encoding, its decoder's refusals, and
// the order of records; MQTT 5.0 properties in records (batchprops lane).
#include "cluster/batch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/wire_bytes.h"
#include "mqtt/properties.h"

namespace ringmq::cluster {
namespace {

std::vector<BatchRecord> Decode(std::string_view batch, BatchHeader& header, bool& invalid) {
  std::vector<BatchRecord> out;
  std::string_view records;
  invalid = !ParseBatchHeader(batch, header, records);
  if (invalid) return out;
  BatchRecord record;
  for (;;) {
    switch (NextBatchRecord(records, record)) {
      case BatchNext::kEnd:
        return out;
      case BatchNext::kInvalid:
        invalid = true;
        return out;
      case BatchNext::kRecord:
        out.push_back(record);
        break;
    }
  }
}

TEST(ClusterBatchTest, RecordsRoundTripInOrder) {
  std::string batch;
  BeginBatch(batch, "node1");
  const std::string big(70'000, 'x');
  AppendBatchRecord(batch, {.topic = "a/b", .qos = 0, .payload = "one"});
  AppendBatchRecord(
      batch, {.topic = "a/b", .qos = 2, .retain = true, .properties = "\x01\x01", .payload = ""});
  AppendBatchRecord(batch, {.topic = "c", .qos = 1, .payload = big});
  AppendBatchRecord(batch, {.topic = "a/b", .qos = 0, .payload = "four"});
  SealBatch(batch, 0x0102030405060708);
  EXPECT_EQ(batch.size(), kBatchHeaderOverhead + 5 + 4 * kBatchRecordOverhead + 3 + 3 + 1 + 3 +
                              2 + 3 + big.size() + 4);
  BatchHeader header;
  bool invalid = false;
  const std::vector<BatchRecord> records = Decode(batch, header, invalid);
  EXPECT_FALSE(invalid);
  EXPECT_EQ(header.node, "node1");
  EXPECT_EQ(header.sent_at_us, 0x0102030405060708u);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records[0].topic, "a/b");
  EXPECT_EQ(records[0].payload, "one");
  EXPECT_EQ(records[0].qos, 0);
  EXPECT_FALSE(records[0].retain);
  EXPECT_EQ(records[1].qos, 2);
  EXPECT_TRUE(records[1].retain);
  EXPECT_EQ(records[1].properties, "\x01\x01");
  EXPECT_FALSE(records[1].expiry_left_ms);
  EXPECT_EQ(records[1].payload, "");
  EXPECT_EQ(records[2].topic, "c");
  EXPECT_EQ(records[2].payload, big);
  EXPECT_EQ(records[3].payload, "four") << "records come out in the order appended";
}

TEST(ClusterBatchTest, AnEmptyBatchHasNoRecords) {
  std::string batch = "leftover";
  BeginBatch(batch, "");
  EXPECT_EQ(batch.size(), kBatchHeaderOverhead) << "BeginBatch clears";
  BatchHeader header;
  bool invalid = true;
  EXPECT_TRUE(Decode(batch, header, invalid).empty());
  EXPECT_FALSE(invalid);
}

TEST(ClusterBatchTest, BadHeadersAreRefused) {
  BatchHeader header;
  std::string_view records;
  EXPECT_FALSE(ParseBatchHeader("", header, records));
  std::string batch;
  BeginBatch(batch, "node1");
  EXPECT_FALSE(ParseBatchHeader(std::string_view(batch).substr(0, batch.size() - 1), header,
                                records))
      << "node name cut";
  batch[0] = 2;
  EXPECT_FALSE(ParseBatchHeader(batch, header, records)) << "another version";
}

TEST(ClusterBatchTest, EveryTruncationIsInvalidNotARecord) {
  std::string batch;
  BeginBatch(batch, "n");
  AppendBatchRecord(batch,
                    {.topic = "t/1", .qos = 0, .properties = "\x01\x01", .payload = "payload"});
  AppendBatchRecord(batch, {.topic = "t/2", .qos = 0, .payload = "second"});
  const size_t header_size = kBatchHeaderOverhead + 1;
  const size_t first_end = header_size + kBatchRecordOverhead + 3 + 2 + 7;
  for (size_t cut = header_size; cut < batch.size(); ++cut) {
    BatchHeader header;
    bool invalid = false;
    const std::vector<BatchRecord> records =
        Decode(std::string_view(batch).substr(0, cut), header, invalid);
    if (cut == header_size || cut == first_end) {
      EXPECT_FALSE(invalid) << cut;  // a whole number of records
    } else {
      EXPECT_TRUE(invalid) << cut;
    }
    EXPECT_EQ(records.size(), cut >= first_end ? 1u : 0u) << cut;
  }
}

TEST(ClusterBatchTest, BadRecordsAreRefused) {
  const auto invalid = [](const BatchRecord& record, char flags_override) {
    std::string batch;
    BeginBatch(batch, "n");
    AppendBatchRecord(batch, record);
    if (flags_override != 0) batch[kBatchHeaderOverhead + 1] = flags_override;
    BatchHeader header;
    bool bad = false;
    Decode(batch, header, bad);
    return bad;
  };
  EXPECT_FALSE(invalid({.topic = "ok"}, 0));
  EXPECT_TRUE(invalid({.topic = "ok"}, 0x03)) << "QoS 3";
  EXPECT_TRUE(invalid({.topic = "ok"}, 0x08)) << "reserved flag bit";
  EXPECT_TRUE(invalid({.topic = ""}, 0)) << "MQTT-4.7.3-1: empty topic";
  EXPECT_TRUE(invalid({.topic = "a/+"}, 0)) << "MQTT-3.3.2-2: wildcard in a topic name";
  EXPECT_TRUE(invalid({.topic = "a/#"}, 0));
  EXPECT_TRUE(invalid({.topic = "$SYS/x"}, 0)) << "MQTT-4.7.2-1: '$' stays per broker";
  EXPECT_TRUE(invalid({.topic = std::string_view("a\0b", 3)}, 0)) << "MQTT-1.5.3-2: U+0000";
  EXPECT_TRUE(invalid({.topic = "\xC0\xAF"}, 0)) << "MQTT-1.5.3-1: overlong UTF-8";
}

TEST(ClusterBatchTest, LengthsNearTheirLimits) {
  std::string batch;
  BeginBatch(batch, std::string(kBatchNodeMax, 'n'));
  const std::string topic(UINT16_MAX, 't');
  AppendBatchRecord(batch, {.topic = topic, .payload = "p"});
  BatchHeader header;
  bool invalid = false;
  const std::vector<BatchRecord> records = Decode(batch, header, invalid);
  EXPECT_FALSE(invalid);
  EXPECT_EQ(header.node.size(), kBatchNodeMax);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].topic.size(), size_t{UINT16_MAX});
  EXPECT_EQ(BatchRecordSize(records[0]), kBatchRecordOverhead + UINT16_MAX + 1);
  // A payload length past the end (the largest u32) is refused, not read past the buffer.
  std::string bad;
  BeginBatch(bad, "n");
  AppendBatchRecord(bad, {.topic = "t", .payload = "p"});
  for (int i = 0; i < 4; ++i) bad[kBatchHeaderOverhead + 1 + 7 + i] = '\xFF';
  Decode(bad, header, invalid);
  EXPECT_TRUE(invalid);
}

// ---- MQTT 5.0 properties in records (batch.h "properties") ----

// Appends one property to a block.
void PutProperty(std::string& block, mqtt::PropertyId id, uint32_t value) {
  uint8_t bytes[8];
  block.append(reinterpret_cast<const char*>(bytes), mqtt::EncodeIntegerProperty(id, value, bytes));
}
void PutProperty(std::string& block, mqtt::PropertyId id, std::string_view value) {
  std::vector<uint8_t> bytes(mqtt::StringPropertySize(id, value));
  mqtt::EncodeStringProperty(id, value, bytes);
  block.append(bytes.begin(), bytes.end());
}
void PutUserProperty(std::string& block, std::string_view name, std::string_view value) {
  std::vector<uint8_t> bytes(mqtt::UserPropertySize(name, value));
  mqtt::EncodeUserProperty(name, value, bytes);
  block.append(bytes.begin(), bytes.end());
}

std::span<const uint8_t> BlockSpan(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

// Every property a record carries, user properties with a repeated name.
std::string CarriedBlock() {
  using mqtt::PropertyId;
  std::string block;
  PutUserProperty(block, "k", "first");
  PutProperty(block, PropertyId::kPayloadFormatIndicator, 1);
  PutProperty(block, PropertyId::kContentType, "application/json");
  PutUserProperty(block, "other", "x");
  PutProperty(block, PropertyId::kResponseTopic, "reply/to");
  PutProperty(block, PropertyId::kCorrelationData, std::string_view("\x00\xFF\r\n", 4));
  PutUserProperty(block, "k", "second");
  return block;
}

// A record whose properties field is `field` as is (the encoder asserts what a decoder refuses).
std::string BatchWithField(std::string_view field, std::string_view topic = "t/1") {
  std::string batch;
  BeginBatch(batch, "n");
  batch.push_back(0);
  PutU16(batch, static_cast<uint16_t>(topic.size()));
  PutU32(batch, static_cast<uint32_t>(field.size()));
  PutU32(batch, 1);
  batch.append(topic).append(field).append("p");
  AppendBatchRecord(batch, {.topic = "t/after", .payload = "never read"});
  return batch;
}

TEST(ClusterBatchTest, EveryCarriedPropertyAndTheExpiryRoundTripInOrder_MQTT_3_3_2_17_18) {
  const std::string block = CarriedBlock();
  ASSERT_EQ(mqtt::ValidateProperties(BlockSpan(block), mqtt::PacketBit(mqtt::PacketType::kPublish)),
            mqtt::Violation::kNone);
  std::string batch;
  BeginBatch(batch, "n");
  AppendBatchRecord(
      batch,
      {.topic = "t/1", .properties = block, .expiry_left_ms = 0x0102030405, .payload = "one"});
  AppendBatchRecord(batch, {.topic = "t/2", .expiry_left_ms = 0, .payload = "expired"});
  AppendBatchRecord(batch, {.topic = "t/3", .properties = block, .payload = "no expiry"});
  EXPECT_EQ(batch.size(), kBatchHeaderOverhead + 1 + 3 * kBatchRecordOverhead + 9 + 3 * 3 +
                              2 * block.size() + 9 + 3 + 7 + 9)
      << "the expiry takes 9 bytes; no property, no bytes";
  BatchHeader header;
  bool invalid = false;
  const std::vector<BatchRecord> records = Decode(batch, header, invalid);
  EXPECT_FALSE(invalid);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].properties, block) << "the block as written, byte for byte";
  EXPECT_EQ(records[0].expiry_left_ms, 0x0102030405u);
  EXPECT_EQ(records[0].payload, "one");
  EXPECT_EQ(records[1].properties, "");
  EXPECT_EQ(records[1].expiry_left_ms, 0u) << "0 ms left is carried (the receiver drops it)";
  EXPECT_EQ(records[2].properties, block);
  EXPECT_FALSE(records[2].expiry_left_ms);
  std::vector<std::pair<std::string, std::string>> users;
  for (const mqtt::Property property : mqtt::Properties(BlockSpan(records[0].properties))) {
    if (property.id == mqtt::PropertyId::kUserProperty) {
      users.emplace_back(property.text, property.pair_value);
    }
  }
  EXPECT_EQ(users, (std::vector<std::pair<std::string, std::string>>{
                       {"k", "first"}, {"other", "x"}, {"k", "second"}}))
      << "user properties in the publisher's order, the repeated name kept";
  const mqtt::PropertyValues values = mqtt::Properties(BlockSpan(records[0].properties)).Values();
  EXPECT_EQ(values.payload_format_indicator, 1);
  EXPECT_EQ(values.content_type, "application/json");
  EXPECT_EQ(values.response_topic, "reply/to");
  EXPECT_EQ(values.correlation_data, std::string_view("\x00\xFF\r\n", 4));
}

TEST(ClusterBatchTest, OnlyTheCarriedPropertiesAreCopied_MQTT_3_3_4_3) {
  using mqtt::PropertyId;
  std::string block;
  PutProperty(block, PropertyId::kTopicAlias, 7);  // per connection: never crosses
  PutUserProperty(block, "a", "1");
  PutProperty(block, PropertyId::kMessageExpiryInterval, 60);  // carried as the time left instead
  PutProperty(block, PropertyId::kSubscriptionIdentifier, 5);  // the receiver adds its own
  PutProperty(block, PropertyId::kContentType, "text/plain");
  PutUserProperty(block, "a", "2");
  std::string carried = "kept";
  AppendBatchProperties(BlockSpan(block), carried);
  std::string expected = "kept";
  PutUserProperty(expected, "a", "1");
  PutProperty(expected, PropertyId::kContentType, "text/plain");
  PutUserProperty(expected, "a", "2");
  EXPECT_EQ(carried, expected) << "appended, in order";
  // A will's block: Will Delay Interval is the will's own.
  std::string will;
  PutProperty(will, PropertyId::kWillDelayInterval, 10);
  PutProperty(will, PropertyId::kPayloadFormatIndicator, 0);
  carried.clear();
  AppendBatchProperties(BlockSpan(will), carried);
  std::string will_expected;
  PutProperty(will_expected, PropertyId::kPayloadFormatIndicator, 0);
  EXPECT_EQ(carried, will_expected);
  carried.clear();
  AppendBatchProperties({}, carried);
  EXPECT_EQ(carried, "");
}

TEST(ClusterBatchTest, EveryTruncationOfARecordWithPropertiesIsInvalid) {
  const std::string block = CarriedBlock();
  std::string batch;
  BeginBatch(batch, "n");
  AppendBatchRecord(
      batch, {.topic = "t/1", .properties = block, .expiry_left_ms = 500, .payload = "payload"});
  const size_t header_size = kBatchHeaderOverhead + 1;
  for (size_t cut = header_size + 1; cut < batch.size(); ++cut) {
    BatchHeader header;
    bool invalid = false;
    EXPECT_TRUE(Decode(std::string_view(batch).substr(0, cut), header, invalid).empty()) << cut;
    EXPECT_TRUE(invalid) << cut;
  }
  // The field itself cut (its length consistent): only whole properties make a record, and
  // the expiry is all 9 bytes or none.
  std::vector<size_t> boundaries = {0};
  for (std::span<const uint8_t> rest = BlockSpan(block); !rest.empty();) {
    rest = rest.subspan(mqtt::FirstPropertySize(rest));
    boundaries.push_back(block.size() - rest.size());
  }
  std::string field = "\xFF";
  PutU64(field, 500);
  field += block;
  for (size_t size = 0; size <= field.size(); ++size) {
    BatchHeader header;
    bool invalid = false;
    const std::vector<BatchRecord> records =
        Decode(BatchWithField(std::string_view(field).substr(0, size)), header, invalid);
    const bool whole = size == 0 || (size >= kBatchExpirySize &&
                                     std::find(boundaries.begin(), boundaries.end(),
                                               size - kBatchExpirySize) != boundaries.end());
    EXPECT_EQ(invalid, !whole) << size;
    EXPECT_EQ(records.size(), whole ? 2u : 0u) << size << ": nothing after a bad record";
  }
}

TEST(ClusterBatchTest, BadPropertiesFieldsAreRefused) {
  using mqtt::PropertyId;
  const auto refused = [](std::string_view field) {
    BatchHeader header;
    bool invalid = false;
    const std::vector<BatchRecord> records = Decode(BatchWithField(field), header, invalid);
    return invalid && records.empty();
  };
  std::string ok;
  PutUserProperty(ok, "k", "v");
  EXPECT_FALSE(refused(ok));
  const auto one = [](PropertyId id, uint32_t value) {
    std::string block;
    PutProperty(block, id, value);
    return block;
  };
  EXPECT_TRUE(refused(one(PropertyId::kMessageExpiryInterval, 5))) << "carried as ms left only";
  EXPECT_TRUE(refused(one(PropertyId::kTopicAlias, 1))) << "5.0:3.3.2.3.4: never forwarded";
  EXPECT_TRUE(refused(one(PropertyId::kSubscriptionIdentifier, 1))) << "MQTT-3.3.4-3";
  EXPECT_TRUE(refused(one(PropertyId::kSessionExpiryInterval, 1))) << "not a PUBLISH property";
  EXPECT_TRUE(refused(one(PropertyId::kWillDelayInterval, 1))) << "a will's own";
  EXPECT_TRUE(refused(std::string_view("\x00\x01", 2))) << "identifier 0 is none (§2.2.2.2)";
  EXPECT_TRUE(refused("\x7F\x01")) << "an unknown identifier";
  EXPECT_TRUE(refused("\x01\x02")) << "Payload Format Indicator 2 (§3.3.2.3.2)";
  EXPECT_TRUE(refused(one(PropertyId::kPayloadFormatIndicator, 1) +
                      one(PropertyId::kPayloadFormatIndicator, 0)))
      << "a single-valued property twice (Protocol Error, §3.3.2.3)";
  std::string wildcard;
  PutProperty(wildcard, PropertyId::kResponseTopic, "reply/+");
  EXPECT_TRUE(refused(wildcard)) << "MQTT-3.3.2-14";
  std::string bad_utf8;
  PutUserProperty(bad_utf8, "k", "\xC0\xAF");
  EXPECT_TRUE(refused(bad_utf8)) << "MQTT-1.5.4-1";
  std::string nul;
  PutProperty(nul, PropertyId::kContentType, std::string_view("a\0b", 3));
  EXPECT_TRUE(refused(nul)) << "MQTT-1.5.4-2";
  EXPECT_TRUE(refused(std::string_view("\xFF\x00\x00", 3))) << "a cut expiry";
  std::string late = ok + "\xFF";
  PutU64(late, 1);
  EXPECT_TRUE(refused(late)) << "the expiry only first";
  std::string twice = "\xFF";
  PutU64(twice, 1);
  twice += twice;
  EXPECT_TRUE(refused(twice)) << "one expiry";
}

}  // namespace
}  // namespace ringmq::cluster
