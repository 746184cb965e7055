#!/usr/bin/env bash
# Usage: scripts/bench-compare.sh [--quick] [--out DIR] [--no-docs] [--no-build] [--only NAME,...]
#
# Runs ringmq (2 shards) and Mosquitto (Debian's, generated config) one after the other, each
# freshly started for every scenario, under ringmq-bench over the standard matrix:
#   fanin 100->1, fanout 1->1000, pairs 500           QoS 0 and 1, 64-byte payloads, unlimited
#                                                     rate (window-bound), then pairs QoS 1 again
#                                                     at the same offered load for both brokers
#                                                     (half the slower one's throughput) for p99
#   the same six with MQTT 5.0 clients (*-v5)         every client at protocol level 5, empty
#                                                     property blocks; and pairs QoS 1 with 2 User
#                                                     Properties and a Topic Alias on every
#                                                     PUBLISH (pairs-q1-v5-props): the cost of
#                                                     properties
#   pairs light load (pairs-q1-light)                 500 pairs, QoS 1, 20 msgs/s each (a fixed
#                                                     10,000 msgs/s): broker CPU per message, p99;
#                                                     also against ringmq-floor --forward
#   connect                                           connect + CONNACK + DISCONNECT + wait for
#                                                     the broker's close, 32 at once; then again
#                                                     at a fixed 5,000/s (connect-fixed)
#   reject protocol, reject auth                      refused CONNECTs (level 9; bad password)
#   idle 10,000                                       connect rate, broker RSS per connection
#   TLS and WebSockets (issue 14)                     tls-connect-ec, tls-connect-rsa: connect
#                                                     over TLS, a full handshake per connection
#                                                     (ECDSA P-256, RSA 2048 certificates);
#                                                     tls-fanin-q0/q1, tls-pairs-q0/q1 over TLS
#                                                     (ECDSA P-256); ws-fanin-q0/q1 over
#                                                     WebSocket frames; each beside the plain-TCP
#                                                     run of the same broker
#   persistence (issue 15)                            persist-fanin-q1/q2 (100->1),
#                                                     persist-pairs-q1/q2 (500) with persistent
#                                                     subscribers (--clean-session 0), against
#                                                     ringmq with persistence off (ringmq),
#                                                     --persistence true --durability fsync
#                                                     (ringmq_fsync) and interval
#                                                     (ringmq_interval), and Mosquitto with
#                                                     `persistence true` (its default autosave:
#                                                     no fsync per message); the persistence
#                                                     counters of ringmq's /metrics over the
#                                                     measured window (fdatasyncs, bytes written)
# connect, connect-fixed and reject protocol also run against ringmq-floor (bench/floor/), a minimal epoll
# server that only accepts, answers a fixed CONNACK and closes: the floor of what any server
# pays per connection on this kernel, reported as ringmq/floor and Mosquitto/floor; and
# pairs-q1-light runs against `ringmq-floor --forward` (it also forwards each PUBLISH to its
# exact topic's subscriber and PUBACKs it): the floor of what any server pays per message.
# Those three runs (connect, reject protocol, pairs-q1-light) also run ringmq with one shard
# (`ringmq1`), one event loop thread like the floor, reported as ringmq1/floor beside ringmq/floor.
# It then prints the table with ringmq/Mosquitto ratios, writes the JSON of every run plus
# summary.json and PNG charts (scripts/bench-plot) under DIR (default bench/results/standard,
# or bench/results/quick), and regenerates the table in docs/performance.md between its marker
# comments (not with --quick or --no-docs).
#
#   --quick     short runs and small counts (under 2 minutes): checks that every run completes
#               and that its messages verify; asserts nothing about speed (CI smoke test)
#   --out DIR   where results go
#   --no-docs   do not touch docs/performance.md
#   --no-build  use the existing build/ (ringmq, ringmq-bench, ringmq-floor) as is
#   --only L    run only these run names (comma-separated, e.g. fanin-q0,connect,pairs-q1-v5)
#
# The auth variant of `reject` needs ringmq's --password-file; if this ringmq has no such flag
# the variant is skipped with a message (counted as skipped, not failed). The 5.0 runs need a
# ringmq that accepts protocol level 5 (probed with a raw level-5 CONNECT): against one that
# refuses it they are skipped with a message, or fail if RINGMQ_BENCH_REQUIRE_MQTT5=1 (the
# default once mqtt5_required below is 1).
#
# The TLS and WebSocket runs put a second listener beside the plain one: for Mosquitto its
# `listener` + cafile/certfile/keyfile or `protocol websockets`, for ringmq a [[listener]] table
# in a TOML file (--config) with the same certificates, which the script makes at run time with
# the openssl command. A ringmq that does not serve TLS or WebSockets on that listener (probed
# with a handshake) is skipped with a message, or fails if RINGMQ_BENCH_REQUIRE_TLS=1.
#
# The persistence runs give ringmq a data directory and Mosquitto a persistence_location under
# the run's temporary directory, each deleted when its broker stops. A ringmq without the
# --persistence flag has its persistent brokers skipped with a message, or failed if
# RINGMQ_BENCH_REQUIRE_PERSISTENCE=1.
#
# Exit status: 0 if every run completed and verified, 1 otherwise, 2 on a setup error.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
quick=0
out=""
docs=1
do_build=1
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    --no-docs) docs=0 ;;
    --no-build) do_build=0 ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-compare: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $quick -eq 1 ]] && docs=0
if [[ -z "$out" ]]; then
  if [[ $quick -eq 1 ]]; then out=bench/results/quick; else out=bench/results/standard; fi
fi

say() { printf '[bench-compare] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

# ---- dependencies and build
if ! command -v /usr/sbin/mosquitto >/dev/null 2>&1 || ! command -v mosquitto_passwd >/dev/null 2>&1; then
  say "Mosquitto is missing: scripts/install-deps.sh"
  scripts/install-deps.sh || die "could not install mosquitto"
fi
MOSQUITTO=/usr/sbin/mosquitto
[[ -x $MOSQUITTO ]] || die "$MOSQUITTO not found after install-deps"
if [[ $do_build -eq 1 ]]; then
  say "building release (scripts/build.sh release ringmq bench/loadgen/ringmq-bench bench/floor/ringmq-floor)"
  log=$(mktemp)
  if ! RINGMQ_JOBS=${RINGMQ_JOBS:-2} scripts/build.sh release ringmq bench/loadgen/ringmq-bench \
      bench/floor/ringmq-floor >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    die "build failed"
  fi
  rm -f "$log"
fi
RINGMQ=build/ringmq
BENCH=build/bench/loadgen/ringmq-bench
FLOOR=build/bench/floor/ringmq-floor
[[ -x $RINGMQ && -x $BENCH && -x $FLOOR ]] || die "$RINGMQ, $BENCH or $FLOOR not built"

# Idle connections need file descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.png "$out"/*.log
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
broker_pid=""
cleanup() {
  if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Credentials for the auth variant: a Mosquitto password file (PBKDF2-SHA512) that both brokers
# read. The load generator sends the right user name with a wrong password.
passwd_file=$work/passwd
mosquitto_passwd -b -c "$passwd_file" bench bench-secret >/dev/null 2>&1 || die "mosquitto_passwd failed"
# Mosquitto started as root drops to the user `mosquitto` before reading its password file.
chmod 0755 "$work"
chmod 0600 "$passwd_file"
if [[ $(id -u) -eq 0 ]] && id mosquitto >/dev/null 2>&1; then
  chown mosquitto "$passwd_file"
else
  chmod 0644 "$passwd_file"
fi
# Certificates for the TLS runs: per key type (ec: ECDSA P-256, rsa: RSA 2048) a CA and a broker
# certificate for 127.0.0.1 (the generator verifies both chain and address). Readable by the
# user `mosquitto` like the password file.
make_certs() {
  local kind=$1 dir=$work/certs-$1 key
  if [[ $kind == ec ]]; then key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else key=(-newkey rsa:2048); fi
  mkdir -p "$dir"
  openssl req -x509 "${key[@]}" -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 2 \
    -subj "/CN=bench-compare CA" >/dev/null 2>&1 || return 1
  openssl req "${key[@]}" -nodes -keyout "$dir/server.key" -out "$dir/server.csr" \
    -subj "/CN=localhost" >/dev/null 2>&1 || return 1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/server.crt" -days 2 -extfile "$dir/ext.cnf" >/dev/null 2>&1 || return 1
  chmod 0755 "$dir"
  chmod 0644 "$dir"/*
}
command -v openssl >/dev/null 2>&1 || die "the openssl command is missing: scripts/install-deps.sh"
make_certs ec || die "openssl could not make the ECDSA test certificates"
make_certs rsa || die "openssl could not make the RSA test certificates"
tls_required=${RINGMQ_BENCH_REQUIRE_TLS:-0}

ringmq_has_password_file=0
# 1 once ringmq serves MQTT 5.0 clients (issue 13): a ringmq that refuses level 5 then fails the
# 5.0 runs instead of skipping them.
mqtt5_required=${RINGMQ_BENCH_REQUIRE_MQTT5:-1}
# The help text is read whole first: `grep -q` in a pipe may exit before ringmq has written it
# all, and under pipefail ringmq's SIGPIPE would then read as "no such flag".
ringmq_help=$("$RINGMQ" --help 2>/dev/null || true)
grep -q -- '--password-file' <<<"$ringmq_help" && ringmq_has_password_file=1
ringmq_has_persistence=0
grep -q -- '--persistence ' <<<"$ringmq_help" && ringmq_has_persistence=1
persistence_required=${RINGMQ_BENCH_REQUIRE_PERSISTENCE:-0}

queued=1000000 # both brokers: per-session queue large enough that the window bounds it instead

# transport_listener KIND TPORT CERTS FORMAT: the second listener of a TLS or WebSocket run
# (KIND tls or ws) as Mosquitto config lines (FORMAT mosquitto) or a ringmq [[listener]] table
# (FORMAT toml).
transport_listener() {
  local kind=$1 tport=$2 certs=$3 format=$4
  if [[ $format == mosquitto ]]; then
    echo "listener $tport 127.0.0.1"
    if [[ $kind == tls ]]; then
      echo "cafile $certs/ca.crt"
      echo "certfile $certs/server.crt"
      echo "keyfile $certs/server.key"
    else
      echo "protocol websockets"
    fi
  else
    echo "[[listener]]"
    echo "bind = \"127.0.0.1\""
    echo "port = $tport"
    if [[ $kind == tls ]]; then
      echo "certfile = \"$certs/server.crt\""
      echo "keyfile = \"$certs/server.key\""
    else
      echo "protocol = \"websockets\""
    fi
  fi
}

# start_broker NAME AUTH PORT RUN: starts the broker, sets broker_pid, waits until it accepts.
# With TRANSPORT=tls-ec|tls-rsa|ws-none and TPORT set, the broker also listens on TPORT with TLS
# (those certificates) or WebSockets. ringmq_fsync and ringmq_interval are ringmq with persistence
# in data_dir (that durability) and /metrics on metrics_port; with PERSIST=1 Mosquitto persists
# to data_dir. Both set by the caller; the directory is made here.
start_broker() {
  local name=$1 auth=$2 port=$3
  local log=$out/$1-$4.log
  local kind="" certs=""
  if [[ -n ${TRANSPORT:-} ]]; then
    kind=${TRANSPORT%%-*}
    certs=$work/certs-${TRANSPORT#*-}
  fi
  if [[ $name == ringmq || $name == ringmq1 || $name == ringmq_fsync || $name == ringmq_interval ]]; then
    # Metrics off: nothing here scrapes them, and the default port may be taken on a shared
    # machine. The byte cap is raised with the message cap (it applies to QoS 1/2 too).
    # ringmq1: one shard, one event loop thread like the floor (see "How to read" in
    # docs/performance.md).
    local threads=2
    [[ $name == ringmq1 ]] && threads=1
    local args=(--port "$port" --threads "$threads" --max-queued-messages "$queued"
                --max-queued-bytes $((1 << 30)) --log-level warning)
    if [[ $name == ringmq_fsync || $name == ringmq_interval ]]; then
      mkdir -p "$data_dir"
      args+=(--metrics-port "$metrics_port" --persistence true --data-dir "$data_dir"
             --durability "${name#ringmq_}")
    else
      args+=(--metrics-port 0)
    fi
    [[ $auth == 1 ]] && args+=(--password-file "$passwd_file" --allow-anonymous false)
    if [[ -n $kind ]]; then
      local toml=$work/ringmq-$port.toml
      transport_listener "$kind" "$TPORT" "$certs" toml >"$toml"
      args+=(--config "$toml")
    fi
    "$RINGMQ" "${args[@]}" >"$log" 2>&1 &
  elif [[ $name == floor ]]; then
    # FLOOR_ARGS: --forward for the messaging run (see bench/floor/floor.cc).
    "$FLOOR" --bind 127.0.0.1 --port "$port" ${FLOOR_ARGS:-} >"$log" 2>&1 &
  else
    local conf=$work/mosquitto-$port.conf
    {
      echo "listener $port 127.0.0.1"
      echo "max_queued_messages $queued"
      echo "max_inflight_messages 512"  # ringmq's default max_inflight
      echo "set_tcp_nodelay true"
      echo "max_connections -1"
      if [[ ${PERSIST:-0} == 1 ]]; then
        # Mosquitto's persistence as shipped: the in-memory state is saved to mosquitto.db
        # every autosave_interval (1800 s) and at exit, never per message.
        mkdir -p "$data_dir"
        [[ $(id -u) -eq 0 ]] && id mosquitto >/dev/null 2>&1 && chown mosquitto "$data_dir"
        echo "persistence true"
        echo "persistence_location $data_dir/"
      else
        echo "persistence false"
      fi
      echo "log_dest stderr"
      echo "log_type error"
      echo "log_type warning"
      if [[ $auth == 1 ]]; then
        echo "allow_anonymous false"
        echo "password_file $passwd_file"
      else
        echo "allow_anonymous true"
      fi
      # Mosquitto 2.0.11 will not start with websockets listeners alone: the plain one stays.
      if [[ -n $kind ]]; then transport_listener "$kind" "$TPORT" "$certs" mosquitto; fi
    } >"$conf"
    "$MOSQUITTO" -c "$conf" >"$log" 2>&1 &
  fi
  broker_pid=$!
  local i
  for i in $(seq 1 100); do
    if "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$port" 2>/dev/null; then
      return 0
    fi
    kill -0 "$broker_pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.05
  done
  return 1
}

# serves_transport KIND PORT CERTS: true if the listener on PORT completes a TLS handshake
# verified with CERTS/ca.crt (KIND tls) or a WebSocket upgrade to subprotocol mqtt (KIND ws).
serves_transport() {
  "$PY" - "$@" <<'EOF'
import base64, hashlib, os, socket, ssl, sys, time
kind, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 5
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), 2)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
s.settimeout(5)
try:
    if kind == "tls":
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
        ctx.wrap_socket(s, server_hostname="127.0.0.1").close()
        sys.exit(0)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    sys.exit(0 if reply.startswith(b"HTTP/1.1 101") and accept.encode() in reply else 1)
except (OSError, ssl.SSLError):
    sys.exit(1)
EOF
}

stop_broker() {
  [[ -n "$broker_pid" ]] || return 0
  kill "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=""
}

# auth_enforced PORT: true if the broker on PORT refuses user `bench` with a wrong password.
auth_enforced() {
  "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.settimeout(5)
cid, user, pw = b"probe", b"bench", b"wrong"
body = (b"\x00\x04MQTT\x04\xc2\x00\x00" + len(cid).to_bytes(2, "big") + cid
        + len(user).to_bytes(2, "big") + user + len(pw).to_bytes(2, "big") + pw)
s.sendall(bytes([0x10, len(body)]) + body)
try:
    reply = s.recv(4)
except OSError:
    reply = b""
sys.exit(1 if len(reply) == 4 and reply[3] == 0 else 0)
EOF
}

# serves_mqtt5 PORT: true if the broker on PORT answers a level-5 CONNECT (empty properties)
# with a 5.0 CONNACK 0x00 (flags, reason code, property block); a refusal in either layout, e.g.
# the 3.1.1 CONNACK 0x01 of a broker that does not speak 5.0, is false.
serves_mqtt5() {
  "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.settimeout(5)
cid = b"probe5"
body = b"\x00\x04MQTT\x05\x02\x00\x00\x00" + len(cid).to_bytes(2, "big") + cid
s.sendall(bytes([0x10, len(body)]) + body)
reply = b""
try:
    while len(reply) < 2 or len(reply) < 2 + reply[1]:
        chunk = s.recv(64)
        if not chunk:
            break
        reply += chunk
except OSError:
    pass
sys.exit(0 if len(reply) >= 5 and reply[0] == 0x20 and reply[1] >= 3 and reply[3] == 0 else 1)
EOF
}

# uses_mqtt5 BENCH_ARGS...: true if the arguments ask for 5.0 clients (--protocol 5 or mixed).
uses_mqtt5() {
  local previous="" arg
  for arg in "$@"; do
    [[ $previous == --protocol && $arg != 3.1.1 && $arg != 4 ]] && return 0
    previous=$arg
  done
  return 1
}

failures=0
skipped=0
runs=0

# run NAME AUTH BENCH_ARGS...: the scenario against ringmq, then against Mosquitto (and then
# against ringmq-floor when RUN_BROKERS says so, e.g. RUN_BROKERS="ringmq mosquitto floor" run ...).
run() {
  local name=$1 auth=$2
  shift 2
  if [[ -n "$only" && ",$only," != *",$name,"* ]]; then return 0; fi
  local broker
  for broker in ${RUN_BROKERS:-ringmq mosquitto}; do
    if [[ $broker == ringmq && $auth == 1 && $ringmq_has_password_file == 0 ]]; then
      say "SKIP $name on ringmq: this ringmq has no --password-file flag yet (auth variant needs it)"
      skipped=$((skipped + 1))
      continue
    fi
    if [[ $broker == ringmq_fsync || $broker == ringmq_interval ]] && [[ $ringmq_has_persistence == 0 ]]; then
      if [[ $persistence_required == 1 ]]; then
        say "FAIL $name on $broker: this ringmq has no --persistence flag"
        failures=$((failures + 1))
      else
        say "SKIP $name on $broker: this ringmq has no --persistence flag yet (issue 15)"
        skipped=$((skipped + 1))
      fi
      continue
    fi
    local port extra=()
    port=$(free_port)
    if [[ -n ${TRANSPORT:-} ]]; then TPORT=$(free_port); fi
    data_dir=$work/data-$broker-$name
    metrics_port=""
    if [[ $broker == ringmq_fsync || $broker == ringmq_interval ]]; then
      metrics_port=$(free_port)
      extra=(--metrics-port "$metrics_port" --metrics-match persist)
    fi
    if ! start_broker "$broker" "$auth" "$port" "$name"; then
      if [[ -n ${TRANSPORT:-} && $broker == ringmq* && $tls_required != 1 ]]; then
        # A ringmq without [[listener]] tables (or without the TLS/ws layer) refuses the config.
        say "SKIP $name on $broker: it did not start with a ${TRANSPORT%%-*} [[listener]] (not yet in this ringmq): $(tail -n 1 "$out/$broker-$name.log")"
        skipped=$((skipped + 1))
        stop_broker
        continue
      fi
      say "FAIL $name on $broker: broker did not start"
      failures=$((failures + 1))
      stop_broker
      continue
    fi
    if [[ $broker == ringmq && $auth == 1 ]] && ! auth_enforced "$port"; then
      say "SKIP $name on ringmq: it takes --password-file but accepted a wrong password (auth not implemented in this build)"
      skipped=$((skipped + 1))
      stop_broker
      continue
    fi
    local bench_port=$port
    if [[ -n ${TRANSPORT:-} ]]; then
      bench_port=$TPORT
      if ! serves_transport "${TRANSPORT%%-*}" "$TPORT" "$work/certs-${TRANSPORT#*-}"; then
        if [[ $broker == ringmq* && $tls_required != 1 ]]; then
          say "SKIP $name on $broker: no ${TRANSPORT%%-*} listener answers on its [[listener]] port (not yet in this ringmq)"
          skipped=$((skipped + 1))
        else
          say "FAIL $name on $broker: no ${TRANSPORT%%-*} listener answers on port $TPORT"
          failures=$((failures + 1))
        fi
        stop_broker
        continue
      fi
    fi
    if [[ $broker == ringmq* ]] && uses_mqtt5 "$@" && ! serves_mqtt5 "$port"; then
      if [[ $mqtt5_required == 1 ]]; then
        say "FAIL $name on $broker: a level-5 CONNECT was refused (this ringmq does not serve MQTT 5.0)"
        failures=$((failures + 1))
      else
        say "SKIP $name on $broker: a level-5 CONNECT was refused (this ringmq does not serve MQTT 5.0 yet)"
        skipped=$((skipped + 1))
      fi
      stop_broker
      continue
    fi
    local json=$out/$broker-$name.json rc=0
    runs=$((runs + 1))
    timeout --kill-after=10 600 "$BENCH" "$@" "${extra[@]}" --port "$bench_port" \
      --broker-pid "$broker_pid" --label "$broker" --json "$json" --quiet >"$work/run.out" \
      2>"$work/run.err" || rc=$?
    printf '%-10s %-20s %s\n' "$broker" "$name" "$(cat "$work/run.out")" >&2
    if [[ $rc -ne 0 ]]; then
      say "FAIL $name on $broker (ringmq-bench exit status $rc)"
      sed 's/^/    /' "$work/run.err" >&2
      failures=$((failures + 1))
    fi
    stop_broker
    rm -rf "$data_dir"
  done
}

if [[ $quick -eq 1 ]]; then
  D=(--duration 1 --warmup 0.3 --drain 3)
  PERSIST_RUNS=(persist-fanin-q1 persist-pairs-q2)
  FANIN=(--publishers 20 --subscribers 1)
  FANOUT=(--publishers 1 --subscribers 100)
  PAIRS=(--publishers 50)
  IDLE=500
else
  D=(--duration 10 --warmup 2 --drain 5)
  FANIN=(--publishers 100 --subscribers 1)
  FANOUT=(--publishers 1 --subscribers 1000)
  PAIRS=(--publishers 500)
  IDLE=10000
  PERSIST_RUNS=(persist-fanin-q1 persist-fanin-q2 persist-pairs-q1 persist-pairs-q2)
fi
P=(--payload 64 --window 16)

start=$SECONDS
for qos in 0 1; do
  run "fanin-q$qos" 0 fanin --qos "$qos" "${P[@]}" "${FANIN[@]}" "${D[@]}"
  run "fanout-q$qos" 0 fanout --qos "$qos" "${P[@]}" "${FANOUT[@]}" "${D[@]}"
  run "pairs-q$qos" 0 pairs --qos "$qos" "${P[@]}" "${PAIRS[@]}" "${D[@]}"
done

# MQTT 5.0 clients (issue 13): the same runs with every client at level 5 and empty property
# blocks, to compare with the 3.1.1 runs above; then the cost of properties: 2 User Properties
# (29 bytes each) and a Topic Alias on every PUBLISH, forwarded and verified.
V5=(--protocol 5)
for qos in 0 1; do
  run "fanin-q$qos-v5" 0 fanin --qos "$qos" "${V5[@]}" "${P[@]}" "${FANIN[@]}" "${D[@]}"
  run "fanout-q$qos-v5" 0 fanout --qos "$qos" "${V5[@]}" "${P[@]}" "${FANOUT[@]}" "${D[@]}"
  run "pairs-q$qos-v5" 0 pairs --qos "$qos" "${V5[@]}" "${P[@]}" "${PAIRS[@]}" "${D[@]}"
done
run "pairs-q1-v5-props" 0 pairs --qos 1 "${V5[@]}" --user-properties 2 --topic-alias "${P[@]}" \
  "${PAIRS[@]}" "${D[@]}"

# Latency at the same offered load: half the slower broker's pairs QoS 1 throughput.
rate=$("$PY" - "$out" "${PAIRS[1]}" <<'EOF'
import json, sys, os
out, pubs = sys.argv[1], int(sys.argv[2])
rates = []
for b in ("ringmq", "mosquitto"):
    try:
        with open(os.path.join(out, f"{b}-pairs-q1.json")) as f:
            rates.append(json.load(f)["messages"]["delivered_per_s"])
    except (OSError, KeyError, ValueError):
        pass
print(f"{max(min(rates) / 2 / pubs, 1.0):.2f}" if rates else "20")
EOF
)
say "pairs QoS 1 at a fixed offered load: $rate msg/s per publisher"
run "pairs-q1-fixed" 0 pairs --qos 1 "${P[@]}" "${PAIRS[@]}" "${D[@]}" --rate "$rate"

# Light load: 20 msgs/s per publisher whatever the broker (10,000 msgs/s with 500 pairs), also
# against the forwarding floor (what any server pays per message at this load on this kernel).
RUN_BROKERS="ringmq ringmq1 mosquitto floor" FLOOR_ARGS=--forward run "pairs-q1-light" 0 pairs --qos 1 "${P[@]}" "${PAIRS[@]}" "${D[@]}" --rate 20

# Connection paths: 32 plain clients in a loop (see "How the connect scenarios behave" in
# docs/performance.md) on two generator threads, each server measured against the floor.
C=(--clients 32 --threads 2)
RUN_BROKERS="ringmq ringmq1 mosquitto floor" run connect 0 connect "${C[@]}" "${D[@]}"
# The same at a fixed 5,000 connections/s (156.25 per slot), below every server's saturation:
# as fast as possible, whichever side saturates (the generator or the server) changes who pays
# for waking whom, so this run measures all three servers in the same regime.
RUN_BROKERS="ringmq mosquitto floor" run connect-fixed 0 connect "${C[@]}" "${D[@]}" --rate 156.25
RUN_BROKERS="ringmq ringmq1 mosquitto floor" run reject-protocol 0 reject --reject-kind protocol \
  "${C[@]}" "${D[@]}"
run reject-auth 1 reject --reject-kind auth --username bench --bad-password wrong "${C[@]}" "${D[@]}"
run idle 0 idle --clients "$IDLE" --duration 2 --handshakes 64 --setup-timeout 120

# TLS and WebSockets (issue 14). Handshakes: the connect scenario over TLS, every connection a
# full handshake (the generator keeps no session), 32 at once on two generator threads like the
# plain connect run it is compared with. Messages: fanin and pairs over TLS with the ECDSA
# certificates, fanin over WebSocket frames, compared with the plain runs above.
TLS_EC=(--tls --cafile "$work/certs-ec/ca.crt")
TLS_RSA=(--tls --cafile "$work/certs-rsa/ca.crt")
TRANSPORT=tls-ec run tls-connect-ec 0 connect "${C[@]}" "${D[@]}" "${TLS_EC[@]}"
TRANSPORT=tls-rsa run tls-connect-rsa 0 connect "${C[@]}" "${D[@]}" "${TLS_RSA[@]}"
for qos in 0 1; do
  TRANSPORT=tls-ec run "tls-fanin-q$qos" 0 fanin --qos "$qos" "${P[@]}" "${FANIN[@]}" "${D[@]}" \
    "${TLS_EC[@]}"
  TRANSPORT=tls-ec run "tls-pairs-q$qos" 0 pairs --qos "$qos" "${P[@]}" "${PAIRS[@]}" "${D[@]}" \
    "${TLS_EC[@]}"
  TRANSPORT=ws-none run "ws-fanin-q$qos" 0 fanin --qos "$qos" "${P[@]}" "${FANIN[@]}" "${D[@]}" \
    --websocket
done

# Persistence (issue 15): persistent subscribers (Clean Session 0, fixed client ids; every broker
# starts empty) at QoS 1 and 2. Beside ringmq with persistence off, ringmq with each durability
# and Mosquitto with `persistence true` (autosave only: nothing reaches the disk in the window).
# --quick runs one fanin and one pairs row.
PERSISTENT=(--clean-session 0)
for persist_run in "${PERSIST_RUNS[@]}"; do
  scenario=${persist_run#persist-}
  qos=${scenario##*-q}
  scenario=${scenario%-q*}
  if [[ $scenario == fanin ]]; then shape=("${FANIN[@]}"); else shape=("${PAIRS[@]}"); fi
  PERSIST=1 RUN_BROKERS="ringmq ringmq_fsync ringmq_interval mosquitto" run "$persist_run" 0 \
    "$scenario" --qos "$qos" "${PERSISTENT[@]}" "${P[@]}" "${shape[@]}" "${D[@]}"
done
say "runs done in $((SECONDS - start)) s: $runs runs, $failures failed, $skipped skipped"

# ---- table, charts, docs
plot_args=("$out" --summary "$out/summary.json" --table "$out/table.md")
[[ $quick -eq 0 ]] && plot_args+=(--png)
if [[ $docs -eq 1 ]]; then
  plot_args+=(--docs docs/performance.md --command "scripts/bench-compare.sh")
fi
if ! "$PY" scripts/bench-plot "${plot_args[@]}"; then
  say "FAIL bench-plot"
  failures=$((failures + 1))
fi
say "results: $out/ ($((SECONDS - start)) s)"
if [[ $failures -ne 0 ]]; then
  say "$failures runs failed"
  exit 1
fi
exit 0
