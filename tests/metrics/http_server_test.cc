// The /metrics HTTP server over real loopback sockets: the one route, status codes for bad,
// oversize, slow and unsupported requests, the connection bound, and concurrent scrapes.
#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace ringmq::metrics {
namespace {

constexpr std::string_view kBody = "# TYPE x gauge\nx 1\n";

std::unique_ptr<HttpServer> StartServer(HttpLimits limits = {}) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      "127.0.0.1", 0, [](const HttpServer&) { return std::string(kBody); }, limits);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

int Connect(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{.tv_sec = 10, .tv_usec = 0};  // bounds every read in these tests
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

void SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent <= 0) return;  // the server may have answered and closed already
    bytes.remove_prefix(static_cast<size_t>(sent));
  }
}

std::string ReadToEnd(int fd) {
  std::string response;
  char buffer[4096];
  while (true) {
    const ssize_t received = recv(fd, buffer, sizeof(buffer), 0);
    if (received <= 0) break;
    response.append(buffer, static_cast<size_t>(received));
  }
  return response;
}

std::string Exchange(uint16_t port, std::string_view request) {
  const int fd = Connect(port);
  SendAll(fd, request);
  shutdown(fd, SHUT_WR);
  std::string response = ReadToEnd(fd);
  close(fd);
  return response;
}

int StatusOf(const std::string& response) {
  if (!response.starts_with("HTTP/1.1 ")) return -1;
  return std::stoi(response.substr(9, 3));
}

std::string BodyOf(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

uint64_t CountOf(const HttpServer& server, int code) {
  for (const auto& [status, count] : server.responses()) {
    if (status == code) return count;
  }
  return 0;
}

TEST(HttpServerTest, GetMetricsReturnsTheBodyAndClosesTheConnection) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string response =
      Exchange(server->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(StatusOf(response), 200);
  EXPECT_EQ(BodyOf(response), kBody);
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(response.find("Content-Length: " + std::to_string(kBody.size()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(response.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(CountOf(*server, 200), 1u);
}

TEST(HttpServerTest, Http10AndQueryStringAndBareLineFeeds) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET /metrics HTTP/1.0\r\n\r\n")), 200);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET /metrics?x=1 HTTP/1.1\r\n\r\n")), 200);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET /metrics HTTP/1.1\n\n")), 200);
}

TEST(HttpServerTest, HeadHasNoBody) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string response = Exchange(server->port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(StatusOf(response), 200);
  EXPECT_EQ(BodyOf(response), "");
}

TEST(HttpServerTest, OtherPathsAre404) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET / HTTP/1.1\r\n\r\n")), 404);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET /metricsx HTTP/1.1\r\n\r\n")), 404);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET /metrics/ HTTP/1.1\r\n\r\n")), 404);
  EXPECT_EQ(CountOf(*server, 404), 3u);
}

TEST(HttpServerTest, OtherMethodsAre405WithAllow) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    const std::string response =
        Exchange(server->port(), std::string(method) + " /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(StatusOf(response), 405) << method;
    EXPECT_NE(response.find("Allow: GET, HEAD\r\n"), std::string::npos);
  }
  EXPECT_EQ(CountOf(*server, 405), 4u);
}

TEST(HttpServerTest, MalformedRequestLinesAre400) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  for (const char* request :
       {"\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n", "G(T /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1 x\r\n\r\n", "GET /metrics FTP/1.0\r\n\r\n"}) {
    EXPECT_EQ(StatusOf(Exchange(server->port(), request)), 400) << request;
  }
}

TEST(HttpServerTest, OtherHttpVersionsAre505) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET /metrics HTTP/2.0\r\n\r\n")), 505);
  EXPECT_EQ(StatusOf(Exchange(server->port(), "GET /metrics HTTP/0.9\r\n\r\n")), 505);
}

TEST(HttpServerTest, OversizeRequestHeadIs431) {
  auto server = StartServer(HttpLimits{.max_request_bytes = 512});
  ASSERT_NE(server, nullptr);
  const std::string big = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
  EXPECT_EQ(StatusOf(Exchange(server->port(), big)), 431);
  // A head that ends within the limit but arrives with a longer tail is still answered.
  const std::string small = "GET /metrics HTTP/1.1\r\n\r\n" + std::string(100, 'b');
  EXPECT_EQ(StatusOf(Exchange(server->port(), small)), 200);
  // A head of exactly the limit is accepted.
  std::string exact = "GET /metrics HTTP/1.1\r\nX: ";
  exact += std::string(512 - exact.size() - 4, 'c') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 512u);
  EXPECT_EQ(StatusOf(Exchange(server->port(), exact)), 200);
  EXPECT_EQ(StatusOf(Exchange(server->port(), exact + "x")), 200);  // body bytes ignored
  EXPECT_EQ(CountOf(*server, 431), 1u);
}

TEST(HttpServerTest, RequestArrivingByteByByteIsServed) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  for (const char c : std::string("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")) {
    SendAll(fd, std::string_view(&c, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const std::string response = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(StatusOf(response), 200);
}

TEST(HttpServerTest, SilentClientTimesOutWith408) {
  auto server = StartServer(HttpLimits{.timeout_ms = 200});
  ASSERT_NE(server, nullptr);
  const auto start = std::chrono::steady_clock::now();
  const int fd = Connect(server->port());
  SendAll(fd, "GET /metr");  // never completes
  const std::string response = ReadToEnd(fd);
  close(fd);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(StatusOf(response), 408);
  EXPECT_GE(elapsed, std::chrono::milliseconds(190));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  EXPECT_EQ(CountOf(*server, 408), 1u);
}

// Beyond max_connections a client waits in the backlog until a slot frees up.
TEST(HttpServerTest, ConnectionsBeyondTheLimitWaitForASlot) {
  auto server = StartServer(HttpLimits{.timeout_ms = 300, .max_connections = 2});
  ASSERT_NE(server, nullptr);
  const int idle_a = Connect(server->port());
  const int idle_b = Connect(server->port());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both accepted
  const auto start = std::chrono::steady_clock::now();
  const std::string response = Exchange(server->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(StatusOf(response), 200);
  // Served only once the idle ones timed out (300 ms after their accept).
  EXPECT_GE(elapsed, std::chrono::milliseconds(150));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  EXPECT_EQ(StatusOf(ReadToEnd(idle_a)), 408);
  EXPECT_EQ(StatusOf(ReadToEnd(idle_b)), 408);
  close(idle_a);
  close(idle_b);
}

TEST(HttpServerTest, ConcurrentScrapesAllSucceed) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  constexpr int kThreads = 8;
  constexpr int kRequestsEach = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRequestsEach; ++i) {
        const std::string response = Exchange(server->port(), "GET /metrics HTTP/1.1\r\n\r\n");
        if (StatusOf(response) == 200 && BodyOf(response) == kBody) ok.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kRequestsEach);
  EXPECT_EQ(CountOf(*server, 200), static_cast<uint64_t>(kThreads * kRequestsEach));
}

TEST(HttpServerTest, LargeBodyIsSentCompletely) {
  const std::string body(3 << 20, 'z');  // far above the socket buffer: several POLLOUT rounds
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start("127.0.0.1", 0, [&](const HttpServer&) { return body; });
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(BodyOf(Exchange((*server)->port(), "GET /metrics HTTP/1.1\r\n\r\n")), body);
}

TEST(HttpServerTest, PortInUseFailsToStart) {
  auto first = StartServer();
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Start(
      "127.0.0.1", first->port(), [](const HttpServer&) { return std::string(); });
  ASSERT_FALSE(second.ok());
  EXPECT_NE(std::string(second.status().message()).find("in use"), std::string::npos)
      << second.status();
}

TEST(HttpServerTest, NonLiteralAddressIsRejected) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start("localhost", 0, [](const HttpServer&) { return std::string(); });
  EXPECT_FALSE(server.ok());
}

TEST(HttpServerTest, StopWithOpenConnectionsIsPrompt) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  const int idle = Connect(server->port());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(ReadToEnd(idle), "");  // closed without a response
  close(idle);
  server->Stop();  // idempotent
}

}  // namespace
}  // namespace ringmq::metrics
