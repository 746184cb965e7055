"""Retained messages (MQTT 3.1.1 §3.3.1.3): stored on publish with RETAIN=1, sent with RETAIN=1
to new subscriptions, replaced, deleted by an empty payload, and forwarded with RETAIN=0 to
subscriptions that existed when the message was published.
"""

import mqtt_raw as m
from broker import BrokerTestCase

QUIET = 0.3


class Retained(BrokerTestCase):
    def test_retained_sent_to_new_subscribers_with_retain_1_MQTT_3_3_1_8(self):
        b = self.start_broker()
        with m.Client(b.port, "ret-pub") as pub:
            pub.publish("ret/a", b"kept", qos=1, retain=True)
            pub.disconnect()
        subs = [m.Client(b.port, f"ret-sub-{i}") for i in range(8)]  # both shards
        try:
            for i, s in enumerate(subs):
                s.subscribe([("ret/a", i % 3)])
                got = s.receive(1)[0]
                self.assertEqual(got.key(), ("ret/a", b"kept", min(i % 3, 1), True, False),
                                 f"{s.client_id} granted {i % 3}")
            m.expect_quiet(subs, QUIET)
            for s in subs:
                s.disconnect()
        finally:
            for s in subs:
                s.close()
        self.assert_counters(b.stop(), connect_accepted=9)

    def test_forwarding_to_existing_subscribers_has_retain_0_MQTT_3_3_1_9(self):
        b = self.start_broker()
        with m.Client(b.port, "fwd-sub") as sub, m.Client(b.port, "fwd-pub") as pub:
            sub.subscribe([("fwd/#", 2)])
            pub.publish("fwd/x", b"live", qos=2, retain=True)
            got = sub.receive(1)[0]
            self.assertEqual(got.key(), ("fwd/x", b"live", 2, False, False),
                             "a retained message forwarded to an existing subscription must "
                             "have RETAIN=0")
            m.expect_quiet([sub], QUIET)
            # ... and it was stored: a new subscription gets it with RETAIN=1.
            sub.subscribe([("fwd/x", 1)])
            got = sub.receive(1)[0]
            self.assertEqual(got.key(), ("fwd/x", b"live", 1, True, False))
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_retained_message_replaced_by_a_newer_one(self):
        b = self.start_broker()
        with m.Client(b.port, "rep-pub") as pub:
            pub.publish("rep/t", b"v1", qos=0, retain=True)
            pub.publish("rep/t", b"v2", qos=1, retain=True)
            pub.publish("rep/t", b"v3", qos=2, retain=True)
            pub.publish("rep/t", b"not retained", qos=1)  # does not replace (RETAIN=0)
            pub.disconnect()
        with m.Client(b.port, "rep-sub") as sub:
            sub.subscribe([("rep/t", 2)])
            got = sub.receive(1)
            self.assertEqual(got[0].key(), ("rep/t", b"v3", 2, True, False))
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2,
                             publish_dropped_no_subscribers=None)

    def test_empty_retained_payload_deletes_and_is_forwarded_MQTT_3_3_1_10_11(self):
        b = self.start_broker()
        with m.Client(b.port, "del-watch") as watcher, m.Client(b.port, "del-pub") as pub:
            pub.publish("del/t", b"soon gone", qos=1, retain=True)
            pub.publish("del/u", b"stays", qos=1, retain=True)
            watcher.subscribe([("del/t", 1)])
            self.assertEqual(watcher.receive(1)[0].key(), ("del/t", b"soon gone", 1, True, False))
            pub.publish("del/t", b"", qos=1, retain=True)
            # MQTT-3.3.1-10: processed as normal, so the existing subscriber gets it (RETAIN=0).
            self.assertEqual(watcher.receive(1)[0].key(), ("del/t", b"", 1, False, False))
            m.expect_quiet([watcher], QUIET)
            watcher.disconnect()
            pub.disconnect()
        with m.Client(b.port, "del-new") as sub:
            sub.subscribe([("del/#", 1)])
            got = sub.receive(1)
            self.assertEqual(got[0].key(), ("del/u", b"stays", 1, True, False),
                             "the zero-byte retained message must not be stored (MQTT-3.3.1-11)")
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3,
                             publish_dropped_no_subscribers=None)

    def test_wildcard_subscription_gets_every_matching_retained_message(self):
        b = self.start_broker()
        topics = {"w/a": 0, "w/b": 1, "w/b/c": 2, "w/d/e/f": 1, "w": 1, "x/w": 1, "$w/a": 1}
        with m.Client(b.port, "wild-pub") as pub:
            for topic, qos in topics.items():
                pub.publish(topic, topic.encode(), qos=qos, retain=True)
            pub.disconnect()
        cases = {"w/#": ["w/a", "w/b", "w/b/c", "w/d/e/f", "w"],
                 "w/+": ["w/a", "w/b"],
                 "+/w": ["x/w"],
                 "#": ["w/a", "w/b", "w/b/c", "w/d/e/f", "w", "x/w"],  # not $w/a
                 "+/+/c": ["w/b/c"],
                 "$w/+": ["$w/a"],
                 "nothing/#": []}
        subs = [m.Client(b.port, f"wild-{i}") for i in range(len(cases))]
        try:
            for s, f in zip(subs, cases):
                s.subscribe([(f, 2)])
            got = m.receive_all(subs, [len(t) for t in cases.values()], timeout=5.0)
            m.expect_quiet(subs, QUIET)
            for (f, want), msgs in zip(cases.items(), got):
                self.assertEqual(sorted(x.key() for x in msgs),
                                 sorted((t, t.encode(), topics[t], True, False) for t in want),
                                 f"retained messages for {f}")
            for s in subs:
                s.disconnect()
        finally:
            for s in subs:
                s.close()
        self.assert_counters(b.stop(), connect_accepted=len(cases) + 1,
                             publish_dropped_no_subscribers=None)

    def test_retained_walk_stops_at_a_full_session_and_is_counted(self):
        # 2 in flight + 3 queued fit; the walk stops at the 6th of 40 retained messages instead
        # of visiting every topic and dropping 35 one by one.
        b = self.start_broker("--max-inflight", "2", "--max-queued-messages", "3")
        with m.Client(b.port, "walk-pub") as pub:
            for i in range(40):
                pub.publish(f"walk/{i}", str(i).encode(), qos=1, retain=True)
            pub.disconnect()
        with m.Client(b.port, "walk-sub") as sub:
            sub.subscribe([("walk/#", 1)])
            got = sub.receive(5, timeout=5.0)
            m.expect_quiet([sub], QUIET)
            self.assertTrue(all(x.retain for x in got), got)
            self.assertEqual(len({x.topic for x in got}), 5, got)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, retained_walk_truncated=1,
                             dropped_queue_full=1, publish_dropped_no_subscribers=40)

    def test_resubscribe_resends_retained_MQTT_3_8_4_3(self):
        b = self.start_broker()
        with m.Client(b.port, "again-pub") as pub:
            pub.publish("again/t", b"r", qos=1, retain=True)
            pub.disconnect()
        with m.Client(b.port, "again-sub") as sub:
            for qos in (1, 0, 2):
                sub.subscribe([("again/t", qos)])
                self.assertEqual(sub.receive(1)[0].key(), ("again/t", b"r", min(qos, 1), True,
                                                           False))
                m.expect_quiet([sub], QUIET)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, publish_dropped_no_subscribers=None)

    def test_retained_qos0_stored_and_delivered_at_qos0(self):
        b = self.start_broker()
        with m.Client(b.port, "r0-pub") as pub:
            pub.publish("r0/t", b"zero", qos=0, retain=True)
            pub.ping()  # the QoS 0 PUBLISH was read before the PINGREQ
            pub.disconnect()
        with m.Client(b.port, "r0-sub") as sub:
            sub.subscribe([("r0/t", 2)])
            got = sub.next_publish()
            self.assertEqual(got.raw, m.publish("r0/t", b"zero", retain=True))
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, publish_dropped_no_subscribers=None)

    def test_retained_bounds_refuse_storing_but_messages_still_delivered(self):
        # 2 messages, 64 bytes (topic + payload) at most; no $SYS topics to share the store.
        b = self.start_broker("--max-retained-messages", "2", "--max-retained-bytes", "64",
                              "--sys-interval-s", "0")
        with m.Client(b.port, "bound-watch") as watcher, m.Client(b.port, "bound-pub") as pub:
            watcher.subscribe([("bd/#", 1)])
            sent = [("bd/1", b"a"), ("bd/2", b"b"),
                    ("bd/3", b"c"),          # a third topic: not stored
                    ("bd/1", b"aa"),         # a replacement: needs no room in the count
                    ("bd/2", b"x" * 70)]     # does not fit in 64 bytes: not stored, b deleted
            for topic, payload in sent:
                pub.publish(topic, payload, qos=1, retain=True)
            # Every one is still delivered live, as published.
            got = watcher.receive(len(sent))
            self.assertEqual([g.key() for g in got],
                             [(t, p, 1, False, False) for t, p in sent])
            with m.Client(b.port, "bound-new") as sub:
                sub.subscribe([("bd/#", 1)])
                got = sub.receive(1)
                self.assertEqual(got[0].key(), ("bd/1", b"aa", 1, True, False),
                                 "bd/2's older value must not be served after a refused one")
                m.expect_quiet([sub], QUIET)
                sub.disconnect()
            # bd/2's deletion made room for a new topic.
            pub.publish("bd/3", b"c", qos=1, retain=True)
            self.assertEqual(watcher.receive(1)[0].key(), ("bd/3", b"c", 1, False, False))
            with m.Client(b.port, "bound-new2") as sub:
                sub.subscribe([("bd/#", 1)])
                got = sorted(g.key() for g in sub.receive(2))
                self.assertEqual(got, [("bd/1", b"aa", 1, True, False),
                                       ("bd/3", b"c", 1, True, False)])
                m.expect_quiet([sub], QUIET)
                sub.disconnect()
            watcher.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=4, retained_refused=2)
