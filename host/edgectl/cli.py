"""The `edgectl` command line. Commands import their work lazily so `--help` stays fast."""

import os
import sys

import click

from edgectl import __version__
from edgectl.commands import boards, bundles, data, recipes

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


# Grouped by area here and in edgectl.commands; `edgectl --help` lists them alphabetically.
for command in (
    data.init, data.features, data.convert, data.train,
    bundles.build, bundles.keygen, bundles.inspect, bundles.list_profiles,
    boards.deploy, boards.rollback, boards.status, boards.logs, boards.run, boards.monitor, boards.bench,
    recipes.demo, recipes.example, recipes.synth,
):  # fmt: skip
    cli.add_command(command)


if __name__ == "__main__":
    sys.exit(main())
