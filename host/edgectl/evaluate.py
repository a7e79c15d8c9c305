"""Scoring the agent's own records: accuracy against labels, latency, memory, bad lines, drift."""

import json
from collections import Counter
from pathlib import Path

import numpy as np

from edge_agent import metrics
from edge_agent.samples import SampleError, SampleParser, split_line
from edge_agent.telemetry import percentiles
from edgectl.console import counts_text
from edgectl.dataset import class_index
from edgectl.errors import EdgectlError


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


def service_us(rec):
    """A window's own time: its parse start -> its record built (`total` less the `wait` behind the lines
    read with it; records before the wait was measured have none)."""
    lat = rec["latency_us"]
    return lat["total"] - lat.get("wait", 0.0)


def latency(records):
    """p50/p90/p99 of each latency step over the agent's prediction records (and `service`: service_us),
    and peak RSS."""
    preds = predictions(records)
    steps = preds[0]["latency_us"].keys() if preds else ()
    per_step = {step: percentiles([r["latency_us"][step] for r in preds]) for step in steps}
    if preds:
        per_step["service"] = percentiles([service_us(r) for r in preds])
    return {
        "windows": len(preds),
        "latency_us": per_step,
        "mean_total_us": round(sum(r["latency_us"]["total"] for r in preds) / len(preds), 1) if preds else None,
        "mean_service_us": round(sum(service_us(r) for r in preds) / len(preds), 1) if preds else None,
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
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise EdgectlError(
                    f"{path}: line {number} is not a JSON record; give the file `edgectl run --out` wrote"
                ) from None
    return records


def check_records_source(records, path, bundle_id, profile):
    """Refuse records of another bundle, or measured on a board of another arch than the profile's: their
    latency and memory say nothing about this bundle on that board. Every start record is checked (a file
    can hold several runs)."""
    starts = [r for r in records if r.get("type") == "start"]
    if not starts:
        raise EdgectlError(
            f"{path}: no start record, so nothing says which bundle and board these records are from; "
            "give the whole file `edgectl run TARGET --input FILE --out RECORDS` wrote"
        )
    for start in starts:
        if start.get("bundle_id") != bundle_id:
            raise EdgectlError(
                f"{path}: records of bundle {start.get('bundle_id')}, not of {bundle_id}; measure this bundle: "
                f"edgectl deploy, then edgectl run TARGET --input FILE --out RECORDS"
            )
        if start.get("arch") != profile["arch"]:
            raise EdgectlError(
                f"{path}: records measured on a board of arch {start.get('arch')}, but profile {profile['name']} "
                f"is for arch {profile['arch']}; measure the bundle on a board of that arch"
            )


def errors_by_reason(records):
    """{reason: bad lines} of the agent's error records, most frequent first."""
    counts = Counter(r.get("reason", "unknown") for r in records if r.get("type") == "error")
    return dict(counts.most_common())


def run_summary(records):
    """`edgectl run`'s summary of the agent's records: windows, latency, peak RSS, the bundle, the bad
    lines by reason, and the drift alarms raised."""
    start = next((r for r in records if r.get("type") == "start"), {})
    return {
        **latency(records),
        "bundle_id": start.get("bundle_id"),
        "errors_by_reason": errors_by_reason(records),
        "drift": drift_summary(records),
    }


def why_nothing_scored(records):
    """Why the agent answered no window: the bad lines by reason and the first of them, and the good
    samples that filled no window."""
    errors = [r for r in records if r.get("type") == "error"]
    stats = next((r for r in reversed(records) if r.get("type") == "stats"), {})
    good = stats.get("samples", len(errors)) - len(errors)  # the stats count bad lines as samples too
    parts = []
    if errors:
        first = errors[0]
        parts.append(
            f"{len(errors)} bad lines ({counts_text(errors_by_reason(records))}; "
            f"the first, line {first.get('line', '?')}: {first.get('message', first.get('reason'))})"
        )
    if good > 0:
        parts.append(f"{good} good sample{'s' if good > 1 else ''}, too few in any one stream to fill a window")
    return "; ".join(parts) or "no sample lines in it"


def drift_summary(records):
    """The drift alarms among agent records (README, "Agent records"): how many, the input features PSI
    named, and the Page-Hinkley score shifts by direction. Clears are not alarms."""
    raised = [r for r in records if r.get("type") == "drift" and r.get("state") == "drift"]
    return {
        "alarms": len(raised),
        "psi_features": sorted({name for r in raised if r.get("detector") == "psi" for name in r.get("features", {})}),
        "score_shifts": dict(Counter(r["direction"] for r in raised if r.get("detector") == "page-hinkley")),
    }


def drift_text(drift):
    """'2 alarms (input features s2, s3 shifted; score moved up 1x)', or 'no alarm'."""
    if not drift["alarms"]:
        return "no alarm"
    parts = []
    if drift["psi_features"]:
        parts.append(f"input features {', '.join(drift['psi_features'])} shifted")
    parts += [f"score moved {direction} {n}x" for direction, n in drift["score_shifts"].items()]
    return f"{drift['alarms']} alarm{'s' if drift['alarms'] > 1 else ''} ({'; '.join(parts)})"


def score_warnings(scores, what):
    """What must not go unseen in binary scores ({"f1", "positives", "n", ...}; other tasks have none):
    no positive window to find, so F1 says nothing, or an F1 of 0, not one positive window found."""
    if not scores or "positives" not in scores:
        return []
    if scores["positives"] == 0:
        return [
            f"{what}: no window is labelled positive (of {scores['n']}), so its F1 of 0 says nothing; "
            "check the label column (or the horizon), and score on data with failures in it"
        ]
    if scores["f1"] == 0:
        return [
            f"{what}: F1 is 0, not one of the {scores['positives']} positive windows was found; "
            "check the labels, the inputs and the threshold"
        ]
    return []
