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

// Subscribe decisions are three-way (auth::ReadScope, docs/auth.md): every topic of the filter
// readable (granted, no per-message check), none (SUBACK 0x80), some (granted, each message
// checked with CanRead).
using enum ReadScope;

TEST(ClientAclTest, AnonymousClientsGetTheRulesBeforeAnyUserLine) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), std::nullopt, "anon-1");
  EXPECT_EQ(acl.ClassifySubscription("public/news"), kAll);
  EXPECT_EQ(acl.ClassifySubscription("public/+/x"), kAll);
  EXPECT_EQ(acl.ClassifySubscription("public/#"), kSome);  // all but public/secret
  EXPECT_EQ(acl.ClassifySubscription("public/secret"), kNone);
  EXPECT_TRUE(acl.CanRead("public/news"));
  EXPECT_FALSE(acl.CanRead("public/secret"));
  EXPECT_FALSE(acl.CanPublish("public/news"));  // read only
  EXPECT_EQ(acl.ClassifySubscription("alice/x"), kNone);
  EXPECT_EQ(acl.ClassifySubscription("#"), kSome);
  // Patterns with %c apply to anonymous clients too; those with %u do not.
  EXPECT_TRUE(acl.CanPublish("devices/anon-1/out"));
  EXPECT_FALSE(acl.CanPublish("users//x"));
}

TEST(ClientAclTest, UserSectionAndPatternsWithSubstitution) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), "alice", "phone");
  EXPECT_TRUE(acl.CanPublish("alice/notes"));
  EXPECT_EQ(acl.ClassifySubscription("alice/notes/+"), kAll);
  EXPECT_EQ(acl.ClassifySubscription("alice/+"), kSome);  // alice/private is denied
  EXPECT_EQ(acl.ClassifySubscription("shared/+"), kAll);
  EXPECT_TRUE(acl.CanPublish("upload/with space"));
  EXPECT_EQ(acl.ClassifySubscription("upload/with space"), kNone);  // write only
  EXPECT_FALSE(acl.CanRead("upload/with space"));
  EXPECT_TRUE(acl.CanPublish("shared/x"));
  EXPECT_FALSE(acl.CanPublish("public/news"));  // anonymous rules are not alice's
  EXPECT_TRUE(acl.CanPublish("devices/phone/out"));
  EXPECT_FALSE(acl.CanPublish("devices/phone/in/x"));  // read only pattern
  EXPECT_EQ(acl.ClassifySubscription("devices/phone/in/#"), kAll);
  EXPECT_EQ(acl.ClassifySubscription("devices/other/in/#"), kNone);  // %c is this client only
  EXPECT_EQ(acl.ClassifySubscription("devices/+/in/x"), kSome);
  EXPECT_TRUE(acl.CanPublish("users/alice/x"));
  EXPECT_FALSE(acl.CanPublish("users/bob/x"));
}

TEST(ClientAclTest, DenyWinsOverEveryGrant) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), "alice", "phone");
  EXPECT_FALSE(acl.CanPublish("alice/private/diary"));
  EXPECT_FALSE(acl.CanPublish("alice/private"));  // '#' includes the parent
  EXPECT_FALSE(acl.CanRead("alice/private/diary"));
  EXPECT_EQ(acl.ClassifySubscription("alice/#"), kSome);  // overlaps the denied subtree
  EXPECT_EQ(acl.ClassifySubscription("alice/+/diary"), kSome);
  EXPECT_EQ(acl.ClassifySubscription("alice/public/#"), kAll);
  EXPECT_EQ(acl.ClassifySubscription("alice/private/+"), kNone);  // inside the denied subtree
  EXPECT_EQ(acl.ClassifySubscription("alice/private"), kNone);
  // A deny from a pattern applies to grants of the user's section too.
  const ClientAcl patterned = ClientAcl::Compile(
      Parsed("user u\ntopic #\npattern deny %c/#\n"), "u", "me");
  EXPECT_TRUE(patterned.CanPublish("other/x"));
  EXPECT_FALSE(patterned.CanPublish("me/x"));
  EXPECT_FALSE(patterned.CanRead("me/x"));
  EXPECT_EQ(patterned.ClassifySubscription("me/#"), kNone);
  EXPECT_EQ(patterned.ClassifySubscription("+/x"), kSome);
}

// The Eclipse Paho 3.1.1 suite's ACL (docs/interop.md): test_subscribe_failure needs 0x80 for
// test/nosubscribe while the other tests subscribe to #, +/+ and /# and must be granted.
TEST(ClientAclTest, PahoSuiteAclRefusesOnlyTheFullyDeniedFilter) {
  const ClientAcl acl = ClientAcl::Compile(
      Parsed("topic readwrite #\ntopic deny test/nosubscribe\n"), std::nullopt, "myclientid");
  EXPECT_EQ(acl.ClassifySubscription("test/nosubscribe"), kNone);
  EXPECT_EQ(acl.ClassifySubscription("#"), kSome);
  EXPECT_EQ(acl.ClassifySubscription("+/+"), kSome);
  EXPECT_EQ(acl.ClassifySubscription("test/#"), kSome);
  EXPECT_EQ(acl.ClassifySubscription("/#"), kAll);  // its first level is empty, not "test"
  EXPECT_EQ(acl.ClassifySubscription("TopicA/#"), kAll);
  EXPECT_TRUE(acl.CanRead("test/other"));
  EXPECT_FALSE(acl.CanRead("test/nosubscribe"));
}

TEST(ClientAclTest, RulesThatOnlyDecideTogetherAreCheckedPerMessage) {
  // Two grants cover a/# only together: not kAll (one grant must cover), not kNone either.
  const ClientAcl union_of_grants =
      ClientAcl::Compile(Parsed("topic read a\ntopic read a/+\n"), std::nullopt, "c");
  EXPECT_EQ(union_of_grants.ClassifySubscription("a/#"), kSome);
  EXPECT_TRUE(union_of_grants.CanRead("a"));
  EXPECT_FALSE(union_of_grants.CanRead("a/b/c"));
  // The deny leaves nothing of a/+ readable, but no single rule says so: every message of it
  // is dropped by the check.
  const ClientAcl deny_eats_grant =
      ClientAcl::Compile(Parsed("topic read a/b\ntopic deny +/b\n"), std::nullopt, "c");
  EXPECT_EQ(deny_eats_grant.ClassifySubscription("a/+"), kSome);
  EXPECT_FALSE(deny_eats_grant.CanRead("a/b"));
}

TEST(ClientAclTest, UserWithoutSectionGetsPatternsOnly) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(), "carol", "c1");
  EXPECT_EQ(acl.ClassifySubscription("public/news"), kNone);
  EXPECT_TRUE(acl.CanPublish("users/carol/x"));
  EXPECT_TRUE(acl.CanPublish("devices/c1/out"));
}

TEST(ClientAclTest, SysTopicsNeedAnExplicitDollarGrant) {
  const ClientAcl bob = ClientAcl::Compile(Parsed(), "bob smith", "b");
  EXPECT_EQ(bob.ClassifySubscription("$SYS/#"), kAll);
  EXPECT_EQ(bob.ClassifySubscription("$SYS/broker/uptime"), kAll);
  const ClientAcl all = ClientAcl::Compile(Parsed("topic #\n"), std::nullopt, "x");
  EXPECT_EQ(all.ClassifySubscription("#"), kAll);
  EXPECT_EQ(all.ClassifySubscription("$SYS/#"), kNone);
  EXPECT_FALSE(all.CanRead("$SYS/broker/uptime"));
  EXPECT_FALSE(all.CanPublish("$SYS/broker/fake"));
}

TEST(ClientAclTest, WildcardOrSlashInSubstitutedValueDeniesEverything) {
  for (const char* id : {"a+", "a#", "x/y"}) {
    const ClientAcl acl = ClientAcl::Compile(Parsed(), "alice", id);
    EXPECT_FALSE(acl.CanPublish("alice/notes")) << id;
    EXPECT_FALSE(acl.CanRead("alice/notes")) << id;
    EXPECT_EQ(acl.ClassifySubscription("alice/+"), kNone) << id;
  }
  // Without patterns using the value, such an id is harmless.
  const ClientAcl plain = ClientAcl::Compile(Parsed("topic a/#\n"), std::nullopt, "x/y");
  EXPECT_TRUE(plain.CanPublish("a/b"));
}

TEST(ClientAclTest, EmptyFileAllowsNothing) {
  const ClientAcl acl = ClientAcl::Compile(Parsed(""), "alice", "c");
  EXPECT_FALSE(acl.CanPublish("a"));
  EXPECT_FALSE(acl.CanRead("a"));
  EXPECT_EQ(acl.ClassifySubscription("a"), kNone);
  EXPECT_EQ(acl.ClassifySubscription("#"), kNone);
  EXPECT_FALSE(ClientAcl().CanPublish("a"));
  EXPECT_EQ(ClientAcl().ClassifySubscription("#"), kNone);
}

}  // namespace
}  // namespace ringmq::auth
