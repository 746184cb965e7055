#include "shard/shard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

#include "common/assert.h"
#include "common/clock.h"
#include "common/log.h"
#include "io/errno_status.h"
#include "io/listener.h"
#include "shard/cluster_acks.h"
#include "shard/connection_context.h"

namespace ringmq::shard {
namespace {

enum class Op : uint8_t {
  kAccept = 1,
  kReceive,
  kSend,
  kShutdown,
  kLingerShutdown,  // shutdown(SHUT_WR) of a lingering close
  kCancel,
  kClose,
  kDoorbell,     // stop request (eventfd)
  kMailbox,      // another shard's msg_ring: our mailbox from it became non-empty
  kMsgRing,      // our own msg_ring submissions (completions skipped on success)
  kLogWrite,     // the journal's write
  kLogSync,      // its linked fdatasync
  kNatsConnect,  // the cluster NATS link's socket (generation: NatsIo::generation)
  kNatsReceive,
  kNatsSend,
  kBridge,  // a bridge's socket operation (slot: Shard::OnBridgeCompletion's encoding)
  // weak lane: the NATS links' socket set-up and teardown on the ring.
  kNatsSocket,   // IORING_OP_SOCKET (generation: NatsIo::generation)
  kNatsSockopt,  // TCP_NODELAY through IORING_OP_URING_CMD
  // bridgeio lane: shared with the bridges' sockets (Shard::SubmitSocketShutdown).
  kSocketShutdown,  // shutdown of a socket left (slot: the descriptor): then its close
  kSocketClose,     // that close (completion ignored)
};

// SOCKET_URING_OP_SETSOCKOPT (include/uapi/linux/io_uring.h, Linux 6.7): not in the headers of
// liburing 2.3, so the fields are set by hand: cmd_op in the `off` union, level and optname in
// `addr` (level the low word), optlen in `file_index`, the option value's address in `addr3`.
constexpr uint32_t kSocketUringOpSetsockopt = 3;
constexpr int kTcpNoDelayOn = 1;  // outlives every setsockopt command (static storage)

constexpr uint16_t kBufferGroup = 0;
constexpr uint32_t kTimerBuckets = 1024;  // 1024 x 100 ms: deadlines within ~100 s are exact
constexpr uint32_t kGenerationMask = 0xFF'FFFF;
// Warnings about one recurring condition (a broken doorbell, loop stalls): at most one line per
// shard per interval, so a persistent problem cannot flood the log.
constexpr uint64_t kWarningIntervalMs = 10'000;

// user_data: op (8 bits) | generation (24 bits) | slot (32 bits).
uint64_t Pack(Op op, uint32_t generation, uint32_t slot) {
  return (uint64_t{static_cast<uint8_t>(op)} << 56) |
         (uint64_t{generation & kGenerationMask} << 32) | slot;
}
Op OpOf(uint64_t data) { return static_cast<Op>(data >> 56); }
uint32_t GenerationOf(uint64_t data) { return static_cast<uint32_t>(data >> 32) & kGenerationMask; }
uint32_t SlotOf(uint64_t data) { return static_cast<uint32_t>(data); }

// A shard's set-up error, named after the shard (the io layer says what to change).
absl::Status SetupError(uint32_t shard, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("shard ", shard, ": ", status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(uint32_t index, const Config& config,
                                                     std::vector<int> listen_fds,
                                                     SharedState& shared) {
  RINGMQ_ASSERT(index < shared.shard_count && !listen_fds.empty());
  RINGMQ_ASSERT(listen_fds.size() <= kMaxListeners);
  const int doorbell_fd = eventfd(0, EFD_CLOEXEC);
  if (doorbell_fd < 0) {
    const int error = errno;
    for (const int fd : listen_fds) close(fd);
    return SetupError(index, io::ErrnoStatus(error, "eventfd (the stop doorbell)"));
  }
  return std::unique_ptr<Shard>(
      new Shard(index, config, std::move(listen_fds), doorbell_fd, shared));
}

Shard::Shard(uint32_t index, const Config& config, std::vector<int> listen_fds, int doorbell_fd,
             SharedState& shared)
    : index_(index),
      config_(config),
      limits_(),
      listen_fds_(std::move(listen_fds)),
      accept_armed_(listen_fds_.size(), false),
      shared_(shared),
      doorbell_fd_(doorbell_fd),
      doorbell_retries_(shared.shard_count),
      stalls_(config.stall_warning_ms),
      memory_view_(shared.memory, shared.memory.account(index)) {
  ConfigureConnectionContext(index, config, shared, counters_, context_);
  // One socket per listener::EffectiveListeners entry: a listener index names the same listener
  // in listen_fds_, context_.listeners and the per-listener counters.
  RINGMQ_ASSERT(listen_fds_.size() == context_.listeners.size());
  if (auth::AuthConfigured(config)) {
    authenticator_ = std::make_unique<auth::ShardAuthenticator>(
        shared.auth, config.max_auth_failures_per_second, &now_ms_, &counters_);
    context_.policy.authenticator = authenticator_.get();
    if (!config.password_file.empty()) {
      auth::RegisterStandardMethods(auth_methods_, shared.auth, authenticator_->failure_budget(),
                                    &counters_);
      context_.auth_methods = &auth_methods_;
      context_.policy.auth_methods = &auth_methods_;
    }
  }
  if (shared.memory.max_bytes() != 0) context_.memory = &memory_view_;
}

Shard::~Shard() {
  slots_.ForEach([](Slot& slot) {
    if (slot.in_use) close(slot.connection.fd());
  });
  buffers_.reset();  // unregisters from the ring, so it must go before the ring
  ring_.reset();
  for (const int fd : listen_fds_) close(fd);
  close(doorbell_fd_);
}

void Shard::RequestStop() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = write(doorbell_fd_, &one, sizeof(one));
}

absl::Status Shard::Setup() {
  // From here on this thread charges the shard's own memory account.
  memory::BindThreadAccount(&shared_.memory.account(index_));
  absl::StatusOr<std::unique_ptr<io::Ring>> ring = io::Ring::Create(limits_.ring_entries);
  if (!ring.ok()) return SetupError(index_, ring.status());
  ring_ = std::move(*ring);
  absl::StatusOr<std::unique_ptr<io::BufferRing>> buffers = io::BufferRing::Create(
      ring_->get(), kBufferGroup, limits_.receive_buffers, limits_.receive_buffer_bytes);
  if (!buffers.ok()) return SetupError(index_, buffers.status());
  buffers_ = std::move(*buffers);
  now_ms_ = MonotonicMs();
  timers_ = std::make_unique<TimerWheel>(limits_.tick_ms, kTimerBuckets, now_ms_);
  router_ = std::make_unique<Router>(index_, config_, shared_, counters_, context_, *this);
  context_.sink = router_.get();
  shared_.ring_fds[index_].store(ring_->get()->ring_fd, std::memory_order_release);
  shared_.epochs.Online(index_);
  if (config_.clustered()) {  // before recovery, which restores subscriptions
    if (absl::Status status = SetupCluster(); !status.ok()) return SetupError(index_, status);
  }
  if (config_.persistence) {
    if (absl::Status status = SetupPersistence(); !status.ok()) return status;
  }
  if (!config_.bridges.empty()) {
    if (absl::Status status = SetupBridges(); !status.ok()) return SetupError(index_, status);
  }
  RefreshMemory();
  ArmAccept();
  ArmDoorbell();
  return absl::OkStatus();
}

absl::Status Shard::SetupPersistence() {
  RINGMQ_ASSERT(shared_.data_dir != nullptr);
  absl::StatusOr<persist::SegmentFile> file =
      shared_.data_dir->CreateSegment(index_, shared_.persist_run, 0, /*sync=*/false);
  if (!file.ok()) return SetupError(index_, file.status());
  journal_ = std::make_unique<persist::Journal>(persist::Journal::Options{
      .durability = config_.durability, .sync_interval_ms = config_.sync_interval_ms});
  journal_->Open(std::move(*file));
  router_->StartPersistence(journal_.get());
  // Start barrier: no shard serves before every shard has recovered its sessions (a message
  // published on one shard must find the recovered subscriptions of the others).
  reached_barrier_ = true;
  shared_.shards_set_up.fetch_add(1, std::memory_order_acq_rel);
  for (;;) {
    const uint32_t done = shared_.shards_set_up.load(std::memory_order_acquire);
    const uint32_t failed = shared_.shards_set_up_failed.load(std::memory_order_acquire);
    if (failed != 0) {
      return absl::AbortedError(absl::StrCat("shard ", index_, ": another shard failed to start"));
    }
    if (done == shared_.shard_count) break;
    usleep(1000);
  }
  return absl::OkStatus();
}

void Shard::SubmitJournal() {
  std::optional<persist::Journal::Io> io = journal_->NextIo(now_ms_, stopping_);
  if (!io) return;
  io_uring_sqe* write = NextSqe();
  io_uring_prep_write(write, io->fd, io->bytes.data(), static_cast<unsigned>(io->bytes.size()),
                      io->offset);
  io_uring_sqe_set_data64(write, Pack(Op::kLogWrite, 0, 0));
  if (!io->sync) return;
  write->flags |= IOSQE_IO_LINK;  // the sync runs only after the whole write succeeded
  io_uring_sqe* sync = NextSqe();
  io_uring_prep_fsync(sync, io->fd, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(sync, Pack(Op::kLogSync, 0, 0));
}

void Shard::DrainJournal() {
  // The loop has ended: no completion will come any more, so write synchronously.
  for (int attempts = 0; journal_->has_pending() && attempts < 1000; ++attempts) {
    std::optional<persist::Journal::Io> io = journal_->NextIo(now_ms_, /*force_sync=*/true);
    if (!io) {
      if (journal_->io_in_flight()) break;  // submitted before the loop ended; cannot wait here
      usleep(1000);
      now_ms_ = MonotonicMs();
      continue;
    }
    const ssize_t written = pwrite(io->fd, io->bytes.data(), io->bytes.size(),
                                   static_cast<off_t>(io->offset));
    journal_->OnWriteDone(written < 0 ? -errno : static_cast<int>(written), now_ms_);
    if (io->sync) {
      if (written == static_cast<ssize_t>(io->bytes.size())) {
        journal_->OnSyncDone(fdatasync(io->fd) == 0 ? 0 : -errno, now_ms_);
      } else {
        journal_->OnSyncDone(-ECANCELED, now_ms_);
      }
    }
  }
  if (journal_->has_pending()) {
    RINGMQ_LOG_ERROR("shard %u: %llu bytes of the persistence log could not be written at stop",
                     index_, static_cast<unsigned long long>(journal_->pending_bytes()));
  }
}

void Shard::Loop() {
  bool more_mail = false;
  while (!stopping_ || open_connections_ > 0) {
    // No trie or retained-store pointer is held across the wait: readers are offline there,
    // so an idle shard does not hold up reclamation.
    shared_.epochs.Offline(index_);
    // Not past a held claim batch's window either (router.h, ClaimWaitMs).
    const int submitted = ring_->SubmitAndWait(
        more_mail || router_->has_jobs() ? 0 : router_->ClaimWaitMs(limits_.tick_ms));
    // (A journal write in flight wakes the loop when it completes; one not yet due waits for
    // the tick: durability interval syncs and retries after an error are tick-grained.)
    shared_.epochs.Online(index_);
    if (submitted < 0 && submitted != -EBUSY && submitted != -EAGAIN) {
      RINGMQ_LOG_ERROR("shard %u: io_uring_submit_and_wait: %s", index_, strerror(-submitted));
    }
    counters_.loop_iterations.Add();
    const uint64_t now_ns = MonotonicNs();  // the iteration's one precise clock read
    now_ms_ = now_ns / 1'000'000;
    if (stalls_.enabled()) stalls_.BeginIteration(now_ns, CoarseMonotonicNs());
    if (now_ms_ >= next_memory_refresh_ms_) {  // before this iteration's deliveries
      next_memory_refresh_ms_ = now_ms_ + memory::View::kRefreshIntervalMs;
      memory_view_.Refresh();
    }
    Reap();
    EndPhase(LoopPhase::kCompletions);
    more_mail = router_->DrainMailboxes();
    if (journal_ != nullptr) router_->ReleaseHolds();  // after the journal's and mailboxes' news
    if (nats_ != nullptr) router_->ClusterAckStep();  // after the link's messages (acks)
    router_->RunJobs();
    EndPhase(LoopPhase::kMailboxes);
    timers_->Advance(now_ms_, [this](uint32_t slot_index) {
      ++stalls_.work().timers_fired;
      OnTimer(slot_index);
    });
    EndPhase(LoopPhase::kTimers);
    if (now_ms_ >= next_collect_ms_) {  // once per tick
      next_collect_ms_ = now_ms_ + limits_.tick_ms;
      shared_.epochs.Collect();
      RefreshMemory();
      router_->ExpireOfflineSessions();
    }
    if (accept_retry_ms_ != 0 && now_ms_ >= accept_retry_ms_ && !stopping_) {
      accept_retry_ms_ = 0;
      ArmAccept();
    }
    MaybePublishSys();
    EndPhase(LoopPhase::kHousekeeping);
    stalls_.work().sessions_flushed = router_->dirty_session_count();
    router_->Flush();
    if (journal_ != nullptr) {
      SubmitJournal();
      router_->PersistStep();
    }
    EndPhase(LoopPhase::kSessions);
    if (nats_ != nullptr) {
      router_->FlushClusterBatches();  // this iteration's QoS 0 batches, before the output
      NatsStep(*nats_);
    }
    if (nats_share_ != nullptr) NatsStep(*nats_share_);
    if (!bridges_.empty()) BridgeStep();
    stalls_.work().connections_flushed = dirty_.size();
    Flush();
    router_->RingDoorbells();
    doorbell_retries_.TakeDue([this](uint32_t shard) { SubmitDoorbell(shard); });
    buffers_->Publish();
    shared_.epochs.Quiescent(index_);
    EndPhase(LoopPhase::kConnections);
    if (stalls_.enabled()) EndIteration();
  }
  shared_.epochs.Offline(index_);
  ring_->SubmitAndWait(0);  // push out the last closes
  if (!bridges_.empty()) AwaitBridgeSockets();
  if (nats_ != nullptr) AwaitNatsSockets();
  if (journal_ != nullptr) {
    // Completions of a journal I/O still in flight.
    for (int waits = 0; journal_->io_in_flight() && waits < 5000; ++waits) {
      ring_->SubmitAndWait(1);
      Reap();
    }
    DrainJournal();
    router_->PersistStopped();
    if (router_->BeginFinalSnapshot()) {
      DrainJournal();
      router_->EndFinalSnapshot();
    }
  }
  // weak lane: the links' buffers go with the shard.
  for (NatsIo* nats : {nats_.get(), nats_share_.get()}) {
    if (nats == nullptr) continue;
    memory::Charge(-nats->charged_bytes);
    counters_.gauges.cluster_link_buffer_bytes.Add(-nats->charged_bytes);
    nats->charged_bytes = 0;
  }
  memory::BindThreadAccount(nullptr);
}

void Shard::RefreshMemory() {
  const metrics::ShardGauges& gauges = counters_.gauges;
  const int64_t structures =
      static_cast<int64_t>(slots_.allocated_bytes()) +
      (gauges.sessions_online.Load() + gauges.sessions_offline.Load()) * memory::kSessionBytes +
      gauges.subscriptions.Load() * memory::kSubscriptionBytes;
  memory::Charge(structures - charged_structures_bytes_);
  charged_structures_bytes_ = structures;
  memory_view_.Refresh();
}

void Shard::EndPhase(LoopPhase phase) {
  if (stalls_.enabled()) stalls_.EndPhase(phase, CoarseMonotonicNs());
}

void Shard::EndIteration() {
  IterationWork& work = stalls_.work();
  work.completions = last_reaped_;
  work.mailbox_records = router_->drained_records();
  const bool stalled = stalls_.EndIteration(MonotonicNs());
  if (stalls_.last_iteration_ns() == stalls_.longest_iteration_ns()) {
    counters_.gauges.loop_iteration_max_us.Set(
        static_cast<int64_t>(stalls_.longest_iteration_ns() / 1000));
  }
  if (!stalled) return;
  counters_.loop_stalls.Add();
  if (now_ms_ < next_stall_warning_ms_) {
    ++stalls_not_logged_;
    return;
  }
  next_stall_warning_ms_ = now_ms_ + kWarningIntervalMs;
  RINGMQ_LOG_WARNING(
      "shard %u: loop iteration %s (stall_warning_ms %u; %llu stalls not logged "
      "since the last warning)",
      index_, stalls_.Describe().c_str(), config_.stall_warning_ms,
      static_cast<unsigned long long>(stalls_not_logged_));
  stalls_not_logged_ = 0;
}

void Shard::MaybePublishSys() {
  // One shard publishes the $SYS topics for the whole broker (they sum every shard's counters).
  if (index_ != kSysShard || config_.sys_interval_s == 0 || stopping_) return;
  if (now_ms_ < next_sys_ms_) return;
  next_sys_ms_ = now_ms_ + uint64_t{config_.sys_interval_s} * 1000;
  router_->PublishSys(now_ms_);
}

void Shard::Reap() {
  io_uring* ring = ring_->get();
  io_uring_cqe* cqe = nullptr;
  unsigned head = 0;
  unsigned count = 0;
  io_uring_for_each_cqe(ring, head, cqe) {
    HandleCompletion(*cqe);
    ++count;
  }
  io_uring_cq_advance(ring, count);
  counters_.cqes_reaped.Add(count);
  last_reaped_ = count;
}

void Shard::HandleCompletion(const io_uring_cqe& cqe) {
  const Op op = OpOf(cqe.user_data);
  if (op == Op::kAccept) return OnAccept(cqe, SlotOf(cqe.user_data));
  if (op == Op::kDoorbell) return BeginStop();
  // Mailboxes are drained every iteration; of our own msg_rings only failures complete.
  if (op == Op::kMailbox) return;
  if (op == Op::kMsgRing) return OnDoorbellFailed(cqe);
  if (op == Op::kLogWrite) return journal_->OnWriteDone(cqe.res, now_ms_);
  if (op == Op::kLogSync) return journal_->OnSyncDone(cqe.res, now_ms_);
  if (op == Op::kNatsConnect) return OnNatsConnect(cqe);
  if (op == Op::kNatsReceive) return OnNatsReceive(cqe);
  if (op == Op::kNatsSend) return OnNatsSend(cqe);
  if (op == Op::kNatsSocket) return OnNatsSocket(cqe);
  if (op == Op::kNatsSockopt) return OnNatsSockopt(cqe);
  if (op == Op::kSocketShutdown) {
    return SubmitSocketClose(static_cast<int>(SlotOf(cqe.user_data)));
  }
  if (op == Op::kSocketClose) return;
  if (op == Op::kBridge) {
    return OnBridgeCompletion(cqe, GenerationOf(cqe.user_data), SlotOf(cqe.user_data));
  }
  const uint32_t slot_index = SlotOf(cqe.user_data);
  Slot* slot = slot_index < slots_.size() ? &slots_[slot_index] : nullptr;
  const bool current = slot != nullptr && slot->in_use &&
                       (slot->generation & kGenerationMask) == GenerationOf(cqe.user_data);
  if (op == Op::kReceive) {
    return OnReceive(cqe, current ? slot : nullptr);
  }
  if (op == Op::kSend && current) return OnSend(cqe, slot);
  if (op == Op::kShutdown && current) {
    slot->shutdown_complete = true;  // its result does not matter (ENOTCONN after a reset)
    MarkDirty(slot_index);
  }
  if (op == Op::kLingerShutdown && current) {
    slot->linger_complete = true;
    MarkDirty(slot_index);
  }
  // kCancel and kClose results need no action: close errors cannot be acted upon.
}

void Shard::OnAccept(const io_uring_cqe& cqe, uint32_t listener) {
  RINGMQ_ASSERT(listener < listen_fds_.size());
  if ((cqe.flags & IORING_CQE_F_MORE) == 0) accept_armed_[listener] = false;
  if (cqe.res == -ECANCELED) return;  // BeginStop cancelled the multishot accept
  if (cqe.res < 0) {
    counters_.accept_errors.Add();
    if (cqe.res == -EMFILE || cqe.res == -ENFILE || cqe.res == -ENOMEM) {
      RINGMQ_LOG_WARNING("shard %u: accept: %s; retrying in %u ms (raise `ulimit -n`?)", index_,
                         strerror(-cqe.res), limits_.tick_ms);
      accept_retry_ms_ = now_ms_ + limits_.tick_ms;
    } else if (!accept_armed_[listener] && !stopping_ && cqe.res != -ECANCELED) {
      accept_retry_ms_ = now_ms_ + limits_.tick_ms;
    }
    return;
  }
  if (!accept_armed_[listener] && !stopping_ && accept_retry_ms_ == 0) ArmAccept();
  const int fd = cqe.res;
  if (stopping_) {
    close(fd);
    return;
  }
  counters_.connections_accepted.Add();
  metrics::ListenerCounters& listener_counters = counters_.listener(listener);
  listener_counters.connections_accepted.Add();
  listener_counters.connections_open.Add(1);  // given back in ReleaseSlot
  const uint32_t slot_index = AddConnection(fd, /*adopted=*/false);
  net::Connection& connection = slots_[slot_index].connection;
  connection.set_listener(static_cast<uint8_t>(listener));
  if (listener < shared_.transport_factories.size() &&
      shared_.transport_factories[listener] != nullptr) {
    connection.SetTransport(shared_.transport_factories[listener]->Make(), context_);
  }
  ArmReceive(slot_index);
}

uint32_t Shard::AddConnection(int fd, bool adopted) {
  const uint32_t slot_index = AllocateSlot();
  Slot& slot = slots_[slot_index];
  if (adopted) {
    slot.connection.Adopt(fd, now_ms_);
  } else {
    slot.connection.Open(fd, now_ms_);
  }
  slot.connection.set_tag(slot_index);
  if (context_.addresses != nullptr) {
    const uint32_t address_slot = context_.addresses->SlotOfPeer(fd);
    if (address_slot != connect::AddressTable::kNoSlot) context_.addresses->Open(address_slot);
    slot.connection.set_address_slot(address_slot);
  }
  timers_->Schedule(slot_index, now_ms_ + config_.connect_timeout_ms);
  return slot_index;
}

void Shard::OnReceive(const io_uring_cqe& cqe, Slot* slot) {
  const bool has_buffer = (cqe.flags & IORING_CQE_F_BUFFER) != 0;
  const auto buffer_id = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  if (slot == nullptr) {  // stale: the connection is gone; only give the buffer back
    if (has_buffer) buffers_->Recycle(buffer_id);
    return;
  }
  if (!more) slot->receive_armed = false;
  if (cqe.res > 0) {
    RINGMQ_ASSERT(has_buffer);
    if (slot->connection.state() != net::Connection::State::kAwaitConnect) {
      slot->served_receive_done = true;
    }
    slot->connection.OnReceive(buffers_->Filled(buffer_id, static_cast<uint32_t>(cqe.res)), now_ms_,
                               context_);
    buffers_->Recycle(buffer_id);
  } else if (cqe.res == -ENOBUFS) {
    counters_.recv_enobufs.Add();  // re-armed in Flush once buffers are back
  } else if (cqe.res == -ECANCELED && slot->cancel_submitted) {
    // Cancelled by FlushHandoff (the socket is moving to its home shard) or by FlushSlot (the
    // connection is paused with enough bytes waiting): not a close.
  } else {
    if (has_buffer) buffers_->Recycle(buffer_id);
    slot->peer_closed = true;
    slot->connection.OnTransportClosed(now_ms_);  // EOF (0) or a socket error
  }
  MarkDirty(SlotOf(cqe.user_data));
}

void Shard::OnSend(const io_uring_cqe& cqe, Slot* slot) {
  if (cqe.res >= 0) {
    counters_.bytes_sent.Add(static_cast<uint64_t>(cqe.res));
    counters_.listener(slot->connection.listener()).bytes_sent.Add(static_cast<uint64_t>(cqe.res));
    slot->connection.OnSent(static_cast<size_t>(cqe.res));
    router_->OnConnectionWritable(slot->connection);
  } else {
    slot->connection.OnSent(0);
    slot->connection.OnTransportClosed(now_ms_);
  }
  MarkDirty(SlotOf(cqe.user_data));
}

void Shard::OnTimer(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  if (!slot.in_use) return;
  net::Connection& connection = slot.connection;
  const uint64_t deadline =
      connection.state() == net::Connection::State::kAwaitConnect ? 0 : connection.DeadlineMs();
  if (deadline > now_ms_) {
    timers_->Schedule(slot_index, deadline);  // activity moved the deadline: lazily re-arm
    return;
  }
  if (deadline == 0 && connection.state() == net::Connection::State::kOpen) return;
  connection.OnDeadline(now_ms_, context_);
  if (connection.state() == net::Connection::State::kOpen) {
    // Spared: a paused connection's keepalive clock restarted (Connection::OnDeadline).
    timers_->Schedule(slot_index, connection.DeadlineMs());
    return;
  }
  if (connection.state() == net::Connection::State::kClosing && slot.shutdown_submitted) {
    return;  // grace expired after shutdown: the close follows the receive's end
  }
  MarkDirty(slot_index);
}

void Shard::Flush() {
  // FlushSlot may mark more slots dirty only for themselves; iterate by index over a snapshot.
  for (size_t i = 0; i < dirty_.size(); ++i) {
    const uint32_t slot_index = dirty_[i];
    slots_[slot_index].dirty = false;
    FlushSlot(slot_index);
  }
  dirty_.clear();
}

void Shard::FlushSlot(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  if (!slot.in_use) return;
  net::Connection& connection = slot.connection;
  // Every event that can change a connection's buffers marks it dirty, so its buffer memory is
  // charged here within the iteration.
  memory::Charge(connection.TakeBufferChargeDelta());
  if (connection.state() == net::Connection::State::kClosing && !slot.receive_armed) {
    if (const std::span<const uint8_t> last = connection.TakeFinalStaticSend(); !last.empty()) {
      return SendLastAndClose(slot_index, last);
    }
  }
  const std::span<const uint8_t> bytes = connection.NextSend();
  if (!bytes.empty()) {
    io_uring_sqe* sqe = NextSqe();
    io_uring_prep_send(sqe, slot.connection.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, Pack(Op::kSend, slot.generation, slot_index));
  }
  if (connection.state() != slot.timer_state) ScheduleTimer(slot_index);
  switch (connection.state()) {
    case net::Connection::State::kClosing:
      return FlushClosing(slot_index);
    case net::Connection::State::kHandoff:
      return FlushHandoff(slot_index);
    default:
      if (connection.receive_blocked()) {
        // Paused with max_packet_size bytes waiting: stop reading until Resume drains them.
        if (slot.receive_armed && !slot.cancel_submitted) {
          io_uring_sqe* sqe = NextSqe();
          io_uring_prep_cancel64(sqe, Pack(Op::kReceive, slot.generation, slot_index), 0);
          io_uring_sqe_set_data64(sqe, Pack(Op::kCancel, slot.generation, slot_index));
          slot.cancel_submitted = true;
          counters_.receive_paused.Add();
        }
      } else if (!slot.receive_armed) {
        ArmReceive(slot_index);  // after -ENOBUFS, or a paused connection resumed
      }
      return;
  }
}

void Shard::FlushClosing(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  net::Connection& connection = slot.connection;
  if (connection.WantsLinger()) {
    // Everything, the DISCONNECT last, is sent: end our side (the peer reads it, then EOF) and
    // read on until the peer's EOF or the linger's bounds (Connection::WantsLinger). The
    // receive may have been the single-shot one after CONNECT; then it is armed again.
    io_uring_sqe* sqe = NextSqe();
    io_uring_prep_shutdown(sqe, connection.fd(), SHUT_WR);
    io_uring_sqe_set_data64(sqe, Pack(Op::kLingerShutdown, slot.generation, slot_index));
    slot.linger_submitted = true;
    connection.StartLinger(now_ms_, context_);
    if (!slot.receive_armed) ArmReceive(slot_index);
    timers_->Schedule(slot_index, connection.DeadlineMs());
    return;
  }
  const bool grace_expired = now_ms_ >= connection.DeadlineMs();
  // Within the linger's bounds only the peer's EOF (the receive ends) closes.
  const bool lingering = slot.linger_submitted && !grace_expired && !slot.shutdown_submitted;
  if (lingering && !slot.receive_armed && !connection.transport_closed()) {
    ArmReceive(slot_index);  // the multishot receive ended for want of buffers (-ENOBUFS)
  }
  const bool nothing_pending = !slot.receive_armed && !connection.send_in_flight() &&
                               (!slot.linger_submitted || slot.linger_complete);
  // With no receive and no send pending (e.g. a refused CONNECT whose CONNACK is sent, or a
  // lingering close whose peer closed) no operation can outlive the close, so no shutdown
  // (another one) is needed first.
  const bool close_without_shutdown =
      !slot.shutdown_submitted && nothing_pending && connection.ReadyToClose();
  const bool submit_shutdown = !slot.shutdown_submitted && !close_without_shutdown &&
                               !lingering && (connection.ReadyToClose() || grace_expired);
  if ((submit_shutdown || close_without_shutdown) && slot.linger_submitted && !slot.peer_closed) {
    // The linger ended at its bound (kLingerMaxBytes or kLingerMs) before the peer's EOF: the
    // close must reset the connection. An orderly close does not: after SHUT_RD the kernel
    // sends no window update while the last bytes are drained, so a peer that had filled our
    // window is left probing the zero window of an orphaned socket, its send blocked until
    // FIN-WAIT-2 times out (60 s), never told it was closed. SO_LINGER with a zero timeout
    // makes close() send RST. A direct setsockopt: it cannot block, and this path runs once
    // per misbehaving peer, not per message.
    const linger reset{.l_onoff = 1, .l_linger = 0};
    setsockopt(connection.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    counters_.closes_linger_reset.Add();
  }
  if (submit_shutdown) {
    // Ends the multishot receive and any send stuck on a peer that does not read.
    io_uring_sqe* sqe = NextSqe();
    io_uring_prep_shutdown(sqe, slot.connection.fd(), SHUT_RDWR);
    io_uring_sqe_set_data64(sqe, Pack(Op::kShutdown, slot.generation, slot_index));
    slot.shutdown_submitted = true;
  }
  // close(fd) waits for the shutdown's completion: io_uring may run the shutdown later from a
  // worker, and by then a close in the same batch could have freed the descriptor number for
  // the next accept, whose connection the late shutdown would then cut.
  if ((slot.shutdown_complete && nothing_pending) || close_without_shutdown) {
    SubmitClose(slot_index);
    CloseSlot(slot_index);
  }
}

void Shard::SendLastAndClose(uint32_t slot_index, std::span<const uint8_t> bytes) {
  Slot& slot = slots_[slot_index];
  // The two entries must reach the kernel in one submission to stay linked.
  if (io_uring_sq_space_left(ring_->get()) < 2) io_uring_submit(ring_->get());
  // As in Ring::NextSqe, a submit that leaves no room is a broken ring, not a state to go on
  // in: split across two submissions, the close could run before the send.
  RINGMQ_ASSERT(io_uring_sq_space_left(ring_->get()) >= 2);
  io_uring_sqe* sqe = NextSqe();
  // MSG_WAITALL: the kernel retries a short send instead of completing the link early. The
  // hard link runs the close whatever the send's result (a peer that reset gets no CONNACK).
  // Neither completes on success: nothing is left to do with either, and a completion would
  // cost another loop iteration. A failed send's completion finds its slot reused (stale).
  io_uring_prep_send(sqe, slot.connection.fd(), bytes.data(), bytes.size(),
                     MSG_NOSIGNAL | MSG_WAITALL);
  sqe->flags |= IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, Pack(Op::kSend, slot.generation, slot_index));
  counters_.bytes_sent.Add(bytes.size());  // counted when submitted
  counters_.listener(slot.connection.listener()).bytes_sent.Add(bytes.size());
  SubmitClose(slot_index);
  CloseSlot(slot_index);
}

void Shard::SubmitClose(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_close(sqe, slot.connection.fd());
  // A close's result cannot be acted upon, so only a failure completes (HandleCompletion
  // ignores it): without this, every close's completion would end the loop's wait at once.
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, Pack(Op::kClose, slot.generation, slot_index));
}

void Shard::CloseSlot(uint32_t slot_index) {
  net::Connection& connection = slots_[slot_index].connection;
  router_->OnConnectionClosed(connection);
  connection.OnClosed(context_);
  ReleaseSlot(slot_index);
}

void Shard::FlushHandoff(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  net::Connection& connection = slot.connection;
  if (slot.receive_armed) {
    // Stop reading here first; bytes that arrive until the cancel lands join the hand-off.
    if (!slot.cancel_submitted) {
      io_uring_sqe* sqe = NextSqe();
      io_uring_prep_cancel64(sqe, Pack(Op::kReceive, slot.generation, slot_index), 0);
      io_uring_sqe_set_data64(sqe, Pack(Op::kCancel, slot.generation, slot_index));
      slot.cancel_submitted = true;
    }
    return;
  }
  if (connection.send_in_flight()) return;
  router_->Handoff(connection);
  connection.ReleaseForHandoff();
  ReleaseSlot(slot_index);
}

void Shard::AdoptConnection(HandoffRecord handoff) {
  const uint32_t slot_index = AddConnection(handoff.fd, /*adopted=*/true);
  Slot& slot = slots_[slot_index];
  slot.connection.set_listener(handoff.listener);
  if (handoff.internal) {
    slot.connection.MarkInternal();
    counters_.gauges.bridge_local_connections.Add(1);  // given back in ReleaseSlot
  } else {
    counters_.listener(handoff.listener).connections_open.Add(1);  // given back in ReleaseSlot
  }
  if (handoff.transport != nullptr) {
    slot.connection.SetTransport(std::move(handoff.transport), context_);
  }
  slot.connection.OnReceive(handoff.bytes, now_ms_, context_);
  if (stopping_) {
    slot.connection.Disconnect(mqtt::ReasonCode::kServerShuttingDown, now_ms_, context_);
  }
  ArmReceive(slot_index);
  MarkDirty(slot_index);
}

void Shard::RingDoorbell(uint32_t shard) {
  doorbell_retries_.OnRing(shard);
  SubmitDoorbell(shard);
}

void Shard::SubmitDoorbell(uint32_t shard) {
  RINGMQ_ASSERT(shard < shared_.shard_count && shard != index_);
  const int ring_fd = shared_.ring_fds[shard].load(std::memory_order_acquire);
  if (ring_fd < 0) return;  // not set up yet: it takes its signals on its first iteration
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_msg_ring(sqe, ring_fd, 0, Pack(Op::kMailbox, 0, 0), 0);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, Pack(Op::kMsgRing, 0, shard));
}

void Shard::OnDoorbellFailed(const io_uring_cqe& cqe) {
  if (cqe.res >= 0) return;  // a kernel that completes successes despite CQE_SKIP_SUCCESS
  const uint32_t shard = SlotOf(cqe.user_data);
  RINGMQ_ASSERT(shard < shared_.shard_count);
  counters_.doorbell_failures.Add();
  if (doorbell_retries_.OnFailure(shard)) {
    RINGMQ_LOG_DEBUG("shard %u: doorbell to shard %u failed (%s); retrying", index_, shard,
                     strerror(-cqe.res));
    return;
  }
  if (now_ms_ >= next_doorbell_warning_ms_) {
    next_doorbell_warning_ms_ = now_ms_ + kWarningIntervalMs;
    RINGMQ_LOG_WARNING(
        "shard %u: doorbell to shard %u failed %u times in a row (%s); that shard finds its "
        "mail at its next tick (%u ms) instead",
        index_, shard, DoorbellRetries::kMaxRetries + 1, strerror(-cqe.res), limits_.tick_ms);
  }
}

void Shard::ScheduleTimer(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  slot.timer_state = slot.connection.state();
  const uint64_t deadline = slot.connection.DeadlineMs();
  if (deadline == 0) {
    timers_->Cancel(slot_index);
  } else {
    timers_->Schedule(slot_index, deadline);
  }
}

void Shard::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  RINGMQ_LOG_DEBUG("shard %u stopping: %u connections to close", index_, open_connections_);
  for (uint32_t listener = 0; listener < listen_fds_.size(); ++listener) {
    if (!accept_armed_[listener]) continue;
    io_uring_sqe* sqe = NextSqe();
    io_uring_prep_cancel64(sqe, Pack(Op::kAccept, 0, listener), 0);
    io_uring_sqe_set_data64(sqe, Pack(Op::kCancel, 0, 0));
  }
  accept_retry_ms_ = 0;
  if (nats_ != nullptr) nats_->link->Stop();
  if (nats_share_ != nullptr) nats_share_->link->Stop();
  StopBridges();
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].in_use) continue;
    slots_[i].connection.Disconnect(mqtt::ReasonCode::kServerShuttingDown, now_ms_, context_);
    MarkDirty(i);
  }
}

void Shard::ArmAccept() {
  for (uint32_t listener = 0; listener < listen_fds_.size(); ++listener) {
    if (accept_armed_[listener]) continue;
    io_uring_sqe* sqe = NextSqe();
    io_uring_prep_multishot_accept(sqe, listen_fds_[listener], nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, Pack(Op::kAccept, 0, listener));
    accept_armed_[listener] = true;
  }
}

void Shard::ArmReceive(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  io_uring_sqe* sqe = NextSqe();
  // Until CONNECT is decided, and for the first receive after it, one receive at a time: a
  // refused connection, and a served one whose first packet is DISCONNECT (connect, CONNACK,
  // DISCONNECT), then has no receive pending when it closes, so it is closed at once without a
  // shutdown to end a multishot receive (see FlushClosing; io_uring runs IORING_OP_SHUTDOWN in
  // an io-wq worker thread). A connection that goes on switches to a multishot receive: one
  // more SQE over its life.
  if (slot.connection.state() == net::Connection::State::kAwaitConnect ||
      !slot.served_receive_done) {
    io_uring_prep_recv(sqe, slot.connection.fd(), nullptr, 0, 0);
  } else {
    io_uring_prep_recv_multishot(sqe, slot.connection.fd(), nullptr, 0, 0);
  }
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, Pack(Op::kReceive, slot.generation, slot_index));
  slot.receive_armed = true;
  slot.cancel_submitted = false;
}

void Shard::ArmDoorbell() {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_read(sqe, doorbell_fd_, &doorbell_value_, sizeof(doorbell_value_), 0);
  io_uring_sqe_set_data64(sqe, Pack(Op::kDoorbell, 0, 0));
}

uint32_t Shard::AllocateSlot() {
  uint32_t slot_index = 0;
  if (!free_slots_.empty()) {
    slot_index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot_index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& slot = slots_[slot_index];
  RINGMQ_ASSERT(!slot.in_use);
  slot.in_use = true;
  slot.receive_armed = false;
  slot.dirty = false;
  slot.shutdown_submitted = false;
  slot.shutdown_complete = false;
  slot.linger_submitted = false;
  slot.linger_complete = false;
  slot.peer_closed = false;
  slot.cancel_submitted = false;
  slot.served_receive_done = false;
  slot.timer_state = net::Connection::State::kAwaitConnect;
  ++open_connections_;
  counters_.gauges.connections_open.Set(open_connections_);
  return slot_index;
}

void Shard::ReleaseSlot(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  RINGMQ_ASSERT(slot.in_use);
  timers_->Cancel(slot_index);
  if (const uint32_t address_slot = slot.connection.address_slot();
      address_slot != connect::AddressTable::kNoSlot) {
    context_.addresses->Close(address_slot);
  }
  if (slot.connection.internal()) {
    counters_.gauges.bridge_local_connections.Add(-1);
  } else {
    counters_.listener(slot.connection.listener()).connections_open.Add(-1);
  }
  slot.in_use = false;
  ++slot.generation;  // completions still in flight for the old connection become stale
  memory::Charge(-int64_t{slot.connection.charged_buffer_bytes()});  // its buffers go with it
  slot.connection = net::Connection();
  free_slots_.push_back(slot_index);
  RINGMQ_ASSERT(open_connections_ > 0);
  --open_connections_;
  counters_.gauges.connections_open.Set(open_connections_);
}

void Shard::OutputReleased(uint32_t tag) {
  Slot& slot = slots_[tag];
  if (slot.in_use && slot.connection.held_back()) {
    slot.connection.OnOutputReleased(now_ms_, context_);
  }
  MarkDirty(tag);
}

void Shard::MarkDirty(uint32_t slot_index) {
  Slot& slot = slots_[slot_index];
  if (slot.dirty) return;
  slot.dirty = true;
  dirty_.push_back(slot_index);
}

uint64_t Shard::BridgeUserData(uint32_t generation, uint32_t slot) {
  return Pack(Op::kBridge, generation, slot);
}

io_uring_sqe* Shard::NextSqe() {
  counters_.sqes_submitted.Add();
  return ring_->NextSqe();
}

// ---- Cluster over NATS ----------------------------------------------------------------------

cluster::NatsLinkOptions Shard::NatsOptions() const {
  cluster::NatsLinkOptions options;
  options.urls = config_.cluster_nats_urls;
  options.name = absl::StrCat(shared_.cluster_node_name, "/", index_);
  // Shards of a node connecting at once would otherwise follow the same back-off.
  options.random_seed = (uint64_t{index_} << 32) ^ MonotonicNs();
  options.tls = config_.cluster_tls;
  options.tls_handshake_first = config_.cluster_tls_handshake_first;
  options.credentials = &shared_.cluster_credentials;
  return options;
}

absl::Status Shard::SetupCluster() {
  // natstls lane: a client TLS context when [cluster] configures TLS in any way.
  bool tls = config_.cluster_tls || !config_.cluster_tls_ca_file.empty() ||
             !config_.cluster_tls_cert_file.empty() || !config_.cluster_tls_server_name.empty();
  for (const std::string& url : config_.cluster_nats_urls) {
    const absl::StatusOr<cluster::NatsServerAddress> address = cluster::ParseNatsUrl(url);
    tls |= address.ok() && address->tls;
  }
  if (tls) {
    absl::StatusOr<std::unique_ptr<tls::ClientContext>> context =
        tls::ClientContext::Create(tls::ClientTlsOptions{
            "[cluster]", config_.cluster_tls_ca_file, config_.cluster_tls_cert_file,
            config_.cluster_tls_key_file, /*insecure=*/false, /*keep_record_buffers=*/true});
    if (!context.ok()) return context.status();
    nats_tls_context_ = std::move(*context);
  }
  auto nats = std::make_unique<NatsIo>();
  absl::StatusOr<std::unique_ptr<cluster::NatsLink>> link =
      cluster::NatsLink::Create(NatsOptions(), this);
  if (!link.ok()) return link.status();
  nats->link = std::move(*link);
  nats->receive_buffer.resize(kNatsReceiveBytes);
  nats_ = std::move(nats);
  router_->AttachCluster(nats_->link.get(), shared_.cluster_node_name,
                         config_.cluster_subject_prefix);
  router_->StartClusterAcks(ClusterAckOptionsOf(config_));
  const ClaimBatchOptions claim_batches{.window_us = config_.cluster_claim_batch_us,
                                        .max_claims = config_.cluster_claim_batch_max,
                                        .max_bytes = config_.cluster_claim_batch_bytes};
  if (absl::Status status = router_->StartClusterOwnership(claim_batches); !status.ok()) {
    return status;
  }
  router_->StartClusterBatches(config_.cluster_batch, config_.cluster_batch_bytes_max);
  SetupNodeIdentity();      // shard_node_identity.cc
  return SetupShareLink();  // shard_share_link.cc
}

bool Shard::NatsAddress(NatsIo& nats, const cluster::NatsServerAddress& server) {
  nats.address = sockaddr_storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&nats.address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&nats.address);
  if (inet_pton(AF_INET, server.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(server.port);
    nats.address_length = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, server.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(server.port);
    nats.address_length = sizeof(sockaddr_in6);
    return true;
  }
  for (const SharedState::ResolvedHost& resolved : shared_.cluster_hosts) {
    if (resolved.host != server.host) continue;
    std::memcpy(&nats.address, &resolved.address, resolved.length);
    nats.address_length = resolved.length;
    if (nats.address.ss_family == AF_INET) v4->sin_port = htons(server.port);
    if (nats.address.ss_family == AF_INET6) v6->sin6_port = htons(server.port);
    return true;
  }
  return false;
}

Shard::NatsIo& Shard::NatsOf(uint64_t user_data) {
  return SlotOf(user_data) == kNatsSlotShare ? *nats_share_ : *nats_;
}

void Shard::NatsStep(NatsIo& nats) {
  cluster::NatsLink& link = *nats.link;
  // A new socket once the previous one's operations have all completed (they use the buffers).
  if (link.state() == cluster::NatsLinkState::kWaiting && now_ms_ >= link.connect_at_ms() &&
      !nats.connect_pending && !nats.receive_pending && !nats.send_pending) {
    const cluster::NatsServerAddress& server = link.BeginConnect(now_ms_);
    if (!NatsAddress(nats, server)) {
      link.OnTransportClosed(
          now_ms_, absl::StrCat("host ", server.host,
                                " was not resolved at start (names are resolved once)"));
    } else {
      // The socket comes from the ring (IORING_OP_SOCKET, Linux 5.19); OnNatsSocket sets
      // TCP_NODELAY and connects. connect_pending covers both steps.
      ++nats.generation;
      SubmitTcpSocket(nats.address.ss_family, Pack(Op::kNatsSocket, nats.generation, nats.slot));
      nats.connect_pending = true;
      nats.socket_pending = true;
    }
  }
  if (now_ms_ >= link.next_deadline_ms()) link.OnTimer(now_ms_);
  router_->ClusterTick(now_ms_);  // retained stream requests and checks (router.h)
  router_->ClaimStep();  // a claim batch whose window ended (router.h)
  // INFO is in and TLS is wanted: the handshake starts before CONNECT goes out (the NATS
  // client protocol's order; natstls lane). With handshake_first it starts as soon as the
  // socket is connected, and INFO comes through it.
  if (nats.transport_up && nats.tls == nullptr &&
      ((link.state() == cluster::NatsLinkState::kAwaitPong && link.tls_required()) ||
       (link.state() == cluster::NatsLinkState::kAwaitInfo && link.tls_first()))) {
    StartNatsTls(nats);
  }
  if (nats.transport_up && !nats.send_pending) {
    if (nats.tls != nullptr) {
      NatsTlsOutput(nats);
    } else if (link.has_output()) {
      nats.send_buffer.clear();
      nats.send_offset = 0;
      link.TakeOutput(nats.send_buffer);
      SubmitNatsSend(nats);
    }
  }
  ChargeNatsMemory(nats);
}

bool Shard::StartNatsTls(NatsIo& nats) {
  cluster::NatsLink& link = *nats.link;
  const cluster::NatsServerAddress& server = link.current_server();
  if (nats_tls_context_ == nullptr) {
    link.OnTlsFailed(now_ms_, absl::StrCat("NATS server ", server.host, ":", server.port,
                                           " requires TLS and [cluster] configures none (set "
                                           "tls = true, tls_ca_file)"));
    return false;
  }
  const std::string& name =
      config_.cluster_tls_server_name.empty() ? server.host : config_.cluster_tls_server_name;
  nats.tls = nats_tls_context_->NewLayer(name);
  nats.tls_down.clear();
  nats.peer = net::PeerInfo();
  if (nats.tls == nullptr) {
    link.OnTlsFailed(now_ms_, "TLS: out of memory");
    return false;
  }
  nats.tls_up.clear();
  if (nats.tls->Receive({}, nats.tls_up, nats.tls_down, nats.peer, counters_) ==
      net::TransportLayer::Result::kClose) {  // the ClientHello could not be made
    link.OnTlsFailed(now_ms_, absl::StrCat("TLS to NATS server ", server.host, ":", server.port,
                                           ": ", std::string(nats.tls->close_reason())));
    return false;
  }
  return true;
}

void Shard::NatsTlsReceive(NatsIo& nats, std::span<const uint8_t> bytes) {
  cluster::NatsLink& link = *nats.link;
  nats.tls_up.clear();
  const bool was_open = nats.tls->open();
  const bool was_ready = link.ready();
  const net::TransportLayer::Result result =
      nats.tls->Receive(bytes, nats.tls_up, nats.tls_down, nats.peer, counters_);
  if (!was_open && nats.tls->open()) {
    RINGMQ_LOG_DEBUG("shard %u: NATS TLS to %s:%u: %s", index_, link.current_server().host.c_str(),
                     link.current_server().port, nats.peer.tls_description.c_str());
  }
  // Copied: the link may leave the connection below, and the layer goes with the socket.
  const std::string reason =
      result == net::TransportLayer::Result::kClose ? std::string(nats.tls->close_reason()) : "";
  const std::string where =
      absl::StrCat(link.current_server().host, ":", link.current_server().port);
  if (!nats.tls_up.empty()) {
    link.OnReceived(now_ms_, std::string_view(reinterpret_cast<const char*>(nats.tls_up.data()),
                                              nats.tls_up.size()));
  }
  if (!was_ready && link.ready()) counters_.cluster_nats_tls_handshakes.Add();
  if (result != net::TransportLayer::Result::kClose || !nats.transport_up) return;
  if (link.ready()) {
    link.OnTransportClosed(now_ms_, reason);
  } else {
    // Before the NATS handshake ended: the TLS session did not work out (with TLS 1.3 a
    // server that refuses our certificate says so after our side's handshake completed).
    link.OnTlsFailed(now_ms_, absl::StrCat("TLS to NATS server ", where, ": ", reason));
  }
}

void Shard::NatsTlsOutput(NatsIo& nats) {
  cluster::NatsLink& link = *nats.link;
  nats.send_buffer.clear();
  nats.send_offset = 0;
  // The layer's own bytes first; the link's only once the handshake is done.
  nats.send_buffer.append(reinterpret_cast<const char*>(nats.tls_down.data()),
                          nats.tls_down.size());
  nats.tls_down.clear();
  if (nats.tls->open() && link.has_output()) {
    nats.plain.clear();
    link.TakeOutput(nats.plain);
    nats.tls->Send(
        std::span(reinterpret_cast<const uint8_t*>(nats.plain.data()), nats.plain.size()),
        nats.tls_down);
    nats.send_buffer.append(reinterpret_cast<const char*>(nats.tls_down.data()),
                            nats.tls_down.size());
    nats.tls_down.clear();
  }
  if (!nats.send_buffer.empty()) SubmitNatsSend(nats);
}

void Shard::NoteNatsTlsFailure(NatsIo& nats, std::string_view link_name, std::string_view detail) {
  counters_.cluster_nats_tls_failures.Add();
  if (now_ms_ < nats.next_tls_warning_ms) return;
  nats.next_tls_warning_ms = now_ms_ + kWarningIntervalMs;
  RINGMQ_LOG_WARNING("shard %u: NATS %.*s: %.*s; retrying", index_,
                     static_cast<int>(link_name.size()), link_name.data(),
                     static_cast<int>(detail.size()), detail.data());
}

void Shard::ChargeNatsMemory(NatsIo& nats) {
  cluster::NatsLink& link = *nats.link;
  // tidy2 lane: with TLS, the layer's OpenSSL state (TlsLayer::memory_bytes: an estimate per
  // state, record buffers kept included) and the buffers around it.
  const size_t tls_bytes = (nats.tls != nullptr ? nats.tls->memory_bytes() : 0) +
                           nats.tls_down.capacity() + nats.tls_up.capacity() +
                           nats.plain.capacity();
  const int64_t bytes = static_cast<int64_t>(link.buffer_capacity_bytes() +
                                             nats.send_buffer.capacity() + tls_bytes);
  if (bytes != nats.charged_bytes) {
    memory::Charge(bytes - nats.charged_bytes);
    counters_.gauges.cluster_link_buffer_bytes.Add(bytes - nats.charged_bytes);
    nats.charged_bytes = bytes;
  }
  link.set_memory_full(context_.memory != nullptr &&
                       context_.memory->Level() >= memory::Pressure::kShedQos12);
  if (const uint64_t refused = link.counters().publishes_refused_memory;
      refused != nats.memory_refused_exported) {
    counters_.cluster_link_memory_refused.Add(refused - nats.memory_refused_exported);
    nats.memory_refused_exported = refused;
  }
}

void Shard::SubmitNatsSend(NatsIo& nats) {
  RINGMQ_ASSERT(nats.send_offset < nats.send_buffer.size());
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_send(sqe, nats.fd, nats.send_buffer.data() + nats.send_offset,
                     nats.send_buffer.size() - nats.send_offset, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, Pack(Op::kNatsSend, nats.generation, nats.slot));
  nats.send_pending = true;
}

void Shard::SubmitNatsReceive(NatsIo& nats) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_recv(sqe, nats.fd, nats.receive_buffer.data(), nats.receive_buffer.size(), 0);
  io_uring_sqe_set_data64(sqe, Pack(Op::kNatsReceive, nats.generation, nats.slot));
  nats.receive_pending = true;
}

void Shard::OnNatsSocket(const io_uring_cqe& cqe) {
  NatsIo& nats = NatsOf(cqe.user_data);
  nats.connect_pending = false;
  nats.socket_pending = false;
  // The link left this attempt meanwhile (handshake timeout, stop): a new socket is closed.
  const bool current = GenerationOf(cqe.user_data) == (nats.generation & kGenerationMask) &&
                       nats.link->state() == cluster::NatsLinkState::kConnecting;
  if (cqe.res < 0) {
    if (current) {
      nats.link->OnTransportClosed(now_ms_, absl::StrCat("socket: ", strerror(-cqe.res)));
    }
    return;
  }
  if (!current) {
    CloseNatsFd(cqe.res);
    return;
  }
  nats.fd = cqe.res;
  // TCP_NODELAY: the link batches its output itself; Nagle would hold a small send back for
  // an ACK.
  SubmitNoDelayAndConnect(nats.fd, nats.address, nats.address_length,
                          Pack(Op::kNatsSockopt, nats.generation, nats.slot),
                          Pack(Op::kNatsConnect, nats.generation, nats.slot));
  nats.connect_pending = true;
}

void Shard::OnNatsSockopt(const io_uring_cqe& cqe) {
  NatsIo& nats = NatsOf(cqe.user_data);
  const bool current = GenerationOf(cqe.user_data) == (nats.generation & kGenerationMask);
  OnNoDelayResult(cqe.res, current ? nats.fd : -1);
}

// ---- Sockets on the ring (NATS links and bridges) ----------------------------------------

namespace {
// tidy2 lane: Shard::SetSocketGateForTesting's pipe (-1: off) and its read's byte.
std::atomic<int> socket_gate_fd{-1};
uint8_t socket_gate_byte = 0;
}  // namespace

void Shard::SetSocketGateForTesting(int fd) { socket_gate_fd.store(fd, std::memory_order_relaxed); }

void Shard::SubmitTcpSocket(int family, uint64_t user_data) {
  if (const int gate = socket_gate_fd.load(std::memory_order_relaxed); gate >= 0) {
    // The two entries must reach the kernel in one submission to stay linked. The socket runs
    // after the read whatever its result (hard link).
    if (io_uring_sq_space_left(ring_->get()) < 2) io_uring_submit(ring_->get());
    io_uring_sqe* read = NextSqe();
    io_uring_prep_read(read, gate, &socket_gate_byte, 1, 0);
    read->flags |= IOSQE_ASYNC | IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(read, Pack(Op::kSocketClose, 0, 0));  // completion ignored
  }
  // The socket comes from the ring (IORING_OP_SOCKET, Linux 5.19).
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_socket(sqe, family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP, 0);
  io_uring_sqe_set_data64(sqe, user_data);
}

void Shard::SubmitNoDelayAndConnect(int fd, const sockaddr_storage& address, socklen_t length,
                                    uint64_t sockopt_data, uint64_t connect_data) {
  // Not linked to the connect: the option may land before or after it.
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, nullptr, 0, 0);
  sqe->cmd_op = kSocketUringOpSetsockopt;
  sqe->addr = uint64_t{IPPROTO_TCP} | (uint64_t{TCP_NODELAY} << 32);
  sqe->file_index = sizeof(kTcpNoDelayOn);
  sqe->addr3 = reinterpret_cast<uintptr_t>(&kTcpNoDelayOn);
  io_uring_sqe_set_data64(sqe, sockopt_data);
  sqe = NextSqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&address), length);
  io_uring_sqe_set_data64(sqe, connect_data);
}

void Shard::OnNoDelayResult(int result, int fd) {
  // Other errors (a socket closed meanwhile) leave nothing to do.
  if (result != -EOPNOTSUPP && result != -EINVAL) return;
  // Linux < 6.7 has no socket commands (-EINVAL, -EOPNOTSUPP): the option is set directly,
  // one syscall per connection, and said once per shard.
  if (!sockopt_fallback_) {
    sockopt_fallback_ = true;
    RINGMQ_LOG_WARNING(
        "shard %u: setsockopt through io_uring failed (%s; needs Linux 6.7): NATS and bridge "
        "sockets get TCP_NODELAY with a direct setsockopt",
        index_, strerror(-result));
  }
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &kTcpNoDelayOn, sizeof(kTcpNoDelayOn));
}

void Shard::SubmitSocketShutdown(int fd) {
  // The shutdown ends the operations in flight (they complete as stale). The close waits for
  // its completion (whatever its result: a socket that never connected fails it), as for
  // client connections: a close in the same batch could free the descriptor number for a new
  // socket before a shutdown that io_uring runs late from a worker, which would cut that one.
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_shutdown(sqe, fd, SHUT_RDWR);
  io_uring_sqe_set_data64(sqe, Pack(Op::kSocketShutdown, 0, static_cast<uint32_t>(fd)));
}

void Shard::SubmitSocketClose(int fd) {
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, Pack(Op::kSocketClose, 0, static_cast<uint32_t>(fd)));
}

void Shard::SubmitLinkedSocketShutdownAndClose(int fd) {
  // The two entries must reach the kernel in one submission to stay linked (as in
  // SendLastAndClose).
  if (io_uring_sq_space_left(ring_->get()) < 2) io_uring_submit(ring_->get());
  RINGMQ_ASSERT(io_uring_sq_space_left(ring_->get()) >= 2);
  // Hard link: the close runs after the shutdown whatever its result (a socket that never
  // connected fails it). Only failures complete, as kSocketClose (ignored).
  io_uring_sqe* sqe = NextSqe();
  io_uring_prep_shutdown(sqe, fd, SHUT_RDWR);
  sqe->flags |= IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, Pack(Op::kSocketClose, 0, static_cast<uint32_t>(fd)));
  sqe = NextSqe();
  io_uring_prep_close(sqe, fd);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  io_uring_sqe_set_data64(sqe, Pack(Op::kSocketClose, 0, static_cast<uint32_t>(fd)));
}

// ---- NATS links, continued -------------------------------------------------------------------

void Shard::OnNatsConnect(const io_uring_cqe& cqe) {
  NatsIo& nats = NatsOf(cqe.user_data);
  nats.connect_pending = false;
  if (GenerationOf(cqe.user_data) != (nats.generation & kGenerationMask) || nats.fd < 0) return;
  if (cqe.res < 0) {
    nats.link->OnTransportClosed(now_ms_, absl::StrCat("connect: ", strerror(-cqe.res)));
    return;
  }
  nats.transport_up = true;
  nats.link->OnTransportConnected(now_ms_);
  SubmitNatsReceive(nats);
}

void Shard::OnNatsReceive(const io_uring_cqe& cqe) {
  NatsIo& nats = NatsOf(cqe.user_data);
  nats.receive_pending = false;
  if (GenerationOf(cqe.user_data) != (nats.generation & kGenerationMask) || !nats.transport_up) {
    return;
  }
  if (cqe.res <= 0) {
    nats.link->OnTransportClosed(now_ms_, cqe.res == 0
                                              ? std::string("closed by the server")
                                              : absl::StrCat("receive: ", strerror(-cqe.res)));
    return;
  }
  if (nats.tls != nullptr) {
    NatsTlsReceive(nats, std::span(reinterpret_cast<const uint8_t*>(nats.receive_buffer.data()),
                                   static_cast<size_t>(cqe.res)));
  } else {
    nats.link->OnReceived(
        now_ms_, std::string_view(nats.receive_buffer.data(), static_cast<size_t>(cqe.res)));
  }
  if (nats.transport_up) SubmitNatsReceive(nats);  // the link may have left the connection
}

void Shard::OnNatsSend(const io_uring_cqe& cqe) {
  NatsIo& nats = NatsOf(cqe.user_data);
  nats.send_pending = false;
  if (GenerationOf(cqe.user_data) != (nats.generation & kGenerationMask) || !nats.transport_up) {
    return;
  }
  if (cqe.res < 0) {
    nats.link->OnTransportClosed(now_ms_, absl::StrCat("send: ", strerror(-cqe.res)));
    return;
  }
  nats.send_offset += static_cast<size_t>(cqe.res);
  if (nats.send_offset < nats.send_buffer.size()) SubmitNatsSend(nats);  // a short send
}

void Shard::OnReady(const cluster::nats::ServerInfo& info) {
  NatsIo& nats = *nats_;
  counters_.cluster_link_connects.Add();
  if (nats.ever_ready) counters_.cluster_link_reconnects.Add();
  // The first time at info level; reconnects (counted) at debug level, as a flapping server
  // could otherwise fill the log (losses are warnings, rate-limited).
  RINGMQ_LOG(nats.ever_ready ? LogLevel::kDebug : LogLevel::kInfo,
             "shard %u: NATS link %s (server %s, %s:%u)", index_,
             nats.ever_ready ? "reconnected" : "ready", info.server_name.c_str(),
             nats.link->current_server().host.c_str(), nats.link->current_server().port);
  nats.ever_ready = true;
  AnnounceNode();
  router_->OnClusterReady();
}

void Shard::OnMessage(const cluster::NatsMessage& message) {
  if (message.sid == node_identity_sid_ && OnNodeAnnouncement(message)) return;
  router_->OnClusterMessage(message);
}

void Shard::OnDisconnected(cluster::DisconnectReason reason, std::string_view detail) {
  NatsIo& nats = *nats_;
  counters_.cluster_link_disconnects.Add();
  CloseNatsSocket(nats);
  if (reason == cluster::DisconnectReason::kTls) NoteNatsTlsFailure(nats, "link", detail);
  if (reason == cluster::DisconnectReason::kAuthorization) {  // jwt lane
    counters_.cluster_link_auth_refused.Add();
  }
  const bool quiet = reason == cluster::DisconnectReason::kStopped ||
                     reason == cluster::DisconnectReason::kConnectFailed ||
                     reason == cluster::DisconnectReason::kTls;  // logged apart
  if (!quiet && now_ms_ >= nats.next_warning_ms) {
    nats.next_warning_ms = now_ms_ + kWarningIntervalMs;
    RINGMQ_LOG_WARNING("shard %u: NATS link lost (%.*s: %.*s); reconnecting", index_,
                       static_cast<int>(cluster::DisconnectReasonName(reason).size()),
                       cluster::DisconnectReasonName(reason).data(),
                       static_cast<int>(detail.size()), detail.data());
  }
}

void Shard::CloseNatsSocket(NatsIo& nats) {
  if (nats.fd >= 0) {
    CloseNatsFd(nats.fd);
    nats.fd = -1;
  }
  ++nats.generation;
  nats.transport_up = false;
  if (!nats.send_pending) nats.send_buffer.clear();
  // ~14 KiB open, ~60 KiB in a handshake: not kept while disconnected. tls_up is left alone:
  // the link may be reading it (NatsTlsReceive).
  nats.tls.reset();
  nats.tls_down.clear();
}

void Shard::CloseNatsFd(int fd) {
  if (!stopping_) {
    SubmitSocketShutdown(fd);  // then its close, on the ring: no syscall on this thread
    return;
  }
  // Stopping: the loop ends once no client connection is left, often in this very iteration,
  // before the shutdown's completion would be reaped; the close it submits would never be, and
  // the socket would stay open until the process exits. A close hard-linked to the shutdown
  // does not help: the shutdown runs in an io-wq worker, the link goes on in the ring's
  // deferred task work, and the ring goes with the shard. So: direct calls, two per link, at
  // stop only. The submit first hands the kernel the operations already prepared on the
  // socket, so each holds the file and none can meet the number reused for another socket.
  io_uring_submit(ring_->get());
  shutdown(fd, SHUT_RDWR);  // ends the receive in flight; the server reads end of file
  close(fd);
}

void Shard::AwaitNatsSockets() {
  RINGMQ_ASSERT(stopping_);  // each link stopped: a socket made now is stale (OnNatsSocket)
  const auto pending = [this] {
    return (nats_ != nullptr && nats_->socket_pending) ||
           (nats_share_ != nullptr && nats_share_->socket_pending);
  };
  if (!pending()) return;
  loop_ended_ = true;  // a bridge socket reaped meanwhile is closed directly too
  const uint64_t deadline_ms = MonotonicMs() + kStopSocketWaitMs;
  for (now_ms_ = MonotonicMs(); pending() && now_ms_ < deadline_ms; now_ms_ = MonotonicMs()) {
    ring_->SubmitAndWait(static_cast<uint32_t>(deadline_ms - now_ms_));
    Reap();
  }
  for (NatsIo* nats : {nats_.get(), nats_share_.get()}) {
    if (nats == nullptr || !nats->socket_pending) continue;
    counters_.stop_sockets_unclosed.Add();
    RINGMQ_LOG_WARNING(
        "shard %u: a NATS link socket was still being made %u ms after the loop ended; if the "
        "kernel makes it later, it is not closed before exit",
        index_, kStopSocketWaitMs);
  }
}

void Shard::OnServerError(std::string_view text) {
  NatsIo& nats = *nats_;
  if (now_ms_ < nats.next_warning_ms) return;
  nats.next_warning_ms = now_ms_ + kWarningIntervalMs;
  RINGMQ_LOG_WARNING("shard %u: NATS server error: %.*s", index_, static_cast<int>(text.size()),
                     text.data());
}

}  // namespace ringmq::shard
