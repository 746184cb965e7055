"""max_memory: the broker-wide memory budget (memory/budget.h, docs/configuration.md).

A publisher floods a broker with large messages for subscribers that never read and for
persistent sessions that are offline, with per-session bounds raised so high that only the
budget can hold memory down. The broker's resident size must stay under max_memory, the
shedding must be counted in its documented order, and a new CONNECT must be refused with 0x03
while the budget is spent. The same flood without a budget is run as a control: it must grow
past the budget, or the test would prove nothing.
"""

import socket
import threading
import time
import urllib.request

import mqtt_raw as m
from broker import BrokerTestCase, is_sanitized

MIB = 1 << 20


def accounted_bytes(b):
    with urllib.request.urlopen(b.metrics_url(), timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("ringmq_memory_accounted_bytes "):
                return int(float(line.split()[1]))
    raise AssertionError("no ringmq_memory_accounted_bytes in /metrics")


class MemoryBudget(BrokerTestCase):
    BUDGET = 96 * MIB
    TOTAL = 400 * MIB  # payload bytes published
    PAYLOAD = 64 << 10
    # Per-session bounds far above the budget, so that the budget is what bites.
    SESSION_FLAGS = ("--max-queued-messages", "10000000", "--max-queued-bytes", str(8 << 30))

    def flood(self, b):
        """Offline and stalled subscribers, a reader that keeps up, then TOTAL bytes of QoS 0
        and QoS 1 messages. Returns (peak sampled RSS KiB, messages the reader got, errors)."""
        for i in range(3):
            with m.Client(b.port, f"mem-offline-{i}", clean=False) as c:
                c.subscribe([("mem/#", 1)])
                c.disconnect()
        stalled = [m.Client(b.port, f"mem-stalled-{i}", rcvbuf=4096) for i in range(4)]
        for i, c in enumerate(stalled):
            c.subscribe([("mem/#", i % 2)])
        reader = m.Client(b.port, "mem-reader")
        reader.subscribe([("mem/#", 0)])
        pub = m.Client(b.port, "mem-pub")
        n = self.TOTAL // self.PAYLOAD
        filler = b"\x5a" * (self.PAYLOAD - 8)
        errors, seen = [], []
        published = threading.Event()

        def publish():
            try:
                for seq in range(n):
                    qos = seq % 2
                    pub.send(m.publish("mem/data", seq.to_bytes(8, "big") + filler, qos=qos,
                                       packet_id=(seq % 65535) + 1 if qos else None))
            except Exception as e:  # noqa: BLE001 (reported by the main thread)
                errors.append(f"publisher: {e!r}")
            published.set()

        def drain_acks():
            # The publisher's PUBACKs are read and discarded, so that it never blocks on them.
            # Blocking reads (the socket is shared with the sending thread, so its timeout is
            # left as it is); the thread ends when the socket is closed.
            while True:
                try:
                    if not pub.sock.recv(1 << 16):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return

        def read():
            # Until the stream is over: the publisher is done and nothing came for 5 s.
            try:
                while True:
                    try:
                        x = reader.next_publish(timeout=5.0)
                    except m.ProtocolError as e:
                        if "timed out" not in str(e):
                            raise
                        if published.is_set():
                            return
                        continue
                    seen.append(int.from_bytes(x.payload[:8], "big"))
            except Exception as e:  # noqa: BLE001
                errors.append(f"reader: {e!r} after {len(seen)} messages")

        threading.Thread(target=drain_acks, daemon=True).start()
        threads = [threading.Thread(target=publish, daemon=True),
                   threading.Thread(target=read, daemon=True)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        peak = 0
        self.peak_accounted = 0
        while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 120:
            peak = max(peak, b.status_kib("VmRSS"))
            if b.metrics_port:
                self.peak_accounted = max(self.peak_accounted, accounted_bytes(b))
            time.sleep(0.02)
        for t in threads:
            t.join(1.0)
        if any(t.is_alive() for t in threads):
            errors.append("publisher or reader hung")
        peak = max(peak, b.status_kib("VmHWM"))
        return peak, seen, errors, (stalled, reader, pub), n

    def test_rss_stays_under_max_memory_and_shedding_is_counted(self):
        b = self.start_broker("--max-memory", str(self.BUDGET), *self.SESSION_FLAGS,
                              metrics=True)
        peak, seen, errors, clients, n = self.flood(b)
        self.assertFalse(errors, errors)
        # What the broker accounts may pass the budget by a little (docs/configuration.md):
        # messages on their way between shards count until the receiving shard sheds them,
        # plus what arrives between two refreshes of a shard's view (1 ms). Measured: up to
        # about 6 % in this flood; 10 % allowed.
        self.assertLess(self.peak_accounted, self.BUDGET * 1.10,
                        f"accounted memory {self.peak_accounted} over max_memory {self.BUDGET}")
        if not is_sanitized():
            # Sanitizer builds hold freed memory in a quarantine and shadow memory besides, so
            # only the accounted figure above applies to them.
            self.assertLess(peak, self.BUDGET >> 10,
                            f"broker peak RSS {peak} KiB over max_memory {self.BUDGET >> 10} KiB")
        # Offline queues hold their share of the budget: accounting it as spent, the broker
        # refuses new clients (0x03) rather than growing.
        sock = m.open_socket(b.port)
        sock.sendall(m.connect("mem-late"))
        m.expect_connack(sock, 3)
        m.expect_eof(sock)
        sock.close()
        # The reader was never cut off: it kept receiving through the whole stream. (A
        # sanitizer build runs several times slower than the flood, so there a one-message
        # backlog of these 64 KiB messages marks the reader as backlogged for most of it: only
        # that it received messages, in order, is checked.)
        tenths = sorted({seq * 10 // n for seq in seen})
        self.assertTrue(seen, "the reading subscriber got nothing")
        if not is_sanitized():
            self.assertEqual(tenths, list(range(10)),
                             f"the reading subscriber got {len(seen)} of {n} messages")
        self.assertEqual(seen, sorted(set(seen)), "the reader's messages out of order")
        for c in clients[0]:
            c.close()
        clients[1].close()
        clients[2].close()
        counters = b.stop()
        self.assert_counters_at_least(counters, dropped_memory_qos0=1, dropped_memory_qos12=1,
                                      connect_memory_budget=1)

    def test_metrics_show_the_budget(self):
        # A larger budget than the flood tests': the idle baseline is about 13 MiB in a release
        # build but about 49 MiB under ASan (its shadow and allocator, plus libssl/libcrypto
        # mapped since issue 14), which must still be well under half of it.
        budget = 160 * MIB
        b = self.start_broker("--max-memory", str(budget), metrics=True)
        with urllib.request.urlopen(b.metrics_url(), timeout=5) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line.startswith("ringmq_memory_"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        self.assertEqual(values.get("ringmq_memory_max_bytes"), float(budget))
        self.assertEqual(values.get("ringmq_memory_pressure"), 0.0)
        accounted = values.get("ringmq_memory_accounted_bytes", 0)
        rss = b.status_kib("VmRSS") << 10
        # The baseline is the resident size at start plus buffers not yet touched, so the
        # accounted total of an idle broker is at least what is resident.
        self.assertGreater(accounted, rss * 0.9, f"accounted {accounted}, resident {rss}")
        self.assertLess(accounted, budget * 0.5, f"an idle broker accounts {accounted}")

    def test_without_a_budget_the_same_flood_grows_past_it(self):
        # The control: shows the flood above would break the bound if the budget did nothing.
        b = self.start_broker(*self.SESSION_FLAGS)
        peak, _seen, errors, clients, _n = self.flood(b)
        self.assertFalse(errors, errors)
        self.assertGreater(peak, self.BUDGET >> 10,
                           f"without max_memory the flood reached only {peak} KiB")
        for c in clients[0]:
            c.close()
        clients[1].close()
        clients[2].close()
        counters = b.stop()
        self.assertEqual((counters["dropped_memory_qos0"], counters["dropped_memory_qos12"]),
                         (0, 0), "shed without a budget")


if __name__ == "__main__":
    import unittest
    unittest.main()
