"""A real Prometheus server (Debian's `prometheus`, /usr/bin/prometheus) scrapes a running
ringmq every second; the test drives traffic, including refused connections, and asserts through
Prometheus' HTTP query API (/api/v1/query) that the scraped values equal what was sent. The
shipped alert rules (docs/prometheus/alerts.yml) are loaded too: `promtool check rules` accepts
them, Prometheus evaluates them without error, and the connections-near-max alert fires
(pending) when the broker is at max_connections.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import mqtt_raw as m
from broker import BrokerTestCase, free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALERTS = os.path.join(ROOT, "docs", "prometheus", "alerts.yml")
EXAMPLE_CONFIG = os.path.join(ROOT, "docs", "prometheus", "prometheus.yml")
STARTUP_TIMEOUT = 30.0   # Prometheus replays an empty TSDB and starts in a few seconds
SCRAPED_TIMEOUT = 20.0   # scrape_interval 1 s: values show up within a few scrapes
STOP_TIMEOUT = 10.0


def require(path):
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is missing: install the Debian package `prometheus` "
                             "(scripts/install-deps.sh)")


def get_json(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode("utf-8"))


class PrometheusServer:
    """One Prometheus process with a temporary config and storage; stop() kills it."""

    def __init__(self, target_port):
        self.dir = tempfile.mkdtemp(prefix="ringmq-prom-")
        self.port = free_port()
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {ALERTS}
scrape_configs:
  - job_name: ringmq
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w+")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}",
             f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n"
                                     f"{self.log_text()}")
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready within {STARTUP_TIMEOUT}s:\n"
                             f"{self.log_text()}")

    def query(self, expr):
        """The single value of an instant query, or None when the result is empty."""
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = get_json(url)
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        result = body["data"]["result"]
        if not result:
            return None
        if len(result) != 1:
            raise AssertionError(f"query {expr!r} returned {len(result)} series: {result}")
        return float(result[0]["value"][1])

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrometheusScrape(BrokerTestCase):
    def start_prometheus(self, target_port):
        require(PROMETHEUS)
        server = PrometheusServer(target_port)
        self.addCleanup(server.stop)
        server.wait_ready()
        return server

    def wait_for_queries(self, prom, expected, timeout=SCRAPED_TIMEOUT):
        """Polls every query until each returns its expected value; fails listing the rest."""
        deadline = time.monotonic() + timeout
        while True:
            wrong = {}
            for expr, want in expected.items():
                got = prom.query(expr)
                if got != want:
                    wrong[expr] = (got, want)
            if not wrong:
                return
            if time.monotonic() > deadline:
                self.fail("Prometheus query results differ (got, expected):\n" +
                          "\n".join(f"  {e}: {gw}" for e, gw in wrong.items()))
            time.sleep(0.25)

    def test_scraped_values_match_the_traffic(self):
        b = self.start_broker("--sys-interval-s", "0", "--max-connections", "3", metrics=True)
        prom = self.start_prometheus(b.metrics_port)
        self.wait_for_queries(prom, {'up{job="ringmq"}': 1})

        sub = m.Client(b.port, "sub")
        sub.subscribe([("data/#", 1)])
        pub = m.Client(b.port, "pub")
        for i in range(5):
            pub.publish("data/a", b"q0", qos=0)
        for i in range(3):
            pub.publish("data/b", b"q1", qos=1)
        for i in range(4):
            pub.publish("void", b"nobody", qos=0)
        sub.receive(8, timeout=5.0)
        # Refusals: protocol level 6 twice (0x01), a malformed first packet, and over
        # max_connections 3 once (0x03) while three clients are connected.
        for _ in range(2):
            with m.connect_client(b.port, "lvl", expect=1, level=6) as s:
                m.expect_eof(s)
        with m.open_socket(b.port) as s:
            s.sendall(b"\x30\x00")  # PUBLISH before CONNECT
            m.expect_eof(s)
        third = m.Client(b.port, "third")
        with m.connect_client(b.port, "fourth", expect=3) as s:
            m.expect_eof(s)

        self.wait_for_queries(prom, {
            'sum(ringmq_connect_outcomes_total{result="accepted"})': 3,
            'sum(ringmq_connect_outcomes_total{result="refused",reason="unsupported_protocol",'
            'code="1"})': 2,
            'sum(ringmq_connect_outcomes_total{result="refused",reason="connection_limit",'
            'code="3"})': 1,
            'sum(ringmq_connect_outcomes_total{result="refused"})': 3,
            'sum(ringmq_connect_outcomes_total{result="closed_malformed"})': 1,
            'sum(ringmq_connect_outcomes_total{result="closed_silent_policy"})': 0,
            'sum(ringmq_connections_accepted_total)': 7,
            'sum(ringmq_connections)': 3,
            'ringmq_clients_connected': 3,
            'sum(ringmq_messages_received_total{qos="0"})': 9,
            'sum(ringmq_messages_received_total{qos="1"})': 3,
            'sum(ringmq_messages_sent_total{qos="0"})': 5,
            'sum(ringmq_messages_sent_total{qos="1"})': 3,
            'sum(ringmq_messages_dropped_total{reason="no_subscribers"})': 4,
            'sum(ringmq_messages_dropped_total) - '
            'sum(ringmq_messages_dropped_total{reason="no_subscribers"})': 0,
            'sum(ringmq_subscriptions)': 1,
            'sum(ringmq_sessions{state="online"})': 3,
            'sum(ringmq_inflight_messages)': 0,
            'count(ringmq_loop_iterations_total)': 2,  # one series per shard
            'ringmq_build_info{version="0.1.0"}': 1,
            'ringmq_max_connections': 3,
        })
        # Bytes: Prometheus saw what the broker reports at exit (no traffic after this point).
        received = prom.query("sum(ringmq_received_bytes_total)")
        self.assertGreater(received, 0)
        # The shipped rules load and evaluate; at 3 of max_connections 3 this one is pending.
        deadline = time.monotonic() + SCRAPED_TIMEOUT
        while True:
            alerts = get_json(prom.base + "/api/v1/alerts")["data"]["alerts"]
            names = {a["labels"]["alertname"]: a["state"] for a in alerts}
            if names.get("RingmqConnectionsNearMax") in ("pending", "firing"):
                break
            if time.monotonic() > deadline:
                self.fail(f"RingmqConnectionsNearMax not pending; alerts {alerts}")
            time.sleep(0.25)
        rules = get_json(prom.base + "/api/v1/rules")["data"]["groups"]
        loaded = {r["name"]: r.get("health") for g in rules for r in g["rules"]}
        self.assertEqual(set(loaded), {"RingmqDown", "RingmqConnectRefusalsHigh",
                                       "RingmqMessagesDropped", "RingmqSlowConsumers",
                                       "RingmqConnectionsNearMax"})
        self.assertEqual(set(loaded.values()), {"ok"}, loaded)
        for c in (sub, pub, third):
            c.close()
        counters = b.stop()
        self.assertEqual(counters["bytes_received"], received)
        self.assert_counters(counters, connect_accepted=3, connect_unsupported_protocol=2,
                             connect_connection_limit=1, connect_malformed=1)


class PromtoolChecks(BrokerTestCase):
    def test_shipped_alert_rules_pass_promtool(self):
        require(PROMTOOL)
        proc = subprocess.run([PROMTOOL, "check", "rules", ALERTS], capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("SUCCESS: 5 rules found", proc.stdout)

    def test_example_scrape_config_passes_promtool(self):
        require(PROMTOOL)
        proc = subprocess.run([PROMTOOL, "check", "config", EXAMPLE_CONFIG],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
