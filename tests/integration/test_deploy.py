"""Deployment files and systemd integration (docs/deployment.md).

The unit file is checked by systemd's own verifier; the readiness protocol by a test socket in
the role of systemd: ringmq must send READY=1 once it accepts connections and STOPPING=1 when
asked to stop.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import mqtt_raw as m
from broker import BrokerTestCase, binary, free_port, is_mosquitto

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
UNIT = os.path.join(ROOT, "docs", "deploy", "ringmq.service")
SYSCTL = os.path.join(ROOT, "docs", "deploy", "99-ringmq.conf")
TIMEOUT = 10.0


class UnitFile(BrokerTestCase):
    def test_unit_file_passes_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze")
        self.assertIsNotNone(analyze, "systemd-analyze is installed by scripts/install-deps.sh")
        with open(UNIT) as f:
            text = f.read()
        self.assertIn("Type=notify", text)
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", text)
        self.assertIn("LimitNOFILE=", text)
        with tempfile.TemporaryDirectory(prefix="ringmq-unit-") as tmp:
            # The verifier checks that ExecStart names an executable: point it at this build.
            path = os.path.join(tmp, "ringmq.service")
            with open(path, "w") as f:
                f.write(text.replace("/usr/local/bin/ringmq", os.path.abspath(binary())))
            proc = subprocess.run([analyze, "verify", path], capture_output=True, text=True,
                                  timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr.strip(), "", "systemd warns about the unit")

    def test_unit_exec_start_pre_command_line_is_valid(self):
        # The unit runs `ringmq --check-config --config FILE`: the example config must pass it.
        proc = subprocess.run([binary(), "--check-config", "--config",
                               os.path.join(ROOT, "docs", "ringmq.example.toml")],
                              capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.startswith("config OK\n"), proc.stdout)

    def test_sysctl_file_names_only_real_sysctls(self):
        with open(SYSCTL) as f:
            lines = [line.strip() for line in f]
        settings = [line for line in lines if line and not line.startswith("#")]
        self.assertGreater(len(settings), 3)
        for line in settings:
            key, sep, value = line.partition("=")
            self.assertEqual(sep, "=", line)
            path = "/proc/sys/" + key.strip().replace(".", "/")
            self.assertTrue(os.path.exists(path), f"{key.strip()} is not a sysctl here")
            self.assertTrue(value.strip().replace(" ", "").isdigit(), line)


class Readiness(BrokerTestCase):
    def setUp(self):
        if is_mosquitto():
            self.skipTest("ringmq systemd notification")
        tmp = tempfile.TemporaryDirectory(prefix="ringmq-notify-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def run_with_notify(self, address, env_value):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(address)
        sock.settimeout(TIMEOUT)
        port = free_port()
        env = dict(os.environ, NOTIFY_SOCKET=env_value)
        proc = subprocess.Popen([binary(), "--bind", "127.0.0.1", "--port", str(port),
                                 "--threads", "2", "--metrics-port", "0"],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        ready = sock.recv(4096).decode()
        self.assertIn("READY=1", ready.split("\n"))
        self.assertIn(f"STATUS=accepting connections on 127.0.0.1:{port}", ready)
        # READY means it: a client connects at once.
        with m.connect_client(port, "after-ready") as s:
            m.disconnect(s)
        proc.send_signal(signal.SIGTERM)
        stopping = sock.recv(4096).decode()
        self.assertIn("STOPPING=1", stopping.split("\n"))
        self.assertEqual(proc.wait(TIMEOUT), 0)
        proc.stderr.close()

    def test_ready_then_stopping_on_a_path_socket(self):
        path = os.path.join(self.dir, "notify.sock")
        self.run_with_notify(path, path)

    def test_ready_then_stopping_on_an_abstract_socket(self):
        name = f"ringmq-test-{os.getpid()}-{time.monotonic_ns()}"
        self.run_with_notify("\0" + name, "@" + name)

    def test_no_notify_socket_is_fine(self):
        b = self.start_broker()
        self.assert_serves(b)
        b.stop()
