// The bookkeeping of QoS 1/2 at least once across nodes (shard/cluster_acks.h): the remote
// interest table, the pending messages and the duplicate window, with a fake clock.
#include "shard/cluster_acks.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ringmq::shard {
namespace {

using InterestSlot = RemoteInterest::Slot;
using InterestResult = RemoteInterest::Result;

std::vector<std::string> Matching(const RemoteInterest& table, std::string_view subject) {
  std::vector<InterestSlot> slots;
  table.Match(subject, slots);
  std::vector<std::string> names;
  for (const InterestSlot slot : slots) names.emplace_back(table.name(slot));
  std::sort(names.begin(), names.end());
  return names;
}

using Names = std::vector<std::string>;

TEST(RemoteInterestTest, MatchesNatsWildcardsAcrossLinks) {
  ClusterAckOptions options;
  RemoteInterest table(options);
  EXPECT_EQ(table.Apply("n1.0", 'S', 1, "+a.>\n+a\n", 0), InterestResult::kApplied);
  EXPECT_EQ(table.Apply("n2.0", 'S', 1, "+a.*.c\n+x.y", 0), InterestResult::kApplied);
  EXPECT_EQ(table.Apply("n3.1", 'S', 1, "+*\n", 0), InterestResult::kApplied);
  EXPECT_EQ(Matching(table, "a.b.c"), (Names{"n1.0", "n2.0"}));
  EXPECT_EQ(Matching(table, "a"), (Names{"n1.0", "n3.1"}));  // '>' needs one token or more
  EXPECT_EQ(Matching(table, "a.b"), (Names{"n1.0"}));
  EXPECT_EQ(Matching(table, "x.y"), (Names{"n2.0"}));
  EXPECT_EQ(Matching(table, "x.y.z"), Names{});
  EXPECT_EQ(Matching(table, "q"), (Names{"n3.1"}));
  EXPECT_EQ(table.link_count(), 3u);
  EXPECT_EQ(table.entry_count(), 5u);
}

TEST(RemoteInterestTest, DeltasInOrderAddAndRemove) {
  ClusterAckOptions options;
  RemoteInterest table(options);
  ASSERT_EQ(table.Apply("n1.0", 'S', 4, "", 0), InterestResult::kApplied);  // no interest yet
  EXPECT_EQ(table.Apply("n1.0", 'D', 5, "+t.a\n+t.b\n", 0), InterestResult::kApplied);
  EXPECT_EQ(Matching(table, "t.a"), (Names{"n1.0"}));
  EXPECT_EQ(table.Apply("n1.0", 'D', 6, "-t.a\n", 0), InterestResult::kApplied);
  EXPECT_EQ(Matching(table, "t.a"), Names{});
  EXPECT_EQ(Matching(table, "t.b"), (Names{"n1.0"}));
  EXPECT_EQ(table.Apply("n1.0", 'H', 6, "", 0), InterestResult::kApplied)
      << "heartbeat: last seq 6";
  EXPECT_EQ(table.entry_count(), 1u);
}

TEST(RemoteInterestTest, AGapKeepsAdditionsIgnoresRemovalsUntilTheSnapshot) {
  ClusterAckOptions options;
  RemoteInterest table(options);
  ASSERT_EQ(table.Apply("n1.0", 'S', 1, "+t.a\n", 0), InterestResult::kApplied);
  // Sequence 2 was lost: 3 is a gap. Its addition is kept (more acks asked is safe), its
  // removal is not (fewer would lose messages) until a snapshot says what holds.
  EXPECT_EQ(table.Apply("n1.0", 'D', 3, "+t.b\n-t.a\n", 0), InterestResult::kGap);
  EXPECT_EQ(Matching(table, "t.a"), (Names{"n1.0"}));
  EXPECT_EQ(Matching(table, "t.b"), (Names{"n1.0"}));
  // Still out of sync: the next delta is a gap too, whatever its number.
  EXPECT_EQ(table.Apply("n1.0", 'D', 4, "-t.b\n", 0), InterestResult::kGap);
  EXPECT_EQ(Matching(table, "t.b"), (Names{"n1.0"}));
  // The snapshot replaces everything, in two parts.
  EXPECT_EQ(table.Apply("n1.0", 'S', 5, "+t.c\n", 0), InterestResult::kApplied);
  EXPECT_EQ(table.Apply("n1.0", 's', 6, "+t.d\n", 0), InterestResult::kApplied);
  EXPECT_EQ(Matching(table, "t.a"), Names{});
  EXPECT_EQ(Matching(table, "t.b"), Names{});
  EXPECT_EQ(Matching(table, "t.d"), (Names{"n1.0"}));
  EXPECT_EQ(table.entry_count(), 2u);
  // A heartbeat naming a sequence number we never saw is a gap (the delta was lost).
  EXPECT_EQ(table.Apply("n1.0", 'H', 7, "", 0), InterestResult::kGap);
  // A snapshot part without its first part is a gap.
  EXPECT_EQ(table.Apply("n1.0", 's', 9, "+t.e\n", 0), InterestResult::kGap);
}

TEST(RemoteInterestTest, AnUnknownLinkIsAGapUntilItsSnapshot) {
  ClusterAckOptions options;
  RemoteInterest table(options);
  EXPECT_EQ(table.Apply("n1.0", 'H', 9, "", 0), InterestResult::kGap);
  EXPECT_EQ(table.Apply("n2.0", 'D', 9, "+t\n", 0), InterestResult::kGap);
  EXPECT_EQ(Matching(table, "t"), (Names{"n2.0"})) << "additions of a gap are kept";
}

TEST(RemoteInterestTest, MalformedLinesAreIgnored) {
  ClusterAckOptions options;
  RemoteInterest table(options);
  EXPECT_EQ(table.Apply("n1.0", 'S', 1, "+\n+a..b\n+>.a\n+.a\n+a.\nxa\n\n+ok.>\n", 0),
            InterestResult::kApplied);
  EXPECT_EQ(table.entry_count(), 1u);
  EXPECT_EQ(Matching(table, "ok.1"), (Names{"n1.0"}));
}

TEST(RemoteInterestTest, SilentLinksAreForgottenAndTheirSlotsReused) {
  ClusterAckOptions options;
  options.link_timeout_ms = 1000;
  RemoteInterest table(options);
  table.Apply("n1.0", 'S', 1, "+t\n", 0);
  table.Apply("n2.0", 'S', 1, "+t\n", 500);
  std::vector<InterestSlot> forgotten;
  std::vector<std::string> names;
  table.Expire(999, forgotten, names);
  EXPECT_TRUE(forgotten.empty());
  table.Expire(1000, forgotten, names);
  ASSERT_EQ(forgotten.size(), 1u);
  EXPECT_EQ(names, (Names{"n1.0"}));
  EXPECT_EQ(table.Find("n1.0"), RemoteInterest::kNoSlot);
  EXPECT_EQ(Matching(table, "t"), (Names{"n2.0"}));
  // Our own link was down: everyone counts as heard when it is back.
  table.TouchAll(5000);
  table.Expire(5999, forgotten, names);
  EXPECT_EQ(forgotten.size(), 1u);
  // A new link takes the free slot.
  table.Apply("n3.0", 'S', 1, "+u\n", 5000);
  EXPECT_EQ(table.Find("n3.0"), forgotten[0]);
  EXPECT_EQ(table.link_count(), 2u);
}

TEST(RemoteInterestTest, BoundsOnLinksAndSubjectsAreCounted) {
  ClusterAckOptions options;
  options.links_max = 2;
  options.subjects_max = 3;
  RemoteInterest table(options);
  EXPECT_EQ(table.Apply("n1.0", 'S', 1, "+a\n+b\n", 0), InterestResult::kApplied);
  EXPECT_EQ(table.Apply("n2.0", 'S', 1, "+c\n+d\n", 0), InterestResult::kApplied);
  EXPECT_EQ(table.entry_count(), 3u);
  EXPECT_EQ(table.refused_subjects(), 1u);
  EXPECT_EQ(Matching(table, "d"), Names{}) << "refused: at most once for it";
  EXPECT_EQ(table.Apply("n3.0", 'S', 1, "+e\n", 0), InterestResult::kRefused);
  EXPECT_EQ(table.refused_links(), 1u);
  EXPECT_EQ(table.link_count(), 2u);
  // Room made by a removal is used again.
  EXPECT_EQ(table.Apply("n1.0", 'D', 2, "-a\n+d\n", 0), InterestResult::kApplied);
  EXPECT_EQ(Matching(table, "d"), (Names{"n1.0"}));
}

// Groups (shared subscriptions): a queue name announced by several links is one acknowledger.
TEST(RemoteInterestTest, QueueLinesMakeOneGroupSlotAcrossMemberLinks) {
  ClusterAckOptions options;
  RemoteInterest table(options);
  table.Apply("n1.0", 'S', 1, "+a.b\n+q g-a t.>\n+q g-a t\n", 0);
  table.Apply("n2.0", 'S', 1, "+q g-a t.>\n+q g-a t\n", 0);
  const InterestSlot group = table.FindGroup("g-a");
  ASSERT_NE(group, RemoteInterest::kNoSlot);
  EXPECT_TRUE(RemoteInterest::IsGroup(group));
  EXPECT_FALSE(RemoteInterest::IsGroup(table.Find("n1.0")));
  EXPECT_EQ(table.group_name(group), "g-a");
  EXPECT_EQ(table.group_count(), 1u);
  std::vector<InterestSlot> slots;
  table.Match("t.x", slots);
  EXPECT_EQ(slots, (std::vector<InterestSlot>{group})) << "one slot for both members, no link slot";
  table.Match("a.b", slots);
  EXPECT_EQ(slots, (std::vector<InterestSlot>{table.Find("n1.0")}));
  // One member leaves: the group stays; the last one leaves: forgotten once.
  table.Apply("n1.0", 'D', 2, "-q g-a t.>\n-q g-a t\n", 0);
  std::vector<InterestSlot> forgotten;
  std::vector<std::string> names;
  table.TakeForgottenGroups(forgotten, names);
  EXPECT_TRUE(forgotten.empty());
  table.Match("t", slots);
  EXPECT_EQ(slots, (std::vector<InterestSlot>{group}));
  table.Apply("n2.0", 'D', 2, "-q g-a t.>\n-q g-a t\n", 0);
  table.TakeForgottenGroups(forgotten, names);
  EXPECT_EQ(forgotten, (std::vector<InterestSlot>{group}));
  EXPECT_EQ(names, (Names{"g-a"}));
  EXPECT_EQ(table.FindGroup("g-a"), RemoteInterest::kNoSlot);
  table.Match("t.x", slots);
  EXPECT_TRUE(slots.empty());
  forgotten.clear();
  table.TakeForgottenGroups(forgotten, names);
  EXPECT_TRUE(forgotten.empty()) << "handed back once";
}

TEST(RemoteInterestTest, AGroupIsForgottenWithItsLastSilentMemberLink) {
  ClusterAckOptions options;
  options.link_timeout_ms = 1000;
  RemoteInterest table(options);
  table.Apply("n1.0", 'S', 1, "+q g-a t\n", 0);
  table.Apply("n2.0", 'S', 1, "+q g-a t\n", 500);
  const InterestSlot group = table.FindGroup("g-a");
  std::vector<InterestSlot> forgotten;
  std::vector<std::string> names;
  table.Expire(1000, forgotten, names);
  EXPECT_EQ(names, (Names{"n1.0"}));
  forgotten.clear();
  table.TakeForgottenGroups(forgotten, names);
  EXPECT_TRUE(forgotten.empty()) << "n2.0 still serves it";
  table.Expire(1500, forgotten, names);
  forgotten.clear();
  names.clear();
  table.TakeForgottenGroups(forgotten, names);
  EXPECT_EQ(forgotten, (std::vector<InterestSlot>{group}));
  // A snapshot that keeps the group (cleared, then added again) forgets nothing.
  table.Apply("n3.0", 'S', 1, "+q h-b u\n", 2000);
  table.Apply("n3.0", 'S', 2, "+q h-b u\n", 2000);
  forgotten.clear();
  table.TakeForgottenGroups(forgotten, names);
  EXPECT_TRUE(forgotten.empty());
  EXPECT_NE(table.FindGroup("h-b"), RemoteInterest::kNoSlot);
}

TEST(RemoteInterestTest, GroupsOnlyAndMalformedQueueLinesAndTheGroupBound) {
  ClusterAckOptions options;
  options.groups_max = 1;
  RemoteInterest table(options);
  // A link of this node: only its queue lines count.
  table.Apply("self.1", 'S', 1, "+a\n+q g-a t\n", 0, /*groups_only=*/true);
  EXPECT_EQ(table.entry_count(), 1u);
  std::vector<InterestSlot> slots;
  table.Match("a", slots);
  EXPECT_TRUE(slots.empty());
  // Malformed: no subject, a queue with '.', an empty queue, a bad subject.
  table.Apply("n1.0", 'S', 1, "+q g\n+q g.x t\n+q  t\n+q g-a t..u\n", 0);
  EXPECT_EQ(table.entry_count(), 1u);
  // groups_max = 1: another queue is refused and counted; the known one is accepted.
  table.Apply("n1.0", 'D', 2, "+q h-b t\n+q g-a t\n", 0);
  EXPECT_EQ(table.group_count(), 1u);
  EXPECT_EQ(table.refused_subjects(), 1u);
  EXPECT_EQ(table.entry_count(), 2u);
}

message::MessageRef Message(std::string_view payload) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(payload.data());
  return message::MessageRef::Create("t", std::span<const uint8_t>(bytes, payload.size()), 1,
                                     false);
}

TEST(PendingAcksTest, CompleteOnceEveryLinkAcked) {
  ClusterAckOptions options;
  PendingAcks pending(options, 100);
  const std::vector<InterestSlot> links = {3, 7};
  const uint64_t id = pending.Add(Message("hello"), links, 0);
  EXPECT_EQ(id, 100u);
  EXPECT_EQ(pending.live(), 1u);
  EXPECT_EQ(pending.bytes(), 5u);
  EXPECT_FALSE(pending.complete(id));
  EXPECT_FALSE(pending.Ack(id, 3));
  EXPECT_FALSE(pending.Ack(id, 3)) << "an ack repeated counts once";
  EXPECT_FALSE(pending.Ack(id, 9)) << "not expected from that link";
  EXPECT_FALSE(pending.Ack(999, 7)) << "unknown id";
  EXPECT_TRUE(pending.Ack(id, 7));
  EXPECT_TRUE(pending.complete(id));
  EXPECT_EQ(pending.live(), 0u);
  EXPECT_EQ(pending.bytes(), 0u);
  EXPECT_EQ(pending.span(), 0u);
  EXPECT_EQ(pending.Add(Message("x"), links, 0), 101u) << "ids only grow";
}

TEST(PendingAcksTest, RetransmitsTheMissingLinksWhenDue) {
  ClusterAckOptions options;
  options.retransmit_ms = 100;
  PendingAcks pending(options, 1);
  const std::vector<InterestSlot> two = {1, 2};
  const std::vector<InterestSlot> one = {2};
  const uint64_t first = pending.Add(Message("a"), two, 0);
  const uint64_t second = pending.Add(Message("b"), one, 50);
  pending.Ack(first, 1);
  std::vector<std::pair<uint64_t, InterestSlot>> sent;
  const auto record = [&](PendingAcks::Entry& entry, InterestSlot slot) {
    sent.emplace_back(entry.id, slot);
    return true;
  };
  size_t given_up = 0;
  EXPECT_EQ(pending.Retransmit(99, record, &given_up), 0u);
  EXPECT_EQ(pending.Retransmit(100, record, &given_up), 1u);
  EXPECT_EQ(sent, (std::vector<std::pair<uint64_t, InterestSlot>>{{first, 2}}));
  EXPECT_EQ(pending.next_deadline_ms(), 150u) << "the second is due next";
  EXPECT_EQ(pending.Retransmit(150, record, &given_up), 1u);
  EXPECT_EQ(sent.back(), (std::pair<uint64_t, InterestSlot>{second, 2}));
  EXPECT_EQ(pending.Retransmit(199, record, &given_up), 0u);
  // The link reconnected: everything is due at once.
  pending.DueNow(160);
  EXPECT_EQ(pending.Retransmit(160, record, &given_up), 2u);
  EXPECT_EQ(given_up, 0u);
  // A message that can never be sent to a link again gives that link up.
  pending.DueNow(170);
  const auto refuse_first = [&](PendingAcks::Entry& entry, InterestSlot) {
    return entry.id != first;
  };
  EXPECT_EQ(pending.Retransmit(170, refuse_first, &given_up), 1u);
  EXPECT_EQ(given_up, 1u);
  EXPECT_TRUE(pending.complete(first));
  EXPECT_FALSE(pending.complete(second));
  EXPECT_EQ(pending.span(), 1u);
  // Dropped: refused by the link for good when first sent.
  pending.Drop(second);
  EXPECT_TRUE(pending.complete(second));
  EXPECT_EQ(pending.live(), 0u);
}

TEST(PendingAcksTest, AForgottenLinkReleasesWhatWaitedOnlyForIt) {
  ClusterAckOptions options;
  PendingAcks pending(options, 1);
  const std::vector<InterestSlot> both = {1, 2};
  const std::vector<InterestSlot> one = {1};
  const uint64_t a = pending.Add(Message("a"), both, 0);
  const uint64_t b = pending.Add(Message("b"), one, 0);
  EXPECT_EQ(pending.Forget(1), 1u);
  EXPECT_FALSE(pending.complete(a)) << "still waits for link 2";
  EXPECT_TRUE(pending.complete(b));
  EXPECT_TRUE(pending.Ack(a, 2));
  EXPECT_EQ(pending.span(), 0u);
}

TEST(PendingAcksTest, BoundsHoldBackAndStopTracking) {
  ClusterAckOptions options;
  options.pending_max = 2;  // window() = 4: held back at a span of 3, untracked at 4
  options.pending_bytes_max = 100;
  PendingAcks pending(options, 1);
  const std::vector<InterestSlot> link = {1};
  const uint64_t first = pending.Add(Message("a"), link, 0);
  EXPECT_FALSE(pending.at_bound());
  const uint64_t second = pending.Add(Message("b"), link, 0);
  EXPECT_TRUE(pending.at_bound()) << "pending_max messages";
  EXPECT_FALSE(pending.below_resume());
  pending.Ack(second, 1);  // done, but kept behind the first
  EXPECT_EQ(pending.live(), 1u);
  EXPECT_EQ(pending.span(), 2u);
  const uint64_t third = pending.Add(Message("c"), link, 0);
  EXPECT_TRUE(pending.at_bound()) << "live 2 again";
  pending.Ack(third, 1);
  EXPECT_FALSE(pending.below_resume()) << "span 3 of window 4";
  EXPECT_TRUE(pending.at_bound());
  EXPECT_NE(pending.Add(Message("d"), link, 0), 0u);
  EXPECT_EQ(pending.Add(Message("e"), link, 0), 0u) << "span full: not tracked";
  pending.Ack(first, 1);
  EXPECT_EQ(pending.span(), 1u) << "done ones leave with the front";
  EXPECT_TRUE(pending.below_resume());
  // The byte bound.
  PendingAcks bytes(options, 1);
  bytes.Add(Message(std::string(100, 'x')), link, 0);
  EXPECT_TRUE(bytes.at_bound());
}

TEST(PendingAcksTest, AGroupSlotIsAwaitedAndForgottenLikeALink) {
  ClusterAckOptions options;
  PendingAcks pending(options, 1);
  const InterestSlot group = RemoteInterest::kGroupBit | 0;
  const std::vector<InterestSlot> both = {3, group};
  const uint64_t id = pending.Add(Message("m"), both, 0);
  EXPECT_FALSE(pending.Ack(id, group));
  EXPECT_TRUE(pending.Ack(id, 3));
  const uint64_t id2 = pending.Add(Message("n"), std::vector<InterestSlot>{group}, 0);
  EXPECT_EQ(pending.Forget(group), 1u);
  EXPECT_TRUE(pending.complete(id2));
}

TEST(SeenIdsTest, ForgettingAnOriginForgetsItsGroupWindows) {
  ClusterAckOptions options;
  options.pending_max = 64;
  SeenIds seen(options);
  EXPECT_EQ(seen.Check("$RINGMQ.ack.n1.0", 5), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("$RINGMQ.ack.n1.0\ng-a", 5), SeenIds::Seen::kNew) << "its own window";
  EXPECT_EQ(seen.Check("$RINGMQ.ack.n1.00\ng-a", 5), SeenIds::Seen::kNew);
  seen.Forget("$RINGMQ.ack.n1.0");
  EXPECT_EQ(seen.origin_count(), 1u) << "n1.00's stays";
}

TEST(SeenIdsTest, RepeatsWithinTheWindowAreDuplicates) {
  ClusterAckOptions options;
  options.pending_max = 32;  // window() = 64 ids
  SeenIds seen(options);
  EXPECT_EQ(seen.Check("o", 1000), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("o", 1000), SeenIds::Seen::kDuplicate);
  EXPECT_EQ(seen.Check("o", 1002), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("o", 1001), SeenIds::Seen::kNew) << "out of order, not seen";
  EXPECT_EQ(seen.Check("o", 1001), SeenIds::Seen::kDuplicate);
  EXPECT_EQ(seen.Check("other", 1000), SeenIds::Seen::kNew) << "per origin";
  // Moving up by less than the window keeps the ids still inside it.
  EXPECT_EQ(seen.Check("o", 1063), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("o", 1002), SeenIds::Seen::kDuplicate);
  EXPECT_EQ(seen.Check("o", 1030), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("o", 999), SeenIds::Seen::kUnknown) << "older than the window";
  // A jump (a restarted origin's ids start higher) clears the window.
  EXPECT_EQ(seen.Check("o", 5000), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("o", 4990), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("o", 4990), SeenIds::Seen::kDuplicate);
  seen.Forget("o");
  EXPECT_EQ(seen.Check("o", 4990), SeenIds::Seen::kNew);
}

TEST(SeenIdsTest, SparseIdsClearExactlyTheIdsTheyPass) {
  ClusterAckOptions options;
  options.pending_max = 50;  // window() = 100 ids: not a multiple of 64 bits
  SeenIds seen(options);
  // Every id once, in steps of 1 to 99, against a set of the ids within the window.
  std::set<uint64_t> recorded;
  uint64_t id = 7;
  for (int step = 1; step < 400; ++step) {
    id += static_cast<uint64_t>(step * 37 % 99 + 1);
    ASSERT_EQ(seen.Check("o", id), SeenIds::Seen::kNew) << id;
    recorded.insert(id);
    // Every recorded id still within the window is known, none of the ids between them is.
    for (uint64_t probe = id > 99 ? id - 99 : 0; probe < id; ++probe) {
      const bool known = recorded.contains(probe);
      const SeenIds::Seen expected = known ? SeenIds::Seen::kDuplicate : SeenIds::Seen::kNew;
      ASSERT_EQ(seen.Check("o", probe), expected) << probe << " after " << id;
      if (!known) recorded.insert(probe);  // Check recorded it
    }
  }
}

TEST(SeenIdsTest, OriginsBeyondTheBoundAreNotTracked) {
  ClusterAckOptions options;
  options.origins_max = 2;
  SeenIds seen(options);
  EXPECT_EQ(seen.Check("a", 1), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("b", 1), SeenIds::Seen::kNew);
  EXPECT_EQ(seen.Check("c", 1), SeenIds::Seen::kUnknown);
  EXPECT_EQ(seen.Check("c", 1), SeenIds::Seen::kUnknown);
  EXPECT_EQ(seen.origin_count(), 2u);
}

}  // namespace
}  // namespace ringmq::shard
