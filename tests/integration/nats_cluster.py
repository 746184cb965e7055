"""A real NATS cluster for the integration tests, and a tiny raw NATS client (issue 16).

NatsCluster starts N `nats-server` processes (default 3) on 127.0.0.1, each with its own free
client, cluster-route and monitoring ports, JetStream on with its store in a temporary directory,
and routes to every other server; optionally (mqtt=True) an MQTT listener on one more free port
(nats-server's MQTT needs JetStream). The config files are written at run time. start() returns
once every server has logged that it is ready (all its listeners are open), reports its routes to
all the others (/routez) and names the same JetStream meta leader (/jsz), within START_TIMEOUT;
otherwise it stops what it started and raises. A server can be killed and restarted with its
store, or frozen with SIGSTOP (its sockets stay open, it answers nothing) and thawed.

No process is left behind: stop() kills and reaps every server and deletes the directory; the
cluster is a context manager and a unittest cleanup (NatsClusterTestCase); the processes are in
broker.LIVE so that run.py's watchdog kills them; and each server gets PR_SET_PDEATHSIG=SIGKILL so
that it dies with the Python process that started it even if that process is killed outright.

NatsClient speaks the client protocol as the NATS docs define it
(https://docs.nats.io/reference/reference-protocols/nats-protocol): INFO, CONNECT, PUB, HPUB, SUB,
UNSUB, MSG, HMSG, PING, PONG, +OK, -ERR. It is deliberately small and blocking, every read has a
timeout, and it has no reconnect logic: tests see exactly what the server does.

Thread safety: none; one test thread uses a cluster and its clients.
"""

import base64
import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import broker

HOST = "127.0.0.1"
NATS_SERVER = os.environ.get("RINGMQ_NATS_SERVER", "/usr/sbin/nats-server")
CLUSTER_NAME = "ringmq-test"
# Forming a 3-node cluster with a JetStream meta leader takes 2-4 s here (the meta group's
# election); the bound leaves room for a loaded 2-core CI machine.
START_TIMEOUT = 30.0
# One server coming back after a kill: its routes and catching up with the meta group.
RESTART_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# What nats-server logs once all its listeners (client, route, monitoring, MQTT) are open.
READY_LINE = "Server is ready"
# One socket operation of NatsClient.
TIMEOUT = 5.0
# A server's JetStream limits: small, so a test run cannot fill the disk or the memory.
JS_MAX_MEMORY = "64MB"
JS_MAX_FILE = "256MB"

# One wait for interest to cross shard -> NATS server -> route -> the publisher's server, and for
# every shard's link of a node to come up.
ROUTE_TIMEOUT = 10.0

# Linux prctl(PR_SET_PDEATHSIG): the child gets SIGKILL when the thread that forked it exits.
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


PORT_RACE_ATTEMPTS = 3  # starts tried when a port was taken between probe and bind


def free_port():
    return broker.free_port()


def available():
    """None if nats-server can be run here, else why not."""
    if not (os.path.isfile(NATS_SERVER) and os.access(NATS_SERVER, os.X_OK)):
        return f"{NATS_SERVER} is missing (scripts/install-deps.sh installs nats-server)"
    return None


class NatsServer:
    """One nats-server of a cluster: its ports, config file, store directory and process."""

    def __init__(self, index, directory, mqtt=False):
        self.index = index
        self.name = f"n{index + 1}"
        self.directory = directory
        self.store_dir = os.path.join(directory, f"{self.name}-js")
        self.config_path = os.path.join(directory, f"{self.name}.conf")
        self.log_path = os.path.join(directory, f"{self.name}.log")
        self.port = free_port()
        self.route_port = free_port()
        self.http_port = free_port()
        self.mqtt_port = free_port() if mqtt else None
        self.proc = None
        self.ready_before = 0  # "Server is ready" lines in the log before the last start()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def url(self):
        return f"nats://{HOST}:{self.port}"

    def write_config(self, peers, jetstream=True, extra=""):
        routes = ",\n    ".join(f"nats-route://{HOST}:{p.route_port}" for p in peers
                                if p is not self)
        cluster = (f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: {HOST}:{self.route_port}\n"
                   f"  routes: [\n    {routes}\n  ]\n}}\n" if len(peers) > 1 else "")
        js = (f'jetstream {{\n  store_dir: "{self.store_dir}"\n'
              f"  max_memory_store: {JS_MAX_MEMORY}\n  max_file_store: {JS_MAX_FILE}\n}}\n"
              if jetstream else "")
        mqtt = f"mqtt {{\n  listen: {HOST}:{self.mqtt_port}\n}}\n" if self.mqtt_port else ""
        text = (f"server_name: {self.name}\n"
                f"listen: {HOST}:{self.port}\n"
                f"http: {HOST}:{self.http_port}\n"
                f"{js}"
                f"{cluster}"
                f"{mqtt}"
                f"{extra}")
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self):
        assert self.proc is None, f"{self.name} is already running"
        self.ready_before = self._log_text().count(READY_LINE)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [NATS_SERVER, "-c", self.config_path], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        finally:
            log.close()
        broker.LIVE.add(self.proc)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def ready(self):
        """True once the process started last has logged that every listener is open."""
        return self._log_text().count(READY_LINE) > self.ready_before

    def freeze(self):
        """SIGSTOP: the process stops while its sockets stay open (only PINGs can tell)."""
        if self.running():
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """kill -9 and reap (the store directory stays, for restart())."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(STOP_TIMEOUT)
        finally:
            broker.LIVE.discard(self.proc)
            self.proc = None

    def stop(self):
        """SIGTERM (a clean shutdown), then SIGKILL if it has not exited within STOP_TIMEOUT."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.thaw()  # a stopped process would hold SIGTERM until continued
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def monitor(self, endpoint, timeout=1.0):
        """The JSON of a monitoring endpoint (e.g. "routez", "jsz"), or None if not answering."""
        url = f"http://{HOST}:{self.http_port}/{endpoint}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return json.loads(reply.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def _log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self._log_text().splitlines()[-n:])


class NatsCluster:
    """N clustered nats-servers (size 1: one standalone server, no cluster block and no meta
    group). `with NatsCluster() as c:` or start()/stop()."""

    def __init__(self, size=3, jetstream=True, extra_config="", mqtt=False):
        assert 1 <= size <= 9, size
        assert jetstream or not mqtt, "nats-server's MQTT listener needs JetStream"
        self.size = size
        self.jetstream = jetstream
        self.mqtt = mqtt
        self.extra_config = extra_config
        self.directory = None
        self.servers = []

    # ---- life cycle

    def start(self):
        reason = available()
        if reason:
            raise unittest.SkipTest(reason)
        # Ports come from broker.free_port(), which cannot reserve them: a test running in
        # parallel may bind one between our probe and nats-server's bind. That start fails with
        # "address already in use"; it is retried with fresh ports, any other failure is not.
        for attempt in range(PORT_RACE_ATTEMPTS):
            self.directory = tempfile.mkdtemp(prefix="ringmq-nats-")
            try:
                self.servers = [NatsServer(i, self.directory, self.mqtt)
                                for i in range(self.size)]
                for server in self.servers:
                    server.write_config(self.servers, self.jetstream, self.extra_config)
                    server.start()
                self.wait_formed(START_TIMEOUT)
                return self
            except AssertionError:
                lost_race = any("address already in use" in s._log_text()
                                for s in self.servers)
                self.stop()
                if not lost_race or attempt + 1 == PORT_RACE_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self):
        for server in self.servers:
            server.stop()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def kill(self, index):
        """kill -9 server `index` (its JetStream store stays for restart)."""
        self.servers[index].kill()

    def restart(self, index, timeout=RESTART_TIMEOUT):
        """Starts server `index` again with its config and store; returns once the cluster is
        formed again (every running server routed to every other)."""
        server = self.servers[index]
        if server.running():
            server.kill()
        server.start()
        self.wait_formed(timeout)

    # ---- addresses

    @property
    def ports(self):
        return [s.port for s in self.servers]

    @property
    def pids(self):
        return [s.pid for s in self.servers]

    def urls(self):
        return [s.url() for s in self.servers]

    def client(self, index, **kwargs):
        return NatsClient(self.servers[index].port, name=f"test-{self.servers[index].name}",
                          **kwargs)

    # ---- readiness

    def _formed_problem(self):
        """None if every running server is ready, routed to every other running one and (JetStream
        on) they all name the same meta leader, which is running; else what is missing."""
        running = [s for s in self.servers if s.running()]
        for server in self.servers:
            if server.proc is not None and not server.running():
                return f"{server.name} exited with status {server.proc.returncode}"
        for server in running:
            if not server.ready():
                return f"{server.name} has not logged {READY_LINE!r} yet"
        names = {s.name for s in running}
        leaders = set()
        routez = {}
        for server in running:
            routez[server.name] = server.monitor("routez")
            if routez[server.name] is None:
                return f"{server.name} does not answer /routez yet"
        # 2.9's /routez names a route's peer by server id only.
        ids = {routez[s.name]["server_id"]: s.name for s in running}
        for server in running:
            routed = {ids.get(r.get("remote_id")) for r in routez[server.name].get("routes", [])}
            missing = names - {server.name} - routed
            if missing:
                return f"{server.name} has no route to {sorted(missing)} yet"
            if self.jetstream and self.size > 1:
                jsz = server.monitor("jsz")
                meta = (jsz or {}).get("meta_cluster") or {}
                if not meta.get("leader"):
                    return f"{server.name} knows no JetStream meta leader yet"
                leaders.add(meta["leader"])
        if self.jetstream and self.size > 1:
            if len(leaders) != 1:
                return f"the servers name different meta leaders: {sorted(leaders)}"
            if not leaders <= names:
                return f"the meta leader {leaders} is not running"
        return None

    def wait_formed(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            problem = self._formed_problem()
            if problem is None:
                return
            if time.monotonic() > deadline or " exited with status " in problem:
                logs = "\n".join(f"--- {s.name} log:\n{s.log_tail()}" for s in self.servers)
                raise AssertionError(f"NATS cluster not formed within {timeout}s: {problem}\n"
                                     f"{logs}")
            time.sleep(0.1)

    def meta_leader(self):
        for server in self.servers:
            if server.running():
                meta = (server.monitor("jsz") or {}).get("meta_cluster") or {}
                if meta.get("leader"):
                    return meta["leader"]
        return None

    def logs(self):
        return "\n".join(f"--- {s.name} (port {s.port}) log:\n{s.log_tail()}"
                         for s in self.servers)


class NatsError(Exception):
    """-ERR from the server, a protocol violation or a closed connection."""


class Msg:
    """One MSG or HMSG: subject, sid, reply subject (or None), headers ({} if none), payload."""

    __slots__ = ("subject", "sid", "reply", "headers", "status", "payload")

    def __init__(self, subject, sid, reply, headers, status, payload):
        self.subject = subject
        self.sid = sid
        self.reply = reply
        self.headers = headers
        self.status = status  # the HMSG status line's code (e.g. "503"), or None
        self.payload = payload

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return (f"Msg({self.subject!r}, sid={self.sid}, reply={self.reply!r}, "
                f"headers={self.headers!r}, payload={self.payload[:80]!r})")


def encode_headers(headers):
    """The NATS/1.0 header block of HPUB (nats-protocol doc, "HPUB")."""
    lines = ["NATS/1.0"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def decode_headers(block):
    """(status code or None, {name: value}) of a header block."""
    text = block.decode("utf-8", "replace")
    lines = text.split("\r\n")
    first = lines[0].split(None, 2)
    if not first or first[0] != "NATS/1.0":
        raise NatsError(f"bad header block {block!r}")
    status = first[1] if len(first) > 1 else None
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    return status, headers


class NatsClient:
    """One raw client connection. Blocking, with a timeout on every wait."""

    _inbox_ids = itertools.count(1)

    def __init__(self, port, name="test", headers=True, echo=True, verbose=False,
                 timeout=TIMEOUT, host=HOST):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.pending = []  # messages read while waiting for something else (e.g. a PONG)
        self.sids = itertools.count(1)
        self.info = None
        self.closed = False
        line = self._read_line(time.monotonic() + timeout)
        if not line.startswith(b"INFO "):
            raise NatsError(f"expected INFO, got {line!r}")
        self.info = json.loads(line[5:])
        connect = {"verbose": verbose, "pedantic": False, "tls_required": False, "name": name,
                   "lang": "python-raw", "version": "0", "protocol": 1, "headers": headers,
                   "echo": echo, "no_responders": headers}
        self._send(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        self.flush()

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- sending

    def _send(self, data):
        self.sock.sendall(data)

    def send(self, data):
        """Raw bytes, for a test that writes protocol lines itself (e.g. an over-long one)."""
        self._send(data)

    def sub(self, subject, queue=None):
        """SUB; returns the sid."""
        sid = next(self.sids)
        queue_part = f" {queue}" if queue else ""
        self._send(f"SUB {subject}{queue_part} {sid}\r\n".encode())
        return sid

    def unsub(self, sid, max_msgs=None):
        tail = f" {max_msgs}" if max_msgs is not None else ""
        self._send(f"UNSUB {sid}{tail}\r\n".encode())

    def pub(self, subject, payload=b"", reply=None, headers=None):
        if isinstance(payload, str):
            payload = payload.encode()
        reply_part = f" {reply}" if reply else ""
        if headers:
            block = encode_headers(headers)
            self._send(f"HPUB {subject}{reply_part} {len(block)} {len(block) + len(payload)}"
                       "\r\n".encode() + block + payload + b"\r\n")
        else:
            self._send(f"PUB {subject}{reply_part} {len(payload)}\r\n".encode() + payload
                       + b"\r\n")

    def flush(self, timeout=None):
        """PING, then read until the PONG: the server has processed everything sent before.
        Messages that arrive meanwhile are kept for next_msg()."""
        self._send(b"PING\r\n")
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            item = self._read_item(deadline)
            if item == "PONG":
                return
            if isinstance(item, Msg):
                self.pending.append(item)

    # ---- receiving

    def next_msg(self, timeout=None):
        """The next MSG/HMSG, or raises socket.timeout (TimeoutError) after `timeout`."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            item = self._read_item(deadline)
            if isinstance(item, Msg):
                return item

    def messages(self, count, timeout=None):
        """Exactly `count` messages within `timeout` in total (TimeoutError otherwise)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return [self.next_msg(max(0.0, deadline - time.monotonic())) for _ in range(count)]

    def drain(self, quiet=0.3):
        """Every message that arrives until none has for `quiet` seconds."""
        out = []
        while True:
            try:
                out.append(self.next_msg(quiet))
            except TimeoutError:
                return out

    def new_inbox(self):
        return f"_INBOX.raw{os.getpid()}.{next(self._inbox_ids)}"

    def request(self, subject, payload=b"", headers=None, timeout=None):
        """PUB with a fresh reply subject and the one reply (the JetStream API's request-reply:
        https://docs.nats.io/reference/reference-protocols/nats_api_reference)."""
        inbox = self.new_inbox()
        sid = self.sub(inbox)
        self.unsub(sid, 1)
        self.pub(subject, payload, reply=inbox, headers=headers)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        kept = []
        try:
            while True:
                msg = self.next_msg(max(0.0, deadline - time.monotonic()))
                if msg.sid == sid:
                    return msg
                kept.append(msg)
        finally:
            self.pending[:0] = kept

    def read_line(self, timeout=None):
        """The next raw protocol line (without CRLF), not parsed: what the server answers to a
        line it refuses."""
        return self._read_line(time.monotonic() + (self.timeout if timeout is None else timeout))

    def read_raw_until(self, marker, timeout=None):
        """Every byte received until `marker` has arrived, not parsed (for MSG lines that do not
        parse, e.g. a subject with a control character that is whitespace). The stream may be
        out of step afterwards."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while marker not in self.buf:
            self._fill(deadline)
        data = bytes(self.buf)
        self.buf.clear()
        return data

    # ---- parsing

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for the NATS server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout as e:
            raise TimeoutError("timed out waiting for the NATS server") from e
        if not data:
            self.closed = True
            raise NatsError("connection closed by the server")
        self.buf += data

    def _read_line(self, deadline):
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[:end + 2]
                return line
            self._fill(deadline)

    def _read_exact(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        if self.buf[n:n + 2] != b"\r\n":
            raise NatsError("payload not followed by CRLF")
        del self.buf[:n + 2]
        return data

    def _read_item(self, deadline):
        """One protocol item: a Msg, "PONG", "+OK" or "INFO" (PINGs are answered here)."""
        while True:
            line = self._read_line(deadline)
            op, _, rest = line.partition(b" ")
            op = op.upper()
            # Fields split at ASCII whitespace only (str.split() would also split a subject at
            # \x1c-\x1f, U+0085 or U+00A0); a subject's bytes that are not UTF-8 survive as
            # surrogates: msg.subject.encode("utf-8", "surrogateescape") gives them back.
            if op in (b"MSG", b"HMSG"):
                args = [a.decode("utf-8", "surrogateescape") for a in rest.split()]
            if op == b"MSG":
                subject, sid, size = args[0], int(args[1]), int(args[-1])
                reply = args[2] if len(args) == 4 else None
                return Msg(subject, sid, reply, {}, None, self._read_exact(size, deadline))
            if op == b"HMSG":
                subject, sid = args[0], int(args[1])
                header_size, total = int(args[-2]), int(args[-1])
                reply = args[2] if len(args) == 5 else None
                data = self._read_exact(total, deadline)
                status, headers = decode_headers(data[:header_size])
                return Msg(subject, sid, reply, headers, status, data[header_size:])
            if op == b"PING":
                self._send(b"PONG\r\n")
                continue
            if op == b"PONG":
                return "PONG"
            if op == b"+OK":
                return "+OK"
            if op == b"INFO":
                self.info = json.loads(rest)
                return "INFO"
            if op == b"-ERR":
                raise NatsError(f"-ERR {rest.decode('utf-8', 'replace')}")
            raise NatsError(f"unexpected protocol line {line!r}")


def wait_interest(publisher, subscriber, timeout=10.0):
    """Returns once the server `publisher` is connected to knows every subscription that
    `subscriber` made so far, even if they are on different servers.

    A route forwards one server's interest (RS+) to another in order over a single connection
    (2.9 has one route per pair of servers), so a probe subscription made after the others is
    known at the publisher's server only after them: publishing on the probe subject until the
    probe arrives proves the earlier ones arrived too. The probe subscription is removed."""
    probe = f"_probe.{os.getpid()}.{next(NatsClient._inbox_ids)}"
    sid = subscriber.sub(probe)
    subscriber.flush()
    deadline = time.monotonic() + timeout
    kept = []
    try:
        while True:
            publisher.pub(probe, b"probe")
            publisher.flush()
            try:
                while True:
                    msg = subscriber.next_msg(0.05)
                    if msg.sid == sid:
                        return
                    kept.append(msg)
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"interest not propagated within {timeout}s")
    finally:
        subscriber.unsub(sid)
        subscriber.flush()
        # Late probe copies (sent before the one that arrived) are dropped, the rest kept.
        subscriber.pending = [m for m in kept + subscriber.pending if m.sid != sid]


# ---- JetStream key-value, through the JS API subjects
# (https://docs.nats.io/reference/reference-protocols/nats_api_reference and the KV design,
# ADR-8: a bucket B is the stream KV_B on subjects $KV.B.>, one message per subject).

JS_API = "$JS.API"
# JetStream answers with an error while a stream or the meta group has no leader (just created,
# or after a kill): "JetStream system temporarily unavailable" (10008) and a 503 no-responders
# status among others. Callers retry those within a bound.
JS_RETRY_SECONDS = 20.0


class JsError(Exception):
    def __init__(self, error):
        super().__init__(f"JetStream error {error}")
        self.error = error
        self.code = error.get("code")
        self.err_code = error.get("err_code")


def js_call(client, subject, body=None, headers=None, timeout=5.0):
    """One request to the JetStream API or a stream subject; the decoded JSON reply, or raises
    JsError for an {"error": ...} reply (a no-responders 503 status as code 503)."""
    payload = b"" if body is None else (body if isinstance(body, bytes)
                                        else json.dumps(body).encode())
    msg = client.request(subject, payload, headers=headers, timeout=timeout)
    if msg.status == "503":
        raise JsError({"code": 503, "description": "no responders"})
    reply = msg.json()
    if "error" in reply:
        raise JsError(reply["error"])
    return reply


def js_retry(call, timeout=JS_RETRY_SECONDS):
    """call() until it does not raise a transient error (no leader yet, no responders, a
    timeout), within `timeout`; the last error is raised after that."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (JsError, TimeoutError) as e:
            transient = isinstance(e, TimeoutError) or e.code in (503, 500) or e.err_code in (
                10008, 10074)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class KvBucket:
    """A JetStream key-value bucket used through one NatsClient."""

    def __init__(self, client, name):
        self.client = client
        self.name = name
        self.stream = f"KV_{name}"

    def create(self, replicas=3, history=1):
        config = {
            "name": self.stream,
            "subjects": [f"$KV.{self.name}.>"],
            "retention": "limits",
            "max_msgs_per_subject": history,
            "max_bytes": -1,
            "max_age": 0,
            "max_msg_size": -1,
            "storage": "file",
            "discard": "new",
            "num_replicas": replicas,
            "duplicate_window": 120 * 10**9,
            "allow_rollup_hdrs": True,
            "deny_delete": True,
            "deny_purge": False,
            "allow_direct": True,
        }
        return js_retry(lambda: js_call(self.client, f"{JS_API}.STREAM.CREATE.{self.stream}",
                                        config))

    def info(self):
        return js_call(self.client, f"{JS_API}.STREAM.INFO.{self.stream}")

    def put(self, key, value, expected_revision=None):
        """The revision (stream sequence) of the new value. With `expected_revision`, the put
        succeeds only if the key's last revision is that one (0: the key has none), as a
        compare-and-set (header Nats-Expected-Last-Subject-Sequence); otherwise JsError."""
        headers = None
        if expected_revision is not None:
            headers = {"Nats-Expected-Last-Subject-Sequence": str(expected_revision)}
        ack = js_call(self.client, f"$KV.{self.name}.{key}", value, headers=headers)
        return ack["seq"]

    def get(self, key):
        """(value bytes, revision) of the key, or None if it has no value (never written, or
        its last message is a delete or purge marker, as the NATS clients' Get says)."""
        try:
            reply = js_call(self.client, f"{JS_API}.STREAM.MSG.GET.{self.stream}",
                            {"last_by_subj": f"$KV.{self.name}.{key}"})
        except JsError as e:
            if e.err_code == 10037:  # "no message found"
                return None
            raise
        message = reply["message"]
        headers = base64.b64decode(message.get("hdrs", ""))
        if b"KV-Operation: DEL" in headers or b"KV-Operation: PURGE" in headers:
            return None
        return base64.b64decode(message.get("data", "")), message["seq"]


class NatsClusterTestCase(unittest.TestCase):
    """A test case with a fresh cluster per test (self.cluster) and its clients closed after."""

    CLUSTER_SIZE = 3

    def setUp(self):
        self.cluster = NatsCluster(self.CLUSTER_SIZE)
        self.addCleanup(self.cluster.stop)
        self.addCleanup(self._dump_on_failure)  # cleanups run last-in first-out: before stop
        self.cluster.start()

    def _dump_on_failure(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = bool(result and (result.failures or result.errors) and any(
            t is self for t, _ in result.failures + result.errors))
        if failed and self.cluster.directory:
            print(self.cluster.logs())

    def connect(self, index, **kwargs):
        client = self.cluster.client(index, **kwargs)
        self.addCleanup(client.close)
        return client


# ---- ringmq nodes over a NATS cluster: the fixture every test_cluster_*.py shares ----

def scrape(node):
    with urllib.request.urlopen(node.metrics_url(), timeout=5) as reply:
        return reply.read().decode()


def metric(node, family, **labels):
    """The sum over shards of `family` samples whose labels include `labels`."""
    total = 0
    for line in scrape(node).splitlines():
        if not line.startswith(family + "{") and not line.startswith(family + " "):
            continue
        name_labels, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', name_labels))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def wait_metric(node, family, at_least, timeout=ROUTE_TIMEOUT, **labels):
    """Until `family{labels}` summed over shards is at least `at_least`; AssertionError with the
    node's log after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while metric(node, family, **labels) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"{family}{labels} < {at_least} after {timeout} s:\n"
                                 f"{node.stderr_tail()}")
        time.sleep(0.05)


def start_node(urls, name, *flags, threads=2, log_level="info", **kwargs):
    """One ringmq node with `threads` shards, connected to the NATS `urls` (in order), /metrics
    on; not waited for."""
    node = broker.Broker(*sum((["--cluster-nats-url", u] for u in urls), []),
                         "--cluster-node-name", name, *flags, threads=threads, metrics=True,
                         log_level=log_level, **kwargs)
    node.start()
    return node


def start_nodes(cluster, count, prefix, *flags, per_node=(), threads=2, **kwargs):
    """`count` nodes named prefix0.., node i on NATS server i (modulo the cluster's size) with
    `flags` and per_node[i]; returns once every shard's link of every node is up. On failure the
    nodes started are stopped."""
    urls = cluster.urls()
    nodes = []
    try:
        for i in range(count):
            extra = tuple(per_node[i]) if i < len(per_node) else ()
            nodes.append(start_node([urls[i % len(urls)]], f"{prefix}{i}", *flags, *extra,
                                    threads=threads, **kwargs))
        for node in nodes:
            wait_metric(node, "ringmq_cluster_link_events_total", threads, event="connect")
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return nodes


class NodesOverNats(unittest.TestCase):
    """A NATS cluster and ringmq nodes on it, started once for the class (each test uses its own
    topics and client ids). Subclasses set the class attributes and may extend
    nodes_started() (more waits) or tearDownClass()."""

    nats_size = 3
    jetstream = False
    node_count = 3
    node_prefix = "node"
    node_flags = ()
    node_per_node = ()
    node_threads = 2
    node_log_level = "info"
    cluster = None
    nodes = []

    @classmethod
    def setUpClass(cls):
        cls.cluster = NatsCluster(size=cls.nats_size, jetstream=cls.jetstream)
        cls.cluster.start()
        cls.nodes = []
        try:
            cls.nodes = start_nodes(cls.cluster, cls.node_count, cls.node_prefix, *cls.node_flags,
                                    per_node=cls.node_per_node, threads=cls.node_threads,
                                    log_level=cls.node_log_level)
            cls.nodes_started()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def nodes_started(cls):
        """After every node's links are up; raises to fail the class."""

    @classmethod
    def tearDownClass(cls):
        for node in cls.nodes:
            node.stop()
        cls.nodes = []
        if cls.cluster is not None:
            cls.cluster.stop()
            cls.cluster = None
