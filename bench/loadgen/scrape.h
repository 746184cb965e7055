// Reading a broker's Prometheus /metrics for ringmq-bench (--metrics-port): the counters whose
// names contain a given text, each summed over its label sets (ringmq exposes one series per
// shard), read at the start and at the end of the measured window so that the run reports how
// far they moved in it (e.g. the persistence counters: fdatasyncs, bytes written, records).
//
// ParseExposition reads the text format (version 0.0.4): one sample per line, `name value` or
// `name{labels} value` with an optional timestamp after the value; `#` lines (HELP, TYPE) and
// blank lines are skipped, as is a line whose value is not a number. FetchMetrics makes one
// HTTP/1.0 GET over a blocking socket with a deadline (the broker answers with Connection:
// close, so the body ends at EOF).
//
// Thread safety: none needed; the functions keep no state. FetchMetrics blocks for at most
// `timeout_ms` (per connect, send and each receive).
#ifndef RINGMQ_BENCH_LOADGEN_SCRAPE_H_
#define RINGMQ_BENCH_LOADGEN_SCRAPE_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

namespace ringmq::bench::scrape {

using Samples = std::map<std::string, double>;

// The largest response FetchMetrics keeps; a broker's whole exposition is far smaller.
inline constexpr size_t kMaxResponseBytes = 16 << 20;

// Adds to `out`, per metric name containing `match` (every name if `match` is empty), the sum of
// its samples in `text`. Returns the number of samples taken.
inline size_t ParseExposition(std::string_view text, std::string_view match, Samples* out) {
  size_t taken = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    if (name_end == 0 || name_end == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, name_end);
    if (name.find(match) == std::string_view::npos) continue;
    size_t value_at = name_end;
    if (line[name_end] == '{') {
      // Label values may hold '}' only escaped inside quotes; the last '}' ends the labels.
      const size_t close = line.rfind('}');
      if (close == std::string_view::npos || close < name_end) continue;
      value_at = close + 1;
    }
    while (value_at < line.size() && line[value_at] == ' ') ++value_at;
    const std::string value(line.substr(value_at, line.find(' ', value_at) - value_at));
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size()) continue;
    (*out)[std::string(name)] += v;
    ++taken;
  }
  return taken;
}

// For every name in `before` or `after`: after - before (a name missing on one side counts as 0
// there, so a series that first appears during the window reports its whole value).
inline Samples Delta(const Samples& before, const Samples& after) {
  Samples d;
  for (const auto& [name, v] : after) d[name] = v;
  for (const auto& [name, v] : before) d[name] -= v;
  return d;
}

// GET /metrics from `address` (IPv4 or IPv6, port included). On success stores the body (after
// the header) in `body` and returns true; otherwise says why in `error`.
inline bool FetchMetrics(const sockaddr_storage& address, socklen_t address_size,
                         const std::string& host_header, int timeout_ms, std::string* body,
                         std::string* error) {
  const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto fail = [&](const std::string& why) {
    *error = why;
    close(fd);
    return false;
  };
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), address_size) != 0) {
    return fail(std::string("connect: ") + std::strerror(errno));
  }
  const std::string request =
      "GET /metrics HTTP/1.0\r\nHost: " + host_header + "\r\nConnection: close\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return fail(std::string("send: ") + std::strerror(errno));
  }
  std::string response;
  char chunk[65536];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(std::string("recv: ") + std::strerror(errno));
    }
    response.append(chunk, static_cast<size_t>(n));
    if (response.size() > kMaxResponseBytes) return fail("response larger than 16 MiB");
  }
  close(fd);
  if (response.compare(0, 9, "HTTP/1.1 ") != 0 && response.compare(0, 9, "HTTP/1.0 ") != 0) {
    *error = "not an HTTP response";
    return false;
  }
  if (response.compare(9, 3, "200") != 0) {
    *error = "HTTP status " + response.substr(9, 3);
    return false;
  }
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    *error = "no end of the HTTP header";
    return false;
  }
  *body = response.substr(header_end + 4);
  return true;
}

}  // namespace ringmq::bench::scrape

#endif  // RINGMQ_BENCH_LOADGEN_SCRAPE_H_
