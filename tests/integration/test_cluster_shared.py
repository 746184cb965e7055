"""Shared subscriptions across the cluster as NATS queue groups (docs/cluster.md, "Shared
subscriptions"): three ringmq nodes on a 3-server NATS cluster (test_cluster.ClusterTest's
fixture). A group "$share/{name}/{filter}" (MQTT 5.0 §4.8.2; 3.1.1 clients here) gets each
message once in total across the nodes while NATS is up, its members on every node get some, and
plain subscribers still get every message.

Queue interest travels like plain interest (shard -> NATS server -> routes), so each test first
proves it with probes: publish until every member named got one (a queue group gives each probe
to one member), then drain. Each test uses its own topics and group names.
"""

import time
import unittest

import broker
import mqtt_raw
import nats_cluster
import test_cluster
from test_cluster import ROUTE_TIMEOUT, drain, metric
from test_retained_race import home_shard

SHARDS = 2  # test_cluster.ClusterTest starts its nodes with threads=2
N = 300


def receive_all(clients, total, timeout=15.0):
    """{client_id: [payloads]} until `total` PUBLISHes arrived over all of `clients`, then what
    else comes within a quiet period (so a duplicate is seen)."""
    got = {c.client_id: [] for c in clients}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < total and time.monotonic() < deadline:
        for c in clients:
            for p in drain(c, quiet=0.05):
                got[c.client_id].append(p.payload)
    for c in clients:
        got[c.client_id].extend(p.payload for p in drain(c, quiet=0.3))
    return got


def wait_members(publisher, members, topic, timeout=ROUTE_TIMEOUT):
    """Probes `topic` until each of `members` got at least one probe (their queue subscriptions
    reached the publisher's NATS server), then drains the members."""
    deadline = time.monotonic() + timeout
    waiting = {m.client_id: m for m in members}
    while waiting:
        if time.monotonic() > deadline:
            raise AssertionError(f"{sorted(waiting)} got no probe on {topic} within {timeout}s")
        publisher.publish(topic, b"probe")
        for m in members:
            if drain(m, quiet=0.02):
                waiting.pop(m.client_id, None)
    for m in members:
        drain(m)


def ids_on(shard, base, count):
    """`count` client ids whose home shard is `shard`."""
    out = []
    i = 0
    while len(out) < count:
        cid = f"{base}-{i}"
        if home_shard(cid, SHARDS) == shard:
            out.append(cid)
        i += 1
    return out


class ClusterSharedTest(nats_cluster.NodesOverNats):
    node_flags = test_cluster.ClusterTest.node_flags
    node_threads = SHARDS

    @classmethod
    def nodes_started(cls):
        for node in cls.nodes:  # every shard's share link is up too
            nats_cluster.wait_metric(node, "ringmq_cluster_share_link_events_total", SHARDS,
                                     event="connect")

    client = test_cluster.ClusterTest.client

    def publish_all(self, pub, topic, qos=1):
        payloads = [b"m%04d" % i for i in range(N)]
        for p in payloads:
            pub.publish(topic, p, qos=qos)
        return payloads

    def assert_once_in_total(self, got, payloads):
        everything = [p for v in got.values() for p in v]
        self.assertEqual(len(everything), len(payloads), {k: len(v) for k, v in got.items()})
        self.assertEqual(sorted(everything), sorted(payloads))

    def test_group_on_three_nodes_gets_each_message_once_and_every_member_some(self):
        members = [self.client(i, f"g3-m{i}") for i in range(3)]
        for m in members:
            m.subscribe([("$share/g3/sh3/+", 1)])
        pub = self.client(0, "g3-pub")  # a member on the publisher's node too
        wait_members(pub, members, "sh3/x")
        shared_before = sum(metric(n, "ringmq_cluster_share_messages_total", outcome="delivered")
                            for n in self.nodes)
        payloads = self.publish_all(pub, "sh3/x")
        got = receive_all(members, N)
        self.assert_once_in_total(got, payloads)
        for cid, received in got.items():  # NATS picks about evenly: 100 each expected
            self.assertGreaterEqual(len(received), N // 10, f"{cid}'s share: "
                                    f"{ {k: len(v) for k, v in got.items()} }")
        shared_after = sum(metric(n, "ringmq_cluster_share_messages_total", outcome="delivered")
                           for n in self.nodes)
        self.assertEqual(shared_after - shared_before, N, "every delivery came from NATS's pick")

    def test_group_on_one_node_gets_every_message_of_another(self):
        members = [self.client(1, f"g1-m{i}") for i in range(2)]
        for m in members:
            m.subscribe([("$share/g1/sh1/#", 1)])
        pub = self.client(0, "g1-pub")
        wait_members(pub, members, "sh1/a/b")
        payloads = self.publish_all(pub, "sh1/a/b")
        got = receive_all(members, N)
        self.assert_once_in_total(got, payloads)
        # MQTT-4.7.1-2: "sh1/#" also matches "sh1" (the parent subject, same queue group).
        pub.publish("sh1", b"parent", qos=1)
        parent = receive_all(members, 1, timeout=5)
        self.assertEqual(sorted(p for v in parent.values() for p in v), [b"parent"])

    def test_plain_subscribers_still_get_every_message_at_their_qos(self):
        plain = self.client(2, "pl-plain")
        plain.subscribe([("shp/t", 0)])
        member = self.client(1, "pl-m")
        member.subscribe([("$share/gp/shp/t", 1)])
        pub = self.client(0, "pl-pub")
        test_cluster.wait_route(pub, [plain], "shp/t")
        wait_members(pub, [member], "shp/t")
        drain(plain)
        payloads = self.publish_all(pub, "shp/t", qos=1)
        got_plain = plain.receive(N, timeout=15)
        self.assertEqual([p.payload for p in got_plain], payloads)
        self.assertTrue(all(p.qos == 0 for p in got_plain))  # min(publish 1, subscription 0)
        got_member = []
        deadline = time.monotonic() + 15
        while len(got_member) < N and time.monotonic() < deadline:
            got_member.extend(drain(member, quiet=0.05))
        self.assertEqual([p.payload for p in got_member], payloads, "one member: all, in order")
        self.assertTrue(all(p.qos == 1 and not p.retain for p in got_member))

    def test_member_leaving_stops_its_share(self):
        stay = self.client(1, "lv-stay")
        leave = self.client(2, "lv-leave")
        for m in (stay, leave):
            m.subscribe([("$share/gl/shl", 1)])
        pub = self.client(0, "lv-pub")
        wait_members(pub, [stay, leave], "shl")
        leave.unsubscribe(["$share/gl/shl"])
        # The UNSUB has crossed when a run of probes all reach the member that stays.
        deadline = time.monotonic() + ROUTE_TIMEOUT
        run = 0
        while run < 20:
            self.assertLess(time.monotonic(), deadline, "the left member's share did not stop")
            pub.publish("shl", b"probe", qos=1)
            try:
                stay.receive(1, timeout=0.2)
                run += 1
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                run = 0
        drain(stay)
        payloads = self.publish_all(pub, "shl")
        got = receive_all([stay, leave], N)
        self.assertEqual(got["lv-leave"], [])
        self.assertEqual(got["lv-stay"], payloads)

    def test_groups_are_per_node_while_nats_is_unreachable(self):
        # A node whose NATS server does not answer: its links never become ready, so its
        # groups choose among its own members, each message to one of them (local traffic
        # goes on, as without a cluster).
        node = broker.Broker("--cluster-nats-url", f"nats://127.0.0.1:{nats_cluster.free_port()}",
                             "--cluster-node-name", "alone", threads=SHARDS, metrics=True)
        node.start()
        self.addCleanup(node.stop)
        members = []
        for shard in range(SHARDS):
            cid = ids_on(shard, "alone-m", 1)[0]
            m = mqtt_raw.Client(node.port, cid)
            self.addCleanup(m.close)
            m.subscribe([("$share/ga/sha", 1)])
            members.append(m)
        pub = mqtt_raw.Client(node.port, "alone-pub")
        self.addCleanup(pub.close)
        payloads = self.publish_all(pub, "sha")
        got = receive_all(members, N)
        self.assert_once_in_total(got, payloads)
        self.assertTrue(all(len(v) > 0 for v in got.values()), got.keys())
        self.assertEqual(metric(node, "ringmq_cluster_share_link_events_total",
                                event="connect"), 0)

    def test_nats_gives_no_queue_message_to_its_publisher_without_echo(self):
        # Why the queue subscriptions live on a second link: nats-server (2.9 here) skips a
        # queue subscription of the publishing connection when that connection has echo off,
        # and picks another member; with no other member the message is dropped.
        pub = self.cluster.client(0, echo=False)
        self.addCleanup(pub.close)
        pub.sub("nq.t", queue="q")
        pub.flush()
        for i in range(20):
            pub.pub("nq.t", b"m%d" % i)
        pub.flush()
        self.assertEqual(pub.drain(0.3), [], "the publisher's own queue subscription")
        other = self.cluster.client(1)
        self.addCleanup(other.close)
        other.sub("nq.t", queue="q")
        other.flush()
        nats_cluster.wait_interest(pub, other)
        other.drain(0.3)
        for i in range(40):
            pub.pub("nq.t", b"m%d" % i)
        pub.flush()
        self.assertEqual(len(other.messages(40, timeout=5)), 40, "all to the other member")
        self.assertEqual(pub.drain(0.3), [])

    def test_members_on_the_publishers_own_shard_are_served(self):
        # Publisher and the only member share one node and one shard: the shard's main link
        # publishes with echo off, so NATS could never pick a queue subscription on that link;
        # the share link holds it instead.
        shard = 0
        member_id, pub_id = ids_on(shard, "own", 2)
        member = self.client(0, member_id)
        member.subscribe([("$share/go/sho", 1)])
        pub = self.client(0, pub_id)
        wait_members(pub, [member], "sho")
        payloads = self.publish_all(pub, "sho")
        got = receive_all([member], N)
        self.assertEqual(got[member_id], payloads)
        # Another node's publisher reaches it as well.
        remote = self.client(2, "own-remote")
        wait_members(remote, [member], "sho")
        remote.publish("sho", b"from-node2", qos=1)
        self.assertEqual([p.payload for p in member.receive(1, timeout=5)], [b"from-node2"])


if __name__ == "__main__":
    unittest.main()
