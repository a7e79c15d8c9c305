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


def test_fd002_like_fleet_is_normalized_per_condition_with_history_features_and_two_cascades(tmp_path):
    data = synthetic.write_subset(tmp_path / "data", "FD002", n_train=30, n_test=12, n_conditions=6, seed=5)
    result = cmapss_recipe.run(tmp_path / "work", data, "FD002", models=("xgboost-tiny", "xgboost", "attention"),
                               cascades=(("xgboost-tiny", "xgboost"), ("xgboost-tiny", "attention")))  # fmt: skip
    rows = {row["model"]: row for row in result["models"]}
    assert set(rows) == {"xgboost-tiny", "xgboost", "attention", "cascade-xgboost", "cascade-attention"}
    manifest = load_bundle(tmp_path / "work" / "bundles" / "xgboost")
    conditions = manifest["preprocessing"]["conditions"]
    assert len(conditions["centers"]) == 6 and conditions["fields"] == ["setting1", "setting2", "setting3"]
    assert "slope:all" in manifest["features"]["kinds"] and manifest["features"]["channels"][0]["name"] == "health"
    for row in rows.values():
        assert row["errors"] == 0 and row["windows"] > 500
    assert rows["xgboost"]["f1"] > 0.8  # per-condition scaling makes the wear visible through the six baselines
    for name, stage2 in (("cascade-xgboost", "xgboost"), ("cascade-attention", "attention")):
        calibration = load_bundle(tmp_path / "work" / "bundles" / name)["cascade"]["calibration"]
        # tolerance 0: out of fold the cascade decides every window as the better stage does
        assert calibration["unlike_better_stage"] == 0 and calibration["f1"] == max(calibration["f1_single"].values())
        served = rows[name]
        assert abs((1 - served["fast_path"]) - calibration["escalation"]) <= 0.1, (served, calibration)
        if calibration["escalation"] == 0:  # stage 1 was as good out of fold: the cascade is stage 1
            assert served["f1"] == rows["xgboost-tiny"]["f1"]
        else:
            assert served["f1"] >= min(rows["xgboost-tiny"]["f1"], rows[stage2]["f1"]) - 0.02, rows
    stages = load_bundle(tmp_path / "work" / "bundles" / "cascade-attention")["stages"]
    assert [s["name"] for s in stages] == ["xgboost-tiny", "attention"]
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


def test_a_regression_on_the_cycles_left_alarms_at_a_threshold_chosen_out_of_fold(tmp_path):
    data = synthetic.write_subset(tmp_path / "data", "FD001", n_train=30, n_test=12, seed=2)  # 47 failing windows
    result = cmapss_recipe.run(tmp_path / "work", data, models=("lightgbm", "lightgbm-rul"), cascades=())
    rows = {row["model"]: row for row in result["models"]}
    manifest = load_bundle(tmp_path / "work" / "bundles" / "lightgbm-rul")
    assert manifest["output"] == {"task": "regression", "label": "rul_capped_45", "threshold": 30.0, "alarm": "below"}
    stage = manifest["stages"][0]
    alarm = stage["validation"]["alarm"]
    assert alarm["level"] == 30.0 and alarm["direction"] == "below" and alarm["threshold"] == stage["threshold"]
    assert 20 < stage["threshold"] < 40 and alarm["f1"] > 0.8  # chosen out of fold, near the level
    records = [json.loads(line) for line in (tmp_path / "work" / "records-lightgbm-rul.jsonl").open()]
    preds = [r for r in records if r["type"] == "prediction"]
    assert preds and all(r["alarm"] == int(r["value"] <= stage["threshold"]) for r in preds)
    assert rows["lightgbm-rul"]["f1"] >= 0.9, rows  # 0.979 (the classifier 0.959), scored as the same alarm


def test_seeds_give_f1_as_mean_and_sd_and_every_seed_its_own_model(tmp_path):
    data = synthetic.write_subset(tmp_path / "data", "FD001", n_train=20, n_test=8, seed=2)
    result = cmapss_recipe.run(tmp_path / "work", data, models=("xgboost",), cascades=(), seeds=2)
    (row,) = result["models"]
    assert result["seeds"] == 2 and len(row["f1_seeds"]) == 2
    assert row["f1"] == pytest.approx(np.mean(row["f1_seeds"])) and row["f1_sd"] == pytest.approx(
        np.std(row["f1_seeds"], ddof=1)
    )
    seeds = [load_bundle(tmp_path / "work" / "bundles" / f"seed{s}" / "xgboost") for s in (0, 1)]
    assert [m["built_with"]["training"]["seed"] for m in seeds] == [0, 1]
    assert seeds[0]["bundle_id"] != seeds[1]["bundle_id"]  # xgboost subsamples rows and columns by seed
