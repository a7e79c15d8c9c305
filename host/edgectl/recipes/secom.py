"""SECOM: a tree model on 590 noisy, partly missing process readings, scored by stratified 5-fold CV where
each fold's bundle is served on the board and F1 comes from the agent's own records (`edgectl example secom`).

Every choice is made inside the training folds: which columns to keep, the
imputation medians and scaling (stored in the manifest, applied on the board),
and the decision threshold (out-of-fold within the training folds). The
imbalance (6.6 % fails) is met by class weighting and that threshold.
"""

import statistics
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from edge_agent import metrics
from edge_agent.samples import format_line
from edgectl import build, deploy, evaluate, inspect_bundle, runner
from edgectl import spec as specs
from edgectl.data import secom
from edgectl.targets.local import LocalTarget

FOLDS = 5
MAX_MISSING = 0.5  # columns missing more often than this in training are dropped
FIELDS = ["lot", "index", *secom.FEATURES]  # one stream ("lot" 1) in file order: the agent's stream and time
LABEL = "fails"


def run(workdir, data_dir=None, target=None, kind="xgboost", seed=0, progress=None):
    """Run the recipe; return {"data", "board", "folds": [one row per fold], "summary": {...}}."""
    say = progress.say if progress else (lambda msg: None)
    workdir = Path(workdir)
    if data_dir is None:
        data_dir = secom.write_synthetic(workdir / "data", seed=seed)
        say(f"synthetic SECOM-shaped data written to {data_dir}")
    data = secom.load(data_dir)
    target = target or LocalTarget(workdir / "board")
    rows = table_rows(data.X)
    split = StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(rows, data.y)
    folds = []
    for k, (train, test) in enumerate(split):
        say(f"fold {k + 1}/{FOLDS}: {len(train)} training rows ({int(data.y[train].sum())} fails), {len(test)} test")
        folder = workdir / f"fold{k + 1}"
        spec_path, csv_path = prepare(rows[train], data.y[train], folder)
        bundle_dir = workdir / "bundles" / f"{kind}-fold{k + 1}"
        result = build.train_bundle(spec_path, csv_path, kind, bundle_dir, fold=inner_folds(data.y[train], seed),
                                    say=say)  # fmt: skip
        deploy.deploy(bundle_dir, target, say)
        records = _serve(target, rows[test], result.manifest["input"], folder)
        folds.append(_fold_row(k + 1, bundle_dir, records, data.y[test], rows[test]))
    return {"data": str(data_dir), "board": str(target), "model": kind, "folds": folds, "summary": _summary(folds)}


def table_rows(X):
    """Rows of every input field (lot, index, readings) as the agent reads them."""
    return np.column_stack([np.ones(len(X)), np.arange(len(X)), X])


def prepare(train_rows, y, folder):
    """Write the training rows as FOLDER/train.csv (a header, the label column) and the spec chosen on them
    as FOLDER/edgectl.toml; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "train.csv"
    spec = {"input": {"fields": FIELDS, "stream_field": "lot", "time_field": "index"}}
    with open(csv_path, "w") as f:
        f.write(",".join([*FIELDS, LABEL]) + "\n")
        f.writelines(f"{format_line(row, spec['input'])},{int(label)}\n" for row, label in zip(train_rows, y))
    spec_path = specs.dump(pipeline_spec(train_rows), folder / "edgectl.toml",
                           "SECOM: written by the recipe from one fold's training rows")  # fmt: skip
    return spec_path, csv_path


def pipeline_spec(train_rows):
    """The spec of SECOM training rows: one-sample windows of the readings that are present and vary, imputed
    (median) and scaled."""
    X = train_rows[:, 2:]
    missing = np.isnan(X).mean(axis=0)
    kept = [
        name
        for i, name in enumerate(secom.FEATURES)
        if missing[i] <= MAX_MISSING and len(np.unique(X[~np.isnan(X[:, i]), i])) >= 2
    ]
    return {
        "input": {"format": "csv", "columns": kept, "stream": "lot", "time": "index", "settings": []},
        "window": {"length": 1, "stride": 1, "features": ["last"], "time_feature": False},
        "preprocessing": {"impute": "median", "scale": "standard"},
        "output": {"task": "binary", "label": LABEL, "classes": None, "threshold": None},
    }


def inner_folds(y, seed):
    """Threshold folds stratified inside the training rows (one row, one window)."""
    inner = np.zeros(len(y), dtype=int)
    for k, (_, part) in enumerate(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(y, y)):
        inner[part] = k
    return inner


def _serve(target, test_rows, input_spec, folder):
    lines = folder / "test.csv"
    lines.write_text("".join(format_line(row, input_spec) + "\n" for row in test_rows))
    with open(folder / "records.jsonl", "w") as out:
        return runner.stream_file(target, lines, out=out)


def _fold_row(k, bundle_dir, records, y_test, test_rows):
    label = {float(index): int(y) for index, y in zip(test_rows[:, 1], y_test)}
    preds = evaluate.predictions(records)
    scores = metrics.classification([label[r["t"]] for r in preds], [r["prediction"] for r in preds])
    lat = evaluate.latency(records)
    info = inspect_bundle.summary(bundle_dir)
    return {
        "fold": k,
        "rows": len(y_test),
        "fails": int(np.sum(y_test)),
        "windows": lat["windows"],
        "f1": scores["f1"],
        "precision": scores["precision"],
        "recall": scores["recall"],
        "features": info["features"],
        "bundle_kb": (info["archive_bytes"] or info["bundle_bytes"]) / 1024,
        "p50_us": lat["latency_us"]["service"]["p50"],
        "p99_us": lat["latency_us"]["service"]["p99"],
        "errors": lat["errors"],
    }


def _summary(folds):
    f1 = [f["f1"] for f in folds]
    return {
        "f1_mean": statistics.mean(f1),
        "f1_sd": statistics.stdev(f1) if len(f1) > 1 else 0.0,
        "f1_min": min(f1),
        "f1_max": max(f1),
        "method": f"stratified {FOLDS}-fold CV; F1 from the agent's records of each held-out fold",
    }


COLUMNS = [
    ("fold", "fold", "d"),
    ("rows", "rows", "d"),
    ("fails", "fails", "d"),
    ("features", "features", "d"),
    ("bundle_kb", "bundle KB", ".1f"),
    ("f1", "F1", ".3f"),
    ("precision", "precision", ".3f"),
    ("recall", "recall", ".3f"),
    ("p50_us", "p50 us", ".1f"),
    ("p99_us", "p99 us", ".1f"),
]
