"""A synthetic vibration data set as a user's sensors would log it: a CSV with a header, machine ids,
ISO 8601 timestamps, 3-axis vibration and temperature, a state label and a wear percentage.

Each machine runs through segments of three states: `normal`, `cavitation` (broadband noise,
strongest on z) and `bearing` (a growing once-per-revolution tone on x and y, and heat). Wear
rises over each machine's life. Deterministic by seed; not C-MAPSS, on purpose.
"""

import datetime
from pathlib import Path

import numpy as np

STATES = ("normal", "cavitation", "bearing")
COLUMNS = ("machine", "ts", "vib_x", "vib_y", "vib_z", "temp_c", "state", "wear_pct")


def rows(machines=6, samples=1200, seed=7, start="2026-03-01T00:00:00"):
    """The data set as a list of string rows (no header), machines interleaved in time order."""
    rng = np.random.default_rng(seed)
    t0 = datetime.datetime.fromisoformat(start).replace(tzinfo=datetime.timezone.utc)
    per_machine = [_machine(rng, f"pump-{m + 1:02d}", samples) for m in range(machines)]
    out = []
    for i in range(samples):
        stamp = (t0 + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for machine in per_machine:
            row = machine[i]
            out.append([row[0], stamp, *(f"{v:.5f}" for v in row[1:5]), row[5], f"{row[6]:.2f}"])
    return out


def _machine(rng, name, n):
    segment = max(20, n // 8)
    states = np.repeat(rng.integers(0, len(STATES), size=n // segment + 1), segment)[:n]
    states[:segment] = 0  # every machine starts healthy
    wear = np.clip(np.linspace(0, rng.uniform(60, 100), n) + rng.normal(0, 0.5, n), 0, 100)
    phase = np.arange(n) * 2 * np.pi / rng.uniform(7, 9)
    base = rng.normal(0, 1, size=3) * 0.05
    vib = rng.normal(0, 0.1, size=(n, 3)) + base
    vib[:, 2] += np.where(states == 1, rng.normal(0, 0.6, n), 0)
    tone = np.where(states == 2, 0.5 + wear / 100, 0)
    vib[:, 0] += tone * np.sin(phase)
    vib[:, 1] += tone * np.cos(phase)
    temp = 40 + wear * 0.2 + np.where(states == 2, 6, 0) + rng.normal(0, 0.3, n)
    return [(name, *vib[i], temp[i], STATES[states[i]], wear[i]) for i in range(n)]


def write(path, machines=6, samples=1200, seed=7):
    """Write the CSV (comma separated, header first); return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        for row in rows(machines, samples, seed):
            f.write(",".join(row) + "\n")
    return path
