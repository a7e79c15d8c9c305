"""Tree ensembles -> Treelite -> TL2cgen C -> a shared library with our entry point, plus parity.

Families: XGBoost (Booster or the sklearn wrapper) and scikit-learn RandomForest,
ExtraTrees, GradientBoosting and HistGradientBoosting classifiers (binary).
"""

import ctypes
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np

from edge_convert import ConversionError
from edge_convert.quiet import captured_output

PARITY_LIMIT = 1e-6
ENTRY_POINT = "edge_predict.c"


def to_treelite(model):
    """Import a trained tree ensemble into a Treelite model."""
    import treelite

    kind = type(model).__name__
    if kind in ("XGBClassifier", "XGBRegressor"):
        return treelite.frontend.from_xgboost(model.get_booster())
    if kind == "Booster" and type(model).__module__.startswith("xgboost"):
        return treelite.frontend.from_xgboost(model)
    if type(model).__module__.startswith("sklearn.ensemble"):
        return treelite.sklearn.import_model(model)
    raise ConversionError(
        f"cannot convert a {kind}: supported are XGBoost and scikit-learn RandomForest, "
        "ExtraTrees, GradientBoosting and HistGradientBoosting"
    )


def native_scores(model, X):
    """Positive-class scores of the model's own predict on float32 rows."""
    X = np.asarray(X, dtype=np.float32)
    if type(model).__name__ == "Booster":
        import xgboost

        return model.predict(xgboost.DMatrix(X))
    return model.predict_proba(X)[:, 1]


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
    return abi_defines(src_dir / "header.h", _num_features(model))


def abi_defines(header, n_features):
    """The -D flags for our entry point, read from TL2cgen's generated header.h."""
    text = Path(header).read_text()
    value_t = re.search(r"union Entry \{[^}]*?\b(float|double) fvalue;", text, re.S)
    result_t = re.search(r"void predict\(union Entry\* data, int pred_margin, (float|double)\* result\)", text)
    n_class = re.search(r"#define MAX_N_CLASS (\d+)", text)
    n_target = re.search(r"#define N_TARGET (\d+)", text)
    if not (value_t and result_t and n_class and n_target):
        raise ConversionError(f"{header}: unexpected TL2cgen header; cannot derive the entry point's ABI")
    if int(n_target.group(1)) != 1 or int(n_class.group(1)) > 2:
        raise ConversionError("only binary classifiers are supported (one target, at most two classes)")
    return {
        "EDGE_VALUE_T": value_t.group(1),
        "EDGE_RESULT_T": result_t.group(1),
        "EDGE_NUM_FEATURE": str(n_features),
        "EDGE_SCORE_INDEX": str(int(n_class.group(1)) - 1),  # two classes: the positive one
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
    flags = [*cflags, "-fPIC", "-std=gnu99", *(f"-D{k}={v}" for k, v in defines.items())]
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
    """Scores of a compiled library for the rows of X, through its batch entry point."""
    lib = ctypes.CDLL(str(Path(lib_path).resolve()))
    rows = np.ascontiguousarray(X, dtype=np.float32)
    if lib.edge_num_feature() != rows.shape[1]:
        raise ConversionError(f"{lib_path}: expects {lib.edge_num_feature()} features, got {rows.shape[1]}")
    out = np.zeros(len(rows), dtype=np.float32)
    lib.edge_predict_batch(
        rows.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(len(rows)), out.ctypes.data_as(ctypes.c_void_p)
    )
    return out


def parity(model, lib_path, X):
    """Max abs difference between the native model and the library on rows X; raise above the limit."""
    native = native_scores(model, X).astype(np.float64)
    compiled = library_scores(lib_path, X).astype(np.float64)
    diff = float(np.max(np.abs(native - compiled))) if len(X) else 0.0
    if not diff <= PARITY_LIMIT:
        raise ConversionError(
            f"{lib_path}: compiled model differs from the native model by {diff:.3g} "
            f"(limit {PARITY_LIMIT}) on {len(X)} held-out rows"
        )
    return {"rows": len(X), "max_abs_diff": diff, "limit": PARITY_LIMIT, "status": "ok"}


def emulated_parity(model, lib_path, X, toolchain, work_dir):
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
    _run([qemu, "-L", sysroot, str(runner), *args, str(work_dir / "scores.f32")], f"{lib_path} under {qemu}")
    emulated = np.fromfile(work_dir / "scores.f32", dtype=np.float32).astype(np.float64)
    diff = float(np.max(np.abs(native_scores(model, X).astype(np.float64) - emulated)))
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
    if type(model).__name__ == "Booster":
        return model.num_features()
    return int(model.n_features_in_)
