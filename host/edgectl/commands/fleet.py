"""`edgectl fleet`: many boards from an Ansible inventory (deploy in stages, status, rollback, history) and
live from their MQTT broker (watch)."""

import json
import sys
import time

import click

from edgectl.commands.options import BUNDLE_TEXT, json_option, quiet_option, telemetry_options, telemetry_settings
from edgectl.console import Progress, emit, table

INVENTORY_EPILOG = (
    "INVENTORY: an Ansible inventory, INI or YAML (groups, children, vars, host ranges such as pi[01:20].lab; "
    "ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file; our host vars edgectl_home and "
    "edgectl_profile), or with --inventory-plugin any source ansible-inventory reads."
)

# Table columns: (key, header, format).
BOARD = [("board", "board", ""), ("groups", "groups", "")]
STATUS_COLUMNS = BOARD + [
    ("release", "release", ""), ("health", "health", ""), ("uptime_s", "uptime s", ".0f"), ("p99_us", "p99 us", ".1f"),
    ("errors", "errors", "d"), ("drift_alarms", "drift alarms", "d"), ("detail", "detail", "")]  # fmt: skip
ROLLBACK_COLUMNS = BOARD + [("result", "result", ""), ("release", "release", ""), ("reason", "reason", "")]
ROLLOUT_COLUMNS = BOARD + [
    ("before", "before", ""), ("after", "after", ""), ("result", "result", ""), ("seconds", "time s", ".1f"),
    ("reason", "reason", "")]  # fmt: skip
HISTORY_COLUMNS = [
    ("run", "run (UTC)", ""), ("bundle_id", "bundle", ""), ("board", "board", ""), ("before", "before", ""),
    ("after", "after", ""), ("result", "result", ""), ("reason", "reason", "")]  # fmt: skip
WATCH_COLUMNS = [
    ("board", "board", ""), ("fleet", "fleet", ""), ("state", "state", ""), ("release", "release", ""),
    ("windows_per_s", "windows/s", ".1f"), ("p99_us", "p99 us", ".1f"), ("errors", "errors", "d"),
    ("drift_alarms", "drift alarms", "d"), ("seen_s_ago", "seen s ago", ".0f")]  # fmt: skip

inventory_option = click.option(
    "--inventory", "-i", "inventory_source", required=True, metavar="INVENTORY", help="The Ansible inventory to read."
)
plugin_option = click.option(
    "--inventory-plugin",
    "plugin",
    is_flag=True,
    help="Read it through `ansible-inventory -i INVENTORY --list` (dynamic inventories).",
)
limit_option = click.option(
    "--limit",
    "-l",
    metavar="PATTERN",
    help="Only these hosts, as Ansible spells it: group, host, web*, ~regex, a:b, a:&b, a:!b.",
)
forks_option = click.option("--forks", "-f", type=click.IntRange(min=1), default=10, help="Boards worked on at once.")


def boards_options(command):
    """-i INVENTORY, --inventory-plugin, --limit and --forks: which boards, and how many at once."""
    for option in (forks_option, limit_option, plugin_option, inventory_option):
        command = option(command)
    return command


def _hosts(inventory_source, plugin, limit):
    from edgectl.fleet import inventory

    inv = inventory.load(inventory_source, plugin)
    return inv, inventory.select(inv, limit)


@click.group()
def fleet():
    """Many boards from an Ansible inventory: staged deploys, status, rollback, history."""


@fleet.command(epilog=f"{BUNDLE_TEXT}\n\n{INVENTORY_EPILOG}")
@click.argument("bundle", type=click.Path(exists=True))
@boards_options
@click.option(
    "--serial",
    "serial",
    default="100%",
    metavar="1,10%,100%",
    help="Batch sizes, counts or percentages of the boards, the last repeated (a canary: 1).",
)
@click.option(
    "--max-fail-percentage",
    type=click.FloatRange(0, 100),
    default=0,
    help="Stop before the next batch once the failed share of the boards done so far exceeds this.",
)
@click.option("--offline", is_flag=True, help="Ship the runtime wheels from this host; the boards need no index.")
@click.option(
    "--trust-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Install this public key on each board with the deploy (the bundle must be signed by it).",
)
@click.option(
    "--health-windows",
    type=click.IntRange(min=1),
    metavar="N",
    help="Health gate: after its deploy, a board's service must answer N windows with no error record.",
)
@click.option(
    "--health-p99-ms",
    type=click.FloatRange(min=0, min_open=True),
    metavar="MS",
    help="Health gate: and its p99 per window must be within this (needs --health-windows).",
)
@click.option(
    "--health-timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    metavar="SECONDS",
    help="Health gate: how long a board has to pass it; a board that does not is rolled back.",
)
@telemetry_options(board=False)
@json_option
@quiet_option
def deploy(
    bundle, inventory_source, plugin, limit, forks, serial, max_fail_percentage, offline, trust_key, health_windows,
    health_p99_ms, health_timeout, as_json, quiet, **reports,
):  # fmt: skip
    """Deploy BUNDLE to the inventory's boards in batches; stop when too many fail."""
    from edge_convert.archive import unpacked
    from edgectl.fleet import rollout, runs

    inv, names = _hosts(inventory_source, plugin, limit)
    sizes = [s for s in serial.split(",") if s.strip()]
    rollout.batches(names, sizes)  # a bad --serial is refused before any board is touched
    telemetry = telemetry_settings(reports, "board")  # checked now; each board publishes as its own name
    if health_p99_ms is not None and health_windows is None:
        raise click.UsageError("--health-p99-ms needs --health-windows: the p99 of how many windows?")
    gate = {"windows": health_windows, "p99_ms": health_p99_ms, "timeout_s": health_timeout} if health_windows else None
    started = time.time()
    with unpacked(bundle) as bundle_dir:
        done = rollout.roll_out(
            bundle_dir,
            inv,
            names,
            forks,
            sizes,
            max_fail_percentage,
            Progress(quiet).say,
            offline=offline,
            trust_key=trust_key,
            telemetry=telemetry,
            gate=gate,
        )
    run = {
        "started": started,
        "finished": time.time(),
        "bundle": str(bundle),
        "inventory": str(inventory_source),
        "limit": limit,
        "serial": sizes,
        "forks": forks,
        "max_fail_percentage": max_fail_percentage,
        "health_gate": gate,
        **done,
    }
    run["record"] = str(runs.save(run))
    emit(run, as_json, _rollout_text)
    if done["aborted"] or any(row["result"] == "failed" for row in done["boards"]):
        sys.exit(1)


@fleet.command(epilog=INVENTORY_EPILOG)
@boards_options
@json_option
def status(inventory_source, plugin, limit, forks, as_json):
    """Each board's release, health, uptime, p99, errors and drift alarms, asked in parallel."""
    from edgectl.fleet import boards

    inv, names = _hosts(inventory_source, plugin, limit)
    rows = boards.fleet_status(inv, names, forks)
    emit(rows, as_json, lambda data: table(data, STATUS_COLUMNS))
    if any(row["health"] != "healthy" for row in rows):
        sys.exit(3)  # as `edgectl status`: a script can gate on every board being healthy


@fleet.command(epilog=INVENTORY_EPILOG)
@boards_options
@json_option
@quiet_option
def rollback(inventory_source, plugin, limit, forks, as_json, quiet):
    """Switch each board back to its previous release (current and previous swap), in parallel."""
    from edgectl.fleet import boards

    inv, names = _hosts(inventory_source, plugin, limit)
    rows = boards.fleet_rollback(inv, names, forks, Progress(quiet).say)
    emit(rows, as_json, lambda data: table(data, ROLLBACK_COLUMNS))
    if any(row["result"] == "failed" for row in rows):
        sys.exit(1)


@fleet.command(epilog=INVENTORY_EPILOG)
@click.option("--mqtt", "url", required=True, metavar="URL", help="The broker: mqtt[s]://HOST[:PORT][/PREFIX].")
@click.option("--mqtt-fleet", "fleet_name", default="+", metavar="NAME", help="Only this fleet (+: every fleet).")
@click.option("--mqtt-ca", metavar="FILE", help="mqtts: the CA certificate to check the broker against.")
@click.option("--mqtt-auth", metavar="FILE", help="A file whose first line is username:password.")
@click.option("--inventory", "-i", "inventory_source", metavar="INVENTORY",
              help="Also show the inventory's boards that never reported.")  # fmt: skip
@plugin_option
@limit_option
@click.option("--duration", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Stop after this long and print the table (default: until Ctrl-C).")  # fmt: skip
@click.option("--every", type=click.FloatRange(min=0.1), default=2.0, help="Seconds between table refreshes.")
@json_option
def watch(url, fleet_name, mqtt_ca, mqtt_auth, inventory_source, plugin, limit, duration, every, as_json):
    """The fleet live from its MQTT broker: state, release, windows/s, p99, errors, drift, last seen.
    --json: one line per board update as it comes."""
    from edgectl.fleet import watch as watching

    expected = _hosts(inventory_source, plugin, limit)[1] if inventory_source else ()
    show = (lambda row: print(json.dumps(row), flush=True)) if as_json else None
    rows, stop = watching.watch(url, fleet_name, expected, show, mqtt_ca, mqtt_auth)
    deadline = time.monotonic() + duration if duration is not None else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(min(every, max(0.0, deadline - time.monotonic())) if deadline else every)
            if not as_json and deadline is None:
                click.clear()
                print(table(_ages(rows.snapshot()), WATCH_COLUMNS), flush=True)
    finally:
        stop()
    final = _ages(rows.snapshot())
    if as_json:
        print(json.dumps({"type": "fleet", "boards": final}), flush=True)
    else:
        print(table(final, WATCH_COLUMNS))


def _ages(rows):
    now = time.time()
    return [{**row, "seen_s_ago": None if row["last_seen"] is None else now - row["last_seen"]} for row in rows]


@fleet.command()
@click.option("--last", "-n", type=click.IntRange(min=1), default=5, help="How many of the latest runs.")
@json_option
def history(last, as_json):
    """What went where: the latest fleet deploys, one row per board ($EDGECTL_FLEET_RUNS or
    ~/.local/state/edgectl/fleet)."""
    from edgectl.fleet import runs

    records = runs.history(last=last)
    rows = [
        {
            "run": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["started"])),
            "bundle_id": r["bundle_id"],
            "aborted": r["aborted"],
            **row,
        }
        for r in records
        for row in r["boards"]
    ]
    emit(records, as_json, lambda _: table(rows, HISTORY_COLUMNS) if rows else f"no fleet runs in {runs.runs_dir()}")


def _rollout_text(run):
    counts = {k: sum(r["result"] == k for r in run["boards"]) for k in ("deployed", "skipped", "failed", "not started")}
    head = f"{run['bundle_id']}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    head += f" in batches of {', '.join(map(str, run['batches']))}" + (
        "; STOPPED: too many failed" if run["aborted"] else ""
    )
    return f"{head}\n{table(run['boards'], ROLLOUT_COLUMNS)}\nrun record: {run['record']}"
