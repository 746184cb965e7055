#include "io/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/loopback.h"
#include "gtest/gtest.h"

namespace ringmq::io {
namespace {

using testutil::PortOf;

// A client socket connected to 127.0.0.1:`port`, and the listener's accepted end of it.
struct Pair {
  int client = -1;
  int accepted = -1;
  ~Pair() {
    if (client >= 0) close(client);
    if (accepted >= 0) close(accepted);
  }
};

void ConnectPair(int listener, Pair& pair) {
  pair.client = testutil::ConnectToLoopback(PortOf(listener));
  ASSERT_GE(pair.client, 0);
  pair.accepted = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(pair.accepted, 0);
}

// The shard does not set TCP_NODELAY per accepted socket: it relies on the listener's setting
// being copied to every socket accept returns.
TEST(Listener, AcceptedSocketsInheritTcpNodelay) {
  absl::StatusOr<int> listener = OpenListener("127.0.0.1", 0, 16);
  ASSERT_TRUE(listener.ok()) << listener.status();
  Pair pair;
  ConnectPair(*listener, pair);
  int nodelay = 0;
  socklen_t length = sizeof(nodelay);
  ASSERT_EQ(getsockopt(pair.accepted, IPPROTO_TCP, TCP_NODELAY, &nodelay, &length), 0);
  EXPECT_NE(nodelay, 0);
  close(*listener);
}

TEST(Listener, PeerAddressNamesTheClient) {
  absl::StatusOr<int> listener = OpenListener("127.0.0.1", 0, 16);
  ASSERT_TRUE(listener.ok()) << listener.status();
  Pair pair;
  ConnectPair(*listener, pair);
  EXPECT_EQ(PeerAddress(pair.accepted), "127.0.0.1:" + std::to_string(PortOf(pair.client)));
  EXPECT_EQ(PeerAddress(-1), "?");
  close(*listener);
}

}  // namespace
}  // namespace ringmq::io
