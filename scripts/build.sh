#!/usr/bin/env bash
# Usage: scripts/build.sh [release|debug|asan|tsan|fuzz] [ninja targets...]
#
# Configures (or reconfigures) and builds one flavour of ringmq:
#   release (default)  build/        g++, optimised, tests and benchmarks
#   debug              build-debug/  g++, -Dbuildtype=debug
#   asan               build-asan/   g++, ASan+UBSan, debug (mimalloc is off under sanitizers)
#   tsan               build-tsan/   g++, ThreadSanitizer, debug (for the multi-shard tests)
#   fuzz               build-fuzz/   clang++-14, libFuzzer targets with ASan+UBSan, -O2, line tables; also
#                                    the clang build of all of src/ with -Wthread-safety
# The asan, tsan and fuzz builds are unity builds (meson -Dunity=on; unity_size, below, .cc files
# of a target per compiled file): they parse the shared headers once per group instead of once per
# file (one group of src/shard/ took 0.38x the compiler CPU time of its 8 files compiled apart:
# docs/reliability.md, "CI stages"); so are the unit-test binaries, every test file included.
# release and debug stay one object per file (release is what is benchmarked; debug is for
# editing), except ringmq_unit_tests, a unity build in every flavour (tests/meson.build). A unity build fails where two .cc files of one target define the same file-local name
# (anonymous namespace, `static`, `using`, macro) in the same namespace: give one a distinct name,
# or move a helper both carry into a header.
# Extra arguments are ninja targets (e.g. `scripts/build.sh release ringmq`); none builds all.
# Environment: RINGMQ_JOBS overrides the ninja job count (default: nproc); RINGMQ_KEEP_GOING=1
# builds everything that can be built past a failure (ninja -k 0).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-release}
[[ $# -gt 0 ]] && shift

# Files per unity group (scripts/test.sh's sanitizer and fuzz stages; see docs/reliability.md).
unity=(-Dunity=on -Dunity_size=8)

case "$mode" in
  release)
    dir=build
    cxx=g++
    opts=(-Dbuildtype=release -Db_sanitize=none -Dtests=true -Dfuzz=false -Dunity_size=8)
    ;;
  debug)
    dir=build-debug
    cxx=g++
    opts=(-Dbuildtype=debug -Db_sanitize=none -Dtests=true -Dfuzz=false -Dunity_size=8)
    ;;
  asan)
    dir=build-asan
    cxx=g++
    # Benchmarks are not run under sanitizers; skipping them saves a good part of the build.
    opts=('-Db_sanitize=address,undefined' -Db_lundef=false -Dbuildtype=debug -Dtests=true
          -Dfuzz=false -Dbenchmarks=false "${unity[@]}")
    ;;
  tsan)
    dir=build-tsan
    cxx=g++
    opts=('-Db_sanitize=thread' -Db_lundef=false -Dbuildtype=debug -Dtests=true -Dfuzz=false
          -Dbenchmarks=false "${unity[@]}")
    ;;
  fuzz)
    dir=build-fuzz
    cxx=clang++-14
    # Optimised (-O2; RINGMQ_ASSERT is always on): at -O0 every std::vector and std::span
    # accessor is a call with coverage hooks, and the targets ran 3 to 10 times slower
    # (docs/reliability.md has the measurements). Debug information as line tables only
    # (-gline-tables-only after debugoptimized's -g: the last one wins): a crash's stack trace
    # still names file and line, and a unity group of src/ compiled in 23 CPU-seconds against
    # 30 with full -g (2026-12-08).
    opts=(-Dfuzz=true -Dtests=false -Dbenchmarks=false '-Db_sanitize=address,undefined'
          -Db_lundef=false -Dbuildtype=debugoptimized
          "-Dcpp_args=['-fsanitize=fuzzer-no-link','-gline-tables-only']"
          "${unity[@]}")
    ;;
  -h|--help|help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "build.sh: unknown mode '$mode' (expected release, debug, asan, tsan or fuzz)" >&2
    exit 2
    ;;
esac

command -v "$cxx" >/dev/null 2>&1 || {
  echo "build.sh: $cxx not found; run scripts/install-deps.sh" >&2
  exit 1
}

# The C++ compiler a configured build dir was set up with ("gcc", "clang"), or nothing.
configured_compiler() {
  local intro="$1/meson-info/intro-compilers.json"
  [[ -f "$intro" ]] || return 0
  /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("host",{}).get("cpp",{}).get("id",""))' \
    "$intro" 2>/dev/null || true
}

want_id=gcc
[[ "$cxx" == clang* ]] && want_id=clang

if [[ -f "$dir/meson-private/coredata.dat" ]]; then
  have_id=$(configured_compiler "$dir")
  if [[ -n "$have_id" && "$have_id" != "$want_id" ]]; then
    # The compiler is fixed at first setup; a dir set up with another one must start over.
    echo "build.sh: $dir was configured with $have_id, not $want_id; wiping it" >&2
    CXX=$cxx meson setup --wipe "$dir" "${opts[@]}"
  elif ! meson setup --reconfigure "$dir" "${opts[@]}" >"$dir/.reconfigure.log" 2>&1; then
    cat "$dir/.reconfigure.log" >&2
    echo "build.sh: reconfigure of $dir failed" >&2
    exit 1
  fi
else
  CXX=$cxx meson setup "$dir" "${opts[@]}"
fi

jobs=${RINGMQ_JOBS:-$(nproc)}
keep_going=()
[[ "${RINGMQ_KEEP_GOING:-0}" == 1 ]] && keep_going=(-k 0)
exec ninja -C "$dir" -j"$jobs" "${keep_going[@]}" "$@"
