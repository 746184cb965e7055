"""Broker fixture: start the binary under test on a free 127.0.0.1 port, stop it, read counters.

The binary comes from the RINGMQ_BINARY environment variable (run.py sets it). If that names
Mosquitto (`/usr/sbin/mosquitto`), a development mode runs Mosquitto instead with a generated
config so that the client-side code can be exercised before ringmq exists; Mosquitto prints no
counters, so counter assertions are skipped in that mode (and only in that mode).
"""

import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import mqtt_raw

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# Counters the broker must print on exit (summed over shards).
CONNECT_COUNTERS = (
    "connections_accepted",
    "connect_accepted",
    "connect_malformed",
    "connect_unsupported_protocol",
    "connect_client_id_empty_persistent",
    "connect_client_id_empty_mqtt31",
    "connect_client_id_too_long",
    "connect_client_id_not_allowed",
    "connect_connection_limit",
    "connect_listener_connection_limit",
    "connect_address_connection_limit",
    "connect_address_rate_limit",
    "connect_auth_rate_limit",
    "connect_bad_credentials",
    "connect_not_authorized",
    "connect_client_id_reserved",
    "connect_will_sys_topic",
    "connect_closed_silent_policy",
    "connect_timeout",
    "keepalive_timeout",
    "packet_too_large",
    "connect_packet_too_large",
)
# Message routing (sessions, subscriptions, delivery, limits).
ROUTING_COUNTERS = (
    "publish_dropped_no_subscribers",
    "sessions_created",
    "session_takeovers",
    "sessions_expired",
    "sessions_evicted",
    "connections_handed_off",
    "wills_published",
    "wills_delayed",
    "wills_cancelled",
    "publish_duplicates",
    "subscriptions_added",
    "subscriptions_removed",
    "dropped_queue_full",
    "dropped_bytes_cap",
    "slow_consumer_disconnects",
    "dropped_offline_qos0",
    "mailbox_full",
    "mailbox_overflow",
    "handoffs_dropped",
    "bytes_delivered",
    "publish_sent_qos0",
    "publish_sent_qos1",
    "publish_sent_qos2",
    "publish_dropped_sys_topic",
    "sys_messages_published",
    "publish_denied",
    "subscribe_denied",
    "subscribe_filtered",
    "deliver_denied",
    "subscribe_limit",
    "inbound_qos2_limit",
    "subscribe_deferred",
    "receive_paused",
    "retained_live_superseded",
    "retained_fence_full",
    "retained_refused",
    "retained_walk_truncated",
    "shared_no_member",
)
REQUIRED_COUNTERS = CONNECT_COUNTERS + ROUTING_COUNTERS
# Routing outcomes that mean a message was dropped, published for a lost client or taken over:
# a test that causes one names it, so anywhere else a non-zero value is caught.
ROUTING_OUTCOME_COUNTERS = (
    "session_takeovers",
    "sessions_expired",
    "sessions_evicted",
    "wills_published",
    "wills_delayed",
    "wills_cancelled",
    "publish_duplicates",
    "dropped_queue_full",
    "dropped_bytes_cap",
    "slow_consumer_disconnects",
    "dropped_offline_qos0",
    "mailbox_overflow",
    "handoffs_dropped",
    "publish_dropped_sys_topic",
    "publish_denied",
    "subscribe_denied",
    "subscribe_filtered",
    "deliver_denied",
    "subscribe_limit",
    "inbound_qos2_limit",
    "retained_fence_full",
    "retained_refused",
    "retained_walk_truncated",
)
# The outcome counters that assert_counters() requires to be 0 unless a test names them.
OUTCOME_COUNTERS = CONNECT_COUNTERS[1:] + ROUTING_OUTCOME_COUNTERS

KERNEL_MISSING_PREFIX = "kernel feature missing:"

# Brokers started by the current test, so the runner can print their stderr when it fails.
STARTED = []
# Every broker process still running, so the runner's watchdog can kill them.
LIVE = set()


def require_kernel_features():
    """Skips the calling test, with the reason the runner accepts, if io_uring is unusable."""
    missing = os.environ.get("RINGMQ_KERNEL_MISSING")
    if missing and not is_mosquitto():
        raise unittest.SkipTest(f"{KERNEL_MISSING_PREFIX} {missing}")


def binary():
    path = os.environ.get("RINGMQ_BINARY")
    if not path:
        raise RuntimeError("RINGMQ_BINARY is not set; run the suite through run.py --binary")
    return path


def is_mosquitto(path=None):
    return os.path.basename(path or binary()).startswith("mosquitto")


def built_tool(*relative):
    """A program of the build (e.g. "bench", "loadgen", "ringmq-bench") next to the broker under
    test, else the release build's (the broker under test may be Mosquitto, or a sanitizer build
    without benchmarks)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = []
    if not is_mosquitto():
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(binary())), *relative))
    candidates.append(os.path.join(root, "build", *relative))
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise AssertionError(f"{relative[-1]} is not built (looked at {candidates}); "
                         "build it with scripts/build.sh release")


def release_only(reason):
    """Marks a test class or method to run in the release integration stage only: run.py
    --skip-release-only (what scripts/test.sh passes in its sanitizer stages) leaves it out, and
    says so with `reason`. For tests a sanitizer build of the broker cannot change (they never
    start it: the NATS fixture, Mosquitto, the load generators) and for timing and throughput
    workloads, whose memory-safety coverage other tests that do run under sanitizers give."""
    def mark(obj):
        obj.ringmq_release_only = reason
        return obj
    return mark


_SANITIZED = {}


def is_sanitized(path=None):
    """True if the binary was built with AddressSanitizer or ThreadSanitizer: its memory figures
    then include shadow memory, redzones and the quarantine, so RSS bounds need that slack."""
    path = path or binary()
    if path not in _SANITIZED:
        with open(path, "rb") as f:
            data = f.read()
        _SANITIZED[path] = b"__asan_init" in data or b"__tsan_init" in data
    return _SANITIZED[path]


def _local_port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


_HANDED_OUT = set()


def free_port():
    """A port to listen on that nothing uses now. Not one the kernel would pick for bind(0) or
    as a client socket's ephemeral port: those come from ip_local_port_range, where any test's
    outgoing connection could take the port between this probe and the server's bind (servers
    then failed with "address already in use"). So a random free port below that range, never
    the same twice in this process; random, so that parallel workers rarely pick the same one
    (and the NATS fixture retries a start that lost such a race)."""
    low, _ = _local_port_range()
    first, last = 10000, low - 1
    rng = random.SystemRandom()
    if last - first > 1000:
        for _ in range(200):
            port = rng.randint(first, last)
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((mqtt_raw.HOST, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((mqtt_raw.HOST, 0))
        return s.getsockname()[1]


def parse_counters(line):
    """`... counters: a=1 b=2` -> {"a": 1, "b": 2}."""
    text = line.split("counters:", 1)[1]
    counters = {}
    for item in text.split():
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"-?\d+", value):
            raise AssertionError(f"counters line has a malformed item {item!r}: {line!r}")
        counters[name] = int(value)
    return counters


class Broker:
    """One broker process. Use start()/stop() or `with Broker(...) as b:`."""

    def __init__(self, *flags, threads=2, log_level="debug", binary_path=None, port=None,
                 metrics=False):
        """`metrics`: serve /metrics on a free port (self.metrics_port); otherwise the endpoint
        is off (--metrics-port 0) unless `flags` set it, so parallel brokers never collide on
        the default port."""
        self.binary = binary_path or binary()
        self.metrics = metrics
        self.metrics_port = None
        self.fixed_port = port
        self.flags = [str(f) for f in flags]
        self.threads = threads
        self.log_level = log_level
        self.port = None
        self.proc = None
        self.lines = []
        self.counters = None
        self.returncode = None
        self.health_checks = 0  # CONNACK-0 connections made by BrokerTestCase.assert_serves
        self._cond = threading.Condition()
        self._reader = None
        self._tmpdir = None
        self.mosquitto = is_mosquitto(self.binary)

    # -- lifecycle ------------------------------------------------------------------------------

    def argv(self, port):
        if self.mosquitto:
            return [self.binary, "-c", self._mosquitto_config(port)]
        argv = [self.binary, "--bind", mqtt_raw.HOST, "--port", str(port),
                "--threads", str(self.threads)]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        if "--metrics-port" not in self.flags:
            argv += ["--metrics-port", str(self.metrics_port or 0)]
        return argv + self.flags

    def start(self):
        require_kernel_features()
        STARTED.append(self)
        for attempt in range(3):
            self.port = self.fixed_port or free_port()
            if self.metrics:
                self.metrics_port = free_port()
            self.lines = []
            self.proc = subprocess.Popen(self.argv(self.port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            LIVE.add(self.proc)
            self._reader = threading.Thread(target=self._read_stderr, daemon=True)
            self._reader.start()
            if self._wait_ready() and (not self.mosquitto or self._poll_listening()):
                return self
            self._reap()
            if attempt < 2 and not self.fixed_port and "in use" in self.stderr().lower():
                continue  # lost the race for the port: try another
            raise AssertionError(
                f"broker did not become ready within {READY_TIMEOUT}s "
                f"(exit code {self.returncode}); argv={self.argv(self.port)}\n"
                f"stderr:\n{self.stderr_tail()}")
        raise AssertionError("unreachable")

    def _ready_marker(self):
        if self.mosquitto:
            return f"listen socket on port {self.port}"
        return f"ready: accepting connections on {mqtt_raw.HOST}:{self.port}"

    def _wait_ready(self):
        marker = self._ready_marker()
        deadline = time.monotonic() + READY_TIMEOUT
        with self._cond:
            while True:
                if any(marker in line for line in self.lines):
                    return True
                if self.proc.poll() is not None and not self._reader.is_alive():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))

    def _poll_listening(self):
        # Mosquitto logs its marker before it listens: poll until a connect succeeds.
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection((mqtt_raw.HOST, self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.01)
        return False

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _reap(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.returncode = self.proc.wait(STOP_TIMEOUT)
        finally:
            LIVE.discard(self.proc)
            if self._reader:
                self._reader.join(2)
            self.proc.stderr.close()

    def metrics_url(self):
        if not self.metrics_port:
            raise AssertionError("broker started without metrics=True")
        return f"http://{mqtt_raw.HOST}:{self.metrics_port}/metrics"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Signals the broker, asserts a clean exit (code 0) and returns its counters.

        Returns None only in Mosquitto development mode (Mosquitto prints no counters).
        """
        if self.proc is None:
            raise AssertionError("broker was never started")
        if self.returncode is not None:
            return self.counters
        if self.proc.poll() is not None:
            self._reap()
            raise AssertionError(f"broker died before stop with exit code {self.returncode}\n"
                                 f"stderr:\n{self.stderr_tail()}")
        self.proc.send_signal(sig)
        try:
            self.returncode = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._reap()
            raise AssertionError(f"broker did not exit within {STOP_TIMEOUT}s of "
                                 f"{signal.Signals(sig).name}\nstderr:\n{self.stderr_tail()}")
        self._reap()
        if self.returncode != 0:
            raise AssertionError(f"broker exited with code {self.returncode} after "
                                 f"{signal.Signals(sig).name}, expected 0\n"
                                 f"stderr:\n{self.stderr_tail()}")
        if self.mosquitto:
            return None
        lines = [line for line in self.lines if "counters:" in line]
        if not lines:
            raise AssertionError(f"no 'counters:' line on stderr at exit\n"
                                 f"stderr:\n{self.stderr_tail()}")
        self.counters = parse_counters(lines[-1])
        missing = [name for name in REQUIRED_COUNTERS if name not in self.counters]
        if missing:
            raise AssertionError(f"counters line lacks {missing}: {lines[-1]!r}")
        return self.counters

    def cleanup(self):
        """Kills the broker if a test left it running (no assertions)."""
        self._reap()
        if self._tmpdir:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- diagnostics ----------------------------------------------------------------------------

    def status_kib(self, field):
        """A `kB` field of /proc/PID/status (VmRSS, VmHWM, ...) of the running broker."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"/proc/{self.proc.pid}/status has no {field}")

    def stderr(self):
        with self._cond:
            return "\n".join(self.lines)

    def stderr_tail(self, n=60):
        with self._cond:
            lines = self.lines[-n:]
        return "\n".join(lines) if lines else "(empty)"

    def wait_for_log(self, pattern, timeout=5.0):
        """Waits for a stderr line matching the regex `pattern`; returns it or None."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if regex.search(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.05))

    # -- Mosquitto development mode -------------------------------------------------------------

    def _mosquitto_config(self, port):
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="ringmq-integ-")
        lines = [f"listener {port} {mqtt_raw.HOST}", "allow_anonymous true",
                 "log_dest stderr", "log_type all"]
        flags = iter(self.flags)
        for flag in flags:
            if flag == "--max-connections":
                lines.append(f"max_connections {next(flags)}")
            elif flag == "--max-packet-size":
                lines.append(f"max_packet_size {next(flags)}")
            elif flag == "--max-inflight":
                lines.append(f"max_inflight_messages {next(flags)}")
            elif flag == "--max-queued-messages":
                lines.append(f"max_queued_messages {next(flags)}")
            elif flag == "--max-queued-bytes":
                lines.append(f"max_queued_bytes {next(flags)}")
        path = os.path.join(self._tmpdir.name, f"mosquitto-{port}.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path


class BrokerTestCase(unittest.TestCase):
    """Base class: brokers started with start_broker() are killed after the test."""

    def start_broker(self, *flags, **kwargs):
        broker = Broker(*flags, **kwargs)
        self.addCleanup(broker.cleanup)
        broker.start()
        return broker

    def assert_serves(self, broker, client_id=None, **fields):
        """The broker still serves a good client: CONNACK 0, PINGRESP, close on DISCONNECT."""
        broker.health_checks += 1
        client_id = client_id if client_id is not None else f"ok{broker.health_checks}"
        try:
            sock = mqtt_raw.connect_client(broker.port, client_id, **fields)
        except AssertionError as e:
            raise AssertionError(f"a good client ({client_id!r}) was not served: {e}") from None
        except OSError as e:
            raise AssertionError(f"a good client ({client_id!r}) could not connect: {e!r}")
        with sock:
            mqtt_raw.ping(sock)
            mqtt_raw.disconnect(sock)

    def assert_counters(self, counters, **expected):
        """Asserts counters by name. Outcome counters not named must be 0; a value of None
        means "not checked". No-op in Mosquitto development mode (counters is None)."""
        if counters is None:
            return
        for name in OUTCOME_COUNTERS:
            expected.setdefault(name, 0)
        wrong = {name: (counters.get(name), want) for name, want in expected.items()
                 if want is not None and counters.get(name) != want}
        if wrong:
            detail = ", ".join(f"{n}={got} (expected {want})" for n, (got, want) in wrong.items())
            self.fail(f"counters differ: {detail}; all counters: {counters}")

    def assert_counters_at_least(self, counters, **minimums):
        """Asserts counters by name are >= the given minimums (no-op for Mosquitto)."""
        if counters is None:
            return
        wrong = {name: (counters.get(name), low) for name, low in minimums.items()
                 if counters.get(name) is None or counters.get(name) < low}
        if wrong:
            detail = ", ".join(f"{n}={got} (expected >= {low})" for n, (got, low) in wrong.items())
            self.fail(f"counters too low: {detail}; all counters: {counters}")
