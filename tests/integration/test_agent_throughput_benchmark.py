"""benchmarks/agent_throughput.py runs end to end (one round, synthetic data): the agent's configurations and
the C program do the same work on the same file (the same windows), and the paced runs of both serve every
sample. Not a timed test: the benchmark reports the speed; this keeps it working."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_throughput_benchmark_runs_the_agent_beside_the_c_program(tmp_path):
    argv = [sys.executable, str(ROOT / "benchmarks" / "agent_throughput.py"), "--data", str(tmp_path / "none"),
            "--no-int8", "--repeat", "1", "--json"]  # fmt: skip
    got = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert got.returncode == 0, got.stderr[-3000:]
    result = json.loads(got.stdout)
    for bundle in ("xgboost s1", "xgboost s10"):
        rows = {r["bundle"]: r for r in result["rows"] if r["bundle"].startswith(bundle + " (")}
        labels = [f"{bundle} ({way})" for way in ("blocks", "lines", "python")]
        assert sorted(rows) == sorted([*labels, f"{bundle} (C program)"])
        c_windows = rows[f"{bundle} (C program)"]["windows"]
        assert c_windows > 0  # and every configuration of the agent makes the same windows:
        agent_rows = [r for r in result["rows"] if r["bundle"] in labels]
        assert len(agent_rows) == 6  # each way with drift and without
        assert all(r["windows"] == c_windows and r["samples_per_s"] > 0 and r["x_c"] > 0 for r in agent_rows)
    assert [r["bundle"] for r in result["paced"]] == ["xgb-s1 (agent)", "xgb-s1 (C program)"]
    for row in result["paced"]:
        assert row["samples"] == result["samples"]
        assert 0 < row["p50"] <= row["p90"] <= row["p99"]
        assert row["p99_range"] == f"{row['p99']:.1f}"  # one round: its own p99
