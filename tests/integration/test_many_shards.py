"""Many shards on few cores: start-up memory, idle cost, cross-shard delivery, CPU pinning.

A shard mesh of N shards has N * (N - 1) mailboxes: their rings live in one mapping that is
resident only where used, each shard drains only the mailboxes that were signalled, and an idle
shard wakes once per tick (100 ms). See docs/architecture.md and docs/performance.md.
"""

import os
import time

import mqtt_raw as m
from broker import BrokerTestCase, is_mosquitto, is_sanitized
from test_auth import home_shard

RSS_BOUND_KIB = 64 << 10  # start-up resident set at 128 shards
IDLE_SECONDS = 5
# CPU time of a whole idle broker over IDLE_SECONDS: ticks cost ~0.2 s for 128 shards (see
# docs/performance.md); a loop that polled instead of sleeping would burn both cores.
IDLE_CPU_BOUND_SECONDS = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), /proc/PID/stat fields 14 and 15."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def shard_threads(pid):
    """{shard index: (tid, Cpus_allowed_list)} of the threads named ringmq/N."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        if not name.startswith("ringmq/"):
            continue
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            allowed = next(line.split(":", 1)[1].strip() for line in f
                           if line.startswith("Cpus_allowed_list:"))
        threads[int(name.split("/", 1)[1])] = (int(tid), allowed)
    return threads


def cpu_list(cpus):
    return ",".join(str(c) for c in sorted(cpus))


def parse_cpu_list(text):
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


class ManyShards(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq shards only")

    def cross_shard_traffic(self, b, shards, subscribers=6, messages=20):
        """Subscribers on distinct home shards, none the publisher's: every message crosses a
        mailbox to each of them (connections also cross one when handed to their home shard)."""
        publisher = "mesh-pub"
        publisher_home = home_shard(publisher, shards)
        ids, homes = [], {publisher_home}
        for i in range(100_000):
            client_id = f"mesh-sub-{i}"
            home = home_shard(client_id, shards)
            if home not in homes:
                homes.add(home)
                ids.append(client_id)
                if len(ids) == subscribers:
                    break
        self.assertEqual(len(ids), subscribers)
        socks = [m.connect_client(b.port, client_id) for client_id in ids]
        try:
            for sock in socks:
                m.send(sock, m.subscribe(1, [("mesh/t", 0)]))
                m.expect_packet(sock, m.suback(1, [0]), what="SUBACK")
            with m.connect_client(b.port, publisher) as pub:
                sent = [m.publish("mesh/t", f"message {i}".encode()) for i in range(messages)]
                for packet in sent:
                    m.send(pub, packet)
                for sock in socks:
                    for packet in sent:
                        m.expect_packet(sock, packet, what="a cross-shard delivery")
                m.disconnect(pub)
            for sock in socks:
                m.disconnect(sock)
        finally:
            for sock in socks:
                sock.close()

    def test_64_shards_start_and_deliver_across_shards(self):
        b = self.start_broker(threads=64)
        self.cross_shard_traffic(b, 64)
        counters = b.stop()
        self.assert_counters_at_least(counters, connections_handed_off=1, publish_sent_qos0=120)
        self.assert_counters(counters, connect_accepted=7, mailbox_full=0, mailbox_overflow=0)

    def test_128_shards_start_small_idle_cheaply_and_deliver_across_shards(self):
        b = self.start_broker(threads=128)
        rss_kib = b.status_kib("VmRSS")
        before = cpu_seconds(b.proc.pid)
        time.sleep(IDLE_SECONDS)
        idle = cpu_seconds(b.proc.pid) - before
        print(f"128 shards: start-up VmRSS {rss_kib} KiB; idle CPU {idle:.2f} s over "
              f"{IDLE_SECONDS} s ({idle / IDLE_SECONDS / 128 * 100:.3f} % of a CPU per shard)")
        if not is_sanitized():  # sanitizer shadow memory and allocators are not ours to bound
            self.assertLess(rss_kib, RSS_BOUND_KIB)
            self.assertLess(idle, IDLE_CPU_BOUND_SECONDS)
        self.cross_shard_traffic(b, 128)
        counters = b.stop()
        self.assert_counters_at_least(counters, connections_handed_off=1, publish_sent_qos0=120)
        self.assert_counters(counters, connect_accepted=7, mailbox_full=0, mailbox_overflow=0)

    def test_cpu_affinity_auto_pins_each_shard_to_one_allowed_cpu(self):
        allowed = sorted(os.sched_getaffinity(0))  # the broker inherits our mask
        shards = len(allowed) + 2  # more shards than CPUs: the assignment wraps around
        b = self.start_broker("--cpu-affinity", "auto", threads=shards)
        threads = shard_threads(b.proc.pid)
        self.assertEqual(sorted(threads), list(range(shards)))
        for index, (_, cpus) in threads.items():
            self.assertEqual(parse_cpu_list(cpus), {allowed[index % len(allowed)]},
                             f"shard {index}")
        self.assertIsNotNone(b.wait_for_log(
            rf"cpu_affinity auto: shard i runs on allowed CPU i mod {len(allowed)} of "
            rf"\[{cpu_list(allowed)}\]"))
        self.assert_serves(b)
        b.stop()

    def test_cpu_affinity_off_leaves_shards_to_the_scheduler(self):
        allowed = set(os.sched_getaffinity(0))
        b = self.start_broker(threads=3)
        threads = shard_threads(b.proc.pid)
        self.assertEqual(sorted(threads), [0, 1, 2])  # named either way
        for index, (_, cpus) in threads.items():
            self.assertEqual(parse_cpu_list(cpus), allowed, f"shard {index}")
        self.assertNotIn("cpu_affinity", b.stderr())
        b.stop()
