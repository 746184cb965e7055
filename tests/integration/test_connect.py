"""The CONNECT decision (OASIS MQTT-8, MQTT 3.1.1 §3.1 and §3.2.2.3) over raw sockets.

A well-formed CONNECT the broker will not serve gets CONNACK 0x01..0x05 and then the connection is
closed; a malformed one is closed with no CONNACK at all; under `--reject-policy silent` every
refusal is a close without CONNACK. After every bad connection a good client must still be served.
"""

import re
import time

import mqtt_raw as m
from broker import BrokerTestCase

LEVEL_5_CONNECT = m.connect("c5", level=5, properties=b"\x00")  # a real MQTT 5 CONNECT


class ConnectAccepted(BrokerTestCase):
    def test_valid_mqtt_311_connect_gets_connack_0(self):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(m.connect("c311", keepalive=30))
            m.expect_connack(s, 0x00)  # exactly 20 02 00 00: session present 0 (MQTT-3.2.2-1)
            m.ping(s)
            m.disconnect(s)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connections_accepted=2, connect_accepted=2)

    def test_valid_mqtt_31_connect_gets_connack_0(self):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(m.connect("c31", level=3, proto_name="MQIsdp"))
            m.expect_connack(s, 0x00)
            m.ping(s)
            m.disconnect(s)
        self.assert_serves(b, level=3)
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_clean_session_0_first_connect_session_present_0_MQTT_3_2_2_2(self):
        b = self.start_broker()
        with m.connect_client(b.port, "persist1", clean=False) as s:  # asserts 20 02 00 00
            m.ping(s)
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_connect_with_will_user_name_password_and_keepalive_0_accepted(self):
        b = self.start_broker()
        with m.connect_client(b.port, "full", keepalive=0, will_topic="will/t",
                              will_message=b"bye", will_qos=1, will_retain=True,
                              username="user", password=b"\x00\xffpw") as s:
            m.ping(s)
            m.disconnect(s)
        with m.connect_client(b.port, "u-only", username="user") as s:  # user name alone
            m.disconnect(s)
        with m.connect_client(b.port, "w31", level=3, will_topic="a/b", will_qos=2,
                              username="u", password=b"p") as s:
            m.disconnect(s)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=4)

    def test_empty_client_id_clean_1_accepted_server_assigns_id_MQTT_3_1_3_6(self):
        b = self.start_broker()
        # Two at once: both must get an id of their own and stay connected.
        with m.connect_client(b.port, "") as s1, m.connect_client(b.port, "") as s2:
            m.ping(s1)
            m.ping(s2)
            m.disconnect(s1)
            m.disconnect(s2)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=3)

    def test_assigned_ids_cannot_be_taken_over_by_guessing_clients_MQTT_3_1_4_2(self):
        # Issue 11: ids were assigned as ringmq-<shard>-<n>; clients sending those ids took
        # over 8 of 20 connections with empty ids. Assigned ids are now random, homed on the
        # accepting shard, and of a form clients may not send.
        b = self.start_broker(threads=2)
        assigned = [m.connect_client(b.port, "") for _ in range(20)]
        try:
            for shard in range(2):  # every id of the old form, plus margin
                for n in range(1, 41):
                    s = m.connect_client(b.port, f"ringmq-{shard}-{n}")
                    m.disconnect(s)
            for s in assigned:
                m.ping(s)  # still connected: nobody took it over
            # The ids the broker logged are distinct, of the reserved form, and not a sequence.
            ids = set()
            deadline = time.monotonic() + 5.0
            while len(ids) < 20 and time.monotonic() < deadline:
                ids = set(re.findall(r"client (ringmq-auto-[0-9a-f]{32}) connected", b.stderr()))
                time.sleep(0.05)
            self.assertEqual(len(ids), 20, ids)
            for position in range(len("ringmq-auto-"), len("ringmq-auto-") + 32):
                self.assertGreater(len({i[position] for i in ids}), 4, sorted(ids))
            # A client sending an id of the assigned form, even one that is live, is refused.
            for client_id in list(ids)[:3] + ["ringmq-auto-" + "0" * 32]:
                s = m.connect_client(b.port, client_id, expect=0x02)
                with s:
                    m.expect_eof(s)
            for s in assigned:
                m.ping(s)
                m.disconnect(s)
        finally:
            for s in assigned:
                s.close()
        self.assert_counters(b.stop(), connect_accepted=100, connect_client_id_reserved=4)

    def test_client_id_at_max_client_id_length_accepted(self):
        b = self.start_broker("--max-client-id-length", "8")
        with m.connect_client(b.port, "12345678") as s:
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_mqtt_31_client_id_of_23_chars_accepted(self):
        b = self.start_broker()
        with m.connect_client(b.port, "x" * 23, level=3) as s:
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_utf8_multibyte_client_id_accepted(self):
        b = self.start_broker()
        with m.connect_client(b.port, "caf\u00e9-\u6771\u4eac-\U0001f600") as s:
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_accepted=1)


class ConnectRefusedVerbose(BrokerTestCase):
    """Well-formed CONNECTs the broker will not serve: CONNACK 0x01..0x03, then close."""

    def refused(self, b, data, code):
        with m.open_socket(b.port) as s:
            s.sendall(data)
            m.expect_connack(s, code)
            m.expect_eof(s, what=f"the server to close after CONNACK 0x{code:02x}")
        self.assert_serves(b)

    def test_level_5_accepted_with_a_5_0_connack(self):
        # MQTT 5.0 is spoken (tests/integration/test_mqtt5_connect.py has the details).
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(LEVEL_5_CONNECT)
            got = m.read_packet(s)
            self.assertEqual(got.raw[0], 0x20)
            self.assertEqual(got.raw[2:4], b"\x00\x00")  # session present 0, Success
        self.assert_counters(b.stop(), connect_unsupported_protocol=0, connect_accepted=1)

    def test_level_6_refused_0x01_then_eof_MQTT_3_1_2_2(self):
        b = self.start_broker()
        self.refused(b, m.connect("c6", level=6), 0x01)
        self.assert_counters(b.stop(), connect_unsupported_protocol=1, connect_accepted=1)

    def test_level_255_refused_0x01_then_eof_MQTT_3_1_2_2(self):
        b = self.start_broker()
        self.refused(b, m.connect("cff", level=255), 0x01)
        self.assert_counters(b.stop(), connect_unsupported_protocol=1, connect_accepted=1)

    def test_mqisdp_level_4_refused_0x01_then_eof_MQTT_3_1_2_2(self):
        b = self.start_broker()
        self.refused(b, m.connect("c", proto_name="MQIsdp", level=4), 0x01)
        self.assert_counters(b.stop(), connect_unsupported_protocol=1, connect_accepted=1)

    def test_mqtt_name_level_3_refused_0x01_then_eof_MQTT_3_1_2_2(self):
        b = self.start_broker()
        self.refused(b, m.connect("c", proto_name="MQTT", level=3), 0x01)
        self.assert_counters(b.stop(), connect_unsupported_protocol=1, connect_accepted=1)

    def test_empty_client_id_clean_0_refused_0x02_MQTT_3_1_3_8(self):
        b = self.start_broker()
        self.refused(b, m.connect("", clean=False), 0x02)
        self.assert_counters(b.stop(), connect_client_id_empty_persistent=1,
                             connect_accepted=1)

    def test_mqtt_31_empty_client_id_refused_0x02(self):
        b = self.start_broker()
        self.refused(b, m.connect("", level=3), 0x02)
        self.assert_counters(b.stop(), connect_client_id_empty_mqtt31=1, connect_accepted=1)

    def test_mqtt_31_client_id_of_24_chars_refused_0x02(self):
        b = self.start_broker()
        self.refused(b, m.connect("y" * 24, level=3), 0x02)
        self.assert_counters(b.stop(), connect_client_id_too_long=1, connect_accepted=1)

    def test_client_id_over_max_client_id_length_refused_0x02(self):
        b = self.start_broker("--max-client-id-length", "8")
        self.refused(b, m.connect("123456789"), 0x02)
        with m.connect_client(b.port, "12345678") as s:
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_client_id_too_long=1, connect_accepted=2)

    def test_default_max_client_id_length_is_256(self):
        b = self.start_broker()
        with m.connect_client(b.port, "z" * 256) as s:
            m.disconnect(s)
        self.refused(b, m.connect("z" * 257), 0x02)
        self.assert_counters(b.stop(), connect_client_id_too_long=1, connect_accepted=2)

    def test_client_id_without_allowed_prefix_refused_0x02(self):
        b = self.start_broker("--client-id-prefixes", "a-,b-")
        for client_id in ("a-1", "b-2", "a-"):
            with m.connect_client(b.port, client_id) as s:
                m.disconnect(s)
        for client_id in ("c-1", "a", "xa-1", "A-1"):
            with m.open_socket(b.port) as s:
                s.sendall(m.connect(client_id))
                m.expect_connack(s, 0x02)
                m.expect_eof(s)
            self.assert_serves(b, client_id=f"b-ok{b.health_checks}")
        self.assert_counters(b.stop(), connect_client_id_not_allowed=4, connect_accepted=7)

    def test_connection_limit_refused_0x03_then_slot_reused(self):
        b = self.start_broker("--max-connections", "2")
        refusals = 0
        c1 = m.connect_client(b.port, "m1")
        c2 = m.connect_client(b.port, "m2")
        with m.open_socket(b.port) as s:
            s.sendall(m.connect("m3"))
            m.expect_connack(s, 0x03)
            m.expect_eof(s)
        refusals += 1
        m.ping(c1)
        m.ping(c2)  # the refusal did not disturb the connected clients
        m.disconnect(c1)  # clean disconnect frees a slot
        c4, n = connect_when_slot_free(b.port, "m4")
        refusals += n
        with m.open_socket(b.port) as s:  # full again
            s.sendall(m.connect("m5"))
            m.expect_connack(s, 0x03)
            m.expect_eof(s)
        refusals += 1
        c2.close()  # an abrupt close frees a slot too
        c6, n = connect_when_slot_free(b.port, "m6")
        refusals += n
        m.ping(c4)
        m.ping(c6)
        m.disconnect(c4)
        m.disconnect(c6)
        _, n = connect_when_slot_free(b.port, "m7", then_disconnect=True)
        refusals += n
        self.assert_counters(b.stop(), connect_connection_limit=refusals, connect_accepted=5)

    def test_connection_limit_exact_under_concurrent_connects_across_shards(self):
        limit, n = 5, 24
        b = self.start_broker("--max-connections", str(limit))
        socks = [m.open_socket(b.port) for _ in range(n)]
        try:
            for i, s in enumerate(socks):  # all CONNECTs in flight at once
                s.sendall(m.connect(f"race-{i}"))
            codes = []
            for s in socks:
                got = m.read_packet(s)
                self.assertEqual((got.raw[:3], len(got.raw)), (b"\x20\x02\x00", 4),
                                 f"not a CONNACK: {got.raw!r}")
                codes.append(got.raw[3])
            self.assertEqual(sorted(set(codes)), [0x00, 0x03], f"return codes {codes}")
            self.assertEqual(codes.count(0x00), limit,
                             f"{codes.count(0x00)} accepted with --max-connections {limit}")
            for s, code in zip(socks, codes):
                if code == 0x03:
                    m.expect_eof(s)
                else:
                    m.ping(s)
        finally:
            for s in socks:
                s.close()
        self.assert_counters(b.stop(), connect_accepted=limit,
                             connect_connection_limit=n - limit, connections_accepted=n)

    def test_max_client_id_length_counts_utf8_bytes(self):
        b = self.start_broker("--max-client-id-length", "4")
        with m.connect_client(b.port, "\u00e9\u00e9") as s:  # 2 characters, 4 bytes
            m.disconnect(s)
        self.refused(b, m.connect("\u00e9\u00e9a"), 0x02)  # 3 characters, 5 bytes
        self.assert_counters(b.stop(), connect_client_id_too_long=1, connect_accepted=2)


def connect_when_slot_free(port, client_id, timeout=2.0, then_disconnect=False):
    """Connects, retrying while the broker refuses for the connection limit (it may free a slot
    a moment after closing). Returns (socket, refusals seen). A refusal under the silent policy is
    a close without bytes, which is retried too."""
    deadline = time.monotonic() + timeout
    refusals = 0
    while True:
        s = m.open_socket(port)
        s.sendall(m.connect(client_id))
        try:
            m.expect_connack(s, 0x00)
            if then_disconnect:
                m.disconnect(s)
            return s, refusals
        except m.ProtocolError as e:
            s.close()
            refusals += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"no slot freed within {timeout}s for {client_id!r}: "
                                     f"{e}") from None
            time.sleep(0.05)


# Malformed CONNECTs: closed with no CONNACK, counted as connect_malformed.
# (name, bytes). The name ends with the rule the packet breaks.
MALFORMED_CONNECTS = [
    ("wrong_protocol_name_MQTT_3_1_2_1", m.connect("c", proto_name="MQTX")),
    ("lowercase_protocol_name_MQTT_3_1_2_1", m.connect("c", proto_name="mqtt")),
    ("mqisdp_name_wrong_case_MQTT_3_1_2_1", m.connect("c", proto_name="MQISDP", level=3)),
    ("reserved_flag_MQTT_3_1_2_3", m.connect("c", flags=0x03)),
    ("reserved_flag_alone_MQTT_3_1_2_3", m.connect("c", flags=0x01)),
    ("user_name_flag_without_user_name_MQTT_3_1_2_19", m.connect("c", flags=0x82)),
    ("password_flag_without_password_MQTT_3_1_2_21",
     m.connect("c", flags=0xC2, username="u")),
    ("password_flag_without_user_name_flag_MQTT_3_1_2_22",
     m.connect("c", flags=0x42, password=b"pw")),
    ("will_flag_without_will_topic_MQTT_3_1_2_9", m.connect("c", flags=0x06)),
    ("will_qos_without_will_flag_MQTT_3_1_2_13", m.connect("c", flags=0x0A)),
    ("will_qos_2_without_will_flag_MQTT_3_1_2_13", m.connect("c", flags=0x12)),
    ("will_retain_without_will_flag_MQTT_3_1_2_15", m.connect("c", flags=0x22)),
    ("will_qos_3_MQTT_3_1_2_14", m.connect("c", will_topic="w", will_qos=3)),
    ("missing_client_id_MQTT_3_1_3_3", m.connect(payload=b"")),
    ("truncated_client_id_MQTT_1_5", m.connect(payload=b"\x00\x0aabc")),
    ("truncated_before_keepalive_MQTT_1_5", m.packet(0x10, m.mqtt_string("MQTT") + b"\x04\x02")),
    ("truncated_protocol_name_MQTT_1_5", m.packet(0x10, b"\x00\x04MQ")),
    ("empty_body_MQTT_1_5", m.packet(0x10, b"")),
    ("surplus_byte_after_payload_MQTT_1_5", m.connect("c", extra=b"\x00")),
    ("surplus_bytes_after_password_MQTT_1_5",
     m.connect("c", username="u", password=b"p", extra=b"junk")),
    ("invalid_utf8_client_id_MQTT_1_5_3_1", m.connect(b"\xc3\x28")),
    ("overlong_utf8_client_id_MQTT_1_5_3_1", m.connect(b"a\xc0\xafb")),
    ("surrogate_in_client_id_MQTT_1_5_3_1", m.connect(b"\xed\xa0\x80")),
    ("truncated_utf8_sequence_in_client_id_MQTT_1_5_3_1", m.connect(b"ab\xe6\x9d")),
    ("invalid_utf8_user_name_MQTT_1_5_3_1", m.connect("c", username=b"\xff\xfe")),
    ("nul_in_client_id_MQTT_1_5_3_2", m.connect(b"a\x00b")),
    ("nul_in_user_name_MQTT_1_5_3_2", m.connect("c", username=b"u\x00")),
    ("will_topic_with_plus_wildcard_MQTT_3_1_3_10", m.connect("c", will_topic="a/+/b")),
    ("will_topic_with_hash_wildcard_MQTT_3_1_3_10", m.connect("c", will_topic="a/#")),
    ("empty_will_topic_MQTT_4_7_3_1", m.connect("c", will_topic="")),
    ("invalid_utf8_will_topic_MQTT_1_5_3_1", m.connect("c", will_topic=b"t\xc3")),
    ("connect_fixed_header_flags_not_zero_MQTT_2_2_2_1",
     bytes([0x11]) + m.connect("c")[1:]),
]

# First packets that are not a CONNECT (MQTT-3.1.0-1) or not even framed correctly: closed with
# no bytes. Which outcome counter they land in is not specified, so only the close is checked.
NOT_A_CONNECT = [
    ("pingreq_first_MQTT_3_1_0_1", m.PINGREQ),
    ("publish_first_MQTT_3_1_0_1", m.publish("t", b"x")),
    ("subscribe_first_MQTT_3_1_0_1", m.subscribe(1, [("t", 0)])),
    ("disconnect_first_MQTT_3_1_0_1", m.DISCONNECT),
    ("connack_first_MQTT_3_1_0_1", m.connack(0)),
    ("reserved_type_0_first_MQTT_2_2", b"\x00\x00"),
    ("reserved_type_15_first_MQTT_2_2", b"\xf0\x00"),
    ("remaining_length_over_4_bytes_MQTT_2_2_3", b"\x10\xff\xff\xff\xff\x01"),
]


class MalformedConnect(BrokerTestCase):
    """Malformed first packets: the connection is closed and not one byte is sent back."""

    def closed_without_connack(self, data, malformed):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            m.try_send(s, data)
            m.expect_eof(s, what="the server to close without CONNACK")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connections_accepted=2, connect_accepted=1,
                             connect_malformed=malformed, packet_too_large=None,
                             connect_packet_too_large=None)

    def test_three_malformed_connects_counted_connect_malformed_3(self):
        b = self.start_broker()
        for data in (m.connect("c", flags=0x03), m.connect(b"\xc3\x28"),
                     m.connect("c", extra=b"x")):
            with m.open_socket(b.port) as s:
                s.sendall(data)
                m.expect_eof(s)
            self.assert_serves(b)
        self.assert_counters(b.stop(), connect_malformed=3, connect_accepted=3,
                             connections_accepted=6)

    def test_second_connect_closed_without_reply_MQTT_3_1_0_2(self):
        b = self.start_broker()
        with m.connect_client(b.port, "twice") as s:
            s.sendall(m.connect("twice"))
            m.expect_eof(s, what="the server to close on a second CONNECT")
        with m.connect_client(b.port, "twice2") as s:
            s.sendall(m.connect("other", level=3))
            m.expect_eof(s, what="the server to close on a second CONNECT")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=3, connect_malformed=None)

    def test_connect_header_claiming_256_mib_closed_without_connack(self):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(b"\x10\xff\xff\xff\x7f" + m.connect("c")[2:])
            waited = m.expect_eof(s, timeout=3.0, what="the server to close a 256 MiB CONNECT")
        self.assertLess(waited, 2.0, "closed only after a timeout, not at the header")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=1, connect_packet_too_large=1)


def _closed_test(data, malformed):
    def test(self):
        self.closed_without_connack(data, malformed)
    return test


for _name, _data in MALFORMED_CONNECTS:
    setattr(MalformedConnect, f"test_{_name}_closed_without_connack", _closed_test(_data, 1))
for _name, _data in NOT_A_CONNECT:
    setattr(MalformedConnect, f"test_{_name}_closed_without_reply", _closed_test(_data, None))


class ConnectRefusedSilent(BrokerTestCase):
    """`--reject-policy silent`: every refusal is a close with no bytes; reasons still counted."""

    def silently_closed(self, b, data):
        with m.open_socket(b.port) as s:
            s.sendall(data)
            m.expect_eof(s, what="the server to close silently (no CONNACK)")
        self.assert_serves(b)

    def test_silent_unsupported_level_closed_without_connack(self):
        b = self.start_broker("--reject-policy", "silent")
        self.silently_closed(b, m.connect("c", level=7))
        self.silently_closed(b, m.connect("c", level=6))
        self.silently_closed(b, m.connect("c", proto_name="MQIsdp", level=4))
        self.assert_counters(b.stop(), connect_unsupported_protocol=3,
                             connect_closed_silent_policy=3, connect_accepted=3)

    def test_silent_client_id_refusals_closed_without_connack(self):
        b = self.start_broker("--reject-policy", "silent", "--max-client-id-length", "8")
        self.silently_closed(b, m.connect("", clean=False))
        self.silently_closed(b, m.connect("", level=3))
        self.silently_closed(b, m.connect("123456789"))
        self.silently_closed(b, m.connect("y" * 24, level=3))
        self.assert_counters(b.stop(), connect_client_id_empty_persistent=1,
                             connect_client_id_empty_mqtt31=1, connect_client_id_too_long=2,
                             connect_closed_silent_policy=4, connect_accepted=4)

    def test_silent_client_id_prefix_refusal_closed_without_connack(self):
        b = self.start_broker("--reject-policy", "silent", "--client-id-prefixes", "ok,p-")
        self.silently_closed(b, m.connect("q-1"))
        with m.connect_client(b.port, "p-1") as s:
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_client_id_not_allowed=1,
                             connect_closed_silent_policy=1, connect_accepted=2)

    def test_silent_connection_limit_closed_without_connack(self):
        b = self.start_broker("--reject-policy", "silent", "--max-connections", "1")
        holder = m.connect_client(b.port, "holder")
        with m.open_socket(b.port) as s:
            s.sendall(m.connect("late"))
            m.expect_eof(s, what="the server to close silently at the connection limit")
        m.ping(holder)
        m.disconnect(holder)
        _, retries = connect_when_slot_free(b.port, "after", then_disconnect=True)
        self.assert_counters(b.stop(), connect_connection_limit=1 + retries,
                             connect_closed_silent_policy=1 + retries, connect_accepted=2)

    def test_silent_still_accepts_good_clients_and_closes_malformed(self):
        b = self.start_broker("--reject-policy", "silent")
        with m.connect_client(b.port, "good") as s:
            m.ping(s)
            m.disconnect(s)
        with m.connect_client(b.port, "good31", level=3) as s:
            m.disconnect(s)
        self.silently_closed(b, m.connect("c", flags=0x03))
        self.assert_counters(b.stop(), connect_accepted=3, connect_malformed=1)
