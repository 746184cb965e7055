"""The NATS cluster fixture (nats_cluster.py) against real nats-servers: what the ringmq cluster
(issue 16) builds on works here, and the fixture starts, breaks and stops it reliably.

Each test has its own 3-server cluster (NatsClusterTestCase), bounded in time, and stops it.
"""

import os
import signal
import subprocess
import time
import unittest

import nats_cluster
from broker import built_tool, release_only
from nats_cluster import JsError, KvBucket, NatsCluster, NatsClusterTestCase, wait_interest

# JetStream's error for a failed expected-sequence check: "wrong last sequence: N"
# (JSStreamWrongLastSequenceErrF in nats-server's server/errors.json).
JS_WRONG_LAST_SEQUENCE = 10071


@release_only("never starts ringmq: the NATS cluster fixture, nats-servers and ringmq-nats-bench")
class ClusterForms(NatsClusterTestCase):
    def test_every_server_routes_to_the_others_and_agrees_on_the_meta_leader(self):
        leaders = set()
        ids = {s.monitor("varz")["server_id"]: s.name for s in self.cluster.servers}
        for server in self.cluster.servers:
            routez = server.monitor("routez")
            self.assertEqual(routez["num_routes"], 2, routez)
            names = {ids[r["remote_id"]] for r in routez["routes"]}
            self.assertEqual(names, set(ids.values()) - {server.name})
            meta = server.monitor("jsz")["meta_cluster"]
            self.assertEqual(meta["cluster_size"], 3, meta)
            leaders.add(meta["leader"])
        self.assertEqual(len(leaders), 1)
        self.assertIn(leaders.pop(), {s.name for s in self.cluster.servers})

    def test_client_sees_its_server_and_the_cluster_in_info(self):
        client = self.connect(0)
        self.assertEqual(client.info["server_name"], "n1")
        self.assertEqual(client.info["cluster"], nats_cluster.CLUSTER_NAME)
        self.assertTrue(client.info["jetstream"])
        self.assertTrue(client.info["headers"])

    def test_wait_formed_gives_up_at_its_bound_when_a_server_does_not_answer(self):
        server = self.cluster.servers[2]
        os.kill(server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with self.assertRaisesRegex(AssertionError, "not formed within 0.5s"):
                self.cluster.wait_formed(0.5)
            self.assertLess(time.monotonic() - started, 3.0)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        self.cluster.wait_formed(nats_cluster.RESTART_TIMEOUT)


@release_only("never starts ringmq: the NATS cluster fixture, nats-servers and ringmq-nats-bench")
class FixtureLifeCycle(unittest.TestCase):

    def test_stop_leaves_no_process_and_no_directory(self):
        cluster = NatsCluster(3)
        cluster.start()
        pids, directory = cluster.pids, cluster.directory
        self.assertTrue(os.path.isdir(directory))
        cluster.kill(1)
        cluster.restart(1)
        pids += [cluster.servers[1].pid]
        cluster.stop()
        for pid in pids:
            # Reaped, so not even a zombie: /proc has no entry.
            self.assertFalse(os.path.exists(f"/proc/{pid}"), pid)
        self.assertFalse(os.path.exists(directory))

    def test_one_server_cluster_is_a_standalone_server_with_jetstream(self):
        with NatsCluster(1) as cluster:
            kv = KvBucket(cluster.client(0), "solo")
            kv.create(replicas=1)
            revision = kv.put("k", b"v")
            self.assertEqual(kv.get("k"), (b"v", revision))
            kv.client.close()

    def test_a_server_that_fails_to_start_fails_start_and_is_cleaned_up(self):
        cluster = NatsCluster(3, extra_config="this_is_not_an_option: {\n")
        started = time.monotonic()
        with self.assertRaisesRegex(AssertionError, "exited with status"):
            cluster.start()
        self.assertLess(time.monotonic() - started, 10.0, "an exit is not waited out")
        self.assertIsNone(cluster.directory)
        self.assertTrue(all(s.proc is None for s in cluster.servers))


@release_only("never starts ringmq: the NATS cluster fixture, nats-servers and ringmq-nats-bench")
class CorePubSub(NatsClusterTestCase):
    def test_message_published_on_server_1_reaches_subscribers_on_2_and_3_in_order(self):
        publisher = self.connect(0)
        subscribers = [self.connect(1), self.connect(2)]
        sids = [subscribers[0].sub("sensors.room1.temp"), subscribers[1].sub("sensors.*.temp")]
        for subscriber in subscribers:
            wait_interest(publisher, subscriber)
        for i in range(100):
            publisher.pub("sensors.room1.temp", f"{i}")
        publisher.flush()
        for subscriber, sid in zip(subscribers, sids):
            messages = subscriber.messages(100, timeout=5)
            self.assertEqual([m.payload for m in messages],
                             [f"{i}".encode() for i in range(100)])
            self.assertTrue(all(m.sid == sid and m.subject == "sensors.room1.temp"
                                for m in messages))
            self.assertEqual(subscriber.drain(0.2), [])

    def test_no_echo_client_does_not_get_its_own_messages_but_others_do(self):
        # ringmq publishes each local message once with echo off ("never back to itself").
        node = self.connect(0, echo=False)
        other = self.connect(1)
        node.sub("t.x")
        other.sub("t.x")
        wait_interest(node, other)
        node.flush()
        node.pub("t.x", b"m")
        node.flush()
        self.assertEqual(other.next_msg(5).payload, b"m")
        self.assertEqual(node.drain(0.3), [])

    def test_queue_group_members_on_different_servers_get_each_message_exactly_once(self):
        publisher = self.connect(0)
        members = [self.connect(1), self.connect(1), self.connect(2), self.connect(2)]
        for member in members:
            member.sub("jobs.run", queue="workers")
        for member in members:
            wait_interest(publisher, member)
        count = 200
        for i in range(count):
            publisher.pub("jobs.run", f"{i}")
        publisher.flush()
        got = []
        deadline = time.monotonic() + 5
        while len(got) < count and time.monotonic() < deadline:
            for member in members:
                got += [(members.index(member), m.payload) for m in member.drain(0.05)]
        got += [(members.index(m), x.payload) for m in members for x in m.drain(0.3)]
        payloads = sorted(int(p) for _, p in got)
        self.assertEqual(payloads, list(range(count)), "each message exactly once")
        servers_reached = {0 if i < 2 else 1 for i, _ in got}
        self.assertEqual(servers_reached, {0, 1}, "both servers' members got messages")


@release_only("never starts ringmq: the NATS cluster fixture, nats-servers and ringmq-nats-bench")
class KeyValue(NatsClusterTestCase):
    def bucket(self, index, name="owners"):
        return KvBucket(self.connect(index), name)

    def test_put_on_server_1_is_read_on_server_3(self):
        kv1 = self.bucket(0)
        info = kv1.create(replicas=3)
        self.assertEqual(info["config"]["num_replicas"], 3)
        revision = kv1.put("client-a", b"node-1")
        kv3 = self.bucket(2)
        self.assertEqual(kv3.get("client-a"), (b"node-1", revision))
        self.assertIsNone(kv3.get("client-b"))
        stream = kv3.info()
        self.assertEqual(len(stream["cluster"].get("replicas", [])), 2, stream["cluster"])

    def test_put_with_a_stale_expected_revision_fails(self):
        kv1 = self.bucket(0)
        kv1.create(replicas=3)
        kv3 = self.bucket(2)
        first = kv1.put("client-a", b"node-1", expected_revision=0)  # create only if absent
        with self.assertRaises(JsError) as absent:
            kv3.put("client-a", b"node-3", expected_revision=0)
        self.assertEqual(absent.exception.err_code, JS_WRONG_LAST_SEQUENCE)
        second = kv3.put("client-a", b"node-3", expected_revision=first)
        self.assertGreater(second, first)
        # Node 1 still believes it owns the client at `first`: its compare-and-set loses.
        with self.assertRaises(JsError) as stale:
            kv1.put("client-a", b"node-1-again", expected_revision=first)
        self.assertEqual(stale.exception.err_code, JS_WRONG_LAST_SEQUENCE)
        self.assertEqual(kv1.get("client-a"), (b"node-3", second))
        # Another key's revisions are its own: the check is per subject.
        other = kv1.put("client-b", b"node-1", expected_revision=0)
        self.assertEqual(kv3.get("client-b"), (b"node-1", other))

    def test_killing_one_server_keeps_kv_readable_and_writable_on_the_others(self):
        kv = self.bucket(0)
        kv.create(replicas=3)
        revision = kv.put("client-a", b"v1")
        # The worst case for quorum: the stream's leader goes.
        leader = kv.info()["cluster"]["leader"]
        index = next(i for i, s in enumerate(self.cluster.servers) if s.name == leader)
        self.cluster.kill(index)
        survivors = [i for i in range(3) if i != index]
        kv_a, kv_b = self.bucket(survivors[0]), self.bucket(survivors[1])
        self.assertEqual(nats_cluster.js_retry(lambda: kv_a.get("client-a")),
                         (b"v1", revision))
        new_revision = nats_cluster.js_retry(
            lambda: kv_a.put("client-a", b"v2", expected_revision=revision))
        self.assertEqual(nats_cluster.js_retry(lambda: kv_b.get("client-a")),
                         (b"v2", new_revision))
        # Core messages between the survivors flow on.
        publisher, subscriber = self.connect(survivors[0]), self.connect(survivors[1])
        subscriber.sub("after.kill")
        wait_interest(publisher, subscriber)
        publisher.pub("after.kill", b"x")
        self.assertEqual(subscriber.next_msg(5).payload, b"x")
        # The killed server comes back with its store and catches up.
        self.cluster.restart(index)
        kv_back = self.bucket(index)
        self.assertEqual(nats_cluster.js_retry(lambda: kv_back.get("client-a")),
                         (b"v2", new_revision))


def nats_bench_binary():
    return built_tool("bench", "nats", "ringmq-nats-bench")


def parse_result(line):
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


@release_only("never starts ringmq: the NATS cluster fixture, nats-servers and ringmq-nats-bench")
class NatsBenchTool(NatsClusterTestCase):
    """ringmq-nats-bench (the core NATS reference of docs/cluster-reference.md) across two of
    the fixture's servers: it runs, verifies every message and counts the servers' CPU."""

    def run_bench(self, *args):
        servers = self.cluster.servers
        argv = [nats_bench_binary(), *args, "--pub-port", str(servers[0].port),
                "--sub-port", str(servers[1].port), "--server-pid", str(servers[0].pid),
                "--server-pid", str(servers[1].pid), "--duration", "1", "--warmup", "0.5",
                "--drain", "2"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr

    def test_pairs_across_two_servers_lose_nothing_and_count_both_servers_cpu(self):
        status, out, err = self.run_bench("pairs", "--publishers", "10", "--window", "8")
        self.assertEqual(status, 0, out + err)
        result = parse_result(out)
        self.assertGreater(int(result["delivered"]), 1000, out)
        self.assertEqual((result["gaps"], result["reordered"], result["stalls"]), ("0", "0", "0"))
        self.assertEqual(len(result["server_cpu_per_pid_s"].split(",")), 2, out)
        self.assertGreater(float(result["server_cpu_s"]), 0, out)

    def test_fixed_rate_fanin_delivers_the_offered_load(self):
        # 5 publishers x 200 msgs/s, 2 subscribers each getting every message: 2,000 msgs/s.
        status, out, err = self.run_bench("fanin", "--publishers", "5", "--subscribers", "2",
                                          "--rate", "200")
        self.assertEqual(status, 0, out + err)
        # Counted by arrival in a 1 s window: what was in flight when it opened (up to 16 per
        # publisher and subscriber) and a generator behind its schedule on a loaded machine
        # (catching up at once) arrive in it too. Unpaced, the same run delivers over 100,000.
        self.assertGreater(float(parse_result(out)["delivered_per_s"]), 1600, out)
        self.assertLess(float(parse_result(out)["delivered_per_s"]), 2600, out)

    def test_stream_publishes_are_acknowledged_in_order_and_stored(self):
        status, out, err = self.run_bench("stream", "--publishers", "4", "--window", "8",
                                          "--kv-replicas", "3", "--kv-bucket", "check")
        self.assertEqual(status, 0, out + err)
        result = parse_result(out)
        self.assertEqual((result["errors"], result["reordered"]), ("0", "0"), out)
        self.assertGreater(int(result["delivered"]), 100, out)
        info = KvBucket(self.connect(2), "unused")
        stream = nats_cluster.js_call(info.client, "$JS.API.STREAM.INFO.STREAM_check")
        self.assertEqual(stream["config"]["num_replicas"], 3)
        self.assertGreaterEqual(stream["state"]["messages"], int(result["delivered"]))

    def test_bad_arguments_are_a_setup_error(self):
        done = subprocess.run([nats_bench_binary(), "fanin", "--payload", "8"],
                              capture_output=True, text=True, timeout=10)
        self.assertEqual(done.returncode, 2)
        self.assertIn("Usage", done.stderr)

    def test_kv_compare_and_set_puts_land_in_the_replicated_bucket(self):
        status, out, err = self.run_bench("kv", "--publishers", "5", "--kv-replicas", "3",
                                          "--kv-bucket", "benchcheck")
        self.assertEqual(status, 0, out + err)
        result = parse_result(out)
        self.assertEqual(result["errors"], "0", out)
        self.assertGreater(int(result["delivered"]), 10, out)
        # Every key's last put is in the bucket, on another server than the one written to.
        kv = KvBucket(self.connect(2), "benchcheck")
        self.assertEqual(kv.info()["config"]["num_replicas"], 3)
        for key in range(5):
            value, revision = nats_cluster.js_retry(lambda: kv.get(f"c{key}"))
            self.assertEqual(len(value), 64)
            self.assertGreater(revision, 0)
        self.assertEqual(kv.info()["state"]["messages"], 5)
