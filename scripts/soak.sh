#!/usr/bin/env bash
# Usage: scripts/soak.sh MINUTES [BINARY]
#
# A bounded soak test (not run in CI): starts ringmq (default build/ringmq, built by
# scripts/build.sh release if missing) with 2 shards and runs mixed traffic against it for
# MINUTES: QoS 0/1/2 publishers and subscribers (wildcards, retained, persistent sessions),
# clients that connect and disconnect in a loop, clients that vanish without DISCONNECT, and a
# trickle of refused and malformed CONNECTs. Every 10 s it prints the broker's RSS, open file
# descriptors and threads from /proc; at the end it checks that neither RSS nor fds grew after
# warm-up (the first fifth of the run, at least one minute): RSS at the end within 10% + 8 MiB of
# the warm sample, fds within 20. Exits non-zero on growth, a traffic error or a broker failure.
# Traffic runs in scripts/overload/soak_traffic.py; samples go to stdout as "soak: ..." lines.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ || "$1" -lt 1 ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 2
fi
minutes=$1
binary=${2:-build/ringmq}
if [[ ! -x "$binary" ]]; then
  scripts/build.sh release ringmq
fi
exec /usr/bin/python3 scripts/overload/soak_traffic.py --binary "$binary" --minutes "$minutes"
