"""The window kernel's C source (csrc/edge_window.c): built into every tree library of a bundle, and
built once for this host, where training computes its features through it (edgectl/windowing.py).

Compiled without fused multiply-adds, on every arch: they would round differently from numpy,
and the kernel's features must equal the Python reference's (edge_agent/windows.py) exactly.
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from edge_convert import ConversionError

SOURCE = "edge_window.c"
LINES = "edge_lines.c"  # plain sample lines parsed in C: the agent's block path
FUSED = "edge_serve.c"  # in tree libraries only: edge_window_predict feeds the window to edge_predict
HOST_SOURCES = (SOURCE, LINES)
LIBRARY_SOURCES = (SOURCE, LINES, FUSED)  # what every tree library carries beside the model
CFLAGS = ["-ffp-contract=off", "-fno-fast-math"]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgectl" / "kernels"
_loaded = {}


def source_text(name=SOURCE):
    return resources.files("edge_convert").joinpath("csrc", name).read_text()


def host_kernel():
    """This host's build of the kernel, loaded (ctypes.CDLL), built into the cache on first use; None
    where no C compiler is installed (the Python reference then computes the same features)."""
    cc = shutil.which("gcc")
    if cc is None:
        return None
    texts = [source_text(name) for name in HOST_SOURCES]
    key = hashlib.sha256("\0".join([*texts, cc, *CFLAGS]).encode()).hexdigest()[:16]
    if key not in _loaded:
        path = CACHE / key / "libedge_window.so"
        if not path.exists():
            _build(cc, texts, path)
        _loaded[key] = ctypes.CDLL(str(path))
    return _loaded[key]


def _build(cc, texts, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        sources, out = [Path(tmp, name) for name in HOST_SOURCES], Path(tmp, path.name)
        for src, text in zip(sources, texts):
            src.write_text(text)
        cmd = [cc, "-O2", *CFLAGS, "-std=gnu99", "-fPIC", "-shared", "-o", str(out), *map(str, sources), "-lm"]
        got = subprocess.run(cmd, capture_output=True, text=True)
        if got.returncode != 0:
            raise ConversionError(f"compiling the window kernel failed ({cc}):\n{got.stderr[-2000:]}")
        os.replace(out, path)  # atomic: a concurrent build of the same key loses nothing
