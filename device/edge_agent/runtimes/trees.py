"""Compiled tree ensembles (TL2cgen C + our entry point) loaded with ctypes.

The library exports `edge_predict(const float *row, double *out)`: one dense
row, NaN for a missing value, `edge_num_output()` doubles out (ABI 1: one float) (binary: the
positive-class score; multiclass: a probability per class; regression: the
value). One ctypes call per window, into buffers allocated once.
"""

import ctypes
import platform
from pathlib import Path

import numpy as np

from edge_agent.errors import AgentError, BundleError

ABI_VERSIONS = (1, 2)  # 2 added edge_num_output(); a version 1 library has one output


def board_arch():
    """The board's architecture name as bundles key their libraries (x86_64, aarch64, armv7l)."""
    return platform.machine()


class TreeStage:
    """One tree-model stage: loads the library built for this board's arch."""

    def __init__(self, bundle_dir, stage):
        arch = board_arch()
        libs = stage.get("libs", {})
        if arch not in libs:
            raise AgentError(
                f"stage {stage['name']!r}: the bundle has no tree library for this board's arch {arch} "
                f"(it has: {', '.join(sorted(libs)) or 'none'}); rebuild it with the board's profile"
            )
        path = Path(bundle_dir) / libs[arch]
        try:
            lib = ctypes.CDLL(str(path.resolve()))
        except OSError as exc:
            raise AgentError(f"stage {stage['name']!r}: cannot load {path}: {exc}") from None
        try:
            abi, n_features, predict = lib.edge_abi_version, lib.edge_num_feature, lib.edge_predict
        except AttributeError as exc:
            raise BundleError(f"{path}: not an edgectl tree library (no {str(exc).split()[-1]})") from None
        if abi() not in ABI_VERSIONS:
            raise AgentError(f"{path}: tree library ABI {abi()}, this agent reads {ABI_VERSIONS}; upgrade the agent")
        try:
            self.n_outputs = lib.edge_num_output() if abi() >= 2 else 1
        except AttributeError:
            raise BundleError(f"{path}: an ABI 2 tree library without edge_num_output") from None
        if not 0 < self.n_outputs <= 256:
            raise BundleError(f"{path}: the library reports {self.n_outputs} outputs")
        self.n_features = n_features()
        if not 0 < self.n_features <= 1 << 20:
            raise AgentError(f"{path}: the library reports {self.n_features} input features")
        self.n_inputs = self.n_features
        self._predict = predict
        self._predict.restype = ctypes.c_int
        self._predict.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
        self._row = np.zeros(self.n_features, dtype=np.float32)
        self._score = np.zeros(self.n_outputs, dtype=np.float64 if abi() >= 2 else np.float32)
        self._row_ptr = self._row.ctypes.data
        self._score_ptr = self._score.ctypes.data
        self.lib = lib

    def fuses(self, lib):
        """Whether this stage can take a window straight from the kernel in `lib`: its own library, fused."""
        return lib is self.lib and hasattr(lib, "edge_window_step_predict")

    @property
    def output_at(self):
        """The address of the buffer the model's outputs land in (kernel.KernelWindows.fuse)."""
        return self._score_ptr

    def last_output(self):
        """The model's output last written to that buffer: a float, or a list with several outputs."""
        return float(self._score[0]) if self.n_outputs == 1 else self._score.tolist()

    def predict(self, features):
        """The model's output for one feature row (float64 or float32): a float, or a list with several outputs."""
        self._row[:] = features
        self._predict(self._row_ptr, self._score_ptr)
        return float(self._score[0]) if self.n_outputs == 1 else self._score.tolist()
