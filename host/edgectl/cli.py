"""The `edgectl` command line. Commands import their work lazily so `--help` stays fast."""

import os
import sys

import click

from edgectl import __version__
from edgectl.commands import boards, bundles, data, fleet, recipes

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ logs drown the progress lines


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


class _Interrupted(click.ClickException):
    """Ctrl-C: the message alone (it is not the user's error), exit code 130."""

    exit_code = EXIT_INTERRUPTED

    def show(self, file=None):
        click.echo(self.format_message(), err=True)


class _Cli(click.Group):
    """Turns the errors a user can act on into one clean message and exit code 1, and Ctrl-C into
    one line and exit code 130: never a traceback."""

    def invoke(self, ctx):
        from edge_agent.errors import AgentError
        from edge_convert import ConversionError
        from edgectl.errors import EdgectlError, Interrupted

        try:
            return super().invoke(ctx)
        except Interrupted as exc:  # a command that knows how to go on says so
            raise _Interrupted(str(exc)) from None
        except KeyboardInterrupt:
            raise _Interrupted(f"edgectl {ctx.invoked_subcommand}: interrupted (Ctrl-C)") from None
        except (EdgectlError, AgentError, ConversionError) as exc:
            raise click.ClickException(str(exc)) from None


# show_default: every command's --help shows its options' defaults (inherited by subcommand contexts).
@click.group(cls=_Cli, context_settings={"show_default": True})
@click.version_option(__version__, prog_name="edgectl")
def cli():
    """Build model bundles, deploy them to boards, and measure them there."""


def main():
    cli(prog_name="edgectl")


# Grouped by area here and in edgectl.commands; `edgectl --help` lists them alphabetically.
for command in (
    data.init, data.features, data.convert, data.train,
    bundles.build, bundles.keygen, bundles.inspect, bundles.list_profiles,
    boards.deploy, boards.rollback, boards.status, boards.logs, boards.run, boards.monitor, boards.bench,
    recipes.demo, recipes.example, recipes.synth,
    fleet.fleet,
):  # fmt: skip
    cli.add_command(command)


if __name__ == "__main__":
    sys.exit(main())
