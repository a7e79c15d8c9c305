"""A user's own data and model: a vibration CSV (not C-MAPSS) -> `edgectl init` -> `edgectl features` ->
a model trained OUTSIDE edgectl in plain xgboost / lightgbm / scikit-learn -> a model file ->
`edgectl convert` -> deploy to a local board -> the raw CSV streamed through the agent: every window's
answer equals the model's own prediction on the features file within 1e-6 per output."""

import csv
import json
import os
import subprocess

import numpy as np
import pytest
from cli import edgectl

from edge_convert.quiet import captured_output
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
    assert manifest["format_version"] == 4 and manifest["output"]["task"] == "multiclass"
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = model.predict_proba(X.astype(np.float32))
    assert [(p["stream"], repr(p["t"])) for p in preds] == [(s, repr(float(t))) for s, t in keys]
    assert len(preds) == len(X) > 50
    got = np.array([p["scores"] for p in preds])
    assert np.max(np.abs(got - native)) <= PARITY
    assert [p["prediction"] for p in preds] == native.argmax(axis=1).tolist()
    assert {p["class"] for p in preds} <= {"normal", "cavitation", "bearing"}


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


def raw_spec(work, task="multiclass"):
    """The init spec with raw windows: the model reads the (length, columns) window itself."""
    return spec_for(work, task, features='"raw"')


def raw_windows(spec, data, out):
    got = edgectl("features", str(spec), "--data", str(data), "--out", str(out), "-q")
    assert got.returncode == 0, got.stderr
    arrays = np.load(out)
    return arrays["X"], arrays["y"].astype(int)


def small_keras(shape, classes):
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.layers.Conv1D(8, 5, activation="relu"), keras.layers.GlobalAveragePooling1D()]
    model = keras.Sequential([keras.Input(shape), *layers, keras.layers.Dense(classes, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def trained_keras(work, data, tmp_path, epochs):
    """(raw spec, its windows, a small Keras model trained on them) as a user's notebook would give."""
    spec = raw_spec(work)
    X, y = raw_windows(spec, data, tmp_path / "windows.npz")
    model = small_keras(X.shape[1:], 3)
    model.fit(X, y, epochs=epochs, verbose=0)
    return spec, X, model


def test_keras_on_raw_windows_to_int8(vibration, tmp_path):
    work, data = vibration
    spec, X, model = trained_keras(work, data, tmp_path, epochs=3)
    model.save(tmp_path / "model.keras")
    manifest = converted(tmp_path / "model.keras", spec, data, tmp_path / "bundle", "-q")
    stage = manifest["stages"][0]
    assert stage["kind"] == "tflite" and stage["input"] == "window" and stage["conversion"]["precision"] == "int8"
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = np.asarray(model(X.astype(np.float32), training=False), dtype=np.float64)
    got = np.array([p["scores"] for p in preds])
    assert len(preds) == len(X) and np.max(np.abs(got - native)) <= stage["tolerance"] == 0.125
    assert np.mean(got.argmax(axis=1) == native.argmax(axis=1)) >= 0.95


def test_a_savedmodel_directory_to_int8(vibration, tmp_path):
    work, data = vibration
    spec, X, model = trained_keras(work, data, tmp_path, epochs=2)
    with captured_output():
        model.export(tmp_path / "saved")
    manifest = converted(tmp_path / "saved", spec, data, tmp_path / "bundle", "-q")
    stage = manifest["stages"][0]
    assert stage["conversion"]["precision"] == "int8" and stage["conversion"]["decision_agreement"] >= 0.95
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = np.asarray(model(X.astype(np.float32), training=False), dtype=np.float64)
    assert len(preds) == len(X) and np.max(np.abs(np.array([p["scores"] for p in preds]) - native)) <= 0.125
    (tmp_path / "empty").mkdir()
    got = edgectl("convert", str(tmp_path / "empty"), "--spec", str(spec), "--data", str(data),
                  "--out", str(tmp_path / "b"), "-q")  # fmt: skip
    assert got.returncode == 1 and "a directory without saved_model.pb" in got.stderr


def test_a_given_tflite_file_is_taken_as_it_is(vibration, tmp_path):
    import tensorflow as tf

    work, data = vibration
    spec, X, model = trained_keras(work, data, tmp_path, epochs=2)
    (tmp_path / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    refused = edgectl("convert", str(tmp_path / "model.tflite"), "--spec", str(spec), "--data", str(data),
                      "--out", str(tmp_path / "b"), "--precision", "int8", "-q")  # fmt: skip
    assert refused.returncode == 1 and "cannot be quantized without the model it came from" in refused.stderr
    manifest = converted(tmp_path / "model.tflite", spec, data, tmp_path / "bundle", "-q")
    assert manifest["stages"][0]["conversion"]["precision"] == "float32"
    preds = serve(tmp_path / "bundle", data, tmp_path / "board")
    native = np.asarray(model(X.astype(np.float32), training=False), dtype=np.float64)
    assert len(preds) == len(X) and np.max(np.abs(np.array([p["scores"] for p in preds]) - native)) <= 1e-4
    wrong = raw_spec(work).read_text().replace("length = 30", "length = 20")
    (tmp_path / "wrong.toml").write_text(wrong)
    got = edgectl("convert", str(tmp_path / "model.tflite"), "--spec", str(tmp_path / "wrong.toml"),
                  "--data", str(data), "--out", str(tmp_path / "b"), "-q")  # fmt: skip
    assert (
        got.returncode == 1
        and "the model's input shape is (30, 4); the spec gives a raw window (length, columns) of shape (20, 4)"
        in got.stderr
    )


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


def test_train_fits_a_reference_model_on_any_spec_and_converts_it(vibration, tmp_path):
    work, data = vibration
    spec = spec_for(work, "regression")
    got = edgectl("train", str(spec), "--data", str(data), "--model", "extra-trees", "--out", str(tmp_path / "b"),
                  "--json", "-q")  # fmt: skip
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["self_test"]["status"] == "ok"
    assert (tmp_path / "b.model.skops").is_file()
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["output"]["task"] == "regression" and manifest["stages"][0]["validation"]["rmse"] >= 0
    preds = serve(tmp_path / "b", data, tmp_path / "board")
    assert preds and all("value" in p for p in preds)
    bench = edgectl("bench", str(tmp_path / "b"), f"local:{tmp_path / 'board'}", "--data", str(data),
                    "--warmup", "10", "--min-queries", "100", "--min-duration", "0.2", "--json", "-q")  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)["results"][0]
    assert result["accuracy"]["all_windows"]["n"] == len(preds) and result["accuracy"]["all_windows"]["mae"] >= 0
    assert "labels from column wear_pct" in result["accuracy_note"]
    assert manifest["stages"][0]["validation"]["method"] == "out-of-fold, 5 folds by stream"


def test_train_fits_a_neural_model_on_the_raw_window_of_a_features_spec(vibration, tmp_path):
    import keras

    work, data = vibration
    spec = spec_for(work, "multiclass")
    got = edgectl("train", str(spec), "--data", str(data), "--model", "attention", "--out", str(tmp_path / "b"), "-q")
    assert got.returncode == 0, got.stderr
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    stage = manifest["stages"][0]
    assert stage["kind"] == "tflite" and stage["input"] == "window" and stage["outputs"] == 3
    assert stage["validation"]["method"] == "out-of-fold, 3 folds by stream" and "macro_f1" in stage["validation"]
    X, _ = raw_windows(raw_spec(work), data, tmp_path / "windows.npz")  # the same windows, as a user reads them
    model = keras.models.load_model(tmp_path / "b.model.keras")
    native = np.asarray(model(X.astype(np.float32), training=False), dtype=np.float64)
    preds = serve(tmp_path / "b", data, tmp_path / "board")
    got = np.array([p["scores"] for p in preds])
    assert len(preds) == len(X) and np.max(np.abs(got - native)) <= stage["tolerance"]
    short = spec_for(work, "binary").read_text().replace("length = 30", "length = 4")
    (tmp_path / "short.toml").write_text(short)
    labelled = with_bearing_column(data, tmp_path / "d.csv")
    refused = edgectl("train", str(tmp_path / "short.toml"), "--data", str(labelled), "--model", "conv1d",
                      "--out", str(tmp_path / "c"), "-q")  # fmt: skip
    assert refused.returncode == 1 and "conv1d needs windows of at least 9 samples" in refused.stderr
    assert not (tmp_path / "c").exists()


def test_two_builds_in_a_row_give_byte_identical_model_files(vibration, tmp_path):
    work, data = vibration
    spec = spec_for(work, "multiclass")
    for kind, model_file in (("lightgbm", "lightgbm/lightgbm-x86_64.so"), ("conv1d", "conv1d/conv1d.tflite")):
        built = []
        for run in ("a", "b"):
            got = edgectl("train", str(spec), "--data", str(data), "--model", kind, "--out", str(tmp_path / run / kind),
                          "-q")  # fmt: skip
            assert got.returncode == 0, got.stderr
            built.append((tmp_path / run / kind / model_file).read_bytes())
        assert built[0] == built[1], kind
    manifest = json.loads((tmp_path / "a" / "conv1d" / "manifest.json").read_text())
    assert manifest["built_with"]["training"] == {"kind": "conv1d", "seed": 0, "threads": 1, "folds": 3}
    assert {"tensorflow-cpu", "keras", "numpy"} <= set(manifest["built_with"]["versions"])
