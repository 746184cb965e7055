"""MQTT 5.0 properties across nodes of the cluster over NATS (docs/cluster.md, "MQTT 5.0
properties across nodes"; src/cluster/mqtt5_headers.h): paho-mqtt 5.0 clients on different
nodes of test_cluster.ClusterTest's fixture (three ringmq nodes on a 3-server NATS cluster), and
raw NATS applications on the same subjects.

Run with /usr/bin/python3 (paho is a Debian package). Every wait is bounded; each test uses its
own topics.
"""

import base64
import queue
import threading
import time
import unittest

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import nats_cluster
import test_cluster
from test_cluster import ROUTE_TIMEOUT, metric

TIMEOUT = 10.0
QUIET = 0.5


class Client:
    """A paho MQTT 5.0 client on its own network thread, collecting what it receives."""

    def __init__(self, port, client_id, clean_start=True, session_expiry_s=None):
        self.messages = queue.Queue()
        self.subacks = queue.Queue()
        self.connected = threading.Event()
        self.client = paho.Client(client_id=client_id, protocol=paho.MQTTv5)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(
            [getattr(code, "value", code) for code in codes])
        connect_properties = None
        if session_expiry_s is not None:
            connect_properties = Properties(PacketTypes.CONNECT)
            connect_properties.SessionExpiryInterval = session_expiry_s
        self.client.connect("127.0.0.1", port, clean_start=clean_start,
                            properties=connect_properties)
        self.client.loop_start()
        if not self.connected.wait(TIMEOUT):
            raise AssertionError(f"{client_id}: no CONNACK within {TIMEOUT}s")

    def subscribe(self, topic, qos=1, identifier=None):
        properties = None
        if identifier is not None:
            properties = Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = identifier
        self.client.subscribe(topic, qos=qos, properties=properties)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic, payload, qos=1, properties=None):
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            raise AssertionError(f"PUBLISH to {topic} not acknowledged within {TIMEOUT}s")

    def get(self, timeout=TIMEOUT):
        return self.messages.get(timeout=timeout)

    def drain(self, quiet=0.2):
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                return out

    def nothing(self, seconds=QUIET):
        try:
            msg = self.messages.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def publish_properties(**fields):
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in fields.items():
        setattr(properties, name, value)
    return properties


def prop(msg, name):
    return getattr(msg.properties, name, None)


class ClusterPropsTest(nats_cluster.NodesOverNats):
    node_flags = test_cluster.ClusterTest.node_flags
    nats = test_cluster.ClusterTest.nats

    def client(self, node, client_id, **kwargs):
        c = Client(self.nodes[node].port, client_id, **kwargs)
        self.addCleanup(c.close)
        return c

    def wait_route(self, send_probe, subscribers, timeout=ROUTE_TIMEOUT):
        """Calls send_probe() until every subscriber got a message, then drains them."""
        deadline = time.monotonic() + timeout
        waiting = list(subscribers)
        while waiting:
            self.assertLess(time.monotonic(), deadline, "no route within the timeout")
            send_probe()
            waiting = [s for s in waiting if not s.drain(quiet=0.1)]
        for s in subscribers:
            s.drain()

    def test_properties_cross_nodes_intact_in_order_5_0_MQTT_3_3_2_17_18(self):
        sub = self.client(1, "props-sub")
        sub.subscribe("props/#", identifier=7)
        sub2 = self.client(2, "props-sub2")  # no identifier: none added for it
        sub2.subscribe("props/+")
        pub = self.client(0, "props-pub")
        self.wait_route(lambda: pub.publish("props/t", b"probe"), [sub, sub2])
        users = [("b", "1"), ("line", "x\r\ny"), ("b", "2"), ("Nats-Msg-Id", "q"),
                 ("sp ace", " pad "), ("gr\u00fc\u00df", "\u00e9t\u00e9"), ("empty", "")]
        props = publish_properties(UserProperty=users, PayloadFormatIndicator=1,
                                   MessageExpiryInterval=120, ContentType="application/json",
                                   ResponseTopic="props/reply", CorrelationData=b"\x00\r\n\xff",
                                   TopicAlias=3)
        pub.publish("props/t", b'{"x":1}', properties=props)
        got = {}
        for s in (sub, sub2):
            msg = got[s] = s.get()
            self.assertEqual((msg.topic, msg.payload), ("props/t", b'{"x":1}'))
            self.assertEqual(prop(msg, "UserProperty"), users)
            self.assertEqual(prop(msg, "PayloadFormatIndicator"), 1)
            self.assertEqual(prop(msg, "ContentType"), "application/json")
            self.assertEqual(prop(msg, "ResponseTopic"), "props/reply")
            self.assertEqual(prop(msg, "CorrelationData"), b"\x00\r\n\xff")
            # MQTT-3.3.2-6: what is left, never more than the publisher's interval.
            self.assertLessEqual(prop(msg, "MessageExpiryInterval"), 120)
            self.assertGreaterEqual(prop(msg, "MessageExpiryInterval"), 100)
            # The publisher's Topic Alias never crosses (it belongs to its connection).
            self.assertIsNone(prop(msg, "TopicAlias"))
        # Subscription Identifiers are the receiving node's subscribers' (MQTT-3.3.4-3).
        self.assertEqual(prop(got[sub], "SubscriptionIdentifier"), [7])
        self.assertIsNone(prop(got[sub2], "SubscriptionIdentifier"))
        sub.nothing()

    def test_subscription_identifier_is_computed_on_the_receiving_node(self):
        sub = self.client(1, "sid-sub")
        sub.subscribe("sid/+", identifier=11)
        sub.subscribe("sid/#", identifier=22)
        pub = self.client(0, "sid-pub")
        pub.subscribe("sid/#", identifier=99)  # the publisher's own: stays on its node
        self.wait_route(lambda: pub.publish("sid/t", b"probe"), [sub])
        pub.drain()
        pub.publish("sid/t", b"x", properties=publish_properties(UserProperty=[("k", "v")]))
        msg = sub.get()
        self.assertEqual(sorted(prop(msg, "SubscriptionIdentifier")), [11, 22])
        self.assertEqual(prop(pub.get(), "SubscriptionIdentifier"), [99])

    def test_expiry_is_the_time_left_and_counts_down_on_the_receiving_node(self):
        # A persistent session on node 1, offline while the message waits there.
        sub = Client(self.nodes[1].port, "exp-sub", clean_start=False, session_expiry_s=300)
        sub.subscribe("exp/t", qos=1)
        pub = self.client(0, "exp-pub")
        self.wait_route(lambda: pub.publish("exp/t", b"probe"), [sub])
        sub.close()
        pub.publish("exp/t", b"short", properties=publish_properties(MessageExpiryInterval=1))
        pub.publish("exp/t", b"long", properties=publish_properties(MessageExpiryInterval=60))
        time.sleep(1.6)  # the time that must count down (not an assertion by itself)
        back = self.client(1, "exp-sub", clean_start=False, session_expiry_s=300)
        msg = back.get()
        self.assertEqual(msg.payload, b"long")
        self.assertLessEqual(prop(msg, "MessageExpiryInterval"), 59)
        self.assertGreaterEqual(prop(msg, "MessageExpiryInterval"), 45)
        back.nothing()

    def test_nats_application_sees_and_sends_properties_as_designed(self):
        raw = self.nats(2)
        sid = raw.sub("natsprops.out")
        raw.flush()
        sub = self.client(0, "natsprops-sub")
        sub.subscribe("natsprops/in")
        pub = self.client(1, "natsprops-pub")
        # NATS -> MQTT: its headers are user properties, in order; Nats-* ones are not; the
        # Ringmq-* property fields are properties.
        headers = {"Trace-Id": "abc", "Nats-Msg-Id": "n1", "Zone": "eu",
                   "Ringmq-Content-Type": "text/plain",
                   "Ringmq-Correlation-Data": base64.b64encode(b"\x01\x02").decode(),
                   "Ringmq-Message-Expiry-Ms": "2500",
                   "Ringmq-User-Property": base64.b64encode(b"multi").decode() + "," +
                   base64.b64encode(b"a\r\nb").decode()}
        self.wait_route(lambda: raw.pub("natsprops.in", b"probe"), [sub])
        raw.pub("natsprops.in", b"from nats", headers=headers)
        msg = sub.get()
        self.assertEqual(msg.payload, b"from nats")
        self.assertEqual(prop(msg, "UserProperty"),
                         [("Trace-Id", "abc"), ("Zone", "eu"), ("multi", "a\r\nb")])
        self.assertEqual(prop(msg, "ContentType"), "text/plain")
        self.assertEqual(prop(msg, "CorrelationData"), b"\x01\x02")
        self.assertEqual(prop(msg, "MessageExpiryInterval"), 3)  # 2.5 s left, rounded up
        # Expired on the way: counted, not delivered (5.0:3.3.2.3.3).
        expired_before = metric(self.nodes[0], "ringmq_cluster_dropped_total",
                                reason="expired_in_transit")
        raw.pub("natsprops.in", b"too late", headers={"Ringmq-Message-Expiry-Ms": "0"})
        raw.pub("natsprops.in", b"after")
        self.assertEqual(sub.get().payload, b"after")
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_dropped_total",
                                reason="expired_in_transit") - expired_before, 1)
        # A field that gives no valid property is left out and counted.
        dropped_before = metric(self.nodes[0], "ringmq_cluster_properties_dropped_total")
        raw.pub("natsprops.in", b"bad", headers={"Ringmq-Response-Topic": "a/+",
                                                 "Ok": "yes"})
        msg = sub.get()
        self.assertEqual((msg.payload, prop(msg, "UserProperty"), prop(msg, "ResponseTopic")),
                         (b"bad", [("Ok", "yes")], None))
        self.assertEqual(metric(self.nodes[0], "ringmq_cluster_properties_dropped_total") -
                         dropped_before, 1)
        # MQTT -> NATS: native headers for plain user properties, Ringmq-* for the rest.
        deadline = time.monotonic() + ROUTE_TIMEOUT
        props = publish_properties(UserProperty=[("k", "v"), ("bad key", "x")],
                                   ContentType="text/plain", PayloadFormatIndicator=1,
                                   MessageExpiryInterval=30)
        while True:
            pub.publish("natsprops/out", b"from mqtt", properties=props)
            try:
                got = raw.next_msg(0.1)
                break
            except TimeoutError:
                self.assertLess(time.monotonic(), deadline, "no route MQTT -> natsprops.out")
        self.assertEqual((got.sid, got.payload), (sid, b"from mqtt"))
        self.assertEqual(got.headers["k"], "v")
        self.assertEqual(got.headers["Ringmq-Content-Type"], "text/plain")
        self.assertEqual(got.headers["Ringmq-Payload-Format"], "1")
        self.assertLessEqual(int(got.headers["Ringmq-Message-Expiry-Ms"]), 30000)
        self.assertGreater(int(got.headers["Ringmq-Message-Expiry-Ms"]), 20000)
        name, value = got.headers["Ringmq-User-Property"].split(",")
        self.assertEqual((base64.b64decode(name), base64.b64decode(value)), (b"bad key", b"x"))


if __name__ == "__main__":
    unittest.main()
