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


def parse_publish5(packet):
    """(topic, packet id or None, Topic Alias or None, dup, payload) of a raw 5.0 PUBLISH."""
    assert packet.type == 3, packet
    body = packet.body
    qos = (packet.flags >> 1) & 3
    topic_length = struct.unpack("!H", body[0:2])[0]
    topic = body[2:2 + topic_length].decode()
    i = 2 + topic_length
    packet_id = None
    if qos:
        packet_id = struct.unpack("!H", body[i:i + 2])[0]
        i += 2
    length, i = m.read_vbi(body, i)
    end = i + length
    alias = None
    while i < end:  # the properties a broker sends on a PUBLISH (5.0:3.3.2.3)
        pid = body[i]
        i += 1
        if pid == 0x23:
            alias = struct.unpack("!H", body[i:i + 2])[0]
            i += 2
        elif pid == 0x01:
            i += 1
        elif pid == 0x02:
            i += 4
        elif pid == 0x0B:
            _, i = m.read_vbi(body, i)
        elif pid in (0x03, 0x08, 0x09):
            i += 2 + struct.unpack("!H", body[i:i + 2])[0]
        elif pid == 0x26:
            for _ in range(2):
                i += 2 + struct.unpack("!H", body[i:i + 2])[0]
        else:
            raise AssertionError(f"unexpected property {pid:#x} in {packet!r}")
    return topic, packet_id, alias, bool(packet.flags & 0x08), body[end:]


class Mqtt5OutboundTopicAliases(BrokerTestCase):
    """Topic aliases the broker uses for deliveries (5.0:3.3.2.3.4, MQTT-3.3.2-10..12), with
    --outbound-topic-aliases on: raw sockets see the wire, paho (1.6.1 does not resolve aliases
    itself) sees the alias and the empty topic."""

    def subscriber5(self, b, client_id, alias_maximum=2, clean_start=True, expiry_s=0,
                    filters=(("t/#", 0),)):
        props = b""
        if alias_maximum is not None:
            props += bytes([0x22]) + struct.pack("!H", alias_maximum)  # Topic Alias Maximum
        if expiry_s:
            props += bytes([0x11]) + struct.pack("!I", expiry_s)  # Session Expiry Interval
        flags = 0x02 if clean_start else 0x00
        body = (m.mqtt_string("MQTT") + bytes([5, flags]) + struct.pack("!H", 60) +
                bytes([len(props)]) + props + m.mqtt_string(client_id))
        sock = m.open_socket(b.port)
        self.addCleanup(sock.close)
        m.send(sock, m.packet(0x10, body))
        connack = m.read_packet(sock).raw
        self.assertEqual(connack[0], 0x20, connack)
        self.assertEqual(connack[3], 0x00, connack)
        if filters:
            payload = b"".join(m.mqtt_string(f) + bytes([q]) for f, q in filters)
            m.send(sock, m.packet(0x82, struct.pack("!H", 1) + b"\x00" + payload))
            self.assertEqual(m.read_packet(sock).raw[0], 0x90)
        return sock, connack

    def publish_all(self, b, messages, qos=0):
        pub = m.connect_client(b.port, "pub")
        self.addCleanup(pub.close)
        for index, topic in enumerate(messages):
            m.send(pub, m.publish(topic, f"p{index}".encode(), qos=qos,
                                  packet_id=index + 1 if qos else None))
            if qos:
                self.assertEqual(m.read_packet(pub).type, 4)  # PUBACK
        return pub

    def test_first_publish_carries_topic_and_alias_then_only_the_alias_5_0_MQTT_3_3_2_10(self):
        b = self.start_broker("--outbound-topic-aliases", "10")
        sock, _ = self.subscriber5(b, "s5", alias_maximum=2)
        sub311 = m.connect_client(b.port, "s311")
        self.addCleanup(sub311.close)
        m.send(sub311, m.subscribe(1, [("t/#", 0)]))
        self.assertEqual(m.read_packet(sub311).type, 9)
        self.publish_all(b, ["t/a", "t/a", "t/b", "t/c", "t/b", "t/c"])
        got = [parse_publish5(m.read_packet(sock)) for _ in range(6)]
        # The client's maximum (2) caps the broker's 10 (5.0:MQTT-3.3.2-11).
        self.assertEqual([(topic, alias) for topic, _, alias, _, _ in got],
                         [("t/a", 1), ("", 1), ("t/b", 2), ("t/c", None), ("", 2), ("t/c", None)])
        self.assertEqual([payload for *_, payload in got], [f"p{i}".encode() for i in range(6)])
        # A 3.1.1 subscriber of the same messages gets every topic by name.
        for i, topic in enumerate(["t/a", "t/a", "t/b", "t/c", "t/b", "t/c"]):
            packet = m.read_packet(sub311)
            self.assertEqual(packet.body[2:2 + len(topic)], topic.encode(), packet)
        self.assert_counters_at_least(b.stop(), topic_alias_out_set=2, topic_alias_out_used=2)

    def test_a_reconnect_starts_a_fresh_mapping(self):
        b = self.start_broker("--outbound-topic-aliases", "4")
        sock, _ = self.subscriber5(b, "s5", clean_start=False, expiry_s=60,
                                   filters=(("t/#", 1),))
        self.publish_all(b, ["t/a", "t/a"], qos=1)
        first = [parse_publish5(m.read_packet(sock)) for _ in range(2)]
        self.assertEqual([(t, a) for t, _, a, _, _ in first], [("t/a", 1), ("", 1)])
        sock.close()  # unacknowledged: both are resent on the next connection
        again, connack = self.subscriber5(b, "s5", clean_start=False, expiry_s=60, filters=())
        self.assertEqual(connack[2], 0x01, "session present")
        resent = [parse_publish5(m.read_packet(again)) for _ in range(2)]
        # An alias of the previous connection is not valid: the first resend carries the topic.
        self.assertEqual([(t, a, dup) for t, _, a, dup, _ in resent],
                         [("t/a", 1, True), ("", 1, True)])
        for _, packet_id, _, _, _ in resent:
            m.send(again, bytes([0x40, 0x02]) + struct.pack("!H", packet_id))
        self.publish_all(b, ["t/a"], qos=0)
        self.assertEqual(parse_publish5(m.read_packet(again))[:3:2], ("", 1))

    def test_no_aliases_when_the_key_is_off_or_the_client_takes_none_5_0_MQTT_3_3_2_12(self):
        b = self.start_broker()  # outbound_topic_aliases defaults to 0
        off, _ = self.subscriber5(b, "off", alias_maximum=10)
        b2 = self.start_broker("--outbound-topic-aliases", "10")
        none, _ = self.subscriber5(b2, "none", alias_maximum=None)  # absent: 0
        self.publish_all(b, ["t/a", "t/a"])
        self.publish_all(b2, ["t/a", "t/a"])
        for sock in (off, none):
            got = [parse_publish5(m.read_packet(sock)) for _ in range(2)]
            self.assertEqual([(t, a) for t, _, a, _, _ in got], [("t/a", None), ("t/a", None)])
        self.assert_counters_at_least(b.stop(), publish_sent_mqtt5=2)
        counters = b2.stop()
        if counters is not None:
            self.assertEqual(counters.get("topic_alias_out_set", 0), 0)

    def test_paho_mqttv5_subscriber_gets_aliases(self):
        b = self.start_broker("--outbound-topic-aliases", "2")
        props = Properties(PacketTypes.CONNECT)
        props.TopicAliasMaximum = 2
        sub = Client(b.port, "paho5", connect_properties=props)
        self.addCleanup(sub.close)
        sub.subscribe("t/#", qos=1)
        pub = Client(b.port, "pub5")
        self.addCleanup(pub.close)
        pub.publish("t/x", b"1")
        pub.publish("t/x", b"2")
        first, second = sub.get(), sub.get()
        self.assertEqual((first.topic, first.properties.TopicAlias, first.payload),
                         ("t/x", 1, b"1"))
        self.assertEqual((second.topic, second.properties.TopicAlias, second.payload),
                         ("", 1, b"2"))
