// ClusterShares (src/shard/cluster_share.h): queue names, one queue subscription per cover
// subject of each (group, filter) with members on the shard, reference counted, and the group
// of a queue subscription's sid.
#include "shard/cluster_share.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cluster/nats_link.h"
#include "cluster/subject.h"

namespace ringmq::shard {
namespace {

class ShareNullSink : public cluster::NatsLinkSink {
 public:
  void OnReady(const cluster::nats::ServerInfo&) override {}
  void OnMessage(const cluster::NatsMessage&) override {}
  void OnDisconnected(cluster::DisconnectReason, std::string_view) override {}
  void OnServerError(std::string_view) override {}
};

std::string QueueName(std::string_view share_name, std::string_view filter) {
  std::string out;
  AppendQueueName(share_name, filter, out);
  return out;
}

TEST(QueueNameTest, KeepsLettersAndDigitsAndEscapesEveryOtherByte) {
  EXPECT_EQ(QueueName("g1", "a/b"), "g1-a_2Fb");
  EXPECT_EQ(QueueName("workers", "sensors/+/temp"), "workers-sensors_2F_2B_2Ftemp");
  EXPECT_EQ(QueueName("g", "#"), "g-_23");
  EXPECT_EQ(QueueName("a-b", "c"), "a_2Db-c");
  EXPECT_EQ(QueueName("_", " x\t"), "_5F-_20x_09");
  EXPECT_EQ(QueueName("\xC3\xA9", "\x7F"), "_C3_A9-_7F");
}

// The name must be one NATS token (NATS client protocol, "SUB": queue group) and distinct
// (G, F) pairs must not meet in one queue group: '-' splits them, and no encoded part holds one.
TEST(QueueNameTest, DistinctGroupsGetDistinctValidNames) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"a", "b-c"}, {"a-b", "c"}, {"a", "b_2Dc"}, {"a_2Db", "c"}, {"a", "b/c"}, {"a/b", "c"},
      {"ab", "c"},  {"a", "bc"},  {"a", "b c"},   {"a", "b_20c"}, {"g", "+"},   {"g", "_2B"},
  };
  std::set<std::string> names;
  for (const auto& [share_name, filter] : pairs) {
    const std::string name = QueueName(share_name, filter);
    for (const char c : name) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') << name;
    }
    EXPECT_EQ(std::count(name.begin(), name.end(), '-'), 1) << name;
    EXPECT_TRUE(names.insert(name).second) << name << " twice";
  }
}

class ClusterSharesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster::NatsLinkOptions options;
    options.urls = {"nats://127.0.0.1:4222"};
    auto link = cluster::NatsLink::Create(options, &sink_);
    ASSERT_TRUE(link.ok()) << link.status();
    link_ = std::move(*link);
    link_->BeginConnect(0);
    link_->OnTransportConnected(0);
    link_->OnReceived(0, "INFO {\"server_id\":\"s\",\"headers\":true}\r\n");
    link_->OnReceived(0, "PONG\r\n");
    ASSERT_TRUE(link_->ready());
    Output();
    shares_ = std::make_unique<ClusterShares>(*link_, mapping_);
  }

  std::string Output() {
    std::string out;
    link_->TakeOutput(out);
    return out;
  }

  ShareNullSink sink_;
  cluster::SubjectMapping mapping_;
  std::unique_ptr<cluster::NatsLink> link_;
  std::unique_ptr<ClusterShares> shares_;
};

TEST_F(ClusterSharesTest, OneQueueSubscriptionPerGroupReferenceCounted) {
  shares_->Acquire("g", "a/+");
  shares_->Acquire("g", "a/+");  // a second member on this shard
  EXPECT_EQ(Output(), "SUB a.* g-a_2F_2B 1\r\n");
  EXPECT_EQ(shares_->count("g", "a/+"), 2u);
  shares_->Acquire("h", "a/+");  // another group on the same filter: its own queue group
  EXPECT_EQ(Output(), "SUB a.* h-a_2F_2B 2\r\n");
  EXPECT_EQ(shares_->group_count(), 2u);
  EXPECT_EQ(shares_->subscription_count(), 2u);
  shares_->Release("g", "a/+");
  EXPECT_EQ(Output(), "") << "1 -> 0 only unsubscribes";
  shares_->Release("g", "a/+");
  EXPECT_EQ(Output(), "UNSUB 1\r\n");
  EXPECT_EQ(shares_->count("g", "a/+"), 0u);
  shares_->Release("g", "a/+");  // not held: nothing
  EXPECT_EQ(Output(), "");
  EXPECT_EQ(shares_->subscription_count(), 1u);
}

// MQTT-4.7.1-2: "a/#" also matches "a": both cover subjects in the same queue group.
TEST_F(ClusterSharesTest, MultiLevelWildcardGroupSubscribesTheParentInTheSameQueueGroup) {
  shares_->Acquire("g", "a/#");
  EXPECT_EQ(Output(), "SUB a.> g-a_2F_23 1\r\nSUB a g-a_2F_23 2\r\n");
  ClusterShares::Group group;
  ASSERT_TRUE(shares_->Find(1, group));
  EXPECT_EQ(group.share_name, "g");
  EXPECT_EQ(group.filter, "a/#");
  ASSERT_TRUE(shares_->Find(2, group));
  EXPECT_EQ(group.filter, "a/#");
  shares_->Release("g", "a/#");
  EXPECT_EQ(Output(), "UNSUB 1\r\nUNSUB 2\r\n");
  EXPECT_FALSE(shares_->Find(1, group)) << "a copy in flight for a group that left";
  EXPECT_FALSE(shares_->Find(2, group));
}

TEST_F(ClusterSharesTest, PrefixAndUncoverableFilters) {
  cluster::SubjectMapping prefixed{.prefix = "site"};
  ClusterShares shares(*link_, prefixed);
  shares.Acquire("g", "#");
  EXPECT_EQ(Output(), "SUB site.> g-_23 1\r\n");
  shares.Acquire("g", "a b/+");  // no carried topic matches a level with a space
  EXPECT_EQ(Output(), "");
  EXPECT_EQ(shares.count("g", "a b/+"), 1u);
  shares.Release("g", "a b/+");
  EXPECT_EQ(shares.group_count(), 1u);
}

// A queue name over the link's token bound (nats::kSubjectMaxBytes): the link refuses the SUB,
// counted. 300 levels: a 599-byte subject, a 1199-byte queue name.
TEST_F(ClusterSharesTest, RefusedSubscriptionIsCounted) {
  std::string filter = "a";
  for (int i = 1; i < 300; ++i) filter += "/a";
  shares_->Acquire("g", filter);
  EXPECT_EQ(shares_->subscribe_failures(), 1u);
  EXPECT_EQ(shares_->subscription_count(), 0u);
  EXPECT_EQ(Output(), "");
  shares_->Release("g", filter);
  EXPECT_EQ(shares_->group_count(), 0u);
}

// Random joins and leaves against a model: the link holds exactly the cover subjects of the
// groups with members, each sid maps back to its group, and everything goes when all leave.
TEST_F(ClusterSharesTest, RandomMembershipChangesMatchAModel) {
  const std::vector<std::pair<std::string, std::string>> groups = {
      {"g", "a"}, {"g", "a/#"}, {"h", "a/#"}, {"g", "+/b"}, {"x-y", "#"}, {"g", "c/+/#"}};
  const auto cover = [](const std::string& filter) {
    return filter.ends_with("#") && filter != "#" ? 2u : 1u;
  };
  std::vector<uint32_t> model(groups.size(), 0);
  std::mt19937 random(7);
  for (int step = 0; step < 2000; ++step) {
    const size_t i = random() % groups.size();
    if (model[i] > 0 && random() % 2 == 0) {
      shares_->Release(groups[i].first, groups[i].second);
      --model[i];
    } else {
      shares_->Acquire(groups[i].first, groups[i].second);
      ++model[i];
    }
    size_t subscriptions = 0;
    for (size_t j = 0; j < groups.size(); ++j) {
      ASSERT_EQ(shares_->count(groups[j].first, groups[j].second), model[j]);
      if (model[j] > 0) subscriptions += cover(groups[j].second);
    }
    ASSERT_EQ(shares_->subscription_count(), subscriptions);
    ASSERT_EQ(link_->subscription_count(), subscriptions);
  }
  for (uint64_t sid = 1; sid < 4000; ++sid) {
    ClusterShares::Group group;
    if (!shares_->Find(sid, group)) continue;
    const auto it = std::find(groups.begin(), groups.end(),
                              std::pair<std::string, std::string>(group.share_name, group.filter));
    ASSERT_NE(it, groups.end());
    EXPECT_GT(model[static_cast<size_t>(it - groups.begin())], 0u);
  }
  for (size_t j = 0; j < groups.size(); ++j) {
    while (model[j] > 0) {
      shares_->Release(groups[j].first, groups[j].second);
      --model[j];
    }
  }
  EXPECT_EQ(shares_->group_count(), 0u);
  EXPECT_EQ(link_->subscription_count(), 0u);
}

}  // namespace
}  // namespace ringmq::shard
