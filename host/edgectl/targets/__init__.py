"""Where a bundle runs. A target is a tiny interface, one module per transport:

home                  the edgectl directory on the board (releases/, current)
run(argv)             run a command there, return CompletedProcess (text)
popen(argv, stdin)    start a command there with stdout piped back
check_reachable(code, stderr)  raise a clear error when a failed command never reached the board
put_dir(src, dest)    copy a local directory to a path there
agent_argv()          the command that starts edge-agent there
agent_id              the agent version a deploy shipped and switches to with `current` (None: not shipped)
trusted_keys_dir      where the board keeps the public keys its agent trusts
"""

import re
import shlex

from edgectl.errors import EdgectlError
from edgectl.targets.local import LocalTarget
from edgectl.targets.ssh import SshTarget

_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_target(text):
    """A target from its string form: `local:DIR`, `ssh://user@host[:port][/home]` or an ssh host alias."""
    if text.startswith("local:"):
        return LocalTarget(text[len("local:") :])
    if text.startswith("ssh://") or _ALIAS.match(text):
        return SshTarget(text)
    raise EdgectlError(
        f"unknown target {text!r}; use local:DIR, ssh://user@host[:port] or a host alias from ~/.ssh/config"
    )


def sh(target, script, timeout=300):
    """Run a shell script on the target; raise with the board's stderr if it fails."""
    got = target.run(["sh", "-c", script], timeout=timeout)
    if got.returncode != 0:
        raise EdgectlError(f"{target}: command failed: {script}\n{got.stderr.strip()}")
    return got


def q(text):
    """Quote one shell word."""
    return shlex.quote(str(text))
