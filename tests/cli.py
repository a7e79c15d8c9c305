"""Running the real `edgectl` command in a test: one way, shared by every CLI test."""

import os
import subprocess
import sys


def edgectl(*args, cwd=None, env=None, timeout=600):
    """`edgectl ARGS` in a subprocess (this interpreter); the CompletedProcess, text mode."""
    return subprocess.run(
        [sys.executable, "-m", "edgectl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
