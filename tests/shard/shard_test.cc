// Tests of a real shard loop (src/shard/shard.h) on its own thread, with the rest of the broker
// played by the test: the other shard of a two-shard broker exists only as a mailbox, a Router
// that the test drains at the end, and a ring fd the test chooses.
#include "shard/shard.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../common/loopback.h"
#include "io/listener.h"
#include "mqtt/codec.h"
#include "mqtt/packet.h"
#include "ringmq/config.h"
#include "router_harness.h"
#include "shard/connection_context.h"
#include "shard/router.h"
#include "shard/shared_state.h"

namespace ringmq::shard {
namespace {

class NoServices final : public ShardServices {
 public:
  void AdoptConnection(HandoffRecord) override { ADD_FAILURE() << "not drained"; }
  void ConnectionDirty(uint32_t) override {}
  void RingDoorbell(uint32_t) override {}
  uint64_t now_ms() const override { return 0; }
  memory::Pressure memory_pressure() const override { return memory::Pressure::kNone; }
};

// Polls `done` for up to 10 s.
template <class Fn>
bool Eventually(Fn done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// The Receive Maximum announced to 5.0 clients (5.0:3.2.2.3.3) never exceeds the QoS 2 ids a
// session keeps awaiting PUBREL: a client within it must not be closed by the session's limit.
TEST(ConnectionContextTest, ReceiveMaximumAtMostMaxInboundQos2Pending_5_0_3_3_4) {
  Config config;
  config.receive_maximum = 1024;
  config.max_inbound_qos2_pending = 100;
  SharedState shared(1);
  metrics::ShardCounters counters;
  net::ConnectionContext context;
  ConfigureConnectionContext(0, config, shared, counters, context);
  EXPECT_EQ(context.receive_maximum, 100);
  config.max_inbound_qos2_pending = 65'535;
  ConfigureConnectionContext(0, config, shared, counters, context);
  EXPECT_EQ(context.receive_maximum, 1024);
}

// A msg_ring doorbell that fails completes on the sender (only failures do: the ring is
// submitted with IOSQE_CQE_SKIP_SUCCESS). It is counted and retried a bounded number of times,
// instead of being ignored until the destination's next tick.
TEST(ShardTest, FailedDoorbellIsCountedAndRetriedBoundedly) {
  Config config;
  config.sys_interval_s = 0;
  SharedState shared(2);
  // Shard 1 exists as a Router only; its "ring" is an eventfd, which msg_ring refuses.
  metrics::ShardCounters counters1;
  net::ConnectionContext context1;
  ConfigureConnectionContext(1, config, shared, counters1, context1);
  NoServices services1;
  auto router1 = std::make_unique<Router>(1, config, shared, counters1, context1, services1);
  const int not_a_ring = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(not_a_ring, 0);
  shared.ring_fds[1].store(not_a_ring);

  absl::StatusOr<int> listener = io::OpenListener("127.0.0.1", 0, 16);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const uint16_t port = testutil::PortOf(*listener);
  absl::StatusOr<std::unique_ptr<Shard>> shard = Shard::Create(0, config, {*listener}, shared);
  ASSERT_TRUE(shard.ok()) << shard.status();
  shared.shard_counters[0] = &(*shard)->counters();
  std::promise<absl::Status> ready;
  std::thread thread([&] {
    (*shard)->Run([&](const absl::Status& status) { ready.set_value(status); }).IgnoreError();
  });
  const absl::Status status = ready.get_future().get();
  if (!status.ok()) {
    thread.join();
    GTEST_SKIP() << "kernel feature missing: " << status;
  }

  // A client whose session lives on shard 1: shard 0 admits it and hands it off, which puts a
  // record in the empty mailbox to shard 1 and rings its doorbell.
  std::string client_id;
  for (int i = 0; client_id.empty(); ++i) {
    if (router1->HomeShard("c" + std::to_string(i)) == 1) client_id = "c" + std::to_string(i);
  }
  const int client = testutil::ConnectToLoopback(port);
  const std::vector<uint8_t> connect = harness::ConnectBytes(client_id);
  ASSERT_EQ(send(client, connect.data(), connect.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(connect.size()));

  const metrics::ShardCounters& counters = (*shard)->counters();
  const uint64_t expected = 1 + DoorbellRetries::kMaxRetries;
  EXPECT_TRUE(Eventually([&] { return counters.doorbell_failures.Load() >= expected; }))
      << "doorbell_failures " << counters.doorbell_failures.Load();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // three ticks: no more retries
  EXPECT_EQ(counters.doorbell_failures.Load(), expected);
  EXPECT_EQ(counters.connections_handed_off.Load(), 1u);

  (*shard)->RequestStop();
  thread.join();
  shard->reset();
  router1.reset();  // drops the hand-off nobody drained: the client sees its socket close
  EXPECT_EQ(shared.connected_clients.load(), 0u);
  char byte;
  EXPECT_EQ(recv(client, &byte, 1, 0), 0);
  close(client);
  close(not_a_ring);
}

}  // namespace
}  // namespace ringmq::shard
