"""The agent's JSON records (a versioned contract) and the running stats behind them."""

import json
import math
import os
import resource
from collections import Counter, deque

import numpy as np

RECORD_VERSION = 1  # new record types and fields keep it; renaming or removing a field bumps it
_PAGE_KB = resource.getpagesize() // 1024


_statm = {}  # pid -> /proc/self/statm opened once (an open and close per read cost 8x the read); a forked
# child opens its own, since /proc/self named the parent when the parent opened it


def rss_kb():
    """Resident set size of this process in KiB (peak RSS where /proc is missing)."""
    try:
        pid = os.getpid()
        if pid not in _statm:
            _statm.clear()
            _statm[pid] = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        return int(os.pread(_statm[pid], 128, 0).split()[1]) * _PAGE_KB  # read at 0: the kernel's figures now
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def percentiles(values, qs=(50, 90, 99)):
    """{"p50": ..., ...} of a sequence of numbers, rounded to 0.1; empty -> None values."""
    if len(values) == 0:
        return {f"p{q}": None for q in qs}
    got = np.percentile(np.asarray(values, dtype=np.float64), qs)
    return {f"p{q}": round(float(v), 1) for q, v in zip(qs, got)}


def record(kind, **fields):
    """One record as a dict: every record carries its type and the record version."""
    return {"type": kind, "v": RECORD_VERSION, **fields}


encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder for every record: built once
_text = json.encoder.encode_basestring_ascii  # how encode writes a string
_BINARY = ("type", "v", "seq", "stream", "t", "prediction", "score", "stage", "latency_us", "rss_kb")
_STEPS = ("wait", "parse", "features", "inference", "total")


def encode_prediction(rec):
    """encode(rec) of a prediction record, the same text in half the time: one a window is the agent's hot
    path. A binary task's record is written by prediction_text (float's repr is what encode writes for a
    finite float); any other layout, and a time or score that is not a finite float, goes to encode. The
    latencies are Python floats by construction (nanoseconds / 1000 in Pipeline.answered)."""
    t, score, steps = rec["t"], rec["score"], rec["latency_us"]
    if (tuple(rec) != _BINARY or rec["v"] != RECORD_VERSION or tuple(steps) != _STEPS or type(t) is not float
            or type(score) is not float or type(rec["prediction"]) is not int
            or not (math.isfinite(t) and math.isfinite(score))):  # fmt: skip
        return encode(rec)
    wait, parse, features, inference, total = steps.values()
    latency = latency_text(wait, shared_steps(parse, features, inference), total)
    return prediction_text(rec["seq"], rec["stream"], t, rec["prediction"], score, rec["stage"], latency, rec["rss_kb"])


def prediction_text(seq, stream, t, prediction, score, stage, latency, rss):
    """A binary task's prediction record as encode writes it, from its fields: t and score finite floats,
    prediction 0 or 1, latency latency_text's."""
    return (
        f'{{"type":"prediction","v":{RECORD_VERSION},"seq":{seq},"stream":{_text(stream)},"t":{t!r},'
        f'"prediction":{prediction},"score":{score!r},"stage":{_text(stage)},"latency_us":{latency},"rss_kb":{rss}}}'
    )


def shared_steps(parse, features, inference):
    """The middle of latency_us's text (microsecond floats): the part a block's records have in common."""
    return f'"parse":{parse!r},"features":{features!r},"inference":{inference!r},'


def latency_text(wait, shared, total):
    """latency_us's text from its first and last steps (microsecond floats) and shared_steps' text."""
    return f'{{"wait":{wait!r},{shared}"total":{total!r}}}'


def write_record(out, rec):
    """One record as a JSON line (the caller flushes)."""
    out.write(encode(rec) + "\n")


class Stats:
    """Counts and a bounded window of recent latencies, for periodic stats records."""

    def __init__(self, keep=10000):
        self.samples = 0
        self.windows = 0
        self.errors = Counter()
        self.by_stage = Counter()
        self.total_us = deque(maxlen=keep)
        self.keep = keep
        self.stage_us = {}  # stage -> recent per-window latencies of the windows it answered

    def add_prediction(self, stage):
        self.windows += 1
        self.by_stage[stage] += 1

    def add_latency(self, stage, us):
        """A prediction's latency: its line complete in the input buffer -> its record written."""
        self.total_us.append(us)
        if stage not in self.stage_us:
            self.stage_us[stage] = deque(maxlen=self.keep)
        self.stage_us[stage].append(us)

    def add_error(self, reason):
        self.errors[reason] += 1

    def snapshot(self, **extra):
        """A stats record of everything counted so far."""
        return record(
            "stats",
            samples=self.samples,
            windows=self.windows,
            errors=sum(self.errors.values()),
            errors_by_reason=dict(self.errors),
            windows_by_stage=dict(self.by_stage),
            latency_us=percentiles(self.total_us),
            latency_us_by_stage={stage: percentiles(values) for stage, values in self.stage_us.items()},
            rss_kb=rss_kb(),
            **extra,
        )
