"""scripts/cluster-soak.sh --quick: the long cluster workload (QoS 0/1 publishers on every node,
exact and wildcard subscribers, subscribers reconnecting to other nodes, one nats-server killed
and restarted midway) in a 14-second run: it verifies, prints its summary, and the kill really
made the nodes' NATS links reconnect.
"""

import os
import re
import subprocess
import unittest

import broker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT_TIMEOUT = 120


@broker.release_only("a timed workload (scripts/cluster-soak.sh --quick); the cluster tests "
                     "that run under the sanitizers cover the same code paths")
class ClusterSoak(unittest.TestCase):
    def test_quick_soak_verifies_across_a_nats_server_restart(self):
        proc = subprocess.run([os.path.join(ROOT, "scripts", "cluster-soak.sh"), "--quick",
                               "--no-build"], capture_output=True, text=True,
                              timeout=SCRIPT_TIMEOUT,
                              env={**os.environ, "RINGMQ_BINARY": broker.binary()})
        out = proc.stdout
        self.assertEqual(proc.returncode, 0, out + proc.stderr[-3000:])
        self.assertIn("verdict: ok", out)
        published = re.search(r"published: (\d+) at QoS 0, (\d+) at QoS 1", out)
        self.assertIsNotNone(published, out)
        self.assertGreater(int(published.group(1)), 0)
        self.assertGreater(int(published.group(2)), 0)
        delivered = re.search(r"delivered: (\d+); subscriber reconnects: (\d+); pings: (\d+)",
                              out)
        self.assertIsNotNone(delivered, out)
        self.assertGreater(int(delivered.group(1)), 0)
        self.assertGreater(int(delivered.group(2)), 0)
        self.assertGreater(int(delivered.group(3)), 0)  # keepalive kept by QoS 0 subscribers
        self.assertIn("out of order: 0", out)
        reconnects = re.search(r"(\d+) link reconnects", out)
        self.assertGreater(int(reconnects.group(1)), 0, out)
        self.assertIn("nats-server 2 killed", proc.stderr)
        self.assertIn("nats-server 2 restarted", proc.stderr)


if __name__ == "__main__":
    unittest.main()
