"""TFLite (INT8) models through LiteRT, falling back to tflite-runtime, then TensorFlow.

Quantization parameters of the int8 input and output are read once, so a
window costs one quantize, one invoke and one dequantize.
"""

import importlib
from pathlib import Path

import numpy as np

from edge_agent.errors import AgentError

# In order of preference; see NOTES-ARM: LiteRT is the maintained runtime.
_INTERPRETERS = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow.lite", "Interpreter"),
)


def find_interpreter():
    """Return (module name, Interpreter class) of the first runtime that imports."""
    for module, name in _INTERPRETERS:
        try:
            return module, getattr(importlib.import_module(module), name)
        except ImportError:
            continue
    raise AgentError(
        "no TFLite runtime on this board: install ai-edge-litert (or tflite-runtime with numpy<2 on 32-bit boards)"
    )


class TFLiteStage:
    """One TFLite stage: a window (length, F) in, the positive-class score out."""

    def __init__(self, bundle_dir, stage):
        path = Path(bundle_dir) / stage["file"]
        self.runtime, interpreter_class = find_interpreter()
        try:
            self.interpreter = interpreter_class(model_path=str(path), num_threads=1)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # the runtimes raise ValueError or RuntimeError
            raise AgentError(f"stage {stage['name']!r}: cannot load {path}: {exc}") from None
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype = inp["dtype"]
        self._in_shape = inp["shape"]
        self.n_inputs = int(np.prod(self._in_shape))
        self.n_outputs = int(np.prod(out["shape"]))
        self._in_scale, self._in_zero = _quant(inp)
        self._out_scale, self._out_zero = _quant(out)

    def predict(self, window):
        """The model's output for one window of preprocessed samples: a float, or a list with several outputs."""
        x = np.asarray(window, dtype=np.float32).reshape(self._in_shape)
        if self._in_scale:
            x = np.clip(np.round(x / self._in_scale + self._in_zero), -128, 127)
        self.interpreter.set_tensor(self._in_index, x.astype(self._in_dtype))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self._out_index).reshape(-1).astype(np.float64)
        if self._out_scale:
            y = (y - self._out_zero) * self._out_scale
        return float(y[-1]) if self.n_outputs == 1 else y.tolist()


def _quant(detail):
    """(scale, zero_point) of a quantized tensor, or (0.0, 0) for a float one."""
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)
