"""The recipes end to end on synthetic data: FD002-like C-MAPSS (six operating conditions) with the attention
encoder and a cascade, and SECOM-shaped data scored by stratified CV, all from the agent's own records."""

import json

import numpy as np
import pytest

from edge_agent.manifest import load_bundle
from edgectl.data import secom, synthetic
from edgectl.recipes import cmapss as cmapss_recipe
from edgectl.recipes import secom as secom_recipe

pytestmark = pytest.mark.slow


def test_fd002_like_fleet_is_normalized_per_condition_and_the_cascade_keeps_most_windows_on_stage_1(tmp_path):
    data = synthetic.write_subset(tmp_path / "data", "FD002", n_train=30, n_test=12, n_conditions=6, seed=5)
    result = cmapss_recipe.run(
        tmp_path / "work", data, "FD002", models=("xgboost", "attention"), cascades=(("xgboost", "attention"),)
    )
    rows = {row["model"]: row for row in result["models"]}
    assert set(rows) == {"xgboost", "attention", "cascade-attention"}
    manifest = load_bundle(tmp_path / "work" / "bundles" / "xgboost")
    conditions = manifest["preprocessing"]["conditions"]
    assert len(conditions["centers"]) == 6 and conditions["fields"] == ["setting1", "setting2", "setting3"]
    for row in rows.values():
        assert row["errors"] == 0 and row["windows"] > 500
    assert rows["xgboost"]["f1"] > 0.8  # per-condition scaling makes the wear visible through the six baselines
    cascade = rows["cascade-attention"]
    assert cascade["fast_path"] >= 0.6
    assert cascade["f1"] >= max(rows["xgboost"]["f1"], rows["attention"]["f1"]) - 0.03
    stages = load_bundle(tmp_path / "work" / "bundles" / "cascade-attention")["stages"]
    assert [s["name"] for s in stages] == ["xgboost", "attention"]
    assert stages[1]["conversion"]["decision_agreement"] > 0.95


def test_secom_is_scored_by_stratified_folds_with_imputation_from_the_manifest(tmp_path):
    data = secom.write_synthetic(tmp_path / "data", n=600, seed=4)
    result = secom_recipe.run(tmp_path / "work", data)
    folds = result["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3, 4, 5]
    assert sum(f["rows"] for f in folds) == 600
    fails = [f["fails"] for f in folds]
    assert max(fails) - min(fails) <= 1  # stratified: every fold holds its share of the rare fails
    for fold in folds:
        assert fold["windows"] == fold["rows"] and fold["errors"] == 0  # every wafer answered, NaN imputed
    summary = result["summary"]
    assert summary["f1_mean"] == pytest.approx(np.mean([f["f1"] for f in folds]))
    assert summary["f1_sd"] > 0
    manifest = load_bundle(tmp_path / "work" / "bundles" / "xgboost-fold1")
    assert manifest["window"]["length"] == 1 and manifest["features"]["kinds"] == ["last"]
    assert len(manifest["preprocessing"]["impute"]) == len(manifest["input"]["features"]) < len(secom.FEATURES)
    test_lines = (tmp_path / "work" / "fold1" / "test.csv").read_text()
    assert "nan" in test_lines  # missing readings reach the board as missing
    records = [json.loads(line) for line in (tmp_path / "work" / "fold1" / "records.jsonl").open()]
    assert records[0]["type"] == "start"
