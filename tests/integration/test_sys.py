"""$SYS/broker/... topics (docs/metrics.md, "$SYS topics"): published retained by the broker
every --sys-interval-s seconds, invisible to `#` and `+` subscriptions (MQTT-4.7.2-1), closed to
client publishes (dropped and counted, as Mosquitto does), off with --sys-interval-s 0.
"""

import subprocess
import time

import mqtt_raw as m
from broker import BrokerTestCase

VERSION_PREFIX = b"ringmq "


def collect(client, seconds):
    """topic -> last payload of every PUBLISH arriving within `seconds`."""
    values = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pub = client.next_publish(timeout=max(0.01, deadline - time.monotonic()))
        except m.ProtocolError:
            break  # timed out: nothing more
        values[pub.topic] = pub.payload
    return values


def wait_for_values(client, wanted, timeout):
    """Reads PUBLISHes until the latest payload of every topic in `wanted` (topic -> bytes)
    equals the wanted one; returns the latest values, or fails with them on timeout."""
    latest = {}
    deadline = time.monotonic() + timeout
    while any(latest.get(t) != v for t, v in wanted.items()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"$SYS values {latest}, wanted {wanted}")
        try:
            pub = client.next_publish(timeout=remaining)
        except m.ProtocolError:
            continue  # timed out: the loop reports
        latest[pub.topic] = pub.payload
    return latest


class SysTopics(BrokerTestCase):
    def test_retained_values_arrive_on_subscribe(self):
        b = self.start_broker("--sys-interval-s", "1")
        with m.Client(b.port, "sys") as c:
            c.subscribe([("$SYS/#", 0)])
            values = collect(c, 0.5)
        for topic in ("$SYS/broker/version", "$SYS/broker/uptime",
                      "$SYS/broker/clients/connected", "$SYS/broker/clients/disconnected",
                      "$SYS/broker/clients/total", "$SYS/broker/clients/maximum",
                      "$SYS/broker/messages/received", "$SYS/broker/messages/sent",
                      "$SYS/broker/publish/messages/dropped", "$SYS/broker/bytes/received",
                      "$SYS/broker/bytes/sent", "$SYS/broker/subscriptions/count",
                      "$SYS/broker/retained messages/count"):
            self.assertIn(topic, values)
        self.assertTrue(values["$SYS/broker/version"].startswith(VERSION_PREFIX))
        self.assertRegex(values["$SYS/broker/uptime"].decode(), r"^\d+ seconds$")
        counters = b.stop()
        self.assertGreaterEqual(counters["sys_messages_published"], 13)
        self.assert_counters(counters, connect_accepted=1)

    def test_values_follow_the_traffic(self):
        b = self.start_broker("--sys-interval-s", "1")
        with m.Client(b.port, "watch") as watch:
            watch.subscribe([("$SYS/broker/messages/received", 0),
                             ("$SYS/broker/clients/connected", 0),
                             ("$SYS/broker/subscriptions/count", 0)])
            with m.Client(b.port, "p") as pub:
                for i in range(3):
                    pub.publish("nobody", b"x", qos=1)
                # Published within one interval (1 s) plus a tick.
                wait_for_values(watch, {"$SYS/broker/messages/received": b"3",
                                        "$SYS/broker/clients/connected": b"2",
                                        "$SYS/broker/subscriptions/count": b"3"}, 3.0)
                pub.disconnect()
            wait_for_values(watch, {"$SYS/broker/clients/connected": b"1"}, 3.0)
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=2)

    def test_wildcards_at_the_start_do_not_match_sys(self):
        # MQTT-4.7.2-1: `#` and `+/...` must not receive topics starting with '$', retained or new.
        b = self.start_broker("--sys-interval-s", "1")
        with m.Client(b.port, "all") as everything, m.Client(b.port, "plus") as plus:
            everything.subscribe([("#", 0)])
            plus.subscribe([("+/broker/#", 0), ("+/broker/uptime", 0)])
            everything.expect_no_publish(1.5)  # a full interval passes meanwhile
            plus.expect_no_publish(0.1)
        counters = b.stop()
        self.assertGreater(counters["sys_messages_published"], 13)  # at least two rounds
        self.assertEqual(counters["bytes_delivered"], 0)

    def test_client_publish_to_sys_is_dropped_and_counted(self):
        b = self.start_broker("--sys-interval-s", "1")
        with m.Client(b.port, "w") as watch, m.Client(b.port, "p") as pub:
            watch.subscribe([("$SYS/broker/version", 0), ("$SYS/fake/#", 0)])
            first = watch.next_publish(timeout=2.0)  # the retained version
            self.assertTrue(first.payload.startswith(VERSION_PREFIX))
            pub.publish("$SYS/broker/version", b"evil 1.0", qos=0, retain=True)
            pub.publish("$SYS/fake/a", b"x", qos=1)   # PUBACK still comes
            pub.publish("$SYS/fake/b", b"x", qos=2)   # PUBREC, PUBREL, PUBCOMP still come
            pub.publish("$SYS", b"x", qos=0)
            watch.expect_no_publish(0.3)
        # A new subscriber still gets the broker's retained version, not the client's.
        with m.Client(b.port, "late") as late:
            late.subscribe([("$SYS/broker/version", 0)])
            self.assertTrue(late.next_publish(timeout=2.0).payload.startswith(VERSION_PREFIX))
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=3, publish_dropped_sys_topic=4)
        self.assertEqual(counters["publish_received_qos0"], 2)
        self.assertEqual(counters["publish_received_qos1"], 1)
        self.assertEqual(counters["publish_received_qos2"], 1)

    def test_will_on_sys_topic_refused_0x05_never_published(self):
        # Issue 11: a retained will on $SYS/broker/version replaced the broker's version
        # ("forged-by-client") and stayed there across $SYS updates. Wills follow the rule for
        # PUBLISH: $SYS is the broker's; such a CONNECT is refused as not authorized (as
        # Mosquitto refuses a will its ACL check denies), counted as connect_will_sys_topic.
        b = self.start_broker("--sys-interval-s", "1")
        with m.Client(b.port, "w") as watch:
            watch.subscribe([("$SYS/broker/version", 1), ("$SYS", 1)])
            first = watch.next_publish(timeout=2.0)  # the retained version
            self.assertTrue(first.payload.startswith(VERSION_PREFIX), first)
            for topic in ("$SYS/broker/version", "$SYS"):
                s = m.open_socket(b.port)
                with s:
                    s.sendall(m.connect(f"forger-{len(topic)}", will_topic=topic,
                                        will_message=b"forged-by-client", will_qos=1,
                                        will_retain=True))
                    m.expect_connack(s, 0x05)
                    m.expect_eof(s)
                # Had it been accepted, the close above (no DISCONNECT) would publish the will.
            watch.expect_no_publish(1.5)  # more than one $SYS interval
        # A new subscriber still gets the broker's retained version, not the client's.
        with m.Client(b.port, "late") as late:
            late.subscribe([("$SYS/broker/version", 0)])
            self.assertTrue(late.next_publish(timeout=2.0).payload.startswith(VERSION_PREFIX))
        # Wills elsewhere, even on other topics starting with '$', are still accepted.
        with m.Client(b.port, "ok-will", will_topic="$SYSTEM/gone", will_message=b"x") as ok:
            ok.disconnect()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=3, connect_will_sys_topic=2)

    def test_interval_0_turns_sys_off(self):
        b = self.start_broker("--sys-interval-s", "0")
        with m.Client(b.port, "sys") as c:
            c.subscribe([("$SYS/#", 0)])
            c.expect_no_publish(1.2)
        counters = b.stop()
        self.assertEqual(counters["sys_messages_published"], 0)

    def test_mosquitto_sub_reads_sys(self):
        b = self.start_broker("--sys-interval-s", "1")
        proc = subprocess.run(
            ["mosquitto_sub", "-h", m.HOST, "-p", str(b.port), "-t", "$SYS/broker/version",
             "-t", "$SYS/broker/clients/connected", "-C", "2", "-W", "5", "-v"],
            capture_output=True, text=True, timeout=10)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = sorted(proc.stdout.splitlines())
        self.assertEqual(len(lines), 2, proc.stdout)
        self.assertRegex(lines[0], r"^\$SYS/broker/clients/connected \d+$")
        self.assertTrue(lines[1].startswith("$SYS/broker/version ringmq "), lines[1])
        b.stop()
