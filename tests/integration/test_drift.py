"""Drift on the board, from the agent's own records: a sensor that shifts halfway through a fleet's stream
raises PSI drift naming that sensor within one PSI window; a stationary stream of over 100k windows raises
nothing; a shift that moves the scores trips the Page-Hinkley test."""

import json

import numpy as np
import pytest

from edge_agent.samples import format_line
from edgectl.data import cmapss, synthetic
from edgectl.windowing import make_windows

pytestmark = pytest.mark.slow
FLEET_SEED = 3  # the engine type of the synthetic_dir fixture, which xgb_build was trained on


def fleet_rows(n_units, seed):
    return synthetic.fleet_stream(n_units, seed, engine_seed=FLEET_SEED)


def serve(bundle_dir, rows, manifest, path, agent):
    path.write_text("".join(format_line(row, manifest["input"]) + "\n" for row in rows))
    got = agent("run", "--bundle", str(bundle_dir), "--input", str(path), timeout=600)
    assert got.returncode == 0, got.stderr
    return [json.loads(line) for line in got.stdout.splitlines()]


def shifted(rows, manifest, sensor, stds, at):
    out = rows.copy()
    scale = manifest["preprocessing"]["scale"][manifest["input"]["features"].index(sensor)]
    out[at:, cmapss.COLUMNS.index(sensor)] += stds * scale
    return out


def test_a_stationary_fleet_stream_of_100k_windows_raises_no_drift(xgb_build, tmp_path, agent):
    rows = fleet_rows(760, seed=21)
    records = serve(xgb_build.bundle_dir, rows, xgb_build.manifest, tmp_path / "fleet.csv", agent)
    windows = sum(r["type"] == "prediction" for r in records)
    assert windows >= 100_000
    assert [r for r in records if r["type"] == "drift"] == []
    assert records[-1]["drift"] == {"drifting": [], "alarms": 0}


def test_a_sensor_shift_halfway_is_named_within_one_psi_window(xgb_build, tmp_path, agent):
    manifest = xgb_build.manifest
    rows = fleet_rows(350, seed=22)
    at = len(rows) // 2
    records = serve(xgb_build.bundle_dir, shifted(rows, manifest, "s2", 0.5, at), manifest, tmp_path / "s.csv", agent)
    drift = [r for r in records if r["type"] == "drift"]
    assert drift, "no drift record after a half-sigma shift of s2"
    first = drift[0]
    assert first["detector"] == "psi" and first["state"] == "drift" and list(first["features"]) == ["s2"]
    assert at < first["samples"] <= at + manifest["drift"]["psi_window"]
    assert records[-1]["drift"] == {"drifting": ["s2"], "alarms": 1}  # the stats say so too


def test_a_shift_that_moves_the_scores_trips_page_hinkley(xgb_build, synthetic_splits, tmp_path, agent):
    manifest = xgb_build.manifest
    train, _ = synthetic_splits
    windows = make_windows(train.rows, manifest, keep_raw=False)
    names = manifest["features"]["names"]
    wear = {
        s: np.corrcoef(windows.features[:, names.index(f"{s}_mean")], xgb_build.y)[0, 1]
        for s in manifest["input"]["features"]
    }
    rows = fleet_rows(350, seed=23)
    at = len(rows) // 2
    moved = rows
    for sensor, r in wear.items():  # every sensor a little towards wear: the fleet looks older than it is
        moved = shifted(moved, manifest, sensor, np.sign(r), at)
    records = serve(xgb_build.bundle_dir, moved, manifest, tmp_path / "ph.csv", agent)
    alarms = [r for r in records if r["type"] == "drift" and r["detector"] == "page-hinkley"]
    assert alarms and all(r["samples"] > at for r in alarms)
    assert alarms[0]["direction"] == "up"
