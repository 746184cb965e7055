"""Message routing (MQTT 3.1.1 §3.3, §3.8 to §3.10, §4.6, §4.7): SUBSCRIBE grants and delivery,
UNSUBSCRIBE, topic matching with wildcards, `$` topics, overlapping subscriptions, order per
publisher, and publishers and subscribers spread over both shards.

Every broker here runs with 2 shards. A client id's session lives on shard hash(id) % 2, so the
tests that want both shards involved use many client ids (16 ids all on one shard: 2^-15).
"""

import mqtt_raw as m
from broker import BrokerTestCase

QUIET = 0.3  # seconds a subscriber must stay silent when nothing more may arrive


def clients(port, prefix, n, **fields):
    return [m.Client(port, f"{prefix}{i}", **fields) for i in range(n)]


def close_all(cs):
    for c in cs:
        c.close()


class Delivery(BrokerTestCase):
    def test_qos0_delivery_is_the_exact_publish_bytes(self):
        b = self.start_broker()
        with m.Client(b.port, "sub") as sub, m.Client(b.port, "pub") as pub:
            sub.subscribe([("a/b", 0)])
            delivered = 0
            for payload in (b"hello", b"", bytes(range(256)) * 400):  # empty, 100 KiB
                pub.publish("a/b", payload)
                got = sub.next_publish()
                self.assertEqual(got.raw, m.publish("a/b", payload),
                                 f"delivered {got!r}, expected the QoS 0 PUBLISH as sent")
                delivered += len(got.raw)
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, subscriptions_added=1,
                             publish_dropped_no_subscribers=0, bytes_delivered=delivered)

    def test_subscriber_receives_its_own_publish(self):
        # MQTT 3.1.1 has no "no local" option: a client subscribed to a topic gets its own
        # messages back.
        b = self.start_broker()
        with m.Client(b.port, "self") as c:
            c.subscribe([("self/t", 1)])
            c.publish("self/t", b"echo", qos=1)
            got = c.receive(1)[0]
            self.assertEqual(got.key(), ("self/t", b"echo", 1, False, False))
            m.expect_quiet([c], QUIET)
            c.disconnect()
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_publish_without_subscribers_counted_publish_dropped_no_subscribers(self):
        b = self.start_broker()
        with m.Client(b.port, "sub") as sub, m.Client(b.port, "pub") as pub:
            for qos in (0, 1, 2):
                pub.publish("nobody/here", f"q{qos}".encode(), qos=qos)
            sub.subscribe([("somebody/here", 0)])
            pub.publish("somebody/here", b"delivered", qos=1)
            self.assertEqual(sub.next_publish().payload, b"delivered")
            sub.unsubscribe(["somebody/here"])
            pub.publish("somebody/here", b"nobody any more", qos=1)
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, publish_dropped_no_subscribers=4,
                             subscriptions_added=1, subscriptions_removed=1)

    def test_publisher_and_subscribers_on_both_shards(self):
        b = self.start_broker()
        subs = clients(b.port, "xs-", 10)
        pubs = clients(b.port, "xp-", 6)
        try:
            for s in subs:
                s.subscribe([("x/+", 2)])
            sent = []
            for i, p in enumerate(pubs):
                qos = i % 3
                payload = f"from {p.client_id} at qos {qos}".encode()
                p.publish(f"x/{p.client_id}", payload, qos=qos)
                sent.append((f"x/{p.client_id}", payload, qos, False, False))
            got = m.receive_all(subs, [len(sent)] * len(subs), timeout=10.0)
            for s, msgs in zip(subs, got):
                self.assertEqual(sorted(p.key() for p in msgs), sorted(sent),
                                 f"subscriber {s.client_id}")
            m.expect_quiet(subs, QUIET)
            for c in subs + pubs:
                c.disconnect()
        finally:
            close_all(subs + pubs)
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=16, sessions_created=16,
                             subscriptions_added=10)
        self.assert_counters_at_least(counters, connections_handed_off=1)


class Matching(BrokerTestCase):
    TOPICS = ["a", "a/b", "a/b/c", "a/c", "a//c", "/a", "ab", "b/a", "a/b/c/d", "A/b", "a/b/",
              "$x/y", "$SYS/x", "/"]
    # filter -> the topics above it matches (MQTT 3.1.1 §4.7).
    EXPECTED = {
        "a/b": ["a/b"],
        "a/+": ["a/b", "a/c"],
        "a/+/c": ["a/b/c", "a//c"],
        "+/+": ["a/b", "a/c", "/a", "b/a", "A/b", "/"],
        "+": ["a", "ab"],
        "a/#": ["a", "a/b", "a/b/c", "a/c", "a//c", "a/b/c/d", "a/b/"],  # MQTT-4.7.1-2: parent
        "#": ["a", "a/b", "a/b/c", "a/c", "a//c", "/a", "ab", "b/a", "a/b/c/d", "A/b", "a/b/",
              "/"],  # not $x/y nor $SYS/x (MQTT-4.7.2-1)
        "+/b/#": ["a/b", "a/b/c", "a/b/c/d", "A/b", "a/b/"],
        "/+": ["/a", "/"],
        "a/b/+": ["a/b/c", "a/b/"],
        "+/y": [],  # $x/y: a leading + does not match a $ level (MQTT-4.7.2-1)
        "+/#": ["a", "a/b", "a/b/c", "a/c", "a//c", "/a", "ab", "b/a", "a/b/c/d", "A/b",
                "a/b/", "/"],  # `#` includes the parent, so one-level topics too
        "$x/#": ["$x/y"],
        "$x/+": ["$x/y"],
    }

    def test_wildcards_and_dollar_topics_MQTT_4_7(self):
        b = self.start_broker()
        filters = list(self.EXPECTED)
        subs = [m.Client(b.port, f"match-{i}") for i in range(len(filters))]
        try:
            for s, f in zip(subs, filters):
                s.subscribe([(f, 1)])
            with m.Client(b.port, "match-pub") as pub:
                for topic in self.TOPICS:
                    pub.publish(topic, topic.encode(), qos=1)
                got = m.receive_all(subs, [len(self.EXPECTED[f]) for f in filters],
                                    timeout=10.0)
                m.expect_quiet(subs, QUIET)
                wrong = {}
                for f, msgs in zip(filters, got):
                    topics = sorted(p.topic for p in msgs)
                    if topics != sorted(self.EXPECTED[f]):
                        wrong[f] = {"got": topics, "expected": sorted(self.EXPECTED[f])}
                    for p in msgs:
                        self.assertEqual(p.payload, p.topic.encode())
                self.assertFalse(wrong, f"filters that matched wrongly: {wrong}")
                pub.disconnect()
            for s in subs:
                s.disconnect()
        finally:
            close_all(subs)
        # The client's PUBLISH to $SYS/x is acknowledged and dropped (docs/metrics.md).
        self.assert_counters(b.stop(), connect_accepted=len(filters) + 1,
                             publish_dropped_sys_topic=1)

    def test_hash_matches_parent_level_MQTT_4_7_1_2(self):
        b = self.start_broker()
        with m.Client(b.port, "parent") as sub, m.Client(b.port, "parent-pub") as pub:
            sub.subscribe([("sport/tennis/player1/#", 2)])
            for topic in ("sport/tennis/player1", "sport/tennis/player1/ranking",
                          "sport/tennis/player1/score/wimbledon"):
                pub.publish(topic, b"x", qos=2)
                got = sub.receive(1)[0]
                self.assertEqual((got.topic, got.qos), (topic, 2))
            pub.publish("sport/tennis/player10", b"x", qos=1)
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_hash_alone_does_not_match_dollar_topics_MQTT_4_7_2_1(self):
        b = self.start_broker()
        with m.Client(b.port, "all") as everything, m.Client(b.port, "dollar") as dollar, \
                m.Client(b.port, "dpub") as pub:
            everything.subscribe([("#", 0), ("+/x", 0), ("+/+", 0)])
            dollar.subscribe([("$SYS/x/#", 0), ("$foo/#", 0)])
            pub.publish("$foo/x", b"d1", qos=1)
            pub.publish("$SYS/x", b"d2", qos=1)
            pub.publish("plain/x", b"p", qos=1)
            self.assertEqual(everything.next_publish().key(), ("plain/x", b"p", 0, False, False))
            # A broker may refuse to route $SYS topics published by clients; if it routes
            # $SYS/x, only the $SYS/x/# subscription gets it.
            got = [dollar.next_publish().key()]
            try:
                got.append(dollar.next_publish(timeout=QUIET).key())
            except m.ProtocolError:
                pass
            self.assertIn(("$foo/x", b"d1", 0, False, False), got)
            self.assertLessEqual(set(got), {("$foo/x", b"d1", 0, False, False),
                                            ("$SYS/x", b"d2", 0, False, False)})
            self.assertEqual(len(got), len(set(got)), f"a duplicate delivery: {got}")
            m.expect_quiet([everything, dollar], QUIET)
            for c in (everything, dollar, pub):
                c.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, publish_dropped_no_subscribers=None,
                             publish_dropped_sys_topic=1)

    def test_topics_are_case_sensitive_and_level_exact(self):
        b = self.start_broker()
        with m.Client(b.port, "exact") as sub, m.Client(b.port, "exact-pub") as pub:
            sub.subscribe([("Case/Level", 1)])
            for topic in ("case/level", "CASE/LEVEL", "Case/Level/", "/Case/Level",
                          "Case/Level/x", "Case", "Case/Level "):
                pub.publish(topic, b"no", qos=1)
            pub.publish("Case/Level", b"yes", qos=1)
            self.assertEqual(sub.receive(1)[0].key(), ("Case/Level", b"yes", 1, False, False))
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, publish_dropped_no_subscribers=7)


class Subscriptions(BrokerTestCase):
    def test_overlapping_subscriptions_deliver_once_at_highest_granted_qos(self):
        # The documented choice (MQTT-3.3.5-1 allows either): one delivery per matching
        # client, at the highest QoS granted among its matching subscriptions, capped by the
        # published QoS.
        b = self.start_broker()
        subs = clients(b.port, "ov-", 4)
        try:
            for s in subs:
                s.subscribe([("o/#", 0), ("o/+", 1), ("o/x", 2)])
            with m.Client(b.port, "ov-pub") as pub:
                cases = [("o/x", b"x2", 2, 2), ("o/x", b"x1", 1, 1), ("o/x", b"x0", 0, 0),
                         ("o/y", b"y2", 2, 1), ("o/y/z", b"z2", 2, 0), ("o", b"o2", 2, 0)]
                for topic, payload, qos, _ in cases:
                    pub.publish(topic, payload, qos=qos)
                got = m.receive_all(subs, [len(cases)] * len(subs), timeout=10.0)
                m.expect_quiet(subs, QUIET)
                want = sorted((t, p, q, False, False) for t, p, _, q in cases)
                for s, msgs in zip(subs, got):
                    self.assertEqual(sorted(x.key() for x in msgs), want,
                                     f"{s.client_id}: each message once at the highest "
                                     "granted QoS")
                    o_x = [x.payload for x in msgs if x.topic == "o/x"]
                    self.assertEqual(o_x, [b"x2", b"x1", b"x0"], "order on one topic")
                pub.disconnect()
            for s in subs:
                s.disconnect()
        finally:
            close_all(subs)
        self.assert_counters(b.stop(), connect_accepted=5, subscriptions_added=12)

    def test_resubscribe_replaces_qos_MQTT_3_8_4_3(self):
        b = self.start_broker()
        with m.Client(b.port, "resub") as sub, m.Client(b.port, "resub-pub") as pub:
            sub.subscribe([("rs/a", 2)])
            sub.subscribe([("rs/a", 0)])  # replaces: now QoS 0
            pub.publish("rs/a", b"one", qos=2)
            self.assertEqual(sub.receive(1)[0].key(), ("rs/a", b"one", 0, False, False),
                             "after re-subscribing at QoS 0 the message must come once at 0")
            m.expect_quiet([sub], QUIET)
            sub.subscribe([("rs/a", 1)])
            pub.publish("rs/a", b"two", qos=2)
            self.assertEqual(sub.receive(1)[0].key(), ("rs/a", b"two", 1, False, False))
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, subscriptions_added=1)

    def test_unsubscribe_stops_delivery_MQTT_3_10_4(self):
        b = self.start_broker()
        subs = clients(b.port, "uns-", 4)
        try:
            for s in subs:
                s.subscribe([("u/a", 1), ("u/+", 0), ("u/b", 1)])
            with m.Client(b.port, "uns-pub") as pub:
                for s in subs:
                    s.unsubscribe(["u/a"])  # u/a still matches u/+ (QoS 0)
                pub.publish("u/a", b"1", qos=1)
                got = m.receive_all(subs, [1] * 4, timeout=5.0)
                for msgs in got:
                    self.assertEqual(msgs[0].key(), ("u/a", b"1", 0, False, False))
                for s in subs:
                    s.unsubscribe(["u/+"])
                    s.unsubscribe(["never/subscribed", "u/#"])  # UNSUBACK all the same
                pub.publish("u/a", b"2", qos=1)
                pub.publish("u/c", b"3", qos=1)
                pub.publish("u/b", b"4", qos=1)
                got = m.receive_all(subs, [1] * 4, timeout=5.0)
                for msgs in got:
                    self.assertEqual(msgs[0].key(), ("u/b", b"4", 1, False, False))
                m.expect_quiet(subs, QUIET)
                for s in subs:
                    s.unsubscribe(["u/b"])
                pub.publish("u/b", b"5", qos=1)
                m.expect_quiet(subs, QUIET)
                pub.disconnect()
            for s in subs:
                s.disconnect()
        finally:
            close_all(subs)
        self.assert_counters(b.stop(), connect_accepted=5, subscriptions_added=12,
                             subscriptions_removed=12, publish_dropped_no_subscribers=3)


class Order(BrokerTestCase):
    N = 1000

    def test_1000_messages_per_publisher_arrive_in_order_on_both_shards_MQTT_4_6(self):
        b = self.start_broker()
        subs = clients(b.port, "ord-sub-", 8)
        try:
            for s in subs:
                s.subscribe([("ord/#", 1)])
            p1 = m.Client(b.port, "ord-pub-q1")
            p0 = m.Client(b.port, "ord-pub-q0")
            with p1, p0:
                p1.send(b"".join(m.publish("ord/q1", str(i).encode(), qos=1, packet_id=i + 1)
                                 for i in range(self.N)))
                p0.send(b"".join(m.publish("ord/q0", str(i).encode()) for i in range(self.N)))
                got = m.receive_all(subs, [2 * self.N] * len(subs), timeout=30.0)
                for s, msgs in zip(subs, got):
                    for topic, qos in (("ord/q1", 1), ("ord/q0", 0)):
                        mine = [x for x in msgs if x.topic == topic]
                        seq = [int(x.payload) for x in mine]
                        self.assertEqual(seq, list(range(self.N)),
                                         f"{s.client_id}: {topic} out of order or incomplete "
                                         f"(first differences: "
                                         f"{[(i, v) for i, v in enumerate(seq) if v != i][:5]})")
                        self.assertEqual({x.qos for x in mine}, {qos})
                        self.assertFalse(any(x.dup or x.retain for x in mine))
                for i in range(self.N):
                    p1.expect_reply(m.ack(m.PUBACK, i + 1), f"PUBACK {i + 1} in order")
                m.expect_quiet(subs, QUIET)
                p1.disconnect()
                p0.disconnect()
            for s in subs:
                s.disconnect()
        finally:
            close_all(subs)
        self.assert_counters(b.stop(), connect_accepted=10)
