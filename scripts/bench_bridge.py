#!/usr/bin/python3
"""What a bridge's durable queue costs (docs/bridges.md, "Across a restart of ringmq").

Usage: scripts/bench_bridge.py BUILD/ringmq [--messages N] [--window W] [--rounds R]

Starts Debian Mosquitto (the remote) and ringmq with one bridge (`data/# out 1`), three ways in
the same run: persistence off (the bridge acknowledges a message once it is queued), on with
durability "interval" and on with "fsync" (the bridge acknowledges to this broker only once
the remote did; the publisher's PUBACK waits for the log). A publisher on ringmq sends N QoS 1
messages, W unacknowledged at most; a subscriber on Mosquitto receives them. Prints, per mode,
the median over R rounds of messages per second end to end and ringmq's CPU microseconds per
message (its threads' time on a CPU over the round, /proc/PID/task/*/schedstat), and the
ratios to persistence off. Everything on 127.0.0.1; every wait bounded. The broker's
max_queued_messages is raised to 10000: with persistence the messages waiting for the remote
wait in the bridge's local session under the broker's session bounds (docs/bridges.md), and a
publisher faster than the remote would otherwise see them dropped there (counted).
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import mqtt_raw  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"
WAIT = 30.0


def free_port():
    with socket.socket() as s:
        s.bind((mqtt_raw.HOST, 0))
        return s.getsockname()[1]


def wait_listening(port, proc):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((mqtt_raw.HOST, port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"process exited with {proc.returncode}")
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port} within {WAIT}s")


def cpu_seconds(pid):
    """CPU time of all the process's threads (schedstat: nanoseconds on a CPU)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return total / 1e9


def run_round(binary, directory, mode, messages, window):
    remote_port = free_port()
    conf = os.path.join(directory, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {remote_port} {mqtt_raw.HOST}\nallow_anonymous true\n"
                "max_queued_messages 0\nmax_inflight_messages 0\n")
    mosquitto = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    node = None
    try:
        wait_listening(remote_port, mosquitto)
        port = free_port()
        toml = os.path.join(directory, "ringmq.toml")
        with open(toml, "w") as f:
            # With persistence the messages waiting for the remote wait in the bridge's local
            # session, under the broker's session bounds (docs/bridges.md): room for them all.
            f.write("max_queued_messages = 10000\n")
            f.write(f'[[bridge]]\nname = "bench"\naddresses = ["127.0.0.1:{remote_port}"]\n'
                    f"topics = ['data/# out 1']\nmax_inflight = {window}\n"
                    "max_queued_messages = 10000\n")
        data_dir = os.path.join(directory, "data")
        shutil.rmtree(data_dir, ignore_errors=True)
        os.mkdir(data_dir)
        metrics_port = free_port()
        argv = [binary, "--config", toml, "--bind", mqtt_raw.HOST, "--port", str(port),
                "--threads", "1", "--metrics-port", str(metrics_port), "--log-level", "warning"]
        if mode != "off":
            argv += ["--persistence", "true", "--data-dir", data_dir, "--durability", mode]
        node = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port, node)
        sub = mqtt_raw.Client(remote_port, "bench-sub", timeout=WAIT)
        sub.subscribe([("data/#", 1)])
        pub = mqtt_raw.Client(port, "bench-pub", timeout=WAIT)
        # The route is up when a probe crosses.
        deadline = time.monotonic() + WAIT
        while True:
            pub.publish("data/probe", b"p", qos=1)
            try:
                sub.receive(1, timeout=0.5)
                break
            except (mqtt_raw.ProtocolError, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise SystemExit("the bridge did not carry a probe")
        sub.expect_no_publish(0.3)
        # The subscriber reads (and acknowledges) while the publisher sends.
        received = {}

        def receive_all():
            try:
                received["got"] = len(sub.receive(messages, timeout=WAIT))
            except Exception as e:  # reported below
                received["error"] = e

        reader = threading.Thread(target=receive_all)
        cpu_before = cpu_seconds(node.pid)
        start = time.monotonic()
        reader.start()
        payload = b"x" * 64
        sent = 0
        while sent < messages:
            batch = min(window, messages - sent)
            ids = []
            for _ in range(batch):
                ids.append(pub.new_id())
                pub.sock.sendall(mqtt_raw.publish("data/x", payload, qos=1, packet_id=ids[-1]))
            for packet_id in ids:
                pub.expect_reply(mqtt_raw.ack(mqtt_raw.PUBACK, packet_id), "PUBACK", WAIT)
            sent += batch
        reader.join(WAIT * 5)
        if received.get("got") != messages:
            with urllib.request.urlopen(f"http://{mqtt_raw.HOST}:{metrics_port}/metrics") as r:
                lines = [line for line in r.read().decode().splitlines()
                         if "bridge" in line or "inflight" in line or "queued" in line]
            raise SystemExit(f"persistence {mode}: the subscriber got {received}\n" +
                             "\n".join(lines))
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(node.pid) - cpu_before
        pub.close()
        sub.close()
        return messages / elapsed, cpu / messages * 1e6
    finally:
        for proc in (node, mosquitto):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default="off,interval,fsync")
    args = parser.parse_args()
    results = {}
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="ringmq-bench-bridge-") as directory:
        os.chmod(directory, 0o777)  # Mosquitto started as root runs as user mosquitto
        for _ in range(args.rounds):
            for mode in modes:  # interleaved, so machine noise spreads over all modes
                results.setdefault(mode, []).append(
                    run_round(args.binary, directory, mode, args.messages, args.window))
    base_rate = statistics.median(r for r, _ in results[modes[0]])
    base_cpu = statistics.median(c for _, c in results[modes[0]])
    print(f"{args.messages} QoS 1 messages of 64 bytes, window {args.window}, "
          f"median of {args.rounds} rounds")
    print(f"{'persistence':<12} {'msgs/s':>10} {'ratio':>7} {'ringmq CPU us/msg':>18} {'ratio':>7}")
    for mode in modes:
        rate = statistics.median(r for r, _ in results[mode])
        cpu = statistics.median(c for _, c in results[mode])
        print(f"{mode:<12} {rate:>10.0f} {rate / base_rate:>7.2f} {cpu:>18.1f} "
              f"{cpu / base_cpu:>7.2f}")


if __name__ == "__main__":
    main()
