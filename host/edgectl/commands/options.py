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


def mqtt_options(board=True):
    """--mqtt, --mqtt-fleet and (for one board) --mqtt-board: the service also publishes its records to a broker."""

    def add(command):
        if board:
            help_board = "The board's name in the topics (default: its host name)."
            command = click.option("--mqtt-board", metavar="NAME", help=help_board)(command)
        fleet = "The fleet's name in the topics (edgectl/v1/FLEET/BOARD/...; a board's name is its inventory name)."
        command = click.option("--mqtt-fleet", metavar="NAME", default="default", help=fleet)(command)
        url = "The service also publishes its records to this broker: mqtt[s]://HOST[:PORT][/PREFIX]."
        return click.option("--mqtt", metavar="URL", help=url)(command)

    return add


def mqtt_settings(url, fleet, board):
    """The deploy's mqtt argument, its URL and names checked before any work; None without --mqtt."""
    if not url:
        return None
    from edge_agent.errors import AgentError
    from edge_agent.mqtt_out import parse_url

    try:
        parse_url(url)
    except AgentError as exc:
        raise click.BadParameter(str(exc).removeprefix(f"--mqtt {url!r}: "), param_hint="--mqtt") from None
    for what, name in (("fleet", fleet), ("board", board)):
        if not name or any(c in name for c in "/+#"):
            raise click.BadParameter(f"{name!r}: a name without / + #", param_hint=f"--mqtt-{what}")
    return {"url": url, "fleet": fleet, "board": board}
