"""The README's "Your model, your data" walk-through, run as written: every command of its sh block,
in order, from a directory laid out like the project (its .venv and examples/)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def walkthrough():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Your model, your data", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_walkthrough_runs_as_written(tmp_path):
    commands = walkthrough()
    assert any(c.startswith(".venv/bin/edgectl convert") for c in commands) and len(commands) >= 8
    os.symlink(Path(sys.prefix), tmp_path / ".venv")  # the venv running this test
    os.symlink(ROOT / "examples", tmp_path / "examples")
    for command in commands:
        got = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert got.returncode == 0, f"{command}\n{got.stdout[-1000:]}\n{got.stderr[-2000:]}"
    ran = subprocess.run(["bash", "-c", commands[-2]], cwd=tmp_path, capture_output=True, text=True)
    assert re.search(r"\d+ windows, 0 bad lines", ran.stdout), ran.stdout
