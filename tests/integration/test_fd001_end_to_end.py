"""The spine on real NASA C-MAPSS FD001 through the general path: the recipe writes a CSV and a spec,
`edgectl train`'s code trains and converts, the bundle is deployed to a local board and the test split
streamed through the agent.

Accuracy is computed from the agent's own records, and every window's score is
compared with the host's native model on the host's windows of the same data.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgectl import deploy, evaluate, runner
from edgectl.data import cmapss
from edgectl.recipes import cmapss as recipe
from edgectl.targets import parse_target
from edgectl.windowing import make_windows

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def fd001_run(fd001_dir, tmp_path_factory):
    train, test = cmapss.load(fd001_dir)
    work = tmp_path_factory.mktemp("fd001")
    result = recipe.build_bundle(train, "xgboost", work / "bundle")
    target = parse_target(f"local:{work / 'board'}")
    deploy.deploy(result.bundle_dir, target)
    records = runner.stream_file(target, test.path)
    return result, test, records


def test_tree_model_f1_from_the_agents_records_is_at_least_0_92(fd001_run):
    result, test, records = fd001_run
    lookup = cmapss.label_lookup(test, result.manifest["input"], horizon=30)
    acc = evaluate.accuracy(records, lookup)
    windows = acc["all_windows"]
    assert windows["n"] == 13096 - 100 * 29  # every test window: units have at least 31 cycles
    assert windows["positives"] == 332
    assert windows["f1"] >= 0.92, acc  # 0.927 with the history features (0.859 without them)
    assert acc["last_window"]["f1"] >= 0.96, acc


def test_the_bundle_came_through_the_spec_and_a_model_file(fd001_run):
    result, _, _ = fd001_run
    spec_file = result.bundle_dir.with_name("bundle-data") / "edgectl.toml"
    assert spec_file.is_file() and result.model_file.name == "bundle.model.json"
    stage = result.manifest["stages"][0]
    assert stage["validation"]["method"] == "out-of-fold, 5 folds by stream" and stage["validation"]["f1"] > 0.9
    assert result.manifest["output"] == {"task": "binary", "label": "fails_within_30", "threshold": 0.5}
    assert result.manifest["input"]["fields"] == cmapss.COLUMNS  # test lines without a header stream as they are


def test_every_window_score_equals_the_hosts_prediction(fd001_run):
    result, test, records = fd001_run
    host = make_windows(test.rows, result.manifest, keep_raw=False)
    host_scores = result.model.predict_proba(host.features)[:, 1]
    agent_scores = evaluate.scores_by_window(records)
    assert len(agent_scores) == len(host)
    got = np.array([agent_scores[(s, t)] for s, t in zip(host.stream, host.t)])
    assert np.max(np.abs(got - host_scores)) <= 1e-6


def test_the_agent_reported_no_errors_and_a_final_stats_record(fd001_run):
    _, _, records = fd001_run
    final = records[-1]
    assert final["type"] == "stats" and final["final"]
    assert final["errors"] == 0 and final["samples"] == 13096 and final["streams"] == 100


def test_every_record_is_the_same_line_by_line_and_with_the_python_windows(fd001_run):
    """The agent served the test split in blocks through the bundle's library (lines parsed in C, windows and
    trees in one call); line by line with the same kernel, and with the Python reference, the records are
    the same."""
    result, test, records = fd001_run
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(result.bundle_dir), "--input", str(test.path)]
    timing = {"latency_us", "rss_kb", "input", "latency_us_by_stage", "self_test", "windows", "seq", "blocks"}

    def answers(recs):
        return [{k: v for k, v in r.items() if k not in timing} for r in recs if r["type"] in ("prediction", "drift")]

    assert (records[0]["windows"], records[0]["blocks"]) == ("kernel", True)
    for flag, windows in (("--line-by-line", "kernel"), ("--no-kernel", "python")):
        out = subprocess.run([*argv, flag], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        other = [json.loads(line) for line in out.stdout.splitlines()]
        assert (other[0]["windows"], other[0]["blocks"]) == (windows, False)
        assert len(answers(records)) > 10_000 and answers(records) == answers(other), flag
