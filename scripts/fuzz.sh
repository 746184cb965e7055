#!/usr/bin/env bash
# Usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#
# A long fuzzing campaign for one target (tests/fuzz/TARGET.cc, built as
# build-fuzz/tests/fuzz/fuzz_TARGET):
#   - builds build-fuzz/ (clang++-14, -O2 -gline-tables-only, libFuzzer, ASan+UBSan) via scripts/build.sh fuzz
#   - keeps a persistent working corpus in build-fuzz/corpus-TARGET, topped up on every run
#     with the seeds in tests/fuzz/corpus/TARGET/ (which is never written to)
#   - runs nproc jobs in parallel (-jobs = -workers = nproc; RINGMQ_FUZZ_JOBS overrides) for
#     SECONDS each; their logs go to build-fuzz/logs-TARGET/fuzz-N.log (libFuzzer's own
#     output to main.log there)
#   - writes crashes, leaks, timeouts and OOMs to tests/fuzz/artifacts/TARGET-* (git-ignored)
#   - prints each job's exec/s, their sum, and the coverage of the whole working corpus
# Exits 1 if a job found a crash (or any other failure), 0 otherwise.
# Example: scripts/fuzz.sh decoder 600
# Reproduce a crash: build-fuzz/tests/fuzz/fuzz_TARGET tests/fuzz/artifacts/TARGET-crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [[ $# -lt 2 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  [[ $# -ge 1 && ( "$1" == -h || "$1" == --help ) ]] && exit 0
  exit 2
fi
target=${1#fuzz_}
duration=$2
shift 2
if ! [[ "$duration" =~ ^[0-9]+$ && "$duration" -gt 0 ]]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$duration'" >&2
  exit 2
fi

scripts/install-deps.sh
echo "fuzz.sh: building build-fuzz/ ..."
build_log=$(mktemp)
trap 'rm -f "$build_log"' EXIT
if ! scripts/build.sh fuzz >"$build_log" 2>&1; then
  tail -n 60 "$build_log" >&2
  echo "fuzz.sh: the fuzz build failed" >&2
  exit 1
fi

# Every fuzz_* executable build-fuzz defines, as absolute paths (meson puts them beside their
# meson.build: build-fuzz/tests/fuzz/fuzz_NAME).
mapfile -t all_bins < <(meson introspect build-fuzz --targets 2>/dev/null | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin):
    if t.get("type") == "executable" and t.get("name", "").startswith("fuzz_"):
        print(t["filename"][0])
' 2>/dev/null || true)
bin=""
for b in "${all_bins[@]}"; do
  [[ "$(basename "$b")" == "fuzz_$target" ]] && bin=$b
done
if [[ -z "$bin" || ! -x "$bin" ]]; then
  echo "fuzz.sh: no fuzz target '$target' (expected tests/fuzz/$target.cc). Targets:" >&2
  for b in "${all_bins[@]}"; do
    echo "  $(basename "$b" | sed 's/^fuzz_//')" >&2
  done
  exit 2
fi
rel_bin=${bin#"$root"/}

corpus="$root/build-fuzz/corpus-$target"
seeds="$root/tests/fuzz/corpus/$target"
artifacts="$root/tests/fuzz/artifacts"
logs="$root/build-fuzz/logs-$target"
mkdir -p "$corpus" "$artifacts" "$logs"
rm -f "$logs"/fuzz-*.log "$logs/main.log"

# Top up the working corpus with any seed it does not hold yet (by file name).
added=0
if [[ -d "$seeds" ]]; then
  while IFS= read -r -d '' seed; do
    name=$(basename "$seed")
    if [[ ! -e "$corpus/$name" ]]; then
      cp "$seed" "$corpus/$name"
      added=$((added + 1))
    fi
  done < <(find "$seeds" -type f -print0)
else
  echo "fuzz.sh: note: no seed corpus at tests/fuzz/corpus/$target/"
fi

jobs=${RINGMQ_FUZZ_JOBS:-$(nproc)}
inputs=$(find "$corpus" -type f | wc -l)
echo "fuzz.sh: fuzz_$target, $jobs jobs x ${duration}s, corpus $inputs inputs ($added new seeds)"

marker="$logs/.start"
touch "$marker"
start=$SECONDS
rc=0
echo "fuzz.sh: running until $(date -d "+$duration seconds" +%T); watch with: tail -f ${logs#"$root"/}/fuzz-0.log"
# libFuzzer writes fuzz-N.log into the current directory when -jobs is given, and copies each
# job's whole log to its own output when the job ends: keep that in main.log.
(cd "$logs" && exec "$bin" -jobs="$jobs" -workers="$jobs" -max_total_time="$duration" \
  -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/$target-" -print_final_stats=1 \
  "$@" "$corpus") </dev/null >"$logs/main.log" 2>&1 || rc=$?
elapsed=$((SECONDS - start))

echo
echo "======== fuzz_$target: ${elapsed}s, exit status $rc ========"
total_execs=0
failed_jobs=0
for log in "$logs"/fuzz-*.log; do
  [[ -f "$log" ]] || continue
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  [[ -n "$done_line" ]] || done_line=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  total_execs=$((total_execs + ${execs:-0}))
  status=ok
  if grep -qE '==ERROR|runtime error:|deadly signal|ALARM: working on the last Unit|out-of-memory' "$log"; then
    status=FAILED
    failed_jobs=$((failed_jobs + 1))
  fi
  printf '%s: %s, %s exec/s  %s\n' "$(basename "$log" .log)" "$status" "${execs:-?}" "$done_line"
done
echo "exec/s (sum over jobs): $total_execs"

# Coverage of the whole working corpus: one pass over it, no mutation.
inputs=$(find "$corpus" -type f | wc -l)
cov_line=$("$bin" -runs=0 -rss_limit_mb=2048 -timeout=10 "$corpus" </dev/null 2>&1 \
  | grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' | tail -n 1 || true)
cov=$(sed -n 's/.*\(cov: [0-9]* ft: [0-9]*\).*/\1/p' <<<"$cov_line")
echo "coverage of build-fuzz/corpus-$target ($inputs inputs): ${cov:-unknown}"

new_artifacts=()
while IFS= read -r -d '' f; do
  new_artifacts+=("$f")
done < <(find "$artifacts" -maxdepth 1 -type f -name "$target-*" -newer "$marker" -print0)
if [[ ${#new_artifacts[@]} -gt 0 ]]; then
  echo "new artifacts:"
  for f in "${new_artifacts[@]}"; do
    echo "  ${f#"$root"/}   (reproduce: $rel_bin ${f#"$root"/})"
  done
fi
if [[ $rc -ne 0 || $failed_jobs -gt 0 || ${#new_artifacts[@]} -gt 0 ]]; then
  echo "fuzz_$target: FAILED (see ${logs#"$root"/}/fuzz-*.log and main.log)"
  exit 1
fi
echo "fuzz_$target: no crash"
