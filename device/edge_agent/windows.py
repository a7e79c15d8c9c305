"""Per-stream sliding windows and their features, kept up to date with running sums.

One StreamWindow per stream holds the last `length` preprocessed samples in a ring
buffer plus running sums, so each new sample costs O(features), not O(window).
The host computes training features by pushing the training rows through this
same code, which is why board and host features agree bit for bit.
"""

from collections import OrderedDict

import numpy as np

FEATURE_KINDS = ("mean", "std", "slope", "last")  # the default set (what version 1 bundles have)
# Every kind a window can give, per input column. min and max scan the ring (O(length) per window,
# not per sample); the others come from running sums.
ALL_FEATURE_KINDS = ("mean", "std", "min", "max", "rms", "slope", "last")


def feature_names(columns, time_field=None, kinds=FEATURE_KINDS):
    """Names of the window features, in the order `StreamWindow.features` returns them.

    With a time field, its value at the window's last sample (e.g. the engine's
    cycle count) comes last.
    """
    names = [f"{col}_{kind}" for col in columns for kind in kinds]
    return names + [time_field] if time_field else names


class StreamWindow:
    """The window of one stream: a ring buffer and running sums of x, x^2 and i*x."""

    def __init__(self, length, stride, n_columns, with_time=False, kinds=FEATURE_KINDS):
        self.length = length
        self.kinds = tuple(kinds)
        self.with_time = with_time
        self.time = 0.0  # time field of the last sample
        self.stride = stride
        self.buffer = np.zeros((length, n_columns))
        self.count = 0  # samples seen
        self.pos = 0  # ring index of the oldest sample once full
        self.sum = np.zeros(n_columns)
        self.sum_sq = np.zeros(n_columns)
        self.sum_ix = np.zeros(n_columns)  # sum of position * x, position 0 = oldest
        mean_i = (length - 1) / 2
        self._mean_i = mean_i
        self._var_i = length * (length * length - 1) / 12.0 or 1.0  # sum of (i - mean_i)^2; 0 for length 1

    def push(self, x, time=0.0):
        """Add one sample (F,) taken at `time`; return True when a window is complete at it."""
        n = self.length
        self.time = time
        if self.count < n:
            self.buffer[self.count] = x
            self.sum += x
            self.sum_sq += x * x
            self.sum_ix += self.count * x
        else:
            old = self.buffer[self.pos]
            self.sum -= old
            self.sum_sq -= old * old
            self.sum_ix -= self.sum  # every remaining sample moves one position older
            self.buffer[self.pos] = x
            self.sum += x
            self.sum_sq += x * x
            self.sum_ix += (n - 1) * x
            self.pos = (self.pos + 1) % n
            if self.pos == 0:
                self._resum()
        self.count += 1
        return self.count >= n and (self.count - n) % self.stride == 0

    def _resum(self):
        # Recompute exactly once per window length so rounding cannot accumulate
        # over a long stream. At pos == 0 the buffer is in time order.
        self.sum = self.buffer.sum(axis=0)
        self.sum_sq = (self.buffer * self.buffer).sum(axis=0)
        self.sum_ix = np.arange(self.length) @ self.buffer

    def features(self):
        """Window features (F * len(kinds) [+ 1 time],), grouped by column."""
        n = self.length
        mean = self.sum / n
        columns = {"mean": mean, "last": self.buffer[(self.pos - 1) % n]}
        if "min" in self.kinds:
            columns["min"] = self.buffer.min(axis=0)
        if "max" in self.kinds:
            columns["max"] = self.buffer.max(axis=0)
        if "rms" in self.kinds:
            columns["rms"] = np.sqrt(np.maximum(self.sum_sq / n, 0.0))
        if "std" in self.kinds:
            columns["std"] = np.sqrt(np.maximum(self.sum_sq / n - mean * mean, 0.0))
        if "slope" in self.kinds:
            columns["slope"] = (self.sum_ix - self._mean_i * self.sum) / self._var_i
        features = np.stack([columns[kind] for kind in self.kinds], axis=1).ravel()
        return np.append(features, self.time) if self.with_time else features

    def raw(self):
        """The window's samples in time order, shape (length, F)."""
        return np.concatenate((self.buffer[self.pos :], self.buffer[: self.pos]))


class WindowSet:
    """The StreamWindow of every stream, bounded: the least recently seen is evicted."""

    def __init__(self, length, stride, n_columns, with_time=False, max_streams=1024, kinds=FEATURE_KINDS):
        self.length, self.stride, self.n_columns = length, stride, n_columns
        self.with_time = with_time
        self.kinds = kinds
        self.max_streams = max_streams
        self.streams = OrderedDict()
        self.evicted = 0

    def get(self, stream):
        window = self.streams.get(stream)
        if window is None:
            if len(self.streams) >= self.max_streams:
                self.streams.popitem(last=False)
                self.evicted += 1
            window = self.streams[stream] = StreamWindow(
                self.length, self.stride, self.n_columns, self.with_time, self.kinds
            )
        else:
            self.streams.move_to_end(stream)
        return window
