"""`local:DIR`: a board directory on this machine, served by this Python's edge_agent.

The embedded default for the demo and the fast tests: the same deploy steps as a
remote board, with plain subprocesses instead of ssh.
"""

import shutil
import subprocess
import sys
from pathlib import Path

from edgectl.errors import EdgectlError


class LocalTarget:
    managed_env = False  # the agent runs on this machine's Python: no venv to manage
    agent_id = None  # and no agent code shipped

    def __init__(self, directory):
        if not directory:
            raise EdgectlError("local target needs a directory: local:DIR")
        self.root = Path(directory).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise EdgectlError(f"local:{directory}: not a directory; a local board is a directory (local:DIR)")
        self.home = str(self.root)

    def __str__(self):
        return f"local:{self.root}"

    def run(self, argv, timeout=300):
        # No working directory: a command on a board never depends on one, and reading creates nothing.
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def popen(self, argv, stdin):
        return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def put_dir(self, src, dest):
        shutil.copytree(src, dest)

    def check_reachable(self, code, stderr):
        """A directory on this machine is always reachable."""

    @property
    def trusted_keys_dir(self):
        """The board directory's own trusted keys (a remote board's are in /etc/edge-agent/trusted_keys)."""
        return f"{self.home}/trusted_keys"

    def agent_argv(self):
        return [sys.executable, "-m", "edge_agent", "--trusted-keys", self.trusted_keys_dir]
