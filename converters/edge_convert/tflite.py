"""Keras -> TFLite full INT8 (batch 1, int8 input and output), with a float-vs-int8 report.

TensorFlow is imported inside the functions: only building a neural stage pays
its ~2 s import, never `edgectl --help` and never the agent.
"""

import warnings

import numpy as np

from edge_agent.metrics import classification
from edge_agent.runtimes.litert import TFLiteStage
from edge_convert import ConversionError
from edge_convert.quiet import captured_output


def to_int8(model, representative, max_samples=500):
    """Convert a Keras model to full-INT8 TFLite bytes, using real training windows for calibration."""
    import tensorflow as tf

    fixed = _batch_one(model)
    rows = np.asarray(representative[:max_samples], dtype=np.float32)

    def calibration():
        for row in rows:
            yield [row[None, ...]]

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        with captured_output(), warnings.catch_warnings():
            # Asked of every int8-input model; our inputs are quantized from the calibration set.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            return converter.convert()
    except Exception as exc:  # the converter raises several unrelated types
        raise ConversionError(f"TFLite INT8 conversion failed: {exc}") from None


def keras_scores(model, X, batch=512):
    """Float scores of a Keras model on windows X, called directly (predict() retraces per shape)."""
    X = np.asarray(X, dtype=np.float32)
    parts = [np.asarray(model(X[i : i + batch], training=False)).reshape(-1) for i in range(0, len(X), batch)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _batch_one(model):
    """Clone the model onto a batch-1 input (fewer ops, better INT8 agreement; see NOTES-ARM)."""
    import keras

    inputs = keras.Input(shape=model.input_shape[1:], batch_size=1)
    clone = keras.models.clone_model(model, input_tensors=inputs)
    clone.set_weights(model.get_weights())
    return clone


def report(model, tflite_path, X, y, threshold=0.5):
    """Compare float Keras and INT8 TFLite on held-out windows: diff, agreement, F1, op list."""
    float_scores = keras_scores(model, X)
    with captured_output():  # LiteRT announces its delegate on stderr
        stage = TFLiteStage(".", {"name": "check", "file": str(tflite_path)})
    int8_scores = np.array([stage.predict(x) for x in X])
    ops = op_list(stage.interpreter)
    return {
        "rows": len(X),
        "max_abs_diff": float(np.max(np.abs(float_scores - int8_scores))),
        "decision_agreement": float(np.mean((float_scores >= threshold) == (int8_scores >= threshold))),
        "f1_float": classification(y, float_scores >= threshold)["f1"],
        "f1_int8": classification(y, int8_scores >= threshold)["f1"],
        "ops": sorted({op["op"] for op in ops}),
        "float_ops": sorted({op["op"] for op in ops if op["float"]}),
        "runtime": stage.runtime,
    }, int8_scores


def op_list(interpreter):
    """Every op of a loaded model with whether any of its tensors is float (stayed unquantized)."""
    ops = []
    for op in interpreter._get_ops_details():
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        dtypes = {interpreter._get_tensor_details(i, 0)["dtype"] for i in tensors}
        ops.append({"op": op["op_name"], "float": any(np.dtype(d).kind == "f" for d in dtypes)})
    return [op for op in ops if op["op"] != "DELEGATE"]
