"""A million samples through the real agent at full speed (benchmarks/agent_load.py on the test bundle):
memory flat after warm-up, no growth in open files, every sample and window accounted for.
Not a timed test: it asserts on memory, files and counts; the benchmark reports the speed."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

SAMPLES = 1_000_000
# A leak of one small object (~50 bytes) per window would add ~4,000 KiB per 100k samples.
MAX_RSS_SLOPE_KB = 256  # per 100k samples, after warm-up


def test_a_million_samples_hold_memory_and_open_files_flat_and_lose_nothing(xgb_build, synthetic_splits):
    argv = [sys.executable, str(ROOT / "benchmarks" / "agent_load.py"), "--samples", str(SAMPLES), "--json"]
    argv += ["--bundle", str(xgb_build.bundle_dir), "--lines", str(synthetic_splits[1].path)]
    got = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    assert got.returncode == 0, got.stderr[-3000:]
    result = json.loads(got.stdout)
    print(  # for the log: the figures the closing note quotes
        f"RSS slope {result['rss_slope_kb_per_100k']:+.1f} KiB/100k samples, RSS {result['rss_after_warmup_kb']} KiB, "
        f"fds {result['fds_range']}, {result['samples_per_s']:,.0f} samples/s, wall {result['wall_s']:.0f} s"
    )
    assert result["samples_counted"] == result["samples_sent"] == SAMPLES
    assert result["predictions"] == result["windows_counted"] == result["windows_expected"] > 0.8 * SAMPLES
    assert result["errors"] == 0
    assert result["streams_held"] == 1024  # the per-stream state filled to its bound during warm-up
    assert result["points_after_warmup"] >= 50
    assert abs(result["rss_slope_kb_per_100k"]) < MAX_RSS_SLOPE_KB
    low, high = result["fds_range"]
    assert low == high == result["fds_start"]  # not one file or socket more at the end than at the start
