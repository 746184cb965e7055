"""TLS listeners (issue 14, docs/tls.md) with real clients: mosquitto_pub/sub, paho-mqtt 3.1.1
and 5.0, `openssl s_client` (TLS 1.2, 1.3, session resumption), Python's ssl module.

Certificates are made at test time with the openssl command (a CA, a server certificate for
127.0.0.1, client certificates: good, expired, from another CA, self-signed), never committed.
"""

import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import mqtt_raw as m
from broker import free_port, is_mosquitto
from test_cli import FileTestCase, run_binary

OPENSSL = "/usr/bin/openssl"
MOSQUITTO_PUB = "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = "/usr/bin/mosquitto_sub"
CLIENT_TIMEOUT = 15.0
QUIET = 0.3

CA_CONFIG = """\
[ ca ]
default_ca = test
[ test ]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
[ anything ]
commonName = supplied
"""


def openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


class Pki:
    """A CA and certificates signed by it, in a temporary directory."""

    def __init__(self, directory):
        self.dir = directory
        self.new_ca("ca", "ringmq test CA")
        self.new_ca("other-ca", "another CA")
        self.issue("server", "localhost", san="DNS:localhost,IP:127.0.0.1")

    def path(self, name):
        return os.path.join(self.dir, name)

    def new_ca(self, name, cn):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={cn}",
                "-days", "2", cwd=self.dir)

    def _request(self, name, cn):
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                cwd=self.dir)

    def issue(self, name, cn, ca="ca", san=None):
        self._request(name, cn)
        ext = self.path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-sha256",
                "-extfile", ext, cwd=self.dir)

    def self_signed(self, name, cn):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={cn}",
                "-days", "2", cwd=self.dir)

    def expired(self, name, cn):
        """Signed by the CA, valid for one day in 2020 (`openssl ca` takes explicit dates)."""
        self._request(name, cn)
        with open(self.path("index.txt"), "a"):
            pass
        if not os.path.exists(self.path("serial")):
            with open(self.path("serial"), "w") as f:
                f.write("1000\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(CA_CONFIG.format(dir=self.dir))
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
                "-in", f"{name}.csr", "-out", f"{name}.crt", "-notext",
                "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", cwd=self.dir)


class TlsTestCase(FileTestCase):
    def setUp(self):
        super().setUp()
        self.pki = Pki(self.dir)

    def listener(self, port, *, require=False, identity=False, extra=""):
        text = (f'[[listener]]\nbind = "{m.HOST}"\nport = {port}\n'
                f'certfile = "{self.pki.path("server.crt")}"\n'
                f'keyfile = "{self.pki.path("server.key")}"\n')
        if require or identity:
            text += f'cafile = "{self.pki.path("ca.crt")}"\nrequire_certificate = true\n'
        if identity:
            text += "use_identity_as_username = true\n"
        return text + extra

    def start_tls(self, *flags, require=False, identity=False, extra="", **kwargs):
        self.tls_port = free_port()
        path = self.write(self.listener(self.tls_port, require=require, identity=identity,
                                        extra=extra))
        b = self.start_broker("--config", path, *flags, **kwargs)
        self.assertIsNotNone(b.wait_for_log(
            rf"listener (mqtts|wss):{self.tls_port}: TLS certificate subject CN=localhost"))
        return b

    def context(self, cert=None, minimum=None, maximum=None):
        ctx = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
        if cert:
            ctx.load_cert_chain(self.pki.path(f"{cert}.crt"), self.pki.path(f"{cert}.key"))
        if minimum:
            ctx.minimum_version = minimum
        if maximum:
            ctx.maximum_version = maximum
        return ctx

    def client(self, client_id, cert=None, **fields):
        ctx = self.context(cert)
        return m.Client(self.tls_port, client_id,
                        wrap=lambda s: ctx.wrap_socket(s, server_hostname="localhost"), **fields)

    def refused_handshake(self, cert=None):
        """Asserts that the broker ends the handshake of a client presenting `cert`."""
        ctx = self.context(cert)
        with socket.create_connection((m.HOST, self.tls_port), timeout=CLIENT_TIMEOUT) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionError, m.ProtocolError)):
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    # TLS 1.3: the client's handshake ends before the server has checked its
                    # certificate; the refusal arrives as an alert on the first read.
                    tls.sendall(m.connect(f"refused-{cert}"))
                    if not tls.recv(16):
                        raise m.ProtocolError("closed")


class Clients(TlsTestCase):
    def test_mosquitto_pub_sub_with_cafile(self):
        b = self.start_tls()
        b.wait_for_log(r"TLS record layer: user space \(OpenSSL\); kernel TLS (not )?available")
        port, ca = str(self.tls_port), self.pki.path("ca.crt")
        sub = subprocess.Popen([MOSQUITTO_SUB, "-h", m.HOST, "-p", port, "--cafile", ca,
                                "-t", "tls/#", "-C", "1", "-q", "1", "-i", "mosq-sub", "-W", "15"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            b.wait_for_log(r"client mosq-sub connected")
            pub = subprocess.run([MOSQUITTO_PUB, "-h", m.HOST, "-p", port, "--cafile", ca,
                                  "-t", "tls/a", "-m", "over tls", "-q", "1", "-i", "mosq-pub"],
                                 capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
            self.assertEqual(pub.returncode, 0, pub.stderr)
            out, err = sub.communicate(timeout=CLIENT_TIMEOUT)
            self.assertEqual(sub.returncode, 0, err)
            self.assertEqual(out.strip(), "over tls")
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        counters = b.stop()
        self.assertGreaterEqual(counters["tls_handshakes_completed"], 2)
        self.assertEqual(counters["connect_accepted"], 2)

    def test_mosquitto_mutual_tls_with_cert_and_key(self):
        self.pki.issue("alice", "alice")
        b = self.start_tls(require=True)
        port, ca = str(self.tls_port), self.pki.path("ca.crt")
        cert, key = self.pki.path("alice.crt"), self.pki.path("alice.key")
        ok = subprocess.run([MOSQUITTO_PUB, "-h", m.HOST, "-p", port, "--cafile", ca,
                             "--cert", cert, "--key", key, "-t", "t", "-m", "x", "-q", "1"],
                            capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        refused = subprocess.run([MOSQUITTO_PUB, "-h", m.HOST, "-p", port, "--cafile", ca,
                                  "-t", "t", "-m", "x", "-q", "1"],
                                 capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        self.assertNotEqual(refused.returncode, 0)
        counters = b.stop()
        self.assertEqual(counters["connect_accepted"], 1)
        self.assertEqual(counters["tls_failed_no_certificate"], 1)

    def test_paho_tls_311_and_5(self):
        import paho.mqtt.client as mqtt
        b = self.start_tls()
        for protocol, name in ((mqtt.MQTTv311, "311"), (mqtt.MQTTv5, "5")):
            got = threading.Event()
            received = []
            c = mqtt.Client(client_id=f"paho-{name}", protocol=protocol)
            c.tls_set(ca_certs=self.pki.path("ca.crt"))

            def on_message(client, userdata, message, received=received, got=got):
                received.append(message.payload)
                got.set()

            c.on_message = on_message
            c.connect(m.HOST, self.tls_port, keepalive=30)
            c.loop_start()
            try:
                c.subscribe(f"paho/{name}", qos=1)
                time.sleep(0.2)
                info = c.publish(f"paho/{name}", f"hello {name}".encode(), qos=1)
                info.wait_for_publish(CLIENT_TIMEOUT)
                self.assertTrue(got.wait(CLIENT_TIMEOUT), name)
                self.assertEqual(received, [f"hello {name}".encode()])
            finally:
                c.disconnect()
                c.loop_stop()
        counters = b.stop()
        self.assertEqual(counters["connect_accepted"], 2)
        self.assertEqual(counters["tls_handshakes_completed"], 2)

    def test_paho_over_wss(self):
        """wss: the WebSocket layer above the TLS layer on one listener."""
        import paho.mqtt.client as mqtt
        b = self.start_tls(extra='protocol = "websockets"\npath = "/mqtt"\n')
        got = threading.Event()
        received = []
        c = mqtt.Client(client_id="paho-wss", transport="websockets")
        c.ws_set_options(path="/mqtt")
        c.tls_set(ca_certs=self.pki.path("ca.crt"))
        c.on_message = lambda client, userdata, message: (received.append(message.payload),
                                                         got.set())
        c.connect(m.HOST, self.tls_port, keepalive=30)
        c.loop_start()
        try:
            c.subscribe("wss/t", qos=1)
            time.sleep(0.2)
            c.publish("wss/t", b"over wss", qos=1).wait_for_publish(CLIENT_TIMEOUT)
            self.assertTrue(got.wait(CLIENT_TIMEOUT))
            self.assertEqual(received, [b"over wss"])
        finally:
            c.disconnect()
            c.loop_stop()
        counters = b.stop()
        self.assertEqual(counters["tls_handshakes_completed"], 1)
        self.assertEqual(counters["websocket_upgrades"], 1)
        self.assertEqual(counters["connect_accepted"], 1)

    def s_client(self, *args, stdin=b""):
        return subprocess.run([OPENSSL, "s_client", "-connect", f"{m.HOST}:{self.tls_port}",
                               "-CAfile", self.pki.path("ca.crt"), "-verify_return_error",
                               *args], input=stdin, capture_output=True, timeout=CLIENT_TIMEOUT)

    def test_openssl_s_client_tls12_tls13_and_resumption(self):
        b = self.start_tls()
        for version, flag in (("TLSv1.2", "-tls1_2"), ("TLSv1.3", "-tls1_3")):
            sess = self.pki.path(f"session-{version}")
            # CONNECT then DISCONNECT: the broker answers and closes, and s_client exits once
            # it has read everything (the session ticket included).
            first = self.s_client(flag, "-sess_out", sess, "-ign_eof",
                                  stdin=m.connect(f"s-client-{version}") + m.DISCONNECT)
            text = first.stdout.decode("latin-1")
            self.assertIn(f"Protocol  : {version}", text)
            self.assertIn("Verify return code: 0 (ok)", text)
            self.assertIn("New, ", text)
            second = self.s_client(flag, "-sess_in", sess, stdin=b"")
            self.assertIn("Reused, ", second.stdout.decode("latin-1"), version)
        counters = b.stop()
        self.assertEqual(counters["tls_sessions_resumed"], 2)
        self.assertEqual(counters["connect_accepted"], 2)

    def test_minimum_version_tls13_refuses_tls12(self):
        b = self.start_tls(extra='tls_version = "tlsv1.3"\n')
        refused = self.s_client("-tls1_2")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("Cipher is (NONE)", refused.stdout.decode("latin-1"))
        with self.client("v13") as c:
            c.ping()
            c.disconnect()
        counters = b.stop()
        self.assertEqual(counters["tls_failed_protocol_version"], 1)

    def test_plain_mqtt_on_the_tls_port_is_closed_and_counted(self):
        b = self.start_tls()
        with socket.create_connection((m.HOST, self.tls_port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(m.connect("plain"))
            data = s.recv(64)
            self.assertNotEqual(data[:1], b"\x20")  # a TLS alert, never a CONNACK
        self.assertEqual(b.stop()["tls_failed_not_tls"], 1)


class MutualTls(TlsTestCase):
    def test_bad_client_certificates_are_refused_and_counted_by_cause(self):
        self.pki.expired("old", "alice")
        self.pki.issue("stranger", "alice", ca="other-ca")
        self.pki.self_signed("selfie", "alice")
        self.pki.issue("alice", "alice")
        b = self.start_tls(require=True)
        for cert in ("old", "stranger", "selfie", None):
            self.refused_handshake(cert)
        with self.client("alice-ok", cert="alice") as c:
            c.ping()
            c.disconnect()
        counters = b.stop()
        self.assertEqual(counters["tls_failed_certificate_expired"], 1)
        self.assertEqual(counters["tls_failed_unknown_ca"], 2)
        self.assertEqual(counters["tls_failed_no_certificate"], 1)
        self.assertEqual(counters["connect_accepted"], 1)
        # Each refusal is logged at debug with the peer's address and the cause.
        self.assertTrue(any(re.search(r"closing 127\.0\.0\.1:\d+: TLS handshake failed: "
                                      r"certificate_expired", line) for line in b.lines))

    def test_certificate_identity_is_the_user_name_for_the_acl(self):
        self.pki.issue("alice", "alice")
        acl = self.write("user alice\ntopic readwrite alice/#\n", "acl")
        b = self.start_tls("--acl-file", acl, identity=True)
        # The user name and password in the CONNECT are ignored: the certificate says alice.
        with self.client("alice-1", cert="alice", username="mallory", password=b"x") as alice:
            alice.subscribe([("alice/#", 1), ("other/#", 1)], granted=[1, 0x80])
            alice.publish("alice/notes", b"allowed", qos=1)
            self.assertEqual(alice.next_publish().payload, b"allowed")
            alice.publish("other/notes", b"denied", qos=1)  # acknowledged, dropped
            alice.expect_no_publish(QUIET)
            alice.disconnect()
        counters = b.stop()
        self.assertEqual(counters["connect_accepted"], 1)
        self.assertEqual(counters["publish_denied"], 1)
        self.assertTrue(any(re.search(r"client alice-1 connected from .*, user alice, "
                                      r"TLSv1\.3 TLS_", line) for line in b.lines))


class Robustness(TlsTestCase):
    def test_handshake_storm_beside_a_qos1_stream_loses_nothing(self):
        b = self.start_tls()
        messages = 2000
        storm_done = threading.Event()
        errors = []

        def storm():
            ctx = self.context()
            try:
                for i in range(150):
                    with socket.create_connection((m.HOST, self.tls_port), timeout=10) as raw:
                        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                            tls.sendall(m.connect(f"storm-{i}"))
                            tls.recv(4)
            except Exception as e:  # reported below
                errors.append(e)
            finally:
                storm_done.set()

        with self.client("stream-sub") as sub, self.client("stream-pub") as pub:
            sub.subscribe([("stream", 1)])
            thread = threading.Thread(target=storm)
            thread.start()

            def stream():
                try:
                    for i in range(messages):
                        pub.publish("stream", str(i).encode(), qos=1)
                except Exception as e:  # reported below
                    errors.append(e)

            publisher = threading.Thread(target=stream)
            publisher.start()
            got = sub.receive(messages, timeout=60)  # read while the stream is published
            publisher.join(60)
            thread.join(60)
            self.assertTrue(storm_done.is_set())
            self.assertEqual([p.payload for p in got], [str(i).encode() for i in range(messages)])
            sub.disconnect()
            pub.disconnect()
        self.assertEqual(errors, [])
        counters = b.stop()
        self.assertEqual(counters["tls_handshakes_completed"], 152)
        self.assertEqual(counters["dropped_queue_full"], 0)

    def test_stalled_handshake_is_closed_by_the_connect_timeout_and_counted(self):
        b = self.start_tls("--connect-timeout-ms", "500")
        with socket.create_connection((m.HOST, self.tls_port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
            start = time.monotonic()
            self.assertEqual(s.recv(64), b"")  # closed by the broker, no bytes
            self.assertLess(time.monotonic() - start, 5.0)
        counters = b.stop()
        self.assertEqual(counters["tls_failed_timeout"], 1)
        self.assertEqual(counters["connect_timeout"], 1)

    def test_sighup_reloads_the_certificate_without_dropping_connections(self):
        b = self.start_tls()
        old = self.client("kept")
        try:
            old.subscribe([("reload", 1)])
            self.pki.issue("server", "renewed", san="DNS:localhost,IP:127.0.0.1")
            b.proc.send_signal(signal.SIGHUP)
            b.wait_for_log(r"listener mqtts:\d+: reloaded TLS certificate subject CN=renewed")
            ctx = self.context()
            with socket.create_connection((m.HOST, self.tls_port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                    subject = dict(x[0] for x in tls.getpeercert()["subject"])
                    self.assertEqual(subject["commonName"], "renewed")
            with self.client("new") as new:
                new.publish("reload", b"after reload", qos=1)
                new.disconnect()
            self.assertEqual(old.next_publish().payload, b"after reload")
            old_subject = dict(x[0] for x in old.sock.getpeercert()["subject"])
            self.assertEqual(old_subject["commonName"], "localhost")
            old.disconnect()
        finally:
            old.close()
        b.stop()

    def test_tls_connections_handed_off_to_their_home_shard_keep_working(self):
        b = self.start_tls(threads=2)
        clients = [self.client(f"handoff-{i}") for i in range(8)]
        try:
            for c in clients:
                c.subscribe([(f"home/{c.client_id}", 1)])
            for c in clients:
                c.publish(f"home/{c.client_id}", c.client_id.encode(), qos=1)
                self.assertEqual(c.next_publish().payload, c.client_id.encode())
            for c in clients:
                c.disconnect()
        finally:
            for c in clients:
                c.close()
        counters = b.stop()
        self.assertEqual(counters["connect_accepted"], 8)
        self.assertGreater(counters["connections_handed_off"], 0)


class CheckConfig(TlsTestCase):
    def test_check_config_prints_subject_and_expiry(self):
        path = self.write(self.listener(free_port(), require=True))
        proc = run_binary("--config", path, "--check-config")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(proc.stdout, r"# listener mqtts:\d+: certificate subject CN=localhost, "
                                      r"issuer CN=ringmq test CA, expires .* GMT; key matches")
        self.assertIn("1 CA certificate(s), client certificate required", proc.stdout)

    def test_check_config_refuses_a_key_that_does_not_match(self):
        self.pki.issue("alice", "alice")
        text = self.listener(free_port()).replace(self.pki.path("server.key"),
                                                  self.pki.path("alice.key"))
        proc = run_binary("--config", self.write(text), "--check-config")
        self.assertEqual(proc.returncode, 2)
        self.assertRegex(proc.stderr, r"listener mqtts:\d+: keyfile: .* does not match")
