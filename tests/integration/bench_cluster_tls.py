#!/usr/bin/python3
"""What TLS to NATS costs a ringmq cluster (natstls lane; docs/performance.md): two ringmq nodes
(one shard each) over one nats-server, QoS 0 messages published on node 0 to a subscriber on
node 1, once with plain NATS connections and once with TLS (nats-server `tls {}`, certificates
made with openssl as test_tls.Pki does), alternating ROUNDS times in the same run.

    /usr/bin/python3 tests/integration/bench_cluster_tls.py --binary build/ringmq [--messages N]

The clients are Python (mqtt_raw): they, not the broker, bound the rate, so the numbers that
mean something are the CPU the two ringmq processes and nats-server spend per message
(utime + stime from /proc/PID/stat over the measured window) and the TLS / plain ratio of the
same run. Prints one line per run and the medians.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import broker  # noqa: E402
import mqtt_raw  # noqa: E402
import nats_cluster  # noqa: E402
from test_cluster import wait_route  # noqa: E402
from test_cluster_tls import nats_tls_block, wait_metric  # noqa: E402
from test_tls import Pki  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAYLOAD = b"x" * 64
BATCH = 500  # PUBLISH packets per send()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def run(messages, tls, pki):
    cluster = nats_cluster.NatsCluster(size=1, jetstream=False,
                                       extra_config=nats_tls_block(pki) if tls else "")
    cluster.start()
    nodes = []
    try:
        port = cluster.servers[0].port
        url = f"tls://127.0.0.1:{port}" if tls else f"nats://127.0.0.1:{port}"
        flags = ["--cluster-tls-ca-file", pki.path("ca.crt")] if tls else []
        for i in range(2):
            node = broker.Broker("--cluster-nats-url", url, "--cluster-node-name", f"n{i}",
                                 *flags, threads=1, metrics=True, log_level="warning")
            node.start()
            nodes.append(node)
            wait_metric(node, "ringmq_cluster_link_events_total", 1, event="connect")
        sub = mqtt_raw.Client(nodes[1].port, "bench-sub")
        sub.subscribe([("bench/t", 0)])
        pub = mqtt_raw.Client(nodes[0].port, "bench-pub")
        wait_route(pub, [sub], "bench/t")
        packet = mqtt_raw.publish("bench/t", PAYLOAD)
        pids = [n.proc.pid for n in nodes] + [cluster.servers[0].pid]
        got = []

        def receive():
            got.extend(sub.receive(messages, timeout=120))

        before = [cpu_seconds(p) for p in pids]
        started = time.monotonic()
        reader = threading.Thread(target=receive)
        reader.start()
        for _ in range(messages // BATCH):
            pub.send(packet * BATCH)
        reader.join()
        elapsed = time.monotonic() - started
        after = [cpu_seconds(p) for p in pids]
        assert len(got) == messages, len(got)
        ringmq_cpu = (after[0] - before[0]) + (after[1] - before[1])
        nats_cpu = after[2] - before[2]
        pub.close()
        sub.close()
        return {"rate": messages / elapsed, "ringmq_us": 1e6 * ringmq_cpu / messages,
                "nats_us": 1e6 * nats_cpu / messages}
    finally:
        for node in nodes:
            node.stop()
        cluster.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["RINGMQ_BINARY"] = os.path.abspath(args.binary)
    with tempfile.TemporaryDirectory(prefix="ringmq-natstls-bench-") as directory:
        pki = Pki(directory)
        results = {False: [], True: []}
        print(f"load before: {os.getloadavg()}")
        for _ in range(args.rounds):
            for tls in (False, True):
                r = run(args.messages, tls, pki)
                results[tls].append(r)
                print(f"{'tls  ' if tls else 'plain'} {r['rate']:9.0f} msg/s  ringmq "
                      f"{r['ringmq_us']:6.2f} us/msg  nats-server {r['nats_us']:6.2f} us/msg",
                      flush=True)
        print(f"load after: {os.getloadavg()}")
        med = {tls: {k: statistics.median(r[k] for r in results[tls]) for k in results[tls][0]}
               for tls in results}
        for key in ("rate", "ringmq_us", "nats_us"):
            ratio = med[True][key] / med[False][key] if med[False][key] else float("nan")
            print(f"median {key}: plain {med[False][key]:.2f}, tls {med[True][key]:.2f}, "
                  f"tls/plain {ratio:.2f}")


if __name__ == "__main__":
    main()
