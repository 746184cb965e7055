#!/usr/bin/env bash
# Usage: scripts/test.sh [--quick] [--no-fuzz] [--no-asan] [--no-tsan] [--no-bench]
#
# Runs the ringmq test stages and sums the results:
#   1. dependencies    scripts/install-deps.sh
#   2. release         build/ (g++, every target), every test meson registers there (the whole
#                      unit test binary build/tests/ringmq_unit_tests), then the whole
#                      integration suite tests/integration/run.py against build/ringmq, its test
#                      classes shared over $RINGMQ_INTEGRATION_JOBS worker processes (run.py -j)
#   3. fuzz            build-fuzz/ (clang++-14, ASan+UBSan): the clang build of all of src/ with
#                      -Wthread-safety (configuration fails unless clang rejects
#                      tests/compile_check/thread_safety_violation.cc), then each fuzz_* target
#                      (tests/fuzz/<name>.cc) for $RINGMQ_FUZZ_SECONDS (default 12) s on a
#                      temporary copy of its seed corpus tests/fuzz/corpus/<name>/, one target
#                      per core at a time
#   4. asan            build-asan/ (g++, ASan+UBSan, a unity build like tsan and fuzz: see
#                      scripts/build.sh): every test meson registers there (the whole unit test
#                      binary) and the integration suite again (run.py -j too) but for the tests
#                      marked broker.release_only (run.py --skip-release-only): those that never
#                      start ringmq (the NATS fixture's own tests, ringmq-bench against Mosquitto)
#                      and the timed cluster workloads (cluster-soak and bench-cluster --quick),
#                      whose code paths the cluster tests cover here; they run in stage 2 only
#   5. tsan            build-tsan/ (g++, ThreadSanitizer), building only the broker and
#                      tests/ringmq_tsan_tests: the unit tests of the code that threads share,
#                      stress tests included (trie, child table, epoch reclamation, mailboxes,
#                      retained store, message reference counts, address table; the list is
#                      tsan_test_sources in tests/*/meson.build), then the integration tests
#                      whose names contain test_pubsub, test_sessions, test_qos or
#                      test_retained (every broker there runs 2 shards), the cluster over NATS
#                      (test_cluster.ClusterTest) and the TLS certificate reload under traffic
#                      (SIGHUP swaps the context shards read)
#   6. bench-compare   scripts/bench-compare.sh --quick (ringmq vs Mosquitto smoke run; one test)
# They run in the order 1, 2, 4, 3, 5, 6: each sanitizer or fuzz build runs in the background at
# nice 19 behind the tests of the stage before it (the ASan build behind the release
# integration; the fuzz build, then the TSan build, behind the ASan tests), where the machine
# is mostly idle, and the stage that needs it waits for the rest (docs/reliability.md).
# A build failure counts as one failure; later stages still run where they can.
#
#   --quick     stages 1 and 2 only: release build, unit and integration tests (no fuzz, no
#               sanitizers, no bench-compare); the same as --no-fuzz --no-asan --no-tsan --no-bench
#   --no-fuzz   skip stage 3
#   --no-asan   skip stage 4
#   --no-tsan   skip stage 5
#   --no-bench  skip stage 6
#
# Environment: RINGMQ_FUZZ_SECONDS (12), RINGMQ_UNIT_TIMEOUT (600 s per test binary),
# RINGMQ_INTEGRATION_TIMEOUT (900 s per integration run), RINGMQ_INTEGRATION_JOBS (2: run.py
# workers for the release and ASan integration stages; 1 runs them serially),
# RINGMQ_INTEGRATION_WATCHDOG (run.py's per-process watchdog; default 60 s under the integration
# timeout, so that it fires first and names the test that hung), RINGMQ_JOBS (ninja jobs, nproc).
#
# The last line is always `tests: N passed, M failed`; the exit status is non-zero if M > 0.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3 # never the PATH python3: a pyenv one may lack paho-mqtt
run_asan=1
run_tsan=1
run_fuzz=1
run_bench=1
for arg in "$@"; do
  case "$arg" in
    --quick) run_asan=0; run_tsan=0; run_fuzz=0; run_bench=0 ;;
    --no-asan) run_asan=0 ;;
    --no-tsan) run_tsan=0 ;;
    --no-fuzz) run_fuzz=0 ;;
    --no-bench) run_bench=0 ;;
    -h|--help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "test.sh: unknown option '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

fuzz_seconds=${RINGMQ_FUZZ_SECONDS:-12}
# Fuzz targets run side by side, one per core.
fuzz_jobs=$(nproc)
unit_timeout=${RINGMQ_UNIT_TIMEOUT:-600}
# The two big gtest binaries (ringmq_unit_tests, ringmq_tsan_tests) run as this many gtest shards
# side by side (GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX), one per core: the ASan unit stage took
# 137 s in one process while the background builds behind it had time to spare.
unit_shards=${RINGMQ_UNIT_SHARDS:-$(nproc)}
integration_timeout=${RINGMQ_INTEGRATION_TIMEOUT:-900}
# The suite mostly waits on sockets and sleeps, so two workers nearly halve it even on 2 cores.
integration_jobs=${RINGMQ_INTEGRATION_JOBS:-2}
watchdog=$((integration_timeout > 120 ? integration_timeout - 60 : integration_timeout))
export RINGMQ_INTEGRATION_WATCHDOG=${RINGMQ_INTEGRATION_WATCHDOG:-$watchdog}

work=$(mktemp -d "${TMPDIR:-/tmp}/ringmq-test.XXXXXX")
# A background build (build_in_background, below) still running when the script ends is stopped.
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

total_pass=0
total_fail=0
summary=()
stage_name=""
stage_pass=0
stage_fail=0
stage_start=0

stage_begin() {
  stage_name=$1
  stage_pass=0
  stage_fail=0
  stage_start=$SECONDS
  printf '\n======== %s ========\n' "$stage_name"
}

stage_end() {
  local secs=$((SECONDS - stage_start))
  total_pass=$((total_pass + stage_pass))
  total_fail=$((total_fail + stage_fail))
  local line
  line=$(printf '%-24s %4d passed, %3d failed  %5ds' "$stage_name" "$stage_pass" "$stage_fail" "$secs")
  summary+=("$line")
  printf -- '-------- %s: %d passed, %d failed (%ds)\n' "$stage_name" "$stage_pass" "$stage_fail" "$secs"
}

pass() { stage_pass=$((stage_pass + ${1:-1})); }
fail() { stage_fail=$((stage_fail + ${1:-1})); }

# Prints the interesting part of a failed build log: from ninja's first FAILED line on.
show_build_failure() {
  local log=$1
  if grep -q '^FAILED:' "$log"; then
    sed -n '/^FAILED:/,$p' "$log" | head -n 80
  else
    tail -n 80 "$log"
  fi
}

# build MODE BUILD_DIR: runs scripts/build.sh MODE quietly; returns its status. A failed build's
# log is kept as BUILD_DIR/build-failure.log.
build() {
  local mode=$1 dir=$2 log="$work/build-$1.log" start=$SECONDS
  shift 2  # the rest: ninja targets (none: everything)
  if [[ -n "${bg_pid[$mode]:-}" ]]; then  # started earlier by build_in_background
    local pid=${bg_pid[$mode]} rc=1
    unset "bg_pid[$mode]"
    echo "waiting for the $mode build started in the background $((SECONDS - bg_since[$mode]))s ago ..."
    while [[ ! -f "$work/build-$mode.rc" ]] && kill -0 "$pid" 2>/dev/null; do sleep 1; done
    wait "$pid" 2>/dev/null || true
    [[ -f "$work/build-$mode.rc" ]] && rc=$(<"$work/build-$mode.rc")
    if [[ $rc -eq 0 ]]; then
      echo "build $mode: ok ($((SECONDS - start))s of waiting; $((SECONDS - bg_since[$mode]))s since it started)"
      return 0
    fi
    echo "build $mode: FAILED (in the background)"
    show_build_failure "$log"
    mkdir -p "$dir" && cp "$log" "$dir/build-failure.log" && echo "(whole build log: $dir/build-failure.log)"
    return 1
  fi
  echo "building $mode ${*:-(all targets)} ..."
  # Keep going past a failure, so that whatever compiles can still be tested.
  rm -f "$dir/build-failure.log"
  if RINGMQ_KEEP_GOING=1 scripts/build.sh "$mode" "$@" >"$log" 2>&1; then
    echo "build $mode: ok ($((SECONDS - start))s)"
    return 0
  fi
  echo "build $mode: FAILED ($((SECONDS - start))s)"
  show_build_failure "$log"
  mkdir -p "$dir" && cp "$log" "$dir/build-failure.log" && echo "(whole build log: $dir/build-failure.log)"
  return 1
}

# Background builds (CI time; docs/reliability.md, "CI stages"). The integration stages mostly
# wait on sockets and timers, and the unit tests run in one process: on a 2-core machine about a
# core is idle meanwhile. The next stage's build then runs in the background at nice 19, so that
# it takes what the tests leave and they keep the CPU they ask for; the stage that needs it waits
# for what is left (build() above). AFTER (optional): the mode whose background build must end
# first, so that at most one build runs behind the tests.
declare -A bg_pid=() bg_since=()
build_in_background() {
  local after=$1 mode=$2 dir=$3 wait_for=""
  shift 3
  if [[ -n "$after" ]]; then
    wait_for=${bg_pid[$after]:-}
  fi
  echo "building $mode ${*:-(all targets)} in the background (nice 19)${wait_for:+ after $after} ..."
  rm -f "$dir/build-failure.log"
  rm -f "$work/build-$mode.rc"
  # The exit status goes to a file: `wait` elsewhere in this script (another stage's) may reap
  # the process first, and bash then no longer knows it.
  (
    if [[ -n "$wait_for" ]]; then
      while kill -0 "$wait_for" 2>/dev/null; do sleep 1; done
    fi
    rc=0
    RINGMQ_KEEP_GOING=1 nice -n 19 scripts/build.sh "$mode" "$@" || rc=$?
    echo "$rc" >"$work/build-$mode.rc"
  ) </dev/null >"$work/build-$mode.log" 2>&1 &
  bg_pid[$mode]=$!
  bg_since[$mode]=$SECONDS
}

# ensure_target DIR TARGET: after a failed full build (which went on past failures), true if
# TARGET can nevertheless be brought up to date, so that what did compile can still be tested.
# A target that needs one of the outputs that just failed is not retried (that would only
# repeat the failing compile); anything else still to do (sources edited since) is built.
ensure_target() {
  local dir=$1 target=$2 plan out
  plan=$(ninja -C "$dir" -n "$target" 2>&1) || return 1
  grep -q '^ninja: no work to do' <<<"$plan" && return 0
  local log="$dir/build-failure.log"
  if [[ -f "$log" ]]; then
    # ninja's plan lines end with the output ("[2/7] Compiling C++ object lib.a.p/x.cc.o").
    local -a outs=()
    read -r -a outs <<<"$(sed -n 's/^FAILED: //p' "$log" | tr '\n' ' ')"
    for out in "${outs[@]}"; do
      grep -qF -- " $out" <<<"$plan" && return 1
    done
  fi
  ninja -C "$dir" -j"${RINGMQ_JOBS:-$(nproc)}" "$target" >"$work/ensure.log" 2>&1
}

# Lists the meson tests of build dir $1, one per line: name, workdir (or "-"), protocol, cmd...
# separated by tabs.
list_meson_tests() {
  meson introspect "$1" --tests 2>/dev/null | "$PY" -c '
import json, sys
try:
    tests = json.load(sys.stdin)
except ValueError:  # not configured: no tests
    tests = []
for t in tests:
    cmd = t.get("cmd") or []
    if not cmd:
        continue
    fields = [t.get("name", "?"), t.get("workdir") or "-", t.get("protocol", "exitcode")] + cmd
    print("\t".join(fields))
'
}

# run_test_binary LABEL WORKDIR PROTOCOL CMD...: runs one test executable and counts its results.
# gtest binaries run with --gtest_brief=1 and are counted from gtest's summary lines; anything
# else counts as one test, passed on exit status 0. A crash or sanitizer report is a failure.
run_test_binary() {
  local label=$1 workdir=$2 protocol=$3
  shift 3
  local bin=$1 log="$work/unit-$RANDOM.log" rc=0 is_gtest=0
  if [[ ! -x "$bin" ]]; then
    echo "[$label] $bin: not built -> 1 failure"
    fail
    return
  fi
  if [[ "$protocol" == gtest ]] || grep -qa -- '--gtest_' "$bin"; then
    is_gtest=1
    set -- "$@" --gtest_brief=1 --gtest_color=no
  fi
  [[ "$workdir" == "-" ]] && workdir=.
  local start=$SECONDS shards=1
  case "$(basename "$bin")" in
    ringmq_unit_tests|ringmq_tsan_tests) [[ $is_gtest -eq 1 ]] && shards=$unit_shards ;;
  esac
  if [[ $shards -le 1 ]]; then
    (cd "$workdir" && exec timeout --kill-after=10 "$unit_timeout" "$@") </dev/null >"$log" 2>&1 || rc=$?
  else
    # Each shard's summary lines are summed below; the first non-zero exit status is kept.
    local -a shard_pids=()
    local shard shard_rc
    for ((shard = 0; shard < shards; shard++)); do
      (cd "$workdir" && GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$shard \
        exec timeout --kill-after=10 "$unit_timeout" "$@") </dev/null >"$log.$shard" 2>&1 &
      shard_pids+=("$!")
    done
    for ((shard = 0; shard < shards; shard++)); do
      shard_rc=0
      wait "${shard_pids[$shard]}" || shard_rc=$?
      [[ $rc -eq 0 ]] && rc=$shard_rc
    done
    : >"$log"
    for ((shard = 0; shard < shards; shard++)); do
      cat "$log.$shard" >>"$log"
    done
  fi
  local secs=$((SECONDS - start))

  if [[ $is_gtest -eq 0 ]]; then
    if [[ $rc -eq 0 ]]; then
      pass
      echo "[$label] $bin: ok (${secs}s)"
    else
      fail
      echo "[$label] $bin: exit status $rc (${secs}s); output:"
      tail -n 60 "$log"
    fi
    return
  fi

  # gtest's summary (the last line of each kind) of the run, summed over its shards.
  local npass=0 nfail=0 part count
  local -a parts=("$log")
  if [[ $shards -gt 1 ]]; then
    parts=()
    for ((shard = 0; shard < shards; shard++)); do parts+=("$log.$shard"); done
  fi
  for part in "${parts[@]}"; do
    count=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) tests\{0,1\}\..*/\1/p' "$part" | tail -n 1)
    npass=$((npass + ${count:-0}))
    count=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) tests\{0,1\},.*/\1/p' "$part" | tail -n 1)
    nfail=$((nfail + ${count:-0}))
  done
  local note=""
  if [[ $rc -ne 0 && $nfail -eq 0 ]]; then
    nfail=1
    case $rc in
      124|137) note=" (timed out after ${unit_timeout}s)" ;;
      *) note=" (exit status $rc: crash or sanitizer report)" ;;
    esac
  fi
  pass "$npass"
  fail "$nfail"
  # --gtest_brief prints only failures and the summary, so the log is short; show it all.
  if [[ $nfail -gt 0 ]]; then
    head -n 400 "$log"
    [[ $(wc -l <"$log") -le 400 ]] || echo "... (output cut; $(wc -l <"$log") lines)"
  else
    grep -v '^$' "$log" | tail -n 5
  fi
  echo "[$label] $(basename "$bin"): $npass passed, $nfail failed$note (${secs}s)"
}

# unit_tests BUILD_DIR LABEL BUILD_OK: every meson-registered test binary plus ringmq_unit_tests.
unit_tests() {
  local dir=$1 label=$2 build_ok=$3 main_bin="$1/tests/ringmq_unit_tests" saw_main=0
  local -a lines=()
  local listing
  # Read the list synchronously (no process substitution), so that nothing it prints can turn
  # up after the closing line.
  listing=$(list_meson_tests "$dir" 2>/dev/null || true)
  [[ -n "$listing" ]] && mapfile -t lines <<<"$listing"
  local line name workdir protocol
  local -a cmd
  for line in "${lines[@]}"; do
    IFS=$'\t' read -r -a cmd <<<"$line"
    name=${cmd[0]}
    workdir=${cmd[1]}
    protocol=${cmd[2]}
    cmd=("${cmd[@]:3}")
    [[ "$(realpath -m "${cmd[0]}")" == "$(realpath -m "$main_bin")" ]] && saw_main=1
    if [[ $build_ok -ne 1 ]] && ! ensure_target "$dir" "$(realpath -m --relative-to="$dir" "${cmd[0]}")"; then
      echo "[$label] test '$name': does not build -> skipped (build failure already counted)"
      continue
    fi
    run_test_binary "$label" "$workdir" "$protocol" "${cmd[@]}"
  done
  if [[ $saw_main -eq 0 ]]; then
    if [[ $build_ok -ne 1 ]] && ! ensure_target "$dir" tests/ringmq_unit_tests; then
      echo "[$label] ringmq_unit_tests: does not build -> skipped (build failure already counted)"
      return
    fi
    run_test_binary "$label" - exitcode "$main_bin"
  fi
}

# integration BINARY LABEL [run.py args...]: runs tests/integration/run.py against BINARY and
# parses its last `integration: N passed, M failed` line.
integration() {
  local bin=$1 label=$2 log="$work/integration-$RANDOM.log" rc=0
  shift 2
  if [[ ! -f tests/integration/run.py ]]; then
    echo "[$label] tests/integration/run.py does not exist -> 1 failure"
    fail
    return
  fi
  if [[ ! -x "$bin" ]]; then
    echo "[$label] $bin was not built -> 1 failure"
    fail
    return
  fi
  local start=$SECONDS
  timeout --kill-after=10 "$integration_timeout" "$PY" tests/integration/run.py --binary "$bin" \
    "$@" </dev/null 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
  local secs=$((SECONDS - start))
  local result npass nfail
  result=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
  if [[ -z "$result" ]]; then
    echo "[$label] run.py printed no 'integration: N passed, M failed' line (exit status $rc) -> 1 failure"
    fail
    return
  fi
  npass=$(sed -E 's/^integration: ([0-9]+) passed.*/\1/' <<<"$result")
  nfail=$(sed -E 's/^integration: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$result")
  if [[ $rc -ne 0 && $nfail -eq 0 ]]; then
    echo "[$label] run.py exited with status $rc despite 0 failures -> 1 failure"
    nfail=1
  fi
  pass "$npass"
  fail "$nfail"
  echo "[$label] integration: $npass passed, $nfail failed (${secs}s)"
}

# Lists the fuzz_* executables that build dir $1 defines (built or not), relative to the repo
# root, one per line (meson puts them in build-fuzz/tests/fuzz/).
list_fuzz_targets() {
  meson introspect "$1" --targets 2>/dev/null | "$PY" -c '
import json, os, sys
try:
    targets = json.load(sys.stdin)
except ValueError:
    targets = []
for t in targets:
    if t.get("type") == "executable" and t.get("name", "").startswith("fuzz_"):
        print(os.path.relpath(t["filename"][0]))
'
}

# fuzz_smoke BUILD_OK: each fuzz_* target for $fuzz_seconds on a temp copy of its seeds.
fuzz_smoke() {
  local build_ok=$1 bin name listing
  local -a bins=()
  listing=$(list_fuzz_targets build-fuzz || true)
  [[ -n "$listing" ]] && mapfile -t bins <<<"$listing"
  if [[ ${#bins[@]} -eq 0 ]]; then
    echo "no fuzz targets defined (tests/fuzz/<name>.cc)"
    return
  fi
  # Each target is one single-threaded process: run up to $fuzz_jobs of them at a time (each
  # still gets its whole $fuzz_seconds), then report them in order.
  local -a started=() running=() fuzz_pids=()
  for bin in "${bins[@]}"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    if [[ $build_ok -ne 1 ]] && ! ensure_target build-fuzz "${bin#build-fuzz/}"; then
      echo "[fuzz] fuzz_$name: does not build -> skipped (build failure already counted)"
      continue
    fi
    if [[ ! -x "$bin" ]]; then
      echo "[fuzz] $bin: not built -> 1 failure"
      fail
      continue
    fi
    local corpus="$work/fuzz-$name/corpus" artifacts="$work/fuzz-$name/artifacts"
    local log="$work/fuzz-$name/log" seeds="tests/fuzz/corpus/$name" rc=0 nseeds=0
    mkdir -p "$corpus" "$artifacts"
    if [[ -d "$seeds" ]]; then
      cp -R "$seeds/." "$corpus/"
      nseeds=$(find "$corpus" -type f | wc -l)
    else
      echo "[fuzz] note: no seed corpus $seeds/; starting empty"
    fi
    echo "[fuzz] fuzz_$name: ${fuzz_seconds}s from $nseeds seeds"
    while [[ ${#running[@]} -ge $fuzz_jobs ]]; do
      wait -n || true
      local -a still=()
      for pid in "${running[@]}"; do
        kill -0 "$pid" 2>/dev/null && still+=("$pid")
      done
      running=("${still[@]}")
    done
    (
      start=$SECONDS
      timeout --kill-after=10 $((fuzz_seconds + 120)) "$bin" \
        -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" \
        </dev/null >"$log" 2>&1 || rc=$?
      echo "$rc $((SECONDS - start))" >"$work/fuzz-$name/status"
    ) &
    running+=("$!")
    fuzz_pids+=("$!")
    started+=("$bin")
  done
  # Only the targets: a bare `wait` would also wait for a build running in the background
  # (build_in_background) and take its exit status.
  for pid in "${fuzz_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done

  for bin in "${started[@]}"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    local artifacts="$work/fuzz-$name/artifacts" log="$work/fuzz-$name/log" rc=1 secs=0
    [[ -f "$work/fuzz-$name/status" ]] && read -r rc secs <"$work/fuzz-$name/status"
    local stats
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    [[ -n "$stats" ]] || stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    if [[ $rc -eq 0 ]]; then
      pass
      echo "[fuzz] fuzz_$name: ok (${secs}s) ${stats}"
      continue
    fi
    fail
    echo "[fuzz] fuzz_$name: FAILED, exit status $rc (${secs}s)"
    local keep="build-fuzz/smoke-artifacts/$name" f
    mkdir -p "$keep"
    for f in "$artifacts"/*; do
      [[ -f "$f" ]] || continue
      cp "$f" "$keep/"
      echo "[fuzz] artifact: $keep/$(basename "$f") ($(stat -c %s "$f") bytes); first bytes:"
      od -A x -t x1z -v "$f" | head -n 16
      echo "[fuzz] reproduce: $bin $keep/$(basename "$f")"
    done
    cp "$log" "$keep/output.log"
    echo "[fuzz] output (from the first report line; whole log: $keep/output.log):"
    local first
    first=$(grep -nE '==ERROR|runtime error|deadly signal|SUMMARY|ASSERT|Assert|out-of-memory|timeout' "$log" | head -n 1 | cut -d: -f1)
    if [[ -n "$first" ]]; then
      # The report up to its SUMMARY line (the shadow-byte map after it is noise here).
      sed -n "${first},\$p" "$log" | sed '/^SUMMARY:/q' | head -n 40
    else
      tail -n 40 "$log"
    fi
  done
}

echo "ringmq tests: $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(uname -srm), $(nproc) cores"

# ---- 1. dependencies
stage_begin "dependencies"
if ! scripts/install-deps.sh; then
  echo "install-deps.sh failed; continuing, builds will likely fail"
  fail
fi
stage_end

# ---- 2. release: build, unit tests, integration
stage_begin "release build"
release_ok=1
build release build || { release_ok=0; fail; }
stage_end

stage_begin "release unit tests"
unit_tests build release "$release_ok"
stage_end

# The ASan build runs behind the release integration (build_in_background, above).
if [[ $run_asan -eq 1 ]]; then
  build_in_background "" asan build-asan
fi

stage_begin "release integration"
if [[ $release_ok -eq 1 ]] || ensure_target build ringmq; then
  integration build/ringmq release -j "$integration_jobs"
else
  echo "build/ringmq does not build -> skipped (build failure already counted)"
fi
stage_end

# ---- 4. ASan + UBSan
if [[ $run_asan -eq 1 ]]; then
  stage_begin "asan build"
  asan_ok=1
  build asan build-asan || { asan_ok=0; fail; }
  stage_end
  # The fuzz and TSan builds run behind the ASan unit tests and integration (stages 3 and 5
  # come after this one for that).
  if [[ $run_fuzz -eq 1 ]]; then
    build_in_background "" fuzz build-fuzz
  fi
  if [[ $run_tsan -eq 1 ]]; then
    build_in_background fuzz tsan build-tsan ringmq tests/ringmq_tsan_tests
  fi
  # A small quarantine: ASan's default keeps 256 MiB of freed memory, which the integration
  # test that bounds broker RSS under a flood would count against the broker.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  stage_begin "asan unit tests"
  unit_tests build-asan asan "$asan_ok"
  stage_end
  stage_begin "asan integration"
  if [[ $asan_ok -eq 1 ]] || ensure_target build-asan ringmq; then
    # Not the release-only tests (stage 2 runs them): a sanitizer cannot change what a test that
    # never starts ringmq runs, and a timed workload measures nothing under ASan that the
    # cluster tests run here do not already exercise for memory errors.
    integration build-asan/ringmq asan -j "$integration_jobs" --skip-release-only
  else
    echo "build-asan/ringmq does not build -> skipped (build failure already counted)"
  fi
  stage_end
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

# ---- 3. fuzz: the clang build (lock annotations checked) and a short run of each target
if [[ $run_fuzz -eq 1 ]]; then
  stage_begin "fuzz build"
  fuzz_ok=1
  build fuzz build-fuzz || { fuzz_ok=0; fail; }
  stage_end
  stage_begin "fuzz smoke (${fuzz_seconds}s each)"
  fuzz_smoke "$fuzz_ok"
  stage_end
fi

# ---- 5. ThreadSanitizer: the code that crosses threads (shared trie and retained store, epoch
# reclamation, mailboxes, hand-off) under real multi-shard traffic.
if [[ $run_tsan -eq 1 ]]; then
  stage_begin "tsan build"
  tsan_ok=1
  # Only what this stage runs: the broker and the tests of the code that crosses threads.
  build tsan build-tsan ringmq tests/ringmq_tsan_tests || { tsan_ok=0; fail; }
  stage_end
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  stage_begin "tsan unit tests"
  if [[ $tsan_ok -eq 1 ]] || ensure_target build-tsan tests/ringmq_tsan_tests; then
    run_test_binary tsan - exitcode build-tsan/tests/ringmq_tsan_tests
  else
    echo "build-tsan/tests/ringmq_tsan_tests does not build -> skipped (build failure already counted)"
  fi
  stage_end
  stage_begin "tsan integration"
  if [[ $tsan_ok -eq 1 ]] || ensure_target build-tsan ringmq; then
    integration build-tsan/ringmq tsan -k test_pubsub -k test_sessions -k test_qos -k test_retained \
      -k test_cluster.ClusterTest \
      -k test_sighup_reloads_the_certificate_without_dropping_connections --skip-release-only
  else
    echo "build-tsan/ringmq does not build -> skipped (build failure already counted)"
  fi
  stage_end
  unset TSAN_OPTIONS
fi

# ---- 6. bench-compare --quick (issue 6): ringmq and Mosquitto under ringmq-bench, short runs;
# one test, passed if every run completed and verified (no speed is asserted).
bench_compare_quick() {
  stage_begin "bench-compare --quick"
  local log="$work/bench-compare.log" rc=0
  if [[ ! -x scripts/bench-compare.sh ]]; then
    echo "scripts/bench-compare.sh is missing -> 1 failure"
    fail
    stage_end
    return
  fi
  timeout --kill-after=10 300 scripts/bench-compare.sh --quick </dev/null >"$log" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    pass
    grep -E 'runs done|SKIP' "$log" || true
  else
    fail
    echo "bench-compare --quick: exit status $rc; output:"
    tail -n 60 "$log"
  fi
  stage_end
}
if [[ $run_bench -eq 1 ]]; then
  bench_compare_quick
fi

printf '\n======== summary ========\n'
for line in "${summary[@]}"; do
  echo "$line"
done
printf 'total time %ds\n' "$SECONDS"
echo "tests: $total_pass passed, $total_fail failed"
[[ $total_fail -eq 0 ]]
