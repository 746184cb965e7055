#include "shard/retained_fence.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "message/message.h"

namespace ringmq::shard {
namespace {

using message::Message;
using message::MessageRef;
using FenceResult = RetainedFence::RecordResult;

constexpr uint32_t kHere = 1;  // the subscriber's shard
constexpr uint16_t kOther = 0;
constexpr uint16_t kThird = 2;

MessageRef Make(std::string_view topic, uint16_t origin, uint64_t sequence) {
  static const uint8_t kPayload[] = {'p'};
  return MessageRef::Create(topic, kPayload, 1, true,
                            Message::Origin{.shard = origin, .sequence = sequence});
}

bool Superseded(const RetainedFence& fence, const MessageRef& live, uint32_t session,
                uint32_t generation) {
  const RetainedFence::Probe probe = fence.ProbeFor(*live);
  return probe.active() && fence.Superseded(probe, session, generation);
}

std::vector<uint32_t> Requests(RetainedFence& fence) {
  std::vector<uint32_t> origins;
  fence.TakeDueRequests([&](uint32_t origin) { origins.push_back(origin); });
  return origins;
}

TEST(RetainedFenceTest, SameShardAndUnstampedMessagesNeedNoEntry) {
  RetainedFence fence(kHere, 3);
  EXPECT_EQ(fence.Record(5, 1, *Make("t", kHere, 10)), FenceResult::kNotNeeded);
  EXPECT_EQ(fence.Record(5, 1, *Make("t", kOther, 0)), FenceResult::kNotNeeded);
  EXPECT_TRUE(fence.empty());
  EXPECT_TRUE(Requests(fence).empty());
}

TEST(RetainedFenceTest, LiveCopyAndOlderMessagesOfTheTopicAreSuperseded) {
  RetainedFence fence(kHere, 3);
  MessageRef retained = Make("a/b", kOther, 100);
  ASSERT_EQ(fence.Record(5, 1, *retained), FenceResult::kRecorded);
  EXPECT_TRUE(Superseded(fence, retained, 5, 1));                   // the same message, live
  EXPECT_TRUE(Superseded(fence, Make("a/b", kOther, 99), 5, 1));    // older
  EXPECT_FALSE(Superseded(fence, Make("a/b", kOther, 101), 5, 1));  // newer
  EXPECT_FALSE(Superseded(fence, Make("a/c", kOther, 50), 5, 1));   // other topic
  EXPECT_FALSE(Superseded(fence, Make("a/b", kThird, 50), 5, 1));   // other origin
  EXPECT_FALSE(Superseded(fence, Make("a/b", kOther, 50), 6, 1));   // other session
  EXPECT_FALSE(Superseded(fence, Make("a/b", kOther, 50), 5, 2));   // session slot reused
}

TEST(RetainedFenceTest, NoEntryForOriginMeansInactiveProbe) {
  RetainedFence fence(kHere, 3);
  ASSERT_EQ(fence.Record(5, 1, *Make("t", kOther, 100)), FenceResult::kRecorded);
  EXPECT_FALSE(fence.ProbeFor(*Make("t", kThird, 1)).active());
  EXPECT_TRUE(fence.ProbeFor(*Make("t", kOther, 1)).active());
}

TEST(RetainedFenceTest, MessagesAtOrBelowTheArrivedHorizonNeedNoEntry) {
  RetainedFence fence(kHere, 3);
  fence.Arrived(*Make("x", kOther, 40));
  EXPECT_EQ(fence.Record(5, 1, *Make("t", kOther, 40)), FenceResult::kNotNeeded);
  EXPECT_EQ(fence.Record(5, 1, *Make("t", kOther, 12)), FenceResult::kNotNeeded);
  EXPECT_EQ(fence.Record(5, 1, *Make("t", kOther, 41)), FenceResult::kRecorded);
}

TEST(RetainedFenceTest, RequestPerOriginOnceOutstandingAndReplyDropsCoveredEntries) {
  RetainedFence fence(kHere, 3);
  MessageRef a = Make("a", kOther, 10);
  MessageRef b = Make("b", kThird, 7);
  fence.Record(1, 1, *a);
  fence.Record(2, 1, *b);
  EXPECT_EQ(Requests(fence), (std::vector<uint32_t>{kOther, kThird}));
  EXPECT_TRUE(Requests(fence).empty());  // nothing new

  // Recorded after the request to kOther: needs a request of its own, after the reply.
  MessageRef c = Make("c", kOther, 30);
  fence.Record(3, 1, *c);
  EXPECT_TRUE(Requests(fence).empty()) << "one request outstanding per origin";
  EXPECT_EQ(fence.size(), 3u);

  fence.OnReply(kOther, 20);  // kOther had created up to 20 when it answered
  EXPECT_FALSE(Superseded(fence, a, 1, 1)) << "every live copy of a has arrived";
  EXPECT_TRUE(Superseded(fence, c, 3, 1));
  EXPECT_TRUE(Superseded(fence, b, 2, 1));
  EXPECT_EQ(fence.size(), 2u);
  EXPECT_EQ(Requests(fence), (std::vector<uint32_t>{kOther}));

  fence.OnReply(kOther, 31);
  fence.OnReply(kThird, 7);
  EXPECT_TRUE(fence.empty());
  EXPECT_EQ(fence.size(), 0u);
  EXPECT_TRUE(Requests(fence).empty());
  // The replies advanced the horizons.
  EXPECT_EQ(fence.Record(9, 1, *Make("t", kOther, 31)), FenceResult::kNotNeeded);
}

TEST(RetainedFenceTest, ReplyAlsoDropsLaterEntriesItCovers) {
  RetainedFence fence(kHere, 2);
  fence.Record(1, 1, *Make("a", kOther, 10));
  EXPECT_EQ(Requests(fence).size(), 1u);
  fence.Record(2, 1, *Make("b", kOther, 15));  // after the request, but created before the reply
  fence.OnReply(kOther, 20);
  EXPECT_TRUE(fence.empty());
  EXPECT_TRUE(Requests(fence).empty());
}

TEST(RetainedFenceTest, RepeatedSubscriptionKeepsTheHighestSequence) {
  RetainedFence fence(kHere, 2);
  MessageRef first = Make("t", kOther, 10);
  MessageRef second = Make("t", kOther, 20);
  fence.Record(1, 1, *first);
  EXPECT_EQ(Requests(fence).size(), 1u);
  fence.Record(1, 1, *second);
  EXPECT_TRUE(Superseded(fence, Make("t", kOther, 20), 1, 1));
  fence.OnReply(kOther, 12);  // covers the first delivery only: the entry stays at 20
  EXPECT_TRUE(Superseded(fence, Make("t", kOther, 19), 1, 1));
  EXPECT_FALSE(Superseded(fence, Make("t", kOther, 21), 1, 1));
  EXPECT_EQ(Requests(fence).size(), 1u);
  fence.OnReply(kOther, 25);
  EXPECT_TRUE(fence.empty());
}

TEST(RetainedFenceTest, HoldsAReferenceUntilTheEntryIsDropped) {
  RetainedFence fence(kHere, 2);
  MessageRef retained = Make("t", kOther, 10);
  fence.Record(1, 1, *retained);
  EXPECT_GT(retained->references_for_testing(), 1u);
  Requests(fence);
  fence.OnReply(kOther, 10);
  EXPECT_EQ(retained->references_for_testing(), 1u);
}

TEST(RetainedFenceTest, FullWhenMaxEntriesWaitForTheirFence) {
  RetainedFence fence(kHere, 2, /*max_entries=*/2);
  EXPECT_EQ(fence.Record(1, 1, *Make("a", kOther, 10)), FenceResult::kRecorded);
  EXPECT_EQ(fence.Record(1, 1, *Make("a", kOther, 11)), FenceResult::kRecorded);
  EXPECT_EQ(fence.Record(1, 1, *Make("b", kOther, 12)), FenceResult::kFull);
  EXPECT_FALSE(Superseded(fence, Make("b", kOther, 12), 1, 1)) << "not protected";
  EXPECT_EQ(fence.size(), 2u);
  Requests(fence);
  fence.OnReply(kOther, 11);
  EXPECT_EQ(fence.Record(1, 1, *Make("b", kOther, 13)), FenceResult::kRecorded);
}

TEST(RetainedFenceTest, ArrivedOutOfOrderIsAProgrammerError) {
  RetainedFence fence(kHere, 2);
  fence.Arrived(*Make("t", kOther, 5));
  fence.Arrived(*Make("t", kOther, 5));  // one message may come in several records
  EXPECT_DEATH(fence.Arrived(*Make("t", kOther, 4)), "assertion failed");
}

}  // namespace
}  // namespace ringmq::shard
