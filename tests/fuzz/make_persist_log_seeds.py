#!/usr/bin/python3
"""Writes the seeds of the `persist_log` fuzz target into tests/fuzz/corpus/persist_log/.

    /usr/bin/python3 tests/fuzz/make_persist_log_seeds.py [--out DIR]

Each seed is the control byte tests/fuzz/persist_log.cc reads, then a segment file in the
format of src/persist/record.h (docs/persistence.md): 0x01 + a whole file with its header, or
0x00 + records only (the target puts a valid header in front); with bit 0x02 set the target
recomputes every record's CRC before reading, so mutations of a body reach the decoder. The logs are consistent (a
snapshot, then the events a broker logs for persistent sessions and retained messages), so that
the fuzzer starts from records DurableState::Apply accepts, plus a torn tail, a corrupt record,
a zero-filled page and headers that must be refused. File names say what each seed is.
"""

import argparse
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"RINGMQLG"
VERSION = 1

(SNAPSHOT_BEGIN, SNAPSHOT_END, SESSION, SESSION_END, SESSION_OFFLINE, SUBSCRIBE, UNSUBSCRIBE,
 MESSAGE, ENQUEUE, SENT, PUBACK, PUBREC, PUBCOMP, DISCARD, INBOUND_QOS2, INBOUND_RELEASE,
 RETAIN) = range(1, 18)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def header(shard=0, run=1, segment=0, version=VERSION):
    return MAGIC + struct.pack("<IIQQ", version, shard, run, segment)


def str16(text):
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<H", len(data)) + data


def bytes32(data):
    return struct.pack("<I", len(data)) + data


def record(kind, body=b""):
    return struct.pack("<II", len(body), crc32c(bytes([kind]) + body)) + bytes([kind]) + body


def sid(slot, generation=1):
    return (slot << 32) | generation


def session(s, client_id, expiry_s=3600, level=4, flags=0):
    """flags (bit 0: a bridge's local session) follow the client id only when not 0."""
    return record(SESSION, struct.pack("<QIB", s, expiry_s, level) + str16(client_id) +
                  (bytes([flags]) if flags else b""))


def subscribe(s, filter_, qos, identifier=0):
    return record(SUBSCRIBE, struct.pack("<QBI", s, qos, identifier) + str16(filter_))


def message(mid, topic, payload, qos=1, flags=0, expiry=0, properties=b""):
    return record(MESSAGE, struct.pack("<QBBQ", mid, qos, flags, expiry) + str16(topic) +
                  bytes32(properties) + bytes32(payload))


def enqueue(s, mid, qos=1, flags=0):
    return record(ENQUEUE, struct.pack("<QQBB", s, mid, qos, flags))


def sent(s, mid, packet_id):
    return record(SENT, struct.pack("<QQH", s, mid, packet_id))


def ack(kind, s, packet_id):
    return record(kind, struct.pack("<QH", s, packet_id))


def retain(version, topic, payload, qos=0, expiry=0, properties=b""):
    return record(RETAIN, struct.pack("<QBQ", version, qos, expiry) + str16(topic) +
                  bytes32(properties) + bytes32(payload))


def snapshot(records):
    return (record(SNAPSHOT_BEGIN) + b"".join(records) +
            record(SNAPSHOT_END, struct.pack("<Q", len(records))))


def busy_log():
    """A snapshot of two sessions, then a QoS 1 and a QoS 2 flow and a retained message."""
    a, b = sid(1), sid(2, 7)
    mid = (1 << 48) | 1
    snap = snapshot([
        session(a, "sensor-a"),
        subscribe(a, "sensors/#", 1),
        session(b, "logger", expiry_s=0xFFFFFFFF, level=5),
        subscribe(b, "sensors/+/temp", 2 | 0x04 | 0x08, identifier=42),
        message(mid, "sensors/k/temp", b"21.5", qos=2),
        enqueue(a, mid, qos=1),
        enqueue(b, mid, qos=2),
        ack(INBOUND_QOS2, b, 9),
        retain(3, "sensors/k/temp", b"21.0", qos=1),
    ])
    after = [
        sent(a, mid, 1), ack(PUBACK, a, 1),
        sent(b, mid, 2), ack(PUBREC, b, 2), ack(PUBCOMP, b, 2),
        ack(INBOUND_RELEASE, b, 9),
        message(mid + 1, "sensors/h/temp", b"19", qos=1, flags=1, expiry=1765000000000),
        enqueue(a, mid + 1), record(DISCARD, struct.pack("<QQ", a, mid + 1)),
        record(SESSION_OFFLINE, struct.pack("<QQ", b, 1765000000123)),
        record(UNSUBSCRIBE, struct.pack("<Q", a) + str16("sensors/#")),
        retain(4, "sensors/k/temp", b""),
        record(SESSION_END, struct.pack("<Q", a)),
    ]
    return snap + b"".join(after)


def seeds():
    log = busy_log()
    first_end = len(record(SNAPSHOT_BEGIN))
    out = {
        "empty_segment": b"\x01" + header(),
        "busy_whole_file": b"\x01" + header(shard=1, run=5, segment=2) + log,
        "busy_records": b"\x00" + log,
        "busy_records_crc_fixed": b"\x02" + log,
        "busy_whole_file_crc_fixed": b"\x03" + header() + log,
        "torn_tail": b"\x00" + log[:-5],
        "torn_tail_zero_filled": b"\x00" + log[:-5] + bytes(5 + 64),
        "corrupt_middle": b"\x00" + log[:first_end + 11] + bytes([log[first_end + 11] ^ 0x10]) +
                          log[first_end + 12:],
        "unknown_type": b"\x00" + record(SNAPSHOT_BEGIN) + record(99, b"\x00" * 8) + log,
        "trailing_bytes": b"\x00" + record(SESSION_END, struct.pack("<QB", 1, 0)) + log,
        "version_2_header": b"\x01" + header(version=2) + log,
        "bad_magic": b"\x01" + b"RINGMQLX" + header()[8:] + log,
        "short_header": b"\x01" + header()[:20],
    }
    # A write of several pages whose middle page the crash left unwritten (zeros).
    big = snapshot([session(sid(3), "bulk")]) + b"".join(
        message((2 << 48) | n, "bulk/%d" % n, bytes([n]) * 700) + enqueue(sid(3), (2 << 48) | n)
        for n in range(1, 20))
    # bridgeq2 lane: a bridge's session (flags byte), a resume without it, unknown flags.
    bridge = snapshot([session(sid(4), "local.edge", expiry_s=0xFFFFFFFF, level=5, flags=1)])
    out["bridge_session"] = b"\x00" + bridge + session(sid(4), "local.edge", level=5)
    out["bridge_session_unknown_flags"] = b"\x00" + snapshot([session(sid(4), "x", flags=6)])
    file = bytearray(header() + big)
    file[8192:12288] = bytes(4096)
    out["zero_page_hole"] = b"\x01" + bytes(file)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "corpus", "persist_log"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    assert crc32c(b"123456789") == 0xE3069283  # RFC 4960 appendix B
    for name, data in seeds().items():
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds()), args.out))


if __name__ == "__main__":
    main()
