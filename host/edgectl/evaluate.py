"""Scoring the agent's own records: accuracy against labels, latency, memory."""

import json
from pathlib import Path

import numpy as np

from edge_agent import metrics
from edge_agent.samples import SampleError, SampleParser, split_line
from edge_agent.telemetry import percentiles
from edgectl.dataset import class_index


def predictions(records):
    return [r for r in records if r.get("type") == "prediction"]


def alarms_as_predictions(records):
    """The records with a regression's alarm (0/1) as the prediction, to score as a binary task; records
    without an alarm as they are."""
    return [dict(r, prediction=r["alarm"]) if "alarm" in r else r for r in records]


def accuracy(records, lookup, task="binary", n_classes=2):
    """Scores of the agent's predictions on all windows and on the last window of each stream:
    binary F1, precision, recall; multiclass accuracy and macro-F1; regression MAE and RMSE."""
    preds = predictions(records)
    last = {}
    for r in preds:
        last[r["stream"]] = r

    def scored(rs):
        y_true = [lookup[(r["stream"], r["t"])] for r in rs]
        y_pred = [r["prediction"] for r in rs]
        if task == "multiclass":
            return metrics.multiclass(y_true, y_pred, n_classes)
        if task == "regression":
            err = np.array(y_pred, dtype=float) - np.array(y_true, dtype=float)
            return {"mae": float(np.mean(np.abs(err))) if len(err) else 0.0,
                    "rmse": float(np.sqrt(np.mean(err**2))) if len(err) else 0.0, "n": len(err)}  # fmt: skip
        return metrics.classification(y_true, y_pred)

    return {"all_windows": scored(preds), "last_window": scored(list(last.values()))}


def csv_label_lookup(path, manifest):
    """{(stream, t): label} of a CSV file with a header that holds the bundle's label column, keyed as
    the agent names windows (its own parser reads the stream and time); None without a label."""
    out = manifest.get("output", {})
    if not out.get("label"):
        return None
    inp = manifest["input"]
    parser = SampleParser(inp, imputable=set(inp["features"]), settings=[])
    lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    header = [c.strip() for c in split_line(lines[0])] if lines else []
    if out["label"] not in header:
        return None
    i = header.index(out["label"])
    classes = out.get("classes") or ["0", "1"]
    lookup = {}
    for line in lines:
        try:
            sample = parser.parse(line.strip())
        except SampleError:
            continue
        if sample is None:
            continue
        value = split_line(line)[i].strip()
        label = float(value) if out["task"] == "regression" else class_index(value, classes)
        lookup[(sample.stream, sample.time)] = label
    return lookup


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
    """Share of predictions answered by stage 1 when it is a compiled tree stage (the microsecond path);
    a cascade's other windows went to stage 2, whatever it is."""
    first = manifest["stages"][0]
    preds = predictions(records)
    if not preds or first["kind"] != "tree-lib":
        return 0.0 if preds else None
    return sum(r["stage"] == first["name"] for r in preds) / len(preds)


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
