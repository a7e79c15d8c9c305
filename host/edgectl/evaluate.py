"""Scoring the agent's own records: accuracy against labels, latency, memory."""

import json

from edge_agent import metrics
from edge_agent.samples import field_text
from edge_agent.telemetry import percentiles
from edgectl.data import cmapss


def label_lookup(split, input_spec, horizon):
    """{(stream, t): label} for every row of a C-MAPSS split, keyed as the agent names windows."""
    labels = cmapss.labels(split.rul, horizon)
    stream_field = input_spec["stream_field"]
    return {(field_text(stream_field, row[0], input_spec), float(row[1])): int(y) for row, y in zip(split.rows, labels)}


def predictions(records):
    return [r for r in records if r.get("type") == "prediction"]


def accuracy(records, lookup):
    """F1, precision, recall of the agent's predictions, and of the last window of each stream."""
    preds = predictions(records)
    y_true = [lookup[(r["stream"], r["t"])] for r in preds]
    y_pred = [r["prediction"] for r in preds]
    last = {}
    for r in preds:
        last[r["stream"]] = r
    return {
        "all_windows": metrics.classification(y_true, y_pred),
        "last_window": metrics.classification(
            [lookup[(r["stream"], r["t"])] for r in last.values()], [r["prediction"] for r in last.values()]
        ),
    }


def latency(records):
    """p50/p90/p99 of each latency step over the agent's prediction records, and peak RSS."""
    preds = predictions(records)
    steps = preds[0]["latency_us"].keys() if preds else ()
    return {
        "windows": len(preds),
        "latency_us": {step: percentiles([r["latency_us"][step] for r in preds]) for step in steps},
        "mean_total_us": round(sum(r["latency_us"]["total"] for r in preds) / len(preds), 1) if preds else None,
        "rss_kb_max": max((r["rss_kb"] for r in records if "rss_kb" in r), default=None),
        "errors": sum(1 for r in records if r.get("type") == "error"),
    }


def fast_path_share(records, manifest):
    """Share of predictions answered by a compiled tree stage (the microsecond path)."""
    trees = {s["name"] for s in manifest["stages"] if s["kind"] == "tree-lib"}
    preds = predictions(records)
    return sum(r["stage"] in trees for r in preds) / len(preds) if preds else None


def scores_by_window(records):
    """{(stream, t): score} of the agent's prediction records."""
    return {(r["stream"], r["t"]): r["score"] for r in predictions(records)}


def measured(records):
    """What budgets compare against: peak RSS (KB) and p99 of the whole per-window latency (µs)."""
    lat = latency(records)
    return {"rss_kb": lat["rss_kb_max"], "p99_us": lat["latency_us"].get("total", {}).get("p99")}


def read_records(path):
    """Agent records from a JSON-lines file (as `edgectl run --out` writes them)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
