#!/usr/bin/python3
"""Records what real MQTT clients send, as seeds for the `connection` fuzz target.

    /usr/bin/python3 tests/fuzz/capture_seeds.py --upstream-port PORT [--out DIR]

A broker (ringmq or Mosquitto) must listen on 127.0.0.1:PORT. This script puts a recording TCP
proxy in front of it, runs mosquitto_pub, mosquitto_sub and paho-mqtt sessions (MQTT 3.1 and
3.1.1, QoS 0/1/2, will, user name and password, retained, subscribe/unsubscribe, ping) through
the proxy, and writes each connection's client-to-server bytes behind the 8-byte control header
tests/fuzz/connection.cc reads (several headers per capture: with and without a sink, split
patterns, small caps). File names are the SHA-1 of the contents, as libFuzzer names its corpus.
"""

import argparse
import hashlib
import os
import socket
import subprocess
import threading
import time

import paho.mqtt.client as paho

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))

# (options byte, max_packet_size byte, six split lengths): see tests/fuzz/connection.cc.
HEADERS = [
    bytes([0x01, 0x00, 0, 0, 0, 0, 0, 0]),          # sink, 1 MiB, 1-byte receives
    bytes([0x01, 0x00, 255, 255, 255, 255, 255, 255]),  # sink, large receives
    bytes([0x21, 0x00, 3, 7, 1, 20, 2, 64]),        # sink, mixed splits, 1-byte sends
    bytes([0x00, 0x00, 5, 11, 2, 3, 97, 1]),        # no sink (built-in answers)
    bytes([0x0B, 0x08, 13, 1, 200, 4, 9, 30]),      # sink + handoff, small caps
    bytes([0x15, 0x00, 16, 16, 16, 16, 16, 16]),    # sink, silent, full (refused)
]


class Recorder:
    """A TCP proxy that keeps every connection's client-to-server bytes."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.captures = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((HOST, self.upstream_port))
            record = bytearray()
            with self.lock:
                self.captures.append(record)
            threading.Thread(target=self._pump, args=(client, upstream, record),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None),
                             daemon=True).start()

    @staticmethod
    def _pump(src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


def run(argv, timeout=10):
    subprocess.run(argv, timeout=timeout, check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def mosquitto_sessions(port):
    p = ["-h", HOST, "-p", str(port)]
    sub = subprocess.Popen(["mosquitto_sub", *p, "-i", "seed-sub", "-t", "seed/#", "-t", "a/+/c",
                            "-q", "2", "-C", "4", "-W", "8", "-v"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    run(["mosquitto_pub", *p, "-i", "seed-p0", "-t", "seed/q0", "-m", "hello", "-q", "0"])
    run(["mosquitto_pub", *p, "-i", "seed-p1", "-t", "seed/q1", "-m", "x" * 300, "-q", "1",
         "-r"])
    run(["mosquitto_pub", *p, "-i", "seed-p2", "-t", "seed/q2", "-m", "two", "-q", "2",
         "--will-topic", "seed/will", "--will-payload", "gone", "--will-qos", "1",
         "-u", "user", "-P", "secret"])
    run(["mosquitto_pub", *p, "-V", "mqttv31", "-i", "seed-31", "-t", "a/b/c", "-m", "31",
         "-q", "2"])
    run(["mosquitto_pub", *p, "-t", "seed/nid", "-m", "", "-q", "1", "-k", "5"])  # empty id
    run(["mosquitto_pub", *p, "-V", "mqttv5", "-t", "seed/v5", "-m", "5"])  # refused 0x01
    run(["mosquitto_sub", *p, "-V", "mqttv31", "-i", "seed-sub31", "-t", "seed/q1", "-C", "1",
         "-W", "3", "-c", "-q", "1"])
    sub.wait(10)


def paho_sessions(port):
    for protocol, name in ((paho.MQTTv311, "paho311"), (paho.MQTTv31, "paho31")):
        got = []
        c = paho.Client(client_id=f"seed-{name}", clean_session=False, protocol=protocol)
        c.username_pw_set("u", b"\x00\xffpw")
        c.will_set("seed/will/" + name, b"bye", qos=2, retain=True)
        c.on_message = lambda _c, _u, msg: got.append(msg.payload)
        c.connect(HOST, port, keepalive=2)
        c.loop_start()
        c.subscribe([("seed/paho/#", 2), ("seed/+/x", 1), ("$SYS/#", 0)])
        time.sleep(0.3)
        for qos in (0, 1, 2):
            c.publish(f"seed/paho/{qos}", f"payload {qos}".encode() * 10, qos=qos).wait_for_publish(5)
        time.sleep(2.5)  # a keepalive PINGREQ
        c.unsubscribe(["seed/+/x", "$SYS/#"])
        time.sleep(0.3)
        c.disconnect()
        c.loop_stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--out", default=os.path.join(HERE, "corpus", "connection"))
    args = parser.parse_args()
    rec = Recorder(args.upstream_port)
    mosquitto_sessions(rec.port)
    paho_sessions(rec.port)
    time.sleep(0.5)
    rec.close()
    os.makedirs(args.out, exist_ok=True)
    written = 0
    with rec.lock:
        captures = [bytes(c) for c in rec.captures if c]
    for capture in captures:
        for header in HEADERS:
            data = header + capture
            name = hashlib.sha1(data).hexdigest()
            with open(os.path.join(args.out, name), "wb") as f:
                f.write(data)
            written += 1
    print(f"{len(captures)} client connections captured ({sum(map(len, captures))} bytes); "
          f"{written} seeds written to {args.out}")


if __name__ == "__main__":
    main()
