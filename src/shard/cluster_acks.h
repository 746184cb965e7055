// The bookkeeping of QoS 1 and 2 at least once across nodes (docs/cluster.md, "QoS 1 and 2
// across nodes"), without I/O: the router glue (router_cluster_acks.cc) feeds it what the
// shard's NATS link received and turns what it decides into NATS publishes and MQTT acks.
//
//   RemoteInterest  the NATS subjects every OTHER link (another node's shard) announced it
//                   subscribes, from its deltas, snapshots and heartbeats: which links must
//                   acknowledge a message on a given subject. Sequence numbers find lost
//                   announcements (the caller then asks that link for a snapshot); a link silent
//                   for longer than the caller's timeout is forgotten.
//   PendingAcks     the messages this shard forwarded that some links have not acknowledged yet,
//                   in id order, with their retransmit time.
//   SeenIds         per origin link, a window of the message ids already received, so that a
//                   retransmitted message is delivered once (QoS 2 exactly once per subscriber).
//
// Announcement payloads (kinds: 'S' first part of a snapshot, 's' a further part, 'D' a delta,
// 'H' a heartbeat carrying the link's last sequence number and no lines): lines "+subject" or
// "-subject" separated by '\n', and for the link's share link's queue subscriptions (shared
// subscriptions, cluster_share.h) "+q <queue> <subject>" / "-q <queue> <subject>" (NATS subjects
// and queue names hold no space, so the forms cannot be confused).
//
// Groups (at least once for shared subscriptions, docs/cluster.md "Shared subscriptions"): a
// queue group is one acknowledger whichever member link NATS gives the message to, so each queue
// name announced by some link gets a group slot, kGroupBit | index, in the same Slot space as
// the links: Match returns the groups whose subjects match beside the links, PendingAcks waits
// for them as for links, and an ack naming the queue (from any member) satisfies it. A group
// lives while some link announces one of its subjects; when the last goes (that link's delta,
// snapshot or forgetting), TakeForgottenGroups hands its slot back once, to be forgotten by
// PendingAcks before the slot is reused.
//
// Bounds: links_max remote links and subjects_max (link, subject) entries in RemoteInterest
// (beyond them announcements are refused and counted: messages on the refused subjects are at
// most once across nodes), groups_max groups (beyond it a queue's entries are refused and
// counted as subjects); PendingAcks is bounded by its caller (at_bound, span) and SeenIds by
// origins_max windows of `window` ids each (window / 8 bytes per origin).
//
// Thread safety: each object is owned by one shard and used only on its thread.
#ifndef RINGMQ_SHARD_CLUSTER_ACKS_H_
#define RINGMQ_SHARD_CLUSTER_ACKS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "message/message.h"
#include "ringmq/config.h"

namespace ringmq::shard {

// Heterogeneous lookup in absl's hash containers takes absl::string_view (Debian's absl has its
// own, not std's).
inline absl::string_view HashKey(std::string_view text) { return {text.data(), text.size()}; }

// The limits and times of the acknowledgement layer (docs/configuration.md, [cluster] ack_*).
struct ClusterAckOptions {
  uint64_t heartbeat_interval_ms = 600;
  // A remote link not heard from for this long (while our own link is up) is forgotten.
  uint64_t link_timeout_ms = 3000;
  // A message not acknowledged by every expected link after this long is sent again to those
  // still missing.
  uint64_t retransmit_ms = 2000;
  size_t links_max = 1024;
  size_t subjects_max = 1'000'000;
  // Queue groups (shared subscriptions) tracked as acknowledgers.
  size_t groups_max = 65536;
  // Messages (and their payload bytes) awaiting acknowledgements per shard: at the bound the
  // publishers are held back, as they are when the span of ids kept (done ones included, until
  // the oldest is done) reaches 3/4 of window(); a message beyond window() is forwarded
  // without an id (at most once, counted), so a receiver's window always covers every id its
  // origin may still send again (hence the same pending_max on every node).
  size_t pending_max = 16384;
  size_t pending_bytes_max = 64 << 20;
  // Origin links a receiver keeps a duplicate window of window() ids for (window() / 8 bytes
  // each).
  size_t origins_max = 1024;
  // Payload bytes of one control message: a snapshot, a delta and the acks to one origin in
  // one loop iteration are sent in parts of about this size.
  size_t announce_bytes_max = 32 << 10;
  size_t window() const { return 2 * pending_max; }
};

// The options from the [cluster] ack_* keys; the rest at their defaults.
ClusterAckOptions ClusterAckOptionsOf(const Config& config);

// Whether NATS subject `subject` matches subscription subject `pattern` is NatsSubjectMatches
// (cluster_interest.h); RemoteInterest answers it for all patterns at once with a token trie.
class RemoteInterest {
 public:
  using Slot = uint32_t;
  enum class Result : uint8_t {
    kApplied,
    kGap,      // a lost announcement (or an unknown link): ask the link for a snapshot
    kRefused,  // links_max reached: the link is not tracked
  };
  explicit RemoteInterest(const ClusterAckOptions& options) : options_(options) {}
  RemoteInterest(const RemoteInterest&) = delete;
  RemoteInterest& operator=(const RemoteInterest&) = delete;

  // An announcement of link `link` (kind 'S', 's', 'D' or 'H'; see the file comment). On a
  // gap the lines are still applied, removals excepted (a link expected too often only waits
  // for an ack or its forgetting; one expected too rarely would lose messages). groups_only:
  // plain lines are ignored (a link of this node: its plain interest is served by the
  // mailboxes, but its share link is picked by NATS like any other).
  Result Apply(std::string_view link, char kind, uint64_t sequence, std::string_view lines,
               uint64_t now_ms, bool groups_only = false);
  // The links and groups whose announced subjects match `subject` (no wildcards), sorted
  // (groups last), each once.
  void Match(std::string_view subject, std::vector<Slot>& out) const;

  // Groups: slots with kGroupBit set.
  static constexpr Slot kGroupBit = 0x8000'0000u;
  static bool IsGroup(Slot slot) { return (slot & kGroupBit) != 0 && slot != kNoSlot; }
  Slot FindGroup(std::string_view queue) const;
  std::string_view group_name(Slot slot) const { return groups_[slot & ~kGroupBit].name; }
  size_t group_count() const { return group_by_name_.size(); }
  // Groups whose last subject went since the last call: their slots (free for reuse from now
  // on) and queue names are appended.
  void TakeForgottenGroups(std::vector<Slot>& forgotten, std::vector<std::string>& names);
  // Links not heard from since now_ms - link_timeout_ms are removed; their slots (free for
  // reuse from now on) and names are appended to `forgotten` and `names`.
  void Expire(uint64_t now_ms, std::vector<Slot>& forgotten, std::vector<std::string>& names);
  // Every link counts as heard now (our own link was down: silence meant nothing).
  void TouchAll(uint64_t now_ms);

  // The slot of a tracked link, or kNoSlot.
  static constexpr Slot kNoSlot = UINT32_MAX;
  static_assert(kNoSlot & kGroupBit);
  Slot Find(std::string_view link) const;
  std::string_view name(Slot slot) const { return links_[slot].name; }
  size_t link_count() const { return by_name_.size(); }
  size_t entry_count() const { return entries_; }
  uint64_t refused_links() const { return refused_links_; }
  uint64_t refused_subjects() const { return refused_subjects_; }

 private:
  struct Node {
    Node* parent = nullptr;
    std::string token;
    absl::flat_hash_map<std::string, std::unique_ptr<Node>> children;
    std::vector<Slot> links;  // links whose subject ends here; groups once per member link
  };
  struct Group {
    std::string name;  // the queue; empty: a free slot
    size_t entries = 0;  // (link, subject) entries naming it
  };
  struct Link {
    std::string name;  // empty: a free slot
    absl::flat_hash_set<std::string> subjects;
    uint64_t next_sequence = 0;
    uint64_t heard_ms = 0;
    bool synced = false;  // a snapshot was applied and no gap seen since
  };
  void Add(Slot slot, std::string_view subject);
  void Remove(Slot slot, std::string_view subject);
  void Clear(Slot slot);
  void ApplyLines(Slot slot, std::string_view lines, bool removals, bool groups_only);
  // The trie slot of a link's entry: the link, or for "q <queue> <subject>" the queue's group
  // (created if `create`; kNoSlot when absent or refused). *subject is set to the subject.
  Slot EntrySlot(Slot link, std::string_view entry, bool create, std::string_view* subject);

  const ClusterAckOptions& options_;
  Node root_;
  std::vector<Link> links_;
  std::vector<Slot> free_slots_;
  absl::flat_hash_map<std::string, Slot> by_name_;
  size_t entries_ = 0;
  std::vector<Group> groups_;
  std::vector<uint32_t> free_groups_;
  absl::flat_hash_map<std::string, uint32_t> group_by_name_;
  std::vector<uint32_t> emptied_groups_;  // entries went to 0 since TakeForgottenGroups
  uint64_t refused_links_ = 0;
  uint64_t refused_subjects_ = 0;
  mutable std::vector<std::string_view> tokens_;               // Match scratch
  mutable std::vector<std::pair<const Node*, size_t>> stack_;  // Match scratch
};

class PendingAcks {
 public:
  using Slot = RemoteInterest::Slot;
  struct Entry {
    uint64_t id = 0;
    message::MessageRef message;  // null once done
    absl::InlinedVector<Slot, 4> missing;
    uint64_t due_ms = 0;
    bool done = false;
  };
  // Ids start at `first_id` (the router passes the wall clock in microseconds, so that a
  // restarted node's ids are above the ones its peers remember).
  PendingAcks(const ClusterAckOptions& options, uint64_t first_id)
      : options_(options), next_id_(first_id), front_id_(first_id) {}

  // A message forwarded to NATS that `links` (non-empty) must acknowledge: its id, or 0 when
  // the span of ids kept is full (then it is not tracked).
  uint64_t Add(message::MessageRef message, std::span<const Slot> links, uint64_t now_ms);
  // `link` acknowledged `id`; returns true if that completed the message.
  bool Ack(uint64_t id, Slot link);
  // `link` was forgotten: it acknowledges nothing any more. Returns the messages it completed.
  size_t Forget(Slot link);
  // Calls fn(entry, slot) for every missing link of every message due for a retransmit, then
  // makes them due again retransmit_ms later. fn returns false when the message can never be
  // sent to that link (too large with the retransmit's header): the link is given up for it.
  // Returns the retransmits; adds the messages that gave up their last link to *completed.
  template <typename Fn>
  size_t Retransmit(uint64_t now_ms, Fn fn, size_t* completed);
  // The message was never sent (the link refused it for good): it is not pending any more.
  void Drop(uint64_t id);
  // Every pending message is due now (the link reconnected).
  void DueNow(uint64_t now_ms);

  // Not pending (any more): done, forgotten, or never tracked.
  bool complete(uint64_t id) const;
  bool at_bound() const {
    return live_ >= options_.pending_max || bytes_ >= options_.pending_bytes_max ||
           entries_.size() * 4 >= options_.window() * 3;
  }
  // Below 3/4 of both bounds: publishers held back may go on.
  bool below_resume() const {
    return live_ * 4 < options_.pending_max * 3 && bytes_ * 4 < options_.pending_bytes_max * 3 &&
           entries_.size() * 2 < options_.window();
  }
  size_t live() const { return live_; }
  size_t bytes() const { return bytes_; }
  size_t span() const { return entries_.size(); }
  uint64_t next_deadline_ms() const { return next_due_ms_; }

 private:
  Entry* Find(uint64_t id);
  void Complete(Entry& entry);
  void PopDone();

  const ClusterAckOptions& options_;
  uint64_t next_id_;
  uint64_t front_id_;  // id of entries_.front()
  std::deque<Entry> entries_;
  size_t live_ = 0;
  size_t bytes_ = 0;
  uint64_t next_due_ms_ = UINT64_MAX;
};

template <typename Fn>
size_t PendingAcks::Retransmit(uint64_t now_ms, Fn fn, size_t* completed) {
  if (now_ms < next_due_ms_) return 0;
  size_t sent = 0;
  next_due_ms_ = UINT64_MAX;
  for (Entry& entry : entries_) {
    if (entry.done || entry.due_ms > now_ms) {
      if (!entry.done) next_due_ms_ = std::min(next_due_ms_, entry.due_ms);
      continue;
    }
    for (size_t i = 0; i < entry.missing.size();) {
      if (fn(entry, entry.missing[i])) {
        ++sent;
        ++i;
      } else {
        entry.missing.erase(entry.missing.begin() + static_cast<ptrdiff_t>(i));
      }
    }
    if (entry.missing.empty()) {
      Complete(entry);
      ++*completed;
      continue;
    }
    entry.due_ms = now_ms + options_.retransmit_ms;
    next_due_ms_ = std::min(next_due_ms_, entry.due_ms);
  }
  PopDone();
  return sent;
}

class SeenIds {
 public:
  explicit SeenIds(const ClusterAckOptions& options) : options_(options) {}
  enum class Seen : uint8_t {
    kNew,        // recorded
    kDuplicate,  // in the window already
    kUnknown,    // older than the window, or no room for another origin: not known
  };
  Seen Check(std::string_view origin, uint64_t id);
  // Forgets `origin`'s window and its groups' ("<origin>\n<queue>", router_cluster_acks.cc).
  void Forget(std::string_view origin);
  size_t origin_count() const { return origins_.size(); }

 private:
  struct Window {
    uint64_t highest = 0;
    std::vector<uint64_t> bits;  // bit id % window: id was seen (for ids within the window)
  };
  const ClusterAckOptions& options_;
  absl::flat_hash_map<std::string, Window> origins_;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_CLUSTER_ACKS_H_
