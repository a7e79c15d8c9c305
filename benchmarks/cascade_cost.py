"""What a cascade costs and saves: the cascade, its stage 2 alone and its stage 1 alone, measured by
`edgectl bench` in one run on the same data, with the ratios to always-stage-2.

    python benchmarks/cascade_cost.py [--data DIR] [--stage1 xgboost-tiny] [--stage2 lightgbm] [--json]

The three bundles are built by the C-MAPSS recipe on FD001 (--data; synthetic data without it) through
`edgectl train`'s code, the cascade band calibrated out of fold on the training units. `edgectl bench`
then replays test_FD001.txt on a local board (RUL_FD001.txt beside it, so every bundle is scored) and
times every query end to end (parse, window features, stages) and the stages' inference alone.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import DEFAULT_DATA, load_average, load_data

from edgectl import build, cascade
from edgectl.console import emit, table
from edgectl.recipes import cmapss as recipe

COLUMNS = [
    ("bundle", "bundle", ""), ("f1", "F1", ".3f"), ("escalated", "to stage 2", ".1%"),
    ("query_mean", "query mean µs", ".1f"), ("query_p50", "p50", ".1f"), ("query_p90", "p90", ".1f"),
    ("query_p99", "p99", ".1f"), ("inference_mean", "inference mean µs", ".2f"), ("inference_p99", "p99", ".2f"),
    ("x_query_mean", "query mean / stage 2", ".2f"), ("x_inference_mean", "inference mean / stage 2", ".2f"),
]  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="C-MAPSS directory (default: ../shared/datasets/cmapss)")
    ap.add_argument("--stage1", default="xgboost-tiny")
    ap.add_argument("--stage2", default="lightgbm")
    ap.add_argument("--min-queries", type=int, default=20000, help="counted queries per bundle (edgectl bench)")
    ap.add_argument("--work", help="working directory (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        result = run(args, work)
    emit(result, args.json, render)


def run(args, work):
    before = load_average()
    data, train, test = load_data(args.data, work)
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    spec_path, csv_path = recipe.prepare(train, work / "spec")
    first = build.train_bundle(spec_path, csv_path, args.stage1, work / args.stage1, say=say)
    second = build.train_bundle(spec_path, csv_path, args.stage2, work / args.stage2, say=say)
    manifest, calibration = cascade.join(first, second, work / "cascade", say=say)
    bundles = {"cascade": work / "cascade", args.stage2: second.bundle_dir, args.stage1: first.bundle_dir}
    edgectl = str(Path(sys.executable).with_name("edgectl"))  # this environment's
    argv = [edgectl, "bench", *map(str, bundles.values()), f"local:{work / 'board'}", "--data", str(test.path),
            "--min-queries", str(args.min_queries), "--out", str(work / "bench"), "--json", "-q"]  # fmt: skip
    got = subprocess.run(argv, capture_output=True, text=True, check=True)
    results = json.loads(got.stdout)["results"]
    rows = [row(name, r) for name, r in zip(bundles, results)]
    always = next(r for r in rows if r["bundle"] == args.stage2)
    for r in rows:
        r["x_query_mean"] = r["query_mean"] / always["query_mean"]
        r["x_inference_mean"] = r["inference_mean"] / always["inference_mean"]
    return {
        "data": str(data),
        "band": [manifest["cascade"]["low"], manifest["cascade"]["high"]],
        "escalated_out_of_fold": calibration["escalation"],
        "f1_out_of_fold": {"cascade": calibration["f1"], **calibration["f1_single"]},
        "rows": rows,
        "load_average": {"before": before, "after": load_average()},
    }


def row(name, result):
    """One bundle's figures from its `edgectl bench` result."""
    query, inference = result["latency_us"]["query"], result["latency_us"]["inference"]
    stages = result["stages"]
    return {
        "bundle": name,
        "f1": (result["accuracy"] or {}).get("all_windows", {}).get("f1"),
        "escalated": sum(s["share"] or 0 for s in stages[1:]) if len(stages) > 1 else None,
        "query_mean": query["mean"],
        "query_p50": query["p50"],
        "query_p90": query["p90"],
        "query_p99": query["p99"],
        "inference_mean": inference["mean"],
        "inference_p99": inference["p99"],
    }


def render(result):
    oof = result["f1_out_of_fold"]
    return "\n".join(
        [
            f"data: {result['data']}  band [{result['band'][0]:.3f}, {result['band'][1]:.3f})  out of fold: "
            f"{result['escalated_out_of_fold']:.1%} escalated, F1 cascade {oof['cascade']:.3f}, stage 1 "
            f"{oof['stage1']:.3f}, stage 2 {oof['stage2']:.3f}",
            f"load average before {result['load_average']['before']} after {result['load_average']['after']}",
            "",
            "edgectl bench on the test split, one run (query: parse, window features, stages; inference: the stages)",
            table(result["rows"], COLUMNS),
        ]
    )


if __name__ == "__main__":
    main()
