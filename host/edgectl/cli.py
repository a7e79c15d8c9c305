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
@json_option
@quiet_option
def build(data, subset, kind, out, window, stride, horizon, profile_names, as_json, quiet):
    """Train a model on C-MAPSS data and build a bundle for the board.

    Models: xgboost, random-forest, extra-trees, gradient-boosting,
    hist-gradient-boosting (compiled C through TL2cgen) and conv1d (TFLite INT8).
    """
    from edgectl import build as builder
    from edgectl import inspect_bundle, profiles
    from edgectl.data import cmapss, synthetic

    progress = Progress(quiet)
    chosen = [profiles.get(name) for name in profile_names]
    if data is None:
        data = synthetic.write_subset(Path(out).with_name(Path(out).name + "-data"), subset)
        progress.say(f"no --data: synthetic fleet written to {data}")
    train_split, _ = cmapss.load(data, subset)
    result = builder.build(train_split, kind, out, window, stride, horizon, chosen, progress=progress.say)
    emit(inspect_bundle.summary(result.bundle_dir), as_json, _render_inspect)


@cli.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--profile", help="Check the bundle against this board profile's budgets.")
@click.option(
    "--records",
    type=click.Path(exists=True, dir_okay=False),
    help="Agent records (edgectl run --out) to check measured latency and memory.",
)
@json_option
def inspect(bundle, profile, records, as_json):
    """Verify a bundle's checksums and show its stages, sizes and build-time checks."""
    from edgectl import inspect_bundle

    info = inspect_bundle.summary(bundle)
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
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.argument("target")
@click.option("--offline", is_flag=True, help="Ship the runtime wheels from this host; the board needs no index.")
@click.option("--serial", is_flag=True, help="Also install pyserial and cobs: the agent talks over a UART.")
@json_option
@quiet_option
def deploy(bundle, target, offline, serial, as_json, quiet):
    """Deploy BUNDLE to TARGET as a new release: verify, switch atomically, roll back if unhealthy.

    TARGET: local:DIR, ssh://user@host[:port][/home] (home defaults to /opt/edgectl)
    or a host alias from ~/.ssh/config.
    """
    from edgectl import deploy as deployer
    from edgectl.targets import parse_target

    result = deployer.deploy(bundle, parse_target(target), Progress(quiet).say, offline=offline, serial=serial)
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
@click.option("--data", type=click.Path(exists=True, file_okay=False), help="Real C-MAPSS files instead of synthetic.")
@click.option("--subset", default="FD001", show_default=True)
@click.option("--workdir", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--board", type=click.Path(file_okay=False), help="Local board directory (default: WORKDIR/board).")
@json_option
@quiet_option
def demo(data, subset, workdir, board, as_json, quiet):
    """The main job end to end: data -> XGBoost and Conv1D bundles -> local board -> agent -> table."""
    from edgectl import demo as demo_job

    result = demo_job.run_demo(workdir, data, subset, board, progress=Progress(quiet))
    emit(
        result,
        as_json,
        lambda r: f"data: {r['data']}\nboard: {r['board']}\n\n" + table(r["models"], demo_job.DEMO_COLUMNS),
    )


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
