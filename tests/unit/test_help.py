"""Help that explains: every option of both command lines has a help text, defaults are shown, and every
command that takes a TARGET says what one looks like."""

import argparse

import click
import pytest
from cli import edgectl

from edge_agent.cli import build_parser
from edgectl.cli import cli


def click_commands(command=cli, path=("edgectl",)):
    """(path, command) of every click command under `edgectl`, groups included."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from click_commands(sub, (*path, name))


def argparse_parsers(parser=None, path=("edge-agent",), text=None):
    """(path, parser, what the command says it does) of edge-agent's parser and every subcommand's."""
    parser = parser or build_parser()
    yield path, parser, text or parser.description
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            said = {choice.dest: choice.help for choice in action._choices_actions}  # the command list's lines
            for name, sub in action.choices.items():
                yield from argparse_parsers(sub, (*path, name), said.get(name))


def takes_target(command):
    return any("target" in param.name or "TARGET" in (param.metavar or "") for param in command.params)


TARGET_COMMANDS = [" ".join(path[1:]) for path, command in click_commands() if takes_target(command)]


def test_every_edgectl_command_and_option_explains_itself():
    unexplained = []
    for path, command in click_commands():
        if not (command.help or "").strip():
            unexplained.append(" ".join(path))
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                unexplained.append(f"{' '.join(path)} {param.opts[0]}")
    assert unexplained == []


def test_every_edge_agent_command_and_argument_explains_itself():
    unexplained = []
    for path, parser, text in argparse_parsers():
        if not (text or "").strip():
            unexplained.append(" ".join(path))
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip():
                unexplained.append(f"{' '.join(path)} {action.option_strings or action.dest}")
    assert unexplained == []
    assert len(list(argparse_parsers())) == 7  # edge-agent and its six commands: the walk saw them all


def test_defaults_are_shown_and_none_is_never_one():
    assert "default: 200" in edgectl("logs", "--help").stdout  # the group's show_default reaches commands
    texts = {" ".join(path): parser.format_help() for path, parser, _ in argparse_parsers()}
    assert "(default: 1000)" in texts["edge-agent run"] and "(default: 4096)" in texts["edge-agent bench"]
    assert not [path for path, text in texts.items() if "default: None" in text or "default: False" in text]


def test_choices_are_listed():
    build = edgectl("build", "--help").stdout
    assert "hist-gradient-boosting" in build and "cascade" in build and "rpi4" in build  # models and profiles
    assert "rpi5" in edgectl("inspect", "--help").stdout
    assert "ewm:S" in edgectl("features", "--help").stdout  # the feature kinds a spec may name


@pytest.mark.parametrize("command", TARGET_COMMANDS)
def test_a_command_that_takes_a_target_says_what_one_looks_like(command):
    assert len(TARGET_COMMANDS) >= 8  # deploy rollback status logs run bench, example cmapss and secom
    shown = edgectl(*command.split(), "--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # as wrapped for the terminal
    assert "local:DIR" in text and "ssh://user@host[:port][/home]" in text and "~/.ssh/config" in text
