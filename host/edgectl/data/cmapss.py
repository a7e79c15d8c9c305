"""NASA C-MAPSS turbofan data in its original format, and the "fails within H cycles" label.

Files: train_FDxxx.txt, test_FDxxx.txt (26 space-separated numbers a line: unit,
cycle, 3 operational settings, 21 sensors) and RUL_FDxxx.txt (the remaining
useful life of each test unit after its last cycle).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.samples import field_text
from edgectl.errors import EdgectlError

COLUMNS = ["unit", "cycle", "setting1", "setting2", "setting3"] + [f"s{i}" for i in range(1, 22)]
SETTINGS = COLUMNS[2:5]
SENSORS = COLUMNS[5:]


@dataclass
class Split:
    """One file of a subset: the rows (n, 26) and the RUL at every row."""

    rows: np.ndarray
    rul: np.ndarray
    path: Path

    @property
    def units(self):
        return self.rows[:, 0].astype(int)


def read_table(path):
    """Read a train or test file into an (n, 26) float array; say which line is bad if one is."""
    path = Path(path)
    if not path.is_file():
        raise EdgectlError(f"{path}: no such C-MAPSS file")
    rows = []
    with open(path, encoding="ascii", errors="replace") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != len(COLUMNS):
                raise EdgectlError(f"{path}:{number}: expected {len(COLUMNS)} values, found {len(fields)}")
            try:
                rows.append([float(v) for v in fields])
            except ValueError:
                raise EdgectlError(f"{path}:{number}: a value is not a number") from None
    if not rows:
        raise EdgectlError(f"{path}: the file is empty")
    return np.array(rows)


def rul_from_end(rows, rul_at_end=None):
    """Remaining useful life at every row: cycles to the unit's last row, plus its RUL there."""
    units = rows[:, 0].astype(int)
    cycles = rows[:, 1]
    rul = np.empty(len(rows))
    for i, unit in enumerate(np.unique(units)):
        mask = units == unit
        extra = 0.0 if rul_at_end is None else rul_at_end[i]
        rul[mask] = cycles[mask].max() - cycles[mask] + extra
    return rul


def load(data_dir, subset="FD001"):
    """Load a subset's train and test splits from a directory of the original files."""
    data_dir = Path(data_dir)
    train_rows = read_table(data_dir / f"train_{subset}.txt")
    test_rows = read_table(data_dir / f"test_{subset}.txt")
    rul_path = data_dir / f"RUL_{subset}.txt"
    if not rul_path.is_file():
        raise EdgectlError(f"{rul_path}: missing; the test split needs the true RUL of each unit")
    rul_end = np.array([float(v) for v in rul_path.read_text().split()])
    n_units = len(np.unique(test_rows[:, 0]))
    if len(rul_end) != n_units:
        raise EdgectlError(f"{rul_path}: {len(rul_end)} values for {n_units} test units")
    return (
        Split(train_rows, rul_from_end(train_rows), data_dir / f"train_{subset}.txt"),
        Split(test_rows, rul_from_end(test_rows, rul_end), data_dir / f"test_{subset}.txt"),
    )


def labels(rul, horizon=30):
    """1 where the unit fails within `horizon` cycles, else 0."""
    return (np.asarray(rul) <= horizon).astype(np.int8)


LABEL = "fails_within_{}"  # the label column the recipe writes: 1 when the unit fails within that many cycles
RUL_LABEL = "rul_capped_{}"  # or, for a regression: the cycles left, capped (early life all looks alike)


def label_horizon(manifest):
    """The horizon of a C-MAPSS bundle's label (version 3: its label column's name; before: label.horizon;
    a regression on the cycles left: its alarm level)."""
    if "horizon" in manifest.get("label", {}):
        return manifest["label"]["horizon"]
    name = manifest.get("output", {}).get("label") or ""
    if name.startswith(RUL_LABEL.format("")) and manifest["output"].get("threshold") is not None:
        return int(manifest["output"]["threshold"])
    prefix = LABEL.format("")
    return int(name[len(prefix) :]) if name.startswith(prefix) and name[len(prefix) :].isdigit() else None


def label_lookup(split, input_spec, horizon):
    """{(stream, t): label} for every row of a split, keyed as the agent names windows."""
    stream_field = input_spec["stream_field"]
    return {
        (field_text(stream_field, row[0], input_spec), float(row[1])): int(y)
        for row, y in zip(split.rows, labels(split.rul, horizon))
    }


def write_csv(path, split, horizon, rul_cap=None):
    """Write a split as a CSV file with a header and the label column (what `edgectl train` reads): "fails
    within `horizon` cycles", or with rul_cap the cycles left capped at rul_cap."""
    label = RUL_LABEL.format(rul_cap) if rul_cap else LABEL.format(horizon)
    values = np.minimum(split.rul, rul_cap).astype(int) if rul_cap else labels(split.rul, horizon)
    with open(path, "w") as f:
        f.write(",".join([*COLUMNS, label]) + "\n")
        for row, y in zip(split.rows, values):
            f.write(",".join([str(int(row[0])), str(int(row[1])), *map(repr, row[2:].tolist()), str(int(y))]) + "\n")
    return Path(path)


def write_table(path, rows):
    """Write rows in the original format (unit and cycle as integers, two trailing spaces)."""
    with open(path, "w") as f:
        for row in rows:
            head = f"{int(row[0])} {int(row[1])}"
            f.write(head + " " + " ".join(f"{v:.4f}" for v in row[2:]) + "  \n")


def labelled(path):
    """(the C-MAPSS split the data file is, or None; what the labels are or why there are none).

    test_FDxxx.txt takes its labels from RUL_FDxxx.txt beside it; train_FDxxx.txt from its own
    run-to-failure rows.
    """
    name = path.name
    if name.startswith("test_") and name.endswith(".txt"):
        rul_path = path.with_name("RUL_" + name[len("test_") :])
        if not rul_path.is_file():
            return None, f"no labels: {rul_path.name} is not beside {name}"
        rows = read_table(path)
        rul_end = [float(v) for v in rul_path.read_text().split()]
        units = len(set(rows[:, 0].tolist()))
        if len(rul_end) != units:
            return None, f"no labels: {rul_path.name} has {len(rul_end)} values for {units} units in {name}"
        return Split(rows, rul_from_end(rows, rul_end), path), f"labels from {rul_path.name}"
    if name.startswith("train_") and name.endswith(".txt"):
        rows = read_table(path)
        return Split(rows, rul_from_end(rows), path), f"labels from {name} (run to failure)"
    return None, f"no labels: {name} is not a C-MAPSS test_FDxxx.txt or train_FDxxx.txt file"
