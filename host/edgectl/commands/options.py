"""Options and help texts the commands share: each said once here, reused wherever it applies."""

from pathlib import Path

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")

# What a TARGET looks like; the epilog of every command that takes one, and the help of --target options.
TARGETS = (
    "local:DIR (a board directory on this machine), ssh://user@host[:port][/home] (home defaults to "
    "/opt/edgectl), or a host alias from ~/.ssh/config"
)
TARGET_EPILOG = f"TARGET: {TARGETS}."
BUNDLE_TEXT = "BUNDLE: a bundle directory, or its .tar.gz (unpacked safely into a temporary directory)."
BUNDLE_TARGET_EPILOG = f"{BUNDLE_TEXT}\n\n{TARGET_EPILOG}"  # blank line: click wraps each paragraph apart
SUBSETS = "FD001..FD004 (FD002 and FD004: six operating conditions)"


def profile_help(what):
    """A --profile option's help: what it does, then the profile names there are.

    Profiles are named as their files are (the shipped ones are); listing the files, not reading
    them, keeps --help fast. `edgectl profiles` shows each one's board and budgets.
    """
    from edgectl.profiles import PROFILE_DIR  # the standard library only: EDGECTL_PROFILES or the shipped ones

    names = sorted(p.stem for p in Path(PROFILE_DIR).glob("*.toml"))
    return f"{what} Profiles (edgectl profiles): {', '.join(names) or 'none found'}."


# build, convert and train: the boards a bundle is built for.
profiles_option = click.option(
    "--profile",
    "profile_names",
    multiple=True,
    metavar="NAME",
    help=profile_help(
        "Also cross-compile the tree stage for this board profile and check its parity under qemu-user (repeatable)."
    ),
)


class Choice(click.Choice):
    """click.Choice whose refusal also names the closest choice: `'xgbost' is not one of ... (did you mean
    'xgboost'?)`, exit 2 like every usage error, before any work."""

    def get_invalid_choice_message(self, value, ctx):
        from edgectl.errors import did_you_mean

        return super().get_invalid_choice_message(value, ctx).rstrip(".") + did_you_mean(value, self.choices) + "."


def telemetry_options(board=True):
    """--mqtt (with --mqtt-fleet, --mqtt-board for one board, --mqtt-ca, --mqtt-auth), --metrics-port and
    --node-exporter-dir: what the service also reports."""

    def add(command):
        where = "Prometheus metrics: also as a textfile linked into this folder of node_exporter's on the board."
        command = click.option("--node-exporter-dir", metavar="DIR", help=where)(command)
        port = "Prometheus metrics: also served on the board's 127.0.0.1:PORT/metrics."
        command = click.option("--metrics-port", type=click.IntRange(1, 65535), metavar="PORT", help=port)(command)
        auth = "mqtt: a file on this host whose first line is username:password (kept root's on the board)."
        command = click.option("--mqtt-auth", type=click.Path(exists=True, dir_okay=False), help=auth)(command)
        ca = "mqtts: the CA certificate (a file on this host) the board checks the broker against."
        command = click.option("--mqtt-ca", type=click.Path(exists=True, dir_okay=False), help=ca)(command)
        if board:
            help_board = "The board's name in the topics (default: its host name)."
            command = click.option("--mqtt-board", metavar="NAME", help=help_board)(command)
        fleet = "The fleet's name in the topics (edgectl/v1/FLEET/BOARD/...; a board's name is its inventory name)."
        command = click.option("--mqtt-fleet", metavar="NAME", default="default", help=fleet)(command)
        url = "The service also publishes its records to this broker: mqtt[s]://HOST[:PORT][/PREFIX]."
        return click.option("--mqtt", metavar="URL", help=url)(command)

    return add


def telemetry_settings(options, board):
    """deploy's telemetry argument from telemetry_options' values, checked before any work; None when
    nothing is asked for."""
    url, fleet = options["mqtt"], options["mqtt_fleet"]
    if not url:
        for name in ("mqtt_ca", "mqtt_auth"):
            if options[name]:
                raise click.BadParameter("needs --mqtt URL", param_hint=f"--{name.replace('_', '-')}")
    mqtt = _mqtt(url, fleet, options.get("mqtt_board") or board, options["mqtt_ca"], options["mqtt_auth"])
    port, folder = options["metrics_port"], options["node_exporter_dir"]
    if not (mqtt or port or folder):
        return None
    return {"mqtt": mqtt, "metrics_port": port, "node_exporter_dir": folder}


def _mqtt(url, fleet, board, ca, auth):
    if not url:
        return None
    from edge_agent.errors import AgentError
    from edge_agent.mqtt_out import parse_url, read_auth

    try:
        tls = parse_url(url)[0]
    except AgentError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--mqtt {url!r}: "), param_hint="--mqtt") from None
    try:
        if auth:
            read_auth(auth)
    except AgentError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--mqtt-auth {auth}: "), param_hint="--mqtt-auth") from None
    if ca and not tls:
        raise click.BadParameter("a CA is for mqtts:// brokers; use mqtts://HOST[:8883]", param_hint="--mqtt-ca")
    for what, name in (("fleet", fleet), ("board", board)):
        if not name or any(c in name for c in "/+#"):
            raise click.BadParameter(f"{name!r}: a name without / + #", param_hint=f"--mqtt-{what}")
    return {"url": url, "fleet": fleet, "board": board, "ca": ca, "auth": auth}
