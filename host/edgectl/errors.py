"""The one exception the CLI turns into a clean message."""


class EdgectlError(Exception):
    """Something the user can fix: the message says what, where, and what to do."""
