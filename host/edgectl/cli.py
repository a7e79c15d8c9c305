"""The `edgectl` command line. Commands import their work lazily so `--help` stays fast."""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click

from edgectl import __version__
from edgectl.console import Progress, emit, table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ logs drown the progress lines


class _Cli(click.Group):
    """Turns the errors a user can act on into one clean message and exit code 1."""

    def invoke(self, ctx):
        from edge_agent.errors import AgentError
        from edge_convert import ConversionError
        from edgectl.errors import EdgectlError

        try:
            return super().invoke(ctx)
        except (EdgectlError, AgentError, ConversionError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Cli)
@click.version_option(__version__, prog_name="edgectl")
def cli():
    """Build model bundles, deploy them to boards, and measure them there."""


def main():
    cli(prog_name="edgectl")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")


@cli.command()
@click.option("--data", type=click.Path(file_okay=False), help="Directory of C-MAPSS files (default: synthetic fleet).")
@click.option("--subset", default="FD001", show_default=True, help="C-MAPSS subset, e.g. FD001.")
@click.option("--model", "kind", default="xgboost", show_default=True, help="Model family to train and convert.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Bundle directory to write.")
@click.option("--window", default=30, show_default=True, help="Window length in samples.")
@click.option("--stride", default=1, show_default=True, help="Samples between windows.")
@click.option("--horizon", default=30, show_default=True, help="Label: fails within this many cycles.")
@click.option("--profile", "profile_names", multiple=True, help="Board profile to build for (repeatable).")
@click.option(
    "--stage2",
    default="conv1d",
    show_default=True,
    type=click.Choice(["conv1d", "attention"]),
    help="With --model cascade: the model uncertain windows go to.",
)
@click.option(
    "--cascade-tolerance",
    default=0.005,
    show_default=True,
    help="With --model cascade: F1 the cascade may give up against the better single stage (out of fold).",
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
    stage2,
    cascade_tolerance,
    sign_key,
    drift_psi,
    drift_window,
    as_json,
    quiet,
):
    """Train a model on C-MAPSS data and build a bundle for the board.

    Models: xgboost, random-forest, extra-trees, gradient-boosting,
    hist-gradient-boosting (compiled C through TL2cgen), conv1d and attention
    (TFLite INT8), and cascade (xgboost answers, --stage2 takes the uncertain windows).
    """
    from edgectl import build as builder
    from edgectl import cascade, inspect_bundle, profiles
    from edgectl.data import cmapss, synthetic

    progress = Progress(quiet)
    key = _signing().load_private_key(sign_key) if sign_key else None  # a bad key fails before a long build
    chosen = [profiles.get(name) for name in profile_names]
    if data is None:
        data = synthetic.write_subset(Path(out).with_name(Path(out).name + "-data"), subset)
        progress.say(f"no --data: synthetic fleet written to {data}")
    train_split, _ = cmapss.load(data, subset)
    settings = {"window": window, "stride": stride, "horizon": horizon}
    settings["drift_settings"] = {"psi_threshold": drift_psi, "psi_window": drift_window}
    if kind == "cascade":
        cascade.build(train_split, out, stage2, cascade_tolerance, chosen, progress.say, **settings)
    else:
        builder.build(train_split, kind, out, profiles=chosen, progress=progress.say, **settings)
    if key is not None:
        progress.say(f"signed {out} with key {_signing().sign_bundle(out, key)}")
    emit(inspect_bundle.summary(out), as_json, _render_inspect)


def _signing():
    from edge_convert import signing  # cryptography: only for keygen and --sign

    return signing


@cli.command()
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


@cli.command()
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


@cli.command("profiles")
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


@cli.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.argument("target")
@click.option("--offline", is_flag=True, help="Ship the runtime wheels from this host; the board needs no index.")
@click.option("--serial", is_flag=True, help="Also install pyserial and cobs: the agent talks over a UART.")
@click.option(
    "--trust-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Install this public key on the board; from then on it serves only bundles signed by a trusted key.",
)
@json_option
@quiet_option
def deploy(bundle, target, offline, serial, trust_key, as_json, quiet):
    """Deploy BUNDLE to TARGET as a new release: verify, switch atomically, roll back if unhealthy.

    BUNDLE: a bundle directory, or its .tar.gz (unpacked safely into a temporary directory).
    TARGET: local:DIR, ssh://user@host[:port][/home] (home defaults to /opt/edgectl)
    or a host alias from ~/.ssh/config.
    """
    from edge_convert.archive import unpacked
    from edgectl import deploy as deployer
    from edgectl.targets import parse_target

    with unpacked(bundle) as bundle_dir:
        result = deployer.deploy(
            bundle_dir, parse_target(target), Progress(quiet).say, offline=offline, serial=serial, trust_key=trust_key
        )
    emit(result, as_json, _render_pairs)


@cli.command()
@click.argument("target")
@json_option
@quiet_option
def rollback(target, as_json, quiet):
    """Switch TARGET back to its previous release (current and previous swap)."""
    from edgectl import deploy as deployer
    from edgectl.targets import parse_target

    emit(deployer.rollback(parse_target(target), Progress(quiet).say), as_json, _render_pairs)


@cli.command()
@click.argument("target")
@json_option
def status(target, as_json):
    """Show TARGET's release, previous release, health, uptime and the agent's last stats."""
    from edgectl import status as board_status
    from edgectl.targets import parse_target

    result = board_status.status(parse_target(target))
    emit(result, as_json, _render_pairs)
    if result["health"] == "degraded":
        sys.exit(3)


@cli.command()
@click.argument("target", required=False)
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Sample file: CSV or JSON lines, or an original C-MAPSS file.")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False), help="Also write every agent record here (JSON lines).")
@click.option("--serial", "device", help="Feed the agent over this serial port instead of a TARGET.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--resume", is_flag=True, help="With --serial: go on with the last session where the agent stopped.")
@json_option
@quiet_option
def run(target, input_path, out, device, baud, resume, as_json, quiet):
    """Stream a sample file through the agent on TARGET (or over --serial) and summarize its records."""
    from edgectl import evaluate, runner, serial_host
    from edgectl.errors import EdgectlError
    from edgectl.targets import parse_target

    if bool(target) == bool(device):
        raise EdgectlError("give a TARGET or --serial DEV (one of them)")
    progress = Progress(quiet)
    with open(out, "w") if out else contextlib.nullcontext() as sink:
        if device:
            records = serial_host.stream_file(device, input_path, baud, sink, progress.record, resume)
        else:
            records = runner.stream_file(parse_target(target), input_path, out=sink, on_record=progress.record)
    summary = evaluate.latency(records)
    start = next((r for r in records if r["type"] == "start"), {})
    summary["bundle_id"] = start.get("bundle_id")
    emit(summary, as_json, _render_run)


@cli.command()
@click.option("--serial", "device", required=True, help="The serial port the agent reports on.")
@click.option("--baud", default=115200, show_default=True)
@click.option("--duration", type=float, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="Write every record as a JSON line instead of the live view.")
def monitor(device, baud, duration, as_json):
    """Live predictions and stats from an agent on a serial line; each record once, acknowledged."""
    from edgectl import serial_host
    from edgectl.live import LiveView

    view = LiveView()

    def show(rec, link_stats):
        if as_json:
            click.echo(json.dumps(rec))
        else:
            view.add(rec, link_stats)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the view, not with a traceback
        serial_host.monitor(device, show, baud, duration)
    if not as_json:
        view.draw()


@cli.command()
@click.argument("bundles_and_target", nargs=-1, required=True, metavar="BUNDLE... TARGET")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Sample file replayed on the board; a C-MAPSS test_FDxxx.txt with RUL_FDxxx.txt beside it "
                   "is scored for accuracy.")  # fmt: skip
@click.option("--profile", help="Check budgets against this board profile (default: inferred from the board).")
@click.option("--warmup", type=int, help="Warm-up queries, not counted (default: the agent's, 100).")
@click.option("--min-queries", type=int, help="Counted queries at least (default: 4096).")
@click.option("--min-duration", type=float, help="Seconds of counted queries at least (default: 10).")
@click.option("--out", default="out/bench", show_default=True, type=click.Path(file_okay=False),
              help="Where to write bench.json, bench.md, bench.html and the board's raw results.")  # fmt: skip
@click.option("--offline", is_flag=True, help="Deploying: ship the runtime wheels from this host.")
@json_option
@quiet_option
def bench(bundles_and_target, data, profile, warmup, min_queries, min_duration, out, offline, as_json, quiet):
    """Measure each BUNDLE on TARGET with the agent's bench mode: latency, memory, accuracy, budgets.

    BUNDLE: a bundle directory, or its .tar.gz. Uploads each bundle as a release beside what the
    board serves (`current` is never switched), runs it there, and writes the
    run record, a Markdown summary and a self-contained HTML report. Prints the summary (--json:
    the record). Exit code 3 when a bundle fails a budget.
    """
    from edge_convert.archive import unpacked
    from edgectl import bench as bencher
    from edgectl import bench_report
    from edgectl.errors import EdgectlError
    from edgectl.targets import parse_target

    *bundles, target_text = bundles_and_target
    if not bundles:
        raise EdgectlError("give at least one BUNDLE and then the TARGET: edgectl bench BUNDLE... TARGET --data FILE")
    progress = Progress(quiet)
    rules = {"warmup": warmup, "min_queries": min_queries, "min_duration_s": min_duration}
    target = parse_target(target_text)
    with contextlib.ExitStack() as stack:  # archives stay unpacked until every bundle is measured
        dirs = [stack.enter_context(unpacked(bundle)) for bundle in bundles]
        record, raw = bencher.run_bench(dirs, target, data, profile, rules, progress.say, offline)
    text = bench_report.markdown(record)
    paths = bencher.write_outputs(record, raw, out, text, bench_report.html(record))
    progress.say(f"wrote {paths['bench.html']} and {paths['bench.json']}")
    emit(record, as_json, lambda r: text)
    if record["flags"]["over_budget"]:
        sys.exit(3)


@cli.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="Real C-MAPSS files instead of synthetic.")
@click.option("--subset", default="FD001", show_default=True)
@click.option("--workdir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--board", type=click.Path(file_okay=False), help="Local board directory (default: WORKDIR/board).")
@json_option
@quiet_option
def demo(data, subset, workdir, board, as_json, quiet):
    """The main job end to end: data -> XGBoost, Conv1D and cascade bundles -> local board -> agent -> table."""
    from edgectl.recipes import cmapss as recipe
    from edgectl.targets.local import LocalTarget

    target = LocalTarget(board or Path(workdir) / "board")
    result = recipe.run(
        workdir, data, subset, target, recipe.DEMO_MODELS, recipe.DEMO_CASCADES, progress=Progress(quiet)
    )
    emit(result, as_json, _render_recipe)


@cli.group()
def example():
    """Recipes that reproduce the reference results: train, build, serve on a board, score the agent's records."""


@example.command("cmapss")
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="Real C-MAPSS files instead of synthetic.")
@click.option("--subset", default="FD001", show_default=True, help="FD001..FD004 (FD002/FD004: six conditions).")
@click.option("--target", help="Board to serve on (default: a local board in WORKDIR/board).")
@click.option("--workdir", default="out/example-cmapss", show_default=True, type=click.Path(file_okay=False))
@json_option
@quiet_option
def example_cmapss(data, subset, target, workdir, as_json, quiet):
    """XGBoost, Conv1D INT8, attention INT8 and two cascades on C-MAPSS, split by engine unit: the table of
    bundle size, F1 (all test windows and the last window per unit), p50/p99 latency and fast-path share."""
    from edgectl.recipes import cmapss as recipe
    from edgectl.targets import parse_target

    board = parse_target(target) if target else None
    result = recipe.run(workdir, data, subset, board, progress=Progress(quiet))
    emit(result, as_json, _render_recipe)


@example.command("secom")
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="Directory of the UCI SECOM files.")
@click.option("--model", "kind", default="xgboost", show_default=True, help="Tree model family.")
@click.option("--target", help="Board to serve on (default: a local board in WORKDIR/board).")
@click.option("--workdir", default="out/example-secom", show_default=True, type=click.Path(file_okay=False))
@json_option
@quiet_option
def example_secom(data, kind, target, workdir, as_json, quiet):
    """A tree model on UCI SECOM (secom.data, secom_labels.data; default: synthetic data of the same shape),
    F1 by stratified 5-fold CV from the agent's records of each held-out fold."""
    from edgectl.recipes import secom as recipe
    from edgectl.targets import parse_target

    board = parse_target(target) if target else None
    result = recipe.run(workdir, data, board, kind, progress=Progress(quiet))
    emit(result, as_json, _render_secom)


def _render_secom(result):
    from edgectl.recipes import secom as recipe

    s = result["summary"]
    return (
        f"data: {result['data']}\nboard: {result['board']}\nmodel: {result['model']}\n\n"
        + table(result["folds"], recipe.COLUMNS)
        + f"\n\nF1 {s['f1_mean']:.3f} ± {s['f1_sd']:.3f} (min {s['f1_min']:.3f}, max {s['f1_max']:.3f}): {s['method']}"
    )


def _render_recipe(result):
    from edgectl.recipes import cmapss as recipe

    head = f"data: {result['data']} ({result['subset']})\nboard: {result['board']}\n\n"
    return head + table(result["models"], recipe.COLUMNS)


@cli.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--subset", default="FD001", show_default=True, help="Name used in the file names.")
@click.option("--train-units", default=60, show_default=True)
@click.option("--test-units", default=40, show_default=True)
@click.option("--conditions", default=1, show_default=True, help="Operating conditions (FD002-like: 6).")
@click.option("--seed", default=7, show_default=True)
def synth(out_dir, subset, train_units, test_units, conditions, seed):
    """Write a synthetic turbofan fleet in the original C-MAPSS file format."""
    from edgectl.data import synthetic

    path = synthetic.write_subset(out_dir, subset, train_units, test_units, conditions, seed)
    click.echo(f"wrote train_{subset}.txt, test_{subset}.txt, RUL_{subset}.txt to {path}")


def _render_inspect(info):
    head = [
        f"bundle     {info['bundle_id']}  (format {info['format_version']}, checksums {info['checksums']})",
        f"path       {info['path']}",
        f"signature  {_signature_text(info.get('signature'))}",
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
        if s["int8_report"]:
            r = s["int8_report"]
            float_ops = ",".join(r["float_ops"]) or "none"
            check = f"int8 diff {r['max_abs_diff']:.3f}, agree {r['decision_agreement']:.1%}, float ops {float_ops}"
        val = s["validation"] or {}
        rows.append(
            {**s, "archs": ",".join(s["archs"]), "kb": s["model_bytes"] / 1024, "f1": val.get("f1"), "check": check}
        )
    columns = [("name", "stage", ""), ("kind", "kind", ""), ("archs", "archs", ""), ("kb", "KB", ".1f"),
               ("threshold", "threshold", ".4f"), ("f1", "F1 (cv)", ".3f"), ("check", "build checks", "")]  # fmt: skip
    text = "\n".join(head) + "\n" + table(rows, columns)
    if info.get("cascade"):
        text += "\n\n" + _cascade_text(info["cascade"])
    if "budgets" in info:
        budget_columns = [("budget", "budget", ""), ("status", "status", ""), ("why", "", "")]
        text += f"\n\nbudgets of profile {info['budgets']['profile']}:\n" + table(
            info["budgets"]["checks"], budget_columns
        )
    return text


@cli.command()
@click.argument("target")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records as the agent writes them.")
@click.option("--lines", "-n", default=200, show_default=True, help="How many past lines to show.")
def logs(target, follow, lines):
    """Show the agent service's records from the board's journal."""
    from edgectl import board as boards
    from edgectl import service
    from edgectl.errors import EdgectlError
    from edgectl.targets import parse_target

    board_target = parse_target(target)
    if not service.runs_service(board_target, boards.probe(board_target)):
        raise EdgectlError(f"{target}: the agent does not run as a service there (needs systemd and a root deploy)")
    proc = board_target.popen(service.logs_command(follow, lines), stdin=subprocess.DEVNULL)
    try:
        for line in proc.stdout:
            click.echo(line.decode(errors="replace"), nl=False)
    except KeyboardInterrupt:
        proc.terminate()


def _render_pairs(result):
    def text(value):
        if isinstance(value, dict):
            return ", ".join(f"{k} {text(v)}" for k, v in value.items())
        if isinstance(value, list):
            return " ".join(map(str, value)) or "-"
        return "-" if value is None or value == "" else str(value)

    return "\n".join(f"{key:10} {text(value)}" for key, value in result.items())


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


def _render_run(summary):
    rows = [{"step": step, **p} for step, p in summary["latency_us"].items()]
    head = (
        f"bundle {summary['bundle_id']}: {summary['windows']} windows, {summary['errors']} bad lines, "
        f"peak RSS {(summary['rss_kb_max'] or 0) / 1024:.1f} MB\n\n"
    )
    return head + table(
        rows, [("step", "latency us", ""), ("p50", "p50", ".1f"), ("p90", "p90", ".1f"), ("p99", "p99", ".1f")]
    )


if __name__ == "__main__":
    sys.exit(main())
