"""The connection path's io_uring operations (issue 12, docs/performance.md "Connection paths
against the floor"): how many SQEs a short-lived connection costs, and that the cheaper paths
still serve longer-lived connections."""

import mqtt_raw as m
from broker import BrokerTestCase, is_mosquitto

CYCLES = 100
# Set-up and stop, outside the per-connection cost: the multishot accept, the stop doorbell's
# read, the accept's cancel at stop, and room for a re-armed accept.
FIXED_SQES = 10


class ConnectionOperations(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq's io_uring operation counts only")

    def test_connect_then_disconnect_costs_four_sqes_without_shutdown(self):
        # One shard, so no hand-off. Per connection: the CONNECT's receive, the CONNACK's send,
        # the receive that reads the DISCONNECT, and the close (MQTT-3.14.4-1: the server closes
        # after DISCONNECT). The receive that reads the DISCONNECT is one-shot, so nothing is
        # pending at the close and no shutdown is needed to end a multishot receive first.
        b = self.start_broker(threads=1, log_level="info")
        for i in range(CYCLES):
            sock = m.connect_client(b.port, f"short{i}")
            m.disconnect(sock)
        counters = b.stop()
        self.assert_counters(counters, connections_accepted=CYCLES, connections_closed=CYCLES,
                             connect_accepted=CYCLES,
                             client_disconnects=CYCLES, sessions_created=CYCLES)
        self.assertLessEqual(counters["sqes_submitted"], 4 * CYCLES + FIXED_SQES, counters)
        # Completions: the accept, both receives and the send; a successful close posts none.
        self.assertLessEqual(counters["cqes_reaped"], 4 * CYCLES + FIXED_SQES, counters)

    def test_refusal_sends_connack_and_closes_as_one_linked_pair_MQTT_3_2_2_5(self):
        # Per refusal: the CONNECT's receive, then the CONNACK's send hard-linked to the close,
        # neither of which posts a completion on success. So the only completions are the
        # accept's and the receive's, and the client still reads the CONNACK before the EOF.
        b = self.start_broker(threads=1, log_level="info")
        for _ in range(CYCLES):
            with m.open_socket(b.port) as sock:
                m.send(sock, m.connect("refused", level=9))
                m.expect_connack(sock, 0x01)
                m.expect_eof(sock, what="the broker to close after CONNACK 0x01 (MQTT-3.2.2-5)")
        self.assert_serves(b)
        counters = b.stop()
        self.assert_counters(counters, connections_accepted=CYCLES + 1,
                             connections_closed=CYCLES + 1, connect_unsupported_protocol=CYCLES,
                             connect_accepted=1, client_disconnects=1, sessions_created=1)
        # The refusals' CONNACKs, then the good client's CONNACK and PINGRESP.
        self.assertEqual(counters["bytes_sent"], 4 * CYCLES + 4 + 2, counters)
        self.assertLessEqual(counters["sqes_submitted"], 3 * CYCLES + 4 + FIXED_SQES, counters)
        self.assertLessEqual(counters["cqes_reaped"], 2 * CYCLES + 4 + FIXED_SQES, counters)

    def test_packets_after_the_first_are_read_by_the_multishot_receive(self):
        # The first receive after CONNECT is one-shot; what follows it must still be read, in
        # order, whether it arrives in separate writes or together.
        b = self.start_broker(threads=1)
        with m.connect_client(b.port, "long") as sock:
            for _ in range(5):
                m.ping(sock)
            m.send(sock, m.PINGREQ * 3)
            for _ in range(3):
                m.expect_packet(sock, m.PINGRESP, what="one of three pipelined PINGRESPs")
            m.disconnect(sock)
        counters = b.stop()
        self.assert_counters(counters, connections_accepted=1, connections_closed=1,
                             connect_accepted=1, client_disconnects=1, sessions_created=1)

    def test_takeover_closes_a_connection_whose_first_receive_is_pending_MQTT_3_1_4_2(self):
        # The old connection sent nothing after CONNECT, so its one-shot receive is still
        # pending when the takeover closes it: a shutdown must end that receive, or the old
        # client never sees its connection close.
        b = self.start_broker(threads=1)
        old = m.connect_client(b.port, "twice")
        with old:
            with m.connect_client(b.port, "twice") as new:
                m.expect_eof(old, what="the broker to close the taken-over connection")
                m.ping(new)
                m.disconnect(new)
        counters = b.stop()
        self.assert_counters(counters, connections_accepted=2, connections_closed=2,
                             connect_accepted=2, client_disconnects=1, sessions_created=2,
                             session_takeovers=1)
