"""Shared pieces of the overload and fault scripts (scripts/overload/*.py).

Each script is both a command (`/usr/bin/python3 scripts/overload/NAME.py --binary B ...`, full
size, figures printed for docs/reliability.md) and a module whose run(port, ...) the light
integration tests (tests/integration/test_overload.py) call with small sizes. The broker
fixture is the integration suite's (tests/integration/broker.py); raw MQTT is mqtt_raw.py.
"""

import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTEGRATION = os.path.join(ROOT, "tests", "integration")
if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)

import broker  # noqa: E402
import mqtt_raw  # noqa: E402,F401  (re-exported for the scripts)


def raise_nofile(want):
    """Raises the soft RLIMIT_NOFILE towards `want` (bounded by the hard limit); returns it.
    Brokers started afterwards inherit it (and raise their own soft limit to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_broker(binary, *flags, threads=2):
    """A ringmq broker on a free port with the given flags (log level warning: quiet at scale)."""
    os.environ["RINGMQ_BINARY"] = os.path.abspath(binary)
    b = broker.Broker(*flags, threads=threads, log_level="warning")
    b.start()
    return b


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values, p):
    """The p-th percentile (0..100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def report(name, figures):
    """Prints the figures as one JSON line (docs/reliability.md quotes them)."""
    print(f"{name}: " + json.dumps(figures, sort_keys=True))


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
