"""A user's own data and model: a vibration CSV (not C-MAPSS) -> `edgectl init` -> `edgectl features` ->
a model trained OUTSIDE edgectl in plain xgboost / lightgbm / scikit-learn -> a model file ->
`edgectl convert` -> deploy to a local board -> the raw CSV streamed through the agent: every window's
answer equals the model's own prediction on the features file within 1e-6 per output."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from cli import edgectl

from edgectl.targets import parse_target

pytestmark = pytest.mark.slow

PARITY = 1e-6


@pytest.fixture(scope="module")
def vibration(tmp_path_factory):
    """A vibration CSV and the spec `edgectl init` writes for it, with a shorter window."""
    work = tmp_path_factory.mktemp("vibration")
    assert edgectl("synth", str(work), "--dataset", "vibration", "--machines", "4", "--samples", "500").returncode == 0
    data = work / "vibration.csv"
    made = edgectl("init", str(data), "--out", str(work / "edgectl.toml"))
    assert made.returncode == 0, made.stderr
    return work, data


def spec_for(work, task, features='["mean", "std", "min", "max", "rms", "slope", "last"]'):
    """The init spec, edited as a user would: the task, its label, and a 30-sample window."""
    text = (work / "edgectl.toml").read_text()
    head = text.split("[window]")[0].replace('"wear_pct"', "").replace(", ]", "]").replace(", ,", ",")
    label = {"multiclass": 'label = "state"\nclasses = ["normal", "cavitation", "bearing"]',
             "binary": 'label = "bearing"\nthreshold = 0.5', "regression": 'label = "wear_pct"'}[task]  # fmt: skip
    body = f"""[window]
length = 30
stride = 5
features = {features}

[preprocessing]
scale = "standard"

[output]
task = "{task}"
{label}
"""
    path = work / f"{task}.toml"
    path.write_text(head + body)
    return path


def with_bearing_column(data, out):
    """The data with a 0/1 column `bearing` (state == bearing): a binary label."""
    rows = list(csv.reader(data.read_text().splitlines()))
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(rows[0] + ["bearing"])
        for row in rows[1:]:
            writer.writerow(row + [str(int(row[6] == "bearing"))])
    return out


def features_of(spec, data, out):
    got = edgectl("features", str(spec), "--data", str(data), "--out", str(out), "--json", "-q")
    assert got.returncode == 0, got.stderr
    rows = list(csv.reader(out.read_text().splitlines()))
    table = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    return rows[0], [r[:2] for r in rows[1:]], table[:, 0], table[:, 1:]


def serve(bundle, data, board):
    deployed = edgectl("deploy", str(bundle), f"local:{board}", "-q")
    assert deployed.returncode == 0, deployed.stderr
    target = parse_target(f"local:{board}")
    argv = [*target.agent_argv(), "run", "--bundle", f"{board}/current", "--input", str(data)]
    got = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    records = [json.loads(line) for line in got.stdout.splitlines()]
    assert not [r for r in records if r["type"] == "error"]
    return [r for r in records if r["type"] == "prediction"]


def converted(model_file, spec, data, out, *extra):
    got = edgectl("convert", str(model_file), "--spec", str(spec), "--data", str(data), "--out", str(out), *extra)
    assert got.returncode == 0, got.stderr
    assert (out / "manifest.json").is_file() and "self-test  passed" in got.stdout
    return json.loads((out / "manifest.json").read_text())


def test_xgboost_multiclass_from_json(vibration, tmp_path):
    import xgboost

    work, data = vibration
    spec = spec_for(work, "multiclass")
    _, keys, y, X = features_of(spec, data, tmp_path / "features.csv")
    model = xgboost.XGBClassifier(n_estimators=40, max_depth=4, objective="multi:softprob").fit(X, y.astype(int))
    model.get_booster().save_model(tmp_path / "model.json")
    manifest = converted(tmp_path / "model.json", spec, data, tmp_path / "bundle")
    assert manifest["format_version"] == 3 and manifest["output"]["task"] == "multiclass"
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = model.predict_proba(X.astype(np.float32))
    assert [(p["stream"], repr(p["t"])) for p in preds] == [(s, repr(float(t))) for s, t in keys]
    assert len(preds) == len(X) > 50
    got = np.array([p["scores"] for p in preds])
    assert np.max(np.abs(got - native)) <= PARITY
    assert [p["prediction"] for p in preds] == native.argmax(axis=1).tolist()
    assert {p["class"] for p in preds} <= {"normal", "cavitation", "bearing"}


def test_lightgbm_binary_from_text(vibration, tmp_path):
    import lightgbm

    work, data = vibration
    data = with_bearing_column(data, tmp_path / "labelled.csv")
    spec = spec_for(work, "binary")
    _, _, y, X = features_of(spec, data, tmp_path / "features.csv")
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 8},
                             lightgbm.Dataset(X, y), num_boost_round=30)  # fmt: skip
    booster.save_model(str(tmp_path / "model.txt"))
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
        '[input]\ncolumns = ["a"]\n[window]\nfeatures = ["median"]\n': "[window] features",
        "[input]\n": "[input] columns is missing",
        '[inputs]\ncolumns = ["a"]\n': "unknown table [inputs]",
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
    assert sys.version_info >= (3, 9)
