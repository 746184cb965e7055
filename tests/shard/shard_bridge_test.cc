// bridgeio lane: a real shard loop (src/shard/shard.h) running one MQTT bridge, its remote
// played by the test with a plain TCP listener. The bridge's sockets are made, connected,
// shut down and closed on the shard's ring (shard_bridge.cc; the strace proof that no socket
// system call is made is tests/integration/test_bridge_ring_io.py): here, every socket an
// attempt made is closed (the process's descriptors come back to the same count across
// accepted, dropped and refused connections), and a clean stop still sends DISCONNECT (MQTT
// 3.1.1 §3.14) before the connection ends, through the ring's send hard-linked to the
// shutdown.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../common/loopback.h"
#include "io/listener.h"
#include "metrics/counters.h"
#include "ringmq/config.h"
#include "shard/shard.h"
#include "shard/shared_state.h"
#include "shard_thread.h"

namespace ringmq::shard {
namespace {

using ring_test::OpenDescriptors;

constexpr int kWaitMs = 10'000;  // every wait of these tests is bounded by this

// Polls `done` for up to kWaitMs.
template <class Fn>
bool Eventually(Fn done) {
  for (int i = 0; i < kWaitMs / 10; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// A blocking TCP listener on 127.0.0.1:`port` (0: any), with SO_REUSEADDR so that the port can
// be listened on again; -1 on failure.
int Listen(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Waits up to kWaitMs for `fd` to be readable.
bool Readable(int fd) {
  pollfd entry{.fd = fd, .events = POLLIN, .revents = 0};
  return poll(&entry, 1, kWaitMs) == 1;
}

// The next connection of `listener` (the bridge's attempt), or -1 within kWaitMs.
int AcceptBridge(int listener) {
  if (!Readable(listener)) return -1;
  return accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

// Bytes of `fd` until the peer ends the connection (or kWaitMs passes: `ended` false).
std::vector<uint8_t> ReadToEnd(int fd, bool& ended) {
  std::vector<uint8_t> bytes;
  ended = false;
  uint8_t buffer[4096];
  while (Readable(fd)) {
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) {
      ended = got == 0;
      break;
    }
    bytes.insert(bytes.end(), buffer, buffer + got);
  }
  return bytes;
}

// One shard with one bridge to 127.0.0.1:`remote_port`, on its own thread.
class BridgeShard : public ring_test::ShardThread {
 public:
  explicit BridgeShard(uint16_t remote_port) {
    config_.sys_interval_s = 0;
    BridgeConfig bridge;
    bridge.name = "ringio";
    bridge.addresses = {"127.0.0.1:" + std::to_string(remote_port)};
    BridgeTopicConfig topic;
    topic.pattern = "t/#";  // out, QoS 0: no SUBSCRIBE to the remote
    bridge.topics = {topic};
    bridge.notifications = false;  // nothing but CONNECT and DISCONNECT on the remote side
    bridge.restart_initial_ms = 10;
    bridge.restart_max_ms = 20;
    config_.bridges.push_back(bridge);
  }

  // Waits up to kWaitMs for the bridge's local side to hold `count` connections.
  bool LocalConnections(int64_t count) const {
    return Eventually([&] { return counters().gauges.bridge_local_connections.Load() == count; });
  }

  metrics::BridgeSnapshot Bridge() const {
    std::vector<metrics::BridgeSnapshot> totals(1);
    shard_->counters().AddBridgesTo(totals);
    return totals[0];
  }
};

// Each attempt's socket is closed through the ring (IORING_OP_SHUTDOWN, then IORING_OP_CLOSE on
// its completion): connections the remote drops, and attempts it refuses, leave no descriptor
// behind. Counted while an attempt waits for its CONNACK (connect_timeout_ms, 10 s), when the
// shard holds exactly one remote socket.
TEST(BridgeRingIoTest, EveryRemoteSocketIsClosedAcrossDropsAndRefusals) {
  int listener = Listen(0);
  ASSERT_GE(listener, 0);
  const uint16_t port = testutil::PortOf(listener);
  BridgeShard shard(port);
  bool started = false;
  shard.StartOrSkip(started);
  if (!started) {
    close(listener);
    return;
  }
  int remote = AcceptBridge(listener);
  ASSERT_GE(remote, 0);
  // The local side (its socket pair) is up before the remote's first attempt (BridgeStep steps
  // the local side first): one connection, served by the shard.
  ASSERT_TRUE(shard.LocalConnections(1));
  const int baseline = OpenDescriptors();
  constexpr int kDrops = 5;
  for (int i = 0; i < kDrops; ++i) {
    close(remote);  // the bridge sees "closed by the peer" and tries again
    remote = AcceptBridge(listener);
    ASSERT_GE(remote, 0) << "attempt " << i;
    EXPECT_TRUE(Eventually([&] { return OpenDescriptors() == baseline; }))
        << "drop " << i << ": " << OpenDescriptors() << " descriptors open, " << baseline
        << " before";
  }
  // Refused attempts (nothing listens): each made a socket that must be closed too.
  close(remote);
  close(listener);
  const uint64_t ended = shard.Bridge().disconnects;
  constexpr uint64_t kRefused = 5;
  ASSERT_TRUE(Eventually([&] { return shard.Bridge().disconnects >= ended + 1 + kRefused; }))
      << shard.Bridge().disconnects;
  listener = Listen(port);
  ASSERT_GE(listener, 0);
  remote = AcceptBridge(listener);
  ASSERT_GE(remote, 0);
  EXPECT_TRUE(Eventually([&] { return OpenDescriptors() == baseline; }))
      << "after refusals: " << OpenDescriptors() << " descriptors open, " << baseline
      << " before";
  EXPECT_EQ(shard.Bridge().connects, 0u);  // no CONNACK was ever sent
  shard.Stop();
  close(remote);
  close(listener);
}

// A clean stop sends DISCONNECT (MQTT-3.14: a normal end, the will is not published) and then
// ends the connection: the ring's send of it is hard-linked to the shutdown and close.
TEST(BridgeRingIoTest, StopSendsDisconnectThenEndsTheConnection_3_14) {
  const int listener = Listen(0);
  ASSERT_GE(listener, 0);
  BridgeShard shard(testutil::PortOf(listener));
  bool started = false;
  shard.StartOrSkip(started);
  if (!started) {
    close(listener);
    return;
  }
  const int remote = AcceptBridge(listener);
  ASSERT_GE(remote, 0);
  uint8_t buffer[512];
  ASSERT_TRUE(Readable(remote));
  ASSERT_GT(recv(remote, buffer, sizeof(buffer), 0), 0);
  EXPECT_EQ(buffer[0], 0x10);  // CONNECT
  const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};  // 3.1.1, accepted
  ASSERT_EQ(send(remote, connack, sizeof(connack), MSG_NOSIGNAL),
            static_cast<ssize_t>(sizeof(connack)));
  ASSERT_TRUE(Eventually([&] { return shard.Bridge().connected == 1; }));
  shard.Stop();
  bool ended = false;
  const std::vector<uint8_t> after = ReadToEnd(remote, ended);
  EXPECT_EQ(after, (std::vector<uint8_t>{0xE0, 0x00}));
  EXPECT_TRUE(ended) << "the connection did not end within " << kWaitMs << " ms";
  close(remote);
  close(listener);
}

// tidy2 lane. A bridge's remote socket still being made when the loop ends is waited for after
// the loop (Shard::AwaitBridgeSockets) and closed: once the shard is gone, the process holds
// the descriptors it held before. Shard::SetSocketGateForTesting holds the socket operation
// behind a read of a pipe in an io-wq worker until the test writes a byte, after the loop's
// end; the wait then runs the ring's deferred work, the socket is made, arrives as stale and
// is closed. (Without the wait this seam's socket is never made: nothing runs the ring's
// deferred work after the loop, and the ring's teardown cancels the operation. The test fails
// when the socket the wait makes is not closed: it did with a close through the ring, linked
// to a shutdown, which the teardown cancelled.)
class SocketGate {
 public:
  SocketGate() {
    EXPECT_EQ(pipe2(fds_, O_CLOEXEC), 0);
    Shard::SetSocketGateForTesting(fds_[0]);
  }
  ~SocketGate() {
    Shard::SetSocketGateForTesting(-1);
    close(fds_[1]);
    close(fds_[0]);
  }
  // Lets the socket operation held behind the gate go on.
  void Open() { EXPECT_EQ(write(fds_[1], "x", 1), 1); }

 private:
  int fds_[2] = {-1, -1};
};

// A started shard with a bridge whose remote side's first socket is held by the gate.
class BridgeSocketGateTest : public testing::Test {
 protected:
  void SetUp() override {
    listener_ = Listen(0);
    ASSERT_GE(listener_, 0);
    descriptors_before_ = OpenDescriptors();
    shard_ = std::make_unique<BridgeShard>(testutil::PortOf(listener_));
    bool started = false;
    shard_->StartOrSkip(started);
    if (!started) {
      if (!IsSkipped()) FAIL() << "the shard did not start";
      return;
    }
    // The local side is up in the iteration that submits the remote side's first socket
    // (BridgeStep steps the local side first), which the gate then holds.
    ASSERT_TRUE(shard_->LocalConnections(1));
  }
  void TearDown() override {
    shard_.reset();
    if (listener_ >= 0) close(listener_);
  }

  SocketGate gate_;  // first: it outlives the shard
  int listener_ = -1;
  int descriptors_before_ = 0;  // the gate's pipe and the listener open
  std::unique_ptr<BridgeShard> shard_;
};

TEST_F(BridgeSocketGateTest, SocketBeingMadeAtStopIsClosedBeforeTheShardEnds) {
  std::thread stop([&] { shard_->Stop(); });
  // The loop ends once the local side's connection is closed (its only connection): the
  // socket is made after that, within the wait that follows the loop.
  EXPECT_TRUE(shard_->LocalConnections(0));
  gate_.Open();
  stop.join();
  EXPECT_EQ(shard_->counters().stop_sockets_unclosed.Load(), 0u);
  shard_.reset();
  EXPECT_TRUE(Eventually([&] { return OpenDescriptors() == descriptors_before_; }))
      << OpenDescriptors() << " descriptors open, " << descriptors_before_ << " before the shard";
}

// The wait after the loop is bounded (Shard::kStopSocketWaitMs): a socket operation that has
// not completed by then is counted (ringmq_stop_sockets_unclosed_total) and the shard ends.
TEST_F(BridgeSocketGateTest, StopWaitsForASocketBeingMadeAtMostTheBound) {
  const auto stop_begun = std::chrono::steady_clock::now();
  shard_->Stop();
  const auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - stop_begun)
                             .count();
  EXPECT_EQ(shard_->counters().stop_sockets_unclosed.Load(), 1u);
  EXPECT_GE(waited_ms, Shard::kStopSocketWaitMs - 10);  // MonotonicMs granularity
  EXPECT_LT(waited_ms, Shard::kStopSocketWaitMs + 2'000);
}

}  // namespace
}  // namespace ringmq::shard
