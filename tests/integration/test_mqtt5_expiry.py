"""MQTT 5.0 Session Expiry Interval (5.0 §3.1.2.11.2, §3.14.2.2.2, max_session_expiry) and
Will Delay Interval (5.0 §3.1.3.2.2, 5.0:MQTT-3.1.3-9) with paho-mqtt 1.6 at MQTTv5; wills are
watched by a 3.1.1 raw client.

Run with /usr/bin/python3 (Debian's python3-paho-mqtt).
"""

import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqtt_raw as m
from broker import BrokerTestCase

CLIENT_TIMEOUT = 10.0
WILL_TOPIC = "expiry/will"


class Paho5:
    """A paho 1.6 MQTTv5 client driven by loop() on this thread, with deadlines."""

    def __init__(self, client_id):
        self.client = paho.Client(client_id=client_id, protocol=paho.MQTTv5)
        self.connacks = []  # (session present, reason code value, CONNACK properties)
        self.disconnected = []

        def on_connect(client, userdata, flags, reason, properties):
            self.connacks.append((flags["session present"], reason.value, properties))

        self.client.on_connect = on_connect
        self.client.on_disconnect = lambda c, u, rc, *rest: self.disconnected.append(rc)

    def will(self, delay_s):
        properties = Properties(PacketTypes.WILLMESSAGE)
        properties.WillDelayInterval = delay_s
        self.client.will_set(WILL_TOPIC, b"gone", qos=0, properties=properties)

    def connect(self, port, clean_start, expiry_s=None):
        """Connects; returns (session present, CONNACK properties). CONNACK must accept."""
        properties = None
        if expiry_s is not None:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = expiry_s
        self.client.connect(m.HOST, port, keepalive=60, clean_start=clean_start,
                            properties=properties)
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while not self.connacks and not self.disconnected:
            if time.monotonic() > deadline:
                raise AssertionError("no CONNACK")
            self.client.loop(timeout=0.05)
        if not self.connacks:
            raise AssertionError(f"closed without CONNACK: {self.disconnected}")
        present, reason, connack_properties = self.connacks[-1]
        if reason != 0:
            raise AssertionError(f"CONNACK reason {reason:#x}")
        return bool(present), connack_properties

    def disconnect(self, expiry_s=None):
        """A normal DISCONNECT, with a Session Expiry Interval if given."""
        properties = None
        if expiry_s is not None:
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = expiry_s
        self.client.disconnect(properties=properties)
        self.client.loop(timeout=0.05)
        self.drop()
        # paho closes its socket itself: give the broker the time to see the DISCONNECT before
        # a next connection with this id, which would otherwise race it (a takeover).
        time.sleep(0.2)

    def drop(self):
        """The network connection ends without DISCONNECT."""
        sock = self.client.socket()
        if sock:
            sock.close()


def session_present(port, client_id, expiry_s=60):
    """Connects with Clean Start 0 and returns the session-present flag (then disconnects)."""
    c = Paho5(client_id)
    present, _ = c.connect(port, clean_start=False, expiry_s=expiry_s)
    c.disconnect()
    return present


class SessionExpiry(BrokerTestCase):
    def test_session_present_before_its_interval_and_gone_after(self):
        b = self.start_broker()
        c = Paho5("exp5")
        self.assertEqual(c.connect(b.port, clean_start=False, expiry_s=2)[0], False)
        c.disconnect()
        self.assertTrue(session_present(b.port, "exp5", expiry_s=2),
                        "5.0:MQTT-3.2.2-3: the session is kept for its interval")
        time.sleep(2.5)  # past its interval (checked every 100 ms tick)
        self.assertFalse(session_present(b.port, "exp5", expiry_s=0),
                         "the session outlived its Session Expiry Interval")
        self.assert_counters(b.stop(), connect_accepted=3, sessions_created=2,
                             sessions_expired=1)

    def test_absent_interval_ends_the_session_with_the_connection(self):
        b = self.start_broker()
        c = Paho5("zero5")
        c.connect(b.port, clean_start=False)
        c.disconnect()
        self.assertFalse(session_present(b.port, "zero5", expiry_s=0),
                         "5.0:MQTT-3.1.2-23: absent interval is 0")
        self.assert_counters(b.stop(), connect_accepted=2, sessions_created=2)

    def test_clean_start_1_discards_the_session(self):
        b = self.start_broker()
        c = Paho5("clean5")
        c.connect(b.port, clean_start=False, expiry_s=60)
        c.disconnect()
        c = Paho5("clean5")
        self.assertFalse(c.connect(b.port, clean_start=True, expiry_s=60)[0],
                         "5.0:MQTT-3.1.2-4")
        c.disconnect()
        self.assertTrue(session_present(b.port, "clean5"))
        self.assert_counters(b.stop(), connect_accepted=3, sessions_created=2)

    def test_disconnect_interval_replaces_the_connect_one(self):
        b = self.start_broker()
        c = Paho5("disc5")
        c.connect(b.port, clean_start=False, expiry_s=3600)
        c.disconnect(expiry_s=1)  # 5.0:3.14.2.2.2
        time.sleep(1.5)
        self.assertFalse(session_present(b.port, "disc5", expiry_s=0))
        self.assert_counters(b.stop(), connect_accepted=2, sessions_created=2,
                             sessions_expired=1)

    def test_max_session_expiry_caps_the_request_and_connack_says_so(self):
        b = self.start_broker("--max-session-expiry", "1s")
        c = Paho5("cap5")
        present, properties = c.connect(b.port, clean_start=False, expiry_s=0xFFFFFFFF)
        self.assertFalse(present)
        self.assertEqual(getattr(properties, "SessionExpiryInterval", None), 1,
                         "5.0:3.2.2.3.2: CONNACK carries the interval the server uses")
        c.disconnect()
        time.sleep(1.5)
        self.assertFalse(session_present(b.port, "cap5", expiry_s=0))
        self.assert_counters(b.stop(), connect_accepted=2, sessions_created=2,
                             sessions_expired=1)


class WillDelay(BrokerTestCase):
    def watcher(self, b):
        w = m.Client(b.port, "will-watcher")
        self.addCleanup(w.close)
        w.subscribe([(WILL_TOPIC, 0)])
        return w

    def test_will_delay_cancelled_by_a_reconnect(self):
        b = self.start_broker()
        w = self.watcher(b)
        c = Paho5("delay5")
        c.will(delay_s=1)
        c.connect(b.port, clean_start=False, expiry_s=60)
        c.drop()  # no DISCONNECT: the will falls due, delayed 1 s
        time.sleep(0.2)
        back = Paho5("delay5")
        self.assertTrue(back.connect(b.port, clean_start=False, expiry_s=60)[0])
        m.expect_quiet([w], 2.0)  # 5.0:MQTT-3.1.3-9: resumed in time, no will
        back.disconnect()
        w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, sessions_created=2,
                             wills_delayed=1, wills_cancelled=1)

    def test_will_delay_published_after_the_delay(self):
        b = self.start_broker()
        w = self.watcher(b)
        c = Paho5("late5")
        c.will(delay_s=1)
        c.connect(b.port, clean_start=False, expiry_s=60)
        dropped = time.monotonic()
        c.drop()
        got = w.receive(1, timeout=5.0)
        waited = time.monotonic() - dropped
        self.assertEqual([x.key() for x in got], [(WILL_TOPIC, b"gone", 0, False, False)])
        self.assertGreaterEqual(waited, 0.9, "the will came before its delay")
        w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, sessions_created=2,
                             wills_delayed=1, wills_published=1)

    def test_will_published_at_session_end_when_earlier_than_its_delay(self):
        b = self.start_broker()
        w = self.watcher(b)
        c = Paho5("end5")
        c.will(delay_s=3600)
        c.connect(b.port, clean_start=False, expiry_s=1)
        c.drop()
        got = w.receive(1, timeout=5.0)
        self.assertEqual([x.key() for x in got], [(WILL_TOPIC, b"gone", 0, False, False)])
        w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, sessions_created=2,
                             wills_delayed=1, wills_published=1, sessions_expired=1)

    def test_normal_disconnect_publishes_no_will(self):
        b = self.start_broker()
        w = self.watcher(b)
        c = Paho5("polite5")
        c.will(delay_s=0)
        c.connect(b.port, clean_start=False, expiry_s=60)
        c.disconnect()
        m.expect_quiet([w], 0.5)
        w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, sessions_created=2)


class Mqtt311Regression(BrokerTestCase):
    def test_persistent_session_expiry_still_ends_3_1_1_sessions(self):
        b = self.start_broker("--persistent-session-expiry", "1s")
        with m.Client(b.port, "old311", clean=False) as c:
            c.disconnect()
        with m.Client(b.port, "old311", clean=False, session_present=True) as c:
            c.disconnect()
        time.sleep(1.5)
        with m.Client(b.port, "old311", clean=False, session_present=False) as c:
            c.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, sessions_created=2,
                             sessions_expired=1)
