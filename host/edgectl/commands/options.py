"""Options every command that prints a result shares."""

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
