#include "memory/budget.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "common/assert.h"

namespace ringmq::memory {
namespace {

thread_local Account* bound_account = nullptr;
std::atomic<int64_t> fallback_charged{0};

}  // namespace

void Charge(int64_t delta) {
  if (Account* account = bound_account; account != nullptr) {
    account->Add(delta);
  } else {
    fallback_charged.fetch_add(delta, std::memory_order_relaxed);
  }
}

void BindThreadAccount(Account* account) { bound_account = account; }

int64_t FallbackCharged() { return fallback_charged.load(std::memory_order_relaxed); }

Pressure PressureOf(int64_t total, uint64_t max_bytes) {
  if (max_bytes == 0 || total <= 0) return Pressure::kNone;
  // Percent thresholds without overflow: total * 100 fits (total is far below 2^56).
  const auto used_x100 = static_cast<uint64_t>(total) * 100;
  if (used_x100 >= max_bytes * kShedQos12Percent) return Pressure::kShedQos12;
  if (used_x100 >= max_bytes * kRefuseConnectionsPercent) return Pressure::kRefuseConnections;
  if (used_x100 >= max_bytes * kShedQos0Percent) return Pressure::kShedQos0;
  return Pressure::kNone;
}

Budget::Budget(uint64_t max_bytes, uint32_t shard_count)
    : max_bytes_(max_bytes),
      shard_count_(shard_count),
      accounts_(std::make_unique<Account[]>(shard_count)) {
  RINGMQ_ASSERT(shard_count > 0);
}

int64_t Budget::Total() const {
  int64_t total = baseline() + FallbackCharged();
  for (uint32_t i = 0; i < shard_count_; ++i) total += accounts_[i].Load();
  return total;
}

int64_t ResidentBytes() {
  const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[128];
  const ssize_t size = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (size <= 0) return 0;
  text[size] = '\0';
  // "size resident shared text lib data dt", in pages.
  char* end = nullptr;
  std::strtoll(text, &end, 10);
  const long long resident_pages = std::strtoll(end, nullptr, 10);
  return resident_pages * sysconf(_SC_PAGESIZE);
}

}  // namespace ringmq::memory
