"""A fleet of six boards, each a real OpenSSH server on loopback with its own home, driven from an
Ansible inventory: a staged rollout that stops after the batch holding an unreachable board, a
re-run that goes on where it stopped and skips the healthy ones, status, rollback and history."""

import json
import os
import shutil
import subprocess

import pytest
from boards import sshd
from cli import edgectl
from conftest import add_board, missing
from test_hostile_bundles import renamed

from edgectl.targets import parse_target

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

BOARDS = [f"fb{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def fleet(ssh_config, xgb_build, tmp_path_factory):
    """Six boards with a venv each (made once by a real deploy, copied: the fleet tests the rollout, not pip)."""
    if not os.path.exists(sshd.SSHD) or os.geteuid() != 0:
        missing("openssh-server, run as root (apt-get install openssh-server)")
    root = tmp_path_factory.mktemp("fleet")
    boards = []
    try:
        for alias in BOARDS:
            board = sshd.start(alias)
            add_board(ssh_config, board)
            boards.append(board)
        seed = root / "seed"
        got = edgectl("deploy", str(xgb_build.bundle_dir), f"ssh://{BOARDS[0]}{seed}", "--offline", "-q")
        assert got.returncode == 0, got.stderr
        for alias in BOARDS:
            (root / alias).mkdir()
            subprocess.run(["cp", "-a", str(seed / "venv"), str(root / alias / "venv")], check=True)
        shutil.rmtree(seed)
        parse_target(f"ssh://{BOARDS[0]}{seed}").close()
        yield {"root": root, "boards": {b.alias: b for b in boards}, "runs": root / "runs"}
    finally:
        for board in boards:
            parse_target(board.alias).close()
            board.stop()


def inventory(fleet, broken=None):
    """An INI inventory: fb1 the canary, the rest in `lab`; `broken` gets a port nothing listens on."""
    lines = []
    for group, names in (("canary", BOARDS[:1]), ("lab", BOARDS[1:])):
        lines.append(f"[{group}]")
        for name in names:
            board = fleet["boards"][name]
            port = 1 if name == broken else board.port
            key, home = board.dir / "client", fleet["root"] / name
            lines.append(f"{name} ansible_host={name} ansible_port={port} ansible_user=root "
                         f"ansible_ssh_private_key_file={key} edgectl_home={home}")  # fmt: skip
    lines += ["[fleet:children]", "canary", "lab"]
    path = fleet["root"] / ("broken.ini" if broken else "fleet.ini")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def current(fleet, name):
    link = fleet["root"] / name / "current"
    return os.readlink(link).split("/")[-1] if link.is_symlink() else None


def run(fleet, *args):
    got = edgectl("fleet", *args, env={"EDGECTL_FLEET_RUNS": str(fleet["runs"])})
    return got, (json.loads(got.stdout) if "--json" in args and got.stdout.strip() else None)


def test_a_staged_rollout_stops_after_the_failing_batch_and_a_rerun_completes_skipping_the_healthy(fleet, xgb_build):
    bundle_id = xgb_build.manifest["bundle_id"]
    broken = inventory(fleet, broken="fb3")
    stages = ["--serial", "1,50%,100%", "--max-fail-percentage", "10", "--offline", "--json"]
    got, first = run(fleet, "deploy", str(xgb_build.bundle_dir), "-i", broken, *stages)
    assert got.returncode == 1, got.stderr
    assert first["aborted"] and first["batches"] == [1, 3, 2]
    results = {row["board"]: row["result"] for row in first["boards"]}
    assert results == {"fb1": "deployed", "fb2": "deployed", "fb3": "failed", "fb4": "deployed",
                       "fb5": "not started", "fb6": "not started"}  # fmt: skip
    row3 = next(row for row in first["boards"] if row["board"] == "fb3")
    assert "cannot reach the board over ssh" in row3["reason"] and row3["groups"] == ["fleet", "lab"]
    for row in first["boards"]:  # the boards are as the summary says
        assert current(fleet, row["board"]) == row["after"] == (bundle_id if row["result"] == "deployed" else None)
    assert "fb3: FAILED: fb3: cannot reach the board over ssh" in got.stderr
    assert "stopping: 1 of 4 boards failed, more than --max-fail-percentage 10" in got.stderr

    fixed = inventory(fleet)
    got, second = run(fleet, "deploy", str(xgb_build.bundle_dir), "-i", fixed, *stages)
    assert got.returncode == 0, got.stderr
    results = {row["board"]: row["result"] for row in second["boards"]}
    assert results == {"fb1": "skipped", "fb2": "skipped", "fb3": "deployed", "fb4": "skipped",
                       "fb5": "deployed", "fb6": "deployed"}  # fmt: skip
    assert all(current(fleet, name) == bundle_id for name in BOARDS) and not second["aborted"]

    text, _ = run(fleet, "deploy", str(xgb_build.bundle_dir), "-i", fixed, "--limit", "lab:!fb6", "--offline")
    assert text.returncode == 0 and "4 skipped" in text.stdout and "fb6" not in text.stdout, text.stdout


def test_status_rollback_and_history_over_the_fleet(fleet, xgb_build, tmp_path):
    fixed = inventory(fleet)
    first_id = xgb_build.manifest["bundle_id"]
    second, second_id = renamed(xgb_build.bundle_dir, tmp_path / "second", "xgboost-second")
    got, _ = run(fleet, "deploy", str(second), "-i", fixed, "--serial", "2", "--forks", "2", "--offline")
    assert got.returncode == 0, got.stderr
    got, rolled = run(fleet, "rollback", "-i", fixed, "--limit", "canary", "--json")
    assert got.returncode == 0 and rolled == [
        {"board": "fb1", "groups": ["canary", "fleet"], "result": "rolled back", "release": first_id,
         "reason": f"was {second_id}"}
    ]  # fmt: skip
    got, rows = run(fleet, "status", "-i", fixed, "--inventory-plugin", "--json")  # through ansible-inventory
    assert got.returncode == 0, got.stderr
    assert {row["board"]: row["release"] for row in rows} == {"fb1": first_id, **{b: second_id for b in BOARDS[1:]}}
    assert all(row["health"] == "healthy" for row in rows)
    table, _ = run(fleet, "status", "-i", inventory(fleet, broken="fb2"))
    assert table.returncode == 3 and "unreachable" in table.stdout  # a script can gate on the whole fleet
    got, runs = run(fleet, "history", "--json", "-n", "10")
    assert got.returncode == 0 and [r["bundle_id"] for r in runs][-1] == second_id
    assert all(r["format"] == "edgectl-fleet-run" and r["version"] == 1 for r in runs)
    text, _ = run(fleet, "history")
    assert "fb6" in text.stdout and "deployed" in text.stdout
