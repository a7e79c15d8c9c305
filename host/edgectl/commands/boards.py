"""Commands on boards: deploy, rollback, status, logs, run, monitor, bench."""

import contextlib
import json
import shlex
import subprocess
import sys

import click

from edgectl.commands.options import (
    BUNDLE_TARGET_EPILOG,
    TARGET_EPILOG,
    json_option,
    profile_help,
    quiet_option,
    telemetry_options,
    telemetry_settings,
)
from edgectl.console import Progress, counts_text, emit, pairs, table, warn, words


@click.command(epilog=BUNDLE_TARGET_EPILOG)
@click.argument("bundle", type=click.Path(exists=True))
@click.argument("target")
@click.option("--offline", is_flag=True, help="Ship the runtime wheels from this host; the board needs no index.")
@click.option("--serial", is_flag=True, help="Also install pyserial and cobs: the agent talks over a UART.")
@click.option(
    "--trust-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Install this public key on the board; from then on it serves only bundles signed by a trusted key.",
)
@click.option("--profile", metavar="NAME", help=profile_help(
    "The board's profile: the service's memory limits come from its agent_memory_mb (default: inferred from the "
    "board)."))  # fmt: skip
@telemetry_options()
@json_option
@quiet_option
def deploy(bundle, target, offline, serial, trust_key, profile, as_json, quiet, **reports):
    """Deploy BUNDLE to TARGET as a new release: verify, switch atomically, roll back if unhealthy."""
    from edge_convert.archive import unpacked
    from edgectl import deploy as deployer
    from edgectl.targets import parse_target

    board = parse_target(target)
    telemetry = telemetry_settings(reports, getattr(board, "host", "local"))
    with unpacked(bundle) as bundle_dir:
        result = deployer.deploy(
            bundle_dir, board, Progress(quiet).say, offline=offline, serial=serial,
            trust_key=trust_key, profile=profile, telemetry=telemetry,
        )  # fmt: skip
    emit(result, as_json, pairs)


@click.command(epilog=TARGET_EPILOG)
@click.argument("target")
@json_option
@quiet_option
def rollback(target, as_json, quiet):
    """Switch TARGET back to its previous release (current and previous swap)."""
    from edgectl import deploy as deployer
    from edgectl.targets import parse_target

    emit(deployer.rollback(parse_target(target), Progress(quiet).say), as_json, pairs)


@click.command(epilog=TARGET_EPILOG)
@click.argument("target")
@json_option
def status(target, as_json):
    """Show TARGET's release, previous release, health, uptime and the agent's last stats."""
    from edgectl import status as board_status
    from edgectl.targets import parse_target

    result = board_status.status(parse_target(target))
    emit(result, as_json, pairs)
    if result["health"] != "healthy":  # degraded, or nothing deployed: nothing a script can rely on serves
        sys.exit(3)


@click.command(epilog=TARGET_EPILOG)
@click.argument("target", required=False)
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Sample file: CSV or JSON lines, or an original C-MAPSS file.")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False), help="Also write every agent record here (JSON lines).")
@click.option("--serial", "device", help="Feed the agent over this serial port instead of a TARGET.")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(min=1),
              help="With --serial: the line's speed (8N1).")  # fmt: skip
@click.option("--resume", is_flag=True, help="With --serial: go on with the last session where the agent stopped.")
@json_option
@quiet_option
def run(target, input_path, out, device, baud, resume, as_json, quiet):
    """Stream a sample file through the agent on TARGET (or over --serial) and summarize its records."""
    from edgectl import evaluate, runner, serial_host
    from edgectl.errors import EdgectlError, Interrupted
    from edgectl.targets import parse_target

    if bool(target) == bool(device):
        raise EdgectlError("give a TARGET or --serial DEV (one of them)")
    if resume and not device:
        raise click.UsageError("--resume goes on with a serial session: it needs --serial DEV")
    progress = Progress(quiet)
    try:
        # --resume goes on with a session: its records join those --out holds already (each arrives once)
        with open(out, "a" if resume else "w") if out else contextlib.nullcontext() as sink:
            if device:
                records = serial_host.stream_file(device, input_path, baud, sink, progress.record, resume)
            else:
                records = runner.stream_file(parse_target(target), input_path, out=sink, on_record=progress.record)
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_run(device, input_path, baud, out)) from None
    summary = evaluate.run_summary(records)
    if not summary["windows"] and not resume:  # a summary of nothing would read as a success
        # (a resumed session may have had nothing left to send: its windows came in the first one)
        raise EdgectlError(
            f"{input_path}: nothing scored, the agent answered no window: {evaluate.why_nothing_scored(records)}; "
            "check the file against the bundle's input fields and window length (edgectl inspect BUNDLE); "
            "the reasons are explained in the README, 'Agent records'"
        )
    emit(summary, as_json, _render_run)


def _interrupted_run(device, input_path, baud, out):
    """Ctrl-C during `run`: where the records so far are and, over a serial line, the command that goes on."""
    text = "edgectl run: interrupted (Ctrl-C)"
    if out:
        text += f"; the records so far are in {out}"
    if device:
        again = ["edgectl", "run", "--serial", device, "--input", input_path, "--baud", str(baud)]
        again += ["--out", out] if out else []
        text += f"; to go on where the agent stopped: {shlex.join([*again, '--resume'])}"
    return text


@click.command()
@click.option("--serial", "device", required=True, help="The serial port the agent reports on.")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(min=1), help="The line's speed (8N1).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True),
              help="Stop after this many seconds (default: until Ctrl-C).")  # fmt: skip
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

    try:
        serial_host.monitor(device, show, baud, duration)
    except KeyboardInterrupt:  # Ctrl-C ends the view: its last state, then the CLI's one line and exit 130
        if not as_json:
            view.draw()
        raise
    if not as_json:
        view.draw()


@click.command(epilog=BUNDLE_TARGET_EPILOG)
@click.argument("bundles_and_target", nargs=-1, required=True, metavar="BUNDLE... TARGET")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Sample file replayed on the board; a C-MAPSS test_FDxxx.txt with RUL_FDxxx.txt beside it "
                   "is scored for accuracy.")  # fmt: skip
@click.option("--profile", metavar="NAME",
              help=profile_help("Check budgets against this profile (default: inferred from the board)."))  # fmt: skip
@click.option("--warmup", type=click.IntRange(min=0), help="Warm-up queries, not counted (default: the agent's, 100).")
@click.option("--min-queries", type=click.IntRange(min=1), help="Counted queries at least (default: 4096).")
@click.option("--min-duration", type=click.FloatRange(min=0), help="Seconds of counted queries at least (default: 10).")
@click.option("--out", default="out/bench", show_default=True, type=click.Path(file_okay=False),
              help="Where to write bench.json, bench.md, bench.html and the board's raw results.")  # fmt: skip
@click.option("--offline", is_flag=True, help="Deploying: ship the runtime wheels from this host.")
@json_option
@quiet_option
def bench(bundles_and_target, data, profile, warmup, min_queries, min_duration, out, offline, as_json, quiet):
    """Measure each BUNDLE on TARGET with the agent's bench mode: latency, memory, accuracy, budgets.

    Uploads each bundle as a release beside what the board serves (`current` is never switched),
    runs it there, and writes the run record, a Markdown summary and a self-contained HTML report.
    Prints the summary (--json: the record). Exit code 3 when a bundle fails a budget.
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
    for result in record["results"]:  # on stderr too: with --json, stdout is the record alone
        for warning in bench_report.accuracy_warnings(result):
            warn(warning)
    if record["flags"]["over_budget"]:
        sys.exit(3)


@click.command(epilog=TARGET_EPILOG)
@click.argument("target")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records as the agent writes them.")
@click.option("--lines", "-n", default=200, show_default=True, type=click.IntRange(min=0),
              help="How many past lines to show.")  # fmt: skip
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
        raise  # the CLI's one line and exit code 130, as for every command


def _render_run(summary):
    from edgectl.evaluate import drift_text

    rows = [{"step": step, **p} for step, p in summary["latency_us"].items()]
    bad = f" ({counts_text(summary['errors_by_reason'])})" if summary["errors"] else ""
    rss = "-" if summary["rss_kb_max"] is None else f"{summary['rss_kb_max'] / 1024:.1f} MB"
    head = (
        f"bundle {words(summary['bundle_id'])}: {summary['windows']} windows, {summary['errors']} bad lines{bad}, "
        f"peak RSS {rss}\n"
        f"drift: {drift_text(summary['drift'])}\n\n"
    )
    return head + table(
        rows, [("step", "latency us", ""), ("p50", "p50", ".1f"), ("p90", "p90", ".1f"), ("p99", "p99", ".1f")]
    )
