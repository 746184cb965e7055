// Unit tests for the router's cross-shard plumbing (src/shard/router.h): the hand-off of a
// connection to its home shard and the bounded overflow queue in front of a full mailbox.
//
// The test plays both shards of a two-shard broker on one thread: it feeds connections the
// bytes a client would send, does what Shard does on a hand-off, and fills the mailbox from
// shard 0 to shard 1 with filler records of its own so that the router's next records must wait
// in (or be dropped from) the overflow queue. The filler is drained by the test before the
// router's records move into the mailbox, so only the router ever sees its own records.
#include "shard/router.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "metrics/counters.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "net/connection.h"
#include "ringmq/config.h"
#include "shard/mailbox.h"
#include "shard/shared_state.h"

namespace ringmq::shard {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t kNowMs = 1'000;
constexpr uint32_t kFillerKind = 0;  // no router record kind is 0

Bytes Encode(const mqtt::Packet& packet) {
  Bytes bytes(mqtt::EncodedSize(packet));
  EXPECT_EQ(mqtt::Encode(packet, bytes), bytes.size());
  return bytes;
}

Bytes ConnectBytes(std::string_view client_id) {
  mqtt::Connect connect;
  connect.protocol_name = "MQTT";
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolLevel::kMqtt311);
  connect.clean_session = true;
  connect.keepalive_s = 60;
  connect.client_id = client_id;
  return Encode(connect);
}

class FakeServices final : public ShardServices {
 public:
  void AdoptConnection(int fd, std::vector<uint8_t> bytes) override {
    adopted.emplace_back(fd, std::move(bytes));
  }
  void ConnectionDirty(uint32_t) override {}
  void RingDoorbell(uint32_t shard) override { rung.push_back(shard); }
  uint64_t now_ms() const override { return kNowMs; }
  memory::Pressure memory_pressure() const override { return memory::Pressure::kNone; }

  std::vector<std::pair<int, Bytes>> adopted;
  std::vector<uint32_t> rung;
};

// One shard's router with what it needs around it.
struct TestShard {
  TestShard(uint32_t index, const Config& config, SharedState& shared) {
    context.policy.max_connections = config.max_connections;
    context.connected_clients = &shared.connected_clients;
    context.shutting_down = &shared.shutting_down;
    context.counters = &counters;
    context.shard_index = index;
    router = std::make_unique<Router>(index, config, shared, counters, context, services);
    context.sink = router.get();
  }
  metrics::ShardCounters counters;
  net::ConnectionContext context;
  FakeServices services;
  std::unique_ptr<Router> router;
};

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

  void Start() {
    shared_ = std::make_unique<SharedState>(2);
    shard0_ = std::make_unique<TestShard>(0, config_, *shared_);
    shard1_ = std::make_unique<TestShard>(1, config_, *shared_);
  }

  void TearDown() override {
    if (shared_ == nullptr) return;
    shard0_.reset();
    DrainFiller();  // whatever the router queued behind the filler is dropped by ~Router
    shard1_.reset();
  }

  // A client id whose session lives on `shard`.
  std::string ClientIdOn(uint32_t shard) {
    for (int i = 0;; ++i) {
      std::string id = "client-" + std::to_string(i);
      if (shard0_->router->HomeShard(id) == shard) return id;
    }
  }

  Mailbox& MailboxTo1() { return shared_->mailboxes.mailbox(0, 1); }

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
    connection.Open(socket.broker, kNowMs);
    connection.OnReceive(ConnectBytes(ClientIdOn(1)), kNowMs, shard0_->context);
    ASSERT_EQ(connection.state(), net::Connection::State::kHandoff);
    ASSERT_EQ(shared_->connected_clients.load(), 1u);
    shard0_->router->Handoff(connection, socket.broker, connection.TakeHandoffBytes());
    connection.ReleaseForHandoff();
  }

  Config config_;
  std::unique_ptr<SharedState> shared_;
  std::unique_ptr<TestShard> shard0_;
  std::unique_ptr<TestShard> shard1_;
};

// Issue 11: a hand-off dropped at a full overflow closed the socket but kept its
// connected-client slot, so later CONNECTs were refused (0x03) with nobody connected.
TEST_F(RouterTest, DroppedHandoffGivesBackItsConnectedClientSlot) {
  config_.max_mailbox_overflow_bytes = 0;  // no overflow queue: a full mailbox drops
  Start();
  FillMailbox();
  SocketPair socket;
  ConnectAndHandOff(socket);

  EXPECT_EQ(shard0_->counters.handoffs_dropped.Load(), 1u);
  EXPECT_EQ(shard0_->counters.mailbox_overflow.Load(), 0u) << "counts message records only";
  EXPECT_EQ(shard0_->counters.mailbox_full.Load(), 0u);
  EXPECT_EQ(shared_->connected_clients.load(), 0u);
  EXPECT_TRUE(socket.ClientSeesEof());

  // max_connections (1) is exact again: the next client is admitted, not refused with 0x03.
  SocketPair next;
  net::Connection connection;
  connection.Open(next.broker, kNowMs);
  connection.OnReceive(ConnectBytes(ClientIdOn(1)), kNowMs, shard0_->context);
  EXPECT_EQ(connection.state(), net::Connection::State::kHandoff);
  EXPECT_EQ(shard0_->counters.connect[static_cast<size_t>(connect::Reason::kAccepted)].Load(), 2u);
  EXPECT_EQ(shared_->connected_clients.load(), 1u);
  close(next.broker);
}

TEST_F(RouterTest, HandoffWaitsInOverflowAndReachesItsHomeShard) {
  Start();
  FillMailbox();
  SocketPair socket;
  ConnectAndHandOff(socket);
  EXPECT_EQ(shard0_->counters.mailbox_full.Load(), 1u);
  EXPECT_GT(shard0_->counters.gauges.mailbox_overflow_bytes.Load(), 0);
  EXPECT_EQ(shared_->connected_clients.load(), 1u);  // held by the record

  DrainFiller();
  shard0_->router->Flush();
  EXPECT_EQ(shard0_->counters.gauges.mailbox_overflow_bytes.Load(), 0);
  shard0_->router->RingDoorbells();
  EXPECT_EQ(shard0_->services.rung, std::vector<uint32_t>{1});

  EXPECT_FALSE(shard1_->router->DrainMailboxes());
  ASSERT_EQ(shard1_->services.adopted.size(), 1u);
  EXPECT_EQ(shard1_->services.adopted[0].first, socket.broker);
  EXPECT_EQ(shard1_->services.adopted[0].second.size(), ConnectBytes(ClientIdOn(1)).size());
  EXPECT_EQ(shared_->connected_clients.load(), 1u);  // now the adopter's
  EXPECT_EQ(shard0_->counters.handoffs_dropped.Load(), 0u);
  close(socket.broker);
}

TEST_F(RouterTest, HandoffStillQueuedAtShutdownGivesBackItsSlot) {
  Start();
  FillMailbox();
  SocketPair socket;
  ConnectAndHandOff(socket);
  ASSERT_EQ(shard0_->counters.mailbox_full.Load(), 1u);
  shard0_.reset();  // the broker stops with the record still waiting
  EXPECT_EQ(shared_->connected_clients.load(), 0u);
  EXPECT_TRUE(socket.ClientSeesEof());
}

// A shard drains only the mailboxes that were signalled: the sender signals in RingDoorbells,
// after the push that found the mailbox empty, before the doorbell.
TEST_F(RouterTest, MailboxIsDrainedOnlyOnceSignalled) {
  Start();
  SocketPair socket;
  ConnectAndHandOff(socket);  // in mailbox (0, 1), not yet signalled
  EXPECT_FALSE(shard1_->router->DrainMailboxes());
  EXPECT_EQ(shard1_->router->drained_records(), 0u);
  EXPECT_TRUE(shard1_->services.adopted.empty());

  shard0_->router->RingDoorbells();
  EXPECT_EQ(shard0_->services.rung, std::vector<uint32_t>{1});
  EXPECT_FALSE(shard1_->router->DrainMailboxes());
  EXPECT_EQ(shard1_->router->drained_records(), 1u);
  ASSERT_EQ(shard1_->services.adopted.size(), 1u);
  EXPECT_EQ(shard1_->services.adopted[0].first, socket.broker);
  EXPECT_FALSE(shard1_->router->DrainMailboxes());  // the signal was taken
  EXPECT_EQ(shard1_->router->drained_records(), 0u);
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
  shared_->mailboxes.Signal(0, 1);
  EXPECT_TRUE(shard1_->router->DrainMailboxes());
  const size_t first = shard1_->router->drained_records();
  EXPECT_LT(first, kRecords);
  EXPECT_FALSE(shard1_->router->DrainMailboxes());
  EXPECT_EQ(first + shard1_->router->drained_records(), kRecords);
  EXPECT_EQ(shared_->mailboxes.TakeSignals(1, 0), 0u);
}

TEST_F(RouterTest, HandoffInAMailboxNeverDrainedGivesBackItsSlot) {
  Start();
  SocketPair socket;
  ConnectAndHandOff(socket);  // the mailbox has room: the record is in it
  EXPECT_EQ(shard0_->counters.mailbox_full.Load(), 0u);
  shard1_.reset();  // shard 1 stopped before draining it
  EXPECT_EQ(shared_->connected_clients.load(), 0u);
  EXPECT_TRUE(socket.ClientSeesEof());
}

// Publishes `count` QoS 0 messages of `payload_bytes` to topic "t" from a client served on
// shard 0.
void PublishFromShard0(TestShard& shard, std::string_view client_id, int count,
                       size_t payload_bytes) {
  SocketPair socket;
  net::Connection connection;
  connection.Open(socket.broker, kNowMs);
  connection.set_tag(0);
  connection.OnReceive(ConnectBytes(client_id), kNowMs, shard.context);
  ASSERT_EQ(connection.state(), net::Connection::State::kOpen);
  const std::string payload(payload_bytes, 'x');
  for (int i = 0; i < count; ++i) {
    mqtt::Publish publish;
    publish.topic = "t";
    publish.payload = payload;
    connection.OnReceive(Encode(publish), kNowMs, shard.context);
  }
  shard.router->OnConnectionClosed(connection);
  connection.OnClosed(shard.context);
  close(socket.broker);
}

// The overflow is bounded by bytes, messages included: five 10 KiB messages do not fit in
// 32 KiB however few records they are.
TEST_F(RouterTest, OverflowIsBoundedByTheBytesItHolds) {
  config_.max_mailbox_overflow_bytes = 32 * 1024;
  Start();
  shared_->trie.Subscribe("t", sub::Subscriber{1, 0, 0, 0});
  FillMailbox();
  PublishFromShard0(*shard0_, ClientIdOn(0), 5, 10 * 1024);
  EXPECT_EQ(shard0_->counters.mailbox_full.Load(), 3u);
  EXPECT_EQ(shard0_->counters.mailbox_overflow.Load(), 2u);
  const int64_t held = shard0_->counters.gauges.mailbox_overflow_bytes.Load();
  EXPECT_GT(held, 3 * 10 * 1024);
  EXPECT_LE(held, 32 * 1024);

  DrainFiller();
  shard0_->router->Flush();
  EXPECT_EQ(shard0_->counters.gauges.mailbox_overflow_bytes.Load(), 0);
  shard0_->router->RingDoorbells();                 // signals shard 1's mailbox from shard 0
  EXPECT_FALSE(shard1_->router->DrainMailboxes());  // no such session there: dropped on delivery
}

// A message for many subscribers on one shard travels as several records; its bytes are charged
// once, not once per record.
TEST_F(RouterTest, OverflowChargesAMessageOncePerDestination) {
  config_.max_mailbox_overflow_bytes = 32 * 1024;
  Start();
  for (uint32_t session = 0; session < 200; ++session) {
    shared_->trie.Subscribe("t", sub::Subscriber{1, session, 0, 0});
  }
  FillMailbox();
  PublishFromShard0(*shard0_, ClientIdOn(0), 1, 10 * 1024);
  EXPECT_EQ(shard0_->counters.mailbox_full.Load(), 4u);  // 200 handles: 63 + 63 + 63 + 11
  EXPECT_EQ(shard0_->counters.mailbox_overflow.Load(), 0u);
  EXPECT_LT(shard0_->counters.gauges.mailbox_overflow_bytes.Load(), 2 * 10 * 1024);
}

}  // namespace
}  // namespace ringmq::shard
