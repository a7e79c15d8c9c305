"""Power cuts mid-deploy on the booted board (systemd as PID 1): 20 cuts spread over one deploy's
upload, verify, switch and restart. After each, the board boots again with `current` the old or the
new release, whole and verified, and the service healthy on it; the next deploy settles what the cut
left. The outcomes are printed (run with -s to see them)."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from test_hostile_bundles import renamed
from test_service_board import UNIT, active, on_board, wait_until

from edge_agent.manifest import write_manifest
from edgectl.targets import parse_target

pytestmark = [pytest.mark.slow, pytest.mark.ssh]

CUTS = 20
HOME = "/opt/edgectl"


def start_deploy(bundle, board):
    """`edgectl deploy` in the background; its progress lines are collected as they come."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgectl.cli", "deploy", str(bundle), board, "--offline"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    said = []
    threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True).start()
    return proc, said


def board_state(board):
    """What a cut left: the links, the pending marker, the releases there are."""
    shown = on_board(board, f"PYTHONPATH={HOME}/agent {HOME}/venv/bin/python -m edge_agent release show --home {HOME}")
    releases = on_board(board, f"ls -A {HOME}/releases").split()
    return {**json.loads(shown), "releases": releases}


def test_twenty_power_cuts_mid_deploy_leave_the_old_or_the_new_release_serving(booted_board, xgb_build, tmp_path):
    board = booted_board.alias
    first, _ = renamed(xgb_build.bundle_dir, tmp_path / "first", "cut-base")
    assert subprocess.run([sys.executable, "-m", "edgectl.cli", "deploy", str(first), board, "--offline", "-q"],
                          capture_output=True).returncode == 0  # fmt: skip
    timed, _ = with_padding(xgb_build.bundle_dir, tmp_path / "timed", "cut-timed")
    proc, said = start_deploy(timed, board)
    uploading = wait_for(said, "uploading")
    switched = wait_for(said, "current ->")
    assert proc.wait(timeout=300) == 0, "".join(said)
    # Half the cuts spread from the upload's start to the switch, half from the switch to the deploy's end
    # (restart, READY, health check), each anchored on the deploy's own progress line.
    spans = {"uploading": switched - uploading, "current ->": time.monotonic() - switched}
    outcomes = []
    for i in range(CUTS):
        bundle, new_id = with_padding(xgb_build.bundle_dir, tmp_path / f"cut{i}", f"cut-{i}")
        old = board_state(booted_board)["current"]
        anchor = "uploading" if i < CUTS // 2 else "current ->"
        at = spans[anchor] * (i % (CUTS // 2) + 0.5) / (CUTS // 2)
        proc, said = start_deploy(bundle, board)
        time.sleep(max(0.0, wait_for(said, anchor) + at - time.monotonic()))
        booted_board.cut()
        proc.kill()
        proc.wait()
        parse_target(board).close()  # its ssh ControlMaster talked to the board that lost power
        booted_board.boot()
        assert wait_until(lambda: active(booted_board), timeout=60), on_board(booted_board, f"journalctl -u {UNIT}")
        state = board_state(booted_board)
        current = state["current"]
        assert current in (old, new_id), (i, state)
        verify = f"PYTHONPATH={HOME}/agent {HOME}/venv/bin/python -m edge_agent verify --bundle {HOME}/current"
        assert booted_board.ssh(verify).returncode == 0, (i, state)
        status = on_board(booted_board, f"systemctl show -p StatusText --value {UNIT}")
        assert status == f"serving {current}", (i, status, state)
        progress = [line.strip() for line in said if not line.startswith("Error:")]
        when = f"{at:.2f} s after {anchor!r}"
        outcomes.append((i + 1, when, phase(state, new_id), "new" if current == new_id else "old", progress[-1]))
    print(f"\n{CUTS} power cuts; upload to switch took {spans['uploading']:.2f} s, switch to the end "
          f"{spans['current ->']:.2f} s in a whole deploy (cut, when, what the cut left, release serving after "
          "the boot, the deploy's last progress line):")  # fmt: skip
    for n, when, left, serving, last in outcomes:
        print(f"  {n:2d}  {when:<25}  {left:<42}  {serving:<3}  {last[:60]}")
    left_by = {left for _, _, left, _, _ in outcomes}
    assert len(left_by) >= 3, f"the cuts did not spread over the deploy: {left_by}"
    settle, _ = renamed(xgb_build.bundle_dir, tmp_path / "after", "cut-after")
    again = subprocess.run([sys.executable, "-m", "edgectl.cli", "deploy", str(settle), board, "--offline", "--json"],
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert board_state(booted_board)["pending"] is None


def with_padding(bundle_dir, out, name):
    """A renamed copy with 4 MB more to upload, so the upload takes a share of the deploy's time."""
    out, _ = renamed(bundle_dir, out, name)
    (out / "padding.bin").write_bytes(os.urandom(4 * 2**20))
    return out, write_manifest(out, json.loads((out / "manifest.json").read_text()))["bundle_id"]


def wait_for(said, words, timeout=120):
    """The moment the deploy's progress says `words` ("uploading": after its probe, runtime check and any
    recovery; "current ->": the switch is done, the restart begins)."""
    deadline = time.monotonic() + timeout
    while not any(words in line for line in said):
        assert time.monotonic() < deadline, f"the deploy never said {words!r}: {said}"
        time.sleep(0.005)
    return time.monotonic()


def phase(state, new_id):
    """Where in the deploy the cut fell, read from what it left on the board."""
    if state["pending"] is not None:
        return "after the switch, before the health check"
    if state["current"] == new_id:
        return "after the health check (deploy done)"
    if new_id in state["releases"]:
        return "after the upload was verified"
    if any(r.startswith(".incoming-") for r in state["releases"]):
        return "during the upload or its verification"
    return "before the upload"
