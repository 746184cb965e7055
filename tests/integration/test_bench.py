"""ringmq-bench (bench/loadgen) against the real broker: short fanin, pairs and reject runs at
QoS 1 verify (0 lost, exit status 0) and write JSON with the documented fields; a broker that
drops QoS 1 messages (a tiny --max-queued-messages) makes the generator report the loss and
exit non-zero, so the verification can fail.
"""

import json
import os
import subprocess
import tempfile

from broker import BrokerTestCase, binary, is_mosquitto

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUN_TIMEOUT = 60


def bench_binary():
    """ringmq-bench next to the broker under test, else the release build's."""
    candidates = []
    if not is_mosquitto():
        build_dir = os.path.dirname(os.path.abspath(binary()))
        candidates.append(os.path.join(build_dir, "bench", "loadgen", "ringmq-bench"))
    candidates.append(os.path.join(ROOT, "build", "bench", "loadgen", "ringmq-bench"))
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise AssertionError(f"ringmq-bench is not built (looked at {candidates}); "
                         "build it with scripts/build.sh release")


class Bench(BrokerTestCase):
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
