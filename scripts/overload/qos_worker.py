#!/usr/bin/python3
"""A killable MQTT client for kill_clients.py: it keeps its session state in an append-only
log, so that after a SIGKILL the next incarnation resumes the session as the protocol requires
(clean session 0, MQTT-4.4.0-1: resend unacknowledged PUBLISHes with DUP and PUBRELs).

    qos_worker.py pub --port P --id ID --qos 1|2 --log FILE [--rate R] [--window W] [--drain]
    qos_worker.py sub --port P --id ID --log FILE [--idle-exit SECONDS]

Each log line is written with one os.write on an O_APPEND descriptor before the packet it
describes is sent (or right after the packet it describes is received), so a SIGKILL never
leaves a line half written and the log never claims more than happened on the wire.
  pub:  "send PID SEQ"  PUBLISH about to be sent      "rec PID"  PUBREC received
        "ack PID SEQ"   PUBACK / PUBCOMP received (the message is acknowledged)
  sub:  "msg QOS DUP PID TOPIC SEQ"  PUBLISH received   "rel PID"  PUBREL received
"""

import argparse
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "integration"))
import mqtt_raw as m  # noqa: E402

TOPIC_PREFIX = "kill/"


def connect(args, resumed):
    """Connects with clean session 0. The log says whether a session should exist; a kill in
    the microseconds between a CONNACK and its log line can make it wrong, so the other answer
    is accepted on a second try."""
    try:
        return m.Client(args.port, args.id, clean=False, session_present=resumed, timeout=10)
    except m.ProtocolError:
        return m.Client(args.port, args.id, clean=False, session_present=not resumed, timeout=10)


class Log:
    def __init__(self, path):
        self.lines = []
        if os.path.exists(path):
            with open(path) as f:
                self.lines = [line.split() for line in f if line.endswith("\n")]
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, *fields):
        os.write(self.fd, (" ".join(str(x) for x in fields) + "\n").encode())


def publisher(args):
    log = Log(args.log)
    sent, recd, acked = {}, set(), set()
    next_seq = 0
    for f in log.lines:
        if f[0] == "send":
            sent[int(f[1])] = int(f[2])
            next_seq = max(next_seq, int(f[2]) + 1)
        elif f[0] == "rec":
            recd.add(int(f[1]))
        elif f[0] == "ack":
            acked.add(int(f[1]))
            sent.pop(int(f[1]), None)
            recd.discard(int(f[1]))
    inflight = dict(sent)  # pid -> seq, not yet acknowledged
    resumed = any(f[0] == "connected" for f in log.lines)
    c = connect(args, resumed)
    log.write("connected")
    topic = f"{TOPIC_PREFIX}q{args.qos}"
    # Resume (MQTT-4.4.0-1): PUBREL for what was PUBREC'd, PUBLISH with DUP for the rest.
    for pid, seq in sorted(inflight.items()):
        if pid in recd:
            c.send(m.pubrel(pid))
        else:
            c.send(m.publish(topic, struct.pack("!I", seq), qos=args.qos, packet_id=pid,
                             dup=True))
    pid = max(inflight, default=0)
    interval = 1.0 / args.rate
    next_t = time.monotonic()

    def handle(pkt):
        (p,) = struct.unpack("!H", pkt.body[:2])
        if pkt.type == m.PUBACK or pkt.type == m.PUBCOMP:
            if p in inflight:
                log.write("ack", p, inflight.pop(p))
        elif pkt.type == m.PUBREC:
            log.write("rec", p)
            c.send(m.pubrel(p))
        else:
            raise m.ProtocolError(f"publisher got {pkt!r}")

    while True:
        if args.drain and not inflight:
            c.disconnect()
            return
        if not args.drain and len(inflight) < args.window and time.monotonic() >= next_t:
            pid = pid % 65535 + 1
            while pid in inflight:
                pid = pid % 65535 + 1
            log.write("send", pid, next_seq)
            inflight[pid] = next_seq
            c.send(m.publish(topic, struct.pack("!I", next_seq), qos=args.qos, packet_id=pid))
            next_seq += 1
            next_t += interval
            continue
        pkt = c._parse_one()
        if pkt is None:
            c.fill(0.005)
            continue
        handle(pkt)


def subscriber(args):
    log = Log(args.log)
    resumed = any(f[0] == "subscribed" for f in log.lines)
    c = connect(args, resumed)
    if not resumed:
        c.subscribe([(TOPIC_PREFIX + "#", 2)])
        log.write("subscribed")
    last = time.monotonic()
    while True:
        pkt = c._parse_one()
        if pkt is None:
            if args.idle_exit and time.monotonic() - last > args.idle_exit:
                c.disconnect()
                return
            c.fill(0.05)
            continue
        last = time.monotonic()
        if pkt.type == m.PUBLISH:
            p = m.Publish(pkt)
            (seq,) = struct.unpack("!I", p.payload)
            log.write("msg", p.qos, int(p.dup), p.packet_id or 0, p.topic, seq)
            if p.qos == 1:
                c.send(m.ack(m.PUBACK, p.packet_id))
            elif p.qos == 2:
                c.send(m.ack(m.PUBREC, p.packet_id))
        elif pkt.type == m.PUBREL:
            (pid,) = struct.unpack("!H", pkt.body)
            log.write("rel", pid)
            c.send(m.packet(0x70, pkt.body))
        else:
            raise m.ProtocolError(f"subscriber got {pkt!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["pub", "sub"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--qos", type=int, choices=[1, 2], default=1)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--idle-exit", type=float, default=0)
    args = parser.parse_args()
    (publisher if args.role == "pub" else subscriber)(args)


if __name__ == "__main__":
    main()
