// ringmq-nats-bench: core NATS throughput and CPU per message, with no MQTT (issue 16).
//
// What it is for: the floor cost of the hop between ringmq nodes. A ringmq cluster publishes
// each message once to its NATS server, the NATS cluster routes it, and the subscribing node's
// NATS server delivers it; whatever nats-server spends per message there is paid by every
// cross-node message before ringmq does anything. This tool measures exactly that: messages
// through one nats-server (publishers and subscribers on the same server) or across two
// clustered servers (publishers on --pub-port, subscribers on --sub-port), the delivered
// messages per second and per CPU-second of the servers named by --server-pid (all of them
// summed, read from /proc/PID/stat), and the end-to-end latency.
//
// What it does: one thread, one epoll instance, plain non-blocking TCP sockets and the NATS
// client protocol (https://docs.nats.io/reference/reference-protocols/nats-protocol): INFO,
// CONNECT (echo off, verbose off), SUB, PUB, MSG, PING/PONG. Scenarios as ringmq-bench names
// them: fanin (every publisher on one subject, --subscribers subscribers on it) and pairs
// (publisher i on its own subject, subscriber i on it). Each publisher keeps at most --window
// messages in flight end to end (sent but not yet received by every subscriber), writing as many
// PUBs as the window allows in one send (as a ringmq node batches its NATS writes), or paces
// them at --rate messages/s. A payload carries the publisher index, a sequence number and the
// send time, so each subscriber checks order and gaps per publisher and measures latency.
// A window that makes no progress for --stall-ms is reopened and counted (core NATS is at most
// once: a message published before the interest reached the publisher's server is dropped).
//
// Scenario kv: what a JetStream key-value compare-and-set costs, as the cluster's client-id
// ownership would pay it once per CONNECT. It creates the bucket's stream (KV_<bucket> on
// $KV.<bucket>.>, --kv-replicas replicas, file storage) and each publisher i puts its own key
// $KV.<bucket>.c<i> one at a time with the header Nats-Expected-Last-Subject-Sequence set to the
// revision of its previous put (0 first), taking the JetStream ack on its reply subject
// _INBOX.kv.<i>.<seq> (a subscriber connection per publisher); "delivered" counts the acks, and
// an ack with an error (a failed compare-and-set) fails the run.
//
// Scenario stream: JetStream publishes with acks, --window in flight per publisher (what QoS 1
// through JetStream would cost per message at best): publisher i publishes to bench.stream.<i>,
// captured by the stream STREAM_<bucket> (--kv-replicas replicas, file storage, the last
// 100,000 messages kept), and takes each ack as in kv.
//
// Thread safety: single-threaded.
//
// Usage: see Usage() below.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int kMaxConnections = 20000;
constexpr size_t kReadChunk = 256 * 1024;
constexpr int kSetupTimeoutSeconds = 10;
constexpr size_t kPayloadHeader = 20;  // u32 publisher, u64 sequence, u64 send time (ns)

struct Options {
  std::string scenario = "fanin";
  std::string host = "127.0.0.1";
  int pub_port = 4222;
  int sub_port = 0;  // 0: same as pub_port
  int publishers = 0;
  int subscribers = 0;
  int payload = 64;
  int window = 16;
  double rate = 0;  // messages/s per publisher; 0: window-bound
  double duration_s = 10;
  double warmup_s = 2;
  double drain_s = 5;
  int stall_ms = 2000;
  std::vector<int> server_pids;
  std::string label;
  std::string kv_bucket = "bench";
  int kv_replicas = 1;
};

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "ringmq-nats-bench: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

[[noreturn]] void Usage(int status) {
  std::fprintf(status ? stderr : stdout,
               "Usage: ringmq-nats-bench fanin|pairs|kv|stream [options]\n"
               "  --host H               NATS servers' address (127.0.0.1)\n"
               "  --pub-port N           publishers connect here (4222)\n"
               "  --sub-port N           subscribers connect here (default: --pub-port); another\n"
               "                         server of the cluster measures the route hop\n"
               "  --publishers N         (fanin 100, pairs 100)\n"
               "  --subscribers N        fanin only (1); pairs has one per publisher\n"
               "  --payload BYTES        at least %zu (64)\n"
               "  --window N             messages in flight per publisher, end to end (16)\n"
               "  --rate R               messages/s per publisher, 0 = window-bound (0)\n"
               "  --duration S --warmup S --drain S   (10, 2, 5)\n"
               "  --stall-ms MS          reopen a window without progress after MS (2000)\n"
               "  --server-pid PID       a nats-server whose CPU is counted (repeatable)\n"
               "  --label TEXT           copied into the result line\n"
               "  --kv-bucket NAME       kv, stream: the bucket or stream name suffix (bench)\n"
               "  --kv-replicas N        kv, stream: its replicas (1)\n"
               "Prints one result line of key=value pairs; exit 0 if no message was lost or\n"
               "reordered in the measured window, 1 otherwise, 2 on a setup error.\n",
               kPayloadHeader);
  std::exit(status);
}

Options Parse(int argc, char** argv) {
  Options o;
  if (argc < 2) Usage(2);
  o.scenario = argv[1];
  if (o.scenario == "-h" || o.scenario == "--help") Usage(0);
  if (o.scenario != "fanin" && o.scenario != "pairs" && o.scenario != "kv" &&
      o.scenario != "stream") {
    Usage(2);
  }
  for (int i = 2; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") Usage(0);
    if (i + 1 >= argc) Usage(2);
    const char* value = argv[++i];
    if (flag == "--host")
      o.host = value;
    else if (flag == "--pub-port")
      o.pub_port = std::atoi(value);
    else if (flag == "--sub-port")
      o.sub_port = std::atoi(value);
    else if (flag == "--publishers")
      o.publishers = std::atoi(value);
    else if (flag == "--subscribers")
      o.subscribers = std::atoi(value);
    else if (flag == "--payload")
      o.payload = std::atoi(value);
    else if (flag == "--window")
      o.window = std::atoi(value);
    else if (flag == "--rate")
      o.rate = std::atof(value);
    else if (flag == "--duration")
      o.duration_s = std::atof(value);
    else if (flag == "--warmup")
      o.warmup_s = std::atof(value);
    else if (flag == "--drain")
      o.drain_s = std::atof(value);
    else if (flag == "--stall-ms")
      o.stall_ms = std::atoi(value);
    else if (flag == "--server-pid")
      o.server_pids.push_back(std::atoi(value));
    else if (flag == "--label")
      o.label = value;
    else if (flag == "--kv-bucket")
      o.kv_bucket = value;
    else if (flag == "--kv-replicas")
      o.kv_replicas = std::atoi(value);
    else
      Usage(2);
  }
  if (o.sub_port == 0) o.sub_port = o.pub_port;
  if (o.publishers == 0) o.publishers = 100;
  if (o.scenario == "pairs" || o.scenario == "kv" || o.scenario == "stream") {
    o.subscribers = o.publishers;
  }
  if (o.scenario == "kv") o.window = 1;  // each put waits for the revision of the one before
  if (o.subscribers == 0) o.subscribers = 1;
  if (o.payload < static_cast<int>(kPayloadHeader) || o.window < 1 || o.duration_s <= 0 ||
      o.publishers + o.subscribers > kMaxConnections) {
    Usage(2);
  }
  return o;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// CPU seconds (user + system) of a process, from /proc/PID/stat fields 14 and 15.
double ProcessCpuSeconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(text.substr(paren + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int index = 3; rest >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double OwnCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

// Latency in microseconds, log-linear buckets: 16 per power of two, up to 2^31 us.
class Histogram {
 public:
  void Add(uint64_t us) {
    ++counts_[Bucket(us)];
    ++total_;
  }
  uint64_t total() const { return total_; }
  // The upper bound of the bucket holding the q-quantile.
  double Quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return UpperBound(i);
    }
    return UpperBound(kBuckets - 1);
  }

 private:
  static constexpr size_t kSub = 16;
  static constexpr size_t kBuckets = 32 * kSub;
  static size_t Bucket(uint64_t us) {
    if (us < kSub) return us;
    int log = 63 - __builtin_clzll(us);  // >= 4
    size_t sub = (us >> (log - 4)) & (kSub - 1);
    return std::min(kBuckets - 1, static_cast<size_t>(log - 3) * kSub + sub);
  }
  static double UpperBound(size_t bucket) {
    if (bucket < kSub) return static_cast<double>(bucket);
    size_t log = bucket / kSub + 3;
    size_t sub = bucket % kSub;
    return static_cast<double>((kSub + sub + 1) << (log - 4));
  }
  uint64_t counts_[kBuckets] = {};
  uint64_t total_ = 0;
};

struct Publisher {
  int fd = -1;
  std::string subject;
  std::string out;
  size_t out_sent = 0;
  uint64_t sent = 0;       // messages written (or queued to write)
  uint64_t delivered = 0;  // deliveries of its messages seen by all subscribers together
  double last_progress = 0;
  bool want_write = false;
  std::vector<uint64_t> send_ns;  // kv, stream: send times by sequence number % window
  uint64_t revision = 0;          // kv: the key's revision from the last ack
};

struct Subscriber {
  int fd = -1;
  std::string in;
  std::vector<uint64_t> next_seq;  // per publisher
};

struct Counters {
  uint64_t delivered = 0;
  uint64_t gaps = 0;       // messages skipped in a publisher's sequence (lost)
  uint64_t reordered = 0;  // a sequence number below the expected one
  uint64_t stalls = 0;
  uint64_t errors = 0;  // kv: acks with an error
};

int Connect(const Options& o, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) Die("bad --host");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Bounds the blocking set-up reads (a server that never answers, a request without a
  // responder); the sockets are non-blocking once measuring starts.
  timeval timeout{kSetupTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("write");
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Blocking read of one CRLF-terminated line (set-up only).
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (line.size() < 65536) {
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("read during set-up");
    line += c;
    if (line.size() >= 2 && line.compare(line.size() - 2, 2, "\r\n") == 0) {
      line.resize(line.size() - 2);
      return line;
    }
  }
  Die("set-up line too long");
}

// INFO, CONNECT (echo off: a ringmq node never receives its own messages back), then `extra`
// (SUBs) and a PING whose PONG proves the server processed them.
int Handshake(const Options& o, int port, const std::string& extra) {
  int fd = Connect(o, port);
  const char* headers = o.scenario == "kv" ? "true" : "false";
  std::string info = ReadLine(fd);
  if (info.rfind("INFO ", 0) != 0) {
    std::fprintf(stderr, "ringmq-nats-bench: expected INFO, got %s\n", info.c_str());
    std::exit(2);
  }
  WriteAll(
      fd,
      std::string("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,") +
          "\"headers\":" + headers +
          ",\"protocol\":1,\"lang\":\"c++\",\"version\":\"0\",\"name\":\"ringmq-nats-bench\"}\r\n" +
          extra + "PING\r\n");
  for (;;) {
    std::string line = ReadLine(fd);
    if (line == "PONG") break;
    if (line.rfind("-ERR", 0) == 0) {
      std::fprintf(stderr, "ringmq-nats-bench: %s\n", line.c_str());
      std::exit(2);
    }
  }
  return fd;
}

void SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) Die("fcntl");
}

// kv, stream: creates the stream with blocking requests on a connection of its own, retrying
// for up to 30 s while JetStream has no meta leader yet. An existing stream of that name is
// deleted first, so every run starts from revision 0.
void CreateKvStream(const Options& o) {
  bool kv = o.scenario == "kv";
  std::string stream = (kv ? "KV_" : "STREAM_") + o.kv_bucket;
  std::string subjects = kv ? "$KV." + o.kv_bucket + ".>" : std::string("bench.stream.>");
  std::string limits = kv ? "\"max_msgs_per_subject\":1,\"max_msgs\":-1,\"discard\":\"new\""
                          : "\"max_msgs_per_subject\":-1,\"max_msgs\":100000,\"discard\":\"old\"";
  std::string config = "{\"name\":\"" + stream + "\",\"subjects\":[\"" + subjects +
                       "\"],\"retention\":\"limits\"," + limits +
                       ",\"max_bytes\":-1,\"max_age\":0,\"max_msg_size\":-1,\"storage\":\"file\","
                       "\"num_replicas\":" +
                       std::to_string(o.kv_replicas) +
                       ",\"duplicate_window\":120000000000,\"allow_rollup_hdrs\":true,"
                       "\"deny_delete\":true,\"allow_direct\":true}";
  int fd = Handshake(o, o.pub_port, "SUB _INBOX.setup.* 99\r\n");
  // A JetStream that has no meta leader yet may not answer at all: each attempt waits 2 s for
  // its reply, on a reply subject of its own (a late reply to an earlier attempt is skipped).
  timeval attempt_timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &attempt_timeout, sizeof attempt_timeout);
  int attempt = 0;
  // One request: the reply's payload (headers included, if any), or "" after 2 s without one.
  auto request = [&](const std::string& subject, const std::string& body) {
    std::string inbox = "_INBOX.setup." + std::to_string(++attempt);
    WriteAll(fd, "PUB " + subject + " " + inbox + " " + std::to_string(body.size()) + "\r\n" +
                     body + "\r\n");
    std::string buffer;
    char chunk[4096];
    double deadline = Now() + 2;
    for (;;) {
      size_t eol = buffer.find("\r\n");
      if (eol != std::string::npos) {
        std::string line = buffer.substr(0, eol);
        bool msg = line.rfind("MSG ", 0) == 0 || line.rfind("HMSG ", 0) == 0;
        size_t size =
            msg ? std::strtoull(line.substr(line.rfind(' ') + 1).c_str(), nullptr, 10) : 0;
        size_t end = eol + 2 + (msg ? size + 2 : 0);
        if (buffer.size() >= end) {
          std::string payload = msg ? buffer.substr(eol + 2, size) : "";
          buffer.erase(0, end);
          if (line == "PING") WriteAll(fd, "PONG\r\n");
          if (msg && line.find(" " + inbox + " ") != std::string::npos) return payload;
          continue;
        }
      }
      if (Now() > deadline) return std::string();
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::string();
      if (n <= 0) Die("read during set-up");
      buffer.append(chunk, static_cast<size_t>(n));
    }
  };
  double deadline = Now() + 30;
  for (;;) {
    request("$JS.API.STREAM.DELETE." + stream, "");
    std::string reply = request("$JS.API.STREAM.CREATE." + stream, config);
    bool created = !reply.empty() && reply.find("\"error\"") == std::string::npos &&
                   reply.rfind("NATS/1.0 503", 0) == std::string::npos;
    if (created) break;
    if (Now() > deadline) {
      std::fprintf(stderr, "ringmq-nats-bench: could not create %s within 30 s: %s\n",
                   stream.c_str(), reply.empty() ? "no reply" : reply.c_str());
      std::exit(2);
    }
    usleep(200 * 1000);
  }
  close(fd);
}

class Bench {
 public:
  explicit Bench(const Options& o) : o_(o), pubs_(o.publishers), subs_(o.subscribers) {}

  int Run();

 private:
  static constexpr uint64_t kSubTag = uint64_t{1} << 32;

  void SetUp();
  void FillAndSend(Publisher& p, double now);
  void Flush(Publisher& p);
  void Fatal(std::string_view line);
  void ReadSubscriber(Subscriber& s, double now);
  void ReadPublisher(Publisher& p);
  size_t Parse(Subscriber& s, double now);
  void OnMessage(Subscriber& s, std::string_view subject, const char* payload, size_t size,
                 double now);
  void OnKvAck(Subscriber& s, std::string_view subject, std::string_view ack, double now);
  void Loop(double until, bool stop_sending);
  uint64_t InFlight(const Publisher& p) const {
    return p.sent * static_cast<uint64_t>(FanPerMessage()) - p.delivered;
  }
  int FanPerMessage() const { return o_.scenario == "fanin" ? o_.subscribers : 1; }

  const Options& o_;
  std::vector<Publisher> pubs_;
  std::vector<Subscriber> subs_;
  int epoll_ = -1;
  std::string payload_template_;
  Counters c_;
  Histogram latency_;
  bool measuring_ = false;
  double start_ = 0;
};

void Bench::SetUp() {
  epoll_ = epoll_create1(0);
  if (epoll_ < 0) Die("epoll_create1");
  payload_template_.assign(static_cast<size_t>(o_.payload), 'x');
  bool acked = o_.scenario == "kv" || o_.scenario == "stream";
  if (acked) CreateKvStream(o_);
  for (int i = 0; i < o_.subscribers; ++i) {
    std::string subject = o_.scenario == "fanin" ? "bench.fanin" : "bench.p." + std::to_string(i);
    if (acked) subject = "_INBOX.kv." + std::to_string(i) + ".*";
    Subscriber& s = subs_[static_cast<size_t>(i)];
    // kv: the acks come back to the server the puts went to, as on a node's own connection.
    int port = acked ? o_.pub_port : o_.sub_port;
    s.fd = Handshake(o_, port, "SUB " + subject + " 1\r\n");
    s.next_seq.assign(static_cast<size_t>(o_.publishers), 0);
    s.in.reserve(kReadChunk * 2);
  }
  for (int i = 0; i < o_.publishers; ++i) {
    Publisher& p = pubs_[static_cast<size_t>(i)];
    p.subject = o_.scenario == "fanin" ? "bench.fanin" : "bench.p." + std::to_string(i);
    if (o_.scenario == "kv") p.subject = "$KV." + o_.kv_bucket + ".c" + std::to_string(i);
    if (o_.scenario == "stream") p.subject = "bench.stream." + std::to_string(i);
    p.send_ns.assign(static_cast<size_t>(o_.window), 0);
    p.fd = Handshake(o_, o_.pub_port, "");
    p.out.reserve(static_cast<size_t>(o_.window) * (static_cast<size_t>(o_.payload) + 64));
  }
  for (size_t i = 0; i < subs_.size(); ++i) {
    SetNonBlocking(subs_[i].fd);
    epoll_event ev{EPOLLIN, {.u64 = kSubTag | i}};
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, subs_[i].fd, &ev) != 0) Die("epoll_ctl");
  }
  for (size_t i = 0; i < pubs_.size(); ++i) {
    SetNonBlocking(pubs_[i].fd);
    epoll_event ev{EPOLLIN, {.u64 = i}};
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, pubs_[i].fd, &ev) != 0) Die("epoll_ctl");
  }
}

// Appends as many PUBs as the window (or the rate) allows and writes them in one send.
void Bench::FillAndSend(Publisher& p, double now) {
  if (p.out_sent < p.out.size()) return;  // the last batch is still being written
  p.out.clear();
  p.out_sent = 0;
  uint64_t allowed = 0;
  uint64_t window = static_cast<uint64_t>(o_.window) * static_cast<uint64_t>(FanPerMessage());
  uint64_t in_flight = InFlight(p);
  if (in_flight > 0 && now - p.last_progress > o_.stall_ms / 1000.0) {
    // No delivery for stall_ms: what is in flight was dropped; count it and start afresh.
    ++c_.stalls;
    p.delivered = p.sent * static_cast<uint64_t>(FanPerMessage());
    p.last_progress = now;
    in_flight = 0;
  }
  if (in_flight < window) allowed = (window - in_flight) / static_cast<uint64_t>(FanPerMessage());
  if (o_.rate > 0) {
    // Publisher i starts i / (rate * publishers) seconds late, so that the offered load is
    // spread evenly instead of arriving in one burst per 1 / rate.
    double offset = static_cast<double>(&p - pubs_.data()) / (o_.rate * o_.publishers);
    double elapsed = now - start_ - offset;
    uint64_t due = elapsed < 0 ? 0 : static_cast<uint64_t>(elapsed * o_.rate) + 1;
    allowed = due > p.sent ? std::min(allowed, due - p.sent) : 0;
  }
  if (allowed == 0) return;
  size_t index = static_cast<size_t>(&p - pubs_.data());
  if (o_.scenario == "kv") {
    // One compare-and-set put (allowed is 1: the window is 1).
    char headers[96];
    int headers_size = std::snprintf(
        headers, sizeof headers,
        "NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: %" PRIu64 "\r\n\r\n", p.revision);
    char line[192];
    int line_size =
        std::snprintf(line, sizeof line, "HPUB %s _INBOX.kv.%zu.%" PRIu64 " %d %d\r\n",
                      p.subject.c_str(), index, p.sent, headers_size, headers_size + o_.payload);
    p.out.append(line, static_cast<size_t>(line_size));
    p.out.append(headers, static_cast<size_t>(headers_size));
    p.out.append(payload_template_);
    p.out.append("\r\n");
    p.send_ns[p.sent % p.send_ns.size()] = NowNs();
    ++p.sent;
    if (in_flight == 0) p.last_progress = now;
    Flush(p);
    return;
  }
  if (o_.scenario == "stream") {
    uint64_t now_ns = NowNs();
    for (uint64_t k = 0; k < allowed; ++k) {
      char line[192];
      int line_size = std::snprintf(line, sizeof line, "PUB %s _INBOX.kv.%zu.%" PRIu64 " %d\r\n",
                                    p.subject.c_str(), index, p.sent, o_.payload);
      p.out.append(line, static_cast<size_t>(line_size));
      p.out.append(payload_template_);
      p.out.append("\r\n");
      p.send_ns[p.sent % p.send_ns.size()] = now_ns;
      ++p.sent;
    }
    if (in_flight == 0) p.last_progress = now;
    Flush(p);
    return;
  }
  char header[96];
  int header_size =
      std::snprintf(header, sizeof header, "PUB %s %d\r\n", p.subject.c_str(), o_.payload);
  uint64_t now_ns = NowNs();
  for (uint64_t k = 0; k < allowed; ++k) {
    p.out.append(header, static_cast<size_t>(header_size));
    size_t at = p.out.size();
    p.out.append(payload_template_);
    uint32_t index32 = static_cast<uint32_t>(index);
    uint64_t seq = p.sent++;
    std::memcpy(&p.out[at], &index32, 4);
    std::memcpy(&p.out[at + 4], &seq, 8);
    std::memcpy(&p.out[at + 12], &now_ns, 8);
    p.out.append("\r\n");
  }
  if (in_flight == 0) p.last_progress = now;
  Flush(p);
}

void Bench::Flush(Publisher& p) {
  while (p.out_sent < p.out.size()) {
    ssize_t n = send(p.fd, p.out.data() + p.out_sent, p.out.size() - p.out_sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!p.want_write) {
        p.want_write = true;
        epoll_event ev{EPOLLIN | EPOLLOUT, {.u64 = static_cast<uint64_t>(&p - pubs_.data())}};
        epoll_ctl(epoll_, EPOLL_CTL_MOD, p.fd, &ev);
      }
      return;
    }
    if (n <= 0) Die("send");
    p.out_sent += static_cast<size_t>(n);
  }
  if (p.want_write) {
    p.want_write = false;
    epoll_event ev{EPOLLIN, {.u64 = static_cast<uint64_t>(&p - pubs_.data())}};
    epoll_ctl(epoll_, EPOLL_CTL_MOD, p.fd, &ev);
  }
}

// A publisher receives only PING (answered), +OK and -ERR (fatal: e.g. a slow consumer).
void Bench::ReadPublisher(Publisher& p) {
  char buffer[4096];
  for (;;) {
    ssize_t n = read(p.fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      std::fprintf(stderr, "ringmq-nats-bench: a publisher's connection closed\n");
      std::exit(1);
    }
    std::string_view text(buffer, static_cast<size_t>(n));
    if (text.find("-ERR") != std::string_view::npos) Fatal(text);
    for (size_t at = text.find("PING\r\n"); at != std::string_view::npos;
         at = text.find("PING\r\n", at + 1)) {
      p.out.append("PONG\r\n");
    }
    Flush(p);
  }
}

void Bench::Fatal(std::string_view line) {
  std::fprintf(stderr, "ringmq-nats-bench: server said %.*s\n", static_cast<int>(line.size()),
               line.data());
  std::exit(1);
}

void Bench::ReadSubscriber(Subscriber& s, double now) {
  for (;;) {
    size_t old = s.in.size();
    s.in.resize(old + kReadChunk);
    ssize_t n = read(s.fd, s.in.data() + old, kReadChunk);
    if (n < 0) {
      s.in.resize(old);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Die("read");
    }
    if (n == 0) {
      std::fprintf(stderr, "ringmq-nats-bench: a subscriber's connection closed\n");
      std::exit(1);
    }
    s.in.resize(old + static_cast<size_t>(n));
    size_t used = Parse(s, now);
    s.in.erase(0, used);
  }
}

// Consumes whole protocol items from s.in; returns the bytes used.
size_t Bench::Parse(Subscriber& s, double now) {
  size_t at = 0;
  const std::string& in = s.in;
  while (at < in.size()) {
    size_t eol = in.find("\r\n", at);
    if (eol == std::string::npos) break;
    std::string_view line(in.data() + at, eol - at);
    if (line.size() >= 4 && line.compare(0, 4, "MSG ") == 0) {
      size_t space = line.rfind(' ');
      size_t size = std::strtoull(std::string(line.substr(space + 1)).c_str(), nullptr, 10);
      if (eol + 2 + size + 2 > in.size()) break;  // the payload is not all here yet
      std::string_view subject = line.substr(4, line.find(' ', 4) - 4);
      OnMessage(s, subject, in.data() + eol + 2, size, now);
      at = eol + 2 + size + 2;
      continue;
    }
    if (line == "PING") {
      WriteAll(s.fd, "PONG\r\n");
    } else if (line.rfind("-ERR", 0) == 0) {
      std::fprintf(stderr, "ringmq-nats-bench: subscriber got %.*s\n",
                   static_cast<int>(line.size()), line.data());
      std::exit(1);
    }
    at = eol + 2;
  }
  return at;
}

// kv, stream: the JetStream ack of publisher i's put number `seq`, on _INBOX.kv.<i>.<seq>:
// {"stream":...,"seq":N} (N the key's new revision) or {"error":...}.
void Bench::OnKvAck(Subscriber& s, std::string_view subject, std::string_view ack, double now) {
  size_t index = static_cast<size_t>(&s - subs_.data());
  Publisher& p = pubs_[index];
  uint64_t seq =
      std::strtoull(std::string(subject.substr(subject.rfind('.') + 1)).c_str(), nullptr, 10);
  uint64_t& expected = s.next_seq[index];
  if (seq != expected && measuring_) ++c_.reordered;
  expected = seq + 1;
  size_t at = ack.find("\"seq\":");
  if (ack.find("\"error\"") != std::string_view::npos || at == std::string_view::npos) {
    if (c_.errors++ == 0) {
      std::fprintf(stderr, "ringmq-nats-bench: put failed: %.*s\n", static_cast<int>(ack.size()),
                   ack.data());
    }
  } else {
    p.revision = std::strtoull(std::string(ack.substr(at + 6, 24)).c_str(), nullptr, 10);
  }
  if (p.delivered < p.sent) ++p.delivered;
  p.last_progress = now;
  if (measuring_) {
    ++c_.delivered;
    latency_.Add((NowNs() - p.send_ns[seq % p.send_ns.size()]) / 1000);
  }
}

void Bench::OnMessage(Subscriber& s, std::string_view subject, const char* payload, size_t size,
                      double now) {
  if (o_.scenario == "kv" || o_.scenario == "stream") {
    return OnKvAck(s, subject, std::string_view(payload, size), now);
  }
  if (size < kPayloadHeader) return;
  uint32_t index;
  uint64_t seq, sent_ns;
  std::memcpy(&index, payload, 4);
  std::memcpy(&seq, payload + 4, 8);
  std::memcpy(&sent_ns, payload + 12, 8);
  if (index >= pubs_.size()) return;
  Publisher& p = pubs_[index];
  uint64_t& expected = s.next_seq[index];
  if (seq < expected) {
    if (measuring_) ++c_.reordered;
  } else {
    if (seq > expected && measuring_) c_.gaps += seq - expected;
    expected = seq + 1;
  }
  if (p.delivered < p.sent * static_cast<uint64_t>(FanPerMessage())) ++p.delivered;
  p.last_progress = now;
  if (measuring_) {
    ++c_.delivered;
    latency_.Add((NowNs() - sent_ns) / 1000);
  }
}

void Bench::Loop(double until, bool stop_sending) {
  epoll_event events[512];
  for (;;) {
    double now = Now();
    if (now >= until) return;
    if (!stop_sending) {
      for (Publisher& p : pubs_) FillAndSend(p, now);
    } else {
      bool all_done = true;
      for (const Publisher& p : pubs_) all_done = all_done && InFlight(p) == 0;
      if (all_done) return;
    }
    int timeout_ms = o_.rate > 0 ? 1 : 10;
    int n = epoll_wait(epoll_, events, 512, timeout_ms);
    if (n < 0 && errno != EINTR) Die("epoll_wait");
    now = Now();
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag & kSubTag) {
        ReadSubscriber(subs_[tag & (kSubTag - 1)], now);
      } else {
        Publisher& p = pubs_[tag];
        if (events[i].events & EPOLLOUT) Flush(p);
        if (events[i].events & EPOLLIN) ReadPublisher(p);
      }
    }
  }
}

int Bench::Run() {
  SetUp();
  start_ = Now();
  for (Publisher& p : pubs_) p.last_progress = start_;
  Loop(start_ + o_.warmup_s, false);

  std::vector<double> server_cpu0;
  for (int pid : o_.server_pids) server_cpu0.push_back(ProcessCpuSeconds(pid));
  double own_cpu0 = OwnCpuSeconds();
  double t0 = Now();
  uint64_t stalls0 = c_.stalls;
  measuring_ = true;
  Loop(t0 + o_.duration_s, false);
  double t1 = Now();
  double own_cpu = OwnCpuSeconds() - own_cpu0;
  double server_cpu = 0;
  std::string per_server;
  for (size_t i = 0; i < o_.server_pids.size(); ++i) {
    double cpu = ProcessCpuSeconds(o_.server_pids[i]) - server_cpu0[i];
    server_cpu += cpu;
    per_server += (i ? "," : "") + std::to_string(cpu);
  }
  uint64_t delivered = c_.delivered;
  uint64_t stalls = c_.stalls - stalls0;
  measuring_ = false;
  Loop(t1 + o_.drain_s, true);

  double seconds = t1 - t0;
  std::printf(
      "label=%s scenario=%s publishers=%d subscribers=%d payload=%d window=%d rate=%g "
      "seconds=%.3f delivered=%" PRIu64
      " delivered_per_s=%.0f server_cpu_s=%.3f "
      "server_cpu_per_pid_s=%s msgs_per_server_cpu_s=%.0f server_cpu_us_per_msg=%.3f "
      "generator_cpu_s=%.3f latency_us_p50=%.0f latency_us_p99=%.0f gaps=%" PRIu64
      " reordered=%" PRIu64 " stalls=%" PRIu64 " errors=%" PRIu64 "\n",
      o_.label.empty() ? "-" : o_.label.c_str(), o_.scenario.c_str(), o_.publishers, o_.subscribers,
      o_.payload, o_.window, o_.rate, seconds, delivered, static_cast<double>(delivered) / seconds,
      server_cpu, per_server.empty() ? "-" : per_server.c_str(),
      server_cpu > 0 ? static_cast<double>(delivered) / server_cpu : 0.0,
      delivered ? server_cpu * 1e6 / static_cast<double>(delivered) : 0.0, own_cpu,
      latency_.Quantile(0.5), latency_.Quantile(0.99), c_.gaps, c_.reordered, stalls, c_.errors);
  std::fflush(stdout);
  return (c_.gaps || c_.reordered || stalls || c_.errors || delivered == 0) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options = Parse(argc, argv);
  Bench bench(options);
  return bench.Run();
}
