#!/usr/bin/env bash
# Usage: scripts/paho-interop.sh [--v5] [--mosquitto | --port N] PAHO_TESTING_DIR [unittest args...]
#
# Runs the Eclipse Paho interoperability client tests of
# https://github.com/eclipse/paho.mqtt.testing against a freshly built ringmq: the MQTT 3.1.1
# suite interoperability/client_test.py (10 tests), or with --v5 the MQTT 5.0 suite
# interoperability/client_test5.py (27 tests). Nothing is downloaded: PAHO_TESTING_DIR is an
# existing checkout of paho.mqtt.testing (its root or its interoperability/ folder). See
# docs/interop.md for the expected results.
#
#   1. builds the release broker (scripts/build.sh release ringmq, i.e. build/ringmq)
#   2. starts it on a free 127.0.0.1 port with 2 shards (--log-level debug, log kept in a temp dir)
#   3. runs the suite with /usr/bin/python3 under `timeout 900`, each test under its own limit
#      (RINGMQ_PAHO_TEST_TIMEOUT seconds, 60): a test still running then fails as
#      "name(timeout)" and the next one starts
#   4. stops the broker with SIGTERM and prints one line:
#        paho-interop: N passed, M failed (names) of T [suite]; passed: names; ...
# The exit status is the suite's (0 only if every test passed; 124 on timeout).
#
#   --v5         run client_test5.py (MQTT 5.0) instead of client_test.py (MQTT 3.1.1)
#   --mosquitto  run the suite against /usr/sbin/mosquitto instead of ringmq, started on a free
#                127.0.0.1 port with a generated config (listener, allow_anonymous true, nothing
#                else); nothing is built. For the reference results in docs/interop.md
#   --port N     run the suite against a broker already listening on 127.0.0.1:N; nothing is
#                built, started or stopped
#
# Extra arguments go to unittest, e.g. `-v` or `Test.test_keepalive` to run one test.
#
# Environment: RINGMQ_PAHO_BUILD_DIR builds and runs that meson build dir instead of build/
# (configured -Dbuildtype=release if new); RINGMQ_THREADS overrides the shard count (2);
# RINGMQ_PAHO_ACL_FILE=FILE starts ringmq with --acl-file FILE (test_subscribe_failure needs
# one that refuses test/nosubscribe, see docs/interop.md); RINGMQ_PAHO_FLAGS="..." adds those
# flags (split on spaces) to ringmq's command line, e.g. "--max-keepalive 60" for
# client_test5.py's test_server_keep_alive and "--outbound-topic-aliases 10" for
# test_server_topic_alias; RINGMQ_PAHO_TEST_TIMEOUT (seconds) is the per-test limit.
#
# Both suites call unittest.main() after reading their own --hostname/--port options, and
# unittest.main() parses sys.argv again and refuses them. A few lines of Python below therefore
# run the suite unchanged with its own options in sys.argv and hand unittest only its own; they
# also record each test's outcome and set the per-test limit (SIGALRM in the test's thread).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

PY=/usr/bin/python3 # never the PATH python3 (a pyenv one)
MOSQUITTO=/usr/sbin/mosquitto
threads=${RINGMQ_THREADS:-2}
test_timeout=${RINGMQ_PAHO_TEST_TIMEOUT:-60}
suite=client_test.py
target=ringmq # ringmq | mosquitto | external
external_port=
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --v5) suite=client_test5.py ;;
    --mosquitto) target=mosquitto ;;
    --port)
      [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || { echo "paho-interop: --port needs a number" >&2; exit 2; }
      target=external
      external_port=$2
      shift
      ;;
    -h|--help) usage; exit 0 ;;
    *) break ;;
  esac
  shift
done
if [[ $# -lt 1 ]]; then
  usage
  exit 2
fi
[[ "$test_timeout" =~ ^[0-9]+$ && $test_timeout -gt 0 ]] ||
  { echo "paho-interop: RINGMQ_PAHO_TEST_TIMEOUT must be a positive number of seconds" >&2; exit 2; }

acl_flags=()
acl_note=""
if [[ -n "${RINGMQ_PAHO_ACL_FILE:-}" ]]; then
  [[ $target == ringmq ]] || { echo "paho-interop: RINGMQ_PAHO_ACL_FILE applies to ringmq only" >&2; exit 2; }
  [[ -f "$RINGMQ_PAHO_ACL_FILE" ]] || { echo "paho-interop: no ACL file '$RINGMQ_PAHO_ACL_FILE'" >&2; exit 2; }
  acl_flags=(--acl-file "$RINGMQ_PAHO_ACL_FILE")
  acl_note=", ACL file $RINGMQ_PAHO_ACL_FILE"
fi
extra_flags=()
if [[ -n "${RINGMQ_PAHO_FLAGS:-}" ]]; then
  [[ $target == ringmq ]] || { echo "paho-interop: RINGMQ_PAHO_FLAGS applies to ringmq only" >&2; exit 2; }
  read -r -a extra_flags <<<"$RINGMQ_PAHO_FLAGS"
  acl_note+=", flags $RINGMQ_PAHO_FLAGS"
fi

paho=$1
shift
if [[ -f "$paho/interoperability/$suite" ]]; then
  testdir=$(cd "$paho/interoperability" && pwd)
elif [[ -f "$paho/$suite" ]]; then
  testdir=$(cd "$paho" && pwd)
else
  echo "paho-interop: no interoperability/$suite under '$paho'" >&2
  echo "paho-interop: 0 passed, 0 failed of 0 [$suite]; no test suite (exit 2)"
  exit 2
fi
paho_commit=$(git -C "$testdir" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

# 1. Build (ringmq only).
if [[ $target == ringmq ]]; then
  if [[ -n "${RINGMQ_PAHO_BUILD_DIR:-}" ]]; then
    bdir=$RINGMQ_PAHO_BUILD_DIR
    [[ -f "$bdir/meson-private/coredata.dat" ]] || meson setup "$bdir" -Dbuildtype=release >/dev/null
    build_cmd=(ninja -C "$bdir" ringmq)
  else
    bdir=$repo/build
    build_cmd=(scripts/build.sh release ringmq)
  fi
  if ! "${build_cmd[@]}" >&2; then
    echo "paho-interop: 0 passed, 0 failed of 0 [$suite]; ringmq build failed (exit 1)"
    exit 1
  fi
  ringmq=$bdir/ringmq
elif [[ $target == mosquitto && ! -x $MOSQUITTO ]]; then
  echo "paho-interop: $MOSQUITTO is missing (scripts/install-deps.sh installs it)" >&2
  echo "paho-interop: 0 passed, 0 failed of 0 [$suite]; no Mosquitto (exit 2)"
  exit 2
fi

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

listening() {
  "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' \
    "$1" 2>/dev/null
}

# 2. Start the broker; another process may take the free port before it binds, so retry.
log=$work/broker.log
port=
if [[ $target == external ]]; then
  port=$external_port
  listening "$port" || {
    echo "paho-interop: nothing listens on 127.0.0.1:$port" >&2
    echo "paho-interop: 0 passed, 0 failed of 0 [$suite]; no broker on port $port (exit 1)"
    exit 1
  }
  broker_name="the broker"
else
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    if [[ $target == ringmq ]]; then
      "$ringmq" --bind 127.0.0.1 --port "$port" --threads "$threads" --log-level debug \
        "${acl_flags[@]}" "${extra_flags[@]}" 2>"$log" &
    else
      printf 'listener %s 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type all\n' \
        "$port" >"$work/mosquitto.conf"
      "$MOSQUITTO" -c "$work/mosquitto.conf" 2>"$log" &
    fi
    broker_pid=$!
    started=0
    for _ in $(seq 100); do
      if [[ $target == ringmq ]]; then
        grep -q 'ready: accepting connections' "$log" 2>/dev/null && { started=1; break; }
      else
        listening "$port" && { started=1; break; }
      fi
      kill -0 "$broker_pid" 2>/dev/null || break
      sleep 0.1
    done
    [[ $started -eq 1 ]] && break
    echo "paho-interop: $target did not start on port $port (attempt $attempt):" >&2
    cat "$log" >&2
    stop_broker
    port=
  done
  if [[ -z "$port" ]]; then
    echo "paho-interop: 0 passed, 0 failed of 0 [$suite]; $target did not start (exit 1)"
    exit 1
  fi
  if [[ $target == ringmq ]]; then
    broker_name="ringmq $threads shards"
  else
    # `mosquitto -h` exits with status 3 after printing its version.
    version=$("$MOSQUITTO" -h 2>/dev/null | sed -n 's/^mosquitto version //p' | head -1 || true)
    broker_name="Mosquitto ${version:-(version unknown)}"
  fi
fi
echo "paho-interop: $suite against $broker_name on 127.0.0.1:$port, broker log $log" >&2

# 3. Run the suite, its own options before "--", unittest's after it. Outcomes go to $results,
# one "OUTCOME NAME" line per test (pass, fail, error, skip, timeout).
shim='
import atexit, os, runpy, signal, sys, unittest
script = os.path.abspath(sys.argv[1])
results_path, limit = sys.argv[2], int(sys.argv[3])
args = sys.argv[4:]
split = args.index("--")
own, ut = args[:split], args[split + 1:]

class TestTimeout(Exception):
    pass

def on_alarm(signum, frame):
    raise TestTimeout(f"the test ran longer than {limit} s")

signal.signal(signal.SIGALRM, on_alarm)
outcomes = open(results_path, "w", buffering=1)
atexit.register(outcomes.close)
real_run = unittest.TestCase.run
def run(self, result=None):
    # A test that never returns (one waiting for a packet the broker never sends) is stopped
    # by SIGALRM: the exception is raised in the test, unittest records it as an error.
    before = (len(result.failures), len(result.errors), len(result.skipped)) if result else None
    signal.alarm(limit)
    try:
        return real_run(self, result)
    finally:
        signal.alarm(0)
        if result is not None:
            name = self.id().rsplit(".", 1)[-1]
            if len(result.errors) > before[1]:
                timed_out = "TestTimeout" in result.errors[-1][1]
                outcome = "timeout" if timed_out else "error"
            elif len(result.failures) > before[0]:
                outcome = "fail"
            elif len(result.skipped) > before[2]:
                outcome = "skip"
            else:
                outcome = "pass"
            outcomes.write(f"{outcome} {name}\n")
unittest.TestCase.run = run
real_main = unittest.main
def main(*a, **k):
    k["argv"] = [script] + ut
    return real_main(*a, **k)
unittest.main = main
sys.argv = [script] + own
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
'
out=$work/suite.log
results=$work/results.txt
set +e
(cd "$testdir" && timeout 900 "$PY" -c "$shim" "$suite" "$results" "$test_timeout" \
  --hostname 127.0.0.1 --port "$port" -- -v "$@") 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e

# 4. Stop the broker and summarise.
stop_broker
case $target in
  ringmq) broker_tail=$(grep -q 'counters:' "$log" && echo "broker stopped cleanly" ||
            echo "broker log has no counters line") ;;
  mosquitto) broker_tail="broker stopped" ;;
  *) broker_tail="broker left running" ;;
esac
touch "$results"
names() { awk -v want="$1" '$1 ~ want { print ($1 == "timeout" ? $2 "(timeout)" : $2) }' "$results" | paste -sd, -; }
passed_names=$(names '^pass$')
failed_names=$(names '^(fail|error|timeout|skip)$')
total=$(wc -l <"$results")
passed=$(grep -c '^pass ' "$results" || true)
failed=$((total - passed))
note=""
[[ $status -eq 124 ]] && note="; the whole run timed out after 900 s"
echo "paho-interop: $passed passed, $failed failed${failed_names:+ ($failed_names)} of $total [$suite];" \
  "passed: ${passed_names:-none}; paho.mqtt.testing $paho_commit, $broker_name on port $port$acl_note," \
  "$broker_tail${note} (exit $status)"
exit "$status"
