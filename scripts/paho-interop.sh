#!/usr/bin/env bash
# Usage: scripts/paho-interop.sh PAHO_TESTING_DIR [unittest args...]
#
# Runs the Eclipse Paho MQTT 3.1.1 interoperability tests (interoperability/client_test.py of
# https://github.com/eclipse/paho.mqtt.testing) against a freshly built ringmq. Nothing is
# downloaded: PAHO_TESTING_DIR is an existing checkout of paho.mqtt.testing (its root or its
# interoperability/ folder). See docs/interop.md for the expected result.
#
#   1. builds the release broker (scripts/build.sh release ringmq, i.e. build/ringmq)
#   2. starts it on a free 127.0.0.1 port with 2 shards (--log-level debug, log kept in a temp dir)
#   3. runs client_test.py with /usr/bin/python3 under `timeout 600`
#   4. stops the broker with SIGTERM and prints one line:
#        paho-interop: N passed, M failed (names) of T; ...
# The exit status is client_test.py's (0 only if every test passed; 124 on timeout).
#
# Extra arguments go to unittest, e.g. `-v` or `Test.test_keepalive` to run one test.
#
# Environment: RINGMQ_PAHO_BUILD_DIR builds and runs that meson build dir instead of build/
# (configured -Dbuildtype=release if new); RINGMQ_THREADS overrides the shard count (2);
# RINGMQ_PAHO_ACL_FILE=FILE starts the broker with --acl-file FILE (test_subscribe_failure needs
# one that refuses test/nosubscribe, see docs/interop.md).
#
# client_test.py calls unittest.main() after reading its own --hostname/--port options, and
# unittest.main() parses sys.argv again and refuses them. A few lines of Python below therefore
# run client_test.py unchanged with its own options in sys.argv and hand unittest only its own.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PY=/usr/bin/python3 # never the PATH python3 (a pyenv one)
threads=${RINGMQ_THREADS:-2}
acl_flags=()
acl_note=""
if [[ -n "${RINGMQ_PAHO_ACL_FILE:-}" ]]; then
  [[ -f "$RINGMQ_PAHO_ACL_FILE" ]] || { echo "paho-interop: no ACL file '$RINGMQ_PAHO_ACL_FILE'" >&2; exit 2; }
  acl_flags=(--acl-file "$RINGMQ_PAHO_ACL_FILE")
  acl_note=", ACL file $RINGMQ_PAHO_ACL_FILE"
fi

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  [[ $# -lt 1 ]] && exit 2 || exit 0
fi
paho=$1
shift
if [[ -f "$paho/interoperability/client_test.py" ]]; then
  testdir=$(cd "$paho/interoperability" && pwd)
elif [[ -f "$paho/client_test.py" ]]; then
  testdir=$(cd "$paho" && pwd)
else
  echo "paho-interop: no interoperability/client_test.py under '$paho'" >&2
  echo "paho-interop: 0 passed, 0 failed of 0; no test suite (exit 2)"
  exit 2
fi
paho_commit=$(git -C "$testdir" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

# 1. Build.
if [[ -n "${RINGMQ_PAHO_BUILD_DIR:-}" ]]; then
  bdir=$RINGMQ_PAHO_BUILD_DIR
  [[ -f "$bdir/meson-private/coredata.dat" ]] || meson setup "$bdir" -Dbuildtype=release >/dev/null
  build_cmd=(ninja -C "$bdir" ringmq)
else
  bdir=$repo/build
  build_cmd=(scripts/build.sh release ringmq)
fi
if ! "${build_cmd[@]}" >&2; then
  echo "paho-interop: 0 passed, 0 failed of 0; ringmq build failed (exit 1)"
  exit 1
fi
ringmq=$bdir/ringmq

work=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-paho.XXXXXX")
broker_pid=
stop_broker() {
  [[ -n "$broker_pid" ]] || return 0
  kill -TERM "$broker_pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$broker_pid" 2>/dev/null; then
    echo "paho-interop: broker $broker_pid ignored SIGTERM for 10 s; killing it" >&2
    kill -KILL "$broker_pid" 2>/dev/null || true
  fi
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=
}
trap stop_broker EXIT

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 2. Start the broker; another process may take the free port before ringmq binds it, so retry.
port=
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  log=$work/broker.log
  "$ringmq" --bind 127.0.0.1 --port "$port" --threads "$threads" --log-level debug \
    "${acl_flags[@]}" 2>"$log" &
  broker_pid=$!
  for _ in $(seq 100); do
    grep -q 'ready: accepting connections' "$log" 2>/dev/null && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q 'ready: accepting connections' "$log" && break
  echo "paho-interop: ringmq did not start on port $port (attempt $attempt):" >&2
  cat "$log" >&2
  stop_broker
  port=
done
if [[ -z "$port" ]]; then
  echo "paho-interop: 0 passed, 0 failed of 0; ringmq did not start (exit 1)"
  exit 1
fi
echo "paho-interop: ringmq on 127.0.0.1:$port, $threads shards, log $log" >&2

# 3. Run client_test.py, its own options before "--", unittest's after it.
shim='
import os, runpy, sys, unittest
script = os.path.abspath(sys.argv[1])
args = sys.argv[2:]
split = args.index("--")
own, ut = args[:split], args[split + 1:]
real_main = unittest.main
def main(*a, **k):
    k["argv"] = [script] + ut
    return real_main(*a, **k)
unittest.main = main
sys.argv = [script] + own
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
'
out=$work/client_test.log
set +e
(cd "$testdir" && timeout 600 "$PY" -c "$shim" client_test.py --hostname 127.0.0.1 --port "$port" -- -v "$@") 2>&1 |
  tee "$out"
status=${PIPESTATUS[0]}
set -e

# 4. Stop the broker and summarise.
stop_broker
broker_tail=$(grep -E 'counters:' "$log" >/dev/null && echo "broker stopped cleanly" || echo "broker log has no counters line")
total=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in.*/\1/p' "$out" | tail -1)
failed_names=$(sed -n 's/^\(FAIL\|ERROR\): \([^ ]*\) .*/\2/p' "$out" | paste -sd, -)
failed=0
[[ -n "$failed_names" ]] && failed=$(tr ',' '\n' <<<"$failed_names" | wc -l)
total=${total:-0}
passed=$((total - failed))
((passed < 0)) && passed=0
note=""
[[ $status -eq 124 ]] && note="; timed out after 600 s"
echo "paho-interop: $passed passed, $failed failed${failed_names:+ ($failed_names)} of $total;" \
  "paho.mqtt.testing $paho_commit, ringmq $threads shards on port $port$acl_note, $broker_tail${note} (exit $status)"
exit "$status"
