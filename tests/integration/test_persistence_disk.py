"""Persistence: the log's size (issue 15, docs/persistence.md "max_disk_bytes").

Compaction keeps disk use proportional to the live state: a shard whose segment outgrows its
share of max_disk_bytes (max_disk_bytes / (4 x shards), at least 256 KiB) and four times its last
snapshot starts a new segment with a snapshot and deletes the old one. When the live state
itself is beyond max_disk_bytes, deliveries to durable sessions are refused as queue_full_policy
says (dropped and counted). A graceful stop leaves a final snapshot.

Run with /usr/bin/python3 (Debian's python3-paho-mqtt).
"""

import os
import shutil
import signal
import tempfile
import threading
import time

import paho.mqtt.client as paho

from broker import BrokerTestCase
from test_metrics import scrape, total
from test_retained_race import home_shard

CLIENT_TIMEOUT = 30.0
PAYLOAD = b"p" * 1000


def data_bytes(directory):
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
               if f.endswith(".log"))


class Subscriber:
    """A paho 3.1.1 clean-session-0 subscriber counting what it gets."""

    def __init__(self, port, client_id, topic, qos=1):
        self.got = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = paho.Client(client_id=client_id, clean_session=False,
                                  protocol=paho.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc: self.connected.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.connected.wait(CLIENT_TIMEOUT):
            raise AssertionError(f"{client_id}: no CONNACK")
        if topic is not None:
            result, mid = self.client.subscribe(topic, qos)
            assert result == paho.MQTT_ERR_SUCCESS

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.got.append(message.topic)

    def count(self, topic=None):
        with self.lock:
            return sum(1 for t in self.got if topic is None or t == topic)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def publish(port, client_id, topic, count):
    client = paho.Client(client_id=client_id, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, PAYLOAD, qos=1) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(CLIENT_TIMEOUT)
    acked = sum(1 for info in infos if info.is_published())
    client.disconnect()
    client.loop_stop()
    return acked


def id_on_shard(prefix, shard, shards=2):
    for i in range(1000):
        client_id = f"{prefix}{i}"
        if home_shard(client_id, shards) == shard:
            return client_id
    raise AssertionError("no client id found")


def set_retained(port, client_id, topic, payload):
    client = paho.Client(client_id=client_id, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    info = client.publish(topic, payload, qos=1, retain=True)
    info.wait_for_publish(CLIENT_TIMEOUT)
    assert info.is_published()
    client.disconnect()
    client.loop_stop()


class CompactionTest(BrokerTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringmq-disk-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.data = os.path.join(self.dir, "data")

    def test_compaction_keeps_the_log_near_the_live_state(self):
        # 4 MiB over 2 shards: a segment is compacted past 512 KiB. 4,000 x 1 KB messages to a
        # subscriber that keeps up log about 5 MB; the live state stays tiny.
        # (A Python subscriber may fall behind: its queue must not drop by queue_full_policy.)
        flags = ("--persistence", "true", "--data-dir", self.data,
                 "--max-disk-bytes", str(4 << 20), "--max-queued-messages", "100000")
        b = self.start_broker(*flags, metrics=True, log_level="info")
        sub = Subscriber(b.port, "disk-sub", "disk/#")
        time.sleep(0.3)
        # In rounds of 250 that the subscriber receives before the next: a Python subscriber on
        # a busy machine could otherwise fall thousands behind, and its queue (the live state,
        # in every snapshot) would reach max_disk_bytes, where deliveries are refused by
        # design (persist_dropped_disk_full): that is the other test's subject, not this one's.
        for sent in range(250, 4001, 250):
            self.assertEqual(publish(b.port, f"disk-pub-{sent}", "disk/a", 250), 250)
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while sub.count() < sent and time.monotonic() < deadline:
                time.sleep(0.01)
            if sub.count() != sent:
                samples = scrape(b.metrics_url())
                state = {name: total(samples, name) for name in (
                    "ringmq_queued_messages", "ringmq_inflight_messages",
                    "ringmq_persist_held_acks", "ringmq_persist_pending_bytes",
                    "ringmq_persist_dropped_disk_full_total", "ringmq_persist_disk_bytes")}
                self.fail(f"the subscriber got {sub.count()} of {sent}; broker: {state}")
        time.sleep(0.5)  # the last acknowledgements are logged
        samples = scrape(b.metrics_url())
        self.assertGreaterEqual(total(samples, "ringmq_persist_compactions_total"), 2)
        self.assertGreater(total(samples, "ringmq_persist_bytes_written_total"), 4 << 20)
        self.assertLess(total(samples, "ringmq_persist_disk_bytes"), 4 << 20)
        self.assertEqual(total(samples, "ringmq_persist_dropped_disk_full_total"), 0)
        self.assertLess(data_bytes(self.data), 4 << 20)
        sub.close()
        # After a crash the compacted log still has the session: it gets what follows.
        b.proc.send_signal(signal.SIGKILL)
        b._reap()
        self.assertEqual(b.returncode, -signal.SIGKILL)
        b2 = self.start_broker(*flags, log_level="info")
        self.assertIn("recovered run", b2.stderr())
        sub2 = Subscriber(b2.port, "disk-sub", None)
        self.assertEqual(publish(b2.port, "disk-pub", "disk/b", 10), 10)
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while sub2.count("disk/b") < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        # (disk/a messages whose PUBACK from the subscriber was not yet durable come again.)
        self.assertEqual(sub2.count("disk/b"), 10, "the subscription survived the compactions")
        sub2.close()

    def test_a_retained_deletion_survives_the_compaction_of_the_shard_that_logged_it(self):
        # Shard 0 logs T's value; shard 1 logs its deletion, then compacts (its own traffic
        # outgrows 256 KiB). The compaction snapshot holds the whole retained store
        # (kRetainedAll), so after a crash shard 0's older value does not come back.
        flags = ("--persistence", "true", "--data-dir", self.data,
                 "--max-disk-bytes", str(2 << 20), "--max-queued-messages", "100000")
        b = self.start_broker(*flags, metrics=True, log_level="info")
        set_retained(b.port, id_on_shard("rset", 0), "ret/t", b"old value")
        set_retained(b.port, id_on_shard("rdel", 1), "ret/t", b"")
        sub = Subscriber(b.port, id_on_shard("rsub", 1), "load/#")
        time.sleep(0.3)
        self.assertEqual(publish(b.port, id_on_shard("rpub", 1), "load/a", 1500), 1500)
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while sub.count() < 1500 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        samples = scrape(b.metrics_url())
        self.assertGreaterEqual(total(samples, "ringmq_persist_compactions_total", shard=1), 1)
        self.assertEqual(total(samples, "ringmq_persist_compactions_total", shard=0), 0)
        sub.close()
        b.proc.send_signal(signal.SIGKILL)
        b._reap()
        b2 = self.start_broker(*flags, log_level="info")
        check = Subscriber(b2.port, "rcheck", "ret/#")
        time.sleep(1.0)
        self.assertEqual(check.count(), 0, "the deleted retained message came back")
        check.close()

    def test_max_disk_bytes_refuses_durable_deliveries_and_counts_them(self):
        # An offline subscriber's queue is live state: beyond 1 MiB of log the rest is dropped
        # (queue_full_policy drop), counted, and the publisher is still acknowledged.
        flags = ("--persistence", "true", "--data-dir", self.data,
                 "--max-disk-bytes", str(1 << 20), "--max-queued-messages", "100000",
                 "--threads", "1")
        b = self.start_broker(*flags, metrics=True, log_level="info", threads=1)
        sub = Subscriber(b.port, "full-sub", "full/#")
        time.sleep(0.3)
        sub.close()
        time.sleep(0.3)
        self.assertEqual(publish(b.port, "full-pub", "full/a", 2000), 2000)
        time.sleep(0.5)
        samples = scrape(b.metrics_url())
        dropped = total(samples, "ringmq_persist_dropped_disk_full_total")
        self.assertGreater(dropped, 0)
        self.assertLess(dropped, 2000)
        counters = b.stop()  # graceful: a final snapshot
        self.assertEqual(counters["persist_dropped_disk_full"], dropped)
        b2 = self.start_broker(*flags, log_level="info", threads=1)
        sub2 = Subscriber(b2.port, "full-sub", None)
        expected = 2000 - dropped
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while sub2.count() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        self.assertEqual(sub2.count(), expected,
                         "every delivery not refused was kept, and none of the refused ones")
        sub2.close()


if __name__ == "__main__":
    import unittest
    unittest.main()
