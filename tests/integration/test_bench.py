"""ringmq-bench (bench/loadgen) against the real broker: short fanin, pairs and reject runs at
QoS 1 verify (0 lost, exit status 0) and write JSON with the documented fields; a broker that
drops QoS 1 messages (a tiny --max-queued-messages) makes the generator report the loss and
exit non-zero, so the verification can fail.

MQTT 5.0 (`--protocol 5|mixed`, `--user-properties`, `--topic-alias`): short runs against
Mosquitto (/usr/sbin/mosquitto, installed by scripts/install-deps.sh), which speaks 5.0, and
against the broker under test.

Persistent subscribers (`--clean-session 0`, `--session-expiry S`): a second run with the same
client id prefix resumes the first run's sessions (Session Present counted) and still verifies;
messages a session kept from before the run are counted as stale, not judged; `--metrics-port`
reports how far the broker's counters moved in the measured window (against ringmq with
persistence: fdatasyncs, bytes and records written).

TLS and WebSockets (`--tls --cafile`, `--cert/--key`, `--websocket`): short runs against Mosquitto
with a TLS listener, a mutual-TLS listener, a websockets listener and a websockets-over-TLS one,
with ECDSA P-256 and RSA 2048 certificates the test makes with the openssl command; every message
verified, and a broker certificate from another CA refused.
"""

import json
import os
import socket
import struct
import subprocess
import tempfile
import time

import mqtt_raw
from broker import BrokerTestCase, built_tool, is_mosquitto, release_only

RUN_TIMEOUT = 60
MOSQUITTO = "/usr/sbin/mosquitto"

def bench_binary():
    return built_tool("bench", "loadgen", "ringmq-bench")


def accepts_mqtt5(port):
    """Sends a raw level-5 CONNECT (empty properties): True if the answer is a 5.0 CONNACK 0x00
    (flags, reason code and a property block), False if it is a refusal in either layout."""
    with mqtt_raw.open_socket(port) as sock:
        mqtt_raw.send(sock, mqtt_raw.connect("probe5", level=5, properties=b"\x00"))
        reply = mqtt_raw.read_packet(sock)
    if reply.type != mqtt_raw.CONNACK:
        raise AssertionError(f"a level-5 CONNECT got {reply!r}, not a CONNACK")
    return len(reply.body) >= 3 and reply.body[1] == 0x00


class BenchRunner(BrokerTestCase):
    """Runs ringmq-bench against a broker and checks its results (no tests of its own)."""

    def run_bench(self, broker, *args):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            csv = os.path.join(tmp, "result.csv")
            argv = [bench_binary(), *args, "--port", str(broker.port), "--json", out, "--csv", csv,
                    "--quiet"]
            if broker.proc is not None:
                argv += ["--broker-pid", str(broker.proc.pid)]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            result = None
            if os.path.exists(out):
                with open(out) as f:
                    result = json.load(f)
            csv_lines = open(csv).read().splitlines() if os.path.exists(csv) else []
        return proc, result, csv_lines

    def assert_common_fields(self, result, scenario):
        for key in ("tool", "scenario", "qos", "payload_bytes", "measured_s", "setup", "broker",
                    "loadgen", "latency_us", "verdict", "verdict_reason", "samples"):
            self.assertIn(key, result)
        self.assertEqual(result["scenario"], scenario)
        for key in ("p50", "p90", "p99", "p999", "max"):
            self.assertIn(key, result["latency_us"])
        self.assertGreater(result["broker"]["cpu_s"] + result["loadgen"]["cpu_s"], 0)
        self.assertGreater(len(result["samples"]), 0)

    def assert_messages_verified(self, proc, result, csv_lines, scenario):
        self.assertEqual(proc.returncode, 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        self.assertIsNotNone(result)
        self.assert_common_fields(result, scenario)
        v = result["verify"]
        for key in ("expected", "received", "lost", "duplicated", "out_of_order", "corrupt"):
            self.assertIn(key, v)
        self.assertEqual(v["lost"], 0)
        self.assertEqual(v["duplicated"], 0)
        self.assertEqual(v["out_of_order"], 0)
        self.assertGreater(v["expected"], 0)
        self.assertEqual(v["received"], v["expected"])
        self.assertGreater(result["messages"]["delivered"], 0)
        self.assertGreater(result["messages"]["delivered_per_s"], 0)
        lat = result["latency_us"]
        self.assertLessEqual(lat["p50"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["max"])
        self.assertEqual(result["verdict"], "ok")
        self.assertEqual(len(csv_lines), 2)  # header + one row
        self.assertIn("messages.delivered_per_s", csv_lines[0].split(","))


class Bench(BenchRunner):
    def test_fanin_qos1_verifies(self):
        b = self.start_broker(log_level="info")
        proc, result, csv_lines = self.run_bench(
            b, "fanin", "--qos", "1", "--publishers", "10", "--subscribers", "1",
            "--duration", "1", "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "fanin")
        self.assertEqual(result["publishers"], 10)
        self.assert_counters(b.stop(), connect_accepted=11)

    def test_pairs_qos1_verifies(self):
        b = self.start_broker(log_level="info")
        proc, result, csv_lines = self.run_bench(
            b, "pairs", "--qos", "1", "--publishers", "20", "--duration", "1", "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assertEqual(result["subscribers"], 20)
        self.assert_counters(b.stop(), connect_accepted=40)

    def test_reject_protocol_level_counts_refusals(self):
        # MQTT-3.1.2-2: an unsupported level gets CONNACK 0x01 and the connection is closed.
        b = self.start_broker(log_level="info")
        proc, result, _ = self.run_bench(b, "reject", "--reject-kind", "protocol", "--clients",
                                         "10", "--duration", "1", "--warmup", "0.2")
        self.assertEqual(proc.returncode, 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        self.assert_common_fields(result, "reject")
        c = result["connect"]
        self.assertGreater(c["attempts"], 0)
        self.assertEqual(c["accepted"], 0)
        self.assertEqual(c["errors"] + c["timeouts"], 0)
        self.assertEqual(c["connack_0x01"] + c["closed_without_connack"], c["attempts"])
        counters = b.stop()
        if counters is not None:
            self.assertGreaterEqual(counters["connect_unsupported_protocol"], c["attempts"])
        self.assert_counters(counters, connect_unsupported_protocol=None)

    def test_loss_at_qos1_fails_verification(self):
        # Each subscriber session may queue 2 messages; 10 publishers with 16 in flight each
        # overflow it, the broker drops QoS 1 messages (dropped_queue_full) and the generator
        # must report them as lost and exit with status 1.
        if is_mosquitto():
            self.skipTest("needs ringmq's --max-queued-messages")
        b = self.start_broker("--max-queued-messages", "2", "--max-inflight", "1",
                              log_level="info")
        proc, result, _ = self.run_bench(
            b, "fanin", "--qos", "1", "--publishers", "10", "--subscribers", "1",
            "--window", "16", "--duration", "1", "--warmup", "0.2", "--drain", "1",
            "--stall-ms", "200")
        self.assertEqual(proc.returncode, 1, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        self.assertEqual(result["verdict"], "FAILED")
        self.assertGreater(result["verify"]["lost"], 0)
        self.assertIn("lost at QoS 1", result["verdict_reason"])
        counters = b.stop()
        self.assertGreater(counters["dropped_queue_full"], 0)
        self.assert_counters(counters, dropped_queue_full=None, connect_accepted=11)

    # -- MQTT 5.0 -------------------------------------------------------------------------------

    def start_mosquitto(self):
        if not os.access(MOSQUITTO, os.X_OK):
            raise AssertionError(f"{MOSQUITTO} is missing: scripts/install-deps.sh installs it")
        return self.start_broker(binary_path=MOSQUITTO)

    def assert_mqtt5_run(self, result, protocol, clients_mqtt5):
        self.assertEqual(result["protocol"], protocol)
        self.assertEqual(result["clients_mqtt5"], clients_mqtt5)
        for key in ("property_errors", "publish_refused", "server_disconnects"):
            self.assertEqual(result["verify"][key], 0, key)

    @release_only("never starts ringmq: ringmq-bench against Mosquitto")
    def test_mqtt5_pairs_and_fanin_against_mosquitto(self):
        # All 5.0 clients, QoS 1 and QoS 0: verified like 3.1.1 ones.
        b = self.start_mosquitto()
        proc, result, csv_lines = self.run_bench(
            b, "pairs", "--qos", "1", "--protocol", "5", "--publishers", "10", "--duration", "1",
            "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assert_mqtt5_run(result, "5", 20)
        self.assertIn("mqtt 5", proc.stdout)
        proc, result, csv_lines = self.run_bench(
            b, "fanin", "--qos", "0", "--protocol", "5", "--publishers", "10", "--duration", "1",
            "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "fanin")
        self.assert_mqtt5_run(result, "5", 11)
        b.stop()

    @release_only("never starts ringmq: ringmq-bench against Mosquitto")
    def test_mqtt5_mixed_with_user_properties_and_topic_alias_against_mosquitto(self):
        # Half the clients 5.0: every combination of 3.1.1 and 5.0 publisher and subscriber in
        # pairs; 5.0 publishers send 2 User Properties and a Topic Alias, 5.0 subscribers check
        # that the properties of a 5.0 publisher's message arrive unchanged and in order
        # (5.0:MQTT-3.3.2-17, -18) and that a 3.1.1 publisher's carries none.
        b = self.start_mosquitto()
        proc, result, csv_lines = self.run_bench(
            b, "pairs", "--qos", "1", "--protocol", "mixed", "--publishers", "8",
            "--user-properties", "2", "--topic-alias", "--duration", "1", "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assert_mqtt5_run(result, "mixed", 8)  # publishers 2, 3, 6, 7; subscribers 1, 3, 5, 7
        self.assertEqual(result["user_properties"], 2)
        self.assertEqual(result["topic_alias"], 1)
        proc, result, _ = self.run_bench(b, "connect", "--protocol", "5", "--clients", "4",
                                         "--duration", "1", "--warmup", "0.2")
        self.assertEqual(proc.returncode, 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        self.assertGreater(result["connect"]["attempts"], 0)
        self.assertEqual(result["connect"]["accepted"], result["connect"]["attempts"])
        b.stop()

    def test_mqtt5_options_need_a_5_0_protocol(self):
        # Usage errors (exit 2) before any connection: no broker needed.
        for args in (["--user-properties", "1"], ["--topic-alias"],
                     ["--protocol", "5", "--topic-alias", "connect"], ["--protocol", "6"]):
            argv = [bench_binary(), *([] if "connect" in args else ["pairs"]), *args,
                    "--port", "1"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 2, f"{args}: {proc.stderr}")

    def test_mqtt5_against_ringmq(self):
        b = self.start_broker(log_level="info")
        accepted = accepts_mqtt5(b.port)
        self.assertTrue(accepted, "a level-5 CONNECT was refused")
        proc, result, csv_lines = self.run_bench(
            b, "pairs", "--qos", "1", "--protocol", "5", "--publishers", "10", "--duration", "1",
            "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assert_mqtt5_run(result, "5", 20)
        proc, result, csv_lines = self.run_bench(
            b, "pairs", "--qos", "1", "--protocol", "mixed", "--publishers", "8",
            "--user-properties", "2", "--topic-alias", "--duration", "1", "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assert_mqtt5_run(result, "mixed", 8)
        self.assert_counters(b.stop(), connect_accepted=1 + 20 + 16)


class PersistentSubscribers(BenchRunner):
    def test_second_run_resumes_the_sessions_and_verifies(self):
        b = self.start_broker(log_level="info", metrics=not is_mosquitto())
        prefix = f"pt{os.getpid()}"
        args = ["pairs", "--qos", "1", "--publishers", "6", "--clean-session", "0",
                "--client-id-prefix", prefix, "--duration", "1", "--warmup", "0.3"]
        proc, result, csv_lines = self.run_bench(b, *args)
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assertEqual(result["clean_session"], 0)
        self.assertEqual(result["client_id_prefix"], prefix)
        self.assertEqual(result["setup"]["sessions_present"], 0)
        self.assertEqual(result["verify"]["stale"], 0)
        # Same subscribers, QoS 2 this time: every session is resumed, exactly once holds.
        args[2] = "2"
        if b.metrics_port:
            args += ["--metrics-port", str(b.metrics_port), "--metrics-match",
                     "messages_received_total"]
        proc, result, csv_lines = self.run_bench(b, *args)
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assertEqual(result["setup"]["sessions_present"], 6)
        self.assertIn("persistent subscribers (6 sessions present)", proc.stdout)
        if b.metrics_port:
            # PUBLISHes received in the measured window: about what was sent in it (publishers
            # stop at its end; a few may arrive after the last read).
            m = result["broker_metrics"]
            self.assertEqual(m["read"], 1)
            received = m["ringmq_messages_received_total"]
            sent = result["messages"]["sent"]
            self.assertGreater(received, 0)
            self.assertLessEqual(abs(received - sent), sent * 0.2 + 200, m)
        b.stop()

    def test_mqtt5_session_expiry(self):
        b = self.start_broker(log_level="info")
        proc, result, csv_lines = self.run_bench(
            b, "fanin", "--qos", "1", "--protocol", "5", "--publishers", "5",
            "--session-expiry", "60", "--client-id-prefix", f"pe{os.getpid()}",
            "--duration", "1", "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "fanin")
        self.assertEqual(result["session_expiry_s"], 60)
        proc, result, csv_lines = self.run_bench(
            b, "fanin", "--qos", "1", "--protocol", "5", "--publishers", "5",
            "--session-expiry", "60", "--clean-session", "0",
            "--client-id-prefix", f"pe{os.getpid()}", "--duration", "1", "--warmup", "0.3")
        self.assert_messages_verified(proc, result, csv_lines, "fanin")
        self.assertEqual(result["setup"]["sessions_present"], 1)
        b.stop()

    def test_messages_kept_from_before_the_run_are_stale_not_judged(self):
        b = self.start_broker(log_level="info")
        prefix = f"ps{os.getpid()}"
        args = ["fanin", "--qos", "1", "--publishers", "3", "--clean-session", "0",
                "--client-id-prefix", prefix, "--duration", "0.5", "--warmup", "0.2"]
        proc, result, _ = self.run_bench(b, *args)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # While the subscriber is away its session queues 5 QoS 1 messages in the generator's
        # payload format, sent "at" monotonic time 1 ns (long before the next run) by publisher
        # 0 with sequence numbers 1..5, the very numbers the next run starts with.
        with mqtt_raw.connect_client(b.port, "stale-publisher") as sock:
            for seq in range(1, 6):
                payload = struct.pack("<IIQQ", 0x42514d52, 0, seq, 1) + b"x" * 40
                mqtt_raw.send(sock, mqtt_raw.publish("bench/fanin", payload, qos=1,
                                                     packet_id=seq))
                reply = mqtt_raw.read_packet(sock)
                self.assertEqual(reply.type, mqtt_raw.PUBACK)
            mqtt_raw.disconnect(sock)
        proc, result, _ = self.run_bench(b, *args)
        self.assertEqual(proc.returncode, 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        v = result["verify"]
        self.assertEqual(v["stale"], 5)
        self.assertEqual(v["duplicated"], 0)
        self.assertEqual(v["out_of_order"], 0)
        self.assertEqual(v["lost"], 0)
        self.assertIn("stale 5", proc.stdout)
        b.stop()

    def test_durable_run_reports_the_persistence_counters(self):
        # ringmq with persistence (durability fsync): the run verifies at QoS 1 and 2 and
        # --metrics-port reports fdatasyncs and bytes written in the measured window.
        if is_mosquitto():
            self.skipTest("needs ringmq's --persistence and /metrics")
        with tempfile.TemporaryDirectory() as data:
            b = self.start_broker("--persistence", "true", "--data-dir", data,
                                  "--durability", "fsync", log_level="info", metrics=True)
            for qos in ("1", "2"):
                proc, result, csv_lines = self.run_bench(
                    b, "fanin", "--qos", qos, "--publishers", "5", "--clean-session", "0",
                    "--client-id-prefix", f"pd{qos}-{os.getpid()}", "--duration", "1",
                    "--warmup", "0.3", "--metrics-port", str(b.metrics_port))
                self.assert_messages_verified(proc, result, csv_lines, "fanin")
                m = result["broker_metrics"]
                self.assertEqual(m["read"], 1)
                self.assertGreater(m["ringmq_persist_syncs_total"], 0, m)
                self.assertGreater(m["ringmq_persist_bytes_written_total"], 0, m)
                self.assertGreater(m["ringmq_persist_records_total"],
                                   result["messages"]["delivered"], m)
                self.assertEqual(m["ringmq_persist_write_errors_total"], 0, m)
            b.stop()

    def test_session_options_usage(self):
        for args in (["pairs", "--clean-session", "0", "--protocol", "5"],
                     ["pairs", "--session-expiry", "10"],
                     ["pairs", "--protocol", "mixed", "--session-expiry", "10"],
                     ["connect", "--clean-session", "0"],
                     ["pairs", "--clean-session", "2"]):
            argv = [bench_binary(), *args, "--port", "1"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 2, f"{args}: {proc.stderr}")

    def test_unreadable_metrics_fail_the_run(self):
        b = self.start_broker(log_level="info")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
            port = s.getsockname()[1]
            proc, result, _ = self.run_bench(b, "fanin", "--qos", "1", "--publishers", "2",
                                             "--duration", "0.5", "--warmup", "0.1",
                                             "--metrics-port", str(port))
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("could not read the broker's /metrics", result["verdict_reason"])
        self.assertEqual(result["broker_metrics"]["read"], 0)
        b.stop()


# -- TLS and WebSockets ----------------------------------------------------------------------------


def make_certificates(directory, key_type):
    """A CA, a broker certificate for 127.0.0.1 / localhost and a client certificate, all of
    `key_type` ("ec": ECDSA P-256, "rsa": RSA 2048), made with the openssl command. Returns the
    paths by name (ca, server_cert, server_key, client_cert, client_key)."""
    key = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec"
           else ["-newkey", "rsa:2048"])
    p = {name: os.path.join(directory, f"{key_type}-{name}") for name in
         ("ca.crt", "ca.key", "server.crt", "server.key", "server.csr", "client.crt",
          "client.key", "client.csr", "ext.cnf")}

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *key, "-nodes", "-keyout", p["ca.key"], "-out", p["ca.crt"],
            "-days", "2", "-subj", "/CN=ringmq-bench test CA")
    with open(p["ext.cnf"], "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who, cn in (("server", "localhost"), ("client", "bench-client")):
        openssl("req", *key, "-nodes", "-keyout", p[f"{who}.key"], "-out", p[f"{who}.csr"],
                "-subj", f"/CN={cn}")
        openssl("x509", "-req", "-in", p[f"{who}.csr"], "-CA", p["ca.crt"], "-CAkey",
                p["ca.key"], "-CAcreateserial", "-out", p[f"{who}.crt"], "-days", "2",
                *(["-extfile", p["ext.cnf"]] if who == "server" else []))
    for path in os.listdir(directory):
        os.chmod(os.path.join(directory, path), 0o644)  # Mosquitto run as root reads them as
    return {"ca": p["ca.crt"], "server_cert": p["server.crt"],   # the user `mosquitto`
            "server_key": p["server.key"], "client_cert": p["client.crt"],
            "client_key": p["client.key"]}


class MosquittoListeners:
    """Mosquitto with a plain listener (port), TLS (tls), mutual TLS (mtls), websockets (ws)
    and websockets over TLS (wss), each on a free 127.0.0.1 port. Mosquitto 2.0.11 refuses to
    start with websockets listeners alone, so the plain one is always there."""

    def __init__(self, directory, certs):
        self.ports = {name: free_tcp_port() for name in ("port", "tls", "mtls", "ws", "wss")}
        tls = [f"cafile {certs['ca']}", f"certfile {certs['server_cert']}",
               f"keyfile {certs['server_key']}"]
        lines = [f"listener {self.ports['port']} 127.0.0.1",
                 f"listener {self.ports['tls']} 127.0.0.1", *tls,
                 f"listener {self.ports['mtls']} 127.0.0.1", *tls, "require_certificate true",
                 f"listener {self.ports['ws']} 127.0.0.1", "protocol websockets",
                 f"listener {self.ports['wss']} 127.0.0.1", "protocol websockets", *tls,
                 "allow_anonymous true", "persistence false", "set_tcp_nodelay true",
                 "max_queued_messages 100000", "log_dest stderr", "log_type error",
                 "log_type warning"]
        self.config = os.path.join(directory, "mosquitto.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.config, 0o644)
        self.proc = None

    def start(self):
        if not os.access(MOSQUITTO, os.X_OK):
            raise AssertionError(f"{MOSQUITTO} is missing: scripts/install-deps.sh installs it")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        for port in self.ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise AssertionError(f"Mosquitto is not listening on {port}: "
                                             f"{self.proc.stderr.read().decode()}")
                    time.sleep(0.02)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self.proc.stderr.close()


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@release_only("never starts ringmq: ringmq-bench against Mosquitto")
class BenchTransports(BrokerTestCase):
    run_bench = Bench.run_bench
    assert_common_fields = Bench.assert_common_fields
    assert_messages_verified = Bench.assert_messages_verified

    def start_mosquitto_listeners(self, key_type):
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-bench-tls-")
        self.addCleanup(tmp.cleanup)
        os.chmod(tmp.name, 0o755)
        certs = make_certificates(tmp.name, key_type)
        mosquitto = MosquittoListeners(tmp.name, certs).start()
        self.addCleanup(mosquitto.stop)
        return mosquitto, certs

    def run_on(self, mosquitto, listener, *args):
        class At:  # what run_bench needs of a broker
            port = mosquitto.ports[listener]
            proc = mosquitto.proc
        return self.run_bench(At, *args)

    def assert_transport(self, result, kind, tls_version=None):
        self.assertEqual(result["transport"]["kind"], kind)
        self.assertEqual(result["transport"]["errors"], 0)
        if tls_version:
            self.assertEqual(result["transport"]["tls_version"], tls_version)

    def test_tls_and_websocket_fanin_verify_against_mosquitto(self):
        # QoS 1 fanin over TLS (ECDSA P-256 certificates, broker verified against the test CA
        # and its IP subject alt name), over WebSocket frames, and over both (wss): every
        # message arrives once and in order.
        m, certs = self.start_mosquitto_listeners("ec")
        runs = (("tls", "tls", ["--tls", "--cafile", certs["ca"]]),
                ("ws", "ws", ["--websocket"]),
                ("wss", "wss", ["--tls", "--websocket", "--cafile", certs["ca"]]))
        for listener, kind, transport in runs:
            proc, result, csv_lines = self.run_on(
                m, listener, "fanin", "--qos", "1", "--publishers", "10", "--subscribers", "1",
                "--duration", "1", "--warmup", "0.3", *transport)
            self.assert_messages_verified(proc, result, csv_lines, "fanin")
            self.assert_transport(result, kind)
            self.assertGreater(result["broker"]["cpu_s"], 0)
        self.assertIn(" tls TLSv1.3", proc.stdout)
        self.assertIn(" websocket", proc.stdout)

    def test_tls_rsa_mutual_pairs_and_handshakes_against_mosquitto(self):
        # RSA 2048 certificates: pairs at QoS 0 over TLS 1.2 with a client certificate on the
        # listener that requires one; then the handshake scenario (connect over TLS: TCP
        # connect, full handshake, CONNECT/CONNACK, DISCONNECT, close), every attempt accepted,
        # and the same with session resumption.
        m, certs = self.start_mosquitto_listeners("rsa")
        proc, result, csv_lines = self.run_on(
            m, "mtls", "pairs", "--qos", "0", "--publishers", "10", "--duration", "1",
            "--warmup", "0.3", "--tls", "--tls-version", "1.2", "--cafile", certs["ca"],
            "--cert", certs["client_cert"], "--key", certs["client_key"])
        self.assert_messages_verified(proc, result, csv_lines, "pairs")
        self.assert_transport(result, "tls", "TLSv1.2")
        self.assertIn("RSA", result["transport"]["tls_cipher"])
        proc, result, _ = self.run_on(m, "tls", "connect", "--clients", "4", "--duration", "1",
                                      "--warmup", "0.2", "--tls", "--cafile", certs["ca"])
        self.assertEqual(proc.returncode, 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        c = result["connect"]
        self.assertGreater(c["attempts"], 0)
        self.assertEqual(c["accepted"], c["attempts"])
        self.assertGreater(c["per_broker_cpu_s"], 0)
        self.assert_transport(result, "tls", "TLSv1.3")
        self.assertEqual(result["transport"]["tls_resumed"], 0)
        self.assertGreaterEqual(result["transport"]["tls_handshakes"], c["attempts"])
        # --tls-resume: each slot offers its previous connection's session (a TLS 1.3 ticket);
        # all but each slot's first handshake are abbreviated.
        proc, result, _ = self.run_on(m, "tls", "connect", "--clients", "4", "--duration", "1",
                                      "--warmup", "0.2", "--tls", "--cafile", certs["ca"],
                                      "--tls-resume")
        self.assertEqual(proc.returncode, 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        t = result["transport"]
        self.assertGreater(t["tls_handshakes"], 4)
        self.assertEqual(t["tls_resumed"], t["tls_handshakes"] - 4)

    def test_tls_failures_are_reported_not_verified(self):
        # The mutual-TLS listener without a client certificate, and a CA that did not sign the
        # broker's certificate (the client one): setup fails (exit 2) naming the TLS error.
        m, certs = self.start_mosquitto_listeners("ec")
        for listener, ca, expect in (("mtls", certs["ca"], "certificate required"),
                                     ("tls", certs["client_cert"], "certificate verify failed")):
            proc, result, _ = self.run_on(m, listener, "pairs", "--publishers", "2",
                                          "--duration", "1", "--setup-timeout", "10", "--tls",
                                          "--cafile", ca)
            self.assertEqual(proc.returncode, 2, f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
            self.assertEqual(result["verdict"], "FAILED")
            self.assertGreater(result["transport"]["errors"], 0)
            self.assertIn(expect, result["transport"]["first_error"])
            self.assertIn(expect, proc.stderr)

    def test_transport_options_usage(self):
        # Usage errors (exit 2) before any connection: no broker needed.
        for args in (["--cafile", "x"], ["--tls"], ["--tls", "--insecure", "--cert", "c"],
                     ["--ws-path", "/x"], ["--websocket", "--ws-path", "x"],
                     ["--tls", "--insecure", "--tls-version", "1.1"], ["--tls-resume"]):
            argv = [bench_binary(), "pairs", *args, "--port", "1"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 2, f"{args}: {proc.stderr}")


class BenchTransportsRingmq(BrokerTestCase):
    run_bench = Bench.run_bench
    assert_common_fields = Bench.assert_common_fields
    assert_messages_verified = Bench.assert_messages_verified

    def test_tls_and_websocket_against_ringmq(self):
        if is_mosquitto():
            self.skipTest("ringmq's [[listener]] tables")
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-bench-tls-")
        self.addCleanup(tmp.cleanup)
        certs = make_certificates(tmp.name, "ec")
        tls_port, ws_port = free_tcp_port(), free_tcp_port()
        config = os.path.join(tmp.name, "ringmq.toml")
        with open(config, "w") as f:
            f.write(f'[[listener]]\nbind = "127.0.0.1"\nport = {tls_port}\n'
                    f'certfile = "{certs["server_cert"]}"\nkeyfile = "{certs["server_key"]}"\n\n'
                    f'[[listener]]\nbind = "127.0.0.1"\nport = {ws_port}\n'
                    'protocol = "websockets"\n')
        b = self.start_broker("--config", config, log_level="info")

        class At:
            proc = b.proc
        for port, transport in ((tls_port, ["--tls", "--cafile", certs["ca"]]),
                                (ws_port, ["--websocket"])):
            At.port = port
            proc, result, csv_lines = self.run_bench(
                At, "fanin", "--qos", "1", "--publishers", "10", "--subscribers", "1",
                "--duration", "1", "--warmup", "0.3", *transport)
            self.assert_messages_verified(proc, result, csv_lines, "fanin")
            self.assertEqual(result["transport"]["errors"], 0)
        # 100 KB messages over WebSocket, 16 in flight: the generator's output spans frames of
        # at most 64 KiB (a window in one frame would exceed ringmq's frame bound).
        At.port = ws_port
        proc, result, csv_lines = self.run_bench(
            At, "fanout", "--qos", "1", "--publishers", "1", "--subscribers", "2", "--payload",
            "100000", "--duration", "1", "--warmup", "0.3", "--websocket")
        self.assert_messages_verified(proc, result, csv_lines, "fanout")
        self.assert_counters(b.stop(), connect_accepted=25)
