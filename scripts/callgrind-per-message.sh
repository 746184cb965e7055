#!/usr/bin/env bash
# Usage: scripts/callgrind-per-message.sh [--build-dir DIR] [--scenario fanout|fanin] [--qos N]
#                                         [--messages N] [--publishers N] [--subscribers N]
#                                         [--saturate S] [--max-inflight N] [--keep DIR]
#                                         [--transport tls|ws] [--persistence off|fsync|interval]
#
# Instructions the broker executes per delivered message, measured with valgrind's callgrind
# (a count of instructions, so the figure is repeatable on a loaded machine, unlike time):
#   1. baseline: ringmq (1 shard) under callgrind; ringmq-bench connects the clients of the
#      scenario (64-byte payloads), subscribes, publishes nothing, disconnects. Its total Ir is
#      start-up, connection and shutdown cost.
#   2. workload: the same, and the publishers send about --messages messages in all (paced so
#      that nothing is dropped under valgrind's slowdown); every delivery is verified. With
#      --saturate S they are not paced but window-bound (ringmq-bench's --window 16) for S
#      seconds: the broker is then the bottleneck, as in a throughput run, and batches as much
#      as it can per loop iteration.
#   Ir per delivered message = (workload Ir - baseline Ir) / deliveries
# The broker's shutdown `counters:` line gives io_uring operations and loop iterations; the
# script prints their workload - baseline difference per delivered message too.
# Defaults: build/ (release), fanout QoS 0, 10,000 messages, 1 publisher -> 100 subscribers
# (1 M deliveries); fanin defaults to 100 publishers -> 1 subscriber.
# --max-inflight N is passed to the broker (its default otherwise).
# --keep DIR keeps the callgrind.out files (open them with callgrind_annotate or kcachegrind).
# --transport tls|ws: the clients connect over TLS (ECDSA P-256 certificates made here with the
# openssl command; full handshakes, in both runs so that they cancel out) or WebSocket frames, to
# a [[listener]] table of a TOML file (--config) beside the plain listener; the figure is then
# what a message costs over that transport.
# --persistence off|fsync|interval: the subscribers are persistent (ringmq-bench --clean-session
# 0) in both runs; with fsync or interval the broker also persists (--persistence true
# --durability D) to a fresh data directory per run under the script's temporary directory, so
# the figure is what a durable message costs the broker's threads (instructions only: the
# kernel's share of a write or an fdatasync, and the wait for it, are not counted). off is the
# in-memory figure for the same clients.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
build=build
scenario=fanout
qos=0
messages=10000
publishers=""
subscribers=""
saturate=""
max_inflight=""
keep=""
transport=""
persistence=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --scenario) scenario=$2; shift ;;
    --qos) qos=$2; shift ;;
    --messages) messages=$2; shift ;;
    --publishers) publishers=$2; shift ;;
    --subscribers) subscribers=$2; shift ;;
    --saturate) saturate=$2; shift ;;
    --max-inflight) max_inflight=$2; shift ;;
    --keep) keep=$2; shift ;;
    --transport) transport=$2; shift ;;
    --persistence) persistence=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "callgrind-per-message: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done

case "$scenario" in
  fanout) : "${publishers:=1}" "${subscribers:=100}" ;;
  fanin) : "${publishers:=100}" "${subscribers:=1}" ;;
  *) echo "callgrind-per-message: --scenario is fanout or fanin" >&2; exit 2 ;;
esac
case "$transport" in
  ""|tls|ws) ;;
  *) echo "callgrind-per-message: --transport is tls or ws" >&2; exit 2 ;;
esac
case "$persistence" in
  ""|off|fsync|interval) ;;
  *) echo "callgrind-per-message: --persistence is off, fsync or interval" >&2; exit 2 ;;
esac
broker_flags=()
[[ -n "$max_inflight" ]] && broker_flags+=(--max-inflight "$max_inflight")

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

# --transport: certificates (tls) and the bench options; the listener table is per run.
bench_transport=()
[[ -n $persistence ]] && bench_transport+=(--clean-session 0)
if [[ $transport == tls ]]; then
  command -v openssl >/dev/null || { echo "callgrind-per-message: the openssl command is missing (scripts/install-deps.sh)" >&2; exit 2; }
  key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  openssl req -x509 "${key[@]}" -nodes -keyout "$work/ca.key" -out "$work/ca.crt" -days 2 \
    -subj "/CN=callgrind CA" >/dev/null 2>&1
  openssl req "${key[@]}" -nodes -keyout "$work/server.key" -out "$work/server.csr" \
    -subj "/CN=localhost" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\n' >"$work/ext.cnf"
  openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -out "$work/server.crt" -days 2 -extfile "$work/ext.cnf" >/dev/null 2>&1
  bench_transport+=(--tls --cafile "$work/ca.crt")
elif [[ $transport == ws ]]; then
  bench_transport+=(--websocket)
fi

# measure NAME BENCH_ARGS...: prints "IR DELIVERED SQES CQES ITERATIONS".
measure() {
  local name=$1
  shift
  local port out=$work/callgrind.$name.out
  port=$(free_port)
  local bench_port=$port config=()
  if [[ -n $transport ]]; then
    bench_port=$(free_port)
    {
      echo "[[listener]]"
      echo "bind = \"127.0.0.1\""
      echo "port = $bench_port"
      if [[ $transport == tls ]]; then
        echo "certfile = \"$work/server.crt\""
        echo "keyfile = \"$work/server.key\""
      else
        echo "protocol = \"websockets\""
      fi
    } >"$work/$name.toml"
    config=(--config "$work/$name.toml")
  fi
  if [[ $persistence == fsync || $persistence == interval ]]; then
    config+=(--persistence true --data-dir "$work/data-$name" --durability "$persistence")
  fi
  valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
    "$RINGMQ" --port "$port" --threads 1 --log-level info --metrics-port 0 \
    --max-queued-messages 100000 "${broker_flags[@]}" "${config[@]}" >"$work/$name.log" 2>&1 &
  pid=$!
  local i
  for i in $(seq 1 600); do
    "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$port" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  local rc=0
  "$BENCH" "$scenario" --port "$bench_port" --qos "$qos" --payload 64 --subscribers "$subscribers" \
    --warmup 0 --drain 30 --quiet --json "$work/$name.json" --setup-timeout 120 \
    "${bench_transport[@]}" "$@" \
    >"$work/$name.bench" 2>&1 || rc=$?
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  # A baseline with publishers delivers nothing, which ringmq-bench reports as a failure.
  if [[ $rc -ne 0 && ! ( $name == baseline && -s $work/$name.json ) ]]; then
    echo "callgrind-per-message: ringmq-bench failed ($name):" >&2
    cat "$work/$name.bench" >&2
    exit 1
  fi
  [[ -n "$keep" ]] && mkdir -p "$keep" && cp "$out" "$keep/"
  "$PY" - "$out" "$work/$name.json" "$work/$name.log" <<'EOF'
import json, re, sys
ir = None
with open(sys.argv[1]) as f:
    for line in f:
        if line.startswith(("summary:", "totals:")):
            ir = int(line.split()[1])
with open(sys.argv[2]) as f:
    received = json.load(f)["verify"]["received"]
ops = {"sqes_submitted": 0, "cqes_reaped": 0, "loop_iterations": 0}
with open(sys.argv[3]) as f:
    for line in f:
        if "counters:" in line:
            for key in ops:
                m = re.search(key + r"=(\d+)", line)
                if m:
                    ops[key] = int(m.group(1))
print(ir, received, ops["sqes_submitted"], ops["cqes_reaped"], ops["loop_iterations"])
EOF
}

# The publisher sends `messages` in about 10 s of (valgrind-slowed) broker time.
# Paced: the publishers send `messages` in about 10 s of (valgrind-slowed) broker time. The
# baseline's rate is so low that no publisher is due to send within its second.
rate=$("$PY" -c "print($messages / 10 / $publishers)")
echo "baseline: $scenario, $publishers -> $subscribers clients, QoS $qos, no messages ..." >&2
read -r base_ir base_delivered base_sqes base_cqes base_iterations < <(measure baseline \
  --publishers "$publishers" --rate 0.000001 --duration 1)
if [[ -n "$saturate" ]]; then
  echo "workload: window-bound for $saturate s ..." >&2
  read -r work_ir delivered sqes cqes iterations < <(measure workload --publishers "$publishers" \
    --duration "$saturate")
else
  echo "workload: about $messages messages ..." >&2
  read -r work_ir delivered sqes cqes iterations < <(measure workload --publishers "$publishers" \
    --rate "$rate" --duration 10 --window 64)
fi

"$PY" - "$base_ir" "$work_ir" "$delivered" "$subscribers" "$scenario" "$qos" \
  "$base_sqes" "$sqes" "$base_cqes" "$cqes" "$base_iterations" "$iterations" "$transport" \
  "$persistence" <<'EOF'
import sys
base, total, delivered, subs = (int(x) for x in sys.argv[1:5])
scenario, qos = sys.argv[5], sys.argv[6]
sqes, cqes, iterations = (int(sys.argv[i + 1]) - int(sys.argv[i]) for i in (7, 9, 11))
print(f"baseline (start-up, connections, shutdown): {base:,} Ir")
print(f"workload: {total:,} Ir, {delivered:,} verified deliveries")
if delivered:
    per = (total - base) / delivered
    over = f", over {sys.argv[13]}" if sys.argv[13] else ""
    if sys.argv[14]:
        over += f", persistent subscribers, persistence {sys.argv[14]}"
    print(f"instructions per delivered message ({scenario} QoS {qos}, 64 B, 1 shard{over}): {per:,.0f}")
    if scenario == "fanout":
        print(f"(per published message, {subs} deliveries each: {per * subs:,.0f})")
    print(f"per delivered message: {sqes / delivered:.3f} SQEs submitted, "
          f"{cqes / delivered:.3f} CQEs reaped, {iterations / delivered:.3f} loop iterations")
EOF
