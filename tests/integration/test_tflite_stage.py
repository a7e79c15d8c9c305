"""A Conv1D stage through TFLite full INT8, served by the real agent on LiteRT."""

import json

import numpy as np
import pytest

from edge_agent.runtimes.litert import TFLiteStage
from edgectl import convert, evaluate
from edgectl.windowing import make_windows

pytestmark = pytest.mark.slow


def test_int8_report_is_recorded_in_the_manifest(conv1d_build):
    stage = conv1d_build.manifest["stages"][0]
    report = stage["conversion"]
    assert stage["kind"] == "tflite" and stage["input"] == "window"
    assert report["precision"] == "int8" and report["windows"] == len(conv1d_build.y)
    assert "CONV_2D" in report["ops"] and report["float_ops"] == []
    assert report["decision_agreement"] >= 0.95
    assert 0 <= report["max_abs_diff"] <= convert.INT8_TOLERANCE
    assert stage["validation"]["f1"] > 0.5 and stage["validation"]["method"].startswith("out-of-fold")
    assert stage["tolerance"] == convert.INT8_TOLERANCE


def test_agent_scores_match_the_host_int8_model_on_every_window(conv1d_build, synthetic_splits, agent):
    _, test = synthetic_splits
    proc = agent("run", "--bundle", str(conv1d_build.bundle_dir), "--input", str(test.path))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    host = make_windows(test.rows, conv1d_build.manifest)
    model = TFLiteStage(conv1d_build.bundle_dir, conv1d_build.manifest["stages"][0])
    host_scores = np.array([model.predict(x) for x in host.raw])
    agent_scores = evaluate.scores_by_window(records)
    got = np.array([agent_scores[(s, t)] for s, t in zip(host.stream, host.t)])
    assert np.max(np.abs(got - host_scores)) <= conv1d_build.manifest["stages"][0]["tolerance"]
    assert records[0]["self_test"]["max_abs_diff"]["conv1d"] <= convert.INT8_TOLERANCE
    assert records[0]["self_test"]["mean_abs_diff"]["conv1d"] <= convert.INT8_MEAN_TOLERANCE
