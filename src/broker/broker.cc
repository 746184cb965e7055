#include "ringmq/broker.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "auth/auth_data.h"
#include "bridge/bridge.h"
#include "cluster/nats_link.h"
#include "common/clock.h"
#include "common/log.h"
#include "config/options.h"
#include "io/listener.h"
#include "listener/listener.h"
#include "io/ring.h"
#include "memory/budget.h"
#include "metrics/counters.h"
#include "metrics/exposition.h"
#include "metrics/http_server.h"
#include "message/message.h"
#include "persist/data_dir.h"
#include "shard/shard.h"
#include "tls/ktls.h"

namespace ringmq {

struct Broker::Running {
  // Persistence: declared first, so that it outlives the shards that write into it.
  std::unique_ptr<persist::DataDir> data_dir;
  std::unique_ptr<persist::RecoveredState> recovered;  // until every shard took its share
  explicit Running(const Config& config)
      : shared(config.threads, config.max_memory,
               retain::RetainedLimits{.max_messages = config.max_retained_messages,
                                      .max_bytes = config.max_retained_bytes},
               config.mailbox_memory) {}
  shard::SharedState shared;
  std::vector<std::unique_ptr<shard::Shard>> shards;
  std::vector<std::thread> threads;
  std::unique_ptr<metrics::HttpServer> metrics;  // null when metrics_port is 0
};

namespace {

// The NATS credentials of [cluster] nkey_seed_file (a seed, or a .creds file whose JWT is not
// used) or credentials_file (a .creds file with its user JWT); null if neither is configured.
// Read at start and on SIGHUP. Errors name the file; the seed is never logged.
absl::StatusOr<std::unique_ptr<cluster::UserCredentials>> ReadClusterCredentials(
    const Config& config) {
  if (!config.cluster_nkey_seed_file.empty()) {  // natstls lane
    absl::StatusOr<cluster::Nkey> nkey = cluster::Nkey::FromFile(config.cluster_nkey_seed_file);
    if (!nkey.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("cluster: ", nkey.status().message()));
    }
    RINGMQ_LOG_INFO("cluster: NATS nkey %s", nkey->public_key().c_str());
    return std::make_unique<cluster::UserCredentials>(
        cluster::UserCredentials{.jwt = {}, .nkey = std::move(*nkey)});
  }
  if (config.cluster_credentials_file.empty()) return nullptr;
  absl::StatusOr<cluster::UserCredentials> credentials =  // jwt lane
      cluster::ReadCredentialsFile(config.cluster_credentials_file);
  if (!credentials.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cluster: ", credentials.status().message()));
  }
  if (credentials->jwt.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster: credentials file ", config.cluster_credentials_file,
                     ": no user JWT (a seed alone goes in nkey_seed_file)"));
  }
  RINGMQ_LOG_INFO("cluster: NATS user JWT for nkey %s", credentials->nkey.public_key().c_str());
  return std::make_unique<cluster::UserCredentials>(std::move(*credentials));
}

// Cluster over NATS: the node name and the configured NATS host names resolved once, here,
// so that the shards connect without waiting on DNS. Errors: a URL host that does not resolve.
absl::Status PrepareCluster(const Config& config, shard::SharedState& shared) {
  char host_name[256] = {};
  if (gethostname(host_name, sizeof(host_name) - 1) != 0) host_name[0] = '\0';
  shared.cluster_node_name = config::ClusterNodeName(config, host_name);
  // Duplicate node names (cluster/node_identity.h): a random instance number per process.
  std::random_device random;
  shared.cluster_instance = (uint64_t{random()} << 32) ^ random();
  for (const std::string& url : config.cluster_nats_urls) {
    const absl::StatusOr<cluster::NatsServerAddress> address = cluster::ParseNatsUrl(url);
    if (!address.ok()) return address.status();
    in6_addr numeric;
    if (inet_pton(AF_INET, address->host.c_str(), &numeric) == 1 ||
        inet_pton(AF_INET6, address->host.c_str(), &numeric) == 1) {
      continue;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int error = getaddrinfo(address->host.c_str(), nullptr, &hints, &found);
        error != 0 || found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("cluster: cannot resolve NATS host \"",
                                                     address->host, "\": ", gai_strerror(error)));
    }
    shard::SharedState::ResolvedHost resolved{.host = address->host};
    std::memcpy(&resolved.address, found->ai_addr, found->ai_addrlen);
    resolved.length = found->ai_addrlen;
    freeaddrinfo(found);
    shared.cluster_hosts.push_back(std::move(resolved));
  }
  absl::StatusOr<std::unique_ptr<cluster::UserCredentials>> credentials =
      ReadClusterCredentials(config);
  if (!credentials.ok()) return credentials.status();
  if (*credentials != nullptr) shared.cluster_credentials.Replace(std::move(*credentials), nullptr);
  RINGMQ_LOG_INFO(
      "cluster: node %s, NATS servers %s, subject prefix \"%s\"", shared.cluster_node_name.c_str(),
      absl::StrJoin(config.cluster_nats_urls, ",").c_str(), config.cluster_subject_prefix.c_str());
  return absl::OkStatus();
}

uint32_t ResolveThreads(uint32_t threads) {
  if (threads != 0) return threads;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<uint32_t>(online) : 1;
}

// The CPUs this process may run on (its affinity mask: taskset, cgroup cpusets), ascending.
std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return {};
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

// On the shard's own thread, before it runs: a name for top -H, perf and /proc (15 characters
// at most, so "ringmq/N" rather than a longer prefix), and with cpu_affinity auto its CPU
// (`cpu` >= 0). A thread that cannot be pinned runs where the scheduler puts it.
void PlaceShardThread(uint32_t index, int cpu) {
  char name[16];
  std::snprintf(name, sizeof(name), "ringmq/%u", index);
  pthread_setname_np(pthread_self(), name);
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const int error = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  if (error != 0) {
    RINGMQ_LOG_WARNING("shard %u: cannot pin to CPU %d (%s): it runs unpinned", index, cpu,
                       strerror(error));
  }
}

// One scrape: loads relaxed atomics only, so it never waits for (or holds up) a shard.
std::string Scrape(const shard::SharedState& shared, const Config& config,
                   const metrics::HttpServer& server) {
  metrics::BrokerSample sample;
  sample.shards.resize(shared.shard_counters.size());
  for (size_t i = 0; i < shared.shard_counters.size(); ++i) {
    shared.shard_counters[i]->AddTo(sample.shards[i]);
  }
  const std::vector<ListenerConfig> listeners = listener::EffectiveListeners(config);
  std::vector<metrics::ListenerSnapshot> listener_totals(listeners.size());
  for (const metrics::ShardCounters* counters : shared.shard_counters) {
    counters->AddListenersTo(listener_totals);
  }
  sample.listeners.resize(listeners.size());
  for (size_t i = 0; i < listeners.size(); ++i) {
    metrics::ListenerSample& listener = sample.listeners[i];
    listener.name = listener::ListenerName(listeners[i]);
    listener.counters = listener_totals[i];
    listener.clients_connected =
        shared.listener_clients[i].connected.load(std::memory_order_relaxed);
    listener.max_connections = listeners[i].max_connections;
  }
  // bridge lane: per-bridge counters, by Config::bridges index.
  std::vector<metrics::BridgeSnapshot> bridge_totals(config.bridges.size());
  for (const metrics::ShardCounters* counters : shared.shard_counters) {
    counters->AddBridgesTo(bridge_totals);
  }
  sample.bridges.resize(config.bridges.size());
  for (size_t i = 0; i < config.bridges.size(); ++i) {
    sample.bridges[i].name = config.bridges[i].name;
    sample.bridges[i].counters = bridge_totals[i];
  }
  sample.clients_connected = shared.connected_clients.load(std::memory_order_relaxed);
  sample.retained_messages = shared.retained.size();
  sample.max_connections = config.max_connections;
  sample.memory_accounted_bytes = shared.memory.Total();
  sample.memory_max_bytes = config.max_memory;
  sample.memory_pressure = static_cast<int>(
      memory::PressureOf(sample.memory_accounted_bytes, config.max_memory));
  sample.start_time_seconds = shared.started_unix_seconds;
  sample.uptime_seconds =
      static_cast<double>(MonotonicMs() - shared.started_monotonic_ms) / 1000.0;
  sample.version = RINGMQ_VERSION;
  sample.http_responses = server.responses();
  return metrics::Render(sample);
}

std::string HostPort(const std::string& address, uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

// Backlog per listener: large enough for connection storms (the kernel caps it at
// net.core.somaxconn).
constexpr int kListenBacklog = 4096;

bool IsLoopback(const std::string& bind) {
  return bind.rfind("127.", 0) == 0 || bind == "::1" || bind == "localhost";
}

}  // namespace

Broker::Broker(Config config) : config_(std::move(config)) {
  config_.threads = ResolveThreads(config_.threads);
}

Broker::~Broker() { Stop(); }

uint32_t Broker::shard_count() const { return config_.threads; }

std::string Broker::metrics_url() const {
  if (running_ == nullptr || running_->metrics == nullptr) return "";
  return "http://" + HostPort(config_.metrics_bind, running_->metrics->port()) + "/metrics";
}

absl::Status Broker::Start() {
  if (absl::Status probe = io::ProbeKernel(); !probe.ok()) return probe;
  auto running = std::make_unique<Running>(config_);
  if (auth::AuthConfigured(config_)) {
    absl::StatusOr<std::unique_ptr<auth::AuthData>> data =
        auth::LoadAuthData(config_, ++auth_version_);
    if (!data.ok()) return data.status();
    RINGMQ_LOG_INFO("auth: %s", (*data)->Summary().c_str());
    running->shared.auth.Replace(std::move(*data), nullptr);
  }
  if (config_.max_connections_per_address != 0 || config_.max_connect_rate_per_address != 0) {
    running->shared.addresses = std::make_unique<connect::AddressTable>();
  }
  if (absl::Status checked = config::CheckListeners(config_); !checked.ok()) return checked;
  if (absl::Status checked = config::CheckClusterTls(config_); !checked.ok()) return checked;
  const std::vector<ListenerConfig> listeners = listener::EffectiveListeners(config_);
  RINGMQ_ASSERT(!listeners.empty() && listeners.size() <= shard::Shard::kMaxListeners);
  for (const ListenerConfig& listener : listeners) {
    RINGMQ_LOG_INFO("listener %s", listener::Describe(listener).c_str());
    if (listener.allow_anonymous.value_or(config_.allow_anonymous) &&
        config_.password_file.empty() && !IsLoopback(listener.bind)) {
      RINGMQ_LOG_WARNING(
          "listening on %s with allow_anonymous true and no password_file: any client that can "
          "reach this address may connect (see docs/auth.md)",
          listener.bind.c_str());
    }
  }
  if (std::any_of(listeners.begin(), listeners.end(),
                  [](const ListenerConfig& listener) { return listener.tls(); })) {
    std::string detail;
    const bool kernel_tls = tls::KernelTlsAvailable(&detail);
    RINGMQ_LOG_INFO("TLS record layer: user space (OpenSSL); kernel TLS %s (%s)%s",
                    kernel_tls ? "available" : "not available", detail.c_str(),
                    kernel_tls ? ", hand-over not implemented" : "");
  }
  for (const ListenerConfig& listener : listeners) {
    absl::StatusOr<std::unique_ptr<net::TransportFactory>> factory =
        listener::MakeTransportFactory(listener, config_.max_packet_size);
    if (!factory.ok()) return factory.status();
    running->shared.transport_factories.push_back(std::move(*factory));
  }
  if (config_.clustered()) {
    if (absl::Status status = PrepareCluster(config_, running->shared); !status.ok()) {
      return status;
    }
  }
  if (config_.persistence) {
    if (absl::Status status = StartPersistence(*running); !status.ok()) return status;
  }
  for (uint32_t i = 0; i < config_.threads; ++i) {
    std::vector<int> listen_fds;
    for (const ListenerConfig& listener : listeners) {
      absl::StatusOr<int> fd = io::OpenListener(listener.bind, listener.port, kListenBacklog);
      if (!fd.ok()) {
        for (const int open_fd : listen_fds) close(open_fd);
        return absl::Status(fd.status().code(),
                            absl::StrCat("listener ", listener::ListenerName(listener), ": ",
                                         fd.status().message()));
      }
      listen_fds.push_back(*fd);
    }
    absl::StatusOr<std::unique_ptr<shard::Shard>> shard =
        shard::Shard::Create(i, config_, std::move(listen_fds), running->shared);
    if (!shard.ok()) return shard.status();
    running->shards.push_back(std::move(*shard));
    running->shared.shard_counters[i] = &running->shards.back()->counters();
  }
  // Before the shards: a port in use fails the start with nothing else running yet.
  if (config_.metrics_port != 0) {
    absl::StatusOr<std::unique_ptr<metrics::HttpServer>> server = metrics::HttpServer::Start(
        config_.metrics_bind, config_.metrics_port,
        [shared = &running->shared, this](const metrics::HttpServer& server) {
          return Scrape(*shared, config_, server);
        });
    if (!server.ok()) {
      return absl::Status(server.status().code(),
                          "cannot serve /metrics (metrics_port; 0 turns it off): " +
                              std::string(server.status().message()));
    }
    running->metrics = std::move(*server);
  }
  std::vector<int> cpus;  // empty: not pinned
  if (config_.cpu_affinity == CpuAffinity::kAuto) {
    cpus = AllowedCpus();
    if (cpus.empty()) {
      RINGMQ_LOG_WARNING("cpu_affinity auto: sched_getaffinity failed; shards run unpinned");
    } else {
      RINGMQ_LOG_INFO("cpu_affinity auto: shard i runs on allowed CPU i mod %zu of [%s]",
                      cpus.size(), absl::StrJoin(cpus, ",").c_str());
    }
  }
  std::vector<std::future<absl::Status>> ready;
  for (auto& shard : running->shards) {
    auto promise = std::make_shared<std::promise<absl::Status>>();
    ready.push_back(promise->get_future());
    const uint32_t index = shard->index();
    const int cpu = cpus.empty() ? -1 : cpus[index % cpus.size()];
    running->threads.emplace_back([shard = shard.get(), promise, index, cpu] {
      PlaceShardThread(index, cpu);
      // A set-up error goes to Start() through the promise, and from there to main's message.
      shard->Run([&promise](const absl::Status& status) { promise->set_value(status); })
          .IgnoreError();
    });
  }
  absl::Status first_error = absl::OkStatus();
  for (auto& future : ready) {
    absl::Status status = future.get();
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  running_ = std::move(running);
  // Every shard took its share of the recovered state during its set-up.
  running_->shared.recovered = nullptr;
  running_->recovered.reset();
  if (!first_error.ok()) {
    Stop();
    return first_error;
  }
  SetMemoryBaseline();
  return first_error;
}

namespace {

// bridgeq2 lane: a recovered session last bound by a bridge's local connection (kSession's
// bridge flag: only the in-process connection of a configured bridge sets it, and a client
// that takes the id over clears it, so a client whose id merely looks like a bridge's is never
// ended here) whose client id no configured bridge has is ended before any shard takes its
// share: its queue is dropped, one line names it, the counts go to shard 0's counters. The
// shards' start snapshots then no longer hold it, so it is gone from the log as well.
void RemoveUnconfiguredBridgeSessions(const Config& config, persist::RecoveredState& recovered,
                                      shard::SharedState& shared) {
  char host_name[256] = {};
  if (gethostname(host_name, sizeof(host_name) - 1) != 0) host_name[0] = '\0';
  absl::flat_hash_set<std::string> configured;
  for (const BridgeConfig& bridge : config.bridges) {
    configured.insert(bridge::BridgeLocalClientId(bridge, host_name));
  }
  for (auto it = recovered.sessions.begin(); it != recovered.sessions.end();) {
    const persist::StoredSession& session = it->second;
    if (!session.bridge || configured.contains(it->first)) {
      ++it;
      continue;
    }
    RINGMQ_LOG_WARNING("persistence: ended the session of bridge local client \"%s\": no "
                       "[[bridge]] has that local client id any more; %zu queued and in-flight "
                       "messages dropped (remove_unconfigured_bridge_sessions = false keeps it)",
                       it->first.c_str(), session.deliveries.size());
    ++shared.bridge_sessions_removed;
    shared.bridge_messages_removed += session.deliveries.size();
    it = recovered.sessions.erase(it);
  }
}

}  // namespace

absl::Status Broker::StartPersistence(Running& running) {
  absl::StatusOr<std::unique_ptr<persist::DataDir>> dir = persist::DataDir::Open(config_.data_dir);
  if (!dir.ok()) return dir.status();
  running.data_dir = std::move(*dir);
  persist::RecoveryReport report;
  absl::StatusOr<persist::RecoveredState> recovered = running.data_dir->Recover(
      persist::DataDir::RecoverOptions{.truncate_corrupt = config_.persistence_truncate_corrupt},
      &report);
  if (!recovered.ok()) {
    return absl::Status(recovered.status().code(),
                        absl::StrCat("persistence (", config_.data_dir, "): ",
                                     recovered.status().message(),
                                     " (persistence_truncate_corrupt cuts a segment at a "
                                     "corrupt record; `ringmq db check` inspects the directory)"));
  }
  running.recovered = std::make_unique<persist::RecoveredState>(std::move(*recovered));
  if (config_.remove_unconfigured_bridge_sessions) {
    RemoveUnconfiguredBridgeSessions(config_, *running.recovered, running.shared);
  }
  RINGMQ_LOG_INFO("persistence: %s, durability %s; recovered run %llu (%u shards): %llu "
                  "sessions, %llu queued and in-flight messages, %llu retained messages from "
                  "%llu records (%llu bytes) in %llu ms%s",
                  config_.data_dir.c_str(), std::string(config::ToString(config_.durability)).c_str(),
                  static_cast<unsigned long long>(report.run), report.shards,
                  static_cast<unsigned long long>(report.sessions),
                  static_cast<unsigned long long>(report.deliveries),
                  static_cast<unsigned long long>(report.retained),
                  static_cast<unsigned long long>(report.records),
                  static_cast<unsigned long long>(report.bytes),
                  static_cast<unsigned long long>(report.duration_ms),
                  report.torn_tails != 0 ? "; a torn tail (a write the crash cut) was truncated"
                                         : "");
  if (report.corrupt_truncated != 0) {
    RINGMQ_LOG_WARNING("persistence: %llu segments were cut at a corrupt record "
                       "(persistence_truncate_corrupt); what followed it is lost",
                       static_cast<unsigned long long>(report.corrupt_truncated));
  }
  // Retained messages go back into the store now, before any shard serves: as shard 0's
  // messages (its first sequence numbers), after every recovered version.
  shard::SharedState& shared = running.shared;
  shared.retained.RaiseVersion(running.recovered->max_retained_version);
  uint64_t sequence = 0;
  for (const auto& [topic, stored] : running.recovered->retained) {
    const persist::StoredMessage& m = stored.message;
    if (m.payload.empty()) continue;
    // A retained message whose expiry passed while the broker was down is not restored.
    uint64_t deadline = 0;
    if (m.expiry_wall_ms != 0) {
      const uint64_t wall_ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
      if (m.expiry_wall_ms <= wall_ms) continue;
      deadline = MonotonicMs() + (m.expiry_wall_ms - wall_ms);
    }
    message::MessageRef message = message::MessageRef::Create(
        m.topic, std::span<const uint8_t>(m.payload.data(), m.payload.size()), m.qos,
        /*retain=*/true, message::MessageOrigin{.shard = 0, .sequence = ++sequence},
        message::Mqtt5Fields{
            .properties = std::span<const uint8_t>(m.properties.data(), m.properties.size()),
            .expiry_deadline_ms = deadline});
    shared.retained.Set(std::move(message));
  }
  shared.recovered_retained_sequences = sequence;
  shared.data_dir = running.data_dir.get();
  shared.recovered = running.recovered.get();
  shared.persist_run = running.data_dir->current_run() + 1;
  return absl::OkStatus();
}

void Broker::SetMemoryBaseline() {
  // What is resident now, plus the fixed allocations that become resident only as they are
  // used: every shard's provided receive buffers and the mailboxes (pages touched on demand).
  // Over-counting them is the safe side: the budget sheds a little early, never late.
  const shard::ShardLimits limits;
  const uint64_t shards = config_.threads;
  const uint64_t receive_buffers =
      shards * uint64_t{limits.receive_buffers} * limits.receive_buffer_bytes;
  const uint64_t mailboxes = shard::MailboxBytes(config_.threads, config_.mailbox_memory);
  const int64_t baseline =
      memory::ResidentBytes() + static_cast<int64_t>(receive_buffers + mailboxes);
  running_->shared.memory.SetBaseline(baseline);
  if (config_.max_memory != 0) {
    RINGMQ_LOG_INFO("max_memory %llu bytes; %lld of them are the baseline (resident at start, "
                    "receive buffers, mailboxes)",
                    static_cast<unsigned long long>(config_.max_memory),
                    static_cast<long long>(baseline));
    if (static_cast<uint64_t>(baseline) * 100 >=
        config_.max_memory * memory::kShedQos0Percent) {
      RINGMQ_LOG_WARNING("max_memory %llu is below what the broker needs to start and run "
                         "(%lld): it will shed load at once",
                         static_cast<unsigned long long>(config_.max_memory),
                         static_cast<long long>(baseline));
    }
  }
}

void Broker::Stop() {
  if (running_ == nullptr) return;
  if (running_->metrics != nullptr) running_->metrics->Stop();
  running_->shared.shutting_down.store(true, std::memory_order_relaxed);
  for (auto& shard : running_->shards) shard->RequestStop();
  for (std::thread& thread : running_->threads) thread.join();
  running_->threads.clear();
  shard::SharedState& shared = running_->shared;
  if (shared.data_dir != nullptr && !shared.persist_committed.load(std::memory_order_acquire) &&
      shared.snapshots_durable.load(std::memory_order_acquire) == shared.shard_count) {
    // Stopped before shard 0 committed the run: every start snapshot is durable now.
    if (absl::Status status = shared.data_dir->CommitRun(shared.persist_run, shared.shard_count);
        !status.ok()) {
      RINGMQ_LOG_ERROR("persistence: cannot commit run %llu at stop: %s",
                       static_cast<unsigned long long>(shared.persist_run),
                       std::string(status.message()).c_str());
    }
  }
  final_counters_ = CountersSummary();
  stopped_with_error_ = shared.stop_with_error.load(std::memory_order_relaxed);
  running_.reset();
}

bool Broker::stopped_with_error() const {
  return running_ != nullptr ? running_->shared.stop_with_error.load(std::memory_order_relaxed)
                             : stopped_with_error_;
}

absl::Status Broker::Reload() {
  if (running_ == nullptr) return absl::FailedPreconditionError("the broker is not running");
  // Certificates first: each listener's new handshakes use its new files; on error that
  // listener keeps its current ones (logged), and the auth files are still reloaded.
  absl::Status transport_status = absl::OkStatus();
  for (const auto& factory : running_->shared.transport_factories) {
    if (factory == nullptr) continue;
    if (absl::Status status = factory->Reload(); !status.ok()) {
      RINGMQ_LOG_ERROR("reload failed, the listener keeps its current certificates: %s",
                       std::string(status.message()).c_str());
      if (transport_status.ok()) transport_status = status;
    }
  }
  // The NATS credentials: a link's next CONNECT (a reconnect, e.g. after the server ended the
  // connection when its user JWT expired) uses the new ones; links up stay up. On error the
  // current ones stay in use.
  if (config_.clustered() &&
      (!config_.cluster_nkey_seed_file.empty() || !config_.cluster_credentials_file.empty())) {
    absl::StatusOr<std::unique_ptr<cluster::UserCredentials>> credentials =
        ReadClusterCredentials(config_);
    if (!credentials.ok()) {
      RINGMQ_LOG_ERROR("reload failed, the NATS links keep their current credentials: %s",
                       std::string(credentials.status().message()).c_str());
      if (transport_status.ok()) transport_status = credentials.status();
    } else {
      running_->shared.cluster_credentials.Replace(std::move(*credentials),
                                                   &running_->shared.epochs);
      RINGMQ_LOG_INFO("reloaded the NATS credentials: the links' next CONNECT uses them");
    }
  }
  if (!auth::AuthConfigured(config_)) {
    RINGMQ_LOG_INFO("reload: no password_file or acl_file configured; nothing more to reload");
    return transport_status;
  }
  absl::StatusOr<std::unique_ptr<auth::AuthData>> data =
      auth::LoadAuthData(config_, auth_version_ + 1);
  if (!data.ok()) {
    RINGMQ_LOG_ERROR("reload failed, keeping the previous password and ACL data: %s",
                     std::string(data.status().message()).c_str());
    return data.status();
  }
  ++auth_version_;
  const std::string summary = (*data)->Summary();
  // Shards pick the new data up at their next CONNECT / PUBLISH / SUBSCRIBE, and classify their
  // subscriptions again in their next loop iteration; the old data is freed once every shard
  // has passed a quiescent point. Logged after the swap, so a client that sees the line and
  // then gets an answer from a shard knows that shard uses the new rules.
  running_->shared.auth.Replace(std::move(*data), &running_->shared.epochs);
  RINGMQ_LOG_INFO("reloaded auth: %s", summary.c_str());
  return transport_status;
}

std::string Broker::CountersSummary() const {
  if (running_ == nullptr) return final_counters_;
  metrics::Snapshot total;
  for (const auto& shard : running_->shards) shard->counters().AddTo(total);
  return total.Format();
}

}  // namespace ringmq
