#!/usr/bin/env bash
# Usage: scripts/install-deps.sh
#
# Installs the Debian 12 packages ringmq needs to build and test, and only those that are
# missing (checked with dpkg-query). Non-interactive; uses sudo when not run as root. Runs
# `apt-get update` only when something has to be installed. Prints nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential g++ meson ninja-build pkg-config
  liburing-dev libmimalloc-dev libabsl-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
  mosquitto mosquitto-clients
  openssl
  haproxy
  nats-server
  prometheus
  python3 python3-paho-mqtt python3-cryptography
  nodejs npm chromium
  systemd
  strace
)

die() {
  echo "install-deps: error: $*" >&2
  exit 1
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != *" ok installed" ]]; then
    # Debian's nodejs comes without npm (the npm package); NodeSource's nodejs bundles it and
    # conflicts with Debian's npm. Either way the tests need only the command.
    if [[ "$pkg" == npm ]] && command -v npm >/dev/null 2>&1; then
      continue
    fi
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "not root and sudo is not available; run as root or install: ${missing[*]}"
  SUDO=(sudo)
fi
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0)

echo "install-deps: installing ${missing[*]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Run an apt-get command, retrying once after a pause (mirror hiccups, a held dpkg lock).
apt_retry() {
  local attempt
  for attempt in 1 2; do
    if "${APT[@]}" "$@" >"$log" 2>&1; then
      return 0
    fi
    if [[ $attempt -eq 1 ]]; then
      echo "install-deps: 'apt-get $*' failed, retrying in 10 s" >&2
      sleep 10
    fi
  done
  tail -n 30 "$log" >&2
  return 1
}

apt_retry update || die "apt-get update failed"
apt_retry install --no-install-recommends "${missing[@]}" \
  || die "could not install: ${missing[*]} (see apt-get output above)"

# Check again, so a package that apt skipped silently still fails here.
still=()
for pkg in "${missing[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == *" ok installed" ]] || still+=("$pkg")
done
[[ ${#still[@]} -eq 0 ]] || die "still missing after install: ${still[*]}"
echo "install-deps: done"
