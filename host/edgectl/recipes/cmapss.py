"""C-MAPSS: reference models and cascades trained by engine unit, served on a board, scored from the agent's
records (`edgectl demo`, `edgectl example cmapss`, `edgectl build`).

C-MAPSS is one user of the general path: the training split is written as a CSV with a header and a
"fails within H cycles" label column, a spec is written for it (informative sensors, per-condition
scaling where the settings cluster, the cycle count as a feature), and `edgectl train`'s code trains,
chooses the threshold out of fold by unit, and converts. The test split streams to the agent as the
original files are: lines without a header, the CSV's columns in order.
"""

import statistics
import tempfile
from pathlib import Path

import numpy as np

from edge_agent import preprocess
from edge_agent.manifest import load_bundle
from edge_agent.windows import FEATURE_KINDS
from edgectl import build, cascade, deploy, evaluate, inspect_bundle, runner
from edgectl import spec as specs
from edgectl.console import table
from edgectl.data import cmapss, synthetic
from edgectl.targets.local import LocalTarget

# A name ending in "-rul" is that model as a regression on the cycles left, capped at RUL_CAP, whose alarm
# threshold (predicted cycles left at or below it) is chosen out of fold against "fails within the horizon".
MODELS = ("xgboost-tiny", "lightgbm", "lightgbm-rul", "xgboost", "conv1d", "attention")
RUL = "-rul"
RUL_CAP = 45  # NOTES-CMAPSS: caps of 45 to 125 scored alike out of fold; early life all looks alike
# Stage 1 the 30-tree model, stage 2 the most accurate one on the same features, or the transformer.
CASCADES = (("xgboost-tiny", "lightgbm"), ("xgboost-tiny", "attention"))
DEMO_MODELS = ("xgboost", "conv1d")
DEMO_CASCADES = (("xgboost", "conv1d"),)


def run(workdir, data_dir=None, subset="FD001", target=None, models=MODELS, cascades=CASCADES, progress=None,
        seeds=1):  # fmt: skip
    """Run the recipe; return {"data", "subset", "board", "seeds", "models": [one row per bundle]}.

    target: a board target (default: a local board in WORKDIR/board).
    seeds: train every model with seeds 0..seeds-1; a row's F1 is then the mean over the seeds, with
    their sd, and its sizes and latencies are seed 0's.
    """
    say = progress.say if progress else (lambda msg: None)
    workdir = Path(workdir)
    if data_dir is None:
        data_dir = synthetic.write_subset(workdir / "data", subset, n_conditions=_conditions(subset))
        say(f"synthetic fleet written to {data_dir}")
    train_split, test_split = cmapss.load(data_dir, subset)
    target = target or LocalTarget(workdir / "board")
    data = {False: prepare(train_split, workdir / "spec")}
    if any(kind.endswith(RUL) for kind in models):
        data[True] = prepare(train_split, workdir / "spec-rul", rul_cap=RUL_CAP)
    for spec_path, train_csv in data.values():
        say(f"spec {spec_path} and training data {train_csv} written")
    runs = []
    for seed in range(seeds):
        where = workdir / "bundles" / (f"seed{seed}" if seeds > 1 else "")
        built, rows = {}, []
        for kind in models:
            say(f"{kind}" + (f", seed {seed}" if seeds > 1 else ""))
            spec_path, train_csv = data[kind.endswith(RUL)]
            built[kind] = build.train_bundle(spec_path, train_csv, kind.removesuffix(RUL), where / kind, say=say,
                                             seed=seed)  # fmt: skip
            rows.append(_measure(kind, built[kind].bundle_dir, target, test_split, workdir, progress, seed))
        for first, second in cascades:
            name = f"cascade-{second}"
            _, calibration = cascade.join(built[first], built[second], where / name, say=say)
            row = _measure(name, where / name, target, test_split, workdir, progress, seed)
            rows.append(dict(row, calibrated_escalation=calibration["escalation"]))
        runs.append(rows)
    return {"data": str(data_dir), "subset": subset, "board": str(target), "seeds": seeds, "models": over_seeds(runs)}


def over_seeds(runs):
    """One row per model from the rows of every seed: F1 as the mean, with the sd and every seed's value."""
    rows = []
    for same in zip(*runs):
        f1, last = [r["f1"] for r in same], [r["f1_last"] for r in same]
        spread = {"f1_sd": statistics.stdev(f1), "f1_seeds": f1} if len(same) > 1 else {"f1_sd": None}
        rows.append(dict(same[0], f1=statistics.mean(f1), f1_last=statistics.mean(last), **spread))
    return rows


# Per sensor: the window's shape, its level against the unit's own start, smoothed levels and slopes
# over longer spans and the whole history (NOTES-CMAPSS: features, not models, move F1 from 0.86 to 0.93).
SENSOR_KINDS = ["mean", "std", "slope", "last", "mean-base:20", "ewm:10", "ewm:10-base:20", "ewm:40",
                "slope:60", "slope:all", "mean:all"]  # fmt: skip
# The health index (the signed mean of the standardized sensors), the same ideas at more spans.
HEALTH_KINDS = ["last", "mean:10", "mean", "std", "ewm:5", "ewm:10", "ewm:20", "base:20", "mean:10-base:20",
                "mean-base:20", "slope:15", "slope", "slope:60", "slope:all", "peak:10", "mean:all"]  # fmt: skip


def prepare(split, folder, window=30, stride=1, horizon=30, history=True, rul_cap=None):
    """Write the training split as FOLDER/train_FDxxx.csv (a header, the label column) and the spec fitted
    on it as FOLDER/edgectl.toml; return both paths. rul_cap: the label is the cycles left, capped, and the
    task a regression that alarms at `horizon` cycles left or fewer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = cmapss.write_csv(folder / split.path.with_suffix(".csv").name, split, horizon, rul_cap)
    spec = pipeline_spec(split, window, stride, horizon, history, rul_cap)
    spec_path = specs.dump(spec, folder / "edgectl.toml",
                           f"C-MAPSS {split.path.name}: written by the recipe from its training rows")  # fmt: skip
    return spec_path, csv_path


def pipeline_spec(split, window=30, stride=1, horizon=30, history=True, rul_cap=None):
    """The spec of a C-MAPSS training split, chosen on its rows.

    Sensors that vary are the inputs (flat ones carry nothing); they are standardized per
    operating condition when the settings form a few tight clusters (FD002/FD004), otherwise over
    all rows (FD001/FD003). The cycle count is known on the board and says much about wear: a feature.
    With history: the history feature kinds per sensor, and a health index channel whose signs say
    which way each sensor moves as the training units wear out.
    """
    rows = split.rows
    columns = [name for name in cmapss.SENSORS if len(np.unique(rows[:, cmapss.COLUMNS.index(name)])) >= 10]
    settings = rows[:, [cmapss.COLUMNS.index(name) for name in cmapss.SETTINGS]]
    per_condition = preprocess.fit_conditions(settings, cmapss.SETTINGS) is not None
    spec = {
        "input": {
            "format": "csv",
            "columns": columns,
            "stream": "unit",
            "time": "cycle",
            "settings": cmapss.SETTINGS if per_condition else [],
        },  # fmt: skip
        "window": {"length": window, "stride": stride, "features": list(FEATURE_KINDS), "time_feature": True},
        "preprocessing": {"impute": "none", "scale": "per-condition" if per_condition else "standard"},
        "output": {"task": "binary", "label": cmapss.LABEL.format(horizon), "classes": None, "threshold": None},
    }
    if rul_cap:
        spec["output"] = {"task": "regression", "label": cmapss.RUL_LABEL.format(rul_cap), "classes": None,
                          "threshold": float(horizon), "alarm": "below"}  # fmt: skip
    if not history:
        return spec
    spec["window"]["features"] = SENSOR_KINDS
    signs = wear_signs(split, columns, settings if per_condition else None)
    spec["channel"] = [{"name": "health", "columns": columns, "signs": signs, "features": HEALTH_KINDS}]
    return spec


def wear_signs(split, columns, settings=None):
    """+1 for a sensor that rises as a training unit wears out, -1 for one that falls: the sign of its
    correlation with the cycles left (RUL), on standardized values."""
    values = split.rows[:, [cmapss.COLUMNS.index(name) for name in columns]]
    fitted = preprocess.fit(values, columns, impute=False, settings=settings, setting_names=cmapss.SETTINGS)
    prep = preprocess.Preprocessor(fitted, columns)
    z = np.array([prep.apply(v, s) for v, s in zip(values, settings if settings is not None else [None] * len(values))])
    rul = split.rul - split.rul.mean()
    return [1 if np.dot(col - col.mean(), rul) < 0 else -1 for col in z.T]


def build_bundle(split, kind, out, window=30, stride=1, horizon=30, profiles=(), say=lambda msg: None,
                 drift_settings=None, history=True):  # fmt: skip
    """Train `kind` on a C-MAPSS training split through the general path; the spec and CSV go to OUT-data/."""
    out = Path(out)
    spec_path, csv_path = prepare(split, out.with_name(out.name + "-data"), window, stride, horizon, history)
    return build.train_bundle(spec_path, csv_path, kind, out, profiles, say=say, drift_settings=drift_settings)


def build_cascade(split, out, stage1="xgboost-tiny", stage2="lightgbm", tolerance=cascade.TOLERANCE, profiles=(),
                  say=lambda msg: None, drift_settings=None, **window):  # fmt: skip
    """`stage1` and `stage2` on one C-MAPSS training split, joined into a cascade at out.
    Returns (manifest, calibration)."""
    out = Path(out)
    spec_path, csv_path = prepare(split, out.with_name(out.name + "-data"), **window)
    with tempfile.TemporaryDirectory() as work:  # the one-stage bundles are copied into the cascade
        first = build.train_bundle(spec_path, csv_path, stage1, Path(work) / stage1, profiles, say=say,
                                   drift_settings=drift_settings)  # fmt: skip
        second = build.train_bundle(spec_path, csv_path, stage2, Path(work) / stage2, profiles, say=say,
                                    drift_settings=drift_settings)  # fmt: skip
        return cascade.join(first, second, out, tolerance, say)


def _conditions(subset):
    """The synthetic stand-in for FD002/FD004 runs in six operating conditions, like the real ones."""
    return 6 if subset in ("FD002", "FD004") else 1


def _measure(name, bundle_dir, target, test_split, workdir, progress, seed=0):
    say = progress.say if progress else (lambda msg: None)
    deploy.deploy(bundle_dir, target, say)
    say(f"streaming {test_split.path.name} through the agent ({name})")
    with open(workdir / (f"records-{name}.jsonl" if not seed else f"records-{name}-seed{seed}.jsonl"), "w") as out:
        records = runner.stream_file(
            target, test_split.path, out=out, on_record=progress.record if progress else None
        )  # fmt: skip
    return row(name, bundle_dir, records, test_split)


def row(name, bundle_dir, records, test_split):
    """One table row from a bundle and the agent's records of a labelled C-MAPSS test split."""
    info = inspect_bundle.summary(bundle_dir)
    manifest = load_bundle(bundle_dir)
    lookup = cmapss.label_lookup(test_split, manifest["input"], cmapss.label_horizon(manifest))
    acc = evaluate.accuracy(evaluate.alarms_as_predictions(records), lookup)
    lat = evaluate.latency(records)
    return {
        "model": name,
        "bundle_id": info["bundle_id"],
        "stages": [s["kind"] for s in info["stages"]],  # tools/readme_tables.py: which F1s a CPU can change
        "model_kb": sum(s["model_bytes"] for s in info["stages"]) / 1024,
        "bundle_kb": (info["archive_bytes"] or info["bundle_bytes"]) / 1024,
        "windows": lat["windows"],
        "f1": acc["all_windows"]["f1"],
        "f1_last": acc["last_window"]["f1"],
        "precision": acc["all_windows"]["precision"],
        "recall": acc["all_windows"]["recall"],
        "p50_us": lat["latency_us"]["service"]["p50"],
        "p99_us": lat["latency_us"]["service"]["p99"],
        "mean_us": lat["mean_service_us"],
        "inference_p50_us": lat["latency_us"]["inference"]["p50"],
        "fast_path": evaluate.fast_path_share(records, manifest),
        "rss_mb": lat["rss_kb_max"] / 1024 if lat["rss_kb_max"] else None,
        "errors": lat["errors"],
    }


COLUMNS = [
    ("model", "model", ""),
    ("model_kb", "model KB", ".1f"),
    ("bundle_kb", "bundle KB", ".1f"),
    ("windows", "windows", "d"),
    ("f1", "F1", ".3f"),
    ("f1_sd", "F1 sd", ".3f"),
    ("f1_last", "F1 last", ".3f"),
    ("p50_us", "p50 us", ".1f"),
    ("p99_us", "p99 us", ".1f"),
    ("mean_us", "mean us", ".1f"),
    ("fast_path", "fast path", ".1%"),
    ("calibrated_escalation", "escalated oof", ".1%"),
    ("rss_mb", "RSS MB", ".1f"),
]


def results_table(result):
    """The table of run()'s result as the CLI prints it and the README shows it; F1 sd only over seeds."""
    columns = [column for column in COLUMNS if result["seeds"] > 1 or column[0] != "f1_sd"]
    return table(result["models"], columns)
