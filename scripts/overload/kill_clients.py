#!/usr/bin/python3
"""Clients SIGKILLed in the middle of QoS 1 and QoS 2 flows, reconnecting with clean session 0:
every acknowledged message is delivered, QoS 2 exactly once.

    /usr/bin/python3 scripts/overload/kill_clients.py --binary build/ringmq \
        [--seconds 20] [--rate 300] [--kill-every 0.5]

Processes (scripts/overload/qos_worker.py, each keeping its session state in a log so that it
resumes as MQTT-4.4.0-1 requires): a QoS 1 publisher, a QoS 2 publisher and a subscriber to
kill/# at QoS 2, all clean session 0. For SECONDS, one of them chosen at random is SIGKILLed every
KILL_EVERY seconds (+-50%) and restarted at once. Then the publishers are restarted in drain mode
(finish what is in flight, exit) and the subscriber reads until idle. A stable subscriber in
this process (clean session 1, never killed) reads throughout. Checks:
  - every message a publisher logged as acknowledged (PUBACK / PUBCOMP) reached the stable
    subscriber and the killed subscriber (over all its incarnations);
  - QoS 2: the stable subscriber got each message exactly once, although publishers resent
    PUBLISH with DUP after kills (MQTT-4.3.3-2); the killed subscriber never got a PUBLISH of a
    message again after it had received that message's PUBREL (MQTT-4.3.3, MQTT-4.4.0-1);
  - QoS 1: duplicates only as resends (DUP set, or a publisher resend after a kill).
"""

import argparse
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time

import common
from common import mqtt_raw as m

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "qos_worker.py")


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.endswith("\n")]


class Worker:
    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.proc = None
        self.kills = 0

    def start(self, *extra):
        self.proc = subprocess.Popen([sys.executable, WORKER, *self.argv, *extra],
                                     stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stderr.close()
        self.kills += 1

    def check_alive(self):
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace")
            raise AssertionError(f"worker {self.name} exited {self.proc.returncode}: {err}")

    def finish(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"worker {self.name} did not finish within {timeout}s")
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        if rc != 0:
            raise AssertionError(f"worker {self.name} exited {rc}: {err}")


def run(b, seconds, rate, kill_every, workdir, seed=1):
    rng = random.Random(seed)
    logs = {n: os.path.join(workdir, f"{n}.log") for n in ("pub1", "pub2", "sub")}
    base = ["--port", str(b.port)]
    workers = [
        Worker("pub1", ["pub", *base, "--id", "kill-pub1", "--qos", "1", "--log", logs["pub1"],
                        "--rate", str(rate)]),
        Worker("pub2", ["pub", *base, "--id", "kill-pub2", "--qos", "2", "--log", logs["pub2"],
                        "--rate", str(rate)]),
        Worker("sub", ["sub", *base, "--id", "kill-sub", "--log", logs["sub"]]),
    ]
    stable = m.Client(b.port, "stable-sub")
    stable.subscribe([("kill/#", 2)])
    received = []  # (topic, seq, dup)

    def read_stable(duration):
        end = time.monotonic() + duration
        while time.monotonic() < end:
            pkt = stable._parse_one()
            if pkt is None:
                stable.fill(min(0.05, max(0.001, end - time.monotonic())))
                continue
            if stable.answer_pubrel(pkt):
                continue
            p = m.Publish(pkt)
            stable.acknowledge(p)
            received.append((p.topic, struct.unpack("!I", p.payload)[0], p.dup))

    # The subscriber first, so that its session exists before anything is published.
    workers[2].start()
    common.wait_until(lambda: any(f[0] == "subscribed" for f in read_log(logs["sub"])), 10)
    for w in workers[:2]:
        w.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        read_stable(kill_every * rng.uniform(0.5, 1.5))
        for w in workers:
            w.check_alive()
        victim = rng.choice(workers)
        victim.kill()
        victim.start()
    # Drain: publishers finish what is in flight; the subscriber reads until idle.
    for w in workers[:2]:
        w.kill()
        w.start("--drain")
    workers[2].kill()
    workers[2].start("--idle-exit", "3")
    for w in workers:
        deadline = time.monotonic() + 30
        while w.proc.poll() is None and time.monotonic() < deadline:
            read_stable(0.2)
        w.finish(1)
    read_stable(1.0)
    stable.disconnect()

    # ---- checks
    acked = {1: set(), 2: set()}
    sent = {1: set(), 2: set()}
    for qos, name in ((1, "pub1"), (2, "pub2")):
        for f in read_log(logs[name]):
            if f[0] == "ack":
                acked[qos].add(int(f[2]))
            elif f[0] == "send":
                sent[qos].add(int(f[2]))
    problems = []
    stable_seen = {1: [], 2: []}
    for topic, seq, _dup in received:
        stable_seen[int(topic[-1])].append(seq)
    sub_seen = {1: [], 2: []}
    released = {}  # pid -> seq of the message whose PUBREL the killed subscriber received
    pending = {}   # pid -> seq of the last QoS 2 PUBLISH received on that pid
    after_release = []
    for f in read_log(logs["sub"]):
        if f[0] == "msg":
            qos, dup, pid, topic, seq = int(f[1]), int(f[2]), int(f[3]), f[4], int(f[5])
            sub_seen[int(topic[-1])].append(seq)
            if qos == 2:
                if (topic, seq) in released.values():
                    after_release.append((pid, seq, dup))
                pending[pid] = (topic, seq)
        elif f[0] == "rel":
            pid = int(f[1])
            if pid in pending:
                released[pid] = pending.pop(pid)
    for qos in (1, 2):
        missing = acked[qos] - set(stable_seen[qos])
        if missing:
            problems.append(f"QoS {qos}: {len(missing)} acknowledged messages never reached the "
                            f"stable subscriber, e.g. {sorted(missing)[:5]}")
        missing = acked[qos] - set(sub_seen[qos])
        if missing:
            problems.append(f"QoS {qos}: {len(missing)} acknowledged messages never reached the "
                            f"killed subscriber, e.g. {sorted(missing)[:5]}")
        unknown = set(stable_seen[qos]) - sent[qos]
        if unknown:
            problems.append(f"QoS {qos}: messages never sent were delivered: {sorted(unknown)[:5]}")
    dup2 = len(stable_seen[2]) - len(set(stable_seen[2]))
    if dup2:
        problems.append(f"QoS 2: the stable subscriber got {dup2} duplicates")
    if after_release:
        problems.append(f"QoS 2: {len(after_release)} PUBLISHes re-sent to the killed subscriber "
                        f"after their PUBREL, e.g. {after_release[:5]}")
    figures = {
        "seconds": seconds, "kills": {w.name: w.kills for w in workers},
        "acked_qos1": len(acked[1]), "acked_qos2": len(acked[2]),
        "sent_qos1": len(sent[1]), "sent_qos2": len(sent[2]),
        "stable_received": len(received),
        "stable_qos1_duplicates": len(stable_seen[1]) - len(set(stable_seen[1])),
        "killed_sub_received": len(sub_seen[1]) + len(sub_seen[2]),
        "killed_sub_redeliveries": (len(sub_seen[1]) - len(set(sub_seen[1]))
                                    + len(sub_seen[2]) - len(set(sub_seen[2]))),
        "unacked_but_delivered_qos2": len(set(stable_seen[2]) - acked[2]),
    }
    if problems:
        raise AssertionError("; ".join(problems) + f"\nfigures: {figures}")
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--kill-every", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    b = common.start_broker(args.binary, "--max-queued-messages", "100000")
    try:
        with tempfile.TemporaryDirectory(prefix="ringmq-kill-") as tmp:
            figures = run(b, args.seconds, args.rate, args.kill_every, tmp, args.seed)
        counters = b.stop()
    finally:
        b.cleanup()
    for name in ("session_takeovers", "publish_duplicates", "dropped_queue_full",
                 "wills_published"):
        figures[name] = counters.get(name)
    common.report("kill_clients", figures)


if __name__ == "__main__":
    main()
