"""`edgectl train`: the reference models on any spec (here the user's vibration CSV), chosen out of fold by
stream, written as model files and converted as a user's own model would be; the same inputs give the
same bytes."""

import json

import numpy as np
import pytest
from cli import edgectl
from your_data import raw_spec, raw_windows, serve, spec_for, with_bearing_column

pytestmark = pytest.mark.slow


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
    assert {p["windows"] for p in manifest["stages"][0]["parity"].values()} == {"every training window (in-sample)"}


def test_train_fits_a_neural_model_on_the_raw_window_of_a_features_spec(vibration, tmp_path):
    import keras

    work, data = vibration
    spec = spec_for(work, "multiclass")
    got = edgectl("train", str(spec), "--data", str(data), "--model", "attention", "--out", str(tmp_path / "b"), "-q")
    assert got.returncode == 0, got.stderr
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    stage = manifest["stages"][0]
    assert stage["kind"] == "tflite" and stage["input"] == "window" and stage["outputs"] == 3
    assert stage["validation"]["method"] == "out-of-fold, 3 folds by stream, each fold's model as INT8 TFLite"
    assert "macro_f1" in stage["validation"]
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
