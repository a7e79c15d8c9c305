"""The agent's two-stage routing: stage 1 (compiled trees) answers unless its score falls in the
cascade band, then stage 2 (TFLite INT8) does; a stage 2 that cannot run leaves stage 1 to answer,
flagged degraded. The bundle joins two real builds of the same data."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge_agent.manifest import load_bundle, write_manifest
from edge_agent.pipeline import Pipeline
from edge_convert import bundle
from edgectl import cascade
from edgectl.errors import EdgectlError
from edgectl.windowing import make_windows

pytestmark = pytest.mark.slow
BAND = {"low": 0.05, "high": 0.6}


@pytest.fixture(scope="module")
def joined(xgb_build, conv1d_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("cascade") / "bundle"
    manifest, calibration = cascade.join(xgb_build, conv1d_build, out)
    return out, manifest, calibration


@pytest.fixture(scope="module")
def cascade_dir(joined, xgb_build, conv1d_build, tmp_path_factory):
    """The joined bundle with a band wide enough that routing is exercised whatever the calibration chose."""
    out = tmp_path_factory.mktemp("cascade-wide") / "bundle"
    spec = {k: xgb_build.manifest[k] for k in cascade.SPEC_KEYS}
    stages = joined[1]["stages"]
    for stage in stages:
        shutil.copytree(joined[0] / stage["name"], out / stage["name"])
    golden = json.loads((joined[0] / "golden.json").read_text())
    bundle.write_bundle(out, "cascade", spec, stages, golden, {"model": "cascade"}, cascade=BAND)
    return out


def test_the_band_is_calibrated_on_out_of_fold_training_windows_only(joined, xgb_build, conv1d_build, synthetic_splits):
    train, test = synthetic_splits
    _, manifest, calibration = joined
    assert calibration["windows"] == len(make_windows(train.rows, xgb_build.manifest, keep_raw=False))
    assert np.array_equal(xgb_build.y, conv1d_build.y)  # both stages scored the same training windows
    again = cascade.calibrate(
        xgb_build.y,
        (xgb_build.oof, manifest["stages"][0]["threshold"]),
        (conv1d_build.oof, manifest["stages"][1]["threshold"]),
    )
    assert (again["low"], again["high"]) == (manifest["cascade"]["low"], manifest["cascade"]["high"])
    assert manifest["cascade"]["calibration"]["method"] == "out-of-fold scores of the training units"
    best = max(calibration["f1_single"].values())
    assert calibration["f1"] >= best - cascade.TOLERANCE


def test_a_cascade_needs_a_tree_stage_1_and_two_models(xgb_build, conv1d_build, tmp_path):
    with pytest.raises(EdgectlError, match="stage 1 is a tree model"):
        cascade.join(conv1d_build, xgb_build, tmp_path / "bad")
    with pytest.raises(EdgectlError, match="joins two different models"):
        cascade.join(xgb_build, xgb_build, tmp_path / "bad")


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
    by_stage = records[-1]["latency_us_by_stage"]
    for stage in ("xgboost", "conv1d"):
        # Each window's written latency runs past its record's total (the encoding and the batch's write),
        # so every percentile of the stage's written latencies is at least the same percentile of its totals.
        mine = [r["latency_us"]["total"] for r in preds if r["stage"] == stage]
        for q in (50, 90, 99):
            assert by_stage[stage][f"p{q}"] >= round(float(np.percentile(mine, q)), 1) - 0.1
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


def without_tree_library(bundle_dir, out):
    """A copy whose tree stage has a library for another arch only, as on a board it was not built for."""
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stages"][0]["libs"] = {"riscv64": next(iter(manifest["stages"][0]["libs"].values()))}
    write_manifest(out, manifest)
    return out


def test_a_cascade_whose_tree_library_cannot_load_answers_from_stage_2_and_says_so(
    cascade_dir, tmp_path, synthetic_splits
):
    _, test = synthetic_splits
    records = serve(without_tree_library(cascade_dir, tmp_path / "b"), test.path)
    assert "no tree library for this board's arch" in records[0]["degraded"]["xgboost"]
    preds = [r for r in records if r["type"] == "prediction"]
    assert preds and all(r["stage"] == "conv1d" and r["degraded"] == "stage xgboost unavailable" for r in preds)


def test_a_stage_2_that_fails_at_invoke_leaves_stage_1_to_answer_flagged(cascade_dir, synthetic_splits):
    _, test = synthetic_splits
    pipeline = Pipeline(cascade_dir, load_bundle(cascade_dir))
    interpreter = pipeline.stages[1].interpreter
    given = interpreter.get_input_details()[0]
    # A real runtime fault: the input is resized under the loaded stage, so LiteRT refuses every later call.
    interpreter.resize_tensor_input(given["index"], [2, *given["shape"][1:]])
    preds = [rec for line in test.path.read_text().splitlines() if (rec := pipeline.handle(line.strip()))]
    flagged = [r for r in preds if "degraded" in r]
    assert flagged and all(r["stage"] == "xgboost" for r in preds)
    assert all(r["degraded"].startswith("stage conv1d failed: ") for r in flagged)
    assert all(BAND["low"] <= r["score"] < BAND["high"] for r in flagged)
    assert len(flagged) < len(preds)  # windows outside the band never needed stage 2
