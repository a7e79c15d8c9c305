"""The spine on real NASA C-MAPSS FD001: build, deploy to a local board, stream the test split.

Accuracy is computed from the agent's own records, and every window's score is
compared with the host's native model on the host's windows of the same data.
"""

import numpy as np
import pytest

from edgectl import build, deploy, evaluate, runner
from edgectl.data import cmapss
from edgectl.targets import parse_target
from edgectl.windowing import make_windows

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


@pytest.fixture(scope="module")
def fd001_run(fd001_dir, tmp_path_factory):
    train, test = cmapss.load(fd001_dir)
    work = tmp_path_factory.mktemp("fd001")
    result = build.build(train, "xgboost", work / "bundle")
    target = parse_target(f"local:{work / 'board'}")
    deploy.deploy(result.bundle_dir, target)
    records = runner.stream_file(target, test.path)
    return result, test, records


def test_tree_model_f1_from_the_agents_records_is_at_least_0_83(fd001_run):
    result, test, records = fd001_run
    lookup = evaluate.label_lookup(test, result.manifest["input"], horizon=30)
    acc = evaluate.accuracy(records, lookup)
    windows = acc["all_windows"]
    assert windows["n"] == 13096 - 100 * 29  # every test window: units have at least 31 cycles
    assert windows["positives"] == 332
    assert windows["f1"] >= 0.83, acc


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
