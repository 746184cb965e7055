"""NatsLink against real nats-servers (issue 16): tests/cluster/nats_live drives a subscriber and
a publisher link; these tests start nats-server (one, or a 3-server cluster without JetStream:
nats_cluster.NatsCluster), kill or freeze the server a link is on while messages flow, and check
that the links reconnect (to the restarted server, to another server of the list, to a server
learned from INFO connect_urls) and that the stream resumes in order. Everything listens on
127.0.0.1; every wait is bounded."""

import queue
import subprocess
import threading
import time
import unittest

import nats_cluster
from broker import built_tool

RUN_TIMEOUT = 40


def nats_live_binary():
    return built_tool("tests", "cluster", "nats_live")


class LiveRun:
    """nats_live as a child process whose stdout lines arrive on a queue."""

    def __init__(self, urls, *extra):
        argv = [nats_live_binary(), "--urls", ",".join(urls), "--timeout-s", str(RUN_TIMEOUT - 5),
                *extra]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines = []
        self.queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def wait_for(self, predicate, timeout=20):
        """Returns the first line for which predicate(line) is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"nats_live: no expected line; output so far: {self.lines}")

    def finish(self):
        """Waits for the exit; returns (exit status, RESULT line fields)."""
        try:
            self.process.wait(timeout=RUN_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)
        self.process.stdout.close()
        while True:
            try:
                line = self.queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        result = {}
        for line in self.lines:
            if line.startswith("RESULT "):
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    result[key] = float(value) if "." in value else int(value)
        return self.process.returncode, result


def progress_at_least(count):
    def predicate(line):
        return line.startswith("PROGRESS ") and int(line.split()[1]) >= count
    return predicate


class NatsTestCase(unittest.TestCase):
    def setUp(self):
        reason = nats_cluster.available()
        if reason:
            raise AssertionError(reason)
        self.cluster = None

    def start_cluster(self, size):
        """`size` servers without JetStream (a link needs none), routed to each other; the
        cluster is stopped after the test."""
        self.cluster = nats_cluster.NatsCluster(size, jetstream=False)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        return self.cluster.servers

    def server_on(self, port):
        return next(s for s in self.cluster.servers if s.port == port)

    def assert_run_ok(self, run, **minimums):
        status, result = run.finish()
        self.assertEqual(status, 0, "\n".join(run.lines))
        for key, minimum in minimums.items():
            self.assertGreaterEqual(result.get(key, -1), minimum, "\n".join(run.lines))
        self.assertEqual(result["duplicates"], 0)
        self.assertEqual(result["out_of_order"], 0)
        return result


class SingleServer(NatsTestCase):
    def test_every_message_arrives_without_failures(self):
        (server,) = self.start_cluster(1)
        run = LiveRun([server.url()], "--count", "3000", "--interval-us", "100")
        result = self.assert_run_ok(run)
        self.assertEqual(result["received"], 3000)
        self.assertEqual(result["reconnects"], 0)

    def test_restarted_server_is_reconnected_and_the_stream_resumes(self):
        (server,) = self.start_cluster(1)
        run = LiveRun([server.url()], "--count", "3000", "--interval-us", "2000",
                      "--expect-reconnect", "--min-received-percent", "40")
        run.wait_for(progress_at_least(600))
        server.kill()
        time.sleep(1.0)  # both links back off against a refused port meanwhile
        self.cluster.restart(0)
        self.assert_run_ok(run, reconnects=2)  # both links came back


class Cluster(NatsTestCase):
    def test_messages_cross_the_cluster_and_servers_are_discovered(self):
        servers = self.start_cluster(3)
        # The publisher starts on n2 (nats_live rotates the list): every message takes a route.
        run = LiveRun([s.url() for s in servers[:2]], "--count", "2000", "--interval-us", "200")
        result = self.assert_run_ok(run)
        self.assertEqual(result["received"], 2000)
        self.assertEqual(result["sub_servers"], 3)  # n3 learned from INFO connect_urls

    def test_killed_server_is_replaced_by_another_of_the_list(self):
        servers = self.start_cluster(3)
        run = LiveRun([s.url() for s in servers], "--count", "3000", "--interval-us", "2000",
                      "--expect-reconnect", "--min-received-percent", "50")
        ready = run.wait_for(lambda line: line.startswith("READY sub "))
        run.wait_for(progress_at_least(600))
        self.server_on(int(ready.split()[2])).kill()
        run.wait_for(lambda line: line.startswith("READY sub "))
        self.assert_run_ok(run, reconnects=1)

    def test_only_discovered_servers_remain_after_the_configured_one_dies(self):
        servers = self.start_cluster(3)
        run = LiveRun([servers[0].url()], "--count", "3000", "--interval-us", "2000",
                      "--expect-reconnect", "--min-received-percent", "50")
        run.wait_for(progress_at_least(600))
        servers[0].kill()
        self.assert_run_ok(run, reconnects=2)

    def test_frozen_server_is_detected_stale_by_pings(self):
        servers = self.start_cluster(3)
        run = LiveRun([s.url() for s in servers], "--count", "4000", "--interval-us", "2000",
                      "--expect-reconnect", "--min-received-percent", "30")
        ready = run.wait_for(lambda line: line.startswith("READY sub "))
        run.wait_for(progress_at_least(400))
        frozen = self.server_on(int(ready.split()[2]))
        frozen.freeze()  # its sockets stay open: only PINGs can tell
        run.wait_for(lambda line: line.startswith("DOWN sub stale"), timeout=10)
        result = self.assert_run_ok(run, reconnects=1)
        self.assertGreaterEqual(result["stale"], 1)


if __name__ == "__main__":
    unittest.main()
