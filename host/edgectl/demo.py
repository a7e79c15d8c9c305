"""`edgectl demo`: the main job end to end on the embedded default.

Synthetic fleet (or real C-MAPSS files) -> XGBoost and Conv1D bundles -> a local
board -> the test split streamed through the agent -> accuracy and latency
computed from the agent's own records.
"""

from pathlib import Path

from edgectl import build, deploy, evaluate, inspect_bundle, runner
from edgectl.data import cmapss, synthetic
from edgectl.targets.local import LocalTarget

DEMO_MODELS = ("xgboost", "conv1d")


def run_demo(workdir, data_dir=None, subset="FD001", board=None, models=DEMO_MODELS, progress=None):
    """Run the demo; return {"data", "board", "models": [one row per model]}."""
    say = progress.say if progress else (lambda msg: None)
    workdir = Path(workdir)
    if data_dir is None:
        data_dir = synthetic.write_subset(workdir / "data", subset)
        say(f"synthetic fleet written to {data_dir}")
    train_split, test_split = cmapss.load(data_dir, subset)
    target = LocalTarget(board or workdir / "board")
    rows = []
    for kind in models:
        result = build.build(train_split, kind, workdir / "bundles" / kind, progress=say)
        deploy.deploy(result.bundle_dir, target, say)
        say(f"streaming {test_split.path.name} through the agent")
        with open(workdir / f"records-{kind}.jsonl", "w") as out:
            records = runner.stream_file(
                target, test_split.path, out=out,
                on_record=progress.record if progress else None,
            )  # fmt: skip
        rows.append(_row(kind, result, records, test_split))
    return {"data": str(data_dir), "board": str(target), "models": rows}


def _row(kind, result, records, test_split):
    info = inspect_bundle.summary(result.bundle_dir)
    lookup = evaluate.label_lookup(test_split, result.manifest["input"], result.manifest["label"]["horizon"])
    acc = evaluate.accuracy(records, lookup)
    lat = evaluate.latency(records)
    return {
        "model": kind,
        "bundle_id": info["bundle_id"],
        "model_kb": info["stages"][0]["model_bytes"] / 1024,
        "bundle_kb": (info["archive_bytes"] or info["bundle_bytes"]) / 1024,
        "windows": lat["windows"],
        "f1": acc["all_windows"]["f1"],
        "f1_last": acc["last_window"]["f1"],
        "precision": acc["all_windows"]["precision"],
        "recall": acc["all_windows"]["recall"],
        "p50_us": lat["latency_us"]["total"]["p50"],
        "p99_us": lat["latency_us"]["total"]["p99"],
        "inference_p50_us": lat["latency_us"]["inference"]["p50"],
        "rss_mb": lat["rss_kb_max"] / 1024 if lat["rss_kb_max"] else None,
        "errors": lat["errors"],
    }


DEMO_COLUMNS = [
    ("model", "model", ""),
    ("model_kb", "model KB", ".1f"),
    ("bundle_kb", "bundle KB", ".1f"),
    ("windows", "windows", "d"),
    ("f1", "F1", ".3f"),
    ("f1_last", "F1 last", ".3f"),
    ("p50_us", "p50 us", ".1f"),
    ("p99_us", "p99 us", ".1f"),
    ("inference_p50_us", "infer p50 us", ".1f"),
    ("rss_mb", "RSS MB", ".1f"),
]
