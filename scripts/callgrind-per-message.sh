#!/usr/bin/env bash
# Usage: scripts/callgrind-per-message.sh [--build-dir DIR] [--messages N] [--subscribers N]
#                                         [--keep DIR]
#
# Instructions the broker executes per delivered message, measured with valgrind's callgrind
# (a count of instructions, so the figure is repeatable on a loaded machine, unlike time):
#   1. baseline: ringmq (1 shard) under callgrind; ringmq-bench connects the fanout clients
#      (1 publisher, --subscribers subscribers, QoS 0, 64-byte payloads), subscribes, publishes
#      nothing, disconnects. Its total Ir is start-up, connection and shutdown cost.
#   2. workload: the same, and the publisher sends about --messages messages (rate-limited so
#      that nothing is dropped under valgrind's slowdown); every delivery is verified.
#   Ir per delivered message = (workload Ir - baseline Ir) / deliveries
# Defaults: build/ (release), 10,000 messages to 100 subscribers (1 M deliveries).
# --keep DIR keeps the callgrind.out files (open them with callgrind_annotate or kcachegrind).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
build=build
messages=10000
subscribers=100
keep=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --messages) messages=$2; shift ;;
    --subscribers) subscribers=$2; shift ;;
    --keep) keep=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "callgrind-per-message: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done

command -v valgrind >/dev/null || { echo "callgrind-per-message: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
RINGMQ=$build/ringmq
BENCH=$build/bench/loadgen/ringmq-bench
[[ -x $RINGMQ && -x $BENCH ]] || { echo "callgrind-per-message: build $RINGMQ and $BENCH first (scripts/build.sh release)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/callgrind-per-message.XXXXXX")
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# measure NAME BENCH_ARGS...: prints "IR DELIVERED".
measure() {
  local name=$1
  shift
  local port out=$work/callgrind.$name.out
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
    "$RINGMQ" --port "$port" --threads 1 --log-level warning --max-queued-messages 100000 \
    >"$work/$name.log" 2>&1 &
  pid=$!
  local i
  for i in $(seq 1 600); do
    "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$port" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  local rc=0
  "$BENCH" fanout --port "$port" --qos 0 --payload 64 --publishers 1 --subscribers "$subscribers" \
    --warmup 0 --drain 30 --quiet --json "$work/$name.json" --setup-timeout 120 "$@" \
    >"$work/$name.bench" 2>&1 || rc=$?
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  if [[ $rc -ne 0 ]]; then
    echo "callgrind-per-message: ringmq-bench failed ($name):" >&2
    cat "$work/$name.bench" >&2
    exit 1
  fi
  [[ -n "$keep" ]] && mkdir -p "$keep" && cp "$out" "$keep/"
  "$PY" - "$out" "$work/$name.json" <<'EOF'
import json, sys
ir = None
with open(sys.argv[1]) as f:
    for line in f:
        if line.startswith(("summary:", "totals:")):
            ir = int(line.split()[1])
with open(sys.argv[2]) as f:
    received = json.load(f)["verify"]["received"]
print(ir, received)
EOF
}

# The publisher sends `messages` in about 10 s of (valgrind-slowed) broker time.
rate=$((messages / 10))
echo "baseline: $subscribers subscribers, no publisher, no messages ..." >&2
read -r base_ir base_delivered < <(measure baseline --publishers 0 --duration 1)
echo "workload: about $messages messages x $subscribers subscribers ..." >&2
read -r work_ir delivered < <(measure workload --rate "$rate" --duration 10 --window 64)

"$PY" - "$base_ir" "$work_ir" "$delivered" "$subscribers" <<'EOF'
import sys
base, total, delivered, subs = (int(x) for x in sys.argv[1:])
print(f"baseline (start-up, {subs} connections, shutdown): {base:,} Ir")
print(f"workload: {total:,} Ir, {delivered:,} verified deliveries")
if delivered:
    per = (total - base) / delivered
    print(f"instructions per delivered message (fanout QoS 0, 64 B, 1 shard): {per:,.0f}")
    print(f"(per published message, {subs} deliveries each: {per * subs:,.0f})")
EOF
