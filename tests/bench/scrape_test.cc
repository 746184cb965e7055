// Unit tests of ringmq-bench's /metrics reading (bench/loadgen/scrape.h): the Prometheus text
// format as ringmq writes it (per-shard labels, HELP and TYPE lines), sums over labels, the
// window's deltas, and one real HTTP exchange on 127.0.0.1.
#include "scrape.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

namespace ringmq::bench::scrape {
namespace {

constexpr char kExposition[] =
    "# HELP ringmq_persist_syncs_total fdatasyncs completed.\n"
    "# TYPE ringmq_persist_syncs_total counter\n"
    "ringmq_persist_syncs_total{shard=\"0\"} 10\n"
    "ringmq_persist_syncs_total{shard=\"1\"} 32\n"
    "ringmq_persist_bytes_written_total{shard=\"0\"} 1.5e3\r\n"
    "ringmq_connections 7\n"
    "ringmq_persist_odd{path=\"a}b\",shard=\"0\"} 4 1700000000000\n"
    "ringmq_persist_broken{shard=\"0\"} notanumber\n"
    "\n";

TEST(ParseExposition, SumsMatchingNamesOverTheirLabels) {
  Samples s;
  EXPECT_EQ(ParseExposition(kExposition, "persist", &s), 4u);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s["ringmq_persist_syncs_total"], 42);
  EXPECT_EQ(s["ringmq_persist_bytes_written_total"], 1500);
  EXPECT_EQ(s["ringmq_persist_odd"], 4);  // a '}' inside a label value, then a timestamp
  EXPECT_EQ(s.count("ringmq_connections"), 0u);
  EXPECT_EQ(s.count("ringmq_persist_broken"), 0u);
}

TEST(ParseExposition, EmptyMatchTakesEverySample) {
  Samples s;
  EXPECT_EQ(ParseExposition(kExposition, "", &s), 5u);
  EXPECT_EQ(s["ringmq_connections"], 7);
}

TEST(Delta, WindowDifferenceAndSeriesThatAppearLate) {
  const Samples before{{"a", 10}, {"b", 5}};
  const Samples after{{"a", 25}, {"b", 5}, {"c", 3}};
  const Samples d = Delta(before, after);
  EXPECT_EQ(d.at("a"), 15);
  EXPECT_EQ(d.at("b"), 0);
  EXPECT_EQ(d.at("c"), 3);
}

// A one-shot HTTP server on an ephemeral 127.0.0.1 port answering `reply` to one request.
class OneShotServer {
 public:
  explicit OneShotServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    std::memcpy(&address_, &a, sizeof a);
    thread_ = std::thread([this] {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      std::string request;
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      request_ = request;
      (void)!send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      close(c);
    });
  }
  ~OneShotServer() {
    thread_.join();
    close(fd_);
  }
  const sockaddr_storage& address() const { return address_; }
  std::string request() {
    thread_.join();
    thread_ = std::thread([] {});
    return request_;
  }

 private:
  std::string reply_;
  int fd_ = -1;
  sockaddr_storage address_{};
  std::thread thread_;
  std::string request_;
};

TEST(FetchMetrics, GetsTheBodyOfA200) {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" +
                       std::string(kExposition));
  std::string body, error;
  ASSERT_TRUE(FetchMetrics(server.address(), sizeof(sockaddr_in), "127.0.0.1:1", 5000, &body,
                           &error))
      << error;
  EXPECT_EQ(body, kExposition);
  EXPECT_EQ(server.request().rfind("GET /metrics HTTP/1.0\r\n", 0), 0u);
}

TEST(FetchMetrics, RefusesAnotherStatus) {
  OneShotServer server("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
  std::string body, error;
  EXPECT_FALSE(FetchMetrics(server.address(), sizeof(sockaddr_in), "h", 5000, &body, &error));
  EXPECT_EQ(error, "HTTP status 404");
}

TEST(FetchMetrics, SaysWhyItCannotConnect) {
  // A port bound but not listening refuses the connection.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  sockaddr_storage address{};
  std::memcpy(&address, &a, sizeof a);
  std::string body, error;
  EXPECT_FALSE(FetchMetrics(address, sizeof a, "h", 1000, &body, &error));
  EXPECT_EQ(error.rfind("connect: ", 0), 0u) << error;
  close(fd);
}

}  // namespace
}  // namespace ringmq::bench::scrape
