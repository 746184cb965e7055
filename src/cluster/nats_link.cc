#include "cluster/nats_link.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/assert.h"

namespace ringmq::cluster {
namespace {

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char p = prefix[i];
    if (p >= 'A' && p <= 'Z') p = static_cast<char>(p - 'A' + 'a');
    if (c != p) return false;
  }
  return true;
}

// The -ERR texts after which a NATS client stays connected (the document's -ERR section:
// "Invalid Subject" and permission violations keep the connection open).
bool IsNonFatalError(std::string_view text) {
  return StartsWithNoCase(text, "permissions violation") ||
         StartsWithNoCase(text, "invalid subject");
}

bool IsAuthorizationError(std::string_view text) {
  return StartsWithNoCase(text, "authorization violation") ||
         StartsWithNoCase(text, "user authentication expired") ||
         StartsWithNoCase(text, "user authentication revoked") ||
         StartsWithNoCase(text, "account authentication expired");
}

bool SameServer(const NatsServerAddress& a, const NatsServerAddress& b) {
  return a.port == b.port && a.host == b.host;
}

}  // namespace

std::string_view DisconnectReasonName(DisconnectReason reason) {
  switch (reason) {
    case DisconnectReason::kConnectFailed:
      return "connect_failed";
    case DisconnectReason::kTransportClosed:
      return "transport_closed";
    case DisconnectReason::kHandshakeTimeout:
      return "handshake_timeout";
    case DisconnectReason::kStale:
      return "stale";
    case DisconnectReason::kProtocolError:
      return "protocol_error";
    case DisconnectReason::kAuthorization:
      return "authorization";
    case DisconnectReason::kServerError:
      return "server_error";
    case DisconnectReason::kTls:
      return "tls";
    case DisconnectReason::kStopped:
      return "stopped";
  }
  return "unknown";
}

absl::StatusOr<NatsServerAddress> ParseNatsUrl(std::string_view url) {
  NatsServerAddress address;
  std::string_view rest = url;
  if (StartsWithNoCase(rest, "nats://")) {
    rest.remove_prefix(7);
  } else if (StartsWithNoCase(rest, "tls://")) {
    rest.remove_prefix(6);
    address.tls = true;
  } else if (rest.find("://") != std::string_view::npos) {
    return absl::InvalidArgumentError("NATS URL: scheme is not nats:// or tls://");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      address.token = std::string(userinfo);
    } else {
      address.user = std::string(userinfo.substr(0, colon));
      address.pass = std::string(userinfo.substr(colon + 1));
    }
    if (userinfo.empty()) return absl::InvalidArgumentError("NATS URL: empty user info");
  }
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return absl::InvalidArgumentError("NATS URL: bad IPv6");
    address.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return absl::InvalidArgumentError("NATS URL: bad port");
      port_text = rest.substr(1);
      if (port_text.empty()) return absl::InvalidArgumentError("NATS URL: empty port");
    }
  } else {
    const size_t colon = rest.find(':');
    address.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return absl::InvalidArgumentError("NATS URL: empty port");
    }
  }
  if (address.host.empty()) return absl::InvalidArgumentError("NATS URL: empty host");
  for (char c : address.host) {
    if (c == '/' || c == ' ' || c == '@' || static_cast<unsigned char>(c) < 0x20) {
      return absl::InvalidArgumentError("NATS URL: bad host");
    }
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return absl::InvalidArgumentError("NATS URL: bad port");
    }
    address.port = static_cast<uint16_t>(port);
  }
  return address;
}

absl::StatusOr<std::unique_ptr<NatsLink>> NatsLink::Create(NatsLinkOptions options,
                                                           NatsLinkSink* sink) {
  RINGMQ_ASSERT(sink != nullptr);
  if (options.urls.empty()) return absl::InvalidArgumentError("NATS: no server URL");
  if (options.urls.size() > options.servers_max) {
    return absl::InvalidArgumentError("NATS: more URLs than servers_max");
  }
  if (options.reconnect_wait_initial_ms == 0 ||
      options.reconnect_wait_max_ms < options.reconnect_wait_initial_ms ||
      options.reconnect_jitter_percent > 100 || options.ping_interval_ms == 0 ||
      options.max_pings_outstanding == 0 || options.handshake_timeout_ms == 0 ||
      options.max_control_line < 64) {
    return absl::InvalidArgumentError("NATS: inconsistent link options");
  }
  std::vector<Server> servers;
  for (const std::string& url : options.urls) {
    absl::StatusOr<NatsServerAddress> address = ParseNatsUrl(url);
    if (!address.ok()) return address.status();
    if (address->user.empty() && address->token.empty()) {
      address->user = options.user;
      address->pass = options.pass;
      address->token = options.auth_token;
    }
    bool duplicate = false;
    for (const Server& server : servers) duplicate |= SameServer(server.address, *address);
    if (!duplicate) servers.push_back(Server{std::move(*address), false, 0});
  }
  return std::unique_ptr<NatsLink>(new NatsLink(std::move(options), std::move(servers), sink));
}

NatsLink::NatsLink(NatsLinkOptions options, std::vector<Server> servers, NatsLinkSink* sink)
    : options_(std::move(options)),
      sink_(sink),
      servers_(std::move(servers)),
      parser_(options_.max_control_line),
      random_(options_.random_seed) {
  RINGMQ_ASSERT(!servers_.empty());
}

bool NatsLink::connected() const {
  return state_ == NatsLinkState::kAwaitInfo || state_ == NatsLinkState::kAwaitPong ||
         state_ == NatsLinkState::kReady;
}

const NatsServerAddress& NatsLink::current_server() const {
  RINGMQ_ASSERT(server_index_ < servers_.size());
  return servers_[server_index_].address;
}

const NatsServerAddress& NatsLink::BeginConnect(uint64_t now_ms) {
  RINGMQ_ASSERT(state_ == NatsLinkState::kWaiting);
  state_ = NatsLinkState::kConnecting;
  handshake_deadline_ms_ = now_ms + options_.handshake_timeout_ms;
  reached_ready_ = false;
  parser_.Reset();
  parser_.set_max_payload(nats::kDefaultMaxPayload);
  info_ = nats::ServerInfo{};
  ++counters_.connect_attempts;
  return current_server();
}

void NatsLink::OnTransportConnected(uint64_t now_ms) {
  (void)now_ms;
  RINGMQ_ASSERT(state_ == NatsLinkState::kConnecting);
  state_ = NatsLinkState::kAwaitInfo;
}

void NatsLink::OnTransportClosed(uint64_t now_ms, std::string_view detail) {
  if (state_ == NatsLinkState::kConnecting) {
    Disconnect(now_ms, DisconnectReason::kConnectFailed, detail);
  } else if (connected()) {
    Disconnect(now_ms, DisconnectReason::kTransportClosed, detail);
  }
}

void NatsLink::OnReceived(uint64_t now_ms, std::string_view bytes) {
  if (!connected()) return;  // bytes of a connection the link already left
  absl::Status status =
      parser_.Feed(bytes, [&](const nats::ServerOp& op) { HandleOp(now_ms, op); });
  if (!status.ok() && connected()) {
    ++counters_.protocol_errors;
    Disconnect(now_ms, DisconnectReason::kProtocolError, std::string(status.message()));
  }
}

void NatsLink::OnTlsFailed(uint64_t now_ms, std::string_view detail) {
  if (connected()) Disconnect(now_ms, DisconnectReason::kTls, detail);
}

void NatsLink::HandleOp(uint64_t now_ms, const nats::ServerOp& op) {
  if (!connected()) return;  // an earlier operation of this feed ended the connection
  switch (op.kind) {
    case nats::ServerOpKind::kInfo:
      HandleInfo(now_ms, op.info_json);
      return;
    case nats::ServerOpKind::kPing:
      ++counters_.server_pings;
      nats::AppendPong(output_);
      return;
    case nats::ServerOpKind::kPong:
      HandlePong(now_ms);
      return;
    case nats::ServerOpKind::kOk:
      return;  // verbose is off; a server may still send it
    case nats::ServerOpKind::kErr:
      HandleError(now_ms, op.error);
      return;
    case nats::ServerOpKind::kMsg:
      break;
  }
  if (state_ != NatsLinkState::kReady) {
    // Messages before our PONG: subscriptions are sent after it, so none can match.
    ++counters_.messages_unknown_sid;
    return;
  }
  if (subscriptions_.find(op.sid) == subscriptions_.end()) {
    // In flight when we unsubscribed: the server had not processed the UNSUB yet.
    ++counters_.messages_unknown_sid;
    return;
  }
  ++counters_.messages_in;
  counters_.bytes_in += op.headers.size() + op.payload.size();
  sink_->OnMessage(NatsMessage{op.subject, op.sid, op.reply, op.headers, op.payload});
}

void NatsLink::HandleInfo(uint64_t now_ms, std::string_view json) {
  absl::StatusOr<nats::ServerInfo> info = nats::ParseServerInfo(json);
  if (!info.ok()) {
    ++counters_.protocol_errors;
    Disconnect(now_ms, DisconnectReason::kProtocolError, std::string(info.status().message()));
    return;
  }
  info_ = std::move(*info);
  if (info_.max_payload > 0) parser_.set_max_payload(static_cast<size_t>(info_.max_payload));
  if (options_.discover) Discover(info_.connect_urls);
  if (state_ != NatsLinkState::kAwaitInfo) return;  // an asynchronous INFO (cluster change)
  if (tls_required() && !info_.tls_required && !info_.tls_available) {
    // Checked before CONNECT: its credentials must not go out in clear.
    const NatsServerAddress& server = current_server();
    Disconnect(now_ms, DisconnectReason::kTls,
               absl::StrCat("TLS is configured but the NATS server ", server.host, ":", server.port,
                            " offers none (INFO without tls_required or tls_available)"));
    return;
  }
  const NatsServerAddress& server = current_server();
  nats::ConnectOptions connect;
  std::string signature;
  // Loaded here, used before this call returns (AppendConnect copies): within the shard's loop
  // iteration, as concurrent/epoch_pointer.h requires.
  const UserCredentials* credentials =
      options_.credentials != nullptr ? options_.credentials->Load() : nullptr;
  if (credentials != nullptr) {
    signature = credentials->nkey.Sign(info_.nonce);
    connect.nkey = credentials->nkey.public_key();
    connect.sig = signature;
    connect.jwt = credentials->jwt;
  }
  connect.name = options_.name;
  connect.user = server.user;
  connect.pass = server.pass;
  connect.auth_token = server.token;
  connect.tls_required = tls_required();
  RINGMQ_ASSERT(nats::AppendConnect(connect, output_).ok());
  nats::AppendPing(output_);
  state_ = NatsLinkState::kAwaitPong;
}

void NatsLink::HandlePong(uint64_t now_ms) {
  ++counters_.pongs_received;
  if (state_ == NatsLinkState::kAwaitPong) {
    BecomeReady(now_ms);
    return;
  }
  // One PONG answers our oldest PING; the server answers in order.
  if (pings_outstanding_ > 0) --pings_outstanding_;
}

void NatsLink::BecomeReady(uint64_t now_ms) {
  state_ = NatsLinkState::kReady;
  reached_ready_ = true;
  failed_attempts_ = 0;
  servers_[server_index_].failures = 0;
  pings_outstanding_ = 0;
  next_ping_ms_ = now_ms + options_.ping_interval_ms;
  ++counters_.connects;
  if (ever_ready_) ++counters_.reconnects;
  ever_ready_ = true;
  for (const auto& [sid, subscription] : subscriptions_) {
    RINGMQ_ASSERT(
        nats::AppendSub(subscription.subject, subscription.queue_group, sid, output_).ok());
  }
  output_.append(held_);
  held_.clear();
  sink_->OnReady(info_);
}

void NatsLink::HandleError(uint64_t now_ms, std::string_view text) {
  ++counters_.server_errors;
  if (IsNonFatalError(text)) {
    sink_->OnServerError(text);
    return;
  }
  Disconnect(now_ms,
             IsAuthorizationError(text) ? DisconnectReason::kAuthorization
                                        : DisconnectReason::kServerError,
             text);
}

void NatsLink::Discover(const std::vector<std::string>& urls) {
  const NatsServerAddress& announcer = current_server();
  // Copies: push_back below may move the announcer.
  const std::string user = announcer.user, pass = announcer.pass, token = announcer.token;
  const bool tls = announcer.tls;
  for (const std::string& url : urls) {
    if (servers_.size() >= options_.servers_max) return;
    absl::StatusOr<NatsServerAddress> address = ParseNatsUrl(url);
    if (!address.ok()) continue;  // not ours to judge: the server's own announcement
    bool known = false;
    for (const Server& server : servers_) known |= SameServer(server.address, *address);
    if (known) continue;
    address->user = user;
    address->pass = pass;
    address->token = token;
    address->tls = tls;
    servers_.push_back(Server{std::move(*address), true, 0});
    ++counters_.servers_discovered;
  }
}

uint64_t NatsLink::BackoffMs() {
  if (failed_attempts_ == 0) return 0;
  const uint32_t shift = std::min<uint32_t>(failed_attempts_ - 1, 32);
  uint64_t wait = options_.reconnect_wait_initial_ms;
  wait = (wait << shift) >> shift == wait ? wait << shift : options_.reconnect_wait_max_ms;
  wait = std::min(wait, options_.reconnect_wait_max_ms);
  const uint64_t jitter_max = wait * options_.reconnect_jitter_percent / 100;
  if (jitter_max > 0) wait -= random_() % (jitter_max + 1);
  return wait;
}

void NatsLink::Disconnect(uint64_t now_ms, DisconnectReason reason, std::string_view detail) {
  RINGMQ_ASSERT(state_ != NatsLinkState::kWaiting && state_ != NatsLinkState::kStopped);
  ++counters_.disconnects;
  if (reason == DisconnectReason::kHandshakeTimeout) ++counters_.handshake_timeouts;
  if (reason == DisconnectReason::kStale) ++counters_.stale;
  counters_.bytes_discarded += output_.size();
  output_.clear();
  // The parser is not reset here: this may run inside its Feed (a sink call); BeginConnect
  // resets it, and OnReceived ignores the rest of this connection's bytes.
  pings_outstanding_ = 0;
  if (reason == DisconnectReason::kStopped) {
    state_ = NatsLinkState::kStopped;
  } else {
    state_ = NatsLinkState::kWaiting;
    if (!reached_ready_) {
      ++failed_attempts_;
      Server& server = servers_[server_index_];
      ++server.failures;
      if (server.discovered && server.failures >= options_.discovered_failures_max) {
        servers_.erase(servers_.begin() + static_cast<ptrdiff_t>(server_index_));
        ++counters_.servers_dropped;
        if (server_index_ == servers_.size()) server_index_ = 0;
        --server_index_;  // wraps; the increment below lands on the server after the dropped one
      }
    }
    server_index_ = (server_index_ + 1) % servers_.size();
    connect_at_ms_ = now_ms + BackoffMs();
  }
  reached_ready_ = false;
  sink_->OnDisconnected(reason, detail);
}

void NatsLink::OnTimer(uint64_t now_ms) {
  switch (state_) {
    case NatsLinkState::kConnecting:
    case NatsLinkState::kAwaitInfo:
    case NatsLinkState::kAwaitPong:
      if (now_ms >= handshake_deadline_ms_) {
        Disconnect(now_ms, DisconnectReason::kHandshakeTimeout, "NATS handshake timed out");
      }
      return;
    case NatsLinkState::kReady:
      if (now_ms < next_ping_ms_) return;
      if (pings_outstanding_ >= options_.max_pings_outstanding) {
        Disconnect(now_ms, DisconnectReason::kStale, "NATS server did not answer PINGs");
        return;
      }
      nats::AppendPing(output_);
      ++pings_outstanding_;
      ++counters_.pings_sent;
      next_ping_ms_ = now_ms + options_.ping_interval_ms;
      return;
    case NatsLinkState::kWaiting:  // the shard calls BeginConnect once connect_at_ms() is due
    case NatsLinkState::kStopped:
      return;
  }
}

uint64_t NatsLink::next_deadline_ms() const {
  switch (state_) {
    case NatsLinkState::kConnecting:
    case NatsLinkState::kAwaitInfo:
    case NatsLinkState::kAwaitPong:
      return handshake_deadline_ms_;
    case NatsLinkState::kReady:
      return next_ping_ms_;
    case NatsLinkState::kWaiting:
      return connect_at_ms_;
    case NatsLinkState::kStopped:
      break;
  }
  return std::numeric_limits<uint64_t>::max();
}

void NatsLink::Stop() {
  if (state_ == NatsLinkState::kStopped) return;
  if (state_ == NatsLinkState::kWaiting) {
    state_ = NatsLinkState::kStopped;
    return;
  }
  Disconnect(0, DisconnectReason::kStopped, "stopped");
}

void NatsLink::TakeOutput(std::string& buffer) {
  RINGMQ_ASSERT(buffer.empty());
  buffer.swap(output_);
}

absl::StatusOr<uint64_t> NatsLink::Subscribe(std::string_view subject,
                                             std::string_view queue_group) {
  if (state_ == NatsLinkState::kStopped) return absl::FailedPreconditionError("NATS: stopped");
  const uint64_t sid = next_sid_;
  // Validate by encoding into the output when ready, into scratch otherwise.
  std::string& target = state_ == NatsLinkState::kReady ? output_ : header_scratch_;
  header_scratch_.clear();
  absl::Status status = nats::AppendSub(subject, queue_group, sid, target);
  if (!status.ok()) return status;
  ++next_sid_;
  subscriptions_.emplace(sid, Subscription{std::string(subject), std::string(queue_group)});
  return sid;
}

bool NatsLink::Unsubscribe(uint64_t sid) {
  if (subscriptions_.erase(sid) == 0) return false;
  // Not ready: the subscription is simply not sent again at the next handshake.
  if (state_ == NatsLinkState::kReady) nats::AppendUnsub(sid, std::nullopt, output_);
  return true;
}

PublishResult NatsLink::Publish(std::string_view subject,
                                std::span<const nats::HeaderField> headers,
                                std::string_view payload, std::string_view reply) {
  PublishResult result = PublishResult::kInvalid;
  std::string_view block;
  if (!headers.empty()) {
    header_scratch_.clear();
    if (!nats::AppendHeaderBlock(headers, header_scratch_).ok()) {
      ++counters_.publishes_refused;
      return PublishResult::kInvalid;
    }
    block = header_scratch_;
  }
  const size_t body = block.size() + payload.size();
  const size_t max_payload =
      info_.max_payload > 0 ? static_cast<size_t>(info_.max_payload) : nats::kDefaultMaxPayload;
  // The operation's size: control line (bounded by the subject checks) + body + CRLF.
  const size_t line_max = 16 + subject.size() + reply.size() + 2 * 20 + 2;
  if (state_ == NatsLinkState::kStopped) {
    result = PublishResult::kNoRoom;
  } else if (body > max_payload) {
    result = PublishResult::kTooLarge;
  } else if (pending_bytes() + line_max + body + 2 > options_.outbound_bytes_max) {
    result = PublishResult::kNoRoom;
  } else if (std::string& target = state_ == NatsLinkState::kReady ? output_ : held_;
             memory_full_ && target.size() + line_max + body + 2 > target.capacity()) {
    result = PublishResult::kNoRoom;  // max_memory reached: no growth (set_memory_full)
    ++counters_.publishes_refused_memory;
  } else {
    absl::Status status = block.empty() ? nats::AppendPub(subject, reply, payload, target)
                                        : nats::AppendHpub(subject, reply, block, payload, target);
    if (status.ok()) {
      ++counters_.messages_out;
      counters_.bytes_out += body;
      return state_ == NatsLinkState::kReady ? PublishResult::kQueued : PublishResult::kHeld;
    }
  }
  ++counters_.publishes_refused;
  return result;
}

}  // namespace ringmq::cluster
