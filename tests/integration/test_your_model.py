"""A user's own data and tree model: a vibration CSV (not C-MAPSS) -> `edgectl init` -> `edgectl features` ->
a model trained OUTSIDE edgectl in plain xgboost / lightgbm / scikit-learn -> a model file ->
`edgectl convert` -> deploy to a local board -> the raw CSV streamed through the agent: every window's
answer equals the model's own prediction on the features file within 1e-6 per output. And the one-line
errors for bad specs, data and models."""

import os

import numpy as np
import pytest
from cli import edgectl
from your_data import (
    PARITY,
    converted,
    features_of,
    lightgbm_binary,
    one_line_reads_answer_as_the_reference,
    serve,
    spec_for,
    with_bearing_column,
)

pytestmark = pytest.mark.slow


def test_xgboost_multiclass_from_json(vibration, tmp_path):
    import xgboost

    work, data = vibration
    spec = spec_for(work, "multiclass")
    _, keys, y, X = features_of(spec, data, tmp_path / "features.csv")
    model = xgboost.XGBClassifier(n_estimators=40, max_depth=4, objective="multi:softprob").fit(X, y.astype(int))
    model.get_booster().save_model(tmp_path / "model.json")
    manifest = converted(tmp_path / "model.json", spec, data, tmp_path / "bundle")
    assert manifest["format_version"] == 5 and manifest["output"]["task"] == "multiclass"
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = model.predict_proba(X.astype(np.float32))
    assert [(p["stream"], repr(p["t"])) for p in preds] == [(s, repr(float(t))) for s, t in keys]
    assert len(preds) == len(X) > 50
    got = np.array([p["scores"] for p in preds])
    assert np.max(np.abs(got - native)) <= PARITY
    assert [p["prediction"] for p in preds] == native.argmax(axis=1).tolist()
    assert {p["class"] for p in preds} <= {"normal", "cavitation", "bearing"}
    paced = one_line_reads_answer_as_the_reference(tmp_path / "bundle", data)
    assert sum(r["type"] == "prediction" for r in paced) == len(preds)


HISTORY = (
    '["mean", "slope", "last", "mean:60", "slope:all", "mean:all", "ewm:10", "base:20", "peak:10", "mean-base:20"]'
)
CHANNEL = """
[[channel]]
name = "shake"
columns = ["vib_x", "vib_y", "vib_z"]
signs = [1, 1, -1]
features = ["last", "ewm:5", "slope:all", "mean:10-base:20"]
"""


def test_history_features_and_a_derived_channel_reach_the_board_exactly(vibration, tmp_path):
    import xgboost

    work, data = vibration
    spec = spec_for(work, "multiclass", features=HISTORY)
    spec.write_text(spec.read_text() + CHANNEL)
    header, _, y, X = features_of(spec, data, tmp_path / "features.csv")
    assert "vib_x_slope:all" in header and header[-4:] == ["shake_last", "shake_ewm:5", "shake_slope:all",
                                                            "shake_mean:10-base:20"]  # fmt: skip
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=3, objective="multi:softprob").fit(X, y.astype(int))
    model.get_booster().save_model(tmp_path / "model.json")
    manifest = converted(tmp_path / "model.json", spec, data, tmp_path / "bundle")
    assert manifest["features"]["channels"][0]["weights"] == [1 / 3, 1 / 3, -1 / 3, 0.0]
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = model.predict_proba(X.astype(np.float32))
    assert len(preds) == len(X) and np.max(np.abs(np.array([p["scores"] for p in preds]) - native)) <= PARITY


def test_lightgbm_binary_from_text(vibration, tmp_path):
    booster, spec, data, y, X = lightgbm_binary(vibration, tmp_path)
    converted(tmp_path / "model.txt", spec, data, tmp_path / "bundle")
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = booster.predict(X.astype(np.float32))
    assert len(preds) == len(X)
    assert np.max(np.abs(np.array([p["score"] for p in preds]) - native)) <= PARITY
    assert [p["prediction"] for p in preds] == (native >= 0.5).astype(int).tolist()


def test_sklearn_regressor_from_skops(vibration, tmp_path):
    import skops.io
    from sklearn.ensemble import RandomForestRegressor

    work, data = vibration
    spec = spec_for(work, "regression")
    _, _, y, X = features_of(spec, data, tmp_path / "features.csv")
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    skops.io.dump(model, tmp_path / "model.skops")
    manifest = converted(tmp_path / "model.skops", spec, data, tmp_path / "bundle")
    assert manifest["stages"][0]["validation"]["mae"] >= 0
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = model.predict(X.astype(np.float32))
    assert len(preds) == len(X)
    assert np.max(np.abs(np.array([p["value"] for p in preds]) - native)) <= PARITY * max(1, np.abs(native).max())
    paced = one_line_reads_answer_as_the_reference(tmp_path / "bundle", data)
    assert sum(r["type"] == "prediction" for r in paced) == len(preds)


def test_a_pickle_needs_allow_pickle_and_bad_inputs_are_one_line_errors(vibration, tmp_path):
    import joblib
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    work, data = vibration
    spec = spec_for(work, "multiclass")
    _, _, y, X = features_of(spec, data, tmp_path / "features.csv")
    model = ExtraTreesClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, y.astype(int))
    joblib.dump(model, tmp_path / "model.joblib")
    joblib.dump(make_pipeline(StandardScaler(), model), tmp_path / "pipe.joblib")
    few = ExtraTreesClassifier(n_estimators=5, max_depth=3).fit(X[:, :5], y.astype(int))
    joblib.dump(few, tmp_path / "few.joblib")
    out = tmp_path / "b"
    cases = [
        (["model.joblib"], "loading a pickle runs any code inside it"),
        (["pipe.joblib", "--allow-pickle"], "a Pipeline cannot be compiled to C"),
        (["few.joblib", "--allow-pickle"], "the model takes 5 inputs, the spec gives 28"),
        (["features.csv"], "unknown model format .csv"),
    ]
    for args, message in cases:
        got = edgectl("convert", str(tmp_path / args[0]), *args[1:], "--spec", str(spec), "--data", str(data),
                      "--out", str(out), "-q")  # fmt: skip
        assert got.returncode == 1 and message in got.stderr and "Traceback" not in got.stderr, got.stderr
        assert len(got.stderr.strip().splitlines()) == 1 and not out.exists()
    assert converted(tmp_path / "model.joblib", spec, data, out, "--allow-pickle", "-q")["bundle_id"]


def test_data_errors_name_the_file_and_line(vibration, tmp_path):
    work, data = vibration
    spec = spec_for(work, "multiclass")
    lines = data.read_text().splitlines()
    cases = {
        "ragged.csv": (lines[:5] + [lines[5] + ",extra"] + lines[6:], "ragged.csv:6: 9 fields, the header has 8"),
        "unknown-label.csv": (
            lines[:3] + [lines[3].replace("normal", "exploded")] + lines[4:],
            "unknown-label.csv:4: label 'exploded' is not one of the classes",
        ),  # fmt: skip
        "no-column.csv": ([lines[0].replace("vib_z", "vib_q")] + lines[1:], "no column 'vib_z'"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text("\n".join(text) + "\n")
        got = edgectl("features", str(spec), "--data", str(tmp_path / name), "--out", str(tmp_path / "f.csv"))
        assert got.returncode == 1 and message in got.stderr and "Traceback" not in got.stderr, got.stderr
        assert not (tmp_path / "f.csv").exists()


def test_spec_errors_name_the_file_and_key(tmp_path):
    cases = {
        '[input]\ncolumns = ["a"]\n[window]\nlength = 0\n': "[window] length = 0",
        '[input]\ncolumns = ["a"]\n[output]\ntask = "ranking"\n': "[output] task = 'ranking'; allowed",
        '[input]\ncolumns = ["a"]\n[output]\ntask = "multiclass"\n': "needs classes",
        '[input]\ncolumns = ["a"]\n[output]\ntask = "binary"\nalarm = "below"\n': "[output] alarm",
        '[input]\ncolumns = ["a"]\n[output]\ntask = "regression"\nthreshold = 3\nalarm = "under"\n': "allowed: above",
        '[input]\ncolumns = ["a"]\n[window]\nfeatures = ["median"]\n': "[window] features",
        "[input]\n": "[input] columns is missing",
        '[inputs]\ncolumns = ["a"]\n': "unknown table [inputs]",
        '[input]\ncolumns = ["a"]\n[window]\nfeatures = ["ewm:0"]\n': "unknown feature kind 'ewm:0'",
        '[input]\ncolumns = ["a"]\n[[channel]]\nname = "h"\ncolumns = ["b"]\nfeatures = ["last"]\n': "'b' is not in",
        '[input]\ncolumns = ["a"]\n[[channel]]\nname = "a"\ncolumns = ["a"]\nfeatures = ["last"]\n': "is taken",
        '[input]\ncolumns = ["a"]\n[[channel]]\nname = "h"\ncolumns = ["a"]\nsigns = [2]\nfeatures = ["last"]\n': "signs",  # noqa: E501
    }
    for text, message in cases.items():
        path = tmp_path / "edgectl.toml"
        path.write_text(text)
        got = edgectl("features", str(path), "--data", str(path), "--out", str(tmp_path / "f.csv"))
        assert got.returncode == 1 and f"{path}: " in got.stderr and message in got.stderr, (text, got.stderr)


def test_the_python_api_gives_the_same_features_as_the_command(vibration, tmp_path):
    from edgectl import dataset
    from edgectl import spec as specs

    work, data = vibration
    spec = spec_for(work, "multiclass")
    _, _, y, X = features_of(spec, data, tmp_path / "features.csv")
    ds = dataset.load(specs.load(spec), data)
    assert np.array_equal(ds.X.astype(np.float64), X) and np.array_equal(ds.y, y)


def test_lightgbm_categorical_splits_compile_linear_trees_are_refused_and_a_profile_cross_builds(vibration, tmp_path):
    import lightgbm
    import xgboost

    work, data = vibration
    data = with_bearing_column(data, tmp_path / "labelled.csv")
    spec = spec_for(work, "binary")
    _, _, y, X = features_of(spec, data, tmp_path / "features.csv")
    X_cat = X.copy()
    X_cat[:, 0] = y * 2 + np.arange(len(X)) % 2  # a category that matters, so the trees split on it
    params = {"objective": "binary", "verbose": -1, "min_data_per_group": 1, "cat_smooth": 1}
    booster = lightgbm.train(params, lightgbm.Dataset(X_cat, y, categorical_feature=[0]), num_boost_round=5)
    assert any(t["tree_structure"].get("decision_type") == "==" for t in booster.dump_model()["tree_info"])
    from edge_convert import trees

    lib_dir = tmp_path / "cat"
    trees.compile_library(lib_dir / "src", trees.generate_source(booster, lib_dir / "src"), lib_dir / "cat.so")
    assert trees.parity(booster, lib_dir / "cat.so", X_cat)["max_abs_diff"] <= PARITY  # TL2cgen compiles them
    linear = lightgbm.train({**params, "linear_tree": True}, lightgbm.Dataset(X, y), num_boost_round=3)
    linear.save_model(str(tmp_path / "linear.txt"))
    got = edgectl("convert", str(tmp_path / "linear.txt"), "--spec", str(spec), "--data", str(data),
                  "--out", str(tmp_path / "b"), "-q")  # fmt: skip
    assert got.returncode == 1 and "linear trees" in got.stderr and not (tmp_path / "b").exists()

    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y.astype(int))
    model.save_model(tmp_path / "model.ubj")
    manifest = converted(tmp_path / "model.ubj", spec, data, tmp_path / "bundle", "--profile", "rpi4", "-q")
    parity = manifest["stages"][0]["parity"]
    assert set(manifest["stages"][0]["libs"]) == {os.uname().machine, "aarch64"}
    assert parity["aarch64"]["status"] == "ok" and parity["aarch64"]["max_abs_diff"] <= PARITY
    assert parity["aarch64"]["rows"] == len(X)
