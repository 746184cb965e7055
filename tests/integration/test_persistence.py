"""Crash-safe persistence (issue 15, docs/persistence.md): what a broker restart keeps.

The promise: once ringmq has sent PUBACK (QoS 1) or PUBREC (QoS 2) for a message, the message
survives a crash of the broker process and reaches every persistent session that matched it.
Persistent sessions (3.1.1 clean session 0, MQTT-3.1.2-4; 5.0 Session Expiry Interval > 0),
their subscriptions, queued and in-flight messages with packet ids and QoS 2 phase, inbound
QoS 2 ids awaiting PUBREL and retained messages come back after SIGTERM and after SIGKILL, also
when the thread count changes. A corrupt record stops the start (unless
persistence_truncate_corrupt); a full disk stops the acknowledgements that need it and nothing
else. The kill -9 loop itself is tests/integration/persistence_torture.py.

Run with /usr/bin/python3 (Debian's python3-paho-mqtt).
"""

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqtt_raw as m
import persistence_torture
from broker import BrokerTestCase, binary, free_port
from test_retained_race import home_shard

CLIENT_TIMEOUT = 10.0
QUIET = 0.5
# The CI variant of the kill -9 loop (scripts/persistence-torture.sh runs the long one).
TORTURE_SECONDS = 45.0
TORTURE_MIN_KILLS = 6


def persist_flags(data_dir, durability="fsync", *extra):
    return ("--persistence", "true", "--data-dir", data_dir, "--durability", durability,
            *extra)


def ids_on_shards(prefix, count, shards=2):
    """`count` client ids whose home shards go round robin over `shards` shards."""
    return persistence_torture.spread_ids(prefix, count, shards)


class PahoClient:
    """A paho 1.6 client (3.1.1 or 5.0) driven by loop() on this thread, with deadlines."""

    def __init__(self, client_id, protocol=paho.MQTTv311, clean_session=False):
        kwargs = {} if protocol == paho.MQTTv5 else {"clean_session": clean_session}
        self.client = paho.Client(client_id=client_id, protocol=protocol, **kwargs)
        self.protocol = protocol
        self.connacks = []  # (session present, return code / reason code value)
        self.messages = []  # (topic, payload, qos)
        self.subacks = []
        self.disconnected = []
        if protocol == paho.MQTTv5:
            self.client.on_connect = lambda c, u, flags, reason, props: self.connacks.append(
                (flags["session present"], reason.value))
            self.client.on_subscribe = lambda c, u, mid, reasons, props: self.subacks.append(
                [r.value for r in reasons])
        else:
            self.client.on_connect = lambda c, u, flags, rc: self.connacks.append(
                (flags["session present"], rc))
            self.client.on_subscribe = lambda c, u, mid, granted: self.subacks.append(
                list(granted))
        self.client.on_message = lambda c, u, msg: self.messages.append(
            (msg.topic, msg.payload, msg.qos))
        self.client.on_disconnect = lambda c, u, rc, *rest: self.disconnected.append(rc)

    def run_until(self, predicate, timeout=CLIENT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self.client.loop(timeout=0.05)
        return True

    def connect(self, port, expiry_s=None):
        """Connects (Clean Start 0 at 5.0) and returns the CONNACK's session present flag."""
        if self.protocol == paho.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry_s
            self.client.connect(m.HOST, port, keepalive=60, clean_start=False, properties=props)
        else:
            self.client.connect(m.HOST, port, keepalive=60)
        if not self.run_until(lambda: self.connacks or self.disconnected):
            raise AssertionError("no CONNACK")
        if not self.connacks or self.connacks[-1][1] != 0:
            raise AssertionError(f"CONNACK refused: {self.connacks} {self.disconnected}")
        return bool(self.connacks[-1][0])

    def subscribe(self, filters):
        self.client.subscribe(filters)
        if not self.run_until(lambda: self.subacks):
            raise AssertionError("no SUBACK")
        return self.subacks[-1]

    def disconnect(self):
        self.client.disconnect()
        self.client.loop(timeout=0.05)
        sock = self.client.socket()
        if sock:
            sock.close()
        time.sleep(0.2)  # the broker sees the DISCONNECT before anything that follows


def segments(data_dir):
    """{(shard, run, segment): path} of the segment files in `data_dir`."""
    out = {}
    for name in os.listdir(data_dir):
        parts = name.split(".")
        if name.startswith("shard-") and name.endswith(".log") and len(parts) == 4:
            out[(int(parts[0][6:]), int(parts[1]), int(parts[2]))] = os.path.join(data_dir, name)
    return out


def read_records(path):
    """[(offset, type, body length)] of a segment file (src/persist/record.h framing: a 32-byte
    header, then length u32 | CRC32C u32 | type u8 | body), up to the first incomplete one."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"RINGMQLG":
        raise AssertionError(f"{path}: no segment magic: {data[:32]!r}")
    out, pos = [], 32
    while pos + 9 <= len(data):
        length, _, rtype = struct.unpack_from("<IIB", data, pos)
        if rtype == 0 or pos + 9 + length > len(data):
            break
        out.append((pos, rtype, length))
        pos += 9 + length
    return out


SNAPSHOT_END = 2


class PersistenceTestCase(BrokerTestCase):
    def data_dir(self):
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-persist-")
        self.addCleanup(tmp.cleanup)
        return os.path.join(tmp.name, "data")

    def start_persistent(self, data_dir, *extra, threads=2, durability="fsync", **kwargs):
        return self.start_broker(*persist_flags(data_dir, durability, *extra), threads=threads,
                                 **kwargs)

    def kill(self, b):
        """SIGKILL: no final snapshot, no flush, nothing the process does on its way out."""
        self.assertTrue(b.running(), f"the broker died before the kill:\n{b.stderr_tail()}")
        b.proc.send_signal(signal.SIGKILL)
        b.cleanup()
        self.assertEqual(b.returncode, -signal.SIGKILL)

    def restart(self, b, how, threads=2):
        """Ends `b` by SIGTERM (a clean exit) or SIGKILL and starts a broker with the same flags
        (so on the same data dir) and `threads` shards."""
        if how == "sigterm":
            b.stop(signal.SIGTERM)
        else:
            self.kill(b)
        return self.start_broker(*b.flags, threads=threads, metrics=b.metrics)

    def retained(self, port, filt, client_id="ret-check"):
        """{topic: payload} of the retained messages a new subscription to `filt` gets."""
        with m.Client(port, client_id) as c:
            c.subscribe([(filt, 1)])
            got = {}
            while True:
                try:
                    pub = c.next_publish(timeout=QUIET)
                except m.ProtocolError:
                    break
                self.assertTrue(pub.retain, f"a live message on a retained check: {pub!r}")
                self.assertNotIn(pub.topic, got, f"{pub.topic} sent twice")
                got[pub.topic] = pub.payload
                c.acknowledge(pub)
            c.disconnect()
        return got


class RestartKeepsSessions(PersistenceTestCase):
    """Item 1: queued QoS 1/2 messages of an offline persistent session survive a restart and
    arrive in order per publisher (MQTT-4.6.0-6 for each topic) with session present 1
    (MQTT-3.2.2-2)."""

    def queue_and_restart(self, how, protocol, durability="fsync"):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir, durability=durability)
        sub_id = ids_on_shards(f"keep{protocol}{how}-", 1)[0]
        sub = PahoClient(sub_id, protocol)
        self.assertFalse(sub.connect(b.port, expiry_s=600))
        granted = sub.subscribe([("keep/q1/#", 1), ("keep/q2/#", 2)])
        self.assertEqual(granted, [1, 2])
        sub.disconnect()
        expected = []
        publishers = ids_on_shards(f"kpub{protocol}{how}-", 2)  # one on each shard
        pubs = [m.Client(b.port, cid) for cid in publishers]
        try:
            for i in range(20):
                for p in pubs:
                    qos = 1 + i % 2
                    topic = f"keep/q{qos}/{p.client_id}"
                    payload = f"{p.client_id}:{i}".encode()
                    p.publish(topic, payload, qos=qos)  # waits for PUBACK / PUBCOMP
                    expected.append((topic, payload, qos))
            for p in pubs:
                p.disconnect()
        finally:
            for p in pubs:
                p.close()
        b = self.restart(b, how)
        again = PahoClient(sub_id, protocol)
        self.assertTrue(again.connect(b.port, expiry_s=600),
                        "session present 0 after the restart")
        self.assertTrue(again.run_until(lambda: len(again.messages) >= len(expected)),
                        f"got {len(again.messages)} of {len(expected)}: {again.messages}")
        again.run_until(lambda: False, timeout=QUIET)
        self.assertEqual(sorted(again.messages), sorted(expected), "lost or duplicated")
        for p in publishers:  # in order per publisher and topic
            for qos in (1, 2):
                topic = f"keep/q{qos}/{p}"
                self.assertEqual([x for x in again.messages if x[0] == topic],
                                 [x for x in expected if x[0] == topic])
        # The subscriptions came back too: a new message arrives without a SUBSCRIBE.
        with m.Client(b.port, "kpub-late") as p:
            p.publish("keep/q2/late", b"late", qos=2)
            p.disconnect()
        self.assertTrue(again.run_until(lambda: ("keep/q2/late", b"late", 2) in again.messages),
                        f"the restored subscription did not match: {again.messages[-3:]}")
        again.disconnect()
        b.stop()

    def test_mqtt311_clean_session_0_queue_survives_sigterm(self):
        self.queue_and_restart("sigterm", paho.MQTTv311)

    def test_mqtt311_clean_session_0_queue_survives_sigkill(self):
        self.queue_and_restart("sigkill", paho.MQTTv311)

    def test_mqtt5_session_expiry_queue_survives_sigkill(self):
        self.queue_and_restart("sigkill", paho.MQTTv5)

    def test_mqtt5_session_expiry_queue_survives_sigterm(self):
        self.queue_and_restart("sigterm", paho.MQTTv5)

    def test_interval_durability_loses_nothing_acknowledged_on_a_sigkill(self):
        # durability = "interval" holds acknowledgements until the log's write (not its
        # fdatasync) completed: a crash of the process loses nothing acknowledged.
        self.queue_and_restart("sigkill", paho.MQTTv311, durability="interval")

    def test_clean_sessions_and_qos0_are_not_persisted(self):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir)
        # The publisher's home shard differs from the durable subscriber's: the QoS 0 message
        # crosses a mailbox and is dropped there (offline, not queued). Regression: the
        # receiving shard then read the freed message to confirm its durability (ASan:
        # heap-use-after-free in Router::PersistArrived).
        pub_id, durable_id, clean_id = ids_on_shards("np-", 3)
        with m.Client(b.port, clean_id, clean=True) as c:
            c.subscribe([("np/#", 1)])
            c.close()
        c = m.Client(b.port, durable_id, clean=False)
        c.subscribe([("np/#", 1)])
        c.disconnect()
        with m.Client(b.port, pub_id) as p:
            p.publish("np/0", b"zero", qos=0)  # QoS 0 is not queued for an offline session
            p.publish("np/1", b"one", qos=1)
            p.disconnect()
        b = self.restart(b, "sigkill")
        with m.Client(b.port, clean_id, clean=False, session_present=False) as c:
            c.expect_no_publish(QUIET)
            c.disconnect()
        with m.Client(b.port, durable_id, clean=False, session_present=True) as c:
            got = c.receive(1)
            self.assertEqual(got[0].key(), ("np/1", b"one", 1, False, False))
            c.expect_no_publish(QUIET)
            c.disconnect()
        b.stop()


class RetainedSurvives(PersistenceTestCase):
    """Item 2: set, replace, delete; the latest wins, also when publishers on both shards set
    the same topic (MQTT-3.3.1-5, MQTT-3.3.1-10/11)."""

    def test_retained_latest_wins_across_shards_after_sigkill_and_sigterm(self):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir)
        a_id, b_id = ids_on_shards("retpub-", 2)
        self.assertNotEqual(home_shard(a_id), home_shard(b_id))
        pa, pb = m.Client(b.port, a_id), m.Client(b.port, b_id)
        expected = {}
        try:
            def put(pub, topic, payload, qos=1):
                pub.publish(topic, payload, qos=qos, retain=True)
                if payload:
                    expected[topic] = payload
                else:
                    expected.pop(topic, None)

            put(pa, "ret/set", b"one")
            put(pa, "ret/replaced", b"first")
            put(pa, "ret/replaced", b"second", qos=2)
            put(pb, "ret/deleted", b"doomed")
            put(pa, "ret/deleted", b"")
            put(pb, "ret/reset", b"old")
            put(pb, "ret/reset", b"")
            put(pa, "ret/reset", b"back")
            for i in range(40):  # the same topic from both shards, alternating
                put((pa, pb)[i % 2], "ret/both", f"v{i}@{i % 2}".encode(), qos=1 + i % 2)
            for i in range(10):
                put((pb, pa)[i % 2], "ret/both2", f"w{i}".encode())
            pa.disconnect()
            pb.disconnect()
        finally:
            pa.close()
            pb.close()
        self.assertEqual(self.retained(b.port, "ret/#"), expected, "before the restart")
        b = self.restart(b, "sigkill")
        self.assertEqual(self.retained(b.port, "ret/#"), expected, "after SIGKILL")
        b = self.restart(b, "sigterm")
        self.assertEqual(self.retained(b.port, "ret/#"), expected, "after SIGTERM")
        # Writes after a recovery still win over the recovered ones (store versions go on).
        with m.Client(b.port, b_id) as p:
            p.publish("ret/both", b"after", qos=1, retain=True)
            p.disconnect()
        expected["ret/both"] = b"after"
        b = self.restart(b, "sigkill")
        self.assertEqual(self.retained(b.port, "ret/#"), expected, "after the second SIGKILL")
        b.stop()


class InboundQos2(PersistenceTestCase):
    """Item 3: an inbound QoS 2 message PUBREC'd before a SIGKILL is delivered exactly once
    when the publisher resends it with DUP=1 and then sends PUBREL (MQTT-4.3.3-2, method B:
    the packet id is remembered until PUBREL)."""

    def test_qos2_publish_resent_after_sigkill_is_delivered_exactly_once(self):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir)
        pub_id, off_id, on_id = ids_on_shards("inq2-", 3)
        offline = m.Client(b.port, off_id, clean=False)
        offline.subscribe([("inq2/#", 2)])
        offline.disconnect()
        online = m.Client(b.port, on_id, clean=False)
        online.subscribe([("inq2/#", 2)])
        pub = m.Client(b.port, pub_id, clean=False)
        try:
            pub.send(m.publish("inq2/t", b"once", qos=2, packet_id=77))
            pub.expect_reply(m.ack(m.PUBREC, 77), "PUBREC 77")
            # The online subscriber gets it at once and completes its QoS 2 flow.
            got = online.receive(1)
            self.assertEqual(got[0].key(), ("inq2/t", b"once", 2, False, False))
            online.expect_no_publish(QUIET)  # answers the PUBREL with PUBCOMP
        finally:
            pub.close()
            online.close()
        b = self.restart(b, "sigkill")
        with m.Client(b.port, pub_id, clean=False, session_present=True) as pub:
            pub.send(m.publish("inq2/t", b"once", qos=2, packet_id=77, dup=True))
            pub.expect_reply(m.ack(m.PUBREC, 77), "PUBREC 77 for the resent PUBLISH")
            pub.send(m.pubrel(77))
            pub.expect_reply(m.ack(m.PUBCOMP, 77), "PUBCOMP 77")
            pub.disconnect()
        with m.Client(b.port, off_id, clean=False, session_present=True) as c:
            got = c.receive(1)
            self.assertEqual(got[0].key(), ("inq2/t", b"once", 2, False, False))
            c.expect_no_publish(QUIET)
            c.disconnect()
        with m.Client(b.port, on_id, clean=False, session_present=True) as c:
            # A PUBREL whose PUBCOMP the crash may have lost is fine; the PUBLISH again is not.
            deadline = time.monotonic() + QUIET
            while time.monotonic() < deadline:
                try:
                    pkt = c.read_packet(max(0.01, deadline - time.monotonic()))
                except m.ProtocolError:
                    break
                self.assertEqual(pkt.type, m.PUBREL, f"delivered again: {pkt!r}")
                c.send(m.packet(0x70, pkt.body))
            c.disconnect()
        # The id was released: the same id now carries a new message.
        with m.Client(b.port, pub_id, clean=False, session_present=True) as pub:
            pub.publish("inq2/t", b"next", qos=2, packet_id=77)
            pub.disconnect()
        with m.Client(b.port, off_id, clean=False, session_present=True) as c:
            self.assertEqual(c.receive(1)[0].key(), ("inq2/t", b"next", 2, False, False))
            c.disconnect()
        b.stop()

    def test_pubrel_after_sigkill_releases_a_message_pubrecd_before(self):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir)
        pub_id, sub_id = ids_on_shards("inrel-", 2)
        sub = m.Client(b.port, sub_id, clean=False)
        sub.subscribe([("inrel/#", 2)])
        sub.disconnect()
        with m.Client(b.port, pub_id, clean=False) as pub:
            for pid in (5, 6):
                pub.send(m.publish("inrel/t", f"m{pid}".encode(), qos=2, packet_id=pid))
                pub.expect_reply(m.ack(m.PUBREC, pid), f"PUBREC {pid}")
            pub.close()
        b = self.restart(b, "sigkill")
        with m.Client(b.port, pub_id, clean=False, session_present=True) as pub:
            for pid in (5, 6):  # no resend of the PUBLISH: PUBREL only (MQTT-4.4.0-1)
                pub.send(m.pubrel(pid))
                pub.expect_reply(m.ack(m.PUBCOMP, pid), f"PUBCOMP {pid}")
            pub.disconnect()
        with m.Client(b.port, sub_id, clean=False, session_present=True) as c:
            self.assertEqual([x.key() for x in c.receive(2)],
                             [("inrel/t", b"m5", 2, False, False),
                              ("inrel/t", b"m6", 2, False, False)])
            c.expect_no_publish(QUIET)
            c.disconnect()
        b.stop()


class OutboundInflight(PersistenceTestCase):
    """Item 4: a subscriber's in-flight state survives a SIGKILL: a QoS 2 delivery PUBREC'd
    (PUBREL received, no PUBCOMP sent) gets PUBREL, not the PUBLISH again; an unacknowledged
    QoS 1 PUBLISH is resent with DUP=1 and the same packet id (MQTT-4.4.0-1)."""

    def test_inflight_qos1_resent_with_dup_and_qos2_gets_pubrel_after_sigkill(self):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir)
        pub_id, sub_id = ids_on_shards("outfl-", 2)
        sub = m.Client(b.port, sub_id, clean=False)
        sub.subscribe([("outfl/#", 2)])
        with m.Client(b.port, pub_id) as pub:
            pub.publish("outfl/2", b"two", qos=2)
            pub.publish("outfl/1", b"one", qos=1)
            pub.disconnect()
        try:
            first = sub.receive(2, ack=False)
            by_qos = {p.qos: p for p in first}
            self.assertEqual(sorted(by_qos), [1, 2], first)
            q2, q1 = by_qos[2], by_qos[1]
            sub.send(m.ack(m.PUBREC, q2.packet_id))
            sub.expect_reply(m.ack(m.PUBREL, q2.packet_id, flags=2), "PUBREL")
            # No PUBCOMP, no PUBACK. Give the log a moment to hold the PUBREC.
            time.sleep(0.5)
        finally:
            sub.close()
        b = self.restart(b, "sigkill")
        with m.Client(b.port, sub_id, clean=False, session_present=True) as c:
            got = [c.read_packet(what="the resent PUBREL / PUBLISH") for _ in range(2)]
            pubrels = [p for p in got if p.type == m.PUBREL]
            publishes = [m.Publish(p) for p in got if p.type == m.PUBLISH]
            self.assertEqual([p.raw for p in pubrels], [m.ack(m.PUBREL, q2.packet_id, flags=2)],
                             f"the QoS 2 delivery must resume at PUBREL: {got}")
            self.assertEqual(len(publishes), 1, got)
            again = publishes[0]
            self.assertEqual((again.topic, again.payload, again.qos, again.packet_id, again.dup),
                             ("outfl/1", b"one", 1, q1.packet_id, True))
            c.send(m.ack(m.PUBCOMP, q2.packet_id))
            c.send(m.ack(m.PUBACK, q1.packet_id))
            c.expect_no_publish(QUIET)
            c.disconnect()
        # Completed deliveries stay completed across a graceful restart.
        b = self.restart(b, "sigterm")
        with m.Client(b.port, sub_id, clean=False, session_present=True) as c:
            c.expect_no_publish(QUIET)
            c.disconnect()
        b.stop()


class KillLoop(PersistenceTestCase):
    """Item 5: the kill -9 loop, short variant (scripts/persistence-torture.sh: the long one)."""

    def test_kill_9_loop_keeps_every_acknowledged_message(self):
        self.kill_loop("fsync", TORTURE_SECONDS, TORTURE_MIN_KILLS)

    def test_kill_9_loop_keeps_every_acknowledged_message_with_interval_durability(self):
        # A process crash loses nothing acknowledged in this mode either (only a machine crash
        # may lose the last sync_interval_ms, which SIGKILL does not simulate).
        self.kill_loop("interval", TORTURE_SECONDS / 2, TORTURE_MIN_KILLS - 1)

    def kill_loop(self, durability, seconds, min_kills):
        logs = tempfile.TemporaryDirectory(prefix="ringmq-torture-logs-")
        self.addCleanup(logs.cleanup)
        torture = persistence_torture.Torture(
            binary(), data_dir=self.data_dir(), threads=2, duration=seconds,
            min_kills=min_kills, durability=durability, publishers=4, rate=40.0,
            broker_log_dir=logs.name)
        report = torture.run_all()
        summary = {k: v for k, v in report.items() if k not in ("violations",)}
        violations = report["violations"]
        if violations:
            last_logs = sorted(os.listdir(logs.name))[-2:]
            tails = "".join(
                f"\n--- {name} (tail):\n" +
                "\n".join(open(os.path.join(logs.name, name)).read().splitlines()[-40:])
                for name in last_logs)
            self.fail(f"{len(violations)} violations (seed {report['seed']}; rerun with "
                      f"scripts/persistence-torture.sh --durability {durability} --seed "
                      f"{report['seed']}: the same ids and choices, not the same timing):\n  - " +
                      "\n  - ".join(violations[:25]) + f"\nsummary: {summary}{tails}")
        self.assertGreaterEqual(report["kills"], min_kills)
        # The loop tested something: messages were acknowledged and delivered in bulk.
        self.assertGreater(report["acked"], 250, summary)
        self.assertGreater(report["retained_acked"], 10, summary)
        self.assertTrue(all(n > 50 for n in report["deliveries"].values()), summary)


class FakeSubscriber:
    def __init__(self, client_id, filt, qos, deliveries):
        self.client_id, self.filter, self.qos, self.mode = client_id, filt, qos, "online"
        self.deliveries = deliveries

    def count(self):
        return dict(self.deliveries)


class KillLoopChecker(PersistenceTestCase):
    """The kill -9 loop's final check catches what it is there to catch (no broker needed)."""

    def test_checker_reports_loss_duplicates_and_a_stale_retained_message(self):
        t = persistence_torture.Torture(binary())
        self.addCleanup(t.owned_dir.cleanup)
        reg = t.registry
        for seq, qos in ((1, 1), (2, 2), (3, 2), (4, 2)):
            reg.publish(f"p:{seq}".encode(), f"tt/p/q{qos}", qos)
        for seq in (1, 2, 3):
            reg.ack(f"p:{seq}".encode())  # p:4 was in flight at a crash: in doubt
        ok = FakeSubscriber("ok", "tt/#", 2, {b"p:1": 2, b"p:2": 1, b"p:3": 1})
        lost = FakeSubscriber("lost", "tt/#", 1, {b"p:1": 1, b"p:3": 3})
        dup = FakeSubscriber("dup", "tt/+/q2", 2, {b"p:2": 1, b"p:3": 2})
        doubt = FakeSubscriber("doubt", "tt/#", 2, {b"p:1": 1, b"p:2": 1, b"p:3": 1, b"p:4": 2})
        e = reg.retain_issue("rt/0", b"old")
        reg.retain_ack(e)
        reg.retain_ack(reg.retain_issue("rt/0", b"new"))
        reg.retain_issue("rt/1", b"maybe")  # in flight at a crash: either outcome is fine
        reg.retain_ack(reg.retain_issue("rt/2", b"x"))
        reg.retain_ack(reg.retain_issue("rt/2", b""))  # deleted
        t.check([ok, lost, dup, doubt], {"rt/0": b"old", "rt/1": b"maybe", "rt/2": b"x"})
        text = "\n".join(t.violations)
        self.assertEqual(len(t.violations), 5, text)
        self.assertIn("lost (online, tt/# QoS 1): 1 acknowledged messages never delivered", text)
        self.assertIn("dup (online, tt/+/q2 QoS 2): 1 QoS 2 messages delivered more than once",
                      text)
        self.assertIn("doubt (online, tt/# QoS 2): 1 QoS 2 messages delivered more than once",
                      text)
        self.assertIn("retained rt/0: holds b'old'", text)
        self.assertIn("retained rt/2: holds b'x'", text)
        t.violations.clear()
        t.check([ok], {"rt/0": b"new"})
        self.assertEqual(t.violations, [])


class ThreadCountChange(PersistenceTestCase):
    """Item 6: data written with --threads 2 is recovered with --threads 1 and then 3: each
    session moves to its new home shard (hash(client id) % shards) with its queue."""

    def test_sessions_and_queues_survive_threads_2_to_1_to_3(self):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir, threads=2)
        ids = ids_on_shards("tcc-", 6, shards=6)  # homes differ under 2 and 3 shards
        for cid in ids:
            c = m.Client(b.port, cid, clean=False)
            c.subscribe([("tcc/q1", 1), ("tcc/q2", 2)])
            c.disconnect()
        expected = []
        with m.Client(b.port, "tcc-pub") as p:
            for i in range(10):
                for qos in (1, 2):
                    payload = f"m{i}q{qos}".encode()
                    p.publish(f"tcc/q{qos}", payload, qos=qos)
                    expected.append((f"tcc/q{qos}", payload, qos, False, False))
            p.disconnect()
        first, second = ids[:3], ids[3:]
        b = self.restart(b, "sigkill", threads=1)
        for cid in first:
            with m.Client(b.port, cid, clean=False, session_present=True) as c:
                self.assertEqual(sorted(x.key() for x in c.receive(len(expected))),
                                 sorted(expected), cid)
                c.expect_no_publish(QUIET)
                c.disconnect()
        b = self.restart(b, "sigkill", threads=3)
        for cid in second:
            with m.Client(b.port, cid, clean=False, session_present=True) as c:
                self.assertEqual(sorted(x.key() for x in c.receive(len(expected))),
                                 sorted(expected), cid)
                c.expect_no_publish(QUIET)
                c.disconnect()
        subs = [m.Client(b.port, cid, clean=False, session_present=True) for cid in ids]
        try:
            m.expect_quiet(subs, QUIET)  # the first three got theirs under --threads 1
            with m.Client(b.port, "tcc-pub") as p:
                p.publish("tcc/q2", b"after", qos=2)
                p.disconnect()
            for cid, got in zip(ids, m.receive_all(subs, [1] * len(subs), timeout=5.0)):
                self.assertEqual(got[0].key(), ("tcc/q2", b"after", 2, False, False), cid)
            for c in subs:
                c.disconnect()
        finally:
            for c in subs:
                c.close()
        b.stop()


def run_db(*args, timeout=30):
    argv = [binary(), "db", *args]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(argv)} did not finish within {timeout}s") from None


class DbTool(PersistenceTestCase):
    """Item 7: `ringmq db check DIR` and `ringmq db dump DIR` on a directory a SIGKILL left."""

    def test_db_check_and_dump_after_sigkill(self):
        data_dir = self.data_dir()
        b = self.start_persistent(data_dir)
        sub_ids = ids_on_shards("dbsub-", 2)
        for cid in sub_ids:
            c = m.Client(b.port, cid, clean=False)
            c.subscribe([("db/#", 1)])
            c.disconnect()
        with m.Client(b.port, "dbpub") as p:
            for i in range(5):
                p.publish("db/x", f"q{i}".encode(), qos=1)
            p.publish("dbret/a", b"retained", qos=1, retain=True)
            p.disconnect()
        self.kill(b)
        before = {name: os.path.getsize(os.path.join(data_dir, name))
                  for name in os.listdir(data_dir)}
        check = run_db("check", data_dir)
        self.assertEqual(check.returncode, 0, f"stdout:\n{check.stdout}\nstderr:\n{check.stderr}")
        dump = run_db("dump", data_dir)
        self.assertEqual(dump.returncode, 0, f"stdout:\n{dump.stdout}\nstderr:\n{dump.stderr}")
        for cid in sub_ids:
            self.assertIn(cid, dump.stdout)
        self.assertIn("dbret/a", dump.stdout)
        self.assertIn("db/#", dump.stdout)
        as_json = run_db("dump", "--json", data_dir)
        self.assertEqual(as_json.returncode, 0, as_json.stderr)
        doc = json.loads(as_json.stdout)
        sessions = {x["client_id"]: x for x in doc["sessions"]}
        self.assertEqual(sorted(sessions), sorted(sub_ids), doc)  # clean sessions not kept
        for cid in sub_ids:
            self.assertEqual(sessions[cid]["queued"] + sessions[cid]["in_flight"], 5, doc)
            self.assertEqual([(x["filter"], x["qos"]) for x in sessions[cid]["subscriptions"]],
                             [("db/#", 1)])
        self.assertEqual([(x["topic"], x["payload_bytes"]) for x in doc["retained"]],
                         [("dbret/a", 8)])
        # Read-only: nothing truncated or deleted, and the broker recovers the same state.
        after = {name: os.path.getsize(os.path.join(data_dir, name))
                 for name in os.listdir(data_dir)}
        self.assertEqual(after, before)
        b = self.start_persistent(data_dir)
        for cid in sub_ids:
            with m.Client(b.port, cid, clean=False, session_present=True) as c:
                self.assertEqual([x.payload for x in c.receive(5)],
                                 [f"q{i}".encode() for i in range(5)])
                c.disconnect()
        self.assertEqual(self.retained(b.port, "dbret/#"), {"dbret/a": b"retained"})
        b.stop()

    def test_db_check_reports_a_corrupt_record_and_exits_1(self):
        data_dir = self.data_dir()
        path, offset = CorruptRecord.make_corrupt_dir(self, data_dir)
        check = run_db("check", data_dir)
        self.assertEqual(check.returncode, 1, f"stdout:\n{check.stdout}\nstderr:\n{check.stderr}")
        out = check.stdout + check.stderr
        self.assertIn(os.path.basename(path), out)
        self.assertTrue(str(offset) in out or hex(offset) in out, f"offset {offset} not in {out}")


class CorruptRecord(PersistenceTestCase):
    """Item 8: a corrupt record in the middle of a segment stops the start with the file and
    offset; persistence_truncate_corrupt cuts the segment there and starts."""

    @staticmethod
    def make_corrupt_dir(test, data_dir):
        """Writes state, SIGKILLs, flips a byte inside a record that has records after it in
        the newest segment; returns (path, offset of the damaged record)."""
        b = test.start_persistent(data_dir, threads=1)
        c = m.Client(b.port, "cr-sub", clean=False)
        c.subscribe([("cr/#", 1)])
        c.disconnect()
        with m.Client(b.port, "cr-pub") as p:
            for i in range(10):
                p.publish("cr/x", f"payload-{i:04}".encode() * 4, qos=1)
            p.disconnect()
        test.kill(b)
        segs = segments(data_dir)
        test.assertTrue(segs, os.listdir(data_dir))
        newest = segs[max(segs, key=lambda k: (k[1], k[2]))]
        records = read_records(newest)
        ends = [i for i, r in enumerate(records) if r[1] == SNAPSHOT_END]
        test.assertTrue(ends, f"{newest}: no snapshot end in {records}")
        after = records[ends[0] + 1:]
        test.assertGreater(len(after), 6, f"{newest}: too few records after the snapshot")
        offset, _, length = after[len(after) // 2]
        with open(newest, "r+b") as f:
            f.seek(offset + 9 + length // 2)
            byte = f.read(1)
            f.seek(offset + 9 + length // 2)
            f.write(bytes([byte[0] ^ 0x5A]))
        return newest, offset

    def test_corrupt_record_refuses_start_naming_file_and_offset(self):
        data_dir = self.data_dir()
        path, offset = self.make_corrupt_dir(self, data_dir)
        size = os.path.getsize(path)
        argv = [binary(), "--bind", m.HOST, "--port", str(free_port()), "--threads", "1",
                "--metrics-port", "0", *persist_flags(data_dir)]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=20)
        except subprocess.TimeoutExpired:
            self.fail(f"the broker started (or hung) on a corrupt data dir: {argv}")
        self.assertNotEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(os.path.basename(path), proc.stderr)
        self.assertTrue(str(offset) in proc.stderr or hex(offset) in proc.stderr,
                        f"offset {offset} not named:\n{proc.stderr}")
        self.assertEqual(os.path.getsize(path), size, "the refused start changed the file")
        # The explicit option cuts the segment at the bad record and starts.
        b = self.start_persistent(data_dir, "--persistence-truncate-corrupt", "true", threads=1)
        self.assertTrue(any(os.path.basename(path) in line for line in b.lines), b.stderr())
        self.assert_serves(b)
        # The session (recorded before the damage) is there; some of its messages may not be.
        with m.Client(b.port, "cr-sub", clean=False, session_present=True) as c:
            got = []
            while True:
                try:
                    got.append(c.next_publish(timeout=QUIET))
                except m.ProtocolError:
                    break
                c.acknowledge(got[-1])
            self.assertLess(len(got), 10, "a record after the cut was recovered")
            c.disconnect()
        b = self.restart(b, "sigkill", threads=1)  # and the cut directory starts again
        self.assert_serves(b)
        b.stop()


def mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` at `path` (as root, or through sudo -n); returns None or why
    it could not."""
    argv = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path]
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            return "not root and no sudo"
        argv = ["sudo", "-n", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return repr(e)
    return None if proc.returncode == 0 else proc.stderr.strip() or f"exit {proc.returncode}"


def umount(path):
    argv = ["umount", path] if os.geteuid() == 0 else ["sudo", "-n", "umount", path]
    subprocess.run(argv, capture_output=True, timeout=10)


def fill(path):
    """Writes a file into `path`'s filesystem until it is full; returns the file."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 16, 4096, 512):
            while True:
                try:
                    f.write(b"\xff" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return filler


def persist_metric(port_url):
    """{name: value} of the ringmq_persist_* samples (summed over labels)."""
    with urllib.request.urlopen(port_url, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("ringmq_persist"):
            name = line.split("{")[0].split(" ")[0]
            out[name] = out.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return out


HELD = b"held" * 8192


class PublisherFasterThanTheLog(PersistenceTestCase):
    """docs/persistence.md, "Acknowledgements wait for the log": a 3.1.1 publisher has no
    Receive Maximum, so it may keep sending QoS 1 PUBLISHes while their PUBACKs wait for
    fdatasync. Those PUBACKs wait for the broker's disk, not for the client: the broker stops
    reading that client at a bound of held replies (ringmq_persist_input_held_back_total) and
    goes on once the log catches up. It once closed such a publisher as a peer that does not
    read its replies (output_overflow), losing the window the load generator had in flight."""

    def test_burst_without_receive_maximum_gets_every_puback_in_order_and_no_close(self):
        b = self.start_persistent(self.data_dir(), "--max-queued-messages", "100000",
                                  metrics=True)
        total = 40000
        sub = m.Client(b.port, "hb-durable", clean=False)
        self.addCleanup(sub.close)
        sub.subscribe([("hb/#", 1)])
        pub = m.Client(b.port, "hb-pub")
        self.addCleanup(pub.close)
        burst = b"".join(m.publish("hb/t", b"x", qos=1, packet_id=i) for i in range(1, total + 1))
        got = []
        errors = []

        def subscriber():
            try:
                got.extend(sub.receive(total, timeout=90.0))
            except Exception as e:  # reported below
                errors.append(e)

        reader = threading.Thread(target=subscriber)
        reader.start()
        sender = threading.Thread(target=lambda: pub.sock.sendall(burst))
        sender.start()
        ids = []
        try:
            while len(ids) < total:
                pkt = pub.read_packet(60.0)
                self.assertEqual(pkt.type, m.PUBACK, pkt)
                ids.append(struct.unpack(">H", pkt.body[:2])[0])
        finally:
            sender.join(60.0)
            reader.join(90.0)
        # MQTT-4.6.0-2: PUBACKs in the order the PUBLISHes were received.
        self.assertEqual(ids, list(range(1, total + 1)))
        self.assertEqual(errors, [])
        self.assertEqual(len(got), total)
        pub.ping()
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=2, output_overflow=0,
                             connections_closed=None, persist_write_errors=0)
        print(f"persist_input_held_back={counters.get('persist_input_held_back')}")




class DiskFull(PersistenceTestCase):
    """Item 9: a full disk (a real tmpfs): QoS 0 and clean sessions go on; a QoS 1 PUBLISH for
    a persistent session is not acknowledged (its PUBACK is held, or, once the log is known to
    fail, the connection is closed, as docs/persistence.md says); failures and refusals are
    counted; everything recovers once there is room."""

    def test_full_tmpfs_stops_durable_acks_only_and_recovers(self):
        mnt = tempfile.mkdtemp(prefix="ringmq-tmpfs-")
        self.addCleanup(shutil.rmtree, mnt, True)
        why = mount_tmpfs(mnt, "2m")
        if why is not None:
            self.skipTest(f"cannot mount a tmpfs here ({why}): the disk-full path is covered "
                          "by the unit crash tests only")
        self.addCleanup(umount, mnt)
        data_dir = os.path.join(mnt, "data")
        b = self.start_persistent(data_dir, metrics=True)
        durable = m.Client(b.port, "df-durable", clean=False)
        durable.subscribe([("df/#", 1)])
        durable.disconnect()
        live = m.Client(b.port, "df-live")  # clean session: nothing of it is persisted
        self.addCleanup(live.close)
        live.subscribe([("nd/#", 1)])
        filler = fill(mnt)
        pub = m.Client(b.port, "df-pub")
        self.addCleanup(lambda: pub.close())
        # Not persistent: served as usual.
        pub.publish("nd/0", b"zero", qos=0)
        pub.publish("nd/1", b"one", qos=1)
        self.assertEqual([x.key()[:3] for x in live.receive(2)],
                         [("nd/0", b"zero", 0), ("nd/1", b"one", 1)])
        # Persistent: no PUBACK while the log cannot be written. The payload needs new pages (a
        # small record could still fit in the last page the segment file has).
        pub.send(m.publish("df/x", HELD, qos=1, packet_id=9))
        closed = False
        try:
            pkt = pub.read_packet(3.0)
            self.fail(f"acknowledged on a full disk: {pkt!r}")
        except m.ProtocolError as e:
            closed = "closed" in str(e)
        metrics = persist_metric(b.metrics_url())
        self.assertGreater(metrics.get("ringmq_persist_write_errors_total", 0), 0, metrics)
        self.assertTrue(b.wait_for_log(r"(?i)(ENOSPC|No space left)", 2.0), b.stderr_tail())
        # QoS 0 and clean sessions keep working while the disk is full (from another
        # connection: the held PUBACK keeps everything `pub` is sent behind it, in order).
        with m.Client(b.port, "df-other") as other:
            other.subscribe([("nd/other", 1)])
            other.publish("nd/3", b"three", qos=0)
            self.assertEqual(live.receive(1)[0].key()[:2], ("nd/3", b"three"))
            other.ping()
            # docs/persistence.md: while a shard's log is failing, a new QoS 1/2 PUBLISH is not
            # acknowledged; its connection is closed and the client resends after reconnecting.
            other.send(m.publish("nd/2", b"two", qos=1, packet_id=3))
            other.expect_eof(timeout=5.0)
        metrics = persist_metric(b.metrics_url())
        self.assertGreater(metrics.get("ringmq_persist_publish_refused_total", 0), 0, metrics)
        self.assert_serves(b)
        if closed:
            pub.close()
            pub = m.Client(b.port, "df-pub")
        os.unlink(filler)
        if closed:
            pub.publish("df/x", HELD, qos=1, packet_id=9)  # the resend, as a client does
        else:
            pub.expect_reply(m.ack(m.PUBACK, 9), "the held PUBACK once there is room",
                             timeout=10.0)
        pub.publish("df/x", b"after", qos=1)
        pub.disconnect()
        live.disconnect()
        # What was acknowledged once the disk had room again is durable.
        b = self.restart(b, "sigkill")
        with m.Client(b.port, "df-durable", clean=False, session_present=True) as c:
            got = []
            while True:
                try:
                    got.append(c.next_publish(timeout=2 * QUIET))
                except m.ProtocolError:
                    break
                c.acknowledge(got[-1])
            payloads = [x.payload for x in got]
            # QoS 1: at least once (a resend after a disconnect may be a second copy).
            self.assertEqual(set(payloads), {HELD, b"after"}, got)
            self.assertEqual(payloads[-1], b"after", got)
            c.disconnect()
        b.stop()
