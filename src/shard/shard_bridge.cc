// MQTT bridges on the shard's ring (shard_bridge.h).
#include "shard/shard_bridge.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "shard/shard.h"

namespace ringmq::shard {
namespace {

constexpr uint64_t kBridgeWarningIntervalMs = 10'000;

// user_data slot of a bridge operation: bridge index, side (8), kind (3 bits).
enum class BridgeOp : uint32_t {
  kConnect = 0,
  kReceive = 1,
  kSend = 2,
  kSocket = 3,   // bridgeio lane: IORING_OP_SOCKET of the remote side
  kSockopt = 4,  // its TCP_NODELAY (IORING_OP_URING_CMD)
};
constexpr uint32_t kBridgeOpMask = 7;
constexpr uint32_t kBridgeRemoteBit = 8;
constexpr uint32_t kBridgeIndexShift = 4;
uint32_t BridgeSlot(size_t bridge, bool remote, BridgeOp op) {
  return static_cast<uint32_t>(bridge << kBridgeIndexShift) | (remote ? kBridgeRemoteBit : 0u) |
         static_cast<uint32_t>(op);
}

// A resolved address of a bridge's `addresses` entry; length 0 if it does not resolve.
BridgeIo::Address Resolve(const bridge::HostPort& host_port) {
  BridgeIo::Address result;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&result.address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&result.address);
  if (inet_pton(AF_INET, host_port.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(host_port.port);
    result.length = sizeof(sockaddr_in);
    return result;
  }
  if (inet_pton(AF_INET6, host_port.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(host_port.port);
    result.length = sizeof(sockaddr_in6);
    return result;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host_port.host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return result;
  }
  std::memcpy(&result.address, found->ai_addr, found->ai_addrlen);
  result.length = found->ai_addrlen;
  freeaddrinfo(found);
  if (result.address.ss_family == AF_INET) v4->sin_port = htons(host_port.port);
  if (result.address.ss_family == AF_INET6) v6->sin6_port = htons(host_port.port);
  return result;
}

}  // namespace

BridgeIo::~BridgeIo() {
  // A socket still open when the shard goes (the local side's, whose end comes after the loop
  // stopped): the ring is gone by then (bridges_ outlives ring_), so these are direct calls.
  // Everything the loop closes goes through the ring (CloseBridgeSide) and leaves fd at -1.
  if (remote.fd >= 0) close(remote.fd);
  if (local.fd >= 0) close(local.fd);
}

absl::Status Shard::SetupBridges() {
  char host_name[256] = {};
  if (gethostname(host_name, sizeof(host_name) - 1) != 0) host_name[0] = '\0';
  for (size_t i = index_; i < config_.bridges.size(); i += shared_.shard_count) {
    const BridgeConfig& config = config_.bridges[i];
    absl::StatusOr<std::unique_ptr<bridge::Bridge>> made = bridge::Bridge::Create(
        config, {.host_name = host_name,
                 .max_packet_size = config_.max_packet_size,
                 .connect_timeout_ms = config_.connect_timeout_ms,
                 .random_seed = (uint64_t{index_} << 32) ^ MonotonicNs() ^ i,
                 .durable = config_.persistence});
    if (!made.ok()) return made.status();
    auto io = std::make_unique<BridgeIo>();
    io->bridge = std::move(*made);
    io->config_index = static_cast<uint32_t>(i);
    io->remote.receive_buffer.resize(BridgeIo::kReceiveBytes);
    io->local.receive_buffer.resize(BridgeIo::kReceiveBytes);
    // Names are resolved once, at start, so that connecting never waits on DNS in the loop.
    for (const std::string& address : config.addresses) {
      const absl::StatusOr<bridge::HostPort> host_port = bridge::ParseHostPort(address);
      RINGMQ_ASSERT(host_port.ok());  // ValidateBridgeConfig checked it
      io->addresses.push_back(Resolve(*host_port));
      io->hosts.push_back(host_port->host);
      if (io->addresses.back().length == 0) {
        RINGMQ_LOG_WARNING("bridge %s: host %s does not resolve (names are resolved at start)",
                           config.name.c_str(), host_port->host.c_str());
      }
    }
    if (!config.cafile.empty()) {
      absl::StatusOr<std::unique_ptr<tls::ClientContext>> context = tls::ClientContext::Create(
          tls::ClientTlsOptions{absl::StrCat("[[bridge]] ", config.name), config.cafile,
                                config.certfile, config.keyfile, config.insecure});
      if (!context.ok()) return context.status();
      io->tls_context = std::move(*context);
    }
    RINGMQ_LOG_INFO("bridge %s: on shard %u, remote %s%s", config.name.c_str(), index_,
                    config.addresses.front().c_str(), config.cafile.empty() ? "" : " (TLS)");
    bridges_.push_back(std::move(io));
  }
  return absl::OkStatus();
}

void Shard::BridgeStep() {
  for (size_t i = 0; i < bridges_.size(); ++i) {
    BridgeIo& io = *bridges_[i];
    const BridgeConfig& config = io.bridge->config();
    // was_open: CountBridge has seen the connection open and started its idle clock.
    if (config.start_type == BridgeStartType::kLazy && io.was_open && io.bridge->RemoteIdle() &&
        !io.bridge->remote().has_output() && !io.remote.send_pending &&
        now_ms_ >= io.last_traffic_ms + uint64_t{config.idle_timeout_s} * 1000) {
      // mosquitto.conf(5) idle_timeout: a lazy bridge stops when idle; it starts again at
      // `threshold` waiting messages.
      io.bridge->remote().Disconnect(now_ms_, "idle (start_type lazy)");
    }
    StepBridgeSide(i, /*remote=*/false);
    StepBridgeSide(i, /*remote=*/true);
    CountBridge(io);
  }
}

void Shard::StepBridgeSide(size_t index, bool remote) {
  BridgeIo& io = *bridges_[index];
  BridgeIo::Side& side = remote ? io.remote : io.local;
  bridge::BridgeClient& client = remote ? io.bridge->remote() : io.bridge->local();
  // The client gave the connection up (also while connecting: a connect that outlived the
  // connect timeout is aborted by the shutdown, and completes as stale).
  if (side.fd >= 0 && client.state() == bridge::ClientState::kDisconnected) {
    CloseBridgeSide(side);
  }
  if (!stopping_ && client.ConnectDue(now_ms_) && side.idle() && !side.transport_up &&
      (!remote || io.bridge->RemoteWanted())) {
    if (remote) {
      ConnectBridgeRemote(index);
    } else {
      ConnectBridgeLocal(index);
    }
  }
  if (now_ms_ >= client.next_deadline_ms()) {
    client.OnTimer(now_ms_);
    if (side.fd >= 0 && client.state() == bridge::ClientState::kDisconnected) {
      CloseBridgeSide(side);
    }
  }
  if (side.transport_up && !side.send_pending) {
    side.send_buffer.clear();
    side.send_offset = 0;
    if (side.tls != nullptr) {
      // The TLS layer's own bytes first; MQTT only once the handshake is done.
      side.send_buffer.swap(side.tls_down);
      if (side.tls->open() && client.has_output()) {
        side.plain.clear();
        client.TakeOutput(now_ms_, side.plain);
        side.tls->Send(side.plain, side.send_buffer);
      }
    } else if (client.has_output()) {
      client.TakeOutput(now_ms_, side.send_buffer);
    }
    if (!side.send_buffer.empty()) SubmitBridgeSend(index, remote);
  }
}

void Shard::ConnectBridgeRemote(size_t index) {
  BridgeIo& io = *bridges_[index];
  bridge::BridgeClient& client = io.bridge->remote();
  client.BeginConnect(now_ms_);
  if (io.back_to_main && !io.bridge->config().round_robin) io.next_address = 0;
  io.back_to_main = false;
  const size_t at = io.next_address;
  const BridgeIo::Address& address = io.addresses[at];
  const std::string& name = io.bridge->config().addresses[at];
  io.next_address = (io.next_address + 1) % io.addresses.size();
  io.remote.tls.reset();
  io.remote.tls_down.clear();
  if (io.tls_context != nullptr) {
    io.remote.tls = io.tls_context->NewLayer(io.hosts[at]);
    if (io.remote.tls == nullptr) {
      client.OnTransportClosed(now_ms_, "TLS: out of memory");
      return;
    }
  }
  if (address.length == 0) {
    client.OnTransportClosed(now_ms_, absl::StrCat(name, ": the host did not resolve at start"));
    return;
  }
  // bridgeio lane: the socket, its TCP_NODELAY and the connect go through the ring as the NATS
  // links' do (SubmitTcpSocket, then OnBridgeSocket). connect_pending covers both steps.
  ++io.remote.generation;
  io.connecting_address = at;
  SubmitTcpSocket(address.address.ss_family,
                  BridgeUserData(io.remote.generation, BridgeSlot(index, true, BridgeOp::kSocket)));
  io.remote.connect_pending = true;
  io.remote.socket_pending = true;
}

void Shard::OnBridgeSocket(size_t index, int result, bool current) {
  BridgeIo& io = *bridges_[index];
  if (result < 0) {
    if (current) {
      io.bridge->remote().OnTransportClosed(now_ms_, absl::StrCat("socket: ", strerror(-result)));
    }
    return;
  }
  if (!current) {  // given up meanwhile (connect timeout, stop): the new socket is closed
    CloseBridgeSocket(result);
    return;
  }
  io.remote.fd = result;
  // TCP_NODELAY: the bridge client batches its output itself (one TakeOutput per send); Nagle
  // would hold a small PUBLISH or PUBACK back for an ACK.
  const BridgeIo::Address& address = io.addresses[io.connecting_address];
  SubmitNoDelayAndConnect(
      result, address.address, address.length,
      BridgeUserData(io.remote.generation, BridgeSlot(index, true, BridgeOp::kSockopt)),
      BridgeUserData(io.remote.generation, BridgeSlot(index, true, BridgeOp::kConnect)));
  io.remote.connect_pending = true;
}

void Shard::ConnectBridgeLocal(size_t index) {
  BridgeIo& io = *bridges_[index];
  bridge::BridgeClient& client = io.bridge->local();
  client.BeginConnect(now_ms_);
  // socketpair has no io_uring opcode. It stays a direct call (docs/bridges.md): it waits on
  // nothing (no peer, no network: both ends are made at once, non-blocking), and it runs at
  // start and again only when the local connection ended (the remote side's reconnects do not
  // touch it). Its ends are then driven and closed on the ring like any other socket.
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    client.OnTransportClosed(now_ms_, absl::StrCat("socketpair: ", strerror(errno)));
    return;
  }
  // fds[1] is served as a client connection under listener 0's settings (ACL, authentication),
  // but internal: it takes no connection slot and is counted apart (MarkInternal).
  counters_.gauges.bridge_local_connections.Add(1);  // given back in ReleaseSlot
  const uint32_t slot_index = AddConnection(fds[1], /*adopted=*/false);
  slots_[slot_index].connection.set_listener(0);
  slots_[slot_index].connection.MarkInternal();
  ArmReceive(slot_index);
  io.local.fd = fds[0];
  ++io.local.generation;
  io.local.transport_up = true;
  client.OnTransportConnected(now_ms_);
  SubmitBridgeReceive(index, /*remote=*/false);
}

void Shard::CloseBridgeSide(BridgeIo::Side& side) {
  if (side.fd >= 0) {
    // Ends the operations in flight (they complete as stale), then closes; both on the ring
    // (bridgeio lane: no syscall on this thread).
    CloseBridgeSocket(side.fd);
    side.fd = -1;
  }
  ++side.generation;
  side.transport_up = false;
  if (!side.send_pending) side.send_buffer.clear();
  side.tls.reset();  // ~14 KiB open, ~60 KiB in a handshake: not kept while disconnected
  side.tls_down.clear();
  side.peer = net::PeerInfo();
}

void Shard::CloseBridgeSocket(int fd) {
  if (loop_ended_) {
    // tidy2 lane: a socket made after the loop ended (AwaitBridgeSockets), never connected, with
    // nothing in flight on it. Closed directly: through the ring, its close would be linked to a
    // shutdown that runs in an io-wq worker, and the link goes on in the ring's deferred task
    // work (IORING_SETUP_DEFER_TASKRUN), which runs only while this thread waits on the ring;
    // the ring goes with the shard, and would cancel the close. One syscall, at stop only.
    close(fd);
    return;
  }
  if (stopping_) {
    SubmitLinkedSocketShutdownAndClose(fd);
  } else {
    SubmitSocketShutdown(fd);  // its completion submits the close
  }
}

void Shard::SubmitBridgeSend(size_t index, bool remote) {
  BridgeIo::Side& side = remote ? bridges_[index]->remote : bridges_[index]->local;
  RINGMQ_ASSERT(side.send_offset < side.send_buffer.size());
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_send(sqe, side.fd, side.send_buffer.data() + side.send_offset,
                     side.send_buffer.size() - side.send_offset, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(
      sqe, BridgeUserData(side.generation, BridgeSlot(index, remote, BridgeOp::kSend)));
  side.send_pending = true;
}

void Shard::SubmitBridgeReceive(size_t index, bool remote) {
  BridgeIo::Side& side = remote ? bridges_[index]->remote : bridges_[index]->local;
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_recv(sqe, side.fd, side.receive_buffer.data(), side.receive_buffer.size(), 0);
  io_uring_sqe_set_data64(
      sqe, BridgeUserData(side.generation, BridgeSlot(index, remote, BridgeOp::kReceive)));
  side.receive_pending = true;
}

void Shard::OnBridgeCompletion(const io_uring_cqe& cqe, uint32_t generation, uint32_t slot) {
  const size_t index = slot >> kBridgeIndexShift;
  const bool remote = (slot & kBridgeRemoteBit) != 0;
  const auto op = static_cast<BridgeOp>(slot & kBridgeOpMask);
  RINGMQ_ASSERT(index < bridges_.size());
  BridgeIo& io = *bridges_[index];
  BridgeIo::Side& side = remote ? io.remote : io.local;
  bridge::BridgeClient& client = remote ? io.bridge->remote() : io.bridge->local();
  if (op == BridgeOp::kConnect) side.connect_pending = false;
  if (op == BridgeOp::kReceive) side.receive_pending = false;
  if (op == BridgeOp::kSend) side.send_pending = false;
  const bool same_socket = generation == (side.generation & kBridgeGenerationMask);
  if (op == BridgeOp::kSocket) {
    side.connect_pending = false;
    side.socket_pending = false;
    return OnBridgeSocket(index, cqe.res,
                          same_socket && side.fd < 0 &&
                              client.state() == bridge::ClientState::kConnecting);
  }
  if (op == BridgeOp::kSockopt) return OnNoDelayResult(cqe.res, same_socket ? side.fd : -1);
  const bool current = same_socket && side.fd >= 0;
  if (!current) return;
  if (op == BridgeOp::kConnect) {
    if (cqe.res < 0) {
      client.OnTransportClosed(now_ms_, absl::StrCat("connect: ", strerror(-cqe.res)));
      CloseBridgeSide(side);
      return;
    }
    side.transport_up = true;
    client.OnTransportConnected(now_ms_);
    if (side.tls != nullptr) {  // the ClientHello
      side.tls_up.clear();
      if (side.tls->Receive({}, side.tls_up, side.tls_down, side.peer, counters_) ==
          net::TransportLayer::Result::kClose) {
        client.OnTransportClosed(now_ms_, side.tls->close_reason());
        CloseBridgeSide(side);
        return;
      }
    }
    SubmitBridgeReceive(index, remote);
    return;
  }
  if (!side.transport_up) return;
  if (op == BridgeOp::kReceive) {
    if (cqe.res <= 0) {
      client.OnTransportClosed(now_ms_, cqe.res == 0
                                            ? std::string("closed by the peer")
                                            : absl::StrCat("receive: ", strerror(-cqe.res)));
      CloseBridgeSide(side);
      return;
    }
    const std::span<const uint8_t> bytes(side.receive_buffer.data(), static_cast<size_t>(cqe.res));
    if (side.tls != nullptr) {
      side.tls_up.clear();
      const bool was_open = side.tls->open();
      const net::TransportLayer::Result result =
          side.tls->Receive(bytes, side.tls_up, side.tls_down, side.peer, counters_);
      if (!was_open && side.tls->open()) {
        RINGMQ_LOG_DEBUG("bridge %s: TLS to the remote: %s", io.bridge->config().name.c_str(),
                         side.peer.tls_description.c_str());
      }
      if (!side.tls_up.empty()) client.OnReceived(now_ms_, side.tls_up);
      if (result == net::TransportLayer::Result::kClose &&
          client.state() != bridge::ClientState::kDisconnected) {
        client.OnTransportClosed(now_ms_, side.tls->close_reason());
      }
    } else {
      client.OnReceived(now_ms_, bytes);
    }
    if (client.state() == bridge::ClientState::kDisconnected) {
      CloseBridgeSide(side);
    } else {
      SubmitBridgeReceive(index, remote);
    }
    return;
  }
  if (cqe.res < 0) {
    client.OnTransportClosed(now_ms_, absl::StrCat("send: ", strerror(-cqe.res)));
    CloseBridgeSide(side);
    return;
  }
  side.send_offset += static_cast<size_t>(cqe.res);
  if (side.send_offset < side.send_buffer.size()) SubmitBridgeSend(index, remote);
}

void Shard::StopBridges() {
  RINGMQ_ASSERT(stopping_);  // CloseBridgeSocket links each close to its shutdown
  for (size_t i = 0; i < bridges_.size(); ++i) {
    BridgeIo* io = bridges_[i].get();
    BridgeIo::Side& side = io->remote;
    if (side.transport_up && io->bridge->remote().state() == bridge::ClientState::kOpen &&
        !side.send_pending && side.tls == nullptr) {
      // A DISCONNECT (§3.14; without a send in flight nothing precedes it) tells the remote
      // broker this is a normal end, not a lost connection; with notifications it still sets
      // the state to "0" (EncodeGoodbye). Best effort: MSG_DONTWAIT makes the ring's send fail
      // with EAGAIN rather than wait, so a full socket buffer just loses it. Over TLS the
      // socket just closes (the will says "0"). bridgeio lane: the send is on the ring, hard
      // linked to the shutdown and close CloseBridgeSide submits next (they run whatever the
      // send's result), so the three must reach the kernel in one submission (as
      // SendLastAndClose).
      side.send_buffer.clear();
      side.send_offset = 0;
      io->bridge->remote().EncodeGoodbye(side.send_buffer);
      if (io_uring_sq_space_left(ring_->get()) < 3) io_uring_submit(ring_->get());
      RINGMQ_ASSERT(io_uring_sq_space_left(ring_->get()) >= 3);
      io_uring_sqe* sqe = NextSqe();
      io_uring_prep_send(sqe, side.fd, side.send_buffer.data(), side.send_buffer.size(),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      sqe->flags |= IOSQE_IO_HARDLINK;
      io_uring_sqe_set_data64(
          sqe, BridgeUserData(side.generation, BridgeSlot(i, true, BridgeOp::kSend)));
      side.send_pending = true;  // keeps send_buffer until the (stale) completion
    }
    CloseBridgeSide(side);
    // The local side's socket ends with the server side's connection, which the stop closes.
  }
}

void Shard::AwaitBridgeSockets() {
  RINGMQ_ASSERT(stopping_);  // StopBridges made every socket in flight stale
  const auto pending = [this] {
    for (const std::unique_ptr<BridgeIo>& io : bridges_) {
      if (io->remote.socket_pending) return true;
    }
    return false;
  };
  if (!pending()) return;
  // The descriptor arrives with the completion (reaping runs the ring's deferred work), as
  // stale: OnBridgeSocket closes it (CloseBridgeSocket). Other completions reaped meanwhile are
  // handled as in the loop (closes, the journal's).
  loop_ended_ = true;  // CloseBridgeSocket closes directly from now on
  const uint64_t deadline_ms = MonotonicMs() + kStopSocketWaitMs;
  for (now_ms_ = MonotonicMs(); pending() && now_ms_ < deadline_ms; now_ms_ = MonotonicMs()) {
    ring_->SubmitAndWait(static_cast<uint32_t>(deadline_ms - now_ms_));
    Reap();
  }
  for (const std::unique_ptr<BridgeIo>& io : bridges_) {
    if (!io->remote.socket_pending) continue;
    counters_.stop_sockets_unclosed.Add();
    RINGMQ_LOG_WARNING(
        "bridge %s: its socket was still being made %u ms after the loop ended; if the kernel "
        "makes it later, it is not closed before exit",
        io->bridge->config().name.c_str(), kStopSocketWaitMs);
  }
}

void Shard::CountBridge(BridgeIo& io) {
  metrics::BridgeCounters& counters = counters_.bridge(io.config_index);
  const bridge::BridgeStats& stats = io.bridge->stats();
  counters.messages_out.Add(stats.messages_out - io.reported.messages_out);
  counters.messages_in.Add(stats.messages_in - io.reported.messages_in);
  if (stats.messages_out != io.reported.messages_out ||
      stats.messages_in != io.reported.messages_in) {
    io.last_traffic_ms = now_ms_;
  }
  bool connected = false;
  if (!stopping_ && io.bridge->TakeLocalState(connected)) {
    router_->PublishOwn(io.bridge->notification_topic(), connected ? "1" : "0");
  }
  counters.notifications.Add(io.bridge->stats().notifications - io.reported.notifications);
  io.reported = io.bridge->stats();
  // Drops as the clients count them: queue bounds, and messages too large for the peer.
  const uint64_t dropped_out = io.bridge->remote().stats().dropped;
  const uint64_t dropped_in = io.bridge->local().stats().dropped;
  counters.dropped_out.Add(dropped_out - io.dropped_out_reported);
  counters.dropped_in.Add(dropped_in - io.dropped_in_reported);
  io.dropped_out_reported = dropped_out;
  io.dropped_in_reported = dropped_in;
  // A refused subscription (an ACL, a remote's policy) silently stops a direction: say so.
  for (const bool remote_side : {true, false}) {
    const bridge::BridgeClient& client = remote_side ? io.bridge->remote() : io.bridge->local();
    uint64_t& reported = io.refused_reported[remote_side ? 0 : 1];
    if (client.stats().subscribe_refused != reported) {
      reported = client.stats().subscribe_refused;
      RINGMQ_LOG_WARNING("bridge %s: the %s broker refused %llu of its subscriptions so far",
                         io.bridge->config().name.c_str(), remote_side ? "remote" : "local",
                         static_cast<unsigned long long>(reported));
    }
  }
  const bridge::ClientStats& remote = io.bridge->remote().stats();
  const bool ended = remote.disconnects != io.remote_reported.disconnects;
  counters.connects.Add(remote.connects - io.remote_reported.connects);
  counters.disconnects.Add(remote.disconnects - io.remote_reported.disconnects);
  counters.resent.Add(remote.resent - io.remote_reported.resent);
  counters.qos2_recovered.Add(remote.qos2_recovered - io.remote_reported.qos2_recovered);
  counters.qos2_abandoned.Add(remote.qos2_abandoned - io.remote_reported.qos2_abandoned);
  io.remote_reported = remote;
  const bool open = io.bridge->remote().state() == bridge::ClientState::kOpen;
  if (open != io.was_open) {
    io.was_open = open;
    counters_.gauges.bridges_connected.Add(open ? 1 : -1);
    counters.connected.Set(open ? 1 : 0);
    io.last_traffic_ms = now_ms_;
    if (!open) io.back_to_main = true;
    if (open) RINGMQ_LOG_INFO("bridge %s: connected", io.bridge->config().name.c_str());
  }
  // Failed attempts repeat with the back-off: one line per interval at most.
  if (ended && !open && !stopping_ && now_ms_ >= io.next_warning_ms) {
    io.next_warning_ms = now_ms_ + kBridgeWarningIntervalMs;
    const uint64_t at = io.bridge->remote().connect_at_ms();
    RINGMQ_LOG_WARNING("bridge %s: not connected (%s); next attempt in %llu ms",
                       io.bridge->config().name.c_str(), io.bridge->last_error().c_str(),
                       static_cast<unsigned long long>(at > now_ms_ ? at - now_ms_ : 0));
  }
}

}  // namespace ringmq::shard
