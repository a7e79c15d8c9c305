"""Drift detection on the board's own code path, in one run:
- false alarms on a stationary fleet stream (200 engines at once, over 100k windows),
- samples from a sensor shift (0.25, 0.5, 1 sigma of one sensor, halfway) to the first PSI drift record,
- windows from an "older fleet" shift (every sensor 1 sigma towards wear) to the first Page-Hinkley alarm,
- the monitor's cost per sample: Pipeline.handle with and without the drift section, p50/p90/p99.

  python benchmarks/drift_detection.py [--json]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_agent.manifest import load_bundle
from edge_agent.pipeline import Pipeline
from edge_agent.samples import format_line
from edge_agent.telemetry import percentiles
from edgectl.console import table
from edgectl.data import cmapss, synthetic
from edgectl.recipes import cmapss as recipe
from edgectl.windowing import make_windows

SEED = 3


def fleet(n_units, seed):
    return synthetic.fleet_stream(n_units, seed, engine_seed=SEED)


def replay(bundle_dir, manifest, rows, with_drift=True):
    """(drift records with the sample index they came at, per-sample latency in µs, windows after each sample)."""
    manifest = dict(manifest)
    if not with_drift:
        manifest.pop("drift")
    pipeline = Pipeline(bundle_dir, manifest)
    lines = [format_line(row, manifest["input"]) for row in rows]
    events, cost, seq = [], np.empty(len(lines)), np.empty(len(lines), dtype=int)
    for i, line in enumerate(lines):
        t0 = time.perf_counter_ns()
        pipeline.handle(line)
        cost[i] = (time.perf_counter_ns() - t0) / 1000
        seq[i] = pipeline.seq
        events += [(i, e) for e in pipeline.events]
        pipeline.events.clear()
    return events, cost, seq


def shift(rows, manifest, amounts, at):
    out = rows.copy()
    for sensor, stds in amounts.items():
        scale = manifest["preprocessing"]["scale"][manifest["input"]["features"].index(sensor)]
        out[at:, cmapss.COLUMNS.index(sensor)] += stds * scale
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        data = synthetic.write_subset(Path(work) / "data", n_train=30, n_test=12, seed=SEED)
        train, _ = cmapss.load(data)
        result = recipe.build_bundle(train, "xgboost", Path(work) / "xgboost")
        bundle_dir, manifest = result.bundle_dir, load_bundle(result.bundle_dir)
        rows = []
        stationary = fleet(760, seed=21)
        events, with_cost, _ = replay(bundle_dir, manifest, stationary)
        _, without_cost, _ = replay(bundle_dir, manifest, stationary, with_drift=False)
        rows.append({"case": f"stationary fleet, {len(stationary)} samples", "alarms": len(events), "delay": None})
        base = fleet(350, seed=22)
        at = len(base) // 2
        for stds in (0.25, 0.5, 1.0):
            events, _, _ = replay(bundle_dir, manifest, shift(base, manifest, {"s2": stds}, at))
            rows.append(_shift_row(f"s2 +{stds} sigma (PSI)", events, at, "psi", lambda i, e: i - at, "samples"))
        windows = make_windows(train.rows, manifest, keep_raw=False)
        names = manifest["features"]["names"]
        wear = {
            s: float(np.sign(np.corrcoef(windows.features[:, names.index(f"{s}_mean")], result.y)[0, 1]))
            for s in manifest["input"]["features"]
        }
        events, _, seq = replay(bundle_dir, manifest, shift(base, manifest, wear, at))
        delay = lambda i, e: e["windows"] - seq[at]  # noqa: E731
        rows.append(_shift_row("older fleet, every sensor 1 sigma", events, at, "page-hinkley", delay, "windows"))
    cost = {"with drift": percentiles(with_cost), "without": percentiles(without_cost)}
    if args.json:
        print(json.dumps({"detection": rows, "cost_us": cost}, indent=2))
        return
    print(table(rows, [("case", "case", ""), ("alarms", "alarms before shift", "d"), ("delay", "delay", "")]))
    print()
    cost_rows = [{"path": k, **v} for k, v in cost.items()]
    ratio = cost["with drift"]["p50"] / cost["without"]["p50"]
    print(table(cost_rows, [("path", "Pipeline.handle", ""), ("p50", "p50 us", ".1f"), ("p90", "p90 us", ".1f"),
                            ("p99", "p99 us", ".1f")]))  # fmt: skip
    print(f"drift monitor cost: {ratio:.2f}x the p50 per sample")


def _shift_row(case, events, at, detector, delay_of, unit):
    """One row: alarms before the shift, and the delay to the first `detector` drift record after it."""
    first = next(((i, e) for i, e in events if i >= at and e["detector"] == detector and e["state"] == "drift"), None)
    delay = f"{delay_of(*first)} {unit} ({detector}" if first else f"not detected ({detector}"
    if first and "features" in first[1]:
        delay += ": " + ", ".join(first[1]["features"])
    return {"case": case, "alarms": sum(i < at for i, _ in events), "delay": delay + ")"}


if __name__ == "__main__":
    main()
