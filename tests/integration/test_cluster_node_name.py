"""Duplicate node names (docs/cluster.md, "Node names"; issue 16, lane weak): two ringmq nodes
given the same [cluster] node_name would drop each other's messages as echoes. Every node
announces its name and a random instance number on $RINGMQ.node.<name>; the node started later
stops with exit status 1 and an error, the one started earlier logs an error, counts the
conflict in ringmq_cluster_node_name_conflicts_total and goes on serving.

Every wait ends on an event (a log line, a metric, a process exit); the bounds only say how long
a failure takes to report.
"""

import time
import unittest

import broker
import mqtt_raw
import nats_cluster
from test_cluster import ROUTE_TIMEOUT, drain, metric, wait_route

EXIT_TIMEOUT = 30.0  # the newcomer's handshake, the announcements and a clean stop


def start_node(url, name):
    node = broker.Broker("--cluster-nats-url", url, "--cluster-node-name", name, threads=2,
                         metrics=True, log_level="info")
    node.start()
    return node


def wait_links(node, links=2, timeout=2 * ROUTE_TIMEOUT):
    """Until every shard's main link completed a handshake (shard 0 announced then)."""
    deadline = time.monotonic() + timeout
    while metric(node, "ringmq_cluster_link_events_total", event="connect") < links:
        if time.monotonic() > deadline:
            raise AssertionError(f"links not ready:\n{node.stderr_tail()}")
        time.sleep(0.05)


class ClusterNodeNameTest(unittest.TestCase):

    def test_a_second_node_with_the_same_name_stops_and_the_first_goes_on(self):
        cluster = nats_cluster.NatsCluster(size=1, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        url = cluster.urls()[0]
        first = start_node(url, "twin")
        self.addCleanup(first.stop)
        wait_links(first)
        self.assertEqual(metric(first, "ringmq_cluster_node_name_conflicts_total"), 0)

        second = broker.Broker("--cluster-nats-url", url, "--cluster-node-name", "twin",
                               threads=2, metrics=True, log_level="info")
        try:
            second.start()
        except AssertionError:
            pass  # it may stop before it logs its ready line; judged below by its exit
        try:
            second.returncode = second.proc.wait(EXIT_TIMEOUT)
        finally:
            second._reap()
        self.assertEqual(second.returncode, 1, second.stderr_tail())
        self.assertIsNotNone(second.wait_for_log(
            r'node_name "twin" is already used by a node started earlier .*: stopping', 0),
            second.stderr_tail())

        self.assertIsNotNone(first.wait_for_log(
            r'another node started with node_name "twin" .*: it stops', EXIT_TIMEOUT),
            first.stderr_tail())
        self.assertGreaterEqual(metric(first, "ringmq_cluster_node_name_conflicts_total"), 1)
        self.assertTrue(first.running())

        # The first node still forwards and receives: a node with its own name reaches it.
        other = start_node(url, "other")
        self.addCleanup(other.stop)
        wait_links(other)
        sub = mqtt_raw.Client(first.port, "nn-sub")
        self.addCleanup(sub.close)
        sub.subscribe([("nn/t", 0)])
        pub = mqtt_raw.Client(other.port, "nn-pub")
        self.addCleanup(pub.close)
        wait_route(pub, [sub], "nn/t", timeout=2 * ROUTE_TIMEOUT)
        pub.publish("nn/t", b"after", qos=1)
        self.assertEqual([g.payload for g in drain(sub, 1.0)], [b"after"])
        self.assertEqual(metric(other, "ringmq_cluster_node_name_conflicts_total"), 0)

    def test_distinct_names_never_conflict(self):
        cluster = nats_cluster.NatsCluster(size=1, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        a = start_node(cluster.urls()[0], "alpha")
        self.addCleanup(a.stop)
        b = start_node(cluster.urls()[0], "beta")
        self.addCleanup(b.stop)
        wait_links(a)
        wait_links(b)
        # A route both ways proves both announced (at their handshakes, before routing).
        sub = mqtt_raw.Client(a.port, "dn-sub")
        self.addCleanup(sub.close)
        sub.subscribe([("dn/t", 0)])
        pub = mqtt_raw.Client(b.port, "dn-pub")
        self.addCleanup(pub.close)
        wait_route(pub, [sub], "dn/t", timeout=2 * ROUTE_TIMEOUT)
        for node in (a, b):
            self.assertEqual(metric(node, "ringmq_cluster_node_name_conflicts_total"), 0)


if __name__ == "__main__":
    unittest.main()
