"""`edgectl build`: data -> pipeline spec -> trained model -> converted stage -> bundle.

The pipeline spec (input fields, window, preprocessing, features, label) is fitted
on the training split only; the test split never enters a build. `build` is the
C-MAPSS recipe; `build_stage` takes any prepared TrainingSet (SECOM uses it).
"""

import platform
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edge_agent import drift, metrics, preprocess
from edge_agent.manifest import MANIFEST_NAME
from edge_agent.runtimes.litert import TFLiteStage
from edge_agent.samples import format_line
from edge_agent.windows import FEATURE_KINDS, feature_names
from edge_convert import bundle, tflite, trees
from edge_convert.quiet import captured_output
from edgectl import train
from edgectl.data import cmapss
from edgectl.errors import EdgectlError
from edgectl.windowing import make_windows

# x86 and ARM int8 kernels round differently now and then: on the 10,196 FD001 test windows a
# Conv1D differed on 0.9 % of windows, by up to 0.117 (30 output steps of 1/256), 0.00033 on
# average. A board must agree within both bounds; a wrong model misses the mean by far.
INT8_TOLERANCE = 0.125
INT8_MEAN_TOLERANCE = 0.01
TREE_FOLDS = 5
NEURAL_FOLDS = 3  # a Conv1D costs seconds per fit, a tree ensemble a fraction
GOLDEN_UNITS = 2
GOLDEN_EXTRA_WINDOWS = 20


@dataclass
class BuildResult:
    bundle_dir: Path
    manifest: dict
    model: object  # the host model the stage was converted from
    report: dict  # out-of-fold validation metrics
    oof: np.ndarray  # out-of-fold score of every training window (what a cascade is calibrated on)
    y: np.ndarray  # label of every training window


@dataclass
class TrainingSet:
    """Everything a stage is trained and checked on, in the manifest's own terms."""

    spec: dict  # the manifest's input/window/preprocessing/features/label sections
    windows: object  # edgectl.windowing.Windows of the training rows
    y: np.ndarray  # 0/1 label per window
    fold: np.ndarray  # cross-validation fold per window (windows of one unit share a fold)
    golden_rows: np.ndarray  # rows (all input fields) whose windows become the golden vectors


def informative_columns(rows, columns):
    """Sensor columns that vary in training (at least 10 distinct values); flat ones carry nothing."""
    return [name for name in columns if len(np.unique(rows[:, cmapss.COLUMNS.index(name)])) >= 10]


def pipeline_spec(train_rows, window=30, stride=1, horizon=30):
    """The manifest sections that describe the data path, fitted on train_rows.

    Sensors are standardized per operating condition when the settings form a few
    tight clusters (FD002/FD004), otherwise over all rows (FD001/FD003).
    """
    features = informative_columns(train_rows, cmapss.SENSORS)
    cols = [cmapss.COLUMNS.index(name) for name in features]
    settings = train_rows[:, [cmapss.COLUMNS.index(name) for name in cmapss.SETTINGS]]
    return {
        "input": {"fields": cmapss.COLUMNS, "stream_field": "unit", "time_field": "cycle", "features": features},
        "window": {"length": window, "stride": stride},
        "preprocessing": preprocess.fit(
            train_rows[:, cols], features, impute=False, settings=settings, setting_names=cmapss.SETTINGS
        ),
        # The cycle count is known on the board and says much about wear: a feature.
        "features": {"kinds": list(FEATURE_KINDS), "time": "cycle", "names": feature_names(features, "cycle")},
        "label": {"name": f"fails within {horizon} cycles", "horizon": horizon},
    }


def unit_folds(rows, folds):
    """Fold number of every row, by engine unit: a unit's windows never span two folds."""
    return rows[:, 0].astype(int) % folds


def cmapss_training_set(split, window=30, stride=1, horizon=30, folds=TREE_FOLDS, keep_raw=True):
    """The training set of a C-MAPSS training split: windows by unit, labels 'fails within horizon'."""
    spec = pipeline_spec(split.rows, window, stride, horizon)
    windows = make_windows(split.rows, spec, keep_raw=keep_raw)
    units = np.unique(split.rows[:, 0])[:GOLDEN_UNITS]
    length = window + GOLDEN_EXTRA_WINDOWS
    golden_rows = np.vstack([split.rows[split.rows[:, 0] == u][:length] for u in units])
    return TrainingSet(
        spec=spec,
        windows=windows,
        y=cmapss.labels(split.rul[windows.row], horizon),
        fold=unit_folds(split.rows, folds)[windows.row],
        golden_rows=golden_rows,
    )


def build(split, kind, out_dir, window=30, stride=1, horizon=30, profiles=(), progress=None, drift_settings=None):
    """Train a model of `kind` on a C-MAPSS training split and write its bundle to out_dir.

    profiles: board profiles to build for as well as this machine (tree stages
    are cross-compiled for each profile's arch and checked under qemu-user).
    drift_settings: psi_threshold, psi_window, ph_delta, ph_lambda for the board's drift monitor.
    """
    check_kind(kind)
    say = progress or (lambda msg: None)
    neural = kind in train.NEURAL_KINDS
    say(f"windows from {split.path.name} ({len(split.rows)} rows)")
    data = cmapss_training_set(split, window, stride, horizon, NEURAL_FOLDS if neural else TREE_FOLDS, neural)
    return build_stage(data, kind, out_dir, profiles, say, drift_settings)


def check_kind(kind):
    if kind not in train.MODEL_KINDS:
        raise EdgectlError(f"unknown model {kind!r}; choose one of {', '.join(train.MODEL_KINDS)} or cascade")


def build_stage(data, kind, out_dir, profiles=(), say=lambda msg: None, drift_settings=None):
    """Train a one-stage bundle of `kind` on a TrainingSet and write it to out_dir.

    The decision threshold maximizes F1 on out-of-fold scores (the folds of data.fold);
    the stage is then trained on every training window.
    """
    check_kind(kind)
    neural = kind in train.NEURAL_KINDS
    if not neural:
        check_toolchains(profiles)  # before training: a missing cross toolchain is not found after minutes
    out_dir = fresh_dir(Path(out_dir))
    windows, y, fold = data.windows, data.y, data.fold
    fit, score = (partial(_fit_neural, kind), _score_neural) if neural else (partial(_fit_trees, kind), _score_trees)
    oof = np.zeros(len(y))
    for k in np.unique(fold):
        say(f"cross-validation fold {k + 1}/{len(np.unique(fold))}: training {kind}")
        part = fold != k
        oof[~part] = score(fit(windows, y, part), windows, ~part)
    threshold, _ = metrics.best_threshold(y, oof)
    report = metrics.classification(y, oof >= threshold)
    say(f"training {kind} on all {len(y)} windows ({int(y.sum())} positive); out-of-fold F1 {report['f1']:.3f}")
    model = fit(windows, y, np.ones(len(y), dtype=bool))
    held = fold == fold.min()  # rows for the parity and int8 checks
    if neural:
        stage, scorer = _tflite_stage(kind, model, windows, held, y, out_dir, say)
    else:
        stage, scorer = _tree_stage(kind, model, windows.features[held], out_dir, profiles, say)
    stage["threshold"] = threshold
    stage["validation"] = dict(report, method=f"out-of-fold, {len(np.unique(fold))} folds")
    golden = _golden(data.golden_rows, data.spec, scorer, stage["name"])
    built_with = {"model": type(model).__name__, "profiles": [p["name"] for p in profiles]}
    # Drift reference: every training sample's features, and out-of-fold scores (what unseen data scores).
    monitor = drift.reference(windows.samples, data.spec["input"]["features"], oof, **(drift_settings or {}))
    spec = dict(data.spec, drift=monitor)
    manifest = bundle.write_bundle(out_dir, kind, spec, [stage], golden, built_with)
    say(f"bundle {manifest['bundle_id']} written to {out_dir}")
    return BuildResult(out_dir, manifest, model, report, oof, y)


def _fit_trees(kind, windows, y, mask):
    return train.train_trees(kind, windows.features[mask], y[mask])


def _score_trees(model, windows, mask):
    return trees.native_scores(model, windows.features[mask])


def _fit_neural(kind, windows, y, mask):
    return train.train_neural(kind, windows.raw[mask], y[mask])


def _score_neural(model, windows, mask):
    return tflite.keras_scores(model, windows.raw[mask])


def _tree_stage(kind, model, check_rows, out_dir, profiles, say):
    stage = trees.convert(model, check_rows, out_dir, kind, toolchains(platform.machine(), profiles), say=say)
    stage.update(output="probability of the positive label", threshold=0.5)
    return stage, lambda w: trees.native_scores(model, w.features)


def check_toolchains(profiles):
    """Raise, naming the packages to install, unless every toolchain a tree build needs can build and link."""
    for chain in toolchains(platform.machine(), profiles).values():
        trees.compiler(chain)


def toolchains(host, profiles):
    """{arch: toolchain}: this machine first, then one per profile arch (profiles of one arch must agree)."""
    chains = {host: trees.HOST_TOOLCHAIN}
    for profile in profiles:
        arch, chain = profile["arch"], profile["toolchain"]
        if arch in chains and arch != host and chains[arch] != chain:
            raise EdgectlError(f"profiles for {arch} disagree on compiler flags; build one bundle per profile")
        if arch != host:
            chains[arch] = chain
    return chains


def _tflite_stage(kind, model, windows, held, y, out_dir, say):
    say("converting to TFLite INT8")
    path = out_dir / kind / f"{kind}-int8.tflite"
    path.parent.mkdir(parents=True)
    calibration = windows.raw[~held]
    path.write_bytes(tflite.to_int8(model, calibration[:: max(1, len(calibration) // 500)]))
    check, _ = tflite.report(model, path, windows.raw[held], y[held])
    say(
        f"int8 vs float: max abs diff {check['max_abs_diff']:.3f}, decisions agree {check['decision_agreement']:.1%}, "
        f"F1 float {check['f1_float']:.3f} int8 {check['f1_int8']:.3f}, float ops: {check['float_ops'] or 'none'}"
    )
    stage = {
        "name": kind,
        "kind": "tflite",
        "input": "window",
        "file": path.relative_to(out_dir).as_posix(),
        "output": "probability of the positive label",
        "threshold": 0.5,
        "tolerance": INT8_TOLERANCE,
        "mean_tolerance": INT8_MEAN_TOLERANCE,
        "int8_report": check,
    }
    with captured_output():
        runtime = TFLiteStage(out_dir, stage)
    return stage, lambda w: np.array([runtime.predict(x) for x in w.raw])


def _golden(rows, spec, scorer, stage_name):
    """Golden samples (rows of held-back training data) and the scores the host computed for them."""
    windows = make_windows(rows, spec, keep_raw=True)
    scores = scorer(windows)
    return {
        "lines": [format_line(row, spec["input"]) for row in rows],
        "windows": [
            {"stream": str(s), "t": float(t), "scores": {stage_name: float(v)}}
            for s, t, v in zip(windows.stream, windows.t, scores)
        ],
    }


def fresh_dir(path):
    """An empty output directory; refuses to wipe a directory that is not a bundle."""
    if path.exists():
        if any(path.iterdir()) and not (path / MANIFEST_NAME).exists():
            raise EdgectlError(f"{path}: exists and is not a bundle; choose another --out")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
