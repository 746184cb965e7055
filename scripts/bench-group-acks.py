#!/usr/bin/python3
"""The cost of at least once for shared-subscription groups across nodes (docs/cluster.md,
"Shared subscriptions"): 3 NATS servers, 2 ringmq nodes; a QoS 1 publisher on node 0 sends
ROUNDS x WINDOW messages (WINDOW PUBLISHes in flight, then their PUBACKs) to a subscriber on
node 1 that is (a) a plain subscription, (b) the only member of a `$share` group. Prints, per
case, the messages per second to all PUBACKs and the CPU seconds of both ringmq processes, and
the ratios (b)/(a), measured in the same run, the cases interleaved.

    RINGMQ_BINARY=build/ringmq /usr/bin/python3 scripts/bench-group-acks.py [ROUNDS] [WINDOW]
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))

import broker  # noqa: E402
import mqtt_raw  # noqa: E402
import nats_cluster  # noqa: E402
from test_cluster_acks import publish_pipelined, start_nodes, wait_acked_route  # noqa: E402
from test_cluster_acks import wait_group_acked  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
WINDOW = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def cpu_seconds(node):
    with open(f"/proc/{node.proc.pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(pub, sub, topic, nodes):
    cpu = sum(cpu_seconds(n) for n in nodes)
    started = time.monotonic()
    for r in range(ROUNDS):
        payloads = [b"%s-%d-%d" % (topic.encode(), r, i) for i in range(WINDOW)]
        acked = publish_pipelined(pub, topic, payloads, 1, timeout=30)
        assert len(acked) == WINDOW, (topic, len(acked))
        got = 0
        while got < WINDOW:
            got += len(sub.receive(WINDOW - got, timeout=30))
    elapsed = time.monotonic() - started
    return ROUNDS * WINDOW / elapsed, sum(cpu_seconds(n) for n in nodes) - cpu


def main():
    cluster = nats_cluster.NatsCluster(size=3, jetstream=False)
    cluster.start()
    nodes = []
    try:
        nodes = start_nodes(cluster, 2, "gbench")
        plain = mqtt_raw.Client(nodes[1].port, "gbench-plain")
        plain.subscribe([("gbench/plain", 1)])
        member = mqtt_raw.Client(nodes[1].port, "gbench-member")
        member.subscribe([("$share/gb/gbench/group", 1)])
        pub = mqtt_raw.Client(nodes[0].port, "gbench-pub")
        wait_acked_route(nodes[0], pub, [plain], "gbench/plain")
        wait_group_acked(nodes[0], pub, [member], "gbench/group")
        totals = {"plain": [0.0, 0.0], "group": [0.0, 0.0]}
        for _ in range(3):  # interleaved: the machine's load hits both alike
            for name, sub in (("plain", plain), ("group", member)):
                rate, cpu = run_case(pub, sub, f"gbench/{name}", nodes)
                totals[name][0] += rate / 3
                totals[name][1] += cpu
        n = 3 * ROUNDS * WINDOW
        for name, (rate, cpu) in totals.items():
            print(f"{name}: {rate:,.0f} QoS 1 msgs/s to all PUBACKs, "
                  f"{cpu / n * 1e6:.1f} ringmq CPU us per message ({n} messages)")
        print(f"group/plain: rate {totals['group'][0] / totals['plain'][0]:.2f}x, "
              f"CPU per message {totals['group'][1] / totals['plain'][1]:.2f}x")
        print(f"group acks on node 1: "
              f"{broker_metric(nodes[1], 'ringmq_cluster_group_acks_total'):.0f}")
    finally:
        for node in nodes:
            node.stop()
        cluster.stop()


def broker_metric(node, family):
    from test_cluster import metric
    return metric(node, family)


if __name__ == "__main__":
    main()
