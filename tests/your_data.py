"""The user's-own-data test kit: a vibration CSV (not C-MAPSS) and its `edgectl init` spec, the board's
features of it, a local board that serves a bundle, and the checks every conversion gets."""

import csv
import io
import json
import subprocess

import numpy as np
from cli import edgectl

from edgectl.targets import parse_target

PARITY = 1e-6  # a compiled tree model against the model's own prediction, per output


def vibration_data(tmp_path_factory):
    """(folder, vibration.csv) with the spec `edgectl init` writes for it as folder/edgectl.toml."""
    work = tmp_path_factory.mktemp("vibration")
    assert edgectl("synth", str(work), "--dataset", "vibration", "--machines", "4", "--samples", "500").returncode == 0
    data = work / "vibration.csv"
    made = edgectl("init", str(data), "--out", str(work / "edgectl.toml"))
    assert made.returncode == 0, made.stderr
    return work, data


def spec_for(work, task, features='["mean", "std", "min", "max", "rms", "slope", "last"]'):
    """The init spec, edited as a user would: the task, its label, and a 30-sample window."""
    text = (work / "edgectl.toml").read_text()
    head = text.split("[window]")[0].replace('"wear_pct"', "").replace(", ]", "]").replace(", ,", ",")
    label = {"multiclass": 'label = "state"\nclasses = ["normal", "cavitation", "bearing"]',
             "binary": 'label = "bearing"\nthreshold = 0.5', "regression": 'label = "wear_pct"'}[task]  # fmt: skip
    body = f"""[window]
length = 30
stride = 5
features = {features}

[preprocessing]
scale = "standard"

[output]
task = "{task}"
{label}
"""
    path = work / f"{task}.toml"
    path.write_text(head + body)
    return path


def with_bearing_column(data, out):
    """The data with a 0/1 column `bearing` (state == bearing): a binary label."""
    rows = list(csv.reader(data.read_text().splitlines()))
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(rows[0] + ["bearing"])
        for row in rows[1:]:
            writer.writerow(row + [str(int(row[6] == "bearing"))])
    return out


def features_of(spec, data, out):
    got = edgectl("features", str(spec), "--data", str(data), "--out", str(out), "--json", "-q")
    assert got.returncode == 0, got.stderr
    rows = list(csv.reader(out.read_text().splitlines()))
    table = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    return rows[0], [r[:2] for r in rows[1:]], table[:, 0], table[:, 1:]


def serve(bundle, data, board):
    deployed = edgectl("deploy", str(bundle), f"local:{board}", "-q")
    assert deployed.returncode == 0, deployed.stderr
    target = parse_target(f"local:{board}")
    argv = [*target.agent_argv(), "run", "--bundle", f"{board}/current", "--input", str(data)]
    got = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    records = [json.loads(line) for line in got.stdout.splitlines()]
    assert not [r for r in records if r["type"] == "error"]
    return [r for r in records if r["type"] == "prediction"]


def one_line_reads_answer_as_the_reference(bundle, data):
    """Serve data a line a read (a paced sensor's) through the blocks path (each line read by C, windowed and
    predicted by one kernel call, its record written from its fields where it can be) and line by line through
    the reference (samples.py, Pipeline.handle's dict): the same records but for their timings. The records."""
    from edge_agent.agent import serve, start
    from edge_agent.blocks import Blocks, can_block
    from edge_agent.sources import LineSplitter

    def served(with_blocks):
        pipeline, _ = start(bundle)
        assert can_block(pipeline)  # else both would be the reference
        splitter, out = LineSplitter(), io.StringIO()
        reads = (
            event for line in data.read_bytes().splitlines(keepends=True) for event in (*splitter.feed(line), None)
        )
        serve(pipeline, reads, out, stats_every=100, blocks=Blocks(pipeline) if with_blocks else None)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    timings = {"latency_us", "rss_kb", "latency_us_by_stage", "input"}
    paced, reference = ([{k: v for k, v in r.items() if k not in timings} for r in served(b)] for b in (True, False))
    assert paced == reference
    return paced


def converted(model_file, spec, data, out, *extra):
    got = edgectl("convert", str(model_file), "--spec", str(spec), "--data", str(data), "--out", str(out), *extra)
    assert got.returncode == 0, got.stderr
    assert (out / "manifest.json").is_file() and "self-test  passed" in got.stdout
    return json.loads((out / "manifest.json").read_text())


def raw_spec(work, task="multiclass"):
    """The init spec with raw windows: the model reads the (length, columns) window itself."""
    return spec_for(work, task, features='"raw"')


def raw_windows(spec, data, out):
    got = edgectl("features", str(spec), "--data", str(data), "--out", str(out), "-q")
    assert got.returncode == 0, got.stderr
    arrays = np.load(out)
    return arrays["X"], arrays["y"].astype(int)


def lightgbm_binary(vibration, tmp_path):
    """A small LightGBM binary model on the vibration data's window features, saved as tmp_path/model.txt:
    (booster, spec path, labelled data, y, X)."""
    import lightgbm

    work, data = vibration
    data = with_bearing_column(data, tmp_path / "labelled.csv")
    spec = spec_for(work, "binary")
    _, _, y, X = features_of(spec, data, tmp_path / "features.csv")
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 8},
                             lightgbm.Dataset(X, y), num_boost_round=30)  # fmt: skip
    booster.save_model(str(tmp_path / "model.txt"))
    return booster, spec, data, y, X
