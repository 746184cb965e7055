// QoS 0 batches between nodes (src/cluster/batch.h): the encoding, its decoder's refusals, and
// the order of records.
#include "cluster/batch.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

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
  AppendBatchRecord(batch, {.topic = "a/b", .qos = 2, .retain = true, .properties = "\x01\x02",
                            .payload = ""});
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
  EXPECT_EQ(records[1].properties, "\x01\x02");
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
  AppendBatchRecord(batch, {.topic = "t/1", .qos = 0, .properties = "p", .payload = "payload"});
  AppendBatchRecord(batch, {.topic = "t/2", .qos = 0, .payload = "second"});
  const size_t header_size = kBatchHeaderOverhead + 1;
  const size_t first_end = header_size + kBatchRecordOverhead + 3 + 1 + 7;
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

}  // namespace
}  // namespace ringmq::cluster
