"""Retained messages cluster-wide (docs/cluster.md "Retained messages"): three ringmq nodes on a
3-server NATS cluster with JetStream share one stream with one message per topic; each node
applies it to its own retained store.

A new subscription reads the node's store, which follows the stream asynchronously, so every
check polls with fresh subscribers until the expected retained state shows or a bounded wait
ends (RETAIN_TIMEOUT). One NATS cluster and one set of nodes serve the first class; the outage
class starts its own.

Waits under load (issue 16, lane weak): every wait ends on an event (a metric, a log line, the
retained state a subscriber gets), so the bounds only decide how long a failure takes to
report; they are generous because a JetStream consumer has taken more than 10 s to start
while both cores of the machine were compiling. An absence ("no retained message") is never
concluded from silence alone: the same publisher then writes a marker topic after the change,
the stream keeps one connection's messages in order and each node applies it in order, so a
subscriber that gets the marker has a store that applied the change before it.
"""

import json
import struct
import time
import unittest

import mqtt_raw
import nats_cluster
import test_cluster_props
from test_cluster import ROUTE_TIMEOUT, drain, metric, scrape

RETAIN_TIMEOUT = 30.0  # a retained update reaching every node's store
CONSUMER_TIMEOUT = 60.0  # a node's stream consumer starting (stream create, JetStream leader)


start_node = nats_cluster.start_node  # others import it from here


def wait_consuming(node, timeout=CONSUMER_TIMEOUT):
    """Until the node's stream consumer has started (the stream exists then)."""
    started = time.monotonic()
    deadline = started + timeout
    while metric(node, "ringmq_cluster_retained_stream_events_total",
                 event="consumer_start") < 1:
        if time.monotonic() > deadline:
            raise AssertionError(f"retained consumer not started within {timeout} s:\n"
                                 f"{node.stderr_tail()}")
        time.sleep(0.05)
    return time.monotonic() - started


def retained_now(node, topic_filter, client_id, quiet=0.3):
    """What a new subscription to `topic_filter` on `node` gets: {topic: (payload, qos)} of the
    RETAIN 1 messages (a live message would have RETAIN 0)."""
    client = mqtt_raw.Client(node.port, client_id)
    try:
        client.subscribe([(topic_filter, 2)])
        got = drain(client, quiet)
    finally:
        client.close()
    return {g.topic: (g.payload, g.qos) for g in got if g.retain}


def wait_retained(test, node, topic_filter, want, client_id, timeout=RETAIN_TIMEOUT):
    """Polls until a new subscription on `node` gets exactly `want` ({topic: (payload, qos)})."""
    deadline = time.monotonic() + timeout
    while True:
        got = retained_now(node, topic_filter, client_id)
        if got == want:
            return
        if time.monotonic() > deadline:
            counters = [line for line in scrape(node).splitlines()
                        if line.startswith("ringmq_cluster_") and not line.endswith(" 0")]
            test.fail(f"{node.port}: retained {got!r}, want {want!r} after {timeout} s; " +
                      "\n".join(counters))
        time.sleep(0.1)


class ClusterRetainedTest(nats_cluster.NodesOverNats):
    jetstream = True
    node_prefix = "rnode"

    @classmethod
    def nodes_started(cls):
        for node in cls.nodes:
            wait_consuming(node)

    def client(self, node, client_id):
        c = mqtt_raw.Client(self.nodes[node].port, client_id)
        self.addCleanup(c.close)
        return c

    def test_retained_on_one_node_reaches_new_subscribers_on_the_others(self):
        # MQTT-3.3.1-6/-8 across nodes: a new subscription gets the topic's retained message,
        # with RETAIN 1, at min(published, granted) QoS.
        pub = self.client(0, "rt-pub")
        pub.publish("rt/a/b", b"hello", qos=1, retain=True)
        pub.publish("rt/a/c", b"zero", qos=0, retain=True)
        want = {"rt/a/b": (b"hello", 1), "rt/a/c": (b"zero", 0)}
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "rt/a/+", want, f"rt-sub{i}")
        self.assertGreaterEqual(
            metric(self.nodes[0], "ringmq_cluster_retained_updates_total", direction="out"), 2)
        self.assertGreaterEqual(
            metric(self.nodes[0], "ringmq_cluster_retained_stream_events_total", event="ack"), 2)
        self.assertGreaterEqual(
            metric(self.nodes[2], "ringmq_cluster_retained_updates_total", direction="in"), 2)

    def test_clear_on_one_node_removes_it_everywhere(self):
        # MQTT-3.3.1-10/11: an empty retained payload deletes the topic's retained message.
        self.client(0, "clr-pub0").publish("clr/t", b"v", qos=1, retain=True)
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "clr/t", {"clr/t": (b"v", 1)}, f"clr-sub{i}")
        pub1 = self.client(1, "clr-pub1")
        pub1.publish("clr/t", b"", qos=1, retain=True)
        # The absence shows next to a marker written after the clear (module docstring).
        pub1.publish("clr/marker", b"m", qos=1, retain=True)
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "clr/#", {"clr/marker": (b"m", 1)}, f"clr-sub{i}")

    def test_last_writer_wins_and_nodes_converge(self):
        # Writes in a known order: the later one is the value everywhere.
        self.client(0, "lw-pub0").publish("lw/t", b"first", qos=1, retain=True)
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "lw/t", {"lw/t": (b"first", 1)}, f"lw-sub{i}")
        self.client(2, "lw-pub2").publish("lw/t", b"second", qos=1, retain=True)
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "lw/t", {"lw/t": (b"second", 1)}, f"lw-sub{i}")
        # Concurrent writers on two nodes: every node ends on the same value (the stream's last).
        a = self.client(0, "lw-a")
        c = self.client(2, "lw-c")
        for i in range(50):
            a.publish("lw/race", b"a%02d" % i, retain=True)
            c.publish("lw/race", b"c%02d" % i, retain=True)
        a.ping()
        c.ping()
        deadline = time.monotonic() + RETAIN_TIMEOUT
        while True:
            values = [retained_now(node, "lw/race", f"lw-race{i}").get("lw/race")
                      for i, node in enumerate(self.nodes)]
            if values[0] is not None and values.count(values[0]) == 3:
                break
            self.assertLess(time.monotonic(), deadline, f"nodes disagree: {values}")
            time.sleep(0.2)
        self.assertIn(values[0][0], (b"a49", b"c49"))

    def test_live_delivery_keeps_retain_0_and_nats_apps_may_write_the_stream(self):
        # A current subscriber on another node gets the retained PUBLISH live with RETAIN 0
        # (MQTT-3.3.1-9); a NATS application's message on the stream subject is retained too
        # (QoS 0: no Ringmq-Qos header).
        sub = self.client(1, "live-sub")
        sub.subscribe([("live/t", 1)])
        pub = self.client(0, "live-pub")
        deadline = time.monotonic() + 2 * ROUTE_TIMEOUT
        while True:
            pub.publish("live/t", b"x", qos=1, retain=True)
            got = drain(sub)
            if got:
                break
            self.assertLess(time.monotonic(), deadline, "no route")
        self.assertTrue(all(not g.retain for g in got))
        nats = self.cluster.client(2)
        self.addCleanup(nats.close)
        nats.pub("$RINGMQ.retained.t.live.app", b"from nats")
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "live/app", {"live/app": (b"from nats", 0)}, f"live-r{i}")

    def test_node_started_later_gets_what_was_retained(self):
        self.client(1, "late-pub").publish("late/t", b"before", qos=1, retain=True)
        wait_retained(self, self.nodes[2], "late/t", {"late/t": (b"before", 1)}, "late-sub")
        node = start_node([self.cluster.urls()[0]], "rnode-late")
        self.addCleanup(node.stop)
        wait_consuming(node)
        wait_retained(self, node, "late/t", {"late/t": (b"before", 1)}, "late-sub-new")

    def test_a_message_expiry_interval_ends_on_every_node(self):
        # 5.0:3.3.2.3.3: a retained message whose Message Expiry Interval has passed is not
        # delivered; the interval's end crosses nodes with the stream update.
        sock = mqtt_raw.open_socket(self.nodes[0].port)
        self.addCleanup(sock.close)
        mqtt_raw.send(sock, mqtt_raw.connect("exp-pub5", level=5, properties=b"\x00"))
        self.assertEqual(mqtt_raw.read_packet(sock).type, mqtt_raw.CONNACK)
        properties = b"\x05\x02" + struct.pack("!I", 3)  # Message Expiry Interval 3 s
        mqtt_raw.send(sock, mqtt_raw.packet(0x31, mqtt_raw.mqtt_string("exp/t") + properties +
                                            b"short-lived"))
        # A marker without expiry on the same connection (module docstring): a subscriber
        # that gets it has the expiring message in its node's store too, or had it.
        mqtt_raw.send(sock, mqtt_raw.packet(0x31, mqtt_raw.mqtt_string("exp/marker") + b"\x00" +
                                            b"m"))
        mqtt_raw.ping(sock)
        published = time.monotonic()
        both = {"exp/t": (b"short-lived", 0), "exp/marker": (b"m", 0)}
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "exp/#", both, f"exp-sub{i}")
        if time.monotonic() > published + 3.0:
            self.skipTest("the update took longer than its 3 s expiry to reach every node")
        # Waiting for the expiry time to pass is the test's subject, not a race.
        time.sleep(max(0.0, published + 3.2 - time.monotonic()))
        for i, node in enumerate(self.nodes):
            wait_retained(self, node, "exp/#", {"exp/marker": (b"m", 0)}, f"exp-late{i}",
                          timeout=1.0)

    def test_a_node_over_its_retained_bound_counts_the_refusals(self):
        # The node's retained store bounds what it caches from the stream (retained_store.h).
        node = start_node([self.cluster.urls()[1]], "rnode-full", "--max-retained-messages", "0")
        self.addCleanup(node.stop)
        wait_consuming(node)
        self.client(0, "full-pub").publish("full/t", b"v", qos=1, retain=True)
        wait_retained(self, self.nodes[2], "full/t", {"full/t": (b"v", 1)}, "full-sub")
        deadline = time.monotonic() + RETAIN_TIMEOUT
        while metric(node, "ringmq_cluster_retained_dropped_total", reason="store_refused") < 1:
            self.assertLess(time.monotonic(), deadline, "no refusal counted")
            time.sleep(0.05)
        self.assertEqual(retained_now(node, "full/t", "full-sub-bound"), {})

    # retained5 lane: the MQTT 5.0 properties of a retained message cross nodes in the stream.
    def test_properties_reach_later_subscribers_on_other_and_restarted_nodes_MQTT_3_3_2_4_15_to_20(
            self):
        # MQTT-3.3.2-4 (Payload Format Indicator unaltered), -15 (Response Topic), -16
        # (Correlation Data), -17/-18 (User Properties, in order), -20 (Content Type): kept with
        # the retained message and sent to subscribers, by the node that read it from the stream.
        restarted = start_node([self.cluster.urls()[2]], "rnode-r5")
        self.addCleanup(restarted.stop)
        wait_consuming(restarted)
        users = [("zeta", "1"), ("alpha", "two words"), ("zeta", "3")]
        properties = test_cluster_props.publish_properties(
            PayloadFormatIndicator=1, ContentType="text/plain; charset=utf-8",
            ResponseTopic="r5/reply", CorrelationData=b"\x00\r\n\xff", UserProperty=users)
        pub = test_cluster_props.Client(self.nodes[0].port, "r5-pub")
        self.addCleanup(pub.close)
        pub.client.publish("r5/t", b"caf\xc3\xa9", qos=1, retain=True,
                           properties=properties).wait_for_publish(test_cluster_props.TIMEOUT)
        # The retained store of node 1 (and of the node restarted after the publish, whose new
        # process has an empty store: it reads the stream from the last message of each topic)
        # is filled from the stream only: a live copy is never stored (router_cluster_retained.cc).
        restarted.stop()
        restarted = start_node([self.cluster.urls()[2]], "rnode-r5")
        self.addCleanup(restarted.stop)
        wait_consuming(restarted)
        for name, node in (("node1", self.nodes[1]), ("restarted", restarted)):
            with self.subTest(node=name):
                msg = wait_retained5(self, node, "r5/t", f"r5-sub-{name}")
                self.assertEqual((msg.topic, msg.payload, msg.qos), ("r5/t", b"caf\xc3\xa9", 1))
                got = msg.properties
                self.assertEqual(getattr(got, "PayloadFormatIndicator", None), 1)
                self.assertEqual(getattr(got, "ContentType", None), "text/plain; charset=utf-8")
                self.assertEqual(getattr(got, "ResponseTopic", None), "r5/reply")
                self.assertEqual(getattr(got, "CorrelationData", None), b"\x00\r\n\xff")
                self.assertEqual(getattr(got, "UserProperty", None), users)
                self.assertIsNone(getattr(got, "MessageExpiryInterval", None))
        # A 3.1.1 subscriber gets the same message, without properties (none in 3.1.1).
        self.assertEqual(retained_now(self.nodes[1], "r5/t", "r5-sub311"),
                         {"r5/t": (b"caf\xc3\xa9", 1)})


    def test_malformed_property_fields_in_the_stream_are_left_out_and_counted(self):
        # retained5 lane: a NATS application writes the stream subject with property fields,
        # two of them invalid (a Payload Format Indicator of 7; a wildcard Response Topic,
        # MQTT-3.3.2-14): every node applies the update with the valid ones and counts the rest.
        nats = self.cluster.client(2)
        self.addCleanup(nats.close)
        nats.pub("$RINGMQ.retained.t.r5.bad", b"from nats", headers={
            "Ringmq-Qos": "1", "Ringmq-Payload-Format": "7", "Ringmq-Response-Topic": "r5/#",
            "Ringmq-Content-Type": "text/x", "app-header": "kept"})
        for i, node in enumerate(self.nodes):
            msg = wait_retained5(self, node, "r5/bad", f"r5-bad{i}")
            self.assertEqual((msg.payload, msg.qos), (b"from nats", 1))
            got = msg.properties
            self.assertEqual(getattr(got, "ContentType", None), "text/x")
            self.assertEqual(getattr(got, "UserProperty", None), [("app-header", "kept")])
            self.assertIsNone(getattr(got, "PayloadFormatIndicator", None))
            self.assertIsNone(getattr(got, "ResponseTopic", None))
            nats_cluster.wait_metric(node, "ringmq_cluster_retained_properties_dropped_total", 2)
            self.assertEqual(metric(node, "ringmq_cluster_retained_properties_dropped_total"), 2)

def wait_retained5(test, node, topic, client_id, timeout=RETAIN_TIMEOUT):
    """Polls with new paho MQTT 5.0 subscribers on `node` until one gets a retained message on
    `topic` (RETAIN 1); returns it (paho's MQTTMessage, with its properties)."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        sub = test_cluster_props.Client(node.port, f"{client_id}-{attempt}")
        try:
            sub.subscribe(topic, qos=1)
            got = [m for m in sub.drain(quiet=0.3) if m.retain]
        finally:
            sub.close()
        if got:
            return got[0]
        test.assertLess(time.monotonic(), deadline,
                        f"{node.port}: no retained message on {topic} after {timeout} s")
        attempt += 1
        time.sleep(0.1)


class ClusterRetainedOutageTest(unittest.TestCase):
    """A NATS server dies: retained messages keep working on its node, and once its links have
    moved to another server the nodes converge again (the stream has 3 replicas). The stream
    here is one an operator created first with settings of its own, which the nodes use."""

    def test_nats_server_killed_still_converges(self):
        cluster = nats_cluster.NatsCluster(size=3)
        cluster.start()
        self.addCleanup(cluster.stop)
        urls = cluster.urls()
        # An operator made the stream first, with a byte limit of its own: the nodes use it
        # (JetStream error 10058 on their create is logged, not fatal).
        nats = cluster.client(0)
        self.addCleanup(nats.close)
        nats.sub("_INBOX.retained-test.>")
        nats.pub("$JS.API.STREAM.CREATE.RINGMQ_RETAINED", json.dumps({
            "name": "RINGMQ_RETAINED", "subjects": ["$RINGMQ.retained.t.>"],
            "max_msgs_per_subject": 1, "num_replicas": 3, "max_bytes": 1 << 20}).encode(),
            reply="_INBOX.retained-test.1")
        self.assertIn(b'"config"', nats.next_msg(CONSUMER_TIMEOUT).payload)
        nodes = [start_node([urls[i]], f"rout{i}") for i in range(2)]
        for node in nodes:
            self.addCleanup(node.stop)
            wait_consuming(node)
            self.assertIsNotNone(node.wait_for_log("exists with another configuration; using it",
                                                   timeout=RETAIN_TIMEOUT))
        pub0 = mqtt_raw.Client(nodes[0].port, "rout-pub0")
        self.addCleanup(pub0.close)
        pub0.publish("rout/t", b"one", qos=1, retain=True)
        for i, node in enumerate(nodes):
            wait_retained(self, node, "rout/t", {"rout/t": (b"one", 1)}, f"rout-sub{i}")

        cluster.kill(1)  # node 1's server
        pub1 = mqtt_raw.Client(nodes[1].port, "rout-pub1")
        self.addCleanup(pub1.close)
        pub1.publish("rout/t", b"two", qos=1, retain=True)
        # Local retained keeps working at once: the node's own store has it whatever its link
        # does (polled: under load the first poll's quiet time may end before delivery).
        wait_retained(self, nodes[1], "rout/t", {"rout/t": (b"two", 1)}, "rout-local")
        # The update held by node 1's link reaches the stream after it reconnects.
        for i, node in enumerate(nodes):
            wait_retained(self, node, "rout/t", {"rout/t": (b"two", 1)}, f"rout-sub{i}",
                          timeout=2 * RETAIN_TIMEOUT)
        pub0.publish("rout/u", b"three", qos=1, retain=True)
        wait_retained(self, nodes[1], "rout/u", {"rout/u": (b"three", 1)}, "rout-sub-u",
                      timeout=2 * RETAIN_TIMEOUT)


if __name__ == "__main__":
    unittest.main()
