"""Sessions (MQTT 3.1.1 §3.1.2.4, §4.1): clean session 0 keeps subscriptions and queues QoS 1/2
while the client is away, clean session 1 discards; wills (§3.1.2.5) on abrupt close, protocol
error and keep alive expiry but not after DISCONNECT; takeover by a second connection with the
same client id (MQTT-3.1.4-2).
"""

import time

import mqtt_raw as m
from broker import BrokerTestCase

QUIET = 0.3


def close_all(cs):
    for c in cs:
        c.close()


class Persistence(BrokerTestCase):
    def test_clean_session_0_keeps_subscriptions_and_queues_qos1_qos2_MQTT_3_1_2_4(self):
        b = self.start_broker()
        ids = [f"keep-{i}" for i in range(8)]
        for i, cid in enumerate(ids):
            c = m.Client(b.port, cid, clean=False)
            c.subscribe([("keep/#", 2)])
            if i % 2:
                c.disconnect()
            else:
                c.ping()
                c.close()  # an abrupt close ends the connection, not the session
        with m.Client(b.port, "keep-pub") as pub:
            time.sleep(0.2)  # let the broker see the abrupt closes
            pub.publish("keep/a", b"one", qos=1)
            pub.publish("keep/a", b"two", qos=2)
            pub.publish("keep/a", b"zero", qos=0)  # not queued for an offline session
            # The QoS 0 message must be routed while the sessions are offline: PINGRESP means
            # the publisher's shard has routed it; the pause lets the home shards drain it
            # before the reconnects race it (a reconnect first would rightly receive it).
            pub.ping()
            time.sleep(0.1)
            subs = [m.Client(b.port, cid, clean=False, session_present=True) for cid in ids]
            try:
                got = m.receive_all(subs, [2] * len(subs), timeout=5.0)
                for cid, msgs in zip(ids, got):
                    self.assertEqual([x.key() for x in msgs],
                                     [("keep/a", b"one", 1, False, False),
                                      ("keep/a", b"two", 2, False, False)], cid)
                m.expect_quiet(subs, QUIET)
                # Still subscribed without a new SUBSCRIBE.
                pub.publish("keep/b", b"online", qos=0)
                got = m.receive_all(subs, [1] * len(subs), timeout=5.0)
                for cid, msgs in zip(ids, got):
                    self.assertEqual(msgs[0].key(), ("keep/b", b"online", 0, False, False), cid)
                m.expect_quiet(subs, QUIET)
                for s in subs:
                    s.disconnect()
            finally:
                close_all(subs)
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=17, sessions_created=9,
                             subscriptions_added=8, dropped_offline_qos0=8)

    def test_clean_session_1_discards_the_old_session_MQTT_3_1_2_6(self):
        b = self.start_broker()
        with m.Client(b.port, "disc", clean=False) as c:
            c.subscribe([("disc/#", 1)])
            c.disconnect()
        with m.Client(b.port, "disc-pub") as pub:
            pub.publish("disc/t", b"queued", qos=1)  # queued for the offline session
            with m.Client(b.port, "disc", clean=True, session_present=False) as c:
                m.expect_quiet([c], QUIET)  # neither the queued message ...
                pub.publish("disc/t", b"after", qos=1)
                m.expect_quiet([c], QUIET)  # ... nor the old subscription
                c.disconnect()
            # The clean session ended with its connection: nothing left to resume.
            with m.Client(b.port, "disc", clean=False, session_present=False) as c:
                pub.publish("disc/t", b"later", qos=1)
                m.expect_quiet([c], QUIET)
                c.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=4, sessions_created=4,
                             publish_dropped_no_subscribers=2)

    def test_clean_session_1_then_clean_session_0_session_present_0(self):
        b = self.start_broker()
        ids = [f"fresh-{i}" for i in range(6)]
        for cid in ids:
            with m.Client(b.port, cid) as c:
                c.subscribe([("fresh/t", 1)])
                c.disconnect()
        for cid in ids:
            with m.Client(b.port, cid, clean=False, session_present=False) as c:
                c.disconnect()
        for cid in ids:  # the clean 0 session persists now
            with m.Client(b.port, cid, clean=False, session_present=True) as c:
                c.disconnect()
        self.assert_counters(b.stop(), connect_accepted=18, sessions_created=12)

    def test_mqtt_31_persistent_session_resumes(self):
        # MQTT 3.1 has no session-present flag (the byte is reserved, 0), but the session
        # itself persists all the same.
        b = self.start_broker()
        with m.Client(b.port, "old31", clean=False, level=3) as c:
            c.subscribe([("old/t", 1)])
            c.disconnect()
        with m.Client(b.port, "old31-pub") as pub:
            pub.publish("old/t", b"kept", qos=1)
            pub.disconnect()
        with m.Client(b.port, "old31", clean=False, level=3, session_present=False) as c:
            self.assertEqual(c.receive(1)[0].key(), ("old/t", b"kept", 1, False, False))
            m.expect_quiet([c], QUIET)
            c.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3)


class Wills(BrokerTestCase):
    def watchers(self, b, n=4, qos=2):
        ws = [m.Client(b.port, f"watch-{i}") for i in range(n)]
        for w in ws:
            w.subscribe([("will/#", qos)])
        self.addCleanup(close_all, ws)
        return ws

    def test_will_published_on_abrupt_close_MQTT_3_1_2_8(self):
        b = self.start_broker()
        ws = self.watchers(b)
        ids = [f"gone-{i}" for i in range(6)]
        for i, cid in enumerate(ids):
            c = m.Client(b.port, cid, clean=bool(i % 2), will_topic=f"will/{cid}",
                         will_message=f"{cid} vanished".encode(), will_qos=i % 3)
            c.ping()
            c.close()
        got = m.receive_all(ws, [len(ids)] * len(ws), timeout=5.0)
        want = sorted((f"will/{cid}", f"{cid} vanished".encode(), i % 3, False, False)
                      for i, cid in enumerate(ids))
        for w, msgs in zip(ws, got):
            self.assertEqual(sorted(x.key() for x in msgs), want, w.client_id)
        m.expect_quiet(ws, QUIET)
        for w in ws:
            w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=10, wills_published=6)

    def test_will_retain_flag_stores_the_will_MQTT_3_1_2_17(self):
        b = self.start_broker()
        ws = self.watchers(b, n=2)
        c = m.Client(b.port, "gone-ret", will_topic="will/ret", will_message=b"last words",
                     will_qos=1, will_retain=True)
        c.close()
        got = m.receive_all(ws, [1, 1], timeout=5.0)
        for msgs in got:  # forwarded to existing subscriptions: RETAIN=0 (MQTT-3.3.1-9)
            self.assertEqual(msgs[0].key(), ("will/ret", b"last words", 1, False, False))
        with m.Client(b.port, "late") as late:
            late.subscribe([("will/ret", 2)])
            self.assertEqual(late.receive(1)[0].key(), ("will/ret", b"last words", 1, True,
                                                         False))
            m.expect_quiet([late] + ws, QUIET)
            late.disconnect()
        for w in ws:
            w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=4, wills_published=1)

    def test_disconnect_discards_the_will_MQTT_3_14_4_3(self):
        b = self.start_broker()
        ws = self.watchers(b)
        for i in range(6):
            c = m.Client(b.port, f"polite-{i}", clean=bool(i % 2), will_topic=f"will/p{i}",
                         will_message=b"must not appear", will_qos=1)
            c.disconnect()
        # A will published after those proves the watchers work; nothing else may arrive.
        c = m.Client(b.port, "rude", will_topic="will/rude", will_message=b"bye", will_qos=1)
        c.close()
        got = m.receive_all(ws, [1] * len(ws), timeout=5.0)
        for msgs in got:
            self.assertEqual(msgs[0].key(), ("will/rude", b"bye", 1, False, False))
        m.expect_quiet(ws, QUIET)
        for w in ws:
            w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=11, wills_published=1)

    def test_reconnect_right_after_disconnect_is_no_takeover_and_publishes_no_will(self):
        # Each connection sends DISCONNECT and sees the server close it before the next one
        # (already open, so it follows at once) sends its CONNECT with the same client id: the
        # will was discarded (MQTT-3.1.2-10, MQTT-3.14.4-3) and there is nothing to take over.
        b = self.start_broker()
        ws = self.watchers(b, n=2)
        n = 40
        will = dict(will_topic="will/again", will_message=b"must not appear", will_qos=1)
        old = m.connect_client(b.port, "again", **will)
        try:
            for i in range(n):
                nxt = m.open_socket(b.port)
                old.sendall(m.DISCONNECT)
                m.expect_eof(old, what="the server to close after DISCONNECT")
                old.close()
                old = nxt
                old.sendall(m.connect("again", **will))
                m.expect_connack(old, 0)
            m.disconnect(old)
        finally:
            old.close()
        with m.Client(b.port, "again-control", will_topic="will/control",
                      will_message=b"control", will_qos=1) as control:
            control.close()
        got = m.receive_all(ws, [1] * len(ws), timeout=5.0)
        for msgs in got:
            self.assertEqual(msgs[0].key(), ("will/control", b"control", 1, False, False),
                             "a will published after its connection sent DISCONNECT")
        m.expect_quiet(ws, QUIET)
        for w in ws:
            w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2 + n + 1 + 1, wills_published=1)

    def test_keepalive_expiry_publishes_the_will_MQTT_3_1_2_8(self):
        b = self.start_broker()
        ws = self.watchers(b, n=2)
        c = m.Client(b.port, "sleepy", keepalive=1, will_topic="will/sleepy",
                     will_message=b"timed out", will_qos=2)
        t0 = time.monotonic()
        got = m.receive_all(ws, [1, 1], timeout=4.0)
        elapsed = time.monotonic() - t0
        for msgs in got:
            self.assertEqual(msgs[0].key(), ("will/sleepy", b"timed out", 2, False, False))
        self.assertGreaterEqual(elapsed, 0.9, "will published before 1 x keep alive")
        c.expect_eof(timeout=1.0, what="the server to close the expired connection")
        c.close()
        m.expect_quiet(ws, QUIET)
        for w in ws:
            w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, wills_published=1,
                             keepalive_timeout=1)

    def test_protocol_error_close_publishes_the_will_MQTT_3_1_2_8(self):
        b = self.start_broker()
        ws = self.watchers(b, n=2)
        c = m.Client(b.port, "broken", will_topic="will/broken", will_message=b"error",
                     will_qos=1)
        c.send(m.publish("a/+", b"wildcard in a topic name"))  # MQTT-3.3.2-2
        c.expect_eof(what="the server to close after a protocol error")
        c.close()
        got = m.receive_all(ws, [1, 1], timeout=5.0)
        for msgs in got:
            self.assertEqual(msgs[0].key(), ("will/broken", b"error", 1, False, False))
        m.expect_quiet(ws, QUIET)
        for w in ws:
            w.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, wills_published=1)


class Takeover(BrokerTestCase):
    def test_second_connection_takes_over_first_closed_will_published_MQTT_3_1_4_2(self):
        b = self.start_broker()
        with m.Client(b.port, "tk-watch") as watch:
            watch.subscribe([("tk/#", 1)])
            ids = [f"tk-{i}" for i in range(6)]
            firsts = [m.Client(b.port, cid, will_topic=f"tk/{cid}", will_message=b"first",
                               will_qos=1) for cid in ids]
            seconds = []
            try:
                for cid, first in zip(ids, firsts):
                    second = m.Client(b.port, cid)  # asserts CONNACK 0, session present 0
                    seconds.append(second)
                    first.expect_eof(what=f"the broker to close the first {cid} connection")
                    second.ping()
                got = watch.receive(len(ids))
                self.assertEqual(sorted(x.key() for x in got),
                                 sorted((f"tk/{cid}", b"first", 1, False, False)
                                        for cid in ids))
                # The new connections are fully served: they can subscribe and receive.
                for s in seconds:
                    s.subscribe([("tk/check", 0)])
                with m.Client(b.port, "tk-pub") as pub:
                    pub.publish("tk/check", b"hello", qos=1)
                    for s in seconds:
                        self.assertEqual(s.receive(1)[0].key(),
                                         ("tk/check", b"hello", 0, False, False))
                    pub.disconnect()
                self.assertEqual(watch.receive(1)[0].payload, b"hello")
                m.expect_quiet([watch] + seconds, QUIET)
                for s in seconds:
                    s.disconnect()
            finally:
                close_all(firsts + seconds)
            watch.disconnect()
        self.assert_counters(b.stop(), connect_accepted=14, session_takeovers=6,
                             wills_published=6)

    def test_takeover_of_persistent_session_keeps_state_and_resends_inflight(self):
        b = self.start_broker()
        ids = [f"tkp-{i}" for i in range(4)]
        firsts = [m.Client(b.port, cid, clean=False) for cid in ids]
        seconds = []
        try:
            for c in firsts:
                c.subscribe([("tkp/t", 1)])
            with m.Client(b.port, "tkp-pub") as pub:
                pub.publish("tkp/t", b"m1", qos=1)
                pub.publish("tkp/t", b"m2", qos=1)
                sent = m.receive_all(firsts, [2] * len(firsts), timeout=5.0, ack=False)
                for cid, first in zip(ids, firsts):
                    seconds.append(m.Client(b.port, cid, clean=False, session_present=True))
                    first.expect_eof(discard=True, what="the broker to close the first "
                                     "connection")
                resent = m.receive_all(seconds, [2] * len(seconds), timeout=5.0)
                for cid, old, new in zip(ids, sent, resent):
                    self.assertEqual([x.raw for x in new],
                                     [bytes([x.raw[0] | 0x08]) + x.raw[1:] for x in old],
                                     f"{cid}: in-flight messages resent with DUP=1 in order")
                pub.publish("tkp/t", b"m3", qos=1)  # the subscription moved to the new one
                got = m.receive_all(seconds, [1] * len(seconds), timeout=5.0)
                for msgs in got:
                    self.assertEqual(msgs[0].key(), ("tkp/t", b"m3", 1, False, False))
                m.expect_quiet(seconds, QUIET)
                pub.disconnect()
            for s in seconds:
                s.disconnect()
        finally:
            close_all(firsts + seconds)
        self.assert_counters(b.stop(), connect_accepted=9, session_takeovers=4,
                             sessions_created=5)

    def test_takeover_with_clean_session_1_discards_the_old_session(self):
        b = self.start_broker()
        first = m.Client(b.port, "tkc", clean=False)
        with first:
            first.subscribe([("tkc/t", 1)])
            with m.Client(b.port, "tkc", clean=True, session_present=False) as second:
                first.expect_eof(what="the broker to close the first connection")
                with m.Client(b.port, "tkc-pub") as pub:
                    pub.publish("tkc/t", b"nobody", qos=1)
                    pub.disconnect()
                m.expect_quiet([second], QUIET)
                second.disconnect()
        self.assert_counters(b.stop(), connect_accepted=3, session_takeovers=1,
                             publish_dropped_no_subscribers=1)


class OfflineSessions(BrokerTestCase):
    """Persistent sessions without a connection are bounded in time (persistent_session_expiry,
    Mosquitto's persistent_client_expiration) and in number (max_offline_sessions)."""

    def session_present(self, port, client_id):
        """Connects with clean session 0 and returns the CONNACK's session-present flag. The
        connection stays open until the test ends."""
        sock = m.open_socket(port)
        self.addCleanup(sock.close)
        sock.sendall(m.connect(client_id, clean=False))
        got = m.read_packet(sock)
        if got.raw not in (m.connack(0, True), m.connack(0, False)):
            raise AssertionError(f"{client_id!r}: expected CONNACK 0x00, got {got.raw!r}")
        return got.raw == m.connack(0, True)

    def test_offline_session_expires_with_its_queue_and_subscriptions(self):
        from test_metrics import scrape, total
        b = self.start_broker("--persistent-session-expiry", "2s", metrics=True)
        for cid in ("exp-gone", "exp-back"):
            with m.Client(b.port, cid, clean=False) as c:
                c.subscribe([("exp/t", 1)])
                c.disconnect()
        with m.Client(b.port, "exp-pub") as pub:
            pub.publish("exp/t", b"queued", qos=1)  # queued for both offline sessions
            # Back well within the expiry: the session, its queue and subscription are kept.
            back = m.Client(b.port, "exp-back", clean=False, session_present=True)
            self.addCleanup(back.close)
            self.assertEqual(back.receive(1)[0].key(), ("exp/t", b"queued", 1, False, False))
            line = b.wait_for_log(r"session of client exp-gone expired", timeout=10.0)
            self.assertIsNotNone(line, "the offline session did not expire within 10 s")
            samples = scrape(b.metrics_url())
            self.assertEqual(total(samples, "ringmq_sessions", state="offline"), 0)
            self.assertEqual(total(samples, "ringmq_queued_messages"), 0)
            self.assertEqual(total(samples, "ringmq_subscriptions"), 1)  # exp-back's
            self.assertEqual(total(samples, "ringmq_sessions_expired_total"), 1)
            # The expired session is gone: a new one, without the old queue ...
            with m.Client(b.port, "exp-gone", clean=False, session_present=False) as gone:
                m.expect_quiet([gone], QUIET)
                # ... and without the old subscription; exp-back still has its own.
                pub.publish("exp/t", b"after", qos=1)
                self.assertEqual(back.receive(1)[0].key(), ("exp/t", b"after", 1, False, False))
                m.expect_quiet([gone, back], QUIET)
                gone.disconnect()
            back.disconnect()
            pub.disconnect()
        self.assert_counters(b.stop(), connect_accepted=5, sessions_created=4,
                             sessions_expired=1, subscriptions_added=2)

    def test_expiry_0_keeps_offline_sessions(self):
        b = self.start_broker("--persistent-session-expiry", "0")
        with m.Client(b.port, "forever", clean=False) as c:
            c.subscribe([("forever/t", 1)])
            c.disconnect()
        time.sleep(1.5)
        with m.Client(b.port, "forever", clean=False, session_present=True) as c:
            c.disconnect()
        self.assert_counters(b.stop(), connect_accepted=2, sessions_created=1)

    def test_max_offline_sessions_evicts_the_longest_offline(self):
        # One shard, so "the oldest of the shard" is the oldest of the broker.
        b = self.start_broker("--max-offline-sessions", "2", threads=1, log_level="info")
        ids = ["evict-1", "evict-2", "evict-3"]
        for cid in ids:
            with m.Client(b.port, cid, clean=False) as c:
                c.subscribe([("evict/t", 1)])
                c.disconnect()
            # The broker ends the session's connection after the client sees EOF: let it
            # happen before the next one, so that the detach order is the order here.
            time.sleep(0.2)
        line = b.wait_for_log(r"INFO .*session of client evict-1 evicted", timeout=5.0)
        self.assertIsNotNone(line, "the oldest offline session was not evicted (or not logged "
                             "at info)")
        with m.Client(b.port, "evict-pub") as pub:
            pub.publish("evict/t", b"kept", qos=1)
            pub.disconnect()
        subs = [m.Client(b.port, cid, clean=False, session_present=True) for cid in ids[1:]]
        self.addCleanup(close_all, subs)
        got = m.receive_all(subs, [1, 1], timeout=5.0)
        for cid, msgs in zip(ids[1:], got):
            self.assertEqual([x.key() for x in msgs], [("evict/t", b"kept", 1, False, False)],
                             cid)
        late = m.Client(b.port, "evict-1", clean=False, session_present=False)
        self.addCleanup(late.close)
        m.expect_quiet([late] + subs, QUIET)
        # Still connected at stop: a stopping broker evicts nothing, so the count is exact.
        self.assert_counters(b.stop(), connect_accepted=7, sessions_created=5,
                             sessions_evicted=1)

    def test_max_offline_sessions_is_broker_wide(self):
        # Four shards: sessions live on the shard their client id hashes to, yet no more than
        # max_offline_sessions stay offline in all.
        b = self.start_broker("--max-offline-sessions", "3", threads=4)
        ids = [f"wide-{i}" for i in range(10)]
        for cid in ids:
            with m.Client(b.port, cid, clean=False) as c:
                c.disconnect()
            time.sleep(0.05)
        time.sleep(0.3)  # the last close is handled after the client saw EOF
        # The checks stay connected: an evicted id comes back as a new session, which going
        # offline again would evict another.
        kept = [cid for cid in ids if self.session_present(b.port, cid)]
        self.assertEqual(len(kept), 3, f"sessions resumed: {kept}")
        self.assert_counters(b.stop(), connect_accepted=20, sessions_created=17,
                             sessions_evicted=7)
