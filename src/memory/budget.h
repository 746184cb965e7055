// The broker-wide memory budget (`max_memory`): accounting of the memory that grows with
// traffic, and the load-shedding level derived from it.
//
// What is accounted ("charged"): every Message allocation (topic, payload and header), the
// session queues' ring storage, connection buffers (receive reassembly, hand-off, output),
// the cluster's NATS link buffers (Shard::ChargeNatsMemory), connection slots, session entries
// and subscriptions (the last two at a fixed estimate per item), plus the process's resident size when the broker finished starting (the baseline:
// code, io_uring rings, provided receive buffers, mailboxes). Memory that does not grow with
// traffic is in the baseline; memory that does is charged where it is allocated and credited
// where it is freed, so the total follows what the broker holds.
//
// Shedding (docs/configuration.md, "max_memory"), as the accounted total rises:
//   >= 80 % of max_memory  kShedQos0          QoS 0 deliveries to sessions that already have a
//                                             backlog (slow consumers) are dropped
//   >= 90 %                kRefuseConnections  also: new CONNECTs get CONNACK 0x03
//   >= 100 %               kShedQos12         also: QoS 1/2 deliveries to sessions with a
//                                             backlog (or offline) are treated as a full queue
//                                             (queue_full_policy: drop, or disconnect)
// A session that keeps up (empty queue) still gets every message: shedding targets the
// consumers whose backlog is what holds the memory. Every shed item is counted.
//
// Accounts: each shard charges its own Account (one writer, relaxed load + store: no atomic
// read-modify-write and no shared cache line on the message path). A Message freed on another
// shard is credited to that shard's account, so one account may go negative; only the sum
// means anything. Threads that are not shards (main, the metrics thread, tests) charge a shared
// fallback with fetch_add.
//
// The level: each shard keeps a View, refreshed at most once per millisecond by summing every
// account (one relaxed load per shard), and between refreshes raised by its own account's
// growth, so a shard's own growth is seen at once and other shards' within a millisecond.
//
// Thread safety: Charge() from any thread (it uses the calling thread's account). Account::Add
// only from the thread bound to it; Load from anywhere. Budget::Total() from any thread. A View
// belongs to one shard.
#ifndef RINGMQ_MEMORY_BUDGET_H_
#define RINGMQ_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <memory>

namespace ringmq::memory {

class alignas(64) Account {
 public:
  void Add(int64_t delta) {
    bytes_.store(bytes_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  int64_t Load() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> bytes_{0};
};

// Charges `delta` bytes (negative: credits) to the calling thread's account.
void Charge(int64_t delta);
// Binds the calling thread to `account` (its only writer from now on); nullptr unbinds.
void BindThreadAccount(Account* account);
// Bytes charged by unbound threads, over the whole process.
int64_t FallbackCharged();

// Estimates, for what is charged per item rather than measured: a session entry with its
// session object and map entry, and one subscription (its filter string, the session's record
// and the trie's share: node, handle array slot).
inline constexpr int64_t kSessionBytes = 512;
inline constexpr int64_t kSubscriptionBytes = 192;

enum class Pressure : uint8_t {
  kNone,
  kShedQos0,
  kRefuseConnections,
  kShedQos12,
};

// The shed thresholds in percent of max_memory.
inline constexpr uint64_t kShedQos0Percent = 80;
inline constexpr uint64_t kRefuseConnectionsPercent = 90;
inline constexpr uint64_t kShedQos12Percent = 100;

// The level for `total` accounted bytes under `max_bytes` (0: no budget, always kNone).
Pressure PressureOf(int64_t total, uint64_t max_bytes);

class Budget {
 public:
  // `max_bytes` 0: no budget (everything is still accounted, for the metrics).
  Budget(uint64_t max_bytes, uint32_t shard_count);
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

  uint64_t max_bytes() const { return max_bytes_; }
  uint32_t shard_count() const { return shard_count_; }
  Account& account(uint32_t shard) { return accounts_[shard]; }

  // The resident size at start, counted in Total(). Set once, by the main thread, when every
  // shard is ready.
  void SetBaseline(int64_t bytes) { baseline_.store(bytes, std::memory_order_relaxed); }
  int64_t baseline() const { return baseline_.load(std::memory_order_relaxed); }

  // Baseline + every shard's account + the unbound threads' charges.
  int64_t Total() const;

 private:
  const uint64_t max_bytes_;
  const uint32_t shard_count_;
  std::unique_ptr<Account[]> accounts_;
  std::atomic<int64_t> baseline_{0};
};

// One shard's view of the budget.
class View {
 public:
  static constexpr uint64_t kRefreshIntervalMs = 1;

  View(const Budget& budget, const Account& own) : budget_(budget), own_(own) {}

  // Sums every account (at most once per kRefreshIntervalMs).
  void Refresh() {
    total_at_refresh_ = budget_.Total();
    own_at_refresh_ = own_.Load();
  }
  // Only this shard's growth is added between refreshes, never its decrease: a message that
  // another shard created and this one freed is a credit here and a charge there, and seeing
  // the credit without the charge would make this shard under-estimate.
  int64_t Estimate() const {
    const int64_t growth = own_.Load() - own_at_refresh_;
    return total_at_refresh_ + (growth > 0 ? growth : 0);
  }
  Pressure Level() const {
    if (budget_.max_bytes() == 0) return Pressure::kNone;
    return PressureOf(Estimate(), budget_.max_bytes());
  }

 private:
  const Budget& budget_;
  const Account& own_;
  int64_t total_at_refresh_ = 0;
  int64_t own_at_refresh_ = 0;
};

// The resident set size of this process (/proc/self/statm), 0 if it cannot be read. A syscall:
// for start-up and tests, never the message path.
int64_t ResidentBytes();

}  // namespace ringmq::memory

#endif  // RINGMQ_MEMORY_BUDGET_H_
