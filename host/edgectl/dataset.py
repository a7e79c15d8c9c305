"""The user's data under a spec: rows -> the board's exact per-window inputs and labels.

Rows are parsed by the agent's own parser (edge_agent.samples), preprocessing is fitted and
applied by edge_agent.preprocess, windows and their features come from edge_agent.windows:
what a user trains on here is what the board computes. `features()` is the Python API of
`edgectl features`.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent import preprocess
from edge_agent.manifest import FORMAT_VERSION
from edge_agent.samples import SampleError, SampleParser, split_line
from edge_agent.windows import feature_names
from edgectl import spec as specs
from edgectl.errors import EdgectlError
from edgectl.windowing import sample_windows


@dataclass
class Dataset:
    """A data file under a spec: the manifest sections, the windows, and each window's label."""

    sections: dict  # the manifest's input, window, preprocessing, features and output sections
    windows: object  # edgectl.windowing.Windows
    y: np.ndarray  # per window: class index (classification), value (regression); NaN: no label column
    lines: list  # the data file as sample lines (header first), for golden vectors
    stage_input: str  # "features" or "window" (features = "raw")
    row_streams: list  # the stream of every data row, in file order

    @property
    def X(self):
        """The model's inputs, one row (features) or one (length, columns) array (raw) per window."""
        return self.inputs(self.stage_input)

    def inputs(self, stage_input):
        """Window features ("features") or raw windows ("window": needs load(keep_raw=True))."""
        return self.windows.features if stage_input == "features" else self.windows.raw


def load(spec, data, fit_on=None, keep_raw=False):
    """The Dataset of a CSV file under a spec (a dict from edgectl.spec, or a path to edgectl.toml).

    fit_on: the manifest sections to reuse (preprocessing fitted elsewhere); default: fit on this data.
    keep_raw: keep the raw windows as well when the spec asks for features (a neural model reads them).
    """
    spec = specs.load(spec) if not isinstance(spec, dict) else spec
    header, rows = specs.read_rows(data)
    return _dataset(spec, header, rows, data, fit_on, keep_raw)


def load_lines(spec, lines, fit_on, keep_raw=False):
    """The Dataset of sample lines (a header line first), under sections fitted before."""
    header, *rows = [[cell.strip() for cell in split_line(line)] for line in lines]
    return _dataset(spec, header, rows, "golden lines", fit_on, keep_raw)


def _dataset(spec, header, rows, data, fit_on, keep_raw):
    _check_columns(spec, header, data)
    inp = spec["input"]
    input_section = {
        # A line without a header carries these columns in this order: the data's, without the label,
        # which the board does not have.
        "fields": [name for name in header if name != spec["output"]["label"]],
        "stream_field": inp["stream"],
        "time_field": inp["time"],
        "features": inp["columns"],
        "format": inp["format"],
    }
    parser = SampleParser(dict(input_section, fields=header), imputable=set(inp["columns"]), settings=inp["settings"])
    samples = []
    for number, row in enumerate(rows, start=2):
        try:
            sample = parser.parse(_line(row))
        except SampleError as exc:
            raise EdgectlError(f"{data}:{number}: {exc}") from None
        if sample is None:
            raise EdgectlError(f"{data}:{number}: a header line inside the data (files joined?); remove it")
        samples.append(sample)
    labels = _labels(spec, header, rows, data)
    sections = fit_on or _fit(spec, input_section, samples)
    windows = sample_windows(samples, sections, keep_raw=keep_raw or spec["window"]["features"] == "raw")
    lines = [_line(header)] + [_line(row) for row in rows]
    stage_input = "window" if spec["window"]["features"] == "raw" else "features"
    y = labels[windows.row] if len(windows) else labels[:0]
    return Dataset(sections, windows, y, lines, stage_input, [s.stream for s in samples])


def _fit(spec, input_section, samples):
    inp, win, prep = spec["input"], spec["window"], spec["preprocessing"]
    if not samples:
        raise EdgectlError("the data has no rows to fit the preprocessing on")
    values = np.array([s.values for s in samples])
    if prep["impute"] == "none" and np.isnan(values).any():
        col = inp["columns"][int(np.flatnonzero(np.isnan(values).any(axis=0))[0])]
        raise EdgectlError(f'column {col!r} has empty or NaN values; set [preprocessing] impute = "median"')
    settings = np.array([s.settings for s in samples]) if prep["scale"] == "per-condition" else None
    fitted = preprocess.fit(values, inp["columns"], impute=prep["impute"] == "median", settings=settings,
                            setting_names=inp["settings"])  # fmt: skip
    if prep["scale"] == "none":
        fitted = dict(fitted, center=[0.0] * len(inp["columns"]), scale=[1.0] * len(inp["columns"]))
    kinds = win["features"] if win["features"] != "raw" else ["last"]  # a raw stage reads the window itself
    time = inp["time"] if win["time_feature"] else None
    out = spec["output"]
    return {
        "format_version": FORMAT_VERSION,
        "input": input_section,
        "window": {"length": win["length"], "stride": win["stride"]},
        "preprocessing": fitted,
        "features": _features_section(spec, kinds, time),
        "output": {k: out[k] for k in ("task", "classes", "label", "threshold", "alarm") if out[k] is not None},
    }


def _features_section(spec, kinds, time):
    """The manifest's features: kinds per input column, derived channels (a signed mean of standardized
    columns: one weight per input column), the time feature, and every feature's name."""
    columns = spec["input"]["columns"]
    channels = [
        {
            "name": ch["name"],
            "columns": ch["columns"],
            "weights": [
                ch["signs"][ch["columns"].index(c)] / len(ch["columns"]) if c in ch["columns"] else 0.0 for c in columns
            ],
            "kinds": ch["features"],
        }
        for ch in spec["channel"]
    ]
    section = {"kinds": kinds, "time": time, "names": feature_names(columns, time, kinds, channels)}
    return dict(section, channels=channels) if channels else section


def _check_columns(spec, header, data):
    specs.check_header(header, data)
    inp, out = spec["input"], spec["output"]
    wanted = [inp["stream"], inp["time"], *inp["columns"], *inp["settings"], out["label"]]
    missing = [name for name in wanted if name and name not in header]
    if missing:
        raise EdgectlError(
            f"{data}: no column {missing[0]!r} (the spec names it); the columns are: {', '.join(header)}"
        )


def _labels(spec, header, rows, data):
    out = spec["output"]
    if not out["label"]:
        return np.full(len(rows), math.nan)
    i = header.index(out["label"])
    classes = out["classes"] or (["0", "1"] if out["task"] == "binary" else None)
    y = np.empty(len(rows))
    for number, row in enumerate(rows, start=2):
        value = row[i]
        if out["task"] == "regression":
            try:
                y[number - 2] = float(value)
            except ValueError:
                raise EdgectlError(f"{data}:{number}: label {value!r} is not a number (regression)") from None
            continue
        key = class_index(value, classes)
        if key is None:
            raise EdgectlError(
                f"{data}:{number}: label {value!r} is not one of the classes {classes}; "
                "list every label value in [output] classes"
            )
        y[number - 2] = key
    return y


def class_index(value, classes):
    """The index of a label value in classes (by name, or as a number: "1.0" is class "1"); None if absent."""
    if value in classes:
        return classes.index(value)
    try:  # 1.0 for "1", as a notebook may have written it
        number = float(value)
    except ValueError:
        return None
    for k, name in enumerate(classes):
        try:
            if float(name) == number:
                return k
        except ValueError:
            continue
    return None


def _line(cells):
    """A CSV sample line the agent reads (comma separated unless a cell holds a comma)."""
    return (";" if any("," in c for c in cells) else ",").join(cells)


def write_features(dataset, spec, out):
    """Write the per-window inputs: CSV (stream, time, label, features) or, for raw windows, .npz."""
    w, inp = dataset.windows, spec["input"]
    has_label = bool(spec["output"]["label"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if dataset.stage_input == "window":
        arrays = {"X": w.raw, "stream": w.stream, "time": w.t}
        if has_label:
            arrays["y"] = dataset.y
        np.savez(out, **arrays)
        return
    head = [c for c in (inp["stream"], inp["time"]) if c] + (["label"] if has_label else [])
    names = dataset.sections["features"]["names"]
    with open(out, "w") as f:
        f.write(",".join(head + names) + "\n")
        for k in range(len(w)):
            cells = ([w.stream[k]] if inp["stream"] else []) + ([repr(float(w.t[k]))] if inp["time"] else [])
            if has_label:
                label = dataset.y[k]
                cells.append(repr(float(label)) if spec["output"]["task"] == "regression" else str(int(label)))
            cells += [repr(float(v)) for v in w.features[k]]
            f.write(",".join(cells) + "\n")
