"""Tree ensembles -> Treelite -> TL2cgen C -> a shared library with our entry point, plus parity.

Frontends: XGBoost (JSON, UBJSON, a Booster or the sklearn wrapper), LightGBM (text model,
Booster) and scikit-learn RandomForest, ExtraTrees, GradientBoosting and HistGradientBoosting,
classifiers and regressors (.skops, or a pickle when the user allows it). All go through the
Treelite model; binary, multiclass (one probability per class) and regression.
"""

import ctypes
import json
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np

from edge_convert import ConversionError, kernel
from edge_convert.quiet import captured_output

PARITY_LIMIT = 1e-6
ENTRY_POINT = "edge_predict.c"


# Model files by how their name ends: one frontend each, all in front of the Treelite model.
FORMATS = {
    ".json": "XGBoost JSON", ".ubj": "XGBoost UBJSON", ".txt": "LightGBM text model",
    ".skops": "scikit-learn (skops)", ".joblib": "scikit-learn (joblib pickle)", ".pkl": "scikit-learn (pickle)",
}  # fmt: skip
SKLEARN_ENSEMBLES = (
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
    "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
)  # fmt: skip


def load(path, allow_pickle=False):
    """A tree ensemble from the file a user trained elsewhere: XGBoost JSON/UBJSON, LightGBM text,
    scikit-learn as .skops (or, with allow_pickle, .joblib/.pkl). Returns the library's own model."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConversionError(f"{path}: unknown model file type {suffix or '(none)'}; tree models: {_formats()}")
    try:
        if suffix in (".json", ".ubj"):
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(str(path))
            return booster
        if suffix == ".txt":
            import lightgbm

            return lightgbm.Booster(model_file=str(path))
        if suffix == ".skops":
            import skops.io

            untrusted = skops.io.get_untrusted_types(file=str(path))
            unknown = [t for t in untrusted if not t.startswith(("sklearn.", "numpy.", "builtins."))]
            if unknown:
                raise ConversionError(f"{path}: holds types that are not scikit-learn's: {', '.join(unknown[:5])}")
            model = skops.io.load(str(path), trusted=untrusted)
        else:
            if not allow_pickle:
                raise ConversionError(
                    f"{path}: loading a pickle runs any code inside it; save the model with skops "
                    "(skops.io.dump(model, 'model.skops')), or pass --allow-pickle if you trust this file"
                )
            import joblib

            model = joblib.load(path)
    except ConversionError:
        raise
    except Exception as exc:  # each library raises its own types for a damaged or foreign file
        raise ConversionError(f"{path}: cannot read it as a {FORMATS[suffix]}: {str(exc)[:300]}") from None
    check_supported(model, path)
    return model


def check_supported(model, where="model"):
    """Refuse, naming what works, a model Treelite cannot take (a Pipeline, an SVC, ...)."""
    kind = type(model).__name__
    module = type(model).__module__
    if module.startswith("xgboost") or module.startswith("lightgbm") or kind in SKLEARN_ENSEMBLES:
        return
    hint = " (convert the estimator inside it, and put its preprocessing in the spec)" if kind == "Pipeline" else ""
    raise ConversionError(
        f"{where}: a {kind} cannot be compiled to C{hint}; tree models that can: XGBoost, LightGBM, "
        f"scikit-learn {', '.join(SKLEARN_ENSEMBLES)}"
    )


def _formats():
    return ", ".join(f"{ext} ({what})" for ext, what in FORMATS.items())


def model_task(model):
    """(task, number of classes or 1) the model was trained for, read from the model itself."""
    kind, module = type(model).__name__, type(model).__module__
    if module.startswith("xgboost"):
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        learner = json.loads(booster.save_config())["learner"]
        objective = learner["learner_train_param"]["objective"]
        if objective.startswith("multi:"):
            if objective != "multi:softprob":
                raise ConversionError(f"XGBoost objective {objective}: train with multi:softprob to get probabilities")
            return "multiclass", int(learner["learner_model_param"]["num_class"])
        return ("binary", 1) if objective.startswith(("binary:logistic", "reg:logistic")) else ("regression", 1)
    if module.startswith("lightgbm"):
        booster = model.booster_ if hasattr(model, "booster_") else model
        objective = (
            str(booster.dump_model().get("objective", "")).split()[0] if booster.dump_model().get("objective") else ""
        )
        if objective.startswith("multiclass"):
            return "multiclass", int(booster.dump_model()["num_class"])
        return ("binary", 1) if objective in ("binary", "cross_entropy") else ("regression", 1)
    if kind.endswith("Classifier"):
        n = len(model.classes_)
        return ("binary", 2) if n == 2 else ("multiclass", n)
    return "regression", 1


def to_treelite(model):
    """Import a trained tree ensemble into a Treelite model (the one representation the C comes from)."""
    import treelite

    check_supported(model)
    module = type(model).__module__
    if module.startswith("xgboost"):
        return treelite.frontend.from_xgboost(model.get_booster() if hasattr(model, "get_booster") else model)
    if module.startswith("lightgbm"):
        booster = model.booster_ if hasattr(model, "booster_") else model
        _check_lightgbm(booster)
        return treelite.frontend.from_lightgbm(booster)
    return treelite.sklearn.import_model(model)


def _check_lightgbm(booster):
    """Linear trees have no Treelite form. (Categorical splits do: TL2cgen compiles them, checked by parity.)"""
    if any("leaf_coeff" in json.dumps(tree["tree_structure"]) for tree in booster.dump_model()["tree_info"][:50]):
        raise ConversionError("LightGBM model with linear trees (linear_tree=true): TL2cgen cannot compile them")


def native_outputs(model, X, task="binary"):
    """The model's own prediction on float32 rows: (n,) for binary (positive class) and regression,
    (n, classes) for multiclass."""
    X = np.asarray(X, dtype=np.float32)
    module = type(model).__module__
    if module.startswith("xgboost") and type(model).__name__ == "Booster":
        import xgboost

        out = model.predict(xgboost.DMatrix(X))
    elif (module.startswith("lightgbm") and type(model).__name__ == "Booster") or task == "regression":
        out = model.predict(X)
    else:
        out = model.predict_proba(X)
        out = out[:, 1] if task == "binary" else out
    return np.asarray(out, dtype=np.float64)


def convert(model, X, out_dir, name, toolchains, task="binary", say=lambda msg: None):
    """The tree family's one conversion: model -> Treelite -> TL2cgen C -> a library per arch in
    out_dir/name/, each checked against the model's own prediction on rows X (natively on this
    machine's arch, under qemu-user for the others). toolchains: {arch: toolchain}, this machine's first.

    Returns the manifest's stage entry (name, kind, input, task, outputs, libs, source, parity).
    """
    out_dir = Path(out_dir)
    src = out_dir / name / "src"
    say("generating C with TL2cgen")
    defines = generate_source(model, src)
    host = next(iter(toolchains))
    libs, checks = {}, {}
    for arch, toolchain in toolchains.items():
        lib = out_dir / name / f"{name}-{arch}.so"
        flags = " ".join(toolchain["cflags"])
        say(f"compiling {len(list(src.glob('*.c')))} C files for {arch} with {compiler(toolchain)} {flags}")
        compile_library(src, defines, lib, toolchain)
        if arch == host:
            checks[arch] = parity(model, lib, X, task)
        else:
            with tempfile.TemporaryDirectory() as work:
                checks[arch] = emulated_parity(model, lib, X, toolchain, work, task)
        got = checks[arch]
        say(f"parity {arch}: " + (f"max abs diff {got['max_abs_diff']:.2g} on {got['rows']} rows"
                                  if "max_abs_diff" in got else got["why"]))  # fmt: skip
        libs[arch] = lib.relative_to(out_dir).as_posix()
    return {
        "name": name,
        "kind": "tree-lib",
        "input": "features",
        "task": task,
        "outputs": int(defines["EDGE_NUM_OUTPUT"]),
        "libs": libs,
        "source": src.relative_to(out_dir).as_posix(),
        "tolerance": PARITY_LIMIT,
        "parity": checks,
    }


def generate_source(model, src_dir, parallel_comp=None):
    """Write TL2cgen C source plus our entry point into src_dir; return the -D flags it needs."""
    import tl2cgen

    with captured_output():  # treelite's C++ warns about its own bundled version on every load
        tl_model = to_treelite(model)
    n_trees = _num_trees(tl_model)
    src_dir = Path(src_dir)
    if src_dir.exists():
        shutil.rmtree(src_dir)
    # Always split: one giant translation unit can take gcc tens of minutes.
    parallel = parallel_comp or max(2, min(32, n_trees // 25))
    with captured_output():
        tl2cgen.generate_c_code(tl_model, str(src_dir), params={"parallel_comp": parallel}, verbose=False)
    entry = resources.files("edge_convert").joinpath("csrc", ENTRY_POINT).read_text()
    (src_dir / ENTRY_POINT).write_text(entry)
    for name in kernel.LIBRARY_SOURCES:  # the window kernel and line parser ride in the same library, fused
        (src_dir / name).write_text(kernel.source_text(name))
    task, _ = model_task(model)
    return abi_defines(src_dir / "header.h", _num_features(model), task)


def abi_defines(header, n_features, task="binary"):
    """The -D flags for our entry point, read from TL2cgen's generated header.h."""
    text = Path(header).read_text()
    value_t = re.search(r"union Entry \{[^}]*?\b(float|double) fvalue;", text, re.S)
    result_t = re.search(r"void predict\(union Entry\* data, int pred_margin, (float|double)\* result\)", text)
    n_class = re.search(r"#define MAX_N_CLASS (\d+)", text)
    n_target = re.search(r"#define N_TARGET (\d+)", text)
    if not (value_t and result_t and n_class and n_target):
        raise ConversionError(f"{header}: unexpected TL2cgen header; cannot derive the entry point's ABI")
    n_classes = int(n_class.group(1))
    if int(n_target.group(1)) != 1:
        raise ConversionError(f"a model with {n_target.group(1)} targets: one target per bundle is supported")
    # A binary classifier with two class outputs (scikit-learn) answers with the second: the positive class.
    offset, outputs = (1, 1) if task == "binary" and n_classes == 2 else (0, n_classes)
    return {
        "EDGE_VALUE_T": value_t.group(1),
        "EDGE_RESULT_T": result_t.group(1),
        "EDGE_NUM_FEATURE": str(n_features),
        "EDGE_NUM_OUTPUT": str(outputs),
        "EDGE_OUTPUT_OFFSET": str(offset),
    }


HOST_TOOLCHAIN = {"triple": "", "cflags": ["-O2"], "debian_package": "gcc", "libc_package": "libc6-dev", "qemu": ""}

# What the generated C and our entry points include and link: a toolchain that builds this builds a bundle.
_PROBE_SOURCE = "#include <math.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n#include <dlfcn.h>\n"
_PROBE_SOURCE += 'int main(void) { return (int)sqrt((double)strlen("ok")); }\n'
_probed = {}


def compiler(toolchain):
    """The C compiler of a toolchain (a profile's [toolchain]; HOST_TOOLCHAIN for this machine).

    Checked by building what the bundle builds need (the C library's headers and start files,
    libm, libdl), not by the compiler's name alone; the error names the Debian packages to install.
    """
    cc = f"{toolchain['triple']}-gcc" if toolchain["triple"] else "gcc"
    if shutil.which(cc) is None:
        raise ConversionError(f"C compiler {cc} not found; install it: apt-get install {toolchain['debian_package']}")
    key = (cc, tuple(toolchain["cflags"]))
    if key not in _probed:
        _probed[key] = _probe(cc, toolchain["cflags"])
    if _probed[key]:
        libc = toolchain.get("libc_package", "the C library's development files for this target")
        raise ConversionError(
            f"{cc} cannot build against its C library ({_probed[key]}); install the headers: apt-get install {libc}"
        )
    return cc


def _probe(cc, cflags):
    """'' when cc builds and links a program like ours; else the first line of gcc's complaint."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "probe.c")
        src.write_text(_PROBE_SOURCE)
        proc = subprocess.run(
            [cc, *cflags, str(src), "-o", str(Path(tmp, "probe")), "-lm", "-ldl"], capture_output=True, text=True
        )
    if proc.returncode == 0:
        return ""
    lines = [line for line in proc.stderr.splitlines() if "error" in line] or proc.stderr.splitlines() or ["failed"]
    return lines[0].strip()


def compile_library(src_dir, defines, out_path, toolchain=HOST_TOOLCHAIN, jobs=2):
    """Compile the C source in src_dir into a shared library at out_path, translation units in parallel."""
    cc = compiler(toolchain)
    cflags = list(toolchain["cflags"])
    src_dir, out_path = Path(src_dir), Path(out_path)
    obj_dir = out_path.parent / f".obj-{out_path.stem}"
    obj_dir.mkdir(parents=True, exist_ok=True)
    flags = [*cflags, *kernel.CFLAGS, "-fPIC", "-std=gnu99", *(f"-D{k}={v}" for k, v in defines.items())]
    sources = sorted(src_dir.glob("*.c"))

    def build(src):
        obj = obj_dir / (src.stem + ".o")
        _run([cc, *flags, "-c", str(src), "-o", str(obj)], src.name)
        return obj

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        objects = list(pool.map(build, sources))
    _run([cc, *cflags, "-shared", "-o", str(out_path), *map(str, objects), "-lm"], out_path.name)
    shutil.rmtree(obj_dir)
    return out_path


def library_scores(lib_path, X):
    """Outputs of a compiled library for the rows of X, through its batch entry point:
    (n,) for one output, (n, outputs) for several."""
    lib = ctypes.CDLL(str(Path(lib_path).resolve()))
    rows = np.ascontiguousarray(X, dtype=np.float32)
    if lib.edge_num_feature() != rows.shape[1]:
        raise ConversionError(f"{lib_path}: expects {lib.edge_num_feature()} features, got {rows.shape[1]}")
    outputs = lib.edge_num_output()
    out = np.zeros((len(rows), outputs), dtype=np.float64)
    lib.edge_predict_batch(
        rows.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(len(rows)), out.ctypes.data_as(ctypes.c_void_p)
    )
    return out[:, 0] if outputs == 1 else out


def parity(model, lib_path, X, task="binary"):
    """Max abs difference (per output) between the native model and the library on rows X; raise above the limit."""
    native = native_outputs(model, X, task)
    compiled = library_scores(lib_path, X).astype(np.float64)
    diff = float(np.max(np.abs(native - compiled))) if len(X) else 0.0
    if not diff <= PARITY_LIMIT:
        raise ConversionError(
            f"{lib_path}: compiled model differs from the native model by {diff:.3g} "
            f"(limit {PARITY_LIMIT}) on {len(X)} rows of the data"
        )
    return {"rows": len(X), "max_abs_diff": diff, "limit": PARITY_LIMIT, "status": "ok"}


def emulated_parity(model, lib_path, X, toolchain, work_dir, task="binary"):
    """Run a cross-compiled library on rows X under qemu-user; compare with the native model.

    Returns the parity dict, or {"status": "not run", "why": ...} when qemu-user is missing.
    """
    qemu = toolchain.get("qemu")
    if not qemu or shutil.which(qemu) is None:
        return {"status": "not run", "why": f"{qemu or 'qemu-user'} not installed (apt-get install qemu-user-static)"}
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    runner = work_dir / "parity_main"
    source = resources.files("edge_convert").joinpath("csrc", "parity_main.c")
    with resources.as_file(source) as src:
        _run([compiler(toolchain), *toolchain["cflags"], "-o", str(runner), str(src), "-ldl"], src)
    rows = np.ascontiguousarray(X, dtype=np.float32)
    rows.tofile(work_dir / "rows.f32")
    sysroot = f"/usr/{toolchain['triple']}"
    args = [str(Path(lib_path).resolve()), str(work_dir / "rows.f32"), str(len(rows)), str(rows.shape[1])]
    _run([qemu, "-L", sysroot, str(runner), *args, str(work_dir / "scores.f64")], f"{lib_path} under {qemu}")
    native = native_outputs(model, X, task)
    emulated = np.fromfile(work_dir / "scores.f64", dtype=np.float64).reshape(native.shape)
    diff = float(np.max(np.abs(native - emulated))) if len(native) else 0.0
    if not diff <= PARITY_LIMIT:
        raise ConversionError(
            f"{lib_path}: under {qemu} the library differs from the native model by {diff:.3g} (limit {PARITY_LIMIT})"
        )
    return {"rows": len(rows), "max_abs_diff": diff, "limit": PARITY_LIMIT, "status": "ok", "emulator": qemu}


def _run(cmd, what):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConversionError(f"compiling {what} failed ({' '.join(cmd[:2])} ...):\n{proc.stderr[-2000:]}")


def _num_trees(tl_model):
    return tl_model.num_tree


def _num_features(model):
    """How many inputs the model takes, as the model says."""
    module = type(model).__module__
    if module.startswith("xgboost"):
        return (model.get_booster() if hasattr(model, "get_booster") else model).num_features()
    if module.startswith("lightgbm"):
        return (model.booster_ if hasattr(model, "booster_") else model).num_feature()
    return int(model.n_features_in_)


def num_features(model):
    """Public: the model's input count (checked against the spec before anything is compiled)."""
    return _num_features(model)
