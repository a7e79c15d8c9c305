"""C-MAPSS: reference models and cascades trained by engine unit, served on a board, scored from the agent's
records (`edgectl demo` and `edgectl example cmapss`).

Synthetic fleet (or real C-MAPSS files) -> one bundle per model -> cascades joined
from those builds (no retraining) -> each bundle deployed to the target -> the test
split streamed through the agent -> accuracy and latency from its own records.
"""

from pathlib import Path

from edge_agent.manifest import load_bundle
from edgectl import build, cascade, deploy, evaluate, inspect_bundle, runner
from edgectl.data import cmapss, synthetic
from edgectl.targets.local import LocalTarget

MODELS = ("xgboost", "conv1d", "attention")
CASCADES = (("xgboost", "conv1d"), ("xgboost", "attention"))
DEMO_MODELS = ("xgboost", "conv1d")
DEMO_CASCADES = (("xgboost", "conv1d"),)


def run(workdir, data_dir=None, subset="FD001", target=None, models=MODELS, cascades=CASCADES, progress=None):
    """Run the recipe; return {"data", "subset", "board", "models": [one row per bundle]}.

    target: a board target (default: a local board in WORKDIR/board).
    """
    say = progress.say if progress else (lambda msg: None)
    workdir = Path(workdir)
    if data_dir is None:
        data_dir = synthetic.write_subset(workdir / "data", subset, n_conditions=_conditions(subset))
        say(f"synthetic fleet written to {data_dir}")
    train_split, test_split = cmapss.load(data_dir, subset)
    target = target or LocalTarget(workdir / "board")
    built, rows = {}, []
    for kind in models:
        built[kind] = build.build(train_split, kind, workdir / "bundles" / kind, progress=say)
        rows.append(_measure(kind, built[kind].bundle_dir, target, test_split, workdir, progress))
    for first, second in cascades:
        name = f"cascade-{second}"
        _, calibration = cascade.join(built[first], built[second], workdir / "bundles" / name, say=say)
        row = _measure(name, workdir / "bundles" / name, target, test_split, workdir, progress)
        rows.append(dict(row, calibrated_escalation=calibration["escalation"]))
    return {"data": str(data_dir), "subset": subset, "board": str(target), "models": rows}


def _conditions(subset):
    """The synthetic stand-in for FD002/FD004 runs in six operating conditions, like the real ones."""
    return 6 if subset in ("FD002", "FD004") else 1


def _measure(name, bundle_dir, target, test_split, workdir, progress):
    say = progress.say if progress else (lambda msg: None)
    deploy.deploy(bundle_dir, target, say)
    say(f"streaming {test_split.path.name} through the agent ({name})")
    with open(workdir / f"records-{name}.jsonl", "w") as out:
        records = runner.stream_file(
            target, test_split.path, out=out, on_record=progress.record if progress else None
        )  # fmt: skip
    return row(name, bundle_dir, records, test_split)


def row(name, bundle_dir, records, test_split):
    """One table row from a bundle and the agent's records of a labelled C-MAPSS test split."""
    info = inspect_bundle.summary(bundle_dir)
    manifest = load_bundle(bundle_dir)
    lookup = evaluate.label_lookup(test_split, manifest["input"], manifest["label"]["horizon"])
    acc = evaluate.accuracy(records, lookup)
    lat = evaluate.latency(records)
    return {
        "model": name,
        "bundle_id": info["bundle_id"],
        "model_kb": sum(s["model_bytes"] for s in info["stages"]) / 1024,
        "bundle_kb": (info["archive_bytes"] or info["bundle_bytes"]) / 1024,
        "windows": lat["windows"],
        "f1": acc["all_windows"]["f1"],
        "f1_last": acc["last_window"]["f1"],
        "precision": acc["all_windows"]["precision"],
        "recall": acc["all_windows"]["recall"],
        "p50_us": lat["latency_us"]["total"]["p50"],
        "p99_us": lat["latency_us"]["total"]["p99"],
        "mean_us": lat["mean_total_us"],
        "inference_p50_us": lat["latency_us"]["inference"]["p50"],
        "fast_path": evaluate.fast_path_share(records, manifest),
        "rss_mb": lat["rss_kb_max"] / 1024 if lat["rss_kb_max"] else None,
        "errors": lat["errors"],
    }


COLUMNS = [
    ("model", "model", ""),
    ("model_kb", "model KB", ".1f"),
    ("bundle_kb", "bundle KB", ".1f"),
    ("windows", "windows", "d"),
    ("f1", "F1", ".3f"),
    ("f1_last", "F1 last", ".3f"),
    ("p50_us", "p50 us", ".1f"),
    ("p99_us", "p99 us", ".1f"),
    ("mean_us", "mean us", ".1f"),
    ("fast_path", "fast path", ".1%"),
    ("rss_mb", "RSS MB", ".1f"),
]
