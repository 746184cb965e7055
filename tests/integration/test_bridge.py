"""MQTT bridges (docs/bridges.md) against Debian Mosquitto as the remote broker: ringmq's
[[bridge]] tables carry messages out and in at QoS 0/1/2 with topics remapped by their
prefixes, both directions without loops, through a restart of the remote with QoS 1 traffic in
flight (nothing lost within the queue bound), the bound hit (counted drops), and credentials.

Each test starts its own Mosquitto (a temporary config on a free port) and ringmq; every wait
is bounded.
"""

import os
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import broker
import mqtt_raw
from test_cluster import metric
from test_tls import Pki

MOSQUITTO = "/usr/sbin/mosquitto"
WAIT = 10.0  # seconds for a bridge to (re)connect or a message to cross


class Mosquitto:
    """A Mosquitto process on 127.0.0.1:`port` with `lines` added to its config."""

    def __init__(self, directory, port=None, lines=()):
        self.directory = directory
        self.port = port or broker.free_port()
        self.lines = list(lines)
        self.proc = None

    def start(self):
        path = os.path.join(self.directory, f"mosquitto-{self.port}.conf")
        with open(path, "w") as f:
            f.write("\n".join([f"listener {self.port} {mqtt_raw.HOST}"] + self.lines) + "\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((mqtt_raw.HOST, self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"mosquitto exited with {self.proc.returncode}")
                time.sleep(0.05)
        raise AssertionError(f"mosquitto not listening on {self.port} within {WAIT}s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def bridge_toml(name, port, topics, **keys):
    lines = ["[[bridge]]", f'name = "{name}"', f'addresses = ["127.0.0.1:{port}"]',
             "topics = [" + ", ".join(f"'{t}'" for t in topics) + "]"]
    keys.setdefault("restart_initial_ms", 200)
    keys.setdefault("restart_max_ms", 1000)
    for key, value in keys.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, str):
            value = f'"{value}"'
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def wait_for(condition, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.05)


class BridgeTestCase(broker.BrokerTestCase):
    def setUp(self):
        if broker.is_mosquitto():
            self.skipTest("ringmq's [[bridge]] tables (the remote is Mosquitto already)")
        self.tmp = tempfile.TemporaryDirectory(prefix="ringmq-bridge-")
        self.addCleanup(self.tmp.cleanup)
        # Mosquitto started as root runs as user "mosquitto": it must read its password file
        # and write its persistence file here.
        os.chmod(self.tmp.name, 0o777)

    def mosquitto(self, port=None, lines=("allow_anonymous true",)):
        m = Mosquitto(self.tmp.name, port, lines)
        self.addCleanup(m.stop)
        return m.start()

    def ringmq(self, *tables, flags=(), **kwargs):
        path = os.path.join(self.tmp.name, f"ringmq-{len(os.listdir(self.tmp.name))}.toml")
        with open(path, "w") as f:
            f.write("\n".join(tables))
        node = self.start_broker("--config", path, *flags, metrics=True, log_level="info",
                                 **kwargs)
        # A clean stop (exit code 0, counters printed) with its bridges running; runs before
        # start_broker's cleanup, which only kills.
        self.addCleanup(node.stop)
        return node

    def client(self, port, client_id, **fields):
        c = mqtt_raw.Client(port, client_id, **fields)
        self.addCleanup(c.close)
        return c

    def wait_connected(self, node, count=1):
        wait_for(lambda: metric(node, "ringmq_bridges_connected") >= count,
                 f"bridge connected:\n{node.stderr_tail()}")

    def remote_with_waiting_subscriber(self, port, client_id, topic_filter):
        """A Mosquitto on `port` that already holds the persistent session `client_id`
        subscribed to `topic_filter` at QoS 1, offline: it was made on another port and
        restored from Mosquitto's persistence, so the bridge, which connects as soon as `port`
        listens, never finds the remote without the subscriber. Returns the Mosquitto; the
        subscriber then connects with clean=False and gets what was queued for it."""
        store = os.path.join(self.tmp.name, f"mosquitto-store-{port}")
        os.mkdir(store)
        os.chmod(store, 0o777)  # Mosquitto started as root runs as user mosquitto
        lines = ("allow_anonymous true", "persistence true", f"persistence_location {store}/")
        first = self.mosquitto(lines=lines)
        sub = mqtt_raw.Client(first.port, client_id, clean=False)
        sub.subscribe([(topic_filter, 1)])
        sub.close()
        first.stop()  # writes the session to the store
        return self.mosquitto(port=port, lines=lines)

    def wait_subscribed(self, publisher, subscriber, topic):
        """Probes on `topic` until one reaches `subscriber` (the bridge's subscriptions are in
        place on both brokers), then drains the probes."""
        deadline = time.monotonic() + WAIT
        while True:
            publisher.publish(topic, b"probe")
            try:
                subscriber.receive(1, timeout=0.2)
                break
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no route for {topic} within {WAIT}s")
        while True:
            try:
                subscriber.receive(1, timeout=0.3)
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                return


class BridgeFlowTest(BridgeTestCase):
    TOPICS = ['out/# out 1 "" site1/', 'in/# in 2 "" site1/', "both/# both 2"]

    def setUp(self):
        super().setUp()
        self.remote = self.mosquitto()
        self.node = self.ringmq(bridge_toml("cloud", self.remote.port, self.TOPICS,
                                            client_id="edge1"))
        self.wait_connected(self.node)

    def test_out_at_qos_0_1_2_remapped_and_downgraded_to_the_rule(self):
        remote_sub = self.client(self.remote.port, "rsub")
        remote_sub.subscribe([("site1/out/#", 2)])
        local_pub = self.client(self.node.port, "lpub")
        self.wait_subscribed(local_pub, remote_sub, "out/probe")
        for qos in (0, 1, 2):
            local_pub.publish(f"out/q{qos}", f"m{qos}".encode(), qos=qos)
        got = remote_sub.receive(3)
        self.assertEqual(sorted((p.topic, p.payload, p.qos) for p in got),
                         [("site1/out/q0", b"m0", 0), ("site1/out/q1", b"m1", 1),
                          ("site1/out/q2", b"m2", 1)])  # the rule's QoS 1 caps QoS 2
        remote_sub.expect_no_publish(0.3)
        self.assertGreaterEqual(metric(self.node, "ringmq_bridge_messages_total",
                                       direction="out"), 3)

    def test_in_at_qos_0_1_2_remapped(self):
        local_sub = self.client(self.node.port, "lsub")
        local_sub.subscribe([("in/#", 2)])
        remote_pub = self.client(self.remote.port, "rpub")
        self.wait_subscribed(remote_pub, local_sub, "site1/in/probe")
        for qos in (0, 1, 2):
            remote_pub.publish(f"site1/in/q{qos}", f"m{qos}".encode(), qos=qos)
        got = local_sub.receive(3)
        self.assertEqual(sorted((p.topic, p.payload, p.qos) for p in got),
                         [("in/q0", b"m0", 0), ("in/q1", b"m1", 1), ("in/q2", b"m2", 2)])
        local_sub.expect_no_publish(0.3)
        self.assertGreaterEqual(metric(self.node, "ringmq_bridge_messages_total",
                                       direction="in"), 3)

    def test_both_directions_without_loops(self):
        local_sub = self.client(self.node.port, "lsub")
        local_sub.subscribe([("both/#", 2)])
        remote_sub = self.client(self.remote.port, "rsub")
        remote_sub.subscribe([("both/#", 2)])
        local_pub = self.client(self.node.port, "lpub")
        remote_pub = self.client(self.remote.port, "rpub")
        self.wait_subscribed(local_pub, remote_sub, "both/probe-out")
        self.wait_subscribed(remote_pub, local_sub, "both/probe-in")
        for c in (local_sub, remote_sub):  # the other side's probes, if any
            try:
                while True:
                    c.receive(1, timeout=0.3)
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                pass
        local_pub.publish("both/from-local", b"L", qos=2)
        remote_pub.publish("both/from-remote", b"R", qos=2)
        # Each side gets each message exactly once: no echo back over the bridge.
        for sub in (local_sub, remote_sub):
            got = sub.receive(2)
            self.assertEqual(sorted((p.topic, p.payload) for p in got),
                             [("both/from-local", b"L"), ("both/from-remote", b"R")])
            sub.expect_no_publish(0.5)


class BridgeMqtt5Test(BridgeTestCase):
    def test_mqtt5_remote_both_directions_without_loops(self):
        remote = self.mosquitto()
        node = self.ringmq(bridge_toml("cloud5", remote.port, ["both/# both 1"],
                                       protocol_version=5, client_id="edge5"))
        self.wait_connected(node)
        local_sub = self.client(node.port, "lsub")
        local_sub.subscribe([("both/#", 1)])
        remote_sub = self.client(remote.port, "rsub")
        remote_sub.subscribe([("both/#", 1)])
        local_pub = self.client(node.port, "lpub")
        remote_pub = self.client(remote.port, "rpub")
        self.wait_subscribed(local_pub, remote_sub, "both/probe-out")
        self.wait_subscribed(remote_pub, local_sub, "both/probe-in")
        for c in (local_sub, remote_sub):
            try:
                while True:
                    c.receive(1, timeout=0.3)
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                pass
        local_pub.publish("both/l", b"L", qos=1)
        remote_pub.publish("both/r", b"R", qos=1)
        # No Local on the remote subscription (5.0:MQTT-3.8.3-3) instead of try_private.
        for sub in (local_sub, remote_sub):
            got = sub.receive(2)
            self.assertEqual(sorted((p.topic, p.payload, p.qos) for p in got),
                             [("both/l", b"L", 1), ("both/r", b"R", 1)])
            sub.expect_no_publish(0.5)


class BridgeOutageTest(BridgeTestCase):
    def test_remote_killed_with_qos1_in_flight_loses_nothing(self):
        port = broker.free_port()
        remote = self.mosquitto(port=port)
        # The first retry comes after >= 1.1 s (1.5 s less 25 % jitter): time for the restarted
        # remote's subscriber to subscribe before the bridge sends again.
        node = self.ringmq(bridge_toml("cloud", port, ["data/# out 1"], client_id="edge-kill",
                                       restart_initial_ms=1500, restart_max_ms=3000,
                                       max_inflight=20))
        self.wait_connected(node)
        remote_sub = mqtt_raw.Client(port, "rsub")
        remote_sub.subscribe([("data/#", 1)])
        local_pub = self.client(node.port, "lpub")
        self.wait_subscribed(local_pub, remote_sub, "data/probe")
        for i in range(100):
            local_pub.publish("data/x", b"%d" % i, qos=1)
        seen = {int(p.payload) for p in remote_sub.receive(100)}
        remote_sub.close()
        # Frozen, the remote acknowledges nothing more: what the bridge sends now stays in flight
        # (max_inflight of it) or queued, until the remote is killed.
        remote.proc.send_signal(signal.SIGSTOP)
        total = 300
        for i in range(100, total):
            local_pub.publish("data/x", b"%d" % i, qos=1)  # acknowledged by ringmq
        time.sleep(0.3)
        remote.stop(signal.SIGKILL)
        remote = self.mosquitto(port=port)
        remote_sub = self.client(port, "rsub")
        remote_sub.subscribe([("data/#", 1)])
        self.wait_connected(node)
        deadline = time.monotonic() + WAIT
        while len(seen) < total and time.monotonic() < deadline:
            try:
                for p in remote_sub.receive(1, timeout=1.0):
                    seen.add(int(p.payload))
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                pass
        self.assertEqual(sorted(set(range(total)) - seen), [],
                         f"lost messages; node:\n{node.stderr_tail()}")
        # The 20 in flight were sent again (a new session on the restarted remote).
        self.assertGreaterEqual(metric(node, "ringmq_bridge_link_events_total", event="resend"),
                                20)
        self.assertEqual(metric(node, "ringmq_bridge_dropped_total", direction="out"), 0)

    def test_remote_restarted_with_persistent_sessions_loses_nothing(self):
        lines = ("allow_anonymous true", "persistence true",
                 f"persistence_location {self.tmp.name}/")
        remote = self.mosquitto(lines=lines)
        node = self.ringmq(bridge_toml("cloud", remote.port, ["data/# out 1"],
                                       client_id="edge-outage", clean_session=False))
        self.wait_connected(node)
        # A persistent subscriber on the remote keeps its queued messages over the restart.
        remote_sub = mqtt_raw.Client(remote.port, "rsub-persistent", clean=False)
        remote_sub.subscribe([("data/#", 1)])
        local_pub = self.client(node.port, "lpub")
        self.wait_subscribed(local_pub, remote_sub, "data/probe")
        remote_sub.close()
        total = 300
        for i in range(100):
            local_pub.publish("data/x", b"%d" % i, qos=1)
        remote.proc.send_signal(signal.SIGSTOP)
        for i in range(100, 200):
            local_pub.publish("data/x", b"%d" % i, qos=1)
        time.sleep(0.3)
        remote.proc.send_signal(signal.SIGCONT)
        remote.stop()  # SIGTERM: Mosquitto saves its sessions, ours included
        for i in range(200, total):
            local_pub.publish("data/x", b"%d" % i, qos=1)
        remote.start()
        self.wait_connected(node)
        remote_sub = self.client(remote.port, "rsub-persistent", clean=False,
                                 session_present=True)
        seen = set()
        deadline = time.monotonic() + WAIT
        while len(seen) < total and time.monotonic() < deadline:
            try:
                for p in remote_sub.receive(1, timeout=1.0):
                    seen.add(int(p.payload))
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                pass
        self.assertEqual(sorted(set(range(total)) - seen), [],
                         f"lost messages; node:\n{node.stderr_tail()}")
        self.assertEqual(metric(node, "ringmq_bridge_dropped_total", direction="out"), 0)

    def test_main_address_first_again_after_a_connection_ends(self):
        ports = [broker.free_port() for _ in range(3)]
        b = self.mosquitto(port=ports[1])  # the main one (ports[0]) is down at first
        toml = bridge_toml("cloud", ports[0], ["data/# out 0"])
        toml = toml.replace(f'addresses = ["127.0.0.1:{ports[0]}"]',
                            "addresses = [" + ", ".join(f'"127.0.0.1:{p}"' for p in ports) + "]")
        node = self.ringmq(toml)
        self.wait_connected(node)
        b_sub = self.client(b.port, "bsub")
        b_sub.subscribe([("data/#", 0)])
        local_pub = self.client(node.port, "lpub")
        self.wait_subscribed(local_pub, b_sub, "data/on-b")
        a = self.mosquitto(port=ports[0])
        c = self.mosquitto(port=ports[2])
        subs = {}
        for name, m in (("a", a), ("c", c)):
            subs[name] = self.client(m.port, f"{name}sub")
            subs[name].subscribe([("data/#", 0)])
        b.stop()
        # Not round robin (Mosquitto's default): back to the first address, not on to the third.
        self.wait_subscribed(local_pub, subs["a"], "data/on-a")
        subs["c"].expect_no_publish(0.3)

    def test_queue_bound_while_remote_down_counts_drops(self):
        port = broker.free_port()  # nothing listens there yet
        node = self.ringmq(bridge_toml("cloud", port, ["data/# out 1"], max_queued_messages=5,
                                       max_inflight=5))
        # The bridge's local session has subscribed (it needs no remote for that).
        wait_for(lambda: metric(node, "ringmq_subscriptions") >= 1, "local subscription")
        local_pub = self.client(node.port, "lpub")
        for i in range(20):
            local_pub.publish("data/x", b"%d" % i, qos=1)
        wait_for(lambda: metric(node, "ringmq_bridge_dropped_total", direction="out") == 15,
                 "15 drops counted")
        self.assertEqual(metric(node, "ringmq_bridge_messages_total", direction="out"), 5)
        # The remote comes up: the 5 queued messages are delivered (to a persistent session
        # that subscribed before the bridge connected).
        remote = self.remote_with_waiting_subscriber(port, "rsub", "data/#")
        self.wait_connected(node)
        remote_sub = self.client(remote.port, "rsub", clean=False, session_present=True)
        got = remote_sub.receive(5)
        self.assertEqual(sorted(int(p.payload) for p in got), [0, 1, 2, 3, 4])
        remote_sub.expect_no_publish(0.3)


class BridgeCredentialsTest(BridgeTestCase):
    def test_username_password_accepted_and_wrong_one_refused(self):
        passwd = os.path.join(self.tmp.name, "passwd")
        with open(passwd, "w") as f:
            f.write("edge:secret\n")
        subprocess.run(["mosquitto_passwd", "-U", passwd], check=True, timeout=WAIT)
        os.chmod(passwd, 0o644)
        remote = self.mosquitto(lines=("allow_anonymous false", f"password_file {passwd}"))
        node = self.ringmq(
            bridge_toml("good", remote.port, ["data/# out 0"], username="edge",
                        password="secret"),
            bridge_toml("bad", remote.port, ["data/# out 0"], username="edge", password="wrong",
                        client_id="bad-bridge"))
        self.wait_connected(node)
        self.assertIsNotNone(node.wait_for_log(r"bridge bad: not connected \(CONNACK refused",
                                               timeout=WAIT), node.stderr_tail())
        time.sleep(0.5)
        self.assertEqual(metric(node, "ringmq_bridges_connected"), 1)
        remote_sub = self.client(remote.port, "rsub", username="edge", password="secret")
        remote_sub.subscribe([("data/#", 0)])
        local_pub = self.client(node.port, "lpub")
        self.wait_subscribed(local_pub, remote_sub, "data/probe")
        # The password is not shown by --check-config.
        path = os.path.join(self.tmp.name, "check.toml")
        with open(path, "w") as f:
            f.write(bridge_toml("good", remote.port, ["data/# out 0"], password="secret"))
        checked = subprocess.run([broker.binary(), "--config", path, "--check-config"],
                                 capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(checked.returncode, 0, checked.stderr)
        self.assertIn('password = "REDACTED"', checked.stdout + checked.stderr)
        self.assertNotIn("secret", checked.stdout + checked.stderr)


class BridgeLocalAclTest(BridgeTestCase):
    def test_local_acl_applies_to_the_bridge_session_and_a_refusal_is_logged(self):
        remote = self.mosquitto()
        acl = os.path.join(self.tmp.name, "acl")
        with open(acl, "w") as f:
            # Anonymous clients (the section before any `user`) may use both trees; the
            # bridge's local session only data/#.
            f.write("topic readwrite data/#\ntopic readwrite secret/#\n"
                    "user bridge\ntopic readwrite data/#\n")
        node = self.ringmq(f'acl_file = "{acl}"\n',
                           bridge_toml("cloud", remote.port, ["data/# out 0", "secret/# out 0"],
                                       local_username="bridge"))
        self.wait_connected(node)
        self.assertIsNotNone(node.wait_for_log(
            r"bridge cloud: the local broker refused 1 of its subscriptions", timeout=WAIT),
            node.stderr_tail())
        remote_sub = self.client(remote.port, "rsub")
        remote_sub.subscribe([("#", 0)])
        local_pub = self.client(node.port, "lpub")
        self.wait_subscribed(local_pub, remote_sub, "data/probe")
        local_pub.publish("secret/x", b"no", qos=1)
        remote_sub.expect_no_publish(0.5)


class BridgeTlsTest(BridgeTestCase):
    def test_tls_to_the_remote_verified_against_cafile(self):
        pki = Pki(self.tmp.name)
        for name in ("server.key", "server.crt", "ca.crt"):
            os.chmod(pki.path(name), 0o644)  # Mosquitto reads them as user mosquitto
        remote = self.mosquitto(lines=("allow_anonymous true",
                                       f"certfile {pki.path('server.crt')}",
                                       f"keyfile {pki.path('server.key')}"))
        node = self.ringmq(
            bridge_toml("tls", remote.port, ["data/# both 1"], cafile=pki.path("ca.crt")),
            bridge_toml("wrong-ca", remote.port, ["other/# out 0"], client_id="wrong-ca",
                        cafile=pki.path("other-ca.crt")))
        self.wait_connected(node)
        self.assertIsNotNone(node.wait_for_log(
            r"bridge wrong-ca: not connected \(TLS handshake failed", timeout=WAIT),
            node.stderr_tail())
        self.assertEqual(metric(node, "ringmq_bridges_connected"), 1)
        ca = pki.path("ca.crt")
        local_sub = self.client(node.port, "lsub")
        local_sub.subscribe([("data/in", 1)])
        local_pub = self.client(node.port, "lpub")
        # The remote side over TLS: mosquitto_sub / mosquitto_pub with the CA.
        sub = subprocess.Popen(["mosquitto_sub", "-h", mqtt_raw.HOST, "-p", str(remote.port),
                                "--cafile", ca, "-t", "data/out", "-q", "1", "-C", "1", "-W",
                                str(int(WAIT))], stdout=subprocess.PIPE, text=True)
        self.addCleanup(sub.kill)
        deadline = time.monotonic() + WAIT
        while sub.poll() is None and time.monotonic() < deadline:
            local_pub.publish("data/out", b"over-tls", qos=1)
            time.sleep(0.2)
        out, _ = sub.communicate(timeout=WAIT)
        self.assertEqual(out.strip(), "over-tls")
        got = None
        while got is None and time.monotonic() < deadline + WAIT:
            subprocess.run(["mosquitto_pub", "-h", mqtt_raw.HOST, "-p", str(remote.port),
                            "--cafile", ca, "-t", "data/in", "-q", "1", "-m", "from-remote"],
                           check=True, timeout=WAIT)
            try:
                got = local_sub.receive(1, timeout=0.5)[0]
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                pass
        self.assertIsNotNone(got)
        self.assertEqual((got.topic, got.payload), ("data/in", b"from-remote"))


    def test_address_checked_against_the_certificate_unless_insecure(self):
        pki = Pki(self.tmp.name)
        pki.issue("elsewhere", "elsewhere.example", san="DNS:elsewhere.example")
        for name in ("elsewhere.key", "elsewhere.crt"):
            os.chmod(pki.path(name), 0o644)
        remote = self.mosquitto(lines=("allow_anonymous true",
                                       f"certfile {pki.path('elsewhere.crt')}",
                                       f"keyfile {pki.path('elsewhere.key')}"))
        node = self.ringmq(
            bridge_toml("checked", remote.port, ["a/# out 0"], cafile=pki.path("ca.crt")),
            bridge_toml("insecure", remote.port, ["b/# out 0"], client_id="insecure",
                        cafile=pki.path("ca.crt"), insecure=True))
        self.wait_connected(node)  # the insecure one: the chain verifies, the name is not checked
        self.assertIsNotNone(node.wait_for_log(
            r"bridge checked: not connected \(TLS handshake failed.*IP address mismatch",
            timeout=WAIT), node.stderr_tail())
        self.assertEqual(metric(node, "ringmq_bridges_connected"), 1)


# ---- bridge lane: a queue that survives a restart, notifications, start types, admission ----

class BridgeDurableTest(BridgeTestCase):
    def test_queue_survives_a_ringmq_restart_none_twice_at_qos_2(self):
        """Remote down, QoS 1/2 messages acknowledged to their publisher and queued for the
        remote, ringmq restarted (SIGTERM), remote back: all delivered, QoS 2 exactly once."""
        self.restart_with_queue(kill=False)

    def test_queue_survives_a_ringmq_crash(self):
        """The same with SIGKILL: what was acknowledged was on disk (docs/persistence.md)."""
        self.restart_with_queue(kill=True)

    def restart_with_queue(self, kill):
        port = broker.free_port()  # the remote is down
        data_dir = os.path.join(self.tmp.name, "data")
        os.mkdir(data_dir)
        flags = ("--persistence", "true", "--data-dir", data_dir)
        table = bridge_toml("cloud", port, ["data/# out 2"], client_id="edge-durable",
                            max_queued_messages=25)
        node = self.ringmq(table, flags=flags)
        wait_for(lambda: metric(node, "ringmq_subscriptions") >= 1, "local subscription")
        local_pub = self.client(node.port, "lpub")
        count = 40  # beyond the bridge's window (max_queued_messages 25): the rest waits here
        for i in range(count):
            local_pub.publish("data/q1", b"%d" % i, qos=1)  # PUBACK: on disk
            local_pub.publish("data/q2", b"%d" % i, qos=2)  # PUBREC: on disk
        local_pub.close()
        self.assertEqual(metric(node, "ringmq_bridge_dropped_total", direction="out"), 0)
        if kill:
            node.proc.send_signal(signal.SIGKILL)
            node._reap()
        else:
            node.stop()
        remote = self.mosquitto(port=port)
        remote_sub = self.client(remote.port, "rsub")
        remote_sub.subscribe([("data/#", 2)])
        node = self.ringmq(table, flags=flags)
        self.wait_connected(node)
        got = remote_sub.receive(2 * count, timeout=3 * WAIT)
        remote_sub.expect_no_publish(1.0)
        q1 = sorted(int(p.payload) for p in got if p.topic == "data/q1")
        q2 = sorted(int(p.payload) for p in got if p.topic == "data/q2")
        self.assertEqual(sorted(set(q1)), list(range(count)), f"node:\\n{node.stderr_tail()}")
        self.assertEqual(q2, list(range(count)))  # each once (QoS 2)
        # Order per topic (MQTT-4.6.0-1) holds across the restart.
        self.assertEqual([int(p.payload) for p in got if p.topic == "data/q2"], list(range(count)))


    def test_in_and_out_with_persistence_acknowledged_after_the_other_side(self):
        """Durable bridge, both directions at QoS 1/2 while both brokers run: the deferred
        acknowledgements flow (nothing is held back for good)."""
        remote = self.mosquitto()
        data_dir = os.path.join(self.tmp.name, "data-flow")
        os.mkdir(data_dir)
        node = self.ringmq(bridge_toml("cloud", remote.port, ['out/# out 2 "" site1/',
                                                              'in/# in 2 "" site1/']),
                           flags=("--persistence", "true", "--data-dir", data_dir))
        self.wait_connected(node)
        remote_sub = self.client(remote.port, "rsub")
        remote_sub.subscribe([("site1/out/#", 2)])
        local_sub = self.client(node.port, "lsub")
        local_sub.subscribe([("in/#", 2)])
        local_pub = self.client(node.port, "lpub")
        remote_pub = self.client(remote.port, "rpub")
        self.wait_subscribed(local_pub, remote_sub, "out/probe")
        self.wait_subscribed(remote_pub, local_sub, "site1/in/probe")
        count = 50  # above Mosquitto's and the bridge's in-flight windows (20)
        for i in range(count):
            local_pub.publish("out/x", b"%d" % i, qos=1 + i % 2)
            remote_pub.publish("site1/in/x", b"%d" % i, qos=1 + i % 2)
        out = sorted(int(p.payload) for p in remote_sub.receive(count))
        came_in = sorted(int(p.payload) for p in local_sub.receive(count))
        self.assertEqual(out, list(range(count)))
        self.assertEqual(came_in, list(range(count)))
        remote_sub.expect_no_publish(0.3)
        local_sub.expect_no_publish(0.3)


    def test_with_persistence_the_broker_session_bounds_count_the_overflow(self):
        """With persistence what waits for the remote waits in the bridge's local session: at
        most the bridge's Receive Maximum (its max_queued_messages) in flight to it, then the
        broker's max_queued_messages; beyond, queue_full_policy drops and counts."""
        port = broker.free_port()  # the remote is down
        data_dir = os.path.join(self.tmp.name, "data-bound")
        os.mkdir(data_dir)
        node = self.ringmq("max_queued_messages = 5\n" +
                           bridge_toml("cloud", port, ["data/# out 1"], max_queued_messages=5),
                           flags=("--persistence", "true", "--data-dir", data_dir))
        wait_for(lambda: metric(node, "ringmq_subscriptions") >= 1, "local subscription")
        local_pub = self.client(node.port, "lpub")
        for i in range(20):
            local_pub.publish("data/x", b"%d" % i, qos=1)
        wait_for(lambda: metric(node, "ringmq_messages_dropped_total", reason="queue_full") == 10,
                 "10 drops counted at the session's bound")
        self.assertEqual(metric(node, "ringmq_bridge_dropped_total", direction="out"), 0)
        remote = self.remote_with_waiting_subscriber(port, "rsub", "data/#")
        self.wait_connected(node)
        remote_sub = self.client(remote.port, "rsub", clean=False, session_present=True)
        got = remote_sub.receive(10)
        self.assertEqual(sorted(int(p.payload) for p in got), list(range(10)))
        remote_sub.expect_no_publish(0.3)


class Qos2Remote:
    """A raw-socket MQTT 3.1.1 server standing in for the remote broker, deterministic where a
    real one is not: it keeps one persistent session (session present from the second CONNECT
    on) and receives QoS 2 as §4.3.3's receiver that delivers on the PUBLISH ("method A"): the
    first PUBLISH of an id is delivered and the id remembered until its PUBREL; a PUBLISH with
    that id before then is a resend, answered PUBREC and not delivered (MQTT-4.3.3-2). While
    `stall_pubcomp` is set it answers no PUBREL: the PUBCOMP a bridge waits for when ringmq
    crashes. `deliveries` are the payloads delivered; `pubrels` and `publishes` the ids
    received, per connection."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((mqtt_raw.HOST, 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.deliveries = []
        self.pending = set()
        self.pubrels = []  # per connection: a list of ids
        self.publishes = []
        self.stall_pubcomp = True
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        self.listener.close()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            try:
                first = mqtt_raw.read_packet(conn, timeout=WAIT)
                if first.type != mqtt_raw.CONNECT:
                    return
                with self.lock:
                    present = len(self.pubrels) > 0
                    self.pubrels.append([])
                    self.publishes.append([])
                    index = len(self.pubrels) - 1
                conn.sendall(mqtt_raw.connack(0, session_present=present))
                while not self.closed:
                    pkt = mqtt_raw.read_packet(conn, timeout=3600)
                    self._handle(conn, pkt, index)
            except (mqtt_raw.ProtocolError, OSError):
                return

    def _handle(self, conn, pkt, index):
        if pkt.type == mqtt_raw.PUBLISH:
            pub = mqtt_raw.Publish(pkt)
            with self.lock:
                self.publishes[index].append(pub.packet_id)
                if pub.qos == 2:
                    if pub.packet_id not in self.pending:
                        self.pending.add(pub.packet_id)
                        self.deliveries.append(pub.payload)
                    conn.sendall(mqtt_raw.ack(mqtt_raw.PUBREC, pub.packet_id))
                elif pub.qos == 1:
                    self.deliveries.append(pub.payload)
                    conn.sendall(mqtt_raw.ack(mqtt_raw.PUBACK, pub.packet_id))
        elif pkt.type == mqtt_raw.PUBREL:
            packet_id = struct.unpack("!H", pkt.body[:2])[0]
            with self.lock:
                self.pending.discard(packet_id)
                self.pubrels[index].append(packet_id)
                stall = self.stall_pubcomp
            if not stall:
                conn.sendall(mqtt_raw.ack(mqtt_raw.PUBCOMP, packet_id))
        elif pkt.type == mqtt_raw.PINGREQ_T:
            conn.sendall(mqtt_raw.PINGRESP)
        elif pkt.type == mqtt_raw.DISCONNECT_T:
            raise OSError("DISCONNECT")

    def count(self, what, index):
        with self.lock:
            runs = getattr(self, what)
            return len(runs[index]) if index < len(runs) else 0


class BridgeExactlyOnceTest(BridgeTestCase):
    """bridgeq2 lane: QoS 2 out, exactly once across a crash of ringmq (docs/bridges.md
    "Exactly once at QoS 2")."""

    def test_qos2_pubreced_by_the_remote_crosses_once_across_a_crash(self):
        """The remote PUBREC'd every message and got its PUBREL, but its PUBCOMP never came;
        ringmq is SIGKILLed and started again: the bridge completes each with PUBREL alone
        (5.0:MQTT-4.3.3-6: never the PUBLISH again), so the remote delivers each once."""
        remote = Qos2Remote()
        self.addCleanup(remote.close)
        data_dir = os.path.join(self.tmp.name, "data-qos2")
        os.mkdir(data_dir)
        flags = ("--persistence", "true", "--data-dir", data_dir)
        table = bridge_toml("cloud", remote.port, ["q/# out 2"], client_id="edge-q2",
                            notifications=False)
        node = self.ringmq(table, flags=flags)
        self.wait_connected(node)
        wait_for(lambda: metric(node, "ringmq_subscriptions") >= 1, "local subscription")
        local_pub = self.client(node.port, "lpub")
        count = 10  # within the bridge's window (max_inflight 20): all in flight at once
        for i in range(count):
            local_pub.publish("q/x", b"%d" % i, qos=2)  # PUBREC: on disk here
        local_pub.close()
        wait_for(lambda: remote.count("pubrels", 0) >= count,
                 f"{count} PUBRELs at the remote:\n{node.stderr_tail()}")
        self.assertEqual(sorted(remote.deliveries), sorted(b"%d" % i for i in range(count)))
        node.proc.send_signal(signal.SIGKILL)
        node._reap()
        with remote.lock:
            remote.stall_pubcomp = False
        node = self.ringmq(table, flags=flags)
        # Every id ends with a PUBREL on the new connection, whatever the binary sent first.
        wait_for(lambda: remote.count("pubrels", 1) >= count,
                 f"{count} PUBRELs on the second connection:\n{node.stderr_tail()}")
        # Completed here too: nothing stays in flight to the bridge (a binary that sent the
        # PUBLISHes again has had them completed by then as well).
        wait_for(lambda: metric(node, "ringmq_inflight_messages") == 0,
                 f"no message in flight:\n{node.stderr_tail()}")
        with remote.lock:
            deliveries = sorted(remote.deliveries)
            republished = list(remote.publishes[1])
        self.assertEqual(deliveries, sorted(b"%d" % i for i in range(count)),
                         f"each delivered once; second connection's PUBLISH ids: {republished}")
        self.assertEqual(republished, [], "PUBREL only after the PUBREC (MQTT-4.3.3-6)")
        wait_for(lambda: metric(node, "ringmq_bridge_qos2_recovered_total", bridge="cloud",
                                outcome="pubrel_sent") == count, "recovered PUBRELs counted")


class BridgeRemovedTest(BridgeTestCase):
    """bridgeq2 lane: a bridge removed from the configuration leaves no persistent session
    behind (docs/bridges.md "A bridge removed from the configuration")."""

    def test_session_of_a_removed_bridge_is_ended_at_start_and_counted(self):
        port = broker.free_port()  # the remote stays down: the messages wait here
        data_dir = os.path.join(self.tmp.name, "data-removed")
        os.mkdir(data_dir)
        flags = ("--persistence", "true", "--data-dir", data_dir)
        node = self.ringmq(bridge_toml("cloud", port, ["data/# out 1"], client_id="edge-rm",
                                       notifications=False), flags=flags)
        wait_for(lambda: metric(node, "ringmq_subscriptions") >= 1, "local subscription")
        # A client whose id looks like a bridge's local one: never ended as one.
        lookalike = self.client(node.port, "local.edge-gone", clean=False)
        lookalike.subscribe([("other/#", 1)])
        lookalike.close()
        local_pub = self.client(node.port, "lpub")
        count = 5
        for i in range(count):
            local_pub.publish("data/x", b"%d" % i, qos=1)  # PUBACK: on disk
        local_pub.close()
        node.stop()
        # Removed from the configuration, kept by the opt-out: both sessions recovered.
        node = self.ringmq("remove_unconfigured_bridge_sessions = false\n", flags=flags)
        self.assertEqual(metric(node, "ringmq_persist_sessions_recovered_total"), 2)
        self.assertEqual(metric(node, "ringmq_persist_bridge_sessions_removed_total"), 0)
        node.stop()
        # Removed (the default): the bridge's session is ended, its queue dropped, counted,
        # one line names it; the look-alike client's session stays.
        node = self.ringmq("", flags=flags)
        self.assertEqual(metric(node, "ringmq_persist_bridge_sessions_removed_total"), 1)
        self.assertEqual(metric(node, "ringmq_persist_bridge_messages_removed_total"), count)
        self.assertEqual(metric(node, "ringmq_persist_sessions_recovered_total"), 1)
        self.assertIn('bridge local client "local.edge-rm"', node.stderr_tail())
        self.client(node.port, "local.edge-gone", clean=False, session_present=True).close()
        node.stop()
        # Gone from the log as well: the next start recovers the look-alike only.
        node = self.ringmq("", flags=flags)
        self.assertEqual(metric(node, "ringmq_persist_sessions_recovered_total"), 1)
        self.assertEqual(metric(node, "ringmq_persist_bridge_sessions_removed_total"), 0)


class BridgeNotificationTest(BridgeTestCase):
    STATE = "$SYS/broker/connection/edge-n/state"

    def test_state_here_and_on_the_remote_and_the_will_sets_it_to_0(self):
        remote = self.mosquitto()
        node = self.ringmq(bridge_toml("cloud", remote.port, ["data/# out 1"],
                                       client_id="edge-n"))
        self.wait_connected(node)
        local_state = self.client(node.port, "lstate")
        local_state.subscribe([(self.STATE, 1)])
        self.assertEqual(local_state.receive(1)[0].payload, b"1")  # retained
        remote_state = self.client(remote.port, "rstate")
        remote_state.subscribe([(self.STATE, 1)])
        self.assertEqual(remote_state.receive(1)[0].payload, b"1")
        self.assertGreaterEqual(metric(node, "ringmq_bridge_notifications_total",
                                       bridge="cloud"), 3)
        # ringmq killed: the remote publishes the bridge's will.
        node.proc.send_signal(signal.SIGKILL)
        node._reap()  # stop() then returns at once: the exit code is set
        self.assertEqual(remote_state.receive(1)[0].payload, b"0")

    def test_local_state_0_when_the_remote_goes(self):
        remote = self.mosquitto()
        node = self.ringmq(bridge_toml("cloud", remote.port, ["data/# out 1"],
                                       client_id="edge-n", notifications_local_only=True,
                                       notification_topic="bridges/cloud/state"))
        self.wait_connected(node)
        local_state = self.client(node.port, "lstate")
        local_state.subscribe([("bridges/cloud/state", 1)])
        self.assertEqual(local_state.receive(1)[0].payload, b"1")
        remote_state = self.client(remote.port, "rstate")
        remote_state.subscribe([("bridges/cloud/state", 1)])
        remote_state.expect_no_publish(0.5)  # local only
        remote.stop()
        self.assertEqual(local_state.receive(1)[0].payload, b"0")


class BridgeStartTypeTest(BridgeTestCase):
    def test_lazy_connects_at_the_threshold_and_stops_when_idle(self):
        remote = self.mosquitto()
        node = self.ringmq(bridge_toml("cloud", remote.port, ["data/# out 1"], start_type="lazy",
                                       threshold=3, idle_timeout=1))
        wait_for(lambda: metric(node, "ringmq_subscriptions") >= 1, "local subscription")
        remote_sub = self.client(remote.port, "rsub")
        remote_sub.subscribe([("data/#", 1)])
        local_pub = self.client(node.port, "lpub")
        for i in range(2):
            local_pub.publish("data/x", b"%d" % i, qos=1)
        remote_sub.expect_no_publish(0.5)  # below the threshold: not connected
        self.assertEqual(metric(node, "ringmq_bridge_connected", bridge="cloud"), 0)
        local_pub.publish("data/x", b"2", qos=1)
        got = remote_sub.receive(3)
        self.assertEqual(sorted(int(p.payload) for p in got), [0, 1, 2])
        # Idle for idle_timeout (1 s): the bridge stops.
        wait_for(lambda: metric(node, "ringmq_bridge_connected", bridge="cloud") == 0,
                 "lazy bridge stopped when idle")
        self.assertEqual(metric(node, "ringmq_bridge_link_events_total", bridge="cloud",
                                event="connect"), 1)

    def test_once_does_not_retry(self):
        remote = self.mosquitto()
        node = self.ringmq(bridge_toml("cloud", remote.port, ["data/# out 1"], start_type="once"))
        self.wait_connected(node)
        remote.stop()
        wait_for(lambda: metric(node, "ringmq_bridges_connected") == 0, "disconnected")
        remote.start()
        time.sleep(1.5)  # several restart_max_ms (1 s): an automatic bridge would be back
        self.assertEqual(metric(node, "ringmq_bridges_connected"), 0)
        self.assertEqual(metric(node, "ringmq_bridge_link_events_total", event="connect"), 1)


class BridgeAdmissionTest(BridgeTestCase):
    def test_local_session_takes_no_max_connections_slot(self):
        remote = self.mosquitto()
        table = bridge_toml("cloud", remote.port, ["data/# out 1"])
        node = self.ringmq("max_connections = 1\n" + table)
        self.wait_connected(node)
        self.assertEqual(metric(node, "ringmq_bridge_local_connections"), 1)
        self.assertEqual(metric(node, "ringmq_clients_connected"), 0)
        # The one slot is a client's.
        remote_sub = self.client(remote.port, "rsub")
        remote_sub.subscribe([("data/#", 1)])
        local_pub = self.client(node.port, "lpub")
        self.wait_subscribed(local_pub, remote_sub, "data/probe")
        self.assertEqual(metric(node, "ringmq_clients_connected"), 1)



if __name__ == "__main__":
    unittest.main()
