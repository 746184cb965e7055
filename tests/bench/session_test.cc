// Unit tests of ringmq-bench's persistent subscribers (bench/loadgen/session.h): which option
// sets are refused, which subscribers are persistent, their fixed client ids, and the messages
// an earlier run left in a persistent session.
#include "session.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "sequence.h"

namespace ringmq::bench::session {
namespace {

TEST(SessionOptions, DefaultsAreCleanEverywhere) {
  const SessionOptions s;
  EXPECT_FALSE(Persistent(s, /*mqtt5=*/false));
  EXPECT_FALSE(Persistent(s, /*mqtt5=*/true));
  EXPECT_EQ(CheckSessionOptions(s, /*messaging=*/false, true, true), "");
}

TEST(SessionOptions, CleanSession0Makes311SubscribersPersistent) {
  const SessionOptions s{.clean_session = false, .session_expiry_s = 0};
  EXPECT_TRUE(Persistent(s, false));
  EXPECT_EQ(CheckSessionOptions(s, true, /*any_311=*/true, /*any_5=*/false), "");
}

// 5.0 section 3.1.2.11.2: without a Session Expiry Interval the session ends with the
// connection, whatever Clean Start says.
TEST(SessionOptions, Mqtt5NeedsASessionExpiryInterval) {
  const SessionOptions no_expiry{.clean_session = false, .session_expiry_s = 0};
  EXPECT_FALSE(Persistent(no_expiry, true));
  EXPECT_NE(CheckSessionOptions(no_expiry, true, false, true).find("--session-expiry"),
            std::string::npos);
  const SessionOptions expiry{.clean_session = false, .session_expiry_s = 300};
  EXPECT_TRUE(Persistent(expiry, true));
  EXPECT_EQ(CheckSessionOptions(expiry, true, false, true), "");
  // Clean Start 1 with an expiry: a fresh session each run that still outlives the connection.
  const SessionOptions fresh{.clean_session = true, .session_expiry_s = 300};
  EXPECT_TRUE(Persistent(fresh, true));
  EXPECT_EQ(CheckSessionOptions(fresh, true, false, true), "");
}

TEST(SessionOptions, RefusesHalfPersistentRuns) {
  // Mixed clients with an expiry but Clean Session 1: the 3.1.1 half would be clean.
  const SessionOptions fresh{.clean_session = true, .session_expiry_s = 300};
  EXPECT_NE(CheckSessionOptions(fresh, true, true, true), "");
  // An expiry with 3.1.1 subscribers only says nothing to anyone.
  const SessionOptions both{.clean_session = false, .session_expiry_s = 300};
  EXPECT_NE(CheckSessionOptions(both, true, true, false).find("5.0 subscribers"),
            std::string::npos);
  EXPECT_EQ(CheckSessionOptions(both, true, true, true), "");
}

TEST(SessionOptions, OnlyScenariosWithSubscribers) {
  const SessionOptions s{.clean_session = false, .session_expiry_s = 0};
  EXPECT_NE(CheckSessionOptions(s, /*messaging=*/false, true, false), "");
}

TEST(ClientIds, PersistentIdsAreFixedAcrossProcessesAndThreads) {
  EXPECT_EQ(ClientId("rb", 's', 7, 0, true), "rb-s7");
  EXPECT_EQ(ClientId("rb", 's', 7, 3, true), ClientId("rb", 's', 7, 0, true));
  EXPECT_EQ(ClientId("rb123", 'p', 7, 3, false), "rb123-p7-3");
  EXPECT_NE(ClientId("rb", 's', 7, 0, true), ClientId("rb", 's', 70, 0, true));
}

TEST(StaleMessages, OnlyThoseSentBeforeTheRunOrFromAnotherBoot) {
  const uint64_t start = 1'000'000;
  const uint64_t now = 5'000'000;
  EXPECT_TRUE(PublishedBeforeRun(start - 1, start, now));
  EXPECT_FALSE(PublishedBeforeRun(start, start, now));
  EXPECT_FALSE(PublishedBeforeRun(now, start, now));
  EXPECT_TRUE(PublishedBeforeRun(now + 1, start, now));  // another boot's clock
}

// Stale messages are counted beside the verification, never against it: a QoS 2 run whose
// sessions held an earlier run's messages still verifies.
TEST(StaleMessages, DoNotFailTheJudgement) {
  VerifyCounts counts;
  counts.expected = counts.unique = 100;
  counts.stale = 40;
  std::string why;
  EXPECT_TRUE(Judge(2, counts, &why)) << why;
  counts.duplicated = 1;
  EXPECT_FALSE(Judge(2, counts, &why));
  EXPECT_TRUE(Judge(1, counts, &why));  // QoS 1: duplicates are allowed, only counted
}

}  // namespace
}  // namespace ringmq::bench::session
