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
