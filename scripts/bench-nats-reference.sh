#!/usr/bin/env bash
# Usage: scripts/bench-nats-reference.sh [--quick] [--out DIR] [--no-build] [--only NAME,...]
#
# Reference measurements for the ringmq cluster over NATS (issue 16), on this machine:
#
#   NATS's own MQTT support (an `mqtt` listener on nats-server, JetStream on, store in a temporary
#   directory), under ringmq-bench with the standard shapes of scripts/bench-compare.sh:
#     mqtt-fanin-q0       fanin 100->1, QoS 0, 64-byte payloads, window 16
#     mqtt-pairs-q0       pairs 500, QoS 0
#     mqtt-pairs-q1       pairs 500, QoS 1 (NATS keeps QoS 1 state in JetStream)
#     mqtt-pairs-q1-50    pairs 50, QoS 1 (clustered on three servers, NATS MQTT cannot set up
#                         500 QoS 1 pairs here: its JetStream consumers time out)
#     mqtt-connect        connect + CONNACK + DISCONNECT, 32 clients on 2 generator threads
#   reported as delivered msgs (accepted CONNECTs) per second and per nats-server CPU-second.
#   The same five on NATS MQTT clustered by NATS itself (what a user would deploy instead of a
#   ringmq cluster): 3 nats-servers with routes, JetStream clustered, an `mqtt` listener on
#   each, default stream replicas; ringmq-bench gets the three MQTT ports and places clients as
#   it does for a ringmq cluster (publishers and subscribers on different servers, connectors
#   spread), every server's CPU counted:
#     mqtt3-fanin-q0, mqtt3-pairs-q0, mqtt3-pairs-q1, mqtt3-pairs-q1-50, mqtt3-connect
#
#   Core NATS with no MQTT, under ringmq-nats-bench (bench/nats/): the floor cost of the hop
#   between ringmq nodes:
#     core1-link          1 publisher -> 1 subscriber connection, window 1024: the shape of a
#                         ringmq node's NATS link (every cross-node message on one connection
#                         each way, writes batched), one nats-server
#     core1-link-light    the same at a fixed 10,000 msgs/s: CPU per message and latency
#     core1-fanin         100 publishers -> 1 subscriber, one nats-server
#     core1-pairs         500 publisher/subscriber pairs, one nats-server
#     core1-pairs-light   the same at 20 msgs/s per publisher (10,000 msgs/s): CPU per message
#                         and latency at light load
#     core2-link, core2-link-light, core2-fanin, core2-pairs, core2-pairs-light
#     kv1-cas, kv3-cas    JetStream key-value compare-and-set puts (header
#                         Nats-Expected-Last-Subject-Sequence), 100 keys, one put in flight per
#                         key, on one server (replicas 1) and on three (replicas 3, every
#                         server's CPU counted): puts per server CPU-second
#     js1-stream, js3-stream
#                         JetStream publishes with acks to a stream, 100 publishers with 16 in
#                         flight each, replicas 1 (one server) and 3 (three servers)
#                         the same across two clustered nats-servers: publishers on server A,
#                         subscribers on server B, the CPU of both servers counted
#
# Each run gets freshly started servers (config files written to a temporary directory at run
# time, free 127.0.0.1 ports) and is bounded by timeout(1). Results: one line (and for ringmq-bench
# its JSON) per run under DIR (default bench/results/nats-reference, or
# bench/results/nats-reference-quick), a summary table on stderr and in DIR/table.md, and the
# machine's load and busiest processes before each run in DIR/load.log (the machine has 2 cores;
# anything else running shows there).
#
#   --quick     short runs and small counts (about a minute): checks that every run completes
#   --out DIR   where results go
#   --no-build  use the existing build/ binaries as they are
#   --only L    run only these run names (comma-separated)
#
# Exit status: 0 if every run completed (and core runs lost nothing), 1 otherwise, 2 on a set-up
# error.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
NATS=${RINGMQ_NATS_SERVER:-/usr/sbin/nats-server}
quick=0
out=""
do_build=1
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --no-build) do_build=0 ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-nats-reference: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "$out" ]]; then
  out=bench/results/nats-reference
  [[ $quick -eq 1 ]] && out=bench/results/nats-reference-quick
fi

say() { printf '[bench-nats-reference] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

[[ -x $NATS ]] || die "$NATS is missing: scripts/install-deps.sh installs nats-server"
if [[ $do_build -eq 1 ]]; then
  [[ -d build ]] || meson setup build >/dev/null || die "meson setup failed"
  ninja -C build -j "${RINGMQ_JOBS:-2}" bench/loadgen/ringmq-bench bench/nats/ringmq-nats-bench \
    >/dev/null || die "build failed"
fi
BENCH=build/bench/loadgen/ringmq-bench
CORE=build/bench/nats/ringmq-nats-bench
[[ -x $BENCH && -x $CORE ]] || die "$BENCH or $CORE not built"

mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt "$out"/*.log "$out"/table.md
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-nats-reference.XXXXXX")
pids=()
stop_servers() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  local port=$1 pid=$2 log=$3 i
  for i in $(seq 1 200); do
    if "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$port" 2>/dev/null; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.05
  done
  return 1
}

# start_mqtt: one nats-server with JetStream and an MQTT listener on $mqtt_port; sets server_pids.
start_mqtt() {
  local dir=$work/mqtt-$1
  mkdir -p "$dir"
  local port
  port=$(free_port)
  mqtt_port=$(free_port)
  cat >"$dir/nats.conf" <<EOF
server_name: mqtt-reference
listen: 127.0.0.1:$port
jetstream { store_dir: "$dir/js" }
mqtt { listen: 127.0.0.1:$mqtt_port }
EOF
  "$NATS" -c "$dir/nats.conf" >"$out/$1-server.log" 2>&1 &
  pids+=($!)
  server_pids=("$!")
  wait_port "$mqtt_port" "$!" "$out/$1-server.log"
}

# wait_mqtt_ready PORT...: every NATS MQTT listener answers a CONNECT with CONNACK 0 (NATS's
# MQTT needs its JetStream meta leader and its streams), within 60 s.
wait_mqtt_ready() {
  "$PY" - "$@" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 60
for port in map(int, sys.argv[1:]):
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as s:
                s.settimeout(5)
                cid = f"ready-{port}".encode()
                body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
                s.sendall(bytes([0x10, len(body)]) + body)
                ack = s.recv(4)
                if ack[:2] == b"\x20\x02" and ack[3:4] == b"\x00":
                    s.sendall(b"\xe0\x00")
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.25)
EOF
}

# start_core N NAME [JS [MQTT]]: N clustered nats-servers (JetStream only with JS=1, else core
# routing only; an MQTT listener on each with MQTT=1, which needs JS=1); sets client_ports,
# mqtt_ports and server_pids.
start_core() {
  local n=$1 name=$2 js=${3:-0} mqtt=${4:-0} i j
  local dir=$work/core-$name
  mkdir -p "$dir"
  client_ports=()
  mqtt_ports=()
  server_pids=()
  local route_ports=() http_ports=()
  for ((i = 0; i < n; i++)); do
    client_ports+=("$(free_port)")
    route_ports+=("$(free_port)")
    http_ports+=("$(free_port)")
    [[ $mqtt -eq 1 ]] && mqtt_ports+=("$(free_port)")
  done
  for ((i = 0; i < n; i++)); do
    {
      echo "server_name: core$i"
      echo "listen: 127.0.0.1:${client_ports[$i]}"
      echo "http: 127.0.0.1:${http_ports[$i]}"
      [[ $js -eq 1 ]] && echo "jetstream { store_dir: \"$dir/js$i\" }"
      [[ $mqtt -eq 1 ]] && echo "mqtt { listen: 127.0.0.1:${mqtt_ports[$i]} }"
      if [[ $n -gt 1 ]]; then
        echo "cluster {"
        echo "  name: reference"
        echo "  listen: 127.0.0.1:${route_ports[$i]}"
        echo "  routes: ["
        for ((j = 0; j < n; j++)); do
          [[ $j -ne $i ]] && echo "    nats-route://127.0.0.1:${route_ports[$j]}"
        done
        echo "  ]"
        echo "}"
      fi
    } >"$dir/core$i.conf"
    "$NATS" -c "$dir/core$i.conf" >"$out/$name-server$i.log" 2>&1 &
    pids+=($!)
    server_pids+=("$!")
  done
  for ((i = 0; i < n; i++)); do
    wait_port "${client_ports[$i]}" "${server_pids[$i]}" "$out/$name-server$i.log" || return 1
  done
  # Every server routed to every other (its /routez), within 20 s.
  for ((i = 0; i < n; i++)); do
    "$PY" - "${http_ports[$i]}" "$((n - 1))" <<'EOF' || { say "server $i not routed"; return 1; }
import json, sys, time, urllib.request
port, want = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/routez", timeout=1) as r:
            if json.load(r).get("num_routes", 0) >= want:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
EOF
  done
}

note_load() {
  {
    echo "=== $1 $(date -u +%FT%TZ)"
    uptime
    # top's second frame: CPU over the last half second (ps shows lifetime averages).
    top -b -n 2 -d 0.5 -w 120 | awk '/^top -/ { frame++ } frame == 2' | sed -n '7,13p'

  } >>"$out/load.log"
}

failures=0
rows=()
selected() { [[ -z "$only" || ",$only," == *",$1,"* ]]; }

# mqtt_run NAME BENCH_ARGS...
mqtt_run() {
  local name=$1
  shift
  selected "$name" || return 0
  note_load "$name"
  if ! start_mqtt "$name"; then
    say "FAIL $name: nats-server with MQTT did not start"
    failures=$((failures + 1))
    stop_servers
    return
  fi
  mqtt_bench "$name" 300 "$@" --port "$mqtt_port" --broker-pid "${server_pids[0]}" \
    --label nats-mqtt
}

# mqtt_bench NAME SECONDS BENCH_ARGS...: one ringmq-bench run within SECONDS, its line reported,
# a failure counted; then the servers stopped.
mqtt_bench() {
  local name=$1 seconds=$2 rc=0
  shift 2
  timeout --kill-after=10 "$seconds" "$BENCH" "$@" --json "$out/$name.json" --quiet \
    >"$out/$name.txt" 2>"$work/err" || rc=$?
  say "$name: $(cat "$out/$name.txt")"
  if [[ $rc -ne 0 ]]; then
    say "FAIL $name (ringmq-bench exit status $rc)"
    sed 's/^/    /' "$work/err" >&2
    failures=$((failures + 1))
  fi
  rows+=("$name")
  stop_servers
}

# mqtt_cluster_run NAME SERVERS BENCH_ARGS...: NATS MQTT on SERVERS clustered nats-servers.
mqtt_cluster_run() {
  local name=$1 n=$2
  shift 2
  selected "$name" || return 0
  note_load "$name"
  if ! start_core "$n" "$name" 1 1 || ! wait_mqtt_ready "${mqtt_ports[@]}"; then
    say "FAIL $name: clustered nats-servers with MQTT did not start"
    failures=$((failures + 1))
    stop_servers
    return
  fi
  local ports pid_list
  ports=$(IFS=,; echo "${mqtt_ports[*]}")
  pid_list=$(IFS=,; echo "${server_pids[*]}")
  # Setup is not measured; NATS MQTT creates every session's JetStream state replicated on
  # three servers, which takes minutes for 1000 QoS 1 clients on a loaded machine.
  # Clients are set up a few at a time: NATS MQTT refuses QoS 1 subscriptions (SUBACK 0x80) when
  # the JetStream consumers of a burst of them cannot be created in time.
  mqtt_bench "$name" 600 "$@" --setup-timeout 300 --handshakes 4 --port "$ports" \
    --broker-pid "$pid_list" --label "nats-mqtt-$n"
}

# core_run NAME SERVERS SCENARIO ARGS...: with 2 servers, publishers on the first and
# subscribers on the second. JS=1 in the environment: the servers run JetStream.
core_run() {
  local name=$1 n=$2
  shift 2
  selected "$name" || return 0
  note_load "$name"
  if ! start_core "$n" "$name" "${JS:-0}"; then
    say "FAIL $name: nats-server did not start"
    failures=$((failures + 1))
    stop_servers
    return
  fi
  local pid_args=() pid rc=0
  for pid in "${server_pids[@]}"; do pid_args+=(--server-pid "$pid"); done
  timeout --kill-after=10 300 "$CORE" "$@" --pub-port "${client_ports[0]}" \
    --sub-port "${client_ports[$((n - 1))]}" "${pid_args[@]}" --label "$name" \
    >"$out/$name.txt" 2>"$work/err" || rc=$?
  say "$name: $(cat "$out/$name.txt")"
  if [[ $rc -ne 0 ]]; then
    say "FAIL $name (ringmq-nats-bench exit status $rc)"
    sed 's/^/    /' "$work/err" >&2
    failures=$((failures + 1))
  fi
  rows+=("$name")
  stop_servers
}

if [[ $quick -eq 1 ]]; then
  D=(--duration 1.5 --warmup 1 --drain 3)
  FANIN=(--publishers 20 --subscribers 1)
  PAIRS=(--publishers 50)
  PAIRS50=(--publishers 5)
else
  D=(--duration 10 --warmup 2 --drain 5)
  FANIN=(--publishers 100 --subscribers 1)
  PAIRS=(--publishers 500)
  PAIRS50=(--publishers 50)
fi
P=(--payload 64 --window 16)
start=$SECONDS

mqtt_run mqtt-fanin-q0 fanin --qos 0 "${P[@]}" "${FANIN[@]}" "${D[@]}"
mqtt_run mqtt-pairs-q0 pairs --qos 0 "${P[@]}" "${PAIRS[@]}" "${D[@]}"
mqtt_run mqtt-pairs-q1 pairs --qos 1 "${P[@]}" "${PAIRS[@]}" "${D[@]}"
mqtt_run mqtt-pairs-q1-50 pairs --qos 1 "${P[@]}" "${PAIRS50[@]}" "${D[@]}"
mqtt_run mqtt-connect connect --clients 32 --threads 2 "${D[@]}"
mqtt_cluster_run mqtt3-fanin-q0 3 fanin --qos 0 "${P[@]}" "${FANIN[@]}" "${D[@]}"
mqtt_cluster_run mqtt3-pairs-q0 3 pairs --qos 0 "${P[@]}" "${PAIRS[@]}" "${D[@]}"
mqtt_cluster_run mqtt3-pairs-q1 3 pairs --qos 1 "${P[@]}" "${PAIRS[@]}" "${D[@]}"
mqtt_cluster_run mqtt3-pairs-q1-50 3 pairs --qos 1 "${P[@]}" "${PAIRS50[@]}" "${D[@]}"
mqtt_cluster_run mqtt3-connect 3 connect --clients 32 --threads 2 "${D[@]}"

for n in 1 2; do
  # The shape of a ringmq node's NATS link: one publishing and one subscribing connection
  # carrying every cross-node message, many in flight (window 1024), then the same at a fixed
  # 10,000 msgs/s.
  core_run "core$n-link" "$n" fanin --payload 64 --publishers 1 --subscribers 1 --window 1024 \
    "${D[@]}"
  core_run "core$n-link-light" "$n" fanin --payload 64 --publishers 1 --subscribers 1 \
    --window 1024 --rate 10000 "${D[@]}"
  core_run "core$n-fanin" "$n" fanin "${P[@]}" "${FANIN[@]}" "${D[@]}"
  core_run "core$n-pairs" "$n" pairs "${P[@]}" "${PAIRS[@]}" "${D[@]}"
  core_run "core$n-pairs-light" "$n" pairs "${P[@]}" "${PAIRS[@]}" "${D[@]}" --rate 20
done
# A JetStream key-value compare-and-set per client (what client-id ownership would cost per
# CONNECT if every CONNECT wrote it): 100 clients, one put at a time each, on one server with
# one replica and on three servers with three.
JS=1 core_run kv1-cas 1 kv --publishers 100 --kv-replicas 1 "${D[@]}"
JS=1 core_run kv3-cas 3 kv --publishers 100 --kv-replicas 3 "${D[@]}"
# JetStream publishes with acks, 16 in flight per publisher (QoS 1 through JetStream at best).
JS=1 core_run js1-stream 1 stream --publishers 100 --window 16 --kv-replicas 1 "${D[@]}"
JS=1 core_run js3-stream 3 stream --publishers 100 --window 16 --kv-replicas 3 "${D[@]}"
say "runs done in $((SECONDS - start)) s, $failures failed"

# ---- table
"$PY" - "$out" "${rows[@]}" >"$out/table.md" <<'EOF'
import json, os, sys
out, rows = sys.argv[1], sys.argv[2:]
print("| run | delivered (accepted CONNECTs)/s | server CPU s | per server CPU-second | server CPU us/msg | p50 us | p99 us |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in rows:
    js = os.path.join(out, f"{name}.json")
    if os.path.exists(js):
        with open(js) as f:
            r = json.load(f)
        cpu = r["broker"]["cpu_s"]
        if "connect" in r:  # accepted CONNECTs
            done = r["connect"]["accepted"]
        else:
            done = r["messages"]["delivered"]
        rate = done / r["measured_s"] if r["measured_s"] else 0  # 0: the run failed in setup
        per_cpu = done / cpu if cpu else 0
        lat = r.get("latency_us", {})
        print(f"| {name} | {rate:,.0f} | {cpu:.2f} | {per_cpu:,.0f} | "
              f"{(1e6 / per_cpu) if per_cpu else 0:.2f} | {lat.get('p50', 0):.0f} | "
              f"{lat.get('p99', 0):.0f} |")
        continue
    try:
        with open(os.path.join(out, f"{name}.txt")) as f:
            kv = dict(item.split("=", 1) for item in f.read().split() if "=" in item)
    except OSError:
        kv = {}
    if "delivered_per_s" not in kv:
        print(f"| {name} | failed | | | | | |")
        continue
    print(f"| {name} | {float(kv['delivered_per_s']):,.0f} | {float(kv['server_cpu_s']):.2f} | "
          f"{float(kv['msgs_per_server_cpu_s']):,.0f} | {float(kv['server_cpu_us_per_msg']):.2f} | "
          f"{kv['latency_us_p50']} | {kv['latency_us_p99']} |")
EOF
cat "$out/table.md" >&2
say "results: $out/ ($((SECONDS - start)) s)"
[[ $failures -eq 0 ]] || exit 1
exit 0
