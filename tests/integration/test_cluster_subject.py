"""The MQTT topic <-> NATS subject table (tests/cluster/subject_cases.txt, which the unit test
tests/cluster/subject_test.cc checks src/cluster/subject.cc against) proven against nats-server's
own MQTT listener, the convention ringmq follows so that NATS applications see the same subjects.

A nats-server with JetStream (its MQTT listener needs it) and an MQTT listener runs on free ports
of 127.0.0.1 (nats_cluster.NatsCluster of one server); a raw NATS client (nats_cluster.NatsClient:
the client protocol is text, CONNECT, SUB, PUB, MSG, PING) and raw MQTT clients talk to it. Every
`map` row goes both ways: an MQTT PUBLISH to the topic reaches a NATS subscriber on the row's
subject, and a NATS PUB to the subject reaches an MQTT subscriber of the topic. `filter` rows: an
MQTT subscription to the filter on nats-server gets exactly the `map` rows' topics whose subjects
the row's NATS subjects match. `refuse` rows show what nats-server does with what ringmq refuses
to carry.

nats-server before 2.10 (Debian 12 ships 2.9) has no '.' in topics: it closes an MQTT publisher
of such a topic and refuses the subscription (SUBACK 0x80), which the test asserts instead there.
"""

import os
import re
import time
import unittest

import mqtt_raw as m
import nats_cluster
from nats_cluster import NatsClient

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_PATH = os.path.join(HERE, "..", "cluster", "subject_cases.txt")
WAIT = 5.0  # for one expected message or close
# nats-server's max_control_line default: a longer PUB line closes the client.
MAX_CONTROL_LINE = 4096


# ---------------------------------------------------------------------------------------------
# The table (format at its top; the unit test's parser reads it the same way).


def unescape(field):
    out = bytearray()
    raw = field.encode("utf-8")
    i = 0
    while i < len(raw):
        c = raw[i:i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        kind = raw[i + 1:i + 2]
        simple = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r", b"f": b"\f"}
        if kind in simple:
            out += simple[kind]
            i += 2
        elif kind == b"x":
            out.append(int(raw[i + 2:i + 4], 16))
            i += 4
        elif kind == b"{":
            close = raw.index(b"}", i)
            count, text = raw[i + 2:close].split(b":", 1)
            out += text * int(count)
            i = close + 1
        else:
            raise ValueError(f"bad escape in {field!r}")
    return bytes(out)


def load_cases():
    cases = []
    with open(CASES_PATH, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            kind = fields[0]
            if kind == "map":
                cases.append((kind, unescape(fields[1]), unescape(fields[2]), number))
            elif kind == "refuse":
                cases.append((kind, unescape(fields[1]), fields[2], number))
            elif kind == "unmapped":
                cases.append((kind, unescape(fields[1]), None, number))
            elif kind == "filter":
                subjects = [unescape(field) for field in fields[2:] if field]
                cases.append((kind, unescape(fields[1]), subjects, number))
            else:
                raise ValueError(f"subject_cases.txt:{number}: unknown kind {kind!r}")
    return cases


def nats_matches(pattern, subject):
    """NATS subject matching: '*' one token, a last '>' one token or more."""
    p, s = pattern.split(b"."), subject.split(b".")
    for i, token in enumerate(p):
        if token == b">" and i == len(p) - 1:
            return len(s) > i
        if i >= len(s) or (token != b"*" and token != s[i]):
            return False
    return len(p) == len(s)


# ---------------------------------------------------------------------------------------------
# What the raw NATS client (nats_cluster.NatsClient) receives.


def subject_bytes(msg):
    return msg.subject.encode("utf-8", "surrogateescape")


def tagged_subjects(client, tags, deadline):
    """{payload: subject} of the MSGs whose payload is in `tags`, until all came."""
    seen = {}
    while len(seen) < len(tags):
        try:
            msg = client.next_msg(max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            raise AssertionError("timed out waiting for nats-server") from None
        if msg.payload in tags:
            seen[msg.payload] = subject_bytes(msg)
    return seen


def version_tuple(text):
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def mqtt_publish_closes(port, topic, payload):
    """Publishes `topic` from a fresh MQTT client; True when nats-server closes it for that."""
    with m.Client(port, "refused") as client:
        client.send(m.publish(topic, payload))
        try:
            client.send(m.PINGREQ)
            client.read_packet(timeout=WAIT, what="PINGRESP")
            return False
        except (m.ProtocolError, OSError):
            return True


def suback_codes(client):
    """The return codes of the next SUBACK; PUBLISHes before it are kept for later."""
    deadline = time.monotonic() + WAIT
    early = []
    while True:
        pkt = client.read_packet(timeout=max(deadline - time.monotonic(), 0.001), what="SUBACK")
        if pkt.type == m.SUBACK:
            client.pending[:0] = early
            return list(pkt.body[2:])
        if pkt.type != m.PUBLISH:
            raise AssertionError(f"expected a SUBACK, got {pkt!r}")
        early.append(pkt)


def received_topics(client, want, quiet=0.2):
    """The topics of the PUBLISHes received until every topic of `want` came and then nothing
    for `quiet` seconds (within WAIT)."""
    got = set()
    deadline = time.monotonic() + WAIT
    quiet_until = None
    while True:
        now = time.monotonic()
        if want <= got and quiet_until is None:
            quiet_until = now + quiet
        end = quiet_until if quiet_until is not None else deadline
        if now >= end:
            return got
        try:
            pkt = client.read_packet(timeout=end - now, what="a PUBLISH")
        except m.ProtocolError:
            if quiet_until is None and time.monotonic() >= deadline:
                return got  # the caller's comparison says what is missing
            continue
        got.add(m.Publish(pkt).topic.encode("utf-8"))


class ClusterSubjectTable(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        reason = nats_cluster.available()
        if reason:
            raise AssertionError(reason)
        cls.cases = load_cases()
        cls.cluster = nats_cluster.NatsCluster(1, mqtt=True).start()
        cls.server = cls.cluster.servers[0]

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def setUp(self):
        self.nats = NatsClient(self.server.port, name="subject-test", headers=False, timeout=WAIT)
        self.nats.sub(">")
        self.nats.flush()
        self.dots = version_tuple(self.nats.info["version"]) >= (2, 10)

    def tearDown(self):
        self.nats.close()

    def rows(self, kind):
        return [c for c in self.cases if c[0] == kind]

    def tag(self, number):
        return b"case-%d" % number

    def test_table_is_read(self):
        self.assertGreaterEqual(len(self.rows("map")), 40)
        self.assertGreaterEqual(len(self.rows("refuse")), 20)

    def test_mqtt_publish_reaches_nats_on_the_tables_subject(self):
        expected = {}
        with m.Client(self.server.mqtt_port, "subject-pub") as pub:
            for _, topic, subject, number in self.rows("map"):
                if b"." in topic and not self.dots:
                    self.assertTrue(mqtt_publish_closes(self.server.mqtt_port, topic, b"x"),
                                    f"line {number}: nats-server < 2.10 refuses a '.' in {topic}")
                    continue
                pub.send(m.publish(topic, self.tag(number)))
                expected[self.tag(number)] = (subject, number)
            pub.ping()
        self.assertGreaterEqual(len(expected), 30)
        seen = tagged_subjects(self.nats, set(expected), time.monotonic() + WAIT)
        for tag, (subject, number) in expected.items():
            self.assertEqual(seen[tag], subject, f"subject_cases.txt:{number}")

    def test_nats_publish_reaches_mqtt_on_the_tables_topic(self):
        rows = self.rows("map")
        with m.Client(self.server.mqtt_port, "subject-sub") as sub:
            codes = []
            for packet_id, start in enumerate(range(0, len(rows), 8), 1):
                chunk = rows[start:start + 8]
                sub.send(m.subscribe(packet_id, [(topic, 0) for _, topic, _, _ in chunk]))
                suback = sub.read_packet(timeout=WAIT, what="SUBACK")
                self.assertEqual(suback.type, m.SUBACK)
                codes += list(suback.body[2:])
            expected = {}
            for (_, topic, subject, number), code in zip(rows, codes, strict=True):
                if b"." in topic and not self.dots:
                    self.assertEqual(code, 0x80, f"line {number}: nats-server < 2.10 refuses "
                                                 f"a subscription to {topic}")
                    continue
                self.assertEqual(code, 0, f"subject_cases.txt:{number}")
                line = b"PUB %s %d\r\n" % (subject, len(self.tag(number)))
                self.assertLess(len(line), MAX_CONTROL_LINE)
                self.nats.send(line + self.tag(number) + b"\r\n")
                expected[self.tag(number)] = (topic, number)
            self.nats.flush()
            got = {}
            for _ in expected:
                publish = sub.next_publish(timeout=WAIT)
                got[publish.payload] = publish.topic.encode("utf-8")
            sub.expect_no_publish(0.2)
        for tag, (topic, number) in expected.items():
            self.assertEqual(got.get(tag), topic, f"subject_cases.txt:{number}")

    # nats-server's MQTT subscriptions match '$' first levels too (unlike MQTT-4.7.2-1): "#"
    # also gets its own JetStream traffic ($JS/API/..., $MQTT/...). Only the map rows' topics
    # count here; the receiving ringmq node matches again with its own trie.
    def test_filters_get_what_their_subjects_cover(self):
        targets = {topic: subject for _, topic, subject, _ in self.rows("map")
                   if self.dots or b"." not in topic}
        checked = 0
        for _, flt, subjects, number in self.rows("filter"):
            if not subjects:
                continue  # no NATS interest; nats-server's own take: the wildcard test below
            # A client id per row: nats-server (2.9) may still be ending the previous row's
            # session (in JetStream) when the next CONNECT with the same id arrives, and then
            # closes the new connection.
            with m.Client(self.server.mqtt_port, f"filter-sub-{number}") as sub:
                sub.send(m.subscribe(1, [(flt, 0)]))
                code = suback_codes(sub)[0]
                if b"." in flt and not self.dots:
                    self.assertEqual(code, 0x80, f"line {number}: nats-server < 2.10")
                    continue
                self.assertEqual(code, 0, f"subject_cases.txt:{number}")
                covered = {topic for topic, subject in targets.items()
                           if any(nats_matches(pattern, subject) for pattern in subjects)}
                for i, subject in enumerate(targets.values()):
                    self.nats.send(b"PUB %s 1\r\n%c\r\n" % (subject, 0x30 + i % 10))
                self.nats.flush()
                got = received_topics(sub, covered) & set(targets)
                self.assertEqual(got, covered, f"subject_cases.txt:{number}")
                checked += 1
        self.assertGreaterEqual(checked, 15)

    def test_not_topic_names_close_the_mqtt_publisher(self):
        rows = [row for row in self.rows("refuse") if row[2] == "not_a_topic_name"]
        self.assertGreaterEqual(len(rows), 5)
        for _, topic, _, number in rows:
            self.assertTrue(mqtt_publish_closes(self.server.mqtt_port, topic, b"x"),
                            f"subject_cases.txt:{number}")

    # NATS subjects hold no whitespace; nats-server refuses a space in a topic, and since 2.12.9
    # and 2.14.1 the other whitespace too. Before, it carries '\t' '\n' '\r' '\f' into a MSG
    # line whose fields, read the protocol's way (split at whitespace), no longer give the
    # subject.
    def test_whitespace_is_refused_or_breaks_the_msg_line(self):
        rows = [row for row in self.rows("refuse") if row[2] == "whitespace"]
        self.assertGreaterEqual(len(rows), 5)
        for _, topic, _, number in rows:
            tag = self.tag(number)
            if mqtt_publish_closes(self.server.mqtt_port, topic, tag):
                continue
            self.assertNotIn(b" ", topic, f"line {number}: a space is always refused")
            raw = self.nats.read_raw_until(tag + b"\r\n", WAIT)
            subject = topic.replace(b"/", b".")
            at = raw.index(b"MSG " + subject + b" ")
            fields = raw[at:].split(b"\r\n", 1)[0].split()
            self.assertNotEqual(fields[1], subject, f"line {number}")
            self.nats.close()  # the stream may be out of step now
            self.setUp()

    def test_delete_is_refused_or_carried_as_it_is(self):
        rows = [row for row in self.rows("refuse") if row[2] == "delete"]
        self.assertGreaterEqual(len(rows), 1)
        for _, topic, _, number in rows:
            tag = self.tag(number)
            if mqtt_publish_closes(self.server.mqtt_port, topic, tag):
                continue  # nats-server refuses DEL since 2.14
            seen = tagged_subjects(self.nats, {tag}, time.monotonic() + WAIT)
            self.assertEqual(seen[tag], topic.replace(b"/", b"."), f"line {number}")

    # A level "*" or ">" becomes a NATS wildcard: nats-server carries it, and its MQTT
    # subscription to the literal topic q/* (no MQTT wildcard in it) then gets q/x. ringmq
    # refuses such topics instead (the unit test shows FilterToSubjects gives no interest).
    def test_wildcard_levels_become_nats_wildcards(self):
        with m.Client(self.server.mqtt_port, "star-sub") as sub, \
                m.Client(self.server.mqtt_port, "star-pub") as pub:
            sub.send(m.subscribe(1, [("q/*", 0), ("r/>", 0)]))
            self.assertEqual(list(sub.read_packet(timeout=WAIT).body[2:]), [0, 0])
            pub.send(m.publish("q/x", b"to q/x"))
            pub.send(m.publish("r/x/y", b"to r/x/y"))
            got = sorted((p.topic, p.payload) for p in sub.receive(2, timeout=WAIT))
            self.assertEqual(got, [("q/x", b"to q/x"), ("r/x/y", b"to r/x/y")])
            expected = {}
            for _, topic, reason, number in self.rows("refuse"):
                if reason == "wildcard_level":
                    pub.send(m.publish(topic, self.tag(number)))
                    expected[self.tag(number)] = topic.replace(b"/", b".")
            pub.ping()
        seen = tagged_subjects(self.nats, set(expected), time.monotonic() + WAIT)
        self.assertEqual(seen, expected)
        for subject in seen.values():
            self.assertTrue({b"*", b">"} & set(subject.split(b".")), subject)

    # The bound on subjects (kMaxSubjectBytesDefault, 3072) keeps a PUB line under nats-server's
    # max_control_line; the longest map rows were published above, a longer line closes.
    def test_control_line_over_the_limit_closes_the_nats_client(self):
        longest = max(len(subject) for _, _, subject, _ in self.rows("map"))
        self.assertEqual(longest, 3072)
        client = NatsClient(self.server.port, headers=False, timeout=WAIT)
        try:
            client.send(b"PUB " + b"a" * MAX_CONTROL_LINE + b" 1\r\nx\r\n")
            line = client.read_line()
            self.assertTrue(line.startswith(b"-ERR") and b"control line" in line.lower(), line)
        finally:
            client.close()


if __name__ == "__main__":
    unittest.main()
