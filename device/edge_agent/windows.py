"""Per-stream windows and history features, kept up to date in constant time per sample.

Each stream keeps a ring of its last samples and a few running statistics: sums over
the last K samples, a whole-history mean and OLS slope (Welford's updates), exponentially
weighted means, the mean of its first N samples, the running maximum of a rolling mean.
A sample costs O(channels) per statistic, never O(window) (sums over K are recomputed
from the ring once every K samples so rounding cannot accumulate). The host computes
training features by pushing the training rows through this same code, which is why
board and host features agree bit for bit.

Feature kinds (per channel):
  mean std min max rms slope last   over the window (its `length` samples)
  mean:K std:K slope:K              over the stream's last min(t, K) samples
  mean:all slope:all                over the stream's whole history (slope per sample)
  ewm:S                             exponentially weighted mean, span S (alpha = 2 / (S + 1))
  base:N                            the mean of the stream's first N samples (fewer until N)
  peak:K                            the running maximum of mean:K over the history
  A-B                               kind A minus kind B, e.g. mean-base:20
Channels are the input columns, then derived channels: weighted sums of the preprocessed
input columns (a health index), each with kinds of its own.
"""

from collections import OrderedDict

import numpy as np

from edge_agent.lru import touch

FEATURE_KINDS = ("mean", "std", "slope", "last")  # the default set (what version 1 bundles have)
# Kinds over the window. min and max scan the window (O(length) per window, not per sample).
WINDOW_KINDS = ("mean", "std", "min", "max", "rms", "slope", "last")
MAX_SPAN = 65536
_ROLLING = ("mean", "std", "slope")


def parse_kind(kind):
    """A feature kind as a tuple: ("window", name), ("rolling", name, K), ("all", name), ("ewm", S),
    ("base", N), ("peak", K) or ("diff", a, b); ValueError saying what is allowed."""
    if not isinstance(kind, str) or len(kind) > 64:
        raise ValueError(f"feature kind {kind!r} is not a short string")
    if "-" in kind:
        a, _, b = kind.partition("-")
        first, second = parse_kind(a), parse_kind(b)
        if "diff" in (first[0], second[0]):
            raise ValueError(f"feature kind {kind!r}: a difference of two kinds, not of three")
        return ("diff", first, second)
    if kind in WINDOW_KINDS:
        return ("window", kind)
    name, _, arg = kind.partition(":")
    if name in ("mean", "slope") and arg == "all":
        return ("all", name)
    if name in (*_ROLLING, "ewm", "base", "peak") and arg.isdigit() and 1 <= int(arg) <= MAX_SPAN:
        n = int(arg)
        return ("rolling", name, n) if name in _ROLLING else (name, n)
    raise ValueError(f"unknown feature kind {kind!r}; kinds: {KINDS_TEXT}")


# Every kind parse_kind takes, as people read it: its error and edgectl's help say it.
KINDS_TEXT = (
    f"{', '.join(WINDOW_KINDS)}, mean:K, std:K, slope:K, mean:all, slope:all, ewm:S, base:N, peak:K "
    f"(K, S, N from 1 to {MAX_SPAN}) and A-B of two of them"
)


def feature_names(columns, time_field=None, kinds=FEATURE_KINDS, channels=()):
    """Names of the features, in the order `StreamWindow.features` returns them: per input column its
    kinds, then per derived channel its kinds, then the time field's value at the window's end."""
    names = [f"{col}_{kind}" for col in columns for kind in kinds]
    names += [f"{ch['name']}_{kind}" for ch in channels for kind in ch["kinds"]]
    return names + [time_field] if time_field else names


class Plan:
    """What every stream of one manifest computes: the channels, the statistics the kinds need."""

    def __init__(self, length, stride, n_columns, with_time=False, kinds=FEATURE_KINDS, channels=()):
        self.length, self.stride, self.n_columns, self.with_time = length, stride, n_columns, with_time
        self.groups = [(np.arange(n_columns), [parse_kind(k) for k in kinds])]
        self.weights = np.zeros((len(channels), n_columns))
        for i, ch in enumerate(channels):
            self.weights[i] = ch["weights"]
            self.groups.append((np.array([n_columns + i]), [parse_kind(k) for k in ch["kinds"]]))
        self.n_channels = n_columns + len(channels)
        parts = [p for _, kinds in self.groups for kind in kinds for p in _parts(kind)]
        self.spans = sorted(
            {length} | {p[2] for p in parts if p[0] == "rolling"} | {p[1] for p in parts if p[0] == "peak"}
        )
        self.ring = max(self.spans)
        self.ewm = sorted({p[1] for p in parts if p[0] == "ewm"})
        self.base = sorted({p[1] for p in parts if p[0] == "base"})
        self.peak = sorted({p[1] for p in parts if p[0] == "peak"})
        self.expanding = any(p[0] == "all" for p in parts)
        self.n_features = sum(len(idx) * len(kinds) for idx, kinds in self.groups) + (1 if with_time else 0)


def _parts(kind):
    return [*_parts(kind[1]), *_parts(kind[2])] if kind[0] == "diff" else [kind]


class StreamWindow:
    """The window and history of one stream."""

    def __init__(self, plan):
        self.plan = plan
        self.length, self.stride = plan.length, plan.stride
        self.reset()

    def reset(self):
        """Forget everything: the stream starts over (a new run, or an evicted stream come back)."""
        c = self.plan.n_channels
        self.time = 0.0  # time field of the last sample
        self.first_time = None  # time field of the run's first sample
        self.count = 0  # samples seen in this run
        self.ring = np.zeros((self.plan.ring, c))
        self.sums = {k: [np.zeros(c), np.zeros(c), np.zeros(c)] for k in self.plan.spans}  # x, x^2, i*x
        self.ewm = {s: np.zeros(c) for s in self.plan.ewm}
        self.base = {n: np.zeros(c) for n in self.plan.base}
        self.peak = {k: np.full(c, -np.inf) for k in self.plan.peak}
        self.mean_i, self.mean_x, self.co_ix, self.m2_i = 0.0, np.zeros(c), np.zeros(c), 0.0

    def push(self, x, time=0.0):
        """Add one preprocessed sample (input columns,) taken at `time`; return True when a window is
        complete at it."""
        plan = self.plan
        if self.first_time is None:
            self.first_time = time
        self.time = time
        if len(plan.weights):  # a sum per row, not `@`: BLAS sums in an order the C kernel cannot follow
            x = np.concatenate((x, (plan.weights * x).sum(axis=1)))
        t = self.count  # samples before this one
        for k, (s, s2, six) in self.sums.items():
            if t < k:
                s += x
                s2 += x * x
                six += t * x
            else:
                old = self.ring[(t - k) % plan.ring]
                s -= old
                s2 -= old * old
                six -= s  # every remaining sample moves one position older
                s += x
                s2 += x * x
                six += (k - 1) * x
        self.ring[t % plan.ring] = x
        self.count = t + 1
        for k, sums in self.sums.items():
            if self.count > k and self.count % k == 0:
                self._resum(k, sums)
        for span, e in self.ewm.items():
            e += (x - e) * (2.0 / (span + 1)) if t else x
        for n, b in self.base.items():
            if t < n:
                b += x
        for k, p in self.peak.items():
            np.maximum(p, self.sums[k][0] / min(self.count, k), out=p)
        if plan.expanding:  # Welford: the mean of x and of the sample index, and their co-moment
            d_i = t - self.mean_i
            self.mean_i += d_i / self.count
            self.mean_x += (x - self.mean_x) / self.count
            self.co_ix += d_i * (x - self.mean_x)
            self.m2_i += d_i * (t - self.mean_i)
        n = self.length
        return self.count >= n and (self.count - n) % self.stride == 0

    def _last(self, k):
        """The last k samples in time order, shape (k, channels)."""
        end = self.count % self.plan.ring
        if k == self.plan.ring and self.count >= k:
            return np.concatenate((self.ring[end:], self.ring[:end]))
        return self.ring[(np.arange(self.count - k, self.count)) % self.plan.ring]

    def _resum(self, k, sums):
        # Once every k samples, exactly: rounding cannot accumulate over a long stream.
        last = self._last(k)
        sums[0][:] = last.sum(axis=0)
        sums[1][:] = (last * last).sum(axis=0)
        sums[2][:] = (np.arange(k)[:, None] * last).sum(axis=0)  # row by row, as the C kernel sums

    def features(self):
        """The features (plan.n_features,): per channel group, grouped by channel, then the time."""
        cache = {}
        parts = []
        for idx, kinds in self.plan.groups:
            values = [self._value(kind, cache)[idx] for kind in kinds]
            parts.append(np.stack(values, axis=1).ravel())
        if self.plan.with_time:
            parts.append(np.array([self.time]))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _value(self, kind, cache):
        key = kind
        if key in cache:
            return cache[key]
        tag = kind[0]
        if tag == "diff":
            value = self._value(kind[1], cache) - self._value(kind[2], cache)
        elif tag == "window":
            value = self._window_value(kind[1])
        elif tag == "rolling":
            value = self._rolling(kind[1], kind[2])
        elif tag == "all":
            value = self.mean_x if kind[1] == "mean" else self.co_ix / self.m2_i if self.m2_i else 0.0 * self.mean_x
        elif tag == "ewm":
            value = self.ewm[kind[1]]
        elif tag == "base":
            value = self.base[kind[1]] / min(self.count, kind[1])
        else:  # peak
            value = self.peak[kind[1]]
        cache[key] = value
        return value

    def _window_value(self, name):
        n = self.length
        if name == "last":
            return self.ring[(self.count - 1) % self.plan.ring]
        if name in ("min", "max"):
            last = self._last(n)
            return last.min(axis=0) if name == "min" else last.max(axis=0)
        s, s2, _ = self.sums[n]
        if name == "rms":
            return np.sqrt(np.maximum(s2 / n, 0.0))
        return self._rolling(name, n)

    def _rolling(self, name, k):
        n = min(self.count, k)
        s, s2, six = self.sums[k]
        mean = s / n
        if name == "mean":
            return mean
        if name == "std":
            return np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
        var_i = n * (n * n - 1) / 12.0 or 1.0  # sum of (i - mean_i)^2; 0 for one sample
        return (six - (n - 1) / 2 * s) / var_i

    def raw(self):
        """The window's samples of the input columns in time order, shape (length, columns)."""
        return self._last(self.length)[:, : self.plan.n_columns]

    def enter(self, time):
        """Whether a sample at `time` may be pushed. A time at or before the run's first sample, once the
        stream has two, starts a new run: the stream starts over. A time not after the previous sample
        (but after the first) is stale: False, and nothing changes."""
        if not self.count or time > self.time:
            return True
        if self.count > 1 and time <= self.first_time:
            self.reset()
            return True
        return False


class WindowSet:
    """The StreamWindow of every stream, bounded: the least recently seen is evicted (with its history).
    prep: the preprocess.Preprocessor that `push` applies to a sample's raw values."""

    def __init__(self, plan, prep, max_streams=1024):
        self.plan, self.prep = plan, prep
        self.length, self.stride, self.n_columns = plan.length, plan.stride, plan.n_columns
        self.max_streams = max_streams
        self.streams = OrderedDict()
        self.evicted = 0

    def get(self, stream):
        window, gone = touch(self.streams, stream, self._new, self.max_streams)
        self.evicted += gone
        return window

    def _new(self):
        return StreamWindow(self.plan)

    def step(self, window, values, settings, time):
        """Enter the sample's time, preprocess its raw values and push them into its window: (-1 stale and
        nothing changed, or 0 pushed, or 1 a window is complete; the preprocessed values, None when stale)."""
        if not window.enter(time):
            return -1, None
        x = self.prep.apply(values, settings)
        return int(window.push(x, time)), x
