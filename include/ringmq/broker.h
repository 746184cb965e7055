// The broker: starts one shard per configured thread and the Prometheus /metrics endpoint
// (metrics_port, own thread), serves until asked to stop, then stops every shard cleanly and
// reports the summed counters.
//
// Thread safety: Broker methods are called from the main thread. RequestStop() is also safe
// from a signal-handling thread.
#ifndef RINGMQ_BROKER_H_
#define RINGMQ_BROKER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "ringmq/config.h"

namespace ringmq {

namespace shard {
class Shard;
struct SharedState;
}  // namespace shard

class Broker {
 public:
  explicit Broker(Config config);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Probes the kernel, loads the password and ACL files, opens the listeners and starts every
  // shard. Returns once all shards accept connections, or with the first error (then nothing
  // is left running). A broken password or ACL file is an error naming FILE:LINE.
  absl::Status Start();

  // Reads the password and ACL files again (SIGHUP) and publishes them to every shard without
  // dropping connections. On error the data in use is kept; the error is logged and returned.
  absl::Status Reload();

  // Stops accepting, closes every connection (flushing what is queued, bounded in time), joins
  // the shards. Idempotent.
  void Stop();

  // "name=value ..." of every counter summed over shards.
  std::string CountersSummary() const;

  // "http://address:port/metrics" while the metrics endpoint is serving, else "".
  std::string metrics_url() const;

  // A shard asked the process to stop on an error (SIGTERM to itself), e.g. another cluster
  // node has this node's name (docs/cluster.md, "Node names"): main exits with status 1.
  bool stopped_with_error() const;

  // Shards actually running (threads = 0 resolves to the number of online CPUs).
  uint32_t shard_count() const;
  const Config& config() const { return config_; }

 private:
  struct Running;
  // Persistence: opens and recovers data_dir, restores the retained messages, and tells the
  // shards (SharedState) what to recover and which run to write (persist/data_dir.h).
  absl::Status StartPersistence(Running& running);
  // Sets the memory budget's baseline once the shards are up (memory/budget.h).
  void SetMemoryBaseline();
  Config config_;
  std::unique_ptr<Running> running_;
  std::string final_counters_;  // kept after Stop()
  bool stopped_with_error_ = false;  // kept after Stop()
  uint64_t auth_version_ = 0;   // of the last auth data loaded (auth::AuthData::version)
};

}  // namespace ringmq

#endif  // RINGMQ_BROKER_H_
