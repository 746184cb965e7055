"""MQTT over WebSockets (RFC 6455, MQTT-6.0.0-x; docs/websockets.md): a `[[listener]]` with
protocol = "websockets" served to paho-mqtt (3.1.1 and 5.0), MQTT.js from node, a real browser
(headless Chromium running MQTT.js's browser bundle) and raw sockets that send what a client
must not (refusals, unmasked, text and oversize frames), each closed and counted.

MQTT.js comes from the npm registry at test time: `npm ci` in tests/integration/node (its
package-lock.json pins the version) when node_modules is missing.
"""

import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as paho

import broker
import mqtt_raw

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10.0


def artefact_dir():
    """Where the browser screenshot is kept: beside the binary under test (the build dir)."""
    path = os.path.join(os.path.dirname(os.path.abspath(broker.binary())), "test-artefacts")
    os.makedirs(path, exist_ok=True)
    return path


def ensure_node_modules():
    """Installs MQTT.js (npm ci) once; returns the error text if that is not possible."""
    if os.path.exists(os.path.join(NODE_DIR, "node_modules", "mqtt", "package.json")):
        return None
    if shutil.which("npm") is None:
        return "npm is not installed (scripts/install-deps.sh installs it)"
    proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return f"npm ci failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return None


def write_config(test, listeners, extra=""):
    """A TOML config file with these [[listener]] tables (dicts); returns its path."""
    tmp = tempfile.TemporaryDirectory(prefix="ringmq-ws-")
    test.addCleanup(tmp.cleanup)
    lines = [extra] if extra else []
    for listener in listeners:
        lines.append("[[listener]]")
        for key, value in listener.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path = os.path.join(tmp.name, "ringmq.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def ws_request(port, path="/mqtt", extra="", protocol="mqtt", key=None):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode(), key


def read_http_response(sock, deadline):
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed inside the HTTP response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def frame(opcode, payload, *, fin=True, masked=True, rsv=0, length=None):
    """A client frame; `length` overrides the length field (the payload is sent as given)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if n <= 125:
        header = bytes([first, mask_bit | n])
    elif n <= 0xFFFF:
        header = bytes([first, mask_bit | 126]) + struct.pack(">H", n)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class WsClient:
    """A raw WebSocket client over a socket: upgrade, frames, and the server's frames."""

    def __init__(self, port, **request):
        self.sock = mqtt_raw.open_socket(port)
        req, key = ws_request(port, **request)
        self.sock.sendall(req)
        deadline = time.monotonic() + TIMEOUT
        self.head, self.buffer = read_http_response(self.sock, deadline)
        self.key = key

    def status(self):
        return int(self.head.split(" ", 2)[1])

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self, timeout=TIMEOUT):
        """(fin, opcode, payload) of the server's next frame; None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 2:
                n = self.buffer[1] & 0x7F
                assert self.buffer[1] & 0x80 == 0, "RFC6455-5.1: a server frame is not masked"
                at = 2
                if n == 126:
                    at = 4
                    n = struct.unpack(">H", self.buffer[2:4])[0] if len(self.buffer) >= 4 else -1
                elif n == 127:
                    at = 10
                    n = struct.unpack(">Q", self.buffer[2:10])[0] if len(self.buffer) >= 10 else -1
                if n >= 0 and len(self.buffer) >= at + n:
                    fin, opcode = self.buffer[0] & 0x80 != 0, self.buffer[0] & 0x0F
                    payload = self.buffer[at:at + n]
                    self.buffer = self.buffer[at + n:]
                    return fin, opcode, payload
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def read_mqtt(self, count, timeout=TIMEOUT):
        """The payload bytes of binary frames until `count` MQTT packets are complete."""
        data = b""
        deadline = time.monotonic() + timeout
        while True:
            packets, at = [], 0
            while at + 2 <= len(data):
                try:
                    length, body = mqtt_raw.read_vbi(data, at + 1)
                except IndexError:  # the length itself is incomplete
                    break
                if body + length > len(data):
                    break
                packets.append(data[at:body + length])
                at = body + length
            if len(packets) >= count:
                return packets
            got = self.read_frame(max(0.01, deadline - time.monotonic()))
            if got is None:
                raise AssertionError(f"EOF after {packets}")
            assert got[1] == 0x2, f"expected a binary frame, got opcode {got[1]}"
            data += got[2]

    def expect_close(self, code):
        got = self.read_frame()
        assert got is not None and got[1] == 0x8, f"expected a close frame, got {got}"
        assert struct.unpack(">H", got[2][:2])[0] == code, f"close code {got[2][:2]!r}"
        assert self.read_frame() is None, "expected EOF after the close frame"

    def close(self):
        self.sock.close()


class WebSocketTestCase(broker.BrokerTestCase):
    def start_ws_broker(self, *flags, listeners=None, extra=""):
        self.ws_port = broker.free_port()
        listeners = listeners or [{}]
        tables = []
        for i, listener in enumerate(listeners):
            table = {"bind": mqtt_raw.HOST, "port": self.ws_port if i == 0 else listener["port"],
                     "protocol": "websockets"}
            table.update({k: v for k, v in listener.items() if k != "port"})
            tables.append(table)
        path = write_config(self, tables, extra)
        b = self.start_broker("--config", path, *flags)
        return b


class WebSocketClientsTest(WebSocketTestCase):
    def paho_round_trip(self, protocol):
        b = self.start_ws_broker()
        received = []
        got = threading.Event()
        client = paho.Client(client_id=f"paho-ws-{protocol}", protocol=protocol,
                             transport="websockets")
        client.ws_set_options(path="/mqtt")
        connected = threading.Event()
        client.on_connect = lambda c, u, f, rc, *props: (rc == 0) and connected.set()
        client.on_message = lambda c, u, m: (received.append((m.topic, m.payload)), got.set())
        client.connect(mqtt_raw.HOST, self.ws_port, keepalive=30)
        client.loop_start()
        try:
            self.assertTrue(connected.wait(TIMEOUT), "no CONNACK over WebSockets")
            client.subscribe("ws/paho", qos=1)
            time.sleep(0.2)
            big = os.urandom(200_000)  # spans many TCP segments and more than one frame read
            client.publish("ws/paho", b"small", qos=1)
            client.publish("ws/paho", big, qos=1)
            deadline = time.monotonic() + TIMEOUT
            while len(received) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(received, [("ws/paho", b"small"), ("ws/paho", big)])
            client.disconnect()
        finally:
            client.loop_stop()
        counters = b.stop()
        self.assertEqual(counters["websocket_upgrades"], 1)
        self.assertEqual(counters["client_disconnects"], 1)

    def test_paho_mqtt311_over_websockets(self):
        self.paho_round_trip(paho.MQTTv311)

    def test_paho_mqtt5_over_websockets(self):
        self.paho_round_trip(paho.MQTTv5)

    def test_mqttjs_from_node_3_1_and_3_1_1_and_5_0(self):
        error = ensure_node_modules()
        self.assertIsNone(error, error)
        b = self.start_ws_broker()
        for version, subprotocol in (("3", "mqttv3.1"), ("4", "mqtt"), ("5", "mqtt")):
            proc = subprocess.run(
                ["node", os.path.join(NODE_DIR, "roundtrip.js"),
                 f"ws://{mqtt_raw.HOST}:{self.ws_port}/mqtt", version, f"ws/node/{version}"],
                capture_output=True, text=True, timeout=30, cwd=NODE_DIR)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            self.assertTrue(result["ok"], result)
            self.assertEqual(result["subprotocol"], subprotocol)
        counters = b.stop()
        self.assertEqual(counters["websocket_upgrades"], 3)
        self.assertEqual(counters["connect_accepted_mqtt31"], 1)
        self.assertEqual(counters["connect_accepted_mqtt311"], 1)
        self.assertEqual(counters["connect_accepted_mqtt5"], 1)


# The page the browser opens: MQTT.js's browser bundle (served from node_modules by the test's
# own HTTP server) subscribes and publishes over ws://, writes the outcome into #result, then
# fetches /done, which releases /hold: the iframe that keeps the load event (and so Chromium's
# --dump-dom and --screenshot) waiting until the round trip has ended.
BROWSER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ringmq WebSocket test</title>
<script src="/mqtt.min.js"></script></head>
<body style="font: 20px sans-serif">
<h1>ringmq over WebSockets</h1>
<p>broker: <code id="url">__URL__</code></p>
<pre id="result">pending</pre>
<script>
const show = (text) => {
  document.getElementById('result').textContent = text;
  fetch('/done').catch(() => {});
};
const topic = 'ws/browser/' + Math.random().toString(16).slice(2);
const payload = 'hello from the browser';
const timer = setTimeout(() => show('FAIL timeout'), 10000);
const client = mqtt.connect('__URL__', {protocolVersion: __VERSION__, reconnectPeriod: 0});
client.on('error', (e) => { clearTimeout(timer); show('FAIL ' + e); });
client.on('connect', () => {
  client.subscribe(topic, {qos: 1}, (err) => {
    if (err) { clearTimeout(timer); show('FAIL subscribe ' + err); return; }
    client.publish(topic, payload, {qos: 1});
  });
});
client.on('message', (t, m) => {
  clearTimeout(timer);
  const ok = t === topic && m.toString() === payload;
  show((ok ? 'ROUNDTRIP OK ' : 'FAIL ') + t + ' ' + m.toString());
  client.end();
});
</script>
<iframe src="/hold" style="display:none"></iframe>
</body></html>
"""


class PageServer:
    """A tiny HTTP server for the browser test: /index.html, /mqtt.min.js, /hold, /done."""

    def __init__(self, page, bundle):
        self.released = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/index.html"):
                    body, kind = page.encode(), "text/html"
                elif self.path == "/mqtt.min.js":
                    with open(bundle, "rb") as f:
                        body, kind = f.read(), "application/javascript"
                elif self.path == "/done":
                    outer.released.set()
                    body, kind = b"ok", "text/plain"
                elif self.path == "/hold":
                    outer.released.wait(15)
                    body, kind = b"<html></html>", "text/html"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer((mqtt_raw.HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def spki_hash(certificate):
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's
    --ignore-certificate-errors-spki-list takes it."""
    key = subprocess.run(["/usr/bin/openssl", "x509", "-in", certificate, "-pubkey", "-noout"],
                         check=True, capture_output=True, timeout=30).stdout
    der = subprocess.run(["/usr/bin/openssl", "pkey", "-pubin", "-outform", "der"], input=key,
                         check=True, capture_output=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class BrowserTest(WebSocketTestCase):
    def run_chromium(self, url, *args):
        profile = tempfile.TemporaryDirectory(prefix="ringmq-chromium-")
        self.addCleanup(profile.cleanup)
        argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-dev-shm-usage",
                f"--user-data-dir={profile.name}", "--window-size=900,400", *args, url]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def browser_round_trip(self, version, tls=False):
        self.assertIsNotNone(chromium(), "chromium is not installed (scripts/install-deps.sh)")
        error = ensure_node_modules()
        self.assertIsNone(error, error)
        bundle = os.path.join(NODE_DIR, "node_modules", "mqtt", "dist", "mqtt.min.js")
        self.assertTrue(os.path.exists(bundle), bundle)
        trust = []
        if tls:
            # wss with the test's own CA: the browser is told to trust exactly the server
            # certificate's key (its SPKI hash), the way a test CA is trusted without
            # installing it; any other certificate still fails.
            from test_tls import Pki  # the same certificates the TLS tests make
            pki_dir = tempfile.TemporaryDirectory(prefix="ringmq-wss-pki-")
            self.addCleanup(pki_dir.cleanup)
            pki = Pki(pki_dir.name)
            b = self.start_ws_broker(listeners=[{"certfile": pki.path("server.crt"),
                                                 "keyfile": pki.path("server.key")}])
            trust = [f"--ignore-certificate-errors-spki-list={spki_hash(pki.path('server.crt'))}"]
            url = f"wss://{mqtt_raw.HOST}:{self.ws_port}/mqtt"
        else:
            b = self.start_ws_broker()
            url = f"ws://{mqtt_raw.HOST}:{self.ws_port}/mqtt"
        page = BROWSER_PAGE.replace("__URL__", url).replace("__VERSION__", version)
        server = PageServer(page, bundle)
        self.addCleanup(server.close)
        page_url = f"http://{mqtt_raw.HOST}:{server.port}/index.html"
        dom = self.run_chromium(page_url, "--dump-dom", *trust)
        self.assertIn("ROUNDTRIP OK ws/browser/", dom.stdout,
                      f"page result not found; stdout:\n{dom.stdout[-3000:]}\n"
                      f"stderr:\n{dom.stderr[-3000:]}")
        server.released.clear()
        scheme = "wss" if tls else "ws"
        shot = os.path.join(artefact_dir(), f"websocket-browser-{scheme}-mqtt{version}.png")
        if os.path.exists(shot):
            os.remove(shot)
        self.run_chromium(page_url, f"--screenshot={shot}", *trust)
        self.assertTrue(os.path.exists(shot) and os.path.getsize(shot) > 1000,
                        f"no screenshot at {shot}")
        counters = b.stop()
        self.assertEqual(counters["websocket_upgrades"], 2)  # one per page load
        self.assertEqual(counters["websocket_error_unmasked"], 0)
        if tls:
            self.assertGreaterEqual(counters["tls_handshakes_completed"], 2)

    def test_chromium_runs_mqttjs_bundle_round_trip_mqtt311(self):
        self.browser_round_trip("4")

    def test_chromium_runs_mqttjs_bundle_round_trip_mqtt5(self):
        self.browser_round_trip("5")

    def test_chromium_runs_mqttjs_bundle_round_trip_over_wss(self):
        self.browser_round_trip("4", tls=True)


class RawWebSocketTest(WebSocketTestCase):
    def test_upgrade_accept_key_and_subprotocol(self):
        self.start_ws_broker()
        ws = WsClient(self.ws_port, protocol="mqttv3.1, mqtt")
        self.addCleanup(ws.close)
        self.assertEqual(ws.status(), 101, ws.head)
        accept = base64.b64encode(hashlib.sha1((ws.key + GUID).encode()).digest()).decode()
        self.assertIn(f"\r\nSec-WebSocket-Accept: {accept}", ws.head)
        self.assertIn("\r\nSec-WebSocket-Protocol: mqttv3.1", ws.head)  # the client's first

    def test_mqtt_6_0_0_2_packets_span_frames_and_frames_carry_several(self):
        b = self.start_ws_broker()
        ws = WsClient(self.ws_port)
        self.addCleanup(ws.close)
        connect = mqtt_raw.connect("span", keepalive=30)
        pingreq = bytes([0xC0, 0x00])
        # CONNECT in three frames (the middle one fragmented as a continuation), the last one
        # also carrying two PINGREQs.
        ws.send(frame(0x2, connect[:3]) + frame(0x2, connect[3:7], fin=False) +
                frame(0x9, b"hi") + frame(0x0, connect[7:] + pingreq + pingreq))
        got = ws.read_frame()
        self.assertEqual(got, (True, 0xA, b"hi"))  # the pong comes first: it is answered first
        packets = ws.read_mqtt(3)
        self.assertEqual(packets, [mqtt_raw.connack(0), bytes([0xD0, 0]), bytes([0xD0, 0])])
        ws.send(frame(0x8, struct.pack(">H", 1000)))
        ws.expect_close(1000)
        counters = b.stop()
        self.assertEqual(counters["websocket_closes_received"], 1)
        self.assertEqual(counters["websocket_pings_received"], 1)

    def test_connections_handed_off_to_their_home_shard_keep_their_websocket(self):
        # 16 client ids over 2 shards: some land on the other shard first and move, with their
        # WebSocket layer and the bytes pipelined behind CONNECT.
        b = self.start_ws_broker()
        clients = []
        for i in range(16):
            ws = WsClient(self.ws_port)
            self.addCleanup(ws.close)
            ws.send(frame(0x2, mqtt_raw.connect(f"home{i}") + bytes([0xC0, 0])))
            clients.append(ws)
        for ws in clients:
            self.assertEqual(ws.read_mqtt(2), [mqtt_raw.connack(0), bytes([0xD0, 0])])
            ws.send(frame(0x9, b"after") + frame(0x2, bytes([0xC0, 0])))
            self.assertEqual(ws.read_frame(), (True, 0xA, b"after"))
            self.assertEqual(ws.read_mqtt(1), [bytes([0xD0, 0])])
        counters = b.stop()
        self.assertGreaterEqual(counters["connections_handed_off"], 1)
        self.assertEqual(counters["websocket_upgrades"], 16)

    def test_shutdown_sends_a_close_frame(self):
        b = self.start_ws_broker()
        ws = WsClient(self.ws_port)
        self.addCleanup(ws.close)
        ws.send(frame(0x2, mqtt_raw.connect("bye")))
        ws.read_mqtt(1)
        b.proc.send_signal(2)  # SIGINT: the broker closes every connection
        got = ws.read_frame()
        while got is not None and got[1] == 0x2:
            got = ws.read_frame()
        self.assertIsNotNone(got)
        self.assertEqual(got[1], 0x8)
        self.assertEqual(struct.unpack(">H", got[2][:2])[0], 1000)

    def refused(self, expected_status, counter, listener=None, **request):
        b = self.start_ws_broker(listeners=[listener or {}])
        ws = WsClient(self.ws_port, **request)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status(), expected_status, ws.head)
        self.assertIn("Connection: close", ws.head)
        mqtt_raw.expect_eof(ws.sock)
        counters = b.stop()
        self.assertEqual(counters[counter], 1)
        self.assertEqual(counters["websocket_upgrades"], 0)

    def test_wrong_path_is_refused_404(self):
        self.refused(404, "websocket_refused_path", path="/other")

    def test_configured_path(self):
        self.start_ws_broker(listeners=[{"path": "/ws"}])
        ws = WsClient(self.ws_port, path="/ws")
        self.addCleanup(ws.close)
        self.assertEqual(ws.status(), 101)

    def test_foreign_origin_is_refused_403(self):
        self.refused(403, "websocket_refused_origin",
                     listener={"allowed_origins": ["https://app.example"]},
                     extra="Origin: https://evil.example\r\n")

    def test_mqtt_6_0_0_3_no_mqtt_subprotocol_is_refused_400(self):
        self.refused(400, "websocket_refused_subprotocol", protocol="chat")

    def test_request_above_8_kib_is_refused_431(self):
        self.refused(431, "websocket_refused_request_too_large",
                     extra="X-Pad: " + "a" * 9000 + "\r\n")

    def test_unfinished_upgrade_is_closed_by_the_connect_timeout(self):
        b = self.start_ws_broker("--connect-timeout-ms", "300")
        sock = mqtt_raw.open_socket(self.ws_port)
        self.addCleanup(sock.close)
        sock.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        start = time.monotonic()
        mqtt_raw.expect_eof(sock, timeout=5)
        self.assertGreaterEqual(time.monotonic() - start, 0.2)
        counters = b.stop()
        self.assertEqual(counters["connect_timeout"], 1)
        self.assertEqual(counters["websocket_upgrades"], 0)

    def frame_error(self, data, close_code, counter, flags=()):
        b = self.start_ws_broker(*flags)
        ws = WsClient(self.ws_port)
        self.addCleanup(ws.close)
        ws.send(frame(0x2, mqtt_raw.connect("bad")))
        self.assertEqual(ws.read_mqtt(1), [mqtt_raw.connack(0)])
        ws.send(data)
        ws.expect_close(close_code)
        self.assert_serves(b)  # the plain listener still serves
        counters = b.stop()
        self.assertEqual(counters[counter], 1)
        return counters

    def test_rfc6455_5_1_unmasked_frame_closes_1002(self):
        self.frame_error(frame(0x2, bytes([0xC0, 0]), masked=False), 1002,
                         "websocket_error_unmasked")

    def test_mqtt_6_0_0_1_text_frame_closes_1003(self):
        self.frame_error(frame(0x1, b"\xc0\x00"), 1003, "websocket_error_text_frame")

    def test_reserved_bits_close_1002(self):
        self.frame_error(frame(0x2, b"\xc0\x00", rsv=4), 1002, "websocket_error_reserved_bits")

    def test_oversize_frame_closes_1009_before_its_payload(self):
        # max_packet_size 1000: frames above 1000 + 64 KiB are refused from their header.
        self.frame_error(frame(0x2, b"", length=1000 + 65536 + 1), 1009,
                         "websocket_frame_too_large", flags=("--max-packet-size", "1000"))

    def test_fragmented_ping_closes_1002(self):
        self.frame_error(frame(0x9, b"x", fin=False), 1002, "websocket_error_control_frame")

    def test_trusted_x_forwarded_for_names_the_client_for_per_address_limits(self):
        # Two listeners on one broker: one trusts X-Forwarded-For, one does not.
        untrusted_port = broker.free_port()
        b = self.start_ws_broker(
            "--max-connections-per-address", "1",
            listeners=[{"trust_x_forwarded_for": True},
                       {"port": untrusted_port}])
        clients = []
        for i, address in enumerate(("198.51.100.7", "198.51.100.8")):
            ws = WsClient(self.ws_port, extra=f"X-Forwarded-For: 203.0.113.1, {address}\r\n")
            clients.append(ws)
            self.addCleanup(ws.close)
            ws.send(frame(0x2, mqtt_raw.connect(f"xff{i}")))
            self.assertEqual(ws.read_mqtt(1), [mqtt_raw.connack(0)], address)
        # The same forwarded address again: over the per-address limit.
        ws = WsClient(self.ws_port, extra="X-Forwarded-For: 198.51.100.7\r\n")
        self.addCleanup(ws.close)
        ws.send(frame(0x2, mqtt_raw.connect("xff-again")))
        packets = ws.read_mqtt(1)
        self.assertNotEqual(packets, [mqtt_raw.connack(0)])
        # Without trust the header is ignored: the socket's address (127.0.0.1) counts, and the
        # trusted clients above do not hold it.
        ws2 = WsClient(untrusted_port, extra="X-Forwarded-For: 198.51.100.9\r\n")
        self.addCleanup(ws2.close)
        ws2.send(frame(0x2, mqtt_raw.connect("plain")))
        self.assertEqual(ws2.read_mqtt(1), [mqtt_raw.connack(0)])
        counters = b.stop()
        self.assertEqual(counters["connect_address_connection_limit"], 1)


if __name__ == "__main__":
    unittest.main()
