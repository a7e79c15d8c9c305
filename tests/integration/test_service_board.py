"""The agent as the edge-agent systemd unit on a booted board (systemd as PID 1 under systemd-nspawn),
deployed over SSH as root: the service path of deploy, its hardening and memory limits, a release
that never becomes READY, the watchdog, kill -9, a full disk and a reboot (last: tests run in order)."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from boards import mosquitto
from cli import edgectl
from conftest import missing, wait_until
from test_hostile_bundles import failing_selftest, renamed
from test_mqtt_telemetry import Subscriber

from edge_agent.manifest import write_manifest
from edgectl import profiles

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

UNIT = "edge-agent.service"


def on_board(board, command, input=None):
    got = board.ssh(command, input=input)
    assert got.returncode == 0, f"{command}: {got.stderr}"
    return got.stdout.strip()


def n_restarts(board):
    return int(on_board(board, f"systemctl show -p NRestarts --value {UNIT}"))


def main_pid(board):
    return int(on_board(board, f"systemctl show -p MainPID --value {UNIT}"))


def active(board):
    return on_board(board, f"systemctl is-active {UNIT} || true") == "active"


@pytest.fixture(scope="module")
def board_profile(tmp_path_factory):
    """EDGECTL_PROFILES holding a profile for this x86_64 board: rpi4's with its own arch and memory budget."""
    folder = tmp_path_factory.mktemp("profiles")
    text = (profiles.PROFILE_DIR / "rpi4.toml").read_text()
    text = text.replace('name = "rpi4"', 'name = "sysboard"').replace('arch = "aarch64"', 'arch = "x86_64"')
    (folder / "sysboard.toml").write_text(text.replace("agent_memory_mb = 300", "agent_memory_mb = 256"))
    return {"EDGECTL_PROFILES": str(folder)}


@pytest.fixture(scope="module")
def deployed(booted_board, xgb_build, board_profile):
    argv = ["deploy", str(xgb_build.bundle_dir), booted_board.alias, "--offline", "--profile", "sysboard"]
    got = edgectl(*argv, "--json", "-q", env=board_profile)
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


def test_deploy_enables_the_unit_and_returns_once_systemd_has_it_running(booted_board, deployed, xgb_build):
    assert deployed["health"]["healthy"] and deployed["health"]["method"] == "systemd"
    assert on_board(booted_board, f"systemctl is-enabled {UNIT}") == "enabled"
    assert on_board(booted_board, f"systemctl is-active {UNIT}") == "active"  # Type=notify: after READY
    status = on_board(booted_board, f"systemctl show -p StatusText --value {UNIT}")
    assert status == f"serving {xgb_build.manifest['bundle_id']}"


def test_the_agent_runs_as_a_dynamic_user_that_cannot_write_the_system(booted_board, deployed):
    pid = main_pid(booted_board)
    uid = int(on_board(booted_board, f"awk '/^Uid:/ {{print $2}}' /proc/{pid}/status"))
    assert uid >= 61184  # systemd's DynamicUser range (61184-65519), never root
    # In the service's own mount namespace, even as root: ProtectSystem=strict made the system read-only.
    for path in ("/usr/edgectl-test", "/etc/edgectl-test", "/opt/edgectl/current/edgectl-test"):
        got = booted_board.ssh(f"nsenter --target {pid} --mount -- touch {path}")
        assert got.returncode != 0 and "Read-only file system" in got.stderr, (path, got.stderr)
    # As its user, in its namespaces: its StateDirectory is writable.
    enter = f"nsenter --target {pid} --mount --user --setuid {uid} --setgid {uid} --"
    on_board(booted_board, f"{enter} touch /var/lib/edge-agent/writable && {enter} rm /var/lib/edge-agent/writable")


def test_systemd_analyze_security_scores_the_unit_at_2_or_less_on_the_board(booted_board, deployed):
    text = on_board(booted_board, f"systemd-analyze security --no-pager {UNIT} | tail -1")
    score = float(text.split("level for")[1].split(":")[1].split()[0])
    print(f"systemd-analyze security {UNIT} on the booted board: {score}")
    assert score <= 2.0


def test_samples_sent_to_the_services_tcp_input_give_predictions_in_its_journal(
    booted_board, deployed, synthetic_splits
):
    """`logs -f` follows the journal as the predictions come; `logs -n` and `status` show them after."""
    follow = subprocess.Popen([sys.executable, "-m", "edgectl.cli", "logs", booted_board.alias, "-f"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    followed = []
    threading.Thread(target=lambda: followed.extend(follow.stdout), daemon=True).start()
    try:
        lines = synthetic_splits[1].path.read_text().splitlines(keepends=True)[:300]
        # As a process of the user's on the board would: the service listens on the board's own loopback.
        send = "import socket, sys; socket.create_connection(('127.0.0.1', 7878), 10).sendall(sys.stdin.buffer.read())"
        got = booted_board.ssh(f'python3 -c "{send}"', input="".join(lines))
        assert got.returncode == 0, got.stderr
        assert wait_until(lambda: any('"prediction"' in line for line in followed)), "".join(followed)[-2000:]
    finally:
        follow.terminate()
        follow.wait()
    logs = edgectl("logs", booted_board.alias, "-n", "400")
    assert logs.returncode == 0 and '"prediction"' in logs.stdout, logs.stdout[-2000:]

    def shown():
        status = json.loads(edgectl("status", booted_board.alias, "--json").stdout)
        return status if (status["last_stats"] or {}).get("windows") else None  # stats.json: every 5 s

    status = wait_until(shown, timeout=20)
    assert status and status["health"] == "healthy" and status["release"] == deployed["bundle_id"]
    assert status["uptime_s"] >= 0 and status["last_stats"]["bundle_id"] == deployed["bundle_id"]


def test_the_profiles_memory_budget_is_the_units_memory_limits(booted_board, deployed):
    assert deployed["memory_limits"] == {"memory_high_mb": 256, "memory_max_mb": 512, "profile": "sysboard",
                                         "how": "--profile"}  # fmt: skip
    shown = on_board(booted_board, f"systemctl show -p MemoryHigh -p MemoryMax {UNIT}")
    assert shown.splitlines() == [f"MemoryHigh={256 * 2**20}", f"MemoryMax={512 * 2**20}"]


def test_a_release_that_never_becomes_ready_is_rolled_back_through_systemd(booted_board, deployed, xgb_build, tmp_path):
    """Its self-test fails on the board: the agent exits before READY, `systemctl restart` fails, and
    deploy switches back and restarts the previous release on the agent it ran on, which serves."""
    broken, broken_id = failing_selftest(xgb_build.bundle_dir, tmp_path / "broken")
    got = edgectl("deploy", str(broken), booted_board.alias, "--offline")
    assert got.returncode == 1 and f"rolled back to {deployed['bundle_id']}" in got.stderr, got.stderr
    assert "NOT healthy" not in got.stderr
    assert active(booted_board) and main_pid(booted_board) > 0
    assert on_board(booted_board, f"systemctl show -p StatusText --value {UNIT}") == f"serving {deployed['bundle_id']}"
    assert on_board(booted_board, "readlink /opt/edgectl/current") == f"releases/{deployed['bundle_id']}"
    assert on_board(booted_board, "readlink /opt/edgectl/agent") == f"agents/{deployed['agent']}"
    assert "self-test" in on_board(booted_board, f"journalctl -u {UNIT} --no-pager | tail -60")
    assert not on_board(booted_board, "ls -A /opt/edgectl/.pending 2>/dev/null || true")


def test_the_watchdog_kills_a_stopped_agent_and_systemd_starts_it_again(booted_board, deployed):
    dropin = f"/etc/systemd/system/{UNIT}.d"  # a short watchdog for the test; the unit itself says 30 s
    on_board(booted_board, f"mkdir -p {dropin} && printf '[Service]\\nWatchdogSec=3\\n' > {dropin}/test.conf && "
             f"systemctl daemon-reload && systemctl restart {UNIT}")  # fmt: skip
    try:
        before = main_pid(booted_board)
        on_board(booted_board, f"kill -STOP {before}")  # the main loop stops: no more watchdog pings
        restarted = wait_until(lambda: n_restarts(booted_board) >= 1 and active(booted_board))
        assert restarted and main_pid(booted_board) != before
        assert "Watchdog timeout" in on_board(booted_board, f"journalctl -u {UNIT} --no-pager | tail -60")
    finally:
        got = booted_board.ssh(f"rm -rf {dropin} && systemctl daemon-reload && systemctl restart {UNIT}")
        assert got.returncode == 0, booted_board.ssh(f"journalctl -u {UNIT} --no-pager | tail -40").stdout


def test_kill_9_of_the_agent_mid_stream_is_restarted_and_its_records_and_state_go_on(
    booted_board, deployed, synthetic_splits
):
    """SIGKILL while samples stream in: systemd starts the agent again; the state file is whole and
    comes from the new process, and every window the new process answers is in the journal once."""
    lines = synthetic_splits[1].path.read_text().splitlines(keepends=True)
    header = lines[0]
    before, after = [header, *lines[400:1400]], [header, *lines[1400:2400]]
    for name, part in (("before", before), ("after", after)):
        on_board(booted_board, f"cat > /root/{name}.csv", input="".join(part))
    feeder = ("import socket, sys, time\n"
              "c = socket.create_connection(('127.0.0.1', 7878), 10)\n"
              "for line in open(sys.argv[1], 'rb'):\n"
              "    c.sendall(line)\n    time.sleep(float(sys.argv[2]))\n")  # fmt: skip
    on_board(booted_board, "cat > /root/feed.py", input=feeder)
    cursor = on_board(booted_board, f"journalctl -u {UNIT} -n 0 --show-cursor").split("cursor: ")[-1]
    killed, restarts = main_pid(booted_board), n_restarts(booted_board)
    booted_board.ssh(f"python3 /root/feed.py /root/before.csv 0.002 & sleep 1.5; kill -9 {killed}; wait")  # mid-stream
    assert wait_until(lambda: active(booted_board) and main_pid(booted_board) not in (0, killed))
    assert n_restarts(booted_board) == restarts + 1
    new_pid = main_pid(booted_board)
    on_board(booted_board, "python3 /root/feed.py /root/after.csv 0")

    def state():
        got = json.loads(on_board(booted_board, "cat /var/lib/edge-agent/stats.json"))  # whole at every read
        return got if got["samples"] >= len(after) else None  # every line read (the header counts as one)

    final = wait_until(state, timeout=20)
    assert final and final["bundle_id"] == deployed["bundle_id"] and final["uptime_s"] < 60
    journal = on_board(booted_board, f"journalctl -u {UNIT} --after-cursor '{cursor}' -o json")
    entries = [json.loads(line) for line in journal.splitlines()]
    records = [(int(e["_PID"]), json.loads(e["MESSAGE"])) for e in entries if str(e.get("MESSAGE")).startswith("{")]
    answered = [(r["stream"], r["t"]) for pid, r in records if pid == new_pid and r["type"] == "prediction"]
    assert len(answered) == final["windows"] > 0 and len(set(answered)) == len(answered)
    assert any(pid == killed and r["type"] == "prediction" for pid, r in records)  # it was serving when killed


def test_deploy_telemetry_makes_the_service_publish_to_a_broker_and_export_metrics(
    booted_board, deployed, xgb_build, tmp_path
):
    """The broker (mqtts, passwords only) listens on this machine's end of the board's veth; the unit lets
    the board reach it, loads its CA and password as credentials, and exports metrics for node_exporter."""
    if not os.path.exists(mosquitto.MOSQUITTO):
        missing("mosquitto (apt-get install mosquitto; make system-deps)")
    broker = mosquitto.Broker(booted_board.host_address, tls=True, users={"watcher": "w", "sysboard": "p:w d"})
    watcher = Subscriber(broker, "watcher")
    textfiles, restored = "/var/lib/prometheus/node-exporter", False
    try:
        argv = ["deploy", str(xgb_build.bundle_dir), booted_board.alias, "--offline", "--mqtt", broker.url,
                "--mqtt-fleet", "lab", "--mqtt-ca", broker.ca_file, "--mqtt-auth", broker.auth_file("sysboard"),
                "--metrics-port", "9477", "--node-exporter-dir", textfiles, "--json", "-q"]  # fmt: skip
        got = edgectl(*argv)
        assert got.returncode == 0, got.stderr
        telemetry = json.loads(got.stdout)["telemetry"]
        assert telemetry["mqtt"]["url"] == broker.url and telemetry["mqtt"]["board"] == "sysboard"
        unit = on_board(booted_board, f"systemctl cat {UNIT}")
        assert f"IPAddressAllow=localhost {booted_board.host_address}" in unit and f"--mqtt {broker.url}" in unit
        assert "--mqtt-auth %d/mqtt-auth" in unit and "p:w d" not in unit  # the password never in the unit
        assert on_board(booted_board, "stat -c %a:%U /opt/edgectl/credentials/mqtt-auth").strip() == "600:root"
        ready = wait_until(lambda: [b for _, _, b in watcher.on("lab/sysboard/state") if b["state"] == "ready"])
        assert ready and ready[-1]["bundle_id"] == deployed["bundle_id"]
        # node_exporter runs as its own user: the linked textfile must be readable by another user
        scraped = on_board(booted_board, f"runuser -u nobody -- cat {textfiles}/edge_agent.prom")
        assert f'bundle_id="{deployed["bundle_id"]}"' in scraped and "process_resident_memory_bytes" in scraped
        served = on_board(booted_board, "python3 -c \"import urllib.request as u; "
                          "print(u.urlopen('http://127.0.0.1:9477/metrics').read().decode())\"")  # fmt: skip
        assert "edge_agent_bundle_info" in served
        # A fleet deploy of the same release without the telemetry is not skipped: the unit would change
        inventory = tmp_path / "board.ini"
        inventory.write_text(f"[boards]\n{booted_board.alias} ansible_host={booted_board.alias}\n")
        fleet = ["fleet", "deploy", str(xgb_build.bundle_dir), "-i", str(inventory), "--offline", "--json", "-q"]
        env = {"EDGECTL_FLEET_RUNS": str(tmp_path / "runs")}
        results = [json.loads(edgectl(*fleet, env=env).stdout)["boards"][0]["result"] for _ in range(2)]
        assert results == ["deployed", "skipped"] and "--mqtt" not in on_board(booted_board, f"systemctl cat {UNIT}")
        restored = True
    finally:
        watcher.stop()
        broker.remove()
        if not restored:  # the tests after this one expect the plain unit
            edgectl("deploy", str(xgb_build.bundle_dir), booted_board.alias, "--offline", "-q")


FEEDER = """\
import socket, time
lines = open('/root/stream.csv', 'rb').readlines()
deadline = time.time() + 300
while time.time() < deadline:  # a sensor process: each (re)started service gets the stream once
    try:
        c = socket.create_connection(('127.0.0.1', 7878), 2)
        for line in lines:
            c.sendall(line)
            time.sleep(0.002)
        while c.recv(1024):
            pass
    except OSError:
        pass
    time.sleep(0.2)
"""


def test_the_fleet_health_gate_passes_on_served_windows_and_rolls_back_a_slow_board(
    booted_board, deployed, xgb_build, synthetic_splits, tmp_path
):
    """After its deploy, the board's service must answer N windows with no error record (and a p99 within
    the limit) while a sensor feeds it; a board that does not is rolled back and counted as failed."""
    on_board(booted_board, "cat > /root/stream.csv", input=synthetic_splits[1].path.read_text())
    on_board(booted_board, "cat > /root/feeder.py", input=FEEDER)
    on_board(booted_board, "nohup python3 /root/feeder.py > /dev/null 2>&1 &")
    inventory = tmp_path / "board.ini"
    inventory.write_text(f"[boards]\n{booted_board.alias} ansible_host={booted_board.alias}\n")
    env = {"EDGECTL_FLEET_RUNS": str(tmp_path / "runs")}
    try:
        good, good_id = renamed(xgb_build.bundle_dir, tmp_path / "good", "xgboost-gated")
        gate = ["--health-windows", "20", "--health-timeout", "90", "--offline", "--json"]
        got = edgectl("fleet", "deploy", str(good), "-i", str(inventory), *gate, env=env)
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout)["boards"][0]["result"] == "deployed"
        slow, _ = renamed(xgb_build.bundle_dir, tmp_path / "slow", "xgboost-slow")
        got = edgectl("fleet", "deploy", str(slow), "-i", str(inventory), *gate, "--health-p99-ms", "0.0001", env=env)
        assert got.returncode == 1, got.stderr
        row = json.loads(got.stdout)["boards"][0]
        assert row["result"] == "failed" and row["after"] == good_id, row
        assert "health gate: p99" in row["reason"] and f"rolled back to {good_id}" in row["reason"], row
        assert on_board(booted_board, "readlink /opt/edgectl/current") == f"releases/{good_id}" and active(booted_board)
    finally:
        booted_board.ssh("pkill -f /root/feeder.py")
        back = edgectl("deploy", str(xgb_build.bundle_dir), booted_board.alias, "--offline", "-q")  # as it was
        assert back.returncode == 0, back.stderr


def test_a_bundle_that_does_not_fit_is_refused_before_anything_changes(booted_board, deployed, xgb_build, tmp_path):
    """The board's releases on a small tmpfs the new bundle does not fit: deploy says what it needs and
    what is free, before any upload or switch, and the old release keeps serving, not even restarted."""
    big, _ = renamed(xgb_build.bundle_dir, tmp_path / "big", "xgboost-big")
    (big / "padding.bin").write_bytes(os.urandom(3 * 2**20))  # listed with its sha256, like any bundle file
    big_id = write_manifest(big, json.loads((big / "manifest.json").read_text()))["bundle_id"]
    releases = "/opt/edgectl/releases"
    used_kb = int(on_board(booted_board, f"du -sk {releases}").split()[0])
    small = f"mount -t tmpfs -o size={used_kb + 1024}k tmpfs {releases}"  # room for what is there, and 1 MB
    on_board(booted_board, f"mv {releases} {releases}.disk && mkdir {releases} && {small} && "
             f"cp -a {releases}.disk/. {releases}/")  # fmt: skip
    try:
        pid = main_pid(booted_board)
        got = edgectl("deploy", str(big), booted_board.alias, "--offline")
        assert got.returncode == 1, got.stderr
        assert f"no room for bundle {big_id}: it needs 3." in got.stderr and f"{releases} has " in got.stderr
        assert "MB free. Nothing was changed" in got.stderr and "Traceback" not in got.stderr
        assert on_board(booted_board, "readlink /opt/edgectl/current") == f"releases/{deployed['bundle_id']}"
        assert main_pid(booted_board) == pid and active(booted_board)
        assert on_board(booted_board, f"ls -A {releases} | grep -c incoming || true") == "0"
    finally:
        on_board(booted_board, f"umount {releases} && rmdir {releases} && mv {releases}.disk {releases}")


def test_after_a_power_off_the_service_starts_by_itself_with_the_current_release(booted_board, deployed):
    booted_board.power_off()
    seconds = booted_board.boot()
    print(f"booted again in {seconds:.2f} s")
    deadline = time.monotonic() + 30
    while on_board(booted_board, f"systemctl is-active {UNIT} || true") != "active" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert on_board(booted_board, f"systemctl is-active {UNIT}") == "active"
    status = json.loads(edgectl("status", booted_board.alias, "--json").stdout)
    assert status["release"] == deployed["bundle_id"] and status["health"] == "healthy"
