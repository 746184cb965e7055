"""Measuring a cluster (issue 16, "Performance"): ringmq-bench with several ports (--port
P1,P2,P3) against three ringmq nodes over NATS places publishers and subscribers on different
nodes (the rule of placement.h) and still verifies every message; scripts/bench-cluster.sh
--quick runs the cluster, one-node and comparison table end to end, with NATS MQTT on one server
and clustered on three as references.
"""

import json
import os
import subprocess
import tempfile
import unittest

import broker
import nats_cluster
from test_bench import bench_binary
from test_cluster import metric

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TIMEOUT = 60
SCRIPT_TIMEOUT = 240  # the run with its references: about 50 s on a quiet machine


@broker.release_only("measures throughput (ringmq-bench over 3 nodes); the cluster tests that "
                     "run under the sanitizers cover the same code paths")
class BenchPorts(nats_cluster.NodesOverNats):
    """One nats-server, three ringmq nodes (one shard each), ringmq-bench on all three ports."""

    nats_size = 1
    node_prefix = "bench"
    node_threads = 1
    node_log_level = "warning"

    def bench(self, *args):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            pids = [n.proc.pid for n in self.nodes] + self.cluster.pids
            argv = [bench_binary(), *args, "--port", ",".join(str(n.port) for n in self.nodes),
                    "--broker-pid", ",".join(map(str, pids)), "--json", out, "--quiet"]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            result = json.load(open(out)) if os.path.exists(out) else None
        return proc, result

    def cross_node_in(self):
        return [metric(n, "ringmq_cluster_messages_total", direction="in") for n in self.nodes]

    def test_pairs_qos1_cross_nodes_and_verify(self):
        before = self.cross_node_in()
        proc, r = self.bench("pairs", "--qos", "1", "--publishers", "6", "--rate", "200",
                             "--duration", "1", "--warmup", "0.3", "--topic-prefix", "bp")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(r["verdict"], "ok")
        self.assertEqual(r["verify"]["lost"], 0)
        self.assertGreater(r["messages"]["delivered"], 0)
        # 6 subscribers then 6 publishers: subscriber i on port i mod 3, publisher i on
        # (i + 1) mod 3, so 4 clients per node, and every message arrived from NATS.
        self.assertEqual(r["clients_per_port"], "4,4,4")
        self.assertEqual(r["settle_ms"], 1000)
        self.assertEqual(r["broker"]["processes"], 4)
        by_pid = dict(item.split(":") for item in r["broker"]["cpu_s_by_pid"].split(","))
        self.assertEqual(set(map(int, by_pid)),
                         {n.proc.pid for n in self.nodes} | set(self.cluster.pids))
        self.assertAlmostEqual(sum(map(float, by_pid.values())), r["broker"]["cpu_s"], delta=0.01)
        got = [after - b for after, b in zip(self.cross_node_in(), before)]
        # One subscriber per message: every delivery of the run (warm-up and drain included)
        # is one NATS message in.
        self.assertEqual(sum(got), r["verify"]["received"] + r["verify"]["duplicated"], got)
        self.assertTrue(all(g > 0 for g in got), got)

    def test_fanin_publishers_avoid_the_subscribers_node(self):
        before = self.cross_node_in()
        proc, r = self.bench("fanin", "--qos", "0", "--publishers", "4", "--subscribers", "1",
                             "--rate", "200", "--duration", "1", "--warmup", "0.3",
                             "--topic-prefix", "bf")
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        # The subscriber on the first port, the publishers on the other two.
        self.assertEqual(r["clients_per_port"], "1,2,2")
        got = [after - b for after, b in zip(self.cross_node_in(), before)]
        self.assertEqual(got[0], r["verify"]["received"], got)  # all of it crossed to node 0
        self.assertEqual(got[1:], [0, 0])

    def test_port_list_usage(self):
        for bad in ("1883,", "1883,x", ",".join(["1883"] * 65), "0"):
            proc = subprocess.run([bench_binary(), "pairs", "--port", bad], capture_output=True,
                                  text=True, timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 2, bad)
            self.assertIn("--port", proc.stderr)


@broker.release_only("measures throughput (scripts/bench-cluster.sh --quick)")
class BenchClusterScript(unittest.TestCase):
    def test_quick_run_completes_and_prints_its_table(self):
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run(
                [os.path.join(ROOT, "scripts", "bench-cluster.sh"), "--quick", "--no-build",
                 "--only", "pairs-q1,connect", "--out", out],
                capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
                env={**os.environ, "RINGMQ_BINARY": broker.binary()})
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr[-3000:])
            rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
            for scenario in ("pairs-q1", "connect"):
                for topology in ("cluster", "single"):
                    self.assertTrue(any(line.startswith(f"| {scenario} | {topology} |") and
                                        "| ok |" in line for line in rows), (scenario, topology))
            # The references in the same run: NATS MQTT on one server and clustered on three
            # (every server's CPU counted: three pids), each with a ratio column.
            for scenario in ("pairs-q1", "connect"):
                for label in ("NATS MQTT (reference)", "NATS MQTT 3 nodes (reference)"):
                    self.assertTrue(any(line.startswith(f"| {scenario} | {label} |") and
                                        "| ok |" in line for line in rows), (scenario, label))
            with open(os.path.join(out, "reference", "mqtt3-connect.json")) as f:
                three = json.load(f)
            self.assertEqual(len(list(filter(None, three["broker"]["cpu_s_by_pid"].split(",")))),
                             3, three["broker"])
            self.assertGreater(three["connect"]["accepted"], 0)
            ratios = [line for line in rows if line.startswith("| connect | ") and
                      line.count("×") == 2]
            self.assertEqual(len(ratios), 1, rows)
            self.assertTrue(os.path.exists(os.path.join(out, "table.md")))
            self.assertTrue(os.path.exists(os.path.join(out, "cluster-pairs-q1.json")))
            self.assertIn("load average", proc.stderr)


if __name__ == "__main__":
    unittest.main()
