"""The agent's two-stage routing: stage 1 (compiled trees) answers unless its score falls in the
cascade band, then stage 2 (TFLite INT8) does; a stage 2 that cannot run leaves stage 1 to answer,
flagged degraded. The bundle joins two real builds of the same data."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge_convert import bundle
from edgectl.windowing import make_windows

pytestmark = pytest.mark.slow
BAND = {"low": 0.05, "high": 0.6}


@pytest.fixture(scope="module")
def cascade_dir(xgb_build, conv1d_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("cascade") / "bundle"
    out.mkdir()
    stages = []
    for result in (xgb_build, conv1d_build):
        stage = result.manifest["stages"][0]
        shutil.copytree(result.bundle_dir / stage["name"], out / stage["name"])
        stages.append(stage)
    trees_golden = json.loads((xgb_build.bundle_dir / "golden.json").read_text())
    conv_golden = json.loads((conv1d_build.bundle_dir / "golden.json").read_text())
    assert trees_golden["lines"] == conv_golden["lines"]  # same data, same spec: same golden windows
    for a, b in zip(trees_golden["windows"], conv_golden["windows"]):
        a["scores"].update(b["scores"])
    spec = {k: xgb_build.manifest[k] for k in ("input", "window", "preprocessing", "features", "label")}
    bundle.write_bundle(out, "cascade", spec, stages, trees_golden, {"model": "cascade"}, cascade=BAND)
    return out


def serve(bundle_dir, test_path, hide_tflite=False):
    hide = "sys.modules.update(ai_edge_litert=None, tflite_runtime=None, tensorflow=None); " if hide_tflite else ""
    code = f"import sys; {hide}from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"
    got = subprocess.run(
        [sys.executable, "-c", code, "run", "--bundle", str(bundle_dir), "--input", str(test_path)],
        capture_output=True,
        text=True,
    )
    assert got.returncode == 0, got.stderr
    return [json.loads(line) for line in got.stdout.splitlines()]


def test_windows_in_the_band_are_answered_by_stage_2_and_the_rest_by_stage_1(cascade_dir, xgb_build, synthetic_splits):
    _, test = synthetic_splits
    records = serve(cascade_dir, test.path)
    preds = [r for r in records if r["type"] == "prediction"]
    host = make_windows(test.rows, xgb_build.manifest, keep_raw=False)
    first = dict(zip(zip(host.stream, host.t), xgb_build.model.predict_proba(host.features)[:, 1]))
    for r in preds:
        in_band = BAND["low"] <= first[(r["stream"], r["t"])] < BAND["high"]
        assert r["stage"] == ("conv1d" if in_band else "xgboost")
        assert "degraded" not in r
    escalated = sum(r["stage"] == "conv1d" for r in preds)
    assert 0 < escalated < len(preds)
    assert records[-1]["windows_by_stage"] == {"xgboost": len(preds) - escalated, "conv1d": escalated}
    assert set(records[0]["self_test"]["max_abs_diff"]) == {"xgboost", "conv1d"}
    again = [r for r in serve(cascade_dir, test.path) if r["type"] == "prediction"]
    assert [(r["stage"], r["score"]) for r in again] == [(r["stage"], r["score"]) for r in preds]  # deterministic


def test_without_a_tflite_runtime_stage_1_answers_alone_and_says_so(cascade_dir, synthetic_splits):
    _, test = synthetic_splits
    records = serve(cascade_dir, test.path, hide_tflite=True)
    assert "no TFLite runtime" in records[0]["degraded"]["conv1d"]
    assert set(records[0]["self_test"]["max_abs_diff"]) == {"xgboost"}
    preds = [r for r in records if r["type"] == "prediction"]
    assert all(r["stage"] == "xgboost" for r in preds)
    flagged = [r for r in preds if "degraded" in r]
    assert flagged and all(r["degraded"] == "stage conv1d unavailable" for r in flagged)
    scores = np.array([r["score"] for r in flagged])
    assert np.all((scores >= BAND["low"]) & (scores < BAND["high"]))
