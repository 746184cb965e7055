// State every shard reads, owned by the broker and outliving the shards.
//
// Thread safety: the atomics are read and written by every shard; the pointed-to trie, retained
// store and epoch domain synchronize internally; the mailbox matrix is SPSC per shard pair, its
// signal words written by the sources and taken by their destination (shard/mailbox.h).
// shard_counters is filled by the broker before any shard thread starts and read-only after;
// the counters it points to follow metrics/counters.h (one writer, relaxed readers).
// The auth data is replaced by the main thread (SIGHUP) and read by shards within one loop
// iteration (auth/auth_data.h).
#ifndef RINGMQ_SHARD_SHARED_STATE_H_
#define RINGMQ_SHARD_SHARED_STATE_H_

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "auth/auth_data.h"
#include "cluster/nkey.h"
#include "concurrent/epoch.h"
#include "connect/address_table.h"
#include "memory/budget.h"
#include "metrics/counters.h"
#include "net/transport.h"
#include "persist/data_dir.h"
#include "retain/retained_store.h"
#include "shard/mailbox.h"
#include "sub/trie.h"

namespace ringmq::shard {

// Config::mailbox_memory's default.
inline constexpr uint64_t kDefaultMailboxMemoryBytes = uint64_t{4} << 20;

// Listeners, the default one included: a connection's listener index is one byte.
inline constexpr size_t kMaxListeners = 256;

struct SharedState {
  // `max_memory_bytes`: the memory budget (Config::max_memory; 0: none).
  // `mailbox_memory_bytes`: the mailboxes' slot budget (Config::mailbox_memory).
  explicit SharedState(uint32_t shard_count, uint64_t max_memory_bytes = 0,
                       retain::RetainedLimits retained_limits = {},
                       uint64_t mailbox_memory_bytes = kDefaultMailboxMemoryBytes);

  const uint32_t shard_count;
  std::atomic<uint32_t> connected_clients{0};
  // The same per listener (index = listener), reserved and given back with connected_clients:
  // for each listener's max_connections and its ringmq_listener_clients_connected gauge.
  std::array<connect::ListenerClients, kMaxListeners> listener_clients;
  std::atomic<bool> shutting_down{false};
  // One memory account per shard and the max_memory budget (memory/budget.h). Declared before
  // the structures whose memory is charged to it, so it outlives them.
  memory::Budget memory;
  // Persistent sessions without a connection over all shards, for the broker-wide
  // max_offline_sessions (see Router: a shard that takes it past the bound evicts one).
  std::atomic<uint32_t> offline_sessions{0};
  // Per-source-address counts; null unless a per-address limit is configured.
  std::unique_ptr<connect::AddressTable> addresses;
  concurrent::EpochDomain epochs;
  sub::SubscriptionTrie trie;
  retain::RetainedStore retained;
  MailboxMatrix mailboxes;
  // Password and ACL data; Load() is null when no authentication is configured
  // (auth::AuthConfigured). Declared after `epochs`, which may still hold retired versions.
  auth::SharedAuth auth;
  // Per listener (index as in Shard::Create's listen_fds): what makes each accepted
  // connection's transport; null (or absent) for a plain-TCP listener. Set before the shards
  // start.
  std::vector<std::unique_ptr<net::TransportFactory>> transport_factories;
  // Each shard's io_uring fd, for msg_ring doorbells; -1 until the shard has set up.
  std::unique_ptr<std::atomic<int>[]> ring_fds;
  // Every shard's counters, index = shard (for the $SYS topics, which sum them on shard 0).
  std::vector<const metrics::ShardCounters*> shard_counters;
  // Persistence (Config::persistence; router.h "Persistence"). Set by the broker before the
  // shards start: the data directory, the state recovered from it (read by every shard's
  // set-up, released after), the run the shards write, and how many sequence numbers of shard
  // 0 the recovered retained messages took.
  persist::DataDir* data_dir = nullptr;
  const persist::RecoveredState* recovered = nullptr;
  uint64_t persist_run = 0;
  uint64_t recovered_retained_sequences = 0;
  // bridgeq2 lane: recovered sessions of bridges no longer configured that the broker ended,
  // and their queued and in-flight messages (shard 0 counts them).
  uint64_t bridge_sessions_removed = 0;
  uint64_t bridge_messages_removed = 0;
  // Start barrier: shards that finished their set-up (recovery included), successful or not;
  // none accepts a connection before all have.
  std::atomic<uint32_t> shards_set_up{0};
  std::atomic<uint32_t> shards_set_up_failed{0};
  // Shards whose start snapshot is durable; when all are, shard 0 commits the run and sets
  // persist_committed; no acknowledgement that depends on the log is released before.
  std::atomic<uint32_t> snapshots_durable{0};
  std::atomic<bool> persist_committed{false};
  // Bytes of every shard's segments (for max_disk_bytes).
  std::atomic<uint64_t> persist_disk_bytes{0};
  // Some shard's log cannot take more (a write error, or its pending bytes beyond the bound):
  // new QoS 1/2 PUBLISHes that need the log are not acknowledged (router.h).
  std::atomic<uint32_t> persist_degraded_shards{0};

  // Cluster over NATS (Config::clustered). Set by the broker before the shards start: this
  // node's name (config::ClusterNodeName) and the address of each configured NATS host given
  // as a name, resolved once at start, so that a shard never waits on DNS (a host neither
  // numeric nor listed here, e.g. one a NATS server announced by name, cannot be connected).
  struct ResolvedHost {
    std::string host;
    sockaddr_storage address{};  // the port is the URL's, set at connect time
    socklen_t length = 0;
  };
  std::string cluster_node_name;
  std::vector<ResolvedHost> cluster_hosts;
  // Duplicate node names (weak lane; cluster/node_identity.h): this process's random instance
  // number, drawn at start, and whether a shard asked the process to stop because an older
  // node has the same name (the broker then exits with status 1).
  uint64_t cluster_instance = 0;
  std::atomic<bool> stop_with_error{false};
  // The NATS credentials of Config::cluster_nkey_seed_file or cluster_credentials_file (the
  // seed's key, and the user JWT of a .creds file), read at start and again on SIGHUP by the
  // main thread (Broker::Reload); each link loads them when it sends CONNECT (cluster/nkey.h).
  // Null: neither file configured.
  cluster::SharedCredentials cluster_credentials;

  // CLOCK_MONOTONIC milliseconds (the shards' now_ms clock) and Unix time in seconds at start.
  const uint64_t started_monotonic_ms;
  const double started_unix_seconds;
};

// Mailbox slots per ordered shard pair, from a budget for all of them:
//   bit_floor(mailbox_memory_bytes / 16 / (N * (N - 1))), within [64, 32768].
// The floor is the longest record (Mailbox::kDefaultMaxRecordSlots); the ceiling, 512 KiB, is
// plenty for one pair. The default budget (2^18 slots, 4 MiB) gives 32768 slots per pair up to 3
// shards, 1024 at 16 shards, 64 from 46 shards on (128 shards: 16256 x 1 KiB).
uint32_t MailboxCapacity(uint32_t shard_count,
                         uint64_t mailbox_memory_bytes = kDefaultMailboxMemoryBytes);
// Bytes the mailbox rings of `shard_count` shards map (each ring adds 63 spare slots and a length
// byte per slot to its capacity): what the memory baseline counts for them.
uint64_t MailboxBytes(uint32_t shard_count,
                      uint64_t mailbox_memory_bytes = kDefaultMailboxMemoryBytes);

}  // namespace ringmq::shard

#endif  // RINGMQ_SHARD_SHARED_STATE_H_
