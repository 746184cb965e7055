// Client placement over the nodes of a cluster for ringmq-bench (--port with several ports).
//
// Contract: PortIndex(n, kind, index) is the index into the n ports (n >= 1) that client `index`
// connects to. The rule puts publishers and the subscribers they feed on different nodes, so
// that the run measures the hop between nodes:
//   - subscribers (and connect/reject/idle/retained clients): i mod n;
//   - pairs, fanout and wildcard publishers: (i + 1) mod n, so pair i's publisher is never on
//     its subscriber's node;
//   - fanin publishers: 1 + i mod (n - 1), never the first port, where the default single
//     subscriber is.
// With one port every client is on it. The same rule is stated in `ringmq-bench --help` and in
// docs/performance.md ("A cluster").
//
// Thread safety: pure functions.
#ifndef RINGMQ_BENCH_LOADGEN_PLACEMENT_H_
#define RINGMQ_BENCH_LOADGEN_PLACEMENT_H_

#include <cstddef>
#include <cstdlib>

namespace ringmq::bench {

enum class PlacedAs { kSubscriberOrOther, kPublisher, kFaninPublisher };

inline size_t PortIndex(size_t ports, PlacedAs kind, size_t index) {
  if (ports == 0) std::abort();  // the option parser guarantees at least one port
  if (ports == 1) return 0;
  switch (kind) {
    case PlacedAs::kSubscriberOrOther:
      return index % ports;
    case PlacedAs::kPublisher:
      return (index + 1) % ports;
    case PlacedAs::kFaninPublisher:
      return 1 + index % (ports - 1);
  }
  std::abort();
}

}  // namespace ringmq::bench

#endif  // RINGMQ_BENCH_LOADGEN_PLACEMENT_H_
