// A real Shard (src/shard/shard.h) running its loop on a thread of its own, for the tests that
// drive a shard's ring end to end over loopback sockets (shard_bridge_test.cc,
// shard_nats_stop_test.cc). A test's shard derives from it and fills config_ / shared_ in its
// constructor; Start opens the shard's MQTT listener on 127.0.0.1 and runs shard 0.
//
// Thread safety: Start, Stop and StopAndRelease from the test's thread only; counters() reads
// the shard's counters (atomics) while it runs.
#ifndef RINGMQ_TESTS_SHARD_SHARD_THREAD_H_
#define RINGMQ_TESTS_SHARD_SHARD_THREAD_H_

#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "io/listener.h"
#include "metrics/counters.h"
#include "ringmq/config.h"
#include "shard/shard.h"
#include "shard/shared_state.h"

namespace ringmq::shard::ring_test {

// Entries of /proc/self/fd (the directory's own descriptor included, the same every time): a
// socket a shard leaves open shows as one more.
inline int OpenDescriptors() {
  DIR* directory = opendir("/proc/self/fd");
  if (directory == nullptr) return -1;
  int count = 0;
  while (readdir(directory) != nullptr) ++count;
  closedir(directory);
  return count;
}

class ShardThread {
 public:
  ShardThread() = default;
  ShardThread(const ShardThread&) = delete;
  ShardThread& operator=(const ShardThread&) = delete;
  ~ShardThread() { Stop(); }

  // False (with a skip reason in `why`) if the kernel lacks a feature the shard needs.
  bool Start(std::string& why) {
    absl::StatusOr<int> listener = io::OpenListener("127.0.0.1", 0, 16);
    EXPECT_TRUE(listener.ok()) << listener.status();
    if (!listener.ok()) return false;
    absl::StatusOr<std::unique_ptr<Shard>> made = Shard::Create(0, config_, {*listener}, shared_);
    EXPECT_TRUE(made.ok()) << made.status();
    if (!made.ok()) return false;
    shard_ = std::move(*made);
    shared_.shard_counters[0] = &shard_->counters();
    std::promise<absl::Status> ready;
    thread_ = std::thread([&] {
      shard_->Run([&](const absl::Status& status) { ready.set_value(status); }).IgnoreError();
    });
    const absl::Status status = ready.get_future().get();
    if (!status.ok()) {
      thread_.join();
      why = status.ToString();
      return false;
    }
    return true;
  }

  // Start(), or the test skipped when the kernel lacks a feature (`started` false either way).
  void StartOrSkip(bool& started) {
    std::string why;
    started = Start(why);
    if (!started && !why.empty()) GTEST_SKIP() << "kernel feature missing: " << why;
  }

  void Stop() {
    if (!thread_.joinable()) return;
    shard_->RequestStop();
    thread_.join();
  }

  // Stops the shard and releases it (its ring, listener and buffers go with it); returns its
  // count of sockets left unclosed at stop.
  uint64_t StopAndRelease() {
    Stop();
    const uint64_t unclosed =
        shard_ == nullptr ? 0 : shard_->counters().stop_sockets_unclosed.Load();
    shard_.reset();
    return unclosed;
  }

  const metrics::ShardCounters& counters() const { return shard_->counters(); }

 protected:
  Config config_;
  SharedState shared_{1};
  std::unique_ptr<Shard> shard_;

 private:
  std::thread thread_;
};

}  // namespace ringmq::shard::ring_test

#endif  // RINGMQ_TESTS_SHARD_SHARD_THREAD_H_
