"""`edgectl train`: a reference model on any spec and data -> a model file -> `edgectl convert` -> a bundle.

Cross-validation by stream gives every training window an out-of-fold score (a neural model's from
its INT8 TFLite form, what the board runs): the decision threshold is chosen on those (never on the
windows a model saw), they are the validation reported in the manifest, and a cascade is calibrated
on them. The final model is trained on every window, written as a file (XGBoost JSON, LightGBM text,
skops, Keras) and converted exactly as a model the user trained would be. The recipes (C-MAPSS, SECOM) call this.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent import metrics
from edge_convert import bundle, tflite, trees
from edgectl import convert, dataset, inspect_bundle, train, windowing
from edgectl import spec as specs
from edgectl.errors import EdgectlError, did_you_mean

TREE_FOLDS = 5
NEURAL_FOLDS = 3  # a Conv1D costs seconds per fit, a tree ensemble a fraction


@dataclass
class BuildResult:
    bundle_dir: Path
    manifest: dict
    model: object  # the host model the stage was converted from
    report: dict  # out-of-fold validation metrics
    oof: np.ndarray  # out-of-fold score of every training window (what a cascade is calibrated on)
    y: np.ndarray  # label of every training window
    model_file: Path


def train_bundle(spec_path, data, kind, out, profiles=(), fold=None, say=lambda msg: None, drift_settings=None,
                 seed=0):  # fmt: skip
    """Train a reference model of `kind` on data under the spec, write its model file beside out
    (OUT.model.json / .txt / .skops / .keras) and convert that file into the bundle out.

    fold: cross-validation fold of every window (default: streams dealt round-robin, see stream_folds).
    seed: the trainer's random seed (the same seed, data and machine give the same model files).
    """
    check_kind(kind)
    bundle.check_out(out)  # now, not after the training
    spec = specs.load(spec_path)
    train.check_window(kind, spec["window"]["length"], f"{spec_path}: [window] length")
    neural = kind in train.NEURAL_KINDS
    task = spec["output"]["task"]
    if not spec["output"]["label"]:
        raise EdgectlError(f"{spec_path}: [output] label is needed to train; name the label column")
    if not neural:
        if spec["window"]["features"] == "raw":
            raise EdgectlError(f'{spec_path}: {kind} is a tree model on window features; the spec says "raw"')
        convert.check_toolchains(profiles)  # before training: a missing cross toolchain is not found after minutes
    say(f"reading {bundle.final_path(data)} through the agent's parser, preprocessing and windows")
    ds = dataset.load(spec, data, keep_raw=neural)
    length = spec["window"]["length"]
    windowing.check_window_fits(length, ds.row_streams, data, f"{spec_path}: [window] length = {length}")
    stage_input = "window" if neural else "features"
    X, y = ds.inputs(stage_input), ds.y
    if len(np.unique(y[~np.isnan(y)])) < 2 or np.isnan(y).any():
        raise EdgectlError(f"{data}: the windows' labels take one value only (or some are empty); nothing to learn")
    fold = stream_folds(ds, NEURAL_FOLDS if neural else TREE_FOLDS) if fold is None else np.asarray(fold)
    n_classes = len(spec["output"]["classes"] or [0, 1])

    def fit(mask):
        if neural:
            return train.train_neural(kind, X[mask], y[mask], seed=seed, task=task, n_classes=n_classes)
        return train.train_trees(kind, X[mask], y[mask], seed=seed, task=task)

    def outputs(model, mask):
        if neural:  # what the board would run: the fold's model as INT8, quantized on its training windows
            return int8_outputs(model, X[~mask], X[mask])
        return trees.native_outputs(model, X[mask], task)

    folds = np.unique(fold)
    oof = np.zeros((len(y), n_classes) if task == "multiclass" else len(y))
    for k in folds:
        say(f"cross-validation fold {k + 1}/{len(folds)}: training {kind}")
        oof[fold == k] = outputs(fit(fold != k), fold == k)
    threshold, alarm = decision_threshold(spec["output"], y, oof)
    method = f"out-of-fold, {len(folds)} folds" + (" by stream" if spec["input"]["stream"] else "")
    method += ", each fold's model as INT8 TFLite" if neural else ""
    report = convert.validation(task, y, oof, threshold, method, alarm)
    say(f"training {kind} on all {len(y)} windows; {inspect_bundle.validation_text(report)}")
    model = fit(np.ones(len(y), dtype=bool))
    training = {"kind": kind, "seed": seed, "threads": train.threads(kind, len(y)), "folds": len(folds)}
    fitted = {"threshold": threshold, "validation": report, "scores": oof, "training": training}
    with bundle.staged(out) as work:  # the model file and the bundle, both or neither
        model_file = train.save_model(model, work.with_name(work.name + ".model"))
        say(f"model written to {bundle.final_path(model_file)}; converting it")
        manifest = convert.convert(model_file, spec, data, work, profiles, say=say, ds=ds, fitted=fitted,
                                   drift_settings=drift_settings, name=kind)  # fmt: skip
    out = Path(out)
    return BuildResult(out, manifest, model, report, oof, y, out.with_name(model_file.name))


def decision_threshold(output, y, oof):
    """The stage's threshold, chosen on out-of-fold outputs: binary, the best F1; a regression with an alarm
    level (the spec's threshold), the alarm threshold whose alarms best match the true values' at that level.
    Returns (threshold, (level, direction) or None)."""
    if output["task"] == "binary":
        return metrics.best_threshold(y, oof)[0], None
    if output["task"] == "regression" and output["threshold"] is not None:
        alarm = (output["threshold"], output["alarm"])
        return metrics.best_alarm_threshold(y, oof, *alarm)[0], alarm
    return output["threshold"], None


def int8_outputs(model, calibration_windows, windows):
    """The outputs of a Keras model converted to INT8 TFLite (quantized on calibration_windows) on windows."""
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "fold.tflite"
        path.write_bytes(tflite.to_int8(model, calibration_windows))
        return tflite.tflite_outputs(path, windows)[0]


def stream_folds(ds, k):
    """The cross-validation fold of every window: streams dealt round-robin in order of first appearance,
    so one stream's windows never span two folds; with fewer streams than folds, k blocks in file order."""
    streams = list(dict.fromkeys(ds.windows.stream.tolist()))
    if len(streams) >= k:
        index = {s: i % k for i, s in enumerate(streams)}
        return np.array([index[s] for s in ds.windows.stream.tolist()], dtype=int)
    n = len(ds.windows)
    return np.arange(n) * k // max(1, n)


def check_kind(kind):
    if kind not in train.MODEL_KINDS:
        choices = ", ".join(train.MODEL_KINDS)
        raise EdgectlError(f"unknown model {kind!r}{did_you_mean(kind, train.MODEL_KINDS)}; choose one of {choices}")
