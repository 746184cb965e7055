"""QoS 0 batches between nodes (docs/cluster.md "Batching QoS 0"; [cluster] batch): three ringmq
nodes with batching on, each connected to a different server of a 3-server NATS cluster.

QoS 0 messages that cross nodes travel several to one NATS message on ringmq's own subjects
($RINGMQ.b.<node>.<shard>), addressed to the links that announced interest. Checked: pairs and
fanin across nodes arrive complete and in each publisher's order (MQTT-4.6.0-6) with fewer NATS
messages than MQTT messages; QoS 0 and QoS 1 interleaved on one topic keep their order; a NATS
application's message on a plain subject still reaches MQTT subscribers, and (the documented
trade-off) it no longer sees QoS 0 messages on plain subjects, while QoS 1 stays visible. The
same NATS-application check without batching is test_cluster.py's
test_nats_application_and_mqtt_clients_exchange_messages. MQTT 5.0 properties of a QoS 0
message travel inside its batch record (batchprops lane), checked with paho-mqtt 5.0 clients.

Run with /usr/bin/python3 (paho is a Debian package).
"""

import time
import unittest

import mqtt_raw
import nats_cluster
import test_cluster_props
from test_cluster import ROUTE_TIMEOUT, drain, metric, wait_route
from test_cluster_props import prop, publish_properties


class ClusterBatchTest(nats_cluster.NodesOverNats):
    node_flags = ("--cluster-batch", "true", "--cluster-batch-bytes-max", "4096")

    def client(self, node, client_id, **fields):
        c = mqtt_raw.Client(self.nodes[node].port, client_id, **fields)
        self.addCleanup(c.close)
        return c

    def nats(self, server):
        c = self.cluster.client(server)
        self.addCleanup(c.close)
        return c

    def batches_out(self):
        return sum(metric(n, "ringmq_cluster_batches_total", direction="out") for n in self.nodes)

    def test_pairs_across_nodes_arrive_complete_and_in_order(self):
        count = 400
        subs, pubs = [], []
        for i in range(3):  # publisher i on node i+1, its subscriber on node i
            sub = self.client(i, f"pairs-sub{i}")
            sub.subscribe([(f"bpairs/{i}", 0)])
            subs.append(sub)
            pubs.append(self.client((i + 1) % 3, f"pairs-pub{i}"))
        for i in range(3):
            wait_route(pubs[i], [subs[i]], f"bpairs/{i}")
        batches_before = self.batches_out()
        for i in range(3):
            pubs[i].send(b"".join(mqtt_raw.publish(f"bpairs/{i}", b"%d-%04d" % (i, n))
                                  for n in range(count)))
        got = mqtt_raw.receive_all(subs, [count] * 3, timeout=20)
        for i in range(3):
            self.assertEqual([g.payload for g in got[i]],
                             [b"%d-%04d" % (i, n) for n in range(count)])
            self.assertTrue(all(g.topic == f"bpairs/{i}" and g.qos == 0 for g in got[i]))
        batches = self.batches_out() - batches_before
        self.assertGreater(batches, 0)
        self.assertLess(batches, 3 * count / 2, "several MQTT messages per NATS message")
        for node in self.nodes:
            self.assertEqual(metric(node, "ringmq_cluster_batch_events_total", event="invalid"), 0)
            self.assertEqual(metric(node, "ringmq_cluster_batch_events_total", event="refused"), 0)

    def test_fanin_across_nodes_keeps_each_publishers_order(self):
        count = 300
        sub = self.client(0, "fanin-sub")
        sub.subscribe([("bfanin/#", 0)])
        pubs = [self.client(1 + i % 2, f"fanin-pub{i}") for i in range(4)]
        for i, pub in enumerate(pubs):
            wait_route(pub, [sub], f"bfanin/{i}")
        for i, pub in enumerate(pubs):
            pub.send(b"".join(mqtt_raw.publish(f"bfanin/{i}", b"%d-%04d" % (i, n))
                              for n in range(count)))
        got = sub.receive(4 * count, timeout=20)
        for i in range(4):
            mine = [g.payload for g in got if g.topic == f"bfanin/{i}"]
            self.assertEqual(mine, [b"%d-%04d" % (i, n) for n in range(count)])
        self.assertEqual(drain(sub), [], "each message once")

    def test_qos0_and_qos1_on_one_topic_keep_the_publishers_order(self):
        sub = self.client(2, "mixed-sub")
        sub.subscribe([("bmixed/t", 1)], granted=[1])
        pub = self.client(0, "mixed-pub")
        wait_route(pub, [sub], "bmixed/t")
        expected = []
        for n in range(60):
            qos = 1 if n % 3 == 0 else 0
            pub.publish("bmixed/t", b"%02d" % n, qos=qos)  # waits for the PUBACK
            expected.append((b"%02d" % n, qos))
        got = sub.receive(len(expected), timeout=20)
        self.assertEqual([(g.payload, g.qos) for g in got], expected)

    def test_a_group_on_another_node_gets_every_qos0_message(self):
        # Remote shared-subscription groups turn batching off (NATS's queue groups see only
        # plain subjects): the group's node announces it, and the publisher's shard then sends
        # QoS 0 on the plain subject, which the queue group and plain subscribers both get.
        member = self.client(2, "bshare-member")
        member.subscribe([("$share/g/bshare/t", 0)])
        plain = self.client(1, "bshare-plain")
        plain.subscribe([("bshare/t", 0)])
        pub = self.client(0, "bshare-pub")
        wait_route(pub, [member, plain], "bshare/t")
        payloads = [b"s%03d" % n for n in range(200)]
        pub.send(b"".join(mqtt_raw.publish("bshare/t", p) for p in payloads))
        got = mqtt_raw.receive_all([member, plain], [len(payloads)] * 2, timeout=20)
        self.assertEqual([g.payload for g in got[0]], payloads)
        self.assertEqual([g.payload for g in got[1]], payloads)

    def test_a_nats_applications_plain_subject_still_reaches_mqtt_subscribers(self):
        raw = self.nats(2)
        mqtt_sub = self.client(0, "bapp-sub")
        mqtt_sub.subscribe([("bapp/in", 0)])
        deadline = time.monotonic() + ROUTE_TIMEOUT
        while True:
            raw.pub("bapp.in", b"from nats")
            try:
                got = mqtt_sub.receive(1, timeout=0.1)
                break
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                self.assertLess(time.monotonic(), deadline, "no route bapp.in -> MQTT")
        self.assertEqual((got[0].topic, got[0].payload, got[0].qos), ("bapp/in", b"from nats", 0))

    def test_the_trade_off_qos0_leaves_the_plain_subjects_qos1_does_not(self):
        raw = self.nats(1)
        raw.sub("bvis.>")
        raw.flush()
        # An MQTT subscriber on another node makes the QoS 0 message cross nodes (batched).
        mqtt_sub = self.client(2, "bvis-sub")
        mqtt_sub.subscribe([("bvis/#", 1)], granted=[1])
        pub = self.client(0, "bvis-pub")
        wait_route(pub, [mqtt_sub], "bvis/probe")
        raw.drain(0.3)
        pub.publish("bvis/q0", b"batched")
        pub.publish("bvis/q1", b"plain", qos=1)
        got = mqtt_sub.receive(2, timeout=10)
        self.assertEqual([(g.topic, g.payload) for g in got],
                         [("bvis/q0", b"batched"), ("bvis/q1", b"plain")])
        seen = [(m.subject, m.payload) for m in raw.drain(0.5)]
        self.assertEqual(seen, [("bvis.q1", b"plain")])

    def test_qos0_with_mqtt5_properties_crosses_in_a_batch_MQTT_3_3_2_17_18(self):
        sub5 = test_cluster_props.Client(self.nodes[1].port, "bprops-sub5")
        self.addCleanup(sub5.close)
        sub5.subscribe("bprops/#", qos=0, identifier=9)
        sub311 = self.client(1, "bprops-sub311")
        sub311.subscribe([("bprops/#", 0)])
        pub = test_cluster_props.Client(self.nodes[0].port, "bprops-pub")
        self.addCleanup(pub.close)
        # Probes until both subscribers on node 1 get them (the announcement reached node 0).
        deadline = time.monotonic() + ROUTE_TIMEOUT
        waiting = [sub5, sub311]
        while waiting:
            self.assertLess(time.monotonic(), deadline, "no route bprops/t -> node 1")
            pub.publish("bprops/t", b"probe", qos=0)
            still = []
            for s in waiting:
                if s is sub5:
                    if not s.drain(quiet=0.1):
                        still.append(s)
                else:
                    try:
                        s.receive(1, timeout=0.1)
                    except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                        still.append(s)
            waiting = still
        sub5.drain()
        drain(sub311)
        node_a, node_b = self.nodes[0], self.nodes[1]
        mqtt5_before = metric(node_a, "ringmq_cluster_batch_events_total", event="mqtt5")
        batched_in_before = metric(node_b, "ringmq_cluster_batch_messages_total", direction="in")
        all_in_before = metric(node_b, "ringmq_cluster_messages_total", direction="in")
        users = [("k", "1"), ("other", "x"), ("k", "2"), ("line", "a\r\nb")]
        props = publish_properties(UserProperty=users, PayloadFormatIndicator=1,
                                   MessageExpiryInterval=120, ContentType="application/json",
                                   ResponseTopic="bprops/reply", CorrelationData=b"\x00\r\n\xff")
        pub.publish("bprops/t", b'{"x":1}', qos=0, properties=props)
        msg = sub5.get()
        self.assertEqual((msg.topic, msg.payload, msg.qos), ("bprops/t", b'{"x":1}', 0))
        self.assertEqual(prop(msg, "UserProperty"), users, "in order, the repeated name kept")
        self.assertEqual(prop(msg, "PayloadFormatIndicator"), 1)
        self.assertEqual(prop(msg, "ContentType"), "application/json")
        self.assertEqual(prop(msg, "ResponseTopic"), "bprops/reply")
        self.assertEqual(prop(msg, "CorrelationData"), b"\x00\r\n\xff")
        # MQTT-3.3.2-6: what is left, never more than the publisher's interval.
        self.assertLessEqual(prop(msg, "MessageExpiryInterval"), 120)
        self.assertGreaterEqual(prop(msg, "MessageExpiryInterval"), 100)
        self.assertEqual(prop(msg, "SubscriptionIdentifier"), [9], "node 1's own (MQTT-3.3.4-3)")
        got = sub311.receive(1, timeout=10)
        self.assertEqual((got[0].topic, got[0].payload), ("bprops/t", b'{"x":1}'),
                         "a 3.1.1 subscriber gets the message (without properties)")
        # It went in a batch: counted as a 5.0 record on node A (once, whatever the number of
        # node B's shards it went to), delivered from batches on B, none on B's plain subjects.
        self.assertEqual(metric(node_a, "ringmq_cluster_batch_events_total", event="mqtt5")
                         - mqtt5_before, 1)
        batched_in = (metric(node_b, "ringmq_cluster_batch_messages_total", direction="in")
                      - batched_in_before)
        self.assertGreaterEqual(batched_in, 1)
        self.assertEqual(metric(node_b, "ringmq_cluster_messages_total", direction="in")
                         - all_in_before, batched_in, "no copy on a plain subject")
        sub5.nothing()

        # A burst, pipelined in one write by a raw 5.0 client: several such messages per NATS
        # message, each with its own properties, in the publisher's order (MQTT-4.6.0-6).
        count = 300
        raw = mqtt_raw.open_socket(node_a.port)
        self.addCleanup(raw.close)
        raw.sendall(mqtt_raw.connect("bprops-burst", level=5, properties=b"\x00"))
        self.assertEqual(mqtt_raw.read_packet(raw).raw[0], 0x20, "CONNACK")
        burst = []
        for n in range(count):
            p = publish_properties(UserProperty=[("n", str(n)), ("k", "v")],
                                   ContentType="text/plain", MessageExpiryInterval=300)
            body = mqtt_raw.mqtt_string("bprops/burst") + p.pack() + b"%04d" % n
            burst.append(mqtt_raw.packet(0x30, body))
        batches_before = metric(node_a, "ringmq_cluster_batches_total", direction="out")
        mqtt5_before = metric(node_a, "ringmq_cluster_batch_events_total", event="mqtt5")
        raw.sendall(b"".join(burst))
        got5 = [sub5.get() for _ in range(count)]
        self.assertEqual([m.payload for m in got5], [b"%04d" % n for n in range(count)])
        for n, m in enumerate(got5):
            self.assertEqual(prop(m, "UserProperty"), [("n", str(n)), ("k", "v")])
            self.assertEqual(prop(m, "ContentType"), "text/plain")
            self.assertLessEqual(prop(m, "MessageExpiryInterval"), 300)
        got = sub311.receive(count, timeout=20)
        self.assertEqual([g.payload for g in got], [b"%04d" % n for n in range(count)])
        self.assertEqual(metric(node_a, "ringmq_cluster_batch_events_total", event="mqtt5")
                         - mqtt5_before, count)
        batches = metric(node_a, "ringmq_cluster_batches_total", direction="out") - batches_before
        self.assertGreater(batches, 0)
        self.assertLess(batches, count / 2, "several MQTT messages per NATS message")
        for node in self.nodes:
            self.assertEqual(metric(node, "ringmq_cluster_batch_events_total", event="invalid"), 0)
        sub5.nothing()


if __name__ == "__main__":
    unittest.main()
