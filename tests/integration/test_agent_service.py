"""The agent as a systemd service: the unit passes systemd's checks, and the real agent speaks
sd_notify (READY after its self-test, WATCHDOG from its main loop) on a NOTIFY_SOCKET we bind."""

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from edgectl import service
from edgectl.targets.ssh import SshTarget


@pytest.fixture
def unit_file(tmp_path):
    if shutil.which("systemd-analyze") is None:
        from conftest import missing

        missing("systemd-analyze (apt-get install systemd)")
    home = tmp_path / "home"
    (home / "venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, home / "venv" / "bin" / "python")  # verify checks ExecStart exists
    path = tmp_path / service.UNIT_NAME
    path.write_text(service.unit_text(SshTarget(f"ssh://board{home}"), memory_mb=300))
    return path


def test_unit_verifies_with_nothing_on_stderr(unit_file):
    got = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True)
    assert got.returncode == 0 and got.stderr == "", got.stderr


def test_unit_hardening_exposure_is_at_most_3(unit_file):
    got = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit_file)], capture_output=True, text=True
    )
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", got.stdout).group(1))
    assert score <= 3.0, got.stdout[-2000:]
    text = unit_file.read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes", "ProtectSystem=strict"):
        assert key in text


class NotifySocket:
    """A datagram socket standing in for systemd's notify socket; collects (time, message)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ecn-", dir="/tmp")
        self.path = f"{self.dir}/notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self.running = True
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self):
        while self.running:
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except (TimeoutError, socket.timeout):
                continue

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for _, m in self.messages):
                return True
            time.sleep(0.02)
        return False

    def pings(self, since=0.0):
        return [t for t, m in self.messages if m == "WATCHDOG=1" and t >= since]

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        shutil.rmtree(self.dir)


class RecordReader:
    """Reads an agent's JSON records on a thread, so a test waits with a timeout, never forever."""

    def __init__(self, stream):
        self.queue = queue.Queue()
        threading.Thread(target=lambda: [self.queue.put(line) for line in stream], daemon=True).start()

    def next(self, timeout=30):
        return json.loads(self.queue.get(timeout=timeout))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def notify():
    sock = NotifySocket()
    yield sock
    sock.close()


WATCHDOG_USEC = 1_000_000  # pings every 0.5 s; a gap over 1 s is what systemd would act on


def start_agent(bundle, notify, port, state_dir):
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--input", f"tcp:127.0.0.1:{port}"]
    return subprocess.Popen(
        [*argv, "--state-dir", str(state_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_ready_after_self_test_then_watchdog_pings_and_predictions_over_tcp(
    xgb_build, synthetic_splits, notify, tmp_path
):
    port = free_port()
    agent = start_agent(xgb_build.bundle_dir, notify, port, tmp_path)
    try:
        assert notify.wait_for("READY=1", timeout=60), agent.stderr.read1().decode()
        out = RecordReader(agent.stdout)
        first = out.next()
        assert first["type"] == "start" and first["self_test"]["windows"] > 0  # self-test before READY
        time.sleep(2.5)
        pings = notify.pings()
        assert len(pings) >= 3 and max(b - a for a, b in zip(pings, pings[1:])) < WATCHDOG_USEC / 1e6
        test = synthetic_splits[1]
        unit_rows = test.path.read_bytes().splitlines(keepends=True)[: int((test.units == 1).sum())]
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"".join(unit_rows))
        windows = len(unit_rows) - 29
        records = [out.next() for _ in range(windows)]
        assert all(r["type"] == "prediction" and r["stream"] == "1" for r in records)
        assert notify.wait_for("WATCHDOG=1", timeout=1)
        time.sleep(5.5)  # the state file is written every 5 s
        state = json.loads((tmp_path / "stats.json").read_text())
        assert state["windows"] == windows and state["bundle_id"] == xgb_build.manifest["bundle_id"]
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=10) == 0
        assert out.next()["final"] is True
        assert notify.wait_for("STOPPING=1", timeout=1)
    finally:
        agent.kill()


def test_a_main_loop_that_hangs_stops_the_watchdog_pings(xgb_build, synthetic_splits, notify, tmp_path):
    """Nobody reads the agent's output (a stuck journal): its writes block, so must its pings."""
    port = free_port()
    agent = start_agent(xgb_build.bundle_dir, notify, port, tmp_path)
    try:
        assert notify.wait_for("READY=1", timeout=60)
        lines = synthetic_splits[1].path.read_bytes()
        sender = threading.Thread(target=lambda: _send(port, lines), daemon=True)
        sender.start()
        time.sleep(3.0)  # the pipe fills within milliseconds; then the loop blocks on write
        hung_since = time.monotonic() - 2.0
        assert notify.pings(since=hung_since) == [], "pings went on while the main loop was blocked"
        assert agent.poll() is None  # alive but hung: what only a watchdog catches
    finally:
        agent.kill()
        agent.wait()


def _send(port, data):
    try:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(data)
    except OSError:
        pass


def test_the_agent_refuses_a_tcp_input_off_loopback(xgb_build):
    got = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "--bundle", str(xgb_build.bundle_dir), "--input", "tcp:0.0.0.0:1"],
        capture_output=True,
        text=True,
    )
    assert got.returncode == 2 and "loopback only" in got.stderr
    assert Path(xgb_build.bundle_dir).exists()
