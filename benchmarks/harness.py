"""What the latency benchmarks share: the data, timing one call per input, the agent as a
subprocess (its per-window records and its throughput), and the result tables."""

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge_agent.telemetry import percentiles
from edgectl.console import table
from edgectl.data import cmapss, synthetic

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets" / "cmapss"
WARMUP = 200
AGENT_RUN = [sys.executable, "-m", "edge_agent", "run"]  # the agent's serve command


def load_data(data_arg, work):
    """(data dir, train split, test split): C-MAPSS FD001 from data_arg, synthetic data where it is missing."""
    data = Path(data_arg)
    if not (data / "train_FD001.txt").is_file():
        print(f"{data}: no train_FD001.txt, using synthetic data", file=sys.stderr)
        data = synthetic.write_subset(Path(work) / "data")
    train, test = cmapss.load(data)
    return data, train, test


def time_each(fn, inputs, warmup=WARMUP):
    """(latency in µs of fn(x) for every x, the outputs), after a warm-up on the first inputs."""
    for x in inputs[:warmup]:
        fn(x)
    clock = time.perf_counter_ns
    lat = np.empty(len(inputs))
    out = [None] * len(inputs)
    for i, x in enumerate(inputs):
        t0 = clock()
        out[i] = fn(x)
        lat[i] = clock() - t0
    return lat / 1000, out


def measure(fn, inputs, score, warmup=WARMUP):
    """time_each, with each output turned into the positive-class score: (µs, scores)."""
    lat, out = time_each(fn, inputs, warmup)
    return lat, np.array([score(o) for o in out], dtype=np.float64)


def last_value(y):
    """The positive-class score in a model's output for one row (the last value of whatever shape)."""
    return float(np.asarray(y).reshape(-1)[-1])


def agent_run(bundle_dir, test_path, work):
    """Serve test_path through `edge-agent run` (stride 1, one window per sample once full).

    Returns {"records": prediction records, "stats": the final stats record, "wall_s":
    process start to exit, "serving_s": the start record to the final stats record, "cpu_s":
    the agent's user+system time}. Times are taken as the records arrive on the pipe; CPU
    time is what a loaded machine disturbs least.
    """
    argv = [*AGENT_RUN, "--bundle", str(bundle_dir), "--input", str(test_path)]
    err_path = Path(work) / f"agent-{Path(bundle_dir).name}.stderr"
    with open(err_path, "w") as err:
        cpu_before = _children_cpu_s()
        t_spawn = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        lines = [proc.stdout.readline()]
        t_ready = t_last = time.perf_counter()
        for line in proc.stdout:
            lines.append(line)
            t_last = time.perf_counter()
        code = proc.wait()
        t_exit = time.perf_counter()
        cpu_s = _children_cpu_s() - cpu_before
    if code != 0:
        raise SystemExit(f"edge-agent failed on {bundle_dir} (exit {code}):\n{err_path.read_text()[-2000:]}")
    records = [json.loads(line) for line in lines if line.strip()]
    finals = [r for r in records if r["type"] == "stats" and r.get("final")]
    if records[0]["type"] != "start" or not finals:
        raise SystemExit(f"edge-agent on {bundle_dir}: expected a start record first and a final stats record")
    return {
        "records": [r for r in records if r["type"] == "prediction"],
        "stats": finals[-1],
        "wall_s": t_exit - t_spawn,
        "serving_s": t_last - t_ready,
        "cpu_s": cpu_s,
    }


def _children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def agent_latencies(run):
    """{"inference": µs, "total": µs} per window, as the agent's own records report them."""
    return {step: np.array([r["latency_us"][step] for r in run["records"]]) for step in ("inference", "total")}


def throughput_row(bundle, run, n_lines):
    """Samples/s and windows/s of one agent run: over its wall time, its CPU time (both including
    start-up: imports, checksums, self-test) and its serving time."""
    stats = run["stats"]
    if stats["samples"] != n_lines:
        raise SystemExit(f"{bundle}: the agent counted {stats['samples']} samples, the file has {n_lines}")
    return {
        "bundle": bundle,
        "samples": stats["samples"],
        "windows": stats["windows"],
        "errors": stats["errors"],
        "wall_s": run["wall_s"],
        "samples_per_s_wall": stats["samples"] / run["wall_s"],
        "cpu_s": run["cpu_s"],
        "samples_per_cpu_s": stats["samples"] / run["cpu_s"],
        "serving_s": run["serving_s"],
        "samples_per_s": stats["samples"] / run["serving_s"],
        "windows_per_s": stats["windows"] / run["serving_s"],
        "stats_p50_us": stats["latency_us"]["p50"],
        "rss_kb": stats["rss_kb"],
    }


def latency_rows(stage, runs, floor, reference):
    """Table rows for one stage. runs: {method: (µs, scores or None, note)}; ratios are to runs[floor]'s p50,
    differences to runs[reference]'s scores."""
    base = float(np.median(runs[floor][0]))
    ref = runs[reference][1]
    rows = []
    for method, (lat, scores, note) in runs.items():
        row = {"stage": stage, "method": method, "n": None, "p50": None, "p90": None, "p99": None, "mean": None}
        if lat is not None and len(lat):
            row.update(n=len(lat), **percentiles(lat), mean=float(lat.mean()), x_floor=float(np.median(lat) / base))
        if scores is not None and ref is not None:
            row["max_diff"] = float(np.max(np.abs(scores - ref[: len(scores)])))
        row["floor"] = method == floor
        row["note"] = note
        rows.append(row)
    return rows


def load_average():
    return [round(v, 2) for v in os.getloadavg()]


LATENCY_COLUMNS = [
    ("stage", "stage", ""), ("method", "method", ""), ("n", "n", "d"), ("p50", "p50", ".1f"),
    ("p90", "p90", ".1f"), ("p99", "p99", ".1f"), ("mean", "mean", ".1f"), ("x_floor", "p50/floor", ".2f"),
    ("max_diff", "max |diff|", ".1e"), ("note", "note", ""),
]  # fmt: skip
THROUGHPUT_COLUMNS = [
    ("bundle", "bundle", ""), ("samples", "samples", "d"), ("windows", "windows", "d"), ("wall_s", "wall s", ".2f"),
    ("samples_per_s_wall", "samples/s (wall)", ",.0f"), ("cpu_s", "CPU s", ".2f"),
    ("samples_per_cpu_s", "samples/CPU s", ",.0f"), ("serving_s", "serving s", ".2f"),
    ("samples_per_s", "samples/s (serving)", ",.0f"), ("windows_per_s", "windows/s (serving)", ",.0f"),
    ("stats_p50_us", "stats p50 µs", ".1f"), ("rss_kb", "RSS KiB", "d"),
]  # fmt: skip


def render(result):
    """The printed report: one latency table for every stage, then agent throughput."""
    head = (
        f"data: {result['data']}  windows: {result['windows']}  features: {result['features']}  "
        f"load average before {result['load_average']['before']} after {result['load_average']['after']}"
    )
    floors = "; ".join(f"stage {r['stage']}: {r['method']}" for r in result["latency"] if r["floor"])
    return "\n".join(
        [
            head,
            "",
            "Per-window latency, µs (one call per distinct window, in order)",
            table(result["latency"], LATENCY_COLUMNS),
            f"floor: {floors}",
            "max |diff|: largest score difference from the stage's reference "
            + "; ".join(f"(stage {s}: {m})" for s, m in result["references"].items()),
            "",
            "Agent throughput end to end (edge-agent run --input FILE, stride 1; serving: start record to final stats)",
            table(result["throughput"], THROUGHPUT_COLUMNS),
        ]
    )
