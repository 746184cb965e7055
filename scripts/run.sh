#!/usr/bin/env bash
# Usage: scripts/run.sh [ringmq flags...]
#
# Installs missing dependencies, builds the release binary (build/) and runs the broker in the
# foreground, listening on 127.0.0.1:1883 unless told otherwise, e.g.
#   scripts/run.sh                                  # 127.0.0.1:1883
#   scripts/run.sh --port 1884 --log-level debug
#   scripts/run.sh --config ringmq.toml             # bind/port from the file (or ringmq's defaults)
# Later flags win in ringmq's parser, and every flag overrides the --config file, so the
# --bind/--port defaults are only added when neither that flag nor --config is given.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/build.sh release ringmq  # just the broker: a broken test or benchmark must not stop it

# has_flag NAME ARGS...: true if ARGS contain --NAME or --NAME=VALUE.
has_flag() {
  local name=$1 arg
  shift
  for arg in "$@"; do
    [[ "$arg" == "--$name" || "$arg" == "--$name="* ]] && return 0
  done
  return 1
}

defaults=()
if ! has_flag config "$@"; then
  has_flag bind "$@" || defaults+=(--bind 127.0.0.1)
  has_flag port "$@" || defaults+=(--port 1883)
fi

exec build/ringmq "${defaults[@]}" "$@"
