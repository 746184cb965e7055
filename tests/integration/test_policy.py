"""Connection policy per source address and connection-event logging (docs/connect-admission.md).

max_connections_per_address counts open TCP connections from one address, CONNECT or not;
max_connect_rate_per_address counts CONNECTs per one-second window. Both refuse with CONNACK
0x03 (or a silent close) and are counted by reason. Every client here is 127.0.0.1.
"""

import re
import socket
import time

import mqtt_raw as m
from broker import BrokerTestCase, is_mosquitto


class PerAddressConnections(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq policy")

    def test_connection_beyond_per_address_limit_refused_0x03_then_slot_reused(self):
        b = self.start_broker("--max-connections-per-address", "3")
        clients = [m.connect_client(b.port, f"a{i}") for i in range(3)]
        with m.connect_client(b.port, "a3", expect=0x03) as s:
            m.expect_eof(s)
        m.disconnect(clients.pop())
        # The closed connection's count is given back (close is asynchronous: allow a moment).
        deadline = time.monotonic() + 5
        while True:
            s = m.open_socket(b.port)
            s.sendall(m.connect("a4"))
            pkt = m.read_packet(s)
            if pkt.raw == m.connack(0) or time.monotonic() > deadline:
                break
            s.close()
            time.sleep(0.05)
        self.assertEqual(pkt.raw, m.connack(0), "a slot freed by a DISCONNECT is reusable")
        m.disconnect(s)
        for c in clients:
            m.disconnect(c)
        counters = b.stop()
        self.assertGreaterEqual(counters["connect_address_connection_limit"], 1)
        self.assert_counters(counters, connect_address_connection_limit=None,
                             connect_accepted=4)

    def test_half_open_connections_count_toward_the_address_limit(self):
        # Sockets that never send CONNECT (a slow-loris) hold their address's slots too.
        b = self.start_broker("--max-connections-per-address", "2", "--threads", "2")
        idle = [m.open_socket(b.port) for _ in range(2)]
        time.sleep(0.2)  # let both shards take their sockets
        with m.connect_client(b.port, "late", expect=0x03) as s:
            m.expect_eof(s)
        for s in idle:
            s.close()
        self.assert_counters(b.stop(), connect_address_connection_limit=1)

    def test_per_address_limit_silent_policy_closes_without_connack(self):
        b = self.start_broker("--max-connections-per-address", "1", "--reject-policy", "silent")
        with m.connect_client(b.port, "first") as first:
            with m.open_socket(b.port) as s:
                s.sendall(m.connect("second"))
                m.expect_eof(s, what="a silent close beyond the per-address limit")
            m.disconnect(first)
        self.assert_counters(b.stop(), connect_address_connection_limit=1,
                             connect_closed_silent_policy=1, connect_accepted=1)

    def test_zero_means_no_per_address_limit(self):
        b = self.start_broker("--max-connections-per-address", "0")
        clients = [m.connect_client(b.port, f"z{i}") for i in range(20)]
        for c in clients:
            m.disconnect(c)
        self.assert_counters(b.stop(), connect_accepted=20)


class PerAddressRate(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq policy")

    def test_connects_beyond_rate_refused_0x03_and_allowed_again_next_second(self):
        rate = 5
        b = self.start_broker("--max-connect-rate-per-address", str(rate))
        accepted = refused = 0
        start = time.monotonic()
        for i in range(30):
            with m.open_socket(b.port) as s:
                s.sendall(m.connect(f"r{i}"))
                pkt = m.read_packet(s)
                if pkt.raw == m.connack(0):
                    accepted += 1
                    m.disconnect(s)
                else:
                    self.assertEqual(pkt.raw, m.connack(0x03))
                    refused += 1
                    m.expect_eof(s)
        windows = int(time.monotonic() - start) + 2  # one-second windows the burst can touch
        self.assertGreaterEqual(accepted, 1)
        self.assertLessEqual(accepted, rate * windows)
        self.assertGreater(refused, 0)
        time.sleep(1.1)
        with m.connect_client(b.port, "after") as s:
            m.disconnect(s)
        self.assert_counters(b.stop(), connect_address_rate_limit=refused,
                             connect_accepted=accepted + 1)


class ConnectionEventLogging(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq logging")

    def test_refused_connect_logged_at_info_with_address_client_and_reason(self):
        b = self.start_broker("--client-id-prefixes", "ok-", log_level="info")
        with m.connect_client(b.port, "bad\nid", expect=0x02) as s:
            m.expect_eof(s)
        line = b.wait_for_log(r"connect from 127\.0\.0\.1:\d+ .*refused: client_id_not_allowed")
        self.assertIsNotNone(line, b.stderr_tail())
        self.assertIn(r"(client bad\nid)", line, "the client id is escaped, not a line break")
        self.assertIn("CONNACK 0x02", line)
        self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO ")
        b.stop()

    def test_accepted_connection_logged_with_client_id_and_address(self):
        b = self.start_broker(log_level="info")
        with m.connect_client(b.port, "logme") as s:
            m.disconnect(s)
        self.assertIsNotNone(b.wait_for_log(r"client logme connected from 127\.0\.0\.1:\d+"),
                             b.stderr_tail())
        b.stop()

    def test_refusal_storm_logs_at_most_a_few_lines_per_second_at_info(self):
        b = self.start_broker(log_level="info", threads=1)
        n = 300
        start = time.monotonic()
        for i in range(n):
            with m.open_socket(b.port) as s:
                s.sendall(m.connect(f"s{i}", level=9))
                m.read_packet(s)
        elapsed = time.monotonic() - start
        time.sleep(1.1)  # a new window: the next event first reports what the last one left out
        with m.connect_client(b.port, "tail") as s:
            m.disconnect(s)
        self.assertIsNotNone(b.wait_for_log(r"client tail connected"), b.stderr_tail())
        counters = b.stop()
        text = b.stderr()
        refused_lines = len(re.findall(r"refused: unsupported_protocol", text))
        self.assertGreater(refused_lines, 0)
        self.assertLessEqual(refused_lines, 10 * (int(elapsed) + 2),
                             "at most 10 connection lines per second per shard at info")
        summaries = [int(x) for x in re.findall(r"(\d+) connection events not logged", text)]
        self.assertTrue(summaries, "left-out lines are reported")
        self.assertEqual(refused_lines + sum(summaries), n,
                         "every refusal is either logged or counted in a summary line")
        self.assert_counters(counters, connect_unsupported_protocol=n, connect_accepted=1)

    def test_debug_logs_every_refusal(self):
        b = self.start_broker(log_level="debug", threads=1)
        n = 50
        for i in range(n):
            with m.open_socket(b.port) as s:
                s.sendall(m.connect(f"d{i}", level=9))
                m.read_packet(s)
        counters = b.stop()
        self.assertEqual(len(re.findall(r"refused: unsupported_protocol", b.stderr())), n)
        self.assert_counters(counters, connect_unsupported_protocol=n)
