"""Real clients against the broker: mosquitto_pub, mosquitto_sub and paho-mqtt (Debian
python3-paho-mqtt 1.6).

Run with /usr/bin/python3: the paho import below fails loudly (a failure, not a skip) if the
interpreter lacks it.
"""

import queue
import shutil
import subprocess
import threading
import time

import paho.mqtt.client as paho

import mqtt_raw as m
from broker import BrokerTestCase

CLIENT_TIMEOUT = 10.0
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
STDBUF = shutil.which("stdbuf") or "/usr/bin/stdbuf"


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

    def test_mosquitto_pub_mqtt_5(self):
        b = self.start_broker()
        self.assert_ok(self.pub(b, "-V", "mqttv5"))
        self.assert_ok(self.pub(b, "-V", "mqttv5", "-q", "2"))
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_unsupported_protocol=0, connect_accepted=3)

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
        self.connect_flags = []
        self.messages = []
        self.client.on_connect = lambda c, u, flags, rc: (self.connect_rc.append(rc),
                                                          self.connect_flags.append(flags))
        self.client.on_message = lambda c, u, msg: self.messages.append(
            (msg.topic, msg.payload, msg.qos, msg.retain))
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


class MosquittoSub:
    """mosquitto_sub in the background; its output lines go to a queue read with deadlines."""

    def __init__(self, port, *args):
        # stdbuf: mosquitto_sub's stdout is a pipe here; line buffering lets the test see
        # "received SUBACK" before it publishes.
        self.argv = [STDBUF, "-oL", MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(port), "-d",
                     "-W", "20", *args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines = queue.Queue()
        self.all = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, predicate, timeout=CLIENT_TIMEOUT):
        """Returns the first output line matching `predicate`, or None at the deadline/EOF."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                return None
            self.all.append(line)
            if predicate(line):
                return line

    def messages(self, n, timeout=CLIENT_TIMEOUT):
        """The next `n` message lines (debug lines skipped)."""
        out = []
        while len(out) < n:
            line = self.wait_for(lambda l: not l.startswith(("Client ", "Subscribed ")),
                                 timeout)
            if line is None:
                break
            out.append(line)
        return out

    def finish(self, timeout=CLIENT_TIMEOUT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class MosquittoSubPub(BrokerTestCase):
    assert_ok = MosquittoPub.assert_ok

    def pub(self, b, *args):
        argv = [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(b.port), *args]
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"{' '.join(argv)} did not finish within {CLIENT_TIMEOUT}s")

    def start_sub(self, b, *args):
        sub = MosquittoSub(b.port, *args)
        self.addCleanup(sub.kill)
        if sub.wait_for(lambda line: "received SUBACK" in line) is None:
            sub.kill()
            self.fail(f"{' '.join(sub.argv)} got no SUBACK: {sub.all}")
        return sub

    def test_mosquitto_sub_receives_mosquitto_pub_qos_0_1_2(self):
        b = self.start_broker()
        sub = self.start_sub(b, "-t", "t/#", "-q", "2", "-C", "4", "-v", "-i", "msub",
                             "-F", "%t %q %r %p")
        self.assert_ok(self.pub(b, "-t", "t/q0", "-m", "zero", "-q", "0"))
        self.assert_ok(self.pub(b, "-t", "t/q1", "-m", "one", "-q", "1"))
        self.assert_ok(self.pub(b, "-t", "t/q2/deep", "-m", "two", "-q", "2"))
        self.assert_ok(self.pub(b, "-t", "t/v31", "-m", "old", "-q", "1", "-V", "mqttv31"))
        got = sub.messages(4)
        self.assertEqual(sub.finish(), 0, f"mosquitto_sub output: {sub.all}")
        # "%t %q %r %p": topic, delivered QoS, retain flag, payload.
        self.assertEqual(sorted(got), sorted(["t/q0 0 0 zero", "t/q1 1 0 one",
                                              "t/q2/deep 2 0 two", "t/v31 1 0 old"]),
                         f"mosquitto_sub output: {sub.all}")
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=6)

    def test_mosquitto_sub_and_pub_mqtt_5_forward_properties(self):
        """mosquitto_pub -V 5 with a User Property, Content Type and Message Expiry Interval;
        mosquitto_sub -V 5 receives them unchanged (5.0:MQTT-3.3.2-17, -18; the expiry is the
        time left, MQTT-3.3.2-6), and a 3.1.1 mosquitto_sub gets the message without them."""
        b = self.start_broker()
        sub5 = self.start_sub(b, "-t", "t/5", "-q", "1", "-C", "1", "-V", "mqttv5",
                              "-F", "%t|%q|%p|%P|%C|%E")
        sub311 = self.start_sub(b, "-t", "t/5", "-q", "1", "-C", "1", "-V", "mqttv311",
                                "-F", "%t|%q|%p")
        self.assert_ok(self.pub(b, "-t", "t/5", "-m", "hello five", "-q", "1", "-V", "mqttv5",
                                "-D", "publish", "user-property", "colour", "blue",
                                "-D", "publish", "content-type", "text/plain",
                                "-D", "publish", "message-expiry-interval", "600"))
        got5 = sub5.messages(1)
        got311 = sub311.messages(1)
        self.assertEqual(sub5.finish(), 0, f"mosquitto_sub output: {sub5.all}")
        self.assertEqual(sub311.finish(), 0, f"mosquitto_sub output: {sub311.all}")
        topic, qos, payload, user, content_type, expiry = got5[0].split("|")
        self.assertEqual((topic, qos, payload, user, content_type),
                         ("t/5", "1", "hello five", "colour:blue", "text/plain"), sub5.all)
        self.assertTrue(590 <= int(expiry) <= 600, f"expiry left {expiry}")
        self.assertEqual(got311, ["t/5|1|hello five"], sub311.all)
        self.assert_counters(b.stop(), connect_accepted=3, publish_sent_mqtt5=1)

    def test_mosquitto_sub_mqtt_31_verbose_and_retained(self):
        b = self.start_broker()
        self.assert_ok(self.pub(b, "-t", "t/kept", "-m", "retained one", "-q", "1", "-r"))
        sub = self.start_sub(b, "-t", "t/#", "-q", "1", "-C", "3", "-v", "-V", "mqttv31")
        self.assertEqual(sub.messages(1), ["t/kept retained one"])
        self.assert_ok(self.pub(b, "-t", "t/a", "-m", "hello 31", "-q", "2", "-V", "mqttv31"))
        self.assert_ok(self.pub(b, "-t", "t/b", "-m", "x", "-q", "0"))
        got = sub.messages(2)
        self.assertEqual(sub.finish(), 0, f"mosquitto_sub output: {sub.all}")
        self.assertEqual(sorted(got), ["t/a hello 31", "t/b x"], f"output: {sub.all}")
        self.assert_counters(b.stop(), connect_accepted=4)


def run_all(clients, predicate, timeout=CLIENT_TIMEOUT):
    """Drives several PahoClients' loops on this thread until `predicate()` or the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        for c in clients:
            rc = c.client.loop(timeout=0.01)
            if rc != paho.MQTT_ERR_SUCCESS:
                c.loop_errors.append(rc)
                if rc == paho.MQTT_ERR_NO_CONN:
                    return predicate()
    return True


class PahoRouting(BrokerTestCase):
    def paho_pair(self, b, protocol, suffix):
        sub = PahoClient(f"psub-{suffix}", protocol)
        pub = PahoClient(f"ppub-{suffix}", protocol)
        try:
            self.assertEqual(sub.connack(b.port), 0)
            self.assertEqual(pub.connack(b.port), 0)
            _, mid = sub.client.subscribe([(f"pp/{suffix}/#", 2)])
            self.assertTrue(run_all([sub], lambda: sub.subscribed), "no SUBACK")
            self.assertEqual(sub.subscribed[0], (mid, (2,)))
            infos = [pub.client.publish(f"pp/{suffix}/{q}", f"payload {q}".encode(), qos=q)
                     for q in (0, 1, 2)]
            done = run_all([sub, pub], lambda: len(sub.messages) >= 3 and all(
                i.mid in pub.published for i in infos))
            self.assertTrue(done, f"messages {sub.messages}, published {pub.published}, "
                            f"loop errors {sub.loop_errors} {pub.loop_errors}")
            self.assertEqual(sorted(sub.messages),
                             [(f"pp/{suffix}/{q}", f"payload {q}".encode(), q, 0)
                              for q in (0, 1, 2)])
            run_all([sub, pub], lambda: False, timeout=0.3)  # nothing more arrives
            self.assertEqual(len(sub.messages), 3, sub.messages)
            self.assertFalse(sub.disconnect_rc or pub.disconnect_rc, "disconnected")
        finally:
            sub.close()
            pub.close()

    def test_paho_subscriber_and_publisher_qos_0_1_2_mqtt_311(self):
        b = self.start_broker()
        self.paho_pair(b, paho.MQTTv311, "v311")
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_paho_subscriber_and_publisher_qos_0_1_2_mqtt_31(self):
        b = self.start_broker()
        self.paho_pair(b, paho.MQTTv31, "v31")
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_paho_clean_session_false_reconnect_gets_queued_messages(self):
        b = self.start_broker()
        sub = PahoClient("paho-persist", clean_session=False)
        try:
            self.assertEqual(sub.connack(b.port), 0)
            self.assertEqual(sub.connect_flags[0].get("session present"), 0)
            _, mid = sub.client.subscribe([("pc/#", 1)])
            self.assertTrue(run_all([sub], lambda: sub.subscribed), "no SUBACK")
            self.assertEqual(sub.subscribed[0], (mid, (1,)))
        finally:
            sub.close()
        self.assertTrue(run_all([sub], lambda: sub.disconnect_rc, timeout=2.0))
        pub = PahoClient("paho-persist-pub")
        try:
            self.assertEqual(pub.connack(b.port), 0)
            infos = [pub.client.publish("pc/t", f"m{i}".encode(), qos=1) for i in range(3)]
            self.assertTrue(run_all([pub], lambda: all(i.mid in pub.published for i in infos)))
        finally:
            pub.close()
        again = PahoClient("paho-persist", clean_session=False)
        try:
            self.assertEqual(again.connack(b.port), 0)
            self.assertEqual(again.connect_flags[0].get("session present"), 1)
            self.assertTrue(run_all([again], lambda: len(again.messages) >= 3),
                            f"got {again.messages}")
            self.assertEqual(again.messages, [("pc/t", f"m{i}".encode(), 1, 0)
                                              for i in range(3)])
        finally:
            again.close()
        # paho's disconnect does not wait for the broker to close, and the new CONNECT may be
        # accepted on the other shard and handed to the session's home shard before the old
        # connection's DISCONNECT is read there: that is a takeover (MQTT-3.1.4-2), and the
        # client sees the same session either way (session present, the 3 messages).
        self.assert_counters(b.stop(), connect_accepted=3, session_takeovers=None)
