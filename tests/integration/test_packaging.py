"""The wheel, installed without -e, works from any directory: its profiles, schemas and C sources are inside it."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

CHECK = """
import json, edgectl, edge_agent, edge_convert
from importlib import resources
from edgectl import profiles
from edge_agent import schema
print(json.dumps({
    "edgectl": edgectl.__file__, "edge_agent": edge_agent.__file__,
    "profiles": sorted(profiles.load_all()),
    "schema": schema.load("manifest.schema.json")["title"],
    "csrc": sorted(p.name for p in resources.files("edge_convert").joinpath("csrc").iterdir()),
    "bench_schema": resources.files("edgectl").joinpath("schemas", "bench-v1.schema.json").is_file(),
}))
"""


def test_a_wheel_installed_elsewhere_finds_its_profiles_schemas_and_c_sources(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    wheels, target, src = tmp_path / "wheels", tmp_path / "site", tmp_path / "src"
    src.mkdir()
    for part in ("pyproject.toml", "README.md", "host", "device", "converters"):  # a build leaves build/ behind
        path = os.path.join(root, part)
        if os.path.isdir(path):
            shutil.copytree(path, src / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, src / part)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("edgectl-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    env = dict(os.environ, PYTHONPATH=str(target))  # ahead of this checkout's editable install
    env.pop("EDGECTL_PROFILES", None)
    got = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert got.returncode == 0, got.stderr
    found = json.loads(got.stdout)
    assert found["edgectl"].startswith(str(target)) and found["edge_agent"].startswith(str(target))
    assert "rpi4" in found["profiles"] and len(found["profiles"]) == 8
    assert found["schema"].startswith("edgectl bundle manifest")
    assert {"edge_predict.c", "parity_main.c"} <= set(found["csrc"]) and found["bench_schema"]
    listed = subprocess.run([sys.executable, "-m", "edgectl.cli", "profiles", "--json"], capture_output=True,
                            text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert listed.returncode == 0 and "rpi4" in listed.stdout
