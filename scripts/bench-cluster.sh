#!/usr/bin/env bash
# Usage: scripts/bench-cluster.sh [--quick] [--out DIR] [--no-build] [--nats M] [--nodes N]
#                                 [--threads T] [--only NAME,...] [--no-reference] [--batch]
#                                 [--table DIR]
#
# A ringmq cluster over NATS measured on this machine (issue 16, "Performance"), beside the same
# scenarios on ONE ringmq node and beside NATS's own MQTT support, all in one run:
#
#   cluster     M clustered nats-servers (default 3; core NATS) and N ringmq nodes (default 3),
#               node i connected to server i mod M, T shards each (default 1); ringmq-bench gets
#               every node's port (--port P1,P2,P3) and places clients so that messages cross
#               nodes: pairs publisher i on node (i+1) mod N, its subscriber on node i mod N;
#               fanin's subscriber on node 0, its publishers on the other nodes
#   single      one ringmq node without [cluster], T shards
#   reference   scripts/bench-nats-reference.sh's mqtt-fanin-q0, mqtt-pairs-q0, mqtt-pairs-q1,
#               mqtt-pairs-q1-50, mqtt-connect (and mqtt3-*, NATS MQTT clustered on three
#               servers, with --nodes 3)
#
#   fanin-q0, fanin-q1   fanin 100 -> 1 at QoS 0 / 1, 64-byte payloads, window 16
#   pairs-q0, pairs-q1   pairs 500 at QoS 0 / 1
#   pairs-q1-50          pairs 50 at QoS 1 (NATS MQTT on three servers cannot set up 500 QoS 1
#                        pairs here: its JetStream consumers time out)
#   pairs-q0-light, pairs-q1-light
#                        the same at 20 msgs/s per publisher (10,000 msgs/s in all): the latency
#                        the hop adds and the CPU per message below saturation
#   connect              CONNECT + CONNACK + DISCONNECT, 32 connectors on 2 generator threads,
#                        spread over the nodes; also on the N nodes without [cluster]
#                        ("unclustered": what N processes cost here, apart from clustering)
#
# Reported per run: delivered msgs (accepted CONNECTs) per second; the CPU of the ringmq nodes
# and of the nats-servers over the measured window, each per message, then both together per
# message and messages per CPU-second; p50/p99 latency, ringmq-bench's verdict and the load
# average (the machine may be shared: ratios within one run are what count); then, per
# scenario, the extra CPU per message
# and the added p50/p99 of the hop between nodes, and the cluster against one node and against
# NATS MQTT. Files: one JSON and text line per run, table.md and load.log (uptime and the busiest
# processes before each run) under DIR (default bench/results/cluster, or cluster-quick).
#
#   --quick          tiny loads and 1-second runs (about a minute): checks that everything runs
#   --out DIR        where results go (its *.json, *.txt, *.log, *.md are replaced)
#   --no-build       use the existing build/ binaries as they are
#   --nats M         nats-servers in the cluster (1-9, default 3)
#   --nodes N        ringmq nodes in the cluster (2-9, default 3)
#   --threads T      shards per ringmq node, both topologies (1-8, default 1)
#   --only L         only these scenarios (comma-separated)
#   --no-reference   skip the NATS-MQTT reference runs
#   --batch          also a cluster with [cluster] batch = true ("cluster-batch"), for the QoS 0
#                    scenarios (fanin-q0, pairs-q0, pairs-q0-light), in the same run
#   --table DIR      rebuild DIR/table.md from an earlier run's JSON files (runs nothing)
#
# Everything runs on 127.0.0.1 on free ports, each ringmq-bench run bounded by a timeout, and
# every process started is stopped at the end. Exit status: 0 if every run verified, 1 if a run
# failed (setup or verification), 2 on a set-up error.
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
  ninja -C build -j "${RINGMQ_JOBS:-2}" ringmq bench/loadgen/ringmq-bench \
    bench/nats/ringmq-nats-bench >/dev/null || { echo "build failed" >&2; exit 2; }
fi
# RINGMQ_BINARY (as for the integration tests) names another build's ringmq; ringmq-bench is
# taken from beside it, else from build/.
ringmq=${RINGMQ_BINARY:-build/ringmq}
[[ -x $ringmq ]] || { echo "bench-cluster: $ringmq is not built" >&2; exit 2; }
exec /usr/bin/python3 scripts/bench_cluster.py "${args[@]}"
