#include "io/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace ringmq::io {
namespace {

uint16_t PortOf(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  return ntohs(address.sin_port);
}

// The shard does not set TCP_NODELAY per accepted socket: it relies on the listener's setting
// being copied to every socket accept returns.
TEST(Listener, AcceptedSocketsInheritTcpNodelay) {
  absl::StatusOr<int> listener = OpenListener("127.0.0.1", 0, 16);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(PortOf(*listener));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const int accepted = accept4(*listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  int nodelay = 0;
  socklen_t length = sizeof(nodelay);
  ASSERT_EQ(getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &nodelay, &length), 0);
  EXPECT_NE(nodelay, 0);
  close(accepted);
  close(client);
  close(*listener);
}

TEST(Listener, PeerAddressNamesTheClient) {
  absl::StatusOr<int> listener = OpenListener("127.0.0.1", 0, 16);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(PortOf(*listener));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const int accepted = accept4(*listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  EXPECT_EQ(PeerAddress(accepted), "127.0.0.1:" + std::to_string(PortOf(client)));
  EXPECT_EQ(PeerAddress(-1), "?");
  close(accepted);
  close(client);
  close(*listener);
}

}  // namespace
}  // namespace ringmq::io
