"""The NATS links' buffers are charged to the memory budget (docs/cluster.md, "Node names and the
links' resources"; issue 16, lane weak): ringmq_cluster_link_buffer_bytes shows their capacity,
it grows when a burst passes through the links, and it stays within the links' bounds.

(The refusal at max_memory, a publish that would grow a full link's buffers, is pinned by the
unit test NatsLinkTest.MemoryFullRefusesOnlyPublishesThatWouldGrowTheBuffers.)
"""

import time
import unittest

import broker
import mqtt_raw
import nats_cluster
from test_cluster import ROUTE_TIMEOUT, metric, wait_route

MIB = 1 << 20
# Per link: output + held <= 8 MiB of content, one batch in flight <= 8 MiB, a parser spill of
# at most max_payload (1 MiB by default) plus a control line; string growth at most doubles.
# Two links (main, share) per shard, two shards.
LINK_BOUND_BYTES = 2 * (2 * 8 * MIB + 2 * MIB)
SHARDS = 2


class ClusterLinkMemoryTest(unittest.TestCase):

    def test_link_buffers_are_charged_and_bounded(self):
        cluster = nats_cluster.NatsCluster(size=1, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        nodes = []
        for name in ("mem-a", "mem-b"):
            node = broker.Broker("--cluster-nats-url", cluster.urls()[0], "--cluster-node-name",
                                 name, threads=SHARDS, metrics=True, log_level="info")
            node.start()
            self.addCleanup(node.stop)
            nodes.append(node)
        for node in nodes:
            deadline = time.monotonic() + 2 * ROUTE_TIMEOUT
            while metric(node, "ringmq_cluster_link_events_total", event="connect") < SHARDS:
                self.assertLess(time.monotonic(), deadline, node.stderr_tail())
                time.sleep(0.05)
        idle = metric(nodes[0], "ringmq_cluster_link_buffer_bytes")
        self.assertGreater(idle, 0, "the links' buffers after their handshakes are charged")

        sub = mqtt_raw.Client(nodes[1].port, "mem-sub")
        self.addCleanup(sub.close)
        sub.subscribe([("mem/t", 0)])
        pub = mqtt_raw.Client(nodes[0].port, "mem-pub")
        self.addCleanup(pub.close)
        wait_route(pub, [sub], "mem/t", timeout=2 * ROUTE_TIMEOUT)
        payload = b"x" * 30_000
        for _ in range(32):  # about 1 MB in one burst: the output batches grow
            pub.send(mqtt_raw.publish("mem/t", payload))
        pub.ping()
        got = 0
        deadline = time.monotonic() + 2 * ROUTE_TIMEOUT
        while got < 32:
            self.assertLess(time.monotonic(), deadline, f"{got} of 32 burst messages arrived")
            got += len(sub.receive(1, timeout=2 * ROUTE_TIMEOUT))
        for node in nodes:
            charged = metric(node, "ringmq_cluster_link_buffer_bytes")
            self.assertGreater(charged, 0)
            self.assertLessEqual(charged, SHARDS * LINK_BOUND_BYTES)
        self.assertGreater(metric(nodes[0], "ringmq_cluster_link_buffer_bytes"), idle,
                           "the publisher's link output grew with the burst, and is charged")
        self.assertGreater(metric(nodes[1], "ringmq_cluster_link_buffer_bytes"), 0)
        for node in nodes:
            self.assertEqual(metric(node, "ringmq_cluster_link_memory_refused_total"), 0,
                             "no max_memory: never refused")


if __name__ == "__main__":
    unittest.main()
