"""All socket I/O of the MQTT bridges goes through the shard's ring (issue 16, lane bridgeio;
docs/bridges.md, "Sockets on the ring"): the remote side's sockets are made with
IORING_OP_SOCKET, get TCP_NODELAY through IORING_OP_URING_CMD (Linux 6.7), connect with
IORING_OP_CONNECT and end with IORING_OP_SHUTDOWN then IORING_OP_CLOSE, as the cluster's NATS
links' do (test_cluster_ring_io.py). So a shard thread makes none of the socket(), connect(),
setsockopt(), shutdown() and close() system calls while a bridge loses its remote and
reconnects again and again; nor socketpair() (the local side, made once, is not touched by the
remote's reconnects).

The proof counts system calls: strace attaches to the shard threads only (ringmq/N) of a
running broker with a bridge to a real Mosquitto; the Mosquitto is killed and started again on
the same port three times (each outage long enough for failed attempts: socket, connect
refused, close), and the trace of those threads must hold none of those calls. A message then
crosses the bridge (the last socket works). Skipped without strace or when ptrace is not
allowed. Against a binary that makes those calls directly (main before this lane) it fails.
"""

import os
import shutil
import signal
import tempfile
import unittest

from test_bridge import WAIT, BridgeTestCase, bridge_toml, wait_for
from test_cluster import metric
from test_cluster_ring_io import attach_strace, kernel_at_least, shard_threads, stop_strace

SOCKET_CALLS = ("socket", "socketpair", "connect", "setsockopt", "shutdown", "close")
OUTAGES = 3
FAILED_ATTEMPTS = 2  # per outage, besides the lost connection itself


class BridgeRingIoTest(BridgeTestCase):

    def test_shard_threads_make_no_socket_syscalls_across_bridge_reconnects(self):
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed")
        if not kernel_at_least(6, 7):
            self.skipTest("setsockopt through io_uring needs Linux 6.7 (a direct call is the "
                          "documented fallback)")
        remote = self.mosquitto()
        port = remote.port
        node = self.ringmq(bridge_toml("cloud", port, ["data/# out 0"], client_id="edge-ringio",
                                       restart_initial_ms=100, restart_max_ms=400))
        self.wait_connected(node)
        threads = shard_threads(node.proc.pid)
        self.assertEqual(len(threads), 2, threads)

        directory = tempfile.mkdtemp(prefix="ringmq-strace-")
        self.addCleanup(shutil.rmtree, directory, True)
        trace_path = os.path.join(directory, "trace")
        strace = attach_strace(self, threads, trace_path, SOCKET_CALLS)
        try:
            for _ in range(OUTAGES):
                connects = metric(node, "ringmq_bridge_link_events_total", event="connect")
                disconnects = metric(node, "ringmq_bridge_link_events_total", event="disconnect")
                remote.stop(signal.SIGKILL)
                # The lost connection, then failed attempts while nothing listens.
                wait_for(lambda: metric(node, "ringmq_bridge_link_events_total",
                                        event="disconnect") >= disconnects + 1 + FAILED_ATTEMPTS,
                         f"failed attempts counted:\n{node.stderr_tail()}")
                remote.start()
                wait_for(lambda: metric(node, "ringmq_bridge_link_events_total",
                                        event="connect") > connects,
                         f"bridge reconnected:\n{node.stderr_tail()}")
                self.wait_connected(node)
            # The last socket (made, tuned and connected on the ring) carries messages.
            remote_sub = self.client(port, "rsub")
            remote_sub.subscribe([("data/#", 0)])
            local_pub = self.client(node.port, "lpub")
            self.wait_subscribed(local_pub, remote_sub, "data/probe")
            local_pub.publish("data/x", b"after reconnects")
            got = remote_sub.receive(1, timeout=WAIT)
            self.assertEqual(got[0].payload, b"after reconnects")
        finally:
            trace, calls = stop_strace(strace, trace_path, SOCKET_CALLS)
        self.assertEqual(calls, [], "socket system calls on shard threads:\n" + trace[-4000:])
        self.assertIsNone(node.wait_for_log("setsockopt through io_uring failed", 0))


if __name__ == "__main__":
    unittest.main()
