"""MQTT 5.0 messages, deliveries and subscriptions with paho-mqtt (python3-paho-mqtt 1.6,
protocol=MQTTv5): properties forwarded, Subscription Identifiers, No Local, Retain As Published,
Retain Handling 0/1/2, Message Expiry, mixed 3.1.1 / 5.0 publishers and subscribers, and the
client's Receive Maximum.

Run with /usr/bin/python3 (paho is a Debian package). Every wait is bounded.
"""

import os
import queue
import struct
import tempfile
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqtt_raw as m
from broker import BrokerTestCase

TIMEOUT = 10.0
QUIET = 0.5  # how long "nothing arrives" is watched for


class Client:
    """A paho client on its own network thread, collecting what it receives."""

    def __init__(self, port, client_id, protocol=paho.MQTTv5, clean_start=True,
                 connect_properties=None):
        self.messages = queue.Queue()
        self.subacks = queue.Queue()
        self.connected = threading.Event()
        self.client = paho.Client(client_id=client_id, protocol=protocol,
                                  **({} if protocol == paho.MQTTv5
                                     else {"clean_session": clean_start}))
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect = lambda *a: self.connected.set()
        if protocol == paho.MQTTv5:
            self.client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(
                [getattr(code, "value", code) for code in codes])
            self.client.connect("127.0.0.1", port, clean_start=clean_start,
                                properties=connect_properties)
        else:
            self.client.on_subscribe = lambda c, u, mid, codes: self.subacks.put(list(codes))
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.connected.wait(TIMEOUT):
            raise AssertionError(f"{client_id}: no CONNACK within {TIMEOUT}s")

    def subscribe(self, topic, qos=1, properties=None, **options):
        if options:
            opts = paho.SubscribeOptions(qos=qos, **options)
            self.client.subscribe(topic, options=opts, properties=properties)
        elif properties is not None:
            self.client.subscribe(topic, qos=qos, properties=properties)
        else:
            self.client.subscribe(topic, qos=qos)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            raise AssertionError(f"PUBLISH to {topic} not acknowledged within {TIMEOUT}s")

    def get(self):
        return self.messages.get(timeout=TIMEOUT)

    def nothing(self, seconds=QUIET):
        try:
            msg = self.messages.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def publish_properties(**fields):
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in fields.items():
        setattr(properties, name, value)
    return properties


def subscription_identifier(value):
    properties = Properties(PacketTypes.SUBSCRIBE)
    properties.SubscriptionIdentifier = value
    return properties


class Mqtt5PubSub(BrokerTestCase):
    def client(self, b, client_id, **kwargs):
        c = Client(b.port, client_id, **kwargs)
        self.addCleanup(c.close)
        return c

    def test_properties_are_forwarded_unchanged(self):
        b = self.start_broker()
        sub = self.client(b, "sub")
        sub.subscribe("req/#")
        pub = self.client(b, "pub")
        props = publish_properties(UserProperty=[("a", "1"), ("b", "2"), ("a", "3")],
                                   CorrelationData=b"\x00\x01corr", ResponseTopic="resp/x",
                                   ContentType="application/json", PayloadFormatIndicator=1)
        pub.publish("req/1", b'{"x":1}', properties=props)
        msg = sub.get()
        self.assertEqual(msg.payload, b'{"x":1}')
        self.assertEqual(msg.properties.UserProperty, [("a", "1"), ("b", "2"), ("a", "3")])
        self.assertEqual(msg.properties.CorrelationData, b"\x00\x01corr")
        self.assertEqual(msg.properties.ResponseTopic, "resp/x")
        self.assertEqual(msg.properties.ContentType, "application/json")
        self.assertEqual(msg.properties.PayloadFormatIndicator, 1)
        self.assert_counters_at_least(b.stop(), publish_sent_mqtt5=1)

    def test_subscription_identifiers(self):
        b = self.start_broker()
        sub = self.client(b, "sub")
        sub.subscribe("a/+", properties=subscription_identifier(11))
        sub.subscribe("a/#", properties=subscription_identifier(22))
        sub.subscribe("a/b")
        pub = self.client(b, "pub")
        pub.publish("a/b", b"1")
        msg = sub.get()
        self.assertEqual(sorted(msg.properties.SubscriptionIdentifier), [11, 22])
        sub.nothing()  # one delivery for the overlapping subscriptions
        pub.publish("a/b/c", b"2")
        self.assertEqual(sub.get().properties.SubscriptionIdentifier, [22])

    def test_no_local(self):
        b = self.start_broker()
        me = self.client(b, "me")
        me.subscribe("chat", noLocal=True)
        other = self.client(b, "other")
        other.subscribe("chat")
        me.publish("chat", b"mine")
        self.assertEqual(other.get().payload, b"mine")
        me.nothing()
        other.publish("chat", b"theirs")
        self.assertEqual(me.get().payload, b"theirs")
        self.assert_counters_at_least(b.stop(), deliver_no_local=1)

    def test_retain_as_published(self):
        b = self.start_broker()
        keep = self.client(b, "keep")
        keep.subscribe("r", retainAsPublished=True)
        clear = self.client(b, "clear")
        clear.subscribe("r")
        pub = self.client(b, "pub")
        pub.publish("r", b"v", retain=True)
        self.assertTrue(keep.get().retain)
        self.assertFalse(clear.get().retain)

    def test_retain_handling_0_1_2(self):
        b = self.start_broker()
        pub = self.client(b, "pub")
        pub.publish("r/x", b"kept", retain=True)
        h0 = self.client(b, "h0")
        h0.subscribe("r/#", retainHandling=0)
        self.assertTrue(h0.get().retain)
        h0.subscribe("r/#", retainHandling=0)
        self.assertEqual(h0.get().payload, b"kept")  # again: 0 sends at every SUBSCRIBE
        h1 = self.client(b, "h1")
        h1.subscribe("r/#", retainHandling=1)
        self.assertEqual(h1.get().payload, b"kept")
        h1.subscribe("r/#", retainHandling=1)
        h1.nothing()  # the subscription existed
        h2 = self.client(b, "h2")
        h2.subscribe("r/#", retainHandling=2)
        h2.nothing()

    def test_message_expiry(self):
        b = self.start_broker()
        # A persistent 5.0 session (Session Expiry Interval, so that it outlives the close).
        connect_properties = Properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = 300
        sub = Client(b.port, "offline", clean_start=False, connect_properties=connect_properties)
        sub.subscribe("e", qos=1)
        sub.close()
        pub = self.client(b, "pub")
        pub.publish("e", b"short", properties=publish_properties(MessageExpiryInterval=1))
        pub.publish("e", b"long", properties=publish_properties(MessageExpiryInterval=60))
        time.sleep(1.6)
        back = self.client(b, "offline", clean_start=False,
                           connect_properties=connect_properties)
        msg = back.get()
        self.assertEqual(msg.payload, b"long")
        # The time left is forwarded (MQTT-3.3.2-6): less than 60 after 1.6 s of waiting (the
        # lower bound leaves room for a slow machine).
        self.assertLessEqual(msg.properties.MessageExpiryInterval, 59)
        self.assertGreaterEqual(msg.properties.MessageExpiryInterval, 45)
        back.nothing()
        # A retained message that expired is not sent to a new subscription either.
        pub.publish("er", b"gone", retain=True,
                    properties=publish_properties(MessageExpiryInterval=1))
        time.sleep(1.2)
        late = self.client(b, "late")
        late.subscribe("er")
        late.nothing()
        self.assert_counters_at_least(b.stop(), messages_expired=2)

    def test_mixed_311_and_5_publishers_and_subscribers(self):
        b = self.start_broker()
        sub5 = self.client(b, "sub5")
        sub5.subscribe("mix", properties=subscription_identifier(5))
        sub311 = self.client(b, "sub311", protocol=paho.MQTTv311)
        sub311.subscribe("mix")
        pub5 = self.client(b, "pub5")
        pub311 = self.client(b, "pub311", protocol=paho.MQTTv311)
        pub5.publish("mix", b"from5", properties=publish_properties(UserProperty=[("k", "v")]))
        got5 = sub5.get()
        self.assertEqual(got5.properties.UserProperty, [("k", "v")])
        self.assertEqual(got5.properties.SubscriptionIdentifier, [5])
        self.assertEqual(sub311.get().payload, b"from5")
        pub311.publish("mix", b"from311")
        got5 = sub5.get()
        self.assertEqual(got5.payload, b"from311")
        self.assertFalse(hasattr(got5.properties, "UserProperty"))
        self.assertEqual(got5.properties.SubscriptionIdentifier, [5])
        self.assertEqual(sub311.get().payload, b"from311")

    def test_receive_maximum_is_respected(self):
        """A 5.0 client with Receive Maximum 2 that does not acknowledge never has more than 2
        QoS 1 deliveries outstanding (5.0:MQTT-3.3.4-9). Raw socket: paho acknowledges."""
        b = self.start_broker()
        props = bytes([0x21, 0x00, 0x02])  # Receive Maximum 2
        body = (m.mqtt_string("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) +
                bytes([len(props)]) + props + m.mqtt_string("slow"))
        sock = m.open_socket(b.port)
        self.addCleanup(sock.close)
        m.send(sock, m.packet(0x10, body))
        connack = m.read_packet(sock).raw
        # CONNACK, session present 0, reason Success; its properties are the broker's limits.
        self.assertEqual((connack[0], connack[2], connack[3]), (0x20, 0x00, 0x00), connack)
        # SUBSCRIBE id 1, no properties, "t" at QoS 1.
        m.send(sock, m.packet(0x82, struct.pack("!H", 1) + b"\x00" + m.mqtt_string("t") +
                              b"\x01"))
        self.assertEqual(m.read_packet(sock).raw[0], 0x90)
        pub = self.client(b, "pub")
        for i in range(5):
            pub.publish("t", f"m{i}".encode())
        first = m.read_packet(sock)
        second = m.read_packet(sock)
        for packet in (first, second):
            self.assertEqual(packet.raw[0] & 0xF0, 0x30)
        m.expect_silence(sock, 1.0)  # no more than Receive Maximum unacknowledged
        # One PUBACK: exactly one more comes.
        m.send(sock, bytes([0x40, 0x02]) + struct.pack("!H", self.packet_id(first.raw)))
        self.assertEqual(m.read_packet(sock).raw[0] & 0xF0, 0x30)
        m.expect_silence(sock, QUIET)
        self.assert_counters_at_least(b.stop(), publish_sent_mqtt5=3)

    @staticmethod
    def packet_id(packet):
        """The packet id of a raw QoS 1 PUBLISH (fixed header, topic, id)."""
        i = 1
        while packet[i] & 0x80:
            i += 1
        i += 1
        topic_length = struct.unpack("!H", packet[i:i + 2])[0]
        return struct.unpack("!H", packet[i + 2 + topic_length:i + 4 + topic_length])[0]


class Mqtt5ReasonCodes(BrokerTestCase):
    """5.0 reason codes on SUBACK, UNSUBACK and PUBACK/PUBREC, raw bytes."""

    def connect5(self, b, client_id):
        sock = m.open_socket(b.port)
        self.addCleanup(sock.close)
        body = (m.mqtt_string("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + b"\x00" +
                m.mqtt_string(client_id))
        m.send(sock, m.packet(0x10, body))
        connack = m.read_packet(sock).raw
        # CONNACK, session present 0, reason Success; its properties are the broker's limits.
        self.assertEqual((connack[0], connack[2], connack[3]), (0x20, 0x00, 0x00), connack)
        return sock

    def test_acl_refusals_are_not_authorized(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        acl = os.path.join(directory.name, "acl")
        with open(acl, "w") as f:
            f.write("topic readwrite public/#\n")
        b = self.start_broker("--acl-file", acl)
        sock = self.connect5(b, "c")
        # Nobody reads (yet) public/nobody: PUBACK 0x10 No matching subscribers.
        m.send(sock, m.packet(0x32, m.mqtt_string("public/nobody") + struct.pack("!H", 9) +
                              b"\x00x"))
        m.expect_packet(sock, bytes([0x40, 0x03, 0x00, 0x09, 0x10]), what="PUBACK 0x10")
        # SUBSCRIBE id 1: public/# (QoS 1) and secret/# (QoS 1).
        m.send(sock, m.packet(0x82, struct.pack("!H", 1) + b"\x00" + m.mqtt_string("public/#") +
                              b"\x01" + m.mqtt_string("secret/#") + b"\x01"))
        m.expect_packet(sock, bytes([0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x87]), what="SUBACK")
        # PUBLISH QoS 1 to secret/x: PUBACK 0x87 (as Mosquitto answers at 5.0).
        m.send(sock, m.packet(0x32, m.mqtt_string("secret/x") + struct.pack("!H", 7) + b"\x00x"))
        m.expect_packet(sock, bytes([0x40, 0x03, 0x00, 0x07, 0x87]), what="PUBACK 0x87")
        # QoS 2: PUBREC 0x87 ends the flow, so the same id is free at once.
        for _ in range(2):
            m.send(sock, m.packet(0x34, m.mqtt_string("secret/x") + struct.pack("!H", 8) +
                                  b"\x00x"))
            m.expect_packet(sock, bytes([0x50, 0x03, 0x00, 0x08, 0x87]), what="PUBREC 0x87")
        # UNSUBSCRIBE id 2: public/# (held) and other (not held).
        m.send(sock, m.packet(0xA2, struct.pack("!H", 2) + b"\x00" + m.mqtt_string("public/#") +
                              m.mqtt_string("other")))
        m.expect_packet(sock, bytes([0xB0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11]),
                        what="UNSUBACK")
        self.assert_counters(b.stop(), connect_accepted=1, publish_denied=3, subscribe_denied=1,
                             publish_dropped_no_subscribers=None)
