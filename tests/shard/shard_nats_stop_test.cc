// tidy3 lane: the cluster's NATS link sockets at a shard's stop (shard.cc, CloseNatsSocket and
// AwaitNatsSockets; docs/cluster.md, "At stop"). A real shard loop with a cluster configured
// connects its two links (main and share) to a TCP listener the test plays the NATS server
// with; the server never sends INFO, so the links stay in their handshake. When the shard has
// stopped, every descriptor it made is closed: the process holds as many as before the shard
// (a socket left to the process's exit would show as one more).
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

constexpr int kNatsStopWaitMs = 10'000;  // every wait of these tests is bounded by this

// The next connection on `listener` within kNatsStopWaitMs, or -1.
int AcceptLink(int listener) {
  pollfd entry{.fd = listener, .events = POLLIN, .revents = 0};
  if (poll(&entry, 1, kNatsStopWaitMs) != 1) return -1;
  return accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

// True once `fd`'s peer ended the connection (recv returns 0), within kNatsStopWaitMs.
bool PeerEnded(int fd) {
  char byte = 0;
  for (;;) {
    pollfd entry{.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&entry, 1, kNatsStopWaitMs) != 1) return false;
    const ssize_t got = recv(fd, &byte, 1, 0);
    if (got <= 0) return got == 0;
  }
}

// One shard whose cluster links connect to 127.0.0.1:`nats_port`, on its own thread.
class NatsStopShard : public ring_test::ShardThread {
 public:
  explicit NatsStopShard(uint16_t nats_port) {
    config_.sys_interval_s = 0;
    config_.cluster_nats_urls = {"nats://127.0.0.1:" + std::to_string(nats_port)};
    config_.cluster_node_name = "stoptest";
    shared_.cluster_node_name = "stoptest";
  }
};

TEST(NatsLinkStopTest, ConnectedLinkSocketsAreClosedBeforeTheShardEnds) {
  const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(server, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(server, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(server, 16), 0);
  const int baseline = OpenDescriptors();
  int links[2] = {-1, -1};
  {
    NatsStopShard shard(testutil::PortOf(server));
    std::string why;
    if (!shard.Start(why)) {
      close(server);
      if (!why.empty()) GTEST_SKIP() << "kernel feature missing: " << why;
      FAIL() << "the shard did not start";
    }
    // The main link and the share link (shard_share_link.cc), each waiting for INFO.
    links[0] = AcceptLink(server);
    links[1] = AcceptLink(server);
    ASSERT_GE(links[0], 0);
    ASSERT_GE(links[1], 0);
    EXPECT_EQ(shard.StopAndRelease(), 0u) << "ringmq_stop_sockets_unclosed_total";
  }
  // The shard is gone: a socket of its links not closed by now would stay open until exit.
  EXPECT_EQ(OpenDescriptors(), baseline + 2)
      << "the test's two accepted sockets, and nothing the shard made";
  for (const int link : links) {
    EXPECT_TRUE(PeerEnded(link)) << "the link's end of the connection is closed";
    close(link);
  }
  close(server);
}

// The links' sockets still being made when the loop ends are waited for after it
// (Shard::AwaitNatsSockets), at most Shard::kStopSocketWaitMs; those not made by then are
// counted (ringmq_stop_sockets_unclosed_total) and the shard ends. Shard::SetSocketGateForTesting
// holds every IORING_OP_SOCKET behind a read of a pipe the test never writes.
TEST(NatsLinkStopTest, StopWaitsForLinkSocketsBeingMadeAtMostTheBound) {
  int gate[2] = {-1, -1};
  ASSERT_EQ(pipe2(gate, O_CLOEXEC), 0);
  Shard::SetSocketGateForTesting(gate[0]);
  {
    NatsStopShard shard(9);  // never reached: the sockets are not made
    std::string why;
    if (!shard.Start(why)) {
      Shard::SetSocketGateForTesting(-1);
      close(gate[0]);
      close(gate[1]);
      if (!why.empty()) GTEST_SKIP() << "kernel feature missing: " << why;
      FAIL() << "the shard did not start";
    }
    // The first iteration submits both links' sockets (a link starts with no back-off): two
    // more iterations and they are in flight, held by the gate.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (shard.counters().loop_iterations.Load() < 3 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GE(shard.counters().loop_iterations.Load(), 3u);
    const auto stop_begun = std::chrono::steady_clock::now();
    const uint64_t unclosed = shard.StopAndRelease();
    const auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - stop_begun)
                               .count();
    EXPECT_EQ(unclosed, 2u) << "the main link's socket and the share link's";
    EXPECT_GE(waited_ms, Shard::kStopSocketWaitMs - 10);  // MonotonicMs granularity
    EXPECT_LT(waited_ms, Shard::kStopSocketWaitMs + 2'000);
  }
  Shard::SetSocketGateForTesting(-1);
  close(gate[1]);
  close(gate[0]);
}

}  // namespace
}  // namespace ringmq::shard
