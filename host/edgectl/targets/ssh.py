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
    agent_id = None  # set by runtime_env.ship_agent: a deploy or bench runs the agent it shipped

    def __init__(self, text, identity=None, name=None):
        """identity: a private key file to log in with (an inventory's ansible_ssh_private_key_file);
        name: what to call the board in messages (an inventory's host name; else the text)."""
        self.identity = identity
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
        self.text = name or text

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
        if self.identity:
            argv += ["-i", str(Path(self.identity).expanduser()), "-o", "IdentitiesOnly=yes"]
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
        # Readable by others: the agent's service runs as a systemd DynamicUser, and tar keeps the source's
        # modes (a temporary directory's 0700 made the agent code unreadable to it).
        where = shlex.quote(dest)
        unpack = f"mkdir -p {where} && tar -C {where} -xf - && chmod -R go+rX,go-w {where}"
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
        """The agent code on PYTHONPATH: the one this deploy shipped, else the one `current` runs."""
        return f"{self.home}/agents/{self.agent_id}" if self.agent_id else self.agent_link

    @property
    def agent_link(self):
        """HOME/agent, the link to the agent that serves `current` (switched with it); the service runs it."""
        return f"{self.home}/agent"

    def close(self):
        """Stop the ControlMaster for this board."""
        subprocess.run([*self._ssh("-O", "exit")], capture_output=True)

    def check_reachable(self, code, stderr):
        """Raise, saying why and what to do, when ssh's exit code says the board could not be reached."""
        if code == SSH_UNREACHABLE:
            said = stderr.strip().splitlines()
            why = next((hint for marker, hint in _SSH_FAILURES if marker in stderr), None)
            where = (
                f"{'-p ' + str(self.port) + ' ' if self.port else ''}{self.user + '@' if self.user else ''}{self.host}"
            )
            detail = f" (ssh said: {said[-1].rstrip('.')})" if said else ""
            known = f"[{self.host}]:{self.port}" if self.port else self.host  # how known_hosts names it
            hint = (why or "ssh {where} by hand to see why").format(where=where, known=known)
            raise EdgectlError(f"{self}: cannot reach the board over ssh{detail}. {hint}")


# What ssh prints when it fails, and what the user can do about it; the first that matches wins.
_SSH_FAILURES = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "The board's host key changed (reinstalled, or not the board you "
     "meant): if you expected that, `ssh-keygen -R '{known}'` (for a ~/.ssh/config alias, its HostName), then "
     "`ssh {where}` once to accept the new key."),
    ("Host key verification failed", "Its host key is not in your known_hosts: `ssh {where}` once by hand to "
     "check and accept it (edgectl never accepts host keys by itself)."),
    ("Permission denied", "The login was refused: install your key with `ssh-copy-id {where}`, or name the user "
     "(ssh://user@host); edgectl logs in with keys only, it does not ask for passwords."),
    ("Could not resolve hostname", "No such host name: check the spelling, or give its address "
     "(ssh://user@192.168.1.20) or a Host entry in ~/.ssh/config."),
    ("Connection refused", "Nothing listens for ssh there: is the ssh server running on the board "
     "(`sudo systemctl enable --now ssh`), and is the port right?"),
    ("timed out", "The board does not answer: is it powered on, on this network, and the address right?"),
    ("No route to host", "The board does not answer: is it powered on, on this network, and the address right?"),
    ("Network is unreachable", "This machine has no route to that address: check the network it is on."),
)  # fmt: skip
