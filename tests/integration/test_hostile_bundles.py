"""Hostile bundles and careless deploys against real boards: ids that are paths, ids that lie about
their content, the board's own checks, the deploy lock, a host killed mid-deploy, rollbacks that fail."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli import edgectl
from test_signed_bundles import make_key

from edge_agent.manifest import content_hash, write_manifest
from edge_convert import signing
from edgectl import deploy
from edgectl.errors import EdgectlError
from edgectl.targets import parse_target

HOSTILE_IDS = ["../../victim", "../trusted_keys", ""]


def with_id(bundle_dir, out, bundle_id):
    """A copy whose manifest claims `bundle_id`, every checksum still right (what an attacker can write)."""
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["bundle_id"] = bundle_id
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def renamed(bundle_dir, out, name, **stage_changes):
    """A copy under another name (so another id), optionally with the first stage changed; rewritten properly."""
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["name"] = name
    manifest["stages"][0].update(stage_changes)
    return out, write_manifest(out, manifest)["bundle_id"]


def failing_selftest(bundle_dir, out):
    """A copy whose golden scores are off: it verifies, and fails its self-test on any board."""
    out, _ = renamed(bundle_dir, out, "selftest-fails")
    golden = json.loads((out / "golden.json").read_text())
    for window in golden["windows"]:
        window["scores"] = {k: v + 0.5 for k, v in window["scores"].items()}
    (out / "golden.json").write_text(json.dumps(golden))
    manifest = json.loads((out / "manifest.json").read_text())
    return out, write_manifest(out, manifest)["bundle_id"]


def snapshot(root):
    """Every file under root with its bytes: to show a failed attack changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture
def local_board(xgb_build, tmp_path):
    """A local board serving the session's XGBoost bundle, trusting a key, with a victim beside it."""
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "precious.txt").write_text("keep me")
    key, public, _ = make_key(tmp_path, "owner")
    signed = tmp_path / "signed"
    shutil.copytree(xgb_build.bundle_dir, signed)
    signing.sign_bundle(signed, key)
    target = parse_target(f"local:{tmp_path / 'board'}")
    deploy.deploy(signed, target, trust_key=public)
    assert os.listdir(target.trusted_keys_dir)
    return target


@pytest.mark.parametrize("bundle_id", HOSTILE_IDS)
def test_an_id_that_is_a_path_is_refused_and_nothing_outside_or_inside_home_is_touched(
    xgb_build, local_board, tmp_path, bundle_id
):
    before = snapshot(tmp_path / "victim"), snapshot(local_board.root)
    hostile = with_id(xgb_build.bundle_dir, tmp_path / "hostile", bundle_id)
    proc = edgectl("deploy", str(hostile), str(local_board))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"bundle id {bundle_id!r} is not a valid id" in proc.stderr
    assert (snapshot(tmp_path / "victim"), snapshot(local_board.root)) == before


@pytest.mark.parametrize("bundle_id", HOSTILE_IDS)
def test_the_board_checks_ids_itself_before_any_file_operation(xgb_build, local_board, tmp_path, agent, bundle_id):
    """A host that skipped its checks (an old edgectl, a hand-made upload): the board refuses on its own."""
    before = snapshot(tmp_path / "victim"), snapshot(local_board.root)
    keys = ["--trusted-keys", local_board.trusted_keys_dir]
    home = ["--home", local_board.home]
    switched = agent("release", "switch", *home, "--to", bundle_id, *keys)
    assert switched.returncode == 2 and b"is not a valid id" in switched.stderr
    upload = Path(local_board.home) / "releases" / ".incoming-0123456789abcdef"
    with_id(xgb_build.bundle_dir, upload, bundle_id)
    committed = agent("release", "commit", *home, "--incoming", upload.name, *keys)
    assert committed.returncode == 2 and b"Traceback" not in committed.stderr
    assert not upload.exists()  # the refused upload is removed, nothing else
    assert (snapshot(tmp_path / "victim"), snapshot(local_board.root)) == before
    escape = agent("release", "commit", *home, "--incoming", "../../victim", *keys)
    assert escape.returncode == 2 and (tmp_path / "victim" / "precious.txt").exists()


def test_an_unsigned_bundle_is_refused_by_the_board_before_it_replaces_a_release(
    xgb_build, local_board, tmp_path, agent
):
    """The signature is checked before anything in releases/ is deleted: same id as the served release."""
    served = deploy.current_release(local_board)
    before = snapshot(local_board.root)
    upload = Path(local_board.home) / "releases" / ".incoming-00000000000000aa"
    shutil.copytree(xgb_build.bundle_dir, upload)  # unsigned, the id of the served release
    got = agent("release", "commit", "--home", local_board.home, "--incoming", upload.name,
                "--trusted-keys", local_board.trusted_keys_dir)  # fmt: skip
    assert got.returncode == 2 and b"is not signed" in got.stderr
    assert snapshot(local_board.root) == before and deploy.current_release(local_board) == served


def test_an_id_that_does_not_match_the_content_is_refused(xgb_build, tmp_path):
    other, other_id = renamed(xgb_build.bundle_dir, tmp_path / "other", "xgboost", threshold=0.9)
    assert other_id != xgb_build.manifest["bundle_id"]  # another content, another id
    lying = with_id(other, tmp_path / "lying", xgb_build.manifest["bundle_id"])
    target = parse_target(f"local:{tmp_path / 'board'}")
    deploy.deploy(xgb_build.bundle_dir, target)
    proc = edgectl("deploy", str(lying), str(target))
    assert proc.returncode == 1 and "does not match the bundle's content" in proc.stderr
    manifest = json.loads((lying / "manifest.json").read_text())
    assert manifest["bundle_id"] != f"xgboost-{content_hash(manifest)[:12]}"


def test_the_same_content_signed_is_uploaded_again_not_reused(xgb_build, tmp_path):
    target = parse_target(f"local:{tmp_path / 'board'}")
    deploy.deploy(xgb_build.bundle_dir, target)
    key, public, key_id = make_key(tmp_path, "k")
    signed = tmp_path / "signed"
    shutil.copytree(xgb_build.bundle_dir, signed)
    signing.sign_bundle(signed, key)
    result = deploy.deploy(signed, target, trust_key=public)
    assert not result["reused"] and result["bundle_id"] == xgb_build.manifest["bundle_id"]
    assert (Path(target.home) / "current" / "manifest.sig").is_file()
    assert edgectl("status", str(target)).returncode == 0


def test_two_concurrent_deploys_end_with_the_release_of_the_one_that_succeeded(xgb_build, tmp_path):
    second, second_id = renamed(xgb_build.bundle_dir, tmp_path / "second", "second")
    bundles = {str(xgb_build.bundle_dir): xgb_build.manifest["bundle_id"], str(second): second_id}
    target = f"local:{tmp_path / 'board'}"
    refused = 0
    for attempt in range(12):
        order = list(bundles) if attempt % 2 else list(reversed(bundles))
        argv = [[sys.executable, "-m", "edgectl.cli", "deploy", b, target, "-q"] for b in order]
        procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in argv]
        ended = []
        for bundle, proc in zip(order, procs):
            _, err = proc.communicate(timeout=120)
            ended.append((proc.returncode, bundle, err))
        ok = [bundle for rc, bundle, _ in ended if rc == 0]
        for rc, _, err in ended:
            assert rc == 0 or ("another deploy holds the board's lock" in err and "Traceback" not in err), err
        refused += len(ended) - len(ok)
        current = deploy.current_release(parse_target(target))
        if len(ok) == 1:
            assert current == bundles[ok[0]]
        else:  # both ran, one after the other: the last switch wins, and each said so
            assert current in {bundles[b] for b in ok}
    assert refused > 0  # the lock was contended at least once


def test_a_host_killed_after_the_switch_leaves_a_marker_the_next_deploy_undoes(xgb_build, tmp_path):
    target = parse_target(f"local:{tmp_path / 'board'}")
    deploy.deploy(xgb_build.bundle_dir, target)
    good = xgb_build.manifest["bundle_id"]
    bad, bad_id = failing_selftest(xgb_build.bundle_dir, tmp_path / "bad")
    marker = Path(target.home) / ".pending"
    proc = subprocess.Popen([sys.executable, "-m", "edgectl.cli", "deploy", str(bad), str(target), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def kill_at_the_switch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_at_the_switch)
    killer.start()
    proc.communicate(timeout=120)
    killer.join()
    assert proc.returncode == -signal.SIGKILL
    assert marker.exists() and deploy.current_release(target) in (good, bad_id)
    again = deploy.deploy(xgb_build.bundle_dir, target)  # the next deploy finishes the dead one's switch
    assert again["recovered"]["release"] == bad_id and "rolled back" in again["recovered"]["action"]
    assert deploy.current_release(target) == good and not marker.exists()
    assert again["health"]["healthy"]


def test_a_rollback_to_a_release_that_fails_its_self_test_is_undone_and_fails(xgb_build, tmp_path, agent):
    target = parse_target(f"local:{tmp_path / 'board'}")
    bad, bad_id = failing_selftest(xgb_build.bundle_dir, tmp_path / "bad")
    with pytest.raises(EdgectlError, match="no previous release to roll back to"):
        deploy.deploy(bad, target)  # leaves the release on the board, never current
    deploy.deploy(xgb_build.bundle_dir, target)
    good = xgb_build.manifest["bundle_id"]
    os.symlink(f"releases/{bad_id}", Path(target.home) / "previous")
    proc = edgectl("rollback", str(target))
    assert proc.returncode == 1 and "did not come up healthy" in proc.stderr and f"rolled back to {good}" in proc.stderr
    assert deploy.current_release(target) == good
    assert deploy.release_link(target, "previous") == bad_id


def test_a_damaged_switch_marker_does_not_block_the_next_deploy(xgb_build, tmp_path, agent):
    target = parse_target(f"local:{tmp_path / 'board'}")
    deploy.deploy(xgb_build.bundle_dir, target)
    (Path(target.home) / ".pending").write_text('{"to": "xgb')  # a power cut while it was written
    shown = edgectl("status", str(target), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["pending_switch"] == {"damaged": True}
    again = deploy.deploy(xgb_build.bundle_dir, target)
    assert again["recovered"]["action"] == "kept: healthy" and not (Path(target.home) / ".pending").exists()
    served = deploy.current_release(target)
    got = agent("release", "commit", "--home", target.home, "--incoming", served)
    assert got.returncode == 2 and b"is not an upload name" in got.stderr
    assert deploy.current_release(target) == served and (Path(target.home) / "releases" / served).is_dir()
