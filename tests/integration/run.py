#!/usr/bin/python3
"""Integration test runner for ringmq.

    /usr/bin/python3 tests/integration/run.py --binary BUILD/ringmq [-k PATTERN]... [-j N]
                                             [--skip-release-only]

Discovers tests/integration/test_*.py with unittest, passes the binary to the tests through the
RINGMQ_BINARY environment variable, prints one line per test and, as its last line,
`integration: N passed, M failed`. Skipped tests count as failures, except those skipped because
a kernel feature the broker needs (io_uring) is missing here: those are listed with the reason and
counted in neither number. Exit status is non-zero on any failure.

With -j N (N > 1) the test classes are shared out over N worker processes (this script again,
with --worker), longest expected first (EXPECTED_SECONDS), so that the suite's waits on sockets
and sleeps overlap. Each worker prints its tests' lines as a serial run does, with the same
watchdog; the parent copies each test's block of lines whole (blocks of different workers never
interleave) and sums the workers' counts into the one last line.

With --skip-release-only (scripts/test.sh's sanitizer stages) the tests marked
broker.release_only are left out, each class with a line saying why; they run in the release
stage, which never passes it, so that every test runs in at least one stage.
"""

import argparse
import ctypes
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import broker  # noqa: E402  (needs sys.path)

# The backstop if something hangs, per process (each -j worker has its own): a serial release run
# takes about 5 minutes on 2 cores, an ASan run about 1.5 times that. RINGMQ_INTEGRATION_WATCHDOG
# (seconds) overrides it.
WATCHDOG_SECONDS = int(os.environ.get("RINGMQ_INTEGRATION_WATCHDOG", "900"))

# A worker ends each test's block of lines with this line, so that the parent can copy the block
# whole; the parent never prints it.
END_OF_TEST = "\x1e end of test"
# A worker's last line: its counts, for the parent to sum.
WORKER_COUNTS = "\x1e counts"
# A worker's line per test skipped for a missing kernel feature (the parent lists them at the end).
KERNEL_SKIP = "\x1e kernel skip "

# How long each test class takes, for -j N to deal the longest out first: every run records the
# seconds its classes took in DURATIONS_FILE next to the binary (so release and ASan builds keep
# their own), and the next run reads them. Without that file (a fresh build directory) this table
# stands in: the classes over 3 s of a release run with -j2 on 2 cores; any other class counts
# DEFAULT_TEST_SECONDS per test.
DURATIONS_FILE = "integration-durations.json"
EXPECTED_SECONDS = {
    "test_persistence.KillLoop": 48.9,
    "test_nats_link.Cluster": 22.0,
    "test_nats_cluster.KeyValue": 16.0,
    "test_nats_cluster.NatsBenchTool": 12.0,
    "test_overload.Overload": 19.0,
    "test_memory.MemoryBudget": 17.0,
    "test_websockets.BrowserTest": 16.8,
    "test_mqtt5_pubsub.Mqtt5PubSub": 15.9,
    "test_bench.Bench": 14.8,
    "test_nats_link.SingleServer": 7.0,
    "test_cluster.ClusterTest": 9.0,
    "test_cluster_acks.ClusterAcksTest": 8.0,
    "test_cluster_acks.ClusterGroupAcksTest": 8.0,
    "test_cluster_batch.ClusterBatchTest": 8.0,
    "test_cluster_soak.ClusterSoak": 18.0,
    "test_cluster_bench.BenchClusterScript": 13.0,
    "test_cluster_bench.BenchPorts": 5.0,
    "test_cluster_haproxy.HaproxyCluster": 3.0,
    "test_cluster_owner.ClusterOwnerTest": 6.0,
    "test_cluster_session.ClusterSessionTest": 10.0,
    "test_cluster_session.ClusterSessionPersistTest": 8.0,
    "test_cluster_shared.ClusterSharedTest": 12.0,
    "test_cluster_props.ClusterPropsTest": 9.6,
    "test_cluster_retained.ClusterRetainedTest": 18.0,
    "test_cluster_retained.ClusterRetainedOutageTest": 12.0,
    "test_retained_race.RetainedRace": 12.8,
    "test_bench.BenchTransports": 11.8,
    "test_mqtt5_expiry.SessionExpiry": 8.1,
    "test_persistence.RestartKeepsSessions": 7.6,
    "test_prometheus.PrometheusScrape": 7.2,
    "test_session_basics.KeepAlive": 7.0,
    "test_sys.SysTopics": 6.4,
    "test_mqtt5_pubsub.Mqtt5OutboundTopicAliases": 6.3,
    "test_sessions.OfflineSessions": 6.0,
    "test_many_shards.ManyShards": 5.7,
    "test_mqtt5_expiry.WillDelay": 5.3,
    "test_mqtt5_auth.Scram": 5.1,
    "test_persistence.DiskFull": 5.0,
    "test_retained.Retained": 4.6,
    "test_bench.BenchTransportsRingmq": 4.5,
    "test_idle_memory.IdleMemory": 4.0,
    "test_persistence.ThreadCountChange": 3.9,
    "test_persistence_disk.CompactionTest": 3.5,
    "test_sessions.Wills": 3.4,
    "test_mqtt5_connect.AfterConnect": 3.3,
    "test_connect.MalformedConnect": 3.2,
    "test_cli.StartupErrors": 3.1,
    "test_mqtt5_connect.LingeringClose": 3.0,
}
DEFAULT_TEST_SECONDS = 0.5

# Classes whose bounds assume the broker has the machine to itself: with -j N they run after the
# other workers are done, in one worker of their own. MemoryBudget allows the accounted memory
# 10 % over max_memory for what arrives between two refreshes of a shard's view; with another
# worker's ASan broker on the same 2 cores a shard's loop iteration stalled for 100+ ms and the
# overshoot reached 13 %.
RUN_ALONE = {"test_memory.MemoryBudget"}


def probe_io_uring():
    """Returns None if io_uring_setup works here, else why not."""
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            if f.read().strip() == "2":
                return "io_uring is disabled (kernel.io_uring_disabled=2)"
    except OSError:
        pass
    libc = ctypes.CDLL(None, use_errno=True)
    nr_io_uring_setup = 425  # the same number on x86_64 and aarch64 (unified syscall table)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(nr_io_uring_setup, 4, params)
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM, errno.EACCES):
        return f"io_uring_setup failed: {errno.errorcode.get(err, err)} ({os.strerror(err)})"
    return None  # some other error: let the broker report it


class Result(unittest.TestResult):
    def __init__(self, stream, kernel_missing, worker=False):
        super().__init__()
        self.stream = stream
        self.kernel_missing = kernel_missing
        self.worker = worker
        self.durations = {}  # class_key -> seconds its tests took
        self._subtest_failed = False
        self.passed = []
        self.failed = []
        self.kernel_skips = []
        self._start = 0.0
        self.current = None

    def _line(self, status, test, detail=""):
        elapsed = time.monotonic() - self._start
        self.stream.write(f"{status:4} {test.id()} ({elapsed:.2f}s){detail}\n")
        self.stream.flush()

    def _broker_logs(self):
        out = []
        for b in broker.STARTED:
            out.append(f"--- broker stderr (port {b.port}, argv {' '.join(b.argv(b.port))}):\n"
                       f"{b.stderr_tail(80)}\n")
        return "".join(out)

    def startTest(self, test):
        super().startTest(test)
        broker.STARTED.clear()
        self.current = test.id()
        self._start = time.monotonic()
        self._subtest_failed = False

    def stopTest(self, test):
        # unittest calls neither addSuccess nor addFailure for a test whose only failures were
        # in subtests: without this, such a test counted in neither number.
        if self._subtest_failed and test not in self.failed:
            self._fail(test, "failure", "(the failed subtests are above)")
        super().stopTest(test)
        key = class_key(test)
        elapsed = time.monotonic() - self._start
        self.durations[key] = self.durations.get(key, 0.0) + elapsed
        if self.worker:
            self.stream.write(f"{END_OF_TEST} {key} {elapsed:.3f}\n")
            self.stream.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)
        self._line("PASS", test)

    def _fail(self, test, kind, text):
        self.failed.append(test)
        self._line("FAIL", test, f" [{kind}]")
        self.stream.write(text.rstrip() + "\n" + self._broker_logs())
        self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, "error", self._exc_info_to_string(err, test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._subtest_failed = True
            self.stream.write(f"     subtest {subtest.id()} failed:\n"
                              f"{self._exc_info_to_string(err, test).rstrip()}\n")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self.kernel_missing and reason.startswith(broker.KERNEL_MISSING_PREFIX):
            self.kernel_skips.append(test)
            self._line("SKIP", test, f" {reason}")
        else:
            self._fail(test, "skipped, counted as failure", f"skip reason: {reason}")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._fail(test, "expected failure is not allowed", self._exc_info_to_string(err, test))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._fail(test, "unexpected success", "")

    def summary(self):
        return f"integration: {len(self.passed)} passed, {len(self.failed)} failed"


def class_key(test):
    """The unit a parallel run shares out: `module.Class` (a module that failed to import is its
    own unit, keyed by its _FailedTest id)."""
    if isinstance(test, unittest.loader._FailedTest):
        return test.id()
    return f"{type(test).__module__}.{type(test).__qualname__}"


def leaf_tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from leaf_tests(item)
        else:
            yield item


def discover(patterns):
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    return loader.discover(start_dir=HERE, pattern="test_*.py", top_level_dir=HERE)


def release_only_reason(test):
    """Why `test` runs in the release stage only (broker.release_only on its method or class),
    or None."""
    method = getattr(type(test), getattr(test, "_testMethodName", ""), None)
    return (getattr(method, "ringmq_release_only", None)
            or getattr(type(test), "ringmq_release_only", None))


def without_release_only(suite, announce):
    """The leaf tests of `suite` not marked release_only; with `announce`, prints one line per
    class left out (how many tests, and why)."""
    kept, left_out = [], {}
    for test in leaf_tests(suite):
        reason = release_only_reason(test)
        if reason is None:
            kept.append(test)
        else:
            count, _ = left_out.get(class_key(test), (0, reason))
            left_out[class_key(test)] = (count + 1, reason)
    if announce:
        for key, (count, reason) in sorted(left_out.items()):
            print(f"release only, not run here: {key} ({count} tests): {reason}")
    return unittest.TestSuite(kept)


def durations_path(binary):
    """DURATIONS_FILE next to a ringmq binary, or None (Mosquitto, or a directory not ours)."""
    directory = os.path.dirname(binary)
    if broker.is_mosquitto(binary) or not os.access(directory, os.W_OK):
        return None
    return os.path.join(directory, DURATIONS_FILE)


def load_durations(binary):
    path = durations_path(binary)
    try:
        with open(path) as f:
            recorded = json.load(f)
        return {k: float(v) for k, v in recorded.items()}
    except (TypeError, OSError, ValueError, AttributeError):
        return {}  # none yet (or unreadable): the table stands in


def save_durations(binary, durations):
    """Merges this run's class durations into the recorded ones (a -k run updates its classes
    only). Best effort: the file only orders a later -j run."""
    path = durations_path(binary)
    if path is None or not durations:
        return
    merged = load_durations(binary)
    merged.update({k: round(v, 2) for k, v in durations.items()})
    try:
        with open(path + ".tmp", "w") as f:
            json.dump(merged, f, indent=0, sort_keys=True)
        os.replace(path + ".tmp", path)
    except OSError as e:
        print(f"note: could not record test durations in {path}: {e}")


def deal(counts, jobs, recorded):
    """Shares the classes out over `jobs` workers: longest expected first, each to the worker
    with the least expected work so far. Returns [(expected seconds, [class keys])]."""
    cost = {k: recorded.get(k, EXPECTED_SECONDS.get(k, DEFAULT_TEST_SECONDS * n))
            for k, n in counts.items()}
    shares = [[0.0, []] for _ in range(min(jobs, len(counts)))]
    for key in sorted(counts, key=lambda k: (-cost[k], k)):
        share = min(shares, key=lambda s: s[0])
        share[0] += cost[key]
        share[1].append(key)
    return shares


def run_workers(args, binary, kernel_missing):
    """Runs the suite in args.jobs worker processes; prints and returns like a serial run."""
    counts = {}
    suite = discover(args.patterns)
    if args.skip_release_only:
        suite = without_release_only(suite, announce=True)
    for test in leaf_tests(suite):
        counts[class_key(test)] = counts.get(class_key(test), 0) + 1
    if not counts:
        print("ran 0 tests in 0.0s")
        print("run.py: no test matched", file=sys.stderr)
        print("integration: 0 passed, 0 failed")
        return 1
    alone = [k for k in counts if k in RUN_ALONE]
    shares = deal({k: n for k, n in counts.items() if k not in RUN_ALONE}, args.jobs,
                  load_durations(binary))
    print(f"note: -j {args.jobs}: {len(counts) - len(alone)} test classes over {len(shares)} "
          f"workers (expected {', '.join(f'{s[0]:.0f}s' for s in shares)})"
          + (f", then {len(alone)} alone" if alone else ""), flush=True)

    out_lock = threading.Lock()
    totals = {"passed": 0, "failed": 0, "run": 0}
    durations = {}
    kernel_skips = []
    procs = []

    def emit(lines):
        if lines:
            with out_lock:
                sys.stdout.write("".join(lines))
                sys.stdout.flush()

    def read(index, proc):
        pending = []
        got_counts = False
        for line in proc.stdout:
            if line.startswith(WORKER_COUNTS):
                passed, failed, run = (int(x) for x in line[len(WORKER_COUNTS):].split())
                got_counts = True
            elif line.startswith(KERNEL_SKIP):
                kernel_skips.append(line[len(KERNEL_SKIP):].strip())
            elif line.startswith(END_OF_TEST):
                key, elapsed = line[len(END_OF_TEST):].split()
                with out_lock:
                    durations[key] = durations.get(key, 0.0) + float(elapsed)
                emit(pending)
                pending = []
            else:
                pending.append(line)
        emit(pending)
        status = proc.wait()
        with out_lock:
            if not got_counts:
                passed, failed, run = 0, 1, 0
                sys.stdout.write(f"FAIL run.py worker {index} exited with status {status} "
                                 "before its counts (its tests so far are not counted)\n")
                sys.stdout.flush()
            totals["passed"] += passed
            totals["failed"] += failed
            totals["run"] += run

    def launch(index, keys):
        argv = [sys.executable, os.path.abspath(__file__), "--binary", binary,
                "--worker", ",".join(keys)]
        for pattern in args.patterns:
            argv += ["-k", pattern]
        if args.skip_release_only:
            argv.append("--skip-release-only")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        procs.append(proc)
        reader = threading.Thread(target=read, args=(index, proc), daemon=True)
        reader.start()
        return reader

    def stop_workers(signum, frame):
        # A timeout(1) around this runner signals only this process: take the workers (and
        # through their own handling, nothing else) down with it.
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop_workers)
    started = time.monotonic()
    for reader in [launch(index, keys) for index, (_, keys) in enumerate(shares)]:
        reader.join()
    if alone:
        launch(len(shares), alone).join()

    save_durations(binary, durations)
    for test_id in kernel_skips:
        print(f"skipped ({broker.KERNEL_MISSING_PREFIX} {kernel_missing}): {test_id}")
    print(f"ran {totals['run']} tests in {time.monotonic() - started:.1f}s "
          f"({len(shares)} workers)")
    if totals["run"] == 0:
        print("run.py: no test matched", file=sys.stderr)
    print(f"integration: {totals['passed']} passed, {totals['failed']} failed")
    if totals["failed"] or totals["run"] == 0:
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="path to the ringmq binary")
    parser.add_argument("-k", dest="patterns", action="append", default=[],
                        help="only tests whose id matches (substring or fnmatch); repeatable")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="worker processes to share the test classes over (default 1)")
    parser.add_argument("--skip-release-only", action="store_true",
                        help="leave out the tests marked broker.release_only (the sanitizer "
                             "stages of scripts/test.sh pass it)")
    parser.add_argument("--worker", metavar="CLASSES", default=None,
                        help=argparse.SUPPRESS)  # internal: run only these module.Class keys
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("-j must be at least 1")
    worker = args.worker is not None

    binary = os.path.abspath(args.binary)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"run.py: {binary} is not an executable file", file=sys.stderr)
        print("integration: 0 passed, 1 failed")
        return 1
    os.environ["RINGMQ_BINARY"] = binary
    kernel_missing = probe_io_uring()
    if kernel_missing:
        os.environ["RINGMQ_KERNEL_MISSING"] = kernel_missing
        if not worker:
            print(f"note: {broker.KERNEL_MISSING_PREFIX} {kernel_missing}; tests that start the "
                  "broker are skipped")
    if broker.is_mosquitto(binary) and not worker:
        print("note: development mode against Mosquitto; counter assertions are not checked")

    if args.jobs > 1 and not worker:
        return run_workers(args, binary, kernel_missing)

    suite = discover(args.patterns)
    if args.skip_release_only:
        suite = without_release_only(suite, announce=not worker)
    if worker:
        keys = set(args.worker.split(","))
        suite = unittest.TestSuite(t for t in leaf_tests(suite) if class_key(t) in keys)
    result = Result(sys.stdout, kernel_missing, worker=worker)

    def watchdog():
        print(f"FAIL run.py watchdog: the suite exceeded {WATCHDOG_SECONDS}s; "
              f"current test: {result.current}", flush=True)
        for proc in list(broker.LIVE):
            proc.kill()
        if worker:
            print(f"{WORKER_COUNTS} {len(result.passed)} {len(result.failed) + 1} "
                  f"{result.testsRun}", flush=True)
        else:
            print(f"integration: {len(result.passed)} passed, {len(result.failed) + 1} failed",
                  flush=True)
        os._exit(1)

    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    suite.run(result)
    timer.cancel()

    if worker:
        for test in result.kernel_skips:
            print(f"{KERNEL_SKIP}{test.id()}")
        print(f"{WORKER_COUNTS} {len(result.passed)} {len(result.failed)} {result.testsRun}",
              flush=True)
        return 1 if result.failed else 0

    save_durations(binary, result.durations)
    for test in result.kernel_skips:
        print(f"skipped ({broker.KERNEL_MISSING_PREFIX} {kernel_missing}): {test.id()}")
    print(f"ran {result.testsRun} tests in {time.monotonic() - started:.1f}s")
    if result.testsRun == 0:
        print("run.py: no test matched", file=sys.stderr)
    print(result.summary())
    if result.failed or result.testsRun == 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
