// A shard's outbox: what it sends other shards, encoded as mailbox records, with a bounded
// overflow queue per destination in front of a full mailbox, and the doorbells due for the
// destinations whose mailbox went from empty to non-empty.
//
// Mailbox records (16-byte slots, shard/mailbox.h):
//   kMessage       aux = handle count, value = Message* (the record owns one reference)
//   kHandle        aux = session index, value = generation << 8 | acl_check << 7 |
//                  options << 6 | rerouted << 3 | shared << 2 | QoS
//   kHandoff       value = HandoffRecord* (the receiver owns and deletes it)
//   kFenceRequest  aux = requesting shard (retained_fence.h)
//   kFenceReply    aux = answering shard, value = its last message sequence number
//   kDurable       aux = answering shard, value = the sequence number of the requester's last
//                  message whose deliveries there are durable (shard/durable.h)
//   kClaim         value = ClaimRecord* (a client-id claim from another node on its way to the
//                  id's home shard; shard/cluster_owner.h). Dropped at the bound like a message
//                  (counted in cluster_owner_claims_dropped): the claimant's connection and this
//                  node's may then both stay, until one of them connects again.
// A message for many subscribers on one shard travels as one kMessage slot followed by up to
// max_record_slots - 1 kHandle slots per record, each record holding one reference.
//
// Overflow: a full mailbox is not waited on. Records wait in a per-destination queue and are
// retried, in order, by RetryOverflow; while any wait, new records to that destination queue
// behind them, so a destination receives a shard's records in the order they were sent. The
// queue is bounded in bytes (max_mailbox_overflow_bytes, per destination): each record's own
// bytes, plus the hand-off's bytes or the message it holds, which is charged once per
// destination, with the first of its records that waits; so at most the message of the record
// at the head of the queue, already uncharged, can exceed the bound, by one message. A record
// beyond the bound is dropped (DropRecord): a message record counts in mailbox_overflow, a
// hand-off record in handoffs_dropped (its socket is closed and its connected-client slot
// given back, so max_connections stays exact). Records still queued when the outbox is
// destroyed are dropped the same way. Fence records are never dropped at the bound (at most one
// each way per shard pair is pending: RetainedFence keeps one request outstanding per origin),
// nor are kDurable records.
//
// Doorbells: a push that finds a destination's mailbox empty makes its doorbell due.
// RingDoorbells signals each due destination's mailbox and then rings it, once per batch
// however many records went out (MailboxMatrix: the signal before the doorbell is what lets the
// destination find the mail). Failed rings are retried by the shard (doorbell_retries.h).
//
// Thread safety: one outbox per shard, used only on that shard's thread; it is the producer of
// the mailboxes from its shard (SPSC per shard pair).
#ifndef RINGMQ_SHARD_OUTBOX_H_
#define RINGMQ_SHARD_OUTBOX_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "common/assert.h"
#include "message/message.h"
#include "metrics/counters.h"
#include "net/transport.h"
#include "shard/mailbox.h"
#include "shard/shared_state.h"
#include "sub/trie.h"

namespace ringmq::shard {

enum RecordKind : uint32_t {
  kMessage = 1,
  kHandle = 2,
  kHandoff = 3,
  kFenceRequest = 4,
  kFenceReply = 5,
  kDurable = 6,
  // Client ids across nodes: value = ClaimRecord* (shard/cluster_owner.h; the receiver owns
  // and deletes it). Apart from the others' numbers so that lanes adding kinds do not collide.
  kClaim = 16,
};
// The low byte of a kHandle value: QoS in bits 0-1, sub::Subscriber::shared in bit 2, in bit 3
// whether the delivery was already re-routed once (a member that cannot keep it does not pass it
// on again), in bit 4 kHandleLastRecord, sub::Subscriber::options in bit 6,
// sub::Subscriber::acl_check in bit 7.
inline constexpr uint64_t kHandleQosMask = 0x03;
inline constexpr uint64_t kHandleShared = 0x04;
inline constexpr uint64_t kHandleRerouted = 0x08;
// Set on the first handle of a message's last record for a destination: the receiving shard
// then has all of the message's deliveries (persistence confirms it only from there).
inline constexpr uint64_t kHandleLastRecord = 0x10;
inline constexpr uint64_t kHandleOptions = 0x40;
inline constexpr uint64_t kHandleAclCheck = 0x80;

// A connection on its way to its home shard: the socket, the MQTT bytes read from it so far,
// its transport (null for plain TCP: a TLS session or WebSocket state moves with the socket)
// and the listener that accepted it.
struct HandoffRecord {
  int fd = -1;
  std::vector<uint8_t> bytes;
  std::unique_ptr<net::Transport> transport;
  uint8_t listener = 0;
  bool internal = false;  // a bridge's local session (net::Connection::MarkInternal)
};

class Outbox {
 public:
  // `overflow_bytes_max`: max_mailbox_overflow_bytes, the bound of each destination's queue.
  Outbox(uint32_t shard, SharedState& shared, uint64_t overflow_bytes_max,
         metrics::ShardCounters& counters);
  // Drops the records still waiting in the overflow queues (DropRecord).
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Sends `message` to `subscribers`, all on shard `destination`, each at min(its QoS, the
  // message's): ceil(subscribers / (max_record_slots - 1)) records, each holding a reference
  // made here. `rerouted`: a shared-subscription delivery already passed on once (kHandleRerouted).
  // Per PUBLISH and remote shard: kept inline. Returns false if every record was dropped at the
  // overflow bound (nothing of the message reaches `destination`, which will never confirm it
  // durable: persistence must not wait for that).
  bool SendMessage(uint32_t destination, message::Message* message,
                   std::span<const sub::Subscriber> subscribers, bool rerouted = false) {
    RINGMQ_ASSERT(!subscribers.empty());
    Mailbox& mailbox = shared_.mailboxes.mailbox(shard_, destination);
    const size_t per_record = mailbox.max_record_slots() - 1;
    // One reference per record, owned by it until the destination drains it; all made before
    // the first push, in one step.
    message->AddRef(static_cast<uint32_t>((subscribers.size() + per_record - 1) / per_record));
    bool charged = false;
    const uint64_t dropped_before = dropped_messages_;
    size_t records = 0;
    for (size_t start = 0; start < subscribers.size(); start += per_record, ++records) {
      const size_t count = std::min(per_record, subscribers.size() - start);
      record_.clear();
      record_.push_back(
          Slot{kMessage, static_cast<uint32_t>(count), reinterpret_cast<uint64_t>(message)});
      for (size_t i = start; i < start + count; ++i) {
        const sub::Subscriber& subscriber = subscribers[i];
        const uint8_t qos = std::min<uint8_t>(subscriber.qos, message->qos());
        const uint64_t flags = (subscriber.acl_check ? kHandleAclCheck : 0) |
                               (subscriber.options ? kHandleOptions : 0) |
                               (subscriber.shared ? kHandleShared : 0) |
                               (rerouted ? kHandleRerouted : 0);
        const bool last = i == start && start + count == subscribers.size();
        record_.push_back(Slot{kHandle, subscriber.session,
                               (uint64_t{subscriber.generation} << 8) | flags | qos |
                                   (last ? kHandleLastRecord : 0)});
      }
      // The message is charged to the overflow once, with the first of its records that waits
      // there: while that record waits the message is accounted for, and once it has moved on
      // only the record at the head of the queue can hold an uncharged message.
      const bool queued = Push(destination, record_, charged ? 0 : message->wire_bytes());
      charged = charged || queued;
    }
    return dropped_messages_ - dropped_before < records;
  }
  // Moves a connection to shard `destination` (counted in connections_handed_off). The record
  // carries the connection's connected-client slot: dropped, it gives it back.
  void SendHandoff(uint32_t destination, HandoffRecord handoff);
  void SendFenceRequest(uint32_t destination);
  // `last_sequence`: of the last message this shard created.
  void SendFenceReply(uint32_t destination, uint64_t last_sequence);
  // Persistence: `destination`'s messages up to `sequence` are durable here. Never dropped at
  // the bound (like fence records: one per destination per loop iteration at most).
  void SendDurable(uint32_t destination, uint64_t sequence);

  // Pushes one record. `held_bytes`: what the record keeps alive besides its slots (a message,
  // charged with its first record to a destination; a hand-off's bytes), charged while it waits
  // in the overflow. Returns true if the record waits in the overflow queue (false: in the
  // mailbox, or dropped).
  bool Push(uint32_t destination, std::span<const Slot> record, uint64_t held_bytes) {
    RINGMQ_ASSERT(destination < shared_.shard_count && destination != shard_);
    const std::unique_ptr<Overflow>& queue = overflow_[destination];
    if (queue == nullptr || queue->records.empty()) {
      const PushResult result = shared_.mailboxes.mailbox(shard_, destination).TryPush(record);
      if (result.pushed) {
        if (result.was_empty) doorbell_due_[destination] = true;
        return false;
      }
    }
    return PushToOverflow(destination, record, held_bytes);
  }

  // Gives back what an undeliverable record holds (message reference; hand-off socket and
  // connected-client slot) and counts it. For records of this outbox and for records other
  // shards addressed to this one that it will never drain (broker stop).
  void DropRecord(std::span<const Slot> record);

  // Moves waiting records into their mailboxes, in order, as far as there is room. Once per
  // loop iteration.
  void RetryOverflow();

  // Signals and calls ring(destination) for each destination whose mailbox went from empty to
  // non-empty since the last call, once each. Last in the loop iteration.
  template <class Ring>
  void RingDoorbells(Ring&& ring) {
    for (uint32_t destination = 0; destination < doorbell_due_.size(); ++destination) {
      if (!doorbell_due_[destination]) continue;
      doorbell_due_[destination] = false;
      shared_.mailboxes.Signal(shard_, destination);  // before the doorbell: see MailboxMatrix
      ring(destination);
    }
  }

  // Bytes charged by the records waiting for `destination`.
  uint64_t overflow_bytes(uint32_t destination) const {
    return overflow_[destination] == nullptr ? 0 : overflow_[destination]->bytes;
  }
  // Records waiting for `destination`.
  size_t overflow_records(uint32_t destination) const {
    return overflow_[destination] == nullptr ? 0 : overflow_[destination]->records.size();
  }

 private:
  struct OverflowRecord {
    std::vector<Slot> slots;
    uint64_t bytes = 0;  // charged against overflow_bytes_max_
  };
  struct Overflow {
    std::deque<OverflowRecord> records;
    uint64_t bytes = 0;
  };

  // Push's slow path: the mailbox is full, or records already wait (which keeps them in order).
  bool PushToOverflow(uint32_t destination, std::span<const Slot> record, uint64_t held_bytes);

  const uint32_t shard_;
  SharedState& shared_;
  metrics::ShardCounters& counters_;
  const uint64_t overflow_bytes_max_;  // per destination (max_mailbox_overflow_bytes)
  std::vector<Slot> record_;           // scratch for building message records
  uint64_t dropped_messages_ = 0;      // message records DropRecord gave back
  // Index = destination shard; null until a record first waits for it (a deque allocates even
  // when empty, and most of the N - 1 destinations of a large mesh never overflow).
  std::vector<std::unique_ptr<Overflow>> overflow_;
  std::vector<bool> doorbell_due_;  // index = destination; signalled and rung in RingDoorbells
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_OUTBOX_H_
