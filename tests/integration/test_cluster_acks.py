"""Cluster over NATS, QoS 1 and 2 at least once across nodes (docs/cluster.md, "QoS 1 and 2
across nodes"): a publisher's PUBACK / PUBREC waits until every node with matching interest
acknowledged the message; a message not acknowledged is sent again, and a repeated one is not
delivered twice.

Three NATS servers and three ringmq nodes (test_cluster's fixture); each test uses its own
topics. Every wait is bounded.
"""

import os
import signal
import tempfile
import time
import unittest

import mqtt_raw
import nats_cluster
from test_cluster import ROUTE_TIMEOUT, metric, wait_route


def start_nodes(cluster, count, prefix, extra=()):
    """`count` nodes, node i on NATS server i (modulo the cluster's size); extra[i]: more flags
    for node i. Links are forgotten after 10 s of silence (3 s by default), longer than any
    freeze below."""
    return nats_cluster.start_nodes(cluster, count, prefix, "--cluster-ack-link-timeout-ms",
                                    "10000", per_node=extra)


def freeze(test, node):
    """SIGSTOP, and waits until every thread of the node has stopped (the signal stops them
    asynchronously); SIGCONT at the test's end in any case."""
    pid = node.proc.pid
    os.kill(pid, signal.SIGSTOP)
    test.addCleanup(os.kill, pid, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while True:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as stat:
                states.append(stat.read().rpartition(")")[2].split()[0])
        if all(state in ("T", "t") for state in states):
            return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"node not stopped: thread states {states}")
        time.sleep(0.01)


def wait_acked_route(node, publisher, subscribers, topic, timeout=ROUTE_TIMEOUT):
    """wait_route, then QoS 1 probes until the publisher's node counts acks from the others: the
    subscribers' interest announcements have reached it."""
    wait_route(publisher, subscribers, topic, timeout)
    deadline = time.monotonic() + timeout
    before = metric(node, "ringmq_cluster_acks_total", direction="in")
    while metric(node, "ringmq_cluster_acks_total", direction="in") < before + len(subscribers):
        if time.monotonic() > deadline:
            raise AssertionError(f"no acks for {topic} within {timeout}s")
        publisher.publish(topic, b"probe", qos=1)
        time.sleep(0.05)
    for client in subscribers:
        while True:
            try:
                client.receive(1, timeout=0.3)
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                break


def publish_pipelined(client, topic, payloads, qos, timeout):
    """Sends every PUBLISH at once, then collects the acks (PUBACK, or PUBREC answered with
    PUBREL and PUBCOMP). Returns the payloads acknowledged (PUBACK / PUBREC) in time."""
    ids = {}
    for payload in payloads:
        packet_id = client.new_id()
        ids[packet_id] = payload
        client.send(mqtt_raw.publish(topic, payload, qos=qos, packet_id=packet_id))
    acked = []
    deadline = time.monotonic() + timeout
    completed = 0
    want = len(payloads) * (2 if qos == 2 else 1)
    while completed < want:
        try:
            pkt = client._read_wire(max(0.0, deadline - time.monotonic()), "acks")
        except mqtt_raw.ProtocolError:
            break
        packet_id = int.from_bytes(pkt.body[:2], "big")
        if pkt.type == mqtt_raw.PUBACK or pkt.type == mqtt_raw.PUBREC:
            acked.append(ids[packet_id])
            completed += 1
            if pkt.type == mqtt_raw.PUBREC:
                client.send(mqtt_raw.pubrel(packet_id))
        elif pkt.type == mqtt_raw.PUBCOMP:
            completed += 1
    return acked


class ClusterAcksTest(nats_cluster.NodesOverNats):
    node_prefix = "acks"
    node_flags = ("--cluster-ack-link-timeout-ms", "10000")  # as start_nodes (above)

    def client(self, node, client_id, **fields):
        c = mqtt_raw.Client(self.nodes[node].port, client_id, **fields)
        self.addCleanup(c.close)
        return c

    def test_qos1_and_qos2_are_acked_by_every_interested_node_and_qos2_is_exactly_once(self):
        sub1 = self.client(1, "both-sub1")
        sub1.subscribe([("both/t", 2)])
        sub2 = self.client(2, "both-sub2")
        sub2.subscribe([("both/t", 2)])
        pub = self.client(0, "both-pub")
        wait_acked_route(self.nodes[0], pub, [sub1, sub2], "both/t")
        acks_in = metric(self.nodes[0], "ringmq_cluster_acks_total", direction="in")
        for qos in (1, 2):
            payloads = [b"q%d-%03d" % (qos, i) for i in range(100)]
            acked = publish_pipelined(pub, "both/t", payloads, qos, timeout=10)
            self.assertEqual(sorted(acked), sorted(payloads))
            for sub in (sub1, sub2):
                got = sub.receive(len(payloads), timeout=10)
                self.assertEqual([g.payload for g in got], payloads, "in publisher order")
                self.assertTrue(all(g.qos == qos for g in got))
                sub.expect_no_publish(0.3)  # once each
        # Both nodes acknowledged each of the 200 messages.
        self.assertGreaterEqual(
            metric(self.nodes[0], "ringmq_cluster_acks_total", direction="in") - acks_in, 400)
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_ack_pending"), 0)

    def test_puback_waits_for_a_frozen_subscriber_node_and_follows_its_thaw(self):
        sub = self.client(2, "frozen-sub")
        sub.subscribe([("frozen/t", 1)])
        pub = self.client(0, "frozen-pub")
        wait_acked_route(self.nodes[0], pub, [sub], "frozen/t")
        pid = freeze(self, self.nodes[2])
        packet_id = pub.new_id()
        pub.send(mqtt_raw.publish("frozen/t", b"held", qos=1, packet_id=packet_id))
        # Longer than one retransmit interval (2 s): the message is sent again meanwhile.
        with self.assertRaises(mqtt_raw.ProtocolError, msg="PUBACK withheld while frozen"):
            pub._read_wire(2.5, "no PUBACK")
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_ack_pending"), 1)
        os.kill(pid, signal.SIGCONT)
        pub.expect_reply(mqtt_raw.ack(mqtt_raw.PUBACK, packet_id), "PUBACK after the thaw",
                         timeout=5)
        self.assertEqual([g.payload for g in sub.receive(1, timeout=5)], [b"held"])
        sub.expect_no_publish(0.5)  # the retransmitted copy was dropped
        self.assertGreaterEqual(metric(self.nodes[0], "ringmq_cluster_retransmits_total"), 1)
        self.assertGreaterEqual(
            metric(self.nodes[2], "ringmq_cluster_duplicates_total", result="dropped"), 1)

    def test_without_remote_interest_the_publisher_is_acked_at_once(self):
        local = self.client(0, "local-sub")
        local.subscribe([("local/t", 1)])
        pub = self.client(0, "local-pub")
        acks_in = metric(self.nodes[0], "ringmq_cluster_acks_total", direction="in")
        started = time.monotonic()
        for i in range(200):
            pub.publish("local/t", b"%d" % i, qos=1)
        elapsed = time.monotonic() - started
        self.assertEqual(len(local.receive(200, timeout=5)), 200)
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_acks_total", direction="in"),
                         acks_in, "nothing was tracked")
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_ack_pending"), 0)
        self.assertLess(elapsed, 2.0, "200 sequential QoS 1 round trips on one node")


class ClusterAcksOutageTest(unittest.TestCase):
    """The publisher's NATS server is killed mid-stream: what its link had not delivered is
    lost in core NATS, and sent again once the link reconnects; every PUBACKed message
    reaches the remote subscriber."""

    def test_nothing_pubacked_is_lost_when_a_nats_server_dies(self):
        cluster = nats_cluster.NatsCluster(size=3, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        nodes = start_nodes(cluster, 2, "acksout")
        for node in nodes:
            self.addCleanup(node.stop)
        sub = mqtt_raw.Client(nodes[1].port, "acksout-sub")
        self.addCleanup(sub.close)
        sub.subscribe([("acksout/t", 1)])
        pub = mqtt_raw.Client(nodes[0].port, "acksout-pub")
        self.addCleanup(pub.close)
        wait_acked_route(nodes[0], pub, [sub], "acksout/t")

        payloads = [b"m%04d" % i for i in range(1000)]
        ids = {}
        for i, payload in enumerate(payloads):
            packet_id = pub.new_id()
            ids[packet_id] = payload
            pub.send(mqtt_raw.publish("acksout/t", payload, qos=1, packet_id=packet_id))
            if i == 300:
                cluster.kill(0)  # node 0's server, mid-stream
        acked = set()
        deadline = time.monotonic() + 20
        while len(acked) < len(payloads) and time.monotonic() < deadline:
            try:
                pkt = pub._read_wire(max(0.0, deadline - time.monotonic()), "PUBACK")
            except mqtt_raw.ProtocolError:
                break
            if pkt.type == mqtt_raw.PUBACK:
                acked.add(ids[int.from_bytes(pkt.body[:2], "big")])
        self.assertEqual(len(acked), len(payloads), "every PUBLISH acknowledged in the end")
        received = set()
        deadline = time.monotonic() + 10
        while not acked <= received and time.monotonic() < deadline:
            try:
                received.update(g.payload for g in sub.receive(1, timeout=0.5))
            except mqtt_raw.ProtocolError:
                pass
        self.assertEqual(acked - received, set(), "PUBACKed and never delivered")
        self.assertGreaterEqual(
            metric(nodes[0], "ringmq_cluster_link_events_total", event="reconnect"), 1)
        # Not asserted here: that something was sent again after the reconnect. It depends on
        # timing (a fresh-clone CI run, 2026-12-08, saw 0: every message forwarded before the
        # kill had been acknowledged, and the rest went out first after the reconnect, which is
        # not a retransmit). The retransmit itself is asserted where it is certain, behind a
        # frozen subscriber node (ClusterAcksTest, test_puback_waits_for_a_frozen_...).



class ClusterAcksPersistenceTest(unittest.TestCase):
    """With persistence on, a PUBACK waits for both the log (fsync) and the remote nodes."""

    def test_puback_waits_for_the_disk_and_the_remote_node(self):
        cluster = nats_cluster.NatsCluster(size=1, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        data_dir = tempfile.TemporaryDirectory(prefix="ringmq-acks-")
        self.addCleanup(data_dir.cleanup)
        nodes = start_nodes(cluster, 2, "ackspersist",
                            extra=[("--persistence", "true", "--data-dir", data_dir.name,
                                    "--durability", "fsync")])
        for node in nodes:
            self.addCleanup(node.stop)
        sub = mqtt_raw.Client(nodes[1].port, "ackspersist-sub")
        self.addCleanup(sub.close)
        sub.subscribe([("ackspersist/t", 1)])
        pub = mqtt_raw.Client(nodes[0].port, "ackspersist-pub", clean=False)
        self.addCleanup(pub.close)
        wait_acked_route(nodes[0], pub, [sub], "ackspersist/t")
        payloads = [b"p%03d" % i for i in range(100)]
        acked = publish_pipelined(pub, "ackspersist/t", payloads, 1, timeout=10)
        self.assertEqual(sorted(acked), payloads)
        self.assertEqual([g.payload for g in sub.receive(100, timeout=10)], payloads)
        self.assertGreater(metric(nodes[0], "ringmq_persist_syncs_total"), 0)
        # The log is quick; the frozen subscriber's node is what the PUBACK waits for.
        pid = freeze(self, nodes[1])
        packet_id = pub.new_id()
        pub.send(mqtt_raw.publish("ackspersist/t", b"held", qos=1, packet_id=packet_id))
        with self.assertRaises(mqtt_raw.ProtocolError, msg="PUBACK withheld while frozen"):
            pub._read_wire(1.0, "no PUBACK")
        os.kill(pid, signal.SIGCONT)
        pub.expect_reply(mqtt_raw.ack(mqtt_raw.PUBACK, packet_id), "PUBACK after the thaw",
                         timeout=5)
        self.assertEqual([g.payload for g in sub.receive(1, timeout=5)], [b"held"])


class ClusterAcksBoundTest(unittest.TestCase):
    """At ack_pending_max pending messages the publisher is held back (its socket is not read)
    and goes on once the remote node acknowledges."""

    def test_publisher_is_held_back_at_the_bound_and_resumes(self):
        cluster = nats_cluster.NatsCluster(size=1, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        nodes = start_nodes(cluster, 2, "acksbound",
                            extra=[("--cluster-ack-pending-max", "4")])
        for node in nodes:
            self.addCleanup(node.stop)
        sub = mqtt_raw.Client(nodes[1].port, "acksbound-sub")
        self.addCleanup(sub.close)
        sub.subscribe([("acksbound/t", 1)])
        pub = mqtt_raw.Client(nodes[0].port, "acksbound-pub")
        self.addCleanup(pub.close)
        wait_acked_route(nodes[0], pub, [sub], "acksbound/t")
        freeze(self, nodes[1])
        payloads = [b"b%03d" % i for i in range(50)]
        ids = {}
        for payload in payloads:
            packet_id = pub.new_id()
            ids[packet_id] = payload
            pub.send(mqtt_raw.publish("acksbound/t", payload, qos=1, packet_id=packet_id))
        with self.assertRaises(mqtt_raw.ProtocolError, msg="no PUBACK while frozen"):
            pub._read_wire(1.0, "no PUBACK")
        self.assertGreaterEqual(metric(nodes[0], "ringmq_cluster_ack_held_back_total"), 1)
        self.assertLessEqual(metric(nodes[0], "ringmq_cluster_ack_pending"), 4,
                             "the rest of the PUBLISHes wait unread")
        os.kill(nodes[1].proc.pid, signal.SIGCONT)
        acked = publish_acks(pub, ids, len(payloads), timeout=20)
        self.assertEqual(acked, payloads, "every PUBLISH acknowledged, in order")
        got = sub.receive(len(payloads), timeout=10)
        self.assertEqual([g.payload for g in got], payloads)


def publish_acks(client, ids, count, timeout):
    """The payloads of the next `count` PUBACKs (ids: packet id -> payload), in arrival order."""
    acked = []
    deadline = time.monotonic() + timeout
    while len(acked) < count:
        pkt = client._read_wire(max(0.0, deadline - time.monotonic()), "PUBACK")
        if pkt.type == mqtt_raw.PUBACK:
            acked.append(ids[int.from_bytes(pkt.body[:2], "big")])
    return acked


if __name__ == "__main__":
    unittest.main()


def wait_group_acked(node, publisher, members, topic, timeout=ROUTE_TIMEOUT):
    """QoS 1 probes on `topic` until the publisher's node counts group acks for them and every
    one of `members` got one (their queue subscriptions and the queue lines of their links'
    announcements reached the publisher's side), then drains the members."""
    deadline = time.monotonic() + timeout
    waiting = {m.client_id for m in members}
    before = metric(node, "ringmq_cluster_acks_total", direction="in")
    while waiting or metric(node, "ringmq_cluster_acks_total", direction="in") <= before:
        if time.monotonic() > deadline:
            raise AssertionError(f"group on {topic}: {sorted(waiting)} or its acks missing")
        publisher.publish(topic, b"probe", qos=1)
        for m in members:
            try:
                if m.receive(1, timeout=0.05):
                    waiting.discard(m.client_id)
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                pass
    for m in members:
        while True:
            try:
                m.receive(1, timeout=0.3)
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                break


class ClusterGroupAcksTest(unittest.TestCase):
    """At least once for shared-subscription groups (docs/cluster.md, "Shared subscriptions"):
    a QoS 1/2 message that crosses nodes only for a group is acknowledged to its publisher once
    a member of the group took it, and a message in flight to a member that stopped reaches a
    member of another node (sent again on the group's rtq subject, where NATS picks a member
    again). Retransmits every 300 ms here."""

    cluster = None
    nodes = []

    @classmethod
    def setUpClass(cls):
        cls.cluster = nats_cluster.NatsCluster(size=3, jetstream=False)
        cls.cluster.start()
        try:
            flags = ("--cluster-ack-retransmit-ms", "300")
            cls.nodes = start_nodes(cls.cluster, 3, "gacks", extra=(flags, flags, flags))
        except BaseException:
            cls.cluster.stop()
            raise

    tearDownClass = classmethod(ClusterAcksTest.tearDownClass.__func__)
    client = ClusterAcksTest.client

    def test_puback_waits_for_the_groups_only_member_on_a_frozen_node(self):
        member = self.client(1, "gacks-m1")
        member.subscribe([("$share/ga/gacks/one", 1)])
        pub = self.client(0, "gacks-pub1")
        wait_group_acked(self.nodes[0], pub, [member], "gacks/one")
        pid = freeze(self, self.nodes[1])
        packet_id = pub.new_id()
        pub.send(mqtt_raw.publish("gacks/one", b"held", qos=1, packet_id=packet_id))
        # Several retransmit intervals: the group's only member link is frozen.
        with self.assertRaises(mqtt_raw.ProtocolError, msg="PUBACK withheld while frozen"):
            pub._read_wire(1.5, "no PUBACK")
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_ack_pending"), 1)
        self.assertGreaterEqual(metric(self.nodes[0], "ringmq_cluster_group_retransmits_total"),
                                1)
        os.kill(pid, signal.SIGCONT)
        pub.expect_reply(mqtt_raw.ack(mqtt_raw.PUBACK, packet_id), "PUBACK after the thaw",
                         timeout=5)
        self.assertEqual([g.payload for g in member.receive(1, timeout=5)], [b"held"])
        member.expect_no_publish(0.5)  # the repeats on the rtq subject were dropped
        self.assertGreaterEqual(
            metric(self.nodes[1], "ringmq_cluster_duplicates_total", result="dropped"), 1)
        # QoS 2 to the group: exactly once at its member.
        payloads = [b"two-%03d" % i for i in range(50)]
        acked = publish_pipelined(pub, "gacks/one", payloads, 2, timeout=10)
        self.assertEqual(sorted(acked), sorted(payloads))
        got = member.receive(len(payloads), timeout=10)
        self.assertEqual(sorted(g.payload for g in got), sorted(payloads))
        member.expect_no_publish(0.5)

    def test_messages_in_flight_to_a_frozen_member_reach_the_member_of_another_node(self):
        m1 = self.client(1, "gacks-s1")
        m1.subscribe([("$share/gb/gacks/two", 1)])
        m2 = self.client(2, "gacks-s2")
        m2.subscribe([("$share/gb/gacks/two", 1)])
        pub = self.client(0, "gacks-pub2")
        wait_group_acked(self.nodes[0], pub, [m1, m2], "gacks/two")
        freeze(self, self.nodes[1])
        # NATS gives about half of these to node 1's frozen member link; each is sent again to
        # the group until a live member (node 2's) takes it.
        payloads = [b"inflight-%03d" % i for i in range(20)]
        acked = publish_pipelined(pub, "gacks/two", payloads, 1, timeout=20)
        self.assertEqual(sorted(acked), sorted(payloads), "every PUBLISH acknowledged")
        got = set()
        deadline = time.monotonic() + 10
        while not set(payloads) <= got and time.monotonic() < deadline:
            try:
                got.update(g.payload for g in m2.receive(1, timeout=0.5))
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                pass
        self.assertEqual(set(payloads) - got, set(), "PUBACKed and lost")
        self.assertGreaterEqual(metric(self.nodes[0], "ringmq_cluster_group_retransmits_total"),
                                1)
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_ack_pending"), 0)
