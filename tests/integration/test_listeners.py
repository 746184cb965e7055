"""Listeners beyond the default one (issue 14): `[[listener]]` tables in the config file, the
default listener's `port = 0`, the listeners in --check-config, and bad listener configs.

Every listener is opened on every shard (SO_REUSEPORT), and all of them feed one broker: a client
on one listener reaches subscribers on any other.
"""

import os
import re
import socket
import subprocess
import time

import mqtt_raw as m
from broker import free_port
from test_cli import FileTestCase, run_binary

QUIET = 0.3  # seconds a subscriber must stay silent when nothing more may arrive


def listener_tables(*ports, bind=m.HOST):
    return "".join(f'[[listener]]\nbind = "{bind}"\nport = {port}\n' for port in ports)


class Listeners(FileTestCase):
    def test_two_extra_plain_listeners_route_to_each_other_and_the_default(self):
        extra = [free_port(), free_port()]
        path = self.write(listener_tables(*extra))
        b = self.start_broker("--config", path)
        ready = b.wait_for_log(r"ready: accepting connections on ")
        self.assertIn(f"on {m.HOST}:{b.port}, {m.HOST}:{extra[0]}, {m.HOST}:{extra[1]} (",
                      ready)
        for port in extra:
            self.assertIsNotNone(b.wait_for_log(rf"listener mqtt:{port}: {m.HOST} port {port}, "
                                                r"mqtt$"))
        ports = [b.port, *extra]
        # Subscribers on every listener; each listener's publisher reaches all of them. Many
        # client ids, so that both shards serve some of them.
        subs = [m.Client(port, f"sub{i}-{port}") for i, port in enumerate(ports * 3)]
        try:
            for sub in subs:
                sub.subscribe([("across/#", 1)])
            published = []
            for port in ports:
                with m.Client(port, f"pub-{port}") as pub:
                    pub.publish(f"across/{port}", f"from {port}".encode(), qos=1)
                    published.append((f"across/{port}", f"from {port}".encode(), 1, False, False))
                    pub.disconnect()
            for sub in subs:
                got = [p.key() for p in sub.receive(len(ports))]
                self.assertEqual(sorted(got), sorted(published), sub.client_id)
            m.expect_quiet(subs, QUIET)
            for sub in subs:
                sub.disconnect()
        finally:
            for sub in subs:
                sub.close()
        self.assert_counters(b.stop(), connect_accepted=len(subs) + len(ports),
                             subscriptions_added=len(subs), connections_accepted=None,
                             connections_handed_off=None)

    def test_port_zero_opens_only_the_listener_tables(self):
        port = free_port()
        path = self.write("port = 0\n" + listener_tables(port))
        # The fixture's own --port comes first; this --port 0 (the last one) wins.
        b = self.start_broker("--config", path, "--port", "0", port=port)
        ready = b.wait_for_log(r"ready: accepting connections on ")
        self.assertRegex(ready, rf"accepting connections on {re.escape(m.HOST)}:{port} \(")
        opened = [line for line in b.lines if re.search(r"\blistener \S+: ", line)]
        self.assertEqual(len(opened), 1, opened)
        self.assertIn(f"listener mqtt:{port}:", opened[0])
        self.assert_serves(b)
        self.assert_counters(b.stop(), connect_accepted=1)

    def test_listener_port_in_use_fails_the_start_naming_the_listener(self):
        taken = free_port()
        path = self.write(listener_tables(taken))
        with socket.socket() as holder:
            holder.bind((m.HOST, taken))  # no SO_REUSEPORT: the broker's bind fails
            holder.listen()
            proc = run_binary("--config", path, "--port", str(free_port()), "--threads", "1",
                              "--metrics-port", "0")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertRegex(proc.stderr, rf"cannot start: listener mqtt:{taken}: .*in use")


class ListenerConfigErrors(FileTestCase):
    def check(self, text, *flags):
        path = self.write(text)
        proc = run_binary("--check-config", "--config", path, *flags)
        return path, proc

    def test_check_config_prints_the_listeners_as_tables_that_check_the_same(self):
        # --check-config reads a TLS listener's files (tls::CheckListener): real ones.
        crt, key = os.path.join(self.dir, "server.crt"), os.path.join(self.dir, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-subj", "/CN=edge", "-days", "2"], check=True, capture_output=True,
                       timeout=30)
        path, first = self.check(
            "port = 0\n"
            f'[[listener]]\nname = "edge"\nbind = "0.0.0.0"\nport = 8883\n'
            f'certfile = "{crt}"\nkeyfile = "{key}"\n'
            "max_connections = 1000\nallow_anonymous = false\n"
            '[[listener]]\nport = 8080\nprotocol = "websockets"\nproxy_protocol = "v2"\n')
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn('\n[[listener]]\nname = "edge"\nbind = "0.0.0.0"\nport = 8883\n'
                      f'protocol = "mqtt"\ncertfile = "{crt}"\n', first.stdout)
        self.assertIn("# listener edge: certificate subject CN=edge, issuer CN=edge, expires ",
                      first.stdout)
        self.assertIn('\n[[listener]]\nbind = "127.0.0.1"\nport = 8080\n'
                      'protocol = "websockets"\nproxy_protocol = "v2"\n', first.stdout)
        # Each listener listed, in listener order (no default listener: port = 0).
        listed = [line for line in first.stdout.splitlines()
                  if line.startswith("# listener ") and ": certificate subject" not in line]
        self.assertEqual(listed, [
            "# listener edge: 0.0.0.0 port 8883, mqtt, TLS, max_connections 1000, "
            "allow_anonymous false",
            "# listener ws:8080: 127.0.0.1 port 8080, websockets (path /mqtt), PROXY v2",
        ])
        again = self.write(first.stdout.split("\n", 1)[1], name="again.toml")
        second = run_binary("--check-config", "--config", again)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual(second.stdout, first.stdout)

    def test_bad_listener_tables_exit_2_with_one_line_naming_file_line_and_table(self):
        cases = [
            ("[[listener]]\nport = 1884\n[[listener]]\nport = 99999\n",
             ":4: [[listener]] 2: port: expected an integer in 1..65535"),
            ("[[listener]]\nport = 1884\nfrobnicate = 1\n",
             ':3: [[listener]] 1: unknown key "frobnicate"'),
            ('[[listener]]\nport = 8883\nkeyfile = "k.pem"\n',
             ":1: [[listener]] 1: keyfile needs certfile"),
            ('[[listener]]\nport = 8883\ncafile = "ca.pem"\n',
             ":1: [[listener]] 1: cafile is a TLS key: TLS needs certfile and keyfile"),
            ('[[listener]]\nport = 8883\ncertfile = "c"\nkeyfile = "k"\n'
             "require_certificate = true\n",
             ":1: [[listener]] 1: require_certificate needs cafile"),
            ("[[listener]]\nbind = \"0.0.0.0\"\n", ":1: [[listener]] 1: port is required"),
        ]
        for text, message in cases:
            path, proc = self.check(text, "--port", str(free_port()))
            self.assertEqual(proc.returncode, 2, (text, proc.stderr))
            self.assertEqual(proc.stdout, "")
            self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
            self.assertIn(f"{path}{message}", proc.stderr)

    def test_listeners_on_one_address_exit_2(self):
        port = free_port()
        _, proc = self.check(listener_tables(port), "--port", str(port))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(proc.stderr.strip(),
                         f"ringmq: the default listener (bind, port) on 127.0.0.1 and "
                         f"[[listener]] 1 on 127.0.0.1 share port {port}")
        _, proc = self.check("port = 0\n", "--port", "0")
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("nothing to listen on", proc.stderr)


class ListenerLimits(FileTestCase):
    """Per-listener max_connections and allow_anonymous (src/connect/admission.h)."""

    def test_listener_max_connections_refuses_0x03_beyond_it_and_frees_on_close(self):
        limited = free_port()
        path = self.write(listener_tables(limited) + "max_connections = 2\n")
        b = self.start_broker("--config", path)
        first = m.connect_client(limited, "l1")
        second = m.connect_client(limited, "l2")
        try:
            third = m.connect_client(limited, "l3", expect=3)  # MQTT-3.2.2: 0x03
            m.expect_eof(third)
            third.close()
            # A 5.0 client is told Quota exceeded (0x97), as for the broker-wide bound.
            with m.open_socket(limited) as s:
                m.send(s, m.connect("l5", level=5, properties=b"\x00"))
                got = m.read_packet(s)
                self.assertEqual(got.raw[0], 0x20, got.raw)
                self.assertEqual(got.raw[3], 0x97, got.raw)
                m.expect_eof(s)
            # The default listener has no bound of its own.
            self.assert_serves(b)
            m.disconnect(first)
        finally:
            first.close()
        # The disconnected client's slot on the listener is free again (given back at close).
        deadline = time.monotonic() + 5
        while True:
            try:
                again = m.connect_client(limited, "l4")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        m.disconnect(again)
        again.close()
        m.disconnect(second)
        second.close()
        counters = b.stop()
        self.assertGreaterEqual(counters["connect_listener_connection_limit"], 2)
        self.assert_counters(counters, connect_accepted=None,
                             connect_listener_connection_limit=None,
                             connections_handed_off=None)

    def test_listener_allow_anonymous_overrides_the_broker_wide_key(self):
        closed, opened = free_port(), free_port()
        path = self.write(listener_tables(closed) + "allow_anonymous = false\n"
                          + listener_tables(opened) + "allow_anonymous = true\n")
        # Broker-wide anonymous clients are allowed: refused only on `closed`.
        b = self.start_broker("--config", path)
        self.assert_serves(b)
        with m.connect_client(opened, "anon-open") as s:
            m.disconnect(s)
        s = m.connect_client(closed, "anon-closed", expect=5)
        m.expect_eof(s)
        s.close()
        self.assert_counters(b.stop(), connect_accepted=2, connect_not_authorized=1)
        # Broker-wide refused (no password file): allowed only on `opened`.
        b = self.start_broker("--config", path, "--allow-anonymous", "false")
        with m.connect_client(opened, "anon-open") as s:
            m.disconnect(s)
        for port in (b.port, closed):
            s = m.connect_client(port, f"anon-{port}", expect=5)
            m.expect_eof(s)
            s.close()
        self.assert_counters(b.stop(), connect_accepted=1, connect_not_authorized=2)


class ListenerMetrics(FileTestCase):
    def test_metrics_have_a_listener_label(self):
        extra = free_port()
        path = self.write(listener_tables(extra) + 'name = "edge"\nmax_connections = 1\n')
        b = self.start_broker("--config", path, metrics=True)
        default = f"mqtt:{b.port}"
        from test_metrics import scrape, total

        with m.Client(extra, "sub-edge") as sub, m.Client(b.port, "pub-default") as pub:
            sub.subscribe([("t/#", 0)])
            pub.publish("t/x", b"p" * 1000)
            self.assertEqual(sub.next_publish().payload, b"p" * 1000)
            refused = m.connect_client(extra, "second-edge", expect=3)
            m.expect_eof(refused)
            refused.close()
            samples = scrape(b.metrics_url())
            self.assertEqual(total(samples, "ringmq_listener_clients_connected", listener="edge"),
                             1)
            self.assertEqual(total(samples, "ringmq_listener_clients_connected",
                                   listener=default), 1)
            self.assertEqual(total(samples, "ringmq_listener_max_connections", listener="edge"),
                             1)
            self.assertEqual(total(samples, "ringmq_listener_connections", listener="edge"), 1)
            sub.disconnect()
            pub.disconnect()
        samples = scrape(b.metrics_url())
        self.assertEqual(total(samples, "ringmq_listener_connections_accepted_total",
                               listener="edge"), 2)
        self.assertEqual(total(samples, "ringmq_listener_connections_accepted_total",
                               listener=default), 1)
        self.assertEqual(total(samples, "ringmq_listener_connect_outcomes_total",
                               listener="edge", result="accepted"), 1)
        self.assertEqual(total(samples, "ringmq_listener_connect_outcomes_total",
                               listener="edge", result="refused"), 1)
        self.assertEqual(total(samples, "ringmq_listener_connect_outcomes_total",
                               listener=default, result="refused"), 0)
        # The subscriber's listener sent the delivery; the publisher's received it.
        self.assertGreater(total(samples, "ringmq_listener_sent_bytes_total", listener="edge"),
                           1000)
        self.assertGreater(total(samples, "ringmq_listener_received_bytes_total",
                                 listener=default), 1000)
        self.assertLess(total(samples, "ringmq_listener_sent_bytes_total", listener=default),
                        100)
        self.assertEqual(
            total(samples, "ringmq_connect_outcomes_total", reason="listener_connection_limit",
                  result="refused"), 1)
        for name in ("ringmq_listener_connections_accepted_total",
                     "ringmq_listener_received_bytes_total"):
            self.assertFalse([ls for n, ls, _ in samples if n == name and "shard" in ls], name)
        # Every label value is a listener's name.
        names = {ls["listener"] for n, ls, _ in samples if n.startswith("ringmq_listener_")}
        self.assertEqual(names, {default, "edge"})
        self.assert_counters(b.stop(), connect_accepted=2, connect_listener_connection_limit=1,
                             connections_handed_off=None)
