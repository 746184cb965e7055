// Client-id claims (cluster/claim.h): the payload both ways, its bounds, the order and the clock.
#include "cluster/claim.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

#include "connect/client_id.h"

namespace ringmq::cluster {
namespace {

std::string Encoded(const Claim& claim) {
  std::string out;
  EncodeClaim(claim, out);
  return out;
}

TEST(ClaimTest, PayloadIsTheDocumentedLine) {
  EXPECT_EQ(Encoded({.key = 42, .node = "node-a", .clean_start = true, .client_id = "dev/1"}),
            "1 42 node-a c\ndev/1");
  EXPECT_EQ(Encoded({.key = UINT64_MAX, .node = "n", .clean_start = false, .client_id = ""}),
            "1 18446744073709551615 n p\n");
}

TEST(ClaimTest, RoundTripKeepsEveryByteOfTheClientId) {
  std::string id;
  for (int c = 0; c < 256; ++c) id.push_back(static_cast<char>(c));  // \n and spaces too
  for (const bool clean : {false, true}) {
    const std::string payload =
        Encoded({.key = 7, .node = "n1", .clean_start = clean, .client_id = id});
    const std::optional<Claim> claim = ParseClaim(payload);
    ASSERT_TRUE(claim.has_value());
    EXPECT_EQ(claim->key, 7u);
    EXPECT_EQ(claim->node, "n1");
    EXPECT_EQ(claim->clean_start, clean);
    EXPECT_EQ(claim->client_id, id);
  }
}

TEST(ClaimTest, ClientIdAtItsBoundParsesAndOneMoreByteDoesNot) {
  const std::string id(kClaimClientIdMax, 'x');
  EXPECT_TRUE(ParseClaim(Encoded({.key = 1, .node = "n", .client_id = id})).has_value());
  EXPECT_FALSE(ParseClaim(Encoded({.key = 1, .node = "n", .client_id = id}) + "x").has_value());
}

TEST(ClaimTest, NodeAtItsBoundParsesAndOneMoreByteDoesNot) {
  const std::string node(kClaimNodeMax, 'n');
  EXPECT_TRUE(ParseClaim("1 1 " + node + " c\nid").has_value());
  EXPECT_FALSE(ParseClaim("1 1 " + node + "n c\nid").has_value());
}

TEST(ClaimTest, AnythingElseIsRefused) {
  for (const std::string bad : {
           "",
           "1",
           "2 1 n c\nid",                      // another format version
           "1  n c\nid",                       // no key
           "1 -1 n c\nid",                     // signed
           "1 1x n c\nid",                     // not a number
           "1 18446744073709551616 n c\nid",   // over uint64
           "1 000000000000000000001 n c\nid",  // 21 digits
           "1 1 c\nid",                        // no node
           "1 1 n x\nid",                      // flag not c or p
           "1 1 n c id",                       // no newline
           "1 1 n cc\nid",
           "1 1 n\x01 c\nid",  // a control byte in the node
           "1 1 n c",
       }) {
    EXPECT_FALSE(ParseClaim(bad).has_value()) << bad;
  }
  EXPECT_TRUE(ParseClaim("1 00000000000000000001 n c\n").has_value()) << "20 digits fit";
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

TEST(ClaimTest, BucketAgreesWithTheHomeShardWhenTheShardCountDividesTheBuckets) {
  // Bucket b is received on shard b % shards: with 1, 2, 4 ... 256 shards that is the home
  // shard, so no hop between shards.
  for (const uint32_t shards : {1u, 2u, 4u, 8u, 64u, 256u}) {
    for (int i = 0; i < 200; ++i) {
      const std::string id = "client-" + std::to_string(i);
      EXPECT_EQ(ClaimBucket(id) % shards, connect::HomeShard(id, shards)) << id << " " << shards;
    }
  }
}

TEST(ClaimTest, SubjectIsAControlSubject) {
  std::string subject;
  AppendClaimSubject("", 0, subject);
  EXPECT_EQ(subject, "$RINGMQ.claim.0");
  subject.clear();
  AppendClaimSubject("site1", kClaimBuckets - 1, subject);
  EXPECT_EQ(subject, "$RINGMQ.site1.claim.255");
}

}  // namespace
}  // namespace ringmq::cluster
