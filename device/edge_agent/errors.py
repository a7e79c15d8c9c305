"""Errors the agent raises; the CLI turns each into one message and an exit code."""


class AgentError(Exception):
    """A problem the agent cannot serve through (bad bundle, missing runtime)."""


class BundleError(AgentError):
    """The bundle is malformed, tampered with, or fails its self-test."""
