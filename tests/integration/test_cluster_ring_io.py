"""All I/O of the cluster's NATS links goes through the shard's ring (issue 16, lane weak;
docs/cluster.md, "One NATS connection per shard"): the sockets are made with IORING_OP_SOCKET,
get TCP_NODELAY through IORING_OP_URING_CMD (Linux 6.7), connect with IORING_OP_CONNECT and end
with IORING_OP_SHUTDOWN and IORING_OP_CLOSE, so a shard thread makes none of the socket(),
connect(), setsockopt(), shutdown() and close() system calls, even while its links reconnect
again and again.

The proof counts system calls: strace attaches to the shard threads only (ringmq/N) of a
running node, a NATS server is killed and restarted (every link fails its attempts, then
reconnects), and the trace of those threads must hold none of those calls. Skipped without
strace or when ptrace is not allowed.
"""

import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import broker
import nats_cluster
from test_cluster import ROUTE_TIMEOUT, metric

SOCKET_CALLS = ("socket", "connect", "setsockopt", "shutdown", "close")
ATTACH_TIMEOUT = 10.0


def shard_threads(pid):
    """{tid: name} of the shard threads (named ringmq/N by the broker)."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if re.fullmatch(r"ringmq/\d+", name):
            threads[int(tid)] = name
    return threads


def attach_strace(test, threads, trace_path, calls):
    """strace of `threads` for the system calls `calls` into trace_path, returned once attached
    to every thread; skips `test` if strace cannot attach (ptrace not allowed)."""
    argv = ["strace", "-o", trace_path, "-e", "trace=" + ",".join(calls)]
    for tid in threads:
        argv += ["-p", str(tid)]
    strace = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    attached = set()
    deadline = time.monotonic() + ATTACH_TIMEOUT
    while len(attached) < len(threads):
        line = strace.stderr.readline()
        if not line:
            strace.wait(5)
            test.skipTest(f"strace cannot attach (ptrace not allowed?): exit {strace.returncode}")
        found = re.search(r"Process (\d+) attached", line)
        if found:
            attached.add(int(found.group(1)))
        test.assertLess(time.monotonic(), deadline, "strace did not attach")
    return strace


def stop_strace(strace, trace_path, calls):
    """Stops an attach_strace; returns its whole trace and the lines that made one of `calls`."""
    strace.terminate()
    strace.wait(10)
    with open(trace_path) as f:
        trace = f.read()
    made = [line for line in trace.splitlines()
            if re.search(r"\b(" + "|".join(calls) + r")\(", line)]
    return trace, made


def kernel_at_least(major, minor):
    found = re.match(r"(\d+)\.(\d+)", platform.release())
    return found is not None and (int(found.group(1)), int(found.group(2))) >= (major, minor)


class ClusterRingIoTest(unittest.TestCase):

    def test_shard_threads_make_no_socket_syscalls_across_reconnects(self):
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed")
        if not kernel_at_least(6, 7):
            self.skipTest("setsockopt through io_uring needs Linux 6.7 (a direct call is the "
                          "documented fallback)")
        cluster = nats_cluster.NatsCluster(size=1, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        node = broker.Broker("--cluster-nats-url", cluster.urls()[0], "--cluster-node-name",
                             "ringio", threads=2, metrics=True, log_level="info")
        node.start()
        self.addCleanup(node.stop)
        links = 4  # 2 shards x (main link + share link)
        deadline = time.monotonic() + 2 * ROUTE_TIMEOUT
        while (metric(node, "ringmq_cluster_link_events_total", event="connect") +
               metric(node, "ringmq_cluster_share_link_events_total", event="connect")) < links:
            self.assertLess(time.monotonic(), deadline, node.stderr_tail())
            time.sleep(0.05)
        threads = shard_threads(node.proc.pid)
        self.assertEqual(len(threads), 2, threads)

        directory = tempfile.mkdtemp(prefix="ringmq-strace-")
        self.addCleanup(shutil.rmtree, directory, True)
        trace_path = os.path.join(directory, "trace")
        strace = attach_strace(self, threads, trace_path, SOCKET_CALLS)

        try:
            reconnects = metric(node, "ringmq_cluster_link_events_total", event="reconnect")
            cluster.kill(0)
            # Failed attempts while the server is down: socket, connect refused, close.
            failures = metric(node, "ringmq_cluster_link_events_total", event="disconnect")
            deadline = time.monotonic() + 2 * ROUTE_TIMEOUT
            while metric(node, "ringmq_cluster_link_events_total",
                         event="disconnect") < failures + 4:
                self.assertLess(time.monotonic(), deadline, node.stderr_tail())
                time.sleep(0.05)
            cluster.restart(0)
            deadline = time.monotonic() + 2 * ROUTE_TIMEOUT
            while metric(node, "ringmq_cluster_link_events_total",
                         event="reconnect") < reconnects + 2:
                self.assertLess(time.monotonic(), deadline, node.stderr_tail())
                time.sleep(0.05)
        finally:
            trace, calls = stop_strace(strace, trace_path, SOCKET_CALLS)
        self.assertEqual(calls, [], "socket system calls on shard threads:\n" + trace[-4000:])
        self.assertIsNone(node.wait_for_log("setsockopt through io_uring failed", 0))


if __name__ == "__main__":
    unittest.main()
