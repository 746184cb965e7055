// A deliberately small HTTP/1.x server for the Prometheus /metrics endpoint.
//
// One thread of its own, blocking-free sockets and poll(2): it never runs on a shard and the
// shards never wait for it (the handler only loads relaxed atomics). It answers exactly one
// request per connection and closes (Connection: close), which HTTP/1.0 and 1.1 clients and
// Prometheus accept:
//   GET|HEAD /metrics[?...]  -> 200 with the handler's text
//   other path                -> 404
//   other method on /metrics  -> 405 (Allow: GET, HEAD)
//   malformed request line    -> 400;  version not HTTP/1.0 or 1.1 -> 505
//   request head > max_request_bytes -> 431;  no complete head within timeout_ms -> 408
// Bounds: max_connections open at once (beyond it new ones wait in the listen backlog),
// max_request_bytes per request head, timeout_ms for a whole exchange (read, write and the
// final drain). Every response is counted by status code (responses()).
//
// Thread safety: Start/Stop from one controlling thread; port() and responses() from any
// thread. The handler runs on the server's thread.
#ifndef RINGMQ_METRICS_HTTP_SERVER_H_
#define RINGMQ_METRICS_HTTP_SERVER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ringmq::metrics {

struct HttpLimits {
  size_t max_request_bytes = 8192;  // request line and headers
  uint32_t timeout_ms = 5000;       // one connection, from accept to close
  uint32_t max_connections = 8;     // open at once
};

class HttpServer {
 public:
  // Returns the body of a 200 response to GET /metrics; gets the server for its responses().
  using Handler = std::function<std::string(const HttpServer& server)>;

  // Binds `address` (IPv4 or IPv6 literal) : `port` (0: an ephemeral port, for tests) and
  // starts the thread. Fails with the bind error, e.g. the port is in use.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address,
                                                           uint16_t port, Handler handler,
                                                           HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Closes every connection and joins the thread. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  // (status code, responses sent) for every code the server can answer, ascending.
  std::vector<std::pair<int, uint64_t>> responses() const;

  static constexpr std::array<int, 7> kStatusCodes = {200, 400, 404, 405, 408, 431, 505};

 private:
  struct Client;
  HttpServer(int listen_fd, int stop_fd, uint16_t port, Handler handler, HttpLimits limits);

  void Run();
  void AcceptClients(std::vector<Client>& clients);
  // Returns false when the client is finished and must be closed.
  bool OnReadable(Client& client);
  bool OnWritable(Client& client);
  void Respond(Client& client, int code, std::string_view body, bool with_body);
  void Route(Client& client, std::string_view head);
  void Count(int code);

  const int listen_fd_;
  const int stop_fd_;
  const uint16_t port_;
  const Handler handler_;
  const HttpLimits limits_;
  std::array<std::atomic<uint64_t>, kStatusCodes.size()> responses_{};
  std::thread thread_;
};

}  // namespace ringmq::metrics

#endif  // RINGMQ_METRICS_HTTP_SERVER_H_
