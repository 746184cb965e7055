#include "shard/cluster_interest.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cluster/nats_link.h"
#include "cluster/subject.h"

namespace ringmq::shard {
namespace {

class NullSink : public cluster::NatsLinkSink {
 public:
  void OnReady(const cluster::nats::ServerInfo&) override {}
  void OnMessage(const cluster::NatsMessage&) override {}
  void OnDisconnected(cluster::DisconnectReason, std::string_view) override {}
  void OnServerError(std::string_view) override {}
};

class ClusterInterestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster::NatsLinkOptions options;
    options.urls = {"nats://127.0.0.1:4222"};
    auto link = cluster::NatsLink::Create(options, &sink_);
    ASSERT_TRUE(link.ok()) << link.status();
    link_ = std::move(*link);
    interest_ = std::make_unique<ClusterInterest>(*link_, mapping_);
  }

  NullSink sink_;
  cluster::SubjectMapping mapping_;
  std::unique_ptr<cluster::NatsLink> link_;
  std::unique_ptr<ClusterInterest> interest_;
};

// NATS client protocol, "Wildcards": '*' one token, '>' one or more at the end.
TEST(NatsSubjectMatchesTest, Wildcards) {
  EXPECT_TRUE(NatsSubjectMatches("a.b", "a.b"));
  EXPECT_FALSE(NatsSubjectMatches("a.b", "a.bc"));
  EXPECT_FALSE(NatsSubjectMatches("a.b", "a.b.c"));
  EXPECT_FALSE(NatsSubjectMatches("a.b.c", "a.b"));
  EXPECT_TRUE(NatsSubjectMatches("a.*", "a.b"));
  EXPECT_FALSE(NatsSubjectMatches("a.*", "a.b.c"));
  EXPECT_FALSE(NatsSubjectMatches("a.*", "a"));
  EXPECT_TRUE(NatsSubjectMatches("a.>", "a.b.c"));
  EXPECT_FALSE(NatsSubjectMatches("a.>", "a"));
  EXPECT_TRUE(NatsSubjectMatches(">", "x"));
  EXPECT_TRUE(NatsSubjectMatches("*.b.>", "x.b.y"));
  EXPECT_FALSE(NatsSubjectMatches("*.b.>", "x.c.y"));
}

TEST_F(ClusterInterestTest, OneSubscriptionPerDistinctSubjectReferenceCounted) {
  interest_->Acquire("a/b");
  interest_->Acquire("a/b");  // a second session
  EXPECT_EQ(link_->subscription_count(), 1u);
  EXPECT_EQ(interest_->count("a.b"), 2u);
  interest_->Release("a/b");
  EXPECT_EQ(link_->subscription_count(), 1u) << "1 -> 0 only unsubscribes";
  interest_->Release("a/b");
  EXPECT_EQ(link_->subscription_count(), 0u);
  EXPECT_EQ(interest_->subject_count(), 0u);
}

// MQTT-4.7.1-2: "a/#" also matches "a": two subjects, and "a" is shared with the filter "a".
TEST_F(ClusterInterestTest, MultiLevelWildcardSubscribesTheParentToo) {
  interest_->Acquire("a/#");
  EXPECT_EQ(link_->subscription_count(), 2u);
  EXPECT_EQ(interest_->count("a.>"), 1u);
  EXPECT_EQ(interest_->count("a"), 1u);
  interest_->Acquire("a");
  EXPECT_EQ(link_->subscription_count(), 2u);
  EXPECT_EQ(interest_->count("a"), 2u);
  interest_->Release("a/#");
  EXPECT_EQ(link_->subscription_count(), 1u);
  EXPECT_EQ(interest_->count("a"), 1u);
  interest_->Acquire("+/x");
  EXPECT_EQ(interest_->count("*.x"), 1u);
}

TEST_F(ClusterInterestTest, FilterNoTopicCanMatchNeedsNoSubscription) {
  interest_->Acquire("a b/#");  // whitespace: no carried topic matches
  EXPECT_EQ(link_->subscription_count(), 0u);
  interest_->Release("a b/#");
  EXPECT_EQ(interest_->subject_count(), 0u);
}

TEST_F(ClusterInterestTest, KeepsTheCopyOfTheLowestMatchingSid) {
  interest_->Acquire("a/#");  // sids 1 (a.>) and 2 (a)
  interest_->Acquire("a/b");  // sid 3
  interest_->Acquire("c");    // sid 4
  EXPECT_TRUE(interest_->KeepCopy(1, "a.b"));
  EXPECT_FALSE(interest_->KeepCopy(3, "a.b")) << "a.> (sid 1) matches too";
  EXPECT_TRUE(interest_->KeepCopy(2, "a"));
  EXPECT_TRUE(interest_->KeepCopy(4, "c"));
  EXPECT_FALSE(interest_->KeepCopy(9, "c")) << "not a live sid";
  interest_->Release("a/#");  // in-flight copies for sid 3 now count
  EXPECT_TRUE(interest_->KeepCopy(3, "a.b"));
  EXPECT_FALSE(interest_->KeepCopy(1, "a.b")) << "sid 1 was unsubscribed";
}

TEST_F(ClusterInterestTest, LiteralSubscriptionMadeFirstKeepsItsCopy) {
  interest_->Acquire("k/b");  // sid 1: k.b
  interest_->Acquire("k/#");  // sids 2 (k.>) and 3 (k)
  EXPECT_TRUE(interest_->KeepCopy(1, "k.b"));
  EXPECT_FALSE(interest_->KeepCopy(2, "k.b")) << "k.b (sid 1) is lower";
  EXPECT_TRUE(interest_->KeepCopy(2, "k.c"));
  EXPECT_TRUE(interest_->KeepCopy(3, "k"));
}

TEST_F(ClusterInterestTest, OnlyWildcardSubjectsCanOverlap) {
  interest_->Acquire("x/+");  // sid 1: x.*
  interest_->Acquire("x/y");  // sid 2: x.y
  interest_->Acquire("z");    // sid 3: z
  EXPECT_FALSE(interest_->KeepCopy(2, "x.y"));
  EXPECT_TRUE(interest_->KeepCopy(3, "z")) << "x.* does not match z";
  interest_->Release("x/+");
  EXPECT_TRUE(interest_->KeepCopy(2, "x.y"));
}

// The trie against the brute-force matcher (NatsSubjectMatches over every live subject), on
// random subjects of a small alphabet so that '*' and '>' overlap a lot, through inserts and
// erases.
TEST(SubjectIndexTest, LowestMatchAgreesWithBruteForce) {
  std::mt19937 random(16);
  const std::vector<std::string> tokens = {"a", "b", "c", "*", ">"};
  const auto random_subject = [&](bool wildcards) {
    std::string subject;
    const int levels = 1 + static_cast<int>(random() % 4);
    for (int level = 0; level < levels; ++level) {
      if (level != 0) subject += '.';
      std::string token = tokens[random() % (wildcards ? tokens.size() : 3)];
      if (token == ">" && level != levels - 1) token = "*";  // '>' only last
      subject += token;
    }
    return subject;
  };
  SubjectIndex index;
  std::map<std::string, uint64_t> live;  // subject -> sid
  uint64_t next_sid = 1;
  for (int round = 0; round < 3000; ++round) {
    const std::string subject = random_subject(/*wildcards=*/true);
    if (const auto it = live.find(subject); it != live.end()) {
      index.Erase(subject);
      live.erase(it);
    } else {
      index.Insert(subject, next_sid);
      live.emplace(subject, next_sid++);
    }
    const std::string message = random_subject(/*wildcards=*/false);
    uint64_t expected = 0;
    for (const auto& [pattern, sid] : live) {
      if (NatsSubjectMatches(pattern, message) && (expected == 0 || sid < expected)) {
        expected = sid;
      }
    }
    ASSERT_EQ(index.LowestMatch(message), expected) << "round " << round << ": " << message;
  }
  for (const auto& [subject, sid] : live) index.Erase(subject);
  EXPECT_EQ(index.node_count(), 1u) << "every node pruned but the root";
}

// Issue 16 (lane weak): KeepCopy's cost does not grow with wildcard subjects that do not match
// the message. 10000 wildcard filters "dev/<i>/+" and "dev/<i>/#"; a message on dev/7/t visits
// a handful of trie nodes, where a scan of the wildcard sids would match 20000 subjects.
TEST_F(ClusterInterestTest, KeepCopyCostIndependentOfNonMatchingWildcards) {
  constexpr int kDevices = 10000;
  for (int i = 0; i < kDevices; ++i) {
    interest_->Acquire("dev/" + std::to_string(i) + "/+");
    interest_->Acquire("dev/" + std::to_string(i) + "/#");
  }
  interest_->Acquire("dev/7/t");  // the literal subject, subscribed last
  // Sids in order: dev.<i>.* = 3i + 1, dev.<i>.> = 3i + 2, dev.<i> = 3i + 3.
  const uint64_t star_sid = 3 * 7 + 1;
  const uint64_t literal_sid = 3 * kDevices + 1;
  EXPECT_TRUE(interest_->KeepCopy(star_sid, "dev.7.t"));
  EXPECT_FALSE(interest_->KeepCopy(star_sid + 1, "dev.7.t")) << "dev.7.* is lower";
  EXPECT_FALSE(interest_->KeepCopy(literal_sid, "dev.7.t")) << "dev.7.* is lower";
  EXPECT_LE(interest_->index().last_match_visits(), 6u)
      << "root, dev, dev.7, dev.7.*: not one per wildcard subject";
  EXPECT_TRUE(interest_->KeepCopy(3 * 9999 + 2, "dev.9999.t.u")) << "only dev.9999.> matches";
  EXPECT_LE(interest_->index().last_match_visits(), 6u);
  interest_->Release("dev/7/+");
  EXPECT_TRUE(interest_->KeepCopy(star_sid + 1, "dev.7.t")) << "dev.7.> is now the lowest";
  for (int i = 0; i < kDevices; ++i) {
    interest_->Release("dev/" + std::to_string(i) + "/#");
    if (i != 7) interest_->Release("dev/" + std::to_string(i) + "/+");
  }
  EXPECT_EQ(interest_->index().node_count(), 4u) << "root, dev, dev.7, dev.7.t: the rest pruned";
  EXPECT_TRUE(interest_->KeepCopy(literal_sid, "dev.7.t"));
}

TEST_F(ClusterInterestTest, PrefixGoesInFrontOfEverySubject) {
  mapping_.prefix = "site.mqtt";
  interest_->Acquire("a/+");
  EXPECT_EQ(interest_->count("site.mqtt.a.*"), 1u);
}

}  // namespace
}  // namespace ringmq::shard
