"""`ssh://user@host[:port][/home]` or a host alias from ~/.ssh/config: a board over OpenSSH.

The system `ssh` client with a ControlMaster, so a deploy's many small commands
share one connection. Host keys are checked as the user's ssh config says;
nothing here turns that off. EDGECTL_SSH_CONFIG names an ssh config file to use
instead of ~/.ssh/config (the tests' boards have their own).
"""

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from edge_agent.signature import DEFAULT_TRUSTED_KEYS
from edgectl.errors import EdgectlError

DEFAULT_HOME = "/opt/edgectl"
SSH_UNREACHABLE = 255  # ssh's own exit code for connection and auth failures


class SshTarget:
    managed_env = True  # deploy creates the agent's venv and ships the agent code
    trusted_keys_dir = DEFAULT_TRUSTED_KEYS  # where the agent (and its systemd unit) looks by default

    def __init__(self, text):
        if text.startswith("ssh://"):
            url = urlsplit(text)
            if not url.hostname:
                raise EdgectlError(f"bad ssh target {text!r}; use ssh://user@host[:port][/home]")
            self.host = url.hostname
            self.user = url.username
            self.port = url.port
            self.home = url.path.rstrip("/") or DEFAULT_HOME
        else:
            self.host, self.user, self.port, self.home = text, None, None, DEFAULT_HOME
        self.text = text

    def __str__(self):
        return self.text

    def _ssh(self, *extra):
        control = Path(tempfile.gettempdir()) / f"edgectl-cm-{os.getuid()}"  # short: unix socket paths are limited
        control.mkdir(mode=0o700, exist_ok=True)
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        argv += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%C", "-o", "ControlPersist=60"]
        if os.environ.get("EDGECTL_SSH_CONFIG"):
            argv += ["-F", os.environ["EDGECTL_SSH_CONFIG"]]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        return [*argv, *extra, self.host]

    def run(self, argv, timeout=300):
        try:
            got = subprocess.run(
                [*self._ssh(), "--", shlex.join(argv)], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise EdgectlError(f"{self}: no answer within {timeout} s running {argv[0]}") from None
        self.check_reachable(got.returncode, got.stderr)
        return got

    def popen(self, argv, stdin):
        return subprocess.Popen(
            [*self._ssh(), "--", shlex.join(argv)], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def put_dir(self, src, dest):
        """Copy a directory as a tar stream: needs only tar on the board, no sftp or rsync."""
        pack = subprocess.Popen(["tar", "-C", str(src), "-cf", "-", "."], stdout=subprocess.PIPE)
        unpack = f"mkdir -p {shlex.quote(dest)} && tar -C {shlex.quote(dest)} -xf -"
        got = subprocess.run([*self._ssh(), "--", unpack], stdin=pack.stdout, capture_output=True, text=True)
        pack.stdout.close()
        pack.wait()
        self.check_reachable(got.returncode, got.stderr)
        if got.returncode != 0 or pack.returncode != 0:
            raise EdgectlError(f"{self}: copying {src} to {dest} failed: {got.stderr.strip()}")

    def agent_argv(self):
        return ["env", f"PYTHONPATH={self.agent_path}", self.agent_python, "-m", "edge_agent"]

    @property
    def agent_python(self):
        return f"{self.home}/venv/bin/python"

    @property
    def agent_path(self):
        """Where deploy ships the agent code (on PYTHONPATH)."""
        return f"{self.home}/agent"

    def close(self):
        """Stop the ControlMaster for this board."""
        subprocess.run([*self._ssh("-O", "exit")], capture_output=True)

    def check_reachable(self, code, stderr):
        """Raise, saying so, when ssh's exit code says the board could not be reached."""
        if code == SSH_UNREACHABLE:
            raise EdgectlError(f"{self}: cannot reach the board over ssh: {stderr.strip().splitlines()[-1:]}")
