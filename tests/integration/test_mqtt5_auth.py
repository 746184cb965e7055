"""MQTT 5 enhanced authentication (5.0 §4.12) with SCRAM-SHA-256 (docs/auth.md, "SCRAM-SHA-256").

The client is written here on raw sockets with Python's hashlib/hmac (RFC 5802): paho-mqtt 1.6
cannot answer an AUTH packet, so it is used only where no AUTH is exchanged (an unknown method).
Users are written by `ringmq passwd --scram`; the same entry also serves a 3.1.1 password login.
"""

import base64
import hashlib
import hmac
import os
import struct
import tempfile
import time

import mqtt_raw as m
from broker import BrokerTestCase, binary, is_mosquitto
from test_auth import run

METHOD = "SCRAM-SHA-256"
AUTH_T = 15
# Property identifiers (5.0 §2.2.2.2) and how to skip the ones a CONNACK may carry.
AUTH_METHOD, AUTH_DATA = 0x15, 0x16
FIXED_SIZES = {0x01: 1, 0x02: 4, 0x11: 4, 0x13: 2, 0x17: 1, 0x18: 4, 0x19: 1, 0x21: 2,
               0x22: 2, 0x23: 2, 0x24: 1, 0x25: 1, 0x27: 4, 0x28: 1, 0x29: 1, 0x2A: 1}


def vbi(n):
    return m.remaining_length(n)


def auth_properties(method, data=None):
    props = bytes([AUTH_METHOD]) + m.mqtt_string(method)
    if data is not None:
        props += bytes([AUTH_DATA]) + m.mqtt_string(data)
    return vbi(len(props)) + props


def parse_properties(body):
    """{id: value} of a property block starting at body[0] (its Variable Byte Integer)."""
    length, pos = m.read_vbi(body, 0)
    end = pos + length
    props = {}
    while pos < end:
        pid = body[pos]
        pos += 1
        if pid in FIXED_SIZES:
            props[pid] = body[pos:pos + FIXED_SIZES[pid]]
            pos += FIXED_SIZES[pid]
        elif pid == 0x26:  # user property: two strings
            for _ in range(2):
                (n,) = struct.unpack("!H", body[pos:pos + 2])
                pos += 2 + n
        else:  # strings and binary data
            (n,) = struct.unpack("!H", body[pos:pos + 2])
            props[pid] = body[pos + 2:pos + 2 + n]
            pos += 2 + n
    return props


def auth_packet(reason, method, data=None):
    return m.packet(0xF0, bytes([reason]) + auth_properties(method, data))


def read_connack5(sock):
    """(reason code, properties) of a 5.0 CONNACK."""
    p = m.read_packet(sock)
    if p.type != m.CONNACK:
        raise AssertionError(f"expected a CONNACK, got {p!r}")
    return p.body[1], parse_properties(p.body[2:])


class ScramClient:
    """The client side of RFC 5802 with SHA-256 (RFC 7677)."""

    def __init__(self, user, password, nonce=None):
        self.user, self.password = user, password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()

    def first(self):
        name = self.user.replace("=", "=3D").replace(",", "=2C")
        self.bare = f"n={name},r={self.nonce}"
        return "n,," + self.bare

    def final(self, server_first):
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), server_first
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(),
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.bare},{server_first},{without_proof}".encode()
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        signature = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def server_final_ok(self, server_final):
        expected = hmac.new(self.server_key, self.auth_message, hashlib.sha256).digest()
        return server_final == "v=" + base64.b64encode(expected).decode()


class Mqtt5AuthTestCase(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq SCRAM-SHA-256")
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-scram-")
        self.addCleanup(tmp.cleanup)
        self.passwd = os.path.join(tmp.name, "passwd")
        for args in (["-c", "--scram", "-b", self.passwd, "eve", "eve-pw"],
                     ["-b", self.passwd, "alice", "alice-pw"]):  # alice: a $7$ entry
            proc = run([binary(), "passwd", *args])
            self.assertEqual(proc.returncode, 0, proc.stderr)

    def broker(self, *flags, threads=1):
        return self.start_broker("--password-file", self.passwd, "--allow-anonymous", "false",
                                 *flags, threads=threads)

    def start_exchange(self, port, client, client_id="c", method=METHOD, **fields):
        """Sends the CONNECT with client-first; returns the socket."""
        sock = m.open_socket(port)
        sock.sendall(m.connect(client_id, level=5,
                               properties=auth_properties(method, client.first().encode()),
                               **fields))
        return sock

    def expect_continue(self, sock):
        p = m.read_packet(sock)
        self.assertEqual(p.type, AUTH_T, p)
        self.assertEqual(p.body[0], 0x18, p)  # 5.0:MQTT-4.12.0-2
        props = parse_properties(p.body[1:])
        self.assertEqual(props[AUTH_METHOD], METHOD.encode())  # 5.0:MQTT-4.12.0-5
        return props[AUTH_DATA].decode()

    def scram_login(self, port, user, password, client_id="c"):
        """A full exchange; returns (CONNACK reason code, properties, client, socket)."""
        client = ScramClient(user, password)
        sock = self.start_exchange(port, client, client_id)
        server_first = self.expect_continue(sock)
        sock.sendall(auth_packet(0x18, METHOD, client.final(server_first).encode()))
        reason, props = read_connack5(sock)
        return reason, props, client, sock


class Scram(Mqtt5AuthTestCase):
    def test_scram_login_succeeds_and_the_server_proves_itself(self):
        b = self.broker()
        reason, props, client, sock = self.scram_login(b.port, "eve", "eve-pw")
        with sock:
            self.assertEqual(reason, 0x00)
            self.assertEqual(props[AUTH_METHOD], METHOD.encode())
            self.assertTrue(client.server_final_ok(props[AUTH_DATA].decode()), props)
            m.ping(sock)
            m.send(sock, m.DISCONNECT)
            m.expect_eof(sock)
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=1)
        self.assertEqual(counters["auth_scram_success"], 1)

    def test_every_client_id_home_shard_runs_the_exchange(self):
        # With 2 shards about half of these ids live on the shard that did not accept the
        # socket: the CONNECT is handed off and the exchange runs at the home shard.
        b = self.broker(threads=2)
        for i in range(16):
            reason, props, client, sock = self.scram_login(b.port, "eve", "eve-pw", f"id{i}")
            with sock:
                self.assertEqual(reason, 0x00, f"id{i}")
                self.assertTrue(client.server_final_ok(props[AUTH_DATA].decode()))
                m.ping(sock)
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=16)
        self.assertEqual(counters["auth_scram_success"], 16)
        self.assert_counters_at_least(counters, connections_handed_off=1)

    def test_wrong_password_gets_0x86_and_is_counted(self):
        b = self.broker()
        reason, props, _, sock = self.scram_login(b.port, "eve", "wrong")
        with sock:
            self.assertEqual(reason, 0x86)
            self.assertNotIn(AUTH_DATA, props)
            m.expect_eof(sock)
        counters = b.stop()
        self.assert_counters(counters)  # no CONNECT outcome: refusals are auth_scram_*
        self.assertEqual(counters["auth_scram_bad_proof"], 1)
        self.assertEqual(counters["auth_scram_success"], 0)

    def test_unknown_user_and_mosquitto_entry_fail_only_after_the_exchange(self):
        b = self.broker()
        for user, password in (("nobody", "x"), ("alice", "alice-pw")):
            reason, _, _, sock = self.scram_login(b.port, user, password)
            with sock:
                self.assertEqual(reason, 0x86, user)
                m.expect_eof(sock)
        counters = b.stop()
        self.assertEqual(counters["auth_scram_unknown_user"], 1)
        self.assertEqual(counters["auth_scram_no_scram_credentials"], 1)

    def test_unknown_method_gets_0x8c(self):
        b = self.broker()
        with self.start_exchange(b.port, ScramClient("eve", "eve-pw"),
                                 method="SCRAM-SHA-1") as sock:
            reason, _ = read_connack5(sock)
            self.assertEqual(reason, 0x8C)  # 5.0:MQTT-4.12.0-1
            m.expect_eof(sock)
        counters = b.stop()
        self.assertEqual(counters["connect_bad_authentication_method"], 1)

    def test_unknown_method_with_paho_mqttv5(self):
        try:
            import paho.mqtt.client as paho
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
        except ImportError:
            self.skipTest("paho-mqtt is not installed")
        b = self.broker()
        codes = []
        client = paho.Client(client_id="paho5", protocol=paho.MQTTv5)
        client.on_connect = lambda c, u, f, rc, p=None: codes.append(rc.value)
        props = Properties(PacketTypes.CONNECT)
        props.AuthenticationMethod = "GS2-KRB5"
        client.connect("127.0.0.1", b.port, properties=props)
        deadline = time.monotonic() + 10
        while not codes and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        client.disconnect()
        self.assertEqual(codes, [0x8C])
        b.stop()

    def test_auth_with_another_method_is_a_protocol_error(self):
        b = self.broker()
        client = ScramClient("eve", "eve-pw")
        with self.start_exchange(b.port, client) as sock:
            server_first = self.expect_continue(sock)
            sock.sendall(auth_packet(0x18, "SCRAM-SHA-512", client.final(server_first).encode()))
            reason, _ = read_connack5(sock)
            self.assertEqual(reason, 0x82)  # 5.0:MQTT-4.12.0-5
            m.expect_eof(sock)
        b.stop()

    def test_other_packets_before_connack_are_a_protocol_error(self):
        b = self.broker()
        with self.start_exchange(b.port, ScramClient("eve", "eve-pw")) as sock:
            self.expect_continue(sock)
            sock.sendall(m.PINGREQ)
            reason, _ = read_connack5(sock)
            self.assertEqual(reason, 0x82)  # 5.0:MQTT-3.1.2-30
            m.expect_eof(sock)
        b.stop()

    def test_reauthentication_is_refused_with_disconnect_0x8c(self):
        b = self.broker()
        reason, _, client, sock = self.scram_login(b.port, "eve", "eve-pw")
        with sock:
            self.assertEqual(reason, 0x00)
            sock.sendall(auth_packet(0x19, METHOD, ScramClient("eve", "eve-pw").first().encode()))
            p = m.read_packet(sock)
            self.assertEqual((p.type, p.body[:1]), (m.DISCONNECT_T, b"\x8c"), p)
            m.expect_eof(sock)
        b.stop()

    def test_auth_without_an_exchange_gets_disconnect_0x82(self):
        b = self.broker()
        with m.open_socket(b.port) as sock:
            sock.sendall(m.connect("plain5", level=5, properties=b"\x00", username="eve",
                                   password=b"eve-pw"))
            reason, props = read_connack5(sock)
            self.assertEqual(reason, 0x00)
            self.assertNotIn(AUTH_METHOD, props)  # 5.0:MQTT-4.12.0-6
            sock.sendall(auth_packet(0x19, METHOD, b"n,,n=eve,r=abc"))
            p = m.read_packet(sock)
            self.assertEqual((p.type, p.body[:1]), (m.DISCONNECT_T, b"\x82"), p)  # -4.12.0-7
            m.expect_eof(sock)
        counters = b.stop()
        self.assertEqual(counters["protocol_violations"], 1)

    def test_silent_client_is_closed_after_connect_timeout(self):
        b = self.broker("--connect-timeout-ms", "500")
        with self.start_exchange(b.port, ScramClient("eve", "eve-pw")) as sock:
            self.expect_continue(sock)
            self.assertLess(m.expect_eof(sock, timeout=5.0), 5.0)
        counters = b.stop()
        self.assertEqual(counters["connect_timeout"], 1)

    def test_failure_budget_applies_to_scram(self):
        b = self.broker("--max-auth-failures-per-second", "1")
        started = time.monotonic()
        codes = []
        for _ in range(4):
            client = ScramClient("eve", "wrong")
            with self.start_exchange(b.port, client) as sock:
                p = m.read_packet(sock)
                if p.type == AUTH_T:
                    server_first = parse_properties(p.body[1:])[AUTH_DATA].decode()
                    sock.sendall(auth_packet(0x18, METHOD, client.final(server_first).encode()))
                    p = m.read_packet(sock)
                self.assertEqual(p.type, m.CONNACK)
                codes.append(p.body[1])
                m.expect_eof(sock)
        self.assertEqual(codes[0], 0x86, codes)
        if time.monotonic() - started < 1.0:  # within two one-second windows
            self.assertGreaterEqual(codes.count(0x97), 2, codes)
        counters = b.stop()
        self.assertEqual(counters["auth_scram_bad_proof"], codes.count(0x86))
        self.assertEqual(counters["auth_scram_rate_limited"], codes.count(0x97))

    def test_scram_entry_serves_a_311_password_login(self):
        b = self.broker()
        self.assert_serves(b, username="eve", password=b"eve-pw")
        with m.connect_client(b.port, "c2", expect=0x04, username="eve", password=b"x") as s:
            m.expect_eof(s)
        self.assert_counters(b.stop(), connect_accepted=1, connect_bad_credentials=1)
