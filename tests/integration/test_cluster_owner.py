"""Client ids unique cluster-wide (docs/cluster.md, "Client ids are unique cluster-wide";
MQTT-3.1.4-2): a CONNECT on one node takes the client id over from a connection on another.

The fixture is test_cluster.ClusterTest's (3 NATS servers, 3 nodes with 2 shards each), set up
once for the class; each test uses its own client ids and topics.
"""

import socket
import time
import unittest

import mqtt_raw
import nats_cluster
import test_cluster
from nats_cluster import wait_metric
from test_cluster import QUIET, metric, wait_route
from test_cluster_props import Client as Paho5, publish_properties, prop
from test_mqtt5_connect import connect5, read_connack5, read_disconnect5

TAKEOVER_TIMEOUT = 10.0


def takeovers(node):
    return metric(node, "ringmq_cluster_owner_takeovers_total")


class ClusterOwnerTest(nats_cluster.NodesOverNats):
    node_flags = test_cluster.ClusterTest.node_flags

    @classmethod
    def nodes_started(cls):
        # Every node's claim subscriptions are known at every NATS server before the tests:
        # they were made before the links were ready, so the route of a later subscription of
        # each node (proved by wait_route) comes after them.
        subs = [mqtt_raw.Client(node.port, f"owner-ready-{i}") for i, node in enumerate(cls.nodes)]
        for s in subs:
            s.subscribe([("owner/ready", 0)])
        for i, node in enumerate(cls.nodes):
            with mqtt_raw.Client(node.port, f"owner-ready-pub-{i}") as pub:
                wait_route(pub, [s for j, s in enumerate(subs) if j != i], "owner/ready")
        for s in subs:
            s.close()

    def client(self, node, client_id, **fields):
        c = mqtt_raw.Client(self.nodes[node].port, client_id, **fields)
        self.addCleanup(c.close)
        return c

    def socket5(self, node, client_id, **fields):
        sock = mqtt_raw.open_socket(self.nodes[node].port)
        self.addCleanup(sock.close)
        sock.sendall(connect5(client_id, **fields))
        present, code, _ = read_connack5(sock)
        self.assertEqual(code, 0x00)
        return sock, present

    def test_connect_on_another_node_closes_the_old_connection_and_publishes_its_will(self):
        watcher = self.client(2, "owner-watcher-1")
        watcher.subscribe([("owner/will/1", 1)], granted=[1])
        probe = self.client(0, "owner-probe-1")
        wait_route(probe, [watcher], "owner/will/1")
        before = takeovers(self.nodes[0])
        old = self.client(0, "owner-dev-1", will_topic="owner/will/1", will_message=b"gone",
                          will_qos=1)
        new = self.client(1, "owner-dev-1")
        # MQTT-3.1.4-2: node 0 closes the existing connection (3.1.1: no DISCONNECT to send).
        old.expect_eof(TAKEOVER_TIMEOUT)
        # MQTT-3.1.2-8: it ended without DISCONNECT, so its will is published, on every node.
        got = watcher.receive(1, timeout=TAKEOVER_TIMEOUT)
        self.assertEqual([(g.topic, g.payload) for g in got], [("owner/will/1", b"gone")])
        new.ping()
        self.assertEqual(takeovers(self.nodes[0]), before + 1)
        self.assertGreaterEqual(
            metric(self.nodes[1], "ringmq_cluster_owner_claims_total", event="sent"), 1)

    def test_a_5_0_client_taken_over_from_another_node_gets_disconnect_0x8E(self):
        old, _ = self.socket5(1, "owner-dev5")
        new, present = self.socket5(2, "owner-dev5")
        self.assertEqual(present, 0)
        old.settimeout(TAKEOVER_TIMEOUT)
        self.assertEqual(read_disconnect5(old)[0], 0x8E)  # 5.0: Session taken over
        mqtt_raw.expect_eof(old)
        mqtt_raw.ping(new)

    def test_a_graceful_disconnect_before_the_takeover_is_no_takeover(self):
        before = takeovers(self.nodes[0])
        old = self.client(0, "owner-dev-graceful")
        old.disconnect()
        self.client(1, "owner-dev-graceful").ping()
        time.sleep(QUIET)
        self.assertEqual(takeovers(self.nodes[0]), before)

    def test_simultaneous_connects_on_two_nodes_leave_exactly_one(self):
        for round_ in range(5):
            client_id = f"owner-race-{round_}"
            socks = [mqtt_raw.open_socket(self.nodes[node].port) for node in (0, 1)]
            for sock in socks:
                self.addCleanup(sock.close)
            packet = mqtt_raw.connect(client_id)
            for sock in socks:  # as close together as two sends can be
                sock.sendall(packet)
            for sock in socks:
                mqtt_raw.expect_connack(sock, 0)
            closed = set()
            deadline = time.monotonic() + TAKEOVER_TIMEOUT
            while not closed and time.monotonic() < deadline:
                for i, sock in enumerate(socks):
                    if _closed(sock, 0.05):
                        closed.add(i)
            self.assertEqual(len(closed), 1, f"{client_id}: one of the two must yield")
            survivor = socks[1 - closed.pop()]
            time.sleep(QUIET)  # nothing more happens to the survivor
            mqtt_raw.ping(survivor)

    def test_persistent_session_moves_with_its_subscriptions_and_queued_messages(self):
        node0, node1 = self.nodes[0], self.nodes[1]
        moved = metric(node0, "ringmq_cluster_owner_sessions_ended_total", state="moved")
        merged = metric(node1, "ringmq_cluster_owner_states_total", result="merged")
        old = self.client(0, "owner-persist", clean=False)
        old.subscribe([("owner/persist/#", 1)], granted=[1])
        pubs = [self.client(i, f"owner-persist-pub{i}") for i in range(3)]
        for i in (1, 2):
            wait_route(pubs[i], [old], "owner/persist/probe")
        arrived = metric(node0, "ringmq_cluster_messages_total", direction="in")
        old.disconnect()
        # Published while the client is offline, on every node (node 1 has no session for it
        # yet: its messages reach node 0's offline session over NATS).
        for i, pub in enumerate(pubs):
            for k in range(2):
                pub.publish("owner/persist/x", b"from%d-%d" % (i, k), qos=1)
        deadline = time.monotonic() + TAKEOVER_TIMEOUT
        while metric(node0, "ringmq_cluster_messages_total", direction="in") < arrived + 4:
            self.assertLess(time.monotonic(), deadline, "node 0 did not get the messages")
            time.sleep(0.05)
        # Node 1 answers at once (session present 0: the state follows the CONNACK), and node
        # 0 sends it the subscriptions and the queued messages.
        new = self.client(1, "owner-persist", clean=False, session_present=False)
        got = new.receive(6, timeout=TAKEOVER_TIMEOUT)
        self.assertEqual(sorted(g.payload for g in got),
                         sorted(b"from%d-%d" % (i, k) for i in range(3) for k in range(2)))
        self.assertTrue(all(g.qos == 1 and g.topic == "owner/persist/x" for g in got))
        # Each publisher's messages in their order.
        for i in range(3):
            mine = [g.payload for g in got if g.payload.startswith(b"from%d" % i)]
            self.assertEqual(mine, [b"from%d-0" % i, b"from%d-1" % i])
        # The subscription moved too: new messages reach the client on node 1.
        wait_route(pubs[2], [new], "owner/persist/live")
        new.expect_no_publish(QUIET)
        self.assertEqual(metric(node0, "ringmq_cluster_owner_sessions_ended_total",
                                state="moved"), moved + 1)
        self.assertEqual(metric(node1, "ringmq_cluster_owner_states_total", result="merged"),
                         merged + 1)

    def test_a_burst_of_connects_travels_in_batches_and_takes_every_id_over(self):
        # claims lane: CONNECTs within claim_batch_us of each other share one NATS message
        # (docs/cluster.md, "Claims"); every claim of a batch is judged (MQTT-3.1.4-2).
        count = 40
        ids = [f"owner-burst-{i}" for i in range(count)]
        node0, node1 = self.nodes[0], self.nodes[1]
        taken = takeovers(node0)
        received = metric(node1, "ringmq_cluster_owner_claims_total", event="received")
        claims = metric(node1, "ringmq_cluster_owner_claims_total", event="sent")
        batches = sum(metric(node1, "ringmq_cluster_owner_claim_batches_total", event=e)
                      for e in ("sent_window", "sent_count", "sent_bytes", "sent_resume"))

        def burst(node):
            socks = [mqtt_raw.open_socket(node.port) for _ in ids]
            for sock in socks:
                self.addCleanup(sock.close)
            for sock, client_id in zip(socks, ids):  # every CONNECT before any CONNACK is read
                sock.sendall(mqtt_raw.connect(client_id))
            for sock in socks:
                mqtt_raw.expect_connack(sock, 0)
            return socks

        old = burst(node0)
        # Node 0's own claims reach node 1 before node 1's CONNECTs (no race in this test).
        deadline = time.monotonic() + TAKEOVER_TIMEOUT
        while metric(node1, "ringmq_cluster_owner_claims_total", event="received") < received + count:
            self.assertLess(time.monotonic(), deadline, "node 1 did not get node 0's claims")
            time.sleep(0.02)
        new = burst(node1)
        for i, sock in enumerate(old):
            self.assertTrue(_closed(sock, TAKEOVER_TIMEOUT), f"{ids[i]} kept on node 0")
        for sock in new:
            mqtt_raw.ping(sock)
        self.assertEqual(takeovers(node0), taken + count)
        sent = metric(node1, "ringmq_cluster_owner_claims_total", event="sent") - claims
        sent_batches = sum(metric(node1, "ringmq_cluster_owner_claim_batches_total", event=e)
                           for e in ("sent_window", "sent_count", "sent_bytes", "sent_resume")) - batches
        self.assertEqual(sent, count)
        self.assertLess(sent_batches, sent, "some batch carried more than one claim")

    def test_a_clean_connect_elsewhere_ends_a_persistent_session(self):
        node0 = self.nodes[0]
        ended = metric(node0, "ringmq_cluster_owner_sessions_ended_total", state="dropped")
        old = self.client(0, "owner-clean", clean=False)
        old.subscribe([("owner/clean", 1)], granted=[1])
        old.disconnect()
        self.client(2, "owner-clean")  # MQTT-3.1.2-6: clean session 1 discards the session
        deadline = time.monotonic() + TAKEOVER_TIMEOUT
        while metric(node0, "ringmq_cluster_owner_sessions_ended_total",
                     state="dropped") == ended:
            self.assertLess(time.monotonic(), deadline, "node 0 kept the session")
            time.sleep(0.05)
        # Back on node 0: no session there any more.
        self.client(0, "owner-clean", clean=False, session_present=False)

    def test_a_5_0_session_moves_with_its_messages_properties_MQTT_3_3_2_17_18(self):
        # moveprops lane: the messages queued in a persistent session keep their MQTT 5.0
        # properties when the session moves to another node (src/cluster/session_state.h),
        # User Properties in their order (MQTT-3.3.2-17, -18), the Message Expiry Interval as
        # the time left (MQTT-3.3.2-6), and an expired one is not delivered (5.0:3.3.2.3.3).
        node0, node1 = self.nodes[0], self.nodes[1]
        merged = metric(node1, "ringmq_cluster_owner_states_total", result="merged")
        offline = metric(node0, "ringmq_sessions", state="offline")
        old = Paho5(node0.port, "owner-props", clean_start=False, session_expiry_s=300)
        self.addCleanup(old.client.loop_stop)
        self.assertEqual(old.subscribe("owner/props/#", qos=1), [1])
        local = Paho5(node0.port, "owner-props-pub0")
        self.addCleanup(local.close)
        remote = Paho5(self.nodes[2].port, "owner-props-pub2")
        self.addCleanup(remote.close)
        # Node 2's messages reach node 0's session over NATS (probes until one arrives).
        deadline = time.monotonic() + TAKEOVER_TIMEOUT
        while not old.drain(quiet=0.1):
            self.assertLess(time.monotonic(), deadline, "no route from node 2")
            remote.publish("owner/props/probe", b"probe")
        old.close()
        wait_metric(node0, "ringmq_sessions", offline + 1, state="offline")
        users = [("k", "1"), ("other", "x"), ("k", "2")]  # a name twice: order kept
        every = dict(UserProperty=users, PayloadFormatIndicator=1, ContentType="text/plain",
                     ResponseTopic="owner/props/reply", CorrelationData=b"\x00\r\n\xff",
                     MessageExpiryInterval=300)
        arrived = metric(node0, "ringmq_cluster_messages_total", direction="in")
        remote.publish("owner/props/remote", b"r1", properties=publish_properties(**every))
        local.publish("owner/props/local", b"l1", properties=publish_properties(**every))
        local.publish("owner/props/short", b"s1",
                      properties=publish_properties(MessageExpiryInterval=1))
        local.publish("owner/props/plain", b"p1")
        wait_metric(node0, "ringmq_cluster_messages_total", arrived + 1, direction="in")
        # The short-lived message's interval runs out while the session waits on node 0.
        time.sleep(1.5)
        new = Paho5(node1.port, "owner-props", clean_start=False, session_expiry_s=300)
        self.addCleanup(new.close)
        got = {}
        while len(got) < 3:  # a probe still in flight when node 0 answered moves too
            msg = new.get(timeout=TAKEOVER_TIMEOUT)
            if msg.topic != "owner/props/probe":
                got[msg.topic] = msg
        self.assertEqual(sorted(got), ["owner/props/local", "owner/props/plain",
                                       "owner/props/remote"])
        for topic in ("owner/props/local", "owner/props/remote"):
            msg = got[topic]
            self.assertEqual(msg.qos, 1)
            self.assertEqual(prop(msg, "UserProperty"), users, topic)
            self.assertEqual(prop(msg, "PayloadFormatIndicator"), 1, topic)
            self.assertEqual(prop(msg, "ContentType"), "text/plain", topic)
            self.assertEqual(prop(msg, "ResponseTopic"), "owner/props/reply", topic)
            self.assertEqual(prop(msg, "CorrelationData"), b"\x00\r\n\xff", topic)
            # The time left, counted down across the move, never more than the publisher's.
            expiry = prop(msg, "MessageExpiryInterval")
            self.assertIsNotNone(expiry, topic)
            self.assertLessEqual(expiry, 299, topic)
            self.assertGreaterEqual(expiry, 270, topic)
        plain = got["owner/props/plain"]
        self.assertEqual(plain.payload, b"p1")
        for name in ("UserProperty", "ContentType", "ResponseTopic", "CorrelationData",
                     "MessageExpiryInterval", "PayloadFormatIndicator"):
            self.assertIsNone(prop(plain, name), name)
        # owner/props/short expired while it waited: not delivered.
        self.assertEqual([m.topic for m in new.drain(quiet=QUIET)
                          if m.topic != "owner/props/probe"], [])
        self.assertEqual(metric(node1, "ringmq_cluster_owner_states_total", result="merged"),
                         merged + 1)


def _closed(sock, seconds):
    """True if the peer closed `sock` within `seconds` (bytes before the close are read and
    dropped: a 3.1.1 takeover sends none)."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


if __name__ == "__main__":
    unittest.main()
