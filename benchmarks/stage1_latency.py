"""Stage-1 (tree model) latency per window, side by side in one run, on distinct rows.

Compares, for the same XGBoost model and the same test windows:
  - the agent's inference call (ctypes into the bundle's compiled library),
  - the agent's whole per-window path (parse + features + inference), from its own records,
  - xgboost predict_proba and inplace_predict on one row,
  - a plain C loop calling the same compiled edge_predict() (the floor).
Prints p50/p90/p99 and the ratio of each p50 to the C loop's.

    python benchmarks/stage1_latency.py [--data ../shared/datasets/cmapss] [--json]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_agent.runtimes.trees import TreeStage, board_arch
from edge_agent.telemetry import percentiles
from edgectl import build
from edgectl.console import table
from edgectl.data import cmapss, synthetic
from edgectl.windowing import make_windows

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets" / "cmapss"


def time_each(fn, rows, warmup=200):
    """Latency in µs of fn(row) for every row, after a warm-up on the first rows."""
    for row in rows[:warmup]:
        fn(row)
    out = np.empty(len(rows))
    for i, row in enumerate(rows):
        t0 = time.perf_counter_ns()
        fn(row)
        out[i] = (time.perf_counter_ns() - t0) / 1000
    return out


def c_loop(lib, rows, work):
    """Latencies (µs) of the plain C loop over the same library and rows."""
    exe = work / "predict_loop"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "c" / "predict_loop.c"), "-ldl"], check=True)
    np.ascontiguousarray(rows, dtype=np.float32).tofile(work / "rows.f32")
    subprocess.run(
        [str(exe), str(lib), str(work / "rows.f32"), str(len(rows)), str(rows.shape[1]), str(work / "lat.f64")],
        check=True,
    )
    return np.fromfile(work / "lat.f64", dtype=np.float64) / 1000


def agent_path(bundle_dir, test_path):
    """Per-window total latency (µs) the agent itself reported while serving the test file."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle_dir), "--input", str(test_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    return np.array([r["latency_us"]["total"] for r in recs if r["type"] == "prediction"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="C-MAPSS directory (synthetic if missing)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgectl-bench-"))
    data = Path(args.data)
    if not (data / "train_FD001.txt").is_file():
        data = synthetic.write_subset(work / "data")
    train, test = cmapss.load(data)
    print(f"building the XGBoost bundle from {data} ...", file=sys.stderr)
    result = build.build(train, "xgboost", work / "bundle")
    rows = make_windows(test.rows, result.manifest, keep_raw=False).features
    stage = TreeStage(result.bundle_dir, result.manifest["stages"][0])
    lib = result.bundle_dir / result.manifest["stages"][0]["libs"][board_arch()]
    booster = result.model.get_booster()
    print(f"timing {len(rows)} distinct windows ...", file=sys.stderr)
    runs = {
        "C loop, edge_predict()": c_loop(lib.resolve(), rows, work),
        "agent inference (ctypes)": time_each(stage.predict, rows),
        "xgboost inplace_predict": time_each(lambda r: booster.inplace_predict(r[None, :]), rows),
        "xgboost predict_proba": time_each(lambda r: result.model.predict_proba(r[None, :]), rows),
        "agent whole window (parse+features+inference)": agent_path(result.bundle_dir, test.path),
    }
    floor = np.median(runs["C loop, edge_predict()"])
    table_rows = [
        {
            "method": name,
            "n": len(lat),
            **percentiles(lat, (50, 90, 99)),
            "mean": float(lat.mean()),
            "x_c_loop": float(np.median(lat) / floor),
        }  # fmt: skip
        for name, lat in runs.items()
    ]
    if args.json:
        print(json.dumps({"data": str(data), "rows": len(rows), "results": table_rows}, indent=2))
        return
    print(f"data: {data}  windows: {len(rows)}  features: {rows.shape[1]}  (µs per window)")
    cols = [("method", "method", ""), ("n", "n", "d"), ("p50", "p50", ".2f"), ("p90", "p90", ".2f"),
            ("p99", "p99", ".2f"), ("mean", "mean", ".2f"), ("x_c_loop", "p50 / C loop", ".1f")]  # fmt: skip
    print(table(table_rows, cols))


if __name__ == "__main__":
    main()
