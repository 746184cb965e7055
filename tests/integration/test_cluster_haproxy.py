"""The 3-node example of docs/cluster.md (examples/cluster/) as shipped: three nats-servers, three
ringmq nodes and HAProxy in front, started from the example's own files with every port moved to
a free one (the only change). Clients that connect through HAProxy land on different nodes and
exchange messages across them; a node killed with SIGKILL closes its clients' connections, they
connect again through HAProxy, land on the surviving nodes, and QoS 0 and QoS 1 traffic goes on
in publisher order.

Every wait is bounded; every process started here is killed at the end, and dies with the test
process if that is killed (PR_SET_PDEATHSIG, broker.LIVE for run.py's watchdog).
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import broker
import mqtt_raw
import nats_cluster
from test_cluster import ROUTE_TIMEOUT, metric, wait_route

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "cluster")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
# The example's ports: HAProxy, the nodes' MQTT and /metrics ports, the nats-servers' client,
# route and monitoring ports.
EXAMPLE_PORTS = (1883, 1884, 1885, 1886, 9884, 9885, 9886, 4222, 4223, 4224, 6222, 6223, 6224,
                 8222, 8223, 8224)
READY_TIMEOUT = 15.0
# HAProxy checks every second and marks a node down after 2 failures; a client that reconnects
# meanwhile is redispatched to another node (option redispatch), so this is a generous bound.
RECONNECT_TIMEOUT = 15.0


def rewrite(text, ports):
    """`text` with each example port (a whole 4-digit number) replaced by its free port."""
    return re.sub(r"\b(\d{4})\b", lambda m: str(ports.get(int(m.group(1)), m.group(1))), text)


def read_example(name):
    with open(os.path.join(EXAMPLE, name)) as f:
        return f.read()


def listening(port):
    try:
        mqtt_raw.open_socket(port, timeout=0.2).close()
        return True
    except OSError:
        return False


class HaproxyCluster(unittest.TestCase):
    def setUp(self):
        if not os.access(HAPROXY, os.X_OK):
            self.fail(f"{HAPROXY} not found: scripts/install-deps.sh installs Debian's haproxy")
        reason = nats_cluster.available()
        if reason:
            self.fail(reason)
        self.tmp = tempfile.mkdtemp(prefix="ringmq-haproxy-cluster-")
        self.ports = {p: broker.free_port() for p in EXAMPLE_PORTS}
        self.start_nats()
        self.nodes = []
        for i in (1, 2, 3):
            self.nodes.append(self.start_node(i))
        self.front = self.ports[1883]
        self.start_haproxy()

    def start_nats(self):
        """The example's nats-*.conf, through nats_cluster's servers (start, readiness, routes,
        kill and the directory's removal)."""
        self.cluster = nats_cluster.NatsCluster(size=3, jetstream=False)
        self.cluster.directory = self.tmp
        self.addCleanup(self.cluster.stop)
        for i in (1, 2, 3):
            server = nats_cluster.NatsServer(i - 1, self.tmp)
            server.port = self.ports[4221 + i]
            server.route_port = self.ports[6221 + i]
            server.http_port = self.ports[8221 + i]
            with open(server.config_path, "w") as f:
                f.write(rewrite(read_example(f"nats-{i}.conf"), self.ports))
            self.cluster.servers.append(server)
            server.start()
        self.cluster.wait_formed(nats_cluster.START_TIMEOUT)

    def start_node(self, i):
        path = os.path.join(self.tmp, f"ringmq-node{i}.toml")
        with open(path, "w") as f:
            f.write(rewrite(read_example(f"ringmq-node{i}.toml"), self.ports))
        # The file's port and metrics_port (flags name the same ones, so that the fixture knows
        # them); everything else as the example sets it.
        node = broker.Broker("--config", path, "--metrics-port", self.ports[9883 + i],
                             port=self.ports[1883 + i], threads=2, log_level="warning")
        node.metrics_port = self.ports[9883 + i]
        self.addCleanup(node.cleanup)
        node.start()
        deadline = time.monotonic() + ROUTE_TIMEOUT
        while metric(node, "ringmq_cluster_link_events_total", event="connect") < 2:
            if time.monotonic() > deadline:
                self.fail(f"node{i}'s NATS links are not up:\n{node.stderr_tail()}")
            time.sleep(0.05)
        return node

    def start_haproxy(self):
        path = os.path.join(self.tmp, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(rewrite(read_example("haproxy.cfg"), self.ports))
        log = open(os.path.join(self.tmp, "haproxy.log"), "w+")
        self.addCleanup(log.close)
        proc = subprocess.Popen([HAPROXY, "-db", "-f", path], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=nats_cluster._die_with_parent)
        broker.LIVE.add(proc)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            broker.LIVE.discard(proc)
        self.addCleanup(stop)
        self.haproxy_log = log
        deadline = time.monotonic() + READY_TIMEOUT
        while not listening(self.front):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                self.fail(f"haproxy is not listening (status {proc.poll()}):\n{log.read()}")
            time.sleep(0.02)

    def client(self, client_id):
        c = mqtt_raw.Client(self.front, client_id)
        self.addCleanup(c.close)
        return c

    def connected(self):
        """MQTT clients connected on each node (None for a node that is down). HAProxy's health
        checks are clients for an instant, so callers wait for a stable answer."""
        return [metric(n, "ringmq_clients_connected") if n.running() else None
                for n in self.nodes]

    def wait_connected(self, want, what):
        deadline = time.monotonic() + READY_TIMEOUT
        while (got := self.connected()) != want:
            if time.monotonic() > deadline:
                self.fail(f"{what}: clients per node {got}, expected {want}")
            time.sleep(0.05)

    def wait_total(self, want, what):
        """Clients per node once the running nodes hold `want` in all (a health check's client
        only ever adds to the sum)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            counts = self.connected()
            if sum(c for c in counts if c is not None) == want:
                return counts
            if time.monotonic() > deadline:
                self.fail(f"{what}: clients per node {counts}, expected {want} in all")
            time.sleep(0.05)

    def exchange(self, publisher, subscribers, topic, count):
        """`count` QoS 0 then `count` QoS 1 messages (each QoS 1 PUBACKed) from `publisher`;
        every subscriber gets all of them, in order."""
        wait_route(publisher, subscribers, topic)
        sent = [(f"q0-{i}".encode(), 0) for i in range(count)]
        sent += [(f"q1-{i}".encode(), 1) for i in range(count)]
        for payload, qos in sent:
            publisher.publish(topic, payload, qos=qos)
        for sub in subscribers:
            got = sub.receive(len(sent), timeout=10, what=f"{sub.client_id} on {topic}")
            self.assertEqual([(g.payload, g.qos) for g in got], sent, sub.client_id)

    def test_clients_spread_over_nodes_and_survive_a_node_kill(self):
        subs = [self.client(f"ha-sub{i}") for i in range(3)]
        # leastconn: one subscriber per node (so the traffic below crosses nodes).
        self.wait_connected([1, 1, 1], "three subscribers through HAProxy")
        for s in subs:
            s.subscribe([("ha/t", 1)], granted=[1])
        pub = self.client("ha-pub")
        counts = self.wait_total(4, "a fourth client")
        self.assertEqual(sorted(counts), [1, 1, 2])
        self.exchange(pub, subs, "ha/t", 50)

        # Kill the publisher's node (the one with two clients): both its clients lose their
        # connection; the others keep theirs.
        victim = counts.index(2)
        self.nodes[victim].proc.kill()
        self.nodes[victim].proc.wait(10)
        clients = subs + [pub]
        dropped = []
        for c in clients:
            try:
                c.ping(timeout=3)
            except (mqtt_raw.ProtocolError, OSError):
                dropped.append(c)
        self.assertEqual(len(dropped), 2, [c.client_id for c in dropped])
        self.assertIn(pub, dropped)

        # They reconnect through HAProxy (to a surviving node) and carry on.
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        again = {}
        for c in dropped:
            while c.client_id not in again:
                try:
                    again[c.client_id] = self.client(c.client_id)
                except (mqtt_raw.ProtocolError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        pub = again.pop("ha-pub")
        subs = [again.get(s.client_id, s) for s in subs]
        for s in again.values():
            s.subscribe([("ha/t", 1)], granted=[1])
        counts = self.wait_total(4, "after the reconnects")
        self.assertIsNone(counts[victim])
        self.exchange(pub, subs, "ha/t", 50)
        self.assertGreater(metric(self.nodes[(victim + 1) % 3], "ringmq_cluster_messages_total"),
                           0)


if __name__ == "__main__":
    unittest.main()
