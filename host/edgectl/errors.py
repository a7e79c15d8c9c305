"""The exceptions the CLI turns into a clean message and an exit code."""

import difflib


class EdgectlError(Exception):
    """Something the user can fix: the message says what, where, and what to do."""


class Interrupted(EdgectlError):
    """Ctrl-C during a command; the message says what was done and how to go on. Exit code 130."""


def did_you_mean(value, choices):
    """The hint ` (did you mean 'xgboost'?)` when value is a near miss (a typo) of one of choices, else ""."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
