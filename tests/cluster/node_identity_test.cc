#include "cluster/node_identity.h"

#include <gtest/gtest.h>

namespace ringmq::cluster {
namespace {

using Verdict = NodeIdentity::Verdict;

TEST(NodeIdentityTest, SubjectIsTheNameUnderTheControlRoot) {
  EXPECT_EQ(NodeIdentity("", "node1", 1, 2).subject(), "$RINGMQ.node.node1");
  EXPECT_EQ(NodeIdentity("site", "node1", 1, 2).subject(), "$RINGMQ.site.node.node1");
}

TEST(NodeIdentityTest, OwnAnnouncementIsSelf) {
  const NodeIdentity identity("", "n", 1700000000123, 0xabcdef);
  EXPECT_EQ(identity.payload(), "v1 1700000000123 0000000000abcdef");
  EXPECT_EQ(identity.Judge(identity.payload()).verdict, Verdict::kSelf);
}

// The node started later stops, whichever receives first; both sides decide alike.
TEST(NodeIdentityTest, TheLaterStartedTwinIsTheNewcomer) {
  const NodeIdentity old_node("", "n", 1000, 7);
  const NodeIdentity new_node("", "n", 2000, 3);
  const NodeIdentity::Judgement at_new = new_node.Judge(old_node.payload());
  EXPECT_EQ(at_new.verdict, Verdict::kThisIsNewer);
  EXPECT_EQ(at_new.other_started_unix_ms, 1000u);
  EXPECT_EQ(at_new.other_instance, 7u);
  EXPECT_EQ(old_node.Judge(new_node.payload()).verdict, Verdict::kOtherIsNewer);
}

TEST(NodeIdentityTest, EqualStartsAreDecidedByTheInstance) {
  const NodeIdentity low("", "n", 1000, 1);
  const NodeIdentity high("", "n", 1000, 2);
  EXPECT_EQ(high.Judge(low.payload()).verdict, Verdict::kThisIsNewer);
  EXPECT_EQ(low.Judge(high.payload()).verdict, Verdict::kOtherIsNewer);
}

TEST(NodeIdentityTest, AnythingElseIsMalformed) {
  const NodeIdentity identity("", "n", 1000, 1);
  for (const char* payload : {"", "v1", "v1 ", "v1 1000", "v1 1000 ", "v1 x 01", "v1 1000 0g",
                              "v2 1000 01", "v1 1000 01 extra", "v1 -5 01"}) {
    EXPECT_EQ(identity.Judge(payload).verdict, Verdict::kMalformed) << payload;
  }
}

}  // namespace
}  // namespace ringmq::cluster
