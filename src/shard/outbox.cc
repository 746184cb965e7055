#include "shard/outbox.h"

#include <unistd.h>

#include <utility>

#include "shard/cluster_owner.h"

namespace ringmq::shard {

Outbox::Outbox(uint32_t shard, SharedState& shared, uint64_t overflow_bytes_max,
               metrics::ShardCounters& counters)
    : shard_(shard),
      shared_(shared),
      counters_(counters),
      overflow_bytes_max_(overflow_bytes_max),
      overflow_(shared.shard_count),
      doorbell_due_(shared.shard_count, false) {
  RINGMQ_ASSERT(shard < shared.shard_count);
}

Outbox::~Outbox() {
  // Records that never reached their mailbox still hold message references and hand-off sockets.
  for (const std::unique_ptr<Overflow>& overflow : overflow_) {
    if (overflow == nullptr) continue;
    for (const OverflowRecord& record : overflow->records) DropRecord(record.slots);
  }
}

void Outbox::SendHandoff(uint32_t destination, HandoffRecord moving) {
  auto* handoff = new HandoffRecord(std::move(moving));
  counters_.connections_handed_off.Add();
  const Slot record[] = {Slot{kHandoff, 0, reinterpret_cast<uint64_t>(handoff)}};
  Push(destination, record, sizeof(HandoffRecord) + handoff->bytes.capacity());
}

void Outbox::SendFenceRequest(uint32_t destination) {
  const Slot request[] = {Slot{kFenceRequest, shard_, 0}};
  Push(destination, request, 0);
}

void Outbox::SendFenceReply(uint32_t destination, uint64_t last_sequence) {
  const Slot reply[] = {Slot{kFenceReply, shard_, last_sequence}};
  Push(destination, reply, 0);
}

void Outbox::SendDurable(uint32_t destination, uint64_t sequence) {
  const Slot reply[] = {Slot{kDurable, shard_, sequence}};
  Push(destination, reply, 0);
}

bool Outbox::PushToOverflow(uint32_t destination, std::span<const Slot> record,
                            uint64_t held_bytes) {
  std::unique_ptr<Overflow>& queue = overflow_[destination];
  const uint64_t bytes = sizeof(OverflowRecord) + record.size() * sizeof(Slot) + held_bytes;
  // Fence records are never dropped: at most one request and one reply per shard pair are
  // pending (RetainedFence keeps one request outstanding per origin), and a lost one would
  // keep the requester's entries until the bound.
  const bool fence = record[0].kind == kFenceRequest || record[0].kind == kFenceReply ||
                     record[0].kind == kDurable;
  if (queue == nullptr) queue = std::make_unique<Overflow>();  // first overflow to destination
  Overflow& overflow = *queue;
  if (overflow.bytes + bytes > overflow_bytes_max_ && !fence) {
    DropRecord(record);
    return false;
  }
  counters_.mailbox_full.Add();
  overflow.records.push_back(OverflowRecord{{record.begin(), record.end()}, bytes});
  overflow.bytes += bytes;
  counters_.gauges.mailbox_overflow_bytes.Add(static_cast<int64_t>(bytes));
  return true;
}

void Outbox::DropRecord(std::span<const Slot> record) {
  RINGMQ_ASSERT(!record.empty());
  if (record[0].kind == kMessage) {
    counters_.mailbox_overflow.Add();
    ++dropped_messages_;
    reinterpret_cast<message::Message*>(record[0].value)->Release();
    return;
  }
  // Fence records are only dropped undelivered when the broker stops: nothing to give back.
  if (record[0].kind == kFenceRequest || record[0].kind == kFenceReply ||
      record[0].kind == kDurable) {
    return;
  }
  if (record[0].kind == kClaim) {
    delete reinterpret_cast<ClaimRecord*>(record[0].value);
    counters_.cluster_owner_claims_dropped.Add();
    return;
  }
  RINGMQ_ASSERT(record[0].kind == kHandoff && record.size() == 1);
  const std::unique_ptr<HandoffRecord> handoff(reinterpret_cast<HandoffRecord*>(record[0].value));
  // The client sees its connection close. The record carried the connection's connected-client
  // slot (Connection::ReleaseForHandoff): no connection holds it any more, so it is given back
  // here or never. The per-address count needs nothing: the sending shard gave it back when it
  // let go of the socket, and only an adopting shard counts the socket again.
  close(handoff->fd);
  [[maybe_unused]] const uint32_t before =
      shared_.connected_clients.fetch_sub(1, std::memory_order_relaxed);
  RINGMQ_ASSERT(before > 0);
  shared_.listener_clients[handoff->listener].connected.fetch_sub(1, std::memory_order_relaxed);
  counters_.handoffs_dropped.Add();
  counters_.connections_closed.Add();
}

void Outbox::RetryOverflow() {
  for (uint32_t destination = 0; destination < overflow_.size(); ++destination) {
    if (overflow_[destination] == nullptr) continue;
    Overflow& overflow = *overflow_[destination];
    while (!overflow.records.empty()) {
      const OverflowRecord& record = overflow.records.front();
      const PushResult result =
          shared_.mailboxes.mailbox(shard_, destination).TryPush(record.slots);
      if (!result.pushed) break;
      if (result.was_empty) doorbell_due_[destination] = true;
      overflow.bytes -= record.bytes;
      counters_.gauges.mailbox_overflow_bytes.Add(-static_cast<int64_t>(record.bytes));
      overflow.records.pop_front();
    }
  }
}

}  // namespace ringmq::shard
