// Unit tests for a shard's outbox (src/shard/outbox.h): message records, the bounded overflow
// queue in front of a full mailbox, and doorbells.
//
// The outbox is shard 0 of a two-shard SharedState; the test plays shard 1, draining mailbox
// (0, 1) itself. Filler records (kind 0, which no outbox record has) fill the mailbox directly
// so that the outbox's next records must wait in (or be dropped from) its overflow queue.
#include "shard/outbox.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "message/message.h"
#include "metrics/counters.h"
#include "shard/mailbox.h"
#include "shard/shared_state.h"
#include "sub/trie.h"

namespace ringmq::shard {
namespace {

constexpr uint32_t kOutboxFillerKind = 0;
// 64 slots per mailbox (MailboxCapacity's floor): a few records fill it.
constexpr uint64_t kSmallMailboxMemory = 64 * 16 * 2;

std::vector<uint8_t> Payload(size_t size) { return std::vector<uint8_t>(size, 'x'); }

class OutboxTest : public testing::Test {
 protected:
  void Start(uint64_t overflow_bytes_max, uint64_t mailbox_memory = kSmallMailboxMemory) {
    shared_ = std::make_unique<SharedState>(2, 0, retain::RetainedLimits{}, mailbox_memory);
    outbox_ = std::make_unique<Outbox>(0, *shared_, overflow_bytes_max, counters_);
  }
  void TearDown() override {
    outbox_.reset();
    Drain();  // what reached the mailbox: message references are the test's to give back
  }

  Mailbox& MailboxTo1() { return shared_->mailboxes.mailbox(0, 1); }

  void FillMailbox() {
    const Slot one[] = {Slot{kOutboxFillerKind, 0, 0}};
    while (MailboxTo1().TryPush(one).pushed) {
    }
  }

  // Takes every record out of mailbox (0, 1), drops the filler, releases the references the
  // message records hold, and returns the rest in order.
  std::vector<std::vector<Slot>> Drain() {
    std::vector<std::vector<Slot>> records;
    if (shared_ == nullptr) return records;
    while (MailboxTo1()
               .Drain(
                   [&](std::span<const Slot> record) {
                     if (record[0].kind == kOutboxFillerKind) return;
                     records.emplace_back(record.begin(), record.end());
                     if (record[0].kind == kMessage) {
                       reinterpret_cast<message::Message*>(record[0].value)->Release();
                     }
                   },
                   1 << 20)
               .more) {
    }
    return records;
  }

  metrics::ShardCounters counters_;
  std::unique_ptr<SharedState> shared_;
  std::unique_ptr<Outbox> outbox_;
};

// One subscriber per message, so each message is one record of two slots.
bool SendToOne(Outbox& outbox, message::Message* message, uint32_t session) {
  const sub::Subscriber subscriber{1, session, 0, 1};
  return outbox.SendMessage(1, message, std::span<const sub::Subscriber>(&subscriber, 1));
}

TEST_F(OutboxTest, MessageRecordsCarryOneReferenceAndTheHandles) {
  Start(1 << 20, kDefaultMailboxMemoryBytes);
  message::MessageRef message = message::MessageRef::Create("t", Payload(3), /*qos=*/1, false);
  std::vector<sub::Subscriber> subscribers;
  for (uint32_t i = 0; i < 200; ++i) {
    subscribers.push_back(sub::Subscriber{1, i, i + 7, static_cast<uint8_t>(i % 3), i == 5});
  }
  outbox_->SendMessage(1, message.get(), subscribers);
  // 200 handles, at most max_record_slots - 1 = 63 per record: 63 + 63 + 63 + 11.
  EXPECT_EQ(message->references_for_testing(), 1u + 4u);

  const std::vector<std::vector<Slot>> records = Drain();
  ASSERT_EQ(records.size(), 4u);
  uint32_t next = 0;
  for (const std::vector<Slot>& record : records) {
    ASSERT_EQ(record[0].kind, kMessage);
    EXPECT_EQ(record[0].value, reinterpret_cast<uint64_t>(message.get()));
    ASSERT_EQ(record[0].aux + size_t{1}, record.size());
    for (const Slot& handle : std::span<const Slot>(record).subspan(1)) {
      EXPECT_EQ(handle.kind, kHandle);
      EXPECT_EQ(handle.aux, next);
      EXPECT_EQ(handle.value >> 8, next + 7) << "generation";
      // The subscription's QoS, capped at the message's (1).
      EXPECT_EQ(handle.value & kHandleQosMask, next % 3 == 0 ? 0u : 1u);
      EXPECT_EQ((handle.value & kHandleAclCheck) != 0, next == 5);
      ++next;
    }
  }
  EXPECT_EQ(next, 200u);
  EXPECT_EQ(message->references_for_testing(), 1u) << "Drain released the records' references";
}

// A record that finds the mailbox full waits; so does every later record to that destination,
// even once the mailbox has room, so that the destination gets them in the order sent.
TEST_F(OutboxTest, RecordsComeOutInOrderAfterAFullMailbox) {
  Start(1 << 20);
  FillMailbox();
  for (uint64_t i = 0; i < 5; ++i) outbox_->SendFenceReply(1, i);
  EXPECT_EQ(outbox_->overflow_records(1), 5u);
  EXPECT_EQ(counters_.mailbox_full.Load(), 5u);
  EXPECT_TRUE(Drain().empty()) << "only filler reached the mailbox";

  outbox_->SendFenceReply(1, 5);  // the mailbox has room now, but records wait
  EXPECT_EQ(outbox_->overflow_records(1), 6u);
  EXPECT_EQ(counters_.gauges.mailbox_overflow_bytes.Load(),
            static_cast<int64_t>(outbox_->overflow_bytes(1)));

  outbox_->RetryOverflow();
  EXPECT_EQ(outbox_->overflow_records(1), 0u);
  EXPECT_EQ(outbox_->overflow_bytes(1), 0u);
  EXPECT_EQ(counters_.gauges.mailbox_overflow_bytes.Load(), 0);
  const std::vector<std::vector<Slot>> records = Drain();
  ASSERT_EQ(records.size(), 6u);
  for (uint64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(records[i][0].kind, kFenceReply);
    EXPECT_EQ(records[i][0].aux, 0u) << "the answering shard";
    EXPECT_EQ(records[i][0].value, i);
  }
}

// max_mailbox_overflow_bytes: a message record beyond the bound is dropped, counted, and gives
// its reference back; the bytes held stay within the bound.
TEST_F(OutboxTest, OverflowBoundDropsAndCounts) {
  constexpr uint64_t kBound = 1500;  // one 1000-byte message with its record, not two
  Start(kBound);
  message::MessageRef first = message::MessageRef::Create("t", Payload(1000), 0, false);
  message::MessageRef second = message::MessageRef::Create("t", Payload(1000), 0, false);
  FillMailbox();
  // SendMessage says whether anything of the message is on its way (persistence waits for a
  // confirmation of it only then).
  EXPECT_TRUE(SendToOne(*outbox_, first.get(), 1)) << "waits in the overflow queue";
  EXPECT_FALSE(SendToOne(*outbox_, second.get(), 2)) << "dropped";
  EXPECT_EQ(counters_.mailbox_full.Load(), 1u);
  EXPECT_EQ(counters_.mailbox_overflow.Load(), 1u);
  EXPECT_EQ(first->references_for_testing(), 2u) << "held by its waiting record";
  EXPECT_EQ(second->references_for_testing(), 1u) << "the dropped record's reference is back";
  EXPECT_EQ(outbox_->overflow_records(1), 1u);
  EXPECT_GT(outbox_->overflow_bytes(1), first->wire_bytes());
  EXPECT_LE(outbox_->overflow_bytes(1), kBound);

  // Fence records are never dropped at the bound.
  outbox_->SendFenceRequest(1);
  EXPECT_EQ(outbox_->overflow_records(1), 2u);
  EXPECT_EQ(counters_.mailbox_overflow.Load(), 1u);
}

TEST_F(OutboxTest, RecordsStillWaitingAtDestructionAreDropped) {
  Start(1 << 20);
  message::MessageRef message = message::MessageRef::Create("t", Payload(10), 0, false);
  FillMailbox();
  SendToOne(*outbox_, message.get(), 1);
  ASSERT_EQ(message->references_for_testing(), 2u);
  outbox_.reset();
  EXPECT_EQ(message->references_for_testing(), 1u);
  EXPECT_EQ(counters_.mailbox_overflow.Load(), 1u);
}

// A doorbell is due when a push finds the mailbox empty: one per batch, however many records
// follow before the destination drains, and the mailbox's signal is set before the ring.
TEST_F(OutboxTest, DoorbellOncePerBatch) {
  Start(1 << 20);
  std::vector<uint32_t> rung;
  const auto ring = [&](uint32_t destination) {
    EXPECT_NE(shared_->mailboxes.TakeSignals(destination, 0) & 1u, 0u) << "signalled first";
    rung.push_back(destination);
  };
  outbox_->RingDoorbells(ring);
  EXPECT_TRUE(rung.empty()) << "nothing sent";

  for (uint64_t i = 0; i < 10; ++i) outbox_->SendFenceReply(1, i);
  outbox_->RingDoorbells(ring);
  EXPECT_EQ(rung, std::vector<uint32_t>{1});
  outbox_->RingDoorbells(ring);
  EXPECT_EQ(rung.size(), 1u) << "rung once";

  outbox_->SendFenceReply(1, 10);  // the mailbox is not empty: the destination will see it
  outbox_->RingDoorbells(ring);
  EXPECT_EQ(rung.size(), 1u);

  EXPECT_EQ(Drain().size(), 11u);
  outbox_->SendFenceReply(1, 11);  // empty again: a new batch
  outbox_->RingDoorbells(ring);
  EXPECT_EQ(rung, (std::vector<uint32_t>{1, 1}));
}

// Records that waited and reach an empty mailbox in RetryOverflow ring its doorbell too.
TEST_F(OutboxTest, RetriedRecordsRingTheDoorbell) {
  Start(1 << 20);
  FillMailbox();
  outbox_->SendFenceReply(1, 1);
  std::vector<uint32_t> rung;
  const auto ring = [&](uint32_t destination) { rung.push_back(destination); };
  outbox_->RingDoorbells(ring);
  EXPECT_TRUE(rung.empty()) << "nothing reached an empty mailbox";
  Drain();
  outbox_->RetryOverflow();
  outbox_->RingDoorbells(ring);
  EXPECT_EQ(rung, std::vector<uint32_t>{1});
}

}  // namespace
}  // namespace ringmq::shard
