"""Coverage-guided fuzzing with atheris (libFuzzer) of the sample parser, the frame decoder and the bundle loader.

Each target runs in its own process (libFuzzer exits when done) on a real bundle,
seeded with real inputs; a crash is an uncaught exception, and the run fails.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing

from edge_agent.framing import encode

pytestmark = pytest.mark.slow

HARNESS = Path(__file__).resolve().parents[1] / "atheris_targets.py"
RUNS = {"samples": 40_000, "frames": 40_000, "manifest": 20_000}
MAX_LEN = {"samples": 4096, "frames": 4096, "manifest": 32768}  # the manifest seed is about 14 KB


def seeds(target, bundle, test_file):
    if target == "samples":
        lines = test_file.read_bytes().splitlines()
        return [b"\n".join(lines[:3]), lines[0], b'{"unit": 1, "cycle": 2}']
    if target == "frames":
        return [encode("S", 7, lines) for lines in (b"1 2 3", b"")] + [encode("H", 0, b"session") * 2]
    return [(bundle / "manifest.json").read_bytes()]


@pytest.mark.parametrize("target", sorted(RUNS))
def test_atheris_finds_no_crash(target, xgb_build, synthetic_splits, tmp_path, fuzz):
    try:
        import atheris  # noqa: F401
    except ImportError:
        missing("atheris (the test extra installs it on x86_64 Linux: make test)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds(target, xgb_build.bundle_dir, synthetic_splits[1].path)):
        (corpus / f"seed{i}").write_bytes(seed)
    proc = subprocess.run(
        [sys.executable, str(HARNESS), str(corpus), f"-runs={RUNS[target]}", "-seed=1", f"-max_len={MAX_LEN[target]}"],
        env=dict(os.environ, FUZZ_TARGET=target, FUZZ_BUNDLE=str(xgb_build.bundle_dir)),
        cwd=tmp_path,  # where libFuzzer writes a crashing input
        capture_output=True,
        text=True,
        timeout=900,
    )
    done = re.search(r"Done (\d+) runs", proc.stderr)
    fuzz.count(f"atheris {target}", int(done.group(1)) if done else 0)
    if proc.returncode != 0:
        crash = re.search(r"Uncaught Python exception: ===\n(.*)", proc.stderr)
        fuzz.crash(
            f"atheris {target}", "uncaught", "see the test output", crash.group(1) if crash else proc.stderr[-200:]
        )
    assert proc.returncode == 0 and done, proc.stderr[-3000:]
