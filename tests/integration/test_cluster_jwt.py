"""NATS decentralized (JWT) authentication of the cluster's NATS links (jwt lane;
docs/cluster.md, "TLS and nkeys to NATS"): nats-server in operator mode (`operator:` +
`resolver: MEMORY` + `resolver_preload`) and ringmq nodes given a `.creds` file by
`[cluster] credentials_file`.

The operator, the account and the users are made here at test time, never committed: ed25519
keys from the `cryptography` module, encoded as nkeys (base32 of prefix + key + CRC-16/XMODEM,
test_cluster_tls.nkey_encode) and JWTs as the NATS jwt library's version 2 writes them
(header {"typ":"JWT","alg":"ed25519-nkey"}; claims jti, iat, iss, sub, name and "nats" with
the type and version 2; the signature of "header.claims" by the issuer's key, base64url without
padding): the operator's JWT self-signed, the account's signed by the operator, the user's by
the account.

Each test starts its own NATS server (no JetStream) and ringmq nodes with one shard, and waits
on events (metrics, log lines, connz) with bounds; nothing sleeps as an assertion.
"""

import base64
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

import broker
import mqtt_raw
import nats_cluster
from test_cluster import wait_route
from test_cluster_tls import LINK_TIMEOUT, metric, nkey_encode, wait_metric

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError:  # python3-cryptography (scripts/install-deps.sh)
    Ed25519PrivateKey = None

# nkeys prefix bytes (github.com/nats-io/nkeys): the type of each key, and of a seed.
PREFIX_SEED = 18 << 3
PREFIX_OPERATOR = 14 << 3
PREFIX_ACCOUNT = 0
PREFIX_USER = 20 << 3
NO_LIMIT = -1


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class KeyPair:
    """An ed25519 key pair with its nkey public key ("O...", "A...", "U...") and seed."""

    def __init__(self, prefix):
        self.private = Ed25519PrivateKey.generate()
        raw_private = self.private.private_bytes(serialization.Encoding.Raw,
                                                 serialization.PrivateFormat.Raw,
                                                 serialization.NoEncryption())
        raw_public = self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                            serialization.PublicFormat.Raw)
        self.public = nkey_encode([prefix], raw_public)
        self.seed = nkey_encode([PREFIX_SEED | (prefix >> 5), (prefix & 31) << 3], raw_private)


def encode_jwt(issuer, subject_public, name, nats, expires=None):
    """A NATS version 2 JWT for `subject_public`, signed by the KeyPair `issuer`; `expires`: its
    "exp" claim (Unix seconds), none by default."""
    claims = {"iat": int(time.time()), "iss": issuer.public, "name": name,
              "sub": subject_public, "nats": dict(nats, version=2)}
    if expires is not None:
        claims["exp"] = int(expires)
    # jti: a unique id, the hash of the other claims (as the jwt library makes it).
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    header = b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = issuer.private.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64url(signature)}"


def account_jwt(operator, account, name):
    limits = {"subs": NO_LIMIT, "data": NO_LIMIT, "payload": NO_LIMIT, "imports": NO_LIMIT,
              "exports": NO_LIMIT, "wildcards": True, "conn": NO_LIMIT, "leaf": NO_LIMIT}
    return encode_jwt(operator, account.public, name, {"type": "account", "limits": limits})


def user_jwt(signer, user, name, expires=None):
    return encode_jwt(signer, user.public, name,
                      {"type": "user", "pub": {}, "sub": {}, "subs": NO_LIMIT, "data": NO_LIMIT,
                       "payload": NO_LIMIT}, expires)


def creds_text(jwt, seed, eol="\n"):
    """A .creds file as nsc writes it."""
    lines = ["-----BEGIN NATS USER JWT-----", jwt, "------END NATS USER JWT------", "",
             "************************* IMPORTANT *************************",
             "NKEY Seed printed below can be used to sign and prove identity.",
             "NKEYs are sensitive and should be treated as secrets.", "",
             "-----BEGIN USER NKEY SEED-----", seed, "------END USER NKEY SEED------", "",
             "*************************************************************"]
    return eol.join(lines) + eol


@unittest.skipIf(Ed25519PrivateKey is None, "python3-cryptography is not installed")
class ClusterJwtTest(unittest.TestCase):
    def setUp(self):
        if broker.is_mosquitto():
            self.skipTest("ringmq cluster only")
        why = nats_cluster.available()
        if why:
            self.skipTest(why)
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-jwt-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.operator = KeyPair(PREFIX_OPERATOR)
        self.account = KeyPair(PREFIX_ACCOUNT)

    def operator_mode_nats(self):
        """A nats-server trusting self.operator, with self.account preloaded."""
        operator_file = os.path.join(self.dir, "operator.jwt")
        with open(operator_file, "w") as f:
            f.write(encode_jwt(self.operator, self.operator.public, "ringmq-test-operator",
                               {"type": "operator"}))
        extra = (f'operator: "{operator_file}"\nresolver: MEMORY\n'
                 f'resolver_preload: {{\n  {self.account.public}: '
                 f'"{account_jwt(self.operator, self.account, "ringmq")}"\n}}\n')
        cluster = nats_cluster.NatsCluster(size=1, jetstream=False, extra_config=extra)
        cluster.start()
        self.addCleanup(cluster.stop)
        return cluster

    def write_creds(self, name, jwt, seed, eol="\n"):
        path = os.path.join(self.dir, name + ".creds")
        with open(path, "w", newline="") as f:
            f.write(creds_text(jwt, seed, eol))
        return path

    def node(self, cluster, creds, name):
        b = broker.Broker("--cluster-node-name", name, "--cluster-nats-url", cluster.urls()[0],
                          "--cluster-credentials-file", creds, threads=1, metrics=True,
                          log_level="info")
        b.start()
        self.addCleanup(b.cleanup)
        return b

    def client(self, node, client_id):
        c = mqtt_raw.Client(node.port, client_id)
        self.addCleanup(c.close)
        return c

    def test_user_jwt_signed_by_the_account_links_nodes_in_operator_mode(self):
        cluster = self.operator_mode_nats()
        user = KeyPair(PREFIX_USER)
        jwt = user_jwt(self.account, user, "node")
        # One node's file with CRLF line ends (a .creds file edited on Windows).
        files = [self.write_creds("node0", jwt, user.seed),
                 self.write_creds("node1", jwt, user.seed, eol="\r\n")]
        nodes = [self.node(cluster, files[i], f"node{i}") for i in range(2)]
        for node in nodes:
            self.assertIsNotNone(node.wait_for_log(rf"cluster: NATS user JWT for nkey {user.public}"))
            wait_metric(node, "ringmq_cluster_link_events_total", 1, event="connect")
            wait_metric(node, "ringmq_cluster_share_link_events_total", 1, event="connect")
        # nats-server's view: four connections (two links per node), each of our user in our
        # account (an operator-mode server admits no connection without a valid user JWT).
        conns = (cluster.servers[0].monitor("connz?auth=true") or {}).get("connections", [])
        self.assertEqual(len(conns), 4, conns)
        self.assertEqual({c.get("authorized_user") for c in conns}, {user.public}, conns)
        self.assertEqual({c.get("account") for c in conns}, {self.account.public}, conns)
        # Messages cross the nodes.
        sub = self.client(nodes[1], "jwt-sub")
        sub.subscribe([("jwt/t", 1)])
        pub = self.client(nodes[0], "jwt-pub")
        wait_route(pub, [sub], "jwt/t")
        payloads = [b"m%03d" % i for i in range(20)]
        for p in payloads:
            pub.publish("jwt/t", p)
        self.assertEqual([g.payload for g in sub.receive(len(payloads), timeout=10)], payloads)
        for node in nodes:
            counters = node.stop()
            self.assertEqual(counters.get("cluster_link_auth_refused", 0), 0)

    def test_user_jwt_signed_by_another_account_key_is_refused_and_counted(self):
        cluster = self.operator_mode_nats()
        user = KeyPair(PREFIX_USER)
        stranger = KeyPair(PREFIX_ACCOUNT)  # an account the operator never signed
        creds = self.write_creds("wrong", user_jwt(stranger, user, "wrong"), user.seed)
        node = self.node(cluster, creds, "wrong")
        self.assertIsNotNone(node.wait_for_log(r"NATS link lost \(authorization",
                                               timeout=LINK_TIMEOUT))
        wait_metric(node, "ringmq_cluster_link_auth_refused_total", 2)  # both links, at least
        self.assertEqual(metric(node, "ringmq_cluster_link_events_total", event="connect"), 0)
        self.assertEqual(metric(node, "ringmq_cluster_share_link_events_total", event="connect"),
                         0)

    def test_expired_user_jwt_renewed_by_sighup_reconnects_with_the_new_one(self):
        # A user JWT that expires: nats-server ends both links ("User Authentication Expired"),
        # and every reconnect with it again (nats-server 2.9 completes the handshake, then ends
        # the connection at once); the operator writes a renewed .creds file (here for another
        # user of the account) and sends SIGHUP: the links' next CONNECT uses it, and they stay.
        cluster = self.operator_mode_nats()
        first, renewed = KeyPair(PREFIX_USER), KeyPair(PREFIX_USER)
        creds = self.write_creds("node", user_jwt(self.account, first, "node",
                                                  expires=time.time() + 4), first.seed)
        node = self.node(cluster, creds, "renew")
        wait_metric(node, "ringmq_cluster_link_events_total", 1, event="connect")
        wait_metric(node, "ringmq_cluster_share_link_events_total", 1, event="connect")
        refused = wait_metric(node, "ringmq_cluster_link_auth_refused_total", 2, timeout=30)
        # Still ended after the expiry, reconnect after reconnect.
        wait_metric(node, "ringmq_cluster_link_auth_refused_total", refused + 2, timeout=15)

        def connections():
            return (cluster.servers[0].monitor("connz?auth=true") or {}).get("connections", [])

        self.write_creds("node", user_jwt(self.account, renewed, "node"), renewed.seed)
        node.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(node.wait_for_log(r"reloaded the NATS credentials", timeout=10))
        deadline = time.monotonic() + LINK_TIMEOUT
        while True:  # nats-server's view: both links back, as the renewed user
            conns = connections()
            if ({c.get("authorized_user") for c in conns} == {renewed.public} and
                    len(conns) == 2) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual({c.get("authorized_user") for c in conns}, {renewed.public}, conns)
        self.assertEqual(len(conns), 2, conns)
        # And they stay: no refusal, the same two connections, a second and a half later.
        refused = metric(node, "ringmq_cluster_link_auth_refused_total")
        ids = {c.get("cid") for c in conns}
        time.sleep(1.5)
        self.assertEqual(metric(node, "ringmq_cluster_link_auth_refused_total"), refused)
        self.assertEqual({c.get("cid") for c in connections()}, ids)

    def test_malformed_credentials_file_stops_the_start(self):
        user = KeyPair(PREFIX_USER)
        jwt = user_jwt(self.account, user, "node")
        cut = self.write_creds("cut", jwt, user.seed)
        with open(cut, "r+") as f:  # cut inside the seed block
            text = f.read()
            f.seek(0)
            f.write(text[:text.index(user.seed) + 10])
            f.truncate()
        seed_only = os.path.join(self.dir, "seed.nk")
        with open(seed_only, "w") as f:
            f.write(user.seed + "\n")
        port = nats_cluster.free_port()
        for path, error in [(cut, r"the block opened on line 9 is cut short"),
                            (seed_only, r"no user JWT \(a seed alone goes in nkey_seed_file\)")]:
            result = subprocess.run(
                [broker.binary(), "--bind", "127.0.0.1", "--port", str(broker.free_port()),
                 "--threads", "1", "--metrics-port", "0", "--cluster-node-name", "bad",
                 "--cluster-nats-url", f"nats://127.0.0.1:{port}",
                 "--cluster-credentials-file", path],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=LINK_TIMEOUT)
            self.assertNotEqual(result.returncode, 0, result.stderr)
            self.assertRegex(result.stderr, rf"credentials file {path}: {error}")
            self.assertNotIn(user.seed[2:30], result.stderr, "the seed is never logged")
            # --check-config reads the file as the start does: a config error, exit 2.
            checked = subprocess.run(
                [broker.binary(), "--check-config", "--cluster-nats-url",
                 f"nats://127.0.0.1:{port}", "--cluster-credentials-file", path],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=LINK_TIMEOUT)
            self.assertEqual(checked.returncode, 2, checked.stderr)
            self.assertRegex(checked.stderr, rf"^ringmq: cluster: credentials file {path}: {error}")
            self.assertNotIn(user.seed[2:30], checked.stderr)
        # A good file checks.
        good = self.write_creds("good", jwt, user.seed)
        checked = subprocess.run(
            [broker.binary(), "--check-config", "--cluster-nats-url", f"nats://127.0.0.1:{port}",
             "--cluster-credentials-file", good],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=LINK_TIMEOUT)
        self.assertEqual(checked.returncode, 0, checked.stderr)
        self.assertIn(f'credentials_file = "{good}"', checked.stdout)


if __name__ == "__main__":
    unittest.main()
