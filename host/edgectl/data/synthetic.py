"""A small synthetic turbofan fleet in the C-MAPSS file format, deterministic by seed.

Each unit runs to failure: a health index falls from 1 along a noisy power law,
and 14 informative sensors drift with it (some up, some down), the other 7 stay
flat as in FD001. With n_conditions > 1, each cycle runs in one of several
operating conditions that shift the settings and the sensor baselines (FD002-like).
"""

from pathlib import Path

import numpy as np

from edgectl.data import cmapss

FLAT_SENSORS = (1, 5, 6, 10, 16, 18, 19)  # constant in FD001


def engine_type(rng, n_conditions=1):
    """The fleet's shared physics: sensor baselines, wear gains, noise, operating conditions."""
    return {
        "baselines": rng.uniform(5, 50, size=21) * 10,
        "gains": rng.uniform(0.5, 2.0, size=21) * rng.choice([-1, 1], size=21),
        "noise": rng.uniform(0.1, 0.4, size=21),
        "conditions": rng.normal(0, 1, size=(n_conditions, 21)) * 20 if n_conditions > 1 else np.zeros((1, 21)),
        "settings": rng.uniform(0, 40, size=(n_conditions, 3)) if n_conditions > 1 else np.zeros((1, 3)),
    }


def fleet(engine, n_units, rng, truncate=False):
    """Rows (n, 26) of n_units units run to failure, or stopped early (truncate) with their RUL."""
    n_conditions = len(engine["conditions"])
    rows, ruls = [], []
    for unit in range(1, n_units + 1):
        life = int(rng.integers(130, 340))
        power = rng.uniform(1.5, 3.0)
        end = int(rng.integers(max(31, life // 4), life)) if truncate else life
        t = np.arange(1, end + 1)
        wear = (t / life) ** power + rng.normal(0, 0.01, size=end)
        cond = rng.integers(0, n_conditions, size=end)
        sensors = (
            engine["baselines"]
            + engine["conditions"][cond]
            + np.outer(wear, engine["gains"] * 8)
            + rng.normal(0, 1, (end, 21)) * engine["noise"]
        )
        for s in FLAT_SENSORS:
            sensors[:, s - 1] = engine["baselines"][s - 1]
        settings = engine["settings"][cond] + rng.normal(0, 0.002, size=(end, 3))
        rows.append(np.column_stack([np.full(end, unit), t, settings, sensors]))
        ruls.append(life - end)
    return np.vstack(rows), np.array(ruls)


def write_subset(out_dir, subset="FD001", n_train=60, n_test=40, n_conditions=1, seed=7):
    """Write train_/test_/RUL_<subset>.txt into out_dir; return the directory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    engine = engine_type(rng, n_conditions)
    train, _ = fleet(engine, n_train, rng)
    test, rul = fleet(engine, n_test, rng, truncate=True)
    cmapss.write_table(out_dir / f"train_{subset}.txt", train)
    cmapss.write_table(out_dir / f"test_{subset}.txt", test)
    (out_dir / f"RUL_{subset}.txt").write_text("".join(f"{int(r)} \n" for r in rul))
    return out_dir


def interleaved(rows, concurrent, rng):
    """A fleet's rows as one board would see them from `concurrent` engines at once: round robin, the first
    engines joined mid-life, a new engine as soon as one fails; it ends while the fleet is still full, so
    the mix of life stages stays as in training throughout (a stationary stream)."""
    units = [rows[rows[:, 0] == u] for u in np.unique(rows[:, 0])]
    if len(units) <= concurrent:
        raise ValueError(f"an interleaved fleet of {concurrent} engines needs more than {concurrent} units")
    active = {k: int(rng.integers(0, len(units[k]) - 1)) for k in range(min(concurrent, len(units)))}
    following, out = len(active), []
    while len(active) == concurrent:
        for k in list(active):
            out.append(units[k][active[k]])
            active[k] += 1
            if active[k] == len(units[k]):
                del active[k]
                if following < len(units):
                    active[following] = 0
                    following += 1
    return np.array(out)


def fleet_stream(n_units, seed, concurrent=200, engine_seed=7):
    """A long stationary stream (interleaved, see below) from n_units engines of the fleet that
    write_subset(seed=engine_seed) trains on: drift and load tests feed it to the agent."""
    engine = engine_type(np.random.default_rng(engine_seed))
    rows, _ = fleet(engine, n_units, np.random.default_rng(seed))
    return interleaved(rows, concurrent, np.random.default_rng(seed + 1))
