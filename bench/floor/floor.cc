// ringmq-floor: the floor of what any MQTT server pays per connection on this kernel (issue 12).
//
// What it is for: bench-compare runs the connect and reject scenarios against this server as a
// third "broker", in the same run as ringmq and Mosquitto, and reports both brokers' accepted
// and refused CONNECTs per CPU-second as a ratio of this server's. Whatever a broker spends
// above the floor is its own; the floor itself (accept, socket set-up, the TCP handshake and
// teardown on loopback, the epoll registration, one read, one write, one close) is paid by any
// server that speaks TCP, so a target such as "3x Mosquitto" is only meaningful where Mosquitto
// is well above the floor.
//
// What it does: one thread, one epoll instance (level-triggered), a non-blocking listener with
// TCP_NODELAY (inherited by accepted sockets, as with ringmq's listener). For each connection
// it reads the first packet's fixed header and remaining length (enough framing to find where
// the packet ends), keeps the first bytes of its body to find the protocol level, and at the
// end of that packet writes a fixed CONNACK: 0x00 if the level is 3 or 4, otherwise 0x01 and
// closes at once (so the reject scenario sees a refusal). After an accepted CONNECT it skips
// whole packets and closes on DISCONNECT, on EOF or on any error. The per-connection state is
// a few bytes in a table indexed by file descriptor; nothing is allocated per connection.
//
// What it does not do: no validation of anything beyond the frame lengths (the first packet
// need not even be a CONNECT; no client id, flags, will, user name or password checks), no
// sessions, no keep-alive, no subscriptions, no PUBLISH handling (packets after the CONNECT are
// read and dropped), no shutdown(2) before close, no retry of a short or failed CONNACK write
// (the connection is closed instead: a 4-byte write to a fresh socket does not block). It is a
// measuring stick, not a broker: never expose it to anything but the load generator.
//
// Usage: ringmq-floor [--bind ADDRESS] [--port PORT]   (defaults 127.0.0.1 and 1883; port 0
// lets the kernel choose). Prints the address it listens on, then runs until SIGINT or SIGTERM.
//
// Thread safety: single-threaded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Enough of the CONNECT body to reach the protocol level: a 2-byte name length, the name
// ("MQTT" in 3.1.1, "MQIsdp" in 3.1) and the level byte.
constexpr size_t kHeadBytes = 16;
constexpr uint8_t kDisconnect = 0xE0;
constexpr int kMaxEvents = 256;
constexpr size_t kReadBytes = 4096;

// Where a connection is in the byte stream of its current packet.
enum class Step : uint8_t {
  kType,    // expecting the fixed header's first byte
  kLength,  // inside the remaining-length varint (at most 4 bytes, MQTT-2.2.3)
  kBody,    // skipping the body
};

struct ConnState {
  Step step = Step::kType;
  bool connected = false;  // the first packet (the CONNECT) has been answered
  uint8_t type = 0;
  uint8_t length_bytes = 0;
  uint8_t head_size = 0;
  uint32_t length = 0;      // remaining length being decoded
  uint32_t remaining = 0;   // body bytes still to skip
  uint8_t head[kHeadBytes];
};

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

[[noreturn]] void Usage(const char* why) {
  if (why != nullptr) std::fprintf(stderr, "ringmq-floor: %s\n", why);
  std::fprintf(why == nullptr ? stdout : stderr,
               "usage: ringmq-floor [--bind ADDRESS] [--port PORT]   (127.0.0.1, 1883)\n");
  std::exit(why == nullptr ? 0 : 2);
}

// The protocol level of a CONNECT body's first bytes, or -1 if they are too short to hold it.
int ProtocolLevel(const ConnState& c) {
  if (c.head_size < 2) return -1;
  const size_t name_size = (size_t{c.head[0]} << 8) | c.head[1];
  const size_t at = 2 + name_size;
  return at < c.head_size ? c.head[at] : -1;
}

class FloorServer {
 public:
  FloorServer(int listen_fd, int epoll_fd) : listen_fd_(listen_fd), epoll_fd_(epoll_fd) {}

  void Run() {
    epoll_event events[kMaxEvents];
    while (g_stop == 0) {
      const int n = epoll_wait(epoll_fd_, events, kMaxEvents, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::fprintf(stderr, "ringmq-floor: epoll_wait: %s\n", std::strerror(errno));
        return;
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == listen_fd_) {
          AcceptAll();
        } else {
          OnReadable(fd);
        }
      }
    }
  }

 private:
  void AcceptAll() {
    for (;;) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        // EAGAIN: drained. Anything else (EMFILE, ECONNABORTED, ...): try again on the next
        // readiness rather than spin.
        return;
      }
      if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(static_cast<size_t>(fd) + 1);
      conns_[static_cast<size_t>(fd)] = ConnState{};
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) close(fd);
    }
  }

  void OnReadable(int fd) {
    uint8_t buffer[kReadBytes];
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0 || !Consume(fd, conns_[static_cast<size_t>(fd)], buffer, static_cast<size_t>(n))) {
      close(fd);  // also removes it from the epoll set (no other descriptor refers to it)
    }
  }

  // Walks the bytes through the framing state machine. Returns false to close.
  bool Consume(int fd, ConnState& c, const uint8_t* p, size_t n) {
    size_t i = 0;
    while (i < n) {
      switch (c.step) {
        case Step::kType:
          c.type = p[i++];
          if (c.connected && c.type == kDisconnect) return false;
          c.step = Step::kLength;
          c.length = 0;
          c.length_bytes = 0;
          break;
        case Step::kLength: {
          const uint8_t b = p[i++];
          c.length |= uint32_t{b & 0x7Fu} << (7 * c.length_bytes);
          if (++c.length_bytes > 4) return false;  // malformed remaining length
          if ((b & 0x80) != 0) break;
          c.remaining = c.length;
          c.head_size = 0;
          c.step = Step::kBody;
          if (c.remaining == 0 && !EndOfPacket(fd, c)) return false;
          break;
        }
        case Step::kBody: {
          const size_t take = std::min<size_t>(c.remaining, n - i);
          if (!c.connected) {
            const size_t keep = std::min(take, kHeadBytes - c.head_size);
            std::memcpy(c.head + c.head_size, p + i, keep);
            c.head_size = static_cast<uint8_t>(c.head_size + keep);
          }
          i += take;
          c.remaining -= static_cast<uint32_t>(take);
          if (c.remaining == 0 && !EndOfPacket(fd, c)) return false;
          break;
        }
      }
    }
    return true;
  }

  // A whole packet has been read. Returns false to close.
  bool EndOfPacket(int fd, ConnState& c) {
    c.step = Step::kType;
    if (c.connected) return true;  // anything after the CONNECT but DISCONNECT is dropped
    const int level = ProtocolLevel(c);
    const bool accept = level == 3 || level == 4;
    const uint8_t connack[4] = {0x20, 0x02, 0x00, static_cast<uint8_t>(accept ? 0x00 : 0x01)};
    if (send(fd, connack, sizeof connack, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof connack)) {
      return false;
    }
    c.connected = true;
    return accept;  // a refusal closes right after its CONNACK (MQTT-3.2.2-5)
  }

  int listen_fd_;
  int epoll_fd_;
  std::vector<ConnState> conns_;  // indexed by file descriptor
};

}  // namespace

int main(int argc, char** argv) {
  std::string bind_address = "127.0.0.1";
  long port = 1883;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") Usage(nullptr);
    if (i + 1 >= argc) Usage(("missing value for " + arg).c_str());
    const char* value = argv[++i];
    if (arg == "--bind") {
      bind_address = value;
    } else if (arg == "--port") {
      char* end = nullptr;
      port = std::strtol(value, &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) Usage("--port must be 0..65535");
    } else {
      Usage(("unknown option " + arg).c_str());
    }
  }

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, bind_address.c_str(), &address.sin_addr) != 1) {
    Usage("--bind must be an IPv4 address");
  }
  const int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      bind(listen_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      listen(listen_fd, SOMAXCONN) != 0) {
    std::fprintf(stderr, "ringmq-floor: listen on %s:%ld: %s\n", bind_address.c_str(), port,
                 std::strerror(errno));
    return 1;
  }
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd;
  if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
    std::fprintf(stderr, "ringmq-floor: epoll: %s\n", std::strerror(errno));
    return 1;
  }
  socklen_t address_size = sizeof address;
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&address), &address_size);
  std::printf("ringmq-floor: listening on %s:%u\n", bind_address.c_str(),
              static_cast<unsigned>(ntohs(address.sin_port)));
  std::fflush(stdout);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  FloorServer(listen_fd, epoll_fd).Run();
  return 0;
}
