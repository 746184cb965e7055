"""TLS and nkey credentials between ringmq and NATS (natstls lane; docs/cluster.md, "TLS to
NATS"): real nats-servers with a `tls {}` block, certificates made at test time with the openssl
command (test_tls.Pki: a CA, a server certificate for localhost / 127.0.0.1, another CA), never
committed; an nkey pair made with `openssl genpkey -algorithm ed25519` and encoded here (the
nkeys format: base32 of prefix + key + CRC-16/XMODEM, written from its description).

Each test starts its own small NATS cluster (no JetStream) and ringmq nodes with one shard, and
waits on events (metrics, log lines, connz) with bounds; nothing sleeps as an assertion.
"""

import base64
import os
import json
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import broker
import mqtt_raw
import nats_cluster
from test_cluster import metric, wait_route
from test_tls import Pki

LINK_TIMEOUT = 15.0
TLS_LINK_OPEN_BYTES = (18 + 34) << 10  # TlsLayer::kClientIdleBytes + kRecordBuffersBytes
OPENSSL = "/usr/bin/openssl"


def nats_tls_block(pki, verify=False, cert="server"):
    text = (f'tls {{\n  cert_file: "{pki.path(cert + ".crt")}"\n'
            f'  key_file: "{pki.path(cert + ".key")}"\n  timeout: 2\n')
    if verify:  # mutual TLS: client certificates required, verified against the CA
        text += f'  ca_file: "{pki.path("ca.crt")}"\n  verify: true\n'
    return text + "}\n"


def wait_metric(node, family, minimum, timeout=LINK_TIMEOUT, **labels):
    deadline = time.monotonic() + timeout
    while True:
        value = metric(node, family, **labels)
        if value >= minimum:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{family}{labels} = {value} < {minimum} after {timeout}s\n"
                                 f"{node.stderr_tail()}")
        time.sleep(0.05)


# ---- nkeys (github.com/nats-io/nkeys: the format, learned from its description) -------------

def crc16_xmodem(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def nkey_encode(prefix, raw):
    data = bytes(prefix) + raw
    crc = crc16_xmodem(data)
    return base64.b32encode(data + bytes([crc & 0xFF, crc >> 8])).decode().rstrip("=")


def new_user_nkey(directory, name):
    """(seed "SU...", public key "U...") of a fresh ed25519 key made by openssl."""
    key = os.path.join(directory, f"{name}.der")
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "ed25519", "-outform", "DER", "-out", key],
                   check=True, capture_output=True, timeout=30)
    private = open(key, "rb").read()[-32:]  # PKCS#8: the 32-byte seed ends the structure
    public = subprocess.run([OPENSSL, "pkey", "-inform", "DER", "-in", key, "-pubout",
                             "-outform", "DER"], check=True, capture_output=True,
                            timeout=30).stdout[-32:]
    user = 20 << 3
    seed = nkey_encode([(18 << 3) | (user >> 5), (user & 31) << 3], private)
    return seed, nkey_encode([user], public)


class TlsFirstNatsServer:
    """A minimal NATS server that runs TLS from the connection's first byte, as nats-server 2.10
    does with `tls { handshake_first: true }` (Debian's nats-server, 2.9, has no such setting):
    INFO goes out only once the TLS handshake is done, through TLS. Written from the NATS client
    protocol: CONNECT is recorded, PING answered with PONG, SUB/UNSUB ignored, PUB/HPUB payloads
    skipped. A connection whose client never starts TLS (it waits for INFO in clear) is counted
    in `clear_clients` when it closes."""

    def __init__(self, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connects = []  # each CONNECT's JSON, as received through TLS
        self.clear_clients = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def url(self):
        return f"tls://127.0.0.1:{self.port}"

    def stop(self):
        self.stopping.set()
        for thread in list(self.threads):
            thread.join(timeout=10)
        self.listener.close()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn):
        conn.settimeout(0.5)
        try:
            try:
                tls = self._handshake(conn)
            except (ssl.SSLError, OSError):
                with self.lock:
                    self.clear_clients += 1
                return
            if tls is None:
                return
            tls.sendall(b'INFO {"server_id":"TLSFIRST","version":"2.10.0","proto":1,'
                        b'"headers":true,"max_payload":1048576,"tls_required":true}\r\n')
            self._converse(tls)
        finally:
            conn.close()

    def _handshake(self, conn):
        """The TLS socket; None if stopping. Raises if the client closes before a ClientHello."""
        while not self.stopping.is_set():
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except socket.timeout:
                continue
            if not first:
                raise OSError("closed before any byte")
            if first != b"\x16":  # not a TLS handshake record
                raise ssl.SSLError("clear text first")
            conn.settimeout(5)
            return self.context.wrap_socket(conn, server_side=True)
        return None

    def _converse(self, tls):
        tls.settimeout(0.5)
        data = b""
        while not self.stopping.is_set():
            try:
                chunk = tls.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                return
            if not chunk:
                return
            data += chunk
            while b"\r\n" in data:
                line, rest = data.split(b"\r\n", 1)
                words = line.split()
                verb = words[0].upper() if words else b""
                if verb in (b"PUB", b"HPUB"):
                    size = int(words[-1])  # the payload (HPUB: headers and payload)
                    if len(rest) < size + 2:
                        break  # the rest of the message is still to come
                    rest = rest[size + 2:]
                elif verb == b"CONNECT":
                    with self.lock:
                        self.connects.append(json.loads(line[len(b"CONNECT "):]))
                elif verb == b"PING":
                    tls.sendall(b"PONG\r\n")
                data = rest


class ClusterTlsTest(unittest.TestCase):
    def setUp(self):
        if broker.is_mosquitto():
            self.skipTest("ringmq cluster only")
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-natstls-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.pki = Pki(self.dir)

    def nats(self, size=1, extra=""):
        cluster = nats_cluster.NatsCluster(size=size, jetstream=False, extra_config=extra)
        cluster.start()
        self.addCleanup(cluster.stop)
        return cluster

    def node(self, *flags, name="node0"):
        b = broker.Broker("--cluster-node-name", name, *flags, threads=1, metrics=True,
                          log_level="info")
        b.start()
        self.addCleanup(b.cleanup)
        return b

    def tls_url(self, cluster, index=0):
        return f"tls://127.0.0.1:{cluster.servers[index].port}"

    def client(self, node, client_id):
        c = mqtt_raw.Client(node.port, client_id)
        self.addCleanup(c.close)
        return c

    def assert_tls_connections(self, cluster, indexes, count):
        """nats-server's own view: `count` client connections on the servers `indexes` in all,
        every one TLS (connz tls_version "1.2" or "1.3")."""
        tls = []
        for index in indexes:
            conns = cluster.servers[index].monitor("connz") or {}
            tls += [c.get("tls_version", "") for c in conns.get("connections", [])]
        self.assertEqual(len(tls), count, tls)
        self.assertTrue(all(v.startswith("1.") for v in tls), tls)

    # -- the positive path

    def test_cross_node_pubsub_over_tls_then_reconnect_after_a_server_restart(self):
        cluster = self.nats(size=2, extra=nats_tls_block(self.pki))
        ca = self.pki.path("ca.crt")
        nodes = [self.node("--cluster-nats-url", self.tls_url(cluster, i),
                           "--cluster-tls-ca-file", ca, name=f"node{i}") for i in range(2)]
        for node in nodes:
            # The main link and the share link: each a NATS handshake over TLS.
            wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="ok")
        for i in range(2):
            self.assert_tls_connections(cluster, [i], 2)
        sub = self.client(nodes[1], "tls-sub")
        sub.subscribe([("tls/t", 0)])
        pub = self.client(nodes[0], "tls-pub")
        wait_route(pub, [sub], "tls/t")
        payloads = [b"m%03d" % i for i in range(50)]
        for p in payloads:
            pub.publish("tls/t", p)
        self.assertEqual([g.payload for g in sub.receive(len(payloads), timeout=10)], payloads)

        # nats-server 0 restarts: node 0's links come back over TLS, and messages cross again.
        reconnects = metric(nodes[0], "ringmq_cluster_link_events_total", event="reconnect")
        cluster.kill(0)
        cluster.restart(0)
        wait_metric(nodes[0], "ringmq_cluster_link_events_total", reconnects + 1,
                    event="reconnect")
        wait_metric(nodes[0], "ringmq_cluster_nats_tls_handshakes_total", 4, result="ok")
        # Node 0's links are on server 0 again or on server 1 (learned from INFO connect_urls,
        # TLS inherited): four TLS connections in all.
        self.assert_tls_connections(cluster, [0, 1], 4)
        wait_route(pub, [sub], "tls/t")
        pub.publish("tls/t", b"after restart")
        self.assertEqual(sub.receive(1, timeout=10)[0].payload, b"after restart")
        for node in nodes:
            counters = node.stop()
            self.assertEqual(counters.get("cluster_nats_tls_failures", 0), 0)

    def test_tls_option_on_a_nats_url_and_an_explicit_server_name(self):
        cluster = self.nats(extra=nats_tls_block(self.pki))
        # nats:// + tls = true; the certificate names localhost, which the URL does not.
        node = self.node("--cluster-nats-url", cluster.urls()[0], "--cluster-tls", "true",
                         "--cluster-tls-ca-file", self.pki.path("ca.crt"),
                         "--cluster-tls-server-name", "localhost")
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="ok")
        self.assert_tls_connections(cluster, [0], 2)
        # tidy2 lane: each open TLS link's layer is charged to max_memory with the link's buffers
        # (TlsLayer::memory_bytes: 18 KiB of OpenSSL state and 34 KiB of kept record buffers).
        wait_metric(node, "ringmq_cluster_link_buffer_bytes", 2 * TLS_LINK_OPEN_BYTES)

    # -- refusals: counted, logged, no crash, retried

    def test_wrong_ca_is_refused_counted_logged_and_retried(self):
        cluster = self.nats(extra=nats_tls_block(self.pki))
        node = self.node("--cluster-nats-url", self.tls_url(cluster),
                         "--cluster-tls-ca-file", self.pki.path("other-ca.crt"))
        # Retried with back-off: several failures, never a connect.
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 4, result="failed")
        self.assertIsNotNone(node.wait_for_log(
            r"NATS (link|share link): TLS to NATS server 127\.0\.0\.1:\d+: TLS handshake "
            r"failed: unknown_ca .*; retrying"))
        self.assertEqual(metric(node, "ringmq_cluster_link_events_total", event="connect"), 0)
        self.assertEqual(metric(node, "ringmq_cluster_nats_tls_handshakes_total", result="ok"), 0)
        # The broker still serves its clients.
        c = self.client(node, "still-up")
        c.subscribe([("local/t", 0)])
        # nats-server's own view: no connection got as far as CONNECT (a retry may be in its
        # TLS handshake at this instant, listed without a client library: a snapshot of
        # num_connections == 0 failed that way under load in CI).
        conns = cluster.servers[0].monitor("connz").get("connections", [])
        self.assertEqual([c for c in conns if c.get("lang") or c.get("name")], [], conns)
        counters = node.stop()  # a clean exit
        self.assertGreaterEqual(counters["cluster_nats_tls_failures"], 4)

    def test_server_name_mismatch_is_refused(self):
        cluster = self.nats(extra=nats_tls_block(self.pki))
        node = self.node("--cluster-nats-url", self.tls_url(cluster),
                         "--cluster-tls-ca-file", self.pki.path("ca.crt"),
                         "--cluster-tls-server-name", "nats.other.example")
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="failed")
        self.assertIsNotNone(node.wait_for_log(
            r"TLS handshake failed: bad_certificate \(certificate verify failed; "
            r"hostname mismatch\); retrying"))
        self.assertEqual(metric(node, "ringmq_cluster_link_events_total", event="connect"), 0)

    def test_server_that_requires_tls_without_tls_configured_is_refused_clearly(self):
        cluster = self.nats(extra=nats_tls_block(self.pki))
        node = self.node("--cluster-nats-url", cluster.urls()[0])
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="failed")
        self.assertIsNotNone(node.wait_for_log(
            r"requires TLS and \[cluster\] configures none \(set tls = true, tls_ca_file\)"))

    def test_tls_wanted_but_the_server_has_none_sends_no_credentials(self):
        cluster = self.nats(extra='authorization { user: ringmq, password: "s3cret" }\n')
        node = self.node("--cluster-nats-url",
                         f"tls://ringmq:s3cret@127.0.0.1:{cluster.servers[0].port}",
                         "--cluster-tls-ca-file", self.pki.path("ca.crt"))
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="failed")
        self.assertIsNotNone(node.wait_for_log(r"offers none \(INFO without tls_required"))
        # Had CONNECT gone out (with the right password), the link would have been ready.
        self.assertEqual(metric(node, "ringmq_cluster_link_events_total", event="connect"), 0)

    # -- nats-server 2.10's handshake_first (TLS before INFO)

    def tls_first_server(self):
        server = TlsFirstNatsServer(self.pki.path("server.crt"), self.pki.path("server.key"))
        self.addCleanup(server.stop)
        return server

    def test_handshake_first_starts_tls_before_info(self):
        server = self.tls_first_server()
        node = self.node("--cluster-nats-url", server.url(),
                         "--cluster-tls-ca-file", self.pki.path("ca.crt"),
                         "--cluster-tls-handshake-first", "true")
        wait_metric(node, "ringmq_cluster_link_events_total", 1, event="connect")
        wait_metric(node, "ringmq_cluster_share_link_events_total", 1, event="connect")
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="ok")
        with server.lock:
            connects = list(server.connects)
        # Both links (the shard's and its share link) sent CONNECT through TLS, after an INFO
        # that only TLS could carry.
        self.assertGreaterEqual(len(connects), 2, connects)
        self.assertTrue(all(c.get("tls_required") for c in connects), connects)
        self.assertEqual(server.clear_clients, 0)

    def test_without_handshake_first_a_tls_first_server_is_never_reached(self):
        # The node waits for INFO in clear, the server for a ClientHello: the handshake times
        # out (handshake_timeout, 2 s) and the link retries; nothing connects.
        server = self.tls_first_server()
        node = self.node("--cluster-nats-url", server.url(),
                         "--cluster-tls-ca-file", self.pki.path("ca.crt"))
        deadline = time.monotonic() + LINK_TIMEOUT
        while server.clear_clients < 2:
            self.assertLess(time.monotonic(), deadline, "the node's connections did not end")
            time.sleep(0.05)
        self.assertEqual(metric(node, "ringmq_cluster_link_events_total", event="connect"), 0)
        self.assertEqual(server.connects, [])

    # -- mutual TLS

    def test_mutual_tls_required_refuses_no_certificate_and_accepts_ours(self):
        self.pki.issue("node", "ringmq-node0")
        cluster = self.nats(extra=nats_tls_block(self.pki, verify=True))
        ca = self.pki.path("ca.crt")
        without = self.node("--cluster-nats-url", self.tls_url(cluster),
                            "--cluster-tls-ca-file", ca, name="without")
        wait_metric(without, "ringmq_cluster_nats_tls_handshakes_total", 2, result="failed")
        self.assertEqual(metric(without, "ringmq_cluster_link_events_total", event="connect"), 0)
        without.stop()
        node = self.node("--cluster-nats-url", self.tls_url(cluster),
                         "--cluster-tls-ca-file", ca,
                         "--cluster-tls-cert-file", self.pki.path("node.crt"),
                         "--cluster-tls-key-file", self.pki.path("node.key"), name="with")
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="ok")
        self.assert_tls_connections(cluster, [0], 2)

    # -- nkey

    def test_nkey_authenticates_and_a_wrong_nkey_is_refused(self):
        seed, public = new_user_nkey(self.dir, "user")
        other_seed, _ = new_user_nkey(self.dir, "other")
        self.assertTrue(seed.startswith("SU") and len(seed) == 58, seed)
        self.assertTrue(public.startswith("U") and len(public) == 56, public)
        cluster = self.nats(extra=(f"authorization {{ users = [ {{ nkey: {public} }} ] }}\n"
                                   + nats_tls_block(self.pki)))
        seed_file = os.path.join(self.dir, "user.nk")
        with open(seed_file, "w") as f:
            f.write(seed + "\n")
        node = self.node("--cluster-nats-url", self.tls_url(cluster),
                         "--cluster-tls-ca-file", self.pki.path("ca.crt"),
                         "--cluster-nkey-seed-file", seed_file, name="nkey")
        self.assertIsNotNone(node.wait_for_log(rf"cluster: NATS nkey {public}"))
        wait_metric(node, "ringmq_cluster_nats_tls_handshakes_total", 2, result="ok")
        # The server requires authentication (a user list): being connected is being accepted.
        # Where connz names the user, it is our public key.
        conns = (cluster.servers[0].monitor("connz?auth=true") or {}).get("connections", [])
        self.assertEqual(len(conns), 2, conns)
        users = {c["authorized_user"] for c in conns if c.get("authorized_user")}
        self.assertTrue(users <= {public}, users)
        other_file = os.path.join(self.dir, "other.nk")
        with open(other_file, "w") as f:
            f.write(other_seed + "\n")
        wrong = self.node("--cluster-nats-url", self.tls_url(cluster),
                          "--cluster-tls-ca-file", self.pki.path("ca.crt"),
                          "--cluster-nkey-seed-file", other_file, name="wrong")
        self.assertIsNotNone(wrong.wait_for_log(r"NATS link lost \(authorization",
                                                timeout=LINK_TIMEOUT))
        self.assertEqual(metric(wrong, "ringmq_cluster_link_events_total", event="connect"), 0)


if __name__ == "__main__":
    unittest.main()
