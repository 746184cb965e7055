"""Big SUBSCRIBE packets against one shard: how long until their SUBACKs, and how long another
client of the same shard waits for a PINGRESP meanwhile.

    /usr/bin/python3 scripts/overload/big_subscribe.py --binary build/ringmq --filters 62500
    /usr/bin/python3 scripts/overload/big_subscribe.py --binary build/ringmq --filters 100000

One subscriber sends `filters` distinct filters (`s/00000000000`, 13 bytes: 62,500 of them fill
a 1 MB packet) in SUBSCRIBE packets of at most `per_packet` filters each, back to back, while a
second client sends a PINGREQ, waits for its PINGRESP and sends the next. The broker runs with
--threads 1 so both share a shard. Every SUBACK is checked: one return code per filter, in
order (the requested QoS cycles 0, 1, 2, so a reordered code is seen).

Prints one JSON line: the seconds until each SUBACK, the slowest PINGRESP, the broker's CPU
seconds (user + system, start-up included: what a loaded machine does not inflate) and its
subscription counters. tests/integration/test_subscriptions.py runs run() at full size with a
bound on the PINGRESP.
"""

import argparse
import json
import os
import signal
import struct
import threading
import time

import common
from common import broker, mqtt_raw as m


def subscribe_packets(filters, per_packet, first_id=1):
    """[(packet_id, bytes, requested QoS list)] covering `filters` filters."""
    packets = []
    for start in range(0, filters, per_packet):
        count = min(per_packet, filters - start)
        requested = [i % 3 for i in range(start, start + count)]
        packet_id = first_id + len(packets)
        # Joined once: building the body by repeated concatenation is quadratic in Python.
        entries = b"".join(m.mqtt_string(f"s/{i:011d}") + bytes([i % 3])
                           for i in range(start, start + count))
        raw = m.packet(0x82, struct.pack("!H", packet_id) + entries)
        packets.append((packet_id, raw, requested))
    return packets


class Pinger(threading.Thread):
    """PINGREQ, wait for PINGRESP, repeat, until stopped; keeps the slowest round trip."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = m.connect_client(port, "big-subscribe-pinger")
        self.stop_event = threading.Event()
        self.max_s = 0.0
        self.count = 0
        self.error = None

    def run(self):
        try:
            while not self.stop_event.is_set():
                start = time.monotonic()
                m.ping(self.sock, timeout=60)
                self.max_s = max(self.max_s, time.monotonic() - start)
                self.count += 1
                time.sleep(0.01)
        except Exception as e:  # reported by stop()
            self.error = e

    def stop(self):
        self.stop_event.set()
        self.join(70)
        with self.sock:
            m.disconnect(self.sock)
        if self.error is not None:
            raise AssertionError(f"the pinging client failed: {self.error!r}")


def run(port, filters=62_500, per_packet=62_500, timeout=120.0):
    """Sends the SUBSCRIBEs; returns the figures. Raises if a SUBACK is wrong or late."""
    packets = subscribe_packets(filters, per_packet)
    pinger = Pinger(port)
    pinger.start()
    time.sleep(0.1)  # the pinger is in its loop before the work arrives
    sock = m.connect_client(port, "big-subscriber")
    with sock:
        start = time.monotonic()
        sock.settimeout(timeout)
        sock.sendall(b"".join(raw for _, raw, _ in packets))
        sent_s = time.monotonic() - start
        suback_s = []
        for packet_id, _, requested in packets:
            m.expect_packet(sock, m.suback(packet_id, requested), timeout=timeout,
                            what=f"SUBACK {packet_id} with {len(requested)} codes in order")
            suback_s.append(round(time.monotonic() - start, 3))
        m.disconnect(sock)
    pinger.stop()
    return {"filters": filters, "packets": len(packets), "send_s": round(sent_s, 3),
            "suback_s": suback_s, "pings": pinger.count, "ping_max_s": round(pinger.max_s, 3)}


def cpu_seconds(pid):
    """User + system CPU time of a process so far (the broker's cost, whatever the load)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--filters", type=int, default=62_500)
    parser.add_argument("--per-packet", type=int, default=62_500)
    parser.add_argument("--flags", default="", help="extra broker flags, space-separated")
    args = parser.parse_args()
    flags = ["--max-packet-size", str(2 << 20)] + args.flags.split()
    b = common.start_broker(args.binary, *flags, threads=1)
    try:
        figures = run(b.port, args.filters, args.per_packet)
        figures["broker_cpu_s"] = round(cpu_seconds(b.proc.pid), 3)
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(broker.STOP_TIMEOUT)
        b._reader.join(2)  # the last stderr lines are read
        lines = [line for line in b.lines if "counters:" in line]
        if lines:  # read directly: an older binary lacks counters the fixture requires
            counters = broker.parse_counters(lines[-1])
            figures["counters"] = {k: v for k, v in counters.items()
                                   if k.startswith("subscri") or k == "loop_iterations"}
    finally:
        b.cleanup()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
