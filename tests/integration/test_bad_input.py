"""Hostile input (issue 7): every case gets the answer the spec gives or a clear close, is
counted, and never disturbs a good client on another connection.

Cases that test_connect.py and test_session_basics.py already pin one broker per case (malformed
CONNECTs, malformed packets after CONNECT) are not repeated here; this file adds what they lack:
whole families at once on one broker with the exact counter totals (every type with every wrong
flags nibble, every string field with invalid UTF-8 and U+0000), garbage, memory bounds for
claimed sizes, 1-byte writes of a whole session, thousands of packets in one write, deep topic
levels, very long client ids and a slow-loris crowd. During each case a GoodTraffic pair keeps
publishing and receiving a QoS 1 stream on its own connections, and must lose nothing.
"""

import errno
import resource
import selectors
import socket
import struct
import threading
import time

import mqtt_raw as m
from broker import BrokerTestCase


class GoodTraffic:
    """A publisher and a subscriber exchanging a numbered QoS 1 stream in a background thread.

    checkpoint() waits until more messages have arrived than when it was called (the pair is
    still served now); stop() ends the stream and asserts every message arrived once, in order.
    """

    TOPIC = "good/stream"

    def __init__(self, port, tag="good"):
        self.sub = m.Client(port, f"{tag}-sub")
        self.sub.subscribe([(self.TOPIC, 1)])
        self.pub = m.Client(port, f"{tag}-pub")
        self.sent = 0
        self.received = []
        self.error = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                self.pub.publish(self.TOPIC, struct.pack("!I", self.sent), qos=1, timeout=10.0)
                self.sent += 1
                got = self.sub.receive(1, timeout=10.0)
                with self._cond:
                    self.received.append(struct.unpack("!I", got[0].payload)[0])
                    self._cond.notify_all()
                time.sleep(0.002)
        except Exception as e:  # noqa: BLE001 (reported by stop/checkpoint)
            self.error = e
            with self._cond:
                self._cond.notify_all()

    def checkpoint(self, more=5, timeout=10.0):
        with self._cond:
            want = len(self.received) + more
            deadline = time.monotonic() + timeout
            while len(self.received) < want and self.error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self.error is not None:
                raise AssertionError(f"the good client failed: {self.error!r}")
            if len(self.received) < want:
                raise AssertionError(f"the good client stalled: {len(self.received)} messages, "
                                     f"wanted {want} within {timeout}s")

    def stop(self):
        self.checkpoint()
        self._stop.set()
        self._thread.join(15.0)
        if self._thread.is_alive():
            raise AssertionError("the good client thread hung")
        if self.error is not None:
            raise AssertionError(f"the good client failed: {self.error!r}")
        if self.received != list(range(self.sent)):
            raise AssertionError(f"good stream lost or reordered messages: sent {self.sent}, "
                                 f"received {len(self.received)}")
        self.pub.disconnect()
        self.sub.disconnect()
        return self.sent

    def close(self):
        self._stop.set()
        self.pub.close()
        self.sub.close()


# The counters a GoodTraffic pair adds: two accepted clients, one subscription.
GOOD_CONNECTS = 2


class BadInputCase(BrokerTestCase):
    def start_with_good_traffic(self, *flags):
        b = self.start_broker(*flags)
        good = GoodTraffic(b.port)
        self.addCleanup(good.close)
        good.checkpoint()
        return b, good

    def assert_all_closed(self, port, cases, connected=True, timeout=3.0):
        """Sends each (name, bytes) on its own connection (after a CONNECT if `connected`) and
        asserts the server closes it without a byte in reply."""
        for name, data in cases:
            sock = (m.connect_client(port, "victim", keepalive=0) if connected
                    else m.open_socket(port))
            with sock:
                m.try_send(sock, data)
                try:
                    m.expect_eof(sock, timeout=timeout, what=f"a close for {name}")
                except AssertionError as e:
                    raise AssertionError(f"{name}: {e}") from None


# ---------------------------------------------------------------------------------------------
# Garbage and wrong fixed-header flags

# What a confused or hostile peer may send to an MQTT port instead of MQTT.
GARBAGE = [
    ("http_get", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("tls_client_hello", bytes.fromhex("16030100a5010000a10303") + bytes(range(32))),
    ("ssh_banner", b"SSH-2.0-OpenSSH_9.2\r\n"),
    ("zeros", bytes(64)),
    ("ones", b"\xff" * 64),
    ("pseudo_random", bytes((i * 167 + 13) % 256 for i in range(512))),
]


def wrong_flag_cases():
    """(name, first bytes) for every packet type but PUBLISH with each flags nibble §2.2.2 does
    not allow (MQTT-2.2.2-1/-2), followed by a plausible rest of the packet."""
    cases = []
    for ptype in range(1, 15):
        if ptype == m.PUBLISH:
            continue
        legal = 0x02 if ptype in (m.PUBREL, m.SUBSCRIBE, m.UNSUBSCRIBE) else 0x00
        body = {m.PINGREQ_T: b"", m.DISCONNECT_T: b"", m.PINGRESP_T: b""}.get(
            ptype, b"\x00\x01" + m.mqtt_string("t") + b"\x00")
        if ptype in (m.CONNACK, m.PUBACK, m.PUBREC, m.PUBREL, m.PUBCOMP, m.UNSUBACK):
            body = b"\x00\x01"
        for flags in range(16):
            if flags != legal:
                cases.append((f"type{ptype}_flags{flags:x}", m.packet(ptype << 4 | flags, body)))
    # PUBLISH: QoS 3 (MQTT-3.3.1-4) with each DUP/RETAIN combination, DUP with QoS 0.
    for flags in (0x06, 0x07, 0x0E, 0x0F, 0x08, 0x09):
        cases.append((f"publish_flags{flags:x}", m.packet(0x30 | flags,
                                                          m.mqtt_string("t") + b"\x00\x01x")))
    return cases


class GarbageAndFlags(BadInputCase):
    def test_garbage_as_first_bytes_closed_without_reply_counted_connect_malformed(self):
        b, good = self.start_with_good_traffic()
        self.assert_all_closed(b.port, GARBAGE, connected=False)
        good.checkpoint()
        good.stop()
        self.assert_counters(b.stop(), connect_malformed=len(GARBAGE),
                             connect_accepted=GOOD_CONNECTS, connections_accepted=None)

    def test_garbage_after_connect_closed_counted_protocol_violations(self):
        b, good = self.start_with_good_traffic()
        self.assert_all_closed(b.port, GARBAGE)
        good.checkpoint()
        good.stop()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=GOOD_CONNECTS + len(GARBAGE))
        self.assertEqual(counters["protocol_violations"], len(GARBAGE), counters)

    def test_every_type_with_every_wrong_flags_nibble_closed_MQTT_2_2_2_1_2(self):
        cases = wrong_flag_cases()
        self.assertEqual(len(cases), 13 * 15 + 6)
        b, good = self.start_with_good_traffic()
        self.assert_all_closed(b.port, cases)
        good.checkpoint()
        good.stop()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=GOOD_CONNECTS + len(cases))
        self.assertEqual(counters["protocol_violations"], len(cases), counters)

    def test_connect_with_every_wrong_flags_nibble_closed_without_connack_MQTT_2_2_2_2(self):
        b, good = self.start_with_good_traffic()
        data = m.connect("c")
        cases = [(f"connect_flags{f:x}", bytes([0x10 | f]) + data[1:]) for f in range(1, 16)]
        self.assert_all_closed(b.port, cases, connected=False)
        good.stop()
        self.assert_counters(b.stop(), connect_malformed=15, connect_accepted=GOOD_CONNECTS)

    def test_mqtt_31_retransmissions_with_dup_served(self):
        # MQTT 3.1 set DUP on a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE; 3.1.1 forbids it
        # (MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1). A 3.1 client must not be closed for it.
        b, good = self.start_with_good_traffic()
        with m.Client(b.port, "old31", level=3) as c:
            c.send(m.publish("t31", b"x", qos=2, packet_id=3))
            c.expect_reply(m.ack(m.PUBREC, 3), "PUBREC")
            c.send(m.pubrel(3, flags=0x0A))
            c.expect_reply(m.ack(m.PUBCOMP, 3), "PUBCOMP for a PUBREL with DUP")
            c.send(m.subscribe(4, [("t31", 1)], flags=0x0A))
            c.expect_reply(m.suback(4, [1]), "SUBACK for a SUBSCRIBE with DUP")
            c.send(m.unsubscribe(5, ["t31"], flags=0x0A))
            c.expect_reply(m.ack(m.UNSUBACK, 5), "UNSUBACK for an UNSUBSCRIBE with DUP")
            c.ping()
            c.disconnect()
        with m.Client(b.port, "new311") as c:  # the same bytes from a 3.1.1 client: closed
            c.send(m.subscribe(4, [("t31", 1)], flags=0x0A))
            c.expect_eof(timeout=3.0)
        good.stop()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=GOOD_CONNECTS + 2,
                             publish_dropped_no_subscribers=None)
        self.assertEqual(counters["protocol_violations"], 1, counters)


# ---------------------------------------------------------------------------------------------
# Invalid strings: every UTF-8 string field (MQTT-1.5.3-1/-2)

BAD_STRINGS = [
    ("invalid_byte", b"a\xffb"),
    ("lone_continuation", b"a\x80"),
    ("truncated_sequence", b"a\xe6\x9d"),
    ("overlong_slash", b"a\xc0\xafb"),
    ("surrogate", b"a\xed\xa0\x80"),
    ("above_u10ffff", b"a\xf4\x90\x80\x80"),
    ("nul", b"a\x00b"),
]


def bad_string_cases():
    """(name, bytes, before_connect) for each string field and each bad string."""
    cases = []
    for label, bad in BAD_STRINGS:
        cases += [
            (f"client_id_{label}", m.connect(bad), True),
            (f"will_topic_{label}", m.connect("c", will_topic=bad), True),
            (f"user_name_{label}", m.connect("c", username=bad, password=b"pw"), True),
            (f"publish_topic_{label}", m.publish(bad, b"x", qos=1, packet_id=1), False),
            (f"subscribe_filter_{label}", m.subscribe(1, [("ok", 0), (bad, 0)]), False),
            (f"unsubscribe_filter_{label}", m.unsubscribe(1, ["ok", bad]), False),
        ]
    return cases


class BadStrings(BadInputCase):
    def test_invalid_utf8_and_nul_in_every_string_field_closed_MQTT_1_5_3_1_2(self):
        cases = bad_string_cases()
        b, good = self.start_with_good_traffic()
        before = [(n, d) for n, d, pre in cases if pre]
        after = [(n, d) for n, d, pre in cases if not pre]
        self.assert_all_closed(b.port, before, connected=False)
        good.checkpoint()
        self.assert_all_closed(b.port, after)
        good.stop()
        counters = b.stop()
        self.assert_counters(counters, connect_malformed=len(before),
                             connect_accepted=GOOD_CONNECTS + len(after))
        self.assertEqual(counters["protocol_violations"], len(after), counters)

    def test_valid_edge_strings_accepted(self):
        # The opposite edge: the largest code points, U+FEFF and a 4-byte character are fine
        # (MQTT-1.5.3-3 says a BOM must not be stripped), in every field.
        b, good = self.start_with_good_traffic()
        odd = "\U0010ffff/\ufeff/\U0001f600/\u07ff"
        with m.Client(b.port, odd, will_topic=odd, username=odd, password=b"p") as c:
            c.subscribe([(odd, 1), (odd + "/+", 0)])
            c.publish(odd, b"hello", qos=1)
            got = c.receive(1)
            self.assertEqual((got[0].topic, got[0].payload), (odd, b"hello"))
            c.unsubscribe([odd])
            c.disconnect()
        good.stop()
        self.assert_counters(b.stop(), connect_accepted=GOOD_CONNECTS + 1)


# ---------------------------------------------------------------------------------------------
# Spec answers that are not a close

class SpecAnswers(BadInputCase):
    def test_pubrel_for_unknown_ids_gets_pubcomp_and_no_delivery_MQTT_4_3_3_2(self):
        b, good = self.start_with_good_traffic()
        with m.Client(b.port, "sub-rel") as sub, m.Client(b.port, "pub-rel") as pub:
            sub.subscribe([("rel/t", 2)])
            for pid in (1, 65535, 777):
                pub.send(m.pubrel(pid))
                pub.expect_reply(m.ack(m.PUBCOMP, pid), f"PUBCOMP {pid} for an unknown id")
            # A real QoS 2 flow, then its PUBREL repeated: delivered exactly once.
            pub.send(m.publish("rel/t", b"once", qos=2, packet_id=9))
            pub.expect_reply(m.ack(m.PUBREC, 9), "PUBREC")
            for _ in range(3):
                pub.send(m.pubrel(9))
                pub.expect_reply(m.ack(m.PUBCOMP, 9), "PUBCOMP")
            got = sub.receive(1)
            self.assertEqual(got[0].payload, b"once")
            sub.expect_no_publish(0.3)
            sub.disconnect()
            pub.disconnect()
        good.stop()
        self.assert_counters(b.stop(), connect_accepted=GOOD_CONNECTS + 2)

    def test_packet_id_0_closed_in_every_packet_that_carries_one_MQTT_2_3_1_1(self):
        cases = [
            ("publish_qos1", m.publish("t", b"x", qos=1, packet_id=0)),
            ("publish_qos2", m.publish("t", b"x", qos=2, packet_id=0)),
            ("subscribe", m.subscribe(0, [("t", 0)])),
            ("unsubscribe", m.unsubscribe(0, ["t"])),
            ("puback", m.ack(m.PUBACK, 0)),
            ("pubrec", m.ack(m.PUBREC, 0)),
            ("pubrel", m.pubrel(0)),
            ("pubcomp", m.ack(m.PUBCOMP, 0)),
        ]
        b, good = self.start_with_good_traffic()
        self.assert_all_closed(b.port, cases)
        good.stop()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=GOOD_CONNECTS + len(cases))
        self.assertEqual(counters["protocol_violations"], len(cases), counters)

    def test_wildcards_in_publish_topic_and_empty_lists_closed_MQTT_3_3_2_2_MQTT_3_8_3_3(self):
        cases = [
            ("publish_plus", m.publish("a/+/b", b"x")),
            ("publish_hash", m.publish("#", b"x", qos=1, packet_id=1)),
            ("publish_plus_in_level", m.publish("a+b", b"x", qos=2, packet_id=1)),
            ("publish_hash_in_level", m.publish("a/b#", b"x")),
            ("subscribe_no_topics", m.subscribe(1, [])),
            ("unsubscribe_no_topics", m.unsubscribe(1, [])),
        ]
        b, good = self.start_with_good_traffic()
        with m.Client(b.port, "wild-sub") as watcher:
            watcher.subscribe([("#", 0)])
            self.assert_all_closed(b.port, cases)
            # Nothing of the refused PUBLISHes was routed: only the good stream reaches '#'.
            good.checkpoint()
            watcher.expect_no_publish(0.0)
            topics = set()
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:  # the good stream never stops: read a while
                try:
                    topics.add(watcher.next_publish(timeout=0.1).topic)
                except m.ProtocolError:
                    pass
            self.assertLessEqual(topics, {GoodTraffic.TOPIC})
            watcher.disconnect()
        good.stop()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=GOOD_CONNECTS + 1 + len(cases))
        self.assertEqual(counters["protocol_violations"], len(cases), counters)

    def test_topic_levels_bounded_at_128_deeper_filters_and_topics_closed(self):
        # mqtt/topic.h kMaxTopicLevels = 128: a bound on trie work per packet.
        ok_filter = "/".join(["l"] * 127 + ["#"])
        ok_topic = "/".join(["l"] * 128)
        b, good = self.start_with_good_traffic()
        with m.Client(b.port, "deep") as c:
            c.subscribe([(ok_filter, 1)])
            c.publish(ok_topic, b"deep", qos=1)
            self.assertEqual(c.receive(1)[0].topic, ok_topic)
            c.disconnect()
        cases = [
            ("filter_129_levels", m.subscribe(1, [("/".join(["l"] * 129), 0)])),
            ("filter_5000_levels", m.subscribe(1, [("/".join(["+"] * 5000), 0)])),
            ("filter_65535_bytes_of_slashes", m.subscribe(1, [("/" * 65535, 0)])),
            ("unsubscribe_5000_levels", m.unsubscribe(1, ["/".join(["l"] * 5000)])),
            ("topic_129_levels", m.publish("/".join(["l"] * 129), b"x")),
            ("topic_32768_levels", m.publish("/" * 32767, b"x", qos=1, packet_id=1)),
        ]
        self.assert_all_closed(b.port, cases)
        will_deep = m.connect("wd", will_topic="/".join(["w"] * 200))
        self.assert_all_closed(b.port, [("will_topic_200_levels", will_deep)], connected=False)
        good.stop()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=GOOD_CONNECTS + 1 + len(cases),
                             connect_malformed=1)
        self.assertEqual(counters["protocol_violations"], len(cases), counters)

    def test_client_ids_at_and_beyond_max_client_id_length(self):
        # A CONNECT with a 65,535-byte id is over the default max_connect_packet_size (64 KiB).
        b, good = self.start_with_good_traffic("--max-client-id-length", "65535",
                                               "--max-connect-packet-size", "131072")
        with m.connect_client(b.port, "x" * 65535) as s:  # the longest a string can be
            m.ping(s)
            m.disconnect(s)
        good.stop()
        self.assert_counters(b.stop(), connect_accepted=GOOD_CONNECTS + 1)

        b, good = self.start_with_good_traffic("--max-client-id-length", "100",
                                               "--max-connect-packet-size", "131072")
        with m.connect_client(b.port, "y" * 100) as s:
            m.disconnect(s)
        for n in (101, 1000, 65535):
            with m.open_socket(b.port) as s:
                s.sendall(m.connect("y" * n))
                m.expect_connack(s, 0x02)
                m.expect_eof(s)
        # A length prefix claiming more bytes than the packet holds is malformed, not too long.
        with m.open_socket(b.port) as s:
            s.sendall(m.connect(payload=b"\xff\xff" + b"z" * 100))
            m.expect_eof(s)
        good.stop()
        self.assert_counters(b.stop(), connect_accepted=GOOD_CONNECTS + 1,
                             connect_client_id_too_long=3, connect_malformed=1)


# ---------------------------------------------------------------------------------------------
# Framing: claimed sizes, 1-byte writes, thousands of packets per write

class Framing(BadInputCase):
    def test_100_connections_claiming_256_mib_then_silent_closed_rss_stays_small(self):
        b, good = self.start_with_good_traffic()
        rss_before = b.status_kib("VmRSS")
        socks = []
        try:
            for i in range(100):
                s = m.connect_client(b.port, f"huge{i}", keepalive=0) if i % 2 else \
                    m.open_socket(b.port)
                # PUBLISH after CONNECT, CONNECT before: 268,435,455 bytes claimed, none sent.
                s.sendall((b"\x30" if i % 2 else b"\x10") + b"\xff\xff\xff\x7f\x00\x01t")
                socks.append(s)
            for s in socks:
                m.expect_eof(s, timeout=3.0, what="a close at a 256 MiB header")
        finally:
            for s in socks:
                s.close()
        rss_after = b.status_kib("VmRSS")
        hwm = b.status_kib("VmHWM")
        # 100 x 256 MiB would be 25 GiB; growth of a few MiB is allocator noise.
        self.assertLess(rss_after - rss_before, 16 << 10,
                        f"RSS grew from {rss_before} to {rss_after} KiB (peak {hwm} KiB)")
        good.stop()
        self.assert_counters(b.stop(), connect_accepted=GOOD_CONNECTS + 50,
                             packet_too_large=50, connect_packet_too_large=50,
                             connect_malformed=None)

    def test_whole_session_in_1_byte_writes(self):
        b, good = self.start_with_good_traffic()
        with m.Client(b.port, "byte-sub") as sub:
            sub.subscribe([("bytes/#", 2)])
            session = (m.connect("byte-pub") + m.subscribe(1, [("bytes/echo", 1)]) +
                       m.publish("bytes/a", b"q0") +
                       m.publish("bytes/b", b"q1" * 200, qos=1, packet_id=2) +
                       m.publish("bytes/c", b"q2", qos=2, packet_id=3) + m.pubrel(3) +
                       m.PINGREQ)
            with m.open_socket(b.port) as s:
                for i in range(len(session)):
                    s.sendall(session[i:i + 1])
                    if i % 64 == 0:
                        time.sleep(0.001)  # let the broker see separate receives
                want = (m.connack(0) + m.suback(1, [1]) + m.ack(m.PUBACK, 2) +
                        m.ack(m.PUBREC, 3) + m.ack(m.PUBCOMP, 3) + m.PINGRESP)
                got = b"".join(m.read_packet(s).raw for _ in range(6))
                self.assertEqual(got, want)
                for i in range(len(m.DISCONNECT)):
                    s.sendall(m.DISCONNECT[i:i + 1])
                m.expect_eof(s)
            got = sub.receive(3)
            self.assertEqual([(x.topic, x.payload) for x in got],
                             [("bytes/a", b"q0"), ("bytes/b", b"q1" * 200), ("bytes/c", b"q2")])
            sub.disconnect()
        good.stop()
        self.assert_counters(b.stop(), connect_accepted=GOOD_CONNECTS + 2)

    def test_5000_packets_in_one_write_answered_in_order(self):
        n = 5000
        # The subscriber reads only after the whole burst: its queue must hold it all (the
        # default max_queued_messages 1000 would drop the rest, counted in dropped_queue_full).
        b, good = self.start_with_good_traffic("--max-queued-messages", str(n))
        with m.Client(b.port, "burst-sub") as sub, m.Client(b.port, "burst") as c:
            sub.subscribe([("burst/t", 1)])
            blob = b"".join(m.publish("burst/t", struct.pack("!H", i), qos=1, packet_id=i + 1)
                            + m.PINGREQ for i in range(n))
            self.assertGreater(len(blob), 64 << 10)
            c.send(blob)
            want = b"".join(m.ack(m.PUBACK, i + 1) + m.PINGRESP for i in range(n))
            got = bytearray()
            deadline = time.monotonic() + 20.0
            while len(got) < len(want) and time.monotonic() < deadline:
                got += c.read_packet(timeout=10.0).raw
            self.assertEqual(bytes(got), want)
            msgs = sub.receive(n, timeout=20.0)
            self.assertEqual([struct.unpack("!H", x.payload)[0] for x in msgs], list(range(n)))
            sub.disconnect()
            c.disconnect()
        good.stop()
        self.assert_counters(b.stop(), connect_accepted=GOOD_CONNECTS + 2)


# ---------------------------------------------------------------------------------------------
# Slow-loris

def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class SlowLoris(BadInputCase):
    N = 5000
    TIMEOUT_MS = 1500

    def test_5000_half_connects_all_closed_after_connect_timeout_good_clients_served(self):
        if raise_nofile(self.N + 1000) < self.N + 200:
            self.fail(f"RLIMIT_NOFILE cannot be raised to {self.N + 200}")
        b, good = self.start_with_good_traffic("--connect-timeout-ms", str(self.TIMEOUT_MS))
        half = m.connect("loris")[:12]
        sel = selectors.DefaultSelector()
        opened = {}  # fd -> (socket, monotonic time the connect completed)
        closed_after = []
        good_connect_s = []
        try:
            t0 = time.monotonic()
            for i in range(self.N):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.settimeout(5.0)
                s.connect((m.HOST, b.port))
                s.sendall(half)
                s.setblocking(False)
                opened[s.fileno()] = (s, time.monotonic())
                sel.register(s, selectors.EVENT_READ)
                if i % 500 == 0:  # a good client connects normally in the middle of the crowd
                    start = time.monotonic()
                    self.assert_serves(b, client_id=f"amid{i}")
                    good_connect_s.append(time.monotonic() - start)
            open_s = time.monotonic() - t0
            good.checkpoint()
            deadline = time.monotonic() + self.TIMEOUT_MS / 1000 + 10.0
            while opened and time.monotonic() < deadline:
                for key, _ in sel.select(0.2):
                    s = key.fileobj
                    try:
                        data = s.recv(64)
                    except OSError as e:
                        data = b"" if e.errno == errno.ECONNRESET else None
                    if data is None:
                        continue
                    self.assertEqual(data, b"", "bytes sent to a half-open CONNECT")
                    _, t_open = opened.pop(s.fileno())
                    closed_after.append(time.monotonic() - t_open)
                    sel.unregister(s)
                    s.close()
            self.assertFalse(opened, f"{len(opened)} of {self.N} half-CONNECT sockets still "
                                     f"open {self.TIMEOUT_MS / 1000 + 10.0:.1f}s after the last "
                                     f"was opened (opening took {open_s:.1f}s)")
        finally:
            for s, _ in opened.values():
                s.close()
            sel.close()
        self.assertGreaterEqual(min(closed_after), self.TIMEOUT_MS / 1000 - 0.1,
                                "a half-CONNECT socket closed before connect_timeout")
        self.assertLess(max(good_connect_s), 2.0,
                        f"good clients waited {max(good_connect_s):.2f}s for CONNACK")
        self.assert_serves(b)
        good.stop()
        self.assert_counters(b.stop(), connect_timeout=self.N,
                             connect_accepted=GOOD_CONNECTS + len(good_connect_s) + 1,
                             connections_accepted=self.N + GOOD_CONNECTS + len(good_connect_s)
                             + 1)
