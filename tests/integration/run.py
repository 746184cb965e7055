#!/usr/bin/python3
"""Integration test runner for ringmq.

    /usr/bin/python3 tests/integration/run.py --binary BUILD/ringmq [-k PATTERN]...

Discovers tests/integration/test_*.py with unittest, passes the binary to the tests through the
RINGMQ_BINARY environment variable, prints one line per test and, as its last line,
`integration: N passed, M failed`. Skipped tests count as failures, except those skipped because
a kernel feature the broker needs (io_uring) is missing here: those are listed with the reason and
counted in neither number. Exit status is non-zero on any failure.
"""

import argparse
import ctypes
import errno
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import broker  # noqa: E402  (needs sys.path)

# The backstop if something hangs: a release run takes about 90 s on 2 cores, an ASan run about
# twice that. RINGMQ_INTEGRATION_WATCHDOG (seconds) overrides it.
WATCHDOG_SECONDS = int(os.environ.get("RINGMQ_INTEGRATION_WATCHDOG", "480"))


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
    def __init__(self, stream, kernel_missing):
        super().__init__()
        self.stream = stream
        self.kernel_missing = kernel_missing
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="path to the ringmq binary")
    parser.add_argument("-k", dest="patterns", action="append", default=[],
                        help="only tests whose id matches (substring or fnmatch); repeatable")
    args = parser.parse_args()

    binary = os.path.abspath(args.binary)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"run.py: {binary} is not an executable file", file=sys.stderr)
        print("integration: 0 passed, 1 failed")
        return 1
    os.environ["RINGMQ_BINARY"] = binary
    kernel_missing = probe_io_uring()
    if kernel_missing:
        os.environ["RINGMQ_KERNEL_MISSING"] = kernel_missing
        print(f"note: {broker.KERNEL_MISSING_PREFIX} {kernel_missing}; tests that start the "
              "broker are skipped")
    if broker.is_mosquitto(binary):
        print("note: development mode against Mosquitto; counter assertions are not checked")

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in args.patterns]
    suite = loader.discover(start_dir=HERE, pattern="test_*.py", top_level_dir=HERE)
    result = Result(sys.stdout, kernel_missing)

    def watchdog():
        print(f"FAIL run.py watchdog: the suite exceeded {WATCHDOG_SECONDS}s; "
              f"current test: {result.current}", flush=True)
        for proc in list(broker.LIVE):
            proc.kill()
        print(f"integration: {len(result.passed)} passed, {len(result.failed) + 1} failed",
              flush=True)
        os._exit(1)

    timer = threading.Timer(WATCHDOG_SECONDS, watchdog)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    suite.run(result)
    timer.cancel()

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
