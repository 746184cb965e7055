// Keeps a subscriber's retained snapshot and its live stream from another shard consistent:
// no live copy of a message, and no older message of the same topic from the same shard, is
// delivered after the retained message a new subscription got (MQTT-4.3.3 exactly-once,
// MQTT-4.6.0-6 order).
//
// The race. Shard P creates message m (topic t), stores it as retained, matches the trie and
// pushes a live copy to shard S for each of S's subscribers it found. Shard S handles a
// SUBSCRIBE of session X: it inserts X into the trie, then reads the retained store. If P's match
// saw X, the live copy of m (or of an older message on t) can still be in the P→S mailbox when S
// reads m from the store and queues it to X as retained: X would get m twice, or an older
// message after m.
//
// What makes it decidable. Every message carries (origin shard, sequence) from a per-shard
// counter (message/message.h). A shard routes each message right after creating it (OnPublish,
// wills, $SYS), and the P→S mailbox with P's overflow queue in front of it is FIFO, so S
// receives P's messages in sequence order. Same-shard origins need nothing: storing+routing and
// the SUBSCRIBE run on one thread, one before the other. Both arguments assume that a filter's
// trie insert and its whole retained read happen in one call: a read spread over several loop
// iterations would let live copies be delivered before the retained message of their topic is
// read (the reverse order, which this class does not detect).
//
// The rule. When S queues a retained message (origin P ≠ S, sequence x, topic t) to session X
// for a new subscription, it records (X, P, t) → x. A later live delivery to X of a message from
// P on t with sequence ≤ x is the same message or an older one: it is skipped (Superseded).
// Live messages with a higher sequence, other topics and other origins are delivered as usual.
//
// Cleanup. S sends P a fence request after recording entries for P (TakeDueRequests, at most one
// outstanding per origin). P answers through its ordinary push path with its last sequence c,
// so the reply queues behind every record P pushed to S before it. When S drains the reply,
// every live copy from P with sequence ≤ c that will ever arrive has arrived; each entry
// recorded before the request has x ≤ c (m was created, then stored, then read by S, then the
// request was sent, then P answered: a happens-before chain through the store's release/acquire
// and the mailboxes), so it is dropped (OnReply). The same horizon lets Record skip messages no
// live copy of which can still be in flight: S also tracks the highest sequence drained from P
// (Arrived), and a retained message at or below it needs no entry.
//
// Bound. At most `max_entries` recorded deliveries wait for their fence. Beyond it Record
// returns kFull: the retained message is delivered without protection (a duplicate or an older
// live copy may follow; the caller counts it). Entries normally live one mailbox round trip.
//
// What it does not cover. A session that already had a subscription matching t before the new
// one may lose live copies from P on t that were in flight when the new subscription took its
// retained message (they are older than what it just got); it gets that newer message instead.
//
// Thread safety: none. One instance per shard, used only on the shard's thread. Holds a
// reference to each recorded retained message until its entry is dropped.
#ifndef RINGMQ_SHARD_RETAINED_FENCE_H_
#define RINGMQ_SHARD_RETAINED_FENCE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "common/assert.h"
#include "message/message.h"

namespace ringmq::shard {

class RetainedFence {
 public:
  // Recorded deliveries awaiting their fence reply, per shard (about 100 bytes each).
  static constexpr size_t kDefaultMaxEntries = 65'536;

  enum class RecordResult {
    kNotNeeded,  // same shard, unstamped, or no live copy can still be in flight
    kRecorded,
    kFull,  // max_entries reached: not protected
  };

  RetainedFence(uint32_t shard, uint32_t shard_count, size_t max_entries = kDefaultMaxEntries);
  RetainedFence(const RetainedFence&) = delete;
  RetainedFence& operator=(const RetainedFence&) = delete;

  // `retained` was queued to session (session, generation) because of a new subscription.
  RecordResult Record(uint32_t session, uint32_t generation, const message::Message& retained);

  // A message drained from another shard's mailbox (every record, before its deliveries).
  // Advances that origin's horizon; asserts the FIFO order the rule relies on.
  void Arrived(const message::Message& message) {
    const uint16_t origin = message.origin_shard();
    RINGMQ_ASSERT(origin < origins_.size() && origin != shard_);
    Origin& state = origins_[origin];
    RINGMQ_ASSERT(message.sequence() >= state.arrived);  // per-origin FIFO
    state.arrived = message.sequence();
  }

  // What Superseded needs about one live message, computed once per mailbox record.
  class Probe {
   public:
    bool active() const { return active_; }

   private:
    friend class RetainedFence;
    bool active_ = false;
    uint16_t origin_ = 0;
    uint64_t sequence_ = 0;
    uint64_t topic_hash_ = 0;
    std::string_view topic_;
  };
  // Inactive (one branch) unless entries exist for the message's origin.
  Probe ProbeFor(const message::Message& message) const {
    Probe probe;
    if (entry_count_ == 0 || origins_[message.origin_shard()].entries == 0) return probe;
    probe.active_ = true;
    probe.origin_ = message.origin_shard();
    probe.sequence_ = message.sequence();
    probe.topic_ = message.topic();
    probe.topic_hash_ = absl::Hash<std::string_view>{}(probe.topic_);
    return probe;
  }
  // True if the live message of an active `probe` must not be delivered to (session,
  // generation): it is the retained message it got or older.
  bool Superseded(const Probe& probe, uint32_t session, uint32_t generation) const;

  // Calls fn(origin) for each origin whose entries need a fence request sent after them, and
  // marks the request outstanding. fn must push {request} to `origin`.
  template <typename Fn>
  void TakeDueRequests(Fn&& fn) {
    if (!requests_due_) return;
    requests_due_ = false;
    for (uint32_t origin = 0; origin < origins_.size(); ++origin) {
      Origin& state = origins_[origin];
      if (!state.due || state.outstanding) continue;
      state.due = false;
      state.outstanding = true;
      state.covered = state.pending == nullptr ? 0 : state.pending->size();
      fn(origin);
    }
  }

  // The answer of `origin` to our fence request: its last sequence number when it answered.
  void OnReply(uint32_t origin, uint64_t last_sequence);

  size_t size() const { return pending_count_; }
  bool empty() const { return entry_count_ == 0; }

 private:
  struct Key {
    std::string_view topic;  // points into Value::retained
    uint64_t topic_hash;
    uint32_t session;
    uint32_t generation;
    uint16_t origin;

    bool operator==(const Key& other) const {
      return topic_hash == other.topic_hash && session == other.session &&
             generation == other.generation && origin == other.origin && topic == other.topic;
    }
    template <typename H>
    friend H AbslHashValue(H state, const Key& key) {
      return H::combine(std::move(state), key.topic_hash, key.session, key.generation, key.origin);
    }
  };
  struct Value {
    message::MessageRef retained;  // keeps Key::topic alive
    uint64_t sequence;             // highest recorded for the key
  };
  // One recorded delivery, in recording order per origin.
  struct Pending {
    message::MessageRef retained;
    uint32_t session;
    uint32_t generation;
  };
  struct Origin {
    uint64_t arrived = 0;  // highest sequence drained from this origin
    // Null until the first Record from this origin (a deque allocates even when empty, and
    // a shard of a large mesh hears from few origins).
    std::unique_ptr<std::deque<Pending>> pending;
    size_t entries = 0;  // map entries of this origin
    size_t covered = 0;  // pending[0, covered) were recorded before the outstanding request
    bool due = false;    // pending has items recorded after the last request
    bool outstanding = false;
  };

  static Key KeyOf(const Pending& pending);

  const uint32_t shard_;
  const size_t max_entries_;
  std::vector<Origin> origins_;
  absl::flat_hash_map<Key, Value> entries_;
  size_t entry_count_ = 0;    // entries_.size(), read on the hot path
  size_t pending_count_ = 0;  // sum of pending sizes, bounded by max_entries_
  bool requests_due_ = false;
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_RETAINED_FENCE_H_
