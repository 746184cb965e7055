// ShardCounters read from another thread while its shard writes: what one AddTo (one shard's
// part of a /metrics scrape) may show. The scrape is no snapshot, but its gauges are never newer
// than its counters: an event whose gauge change a scrape shows also shows the counters the
// shard added before that change (docs/metrics.md, "Consistency of a scrape").
#include "metrics/counters.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace ringmq::metrics {
namespace {

// The shard side of a PUBACK: the connection counts its 4 bytes when they are read
// (net::Connection::OnReceive), then the router releases the in-flight message (gauge - 1).
// Modelled here as bytes_received += 4, then inflight_messages = number of events so far.
//
// Before AddTo read the gauges first, a scrape could load bytes_received, then the shard handle
// three PUBACKs, then the scrape load inflight_messages: 0 in flight, 12 bytes short (the
// test_metrics failure of the 2026-12-08 fresh-clone ASan run, 413 against 425 bytes).
TEST(ShardCountersTest, ScrapeGaugesNeverNewerThanCountersAddedBeforeThem) {
  ShardCounters counters;
  std::atomic<bool> stop{false};
  std::thread shard([&] {
    int64_t events = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      counters.bytes_received.Add(4);
      counters.gauges.inflight_messages.Set(++events);
    }
  });
  // Bounded: until 200000 scrapes have seen the shard move, or 5 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  uint64_t scrapes = 0;
  uint64_t moving = 0;    // scrapes that saw a later event than the scrape before
  uint64_t torn = 0;      // scrapes whose gauge shows events whose bytes they miss
  int64_t last_events = 0;
  int64_t worst_missing = 0;
  while (moving < 200'000 && std::chrono::steady_clock::now() < deadline) {
    Snapshot sample;
    counters.AddTo(sample);
    ++scrapes;
    const int64_t events = sample.gauges.inflight_messages;
    if (events > last_events) ++moving;
    last_events = events;
    const int64_t missing = 4 * events - static_cast<int64_t>(sample.bytes_received);
    if (missing > 0) {
      ++torn;
      worst_missing = std::max(worst_missing, missing);
    }
  }
  stop.store(true, std::memory_order_relaxed);
  shard.join();
  RecordProperty("scrapes", static_cast<int>(std::min<uint64_t>(scrapes, INT32_MAX)));
  RecordProperty("moving", static_cast<int>(std::min<uint64_t>(moving, INT32_MAX)));
  // The shard must have run while the scrapes did, or the test proved nothing.
  ASSERT_GT(moving, 0u) << "the writer thread never ran during the scrapes";
  EXPECT_EQ(torn, 0u) << "of " << scrapes << " scrapes (" << moving
                      << " while the shard wrote); worst: " << worst_missing << " bytes short";
}

}  // namespace
}  // namespace ringmq::metrics
