"""The agent as the edge-agent systemd unit on a booted board (systemd as PID 1 under systemd-nspawn),
deployed over SSH as root: the service path of deploy, its hardening, the watchdog and a reboot."""

import json
import socket
import time

import pytest
from cli import edgectl

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

UNIT = "edge-agent.service"


def on_board(board, command):
    got = board.ssh(command)
    assert got.returncode == 0, f"{command}: {got.stderr}"
    return got.stdout.strip()


def main_pid(board):
    return int(on_board(board, f"systemctl show -p MainPID --value {UNIT}"))


@pytest.fixture(scope="module")
def deployed(booted_board, xgb_build):
    got = edgectl("deploy", str(xgb_build.bundle_dir), booted_board.alias, "--offline", "--json", "-q")
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
    lines = synthetic_splits[1].path.read_text().splitlines(keepends=True)[:300]
    # The board shares this host's network: its loopback port 7878 is reachable here.
    with socket.create_connection(("127.0.0.1", 7878), timeout=10) as conn:
        conn.sendall("".join(lines).encode())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logs = edgectl("logs", booted_board.alias, "-n", "400")
        if '"type": "prediction"' in logs.stdout or '"type":"prediction"' in logs.stdout:
            break
        time.sleep(0.5)
    assert logs.returncode == 0 and '"prediction"' in logs.stdout, logs.stdout[-2000:]
    status = json.loads(edgectl("status", booted_board.alias, "--json").stdout)
    assert status["health"] == "healthy" and status["release"] == deployed["bundle_id"]


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
