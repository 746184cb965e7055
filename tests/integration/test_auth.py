"""Authentication and authorization with real clients (docs/auth.md).

Password files are written by the real mosquitto_passwd and by `ringmq passwd`; the latter's
entries are also checked by the real Mosquitto broker. ACL decisions, SIGHUP reloads and the
failure budget are observed on the wire and in the counters.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import mqtt_raw as m
from broker import Broker, BrokerTestCase, binary, free_port, is_mosquitto

CLIENT_TIMEOUT = 10.0
MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"


def run(argv, stdin_text=None, timeout=CLIENT_TIMEOUT):
    return subprocess.run(argv, input=stdin_text, capture_output=True, text=True,
                          timeout=timeout, stdin=None if stdin_text is not None else
                          subprocess.DEVNULL)


class AuthTestCase(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq authentication")
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-auth-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def path(self, name):
        return os.path.join(self.dir, name)

    def mosquitto_passwd(self, path, user, password, create=False):
        argv = [MOSQUITTO_PASSWD] + (["-c"] if create else []) + ["-b", path, user, password]
        proc = run(argv)
        self.assertEqual(proc.returncode, 0, f"{argv}: {proc.stderr}")

    def ringmq_passwd(self, *args, stdin_text=None):
        return run([binary(), "passwd", *args], stdin_text=stdin_text)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def users_file(self):
        """alice/alice-pw and bob/bob-pw, written by mosquitto_passwd."""
        path = self.path("passwd")
        self.mosquitto_passwd(path, "alice", "alice-pw", create=True)
        self.mosquitto_passwd(path, "bob", "bob-pw")
        return path

    def pub(self, b, *args):
        return run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(b.port), *args])


class Passwords(AuthTestCase):
    def test_mosquitto_passwd_users_publish_and_subscribe_with_mosquitto_clients(self):
        b = self.start_broker("--password-file", self.users_file(), "--allow-anonymous", "false")
        sub = subprocess.Popen([MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(b.port), "-u", "bob",
                                "-P", "bob-pw", "-t", "news", "-C", "1", "-W", "10"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Publish until the subscriber (connecting concurrently) has received one message.
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while sub.poll() is None and time.monotonic() < deadline:
                proc = self.pub(b, "-u", "alice", "-P", "alice-pw", "-t", "news", "-m", "hello")
                self.assertEqual(proc.returncode, 0, proc.stderr)
                time.sleep(0.1)
            out, err = sub.communicate(timeout=CLIENT_TIMEOUT)
        finally:
            sub.kill()
        self.assertEqual(sub.returncode, 0, err)
        self.assertEqual(out.strip(), "hello")
        wrong = self.pub(b, "-u", "alice", "-P", "bob-pw", "-t", "news", "-m", "x")
        self.assertNotEqual(wrong.returncode, 0)
        self.assertIn("password", wrong.stderr.lower())  # "bad user name or password"
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=None, connect_bad_credentials=1,
                             publish_dropped_no_subscribers=None)
        self.assertGreaterEqual(counters["auth_verifications"], 2)

    def test_wrong_password_unknown_user_and_anonymous_get_their_return_codes(self):
        b = self.start_broker("--password-file", self.users_file(), "--allow-anonymous", "false")
        for fields in ({"username": "alice", "password": b"nope"},
                       {"username": "mallory", "password": b"alice-pw"},
                       {"username": "alice"}):  # no password at all
            with m.connect_client(b.port, "c1", expect=0x04, **fields) as s:
                m.expect_eof(s)
        with m.connect_client(b.port, "c2", expect=0x05) as s:  # anonymous
            m.expect_eof(s)
        self.assert_serves(b, username="bob", password=b"bob-pw")
        self.assert_counters(b.stop(), connect_accepted=1, connect_bad_credentials=3,
                             connect_not_authorized=1)

    def test_silent_policy_closes_without_connack(self):
        b = self.start_broker("--password-file", self.users_file(), "--reject-policy", "silent")
        with m.open_socket(b.port) as s:
            s.sendall(m.connect("c1", username="alice", password=b"wrong"))
            m.expect_eof(s, what="a silent close instead of CONNACK 0x04")
        self.assert_counters(b.stop(), connect_bad_credentials=1, connect_closed_silent_policy=1)

    def test_anonymous_allowed_by_default_with_a_password_file(self):
        b = self.start_broker("--password-file", self.users_file())
        self.assert_serves(b)  # no user name: anonymous, allowed (allow_anonymous true)
        with m.connect_client(b.port, "c", expect=0x04, username="bob", password=b"x") as s:
            m.expect_eof(s)
        self.assert_counters(b.stop(), connect_accepted=1, connect_bad_credentials=1)

    def test_anonymous_refused_without_password_file(self):
        b = self.start_broker("--allow-anonymous", "false")
        with m.connect_client(b.port, "c", expect=0x05) as s:
            m.expect_eof(s)
        self.assert_counters(b.stop(), connect_not_authorized=1)

    def test_verified_credentials_are_cached(self):
        b = self.start_broker("--password-file", self.users_file(), threads=1)
        for _ in range(3):
            self.assert_serves(b, client_id="same", username="alice", password=b"alice-pw")
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=3)
        self.assertEqual(counters["auth_verifications"], 1)
        self.assertEqual(counters["auth_cache_hits"], 2)

    def test_failure_budget_refuses_with_0x03_without_hashing_but_cached_users_get_in(self):
        b = self.start_broker("--password-file", self.users_file(),
                              "--max-auth-failures-per-second", "2", threads=1)
        self.assert_serves(b, username="alice", password=b"alice-pw")  # now cached
        started = time.monotonic()
        codes = []
        for i in range(12):
            with m.open_socket(b.port) as s:
                s.sendall(m.connect(f"x{i}", username="bob", password=b"guess%d" % i))
                codes.append(m.read_packet(s).raw[3])
                m.expect_eof(s)
        elapsed = time.monotonic() - started
        self.assertEqual(codes[:2], [0x04, 0x04], codes)
        if elapsed < 1.0:  # all within two one-second windows: at most 4 hashed
            self.assertGreaterEqual(codes.count(0x03), 8, codes)
        self.assert_serves(b, username="alice", password=b"alice-pw")  # from the cache
        counters = b.stop()
        self.assertEqual(counters["connect_bad_credentials"], codes.count(0x04))
        self.assertEqual(counters["connect_auth_rate_limit"], codes.count(0x03))
        self.assertEqual(counters["auth_verifications"], 1 + codes.count(0x04))
        self.assert_counters(counters, connect_accepted=2, connect_bad_credentials=None,
                             connect_auth_rate_limit=None)

    def test_broken_password_file_refuses_start_naming_file_and_line(self):
        path = self.users_file()
        with open(path, "a") as f:
            f.write("# fine\ncarol:$7$101$notbase64!$abc\n")
        proc = run([binary(), "--port", str(free_port()), "--password-file", path], timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(f"{path}:4:", proc.stderr)

    def test_public_bind_with_anonymous_access_warns(self):
        port = free_port()
        proc = subprocess.Popen([binary(), "--bind", "0.0.0.0", "--port", str(port),
                                 "--threads", "1", "--metrics-port", "0"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                lines.append(line)
                if "ready:" in line:
                    break
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        finally:
            proc.kill()
        text = "".join(lines)
        self.assertRegex(text, r"WARN.*allow_anonymous true and no password_file", text)


class PasswdTool(AuthTestCase):
    def test_ringmq_passwd_entries_work_in_mosquitto_and_ringmq(self):
        path = self.path("passwd")
        proc = self.ringmq_passwd("-c", "-b", path, "alice", "alice-pw")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        proc = self.ringmq_passwd(path, "bob", stdin_text="bob-pw\n")  # piped: read once
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            self.assertRegex(f.read(), r"^alice:\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==\n")

        # The real Mosquitto broker accepts the entries ringmq wrote.
        port = free_port()
        conf = self.write("mosquitto.conf", f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                          f"password_file {path}\nuser root\n")
        mosq = subprocess.Popen([MOSQUITTO, "-c", conf], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    m.open_socket(port, timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline, "mosquitto did not listen")
                    time.sleep(0.05)
            for user, password, expect in (("alice", b"alice-pw", 0), ("bob", b"bob-pw", 0),
                                           ("alice", b"bob-pw", 0x05)):
                # Mosquitto 2.0 answers a bad password with 0x05 (not authorized).
                with m.connect_client(port, "m", expect=expect, username=user,
                                      password=password) as s:
                    if expect == 0:
                        m.disconnect(s)
        finally:
            mosq.terminate()
            mosq.wait(10)

        # And ringmq does too.
        b = self.start_broker("--password-file", path, "--allow-anonymous", "false")
        self.assert_serves(b, username="alice", password=b"alice-pw")
        self.assert_serves(b, username="bob", password=b"bob-pw")
        proc = self.ringmq_passwd("-D", path, "alice")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(path) as f:
            self.assertNotIn("alice", f.read())
        self.assert_counters(b.stop(), connect_accepted=2)

    def test_ringmq_passwd_usage_errors(self):
        self.assertEqual(self.ringmq_passwd().returncode, 2)
        proc = self.ringmq_passwd("-b", self.path("missing"), "alice", "pw")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("cannot open", proc.stderr)


ACL = """\
# anonymous clients may read public topics
topic read public/#

user alice
topic readwrite alice/#
topic read public/#
topic deny alice/secret/#

user bob
topic write public/#
topic read alice/#

pattern readwrite clients/%c/#
"""


class Acl(AuthTestCase):
    def start(self, *flags, acl=ACL, **kwargs):
        self.acl_path = self.write("acl", acl)
        return self.start_broker("--password-file", self.users_file(), "--acl-file",
                                 self.acl_path, *flags, **kwargs)

    def test_denied_publish_is_acknowledged_dropped_and_counted(self):
        b = self.start()
        with m.Client(b.port, "alice-1", username="alice", password=b"alice-pw") as alice, \
                m.Client(b.port, "bob-1", username="bob", password=b"bob-pw") as bob:
            alice.subscribe([("public/#", 1)])
            bob.publish("public/a", b"allowed", qos=1)
            self.assertEqual(alice.next_publish().payload, b"allowed")
            # alice may not write public/#: PUBACK / PUBREC as usual, but nobody receives it.
            alice.publish("public/b", b"denied-1", qos=1)
            alice.publish("public/b", b"denied-2", qos=2)
            alice.publish("public/b", b"denied-0", qos=0)
            alice.ping()
            alice.expect_no_publish(0.5)
        self.assert_counters(b.stop(), connect_accepted=2, publish_denied=3)

    def test_filters_nothing_readable_get_0x80_partly_readable_are_granted(self):
        b = self.start()
        with m.Client(b.port, "bob-1", username="bob", password=b"bob-pw") as bob:
            # read alice/# covers alice/x and alice/+; bob may not read public/# (write only);
            # # is partly readable (alice/...): granted, filtered per message.
            bob.subscribe([("alice/x", 1), ("public/#", 1), ("#", 0), ("alice/+", 2)],
                          granted=[1, 0x80, 0, 2])
        with m.Client(b.port, "alice-1", username="alice", password=b"alice-pw") as alice:
            # alice/# also matches the denied alice/secret/...: granted, filtered per message.
            alice.subscribe([("alice/#", 0), ("alice/notes/#", 0), ("alice/secret/+", 0)],
                            granted=[0, 0, 0x80])
            # %c: its own clients/alice-1 tree only.
            alice.subscribe([("clients/alice-1/#", 1), ("clients/other/#", 1)],
                            granted=[1, 0x80])
            # $SYS needs an explicit grant.
            alice.subscribe([("$SYS/#", 0)], granted=[0x80])
        self.assert_counters(b.stop(), connect_accepted=2, subscribe_denied=4,
                             subscribe_filtered=2, subscriptions_added=None,
                             subscriptions_removed=None)

    def test_anonymous_section_applies_to_clients_without_user_name(self):
        b = self.start()
        with m.Client(b.port, "anon") as anon:
            anon.subscribe([("public/#", 0), ("alice/#", 0)], granted=[0, 0x80])
            anon.publish("public/x", b"p", qos=1)  # read only: dropped
        self.assert_counters(b.stop(), connect_accepted=1, publish_denied=1,
                             subscribe_denied=1, subscriptions_added=None,
                             subscriptions_removed=None)

    def test_will_on_a_topic_the_client_may_not_write_is_refused_0x05(self):
        b = self.start()
        with m.connect_client(b.port, "w1", expect=0x05, username="bob", password=b"bob-pw",
                              will_topic="alice/gone") as s:
            m.expect_eof(s)
        self.assert_serves(b, client_id="w2", username="bob", password=b"bob-pw",
                           will_topic="public/gone")
        self.assert_counters(b.stop(), connect_accepted=1, connect_not_authorized=1)


def home_shard(client_id, shards):
    """The shard that serves `client_id`: std::hash<std::string_view> of libstdc++ (64-bit
    MurmurHash2 variant, seed 0xc70f6907) modulo the shard count, as Router::HomeShard."""
    mask = (1 << 64) - 1
    mul = (0xc6a4a793 << 32) + 0x5bd1e995
    data = client_id.encode()
    h = (0xc70f6907 ^ (len(data) * mul)) & mask
    aligned = len(data) & ~7
    for i in range(0, aligned, 8):
        word = (int.from_bytes(data[i:i + 8], "little") * mul) & mask
        h = ((h ^ ((word ^ (word >> 47)) * mul & mask)) * mul) & mask
    if len(data) & 7:
        h = ((h ^ int.from_bytes(data[aligned:], "little")) * mul) & mask
    h = ((h ^ (h >> 47)) * mul) & mask
    return (h ^ (h >> 47)) % shards


# A reader whose read access has a hole in it, and a writer (Eclipse Paho's suite expects SUBACK
# 0x80 for test/nosubscribe and messages on everything else, see docs/interop.md).
FILTERED_ACL = """\
user alice
topic read #
topic deny test/nosubscribe

user bob
topic write #
"""


class FilteredSubscriptions(AuthTestCase):
    """Mosquitto's semantics for a filter that is partly readable: granted, and each message
    checked against the subscriber's read access on delivery."""

    def start(self, acl=FILTERED_ACL):
        self.acl_path = self.write("acl", acl)
        return self.start_broker("--password-file", self.users_file(), "--acl-file",
                                 self.acl_path)

    def readers(self, publisher, shards=2):
        """Two client ids for alice: one served by the publisher's shard (local delivery), one
        by the other shard (delivery through a mailbox record)."""
        home = home_shard(publisher, shards)
        ids = [f"alice-{i}" for i in range(64)]
        same = next(i for i in ids if home_shard(i, shards) == home)
        other = next(i for i in ids if home_shard(i, shards) != home)
        return [same, other]

    def test_partly_readable_filter_is_granted_and_each_message_checked(self):
        b = self.start()
        with m.Client(b.port, "bob-1", username="bob", password=b"bob-pw") as bob:
            bob.publish("test/nosubscribe", b"retained-denied", qos=1, retain=True)
            bob.publish("test/other", b"retained-ok", qos=1, retain=True)
            readers = [m.Client(b.port, cid, username="alice", password=b"alice-pw")
                       for cid in self.readers("bob-1")]
            try:
                for alice in readers:
                    alice.subscribe([("test/#", 1), ("test/nosubscribe", 1), ("other/+", 0)],
                                    granted=[1, 0x80, 0])
                    # Retained messages are checked too (MQTT-3.3.1-6 sends only readable ones).
                    got = alice.receive(1)
                    self.assertEqual((got[0].topic, got[0].payload, got[0].retain),
                                     ("test/other", b"retained-ok", True))
                bob.publish("test/nosubscribe", b"denied", qos=1)
                bob.publish("test/other", b"ok", qos=1)
                bob.publish("other/x", b"plain", qos=0)
                for alice in readers:
                    got = alice.receive(2)
                    self.assertEqual([(p.topic, p.payload) for p in got],
                                     [("test/other", b"ok"), ("other/x", b"plain")])
                    alice.expect_no_publish(0.3)
            finally:
                for alice in readers:
                    alice.close()
        # Per reader: one retained and one live message on test/nosubscribe not delivered.
        self.assert_counters(b.stop(), connect_accepted=3, subscribe_denied=2,
                             subscribe_filtered=2, deliver_denied=4)

    def test_a_wholly_readable_overlapping_subscription_skips_the_check(self):
        b = self.start("user alice\ntopic read #\ntopic deny test/secret\n"
                       "user bob\ntopic write #\n")
        with m.Client(b.port, "bob-1", username="bob", password=b"bob-pw") as bob, \
                m.Client(b.port, "alice-1", username="alice", password=b"alice-pw") as alice:
            # test/# needs the check; test/+/x is wholly readable. One delivery per message,
            # at the highest QoS (MQTT-3.3.5-1); the denied topic still never arrives.
            alice.subscribe([("test/#", 0), ("test/+/x", 1)])
            bob.publish("test/a/x", b"both", qos=1)
            bob.publish("test/secret", b"denied", qos=1)
            bob.publish("test/b", b"one", qos=1)
            got = alice.receive(2)
            self.assertEqual([(p.topic, p.qos) for p in got], [("test/a/x", 1), ("test/b", 0)])
            alice.expect_no_publish(0.3)
        self.assert_counters(b.stop(), connect_accepted=2, subscribe_filtered=1,
                             deliver_denied=1)

    def test_a_shared_member_that_may_not_read_the_topic_passes_qos1_on(self):
        # alice may not read test/nosubscribe; a group gives her some of its messages anyway
        # (the choice does not check ACLs): she passes each QoS 1 one to another member instead
        # of losing it for the group.
        b = self.start("user alice\ntopic read #\ntopic deny test/nosubscribe\n"
                       "user bob\ntopic readwrite #\n")
        with m.Client(b.port, "alice-1", username="alice", password=b"alice-pw") as alice, \
                m.Client(b.port, "bob-1", username="bob", password=b"bob-pw") as bob, \
                m.Client(b.port, "bob-2", username="bob", password=b"bob-pw") as publisher:
            alice.subscribe([("$share/g/test/#", 1)])
            bob.subscribe([("$share/g/test/#", 1)])
            for i in range(4):
                publisher.publish("test/nosubscribe", b"m%d" % i, qos=1)
            got = bob.receive(4)
            self.assertEqual(sorted(p.payload for p in got), [b"m0", b"m1", b"m2", b"m3"])
            alice.expect_no_publish(0.3)
        # The group chose alice for some of the four (at least two with round robin; a re-route
        # on her shard moves that shard's cursor too).
        counters = b.stop()
        self.assert_counters(counters, connect_accepted=3, subscribe_filtered=1,
                             deliver_denied=None)
        self.assert_counters_at_least(counters, deliver_denied=2, shared_rerouted=2)

    def test_offline_session_is_checked_with_its_last_user(self):
        b = self.start()
        with m.Client(b.port, "alice-p", username="alice", password=b"alice-pw",
                      clean=False) as alice:
            alice.subscribe([("test/#", 1)])
            alice.disconnect()  # offline before bob publishes, and no takeover later
        with m.Client(b.port, "bob-1", username="bob", password=b"bob-pw") as bob:
            bob.publish("test/nosubscribe", b"denied", qos=1)
            bob.publish("test/other", b"queued", qos=1)
        with m.Client(b.port, "alice-p", username="alice", password=b"alice-pw", clean=False,
                      session_present=True) as alice:
            got = alice.receive(1)
            self.assertEqual((got[0].topic, got[0].payload), ("test/other", b"queued"))
            alice.expect_no_publish(0.3)
        self.assert_counters(b.stop(), connect_accepted=3, subscribe_filtered=1,
                             deliver_denied=1)

    def test_resumed_session_is_classified_again_for_its_new_user(self):
        # alice may read all of #; bob may read nothing. bob resumes alice's session, whose #
        # subscription was wholly readable for alice: bob must not receive through it.
        b = self.start("user alice\ntopic readwrite #\nuser bob\ntopic write #\n")
        with m.Client(b.port, "shared-id", username="alice", password=b"alice-pw",
                      clean=False) as alice:
            alice.subscribe([("#", 1)])
            alice.disconnect()
        with m.Client(b.port, "shared-id", username="bob", password=b"bob-pw", clean=False,
                      session_present=True) as bob, \
                m.Client(b.port, "alice-2", username="alice", password=b"alice-pw") as writer:
            writer.publish("news", b"for alice only", qos=1)
            bob.expect_no_publish(0.5)
        self.assert_counters(b.stop(), connect_accepted=3, deliver_denied=1)


class Reload(AuthTestCase):
    def test_sighup_adds_a_user_and_new_rules_without_dropping_connections(self):
        pw = self.path("passwd")
        self.mosquitto_passwd(pw, "alice", "alice-pw", create=True)
        acl = self.write("acl", "user alice\ntopic readwrite alice/#\n")
        b = self.start_broker("--password-file", pw, "--acl-file", acl, "--allow-anonymous",
                              "false")
        with m.Client(b.port, "alice-1", username="alice", password=b"alice-pw") as alice:
            alice.subscribe([("alice/#", 0)])
            alice.publish("shared/x", b"before", qos=1)  # not allowed yet
            with m.connect_client(b.port, "carol-1", expect=0x04, username="carol",
                                  password=b"carol-pw") as s:
                m.expect_eof(s)

            self.mosquitto_passwd(pw, "carol", "carol-pw")
            self.write("acl", "user alice\ntopic readwrite alice/#\ntopic write shared/#\n"
                       "user carol\ntopic write alice/#\n")
            b.proc.send_signal(signal.SIGHUP)
            self.assertIsNotNone(b.wait_for_log(r"reloaded auth: 2 users, 3 ACL rules"),
                                 b.stderr_tail())

            alice.ping()  # the existing connection is still served
            alice.publish("shared/x", b"after", qos=1)  # the new rule applies at once
            with m.Client(b.port, "carol-1", username="carol", password=b"carol-pw") as carol:
                carol.publish("alice/inbox", b"from carol", qos=1)
                self.assertEqual(alice.next_publish().payload, b"from carol")
        self.assert_counters(b.stop(), connect_accepted=2, connect_bad_credentials=1,
                             publish_denied=1, publish_dropped_no_subscribers=None)

    def test_sighup_reclassifies_existing_subscriptions(self):
        # Mosquitto checks every delivery against the current rules: after a reload that denies
        # test/secret, a subscription made before it (wholly readable then, so unchecked) no
        # longer receives test/secret.
        pw = self.users_file()
        acl = self.write("acl", "user alice\ntopic read test/#\nuser bob\ntopic write #\n")
        b = self.start_broker("--password-file", pw, "--acl-file", acl)
        with m.Client(b.port, "alice-1", username="alice", password=b"alice-pw") as alice, \
                m.Client(b.port, "bob-1", username="bob", password=b"bob-pw") as bob:
            alice.subscribe([("test/#", 1)])
            bob.publish("test/secret", b"before", qos=1)
            self.assertEqual(alice.receive(1)[0].payload, b"before")
            self.write("acl", "user alice\ntopic read test/#\ntopic deny test/secret\n"
                       "user bob\ntopic write #\n")
            b.proc.send_signal(signal.SIGHUP)
            self.assertIsNotNone(b.wait_for_log(r"reloaded auth: 2 users, 3 ACL rules"),
                                 b.stderr_tail())
            alice.ping()  # alice's shard has run an iteration with the new rules
            bob.publish("test/secret", b"after", qos=1)
            bob.publish("test/public", b"public", qos=1)
            self.assertEqual(alice.receive(1)[0].payload, b"public")
            alice.expect_no_publish(0.3)
        self.assert_counters(b.stop(), connect_accepted=2, deliver_denied=1)

    def test_sighup_with_a_broken_file_keeps_the_old_data(self):
        pw = self.path("passwd")
        self.mosquitto_passwd(pw, "alice", "alice-pw", create=True)
        b = self.start_broker("--password-file", pw, "--allow-anonymous", "false")
        with m.Client(b.port, "alice-1", username="alice", password=b"alice-pw") as alice:
            with open(pw, "a") as f:
                f.write("bob:not-a-hash\n")
            b.proc.send_signal(signal.SIGHUP)
            self.assertIsNotNone(b.wait_for_log(rf"reload failed.*{pw}:2:"), b.stderr_tail())
            alice.ping()
            self.assert_serves(b, username="alice", password=b"alice-pw")
            with m.connect_client(b.port, "b", expect=0x04, username="bob",
                                  password=b"not-a-hash") as s:
                m.expect_eof(s)
        self.assert_counters(b.stop(), connect_accepted=2, connect_bad_credentials=1)


if __name__ == "__main__":
    import unittest
    unittest.main()
