// A shard: one thread, one io_uring, one SO_REUSEPORT listener, and the connections it accepted.
//
// The loop, once per iteration: reap every completion (accepts, receives, sends, closes, the
// stop doorbell), drain the signalled mailboxes, work on pending SUBSCRIBE/UNSUBSCRIBE jobs
// (the router's per-iteration filter budget; the loop does not sleep while jobs wait), advance
// the timer wheel (and, once per tick, expire offline sessions), on shard 0 publish the $SYS
// topics when they are due (every sys_interval_s), then for each connection touched in this
// iteration start its next send or its close, ring the doorbells of shards sent mail (and retry
// failed ones), hand receive buffers back, and make one submit-and-wait call for everything
// (waking at least every tick for timers). Clustered (Config::clustered), the shard also drives
// its NATS links (the main link, and the share link of its shared-subscription groups) after the
// router's Flush each iteration (NatsStep: connect when due, the link's deadlines, the next send
// of its output); a link's socket never blocks the loop. Its MQTT bridges (Config::bridges,
// bridge i on shard i % shards) are driven the same way right after (BridgeStep,
// shard_bridge.h). With
// stall_warning_ms set, an iteration that runs longer is counted and logged with what it did
// (stall_detector.h).
//
// Receive memory is the shard's provided-buffer ring; connections hold none while idle.
// Completions carry (op, generation, slot) in user_data, so a completion that arrives after
// its connection's slot was reused is recognised as stale and only its buffer is recycled.
//
// Closing a connection: once it has nothing left to send, shutdown(SHUT_RDWR) ends the
// multishot receive (and any send stuck on a peer that does not read), then close(fd) frees
// the descriptor and the slot. A connection with no receive and no send pending is closed at
// once: receives are one-shot until the first packet after CONNECT has been read, so a refused
// connection and one whose first packet is DISCONNECT need no shutdown. A connection closing
// with only its pre-encoded CONNACK left to send (a refusal; also an accepted CONNECT whose
// connection ends in the same iteration: DISCONNECT or a protocol violation in the same read,
// a takeover, a stop) has that send hard-linked to its close, and its slot freed at once
// (SendLastAndClose).
//
// Persistence (router.h, "Persistence"): the shard owns its Journal; each iteration, after the
// router's Flush, it submits the journal's write of the iteration's records linked to an
// fdatasync (group commit), then lets the router release what became durable before the
// connections' sends. With persistence on, Setup also recovers this shard's sessions and waits
// until every shard has, so no connection is served before the whole state is back.
//
// Thread safety: Run() executes on the shard's own thread and everything inside is owned by it.
// RequestStop() and counters() may be called from any thread.
#ifndef RINGMQ_SHARD_SHARD_H_
#define RINGMQ_SHARD_SHARD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "auth/authenticator.h"
#include "auth/enhanced_auth.h"
#include "cluster/nats_link.h"
#include "cluster/node_identity.h"
#include "common/stable_vector.h"
#include "io/buffer_ring.h"
#include "io/ring.h"
#include "metrics/counters.h"
#include "net/connection.h"
#include "persist/journal.h"
#include "ringmq/config.h"
#include "shard/doorbell_retries.h"
#include "shard/router.h"
#include "shard/shard_bridge.h"
#include "shard/shared_state.h"
#include "shard/stall_detector.h"
#include "shard/timer_wheel.h"
#include "tls/client_context.h"

namespace ringmq::shard {

// Sizing, all per shard (see docs/architecture.md, "Budgets").
struct ShardLimits {
  uint32_t ring_entries = 1024;    // submission queue; completion queue is 4x
  uint32_t receive_buffers = 512;  // provided buffers (power of two)
  uint32_t receive_buffer_bytes = 4096;
  uint32_t tick_ms = 100;  // timer resolution and longest sleep
};

class Shard final : public ShardServices, private cluster::NatsLinkSink {
 public:
  static constexpr uint32_t kSysShard = 0;  // publishes the $SYS topics

  // Every listener's socket, index = listener (listener::EffectiveListeners order; at most
  // kMaxListeners), each with its transport factory in
  // shared.transport_factories (null: plain TCP).
  static constexpr size_t kMaxListeners = shard::kMaxListeners;

  // Takes ownership of `listen_fds` (closed on error too). Errors: the stop doorbell (an
  // eventfd) cannot be created, e.g. the file-descriptor limit is reached.
  static absl::StatusOr<std::unique_ptr<Shard>> Create(uint32_t index, const Config& config,
                                                       std::vector<int> listen_fds,
                                                       SharedState& shared);
  ~Shard() override;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Creates the ring on the calling thread, then calls `ready(status)` once (OK when serving
  // or the setup error, which names the shard and what to change) and, if OK, runs until
  // RequestStop() and every connection is closed.
  template <typename ReadyFn>
  absl::Status Run(ReadyFn ready) {
    absl::Status status = Setup();
    if (!status.ok() && !reached_barrier_) {
      shared_.shards_set_up_failed.fetch_add(1, std::memory_order_acq_rel);
    }
    ready(status);
    if (!status.ok()) return status;
    Loop();
    return absl::OkStatus();
  }

  // Wakes the shard to stop: no more accepts, every connection flushed and closed.
  void RequestStop();

  // ShardServices (called by the router on this shard's thread)
  void AdoptConnection(HandoffRecord handoff) override;
  void ConnectionDirty(uint32_t tag) override { MarkDirty(tag); }
  void OutputReleased(uint32_t tag) override;
  void RingDoorbell(uint32_t shard) override;
  uint64_t now_ms() const override { return now_ms_; }
  memory::Pressure memory_pressure() const override { return memory_view_.Level(); }

  const metrics::ShardCounters& counters() const { return counters_; }
  uint32_t index() const { return index_; }

 private:
  // The socket is connection.fd() (-1 once it moved to another shard). The flags are bits, so
  // that they, the generation and timer_state share one 8-byte word after the connection.
  struct Slot {
    net::Connection connection;
    uint32_t generation = 0;
    bool in_use : 1 = false;
    bool receive_armed : 1 = false;
    bool dirty : 1 = false;
    bool shutdown_submitted : 1 = false;
    bool shutdown_complete : 1 = false;  // close(fd) only after: see FlushSlot
    // Lingering close (Connection::WantsLinger): shutdown(SHUT_WR) submitted / completed.
    bool linger_submitted : 1 = false;
    bool linger_complete : 1 = false;
    bool peer_closed : 1 = false;  // a receive ended with the peer's EOF or a socket error
    bool cancel_submitted : 1 = false;   // the receive is being cancelled (hand-off, or paused)
    // A receive completed with data after CONNECT was decided: from then on the receive is
    // multishot (see ArmReceive).
    bool served_receive_done : 1 = false;
    net::Connection::State timer_state = net::Connection::State::kAwaitConnect;
  };
  // One per connection, with the session entry most of an idle connection's memory
  // (docs/performance.md, "Memory per idle connection").
  static_assert(sizeof(void*) != 8 || sizeof(Slot) <= 176, "a connection slot grew");

  Shard(uint32_t index, const Config& config, std::vector<int> listen_fds, int doorbell_fd,
        SharedState& shared);

  absl::Status Setup();
  void Loop();
  void Reap();
  void HandleCompletion(const io_uring_cqe& cqe);
  void OnAccept(const io_uring_cqe& cqe, uint32_t listener);
  void OnReceive(const io_uring_cqe& cqe, Slot* slot);
  void OnSend(const io_uring_cqe& cqe, Slot* slot);
  void OnTimer(uint32_t slot_index);
  void Flush();
  void FlushSlot(uint32_t slot_index);
  void FlushClosing(uint32_t slot_index);
  // A closing connection whose only output left is its static CONNACK (refused, or accepted
  // and ended at once): that send and the close go out linked, and the slot is freed at once.
  void SendLastAndClose(uint32_t slot_index, std::span<const uint8_t> bytes);
  void SubmitClose(uint32_t slot_index);
  // The socket's close is submitted: tells the router and the connection, frees the slot.
  void CloseSlot(uint32_t slot_index);
  void FlushHandoff(uint32_t slot_index);
  void BeginStop();
  void MaybePublishSys();
  // Once per tick: charges what this shard holds at a per-item estimate (connection slots,
  // sessions, subscriptions) and re-sums the memory accounts.
  void RefreshMemory();
  // Stall detection (stall_warning_ms > 0): phase boundaries, and the end of the iteration.
  void EndPhase(LoopPhase phase);
  void EndIteration();

  // ---- Cluster over NATS (shard_cluster.cc; Config::clustered) ----
  // The shard's NATS link and its socket, driven on the shard's ring like a client connection:
  // IORING_OP_CONNECT, one receive at a time into its own buffer, one send in flight of what
  // the link's TakeOutput gave. A socket the link left is shut down and closed at once; its
  // operations still in flight complete as stale (an older generation), and the next socket
  // waits for them, since they use the buffers below.
  struct NatsIo {
    std::unique_ptr<cluster::NatsLink> link;
    uint32_t slot = 0;  // in its completions' user_data: kNatsSlotMain or kNatsSlotShare
    int fd = -1;
    uint32_t generation = 0;  // of `fd`; a completion of an older socket is stale
    bool connect_pending = false;
    // tidy3 lane: IORING_OP_SOCKET in flight (part of connect_pending); at stop,
    // AwaitNatsSockets waits for it so that its descriptor is closed.
    bool socket_pending = false;
    bool receive_pending = false;
    bool send_pending = false;
    bool transport_up = false;  // connected, and not yet left by the link
    bool ever_ready = false;
    sockaddr_storage address{};
    socklen_t address_length = 0;
    std::string send_buffer;  // TakeOutput's bytes; send_offset of them sent
    size_t send_offset = 0;
    std::vector<char> receive_buffer;
    uint64_t next_warning_ms = 0;
    // weak lane: what ChargeNatsMemory charged to the memory account (the link's buffers and
    // send_buffer; receive_buffer, allocated at start, is in the baseline) and the link's
    // memory refusals already added to the counters.
    int64_t charged_bytes = 0;
    uint64_t memory_refused_exported = 0;
    // natstls lane: TLS on the current socket (NatsLink::tls_required once INFO is in): its
    // layer (null: plain, or before INFO), the bytes it wants sent (handshake, records) and
    // reused buffers for plaintext in and out. Released with the socket.
    std::unique_ptr<tls::TlsLayer> tls;
    ByteBuffer tls_down;
    ByteBuffer tls_up;
    std::string plain;
    net::PeerInfo peer;
    uint64_t next_tls_warning_ms = 0;
  };
  static constexpr size_t kNatsReceiveBytes = 64 * 1024;
  static constexpr uint32_t kNatsSlotMain = 0;
  static constexpr uint32_t kNatsSlotShare = 1;
  // Set-up: the link, attached to the router, and the share link. Errors: the links' options.
  absl::Status SetupCluster();
  // The options of this shard's links: the [cluster] servers, named after node and shard.
  cluster::NatsLinkOptions NatsOptions() const;
  // Once per loop iteration (after the router's Flush), per link: connect when due, the link's
  // timers, and its output's next send.
  void NatsStep(NatsIo& nats);
  // The link a NATS completion belongs to (its slot).
  NatsIo& NatsOf(uint64_t user_data);
  void OnNatsConnect(const io_uring_cqe& cqe);
  // weak lane: socket set-up and teardown on the ring (IORING_OP_SOCKET, TCP_NODELAY through
  // IORING_OP_URING_CMD, IORING_OP_SHUTDOWN + IORING_OP_CLOSE).
  void OnNatsSocket(const io_uring_cqe& cqe);
  void OnNatsSockopt(const io_uring_cqe& cqe);
  void OnNatsReceive(const io_uring_cqe& cqe);
  void OnNatsSend(const io_uring_cqe& cqe);
  void SubmitNatsReceive(NatsIo& nats);
  void SubmitNatsSend(NatsIo& nats);
  // Shuts down and closes the socket the link left; its operations in flight complete as stale.
  void CloseNatsSocket(NatsIo& nats);
  // tidy3 lane: a NATS socket left. Running: on the ring (SubmitSocketShutdown, the close on its
  // completion). Stopping: shutdown(2) and close(2) at once (docs/cluster.md, "At stop").
  void CloseNatsFd(int fd);
  // tidy3 lane. After the loop ended: waits for the links' sockets still being made
  // (NatsIo::socket_pending), at most kStopSocketWaitMs, reaping completions, so that each
  // arrives as stale and is closed (CloseNatsFd). One still not made by then is counted
  // (stop_sockets_unclosed) and logged.
  void AwaitNatsSockets();
  // natstls lane. Once INFO asked for TLS (or the configuration did): the layer for this
  // socket and its ClientHello; false if the link left the connection (no TLS configured,
  // out of memory).
  bool StartNatsTls(NatsIo& nats);
  // Received bytes through the layer to the link; the handshake's end or failure counted and
  // logged.
  void NatsTlsReceive(NatsIo& nats, std::span<const uint8_t> bytes);
  // What goes out next when TLS runs: the layer's own bytes, then the link's output encrypted
  // once the handshake is done.
  void NatsTlsOutput(NatsIo& nats);
  // A TLS failure of either link (DisconnectReason::kTls): counted, logged (rate-limited).
  void NoteNatsTlsFailure(NatsIo& nats, std::string_view link_name, std::string_view detail);
  // The address of the link's server, numeric or resolved at start (SharedState::cluster_hosts).
  bool NatsAddress(NatsIo& nats, const cluster::NatsServerAddress& server);
  // weak lane (max_memory): charges the change of the link's buffer capacity, tells the link
  // whether the budget is spent (NatsLink::set_memory_full) and exports its refusals. Once per
  // loop iteration per link: a few loads, no syscall, no allocation.
  void ChargeNatsMemory(NatsIo& nats);
  // ---- The share link (shard_share_link.cc; docs/cluster.md, "Shared subscriptions") ----
  // A second NATS connection per shard that holds only the NATS queue subscriptions of this
  // shard's shared-subscription groups and never publishes. The main link publishes with echo
  // off, and nats-server never gives a queue message to the connection that published it (it
  // picks another member, or drops the message when there is none): on the main link, this
  // shard's members would never get its own publishers' messages, and a group with members on
  // this shard only would lose them. Same options, servers and socket handling as the main
  // link.
  class ShareLinkSink;
  absl::Status SetupShareLink();
  // ---- Duplicate node names (shard_node_identity.cc; cluster/node_identity.h) ----
  // Shard 0 subscribes its node name's control subject on its main link, announces the node
  // at every handshake and judges the announcements it receives there.
  void SetupNodeIdentity();
  // True if `message` came for the node subject (handled here; never routed).
  bool OnNodeAnnouncement(const cluster::NatsMessage& message);
  void AnnounceNode();
  // cluster::NatsLinkSink (called by the link on this thread).
  void OnReady(const cluster::nats::ServerInfo& info) override;
  void OnMessage(const cluster::NatsMessage& message) override;
  void OnDisconnected(cluster::DisconnectReason reason, std::string_view detail) override;
  void OnServerError(std::string_view text) override;

  // ---- MQTT bridges (shard_bridge.h, shard_bridge.cc; Config::bridges) ----
  // Set-up: this shard's bridges (i % shards == index), their addresses resolved. Errors: a
  // bridge's config.
  absl::Status SetupBridges();
  // Once per loop iteration (after the router's Flush): each bridge side's connect when due,
  // timers and next send; counters.
  void BridgeStep();
  void StepBridgeSide(size_t index, bool remote);
  void ConnectBridgeRemote(size_t index);
  void ConnectBridgeLocal(size_t index);
  void CloseBridgeSide(BridgeIo::Side& side);
  void SubmitBridgeSend(size_t index, bool remote);
  void SubmitBridgeReceive(size_t index, bool remote);
  void OnBridgeCompletion(const io_uring_cqe& cqe, uint32_t generation, uint32_t slot);
  void StopBridges();
  void CountBridge(BridgeIo& io);
  // bridgeio lane: the remote side's new socket (IORING_OP_SOCKET's completion): TCP_NODELAY
  // and the connect, or closed if the attempt was given up meanwhile.
  void OnBridgeSocket(size_t index, int result, bool current);
  // A bridge socket left: SubmitSocketShutdown, or SubmitLinkedSocketShutdownAndClose once
  // stopping, or a direct close once the loop ended (AwaitBridgeSockets).
  void CloseBridgeSocket(int fd);
  // tidy2 lane. After the loop ended (stopping, ring still up): waits for the remote sockets
  // still being made (BridgeIo::Side::socket_pending), at most kStopSocketWaitMs, reaping
  // completions, so that each arrives as stale and is closed (directly: CloseBridgeSocket). A
  // socket still not made by then is counted (stop_sockets_unclosed) and logged: its
  // descriptor, if the kernel makes one later, is not closed.
  void AwaitBridgeSockets();
  // user_data of a bridge operation (Op::kBridge, shard.cc).
  static uint64_t BridgeUserData(uint32_t generation, uint32_t slot);
  static constexpr uint32_t kBridgeGenerationMask = 0xFF'FFFF;  // user_data keeps 24 bits

  // ---- Sockets on the ring, for the NATS links and the bridges (weak lane, factored by the
  // bridgeio lane) ----
  // IORING_OP_SOCKET (Linux 5.19): a non-blocking TCP socket of `family`; its completion
  // carries `user_data` and the descriptor (or -errno).
  void SubmitTcpSocket(int family, uint64_t user_data);
  // TCP_NODELAY through IORING_OP_URING_CMD (SOCKET_URING_OP_SETSOCKOPT, Linux 6.7), then
  // IORING_OP_CONNECT to `address`; not linked (the option may land before or after the
  // connect). Their completions carry sockopt_data and connect_data.
  void SubmitNoDelayAndConnect(int fd, const sockaddr_storage& address, socklen_t length,
                               uint64_t sockopt_data, uint64_t connect_data);
  // The TCP_NODELAY command's result: a kernel without socket commands (-EINVAL, -EOPNOTSUPP)
  // gets a direct setsockopt on `fd` (when >= 0: the socket is still the current one), and a
  // warning once per shard.
  void OnNoDelayResult(int result, int fd);
  // IORING_OP_SHUTDOWN of a socket left (its operations in flight complete), then, on its
  // completion, IORING_OP_CLOSE (SubmitSocketClose): no syscall on the shard's thread.
  void SubmitSocketShutdown(int fd);
  void SubmitSocketClose(int fd);
  // The same, the close hard-linked to the shutdown in one submission: no completion has to
  // be reaped for the close to be submitted. For a stopping shard, whose loop may end before
  // a shutdown's completion would be (bridgeio lane).
  void SubmitLinkedSocketShutdownAndClose(int fd);

  // tidy2 lane, a test seam (tests/shard/shard_bridge_test.cc) and nothing else: while `fd` is
  // >= 0, every IORING_OP_SOCKET is hard-linked behind a one-byte read of `fd` (a pipe) forced
  // into an io-wq worker (IOSQE_ASYNC), so the socket is made only once the test wrote that
  // byte (or closed the pipe), when the shard's thread next waits on the ring (the link goes on
  // in the ring's deferred task work): an operation in flight when the loop ends, on demand.
  // Set before a shard starts and reset after it stopped.
 public:
  static void SetSocketGateForTesting(int fd);
  // AwaitBridgeSockets' bound. IORING_OP_SOCKET completes inline when submitted; it is in
  // flight across the loop's end only if the kernel handed it to an io-wq worker. 1 s bounds
  // the stop's extra wait.
  static constexpr uint32_t kStopSocketWaitMs = 1000;

 private:
  // The multishot accept of every listener that has none armed.
  void ArmAccept();
  void ArmReceive(uint32_t slot_index);
  void ArmDoorbell();
  // msg_ring to `shard`'s ring (first ring for new mail, or a retry of a failed one).
  void SubmitDoorbell(uint32_t shard);
  void OnDoorbellFailed(const io_uring_cqe& cqe);
  // A slot for a socket accepted here or adopted from another shard, with its connect timer.
  uint32_t AddConnection(int fd, bool adopted);
  uint32_t AllocateSlot();
  void ReleaseSlot(uint32_t slot_index);
  void MarkDirty(uint32_t slot_index);
  void ScheduleTimer(uint32_t slot_index);
  io_uring_sqe* NextSqe();

  const uint32_t index_;
  const Config& config_;
  const ShardLimits limits_;
  const std::vector<int> listen_fds_;  // index = listener
  std::vector<bool> accept_armed_;     // per listener
  SharedState& shared_;
  const int doorbell_fd_;  // eventfd: the stop request
  uint64_t doorbell_value_ = 0;
  DoorbellRetries doorbell_retries_;  // failed msg_ring doorbells to other shards
  uint64_t next_doorbell_warning_ms_ = 0;
  StallDetector stalls_;
  uint64_t next_stall_warning_ms_ = 0;
  uint64_t stalls_not_logged_ = 0;  // since the last stall warning

  metrics::ShardCounters counters_;
  net::ConnectionContext context_;
  // Null when no authentication is configured (admission then skips it: a null check).
  std::unique_ptr<auth::ShardAuthenticator> authenticator_;
  // MQTT 5 enhanced authentication methods: SCRAM-SHA-256 when a password file is configured
  // (it proves users of that file), none otherwise (CONNACK 0x8C).
  auth::AuthMethodRegistry auth_methods_;
  // Before ring_, so that its buffers outlive the ring's operations still in flight at stop.
  // natstls lane: the client TLS settings of both NATS links (tls/client_context.h); null when
  // [cluster] configures no TLS.
  std::unique_ptr<tls::ClientContext> nats_tls_context_;
  std::unique_ptr<NatsIo> nats_;  // null: not clustered
  // The share link and its sink (a ShareLinkSink, declared first: it outlives the link);
  // null: not clustered.
  std::unique_ptr<cluster::NatsLinkSink> nats_share_sink_;
  std::unique_ptr<NatsIo> nats_share_;
  // Duplicate node names (weak lane): shard 0's identity and its subscription; null otherwise.
  std::unique_ptr<cluster::NodeIdentity> node_identity_;
  uint64_t node_identity_sid_ = 0;
  uint64_t node_conflict_warning_ms_ = 0;
  bool sockopt_fallback_ = false;  // setsockopt through the ring unsupported (said once)
  std::vector<std::unique_ptr<BridgeIo>> bridges_;  // before ring_, for the same reason
  std::unique_ptr<io::Ring> ring_;
  std::unique_ptr<io::BufferRing> buffers_;
  std::unique_ptr<TimerWheel> timers_;
  std::unique_ptr<Router> router_;
  // Persistence (Config::persistence): this shard's log writer; null when off.
  std::unique_ptr<persist::Journal> journal_;
  bool reached_barrier_ = false;
  // Persistence set-up (in Setup): the journal on this run's first segment, recovery, the start
  // barrier. Errors: the segment file cannot be created.
  absl::Status SetupPersistence();
  // Submits the journal's next write (linked to its fdatasync), if any.
  void SubmitJournal();
  // Stopping: writes and syncs what the journal still holds, blocking (the loop has ended).
  void DrainJournal();
  memory::View memory_view_;
  int64_t charged_structures_bytes_ = 0;  // RefreshMemory's estimate, as last charged
  uint64_t next_memory_refresh_ms_ = 0;

  StableVector<Slot, kChunkBytesFor<Slot>> slots_;  // stable addresses, 16 KiB chunks
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> dirty_;
  uint32_t open_connections_ = 0;
  uint32_t last_reaped_ = 0;  // completions of the last Reap
  uint64_t now_ms_ = 0;
  // Once per tick: reclamation of retired trie nodes and expiry of offline sessions.
  uint64_t next_collect_ms_ = 0;
  uint64_t accept_retry_ms_ = 0;  // after EMFILE/ENFILE: when to re-arm accept (0: none)
  uint64_t next_sys_ms_ = 0;      // next $SYS publication (shard kSysShard only)
  bool stopping_ = false;
  bool loop_ended_ = false;  // tidy2 lane: set by AwaitBridgeSockets, after the loop
};

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_SHARD_H_
