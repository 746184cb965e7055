// Client-id claims (cluster/claim.h): the batch payload both ways, its bounds, the order, the
// clock and the subjects.
#include "cluster/claim.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connect/client_id.h"

namespace ringmq::cluster {
namespace {

struct Item {
  uint64_t key;
  bool clean_start;
  std::string client_id;
};

std::string Batch(std::string_view node, const std::vector<Item>& items) {
  std::string out;
  ClaimBatchWriter writer;
  writer.Begin(node, out);
  for (const Item& item : items) writer.Add(item.key, item.clean_start, item.client_id, out);
  EXPECT_EQ(writer.claims(), items.size());
  return out;
}

// The claims of `payload`, or nullopt if Open refuses it.
std::optional<std::vector<Claim>> Read(std::string_view payload) {
  ClaimBatchReader reader;
  if (!reader.Open(payload)) return std::nullopt;
  std::vector<Claim> claims;
  Claim claim;
  while (reader.Next(claim)) claims.push_back(claim);
  return claims;
}

TEST(ClaimTest, PayloadIsTheDocumentedBatch) {
  EXPECT_EQ(Batch("node-a", {{42, true, "dev/1"}}), "2 node-a\n42 c 5\ndev/1");
  EXPECT_EQ(Batch("n", {{UINT64_MAX, false, ""}, {7, true, "ab"}}),
            "2 n\n18446744073709551615 p 0\n7 c 2\nab");
}

TEST(ClaimTest, AWriterStartsEmptyAndBeginClearsTheBuffer) {
  std::string out = "left over";
  ClaimBatchWriter writer;
  EXPECT_TRUE(writer.empty());
  writer.Begin("n", out);
  EXPECT_EQ(out, "2 n\n");
  EXPECT_TRUE(writer.empty()) << "a header alone is no batch";
  EXPECT_FALSE(Read(out).has_value()) << "at least one claim";
  writer.Add(1, true, "x", out);
  EXPECT_EQ(writer.claims(), 1u);
  writer.Begin("m", out);
  EXPECT_EQ(out, "2 m\n");
  EXPECT_TRUE(writer.empty());
}

TEST(ClaimTest, RoundTripKeepsEveryByteOfEveryClientIdInOrder) {
  std::string id;
  for (int c = 0; c < 256; ++c) id.push_back(static_cast<char>(c));  // \n, spaces, digits too
  const std::vector<Item> items = {
      {7, false, id}, {8, true, "7 c 9\n"}, {9, true, ""}, {10, false, id}};
  const std::string payload = Batch("n1", items);  // the claims are views into it
  const std::optional<std::vector<Claim>> claims = Read(payload);
  ASSERT_TRUE(claims.has_value());
  ASSERT_EQ(claims->size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ((*claims)[i].key, items[i].key);
    EXPECT_EQ((*claims)[i].node, "n1") << "the batch's node, on every claim";
    EXPECT_EQ((*claims)[i].clean_start, items[i].clean_start);
    EXPECT_EQ((*claims)[i].client_id, items[i].client_id);
  }
}

TEST(ClaimTest, ClientIdAtItsBoundParsesAndALengthBeyondItDoesNot) {
  const std::string id(kClaimClientIdMax, 'x');
  EXPECT_TRUE(Read(Batch("n", {{1, true, id}})).has_value());
  EXPECT_FALSE(Read("2 n\n1 c 65536\n" + id + "x").has_value());
  EXPECT_FALSE(Read("2 n\n1 c 100000\n" + id).has_value()) << "6 digits";
  EXPECT_LE(Batch("n", {{UINT64_MAX, false, id}}).size() - 4, ClaimRecordBytesMax(id.size()))
      << "the bound the batch's byte limit is checked with";
}

TEST(ClaimTest, NodeAtItsBoundParsesAndOneMoreByteDoesNot) {
  const std::string node(kClaimNodeMax, 'n');
  EXPECT_TRUE(Read("2 " + node + "\n1 c 2\nid").has_value());
  EXPECT_FALSE(Read("2 " + node + "n\n1 c 2\nid").has_value());
}

TEST(ClaimTest, AnythingElseIsRefusedWhole) {
  for (const std::string bad : {
           "",
           "2",
           "2 n\n",                               // no claim
           "1 1 n c\nid",                         // format 1 (one claim a message): refused
           "3 n\n1 c 2\nid",                      // a newer format
           "2 \n1 c 2\nid",                       // no node
           "2 n m\n1 c 2\nid",                    // a space in the node
           "2 n\x01\n1 c 2\nid",                  // a control byte in the node
           "2 n\n c 2\nid",                       // no key
           "2 n\n-1 c 2\nid",                     // signed
           "2 n\n1x c 2\nid",                     // not a number
           "2 n\n01 c 2\nid",                     // a leading zero
           "2 n\n18446744073709551616 c 2\nid",   // over uint64
           "2 n\n000000000000000000001 c 2\nid",  // 21 digits
           "2 n\n1 x 2\nid",                      // flag not c or p
           "2 n\n1 cc 2\nid",
           "2 n\n1 c\nid",     // no length
           "2 n\n1 c 02\nid",  // a leading zero in the length
           "2 n\n1 c 2x\nid",
           "2 n\n1 c 2 id",        // no newline
           "2 n\n1 c 3\nid",       // shorter than its length
           "2 n\n1 c 2\nid1",      // bytes after the last record
           "2 n\n1 c 2\nid2 p 1",  // a truncated second record
           "2 n\n1 c 2\nid2 p 1\n",
       }) {
    EXPECT_FALSE(Read(bad).has_value()) << bad;
  }
  EXPECT_TRUE(Read("2 n\n0 c 0\n").has_value()) << "zero is spelled 0";
  EXPECT_TRUE(Read("2 n\n18446744073709551615 c 0\n").has_value()) << "20 digits fit";
}

TEST(ClaimTest, ATruncatedBatchIsRefusedAtEveryLengthButTheRecordEnds) {
  const std::string full = Batch("node", {{12, true, "abc"}, {13, false, "de"}});
  const size_t first_end = std::string("2 node\n12 c 3\nabc").size();
  for (size_t size = 0; size < full.size(); ++size) {
    EXPECT_EQ(Read(full.substr(0, size)).has_value(), size == first_end) << size;
  }
  EXPECT_TRUE(Read(full).has_value());
}

TEST(ClaimTest, NewerByKeyThenByNodeName) {
  EXPECT_TRUE(ClaimIsNewer(2, "a", 1, "b"));
  EXPECT_FALSE(ClaimIsNewer(1, "b", 2, "a"));
  // Equal keys: the greater node name, so two nodes never both keep their connection.
  EXPECT_TRUE(ClaimIsNewer(5, "node2", 5, "node1"));
  EXPECT_FALSE(ClaimIsNewer(5, "node1", 5, "node2"));
  EXPECT_FALSE(ClaimIsNewer(5, "node1", 5, "node1"));
}

TEST(ClaimTest, ClockFollowsTheWallAndNeverGoesBack) {
  ClaimClock clock;
  EXPECT_EQ(clock.Next(1000), 1000u);
  EXPECT_EQ(clock.Next(1000), 1001u) << "same microsecond: still greater";
  EXPECT_EQ(clock.Next(500), 1002u) << "the wall went back: still greater";
  EXPECT_EQ(clock.Next(5000), 5000u);
}

TEST(ClaimTest, ACheckedClaimMakesTheNextKeyNewerWhateverTheWallSays) {
  // Another node, its clock 10 s ahead, claimed the id at its 20'000'000; ours says 10'000'000.
  ClaimClock clock;
  clock.Observe(20'000'000);
  EXPECT_EQ(clock.Next(10'000'000), 20'000'001u);
  clock.Observe(5);  // an old claim changes nothing
  EXPECT_EQ(clock.last(), 20'000'001u);
}

TEST(ClaimTest, AShardsGroupIsWhereANodeWithAsManyShardsReceivesIt) {
  // Shard s publishes the claims of ids homed on it on group s; a node with as many shards
  // receives group s on its shard s % shards = s: the ids' home there too, no hop.
  for (const uint32_t shards : {1u, 2u, 3u, 4u, 7u, 64u, 256u}) {
    for (int i = 0; i < 200; ++i) {
      const std::string id = "client-" + std::to_string(i);
      const uint32_t home = connect::HomeShard(id, shards);
      EXPECT_EQ(ClaimGroupOf(home) % shards, home) << id << " " << shards;
    }
  }
  EXPECT_EQ(ClaimGroupOf(300), 300u - kClaimBuckets) << "more shards than groups wrap";
}

TEST(ClaimTest, SubjectIsAControlSubject) {
  std::string subject;
  AppendClaimSubject("", 0, subject);
  EXPECT_EQ(subject, "$RINGMQ.claims.0");
  subject.clear();
  AppendClaimSubject("site1", kClaimBuckets - 1, subject);
  EXPECT_EQ(subject, "$RINGMQ.site1.claims.255");
}

}  // namespace
}  // namespace ringmq::cluster
