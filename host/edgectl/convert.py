"""`edgectl convert`: the user's model file + spec + data -> a bundle the board runs.

One path for every tree family (edge_convert.trees: XGBoost, LightGBM, scikit-learn through
Treelite and TL2cgen): the model must take the spec's inputs and answer the spec's task;
the compiled library must equal the model's own prediction on every window of --data;
golden vectors and the drift reference come from --data. The bundle is written beside
--out and renamed into place only when every check passed.
"""

import importlib.metadata
import platform
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge_agent import drift, metrics
from edge_agent.manifest import MANIFEST_NAME
from edge_convert import ConversionError, bundle, trees
from edgectl import dataset
from edgectl import spec as specs
from edgectl.build import check_toolchains, toolchains
from edgectl.errors import EdgectlError

GOLDEN_STREAMS = 2
GOLDEN_EXTRA_WINDOWS = 20


def family_of(model_path):
    """ "trees" or "neural", from the model file's name; the error lists the formats."""
    path = Path(model_path)
    if path.suffix.lower() in trees.FORMATS:
        return "trees"
    if path.suffix.lower() in (".keras", ".tflite", ".h5") or path.is_dir():
        return "neural"
    known = ", ".join([*trees.FORMATS, ".keras", ".tflite", "a SavedModel directory"])
    raise EdgectlError(f"{path}: unknown model format {path.suffix or '(none)'}; edgectl converts {known}")


def convert(model_path, spec_path, data, out, profiles=(), allow_pickle=False, say=lambda msg: None):
    """Convert a model file into a bundle at out; return the manifest."""
    out = Path(out)
    if out.exists() and not (out / MANIFEST_NAME).exists():
        raise EdgectlError(f"{out}: exists and is not a bundle; choose another --out")
    spec = specs.load(spec_path)
    if family_of(model_path) != "trees":
        raise EdgectlError(f"{model_path}: Keras and TFLite models are not converted yet; tree models: "
                           f"{', '.join(trees.FORMATS)}")  # fmt: skip
    check_toolchains(profiles)  # before any work
    model = _load(model_path, allow_pickle)
    say(f"reading {data} through the agent's parser, preprocessing and windows")
    ds = dataset.load(spec, data)
    if len(ds.windows) == 0:
        raise EdgectlError(f"{data}: no complete window (window length {spec['window']['length']})")
    _check_model(model, model_path, spec, ds)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent if out.parent.exists() else None) as tmp:
        work = Path(tmp) / out.name
        work.mkdir()
        manifest = _write(model, model_path, spec, ds, work, profiles, say)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
        archive = work.with_name(work.name + ".tar.gz")
        if archive.exists():
            shutil.move(str(archive), str(out.with_name(out.name + ".tar.gz")))
    say(f"bundle {manifest['bundle_id']} written to {out}")
    return manifest


def _load(model_path, allow_pickle):
    try:
        return trees.load(model_path, allow_pickle)
    except ConversionError as exc:
        raise EdgectlError(str(exc)) from None


def _check_model(model, model_path, spec, ds):
    task, n_classes = trees.model_task(model)
    want = spec["output"]["task"]
    if task != want:
        raise EdgectlError(f"{model_path}: the model answers a {task} task, the spec's [output] task is {want}")
    classes = spec["output"]["classes"]
    if want == "multiclass" and n_classes != len(classes):
        raise EdgectlError(
            f"{model_path}: the model has {n_classes} classes, the spec's [output] classes {len(classes)}"
        )
    n_inputs = trees.num_features(model)
    names = ds.sections["features"]["names"]
    if ds.stage_input != "features":
        raise EdgectlError(f'{model_path}: a tree model takes window features; the spec says features = "raw"')
    if n_inputs != len(names):
        raise EdgectlError(
            f"{model_path}: the model takes {n_inputs} inputs, the spec gives {len(names)} "
            f"({len(spec['input']['columns'])} columns x {len(ds.sections['features']['kinds'])} features"
            + (" + time" if ds.sections["features"]["time"] else "")
            + "); train on `edgectl features` output"
        )


def _write(model, model_path, spec, ds, work, profiles, say):
    task = spec["output"]["task"]
    name = _token(Path(model_path).stem)
    src = work / name / "src"
    say("generating C with TL2cgen")
    try:
        defines = trees.generate_source(model, src)
        libs, parity = {}, {}
        host = platform.machine()
        for arch, chain in toolchains(host, profiles).items():
            lib = work / name / f"{name}-{arch}.so"
            say(f"compiling for {arch}")
            trees.compile_library(src, defines, lib, chain)
            if arch == host:
                parity[arch] = trees.parity(model, lib, ds.X, task)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    parity[arch] = trees.emulated_parity(model, lib, ds.X, chain, tmp, task)
            libs[arch] = lib.relative_to(work).as_posix()
            say(f"parity {arch}: {_parity_text(parity[arch])}")
    except ConversionError as exc:
        raise EdgectlError(str(exc)) from None
    outputs = trees.native_outputs(model, ds.X, task)
    classes = spec["output"]["classes"]
    stage = {
        "name": name,
        "kind": "tree-lib",
        "input": "features",
        "task": task,
        "outputs": len(classes) if task == "multiclass" else 1,
        "libs": libs,
        "source": src.relative_to(work).as_posix(),
        "threshold": spec["output"]["threshold"],
        "tolerance": trees.PARITY_LIMIT,
        "parity": {arch: dict(p, windows="every window of --data") for arch, p in parity.items()},
        "validation": _validation(task, ds.y, outputs, spec["output"]["threshold"]),
    }
    golden = _golden(model, spec, ds, name, task)
    monitor = drift.reference(ds.windows.samples, spec["input"]["columns"], outputs, regression=task == "regression")
    built_with = {"model": type(model).__name__, "model_file": Path(model_path).name, "versions": _versions(),
                  "profiles": [p["name"] for p in profiles]}  # fmt: skip
    sections = {k: v for k, v in ds.sections.items() if k != "format_version"}
    return bundle.write_bundle(work, name, dict(sections, drift=monitor), [stage], golden, built_with)


def _golden(model, spec, ds, name, task):
    """The data's header and the first rows of a few streams, and the outputs the model gives their windows."""
    length = spec["window"]["length"] + GOLDEN_EXTRA_WINDOWS * spec["window"]["stride"]
    streams = list(dict.fromkeys(ds.row_streams))[:GOLDEN_STREAMS]
    keep, counts = [ds.lines[0]], dict.fromkeys(streams, 0)
    for line, stream in zip(ds.lines[1:], ds.row_streams):
        if stream in counts and counts[stream] < length:
            counts[stream] += 1
            keep.append(line)
    golden_ds = dataset.load_lines(spec, keep, ds.sections)
    outputs = trees.native_outputs(model, golden_ds.X, task)
    return {
        "lines": keep,
        "windows": [
            {"stream": str(s), "t": float(t), "scores": {name: _plain(v)}}
            for s, t, v in zip(golden_ds.windows.stream, golden_ds.windows.t, outputs)
        ],
    }


def _validation(task, y, outputs, threshold):
    """Scores of the model on --data's labelled windows (in-sample when the model was trained on that file)."""
    labelled = ~np.isnan(y)
    if not labelled.any():
        return {"method": "no label column in --data"}
    y, out = y[labelled], outputs[labelled]
    method = "on the windows of --data (in-sample if the model was trained on them)"
    if task == "regression":
        err = out - y
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))), "n": int(len(y)),
                "method": method}  # fmt: skip
    if task == "multiclass":
        pred = out.argmax(axis=1)
        return {**metrics.multiclass(y.astype(int), pred, out.shape[1]), "method": method}
    return {**metrics.classification(y.astype(int), out >= threshold), "method": method}


def _versions():
    """The versions of the libraries that read, compiled and checked the model."""
    found = {}
    for name in ("numpy", "treelite", "tl2cgen", "xgboost", "xgboost-cpu", "lightgbm", "scikit-learn", "skops"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def _parity_text(p):
    return f"max abs diff {p['max_abs_diff']:.2g} on {p['rows']} windows" if "max_abs_diff" in p else p["why"]


def _token(text):
    """A bundle name from a file name: the characters an id allows."""
    token = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"
    return token[:60] if token[0].isalnum() else f"m{token[:59]}"
