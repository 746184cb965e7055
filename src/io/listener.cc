#include "io/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"

namespace ringmq::io {
namespace {

// Fills `storage` from an address literal; returns the sockaddr length or 0 if not a literal.
socklen_t MakeAddress(const std::string& address, uint16_t port, sockaddr_storage& storage) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return sizeof(sockaddr_in);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return sizeof(sockaddr_in6);
  }
  return 0;
}

}  // namespace

absl::StatusOr<int> OpenListener(const std::string& address, uint16_t port, int backlog) {
  sockaddr_storage storage{};
  const socklen_t length = MakeAddress(address, port, storage);
  if (length == 0) {
    return absl::InvalidArgumentError(absl::StrCat("not an IP address literal: ", address));
  }
  const int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  const int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    const int error_number = errno;
    close(fd);
    return ErrnoStatus(error_number, "setsockopt SO_REUSEPORT");
  }
  // Copied by the kernel to every accepted socket (see listener.h).
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0) {
    const int error_number = errno;
    close(fd);
    return ErrnoStatus(error_number, "setsockopt TCP_NODELAY");
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    const int error_number = errno;
    close(fd);
    return ErrnoStatus(error_number, absl::StrCat("bind ", address, ":", port));
  }
  if (listen(fd, backlog) != 0) {
    const int error_number = errno;
    close(fd);
    return ErrnoStatus(error_number, "listen");
  }
  return fd;
}

std::string PeerAddress(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return "?";
  return AddressName(storage);
}

std::string AddressName(const sockaddr_storage& storage) {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(v4->sin_port));
  }
  // A socket pair's end: the local session of an MQTT bridge (shard/shard_bridge.h).
  if (storage.ss_family == AF_UNIX) return "unix socket";
  if (storage.ss_family != AF_INET6) return "?";
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage);
  inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
  return absl::StrCat("[", text, "]:", ntohs(v6->sin6_port));
}

}  // namespace ringmq::io
