"""PROXY protocol listeners (proxy_protocol = "v1" | "v2" | "any"; docs/deployment.md).

Raw sockets write v1 and v2 headers (haproxy.org doc/proxy-protocol.txt, sections 2.1 and 2.2)
into a PROXY listener: the address in the header is the one the broker's logs and per-address
limits use. A listener that expects a header closes a client without one, without a reply, and
counts why. Then a real HAProxy (Debian `haproxy`) in front of the broker, with `send-proxy` and
`send-proxy-v2`: two clients bound to 127.0.0.2 behind it hit max_connections_per_address = 1
while a client from 127.0.0.3 is served; through a backend without PROXY every client looks
like HAProxy's own 127.0.0.1 and the limit refuses the second of any two.
"""

import base64
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import mqtt_raw as m
from broker import BrokerTestCase, free_port, is_mosquitto

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HAPROXY_READY_TIMEOUT = 10.0
DEPLOYMENT_DOC = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs",
    "deployment.md")


def v1(source="203.0.113.7", source_port=40000, dest="127.0.0.1", dest_port=1883, family="TCP4"):
    return f"PROXY {family} {source} {dest} {source_port} {dest_port}\r\n".encode()


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def v2(source="203.0.113.8", source_port=40001, dest="127.0.0.1", dest_port=1883, tlvs=b"",
       command=0x21):
    block = (socket.inet_aton(source) + socket.inet_aton(dest)
             + struct.pack(">HH", source_port, dest_port) + tlvs)
    return V2_SIGNATURE + bytes([command, 0x11]) + struct.pack(">H", len(block)) + block


class ProxyListenerCase(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq listeners")
        self.tmp = tempfile.TemporaryDirectory(prefix="ringmq-proxy-")
        self.addCleanup(self.tmp.cleanup)

    def start_with_listeners(self, listeners, *flags, threads=2):
        """`listeners`: [(name, proxy_protocol)]; returns (broker, {name: port})."""
        ports = {}
        lines = []
        for name, proxy in listeners:
            ports[name] = free_port()
            lines += ["[[listener]]", f'name = "{name}"', 'bind = "127.0.0.1"',
                      f"port = {ports[name]}", f'proxy_protocol = "{proxy}"', ""]
        path = os.path.join(self.tmp.name, "ringmq.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        broker = self.start_broker("--config", path, *flags, threads=threads)
        return broker, ports


class RawHeaders(ProxyListenerCase):
    def test_v1_and_v2_headers_name_the_client_in_the_log(self):
        b, ports = self.start_with_listeners([("p1", "v1"), ("p2", "v2"), ("pany", "any")])
        with m.open_socket(ports["p1"]) as s:
            s.sendall(v1("203.0.113.7", 40000) + m.connect("via-v1"))  # header and CONNECT at once
            m.expect_connack(s, 0)
            m.ping(s)
            m.disconnect(s)
        with m.open_socket(ports["p2"]) as s:
            # The header in two pieces, the CONNECT after it.
            header = v2("203.0.113.8", 40001, tlvs=tlv(0x02, b"broker.example") + tlv(0x04, b""))
            s.sendall(header[:10])
            time.sleep(0.05)
            s.sendall(header[10:])
            s.sendall(m.connect("via-v2"))
            m.expect_connack(s, 0)
            m.disconnect(s)
        with m.open_socket(ports["pany"]) as s:
            s.sendall(v1("2001:db8::9", 40002, "::1", 1883, family="TCP6") + m.connect("via-any"))
            m.expect_connack(s, 0)
            m.disconnect(s)
        with m.open_socket(ports["pany"]) as s:
            s.sendall(v2(command=0x20) + m.connect("local"))  # LOCAL: the socket's address
            m.expect_connack(s, 0)
            m.disconnect(s)
        self.assertTrue(b.wait_for_log(r"client via-v1 connected from 203\.0\.113\.7:40000"),
                        b.stderr_tail())
        self.assertTrue(b.wait_for_log(r"client via-v2 connected from 203\.0\.113\.8:40001"),
                        b.stderr_tail())
        self.assertTrue(b.wait_for_log(r"client via-any connected from \[?2001:db8::9\]?:40002"),
                        b.stderr_tail())
        self.assertTrue(b.wait_for_log(r"client local connected from 127\.0\.0\.1:"),
                        b.stderr_tail())
        self.assertTrue(b.wait_for_log(r"PROXY v2 header: client 203\.0\.113\.8:40001, "
                                       r"authority broker\.example"), b.stderr_tail())
        self.assert_serves(b)  # the default plain listener is untouched
        counters = b.stop()
        self.assertEqual(counters["proxy_header_v1"], 2)
        self.assertEqual(counters["proxy_header_v2"], 1)
        self.assertEqual(counters["proxy_header_local"], 1)
        self.assert_counters(counters, connect_accepted=5)

    def test_a_listener_expecting_proxy_closes_clients_without_it(self):
        b, ports = self.start_with_listeners([("p1", "v1"), ("p2", "v2")])
        cases = [
            ("p1", m.connect("plain")),                            # missing
            ("p2", m.connect("plain")),                            # missing
            ("p1", b"PROXY TCP4 203.0.113.7 127.0.0.1 040000 1883\r\n"),  # malformed_v1
            ("p1", b"PROXY TCP4 203.0.113.7 127.0.0.1 1 2\n"),    # malformed_v1 (LF alone)
            ("p2", V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12)),  # malformed_v2 (version 3)
            ("p2", v1() + m.connect("v1-on-v2")),                  # unsupported
            ("p1", v2() + m.connect("v2-on-v1")),                  # unsupported
            ("p2", V2_SIGNATURE + b"\x21\x11\xff\xff"),            # too_large
        ]
        for name, data in cases:
            with m.open_socket(ports[name]) as s:
                m.try_send(s, data)
                m.expect_eof(s, what=f"{name} to close after {data[:20]!r} with no reply")
        self.assert_serves(b)
        counters = b.stop()
        self.assertEqual(counters["proxy_refused_missing"], 2)
        self.assertEqual(counters["proxy_refused_malformed_v1"], 2)
        self.assertEqual(counters["proxy_refused_malformed_v2"], 1)
        self.assertEqual(counters["proxy_refused_unsupported"], 2)
        self.assertEqual(counters["proxy_refused_too_large"], 1)
        self.assertEqual(counters["proxy_header_v1"] + counters["proxy_header_v2"], 0)
        self.assert_counters(counters, connect_accepted=1)

    def test_the_header_must_arrive_within_the_connect_timeout(self):
        b, ports = self.start_with_listeners([("p1", "v1")], "--connect-timeout-ms", "300")
        with m.open_socket(ports["p1"]) as s:
            s.sendall(b"PROXY TCP4 203.0.113.7 ")  # and nothing more
            waited = m.expect_eof(s, timeout=5.0)
            self.assertGreaterEqual(waited, 0.2)
        counters = b.stop()
        self.assertEqual(counters["proxy_timeout"], 1)
        self.assert_counters(counters, connect_timeout=1)

    def test_per_address_limit_counts_the_header_address(self):
        b, ports = self.start_with_listeners([("p2", "v2")], "--max-connections-per-address", "1")
        first = m.open_socket(ports["p2"])
        first.sendall(v2("198.51.100.2", 50000) + m.connect("first"))
        m.expect_connack(first, 0)
        with m.open_socket(ports["p2"]) as s:
            s.sendall(v2("198.51.100.2", 50001) + m.connect("second"))
            m.expect_connack(s, 0x03)
            m.expect_eof(s)
        with m.open_socket(ports["p2"]) as s:
            s.sendall(v2("198.51.100.3", 50002) + m.connect("third"))
            m.expect_connack(s, 0)
            m.disconnect(s)
        m.disconnect(first)
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=2, connect_address_connection_limit=1)

    def test_per_address_connect_rate_counts_the_header_address(self):
        b, ports = self.start_with_listeners([("p1", "v1")], "--max-connect-rate-per-address",
                                             "1")
        codes = []
        for i in range(3):  # within well under a second: two of them share a one-second window
            with m.open_socket(ports["p1"]) as s:
                s.sendall(v1("198.51.100.20", 52000 + i) + m.connect(f"rate-{i}"))
                codes.append(m.read_packet(s).raw)
        self.assertIn(m.connack(0x03), codes)
        with m.open_socket(ports["p1"]) as s:  # another address behind the same proxy
            s.sendall(v1("198.51.100.21", 52100) + m.connect("rate-other"))
            m.expect_connack(s, 0)
            m.disconnect(s)
        refused = codes.count(m.connack(0x03))
        self.assert_counters(b.stop(), connect_accepted=4 - refused,
                             connect_address_rate_limit=refused)

    def test_connections_handed_off_to_their_home_shard_keep_the_header_address(self):
        # 4 shards: most of 16 clients are accepted on a shard other than their client id's
        # home and move there with their transport (and the address the header named).
        b, ports = self.start_with_listeners([("pany", "any")], "--max-connections-per-address",
                                             "1", threads=4)
        # The address table is a keyed hash of 65,536 slots: two of these addresses may share a
        # slot (connect/address_table.h: rare, and only ever stricter), so a first CONNECT from
        # an address whose slot is taken is refused 0x03 and that address is left out.
        clients = {}
        collisions = 0
        for i in range(16):
            s = m.open_socket(ports["pany"])
            s.sendall(v2(f"198.51.100.{10 + i}", 50000 + i) + m.connect(f"moved-{i}"))
            code = m.read_packet(s).raw[3]
            if code == 0x03:
                collisions += 1
                s.close()
                continue
            self.assertEqual(code, 0)
            clients[i] = s
        self.assertGreaterEqual(len(clients), 12, "too many slot collisions for chance")
        for i in clients:  # each address again, while its first client is connected
            with m.open_socket(ports["pany"]) as s:
                s.sendall(v1(f"198.51.100.{10 + i}", 51000 + i) + m.connect(f"again-{i}"))
                m.expect_connack(s, 0x03)
                m.expect_eof(s)
        for i, s in clients.items():
            m.ping(s)
            m.disconnect(s)
            self.assertTrue(b.wait_for_log(rf"client moved-{i} connected from "
                                           rf"198\.51\.100\.{10 + i}:{50000 + i}"),
                            b.stderr_tail())
        counters = b.stop()
        self.assertGreater(counters["connections_handed_off"], 0)
        self.assert_counters(counters, connect_accepted=len(clients),
                             connect_address_connection_limit=len(clients) + collisions)


    def test_proxy_below_websocket(self):
        # PROXY, then the HTTP upgrade, then MQTT in binary frames: the layers stack bottom up.
        port = free_port()
        path = os.path.join(self.tmp.name, "ws.toml")
        with open(path, "w") as f:
            f.write(f'[[listener]]\nport = {port}\nprotocol = "websockets"\n'
                    'proxy_protocol = "v2"\n')
        b = self.start_broker("--config", path)
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
        with m.open_socket(port) as s:
            s.sendall(v2("203.0.113.30", 45000) + upgrade.encode())
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = s.recv(4096)
                self.assertTrue(chunk, f"closed during the upgrade: {response!r}")
                response += chunk
            head, _, rest = response.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
            s.sendall(masked_binary_frame(m.connect("ws-behind-proxy")))
            while len(rest) < 6:
                rest += s.recv(4096)
            self.assertEqual(rest[:6], b"\x82\x04" + m.connack(0))  # one unmasked binary frame
        self.assertTrue(b.wait_for_log(r"client ws-behind-proxy connected from "
                                       r"203\.0\.113\.30:45000"), b.stderr_tail())
        counters = b.stop()
        self.assertEqual(counters["proxy_header_v2"], 1)
        self.assertEqual(counters["websocket_upgrades"], 1)
        self.assert_counters(counters, connect_accepted=1)


    def test_tls_after_the_proxy_header(self):
        # PROXY, then a TLS handshake, then MQTT inside TLS: the header is read before the TLS
        # layer sees a byte, and the client's address is the header's.
        import ssl
        from test_tls import Pki
        pki = Pki(self.tmp.name)
        port = free_port()
        path = os.path.join(self.tmp.name, "tls.toml")
        with open(path, "w") as f:
            f.write(f'[[listener]]\nport = {port}\nproxy_protocol = "v2"\n'
                    f'certfile = "{pki.path("server.crt")}"\n'
                    f'keyfile = "{pki.path("server.key")}"\n')
        b = self.start_broker("--config", path)
        context = ssl.create_default_context(cafile=pki.path("ca.crt"))
        with m.open_socket(port) as raw:
            raw.sendall(v2("203.0.113.40", 45100))
            with context.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(m.connect("tls-behind-proxy"))
                self.assertEqual(m.read_packet(s).raw, m.connack(0))
                self.assertTrue(b.wait_for_log(r"client tls-behind-proxy connected from "
                                               r"203\.0\.113\.40:45100"))
                m.disconnect(s)
        counters = b.stop()
        self.assertEqual(counters["proxy_header_v2"], 1)
        self.assertEqual(counters["tls_handshakes_completed"], 1)
        self.assert_counters(counters, connect_accepted=1)


class BehindHaproxy(ProxyListenerCase):
    """A real HAProxy in TCP mode in front of the broker."""

    def setUp(self):
        super().setUp()
        if not os.access(HAPROXY, os.X_OK):
            self.fail(f"{HAPROXY} not found: scripts/install-deps.sh installs Debian's haproxy")

    def start_haproxy(self, backends):
        """`backends`: {frontend name: (ringmq port, server options)}; returns {name: port}."""
        frontends = {name: free_port() for name in backends}
        lines = ["global", "    maxconn 200", "defaults", "    mode tcp",
                 "    timeout connect 5s", "    timeout client 30s", "    timeout server 30s"]
        for name, (port, options) in backends.items():
            lines += [f"frontend f_{name}", f"    bind 127.0.0.1:{frontends[name]}",
                      f"    default_backend b_{name}", f"backend b_{name}",
                      f"    server ringmq 127.0.0.1:{port} {options}".rstrip()]
        self.run_haproxy("\n".join(lines) + "\n", frontends.values())
        return frontends

    def run_haproxy(self, config, ports):
        """Starts HAProxy with `config` and waits until it listens on every port in `ports`."""
        path = os.path.join(self.tmp.name, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(config)
        log = open(os.path.join(self.tmp.name, "haproxy.log"), "w+")
        self.addCleanup(log.close)
        # -db: foreground, no daemon; killed at the end of the test whatever happens.
        proc = subprocess.Popen([HAPROXY, "-db", "-f", path], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        self.addCleanup(stop)
        deadline = time.monotonic() + HAPROXY_READY_TIMEOUT
        while not all(listening(port) for port in ports):
            if proc.poll() is not None:
                log.seek(0)
                self.fail(f"haproxy exited with {proc.returncode}:\n{log.read()}")
            if time.monotonic() > deadline:
                self.fail(f"haproxy did not listen within {HAPROXY_READY_TIMEOUT}s")
            time.sleep(0.02)

    def test_the_example_in_deployment_md_works(self):
        with open(DEPLOYMENT_DOC) as f:
            doc = f.read()
        section = doc[doc.index("## Behind HAProxy with the PROXY protocol"):]
        ringmq_toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
        haproxy_cfg = re.search(r"```haproxy\n(.*?)```", section, re.S).group(1)
        port, front = free_port(), free_port()
        self.assertIn('bind = "10.0.0.11"', ringmq_toml)
        self.assertIn("port = 1884", ringmq_toml)
        ringmq_toml = ringmq_toml.replace('"10.0.0.11"', '"127.0.0.1"').replace(
            "port = 1884", f"port = {port}")
        path = os.path.join(self.tmp.name, "ringmq.toml")
        with open(path, "w") as f:
            f.write(ringmq_toml)
        b = self.start_broker("--config", path, "--max-connections-per-address", "1")
        for server in ("10.0.0.11:1884", "10.0.0.12:1884"):  # both servers: this one broker
            self.assertIn(server, haproxy_cfg)
            haproxy_cfg = haproxy_cfg.replace(server, f"127.0.0.1:{port}")
        self.assertIn("bind :1883", haproxy_cfg)
        self.run_haproxy(haproxy_cfg.replace("bind :1883", f"bind 127.0.0.1:{front}"), [front])
        first = client_from("127.0.0.9", front, "doc-a")
        m.expect_connack(first, 0)
        with client_from("127.0.0.9", front, "doc-b") as s:
            m.expect_connack(s, 0x03)
            m.expect_eof(s)
        m.disconnect(first)
        self.assertTrue(b.wait_for_log(r"client doc-a connected from 127\.0\.0\.9:\d+"),
                        b.stderr_tail())
        counters = b.stop()
        self.assertGreaterEqual(counters["proxy_header_v2"], 2)
        refusals = sum(counters[k] for k in counters if k.startswith("proxy_refused_"))
        self.assertEqual(refusals, 0)  # HAProxy's health checks included
        self.assert_counters(counters, connect_accepted=1, connect_address_connection_limit=1)

    def test_per_address_limits_see_the_original_client_address(self):
        b, ports = self.start_with_listeners([("p1", "v1"), ("p2", "v2")],
                                             "--max-connections-per-address", "1", threads=2)
        front = self.start_haproxy({"v1": (ports["p1"], "send-proxy"),
                                    "v2": (ports["p2"], "send-proxy-v2"),
                                    "plain": (b.port, "")})
        # Each part uses client addresses of its own: a closed connection gives its address's
        # count back when the broker closes the socket, a moment after the client's view.
        addresses = {"v1": ("127.0.0.2", "127.0.0.3"), "v2": ("127.0.0.4", "127.0.0.5"),
                     "plain": ("127.0.0.6", "127.0.0.7")}
        for version in ("v1", "v2"):
            same, other = addresses[version]
            first = client_from(same, front[version], f"{version}-a")
            m.expect_connack(first, 0)
            # Same client address: the second one is over the limit of 1.
            with client_from(same, front[version], f"{version}-b") as s:
                m.expect_connack(s, 0x03)
                m.expect_eof(s)
            # Another client address behind the same HAProxy: served.
            with client_from(other, front[version], f"{version}-c") as s:
                m.expect_connack(s, 0)
                m.ping(s)
                m.disconnect(s)
            m.disconnect(first)
            for client, address in ((f"{version}-a", same), (f"{version}-c", other)):
                pattern = rf"client {client} connected from {address.replace('.', '[.]')}:\d+"
                self.assertTrue(b.wait_for_log(pattern), b.stderr_tail())
        # The control: without PROXY every client is HAProxy's 127.0.0.1, so two different
        # client addresses share one count.
        first = client_from(addresses["plain"][0], front["plain"], "plain-a")
        m.expect_connack(first, 0)
        with client_from(addresses["plain"][1], front["plain"], "plain-b") as s:
            m.expect_connack(s, 0x03)
            m.expect_eof(s)
        m.disconnect(first)
        self.assertTrue(b.wait_for_log(r"client plain-a connected from 127\.0\.0\.1:\d+"),
                        b.stderr_tail())
        counters = b.stop()
        self.assertEqual(counters["proxy_header_v1"], 3)
        self.assertEqual(counters["proxy_header_v2"], 3)
        refusals = sum(counters[k] for k in counters if k.startswith("proxy_refused_"))
        self.assertEqual(refusals, 0)
        self.assertEqual(counters["proxy_timeout"], 0)
        self.assert_counters(counters, connect_accepted=5, connect_address_connection_limit=3)


def listening(port):
    """Whether something listens on 127.0.0.1:port (read from /proc, without connecting: a
    connection to HAProxy would open one to the broker)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


def client_from(source, port, client_id):
    """A socket bound to `source` (any 127.0.0.0/8 address is loopback) that sent a CONNECT."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((source, 0))
        sock.settimeout(m.TIMEOUT)
        sock.connect((m.HOST, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(m.connect(client_id))
    except BaseException:
        sock.close()
        raise
    return sock


def masked_binary_frame(payload):
    """RFC 6455 section 5.2: a final binary frame from a client (masked), payload < 126 bytes."""
    mask = os.urandom(4)
    return (bytes([0x82, 0x80 | len(payload)]) + mask
            + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload)))
