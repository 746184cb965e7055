"""Where a CONNECT's CPU goes in bench-cluster.sh's connect topologies (docs/performance.md,
"Client-id claims in batches"): starts the topology as scripts/bench_cluster.py does, runs
ringmq-bench connect (32 connectors, 2 threads, 10 s) and prints, per accepted CONNECT, the CPU
of the ringmq nodes and of the nats-servers and the deltas of every node's loop iterations,
io_uring completions and claim counters (scraped from /metrics before and after).

Usage (from the repository, after scripts/build.sh release ringmq bench/loadgen/ringmq-bench):
  /usr/bin/python3 scripts/cluster_connect_counters.py [clustered|unclustered|single] [claim_batch_us]
clustered: 3 nodes over 3 nats-servers; unclustered: the 3 nodes without [cluster]; single: one.
claim_batch_us (clustered only): passed as --cluster-claim-batch-us.
"""
import json, os, re, subprocess, sys, urllib.request
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import bench_cluster as bc  # noqa: E402
import broker  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "clustered"
batch_us = sys.argv[2] if len(sys.argv) > 2 else None
FAMILIES = ["ringmq_loop_iterations_total", "ringmq_io_uring_cqes_reaped_total",
            "ringmq_io_uring_sqes_submitted_total",
            "ringmq_cluster_owner_claims_total", "ringmq_cluster_owner_claim_batches_total",
            "ringmq_cluster_messages_total"]


def scrape(node):
    out = {}
    with urllib.request.urlopen(node.metrics_url(), timeout=5) as r:
        for line in r.read().decode().splitlines():
            for fam in FAMILIES:
                if line.startswith(fam):
                    name_labels, _, value = line.rpartition(" ")
                    labels = dict(re.findall(r'(\w+)="([^"]*)"', name_labels))
                    key = fam + "".join(f",{k}={v}" for k, v in sorted(labels.items())
                                        if k != "shard")
                    out[key] = out.get(key, 0) + float(value)
    return out


nodes = 1 if mode == "single" else 3
nats = 3 if mode == "clustered" else 0
topo = bc.Topology(mode, nodes, nats, 1)
if batch_us is not None:
    original_init = broker.Broker.__init__

    def init(self, *flags, **kw):
        extra = ("--cluster-claim-batch-us", batch_us) if nats else ()
        original_init(self, *flags, *extra, **kw)
    broker.Broker.__init__ = init
topo.start()
try:
    before = [scrape(n) for n in topo.nodes]
    path = os.path.join(ROOT, "bench", "results", "connect-counters.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pids = topo.ringmq_pids() + topo.nats_pids()
    argv = [bc.BENCH, "connect", "--clients", "32", "--threads", "2", "--duration", "10",
            "--warmup", "0", "--drain", "2", "--port", ",".join(map(str, topo.ports())),
            "--broker-pid", ",".join(map(str, pids)), "--json", path, "--quiet"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    print(p.stdout.strip(), p.stderr.strip()[-300:])
    after = [scrape(n) for n in topo.nodes]
    result = json.load(open(path))
    accepted = result["connect"]["accepted"]
    by_pid = dict((int(a), float(b)) for a, b in (x.split(":") for x in
                  filter(None, result["broker"]["cpu_s_by_pid"].split(","))))
    rcpu = sum(by_pid.get(q, 0) for q in topo.ringmq_pids())
    ncpu = sum(by_pid.get(q, 0) for q in topo.nats_pids())
    print(f"mode={mode} batch_us={batch_us} accepted={accepted:.0f} load={bc.load_average()}")
    print(f"  ringmq CPU us/CONNECT {1e6*rcpu/accepted:.2f}  nats CPU us/CONNECT {1e6*ncpu/accepted:.2f}"
          f"  per CPU-second {accepted/(rcpu+ncpu):.0f}")
    keys = sorted(set().union(*after))
    for k in keys:
        d = sum(a.get(k, 0) - b.get(k, 0) for a, b in zip(after, before))
        if d:
            print(f"  {k:75s} {d:12.0f}  per CONNECT {d/accepted:8.3f}")
finally:
    topo.stop()
