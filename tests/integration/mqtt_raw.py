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


def read_vbi(data, i):
    """(value, index after it) of the Variable Byte Integer at data[i] (MQTT 1.5.5)."""
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


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


def suback(packet_id, return_codes):
    """A SUBACK with one return code per filter (0x00..0x02 granted QoS, 0x80 failure)."""
    return packet(0x90, struct.pack("!H", packet_id) + bytes(return_codes))


# ---------------------------------------------------------------------------------------------
# Sockets


class ProtocolError(AssertionError):
    """The server sent something other than what the test expected."""


def open_socket(port, *, timeout=TIMEOUT, nodelay=True, rcvbuf=None):
    """A connected TCP socket. `rcvbuf` sets SO_RCVBUF before connecting (a small window makes
    a client that does not read push back on the server quickly)."""
    if rcvbuf is None:
        sock = socket.create_connection((HOST, port), timeout=timeout)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((HOST, port))
        except BaseException:
            sock.close()
            raise
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


# ---------------------------------------------------------------------------------------------
# Routing: parsed PUBLISH and a buffered client for tests that exchange many packets


class Publish:
    """A PUBLISH the server sent, parsed (MQTT 3.1.1 §3.3)."""

    def __init__(self, pkt):
        if pkt.type != PUBLISH:
            raise ProtocolError(f"expected a PUBLISH, got {pkt!r}")
        self.raw = pkt.raw
        self.dup = bool(pkt.flags & 0x08)
        self.qos = (pkt.flags >> 1) & 0x03
        self.retain = bool(pkt.flags & 0x01)
        body = pkt.body
        if len(body) < 2:
            raise ProtocolError(f"PUBLISH too short for a topic: {pkt!r}")
        topic_len = struct.unpack("!H", body[:2])[0]
        pos = 2 + topic_len
        if self.qos == 3 or len(body) < pos + (2 if self.qos else 0):
            raise ProtocolError(f"malformed PUBLISH from the server: {pkt!r}")
        self.topic = body[2:pos].decode("utf-8")
        self.packet_id = None
        if self.qos:
            self.packet_id = struct.unpack("!H", body[pos:pos + 2])[0]
            pos += 2
        self.payload = bytes(body[pos:])

    def __repr__(self):
        payload = self.payload if len(self.payload) <= 40 else (
            self.payload[:40] + f"...({len(self.payload)} bytes)".encode())
        return (f"Publish(topic={self.topic!r}, payload={payload!r}, qos={self.qos}, "
                f"packet_id={self.packet_id}, retain={int(self.retain)}, dup={int(self.dup)})")

    def key(self):
        """(topic, payload, qos, retain, dup): what a test usually compares."""
        return (self.topic, self.payload, self.qos, self.retain, self.dup)


class Client:
    """A connected raw MQTT client that reads through its own buffer (fast for many packets).

    PUBLISH packets that arrive while the client waits for something else (a SUBACK, a PUBACK)
    are kept, in order, and returned by the next receive. Every wait has a timeout. Use one
    Client per socket and do not mix it with the module-level read_packet on the same socket.
    """

    def __init__(self, port, client_id="c", *, expect=0, session_present=False,
                 timeout=TIMEOUT, rcvbuf=None, wrap=None, **fields):
        """`wrap`: applied to the connected socket before CONNECT (e.g. an
        ssl.SSLContext.wrap_socket for TLS)."""
        self.client_id = client_id
        self.timeout = timeout
        self.sock = open_socket(port, timeout=timeout, rcvbuf=rcvbuf)
        if wrap is not None:
            try:
                self.sock = wrap(self.sock)
            except BaseException:
                self.sock.close()
                raise
        self.buf = bytearray()
        self.pos = 0
        self.pending = []  # packets read ahead (PUBLISH/PUBREL kept for later receives)
        self.awaiting_pubrel = set()  # QoS 2 ids this client sent PUBREC for
        self.next_id = 0
        try:
            self.sock.sendall(connect(client_id, **fields))
            got = self.read_packet(timeout)
            want = connack(expect, session_present)
            if got.raw != want:
                raise ProtocolError(f"{client_id!r}: expected CONNACK {want!r}, got {got.raw!r}")
        except BaseException:
            self.sock.close()
            raise

    # -- raw I/O -----------------------------------------------------------------------------

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        self.sock.sendall(data)

    def _parse_one(self):
        """A complete packet from the buffer, or None."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos < 2:
            return None
        multiplier, length, i = 1, 0, pos + 1
        while True:
            if i >= len(buf):
                return None
            byte = buf[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                break
            if i - pos > 4:
                raise ProtocolError(f"{self.client_id!r}: remaining length longer than 4 bytes")
        end = i + length
        if end > len(buf):
            return None
        pkt = Packet(bytes(buf[pos:end]), i - pos)
        self.pos = end
        if self.pos > 1 << 20 or self.pos == len(buf):
            del self.buf[:self.pos]
            self.pos = 0
        return pkt

    def fill(self, timeout):
        """One recv into the buffer. Returns False on timeout; raises on a close."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 18)
        except socket.timeout:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise ProtocolError(f"{self.client_id!r}: connection closed by the server "
                                f"({len(self.buf) - self.pos} unparsed bytes)")
        self.buf += chunk
        return True

    def read_packet(self, timeout=None, what="a packet"):
        """The next packet (read-ahead packets first) or ProtocolError on timeout/close."""
        if self.pending:
            return self.pending.pop(0)
        return self._read_wire(timeout, what)

    def _read_wire(self, timeout=None, what="a packet"):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            pkt = self._parse_one()
            if pkt is not None:
                return pkt
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.fill(remaining):
                if time.monotonic() >= deadline:
                    raise ProtocolError(f"{self.client_id!r}: timed out waiting for {what}")

    def expect_reply(self, want, what, timeout=None):
        """Reads until the packet `want` (bytes); PUBLISH and PUBREL before it are kept."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            pkt = self._read_wire(max(0.0, deadline - time.monotonic()), what)
            if pkt.raw == want:
                return pkt
            if pkt.type in (PUBLISH, PUBREL):
                self.pending.append(pkt)
                continue
            raise ProtocolError(f"{self.client_id!r}: expected {what} {want!r}, got {pkt!r}")

    # -- operations ----------------------------------------------------------------------------

    def new_id(self):
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    def subscribe(self, filters, granted=None, timeout=None):
        """SUBSCRIBE [(filter, qos)]; asserts the SUBACK grants `granted` (default: the
        requested QoS of each filter)."""
        packet_id = self.new_id()
        codes = [q for _, q in filters] if granted is None else list(granted)
        self.send(subscribe(packet_id, filters))
        self.expect_reply(suback(packet_id, codes), f"SUBACK {codes}", timeout)

    def unsubscribe(self, filters, timeout=None):
        packet_id = self.new_id()
        self.send(unsubscribe(packet_id, filters))
        self.expect_reply(ack(UNSUBACK, packet_id), "UNSUBACK", timeout)

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=None, timeout=None):
        """Publishes and completes the QoS 1/2 handshake. Returns the packet id used."""
        if qos and packet_id is None:
            packet_id = self.new_id()
        self.send(publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain))
        if qos == 1:
            self.expect_reply(ack(PUBACK, packet_id), f"PUBACK {packet_id}", timeout)
        elif qos == 2:
            self.expect_reply(ack(PUBREC, packet_id), f"PUBREC {packet_id}", timeout)
            self.send(pubrel(packet_id))
            self.expect_reply(ack(PUBCOMP, packet_id), f"PUBCOMP {packet_id}", timeout)
        return packet_id

    def ping(self, timeout=None):
        self.send(PINGREQ)
        self.expect_reply(PINGRESP, "PINGRESP", timeout)

    def next_publish(self, timeout=None, what="a PUBLISH"):
        """The next PUBLISH (not acknowledged). Any other packet is a ProtocolError."""
        pkt = self.read_packet(timeout, what)
        if pkt.type != PUBLISH:
            raise ProtocolError(f"{self.client_id!r}: expected {what}, got {pkt!r}")
        return Publish(pkt)

    def acknowledge(self, pub):
        """PUBACK for QoS 1, PUBREC for QoS 2 (the PUBREL that follows is answered with
        PUBCOMP by receive(), expect_no_publish() and receive_all())."""
        if pub.qos == 1:
            self.send(ack(PUBACK, pub.packet_id))
        elif pub.qos == 2:
            self.send(ack(PUBREC, pub.packet_id))
            self.awaiting_pubrel.add(pub.packet_id)

    def answer_pubrel(self, pkt):
        """If `pkt` is the PUBREL of a QoS 2 delivery this client PUBREC'd, sends PUBCOMP and
        returns True."""
        if pkt.type != PUBREL or pkt.flags != 0x02 or len(pkt.body) != 2:
            return False
        packet_id = struct.unpack("!H", pkt.body)[0]
        if packet_id not in self.awaiting_pubrel:
            raise ProtocolError(f"{self.client_id!r}: PUBREL for packet id {packet_id}, which "
                                f"was not PUBREC'd (awaiting {sorted(self.awaiting_pubrel)})")
        self.awaiting_pubrel.discard(packet_id)
        self.send(packet(0x70, pkt.body))  # PUBCOMP
        return True

    def receive(self, n, timeout=None, ack=True, what=None):
        """Collects `n` PUBLISHes within `timeout`. With ack, QoS 1 gets PUBACK, QoS 2 gets
        PUBREC and each PUBREL from the server gets its PUBCOMP; a PUBREL for an id never
        PUBREC'd is a ProtocolError. Returns the list of Publish."""
        out = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(out) < n:
            remaining = deadline - time.monotonic()
            try:
                pkt = self.read_packet(max(0.0, remaining))
            except ProtocolError as e:
                raise ProtocolError(f"{e}; {what or 'receive'}: got {len(out)} of {n} "
                                    f"PUBLISHes, last {out[-1:]}") from None
            if pkt.type == PUBLISH:
                pub = Publish(pkt)
                out.append(pub)
                if ack:
                    self.acknowledge(pub)
            elif not self.answer_pubrel(pkt):
                raise ProtocolError(f"{self.client_id!r}: expected a PUBLISH, got {pkt!r}")
        return out

    def expect_no_publish(self, seconds):
        """Asserts that nothing but the PUBRELs of QoS 2 deliveries this client PUBREC'd
        (answered with PUBCOMP) arrives for `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            if self.pending:
                pkt = self.pending.pop(0)
            else:
                pkt = self._parse_one()
            if pkt is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.fill(remaining)
                continue
            if self.answer_pubrel(pkt):
                continue
            desc = repr(Publish(pkt)) if pkt.type == PUBLISH else repr(pkt)
            raise ProtocolError(f"{self.client_id!r}: expected nothing, got {desc}")

    def disconnect(self, timeout=None):
        """DISCONNECT; asserts the server closes (unread PUBLISHes are discarded)."""
        try:
            self.sock.sendall(DISCONNECT)
            self.expect_eof(timeout, discard=True)
        finally:
            self.sock.close()

    def expect_eof(self, timeout=None, discard=False, what="the server to close"):
        """Asserts the server closes within `timeout`. Unless `discard`, bytes before the
        close are a ProtocolError. Returns the seconds waited."""
        start = time.monotonic()
        deadline = start + (self.timeout if timeout is None else timeout)
        while True:
            if not discard and (self.pending or len(self.buf) > self.pos):
                raise ProtocolError(f"{self.client_id!r}: expected {what} with no bytes, got "
                                    f"{self.pending!r} {bytes(self.buf[self.pos:])[:64]!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError(f"{self.client_id!r}: expected {what} within "
                                    f"{time.monotonic() - start:.1f}s; still open")
            try:
                self.fill(remaining)
            except ProtocolError:
                return time.monotonic() - start
            if discard:
                self.buf.clear()
                self.pos = 0
                self.pending.clear()

    def close(self):
        """Closes the socket without DISCONNECT (an abrupt close for the server)."""
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


def receive_all(clients, counts, timeout, ack=True):
    """Reads `counts[i]` PUBLISHes on each of `clients` concurrently (one selector loop, one
    deadline), acknowledging like Client.receive. Returns one list of Publish per client."""
    import selectors
    out = [[] for _ in clients]
    sel = selectors.DefaultSelector()
    try:
        for i, c in enumerate(clients):
            out[i].extend(_drain(c, counts[i], ack))
            if len(out[i]) < counts[i]:
                sel.register(c.sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + timeout
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                short = {clients[i].client_id: f"{len(out[i])}/{counts[i]}"
                         for i in range(len(clients)) if len(out[i]) < counts[i]}
                raise ProtocolError(f"timed out after {timeout}s; received/expected: {short}")
            for key, _ in sel.select(min(remaining, 0.2)):
                i = key.data
                c = clients[i]
                c.fill(0.001)
                out[i].extend(_drain(c, counts[i] - len(out[i]), ack))
                if len(out[i]) >= counts[i]:
                    sel.unregister(c.sock)
    finally:
        sel.close()
    return out


def _drain(client, limit, ack):
    """Publishes already buffered in `client`, at most `limit`, acknowledged like receive()."""
    got = []
    while len(got) < limit:
        if client.pending:
            pkt = client.pending.pop(0)
        else:
            pkt = client._parse_one()
        if pkt is None:
            break
        if pkt.type == PUBLISH:
            pub = Publish(pkt)
            got.append(pub)
            if ack:
                client.acknowledge(pub)
        elif not client.answer_pubrel(pkt):
            raise ProtocolError(f"{client.client_id!r}: expected a PUBLISH, got {pkt!r}")
    return got


def expect_quiet(clients, seconds):
    """Asserts that none of `clients` receives anything for `seconds` (waiting once for all
    of them), except PUBRELs of QoS 2 deliveries they PUBREC'd, which get their PUBCOMP."""
    time.sleep(seconds)
    for c in clients:
        while True:
            c.expect_no_publish(0.0)
            try:
                c.sock.setblocking(False)
                chunk = c.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionResetError:
                chunk = b""
            finally:
                c.sock.setblocking(True)
            if chunk == b"":
                raise ProtocolError(f"{c.client_id!r}: connection closed by the server")
            c.buf += chunk
        if len(c.buf) > c.pos:
            raise ProtocolError(f"{c.client_id!r}: expected nothing, got the bytes "
                                f"{bytes(c.buf[c.pos:])[:64]!r}")
