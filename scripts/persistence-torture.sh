#!/usr/bin/env bash
# Usage: scripts/persistence-torture.sh [--binary BIN] [--kills N] [--duration SECONDS]
#                                       [--threads N] [--seed N]
#                                       [--rate MSGS_PER_S] [--publishers N] [--log-dir DIR]
#
# The long kill -9 loop of issue 15 (not run in CI; tests/integration/test_persistence.py runs
# a short one): starts ringmq (default build/ringmq, built by scripts/build.sh release if
# missing) with persistence on a temporary data directory and drives it with QoS 1/2
# publishers, persistent subscribers that are online, offline and reconnecting, and retained
# writers on both shards, while SIGKILLing the broker at random moments (--kill-min..--kill-max
# seconds apart) and restarting it on the same directory, for --duration seconds and at least
# --kills kills (defaults: 300 s, 20 kills, 2 threads; durability fsync, the mode that makes the
# promise: "interval" acknowledges before the log is written). Then it drains every subscriber
# and checks that every message whose PUBACK / PUBREC was received reached every matching
# persistent subscriber (QoS 1 at least once, QoS 2 exactly once), that nothing never
# published was delivered, and that the retained store holds the last acknowledged message
# per topic. The engine is tests/integration/persistence_torture.py (see its docstring; any
# of its flags may be given here). --log-dir keeps every broker run's stderr.
# Exits 1 on a violation (the seed to replay it is printed), 0 otherwise.
# Example: scripts/persistence-torture.sh --kills 50 --duration 900 --threads 3
set -euo pipefail
cd "$(dirname "$0")/.."

binary=build/ringmq
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    --binary) binary=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ ! -x "$binary" ]]; then
  scripts/build.sh release ringmq
fi
exec /usr/bin/python3 tests/integration/persistence_torture.py --binary "$binary" "${args[@]}"
