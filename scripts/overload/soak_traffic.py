#!/usr/bin/python3
"""Mixed traffic for scripts/soak.sh (see there): runs for --minutes, samples the broker's RSS
and file descriptors every 10 s, fails on growth after warm-up or on any traffic error."""

import argparse
import random
import socket
import struct
import threading
import time

import common
from common import mqtt_raw as m

SAMPLE_S = 10


class Traffic:
    def __init__(self, port, stop):
        self.port = port
        self.stop = stop
        self.errors = []
        self.counts = {}
        self.lock = threading.Lock()

    def count(self, name, n=1):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def guard(self, fn, *args):
        def body():
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"{fn.__name__}{args}: {e!r}")
                self.stop.set()
        t = threading.Thread(target=body, daemon=True)
        t.start()
        return t

    def stream(self, qos, index):
        """A publisher and a persistent subscriber pair; the subscriber checks order and, now
        and then, disconnects and resumes its session (nothing may be lost)."""
        topic = f"soak/{qos}/{index}"
        sub_id = f"soak-sub-{qos}-{index}"
        sub = m.Client(self.port, sub_id, clean=False)
        sub.subscribe([(topic, qos)])
        sub.disconnect()
        sub = m.Client(self.port, sub_id, clean=False, session_present=True)
        pub = m.Client(self.port, f"soak-pub-{qos}-{index}")
        seq = 0
        expect = 0
        rng = random.Random(index * 10 + qos)
        last_ping = time.monotonic()
        while not self.stop.is_set():
            for _ in range(20):
                pub.publish(topic, struct.pack("!I", seq) + b"x" * rng.randrange(0, 2000),
                            qos=qos, retain=seq % 50 == 0)
                seq += 1
            if qos == 0:  # QoS 0 may be dropped under a cap: take what comes within a second
                got = []
                try:
                    got = sub.receive(20, timeout=1.0)
                except m.ProtocolError as e:
                    if "timed out" not in str(e):
                        raise
            else:
                got = sub.receive(20, timeout=30)
            for p in got:
                if p.topic != topic:
                    continue
                (n,) = struct.unpack("!I", p.payload[:4])
                if qos > 0 and n != expect and not (p.dup and n < expect):
                    raise AssertionError(f"{topic}: got {n}, expected {expect}")
                expect = max(expect, n + 1)
            self.count(f"qos{qos}_messages", 20)
            if time.monotonic() - last_ping > 20:  # a QoS 0 subscriber sends nothing else
                sub.ping(timeout=30)
                pub.ping(timeout=30)
                last_ping = time.monotonic()
            if rng.random() < 0.05 and qos > 0:
                awaiting = sub.awaiting_pubrel  # the session's state lives on in the client
                sub.disconnect()  # resume the persistent session; queued messages follow
                sub = m.Client(self.port, sub_id, clean=False, session_present=True)
                sub.awaiting_pubrel = awaiting  # the broker resends their PUBREL
                self.count("resumes")
            time.sleep(0.01)
        pub.disconnect()
        sub.disconnect()

    def churn(self):
        """Connect, subscribe, ping, disconnect; or vanish without DISCONNECT (will)."""
        i = 0
        while not self.stop.is_set():
            c = m.Client(self.port, f"soak-churn-{i % 50}", will_topic="soak/will",
                         will_message=b"gone")
            c.subscribe([("soak/churn/#", 1), ("soak/+/0", 0)])
            c.ping()
            if i % 3:
                c.disconnect()
            else:
                c.close()
            i += 1
            self.count("churn_connections")
            time.sleep(0.02)

    def bad(self):
        """Refused and malformed CONNECTs, and garbage after CONNECT."""
        kinds = [m.connect("v6", level=6), m.connect("c", flags=0x03),
                 b"GET / HTTP/1.1\r\n\r\n", m.connect("z" * 300)]
        i = 0
        while not self.stop.is_set():
            with m.open_socket(self.port) as s:
                m.try_send(s, kinds[i % len(kinds)])
                try:
                    while s.recv(64):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
            i += 1
            self.count("bad_connections")
            time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--minutes", type=float, required=True)
    args = parser.parse_args()
    common.raise_nofile(4096)
    b = common.start_broker(args.binary)
    pid = b.proc.pid
    stop = threading.Event()
    traffic = Traffic(b.port, stop)
    threads = [traffic.guard(traffic.stream, qos, i) for qos in (0, 1, 2) for i in range(3)]
    threads += [traffic.guard(traffic.churn), traffic.guard(traffic.bad)]
    total = args.minutes * 60
    warm_at = max(60.0, total / 5)
    t0 = time.monotonic()
    samples = []
    try:
        while time.monotonic() - t0 < total and not stop.is_set():
            time.sleep(min(SAMPLE_S, max(0.0, total - (time.monotonic() - t0))))
            sample = {"t_s": round(time.monotonic() - t0),
                      "rss_kib": common.status_kib(pid, "VmRSS"),
                      "fds": common.open_fds(pid),
                      "threads": common.status_kib(pid, "Threads")}
            with traffic.lock:
                sample.update(traffic.counts)
            samples.append(sample)
            common.report("soak", sample)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    counters = b.stop()
    b.cleanup()
    failures = list(traffic.errors)
    warm = [s for s in samples if s["t_s"] >= warm_at]
    if len(warm) >= 2:
        first, last = warm[0], warm[-1]
        if last["rss_kib"] > first["rss_kib"] * 1.10 + 8192:
            failures.append(f"RSS grew after warm-up: {first['rss_kib']} -> {last['rss_kib']} KiB")
        if last["fds"] > first["fds"] + 20:
            failures.append(f"fds grew after warm-up: {first['fds']} -> {last['fds']}")
    else:
        failures.append("too short to judge growth: run at least 2 minutes")
    common.report("soak_counters", {k: counters[k] for k in (
        "connect_accepted", "connect_malformed", "protocol_violations", "wills_published",
        "dropped_queue_full", "dropped_bytes_cap", "mailbox_overflow", "session_takeovers")})
    if failures:
        print("soak: FAILED: " + "; ".join(failures[:10]))
        raise SystemExit(1)
    print(f"soak: ok, {len(samples)} samples; RSS {warm[0]['rss_kib']} -> {warm[-1]['rss_kib']} "
          f"KiB and fds {warm[0]['fds']} -> {warm[-1]['fds']} after warm-up at {warm_at:.0f}s")


if __name__ == "__main__":
    main()
