"""UCI SECOM semiconductor yield data in its original format, and a synthetic stand-in of the same shape.

Files: secom.data (one production entity a line: 590 space-separated readings,
`NaN` where a reading is missing) and secom_labels.data (`-1 "19/07/2008 11:55:00"`:
-1 pass, 1 fail, then a quoted timestamp). Line i of one file is line i of the other.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from edgectl.errors import EdgectlError

N_FEATURES = 590
FEATURES = [f"f{i:03d}" for i in range(N_FEATURES)]
DATA = "secom.data"
LABELS = "secom_labels.data"
TIME_FORMAT = "%d/%m/%Y %H:%M:%S"


@dataclass
class Secom:
    """The readings X (n, 590) with NaN where missing, the 0/1 labels y (1 = fail), and their timestamps."""

    path: Path
    X: np.ndarray
    y: np.ndarray
    times: list


def read_lines(path):
    """The file's lines without trailing blank ones; an empty file is an error."""
    lines = Path(path).read_text(encoding="ascii", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise EdgectlError(f"{path}: the file is empty")
    return lines


def read_data(path, n_features=N_FEATURES):
    """Read secom.data into an (n, n_features) float array; say which line and reading is bad if one is."""
    rows = []
    for number, line in enumerate(read_lines(path), 1):
        fields = line.split()
        if len(fields) != n_features:
            raise EdgectlError(f"{path}:{number}: expected {n_features} readings, found {len(fields)}")
        try:
            rows.append(np.array(fields, dtype=np.float64))
        except ValueError:
            bad = next(i for i, v in enumerate(fields) if not is_number(v))
            raise EdgectlError(f"{path}:{number}: reading {bad + 1} is not a number or NaN: {fields[bad]!r}") from None
    return np.vstack(rows)


def is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_labels(path):
    """Read secom_labels.data into 0/1 labels (1 = fail) and the timestamps as written."""
    y, times = [], []
    for number, line in enumerate(read_lines(path), 1):
        label, _, stamp = line.strip().partition(" ")
        stamp = stamp.strip()
        if label not in ("-1", "1"):
            raise EdgectlError(f"{path}:{number}: the label must be -1 (pass) or 1 (fail), found {label!r}")
        if not stamp.startswith('"'):
            raise EdgectlError(
                f'{path}:{number}: expected a quoted timestamp after the label, like "19/07/2008 11:55:00"'
            )
        if len(stamp) < 2 or not stamp.endswith('"'):
            raise EdgectlError(f"{path}:{number}: unterminated timestamp {stamp}: no closing quote")
        try:
            datetime.strptime(stamp[1:-1], TIME_FORMAT)
        except ValueError:
            raise EdgectlError(f"{path}:{number}: timestamp {stamp} is not DD/MM/YYYY HH:MM:SS") from None
        y.append(1 if label == "1" else 0)
        times.append(stamp[1:-1])
    return np.array(y, dtype=np.int8), times


def load(data_dir, n_features=N_FEATURES):
    """Load secom.data and secom_labels.data from a directory of the original files."""
    data_dir = Path(data_dir)
    for name in (DATA, LABELS):
        if not (data_dir / name).is_file():
            raise EdgectlError(f"{data_dir / name}: missing; a SECOM directory holds the UCI files {DATA} and {LABELS}")
    X = read_data(data_dir / DATA, n_features)
    y, times = read_labels(data_dir / LABELS)
    if len(X) != len(y):
        raise EdgectlError(
            f"{data_dir}: {DATA} has {len(X)} lines but {LABELS} has {len(y)}; they must match line for line"
        )
    return Secom(data_dir / DATA, X, y, times)


def reading(value):
    """One reading as UCI wrote them: up to 4 decimals, no trailing zeros, NaN where missing."""
    if value != value:  # NaN; a plain float test, as this runs once a reading
        return "NaN"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def write_data(path, X):
    """Write readings in the original format (CRLF line endings, like the UCI labels file)."""
    with open(path, "w", newline="\r\n") as f:
        for row in X.tolist():
            f.write(" ".join(map(reading, row)) + "\n")


def write_labels(path, y, times):
    with open(path, "w", newline="\r\n") as f:
        for label, stamp in zip(y, times):
            f.write(f'{1 if label else -1} "{stamp}"\n')


# The synthetic stand-in: SECOM's shape, proportions and difficulty, none of its values.
FAIL_RATE = 104 / 1567
CONSTANT_SHARE = 116 / 590
START = datetime(2008, 7, 19, 11, 55)


def columns(rng, n_features):
    """Each column's role and scale: constant, mostly missing, carrying the fail signal, or plain noise."""
    order = rng.permutation(n_features)
    n_constant = round(n_features * CONSTANT_SHARE)
    magnitude = 10 ** rng.uniform(-3, 3.5, n_features)  # from ~1e-3 to ~3e3, as in SECOM
    return {
        "constant": order[:n_constant],
        "mostly_missing": order[n_constant : n_constant + max(1, n_features // 20)],
        "signal": order[-8:],  # a handful that shift for fails
        "missing_on_fail": order[-10:-8],  # missing more often for fails
        "center": magnitude * rng.choice([1, 1, 1, -1], n_features) * 10 ** rng.uniform(0, 1, n_features),
        "spread": np.maximum(magnitude * 10 ** rng.uniform(-1.5, -0.3, n_features), 5e-4),
        "integer": rng.random(n_features) < 0.08,  # counts and set points, as SECOM has some
    }


def readings(rng, cols, y):
    """Heavy-tailed readings (Student t, 3 degrees of freedom) with a weak shift on fails in the signal columns."""
    n, n_features = len(y), len(cols["center"])
    z = rng.standard_t(3, (n, n_features))
    fails = y == 1
    shift = rng.uniform(0.35, 0.6, len(cols["signal"])) * rng.choice([-1, 1], len(cols["signal"]))
    z[np.ix_(fails, cols["signal"])] += shift
    X = cols["center"] + z * cols["spread"]
    integer = cols["integer"] & (cols["spread"] > 2)  # rounding a narrower column would flatten it
    X[:, integer] = np.round(X[:, integer])
    constant = cols["constant"]
    X[:, constant] = np.where(rng.random(len(constant)) < 0.8, 0.0, np.round(cols["center"][constant]))
    return np.round(X, 4)


def blanks(rng, cols, y):
    """Where readings go missing: a few columns mostly, most a little, some entities in blocks, more on fails."""
    n, n_features = len(y), len(cols["center"])
    rate = np.tile(rng.exponential(0.007, n_features), (n, 1))
    rate[:, cols["mostly_missing"]] = rng.uniform(0.55, 0.95, len(cols["mostly_missing"]))
    rate[:, cols["missing_on_fail"]] = 0.05
    rate[np.ix_(y == 1, cols["missing_on_fail"])] += 0.2
    missing = rng.random((n, n_features)) < rate
    for row in rng.choice(n, n // 50, replace=False):  # a sensor group down for one entity
        start = rng.integers(n_features)
        missing[row, start : start + rng.integers(20, 80)] = True
    return missing


def timestamps(rng, n):
    """Increasing test times from 19/07/2008, minutes apart with SECOM's median (37) and mean (~82) gap."""
    gaps = np.round(rng.lognormal(np.log(37), 1.27, n - 1))
    minutes = np.concatenate([[0.0], np.cumsum(gaps)])
    return [(START + timedelta(minutes=float(m))).strftime(TIME_FORMAT) for m in minutes]


def write_synthetic(out_dir, n=1567, n_features=N_FEATURES, seed=0):
    """Write secom.data and secom_labels.data of SECOM's shape into out_dir; return the directory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int8)
    y[rng.choice(n, round(n * FAIL_RATE), replace=False)] = 1
    cols = columns(rng, n_features)
    X = readings(rng, cols, y)
    X[blanks(rng, cols, y)] = np.nan
    write_data(out_dir / DATA, X)
    write_labels(out_dir / LABELS, y, timestamps(rng, n))
    return out_dir
