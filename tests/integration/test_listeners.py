"""Listeners beyond the default one (issue 14): `[[listener]]` tables in the config file, the
default listener's `port = 0`, the listeners in --check-config, and bad listener configs.

Every listener is opened on every shard (SO_REUSEPORT), and all of them feed one broker: a client
on one listener reaches subscribers on any other.
"""

import re
import subprocess

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
        import socket
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
        path, first = self.check(
            "port = 0\n"
            '[[listener]]\nname = "edge"\nbind = "0.0.0.0"\nport = 8883\n'
            'certfile = "/etc/ringmq/server.crt"\nkeyfile = "/etc/ringmq/server.key"\n'
            "max_connections = 1000\nallow_anonymous = false\n"
            '[[listener]]\nport = 8080\nprotocol = "websockets"\nproxy_protocol = "v2"\n')
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn('\n[[listener]]\nname = "edge"\nbind = "0.0.0.0"\nport = 8883\n'
                      'protocol = "mqtt"\ncertfile = "/etc/ringmq/server.crt"\n', first.stdout)
        self.assertIn('\n[[listener]]\nbind = "127.0.0.1"\nport = 8080\n'
                      'protocol = "websockets"\nproxy_protocol = "v2"\n', first.stdout)
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
