#!/usr/bin/env python3
"""What the held CONNACK of persistent sessions costs (docs/cluster.md, "Where a persistent
session lives"; docs/performance.md): CONNECT-to-CONNACK latency on one node of a 3-node cluster
over 3 NATS servers with JetStream, in one run:
  clean      clean session 1: never held
  new        clean session 0, a new client id: held for one key-value read (no record)
  resumed    clean session 0, the session on the same node: not held
  moved      clean session 0, the session on another node: held until its state arrives
Prints the median and p90 of each, in milliseconds, and the ratios to `clean`.

Usage: scripts/cluster-session-connack.py [--binary build/ringmq] [--count 200] [--gap-ms 0]
"""

import argparse
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))

import mqtt_raw  # noqa: E402
import nats_cluster  # noqa: E402
import broker  # noqa: E402
from test_cluster import metric  # noqa: E402
from test_cluster_retained import start_node  # noqa: E402


def connack_ms(port, client_id, clean):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.perf_counter()
    sock.sendall(mqtt_raw.connect(client_id, clean=clean))
    data = b""
    while len(data) < 4:
        chunk = sock.recv(4 - len(data))
        if not chunk:
            raise RuntimeError("closed before CONNACK")
        data += chunk
    elapsed = (time.perf_counter() - started) * 1000
    assert data[0] == 0x20 and data[3] == 0, data
    sock.sendall(b"\xe0\x00")  # DISCONNECT: a persistent session stays
    sock.close()
    return elapsed, data[2] & 1


def summary(name, values, reference=None):
    median = statistics.median(values)
    p90 = sorted(values)[int(len(values) * 0.9)]
    ratio = f"  {median / reference:5.2f}x clean" if reference else ""
    print(f"{name:8s} n={len(values):4d}  median {median:7.3f} ms  p90 {p90:7.3f} ms{ratio}")
    return median


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="build/ringmq")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=0,
                        help="pause before the move (the first node's record write is "
                             "asynchronous: a move right after the session's creation can read "
                             "no record yet)")
    args = parser.parse_args()
    os.environ["RINGMQ_BINARY"] = os.path.abspath(args.binary)
    cluster = nats_cluster.NatsCluster(size=3)
    cluster.start()
    nodes = []
    try:
        for i in range(3):
            nodes.append(start_node([cluster.urls()[i]], f"m{i}"))
        raw = cluster.client(0)
        deadline = time.monotonic() + 20
        while True:  # the bucket exists (some shard created it) ...
            try:
                nats_cluster.KvBucket(raw, "RINGMQ_SESSIONS").info()
                break
            except (nats_cluster.JsError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(1.0)  # ... and every shard has its answer (a margin)
        run = int(time.time())
        clean, new, resumed, moved = [], [], [], []
        moved_present = 0
        for k in range(args.count):
            clean.append(connack_ms(nodes[0].port, f"c-{run}-{k}", True)[0])
            ms, present = connack_ms(nodes[0].port, f"p-{run}-{k}", False)
            assert present == 0
            new.append(ms)
            ms, present = connack_ms(nodes[0].port, f"p-{run}-{k}", False)
            assert present == 1
            resumed.append(ms)
            time.sleep(args.gap_ms / 1000)
            ms, present = connack_ms(nodes[1].port, f"p-{run}-{k}", False)
            moved.append(ms)
            moved_present += present
        reference = summary("clean", clean)
        summary("new", new, reference)
        summary("resumed", resumed, reference)
        summary("moved", moved, reference)
        print(f"moved with session present 1: {moved_present} of {len(moved)}")
        print("node1 connacks:", {r: metric(nodes[1], "ringmq_cluster_session_connacks_total",
                                            result=r)
                                  for r in ("held", "moved", "none", "timeout")})
    finally:
        for node in nodes:
            node.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
