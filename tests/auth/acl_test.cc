// ACL file parsing, the filter algebra behind it, and per-client decisions (docs/auth.md).
#include "auth/acl.h"

#include <gtest/gtest.h>

#include <string>

namespace ringmq::auth {
namespace {

TEST(AclMatchTest, TopicMatches) {
  EXPECT_TRUE(TopicMatches("a/b", "a/b"));
  EXPECT_FALSE(TopicMatches("a/b", "a/c"));
  EXPECT_FALSE(TopicMatches("a/b", "a/b/c"));
  EXPECT_FALSE(TopicMatches("a/b/c", "a/b"));
  EXPECT_TRUE(TopicMatches("a/+", "a/b"));
  EXPECT_TRUE(TopicMatches("a/+", "a/"));  // empty level
  EXPECT_FALSE(TopicMatches("a/+", "a"));
  EXPECT_TRUE(TopicMatches("a/#", "a"));  // MQTT-4.7.1-2: '#' includes the parent
  EXPECT_TRUE(TopicMatches("a/#", "a/b/c"));
  EXPECT_TRUE(TopicMatches("#", "x/y"));
  EXPECT_TRUE(TopicMatches("+/+", "/x"));
}

TEST(AclMatchTest, WildcardsInFirstLevelDoNotMatchDollarTopics) {  // MQTT-4.7.2-1
  EXPECT_FALSE(TopicMatches("#", "$SYS/broker/uptime"));
  EXPECT_FALSE(TopicMatches("+/broker/uptime", "$SYS/broker/uptime"));
  EXPECT_TRUE(TopicMatches("$SYS/#", "$SYS/broker/uptime"));
  EXPECT_TRUE(TopicMatches("$SYS/+/uptime", "$SYS/broker/uptime"));
}

TEST(AclMatchTest, FilterCovers) {
  EXPECT_TRUE(FilterCovers("#", "a/b"));
  EXPECT_TRUE(FilterCovers("#", "#"));
  EXPECT_TRUE(FilterCovers("#", "+/x/#"));
  EXPECT_TRUE(FilterCovers("a/#", "a"));
  EXPECT_TRUE(FilterCovers("a/#", "a/#"));
  EXPECT_TRUE(FilterCovers("a/#", "a/+/c"));
  EXPECT_TRUE(FilterCovers("a/+", "a/+"));
  EXPECT_TRUE(FilterCovers("a/+", "a/b"));
  EXPECT_TRUE(FilterCovers("+/#", "#"));  // every topic has a first level
  EXPECT_FALSE(FilterCovers("a/+", "a/#"));  // a/# also matches a and a/b/c
  EXPECT_FALSE(FilterCovers("a/+/#", "a/#"));  // a/# matches a
  EXPECT_FALSE(FilterCovers("a/b", "a/+"));
  EXPECT_FALSE(FilterCovers("a/b", "a/b/c"));
  EXPECT_FALSE(FilterCovers("a/b/c", "a/b"));
  EXPECT_FALSE(FilterCovers("a/#", "b/#"));
  EXPECT_FALSE(FilterCovers("+/+/#", "#"));
  EXPECT_FALSE(FilterCovers("#", "$SYS/#"));  // MQTT-4.7.2-1
  EXPECT_FALSE(FilterCovers("+/broker", "$SYS/broker"));
  EXPECT_TRUE(FilterCovers("$SYS/#", "$SYS/broker/+"));
}

TEST(AclMatchTest, FiltersIntersect) {
  EXPECT_TRUE(FiltersIntersect("a/b", "a/b"));
  EXPECT_FALSE(FiltersIntersect("a/b", "a/c"));
  EXPECT_TRUE(FiltersIntersect("a/+", "+/b"));
  EXPECT_TRUE(FiltersIntersect("#", "a/b"));
  EXPECT_TRUE(FiltersIntersect("secret/#", "#"));
  EXPECT_TRUE(FiltersIntersect("a/#", "a"));
  EXPECT_TRUE(FiltersIntersect("a", "a/#"));
  EXPECT_FALSE(FiltersIntersect("a/+", "a"));
  EXPECT_FALSE(FiltersIntersect("a/b/c", "a/b"));
  EXPECT_TRUE(FiltersIntersect("+/+/c", "a/#"));
  EXPECT_FALSE(FiltersIntersect("#", "$SYS/x"));
  EXPECT_FALSE(FiltersIntersect("+/x", "$SYS/x"));
  EXPECT_TRUE(FiltersIntersect("$SYS/#", "$SYS/x"));
}

constexpr char kAcl[] =
    "# anonymous clients\n"
    "topic read public/#\n"
    "topic deny public/secret\n"
    "\n"
    "user alice\n"
    "topic readwrite alice/#\n"
    "topic write  upload/with space\n"
    "topic shared/+\n"
    "topic deny alice/private/#\n"
    "user bob smith\n"
    "topic read $SYS/#\n"
    "pattern write devices/%c/out\n"
    "pattern read devices/%c/in/#\n"
    "pattern users/%u/#\n";

AclFile Parsed(std::string_view text = kAcl) {
  absl::StatusOr<AclFile> file = ParseAclFile(text, "acl");
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? *file : AclFile{};
}

TEST(AclFileTest, ParsesSectionsAccessAndPatterns) {
  const AclFile file = Parsed();
  EXPECT_EQ(file.rule_count(), 10u);
  EXPECT_EQ(file.user_count(), 2u);
  ASSERT_EQ(file.anonymous().size(), 2u);
  EXPECT_EQ(file.anonymous()[0], (AclRule{"public/#", kRead}));
  EXPECT_EQ(file.anonymous()[1], (AclRule{"public/secret", kDeny}));
  const std::vector<AclRule>* alice = file.user("alice");
  ASSERT_NE(alice, nullptr);
  ASSERT_EQ(alice->size(), 4u);
  EXPECT_EQ((*alice)[1], (AclRule{"upload/with space", kWrite}));
  EXPECT_EQ((*alice)[2], (AclRule{"shared/+", kReadWrite}));  // default access
  ASSERT_NE(file.user("bob smith"), nullptr);                 // names may contain spaces
  EXPECT_EQ(file.user("carol"), nullptr);
  ASSERT_EQ(file.patterns().size(), 3u);
  EXPECT_EQ(file.patterns()[2], (AclRule{"users/%u/#", kReadWrite}));
}

void ExpectError(const std::string& text, const std::string& line, const std::string& what) {
  absl::StatusOr<AclFile> file = ParseAclFile(text, "/etc/ringmq/acl");
  ASSERT_FALSE(file.ok()) << text;
  const std::string message(file.status().message());
  EXPECT_EQ(message.rfind("/etc/ringmq/acl:" + line + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
}

TEST(AclFileTest, EveryBadLineIsAnErrorWithFileAndLine) {
  ExpectError("topic a\nuser\n", "2", "missing user name");
  ExpectError("topic a\nuser   \n", "2", "missing user name");
  ExpectError("# c\ntopic\n", "2", "missing topic");
  ExpectError("pattern   \n", "1", "missing topic");
  ExpectError("topic readonly a/b\n", "1", "unknown access 'readonly'");
  ExpectError("topic read a/#/b\n", "1", "not a valid topic filter");
  ExpectError("topic read a/b+\n", "1", "not a valid topic filter");
  ExpectError("\n\ntopics a\n", "3", "unknown keyword 'topics'");
  ExpectError("allow all\n", "1", "unknown keyword 'allow'");
}

TEST(ClientAclTest, AnonymousClientsGetTheRulesBeforeAnyUserLine) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), std::nullopt, "anon-1");
  EXPECT_TRUE(acl.CanSubscribe("public/news"));
  EXPECT_TRUE(acl.CanSubscribe("public/+/x"));
  EXPECT_FALSE(acl.CanSubscribe("public/#"));  // would receive public/secret
  EXPECT_FALSE(acl.CanPublish("public/news"));  // read only
  EXPECT_FALSE(acl.CanSubscribe("alice/x"));
  // Patterns with %c apply to anonymous clients too; those with %u do not.
  EXPECT_TRUE(acl.CanPublish("devices/anon-1/out"));
  EXPECT_FALSE(acl.CanPublish("users//x"));
}

TEST(ClientAclTest, UserSectionAndPatternsWithSubstitution) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), "alice", "phone");
  EXPECT_TRUE(acl.CanPublish("alice/notes"));
  EXPECT_TRUE(acl.CanSubscribe("alice/notes/+"));
  EXPECT_FALSE(acl.CanSubscribe("alice/+"));  // would receive alice/private (denied)
  EXPECT_TRUE(acl.CanSubscribe("shared/+"));
  EXPECT_TRUE(acl.CanPublish("upload/with space"));
  EXPECT_FALSE(acl.CanSubscribe("upload/with space"));  // write only
  EXPECT_TRUE(acl.CanPublish("shared/x"));
  EXPECT_FALSE(acl.CanPublish("public/news"));  // anonymous rules are not alice's
  EXPECT_TRUE(acl.CanPublish("devices/phone/out"));
  EXPECT_FALSE(acl.CanPublish("devices/phone/in/x"));  // read only pattern
  EXPECT_TRUE(acl.CanSubscribe("devices/phone/in/#"));
  EXPECT_FALSE(acl.CanSubscribe("devices/other/in/#"));  // %c is this client only
  EXPECT_TRUE(acl.CanPublish("users/alice/x"));
  EXPECT_FALSE(acl.CanPublish("users/bob/x"));
}

TEST(ClientAclTest, DenyWinsOverEveryGrant) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), "alice", "phone");
  EXPECT_FALSE(acl.CanPublish("alice/private/diary"));
  EXPECT_FALSE(acl.CanPublish("alice/private"));  // '#' includes the parent
  EXPECT_FALSE(acl.CanSubscribe("alice/#"));       // overlaps the denied subtree
  EXPECT_FALSE(acl.CanSubscribe("alice/+/diary"));
  EXPECT_TRUE(acl.CanSubscribe("alice/public/#"));
  // A deny from a pattern applies to grants of the user's section too.
  const ClientAcl patterned = ClientAcl::Compile(
      Parsed("user u\ntopic #\npattern deny %c/#\n"), "u", "me");
  EXPECT_TRUE(patterned.CanPublish("other/x"));
  EXPECT_FALSE(patterned.CanPublish("me/x"));
}

TEST(ClientAclTest, UserWithoutSectionGetsPatternsOnly) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), "carol", "c1");
  EXPECT_FALSE(acl.CanSubscribe("public/news"));
  EXPECT_TRUE(acl.CanPublish("users/carol/x"));
  EXPECT_TRUE(acl.CanPublish("devices/c1/out"));
}

TEST(ClientAclTest, SysTopicsNeedAnExplicitDollarGrant) {
  const ClientAcl bob = ClientAcl::Compile(Parsed(), "bob smith", "b");
  EXPECT_TRUE(bob.CanSubscribe("$SYS/#"));
  EXPECT_TRUE(bob.CanSubscribe("$SYS/broker/uptime"));
  const ClientAcl all = ClientAcl::Compile(Parsed("topic #\n"), std::nullopt, "x");
  EXPECT_TRUE(all.CanSubscribe("#"));
  EXPECT_FALSE(all.CanSubscribe("$SYS/#"));
  EXPECT_FALSE(all.CanPublish("$SYS/broker/fake"));
}

TEST(ClientAclTest, WildcardOrSlashInSubstitutedValueDeniesEverything) {
  for (const char* id : {"a+", "a#", "x/y"}) {
    const ClientAcl acl = ClientAcl::Compile(Parsed(), "alice", id);
    EXPECT_FALSE(acl.CanPublish("alice/notes")) << id;
    EXPECT_FALSE(acl.CanSubscribe("alice/+")) << id;
  }
  // Without patterns using the value, such an id is harmless.
  const ClientAcl plain = ClientAcl::Compile(Parsed("topic a/#\n"), std::nullopt, "x/y");
  EXPECT_TRUE(plain.CanPublish("a/b"));
}

TEST(ClientAclTest, EmptyFileAllowsNothing) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(""), "alice", "c");
  EXPECT_FALSE(acl.CanPublish("a"));
  EXPECT_FALSE(acl.CanSubscribe("a"));
  EXPECT_FALSE(ClientAcl().CanPublish("a"));
}

}  // namespace
}  // namespace ringmq::auth
