"""A user's own neural model on raw windows: a Keras model, a SavedModel directory or a given .tflite file,
trained on `edgectl features` windows -> `edgectl convert` -> a local board: every window within the
bundle's INT8 tolerance (float32: 1e-4) of the model's own output."""

import numpy as np
import pytest
from cli import edgectl
from your_data import converted, raw_spec, raw_windows, serve

from edge_convert.quiet import captured_output

pytestmark = pytest.mark.slow


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
