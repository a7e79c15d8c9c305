"""A million samples through `edge-agent run` at full speed: the agent's memory and open files over
time, every sample accounted for, and its throughput.

    python benchmarks/agent_load.py [--samples 1000000] [--bundle DIR --lines FILE] [--json]

The lines are a C-MAPSS style sample file (the synthetic test split, without --lines) cycled with
fresh stream ids each pass, so windows keep coming and the agent's per-stream state fills to its
bound and stays there; they go to the agent's stdin as fast as it takes them. At every stats record
(every --stats-every windows) the agent's VmRSS and open file descriptors are read from /proc/PID.
RSS slope: the least-squares line through the points after warm-up, in KiB per 100k samples.
Finished streams are flagged silent after --silent-after seconds, so that state is exercised too.
Exits 1 when a sample or window is unaccounted for (tests/integration/test_agent_load.py runs this).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from edgectl.console import emit, table
from edgectl.data import cmapss, synthetic
from edgectl.recipes import cmapss as recipe

WARMUP = 0.3  # the share of samples in which the agent's per-stream state fills to its bound
PREDICTION = b'{"type":"prediction"'  # counted, not parsed: a million json.loads would be the bottleneck


class CycledLines:
    """The lines of a whitespace-separated sample file (stream id first), cycled with fresh stream
    ids each pass, up to n samples."""

    def __init__(self, path, n):
        rows = [line.split(None, 1) for line in Path(path).read_bytes().splitlines() if line.strip()]
        self.units = [int(unit) for unit, _ in rows]
        self.rest = [rest for _, rest in rows]
        self.top = max(self.units)
        self.n = n

    def blocks(self):
        """The bytes of one pass at a time; stream ids of pass k are shifted by k * the file's largest."""
        left, k = self.n, 0
        while left > 0:
            m = min(left, len(self.rest))
            shift = k * self.top
            yield b"".join(b"%d %s\n" % (unit + shift, rest) for unit, rest in zip(self.units[:m], self.rest[:m]))
            left, k = left - m, k + 1

    def windows(self, length, stride):
        """Windows the agent must produce: per stream, one every `stride` samples once it holds `length`."""
        passes, rest = divmod(self.n, len(self.units))

        def count(units):
            return sum((c - length) // stride + 1 for c in Counter(units).values() if c >= length)

        return passes * count(self.units) + count(self.units[:rest])


def proc_usage(pid):
    """(VmRSS in KiB, open file descriptors) of a live process; None once it has gone.

    The descriptors are the fewest of three looks 1 ms apart: the agent opens /proc/self/statm for a
    moment at each stats record, and a look can land inside that; a leaked descriptor is in all three."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        fds = []
        for _ in range(3):
            fds.append(len(os.listdir(f"/proc/{pid}/fd")))
            time.sleep(0.001)
        return rss, min(fds)
    except (OSError, StopIteration):
        return None


def _feed(stdin, lines):
    try:
        for block in lines.blocks():
            stdin.write(block)
        stdin.close()
    except BrokenPipeError:  # the agent died; the reader reports it
        pass


def drive(bundle, lines, stats_every, silent_after, work):
    """Run the agent on the lines; return its record counts, final stats, /proc points and timings."""
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--stats-every", str(stats_every)]
    argv += ["--silent-after", str(silent_after)]
    err_path = Path(work) / "agent.stderr"
    counts, points, final, t_start = Counter(), [], None, None
    with open(err_path, "w") as err:
        t_spawn = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        threading.Thread(target=_feed, args=(proc.stdin, lines), daemon=True).start()
        for line in proc.stdout:
            if line.startswith(PREDICTION):
                counts["prediction"] += 1
                continue
            rec = json.loads(line)
            counts[rec["type"]] += 1
            if rec["type"] == "start":
                t_start = time.perf_counter()
                rec = {"samples": 0, "rss_kb": None}
            elif rec["type"] != "stats":
                continue
            usage = proc_usage(proc.pid)
            if usage:
                points.append({"samples": rec["samples"], "vmrss_kb": usage[0], "fds": usage[1],
                               "agent_rss_kb": rec["rss_kb"], "t_s": time.perf_counter() - t_spawn})  # fmt: skip
            if rec.get("final"):
                final = rec
        t_end = time.perf_counter()
        code = proc.wait()
    if code != 0 or final is None:
        raise SystemExit(f"edge-agent failed (exit {code}):\n{err_path.read_text()[-2000:]}")
    return {"counts": counts, "final": final, "points": points, "wall_s": t_end - t_spawn, "serving_s": t_end - t_start}


def analyse(run, lines, length, stride):
    """The figures: accounting, RSS slope after warm-up, open files, throughput."""
    after = [p for p in run["points"] if p["samples"] >= WARMUP * lines.n]
    x = np.array([p["samples"] for p in after]) / 1e5
    rss = np.array([p["vmrss_kb"] for p in after], dtype=np.float64)
    slope = float(np.polyfit(x, rss, 1)[0]) if len(after) >= 3 else None
    fds = [p["fds"] for p in run["points"]]
    final, counts = run["final"], run["counts"]
    return {
        "samples_sent": lines.n,
        "samples_counted": final["samples"],
        "windows_expected": lines.windows(length, stride),
        "predictions": counts["prediction"],
        "windows_counted": final["windows"],
        "errors": final["errors"],
        "stream_records": counts["stream"],
        "streams_held": final["streams"],
        "points": len(run["points"]),
        "points_after_warmup": len(after),
        "rss_slope_kb_per_100k": slope,
        "rss_after_warmup_kb": [int(rss.min()), int(rss.max())] if len(after) else None,
        "rss_final_kb": run["points"][-1]["vmrss_kb"],
        "fds_start": fds[0],
        "fds_range": [min(fds), max(fds)],
        "wall_s": run["wall_s"],
        "serving_s": run["serving_s"],
        "samples_per_s": final["samples"] / run["serving_s"],
        "windows_per_s": final["windows"] / run["serving_s"],
        "latency_p50_us": final["latency_us"]["p50"],
        "input": final.get("input"),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "series": run["points"],
    }


def lost(result):
    """What does not add up, in words; empty when every sample and window is accounted for."""
    problems = []
    if result["samples_counted"] != result["samples_sent"]:
        problems.append(f"the agent counted {result['samples_counted']} samples of {result['samples_sent']} sent")
    if not result["predictions"] == result["windows_counted"] == result["windows_expected"]:
        problems.append(
            f"{result['predictions']} prediction records, {result['windows_counted']} windows in the final stats, "
            f"{result['windows_expected']} expected"
        )
    if result["errors"]:
        problems.append(f"{result['errors']} error records")
    return problems


ROWS = [
    ("samples sent / counted", lambda r: f"{r['samples_sent']:,} / {r['samples_counted']:,}"),
    ("windows expected / predictions / final stats",
     lambda r: f"{r['windows_expected']:,} / {r['predictions']:,} / {r['windows_counted']:,}"),
    ("errors", lambda r: r["errors"]),
    ("silent-stream records, streams held", lambda r: f"{r['stream_records']:,}, {r['streams_held']}"),
    ("RSS slope after warm-up, KiB / 100k samples", lambda r: f"{r['rss_slope_kb_per_100k']:+.1f}"),
    ("RSS after warm-up (min, max), final, KiB", lambda r: f"{r['rss_after_warmup_kb']}, {r['rss_final_kb']}"),
    ("open files at start, (min, max)", lambda r: f"{r['fds_start']}, {r['fds_range']}"),
    ("/proc points (after warm-up)", lambda r: f"{r['points']} ({r['points_after_warmup']})"),
    ("wall s (spawn to exit), serving s", lambda r: f"{r['wall_s']:.1f}, {r['serving_s']:.1f}"),
    ("samples/s, windows/s (serving)", lambda r: f"{r['samples_per_s']:,.0f}, {r['windows_per_s']:,.0f}"),
    ("stats latency p50 µs", lambda r: r["latency_p50_us"]),
    ("input", lambda r: json.dumps(r["input"])),
    ("load average after", lambda r: r["load_average"]),
]  # fmt: skip


def render(result):
    rows = [{"measure": name, "value": str(get(result))} for name, get in ROWS]
    return table(rows, [("measure", "measure", ""), ("value", "value", "")])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--bundle", help="bundle directory (default: build an XGBoost bundle on synthetic data)")
    parser.add_argument("--lines", help="sample file for the bundle, cycled (required with --bundle)")
    parser.add_argument("--stats-every", type=int, default=5000, help="windows between stats records and probes")
    parser.add_argument("--silent-after", type=float, default=1.0, help="the agent's --silent-after, seconds")
    parser.add_argument("--json", action="store_true", help="the result, with the /proc series, as JSON")
    args = parser.parse_args()
    if bool(args.bundle) != bool(args.lines):
        parser.error("--bundle and --lines go together")
    with tempfile.TemporaryDirectory(prefix="edgectl-load-") as work:
        return _run(args, Path(work))


def _run(args, work):
    bundle, path = args.bundle, args.lines
    if not bundle:
        train, test = cmapss.load(synthetic.write_subset(work / "data", n_train=30, n_test=12, seed=3))
        print("building an XGBoost bundle ...", file=sys.stderr)
        bundle, path = recipe.build_bundle(train, "xgboost", work / "bundle").bundle_dir, test.path
    window = json.loads((Path(bundle) / "manifest.json").read_text())["window"]
    lines = CycledLines(path, args.samples)
    print(f"{args.samples:,} samples through edge-agent run ...", file=sys.stderr)
    run = drive(bundle, lines, args.stats_every, args.silent_after, work)
    result = analyse(run, lines, window["length"], window["stride"])
    emit(result, args.json, render)
    problems = lost(result)
    if problems:
        print("NOT ACCOUNTED FOR: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
