"""MQTT 5.0 connections (OASIS MQTT 5.0 §3.1, §3.2, §3.14, §4.13) over raw sockets, paho-mqtt
(MQTTv5) and mosquitto_pub -V 5.

The accepting CONNACK carries the broker's limits; a refused 5.0 CONNECT gets a 5.0 CONNACK with
the reason's code and Reason String, then the close; a malformed one is closed without CONNACK;
the silent policy closes without CONNACK. After the CONNECT: inbound topic aliases, the broker's
Receive Maximum (0x93), DISCONNECT with a reason both ways, Server Keep Alive.
"""

import os
import select
import shutil
import struct
import subprocess
import tempfile
import time

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

import mqtt_raw as m
from broker import BrokerTestCase, is_mosquitto

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
CLIENT_TIMEOUT = 10.0

# Property identifiers (5.0 §2.2.2.2).
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
MAXIMUM_PACKET_SIZE = 0x27
SUBSCRIPTION_IDENTIFIER = 0x0B

BYTE, TWO, FOUR, VBI, STRING = "byte", "two", "four", "vbi", "string"
PROPERTY_TYPES = {
    SESSION_EXPIRY: FOUR, ASSIGNED_CLIENT_ID: STRING, SERVER_KEEP_ALIVE: TWO,
    AUTH_METHOD: STRING, RESPONSE_INFO: STRING, REASON_STRING: STRING, RECEIVE_MAXIMUM: TWO,
    TOPIC_ALIAS_MAXIMUM: TWO, TOPIC_ALIAS: TWO, MAXIMUM_QOS: BYTE, RETAIN_AVAILABLE: BYTE,
    MAXIMUM_PACKET_SIZE: FOUR, SUBSCRIPTION_IDENTIFIER: VBI, REQUEST_RESPONSE_INFO: BYTE,
}


def vbi(n):
    return m.remaining_length(n)


def prop(identifier, value):
    kind = PROPERTY_TYPES[identifier]
    if kind == BYTE:
        return bytes([identifier, value])
    if kind == TWO:
        return bytes([identifier]) + struct.pack("!H", value)
    if kind == FOUR:
        return bytes([identifier]) + struct.pack("!I", value)
    if kind == VBI:
        return bytes([identifier]) + vbi(value)
    return bytes([identifier]) + m.mqtt_string(value)


def props(*items):
    """A property block with its Property Length."""
    block = b"".join(items)
    return vbi(len(block)) + block


def connect5(client_id="c5", *, properties=b"", **fields):
    return m.connect(client_id, level=5, properties=props(properties) if isinstance(
        properties, bytes) else properties, **fields)


def publish5(topic, payload=b"", *, qos=0, packet_id=None, retain=False, properties=b""):
    flags = (qos << 1) | (0x01 if retain else 0)
    body = m.mqtt_string(topic)
    if qos > 0:
        body += struct.pack("!H", packet_id or 1)
    body += props(properties) + (payload.encode() if isinstance(payload, str) else payload)
    return m.packet(0x30 | flags, body)


def disconnect5(reason=0x00, properties=b""):
    return m.packet(0xE0, bytes([reason]) + props(properties))


def parse_properties(data):
    """{identifier: value} of a property block (without its length)."""
    out, i = {}, 0
    while i < len(data):
        identifier = data[i]
        i += 1
        kind = PROPERTY_TYPES[identifier]
        if kind == BYTE:
            out[identifier] = data[i]
            i += 1
        elif kind == TWO:
            out[identifier] = struct.unpack_from("!H", data, i)[0]
            i += 2
        elif kind == FOUR:
            out[identifier] = struct.unpack_from("!I", data, i)[0]
            i += 4
        elif kind == VBI:
            out[identifier], i = m.read_vbi(data, i)
        else:
            length = struct.unpack_from("!H", data, i)[0]
            out[identifier] = data[i + 2:i + 2 + length].decode()
            i += 2 + length
    return out


def read_connack5(sock):
    """(session_present, reason_code, properties) of the next packet, which must be CONNACK."""
    got = m.read_packet(sock)
    assert got.raw[0] == 0x20, got
    body = got.body
    length, i = m.read_vbi(body, 2)
    return body[0] & 0x01, body[1], parse_properties(body[i:i + length])


def read_disconnect5(sock):
    """(reason_code, properties) of the next packet, which must be DISCONNECT."""
    got = m.read_packet(sock)
    assert got.raw[0] == 0xE0, got
    body = got.body
    if not body:
        return 0x00, {}
    if len(body) == 1:
        return body[0], {}
    length, i = m.read_vbi(body, 1)
    return body[0], parse_properties(body[i:i + length])


def refusal_bytes(code, label):
    """The static 5.0 refusal CONNACK: reason code and the reason's label as Reason String."""
    reason_string = bytes([REASON_STRING]) + m.mqtt_string(label)
    return m.packet(0x20, bytes([0x00, code]) + vbi(len(reason_string)) + reason_string)


class Mqtt5TestCase(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq counters and limits")

    def assert_counters(self, counters, **expected):
        expected.setdefault("connect_accepted", None)  # checked where a test names it
        super().assert_counters(counters, **expected)

    def connect5(self, b, client_id="c5", **fields):
        sock = m.open_socket(b.port)
        sock.sendall(connect5(client_id, **fields))
        present, code, properties = read_connack5(sock)
        self.assertEqual(code, 0x00)
        return sock, present, properties


class AcceptingConnack(Mqtt5TestCase):
    def test_connack_carries_the_limits_5_0_3_2_2_3(self):
        b = self.start_broker("--max-packet-size", "4096")
        sock, present, properties = self.connect5(b)
        with sock:
            self.assertEqual(present, 0)
            self.assertEqual(properties[MAXIMUM_PACKET_SIZE], 4096)
            self.assertEqual(properties[TOPIC_ALIAS_MAXIMUM], 10)
            self.assertEqual(properties[RECEIVE_MAXIMUM], 1024)
            for absent in (MAXIMUM_QOS, RETAIN_AVAILABLE, SERVER_KEEP_ALIVE, ASSIGNED_CLIENT_ID,
                           RESPONSE_INFO):
                self.assertNotIn(absent, properties)
            m.ping(sock)
            sock.sendall(disconnect5())
            m.expect_eof(sock)
        self.assert_counters(b.stop(), connect_accepted=1, connect_accepted_mqtt5=1,
                             connect_accepted_mqtt311=0, client_disconnects=1)

    def test_configured_limits_in_connack(self):
        b = self.start_broker("--max-qos", "1", "--retain-available", "false",
                              "--max-topic-alias", "0", "--receive-maximum", "20")
        sock, _, properties = self.connect5(b)
        with sock:
            self.assertEqual(properties[MAXIMUM_QOS], 1)
            self.assertEqual(properties[RETAIN_AVAILABLE], 0)
            self.assertEqual(properties[RECEIVE_MAXIMUM], 20)
            self.assertNotIn(TOPIC_ALIAS_MAXIMUM, properties)

    def test_empty_client_id_assigned_even_with_clean_start_0_5_0_MQTT_3_1_3_7(self):
        b = self.start_broker()
        sock, _, properties = self.connect5(b, "", clean=False)
        with sock:
            self.assertTrue(properties[ASSIGNED_CLIENT_ID].startswith("ringmq-auto-"))
            m.ping(sock)
        # The client may come back with the id it was assigned.
        sock, present, properties = self.connect5(b, properties[ASSIGNED_CLIENT_ID],
                                                  clean=False)
        with sock:
            self.assertNotIn(ASSIGNED_CLIENT_ID, properties)

    def test_response_information_when_requested(self):
        b = self.start_broker("--response-information", "reply/")
        sock, _, properties = self.connect5(
            b, "asker", properties=prop(REQUEST_RESPONSE_INFO, 1))
        with sock:
            self.assertEqual(properties[RESPONSE_INFO], "reply/asker")
        sock, _, properties = self.connect5(b, "quiet")
        with sock:
            self.assertNotIn(RESPONSE_INFO, properties)

    def test_server_keep_alive_overrides_and_is_used_5_0_MQTT_3_2_2_21(self):
        b = self.start_broker("--max-keepalive", "1")
        sock, _, properties = self.connect5(b, keepalive=0)
        with sock:
            self.assertEqual(properties[SERVER_KEEP_ALIVE], 1)
            # Silent for 1.5 x 1 s: the broker says why and closes.
            start = time.monotonic()
            reason, _ = read_disconnect5(sock)
            self.assertEqual(reason, 0x8D)
            self.assertGreater(time.monotonic() - start, 1.0)
            m.expect_eof(sock)
        self.assert_counters(b.stop(), keepalive_timeout=1, disconnect_sent_keep_alive_timeout=1)

    def test_max_keepalive_refuses_mqtt_311_keepalive_above_it(self):
        b = self.start_broker("--max-keepalive", "30")
        with m.connect_client(b.port, "long", keepalive=60, expect=0x02) as s:
            m.expect_eof(s)
        with m.connect_client(b.port, "short", keepalive=30) as s:
            m.ping(s)
        self.assert_counters(b.stop(), connect_keepalive_too_long=1, connect_accepted=1)


class Refusals(Mqtt5TestCase):
    """Well-formed 5.0 CONNECTs the broker will not serve: 5.0 CONNACK, then the close."""

    def refused(self, b, data, code, label):
        with m.open_socket(b.port) as s:
            s.sendall(data)
            m.expect_packet(s, refusal_bytes(code, label), what=f"CONNACK 0x{code:02x}")
            m.expect_eof(s)
        self.assert_serves(b)

    def test_client_id_too_long_0x85(self):
        b = self.start_broker("--max-client-id-length", "5")
        self.refused(b, connect5("sixsix"), 0x85, "client_id_too_long")
        self.assert_counters(b.stop(), connect_client_id_too_long=1, connect_accepted=1)

    def test_connection_limit_0x97(self):
        b = self.start_broker("--max-connections", "1")
        with m.connect_client(b.port, "first"):
            self.refused_without_health(b, connect5("second"), 0x97, "connection_limit")
        self.assert_counters(b.stop(), connect_connection_limit=1, connect_accepted=1)

    def refused_without_health(self, b, data, code, label):
        with m.open_socket(b.port) as s:
            s.sendall(data)
            m.expect_packet(s, refusal_bytes(code, label), what=f"CONNACK 0x{code:02x}")
            m.expect_eof(s)

    def test_will_in_sys_0x87(self):
        b = self.start_broker()
        self.refused(b, will_connect5("w", "$SYS/x"), 0x87, "will_sys_topic")
        self.assert_counters(b.stop(), connect_will_sys_topic=1, connect_accepted=1)

    def test_will_qos_above_max_qos_0x9B_5_0_MQTT_3_2_2_12(self):
        b = self.start_broker("--max-qos", "1")
        self.refused(b, will_connect5("w", "will/t", qos=2), 0x9B, "will_qos_not_supported")
        self.assert_counters(b.stop(), connect_will_qos_not_supported=1, connect_accepted=1)

    def test_retained_will_without_retain_0x9A_5_0_MQTT_3_2_2_13(self):
        b = self.start_broker("--retain-available", "false")
        self.refused(b, will_connect5("w", "will/t", retain=True), 0x9A,
                     "will_retain_not_supported")
        self.assert_counters(b.stop(), connect_will_retain_not_supported=1, connect_accepted=1)

    def test_unknown_authentication_method_0x8C(self):
        b = self.start_broker()
        self.refused(b, connect5("a", properties=prop(AUTH_METHOD, "SCRAM-SHA-1")), 0x8C,
                     "bad_authentication_method")
        self.assert_counters(b.stop(), connect_bad_authentication_method=1, connect_accepted=1)

    def test_unsupported_level_still_gets_3_1_1_connack_0x01(self):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(m.connect("c6", level=6))
            m.expect_connack(s, 0x01)
            m.expect_eof(s)
        self.assert_counters(b.stop(), connect_unsupported_protocol=1)

    def test_malformed_5_0_connect_closed_without_connack(self):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(connect5("bad", properties=b"\x7f\x00"))  # property 0x7F does not exist
            m.expect_eof(s)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_malformed=1, connect_accepted=1)

    def test_silent_policy_closes_without_connack(self):
        b = self.start_broker("--reject-policy", "silent", "--max-client-id-length", "5")
        with m.open_socket(b.port) as s:
            s.sendall(connect5("sixsix"))
            m.expect_eof(s)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_client_id_too_long=1,
                             connect_closed_silent_policy=1, connect_accepted=1)


def will_connect5(client_id, topic, *, qos=0, retain=False, message=b"gone"):
    """A 5.0 CONNECT with a will (empty will properties)."""
    flags = 0x02 | 0x04 | (qos << 3) | (0x20 if retain else 0)
    header = m.mqtt_string("MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + b"\x00"
    payload = m.mqtt_string(client_id) + b"\x00" + m.mqtt_string(topic) + m.mqtt_string(message)
    return m.packet(0x10, header + payload)


class BadCredentials(Mqtt5TestCase):
    def test_bad_password_0x86(self):
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-mqtt5-")
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "passwd")
        proc = subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", path, "alice", "alice-pw"],
                              capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        b = self.start_broker("--password-file", path, "--allow-anonymous", "false")
        with m.open_socket(b.port) as s:
            s.sendall(connect5("a", username="alice", password="wrong"))
            m.expect_packet(s, refusal_bytes(0x86, "bad_credentials"))
            m.expect_eof(s)
        sock, _, _ = self.connect5(b, "a", username="alice", password="alice-pw")
        sock.close()
        proc = subprocess.run([MOSQUITTO_PUB, "-V", "5", "-h", "127.0.0.1", "-p", str(b.port),
                               "-u", "alice", "-P", "nope", "-t", "t", "-m", "x"],
                              capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("bad user name or password", proc.stderr.lower())
        self.assert_counters(b.stop(), connect_bad_credentials=2, connect_accepted=1)


class AfterConnect(Mqtt5TestCase):
    def subscriber(self, b, topic_filter, client_id="sub311"):
        sock = m.connect_client(b.port, client_id)
        sock.sendall(m.subscribe(1, [(topic_filter, 0)]))
        m.expect_packet(sock, m.suback(1, [0]))
        return sock

    def expect_publish(self, sock, topic, payload):
        m.expect_packet(sock, m.publish(topic, payload), what=f"PUBLISH {topic}")

    def test_topic_alias_inbound_end_to_end_5_0_3_3_2_3_4(self):
        b = self.start_broker()
        with self.subscriber(b, "a/#") as sub:
            pub, _, _ = self.connect5(b, "pub5")
            with pub:
                pub.sendall(publish5("a/b", "1", properties=prop(TOPIC_ALIAS, 1)))
                pub.sendall(publish5("", "2", properties=prop(TOPIC_ALIAS, 1)))
                pub.sendall(publish5("a/c", "3", properties=prop(TOPIC_ALIAS, 1)))  # remapped
                pub.sendall(publish5("", "4", properties=prop(TOPIC_ALIAS, 1)))
                for topic, payload in (("a/b", "1"), ("a/b", "2"), ("a/c", "3"), ("a/c", "4")):
                    self.expect_publish(sub, topic, payload)
                # Alias 11 is above the Topic Alias Maximum (10): DISCONNECT 0x94.
                pub.sendall(publish5("a/d", "5", properties=prop(TOPIC_ALIAS, 11)))
                self.assertEqual(read_disconnect5(pub)[0], 0x94)
                m.expect_eof(pub)
        self.assert_counters(b.stop(), topic_alias_set=2, topic_alias_used=2,
                             disconnect_sent_topic_alias_invalid=1, protocol_violations=1)

    def test_unknown_alias_protocol_error_0x82(self):
        b = self.start_broker()
        pub, _, _ = self.connect5(b, "pub5")
        with pub:
            pub.sendall(publish5("", "x", properties=prop(TOPIC_ALIAS, 3)))
            self.assertEqual(read_disconnect5(pub)[0], 0x82)
            m.expect_eof(pub)
        self.assert_counters(b.stop(), disconnect_sent_protocol_error=1, protocol_violations=1)

    def test_subscription_identifier_from_client_0x82_5_0_MQTT_3_3_4_6(self):
        b = self.start_broker()
        pub, _, _ = self.connect5(b, "pub5")
        with pub:
            pub.sendall(publish5("t", "x", properties=prop(SUBSCRIPTION_IDENTIFIER, 7)))
            self.assertEqual(read_disconnect5(pub)[0], 0x82)
            m.expect_eof(pub)

    def test_receive_maximum_exceeded_0x93(self):
        b = self.start_broker("--receive-maximum", "2")
        pub, _, properties = self.connect5(b, "pub5")
        self.assertEqual(properties[RECEIVE_MAXIMUM], 2)
        with pub:
            # Nobody subscribes to "t": PUBREC 0x10 No matching subscribers (5.0:3.5.2.1).
            def pubrec_no_match(packet_id):
                return bytes([0x50, 0x03]) + struct.pack("!H", packet_id) + b"\x10"
            for packet_id in (1, 2):
                pub.sendall(publish5("t", "x", qos=2, packet_id=packet_id))
                m.expect_packet(pub, pubrec_no_match(packet_id))
            pub.sendall(publish5("t", "x", qos=2, packet_id=1))  # a repeat does not count
            m.expect_packet(pub, m.ack(m.PUBREC, 1))
            pub.sendall(m.pubrel(1))  # frees one
            m.expect_packet(pub, m.ack(m.PUBCOMP, 1))
            pub.sendall(publish5("t", "x", qos=2, packet_id=3))
            m.expect_packet(pub, pubrec_no_match(3))
            pub.sendall(publish5("t", "x", qos=2, packet_id=4))  # 2, 3 and 4 pending
            self.assertEqual(read_disconnect5(pub)[0], 0x93)
            m.expect_eof(pub)
        self.assert_counters(b.stop(), receive_maximum_exceeded=1,
                             disconnect_sent_receive_maximum_exceeded=1, protocol_violations=1,
                             publish_duplicates=1)

    def test_qos_above_max_qos_0x9B_and_retain_0x9A(self):
        b = self.start_broker("--max-qos", "1", "--retain-available", "false")
        pub, _, _ = self.connect5(b, "q")
        with pub:
            pub.sendall(publish5("t", "x", qos=2))
            self.assertEqual(read_disconnect5(pub)[0], 0x9B)
            m.expect_eof(pub)
        pub, _, _ = self.connect5(b, "r")
        with pub:
            pub.sendall(publish5("t", "x", retain=True))
            self.assertEqual(read_disconnect5(pub)[0], 0x9A)
            m.expect_eof(pub)
        # A 3.1.1 client cannot be told: it is closed.
        with m.connect_client(b.port, "old") as s:
            s.sendall(m.publish("t", "x", qos=2))
            m.expect_eof(s)
        self.assert_counters(b.stop(), disconnect_sent_qos_not_supported=1,
                             disconnect_sent_retain_not_supported=1, protocol_violations=3)

    def test_packet_too_large_0x95(self):
        b = self.start_broker("--max-packet-size", "128")
        pub, _, _ = self.connect5(b, "big")
        with pub:
            pub.sendall(publish5("t", b"x" * 200))
            self.assertEqual(read_disconnect5(pub)[0], 0x95)
            m.expect_eof(pub)
        self.assert_counters(b.stop(), packet_too_large=1, disconnect_sent_packet_too_large=1)

    def test_malformed_after_connect_disconnect_0x81_5_0_MQTT_4_13_1_1(self):
        b = self.start_broker()
        pub, _, _ = self.connect5(b, "m")
        with pub:
            pub.sendall(m.packet(0x30, m.mqtt_string("t") + b"\x05\x7f"))  # truncated props
            self.assertEqual(read_disconnect5(pub)[0], 0x81)
            m.expect_eof(pub)
        self.assert_counters(b.stop(), protocol_violations=1, disconnect_sent_malformed_packet=1)

    def test_disconnect_0x04_publishes_the_will(self):
        b = self.start_broker()
        with self.subscriber(b, "will/#") as sub:
            with m.open_socket(b.port) as s:
                s.sendall(will_connect5("w1", "will/one", message=b"bye"))
                self.assertEqual(read_connack5(s)[1], 0x00)
                s.sendall(disconnect5(0x04))
                m.expect_eof(s)
            self.expect_publish(sub, "will/one", "bye")
            with m.open_socket(b.port) as s:
                s.sendall(will_connect5("w2", "will/two", message=b"no"))
                self.assertEqual(read_connack5(s)[1], 0x00)
                s.sendall(disconnect5(0x00))
                m.expect_eof(s)
            m.expect_silence(sub, 0.5)
        self.assert_counters(b.stop(), wills_published=1, client_disconnects=2)

    def test_disconnect_session_expiry_after_zero_is_protocol_error(self):
        b = self.start_broker()
        with m.open_socket(b.port) as s:
            s.sendall(connect5("e"))
            self.assertEqual(read_connack5(s)[1], 0x00)
            s.sendall(disconnect5(0x00, prop(SESSION_EXPIRY, 60)))
            self.assertEqual(read_disconnect5(s)[0], 0x82)
            m.expect_eof(s)
        self.assert_counters(b.stop(), protocol_violations=1, client_disconnects=1)

    def test_session_taken_over_0x8E(self):
        b = self.start_broker()
        first, _, _ = self.connect5(b, "same")
        with first:
            second, _, _ = self.connect5(b, "same")
            with second:
                self.assertEqual(read_disconnect5(first)[0], 0x8E)
                m.expect_eof(first)
                m.ping(second)
        self.assert_counters(b.stop(), session_takeovers=1, disconnect_sent_session_taken_over=1)

    def test_slow_consumer_gets_0x97_under_the_disconnect_policy(self):
        # Issue 13: a subscriber closed for its full queue (queue_full_policy = disconnect) is
        # told why at 5.0: DISCONNECT 0x97 Quota exceeded (5.0:3.14.2.1), after what its window
        # took.
        b = self.start_broker("--max-inflight", "2", "--max-queued-messages", "3",
                              "--queue-full-policy", "disconnect")
        slow, _, _ = self.connect5(b, "slow5")
        with slow:
            # SUBSCRIBE qfd/t at QoS 1: packet id 1, no properties, options 0x01.
            slow.sendall(m.packet(0x82, struct.pack("!H", 1) + b"\x00" + m.mqtt_string("qfd/t")
                                  + b"\x01"))
            self.assertEqual(m.read_packet(slow).raw[0], 0x90)
            with m.Client(b.port, "qfd-pub") as pub:
                # 2 in flight (never acknowledged) + 3 queued fit; the 6th finds the queue full.
                for i in range(6):
                    pub.publish("qfd/t", str(i).encode(), qos=1)
                types = []
                while True:
                    got = m.read_packet(slow)
                    types.append(got.raw[0] & 0xF0)
                    if got.raw[0] == 0xE0:
                        self.assertEqual(got.body[:1], b"\x97")
                        break
                self.assertEqual(types, [0x30, 0x30, 0xE0], "its window, then DISCONNECT")
                m.expect_eof(slow)
                pub.disconnect()
        self.assert_counters(b.stop(), slow_consumer_disconnects=1, disconnect_sent_other=1,
                             dropped_queue_full=1)

    def test_shutdown_sends_0x8B(self):
        b = self.start_broker()
        sock, _, _ = self.connect5(b, "stay")
        with sock:
            old = m.connect_client(b.port, "old311")
            with old:
                counters = b.stop()
                self.assertEqual(read_disconnect5(sock)[0], 0x8B)
                m.expect_eof(old)  # 3.1.1: just the close
        self.assert_counters(counters, disconnect_sent_server_shutting_down=1)


class Clients(Mqtt5TestCase):
    def test_paho_mqttv5_connect_and_publish_with_topic_alias(self):
        # Deliveries to 5.0 subscribers are the deliver5 work; a 3.1.1 subscriber receives.
        b = self.start_broker()
        sub = m.connect_client(b.port, "sub311")
        sub.sendall(m.subscribe(1, [("p/#", 0)]))
        m.expect_packet(sub, m.suback(1, [0]))
        connacks, published = [], []
        client = paho.Client(client_id="paho5", protocol=paho.MQTTv5)
        client.on_connect = lambda c, u, flags, rc, properties: connacks.append(
            (rc, properties))
        client.on_publish = lambda c, u, mid: published.append(mid)
        client.connect(m.HOST, b.port, keepalive=30)
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while not connacks and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        self.assertTrue(connacks, "no CONNACK")
        rc, properties = connacks[0]
        self.assertEqual(rc, 0)
        self.assertEqual(properties.TopicAliasMaximum, 10)
        self.assertEqual(properties.ReceiveMaximum, 1024)
        publish_properties = Properties(PacketTypes.PUBLISH)
        publish_properties.TopicAlias = 2
        client.publish("p/x", b"one", qos=1, properties=publish_properties)
        client.publish("", b"two", qos=1, properties=publish_properties)
        while len(published) < 2 and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        self.assertEqual(len(published), 2)
        client.disconnect()
        with sub:
            m.expect_packet(sub, m.publish("p/x", "one"))
            m.expect_packet(sub, m.publish("p/x", "two"))
        self.assert_counters(b.stop(), connect_accepted=2, connect_accepted_mqtt5=1,
                             topic_alias_set=1, topic_alias_used=1)

    def test_mosquitto_pub_v5(self):
        b = self.start_broker()
        proc = subprocess.run([MOSQUITTO_PUB, "-V", "5", "-h", "127.0.0.1", "-p", str(b.port),
                               "-t", "t", "-m", "x", "-q", "1"],
                              capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assert_counters(b.stop(), connect_accepted_mqtt5=1)


class LingeringClose(Mqtt5TestCase):
    """A server-sent DISCONNECT reaches a client that is still sending (5.0:MQTT-4.13.1-1): the
    broker shuts down its sending side and reads on until the client's EOF, 256 KiB or 2 s
    (kLingerMs, kLingerMaxBytes in src/net/connection.h) instead of closing with unread input,
    which resets the connection (Paho's test_flow_control2)."""

    def provoke_0x93(self, b):
        pub, _, properties = self.connect5(b, "linger")
        self.assertEqual(properties[RECEIVE_MAXIMUM], 2)
        # Three QoS 2 PUBLISHes in one write: the third exceeds the Receive Maximum.
        pub.sendall(b"".join(publish5("t", "x", qos=2, packet_id=i) for i in (1, 2, 3)))
        # The DISCONNECT is there (not read yet): the broker has decided and sent it.
        readable, _, _ = select.select([pub], [], [], 5)
        self.assertTrue(readable, "no DISCONNECT within 5 s")
        return pub

    def test_client_still_sending_reads_the_disconnect_5_0_MQTT_4_13_1_1(self):
        b = self.start_broker("--receive-maximum", "2")
        pub = self.provoke_0x93(b)
        with pub:
            # Like Paho's client: PUBRELs go on after the violation. Without the linger the
            # broker's close with unread input resets the connection and a send fails (EPIPE or
            # ECONNRESET) before the client reads the DISCONNECT.
            for packet_id in range(1, 11):
                pub.sendall(m.pubrel(packet_id))
                time.sleep(0.03)
            got = m.read_packet(pub)  # PUBRECs 1 and 2 (no subscribers: reason 0x10) first
            while got.raw[0] == 0x50:
                got = m.read_packet(pub)
            self.assertEqual(got.raw[0], 0xE0)
            self.assertEqual(got.body[0], 0x93)
            m.expect_eof(pub)  # the broker's SHUT_WR
        counters = b.stop()
        # The client's close normally ends the linger (no reset); on a very slow machine the
        # 2 s bound may come first.
        self.assert_counters(counters, receive_maximum_exceeded=1,
                             disconnect_sent_receive_maximum_exceeded=1, protocol_violations=1,
                             closes_lingered=1, linger_discarded_bytes=None,
                             closes_linger_reset=None)
        self.assert_counters_at_least(counters, linger_discarded_bytes=4)

    def test_linger_ends_at_256_KiB(self):
        b = self.start_broker("--receive-maximum", "2")
        pub = self.provoke_0x93(b)
        with pub:
            sent = 0
            chunk = b"\x00" * 16384
            deadline = time.monotonic() + 5
            try:
                while time.monotonic() < deadline:
                    pub.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the broker closed after 256 KiB: reset
            self.assertGreaterEqual(sent, 256 * 1024)
            # Also when the client had filled the broker's receive window before the close: the
            # close is a reset, not an orderly close that leaves the send blocked on a zero
            # window (it was, in about 1 run in 30 under load, before SO_LINGER 0).
            self.assertLess(time.monotonic(), deadline, "the broker read more than 5 s")
        counters = b.stop()
        self.assert_counters(counters, receive_maximum_exceeded=1,
                             disconnect_sent_receive_maximum_exceeded=1, protocol_violations=1,
                             closes_lingered=1, linger_discarded_bytes=None,
                             closes_linger_reset=1)
        self.assert_counters_at_least(counters, linger_discarded_bytes=256 * 1024)

    def test_linger_ends_after_2_s(self):
        b = self.start_broker("--receive-maximum", "2")
        pub = self.provoke_0x93(b)
        with pub:
            start = time.monotonic()
            got = m.read_packet(pub)
            while got.raw[0] == 0x50:
                got = m.read_packet(pub)
            self.assertEqual(got.body[0], 0x93)
            m.expect_eof(pub)
            # The client neither closes nor sends: the broker closes after kLingerMs (2 s); a
            # send after that close is answered with a reset, which makes a later send fail.
            closed_after = None
            while time.monotonic() - start < 6:
                try:
                    pub.sendall(b"\x00")
                except OSError:
                    closed_after = time.monotonic() - start
                    break
                time.sleep(0.1)
            self.assertIsNotNone(closed_after, "still open 6 s after the DISCONNECT")
            self.assertGreaterEqual(closed_after, 1.5)
        self.assert_counters(b.stop(), receive_maximum_exceeded=1,
                             disconnect_sent_receive_maximum_exceeded=1, protocol_violations=1,
                             closes_lingered=1, linger_discarded_bytes=None,
                             closes_linger_reset=1)
