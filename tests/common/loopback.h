// Loopback TCP helpers for tests that talk to a real listener on 127.0.0.1.
//
// Thread safety: plain functions on sockets the caller owns.
#ifndef RINGMQ_TESTS_COMMON_LOOPBACK_H_
#define RINGMQ_TESTS_COMMON_LOOPBACK_H_

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

namespace ringmq::testutil {

// The local port of a bound socket (a listener opened on port 0 gets one from the kernel).
inline uint16_t PortOf(int fd) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  return ntohs(address.sin_port);
}

// A new client socket connected to 127.0.0.1:`port`, or -1 (the test has failed).
inline int ConnectToLoopback(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

}  // namespace ringmq::testutil

#endif  // RINGMQ_TESTS_COMMON_LOOPBACK_H_
