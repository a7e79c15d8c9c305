"""`edge-agent bench`: measure a bundle on this board, MLPerf SingleStream style.

Rules: the samples of a file go through the agent's own Pipeline in order; a
query is one window (the sample that completes it), timed end to end: from its line in
memory to its record encoded and written (to /dev/null: what the agent pays per record). The first
`warmup` queries are not counted. Then the run goes on until it has at least
`min_queries` counted queries AND `min_duration` seconds AND one whole pass over
the data (so every window of the file has a prediction for the host to score);
when the data runs out first it is replayed from the start with fresh stream
state, and the result says how many passes it took. One JSON object out.
"""

import json
import os
import resource
import sys
import time
from array import array
from collections import Counter

import numpy as np

from edge_agent import __version__, boardinfo
from edge_agent.agent import start
from edge_agent.bench_stats import early_stopping, summarize
from edge_agent.errors import AgentError
from edge_agent.pipeline import Pipeline
from edge_agent.samples import SampleError
from edge_agent.signature import DEFAULT_TRUSTED_KEYS
from edge_agent.sources import CHUNK, LineSplitter
from edge_agent.telemetry import encode, rss_kb

BENCH_FORMAT = "edge-agent-bench"
BENCH_VERSION = 1
DEFAULT_WARMUP = 100
# MLPerf's early-stopping p90 for 4096 queries sits near the true p91: a stable p90.
DEFAULT_MIN_QUERIES = 4096
DEFAULT_MIN_DURATION_S = 10.0
MONITOR_EVERY_NS = 1_000_000_000  # temperature and RSS samples during the run, and progress lines
CDF_POINTS = [*range(0, 100), 99.5, 99.9, 99.99, 100]
TIMELINE_BINS = 150

_IMPORTED = time.monotonic()  # the fallback "process start" where /proc/self/stat is missing


def bench(
    bundle_dir,
    input_path,
    warmup=DEFAULT_WARMUP,
    min_queries=DEFAULT_MIN_QUERIES,
    min_duration=DEFAULT_MIN_DURATION_S,
    say=None,
    trusted_keys=DEFAULT_TRUSTED_KEYS,
):
    """Run the bench; return the result as a dict (see the README's "edge-agent bench")."""
    say = say or (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    if not os.path.isfile(input_path):
        raise AgentError(f"cannot open input {input_path}: no such file")
    load_start = time.monotonic()
    pipeline, info = start(bundle_dir, trusted_keys)  # the same checks as serving: checksums, signature, self-test
    init = _init_time(time.monotonic() - load_start)
    ready_rss = rss_kb()
    before = boardinfo.thermal()
    say(
        f"{info['bundle_id']} ready in {init['process_to_ready_ms']:.0f} ms; {warmup} warm-up queries, then "
        f">= {min_queries} queries and >= {min_duration:g} s"
    )
    run = _Run(pipeline, bundle_dir, input_path, warmup, min_queries, min_duration, say)
    run.go()
    # Read before the summaries and the board identity below allocate: the agent's own peak.
    peak_kb, peak_source = peak_rss()
    memory = {
        "peak_rss_kb": peak_kb,
        "peak_source": peak_source,
        "steady_rss_kb": run.steady_rss_kb(),
        "ready_rss_kb": ready_rss,
    }
    after = boardinfo.thermal()
    return {
        "format": BENCH_FORMAT,
        "version": BENCH_VERSION,
        "bundle_id": info["bundle_id"],
        "agent_version": __version__,
        "rules": run.rules(),
        **run.latency(),
        "init": {**init, "self_test": info["self_test"]},
        "first_query_us": round(run.q.total_ns[0] / 1000, 1),
        "memory": memory,
        "throughput": run.throughput(),
        "timeline": run.timeline(),
        "monitor": run.monitor,
        "errors": dict(run.errors),
        "drift": run.drift,
        "degraded": info.get("degraded"),
        "predictions": run.preds.columns(),
        "board": boardinfo.identity(),
        "thermal": {"before": before, "after": after},
    }


def process_age_s():
    """Seconds since this process started (from /proc/self/stat), or None without /proc."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)": field 3 onwards
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, clock ticks since boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def peak_rss():
    """(peak RSS in KiB, where it was read).

    VmHWM first: ru_maxrss survives fork and exec, so a child of a big process (the
    host's edgectl on a local board) would report its parent's peak as its own.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss"


def _init_time(load_s):
    age = process_age_s()
    if age is not None:
        clock, resolution = "/proc/self/stat", 1000 / os.sysconf("SC_CLK_TCK")
    else:
        age, clock, resolution = time.monotonic() - _IMPORTED, "agent import (no /proc/self/stat)", 0.001
    return {
        "process_to_ready_ms": round(age * 1000, 1),
        "clock": clock,
        "resolution_ms": resolution,
        "load_ms": round(load_s * 1000, 1),  # checksums, stage loading and self-test
    }


def read_lines(path):
    """(number, text, error) for each line of a file, as the agent's sources split them."""
    splitter = LineSplitter()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            yield from splitter.feed(chunk)
    yield from splitter.finish()


class _Queries:
    """Per-query measurements in flat arrays: the bench must not inflate the RSS it reports."""

    def __init__(self):
        self.end_ns = array("q")  # since the run started
        self.total_ns = array("q")
        self.steps = {step: array("d") for step in ("parse", "features", "inference")}
        self.stage = array("B")

    def add(self, rec, total_ns, end_ns, stage_index):
        self.end_ns.append(end_ns)
        self.total_ns.append(total_ns)
        for step, values in self.steps.items():
            values.append(rec["latency_us"][step])
        self.stage.append(stage_index)

    def __len__(self):
        return len(self.total_ns)


class _Predictions:
    """Every window of the first pass (stream, t, score, prediction, stage), as columns."""

    def __init__(self, task="binary"):
        self.stream, self.t, self.score = [], array("d"), array("d")
        # a regression's prediction is its value; a class index fits 16 bits
        self.prediction, self.stage = array("d" if task == "regression" else "H"), array("B")

    def add(self, rec, stage_index):
        self.stream.append(rec["stream"])
        self.t.append(rec["t"])
        self.score.append(rec["score"])
        self.prediction.append(rec["prediction"])
        self.stage.append(stage_index)

    def columns(self):
        return {
            "stream": self.stream,
            "t": self.t.tolist(),
            "score": self.score.tolist(),
            "prediction": self.prediction.tolist(),
            "stage": self.stage.tolist(),
        }


class _Run:
    """The query loop and what it measured."""

    def __init__(self, pipeline, bundle_dir, input_path, warmup, min_queries, min_duration, say):
        self.pipeline, self.bundle_dir, self.input_path = pipeline, bundle_dir, input_path
        self.warmup, self.min_queries, self.min_duration_ns = warmup, min_queries, int(min_duration * 1e9)
        self.say = say
        self.stage_names = [s["name"] for s in pipeline.specs]
        self.q, self.preds = _Queries(), _Predictions(pipeline.task)
        self.errors = Counter()
        self.drift = []  # drift records of the first pass
        self.passes = 0
        self.samples = 0
        self.samples_at_measure = 0  # samples read when warm-up ended
        self.windows_per_pass = None
        self.monitor = {"t_s": [], "temp_c": [], "rss_kb": []}
        self.sink = os.open(os.devnull, os.O_WRONLY)  # where each query's record is written

    def go(self):
        clock = time.perf_counter_ns
        self.start_ns = clock()
        next_monitor = self.start_ns
        while True:
            self.passes += 1
            if self.passes > 1:
                self.say(f"data replayed from the start (pass {self.passes}) with fresh stream state")
                self.pipeline = Pipeline(self.bundle_dir, self.pipeline.manifest, stages=self.pipeline.stages)
            windows = 0
            for _number, text, error in read_lines(self.input_path):
                if error is None and not text:
                    continue
                self.samples += 1
                if error is not None:
                    self.errors[error.reason] += 1
                    continue
                t0 = clock()
                try:
                    rec = self.pipeline.handle(text, arrived_ns=t0)
                except SampleError as exc:
                    self.errors[exc.reason] += 1
                    continue
                if rec is not None:  # a query ends with its record written, as `run` writes it
                    os.write(self.sink, (encode(rec) + "\n").encode())
                t1 = clock()
                self._keep_drift()
                if rec is None:
                    continue
                windows += 1
                self._add(rec, t1 - t0, t1 - self.start_ns)
                if t1 >= next_monitor:
                    next_monitor = t1 + MONITOR_EVERY_NS
                    self._sample(t1)
                if self.passes > 1 and self.done():
                    return
            if windows == 0:
                raise AgentError(f"{self.input_path}: no line completes a window; nothing to measure")
            if self.passes == 1:
                self.windows_per_pass = windows
            if self.done():
                return

    def _keep_drift(self):
        """The drift records of the first pass, as `run` would write them serving the file once; later passes
        replay the same data from fresh state and would only repeat them (and grow without bound)."""
        if self.pipeline.events:
            if self.passes == 1:
                self.drift += [r for r in self.pipeline.events if r["type"] == "drift"]
            self.pipeline.events.clear()

    def _add(self, rec, total_ns, end_ns):
        stage = self.stage_names.index(rec["stage"])
        self.q.add(rec, total_ns, end_ns, stage)
        if self.passes == 1:
            self.preds.add(rec, stage)
        if len(self.q) == self.warmup:
            self.samples_at_measure = self.samples

    def _sample(self, now_ns):
        t_s = (now_ns - self.start_ns) / 1e9
        self.monitor["t_s"].append(round(t_s, 3))
        self.monitor["temp_c"].append(boardinfo.temperature_c())
        self.monitor["rss_kb"].append(rss_kb())
        if len(self.q) > 1:
            self.say(f"{len(self.q)} queries in {t_s:.1f} s")

    def measured_ns(self):
        """Time from the end of warm-up to the last query."""
        n = len(self.q)
        if n <= self.warmup:
            return 0
        return self.q.end_ns[-1] - (self.q.end_ns[self.warmup - 1] if self.warmup else 0)

    def done(self):
        return len(self.q) - self.warmup >= self.min_queries and self.measured_ns() >= self.min_duration_ns

    def rules(self):
        return {
            "scenario": "single-stream: one window per query, in the file's order",
            "warmup": self.warmup,
            "min_queries": self.min_queries,
            "min_duration_s": self.min_duration_ns / 1e9,
            "queries": max(0, len(self.q) - self.warmup),
            "duration_s": round(self.measured_ns() / 1e9, 3),
            "passes": self.passes,
            "cycled": self.passes > 1,
            "windows_per_pass": self.windows_per_pass,
        }

    def latency(self):
        """Latency summaries of the counted queries: overall, per step, per answering stage; CDF; early stopping."""
        w = self.warmup
        total = np.frombuffer(self.q.total_ns, dtype=np.int64)[w:] / 1000.0
        stage = np.frombuffer(self.q.stage, dtype=np.uint8)[w:]
        steps = {name: summarize(np.frombuffer(v, dtype=np.float64)[w:]) for name, v in self.q.steps.items()}
        stages = []
        for i, name in enumerate(self.stage_names):
            mine = total[stage == i]
            share = len(mine) / len(total) if len(total) else None
            stages.append({"name": name, "windows": len(mine), "share": share, "latency_us": summarize(mine)})
        ordered = np.sort(total)
        cdf = np.percentile(ordered, CDF_POINTS).round(1).tolist() if len(ordered) else []
        return {
            "latency_us": {"query": summarize(total), **steps},
            "early_stopping": early_stopping(ordered),
            "stages": stages,
            "cdf": [[p, v] for p, v in zip(CDF_POINTS, cdf)],
        }

    def throughput(self):
        seconds = self.measured_ns() / 1e9
        if not seconds:
            return {"queries_per_s": None, "samples_per_s": None}
        return {
            "queries_per_s": round((len(self.q) - self.warmup) / seconds, 1),
            "samples_per_s": round((self.samples - self.samples_at_measure) / seconds, 1),
        }

    def steady_rss_kb(self):
        """Median RSS sampled after warm-up (the RSS now when the run was too short to sample)."""
        warm_end_s = self.q.end_ns[self.warmup - 1] / 1e9 if 0 < self.warmup <= len(self.q) else 0.0
        after = [kb for t, kb in zip(self.monitor["t_s"], self.monitor["rss_kb"]) if t >= warm_end_s]
        return int(np.median(after)) if after else rss_kb()

    def timeline(self):
        """Latency over time in bins of consecutive queries: warm-up bins, then up to TIMELINE_BINS more."""
        ends = np.frombuffer(self.q.end_ns, dtype=np.int64) / 1e9
        total = np.frombuffer(self.q.total_ns, dtype=np.int64) / 1000.0
        w = min(self.warmup, len(total))
        bins = []
        for lo, hi, warm in ((0, w, True), (w, len(total), False)):
            edges = np.unique(np.linspace(lo, hi, min(TIMELINE_BINS, hi - lo) + 1).astype(int))
            for a, b in zip(edges[:-1], edges[1:]):
                chunk = total[a:b]
                bins.append(
                    {
                        "t_s": round(float(ends[b - 1]), 4),
                        "queries": int(b - a),
                        "p50_us": round(float(np.median(chunk)), 1),
                        "max_us": round(float(chunk.max()), 1),
                        "warmup": warm,
                    }
                )
        return bins


def main(args):
    """The CLI's `bench`: print the result as one JSON line."""
    result = bench(args.bundle, args.input, args.warmup, args.min_queries, args.min_duration, None, args.trusted_keys)
    print(json.dumps(result, separators=(",", ":")))
    return 0
