"""Memory per idle connection (issue 12 target: broker RSS per idle connection <= 512 B).

Opens 2 x HALF idle connections with 17-byte client ids (as ringmq-bench's idle scenario:
longer than std::string's 15 inline bytes) and reads the broker's RSS after each half. The
figure is the growth over the second half divided by its connections: by then the memory the
broker holds whatever the number of connections but makes resident on first use (each shard's
provided receive buffers, 2 MiB by default, are not zeroed up front) is resident, so it is not
divided among the connections (docs/performance.md, "Memory per idle connection").

Without sanitizers the figure must be at most 512 B; under ASan/TSan (redzones, shadow memory)
only that every connection was served and counted.
"""

import resource
import socket
import time

import mqtt_raw as m
from broker import BrokerTestCase, is_sanitized

HALF = 3000
BOUND_BYTES = 512


def open_idle(port, first, count):
    """`count` connections with CONNECTs pipelined, then every CONNACK 0 read. Returns them."""
    socks = []
    for i in range(first, first + count):
        s = socket.create_connection((m.HOST, port), timeout=m.TIMEOUT)
        s.sendall(m.connect(f"rb123456-i{i:05d}-0"))  # 17 bytes
        socks.append(s)
    for s in socks:
        m.expect_connack(s, 0)
    return socks


class IdleMemory(BrokerTestCase):
    def test_rss_per_idle_connection_is_at_most_512_bytes(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * HALF + 500
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        self.assertGreaterEqual(resource.getrlimit(resource.RLIMIT_NOFILE)[0], want,
                                "RLIMIT_NOFILE too low for the connections")
        b = self.start_broker("--max-connections", str(2 * HALF + 100), log_level="warning")
        socks = []
        try:
            socks += open_idle(b.port, 0, HALF)
            time.sleep(0.3)  # freed hand-off records and receive bookkeeping settle
            rss_half_kib = b.status_kib("VmRSS")
            socks += open_idle(b.port, HALF, HALF)
            time.sleep(0.3)
            rss_full_kib = b.status_kib("VmRSS")
            per_connection = (rss_full_kib - rss_half_kib) * 1024 / HALF
            # Every connection is still served: a PINGREQ on the first and the last is answered.
            m.ping(socks[0])
            m.ping(socks[-1])
            if not is_sanitized():
                self.assertLessEqual(
                    per_connection, BOUND_BYTES,
                    f"RSS {rss_half_kib} KiB at {HALF} idle connections, {rss_full_kib} KiB at "
                    f"{2 * HALF}: {per_connection:.0f} B per connection")
        finally:
            for s in socks:
                s.close()
        self.assert_counters(b.stop(), connect_accepted=2 * HALF, connections_accepted=2 * HALF,
                             sessions_created=2 * HALF, connections_handed_off=None,
                             client_disconnects=0)
