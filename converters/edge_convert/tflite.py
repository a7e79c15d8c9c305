"""Keras -> TFLite full INT8 (batch 1, int8 input and output), with a float-vs-int8 report.

TensorFlow is imported inside the functions: only building a neural stage pays
its ~2 s import, never `edgectl --help` and never the agent.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.runtimes.litert import TFLiteStage
from edge_convert import ConversionError
from edge_convert.quiet import captured_output


def to_int8(model, representative, max_samples=500):
    """Convert a Keras model to full-INT8 TFLite bytes, using real training windows for calibration
    (at most max_samples of them, spread evenly over the data: its first windows may be one stream's)."""
    import tensorflow as tf

    step = max(1, len(representative) // max_samples)
    rows = np.asarray(representative[::step][:max_samples], dtype=np.float32)

    def calibration():
        for row in rows:
            yield [row[None, ...]]

    converter = _converter(model)
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


def _converter(model):
    import tensorflow as tf

    if isinstance(model, SavedModel):
        return tf.lite.TFLiteConverter.from_saved_model(str(model.path))
    return tf.lite.TFLiteConverter.from_keras_model(_batch_one(model))


def _batch_one(model):
    """Clone the model onto a batch-1 input (fewer ops, better INT8 agreement; see NOTES-ARM)."""
    import keras

    inputs = keras.Input(shape=model.input_shape[1:], batch_size=1)
    clone = keras.models.clone_model(model, input_tensors=inputs)
    clone.set_weights(model.get_weights())
    return clone


def op_list(interpreter):
    """Every op of a loaded model with whether any of its tensors is float (stayed unquantized)."""
    ops = []
    for op in interpreter._get_ops_details():
        tensors = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        dtypes = {interpreter._get_tensor_details(i, 0)["dtype"] for i in tensors}
        ops.append({"op": op["op_name"], "float": any(np.dtype(d).kind == "f" for d in dtypes)})
    return [op for op in ops if op["op"] != "DELEGATE"]


NEURAL_FORMATS = {".keras": "Keras 3 model", ".h5": "Keras HDF5 model", ".tflite": "TFLite flatbuffer"}


@dataclass
class SavedModel:
    """A TensorFlow SavedModel directory, called like a Keras model (its serving signature)."""

    path: Path
    signature: object
    input_name: str
    input_shape: tuple  # batch first, as Keras gives it
    output_shape: tuple

    def __call__(self, X, training=False):
        outputs = self.signature(**{self.input_name: X})
        return next(iter(outputs.values()))


def load(path):
    """A neural model: ("keras", a Keras model or a SavedModel directory) or ("tflite", the file's bytes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        return "keras", _saved_model(path)
    if suffix not in NEURAL_FORMATS:
        raise ConversionError(f"{path}: not a neural model file ({', '.join(NEURAL_FORMATS)})")
    if suffix == ".tflite":
        data = path.read_bytes()
        if data[4:8] != b"TFL3":
            raise ConversionError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
        return "tflite", data
    try:
        with captured_output():
            import keras

            return "keras", keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file
        raise ConversionError(f"{path}: cannot load it as a {NEURAL_FORMATS[suffix]}: {str(exc)[:300]}") from None


def _saved_model(path):
    if not (path / "saved_model.pb").is_file():
        raise ConversionError(f"{path}: a directory without saved_model.pb; give a SavedModel directory "
                              "(model.export(dir)), a .keras file or a .tflite file")  # fmt: skip
    try:
        with captured_output():
            import tensorflow as tf

            signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    except Exception as exc:  # TensorFlow raises many types for a damaged or foreign directory
        raise ConversionError(f"{path}: cannot load it as a SavedModel with a serving_default signature: "
                              f"{str(exc)[:300]}") from None  # fmt: skip
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1 or len(signature.structured_outputs) != 1:
        raise ConversionError(f"{path}: the serving signature has {len(inputs)} inputs and "
                              f"{len(signature.structured_outputs)} outputs; edgectl serves one of each")  # fmt: skip
    (name, spec), (output,) = next(iter(inputs.items())), signature.structured_outputs.values()
    return SavedModel(path, signature, name, tuple(spec.shape), tuple(output.shape))


def to_float(model):
    """A Keras model as float32 TFLite bytes (batch 1): on many Pis INT8 is not faster; compare with bench."""
    converter = _converter(model)
    try:
        with captured_output():
            return converter.convert()
    except Exception as exc:  # the converter raises several unrelated types
        raise ConversionError(f"TFLite conversion failed: {exc}") from None


def keras_outputs(model, X, batch=512):
    """A Keras model's outputs on X: (n,) for one output, (n, K) for several."""
    X = np.asarray(X, dtype=np.float32)
    parts = [np.asarray(model(X[i : i + batch], training=False), dtype=np.float64) for i in range(0, len(X), batch)]
    out = np.concatenate(parts) if parts else np.zeros((0, 1))
    out = out.reshape(len(X), -1)
    return out[:, 0] if out.shape[1] == 1 else out


def tflite_outputs(path, X):
    """A .tflite file's outputs on X, window by window through the agent's own TFLite stage."""
    with captured_output():
        stage = TFLiteStage(".", {"name": "check", "file": str(path)})
    out = np.array([stage.predict(x) for x in np.asarray(X, dtype=np.float32)], dtype=np.float64)
    return out, stage


def io_shapes(model_or_path):
    """((input shape without batch), number of outputs) of a Keras model or a .tflite file."""
    if isinstance(model_or_path, (str, bytes)) or hasattr(model_or_path, "read_bytes"):
        with captured_output():
            stage = TFLiteStage(".", {"name": "check", "file": str(model_or_path)})
        shape = tuple(int(d) for d in stage._in_shape[1:])
        return shape, stage.n_outputs
    shape = tuple(model_or_path.input_shape[1:])
    return shape, int(np.prod(model_or_path.output_shape[1:]))
