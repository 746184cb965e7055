// nats_live: drives two NatsLinks against real nats-servers (tests/integration/test_nats_link.py).
//
//   nats_live --urls nats://127.0.0.1:P1,nats://127.0.0.1:P2 --count N [--interval-us U]
//             [--timeout-s S] [--subject SUBJ] [--expect-reconnect] [--min-received-percent P]
//
// A subscriber link subscribes to SUBJ; a publisher link publishes N sequence numbers to it
// (every U microseconds, once both links are ready the first time) and the program checks what
// arrives: in order, no duplicates, the last one received (the stream resumed after any server
// kill), at least P% of N (core NATS is at most once: publishes in flight when a server dies
// are lost), and with --expect-reconnect at least one reconnect. It prints READY/DOWN lines as
// the links change state (the test kills the server a link is on) and PROGRESS lines, then one
// RESULT line; exit status 0 if every check holds.
//
// Plain blocking-style I/O with poll(): this is a test tool; the broker drives NatsLink from its
// shard's io_uring instead. Bounded: --timeout-s ends the run (default 60 s).
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cluster/nats_link.h"

namespace ringmq::cluster {
namespace {

uint64_t NowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t NowUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// One link and its socket.
class Driver : public NatsLinkSink {
 public:
  Driver(std::string name, const std::vector<std::string>& urls) : name_(std::move(name)) {
    NatsLinkOptions options;
    options.urls = urls;
    options.name = "nats_live_" + name_;
    options.ping_interval_ms = 1000;
    options.max_pings_outstanding = 2;
    options.handshake_timeout_ms = 2000;
    options.reconnect_wait_initial_ms = 50;
    options.reconnect_wait_max_ms = 500;
    options.random_seed = NowUs();
    absl::StatusOr<std::unique_ptr<NatsLink>> link = NatsLink::Create(options, this);
    if (!link.ok()) {
      std::fprintf(stderr, "nats_live: %s\n", std::string(link.status().message()).c_str());
      std::exit(2);
    }
    link_ = std::move(*link);
  }
  ~Driver() override { CloseSocket(); }

  NatsLink& link() { return *link_; }
  bool ever_ready() const { return ever_ready_; }

  // Starts a connection when the link asks for one; fills in the pollfd.
  void Prepare(uint64_t now, pollfd& entry) {
    if (link_->state() == NatsLinkState::kWaiting && now >= link_->connect_at_ms()) Connect(now);
    if (link_->state() == NatsLinkState::kReady || link_->has_output() || !sending_.empty()) {
      Flush();
    }
    entry.fd = fd_;
    entry.events = 0;
    entry.revents = 0;
    if (fd_ < 0) return;
    if (link_->state() == NatsLinkState::kConnecting) {
      entry.events = POLLOUT;
    } else {
      entry.events = POLLIN | (sending_.empty() ? 0 : POLLOUT);
    }
  }

  void Handle(uint64_t now, const pollfd& entry) {
    if (fd_ < 0 || entry.revents == 0) return;
    if (link_->state() == NatsLinkState::kConnecting) {
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) {
        link_->OnTransportClosed(now, std::strerror(error));
        return;
      }
      link_->OnTransportConnected(now);
      return;
    }
    if (entry.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[65536];
      const ssize_t n = read(fd_, buffer, sizeof(buffer));
      if (n > 0) {
        link_->OnReceived(now, std::string_view(buffer, static_cast<size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        link_->OnTransportClosed(now, n == 0 ? "eof" : std::strerror(errno));
        return;
      }
    }
    Flush();
  }

  void OnReady(const nats::ServerInfo& info) override {
    ever_ready_ = true;
    std::printf("READY %s %u %s\n", name_.c_str(), link_->current_server().port,
                info.server_name.c_str());
    std::fflush(stdout);
  }
  void OnMessage(const NatsMessage& message) override {
    const uint64_t seq = std::strtoull(std::string(message.payload).c_str(), nullptr, 10);
    if (received_ > 0 && seq == last_) {
      ++duplicates_;
    } else if (received_ > 0 && seq < last_) {
      ++out_of_order_;
    }
    last_ = std::max(last_, seq);
    ++received_;
  }
  void OnDisconnected(DisconnectReason reason, std::string_view detail) override {
    std::printf("DOWN %s %s %.*s\n", name_.c_str(),
                std::string(DisconnectReasonName(reason)).c_str(), static_cast<int>(detail.size()),
                detail.data());
    std::fflush(stdout);
    CloseSocket();
  }
  void OnServerError(std::string_view text) override {
    std::printf("ERROR %s %.*s\n", name_.c_str(), static_cast<int>(text.size()), text.data());
  }

  uint64_t received_ = 0;
  uint64_t last_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t out_of_order_ = 0;

 private:
  void Connect(uint64_t now) {
    const NatsServerAddress& server = link_->BeginConnect(now);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    const std::string port = std::to_string(server.port);
    if (getaddrinfo(server.host.c_str(), port.c_str(), &hints, &result) != 0 || !result) {
      link_->OnTransportClosed(now, "getaddrinfo failed");
      return;
    }
    fd_ = socket(result->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int rc = fd_ < 0 ? -1 : connect(fd_, result->ai_addr, result->ai_addrlen);
    const int error = errno;
    freeaddrinfo(result);
    if (rc != 0 && error != EINPROGRESS) {
      link_->OnTransportClosed(now, std::strerror(error));
      return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (rc == 0) link_->OnTransportConnected(now);
  }

  void Flush() {
    if (fd_ < 0 || link_->state() == NatsLinkState::kConnecting) return;
    if (sending_.empty() && link_->has_output()) link_->TakeOutput(sending_);
    while (!sending_.empty()) {
      const ssize_t n = write(fd_, sending_.data(), sending_.size());
      if (n <= 0) return;  // EAGAIN: POLLOUT; errors show on the read side
      sending_.erase(0, static_cast<size_t>(n));
    }
  }

  void CloseSocket() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    sending_.clear();
  }

  std::string name_;
  std::unique_ptr<NatsLink> link_;
  int fd_ = -1;
  std::string sending_;
  bool ever_ready_ = false;
};

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const size_t end = comma == std::string::npos ? text.size() : comma;
    if (end > start) parts.push_back(text.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

int Run(int argc, char** argv) {
  std::string urls;
  std::string subject = "nats_live.test";
  uint64_t count = 1000;
  uint64_t interval_us = 1000;
  uint64_t timeout_s = 60;
  uint64_t min_percent = 100;
  bool expect_reconnect = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "nats_live: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--urls") {
      urls = value();
    } else if (arg == "--subject") {
      subject = value();
    } else if (arg == "--count") {
      count = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--interval-us") {
      interval_us = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--timeout-s") {
      timeout_s = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--min-received-percent") {
      min_percent = std::strtoull(value().c_str(), nullptr, 10);
    } else if (arg == "--expect-reconnect") {
      expect_reconnect = true;
    } else {
      std::fprintf(stderr, "nats_live: unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (urls.empty() || count == 0) {
    std::fprintf(stderr, "nats_live: --urls and a positive --count are required\n");
    return 2;
  }
  // The subscriber takes the list as given, the publisher from its second server on, so that
  // with several servers the two links start on different ones (the message crosses a route).
  std::vector<std::string> sub_urls = Split(urls);
  std::vector<std::string> pub_urls = sub_urls;
  std::rotate(pub_urls.begin(), pub_urls.begin() + (pub_urls.size() > 1 ? 1 : 0), pub_urls.end());
  Driver sub("sub", sub_urls);
  Driver pub("pub", pub_urls);
  if (!sub.link().Subscribe(subject, "").ok()) return 2;

  const uint64_t start_ms = NowMs();
  const uint64_t deadline_ms = start_ms + timeout_s * 1000;
  uint64_t published = 0;
  uint64_t refused = 0;
  uint64_t next_publish_us = 0;
  uint64_t done_ms = 0;  // when the last publish was handed to the link
  bool started = false;
  while (NowMs() < deadline_ms) {
    const uint64_t now = NowMs();
    // Publishing starts 200 ms after both links were first ready: the subscription's interest
    // reaches the publisher's server over the cluster's routes meanwhile.
    if (!started && sub.ever_ready() && pub.ever_ready()) {
      started = true;
      next_publish_us = NowUs() + 200'000;
    }
    while (started && published < count && NowUs() >= next_publish_us) {
      const std::string payload = std::to_string(published);
      const PublishResult result = pub.link().Publish(subject, {}, payload);
      if (result == PublishResult::kQueued || result == PublishResult::kHeld) {
        ++published;
        if (published % 200 == 0) {
          std::printf("PROGRESS %lu %lu\n", static_cast<unsigned long>(published),
                      static_cast<unsigned long>(sub.received_));
          std::fflush(stdout);
        }
      } else {
        ++refused;
        ++published;  // a refused publish is a gap, as a lost one
      }
      next_publish_us += interval_us;
      if (published == count) done_ms = now;
    }
    if (published == count && (sub.last_ == count - 1 || now > done_ms + 5000)) break;

    pollfd entries[2];
    sub.Prepare(now, entries[0]);
    pub.Prepare(now, entries[1]);
    uint64_t wake = std::min(sub.link().next_deadline_ms(), pub.link().next_deadline_ms());
    int timeout_ms = 50;
    if (wake > now) timeout_ms = static_cast<int>(std::min<uint64_t>(wake - now, 50));
    if (started && published < count) timeout_ms = std::min(timeout_ms, 1);
    if (wake <= now) timeout_ms = 0;
    poll(entries, 2, timeout_ms);
    const uint64_t after = NowMs();
    sub.Handle(after, entries[0]);
    pub.Handle(after, entries[1]);
    if (after >= sub.link().next_deadline_ms()) sub.link().OnTimer(after);
    if (after >= pub.link().next_deadline_ms()) pub.link().OnTimer(after);
  }

  const uint64_t reconnects = sub.link().counters().reconnects + pub.link().counters().reconnects;
  std::printf(
      "RESULT published=%lu received=%lu last=%lu duplicates=%lu out_of_order=%lu refused=%lu "
      "reconnects=%lu sub_servers=%zu pub_servers=%zu stale=%lu seconds=%.1f\n",
      static_cast<unsigned long>(published), static_cast<unsigned long>(sub.received_),
      static_cast<unsigned long>(sub.last_), static_cast<unsigned long>(sub.duplicates_),
      static_cast<unsigned long>(sub.out_of_order_), static_cast<unsigned long>(refused),
      static_cast<unsigned long>(reconnects), sub.link().server_count(), pub.link().server_count(),
      static_cast<unsigned long>(sub.link().counters().stale + pub.link().counters().stale),
      static_cast<double>(NowMs() - start_ms) / 1000.0);
  std::fflush(stdout);
  bool ok = true;
  auto check = [&](bool condition, const char* what) {
    if (!condition) {
      std::printf("FAILED %s\n", what);
      ok = false;
    }
  };
  check(published == count, "every message was published before the timeout");
  check(sub.received_ > 0 && sub.last_ == count - 1, "the last message arrived");
  check(sub.duplicates_ == 0, "no duplicates");
  check(sub.out_of_order_ == 0, "in order");
  check(sub.received_ * 100 >= count * min_percent, "enough messages arrived");
  check(!expect_reconnect || reconnects > 0, "a link reconnected");
  std::fflush(stdout);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace ringmq::cluster

int main(int argc, char** argv) { return ringmq::cluster::Run(argc, argv); }
