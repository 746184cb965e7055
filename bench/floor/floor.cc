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
// Forwarding mode (--forward): the floor of what any server pays per message at light load
// (bench-compare's pairs-q1-light run). Each connection's bytes are framed into whole packets:
// CONNECT gets CONNACK 0x00; SUBSCRIBE maps each exact topic filter to the subscribing socket
// and gets a SUBACK granting the requested QoS; a PUBLISH's bytes go unchanged (its packet id
// too) to the socket subscribed to its exact topic, and a QoS 1 PUBLISH gets its PUBACK;
// PINGREQ gets PINGRESP; PUBACKs from subscribers are dropped; DISCONNECT closes. Replies and
// forwards are appended to each socket's output and written once per epoll_wait batch (a short
// write waits for EPOLLOUT), so what it pays is an epoll_wait, a recv per readable socket and a
// send per socket written. No wildcards, no sessions, no QoS 2, no retained messages, no
// keep-alive, one subscriber per topic (the last SUBSCRIBE wins): again a measuring stick.
//
// Usage: ringmq-floor [--bind ADDRESS] [--port PORT] [--forward]   (defaults 127.0.0.1 and
// 1883; port 0 lets the kernel choose). Prints the address it listens on, then runs until
// SIGINT or SIGTERM.
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
#include <initializer_list>
#include <string>
#include <unordered_map>
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
               "usage: ringmq-floor [--bind ADDRESS] [--port PORT] [--forward]   (127.0.0.1, "
               "1883)\n");
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


// --forward: see the file comment. Single-threaded, level-triggered epoll.
class ForwardServer {
 public:
  ForwardServer(int listen_fd, int epoll_fd) : listen_fd_(listen_fd), epoll_fd_(epoll_fd) {}

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
        } else if ((events[i].events & EPOLLOUT) != 0) {
          MarkDirty(fd);
        } else {
          OnReadable(fd);
        }
      }
      for (const int fd : dirty_) Write(fd);
      dirty_.clear();
    }
  }

 private:
  struct Conn {
    bool open = false;
    bool dirty = false;
    bool waiting_writable = false;  // registered for EPOLLOUT after a short write
    std::vector<uint8_t> in;        // bytes of the packet not yet complete
    std::vector<uint8_t> out;       // bytes to write at the end of the batch
    std::vector<std::string> topics;
  };

  void AcceptAll() {
    for (;;) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // as FloorServer::AcceptAll
      if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(static_cast<size_t>(fd) + 1);
      Conn& c = conns_[static_cast<size_t>(fd)];
      c = Conn{};
      c.open = true;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) Close(fd);
    }
  }

  void OnReadable(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    if (!c.open) return;
    uint8_t buffer[kReadBytes];
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return Close(fd);
    c.in.insert(c.in.end(), buffer, buffer + n);
    size_t at = 0;
    for (;;) {
      // Fixed header: type byte and a remaining length of at most 4 bytes (MQTT-2.2.3).
      size_t length = 0;
      size_t header = 1;
      bool complete = false;
      while (at + header < c.in.size() && header <= 4) {
        const uint8_t b = c.in[at + header];
        length |= size_t{b & 0x7Fu} << (7 * (header - 1));
        ++header;
        if ((b & 0x80) == 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (header > 4) return Close(fd);  // malformed remaining length
        break;
      }
      if (c.in.size() - at < header + length) break;
      if (!OnPacket(fd, c.in.data() + at, header, length)) return Close(fd);
      at += header + length;
    }
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(at));
  }

  // One whole packet: `header` bytes of fixed header, then `length` bytes of body. Returns false
  // to close.
  bool OnPacket(int fd, const uint8_t* packet, size_t header, size_t length) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    const uint8_t* body = packet + header;
    switch (packet[0] >> 4) {
      case 1:  // CONNECT
        return Reply(fd, {0x20, 0x02, 0x00, 0x00});
      case 3: {  // PUBLISH
        if (length < 2) return false;
        const size_t topic_size = (size_t{body[0]} << 8) | body[1];
        const unsigned qos = (packet[0] >> 1) & 3u;
        if (2 + topic_size + (qos > 0 ? 2 : 0) > length) return false;
        const auto found = topics_.find(
            std::string(reinterpret_cast<const char*>(body + 2), topic_size));
        if (found != topics_.end() && conns_[static_cast<size_t>(found->second)].open) {
          Conn& to = conns_[static_cast<size_t>(found->second)];
          to.out.insert(to.out.end(), packet, body + length);
          MarkDirty(found->second);
        }
        if (qos == 0) return true;
        return Reply(fd, {0x40, 0x02, body[2 + topic_size], body[3 + topic_size]});
      }
      case 4:  // PUBACK from a subscriber
        return true;
      case 8: {  // SUBSCRIBE: packet id, then (topic filter, QoS) pairs
        if (length < 2) return false;
        std::vector<uint8_t> suback = {0x90, 0x00, body[0], body[1]};
        for (size_t i = 2; i + 2 <= length;) {
          const size_t size = (size_t{body[i]} << 8) | body[i + 1];
          if (i + 2 + size + 1 > length) return false;
          std::string topic(reinterpret_cast<const char*>(body + i + 2), size);
          topics_[topic] = fd;
          c.topics.push_back(std::move(topic));
          suback.push_back(body[i + 2 + size] & 3u);
          i += 2 + size + 1;
        }
        if (suback.size() - 2 > 127) return false;  // one-byte remaining length only
        suback[1] = static_cast<uint8_t>(suback.size() - 2);
        return Reply(fd, suback.data(), suback.size());
      }
      case 12:  // PINGREQ
        return Reply(fd, {0xD0, 0x00});
      case 14:  // DISCONNECT
        return false;
      default:
        return true;
    }
  }

  // No allocation per reply: the bytes are appended to the socket's output buffer.
  bool Reply(int fd, std::initializer_list<uint8_t> bytes) {
    return Reply(fd, bytes.begin(), bytes.size());
  }
  bool Reply(int fd, const uint8_t* bytes, size_t size) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    c.out.insert(c.out.end(), bytes, bytes + size);
    MarkDirty(fd);
    return true;
  }

  void MarkDirty(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    if (c.dirty) return;
    c.dirty = true;
    dirty_.push_back(fd);
  }

  void Write(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    c.dirty = false;
    if (!c.open) return;
    if (!c.out.empty()) {
      const ssize_t n = send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return Close(fd);
      if (n > 0) c.out.erase(c.out.begin(), c.out.begin() + n);
    }
    const bool want_writable = !c.out.empty();
    if (want_writable == c.waiting_writable) return;
    c.waiting_writable = want_writable;
    epoll_event ev{};
    ev.events = want_writable ? EPOLLIN | EPOLLOUT : EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) Close(fd);
  }

  void Close(int fd) {
    Conn& c = conns_[static_cast<size_t>(fd)];
    for (const std::string& topic : c.topics) {
      const auto found = topics_.find(topic);
      if (found != topics_.end() && found->second == fd) topics_.erase(found);
    }
    c = Conn{};  // a later dirty_ entry for it finds it closed
    close(fd);
  }

  int listen_fd_;
  int epoll_fd_;
  std::vector<Conn> conns_;  // indexed by file descriptor
  std::vector<int> dirty_;   // sockets with output to write at the end of the batch
  std::unordered_map<std::string, int> topics_;  // exact topic -> subscriber socket
};

}  // namespace

int main(int argc, char** argv) {
  std::string bind_address = "127.0.0.1";
  long port = 1883;
  bool forward = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") Usage(nullptr);
    if (arg == "--forward") {
      forward = true;
      continue;
    }
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

  if (forward) {
    ForwardServer(listen_fd, epoll_fd).Run();
  } else {
    FloorServer(listen_fd, epoll_fd).Run();
  }
  return 0;
}
