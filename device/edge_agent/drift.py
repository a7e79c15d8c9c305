"""Drift on the board: PSI of every input feature over a rolling window of samples, and a Page-Hinkley
test on the score, against reference statistics from training that the manifest carries.

State is O(features x window): a ring of the recent samples and each one's bin per
feature. Samples are binned when a check comes (those not binned yet) or as a block
comes, the counts follow them in and out, and every `check_every` samples PSI is
taken. Where the bundle has the window kernel, the binning and PSI run in C with the
same bits as the reference here. A detector reports when it enters drift and when it
clears, not on every sample.
"""

import ctypes
import math
import types

import numpy as np

from edge_agent.errors import BundleError
from edge_agent.telemetry import record

BINS = 10
PSI_THRESHOLD = 0.25  # the usual "significant shift" level
PSI_WINDOW = 2000  # samples: several engines' lives, so a fleet's mix of life stages is in it
CHECK_EVERY = 100
PH_DELTA = 0.15  # mean score shift (probability units) the Page-Hinkley test tolerates: a fleet's mix of
# life stages moves the mean score by up to ~0.1 over thousands of windows without any drift
PH_LAMBDA = 200.0  # evidence needed: e.g. a 0.55 shift for 500 windows
EPS = 1e-4  # empty bins: PSI is finite
MAX_EDGES = 100  # a bin number is a byte (int8, -1 before its first binning)


def reference(values, feature_names, scores, **settings):
    """The manifest's "drift" section: decile edges of every preprocessed input feature (n, F) and the
    proportion of training samples in each bin, the score's mean, and the detectors' settings."""
    values = np.asarray(values, dtype=np.float64)
    edges, probs = [], []
    for column in values.T:
        column = column[~np.isnan(column)]
        cut = np.unique(np.quantile(column, np.linspace(0, 1, BINS + 1)[1:-1])) if len(column) else np.zeros(0)
        counts = np.bincount(np.searchsorted(cut, column, side="right"), minlength=len(cut) + 1)
        edges.append(cut.tolist())
        probs.append((counts / max(1, counts.sum())).tolist())
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 2:  # multiclass: the board monitors the probability of the class it answers
        scores = scores.max(axis=1)
    scale = float(np.std(scores)) if settings.get("regression") else 1.0
    return {
        "features": list(feature_names),
        "edges": edges,
        "probs": probs,
        "score_mean": float(np.mean(scores)) if len(scores) else 0.0,
        **({"score_scale": scale if scale > 0 else 1.0} if settings.get("regression") else {}),
        "psi_threshold": settings.get("psi_threshold", PSI_THRESHOLD),
        "psi_window": settings.get("psi_window", PSI_WINDOW),
        "check_every": settings.get("check_every", CHECK_EVERY),
        "ph_delta": settings.get("ph_delta", PH_DELTA),
        "ph_lambda": settings.get("ph_lambda", PH_LAMBDA),
    }


def psi(expected, actual):
    """Population stability index per row of two (F, bins) proportion arrays, as a list. Summed bin by
    bin with libm's log, as the window kernel's edge_drift_check does: the two agree to the bit
    (numpy's own log may differ in the last place)."""
    out = []
    for e_row, a_row in zip(np.maximum(expected, EPS).tolist(), np.maximum(actual, EPS).tolist()):
        total = 0.0
        for e, a in zip(e_row, a_row):
            total += (a - e) * math.log(a / e)
        out.append(total)
    return out


class DriftMonitor:
    """Feed it every preprocessed sample and every answered score; it returns drift records."""

    def __init__(self, section, lib=None):
        """lib: a loaded library (ctypes.CDLL) with the window kernel, whose edge_drift_check bins a
        check's samples and takes PSI in one call (the reference's numpy binning alone cost ~100 µs a
        check on a small core) and whose edge_drift_observe takes a block's samples; None: the reference."""
        try:
            self.names = list(section["features"])
            self.window = int(section["psi_window"])
            self.every = int(section["check_every"])
            self.threshold = float(section["psi_threshold"])
            self.score_mean = float(section["score_mean"])
            self.score_scale = float(section.get("score_scale", 1.0))  # regression: values in training sd
            self.delta, self.lam = float(section["ph_delta"]), float(section["ph_lambda"])
            if self.window < 1 or self.every < 1 or self.threshold <= 0 or self.lam <= 0 or self.delta < 0:
                raise ValueError("psi_window, check_every, psi_threshold and ph_lambda must be positive")
            widths = {len(e) for e in section["edges"]}
            if len(section["edges"]) != len(self.names) or len(section["probs"]) != len(self.names):
                raise ValueError("one set of edges and proportions per feature")
            if max(widths | {0}) > MAX_EDGES:
                raise ValueError(f"at most {MAX_EDGES} edges per feature")
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"manifest: the drift section is malformed ({exc})") from None
        # Features may have fewer distinct deciles than BINS: pad them with +inf edges (empty bins).
        width = max(widths | {0})
        self.edges = np.full((len(self.names), width), np.inf)
        self.expected = np.zeros((len(self.names), width + 1))
        for i, (cut, p) in enumerate(zip(section["edges"], section["probs"])):
            self.edges[i, : len(cut)] = cut
            self.expected[i, : len(p)] = p
        # The last samples, and their bins: binned when a check comes (only those not binned yet) or as a
        # block comes, and counted as they come and go (a check costs O(check_every x features), not
        # O(window x features)). A slot's bin is -1 until its first binning.
        self.ring = np.zeros((self.window, len(self.names)))
        self.bins = np.full((self.window, len(self.names)), -1, dtype=np.int8)  # a byte: stays in a core's cache
        self.binned = 0
        self.counts = np.zeros(self.expected.size, dtype=np.int64)
        self.offsets = np.arange(len(self.names)) * self.expected.shape[1]  # feature i's bins in a flat count
        self.seen = 0
        self.expected_eps = np.maximum(self.expected, EPS)  # the kernel's drift functions read it
        self.check_psi = np.zeros(len(self.names))  # edge_drift_check's PSI
        self.block = None  # bind_block's arrays and addresses
        self.row_then = None  # the block row being answered (observe_block has counted the whole block
        # already): a Page-Hinkley record then carries the sample count as of that row
        self.drifting = set()
        self.flags = np.zeros(len(self.names), dtype=np.int8)  # the kernel's drifting, per feature: it keeps
        # them as it takes each check (several may fall in a block), so it calls for _judge only on a change
        self._c = _kernel_state(lib, self)
        self.alarms = 0  # drift records raised (not clears), for the stats records
        self.ph_up = self.ph_down = 0.0  # Page-Hinkley cumulative sums, each kept >= 0
        self.windows = 0

    def observe(self, x):
        """Add one preprocessed sample (F,); return a list of drift records (usually empty)."""
        self.ring[self.seen % self.window] = x
        self.seen += 1
        if self.seen < self.window or self.seen % self.every:
            return []
        first = max(self.binned, self.seen - self.window)
        self.binned = self.seen
        if self._c:
            changes = self._c.check(first, self.seen)  # features that start or clear: usually none
            return self._judge(self.check_psi.tolist(), self.seen) if changes else []
        rows = np.arange(first, self.seen) % self.window
        had = rows[self.bins[rows, 0] >= 0]  # slots binned before: their earlier samples' bins leave
        size = self.expected.size
        self.counts -= np.bincount((self.bins[had] + self.offsets).ravel(), minlength=size)
        self.bins[rows] = (self.ring[rows][:, :, None] >= self.edges).sum(axis=2)  # NaN: bin 0
        self.counts += np.bincount((self.bins[rows] + self.offsets).ravel(), minlength=size)
        return self._judge(psi(self.expected, self.counts.reshape(self.expected.shape) / self.window), self.seen)

    def bind_block(self, xs, status):
        """The arrays observe_block reads (the window kernel's library only): a block's preprocessed samples
        xs (float64, (N, F), rows contiguous) and their status (int8, N). Their addresses are read once:
        in the agent, reading them at every block cost more than the kernel's binning of its samples."""
        checks = xs.shape[0] // self.every + 1  # the most that fall in one block
        psi, at = np.zeros((checks, len(self.names))), np.zeros((checks, 3), dtype=np.int64)
        self.block = types.SimpleNamespace(status=status, psi=psi, checks=at, seen=0,
                                           args=(xs.ctypes.data, xs.strides[0] // 8, status.ctypes.data))  # fmt: skip
        self.block.out = (psi.ctypes.data, at.ctypes.data)

    def observe_block(self, n):
        """Add the bound block's rows 0..n-1 whose status is not negative, in order. Returns {row: check} for
        the rows whose sample ends a check; checked(check) gives a check's records. While a row is
        answered, set row_then to it."""
        block = self.block
        k = self._c.observe(self.binned, self.seen, *block.args, n, *block.out)
        block.seen = self.seen
        self.seen = self.binned = self.seen + int(np.count_nonzero(block.status[:n] >= 0))
        return {row: check for check, row in enumerate(block.checks[:k, 0].tolist())}

    def checked(self, check):
        """The drift records of check `check` of the last observe_block (usually none)."""
        _, samples, changes = self.block.checks[check].tolist()
        return self._judge(self.block.psi[check].tolist(), samples) if changes else []

    def _judge(self, values, samples):
        """The records of a check's PSI values (a list, one per feature) at `samples` samples."""
        started = {n: round(v, 4) for n, v in zip(self.names, values) if v > self.threshold and n not in self.drifting}
        # Hysteresis: a feature clears only below half the threshold, so one noisy check cannot flap.
        half = self.threshold / 2
        cleared = {n for n, v in zip(self.names, values) if v < half and n in self.drifting} if self.drifting else ()
        out = []
        if started:
            self.drifting |= started.keys()
            out.append(self._record("psi", "drift", samples, features=dict(sorted(started.items()))))
        if cleared:
            self.drifting -= cleared
            out.append(self._record("psi", "cleared", samples, features=sorted(cleared)))
        return out

    def score(self, value):
        """Add one answered score; a Page-Hinkley alarm (mean up or down by more than delta) as a record."""
        self.windows += 1
        d = (value - self.score_mean) / self.score_scale
        up, down = self.ph_up + d - self.delta, self.ph_down - d - self.delta
        self.ph_up = up if up > 0.0 else 0.0  # max(0.0, up) without the call: once a window
        self.ph_down = down if down > 0.0 else 0.0
        if self.ph_up <= self.lam and self.ph_down <= self.lam:
            return []
        direction = "up" if self.ph_up > self.lam else "down"
        self.ph_up = self.ph_down = 0.0  # start over: the next alarm needs fresh evidence
        samples = self.seen if self.row_then is None else self._samples_at(self.row_then)
        return [self._record("page-hinkley", "drift", samples, direction=direction)]

    def _samples_at(self, row):
        """The sample count as of a row of the last block (counted when an alarm needs it: rarely)."""
        return self.block.seen + int(np.count_nonzero(self.block.status[: row + 1] >= 0))

    def summary(self):
        """What the stats records carry: features in drift now, and alarms so far."""
        return {"drifting": sorted(self.drifting), "alarms": self.alarms}

    def _record(self, detector, state, samples, **fields):
        self.alarms += state == "drift"
        settings = (
            {"threshold": self.threshold, "window": self.window}
            if detector == "psi"
            else {"delta": self.delta, "lambda": self.lam}
        )
        return record("drift", detector=detector, state=state, samples=samples, windows=self.windows, **fields,
                      **settings)  # fmt: skip


class DriftState(ctypes.Structure):
    """edge_window.c's drift_t: a monitor's arrays and settings, as the kernel's drift functions read them."""

    _fields_ = (
        [(name, ctypes.c_void_p) for name in ("ring", "bins", "counts", "edges", "expected", "drifting")]
        + [(name, ctypes.c_int64) for name in ("n_features", "width", "window", "every")]
        + [("eps", ctypes.c_double), ("threshold", ctypes.c_double)]
    )


def _kernel_state(lib, monitor):
    """The monitor's C side: .check(first, seen) (edge_drift_check, PSI into monitor.check_psi) and .observe(...)
    (edge_drift_observe); None where lib has no window kernel."""
    if lib is None:
        return None
    n_features, width = monitor.edges.shape
    state = DriftState(*(a.ctypes.data for a in (monitor.ring, monitor.bins, monitor.counts, monitor.edges,
                                                  monitor.expected_eps, monitor.flags)),
                       n_features, width, monitor.window, monitor.every, EPS, monitor.threshold)  # fmt: skip
    i64, p = ctypes.c_int64, ctypes.c_void_p
    check, observe = lib.edge_drift_check, lib.edge_drift_observe
    check.restype, check.argtypes = i64, (p, i64, i64, p)
    observe.restype, observe.argtypes = i64, (p, i64, i64, p, i64, p, i64, p, p)
    at, psi_at = ctypes.addressof(state), monitor.check_psi.ctypes.data
    return types.SimpleNamespace(
        state=state,  # kept alive with the functions that point at it
        check=lambda first, seen: check(at, first, seen, psi_at),
        observe=lambda *args: observe(at, *args),
    )
