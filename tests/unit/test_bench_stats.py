"""The bench's statistics and board readers: MLPerf's early-stopping estimate, throttling flags,
board identity under the sysfs testing hook, and which profile a board model picks."""

from fractions import Fraction
from math import comb

import numpy as np
import pytest
from boards.arm64 import CPUINFO_A72

from edge_agent import bench_stats, boardinfo
from edgectl.bench import throttling
from edgectl.profiles import matches_model


def loadgen_discard(n, p=Fraction(9, 10), c=Fraction(99, 100)):
    """LoadGen's SingleStream loop as written (results.cc): t from the minimum passing h for each i, exactly."""

    def odds(h, t):  # P(at most t over-latency queries among h + t) = BetaRegularized[p, h, 1 + t]
        return sum(comb(h + t, x) * (1 - p) ** x * p ** (h + t - x) for x in range(t + 1))

    def min_passing(t):
        h = 1
        while odds(h, t) > 1 - c:
            h += 1
        return h

    if n < min_passing(1) + 1:
        return None
    t = 1
    for i in range(2, n + 1):
        if n < min_passing(i) + i:
            t = i - 1
            break
    return t


@pytest.mark.parametrize("n", [64, 65, 100, 257])
def test_early_stopping_matches_loadgens_definition(n):
    latencies = np.arange(1, n + 1, dtype=float)  # the k-th lowest latency is k
    got = bench_stats.early_stopping(latencies)
    t = loadgen_discard(n)
    assert got["estimate_us"] == latencies[n - t] and got["discarded"] == t - 1
    assert got["min_queries"] == 64  # LoadGen: "Need to process at least 64 queries" for p90 at 99 %


def test_early_stopping_with_too_few_queries_says_how_many_it_needs():
    got = bench_stats.early_stopping(np.arange(63, dtype=float))
    assert got["estimate_us"] is None and got["min_queries"] == 64


def test_the_p90_bound_tightens_towards_p90_with_more_queries():
    rng = np.random.default_rng(0)
    bounds = []
    for n in (100, 1000, 4096, 50_000):
        sample = np.sort(rng.exponential(100.0, n))
        bound = bench_stats.early_stopping(sample)["estimate_us"]
        assert bound >= np.percentile(sample, 90)
        bounds.append(bound / np.percentile(sample, 90))
    assert bounds == sorted(bounds, reverse=True) and bounds[-1] < 1.02


def test_throttle_flags_decode_and_judge():
    flags = boardinfo.decode_throttled("50005")
    assert flags == {
        "raw": "0x50005",
        "now": ["under-voltage", "throttled"],
        "since_boot": ["under-voltage", "throttled"],
    }
    clear = boardinfo.decode_throttled("0x0")
    history = boardinfo.decode_throttled("0x40000")
    thermal = {"before": {"throttled": clear}, "after": {"throttled": history}}
    assert throttling(thermal) == {"status": "throttled", "why": "occurred during the run: throttled"}
    thermal = {"before": {"throttled": history}, "after": {"throttled": history}}
    assert (
        throttling(thermal)["status"] == "not throttled" and "before the run: throttled" in throttling(thermal)["why"]
    )
    assert throttling({"before": {"throttled": None}, "after": {"throttled": None}})["status"] == "unknown"
    assert boardinfo.decode_throttled("garbage") is None


def test_board_identity_reads_the_fake_tree_and_reports_absent_sources(tmp_path, monkeypatch):
    monkeypatch.setenv(boardinfo.SYSFS_ROOT_ENV, str(tmp_path))
    empty = boardinfo.identity()
    assert empty["model"] is None and empty["cpu"] is None and empty["cpufreq_khz"] is None
    assert boardinfo.thermal() == {"temp_c": None, "temp_source": None, "throttled": None, "throttled_source": None}
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(CPUINFO_A72)
    freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
    freq.mkdir(parents=True)
    (freq / "scaling_cur_freq").write_text("600000\n")
    (freq / "cpuinfo_max_freq").write_text("1800000\n")
    for i, (kind, milli) in enumerate((("acpitz", "30000"), ("cpu-thermal", "55250"))):
        zone = tmp_path / f"sys/class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind)
        (zone / "temp").write_text(milli)
    board = boardinfo.identity()
    assert board["model"] == "Raspberry Pi 4 Model B Rev 1.4" and board["model_source"] == "/proc/cpuinfo"
    assert board["cpu"] == "Cortex-A72 (BCM2835)" and board["cpufreq_khz"] == {"cur": 600000, "max": 1800000}
    assert boardinfo.temperature_c() == 55.25  # the CPU zone, not the first one


@pytest.mark.parametrize(
    "model, board, match",
    [
        ("Raspberry Pi 4 Model B Rev 1.4", "Raspberry Pi 4 Model B (64-bit Raspberry Pi OS)", True),
        ("Raspberry Pi 400 Rev 1.0", "Raspberry Pi 4 Model B (64-bit Raspberry Pi OS)", False),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "Raspberry Pi 3 Model B/B+ (32-bit Raspberry Pi OS)", True),
        ("Raspberry Pi 500 Rev 1.0", "Raspberry Pi 5 (64-bit Raspberry Pi OS)", False),
        ("NVIDIA Jetson Orin Nano Developer Kit", "NVIDIA Jetson Nano (JetPack 4.6, Ubuntu 18.04)", False),
        ("NVIDIA Jetson Orin Nano Developer Kit", "NVIDIA Jetson Orin Nano (JetPack 6, Ubuntu 22.04)", True),
    ],
)
def test_a_board_model_picks_its_profile(model, board, match):
    assert matches_model(model, board) is match
