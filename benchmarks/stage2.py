"""Stage 2 (the Conv1D, TFLite INT8) per window: the agent's TFLiteStage against the bare LiteRT
invoke, the same model as float TFLite, and Keras on one window. Used by stage1_latency.py."""

import numpy as np
from harness import last_value, measure

from edge_agent.runtimes.litert import TFLiteStage
from edge_convert import tflite
from edge_convert.quiet import captured_output

FLOOR = "LiteRT invoke only (int8 in, pre-quantized)"
REFERENCE = "Keras predict_on_batch (float)"
# Keras's eager call and predict() cost tens to hundreds of ms a window: time them on a sample.
KERAS_EAGER_WINDOWS = 300
KERAS_PREDICT_WINDOWS = 100


def single_thread_tensorflow():
    """One thread for TensorFlow, like every other method here; must run before TensorFlow's first op."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def stage2_runs(result, windows, work):
    """{method: (µs, scores, note)} on the raw windows (n, length, F) of a conv1d bundle."""
    spec = result.manifest["stages"][0]
    with captured_output():  # LiteRT announces its delegate on stderr
        stage = TFLiteStage(result.bundle_dir, spec)
        float_stage = _float_tflite(result.model, work)
    bare, quantized, dequantize = _bare_invoke(stage.interpreter, windows)
    model = result.model
    runs = {
        FLOOR: (*measure(bare, quantized, dequantize), None),
        "agent TFLiteStage.predict (int8)": (*measure(stage.predict, windows, float), "quantize+invoke+dequantize"),
        "float TFLite (same model, LiteRT)": (*measure(float_stage.predict, windows, float), None),
        REFERENCE: (*measure(lambda w: model.predict_on_batch(w[None]), windows, last_value), "compiled function"),
    }
    for method, call, n, how in (
        ("Keras model(x) (float)", lambda w: model(w[None], training=False), KERAS_EAGER_WINDOWS, "eager"),
        ("Keras model.predict() (float)", lambda w: model.predict(w[None], verbose=0), KERAS_PREDICT_WINDOWS,
         "sets up a data pipeline per call"),
    ):  # fmt: skip
        runs[method] = (*measure(call, windows[:n], last_value, warmup=10), f"{how}; first {n} windows")
    return runs


def _float_tflite(model, work):
    """The same Keras model as float TFLite (batch 1, like the INT8 one), loaded as the agent would."""
    import tensorflow as tf

    path = work / "conv1d-float.tflite"
    # The INT8 stage is converted from the batch-1 clone: the same graph makes the comparison fair.
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tflite._batch_one(model)).convert())
    return TFLiteStage(work, {"name": "conv1d-float", "file": path.name})


def _bare_invoke(interpreter, windows):
    """(call, its inputs, its score): set_tensor + invoke + get_tensor on windows quantized beforehand."""
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    quantized = np.clip(np.round(windows / in_scale + in_zero), -128, 127).astype(inp["dtype"])
    quantized = quantized.reshape(len(windows), *inp["shape"])

    def call(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return call, quantized, lambda y: (float(y.reshape(-1)[-1]) - out_zero) * out_scale
