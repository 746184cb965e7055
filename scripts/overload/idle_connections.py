#!/usr/bin/python3
"""N concurrent idle MQTT connections on one broker: all connect, keepalive works, RSS per
idle connection measured.

    /usr/bin/python3 scripts/overload/idle_connections.py --binary build/ringmq \
        [--connections 10000] [--threads 2] [--keepalive 4]

Opens N sockets, pipelines a CONNECT (keepalive K seconds) on each and waits for every
CONNACK 0. Then, for longer than 1.5 x K (the broker's keepalive deadline), sends a PINGREQ
on every connection once per K/2 and expects a PINGRESP for each: every connection must stay
open. A second group of connections that never ping must all be closed by the broker at 1.5 x K
(counted keepalive_timeout). Reports broker RSS before, after connecting, and the increase per
idle connection (from /proc/PID/status), and its open file descriptors.
"""

import argparse
import selectors
import socket
import sys
import time

import common
from common import mqtt_raw as m


class Crowd:
    """Many raw connections driven by one selector."""

    def __init__(self, port, n, prefix, keepalive):
        self.socks = []
        self.bufs = {}
        self.sel = selectors.DefaultSelector()
        for i in range(n):
            s = socket.create_connection((m.HOST, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(m.connect(f"{prefix}{i}", keepalive=keepalive))
            s.setblocking(False)
            self.socks.append(s)
            self.bufs[s.fileno()] = bytearray()
            self.sel.register(s, selectors.EVENT_READ)

    def _readable(self):
        """Yields (socket, bytes) for each socket with something to read within 0.2 s; b"" means
        the server closed it (EOF or reset)."""
        for key, _ in self.sel.select(0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                data = b""
            yield s, data

    def expect_all(self, want, timeout):
        """Reads until every socket received exactly `want` (bytes). Returns the number of
        sockets closed by the server meanwhile (those are unregistered)."""
        pending = {s.fileno() for s in self.socks if s.fileno() >= 0}
        closed = 0
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for s, data in self._readable():
                fd = s.fileno()
                if not data:
                    self.sel.unregister(s)
                    pending.discard(fd)
                    closed += 1
                    continue
                buf = self.bufs[fd]
                buf += data
                if len(buf) >= len(want):
                    if bytes(buf[:len(want)]) != want:
                        raise AssertionError(f"expected {want!r}, got {bytes(buf)!r}")
                    del buf[:len(want)]
                    pending.discard(fd)
        if pending:
            raise AssertionError(f"{len(pending)} connections got no {want!r} within {timeout}s")
        return closed

    def send_all(self, data):
        for s in self.socks:
            if s.fileno() >= 0:
                s.setblocking(True)
                s.sendall(data)
                s.setblocking(False)

    def wait_closed(self, timeout):
        """Waits until the server closed every socket; returns how many it closed."""
        open_ = {s.fileno() for s in self.socks}
        deadline = time.monotonic() + timeout
        while open_ and time.monotonic() < deadline:
            for s, data in self._readable():
                if not data:
                    self.sel.unregister(s)
                    open_.discard(s.fileno())
        return len(self.socks) - len(open_)

    def close(self):
        self.sel.close()
        for s in self.socks:
            s.close()


def run(b, connections, keepalive=4, silent=20):
    """Runs the scenario on broker `b` (broker.Broker); returns the figures, raises on failure."""
    pid = b.proc.pid
    rss_start = common.status_kib(pid, "VmRSS")
    t0 = time.monotonic()
    crowd = Crowd(b.port, connections, "idle-", keepalive)
    quiet = None
    try:
        closed = crowd.expect_all(m.connack(0), timeout=60)
        if closed:
            raise AssertionError(f"{closed} connections closed before their CONNACK")
        connect_s = time.monotonic() - t0
        time.sleep(0.5)
        rss_connected = common.status_kib(pid, "VmRSS")
        fds = common.open_fds(pid)
        quiet = Crowd(b.port, silent, "silent-", keepalive)  # these never ping
        quiet.expect_all(m.connack(0), timeout=30)
        # Ping for longer than the keepalive deadline (1.5 x keepalive): nobody may be closed.
        pings = 0
        end = time.monotonic() + keepalive * 2
        while time.monotonic() < end:
            crowd.send_all(m.PINGREQ)
            closed = crowd.expect_all(m.PINGRESP, timeout=30)
            if closed:
                raise AssertionError(f"{closed} pinging connections closed by the broker")
            pings += 1
            time.sleep(keepalive / 2)
        silent_closed = quiet.wait_closed(timeout=keepalive * 1.5 + 5)
        if silent_closed != silent:
            raise AssertionError(f"only {silent_closed} of {silent} silent connections closed "
                                 f"at keepalive {keepalive}s x 1.5")
        rss_pinged = common.status_kib(pid, "VmRSS")
    finally:
        crowd.close()
        if quiet:
            quiet.close()
    return {
        "connections": connections,
        "connect_all_s": round(connect_s, 2),
        "ping_rounds": pings,
        "rss_start_kib": rss_start,
        "rss_connected_kib": rss_connected,
        "rss_after_pings_kib": rss_pinged,
        "rss_per_idle_connection_bytes": round((rss_connected - rss_start) * 1024 / connections),
        "broker_fds_connected": fds,
        "silent_closed_by_keepalive": silent_closed,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keepalive", type=int, default=4)
    args = parser.parse_args()
    limit = common.raise_nofile(args.connections + 1000)
    if limit < args.connections + 100:
        sys.exit(f"RLIMIT_NOFILE is {limit}: too low for {args.connections} connections")
    b = common.start_broker(args.binary, "--max-connections", str(args.connections + 100),
                            threads=args.threads)
    try:
        figures = run(b, args.connections, args.keepalive)
        counters = b.stop()
    finally:
        b.cleanup()
    figures["keepalive_timeout"] = counters["keepalive_timeout"]
    figures["connect_accepted"] = counters["connect_accepted"]
    common.report("idle_connections", figures)


if __name__ == "__main__":
    main()
