"""The driver of scripts/bench-cluster.sh (see its --help): a ringmq cluster over NATS against one
ringmq node and against NATS's own MQTT support, on this machine, in one run.

Topologies, each started fresh and stopped before the next (127.0.0.1, free ports):
  cluster  --nats M clustered nats-servers (core NATS, no JetStream) and --nodes N ringmq nodes,
           node i connected to server i mod M; ringmq-bench gets every node's port, so that
           publishers and subscribers sit on different nodes (ringmq-bench --help, --port)
  single   one ringmq node without [cluster]
  unclustered
           the cluster's N nodes without [cluster] (connect only)
Scenarios on each (ringmq-bench; the standard shapes of scripts/bench-compare.sh):
  fanin-q0, fanin-q1   100 publishers -> 1 subscriber, window 16, 64-byte payloads
  pairs-q0, pairs-q1   500 publisher/subscriber pairs
  pairs-q1-50          50 pairs at QoS 1: NATS MQTT clustered on three servers cannot set up
                       500 QoS 1 pairs on this machine (its JetStream consumers time out), so
                       this is the QoS 1 scenario it can be compared on
  pairs-q0-light, pairs-q1-light
                       the same at 20 msgs/s per publisher (10,000 msgs/s): latency and CPU per
                       message below saturation
  connect              CONNECT + CONNACK + DISCONNECT, 32 connectors on 2 generator threads,
                       also on the cluster's nodes without [cluster] ("unclustered")
The CPU counted is every ringmq node's and every nats-server's (ringmq-bench --broker-pid with
all their pids), over the measured window. The references, in the same run: NATS MQTT on one
nats-server (scripts/bench-nats-reference.sh's mqtt-fanin-q0, mqtt-pairs-q0, mqtt-pairs-q1,
mqtt-pairs-q1-50, mqtt-connect) and, with --nodes 3, NATS MQTT clustered by NATS on three (its mqtt3-* runs: the
deployment a user would pick instead of a ringmq cluster; clients placed as for the cluster).

Nothing is left behind: nodes and servers are stopped in `finally` blocks (Ctrl-C included), and
the nats-servers and ringmq-bench die with this process even if it is killed outright
(PR_SET_PDEATHSIG).
"""

import argparse
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import broker  # noqa: E402
import nats_cluster  # noqa: E402

# The broker under test (RINGMQ_BINARY, as for the integration tests; build/ringmq by default)
# and the ringmq-bench built beside it, else the release build's (a sanitizer build has no
# benchmarks).
RINGMQ = os.environ.setdefault("RINGMQ_BINARY", os.path.join(ROOT, "build", "ringmq"))
BENCH = next((p for p in (os.path.join(os.path.dirname(RINGMQ), "bench", "loadgen",
                                       "ringmq-bench"),
                          os.path.join(ROOT, "build", "bench", "loadgen", "ringmq-bench"))
              if os.access(p, os.X_OK)), None)
LINK_TIMEOUT = 30.0  # every shard's NATS link up after the nodes start
# One ringmq-bench run: setup, warm-up, measurement, drain, with room on a loaded machine.
RUN_TIMEOUT = 300

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def say(text):
    print(f"[bench-cluster] {text}", file=sys.stderr, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def note_load(out, name):
    with open(os.path.join(out, "load.log"), "a") as log:
        log.write(f"=== {name} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        log.write(subprocess.run(["uptime"], capture_output=True, text=True).stdout)
        top = subprocess.run(["top", "-b", "-n", "2", "-d", "0.5", "-w", "120"],
                             capture_output=True, text=True).stdout
        frames = top.split("top - ")
        log.write("\n".join(frames[-1].splitlines()[6:13]) + "\n")


def link_connects(node):
    total = 0
    with urllib.request.urlopen(node.metrics_url(), timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("ringmq_cluster_link_events_total{") and 'event="connect"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


class Topology:
    """`nodes` ringmq nodes; with nats > 0, clustered over that many nats-servers."""

    def __init__(self, name, nodes, nats, threads, only=None, flags=()):
        self.name = name
        self.flags = list(flags)  # more flags for every node (cluster-batch: --cluster-batch)
        self.only = only  # the scenarios run on this topology (None: all)
        self.node_count = nodes
        self.nats_count = nats
        self.threads = threads
        self.cluster = None
        self.nodes = []

    def start(self):
        flags_for = [[] for _ in range(self.node_count)]
        if self.nats_count > 0:
            self.cluster = nats_cluster.NatsCluster(size=self.nats_count, jetstream=False)
            self.cluster.start()
            urls = self.cluster.urls()
            for i in range(self.node_count):
                flags_for[i] = ["--cluster-nats-url", urls[i % len(urls)],
                                "--cluster-node-name", f"node{i}", *self.flags]
        for i in range(self.node_count):
            # Queues as bench-compare.sh sets them: the measurement is the broker, not a drop.
            node = broker.Broker(*flags_for[i], "--max-queued-messages", "100000",
                                 "--max-queued-bytes", str(1 << 30), threads=self.threads,
                                 metrics=True, log_level="warning")
            node.start()
            self.nodes.append(node)
        if self.cluster is not None:
            deadline = time.monotonic() + LINK_TIMEOUT
            for node in self.nodes:
                while link_connects(node) < self.threads:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"NATS links not up:\n{node.stderr_tail()}")
                    time.sleep(0.05)

    def stop(self):
        for node in self.nodes:
            try:
                node.stop()
            except AssertionError as e:  # an unclean exit is worth reporting, not hiding
                say(f"{self.name}: {e}")
        self.nodes = []
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None

    def ringmq_pids(self):
        return [n.proc.pid for n in self.nodes]

    def nats_pids(self):
        return list(self.cluster.pids) if self.cluster else []

    def ports(self):
        return [n.port for n in self.nodes]


def run_bench(out, topology, run_name, args):
    """One ringmq-bench run against `topology`; returns its JSON (None if it wrote none)."""
    name = f"{topology.name}-{run_name}"
    note_load(out, name)
    pids = topology.ringmq_pids() + topology.nats_pids()
    path = os.path.join(out, f"{name}.json")
    argv = [BENCH, *args, "--port", ",".join(map(str, topology.ports())),
            "--broker-pid", ",".join(map(str, pids)), "--label", name, "--json", path,
            "--topic-prefix", f"bc-{run_name}", "--quiet"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                              preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired:
        say(f"FAIL {name}: ringmq-bench did not finish within {RUN_TIMEOUT} s")
        return None
    with open(os.path.join(out, f"{name}.txt"), "w") as f:
        f.write(proc.stdout + proc.stderr)
    say(f"{name}: {proc.stdout.strip()}")
    if not os.path.exists(path):
        say(f"FAIL {name}: no result (exit status {proc.returncode}): {proc.stderr.strip()}")
        return None
    with open(path) as f:
        result = json.load(f)
    result["exit_status"] = proc.returncode
    result["ringmq_pids"] = topology.ringmq_pids()
    result["load_average"] = load_average()
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def summarize(result):
    """Delivered (or accepted CONNECTs) per second, CPU split, per message, latency."""
    if result is None:
        return None
    by_pid = {}
    for item in filter(None, result["broker"]["cpu_s_by_pid"].split(",")):
        pid, cpu = item.split(":")
        by_pid[int(pid)] = float(cpu)
    ringmq_cpu = sum(by_pid.get(p, 0.0) for p in result["ringmq_pids"])
    total_cpu = result["broker"]["cpu_s"]
    done = (result["connect"]["accepted"] if "connect" in result
            else result["messages"]["delivered"])
    lat = result.get("latency_us", {})
    return {
        "per_s": done / result["measured_s"] if result["measured_s"] else 0,
        "ringmq_us": 1e6 * ringmq_cpu / done if done else 0,
        "nats_us": 1e6 * (total_cpu - ringmq_cpu) / done if done else 0,
        "us_per": 1e6 * total_cpu / done if done else 0,
        "per_cpu_s": done / total_cpu if total_cpu else 0,
        "p50": lat.get("p50", 0),
        "p99": lat.get("p99", 0),
        "verdict": result.get("verdict", "?"),
        "lost": result.get("verify", {}).get("lost", 0),
        "load": result["load_average"],
    }


# NATS MQTT's runs (scripts/bench-nats-reference.sh) beside the scenarios they compare with:
# (reference label, scenario, run name); the clustered ones run with --nodes 3 only.
REF_ONE = "NATS MQTT (reference)"
REF_THREE = "NATS MQTT 3 nodes (reference)"
REFERENCE_SCENARIOS = ("fanin-q0", "pairs-q0", "pairs-q1", "pairs-q1-50", "connect")
REFERENCE_RUNS = tuple((REF_ONE, scenario, f"mqtt-{scenario}") for scenario in
                       REFERENCE_SCENARIOS) + tuple(
    (REF_THREE, scenario, f"mqtt3-{scenario}") for scenario in REFERENCE_SCENARIOS)


def load_references(ref_out):
    """{label: {scenario: summary}} from a reference directory's JSON files."""
    refs = {}
    for label, scenario, run_name in REFERENCE_RUNS:
        path = os.path.join(ref_out, f"{run_name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        r["ringmq_pids"] = []  # every pid counted is nats-server's
        r["load_average"] = "-"
        refs.setdefault(label, {})[scenario] = summarize(r)
    return refs


def run_reference(out, quick, scenarios, nodes):
    """scripts/bench-nats-reference.sh's NATS-MQTT runs of `scenarios` (the clustered ones if
    `nodes` is 3); {label: {scenario: summary}}."""
    ref_out = os.path.join(out, "reference")
    runs = [run for label, scenario, run in REFERENCE_RUNS
            if scenario in scenarios and (label == REF_ONE or nodes == 3)]
    if not runs:
        return {}
    argv = [os.path.join(ROOT, "scripts", "bench-nats-reference.sh"), "--no-build", "--out",
            ref_out, "--only", ",".join(runs)]
    if quick:
        argv.append("--quick")
    subprocess.run(argv, timeout=len(runs) * 2 * RUN_TIMEOUT, preexec_fn=_die_with_parent,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return load_references(ref_out)


def table(rows, refs, topologies):
    """Markdown: one line per scenario and topology, then the cluster against the others."""
    lines = ["| scenario | topology | delivered (accepted CONNECTs)/s | ringmq CPU µs/msg | "
             "nats-server CPU µs/msg | CPU µs/msg (together) | per CPU-second | p50 µs | p99 µs | "
             "verdict | load avg |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for scenario, by_topology in rows.items():
        entries = [(t, by_topology.get(t)) for t in topologies if t in by_topology]
        entries += [(label, refs[label][scenario]) for label in (REF_ONE, REF_THREE)
                    if scenario in refs.get(label, {})]
        for topo, s in entries:
            if s is None:
                lines.append(f"| {scenario} | {topo} | failed | | | | | | | | |")
                continue
            lines.append(
                f"| {scenario} | {topo} | {s['per_s']:,.0f} | {s['ringmq_us']:.2f} | "
                f"{s['nats_us']:.2f} | {s['us_per']:.2f} | {s['per_cpu_s']:,.0f} | "
                f"{s['p50']:.0f} | {s['p99']:.0f} | {s['verdict']} | {s['load']} |")
    lines += ["", "| scenario | extra CPU µs/msg across nodes | added p50 µs | added p99 µs | "
              "cluster per CPU-s ÷ one node | cluster per CPU-s ÷ NATS MQTT | "
              "cluster per CPU-s ÷ NATS MQTT 3 nodes |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for scenario, by_topology in rows.items():
        for clustered in ("cluster", "cluster-batch"):
            c, s = by_topology.get(clustered), by_topology.get("single")
            if c is None or s is None:
                continue
            vs = []
            for label in (REF_ONE, REF_THREE):
                ref = refs.get(label, {}).get(scenario)
                vs.append(f"{c['per_cpu_s'] / ref['per_cpu_s']:.2f}×" if ref and ref["per_cpu_s"]
                          else "-")
            ratio = c["per_cpu_s"] / s["per_cpu_s"] if s["per_cpu_s"] else 0
            label = scenario if clustered == "cluster" else f"{scenario} (batch)"
            lines.append(f"| {label} | {c['us_per'] - s['us_per']:.2f} | "
                         f"{c['p50'] - s['p50']:.0f} | {c['p99'] - s['p99']:.0f} | {ratio:.2f} | "
                         f"{vs[0]} | {vs[1]} |")
    return "\n".join(lines) + "\n"


def retable(out):
    """Rebuilds DIR/table.md (and prints it) from an earlier run's JSON files."""
    rows, topologies = {}, []
    for name in sorted(os.listdir(out)):
        m = re.fullmatch(r"(cluster-batch|cluster|single|unclustered)-(.+)\.json", name)
        if not m:
            continue
        with open(os.path.join(out, name)) as f:
            result = json.load(f)
        rows.setdefault(m.group(2), {})[m.group(1)] = summarize(result)
        if m.group(1) not in topologies:
            topologies.append(m.group(1))
    order = ["fanin-q0", "pairs-q0", "fanin-q1", "pairs-q1", "pairs-q1-50", "pairs-q0-light",
             "pairs-q1-light", "connect"]
    rows = {k: rows[k] for k in sorted(rows, key=lambda k: order.index(k) if k in order else 99)}
    refs = load_references(os.path.join(out, "reference"))
    text = table(rows, refs, [t for t in ("cluster", "cluster-batch", "single", "unclustered")
                              if t in topologies])
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    print(text, end="")
    return 0


def main():
    parser = argparse.ArgumentParser(prog="bench-cluster.sh", add_help=False)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--nats", type=int, default=3, choices=range(1, 10))
    parser.add_argument("--nodes", type=int, default=3, choices=range(2, 10))
    parser.add_argument("--threads", type=int, default=1, choices=range(1, 9))
    parser.add_argument("--only", default="")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--table", metavar="DIR")
    o = parser.parse_args()
    if o.table:
        return retable(o.table)
    out = o.out or os.path.join(ROOT, "bench", "results",
                                "cluster-quick" if o.quick else "cluster")
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if re.search(r"\.(json|txt|log|md)$", f):
            os.remove(os.path.join(out, f))
    if nats_cluster.available():
        say(f"error: {nats_cluster.available()}")
        return 2
    if BENCH is None:
        say("error: ringmq-bench is not built (ninja -C build bench/loadgen/ringmq-bench)")
        return 2
    if o.quick:
        d = ["--duration", "1", "--warmup", "0.5", "--drain", "3"]
        fanin, pairs, clients = ["--publishers", "10"], ["--publishers", "10"], "4"
        pairs50 = ["--publishers", "5"]
    else:
        d = ["--duration", "10", "--warmup", "2", "--drain", "5"]
        fanin, pairs, clients = ["--publishers", "100"], ["--publishers", "500"], "32"
        pairs50 = ["--publishers", "50"]
    p = ["--payload", "64", "--window", "16"]
    scenarios = {
        "fanin-q0": ["fanin", "--qos", "0", *p, *fanin, "--subscribers", "1", *d],
        "pairs-q0": ["pairs", "--qos", "0", *p, *pairs, *d],
        "fanin-q1": ["fanin", "--qos", "1", *p, *fanin, "--subscribers", "1", *d],
        "pairs-q1": ["pairs", "--qos", "1", *p, *pairs, *d],
        "pairs-q1-50": ["pairs", "--qos", "1", *p, *pairs50, *d],
        # At a fixed offered load below saturation: the latency the hop adds, and the CPU per
        # message when wake-ups are not amortized over full batches.
        "pairs-q0-light": ["pairs", "--qos", "0", *p, *pairs, "--rate", "20", *d],
        "pairs-q1-light": ["pairs", "--qos", "1", *p, *pairs, "--rate", "20", *d],
        "connect": ["connect", "--clients", clients, "--threads", "2", *d],
    }
    if o.only:
        wanted = o.only.split(",")
        scenarios = {k: v for k, v in scenarios.items() if k in wanted}
    # "unclustered": the cluster's nodes without [cluster], for connect only: what running N
    # processes on this machine costs per CONNECT, apart from clustering.
    topologies = [Topology("cluster", o.nodes, o.nats, o.threads),
                  *([Topology("cluster-batch", o.nodes, o.nats, o.threads,
                              only=("fanin-q0", "pairs-q0", "pairs-q0-light"),
                              flags=("--cluster-batch", "true"))] if o.batch else []),
                  Topology("single", 1, 0, o.threads),
                  Topology("unclustered", o.nodes, 0, o.threads, only=("connect",))]
    say(f"{o.nodes} nodes over {o.nats} nats-servers, {o.threads} shard(s) per node; "
        f"load average {load_average()}; results in {out}")
    start = time.monotonic()
    rows = {name: {} for name in scenarios}
    failures = 0
    for topology in topologies:
        mine = {k: v for k, v in scenarios.items() if topology.only is None or k in topology.only}
        if not mine:
            continue
        try:
            try:
                topology.start()
            except (AssertionError, RuntimeError, OSError) as e:
                say(f"error: {topology.name} did not start: {e}")
                return 2
            for name, args in mine.items():
                result = run_bench(out, topology, name, args)
                rows[name][topology.name] = summarize(result)
                if result is None or result["exit_status"] != 0:
                    failures += 1
        finally:
            topology.stop()
    refs = {} if o.no_reference else run_reference(out, o.quick, scenarios, o.nodes)
    text = table(rows, refs, [t.name for t in topologies])
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    print(text, end="")
    say(f"done in {time.monotonic() - start:.0f} s, {failures} run(s) failed; load average "
        f"{load_average()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
