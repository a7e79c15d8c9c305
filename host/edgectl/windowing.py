"""Windows of a data set, computed by the agent's own preprocessing and window code.

Training, golden vectors and host-side checks all take their windows from here,
so the board sees exactly the features the model was trained on.
"""

from dataclasses import dataclass

import numpy as np

from edge_agent.pipeline import window_set
from edge_agent.preprocess import Preprocessor
from edge_agent.samples import field_text


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
    """Push rows (n, all input fields) through preprocessing and per-stream windows, in row order."""
    fields = spec["input"]["fields"]
    stream_i = fields.index(spec["input"]["stream_field"])
    time_i = fields.index(spec["input"]["time_field"])
    cols = [fields.index(name) for name in spec["input"]["features"]]
    prep = Preprocessor(spec["preprocessing"], spec["input"]["features"])
    setting_cols = [fields.index(name) for name in prep.setting_fields]
    win = spec["window"]
    windows = window_set(spec, max_streams=1 << 30)
    feats, raws, streams, times, index, samples = [], [], [], [], [], []
    for i, row in enumerate(rows):
        stream = field_text(spec["input"]["stream_field"], row[stream_i], spec["input"])
        window = windows.get(stream)
        x = prep.apply(row[cols], row[setting_cols])
        samples.append(x)
        if window.push(x, row[time_i]):
            feats.append(window.features())
            if keep_raw:
                raws.append(window.raw())
            streams.append(stream)
            times.append(row[time_i])
            index.append(i)
    n_feat = len(spec["features"]["names"])
    return Windows(
        features=np.array(feats, dtype=np.float32).reshape(-1, n_feat),
        raw=np.array(raws, dtype=np.float32).reshape(-1, win["length"], len(cols)) if keep_raw else np.empty(0),
        stream=np.array(streams),
        t=np.array(times),
        row=np.array(index, dtype=np.int64),
        samples=np.array(samples, dtype=np.float32).reshape(-1, len(cols)),
    )
