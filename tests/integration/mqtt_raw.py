"""Tiny raw-socket MQTT 3.1/3.1.1 helpers for the integration tests.

Everything here builds bytes by hand so that tests can send packets no real client would: wrong
flags, missing fields, surplus bytes, odd protocol names and levels. Every socket operation has a
timeout; nothing here blocks forever.
"""

import socket
import struct
import time

HOST = "127.0.0.1"
# Default bound for one socket operation (connect, one packet read, waiting for a close).
TIMEOUT = 5.0

# Packet types (§2.2.1).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ_T, PINGRESP_T, DISCONNECT_T = (
    8, 9, 10, 11, 12, 13, 14)

PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"
DISCONNECT = b"\xe0\x00"


# ---------------------------------------------------------------------------------------------
# Encoding


def remaining_length(n):
    """The variable-length Remaining Length encoding (§2.2.3)."""
    assert 0 <= n <= 268_435_455, n
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(value):
    """A length-prefixed string. `value` may be str (UTF-8 encoded) or raw bytes (sent as is)."""
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return struct.pack("!H", len(raw)) + raw


def packet(first_byte, body=b""):
    """Fixed header (type/flags byte + remaining length) followed by `body`."""
    return bytes([first_byte]) + remaining_length(len(body)) + bytes(body)


def connect(client_id="c", *, proto_name=None, level=4, clean=True, keepalive=60,
            will_topic=None, will_message=b"", will_qos=0, will_retain=False,
            username=None, password=None, flags=None, payload=None, extra=b"",
            properties=None):
    """A CONNECT packet.

    By default the flags byte is derived from the fields given; pass `flags` to force any byte
    (the payload is still built from the fields given, so flags and payload can disagree on
    purpose). `payload` replaces the whole payload; `extra` is appended after it (surplus bytes).
    `proto_name` defaults to "MQIsdp" for level 3 and "MQTT" otherwise. `properties` (bytes) is
    inserted after the keep alive, as MQTT 5 does.
    """
    if proto_name is None:
        proto_name = "MQIsdp" if level == 3 else "MQTT"
    if flags is None:
        flags = 0
        if clean:
            flags |= 0x02
        if will_topic is not None:
            flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        if password is not None:
            flags |= 0x40
        if username is not None:
            flags |= 0x80
    header = mqtt_string(proto_name) + bytes([level, flags]) + struct.pack("!H", keepalive)
    if properties is not None:
        header += properties
    if payload is None:
        payload = mqtt_string(client_id)
        if will_topic is not None:
            payload += mqtt_string(will_topic) + mqtt_string(will_message)
        if username is not None:
            payload += mqtt_string(username)
        if password is not None:
            payload += mqtt_string(password)
    return packet(0x10, header + payload + extra)


def publish(topic, payload=b"", *, qos=0, packet_id=None, retain=False, dup=False,
            flags=None):
    """A PUBLISH. `packet_id` defaults to 1 for QoS > 0 and is omitted for QoS 0 unless given."""
    if flags is None:
        flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    if packet_id is None and qos > 0:
        packet_id = 1
    body = mqtt_string(topic)
    if packet_id is not None:
        body += struct.pack("!H", packet_id)
    if isinstance(payload, str):
        payload = payload.encode()
    return packet(0x30 | flags, body + payload)


def subscribe(packet_id, filters, *, flags=0x02):
    """A SUBSCRIBE; `filters` is a list of (topic_filter, requested_qos_byte)."""
    body = struct.pack("!H", packet_id)
    for topic_filter, qos in filters:
        body += mqtt_string(topic_filter) + bytes([qos])
    return packet(0x80 | flags, body)


def unsubscribe(packet_id, filters, *, flags=0x02):
    body = struct.pack("!H", packet_id)
    for topic_filter in filters:
        body += mqtt_string(topic_filter)
    return packet(0xA0 | flags, body)


def pubrel(packet_id, *, flags=0x02):
    return packet(0x60 | flags, struct.pack("!H", packet_id))


def ack(packet_type, packet_id, flags=0):
    """PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK bytes, for comparing with what the server sent."""
    return packet((packet_type << 4) | flags, struct.pack("!H", packet_id))


def connack(return_code, session_present=False):
    return bytes([0x20, 0x02, 0x01 if session_present else 0x00, return_code])


# ---------------------------------------------------------------------------------------------
# Sockets


class ProtocolError(AssertionError):
    """The server sent something other than what the test expected."""


def open_socket(port, *, timeout=TIMEOUT, nodelay=True):
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.settimeout(timeout)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exact(sock, n, deadline, what):
    data = bytearray()
    while len(data) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProtocolError(f"timed out reading {what}: got {bytes(data)!r} of {n} bytes")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(n - len(data))
        except socket.timeout:
            raise ProtocolError(
                f"timed out reading {what}: got {bytes(data)!r} of {n} bytes") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise ProtocolError(f"connection closed while reading {what}: got {bytes(data)!r}")
        data += chunk
    return bytes(data)


class Packet:
    """One packet read off the wire."""

    def __init__(self, raw, header_len):
        self.raw = raw
        self.first_byte = raw[0]
        self.type = raw[0] >> 4
        self.flags = raw[0] & 0x0F
        self.body = raw[header_len:]

    def __repr__(self):
        return f"Packet(type={self.type}, flags={self.flags:#x}, raw={self.raw!r})"


def read_packet(sock, timeout=TIMEOUT):
    """Reads exactly one packet (never more bytes than it spans) or raises ProtocolError."""
    deadline = time.monotonic() + timeout
    header = _recv_exact(sock, 1, deadline, "fixed header")
    multiplier, length = 1, 0
    for _ in range(4):
        byte = _recv_exact(sock, 1, deadline, "remaining length")
        header += byte
        length += (byte[0] & 0x7F) * multiplier
        multiplier *= 128
        if not byte[0] & 0x80:
            break
    else:
        raise ProtocolError(f"remaining length longer than 4 bytes: {header!r}")
    body = _recv_exact(sock, length, deadline, f"{length}-byte body after {header!r}")
    return Packet(header + body, len(header))


def expect_packet(sock, expected, timeout=TIMEOUT, what=None):
    """Reads one packet and asserts its bytes equal `expected`."""
    try:
        got = read_packet(sock, timeout)
    except ProtocolError as e:
        raise ProtocolError(f"expected {what or ''} {expected!r}: {e}") from None
    if got.raw != expected:
        raise ProtocolError(f"expected {what or ''} {expected!r}, got {got.raw!r}")
    return got


def expect_connack(sock, return_code, session_present=False, timeout=TIMEOUT):
    return expect_packet(sock, connack(return_code, session_present), timeout,
                         what=f"CONNACK 0x{return_code:02x}")


def expect_eof(sock, timeout=TIMEOUT, what="the server to close the connection"):
    """Asserts that the peer closes the connection within `timeout` with no further bytes.

    A reset counts as a close. Returns the seconds waited.
    """
    start = time.monotonic()
    deadline = start + timeout
    data = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProtocolError(f"expected {what} with no bytes within {timeout:.1f}s; "
                                f"connection still open, received {bytes(data)!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    if data:
        raise ProtocolError(f"expected {what} with no bytes, but received {bytes(data)!r} "
                            "before the close")
    return time.monotonic() - start


def expect_silence(sock, seconds):
    """Asserts that nothing arrives and the connection stays open for `seconds`."""
    sock.settimeout(seconds)
    try:
        chunk = sock.recv(4096)
    except socket.timeout:
        return
    except ConnectionResetError:
        chunk = b""
    if chunk:
        raise ProtocolError(f"expected no reply, got {chunk!r}")
    raise ProtocolError("expected the connection to stay open, but the server closed it")


def send(sock, data):
    sock.sendall(data)


def try_send(sock, data):
    """Sends, tolerating a connection the server already closed (tests then expect EOF)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def connect_client(port, client_id="c", *, expect=0, timeout=TIMEOUT, **fields):
    """Opens a socket, sends a CONNECT and asserts the CONNACK return code `expect`.

    Returns the open socket (for a refusal the caller usually calls expect_eof next).
    """
    sock = open_socket(port, timeout=timeout)
    try:
        sock.sendall(connect(client_id, **fields))
        expect_connack(sock, expect, timeout=timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def ping(sock, timeout=TIMEOUT):
    """PINGREQ and assert PINGRESP."""
    sock.sendall(PINGREQ)
    expect_packet(sock, PINGRESP, timeout, what="PINGRESP")


def disconnect(sock, timeout=TIMEOUT):
    """DISCONNECT, assert the server closes, close our end."""
    try:
        sock.sendall(DISCONNECT)
        expect_eof(sock, timeout, what="the server to close after DISCONNECT")
    finally:
        sock.close()
