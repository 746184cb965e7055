#!/usr/bin/python3
"""The kill -9 loop of issue 15: the persistence promise under SIGKILL at random moments.

Once ringmq has sent PUBACK (QoS 1) or PUBREC (QoS 2) for a message, the message must survive a
crash of the broker process and reach every persistent session that matched it: QoS 1 at least
once, QoS 2 exactly once. This engine runs a broker with persistence on a data directory, drives
it with raw-socket clients and SIGKILLs it at random moments, restarting it on the same
directory each time, then drains every subscriber and checks:

  - every acknowledged message reached every matching persistent subscriber (at least once when
    delivered at QoS 1; exactly once when delivered at QoS 2);
  - no message was delivered more than once at QoS 2, acknowledged or not (MQTT-4.3.3);
  - nothing that was never published was delivered, and each delivery has the topic and QoS
    (min of publish and subscription QoS) its message implies;
  - a persistent session whose records were durable is found again (CONNACK session present 1);
  - the retained store holds, per topic, the last acknowledged retained message (or a later
    write that was in flight at a crash and so may or may not have become durable).

Clients (all MQTT 3.1.1, raw sockets; ids spread over the shards):
  - publishers (clean session 0) publish numbered QoS 1 and QoS 2 messages with a window of
    unacknowledged ones. A message counts as acknowledged when its PUBACK / PUBREC arrives.
    After a crash a publisher resends PUBREL for every QoS 2 message that had its PUBREC (the
    broker must still know the id, and must not deliver it again); a PUBLISH that had no ack
    is abandoned, never resent (a resend of a message the broker never made durable cannot be
    deduplicated by anyone, so it would blur the exactly-once check), and its QoS 2 packet id
    is never used again by that client (the broker may hold it awaiting PUBREL);
  - persistent subscribers (clean session 0) that stay online, that stay offline from their
    SUBSCRIBE until the final drain, and that connect and disconnect (DISCONNECT or an abrupt
    close) at random. Each keeps its QoS 2 receiver state across reconnections as a real client
    must: a PUBLISH whose packet id it PUBREC'd and was not yet released is a retransmission,
    not a new delivery (MQTT-4.3.3-2);
  - a retained writer with two connections on different shards that sets, replaces and deletes
    retained messages on a few topics, one write at a time.

Used by tests/integration/test_persistence.py (the short CI variant) and, through the command
line below, by scripts/persistence-torture.sh (the long one):

    /usr/bin/python3 tests/integration/persistence_torture.py --binary build/ringmq \\
        --kills 20 --duration 300 --threads 2
"""

import argparse
import os
import random
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import broker as broker_mod  # noqa: E402
import mqtt_raw as m  # noqa: E402
from test_retained_race import home_shard  # noqa: E402

CONNECT_TIMEOUT = 3.0
# How long a publisher waits for the acks of its window once publishing stops.
FINAL_ACK_SECONDS = 10.0
# A live broker must acknowledge within this; beyond it the engine reports a stall.
ACK_STALL_SECONDS = 20.0
RETAINED_TOPICS = [f"rt/{i}" for i in range(4)]
ABSENT = None  # no retained message on a topic


class ConnectionLost(Exception):
    """The broker closed or reset the connection (or is not there)."""


class Conn:
    """A raw 3.1.1 connection with its own read buffer. Every operation is bounded."""

    def __init__(self, port, client_id, *, clean):
        self.client_id = client_id
        try:
            self.sock = socket.create_connection((m.HOST, port), timeout=CONNECT_TIMEOUT)
        except OSError as e:
            raise ConnectionLost(f"connect: {e!r}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        try:
            self.send(m.connect(client_id, clean=clean, keepalive=0))
            pkt = self.read(CONNECT_TIMEOUT)
        except BaseException:
            self.sock.close()
            raise
        if pkt is None:
            self.sock.close()
            raise ConnectionLost("no CONNACK in time")
        if pkt.raw == m.connack(3):
            # Server unavailable: a broker shutting down on SIGTERM refuses this way.
            self.sock.close()
            raise ConnectionLost("CONNACK 0x03 (server unavailable)")
        if pkt.type != m.CONNACK or len(pkt.body) != 2 or pkt.body[1] != 0:
            self.sock.close()
            raise AssertionError(f"{client_id}: CONNACK refused or malformed: {pkt!r}")
        self.session_present = bool(pkt.body[0] & 1)

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost(f"send: {e!r}") from None

    def _parse(self):
        buf = self.buf
        if len(buf) < 2:
            return None
        length, mult, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return None
            byte = buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
            if i > 4:
                raise AssertionError(f"{self.client_id}: bad remaining length {bytes(buf[:8])!r}")
        if len(buf) < i + length:
            return None
        pkt = m.Packet(bytes(buf[:i + length]), i)
        del buf[:i + length]
        return pkt

    def read(self, timeout):
        """One packet, or None if none arrived within `timeout` (0: what is there now; the
        socket is read at least once, so a close is always seen)."""
        deadline = time.monotonic() + timeout
        tried = False
        while True:
            pkt = self._parse()
            if pkt is not None:
                return pkt
            remaining = deadline - time.monotonic()
            if remaining <= 0 and tried:
                return None
            tried = True
            self.sock.settimeout(max(remaining, 0.0))
            try:
                chunk = self.sock.recv(1 << 16)
            except (socket.timeout, BlockingIOError):
                return None
            except OSError as e:
                raise ConnectionLost(f"recv: {e!r}") from None
            if not chunk:
                raise ConnectionLost("closed by the broker")
            self.buf += chunk

    def read_all(self, timeout):
        """Every packet that arrives within `timeout` of the first wait (at least one wait)."""
        out = []
        pkt = self.read(timeout)
        while pkt is not None:
            out.append(pkt)
            pkt = self.read(0)
        return out

    def disconnect(self):
        try:
            self.sock.sendall(m.DISCONNECT)
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def topic_matches(filt, topic):
    """MQTT topic filter matching for the filters this engine uses (+ and a trailing #)."""
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


def spread_ids(prefix, count, shards):
    """`count` client ids whose home shards go round robin over `shards` shards."""
    out, i = [], 0
    while len(out) < count:
        want = len(out) % shards
        cid = f"{prefix}{i}"
        i += 1
        if home_shard(cid, shards) == want:
            out.append(cid)
    return out


class Registry:
    """What the publishers sent and had acknowledged; the retained writes. Thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}  # payload -> (topic, qos)
        self.acked = set()  # payloads whose PUBACK / PUBREC arrived
        self.abandoned = 0
        self.retained = {t: [] for t in RETAINED_TOPICS}  # topic -> [[payload, acked]] in order

    def publish(self, payload, topic, qos):
        with self.lock:
            self.sent[payload] = (topic, qos)

    def ack(self, payload):
        with self.lock:
            self.acked.add(payload)

    def abandon(self):
        with self.lock:
            self.abandoned += 1

    def retain_issue(self, topic, payload):
        entry = [payload, False]
        with self.lock:
            self.retained[topic].append(entry)
        return entry

    def retain_ack(self, entry):
        with self.lock:
            entry[1] = True

    def retained_acceptable(self, topic):
        """The values the topic may hold at the end: the last acknowledged write (ABSENT if
        none, or if it was a delete) or any later write that was in flight at a crash."""
        with self.lock:
            entries = list(self.retained[topic])
        last = max((i for i, (_, acked) in enumerate(entries) if acked), default=-1)
        ok = {ABSENT if last < 0 or not entries[last][0] else entries[last][0]}
        for payload, _ in entries[last + 1:]:
            ok.add(payload if payload else ABSENT)
        return ok, (entries[last] if last >= 0 else None)


class Worker(threading.Thread):
    """A client thread: errors it finds go to the engine's list instead of being raised."""

    def __init__(self, engine, name):
        super().__init__(daemon=True, name=name)
        self.engine = engine
        self.conn = None

    def run(self):
        try:
            self.work()
        except BaseException:  # reported with the others at the end
            self.engine.violation(f"{self.name}: crashed:\n{traceback.format_exc()}")
        finally:
            if self.conn:
                self.conn.close()

    def try_connect(self, client_id, clean):
        """A connection to the current broker, or None (refused, reset, no CONNACK)."""
        port = self.engine.port
        try:
            conn = Conn(port, client_id, clean=clean)
        except ConnectionLost:
            return None
        if not clean and self.engine.sessions_durable.is_set() and not conn.session_present:
            self.engine.violation(f"{client_id}: CONNACK session present 0 after a restart, "
                                  f"although its session was durable (run {self.engine.run})")
        return conn


class Publisher(Worker):
    def __init__(self, engine, client_id, rate, window):
        super().__init__(engine, f"pub-{client_id}")
        self.client_id = client_id
        self.rate = rate
        self.window = window
        self.seq = 0
        self.inflight = {}  # packet id -> [payload, qos, stage "ack" | "comp"]
        self.poisoned = set()  # QoS 2 ids abandoned without PUBREC: never used again
        self.next_id = 0
        self.first_acked = threading.Event()  # a QoS 2 message had its PUBREC
        self.connected_run = 0
        self.acked = 0

    def alloc(self):
        for _ in range(65535):
            self.next_id = self.next_id % 65535 + 1
            if self.next_id not in self.inflight and self.next_id not in self.poisoned:
                return self.next_id
        raise AssertionError(f"{self.client_id}: no packet id left")

    def reconnected(self):
        wire = bytearray()
        for pid, entry in list(self.inflight.items()):
            payload, qos, stage = entry
            if stage == "comp":
                wire += m.pubrel(pid)  # PUBREC seen: the broker must know the id
            else:
                del self.inflight[pid]
                self.engine.registry.abandon()
                if qos == 2:
                    self.poisoned.add(pid)
        if wire:
            self.conn.send(bytes(wire))

    def handle(self, pkt):
        if pkt.type not in (m.PUBACK, m.PUBREC, m.PUBCOMP) or len(pkt.body) != 2:
            self.engine.violation(f"{self.client_id}: unexpected packet {pkt!r}")
            return
        pid = struct.unpack("!H", pkt.body)[0]
        entry = self.inflight.get(pid)
        want = {m.PUBACK: (1, "ack"), m.PUBREC: (2, "ack"), m.PUBCOMP: (2, "comp")}[pkt.type]
        if entry is None or (entry[1], entry[2]) != want:
            if pkt.type == m.PUBREC and entry is not None and entry[2] == "comp":
                self.conn.send(m.pubrel(pid))  # a repeated PUBREC gets its PUBREL again
                return
            self.engine.violation(f"{self.client_id}: {pkt!r} for packet id {pid} in state "
                                  f"{entry} (run {self.engine.run})")
            return
        if pkt.type == m.PUBCOMP:
            del self.inflight[pid]
            return
        self.engine.registry.ack(entry[0])
        self.acked += 1
        if entry[1] == 2:  # a QoS 2 topic matches every subscriber
            self.first_acked.set()
        if pkt.type == m.PUBACK:
            del self.inflight[pid]
        else:
            entry[2] = "comp"
            self.conn.send(m.pubrel(pid))

    def work(self):
        engine = self.engine
        rng = random.Random(f"{engine.seed}-{self.client_id}")
        next_send = time.monotonic()
        stop_deadline = None
        last_progress = time.monotonic()
        while not engine.done.is_set():
            if engine.stop_publishing.is_set():
                if stop_deadline is None:
                    stop_deadline = time.monotonic() + FINAL_ACK_SECONDS
                if not self.inflight:
                    break
                if time.monotonic() > stop_deadline:
                    engine.violation(f"{self.client_id}: no ack for {len(self.inflight)} "
                                     f"messages within {FINAL_ACK_SECONDS}s of the end: "
                                     f"{sorted(self.inflight.items())[:5]}")
                    break
            if self.conn is None:
                self.conn = self.try_connect(self.client_id, clean=False)
                if self.conn is None:
                    time.sleep(0.05)
                    continue
                self.connected_run = engine.run
                self.reconnected()
                last_progress = time.monotonic()
            try:
                now = time.monotonic()
                if (not engine.stop_publishing.is_set() and len(self.inflight) < self.window
                        and now >= next_send):
                    qos = rng.choice((1, 2))
                    self.seq += 1
                    payload = f"{self.client_id}:{self.seq}".encode()
                    topic = f"tt/{self.client_id}/q{qos}"
                    pid = self.alloc()
                    engine.registry.publish(payload, topic, qos)
                    self.inflight[pid] = [payload, qos, "ack"]
                    self.conn.send(m.publish(topic, payload, qos=qos, packet_id=pid))
                    next_send = max(next_send + 1.0 / self.rate, now - 1.0)
                if len(self.inflight) >= self.window or engine.stop_publishing.is_set():
                    wait = 0.02  # nothing to send until an ack comes
                else:
                    wait = max(0.0, min(0.02, next_send - time.monotonic()))
                for pkt in self.conn.read_all(wait):
                    self.handle(pkt)
                    last_progress = time.monotonic()
                if not self.inflight:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > ACK_STALL_SECONDS:
                    engine.violation(f"{self.client_id}: no ack for {ACK_STALL_SECONDS}s from a "
                                     f"live broker (run {engine.run}; connected in run "
                                     f"{self.connected_run} from port "
                                     f"{self.conn.sock.getsockname()[1]}); in flight: "
                                     f"{sorted(self.inflight.items())[:5]}")
                    last_progress = time.monotonic()
            except ConnectionLost:
                self.conn.close()
                self.conn = None
        if self.conn:
            self.conn.disconnect()
            self.conn = None


class Subscriber(Worker):
    """mode: "online" (reconnects at once), "offline" (from its SUBSCRIBE until the drain) or
    "flaky" (online and offline for random spells)."""

    def __init__(self, engine, client_id, filt, qos, mode):
        super().__init__(engine, f"sub-{client_id}")
        self.client_id, self.filter, self.qos, self.mode = client_id, filt, qos, mode
        self.lock = threading.Lock()
        self.deliveries = {}  # payload -> new deliveries (retransmissions not counted)
        self.awaiting_pubrel = {}  # QoS 2 packet id -> payload PUBREC'd, not yet released
        self.retransmissions = 0
        self.subscribed = threading.Event()

    def count(self):
        with self.lock:
            return dict(self.deliveries)

    def handle(self, pkt):
        engine = self.engine
        if pkt.type == m.PUBREL:
            pid = struct.unpack("!H", pkt.body)[0] if len(pkt.body) == 2 else None
            if pid is None or pkt.flags != 2:
                engine.violation(f"{self.client_id}: malformed PUBREL {pkt!r}")
                return
            # An unknown id is a PUBREL whose PUBCOMP the crash lost: answer it again.
            self.awaiting_pubrel.pop(pid, None)
            self.conn.send(m.packet(0x70, pkt.body))
            return
        if pkt.type != m.PUBLISH:
            engine.violation(f"{self.client_id}: unexpected packet {pkt!r}")
            return
        pub = m.Publish(pkt)
        sent = engine.registry.sent.get(pub.payload)
        if sent is None:
            engine.violation(f"{self.client_id}: got {pub!r}, which was never published")
        else:
            topic, pub_qos = sent
            if pub.topic != topic or pub.qos != min(pub_qos, self.qos) or pub.retain:
                engine.violation(f"{self.client_id}: got {pub!r}; published on {topic} at QoS "
                                 f"{pub_qos}, subscribed at {self.qos}")
            if not topic_matches(self.filter, topic):
                engine.violation(f"{self.client_id}: got {pub!r}, not matching {self.filter}")
        if pub.qos == 2:
            held = self.awaiting_pubrel.get(pub.packet_id)
            if held is not None:
                # PUBREC'd and not released: a retransmission (MQTT-4.3.3-2), which must be
                # the same message.
                self.retransmissions += 1
                if held != pub.payload or not pub.dup:
                    engine.violation(f"{self.client_id}: packet id {pub.packet_id} awaiting "
                                     f"PUBREL for {held!r} came again as {pub!r}")
                self.conn.send(m.ack(m.PUBREC, pub.packet_id))
                return
            self.awaiting_pubrel[pub.packet_id] = pub.payload
        with self.lock:
            self.deliveries[pub.payload] = self.deliveries.get(pub.payload, 0) + 1
        if pub.qos == 1:
            self.conn.send(m.ack(m.PUBACK, pub.packet_id))
        elif pub.qos == 2:
            self.conn.send(m.ack(m.PUBREC, pub.packet_id))

    def work(self):
        engine = self.engine
        rng = random.Random(f"{engine.seed}-{self.client_id}")
        while self.conn is None and not engine.done.is_set():
            self.conn = self.try_connect(self.client_id, clean=False)
            if self.conn is None:
                time.sleep(0.05)
        if self.conn is None:
            return
        self.conn.send(m.subscribe(1, [(self.filter, self.qos)]))
        pkt = self.conn.read(10.0)
        if pkt is None or pkt.raw != m.suback(1, [self.qos]):
            raise AssertionError(f"{self.client_id}: SUBACK expected, got {pkt!r}")
        self.subscribed.set()
        if self.mode == "offline":
            self.conn.disconnect()
            self.conn = None
        switch_at = time.monotonic() + rng.uniform(0.3, 2.5)
        while not engine.done.is_set():
            draining = engine.draining.is_set()
            if self.conn is None:
                if (self.mode == "offline" or (self.mode == "flaky" and
                                               time.monotonic() < switch_at)) and not draining:
                    time.sleep(0.05)
                    continue
                self.conn = self.try_connect(self.client_id, clean=False)
                if self.conn is None:
                    time.sleep(0.05)
                    continue
                switch_at = time.monotonic() + rng.uniform(0.3, 2.5)
            try:
                for pkt in self.conn.read_all(0.05):
                    self.handle(pkt)
            except ConnectionLost:
                self.conn.close()
                self.conn = None
                continue
            if self.mode == "flaky" and not draining and time.monotonic() >= switch_at:
                if rng.random() < 0.5:
                    self.conn.disconnect()
                else:
                    self.conn.close()  # abrupt: no DISCONNECT
                self.conn = None
                switch_at = time.monotonic() + rng.uniform(0.3, 2.5)
        if self.conn:
            self.conn.disconnect()
            self.conn = None


class RetainedWriter(Worker):
    """Sets, replaces and deletes retained messages (QoS 1) on RETAINED_TOPICS through two
    clean-session connections whose home shards differ, one write at a time."""

    def __init__(self, engine, client_ids, rate):
        super().__init__(engine, "retained-writer")
        self.client_ids = client_ids
        self.rate = rate
        self.conns = [None] * len(client_ids)
        self.n = 0
        self.acked = 0

    def close_all(self):
        for c in self.conns:
            if c:
                c.close()
        self.conns = [None] * len(self.client_ids)

    def work(self):
        engine = self.engine
        rng = random.Random(f"{engine.seed}-retained")
        try:
            while not engine.stop_publishing.is_set():
                if not all(self.conns):
                    self.close_all()
                    conns = [self.try_connect(cid, clean=True) for cid in self.client_ids]
                    if not all(conns):
                        for c in conns:
                            if c:
                                c.close()
                        time.sleep(0.05)
                        continue
                    self.conns = conns
                conn = rng.choice(self.conns)
                topic = rng.choice(RETAINED_TOPICS)
                self.n += 1
                payload = b"" if rng.random() < 0.15 else f"R{self.n}@{conn.client_id}".encode()
                entry = engine.registry.retain_issue(topic, payload)
                pid = self.n % 65535 + 1
                try:
                    conn.send(m.publish(topic, payload, qos=1, packet_id=pid, retain=True))
                    pkt = conn.read(ACK_STALL_SECONDS)
                    if pkt is None:
                        engine.violation(f"retained writer: no PUBACK from a live broker within "
                                         f"{ACK_STALL_SECONDS}s (run {engine.run})")
                        self.close_all()
                        continue
                    if pkt.raw != m.ack(m.PUBACK, pid):
                        engine.violation(f"retained writer: expected PUBACK {pid}, got {pkt!r}")
                        self.close_all()
                        continue
                    engine.registry.retain_ack(entry)
                    self.acked += 1
                except ConnectionLost:
                    self.close_all()
                    continue
                time.sleep(1.0 / self.rate)
        finally:
            self.close_all()


class Torture:
    """One run of the kill -9 loop. run() returns a report dict; its "violations" list is
    empty when the promise held."""

    def __init__(self, binary, *, data_dir=None, threads=2, duration=50.0, min_kills=5,
                 max_kills=None, kill_interval=(0.8, 3.5), durability="fsync", publishers=4,
                 rate=40.0, window=16, retained_rate=20.0, seed=None, log=None,
                 broker_log_dir=None, extra_flags=()):
        self.binary = binary
        self.owned_dir = None
        if data_dir is None:
            self.owned_dir = tempfile.TemporaryDirectory(prefix="ringmq-torture-")
            data_dir = os.path.join(self.owned_dir.name, "data")
        self.data_dir = data_dir
        self.threads = threads
        self.duration = duration
        self.min_kills = min_kills
        self.max_kills = max_kills
        self.kill_interval = kill_interval
        # "interval" is not a choice of the command line: it does not hold acknowledgements, so
        # a SIGKILL may lose acknowledged messages (docs/persistence.md) and the checks fail.
        self.durability = durability
        self.n_publishers = publishers
        self.rate = rate
        self.window = window
        self.retained_rate = retained_rate
        self.seed = seed if seed is not None else random.randrange(1 << 32)
        self.log = log or (lambda text: None)
        self.broker_log_dir = broker_log_dir
        self.extra_flags = list(extra_flags)
        self.registry = Registry()
        self.port = broker_mod.free_port()
        self.broker = None
        self.run = 0
        self.kills = 0
        self.restart_seconds = []
        self.recovery_lines = []
        self.vlock = threading.Lock()
        self.violations = []
        self.sessions_durable = threading.Event()
        self.stop_publishing = threading.Event()
        self.draining = threading.Event()
        self.done = threading.Event()

    def violation(self, text):
        with self.vlock:
            if len(self.violations) < 1000:
                self.violations.append(text)

    def flags(self):
        return ["--persistence", "true", "--data-dir", self.data_dir,
                "--durability", self.durability,
                "--max-queued-messages", "10000000", "--max-queued-bytes", str(1 << 32),
                *self.extra_flags]

    def start_broker(self):
        self.run += 1
        b = broker_mod.Broker(*self.flags(), threads=self.threads, log_level="info",
                              binary_path=self.binary, port=self.port)
        started = time.monotonic()
        try:
            b.start()
        except AssertionError:
            self.save_broker_log(b)
            raise
        self.restart_seconds.append(time.monotonic() - started)
        self.broker = b
        return b

    def save_broker_log(self, b):
        self.recovery_lines += [f"run {self.run}: {line}" for line in b.lines
                                if "counters:" not in line and
                                ("recover" in line.lower() or "persist" in line.lower())]
        if self.broker_log_dir:
            os.makedirs(self.broker_log_dir, exist_ok=True)
            with open(os.path.join(self.broker_log_dir, f"broker-run{self.run:03}.log"),
                      "w") as f:
                f.write(b.stderr() + "\n")

    def kill_broker(self):
        b = self.broker
        if not b.running():
            b.cleanup()
            self.save_broker_log(b)
            raise AssertionError(f"the broker (run {self.run}) died by itself with exit code "
                                 f"{b.proc.returncode}:\n{b.stderr_tail()}")
        b.proc.send_signal(signal.SIGKILL)
        b.cleanup()
        self.save_broker_log(b)
        self.kills += 1

    def stop_broker_gracefully(self):
        b = self.broker
        try:
            b.stop(signal.SIGTERM)
        finally:
            b.cleanup()
            self.save_broker_log(b)

    def execute(self):
        rng = random.Random(self.seed)
        shards = self.threads
        pub_ids = spread_ids(f"tpub{self.seed % 1000}-", self.n_publishers, shards)
        sub_ids = spread_ids(f"tsub{self.seed % 1000}-", 5, shards)
        ret_ids = spread_ids(f"tret{self.seed % 1000}-", 2, min(shards, 2))
        subscribers = [
            Subscriber(self, sub_ids[0], "tt/#", 2, "online"),
            Subscriber(self, sub_ids[1], "tt/#", 1, "online"),
            Subscriber(self, sub_ids[2], "tt/#", 2, "offline"),
            Subscriber(self, sub_ids[3], "tt/+/q2", 2, "flaky"),
            Subscriber(self, sub_ids[4], "tt/#", 1, "flaky"),
        ]
        publishers = [Publisher(self, cid, self.rate, self.window) for cid in pub_ids]
        retained = RetainedWriter(self, ret_ids, self.retained_rate)
        self.start_broker()
        self.log(f"seed {self.seed}: broker on port {self.port}, {shards} shards, data dir "
                 f"{self.data_dir}, durability {self.durability}")
        for s in subscribers:
            s.start()
        for s in subscribers:
            if not s.subscribed.wait(15):
                raise AssertionError(f"{s.client_id} did not subscribe")
        # Every session is durable once each publisher had a QoS 2 message acknowledged (its
        # topic matches every subscriber): a delivery record durable on a subscriber's shard
        # comes after that subscriber's session and subscription records there, and the
        # publisher's own session record precedes its message on its home shard.
        for p in publishers:
            p.start()
        for p in publishers:
            if not p.first_acked.wait(15):
                raise AssertionError(f"{p.client_id}: no first ack within 15s")
        self.sessions_durable.set()
        retained.start()
        workers = subscribers + publishers + [retained]

        end = time.monotonic() + self.duration
        while (time.monotonic() < end or self.kills < self.min_kills) and (
                self.max_kills is None or self.kills < self.max_kills):
            time.sleep(rng.uniform(*self.kill_interval))
            self.kill_broker()
            time.sleep(rng.choice((0.0, 0.0, 0.05, 0.3)))
            self.start_broker()
            self.log(f"kill {self.kills}: restarted in {self.restart_seconds[-1]:.2f}s; "
                     f"sent {len(self.registry.sent)}, acked {len(self.registry.acked)}")
        self.stop_publishing.set()
        for p in publishers + [retained]:
            p.join(FINAL_ACK_SECONDS + 5)
            if p.is_alive():
                self.violation(f"{p.name} did not stop")
        # The end state must survive one more crash, and a graceful restart (final snapshot).
        self.kill_broker()
        self.start_broker()
        self.stop_broker_gracefully()
        self.start_broker()
        self.draining.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(not self.missing(s) for s in subscribers):
                break
            time.sleep(0.2)
        time.sleep(1.5)  # anything extra (duplicates) shows up now
        self.done.set()
        for w in workers:
            w.join(10)
        final_retained = self.read_retained()
        self.check(subscribers, final_retained)
        self.stop_broker_gracefully()
        return self.report(subscribers, publishers, retained)

    def missing(self, sub):
        got = sub.count()
        with self.registry.lock:
            acked = list(self.registry.acked)
        return [p for p in acked
                if p not in got and topic_matches(sub.filter, self.registry.sent[p][0])]

    def read_retained(self):
        conn = Conn(self.port, f"tcheck{self.seed % 1000}", clean=True)
        try:
            conn.send(m.subscribe(1, [("rt/#", 1)]))
            got, suback = {}, False
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pkt = conn.read(1.0)
                if pkt is None:
                    if suback:
                        break
                    continue
                if pkt.type == m.SUBACK:
                    suback = True
                    continue
                pub = m.Publish(pkt)
                if not pub.retain:
                    self.violation(f"retained check: a live message {pub!r}")
                if pub.topic in got:
                    self.violation(f"retained check: {pub.topic} sent twice: {got[pub.topic]!r} "
                                   f"and {pub.payload!r}")
                got[pub.topic] = pub.payload
                if pub.qos == 1:
                    conn.send(m.ack(m.PUBACK, pub.packet_id))
            conn.disconnect()
            return got
        finally:
            conn.close()

    def check(self, subscribers, final_retained):
        reg = self.registry
        for s in subscribers:
            got = s.count()
            lost, dup = [], []
            for payload, (topic, qos) in reg.sent.items():
                if not topic_matches(s.filter, topic):
                    continue
                n = got.get(payload, 0)
                if payload in reg.acked and n == 0:
                    lost.append(payload)
                if min(qos, s.qos) == 2 and n > 1:
                    dup.append((payload, n))
            if lost:
                self.violation(f"{s.client_id} ({s.mode}, {s.filter} QoS {s.qos}): "
                               f"{len(lost)} acknowledged messages never delivered, e.g. "
                               f"{sorted(lost)[:8]}")
            if dup:
                self.violation(f"{s.client_id} ({s.mode}, {s.filter} QoS {s.qos}): "
                               f"{len(dup)} QoS 2 messages delivered more than once, e.g. "
                               f"{sorted(dup)[:8]}")
        for topic in RETAINED_TOPICS:
            ok, last = reg.retained_acceptable(topic)
            value = final_retained.get(topic, ABSENT)
            if value not in ok:
                self.violation(f"retained {topic}: holds {value!r}; the last acknowledged write "
                               f"was {last}, acceptable: {sorted(ok, key=repr)}")
        for topic in final_retained:
            if topic not in reg.retained:
                self.violation(f"retained: unexpected topic {topic}")

    def report(self, subscribers, publishers, retained):
        reg = self.registry
        return {
            "seed": self.seed,
            "kills": self.kills,
            "broker_runs": self.run,
            "sent": len(reg.sent),
            "acked": len(reg.acked),
            "abandoned": reg.abandoned,
            "retained_writes": sum(len(v) for v in reg.retained.values()),
            "retained_acked": retained.acked,
            "deliveries": {s.client_id: sum(s.count().values()) for s in subscribers},
            "retransmissions": {s.client_id: s.retransmissions for s in subscribers},
            "restart_seconds_max": round(max(self.restart_seconds), 3),
            "violations": list(self.violations),
            "recovery_lines": self.recovery_lines[-10:],
        }

    def run_all(self):
        """execute() with every broker and thread cleaned up, whatever happens."""
        try:
            return self.execute()
        finally:
            self.stop_publishing.set()
            self.draining.set()
            self.done.set()
            if self.broker is not None and self.broker.running():
                self.broker.cleanup()
                self.save_broker_log(self.broker)
            if self.owned_dir is not None:
                self.owned_dir.cleanup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--kills", type=int, default=20, help="at least this many SIGKILLs")
    parser.add_argument("--duration", type=float, default=300.0,
                        help="seconds of traffic and kills (goes on until --kills is reached)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s per publisher")
    parser.add_argument("--window", type=int, default=16, help="unacknowledged per publisher")
    parser.add_argument("--kill-min", type=float, default=0.5)
    parser.add_argument("--kill-max", type=float, default=5.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--data-dir", help="default: a temporary directory, deleted after")
    parser.add_argument("--log-dir", help="keep every broker run's stderr here")
    args = parser.parse_args()
    os.environ.setdefault("RINGMQ_BINARY", os.path.abspath(args.binary))
    data_dir = args.data_dir
    if data_dir and os.path.exists(data_dir) and os.listdir(data_dir):
        print(f"{data_dir} is not empty; give a new directory", file=sys.stderr)
        return 2
    torture = Torture(os.path.abspath(args.binary), data_dir=data_dir, threads=args.threads,
                      duration=args.duration, min_kills=args.kills,
                      kill_interval=(args.kill_min, args.kill_max),
                      publishers=args.publishers, rate=args.rate, window=args.window,
                      seed=args.seed, broker_log_dir=args.log_dir,
                      log=lambda text: print(text, flush=True))
    started = time.monotonic()
    report = torture.run_all()
    print(f"finished in {time.monotonic() - started:.0f}s")
    for key, value in report.items():
        if key not in ("violations", "recovery_lines"):
            print(f"{key}: {value}")
    for line in report["recovery_lines"]:
        print(f"  {line}")
    if report["violations"]:
        print(f"FAILED: {len(report['violations'])} violations (seed {report['seed']}):")
        for v in report["violations"]:
            print(f"  - {v}")
        return 1
    print(f"OK: the promise held over {report['kills']} kills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
