#include "tls/ktls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ringmq::tls {
namespace {

#ifndef TCP_ULP
#define TCP_ULP 31  // linux/tcp.h; older libc headers lack it
#endif

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  const int fd_;
};

}  // namespace

bool KernelTlsAvailable(std::string* detail) {
  // The ULP can only be set on an established TCP socket: a loopback pair is made for it.
  Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listener.get() < 0 ||
      bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    *detail = absl::StrCat("probe not run: loopback socket: ", strerror(errno));
    return false;
  }
  // ::connect, POSIX's: a unity build (scripts/build.sh) can see namespace ringmq::connect here.
  Fd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (client.get() < 0 ||
      ::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    *detail = absl::StrCat("probe not run: loopback connect: ", strerror(errno));
    return false;
  }
  if (setsockopt(client.get(), SOL_TCP, TCP_ULP, "tls", 3) != 0) {
    *detail = errno == ENOENT ? "the kernel has no `tls` module (CONFIG_TLS)"
                              : absl::StrCat("setsockopt(TCP_ULP, tls): ", strerror(errno));
    return false;
  }
  *detail = "the kernel offers the `tls` ULP";
  return true;
}

}  // namespace ringmq::tls
