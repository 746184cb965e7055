// ringmq-bench: a verifying MQTT load generator (issue 6). See `ringmq-bench --help`.
//
// Design: W worker threads (--threads), each with its own epoll loop and its own share of the
// client connections (connection i belongs to worker i % W). Sockets are non-blocking with
// TCP_NODELAY; each loop iteration handles the ready sockets, lets publishers with room in their
// window encode messages into their output buffers, then writes every dirty buffer once (one
// write(2) per connection per iteration, however many packets it holds).
//
// Flow control: a publisher may have at most --window messages "in flight", a message being in
// flight until every subscriber that should receive it has (end-to-end, at every QoS), so the
// generator measures the broker at a bounded queue depth instead of flooding socket buffers.
// A window that makes no progress for --stall-ms is reopened and counted as a stall.
//
// Verification: every payload carries publisher id, sequence number and send time
// (wire::PayloadHeader); each subscriber keeps a SequenceTracker per publisher (sequence.h) and
// the result is judged by the QoS rules there. Latency is receive time minus send time
// (CLOCK_MONOTONIC, same host).
//
// Protocol levels (--protocol): every client speaks 3.1.1 or 5.0 (ClientLevel; mixed gives half
// of each). A 5.0 client keeps to what its CONNACK allows (Receive Maximum, Topic Alias Maximum,
// Maximum QoS, Maximum Packet Size), a 5.0 publisher sends the one property block of the run
// (Shared::publish_properties: --topic-alias, --user-properties) and a 5.0 subscriber checks the
// User Properties it receives against it (wire::CheckReceivedProperties).
//
// Connect and reject scenarios: each of the --clients connector slots behaves like a plain
// blocking client in a loop: TCP connect (kernel-chosen ephemeral port, no bind, no SO_REUSEADDR,
// no SO_LINGER), one write of the CONNECT, read the CONNACK, one write of a DISCONNECT if it was
// accepted, then wait for the broker to close (EOF) before close(2), and open the next
// connection at once. The broker closes first, so TIME_WAIT lands on the broker's side as it
// does with any MQTT client (MQTT-3.14.4-1: the server closes after DISCONNECT; MQTT-3.2.2-5
// after a refused CONNECT); a slot never resets its connection or closes it before the broker's
// FIN. Nagle makes no difference here: each side has one small write outstanding at a time.
//
// Thread safety: the main thread only reads atomics while workers run; everything else is
// per-worker until the workers have been joined.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "histogram.h"
#include "placement.h"
#include "scrape.h"
#include "sequence.h"
#include "session.h"
#include "transport.h"
#include "wire.h"

namespace ringmq::bench {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

// ---------------------------------------------------------------------------------------------
// Options

enum class Scenario { kFanin, kFanout, kPairs, kWildcard, kRetained, kConnect, kReject, kIdle };
// The protocol level of the clients: all 3.1.1, all 5.0, or half of each (ClientLevel).
enum class Protocol { k311, k5, kMixed };

struct Options {
  Scenario scenario = Scenario::kPairs;
  std::string scenario_name = "pairs";
  std::string host = "127.0.0.1";
  // --port: one broker, or the nodes of a cluster; clients are placed by PortIndex.
  std::vector<int> ports = {1883};
  int qos = 0;
  size_t payload = 64;
  int publishers = -1;   // -1: scenario default
  int subscribers = -1;  // -1: scenario default
  int clients = -1;      // connect/reject: concurrent connectors; idle: connections
  double rate = 0;       // per publisher, messages/s (connect/reject: connections/s per slot);
                         // 0 = unlimited (window-bound; connect/reject: back to back)
  int window = 16;
  double duration_s = 10;
  double warmup_s = 2;
  double drain_s = 5;
  int stall_ms = 2000;
  int threads = 1;
  int retained_topics = 1000;
  std::string reject_kind = "protocol";  // protocol | auth
  std::string username;
  std::string password;
  std::string bad_password = "wrong-password";
  // --broker-pid: the processes whose CPU (summed) and RSS (summed) are the broker's, e.g. every
  // ringmq node and nats-server of a cluster.
  std::vector<int> broker_pids;
  // --settle-ms: wait after the last SUBACK before publishing; -1: kMultiPortSettleMs with
  // several ports, else 0.
  int settle_ms = -1;
  std::string json_path;
  std::string csv_path;
  std::string label;
  std::string topic_prefix = "bench";
  bool quiet = false;
  bool retain = false;  // RETAIN on every measured PUBLISH
  int setup_timeout_s = 60;
  int handshakes = 64;  // TCP connects + CONNECTs in flight per worker during setup
  Protocol protocol = Protocol::k311;
  std::string protocol_name = "3.1.1";
  int user_properties = 0;  // 5.0 publishers: User Properties on each measured PUBLISH
  bool topic_alias = false;  // 5.0 publishers: Topic Alias after the first PUBLISH
  int receive_maximum = 0;   // 5.0 CONNECT: Receive Maximum (0: not sent, i.e. 65,535)
  // Transports (transport.h): TLS below, WebSocket above; neither: plain TCP.
  bool tls = false;
  transport::TlsOptions tls_options;
  bool websocket = false;
  std::string ws_path = "/mqtt";
  bool tls_resume = false;  // each client offers the session of its previous connection
  // Persistent subscribers (session.h): --clean-session 0 / --session-expiry S.
  session::SessionOptions sessions;
  std::string client_id_prefix;  // empty: rb<pid>, or rb with persistent subscribers
  // --metrics-port: the broker's /metrics counters containing metrics_match, read at the start
  // and end of the measured window (scrape.h).
  int metrics_port = 0;
  std::string metrics_match = "persist";
};

const char kHelp[] =
    "Usage: ringmq-bench SCENARIO [options]\n"
    "\n"
    "Scenarios:\n"
    "  fanin      many publishers -> few subscribers on one topic (default 100 -> 1)\n"
    "  fanout     few publishers -> many subscribers on one topic (default 1 -> 1000)\n"
    "  pairs      N publisher/subscriber pairs, a topic each (default 100)\n"
    "  wildcard   publishers on T/w/<i>/t, subscribers on T/w/+/t and T/# (default 10 -> 100)\n"
    "  retained   --retained-topics retained messages, subscribers subscribe/unsubscribe T/r/#\n"
    "             over and over (default 10 subscribers)\n"
    "  connect    connect + CONNACK + DISCONNECT, wait for the broker's close, as fast as\n"
    "             possible (--clients concurrent, 32)\n"
    "  reject     CONNECTs the broker must refuse: --reject-kind protocol (level 9) or auth\n"
    "             (--username with --bad-password); counts how each ended\n"
    "  idle       --clients idle connections (default 1000): connect rate, broker RSS per\n"
    "             connection over the second half of them, and growth from the start\n"
    "             (needs --broker-pid)\n"
    "\n"
    "Options:\n"
    "  --host H --port N          broker address (127.0.0.1:1883)\n"
    "  --port N1,N2,...           several ports (at most 64): the nodes of a cluster, clients\n"
    "                             placed so that messages cross nodes (n ports, ports[0] first):\n"
    "                             subscriber i on ports[i mod n]; pairs: publisher i on\n"
    "                             ports[(i+1) mod n] (never its subscriber's); fanin: publisher i\n"
    "                             on ports[1 + i mod (n-1)] (never the first port, where the\n"
    "                             default single subscriber is); fanout and wildcard: publisher\n"
    "                             i on ports[(i+1) mod n]; connect, reject, idle and retained\n"
    "                             clients i on ports[i mod n] (the retained loader on ports[0]);\n"
    "                             --metrics-port reads the node of ports[0]\n"
    "  --settle-ms MS             wait MS after the last SUBACK before publishing: interest\n"
    "                             crosses a cluster after the SUBACK (default: 1000 with several\n"
    "                             ports, else 0)\n"
    "  --qos 0|1|2                QoS of publishes and subscriptions (0)\n"
    "  --protocol 3.1.1|5|mixed   protocol level of every client (3.1.1); mixed: half 3.1.1,\n"
    "                             half 5.0 (subscribers, connectors and idle clients alternate,\n"
    "                             publishers alternate in twos, so pairs has every combination)\n"
    "  --user-properties N        5.0 publishers: N User Properties of 29 bytes each on every\n"
    "                             measured PUBLISH (0); 5.0 subscribers check they arrive\n"
    "                             unchanged and in order\n"
    "  --topic-alias              5.0 publishers: Topic Alias 1 with the topic on the first\n"
    "                             PUBLISH, then the alias alone (needs the broker's Topic Alias\n"
    "                             Maximum >= 1)\n"
    "  --receive-maximum N        5.0 CONNECT: Receive Maximum N (not sent: 65,535)\n"
    "  --tls                      MQTT over TLS 1.2/1.3 (OpenSSL); every connection makes a full\n"
    "                             handshake (unless --tls-resume), so the connect scenario\n"
    "                             measures TLS handshakes (TCP connect, handshake, CONNECT,\n"
    "                             CONNACK, DISCONNECT, the broker's close)\n"
    "  --cafile F                 --tls: CA certificates that verify the broker's certificate,\n"
    "                             which must also match --host (IP or DNS subject alt name)\n"
    "  --cert F --key F           --tls: client certificate chain and key (mutual TLS)\n"
    "  --insecure                 --tls: do not verify the broker's certificate\n"
    "  --tls-version 1.2|1.3      --tls: only this version (default: 1.2 or 1.3, OpenSSL picks)\n"
    "  --tls-resume               --tls: a client (a connector slot) offers the session of its\n"
    "                             previous connection (ticket or id): abbreviated handshakes\n"
    "  --websocket                MQTT over WebSocket (RFC 6455, subprotocol mqtt); with --tls:\n"
    "                             wss\n"
    "  --ws-path P                --websocket: the HTTP path of the upgrade (/mqtt)\n"
    "  --retain                   fanin/fanout/pairs/wildcard: every PUBLISH retained (off)\n"
    "  --clean-session 0|1        subscribers' Clean Session (3.1.1) / Clean Start (5.0) flag\n"
    "                             (1); 0 with 3.1.1 subscribers: persistent sessions\n"
    "  --session-expiry S         5.0 subscribers' Session Expiry Interval in seconds (not\n"
    "                             sent): above 0, persistent sessions. Persistent subscribers\n"
    "                             get fixed client ids (PREFIX-s<i>), so a second run with the\n"
    "                             same prefix resumes their sessions; messages those sessions\n"
    "                             kept from an earlier run are counted (verify.stale), not judged\n"
    "  --client-id-prefix P       client ids start with P (rb<pid>; rb with persistent\n"
    "                             subscribers)\n"
    "  --metrics-port N           read the broker's Prometheus /metrics on --host:N at the start\n"
    "                             and end of the measured window and report how far each counter\n"
    "                             whose name contains --metrics-match moved (summed over labels)\n"
    "  --metrics-match TEXT       which /metrics names --metrics-port reports (persist)\n"
    "  --payload BYTES            payload size, at least 24 (64)\n"
    "  --publishers N --subscribers N   client counts (scenario defaults)\n"
    "  --clients N                connect/reject/idle: connections\n"
    "  --rate R                   messages/s per publisher; 0 = unlimited, window-bound (0);\n"
    "                             connect/reject: connections/s per connector slot (0: back to\n"
    "                             back), so every server can be measured at the same load\n"
    "  --window N                 messages in flight per publisher, end to end (16)\n"
    "  --duration S --warmup S    measured seconds (10) after warm-up seconds (2)\n"
    "  --drain S                  wait at most S seconds for messages in flight at the end (5)\n"
    "  --stall-ms MS              reopen a window without progress after MS (2000)\n"
    "  --threads N                worker threads (1)\n"
    "  --retained-topics N        retained scenario: retained messages (1000)\n"
    "  --reject-kind protocol|auth\n"
    "  --username U --password P  credentials for every client (auth brokers)\n"
    "  --bad-password P           the password the auth reject scenario sends\n"
    "  --broker-pid PID[,PID...]  measure the broker's CPU (/proc/PID/stat) and RSS; several:\n"
    "                             summed (e.g. every ringmq node and nats-server of a cluster),\n"
    "                             each process's CPU also in broker.cpu_s_by_pid\n"
    "  --json FILE --csv FILE     write the result (CSV: header + one row; appends a row if the\n"
    "                             file exists)\n"
    "  --label TEXT               free text copied into the results (e.g. broker name)\n"
    "  --topic-prefix T           topic prefix (bench)\n"
    "  --handshakes N             setup: connections being opened at once per thread (64)\n"
    "  --setup-timeout S          give up if the clients are not all connected in S s (60)\n"
    "  --quiet                    no progress line even on a terminal\n"
    "\n"
    "Exit status: 0 verified, 1 verification failed, 2 usage or setup error.\n";

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr, "ringmq-bench: %s (try --help)\n", why.c_str());
  std::exit(2);
}

// The bound of the --port and --broker-pid lists: far above the nodes and servers of any cluster
// one generator drives from one machine.
constexpr size_t kMaxListItems = 64;
// Interest for a subscription reaches the other nodes of a cluster after its SUBACK (the node's
// NATS server, then its routes); a second covers that on a loaded 2-core machine, where it
// takes milliseconds.
constexpr int kMultiPortSettleMs = 1000;

// "N1,N2,..." as integers in [lo, hi], at most kMaxListItems of them.
std::vector<int> ParseIntList(const std::string& arg, const std::string& value, long lo, long hi) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= value.size()) {
    const size_t comma = std::min(value.find(',', start), value.size());
    const std::string item = value.substr(start, comma - start);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < lo || v > hi) {
      Usage(arg + ": '" + item + "' is not a number in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
    }
    if (out.size() == kMaxListItems) {
      Usage(arg + ": at most " + std::to_string(kMaxListItems) + " values");
    }
    out.push_back(static_cast<int>(v));
    start = comma + 1;
  }
  return out;
}

bool ParseScenario(const std::string& name, Scenario* s) {
  static const std::map<std::string, Scenario> kNames = {
      {"fanin", Scenario::kFanin},       {"fanout", Scenario::kFanout},
      {"pairs", Scenario::kPairs},       {"wildcard", Scenario::kWildcard},
      {"retained", Scenario::kRetained}, {"connect", Scenario::kConnect},
      {"reject", Scenario::kReject},     {"idle", Scenario::kIdle}};
  auto it = kNames.find(name);
  if (it == kNames.end()) return false;
  *s = it->second;
  return true;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  bool have_scenario = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kHelp, stdout);
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      if (have_scenario || !ParseScenario(arg, &o.scenario)) Usage("unknown scenario '" + arg + "'");
      o.scenario_name = arg;
      have_scenario = true;
      continue;
    }
    if (arg == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (arg == "--retain") {
      o.retain = true;
      continue;
    }
    if (arg == "--topic-alias") {
      o.topic_alias = true;
      continue;
    }
    if (arg == "--tls" || arg == "--websocket" || arg == "--insecure" || arg == "--tls-resume") {
      if (arg == "--tls") o.tls = true;
      if (arg == "--tls-resume") o.tls_resume = true;
      if (arg == "--websocket") o.websocket = true;
      if (arg == "--insecure") o.tls_options.insecure = true;
      continue;
    }
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else {
      if (i + 1 >= argc) Usage(arg + " needs a value");
      value = argv[++i];
    }
    auto number = [&](double lo, double hi) {
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0' || !(v >= lo && v <= hi)) {
        Usage(arg + ": '" + value + "' is not a number in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "]");
      }
      return v;
    };
    if (arg == "--host") o.host = value;
    else if (arg == "--port") o.ports = ParseIntList(arg, value, 1, 65535);
    else if (arg == "--settle-ms") o.settle_ms = static_cast<int>(number(0, 600000));
    else if (arg == "--qos") o.qos = static_cast<int>(number(0, 2));
    else if (arg == "--payload") o.payload = static_cast<size_t>(number(24, 1 << 20));
    else if (arg == "--publishers") o.publishers = static_cast<int>(number(0, 100000));
    else if (arg == "--subscribers") o.subscribers = static_cast<int>(number(0, 100000));
    else if (arg == "--clients") o.clients = static_cast<int>(number(1, 1000000));
    else if (arg == "--rate") o.rate = number(0, 1e9);
    else if (arg == "--window") o.window = static_cast<int>(number(1, 60000));
    else if (arg == "--duration") o.duration_s = number(0.1, 86400);
    else if (arg == "--warmup") o.warmup_s = number(0, 86400);
    else if (arg == "--drain") o.drain_s = number(0, 3600);
    else if (arg == "--stall-ms") o.stall_ms = static_cast<int>(number(10, 3600000));
    else if (arg == "--threads") o.threads = static_cast<int>(number(1, 64));
    else if (arg == "--retained-topics") o.retained_topics = static_cast<int>(number(1, 10000000));
    else if (arg == "--reject-kind") o.reject_kind = value;
    else if (arg == "--username") o.username = value;
    else if (arg == "--password") o.password = value;
    else if (arg == "--bad-password") o.bad_password = value;
    else if (arg == "--broker-pid") o.broker_pids = ParseIntList(arg, value, 1, 1 << 30);
    else if (arg == "--json") o.json_path = value;
    else if (arg == "--csv") o.csv_path = value;
    else if (arg == "--label") o.label = value;
    else if (arg == "--topic-prefix") o.topic_prefix = value;
    else if (arg == "--handshakes") o.handshakes = static_cast<int>(number(1, 100000));
    else if (arg == "--setup-timeout") o.setup_timeout_s = static_cast<int>(number(1, 3600));
    else if (arg == "--protocol") {
      if (value == "3.1.1" || value == "4") {
        o.protocol = Protocol::k311;
        o.protocol_name = "3.1.1";
      } else if (value == "5" || value == "5.0") {
        o.protocol = Protocol::k5;
        o.protocol_name = "5";
      } else if (value == "mixed") {
        o.protocol = Protocol::kMixed;
        o.protocol_name = "mixed";
      } else {
        Usage("--protocol must be 3.1.1, 5 or mixed");
      }
    }
    else if (arg == "--user-properties") {
      o.user_properties = static_cast<int>(number(0, wire::kMaxUserProperties));
    }
    else if (arg == "--receive-maximum") o.receive_maximum = static_cast<int>(number(1, 65535));
    else if (arg == "--cafile") o.tls_options.cafile = value;
    else if (arg == "--cert") o.tls_options.certfile = value;
    else if (arg == "--key") o.tls_options.keyfile = value;
    else if (arg == "--tls-version") {
      if (value != "1.2" && value != "1.3") Usage("--tls-version must be 1.2 or 1.3");
      o.tls_options.version = value;
    }
    else if (arg == "--clean-session") o.sessions.clean_session = number(0, 1) != 0;
    else if (arg == "--session-expiry") {
      o.sessions.session_expiry_s = static_cast<uint32_t>(number(0, 4294967295.0));
    }
    else if (arg == "--client-id-prefix") {
      if (value.empty() || value.size() > 40) Usage("--client-id-prefix: 1 to 40 characters");
      o.client_id_prefix = value;
    }
    else if (arg == "--metrics-port") o.metrics_port = static_cast<int>(number(1, 65535));
    else if (arg == "--metrics-match") o.metrics_match = value;
    else if (arg == "--ws-path") {
      if (value.empty() || value[0] != '/') Usage("--ws-path must start with /");
      o.ws_path = value;
    }
    else Usage("unknown option " + arg);
  }
  if (!have_scenario) Usage("no scenario given");
  if (o.reject_kind != "protocol" && o.reject_kind != "auth") {
    Usage("--reject-kind must be protocol or auth");
  }
  const bool publishing = o.scenario == Scenario::kFanin || o.scenario == Scenario::kFanout ||
                          o.scenario == Scenario::kPairs || o.scenario == Scenario::kWildcard;
  if ((o.user_properties > 0 || o.topic_alias) && !publishing) {
    Usage("--user-properties and --topic-alias apply to fanin, fanout, pairs and wildcard");
  }
  if ((o.user_properties > 0 || o.topic_alias || o.receive_maximum > 0) &&
      o.protocol == Protocol::k311) {
    Usage("--user-properties, --topic-alias and --receive-maximum need --protocol 5 or mixed");
  }
  const transport::TlsOptions& t = o.tls_options;
  if (!o.tls && (!t.cafile.empty() || !t.certfile.empty() || !t.keyfile.empty() || t.insecure ||
                 !t.version.empty() || o.tls_resume)) {
    Usage("--cafile, --cert, --key, --insecure, --tls-version and --tls-resume need --tls");
  }
  if (o.tls && t.cafile.empty() && !t.insecure) Usage("--tls needs --cafile (or --insecure)");
  if (t.certfile.empty() != t.keyfile.empty()) Usage("--cert and --key go together");
  if ((o.tls || o.websocket) && o.scenario == Scenario::kRetained) {
    Usage("retained: --tls and --websocket are not supported (its loader is a plain socket)");
  }
  if (!o.websocket && o.ws_path != "/mqtt") Usage("--ws-path needs --websocket");
  o.tls_options.host = o.host;
  if (o.scenario == Scenario::kReject && o.reject_kind == "auth" && o.username.empty()) {
    o.username = "bench";
  }
  auto def = [](int& v, int d) {
    if (v < 0) v = d;
  };
  switch (o.scenario) {
    case Scenario::kFanin: def(o.publishers, 100); def(o.subscribers, 1); break;
    case Scenario::kFanout: def(o.publishers, 1); def(o.subscribers, 1000); break;
    case Scenario::kPairs:
      def(o.publishers, 100);
      def(o.subscribers, o.publishers);
      if (o.subscribers != o.publishers) Usage("pairs: --subscribers must equal --publishers");
      break;
    case Scenario::kWildcard: def(o.publishers, 10); def(o.subscribers, 100); break;
    case Scenario::kRetained: def(o.publishers, 1); def(o.subscribers, 10); o.publishers = 1; break;
    case Scenario::kConnect:
    case Scenario::kReject: def(o.clients, 32); o.publishers = o.subscribers = 0; break;
    case Scenario::kIdle: def(o.clients, 1000); o.publishers = o.subscribers = 0; break;
  }
  // Mixed: subscriber i is 5.0 when i is odd (ClientLevel).
  const bool any_5 = o.protocol == Protocol::k5 ||
                     (o.protocol == Protocol::kMixed && o.subscribers >= 2);
  const bool any_311 = o.protocol == Protocol::k311 ||
                       (o.protocol == Protocol::kMixed && o.subscribers >= 1);
  const std::string session_problem =
      session::CheckSessionOptions(o.sessions, publishing, any_311, any_5);
  if (!session_problem.empty()) Usage(session_problem);
  if (o.settle_ms < 0) o.settle_ms = o.ports.size() > 1 ? kMultiPortSettleMs : 0;
  if (o.client_id_prefix.empty()) {
    const bool persistent = !o.sessions.clean_session || o.sessions.session_expiry_s != 0;
    o.client_id_prefix = persistent ? "rb" : "rb" + std::to_string(getpid());
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// /proc readings

struct ProcSample {
  bool ok = false;
  double cpu_s = 0;
  uint64_t rss_kib = 0;
  // /proc/PID/io write_bytes: bytes the process caused to be written to storage (page cache
  // write-back included, whenever it happens); -1 if unreadable (another user's process).
  int64_t write_bytes = -1;
};

ProcSample ReadProc(int pid) {
  ProcSample s;
  if (pid <= 0) return s;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return s;
  char buf[4096];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return s;
  unsigned long utime = 0, stime = 0;
  // state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                  &stime) != 2) {
    return s;
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.cpu_s = static_cast<double>(utime + stime) / tick;
  std::snprintf(path, sizeof path, "/proc/%d/status", pid);
  f = std::fopen(path, "r");
  if (f != nullptr) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::strncmp(line, "VmRSS:", 6) == 0) {
        s.rss_kib = std::strtoull(line + 6, nullptr, 10);
        break;
      }
    }
    std::fclose(f);
  }
  std::snprintf(path, sizeof path, "/proc/%d/io", pid);
  f = std::fopen(path, "r");
  if (f != nullptr) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      if (std::strncmp(line, "write_bytes:", 12) == 0) {
        s.write_bytes = static_cast<int64_t>(std::strtoull(line + 12, nullptr, 10));
        break;
      }
    }
    std::fclose(f);
  }
  s.ok = true;
  return s;
}

// The broker's processes (--broker-pid), each read, and their sum: CPU and RSS add up; the sum is
// ok only if every process was read, and write_bytes only if every one was readable.
struct BrokerSample {
  std::vector<ProcSample> each;
  ProcSample sum;
};

BrokerSample ReadBroker(const std::vector<int>& pids) {
  BrokerSample b;
  b.sum.ok = !pids.empty();
  b.sum.write_bytes = 0;
  for (const int pid : pids) {
    const ProcSample s = ReadProc(pid);
    b.each.push_back(s);
    b.sum.ok = b.sum.ok && s.ok;
    b.sum.cpu_s += s.cpu_s;
    b.sum.rss_kib += s.rss_kib;
    b.sum.write_bytes = s.write_bytes >= 0 && b.sum.write_bytes >= 0
                            ? b.sum.write_bytes + s.write_bytes
                            : -1;
  }
  return b;
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// Shared run state

enum class Phase : int { kSetup, kRun, kStop, kDone };

// Written by its publisher's worker (sent) and by subscribers' workers (delivered).
struct PublisherShared {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> delivered{0};  // deliveries to all subscribers that expect it
  std::atomic<uint64_t> acked{0};      // PUBACK / PUBCOMP received
};

struct Shared {
  Options options;
  // One resolved address per --port (same host, so the same family and size); address is the
  // first port's, which the retained loader and --metrics-port use.
  std::vector<sockaddr_storage> addresses;
  sockaddr_storage address{};
  socklen_t address_size = 0;
  std::vector<std::string> topics;  // per publisher
  std::vector<uint32_t> fan;         // subscribers expecting each publisher
  std::unique_ptr<PublisherShared[]> publishers;
  std::atomic<int> phase{static_cast<int>(Phase::kSetup)};
  std::atomic<int> ready{0};         // clients connected (and subscribed)
  std::atomic<int> setup_failed{0};
  uint64_t process_start_ns = 0;     // before any client connects: older messages are stale
  uint64_t t0_ns = 0;                // run start (warm-up begins); set before phase kRun
  uint64_t measure_start_ns = 0;
  uint64_t measure_end_ns = 0;
  // Live counters for the progress line (relaxed).
  std::atomic<uint64_t> live_sent{0};
  std::atomic<uint64_t> live_delivered{0};
  std::atomic<uint64_t> live_errors{0};
  std::atomic<uint64_t> live_p99_ns{0};
  // 5.0 publishers' property block (Topic Alias, User Properties), the same for all of them,
  // and the User Properties a 5.0 subscriber expects from a 5.0 publisher.
  std::string publish_properties;
  std::vector<std::string> expected_user_properties;
  // --tls: the SSL_CTX every connection shares (configured before the workers start).
  std::unique_ptr<transport::TlsClientContext> tls;
  // --websocket: the upgrade's Host header (host:port) for each --port.
  std::vector<std::string> ws_host_headers;
};

bool SubscriberExpects(const Options& o, int subscriber, int publisher) {
  return o.scenario != Scenario::kPairs || subscriber == publisher;
}

// ---------------------------------------------------------------------------------------------
// Worker

enum class Role : uint8_t { kPublisher, kSubscriber, kConnector, kIdle, kRetainer };

// Which --port client `index` of `role` connects to (placement.h states the rule).
size_t PortIndex(const Options& o, Role role, int index) {
  PlacedAs kind = PlacedAs::kSubscriberOrOther;
  if (role == Role::kPublisher) {
    kind = o.scenario == Scenario::kFanin ? PlacedAs::kFaninPublisher : PlacedAs::kPublisher;
  }
  return ringmq::bench::PortIndex(o.ports.size(), kind, static_cast<size_t>(index));
}

// The protocol level of client `index` of `role`. Mixed: subscribers (and connector slots,
// idle and retained clients) alternate 3.1.1, 5.0 by index; publishers alternate in twos
// (3.1.1, 3.1.1, 5.0, 5.0, ...), so that pair i of the pairs scenario is each of the four
// combinations for one i in four, and a fanin's or fanout's lone client is 3.1.1.
uint8_t ClientLevel(const Options& o, Role role, int index) {
  switch (o.protocol) {
    case Protocol::k311: return wire::kMqtt311;
    case Protocol::k5: return wire::kMqtt5;
    case Protocol::kMixed: break;
  }
  const int bit = role == Role::kPublisher ? (index / 2) % 2 : index % 2;
  return bit != 0 ? wire::kMqtt5 : wire::kMqtt311;
}

enum class State : uint8_t {
  kUnused,
  kTcpConnecting,
  kTransportHandshake,  // --tls / --websocket: TLS handshake and/or HTTP upgrade
  kAwaitConnack,
  kAwaitSuback,
  kReady,
  kAwaitClose,  // connect/reject: waiting for the broker to close
  kClosed,
};

struct Conn {
  int fd = -1;
  Role role = Role::kPublisher;
  State state = State::kUnused;
  int index = 0;  // publisher id, subscriber index or connector slot
  size_t port_index = 0;  // into Options::ports (PortIndex)
  bool epollout = false;
  bool dirty = false;
  uint16_t next_packet_id = 1;
  uint8_t level = wire::kMqtt311;
  // 5.0, from the CONNACK: the broker's Receive Maximum (QoS > 0 PUBLISHes unacknowledged at
  // once, 5.0:MQTT-3.3.4-7) and whether the Topic Alias was sent with its topic yet.
  uint16_t server_receive_maximum = 65535;
  bool topic_alias_set = false;
  uint64_t acked = 0;  // publisher: QoS 1/2 flows completed (PUBACK, PUBCOMP, PUBREC >= 0x80)
  wire::Buffer in;   // MQTT bytes received
  wire::Buffer out;  // MQTT bytes to send
  // --tls / --websocket: the layers between the socket and `in`/`out`, and the wire bytes they
  // produced that are still to be written (without a stack `out` is written as is).
  std::unique_ptr<transport::Stack> stack;
  wire::Buffer wire_out;
  // --tls-resume: the session of the previous connection, offered by the next one.
  std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> tls_session{nullptr,
                                                                        &SSL_SESSION_free};
  uint64_t started_ns = 0;  // connect/reject/idle: when the TCP connect began
  // Publisher (sent: messages; for a connector slot, connections started).
  uint64_t sent = 0;
  uint64_t forgiven = 0;        // deliveries written off by stall recovery
  uint64_t last_progress_ns = 0;
  uint64_t last_delivered = 0;
  // Subscriber.
  std::unordered_map<uint32_t, SequenceTracker> trackers;
  // Retained subscriber: per cycle.
  std::vector<uint8_t> retained_seen;
  uint32_t retained_got = 0;
  bool retained_subscribed = false;
  uint64_t cycle_started_ns = 0;

  uint16_t NextPacketId() {
    const uint16_t id = next_packet_id;
    next_packet_id = next_packet_id == 65535 ? 1 : next_packet_id + 1;
    return id;
  }
};

struct SecondSample {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  LatencyHistogram latency;
};

struct ConnectOutcomes {
  uint64_t attempts = 0;
  uint64_t accepted = 0;         // CONNACK 0x00
  uint64_t refused[256] = {};    // CONNACK return / reason code (index = code), [0] unused
  uint64_t refused_other = 0;    // CONNACK with a code other than 0x01..0x05 (3.1.1's)
  uint64_t closed = 0;           // closed without CONNACK
  uint64_t errors = 0;           // connect failed, reset before anything
  uint64_t timeouts = 0;
};

class Worker {
 public:
  Worker(Shared* shared, int id) : shared_(shared), o_(shared->options), id_(id) {}

  void AddClient(Role role, int index) {
    Conn c;
    c.role = role;
    c.index = index;
    c.port_index = PortIndex(o_, role, index);
    conns_.push_back(std::move(c));
  }

  void Run();

  // Results, read after join.
  LatencyHistogram latency;  // measured window
  std::vector<SecondSample> seconds;
  VerifyCounts verify;
  uint64_t sent_measured = 0;
  uint64_t delivered_measured = 0;
  uint64_t stalls = 0;
  uint64_t unexpected_closes = 0;
  uint64_t protocol_errors = 0;
  uint64_t property_errors = 0;    // 5.0 deliveries whose properties are not what was sent
  uint64_t publish_refused = 0;    // 5.0 PUBACK / PUBREC with a reason code >= 0x80
  uint64_t server_disconnects = 0; // 5.0 DISCONNECTs from the broker
  uint64_t transport_errors = 0;   // TLS or WebSocket failures (handshake, records, frames)
  std::string transport_error;     // the first of them
  std::string tls_version;         // --tls: version and cipher of the first handshake
  std::string tls_cipher;
  uint64_t tls_handshakes = 0;     // --tls: completed, and of those abbreviated (resumed)
  uint64_t tls_resumed = 0;
  int last_refusal_code = -1;      // the last of those reason codes
  ConnectOutcomes outcomes;  // measured window
  uint64_t connected = 0;
  uint64_t sessions_present = 0;  // subscribers whose CONNACK said Session Present
  uint64_t connect_failures = 0;
  uint64_t first_connect_ns = 0;
  uint64_t last_connack_ns = 0;
  uint64_t retained_cycles = 0;

  std::vector<Conn> conns_;

 private:
  Phase phase() const { return static_cast<Phase>(shared_->phase.load(std::memory_order_acquire)); }
  bool StartConnect(Conn& c);
  void SendConnect(Conn& c);
  void OnEvent(Conn& c, uint32_t events);
  void OnReadable(Conn& c);
  bool StartTransport(Conn& c);
  bool TransportReceive(Conn& c, const uint8_t* data, size_t size);
  void OnTransportError(Conn& c);
  bool OnFrame(Conn& c, const wire::Frame& f);
  bool OnConnack(Conn& c, const wire::Frame& f);
  void OnServerDisconnect(Conn& c, const wire::Frame& f);
  void OnPublish(Conn& c, const wire::Frame& f);
  void OnConnectEnd(Conn& c, int code);  // code -1: closed without CONNACK, -2: error
  void StartConnector(Conn& c);
  void Close(Conn& c);
  void MarkDirty(Conn& c) {
    if (!c.dirty) {
      c.dirty = true;
      dirty_.push_back(static_cast<uint32_t>(&c - conns_.data()));
    }
  }
  void Flush();
  bool Publish(Conn& c, uint64_t now);
  void StartRetainedCycle(Conn& c, uint64_t now);
  void RecordLatency(uint64_t now, uint64_t latency_ns);
  SecondSample& SecondAt(uint64_t now);
  void RollSecond(uint64_t now);
  void SetupStep(uint64_t now);
  void ConnectStep(uint64_t now);
  void CheckTimeouts(uint64_t now);
  void FinishVerification();
  bool Measured(uint64_t t) const {
    return t >= shared_->measure_start_ns && t < shared_->measure_end_ns;
  }

  Shared* shared_;
  const Options& o_;
  int id_;
  int epoll_fd_ = -1;
  std::vector<uint32_t> dirty_;
  size_t next_to_connect_ = 0;
  int handshakes_in_flight_ = 0;
  bool level_refusal_reported_ = false;
  uint64_t current_second_ = UINT64_MAX;
  std::vector<uint8_t> read_scratch_;
  wire::Buffer raw_in_;  // --tls / --websocket: wire bytes of one recv, before the stack
};

// The largest WebSocket frame the generator takes from a broker. A broker may frame a whole send
// batch (many PUBLISHes of up to 1 MiB each) at once, and the payload goes up as it arrives
// (nothing is buffered per frame), so the bound only refuses lengths no send batch reaches.
constexpr uint64_t kMaxWebSocketFrameBytes = uint64_t{1} << 30;

constexpr uint64_t kConnectTimeoutNs = 10'000'000'000;

bool Worker::StartConnect(Conn& c) {
  const sockaddr_storage& address = shared_->addresses[c.port_index];
  c.fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    std::fprintf(stderr, "ringmq-bench: socket: %s\n", std::strerror(errno));
    return false;
  }
  const int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c.in.Clear();
  c.out.Clear();
  c.epollout = true;
  c.dirty = false;
  c.started_ns = NowNs();
  const int rc =
      connect(c.fd, reinterpret_cast<const sockaddr*>(&address), shared_->address_size);
  if (rc != 0 && errno != EINPROGRESS) {
    close(c.fd);
    c.fd = -1;
    return false;
  }
  c.state = State::kTcpConnecting;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u32 = static_cast<uint32_t>(&c - conns_.data());
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
  if (c.role != Role::kConnector) ++handshakes_in_flight_;
  return true;
}

void Worker::SendConnect(Conn& c) {
  const char* kind = "x";
  switch (c.role) {
    case Role::kPublisher: kind = "p"; break;
    case Role::kSubscriber: kind = "s"; break;
    case Role::kConnector: kind = "c"; break;
    case Role::kIdle: kind = "i"; break;
    case Role::kRetainer: kind = "r"; break;
  }
  c.level = ClientLevel(o_, c.role, c.index);
  const bool persistent = c.role == Role::kSubscriber &&
                          session::Persistent(o_.sessions, c.level == wire::kMqtt5);
  const std::string client_id =
      session::ClientId(o_.client_id_prefix, kind[0], c.index, id_, persistent);
  c.topic_alias_set = false;
  c.acked = 0;
  wire::ConnectFields f;
  f.client_id = client_id;
  f.username = o_.username;
  f.password = o_.password;
  f.protocol_level = c.level;
  f.receive_maximum = static_cast<uint16_t>(o_.receive_maximum);
  if (c.role == Role::kSubscriber) {
    f.clean_session = o_.sessions.clean_session;
    if (c.level == wire::kMqtt5) f.session_expiry_s = o_.sessions.session_expiry_s;
  }
  if (o_.scenario == Scenario::kReject) {
    if (o_.reject_kind == "protocol") {
      f.protocol_level = 9;
    } else {
      f.password = o_.bad_password;
    }
  }
  wire::EncodeConnect(f, c.out);
  c.state = State::kAwaitConnack;
  MarkDirty(c);
}

void Worker::Close(Conn& c) {
  if (c.fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
  }
  c.fd = -1;
  c.state = State::kClosed;
  c.in.Clear();
  c.out.Clear();
  if (o_.tls_resume && c.stack != nullptr && c.stack->open()) {
    // TLS 1.3 tickets arrive after the handshake: by the close they have been read.
    const auto& tls = static_cast<const transport::TlsClient&>(c.stack->layer(0));
    SSL_SESSION* session = SSL_get1_session(tls.ssl());
    if (session != nullptr && SSL_SESSION_is_resumable(session) == 1) {
      c.tls_session.reset(session);
    } else {
      SSL_SESSION_free(session);
    }
  }
  c.stack.reset();
  c.wire_out.Clear();
}

// After the TCP connect with --tls / --websocket: the stack's handshakes come first; CONNECT
// follows once it is open (TransportReceive).
bool Worker::StartTransport(Conn& c) {
  c.stack = std::make_unique<transport::Stack>();
  if (o_.tls) {
    auto tls = std::make_unique<transport::TlsClient>(*shared_->tls);
    if (c.tls_session != nullptr) SSL_set_session(tls->ssl(), c.tls_session.get());
    c.stack->Add(std::move(tls));
  }
  if (o_.websocket) {
    c.stack->Add(std::make_unique<transport::WebSocketClient>(
        shared_->ws_host_headers[c.port_index], o_.ws_path, kMaxWebSocketFrameBytes));
  }
  c.wire_out.Clear();
  c.state = State::kTransportHandshake;
  if (!c.stack->Start(c.wire_out)) return false;
  MarkDirty(c);
  return true;
}

// Wire bytes up through the stack into c.in. Returns false if the connection was closed.
bool Worker::TransportReceive(Conn& c, const uint8_t* data, size_t size) {
  if (!c.stack->Receive(data, size, c.in, c.wire_out)) {
    OnTransportError(c);
    return false;
  }
  if (!c.wire_out.empty()) MarkDirty(c);
  if (c.state == State::kTransportHandshake && c.stack->open()) {
    if (o_.tls) {
      const auto& tls = static_cast<const transport::TlsClient&>(c.stack->layer(0));
      ++tls_handshakes;
      if (SSL_session_reused(tls.ssl()) == 1) ++tls_resumed;
      if (tls_version.empty()) {
        tls_version = SSL_get_version(tls.ssl());
        tls_cipher = SSL_get_cipher_name(tls.ssl());
      }
    }
    SendConnect(c);
  }
  return true;
}

// A TLS or WebSocket failure ends the connection: during its handshake it is a failed connect
// (of the setup, or of a connector slot's attempt), later an unexpected close.
void Worker::OnTransportError(Conn& c) {
  if (++transport_errors == 1) transport_error = c.stack->error();
  shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
  if (transport_errors <= 3) {
    std::fprintf(stderr, "ringmq-bench: %s\n", c.stack->error().c_str());
  }
  const bool connecting = c.state == State::kTransportHandshake ||
                          c.state == State::kAwaitConnack;
  if (c.role == Role::kConnector) {
    if (connecting) OnConnectEnd(c, -2);
  } else if (connecting) {
    --handshakes_in_flight_;
    shared_->setup_failed.fetch_add(1);
    ++connect_failures;
  } else if (phase() == Phase::kRun) {
    ++unexpected_closes;
  }
  Close(c);
}

void Worker::Flush() {
  for (uint32_t i : dirty_) {
    Conn& c = conns_[i];
    c.dirty = false;
    if (c.fd < 0 || c.state == State::kTcpConnecting) continue;
    wire::Buffer* out = &c.out;
    if (c.stack) {
      // One TLS record / WebSocket frame for everything encoded since the last flush.
      if (c.stack->open() && !c.stack->Send(c.out, c.wire_out)) {
        OnTransportError(c);
        continue;
      }
      out = &c.wire_out;
    }
    while (!out->empty()) {
      const ssize_t n = send(c.fd, out->data(), out->size(), MSG_NOSIGNAL);
      if (n > 0) {
        out->Consume(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    const bool want_out = !out->empty();
    if (want_out != c.epollout && c.fd >= 0) {
      epoll_event ev{};
      ev.events = EPOLLIN | (want_out ? uint32_t{EPOLLOUT} : 0u);
      ev.data.u32 = i;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
      c.epollout = want_out;
    }
  }
  dirty_.clear();
}

SecondSample& Worker::SecondAt(uint64_t now) {
  const uint64_t t0 = shared_->t0_ns;
  const size_t second = now > t0 ? static_cast<size_t>((now - t0) / 1'000'000'000) : 0;
  if (seconds.size() <= second) seconds.resize(second + 1);
  return seconds[second];
}

void Worker::RollSecond(uint64_t now) {
  if (shared_->t0_ns == 0 || now < shared_->t0_ns) return;
  const uint64_t second = (now - shared_->t0_ns) / 1'000'000'000;
  if (second != current_second_) {
    if (current_second_ != UINT64_MAX && current_second_ < seconds.size()) {
      shared_->live_p99_ns.store(seconds[current_second_].latency.Percentile(0.99),
                                 std::memory_order_relaxed);
    }
    current_second_ = second;
  }
}

void Worker::RecordLatency(uint64_t now, uint64_t latency_ns) {
  SecondSample& s = SecondAt(now);
  s.latency.Record(latency_ns);
  ++s.delivered;
  if (Measured(now)) {
    latency.Record(latency_ns);
    ++delivered_measured;
  }
}

void Worker::OnPublish(Conn& c, const wire::Frame& f) {
  wire::PublishView p;
  // A 5.0 PUBLISH with an empty topic would need a Topic Alias, which the generator's CONNECT
  // does not allow the broker to send (5.0:MQTT-3.1.2-27).
  if (!wire::ParsePublish(f, c.level, &p) || p.topic.empty()) {
    ++protocol_errors;
    shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (p.qos == 1) {
    wire::EncodeAck(wire::kPuback, p.packet_id, c.out);
    MarkDirty(c);
  } else if (p.qos == 2) {
    wire::EncodeAck(wire::kPubrec, p.packet_id, c.out);
    MarkDirty(c);
  }
  const uint64_t now = NowNs();
  wire::PayloadHeader h;
  if (!wire::ReadPayload(p.payload, p.payload_size, &h)) {
    ++verify.corrupt;
    shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.role == Role::kRetainer) {
    const bool retain_flag = p.retain;
    if (!retain_flag || h.sequence == 0 || h.sequence > c.retained_seen.size()) {
      if (retain_flag) ++verify.corrupt;
      return;  // a live message (none are published in this scenario) or a stray one
    }
    uint8_t& seen = c.retained_seen[h.sequence - 1];
    if (seen) {
      ++verify.duplicated;
    } else {
      seen = 1;
      ++verify.unique;
      ++c.retained_got;
    }
    SecondSample& s = SecondAt(now);
    ++s.delivered;
    if (Measured(now)) ++delivered_measured;
    shared_->live_delivered.fetch_add(1, std::memory_order_relaxed);
    if (c.retained_got == c.retained_seen.size()) {
      // Whole set received: the subscribe-to-last-message time is this cycle's latency.
      if (Measured(now)) latency.Record(now - c.cycle_started_ns);
      s.latency.Record(now - c.cycle_started_ns);
      if (Measured(now)) ++retained_cycles;
      wire::EncodeUnsubscribe(c.NextPacketId(), o_.topic_prefix + "/r/#", c.level, c.out);
      c.retained_subscribed = false;
      MarkDirty(c);
    }
    return;
  }
  if (session::PublishedBeforeRun(h.send_ns, shared_->process_start_ns, now)) {
    ++verify.stale;
    return;
  }
  if (h.publisher >= static_cast<uint32_t>(o_.publishers) ||
      !SubscriberExpects(o_, c.index, static_cast<int>(h.publisher))) {
    ++verify.corrupt;
    shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.level == wire::kMqtt5) {
    // The publisher's User Properties arrive unchanged; a 3.1.1 publisher's message has none.
    const bool from_mqtt5 =
        ClientLevel(o_, Role::kPublisher, static_cast<int>(h.publisher)) == wire::kMqtt5;
    const std::span<const std::string> expected =
        from_mqtt5 ? std::span<const std::string>(shared_->expected_user_properties)
                   : std::span<const std::string>();
    if (wire::CheckReceivedProperties(p.properties, p.properties_size, expected) !=
        wire::PropertyCheck::kOk) {
      ++property_errors;
      shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
    }
  }
  c.trackers[h.publisher].Receive(h.sequence);
  shared_->publishers[h.publisher].delivered.fetch_add(1, std::memory_order_relaxed);
  shared_->live_delivered.fetch_add(1, std::memory_order_relaxed);
  RecordLatency(now, now > h.send_ns ? now - h.send_ns : 0);
}

void Worker::OnConnectEnd(Conn& c, int code) {
  const uint64_t now = NowNs();
  if (Measured(now)) {
    ++outcomes.attempts;
    if (code == 0) {
      ++outcomes.accepted;
    } else if (code >= 1 && code <= 255) {
      ++outcomes.refused[code];
      if (code > 5) ++outcomes.refused_other;
    } else if (code == -1) {
      ++outcomes.closed;
    } else if (code == -3) {
      ++outcomes.timeouts;
    } else {
      ++outcomes.errors;
    }
    latency.Record(now - c.started_ns);
  }
  SecondSample& s = SecondAt(now);
  ++s.delivered;
  s.latency.Record(now - c.started_ns);
  shared_->live_delivered.fetch_add(1, std::memory_order_relaxed);
  if (code == -2 || code == -3) shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
}

// Returns false on a malformed or unexpected CONNACK (the caller counts a protocol error and
// closes); a refusal, or a CONNACK whose limits this run cannot keep, closes here.
bool Worker::OnConnack(Conn& c, const wire::Frame& f) {
  wire::Connack ack;
  if (c.state != State::kAwaitConnack || !wire::ParseConnack(f, c.level, &ack)) {
    ++protocol_errors;
    return false;
  }
  // A broker that does not speak 5.0 refuses a level-5 CONNECT in the 3.1.1 layout (0x01).
  const bool level_refused = c.level == wire::kMqtt5 && !ack.mqtt5 && ack.code != 0;
  if (c.role == Role::kConnector) {
    if (level_refused && o_.scenario == Scenario::kConnect && !level_refusal_reported_) {
      level_refusal_reported_ = true;
      std::fprintf(stderr, "ringmq-bench: CONNACK 0x%02x in the 3.1.1 layout to a level-5 "
                   "CONNECT: the broker does not speak MQTT 5.0\n", ack.code);
    }
    OnConnectEnd(c, ack.code);
    if (ack.code == 0) {
      wire::EncodeDisconnect(c.out);
      MarkDirty(c);
    }
    c.state = State::kAwaitClose;  // the broker closes after DISCONNECT or a refusal
    return true;
  }
  --handshakes_in_flight_;
  const char* role = c.role == Role::kPublisher ? "publisher" : "subscriber";
  std::string why;
  char buf[160];
  if (ack.code != 0) {
    std::snprintf(buf, sizeof buf, "CONNACK 0x%02x for a %s client%s", ack.code, role,
                  level_refused ? " (in the 3.1.1 layout: the broker does not speak MQTT 5.0)"
                                : "");
    why = buf;
  } else if (c.level == wire::kMqtt5 && c.role == Role::kPublisher) {
    // What the broker's CONNACK allows a 5.0 publisher (§3.2.2.3).
    const size_t packet_size = 1 + 4 + 2 + shared_->topics[static_cast<size_t>(c.index)].size() +
                               2 + 4 + shared_->publish_properties.size() + o_.payload;
    if (o_.topic_alias && ack.topic_alias_maximum == 0) {
      why = "--topic-alias: the broker's CONNACK allows no Topic Alias (Topic Alias Maximum 0)";
    } else if (o_.qos > ack.maximum_qos) {
      std::snprintf(buf, sizeof buf, "--qos %d: the broker's CONNACK says Maximum QoS %d",
                    o_.qos, ack.maximum_qos);
      why = buf;
    } else if (ack.maximum_packet_size != 0 && packet_size > ack.maximum_packet_size) {
      std::snprintf(buf, sizeof buf, "a PUBLISH of up to %zu bytes exceeds the broker's Maximum "
                    "Packet Size %u", packet_size, ack.maximum_packet_size);
      why = buf;
    }
  }
  if (!why.empty()) {
    // A refusal, not a protocol error: the connection ends here.
    if (++connect_failures <= 3) std::fprintf(stderr, "ringmq-bench: %s\n", why.c_str());
    shared_->setup_failed.fetch_add(1);
    Close(c);
    return true;
  }
  c.server_receive_maximum = ack.receive_maximum;
  last_connack_ns = NowNs();
  ++connected;
  if (c.role == Role::kSubscriber && ack.session_present) ++sessions_present;
  if (c.role == Role::kSubscriber) {
    std::string filter;
    if (o_.scenario == Scenario::kPairs) {
      filter = shared_->topics[static_cast<size_t>(c.index)];
    } else if (o_.scenario == Scenario::kWildcard) {
      filter = c.index % 2 == 0 ? o_.topic_prefix + "/w/+/t" : o_.topic_prefix + "/#";
    } else {
      filter = shared_->topics[0];
    }
    wire::EncodeSubscribe(c.NextPacketId(), filter, static_cast<uint8_t>(o_.qos), c.level, c.out);
    MarkDirty(c);
    c.state = State::kAwaitSuback;
  } else {
    c.state = State::kReady;
    shared_->ready.fetch_add(1);
  }
  return true;
}

// A 5.0 broker may close with a DISCONNECT that says why (§3.14); the connection is then over.
void Worker::OnServerDisconnect(Conn& c, const wire::Frame& f) {
  uint8_t reason = 0;
  if (!wire::ParseDisconnect(f, &reason)) ++protocol_errors;
  ++server_disconnects;
  if (server_disconnects <= 3) {
    std::fprintf(stderr, "ringmq-bench: DISCONNECT 0x%02x from the broker\n", reason);
  }
  if (c.role == Role::kConnector) {
    if (c.state == State::kAwaitConnack) OnConnectEnd(c, -1);
    Close(c);  // ConnectStep starts the slot's next connection
    return;
  }
  if (phase() == Phase::kRun) {
    ++unexpected_closes;
    shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
  }
  if (c.state == State::kAwaitConnack || c.state == State::kAwaitSuback) {
    if (c.state == State::kAwaitConnack) --handshakes_in_flight_;
    shared_->setup_failed.fetch_add(1);
    ++connect_failures;
  }
  Close(c);
}

// Returns false if the connection is to be closed as a protocol error; handlers that end a
// connection for another reason close it themselves (c.fd < 0 afterwards).
bool Worker::OnFrame(Conn& c, const wire::Frame& f) {
  switch (f.type) {
    case wire::kConnack:
      return OnConnack(c, f);
    case wire::kSuback:
    case wire::kUnsuback: {
      wire::Suback ack;
      if (!wire::ParseSuback(f, c.level, &ack)) return false;
      if (f.type == wire::kUnsuback) {
        if (c.role == Role::kRetainer && phase() == Phase::kRun &&
            NowNs() < shared_->measure_end_ns) {
          StartRetainedCycle(c, NowNs());
        }
        return true;
      }
      if (c.state == State::kAwaitSuback) {
        if (ack.codes[0] >= 0x80) {  // 3.1.1: 0x80 Failure; 5.0: every code from 0x80 refuses
          if (++connect_failures <= 3) {
            std::fprintf(stderr, "ringmq-bench: subscription refused (SUBACK 0x%02x)\n",
                         ack.codes[0]);
          }
          shared_->setup_failed.fetch_add(1);
          Close(c);
          return true;
        }
        c.state = State::kReady;
        shared_->ready.fetch_add(1);
      }
      return true;
    }
    case wire::kPublish:
      OnPublish(c, f);
      return true;
    case wire::kPuback:
    case wire::kPubrec:
    case wire::kPubcomp: {
      wire::Ack ack;
      if (!wire::ParseAck(f, c.level, &ack)) return false;
      // 5.0: a reason code from 0x80 refuses the message and ends its flow (§3.4.2.1, §3.5.2.1);
      // 0x10 No matching subscribers is a success.
      const bool refused = ack.reason >= 0x80;
      if (refused) {
        ++publish_refused;
        last_refusal_code = ack.reason;
        shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
      }
      if (f.type == wire::kPubrec && !refused) {
        wire::EncodeAck(wire::kPubrel, ack.packet_id, c.out);
        MarkDirty(c);
        return true;
      }
      ++c.acked;
      if (c.role == Role::kPublisher || c.role == Role::kRetainer) {
        shared_->publishers[static_cast<size_t>(c.index)].acked.fetch_add(
            1, std::memory_order_relaxed);
      }
      return true;
    }
    case wire::kPubrel: {
      wire::Ack ack;
      if (!wire::ParseAck(f, c.level, &ack)) return false;
      wire::EncodeAck(wire::kPubcomp, ack.packet_id, c.out);
      MarkDirty(c);
      return true;
    }
    case wire::kPingresp:
      return true;
    case wire::kDisconnect:
      if (c.level != wire::kMqtt5) return false;  // a 3.1.1 server never sends one
      OnServerDisconnect(c, f);
      return true;
    default:
      ++protocol_errors;
      return false;
  }
}

void Worker::OnReadable(Conn& c) {
  constexpr size_t kReadSize = 64 * 1024;
  for (int rounds = 0; rounds < 4; ++rounds) {
    uint8_t* p = c.stack ? raw_in_.Reserve(kReadSize) : c.in.Reserve(kReadSize);
    const ssize_t n = recv(c.fd, p, kReadSize, 0);
    if (n <= 0) {
      c.in.Commit(0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      // Closed by the broker (or reset).
      if (c.role == Role::kConnector) {
        if (c.state == State::kAwaitConnack || c.state == State::kTransportHandshake) {
          OnConnectEnd(c, n == 0 ? -1 : -2);
        }
        Close(c);
        // Like a client looping on connect: the next connection starts now, not after the
        // rest of this batch of events.
        if (phase() == Phase::kRun) StartConnector(c);
        return;
      }
      if (c.state != State::kClosed && phase() == Phase::kRun) {
        ++unexpected_closes;
        shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
      }
      if (c.state == State::kAwaitConnack || c.state == State::kTcpConnecting ||
          c.state == State::kTransportHandshake) {
        --handshakes_in_flight_;
        shared_->setup_failed.fetch_add(1);
        ++connect_failures;
      }
      Close(c);
      return;
    }
    if (c.stack) {
      if (!TransportReceive(c, p, static_cast<size_t>(n))) return;
    } else {
      c.in.Commit(static_cast<size_t>(n));
    }
    wire::Frame f;
    size_t used = 0;
    for (;;) {
      const auto status = wire::SplitFrame(c.in.data() + used, c.in.size() - used, 1 << 24, &f);
      if (status == wire::SplitStatus::kNeedMore) break;
      if (status == wire::SplitStatus::kInvalid || !OnFrame(c, f)) {
        ++protocol_errors;
        Close(c);
        return;
      }
      used += f.total_size;
      if (c.fd < 0) return;
    }
    c.in.Consume(used);
    if (static_cast<size_t>(n) < kReadSize) break;
  }
}

void Worker::OnEvent(Conn& c, uint32_t events) {
  if (c.fd < 0) return;
  if (c.state == State::kTcpConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
      if (c.role == Role::kConnector) {
        OnConnectEnd(c, -2);
      } else {
        --handshakes_in_flight_;
        ++connect_failures;
        if (connect_failures <= 3) {
          std::fprintf(stderr, "ringmq-bench: connect: %s\n", std::strerror(err));
        }
        shared_->setup_failed.fetch_add(1);
      }
      Close(c);
      return;
    }
    if (first_connect_ns == 0) first_connect_ns = c.started_ns;
    if (o_.tls || o_.websocket) {
      if (!StartTransport(c)) OnTransportError(c);
      return;
    }
    SendConnect(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) OnReadable(c);
  if (c.fd >= 0 && (events & EPOLLOUT)) MarkDirty(c);
}

// Encodes as many messages as window and rate allow (bounded per call). Returns true if it sent.
bool Worker::Publish(Conn& c, uint64_t now) {
  PublisherShared& ps = shared_->publishers[static_cast<size_t>(c.index)];
  const uint64_t fan = shared_->fan[static_cast<size_t>(c.index)];
  const uint64_t delivered = ps.delivered.load(std::memory_order_relaxed);
  if (delivered != c.last_delivered) {
    c.last_delivered = delivered;
    c.last_progress_ns = now;
  }
  uint64_t budget = 64;  // bound per loop iteration, so one publisher cannot starve the rest
  if (fan > 0) {
    const uint64_t window_deliveries = static_cast<uint64_t>(o_.window) * fan;
    const uint64_t in_flight = c.sent * fan - std::min(c.sent * fan, delivered + c.forgiven);
    if (in_flight + fan > window_deliveries) {
      if (now - c.last_progress_ns > static_cast<uint64_t>(o_.stall_ms) * 1'000'000) {
        c.forgiven += in_flight;  // reopen the window; the missing ones will count as lost
        c.last_progress_ns = now;
        ++stalls;
        shared_->live_errors.fetch_add(1, std::memory_order_relaxed);
      }
      return false;
    }
    budget = std::min(budget, (window_deliveries - in_flight) / fan);
  }
  if (o_.rate > 0) {
    // Publishers are spread evenly over one period (phase index/publishers) rather than all
    // sending at the same instant, which would measure burst queueing, not the broker.
    const double elapsed_s = static_cast<double>(now - shared_->t0_ns) / 1e9;
    const double phase = static_cast<double>(c.index) / std::max(o_.publishers, 1);
    const auto allowed = static_cast<uint64_t>(elapsed_s * o_.rate + phase);
    if (allowed <= c.sent) return false;
    budget = std::min(budget, allowed - c.sent);
  }
  // Nobody listens (fan 0, e.g. --subscribers 0): publish at the window size per iteration
  // while the socket keeps up.
  if (fan == 0 && c.out.size() > 256 * 1024) return false;
  const bool mqtt5 = c.level == wire::kMqtt5;
  if (mqtt5 && o_.qos > 0) {
    // The broker's Receive Maximum bounds this client's unacknowledged QoS 1/2 PUBLISHes
    // (5.0:MQTT-3.3.4-7) whatever the end-to-end window.
    const uint64_t unacked = c.sent - std::min(c.sent, c.acked);
    if (unacked >= c.server_receive_maximum) return false;
    budget = std::min<uint64_t>(budget, c.server_receive_maximum - unacked);
  }
  if (budget == 0) return false;
  if (c.sent == 0) c.last_progress_ns = now;
  const std::string& topic = shared_->topics[static_cast<size_t>(c.index)];
  const std::string_view properties =
      mqtt5 ? std::string_view(shared_->publish_properties) : std::string_view();
  for (uint64_t i = 0; i < budget; ++i) {
    ++c.sent;
    const uint16_t packet_id = o_.qos > 0 ? c.NextPacketId() : 0;
    // With --topic-alias the first PUBLISH sets alias 1 to the topic, the rest send the alias
    // with an empty topic (§3.3.2.3.4); the alias lives as long as the connection.
    const bool alias_only = mqtt5 && o_.topic_alias && c.topic_alias_set;
    uint8_t* payload =
        wire::EncodePublish(alias_only ? std::string_view() : std::string_view(topic),
                            static_cast<uint8_t>(o_.qos), o_.retain, packet_id, c.level,
                            properties, o_.payload, c.out);
    c.topic_alias_set = mqtt5 && o_.topic_alias;
    wire::WritePayload(payload, o_.payload, static_cast<uint32_t>(c.index), c.sent, now);
  }
  ps.sent.store(c.sent, std::memory_order_relaxed);
  SecondAt(now).sent += budget;
  if (Measured(now)) sent_measured += budget;
  shared_->live_sent.fetch_add(budget, std::memory_order_relaxed);
  MarkDirty(c);
  return true;
}

void Worker::StartRetainedCycle(Conn& c, uint64_t now) {
  std::fill(c.retained_seen.begin(), c.retained_seen.end(), 0);
  c.retained_got = 0;
  c.cycle_started_ns = now;
  c.retained_subscribed = true;
  wire::EncodeSubscribe(c.NextPacketId(), o_.topic_prefix + "/r/#", static_cast<uint8_t>(o_.qos),
                        c.level, c.out);
  MarkDirty(c);
}

void Worker::SetupStep(uint64_t) {
  while (next_to_connect_ < conns_.size() && handshakes_in_flight_ < o_.handshakes) {
    Conn& c = conns_[next_to_connect_++];
    if (c.role == Role::kConnector) continue;  // connectors start with the run
    if (!StartConnect(c)) {
      shared_->setup_failed.fetch_add(1);
      ++connect_failures;
    }
  }
}

void Worker::StartConnector(Conn& c) {
  if (o_.rate > 0) {
    // Paced like publishers: slot i's n-th connection starts at (n - i/clients) / rate, the
    // slots spread evenly over one period. A slot that fell behind catches up back to back.
    const double elapsed_s = static_cast<double>(NowNs() - shared_->t0_ns) / 1e9;
    const double phase = static_cast<double>(c.index) / std::max(o_.clients, 1);
    if (static_cast<uint64_t>(elapsed_s * o_.rate + phase) <= c.sent) return;
  }
  ++c.sent;  // connections started by this slot
  if (!StartConnect(c)) {
    c.started_ns = NowNs();
    OnConnectEnd(c, -2);
  }
}

void Worker::ConnectStep(uint64_t) {
  for (Conn& c : conns_) {
    if (c.role != Role::kConnector) continue;
    if (c.state == State::kUnused || c.state == State::kClosed) StartConnector(c);
  }
}

void Worker::CheckTimeouts(uint64_t) {
  const uint64_t now = NowNs();  // later than every started_ns
  for (Conn& c : conns_) {
    if (c.role != Role::kConnector || c.fd < 0) continue;
    if ((c.state == State::kAwaitConnack || c.state == State::kTcpConnecting ||
         c.state == State::kTransportHandshake) &&
        now - c.started_ns > kConnectTimeoutNs) {
      OnConnectEnd(c, -3);
      Close(c);
    } else if (c.state == State::kAwaitClose && now - c.started_ns > kConnectTimeoutNs) {
      Close(c);  // the broker did not close after DISCONNECT/refusal: just move on
    }
  }
}

void Worker::Run() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(1024);
  const bool connectors = o_.scenario == Scenario::kConnect || o_.scenario == Scenario::kReject;
  uint64_t last_timeout_check = 0;
  for (;;) {
    const Phase ph = phase();
    if (ph == Phase::kDone) break;
    const uint64_t now = NowNs();
    if (ph == Phase::kSetup) SetupStep(now);
    bool busy = false;
    if (ph == Phase::kRun || ph == Phase::kStop) RollSecond(now);
    if (ph == Phase::kRun && now >= shared_->t0_ns) {
      if (connectors) {
        ConnectStep(now);
      } else if (now < shared_->measure_end_ns) {
        for (Conn& c : conns_) {
          if (c.state != State::kReady) continue;
          if (c.role == Role::kPublisher) {
            busy |= Publish(c, now);
          } else if (c.role == Role::kRetainer && c.cycle_started_ns == 0) {
            StartRetainedCycle(c, now);
            busy = true;
          }
        }
      }
    }
    if (connectors && now - last_timeout_check > 100'000'000) {
      CheckTimeouts(now);
      last_timeout_check = now;
    }
    Flush();
    const int timeout_ms = busy ? 0 : 1;
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    for (int i = 0; i < n; ++i) {
      OnEvent(conns_[events[static_cast<size_t>(i)].data.u32], events[static_cast<size_t>(i)].events);
    }
    Flush();
  }
  // Finished: close everything (no DISCONNECT needed; a clean-session client leaves nothing).
  for (Conn& c : conns_) {
    if (c.fd >= 0) {
      if (c.state == State::kReady) {
        wire::Buffer b;
        wire::EncodeDisconnect(b);
        if (c.stack) {
          // After whatever the stack still has to send: TLS records must arrive in order.
          if (c.stack->Send(b, c.wire_out)) {
            (void)!send(c.fd, c.wire_out.data(), c.wire_out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          }
        } else {
          (void)!send(c.fd, b.data(), b.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
      }
      close(c.fd);
      c.fd = -1;
    }
  }
  close(epoll_fd_);
  FinishVerification();
}

void Worker::FinishVerification() {
  if (o_.scenario == Scenario::kRetained) return;  // counted per cycle as they arrived
  for (Conn& c : conns_) {
    if (c.role != Role::kSubscriber) continue;
    for (int p = 0; p < o_.publishers; ++p) {
      if (!SubscriberExpects(o_, c.index, p)) continue;
      const uint64_t sent = shared_->publishers[static_cast<size_t>(p)].sent.load();
      verify.expected += sent;
      auto it = c.trackers.find(static_cast<uint32_t>(p));
      if (it == c.trackers.end()) {
        verify.lost += sent;
        continue;
      }
      const SequenceTracker& t = it->second;
      verify.unique += t.unique();
      verify.lost += t.Lost(sent);
      verify.duplicated += t.duplicated();
      verify.out_of_order += t.out_of_order();
      verify.corrupt += t.corrupt();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Orchestration and output

bool Resolve(Shared* shared) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const std::string port = std::to_string(shared->options.ports[0]);
  const int rc = getaddrinfo(shared->options.host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    std::fprintf(stderr, "ringmq-bench: cannot resolve %s: %s\n", shared->options.host.c_str(),
                 gai_strerror(rc));
    return false;
  }
  std::memcpy(&shared->address, result->ai_addr, result->ai_addrlen);
  shared->address_size = result->ai_addrlen;
  freeaddrinfo(result);
  for (const int p : shared->options.ports) {
    sockaddr_storage a = shared->address;
    const auto net_port = htons(static_cast<uint16_t>(p));
    if (a.ss_family == AF_INET6) {
      reinterpret_cast<sockaddr_in6*>(&a)->sin6_port = net_port;
    } else {
      reinterpret_cast<sockaddr_in*>(&a)->sin_port = net_port;
    }
    shared->addresses.push_back(a);
  }
  return true;
}

void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

// A flat, ordered set of named results, printed as JSON (nested by "a.b" names) and CSV.
class Results {
 public:
  void Num(const std::string& key, double v) {
    char buf[64];
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
      std::snprintf(buf, sizeof buf, "%.0f", v);
    } else if (std::isfinite(v)) {
      std::snprintf(buf, sizeof buf, "%.6g", v);
    } else {
      std::snprintf(buf, sizeof buf, "null");
    }
    items_.push_back({key, buf});
  }
  void Str(const std::string& key, const std::string& v) {
    items_.push_back({key, "\"" + JsonEscape(v) + "\""});
  }
  void Raw(const std::string& key, const std::string& json) { items_.push_back({key, json}); }

  std::string Json() const {
    // Keys are "group.name" at most two levels; groups stay together in insertion order.
    std::string out = "{\n";
    std::vector<std::string> groups;
    std::map<std::string, std::vector<const std::pair<std::string, std::string>*>> members;
    for (const auto& item : items_) {
      const size_t dot = item.first.find('.');
      const std::string group = dot == std::string::npos ? "" : item.first.substr(0, dot);
      const std::string key = dot == std::string::npos ? item.first : group;
      if (std::find(groups.begin(), groups.end(), key) == groups.end()) groups.push_back(key);
      if (!group.empty()) members[group].push_back(&item);
    }
    for (size_t g = 0; g < groups.size(); ++g) {
      const std::string& name = groups[g];
      out += "  \"" + name + "\": ";
      auto it = members.find(name);
      if (it == members.end()) {
        for (const auto& item : items_) {
          if (item.first == name) out += item.second;
        }
      } else {
        out += "{";
        for (size_t i = 0; i < it->second.size(); ++i) {
          const auto* item = it->second[i];
          out += (i ? ", \"" : "\"") + item->first.substr(name.size() + 1) + "\": " + item->second;
        }
        out += "}";
      }
      out += g + 1 < groups.size() ? ",\n" : "\n";
    }
    return out + "}\n";
  }
  std::string CsvHeader() const {
    std::string out;
    for (const auto& item : items_) {
      if (item.second.front() == '[') continue;
      out += (out.empty() ? "" : ",") + item.first;
    }
    return out + "\n";
  }
  std::string CsvRow() const {
    std::string out;
    bool first = true;
    for (const auto& item : items_) {
      if (item.second.front() == '[') continue;
      out += (first ? "" : ",") + item.second;
      first = false;
    }
    return out + "\n";
  }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

bool WriteFile(const std::string& path, const std::string& text, bool append) {
  FILE* f = std::fopen(path.c_str(), append ? "a" : "w");
  if (f == nullptr) {
    std::fprintf(stderr, "ringmq-bench: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return true;
}

struct Totals {
  LatencyHistogram latency;
  std::vector<SecondSample> seconds;
  VerifyCounts verify;
  uint64_t sent = 0, delivered = 0, stalls = 0, unexpected_closes = 0, protocol_errors = 0;
  uint64_t property_errors = 0, publish_refused = 0, server_disconnects = 0;
  uint64_t transport_errors = 0, tls_handshakes = 0, tls_resumed = 0;
  std::string transport_error, tls_version, tls_cipher;
  int last_refusal_code = -1;
  uint64_t connected = 0, sessions_present = 0, connect_failures = 0, retained_cycles = 0;
  uint64_t first_connect_ns = 0, last_connack_ns = 0;
  ConnectOutcomes outcomes;
};

Totals Collect(const std::vector<std::unique_ptr<Worker>>& workers) {
  Totals t;
  for (const auto& w : workers) {
    t.latency.Merge(w->latency);
    if (t.seconds.size() < w->seconds.size()) t.seconds.resize(w->seconds.size());
    for (size_t i = 0; i < w->seconds.size(); ++i) {
      t.seconds[i].sent += w->seconds[i].sent;
      t.seconds[i].delivered += w->seconds[i].delivered;
      t.seconds[i].latency.Merge(w->seconds[i].latency);
    }
    t.verify.expected += w->verify.expected;
    t.verify.unique += w->verify.unique;
    t.verify.lost += w->verify.lost;
    t.verify.duplicated += w->verify.duplicated;
    t.verify.out_of_order += w->verify.out_of_order;
    t.verify.corrupt += w->verify.corrupt;
    t.verify.stale += w->verify.stale;
    t.sent += w->sent_measured;
    t.delivered += w->delivered_measured;
    t.stalls += w->stalls;
    t.unexpected_closes += w->unexpected_closes;
    t.protocol_errors += w->protocol_errors;
    t.property_errors += w->property_errors;
    t.publish_refused += w->publish_refused;
    t.server_disconnects += w->server_disconnects;
    t.transport_errors += w->transport_errors;
    t.tls_handshakes += w->tls_handshakes;
    t.tls_resumed += w->tls_resumed;
    if (t.transport_error.empty()) t.transport_error = w->transport_error;
    if (t.tls_version.empty()) {
      t.tls_version = w->tls_version;
      t.tls_cipher = w->tls_cipher;
    }
    if (w->last_refusal_code >= 0) t.last_refusal_code = w->last_refusal_code;
    t.connected += w->connected;
    t.sessions_present += w->sessions_present;
    t.connect_failures += w->connect_failures;
    t.retained_cycles += w->retained_cycles;
    if (w->first_connect_ns != 0 &&
        (t.first_connect_ns == 0 || w->first_connect_ns < t.first_connect_ns)) {
      t.first_connect_ns = w->first_connect_ns;
    }
    t.last_connack_ns = std::max(t.last_connack_ns, w->last_connack_ns);
    t.outcomes.attempts += w->outcomes.attempts;
    t.outcomes.accepted += w->outcomes.accepted;
    for (int i = 0; i < 256; ++i) t.outcomes.refused[i] += w->outcomes.refused[i];
    t.outcomes.refused_other += w->outcomes.refused_other;
    t.outcomes.closed += w->outcomes.closed;
    t.outcomes.errors += w->outcomes.errors;
    t.outcomes.timeouts += w->outcomes.timeouts;
  }
  return t;
}

void AddLatency(Results& r, const std::string& group, const LatencyHistogram& h) {
  r.Num(group + ".count", static_cast<double>(h.count()));
  r.Num(group + ".mean", h.Mean() / 1e3);
  r.Num(group + ".p50", static_cast<double>(h.Percentile(0.50)) / 1e3);
  r.Num(group + ".p90", static_cast<double>(h.Percentile(0.90)) / 1e3);
  r.Num(group + ".p99", static_cast<double>(h.Percentile(0.99)) / 1e3);
  r.Num(group + ".p999", static_cast<double>(h.Percentile(0.999)) / 1e3);
  r.Num(group + ".max", static_cast<double>(h.max()) / 1e3);
}

std::string SamplesJson(const Totals& t) {
  std::string out = "[";
  for (size_t i = 0; i < t.seconds.size(); ++i) {
    const SecondSample& s = t.seconds[i];
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s\n    {\"t\": %zu, \"sent\": %" PRIu64 ", \"delivered\": %" PRIu64
                  ", \"p50_us\": %.1f, \"p99_us\": %.1f}",
                  i ? "," : "", i + 1, s.sent, s.delivered,
                  static_cast<double>(s.latency.Percentile(0.5)) / 1e3,
                  static_cast<double>(s.latency.Percentile(0.99)) / 1e3);
    out += buf;
  }
  return out + "]";
}

void Progress(const Shared& shared, uint64_t now, uint64_t* last_sent, uint64_t* last_delivered,
              uint64_t* last_ns) {
  const uint64_t sent = shared.live_sent.load(std::memory_order_relaxed);
  const uint64_t delivered = shared.live_delivered.load(std::memory_order_relaxed);
  const double dt = static_cast<double>(now - *last_ns) / 1e9;
  if (dt <= 0) return;
  const double elapsed = static_cast<double>(now - shared.t0_ns) / 1e9;
  const char* stage = now < shared.measure_start_ns ? "warm-up" : "measure";
  std::fprintf(stderr,
               "\r%-7s %5.1fs  sent %9.0f/s  delivered %9.0f/s  p99 %8.1f us  errors %" PRIu64
               "   ",
               stage, elapsed, static_cast<double>(sent - *last_sent) / dt,
               static_cast<double>(delivered - *last_delivered) / dt,
               static_cast<double>(shared.live_p99_ns.load(std::memory_order_relaxed)) / 1e3,
               shared.live_errors.load(std::memory_order_relaxed));
  std::fflush(stderr);
  *last_sent = sent;
  *last_delivered = delivered;
  *last_ns = now;
}

void SleepUntil(uint64_t t) {
  const uint64_t now = NowNs();
  if (t > now) std::this_thread::sleep_for(std::chrono::nanoseconds(t - now));
}

// The retained scenario stores its retained messages first, with QoS 1 over one socket (at
// level 5 with --protocol 5, else 3.1.1): everything is written while CONNACK and PUBACKs are
// read back as whole packets, since a 5.0 PUBACK may carry a reason code (0x10 No matching
// subscribers) and properties. Returns false, having said why, if that does not complete.
bool LoadRetained(const Shared& shared) {
  const Options& o = shared.options;
  const uint8_t level = o.protocol == Protocol::k5 ? wire::kMqtt5 : wire::kMqtt311;
  const int fd = socket(shared.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&shared.address),
                        shared.address_size) != 0) {
    std::fprintf(stderr, "ringmq-bench: retained: connect: %s\n", std::strerror(errno));
    if (fd >= 0) close(fd);
    return false;
  }
  wire::Buffer b;
  wire::ConnectFields cf;
  const std::string id = "rb" + std::to_string(getpid()) + "-loader";
  cf.client_id = id;
  cf.username = o.username;
  cf.password = o.password;
  cf.protocol_level = level;
  wire::EncodeConnect(cf, b);
  for (int i = 1; i <= o.retained_topics; ++i) {
    uint8_t* payload = wire::EncodePublish(o.topic_prefix + "/r/" + std::to_string(i), 1, true,
                                           static_cast<uint16_t>(i % 65535 + 1), level, {},
                                           o.payload, b);
    wire::WritePayload(payload, o.payload, 0, static_cast<uint64_t>(i), NowNs());
  }
  // Packets still to come: the CONNACK, then one PUBACK per message.
  size_t to_read = 1 + static_cast<size_t>(o.retained_topics);
  bool refused = false;
  fcntl(fd, F_SETFL, O_NONBLOCK);
  wire::Buffer in;
  const uint64_t deadline = NowNs() + static_cast<uint64_t>(o.setup_timeout_s) * 1'000'000'000;
  while (to_read > 0 && !refused && NowNs() < deadline) {
    if (!b.empty()) {
      const ssize_t n = send(fd, b.data(), b.size(), MSG_NOSIGNAL);
      if (n > 0) b.Consume(static_cast<size_t>(n));
    }
    uint8_t* p = in.Reserve(65536);
    const ssize_t r = recv(fd, p, 65536, 0);
    if (r == 0) break;
    if (r < 0) {
      in.Commit(0);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    in.Commit(static_cast<size_t>(r));
    wire::Frame f;
    while (to_read > 0 &&
           wire::SplitFrame(in.data(), in.size(), 1 << 24, &f) == wire::SplitStatus::kComplete) {
      wire::Connack connack;
      wire::Ack ack;
      if (f.type == wire::kConnack) {
        refused = !wire::ParseConnack(f, level, &connack) || connack.code != 0;
      } else if (f.type == wire::kPuback) {
        refused = !wire::ParseAck(f, level, &ack) || ack.reason >= 0x80;
      }
      --to_read;
      in.Consume(f.total_size);
    }
  }
  wire::Buffer d;
  wire::EncodeDisconnect(d);
  (void)!send(fd, d.data(), d.size(), MSG_NOSIGNAL);
  close(fd);
  if (to_read > 0 || refused) {
    std::fprintf(stderr,
                 "ringmq-bench: retained: storing %d retained messages did not complete%s\n",
                 o.retained_topics, refused ? " (refused by the broker)" : "");
    return false;
  }
  return true;
}

// --metrics-port: reads the broker's /metrics (the counters named by --metrics-match). Returns
// false, having said why on stderr, if it cannot.
bool ReadBrokerMetrics(const Shared& shared, scrape::Samples* out) {
  const Options& o = shared.options;
  sockaddr_storage address = shared.address;
  const auto port = htons(static_cast<uint16_t>(o.metrics_port));
  if (address.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = port;
  } else {
    reinterpret_cast<sockaddr_in*>(&address)->sin_port = port;
  }
  std::string body, error;
  if (!scrape::FetchMetrics(address, shared.address_size,
                            o.host + ":" + std::to_string(o.metrics_port), 5000, &body, &error)) {
    std::fprintf(stderr, "ringmq-bench: /metrics on port %d: %s\n", o.metrics_port,
                 error.c_str());
    return false;
  }
  scrape::ParseExposition(body, o.metrics_match, out);
  return true;
}

int Main(int argc, char** argv) {
  auto shared = std::make_unique<Shared>();
  shared->process_start_ns = NowNs();
  shared->options = ParseOptions(argc, argv);
  const Options& o = shared->options;
  RaiseFileLimit();
  if (!Resolve(shared.get())) return 2;
  if (o.tls) {
    std::string error;
    shared->tls = transport::TlsClientContext::Create(o.tls_options, &error);
    if (shared->tls == nullptr) {
      std::fprintf(stderr, "ringmq-bench: %s\n", error.c_str());
      return 2;
    }
  }
  const bool v6_host = o.host.find(':') != std::string::npos;
  for (const int p : o.ports) {
    shared->ws_host_headers.push_back((v6_host ? "[" + o.host + "]" : o.host) + ":" +
                                      std::to_string(p));
  }
  const bool tty = isatty(STDERR_FILENO) && !o.quiet;

  // Topics and fan-out per publisher.
  const int pubs = o.publishers;
  const int subs = o.subscribers;
  shared->publishers = std::make_unique<PublisherShared[]>(static_cast<size_t>(std::max(pubs, 1)));
  for (int p = 0; p < pubs; ++p) {
    switch (o.scenario) {
      case Scenario::kPairs: shared->topics.push_back(o.topic_prefix + "/pair/" + std::to_string(p)); break;
      case Scenario::kWildcard: shared->topics.push_back(o.topic_prefix + "/w/" + std::to_string(p) + "/t"); break;
      case Scenario::kFanin: shared->topics.push_back(o.topic_prefix + "/fanin"); break;
      default: shared->topics.push_back(o.topic_prefix + "/fanout"); break;
    }
    uint32_t fan = 0;
    for (int s = 0; s < subs && o.scenario != Scenario::kRetained; ++s) {
      fan += SubscriberExpects(o, s, p) ? 1 : 0;
    }
    shared->fan.push_back(fan);
  }
  if (shared->topics.empty()) shared->topics.push_back(o.topic_prefix + "/fanout");
  // 5.0 publishers: every measured PUBLISH carries this block (each connection has its own
  // alias space, so alias 1 serves every publisher's one topic).
  if (o.topic_alias) wire::AppendTopicAlias(1, shared->publish_properties);
  wire::AppendBenchUserProperties(o.user_properties, shared->publish_properties);
  for (int i = 0; i < o.user_properties; ++i) {
    shared->expected_user_properties.push_back(wire::BenchUserPropertyValue(i));
  }

  // The retained scenario stores its retained messages first, with one blocking-style client.
  const ProcSample rss_before = ReadBroker(o.broker_pids).sum;
  if (o.scenario == Scenario::kRetained && !LoadRetained(*shared)) return 2;

  // Workers and their clients.
  std::vector<std::unique_ptr<Worker>> workers;
  for (int w = 0; w < o.threads; ++w) workers.push_back(std::make_unique<Worker>(shared.get(), w));
  int total = 0;
  int clients_mqtt5 = 0;  // connector slots count once
  auto add = [&](Role role, int index) {
    workers[static_cast<size_t>(total % o.threads)]->AddClient(role, index);
    ++total;
    if (ClientLevel(o, role, index) == wire::kMqtt5) ++clients_mqtt5;
  };
  int setup_clients = 0;
  if (o.scenario == Scenario::kConnect || o.scenario == Scenario::kReject) {
    for (int i = 0; i < o.clients; ++i) add(Role::kConnector, i);
  } else if (o.scenario == Scenario::kIdle) {
    for (int i = 0; i < o.clients; ++i) add(Role::kIdle, i);
    setup_clients = o.clients;
  } else if (o.scenario == Scenario::kRetained) {
    for (int s = 0; s < subs; ++s) add(Role::kRetainer, s);
    setup_clients = subs;
  } else {
    for (int s = 0; s < subs; ++s) add(Role::kSubscriber, s);  // subscribers first
    for (int p = 0; p < pubs; ++p) add(Role::kPublisher, p);
    setup_clients = subs + pubs;
  }
  for (auto& w : workers) {
    for (Conn& c : w->conns_) {
      if (c.role == Role::kRetainer) c.retained_seen.assign(static_cast<size_t>(o.retained_topics), 0);
    }
  }

  const uint64_t setup_start = NowNs();
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });

  // Setup: connect (and subscribe) every client.
  const uint64_t setup_deadline = setup_start + static_cast<uint64_t>(o.setup_timeout_s) * 1'000'000'000;
  // Idle: the broker's RSS is also read once half the connections are ready, so that the
  // cost per connection is measured over the second half only. Memory a broker holds whatever
  // the number of connections but makes resident on first use (receive buffers it does not
  // zero up front, tables sized at their first use) is resident by then; from a fresh start
  // it would be divided among the connections and grow the figure as they get fewer.
  ProcSample rss_half;
  int ready_at_half = 0;
  while (shared->ready.load() < setup_clients && shared->setup_failed.load() == 0 &&
         NowNs() < setup_deadline) {
    if (o.scenario == Scenario::kIdle && !rss_half.ok &&
        shared->ready.load() >= setup_clients / 2) {
      ready_at_half = shared->ready.load();
      rss_half = ReadBroker(o.broker_pids).sum;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const uint64_t setup_end = NowNs();
  const int ready = shared->ready.load();
  bool setup_ok = ready >= setup_clients;
  if (!setup_ok) {
    std::fprintf(stderr, "ringmq-bench: setup: %d of %d clients ready (%d failures)%s\n", ready,
                 setup_clients, shared->setup_failed.load(),
                 NowNs() >= setup_deadline ? ", timed out" : "");
  }

  // Idle: the connections are the measurement; hold them, then read the broker's RSS.
  ProcSample rss_loaded;
  double idle_hold_s = 0;
  if (o.scenario == Scenario::kIdle && setup_ok) {
    const uint64_t hold_end = NowNs() + static_cast<uint64_t>(o.duration_s * 1e9);
    SleepUntil(hold_end);
    idle_hold_s = o.duration_s;
    rss_loaded = ReadBroker(o.broker_pids).sum;
  }

  // Run: warm-up, measured window, then drain.
  BrokerSample broker_start, broker_end;
  scrape::Samples metrics_start, metrics_end;
  bool metrics_ok = o.metrics_port == 0;
  double self_start = 0, self_end = 0;
  uint64_t run_end = 0;
  const bool run = setup_ok && o.scenario != Scenario::kIdle;
  if (run && o.settle_ms > 0 && subs > 0) {
    // A SUBACK is the subscriber's node's word only: the other nodes learn the interest later.
    std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));
  }
  if (run) {
    shared->t0_ns = NowNs();
    shared->measure_start_ns = shared->t0_ns + static_cast<uint64_t>(o.warmup_s * 1e9);
    shared->measure_end_ns = shared->measure_start_ns + static_cast<uint64_t>(o.duration_s * 1e9);
    shared->phase.store(static_cast<int>(Phase::kRun), std::memory_order_release);
    uint64_t last_sent = 0, last_delivered = 0, last_ns = shared->t0_ns;
    bool measuring = false;
    for (;;) {
      const uint64_t now = NowNs();
      if (!measuring && now >= shared->measure_start_ns) {
        broker_start = ReadBroker(o.broker_pids);
        if (o.metrics_port != 0) metrics_ok = ReadBrokerMetrics(*shared, &metrics_start);
        self_start = SelfCpuSeconds();
        measuring = true;
      }
      if (now >= shared->measure_end_ns) break;
      uint64_t next = std::min(shared->measure_end_ns, now + 1'000'000'000);
      if (!measuring) next = std::min(next, shared->measure_start_ns);
      // Wake on the start and end of the window exactly, and every second for the display.
      SleepUntil(next);
      if (tty && NowNs() - last_ns >= 950'000'000) {
        Progress(*shared, NowNs(), &last_sent, &last_delivered, &last_ns);
      }
    }
    broker_end = ReadBroker(o.broker_pids);
    if (o.metrics_port != 0 && metrics_ok) {
      metrics_ok = ReadBrokerMetrics(*shared, &metrics_end);
    }
    self_end = SelfCpuSeconds();
    run_end = NowNs();
    // Drain: wait for the messages still in flight (all publishers stopped at measure_end).
    const uint64_t drain_deadline = NowNs() + static_cast<uint64_t>(o.drain_s * 1e9);
    while (NowNs() < drain_deadline && o.scenario != Scenario::kConnect &&
           o.scenario != Scenario::kReject && o.scenario != Scenario::kRetained) {
      bool all = true;
      for (int p = 0; p < pubs; ++p) {
        const auto& ps = shared->publishers[static_cast<size_t>(p)];
        if (ps.delivered.load() < ps.sent.load() * shared->fan[static_cast<size_t>(p)]) all = false;
      }
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (o.scenario == Scenario::kRetained) {
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(std::min(o.drain_s, 1.0) * 1000)));
    }
    if (tty) std::fputs("\n", stderr);
  }
  shared->phase.store(static_cast<int>(Phase::kDone), std::memory_order_release);
  for (auto& t : threads) t.join();
  Totals t = Collect(workers);

  // Results.
  Results r;
  const double measured_s = run ? static_cast<double>(run_end - shared->measure_start_ns) / 1e9 : 0;
  r.Str("tool", "ringmq-bench");
  r.Num("format", 1);
  r.Str("label", o.label);
  r.Str("scenario", o.scenario_name);
  std::string addresses, ports, per_port;
  std::vector<int> clients_per_port(o.ports.size(), 0);
  for (const auto& w : workers) {
    for (const Conn& c : w->conns_) ++clients_per_port[c.port_index];
  }
  for (size_t i = 0; i < o.ports.size(); ++i) {
    const std::string sep = i == 0 ? "" : ",";
    addresses += sep + o.host + ":" + std::to_string(o.ports[i]);
    ports += sep + std::to_string(o.ports[i]);
    per_port += sep + std::to_string(clients_per_port[i]);
  }
  r.Str("broker_address", addresses);
  r.Str("ports", ports);
  // Clients (connector slots) per --port, in --port order (PortIndex).
  r.Str("clients_per_port", per_port);
  r.Num("settle_ms", o.settle_ms);
  r.Num("qos", o.qos);
  r.Str("protocol", o.protocol_name);
  r.Num("clients_mqtt5", clients_mqtt5);
  r.Num("user_properties", o.user_properties);
  r.Num("topic_alias", o.topic_alias ? 1 : 0);
  r.Num("receive_maximum", o.receive_maximum);
  r.Num("clean_session", o.sessions.clean_session ? 1 : 0);
  r.Num("session_expiry_s", o.sessions.session_expiry_s);
  r.Str("client_id_prefix", o.client_id_prefix);
  r.Str("transport.kind", o.tls ? (o.websocket ? "wss" : "tls") : (o.websocket ? "ws" : "tcp"));
  r.Str("transport.tls_version", t.tls_version);
  r.Str("transport.tls_cipher", t.tls_cipher);
  r.Num("transport.tls_handshakes", static_cast<double>(t.tls_handshakes));
  r.Num("transport.tls_resumed", static_cast<double>(t.tls_resumed));
  r.Num("transport.errors", static_cast<double>(t.transport_errors));
  r.Str("transport.first_error", t.transport_error);
  r.Num("payload_bytes", static_cast<double>(o.payload));
  r.Num("publishers", pubs);
  r.Num("subscribers", subs);
  r.Num("clients", o.clients);
  r.Num("rate_per_publisher", o.rate);
  r.Num("window", o.window);
  r.Num("threads", o.threads);
  r.Num("warmup_s", o.warmup_s);
  r.Num("duration_s", o.duration_s);
  r.Num("measured_s", measured_s);
  r.Num("setup.clients", setup_clients);
  r.Num("setup.ready", ready);
  r.Num("setup.seconds", static_cast<double>(setup_end - setup_start) / 1e9);
  r.Num("setup.connect_per_s",
        t.last_connack_ns > t.first_connect_ns && t.connected > 0
            ? static_cast<double>(t.connected) / (static_cast<double>(t.last_connack_ns - t.first_connect_ns) / 1e9)
            : 0);
  r.Num("setup.failures", static_cast<double>(t.connect_failures));
  r.Num("setup.sessions_present", static_cast<double>(t.sessions_present));

  const ProcSample& b0 = broker_start.sum;
  const ProcSample& b1 = broker_end.sum;
  const double broker_cpu = b0.ok && b1.ok ? b1.cpu_s - b0.cpu_s : 0;
  std::string cpu_by_pid;  // "pid:cpu_s,..." in --broker-pid order
  for (size_t i = 0; i < o.broker_pids.size() && b0.ok && b1.ok; ++i) {
    char item[64];
    std::snprintf(item, sizeof item, "%s%d:%.3f", i == 0 ? "" : ",", o.broker_pids[i],
                  broker_end.each[i].cpu_s - broker_start.each[i].cpu_s);
    cpu_by_pid += item;
  }
  const double self_cpu = self_end - self_start;
  r.Num("broker.pid", o.broker_pids.empty() ? 0 : o.broker_pids[0]);
  r.Num("broker.processes", static_cast<double>(o.broker_pids.size()));
  r.Num("broker.cpu_s", broker_cpu);
  r.Str("broker.cpu_s_by_pid", cpu_by_pid);
  r.Num("broker.cpu_util", measured_s > 0 ? broker_cpu / measured_s : 0);
  // Storage writes in the measured window (/proc/PID/io), for any broker: null if unreadable.
  r.Num("broker.write_bytes", b0.ok && b1.ok && b0.write_bytes >= 0 && b1.write_bytes >= 0
                                  ? static_cast<double>(b1.write_bytes - b0.write_bytes)
                                  : NAN);
  r.Num("loadgen.cpu_s", self_cpu);
  r.Num("loadgen.cpu_util", measured_s > 0 ? self_cpu / measured_s : 0);
  if (o.metrics_port != 0) {
    // How far each matching counter moved in the measured window, summed over its labels.
    r.Num("broker_metrics.read", metrics_ok && run ? 1 : 0);
    if (metrics_ok && run) {
      for (const auto& [name, delta] : scrape::Delta(metrics_start, metrics_end)) {
        r.Num("broker_metrics." + name, delta);
      }
    }
  }

  std::string why;
  bool ok = setup_ok;
  if (!setup_ok) why = "setup failed";
  if (o.metrics_port != 0 && run && !metrics_ok) {
    ok = false;
    why += (why.empty() ? "" : "; ") + std::string("could not read the broker's /metrics");
  }
  const bool messaging = o.scenario == Scenario::kFanin || o.scenario == Scenario::kFanout ||
                         o.scenario == Scenario::kPairs || o.scenario == Scenario::kWildcard ||
                         o.scenario == Scenario::kRetained;
  if (messaging) {
    if (o.scenario == Scenario::kRetained) {
      t.verify.expected = 0;  // counted per completed cycle: see retained.cycles
    }
    r.Num("messages.sent", static_cast<double>(t.sent));
    r.Num("messages.delivered", static_cast<double>(t.delivered));
    r.Num("messages.sent_per_s", measured_s > 0 ? static_cast<double>(t.sent) / measured_s : 0);
    r.Num("messages.delivered_per_s", measured_s > 0 ? static_cast<double>(t.delivered) / measured_s : 0);
    r.Num("messages.per_broker_cpu_s", broker_cpu > 0 ? static_cast<double>(t.delivered) / broker_cpu : 0);
    AddLatency(r, "latency_us", t.latency);
    if (o.scenario == Scenario::kRetained) r.Num("retained.cycles", static_cast<double>(t.retained_cycles));
    r.Num("verify.expected", static_cast<double>(t.verify.expected));
    r.Num("verify.received", static_cast<double>(t.verify.unique));
    r.Num("verify.lost", static_cast<double>(t.verify.lost));
    r.Num("verify.duplicated", static_cast<double>(t.verify.duplicated));
    r.Num("verify.out_of_order", static_cast<double>(t.verify.out_of_order));
    r.Num("verify.corrupt", static_cast<double>(t.verify.corrupt));
    r.Num("verify.stale", static_cast<double>(t.verify.stale));
    r.Num("verify.stalls", static_cast<double>(t.stalls));
    r.Num("verify.unexpected_closes", static_cast<double>(t.unexpected_closes));
    r.Num("verify.protocol_errors", static_cast<double>(t.protocol_errors));
    r.Num("verify.property_errors", static_cast<double>(t.property_errors));
    r.Num("verify.publish_refused", static_cast<double>(t.publish_refused));
    r.Num("verify.server_disconnects", static_cast<double>(t.server_disconnects));
    std::string judge;
    if (!Judge(o.qos, t.verify, &judge)) {
      ok = false;
      why += (why.empty() ? "" : "; ") + judge;
    }
    if (t.unexpected_closes != 0) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::to_string(t.unexpected_closes) + " connections closed by the broker";
    }
    if (t.protocol_errors != 0) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::to_string(t.protocol_errors) + " protocol errors";
    }
    if (t.property_errors != 0) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::to_string(t.property_errors) +
             " deliveries with other properties than were published";
    }
    if (t.publish_refused != 0) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", t.last_refusal_code & 0xff);
      ok = false;
      why += (why.empty() ? "" : "; ") + std::to_string(t.publish_refused) +
             " PUBLISHes refused by the broker (last reason code " + code + ")";
    }
    if (o.scenario == Scenario::kRetained && run && setup_ok && t.retained_cycles == 0) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::string("no subscriber received the whole retained set");
    }
    if (run && t.delivered == 0 && setup_ok && pubs > 0) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::string("nothing delivered");
    }
  }
  if (o.scenario == Scenario::kConnect || o.scenario == Scenario::kReject) {
    const ConnectOutcomes& c = t.outcomes;
    r.Num("connect.attempts", static_cast<double>(c.attempts));
    r.Num("connect.per_s", measured_s > 0 ? static_cast<double>(c.attempts) / measured_s : 0);
    r.Num("connect.per_broker_cpu_s", broker_cpu > 0 ? static_cast<double>(c.attempts) / broker_cpu : 0);
    r.Num("connect.accepted", static_cast<double>(c.accepted));
    for (int code = 1; code <= 5; ++code) {
      r.Num("connect.connack_0x0" + std::to_string(code), static_cast<double>(c.refused[code]));
    }
    r.Num("connect.connack_other", static_cast<double>(c.refused_other));
    // 5.0 reason codes (0x80 and above) by code, those that occurred.
    for (int code = 0x80; code <= 0xff; ++code) {
      if (c.refused[code] == 0) continue;
      char key[32];
      std::snprintf(key, sizeof key, "connect.connack_0x%02x", code);
      r.Num(key, static_cast<double>(c.refused[code]));
    }
    r.Num("connect.closed_without_connack", static_cast<double>(c.closed));
    r.Num("connect.errors", static_cast<double>(c.errors));
    r.Num("connect.timeouts", static_cast<double>(c.timeouts));
    AddLatency(r, "latency_us", t.latency);
    // Accept: every attempt accepted. Reject: every attempt refused (CONNACK or close), none
    // accepted.
    const uint64_t refusals = c.attempts - c.accepted - c.errors - c.timeouts;
    if (c.attempts == 0) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::string("no connection attempts completed");
    } else if (o.scenario == Scenario::kConnect && c.accepted != c.attempts) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::to_string(c.attempts - c.accepted) + " attempts not accepted";
    } else if (o.scenario == Scenario::kReject && (c.accepted != 0 || refusals != c.attempts)) {
      ok = false;
      why += (why.empty() ? "" : "; ") + std::to_string(c.accepted) + " accepted, " +
             std::to_string(c.errors + c.timeouts) + " errors/timeouts";
    }
  }
  if (o.scenario == Scenario::kIdle) {
    const double connect_s = t.last_connack_ns > t.first_connect_ns
                                 ? static_cast<double>(t.last_connack_ns - t.first_connect_ns) / 1e9
                                 : 0;
    r.Num("idle.connections", static_cast<double>(t.connected));
    r.Num("idle.connect_s", connect_s);
    r.Num("idle.connect_per_s", connect_s > 0 ? static_cast<double>(t.connected) / connect_s : 0);
    r.Num("idle.hold_s", idle_hold_s);
    r.Num("idle.rss_before_kib", static_cast<double>(rss_before.rss_kib));
    r.Num("idle.rss_loaded_kib", static_cast<double>(rss_loaded.rss_kib));
    const double growth_per_conn =
        rss_before.ok && rss_loaded.ok && t.connected > 0
            ? (static_cast<double>(rss_loaded.rss_kib) - static_cast<double>(rss_before.rss_kib)) *
                  1024.0 / static_cast<double>(t.connected)
            : 0;
    const double second_half = static_cast<double>(t.connected) - ready_at_half;
    const double per_conn =
        rss_half.ok && rss_loaded.ok && second_half > 0
            ? (static_cast<double>(rss_loaded.rss_kib) - static_cast<double>(rss_half.rss_kib)) *
                  1024.0 / second_half
            : 0;
    r.Num("idle.rss_half_kib", static_cast<double>(rss_half.rss_kib));
    r.Num("idle.connections_at_half", ready_at_half);
    // Second half: (RSS loaded - RSS at half) / connections opened since.
    r.Num("idle.rss_per_connection_bytes", per_conn);
    // From the start: (RSS loaded - RSS before) / connections, fixed costs made resident
    // during the run included.
    r.Num("idle.rss_growth_per_connection_bytes", growth_per_conn);
  }
  if (t.transport_errors != 0) {
    ok = false;
    why += (why.empty() ? "" : "; ") + std::to_string(t.transport_errors) +
           " TLS/WebSocket errors (first: " + t.transport_error + ")";
  }
  r.Str("verdict", ok ? "ok" : "FAILED");
  r.Str("verdict_reason", why);
  r.Raw("samples", SamplesJson(t));

  // Human summary on stdout.
  std::printf("ringmq-bench %s qos %d payload %zu", o.scenario_name.c_str(), o.qos, o.payload);
  if (o.tls) std::printf(" tls %s", t.tls_version.empty() ? "(no handshake)" : t.tls_version.c_str());
  if (o.websocket) std::printf(" websocket");
  if (o.protocol != Protocol::k311) {
    std::printf(" mqtt %s", o.protocol_name.c_str());
    if (o.user_properties > 0) std::printf(" user-properties %d", o.user_properties);
    if (o.topic_alias) std::printf(" topic-alias");
  }
  if (!o.sessions.clean_session || o.sessions.session_expiry_s != 0) {
    std::printf(" persistent subscribers (%" PRIu64 " sessions present)", t.sessions_present);
  }
  std::printf(": ");
  if (messaging) {
    std::printf("%.0f msg/s delivered (%.0f sent/s), p50 %.0f us p99 %.0f us max %.0f us",
                measured_s > 0 ? static_cast<double>(t.delivered) / measured_s : 0,
                measured_s > 0 ? static_cast<double>(t.sent) / measured_s : 0,
                static_cast<double>(t.latency.Percentile(0.5)) / 1e3,
                static_cast<double>(t.latency.Percentile(0.99)) / 1e3,
                static_cast<double>(t.latency.max()) / 1e3);
    std::printf("; lost %" PRIu64 " dup %" PRIu64 " ooo %" PRIu64, t.verify.lost,
                t.verify.duplicated, t.verify.out_of_order);
    if (t.verify.stale != 0) std::printf(" stale %" PRIu64, t.verify.stale);
  } else if (o.scenario == Scenario::kIdle) {
    std::printf("%" PRIu64 " idle connections", t.connected);
  } else {
    std::printf("%.0f attempts/s (accepted %" PRIu64 ", closed %" PRIu64 ")",
                measured_s > 0 ? static_cast<double>(t.outcomes.attempts) / measured_s : 0,
                t.outcomes.accepted, t.outcomes.closed);
  }
  if (!o.broker_pids.empty()) std::printf("; broker cpu %.2fs", broker_cpu);
  std::printf("; loadgen cpu %.2fs; %s%s%s\n", self_cpu, ok ? "ok" : "FAILED", why.empty() ? "" : ": ",
              why.c_str());

  if (!o.json_path.empty() && !WriteFile(o.json_path, r.Json(), false)) return 2;
  if (!o.csv_path.empty()) {
    FILE* f = std::fopen(o.csv_path.c_str(), "r");
    const bool exists = f != nullptr;
    if (f != nullptr) std::fclose(f);
    if (!WriteFile(o.csv_path, (exists ? "" : r.CsvHeader()) + r.CsvRow(), true)) return 2;
  }
  if (!setup_ok) return 2;
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace ringmq::bench

int main(int argc, char** argv) { return ringmq::bench::Main(argc, argv); }
