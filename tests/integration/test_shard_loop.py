"""The shard loop's own health: stall detection (stall_warning_ms)."""

import re

import mqtt_raw as m
from broker import BrokerTestCase, is_mosquitto
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
