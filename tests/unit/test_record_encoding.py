"""encode_prediction, the agent's fast writer of prediction records, gives encode's text for every record
the pipeline builds: every task, odd stream names, non-finite and extreme numbers, a degraded answer."""

import json
import math

import numpy as np

from edge_agent.pipeline import outcome
from edge_agent.telemetry import encode, encode_prediction, record

STREAMS = ["1", "engine-7", 'a "quoted" \\ name', "tab\there", "é 😀", "", "x" * 200]
NUMBERS = [0.0, -0.0, 1.0, 1e-05, 1.5e-300, 5e-324, 1e16, 123456789.125, 0.1 + 0.2, math.nan, math.inf, -math.inf]


def _records(rng, n=4000):
    for i in range(n):
        task = ["binary", "binary", "multiclass", "regression"][i % 4]
        number = NUMBERS[i % len(NUMBERS)] if i % 3 == 0 else float(rng.normal() * 10.0 ** rng.integers(-8, 9))
        if task == "multiclass":
            out = rng.dirichlet(np.ones(3)).tolist()
            out[0] = number if i % 7 == 0 else out[0]
        else:
            out = number
        threshold = 0.5 if task == "binary" else (3.0 if i % 2 else None)
        answer = outcome(task, out, threshold, ["a", "b", "c"] if i % 5 else None)
        t = number if i % 11 == 0 else float(rng.integers(0, 10**9)) / 8
        steps = dict(
            zip(("wait", "parse", "features", "inference", "total"), (rng.integers(0, 10**7, 5) / 1000).tolist())
        )
        rec = record("prediction", seq=i + 1, stream=STREAMS[i % len(STREAMS)], t=t, **answer, stage="xgboost",
                     latency_us=steps, rss_kb=int(rng.integers(1, 10**6)))  # fmt: skip
        if i % 13 == 0:
            rec["degraded"] = "stage attention unavailable"
        yield rec


def test_the_fast_text_is_encodes_for_every_record():
    rng = np.random.default_rng(3)
    records = list(_records(rng))
    assert [encode_prediction(r) for r in records] == [encode(r) for r in records]
    # the fast layout is taken by most of them (binary, finite), and the text is JSON that reads back
    fast = [r for r in records if r.keys() == records[1].keys() and math.isfinite(r["score"]) and math.isfinite(r["t"])]
    assert len(fast) > 1000 and json.loads(encode_prediction(fast[0])) == fast[0]
