#include "metrics/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "io/errno_status.h"

namespace ringmq::metrics {
namespace {

constexpr int kListenBacklog = 16;
constexpr size_t kReadChunkBytes = 4096;

std::string_view ReasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

// RFC 9110 token characters (methods).
bool IsToken(std::string_view text) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

absl::StatusOr<int> Listen(const std::string& address, uint16_t port) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError("metrics_bind is not an IP address literal: " + address);
  }
  // No SO_REUSEPORT: a second process on the same port must fail, not share the scrapes.
  const int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return io::ErrnoStatus(errno, "metrics socket");
  const int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 ||
      listen(fd, kListenBacklog) != 0) {
    const int error_number = errno;
    close(fd);
    return io::ErrnoStatus(error_number,
                           "metrics endpoint " + address + ":" + std::to_string(port));
  }
  return fd;
}

uint16_t BoundPort(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return 0;
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
}

}  // namespace

struct HttpServer::Client {
  enum class Stage : uint8_t { kReading, kWriting, kDraining };
  int fd = -1;
  Stage stage = Stage::kReading;
  uint64_t deadline_ms = 0;
  std::string input;
  std::string output;
  size_t sent = 0;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& address,
                                                               uint16_t port, Handler handler,
                                                               HttpLimits limits) {
  RINGMQ_ASSERT(limits.max_connections > 0 && limits.max_request_bytes > 0);
  absl::StatusOr<int> listen_fd = Listen(address, port);
  if (!listen_fd.ok()) return listen_fd.status();
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    const int error_number = errno;
    close(*listen_fd);
    return io::ErrnoStatus(error_number, "eventfd");
  }
  std::unique_ptr<HttpServer> server(
      new HttpServer(*listen_fd, stop_fd, BoundPort(*listen_fd), std::move(handler), limits));
  server->thread_ = std::thread([raw = server.get()] { raw->Run(); });
  return server;
}

HttpServer::HttpServer(int listen_fd, int stop_fd, uint16_t port, Handler handler,
                       HttpLimits limits)
    : listen_fd_(listen_fd),
      stop_fd_(stop_fd),
      port_(port),
      handler_(std::move(handler)),
      limits_(limits) {}

HttpServer::~HttpServer() {
  Stop();
  close(listen_fd_);
  close(stop_fd_);
}

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = write(stop_fd_, &one, sizeof(one));
  thread_.join();
}

std::vector<std::pair<int, uint64_t>> HttpServer::responses() const {
  std::vector<std::pair<int, uint64_t>> result;
  for (size_t i = 0; i < kStatusCodes.size(); ++i) {
    result.emplace_back(kStatusCodes[i], responses_[i].load(std::memory_order_relaxed));
  }
  return result;
}

void HttpServer::Count(int code) {
  for (size_t i = 0; i < kStatusCodes.size(); ++i) {
    if (kStatusCodes[i] == code) responses_[i].fetch_add(1, std::memory_order_relaxed);
  }
}

void HttpServer::Run() {
  std::vector<Client> clients;
  std::vector<pollfd> fds;
  while (true) {
    fds.clear();
    fds.push_back({stop_fd_, POLLIN, 0});
    const bool accepting = clients.size() < limits_.max_connections;
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});  // -1: ignored by poll
    uint64_t now_ms = MonotonicMs();
    uint64_t next_deadline_ms = UINT64_MAX;
    for (const Client& client : clients) {
      const short events = client.stage == Client::Stage::kWriting ? POLLOUT : POLLIN;
      fds.push_back({client.fd, events, 0});
      next_deadline_ms = std::min(next_deadline_ms, client.deadline_ms);
    }
    const int timeout_ms =
        clients.empty() ? -1
                        : static_cast<int>(next_deadline_ms > now_ms ? next_deadline_ms - now_ms : 0);
    const int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      RINGMQ_LOG_ERROR("metrics endpoint: poll: %s", strerror(errno));
      break;
    }
    if (fds[0].revents != 0) break;  // Stop()
    now_ms = MonotonicMs();
    // Clients first (fds[2 + i] is clients[i]), then new ones, so indexes stay aligned.
    size_t kept = 0;
    for (size_t i = 0; i < clients.size(); ++i) {
      Client& client = clients[i];
      const short revents = fds[2 + i].revents;
      bool keep = true;
      if (revents != 0) {
        keep = client.stage == Client::Stage::kWriting ? OnWritable(client) : OnReadable(client);
      }
      if (keep && now_ms >= client.deadline_ms) {
        if (client.stage == Client::Stage::kReading) {
          Respond(client, 408, "request timeout\n", true);
          OnWritable(client);  // one best-effort attempt; the peer was too slow anyway
        }
        keep = false;
      }
      if (!keep) {
        close(client.fd);
        continue;
      }
      if (kept != i) clients[kept] = std::move(client);
      ++kept;
    }
    clients.resize(kept);
    if (accepting && fds[1].revents != 0) AcceptClients(clients);
  }
  for (const Client& client : clients) close(client.fd);
}

void HttpServer::AcceptClients(std::vector<Client>& clients) {
  while (clients.size() < limits_.max_connections) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR) {
        RINGMQ_LOG_WARNING("metrics endpoint: accept: %s", strerror(errno));
      }
      return;
    }
    Client client;
    client.fd = fd;
    client.deadline_ms = MonotonicMs() + limits_.timeout_ms;
    clients.push_back(std::move(client));
  }
}

bool HttpServer::OnReadable(Client& client) {
  char buffer[kReadChunkBytes];
  const ssize_t received = recv(client.fd, buffer, sizeof(buffer), 0);
  if (received < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  if (received == 0) return false;  // EOF: before a complete head, or the end of the drain
  if (client.stage == Client::Stage::kDraining) return true;  // discarded
  // Look for the end of the head only in what is new (and 3 bytes before it).
  const size_t search_from = client.input.size() >= 3 ? client.input.size() - 3 : 0;
  client.input.append(buffer, static_cast<size_t>(received));
  size_t end = client.input.find("\r\n\r\n", search_from);
  size_t head_bytes = end == std::string::npos ? std::string::npos : end + 4;
  if (end == std::string::npos) {
    end = client.input.find("\n\n", search_from);  // bare LF line ends (tolerated)
    if (end != std::string::npos) head_bytes = end + 2;
  }
  if (head_bytes == std::string::npos || head_bytes > limits_.max_request_bytes) {
    if (client.input.size() <= limits_.max_request_bytes) return true;  // wait for more
    Respond(client, 431, "request head too large\n", true);
    return OnWritable(client);
  }
  Route(client, std::string_view(client.input).substr(0, head_bytes));
  return OnWritable(client);
}

void HttpServer::Route(Client& client, std::string_view head) {
  const size_t line_end = head.find('\n');
  std::string_view line = head.substr(0, line_end);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t first_space = line.find(' ');
  const size_t second_space =
      first_space == std::string_view::npos ? first_space : line.find(' ', first_space + 1);
  if (second_space == std::string_view::npos ||
      line.find(' ', second_space + 1) != std::string_view::npos) {
    return Respond(client, 400, "malformed request line\n", true);
  }
  const std::string_view method = line.substr(0, first_space);
  const std::string_view target = line.substr(first_space + 1, second_space - first_space - 1);
  const std::string_view version = line.substr(second_space + 1);
  if (!IsToken(method) || target.empty() || target[0] != '/') {
    return Respond(client, 400, "malformed request line\n", true);
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return Respond(client, version.starts_with("HTTP/") ? 505 : 400, "HTTP/1.0 or 1.1 only\n",
                   true);
  }
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics") return Respond(client, 404, "not found; try /metrics\n", true);
  if (method != "GET" && method != "HEAD") {
    return Respond(client, 405, "GET or HEAD only\n", true);
  }
  Respond(client, 200, handler_(*this), method == "GET");
}

void HttpServer::Respond(Client& client, int code, std::string_view body, bool with_body) {
  Count(code);
  std::string& out = client.output;
  out.clear();
  out.append("HTTP/1.1 ").append(std::to_string(code)).append(" ").append(ReasonPhrase(code));
  out.append("\r\nContent-Type: ");
  out.append(code == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
  out.append("\r\nContent-Length: ").append(std::to_string(body.size()));
  if (code == 405) out.append("\r\nAllow: GET, HEAD");
  out.append("\r\nConnection: close\r\n\r\n");
  if (with_body) out.append(body);
  client.sent = 0;
  client.stage = Client::Stage::kWriting;
  client.input.clear();
  client.input.shrink_to_fit();
}

bool HttpServer::OnWritable(Client& client) {
  while (client.sent < client.output.size()) {
    const ssize_t sent = send(client.fd, client.output.data() + client.sent,
                              client.output.size() - client.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    client.sent += static_cast<size_t>(sent);
  }
  // All sent: end our side, then read until the peer closes (within the deadline) so that
  // unread request bytes do not turn our close into a reset that could discard the response.
  shutdown(client.fd, SHUT_WR);
  client.output.clear();
  client.output.shrink_to_fit();
  client.stage = Client::Stage::kDraining;
  return true;
}

}  // namespace ringmq::metrics
