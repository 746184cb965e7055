#!/usr/bin/python3
"""A subscriber that stops reading while others keep theirs: broker RSS stays bounded by the
caps, the other subscribers keep their rate, and the drop counters say what happened.

    /usr/bin/python3 scripts/overload/slow_subscriber.py --binary build/ringmq \
        [--seconds 20] [--readers 10] [--payload 4096] [--rate 2000]

One stalled subscriber (a 4 KiB receive buffer it never drains) and R readers subscribe to a
QoS 0 topic and a QoS 1 topic; a publisher sends both at RATE messages/s each for SECONDS.
The broker runs with --max-queued-bytes 1 MiB and --max-queued-messages 1000. Reports the
readers' rate in the first and the second half (they must not drop below 80% of the offered
QoS 1 rate, and every QoS 1 message must reach every reader), the broker's peak RSS against a
bound derived from the caps, and the counters dropped_bytes_cap / dropped_queue_full.
"""

import argparse
import selectors
import struct
import threading
import time

import common
from common import mqtt_raw as m

CAP_BYTES = 1 << 20
CAP_MESSAGES = 1000


def run(b, seconds, readers, payload, rate):
    pid = b.proc.pid
    stalled = m.Client(b.port, "stalled", rcvbuf=4096)
    stalled.subscribe([("slow/q0", 0), ("slow/q1", 1)])
    subs = [m.Client(b.port, f"reader-{i}") for i in range(readers)]
    for c in subs:
        c.subscribe([("slow/q0", 0), ("slow/q1", 1)])
    pub = m.Client(b.port, "slow-pub")
    rss_start = common.status_kib(pid, "VmRSS")
    filler = b"\x5a" * max(0, payload - 12)
    stop = threading.Event()
    errors = []
    sent = {"q0": 0, "q1": 0}

    def publish():
        try:
            interval = 1.0 / rate
            next_t = time.monotonic()
            seq = 0
            end = next_t + seconds
            while time.monotonic() < end:
                now = time.monotonic()
                if now < next_t:
                    time.sleep(next_t - now)
                next_t += interval
                body = struct.pack("!Id", seq, time.monotonic()) + filler
                pub.send(m.publish("slow/q0", body))
                pub.publish("slow/q1", body, qos=1, timeout=30)
                seq += 1
                sent["q0"] = sent["q1"] = seq
        except Exception as e:  # noqa: BLE001
            errors.append(f"publisher: {e!r}")
        finally:
            stop.set()

    got_q1 = {c.client_id: [] for c in subs}
    got_q0 = {c.client_id: 0 for c in subs}
    t0 = time.monotonic()
    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    sel = selectors.DefaultSelector()
    for c in subs:
        sel.register(c.sock, selectors.EVENT_READ, c)
    peak_rss = rss_start
    last_sample = 0.0
    try:
        while not stop.is_set() or time.monotonic() - t0 < seconds + 10:
            if stop.is_set() and all(len(v) >= sent["q1"] for v in got_q1.values()):
                break
            for key, _ in sel.select(0.1):
                c = key.data
                c.fill(0.001)
                while True:
                    pkt = c._parse_one()
                    if pkt is None:
                        break
                    p = m.Publish(pkt)
                    c.acknowledge(p)
                    if p.topic == "slow/q1":
                        got_q1[c.client_id].append((time.monotonic() - t0,
                                                    struct.unpack("!I", p.payload[:4])[0]))
                    else:
                        got_q0[c.client_id] += 1
            if time.monotonic() - last_sample > 0.1:
                peak_rss = max(peak_rss, common.status_kib(pid, "VmRSS"))
                last_sample = time.monotonic()
    finally:
        sel.close()
    thread.join(10)
    if errors:
        raise AssertionError(errors)
    hwm = common.status_kib(pid, "VmHWM")
    half = seconds / 2
    figures = {"seconds": seconds, "readers": readers, "payload": payload,
               "offered_rate_per_topic": rate, "sent_per_topic": sent["q1"],
               "rss_start_kib": rss_start, "rss_peak_sampled_kib": peak_rss,
               "vm_hwm_kib": hwm}
    first, second = [], []
    for cid, msgs in got_q1.items():
        seqs = [s for _, s in msgs]
        if seqs != list(range(sent["q1"])):
            raise AssertionError(f"{cid}: QoS 1 stream lost or reordered: {len(seqs)} of "
                                 f"{sent['q1']}")
        first.append(sum(1 for t, _ in msgs if t < half) / half)
        second.append(sum(1 for t, _ in msgs if half <= t < seconds) / half)
    figures["reader_q1_rate_first_half"] = round(min(first))
    figures["reader_q1_rate_second_half"] = round(min(second))
    figures["achieved_publish_rate"] = round(sent["q1"] / seconds)
    figures["reader_q0_received_min"] = min(got_q0.values())
    # The stalled subscriber: still connected, gets what was kept once it reads again.
    stalled.send(m.PINGREQ)
    kept = 0
    while True:
        pkt = stalled.read_packet(timeout=30.0, what="PINGRESP after the backlog")
        if pkt.raw == m.PINGRESP:
            break
        if pkt.type == m.PUBLISH:
            stalled.acknowledge(m.Publish(pkt))
            kept += 1
    figures["stalled_received_after_resume"] = kept
    for c in subs + [stalled, pub]:
        c.disconnect()
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--payload", type=int, default=4096)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    b = common.start_broker(args.binary, "--max-queued-bytes", str(CAP_BYTES),
                            "--max-queued-messages", str(CAP_MESSAGES))
    try:
        figures = run(b, args.seconds, args.readers, args.payload, args.rate)
        counters = b.stop()
    finally:
        b.cleanup()
    for name in ("dropped_bytes_cap", "dropped_queue_full", "slow_consumer_disconnects",
                 "output_overflow", "mailbox_overflow"):
        figures[name] = counters.get(name)
    common.report("slow_subscriber", figures)


if __name__ == "__main__":
    main()
