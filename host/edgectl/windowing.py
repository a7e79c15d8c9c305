"""Windows of a data set, computed by the agent's own preprocessing and window code.

Training, golden vectors and host-side checks all take their windows from here,
so the board sees exactly the features the model was trained on.
"""

from collections import Counter
from dataclasses import dataclass

import numpy as np

from edge_agent.pipeline import window_set
from edge_agent.samples import Sample, field_text
from edge_convert.kernel import host_kernel
from edgectl.errors import EdgectlError


@dataclass
class Windows:
    features: np.ndarray  # (n, F * kinds) float32, the tree stage's input
    raw: np.ndarray  # (n, length, F) float32, the neural stage's input (empty without keep_raw)
    stream: np.ndarray  # stream id of each window, as the agent names it
    t: np.ndarray  # time field of the window's last sample
    row: np.ndarray  # index of the row that completed the window
    samples: np.ndarray  # (rows, F) float32, every row's preprocessed features (drift reference)

    def __len__(self):
        return len(self.row)


def make_windows(rows, spec, keep_raw=True):
    """Push rows (n, all input fields, numbers) through preprocessing and per-stream windows, in row order."""
    fields = spec["input"]["fields"]
    stream_i = fields.index(spec["input"]["stream_field"])
    time_i = fields.index(spec["input"]["time_field"])
    cols = [fields.index(name) for name in spec["input"]["features"]]
    setting_names = (spec["preprocessing"].get("conditions") or {}).get("fields", [])
    setting_cols = [fields.index(name) for name in setting_names]
    samples = (
        Sample(field_text(spec["input"]["stream_field"], row[stream_i], spec["input"]), row[time_i], row[cols],
               row[setting_cols])
        for row in rows
    )  # fmt: skip
    return sample_windows(samples, spec, keep_raw)


def sample_windows(samples, spec, keep_raw=True, lib=None):
    """Push parsed samples (the agent's Sample) through the manifest's preprocessing and per-stream
    windows, in order, as the board does: a sample whose time is not after its stream's last is skipped,
    one whose time goes back to its stream's start restarts the stream. lib: the window kernel's library
    (ctypes.CDLL; default: this host's build, edge_convert.kernel), False for the Python reference."""
    win = spec["window"]
    windows = window_set(spec, 1 << 30, host_kernel() if lib is None else lib or None)
    feats, raws, streams, times, index, all_x = [], [], [], [], [], []
    n_cols = len(spec["input"]["features"])
    for i, sample in enumerate(samples):
        window = windows.get(sample.stream)
        status, x = windows.step(window, sample.values, sample.settings, sample.time)
        if status < 0:
            continue  # the agent's stale-time error: the window stays as it was
        all_x.append(x.copy())  # the kernel's buffer is reused for the next sample
        if status:
            feats.append(window.features())
            if keep_raw:
                raws.append(window.raw())
            streams.append(sample.stream)
            times.append(sample.time)
            index.append(i)
    n_feat = windows.plan.n_features
    return Windows(
        features=np.array(feats, dtype=np.float32).reshape(-1, n_feat),
        raw=np.array(raws, dtype=np.float32).reshape(-1, win["length"], n_cols) if keep_raw else np.empty(0),
        stream=np.array(streams),
        t=np.array(times),
        row=np.array(index, dtype=np.int64),
        samples=np.array(all_x, dtype=np.float32).reshape(-1, n_cols),
    )


def check_window_fits(length, row_streams, data, what):
    """Refuse a window longer than the shortest stream (a C-MAPSS engine unit) of the data, before any training:
    that stream gives no window to learn from, and a window longer than every stream leaves nothing to train on
    (XGBoost then fails deep inside with a complex-number error). row_streams: the stream of every row;
    what: where the length was set ("--window 400", "SPEC: [window] length = 400")."""
    rows = Counter(str(stream) for stream in row_streams)
    if not rows:
        return
    shortest, n = min(rows.items(), key=lambda item: item[1])  # the first of the shortest, in file order
    if length > n:
        raise EdgectlError(
            f"{what} is longer than the shortest stream of {data}: {shortest!r} has {n} samples; "
            f"choose a window of {n} samples or fewer, or leave out the streams shorter than {length}"
        )
