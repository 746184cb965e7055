#!/usr/bin/python3
"""A storm of refused CONNECTs while subscribers receive a QoS 1 stream.

    /usr/bin/python3 scripts/overload/refused_storm.py --binary build/ringmq \
        [--refusals 50000] [--subscribers 100] [--rate 200] [--storm-workers 2]

S subscribers (QoS 1) on one topic; a publisher process sends a numbered, timestamped QoS 1
stream at RATE messages/s. The stream runs once without the storm (baseline) and once while
storm worker processes open connections whose CONNECT is refused, round robin: protocol level
5 (CONNACK 0x01), a client id outside --client-id-prefixes (0x02), and a wrong password
(0x04, only when the broker has --password-file). Every subscriber must get every message
exactly once, in order (no reconnects happen, so QoS 1 allows no duplicate here); the
end-to-end latency (publisher send -> subscriber receive, CLOCK_MONOTONIC, shared by the
processes of one machine) is reported as p50/p99/max for both phases, with the refusal rate.
"""

import argparse
import multiprocessing
import os
import selectors
import socket
import struct
import subprocess
import tempfile
import time

import common
from common import mqtt_raw as m

TOPIC = "storm/stream"
PREFIX = "ok-"


def has_password_file(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    return "--password-file" in out.stdout + out.stderr


def storm_worker(port, count, with_password, result_queue):
    """Opens `count` connections with refused CONNECTs, waits for each refusal (CONNACK then
    close); puts (refusals by code, seconds) on the queue."""
    codes = {}
    kinds = [m.connect(PREFIX + "v6", level=6),  # 0x01 (no MQTT 6)
             m.connect("intruder")]                                  # 0x02 (prefix)
    if with_password:
        kinds.append(m.connect(PREFIX + "pw", username="storm", password=b"wrong"))  # 0x04
    t0 = time.monotonic()
    for i in range(count):
        for attempt in range(50):
            try:
                s = socket.create_connection((m.HOST, port), timeout=10)
                break
            except OSError:  # ephemeral ports or backlog momentarily exhausted
                time.sleep(0.01 * (attempt + 1))
        else:
            raise RuntimeError("could not connect for the storm")
        with s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(kinds[i % len(kinds)])
            data = b""
            while len(data) < 4:
                chunk = s.recv(4 - len(data))
                if not chunk:
                    break
                data += chunk
            code = data[3] if len(data) == 4 and data[:3] == b"\x20\x02\x00" else None
            codes[code] = codes.get(code, 0) + 1
            if code in (None, 0):
                raise RuntimeError(f"a storm CONNECT was not refused: {data!r}")
    result_queue.put((codes, time.monotonic() - t0))


def publisher(port, count, rate, result_queue):
    """Publishes `count` QoS 1 messages at `rate`/s: payload = seq (4 bytes) + send time."""
    c = m.Client(port, PREFIX + "storm-pub")
    interval = 1.0 / rate
    next_t = time.monotonic()
    for seq in range(count):
        now = time.monotonic()
        if now < next_t:
            time.sleep(next_t - now)
        next_t += interval
        c.publish(TOPIC, struct.pack("!Id", seq, time.monotonic()), qos=1, timeout=30)
    c.disconnect()
    result_queue.put("done")


def receive_stream(subs, count, timeout):
    """Reads `count` messages on every subscriber; returns (latencies, problems)."""
    sel = selectors.DefaultSelector()
    expected = {c.client_id: 0 for c in subs}
    latencies = []
    problems = []
    for c in subs:
        sel.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + timeout
    remaining = len(subs)
    while remaining and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            c = key.data
            c.fill(0.001)
            while True:
                pkt = c._parse_one()
                if pkt is None:
                    break
                now = time.monotonic()
                pub = m.Publish(pkt)
                c.acknowledge(pub)
                seq, sent = struct.unpack("!Id", pub.payload)
                want = expected[c.client_id]
                if seq != want:
                    problems.append(f"{c.client_id}: got seq {seq}, expected {want} "
                                    f"(dup={pub.dup})")
                expected[c.client_id] = seq + 1
                latencies.append(now - sent)
                if seq + 1 == count:
                    sel.unregister(c.sock)
                    remaining -= 1
    sel.close()
    short = {k: v for k, v in expected.items() if v != count}
    if short:
        problems.append(f"{len(short)} subscribers short of {count}: e.g. "
                        f"{list(short.items())[:3]}")
    return latencies, problems


def phase(port, subs, count, rate, storm=None):
    q = multiprocessing.Queue()
    pub = multiprocessing.Process(target=publisher, args=(port, count, rate, q))
    pub.start()
    latencies, problems = receive_stream(subs, count, timeout=count / rate + 60)
    pub.join(30)
    return latencies, problems


def summarize(latencies):
    ms = [x * 1000 for x in latencies]
    return {"p50_ms": round(common.percentile(ms, 50), 2),
            "p99_ms": round(common.percentile(ms, 99), 2),
            "max_ms": round(max(ms), 2), "samples": len(ms)}


def password_refused(port):
    """True if this broker refuses a wrong password (CONNACK 0x04 or 0x05)."""
    with m.open_socket(port) as s:
        s.sendall(m.connect(PREFIX + "probe", username="storm", password=b"wrong"))
        return m.read_packet(s).raw in (m.connack(4), m.connack(5))


def run(b, binary, refusals, subscribers, rate, workers, with_password=False, baseline_s=5):
    subs = [m.Client(b.port, f"{PREFIX}sub-{i}") for i in range(subscribers)]
    for c in subs:
        c.subscribe([(TOPIC, 1)])
    figures = {"subscribers": subscribers, "rate_per_s": rate, "refusals": refusals}
    try:
        # Baseline: a few seconds of the stream alone.
        base_count = max(50, int(rate * baseline_s))
        lat, problems = phase(b.port, subs, base_count, rate)
        if problems:
            raise AssertionError(f"baseline: {problems[:5]}")
        figures["baseline"] = summarize(lat)
        # Storm: the stream runs until the storm is over.
        q = multiprocessing.Queue()
        per = refusals // workers
        procs = [multiprocessing.Process(target=storm_worker,
                                         args=(b.port, per, with_password, q))
                 for _ in range(workers)]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        # Estimate the storm's length from a short probe, then publish through all of it.
        storm_lat, storm_problems, total = [], [], 0
        while any(p.is_alive() for p in procs):
            count = rate * 2
            lat, problems = phase(b.port, subs, count, rate)
            storm_lat += lat
            storm_problems += problems
            total += count
        for p in procs:
            p.join(60)
        storm_s = time.monotonic() - t0
        codes, refused = {}, 0
        for _ in procs:
            got, _secs = q.get(timeout=30)
            for k, v in got.items():
                codes[k] = codes.get(k, 0) + v
                refused += v
        if storm_problems:
            raise AssertionError(f"during the storm: {storm_problems[:5]}")
        figures["storm"] = summarize(storm_lat)
        figures["storm"]["messages_per_subscriber"] = total
        figures["storm_s"] = round(storm_s, 1)
        figures["refusals_per_s"] = round(refused / storm_s)
        figures["refusal_codes"] = {str(k): v for k, v in sorted(codes.items(), key=str)}
        for c in subs:
            c.disconnect()
    finally:
        for c in subs:
            c.close()
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--refusals", type=int, default=50_000)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--storm-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    common.raise_nofile(4096)
    flags = ["--client-id-prefixes", PREFIX]
    with_password = has_password_file(args.binary)
    tmp = None
    if with_password:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".passwd", delete=False)
        tmp.write("storm:not-this-one\n")  # format-agnostic: any line, the password is wrong
        tmp.close()
        flags += ["--password-file", tmp.name]
    b = common.start_broker(args.binary, *flags, threads=args.threads)
    try:
        if with_password and not password_refused(b.port):
            print("note: --password-file is accepted but a wrong password is not refused by "
                  "this build; the storm uses the other two refusals only")
            with_password = False
        figures = run(b, args.binary, args.refusals, args.subscribers, args.rate,
                      args.storm_workers, with_password)
        counters = b.stop()
    finally:
        b.cleanup()
        if tmp:
            os.unlink(tmp.name)
    for name in ("connect_unsupported_protocol", "connect_client_id_not_allowed",
                 "connect_bad_credentials", "dropped_queue_full", "mailbox_overflow"):
        figures[name] = counters.get(name)
    common.report("refused_storm", figures)


if __name__ == "__main__":
    main()
