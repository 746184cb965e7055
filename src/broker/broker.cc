#include "ringmq/broker.h"

#include <unistd.h>

#include <future>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.h"
#include "io/listener.h"
#include "io/ring.h"
#include "metrics/counters.h"
#include "shard/shard.h"

namespace ringmq {

struct Broker::Running {
  explicit Running(uint32_t shard_count) : shared(shard_count) {}
  shard::SharedState shared;
  std::vector<std::unique_ptr<shard::Shard>> shards;
  std::vector<std::thread> threads;
};

namespace {

uint32_t ResolveThreads(uint32_t threads) {
  if (threads != 0) return threads;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<uint32_t>(online) : 1;
}

// Backlog per listener: large enough for connection storms (the kernel caps it at
// net.core.somaxconn).
constexpr int kListenBacklog = 4096;

}  // namespace

Broker::Broker(Config config) : config_(std::move(config)) {
  config_.threads = ResolveThreads(config_.threads);
}

Broker::~Broker() { Stop(); }

uint32_t Broker::shard_count() const { return config_.threads; }

absl::Status Broker::Start() {
  if (absl::Status probe = io::ProbeKernel(); !probe.ok()) return probe;
  auto running = std::make_unique<Running>(config_.threads);
  if (config_.max_connections_per_address != 0 || config_.max_connect_rate_per_address != 0) {
    running->shared.addresses = std::make_unique<connect::AddressTable>();
  }
  for (uint32_t i = 0; i < config_.threads; ++i) {
    absl::StatusOr<int> listener = io::OpenListener(config_.bind, config_.port, kListenBacklog);
    if (!listener.ok()) return listener.status();
    running->shards.push_back(
        std::make_unique<shard::Shard>(i, config_, *listener, running->shared));
  }
  std::vector<std::future<absl::Status>> ready;
  for (auto& shard : running->shards) {
    auto promise = std::make_shared<std::promise<absl::Status>>();
    ready.push_back(promise->get_future());
    running->threads.emplace_back([shard = shard.get(), promise] {
      const absl::Status result =
          shard->Run([&promise](const absl::Status& status) { promise->set_value(status); });
      if (!result.ok()) {
        RINGMQ_LOG_ERROR("shard %u: %s", shard->index(), std::string(result.message()).c_str());
      }
    });
  }
  absl::Status first_error = absl::OkStatus();
  for (auto& future : ready) {
    absl::Status status = future.get();
    if (!status.ok() && first_error.ok()) first_error = status;
  }
  running_ = std::move(running);
  if (!first_error.ok()) Stop();
  return first_error;
}

void Broker::Stop() {
  if (running_ == nullptr) return;
  running_->shared.shutting_down.store(true, std::memory_order_relaxed);
  for (auto& shard : running_->shards) shard->RequestStop();
  for (std::thread& thread : running_->threads) thread.join();
  running_->threads.clear();
  final_counters_ = CountersSummary();
  running_.reset();
}

std::string Broker::CountersSummary() const {
  if (running_ == nullptr) return final_counters_;
  metrics::Snapshot total;
  for (const auto& shard : running_->shards) shard->counters().AddTo(total);
  return total.Format();
}

}  // namespace ringmq
