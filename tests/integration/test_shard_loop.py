"""The shard loop's own health: stall detection (stall_warning_ms), and no mail or hand-off left
waiting for an idle shard's tick (its doorbell is rung within the iteration that pushed)."""

import re
import statistics
import time

import mqtt_raw as m
from broker import BrokerTestCase, is_mosquitto
from test_auth import home_shard
from test_metrics import scrape, total

# One SUBSCRIBE of this many filters is handled inside one loop iteration (every filter goes
# into the shared trie before the SUBACK): many milliseconds of work on any machine.
FILTERS = 10_000
STALL_LINE = re.compile(
    r"WARN +shard 0: loop iteration took \d+ ms: \d+ completions, \d+ mailbox records, "
    r"\d+ timers fired, \d+ sessions and \d+ connections flushed; slowest phase: "
    r"(completions|mailboxes|timers|housekeeping|sessions|connections) \(\d+ ms\) "
    r"\(stall_warning_ms 1; \d+ stalls not logged since the last warning\)")


class StallDetection(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq stall detection only")

    def big_subscribe(self, b):
        with m.connect_client(b.port, "stall") as sock:
            filters = [(f"stall/{i:05d}", 0) for i in range(FILTERS)]
            m.send(sock, m.subscribe(1, filters))
            m.expect_packet(sock, m.suback(1, [0] * FILTERS), timeout=60,
                            what=f"SUBACK for {FILTERS} filters")
            m.disconnect(sock)

    def test_long_iteration_is_counted_logged_and_measured(self):
        b = self.start_broker("--stall-warning-ms", "1", threads=1, metrics=True)
        self.big_subscribe(b)
        samples = scrape(b.metrics_url())
        self.assertGreater(total(samples, "ringmq_loop_iteration_max_microseconds"), 1000)
        self.assertGreaterEqual(total(samples, "ringmq_loop_stalls_total"), 1)
        line = b.wait_for_log(STALL_LINE.pattern, timeout=5)
        self.assertIsNotNone(line, f"no stall warning on stderr:\n{b.stderr_tail()}")
        counters = b.stop()
        self.assertGreaterEqual(counters["loop_stalls"], 1)

    def test_zero_turns_measurement_off(self):
        b = self.start_broker("--stall-warning-ms", "0", threads=1, metrics=True)
        self.big_subscribe(b)
        samples = scrape(b.metrics_url())
        self.assertEqual(total(samples, "ringmq_loop_iteration_max_microseconds"), 0)
        self.assertEqual(total(samples, "ringmq_loop_stalls_total"), 0)
        self.assertFalse(re.search(r"loop iteration took", b.stderr()))
        self.assertEqual(b.stop()["loop_stalls"], 0)


# An idle shard sleeps up to one tick (100 ms) when nothing wakes it, so mail or a hand-off
# whose doorbell was never rung waits 50 ms on average: a median (or third quartile) above this
# bound means doorbells are being lost, not that the machine is slow (a round trip here is well
# under a millisecond; under sanitizers on a busy machine a few).
TICK_MS = 100
LOST_DOORBELL_BOUND_MS = TICK_MS / 4
ROUNDS = 100


def ids_homed_on(shard, shards, prefix, count):
    ids = []
    for i in range(100_000):
        client_id = f"{prefix}-{i}"
        if home_shard(client_id, shards) == shard:
            ids.append(client_id)
            if len(ids) == count:
                return ids
    raise AssertionError(f"no {count} ids homed on shard {shard}")


class Doorbells(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq shards only")

    def test_cross_shard_delivery_to_an_idle_shard_is_not_left_for_its_tick(self):
        # Publisher on shard 0, subscriber on shard 1; between rounds both shards go back to
        # sleep, so every delivery needs shard 1 woken by its doorbell.
        b = self.start_broker(threads=2)
        [pub_id] = ids_homed_on(0, 2, "bell-pub", 1)
        [sub_id] = ids_homed_on(1, 2, "bell-sub", 1)
        with m.Client(b.port, sub_id) as sub, m.Client(b.port, pub_id) as pub:
            sub.subscribe([("bell/t", 1)])
            round_trips_ms = []
            for i in range(ROUNDS):
                time.sleep(0.01)  # both shards idle
                start = time.monotonic()
                pub.send(m.publish("bell/t", b"%d" % i, qos=1, packet_id=i + 1))
                [got] = sub.receive(1, timeout=5, what=f"round {i}")
                round_trips_ms.append((time.monotonic() - start) * 1000)
                self.assertEqual(got.payload, b"%d" % i)
                pub.expect_reply(m.ack(m.PUBACK, i + 1), f"PUBACK {i + 1}")
            sub.disconnect()
            pub.disconnect()
        median = statistics.median(round_trips_ms)
        self.assertLess(median, LOST_DOORBELL_BOUND_MS,
                        f"median cross-shard delivery {median:.1f} ms over {ROUNDS} rounds: "
                        f"doorbells to the idle shard are lost (its tick is {TICK_MS} ms)")
        counters = b.stop()
        self.assert_counters_at_least(counters, publish_sent_qos1=ROUNDS)

    def test_handed_off_connection_is_served_without_waiting_for_a_tick(self):
        # Which shard accepts a socket is the kernel's choice (SO_REUSEPORT), so about half of
        # these connections are handed to their home shard through a mailbox; the hand-off's
        # doorbell is rung after the connection flush that pushed it.
        b = self.start_broker(threads=2)
        ids = ids_homed_on(0, 2, "bell-home0", ROUNDS // 4) + ids_homed_on(1, 2, "bell-home1",
                                                                           ROUNDS // 4)
        connect_ms = []
        for client_id in ids:
            time.sleep(0.01)  # both shards idle
            start = time.monotonic()
            with m.Client(b.port, client_id) as client:
                connect_ms.append((time.monotonic() - start) * 1000)
                client.disconnect()
        third_quartile = statistics.quantiles(connect_ms, n=4)[2]
        self.assertLess(third_quartile, LOST_DOORBELL_BOUND_MS,
                        f"third quartile of CONNECT to CONNACK {third_quartile:.1f} ms: hand-off "
                        f"doorbells are lost (an idle shard's tick is {TICK_MS} ms)")
        counters = b.stop()
        self.assert_counters_at_least(counters, connections_handed_off=1)
