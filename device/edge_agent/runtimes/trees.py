"""Compiled tree ensembles (TL2cgen C + our entry point) loaded with ctypes.

The library exports `edge_predict(const float *row, float *score)`: one dense
row, NaN for a missing value, the positive-class score out. One ctypes call per
window, into buffers allocated once.
"""

import ctypes
import platform
from pathlib import Path

import numpy as np

from edge_agent.errors import AgentError, BundleError

ABI_VERSION = 1


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
        if abi() != ABI_VERSION:
            raise AgentError(f"{path}: tree library ABI {abi()}, agent expects {ABI_VERSION}")
        self.n_features = n_features()
        if not 0 < self.n_features <= 1 << 20:
            raise AgentError(f"{path}: the library reports {self.n_features} input features")
        self.n_inputs = self.n_features
        self._predict = predict
        self._predict.restype = ctypes.c_int
        self._predict.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
        self._row = np.zeros(self.n_features, dtype=np.float32)
        self._score = np.zeros(1, dtype=np.float32)
        self._row_ptr = self._row.ctypes.data
        self._score_ptr = self._score.ctypes.data
        self.lib = lib

    def predict(self, features):
        """Positive-class score for one feature row (float64 or float32)."""
        self._row[:] = features
        self._predict(self._row_ptr, self._score_ptr)
        return float(self._score[0])
