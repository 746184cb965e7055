"""Real clients against the broker: mosquitto_pub and paho-mqtt (Debian python3-paho-mqtt 1.6).

Run with /usr/bin/python3: the paho import below fails loudly (a failure, not a skip) if the
interpreter lacks it.
"""

import shutil
import subprocess
import time

import paho.mqtt.client as paho

import mqtt_raw as m
from broker import BrokerTestCase

CLIENT_TIMEOUT = 10.0
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


class MosquittoPub(BrokerTestCase):
    def pub(self, b, *args):
        argv = [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(b.port), "-t", "t", "-m", "x",
                *args]
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"{' '.join(argv)} did not finish within {CLIENT_TIMEOUT}s")

    def assert_ok(self, proc):
        self.assertEqual(proc.returncode, 0, f"{' '.join(proc.args)} failed: "
                         f"stdout={proc.stdout!r} stderr={proc.stderr!r}")

    def test_mosquitto_pub_mqtt_311_qos_0_1_2(self):
        b = self.start_broker()
        self.assert_ok(self.pub(b))
        self.assert_ok(self.pub(b, "-q", "1"))
        self.assert_ok(self.pub(b, "-q", "2"))
        self.assert_ok(self.pub(b, "-q", "1", "-V", "mqttv311", "-i", "explicit-id",
                                "-u", "user", "-P", "pw", "--will-topic", "w",
                                "--will-payload", "gone", "--will-qos", "1"))
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=5)

    def test_mosquitto_pub_mqtt_31(self):
        b = self.start_broker()
        self.assert_ok(self.pub(b, "-V", "mqttv31"))
        self.assert_ok(self.pub(b, "-V", "mqttv31", "-q", "1"))
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=3)

    def test_mosquitto_pub_mqtt_5_refused_unacceptable_protocol_version(self):
        b = self.start_broker()
        proc = self.pub(b, "-V", "mqttv5")
        self.assertNotEqual(proc.returncode, 0, f"MQTT 5 publish succeeded: {proc.stderr!r}")
        # What mosquitto_pub prints for a CONNACK with return code 0x01 (not for a bare close).
        self.assertIn("unsupported protocol version", proc.stderr.lower())
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_unsupported_protocol=1, connect_accepted=1)

    def test_mosquitto_pub_too_long_client_id_refused(self):
        b = self.start_broker("--max-client-id-length", "5")
        proc = self.pub(b, "-i", "sixsix")
        self.assertNotEqual(proc.returncode, 0, "publish with a refused client id succeeded")
        self.assertIn("identifier rejected", proc.stderr.lower())
        self.assert_ok(self.pub(b, "-i", "five5"))
        self.assert_counters(b.stop(), connect_client_id_too_long=1, connect_accepted=1)


class PahoClient:
    """A paho 1.6 client driven by loop() on this thread, with deadlines."""

    def __init__(self, client_id, protocol=paho.MQTTv311, clean_session=True):
        self.connect_rc = []
        self.disconnect_rc = []
        self.published = []
        self.subscribed = []
        self.client = paho.Client(client_id=client_id, clean_session=clean_session,
                                  protocol=protocol)
        self.client.on_connect = lambda c, u, flags, rc: self.connect_rc.append(rc)
        self.client.on_disconnect = lambda c, u, rc: self.disconnect_rc.append(rc)
        self.client.on_publish = lambda c, u, mid: self.published.append(mid)
        self.client.on_subscribe = lambda c, u, mid, granted: self.subscribed.append(
            (mid, tuple(granted)))
        self.loop_errors = []

    def connect(self, port, keepalive=60):
        self.client.connect(m.HOST, port, keepalive=keepalive)

    def run_until(self, predicate, timeout=CLIENT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            rc = self.client.loop(timeout=0.05)
            if rc != paho.MQTT_ERR_SUCCESS:
                self.loop_errors.append(rc)
                if predicate():
                    return True
                if self.disconnect_rc or rc == paho.MQTT_ERR_NO_CONN:
                    return predicate()
        return True

    def connack(self, port):
        """Connects and returns the CONNACK rc, or None if the connection ended without one."""
        self.connect(port)
        self.run_until(lambda: self.connect_rc or self.disconnect_rc)
        return self.connect_rc[0] if self.connect_rc else None

    def close(self):
        try:
            self.client.disconnect()
            self.client.loop(timeout=0.05)
        finally:
            if self.client.socket():
                self.client.socket().close()


class Paho(BrokerTestCase):
    def test_paho_version_is_1_x(self):
        # The suite targets the 1.x callback API (Debian's python3-paho-mqtt 1.6).
        import paho.mqtt
        self.assertEqual(paho.mqtt.__version__.split(".")[0], "1",
                         f"paho-mqtt {paho.mqtt.__version__}: this suite uses the 1.x API")

    def paho_accepted(self, b, client_id, protocol):
        c = PahoClient(client_id, protocol)
        try:
            self.assertEqual(c.connack(b.port), 0, f"paho {client_id}: disconnect rc "
                             f"{c.disconnect_rc}, loop errors {c.loop_errors}")
            info = c.client.publish("p/q", b"one", qos=1)
            self.assertTrue(c.run_until(lambda: info.mid in c.published), "no PUBACK")
            info = c.client.publish("p/q", b"two", qos=2)
            self.assertTrue(c.run_until(lambda: info.mid in c.published), "no PUBCOMP")
            _, mid = c.client.subscribe([("s/1", 1), ("s/2", 0)])
            self.assertTrue(c.run_until(lambda: c.subscribed), "no SUBACK")
            self.assertEqual(c.subscribed[0], (mid, (1, 0)), "SUBACK must grant the "
                             "requested QoS of each filter")
            self.assertFalse(c.disconnect_rc, "disconnected unexpectedly")
        finally:
            c.close()

    def test_paho_mqtt_311_connects_rc_0(self):
        b = self.start_broker()
        self.paho_accepted(b, "paho311", paho.MQTTv311)
        self.paho_accepted(b, "", paho.MQTTv311)  # server-assigned id
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=3)

    def test_paho_mqtt_31_connects_rc_0(self):
        b = self.start_broker()
        self.paho_accepted(b, "paho31", paho.MQTTv31)
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_paho_too_long_client_id_rc_2(self):
        b = self.start_broker("--max-client-id-length", "10")
        c = PahoClient("x" * 11)
        try:
            self.assertEqual(c.connack(b.port), 2)
        finally:
            c.close()
        c = PahoClient("y" * 24, paho.MQTTv31)  # MQTT 3.1 allows at most 23 characters
        try:
            self.assertEqual(c.connack(b.port), 2)
        finally:
            c.close()
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_client_id_too_long=2, connect_accepted=1)

    def test_paho_connection_limit_rc_3(self):
        b = self.start_broker("--max-connections", "1")
        holder = m.connect_client(b.port, "holder")
        c = PahoClient("second")
        try:
            self.assertEqual(c.connack(b.port), 3)
        finally:
            c.close()
        m.ping(holder)
        m.disconnect(holder)
        self.assert_counters(b.stop(), connect_connection_limit=1, connect_accepted=1)

    def test_paho_silent_policy_disconnect_without_connack(self):
        b = self.start_broker("--reject-policy", "silent", "--max-client-id-length", "10")
        c = PahoClient("z" * 11)
        try:
            rc = c.connack(b.port)
            self.assertIsNone(rc, f"paho got CONNACK rc {rc} under the silent policy")
            self.assertTrue(c.disconnect_rc or c.loop_errors,
                            "paho saw neither a CONNACK nor a disconnect")
        finally:
            c.close()
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_client_id_too_long=1,
                             connect_closed_silent_policy=1, connect_accepted=1)
