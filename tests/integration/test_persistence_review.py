"""Persistence: records the recovery must accept (issue 15, review of the router's logging).

The log's state is rebuilt with DurableState, which refuses a record that does not fit (a
kEnqueue naming a message the log no longer holds). These tests drive the broker into
sequences of records that once did not fit, then crash it and check the next start recovers.

Run with /usr/bin/python3.
"""

import os
import shutil
import signal
import tempfile

import mqtt_raw as raw
from broker import BrokerTestCase


class RecoveryAcceptsTheLogTest(BrokerTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringmq-review-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.flags = ("--persistence", "true", "--data-dir", os.path.join(self.dir, "data"),
                      "--threads", "1")

    def crash_and_restart(self, broker):
        broker.proc.send_signal(signal.SIGKILL)
        broker._reap()
        self.assertEqual(broker.returncode, -signal.SIGKILL)
        b2 = self.start_broker(*self.flags, log_level="info")
        self.assertIn("recovered run", b2.stderr())
        return b2

    def test_retained_message_queued_again_after_its_first_delivery_was_acknowledged(self):
        # The retained QoS 1 message reaches the durable session twice (MQTT-3.8.4-3: a
        # SUBSCRIBE that replaces a subscription sends the retained messages again). Its first
        # delivery was acknowledged, so the log no longer holds the message: the second kEnqueue
        # needs a kMessage again.
        b = self.start_broker(*self.flags)
        pub = raw.connect_client(b.port, "rv-pub")
        raw.send(pub, raw.publish("rv/t", b"value", qos=1, packet_id=1, retain=True))
        raw.expect_packet(pub, raw.ack(4, 1), what="PUBACK")
        sub = raw.connect_client(b.port, "rv-sub", clean=False)
        for round_ in range(2):
            raw.send(sub, raw.subscribe(10 + round_, [("rv/t", 1)]))
            raw.expect_packet(sub, raw.suback(10 + round_, [1]), what="SUBACK")
            got = raw.read_packet(sub)
            self.assertEqual(got.type, 3, got)
            self.assertTrue(got.flags & 0x01, "RETAIN set")
            packet_id = int.from_bytes(got.body[2 + len(b"rv/t"):4 + len(b"rv/t")], "big")
            if round_ == 0:
                raw.send(sub, raw.ack(4, packet_id))
        raw.ping(sub)  # the PUBACK and the second SUBSCRIBE were handled (and logged)
        b2 = self.crash_and_restart(b)
        # The unacknowledged second delivery comes again, with DUP and its packet id.
        sub2 = raw.open_socket(b2.port)
        raw.send(sub2, raw.connect("rv-sub", clean=False))
        raw.expect_connack(sub2, 0, session_present=True)
        got = raw.read_packet(sub2)
        self.assertEqual(got.type, 3, got)
        self.assertTrue(got.flags & 0x08, "DUP set on the resend")
        self.assertEqual(got.body[2 + len(b"rv/t"):4 + len(b"rv/t")],
                         packet_id.to_bytes(2, "big"))
        self.assertTrue(got.raw.endswith(b"value"))
        sub2.close()
        pub.close()
        sub.close()

    def test_qos2_publish_resent_after_a_crash_is_not_delivered_twice(self):
        # docs/persistence.md: an inbound QoS 2 packet id awaiting PUBREL is durable before the
        # PUBREC is sent, so a PUBLISH resent after a restart is acknowledged, not delivered
        # again (MQTT-4.3.3-2); a resend on a new connection before the crash too.
        b = self.start_broker(*self.flags)
        sub = raw.connect_client(b.port, "q2-sub", clean=False)
        raw.send(sub, raw.subscribe(1, [("q2/t", 2)]))
        raw.expect_packet(sub, raw.suback(1, [2]), what="SUBACK")
        pub = raw.connect_client(b.port, "q2-pub", clean=False)
        raw.send(pub, raw.publish("q2/t", b"once", qos=2, packet_id=7))
        raw.expect_packet(pub, raw.ack(5, 7), what="PUBREC")
        pub.close()
        pub = raw.open_socket(b.port)
        raw.send(pub, raw.connect("q2-pub", clean=False))
        raw.expect_connack(pub, 0, session_present=True)
        raw.send(pub, raw.publish("q2/t", b"once", qos=2, packet_id=7, dup=True))
        raw.expect_packet(pub, raw.ack(5, 7), what="PUBREC of the resend")
        got = raw.read_packet(sub)
        self.assertEqual(got.type, 3, got)
        sub_id = int.from_bytes(got.body[2 + len(b"q2/t"):4 + len(b"q2/t")], "big")
        raw.send(sub, raw.ack(5, sub_id))  # PUBREC from the subscriber
        raw.expect_packet(sub, raw.pubrel(sub_id), what="PUBREL")
        raw.send(sub, raw.ack(7, sub_id))  # PUBCOMP
        raw.ping(sub)
        raw.ping(pub)
        b2 = self.crash_and_restart(b)
        sub2 = raw.open_socket(b2.port)
        raw.send(sub2, raw.connect("q2-sub", clean=False))
        raw.expect_connack(sub2, 0, session_present=True)
        pub2 = raw.open_socket(b2.port)
        raw.send(pub2, raw.connect("q2-pub", clean=False))
        raw.expect_connack(pub2, 0, session_present=True)
        raw.send(pub2, raw.publish("q2/t", b"once", qos=2, packet_id=7, dup=True))
        raw.expect_packet(pub2, raw.ack(5, 7), what="PUBREC after the restart")
        raw.send(pub2, raw.pubrel(7))
        raw.expect_packet(pub2, raw.ack(7, 7), what="PUBCOMP")
        raw.expect_silence(sub2, 0.5)  # not delivered a second time
        for sock in (sub, pub, sub2, pub2):
            sock.close()

    def test_repeated_pubrec_from_a_durable_subscriber(self):
        # MQTT-4.3.3-1: a repeated PUBREC makes the PUBREL due again. The log records the
        # delivery's step to "awaiting PUBCOMP" once: a second kPubrec does not fit the state.
        b = self.start_broker(*self.flags)
        sub = raw.connect_client(b.port, "rr-sub", clean=False)
        raw.send(sub, raw.subscribe(1, [("rr/t", 2)]))
        raw.expect_packet(sub, raw.suback(1, [2]), what="SUBACK")
        pub = raw.connect_client(b.port, "rr-pub")
        raw.send(pub, raw.publish("rr/t", b"x", qos=2, packet_id=1))
        raw.expect_packet(pub, raw.ack(5, 1), what="PUBREC")
        got = raw.read_packet(sub)
        self.assertEqual(got.type, 3, got)
        sub_id = int.from_bytes(got.body[2 + len(b"rr/t"):4 + len(b"rr/t")], "big")
        for _ in range(2):
            raw.send(sub, raw.ack(5, sub_id))  # PUBREC
            raw.expect_packet(sub, raw.pubrel(sub_id), what="PUBREL")
        raw.ping(sub)
        b2 = self.crash_and_restart(b)
        # The PUBREL is still owed (no PUBCOMP came): resent after the restart.
        sub2 = raw.open_socket(b2.port)
        raw.send(sub2, raw.connect("rr-sub", clean=False))
        raw.expect_connack(sub2, 0, session_present=True)
        raw.expect_packet(sub2, raw.pubrel(sub_id), what="PUBREL after the restart")
        for sock in (sub, pub, sub2):
            sock.close()
