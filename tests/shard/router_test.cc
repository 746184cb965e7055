// Unit tests for the router's cross-shard plumbing (src/shard/router.h): the hand-off of a
// connection to its home shard and the bounded overflow queue in front of a full mailbox.
//
// Both shards of a two-shard broker run on the test's thread (router_harness.h). The test feeds
// connections the bytes a client would send, does what Shard does on a hand-off, and fills the
// mailbox from shard 0 to shard 1 with filler records of its own so that the router's next
// records must wait in (or be dropped from) the overflow queue. The filler is drained by the test
// before the router's records move into the mailbox, so only the router ever sees its own
// records.
#include "shard/router.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "message/message.h"
#include "metrics/counters.h"
#include "mqtt/packet.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "router_harness.h"
#include "shard/mailbox.h"
#include "shard/shared_state.h"

namespace ringmq::shard {
namespace {

using harness::Bytes;
using harness::Client;
using harness::ConnectBytes;
using harness::HarnessShard;
using harness::RouterHarness;

constexpr uint32_t kFillerKind = 0;  // no router record kind is 0

// A connected socket pair: the broker's end and the client's end.
struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    broker = fds[0];
    client = fds[1];
  }
  ~SocketPair() {
    if (client >= 0) close(client);
  }
  // True once the broker's end is closed (the client reads EOF).
  bool ClientSeesEof() const {
    char byte;
    return recv(client, &byte, 1, MSG_DONTWAIT) == 0;
  }
  int broker = -1;  // owned by whoever the test hands it to
  int client = -1;
};

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override { config_.max_connections = 1; }

  void Start() { harness_ = std::make_unique<RouterHarness>(config_, 2); }

  void TearDown() override {
    if (harness_ == nullptr) return;
    harness_->Stop(0);
    DrainFiller();  // whatever the router queued behind the filler is dropped by ~Router
    harness_.reset();
  }

  HarnessShard& shard0() { return harness_->shard(0); }
  HarnessShard& shard1() { return harness_->shard(1); }
  uint64_t now_ms() { return harness_->now_ms(); }

  // A client id whose session lives on `shard`.
  std::string ClientIdOn(uint32_t shard) { return harness_->IdOn(shard, "client"); }

  Mailbox& MailboxTo1() { return harness_->shared().mailboxes.mailbox(0, 1); }

  void FillMailbox() {
    Mailbox& mailbox = MailboxTo1();
    const std::vector<Slot> big(mailbox.max_record_slots(), Slot{kFillerKind, 0, 0});
    while (mailbox.TryPush(big).pushed) {
    }
    const Slot one[] = {Slot{kFillerKind, 0, 0}};
    while (mailbox.TryPush(one).pushed) {
    }
  }

  // Consumes the filler; call only while nothing but filler is in the mailbox.
  void DrainFiller() {
    size_t foreign = 0;
    while (MailboxTo1()
               .Drain(
                   [&](std::span<const Slot> record) {
                     if (record[0].kind != kFillerKind) ++foreign;
                   },
                   1 << 20)
               .more) {
    }
    EXPECT_EQ(foreign, 0u) << "the test drained router records as filler";
  }

  // On shard 0, a connection admitted for a client whose home is shard 1, handed off the way
  // Shard::FlushHandoff does it. The connection's connected-client slot travels with the record.
  void ConnectAndHandOff(SocketPair& socket) {
    net::Connection connection;
    connection.Open(socket.broker, now_ms());
    connection.OnReceive(ConnectBytes(ClientIdOn(1)), now_ms(), shard0().context);
    ASSERT_EQ(connection.state(), net::Connection::State::kHandoff);
    ASSERT_EQ(connected_clients(), 1u);
    shard0().router->Handoff(connection);
    connection.ReleaseForHandoff();
  }

  uint32_t connected_clients() { return harness_->shared().connected_clients.load(); }

  // Publishes `count` QoS 0 messages of `payload_bytes` to topic "t" from a client served on
  // shard 0, which then goes away.
  void PublishFromShard0(int count, size_t payload_bytes) {
    Client& client = harness_->Connect(ClientIdOn(0));
    const Bytes publish =
        harness::PublishBytes("t", std::string(payload_bytes, 'x'), mqtt::QoS::k0);
    for (int i = 0; i < count; ++i) harness_->Send(client, publish);
    harness_->Drop(client);
  }

  Config config_;
  std::unique_ptr<RouterHarness> harness_;
};

// Issue 11: a hand-off dropped at a full overflow closed the socket but kept its
// connected-client slot, so later CONNECTs were refused (0x03) with nobody connected.
TEST_F(RouterTest, DroppedHandoffGivesBackItsConnectedClientSlot) {
  config_.max_mailbox_overflow_bytes = 0;  // no overflow queue: a full mailbox drops
  Start();
  FillMailbox();
  SocketPair socket;
  ConnectAndHandOff(socket);

  EXPECT_EQ(shard0().counters.handoffs_dropped.Load(), 1u);
  EXPECT_EQ(shard0().counters.mailbox_overflow.Load(), 0u) << "counts message records only";
  EXPECT_EQ(shard0().counters.mailbox_full.Load(), 0u);
  EXPECT_EQ(connected_clients(), 0u);
  EXPECT_TRUE(socket.ClientSeesEof());

  // max_connections (1) is exact again: the next client is admitted, not refused with 0x03.
  SocketPair next;
  net::Connection connection;
  connection.Open(next.broker, now_ms());
  connection.OnReceive(ConnectBytes(ClientIdOn(1)), now_ms(), shard0().context);
  EXPECT_EQ(connection.state(), net::Connection::State::kHandoff);
  EXPECT_EQ(shard0().counters.connect[static_cast<size_t>(connect::Reason::kAccepted)].Load(), 2u);
  EXPECT_EQ(connected_clients(), 1u);
  close(next.broker);
}

TEST_F(RouterTest, HandoffWaitsInOverflowAndReachesItsHomeShard) {
  Start();
  FillMailbox();
  SocketPair socket;
  ConnectAndHandOff(socket);
  EXPECT_EQ(shard0().counters.mailbox_full.Load(), 1u);
  EXPECT_GT(shard0().counters.gauges.mailbox_overflow_bytes.Load(), 0);
  EXPECT_EQ(connected_clients(), 1u);  // held by the record

  DrainFiller();
  shard0().router->Flush();
  EXPECT_EQ(shard0().counters.gauges.mailbox_overflow_bytes.Load(), 0);
  shard0().router->RingDoorbells();
  EXPECT_EQ(shard0().services.rung, std::vector<uint32_t>{1});

  EXPECT_FALSE(shard1().router->DrainMailboxes());
  ASSERT_EQ(shard1().services.adopted.size(), 1u);
  EXPECT_EQ(shard1().services.adopted[0].first, socket.broker);
  EXPECT_EQ(shard1().services.adopted[0].second.size(), ConnectBytes(ClientIdOn(1)).size());
  EXPECT_EQ(connected_clients(), 1u);  // now the adopter's
  EXPECT_EQ(shard0().counters.handoffs_dropped.Load(), 0u);
  close(socket.broker);
}

TEST_F(RouterTest, HandoffStillQueuedAtShutdownGivesBackItsSlot) {
  Start();
  FillMailbox();
  SocketPair socket;
  ConnectAndHandOff(socket);
  ASSERT_EQ(shard0().counters.mailbox_full.Load(), 1u);
  harness_->Stop(0);  // the broker stops with the record still waiting
  EXPECT_EQ(connected_clients(), 0u);
  EXPECT_TRUE(socket.ClientSeesEof());
}

// A shard drains only the mailboxes that were signalled: the sender signals in RingDoorbells,
// after the push that found the mailbox empty, before the doorbell.
TEST_F(RouterTest, MailboxIsDrainedOnlyOnceSignalled) {
  Start();
  SocketPair socket;
  ConnectAndHandOff(socket);  // in mailbox (0, 1), not yet signalled
  EXPECT_FALSE(shard1().router->DrainMailboxes());
  EXPECT_EQ(shard1().router->drained_records(), 0u);
  EXPECT_TRUE(shard1().services.adopted.empty());

  shard0().router->RingDoorbells();
  EXPECT_EQ(shard0().services.rung, std::vector<uint32_t>{1});
  EXPECT_FALSE(shard1().router->DrainMailboxes());
  EXPECT_EQ(shard1().router->drained_records(), 1u);
  ASSERT_EQ(shard1().services.adopted.size(), 1u);
  EXPECT_EQ(shard1().services.adopted[0].first, socket.broker);
  EXPECT_FALSE(shard1().router->DrainMailboxes());  // the signal was taken
  EXPECT_EQ(shard1().router->drained_records(), 0u);
  close(socket.broker);
}

// A drain that stops at its per-mailbox budget keeps the source pending: the rest is drained on
// the next call although no new signal came (the sender signals only the empty-to-non-empty
// edge, which it does not see again while records wait).
TEST_F(RouterTest, MailboxLeftAtTheDrainBudgetIsDrainedWithoutANewSignal) {
  Start();
  constexpr uint32_t kFenceRequestKind = 4;  // answered with one reply record to shard 0
  constexpr size_t kRecords = 5000;          // more than one drain's budget (4096)
  const Slot request[] = {Slot{kFenceRequestKind, 0, 0}};
  for (size_t i = 0; i < kRecords; ++i) ASSERT_TRUE(MailboxTo1().TryPush(request).pushed);
  harness_->shared().mailboxes.Signal(0, 1);
  EXPECT_TRUE(shard1().router->DrainMailboxes());
  const size_t first = shard1().router->drained_records();
  EXPECT_LT(first, kRecords);
  EXPECT_FALSE(shard1().router->DrainMailboxes());
  EXPECT_EQ(first + shard1().router->drained_records(), kRecords);
  EXPECT_EQ(harness_->shared().mailboxes.TakeSignals(1, 0), 0u);
}

TEST_F(RouterTest, HandoffInAMailboxNeverDrainedGivesBackItsSlot) {
  Start();
  SocketPair socket;
  ConnectAndHandOff(socket);  // the mailbox has room: the record is in it
  EXPECT_EQ(shard0().counters.mailbox_full.Load(), 0u);
  harness_->Stop(1);  // shard 1 stopped before draining it
  EXPECT_EQ(connected_clients(), 0u);
  EXPECT_TRUE(socket.ClientSeesEof());
}

// The overflow is bounded by bytes, messages included: five 10 KiB messages do not fit in
// 32 KiB however few records they are.
TEST_F(RouterTest, OverflowIsBoundedByTheBytesItHolds) {
  config_.max_mailbox_overflow_bytes = 32 * 1024;
  Start();
  harness_->shared().trie.Subscribe("t", sub::Subscriber{1, 0, 0, 0});
  FillMailbox();
  PublishFromShard0(5, 10 * 1024);
  EXPECT_EQ(shard0().counters.mailbox_full.Load(), 3u);
  EXPECT_EQ(shard0().counters.mailbox_overflow.Load(), 2u);
  const int64_t held = shard0().counters.gauges.mailbox_overflow_bytes.Load();
  EXPECT_GT(held, 3 * 10 * 1024);
  EXPECT_LE(held, 32 * 1024);

  DrainFiller();
  shard0().router->Flush();
  EXPECT_EQ(shard0().counters.gauges.mailbox_overflow_bytes.Load(), 0);
  shard0().router->RingDoorbells();                 // signals shard 1's mailbox from shard 0
  EXPECT_FALSE(shard1().router->DrainMailboxes());  // no such session there: dropped on delivery
}

// A message for many subscribers on one shard travels as several records; its bytes are charged
// once, not once per record.
TEST_F(RouterTest, OverflowChargesAMessageOncePerDestination) {
  config_.max_mailbox_overflow_bytes = 32 * 1024;
  Start();
  for (uint32_t session = 0; session < 200; ++session) {
    harness_->shared().trie.Subscribe("t", sub::Subscriber{1, session, 0, 0});
  }
  FillMailbox();
  PublishFromShard0(1, 10 * 1024);
  EXPECT_EQ(shard0().counters.mailbox_full.Load(), 4u);  // 200 handles: 63 + 63 + 63 + 11
  EXPECT_EQ(shard0().counters.mailbox_overflow.Load(), 0u);
  EXPECT_LT(shard0().counters.gauges.mailbox_overflow_bytes.Load(), 2 * 10 * 1024);
}

std::atomic<int> messages_freed{0};
void CountFree(const message::Message*) { messages_freed.fetch_add(1); }

// A mailbox record's deliveries share its references (message::MessageRefBatch): each queued
// delivery holds one until acknowledged, and a handle that delivers nothing (its session is
// gone) gives its reference back with the record. 70 subscribers and a stale handle travel as
// two records (63 + 8 handles).
TEST_F(RouterTest, RecordReferencesLastUntilTheLastQueuedDeliveryIsAcknowledged) {
  config_.max_connections = 100;
  Start();
  std::vector<Client*> subscribers;
  for (int i = 0; i < 70; ++i) {
    Client& subscriber = harness_->Connect(harness_->IdOn(1, "sub" + std::to_string(i)));
    harness_->Subscribe(subscriber, "t", mqtt::QoS::k1);
    subscriber.auto_ack = false;
    subscribers.push_back(&subscriber);
  }
  harness_->shared().trie.Subscribe("t", sub::Subscriber{1, 5000, 0, 1});  // no such session
  Client& publisher = harness_->Connect(harness_->IdOn(0, "pub"));
  messages_freed = 0;
  message::Message::SetFreeHookForTesting(&CountFree);

  harness_->Send(publisher, harness::PublishBytes("t", "m", mqtt::QoS::k1, 1));
  harness_->Settle();
  EXPECT_EQ(publisher.Received(mqtt::PacketType::kPuback), 1u);
  for (const Client* subscriber : subscribers) ASSERT_EQ(subscriber->publishes_by_qos[1], 1u);
  EXPECT_EQ(messages_freed, 0) << "70 deliveries in flight hold it";
  for (Client* subscriber : subscribers) {
    EXPECT_EQ(messages_freed, 0);
    harness_->Send(*subscriber, mqtt::Puback{1});  // each session's first packet id
  }
  EXPECT_EQ(messages_freed, 1) << "freed with the last acknowledgement, once";
  message::Message::SetFreeHookForTesting(nullptr);
}

}  // namespace
}  // namespace ringmq::shard
