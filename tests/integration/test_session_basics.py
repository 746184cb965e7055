"""After CONNACK 0: ping, disconnect, keep alive, connect timeout, framing, QoS acks, limits.

PUBLISH QoS 1/2 is acknowledged, SUBSCRIBE gets a SUBACK granting the requested QoS of each
filter, UNSUBSCRIBE gets UNSUBACK; any malformed packet closes the connection. Delivery itself is
tested in test_pubsub.py, test_qos.py, test_retained.py, test_sessions.py and test_limits.py.
"""

import selectors
import struct
import time

import mqtt_raw as m
from broker import BrokerTestCase


class PingAndDisconnect(BrokerTestCase):
    def test_pingreq_gets_pingresp_MQTT_3_12_4_1(self):
        b = self.start_broker()
        with m.connect_client(b.port, "pinger") as s:
            for _ in range(3):
                m.ping(s)
            s.sendall(m.PINGREQ * 3)  # pipelined in one segment
            for _ in range(3):
                m.expect_packet(s, m.PINGRESP, what="PINGRESP")
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_disconnect_closes_connection_MQTT_3_14_4_1(self):
        b = self.start_broker()
        with m.connect_client(b.port, "bye") as s:
            s.sendall(m.DISCONNECT)
            m.expect_eof(s, timeout=2.0, what="the server to close after DISCONNECT")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_abrupt_close_then_immediate_new_connection_served(self):
        # Clients that vanish without DISCONNECT, each followed at once by a new connection: the
        # broker's cleanup of the old socket must never touch the new one (which may reuse the
        # same file descriptor number).
        b = self.start_broker()
        n, broken = 200, []
        for i in range(n):
            try:
                s = m.connect_client(b.port, f"churn{i}", timeout=2.0)
                m.ping(s, timeout=2.0)
            except AssertionError as e:
                broken.append(f"#{i}: {e}")
                continue
            s.close()  # no DISCONNECT
        if broken:
            self.fail(f"{len(broken)} of {n} fresh connections were closed by the broker; "
                      f"first: {broken[:3]}")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=n + 1, connections_accepted=n + 1)

    def test_connect_and_disconnect_in_one_write(self):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(m.connect("burst") + m.PINGREQ + m.DISCONNECT)
            m.expect_connack(s, 0)
            m.expect_packet(s, m.PINGRESP, what="PINGRESP")
            m.expect_eof(s, timeout=2.0)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_connect_split_into_1_byte_writes(self):
        b = self.start_broker()
        data = m.connect("trickle", will_topic="w/t", will_message=b"m", username="u",
                         password=b"p")
        with m.open_socket(b.port) as s:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
                time.sleep(0.01)
            m.expect_connack(s, 0)
            for byte in m.PINGREQ:  # a later packet split too
                s.sendall(bytes([byte]))
                time.sleep(0.01)
            m.expect_packet(s, m.PINGRESP, what="PINGRESP")
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)


class KeepAlive(BrokerTestCase):
    def test_keepalive_1s_silent_client_closed_pinging_client_stays_MQTT_3_1_2_24(self):
        b = self.start_broker()
        silent, pinger, publisher = m.open_socket(b.port), m.open_socket(b.port), m.open_socket(b.port)
        with silent, pinger, publisher:
            t0 = time.monotonic()
            silent.sendall(m.connect("silent", keepalive=1))
            pinger.sendall(m.connect("pinger", keepalive=1))
            publisher.sendall(m.connect("publisher", keepalive=1))
            for s in (silent, pinger, publisher):
                m.expect_connack(s, 0)
            # The silent client must be closed after 1.5 x keep alive, and not before 1 x.
            closed_at = None
            next_ping = t0 + 0.7
            while time.monotonic() < t0 + 3.4:
                if closed_at is None:
                    silent.settimeout(0.05)
                    try:
                        chunk = silent.recv(16)
                        self.assertEqual(chunk, b"", "server sent bytes to a silent client")
                        closed_at = time.monotonic() - t0
                    except ConnectionResetError:
                        closed_at = time.monotonic() - t0
                    except OSError:  # timeout
                        pass
                else:
                    time.sleep(0.05)
                if time.monotonic() >= next_ping:
                    m.ping(pinger, timeout=1.0)
                    publisher.sendall(m.publish("k/a", b"x"))  # any packet counts (QoS 0)
                    next_ping += 0.7
            self.assertIsNotNone(closed_at, "silent client with keep alive 1 s still open "
                                 "after 3.4 s")
            self.assertGreaterEqual(closed_at, 1.0, "silent client closed before 1 x keep "
                                    "alive")
            self.assertLessEqual(closed_at, 3.0, "silent client closed late")
            m.ping(pinger)
            m.ping(publisher)
            m.disconnect(pinger)
            m.disconnect(publisher)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=4, keepalive_timeout=1)

    def test_keepalive_counts_packets_not_trickled_bytes_MQTT_3_1_2_24(self):
        # Bytes of a packet that never completes are not a Control Packet: a client trickling
        # one byte every 0.25 s must still be closed 1.5 x keep alive after its last packet.
        b = self.start_broker()
        with m.connect_client(b.port, "trickler", keepalive=1) as s:
            t0 = time.monotonic()
            data = m.publish("t", b"x" * 100)
            closed_at = trickle(s, data, interval=0.25, until=t0 + 3.0)
            if closed_at is None:
                closed_at = t0 + 3.0 + m.expect_eof(
                    s, timeout=0.3, what="the server to close a client that sent no complete "
                    "packet for 3 s with keep alive 1 s")
            self.assertLessEqual(closed_at - t0, 3.3)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=2, keepalive_timeout=1)

    def test_keepalive_0_means_no_timeout_MQTT_3_1_2_23(self):
        b = self.start_broker()
        with m.connect_client(b.port, "ka0", keepalive=0) as s:
            m.expect_silence(s, 2.0)
            m.ping(s)
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)


class ConnectTimeout(BrokerTestCase):
    def test_no_complete_connect_within_connect_timeout_closed(self):
        b = self.start_broker("--connect-timeout-ms", "500")
        t0 = time.monotonic()
        idle, half, header_only = m.open_socket(b.port), m.open_socket(b.port), m.open_socket(b.port)
        with idle, half, header_only:
            data = m.connect("half")
            half.sendall(data[:len(data) // 2])
            header_only.sendall(data[:1])
            for name, s in (("idle", idle), ("half CONNECT", half), ("1 byte", header_only)):
                m.expect_eof(s, timeout=max(0.1, t0 + 2.0 - time.monotonic()),
                             what=f"the server to close the {name} socket within 2 s")
                self.assertGreaterEqual(time.monotonic() - t0, 0.45,
                                        f"{name} socket closed before the connect timeout")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_timeout=3, connect_accepted=1,
                             connections_accepted=4)

    def test_connect_timeout_is_not_extended_by_trickled_bytes(self):
        b = self.start_broker("--connect-timeout-ms", "500")
        with m.open_socket(b.port) as s:
            t0 = time.monotonic()
            data = m.connect("slow" * 20)  # 95 bytes at 10 per second: never completes in time
            closed_at = trickle(s, data, interval=0.1, until=t0 + 2.0)
            if closed_at is None:
                closed_at = t0 + 2.0 + m.expect_eof(
                    s, timeout=0.3, what="the server to close a CONNECT trickled for 2 s with "
                    "--connect-timeout-ms 500")
            self.assertGreaterEqual(closed_at - t0, 0.45, "closed before the connect timeout")
            self.assertLessEqual(closed_at - t0, 2.3)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_timeout=1, connect_accepted=1)

    def test_connect_timeout_does_not_hit_connected_client(self):
        b = self.start_broker("--connect-timeout-ms", "300")
        with m.connect_client(b.port, "stays", keepalive=0) as s:
            m.expect_silence(s, 1.0)
            m.ping(s)
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)


def trickle(sock, data, interval, until):
    """Sends `data` one byte per `interval` until done or the monotonic time `until`, watching
    for a close by the server. Returns the monotonic time of the close, or None."""
    for i in range(len(data)):
        if time.monotonic() >= until:
            return None
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            return time.monotonic()
        sock.settimeout(max(0.0, min(interval, until - time.monotonic())))
        try:
            chunk = sock.recv(16)
        except ConnectionResetError:
            return time.monotonic()
        except OSError:  # timeout: still open
            continue
        if chunk:
            raise AssertionError(f"unexpected bytes from the server: {chunk!r}")
        return time.monotonic()
    return None


class ManyClients(BrokerTestCase):
    N = 200

    def test_200_concurrent_clients_all_get_connack_0(self):
        b = self.start_broker()
        socks = []
        try:
            for i in range(self.N):
                socks.append(m.open_socket(b.port))
            for i, s in enumerate(socks):
                s.sendall(m.connect(f"many-{i}"))
            # Read all CONNACKs concurrently with one deadline.
            sel = selectors.DefaultSelector()
            pending = {}
            for i, s in enumerate(socks):
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, i)
                pending[i] = b""
            deadline = time.monotonic() + 10.0
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.2):
                    i = key.data
                    try:
                        chunk = key.fileobj.recv(4 - len(pending[i]))
                    except (BlockingIOError, InterruptedError):
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    self.assertTrue(chunk, f"client {i} closed before CONNACK")
                    pending[i] += chunk
                    if len(pending[i]) == 4:
                        self.assertEqual(pending[i], m.connack(0), f"client {i}")
                        sel.unregister(key.fileobj)
                        del pending[i]
            sel.close()
            self.assertFalse(pending, f"{len(pending)} of {self.N} clients got no CONNACK in 10 s")
            for s in socks:
                s.setblocking(True)
                s.settimeout(m.TIMEOUT)
            for s in socks:  # all still served
                s.sendall(m.PINGREQ)
            for s in socks:
                m.expect_packet(s, m.PINGRESP, what="PINGRESP")
            for s in socks:
                s.sendall(m.DISCONNECT)
            for s in socks:
                m.expect_eof(s)
        finally:
            for s in socks:
                s.close()
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=self.N + 1,
                             connections_accepted=self.N + 1)


class QosAcks(BrokerTestCase):
    def test_publish_qos0_no_reply_qos1_puback_qos2_pubrec_pubcomp(self):
        b = self.start_broker()
        with m.connect_client(b.port, "pub") as s:
            s.sendall(m.publish("a/b", b"zero"))
            m.ping(s)  # the PINGRESP is the first thing back: QoS 0 got no reply
            s.sendall(m.publish("a/b", b"one", qos=1, packet_id=7))
            m.expect_packet(s, m.ack(m.PUBACK, 7), what="PUBACK")
            s.sendall(m.publish("a/b", b"two", qos=2, packet_id=0xBEEF))
            m.expect_packet(s, m.ack(m.PUBREC, 0xBEEF), what="PUBREC")
            s.sendall(m.pubrel(0xBEEF))
            m.expect_packet(s, m.ack(m.PUBCOMP, 0xBEEF), what="PUBCOMP")
            s.sendall(m.publish("r", b"", qos=1, packet_id=65535, retain=True))
            m.expect_packet(s, m.ack(m.PUBACK, 65535), what="PUBACK")
            s.sendall(m.publish("a/b", b"dup", qos=1, packet_id=8, dup=True))
            m.expect_packet(s, m.ack(m.PUBACK, 8), what="PUBACK")
            # QoS 2 resent with DUP before PUBREL: PUBREC again (MQTT-4.3.3-2 flow).
            s.sendall(m.publish("a/b", b"two", qos=2, packet_id=21))
            m.expect_packet(s, m.ack(m.PUBREC, 21), what="PUBREC")
            s.sendall(m.publish("a/b", b"two", qos=2, packet_id=21, dup=True))
            m.expect_packet(s, m.ack(m.PUBREC, 21), what="PUBREC for the DUP resend")
            s.sendall(m.pubrel(21))
            m.expect_packet(s, m.ack(m.PUBCOMP, 21), what="PUBCOMP")
            # PUBREL resent (the PUBCOMP may have been lost): PUBCOMP again.
            s.sendall(m.pubrel(21))
            m.expect_packet(s, m.ack(m.PUBCOMP, 21), what="PUBCOMP for a repeated PUBREL")
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1, publish_duplicates=1)

    def test_pipelined_qos1_publishes_acked_in_order(self):
        b = self.start_broker()
        with m.connect_client(b.port, "pipe") as s:
            s.sendall(b"".join(m.publish("p", b"x" * i, qos=1, packet_id=i + 1)
                               for i in range(50)))
            for i in range(50):
                m.expect_packet(s, m.ack(m.PUBACK, i + 1), what=f"PUBACK {i + 1}")
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_subscribe_gets_suback_granting_requested_qos_per_filter_MQTT_3_8_4_1(self):
        b = self.start_broker()
        with m.connect_client(b.port, "sub") as s:
            s.sendall(m.subscribe(3, [("a/b", 0), ("c/+", 1), ("#", 2)]))
            m.expect_packet(s, m.packet(0x90, struct.pack("!H", 3) + b"\x00\x01\x02"),
                            what="SUBACK granting 0, 1, 2 (MQTT-3.9.3)")
            s.sendall(m.subscribe(4, [("x", 1)]))
            m.expect_packet(s, m.packet(0x90, struct.pack("!H", 4) + b"\x01"),
                            what="SUBACK granting 1")
            s.sendall(m.unsubscribe(5, ["a/b", "c/+"]))
            m.expect_packet(s, m.ack(m.UNSUBACK, 5), what="UNSUBACK")
            m.ping(s)
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1, subscriptions_added=4,
                             subscriptions_removed=2)


# Malformed packets after a successful CONNECT: the server closes without replying.
MALFORMED_AFTER_CONNECT = [
    ("publish_plus_wildcard_topic_MQTT_3_3_2_2", m.publish("a/+", b"x")),
    ("publish_hash_wildcard_topic_MQTT_3_3_2_2", m.publish("a/#", b"x", qos=1, packet_id=2)),
    ("publish_empty_topic_MQTT_4_7_3_1", m.publish("", b"x")),
    ("publish_qos1_packet_id_0_MQTT_2_3_1_1", m.publish("t", b"x", qos=1, packet_id=0)),
    ("publish_qos2_packet_id_0_MQTT_2_3_1_1", m.publish("t", b"x", qos=2, packet_id=0)),
    ("publish_qos_3_MQTT_3_3_1_4", m.publish("t", b"x", flags=0x06, packet_id=1)),
    ("publish_dup_with_qos0_MQTT_3_3_1_2", m.publish("t", b"x", flags=0x08)),
    ("publish_invalid_utf8_topic_MQTT_1_5_3_1", m.publish(b"t\xff", b"x")),
    ("publish_nul_in_topic_MQTT_1_5_3_2", m.publish(b"t\x00", b"x")),
    ("publish_truncated_topic_MQTT_1_5", m.packet(0x30, b"\x00\x05ab")),
    ("subscribe_no_topics_MQTT_3_8_3_3", m.subscribe(1, [])),
    ("subscribe_bad_fixed_header_flags_MQTT_3_8_1_1", m.subscribe(1, [("t", 0)], flags=0x00)),
    ("subscribe_packet_id_0_MQTT_2_3_1_1", m.subscribe(0, [("t", 0)])),
    ("subscribe_requested_qos_3_MQTT_3_8_3_4", m.subscribe(1, [("t", 3)])),
    ("subscribe_qos_reserved_bits_MQTT_3_8_3_4", m.subscribe(1, [("t", 0x40)])),
    ("subscribe_bad_hash_wildcard_MQTT_4_7_1_2", m.subscribe(1, [("a/#/b", 0)])),
    ("subscribe_bad_plus_wildcard_MQTT_4_7_1_3", m.subscribe(1, [("a+/b", 0)])),
    ("subscribe_empty_filter_MQTT_4_7_3_1", m.subscribe(1, [("", 0)])),
    ("subscribe_missing_qos_byte_MQTT_1_5", m.packet(0x82, b"\x00\x01" + m.mqtt_string("t"))),
    ("unsubscribe_no_topics_MQTT_3_10_3_2", m.unsubscribe(1, [])),
    ("unsubscribe_bad_fixed_header_flags_MQTT_3_10_1_1", m.unsubscribe(1, ["t"], flags=0x00)),
    ("pubrel_bad_fixed_header_flags_MQTT_3_6_1_1", m.pubrel(1, flags=0x00)),
    ("pingreq_bad_fixed_header_flags_MQTT_2_2_2_1", b"\xc1\x00"),
    ("pingreq_with_body_MQTT_1_5", b"\xc0\x01\x00"),
    ("puback_surplus_bytes_MQTT_1_5", m.packet(0x40, b"\x00\x01\x00")),
    ("reserved_packet_type_0_MQTT_2_2", b"\x00\x00"),
    ("reserved_packet_type_15_MQTT_2_2", b"\xf0\x00"),
    ("server_only_connack_from_client_MQTT_2_2", m.connack(0)),
    ("server_only_suback_from_client_MQTT_2_2", m.packet(0x90, b"\x00\x01\x00")),
    ("server_only_pingresp_from_client_MQTT_2_2", m.PINGRESP),
    ("remaining_length_over_4_bytes_MQTT_2_2_3", b"\x30\x80\x80\x80\x80\x01"),
]


class MalformedAfterConnect(BrokerTestCase):
    def closed_without_reply(self, data):
        b = self.start_broker()
        with m.connect_client(b.port, "victim") as s:
            m.try_send(s, data)
            m.expect_eof(s, timeout=3.0, what="the server to close without reply")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=2, connect_malformed=None)


def _closed_test(data):
    def test(self):
        self.closed_without_reply(data)
    return test


for _name, _data in MALFORMED_AFTER_CONNECT:
    setattr(MalformedAfterConnect, f"test_{_name}_closed_without_reply", _closed_test(_data))


class PacketSize(BrokerTestCase):
    def test_header_claiming_256_mib_then_silence_closed_packet_too_large(self):
        b = self.start_broker()
        with m.connect_client(b.port, "big", keepalive=0) as s:
            s.sendall(b"\x30\xff\xff\xff\x7f" + m.mqtt_string("t"))  # 268,435,455 bytes
            waited = m.expect_eof(s, timeout=3.0, what="the server to close a 256 MiB PUBLISH")
            self.assertLess(waited, 2.0, "not closed promptly at the header")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=2, packet_too_large=1)

    def test_large_connect_and_publish_spanning_many_reads(self):
        # Packets far larger than one receive buffer must be reassembled, not refused. This
        # CONNECT (about 70 KiB) is over the default max_connect_packet_size (64 KiB).
        b = self.start_broker("--max-connect-packet-size", "131072")
        will = bytes(range(256)) * 250  # 64,000 bytes: near the 65,535 limit of a field
        with m.connect_client(b.port, "w" * 256, will_topic="big/will", will_message=will,
                              username="u" * 1000, password=b"p" * 5000) as s:
            limit = 1 << 20  # the default max_packet_size, fixed header included
            overhead = len(m.publish("big", b"", qos=1, packet_id=9)) + 2  # 3-byte length
            data = m.publish("big", b"\xab" * (limit - overhead), qos=1, packet_id=9)
            self.assertEqual(len(data), limit)
            s.sendall(data)
            m.expect_packet(s, m.ack(m.PUBACK, 9), timeout=10.0, what="PUBACK for 1 MiB")
            m.ping(s)
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_max_packet_size_boundary(self):
        limit = 1024
        b = self.start_broker("--max-packet-size", str(limit))
        # A QoS 1 PUBLISH of exactly `limit` bytes (fixed header included) is served...
        overhead = len(m.publish("s", b"", qos=1, packet_id=1))
        payload_len = limit - overhead - 1  # remaining length >= 128 takes a second byte
        fits = m.publish("s", b"p" * payload_len, qos=1, packet_id=1)
        self.assertEqual(len(fits), limit)
        with m.connect_client(b.port, "fits", keepalive=0) as s:
            s.sendall(fits)
            m.expect_packet(s, m.ack(m.PUBACK, 1), what="PUBACK for a packet at the limit")
            # ...and one byte more closes the connection, whether or not the body follows.
            over = m.publish("s", b"p" * (payload_len + 1), qos=1, packet_id=2)
            self.assertEqual(len(over), limit + 1)
            m.try_send(s, over)
            m.expect_eof(s, timeout=3.0, what="the server to close a packet over the limit")
        with m.connect_client(b.port, "over-hdr", keepalive=0) as s:
            m.try_send(s, over[:5])
            m.expect_eof(s, timeout=3.0, what="the server to close at the header")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=3, packet_too_large=2)
