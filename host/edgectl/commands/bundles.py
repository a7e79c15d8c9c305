"""Commands on bundles: build, keygen, inspect, and the board profiles they are built for."""

from pathlib import Path

import click

from edgectl.commands.options import json_option, quiet_option
from edgectl.console import Progress, emit, table
from edgectl.train import MODEL_KINDS, TREE_KINDS


@click.command()
@click.option("--data", type=click.Path(file_okay=False), help="Directory of C-MAPSS files (default: synthetic fleet).")
@click.option("--subset", default="FD001", show_default=True, help="C-MAPSS subset, e.g. FD001.")
@click.option("--model", "kind", default="xgboost", show_default=True, help="Model family to train and convert.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Bundle directory to write.")
@click.option("--window", default=30, show_default=True, help="Window length in samples.")
@click.option("--stride", default=1, show_default=True, help="Samples between windows.")
@click.option("--horizon", default=30, show_default=True, help="Label: fails within this many cycles.")
@click.option("--profile", "profile_names", multiple=True, help="Board profile to build for (repeatable).")
@click.option("--stage1", default="xgboost-tiny", show_default=True, type=click.Choice(TREE_KINDS),
              help="With --model cascade: the small tree model that answers every window.")  # fmt: skip
@click.option("--stage2", default="lightgbm", show_default=True, type=click.Choice(MODEL_KINDS),
              help="With --model cascade: the model uncertain windows go to.")  # fmt: skip
@click.option(
    "--cascade-tolerance",
    default=0.0,
    show_default=True,
    help="With --model cascade: share of out-of-fold windows the cascade may decide unlike the better single stage.",
)
@click.option("--sign", "sign_key", type=click.Path(dir_okay=False), help="Sign the bundle with this private key.")
@click.option(
    "--drift-psi",
    default=0.25,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="PSI of an input feature that raises drift.",
)
@click.option(
    "--drift-window",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Samples in the rolling window PSI is taken over.",
)
@json_option
@quiet_option
def build(
    data,
    subset,
    kind,
    out,
    window,
    stride,
    horizon,
    profile_names,
    stage1,
    stage2,
    cascade_tolerance,
    sign_key,
    drift_psi,
    drift_window,
    as_json,
    quiet,
):
    """The C-MAPSS recipe: train a model on C-MAPSS data and build a bundle for the board.

    Writes the training split as a CSV with a label column and a spec for it (OUT-data/), then
    trains and converts exactly as `edgectl train` does. Models: xgboost, random-forest,
    extra-trees, gradient-boosting, hist-gradient-boosting (compiled C through TL2cgen), conv1d
    and attention (TFLite INT8), and cascade (--stage1 answers, --stage2 takes the uncertain windows).
    """
    from edgectl import build as builder
    from edgectl import convert, inspect_bundle, profiles
    from edgectl.data import cmapss, synthetic
    from edgectl.recipes import cmapss as recipe

    progress = Progress(quiet)
    key = _signing().load_private_key(sign_key) if sign_key else None  # a bad key fails before a long build
    chosen = [profiles.get(name) for name in profile_names]
    if kind != "cascade":
        builder.check_kind(kind)
    if kind not in builder.train.NEURAL_KINDS:
        convert.check_toolchains(chosen)  # before data is written or a model trained
    if data is None:
        data = synthetic.write_subset(Path(out).with_name(Path(out).name + "-data"), subset)
        progress.say(f"no --data: synthetic fleet written to {data}")
    train_split, _ = cmapss.load(data, subset)
    settings = {"window": window, "stride": stride, "horizon": horizon}
    drift = {"psi_threshold": drift_psi, "psi_window": drift_window}
    if kind == "cascade":
        recipe.build_cascade(train_split, out, stage1, stage2, cascade_tolerance, chosen, progress.say, drift,
                             **settings)  # fmt: skip
    else:
        recipe.build_bundle(train_split, kind, out, **settings, profiles=chosen, say=progress.say, drift_settings=drift)
    if key is not None:
        progress.say(f"signed {out} with key {_signing().sign_bundle(out, key)}")
    emit(inspect_bundle.summary(out), as_json, _render_inspect)


def _signing():
    from edge_convert import signing  # cryptography: only for keygen and --sign

    return signing


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Writes OUT.key (0600) and OUT.pub.")
@json_option
def keygen(out, as_json):
    """Make an Ed25519 key pair for signing bundles (build --sign OUT.key, deploy --trust-key OUT.pub)."""
    emit(_signing().generate_key(out), as_json, _render_keygen)


def _render_keygen(key):
    return (
        f"key id {key['key_id']}\n"
        f"{key['private_key']}: the private key (mode 0600), for edgectl build --sign; keep it secret\n"
        f"{key['public_key']}: the public key, for edgectl deploy --trust-key"
    )


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--profile", help="Check the bundle against this board profile's budgets.")
@click.option(
    "--records",
    type=click.Path(exists=True, dir_okay=False),
    help="Agent records (edgectl run --out) to check measured latency and memory.",
)
@json_option
def inspect(bundle, profile, records, as_json):
    """Verify a bundle's checksums and show its stages, sizes and build-time checks.

    BUNDLE: a bundle directory, or its .tar.gz (unpacked safely into a temporary directory).
    """
    from edge_convert.archive import unpacked
    from edgectl import inspect_bundle

    with unpacked(bundle) as bundle_dir:
        info = inspect_bundle.summary(bundle_dir, source=bundle)
    if profile:
        from edgectl import evaluate, profiles

        measured = evaluate.measured(evaluate.read_records(records)) if records else None
        info["budgets"] = {"profile": profile, "checks": profiles.check_budgets(profiles.get(profile), info, measured)}
    emit(info, as_json, _render_inspect)


@click.command("profiles")
@json_option
def list_profiles(as_json):
    """List the board profiles: arch, compiler flags, runtime and budgets."""
    from edgectl import profiles

    rows = [
        {
            "name": p["name"],
            "arch": p["arch"],
            "cflags": " ".join(p["toolchain"]["cflags"]),
            "ram_mb": p["system"]["ram_mb"],
            "python": p["system"]["python"],
            "runtime": p["runtime"]["package"] or "none (trees only)",
            "latency_ms": p["budgets"]["latency_ms"],
            "memory_mb": p["budgets"]["agent_memory_mb"],
            "bundle_mb": p["budgets"]["bundle_mb"],
        }
        for p in profiles.load_all().values()
    ]
    columns = [("name", "profile", ""), ("arch", "arch", ""), ("cflags", "cflags", ""), ("ram_mb", "RAM MB", "d"),
               ("python", "python", ""), ("runtime", "runtime", ""), ("latency_ms", "p99 ms", "d"),
               ("memory_mb", "mem MB", "d"), ("bundle_mb", "bundle MB", "d")]  # fmt: skip
    emit(rows, as_json, lambda r: table(r, columns))


def _self_test_text(result):
    if result["status"] != "ok":
        return f"{result['status']}: {result['why']}"
    worst = ", ".join(f"{stage} {diff:.2g}" for stage, diff in result["max_abs_diff"].items())
    return f"passed on this machine, {result['windows']} golden windows (max abs diff {worst})"


def _render_inspect(info):
    from edgectl import inspect_bundle

    head = [
        f"bundle     {info['bundle_id']}  (format {info['format_version']}, checksums {info['checksums']})",
        f"path       {info['path']}",
        f"signature  {_signature_text(info.get('signature'))}",
        f"self-test  {_self_test_text(info['self_test'])}",
        f"size       {info['bundle_bytes'] / 1024:.1f} KB in {info['files']} files"
        + (f", {info['archive_bytes'] / 1024:.1f} KB as .tar.gz" if info["archive_bytes"] else ""),
        f"window     {info['window']['length']} samples, stride {info['window']['stride']}, "
        f"{len(info['inputs'])} inputs, {info['features']} features",
        "",
    ]
    rows = []
    for s in info["stages"]:
        check = ""
        if s["parity"]:
            check = "parity " + ", ".join(f"{a} {_parity_text(p)}" for a, p in s["parity"].items())
        if s["conversion"]:
            r = s["conversion"]
            check = r.get("precision", "int8") + " float ops " + (",".join(r["float_ops"]) or "none")
            if "max_abs_diff" in r:
                check += f", diff {r['max_abs_diff']:.3f}, agree {r['decision_agreement']:.1%}"
        rows.append({**s, "archs": ",".join(s["archs"]), "kb": s["model_bytes"] / 1024, "check": check,
                     "validation": inspect_bundle.validation_text(s["validation"] or {})})  # fmt: skip
    columns = [("name", "stage", ""), ("kind", "kind", ""), ("archs", "archs", ""), ("kb", "KB", ".1f"),
               ("threshold", "threshold", ".4f"), ("validation", "validation", ""),
               ("check", "build checks", "")]  # fmt: skip
    text = "\n".join(head) + "\n" + table(rows, columns)
    if info.get("cascade"):
        text += "\n\n" + _cascade_text(info["cascade"])
    if "budgets" in info:
        budget_columns = [("budget", "budget", ""), ("status", "status", ""), ("why", "", "")]
        text += f"\n\nbudgets of profile {info['budgets']['profile']}:\n" + table(
            info["budgets"]["checks"], budget_columns
        )
    return text


def _cascade_text(band):
    cal = band.get("calibration", {})
    text = f"cascade: stage 2 answers when stage 1's score is in [{band['low']:.4f}, {band['high']:.4f})"
    if cal:
        text += (
            f"\n  calibrated on {cal['method']} ({cal['windows']} windows): {cal['escalation']:.1%} escalated, "
            f"F1 {cal['f1']:.3f}; stage 1 alone {cal['f1_single']['stage1']:.3f}, "
            f"stage 2 alone {cal['f1_single']['stage2']:.3f}\n  trade-off (escalation <= : best F1): "
            + ", ".join(f"{p['max_escalation']:.0%}: {p['f1']:.3f}" for p in cal["curve"])
        )
    return text


def _signature_text(signature):
    if not signature or not signature["signed"]:
        return "unsigned"
    # Checked against the key the signature file names, not against a key the board trusts.
    matches = "matches that key" if signature["valid"] else "DOES NOT MATCH that key"
    return f"signed by key {signature['key_id']} (signature {matches})"


def _parity_text(parity):
    return f"{parity['max_abs_diff']:.1e}" if "max_abs_diff" in parity else parity["status"]
