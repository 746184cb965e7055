#!/usr/bin/env bash
# Usage: scripts/cluster-soak.sh [--minutes M] [--quick] [--rate R] [--reconnect-s S]
#                                [--threads T] [--settle-s S] [--drain-s S] [--strict] [--no-build]
#
# The long variant of the cluster tests (issue 16): a mixed workload with verification for M
# minutes (default 5) across 3 ringmq nodes over a 3-server NATS cluster, one nats-server killed
# (SIGKILL) at 40% of the run and restarted up to 10 s later. Publishers at QoS 0 and QoS 1 on
# every node, subscribers with exact and wildcard filters (soak/#, soak/+/q1, soak/+/+) on every
# node, and subscribers that disconnect and connect again to the next node every few seconds.
# scripts/cluster_soak.py states the workload and the verification rules in full.
#
#   --minutes M      length of the run (5)
#   --quick          a 14-second run (the integration test's smoke test)
#   --rate R         messages/s per publisher (50; 6 publishers)
#   --reconnect-s S  how often the reconnecting subscribers reconnect (5)
#   --threads T      shards per node (2)
#   --settle-s S     after the restart, time for the links before "traffic resumed" is checked (5)
#   --drain-s S      at the end, time for messages in flight (3)
#   --strict         a gap at QoS 1 across nodes fails the run too (QoS 1 across nodes is at
#                    most once until acknowledgements between nodes exist: docs/cluster.md)
#   --no-build       use build/ringmq as it is
#
# Prints a summary (published, delivered, lost and duplicated by QoS and path, out of order,
# reconnects, the cluster's counters). Exit status: 0 verified, 1 verification failed, 2 set-up
# error. Everything runs on 127.0.0.1, on free ports; every process is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$a") ;;
  esac
done
if [[ $build -eq 1 ]]; then
  [[ -d build ]] || meson setup build >/dev/null || { echo "meson setup failed" >&2; exit 2; }
  ninja -C build -j "${RINGMQ_JOBS:-2}" ringmq >/dev/null || { echo "build failed" >&2; exit 2; }
fi
ringmq=${RINGMQ_BINARY:-build/ringmq}  # as for the integration tests
[[ -x $ringmq ]] || { echo "cluster-soak: $ringmq is not built" >&2; exit 2; }
exec /usr/bin/python3 scripts/cluster_soak.py "${args[@]}"
