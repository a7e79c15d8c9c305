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

from edge_agent import metrics, preprocess
from edge_agent.samples import format_line
from edge_agent.windows import feature_names
from edgectl import build, deploy, evaluate, inspect_bundle, runner
from edgectl.data import secom
from edgectl.targets.local import LocalTarget
from edgectl.windowing import make_windows

FOLDS = 5
MAX_MISSING = 0.5  # columns missing more often than this in training are dropped
GOLDEN_ROWS = 20
FIELDS = ["lot", "index", *secom.FEATURES]  # one stream ("lot" 1) in file order: the agent's stream and time


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
        bundle_dir = workdir / "bundles" / f"{kind}-fold{k + 1}"
        training = training_set(rows[train], data.y[train], seed)
        build.build_stage(training, kind, bundle_dir, say=say)
        deploy.deploy(bundle_dir, target, say)
        records = _serve(target, rows[test], training.spec, workdir / f"fold{k + 1}")
        folds.append(_fold_row(k + 1, bundle_dir, records, data.y[test], rows[test]))
    return {"data": str(data_dir), "board": str(target), "model": kind, "folds": folds, "summary": _summary(folds)}


def table_rows(X):
    """Rows of every input field (lot, index, readings) as the agent reads them."""
    return np.column_stack([np.ones(len(X)), np.arange(len(X)), X])


def pipeline_spec(train_rows):
    """Manifest sections for SECOM: one-sample windows of the kept readings, imputed and scaled."""
    X = train_rows[:, 2:]
    missing = np.isnan(X).mean(axis=0)
    kept = [
        name
        for i, name in enumerate(secom.FEATURES)
        if missing[i] <= MAX_MISSING and len(np.unique(X[~np.isnan(X[:, i]), i])) >= 2
    ]
    cols = [secom.FEATURES.index(name) for name in kept]
    return {
        "input": {"fields": FIELDS, "stream_field": "lot", "time_field": "index", "features": kept},
        "window": {"length": 1, "stride": 1},
        "preprocessing": preprocess.fit(X[:, cols], kept, impute=True),
        "features": {"kinds": ["last"], "time": None, "names": feature_names(kept, kinds=("last",))},
        "label": {"name": "wafer fails the in-line test"},
    }


def training_set(train_rows, y, seed):
    """A TrainingSet whose threshold folds are stratified inside the training rows."""
    spec = pipeline_spec(train_rows)
    inner = np.zeros(len(y), dtype=int)
    for k, (_, part) in enumerate(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(train_rows, y)):
        inner[part] = k
    return build.TrainingSet(
        spec=spec,
        windows=make_windows(train_rows, spec, keep_raw=False),
        y=y,
        fold=inner,
        golden_rows=train_rows[:GOLDEN_ROWS],
    )


def _serve(target, test_rows, spec, folder):
    folder.mkdir(parents=True, exist_ok=True)
    lines = folder / "test.csv"
    lines.write_text("".join(format_line(row, spec["input"]) + "\n" for row in test_rows))
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
        "p50_us": lat["latency_us"]["total"]["p50"],
        "p99_us": lat["latency_us"]["total"]["p99"],
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
