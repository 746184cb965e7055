// One NATS client connection's state machine, without I/O (sans-IO), for the cluster over NATS
// (issue 16). The shard owns the socket and the timers; the link consumes received bytes and
// the time, and produces the bytes to send and events (a NatsLinkSink).
//
// Life (the NATS client protocol reference, docs.nats.io "Client Protocol": INFO, CONNECT,
// PING/PONG; the connection handshake as NATS clients do it):
//
//   kWaiting --BeginConnect--> kConnecting --OnTransportConnected--> kAwaitInfo
//   kAwaitInfo --INFO / send CONNECT + PING--> kAwaitPong --PONG--> kReady
//   any connected state --close, timeout, stale, fatal -ERR, protocol error--> kWaiting
//   any state --Stop--> kStopped
//
// The shard's part: when the link is kWaiting and now >= connect_at_ms(), it calls
// BeginConnect(now) and connects a socket to the server it returns; then it reports
// OnTransportConnected / OnTransportClosed, passes received bytes to OnReceived, sends what
// TakeOutput gives, and calls OnTimer(now) once now >= next_deadline_ms(). When the link leaves a
// connection (OnDisconnected), the shard closes that socket and never feeds its bytes again.
//
// Server pool: the configured URLs (nats://[user:pass@|token@]host[:port], port 4222 by
// default), in order, plus servers learned from INFO connect_urls (cluster discovery; at most
// servers_max in all; a discovered server inherits the credentials of the server that
// announced it). Each new connection goes to the next server of the pool (round robin). After a
// connection that reached kReady drops, the next server is tried at once; each later failed
// attempt (connect error, handshake timeout, -ERR during the handshake) waits
// min(reconnect_wait_max_ms, reconnect_wait_initial_ms * 2^(failures - 1)) less a random part
// of up to reconnect_jitter_percent of it (from a generator seeded with options.random_seed,
// so tests are deterministic). A discovered server that fails discovered_failures_max times in
// a row is dropped from the pool; configured servers are never dropped.
//
// -ERR (the document's -ERR section): 'Permissions Violation ...' and 'Invalid Subject' are
// reported (OnServerError) and the connection stays; every other -ERR ends the connection, as
// the server closes it after those. An authorization error ('Authorization Violation',
// 'User Authentication Expired/Revoked', 'Account Authentication Expired') ends it with
// DisconnectReason::kAuthorization and counts as a failed attempt on that server (back-off
// grows; the configured server stays in the pool: the operator's list is the truth).
//
// Keepalive: a server PING is answered with PONG in every connected state. In kReady a PING is
// sent every ping_interval_ms; when max_pings_outstanding PINGs are unanswered at the next
// interval, the connection is stale and ends (kStale). The handshake (connect to PONG) must end
// within handshake_timeout_ms.
//
// Subscriptions: Subscribe returns a sid; the link keeps every live subscription and sends
// them all again right after each handshake, before the publishes held while down.
//
// Publishing and the byte bound: Publish appends PUB/HPUB to the output in kReady, or to the
// held buffer while not ready (sent after the subscriptions once ready). pending_bytes()
// (output not yet taken by the shard + held) never goes over outbound_bytes_max: a publish that
// would exceed it is refused with kNoRoom and counted; the caller decides (count as dropped,
// hold upstream). Output bytes not yet taken when a connection ends are discarded and counted
// (bytes_discarded): core NATS is at most once. Control operations (CONNECT, SUB, UNSUB, PING,
// PONG) are not refused: their number is bounded by the caller's subscriptions.
//
// TLS (natstls lane; the NATS client protocol's connection order): a NATS server sends INFO in
// clear and expects the client to start TLS before CONNECT. TLS is wanted when the options say
// tls, the server's URL is tls://, or INFO says tls_required. When it is wanted once INFO is in
// (state kAwaitPong: CONNECT + PING wait in the output), the shard runs the TLS handshake on the
// socket before it sends that output; every later byte goes through TLS both ways. The link
// itself never sees TLS records. If the client wants TLS and INFO offers neither tls_required
// nor tls_available, the connection ends (kTls) before CONNECT, so credentials never go out in
// clear. The shard reports a failed handshake with OnTlsFailed (kTls, a failed attempt: the
// back-off grows). With tls_handshake_first (nats-server 2.10's `handshake_first`) the shard
// starts the handshake as soon as the socket connects (tls_first()), before INFO, which then
// arrives through TLS; the rest is the same.
//
// Credentials (options.credentials, loaded at each CONNECT): with a seed alone, CONNECT carries
// the public key and the signature of INFO's nonce; with a user JWT as well, the JWT and the
// signature instead (decentralized authentication; the server finds the key in the JWT).
//
// Views passed to the sink are valid only during the call. The sink may call Publish,
// Subscribe, Unsubscribe and Stop from its callbacks; not the On*/BeginConnect methods.
//
// Thread safety: owned by one shard; used only on its thread.
#ifndef RINGMQ_CLUSTER_NATS_LINK_H_
#define RINGMQ_CLUSTER_NATS_LINK_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cluster/nats_protocol.h"
#include "cluster/nkey.h"

namespace ringmq::cluster {

struct NatsServerAddress {
  std::string host;  // a name or an IP address (IPv6 without brackets)
  uint16_t port = 4222;
  std::string user;
  std::string pass;
  std::string token;
  bool tls = false;  // tls:// scheme: the shard wraps the socket in TLS
};

// nats://, tls:// or no scheme; [user:pass@ | token@]host[:port]; IPv6 hosts in brackets.
absl::StatusOr<NatsServerAddress> ParseNatsUrl(std::string_view url);

struct NatsLinkOptions {
  std::vector<std::string> urls;  // at least one
  std::string name;               // CONNECT name: the node name
  std::string user;               // credentials for servers whose URL has none
  std::string pass;
  std::string auth_token;
  bool discover = true;  // add INFO connect_urls to the pool
  size_t servers_max = 64;
  uint32_t discovered_failures_max = 3;
  uint64_t handshake_timeout_ms = 2000;
  uint64_t ping_interval_ms = 120'000;  // NATS clients' default: 2 minutes
  uint32_t max_pings_outstanding = 2;   // NATS clients' default
  uint64_t reconnect_wait_initial_ms = 100;
  uint64_t reconnect_wait_max_ms = 5000;
  uint32_t reconnect_jitter_percent = 50;
  size_t outbound_bytes_max = 8 * 1024 * 1024;  // NATS clients' reconnect buffer default
  size_t max_control_line = nats::kDefaultMaxControlLine;
  uint64_t random_seed = 0;
  // natstls lane: TLS to every server (as if every URL were tls://).
  bool tls = false;
  // TLS before INFO (nats-server 2.10's handshake_first) on connections that want TLS from
  // the configuration (tls above or a tls:// URL): see tls_first().
  bool tls_handshake_first = false;
  // The credentials loaded at each CONNECT (not owned; outlives the link; null, or Load() null:
  // none): the seed's key signs INFO's nonce; a user JWT, if any, goes with it. Replaced on
  // SIGHUP, so a reconnect after a user JWT expired uses the renewed one.
  const SharedCredentials* credentials = nullptr;
};

enum class NatsLinkState : uint8_t {
  kWaiting,
  kConnecting,
  kAwaitInfo,
  kAwaitPong,
  kReady,
  kStopped,
};

enum class DisconnectReason : uint8_t {
  kConnectFailed,     // the socket never connected
  kTransportClosed,   // the peer or the network closed it
  kHandshakeTimeout,  // no INFO or no PONG within handshake_timeout_ms
  kStale,             // max_pings_outstanding PINGs unanswered
  kProtocolError,     // unparseable bytes or INFO from the server
  kAuthorization,     // -ERR 'Authorization Violation' and its kin
  kServerError,       // another fatal -ERR
  kTls,               // TLS wanted and not offered by the server, or its handshake failed
  kStopped,           // Stop()
};
std::string_view DisconnectReasonName(DisconnectReason reason);

// A message from the server (MSG or HMSG); views valid during the sink call.
struct NatsMessage {
  std::string_view subject;
  uint64_t sid = 0;
  std::string_view reply;
  std::string_view headers;  // raw header block (nats::ParseHeaderBlock), empty for MSG
  std::string_view payload;
};

class NatsLinkSink {
 public:
  virtual ~NatsLinkSink() = default;
  // The handshake ended: subscriptions and held publishes are in the output.
  virtual void OnReady(const nats::ServerInfo& info) = 0;
  virtual void OnMessage(const NatsMessage& message) = 0;
  // The link left a connection: the shard closes its socket.
  virtual void OnDisconnected(DisconnectReason reason, std::string_view detail) = 0;
  // A -ERR that does not end the connection (permissions, invalid subject).
  virtual void OnServerError(std::string_view text) = 0;
};

// Counters the lead exports (metrics names are the lead's).
struct NatsLinkCounters {
  uint64_t messages_in = 0;
  uint64_t bytes_in = 0;  // header + payload bytes of MSG/HMSG
  uint64_t messages_out = 0;
  uint64_t bytes_out = 0;          // header + payload bytes of PUB/HPUB accepted
  uint64_t publishes_refused = 0;  // kNoRoom, kTooLarge, kInvalid
  uint64_t publishes_refused_memory = 0;  // of those, kNoRoom for set_memory_full (weak lane)
  uint64_t bytes_discarded = 0;    // output dropped when a connection ended
  uint64_t messages_unknown_sid = 0;
  uint64_t connect_attempts = 0;
  uint64_t connects = 0;    // handshakes completed
  uint64_t reconnects = 0;  // handshakes completed after the first
  uint64_t disconnects = 0;
  uint64_t handshake_timeouts = 0;
  uint64_t stale = 0;
  uint64_t pings_sent = 0;
  uint64_t pongs_received = 0;
  uint64_t server_pings = 0;
  uint64_t server_errors = 0;  // every -ERR
  uint64_t protocol_errors = 0;
  uint64_t servers_discovered = 0;
  uint64_t servers_dropped = 0;
};

enum class PublishResult : uint8_t {
  kQueued,    // in the output (kReady)
  kHeld,      // held until the next handshake ends
  kNoRoom,    // pending_bytes() would exceed outbound_bytes_max, or the link is stopped
  kTooLarge,  // headers + payload over the server's max_payload
  kInvalid,   // bad subject, reply or header fields
};

class NatsLink {
 public:
  // Fails on an empty or unparseable URL list or inconsistent options.
  static absl::StatusOr<std::unique_ptr<NatsLink>> Create(NatsLinkOptions options,
                                                          NatsLinkSink* sink);

  NatsLinkState state() const { return state_; }
  bool ready() const { return state_ == NatsLinkState::kReady; }

  // kWaiting: when to call BeginConnect.
  uint64_t connect_at_ms() const { return connect_at_ms_; }
  // kWaiting -> kConnecting; returns the server to connect to (valid until the next call that
  // changes the pool: OnReceived, OnTransportClosed, OnTimer).
  const NatsServerAddress& BeginConnect(uint64_t now_ms);
  // The current (or next, while kWaiting) server.
  const NatsServerAddress& current_server() const;

  void OnTransportConnected(uint64_t now_ms);
  void OnTransportClosed(uint64_t now_ms, std::string_view detail);
  void OnReceived(uint64_t now_ms, std::string_view bytes);
  // The shard's TLS handshake on this connection failed (`detail`: why).
  void OnTlsFailed(uint64_t now_ms, std::string_view detail);
  // Handles the handshake timeout, the reconnect time and the ping timer.
  void OnTimer(uint64_t now_ms);
  // The earliest time OnTimer has something to do (UINT64_MAX: nothing).
  uint64_t next_deadline_ms() const;
  // Ends any connection and stays stopped.
  void Stop();

  // Bytes to send: swaps them into `buffer` (which must be empty; its capacity is reused).
  void TakeOutput(std::string& buffer);
  bool has_output() const { return !output_.empty(); }
  size_t pending_bytes() const { return output_.size() + held_.size(); }

  // Memory (weak lane; memory/budget.h, max_memory). The capacity of the link's buffers: the
  // output and held buffers (each at most outbound_bytes_max of content), the header scratch
  // and the parser's spill buffer (at most one split operation: the server's max_payload plus
  // a control line). The shard charges it to its memory account, with its own send buffer.
  size_t buffer_capacity_bytes() const {
    return output_.capacity() + held_.capacity() + header_scratch_.capacity() +
           parser_.buffer_capacity();
  }
  // While set (the broker's accounted memory at max_memory, memory::Pressure::kShedQos12),
  // a publish that would grow the output or held buffer beyond its capacity is refused with
  // kNoRoom (counted in publishes_refused_memory): the link keeps using the memory it holds
  // and takes no more. Control operations are not refused (bounded by the subscriptions).
  void set_memory_full(bool full) { memory_full_ = full; }
  bool memory_full() const { return memory_full_; }

  absl::StatusOr<uint64_t> Subscribe(std::string_view subject, std::string_view queue_group);
  // False if `sid` is not a live subscription.
  bool Unsubscribe(uint64_t sid);
  size_t subscription_count() const { return subscriptions_.size(); }

  PublishResult Publish(std::string_view subject, std::span<const nats::HeaderField> headers,
                        std::string_view payload, std::string_view reply = {});

  const NatsLinkCounters& counters() const { return counters_; }
  const nats::ServerInfo& server_info() const { return info_; }
  // The current connection must run TLS after INFO (tls:// URL or INFO tls_required).
  bool tls_required() const { return options_.tls || current_server().tls || info_.tls_required; }
  // The current connection runs TLS from its first byte, before INFO (handshake_first): the
  // shard starts the handshake as soon as the socket connects, and INFO arrives through it.
  bool tls_first() const {
    return options_.tls_handshake_first && (options_.tls || current_server().tls);
  }
  size_t server_count() const { return servers_.size(); }

 private:
  struct Server {
    NatsServerAddress address;
    bool discovered = false;
    uint32_t failures = 0;  // consecutive attempts that did not reach kReady
  };
  struct Subscription {
    std::string subject;
    std::string queue_group;
  };

  NatsLink(NatsLinkOptions options, std::vector<Server> servers, NatsLinkSink* sink);

  void HandleOp(uint64_t now_ms, const nats::ServerOp& op);
  void HandleInfo(uint64_t now_ms, std::string_view json);
  void HandlePong(uint64_t now_ms);
  void HandleError(uint64_t now_ms, std::string_view text);
  void BecomeReady(uint64_t now_ms);
  void Discover(const std::vector<std::string>& urls);
  void Disconnect(uint64_t now_ms, DisconnectReason reason, std::string_view detail);
  uint64_t BackoffMs();
  bool connected() const;

  NatsLinkOptions options_;
  NatsLinkSink* sink_;
  std::vector<Server> servers_;
  size_t server_index_ = 0;
  NatsLinkState state_ = NatsLinkState::kWaiting;
  uint64_t connect_at_ms_ = 0;
  uint64_t handshake_deadline_ms_ = 0;
  uint64_t next_ping_ms_ = 0;
  uint32_t pings_outstanding_ = 0;
  uint32_t failed_attempts_ = 0;  // since the last kReady
  bool reached_ready_ = false;    // the current connection reached kReady
  bool ever_ready_ = false;
  nats::Parser parser_;
  nats::ServerInfo info_;
  std::string output_;
  std::string held_;
  std::string header_scratch_;
  std::map<uint64_t, Subscription> subscriptions_;  // ordered: resent in subscription order
  uint64_t next_sid_ = 1;
  bool memory_full_ = false;
  std::mt19937_64 random_;
  NatsLinkCounters counters_;
};

}  // namespace ringmq::cluster

#endif  // RINGMQ_CLUSTER_NATS_LINK_H_
