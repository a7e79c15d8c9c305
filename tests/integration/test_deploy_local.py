"""Deploy to a local board directory: releases, the atomic current link, reuse, refusal."""

import json
import os
import shutil

import pytest

from edge_agent.manifest import write_manifest
from edgectl import deploy, runner, status
from edgectl.errors import EdgectlError
from edgectl.targets import parse_target


def second_bundle(xgb_build, tmp_path):
    """The same model under another id: a changed threshold makes a different manifest."""
    copy = tmp_path / "second"
    shutil.copytree(xgb_build.bundle_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["stages"][0]["threshold"] = 0.9
    manifest["name"] = "xgboost-second"  # the id is derived from the name and the content
    write_manifest(copy, manifest)
    return copy


def test_deploy_switches_current_and_keeps_the_previous_release(xgb_build, tmp_path):
    board = tmp_path / "board"
    target = parse_target(f"local:{board}")
    first = deploy.deploy(xgb_build.bundle_dir, target)
    bundle_id = xgb_build.manifest["bundle_id"]
    assert first["previous"] is None and not first["reused"]
    assert os.readlink(board / "current") == f"releases/{bundle_id}"
    again = deploy.deploy(xgb_build.bundle_dir, target)
    assert again["reused"]
    second = deploy.deploy(second_bundle(xgb_build, tmp_path), target)
    assert second["previous"] == bundle_id and second["bundle_id"].startswith("xgboost-second-")
    assert os.readlink(board / "current") == f"releases/{second['bundle_id']}"
    assert os.readlink(board / "previous") == f"releases/{bundle_id}"
    assert sorted(p.name for p in (board / "releases").iterdir()) == sorted([bundle_id, second["bundle_id"]])
    (tmp_path / "again").mkdir()
    redeployed = deploy.deploy(second_bundle(xgb_build, tmp_path / "again"), target)
    assert redeployed["reused"] and redeployed["previous"] == bundle_id  # what a rollback goes to, not itself


def test_a_bundle_failing_its_self_test_on_the_board_is_rolled_back(xgb_build, tmp_path):
    board = tmp_path / "board"
    target = parse_target(f"local:{board}")
    deploy.deploy(xgb_build.bundle_dir, target)
    bad = second_bundle(xgb_build, tmp_path)
    golden = json.loads((bad / "golden.json").read_text())
    golden["windows"][0]["scores"]["xgboost"] += 0.5
    (bad / "golden.json").write_text(json.dumps(golden))
    write_manifest(bad, json.loads((bad / "manifest.json").read_text()))
    first = xgb_build.manifest["bundle_id"]
    with pytest.raises(EdgectlError, match=f"did not come up healthy: rolled back to {first}(.|\n)*self-test failed"):
        deploy.deploy(bad, target)
    assert os.readlink(board / "current") == f"releases/{first}"
    assert not (board / "previous").exists()  # as it was before the failed deploy

    with open(board / "releases" / first / "golden.json", "a") as f:
        f.write(" ")  # the release rolled back to is damaged too: deploy must say so, not only "rolled back"
    with pytest.raises(EdgectlError, match=f"rolled back to {first}, which is NOT healthy either(.|\n)*checksum"):
        deploy.deploy(bad, target)


def test_a_damaged_release_on_the_board_is_uploaded_again(xgb_build, tmp_path):
    board = tmp_path / "board"
    target = parse_target(f"local:{board}")
    deploy.deploy(xgb_build.bundle_dir, target)
    release = board / "releases" / xgb_build.manifest["bundle_id"]
    (release / "golden.json").write_text("{}")  # e.g. an upload cut short
    again = deploy.deploy(xgb_build.bundle_dir, target)
    assert not again["reused"]
    assert (release / "golden.json").read_bytes() == (xgb_build.bundle_dir / "golden.json").read_bytes()


def test_run_streams_a_file_through_the_deployed_agent(xgb_build, synthetic_splits, tmp_path):
    _, test = synthetic_splits
    target = parse_target(f"local:{tmp_path / 'board'}")
    deploy.deploy(xgb_build.bundle_dir, target)
    out = tmp_path / "records.jsonl"
    with open(out, "w") as sink:
        records = runner.stream_file(target, test.path, out=sink)
    assert records[0]["bundle_id"] == xgb_build.manifest["bundle_id"]
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    final = records[-1]
    shown = status.status(target)  # the board's own state path: no service here, so the last run's stats
    assert shown["last_stats"]["bundle_id"] == xgb_build.manifest["bundle_id"]
    assert shown["last_stats"]["windows"] == final["windows"] > 0 and shown["last_stats"]["samples"] == final["samples"]


def test_unknown_targets_and_empty_boards_get_clear_errors(tmp_path, synthetic_splits):
    with pytest.raises(EdgectlError, match="unknown target 'ftp://x'"):
        parse_target("ftp://x")
    with pytest.raises(EdgectlError, match="no release deployed; run `edgectl deploy BUNDLE local:"):
        runner.stream_file(parse_target(f"local:{tmp_path / 'empty'}"), synthetic_splits[1].path)
