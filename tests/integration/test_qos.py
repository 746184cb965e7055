"""QoS 1 and 2 in both directions (MQTT 3.1.1 §4.3, §4.4): acknowledgements, packet ids,
duplicates, delivered QoS = min(granted, published), and redelivery with DUP=1 on reconnect.
"""

import mqtt_raw as m
from broker import BrokerTestCase

QUIET = 0.3


def dup_of(raw):
    """The bytes of a resent PUBLISH: the same packet with DUP set (MQTT-3.3.1-1)."""
    return bytes([raw[0] | 0x08]) + raw[1:]


class Qos1(BrokerTestCase):
    def test_qos1_puback_to_publisher_subscriber_gets_packet_id_and_acks(self):
        b = self.start_broker()
        with m.Client(b.port, "q1-sub", clean=False) as sub, m.Client(b.port, "q1-pub") as pub:
            sub.subscribe([("q1/t", 1)])
            pub.publish("q1/t", b"first", qos=1, packet_id=77)  # asserts PUBACK 77
            got = sub.next_publish()
            self.assertEqual(got.key(), ("q1/t", b"first", 1, False, False))
            self.assertNotEqual(got.packet_id, 0, "QoS 1 PUBLISH with packet id 0 "
                                "(MQTT-2.3.1-1)")
            sub.send(m.ack(m.PUBACK, got.packet_id))
            pub.publish("q1/t", b"second", qos=1, packet_id=77)  # id reusable after PUBACK
            got = sub.receive(1)[0]
            self.assertEqual(got.key(), ("q1/t", b"second", 1, False, False))
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
            pub.disconnect()
        # Both were acknowledged: nothing to resend when the session resumes.
        with m.Client(b.port, "q1-sub", clean=False, session_present=True) as sub:
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, sessions_created=2)

    def test_unacknowledged_qos1_resent_with_dup_on_reconnect_MQTT_4_4_0_1(self):
        b = self.start_broker()
        ids = [f"redo-{i}" for i in range(4)]
        subs = [m.Client(b.port, cid, clean=False) for cid in ids]
        for s in subs:
            s.subscribe([("redo/#", 1)])
        with m.Client(b.port, "redo-pub") as pub:
            for i in range(3):
                pub.publish(f"redo/{i}", f"m{i}".encode(), qos=1)
            first = m.receive_all(subs, [3] * len(subs), timeout=5.0, ack=False)
            for cid, msgs in zip(ids, first):
                self.assertEqual([x.key() for x in msgs],
                                 [(f"redo/{i}", f"m{i}".encode(), 1, False, False)
                                  for i in range(3)], cid)
                self.assertEqual(len({x.packet_id for x in msgs}), 3, f"{cid}: ids not unique")
            for i, s in enumerate(subs):  # half vanish, half DISCONNECT: the same for QoS
                if i % 2:
                    s.close()
                else:
                    s.disconnect()
            again = [m.Client(b.port, cid, clean=False, session_present=True) for cid in ids]
            try:
                resent = m.receive_all(again, [3] * len(again), timeout=5.0, ack=False)
                for cid, old, new in zip(ids, first, resent):
                    self.assertEqual([x.raw for x in new], [dup_of(x.raw) for x in old],
                                     f"{cid}: expected the same PUBLISHes with DUP=1, in order "
                                     f"(sent {old}, resent {new})")
                for c, msgs in zip(again, resent):
                    for x in msgs:
                        c.acknowledge(x)
                pub.publish("redo/new", b"fresh", qos=1)
                fresh = m.receive_all(again, [1] * len(again), timeout=5.0)
                for cid, msgs in zip(ids, fresh):
                    self.assertEqual(msgs[0].key(), ("redo/new", b"fresh", 1, False, False), cid)
                m.expect_quiet(again, QUIET)
                for c in again:
                    c.disconnect()
            finally:
                for c in again:
                    c.close()
            pub.disconnect()
        # Everything acknowledged now: a third connection gets nothing again.
        for cid in ids:
            with m.Client(b.port, cid, clean=False, session_present=True) as c:
                m.expect_quiet([c], QUIET / 3)
                c.disconnect()
        # A reconnect right after an abrupt close may reach the broker before it noticed the
        # close: then it is a takeover, which must resend just the same.
        self.assert_counters(b.stop(), connect_accepted=13, sessions_created=5,
                             session_takeovers=None)

    def test_only_unacknowledged_messages_resent_in_order(self):
        b = self.start_broker()
        sub = m.Client(b.port, "partial", clean=False)
        with sub:
            sub.subscribe([("part", 1)])
            with m.Client(b.port, "partial-pub") as pub:
                for i in range(5):
                    pub.publish("part", str(i).encode(), qos=1)
                pub.disconnect()
            got = sub.receive(5, ack=False)
            self.assertEqual([x.payload for x in got], [b"0", b"1", b"2", b"3", b"4"])
            for x in (got[1], got[3]):
                sub.acknowledge(x)
            sub.ping()  # the PUBACKs are processed before the close
            sub.close()
        with m.Client(b.port, "partial", clean=False, session_present=True) as sub:
            resent = sub.receive(3, ack=False)
            self.assertEqual([x.raw for x in resent],
                             [dup_of(got[i].raw) for i in (0, 2, 4)])
            for x in resent:
                sub.acknowledge(x)
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, session_takeovers=None)

    def test_inflight_packet_ids_are_unique_and_non_zero_MQTT_2_3_1_2(self):
        b = self.start_broker()
        with m.Client(b.port, "ids") as sub, m.Client(b.port, "ids-pub") as pub:
            sub.subscribe([("ids/1", 1), ("ids/2", 2)])
            for i in range(10):
                pub.publish("ids/1", b"a", qos=1)
                pub.publish("ids/2", b"b", qos=2)
            got = sub.receive(20, ack=False)
            pids = [x.packet_id for x in got]
            self.assertNotIn(0, pids)
            self.assertEqual(len(set(pids)), 20, f"packet ids in use twice: {pids}")
            for x in got:
                sub.acknowledge(x)
            m.expect_quiet([sub], QUIET)  # answers the ten PUBRELs
            self.assertFalse(sub.awaiting_pubrel, "PUBREL missing for "
                             f"{sorted(sub.awaiting_pubrel)}")
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2)


class Qos2(BrokerTestCase):
    def test_qos2_inbound_duplicate_acknowledged_but_delivered_once_MQTT_4_3_3_2(self):
        b = self.start_broker()
        subs = [m.Client(b.port, f"q2d-{i}") for i in range(4)]
        try:
            for s in subs:
                s.subscribe([("q2/t", 2)])
            with m.open_socket(b.port) as pub:
                pub.sendall(m.connect("q2d-pub"))
                m.expect_connack(pub, 0)
                pub.sendall(m.publish("q2/t", b"once", qos=2, packet_id=5))
                m.expect_packet(pub, m.ack(m.PUBREC, 5), what="PUBREC")
                for _ in range(2):  # the PUBREC was "lost": the client resends with DUP=1
                    pub.sendall(m.publish("q2/t", b"once", qos=2, packet_id=5, dup=True))
                    m.expect_packet(pub, m.ack(m.PUBREC, 5), what="PUBREC for the resend")
                pub.sendall(m.pubrel(5))
                m.expect_packet(pub, m.ack(m.PUBCOMP, 5), what="PUBCOMP")
                # After PUBCOMP the id is free: the same id is a new message.
                pub.sendall(m.publish("q2/t", b"new", qos=2, packet_id=5))
                m.expect_packet(pub, m.ack(m.PUBREC, 5), what="PUBREC for a new message")
                pub.sendall(m.pubrel(5))
                m.expect_packet(pub, m.ack(m.PUBCOMP, 5), what="PUBCOMP")
                got = m.receive_all(subs, [2] * len(subs), timeout=5.0)
                for s, msgs in zip(subs, got):
                    self.assertEqual([x.key() for x in msgs],
                                     [("q2/t", b"once", 2, False, False),
                                      ("q2/t", b"new", 2, False, False)], s.client_id)
                m.expect_quiet(subs, QUIET)
                m.disconnect(pub)
            for s in subs:
                s.disconnect()
        finally:
            for s in subs:
                s.close()
        self.assert_counters(b.stop(), connect_accepted=5, publish_duplicates=2)

    def test_qos2_outbound_publish_pubrec_pubrel_pubcomp(self):
        b = self.start_broker()
        with m.Client(b.port, "q2-sub") as sub, m.Client(b.port, "q2-pub") as pub:
            sub.subscribe([("q2/out", 2)])
            pub.publish("q2/out", b"exactly once", qos=2)
            got = sub.next_publish()
            self.assertEqual(got.key(), ("q2/out", b"exactly once", 2, False, False))
            self.assertNotEqual(got.packet_id, 0)
            sub.send(m.ack(m.PUBREC, got.packet_id))
            pkt = sub.read_packet(what="PUBREL")
            self.assertEqual(pkt.raw, m.pubrel(got.packet_id),
                             "PUBREL (fixed header 0x62) with the PUBLISH's id")
            sub.send(m.ack(m.PUBCOMP, got.packet_id))
            m.expect_quiet([sub], QUIET)
            pub.publish("q2/out", b"next", qos=2)
            self.assertEqual(sub.receive(1)[0].key(), ("q2/out", b"next", 2, False, False))
            m.expect_quiet([sub], QUIET)
            self.assertFalse(sub.awaiting_pubrel)
            sub.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_qos2_outbound_resent_publish_then_pubrel_across_reconnects_MQTT_4_4_0_1(self):
        b = self.start_broker()
        with m.Client(b.port, "q2-persist", clean=False) as sub:
            sub.subscribe([("q2/p", 2)])
            with m.Client(b.port, "q2-persist-pub") as pub:
                pub.publish("q2/p", b"payload", qos=2)
                pub.disconnect()
            first = sub.next_publish()
            self.assertEqual(first.key(), ("q2/p", b"payload", 2, False, False))
            sub.disconnect()  # no PUBREC
        with m.Client(b.port, "q2-persist", clean=False, session_present=True) as sub:
            again = sub.next_publish(what="the QoS 2 PUBLISH resent")
            self.assertEqual(again.raw, dup_of(first.raw), "resent with DUP=1, same id")
            sub.send(m.ack(m.PUBREC, again.packet_id))
            pkt = sub.read_packet(what="PUBREL")
            self.assertEqual(pkt.raw, m.pubrel(first.packet_id))
            sub.disconnect()  # no PUBCOMP
        with m.Client(b.port, "q2-persist", clean=False, session_present=True) as sub:
            pkt = sub.read_packet(what="the PUBREL resent")
            self.assertEqual(pkt.raw, m.pubrel(first.packet_id),
                             "after PUBREC the PUBREL is resent, not the PUBLISH")
            sub.send(m.ack(m.PUBCOMP, first.packet_id))
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
        with m.Client(b.port, "q2-persist", clean=False, session_present=True) as sub:
            m.expect_quiet([sub], QUIET)
            sub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=5)

    def test_delivered_qos_is_min_of_granted_and_published_MQTT_3_8_4_6(self):
        b = self.start_broker()
        subs = [m.Client(b.port, f"min-{g}-{i}") for g in (0, 1, 2) for i in range(2)]
        try:
            for s in subs:
                s.subscribe([("min/t", int(s.client_id.split("-")[1]))])
            with m.Client(b.port, "min-pub") as pub:
                for q in (0, 1, 2):
                    pub.publish("min/t", f"p{q}".encode(), qos=q)
                got = m.receive_all(subs, [3] * len(subs), timeout=5.0)
                for s, msgs in zip(subs, got):
                    g = int(s.client_id.split("-")[1])
                    self.assertEqual([(x.payload, x.qos) for x in msgs],
                                     [(f"p{q}".encode(), min(g, q)) for q in (0, 1, 2)],
                                     f"{s.client_id} granted {g}")
                    for x in msgs:
                        self.assertEqual(x.packet_id is None, x.qos == 0)
                m.expect_quiet(subs, QUIET)
                pub.disconnect()
            for s in subs:
                s.disconnect()
        finally:
            for s in subs:
                s.close()
        self.assert_counters(b.stop(), connect_accepted=7)

    def test_pubrel_for_unknown_id_gets_pubcomp(self):
        b = self.start_broker()
        with m.Client(b.port, "relx") as c:
            c.send(m.pubrel(4242))
            c.expect_reply(m.ack(m.PUBCOMP, 4242), "PUBCOMP for an unknown id")
            c.ping()
            c.disconnect()
        self.assert_counters(b.stop(), connect_accepted=1)
