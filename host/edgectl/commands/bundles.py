"""Commands on bundles: build, keygen, inspect, and the board profiles they are built for."""

import sys

import click

from edgectl.commands.options import (
    BUNDLE_TEXT,
    SUBSETS,
    Choice,
    json_option,
    profile_help,
    profiles_option,
    quiet_option,
)
from edgectl.console import Progress, emit, table, warn
from edgectl.spec import WINDOW_MAX
from edgectl.train import MODEL_KINDS, TREE_KINDS


@click.command()
@click.option("--data", type=click.Path(file_okay=False), help="Directory of C-MAPSS files (default: synthetic fleet).")
@click.option("--subset", default="FD001", show_default=True, help=f"C-MAPSS subset: {SUBSETS}.")
# Not a click.Choice: an unknown model is the build's own one-line error (exit 1), as for train's recipes.
@click.option("--model", "kind", default="xgboost", show_default=True, metavar="KIND",
              help=f"Model family to train and convert: {', '.join(MODEL_KINDS)}, or cascade (of --stage1 and "
                   "--stage2).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Bundle directory to write.")
@click.option("--window", default=30, show_default=True, type=click.IntRange(1, WINDOW_MAX),
              help="Window length in samples.")  # fmt: skip
@click.option("--stride", default=1, show_default=True, type=click.IntRange(1, WINDOW_MAX),
              help="Samples between windows.")  # fmt: skip
@click.option("--horizon", default=30, show_default=True, type=click.IntRange(min=1),
              help="Label: fails within this many cycles.")  # fmt: skip
@profiles_option
@click.option("--stage1", default="xgboost-tiny", show_default=True, type=Choice(TREE_KINDS),
              help="With --model cascade: the small tree model that answers every window.")  # fmt: skip
@click.option("--stage2", default="lightgbm", show_default=True, type=Choice(MODEL_KINDS),
              help="With --model cascade: the model uncertain windows go to.")  # fmt: skip
@click.option(
    "--cascade-tolerance",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
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
    from edge_convert import bundle
    from edgectl import build as builder
    from edgectl import convert, inspect_bundle, profiles, windowing
    from edgectl.data import cmapss, synthetic
    from edgectl.recipes import cmapss as recipe

    # Every argument is checked before anything is written or trained.
    progress = Progress(quiet)
    key = _signing().load_private_key(sign_key) if sign_key else None
    chosen = profiles.choose(profile_names)
    if kind != "cascade":
        builder.check_kind(kind)
    builder.train.check_window(stage2 if kind == "cascade" else kind, window, "--window")
    if kind not in builder.train.NEURAL_KINDS:
        convert.check_toolchains(chosen)
    settings = {"window": window, "stride": stride, "horizon": horizon}
    drift = {"psi_threshold": drift_psi, "psi_window": drift_window}
    with bundle.staged(out) as work:  # OUT, OUT.tar.gz, OUT.model.*, OUT-data/: all of them, or nothing
        if data is None:
            data = synthetic.write_subset(work.with_name(work.name + "-data"), subset)
            progress.say(f"no --data: synthetic fleet written to {bundle.final_path(data)}")
        train_split, _ = cmapss.load(data, subset)
        where = bundle.final_path(train_split.path)
        windowing.check_window_fits(window, train_split.units, where, f"--window {window}")
        if kind == "cascade":
            recipe.build_cascade(train_split, work, stage1, stage2, cascade_tolerance, chosen, progress.say, drift,
                                 **settings)  # fmt: skip
        else:
            recipe.build_bundle(train_split, kind, work, **settings, profiles=chosen, say=progress.say,
                                drift_settings=drift)  # fmt: skip
        if key is not None:
            progress.say(f"signed {out} with key {_signing().sign_bundle(work, key)}")
    show_bundle(inspect_bundle.summary(out), as_json)


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


@click.command(epilog=BUNDLE_TEXT)
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--profile", metavar="NAME", help=profile_help("Check the bundle against this board profile's budgets."))
@click.option(
    "--records",
    type=click.Path(exists=True, dir_okay=False),
    help="Agent records (edgectl run --out) to check measured latency and memory.",
)
@json_option
def inspect(bundle, profile, records, as_json):
    """Verify BUNDLE's checksums and show its stages, sizes and build-time checks."""
    from edge_convert.archive import unpacked
    from edgectl import inspect_bundle

    if records and not profile:  # records are measured against a profile's budgets; alone they check nothing
        raise click.UsageError("--records needs --profile P: the records are checked against P's budgets")
    with unpacked(bundle) as bundle_dir:
        info = inspect_bundle.summary(bundle_dir, source=bundle)
    if profile:
        info["budgets"] = _budgets(info, profile, records)
    info.update(inspect_bundle.verdict(info))
    show_bundle(info, as_json)
    if info["status"] != "ok":
        sys.exit(3)  # as bench does for a failed budget: a script can gate on it


def _budgets(info, profile_name, records_path):
    """The profile's budgets against the bundle, with latency and memory from the agent's records of it."""
    from edgectl import evaluate, profiles

    profile = profiles.get(profile_name)
    measured = None
    if records_path:
        records = evaluate.read_records(records_path)
        evaluate.check_records_source(records, records_path, info["bundle_id"], profile)
        measured = evaluate.measured(records)
    checks = profiles.check_budgets(profile, info, measured)
    return {"profile": profile_name, "status": profiles.budget_status(checks), "checks": checks}


def show_bundle(info, as_json):
    """A bundle's summary on stdout, and on stderr what its scores warn of (even with -q)."""
    from edgectl import inspect_bundle

    emit(info, as_json, _render_inspect)
    for text in inspect_bundle.warnings(info):
        warn(text)


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
    if "status" in info:  # inspect's verdict, last: what the exit code says
        text += "\n\nstatus     " + ("ok" if info["status"] == "ok" else f"FAIL: {', '.join(info['problems'])}")
    return text


def _cascade_text(band):
    from edgectl.inspect_bundle import band_text

    cal = band.get("calibration", {})
    shown = band_text(band)
    routing = "stage 1 answers every window" if shown == "none" else "stage 2 answers when stage 1's score is in it"
    text = f"cascade band {shown}: {routing}"
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
