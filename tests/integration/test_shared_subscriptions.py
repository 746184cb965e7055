"""Shared subscriptions ("$share/{ShareName}/{filter}", MQTT 5.0 §4.8.2) from MQTT 3.1.1 clients
(paho-mqtt 1.6 and mosquitto_sub / mosquitto_pub): each message goes to one member of the group,
members on both shards of a 2-shard broker, round robin spread, a member leaving mid-stream loses
no QoS 1 message, retained messages are not sent on $share, and a normal subscriber beside the
group gets every message.

Client ids are chosen for their home shard (std::hash<std::string_view> of the id, modulo 2, as
connect::HomeShard computes it with libstdc++): member-a-0 and member-c-1 live on shard 1,
member-b-2 on shard 0, the publisher pub-1 on shard 0, normal-0 on shard 1.

Run with /usr/bin/python3 (python3-paho-mqtt).
"""

import collections
import shutil
import subprocess
import threading
import time

import paho.mqtt.client as paho

from broker import BrokerTestCase

TIMEOUT = 30.0
GROUP = "$share/workers/work/#"
MEMBERS = ("member-a-0", "member-b-2", "member-c-1")
PUBLISHER = "pub-1"
NORMAL = "normal-0"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
STDBUF = shutil.which("stdbuf") or "/usr/bin/stdbuf"


class Receiver:
    """A paho 3.1.1 client on its own network thread that records what it receives."""

    def __init__(self, port, client_id, filter_, qos=1):
        self.messages = []  # (topic, payload, retain)
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(client_id=client_id, clean_session=True,
                                  protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_connect = lambda c, u, f, rc: c.subscribe(filter_, qos)
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not self.subscribed.wait(TIMEOUT):
            raise AssertionError(f"{client_id}: no SUBACK")

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def count(self):
        with self.lock:
            return len(self.messages)

    def payloads(self):
        with self.lock:
            return [payload for _, payload, _ in self.messages]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def publish_all(port, n, topic_of=lambda i: f"work/{i}", on_progress=None):
    """Publishes payloads b"0" .. b"n-1" at QoS 1 from PUBLISHER and waits for every PUBACK."""
    client = paho.Client(client_id=PUBLISHER, clean_session=True, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(64)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    try:
        infos = []
        for i in range(n):
            infos.append(client.publish(topic_of(i), str(i).encode(), qos=1))
            if on_progress is not None:
                on_progress(i)
        deadline = time.monotonic() + TIMEOUT
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise AssertionError("the broker did not acknowledge every PUBLISH in time")
    finally:
        client.disconnect()
        client.loop_stop()


def wait_until(predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class SharedSubscriptions(BrokerTestCase):
    def test_each_message_reaches_one_member_exactly_once_across_shards(self):
        b = self.start_broker(threads=2)
        # A retained message stored before anyone subscribes: not sent on $share (5.0 §4.8.2).
        retained = paho.Client(client_id="retainer", protocol=paho.MQTTv311)
        retained.connect("127.0.0.1", b.port)
        retained.loop_start()
        retained.publish("work/retained", b"kept", qos=1, retain=True).wait_for_publish(TIMEOUT)
        retained.disconnect()
        retained.loop_stop()

        members = [Receiver(b.port, cid, GROUP) for cid in MEMBERS]
        normal = Receiver(b.port, NORMAL, "work/#")
        try:
            self.assertTrue(wait_until(lambda: normal.count() == 1), "retained to normal")
            n = 3000
            publish_all(b.port, n)
            self.assertTrue(wait_until(lambda: sum(m.count() for m in members) >= n
                                       and normal.count() >= n + 1),
                            f"members got {[m.count() for m in members]}, normal "
                            f"{normal.count()} of {n}")
            time.sleep(0.3)  # nothing more may arrive
            got = [p for m in members for p in m.payloads()]
            counts = collections.Counter(got)
            self.assertEqual(set(counts), {str(i).encode() for i in range(n)}, "no loss")
            self.assertEqual(max(counts.values()), 1, "no duplicate")
            for m in members:
                self.assertTrue(all(not r for _, _, r in m.messages))
                self.assertNotIn(b"kept", m.payloads(), "retained sent on $share")
                # One publishing shard, its own cursor: round robin over the three.
                self.assertGreater(m.count(), n // 3 - n // 10, [x.count() for x in members])
                self.assertLess(m.count(), n // 3 + n // 10, [x.count() for x in members])
            self.assertEqual(normal.count(), n + 1, "the normal subscriber gets every message")
        finally:
            for r in (*members, normal):
                r.stop()
        counters = b.stop()
        self.assert_counters_at_least(counters, shared_deliveries=3000)
        self.assert_counters(counters, connect_accepted=6, subscriptions_added=4,
                             shared_no_member=0, dropped_queue_full=0,
                             publish_dropped_no_subscribers=1, shared_deliveries=None,
                             shared_skips=None, shared_rerouted=None)

    def test_member_leaving_mid_stream_loses_no_qos1_message(self):
        b = self.start_broker(threads=2)
        members = [Receiver(b.port, cid, GROUP) for cid in MEMBERS]
        leaver = members[1]
        left = threading.Event()

        def leave_midway(i):
            # Once the leaver has a share of the stream and the publisher is still sending.
            if i == 1500 and not left.is_set():
                left.set()
                wait_until(lambda: leaver.count() >= 300, 10.0)
                # Abrupt: the socket closes with QoS 1 messages queued and unacknowledged.
                leaver.client.loop_stop()
                leaver.client.socket().close()

        try:
            n = 3000
            publish_all(b.port, n, on_progress=leave_midway)
            self.assertTrue(wait_until(lambda: len(set(
                p for m in members for p in m.payloads())) >= n),
                f"got {[m.count() for m in members]} of {n}")
            time.sleep(0.3)  # nothing more may arrive
            got = collections.Counter(p for m in members for p in m.payloads())
            self.assertEqual(set(got), {str(i).encode() for i in range(n)}, "no QoS 1 message lost")
            duplicates = sum(c - 1 for c in got.values())
            self.assertGreaterEqual(leaver.count(), 300)
        finally:
            for m in (members[0], members[2]):
                m.stop()
        counters = b.stop()
        # Only a re-routed message can reach two members: one the leaver had read but not yet
        # acknowledged when its connection went away.
        if counters is not None:
            self.assertLessEqual(duplicates, counters["shared_rerouted"])
        self.assert_counters(counters, connect_accepted=4, subscriptions_added=3,
                             dropped_queue_full=0, shared_deliveries=None, shared_skips=None,
                             shared_rerouted=None, shared_no_member=None,
                             publish_dropped_no_subscribers=None)

    def test_mosquitto_sub_members_share_mosquitto_pub_messages(self):
        b = self.start_broker(threads=2)
        subs = []
        for cid in ("member-a-0", "member-b-2"):
            argv = [STDBUF, "-oL", MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(b.port), "-V",
                    "mqttv311", "-i", cid, "-q", "1", "-t", "$share/m/mq/#", "-W", "20", "-d"]
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            self.addCleanup(proc.kill)
            lines = []
            subscribed = threading.Event()

            def read(proc=proc, lines=lines, subscribed=subscribed):
                for line in proc.stdout:
                    line = line.rstrip("\n")
                    if "received SUBACK" in line:
                        subscribed.set()
                    elif not line.startswith(("Client ", "Subscribed ")):
                        lines.append(line)

            threading.Thread(target=read, daemon=True).start()
            self.assertTrue(subscribed.wait(TIMEOUT), f"{cid}: no SUBACK")
            subs.append(lines)
        payloads = "\n".join(f"m{i}" for i in range(20)) + "\n"
        proc = subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(b.port), "-V",
                               "mqttv311", "-i", PUBLISHER, "-q", "1", "-t", "mq/x", "-l"],
                              input=payloads, capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(wait_until(lambda: sum(len(s) for s in subs) >= 20),
                        f"got {[len(s) for s in subs]} of 20")
        time.sleep(0.3)
        got = [line for s in subs for line in s]
        self.assertEqual(sorted(got), sorted(f"m{i}" for i in range(20)))
        self.assertEqual([len(s) for s in subs], [10, 10], "round robin over two members")
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=3, subscriptions_added=2,
                             shared_deliveries=20, shared_no_member=0, shared_skips=None,
                             shared_rerouted=None)


if __name__ == "__main__":
    import unittest
    unittest.main()
