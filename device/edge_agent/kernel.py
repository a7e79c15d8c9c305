"""The compiled window kernel (edge_window.c, built into a bundle's tree library) through ctypes.

It computes what windows.py and preprocess.py compute (the reference, and the fallback where a
bundle has no kernel for the board's arch), with the same arithmetic in the same order, so the
features are equal bit for bit. The plan (channels, kinds, spans, fitted preprocessing) goes to
C once as two flat arrays; each stream's state lives in C, freed when the stream is evicted.
"""

import ctypes
from collections import OrderedDict

import numpy as np

from edge_agent.lru import touch

ABI = 3  # 2: the drift functions (edge_drift_check, edge_drift_observe) and bins of -1 before a slot is binned;
# 3: the bins in bytes
# Operation codes of edge_window.c's `enum op`.
_WINDOW = {"mean": 0, "std": 1, "min": 2, "max": 3, "rms": 4, "slope": 5, "last": 6}
_ROLLING = {"mean": 7, "std": 8, "slope": 9}
_ALL = {"mean": 10, "slope": 11}
_OTHER = {"ewm": 12, "base": 13, "peak": 14}
NO_OP = -1


def _op(kind):
    """(code, argument) of a parsed kind that is not a difference (windows.parse_kind)."""
    tag = kind[0]
    if tag == "window":
        return _WINDOW[kind[1]], 0
    if tag == "rolling":
        return _ROLLING[kind[1]], kind[2]
    if tag == "all":
        return _ALL[kind[1]], 0
    return _OTHER[tag], kind[1]


def plan_arrays(plan, prep):
    """(int64 array, float64 array): a windows.Plan and a preprocess.Preprocessor as edge_window_plan reads them."""
    features = []
    for idx, kinds in plan.groups:
        for channel in idx:
            for kind in kinds:
                a, b = (kind[1], kind[2]) if kind[0] == "diff" else (kind, None)
                features += [int(channel), *_op(a), *(_op(b) if b else (NO_OP, 0))]
    conditions = prep.conditions
    n_settings = len(conditions["fields"]) if conditions else 0
    n_derived = len(plan.weights)
    ints = [ABI, plan.n_columns, n_derived, plan.length, plan.stride, plan.ring, int(plan.with_time),
            int(plan.expanding)]  # fmt: skip
    for values in (plan.spans, plan.ewm, plan.base, plan.peak):
        ints += [len(values), *values]
    ints += [n_settings, len(conditions["centers"]) if conditions else 0, len(features) // 5, *features]
    reals = [prep.fill, prep.center.ravel(), prep.scale.ravel()]
    if conditions:
        reals += [np.asarray(conditions["setting_scale"], dtype=np.float64).ravel(),
                  np.asarray(conditions["centers"], dtype=np.float64).ravel()]  # fmt: skip
    reals.append(plan.weights.ravel())
    return np.array(ints, dtype=np.int64), np.concatenate([np.asarray(r, dtype=np.float64) for r in reals])


def has_kernel(lib):
    """Whether a loaded library (ctypes.CDLL) carries the window kernel this agent reads."""
    return why_not(lib) is None


def why_not(lib):
    """Why a loaded library's window kernel cannot serve this agent, as the start record says it; None if it can."""
    try:
        abi = lib.edge_window_abi()
    except AttributeError:
        return "the bundle's tree library has no window kernel (built before it came): rebuild the bundle to get it"
    if abi != ABI:
        return (
            f"the bundle's window kernel is ABI {abi}, this agent reads ABI {ABI}: rebuild the bundle with this edgectl"
        )
    return None


class KernelWindows:
    """The per-stream windows of windows.WindowSet, computed by the kernel in `lib` (a ctypes.CDLL)."""

    def __init__(self, lib, plan, prep, max_streams=1024):
        self.lib, self.plan, self.prep = lib, plan, prep
        self.length, self.stride, self.n_columns = plan.length, plan.stride, plan.n_columns
        self.max_streams = max_streams
        self.streams = OrderedDict()
        self.evicted = 0
        p = ctypes.c_void_p
        for name, res, args in (
            ("edge_window_plan", p, (p, p)),
            ("edge_window_plan_free", None, (p,)),
            ("edge_window_n_features", ctypes.c_int, (p,)),
            ("edge_window_stream", p, (p,)),
            ("edge_window_stream_free", None, (p,)),
            ("edge_window_step", ctypes.c_int, (p, p, p, p, ctypes.c_double, p)),
            ("edge_window_features", None, (p, p, p)),
            ("edge_window_raw", None, (p, p, p)),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self._ints, self._reals = plan_arrays(plan, prep)
        self.handle = lib.edge_window_plan(self._ints.ctypes.data, self._reals.ctypes.data)
        if not self.handle or lib.edge_window_n_features(self.handle) != plan.n_features:
            raise ValueError("the window kernel does not accept this manifest's plan")
        # Buffers passed by address: reading .ctypes.data per call costs more than the kernel's work.
        self._x = np.zeros(plan.n_columns)
        self._values = np.zeros(plan.n_columns)
        self._settings = np.zeros(max(1, len((prep.conditions or {}).get("fields", ()))))
        self._at = (self._x.ctypes.data, self._values.ctypes.data, self._settings.ctypes.data)
        self.input_at = self._at[1:]  # where step reads a sample's values and settings given as None
        self._step, self._step_predict, self._out_at = lib.edge_window_step, None, None

    def __del__(self):
        if getattr(self, "handle", None):
            self.streams.clear()
            self.lib.edge_window_plan_free(self.handle)

    def get(self, stream):
        window, gone = touch(self.streams, stream, self._new, self.max_streams)
        self.evicted += gone
        return window

    def _new(self):
        return KernelStream(self)

    def fuse(self, out_at):
        """Have `step` also predict, into the buffer at out_at, when a window completes (the library's
        edge_window_step_predict: the window kernel and the tree model in one call a sample)."""
        fn = self.lib.edge_window_step_predict
        p = ctypes.c_void_p
        fn.restype, fn.argtypes = ctypes.c_int, (p, p, p, p, ctypes.c_double, p, p)
        self._step_predict, self._out_at = fn, out_at

    def step(self, window, values, settings, time):
        """windows.WindowSet.step, in one call (with the prediction, after `fuse`). values and settings
        None: they are in the buffers at input_at already (blocks.py's C reader put them there)."""
        if values is not None:
            self._values[:] = values
            if len(settings):
                self._settings[:] = settings
        x_at, values_at, settings_at = self._at
        if self._out_at is None:
            status = self._step(self.handle, window.handle, values_at, settings_at, time, x_at)
        else:
            status = self._step_predict(self.handle, window.handle, values_at, settings_at, time, x_at, self._out_at)
        if status >= 0:
            window.time = time
        return status, (self._x if status >= 0 else None)


class KernelStream:
    """One stream's state in C, with StreamWindow's reading side: features, raw, time."""

    __slots__ = ("owner", "handle", "time")

    def __init__(self, owner):
        self.owner, self.time = owner, 0.0
        self.handle = owner.lib.edge_window_stream(owner.handle)
        if not self.handle:
            raise MemoryError("the window kernel cannot allocate a stream's state")

    def __del__(self):
        if self.handle:
            self.owner.lib.edge_window_stream_free(self.handle)

    def features(self):
        out = np.empty(self.owner.plan.n_features)
        self.owner.lib.edge_window_features(self.owner.handle, self.handle, out.ctypes.data)
        return out

    def raw(self):
        out = np.empty((self.owner.length, self.owner.n_columns))
        self.owner.lib.edge_window_raw(self.owner.handle, self.handle, out.ctypes.data)
        return out
