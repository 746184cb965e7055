"""Cluster over NATS, the QoS 0 slice (docs/cluster.md): three ringmq nodes, each connected to a
different server of a 3-server NATS cluster (nats_cluster.NatsCluster), exchange messages.

One NATS cluster and one set of nodes serve every test of the class (each test uses its own
topics), so the file stays within about 20 s. Interest travels from a node's shard to its NATS
server and over the routes to the others, so each test first proves the route of its topics
with probes (wait_route) before what it measures; every wait is bounded.
"""

import tempfile
import time
import unittest

import broker
import mqtt_raw
import nats_cluster

from nats_cluster import ROUTE_TIMEOUT, metric, scrape  # noqa: F401 (others import them here)

QUIET = 0.5  # seconds of silence that stand for "nothing more arrives"


def wait_route(publisher, subscribers, topic, timeout=ROUTE_TIMEOUT):
    """Publishes probes on `topic` from `publisher` until every subscriber got one, then drains
    the probes still in flight. Later messages of `publisher` follow the same NATS connection,
    so they arrive after its probes (NATS keeps order per connection)."""
    deadline = time.monotonic() + timeout
    waiting = list(subscribers)
    while waiting:
        if time.monotonic() > deadline:
            raise AssertionError(f"no route for {topic} within {timeout}s")
        publisher.publish(topic, b"probe")
        still = []
        for client in waiting:
            try:
                client.receive(1, timeout=0.1)
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                still.append(client)
        waiting = still
    for client in subscribers:
        drain(client)


def drain(client, quiet=0.2):
    """Every PUBLISH that arrives until none has for `quiet` seconds."""
    out = []
    while True:
        try:
            out.extend(client.receive(1, timeout=quiet))
        except (mqtt_raw.ProtocolError, TimeoutError, OSError):
            return out


class ClusterTest(nats_cluster.NodesOverNats):
    node_flags = ("--sys-interval-s", "1")

    def client(self, node, client_id, **fields):
        c = mqtt_raw.Client(self.nodes[node].port, client_id, **fields)
        self.addCleanup(c.close)
        return c

    def nats(self, server):
        c = self.cluster.client(server)
        self.addCleanup(c.close)
        return c

    def test_qos0_crosses_nodes_in_publisher_order(self):
        hops_before = metric(self.nodes[1], "ringmq_cluster_hop_latency_seconds_count")
        sub1 = self.client(1, "order-sub1")
        sub1.subscribe([("order/t", 0)])
        sub2 = self.client(2, "order-sub2")
        sub2.subscribe([("order/t", 0)])
        pub = self.client(0, "order-pub")
        wait_route(pub, [sub1, sub2], "order/t")
        payloads = [b"m%03d" % i for i in range(200)]
        for p in payloads:
            pub.send(mqtt_raw.publish("order/t", p))
        for sub in (sub1, sub2):
            got = sub.receive(len(payloads), timeout=10)
            self.assertEqual([g.payload for g in got], payloads)
            self.assertTrue(all(g.topic == "order/t" and g.qos == 0 and not g.retain
                                for g in got))
        # Each message's hop was observed on the receiving node (probes included), and on this
        # one host within a minute.
        hops = metric(self.nodes[1], "ringmq_cluster_hop_latency_seconds_count") - hops_before
        self.assertGreaterEqual(hops, len(payloads))
        within_60s = metric(self.nodes[1], "ringmq_cluster_hop_latency_seconds_bucket", le="+Inf")
        self.assertEqual(within_60s, metric(self.nodes[1],
                                            "ringmq_cluster_hop_latency_seconds_count"))
        self.assertLess(metric(self.nodes[1], "ringmq_cluster_hop_latency_seconds_sum"),
                        60 * metric(self.nodes[1], "ringmq_cluster_hop_latency_seconds_count"))

    def test_qos_is_the_lower_of_publish_and_subscription_and_retain_is_0(self):
        sub0 = self.client(1, "qos-sub0")
        sub0.subscribe([("qos/t", 0)])
        sub1 = self.client(1, "qos-sub1")
        sub1.subscribe([("qos/t", 1)], granted=[1])
        pub = self.client(2, "qos-pub")
        wait_route(pub, [sub0, sub1], "qos/t")
        pub.publish("qos/t", b"q1", qos=1, retain=True)
        self.assertEqual([(g.payload, g.qos, g.retain) for g in sub0.receive(1)], [(b"q1", 0, 0)])
        # MQTT-3.3.1-9: not sent for a new subscription, so RETAIN 0.
        self.assertEqual([(g.payload, g.qos, g.retain) for g in sub1.receive(1)], [(b"q1", 1, 0)])

    def test_wildcard_filters_and_the_parent_level(self):
        sub = self.client(2, "wild-sub")
        sub.subscribe([("wild/+/b", 0), ("wildp/#", 0)])
        pub = self.client(0, "wild-pub")
        wait_route(pub, [sub], "wildp/probe")
        wait_route(pub, [sub], "wild/probe/b")
        for topic in ("wild/x/b", "wild/x/c", "wild/x/b/c", "wildp", "wildp/a/b/c", "wildq/a"):
            pub.publish(topic, topic.encode())
        got = [g.topic for g in sub.receive(3, timeout=5)]
        # MQTT-4.7.1-2: "wildp/#" matches its parent "wildp".
        self.assertEqual(got, ["wild/x/b", "wildp", "wildp/a/b/c"])
        sub.expect_no_publish(QUIET)

    def test_unsubscribe_stops_remote_traffic(self):
        node = self.nodes[1]
        before = metric(node, "ringmq_cluster_nats_subscriptions")
        sub = self.client(1, "unsub-sub")
        sub.subscribe([("unsub/t", 0)])
        witness = self.client(2, "unsub-witness")
        witness.subscribe([("unsub/t", 0)])
        pub = self.client(0, "unsub-pub")
        wait_route(pub, [sub, witness], "unsub/t")
        self.assertEqual(metric(node, "ringmq_cluster_nats_subscriptions"), before + 1)
        sub.unsubscribe(["unsub/t"])
        self.assertEqual(metric(node, "ringmq_cluster_nats_subscriptions"), before)
        # Node 1's UNSUB left before its UNSUBACK: a probe subscription made on the same NATS
        # server after it reaches the publisher's server after it (one route, in order).
        nats_cluster.wait_interest(self.nats(0), self.nats(1))
        received = metric(node, "ringmq_cluster_messages_total", direction="in")
        for i in range(20):
            pub.publish("unsub/t", b"after %d" % i)
        self.assertEqual(len(witness.receive(20, timeout=5)), 20)
        sub.expect_no_publish(QUIET)
        # Node 1 had no other interest in unsub/t: its UNSUB reached NATS before the publishes
        # that the witness got (one route), so nothing came to node 1 at all.
        self.assertEqual(metric(node, "ringmq_cluster_messages_total", direction="in"),
                         received)

    def test_each_session_gets_each_message_once(self):
        # On the publisher's node and on another: one session with overlapping filters, and
        # more sessions (spread over the node's two shards by their client ids) with one each.
        subs = []
        for node in (0, 1):
            both = self.client(node, f"once-both-{node}")
            # The literal filter first, on its own: its sid is the lowest of its shard, so the
            # copy of the wildcard that arrives too is the one to drop.
            both.subscribe([("once/b", 0)])
            both.subscribe([("once/#", 0)])
            subs.append(both)
            for k in range(4):
                one = self.client(node, f"once-{node}-{k}")
                one.subscribe([("once/#" if k % 2 else "once/b", 0)])
                subs.append(one)
        pub = self.client(0, "once-pub")
        echoes = metric(self.nodes[0], "ringmq_cluster_dropped_total", reason="echo")
        overlap = metric(self.nodes[1], "ringmq_cluster_dropped_total", reason="overlap")
        wait_route(pub, subs, "once/b")
        payloads = [b"o%d" % i for i in range(30)]
        for p in payloads:
            pub.send(mqtt_raw.publish("once/b", p))
        for sub in subs:
            self.assertEqual([g.payload for g in sub.receive(len(payloads), timeout=5)],
                             payloads, sub.client_id)
        for sub in subs:
            sub.expect_no_publish(QUIET / 5)
        # Node 1's session with once/# and once/b got copies for both (plus the parent once):
        # all but one were dropped.
        self.assertGreater(metric(self.nodes[1], "ringmq_cluster_dropped_total",
                                  reason="overlap"), overlap)
        # Node 0's other shard subscribed too (the sessions are spread over both shards), so
        # NATS brought node 0 its own messages back, and they were dropped.
        self.assertGreater(metric(self.nodes[0], "ringmq_cluster_dropped_total", reason="echo"),
                           echoes)

    def test_sys_and_dollar_topics_stay_on_their_node(self):
        raw = self.nats(1)
        raw.sub("$SYS.>")
        raw.sub("$x.>")
        raw.sub("dollar.>")
        raw.flush()
        # Node 0's server learns raw's interest across the route asynchronously: a message
        # published there before would find no interest (a fresh-clone ASan run once timed out
        # below). Probe from node 0's server until raw gets a probe.
        probe = self.nats(0)
        deadline = time.monotonic() + 10
        while True:
            probe.pub("dollar.probe", b"p")
            probe.flush()
            try:
                if raw.next_msg(0.2).subject == "dollar.probe":
                    break
            except TimeoutError:
                pass
            self.assertLess(time.monotonic(), deadline, "raw's interest never reached server 0")
        raw.drain(0.3)  # later probes
        local = self.client(0, "dollar-local")
        local.subscribe([("$x/#", 0)])
        pub = self.client(0, "dollar-pub")
        pub.publish("$x/y", b"local only")
        self.assertEqual([g.payload for g in local.receive(1)], [b"local only"])
        pub.publish("dollar/y", b"carried")
        msg = raw.next_msg(5)
        # --sys-interval-s 1: every node published its $SYS topics during this wait.
        self.assertEqual((msg.subject, msg.payload), ("dollar.y", b"carried"))
        time.sleep(1.2)
        self.assertEqual([m.subject for m in raw.drain(0.3)], [])

    def test_nats_application_and_mqtt_clients_exchange_messages(self):
        raw = self.nats(2)
        sid = raw.sub("app.out")
        raw.flush()
        mqtt_sub = self.client(0, "app-sub")
        mqtt_sub.subscribe([("app/in", 1)], granted=[1])
        mqtt_pub = self.client(1, "app-pub")
        deadline = time.monotonic() + ROUTE_TIMEOUT
        while True:  # a raw PUB reaches an MQTT subscriber, at QoS 0 (no ringmq headers)
            raw.pub("app.in", b"from nats")
            try:
                got = mqtt_sub.receive(1, timeout=0.1)
                break
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                self.assertLess(time.monotonic(), deadline, "no route app.in -> MQTT")
        self.assertEqual((got[0].topic, got[0].payload, got[0].qos), ("app/in", b"from nats", 0))
        drain(mqtt_sub)
        deadline = time.monotonic() + ROUTE_TIMEOUT
        while True:  # an MQTT PUBLISH reaches a raw NATS SUB, with the ringmq headers
            mqtt_pub.publish("app/out", b"from mqtt", qos=1)
            try:
                msg = raw.next_msg(0.1)
                break
            except TimeoutError:
                self.assertLess(time.monotonic(), deadline, "no route MQTT -> app.out")
        self.assertEqual((msg.subject, msg.sid, msg.payload), ("app.out", sid, b"from mqtt"))
        sent_at = int(msg.headers.pop("Ringmq-Sent-At"))  # microseconds, the node's clock
        self.assertLess(abs(sent_at / 1e6 - time.time()), 60)
        self.assertEqual(msg.headers, {"Ringmq-Node": "node1", "Ringmq-Qos": "1",
                                       "Ringmq-Retain": "0"})

    def test_will_crosses_nodes(self):
        sub = self.client(1, "will-sub")
        sub.subscribe([("will/#", 0)])
        pub = self.client(0, "will-probe")
        wait_route(pub, [sub], "will/probe")
        dying = mqtt_raw.Client(self.nodes[0].port, "will-dying", will_topic="will/gone",
                                will_message=b"bye")
        dying.close()  # without DISCONNECT: the will falls due (MQTT-3.1.2-8)
        got = sub.receive(1, timeout=5)
        self.assertEqual((got[0].topic, got[0].payload), ("will/gone", b"bye"))

    def test_recovered_session_subscribes_again(self):
        # A persistent session's filters come back with it at restart, before its client does:
        # the node subscribes them on NATS again, and remote QoS 1 messages wait in the session.
        data_dir = tempfile.mkdtemp(prefix="ringmq-cluster-")
        flags = ("--cluster-nats-url", self.cluster.urls()[1], "--cluster-node-name", "node3",
                 "--persistence", "true", "--data-dir", data_dir)
        with broker.Broker(*flags, threads=2, metrics=True, log_level="info") as first:
            c = mqtt_raw.Client(first.port, "recovered", clean=False)
            c.subscribe([("recovered/t", 1)], granted=[1])
            c.disconnect()
        with broker.Broker(*flags, threads=2, metrics=True, log_level="info") as second:
            self.assertEqual(metric(second, "ringmq_cluster_nats_subscriptions"), 1)
            pub = self.client(0, "recovered-pub")
            deadline = time.monotonic() + ROUTE_TIMEOUT
            # QoS 0 probes to an offline session are dropped; they show the route is there.
            while metric(second, "ringmq_cluster_messages_total", direction="in") == 0:
                self.assertLess(time.monotonic(), deadline, "no route to the recovered session")
                pub.publish("recovered/t", b"probe")
                time.sleep(0.05)
            pub.publish("recovered/t", b"kept", qos=1)
            deadline = time.monotonic() + ROUTE_TIMEOUT
            while metric(second, "ringmq_queued_messages") == 0:
                self.assertLess(time.monotonic(), deadline, "the QoS 1 message did not arrive")
                time.sleep(0.05)
            c = mqtt_raw.Client(second.port, "recovered", clean=False, session_present=True)
            got = c.receive(1, timeout=5)
            self.assertEqual((got[0].payload, got[0].qos), (b"kept", 1))
            c.expect_no_publish(QUIET / 5)
            c.close()

    def test_uncarried_topic_is_counted_not_forwarded(self):
        before = metric(self.nodes[0], "ringmq_cluster_dropped_total", reason="uncarried_topic")
        pub = self.client(0, "uncarried-pub")
        pub.publish("a b/c", b"space")
        pub.publish("x/*/y", b"star level")
        pub.ping()
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_dropped_total",
                                reason="uncarried_topic"), before + 2)

    def test_unclustered_node_has_no_nats_traffic(self):
        def connections():
            return sum(s.monitor("connz")["num_connections"] for s in self.cluster.servers)
        before = connections()
        with broker.Broker(threads=2, metrics=True, log_level="info") as plain:
            sub = mqtt_raw.Client(plain.port, "plain-sub")
            sub.subscribe([("plain/t", 0)])
            pub = mqtt_raw.Client(plain.port, "plain-pub")
            pub.publish("plain/t", b"x")
            self.assertEqual([g.payload for g in sub.receive(1)], [b"x"])
            self.assertEqual(connections(), before)
            self.assertEqual(metric(plain, "ringmq_cluster_messages_total"), 0)
            self.assertEqual(metric(plain, "ringmq_cluster_link_events_total"), 0)
            sub.close()
            pub.close()


class ClusterOutageTest(unittest.TestCase):
    """A node's NATS server dies: local traffic goes on, and its shards' links move to the
    servers the cluster announced (INFO connect_urls), after which messages cross again."""

    def test_links_move_to_another_server(self):
        cluster = nats_cluster.NatsCluster(size=3, jetstream=False)
        cluster.start()
        self.addCleanup(cluster.stop)
        urls = cluster.urls()
        nodes = []
        for i in range(2):
            node = broker.Broker("--cluster-nats-url", urls[i], "--cluster-node-name",
                                 f"outage{i}", threads=2, metrics=True, log_level="info")
            node.start()
            self.addCleanup(node.stop)
            nodes.append(node)
        sub = mqtt_raw.Client(nodes[1].port, "outage-sub")
        self.addCleanup(sub.close)
        sub.subscribe([("outage/t", 0)])
        pub = mqtt_raw.Client(nodes[0].port, "outage-pub")
        self.addCleanup(pub.close)
        wait_route(pub, [sub], "outage/t")

        cluster.kill(1)  # node 1's server
        local = mqtt_raw.Client(nodes[1].port, "outage-local")
        self.addCleanup(local.close)
        local.publish("outage/t", b"local")
        self.assertEqual([g.payload for g in sub.receive(1)], [b"local"])
        deadline = time.monotonic() + ROUTE_TIMEOUT
        while metric(nodes[1], "ringmq_cluster_link_events_total", event="reconnect") < 2:
            self.assertLess(time.monotonic(), deadline, "node 1's links did not reconnect")
            time.sleep(0.05)
        self.assertGreaterEqual(
            metric(nodes[1], "ringmq_cluster_link_events_total", event="disconnect"), 2)
        wait_route(pub, [sub], "outage/t")  # the subscription was sent again after reconnecting
        for i in range(10):
            pub.publish("outage/t", b"after %d" % i)
        self.assertEqual([g.payload for g in sub.receive(10, timeout=5)],
                         [b"after %d" % i for i in range(10)])


if __name__ == "__main__":
    unittest.main()
